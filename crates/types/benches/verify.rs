//! Measures batch verification of transaction signatures, on one core and on all cores.

use commonware_parallel::{Rayon, Sequential};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kessai_types::*;
use std::num::NonZeroUsize;

fn transfers(count: usize) -> Vec<Transaction> {
    let keys: Vec<PrivateKey> = (0..100).map(PrivateKey::from_seed).collect();
    (0..count)
        .map(|index| {
            let body = TxBody {
                network: 1,
                submitter: PartyId::new(&format!("P{}", index % 100)).unwrap(),
                unique_id: UniqueId((index as u128).to_be_bytes()),
                expiry: Expiry::Height(1_000),
                operation: Operation::Transfer(Leg {
                    source: AccountId::new(&format!("A{index}")).unwrap(),
                    target: AccountId::new(&format!("B{index}")).unwrap(),
                    asset: AssetId::new("JPY").unwrap(),
                    quantity: 1 + index as u128,
                }),
            };
            let submitter = body.submitter;
            Transaction::sign(body, &[(submitter, &keys[index % 100])])
        })
        .collect()
}

fn verify(criterion: &mut Criterion) {
    let count = 1_000;
    let transactions = transfers(count);
    let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    let rayon = Rayon::new(NonZeroUsize::new(cores).unwrap()).expect("thread pool");
    let mut group = criterion.benchmark_group("types::verify_transactions");
    group.throughput(Throughput::Elements(count as u64));
    group.sample_size(10);
    group.bench_function("sequential/1000", |bencher| {
        bencher.iter(|| {
            assert!(
                verify_transactions(transactions.clone(), &Sequential)
                    .iter()
                    .all(|t| t.signatures_valid)
            )
        })
    });
    group.bench_function(format!("rayon-{cores}/1000"), |bencher| {
        bencher.iter(|| {
            assert!(
                verify_transactions(transactions.clone(), &rayon)
                    .iter()
                    .all(|t| t.signatures_valid)
            )
        })
    });
    group.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);
