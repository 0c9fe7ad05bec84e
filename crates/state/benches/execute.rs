//! Applied transfers per second of the pure state machine (`MemoryLedger::apply`) on one core.
//!
//! One in-memory ledger of `KESSAI_BENCH_ACCOUNTS` funded accounts (default 1,000,000, owned by
//! 1,000 parties) receives a stream of blocks of 1,000 or 10,000 transfers between pseudo-random
//! accounts. Each block is signed and its signatures checked before the clock starts: only
//! `apply` (read-set prefetch, execution, invariant checks and writing the effects back) is
//! timed. Every block gets a fresh seed, so its unique ids are new and every transfer applies.

use commonware_parallel::Sequential;
use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use kessai_state::{MemoryLedger, Workload};
use kessai_types::{VerifiedTransaction, verify_transactions};
use std::time::{Duration, Instant};

const GENESIS_MS: u64 = 1_700_000_000_000;
const OWNERS: usize = 1_000;
const BLOCK_SIZES: [usize; 2] = [1_000, 10_000];

/// The time and verified transfers of the block after `height`.
fn next_block(workload: &Workload, height: u64, size: usize) -> (u64, Vec<VerifiedTransaction>) {
    let (time_ms, transactions) = workload.block(height + 1, size, 0);
    (time_ms, verify_transactions(transactions, &Sequential))
}

fn apply_block(c: &mut Criterion) {
    let accounts = kessai_state::workload::accounts_from_env(1_000_000);
    let started = Instant::now();
    let workload = Workload::new(accounts, OWNERS, GENESIS_MS);
    let built = started.elapsed();
    let mut ledger = MemoryLedger::new(&workload.genesis).expect("valid genesis");
    eprintln!(
        "state::apply_block setup: {accounts} accounts; workload {built:.2?}, ledger {:.2?}",
        started.elapsed() - built
    );

    let mut group = c.benchmark_group("state::apply_block");
    // Only `apply` counts towards these times; signing each block (untimed) takes about three
    // times as long again, so keep them short. Flat sampling: every sample is whole blocks.
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(10));
    for size in BLOCK_SIZES {
        let mut checked = false;
        group.throughput(Throughput::Elements(size as u64));
        group.bench_function(BenchmarkId::new("transfers", size), |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    let (time_ms, verified) = next_block(&workload, ledger.height(), size);
                    let start = Instant::now();
                    let outcomes = ledger.apply(time_ms, &verified);
                    timed += start.elapsed();
                    if !checked {
                        let rejected = outcomes.iter().filter(|o| o.rejection.is_some()).count();
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
}

criterion_group!(benches, apply_block);
criterion_main!(benches);
