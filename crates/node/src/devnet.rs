//! `kessai init` and `kessai devnet`: generate a network's keys, genesis and node configs, and
//! run a local 4-validator network of real processes.

use crate::{
    config::{
        ApiSection, ConsensusSection, MempoolSection, NodeConfig, NodeRole, NodeSection,
        P2pSection, Peer,
    },
    genesis::{
        AccountEntry, AssetEntry, BalanceEntry, ChainSection, GenesisFile, PartyEntry,
        ValidatorEntry,
    },
    keystore::Keystore,
};
use kessai_types::{PartyId, PrivateKey};
use std::{
    net::{Ipv4Addr, SocketAddr},
    path::PathBuf,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// What `kessai init` generates.
pub struct InitOptions {
    pub dir: PathBuf,
    pub validators: usize,
    /// Nodes that run as validators but are not in the genesis set: governance can add them.
    pub standby: usize,
    pub observers: usize,
    /// Blocks per epoch.
    pub epoch_blocks: u64,
    pub base_port: u16,
    pub passphrase: String,
    /// Bench accounts `BENCH/0..N` written by the genesis (its synthetic-accounts section), so
    /// that `kessai bench --accounts N` needs no setup.
    pub bench_accounts: u64,
}

/// The demo parties: (id, roles).
const DEMO_PARTIES: [(&str, &[&str]); 7] = [
    ("GOVERNOR", &["network-governor"]),
    ("BOJ", &["token-administrator"]),
    ("CSD", &["token-administrator", "account-opening-agent"]),
    ("BANK-A", &["participant"]),
    ("BANK-B", &["participant"]),
    ("CCP", &["participant", "central-counterparty"]),
    ("ORACLE", &["price-oracle"]),
];

fn demo_ledger(
    keys: &[(PartyId, PrivateKey)],
) -> (
    Vec<PartyEntry>,
    Vec<AssetEntry>,
    Vec<AccountEntry>,
    Vec<BalanceEntry>,
) {
    let parties = DEMO_PARTIES
        .iter()
        .zip(keys)
        .map(|((id, roles), (_, key))| PartyEntry {
            id: id.to_string(),
            public_key: key.public_key().to_string(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
        })
        .collect();
    let asset = |id: &str, class: &str, currency: &str, administrator: &str| AssetEntry {
        id: id.into(),
        class: class.into(),
        currency: Some(currency.into()),
        minor_unit_exponent: (class == "cash").then_some(if currency == "JPY" { 0 } else { 2 }),
        unit: None,
        administrator: administrator.into(),
        kyc_required: false,
    };
    // The brief's sample repo needs Bunds, a US stock and US dollars beside the yen assets.
    let assets = vec![
        asset("JPY", "cash", "JPY", "BOJ"),
        asset("JGB-10Y", "bond", "JPY", "CSD"),
        asset("TOYOTA", "equity", "JPY", "CSD"),
        asset("USD", "cash", "USD", "CSD"),
        asset("DE-BUND", "bond", "EUR", "CSD"),
        asset("US-STOCK", "equity", "USD", "CSD"),
    ];
    let mut accounts = Vec::new();
    let mut balances = Vec::new();
    for owner in ["BANK-A", "BANK-B", "CCP"] {
        for (suffix, asset, quantity) in [
            ("CASH", "JPY", "10000000000"),
            ("CASH", "USD", "100000000"),
            ("SEC", "JGB-10Y", "5000000000"),
            ("SEC", "TOYOTA", "1000000"),
            ("SEC", "DE-BUND", "100000000"),
            ("SEC", "US-STOCK", "1000000"),
        ] {
            let id = format!("{owner}/{suffix}");
            if !accounts.iter().any(|a: &AccountEntry| a.id == id) {
                accounts.push(AccountEntry {
                    id: id.clone(),
                    owner: owner.into(),
                });
            }
            balances.push(BalanceEntry {
                account: id,
                asset: asset.into(),
                quantity: quantity.into(),
            });
        }
    }
    (parties, assets, accounts, balances)
}

fn localhost(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

impl InitOptions {
    /// How many nodes the network has.
    pub fn nodes(&self) -> usize {
        self.validators + self.standby + self.observers
    }

    /// The folder of node `index`: genesis validators first, then standby validators, then
    /// observers.
    pub fn node_dir(&self, index: usize) -> PathBuf {
        let standby = self.validators + self.standby;
        if index < self.validators {
            self.dir.join(format!("validator-{index}"))
        } else if index < standby {
            self.dir
                .join(format!("standby-{}", index - self.validators))
        } else {
            self.dir.join(format!("observer-{}", index - standby))
        }
    }
}

pub fn api_port(base_port: u16, index: usize) -> u16 {
    base_port + 100 + index as u16
}

/// Generate keys, genesis, node configs and the demo keystore under `options.dir`.
pub fn init(options: &InitOptions) -> anyhow::Result<()> {
    let dir = &options.dir;
    if dir.join("genesis.toml").exists() {
        anyhow::bail!("{} already holds a network; remove it first", dir.display());
    }
    std::fs::create_dir_all(dir)?;
    let nodes = options.nodes();
    let node_keys: Vec<PrivateKey> = (0..nodes).map(|_| PrivateKey::generate()).collect();
    let party_keys: Vec<(PartyId, PrivateKey)> = DEMO_PARTIES
        .iter()
        .map(|(id, _)| (PartyId::new(id).expect("valid id"), PrivateKey::generate()))
        .collect();
    let (parties, assets, accounts, balances) = demo_ledger(&party_keys);
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as u64;
    let genesis = GenesisFile {
        chain: ChainSection {
            network: 1,
            time_ms: now,
            governance_threshold: 1,
            bundle_legs_max: 100,
            block_transactions_max: 20_000,
            expiry_horizon_ms: 24 * 60 * 60 * 1000,
            expiry_horizon_blocks: 100_000,
            epoch_blocks: options.epoch_blocks,
        },
        validators: (0..options.validators)
            .map(|i| ValidatorEntry {
                name: format!("validator-{i}"),
                public_key: node_keys[i].public_key().to_string(),
            })
            .collect(),
        parties,
        assets,
        accounts,
        balances,
        synthetic_accounts: (options.bench_accounts > 0)
            .then(|| crate::bench::genesis_accounts(options.bench_accounts)),
    };
    genesis.to_genesis()?;
    std::fs::write(dir.join("genesis.toml"), toml::to_string(&genesis)?)?;
    let peers: Vec<Peer> = (0..nodes)
        .map(|i| Peer {
            public_key: node_keys[i].public_key().to_string(),
            address: localhost(options.base_port + i as u16),
        })
        .collect();
    for (index, key) in node_keys.iter().enumerate() {
        let node_dir = options.node_dir(index);
        std::fs::create_dir_all(&node_dir)?;
        std::fs::write(node_dir.join("node.key"), key.to_text() + "\n")?;
        let config = NodeConfig {
            node: NodeSection {
                role: if index < options.validators + options.standby {
                    NodeRole::Validator
                } else {
                    NodeRole::Observer
                },
                key_file: "node.key".into(),
                genesis_file: "../genesis.toml".into(),
                data_dir: "data".into(),
                worker_threads: 2,
                page_cache_pages: 16_384,
            },
            p2p: P2pSection {
                listen: localhost(options.base_port + index as u16),
                peers: peers.clone(),
            },
            api: ApiSection {
                listen: localhost(api_port(options.base_port, index)),
                request_bytes_max: 4 * 1024 * 1024,
                wait_timeout_ms: 30_000,
            },
            mempool: MempoolSection::default(),
            consensus: ConsensusSection::default(),
        };
        std::fs::write(node_dir.join("node.toml"), toml::to_string(&config)?)?;
    }
    Keystore { keys: party_keys }.save(&dir.join("keystore.json"), &options.passphrase)?;
    Ok(())
}

/// The synthetic accounts of the network's genesis in `dir`.
fn genesis_accounts(dir: &std::path::Path) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(dir.join("genesis.toml"))?;
    let genesis: GenesisFile = toml::from_str(&text)?;
    Ok(genesis
        .synthetic_accounts
        .map_or(0, |section| section.count))
}

/// Run `init` if needed, start every node as a child process, wait for them to be ready, print
/// their addresses, and stop them all on Ctrl-C (or when one dies).
pub async fn devnet(options: InitOptions) -> anyhow::Result<()> {
    let dir = options.dir.clone();
    if !dir.join("genesis.toml").exists() {
        init(&options)?;
        println!(
            "created a {}-validator network in {}",
            options.validators,
            dir.display()
        );
    } else {
        println!(
            "reusing the network in {} (delete it for a fresh one)",
            dir.display()
        );
        let existing = genesis_accounts(&dir)?;
        if options.bench_accounts > 0 && options.bench_accounts != existing {
            println!(
                "  --bench-accounts {} ignored: its genesis has {existing} bench accounts",
                options.bench_accounts
            );
        }
    }
    let bench_accounts = genesis_accounts(&dir)?;
    if bench_accounts > 0 {
        println!(
            "the genesis holds bench accounts {}/0..{bench_accounts} (a new node writes them \
             before it is ready)",
            crate::bench::ACCOUNT_PREFIX
        );
    }
    let exe = std::env::current_exe()?;
    let mut children = Vec::new();
    let nodes = options.nodes();
    for index in 0..nodes {
        let node_dir = options.node_dir(index);
        let log = std::fs::File::create(node_dir.join("node.log"))?;
        let child = tokio::process::Command::new(&exe)
            .arg("node")
            .arg("--config")
            .arg(node_dir.join("node.toml"))
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()?;
        children.push(child);
    }
    let client = reqwest::Client::new();
    // Each node writes the genesis before it is ready: bench accounts take about a second per
    // 10,000 accounts when four nodes share two cores.
    let ready_within = Duration::from_secs(120 + genesis_accounts(&dir)? / 5_000);
    let deadline = tokio::time::Instant::now() + ready_within;
    for (index, child) in children.iter_mut().enumerate() {
        let url = format!(
            "http://{}/ready",
            localhost(api_port(options.base_port, index))
        );
        loop {
            if let Ok(response) = client.get(&url).send().await
                && response.status().is_success()
            {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!(
                    "node {index} not ready after {} s; see {}",
                    ready_within.as_secs(),
                    options.node_dir(index).join("node.log").display()
                );
            }
            if let Some(status) = child.try_wait()? {
                anyhow::bail!(
                    "node {index} exited ({status}); see {}",
                    options.node_dir(index).join("node.log").display()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    println!(
        "\nKessai devnet is running: {} validators{}{}",
        options.validators,
        if options.standby > 0 {
            format!(", {} standby validators", options.standby)
        } else {
            String::new()
        },
        if options.observers > 0 {
            format!(", {} observers", options.observers)
        } else {
            String::new()
        }
    );
    for index in 0..nodes {
        let node_dir = options.node_dir(index);
        let key = crate::node::read_key(&node_dir.join("node.key"))?.public_key();
        println!(
            "  {:<12} API http://{}  p2p {}  log {}\n  {:<12} key {key}",
            node_dir.file_name().unwrap_or_default().to_string_lossy(),
            localhost(api_port(options.base_port, index)),
            localhost(options.base_port + index as u16),
            node_dir.join("node.log").display(),
            "",
        );
    }
    let api = format!("http://{}", localhost(api_port(options.base_port, 0)));
    let keystore = dir.join("keystore.json");
    println!(
        "\nDemo parties BANK-A, BANK-B, CCP hold JPY, USD, JGB-10Y, DE-BUND, TOYOTA and US-STOCK in accounts like BANK-A/CASH, BANK-A/SEC;\nORACLE publishes prices (the README walks through the brief's sample repo).\n\
         Try, in another terminal:\n  \
         export KESSAI_API={api} KESSAI_KEYSTORE={} KESSAI_KEYSTORE_PASSPHRASE={}\n  \
         kessai tx transfer --as BANK-A --from BANK-A/CASH --to BANK-B/CASH --asset JPY --quantity 1000 --wait\n  \
         kessai query balance BANK-B/CASH JPY --prove\n\
         Press Ctrl-C to stop.",
        keystore.display(),
        options.passphrase
    );
    let stopped = async {
        loop {
            for (index, child) in children.iter_mut().enumerate() {
                if let Ok(Some(status)) = child.try_wait() {
                    return (index, status);
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => println!("\nstopping"),
        _ = terminate.recv() => println!("terminated; stopping"),
        (index, status) = stopped => println!("node {index} exited ({status}); stopping the others"),
    }
    // Ask each node to stop (SIGTERM), then make sure.
    for child in &children {
        if let Some(pid) = child.id() {
            let _ = std::process::Command::new("kill")
                .arg(pid.to_string())
                .status();
        }
    }
    for child in &mut children {
        if tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .is_err()
        {
            let _ = child.start_kill();
        }
    }
    for child in &mut children {
        let _ = child.wait().await;
    }
    println!("stopped; the ledger stays in {}", dir.display());
    Ok(())
}
