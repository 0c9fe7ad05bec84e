//! The mempool: signed transactions admitted once, waiting for a block.
//!
//! Admission checks what can be checked without a block: every signature (in batches, once per
//! node; execution trusts the verdict), the network, the expiry against the finalized chain, and
//! duplicates of a (submitter, unique id) already waiting. It is bounded in count and bytes; when
//! full it refuses with a retry hint instead of growing. A transaction leaves when a finalized
//! block carries it or when it expires, never because a proposal that carried it failed: nothing
//! admitted is lost while it is still valid.

use kessai_types::{Expiry, PartyId, Transaction, TxId, UniqueId, VerifiedTransaction};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// Why the mempool refused a transaction. The ledger's own rejections come later, at execution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AdmissionError {
    #[error("a signature does not verify")]
    BadSignature,
    #[error("the transaction is for network {found}, this is network {expected}")]
    WrongNetwork { expected: u32, found: u32 },
    #[error("the transaction has expired")]
    Expired,
    #[error("the expiry is beyond the ledger's horizon")]
    ExpiryTooFar,
    #[error("this submitter's unique id is already waiting or final")]
    Duplicate,
    #[error("the mempool is full; retry in {retry_after_ms} ms")]
    Busy { retry_after_ms: u64 },
}

/// Limits of one node's mempool.
#[derive(Clone, Copy, Debug)]
pub struct MempoolLimits {
    pub transactions_max: usize,
    pub bytes_max: usize,
}

impl Default for MempoolLimits {
    fn default() -> Self {
        MempoolLimits {
            transactions_max: 200_000,
            bytes_max: 256 * 1024 * 1024,
        }
    }
}

/// What admission compares expiries against: the last finalized block and the ledger's horizons.
#[derive(Clone, Copy, Debug, Default)]
pub struct ChainView {
    pub network: u32,
    pub height: u64,
    pub time_ms: u64,
    pub expiry_horizon_blocks: u64,
    pub expiry_horizon_ms: u64,
}

struct Entry {
    transaction: Transaction,
    bytes: usize,
    sequence: u64,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<TxId, Entry>,
    /// Admission order, for fair block building.
    order: BTreeMap<u64, TxId>,
    waiting: HashSet<(PartyId, UniqueId)>,
    bytes: usize,
    next_sequence: u64,
    chain: ChainView,
}

/// A bounded, shared mempool.
#[derive(Clone)]
pub struct Mempool {
    inner: Arc<Mutex<Inner>>,
    limits: MempoolLimits,
}

fn expiry_error(expiry: Expiry, chain: &ChainView) -> Option<AdmissionError> {
    // The next block is at least one height later and no earlier in time.
    let next_height = chain.height + 1;
    match expiry {
        Expiry::Height(height) if height < next_height => Some(AdmissionError::Expired),
        Expiry::Height(height) if height - next_height > chain.expiry_horizon_blocks => {
            Some(AdmissionError::ExpiryTooFar)
        }
        Expiry::TimeMs(time) if time < chain.time_ms => Some(AdmissionError::Expired),
        Expiry::TimeMs(time) if time - chain.time_ms > chain.expiry_horizon_ms => {
            Some(AdmissionError::ExpiryTooFar)
        }
        _ => None,
    }
}

fn expired(expiry: Expiry, chain: &ChainView) -> bool {
    matches!(expiry_error(expiry, chain), Some(AdmissionError::Expired))
}

impl Mempool {
    pub fn new(limits: MempoolLimits, chain: ChainView) -> Self {
        let inner = Inner {
            chain,
            ..Inner::default()
        };
        Mempool {
            inner: Arc::new(Mutex::new(inner)),
            limits,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn limits(&self) -> MempoolLimits {
        self.limits
    }

    /// Admit transactions whose signatures were checked by [`kessai_types::verify_transactions`].
    /// `is_final` says whether the ledger already holds a (submitter, unique id).
    pub fn admit(
        &self,
        transactions: Vec<VerifiedTransaction>,
        is_final: impl Fn(PartyId, UniqueId) -> bool,
    ) -> Vec<Result<TxId, AdmissionError>> {
        let mut inner = self.lock();
        let chain = inner.chain;
        transactions
            .into_iter()
            .map(|verified| {
                let body = &verified.transaction.body;
                if !verified.signatures_valid {
                    return Err(AdmissionError::BadSignature);
                }
                if body.network != chain.network {
                    return Err(AdmissionError::WrongNetwork {
                        expected: chain.network,
                        found: body.network,
                    });
                }
                if let Some(error) = expiry_error(body.expiry, &chain) {
                    return Err(error);
                }
                let replay = (body.submitter, body.unique_id);
                if inner.entries.contains_key(&verified.id)
                    || inner.waiting.contains(&replay)
                    || is_final(replay.0, replay.1)
                {
                    return Err(AdmissionError::Duplicate);
                }
                let bytes = commonware_codec::EncodeSize::encode_size(&verified.transaction);
                if inner.entries.len() >= self.limits.transactions_max
                    || inner.bytes + bytes > self.limits.bytes_max
                {
                    return Err(AdmissionError::Busy {
                        retry_after_ms: 500,
                    });
                }
                let sequence = inner.next_sequence;
                inner.next_sequence += 1;
                inner.order.insert(sequence, verified.id);
                inner.waiting.insert(replay);
                inner.bytes += bytes;
                inner.entries.insert(
                    verified.id,
                    Entry {
                        transaction: verified.transaction,
                        bytes,
                        sequence,
                    },
                );
                Ok(verified.id)
            })
            .collect()
    }

    /// Whether a transaction with this id is waiting here.
    pub fn contains(&self, id: &TxId) -> bool {
        self.lock().entries.contains_key(id)
    }

    /// Whether this node admitted exactly `transaction`, signatures included, and so has checked
    /// them. The id covers the body only: the same body with other endorsements is another
    /// transaction whose signatures this node has not seen.
    pub fn holds(&self, id: &TxId, transaction: &Transaction) -> bool {
        self.lock()
            .entries
            .get(id)
            .is_some_and(|entry| entry.transaction == *transaction)
    }

    /// Transactions for the next block, oldest first, skipping `exclude` (those already in
    /// unfinalized ancestors) and any that expire before `height`/`time_ms`.
    pub fn select(
        &self,
        count_max: usize,
        bytes_max: usize,
        exclude: &HashSet<TxId>,
        height: u64,
        time_ms: u64,
    ) -> Vec<Transaction> {
        let inner = self.lock();
        let at = ChainView {
            height: height.saturating_sub(1),
            time_ms,
            ..inner.chain
        };
        let mut selected = Vec::new();
        let mut bytes = 0;
        for id in inner.order.values() {
            if selected.len() == count_max {
                break;
            }
            let entry = &inner.entries[id];
            if exclude.contains(id) || expired(entry.transaction.body.expiry, &at) {
                continue;
            }
            if bytes + entry.bytes > bytes_max {
                break;
            }
            bytes += entry.bytes;
            selected.push(entry.transaction.clone());
        }
        selected
    }

    /// A block was finalized: drop what it carried and what has now expired.
    pub fn finalized(&self, ids: impl IntoIterator<Item = TxId>, chain: ChainView) {
        let mut inner = self.lock();
        inner.chain = chain;
        for id in ids {
            inner.remove(&id);
        }
        let stale: Vec<TxId> = inner
            .entries
            .iter()
            .filter(|(_, entry)| expired(entry.transaction.body.expiry, &chain))
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            inner.remove(&id);
        }
    }

    pub fn chain(&self) -> ChainView {
        self.lock().chain
    }

    /// Waiting transactions and their encoded bytes.
    pub fn size(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.entries.len(), inner.bytes)
    }
}

impl Inner {
    fn remove(&mut self, id: &TxId) {
        if let Some(entry) = self.entries.remove(id) {
            self.order.remove(&entry.sequence);
            let body = &entry.transaction.body;
            self.waiting.remove(&(body.submitter, body.unique_id));
            self.bytes -= entry.bytes;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_parallel::Sequential;
    use kessai_types::verify_transactions;

    fn chain() -> ChainView {
        ChainView {
            network: 1,
            height: 10,
            time_ms: 1_000_000,
            expiry_horizon_blocks: 100,
            expiry_horizon_ms: 60_000,
        }
    }

    fn transactions(count: usize) -> Vec<Transaction> {
        let workload = kessai_state::Workload::new(16, 4, 1_000_000);
        workload.transfers(7, count, 1_030_000, 0)
    }

    fn verified(transactions: Vec<Transaction>) -> Vec<VerifiedTransaction> {
        verify_transactions(transactions, &Sequential)
    }

    /// A transaction altered after signing, passed as if its signatures held, to reach the
    /// checks after the signature check.
    fn trusted(transaction: Transaction) -> Vec<VerifiedTransaction> {
        vec![VerifiedTransaction {
            id: transaction.body.id(),
            transaction,
            signatures_valid: true,
        }]
    }

    #[test]
    fn admits_selects_and_forgets_on_finality() {
        let mempool = Mempool::new(MempoolLimits::default(), chain());
        let txs = transactions(5);
        let results = mempool.admit(verified(txs.clone()), |_, _| false);
        assert!(results.iter().all(Result::is_ok));
        let ids: Vec<TxId> = results.into_iter().map(Result::unwrap).collect();
        assert_eq!(mempool.size().0, 5);
        // Admission order, minus what an unfinalized ancestor already carries.
        let exclude: HashSet<TxId> = [ids[1]].into();
        let selected = mempool.select(3, usize::MAX, &exclude, 11, 1_000_100);
        let selected: Vec<TxId> = selected.iter().map(|t| t.body.id()).collect();
        assert_eq!(selected, vec![ids[0], ids[2], ids[3]]);
        // A byte limit stops the block before the transaction that would overflow it.
        let one = commonware_codec::EncodeSize::encode_size(&txs[0]);
        assert_eq!(mempool.select(10, one, &HashSet::new(), 11, 0).len(), 1);
        mempool.finalized(
            ids[..2].to_vec(),
            ChainView {
                height: 11,
                ..chain()
            },
        );
        assert_eq!(mempool.size().0, 3);
        assert!(!mempool.contains(&ids[0]) && mempool.contains(&ids[2]));
    }

    #[test]
    fn holds_only_the_exact_transaction_admitted() {
        let mempool = Mempool::new(MempoolLimits::default(), chain());
        let txs = transactions(1);
        let id = mempool.admit(verified(txs.clone()), |_, _| false)[0].unwrap();
        assert!(mempool.holds(&id, &txs[0]));
        // Same body, so same id, but other endorsements: a voter must check those signatures.
        let mut reendorsed = txs[0].clone();
        reendorsed
            .endorsements
            .push(reendorsed.endorsements[0].clone());
        assert_eq!(reendorsed.body.id(), id);
        assert!(!mempool.holds(&id, &reendorsed));
    }

    #[test]
    fn refuses_what_cannot_land() {
        let mempool = Mempool::new(MempoolLimits::default(), chain());
        let txs = transactions(1);
        // The same (submitter, unique id) twice, waiting or already final.
        assert!(mempool.admit(verified(txs.clone()), |_, _| false)[0].is_ok());
        assert_eq!(
            mempool.admit(verified(txs.clone()), |_, _| false)[0],
            Err(AdmissionError::Duplicate)
        );
        let fresh = Mempool::new(MempoolLimits::default(), chain());
        assert_eq!(
            fresh.admit(verified(txs.clone()), |_, _| true)[0],
            Err(AdmissionError::Duplicate)
        );
        // A bad signature, another network, a past or too distant expiry.
        let mut forged = verified(txs.clone());
        forged[0].signatures_valid = false;
        assert_eq!(
            fresh.admit(forged, |_, _| false)[0],
            Err(AdmissionError::BadSignature)
        );
        let mut other = txs[0].clone();
        other.body.network = 2;
        assert!(matches!(
            fresh.admit(trusted(other), |_, _| false)[0],
            Err(AdmissionError::WrongNetwork {
                expected: 1,
                found: 2
            })
        ));
        for (expiry, error) in [
            (Expiry::TimeMs(999_999), AdmissionError::Expired),
            (Expiry::Height(10), AdmissionError::Expired),
            (Expiry::TimeMs(1_060_001), AdmissionError::ExpiryTooFar),
            (Expiry::Height(112), AdmissionError::ExpiryTooFar),
        ] {
            let mut stale = txs[0].clone();
            stale.body.expiry = expiry;
            assert_eq!(
                fresh.admit(trusted(stale), |_, _| false)[0],
                Err(error),
                "{expiry:?}"
            );
        }
        assert_eq!(fresh.size().0, 0, "nothing refused was admitted");
    }

    #[test]
    fn full_mempool_says_busy_and_keeps_what_it_has() {
        let limits = MempoolLimits {
            transactions_max: 3,
            bytes_max: usize::MAX,
        };
        let mempool = Mempool::new(limits, chain());
        let results = mempool.admit(verified(transactions(5)), |_, _| false);
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 3);
        assert!(
            matches!(results[4], Err(AdmissionError::Busy { retry_after_ms }) if retry_after_ms > 0)
        );
        assert_eq!(mempool.size().0, 3);
    }

    #[test]
    fn expired_transactions_leave_on_the_next_finalized_block() {
        let mempool = Mempool::new(MempoolLimits::default(), chain());
        assert!(
            mempool
                .admit(verified(transactions(2)), |_, _| false)
                .iter()
                .all(Result::is_ok)
        );
        mempool.finalized(
            [],
            ChainView {
                height: 11,
                time_ms: 1_030_001,
                ..chain()
            },
        );
        assert_eq!(mempool.size(), (0, 0));
    }
}
