//! Crash recovery with a real process: a writer commits blocks to disk and is killed with
//! SIGKILL at arbitrary moments, several times. The reopened ledger must be exactly at a
//! committed block (never behind one it reported), with the root an uninterrupted run computes,
//! also when the kills fall around the pruning of the operation log.

use commonware_parallel::Sequential;
use commonware_runtime::{Runner as _, tokio};
use kessai_storage::{Ledger, StoreConfig, crash_block, crash_workload};
use kessai_types::verify_transactions;
use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

/// Run the writer until it has reported `blocks` more commits, wait `delay_ms`, then SIGKILL it.
fn run_and_kill(
    directory: &std::path::Path,
    blocks: usize,
    delay_ms: u64,
    reported: &mut BTreeMap<u64, String>,
) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_crash_writer"))
        .arg(directory)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the writer");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let opened = lines.next().expect("writer reports opening").unwrap();
    eprintln!("writer {opened}");
    let mut opened = opened.split_whitespace().skip(1);
    let height: u64 = opened.next().unwrap().parse().unwrap();
    let root = opened.next().unwrap().to_string();
    // What it reopened must be a state it had reported committing (or genesis).
    if let Some(expected) = reported.get(&height) {
        assert_eq!(
            &root, expected,
            "reopened at height {height} with a different root"
        );
    }
    assert!(
        height >= reported.keys().next_back().copied().unwrap_or(0),
        "lost a reported commit"
    );
    for _ in 0..blocks {
        let line = lines.next().expect("writer died early").unwrap();
        let (height, root) = line.split_once(' ').unwrap();
        reported.insert(height.parse().unwrap(), root.to_string());
    }
    std::thread::sleep(Duration::from_millis(delay_ms));
    child.kill().expect("SIGKILL the writer");
    child.wait().unwrap();
}

#[test]
fn kill_dash_nine_never_loses_or_corrupts_a_commit() {
    let directory = tempfile::tempdir().unwrap();
    let mut reported = BTreeMap::new();
    // Long rounds too, so that the log is pruned (a section of 65,536 operations at a time)
    // between and around the kills.
    for (round, (blocks, delay_ms)) in [(5, 0), (150, 7), (8, 2), (150, 13), (120, 1)]
        .into_iter()
        .enumerate()
    {
        run_and_kill(directory.path(), blocks, delay_ms, &mut reported);
        assert!(!reported.is_empty(), "round {round}: nothing committed");
    }
    let last_reported = *reported.keys().next_back().unwrap();

    // Reopen in this process and compare with an uninterrupted run in a fresh directory.
    let reopened_directory = directory.path().to_path_buf();
    let (height, root) = tokio::Runner::new(
        tokio::Config::new().with_storage_directory(reopened_directory),
    )
    .start(|context| async move {
        let ledger = Ledger::open(context, &StoreConfig::default(), &crash_workload().genesis)
            .await
            .unwrap();
        assert!(
            ledger.operations().start > 0,
            "the writer's log was never pruned: {:?}",
            ledger.operations()
        );
        (ledger.height(), ledger.state_root().to_string())
    });
    eprintln!("reported commits up to {last_reported} over 5 kills; reopened at {height}");
    assert!(
        height >= last_reported,
        "reopened at {height}, below the reported commit {last_reported}"
    );
    assert!(
        height <= last_reported + 1,
        "reopened at {height}, beyond anything written"
    );
    if let Some(expected) = reported.get(&height) {
        assert_eq!(&root, expected);
    }

    let fresh = tempfile::tempdir().unwrap();
    let reference = tokio::Runner::new(tokio::Config::new().with_storage_directory(fresh.path()))
        .start(|context| async move {
            let workload = crash_workload();
            let mut ledger = Ledger::open(context, &StoreConfig::default(), &workload.genesis)
                .await
                .unwrap();
            let mut roots = BTreeMap::new();
            while ledger.height() < height {
                let (time_ms, transactions) = crash_block(&workload, ledger.height() + 1);
                let applied = ledger
                    .apply_block(time_ms, &verify_transactions(transactions, &Sequential))
                    .await
                    .unwrap();
                roots.insert(applied.height, applied.state_root.to_string());
            }
            roots
        });
    assert_eq!(
        reference[&height], root,
        "recovered root differs from an uninterrupted run"
    );
    for (height, root) in &reported {
        assert_eq!(
            &reference[height], root,
            "the writer reported a root at {height} an uninterrupted run does not produce"
        );
    }
}
