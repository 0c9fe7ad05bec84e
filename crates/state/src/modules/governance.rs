//! Governance and identity: parties, roles (M-of-N governors), KYC attestations, accounts.

use crate::{
    execute::{Ctx, Step},
    key::{StateKey, StateValue, ValidatorSet},
};
use kessai_types::{
    Account, AttestKyc, KycAttestation, OpenAccount, Party, RegisterParty, RejectionCode, Role,
    RoleChange, SetValidators,
};

pub(crate) fn register_party(ctx: &mut Ctx<'_, '_>, op: &RegisterParty) -> Step<()> {
    ctx.require_governance()?;
    if !op.roles.is_valid() {
        return Err(RejectionCode::InvalidOperation.into());
    }
    if ctx.exists(StateKey::Party(op.party))? {
        return Err(RejectionCode::AlreadyExists.into());
    }
    if op.roles.contains(Role::NetworkGovernor) {
        ctx.parameters.governor_count += 1;
        ctx.write(StateKey::Parameters, StateValue::Parameters(ctx.parameters));
    }
    let party = Party {
        id: op.party,
        public_key: op.public_key.clone(),
        roles: op.roles,
        kyc: None,
    };
    ctx.write(StateKey::Party(op.party), StateValue::Party(party));
    Ok(())
}

pub(crate) fn grant_role(ctx: &mut Ctx<'_, '_>, op: &RoleChange) -> Step<()> {
    ctx.require_governance()?;
    let mut party = ctx.party(op.party)?;
    if party.roles.contains(op.role) {
        return Err(RejectionCode::InvalidOperation.into());
    }
    party.roles = party.roles.with(op.role);
    if op.role == Role::NetworkGovernor {
        ctx.parameters.governor_count += 1;
        ctx.write(StateKey::Parameters, StateValue::Parameters(ctx.parameters));
    }
    ctx.write(StateKey::Party(op.party), StateValue::Party(party));
    Ok(())
}

pub(crate) fn revoke_role(ctx: &mut Ctx<'_, '_>, op: &RoleChange) -> Step<()> {
    ctx.require_governance()?;
    let mut party = ctx.party(op.party)?;
    if !party.roles.contains(op.role) {
        return Err(RejectionCode::InvalidOperation.into());
    }
    party.roles = party.roles.without(op.role);
    if op.role == Role::NetworkGovernor {
        // Never leave fewer governors than the threshold: governance would be locked for good.
        if ctx.parameters.governor_count - 1 < ctx.parameters.governance_threshold {
            return Err(RejectionCode::InvalidOperation.into());
        }
        ctx.parameters.governor_count -= 1;
        ctx.write(StateKey::Parameters, StateValue::Parameters(ctx.parameters));
    }
    ctx.write(StateKey::Party(op.party), StateValue::Party(party));
    Ok(())
}

/// Name the validators of the next epoch. Several changes within one epoch: the last one counts.
pub(crate) fn set_validators(ctx: &mut Ctx<'_, '_>, op: &SetValidators) -> Step<()> {
    ctx.require_governance()?;
    let mut validators = op.validators.clone();
    validators.sort();
    let distinct = validators.windows(2).all(|pair| pair[0] != pair[1]);
    if validators.is_empty() || !distinct {
        return Err(RejectionCode::InvalidOperation.into());
    }
    let next = ctx.parameters.epoch_of(ctx.height) + 1;
    ctx.write(
        StateKey::Validators(next),
        StateValue::Validators(ValidatorSet(validators)),
    );
    Ok(())
}

pub(crate) fn attest_kyc(ctx: &mut Ctx<'_, '_>, op: &AttestKyc) -> Step<()> {
    ctx.require_submitter_role(Role::AccountOpeningAgent)?;
    let mut party = ctx.party(op.party)?;
    party.kyc = Some(KycAttestation {
        record_hash: op.record_hash,
        agent: ctx.submitter,
        attested_at_ms: ctx.time_ms,
    });
    ctx.write(StateKey::Party(op.party), StateValue::Party(party));
    Ok(())
}

/// The owner opens its own account, or an account-opening agent opens it on the owner's behalf.
pub(crate) fn open_account(ctx: &mut Ctx<'_, '_>, op: &OpenAccount) -> Step<()> {
    ctx.party(op.owner)?;
    if ctx.submitter != op.owner {
        ctx.require_submitter_role(Role::AccountOpeningAgent)?;
    }
    if ctx.exists(StateKey::Account(op.account))? {
        return Err(RejectionCode::AlreadyExists.into());
    }
    let account = Account {
        id: op.account,
        owner: op.owner,
        frozen: false,
    };
    ctx.write(StateKey::Account(op.account), StateValue::Account(account));
    Ok(())
}
