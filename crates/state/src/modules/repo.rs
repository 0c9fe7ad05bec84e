//! Securities finance: repo and securities-lending contracts, closing prices, daily
//! mark-to-market and automatic margin calls.
//!
//! Custody: the principal leg moves to the borrower's available units. Collateral moves to the
//! lender's account, encumbered under a lien keyed by the contract id in the borrower's favour,
//! so the lender holds it but cannot move it; only the contract's steps do (a plain `Release` of
//! such a lien is refused). The ledger's lien invariant therefore covers collateral too.
//!
//! Valuation (all exact, rounded once at the end):
//! - value of `q` units = q x price (bonds: per 100 face) x FX rate into the valuation currency;
//!   a cash token is worth its minor unit (10^-exponent) without a published price.
//! - exposure = value of the principal; required = exposure x (1 + haircut).
//! - basket rule: asset `i` must cover `required x weight_i`, in whole units rounded **up**
//!   (each asset on its own, so the basket as a whole covers the exposure too).
//! - a margin call is due when the held units differ from those targets and
//!   |required - held value| > threshold x exposure (with threshold 0: on any difference). It
//!   moves each asset to its target: more units from the borrower, or excess units back.
//! - reported values are rounded half-up to two decimals; the fee is rounded down and accrues
//!   on the exposure at start until maturity (or early termination).
//!
//! Failures: a start, a margin call or a maturity that cannot settle moves nothing and is
//! recorded as an event; the transaction that triggered it is still accepted. A call or a
//! maturity that fails because the borrower lacks units puts the contract in default, and the
//! lender may then close out; a marking that finds no call due clears the flag.
//!
//! Mark-to-market: closing a business date (`PublishPrices` with `close`) starts a walk over the
//! open contracts, from the last slot down, at most [`REPO_MARKS_PER_BLOCK_MAX`] a block, each
//! block before its transactions. A party may also mark its contract on demand.

use crate::{
    execute::{Ctx, Halt, Step, WriteSet},
    key::{MarkWalk, RepoBook, StateKey, StateValue},
    modules::token,
};
use kessai_types::{
    AccountId, AssetClass, AssetId, BusinessDate, CollateralHolding, CollateralMove, Currency,
    Decimal, Lien, PublishPrices, Quantity, Ratio, RejectionCode, RepoAction, RepoContract,
    RepoEvent, RepoEventRecord, RepoStatus, RepoStep, RepoTerms, Role, Rounding,
    SubstituteCollateral, TxId,
    amount::AmountError,
    repo::{BPS_WHOLE, CollateralMoves, Failure, Substitution, Valuation, is_business_date},
};

/// The most contracts the mark-to-market walk marks in one block.
pub const REPO_MARKS_PER_BLOCK_MAX: u64 = 1_000;

const MS_PER_DAY: u128 = 86_400_000;

fn bps(value: u32) -> Ratio {
    Ratio {
        numerator: value as u128,
        denominator: BPS_WHOLE as u128,
    }
}

/// The keys registering `terms` reads.
pub(crate) fn terms_keys(terms: &RepoTerms, keys: &mut Vec<StateKey>) {
    keys.extend([
        StateKey::Party(terms.lender),
        StateKey::Party(terms.borrower),
        StateKey::Account(terms.lender_account),
        StateKey::Account(terms.borrower_account),
        StateKey::Asset(terms.principal_asset),
        StateKey::Asset(terms.fee_asset),
    ]);
    keys.extend(terms.collateral.iter().map(|c| StateKey::Asset(c.asset)));
}

/// Every key a step of `contract` may read, with the prices of `date` if it values the
/// contract; FX rates are not named (they depend on the assets' currencies).
fn contract_keys(contract: &RepoContract, date: Option<BusinessDate>) -> Vec<StateKey> {
    let terms = &contract.terms;
    let mut keys = Vec::new();
    terms_keys(terms, &mut keys);
    let (lender, borrower) = (terms.lender_account, terms.borrower_account);
    keys.extend(date.map(|date| StateKey::Price(date, terms.principal_asset)));
    for asset in [terms.principal_asset, terms.fee_asset] {
        keys.extend([
            StateKey::Balance(lender, asset),
            StateKey::Balance(borrower, asset),
        ]);
    }
    for holding in contract.collateral.iter() {
        keys.extend(date.map(|date| StateKey::Price(date, holding.asset)));
        keys.extend([
            StateKey::Asset(holding.asset),
            StateKey::Balance(lender, holding.asset),
            StateKey::Balance(borrower, holding.asset),
            StateKey::Lien(lender, holding.asset, contract.id),
        ]);
    }
    keys
}

fn contract(ctx: &mut Ctx<'_, '_>, id: TxId) -> Step<RepoContract> {
    match ctx.read(&StateKey::Repo(id))? {
        Some(StateValue::Repo(contract)) => Ok(contract),
        None => Err(RejectionCode::UnknownContract.into()),
        Some(other) => panic!("corrupt state: contract {id} holds {other:?}"),
    }
}

fn put_contract(ctx: &mut Ctx<'_, '_>, contract: &RepoContract) {
    ctx.write(
        StateKey::Repo(contract.id),
        StateValue::Repo(contract.clone()),
    );
}

fn record(ctx: &mut Ctx<'_, '_>, contract: &mut RepoContract, event: RepoEvent) {
    let record = RepoEventRecord {
        contract: contract.id,
        sequence: contract.events,
        height: ctx.height,
        time_ms: ctx.time_ms,
        event,
    };
    ctx.write(
        StateKey::RepoEvent(contract.id, contract.events),
        StateValue::RepoEvent(record),
    );
    contract.events += 1;
}

fn book(ctx: &mut Ctx<'_, '_>) -> Step<RepoBook> {
    match ctx.read(&StateKey::RepoBook)? {
        Some(StateValue::RepoBook(book)) => Ok(book),
        None => Ok(RepoBook::default()),
        Some(other) => panic!("corrupt state: repo book holds {other:?}"),
    }
}

fn put_book(ctx: &mut Ctx<'_, '_>, book: RepoBook) {
    ctx.write(StateKey::RepoBook, StateValue::RepoBook(book));
}

/// The currency an asset is valued in; commodities have none and cannot be repo legs.
fn currency_of(class: AssetClass) -> Step<Currency> {
    match class {
        AssetClass::Bond { currency }
        | AssetClass::Equity { currency }
        | AssetClass::Cash { currency, .. } => Ok(currency),
        AssetClass::Commodity { .. } => Err(RejectionCode::InvalidOperation.into()),
    }
}

pub(crate) fn register(ctx: &mut Ctx<'_, '_>, terms: &RepoTerms) -> Step<()> {
    if ctx.submitter != terms.lender && ctx.submitter != terms.borrower {
        return Err(RejectionCode::NotAuthorized.into());
    }
    if terms.lender == terms.borrower || terms.lender_account == terms.borrower_account {
        return Err(RejectionCode::InvalidOperation.into());
    }
    if ctx.exists(StateKey::Repo(ctx.tx_id))? {
        return Err(RejectionCode::AlreadyExists.into());
    }
    for (party, account) in [
        (terms.lender, terms.lender_account),
        (terms.borrower, terms.borrower_account),
    ] {
        ctx.party(party)?;
        if ctx.account(account)?.owner != party {
            return Err(RejectionCode::NotAuthorized.into());
        }
    }
    currency_of(ctx.asset(terms.principal_asset)?.class)?;
    let mut weights = 0u32;
    for (index, item) in terms.collateral.iter().enumerate() {
        currency_of(ctx.asset(item.asset)?.class)?;
        let repeated = terms.collateral[..index]
            .iter()
            .any(|other| other.asset == item.asset);
        if item.weight_bps == 0 || repeated || item.asset == terms.principal_asset {
            return Err(RejectionCode::InvalidOperation.into());
        }
        weights += item.weight_bps as u32;
    }
    match ctx.asset(terms.fee_asset)?.class {
        AssetClass::Cash { currency, .. } if currency == terms.valuation_currency => {}
        _ => return Err(RejectionCode::InvalidOperation.into()),
    }
    if terms.principal_quantity == 0 {
        return Err(RejectionCode::InvalidQuantity.into());
    }
    let invalid = terms.collateral.is_empty()
        || weights != BPS_WHOLE
        || terms.haircut_bps > BPS_WHOLE
        || terms.threshold_bps > BPS_WHOLE
        || terms
            .maturity_ms
            .is_some_and(|maturity| maturity <= terms.start_ms);
    if invalid {
        return Err(RejectionCode::InvalidOperation.into());
    }
    if terms.offer_expiry_ms < ctx.time_ms {
        return Err(RejectionCode::OfferExpired.into());
    }
    let mut contract = RepoContract {
        id: ctx.tx_id,
        terms: terms.clone(),
        proposer: ctx.submitter,
        status: RepoStatus::Proposed,
        collateral: terms
            .collateral
            .iter()
            .map(|item| CollateralHolding {
                asset: item.asset,
                weight_bps: item.weight_bps,
                quantity: 0,
            })
            .collect::<Vec<_>>()
            .into(),
        started_ms: 0,
        fee_base: 0,
        marked_date: 0,
        in_default: false,
        events: 0,
        slot: 0,
    };
    record(ctx, &mut contract, RepoEvent::Registered);
    put_contract(ctx, &contract);
    Ok(())
}

/// The submitter is a party of the contract.
fn require_party(ctx: &Ctx<'_, '_>, contract: &RepoContract) -> Step<()> {
    if ctx.submitter == contract.terms.lender || ctx.submitter == contract.terms.borrower {
        Ok(())
    } else {
        Err(RejectionCode::NotAuthorized.into())
    }
}

fn require_status(contract: &RepoContract, status: RepoStatus) -> Step<()> {
    if contract.status == status {
        Ok(())
    } else {
        Err(RejectionCode::InvalidOperation.into())
    }
}

pub(crate) fn act(ctx: &mut Ctx<'_, '_>, op: &RepoAction) -> Step<()> {
    let mut contract = contract(ctx, op.contract)?;
    let terms = contract.terms.clone();
    let counterparty = if contract.proposer == terms.lender {
        terms.borrower
    } else {
        terms.lender
    };
    match op.step {
        RepoStep::Approve | RepoStep::Reject => {
            require_status(&contract, RepoStatus::Proposed)?;
            ctx.require_signer(counterparty)?;
            if op.step == RepoStep::Reject {
                contract.status = RepoStatus::Rejected;
                record(ctx, &mut contract, RepoEvent::Rejected);
            } else if ctx.time_ms > terms.offer_expiry_ms {
                return Err(RejectionCode::OfferExpired.into());
            } else {
                contract.status = RepoStatus::Approved;
                record(ctx, &mut contract, RepoEvent::Approved);
            }
        }
        RepoStep::Cancel => {
            if !matches!(contract.status, RepoStatus::Proposed | RepoStatus::Approved) {
                return Err(RejectionCode::InvalidOperation.into());
            }
            require_party(ctx, &contract)?;
            contract.status = RepoStatus::Cancelled;
            record(ctx, &mut contract, RepoEvent::Cancelled);
        }
        RepoStep::Start => {
            require_status(&contract, RepoStatus::Approved)?;
            require_party(ctx, &contract)?;
            let matured = terms
                .maturity_ms
                .is_some_and(|maturity| ctx.time_ms >= maturity);
            if ctx.time_ms < terms.start_ms || matured {
                return Err(RejectionCode::InvalidOperation.into());
            }
            start(ctx, &mut contract)?;
        }
        RepoStep::Mark => {
            require_status(&contract, RepoStatus::Open)?;
            require_party(ctx, &contract)?;
            let date = latest_closed(ctx)?;
            ctx.touch(contract_keys(&contract, Some(date)))?;
            let marking = value(ctx, &contract, date)?;
            // A contract in default may always be marked: a marking that finds the collateral
            // sufficient clears the flag.
            if !marking.call && !contract.in_default {
                return Err(RejectionCode::ThresholdNotReached.into());
            }
            mark(ctx, &mut contract, marking)?;
        }
        RepoStep::Mature | RepoStep::Terminate => {
            require_status(&contract, RepoStatus::Open)?;
            require_party(ctx, &contract)?;
            let early = op.step == RepoStep::Terminate;
            if early {
                ctx.require_signer(terms.lender)?;
                ctx.require_signer(terms.borrower)?;
            } else if terms
                .maturity_ms
                .is_some_and(|maturity| ctx.time_ms < maturity)
            {
                return Err(RejectionCode::InvalidOperation.into());
            }
            // The fee accrues until maturity, not until a late settlement.
            let until = match terms.maturity_ms {
                Some(maturity) if !early => maturity.min(ctx.time_ms),
                _ => ctx.time_ms,
            };
            if early {
                let fee = unwind(ctx, &mut contract, until)?;
                contract.status = RepoStatus::Terminated;
                record(ctx, &mut contract, RepoEvent::Terminated(fee));
            } else {
                // A maturity that cannot settle moves nothing; it is recorded and the contract
                // is in default, so that the lender may close out.
                let checkpoint = ctx.checkpoint();
                match unwind(ctx, &mut contract, until) {
                    Ok(fee) => {
                        contract.status = RepoStatus::Matured;
                        record(ctx, &mut contract, RepoEvent::Matured(fee));
                    }
                    Err(Halt::Reject(rejection)) => {
                        ctx.rollback(checkpoint);
                        contract.in_default = true;
                        let failure = Failure {
                            date: book(ctx)?.latest_closed,
                            reason: rejection.code,
                        };
                        record(ctx, &mut contract, RepoEvent::MaturityFailed(failure));
                    }
                    Err(missing) => return Err(missing),
                }
            }
        }
        RepoStep::CloseOut => {
            require_status(&contract, RepoStatus::Open)?;
            ctx.require_signer(terms.lender)?;
            if !contract.in_default {
                return Err(RejectionCode::InvalidOperation.into());
            }
            ctx.touch(contract_keys(&contract, None))?;
            for holding in contract.collateral.clone().iter() {
                unpledge(ctx, &contract, holding.asset, holding.quantity, false)?;
            }
            remove_open(ctx, &contract)?;
            contract.status = RepoStatus::ClosedOut;
            record(ctx, &mut contract, RepoEvent::ClosedOut);
        }
    }
    put_contract(ctx, &contract);
    Ok(())
}

fn latest_closed(ctx: &mut Ctx<'_, '_>) -> Step<BusinessDate> {
    match book(ctx)?.latest_closed {
        0 => Err(RejectionCode::PriceMissing.into()),
        date => Ok(date),
    }
}

/// Settle the opening legs at the latest closed prices, or record why they cannot settle.
fn start(ctx: &mut Ctx<'_, '_>, contract: &mut RepoContract) -> Step<()> {
    let date = latest_closed(ctx)?;
    ctx.touch(contract_keys(contract, Some(date)))?;
    let marking = value(ctx, contract, date)?;
    let terms = contract.terms.clone();
    let checkpoint = ctx.checkpoint();
    let settled = (|| {
        take(
            ctx,
            terms.lender_account,
            terms.principal_asset,
            terms.principal_quantity,
        )?;
        give(
            ctx,
            terms.borrower_account,
            terms.principal_asset,
            terms.principal_quantity,
        )?;
        for (holding, target) in contract.collateral.iter().zip(&marking.targets) {
            pledge(ctx, contract, holding.asset, *target)?;
        }
        Ok(())
    })();
    match settled {
        Ok(()) => {}
        Err(Halt::Reject(rejection)) => {
            ctx.rollback(checkpoint);
            let failure = Failure {
                date,
                reason: rejection.code,
            };
            record(ctx, contract, RepoEvent::StartFailed(failure));
            return Ok(());
        }
        Err(missing) => return Err(missing),
    }
    let moves = contract
        .collateral
        .iter_mut()
        .zip(&marking.targets)
        .map(|(holding, target)| {
            holding.quantity = *target;
            CollateralMove {
                asset: holding.asset,
                quantity: *target,
                returned: false,
            }
        })
        .collect::<Vec<_>>();
    let exponent = match ctx.asset(terms.fee_asset)?.class {
        AssetClass::Cash {
            minor_unit_exponent,
            ..
        } => minor_unit_exponent,
        _ => unreachable!("registration checked the fee asset"),
    };
    contract.fee_base = marking
        .exposure
        .checked_mul(Ratio::whole(10u128.pow(exponent as u32)))?
        .round(Rounding::HalfUp);
    contract.started_ms = ctx.time_ms;
    contract.marked_date = date;
    contract.status = RepoStatus::Open;
    let mut book = book(ctx)?;
    contract.slot = book.open;
    ctx.write(
        StateKey::RepoSlot(book.open),
        StateValue::RepoSlot(contract.id),
    );
    book.open += 1;
    put_book(ctx, book);
    let valuation = Valuation {
        held: marking.target_value,
        ..marking.valuation
    };
    let moves = CollateralMoves {
        date,
        moves: moves.into(),
        held: marking.target_value,
    };
    record(ctx, contract, RepoEvent::Started(moves));
    record(ctx, contract, RepoEvent::Marked(valuation));
    Ok(())
}

/// Settle the closing legs: the principal back to the lender with the accrued fee, the
/// collateral back to the borrower. Returns the fee.
fn unwind(ctx: &mut Ctx<'_, '_>, contract: &mut RepoContract, until_ms: u64) -> Step<Quantity> {
    let terms = contract.terms.clone();
    ctx.touch(contract_keys(contract, None))?;
    let fee = fee(contract, until_ms)?;
    // The collateral returns first: cash collateral may pay the fee.
    for holding in contract.collateral.clone().iter() {
        unpledge(ctx, contract, holding.asset, holding.quantity, true)?;
    }
    let mut legs = vec![(terms.principal_asset, terms.principal_quantity)];
    if fee > 0 {
        legs.push((terms.fee_asset, fee));
    }
    for (asset, quantity) in legs {
        take(ctx, terms.borrower_account, asset, quantity)?;
        give(ctx, terms.lender_account, asset, quantity)?;
    }
    remove_open(ctx, contract)?;
    Ok(fee)
}

/// fee = base x rate x elapsed / (days per year x one day), rounded down (the payer is never
/// over-charged).
pub fn fee(contract: &RepoContract, now_ms: u64) -> Result<Quantity, AmountError> {
    let elapsed = now_ms.saturating_sub(contract.started_ms) as u128;
    let year = contract.terms.day_count.days_per_year() * MS_PER_DAY;
    Ok(Ratio::whole(contract.fee_base)
        .checked_mul(contract.terms.rate.ratio())?
        .checked_mul(Ratio {
            numerator: elapsed,
            denominator: year,
        })?
        .round(Rounding::Down))
}

/// Take the contract out of the open book: the last slot's contract moves into its slot.
fn remove_open(ctx: &mut Ctx<'_, '_>, contract: &RepoContract) -> Step<()> {
    let mut book = book(ctx)?;
    let last = book.open - 1;
    if contract.slot != last {
        let Some(StateValue::RepoSlot(moved)) = ctx.read(&StateKey::RepoSlot(last))? else {
            panic!("corrupt state: open slot {last} is empty");
        };
        let mut moved = self::contract(ctx, moved)?;
        moved.slot = contract.slot;
        put_contract(ctx, &moved);
        ctx.write(
            StateKey::RepoSlot(contract.slot),
            StateValue::RepoSlot(moved.id),
        );
    }
    ctx.delete(StateKey::RepoSlot(last));
    book.open = last;
    // A walk marks slots below `remaining`, from the top down. The moved contract was either
    // above it (marked already, then skipped by its date) or below the new top, still to come.
    if let Some(walk) = &mut book.marking {
        walk.remaining = walk.remaining.min(book.open);
    }
    put_book(ctx, book);
    Ok(())
}

/// Debit available units: the account and the asset must not be frozen.
fn take(ctx: &mut Ctx<'_, '_>, account: AccountId, asset: AssetId, quantity: Quantity) -> Step<()> {
    if ctx.account(account)?.frozen {
        return Err(RejectionCode::AccountFrozen.into());
    }
    if ctx.asset(asset)?.frozen {
        return Err(RejectionCode::AssetFrozen.into());
    }
    token::debit(ctx, account, asset, quantity)
}

/// The account must be able to receive the asset (not frozen, real-name rule).
fn receivable(ctx: &mut Ctx<'_, '_>, account: AccountId, asset: AssetId) -> Step<()> {
    let (account, asset) = (ctx.account(account)?, ctx.asset(asset)?);
    token::check_receiver(ctx, &account, &asset)
}

/// Credit available units to an account that can receive them.
fn give(ctx: &mut Ctx<'_, '_>, account: AccountId, asset: AssetId, quantity: Quantity) -> Step<()> {
    receivable(ctx, account, asset)?;
    token::credit(ctx, account, asset, quantity)
}

/// Collateral from the borrower to the lender, encumbered under the contract's lien.
fn pledge(
    ctx: &mut Ctx<'_, '_>,
    contract: &RepoContract,
    asset: AssetId,
    quantity: Quantity,
) -> Step<()> {
    if quantity == 0 {
        return Ok(());
    }
    let terms = &contract.terms;
    take(ctx, terms.borrower_account, asset, quantity)?;
    receivable(ctx, terms.lender_account, asset)?;
    let lien = Lien {
        beneficiary: terms.borrower,
        quantity,
        by_contract: true,
    };
    token::add_to_lien(ctx, terms.lender_account, asset, contract.id, lien)
}

/// Collateral out of the contract's lien: back to the borrower, or (a close-out) freed in the
/// lender's account.
fn unpledge(
    ctx: &mut Ctx<'_, '_>,
    contract: &RepoContract,
    asset: AssetId,
    quantity: Quantity,
    to_borrower: bool,
) -> Step<()> {
    if quantity == 0 {
        return Ok(());
    }
    let terms = &contract.terms;
    token::release_from_lien(ctx, terms.lender_account, asset, contract.id, quantity)?;
    if to_borrower {
        token::debit(ctx, terms.lender_account, asset, quantity)?;
        give(ctx, terms.borrower_account, asset, quantity)?;
    }
    Ok(())
}

/// One unit of `asset` at `date`, in `currency`.
fn unit_value(
    ctx: &mut Ctx<'_, '_>,
    asset: AssetId,
    date: BusinessDate,
    currency: Currency,
) -> Step<Ratio> {
    let record = ctx.asset(asset)?;
    let (price, per) = match record.class {
        AssetClass::Cash {
            minor_unit_exponent,
            ..
        } => (Decimal::new(1, minor_unit_exponent)?.ratio(), 1),
        AssetClass::Bond { .. } => (price(ctx, date, asset)?, 100),
        AssetClass::Equity { .. } => (price(ctx, date, asset)?, 1),
        AssetClass::Commodity { .. } => return Err(RejectionCode::InvalidOperation.into()),
    };
    let rate = fx_rate(ctx, date, currency_of(record.class)?, currency)?;
    Ok(price.checked_mul(rate)?.checked_div(Ratio::whole(per))?)
}

fn price(ctx: &mut Ctx<'_, '_>, date: BusinessDate, asset: AssetId) -> Step<Ratio> {
    match ctx.read(&StateKey::Price(date, asset))? {
        Some(StateValue::Price(price)) => Ok(price.ratio()),
        None => Err(RejectionCode::PriceMissing.into()),
        Some(other) => panic!("corrupt state: price holds {other:?}"),
    }
}

/// How many `to` one `from` is worth: the published rate, or the inverse of the opposite one.
fn fx_rate(ctx: &mut Ctx<'_, '_>, date: BusinessDate, from: Currency, to: Currency) -> Step<Ratio> {
    if from == to {
        return Ok(Ratio::whole(1));
    }
    let (direct, inverse) = (
        StateKey::FxRate(date, from, to),
        StateKey::FxRate(date, to, from),
    );
    ctx.touch([direct, inverse])?;
    match (ctx.read(&direct)?, ctx.read(&inverse)?) {
        (Some(StateValue::FxRate(rate)), _) => Ok(rate.ratio()),
        (None, Some(StateValue::FxRate(rate))) => Ok(Ratio::whole(1).checked_div(rate.ratio())?),
        (None, None) => Err(RejectionCode::PriceMissing.into()),
        other => panic!("corrupt state: FX rate holds {other:?}"),
    }
}

/// A contract valued at one date.
struct Marking {
    exposure: Ratio,
    /// Whole units of each collateral asset that cover its share of the required value.
    targets: Vec<Quantity>,
    /// What those units are worth (reported, as `valuation`).
    target_value: Decimal,
    /// A margin call is due.
    call: bool,
    valuation: Valuation,
}

fn value(ctx: &mut Ctx<'_, '_>, contract: &RepoContract, date: BusinessDate) -> Step<Marking> {
    let terms = &contract.terms;
    let currency = terms.valuation_currency;
    let exposure = unit_value(ctx, terms.principal_asset, date, currency)?
        .checked_mul(Ratio::whole(terms.principal_quantity))?;
    let required = exposure.checked_mul(bps(BPS_WHOLE + terms.haircut_bps))?;
    let mut held = Ratio::whole(0);
    let mut targets = Vec::with_capacity(contract.collateral.len());
    let mut target_value = Ratio::whole(0);
    for holding in contract.collateral.iter() {
        let unit = unit_value(ctx, holding.asset, date, currency)?;
        let share = required.checked_mul(bps(holding.weight_bps as u32))?;
        let target = share.checked_div(unit)?.round(Rounding::Up);
        targets.push(target);
        target_value = target_value.checked_add(unit.checked_mul(Ratio::whole(target))?)?;
        held = held.checked_add(unit.checked_mul(Ratio::whole(holding.quantity))?)?;
    }
    let margin = exposure.checked_mul(bps(terms.threshold_bps))?;
    let differs = contract
        .collateral
        .iter()
        .zip(&targets)
        .any(|(holding, target)| holding.quantity != *target);
    let beyond = held.cmp_exact(&required.checked_add(margin)?).is_gt()
        || held.checked_add(margin)?.cmp_exact(&required).is_lt();
    let report = |value: Ratio| value.round_to_scale(2, Rounding::HalfUp);
    Ok(Marking {
        exposure,
        call: differs && beyond,
        valuation: Valuation {
            date,
            exposure: report(exposure)?,
            required: report(required)?,
            held: report(held)?,
        },
        target_value: report(target_value)?,
        targets,
    })
}

/// Record the marking and, when a call is due, settle it; if the borrower cannot deliver,
/// nothing moves, the failure is recorded and the contract is in default.
fn mark(ctx: &mut Ctx<'_, '_>, contract: &mut RepoContract, marking: Marking) -> Step<()> {
    let date = marking.valuation.date;
    contract.marked_date = date;
    record(ctx, contract, RepoEvent::Marked(marking.valuation));
    if !marking.call {
        // The collateral covers the exposure within the threshold: no longer in default.
        contract.in_default = false;
        return Ok(());
    }
    let checkpoint = ctx.checkpoint();
    let mut moves = Vec::new();
    let settled = (|| {
        for (holding, target) in contract.collateral.iter().zip(&marking.targets) {
            let (asset, held, target) = (holding.asset, holding.quantity, *target);
            if target > held {
                pledge(ctx, contract, asset, target - held)?;
            } else if target < held {
                unpledge(ctx, contract, asset, held - target, true)?;
            }
            if target != held {
                moves.push(CollateralMove {
                    asset,
                    quantity: target.abs_diff(held),
                    returned: target < held,
                });
            }
        }
        Ok(())
    })();
    match settled {
        Ok(()) => {
            for (holding, target) in contract.collateral.iter_mut().zip(marking.targets) {
                holding.quantity = target;
            }
            contract.in_default = false;
            let moves = CollateralMoves {
                date,
                moves: moves.into(),
                held: marking.target_value,
            };
            record(ctx, contract, RepoEvent::MarginCallSettled(moves));
        }
        Err(Halt::Reject(rejection)) => {
            ctx.rollback(checkpoint);
            // Default is the borrower lacking units; a frozen account or asset is recorded but
            // gives the lender no right to close out.
            contract.in_default |= rejection.code == RejectionCode::InsufficientBalance;
            let failure = Failure {
                date,
                reason: rejection.code,
            };
            record(ctx, contract, RepoEvent::MarginCallFailed(failure));
        }
        Err(missing) => return Err(missing),
    }
    Ok(())
}

pub(crate) fn substitute(ctx: &mut Ctx<'_, '_>, op: &SubstituteCollateral) -> Step<()> {
    let mut contract = contract(ctx, op.contract)?;
    require_status(&contract, RepoStatus::Open)?;
    require_party(ctx, &contract)?;
    ctx.require_signer(contract.terms.borrower)?;
    ctx.require_signer(contract.terms.lender)?;
    if op.quantity == 0 {
        return Err(RejectionCode::InvalidQuantity.into());
    }
    currency_of(ctx.asset(op.add)?.class)?;
    let index = contract
        .collateral
        .iter()
        .position(|holding| holding.asset == op.remove)
        .ok_or(RejectionCode::InvalidOperation)?;
    let taken = contract.collateral.iter().any(|h| h.asset == op.add);
    if taken || op.add == contract.terms.principal_asset {
        return Err(RejectionCode::InvalidOperation.into());
    }
    let date = latest_closed(ctx)?;
    let mut keys = contract_keys(&contract, Some(date));
    let lender = contract.terms.lender_account;
    keys.extend([
        StateKey::Price(date, op.add),
        StateKey::Balance(lender, op.add),
        StateKey::Balance(contract.terms.borrower_account, op.add),
        StateKey::Lien(lender, op.add, contract.id),
    ]);
    ctx.touch(keys)?;
    let marking = value(ctx, &contract, date)?;
    let removed = contract.collateral[index];
    let share = marking
        .exposure
        .checked_mul(bps(BPS_WHOLE + contract.terms.haircut_bps))?
        .checked_mul(bps(removed.weight_bps as u32))?;
    let offered = unit_value(ctx, op.add, date, contract.terms.valuation_currency)?
        .checked_mul(Ratio::whole(op.quantity))?;
    if offered.cmp_exact(&share).is_lt() {
        return Err(RejectionCode::CollateralInsufficient.into());
    }
    pledge(ctx, &contract, op.add, op.quantity)?;
    unpledge(ctx, &contract, removed.asset, removed.quantity, true)?;
    contract.collateral[index] = CollateralHolding {
        asset: op.add,
        weight_bps: removed.weight_bps,
        quantity: op.quantity,
    };
    let substitution = Substitution {
        removed: removed.asset,
        removed_quantity: removed.quantity,
        added: op.add,
        added_quantity: op.quantity,
    };
    record(ctx, &mut contract, RepoEvent::Substituted(substitution));
    put_contract(ctx, &contract);
    Ok(())
}

pub(crate) fn publish_prices(ctx: &mut Ctx<'_, '_>, op: &PublishPrices) -> Step<()> {
    ctx.require_submitter_role(Role::PriceOracle)?;
    let mut book = book(ctx)?;
    // Dates only move forward (a closed date is final), and never beyond the block's next UTC
    // day (closing prices of Tokyo's day are published while UTC is still on the previous one).
    let tomorrow = date_of(ctx.time_ms + MS_PER_DAY as u64);
    if !is_business_date(op.date) || op.date <= book.latest_closed || op.date > tomorrow {
        return Err(RejectionCode::InvalidOperation.into());
    }
    for entry in op.prices.iter() {
        if matches!(
            ctx.asset(entry.asset)?.class,
            AssetClass::Cash { .. } | AssetClass::Commodity { .. }
        ) {
            return Err(RejectionCode::InvalidOperation.into());
        }
        if entry.price.mantissa == 0 {
            return Err(RejectionCode::InvalidQuantity.into());
        }
        ctx.write(
            StateKey::Price(op.date, entry.asset),
            StateValue::Price(entry.price),
        );
    }
    for entry in op.rates.iter() {
        if entry.base == entry.quote {
            return Err(RejectionCode::InvalidOperation.into());
        }
        if entry.rate.mantissa == 0 {
            return Err(RejectionCode::InvalidQuantity.into());
        }
        ctx.write(
            StateKey::FxRate(op.date, entry.base, entry.quote),
            StateValue::FxRate(entry.rate),
        );
    }
    ctx.write(StateKey::PriceDay(op.date), StateValue::PriceDay(op.close));
    if op.close {
        book.latest_closed = op.date;
        // A newer date supersedes a walk still running: every contract is marked to it.
        book.marking = Some(MarkWalk {
            date: op.date,
            remaining: book.open,
        });
        put_book(ctx, book);
    }
    Ok(())
}

/// The UTC calendar date of a Unix time, as `YYYYMMDD` (the civil-from-days algorithm of
/// Howard Hinnant, exact for every date after 1970).
pub fn date_of(time_ms: u64) -> BusinessDate {
    let days = (time_ms / MS_PER_DAY as u64) as i64 + 719_468;
    let era = days / 146_097;
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year * 10_000 + month * 100 + day) as BusinessDate
}

/// The Unix time of midnight (UTC) starting `date`, the inverse of [`date_of`] (the
/// days-from-civil algorithm of Howard Hinnant).
///
/// `date` must be a calendar date from 1970-01-01 on: Unix time has no earlier millisecond in
/// a `u64`. Callers check dates they did not get from [`date_of`]; anything else is a bug.
pub fn midnight_ms(date: BusinessDate) -> u64 {
    assert!(
        date >= 19700101 && kessai_types::repo::is_business_date(date),
        "midnight_ms of {date}: not a calendar date from 1970-01-01 on"
    );
    let (day, month) = ((date % 100) as i64, (date / 100 % 100) as i64);
    let year = (date / 10_000) as i64 - i64::from(month <= 2);
    let era = year / 400;
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    (era * 146_097 + day_of_era - 719_468) as u64 * MS_PER_DAY as u64
}

/// Whether `operation` may take a contract out of the open book.
pub(crate) fn may_close(operation: &kessai_types::Operation) -> bool {
    matches!(
        operation,
        kessai_types::Operation::RepoAction(RepoAction {
            step: RepoStep::Mature | RepoStep::Terminate | RepoStep::CloseOut,
            ..
        })
    )
}

/// Name the top `closing` open slots and their contracts, which the block's `closing` contract
/// closings may move (each moves the top slot's contract into its own slot): fetched in two
/// rounds, rather than two rounds per closing one after another.
pub(crate) fn prefetch_top_slots(ctx: &mut Ctx<'_, '_>, closing: u64) -> Step<()> {
    let open = book(ctx)?.open;
    let slots = open.saturating_sub(closing)..open;
    ctx.touch(slots.clone().map(StateKey::RepoSlot))?;
    let mut ids = Vec::new();
    for slot in slots {
        if let Some(StateValue::RepoSlot(id)) = ctx.read(&StateKey::RepoSlot(slot))? {
            ids.push(StateKey::Repo(id));
        }
    }
    ctx.touch(ids)
}

/// Mark the next contracts of the walk in progress, if any. Every key the batch needs is
/// fetched in a few grouped rounds.
pub(crate) fn mark_walk(ctx: &mut Ctx<'_, '_>) -> Step<()> {
    let mut book = book(ctx)?;
    let Some(walk) = book.marking else {
        return Ok(());
    };
    let batch = walk.remaining.min(REPO_MARKS_PER_BLOCK_MAX);
    let slots = (walk.remaining - batch..walk.remaining).rev();
    ctx.touch(slots.clone().map(StateKey::RepoSlot))?;
    let mut ids = Vec::with_capacity(batch as usize);
    for slot in slots {
        match ctx.read(&StateKey::RepoSlot(slot))? {
            Some(StateValue::RepoSlot(id)) => ids.push(id),
            other => panic!("corrupt state: open slot {slot} holds {other:?}"),
        }
    }
    ctx.touch(ids.iter().map(|id| StateKey::Repo(*id)))?;
    let mut contracts = Vec::with_capacity(ids.len());
    for id in ids {
        let contract = contract(ctx, id)?;
        if contract.marked_date < walk.date {
            contracts.push(contract);
        }
    }
    ctx.touch(
        contracts
            .iter()
            .flat_map(|c| contract_keys(c, Some(walk.date))),
    )?;
    let mut complete = true;
    for original in contracts {
        // Each contract on its own overlay: what it fails to do is undone without copying the
        // batch's writes.
        ctx.flush();
        let mut contract = original.clone();
        match value(ctx, &contract, walk.date).and_then(|marking| {
            mark(ctx, &mut contract, marking)?;
            Ok(())
        }) {
            Ok(()) => {}
            Err(Halt::Missing) => {
                // Keep going, so that every contract's missing keys are fetched in one round.
                ctx.rollback(WriteSet::new());
                complete = false;
                continue;
            }
            Err(Halt::Reject(rejection)) => {
                ctx.rollback(WriteSet::new());
                contract = original;
                contract.marked_date = walk.date;
                let failure = Failure {
                    date: walk.date,
                    reason: rejection.code,
                };
                record(ctx, &mut contract, RepoEvent::MarkFailed(failure));
            }
        }
        put_contract(ctx, &contract);
    }
    if !complete {
        return Err(Halt::Missing);
    }
    book.marking = (batch < walk.remaining).then_some(MarkWalk {
        date: walk.date,
        remaining: walk.remaining - batch,
    });
    put_book(ctx, book);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{MS_PER_DAY, date_of, midnight_ms};

    #[test]
    fn unix_times_give_their_utc_dates() {
        assert_eq!(date_of(0), 19700101);
        assert_eq!(date_of(1_700_000_000_000), 20231114);
        // 2024-02-29 23:59:59.999 and the next millisecond.
        assert_eq!(date_of(1_709_251_199_999), 20240229);
        assert_eq!(date_of(1_709_251_200_000), 20240301);
        assert_eq!(date_of(4_102_444_800_000), 21000101);
    }

    #[test]
    fn midnight_is_the_inverse_of_date_of() {
        let day_ms = MS_PER_DAY as u64;
        // 1970-01-01, 2000-02-29 (a leap century), 2024-02-29, 2100-01-01 and others.
        for day in [0u64, 59, 60, 365, 10_957, 11_016, 19_782, 20_094, 47_482] {
            let date = date_of(day * day_ms);
            assert_eq!(midnight_ms(date), day * day_ms, "{date}");
            assert_eq!(date_of(day * day_ms + day_ms - 1), date, "{date}");
        }
    }

    #[test]
    #[should_panic(expected = "not a calendar date from 1970-01-01 on")]
    fn midnight_refuses_dates_before_unix_time() {
        midnight_ms(19691231);
    }

    #[test]
    #[should_panic(expected = "not a calendar date from 1970-01-01 on")]
    fn midnight_refuses_dates_that_do_not_exist() {
        midnight_ms(20230230);
    }
}
