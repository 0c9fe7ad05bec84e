//! The node's finalized store: the ledger state, a record of every finalized block's outcomes,
//! and the state root after every height.
//!
//! Finalized blocks are applied in height order by one task. For each block the outcomes are
//! journaled first, then the state is committed, then its root is journaled; a crash anywhere in
//! between is repaired on open (a missing last root is the ledger's current root) or on
//! redelivery (a block at or below the ledger's height is already applied). Queries share the
//! store behind a read/write lock: execution only reads, so queries wait only for the commit.

use crate::block::{Block, digest_hash};
use bytes::BufMut;
use commonware_codec::{Buf, EncodeSize, Error as CodecError, Read, ReadExt, Write};
use commonware_cryptography::{Digestible, sha256::Digest};
use commonware_runtime::{Spawner, buffer::paged::CacheRef};
use commonware_storage::journal::contiguous::{Contiguous, fixed, variable};
use commonware_utils::{NZU64, NZUsize};
use kessai_state::{Genesis, StateKey, StateValue, TxOutcome};
use kessai_storage::{Ledger, StateProof, StorageError, StoreConfig};
use kessai_types::{
    Hash32, PublicKey, Rejection, RepoEventRecord, TxId, VerifiedTransaction,
    codec::{read_seq, seq_size, write_seq},
};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{RwLock, watch};

/// The keys in a stored validator-set record, if there is one.
fn decode_validators(
    epoch: u64,
    value: Option<StateValue>,
) -> Result<Option<Vec<PublicKey>>, StorageError> {
    match value {
        None => Ok(None),
        Some(StateValue::Validators(set)) => Ok(Some(set.0)),
        Some(other) => Err(StorageError::Database(format!(
            "the validator set of epoch {epoch} holds {other:?}"
        ))),
    }
}

fn missing_validators(epoch: u64) -> StorageError {
    StorageError::Database(format!("no validator set for epoch {epoch}"))
}

/// The validator sets as of one finalized height.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochValidators {
    /// The finalized height they were read at.
    pub height: u64,
    /// The epoch of the next block.
    pub epoch: u64,
    pub first_height: u64,
    pub last_height: u64,
    /// Who validates this epoch.
    pub current: Vec<PublicKey>,
    /// Who validates the next epoch, once governance has named a set (or the epoch has ended
    /// without a change, which carries the current set over).
    pub next: Option<Vec<PublicKey>>,
}

/// What the node records of a finalized block, beside the block itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockRecord {
    pub height: u64,
    pub digest: Hash32,
    pub time_ms: u64,
    pub outcomes: Vec<TxOutcome>,
    /// The repo contract events the block recorded.
    pub repo_events: Vec<RepoEventRecord>,
}

/// The most repo events one block records: a few per transaction, two per contract marked.
pub const REPO_EVENTS_PER_BLOCK_MAX: usize =
    3 * crate::block::BLOCK_TRANSACTIONS_MAX + 2 * kessai_state::REPO_MARKS_PER_BLOCK_MAX as usize;

impl Write for BlockRecord {
    fn write(&self, buf: &mut impl BufMut) {
        self.height.write(buf);
        self.digest.write(buf);
        self.time_ms.write(buf);
        write_seq(&self.outcomes, buf);
        write_seq(&self.repo_events, buf);
    }
}

impl EncodeSize for BlockRecord {
    fn encode_size(&self) -> usize {
        self.height.encode_size()
            + self.digest.encode_size()
            + self.time_ms.encode_size()
            + seq_size(&self.outcomes)
            + seq_size(&self.repo_events)
    }
}

impl Read for BlockRecord {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        let height = u64::read(buf)?;
        let digest = Hash32::read(buf)?;
        let time_ms = u64::read(buf)?;
        let outcomes = read_seq(buf, crate::block::BLOCK_TRANSACTIONS_MAX)?;
        let repo_events = read_seq(buf, REPO_EVENTS_PER_BLOCK_MAX)?;
        Ok(BlockRecord {
            height,
            digest,
            time_ms,
            outcomes,
            repo_events,
        })
    }
}

/// Where a finalized transaction landed and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxLocation {
    pub height: u64,
    pub index: u32,
    pub rejection: Option<Rejection>,
}

/// The last applied block, published to every waiter (verifiers, event streams).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub height: u64,
    pub time_ms: u64,
    pub state_root: Hash32,
}

type Records<E> = variable::Journal<E, BlockRecord>;
type Roots<E> = fixed::Journal<E, Digest>;

/// The store's data, behind the lock.
pub struct StoreData<E: commonware_storage::Context + Spawner> {
    pub ledger: Ledger<E>,
    records: Option<Records<E>>,
    roots_journal: Option<Roots<E>>,
    roots: Vec<Hash32>,
    tx_index: HashMap<TxId, TxLocation>,
}

/// A handle on the finalized store, shared by the executor and the API.
pub struct Store<E: commonware_storage::Context + Spawner> {
    data: Arc<RwLock<StoreData<E>>>,
    applied: watch::Sender<Applied>,
}

impl<E: commonware_storage::Context + Spawner> Clone for Store<E> {
    fn clone(&self) -> Self {
        Store {
            data: self.data.clone(),
            applied: self.applied.clone(),
        }
    }
}

fn journal_error(error: impl std::fmt::Debug) -> StorageError {
    StorageError::Database(format!("block journal: {error:?}"))
}

impl<E: commonware_storage::Context + Spawner> Store<E> {
    /// Open (or create from `genesis`) the store under `config.partition_prefix`.
    pub async fn open(
        context: E,
        config: &StoreConfig,
        genesis: &Genesis,
        genesis_block: &Block,
    ) -> Result<Self, StorageError> {
        let prefix = &config.partition_prefix;
        let ledger = Ledger::open(context.child("ledger"), config, genesis).await?;
        let page_cache = CacheRef::new(
            commonware_runtime::buffer::paged::page_size(4096),
            NZUsize!(4096),
        );
        let mut records = Records::init(
            context.child("records"),
            variable::Config {
                partition: format!("{prefix}-block-records"),
                items_per_section: NZU64!(4096),
                compression: None,
                codec_config: (),
                page_cache: page_cache.clone(),
                write_buffer: NZUsize!(1 << 20),
                replay_buffer: NZUsize!(1 << 20),
            },
        )
        .await
        .map_err(journal_error)?;
        let mut roots_journal = Roots::init(
            context.child("roots"),
            fixed::Config {
                partition: format!("{prefix}-state-roots"),
                items_per_blob: NZU64!(1 << 16),
                page_cache,
                write_buffer: NZUsize!(1 << 16),
                replay_buffer: NZUsize!(1 << 16),
            },
        )
        .await
        .map_err(journal_error)?;
        let height = ledger.height();
        if records.size() == 0 {
            let record = BlockRecord {
                height: 0,
                digest: digest_hash(&genesis_block.digest()),
                time_ms: genesis_block.time_ms,
                outcomes: Vec::new(),
                repo_events: Vec::new(),
            };
            records = records.append(&record).await.map_err(journal_error)?.0;
            records = records.sync().await.map_err(journal_error)?;
        }
        if roots_journal.size() == height {
            // The last commit landed but its root did not: it is the current root.
            let root = Digest::from(ledger.state_root().0);
            roots_journal = roots_journal.append(&root).await.map_err(journal_error)?.0;
            roots_journal = roots_journal.sync().await.map_err(journal_error)?;
        }
        if roots_journal.size() != height + 1 || records.size() < height + 1 {
            return Err(StorageError::Corrupt(format!(
                "ledger at height {height} but {} roots and {} block records",
                roots_journal.size(),
                records.size()
            )));
        }
        let mut roots = Vec::with_capacity(height as usize + 1);
        let mut tx_index = HashMap::new();
        for position in 0..=height {
            let root = roots_journal.read(position).await.map_err(journal_error)?;
            roots.push(Hash32(root.as_ref().try_into().expect("32-byte digest")));
            let record = records.read(position).await.map_err(journal_error)?;
            index_outcomes(&mut tx_index, &record);
        }
        let applied = Applied {
            height,
            time_ms: ledger.time_ms(),
            state_root: ledger.state_root(),
        };
        let data = StoreData {
            ledger,
            records: Some(records),
            roots_journal: Some(roots_journal),
            roots,
            tx_index,
        };
        Ok(Store {
            data: Arc::new(RwLock::new(data)),
            applied: watch::Sender::new(applied),
        })
    }

    /// Apply a finalized block, durably. A block at or below the applied height is skipped:
    /// marshal redelivers unacknowledged blocks after a restart.
    /// Waiters learn of it only from [`Self::publish`], once the caller has updated what depends
    /// on it (the mempool).
    pub async fn apply(
        &self,
        block: &Block,
        digest: Hash32,
    ) -> Result<Option<(BlockRecord, Applied)>, StorageError> {
        let (record, pending) = {
            let data = self.data.read().await;
            let height = data.ledger.height();
            if block.height <= height {
                return Ok(None);
            }
            assert_eq!(
                block.height,
                height + 1,
                "finalized blocks arrive in height order"
            );
            // Signatures were verified before this block could be finalized: by at least one
            // honest validator, and by this node on admission or when it voted.
            let transactions: Vec<VerifiedTransaction> = block
                .transactions
                .iter()
                .map(|transaction| VerifiedTransaction {
                    id: transaction.body.id(),
                    transaction: transaction.clone(),
                    signatures_valid: true,
                })
                .collect();
            let pending = data.ledger.execute(block.time_ms, &transactions).await?;
            let record = BlockRecord {
                height: block.height,
                digest,
                time_ms: block.time_ms,
                outcomes: pending.outcomes.clone(),
                repo_events: pending.repo_events(),
            };
            (record, pending)
        };
        let mut data = self.data.write().await;
        let records = data.records.take().expect("records journal present");
        let records = if records.size() == block.height {
            records.append(&record).await.map_err(journal_error)?.0
        } else {
            records
        };
        data.records = Some(records.sync().await.map_err(journal_error)?);
        let applied = data.ledger.commit_block(pending).await?;
        let roots = data.roots_journal.take().expect("roots journal present");
        let roots = roots
            .append(&Digest::from(applied.state_root.0))
            .await
            .map_err(journal_error)?
            .0;
        data.roots_journal = Some(roots.sync().await.map_err(journal_error)?);
        data.roots.push(applied.state_root);
        index_outcomes(&mut data.tx_index, &record);
        let applied = Applied {
            height: applied.height,
            time_ms: data.ledger.time_ms(),
            state_root: applied.state_root,
        };
        Ok(Some((record, applied)))
    }

    /// Tell waiters that `applied` is the last applied block.
    pub fn publish(&self, applied: Applied) {
        self.applied.send_replace(applied);
    }

    /// The last applied block.
    pub fn applied(&self) -> Applied {
        *self.applied.borrow()
    }

    /// Wait until the store has applied `height`.
    pub async fn wait_for(&self, height: u64) -> Applied {
        let mut receiver = self.applied.subscribe();
        loop {
            let applied = *receiver.borrow_and_update();
            if applied.height >= height {
                return applied;
            }
            if receiver.changed().await.is_err() {
                // The sender lives as long as the store: unreachable while we hold it.
                return applied;
            }
        }
    }

    /// A receiver that wakes on every applied block.
    pub fn subscribe(&self) -> watch::Receiver<Applied> {
        self.applied.subscribe()
    }

    /// The state root after `height`, if applied.
    pub async fn root_at(&self, height: u64) -> Option<Hash32> {
        self.data.read().await.roots.get(height as usize).copied()
    }

    /// The record of finalized block `height`.
    pub async fn record(&self, height: u64) -> Result<Option<BlockRecord>, StorageError> {
        let data = self.data.read().await;
        if height > data.ledger.height() {
            return Ok(None);
        }
        let records = data.records.as_ref().expect("records journal present");
        records.read(height).await.map(Some).map_err(journal_error)
    }

    /// Where a finalized transaction landed.
    pub async fn transaction(&self, id: &TxId) -> Option<TxLocation> {
        self.data.read().await.tx_index.get(id).copied()
    }

    /// Read one record of the finalized state, with the height it was read at.
    pub async fn get(&self, key: &StateKey) -> Result<(u64, Option<StateValue>), StorageError> {
        let data = self.data.read().await;
        Ok((data.ledger.height(), data.ledger.get(key).await?))
    }

    /// Read many records of the finalized state at once (one lock, one grouped read).
    pub async fn get_many(
        &self,
        keys: &[StateKey],
    ) -> Result<Vec<Option<StateValue>>, StorageError> {
        self.data.read().await.ledger.get_many(keys).await
    }

    /// The validator set of `epoch`: every epoch up to the next one to start has one.
    pub async fn validator_set(&self, epoch: u64) -> Result<Vec<PublicKey>, StorageError> {
        let (_, value) = self.get(&StateKey::Validators(epoch)).await?;
        decode_validators(epoch, value)?.ok_or_else(|| missing_validators(epoch))
    }

    /// The validator sets of the finalized state: the running epoch's (the epoch of the next
    /// block) and the next epoch's, if governance has named it.
    pub async fn validators(&self) -> Result<EpochValidators, StorageError> {
        let data = self.data.read().await;
        let height = data.ledger.height();
        let Some(StateValue::Parameters(parameters)) =
            data.ledger.get(&StateKey::Parameters).await?
        else {
            return Err(StorageError::Database("no parameters in the state".into()));
        };
        let epoch = parameters.epoch_of(height + 1);
        let sets = data
            .ledger
            .get_many(&[StateKey::Validators(epoch), StateKey::Validators(epoch + 1)])
            .await?;
        let mut sets = sets.into_iter();
        let current = decode_validators(epoch, sets.next().flatten())?
            .ok_or_else(|| missing_validators(epoch))?;
        let next = decode_validators(epoch + 1, sets.next().flatten())?;
        Ok(EpochValidators {
            height,
            epoch,
            first_height: epoch * parameters.epoch_blocks,
            last_height: (epoch + 1) * parameters.epoch_blocks - 1,
            current,
            next,
        })
    }

    /// A record with its proof against the state root at the returned height.
    pub async fn prove(
        &self,
        key: &StateKey,
    ) -> Result<(Applied, Option<(StateValue, StateProof)>), StorageError> {
        let data = self.data.read().await;
        let applied = Applied {
            height: data.ledger.height(),
            time_ms: data.ledger.time_ms(),
            state_root: data.ledger.state_root(),
        };
        Ok((applied, data.ledger.prove(key).await?))
    }

    /// Flush and close (after the executor stopped).
    pub async fn close(self) -> Result<(), StorageError> {
        let Ok(lock) = Arc::try_unwrap(self.data) else {
            return Ok(());
        };
        let data = lock.into_inner();
        data.ledger.close().await
    }
}

fn index_outcomes(index: &mut HashMap<TxId, TxLocation>, record: &BlockRecord) {
    for (position, outcome) in record.outcomes.iter().enumerate() {
        // The first landing of an id is its outcome; a later copy is only a duplicate.
        index.entry(outcome.id).or_insert(TxLocation {
            height: record.height,
            index: position as u32,
            rejection: outcome.rejection,
        });
    }
}
