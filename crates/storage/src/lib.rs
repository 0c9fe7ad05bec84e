//! Persist the ledger state in an authenticated database and prove balances against its root.
//!
//! The state lives in a Commonware QMDB ("current" variant): an append-only log of key/value
//! operations under a Merkle structure that also authenticates which operations are current.
//! That gives one state root per block, a proof that an account holds a balance *now*, and crash
//! safety: a reopened database is at its last complete commit. Each commit carries the height and
//! time of its block, so after a crash the ledger knows exactly which block it holds.

use commonware_codec::{Decode, Encode};
use commonware_cryptography::{Sha256, sha256::Digest};
use commonware_parallel::Sequential;
use commonware_runtime::{
    Spawner,
    buffer::paged::{CacheRef, page_size},
};
use commonware_storage::{
    merkle::full::Config as MerkleConfig,
    mmr,
    qmdb::{
        current::{
            VariableConfig, unordered::proof::constant::KeyValueProof, unordered::variable::Db,
        },
        floor::Proportional,
    },
    translator::EightCap,
};
use commonware_utils::{NZU64, NZUsize};
use kessai_state::{
    BlockInput, Chain, Genesis, GenesisError, StateKey, StateValue, TxOutcome, WriteSet,
};
use kessai_types::{Hash32, VerifiedTransaction};
use std::num::NonZeroUsize;

/// Synthetic genesis accounts written per commit: bounds a genesis's memory, whatever its size.
const GENESIS_ACCOUNTS_PER_COMMIT: u64 = 50_000;

/// Operations per section of the operation log: the smallest unit pruning can remove.
const LOG_SECTION_OPERATIONS: u64 = 1 << 16;

/// Bytes per bitmap chunk of the "current" database (a power of two).
const CHUNK_BYTES: usize = 32;

/// The concrete database: SHA-256 keys (of the typed state key), encoded records as values.
type StateDb<E> = Db<mmr::Family, E, Digest, Vec<u8>, Sha256, EightCap, CHUNK_BYTES, Sequential>;

/// A proof that a key holds a value under a state root.
pub type StateProof = KeyValueProof<mmr::Family, Digest, CHUNK_BYTES>;

/// Where and how the state is stored.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// Prefix of every storage partition (directory) of this ledger.
    pub partition_prefix: String,
    /// Pages of 4 KiB kept in the read cache (default 256 MiB). Reads that miss it go to disk
    /// directly, bypassing the operating system's cache: size it to the working set.
    pub page_cache_pages: NonZeroUsize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            partition_prefix: "kessai-state".into(),
            page_cache_pages: NZUsize!(65_536),
        }
    }
}

/// Storage failures. Any of them while committing a block is fatal to the node.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("authenticated database: {0}")]
    Database(String),
    #[error("stored record does not decode ({0}): the database is corrupt")]
    Corrupt(String),
    #[error("invalid genesis: {0}")]
    Genesis(#[from] GenesisError),
}

fn database_error(error: impl std::fmt::Debug) -> StorageError {
    StorageError::Database(format!("{error:?}"))
}

/// The state root: what every validator agrees on after each block.
fn root_of(digest: Digest) -> Hash32 {
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(digest.as_ref());
    Hash32(bytes)
}

fn digest_of(key: &StateKey) -> Digest {
    Digest::from(key.storage_key().0)
}

/// The result of applying one block.
#[derive(Debug)]
pub struct AppliedBlock {
    pub height: u64,
    pub outcomes: Vec<TxOutcome>,
    pub state_root: Hash32,
}

/// A block executed but not yet committed.
#[derive(Debug)]
pub struct PendingBlock {
    pub chain: Chain,
    pub outcomes: Vec<TxOutcome>,
    writes: WriteSet,
}

impl PendingBlock {
    /// The repo contract events the block recorded (events are only ever added), by contract
    /// and sequence.
    pub fn repo_events(&self) -> Vec<kessai_types::RepoEventRecord> {
        self.writes
            .values()
            .filter_map(|value| match value {
                Some(StateValue::RepoEvent(record)) => Some(record.clone()),
                _ => None,
            })
            .collect()
    }
}

/// The ledger state on disk, with its root.
pub struct Ledger<E: commonware_storage::Context + Spawner> {
    /// `None` only while a commit is in flight (the database's commit consumes it).
    db: Option<StateDb<E>>,
    chain: Chain,
}

impl<E: commonware_storage::Context + Spawner> Ledger<E> {
    /// Open the ledger in `context`'s storage, initializing it from `genesis` if it is empty.
    pub async fn open(
        context: E,
        config: &StoreConfig,
        genesis: &Genesis,
    ) -> Result<Self, StorageError> {
        let prefix = &config.partition_prefix;
        let page_cache = CacheRef::new(page_size(4096), config.page_cache_pages);
        let db_config = VariableConfig {
            merkle_config: MerkleConfig {
                journal_partition: format!("{prefix}-merkle-journal"),
                metadata_partition: format!("{prefix}-merkle-metadata"),
                items_per_blob: NZU64!(1 << 20),
                write_buffer: NZUsize!(1 << 20),
                replay_buffer: NZUsize!(1 << 20),
                strategy: Sequential,
                page_cache: page_cache.clone(),
            },
            journal_config: commonware_storage::journal::contiguous::variable::Config {
                partition: format!("{prefix}-log"),
                items_per_section: NZU64!(LOG_SECTION_OPERATIONS),
                compression: None,
                codec_config: ((), ((0..=MAX_VALUE_BYTES).into(), ())),
                page_cache,
                write_buffer: NZUsize!(1 << 20),
                replay_buffer: NZUsize!(1 << 20),
            },
            grafted_metadata_partition: format!("{prefix}-grafted-metadata"),
            translator: EightCap,
            init_cache: Some(NZUsize!(1 << 16)),
            init_buffer: NZUsize!(1 << 21),
            init_concurrency: (),
        };
        // Only a genesis with synthetic accounts spans several commits (see below).
        let retry = genesis
            .synthetic
            .is_some()
            .then(|| context.child("genesis_again"));
        let mut db = StateDb::init(context, db_config.clone(), None)
            .await
            .map_err(database_error)?;
        let mut metadata = db.get_metadata().await.map_err(database_error)?;
        if metadata.is_none() && !db.is_empty() {
            // Only the last commit of a genesis names its block: this one was interrupted
            // while writing synthetic accounts. Start it again from nothing, so that every node
            // appends the same operations and reaches the same root.
            let Some(retry) = retry else {
                return Err(StorageError::Corrupt(
                    "state without a commit that names its block".into(),
                ));
            };
            db.destroy().await.map_err(database_error)?;
            db = StateDb::init(retry, db_config, None)
                .await
                .map_err(database_error)?;
            metadata = None;
        }
        let mut ledger = Ledger {
            db: Some(db),
            chain: Chain::default(),
        };
        match metadata {
            Some(bytes) => {
                ledger.chain = match StateValue::decode(bytes.as_slice())
                    .map_err(|e| StorageError::Corrupt(e.to_string()))?
                {
                    StateValue::Chain(chain) => chain,
                    other => {
                        return Err(StorageError::Corrupt(format!(
                            "commit metadata holds {other:?}"
                        )));
                    }
                };
            }
            None => {
                let writes = kessai_state::genesis_base_writes(genesis)?;
                let Some(Some(StateValue::Chain(chain))) = writes.get(&StateKey::Chain).cloned()
                else {
                    unreachable!("genesis always writes the chain record");
                };
                // Synthetic accounts first, a bounded chunk per commit and no metadata; the
                // last commit, with the chain record, completes the genesis.
                if let Some(synthetic) = &genesis.synthetic {
                    let mut first = 0;
                    while first < synthetic.count {
                        let last = (first + GENESIS_ACCOUNTS_PER_COMMIT).min(synthetic.count);
                        ledger
                            .commit_records(synthetic.records(first..last))
                            .await?;
                        first = last;
                    }
                }
                ledger.commit(&writes, chain).await?;
            }
        }
        Ok(ledger)
    }

    fn db(&self) -> &StateDb<E> {
        self.db.as_ref().expect("database present between commits")
    }

    /// The height of the last committed block (0: genesis).
    pub fn height(&self) -> u64 {
        self.chain.height
    }

    /// The time of the last committed block.
    pub fn time_ms(&self) -> u64 {
        self.chain.time_ms
    }

    /// The root of the committed state.
    pub fn state_root(&self) -> Hash32 {
        root_of(self.db().root())
    }

    /// Read one record of the committed state.
    pub async fn get(&self, key: &StateKey) -> Result<Option<StateValue>, StorageError> {
        let bytes = self
            .db()
            .get(&digest_of(key))
            .await
            .map_err(database_error)?;
        bytes.map(|bytes| decode_record(&bytes)).transpose()
    }

    /// Read many records of the committed state in one grouped read, in the order of `keys`.
    pub async fn get_many(
        &self,
        keys: &[StateKey],
    ) -> Result<Vec<Option<StateValue>>, StorageError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let digests: Vec<Digest> = keys.iter().map(digest_of).collect();
        let references: Vec<&Digest> = digests.iter().collect();
        let values = self
            .db()
            .get_many(&references)
            .await
            .map_err(database_error)?;
        values
            .into_iter()
            .map(|bytes| bytes.map(|bytes| decode_record(&bytes)).transpose())
            .collect()
    }

    async fn fetch_into(
        &self,
        keys: &[StateKey],
        snapshot: &mut kessai_state::Snapshot,
    ) -> Result<(), StorageError> {
        let values = self.get_many(keys).await?;
        for (key, value) in keys.iter().zip(values) {
            snapshot.insert(*key, value);
        }
        Ok(())
    }

    /// Execute the next block and commit it durably; returns only once the commit is on disk.
    pub async fn apply_block(
        &mut self,
        time_ms: u64,
        transactions: &[VerifiedTransaction],
    ) -> Result<AppliedBlock, StorageError> {
        let pending = self.execute(time_ms, transactions).await?;
        self.commit_block(pending).await
    }

    /// Execute the next block against the committed state without changing it. Reads only, so
    /// queries can go on meanwhile; [`Self::commit_block`] then makes the result durable.
    pub async fn execute(
        &self,
        time_ms: u64,
        transactions: &[VerifiedTransaction],
    ) -> Result<PendingBlock, StorageError> {
        let block = BlockInput {
            height: self.chain.height + 1,
            time_ms,
            transactions,
        };
        // Fetch the block's read set in grouped rounds (its keys, then the owners of its
        // accounts), then execute; if execution finds a key it could not predict (expiry
        // pruning), fetch it and execute again.
        let mut keys = kessai_state::read_set(&block, &kessai_state::Snapshot::default());
        let mut snapshot = kessai_state::Snapshot::with_capacity(keys.len() * 2);
        self.fetch_into(&keys, &mut snapshot).await?;
        keys = kessai_state::owners_of(&keys, &snapshot);
        let effects = loop {
            self.fetch_into(&keys, &mut snapshot).await?;
            match kessai_state::execute(&block, &snapshot) {
                Ok(effects) => break effects,
                Err(missing) => keys = missing,
            }
        };
        let Some(Some(StateValue::Chain(chain))) = effects.writes.get(&StateKey::Chain).cloned()
        else {
            unreachable!("every block writes the chain record");
        };
        Ok(PendingBlock {
            chain,
            outcomes: effects.outcomes,
            writes: effects.writes,
        })
    }

    /// Commit a block executed by [`Self::execute`] on the current state; returns once durable.
    pub async fn commit_block(
        &mut self,
        pending: PendingBlock,
    ) -> Result<AppliedBlock, StorageError> {
        assert_eq!(
            pending.chain.height,
            self.chain.height + 1,
            "a pending block commits on the state it was executed on"
        );
        self.commit(&pending.writes, pending.chain).await?;
        Ok(AppliedBlock {
            height: pending.chain.height,
            outcomes: pending.outcomes,
            state_root: self.state_root(),
        })
    }

    /// Write `writes` as one batch, merkleize it, and commit it with `chain` as its metadata.
    async fn commit(&mut self, writes: &WriteSet, chain: Chain) -> Result<(), StorageError> {
        let db = self.db.take().expect("database present between commits");
        let mut batch = db.new_batch();
        for (key, value) in writes {
            batch = batch.write(
                digest_of(key),
                value.as_ref().map(|value| value.encode().to_vec()),
            );
        }
        let metadata = StateValue::Chain(chain).encode().to_vec();
        let merkleized = batch
            .merkleize(&db, Some(metadata), &mut Proportional)
            .await
            .map_err(database_error)?;
        let db = db.apply_batch(merkleized).await.map_err(database_error)?;
        let mut db = db.commit().await.map_err(database_error)?;
        // Every update supersedes an operation, and the floor policy rewrites live ones past
        // it: without pruning the log would keep every value the ledger ever held. Operations
        // below the sync boundary (the inactivity floor, chunk-aligned) are never read again,
        // nor needed for a proof of the current state; drop them a whole log section at a time.
        let boundary = db.sync_boundary();
        if *boundary >= *db.bounds().start + LOG_SECTION_OPERATIONS {
            db = db.prune(boundary).await.map_err(database_error)?;
        }
        self.db = Some(db);
        self.chain = chain;
        Ok(())
    }

    /// The operations the log retains, `start..end`: below `start` they were pruned; `end` is
    /// every operation ever written. Live records are all at or above the inactivity floor.
    pub fn operations(&self) -> std::ops::Range<u64> {
        let bounds = self.db().bounds();
        *bounds.start..*bounds.end
    }

    /// Write `records` as one batch and commit it without metadata: part of a genesis.
    async fn commit_records(
        &mut self,
        records: impl Iterator<Item = (StateKey, StateValue)>,
    ) -> Result<(), StorageError> {
        let db = self.db.take().expect("database present between commits");
        let mut batch = db.new_batch();
        for (key, value) in records {
            batch = batch.write(digest_of(&key), Some(value.encode().to_vec()));
        }
        let merkleized = batch
            .merkleize(&db, None, &mut Proportional)
            .await
            .map_err(database_error)?;
        let db = db.apply_batch(merkleized).await.map_err(database_error)?;
        self.db = Some(db.commit().await.map_err(database_error)?);
        Ok(())
    }

    /// A record with a proof that it is current under [`Self::state_root`].
    pub async fn prove(
        &self,
        key: &StateKey,
    ) -> Result<Option<(StateValue, StateProof)>, StorageError> {
        let Some(value) = self.get(key).await? else {
            return Ok(None);
        };
        let proof = self
            .db()
            .key_value_proof(digest_of(key))
            .await
            .map_err(database_error)?;
        Ok(Some((value, proof)))
    }

    /// Flush everything to disk and close.
    pub async fn close(mut self) -> Result<(), StorageError> {
        let db = self.db.take().expect("database present between commits");
        db.sync().await.map_err(database_error)?;
        Ok(())
    }
}

/// The largest encoded record.
pub const MAX_VALUE_BYTES: usize = 64 * 1024 * 1024;

fn decode_record(bytes: &[u8]) -> Result<StateValue, StorageError> {
    StateValue::decode(bytes).map_err(|error| StorageError::Corrupt(error.to_string()))
}

/// Check, without any database, that `key` holds `value` under `root`. This is what a
/// participant runs on a balance proof it received from any node.
pub fn verify_proof(root: &Hash32, key: &StateKey, value: &StateValue, proof: &StateProof) -> bool {
    StateDb::<commonware_runtime::deterministic::Context>::verify_key_value_proof(
        digest_of(key),
        value.encode().to_vec(),
        proof,
        &Digest::from(root.0),
    )
}

/// Encode a proof for transport.
pub fn encode_proof(proof: &StateProof) -> Vec<u8> {
    proof.encode().to_vec()
}

/// Decode a proof received from elsewhere; malformed bytes are an error, never a panic.
pub fn decode_proof(bytes: &[u8]) -> Result<StateProof, commonware_codec::Error> {
    // A proof path has at most a few digests per tree level; 256 bounds any database of 2^64 ops.
    StateProof::decode_cfg(bytes::Bytes::copy_from_slice(bytes), &PROOF_DIGESTS_MAX)
}

/// The most digests a decoded proof may carry.
const PROOF_DIGESTS_MAX: usize = 256;

/// The workload of the crash-recovery test: 1,000 accounts of 10 owners.
pub fn crash_workload() -> kessai_state::Workload {
    kessai_state::Workload::new(1_000, 10, 1_700_000_000_000)
}

/// Block `height` of the crash-recovery test: its time and 200 transfers, some failing.
pub fn crash_block(
    workload: &kessai_state::Workload,
    height: u64,
) -> (u64, Vec<kessai_types::Transaction>) {
    workload.block(height, 200, 7)
}
