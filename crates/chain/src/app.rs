//! What the validator builds and accepts as a block: the consensus application.

use crate::{
    block::{BLOCK_BYTES_MAX, Block},
    mempool::Mempool,
    store::Store,
};
use commonware_codec::EncodeSize;
use commonware_consensus::{Application, marshal::ancestry::Ancestry, simplex::types::Context};
use commonware_cryptography::{Digested, Digestible, ed25519, sha256::Digest};
use commonware_parallel::Strategy;
use commonware_runtime::{Clock, Spawner};
use futures::StreamExt;
use kessai_types::verify_transactions;
use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing::{debug, warn};

/// The signing scheme of validators: ed25519, one vote per validator.
pub type Scheme = commonware_consensus::simplex::scheme::ed25519::Scheme;

/// Limits and pacing of block production.
#[derive(Clone, Copy, Debug)]
pub struct BlockRules {
    /// Transactions per block (the genesis parameter `block_transactions_max`).
    pub transactions_max: usize,
    /// Encoded bytes per block, at most [`BLOCK_BYTES_MAX`].
    pub bytes_max: usize,
    /// A proposer waits this long after its parent's timestamp, to fill the block.
    pub interval: Duration,
    /// How far ahead of a validator's clock a block's timestamp may be before it waits.
    pub clock_skew: Duration,
}

impl Default for BlockRules {
    fn default() -> Self {
        BlockRules {
            transactions_max: 20_000,
            bytes_max: BLOCK_BYTES_MAX,
            interval: Duration::from_millis(100),
            clock_skew: Duration::from_millis(500),
        }
    }
}

/// The consensus application of a validator.
pub struct App<E: commonware_storage::Context + Spawner, T: Strategy + Clone> {
    pub store: Store<E>,
    pub mempool: Mempool,
    pub strategy: T,
    pub rules: BlockRules,
}

impl<E: commonware_storage::Context + Spawner, T: Strategy + Clone> Clone for App<E, T> {
    fn clone(&self) -> Self {
        App {
            store: self.store.clone(),
            mempool: self.mempool.clone(),
            strategy: self.strategy.clone(),
            rules: self.rules,
        }
    }
}

fn millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as u64)
        .unwrap_or(0)
}

/// Header bytes of a block beside its transactions (and the sequence length prefix).
const HEADER_BYTES: usize = 32 + 3 * 10 + 32 + 5;

impl<E, T> App<E, T>
where
    E: commonware_storage::Context + Spawner,
    T: Strategy + Clone,
{
    /// Why `block` is invalid on `parent`, or `None`. Waits for what may still arrive: the local
    /// clock reaching the block's time, and local execution reaching its attested state.
    async fn check(&self, clock: &E, block: &Block, parent: &Block) -> Option<String> {
        if block.height != parent.height + 1 {
            return Some(format!(
                "height {} on parent {}",
                block.height, parent.height
            ));
        }
        if block.time_ms < parent.time_ms {
            return Some("timestamp before the parent's".into());
        }
        let skew = self.rules.clock_skew.as_millis() as u64;
        let now = millis(clock.current());
        if block.time_ms > now + skew {
            clock
                .sleep(Duration::from_millis(block.time_ms - now - skew))
                .await;
        }
        if block.transactions.len() > self.rules.transactions_max {
            return Some(format!("{} transactions", block.transactions.len()));
        }
        if block.encode_size() > self.rules.bytes_max {
            return Some(format!("{} bytes", block.encode_size()));
        }
        if block.state_height < parent.state_height || block.state_height >= block.height {
            return Some(format!("attests state at height {}", block.state_height));
        }
        self.store.wait_for(block.state_height).await;
        if self.store.root_at(block.state_height).await != Some(block.state_root) {
            return Some(format!(
                "state root at height {} differs from this validator's",
                block.state_height
            ));
        }
        // Signatures are checked once per node: those of transactions admitted here, exactly as
        // they are in the block (endorsements included), already were.
        let unchecked: Vec<_> = block
            .transactions
            .iter()
            .filter(|transaction| !self.mempool.holds(&transaction.body.id(), transaction))
            .cloned()
            .collect();
        let verified = verify_transactions(unchecked, &self.strategy);
        if let Some(bad) = verified.iter().find(|v| !v.signatures_valid) {
            return Some(format!(
                "transaction {} has a bad signature",
                bad.id.to_hex()
            ));
        }
        None
    }
}

impl<E, T> Application<E> for App<E, T>
where
    E: commonware_storage::Context + Spawner + Clock,
    T: Strategy + Clone,
{
    type SigningScheme = Scheme;
    type Context = Context<Digest, ed25519::PublicKey>;
    type Block = Block;
    type Input = ();

    async fn propose(
        &mut self,
        (clock, _context): (E, Self::Context),
        mut ancestry: impl Ancestry<Block>,
        _input: (),
    ) -> Option<Digested<Block>> {
        let parent = ancestry.next().await?;
        let parent = parent.inner().clone();
        // Transactions of ancestors not yet applied are still in the mempool: skip them.
        let applied = self.store.applied();
        let mut exclude = HashSet::new();
        let mut ancestor = Some(parent.clone());
        while let Some(block) = ancestor {
            if block.height <= applied.height {
                break;
            }
            exclude.extend(block.transactions.iter().map(|t| t.body.id()));
            ancestor = ancestry.next().await.map(|b| b.inner().clone());
        }
        let earliest = parent.time_ms + self.rules.interval.as_millis() as u64;
        let now = millis(clock.current());
        if now < earliest {
            clock.sleep(Duration::from_millis(earliest - now)).await;
        }
        let time_ms = millis(clock.current()).max(parent.time_ms);
        let (state_height, state_root) =
            if applied.height >= parent.state_height && applied.height <= parent.height {
                (applied.height, applied.state_root)
            } else {
                (parent.state_height, parent.state_root)
            };
        let height = parent.height + 1;
        let transactions = self.mempool.select(
            self.rules.transactions_max,
            self.rules.bytes_max - HEADER_BYTES,
            &exclude,
            height,
            time_ms,
        );
        let block = Block {
            parent: parent.digest(),
            height,
            time_ms,
            state_height,
            state_root,
            transactions,
        };
        debug!(height, transactions = block.transactions.len(), "proposing");
        let digest = block.digest();
        Some(Digested::precomputed(block, digest))
    }

    async fn verify(
        &mut self,
        (clock, _context): (E, Self::Context),
        mut ancestry: impl Ancestry<Block>,
    ) -> bool {
        let (Some(block), Some(parent)) = (ancestry.next().await, ancestry.next().await) else {
            return false;
        };
        match self.check(&clock, block.inner(), parent.inner()).await {
            None => true,
            Some(reason) => {
                warn!(height = block.inner().height, reason, "refusing block");
                false
            }
        }
    }
}
