//! The `repo` workload of `kessai bench`: securities loans started like any workload's
//! transactions, then the margin-call burst of the next closed business date, timed apart.
//!
//! The setup (not measured) funds the borrowers' collateral, closes a first business date and
//! registers and approves the contracts: JGB-10Y lent between bench accounts of different
//! owners against US-STOCK, DE-BUND or yen in turn. The burst's date moves US-STOCK's price
//! only, so the ledger's mark-to-market walk ([`kessai_state::REPO_MARKS_PER_BLOCK_MAX`]
//! contracts a block) marks every open contract and a third of them settle a margin call. The
//! burst is timed from sending the oracle's close to the arrival of the last
//! `MARGIN_CALL_SETTLED` event of ours on the first node's event stream. The contracts are then
//! matured (not measured) and the dates move forward, so that runs repeat on one network.

use super::{
    Bench, EXPIRY_AFTER_MS, Load, SETUP_BATCH, Signer, account, encoded, get, node_usages, now_ms,
    owner, send, usage_json,
};
use kessai_types::{
    AssetId, BusinessDate, CollateralWeight, Currency, DayCount, Decimal, FxEntry, Operation,
    PartyId, PriceEntry, PublishPrices, RepoAction, RepoStep, RepoTerms, SupplyChange, Transaction,
};
use serde_json::{Value, json};
use std::{
    collections::{BTreeMap, HashSet},
    time::{Duration, Instant},
};

/// What the stream's `repo` events say about the bench's contracts.
#[derive(Default)]
pub(super) struct RepoWatch {
    /// The bench's contracts (ids in hex); other contracts' events are ignored.
    contracts: HashSet<String>,
    /// Contracts of ours that started.
    open: HashSet<String>,
    /// Events of ours by name (and failure reason) since the last [`RepoWatch::take_events`].
    events: BTreeMap<String, usize>,
    /// The business date whose marking is measured, and what it did to our contracts.
    burst_date: Option<BusinessDate>,
    marked: usize,
    calls: usize,
    last_call: Option<Instant>,
    last_marked: Option<Instant>,
    /// Failed calls and markings of the burst date, by event and reason.
    failures: BTreeMap<String, usize>,
}

impl RepoWatch {
    pub(super) fn event(&mut self, event: &Value, at: Instant) {
        let (Some(contract), Some(name)) = (event["contract"].as_str(), event["event"].as_str())
        else {
            return;
        };
        if !self.contracts.contains(contract) {
            return;
        }
        let kind = match event["reason"].as_str() {
            Some(reason) => format!("{name} {reason}"),
            None => name.to_string(),
        };
        *self.events.entry(kind.clone()).or_default() += 1;
        if name == "STARTED" {
            self.open.insert(contract.to_string());
        }
        let date = event["date"].as_u64().map(|date| date as BusinessDate);
        if date.is_none() || date != self.burst_date {
            return;
        }
        match name {
            "MARKED" => {
                self.marked += 1;
                self.last_marked = Some(at);
            }
            "MARK_FAILED" => {
                // A contract that cannot be marked is done with the date too.
                self.marked += 1;
                self.last_marked = Some(at);
                *self.failures.entry(kind).or_default() += 1;
            }
            "MARGIN_CALL_SETTLED" => {
                self.calls += 1;
                self.last_call = Some(at);
            }
            "MARGIN_CALL_FAILED" => *self.failures.entry(kind).or_default() += 1,
            _ => {}
        }
    }

    pub(super) fn take_events(&mut self) -> BTreeMap<String, usize> {
        std::mem::take(&mut self.events)
    }
}

/// The repo workload's collateral: contract `i` pledges `REPO_COLLATERAL[i % 3]`. Only the
/// first one's price moves in the burst, so a third of the contracts get a margin call.
const REPO_COLLATERAL: [&str; 3] = ["US-STOCK", "DE-BUND", "JPY"];
/// Collateral units issued to the borrower of each contract: about twice what its start
/// takes (46 US-STOCK, 6,440 DE-BUND; yen come with the bench accounts), so that a call for
/// more can settle.
const REPO_FUNDING: [u128; 3] = [100, 13_000, 0];
/// JGB-10Y units lent by each contract: 995,000 yen at 99.50.
const REPO_PRINCIPAL: u128 = 1_000_000;
const REPO_HAIRCUT_BPS: u32 = 200;
/// Closing prices of the first date; the burst's date has the same, but US-STOCK's moved.
const REPO_PRICES: [(&str, &str); 3] = [
    ("JGB-10Y", "99.50"),
    ("US-STOCK", "150.25"),
    ("DE-BUND", "98.50"),
];
/// US-STOCK on the burst's date: 5 % lower, so that each contract it backs calls for more.
const REPO_MOVED_PRICE: &str = "142.74";
const REPO_FX: [(&str, &str, &str); 2] = [("USD", "JPY", "150"), ("EUR", "JPY", "160")];

/// One contract of the repo workload.
struct PlannedContract {
    /// The registering transaction, whose id names the contract.
    register: Transaction,
    id: String,
    lender: usize,
    borrower: usize,
    /// An index into [`REPO_COLLATERAL`].
    collateral: usize,
}

/// The repo workload's contracts and dates.
pub(super) struct RepoPlan {
    contracts: Vec<PlannedContract>,
    /// The date the setup closes (the starts' prices), then the burst's.
    first_date: BusinessDate,
    burst_date: BusinessDate,
}

/// Days since 1970-01-01 of a `YYYYMMDD` date.
fn days_of(date: BusinessDate) -> i64 {
    (kessai_state::midnight_ms(date) / MS_PER_DAY as u64) as i64
}

/// The `YYYYMMDD` date of a day count since 1970-01-01.
fn date_of_days(days: i64) -> BusinessDate {
    kessai_state::date_of(days as u64 * MS_PER_DAY as u64)
}

/// The next weekday after day `days` (1970-01-01 was a Thursday).
fn next_business_day(days: i64) -> i64 {
    let mut next = days + 1;
    while (next + 3).rem_euclid(7) >= 5 {
        next += 1;
    }
    next
}

const MS_PER_DAY: i64 = 86_400_000;

/// The repo workload's two dates: the two business days after the latest closed date (a year
/// before the last block if none), at most the last block's next UTC day, as the ledger rules.
fn repo_dates(latest_closed: BusinessDate, block_time_ms: u64) -> anyhow::Result<(u32, u32)> {
    let today = block_time_ms as i64 / MS_PER_DAY;
    let after = if latest_closed == 0 {
        today - 365
    } else {
        days_of(latest_closed)
    };
    let first = next_business_day(after);
    let burst = next_business_day(first);
    let limit = date_of_days(today + 1);
    anyhow::ensure!(
        date_of_days(burst) <= limit,
        "no business dates left for the repo workload: the latest closed date is \
         {latest_closed} and the ledger accepts dates up to {limit} (the last block's next UTC \
         day); wait for the next UTC day, or start a fresh network"
    );
    Ok((date_of_days(first), date_of_days(burst)))
}

impl Signer<'_> {
    /// The oracle's closing prices of `date` (US-STOCK moved if `moved`), closing the date.
    fn prices(&self, date: BusinessDate, moved: bool) -> anyhow::Result<Transaction> {
        let prices = REPO_PRICES
            .iter()
            .map(|(asset, price)| {
                let price = if moved && *asset == REPO_COLLATERAL[0] {
                    REPO_MOVED_PRICE
                } else {
                    price
                };
                Ok(PriceEntry {
                    asset: AssetId::new(asset)?,
                    price: price.parse::<Decimal>()?,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let rates = REPO_FX
            .iter()
            .map(|(base, quote, rate)| {
                Ok(FxEntry {
                    base: Currency::new(base)?,
                    quote: Currency::new(quote)?,
                    rate: rate.parse::<Decimal>()?,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let publish = PublishPrices {
            date,
            prices: prices.into(),
            rates: rates.into(),
            close: true,
        };
        self.sign(
            &[PartyId::new("ORACLE")?],
            Operation::PublishPrices(publish),
        )
    }

    /// A step of a planned contract, signed by `party`'s owner.
    fn repo_step(
        &self,
        contract: &PlannedContract,
        party: usize,
        step: RepoStep,
    ) -> anyhow::Result<Transaction> {
        let action = RepoAction {
            contract: contract.register.body.id(),
            step,
        };
        self.sign(&[owner(party)], Operation::RepoAction(action))
    }
}

/// The contracts: contract `i` pairs accounts `2p` (lender) and `2p + 1` (borrower) of
/// different owners, `p = i mod accounts / 2`, and pledges collateral `i mod 3`; open-ended,
/// valued in yen with a 2 % haircut and no threshold.
fn plan_contracts(signer: &Signer<'_>, load: &Load) -> anyhow::Result<Vec<PlannedContract>> {
    let pairs = load.accounts / 2;
    let now = now_ms();
    (0..load.count)
        .map(|index| {
            let pair = index % pairs;
            let (lender, borrower) = (2 * pair, 2 * pair + 1);
            let collateral = index % REPO_COLLATERAL.len();
            let terms = RepoTerms {
                lender: owner(lender),
                lender_account: account(lender),
                borrower: owner(borrower),
                borrower_account: account(borrower),
                principal_asset: AssetId::new("JGB-10Y")?,
                principal_quantity: REPO_PRINCIPAL,
                collateral: vec![CollateralWeight {
                    asset: AssetId::new(REPO_COLLATERAL[collateral])?,
                    weight_bps: 10_000,
                }]
                .into(),
                valuation_currency: Currency::new("JPY")?,
                haircut_bps: REPO_HAIRCUT_BPS,
                threshold_bps: 0,
                start_ms: now,
                maturity_ms: None,
                rate: "0.001".parse::<Decimal>()?,
                day_count: DayCount::Act365Fixed,
                fee_asset: AssetId::new("JPY")?,
                offer_expiry_ms: now + EXPIRY_AFTER_MS,
            };
            let register = signer.sign(&[owner(lender)], Operation::RegisterRepo(terms))?;
            Ok(PlannedContract {
                id: register.body.id().to_hex(),
                register,
                lender,
                borrower,
                collateral,
            })
        })
        .collect()
}

/// Untimed: fund the borrowers' collateral, close the first date, register and approve the
/// contracts, and wait until no marking walk is left running.
pub(super) async fn setup(bench: &Bench<'_>) -> anyhow::Result<RepoPlan> {
    let api = &bench.options.apis[0];
    let (_, book) = get(&bench.client, &format!("{api}/v1/repos")).await?;
    let (_, status) = get(&bench.client, &format!("{api}/v1/status")).await?;
    let latest_closed = book["latest_closed_date"].as_u64().unwrap_or(0) as BusinessDate;
    let block_time_ms = status["time_ms"]
        .as_u64()
        .ok_or_else(|| anyhow::anyhow!("no time_ms in /v1/status"))?;
    let (first_date, burst_date) = repo_dates(latest_closed, block_time_ms)?;
    let contracts = plan_contracts(&bench.signer, &bench.options.load)?;
    bench
        .tracker
        .lock()
        .expect("tracker lock")
        .repo
        .contracts
        .extend(contracts.iter().map(|contract| contract.id.clone()));
    let csd = PartyId::new("CSD")?;
    let mut first = vec![bench.signer.prices(first_date, false)?];
    for contract in &contracts {
        let quantity = REPO_FUNDING[contract.collateral];
        if quantity > 0 {
            let issue = SupplyChange {
                asset: AssetId::new(REPO_COLLATERAL[contract.collateral])?,
                account: account(contract.borrower),
                quantity,
            };
            first.push(bench.signer.sign(&[csd], Operation::Issue(issue))?);
        }
    }
    first.extend(contracts.iter().map(|contract| contract.register.clone()));
    let chunks = |transactions: Vec<Transaction>| {
        transactions
            .chunks(SETUP_BATCH)
            .map(|chunk| Ok(chunk.to_vec()))
            .collect::<Vec<_>>()
    };
    bench
        .settle_untimed("repo setup", chunks(first).into_iter())
        .await?;
    let approvals = contracts
        .iter()
        .map(|contract| {
            bench
                .signer
                .repo_step(contract, contract.borrower, RepoStep::Approve)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    bench
        .settle_untimed("repo approvals", chunks(approvals).into_iter())
        .await?;
    // Closing the first date marks the contracts already open (earlier runs' leftovers): let
    // that walk end before the clock starts.
    let deadline = Instant::now() + bench.timeout();
    loop {
        let (_, book) = get(&bench.client, &format!("{api}/v1/repos")).await?;
        if book["marking"].is_null() {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the marking of {first_date} still runs after {:?}",
            bench.timeout()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bench
        .tracker
        .lock()
        .expect("tracker lock")
        .repo
        .take_events();
    Ok(RepoPlan {
        contracts,
        first_date,
        burst_date,
    })
}

/// Timed part 2: close the burst's date and follow the mark-to-market walk until every open
/// contract of ours is marked; the burst runs from sending the close to the last margin call.
async fn burst(bench: &Bench<'_>, plan: &RepoPlan) -> anyhow::Result<Value> {
    let close = bench.signer.prices(plan.burst_date, true)?;
    let (open, expected) = {
        let mut tracker = bench.tracker.lock().expect("tracker lock");
        tracker.reset();
        tracker.repo.take_events();
        tracker.repo.burst_date = Some(plan.burst_date);
        let open: Vec<&PlannedContract> = plan
            .contracts
            .iter()
            .filter(|contract| tracker.repo.open.contains(&contract.id))
            .collect();
        let expected = open.iter().filter(|c| c.collateral == 0).count();
        (open.len(), expected)
    };
    let api = &bench.options.apis[0];
    let usage_before = node_usages(bench).await;
    let sent = Instant::now();
    send(
        &bench.client,
        api,
        &encoded(vec![close]),
        sent,
        &bench.tracker,
    )
    .await?;
    let deadline = sent + bench.timeout();
    loop {
        {
            let tracker = bench.tracker.lock().expect("tracker lock");
            if let Some((outcome, _)) = tracker.outcomes.iter().find(|(k, _)| *k != "ACCEPTED") {
                anyhow::bail!(
                    "the oracle's close of {} was not accepted: {outcome}",
                    plan.burst_date
                );
            }
            if tracker.finished == 1 && tracker.repo.marked >= open {
                break;
            }
        }
        if Instant::now() > deadline {
            break;
        }
        bench.check_stream().await?;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let usage_after = node_usages(bench).await;
    let tracker = bench.tracker.lock().expect("tracker lock");
    let watch = &tracker.repo;
    let since = |at: Option<Instant>| at.map(|at| at.duration_since(sent).as_secs_f64());
    let seconds = since(watch.last_call);
    let window = since(watch.last_marked).unwrap_or(0.0);
    Ok(json!({
        "date": plan.burst_date,
        "moved": {"asset": REPO_COLLATERAL[0], "from": REPO_PRICES[1].1, "to": REPO_MOVED_PRICE},
        "open_contracts": open,
        "marked": watch.marked,
        "margin_calls": watch.calls,
        "margin_calls_expected": expected,
        "margin_calls_as_expected": watch.calls == expected,
        "failures": watch.failures,
        "close_final_ms": tracker.latencies_ms.first(),
        "seconds": seconds,
        "margin_calls_per_second": seconds.map(|s| watch.calls as f64 / s),
        "walk_seconds": since(watch.last_marked),
        "nodes": usage_json(bench, &usage_before, &usage_after, window),
    }))
}

/// Untimed: mature the contracts that started and cancel the others, so that the next run
/// finds the book as this one did.
async fn cleanup(bench: &Bench<'_>, plan: &RepoPlan) -> anyhow::Result<Value> {
    let started = Instant::now();
    let open = {
        let mut tracker = bench.tracker.lock().expect("tracker lock");
        // The burst's events were counted; what follows is the cleanup's.
        tracker.repo.take_events();
        std::mem::take(&mut tracker.repo.open)
    };
    let steps = plan
        .contracts
        .iter()
        .map(|contract| match open.contains(&contract.id) {
            true => bench
                .signer
                .repo_step(contract, contract.borrower, RepoStep::Mature),
            false => bench
                .signer
                .repo_step(contract, contract.lender, RepoStep::Cancel),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let requests = steps.chunks(SETUP_BATCH).map(|chunk| Ok(chunk.to_vec()));
    bench.settle_untimed("repo cleanup", requests).await?;
    let events = bench
        .tracker
        .lock()
        .expect("tracker lock")
        .repo
        .take_events();
    Ok(json!({"seconds": started.elapsed().as_secs_f64(), "events": events}))
}

/// The contracts' `start` transactions: the timed part 1.
pub(super) fn starts(bench: &Bench<'_>, plan: &RepoPlan) -> anyhow::Result<Vec<Transaction>> {
    plan.contracts
        .iter()
        .map(|contract| {
            bench
                .signer
                .repo_step(contract, contract.lender, RepoStep::Start)
        })
        .collect()
}

/// After the starts: what they did, the burst (timed part 2) and the cleanup, as the report's
/// `repo` section.
pub(super) async fn burst_and_cleanup(
    bench: &Bench<'_>,
    plan: &RepoPlan,
    setup_time: Duration,
) -> anyhow::Result<Value> {
    let starts = bench
        .tracker
        .lock()
        .expect("tracker lock")
        .repo
        .take_events();
    let starts: BTreeMap<_, _> = starts
        .into_iter()
        .filter(|(kind, _)| kind.starts_with("START"))
        .collect();
    let burst = burst(bench, plan).await?;
    let cleanup = cleanup(bench, plan).await?;
    Ok(json!({
        "contracts": plan.contracts.len(),
        "first_date": plan.first_date,
        "setup_seconds": setup_time.as_secs_f64(),
        "starts": starts,
        "burst": burst,
        "cleanup": cleanup,
    }))
}

/// The report's `repo` section as lines of the terminal table.
pub(super) fn table(line: &mut dyn FnMut(&str, String), repo: &Value) {
    let seconds = |value: &Value| value.as_f64().unwrap_or(f64::NAN);
    line(
        "repo setup (not measured)",
        format!(
            "{:.1} s: {} contracts registered and approved, {} closed",
            seconds(&repo["setup_seconds"]),
            repo["contracts"],
            repo["first_date"]
        ),
    );
    for (kind, count) in repo["starts"].as_object().into_iter().flatten() {
        line(&format!("  {kind}"), count.to_string());
    }
    let burst = &repo["burst"];
    line(
        "margin-call burst",
        format!(
            "{}: {} {} -> {}, {} open contracts marked of {}",
            burst["date"],
            burst["moved"]["asset"].as_str().unwrap_or(""),
            burst["moved"]["from"].as_str().unwrap_or(""),
            burst["moved"]["to"].as_str().unwrap_or(""),
            burst["marked"],
            burst["open_contracts"],
        ),
    );
    line(
        "  margin calls settled",
        format!(
            "{} of {} expected{}",
            burst["margin_calls"],
            burst["margin_calls_expected"],
            if burst["margin_calls_as_expected"] == true {
                ""
            } else {
                "  (NOT AS EXPECTED)"
            }
        ),
    );
    for (kind, count) in burst["failures"].as_object().into_iter().flatten() {
        line(&format!("  {kind}"), count.to_string());
    }
    line(
        "  close to last call",
        format!(
            "{:.2} s, {:.0} calls/s (close final after {:.0} ms, walk done after {:.2} s)",
            seconds(&burst["seconds"]),
            seconds(&burst["margin_calls_per_second"]),
            seconds(&burst["close_final_ms"]),
            seconds(&burst["walk_seconds"]),
        ),
    );
    super::node_lines(line, &burst["nodes"]);
    let cleanup = &repo["cleanup"];
    line(
        "repo cleanup (not measured)",
        format!(
            "{:.1} s: {}",
            seconds(&cleanup["seconds"]),
            cleanup["events"]
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_days_convert_both_ways() {
        assert_eq!(days_of(19700101), 0);
        assert_eq!(date_of_days(0), 19700101);
        // 2024-02-29, the next day, and the year 2000 (a leap century).
        for date in [20240229, 20240301, 20000229, 20231231, 20240101, 19991231] {
            assert_eq!(date_of_days(days_of(date)), date, "{date}");
        }
        assert_eq!(days_of(20240301) - days_of(20240228), 2);
    }

    #[test]
    fn repo_dates_are_the_next_weekdays_up_to_the_next_utc_day() {
        let noon = |date: BusinessDate| (days_of(date) * MS_PER_DAY + MS_PER_DAY / 2) as u64;
        // Friday 2023-04-21: Monday and Tuesday next.
        assert_eq!(
            repo_dates(20230421, noon(20240101)).unwrap(),
            (20230424, 20230425)
        );
        // None closed yet: after the day a year before the last block (a Thursday).
        let (first, burst) = repo_dates(0, noon(20240517)).unwrap();
        assert_eq!((first, burst), (20230519, 20230522));
        // The burst's date may be the block's next UTC day, not later.
        assert!(repo_dates(20240513, noon(20240514)).is_ok());
        assert!(repo_dates(20240514, noon(20240514)).is_err());
    }
}
