//! The QMDB-backed ledger against the in-memory reference ledger, its proofs, and its reopening,
//! on Commonware's deterministic runtime.

use commonware_parallel::Sequential;
use commonware_runtime::{Runner as _, Supervisor as _, deterministic};
use kessai_state::{MemoryLedger, StateKey, StateValue, Workload};
use kessai_storage::{Ledger, StoreConfig, decode_proof, encode_proof, verify_proof};
use kessai_types::{Balance, verify_transactions};

const GENESIS_MS: u64 = 1_700_000_000_000;

#[test]
fn qmdb_ledger_matches_reference_and_survives_reopen() {
    deterministic::Runner::seeded(7).start(|context| async move {
        let workload = Workload::new(300, 7, GENESIS_MS);
        let config = StoreConfig::default();
        let mut ledger = Ledger::open(context.child("first"), &config, &workload.genesis)
            .await
            .unwrap();
        let mut reference = MemoryLedger::new(&workload.genesis).unwrap();
        let genesis_root = ledger.state_root();
        let mut roots = vec![genesis_root];
        for height in 1..=20u64 {
            let time_ms = GENESIS_MS + height * 1_000;
            let mut transactions = workload.transfers(height, 150, time_ms + 60_000, 5);
            // Replays of the previous block's transactions: all duplicates.
            if height > 1 {
                transactions.extend(workload.transfers(
                    height - 1,
                    10,
                    GENESIS_MS + (height - 1) * 1_000 + 60_000,
                    5,
                ));
            }
            let verified = verify_transactions(transactions, &Sequential);
            let applied = ledger.apply_block(time_ms, &verified).await.unwrap();
            let expected = reference.apply(time_ms, &verified);
            assert_eq!(
                applied.outcomes, expected,
                "block {height}: outcomes differ from the reference"
            );
            assert_eq!(applied.height, height);
            assert!(
                !roots.contains(&applied.state_root),
                "block {height}: the root must change"
            );
            roots.push(applied.state_root);
            reference.audit();
        }
        for account in workload.accounts() {
            let key = StateKey::Balance(*account, workload.asset);
            let stored = ledger.get(&key).await.unwrap();
            assert_eq!(stored.as_ref(), reference.get(&key), "balance of {account}");
        }
        let root = ledger.state_root();
        ledger.close().await.unwrap();

        // Reopen: same height, same root, and it goes on producing the same roots as the reference.
        let mut reopened = Ledger::open(context.child("second"), &config, &workload.genesis)
            .await
            .unwrap();
        assert_eq!(reopened.height(), 20);
        assert_eq!(reopened.state_root(), root);
        let time_ms = GENESIS_MS + 21_000;
        let verified =
            verify_transactions(workload.transfers(21, 50, time_ms + 60_000, 0), &Sequential);
        let applied = reopened.apply_block(time_ms, &verified).await.unwrap();
        assert_eq!(applied.outcomes, reference.apply(time_ms, &verified));
    });
}

#[test]
fn balance_proofs_verify_against_the_root_only() {
    deterministic::Runner::seeded(11).start(|context| async move {
        let workload = Workload::new(50, 3, GENESIS_MS);
        let mut ledger = Ledger::open(
            context.child("ledger"),
            &StoreConfig::default(),
            &workload.genesis,
        )
        .await
        .unwrap();
        let time_ms = GENESIS_MS + 1_000;
        let verified =
            verify_transactions(workload.transfers(1, 40, time_ms + 60_000, 0), &Sequential);
        ledger.apply_block(time_ms, &verified).await.unwrap();
        let root = ledger.state_root();

        let key = StateKey::Balance(workload.accounts()[3], workload.asset);
        let (value, proof) = ledger
            .prove(&key)
            .await
            .unwrap()
            .expect("the account holds a balance");
        assert!(verify_proof(&root, &key, &value, &proof));

        // The proof survives transport.
        let decoded = decode_proof(&encode_proof(&proof)).unwrap();
        assert!(verify_proof(&root, &key, &value, &decoded));

        // A different balance, key or root does not verify.
        let StateValue::Balance(balance) = value else {
            panic!("not a balance: {value:?}")
        };
        let inflated = StateValue::Balance(Balance {
            available: balance.available + 1,
            ..balance
        });
        assert!(!verify_proof(&root, &key, &inflated, &proof));
        let other_key = StateKey::Balance(workload.accounts()[4], workload.asset);
        assert!(!verify_proof(&root, &other_key, &value, &proof));
        let mut other_root = root;
        other_root.0[0] ^= 1;
        assert!(!verify_proof(&other_root, &key, &value, &proof));

        // After the next block the old proof no longer proves the current state.
        let time_ms = GENESIS_MS + 2_000;
        let verified =
            verify_transactions(workload.transfers(2, 40, time_ms + 60_000, 0), &Sequential);
        ledger.apply_block(time_ms, &verified).await.unwrap();
        assert!(!verify_proof(&ledger.state_root(), &key, &value, &proof));

        // Garbage never panics the decoder.
        let bytes = encode_proof(&proof);
        for cut in 0..bytes.len() {
            let _ = decode_proof(&bytes[..cut]);
        }
        assert!(decode_proof(&[0xff; 64]).is_err());
        assert!(
            ledger
                .prove(&StateKey::Balance(
                    workload.accounts()[0],
                    "USD".parse().unwrap()
                ))
                .await
                .unwrap()
                .is_none()
        );
    });
}

/// Accounts generated from a genesis's synthetic section, written over several commits, are the
/// accounts the section stands for: the same balances and the same outcomes as the reference,
/// and the same root on a second ledger and after reopening.
#[test]
fn synthetic_genesis_accounts_span_commits_and_match_the_reference() {
    deterministic::Runner::seeded(5).start(|context| async move {
        let listed = Workload::new(300, 7, GENESIS_MS);
        let mut genesis = listed.genesis.clone();
        let owners: Vec<_> = genesis.accounts[..7].iter().map(|a| a.owner).collect();
        genesis.accounts.clear();
        genesis.balances.clear();
        // More than one commit's worth (50,000 accounts each), the workload's 300 among them.
        genesis.synthetic = Some(kessai_state::SyntheticAccounts {
            prefix: "ACC".into(),
            count: 120_001,
            owners,
            balances: vec![(listed.asset, kessai_state::workload::OPENING_BALANCE)],
        });
        let config = StoreConfig::default();
        let mut ledger = Ledger::open(context.child("first"), &config, &genesis)
            .await
            .unwrap();
        let twin = Ledger::open(
            context.child("twin"),
            &StoreConfig {
                partition_prefix: "twin".into(),
                ..StoreConfig::default()
            },
            &genesis,
        )
        .await
        .unwrap();
        assert_eq!(twin.state_root(), ledger.state_root());
        let mut reference = MemoryLedger::new(&genesis).unwrap();
        for key in [
            StateKey::Balance("ACC/120000".parse().unwrap(), listed.asset),
            StateKey::Account("ACC/64999".parse().unwrap()),
            StateKey::Asset(listed.asset),
        ] {
            assert_eq!(
                ledger.get(&key).await.unwrap().as_ref(),
                reference.get(&key)
            );
        }
        assert_eq!(
            ledger
                .get(&StateKey::Account("ACC/120001".parse().unwrap()))
                .await
                .unwrap(),
            None
        );
        for height in 1..=3u64 {
            let time_ms = GENESIS_MS + height * 1_000;
            let transfers = listed.transfers(height, 100, time_ms + 60_000, 0);
            let verified = verify_transactions(transfers, &Sequential);
            let applied = ledger.apply_block(time_ms, &verified).await.unwrap();
            assert_eq!(applied.outcomes, reference.apply(time_ms, &verified));
        }
        let root = ledger.state_root();
        ledger.close().await.unwrap();
        let reopened = Ledger::open(context.child("second"), &config, &genesis)
            .await
            .unwrap();
        assert_eq!((reopened.height(), reopened.state_root()), (3, root));
    });
}

/// Superseded operations are pruned as blocks commit, so the log stays near the size of the
/// live state however long the ledger runs; the pruned ledger still matches the reference,
/// proves its balances and reopens at its root.
#[test]
fn superseded_operations_are_pruned_without_changing_the_state() {
    deterministic::Runner::seeded(3).start(|context| async move {
        let workload = Workload::new(200, 7, GENESIS_MS);
        let config = StoreConfig::default();
        let mut ledger = Ledger::open(context.child("first"), &config, &workload.genesis)
            .await
            .unwrap();
        let mut reference = MemoryLedger::new(&workload.genesis).unwrap();
        // 80,000 transfers expiring after 5 s: the live state stays small while the log grows.
        for height in 1..=200u64 {
            let time_ms = GENESIS_MS + height * 1_000;
            let transfers = workload.transfers(height, 400, time_ms + 5_000, 0);
            let verified = verify_transactions(transfers, &Sequential);
            let applied = ledger.apply_block(time_ms, &verified).await.unwrap();
            assert_eq!(applied.outcomes, reference.apply(time_ms, &verified));
        }
        let operations = ledger.operations();
        // Whole sections of 65,536 operations are pruned: most of what was written is gone.
        assert!(
            operations.start >= 2 * 65_536
                && operations.end - operations.start < operations.end / 2,
            "superseded operations pruned: {operations:?}"
        );
        let root = ledger.state_root();
        for account in &workload.accounts()[..20] {
            let key = StateKey::Balance(*account, workload.asset);
            let (value, proof) = ledger.prove(&key).await.unwrap().expect("a balance");
            assert_eq!(Some(&value), reference.get(&key));
            assert!(verify_proof(&root, &key, &value, &proof));
        }
        ledger.close().await.unwrap();
        let mut reopened = Ledger::open(context.child("second"), &config, &workload.genesis)
            .await
            .unwrap();
        assert_eq!((reopened.height(), reopened.state_root()), (200, root));
        assert_eq!(reopened.operations(), operations);
        let time_ms = GENESIS_MS + 201_000;
        let verified =
            verify_transactions(workload.transfers(201, 50, time_ms + 5_000, 0), &Sequential);
        let applied = reopened.apply_block(time_ms, &verified).await.unwrap();
        assert_eq!(applied.outcomes, reference.apply(time_ms, &verified));
    });
}
