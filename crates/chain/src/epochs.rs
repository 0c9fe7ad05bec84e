//! Epochs: one Simplex engine per epoch, run by the validators the finalized state names.
//!
//! Governance names the next epoch's validators in the ledger (`SetValidators`); after the last
//! block of an epoch, the state machine fixes that set (or carries the current one over). When
//! the executor has applied that block, it starts the next epoch's engine (its own subchannels,
//! its own journal partition, the epoch's last block as its floor), stops the old engine, and
//! only then acknowledges the block. A restarted node finds its epoch from the height it has
//! applied, so the switch survives a crash at any point.

use crate::{
    app::{App, Scheme},
    block::Block,
    engine::Timeouts,
};
use commonware_consensus::{
    marshal::standard::Inline,
    simplex::{
        self,
        config::{ForwardPolicy, SkipBudget, SkipPolicy},
        elector::RoundRobin,
    },
    types::{Epoch, Epocher as _, FixedEpocher, Height, ViewDelta},
};
use commonware_cryptography::{
    certificate::{Provider, Scoped},
    ed25519,
    sha256::{Digest, Sha256},
};
use commonware_p2p::{Blocker, Sender, utils::mux::MuxHandle};
use commonware_parallel::Strategy;
use commonware_runtime::{Clock, Handle, Metrics, Spawner, Storage, buffer::paged::CacheRef};
use commonware_utils::{NZDuration, NZUsize};
use kessai_types::PublicKey;
use rand_core::CryptoRng;
use std::{
    collections::BTreeMap,
    sync::{Arc, RwLock},
    time::Duration,
};
use tracing::{info, warn};

/// The consensus scheme of each epoch this node knows: marshal verifies certificates with it.
#[derive(Clone, Default)]
pub struct EpochSchemes(Arc<RwLock<BTreeMap<Epoch, Scoped<Scheme>>>>);

/// Epochs whose schemes are kept: the active one and the one before, whose last certificates
/// may still arrive.
const EPOCHS_KEPT: u64 = 2;

impl Provider for EpochSchemes {
    type Scope = Epoch;
    type Scheme = Scheme;

    fn scoped(&self, epoch: Epoch) -> Option<Scoped<Scheme>> {
        self.0.read().expect("never poisoned").get(&epoch).cloned()
    }
}

/// The block-ordering half of the application, shared by every epoch's engine.
pub type Automaton<E, T> = Inline<E, Scheme, App<E, T>, Block, FixedEpocher>;

/// The journal partition of one epoch's engine.
fn partition(prefix: &str, epoch: Epoch) -> String {
    format!("{prefix}-consensus-{}", epoch.get())
}

/// Remove the journal of a finished epoch's engine (if a crash left it, too).
async fn remove_journal<E: Storage>(context: &E, prefix: &str, epoch: Epoch) {
    let name = partition(prefix, epoch);
    match context.remove(&name, None).await {
        Ok(()) | Err(commonware_runtime::Error::PartitionMissing(_)) => {}
        Err(error) => warn!(%error, partition = name, "cannot remove a past epoch's journal"),
    }
}

/// Why a node cannot enter an epoch: it is shutting down.
#[derive(Debug, thiserror::Error)]
#[error("the consensus channels are closed")]
pub struct ChannelsClosed;

/// Starts and stops the per-epoch engines.
pub struct Epochs<E, S, B, T>
where
    E: Clock + CryptoRng + Spawner + Storage + Metrics + commonware_storage::Context,
    S: Sender<PublicKey = ed25519::PublicKey>,
    T: Strategy + Clone,
{
    pub context: E,
    pub epocher: FixedEpocher,
    pub schemes: EpochSchemes,
    /// `None` for an observer: it never votes, whatever the validator set.
    pub signer: Option<ed25519::PrivateKey>,
    pub namespace: Vec<u8>,
    pub votes: MuxHandle<S>,
    pub certificates: MuxHandle<S>,
    pub resolver: MuxHandle<S>,
    pub automaton: Automaton<E, T>,
    pub blocker: B,
    pub strategy: T,
    pub timeouts: Timeouts,
    pub prefix: String,
    pub page_cache: CacheRef,
    pub active: Option<(Epoch, Handle<()>)>,
}

impl<E, S, B, T> Epochs<E, S, B, T>
where
    E: Clock + CryptoRng + Spawner + Storage + Metrics + commonware_storage::Context,
    S: Sender<PublicKey = ed25519::PublicKey>,
    B: Blocker<PublicKey = ed25519::PublicKey>,
    T: Strategy + Clone,
{
    /// The epoch whose engine runs.
    pub fn active(&self) -> Epoch {
        self.active
            .as_ref()
            .map_or(Epoch::zero(), |(epoch, _)| *epoch)
    }

    /// Whether `height` is the last block of the active epoch.
    pub fn ends_active(&self, height: u64) -> bool {
        self.epocher.last(self.active()) == Some(Height::new(height))
    }

    /// Remember `epoch`'s validators. Returns the epoch's scheme, and whether this node votes
    /// in it (it is one of the validators and not an observer).
    pub fn know(&self, epoch: Epoch, validators: &[PublicKey]) -> (Scheme, bool) {
        let set = crate::validator_set(validators.iter().map(|key| key.ed25519().clone()));
        let signer = self
            .signer
            .as_ref()
            .and_then(|key| Scheme::signer(&self.namespace, set.clone(), key.clone()));
        let voting = signer.is_some();
        let scheme = signer.unwrap_or_else(|| Scheme::verifier(&self.namespace, set));
        // Always a full scope, as Commonware's `ConstantProvider` gives: marshal reads the
        // participant set from it to check notarized blocks, and a verifier cannot sign anyway.
        let mut schemes = self.schemes.0.write().expect("never poisoned");
        schemes.insert(epoch, Scoped::scheme(Arc::new(scheme.clone())));
        let oldest = epoch.get().saturating_sub(EPOCHS_KEPT - 1);
        schemes.retain(|known, _| known.get() >= oldest);
        (scheme, voting)
    }

    /// Start `epoch`'s engine on `validators`, from `floor` (the genesis block, or the last block
    /// of the epoch before), then stop the previous epoch's engine and remove its journal.
    pub async fn enter(
        &mut self,
        epoch: Epoch,
        floor: Digest,
        validators: &[PublicKey],
    ) -> Result<(), ChannelsClosed> {
        let (scheme, voting) = self.know(epoch, validators);
        let timeouts = self.timeouts;
        let engine = simplex::Engine::new(
            self.context.child("engine").with_attribute("epoch", epoch),
            simplex::Config {
                scheme,
                elector: RoundRobin::<Sha256>::default(),
                blocker: self.blocker.clone(),
                automaton: self.automaton.clone(),
                relay: self.automaton.clone(),
                reporter: self.automaton.clone(),
                track_historical_votes: false,
                strategy: self.strategy.clone(),
                partition: partition(&self.prefix, epoch),
                mailbox_size: NZUsize!(1024),
                epoch,
                floor: simplex::config::Floor::Genesis(floor),
                replay_buffer: NZUsize!(1 << 20),
                write_buffer: NZUsize!(1 << 20),
                page_cache: self.page_cache.clone(),
                leader_timeout: timeouts.leader,
                certification_timeout: timeouts.certification,
                timeout_retry: timeouts.retry,
                view_retention: ViewDelta::new(10),
                skip: SkipPolicy::Enabled {
                    timeout: timeouts.skip,
                    budget: SkipBudget::Participants,
                },
                fetch_timeout: NZDuration!(Duration::from_secs(1)),
                fetch_retry_delay: Duration::from_millis(100),
                forward: ForwardPolicy::Disabled,
            },
        );
        let subchannel = epoch.get();
        let votes = self
            .votes
            .register(subchannel)
            .await
            .map_err(|_| ChannelsClosed)?;
        let certificates = self
            .certificates
            .register(subchannel)
            .await
            .map_err(|_| ChannelsClosed)?;
        let resolver = self
            .resolver
            .register(subchannel)
            .await
            .map_err(|_| ChannelsClosed)?;
        let handle = engine.start(votes, certificates, resolver);
        info!(
            epoch = epoch.get(),
            validators = validators.len(),
            voting,
            "entered epoch"
        );
        match self.active.replace((epoch, handle)) {
            Some((old, handle)) => {
                handle.abort();
                let _ = handle.await;
                remove_journal(&self.context, &self.prefix, old).await;
            }
            // Starting up: a crash may have come between the switch and the removal.
            None => {
                if let Some(previous) = epoch.previous() {
                    remove_journal(&self.context, &self.prefix, previous).await;
                }
            }
        }
        Ok(())
    }
}
