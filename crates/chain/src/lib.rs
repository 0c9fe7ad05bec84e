//! The validator's consensus adapter: the only crate that speaks Commonware consensus and p2p.
//!
//! - [`block`]: the block and its canonical encoding;
//! - [`mempool`]: bounded admission of signed transactions, checked once per node;
//! - [`app`]: what a validator proposes and what it votes for;
//! - [`store`]: the finalized ledger, block records and state roots, shared with the API;
//! - [`engine`]: Simplex + marshal + gossip wired over a p2p network;
//! - [`epochs`]: one Simplex engine per epoch, each run by the validators the ledger names.

pub mod app;
pub mod block;
pub mod engine;
pub mod epochs;
pub mod mempool;
pub mod net;
pub mod store;

pub use app::{BlockRules, Scheme};
pub use block::{BLOCK_BYTES_MAX, BLOCK_TRANSACTIONS_MAX, Block};
pub use commonware_cryptography::ed25519::{PrivateKey as ValidatorKey, PublicKey as ValidatorId};
pub use engine::{Channels, Node, Submitter, Timeouts, ValidatorConfig, start};
pub use mempool::{AdmissionError, ChainView, Mempool, MempoolLimits};
pub use net::{Context, NetworkConfig, metrics, run, start_networked};
pub use store::{Applied, BlockRecord, EpochValidators, Store, TxLocation};

/// The validator set in consensus order.
pub fn validator_set(
    keys: impl IntoIterator<Item = ValidatorId>,
) -> commonware_utils::ordered::Set<ValidatorId> {
    commonware_utils::ordered::Set::from_iter_dedup(keys)
}
