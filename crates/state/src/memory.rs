//! An in-memory ledger: the executor driven over a map. The reference for tests and the
//! execution benchmark; storage drives the same executor over QMDB.

use crate::{
    execute::{BlockEffects, BlockInput, Snapshot, TxOutcome, execute, owners_of, read_set},
    genesis::{Genesis, GenesisError, genesis_writes},
    key::{ReplayRecord, StateKey, StateValue},
};
use kessai_types::{
    AccountId, Asset, AssetId, Balance, PartyId, RepoEventRecord, UniqueId, VerifiedTransaction,
};
use std::collections::HashMap;

/// A whole ledger state held in memory.
pub struct MemoryLedger {
    records: HashMap<StateKey, StateValue>,
    height: u64,
    last_rounds: usize,
    /// Repo events are kept as records (as on a validator), or only handed out by
    /// [`MemoryLedger::apply_with_events`].
    event_history: bool,
}

/// Run the executor to completion over `fetch`, which returns the value of each key it is given.
/// Returns the effects and how many times the block was executed (1 unless expiry pruning needed
/// keys no one could predict).
pub fn execute_with(
    block: &BlockInput<'_>,
    mut fetch: impl FnMut(&StateKey) -> Option<StateValue>,
) -> (BlockEffects, usize) {
    let mut keys = read_set(block, &Snapshot::default());
    let mut snapshot = Snapshot::with_capacity(keys.len() * 2);
    for key in &keys {
        snapshot.insert(*key, fetch(key));
    }
    keys = owners_of(&keys, &snapshot);
    for rounds in 1.. {
        for key in keys {
            snapshot.insert(key, fetch(&key));
        }
        match execute(block, &snapshot) {
            Ok(effects) => return (effects, rounds),
            Err(missing) => keys = missing,
        }
    }
    unreachable!("the loop returns")
}

impl MemoryLedger {
    pub fn new(genesis: &Genesis) -> Result<Self, GenesisError> {
        let records = genesis_writes(genesis)?
            .into_iter()
            .map(|(key, value)| (key, value.expect("genesis only inserts")))
            .collect();
        Ok(MemoryLedger {
            records,
            height: 0,
            last_rounds: 0,
            event_history: true,
        })
    }

    /// A ledger that hands its repo events out without keeping them: a long simulation's event
    /// history would otherwise grow with every marking. Nothing in the state machine reads past
    /// events, so outcomes are unchanged; the audit then skips the event numbering.
    pub fn without_event_history(mut self) -> Self {
        self.event_history = false;
        self
    }

    pub fn height(&self) -> u64 {
        self.height
    }

    /// How many times the last block was executed before all its reads were fetched.
    pub fn last_rounds(&self) -> usize {
        self.last_rounds
    }

    /// Apply the next block and return its outcomes.
    pub fn apply(&mut self, time_ms: u64, transactions: &[VerifiedTransaction]) -> Vec<TxOutcome> {
        self.apply_with_events(time_ms, transactions).0
    }

    /// Apply the next block; return its outcomes and the repo contract events it recorded (by
    /// contract and sequence, as the node journals them).
    pub fn apply_with_events(
        &mut self,
        time_ms: u64,
        transactions: &[VerifiedTransaction],
    ) -> (Vec<TxOutcome>, Vec<RepoEventRecord>) {
        let block = BlockInput {
            height: self.height + 1,
            time_ms,
            transactions,
        };
        let (effects, rounds) = execute_with(&block, |key| self.records.get(key).cloned());
        self.last_rounds = rounds;
        let mut events = Vec::new();
        for (key, value) in effects.writes {
            match value {
                Some(StateValue::RepoEvent(record)) if !self.event_history => {
                    events.push(record);
                    None
                }
                Some(value) => {
                    if let StateValue::RepoEvent(record) = &value {
                        events.push(record.clone());
                    }
                    self.records.insert(key, value)
                }
                None => self.records.remove(&key),
            };
        }
        self.height += 1;
        (effects.outcomes, events)
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
        crate::invariants::check_all(self.records.iter(), self.event_history);
    }
}
