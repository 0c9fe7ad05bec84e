//! Block commit time of the QMDB-backed ledger (`Ledger::apply_block`) on the real tokio runtime.
//!
//! A ledger on disk (a temporary directory) holds `KESSAI_BENCH_ACCOUNTS` funded accounts
//! (default 1,000,000, owned by 1,000 parties) and receives blocks of 1,000 or 10,000 transfers
//! between pseudo-random accounts. Each block is signed and its signatures checked before the
//! clock starts; the timed part is all of `apply_block`: fetching the read set from QMDB,
//! execution, and the durable commit (batch, merkleization, sync). Writing the genesis state is
//! setup and is reported, not measured.
//!
//! The ledger lives in the root task of a runtime on its own thread and serves blocks sent over
//! a channel, timing each `apply_block` there; criterion drives it from the main thread. (Blocking
//! on the ledger from inside the root task instead would starve Tokio's cooperative budget,
//! which is only refilled between polls of that task, and spin forever.)

use commonware_parallel::Sequential;
use commonware_runtime::{Runner as _, tokio};
use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use futures::{StreamExt as _, channel::mpsc};
use kessai_state::{TxOutcome, Workload};
use kessai_storage::{Ledger, StoreConfig};
use kessai_types::{VerifiedTransaction, verify_transactions};
use std::{
    sync::mpsc as sync_mpsc,
    time::{Duration, Instant},
};

const GENESIS_MS: u64 = 1_700_000_000_000;
const OWNERS: usize = 1_000;
const BLOCK_SIZES: [usize; 2] = [1_000, 10_000];

/// A block for the ledger's task to apply, and where to send how long `apply_block` took.
struct Request {
    time_ms: u64,
    transactions: Vec<VerifiedTransaction>,
    reply: sync_mpsc::SyncSender<(Duration, Vec<TxOutcome>)>,
}

fn commit_block(c: &mut Criterion) {
    let accounts = kessai_state::workload::accounts_from_env(1_000_000);
    let started = Instant::now();
    let workload = Workload::new(accounts, OWNERS, GENESIS_MS);
    eprintln!(
        "storage::commit_block setup: {accounts} accounts; workload {:.2?}",
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
                let started = Instant::now();
                let mut ledger = Ledger::open(context, &StoreConfig::default(), genesis)
                    .await
                    .expect("open the ledger");
                eprintln!(
                    "storage::commit_block setup: genesis commit {:.2?}",
                    started.elapsed()
                );
                opened.send(()).expect("the benchmark waits for the ledger");
                while let Some(request) = inbox.next().await {
                    let start = Instant::now();
                    let applied = ledger
                        .apply_block(request.time_ms, &request.transactions)
                        .await
                        .expect("commit the block");
                    let elapsed = start.elapsed();
                    // The benchmark may have stopped listening only because it panicked.
                    let _ = request.reply.send((elapsed, applied.outcomes));
                }
                ledger.close().await.expect("close the ledger");
            })
        });
        ready.recv().expect("the ledger failed to open");

        // Blocks come in height order, one at a time: the next block is after the last one.
        let mut height = 0u64;
        let mut apply = |size: usize| -> (Duration, Vec<TxOutcome>) {
            height += 1;
            let (time_ms, transactions) = workload.block(height, size, 0);
            let transactions = verify_transactions(transactions, &Sequential);
            let (reply, answer) = sync_mpsc::sync_channel(1);
            requests
                .unbounded_send(Request {
                    time_ms,
                    transactions,
                    reply,
                })
                .expect("the ledger task is running");
            answer.recv().expect("the ledger task failed")
        };

        let mut group = c.benchmark_group("storage::commit_block");
        // Only `apply_block` counts towards these times; signing each block (untimed) adds
        // about as much again. Flat sampling: every sample is whole blocks.
        group
            .sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_secs(2))
            .measurement_time(Duration::from_secs(15));
        for size in BLOCK_SIZES {
            let mut checked = false;
            group.throughput(Throughput::Elements(size as u64));
            group.bench_function(BenchmarkId::new("transfers", size), |b| {
                b.iter_custom(|iters| {
                    let mut timed = Duration::ZERO;
                    for _ in 0..iters {
                        let (elapsed, outcomes) = apply(size);
                        timed += elapsed;
                        if !checked {
                            let rejected =
                                outcomes.iter().filter(|o| o.rejection.is_some()).count();
                            assert_eq!(rejected, 0, "every benchmarked transfer must apply");
                            assert_eq!(outcomes.len(), size);
                            checked = true;
                        }
                    }
                    timed
                })
            });
        }
        group.finish();
        // Closing the channel ends the ledger's task, which closes the ledger.
        drop(requests);
        server.join().expect("the ledger task panicked");
    });
}

criterion_group!(benches, commit_block);
criterion_main!(benches);
