//! `kessai sim` as a user runs it: the default comparison of 8 cases on a tiny book, its files,
//! and bad flags refused with a clear message before anything runs.

use std::process::{Command, Output};

fn sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kessai"))
        .arg("sim")
        .args(args)
        .output()
        .expect("kessai runs")
}

#[test]
fn the_default_cases_print_a_table_and_write_csv_files_and_charts() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out");
    let run = sim(&[
        "--seeds",
        "2",
        "--days",
        "5",
        "--contracts",
        "12",
        "--parties",
        "3",
        "--audit",
        "--output",
        output.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    // Two scenarios x (1 or 5 collateral) x (threshold 0 or 2 %).
    let rows: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("normal ") || l.starts_with("high-volatility "))
        .collect();
    assert_eq!(rows.len(), 8, "{stdout}");
    assert!(
        rows[0].contains("100 [100-100]"),
        "the baseline indexes itself: {stdout}"
    );
    for file in [
        "runs.csv",
        "summary.csv",
        "paths-normal.csv",
        "paths-normal.png",
        "index-normal.png",
        "paths-high-volatility.png",
        "index-high-volatility.png",
    ] {
        assert!(output.join(file).is_file(), "{file} missing");
    }
    let runs = std::fs::read_to_string(output.join("runs.csv")).unwrap();
    // A header and 2 scenarios x 4 cases x 2 seeds.
    assert_eq!(runs.lines().count(), 1 + 16, "{runs}");
}

#[test]
fn bad_flags_are_refused_with_what_is_allowed() {
    for (args, expected) in [
        (&["--threshold", "0.001"][..], "whole basis points"),
        (&["--haircut", "150"][..], "0 to 100 percent"),
        (&["--collateral", "6"][..], "1 to 5"),
        (
            &["--scenario", "crash"][..],
            "one of normal, sharp-rise, sharp-fall, high-volatility",
        ),
        (
            &["--prices", "/nonexistent.csv"][..],
            "cannot read /nonexistent.csv",
        ),
    ] {
        let run = sim(&[
            &["--days", "2", "--contracts", "2", "--seeds", "1"][..],
            args,
        ]
        .concat());
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "{args:?} was accepted");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}
