//! Business workflows as native modules of the state machine, one file per workflow.

mod governance;
pub(crate) mod repo;
mod token;

use crate::execute::{Ctx, Step};
use kessai_types::Operation;

/// Apply one operation in the transaction's context.
pub(crate) fn apply(ctx: &mut Ctx<'_, '_>, operation: &Operation) -> Step<()> {
    match operation {
        Operation::RegisterParty(op) => governance::register_party(ctx, op),
        Operation::GrantRole(op) => governance::grant_role(ctx, op),
        Operation::RevokeRole(op) => governance::revoke_role(ctx, op),
        Operation::AttestKyc(op) => governance::attest_kyc(ctx, op),
        Operation::OpenAccount(op) => governance::open_account(ctx, op),
        Operation::DefineAsset(op) => token::define_asset(ctx, op),
        Operation::Issue(op) => token::issue(ctx, op),
        Operation::Redeem(op) => token::redeem(ctx, op),
        Operation::Transfer(leg) => token::settle_legs(ctx, std::slice::from_ref(leg)),
        Operation::Bundle(bundle) => token::settle_bundle(ctx, &bundle.legs),
        Operation::Freeze(target) => token::set_frozen(ctx, *target, true),
        Operation::Unfreeze(target) => token::set_frozen(ctx, *target, false),
        Operation::Encumber(op) => token::encumber(ctx, op),
        Operation::Release(op) => token::release(ctx, op),
        Operation::SetValidators(op) => governance::set_validators(ctx, op),
        Operation::RegisterRepo(terms) => repo::register(ctx, terms),
        Operation::RepoAction(op) => repo::act(ctx, op),
        Operation::SubstituteCollateral(op) => repo::substitute(ctx, op),
        Operation::PublishPrices(op) => repo::publish_prices(ctx, op),
    }
}
