//! One run: a book of repo and securities-lending contracts on an in-memory ledger, driven
//! day by day through the real repo module (the same executor the validators run), with the
//! figures read back from the events the contracts record.
//!
//! Each business day `d >= 1`, at the ledger's block times (UTC):
//! - 17:00: the contracts maturing that day settle their closing legs (`mature`);
//! - 18:00: the oracle publishes and closes the day's prices and FX rates; the ledger's
//!   mark-to-market walk then marks every open contract, 1,000 per block, and settles the margin
//!   calls due;
//! - then each matured contract rolls: a new contract between the same parties for the same
//!   principal and collateral is registered, approved and started at the day's prices, for a
//!   newly drawn term.
//!
//! Day 0 closes its prices and starts the whole book. Every draw (parties, principal, size,
//! collateral ranking, terms) comes from the seed and the contract's position in the book, never
//! from the case, so that the cases of one seed hold the same contracts and differ only in
//! collateral count and threshold.

use crate::market::{Market, Random};
use commonware_codec::Encode;
use kessai_state::{
    Chain, Genesis, MemoryLedger, Parameters, RepoBook, StateKey, StateValue, midnight_ms,
};
use kessai_types::{
    Account, AccountId, Asset, AssetClass, AssetId, CollateralWeight, DayCount, Decimal,
    Endorsement, Expiry, FxEntry, Hash32, Operation, Party, PartyId, PriceEntry, PrivateKey,
    PublishPrices, RepoAction, RepoEvent, RepoEventRecord, RepoStep, RepoTerms, Role, RoleSet,
    Transaction, TxBody, TxId, UniqueId, VerifiedTransaction,
    repo::{BPS_WHOLE, PRICES_PER_TX_MAX, RATES_PER_TX_MAX},
};
use std::collections::HashMap;

const MS_PER_HOUR: u64 = 3_600_000;
/// What the blocks of the mark-to-market walk are called (and how they are told apart).
const WALK: &str = "a walk block";
/// Transactions of the run expire this long after their block (well within the horizon).
const EXPIRY_AFTER_MS: u64 = 60_000;
/// Each party holds this many times the value of the whole book in every security and cash
/// asset, so that calls settle even after the collateral's price falls by 90 %: the simulator
/// measures liquidity needs, it does not ration them.
const HOLDINGS_PER_BOOK: f64 = 10.0;
/// A contract's principal is worth between these (valuation currency units, at day 0 prices).
const PRINCIPAL_VALUE: (f64, f64) = (100_000_000.0, 1_000_000_000.0);

/// The book's shape, the same for every case.
#[derive(Clone, Debug)]
pub struct Portfolio {
    pub contracts: usize,
    pub parties: usize,
    pub haircut_bps: u32,
    /// Terms in business days (1 = overnight), one drawn uniformly for each contract and roll.
    pub terms: Vec<u32>,
    /// The repo rate or lending fee per year.
    pub rate: Decimal,
}

/// What differs between the runs of one seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Case {
    /// Collateral securities per contract (equal weights).
    pub collateral: usize,
    pub threshold_bps: u32,
}

/// A run's figures. Money is in hundredths of the valuation currency (the ledger reports values
/// rounded half-up to two decimals).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Figures {
    /// Mean over the marked days of the day's net credit exposure (rounded half-up).
    pub net_exposure_mean: i128,
    /// The largest day's net credit exposure.
    pub net_exposure_peak: i128,
    pub margin_calls: u64,
    /// Calls the borrower could not settle (none while holdings suffice).
    pub margin_calls_failed: u64,
    /// The value delivered or returned by the settled calls, summed.
    pub margin_call_value: i128,
    /// Balance movements between the parties: principal, collateral and fee legs of starts and
    /// maturities, and each asset moved by a margin call.
    pub token_transfers: u64,
    /// Contracts marked by the walk, summed over the days (a contract maturing on a day is not
    /// marked that day, nor is the one it rolls into).
    pub marks: u64,
    pub maturities: u64,
}

/// A run that could not go on: a transaction of the simulator refused, or a step that failed.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("day {day}: {what} was rejected: {code}")]
    Rejected {
        day: usize,
        what: &'static str,
        code: String,
    },
    #[error("{event} on {date}: {reason}")]
    Failed {
        event: &'static str,
        date: u32,
        reason: String,
    },
    #[error("{0}")]
    Config(String),
}

/// A position of the book: the contract occupying it now and what every roll keeps.
struct Slot {
    lender: usize,
    borrower: usize,
    principal: AssetId,
    quantity: u128,
    /// The securities the collateral is drawn from, best first; a case takes the first ones.
    ranking: Vec<AssetId>,
    contract: TxId,
    maturity_day: usize,
    /// Rolls so far (seeds the next term draw).
    rolls: u64,
}

struct Trader {
    party: PartyId,
    account: AccountId,
    endorsement: Endorsement,
}

impl Trader {
    fn new(party: &str, account: &str, seed: u64) -> (Self, PrivateKey) {
        let key = PrivateKey::from_seed(seed);
        let party = PartyId::new(party).expect("a valid code");
        let trader = Trader {
            party,
            account: AccountId::new(account).expect("a valid code"),
            // The simulator is the only block producer: it trusts its own transactions instead
            // of signing each (signing would cost more than the marking it measures).
            endorsement: Endorsement {
                signer: party,
                public_key: key.public_key(),
                signature: key.sign(b"kessai-sim"),
            },
        };
        (trader, key)
    }
}

/// The running figures of a run.
#[derive(Default)]
struct Tally {
    figures: Figures,
    /// Net exposure of each pair today (lower party index first, positive: the lower one is
    /// owed).
    pairs: HashMap<(usize, usize), i128>,
    /// Collateral value at the latest marking, by contract.
    held: HashMap<TxId, i128>,
    exposure_sum: i128,
    days_marked: i128,
}

/// Hundredths of a reported value.
fn cents(value: Decimal) -> i128 {
    assert!(value.scale <= 2, "reported values have two decimals");
    value.mantissa as i128 * 10i128.pow(2 - value.scale as u32)
}

pub struct Run<'m> {
    market: &'m Market,
    portfolio: &'m Portfolio,
    case: Case,
    ledger: MemoryLedger,
    network: u32,
    oracle: Trader,
    traders: Vec<Trader>,
    cash: AssetId,
    slots: Vec<Slot>,
    by_contract: HashMap<TxId, usize>,
    seed: u64,
    sequence: u64,
    time_ms: u64,
    tally: Tally,
}

/// Run one case over the whole market, calling `tick` after each day; with `audit`, every
/// ledger invariant (supply conservation among them) is checked after each day.
pub fn run(
    market: &Market,
    portfolio: &Portfolio,
    case: Case,
    seed: u64,
    audit: bool,
    tick: &(dyn Fn() + Sync),
) -> Result<Figures, SimError> {
    let mut run = Run::new(market, portfolio, case, seed)?;
    run.open_book()?;
    tick();
    for day in 1..market.days.len() {
        run.day(day)?;
        if audit {
            run.ledger.audit();
        }
        tick();
    }
    let mut figures = run.tally.figures;
    let days = run.tally.days_marked.max(1);
    figures.net_exposure_mean = (2 * run.tally.exposure_sum + days) / (2 * days);
    Ok(figures)
}

impl<'m> Run<'m> {
    fn new(
        market: &'m Market,
        portfolio: &'m Portfolio,
        case: Case,
        seed: u64,
    ) -> Result<Self, SimError> {
        let securities = market.securities.len();
        if case.collateral == 0 || case.collateral >= securities {
            return Err(SimError::Config(format!(
                "{} collateral securities: 1 to {} (the universe's securities but the principal)",
                case.collateral,
                securities.saturating_sub(1)
            )));
        }
        if securities > PRICES_PER_TX_MAX || market.currencies.len() > RATES_PER_TX_MAX {
            return Err(SimError::Config(format!(
                "at most {PRICES_PER_TX_MAX} securities and {RATES_PER_TX_MAX} currencies"
            )));
        }
        if portfolio.parties < 2 || portfolio.contracts == 0 || portfolio.terms.contains(&0) {
            return Err(SimError::Config(
                "a book needs at least 2 parties, 1 contract and terms of at least a day".into(),
            ));
        }
        let (oracle, oracle_key) = Trader::new("ORACLE", "ORACLE/1", 3);
        let traders: Vec<(Trader, PrivateKey)> = (0..portfolio.parties)
            .map(|k| {
                let name = format!("FIRM-{:03}", k + 1);
                Trader::new(&name, &format!("{name}/1"), 1_000 + k as u64)
            })
            .collect();
        let csd = PartyId::new("CSD").expect("a valid code");
        let party = |id, key: &PrivateKey, role| Party {
            id,
            public_key: key.public_key(),
            roles: RoleSet::of(&[role]),
            kyc: None,
        };
        let governor = PartyId::new("GOVERNOR").expect("a valid code");
        let mut parties = vec![
            party(governor, &PrivateKey::from_seed(1), Role::NetworkGovernor),
            party(csd, &PrivateKey::from_seed(2), Role::TokenAdministrator),
            party(oracle.party, &oracle_key, Role::PriceOracle),
        ];
        parties.extend(
            traders
                .iter()
                .map(|(t, key)| party(t.party, key, Role::Participant)),
        );
        let asset = |id, class| Asset {
            id,
            class,
            administrator: csd,
            kyc_required: false,
            frozen: false,
            supply: 0,
        };
        // Cash: the valuation currency in whole units, the others in hundredths.
        let cash: Vec<(Asset, f64)> = std::iter::once((market.valuation, 0u8))
            .chain(market.currencies.iter().map(|c| (*c, 2)))
            .map(|(currency, exponent)| {
                let id = AssetId::new(currency.as_str()).expect("a currency is a valid code");
                let class = AssetClass::Cash {
                    currency,
                    minor_unit_exponent: exponent,
                };
                let unit = market.rate(currency, 0) / 10f64.powi(exponent as i32);
                (asset(id, class), unit)
            })
            .collect();
        let unit_values: Vec<(AssetId, f64)> = (0..securities)
            .map(|i| (market.securities[i].id, market.unit_value(i, 0)))
            .chain(cash.iter().map(|(asset, unit)| (asset.id, *unit)))
            .collect();
        let holding_value = HOLDINGS_PER_BOOK * PRINCIPAL_VALUE.1 * portfolio.contracts as f64;
        let balances = traders
            .iter()
            .flat_map(|(trader, _)| {
                unit_values.iter().map(move |(asset, unit)| {
                    (trader.account, *asset, (holding_value / unit) as u128)
                })
            })
            .collect();
        let genesis = Genesis {
            parameters: Parameters::default(),
            time_ms: midnight_ms(market.days[0].date),
            parties,
            assets: market
                .securities
                .iter()
                .map(|s| asset(s.id, s.class))
                .chain(cash.iter().map(|(asset, _)| *asset))
                .collect(),
            accounts: traders
                .iter()
                .map(|(t, _)| Account {
                    id: t.account,
                    owner: t.party,
                    frozen: false,
                })
                .collect(),
            balances,
            ..Genesis::default()
        };
        let ledger = MemoryLedger::new(&genesis)
            .map_err(|e| SimError::Config(e.to_string()))?
            .without_event_history();
        let slots = (0..portfolio.contracts)
            .map(|k| {
                let mut random = Random::new(seed, 1 + k as u64);
                let lender = random.below(portfolio.parties);
                let borrower =
                    (lender + 1 + random.below(portfolio.parties - 1)) % portfolio.parties;
                // A security lent (securities lending), or cash lent against securities (repo).
                let choice = random.below(unit_values.len());
                let (principal, unit) = unit_values[choice];
                let value =
                    PRINCIPAL_VALUE.0 + random.uniform() * (PRINCIPAL_VALUE.1 - PRINCIPAL_VALUE.0);
                let quantity = ((value / unit) as u128 / 1_000).max(1) * 1_000;
                let mut ranking: Vec<AssetId> = market
                    .securities
                    .iter()
                    .map(|s| s.id)
                    .filter(|id| *id != principal)
                    .collect();
                for i in (1..ranking.len()).rev() {
                    ranking.swap(i, random.below(i + 1));
                }
                Slot {
                    lender,
                    borrower,
                    principal,
                    quantity,
                    ranking,
                    contract: TxId::default(),
                    maturity_day: 0,
                    rolls: 0,
                }
            })
            .collect();
        Ok(Run {
            market,
            portfolio,
            case,
            time_ms: genesis.time_ms,
            network: genesis.parameters.network,
            ledger,
            oracle,
            traders: traders.into_iter().map(|(t, _)| t).collect(),
            cash: cash[0].0.id,
            slots,
            by_contract: HashMap::new(),
            seed,
            sequence: 0,
            tally: Tally::default(),
        })
    }

    /// A transaction of the simulator, built already verified.
    fn transaction(&mut self, signer: Signer, operation: Operation) -> VerifiedTransaction {
        let trader = match signer {
            Signer::Oracle => &self.oracle,
            Signer::Party(index) => &self.traders[index],
        };
        self.sequence += 1;
        let mut unique_id = [0u8; 16];
        unique_id[..8].copy_from_slice(&self.sequence.to_be_bytes());
        let body = TxBody {
            network: self.network,
            submitter: trader.party,
            unique_id: UniqueId(unique_id),
            expiry: Expiry::TimeMs(self.time_ms + EXPIRY_AFTER_MS),
            operation,
        };
        let id = Hash32::of(&[&body.encode()]);
        VerifiedTransaction {
            transaction: Transaction {
                body,
                endorsements: vec![trader.endorsement.clone()],
            },
            id,
            signatures_valid: true,
        }
    }

    /// Move the clock to `time_ms` (never back): the next transactions are built for it.
    fn advance(&mut self, time_ms: u64) {
        self.time_ms = self.time_ms.max(time_ms);
    }

    /// Apply `transactions` in blocks (one empty block if there are none) from the clock's time
    /// on, a second apart; each must be accepted.
    fn blocks(
        &mut self,
        day: usize,
        what: &'static str,
        transactions: Vec<VerifiedTransaction>,
    ) -> Result<(), SimError> {
        let chunk = Parameters::default().block_transactions_max as usize;
        let mut rest = &transactions[..];
        loop {
            let (block, next) = rest.split_at(rest.len().min(chunk));
            rest = next;
            let (outcomes, events) = self.ledger.apply_with_events(self.time_ms, block);
            if let Some(rejection) = outcomes.iter().find_map(|o| o.rejection) {
                return Err(SimError::Rejected {
                    day,
                    what,
                    code: rejection.code.name().to_owned(),
                });
            }
            self.observe(&events, what == WALK)?;
            self.time_ms += 1_000;
            if rest.is_empty() {
                return Ok(());
            }
        }
    }

    fn book(&self) -> RepoBook {
        match self.ledger.get(&StateKey::RepoBook) {
            Some(StateValue::RepoBook(book)) => *book,
            _ => RepoBook::default(),
        }
    }

    /// Day 0: close its prices and start every contract.
    fn open_book(&mut self) -> Result<(), SimError> {
        self.advance(midnight_ms(self.market.days[0].date) + 18 * MS_PER_HOUR);
        let prices = self.prices(0);
        self.blocks(0, "the closing prices", vec![prices])?;
        let all: Vec<usize> = (0..self.slots.len()).collect();
        self.roll(0, &all)?;
        // Day 0 is not a marking day: its only exposure is the haircuts just delivered.
        self.tally.pairs.clear();
        Ok(())
    }

    fn day(&mut self, day: usize) -> Result<(), SimError> {
        let midnight = midnight_ms(self.market.days[day].date);
        self.catch_up(midnight + 17 * MS_PER_HOUR - 1_000);
        self.advance(midnight + 17 * MS_PER_HOUR);
        let maturing: Vec<usize> = (0..self.slots.len())
            .filter(|k| self.slots[*k].maturity_day == day)
            .collect();
        let matures = maturing
            .iter()
            .map(|k| {
                let (lender, contract) = (self.slots[*k].lender, self.slots[*k].contract);
                let step = RepoAction {
                    contract,
                    step: RepoStep::Mature,
                };
                self.transaction(Signer::Party(lender), Operation::RepoAction(step))
            })
            .collect();
        self.blocks(day, "a maturity", matures)?;
        self.advance(midnight + 18 * MS_PER_HOUR);
        let prices = self.prices(day);
        self.blocks(day, "the closing prices", vec![prices])?;
        while self.book().marking.is_some() {
            self.blocks(day, WALK, Vec::new())?;
        }
        self.roll(day, &maturing)?;
        // Every open contract is valued at the day's close: marked by the walk, or started
        // after it.
        let exposure: i128 = self.tally.pairs.drain().map(|(_, net)| net.abs()).sum();
        let figures = &mut self.tally.figures;
        figures.net_exposure_peak = figures.net_exposure_peak.max(exposure);
        self.tally.exposure_sum += exposure;
        self.tally.days_marked += 1;
        Ok(())
    }

    /// Apply empty blocks until the ledger has pruned the replay records that expired before
    /// `time_ms` (the ledger prunes a bounded number of time buckets a block; block time jumps
    /// a day between business days, so a day's first blocks would otherwise each take an extra
    /// read round).
    fn catch_up(&mut self, time_ms: u64) {
        loop {
            let caught_up = match self.ledger.get(&StateKey::Chain) {
                Some(StateValue::Chain(Chain { time_cursor, .. })) => {
                    self.time_ms >= time_ms
                        && time_cursor.bucket >= time_ms / kessai_state::key::TIME_BUCKET_MS
                }
                _ => true,
            };
            if caught_up {
                return;
            }
            self.advance(time_ms);
            self.ledger.apply(self.time_ms, &[]);
        }
    }

    /// Register, approve and start a new contract in each of `slots` at `day`'s prices.
    fn roll(&mut self, day: usize, slots: &[usize]) -> Result<(), SimError> {
        if slots.is_empty() {
            return Ok(());
        }
        let register_ms = self.time_ms;
        let mut registrations = Vec::with_capacity(slots.len());
        for &k in slots {
            let term = {
                let slot = &self.slots[k];
                let mut random =
                    Random::new(self.seed ^ 0x5445_524D, (k as u64) << 32 | slot.rolls);
                self.portfolio.terms[random.below(self.portfolio.terms.len())] as usize
            };
            let terms = self.terms(k, register_ms, day + term);
            let borrower = self.slots[k].borrower;
            let registration =
                self.transaction(Signer::Party(borrower), Operation::RegisterRepo(terms));
            let slot = &mut self.slots[k];
            self.by_contract.remove(&slot.contract);
            slot.contract = registration.id;
            slot.maturity_day = day + term;
            slot.rolls += 1;
            self.by_contract.insert(registration.id, k);
            registrations.push(registration);
        }
        self.blocks(day, "a registration", registrations)?;
        for (step, what) in [
            (RepoStep::Approve, "an approval"),
            (RepoStep::Start, "a start"),
        ] {
            let transactions = slots
                .iter()
                .map(|&k| {
                    let slot = &self.slots[k];
                    let signer = match step {
                        RepoStep::Approve => slot.lender,
                        _ => slot.borrower,
                    };
                    let action = RepoAction {
                        contract: slot.contract,
                        step,
                    };
                    self.transaction(Signer::Party(signer), Operation::RepoAction(action))
                })
                .collect();
            self.blocks(day, what, transactions)?;
        }
        Ok(())
    }

    fn terms(&self, k: usize, start_ms: u64, maturity_day: usize) -> RepoTerms {
        let slot = &self.slots[k];
        let (lender, borrower) = (&self.traders[slot.lender], &self.traders[slot.borrower]);
        let count = self.case.collateral;
        let collateral: Vec<CollateralWeight> = slot.ranking[..count]
            .iter()
            .enumerate()
            .map(|(i, asset)| CollateralWeight {
                asset: *asset,
                // Equal weights; the first takes the remainder (3 assets: 3,334 + 2 x 3,333).
                weight_bps: (BPS_WHOLE as usize / count
                    + usize::from(i == 0) * (BPS_WHOLE as usize % count))
                    as u16,
            })
            .collect();
        let days = &self.market.days;
        let last = days.len() - 1;
        let maturity = match days.get(maturity_day) {
            Some(close) => midnight_ms(close.date),
            // Beyond the market's last date (it never matures within the run).
            None => midnight_ms(days[last].date) + (maturity_day - last) as u64 * 86_400_000,
        };
        RepoTerms {
            lender: lender.party,
            lender_account: lender.account,
            borrower: borrower.party,
            borrower_account: borrower.account,
            principal_asset: slot.principal,
            principal_quantity: slot.quantity,
            collateral: collateral.into(),
            valuation_currency: self.market.valuation,
            haircut_bps: self.portfolio.haircut_bps,
            threshold_bps: self.case.threshold_bps,
            start_ms,
            maturity_ms: Some(maturity + 17 * MS_PER_HOUR),
            rate: self.portfolio.rate,
            day_count: DayCount::Act365Fixed,
            fee_asset: self.cash,
            offer_expiry_ms: start_ms + MS_PER_HOUR,
        }
    }

    /// The oracle's closing prices and FX rates of `day`, closing the date.
    fn prices(&mut self, day: usize) -> VerifiedTransaction {
        let close = &self.market.days[day];
        let publish = PublishPrices {
            date: close.date,
            prices: self
                .market
                .securities
                .iter()
                .zip(&close.prices)
                .map(|(s, price)| PriceEntry {
                    asset: s.id,
                    price: *price,
                })
                .collect::<Vec<_>>()
                .into(),
            rates: self
                .market
                .currencies
                .iter()
                .zip(&close.rates)
                .map(|(currency, rate)| FxEntry {
                    base: *currency,
                    quote: self.market.valuation,
                    rate: *rate,
                })
                .collect::<Vec<_>>()
                .into(),
            close: true,
        };
        self.transaction(Signer::Oracle, Operation::PublishPrices(publish))
    }

    /// Count what the contracts recorded.
    fn observe(&mut self, events: &[RepoEventRecord], walk: bool) -> Result<(), SimError> {
        let tally = &mut self.tally;
        for record in events {
            let slot = &self.slots[self.by_contract[&record.contract]];
            let failed = |event: &'static str, failure: &kessai_types::repo::Failure| {
                Err(SimError::Failed {
                    event,
                    date: failure.date,
                    reason: failure.reason.name().to_owned(),
                })
            };
            match &record.event {
                RepoEvent::Marked(valuation) => {
                    // The walk's markings, and a start's valuation of the collateral just
                    // delivered (at the same close).
                    tally.figures.marks += u64::from(walk);
                    let held = cents(valuation.held);
                    tally.held.insert(record.contract, held);
                    // The lender's exposure to the borrower not covered by collateral (negative:
                    // the borrower's excess collateral is its exposure to the lender).
                    let uncovered = cents(valuation.exposure) - held;
                    let (pair, signed) = match slot.lender < slot.borrower {
                        true => ((slot.lender, slot.borrower), uncovered),
                        false => ((slot.borrower, slot.lender), -uncovered),
                    };
                    *tally.pairs.entry(pair).or_default() += signed;
                }
                RepoEvent::MarginCallSettled(moves) => {
                    let before = tally.held[&record.contract];
                    tally.figures.margin_calls += 1;
                    tally.figures.margin_call_value += (cents(moves.held) - before).abs();
                    tally.figures.token_transfers += moves.moves.len() as u64;
                }
                RepoEvent::MarginCallFailed(_) => tally.figures.margin_calls_failed += 1,
                RepoEvent::Started(moves) => {
                    tally.figures.token_transfers += 1 + moves.moves.len() as u64;
                }
                RepoEvent::Matured(fee) => {
                    tally.figures.maturities += 1;
                    let legs = 1 + self.case.collateral as u64 + u64::from(*fee > 0);
                    tally.figures.token_transfers += legs;
                    tally.held.remove(&record.contract);
                }
                RepoEvent::MarkFailed(failure) => return failed("MARK_FAILED", failure),
                RepoEvent::StartFailed(failure) => return failed("START_FAILED", failure),
                RepoEvent::MaturityFailed(failure) => return failed("MATURITY_FAILED", failure),
                _ => {}
            }
        }
        Ok(())
    }
}

#[derive(Clone, Copy)]
enum Signer {
    Oracle,
    Party(usize),
}
