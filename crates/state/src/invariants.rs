//! The ledger's invariants, checked after every block (incrementally) and on demand (in full).
//!
//! 1. Each asset's supply equals the sum of its balances (available plus encumbered).
//! 2. No balance is negative (quantities are unsigned; arithmetic is checked).
//! 3. Encumbered units move only through liens: each balance's encumbered units change exactly
//!    as much as its liens do.
//! 4. (Full audit) A repo contract's collateral is exactly its liens: an open contract holds a
//!    lien of each collateral asset's quantity in the lender's account, a closed one none; the
//!    open contracts fill the book's slots `0..open`, each knowing its slot; a contract's events
//!    are numbered `0..events` without a gap; the mark walk stays within the open slots.
//!
//! A violation is a bug in the state machine, never a user error: it panics.

use crate::key::RepoBook;
use crate::{
    execute::{Snapshot, WriteSet},
    key::{StateKey, StateValue},
};
use kessai_types::{AccountId, AssetId, Balance, RepoStatus, TxId};
use std::collections::{BTreeMap, BTreeSet};

fn balance_of(value: Option<&Option<StateValue>>) -> Balance {
    match value {
        Some(Some(StateValue::Balance(balance))) => *balance,
        Some(None) | None => Balance::default(),
        Some(Some(other)) => panic!("corrupt state: balance key holds {other:?}"),
    }
}

/// Check that the writes of one block preserve every invariant relative to the snapshot it read.
pub fn check_block(snapshot: &Snapshot, writes: &WriteSet) {
    let mut balance_delta: BTreeMap<AssetId, i128> = BTreeMap::new();
    let mut supply_delta: BTreeMap<AssetId, i128> = BTreeMap::new();
    let mut encumbered_delta: BTreeMap<(AccountId, AssetId), i128> = BTreeMap::new();
    let mut lien_delta: BTreeMap<(AccountId, AssetId), i128> = BTreeMap::new();
    for (key, new) in writes {
        match key {
            StateKey::Balance(account, asset) => {
                assert!(
                    snapshot.contains(key),
                    "balance {key:?} written without being read"
                );
                let old = balance_of(snapshot.get(key));
                let new = balance_of(Some(new));
                let total =
                    |balance: Balance| balance.total().expect("balance total overflows") as i128;
                *balance_delta.entry(*asset).or_default() += total(new) - total(old);
                *encumbered_delta.entry((*account, *asset)).or_default() +=
                    new.encumbered as i128 - old.encumbered as i128;
            }
            StateKey::Asset(asset) => {
                let supply = |value: Option<&Option<StateValue>>| match value {
                    Some(Some(StateValue::Asset(asset))) => asset.supply as i128,
                    _ => 0,
                };
                *supply_delta.entry(*asset).or_default() +=
                    supply(Some(new)) - supply(snapshot.get(key));
            }
            StateKey::Lien(account, asset, _) => {
                let quantity = |value: Option<&Option<StateValue>>| match value {
                    Some(Some(StateValue::Lien(lien))) => lien.quantity as i128,
                    _ => 0,
                };
                *lien_delta.entry((*account, *asset)).or_default() +=
                    quantity(Some(new)) - quantity(snapshot.get(key));
            }
            _ => {}
        }
    }
    for asset in balance_delta.keys().chain(supply_delta.keys()) {
        let balances = balance_delta.get(asset).copied().unwrap_or(0);
        let supply = supply_delta.get(asset).copied().unwrap_or(0);
        assert_eq!(
            balances, supply,
            "invariant broken: balances of {asset} changed by {balances}, supply by {supply}"
        );
    }
    for pair in encumbered_delta.keys().chain(lien_delta.keys()) {
        let encumbered = encumbered_delta.get(pair).copied().unwrap_or(0);
        let liens = lien_delta.get(pair).copied().unwrap_or(0);
        assert_eq!(
            encumbered, liens,
            "invariant broken: encumbered units of {pair:?} changed by {encumbered}, liens by {liens}"
        );
    }
}

/// Check every invariant over a whole state, given as its records in any order. Without
/// `event_history` (a ledger that hands its repo events out rather than keep them), contracts'
/// event counts are not checked against their events.
pub fn check_all<'a>(
    records: impl IntoIterator<Item = (&'a StateKey, &'a StateValue)>,
    event_history: bool,
) {
    let mut supply: BTreeMap<AssetId, u128> = BTreeMap::new();
    let mut balances: BTreeMap<AssetId, u128> = BTreeMap::new();
    let mut encumbered: BTreeMap<(AccountId, AssetId), u128> = BTreeMap::new();
    let mut liens: BTreeMap<(AccountId, AssetId), u128> = BTreeMap::new();
    let mut contract_liens: BTreeMap<(AccountId, AssetId, TxId), u128> = BTreeMap::new();
    let mut collateral: BTreeMap<(AccountId, AssetId, TxId), u128> = BTreeMap::new();
    let mut slots: BTreeMap<u64, TxId> = BTreeMap::new();
    let mut open: BTreeMap<u64, TxId> = BTreeMap::new();
    let mut book = RepoBook::default();
    let mut repo_ids = Vec::new();
    let mut events_recorded: BTreeMap<TxId, (u64, u64)> = BTreeMap::new();
    let mut events_held: BTreeMap<TxId, (u64, u64)> = BTreeMap::new();
    for (key, value) in records {
        match (key, value) {
            (StateKey::Repo(id), StateValue::Repo(contract)) => {
                repo_ids.push(*id);
                let events = contract.events as u64;
                events_recorded.insert(*id, (events, events));
                if contract.status == RepoStatus::Open {
                    open.insert(contract.slot, *id);
                    for holding in contract.collateral.iter().filter(|h| h.quantity > 0) {
                        let key = (contract.terms.lender_account, holding.asset, *id);
                        collateral.insert(key, holding.quantity);
                    }
                }
            }
            (StateKey::RepoSlot(slot), StateValue::RepoSlot(id)) => {
                slots.insert(*slot, *id);
            }
            (StateKey::RepoBook, StateValue::RepoBook(record)) => book = *record,
            (StateKey::RepoEvent(id, sequence), StateValue::RepoEvent(_)) => {
                // Distinct sequences, as many as the largest plus one: numbered without a gap.
                let (count, end) = events_held.entry(*id).or_default();
                *count += 1;
                *end = (*end).max(*sequence as u64 + 1);
            }
            (StateKey::Asset(asset), StateValue::Asset(record)) => {
                supply.insert(*asset, record.supply);
            }
            (StateKey::Balance(account, asset), StateValue::Balance(balance)) => {
                *balances.entry(*asset).or_default() +=
                    balance.total().expect("balance total overflows");
                *encumbered.entry((*account, *asset)).or_default() += balance.encumbered;
            }
            (StateKey::Lien(account, asset, lien_id), StateValue::Lien(lien)) => {
                *liens.entry((*account, *asset)).or_default() += lien.quantity;
                contract_liens.insert((*account, *asset, *lien_id), lien.quantity);
            }
            _ => {}
        }
    }
    for (asset, total) in &balances {
        assert_eq!(
            supply.get(asset),
            Some(total),
            "invariant broken: supply of {asset} is not the sum of its balances"
        );
    }
    for (asset, total) in &supply {
        assert_eq!(
            *total,
            balances.get(asset).copied().unwrap_or(0),
            "invariant broken: supply of {asset}"
        );
    }
    encumbered.retain(|_, units| *units > 0);
    assert_eq!(
        encumbered, liens,
        "invariant broken: encumbered units differ from liens"
    );
    let contracts: BTreeSet<TxId> = repo_ids.into_iter().collect();
    contract_liens.retain(|(_, _, id), _| contracts.contains(id));
    assert_eq!(
        contract_liens, collateral,
        "invariant broken: repo collateral differs from its liens"
    );
    assert_eq!(slots, open, "invariant broken: open repo slots");
    events_recorded.retain(|_, (count, _)| *count > 0);
    if event_history {
        assert_eq!(
            events_recorded, events_held,
            "invariant broken: a contract's event count differs from its events"
        );
    }
    if let Some(walk) = book.marking {
        assert!(
            walk.remaining <= book.open,
            "invariant broken: the mark walk"
        );
    }
    assert_eq!(
        (0..book.open).collect::<Vec<_>>(),
        slots.keys().copied().collect::<Vec<_>>(),
        "invariant broken: the repo book's open count"
    );
}
