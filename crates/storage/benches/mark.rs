//! The automatic mark-to-market of repo contracts over the QMDB-backed ledger
//! (`Ledger::apply_block` on the real tokio runtime).
//!
//! A ledger on disk (a temporary directory) holds an open book of repo contracts
//! ([`RepoWorkload`]: 1,000 parties, `BUND` lent against `STOCK`, valued in USD). Closing a
//! business date starts a walk that marks [`REPO_MARKS_PER_BLOCK_MAX`] contracts at the start of
//! each following block; the workload moves the stock price every day so that every marking
//! settles a margin call (the worst case). Two figures:
//!
//! - `storage::mark_to_market/block` (criterion): one empty block, which marks one batch of
//!   1,000 contracts (reads, valuation, the call's collateral moves, two events each) and commits
//!   it. When a day's walk is done, the next day's close is applied untimed. (With a number of
//!   contracts that is not a multiple of 1,000, each day's last block marks fewer.)
//! - `storage::mark_to_market/day` (printed, with the median): the `apply_block` time of every
//!   walk block of one day, `ceil(contracts / 1,000)` of them, for each whole day walked: day 1
//!   (before the criterion benchmark), the days the per-block benchmark covered whole, and two
//!   more after it. A criterion benchmark of whole days would need eleven more of them. In
//!   criterion's test mode (the smoke run of `cargo test --benches`) the two extra days are
//!   skipped.
//!
//! Contracts: `KESSAI_BENCH_CONTRACTS`, or else one per five of the other benchmarks'
//! `KESSAI_BENCH_ACCOUNTS`, at most 100,000: 100,000 by default, 2,000 in the smoke run of
//! `scripts/test` (10,000 accounts).
//!
//! Setup, reported but not measured: the genesis, then the workload's setup blocks (day 0's
//! close, then every contract registered, approved and started, 20,000 transactions a block),
//! each checked to apply in full, and the open book checked to hold every contract. Day 1's
//! first walk block is taken apart (execution rounds, keys fetched and time per round, writes,
//! then `Ledger::execute` and `Ledger::commit_block` apart). After day 1 and again at the end, a
//! sample of contracts is checked to have recorded a `MARKED` and a `MARGIN_CALL_SETTLED` event
//! for every day closed, so the timed blocks cannot have skipped the work.
//!
//! Block time: the close of day `d` is at 18:00 UTC on its date (a close may be at most one day
//! ahead of block time), walk blocks follow a second apart. Before each close, untimed empty
//! blocks let expiry pruning catch up with the day that passed, as a chain making blocks all
//! day would have (see [`RepoWorkload::close_time`]).
//!
//! The ledger lives in the root task of a runtime on its own thread and serves requests sent
//! over a channel, timing each `apply_block` there; criterion drives it from the main thread
//! (see `commit.rs`).

use commonware_parallel::{Rayon, Sequential};
use commonware_runtime::{Runner as _, tokio};
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use futures::{StreamExt as _, channel::mpsc};
use kessai_state::{
    BlockInput, Chain, REPO_MARKS_PER_BLOCK_MAX, RepoBook, Snapshot, StateKey, StateValue,
    TxOutcome,
    workload::{BLOCK_INTERVAL_MS, RepoWorkload, accounts_from_env},
};
use kessai_storage::{Ledger, StoreConfig};
use kessai_types::{RepoEvent, Transaction, TxId, VerifiedTransaction, verify_transactions};
use std::{
    num::NonZeroUsize,
    sync::mpsc as sync_mpsc,
    time::{Duration, Instant},
};

/// Lenders and borrowers, half each.
const PARTIES: usize = 1_000;
/// The most contracts by default.
const CONTRACTS_MAX: usize = 100_000;
/// Contracts whose events are checked after a day.
const SAMPLE: usize = 100;
/// Whole days walked after the per-block benchmark, when benchmarking.
const WHOLE_DAYS: usize = 2;

/// The number of contracts: `KESSAI_BENCH_CONTRACTS`, or one per five accounts of
/// `KESSAI_BENCH_ACCOUNTS` (default 1,000,000), at most [`CONTRACTS_MAX`].
fn contracts_from_env() -> usize {
    let contracts = match std::env::var("KESSAI_BENCH_CONTRACTS") {
        Ok(value) => value
            .replace('_', "")
            .parse()
            .expect("KESSAI_BENCH_CONTRACTS must be a number of contracts"),
        Err(_) => (accounts_from_env(1_000_000) / 5).min(CONTRACTS_MAX),
    };
    assert!(contracts > 0, "the benchmark needs at least one contract");
    contracts
}

/// One execution round of a block: keys fetched before it, and how long fetching and executing
/// took.
struct Round {
    keys: usize,
    fetch: Duration,
    execute: Duration,
}

/// A walk block taken apart: its rounds, its writes, then `Ledger::execute` and
/// `Ledger::commit_block` timed on their own.
struct Profile {
    rounds: Vec<Round>,
    writes: usize,
    execute: Duration,
    commit: Duration,
}

/// What the ledger's task does for the benchmark.
enum Request {
    /// Apply the next block; reply how long `apply_block` took and the outcomes.
    Apply {
        time_ms: u64,
        transactions: Vec<VerifiedTransaction>,
        reply: sync_mpsc::SyncSender<(Duration, Vec<TxOutcome>)>,
    },
    /// Read committed records.
    Get {
        keys: Vec<StateKey>,
        reply: sync_mpsc::SyncSender<Vec<Option<StateValue>>>,
    },
    /// Apply an empty next block, taken apart (see [`profile`]).
    Profile {
        time_ms: u64,
        reply: sync_mpsc::SyncSender<Profile>,
    },
}

/// Run `Ledger::execute`'s loop for an empty next block by hand, timing each round (its effects
/// are dropped), then apply the block with `Ledger::execute` and `Ledger::commit_block`.
async fn profile(ledger: &mut Ledger<tokio::Context>, time_ms: u64) -> Profile {
    let block = BlockInput {
        height: ledger.height() + 1,
        time_ms,
        transactions: &[],
    };
    let mut rounds = Vec::new();
    let mut snapshot = Snapshot::default();
    let reader = &*ledger;
    let fetch = async |keys: &[StateKey], snapshot: &mut Snapshot| {
        let start = Instant::now();
        let values = reader.get_many(keys).await.expect("read the ledger");
        for (key, value) in keys.iter().zip(values) {
            snapshot.insert(*key, value);
        }
        start.elapsed()
    };
    let keys = kessai_state::read_set(&block, &snapshot);
    let (mut fetched, mut count) = (fetch(&keys, &mut snapshot).await, keys.len());
    let mut keys = kessai_state::owners_of(&keys, &snapshot);
    let writes = loop {
        fetched += fetch(&keys, &mut snapshot).await;
        count += keys.len();
        let start = Instant::now();
        let result = kessai_state::execute(&block, &snapshot);
        rounds.push(Round {
            keys: count,
            fetch: fetched,
            execute: start.elapsed(),
        });
        match result {
            Ok(effects) => break effects.writes.len(),
            Err(missing) => keys = missing,
        }
        (fetched, count) = (Duration::ZERO, 0);
    };
    let start = Instant::now();
    let pending = ledger.execute(time_ms, &[]).await.expect("execute");
    let execute = start.elapsed();
    let start = Instant::now();
    ledger
        .commit_block(pending)
        .await
        .expect("commit the block");
    Profile {
        rounds,
        writes,
        execute,
        commit: start.elapsed(),
    }
}

/// The benchmark's side of the ledger: blocks in height order, one at a time.
struct Driver<'a> {
    workload: &'a RepoWorkload,
    requests: mpsc::UnboundedSender<Request>,
    height: u64,
    time_ms: u64,
    /// The business day last closed.
    day: u32,
    /// Walk blocks still to come for it.
    walk_left: u64,
    /// The `apply_block` time of its walk blocks so far.
    day_time: Duration,
    /// Each whole day walked: its number and the time of its walk blocks.
    days: Vec<(u32, Duration)>,
}

impl Driver<'_> {
    fn blocks_per_day(&self) -> u64 {
        (self.workload.contracts().len() as u64).div_ceil(REPO_MARKS_PER_BLOCK_MAX)
    }

    fn send(&self, request: Request) {
        self.requests
            .unbounded_send(request)
            .expect("the ledger task is running");
    }

    /// Apply the next block: how long `apply_block` took, and the outcomes.
    fn apply(
        &mut self,
        time_ms: u64,
        transactions: Vec<Transaction>,
    ) -> (Duration, Vec<TxOutcome>) {
        let transactions = verify_transactions(transactions, &Sequential);
        let (reply, answer) = sync_mpsc::sync_channel(1);
        self.send(Request::Apply {
            time_ms,
            transactions,
            reply,
        });
        self.height += 1;
        self.time_ms = time_ms;
        answer.recv().expect("the ledger task failed")
    }

    fn get(&self, keys: Vec<StateKey>) -> Vec<Option<StateValue>> {
        let (reply, answer) = sync_mpsc::sync_channel(1);
        self.send(Request::Get { keys, reply });
        answer.recv().expect("the ledger task failed")
    }

    fn book(&self) -> RepoBook {
        match self.get(vec![StateKey::RepoBook]).pop() {
            Some(Some(StateValue::RepoBook(book))) => book,
            other => panic!("no repo book: {other:?}"),
        }
    }

    fn chain(&self) -> Chain {
        match self.get(vec![StateKey::Chain]).pop() {
            Some(Some(StateValue::Chain(chain))) => chain,
            other => panic!("no chain record: {other:?}"),
        }
    }

    /// Close the next day (untimed): empty blocks until pruning has caught up with the day
    /// that passed, then the close. Returns how many empty blocks that took.
    fn close_next_day(&mut self) -> u64 {
        assert_eq!(self.walk_left, 0, "the last walk is done");
        self.day += 1;
        let close_ms = self.workload.close_time(self.day);
        let mut idle = 0;
        while !self.workload.pruning_caught_up(self.day, self.chain()) {
            self.apply(close_ms - BLOCK_INTERVAL_MS, Vec::new());
            idle += 1;
        }
        let close = self.workload.prices(self.day, self.height + 1);
        let (_, outcomes) = self.apply(close_ms, vec![close]);
        assert_eq!(outcomes[0].rejection, None, "day {}'s close", self.day);
        self.walk_left = self.blocks_per_day();
        self.day_time = Duration::ZERO;
        idle
    }

    /// Count a walk block of `elapsed`.
    fn walked(&mut self, elapsed: Duration) {
        self.walk_left -= 1;
        self.day_time += elapsed;
        if self.walk_left == 0 {
            self.days.push((self.day, self.day_time));
        }
    }

    /// Apply the next walk block (closing the next day first, untimed, if the walk is done);
    /// returns how long `apply_block` took.
    fn walk_block(&mut self) -> Duration {
        if self.walk_left == 0 {
            self.close_next_day();
        }
        let (elapsed, _) = self.apply(self.time_ms + BLOCK_INTERVAL_MS, Vec::new());
        self.walked(elapsed);
        elapsed
    }

    /// Apply the next walk block taken apart (see [`profile`]).
    fn profile_walk_block(&mut self) -> Profile {
        assert!(self.walk_left > 0, "a walk in progress");
        let (reply, answer) = sync_mpsc::sync_channel(1);
        self.height += 1;
        self.time_ms += BLOCK_INTERVAL_MS;
        self.send(Request::Profile {
            time_ms: self.time_ms,
            reply,
        });
        let profile = answer.recv().expect("the ledger task failed");
        self.walked(profile.execute + profile.commit);
        profile
    }

    /// Finish the walk in progress.
    fn finish_day(&mut self) {
        while self.walk_left > 0 {
            self.walk_block();
        }
    }

    /// Check that the book is whole and not walking, and that a sample of contracts (the first,
    /// the last and evenly spread ones) were marked, with a margin call settled, on every day
    /// closed so far.
    fn check_marked(&self) {
        let book = self.book();
        let open = self.workload.contracts().len() as u64;
        assert_eq!((book.open, book.marking), (open, None), "{book:?}");
        let contracts = self.workload.contracts();
        let step = (contracts.len() / SAMPLE).max(1);
        let mut sample: Vec<TxId> = contracts.iter().step_by(step).copied().collect();
        sample.push(*contracts.last().expect("contracts"));
        let records = self.get(sample.iter().map(|id| StateKey::Repo(*id)).collect());
        let date = RepoWorkload::business_date(self.day);
        let mut events = Vec::new();
        for (id, record) in sample.iter().zip(records) {
            let Some(StateValue::Repo(contract)) = record else {
                panic!("no contract {id}");
            };
            // Registered, approved, started and marked; then marked and called each day.
            assert_eq!(contract.events, 4 + 2 * self.day, "events of {id}");
            assert_eq!(contract.marked_date, date, "marked date of {id}");
            assert!(!contract.in_default, "{id} in default");
            for sequence in 4..contract.events {
                events.push(StateKey::RepoEvent(*id, sequence));
            }
        }
        for pair in self.get(events).chunks(2) {
            match pair {
                [
                    Some(StateValue::RepoEvent(marked)),
                    Some(StateValue::RepoEvent(called)),
                ] => {
                    assert!(matches!(marked.event, RepoEvent::Marked(_)), "{marked:?}");
                    assert!(
                        matches!(called.event, RepoEvent::MarginCallSettled(_)),
                        "{called:?}"
                    );
                }
                other => panic!("events missing: {other:?}"),
            }
        }
    }
}

fn mark_to_market(c: &mut Criterion) {
    let contracts = contracts_from_env();
    let started = Instant::now();
    let workload = RepoWorkload::new(contracts, PARTIES);
    eprintln!(
        "storage::mark_to_market setup: {contracts} contracts, {PARTIES} parties; workload {:.2?}",
        started.elapsed()
    );
    let directory = tempfile::tempdir().expect("temporary directory");
    let (requests, mut inbox) = mpsc::unbounded::<Request>();
    let (opened, ready) = sync_mpsc::sync_channel::<()>(1);

    std::thread::scope(|scope| {
        let genesis = &workload.genesis;
        let storage = directory.path();
        let server = scope.spawn(move || {
            let config = tokio::Config::new().with_storage_directory(storage);
            tokio::Runner::new(config).start(|context| async move {
                let mut ledger = Ledger::open(context, &StoreConfig::default(), genesis)
                    .await
                    .expect("open the ledger");
                opened.send(()).expect("the benchmark waits for the ledger");
                // The benchmark may have stopped listening only because it panicked.
                while let Some(request) = inbox.next().await {
                    match request {
                        Request::Apply {
                            time_ms,
                            transactions,
                            reply,
                        } => {
                            let start = Instant::now();
                            let applied = ledger
                                .apply_block(time_ms, &transactions)
                                .await
                                .expect("commit the block");
                            let _ = reply.send((start.elapsed(), applied.outcomes));
                        }
                        Request::Get { keys, reply } => {
                            let _ = reply.send(ledger.get_many(&keys).await.expect("read"));
                        }
                        Request::Profile { time_ms, reply } => {
                            let _ = reply.send(profile(&mut ledger, time_ms).await);
                        }
                    }
                }
                ledger.close().await.expect("close the ledger");
            })
        });
        ready.recv().expect("the ledger failed to open");
        let mut driver = Driver {
            workload: &workload,
            requests,
            height: 0,
            time_ms: workload.genesis.time_ms,
            day: 0,
            walk_left: 0,
            day_time: Duration::ZERO,
            days: Vec::new(),
        };

        // Setup: sign and check each block while the ledger applies the one before.
        let started = Instant::now();
        let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        let strategy = Rayon::new(NonZeroUsize::new(cores).unwrap()).expect("thread pool");
        let mut applying: Option<(sync_mpsc::Receiver<_>, usize)> = None;
        for height in 1..=workload.setup_blocks() {
            let (time_ms, transactions) = workload.setup_block(height);
            let transactions = verify_transactions(transactions, &strategy);
            let count = transactions.len();
            if let Some((answer, count)) = applying.take() {
                check_applied(answer, count);
            }
            let (reply, answer) = sync_mpsc::sync_channel(1);
            driver.send(Request::Apply {
                time_ms,
                transactions,
                reply,
            });
            (driver.height, driver.time_ms) = (height, time_ms);
            applying = Some((answer, count));
        }
        if let Some((answer, count)) = applying {
            check_applied(answer, count);
        }
        assert_eq!(driver.book().open, contracts as u64, "every contract open");
        eprintln!(
            "storage::mark_to_market setup: {} blocks ({} transactions) signed, checked and \
             applied in {:.2?}",
            workload.setup_blocks(),
            1 + 3 * contracts,
            started.elapsed()
        );

        // Day 1, untimed: its first walk block taken apart; the sample checked after it.
        let started = Instant::now();
        let idle = driver.close_next_day();
        let profile = driver.profile_walk_block();
        driver.finish_day();
        driver.check_marked();
        eprintln!(
            "storage::mark_to_market setup: day 1 ({idle} empty blocks, the close, {} walk \
             blocks) in {:.2?}",
            driver.blocks_per_day(),
            started.elapsed()
        );
        let (fetch, execute) = profile
            .rounds
            .iter()
            .fold((Duration::ZERO, Duration::ZERO), |(f, e), r| {
                (f + r.fetch, e + r.execute)
            });
        eprintln!(
            "storage::mark_to_market profile of day 1's first walk block: {} execution rounds \
             ({:?} keys fetched before each; executing each took {:?}: {execute:.2?} in all, \
             fetching {fetch:.2?}); {} writes; Ledger::execute {:.2?}, commit_block {:.2?}",
            profile.rounds.len(),
            profile.rounds.iter().map(|r| r.keys).collect::<Vec<_>>(),
            profile
                .rounds
                .iter()
                .map(|r| format!("{:.1?}", r.execute))
                .collect::<Vec<_>>(),
            profile.writes,
            profile.execute,
            profile.commit,
        );

        let mut group = c.benchmark_group("storage::mark_to_market");
        // Flat sampling: every sample is whole blocks.
        group
            .sample_size(20)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_secs(3))
            .measurement_time(Duration::from_secs(40))
            .throughput(Throughput::Elements(
                REPO_MARKS_PER_BLOCK_MAX.min(contracts as u64),
            ));
        group.bench_function("block", |b| {
            b.iter_custom(|iters| (0..iters).map(|_| driver.walk_block()).sum())
        });
        group.finish();

        // Whole days, timed block by block as above: the ones walked so far and, when
        // benchmarking, two more.
        driver.finish_day();
        let benchmarking = std::env::args().any(|arg| arg == "--bench");
        for _ in 0..if benchmarking { WHOLE_DAYS } else { 0 } {
            driver.close_next_day();
            driver.finish_day();
        }
        driver.check_marked();
        let mut totals: Vec<Duration> = driver.days.iter().map(|(_, total)| *total).collect();
        totals.sort();
        eprintln!(
            "storage::mark_to_market/day: {} walk blocks marking {contracts} contracts took {} \
             (median {:.2?}); {} days marked, height {}",
            driver.blocks_per_day(),
            driver
                .days
                .iter()
                .map(|(day, total)| format!("day {day} {total:.2?}"))
                .collect::<Vec<_>>()
                .join(", "),
            (totals[(totals.len() - 1) / 2] + totals[totals.len() / 2]) / 2,
            driver.day,
            driver.height
        );
        // Closing the channel ends the ledger's task, which closes the ledger.
        drop(driver);
        server.join().expect("the ledger task panicked");
    });
}

/// Every transaction of a setup block applied.
fn check_applied(answer: sync_mpsc::Receiver<(Duration, Vec<TxOutcome>)>, count: usize) {
    let (_, outcomes) = answer.recv().expect("the ledger task failed");
    assert_eq!(outcomes.len(), count);
    let rejected: Vec<_> = outcomes.iter().filter(|o| o.rejection.is_some()).collect();
    assert!(
        rejected.is_empty(),
        "setup transactions rejected: {:?}",
        &rejected[..1]
    );
}

criterion_group!(benches, mark_to_market);
criterion_main!(benches);
