//! The market scenario simulator: how collateral diversification and a margin-call threshold
//! change net credit exposure and liquidity needs of a repo book, in normal markets and in
//! turmoil. Each run drives the real repo module (mark-to-market walk, margin calls, maturities)
//! on an in-memory ledger, deterministically from a seed. `docs/simulator.md` defines the
//! figures and the scenarios.

pub mod chart;
pub mod market;
pub mod run;

use market::{Market, Scenario};
use run::{Case, Figures, Portfolio, SimError};
use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

/// The case every other one is indexed against: one collateral security, no threshold.
pub const BASELINE: Case = Case {
    collateral: 1,
    threshold_bps: 0,
};

/// Where the closing values come from.
#[derive(Clone, Debug)]
pub enum Source {
    /// Generated paths, one per scenario and seed.
    Scenarios(Vec<Scenario>),
    /// Real history from CSV files: the same path for every seed (seeds vary the book).
    History(Box<Market>),
}

#[derive(Clone, Debug)]
pub struct Config {
    pub source: Source,
    pub first_seed: u64,
    pub seeds: u64,
    /// Business days after day 0 (generated paths; a history is cut to this many).
    pub days: usize,
    pub portfolio: Portfolio,
    /// The cases; the baseline is added when missing, for the indexes.
    pub cases: Vec<Case>,
    /// Check every ledger invariant after each simulated day.
    pub audit: bool,
    pub threads: usize,
}

/// One figure of a run, in hundredths (money in hundredths of the valuation currency; counts
/// times 100), so that means and indexes stay exact integers.
pub struct Figure {
    pub column: &'static str,
    pub title: &'static str,
    pub money: bool,
    pub of: fn(&Figures) -> i128,
}

pub const FIGURES: [Figure; 5] = [
    Figure {
        column: "net_exposure_mean",
        title: "Net credit exposure, daily mean",
        money: true,
        of: |f| f.net_exposure_mean,
    },
    Figure {
        column: "net_exposure_peak",
        title: "Net credit exposure, peak",
        money: true,
        of: |f| f.net_exposure_peak,
    },
    Figure {
        column: "margin_calls",
        title: "Margin calls",
        money: false,
        of: |f| f.margin_calls as i128 * 100,
    },
    Figure {
        column: "margin_call_value",
        title: "Value of margin calls",
        money: true,
        of: |f| f.margin_call_value,
    },
    Figure {
        column: "token_transfers",
        title: "Token transfers",
        money: false,
        of: |f| f.token_transfers as i128 * 100,
    },
];

/// The result of one scenario, case and seed.
#[derive(Clone, Debug)]
pub struct RunResult {
    pub scenario: String,
    pub case: Case,
    pub seed: u64,
    pub figures: Figures,
}

/// `value` as a percentage of `base` in hundredths, rounded half-up (`None` when `base` is 0).
pub fn index(value: i128, base: i128) -> Option<i128> {
    (base > 0).then(|| (20_000 * value + base) / (2 * base))
}

/// The mean of `values` rounded half-up.
fn mean(values: &[i128]) -> i128 {
    let n = values.len().max(1) as i128;
    (2 * values.iter().sum::<i128>() + n) / (2 * n)
}

/// Hundredths as a decimal with two places and thousands separators.
pub fn hundredths(value: i128) -> String {
    let (sign, value) = if value < 0 {
        ("-", -value)
    } else {
        ("", value)
    };
    let whole = (value / 100).to_string();
    let mut grouped = String::new();
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    format!("{sign}{grouped}.{:02}", value % 100)
}

/// The simulator's output: every run and the figures each case averages over the seeds.
pub struct Report {
    pub runs: Vec<RunResult>,
    /// Scenario names in order.
    pub scenarios: Vec<String>,
    pub cases: Vec<Case>,
    pub config: Config,
}

/// A figure of one scenario and case over the seeds: mean, min, max, and the same of its index.
pub struct Summary {
    pub mean: i128,
    pub min: i128,
    pub max: i128,
    pub index: Option<(i128, i128, i128)>,
}

impl Report {
    fn result(&self, scenario: &str, case: Case, seed: u64) -> &RunResult {
        self.runs
            .iter()
            .find(|r| r.scenario == scenario && r.case == case && r.seed == seed)
            .expect("every scenario, case and seed ran")
    }

    /// The index of `figure` for one run against the baseline of its scenario and seed.
    pub fn index_of(&self, run: &RunResult, figure: &Figure) -> Option<i128> {
        let base = self.result(&run.scenario, BASELINE, run.seed);
        index((figure.of)(&run.figures), (figure.of)(&base.figures))
    }

    pub fn summary(&self, scenario: &str, case: Case, figure: &Figure) -> Summary {
        let runs: Vec<&RunResult> = self
            .runs
            .iter()
            .filter(|r| r.scenario == scenario && r.case == case)
            .collect();
        let values: Vec<i128> = runs.iter().map(|r| (figure.of)(&r.figures)).collect();
        let indexes: Option<Vec<i128>> = runs.iter().map(|r| self.index_of(r, figure)).collect();
        Summary {
            mean: mean(&values),
            min: values.iter().copied().min().unwrap_or(0),
            max: values.iter().copied().max().unwrap_or(0),
            index: indexes.map(|v| {
                let (min, max) = (v.iter().copied().min(), v.iter().copied().max());
                (mean(&v), min.unwrap_or(0), max.unwrap_or(0))
            }),
        }
    }

    /// The comparison table: each case's figures (mean over the seeds, in millions of the
    /// valuation currency or in counts) and their index against the baseline (mean and range).
    pub fn table(&self) -> String {
        let shown = [&FIGURES[0], &FIGURES[2], &FIGURES[3], &FIGURES[4]];
        let mut out = String::new();
        let _ = write!(out, "{:<16} {:>4} {:>6}", "scenario", "coll", "thresh");
        for figure in shown {
            let unit = if figure.money { " (mn)" } else { "" };
            let title = format!("{}{unit}", short(figure.column));
            let _ = write!(out, " | {title:>14} {:>17}", "index [range]");
        }
        out.push('\n');
        for scenario in &self.scenarios {
            for case in &self.cases {
                let _ = write!(
                    out,
                    "{:<16} {:>4} {:>5}%",
                    scenario,
                    case.collateral,
                    hundredths(case.threshold_bps as i128)
                );
                for figure in shown {
                    let summary = self.summary(scenario, *case, figure);
                    // Money in millions (hundredths / 10^8, one decimal), counts whole.
                    let value = if figure.money {
                        format!("{:.1}", summary.mean as f64 / 1e8)
                    } else {
                        format!("{:.0}", summary.mean as f64 / 100.0)
                    };
                    let index = match summary.index {
                        Some((mean, min, max)) => format!(
                            "{:.0} [{:.0}-{:.0}]",
                            mean as f64 / 100.0,
                            min as f64 / 100.0,
                            max as f64 / 100.0
                        ),
                        None => "n/a".into(),
                    };
                    let _ = write!(out, " | {value:>14} {index:>17}");
                }
                out.push('\n');
            }
        }
        out
    }
}

fn short(column: &str) -> &str {
    match column {
        "net_exposure_mean" => "net exposure",
        "margin_calls" => "calls",
        "margin_call_value" => "call value",
        "token_transfers" => "transfers",
        other => other,
    }
}

/// Run every scenario, case and seed on `threads` threads, calling `tick` after each simulated
/// day. Results come back in a fixed order whatever the threads did.
pub fn simulate(config: Config, tick: &(dyn Fn() + Sync)) -> Result<Report, SimError> {
    let mut cases = config.cases.clone();
    if !cases.contains(&BASELINE) {
        cases.insert(0, BASELINE);
    }
    let scenarios: Vec<String> = match &config.source {
        Source::Scenarios(list) => list.iter().map(|s| s.name.to_owned()).collect(),
        Source::History(_) => vec!["history".to_owned()],
    };
    let mut jobs = Vec::new();
    for scenario in 0..scenarios.len() {
        for seed in config.first_seed..config.first_seed + config.seeds {
            for case in &cases {
                jobs.push((scenario, seed, *case));
            }
        }
    }
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<Figures, SimError>>>> =
        Mutex::new((0..jobs.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..config.threads.max(1) {
            scope.spawn(|| {
                loop {
                    let job = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(scenario, seed, case)) = jobs.get(job) else {
                        return;
                    };
                    let market = config.market(scenario, seed);
                    let outcome =
                        run::run(&market, &config.portfolio, case, seed, config.audit, tick);
                    let failed = outcome.is_err();
                    results.lock().expect("no thread panics holding it")[job] = Some(outcome);
                    if failed {
                        // Stop handing out work: the first failure is the answer.
                        next.store(jobs.len(), Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let mut runs = Vec::with_capacity(jobs.len());
    for ((scenario, seed, case), outcome) in jobs.iter().zip(results.into_inner().expect("joined"))
    {
        let figures = outcome.unwrap_or_else(|| Err(SimError::Config("not run".into())));
        runs.push(RunResult {
            scenario: scenarios[*scenario].clone(),
            case: *case,
            seed: *seed,
            figures: figures?,
        });
    }
    Ok(Report {
        runs,
        scenarios,
        cases,
        config,
    })
}

impl Config {
    /// The market of scenario `index` for `seed`.
    pub fn market(&self, index: usize, seed: u64) -> Market {
        match &self.source {
            Source::Scenarios(list) => Market::generate(&list[index], seed, self.days),
            Source::History(market) => (**market).clone(),
        }
    }

    /// Days each run simulates, day 0 included (for a progress bar).
    pub fn days_per_run(&self) -> usize {
        match &self.source {
            Source::Scenarios(_) => self.days + 1,
            Source::History(market) => market.days.len(),
        }
    }
}

/// Write `runs.csv`, `summary.csv`, each scenario's first-seed paths (`paths-<scenario>.csv` and
/// `.png`) and the indexed figures (`index-<scenario>.png`) into `folder`.
pub fn write_outputs(report: &Report, folder: &Path) -> Result<Vec<PathBuf>, OutputError> {
    std::fs::create_dir_all(folder).map_err(|e| OutputError::new(folder, e))?;
    let mut written = Vec::new();
    let path = folder.join("runs.csv");
    let mut csv = writer(&path)?;
    let mut header: Vec<String> = [
        "scenario",
        "seed",
        "collateral",
        "threshold_bps",
        "haircut_bps",
        "contracts",
        "parties",
    ]
    .map(String::from)
    .to_vec();
    header.extend(FIGURES.iter().map(|f| f.column.to_owned()));
    header.extend(["margin_calls_failed", "marks", "maturities"].map(String::from));
    header.extend(FIGURES.iter().map(|f| format!("index_{}", f.column)));
    record(&mut csv, &path, header)?;
    let portfolio = &report.config.portfolio;
    for run in &report.runs {
        let mut row = vec![
            run.scenario.clone(),
            run.seed.to_string(),
            run.case.collateral.to_string(),
            run.case.threshold_bps.to_string(),
            portfolio.haircut_bps.to_string(),
            portfolio.contracts.to_string(),
            portfolio.parties.to_string(),
        ];
        row.extend(FIGURES.iter().map(|f| plain((f.of)(&run.figures), f.money)));
        row.push(run.figures.margin_calls_failed.to_string());
        row.push(run.figures.marks.to_string());
        row.push(run.figures.maturities.to_string());
        row.extend(FIGURES.iter().map(|f| {
            report
                .index_of(run, f)
                .map_or(String::new(), |i| plain(i, true))
        }));
        record(&mut csv, &path, row)?;
    }
    finish(csv, &path)?;
    written.push(path);

    let path = folder.join("summary.csv");
    let mut csv = writer(&path)?;
    let header = [
        "scenario",
        "collateral",
        "threshold_bps",
        "figure",
        "mean",
        "min",
        "max",
        "index_mean",
        "index_min",
        "index_max",
    ];
    record(&mut csv, &path, header.map(String::from).to_vec())?;
    for scenario in &report.scenarios {
        for case in &report.cases {
            for figure in &FIGURES {
                let s = report.summary(scenario, *case, figure);
                let mut row = vec![
                    scenario.clone(),
                    case.collateral.to_string(),
                    case.threshold_bps.to_string(),
                    figure.column.to_owned(),
                ];
                row.extend([s.mean, s.min, s.max].map(|v| plain(v, figure.money)));
                match s.index {
                    Some((mean, min, max)) => row.extend([mean, min, max].map(|v| plain(v, true))),
                    None => row.extend([String::new(), String::new(), String::new()]),
                }
                record(&mut csv, &path, row)?;
            }
        }
    }
    finish(csv, &path)?;
    written.push(path);

    for (index, scenario) in report.scenarios.iter().enumerate() {
        let market = report.config.market(index, report.config.first_seed);
        written.extend(write_paths(&market, scenario, folder)?);
        let groups: Vec<chart::BarGroup> = [&FIGURES[0], &FIGURES[2], &FIGURES[3], &FIGURES[4]]
            .iter()
            .map(|figure| chart::BarGroup {
                title: figure.title.to_owned(),
                bars: report
                    .cases
                    .iter()
                    .filter_map(|case| {
                        let (mean, min, max) = report.summary(scenario, *case, figure).index?;
                        Some(chart::Bar {
                            label: format!(
                                "{} coll, {}%",
                                case.collateral,
                                hundredths(case.threshold_bps as i128)
                            ),
                            mean: mean as f64 / 100.0,
                            min: min as f64 / 100.0,
                            max: max as f64 / 100.0,
                        })
                    })
                    .collect(),
            })
            .collect();
        let path = folder.join(format!("index-{scenario}.png"));
        let title = format!(
            "{scenario}: figures indexed to 1 collateral, no threshold (= 100), mean and range over {} seeds",
            report.config.seeds
        );
        chart::bars(&path, &title, "index", Some(100.0), &groups)?;
        written.push(path);
    }
    Ok(written)
}

/// The first seed's closing values of one scenario as CSV, and each value indexed to 100 as a
/// chart (securities in the valuation currency, so FX moves show).
fn write_paths(
    market: &Market,
    scenario: &str,
    folder: &Path,
) -> Result<Vec<PathBuf>, OutputError> {
    let path = folder.join(format!("paths-{scenario}.csv"));
    let mut csv = writer(&path)?;
    let mut header = vec!["day".to_owned(), "date".to_owned()];
    header.extend(market.securities.iter().map(|s| s.id.to_string()));
    header.extend(
        market
            .currencies
            .iter()
            .map(|c| format!("{c}/{}", market.valuation)),
    );
    record(&mut csv, &path, header)?;
    for (day, close) in market.days.iter().enumerate() {
        let mut row = vec![day.to_string(), close.date.to_string()];
        row.extend(
            close
                .prices
                .iter()
                .chain(&close.rates)
                .map(|d| d.to_string()),
        );
        record(&mut csv, &path, row)?;
    }
    finish(csv, &path)?;
    let days = market.days.len();
    let mut lines: Vec<chart::Line> = (0..market.securities.len())
        .map(|i| chart::Line {
            label: format!("{} (in {})", market.securities[i].id, market.valuation),
            values: (0..days)
                .map(|d| 100.0 * market.unit_value(i, d) / market.unit_value(i, 0))
                .collect(),
        })
        .collect();
    lines.extend(market.currencies.iter().map(|c| {
        chart::Line {
            label: format!("{c}/{}", market.valuation),
            values: (0..days)
                .map(|d| 100.0 * market.rate(*c, d) / market.rate(*c, 0))
                .collect(),
        }
    }));
    let png = folder.join(format!("paths-{scenario}.png"));
    let title = format!("{scenario}: closing values indexed to day 0 = 100");
    chart::lines(&png, &title, "business day", "index", &lines)?;
    Ok(vec![path, png])
}

/// Hundredths as a plain decimal (`1234.50`), or counts as whole numbers.
fn plain(value: i128, decimals: bool) -> String {
    match decimals {
        true => {
            let sign = if value < 0 { "-" } else { "" };
            format!("{sign}{}.{:02}", value.abs() / 100, value.abs() % 100)
        }
        false => (value / 100).to_string(),
    }
}

/// Why an output file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("cannot write {path}: {reason}")]
    Write { path: PathBuf, reason: String },
    #[error(transparent)]
    Chart(#[from] chart::ChartError),
}

impl OutputError {
    fn new(path: &Path, error: impl std::fmt::Display) -> Self {
        OutputError::Write {
            path: path.to_owned(),
            reason: error.to_string(),
        }
    }
}

fn writer(path: &Path) -> Result<csv::Writer<std::fs::File>, OutputError> {
    csv::Writer::from_path(path).map_err(|e| OutputError::new(path, e))
}

fn record(
    csv: &mut csv::Writer<std::fs::File>,
    path: &Path,
    row: Vec<String>,
) -> Result<(), OutputError> {
    csv.write_record(&row)
        .map_err(|e| OutputError::new(path, e))
}

fn finish(mut csv: csv::Writer<std::fs::File>, path: &Path) -> Result<(), OutputError> {
    csv.flush().map_err(|e| OutputError::new(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_and_means_round_half_up() {
        assert_eq!(index(150, 100), Some(15_000));
        assert_eq!(index(1, 3), Some(3_333));
        assert_eq!(index(2, 3), Some(6_667));
        assert_eq!(index(5, 0), None);
        assert_eq!(mean(&[1, 2]), 2);
        assert_eq!(mean(&[1, 1, 2]), 1);
        assert_eq!(hundredths(123_456_789), "1,234,567.89");
        assert_eq!(hundredths(-5), "-0.05");
        assert_eq!(plain(-105, true), "-1.05");
    }
}
