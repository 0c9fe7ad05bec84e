//! Assemble a validator: Simplex consensus, marshal (block dissemination, catch-up and ordered
//! delivery of finalized blocks), the executor, and transaction gossip, over any p2p network
//! (the authenticated network in production, the simulated one in tests).

use crate::{
    app::{App, BlockRules, Scheme},
    block::{Block, digest_hash},
    epochs::{EpochSchemes, Epochs},
    mempool::{AdmissionError, ChainView, Mempool, MempoolLimits},
    store::{Applied, BlockRecord, Store},
};
use bytes::Buf as _;
use commonware_actor::Feedback;
use commonware_broadcast::buffered;
use commonware_codec::EncodeSize;
use commonware_consensus::{
    Reporter,
    marshal::{self, Update, core::Actor as Marshal, resolver::p2p as marshal_resolver},
    types::{Epocher as _, FixedEpocher, Height, ViewDelta},
};
use commonware_cryptography::{Digested, Digestible, ed25519, sha256::Digest};
use commonware_macros::select;
use commonware_p2p::utils::mux::{Builder as _, Muxer};
use commonware_p2p::{Blocker, Provider, Receiver, Recipients, Sender};
use commonware_parallel::Strategy;
use commonware_runtime::{Clock, Handle, Metrics, Spawner, Storage, buffer::paged::CacheRef};
use commonware_storage::archive::immutable;
use commonware_utils::{
    NZDuration, NZU64, NZUsize, acknowledgement::Acknowledgement, vec::NonEmptyVec,
};
use futures::{StreamExt, channel::mpsc};
use kessai_state::{Genesis, StateKey};
use kessai_storage::{StorageError, StoreConfig};
use kessai_types::{
    Hash32, Transaction, TxId, VerifiedTransaction, transaction::VALIDATORS_MAX,
    verify_transactions,
};
use rand_core::CryptoRng;
use std::{collections::HashMap, num::NonZeroU64, time::Duration};
use tracing::{error, info, warn};

/// The p2p channels a validator uses, in this order.
pub const CHANNEL_VOTES: u64 = 0;
pub const CHANNEL_CERTIFICATES: u64 = 1;
pub const CHANNEL_RESOLVER: u64 = 2;
pub const CHANNEL_BACKFILL: u64 = 3;
pub const CHANNEL_BLOCKS: u64 = 4;
pub const CHANNEL_TRANSACTIONS: u64 = 5;

/// The largest p2p message: a full block plus certificates and framing.
pub const MESSAGE_BYTES_MAX: u32 = (crate::block::BLOCK_BYTES_MAX + 1024 * 1024) as u32;

/// Transactions per gossip message.
const GOSSIP_BATCH_MAX: usize = 2_000;

/// One sender/receiver pair per channel.
pub struct Channels<S, R> {
    pub votes: (S, R),
    pub certificates: (S, R),
    pub resolver: (S, R),
    pub backfill: (S, R),
    pub blocks: (S, R),
    pub transactions: (S, R),
}

/// Consensus timeouts.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub leader: Duration,
    pub certification: Duration,
    pub retry: Duration,
    pub skip: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            leader: Duration::from_secs(1),
            certification: Duration::from_secs(2),
            retry: Duration::from_millis(500),
            skip: Duration::from_secs(5),
        }
    }
}

/// Everything a validator (or observer) needs besides its network.
#[derive(Clone)]
pub struct ValidatorConfig {
    /// `None` for an observer: it follows and verifies but never votes.
    pub signer: Option<ed25519::PrivateKey>,
    pub public_key: ed25519::PublicKey,
    /// The initial state; its validators run epoch 0, governance names later epochs' sets.
    pub genesis: Genesis,
    /// Hash of the genesis file: identifies the chain.
    pub genesis_hash: Hash32,
    pub store: StoreConfig,
    pub mempool: MempoolLimits,
    pub rules: BlockRules,
    pub timeouts: Timeouts,
}

/// The consensus namespace: votes for one chain never count on another.
pub fn namespace(genesis_hash: &Hash32) -> Vec<u8> {
    [b"_KESSAI_CONSENSUS_".as_slice(), &genesis_hash.0].concat()
}

/// A running validator, as the API sees it.
///
/// `handles` are the long-running actors, for supervision: when one ends, the node is broken.
/// They are not every task Commonware spawns (the backfill resolver keeps its own), so stop a
/// node by aborting the task that called [`start`], or by stopping the runtime.
pub struct Node<E: commonware_storage::Context + Spawner> {
    pub store: Store<E>,
    pub mempool: Mempool,
    pub blocks: BlockSource,
    pub submit: Submitter,
    pub handles: Vec<Handle<()>>,
}

/// Reads finalized blocks from marshal's archive.
#[derive(Clone)]
pub struct BlockSource {
    mailbox: marshal::core::Mailbox<Scheme, marshal::standard::Standard<Block>>,
}

impl BlockSource {
    /// The finalized block at `height`, if this node has it.
    pub async fn block(&self, height: u64) -> Option<Block> {
        self.mailbox
            .get_block(Height::new(height))
            .await
            .map(|block| block.inner().clone())
    }
}

type Verify = std::sync::Arc<dyn Fn(Vec<Transaction>) -> Vec<VerifiedTransaction> + Send + Sync>;

/// Admits signed transactions to this node's mempool and gossips them to the validators.
#[derive(Clone)]
pub struct Submitter {
    mempool: Mempool,
    gossip: mpsc::UnboundedSender<Vec<Transaction>>,
    verify: Verify,
}

impl Submitter {
    /// Check and admit `transactions` (signatures in one batch); admitted ones are gossiped.
    pub async fn submit<E>(
        &self,
        store: &Store<E>,
        transactions: Vec<Transaction>,
    ) -> Vec<Result<TxId, AdmissionError>>
    where
        E: commonware_storage::Context + Spawner,
    {
        let verified = (self.verify)(transactions.clone());
        let results = admit(&self.mempool, store, verified).await;
        let admitted: Vec<Transaction> = transactions
            .into_iter()
            .zip(&results)
            .filter(|(_, result)| result.is_ok())
            .map(|(transaction, _)| transaction)
            .collect();
        if !admitted.is_empty() {
            let _ = self.gossip.unbounded_send(admitted);
        }
        results
    }
}

async fn admit<E>(
    mempool: &Mempool,
    store: &Store<E>,
    verified: Vec<VerifiedTransaction>,
) -> Vec<Result<TxId, AdmissionError>>
where
    E: commonware_storage::Context + Spawner,
{
    // Which (submitter, unique id) pairs the finalized ledger already holds: one grouped read.
    let keys: Vec<StateKey> = verified
        .iter()
        .map(|v| StateKey::Replay(v.transaction.body.submitter, v.transaction.body.unique_id))
        .collect();
    let values = store.get_many(&keys).await.unwrap_or_else(|error| {
        // Admission never fails on a read: a duplicate still lands as DUPLICATE at execution.
        warn!(%error, "cannot read replay records at admission");
        vec![None; keys.len()]
    });
    let finals: std::collections::HashSet<StateKey> = keys
        .into_iter()
        .zip(values)
        .filter_map(|(key, value)| value.map(|_| key))
        .collect();
    mempool.admit(verified, |party, unique_id| {
        finals.contains(&StateKey::Replay(party, unique_id))
    })
}

/// Marshal's reporter: hands finalized blocks to the executor, in order.
#[derive(Clone)]
struct Finalized<A: Acknowledgement> {
    sender: mpsc::UnboundedSender<Update<Block, A>>,
}

impl<A: Acknowledgement> Reporter for Finalized<A> {
    type Activity = Update<Block, A>;
    fn report(&mut self, activity: Self::Activity) -> Feedback {
        match self.sender.unbounded_send(activity) {
            Ok(()) => Feedback::Ok,
            Err(_) => Feedback::Closed,
        }
    }
}

fn chain_view(genesis: &Genesis, applied: Applied) -> ChainView {
    ChainView {
        network: genesis.parameters.network,
        height: applied.height,
        time_ms: applied.time_ms,
        expiry_horizon_blocks: genesis.parameters.expiry_horizon_blocks,
        expiry_horizon_ms: genesis.parameters.expiry_horizon_ms,
    }
}

fn archive_config<C>(
    prefix: &str,
    name: &str,
    page_cache: &CacheRef,
    codec_config: C,
) -> immutable::Config<C> {
    immutable::Config {
        metadata_partition: format!("{prefix}-{name}-metadata"),
        freezer_table_partition: format!("{prefix}-{name}-freezer-table"),
        freezer_table_initial_size: 65_536,
        freezer_table_resize_frequency: 4,
        freezer_table_resize_chunk_size: 16_384,
        freezer_key_partition: format!("{prefix}-{name}-freezer-key"),
        freezer_key_page_cache: page_cache.clone(),
        freezer_value_partition: format!("{prefix}-{name}-freezer-value"),
        freezer_value_target_size: 1 << 30,
        freezer_value_compression: None,
        ordinal_partition: format!("{prefix}-{name}-ordinal"),
        items_per_section: NZU64!(4096),
        codec_config,
        replay_buffer: NZUsize!(1 << 20),
        freezer_key_write_buffer: NZUsize!(1 << 20),
        freezer_value_write_buffer: NZUsize!(1 << 20),
        ordinal_write_buffer: NZUsize!(1 << 20),
    }
}

/// Start a validator (or observer) on `channels`. Returns once every actor runs.
pub async fn start<E, S, R, B, P, T>(
    context: E,
    config: ValidatorConfig,
    channels: Channels<S, R>,
    blocker: B,
    peers: P,
    strategy: T,
) -> Result<Node<E>, StorageError>
where
    E: Clock + CryptoRng + Spawner + Storage + Metrics + commonware_storage::Context,
    S: Sender<PublicKey = ed25519::PublicKey>,
    R: Receiver<PublicKey = ed25519::PublicKey>,
    B: Blocker<PublicKey = ed25519::PublicKey>,
    P: Provider<PublicKey = ed25519::PublicKey>,
    T: Strategy + Clone,
{
    let prefix = config.store.partition_prefix.clone();
    let genesis_block = Block::genesis(config.genesis_hash, config.genesis.time_ms);
    let genesis_digest = genesis_block.digest();
    let store = Store::open(
        context.child("store"),
        &config.store,
        &config.genesis,
        &genesis_block,
    )
    .await?;
    let applied = store.applied();
    let mempool = Mempool::new(config.mempool, chain_view(&config.genesis, applied));
    info!(height = applied.height, root = %applied.state_root.to_hex(), "store open");

    let page_cache = CacheRef::new(
        commonware_runtime::buffer::paged::page_size(4096),
        NZUsize!(16_384),
    );
    let mut handles = Vec::new();

    // Marshal: backfill resolver, block broadcast, archives, the actor.
    let (backfill_receiver, backfill) = marshal_resolver::init(
        context.child("marshal_resolver"),
        marshal_resolver::Config {
            public_key: config.public_key.clone(),
            peer_provider: peers.clone(),
            blocker: blocker.clone(),
            mailbox_size: NZUsize!(1024),
            fetch_timeout: NZDuration!(Duration::from_secs(2)),
            fetch_retry_delay: Duration::from_millis(100),
            priority_requests: false,
            priority_responses: false,
        },
        channels.backfill,
    );
    let (broadcast, buffer) = buffered::Engine::new(
        context.child("broadcast"),
        buffered::Config {
            public_key: config.public_key.clone(),
            mailbox_size: NZUsize!(1024),
            deque_size: 16,
            priority: false,
            codec_config: (),
            peer_provider: peers.clone(),
            strategy: strategy.clone(),
        },
    );
    handles.push(broadcast.start(channels.blocks));
    let finalizations = immutable::Archive::init(
        context.child("finalizations_by_height"),
        archive_config(&prefix, "finalizations", &page_cache, VALIDATORS_MAX),
    )
    .await
    .map_err(|e| StorageError::Database(format!("finalizations archive: {e:?}")))?;
    let finalized_blocks = immutable::Archive::init(
        context.child("finalized_blocks"),
        archive_config(&prefix, "blocks", &page_cache, ()),
    )
    .await
    .map_err(|e| StorageError::Database(format!("blocks archive: {e:?}")))?;
    let epocher = FixedEpocher::new(
        NonZeroU64::new(config.genesis.parameters.epoch_blocks).expect("genesis checks it"),
    );
    let schemes = EpochSchemes::default();
    let (marshal_actor, marshal_mailbox, _floor) = Marshal::init(
        context.child("marshal"),
        finalizations,
        finalized_blocks,
        marshal::Config {
            provider: schemes.clone(),
            epocher: epocher.clone(),
            start: marshal::Start::Genesis(Digested::precomputed(genesis_block, genesis_digest)),
            partition_prefix: format!("{prefix}-marshal"),
            mailbox_size: NZUsize!(1024),
            view_retention: ViewDelta::new(10),
            prunable_items_per_section: NZU64!(4096),
            page_cache: page_cache.clone(),
            replay_buffer: NZUsize!(1 << 20),
            key_write_buffer: NZUsize!(1 << 20),
            value_write_buffer: NZUsize!(1 << 20),
            block_codec_config: (),
            max_repair: NZUsize!(64),
            max_pending_acks: NZUsize!(4),
            strategy: strategy.clone(),
        },
    )
    .await;
    let (finalized_sender, finalized_receiver) =
        mpsc::unbounded::<Update<Block, commonware_utils::acknowledgement::Exact>>();
    // Consensus: one engine per epoch, on per-epoch subchannels of the consensus channels.
    let app = App {
        store: store.clone(),
        mempool: mempool.clone(),
        strategy: strategy.clone(),
        rules: config.rules,
    };
    let automaton = marshal::standard::Inline::new(
        context.child("inline"),
        app,
        marshal_mailbox.clone(),
        epocher.clone(),
    );
    let (votes_mux, votes, votes_backup) = Muxer::builder(
        context.child("votes_mux"),
        channels.votes.0,
        channels.votes.1,
    )
    .with_backup()
    .build();
    let (certificates_mux, certificates, certificates_backup) = Muxer::builder(
        context.child("certificates_mux"),
        channels.certificates.0,
        channels.certificates.1,
    )
    .with_backup()
    .build();
    let (resolver_mux, resolver) = Muxer::new(
        context.child("resolver_mux"),
        channels.resolver.0,
        channels.resolver.1,
    );
    for mux in [
        votes_mux.start(),
        certificates_mux.start(),
        resolver_mux.start(),
    ] {
        handles.push(context.child("mux_supervisor").spawn(move |_| async move {
            if let Ok(Err(error)) = mux.await {
                error!(?error, "a consensus channel closed");
            }
        }));
    }
    let mut epochs = Epochs {
        context: context.child("consensus"),
        epocher: epocher.clone(),
        schemes,
        signer: config.signer.clone(),
        namespace: namespace(&config.genesis_hash),
        votes,
        certificates,
        resolver,
        automaton,
        blocker: blocker.clone(),
        strategy: strategy.clone(),
        timeouts: config.timeouts,
        prefix: prefix.clone(),
        page_cache,
        active: None,
    };
    // The epoch of the next block to apply, and the block it starts from.
    let epoch = epocher
        .containing(Height::new(applied.height + 1))
        .expect("every height has an epoch")
        .epoch();
    let floor = match epoch.previous() {
        None => genesis_digest,
        Some(previous) => {
            epochs.know(previous, &store.validator_set(previous.get()).await?);
            let last = epocher.last(previous).expect("every epoch ends").get();
            let record = store.record(last).await?.ok_or_else(|| {
                StorageError::Database(format!(
                    "no record of block {last}, the last of epoch {previous}"
                ))
            })?;
            Digest::from(record.digest.0)
        }
    };
    let validators = store.validator_set(epoch.get()).await?;
    if epochs.enter(epoch, floor, &validators).await.is_err() {
        return Err(StorageError::Database(
            "consensus channels closed at start".into(),
        ));
    }

    // Marshal starts once the provider knows the running epoch's validators: it verifies the
    // certificates it receives with them.
    handles.push(marshal_actor.start(
        Finalized {
            sender: finalized_sender,
        },
        buffer,
        (backfill_receiver, backfill),
    ));

    // The executor: apply finalized blocks in order, switch epochs, acknowledge to marshal.
    handles.push(context.child("executor").spawn({
        let executor = Executor {
            store: store.clone(),
            mempool: mempool.clone(),
            genesis: config.genesis.clone(),
            marshal: marshal_mailbox.clone(),
        };
        move |_| {
            executor.run(
                finalized_receiver,
                epochs,
                votes_backup,
                certificates_backup,
            )
        }
    }));

    // Transaction gossip.
    let (gossip_sender, gossip_receiver) = mpsc::unbounded();
    let (tx_sender, tx_receiver) = channels.transactions;
    handles.push(
        context
            .child("gossip_out")
            .spawn(move |_| gossip_out(tx_sender, gossip_receiver)),
    );
    handles.push(context.child("gossip_in").spawn({
        let store = store.clone();
        let mempool = mempool.clone();
        let strategy = strategy.clone();
        move |_| gossip_in(tx_receiver, blocker, store, mempool, strategy)
    }));

    Ok(Node {
        store,
        blocks: BlockSource {
            mailbox: marshal_mailbox,
        },
        submit: Submitter {
            mempool: mempool.clone(),
            gossip: gossip_sender,
            verify: std::sync::Arc::new(move |transactions| {
                verify_transactions(transactions, &strategy)
            }),
        },
        mempool,
        handles,
    })
}

/// How often one peer's traffic from a later epoch may prompt a catch-up request.
const HINT_INTERVAL: Duration = Duration::from_secs(1);

/// Consensus traffic for an epoch this node has no engine for.
type Backup = commonware_utils::channel::mpsc::Receiver<(
    commonware_p2p::Channel,
    commonware_p2p::Message<ed25519::PublicKey>,
)>;

/// Applies finalized blocks in order, switches epochs at their last block, acknowledges.
struct Executor<E: commonware_storage::Context + Spawner> {
    store: Store<E>,
    mempool: Mempool,
    genesis: Genesis,
    marshal: marshal::core::Mailbox<Scheme, marshal::standard::Standard<Block>>,
}

impl<E> Executor<E>
where
    E: Clock + CryptoRng + Spawner + Storage + Metrics + commonware_storage::Context,
{
    async fn run<S, B, T, A>(
        self,
        mut finalized: mpsc::UnboundedReceiver<Update<Block, A>>,
        mut epochs: Epochs<E, S, B, T>,
        mut votes_backup: Backup,
        mut certificates_backup: Backup,
    ) where
        S: Sender<PublicKey = ed25519::PublicKey>,
        B: Blocker<PublicKey = ed25519::PublicKey>,
        T: Strategy + Clone,
        A: Acknowledgement,
    {
        let mut hinted = (epochs.active(), HashMap::new());
        loop {
            let peer_epoch = select! {
                update = finalized.next() => {
                    let Some(update) = update else { return };
                    let Update::Block(block, ack) = update else { continue };
                    if let Err(error) = self.apply(&block, &mut epochs).await {
                        // Not acknowledged: marshal redelivers the block after a restart.
                        error!(%error, height = block.inner().height, "cannot apply a finalized block");
                        return;
                    }
                    ack.acknowledge();
                    continue;
                },
                backup = votes_backup.recv() => backup,
                backup = certificates_backup.recv() => backup,
            };
            let Some((their_epoch, (peer, _))) = peer_epoch else {
                return;
            };
            // A peer votes in a later epoch: this node is behind. Fetch the finalization of this
            // epoch's last block from that peer (at most once a second per peer: every vote of
            // the later epoch arrives here); marshal then fills in the blocks before it.
            let active = epochs.active();
            if their_epoch <= active.get() {
                continue;
            }
            if hinted.0 != active {
                hinted = (active, HashMap::new());
            }
            let now = epochs.context.current();
            let due = hinted
                .1
                .get(&peer)
                .is_none_or(|last| now.duration_since(*last).unwrap_or_default() >= HINT_INTERVAL);
            if due {
                hinted.1.insert(peer.clone(), now);
                let last = epochs.epocher.last(active).expect("every epoch ends");
                self.marshal.hint_finalized(last, NonEmptyVec::new(peer));
            }
        }
    }

    async fn apply<S, B, T>(
        &self,
        block: &Digested<Block>,
        epochs: &mut Epochs<E, S, B, T>,
    ) -> Result<(), StorageError>
    where
        S: Sender<PublicKey = ed25519::PublicKey>,
        B: Blocker<PublicKey = ed25519::PublicKey>,
        T: Strategy + Clone,
    {
        let height = block.inner().height;
        let digest = block.digest();
        if let Some((record, applied)) = self
            .store
            .apply(block.inner(), digest_hash(&digest))
            .await?
        {
            let ids: Vec<TxId> = record.outcomes.iter().map(|o| o.id).collect();
            self.mempool
                .finalized(ids, chain_view(&self.genesis, applied));
            self.store.publish(applied);
            log_block(&record);
        }
        // Already applied or not, the last block of the running epoch starts the next one.
        if epochs.ends_active(height) {
            let next = epochs.active().next();
            let validators = self.store.validator_set(next.get()).await?;
            epochs
                .enter(next, digest, &validators)
                .await
                .map_err(|error| StorageError::Database(error.to_string()))?;
        }
        Ok(())
    }
}

fn log_block(record: &BlockRecord) {
    let rejected = record
        .outcomes
        .iter()
        .filter(|o| o.rejection.is_some())
        .count();
    info!(
        height = record.height,
        transactions = record.outcomes.len(),
        rejected,
        "finalized"
    );
}

async fn gossip_out<S: Sender<PublicKey = ed25519::PublicKey>>(
    mut sender: S,
    mut admitted: mpsc::UnboundedReceiver<Vec<Transaction>>,
) {
    while let Some(mut batch) = admitted.next().await {
        // Coalesce whatever else is waiting, up to one message.
        while batch.len() < GOSSIP_BATCH_MAX {
            match admitted.try_recv() {
                Ok(more) => batch.extend(more),
                _ => break,
            }
        }
        // Split by count and by bytes, so that every message fits the p2p limit (a transaction
        // is at most 256 KiB, far below it).
        let mut start = 0;
        while start < batch.len() {
            let mut end = start;
            let mut bytes = 16;
            while end < batch.len() && end - start < GOSSIP_BATCH_MAX {
                let size = batch[end].encode_size();
                if end > start && bytes + size > MESSAGE_BYTES_MAX as usize {
                    break;
                }
                bytes += size;
                end += 1;
            }
            let mut message = Vec::with_capacity(bytes);
            kessai_types::codec::write_seq(&batch[start..end], &mut message);
            sender.send(Recipients::All, message, false);
            start = end;
        }
    }
}

async fn gossip_in<E, R, B, T>(
    mut receiver: R,
    mut blocker: B,
    store: Store<E>,
    mempool: Mempool,
    strategy: T,
) where
    E: commonware_storage::Context + Spawner,
    R: Receiver<PublicKey = ed25519::PublicKey>,
    B: Blocker<PublicKey = ed25519::PublicKey>,
    T: Strategy,
{
    while let Ok((peer, message)) = receiver.recv().await {
        let mut bytes = message;
        let decoded: Result<Vec<Transaction>, _> =
            kessai_types::codec::read_seq(&mut bytes, GOSSIP_BATCH_MAX);
        let transactions = match decoded {
            Ok(transactions) if bytes.remaining() == 0 => transactions,
            _ => {
                warn!(?peer, "malformed transaction gossip; blocking peer");
                blocker.block(peer);
                continue;
            }
        };
        let verified = verify_transactions(transactions, &strategy);
        let results = admit(&mempool, &store, verified).await;
        let bad = results
            .iter()
            .filter(|r| matches!(r, Err(AdmissionError::BadSignature)))
            .count();
        if bad > 0 {
            warn!(
                ?peer,
                bad, "gossip carried transactions with bad signatures"
            );
        }
    }
}
