//! `kessai bench`: market-scale load against a running network, through its public API.
//!
//! Every transaction is generated and signed before the timed window (the signing cost is
//! reported apart). Finality is observed on the event stream of the first node: a transaction's
//! latency runs from the moment its request is sent to the moment the block that carries it
//! arrives on the stream. Closed loop: `concurrency` clients each send a request and wait until
//! all of its transactions are final. Open loop: requests leave at a fixed rate whatever
//! happens, so queueing shows in the latency.
//!
//! A setup phase (not measured) opens the bench accounts `BENCH/0..N`, owned in turn by the
//! demo participants, and funds each with JPY and JGB-10Y; it opens only those missing. For
//! millions of accounts, `kessai devnet --bench-accounts N` writes the same accounts in the
//! genesis instead ([`genesis_accounts`]): three transactions an account would take hours.
//!
//! The `repo` workload (see `repo.rs`) times its contracts' starts like any workload, then the
//! margin-call burst of the next closed business date apart.
//!
//! `--rates a,b,c` repeats an open-loop run at each offered rate: latency against load.

use crate::keystore::Keystore;
use commonware_codec::Encode;
use futures::StreamExt as _;
use kessai_types::{
    AccountId, AssetId, Bundle, Expiry, Leg, OpenAccount, Operation, PartyId, PrivateKey,
    SupplyChange, Transaction, TxBody, UniqueId,
};
use serde_json::{Value, json};
use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};
use tokio::sync::Notify;

mod repo;

/// The demo participants that own the bench accounts, in turn.
pub const OWNERS: [&str; 3] = ["BANK-A", "BANK-B", "CCP"];
/// The bench accounts are `BENCH/0..N`.
pub const ACCOUNT_PREFIX: &str = "BENCH";
/// Opening balances of every bench account.
pub const OPENING_JPY: u128 = 1_000_000_000_000;
pub const OPENING_JGB: u128 = 1_000_000_000;
/// Legs of a bulk bundle.
pub const BULK_LEGS: usize = 50;
/// Transactions per setup request (the API's batch limit).
const SETUP_BATCH: usize = 10_000;
/// Hex bytes of transactions per setup request: within the API's default body limit (4 MiB).
const SETUP_REQUEST_BYTES: usize = 3 * 1024 * 1024;
/// Setup requests not yet final at any time.
const SETUP_IN_FLIGHT: usize = 4;

/// What each transaction of a run does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// One JPY transfer between two accounts drawn uniformly.
    Transfer,
    /// One JPY transfer with the hot account `BENCH/0` on one side (a CCP or cash agent).
    Hot,
    /// Delivery versus payment: JGB-10Y one way, JPY the other, two owners sign.
    Dvp,
    /// A bundle of 50 transfers between accounts drawn uniformly, settling all or nothing.
    Bulk,
    /// `count` securities loans started (timed), then a margin-call burst on the third of
    /// them whose collateral's price moves (timed apart). Kessai only.
    Repo,
}

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::Transfer => "transfer",
            Workload::Hot => "hot",
            Workload::Dvp => "dvp",
            Workload::Bulk => "bulk",
            Workload::Repo => "repo",
        }
    }
}

/// What to run: the same for Kessai and for the PostgreSQL baseline.
#[derive(Clone, Debug, clap::Args)]
pub struct Load {
    #[arg(long, value_enum, default_value = "transfer")]
    pub workload: Workload,
    /// Bench accounts `BENCH/0..N`, opened and funded by the setup phase if missing.
    #[arg(long, default_value_t = 10_000)]
    pub accounts: usize,
    /// Transactions in the timed run.
    #[arg(long, default_value_t = 20_000)]
    pub count: usize,
    /// Closed loop: clients; open loop: the most requests in flight.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Offered transactions per second (open loop); without it, closed loop.
    #[arg(long, conflicts_with = "rates")]
    pub rate: Option<f64>,
    /// Open-loop runs at each of these offered rates in turn (e.g. `500,1000,2000,4000`), then
    /// one table of latency against rate (Kessai only).
    #[arg(long, value_delimiter = ',')]
    pub rates: Vec<f64>,
    /// Transactions per request (above 1, the batch endpoint; Kessai only).
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Seconds to wait for the last transactions to become final.
    #[arg(long, default_value_t = 120)]
    pub timeout_secs: u64,
}

impl Load {
    /// Every bound checked before anything is signed or sent.
    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.accounts >= 2, "--accounts: at least 2");
        anyhow::ensure!(self.concurrency >= 1, "--concurrency: at least 1");
        anyhow::ensure!(
            (1..=crate::api::BATCH_TRANSACTIONS_MAX).contains(&self.batch),
            "--batch: 1 to {} transactions per request (the API's limit)",
            crate::api::BATCH_TRANSACTIONS_MAX
        );
        for rate in self.rate.iter().chain(&self.rates) {
            anyhow::ensure!(rate.is_finite() && *rate > 0.0, "--rate: a positive number");
        }
        if self.workload == Workload::Repo {
            anyhow::ensure!(self.count >= 1, "--count: at least one repo contract");
        }
        Ok(())
    }

    /// What the PostgreSQL baseline cannot run.
    pub fn check_baseline(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.workload != Workload::Repo,
            "--postgres: the baseline has no repo contracts; run --workload repo without it"
        );
        anyhow::ensure!(
            self.rates.is_empty(),
            "--postgres: one rate at a time (--rate), not a sweep (--rates)"
        );
        Ok(())
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

pub struct BenchOptions {
    /// The nodes' APIs: requests go to them in turn; the first one's event stream is watched.
    pub apis: Vec<String>,
    pub keys: Keystore,
    pub load: Load,
    pub progress: bool,
}

/// The workload generator's SplitMix64 sequence from a seed, so that a run can be repeated.
pub struct Mix(pub u64);
impl Mix {
    pub fn next(&mut self) -> u64 {
        let value = kessai_state::workload::mix(self.0);
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        value
    }
    pub fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}

/// A seller and a buyer of different owners (a DvP needs both signatures).
pub fn dvp_pair(accounts: usize, mix: &mut Mix) -> (usize, usize) {
    let seller = mix.below(accounts);
    loop {
        let buyer = mix.below(accounts);
        if buyer % OWNERS.len() != seller % OWNERS.len() {
            return (seller, buyer);
        }
    }
}

/// Latency percentiles of sorted milliseconds, as the reports show them.
pub fn latency_json(sorted: &[f64]) -> Value {
    json!({
        "p50": percentile(sorted, 0.50),
        "p90": percentile(sorted, 0.90),
        "p99": percentile(sorted, 0.99),
        "p99_9": percentile(sorted, 0.999),
        "max": sorted.last().copied().unwrap_or(f64::NAN),
    })
}

fn account(index: usize) -> AccountId {
    AccountId::new(&format!("{ACCOUNT_PREFIX}/{index}")).expect("a valid code")
}

/// The genesis section that writes bench accounts `BENCH/0..count` as the setup phase would
/// open and fund them: same owners, same balances.
pub fn genesis_accounts(count: u64) -> crate::genesis::SyntheticAccountsEntry {
    let balance = |asset: &str, quantity: u128| crate::genesis::SyntheticBalanceEntry {
        asset: asset.into(),
        quantity: quantity.to_string(),
    };
    crate::genesis::SyntheticAccountsEntry {
        prefix: ACCOUNT_PREFIX.into(),
        count,
        owners: OWNERS.iter().map(|owner| owner.to_string()).collect(),
        balances: vec![balance("JPY", OPENING_JPY), balance("JGB-10Y", OPENING_JGB)],
    }
}

fn owner(index: usize) -> PartyId {
    PartyId::new(OWNERS[index % OWNERS.len()]).expect("a valid code")
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_millis() as u64
}

/// Transactions expire this long after they are signed (the network allows up to a day).
const EXPIRY_AFTER_MS: u64 = 3_600_000;

/// Signs transactions for one network with the keystore's keys.
struct Signer<'a> {
    network: u32,
    keys: &'a Keystore,
}

impl Signer<'_> {
    fn sign(&self, signers: &[PartyId], operation: Operation) -> anyhow::Result<Transaction> {
        let keys: Vec<(PartyId, &PrivateKey)> = signers
            .iter()
            .map(|party| Ok((*party, self.keys.key(*party)?)))
            .collect::<anyhow::Result<_>>()?;
        let body = TxBody {
            network: self.network,
            submitter: signers[0],
            unique_id: UniqueId(rand::random()),
            // From the moment of signing: a long setup must not outlive its first transactions.
            expiry: Expiry::TimeMs(now_ms() + EXPIRY_AFTER_MS),
            operation,
        };
        Ok(Transaction::sign(body, &keys))
    }

    fn transaction(
        &self,
        workload: Workload,
        accounts: usize,
        mix: &mut Mix,
    ) -> anyhow::Result<Transaction> {
        let jpy = AssetId::new("JPY")?;
        let pair = |mix: &mut Mix| {
            let source = mix.below(accounts);
            let target = (source + 1 + mix.below(accounts - 1)) % accounts;
            (source, target)
        };
        let leg = |source: usize, target: usize, asset: AssetId, quantity: u128| Leg {
            source: account(source),
            target: account(target),
            asset,
            quantity,
        };
        match workload {
            Workload::Transfer | Workload::Hot => {
                let (mut source, mut target) = pair(mix);
                if workload == Workload::Hot {
                    let other = 1 + mix.below(accounts - 1);
                    (source, target) = if mix.next() % 2 == 0 {
                        (0, other)
                    } else {
                        (other, 0)
                    };
                }
                self.sign(
                    &[owner(source)],
                    Operation::Transfer(leg(source, target, jpy, 1)),
                )
            }
            Workload::Dvp => {
                let (seller, buyer) = dvp_pair(accounts, mix);
                let legs = vec![
                    leg(seller, buyer, AssetId::new("JGB-10Y")?, 1),
                    leg(buyer, seller, jpy, 100),
                ];
                self.sign(
                    &[owner(seller), owner(buyer)],
                    Operation::Bundle(Bundle { legs }),
                )
            }
            Workload::Bulk => {
                let mut legs = Vec::with_capacity(BULK_LEGS);
                let mut signers = Vec::new();
                for _ in 0..BULK_LEGS {
                    let (source, target) = pair(mix);
                    if !signers.contains(&owner(source)) {
                        signers.push(owner(source));
                    }
                    legs.push(leg(source, target, jpy, 1));
                }
                self.sign(&signers, Operation::Bundle(Bundle { legs }))
            }
            Workload::Repo => anyhow::bail!("the repo workload's transactions come from its setup"),
        }
    }
}

/// What became of one submitted transaction.
#[derive(Clone, Debug)]
enum Outcome {
    Accepted,
    Rejected(String),
    /// Refused at admission (never entered a block).
    Refused(String),
}

/// A request's transactions not yet final; its client waits for none to be left.
struct Waiter {
    left: AtomicUsize,
    done: Notify,
}

impl Waiter {
    fn finish_one(&self) {
        if self.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.done.notify_one();
        }
    }
}

/// Transactions sent and not yet final, and what became of the others.
#[derive(Default)]
struct Tracker {
    pending: HashMap<String, (Instant, Arc<Waiter>)>,
    latencies_ms: Vec<f64>,
    outcomes: BTreeMap<String, usize>,
    first_sent: Option<Instant>,
    last_final: Option<Instant>,
    finished: usize,
    /// Shows the finished count while a timed part runs.
    progress: Option<indicatif::ProgressBar>,
    repo: repo::RepoWatch,
}

impl Tracker {
    /// Forget the transactions of a finished phase (not the contracts watched).
    fn reset(&mut self) {
        let repo = std::mem::take(&mut self.repo);
        *self = Tracker {
            repo,
            ..Tracker::default()
        };
    }

    fn record(&mut self, outcome: &Outcome) {
        let key = match outcome {
            Outcome::Accepted => "ACCEPTED".to_string(),
            Outcome::Rejected(code) => format!("REJECTED {code}"),
            Outcome::Refused(code) => format!("REFUSED {code}"),
        };
        *self.outcomes.entry(key).or_default() += 1;
        self.finished += 1;
    }

    /// A block arrived on the stream: its transactions of ours are final.
    fn block(&mut self, block: &Value, at: Instant) {
        for transaction in block["transactions"].as_array().into_iter().flatten() {
            let Some(id) = transaction["id"].as_str() else {
                continue;
            };
            let Some((sent, waiter)) = self.pending.remove(id) else {
                continue;
            };
            self.latencies_ms
                .push(at.duration_since(sent).as_secs_f64() * 1e3);
            let outcome = match transaction["outcome"]["code"].as_str() {
                Some(code) => Outcome::Rejected(code.to_string()),
                None => Outcome::Accepted,
            };
            self.record(&outcome);
            self.last_final = Some(at);
            waiter.finish_one();
        }
    }
}

type Shared = Arc<Mutex<Tracker>>;

/// Follow the first node's event stream from `from_height`, marking our transactions final and
/// watching our repo contracts.
fn follow(
    client: reqwest::Client,
    api: String,
    from_height: u64,
    tracker: Shared,
) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    tokio::spawn(async move {
        let url = format!("{api}/v1/events?from_height={from_height}");
        let response = client.get(url).send().await?.error_for_status()?;
        let mut stream = response.bytes_stream();
        let mut text = String::new();
        while let Some(chunk) = stream.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk?));
            while let Some(end) = text.find("\n\n") {
                let event: String = text.drain(..end + 2).collect();
                let is = |kind: &str| event.lines().any(|line| line == format!("event: {kind}"));
                let (block, repo) = (is("block"), is("repo"));
                if !block && !repo {
                    continue;
                }
                let Some(data) = event.lines().find_map(|line| line.strip_prefix("data: ")) else {
                    continue;
                };
                let data: Value = serde_json::from_str(data)?;
                let at = Instant::now();
                let mut tracker = tracker.lock().expect("tracker lock");
                if repo {
                    tracker.repo.event(&data, at);
                    continue;
                }
                tracker.block(&data, at);
                if let Some(progress) = &tracker.progress {
                    progress.set_position(tracker.finished as u64);
                }
            }
        }
        Ok(())
    })
}

/// Send one request of `transactions` to `api`, due at `due` (latency counts from then, so that
/// an open loop's queueing shows); what the node refused is final at once.
async fn send(
    client: &reqwest::Client,
    api: &str,
    transactions: &[(String, String)],
    due: Instant,
    tracker: &Shared,
) -> anyhow::Result<Arc<Waiter>> {
    let waiter = Arc::new(Waiter {
        left: AtomicUsize::new(transactions.len()),
        done: Notify::new(),
    });
    {
        let mut tracker = tracker.lock().expect("tracker lock");
        tracker.first_sent.get_or_insert(due);
        for (id, _) in transactions {
            tracker.pending.insert(id.clone(), (due, waiter.clone()));
        }
    }
    let refusals: Vec<(usize, String)> = if transactions.len() == 1 {
        let response = client
            .post(format!("{api}/v1/transactions"))
            .json(&json!({"transaction": transactions[0].1}))
            .send()
            .await?;
        if response.status().is_success() {
            Vec::new()
        } else {
            let body: Value = response.json().await?;
            vec![(0, body["code"].as_str().unwrap_or("HTTP_ERROR").to_string())]
        }
    } else {
        let hexes: Vec<&String> = transactions.iter().map(|(_, hex)| hex).collect();
        let response = client
            .post(format!("{api}/v1/transactions/batch"))
            .json(&json!({"transactions": hexes}))
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        if !status.is_success() {
            let code = body["code"].as_str().unwrap_or("HTTP_ERROR").to_string();
            (0..transactions.len())
                .map(|index| (index, code.clone()))
                .collect()
        } else {
            body["results"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
                .filter_map(|(index, result)| {
                    result["code"]
                        .as_str()
                        .map(|code| (index, code.to_string()))
                })
                .collect()
        }
    };
    if !refusals.is_empty() {
        let mut tracker = tracker.lock().expect("tracker lock");
        for (index, code) in refusals {
            if tracker.pending.remove(&transactions[index].0).is_some() {
                tracker.record(&Outcome::Refused(code));
                waiter.finish_one();
            }
        }
    }
    Ok(waiter)
}

async fn get(client: &reqwest::Client, url: &str) -> anyhow::Result<(u16, Value)> {
    let response = client.get(url).send().await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await.unwrap_or(Value::Null)))
}

/// A node's process CPU seconds and resident memory, from its `/metrics`.
async fn node_usage(client: &reqwest::Client, api: &str) -> Option<(f64, f64)> {
    let text = client
        .get(format!("{api}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let value = |name: &str| {
        text.lines().find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse::<f64>()
                .ok()
        })
    };
    Some((
        value("kessai_process_cpu_seconds_total")?,
        value("kessai_process_resident_memory_bytes")?,
    ))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn encoded(transactions: Vec<Transaction>) -> Vec<(String, String)> {
    transactions
        .into_iter()
        .map(|transaction| {
            let id = transaction.body.id().to_hex();
            (id, kessai_types::hex::encode(&transaction.encode()))
        })
        .collect()
}

/// Wait until every transaction of a request is final.
async fn wait(waiter: Option<Arc<Waiter>>, timeout: Duration) -> anyhow::Result<()> {
    let Some(waiter) = waiter else { return Ok(()) };
    if waiter.left.load(Ordering::Acquire) > 0 {
        tokio::time::timeout(timeout, waiter.done.notified())
            .await
            .map_err(|_| anyhow::anyhow!("transactions not final within {timeout:?}"))?;
    }
    Ok(())
}

/// What every phase of a run shares.
struct Bench<'a> {
    options: &'a BenchOptions,
    client: reqwest::Client,
    signer: Signer<'a>,
    tracker: Shared,
    /// The first node's event stream, followed from before the setup to the end of the run.
    follower: Mutex<Option<tokio::task::JoinHandle<anyhow::Result<()>>>>,
}

impl Bench<'_> {
    fn timeout(&self) -> Duration {
        self.options.load.timeout()
    }

    /// An error if the event stream ended: it never ends by itself, and nothing more can
    /// become final.
    async fn check_stream(&self) -> anyhow::Result<()> {
        let finished = {
            let mut follower = self.follower.lock().expect("follower lock");
            match follower.as_ref() {
                Some(handle) if handle.is_finished() => follower.take(),
                _ => None,
            }
        };
        if let Some(handle) = finished {
            handle.await??;
            anyhow::bail!("the event stream of {} closed", self.options.apis[0]);
        }
        Ok(())
    }

    /// Send untimed requests (at most [`SETUP_BATCH`] transactions and [`SETUP_REQUEST_BYTES`]
    /// each, at most [`SETUP_IN_FLIGHT`] not final, to the nodes in turn) and check that every
    /// transaction was accepted. Each request is signed when its turn comes, so that memory does not grow
    /// with the number of accounts.
    async fn settle_untimed(
        &self,
        what: &str,
        requests: impl Iterator<Item = anyhow::Result<Vec<Transaction>>>,
    ) -> anyhow::Result<()> {
        let apis = &self.options.apis;
        let mut waiters = std::collections::VecDeque::new();
        let mut sent = 0;
        for transactions in requests {
            let mut encoded = encoded(transactions?);
            while !encoded.is_empty() {
                // Within the API's request size too: a repo registration is ~1 KB of hex.
                let mut bytes = 0;
                let fit = encoded
                    .iter()
                    .take_while(|(_, hex)| {
                        bytes += hex.len();
                        bytes <= SETUP_REQUEST_BYTES
                    })
                    .count()
                    .max(1);
                let request: Vec<_> = encoded.drain(..fit).collect();
                if waiters.len() == SETUP_IN_FLIGHT {
                    wait(waiters.pop_front(), self.timeout()).await?;
                }
                let api = &apis[sent % apis.len()];
                sent += 1;
                let waiter = send(&self.client, api, &request, Instant::now(), &self.tracker);
                waiters.push_back(waiter.await?);
            }
        }
        for waiter in waiters {
            wait(Some(waiter), self.timeout()).await?;
        }
        let mut tracker = self.tracker.lock().expect("tracker lock");
        let failed: Vec<_> = tracker
            .outcomes
            .iter()
            .filter(|(k, _)| *k != "ACCEPTED")
            .collect();
        anyhow::ensure!(failed.is_empty(), "{what} failed: {failed:?}");
        tracker.reset();
        Ok(())
    }
}

/// How many of the first `accounts` bench accounts exist, funded. They are opened in order
/// (by the genesis or by earlier setups), so the first one missing is found by bisection.
async fn funded_accounts(bench: &Bench<'_>, accounts: usize) -> anyhow::Result<usize> {
    let api = &bench.options.apis[0];
    let funded = |index: usize| async move {
        let url = format!("{api}/v1/accounts/{ACCOUNT_PREFIX}%2F{index}/balances/JGB-10Y");
        anyhow::Ok(get(&bench.client, &url).await?.0 == 200)
    };
    if funded(accounts - 1).await? {
        return Ok(accounts);
    }
    // Accounts below `low` are funded; account `high` is not.
    let (mut low, mut high) = (0, accounts - 1);
    while low < high {
        let middle = (low + high) / 2;
        if funded(middle).await? {
            low = middle + 1;
        } else {
            high = middle;
        }
    }
    Ok(low)
}

/// Open and fund the bench accounts that do not exist yet.
async fn setup(bench: &Bench<'_>) -> anyhow::Result<Option<Duration>> {
    let accounts = bench.options.load.accounts;
    let existing = funded_accounts(bench, accounts).await?;
    if existing == accounts {
        return Ok(None);
    }
    let started = Instant::now();
    let csd = PartyId::new("CSD")?;
    let boj = PartyId::new("BOJ")?;
    let (jpy, jgb) = (AssetId::new("JPY")?, AssetId::new("JGB-10Y")?);
    // Accounts first (a block's issues need them), then the balances.
    for phase in 0..2 {
        let per_account = if phase == 0 { 1 } else { 2 };
        let accounts_per_request = SETUP_BATCH / per_account;
        let requests = (existing..accounts)
            .step_by(accounts_per_request)
            .map(|first| {
                let last = (first + accounts_per_request).min(accounts);
                let mut transactions = Vec::with_capacity(SETUP_BATCH);
                for account_index in first..last {
                    let account = account(account_index);
                    if phase == 0 {
                        let open = OpenAccount {
                            account,
                            owner: owner(account_index),
                        };
                        transactions.push(bench.signer.sign(&[csd], Operation::OpenAccount(open))?);
                    } else {
                        for (admin, asset, quantity) in
                            [(boj, jpy, OPENING_JPY), (csd, jgb, OPENING_JGB)]
                        {
                            let issue = SupplyChange {
                                asset,
                                account,
                                quantity,
                            };
                            transactions
                                .push(bench.signer.sign(&[admin], Operation::Issue(issue))?);
                        }
                    }
                }
                Ok(transactions)
            });
        bench.settle_untimed("setup", requests).await?;
    }
    Ok(Some(started.elapsed()))
}

/// Each node's process CPU seconds and resident memory, if it reports them.
async fn node_usages(bench: &Bench<'_>) -> Vec<Option<(f64, f64)>> {
    futures::future::join_all(
        bench
            .options
            .apis
            .iter()
            .map(|api| node_usage(&bench.client, api)),
    )
    .await
}

/// Each node's CPU over `window` seconds and its memory at the end.
fn usage_json(
    bench: &Bench<'_>,
    before: &[Option<(f64, f64)>],
    after: &[Option<(f64, f64)>],
    window: f64,
) -> Vec<Value> {
    bench
        .options
        .apis
        .iter()
        .zip(before.iter().zip(after))
        .map(|(api, (before, after))| match (before, after) {
            (Some((cpu_before, _)), Some((cpu_after, rss))) => json!({
                "api": api,
                "cpu_seconds": cpu_after - cpu_before,
                "cpu_percent": (cpu_after - cpu_before) / window.max(1e-9) * 100.0,
                "rss_mib": rss / 1048576.0,
            }),
            _ => json!({"api": api, "cpu_seconds": null, "cpu_percent": null, "rss_mib": null}),
        })
        .collect()
}

/// The timed run of `transactions` (closed or open loop), and its report.
async fn timed(
    bench: &Bench<'_>,
    transactions: Vec<Transaction>,
    signing: Duration,
) -> anyhow::Result<Value> {
    let options = bench.options;
    let count = transactions.len();
    let requests: Vec<Vec<(String, String)>> = encoded(transactions)
        .chunks(options.load.batch)
        .map(<[_]>::to_vec)
        .collect();
    let usage_before = node_usages(bench).await;
    let progress = if options.progress {
        indicatif::ProgressBar::new(count as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    progress.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} final  {per_sec}  {elapsed}")
            .expect("a valid template"),
    );
    {
        let mut tracker = bench.tracker.lock().expect("tracker lock");
        tracker.reset();
        tracker.progress = Some(progress.clone());
    }
    let (client, tracker) = (&bench.client, &bench.tracker);
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(requests);
    let sending: Vec<tokio::task::JoinHandle<anyhow::Result<()>>> = match options.load.rate {
        None => (0..options.load.concurrency)
            .map(|client_index| {
                let (client, tracker, next, requests) = (
                    client.clone(),
                    tracker.clone(),
                    next.clone(),
                    requests.clone(),
                );
                let apis = options.apis.clone();
                tokio::spawn(async move {
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        let Some(request) = requests.get(index) else {
                            return Ok(());
                        };
                        let api = &apis[(client_index + index) % apis.len()];
                        let waiter = send(&client, api, request, Instant::now(), &tracker).await?;
                        if waiter.left.load(Ordering::Acquire) > 0 {
                            waiter.done.notified().await;
                        }
                    }
                })
            })
            .collect(),
        Some(rate) => {
            let interval = Duration::from_secs_f64(options.load.batch as f64 / rate);
            let in_flight = Arc::new(tokio::sync::Semaphore::new(options.load.concurrency));
            let mut tasks = Vec::new();
            for (index, _) in requests.iter().enumerate() {
                let due = started + interval * index as u32;
                tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
                let permit = in_flight.clone().acquire_owned().await?;
                let (client, tracker, requests) =
                    (client.clone(), tracker.clone(), requests.clone());
                let api = options.apis[index % options.apis.len()].clone();
                tasks.push(tokio::spawn(async move {
                    send(&client, &api, &requests[index], due, &tracker).await?;
                    drop(permit);
                    Ok(())
                }));
            }
            tasks
        }
    };
    for task in sending {
        task.await??;
    }
    let sent_for = started.elapsed();
    let deadline = Instant::now() + bench.timeout();
    while tracker.lock().expect("tracker lock").finished < count && Instant::now() < deadline {
        bench.check_stream().await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    progress.finish();
    let usage_after = node_usages(bench).await;

    let mut tracker = tracker.lock().expect("tracker lock");
    tracker.progress = None;
    let mut latencies = tracker.latencies_ms.clone();
    latencies.sort_by(f64::total_cmp);
    let finalized = latencies.len();
    let window = tracker
        .last_final
        .zip(tracker.first_sent)
        .map_or(0.0, |(last, first)| {
            last.duration_since(first).as_secs_f64()
        });
    Ok(json!({
        "system": "kessai",
        "workload": options.load.workload.name(),
        "accounts": options.load.accounts,
        "transactions": count,
        "mode": match options.load.rate { Some(rate) => format!("open loop, {rate} tx/s offered"), None => format!("closed loop, {} clients", options.load.concurrency) },
        "rate": options.load.rate,
        "batch": options.load.batch,
        "signing": {"seconds": signing.as_secs_f64(), "per_second": count as f64 / signing.as_secs_f64()},
        "offered_per_second": count as f64 / sent_for.as_secs_f64(),
        "finalized": finalized,
        "finalized_per_second": finalized as f64 / window.max(1e-9),
        "unfinished": count - tracker.finished,
        "outcomes": tracker.outcomes,
        "latency_ms": latency_json(&latencies),
        "nodes": usage_json(bench, &usage_before, &usage_after, window),
    }))
}

/// Run the benchmark; returns the report, and the options for a baseline run of the same work.
pub async fn run(mut options: BenchOptions) -> anyhow::Result<(Value, BenchOptions)> {
    options.load.check()?;
    anyhow::ensure!(!options.apis.is_empty(), "no node API to load");
    for api in &mut options.apis {
        *api = api.trim_end_matches('/').to_string();
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(options.load.concurrency.max(8))
        .build()?;
    let (_, status) = get(&client, &format!("{}/v1/status", options.apis[0])).await?;
    let network = status["network"]
        .as_u64()
        .ok_or_else(|| anyhow::anyhow!("no network id in /v1/status"))? as u32;
    let height = status["height"].as_u64().unwrap_or(0);
    let tracker: Shared = Arc::default();
    let follower = follow(
        client.clone(),
        options.apis[0].clone(),
        height + 1,
        tracker.clone(),
    );
    let bench = Bench {
        options: &options,
        client,
        signer: Signer {
            network,
            keys: &options.keys,
        },
        tracker,
        follower: Mutex::new(Some(follower)),
    };
    let result = run_phases(&bench).await;
    if let Some(follower) = bench.follower.lock().expect("follower lock").take() {
        follower.abort();
    }
    drop(bench);
    Ok((result?, options))
}

async fn run_phases(bench: &Bench<'_>) -> anyhow::Result<Value> {
    let load = &bench.options.load;
    let setup_time = setup(bench).await?;
    let repo = if load.workload == Workload::Repo {
        let started = Instant::now();
        let plan = repo::setup(bench).await?;
        Some((plan, started.elapsed()))
    } else {
        None
    };
    // Generate and sign before the clock starts.
    let signing = Instant::now();
    let transactions = match &repo {
        Some((plan, _)) => repo::starts(bench, plan)?,
        None => {
            let mut mix = Mix(42);
            (0..load.count)
                .map(|_| {
                    bench
                        .signer
                        .transaction(load.workload, load.accounts, &mut mix)
                })
                .collect::<anyhow::Result<Vec<_>>>()?
        }
    };
    let signing = signing.elapsed();
    let mut report = timed(bench, transactions, signing).await?;
    report["setup_seconds"] = json!(setup_time.map(|t| t.as_secs_f64()));
    if let Some((plan, setup_time)) = repo {
        report["repo"] = repo::burst_and_cleanup(bench, &plan, setup_time).await?;
    }
    Ok(report)
}

/// Open-loop runs at each of `options.load.rates` in turn: one report per rate.
pub async fn sweep(mut options: BenchOptions) -> anyhow::Result<Value> {
    options.load.check()?;
    anyhow::ensure!(!options.load.rates.is_empty(), "--rates: at least one rate");
    let mut reports = Vec::new();
    for rate in options.load.rates.clone() {
        options.load.rate = Some(rate);
        let (report, returned) = run(options).await?;
        if returned.progress {
            print!("{}", table(&report));
        }
        reports.push(report);
        options = returned;
    }
    Ok(json!({"sweep": reports}))
}

/// Latency against offered rate, one line per run of a sweep.
pub fn sweep_table(sweep: &Value) -> String {
    let mut out = format!(
        "\n{:>10} {:>10} {:>10} {:>8} {:>8} {:>8} {:>8} {:>10}\n",
        "rate tx/s", "offered", "finalized", "p50 ms", "p90 ms", "p99 ms", "p99.9", "unfinished"
    );
    for report in sweep["sweep"].as_array().into_iter().flatten() {
        let number = |value: &Value| value.as_f64().unwrap_or(f64::NAN);
        let latency = &report["latency_ms"];
        out.push_str(&format!(
            "{:>10.0} {:>10.0} {:>10.0} {:>8.0} {:>8.0} {:>8.0} {:>8.0} {:>10}\n",
            number(&report["rate"]),
            number(&report["offered_per_second"]),
            number(&report["finalized_per_second"]),
            number(&latency["p50"]),
            number(&latency["p90"]),
            number(&latency["p99"]),
            number(&latency["p99_9"]),
            report["unfinished"],
        ));
    }
    out
}

/// The report as a table for the terminal.
pub fn table(report: &Value) -> String {
    let mut out = String::new();
    let mut line = |name: &str, value: String| out.push_str(&format!("{name:<28} {value}\n"));
    line(
        "workload",
        format!(
            "{} over {} accounts, {}",
            report["workload"].as_str().unwrap_or(""),
            report["accounts"],
            report["mode"].as_str().unwrap_or("")
        ),
    );
    if let Some(seconds) = report["setup_seconds"].as_f64() {
        line("setup (not measured)", format!("{seconds:.1} s"));
    }
    line(
        "transactions",
        format!(
            "{} in requests of {}",
            report["transactions"], report["batch"]
        ),
    );
    line(
        "signing (before the clock)",
        format!(
            "{:.2} s, {:.0} tx/s",
            report["signing"]["seconds"].as_f64().unwrap_or(0.0),
            report["signing"]["per_second"].as_f64().unwrap_or(0.0)
        ),
    );
    line(
        "offered",
        format!(
            "{:.0} tx/s",
            report["offered_per_second"].as_f64().unwrap_or(0.0)
        ),
    );
    line(
        "finalized",
        format!(
            "{} ({:.0} tx/s), {} unfinished",
            report["finalized"],
            report["finalized_per_second"].as_f64().unwrap_or(0.0),
            report["unfinished"]
        ),
    );
    for (outcome, count) in report["outcomes"].as_object().into_iter().flatten() {
        line(&format!("  {outcome}"), count.to_string());
    }
    let latency = &report["latency_ms"];
    line(
        "latency to finality (ms)",
        format!(
            "p50 {:.0}  p90 {:.0}  p99 {:.0}  p99.9 {:.0}  max {:.0}",
            latency["p50"].as_f64().unwrap_or(f64::NAN),
            latency["p90"].as_f64().unwrap_or(f64::NAN),
            latency["p99"].as_f64().unwrap_or(f64::NAN),
            latency["p99_9"].as_f64().unwrap_or(f64::NAN),
            latency["max"].as_f64().unwrap_or(f64::NAN),
        ),
    );
    node_lines(&mut line, &report["nodes"]);
    if report["repo"].is_object() {
        repo::table(&mut line, &report["repo"]);
    }
    out
}

/// Each node's CPU and memory, a line each.
fn node_lines(line: &mut dyn FnMut(&str, String), nodes: &Value) {
    for node in nodes.as_array().into_iter().flatten() {
        line(
            &format!("node {}", node["api"].as_str().unwrap_or("")),
            match node["cpu_percent"].as_f64() {
                Some(cpu) => format!(
                    "CPU {cpu:.0} % of a core, RSS {:.0} MiB",
                    node["rss_mib"].as_f64().unwrap_or(0.0)
                ),
                None => "no process metrics".into(),
            },
        );
    }
}

/// Kessai and PostgreSQL side by side, with the ratio Kessai / PostgreSQL.
pub fn comparison(kessai: &Value, postgres: &Value) -> String {
    let mut out = format!(
        "\n{:<28} {:>12} {:>12} {:>8}\n",
        "same session", "Kessai", "PostgreSQL", "ratio"
    );
    let number = |value: &Value, path: &[&str]| {
        path.iter()
            .fold(value, |value, key| &value[*key])
            .as_f64()
            .unwrap_or(f64::NAN)
    };
    for (name, path) in [
        ("finalized tx/s", &["finalized_per_second"][..]),
        ("latency p50 (ms)", &["latency_ms", "p50"][..]),
        ("latency p90 (ms)", &["latency_ms", "p90"][..]),
        ("latency p99 (ms)", &["latency_ms", "p99"][..]),
        ("latency p99.9 (ms)", &["latency_ms", "p99_9"][..]),
    ] {
        let (k, p) = (number(kessai, path), number(postgres, path));
        out.push_str(&format!("{name:<28} {k:>12.1} {p:>12.1} {:>8.2}\n", k / p));
    }
    out
}
