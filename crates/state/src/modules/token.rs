//! Tokens: define, issue, redeem, transfer and settle bundles atomically, freeze, encumber, release.

use crate::{
    execute::{Ctx, SUPPLY_MAX, Step},
    key::{StateKey, StateValue},
};
use kessai_types::{
    Account, AccountId, Asset, AssetId, DefineAsset, Encumber, FreezeTarget, Leg, Lien, Quantity,
    Rejection, RejectionCode, Release, Role, SupplyChange, TxId,
};

pub(crate) fn define_asset(ctx: &mut Ctx<'_, '_>, op: &DefineAsset) -> Step<()> {
    ctx.require_submitter_role(Role::TokenAdministrator)?;
    if ctx.exists(StateKey::Asset(op.asset))? {
        return Err(RejectionCode::AlreadyExists.into());
    }
    let asset = Asset {
        id: op.asset,
        class: op.class,
        administrator: ctx.submitter,
        kyc_required: op.kyc_required,
        frozen: false,
        supply: 0,
    };
    ctx.write(StateKey::Asset(op.asset), StateValue::Asset(asset));
    Ok(())
}

/// The asset's administrator, still holding the token-administrator role, signed.
fn administered_asset(ctx: &mut Ctx<'_, '_>, asset: kessai_types::AssetId) -> Step<Asset> {
    let asset = ctx.asset(asset)?;
    ctx.require_signer(asset.administrator)?;
    if !ctx
        .party(asset.administrator)?
        .roles
        .contains(Role::TokenAdministrator)
    {
        return Err(RejectionCode::NotAuthorized.into());
    }
    Ok(asset)
}

/// The account may receive the asset: not frozen, and its owner attested if the asset requires it.
pub(crate) fn check_receiver(ctx: &mut Ctx<'_, '_>, account: &Account, asset: &Asset) -> Step<()> {
    if account.frozen {
        return Err(RejectionCode::AccountFrozen.into());
    }
    if asset.kyc_required && ctx.party(account.owner)?.kyc.is_none() {
        return Err(RejectionCode::KycRequired.into());
    }
    Ok(())
}

/// What issuing and redeeming both check: a positive quantity, the administrator's signature, an
/// asset that is not frozen, and a known account.
fn supply_change(ctx: &mut Ctx<'_, '_>, op: &SupplyChange) -> Step<(Asset, Account)> {
    if op.quantity == 0 {
        return Err(RejectionCode::InvalidQuantity.into());
    }
    let asset = administered_asset(ctx, op.asset)?;
    if asset.frozen {
        return Err(RejectionCode::AssetFrozen.into());
    }
    Ok((asset, ctx.account(op.account)?))
}

pub(crate) fn issue(ctx: &mut Ctx<'_, '_>, op: &SupplyChange) -> Step<()> {
    let (mut asset, account) = supply_change(ctx, op)?;
    check_receiver(ctx, &account, &asset)?;
    asset.supply = asset
        .supply
        .checked_add(op.quantity)
        .filter(|supply| *supply <= SUPPLY_MAX)
        .ok_or(RejectionCode::Overflow)?;
    let mut balance = ctx.balance(op.account, op.asset)?;
    balance.available += op.quantity;
    ctx.put_balance(op.account, op.asset, balance);
    ctx.write(StateKey::Asset(op.asset), StateValue::Asset(asset));
    Ok(())
}

/// Redemption moves value out of the account, so its owner signs as well as the administrator.
pub(crate) fn redeem(ctx: &mut Ctx<'_, '_>, op: &SupplyChange) -> Step<()> {
    let (mut asset, account) = supply_change(ctx, op)?;
    ctx.require_signer(account.owner)?;
    if account.frozen {
        return Err(RejectionCode::AccountFrozen.into());
    }
    let mut balance = ctx.balance(op.account, op.asset)?;
    balance.available = balance
        .available
        .checked_sub(op.quantity)
        .ok_or(RejectionCode::InsufficientBalance)?;
    asset.supply -= op.quantity;
    ctx.put_balance(op.account, op.asset, balance);
    ctx.write(StateKey::Asset(op.asset), StateValue::Asset(asset));
    Ok(())
}

pub(crate) fn settle_bundle(ctx: &mut Ctx<'_, '_>, legs: &[Leg]) -> Step<()> {
    if legs.is_empty() {
        return Err(RejectionCode::InvalidOperation.into());
    }
    if legs.len() > ctx.parameters.bundle_legs_max as usize {
        return Err(RejectionCode::LimitExceeded.into());
    }
    settle_legs(ctx, legs)
}

/// Settle legs in order on the transaction's own view: all of them, or (on the first failing
/// leg, whose index the rejection names) none.
pub(crate) fn settle_legs(ctx: &mut Ctx<'_, '_>, legs: &[Leg]) -> Step<()> {
    for (index, leg) in legs.iter().enumerate() {
        settle_leg(ctx, leg).map_err(|halt| match halt {
            crate::execute::Halt::Reject(rejection) if legs.len() > 1 => {
                crate::execute::Halt::Reject(Rejection {
                    code: rejection.code,
                    leg: Some(index as u16),
                })
            }
            other => other,
        })?;
    }
    Ok(())
}

fn settle_leg(ctx: &mut Ctx<'_, '_>, leg: &Leg) -> Step<()> {
    if leg.quantity == 0 || leg.source == leg.target {
        return Err(RejectionCode::InvalidQuantity.into());
    }
    let source = ctx.account(leg.source)?;
    let target = ctx.account(leg.target)?;
    ctx.require_signer(source.owner)?;
    let asset = ctx.asset(leg.asset)?;
    if asset.frozen {
        return Err(RejectionCode::AssetFrozen.into());
    }
    if source.frozen {
        return Err(RejectionCode::AccountFrozen.into());
    }
    check_receiver(ctx, &target, &asset)?;
    debit(ctx, leg.source, leg.asset, leg.quantity)?;
    credit(ctx, leg.target, leg.asset, leg.quantity)
}

/// Take available units out of a balance (encumbered units stay where they are). No
/// authorization or freeze check: the caller's.
pub(crate) fn debit(
    ctx: &mut Ctx<'_, '_>,
    account: AccountId,
    asset: AssetId,
    quantity: Quantity,
) -> Step<()> {
    let mut balance = ctx.balance(account, asset)?;
    balance.available = balance
        .available
        .checked_sub(quantity)
        .ok_or(RejectionCode::InsufficientBalance)?;
    ctx.put_balance(account, asset, balance);
    Ok(())
}

/// Add available units to a balance. No receiver check: the caller's.
pub(crate) fn credit(
    ctx: &mut Ctx<'_, '_>,
    account: AccountId,
    asset: AssetId,
    quantity: Quantity,
) -> Step<()> {
    let mut balance = ctx.balance(account, asset)?;
    // Cannot overflow: the credited units come out of a supply bounded by SUPPLY_MAX.
    balance.available += quantity;
    ctx.put_balance(account, asset, balance);
    Ok(())
}

/// Add units to a balance's encumbered units under a lien (created at its first units).
pub(crate) fn add_to_lien(
    ctx: &mut Ctx<'_, '_>,
    account: AccountId,
    asset: AssetId,
    id: TxId,
    holder: Lien,
) -> Step<()> {
    let key = StateKey::Lien(account, asset, id);
    let held = match ctx.read(&key)? {
        Some(StateValue::Lien(lien)) => lien.quantity,
        _ => 0,
    };
    let mut balance = ctx.balance(account, asset)?;
    balance.encumbered += holder.quantity;
    ctx.put_balance(account, asset, balance);
    let lien = Lien {
        quantity: held + holder.quantity,
        ..holder
    };
    ctx.write(key, StateValue::Lien(lien));
    Ok(())
}

/// Move units of a lien back to the balance's available units (the lien goes at zero).
pub(crate) fn release_from_lien(
    ctx: &mut Ctx<'_, '_>,
    account: AccountId,
    asset: AssetId,
    id: TxId,
    quantity: Quantity,
) -> Step<()> {
    let key = StateKey::Lien(account, asset, id);
    let mut lien = ctx.lien(account, asset, id)?;
    lien.quantity = lien
        .quantity
        .checked_sub(quantity)
        .ok_or(RejectionCode::InsufficientBalance)?;
    if lien.quantity == 0 {
        ctx.delete(key);
    } else {
        ctx.write(key, StateValue::Lien(lien));
    }
    let mut balance = ctx.balance(account, asset)?;
    balance.encumbered = balance
        .encumbered
        .checked_sub(quantity)
        .expect("a lien never exceeds its balance's encumbered units");
    balance.available += quantity;
    ctx.put_balance(account, asset, balance);
    Ok(())
}

/// Assets are frozen by their administrator; accounts by a regulator or a governor.
pub(crate) fn set_frozen(ctx: &mut Ctx<'_, '_>, target: FreezeTarget, frozen: bool) -> Step<()> {
    match target {
        FreezeTarget::Asset(asset) => {
            let mut asset = administered_asset(ctx, asset)?;
            if asset.frozen == frozen {
                return Err(RejectionCode::InvalidOperation.into());
            }
            asset.frozen = frozen;
            ctx.write(StateKey::Asset(asset.id), StateValue::Asset(asset));
        }
        FreezeTarget::Account(account) => {
            let submitter = ctx.party(ctx.submitter)?;
            if !submitter.roles.contains(Role::Regulator)
                && !submitter.roles.contains(Role::NetworkGovernor)
            {
                return Err(RejectionCode::NotAuthorized.into());
            }
            let mut account = ctx.account(account)?;
            if account.frozen == frozen {
                return Err(RejectionCode::InvalidOperation.into());
            }
            account.frozen = frozen;
            ctx.write(StateKey::Account(account.id), StateValue::Account(account));
        }
    }
    Ok(())
}

/// The owner encumbers available units in favour of a beneficiary; the lien's id is this
/// transaction's id.
pub(crate) fn encumber(ctx: &mut Ctx<'_, '_>, op: &Encumber) -> Step<()> {
    if op.quantity == 0 {
        return Err(RejectionCode::InvalidQuantity.into());
    }
    let account = ctx.account(op.account)?;
    ctx.require_signer(account.owner)?;
    if account.frozen {
        return Err(RejectionCode::AccountFrozen.into());
    }
    if ctx.asset(op.asset)?.frozen {
        return Err(RejectionCode::AssetFrozen.into());
    }
    ctx.party(op.beneficiary)?;
    debit(ctx, op.account, op.asset, op.quantity)?;
    let lien = Lien {
        beneficiary: op.beneficiary,
        quantity: op.quantity,
        by_contract: false,
    };
    add_to_lien(ctx, op.account, op.asset, ctx.tx_id, lien)
}

/// The beneficiary releases some or all of a lien back to the owner's available units.
pub(crate) fn release(ctx: &mut Ctx<'_, '_>, op: &Release) -> Step<()> {
    if op.quantity == 0 {
        return Err(RejectionCode::InvalidQuantity.into());
    }
    let lien = ctx.lien(op.account, op.asset, op.lien)?;
    // Collateral of a repo contract moves only by the contract's steps.
    if lien.by_contract {
        return Err(RejectionCode::NotAuthorized.into());
    }
    ctx.require_signer(lien.beneficiary)?;
    release_from_lien(ctx, op.account, op.asset, op.lien, op.quantity)
}
