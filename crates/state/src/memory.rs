//! An in-memory ledger: the executor driven over a map. The reference for tests and the
//! execution benchmark; storage drives the same executor over QMDB.

use crate::{
    execute::{BlockEffects, BlockInput, Snapshot, TxOutcome, execute, read_set},
    genesis::{Genesis, GenesisError, genesis_writes},
    key::{ReplayRecord, StateKey, StateValue},
};
use kessai_types::{AccountId, Asset, AssetId, Balance, PartyId, UniqueId, VerifiedTransaction};
use std::collections::HashMap;

/// A whole ledger state held in memory.
pub struct MemoryLedger {
    records: HashMap<StateKey, StateValue>,
    height: u64,
}

/// Run the executor to completion over `fetch`, which returns the value of each key it is given.
pub fn execute_with(
    block: &BlockInput<'_>,
    mut fetch: impl FnMut(&StateKey) -> Option<StateValue>,
) -> BlockEffects {
    let mut snapshot = Snapshot::default();
    loop {
        let keys = read_set(block, &snapshot);
        if keys.is_empty() {
            break;
        }
        for key in keys {
            snapshot.insert(key, fetch(&key));
        }
    }
    loop {
        match execute(block, &snapshot) {
            Ok(effects) => return effects,
            Err(missing) => {
                for key in missing {
                    snapshot.insert(key, fetch(&key));
                }
            }
        }
    }
}

impl MemoryLedger {
    pub fn new(genesis: &Genesis) -> Result<Self, GenesisError> {
        let records = genesis_writes(genesis)?
            .into_iter()
            .map(|(key, value)| (key, value.expect("genesis only inserts")))
            .collect();
        Ok(MemoryLedger { records, height: 0 })
    }

    pub fn height(&self) -> u64 {
        self.height
    }

    /// Apply the next block and return its outcomes.
    pub fn apply(&mut self, time_ms: u64, transactions: &[VerifiedTransaction]) -> Vec<TxOutcome> {
        let block = BlockInput {
            height: self.height + 1,
            time_ms,
            transactions,
        };
        let effects = execute_with(&block, |key| self.records.get(key).cloned());
        for (key, value) in effects.writes {
            match value {
                Some(value) => self.records.insert(key, value),
                None => self.records.remove(&key),
            };
        }
        self.height += 1;
        effects.outcomes
    }

    pub fn get(&self, key: &StateKey) -> Option<&StateValue> {
        self.records.get(key)
    }

    pub fn balance(&self, account: &str, asset: &str) -> Balance {
        let key = StateKey::Balance(
            AccountId::new(account).unwrap(),
            AssetId::new(asset).unwrap(),
        );
        match self.records.get(&key) {
            Some(StateValue::Balance(balance)) => *balance,
            _ => Balance::default(),
        }
    }

    pub fn asset(&self, asset: &str) -> Option<Asset> {
        match self
            .records
            .get(&StateKey::Asset(AssetId::new(asset).unwrap()))
        {
            Some(StateValue::Asset(asset)) => Some(*asset),
            _ => None,
        }
    }

    pub fn replay_record(&self, submitter: PartyId, unique_id: UniqueId) -> Option<ReplayRecord> {
        match self.records.get(&StateKey::Replay(submitter, unique_id)) {
            Some(StateValue::Replay(record)) => Some(*record),
            _ => None,
        }
    }

    /// How many records of the kind `matches` selects.
    pub fn count(&self, matches: impl Fn(&StateKey) -> bool) -> usize {
        self.records.keys().filter(|key| matches(key)).count()
    }

    /// Check every invariant over the whole state.
    pub fn audit(&self) {
        crate::invariants::check_all(self.records.iter());
    }
}
