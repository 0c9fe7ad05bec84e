//! Securities finance: the terms of a repo or securities-lending contract, the steps of its
//! lifecycle, the oracle's closing prices and FX rates, and the events a contract records.
//!
//! Two parties: the **lender** delivers the principal leg (securities lent, or cash lent in a
//! repo) and receives collateral; the **borrower** receives the principal, delivers collateral
//! and pays the fee or repo interest. The contract's id is the id of the transaction that
//! registered it.

use crate::{
    amount::{Decimal, Quantity},
    code::{AccountId, AssetId, Currency, PartyId},
    codec::BoundedVec,
    codec_enum, codec_struct,
    rejection::RejectionCode,
    transaction::TxId,
};

/// The most assets in one collateral basket.
pub const COLLATERAL_ASSETS_MAX: usize = 8;
/// Basis points in a whole: basket weights add up to this; haircut and threshold are at most this.
pub const BPS_WHOLE: u32 = 10_000;
/// The most closing prices one `PublishPrices` carries.
pub const PRICES_PER_TX_MAX: usize = 1_000;
/// The most FX rates one `PublishPrices` carries.
pub const RATES_PER_TX_MAX: usize = 100;

/// A business date as the number `YYYYMMDD` (19 April 2023 is `20230419`).
pub type BusinessDate = u32;

/// Whether `date` is a calendar date written `YYYYMMDD`.
pub fn is_business_date(date: BusinessDate) -> bool {
    let (year, month, day) = (date / 10_000, date / 100 % 100, date % 100);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1900..=9999).contains(&year) && (1..=days).contains(&day)
}

/// One asset of the collateral basket and its share of the required value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CollateralWeight {
    pub asset: AssetId,
    pub weight_bps: u16,
}
codec_struct!(CollateralWeight {
    asset: AssetId,
    weight_bps: u16
});

/// How a fee accrues: actual elapsed time over a year of 360 or 365 days.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DayCount {
    /// ACT/360 (money markets in USD and EUR).
    Act360,
    /// ACT/365 Fixed (JPY, GBP).
    Act365Fixed,
}
codec_enum!(DayCount { 0 => Act360, 1 => Act365Fixed });

impl DayCount {
    pub fn days_per_year(self) -> u128 {
        match self {
            DayCount::Act360 => 360,
            DayCount::Act365Fixed => 365,
        }
    }
}

/// What two parties agree: registered by one, approved by the other.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepoTerms {
    /// Delivers the principal leg; receives the collateral and the fee.
    pub lender: PartyId,
    pub lender_account: AccountId,
    /// Receives the principal leg; delivers the collateral and pays the fee.
    pub borrower: PartyId,
    pub borrower_account: AccountId,
    /// The principal leg: a security (securities lending, special repo) or cash (GC repo).
    pub principal_asset: AssetId,
    pub principal_quantity: Quantity,
    /// One asset, or a basket whose weights add up to [`BPS_WHOLE`].
    pub collateral: BoundedVec<CollateralWeight, COLLATERAL_ASSETS_MAX>,
    /// The currency every value of the contract is computed in.
    pub valuation_currency: Currency,
    /// Required collateral = exposure x (1 + haircut).
    pub haircut_bps: u32,
    /// Margin is called when the collateral differs from the required value by more than this
    /// share of the exposure; 0 calls on any whole-unit difference.
    pub threshold_bps: u32,
    /// The earliest start (Unix milliseconds).
    pub start_ms: u64,
    /// `None` for an open (evergreen) contract, which either party may end at any time.
    pub maturity_ms: Option<u64>,
    /// The repo rate or lending fee per year, e.g. `0.001` for 0.1 %.
    pub rate: Decimal,
    pub day_count: DayCount,
    /// The cash token, in the valuation currency, the fee is paid in.
    pub fee_asset: AssetId,
    /// The counterparty must approve before this time (Unix milliseconds).
    pub offer_expiry_ms: u64,
}
codec_struct!(RepoTerms {
    lender: PartyId,
    lender_account: AccountId,
    borrower: PartyId,
    borrower_account: AccountId,
    principal_asset: AssetId,
    principal_quantity: Quantity,
    collateral: BoundedVec<CollateralWeight, COLLATERAL_ASSETS_MAX>,
    valuation_currency: Currency,
    haircut_bps: u32,
    threshold_bps: u32,
    start_ms: u64,
    maturity_ms: Option<u64>,
    rate: Decimal,
    day_count: DayCount,
    fee_asset: AssetId,
    offer_expiry_ms: u64,
});

/// A lifecycle step that names only the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RepoStep {
    /// The counterparty (the party that did not register) accepts the terms.
    Approve,
    /// The counterparty declines.
    Reject,
    /// Either party withdraws before the start.
    Cancel,
    /// Either party settles the opening legs, at or after the start time.
    Start,
    /// Either party marks the contract to the latest closed prices now.
    Mark,
    /// Either party settles the closing legs, at or after maturity (any time for open
    /// contracts); the fee accrues until maturity. If they cannot settle, the failure is
    /// recorded and the contract is in default.
    Mature,
    /// Both parties end the contract early.
    Terminate,
    /// The lender closes a contract in default (a failed margin call or maturity): it keeps the
    /// collateral against the principal.
    CloseOut,
}
codec_enum!(RepoStep {
    0 => Approve,
    1 => Reject,
    2 => Cancel,
    3 => Start,
    4 => Mark,
    5 => Mature,
    6 => Terminate,
    7 => CloseOut,
});

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RepoAction {
    pub contract: TxId,
    pub step: RepoStep,
}
codec_struct!(RepoAction {
    contract: TxId,
    step: RepoStep
});

/// Replace one collateral asset by another: the borrower offers `quantity` of `add`, the lender
/// co-signs its approval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubstituteCollateral {
    pub contract: TxId,
    pub remove: AssetId,
    pub add: AssetId,
    pub quantity: Quantity,
}
codec_struct!(SubstituteCollateral {
    contract: TxId,
    remove: AssetId,
    add: AssetId,
    quantity: Quantity
});

/// A closing price, quoted in the asset's currency on its price basis (bonds per 100 face).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PriceEntry {
    pub asset: AssetId,
    pub price: Decimal,
}
codec_struct!(PriceEntry {
    asset: AssetId,
    price: Decimal
});

/// One unit of `base` is worth `rate` units of `quote` (EURUSD 1.09253: base EUR, quote USD).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FxEntry {
    pub base: Currency,
    pub quote: Currency,
    pub rate: Decimal,
}
codec_struct!(FxEntry {
    base: Currency,
    quote: Currency,
    rate: Decimal
});

/// The price oracle publishes closing prices and FX rates of a business date, in as many
/// transactions as it needs; `close` declares the date complete, which marks every open contract.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishPrices {
    pub date: BusinessDate,
    pub prices: BoundedVec<PriceEntry, PRICES_PER_TX_MAX>,
    pub rates: BoundedVec<FxEntry, RATES_PER_TX_MAX>,
    pub close: bool,
}
codec_struct!(PublishPrices {
    date: BusinessDate,
    prices: BoundedVec<PriceEntry, PRICES_PER_TX_MAX>,
    rates: BoundedVec<FxEntry, RATES_PER_TX_MAX>,
    close: bool,
});

/// Where a contract is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RepoStatus {
    Proposed,
    Approved,
    /// Started: both legs are out, the contract is marked daily.
    Open,
    Rejected,
    Cancelled,
    Matured,
    Terminated,
    ClosedOut,
}
codec_enum!(RepoStatus {
    0 => Proposed,
    1 => Approved,
    2 => Open,
    3 => Rejected,
    4 => Cancelled,
    5 => Matured,
    6 => Terminated,
    7 => ClosedOut,
});

impl RepoStatus {
    pub fn name(self) -> &'static str {
        match self {
            RepoStatus::Proposed => "PROPOSED",
            RepoStatus::Approved => "APPROVED",
            RepoStatus::Open => "OPEN",
            RepoStatus::Rejected => "REJECTED",
            RepoStatus::Cancelled => "CANCELLED",
            RepoStatus::Matured => "MATURED",
            RepoStatus::Terminated => "TERMINATED",
            RepoStatus::ClosedOut => "CLOSED_OUT",
        }
    }
}

/// Units of one collateral asset the lender holds under the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CollateralHolding {
    pub asset: AssetId,
    pub weight_bps: u16,
    pub quantity: Quantity,
}
codec_struct!(CollateralHolding {
    asset: AssetId,
    weight_bps: u16,
    quantity: Quantity
});

/// A movement of collateral units: to the lender (a call for more) or back to the borrower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CollateralMove {
    pub asset: AssetId,
    pub quantity: Quantity,
    /// Returned from the lender to the borrower (an excess), rather than delivered to the lender.
    pub returned: bool,
}
codec_struct!(CollateralMove {
    asset: AssetId,
    quantity: Quantity,
    returned: bool
});

/// A contract's live record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepoContract {
    pub id: TxId,
    pub terms: RepoTerms,
    /// The party that registered the terms; the other one approves.
    pub proposer: PartyId,
    pub status: RepoStatus,
    /// What the lender holds now (after calls and substitutions).
    pub collateral: BoundedVec<CollateralHolding, COLLATERAL_ASSETS_MAX>,
    pub started_ms: u64,
    /// The exposure at start in the valuation currency, rounded half-up to the fee asset's minor
    /// unit: the base the fee accrues on.
    pub fee_base: Quantity,
    /// The last business date marked (0: never).
    pub marked_date: BusinessDate,
    /// A margin call failed: the lender may close out.
    pub in_default: bool,
    /// How many events the contract has recorded.
    pub events: u32,
    /// Its position among the open contracts (meaningful while open).
    pub slot: u64,
}
codec_struct!(RepoContract {
    id: TxId,
    terms: RepoTerms,
    proposer: PartyId,
    status: RepoStatus,
    collateral: BoundedVec<CollateralHolding, COLLATERAL_ASSETS_MAX>,
    started_ms: u64,
    fee_base: Quantity,
    marked_date: BusinessDate,
    in_default: bool,
    events: u32,
    slot: u64,
});

/// Values of one marking, in the valuation currency, rounded half-up to two decimals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Valuation {
    pub date: BusinessDate,
    pub exposure: Decimal,
    pub required: Decimal,
    pub held: Decimal,
}
codec_struct!(Valuation {
    date: BusinessDate,
    exposure: Decimal,
    required: Decimal,
    held: Decimal
});

/// Collateral that moved at one date's prices, and what the collateral held is worth after.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CollateralMoves {
    pub date: BusinessDate,
    pub moves: BoundedVec<CollateralMove, COLLATERAL_ASSETS_MAX>,
    /// In the valuation currency, rounded half-up to two decimals.
    pub held: Decimal,
}
codec_struct!(CollateralMoves {
    date: BusinessDate,
    moves: BoundedVec<CollateralMove, COLLATERAL_ASSETS_MAX>,
    held: Decimal,
});

/// A step that could not settle, and the reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failure {
    pub date: BusinessDate,
    pub reason: RejectionCode,
}
codec_struct!(Failure {
    date: BusinessDate,
    reason: RejectionCode
});

/// One collateral asset replaced by another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Substitution {
    pub removed: AssetId,
    pub removed_quantity: Quantity,
    pub added: AssetId,
    pub added_quantity: Quantity,
}
codec_struct!(Substitution {
    removed: AssetId,
    removed_quantity: Quantity,
    added: AssetId,
    added_quantity: Quantity
});

/// What happened to a contract.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RepoEvent {
    Registered,
    Approved,
    Rejected,
    Cancelled,
    /// Both opening legs settled; the collateral delivered is in the moves.
    Started(CollateralMoves),
    /// The opening legs could not settle (nothing moved); the contract stays approved.
    StartFailed(Failure),
    Marked(Valuation),
    MarginCallSettled(CollateralMoves),
    /// The borrower lacked the units: nothing moved, the contract is in default.
    MarginCallFailed(Failure),
    /// Marking was impossible (a price or rate missing for the date).
    MarkFailed(Failure),
    Substituted(Substitution),
    /// The closing legs settled with this fee.
    Matured(Quantity),
    Terminated(Quantity),
    ClosedOut,
    /// The closing legs could not settle at maturity (nothing moved): the contract is in default.
    MaturityFailed(Failure),
}
codec_enum!(RepoEvent {
    0 => Registered,
    1 => Approved,
    2 => Rejected,
    3 => Cancelled,
    4 => Started(CollateralMoves),
    5 => StartFailed(Failure),
    6 => Marked(Valuation),
    7 => MarginCallSettled(CollateralMoves),
    8 => MarginCallFailed(Failure),
    9 => MarkFailed(Failure),
    10 => Substituted(Substitution),
    11 => Matured(Quantity),
    12 => Terminated(Quantity),
    13 => ClosedOut,
    14 => MaturityFailed(Failure),
});

impl RepoEvent {
    /// The stable, machine-readable name (e.g. `MARGIN_CALL_SETTLED`).
    pub fn name(&self) -> &'static str {
        match self {
            RepoEvent::Registered => "REGISTERED",
            RepoEvent::Approved => "APPROVED",
            RepoEvent::Rejected => "REJECTED",
            RepoEvent::Cancelled => "CANCELLED",
            RepoEvent::Started(_) => "STARTED",
            RepoEvent::StartFailed(_) => "START_FAILED",
            RepoEvent::Marked(_) => "MARKED",
            RepoEvent::MarginCallSettled(_) => "MARGIN_CALL_SETTLED",
            RepoEvent::MarginCallFailed(_) => "MARGIN_CALL_FAILED",
            RepoEvent::MarkFailed(_) => "MARK_FAILED",
            RepoEvent::Substituted(_) => "SUBSTITUTED",
            RepoEvent::Matured(_) => "MATURED",
            RepoEvent::Terminated(_) => "TERMINATED",
            RepoEvent::ClosedOut => "CLOSED_OUT",
            RepoEvent::MaturityFailed(_) => "MATURITY_FAILED",
        }
    }
}

/// An event as recorded: which contract, its sequence number there, and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepoEventRecord {
    pub contract: TxId,
    pub sequence: u32,
    pub height: u64,
    pub time_ms: u64,
    pub event: RepoEvent,
}
codec_struct!(RepoEventRecord {
    contract: TxId,
    sequence: u32,
    height: u64,
    time_ms: u64,
    event: RepoEvent,
});
