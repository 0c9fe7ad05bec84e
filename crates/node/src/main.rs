//! `kessai`: the node and its command line.

use kessai::{devnet, keystore, node};

use clap::{Args, Parser, Subcommand};
use commonware_codec::Encode;
use kessai_types::{
    AccountId, AssetId, Bundle, CollateralWeight, DayCount, Expiry, FxEntry, Leg, Operation,
    PartyId, PriceEntry, PublishPrices, RepoAction, RepoStep, RepoTerms, SetValidators,
    SubstituteCollateral, SupplyChange, Transaction, TxBody, TxId, UniqueId,
};
use serde_json::Value;
use std::{path::PathBuf, time::SystemTime};

#[derive(Parser)]
#[command(
    name = "kessai",
    version,
    about = "Kessai: a permissioned ledger for post-trade settlement"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate validator keys, a genesis file with demo parties and assets, node configs and an
    /// encrypted keystore.
    Init {
        #[command(flatten)]
        network: NetworkArgs,
    },
    /// Run a validator or observer node.
    Node {
        #[arg(long)]
        config: PathBuf,
    },
    /// Start a local network (4 validators by default) with demo data; Ctrl-C stops it.
    Devnet {
        #[command(flatten)]
        network: NetworkArgs,
    },
    /// Sign and submit transactions.
    Tx {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: TxCommand,
    },
    /// Load a running network through its API and report throughput, latency to finality and
    /// the nodes' CPU and memory (a setup phase first opens and funds the bench accounts,
    /// unless `devnet --bench-accounts` wrote them in the genesis).
    Bench {
        /// A node's API; repeat to spread requests over several nodes (the first one's event
        /// stream is watched). Default: the devnet's four validators.
        #[arg(long = "api")]
        apis: Vec<String>,
        #[arg(
            long,
            env = "KESSAI_KEYSTORE",
            default_value = ".kessai/devnet/keystore.json"
        )]
        keystore: PathBuf,
        #[command(flatten)]
        load: kessai::bench::Load,
        /// Write the report as JSON here too.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Then run the same workload on PostgreSQL at this URL (`scripts/postgres` starts one)
        /// and print both side by side with the ratio Kessai / PostgreSQL.
        #[arg(long)]
        postgres: Option<String>,
    },
    /// Query the finalized ledger.
    Query {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: QueryCommand,
    },
    /// Simulate a repo book through market scenarios on the real margin-call code: net credit
    /// exposure, margin calls and token transfers with 1 or 5 collateral securities and with or
    /// without a threshold, indexed against 1 security and no threshold (docs/simulator.md).
    Sim(kessai::sim::SimArgs),
}

#[derive(Args)]
struct NetworkArgs {
    /// Folder of the network's files.
    #[arg(long, default_value = ".kessai/devnet")]
    dir: PathBuf,
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// Nodes that run as validators but are not in the genesis set (governance can add them).
    #[arg(long, default_value_t = 0)]
    standby: usize,
    #[arg(long, default_value_t = 0)]
    observers: usize,
    /// p2p ports are base, base+1...; API ports base+100, base+101...
    #[arg(long, default_value_t = 7100)]
    base_port: u16,
    /// Blocks per epoch: a validator-set change applies after the last block of an epoch.
    #[arg(long, default_value_t = 300)]
    epoch_blocks: u64,
    /// Passphrase of the generated keystore.
    #[arg(long, env = "KESSAI_KEYSTORE_PASSPHRASE", default_value = "devnet")]
    passphrase: String,
    /// Write bench accounts BENCH/0..N in the genesis, funded as `kessai bench`'s setup would
    /// (only when the network is created): `kessai bench --accounts N` then skips its setup.
    #[arg(long, default_value_t = 0)]
    bench_accounts: u64,
}

#[derive(Args)]
struct ClientArgs {
    /// The node's API.
    #[arg(
        long,
        env = "KESSAI_API",
        default_value = "http://127.0.0.1:7200",
        global = true
    )]
    api: String,
    /// The keystore holding the signing party's key.
    #[arg(
        long,
        env = "KESSAI_KEYSTORE",
        default_value = ".kessai/devnet/keystore.json",
        global = true
    )]
    keystore: PathBuf,
}

#[derive(Subcommand)]
enum TxCommand {
    /// Move units from one account to another.
    Transfer {
        /// The signing party (owner of the source account).
        #[arg(long = "as")]
        signer: String,
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        #[arg(long)]
        asset: String,
        #[arg(long)]
        quantity: u128,
        /// Wait until final and print the outcome.
        #[arg(long)]
        wait: bool,
    },
    /// Settle several legs atomically (DvP, PvP, security versus security): every source
    /// account's owner signs.
    Bundle {
        /// A signing party; repeat for each owner of a source account. The first submits.
        #[arg(long = "as", required = true)]
        signers: Vec<String>,
        /// A leg `SOURCE:TARGET:ASSET:QUANTITY`; repeat for each leg.
        #[arg(long = "leg", required = true)]
        legs: Vec<String>,
        #[arg(long)]
        wait: bool,
    },
    /// Name the validators of the next epoch (governors sign, at the governance threshold).
    /// The set takes effect after the last block of the epoch the transaction lands in.
    SetValidators {
        /// A signing governor; repeat up to the governance threshold. The first submits.
        #[arg(long = "as", required = true)]
        signers: Vec<String>,
        /// A validator's consensus key `ed25519:<hex>` (its node.key's public key); repeat for
        /// every member of the new set.
        #[arg(long = "validator", required = true)]
        validators: Vec<String>,
        #[arg(long)]
        wait: bool,
    },
    /// Repo and securities lending: register, approve, start, mark, mature, substitute...
    Repo {
        #[command(subcommand)]
        command: RepoCommand,
    },
    /// Publish closing prices and FX rates of a business date (the price oracle signs);
    /// `--close` declares the date complete and marks every open contract to it.
    Prices {
        #[arg(long = "as")]
        signer: String,
        /// The business date `YYYYMMDD`.
        #[arg(long)]
        date: u32,
        /// `ASSET=PRICE` in the asset's currency (bonds per 100 face); repeat.
        #[arg(long = "price")]
        prices: Vec<String>,
        /// `BASE/QUOTE=RATE`, e.g. `EUR/USD=1.09253`; repeat.
        #[arg(long = "fx")]
        rates: Vec<String>,
        #[arg(long)]
        close: bool,
        #[arg(long)]
        wait: bool,
    },
    /// Issue new units of an asset into an account (its token administrator signs).
    Issue {
        #[arg(long = "as")]
        signer: String,
        #[arg(long)]
        to: String,
        #[arg(long)]
        asset: String,
        #[arg(long)]
        quantity: u128,
        #[arg(long)]
        wait: bool,
    },
}

/// A lifecycle step of a repo contract.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Step {
    /// The counterparty accepts the terms.
    Approve,
    /// The counterparty declines.
    Reject,
    /// Either party withdraws before the start.
    Cancel,
    /// Settle the opening legs (at or after the start time).
    Start,
    /// Mark to the latest closed prices now; refused when no margin call is due.
    Mark,
    /// Settle the closing legs with the fee (at or after maturity; any time if open).
    Mature,
    /// End early: both parties sign.
    Terminate,
    /// The lender keeps the collateral of a contract in default.
    CloseOut,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum DayCountArg {
    Act360,
    Act365f,
}

#[derive(Subcommand)]
enum RepoCommand {
    /// Propose a repo or securities-lending contract; its id (the transaction id) names it.
    Register {
        /// The proposing party (the lender or the borrower).
        #[arg(long = "as")]
        signer: String,
        /// `PARTY:ACCOUNT` delivering the principal and receiving collateral and fee.
        #[arg(long)]
        lender: String,
        /// `PARTY:ACCOUNT` receiving the principal, delivering collateral, paying the fee.
        #[arg(long)]
        borrower: String,
        /// `ASSET:QUANTITY` of the principal leg (a security or cash).
        #[arg(long)]
        principal: String,
        /// `ASSET` or `ASSET:WEIGHT_BPS`; repeat for a basket (weights add up to 10000).
        #[arg(long = "collateral", required = true)]
        collateral: Vec<String>,
        /// The valuation currency.
        #[arg(long)]
        currency: String,
        #[arg(long, default_value_t = 0)]
        haircut_bps: u32,
        /// Margin threshold in basis points of the exposure; 0 calls on any difference.
        #[arg(long, default_value_t = 0)]
        threshold_bps: u32,
        /// Start time, Unix milliseconds (default: now).
        #[arg(long)]
        start_ms: Option<u64>,
        /// Term from the start: `1d`, `7d`, `21d`, `4h`, ... or `open` for an open contract.
        #[arg(long)]
        term: String,
        /// Repo rate or lending fee per year as an exact decimal (0.001 = 0.1 %).
        #[arg(long)]
        rate: String,
        #[arg(long, value_enum, default_value = "act365f")]
        day_count: DayCountArg,
        /// The cash token, in the valuation currency, the fee is paid in.
        #[arg(long)]
        fee_asset: String,
        /// How long the counterparty has to approve: `30m`, `1h`, `1d`, ...
        #[arg(long, default_value = "1h")]
        offer_valid: String,
        #[arg(long)]
        wait: bool,
    },
    /// A lifecycle step of a contract.
    Step {
        #[arg(value_enum)]
        step: Step,
        /// The contract id (the id of its registering transaction).
        contract: String,
        /// A signing party; `terminate` needs both parties. The first submits.
        #[arg(long = "as", required = true)]
        signers: Vec<String>,
        #[arg(long)]
        wait: bool,
    },
    /// Replace one collateral asset by another (borrower and lender both sign).
    Substitute {
        contract: String,
        #[arg(long = "as", required = true)]
        signers: Vec<String>,
        #[arg(long)]
        remove: String,
        #[arg(long)]
        add: String,
        #[arg(long)]
        quantity: u128,
        #[arg(long)]
        wait: bool,
    },
}

#[derive(Subcommand)]
enum QueryCommand {
    /// Height, state root and mempool of the node.
    Status,
    /// The running epoch, its validators, and the next epoch's once named.
    Validators,
    /// A balance; with --prove, fetch its Merkle proof and verify it here.
    Balance {
        account: String,
        asset: String,
        #[arg(long)]
        prove: bool,
    },
    /// A transaction's status and outcome.
    Tx {
        id: String,
    },
    /// A finalized block (the latest without a height).
    Block {
        height: Option<u64>,
    },
    Party {
        id: String,
    },
    Asset {
        id: String,
    },
    Account {
        id: String,
    },
    /// The open repo contracts, the latest closed price date, the marking in progress.
    Repos,
    /// A repo contract.
    Repo {
        id: String,
    },
    /// A repo contract's events.
    RepoEvents {
        id: String,
        #[arg(long, default_value_t = 0)]
        from: u32,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,commonware_consensus=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Node { config } => node::run(&config),
        Command::Init { network } => {
            devnet::init(&init_options(network))?;
            println!("network written");
            Ok(())
        }
        Command::Devnet { network } => runtime()?.block_on(devnet::devnet(init_options(network))),
        Command::Tx { client, command } => runtime()?.block_on(tx(client, command)),
        Command::Query { client, command } => runtime()?.block_on(query(client, command)),
        Command::Sim(args) => kessai::sim::run(args),
        Command::Bench {
            apis,
            keystore,
            load,
            report,
            postgres,
        } => {
            load.check()?;
            if postgres.is_some() {
                load.check_baseline()?;
            }
            let apis = if apis.is_empty() {
                (0..4)
                    .map(|i| format!("http://127.0.0.1:{}", 7200 + i))
                    .collect()
            } else {
                apis
            };
            let options = kessai::bench::BenchOptions {
                apis,
                keys: keystore::Keystore::open(&keystore, &keystore::passphrase()?)?,
                load,
                progress: true,
            };
            let runtime = runtime()?;
            if !options.load.rates.is_empty() {
                let sweep = runtime.block_on(kessai::bench::sweep(options))?;
                print!("{}", kessai::bench::sweep_table(&sweep));
                if let Some(path) = report {
                    std::fs::write(&path, serde_json::to_string_pretty(&sweep)?)?;
                }
                return Ok(());
            }
            let (kessai, options) = runtime.block_on(kessai::bench::run(options))?;
            print!("{}", kessai::bench::table(&kessai));
            let value = match postgres {
                Some(url) => {
                    let baseline = runtime.block_on(kessai::baseline::run(&url, &options))?;
                    print!("{}", kessai::bench::comparison(&kessai, &baseline));
                    serde_json::json!({"kessai": kessai, "postgresql": baseline})
                }
                None => kessai,
            };
            if let Some(path) = report {
                std::fs::write(&path, serde_json::to_string_pretty(&value)?)?;
            }
            Ok(())
        }
    }
}

fn init_options(network: NetworkArgs) -> devnet::InitOptions {
    devnet::InitOptions {
        dir: network.dir,
        validators: network.validators,
        standby: network.standby,
        observers: network.observers,
        epoch_blocks: network.epoch_blocks,
        base_port: network.base_port,
        passphrase: network.passphrase,
        bench_accounts: network.bench_accounts,
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// An id as one URL path segment: ids may contain `/` (e.g. `BANK-A/CASH`).
fn segment(id: &str) -> String {
    id.replace('%', "%25").replace('/', "%2F")
}

async fn get(client: &ClientArgs, path: &str) -> anyhow::Result<Value> {
    let response = reqwest::get(format!("{}{path}", client.api.trim_end_matches('/'))).await?;
    let status = response.status();
    let body: Value = response.json().await?;
    if !status.is_success() {
        anyhow::bail!("{status}: {} {}", body["code"], body["message"]);
    }
    Ok(body)
}

fn print(value: &Value) {
    println!("{}", serde_json::to_string_pretty(value).expect("json"));
}

fn parse_leg(text: &str) -> anyhow::Result<Leg> {
    let parts: Vec<&str> = text.split(':').collect();
    let [source, target, asset, quantity] = parts.as_slice() else {
        anyhow::bail!("leg {text:?} is not SOURCE:TARGET:ASSET:QUANTITY");
    };
    Ok(Leg {
        source: AccountId::new(source)?,
        target: AccountId::new(target)?,
        asset: AssetId::new(asset)?,
        quantity: quantity
            .parse()
            .map_err(|e| anyhow::anyhow!("leg {text:?}: quantity: {e}"))?,
    })
}

fn split<'a>(text: &'a str, separator: char, form: &str) -> anyhow::Result<(&'a str, &'a str)> {
    text.split_once(separator)
        .ok_or_else(|| anyhow::anyhow!("{text:?} is not {form}"))
}

fn now_ms() -> anyhow::Result<u64> {
    Ok(SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)?
        .as_millis() as u64)
}

/// `90s`, `30m`, `4h`, `7d` in milliseconds.
fn duration_ms(text: &str) -> anyhow::Result<u64> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => anyhow::bail!("{text:?} is not a duration like 90s, 30m, 4h or 7d"),
    };
    number
        .parse::<u64>()?
        .checked_mul(unit)
        .ok_or_else(|| anyhow::anyhow!("{text:?} is too long"))
}

fn contract_id(text: &str) -> anyhow::Result<TxId> {
    text.parse()
        .map_err(|e| anyhow::anyhow!("contract id {text:?}: {e}"))
}

type Submission = (Vec<String>, Operation, bool);

fn repo_operation(command: RepoCommand) -> anyhow::Result<Submission> {
    Ok(match command {
        RepoCommand::Register {
            signer,
            lender,
            borrower,
            principal,
            collateral,
            currency,
            haircut_bps,
            threshold_bps,
            start_ms,
            term,
            rate,
            day_count,
            fee_asset,
            offer_valid,
            wait,
        } => {
            let (lender, lender_account) = split(&lender, ':', "PARTY:ACCOUNT")?;
            let (borrower, borrower_account) = split(&borrower, ':', "PARTY:ACCOUNT")?;
            let (principal_asset, principal_quantity) = split(&principal, ':', "ASSET:QUANTITY")?;
            let start_ms = match start_ms {
                Some(start) => start,
                None => now_ms()?,
            };
            let single = collateral.len() == 1;
            let terms = RepoTerms {
                lender: PartyId::new(lender)?,
                lender_account: AccountId::new(lender_account)?,
                borrower: PartyId::new(borrower)?,
                borrower_account: AccountId::new(borrower_account)?,
                principal_asset: AssetId::new(principal_asset)?,
                principal_quantity: principal_quantity.parse()?,
                collateral: collateral
                    .iter()
                    .map(|item| {
                        let (asset, weight) = match item.split_once(':') {
                            Some((asset, weight)) => (asset, weight.parse()?),
                            None if single => (item.as_str(), 10_000),
                            None => anyhow::bail!("{item:?}: a basket needs ASSET:WEIGHT_BPS"),
                        };
                        Ok(CollateralWeight {
                            asset: AssetId::new(asset)?,
                            weight_bps: weight,
                        })
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?
                    .into(),
                valuation_currency: currency.parse()?,
                haircut_bps,
                threshold_bps,
                start_ms,
                maturity_ms: match term.as_str() {
                    "open" => None,
                    term => Some(
                        start_ms
                            .checked_add(duration_ms(term)?)
                            .ok_or_else(|| anyhow::anyhow!("--term {term:?} is too long"))?,
                    ),
                },
                rate: rate.parse()?,
                day_count: match day_count {
                    DayCountArg::Act360 => DayCount::Act360,
                    DayCountArg::Act365f => DayCount::Act365Fixed,
                },
                fee_asset: AssetId::new(&fee_asset)?,
                offer_expiry_ms: now_ms()?
                    .checked_add(duration_ms(&offer_valid)?)
                    .ok_or_else(|| anyhow::anyhow!("--offer-valid is too long"))?,
            };
            (vec![signer], Operation::RegisterRepo(terms), wait)
        }
        RepoCommand::Step {
            step,
            contract,
            signers,
            wait,
        } => {
            let step = match step {
                Step::Approve => RepoStep::Approve,
                Step::Reject => RepoStep::Reject,
                Step::Cancel => RepoStep::Cancel,
                Step::Start => RepoStep::Start,
                Step::Mark => RepoStep::Mark,
                Step::Mature => RepoStep::Mature,
                Step::Terminate => RepoStep::Terminate,
                Step::CloseOut => RepoStep::CloseOut,
            };
            let contract = contract_id(&contract)?;
            let action = RepoAction { contract, step };
            (signers, Operation::RepoAction(action), wait)
        }
        RepoCommand::Substitute {
            contract,
            signers,
            remove,
            add,
            quantity,
            wait,
        } => {
            let substitution = SubstituteCollateral {
                contract: contract_id(&contract)?,
                remove: AssetId::new(&remove)?,
                add: AssetId::new(&add)?,
                quantity,
            };
            (signers, Operation::SubstituteCollateral(substitution), wait)
        }
    })
}

async fn tx(client: ClientArgs, command: TxCommand) -> anyhow::Result<()> {
    let (signers, operation, wait) = match command {
        TxCommand::Bundle {
            signers,
            legs,
            wait,
        } => (
            signers,
            Operation::Bundle(Bundle {
                legs: legs
                    .iter()
                    .map(|leg| parse_leg(leg))
                    .collect::<anyhow::Result<_>>()?,
            }),
            wait,
        ),
        TxCommand::SetValidators {
            signers,
            validators,
            wait,
        } => (
            signers,
            Operation::SetValidators(SetValidators {
                validators: validators
                    .iter()
                    .map(|key| {
                        key.parse()
                            .map_err(|e| anyhow::anyhow!("--validator {key}: {e}"))
                    })
                    .collect::<anyhow::Result<_>>()?,
            }),
            wait,
        ),
        TxCommand::Transfer {
            signer,
            from,
            to,
            asset,
            quantity,
            wait,
        } => (
            vec![signer],
            Operation::Transfer(Leg {
                source: AccountId::new(&from)?,
                target: AccountId::new(&to)?,
                asset: AssetId::new(&asset)?,
                quantity,
            }),
            wait,
        ),
        TxCommand::Repo { command } => repo_operation(command)?,
        TxCommand::Prices {
            signer,
            date,
            prices,
            rates,
            close,
            wait,
        } => (
            vec![signer],
            Operation::PublishPrices(PublishPrices {
                date,
                prices: prices
                    .iter()
                    .map(|entry| {
                        let (asset, price) = split(entry, '=', "ASSET=PRICE")?;
                        Ok(PriceEntry {
                            asset: AssetId::new(asset)?,
                            price: price.parse()?,
                        })
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?
                    .into(),
                rates: rates
                    .iter()
                    .map(|entry| {
                        let (pair, rate) = split(entry, '=', "BASE/QUOTE=RATE")?;
                        let (base, quote) = split(pair, '/', "BASE/QUOTE=RATE")?;
                        Ok(FxEntry {
                            base: base.parse()?,
                            quote: quote.parse()?,
                            rate: rate.parse()?,
                        })
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?
                    .into(),
                close,
            }),
            wait,
        ),
        TxCommand::Issue {
            signer,
            to,
            asset,
            quantity,
            wait,
        } => (
            vec![signer],
            Operation::Issue(SupplyChange {
                asset: AssetId::new(&asset)?,
                account: AccountId::new(&to)?,
                quantity,
            }),
            wait,
        ),
    };
    let status = get(&client, "/v1/status").await?;
    let network = status["network"]
        .as_u64()
        .ok_or_else(|| anyhow::anyhow!("the node's status has no network id"))?
        as u32;
    let keys = keystore::Keystore::open(&client.keystore, &keystore::passphrase()?)?;
    let signers = signers
        .iter()
        .map(|signer| Ok((PartyId::new(signer)?, keys.key(PartyId::new(signer)?)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let now = now_ms()?;
    let body = TxBody {
        network,
        submitter: signers[0].0,
        unique_id: UniqueId(rand::random()),
        expiry: Expiry::TimeMs(now + 10 * 60 * 1000),
        operation,
    };
    let transaction = Transaction::sign(body, &signers);
    let hex = kessai_types::hex::encode(&transaction.encode());
    let url = format!(
        "{}/v1/transactions{}",
        client.api.trim_end_matches('/'),
        if wait { "?wait=true" } else { "" }
    );
    let response = reqwest::Client::new()
        .post(url)
        .json(&serde_json::json!({ "transaction": hex }))
        .send()
        .await?;
    let status = response.status();
    let body: Value = response.json().await?;
    print(&body);
    if !status.is_success() {
        anyhow::bail!("refused: {}", body["code"]);
    }
    Ok(())
}

async fn query(client: ClientArgs, command: QueryCommand) -> anyhow::Result<()> {
    let value = match command {
        QueryCommand::Status => get(&client, "/v1/status").await?,
        QueryCommand::Validators => get(&client, "/v1/validators").await?,
        QueryCommand::Balance {
            account,
            asset,
            prove: false,
        } => {
            get(
                &client,
                &format!(
                    "/v1/accounts/{}/balances/{}",
                    segment(&account),
                    segment(&asset)
                ),
            )
            .await?
        }
        QueryCommand::Balance {
            account,
            asset,
            prove: true,
        } => {
            let mut body = get(
                &client,
                &format!(
                    "/v1/accounts/{}/balances/{}/proof",
                    segment(&account),
                    segment(&asset)
                ),
            )
            .await?;
            let verified = verify_balance_proof(&body)?;
            body["proof_verified_locally"] = Value::Bool(verified);
            if !verified {
                print(&body);
                anyhow::bail!("the proof does NOT verify against the state root");
            }
            body
        }
        QueryCommand::Tx { id } => get(&client, &format!("/v1/transactions/{id}")).await?,
        QueryCommand::Block {
            height: Some(height),
        } => get(&client, &format!("/v1/blocks/{height}")).await?,
        QueryCommand::Block { height: None } => get(&client, "/v1/blocks/latest").await?,
        QueryCommand::Party { id } => {
            get(&client, &format!("/v1/parties/{}", segment(&id))).await?
        }
        QueryCommand::Asset { id } => get(&client, &format!("/v1/assets/{}", segment(&id))).await?,
        QueryCommand::Account { id } => {
            get(&client, &format!("/v1/accounts/{}", segment(&id))).await?
        }
        QueryCommand::Repos => get(&client, "/v1/repos").await?,
        QueryCommand::Repo { id } => get(&client, &format!("/v1/repos/{id}")).await?,
        QueryCommand::RepoEvents { id, from, limit } => {
            get(
                &client,
                &format!("/v1/repos/{id}/events?from={from}&limit={limit}"),
            )
            .await?
        }
    };
    print(&value);
    Ok(())
}

/// Check a balance proof from the API without trusting the node: the key and value decode, the
/// value matches the reported balance, and the proof ties them to the reported state root.
fn verify_balance_proof(body: &Value) -> anyhow::Result<bool> {
    let field = |name: &str| -> anyhow::Result<Vec<u8>> {
        let text = body[name]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("proof response lacks {name}"))?;
        kessai_types::hex::decode(text).ok_or_else(|| anyhow::anyhow!("{name} is not hex"))
    };
    let key = kessai_state::StateKey::Balance(
        AccountId::new(body["account"].as_str().unwrap_or_default())?,
        AssetId::new(body["asset"].as_str().unwrap_or_default())?,
    );
    let value = kessai_state::StateValue::decode(&field("value")?)?;
    let proof = kessai_storage::decode_proof(&field("proof")?)?;
    let root: kessai_types::Hash32 = body["state_root"]
        .as_str()
        .unwrap_or_default()
        .parse()
        .map_err(|e| anyhow::anyhow!("state_root: {e}"))?;
    let kessai_state::StateValue::Balance(balance) = &value else {
        return Ok(false);
    };
    let reported = body["available"].as_str() == Some(&balance.available.to_string());
    Ok(reported && kessai_storage::verify_proof(&root, &key, &value, &proof))
}
