//! Deterministic synthetic workloads: many accounts and streams of signed transfers
//! ([`Workload`]), and a book of open repo contracts with daily closing prices
//! ([`RepoWorkload`]).
//!
//! Used by tests, the crash-recovery writer and the benchmarks. Accounts are owned by a smaller
//! set of parties so that a million accounts do not need a million signing keys.

use crate::{
    genesis::Genesis,
    key::{Chain, Parameters, TIME_BUCKET_MS},
};
use kessai_types::{
    Account, AccountId, Asset, AssetClass, AssetId, BusinessDate, CollateralWeight, DayCount,
    Decimal, Expiry, FxEntry, Leg, Operation, Party, PartyId, PriceEntry, PrivateKey,
    PublishPrices, RepoAction, RepoStep, RepoTerms, Role, RoleSet, Transaction, TxBody, TxId,
    UniqueId, repo::is_business_date,
};

/// The opening balance of every workload account, in minor units.
pub const OPENING_BALANCE: u128 = 1_000_000_000;
/// Workload block `n` is `n` times this after genesis.
pub const BLOCK_INTERVAL_MS: u64 = 1_000;
/// Workload transactions expire this long after their block.
pub const EXPIRY_AFTER_MS: u64 = 60_000;

/// The number of accounts a benchmark uses: `KESSAI_BENCH_ACCOUNTS`, or `default`.
pub fn accounts_from_env(default: usize) -> usize {
    match std::env::var("KESSAI_BENCH_ACCOUNTS") {
        Ok(value) => value
            .replace('_', "")
            .parse()
            .expect("KESSAI_BENCH_ACCOUNTS must be a number of accounts"),
        Err(_) => default,
    }
}

/// A population of funded accounts and the keys of their owners.
pub struct Workload {
    pub genesis: Genesis,
    pub asset: AssetId,
    owners: Vec<(PartyId, PrivateKey)>,
    accounts: Vec<AccountId>,
}

/// SplitMix64: a small, fixed pseudo-random sequence (never used inside the state machine).
pub fn mix(mut state: u64) -> u64 {
    state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Workload {
    /// `accounts` accounts spread over `owners` parties, each holding [`OPENING_BALANCE`] JPY.
    pub fn new(accounts: usize, owners: usize, time_ms: u64) -> Self {
        assert!(owners > 0 && accounts >= 2);
        let asset = AssetId::new("JPY").unwrap();
        let owners: Vec<(PartyId, PrivateKey)> = (0..owners)
            .map(|index| {
                (
                    PartyId::new(&format!("OWNER/{index}")).unwrap(),
                    PrivateKey::from_seed(index as u64 + 1_000),
                )
            })
            .collect();
        let governor = PartyId::new("GOVERNOR").unwrap();
        let mut parties = vec![Party {
            id: governor,
            public_key: PrivateKey::from_seed(1).public_key(),
            roles: RoleSet::of(&[Role::NetworkGovernor, Role::TokenAdministrator]),
            kyc: None,
        }];
        parties.extend(owners.iter().map(|(id, key)| Party {
            id: *id,
            public_key: key.public_key(),
            roles: RoleSet::of(&[Role::Participant]),
            kyc: None,
        }));
        let account_ids: Vec<AccountId> = (0..accounts)
            .map(|index| AccountId::new(&format!("ACC/{index}")).unwrap())
            .collect();
        let genesis = Genesis {
            parameters: Parameters::default(),
            time_ms,
            parties,
            assets: vec![Asset {
                id: asset,
                class: AssetClass::Cash {
                    currency: "JPY".parse().unwrap(),
                    minor_unit_exponent: 0,
                },
                administrator: governor,
                kyc_required: false,
                frozen: false,
                supply: 0,
            }],
            accounts: account_ids
                .iter()
                .enumerate()
                .map(|(index, id)| Account {
                    id: *id,
                    owner: owners[index % owners.len()].0,
                    frozen: false,
                })
                .collect(),
            balances: account_ids
                .iter()
                .map(|id| (*id, asset, OPENING_BALANCE))
                .collect(),
            validators: Vec::new(),
            synthetic: None,
        };
        Workload {
            genesis,
            asset,
            owners,
            accounts: account_ids,
        }
    }

    /// `count` signed transfers between pseudo-random distinct accounts, fixed by `seed`. Every
    /// `failing_every`-th one asks for more than any balance holds (0: none fail).
    pub fn transfers(
        &self,
        seed: u64,
        count: usize,
        expiry_ms: u64,
        failing_every: usize,
    ) -> Vec<Transaction> {
        (0..count)
            .map(|index| {
                let draw = mix(seed.wrapping_mul(1_000_003).wrapping_add(index as u64));
                let source = (draw % self.accounts.len() as u64) as usize;
                let offset = 1 + (mix(draw) % (self.accounts.len() as u64 - 1)) as usize;
                let target = (source + offset) % self.accounts.len();
                let failing = failing_every > 0 && index % failing_every == failing_every - 1;
                let quantity = if failing {
                    OPENING_BALANCE * 1_000
                } else {
                    1 + ((draw >> 40) % 1_000) as u128
                };
                let (owner, key) = &self.owners[source % self.owners.len()];
                let mut unique = [0u8; 16];
                unique[..8].copy_from_slice(&seed.to_be_bytes());
                unique[8..].copy_from_slice(&(index as u64).to_be_bytes());
                let body = TxBody {
                    network: self.genesis.parameters.network,
                    submitter: *owner,
                    unique_id: UniqueId(unique),
                    expiry: Expiry::TimeMs(expiry_ms),
                    operation: Operation::Transfer(Leg {
                        source: self.accounts[source],
                        target: self.accounts[target],
                        asset: self.asset,
                        quantity,
                    }),
                };
                Transaction::sign(body, &[(*owner, key)])
            })
            .collect()
    }

    /// Block `height`: its time ([`BLOCK_INTERVAL_MS`] apart) and `size` transfers expiring
    /// [`EXPIRY_AFTER_MS`] later, fixed by the height (see [`Self::transfers`]).
    pub fn block(&self, height: u64, size: usize, failing_every: usize) -> (u64, Vec<Transaction>) {
        let time_ms = self.genesis.time_ms + height * BLOCK_INTERVAL_MS;
        (
            time_ms,
            self.transfers(height, size, time_ms + EXPIRY_AFTER_MS, failing_every),
        )
    }

    pub fn accounts(&self) -> &[AccountId] {
        &self.accounts
    }
}

/// A signing party of the repo workload and its one account.
struct Trader {
    party: PartyId,
    key: PrivateKey,
    account: AccountId,
}

impl Trader {
    fn new(role: &str, index: usize, seed: u64) -> Self {
        Trader {
            party: PartyId::new(&format!("{role}/{index}")).unwrap(),
            key: PrivateKey::from_seed(seed),
            account: AccountId::new(&format!("{role}/{index}/1")).unwrap(),
        }
    }
}

/// Kinds of repo workload transaction, the first byte of their unique ids.
const KIND_REGISTER: u8 = 1;
const KIND_APPROVE: u8 = 2;
const KIND_START: u8 = 3;
const KIND_PRICES: u8 = 4;

/// The first business date of [`RepoWorkload`]: day 0, on which every contract starts.
pub const REPO_FIRST_DATE: BusinessDate = 20240101;
/// The genesis time of [`RepoWorkload`]: the start of [`REPO_FIRST_DATE`] (UTC).
pub const REPO_GENESIS_MS: u64 = 1_704_067_200_000;
const MS_PER_DAY: u64 = 86_400_000;
/// Each day's prices close at 18:00 UTC.
const CLOSE_AFTER_MS: u64 = 18 * 3_600_000;

/// A book of open repo contracts, all marked to a new business date every day with a margin call
/// due on each (the worst case of the mark-to-market walk).
///
/// The genesis holds a governor (`GOVERNOR`), the assets' administrator (`CSD`), a price oracle
/// (`ORACLE`), `parties / 2` lenders `LENDER/k` (account `LENDER/k/1`, holding `BUND`) and as many
/// borrowers `BORROWER/k` (account `BORROWER/k/1`, holding `STOCK` and `USD`), and three assets:
/// `BUND` (bond, EUR), `STOCK` (equity, USD) and `USD` (cash, cents). Contract `i` lends
/// 1,000,000 to 1,999,000 face of `BUND` from lender `i % L` to borrower `(i + i / L) % L`
/// (every borrower gets as many contracts as every lender, give or take one) against `STOCK`
/// alone (10,000 bps), valued in USD with a 2 % haircut and a zero threshold, open-ended, with
/// the fee in `USD`. Borrowers hold about four times the stock their contracts ever need.
///
/// The genesis is at [`REPO_GENESIS_MS`]. The setup blocks ([`Self::setup_block`], a second
/// apart) publish and close day 0's prices, then register every contract (the borrower submits;
/// the contract id is the registering transaction's id), approve it (the lender signs) and start
/// it, at most `block_transactions_max` transactions a block. Then [`Self::prices`] closes day
/// `d` (1, 2, ...; [`Self::business_date`]) in a block at [`Self::close_time`]: `BUND` and
/// EUR/USD stay put while `STOCK` alternates between 99.00 (odd days: every borrower delivers
/// more shares) and 100.00 (even days: every lender returns the excess), so each marking settles
/// a margin call.
///
/// Every transaction expires `expiry_horizon_blocks` (100,000 by default) after its block, the
/// latest the network allows: block time jumps a day between closes, so a time expiry would let
/// the setup's replay records expire, and their pruning would share the walk's blocks.
pub struct RepoWorkload {
    pub genesis: Genesis,
    pub bond: AssetId,
    pub stock: AssetId,
    pub cash: AssetId,
    oracle: Trader,
    lenders: Vec<Trader>,
    borrowers: Vec<Trader>,
    /// Contract ids, by contract index.
    contracts: Vec<TxId>,
}

impl RepoWorkload {
    /// `contracts` contracts between `parties` parties (half lenders, half borrowers; at least
    /// two).
    pub fn new(contracts: usize, parties: usize) -> Self {
        assert!(contracts > 0 && parties >= 2);
        let side = parties / 2;
        let lenders: Vec<Trader> = (0..side)
            .map(|k| Trader::new("LENDER", k, 1_000_000 + k as u64))
            .collect();
        let borrowers: Vec<Trader> = (0..side)
            .map(|k| Trader::new("BORROWER", k, 2_000_000 + k as u64))
            .collect();
        let oracle = Trader {
            party: PartyId::new("ORACLE").unwrap(),
            key: PrivateKey::from_seed(3),
            account: AccountId::new("ORACLE/1").unwrap(),
        };
        let (governor, csd) = (
            PartyId::new("GOVERNOR").unwrap(),
            PartyId::new("CSD").unwrap(),
        );
        let (bond, stock, cash) = (
            AssetId::new("BUND").unwrap(),
            AssetId::new("STOCK").unwrap(),
            AssetId::new("USD").unwrap(),
        );
        let party = |id: PartyId, key: &PrivateKey, roles: &[Role]| Party {
            id,
            public_key: key.public_key(),
            roles: RoleSet::of(roles),
            kyc: None,
        };
        let mut parties = vec![
            party(
                governor,
                &PrivateKey::from_seed(1),
                &[Role::NetworkGovernor],
            ),
            party(csd, &PrivateKey::from_seed(2), &[Role::TokenAdministrator]),
            party(oracle.party, &oracle.key, &[Role::PriceOracle]),
        ];
        for trader in lenders.iter().chain(&borrowers) {
            parties.push(party(trader.party, &trader.key, &[Role::Participant]));
        }
        let asset = |id: AssetId, class: AssetClass| Asset {
            id,
            class,
            administrator: csd,
            kyc_required: false,
            frozen: false,
            supply: 0,
        };
        let usd = "USD".parse().unwrap();
        let assets = vec![
            asset(
                bond,
                AssetClass::Bond {
                    currency: "EUR".parse().unwrap(),
                },
            ),
            asset(stock, AssetClass::Equity { currency: usd }),
            asset(
                cash,
                AssetClass::Cash {
                    currency: usd,
                    minor_unit_exponent: 2,
                },
            ),
        ];
        // Contracts per party, rounded up: each needs at most 2,000,000 face of BUND and, at
        // 99.00 a share, about 22,300 shares.
        let per_party = contracts.div_ceil(side) as u128;
        let mut accounts = Vec::new();
        let mut balances = Vec::new();
        for (trader, holdings) in lenders
            .iter()
            .map(|t| (t, vec![(bond, per_party * 2_000_000)]))
            .chain(borrowers.iter().map(|t| {
                (
                    t,
                    vec![
                        (stock, per_party * 100_000),
                        (cash, per_party * 100_000_000),
                    ],
                )
            }))
        {
            accounts.push(Account {
                id: trader.account,
                owner: trader.party,
                frozen: false,
            });
            balances.extend(holdings.into_iter().map(|(a, q)| (trader.account, a, q)));
        }
        let genesis = Genesis {
            parameters: Parameters::default(),
            time_ms: REPO_GENESIS_MS,
            parties,
            assets,
            accounts,
            balances,
            validators: Vec::new(),
            synthetic: None,
        };
        let mut workload = RepoWorkload {
            genesis,
            bond,
            stock,
            cash,
            oracle,
            lenders,
            borrowers,
            contracts: Vec::with_capacity(contracts),
        };
        workload.contracts = (0..contracts)
            .map(|index| workload.registration(index).id())
            .collect();
        workload
    }

    /// Contract ids, by contract index (the order of registration; slot `i` holds contract `i`).
    pub fn contracts(&self) -> &[TxId] {
        &self.contracts
    }

    /// The time of setup block `height`: [`BLOCK_INTERVAL_MS`] apart, from the genesis.
    fn setup_time(&self, height: u64) -> u64 {
        self.genesis.time_ms + height * BLOCK_INTERVAL_MS
    }

    /// The time of the block that closes day `day` (1, 2, ...): 18:00 UTC on its date.
    ///
    /// Block time jumps about a day from one close to the next. A real chain makes blocks all
    /// day long, so its expiry pruning keeps up with the clock; here the next blocks would each
    /// skip up to `PRUNE_BUCKETS_PER_BLOCK_MAX` (256) empty one-minute buckets, an extra read
    /// round, until they caught up. Before the close, apply empty blocks a second earlier until
    /// [`Self::pruning_caught_up`].
    pub fn close_time(&self, day: u32) -> u64 {
        self.genesis.time_ms + day as u64 * MS_PER_DAY + CLOSE_AFTER_MS
    }

    /// Whether a ledger at `chain` has pruned up to a second before day `day`'s close.
    pub fn pruning_caught_up(&self, day: u32, chain: Chain) -> bool {
        let before = self.close_time(day) - BLOCK_INTERVAL_MS;
        chain.time_ms >= before && chain.time_cursor.bucket >= before / TIME_BUCKET_MS
    }

    fn chunk(&self) -> usize {
        self.genesis.parameters.block_transactions_max as usize
    }

    /// Blocks of registrations (as many of approvals, and of starts).
    fn stage_blocks(&self) -> u64 {
        self.contracts.len().div_ceil(self.chunk()) as u64
    }

    /// How many setup blocks there are: heights `1..=setup_blocks()`.
    pub fn setup_blocks(&self) -> u64 {
        1 + 3 * self.stage_blocks()
    }

    /// Setup block `height` (1 to [`Self::setup_blocks`]): its time and signed transactions.
    /// Height 1 closes day 0; then come the registrations, the approvals and the starts.
    pub fn setup_block(&self, height: u64) -> (u64, Vec<Transaction>) {
        assert!((1..=self.setup_blocks()).contains(&height));
        let time_ms = self.setup_time(height);
        if height == 1 {
            return (time_ms, vec![self.prices(0, height)]);
        }
        let stage = (height - 2) / self.stage_blocks();
        let chunk = ((height - 2) % self.stage_blocks()) as usize * self.chunk();
        let indices = chunk..(chunk + self.chunk()).min(self.contracts.len());
        let expiry = self.expiry(height);
        let transactions = indices
            .map(|index| match stage {
                0 => {
                    let borrower = self.borrower(index);
                    Transaction::sign(self.registration(index), &[(borrower.party, &borrower.key)])
                }
                _ => {
                    let (kind, step, trader) = if stage == 1 {
                        (KIND_APPROVE, RepoStep::Approve, self.lender(index))
                    } else {
                        (KIND_START, RepoStep::Start, self.borrower(index))
                    };
                    let body = TxBody {
                        network: self.genesis.parameters.network,
                        submitter: trader.party,
                        unique_id: unique_id(kind, index as u64),
                        expiry,
                        operation: Operation::RepoAction(RepoAction {
                            contract: self.contracts[index],
                            step,
                        }),
                    };
                    Transaction::sign(body, &[(trader.party, &trader.key)])
                }
            })
            .collect();
        (time_ms, transactions)
    }

    /// The closing prices of day `day` (see [`Self::business_date`]), for the block at `height`
    /// (from [`Self::close_time`] on): `BUND` 98.811, EUR/USD 1.09253, `STOCK` per
    /// [`Self::stock_price`]; `close` starts the walk.
    pub fn prices(&self, day: u32, height: u64) -> Transaction {
        let body = TxBody {
            network: self.genesis.parameters.network,
            submitter: self.oracle.party,
            unique_id: unique_id(KIND_PRICES, day as u64),
            expiry: self.expiry(height),
            operation: Operation::PublishPrices(PublishPrices {
                date: Self::business_date(day),
                prices: vec![
                    PriceEntry {
                        asset: self.bond,
                        price: "98.811".parse().unwrap(),
                    },
                    PriceEntry {
                        asset: self.stock,
                        price: Self::stock_price(day),
                    },
                ]
                .into(),
                rates: vec![FxEntry {
                    base: "EUR".parse().unwrap(),
                    quote: "USD".parse().unwrap(),
                    rate: "1.09253".parse().unwrap(),
                }]
                .into(),
                close: true,
            }),
        };
        Transaction::sign(body, &[(self.oracle.party, &self.oracle.key)])
    }

    /// Day `day`'s business date: [`REPO_FIRST_DATE`] plus `day` calendar days.
    pub fn business_date(day: u32) -> BusinessDate {
        let mut date = REPO_FIRST_DATE;
        for _ in 0..day {
            date += 1;
            if !is_business_date(date) {
                // Past the end of the month: the first of the next one.
                let (year, month) = (date / 10_000, date / 100 % 100);
                date = if month == 12 {
                    (year + 1) * 10_000 + 101
                } else {
                    year * 10_000 + (month + 1) * 100 + 1
                };
            }
        }
        debug_assert!(is_business_date(date));
        date
    }

    /// `STOCK`'s closing price on day `day`: 100.00 on even days, 99.00 on odd ones.
    pub fn stock_price(day: u32) -> Decimal {
        Decimal::new(if day.is_multiple_of(2) { 10_000 } else { 9_900 }, 2).unwrap()
    }

    fn lender(&self, index: usize) -> &Trader {
        &self.lenders[index % self.lenders.len()]
    }

    fn borrower(&self, index: usize) -> &Trader {
        let side = self.borrowers.len();
        &self.borrowers[(index + index / side) % side]
    }

    /// The expiry of a transaction for the block at `height`.
    fn expiry(&self, height: u64) -> Expiry {
        Expiry::Height(height + self.genesis.parameters.expiry_horizon_blocks)
    }

    /// The body registering contract `index` in its setup block (its id is the contract's).
    fn registration(&self, index: usize) -> TxBody {
        let (lender, borrower) = (self.lender(index), self.borrower(index));
        let start_ms = self.genesis.time_ms;
        let expiry = self.expiry(2 + (index / self.chunk()) as u64);
        TxBody {
            network: self.genesis.parameters.network,
            submitter: borrower.party,
            unique_id: unique_id(KIND_REGISTER, index as u64),
            expiry,
            operation: Operation::RegisterRepo(RepoTerms {
                lender: lender.party,
                lender_account: lender.account,
                borrower: borrower.party,
                borrower_account: borrower.account,
                principal_asset: self.bond,
                principal_quantity: 1_000_000 + 1_000 * (index % 1_000) as u128,
                collateral: vec![CollateralWeight {
                    asset: self.stock,
                    weight_bps: 10_000,
                }]
                .into(),
                valuation_currency: "USD".parse().unwrap(),
                haircut_bps: 200,
                threshold_bps: 0,
                start_ms,
                maturity_ms: None,
                rate: "0.001".parse().unwrap(),
                day_count: DayCount::Act360,
                fee_asset: self.cash,
                offer_expiry_ms: start_ms + 86_400_000,
            }),
        }
    }
}

fn unique_id(kind: u8, index: u64) -> UniqueId {
    let mut unique = [0u8; 16];
    unique[0] = kind;
    unique[8..].copy_from_slice(&index.to_be_bytes());
    UniqueId(unique)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MemoryLedger, REPO_MARKS_PER_BLOCK_MAX, RepoBook, StateKey, StateValue};
    use commonware_parallel::Sequential;
    use kessai_types::{RepoEvent, verify_transactions};

    #[test]
    fn business_dates_follow_the_calendar() {
        assert_eq!(RepoWorkload::business_date(0), 20240101);
        assert_eq!(RepoWorkload::business_date(30), 20240131);
        assert_eq!(RepoWorkload::business_date(31), 20240201);
        assert_eq!(RepoWorkload::business_date(59), 20240229);
        assert_eq!(RepoWorkload::business_date(366), 20250101);
    }

    #[test]
    fn every_contract_opens_and_settles_a_call_each_day() {
        let contracts = 1_500;
        let workload = RepoWorkload::new(contracts, 20);
        let mut ledger = MemoryLedger::new(&workload.genesis).unwrap();
        for height in 1..=workload.setup_blocks() {
            let (time_ms, transactions) = workload.setup_block(height);
            let outcomes = ledger.apply(time_ms, &verify_transactions(transactions, &Sequential));
            assert!(
                outcomes.iter().all(|o| o.rejection.is_none()),
                "{height}: {outcomes:?}"
            );
        }
        let book = |ledger: &MemoryLedger| match ledger.get(&StateKey::RepoBook) {
            Some(StateValue::RepoBook(book)) => *book,
            other => panic!("no repo book: {other:?}"),
        };
        assert_eq!(book(&ledger).open, contracts as u64);
        let chain = |ledger: &MemoryLedger| match ledger.get(&StateKey::Chain) {
            Some(StateValue::Chain(chain)) => *chain,
            other => panic!("no chain record: {other:?}"),
        };
        for day in 1..=2 {
            let time_ms = workload.close_time(day);
            let mut idle = 0;
            while !workload.pruning_caught_up(day, chain(&ledger)) {
                ledger.apply(time_ms - BLOCK_INTERVAL_MS, &[]);
                idle += 1;
            }
            // A day (1,440 one-minute buckets) at most 256 a block.
            assert!(idle <= 11, "{idle} idle blocks");
            let close = vec![workload.prices(day, ledger.height() + 1)];
            let close = verify_transactions(close, &Sequential);
            assert!(ledger.apply(time_ms, &close)[0].rejection.is_none());
            let blocks = (contracts as u64).div_ceil(REPO_MARKS_PER_BLOCK_MAX);
            for block in 1..=blocks {
                ledger.apply(time_ms + block * BLOCK_INTERVAL_MS, &[]);
                // The read set, then the slots, the contracts, their keys and the FX rates.
                assert!(ledger.last_rounds() <= 5, "{} rounds", ledger.last_rounds());
            }
            assert_eq!(
                book(&ledger),
                RepoBook {
                    open: contracts as u64,
                    latest_closed: RepoWorkload::business_date(day),
                    marking: None,
                }
            );
            for id in workload.contracts() {
                let Some(StateValue::Repo(contract)) = ledger.get(&StateKey::Repo(*id)) else {
                    panic!("no contract {id}");
                };
                // Registered, approved, started, marked; then marked and called each day.
                assert_eq!(contract.events, 4 + 2 * day);
                let event = |sequence| match ledger.get(&StateKey::RepoEvent(*id, sequence)) {
                    Some(StateValue::RepoEvent(record)) => record.event.clone(),
                    other => panic!("no event {sequence}: {other:?}"),
                };
                assert!(matches!(event(contract.events - 2), RepoEvent::Marked(_)));
                assert!(matches!(
                    event(contract.events - 1),
                    RepoEvent::MarginCallSettled(_)
                ));
            }
        }
        ledger.audit();
    }
}
