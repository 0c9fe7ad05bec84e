//! Expired replay records are pruned in bounded work per block, in few execution rounds.

use commonware_parallel::Sequential;
use kessai_state::{StateKey, Workload, execute::PRUNE_ENTRIES_PER_BLOCK_MAX};
use kessai_types::verify_transactions;

#[test]
fn a_bucket_of_many_entry_lists_is_pruned_in_bounded_rounds() {
    let minute = 60_000u64;
    let genesis_ms = 28_333_334 * minute; // the start of a minute
    let workload = Workload::new(500, 5, genesis_ms);
    let mut ledger = kessai_state::MemoryLedger::new(&workload.genesis).unwrap();
    // 100 blocks whose transactions all expire in the same minute: 100 entry lists in one bucket.
    let blocks = 100u64;
    let per_block = 20;
    let expiry_ms = genesis_ms + minute + 30_000;
    for height in 1..=blocks {
        let time_ms = genesis_ms + height * 100;
        let verified = verify_transactions(
            workload.transfers(height, per_block, expiry_ms, 0),
            &Sequential,
        );
        let outcomes = ledger.apply(time_ms, &verified);
        assert!(outcomes.iter().all(|o| o.rejection.is_none()));
    }
    let replay_records = |ledger: &kessai_state::MemoryLedger| {
        ledger.count(|key| matches!(key, StateKey::Replay(..)))
    };
    assert_eq!(replay_records(&ledger), blocks as usize * per_block);

    // The first block after the bucket's minute prunes at most the per-block list budget, and
    // needs at most three executions (headers, then lists) rather than one per list.
    let after = genesis_ms + 2 * minute;
    ledger.apply(after, &[]);
    assert!(
        ledger.last_rounds() <= 3,
        "pruning took {} execution rounds",
        ledger.last_rounds()
    );
    let pruned = PRUNE_ENTRIES_PER_BLOCK_MAX as usize * per_block;
    assert_eq!(
        replay_records(&ledger),
        blocks as usize * per_block - pruned
    );
    ledger.apply(after + 1_000, &[]);
    assert!(ledger.last_rounds() <= 3);
    assert_eq!(replay_records(&ledger), 0);
    assert_eq!(
        ledger.count(|key| matches!(
            key,
            StateKey::ExpiryEntries(..) | StateKey::ExpiryBucket(..)
        )),
        0
    );
    ledger.audit();
}
