//! `kessai sim`: the market scenario simulator's command line (the simulator is `kessai-sim`).

use kessai_sim::{
    Config, Source,
    market::{Market, Scenario},
    run::{Case, Portfolio},
};
use kessai_types::{Currency, Decimal, repo::BPS_WHOLE};
use std::{path::PathBuf, time::Instant};

/// By default: normal markets and turmoil (high volatility), 1 or 5 collateral securities,
/// threshold 0 or 2 %: the 8 cases, each over the same seeds.
#[derive(Clone, Debug, clap::Args)]
pub struct SimArgs {
    /// Market scenarios (repeat or separate by commas): normal, sharp-rise, sharp-fall,
    /// high-volatility.
    #[arg(long = "scenario", value_delimiter = ',', default_values = ["normal", "high-volatility"])]
    pub scenarios: Vec<Scenario>,
    /// Seeds per scenario and case (each a different market path and book).
    #[arg(long, default_value_t = 10)]
    pub seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Business days simulated after day 0 (250: a year).
    #[arg(long, default_value_t = 250)]
    pub days: usize,
    /// Contracts open at any time (each rolls into a new one when it matures).
    #[arg(long, default_value_t = 200)]
    pub contracts: usize,
    /// Parties trading with each other.
    #[arg(long, default_value_t = 10)]
    pub parties: usize,
    /// Collateral securities per contract (repeat or separate by commas).
    #[arg(long, value_delimiter = ',', default_values = ["1", "5"])]
    pub collateral: Vec<usize>,
    /// Margin-call thresholds in percent of the exposure (repeat or separate by commas).
    #[arg(long, value_delimiter = ',', default_values = ["0", "2"])]
    pub threshold: Vec<Decimal>,
    /// Haircut in percent: required collateral = exposure x (1 + haircut).
    #[arg(long, default_value = "2")]
    pub haircut: Decimal,
    /// Terms in business days, drawn uniformly (1: overnight, 5: a week, 15: three weeks).
    #[arg(long, value_delimiter = ',', default_values = ["1", "5", "15"])]
    pub terms: Vec<u32>,
    /// The repo rate or lending fee per year.
    #[arg(long, default_value = "0.001")]
    pub rate: Decimal,
    /// Closing prices of real history instead of generated paths:
    /// `date,asset,class,currency,price` (class bond or equity; bonds per 100 face).
    #[arg(long)]
    pub prices: Option<PathBuf>,
    /// FX rates of that history: `date,base,quote,rate`, quoted in the valuation currency.
    #[arg(long, requires = "prices")]
    pub fx: Option<PathBuf>,
    /// The valuation currency of a history.
    #[arg(long, default_value = "JPY", requires = "prices")]
    pub currency: Currency,
    /// Where the CSV files and charts go.
    #[arg(long, default_value = "sim-output")]
    pub output: PathBuf,
    /// Check every ledger invariant (supply conservation, collateral under liens, the book)
    /// after each simulated day; slower.
    #[arg(long)]
    pub audit: bool,
    /// Runs in parallel (default: the machine's cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Percent as basis points, exactly (at most two decimals).
fn bps(percent: Decimal, flag: &str) -> anyhow::Result<u32> {
    let hundredths = percent.mantissa * 10u128.pow(2u32.saturating_sub(percent.scale as u32));
    anyhow::ensure!(
        percent.scale <= 2 && hundredths <= BPS_WHOLE as u128,
        "--{flag} {percent}: 0 to 100 percent, in whole basis points"
    );
    Ok(hundredths as u32)
}

pub fn run(args: SimArgs) -> anyhow::Result<()> {
    let source = match &args.prices {
        Some(prices) => Source::History(Box::new(Market::load(
            prices,
            args.fx.as_deref(),
            args.currency,
            args.days,
        )?)),
        None => Source::Scenarios(args.scenarios.clone()),
    };
    anyhow::ensure!(args.seeds >= 1, "--seeds: at least 1");
    anyhow::ensure!(args.days >= 1, "--days: at least 1");
    anyhow::ensure!(args.contracts >= 1, "--contracts: at least 1");
    anyhow::ensure!(args.parties >= 2, "--parties: at least 2");
    anyhow::ensure!(
        args.terms.iter().all(|t| *t >= 1),
        "--terms: business days, at least 1"
    );
    let mut cases = Vec::new();
    for collateral in &args.collateral {
        for threshold in &args.threshold {
            cases.push(Case {
                collateral: *collateral,
                threshold_bps: bps(*threshold, "threshold")?,
            });
        }
    }
    let config = Config {
        source,
        first_seed: args.seed,
        seeds: args.seeds,
        days: args.days,
        portfolio: Portfolio {
            contracts: args.contracts,
            parties: args.parties,
            haircut_bps: bps(args.haircut, "haircut")?,
            terms: args.terms.clone(),
            rate: args.rate,
        },
        cases,
        audit: args.audit,
        threads: args
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
    };
    let scenarios = match &config.source {
        Source::Scenarios(list) => list.len(),
        Source::History(_) => 1,
    };
    let cases = config.cases.len() + usize::from(!config.cases.contains(&kessai_sim::BASELINE));
    let total = (scenarios * cases) as u64 * config.seeds * config.days_per_run() as u64;
    let bar = indicatif::ProgressBar::new(total).with_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {percent}% of {len} run-days, eta {eta}",
        )
        .expect("a valid template"),
    );
    let started = Instant::now();
    let report = kessai_sim::simulate(config, &|| bar.inc(1))?;
    bar.finish_and_clear();
    let elapsed = started.elapsed();
    let portfolio = &report.config.portfolio;
    println!(
        "{} contracts between {} parties, haircut {}%, terms {:?} business days, {} days, {} seeds \
         (from {}); figures in {}; the index is against 1 collateral security and no threshold \
         (= 100), same scenario and seed",
        portfolio.contracts,
        portfolio.parties,
        args.haircut,
        portfolio.terms,
        report.config.days_per_run() - 1,
        report.config.seeds,
        report.config.first_seed,
        match &report.config.source {
            Source::History(market) => market.valuation,
            Source::Scenarios(_) => "JPY".parse().expect("a valid currency"),
        },
    );
    print!("{}", report.table());
    let written = kessai_sim::write_outputs(&report, &args.output)?;
    println!(
        "{} runs in {:.1} s; wrote {}",
        report.runs.len(),
        elapsed.as_secs_f64(),
        written
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}
