//! Pins the figures of a small case against values computed independently of the Rust code.
//!
//! How the expectations were derived: `crates/sim/tests/pinned_case.py` (run it with
//! `python3 crates/sim/tests/pinned_case.py`) re-implements with exact fractions, from their
//! documentation, the repo module's valuation, rounding and margin-call rules (the doc comment of
//! `crates/state/src/modules/repo.rs`) and the simulator's calendar, block times and figures
//! (`crates/sim/src/run.rs`), and prints each case's figures with a trace of every marking, call,
//! start and maturity fee. It calls no Rust. The only inputs it copies from the simulator are the
//! book's draws for seed 24 (who lends to whom, the principal and its quantity, the collateral
//! ranking), which are drawn from the seed, not computed from the rules.
//!
//! The case: six closes of a JGB (per 100 face), a JPY equity and a USD equity with one FX rate
//! (USD/JPY), three parties, three contracts (a JP equity lent against the JGB, the JGB lent
//! against the JP equity, the US equity lent against the JGB; two of them between the same
//! parties in opposite directions, so that the pair nets), a 2 % haircut and a 0.1 % fee. The
//! moves are picked so that, with a 2 % threshold, some calls are due and some are not (one
//! day's move puts one contract at 1.98 % and its mirror at 2.02 %), and one contract's prices do
//! not move at all on one day (no call even without a threshold). With two-day terms every
//! contract is marked once between rolls; with three-day terms twice, so that the calls a
//! threshold skips show in the next day's net exposure.
//!
//! If a change to the ledger or the simulator moves these figures on purpose, change the script
//! first and copy its output here: never the other way round.

use kessai_sim::{
    BASELINE, Config, Source,
    market::Market,
    run::{Case, Figures, Portfolio},
    simulate,
};

/// The closing prices (`date,asset,class,currency,price`), the same as `CLOSES` in the script.
const PRICES: &str = "\
date,asset,class,currency,price
2025-01-08,JGB-10Y,bond,JPY,100.250
2025-01-08,JP-EQUITY,equity,JPY,2700.0
2025-01-08,US-EQUITY,equity,USD,161.01
2025-01-09,JGB-10Y,bond,JPY,100.100
2025-01-09,JP-EQUITY,equity,JPY,2781.0
2025-01-09,US-EQUITY,equity,USD,162.50
2025-01-10,JGB-10Y,bond,JPY,99.900
2025-01-10,JP-EQUITY,equity,JPY,2650.0
2025-01-10,US-EQUITY,equity,USD,158.40
2025-01-13,JGB-10Y,bond,JPY,99.900
2025-01-13,JP-EQUITY,equity,JPY,2702.5
2025-01-13,US-EQUITY,equity,USD,158.40
2025-01-14,JGB-10Y,bond,JPY,100.050
2025-01-14,JP-EQUITY,equity,JPY,2690.0
2025-01-14,US-EQUITY,equity,USD,160.00
2025-01-15,JGB-10Y,bond,JPY,100.150
2025-01-15,JP-EQUITY,equity,JPY,2700.0
2025-01-15,US-EQUITY,equity,USD,155.00
";

/// The FX rates (`date,base,quote,rate`).
const RATES: &str = "\
date,base,quote,rate
2025-01-08,USD,JPY,150.000
2025-01-09,USD,JPY,150.250
2025-01-10,USD,JPY,149.500
2025-01-13,USD,JPY,149.500
2025-01-14,USD,JPY,151.000
2025-01-15,USD,JPY,148.500
";

/// The seed whose book the script takes as its input.
const SEED: u64 = 24;

const THRESHOLD: Case = Case {
    collateral: 1,
    threshold_bps: 200,
};

/// Run the pinned case with every contract's term `term_days`; the figures of the baseline and
/// of the 2 % threshold.
fn figures(term_days: u32) -> (Figures, Figures) {
    let dir = tempfile::tempdir().unwrap();
    let (prices, rates) = (dir.path().join("prices.csv"), dir.path().join("rates.csv"));
    std::fs::write(&prices, PRICES).unwrap();
    std::fs::write(&rates, RATES).unwrap();
    let market = Market::load(&prices, Some(&rates), "JPY".parse().unwrap(), 5).unwrap();
    assert_eq!(market.days.len(), 6);
    let config = Config {
        source: Source::History(Box::new(market)),
        first_seed: SEED,
        seeds: 1,
        days: 5,
        portfolio: Portfolio {
            contracts: 3,
            parties: 3,
            haircut_bps: 200,
            terms: vec![term_days],
            rate: "0.001".parse().unwrap(),
        },
        cases: vec![BASELINE, THRESHOLD],
        audit: true,
        threads: 1,
    };
    let report = simulate(config, &|| ()).unwrap();
    assert_eq!(report.runs.len(), 2);
    let of = |case: Case| {
        let run = report.runs.iter().find(|r| r.case == case).unwrap();
        assert_eq!((run.scenario.as_str(), run.seed), ("history", SEED));
        run.figures
    };
    (of(BASELINE), of(THRESHOLD))
}

#[test]
fn two_day_terms_give_the_independently_computed_figures() {
    let (baseline, threshold) = figures(2);
    assert_eq!(
        baseline,
        Figures {
            net_exposure_mean: 2_218_373_253,
            net_exposure_peak: 3_691_308_119,
            margin_calls: 8,
            margin_calls_failed: 0,
            margin_call_value: 10_325_734_521,
            token_transfers: 44,
            marks: 9,
            maturities: 6,
        }
    );
    // Each contract is marked once between rolls, before its call settles: the threshold
    // changes the calls, not the day's exposure.
    assert_eq!(
        threshold,
        Figures {
            net_exposure_mean: 2_218_373_253,
            net_exposure_peak: 3_691_308_119,
            margin_calls: 4,
            margin_calls_failed: 0,
            margin_call_value: 8_200_261_251,
            token_transfers: 40,
            marks: 9,
            maturities: 6,
        }
    );
}

#[test]
fn three_day_terms_give_the_independently_computed_figures() {
    let (baseline, threshold) = figures(3);
    assert_eq!(
        baseline,
        Figures {
            net_exposure_mean: 3_753_590_873,
            net_exposure_peak: 8_179_258_359,
            margin_calls: 12,
            margin_calls_failed: 0,
            margin_call_value: 17_141_042_371,
            token_transfers: 33,
            marks: 12,
            maturities: 3,
        }
    );
    assert_eq!(
        threshold,
        Figures {
            net_exposure_mean: 3_524_355_508,
            net_exposure_peak: 7_415_120_262,
            margin_calls: 5,
            margin_calls_failed: 0,
            margin_call_value: 11_282_128_169,
            token_transfers: 26,
            marks: 12,
            maturities: 3,
        }
    );
}
