//! Test support for the crash-recovery test: applies workload blocks to a ledger on disk forever
//! (up to a bound), printing `HEIGHT ROOT` after each durable commit, until it is killed.
//!
//! Usage: `crash_writer DIRECTORY [BLOCKS_MAX]`

use commonware_parallel::Sequential;
use commonware_runtime::{Runner as _, tokio};
use kessai_storage::{Ledger, StoreConfig, crash_workload};
use kessai_types::verify_transactions;
use std::io::Write as _;

fn main() {
    let mut arguments = std::env::args().skip(1);
    let directory = arguments
        .next()
        .expect("usage: crash_writer DIRECTORY [BLOCKS_MAX]");
    let blocks_max: u64 = arguments.next().map_or(100_000, |text| {
        text.parse().expect("BLOCKS_MAX is a number")
    });
    let runner = tokio::Runner::new(tokio::Config::new().with_storage_directory(directory));
    runner.start(|context| async move {
        let workload = crash_workload();
        let mut ledger = Ledger::open(context, &StoreConfig::default(), &workload.genesis)
            .await
            .expect("open ledger");
        let mut stdout = std::io::stdout();
        writeln!(stdout, "opened {} {}", ledger.height(), ledger.state_root()).unwrap();
        while ledger.height() < blocks_max {
            let (time_ms, transactions) =
                kessai_storage::crash_block(&workload, ledger.height() + 1);
            let verified = verify_transactions(transactions, &Sequential);
            let applied = ledger
                .apply_block(time_ms, &verified)
                .await
                .expect("apply block");
            writeln!(stdout, "{} {}", applied.height, applied.state_root).unwrap();
            stdout.flush().unwrap();
        }
    });
}
