//! The simulator end to end: deterministic from its seed, every ledger invariant holding after
//! every simulated day, and the cases of one seed trading the same book.

use kessai_sim::{
    BASELINE, Config, FIGURES, Source,
    market::Scenario,
    run::{Case, Portfolio},
    simulate, write_outputs,
};

fn config(scenario: &str, seeds: u64) -> Config {
    Config {
        source: Source::Scenarios(vec![scenario.parse::<Scenario>().unwrap()]),
        first_seed: 11,
        seeds,
        days: 12,
        portfolio: Portfolio {
            contracts: 40,
            parties: 4,
            haircut_bps: 200,
            terms: vec![1, 5, 15],
            rate: "0.001".parse().unwrap(),
        },
        cases: vec![
            BASELINE,
            Case {
                collateral: 1,
                threshold_bps: 200,
            },
            Case {
                collateral: 5,
                threshold_bps: 0,
            },
            Case {
                collateral: 5,
                threshold_bps: 200,
            },
        ],
        audit: true,
        threads: 2,
    }
}

#[test]
fn the_same_seed_gives_identical_output_and_every_invariant_holds_every_day() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let first = simulate(config("high-volatility", 2), &|| ()).unwrap();
    write_outputs(&first, &a).unwrap();
    // A single thread runs the jobs in another order: the output must not change.
    let mut again = config("high-volatility", 2);
    again.threads = 1;
    let second = simulate(again, &|| ()).unwrap();
    write_outputs(&second, &b).unwrap();
    for file in ["runs.csv", "summary.csv", "paths-high-volatility.csv"] {
        let (x, y) = (
            std::fs::read(a.join(file)).unwrap(),
            std::fs::read(b.join(file)).unwrap(),
        );
        assert_eq!(x, y, "{file} differs between two runs of the same seeds");
    }
    for chart in ["paths-high-volatility.png", "index-high-volatility.png"] {
        assert!(
            std::fs::metadata(a.join(chart)).unwrap().len() > 1_000,
            "{chart}"
        );
    }
    assert_eq!(first.runs.len(), 2 * 4);
    for run in &first.runs {
        let f = &run.figures;
        // Each day, each of the 40 contracts is marked or matures (and rolls); every roll and
        // margin call settled.
        assert_eq!(f.marks + f.maturities, 40 * 12, "{run:?}");
        assert!(f.maturities >= 40 * 12 / 15, "{run:?}");
        assert_eq!(f.margin_calls_failed, 0, "{run:?}");
        assert!(f.margin_calls > 0 && f.token_transfers > 0, "{run:?}");
    }
    // Another seed is another market and book.
    let other = simulate(
        Config {
            first_seed: 12,
            seeds: 1,
            ..config("high-volatility", 1)
        },
        &|| (),
    )
    .unwrap();
    assert_ne!(other.runs[0].figures, first.runs[0].figures);
}

#[test]
fn a_threshold_cuts_the_margin_calls_of_the_same_book() {
    let report = simulate(config("normal", 1), &|| ()).unwrap();
    let of = |case: Case| report.runs.iter().find(|r| r.case == case).unwrap().figures;
    let (plain, threshold) = (
        of(BASELINE),
        of(Case {
            collateral: 1,
            threshold_bps: 200,
        }),
    );
    // Without a threshold nearly every contract is called every day; 2 % filters most calls.
    assert!(
        plain.margin_calls > 3 * threshold.margin_calls,
        "{plain:?} {threshold:?}"
    );
    // The baseline indexes itself at exactly 100.
    let base = report.runs.iter().find(|r| r.case == BASELINE).unwrap();
    for figure in &FIGURES {
        assert_eq!(
            report.index_of(base, figure),
            Some(10_000),
            "{}",
            figure.column
        );
    }
}
