//! Apply blocks of transactions deterministically and check the ledger's invariants.
//!
//! The state machine knows no network, clock, randomness, float or hash-map iteration order:
//! `execute(block, snapshot) -> outcomes + writes` depends only on its inputs. Business
//! workflows are native modules under `modules/`.

pub mod execute;
pub mod genesis;
pub mod invariants;
pub mod key;
pub mod memory;
mod modules;
pub mod workload;

pub use execute::{
    BlockEffects, BlockInput, SUPPLY_MAX, Snapshot, TxOutcome, WriteSet, execute, owners_of,
    read_set,
};
pub use genesis::{Genesis, GenesisError, SyntheticAccounts, genesis_base_writes, genesis_writes};
pub use key::{
    Chain, MarkWalk, Parameters, ReplayRecord, RepoBook, StateKey, StateValue, ValidatorSet,
};
pub use memory::{MemoryLedger, execute_with};
pub use modules::repo::{REPO_MARKS_PER_BLOCK_MAX, date_of, fee as repo_fee, midnight_ms};
pub use workload::Workload;
