//! Repo contracts and their events as JSON, the way the API and the event stream show them.
//!
//! Quantities are decimal strings (they exceed JSON's integers); values are decimal strings in
//! the contract's valuation currency, rounded half-up to two decimals; dates are `YYYYMMDD`.

use kessai_state::RepoBook;
use kessai_types::{
    DayCount, RepoContract, RepoEvent, RepoEventRecord,
    repo::{CollateralMoves, Failure},
};
use serde_json::{Value, json};

pub fn contract_json(contract: &RepoContract, height: u64, time_ms: u64) -> Value {
    let terms = &contract.terms;
    let accrued = match contract.status {
        kessai_types::RepoStatus::Open => kessai_state::repo_fee(contract, time_ms)
            .ok()
            .map(|fee| fee.to_string()),
        _ => None,
    };
    json!({
        "id": contract.id.to_hex(),
        "status": contract.status.name(),
        "proposer": contract.proposer.to_string(),
        "lender": {"party": terms.lender.to_string(), "account": terms.lender_account.to_string()},
        "borrower": {"party": terms.borrower.to_string(), "account": terms.borrower_account.to_string()},
        "principal": {"asset": terms.principal_asset.to_string(), "quantity": terms.principal_quantity.to_string()},
        "collateral": contract.collateral.iter().map(|holding| json!({
            "asset": holding.asset.to_string(),
            "weight_bps": holding.weight_bps,
            "quantity": holding.quantity.to_string(),
        })).collect::<Vec<_>>(),
        "valuation_currency": terms.valuation_currency.to_string(),
        "haircut_bps": terms.haircut_bps,
        "threshold_bps": terms.threshold_bps,
        "start_ms": terms.start_ms,
        "maturity_ms": terms.maturity_ms,
        "open_ended": terms.maturity_ms.is_none(),
        "rate": terms.rate.to_string(),
        "day_count": match terms.day_count {
            DayCount::Act360 => "ACT/360",
            DayCount::Act365Fixed => "ACT/365F",
        },
        "fee_asset": terms.fee_asset.to_string(),
        "offer_expiry_ms": terms.offer_expiry_ms,
        "started_ms": (contract.started_ms > 0).then_some(contract.started_ms),
        "fee_base": contract.fee_base.to_string(),
        "accrued_fee": accrued,
        "marked_date": (contract.marked_date > 0).then_some(contract.marked_date),
        "in_default": contract.in_default,
        "events": contract.events,
        "height": height,
    })
}

fn moves_json(moves: &CollateralMoves) -> Value {
    json!({
        "date": moves.date,
        "moves": moves.moves.iter().map(|m| json!({
            "asset": m.asset.to_string(),
            "quantity": m.quantity.to_string(),
            "direction": if m.returned { "TO_BORROWER" } else { "TO_LENDER" },
        })).collect::<Vec<_>>(),
        "collateral_value": moves.held.to_string(),
    })
}

fn failure_json(failure: &Failure) -> Value {
    json!({"date": failure.date, "reason": failure.reason.name()})
}

pub fn event_json(record: &RepoEventRecord) -> Value {
    let mut body = match &record.event {
        RepoEvent::Started(moves) | RepoEvent::MarginCallSettled(moves) => moves_json(moves),
        RepoEvent::StartFailed(failure)
        | RepoEvent::MarginCallFailed(failure)
        | RepoEvent::MarkFailed(failure)
        | RepoEvent::MaturityFailed(failure) => failure_json(failure),
        RepoEvent::Marked(valuation) => json!({
            "date": valuation.date,
            "exposure": valuation.exposure.to_string(),
            "required": valuation.required.to_string(),
            "collateral_value": valuation.held.to_string(),
        }),
        RepoEvent::Substituted(substitution) => json!({
            "removed": substitution.removed.to_string(),
            "removed_quantity": substitution.removed_quantity.to_string(),
            "added": substitution.added.to_string(),
            "added_quantity": substitution.added_quantity.to_string(),
        }),
        RepoEvent::Matured(fee) | RepoEvent::Terminated(fee) => json!({"fee": fee.to_string()}),
        RepoEvent::Registered
        | RepoEvent::Approved
        | RepoEvent::Rejected
        | RepoEvent::Cancelled
        | RepoEvent::ClosedOut => json!({}),
    };
    body["contract"] = json!(record.contract.to_hex());
    body["sequence"] = json!(record.sequence);
    body["event"] = json!(record.event.name());
    body["height"] = json!(record.height);
    body["time_ms"] = json!(record.time_ms);
    body
}

pub fn book_json(book: &RepoBook, height: u64) -> Value {
    json!({
        "open_contracts": book.open,
        "latest_closed_date": (book.latest_closed > 0).then_some(book.latest_closed),
        "marking": book.marking.map(|walk| json!({"date": walk.date, "contracts_remaining": walk.remaining})),
        "height": height,
    })
}
