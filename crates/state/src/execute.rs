//! Block execution: prefetched reads in, outcomes and one grouped write set out.
//!
//! The executor never does I/O. A driver (storage, or the in-memory ledger of the tests) first
//! fetches the keys [`read_set`] names into a [`Snapshot`], then calls [`execute`]. If execution
//! touches a key the snapshot lacks, it returns the missing keys instead of guessing, and the
//! driver fetches them and executes again; the outcome depends only on the values, never on what
//! happened to be prefetched.

use crate::{
    key::{
        Bucket, Chain, ExpiryClock, ExpiryEntries, HEIGHT_BUCKET_BLOCKS, Parameters, ReplayRecord,
        StateKey, StateValue, TIME_BUCKET_MS,
    },
    modules,
};
use kessai_types::{
    Account, AccountId, Asset, AssetId, Balance, Expiry, Lien, Operation, Party, PartyId, Quantity,
    Rejection, RejectionCode, Role, TxId, UniqueId, VerifiedTransaction,
};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// The largest supply of any asset. Far beyond any real asset, it keeps every sum and difference
/// of balances exact in 128-bit arithmetic.
pub const SUPPLY_MAX: Quantity = 10u128.pow(30);

/// The most expired entry lists pruned in one block, so that pruning work per block is bounded;
/// what is left waits for the next block (an expired id cannot be replayed meanwhile: it is
/// rejected as expired).
pub const PRUNE_ENTRIES_PER_BLOCK_MAX: u32 = 64;
/// The most empty expiry buckets skipped in one block (after a long pause in block production).
pub const PRUNE_BUCKETS_PER_BLOCK_MAX: u32 = 256;
/// The most replay records pruned in one block (checked before each entry list, so one list of
/// at most a block's transactions may go beyond it).
pub const PRUNE_RECORDS_PER_BLOCK_MAX: usize = 50_000;

/// Values read from storage for one block: `None` records that a key is known to be absent.
#[derive(Default, Debug)]
pub struct Snapshot(HashMap<StateKey, Option<StateValue>>);

impl Snapshot {
    pub fn with_capacity(capacity: usize) -> Self {
        Snapshot(HashMap::with_capacity(capacity))
    }
    pub fn insert(&mut self, key: StateKey, value: Option<StateValue>) {
        self.0.insert(key, value);
    }
    pub fn get(&self, key: &StateKey) -> Option<&Option<StateValue>> {
        self.0.get(key)
    }
    pub fn contains(&self, key: &StateKey) -> bool {
        self.0.contains_key(key)
    }
}

/// A block as the state machine sees it: its position, its time (an input, never a clock
/// reading) and its transactions with their signatures already checked.
pub struct BlockInput<'a> {
    pub height: u64,
    pub time_ms: u64,
    pub transactions: &'a [VerifiedTransaction],
}

/// The outcome of one transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxOutcome {
    pub id: TxId,
    pub rejection: Option<Rejection>,
}
kessai_types::codec_struct!(TxOutcome {
    id: TxId,
    rejection: Option<Rejection>,
});

/// Writes in key order: `None` deletes.
pub type WriteSet = BTreeMap<StateKey, Option<StateValue>>;

/// What applying a block produced.
#[derive(Debug)]
pub struct BlockEffects {
    pub outcomes: Vec<TxOutcome>,
    pub writes: WriteSet,
}

/// Why execution of a transaction stopped early.
pub(crate) enum Halt {
    Reject(Rejection),
    /// A key was not prefetched; it has been recorded.
    Missing,
}

impl From<RejectionCode> for Halt {
    fn from(code: RejectionCode) -> Self {
        Halt::Reject(code.into())
    }
}

/// A valuation that does not fit in 128 bits (or divides by zero) rejects the transaction.
impl From<kessai_types::amount::AmountError> for Halt {
    fn from(_: kessai_types::amount::AmountError) -> Self {
        RejectionCode::Overflow.into()
    }
}

pub(crate) type Step<T> = Result<T, Halt>;

/// Reads and writes of one block, layered over the snapshot.
struct BlockState<'a> {
    snapshot: &'a Snapshot,
    writes: WriteSet,
    missing: BTreeSet<StateKey>,
}

impl<'a> BlockState<'a> {
    fn read(&mut self, key: &StateKey) -> Step<Option<StateValue>> {
        self.peek(key).ok_or(Halt::Missing)
    }

    /// Like `read`, but a missing key is recorded and reported as `None` instead of halting.
    fn peek(&mut self, key: &StateKey) -> Option<Option<StateValue>> {
        if let Some(value) = self.writes.get(key) {
            return Some(value.clone());
        }
        let value = self.snapshot.get(key).cloned();
        if value.is_none() {
            self.missing.insert(*key);
        }
        value
    }
}

/// The view one transaction executes against: its own writes over the block's.
pub(crate) struct Ctx<'s, 'a> {
    block: &'s mut BlockState<'a>,
    writes: WriteSet,
    pub parameters: Parameters,
    pub height: u64,
    pub time_ms: u64,
    pub tx_id: TxId,
    pub submitter: PartyId,
    /// The parties whose registered keys signed this transaction.
    pub signers: Vec<PartyId>,
    /// A rejection was for a signature the transaction lacks: anyone who saw the body could
    /// cause it (by stripping a co-signer), so it must not burn the unique id.
    missing_signature: std::cell::Cell<bool>,
}

macro_rules! typed_read {
    ($name:ident, $variant:ident, $id:ty, $record:ty, $missing:expr) => {
        pub(crate) fn $name(&mut self, id: $id) -> Step<$record> {
            match self.read(&StateKey::$variant(id))? {
                Some(StateValue::$variant(record)) => Ok(record),
                None => Err($missing.into()),
                Some(other) => panic!(
                    "corrupt state: {:?} holds {other:?}",
                    StateKey::$variant(id)
                ),
            }
        }
    };
}

impl<'s, 'a> Ctx<'s, 'a> {
    /// A context for work the block itself does (the mark-to-market walk): no transaction, no
    /// signers. Its writes land only through [`Ctx::commit`].
    fn system(
        block: &'s mut BlockState<'a>,
        parameters: Parameters,
        input: &BlockInput<'_>,
    ) -> Self {
        Ctx {
            block,
            writes: WriteSet::new(),
            parameters,
            height: input.height,
            time_ms: input.time_ms,
            tx_id: kessai_types::Hash32([0; 32]),
            submitter: PartyId::new("SYSTEM").expect("a valid code"),
            signers: Vec::new(),
            missing_signature: std::cell::Cell::new(false),
        }
    }

    /// Move this context's writes into the block's.
    fn commit(self) {
        self.block.writes.extend(self.writes);
    }
}

impl Ctx<'_, '_> {
    /// The writes so far, to return to with [`Ctx::rollback`] if what follows fails.
    pub(crate) fn checkpoint(&self) -> WriteSet {
        self.writes.clone()
    }

    pub(crate) fn rollback(&mut self, checkpoint: WriteSet) {
        self.writes = checkpoint;
    }

    /// Move the writes so far into the block's: a later rollback no longer undoes them. Only
    /// for the block's own work, never a transaction's (which must stay all or nothing).
    pub(crate) fn flush(&mut self) {
        self.block.writes.extend(std::mem::take(&mut self.writes));
    }

    /// Read every key of `keys` that is not at hand, so that all the missing ones are fetched in
    /// one round rather than one round each.
    pub(crate) fn touch(&mut self, keys: impl IntoIterator<Item = StateKey>) -> Step<()> {
        let mut complete = true;
        for key in keys {
            if !self.writes.contains_key(&key) && self.block.peek(&key).is_none() {
                complete = false;
            }
        }
        if complete { Ok(()) } else { Err(Halt::Missing) }
    }

    pub(crate) fn read(&mut self, key: &StateKey) -> Step<Option<StateValue>> {
        match self.writes.get(key) {
            Some(value) => Ok(value.clone()),
            None => self.block.read(key),
        }
    }

    pub(crate) fn write(&mut self, key: StateKey, value: StateValue) {
        self.writes.insert(key, Some(value));
    }

    pub(crate) fn delete(&mut self, key: StateKey) {
        self.writes.insert(key, None);
    }

    typed_read!(party, Party, PartyId, Party, RejectionCode::UnknownParty);
    typed_read!(
        account,
        Account,
        AccountId,
        Account,
        RejectionCode::UnknownAccount
    );
    typed_read!(asset, Asset, AssetId, Asset, RejectionCode::UnknownAsset);

    pub(crate) fn exists(&mut self, key: StateKey) -> Step<bool> {
        Ok(self.read(&key)?.is_some())
    }

    pub(crate) fn balance(&mut self, account: AccountId, asset: AssetId) -> Step<Balance> {
        match self.read(&StateKey::Balance(account, asset))? {
            Some(StateValue::Balance(balance)) => Ok(balance),
            None => Ok(Balance::default()),
            Some(other) => panic!("corrupt state: balance holds {other:?}"),
        }
    }

    pub(crate) fn put_balance(&mut self, account: AccountId, asset: AssetId, balance: Balance) {
        let key = StateKey::Balance(account, asset);
        if balance == Balance::default() {
            self.delete(key);
        } else {
            self.write(key, StateValue::Balance(balance));
        }
    }

    pub(crate) fn lien(&mut self, account: AccountId, asset: AssetId, lien: TxId) -> Step<Lien> {
        match self.read(&StateKey::Lien(account, asset, lien))? {
            Some(StateValue::Lien(lien)) => Ok(lien),
            None => Err(RejectionCode::UnknownLien.into()),
            Some(other) => panic!("corrupt state: lien holds {other:?}"),
        }
    }

    pub(crate) fn signed_by(&self, party: PartyId) -> bool {
        self.signers.contains(&party)
    }

    pub(crate) fn require_signer(&self, party: PartyId) -> Step<()> {
        if self.signed_by(party) {
            Ok(())
        } else {
            self.missing_signature.set(true);
            Err(RejectionCode::NotAuthorized.into())
        }
    }

    /// The submitter signed (always true after admission) and holds `role`.
    pub(crate) fn require_submitter_role(&mut self, role: Role) -> Step<()> {
        let submitter = self.party(self.submitter)?;
        if submitter.roles.contains(role) {
            Ok(())
        } else {
            Err(RejectionCode::NotAuthorized.into())
        }
    }

    /// At least the governance threshold of distinct governors signed.
    pub(crate) fn require_governance(&mut self) -> Step<()> {
        let mut governors = 0u32;
        for signer in self.signers.clone() {
            if self.party(signer)?.roles.contains(Role::NetworkGovernor) {
                governors += 1;
            }
        }
        if governors >= self.parameters.governance_threshold {
            Ok(())
        } else {
            self.missing_signature.set(true);
            Err(RejectionCode::NotAuthorized.into())
        }
    }
}

fn bucket_of(expiry: Expiry) -> Bucket {
    match expiry {
        Expiry::Height(height) => Bucket {
            clock: ExpiryClock::Height,
            index: height / HEIGHT_BUCKET_BLOCKS,
        },
        Expiry::TimeMs(time_ms) => Bucket {
            clock: ExpiryClock::Time,
            index: time_ms / TIME_BUCKET_MS,
        },
    }
}

/// The keys a transaction reads whatever the state holds.
fn static_keys(transaction: &VerifiedTransaction, keys: &mut Vec<StateKey>) {
    let body = &transaction.transaction.body;
    keys.push(StateKey::Replay(body.submitter, body.unique_id));
    keys.push(StateKey::ExpiryBucket(bucket_of(body.expiry)));
    keys.push(StateKey::Party(body.submitter));
    for endorsement in &transaction.transaction.endorsements {
        keys.push(StateKey::Party(endorsement.signer));
    }
    let leg = |keys: &mut Vec<StateKey>, leg: &kessai_types::Leg| {
        keys.extend([
            StateKey::Account(leg.source),
            StateKey::Account(leg.target),
            StateKey::Asset(leg.asset),
            StateKey::Balance(leg.source, leg.asset),
            StateKey::Balance(leg.target, leg.asset),
        ]);
    };
    match &body.operation {
        Operation::RegisterParty(op) => keys.push(StateKey::Party(op.party)),
        Operation::GrantRole(op) | Operation::RevokeRole(op) => {
            keys.push(StateKey::Party(op.party))
        }
        Operation::AttestKyc(op) => keys.push(StateKey::Party(op.party)),
        Operation::OpenAccount(op) => {
            keys.extend([StateKey::Account(op.account), StateKey::Party(op.owner)])
        }
        Operation::DefineAsset(op) => keys.push(StateKey::Asset(op.asset)),
        Operation::Issue(op) | Operation::Redeem(op) => keys.extend([
            StateKey::Asset(op.asset),
            StateKey::Account(op.account),
            StateKey::Balance(op.account, op.asset),
        ]),
        Operation::Transfer(op) => leg(keys, op),
        Operation::Bundle(bundle) => bundle.legs.iter().for_each(|op| leg(keys, op)),
        Operation::Freeze(target) | Operation::Unfreeze(target) => keys.push(match target {
            kessai_types::FreezeTarget::Account(account) => StateKey::Account(*account),
            kessai_types::FreezeTarget::Asset(asset) => StateKey::Asset(*asset),
        }),
        Operation::Encumber(op) => keys.extend([
            StateKey::Account(op.account),
            StateKey::Asset(op.asset),
            StateKey::Balance(op.account, op.asset),
            StateKey::Lien(op.account, op.asset, transaction.id),
            StateKey::Party(op.beneficiary),
        ]),
        // The set's key depends on the epoch, hence on the parameters: read on demand.
        Operation::SetValidators(_) => {}
        Operation::Release(op) => keys.extend([
            StateKey::Balance(op.account, op.asset),
            StateKey::Lien(op.account, op.asset, op.lien),
        ]),
        Operation::RegisterRepo(terms) => {
            modules::repo::terms_keys(terms, keys);
            keys.push(StateKey::Repo(transaction.id));
        }
        Operation::RepoAction(op) => keys.push(StateKey::Repo(op.contract)),
        Operation::SubstituteCollateral(op) => {
            keys.extend([StateKey::Repo(op.contract), StateKey::Asset(op.add)])
        }
        Operation::PublishPrices(op) => {
            keys.extend(op.prices.iter().map(|entry| StateKey::Asset(entry.asset)))
        }
    }
}

/// The keys `block` reads whatever the state holds, less those `snapshot` has. Fetch them, then
/// the [`owners_of`] the accounts among them, then [`execute`].
pub fn read_set(block: &BlockInput<'_>, snapshot: &Snapshot) -> Vec<StateKey> {
    let mut keys = vec![StateKey::Parameters, StateKey::Chain, StateKey::RepoBook];
    for transaction in block.transactions {
        static_keys(transaction, &mut keys);
    }
    // Fetch order does not matter: only deduplicate.
    let mut seen = HashSet::with_capacity(keys.len());
    keys.retain(|key| !snapshot.contains(key) && seen.insert(*key));
    keys
}

/// The owners of the accounts among `keys` (as fetched into `snapshot`) that `snapshot` lacks:
/// the parties a block reads through its accounts (real-name checks).
pub fn owners_of(keys: &[StateKey], snapshot: &Snapshot) -> Vec<StateKey> {
    let mut owners = HashSet::new();
    for key in keys {
        if let (StateKey::Account(_), Some(Some(StateValue::Account(account)))) =
            (key, snapshot.get(key))
        {
            let owner = StateKey::Party(account.owner);
            if !snapshot.contains(&owner) {
                owners.insert(owner);
            }
        }
    }
    owners.into_iter().collect()
}

/// Apply `block` to the state in `snapshot`. `Err` lists keys to fetch before executing again.
pub fn execute(block: &BlockInput<'_>, snapshot: &Snapshot) -> Result<BlockEffects, Vec<StateKey>> {
    let mut state = BlockState {
        snapshot,
        writes: WriteSet::new(),
        missing: BTreeSet::new(),
    };
    let missing = |state: BlockState<'_>| state.missing.into_iter().collect::<Vec<_>>();
    let (Ok(Some(StateValue::Parameters(parameters))), Ok(Some(StateValue::Chain(mut chain)))) = (
        state.read(&StateKey::Parameters),
        state.read(&StateKey::Chain),
    ) else {
        assert!(
            !state.missing.is_empty(),
            "state has no parameters or chain record: not initialized"
        );
        return Err(missing(state));
    };
    assert_eq!(
        block.height,
        chain.height + 1,
        "blocks apply in height order"
    );
    assert!(block.time_ms >= chain.time_ms, "block time went backwards");

    if prune_expired(&mut state, &mut chain, block).is_err() {
        return Err(missing(state));
    }
    // The mark-to-market in progress goes first, on the state the previous block left.
    let mut walk = Ctx::system(&mut state, parameters, block);
    let closing = block
        .transactions
        .iter()
        .filter(|transaction| modules::repo::may_close(&transaction.transaction.body.operation))
        .count() as u64;
    // Both run even if the first lacks keys, so that all are fetched in the same round.
    let prepared = modules::repo::prefetch_top_slots(&mut walk, closing);
    let walked = modules::repo::mark_walk(&mut walk);
    match (prepared, walked) {
        (Ok(()), Ok(())) => walk.commit(),
        (Err(Halt::Reject(rejection)), _) | (_, Err(Halt::Reject(rejection))) => {
            panic!("corrupt state: the repo book: {rejection:?}")
        }
        _ => return Err(missing(state)),
    }

    let mut outcomes = Vec::with_capacity(block.transactions.len());
    let mut expiring: BTreeMap<Bucket, Vec<(PartyId, UniqueId)>> = BTreeMap::new();
    for (index, transaction) in block.transactions.iter().enumerate() {
        let over_limit = index >= parameters.block_transactions_max as usize;
        let rejection = match apply_transaction(
            &mut state,
            &parameters,
            block,
            index as u32,
            transaction,
            over_limit,
        ) {
            Ok((rejection, remembered)) => {
                if remembered {
                    let body = &transaction.transaction.body;
                    expiring
                        .entry(bucket_of(body.expiry))
                        .or_default()
                        .push((body.submitter, body.unique_id));
                }
                rejection
            }
            // Keep going to collect every missing key in one pass.
            Err(Halt::Missing) => None,
            Err(Halt::Reject(_)) => unreachable!("rejections are outcomes"),
        };
        outcomes.push(TxOutcome {
            id: transaction.id,
            rejection,
        });
    }
    close_epoch(&mut state, &parameters, block.height);
    if !state.missing.is_empty() {
        return Err(missing(state));
    }

    for (bucket, entries) in expiring {
        let count = match state.read(&StateKey::ExpiryBucket(bucket)) {
            Ok(Some(StateValue::ExpiryBucket(count))) => count,
            Ok(None) => 0,
            Ok(Some(other)) => panic!("corrupt state: expiry bucket holds {other:?}"),
            Err(_) => return Err(missing(state)),
        };
        state.writes.insert(
            StateKey::ExpiryEntries(bucket, count),
            Some(StateValue::ExpiryEntries(ExpiryEntries(entries))),
        );
        state.writes.insert(
            StateKey::ExpiryBucket(bucket),
            Some(StateValue::ExpiryBucket(count + 1)),
        );
    }

    chain.height = block.height;
    chain.time_ms = block.time_ms;
    state
        .writes
        .insert(StateKey::Chain, Some(StateValue::Chain(chain)));
    crate::invariants::check_block(snapshot, &state.writes);
    Ok(BlockEffects {
        outcomes,
        writes: state.writes,
    })
}

/// After the last block of an epoch, the next epoch's validator set is fixed: the one governance
/// set during the epoch, or else the current one again. Both sets are peeked, so that missing
/// ones are fetched in the same round as the block's other keys.
fn close_epoch(state: &mut BlockState<'_>, parameters: &Parameters, height: u64) {
    if !parameters.is_epoch_end(height) {
        return;
    }
    let epoch = parameters.epoch_of(height);
    let next = StateKey::Validators(epoch + 1);
    let (Some(named), Some(current)) =
        (state.peek(&next), state.peek(&StateKey::Validators(epoch)))
    else {
        return;
    };
    if named.is_none() {
        let current =
            current.unwrap_or_else(|| panic!("corrupt state: no validator set for epoch {epoch}"));
        state.writes.insert(next, Some(current));
    }
}

/// Apply one transaction. Returns its rejection, if any, and whether its id is now remembered.
fn apply_transaction(
    state: &mut BlockState<'_>,
    parameters: &Parameters,
    block: &BlockInput<'_>,
    index: u32,
    transaction: &VerifiedTransaction,
    over_limit: bool,
) -> Step<(Option<Rejection>, bool)> {
    let body = &transaction.transaction.body;
    // Checks that do not burn the unique id: a forged or stale transaction must not block the
    // genuine one.
    let stateless = if !transaction.signatures_valid {
        Some(RejectionCode::BadSignature)
    } else if body.network != parameters.network {
        Some(RejectionCode::WrongNetwork)
    } else if over_limit {
        Some(RejectionCode::LimitExceeded)
    } else {
        match body.expiry {
            Expiry::Height(height) if height < block.height => Some(RejectionCode::Expired),
            Expiry::Height(height) if height - block.height > parameters.expiry_horizon_blocks => {
                Some(RejectionCode::ExpiryTooFar)
            }
            Expiry::TimeMs(time_ms) if time_ms < block.time_ms => Some(RejectionCode::Expired),
            Expiry::TimeMs(time_ms) if time_ms - block.time_ms > parameters.expiry_horizon_ms => {
                Some(RejectionCode::ExpiryTooFar)
            }
            _ => None,
        }
    };
    if let Some(code) = stateless {
        return Ok((Some(code.into()), false));
    }
    let replay_key = StateKey::Replay(body.submitter, body.unique_id);
    if state.read(&replay_key)?.is_some() {
        return Ok((Some(RejectionCode::Duplicate.into()), false));
    }

    // Read through the block's writes: an earlier transaction of this block may have changed them.
    let Some(StateValue::Parameters(current)) = state.read(&StateKey::Parameters)? else {
        panic!("corrupt state: parameters missing");
    };
    let mut ctx = Ctx {
        block: state,
        writes: WriteSet::new(),
        parameters: current,
        height: block.height,
        time_ms: block.time_ms,
        tx_id: transaction.id,
        submitter: body.submitter,
        signers: Vec::with_capacity(transaction.transaction.endorsements.len()),
        missing_signature: std::cell::Cell::new(false),
    };
    // Authentication failures (an unknown signer, a key that is not the signer's registered
    // one, a missing signature) are what a forger holding a copy of the body can cause: like a
    // bad signature, they leave no replay record, so they cannot burn the genuine id.
    let rejection = match authenticate(&mut ctx, transaction) {
        Ok(()) => None,
        Err(Halt::Reject(rejection)) => return Ok((Some(rejection), false)),
        Err(Halt::Missing) => return Err(Halt::Missing),
    };
    let rejection = rejection.or(match modules::apply(&mut ctx, &body.operation) {
        Ok(()) => None,
        Err(Halt::Reject(rejection)) if ctx.missing_signature.get() => {
            return Ok((Some(rejection), false));
        }
        Err(Halt::Reject(rejection)) => Some(rejection),
        Err(Halt::Missing) => return Err(Halt::Missing),
    });
    let Ctx { writes, .. } = ctx;
    if rejection.is_none() {
        state.writes.extend(writes);
    }
    let record = ReplayRecord {
        tx_id: transaction.id,
        height: block.height,
        index,
        rejection,
        expiry: body.expiry,
    };
    state
        .writes
        .insert(replay_key, Some(StateValue::Replay(record)));
    Ok((rejection, true))
}

/// Every endorsement is by a known party with its registered key, once; the submitter signed.
fn authenticate(ctx: &mut Ctx<'_, '_>, transaction: &VerifiedTransaction) -> Step<()> {
    for endorsement in &transaction.transaction.endorsements {
        let party = ctx.party(endorsement.signer)?;
        if party.public_key != endorsement.public_key || ctx.signers.contains(&party.id) {
            return Err(RejectionCode::BadSignature.into());
        }
        ctx.signers.push(party.id);
    }
    ctx.require_signer(ctx.submitter)
}

/// Delete replay records whose expiry has passed, a bounded amount per block.
///
/// A dry run over a copy of the cursors first names every bucket header and entry list the walk
/// may read, so that they are fetched together (a round for the headers, one for the lists)
/// rather than one execution round per list.
fn prune_expired(
    state: &mut BlockState<'_>,
    chain: &mut Chain,
    block: &BlockInput<'_>,
) -> Step<()> {
    let mut plan = *chain;
    if !prune_walk(state, &mut plan, block, false) {
        return Err(Halt::Missing);
    }
    if prune_walk(state, chain, block, true) {
        Ok(())
    } else {
        Err(Halt::Missing)
    }
}

/// Walk the expired buckets from the cursors. With `apply`, delete what the walk passes and
/// advance the cursors; without it, only record missing keys (treating an unknown header or list
/// as empty, so the walk reaches as far as it could). Returns whether every key was present.
fn prune_walk(
    state: &mut BlockState<'_>,
    chain: &mut Chain,
    block: &BlockInput<'_>,
    apply: bool,
) -> bool {
    let mut complete = true;
    let mut lists_budget = PRUNE_ENTRIES_PER_BLOCK_MAX;
    let mut buckets_budget = PRUNE_BUCKETS_PER_BLOCK_MAX;
    let mut records_budget = PRUNE_RECORDS_PER_BLOCK_MAX;
    // A bucket is wholly expired once every expiry in it is below the block's height or time.
    for (clock, cursor, limit) in [
        (
            ExpiryClock::Height,
            &mut chain.height_cursor,
            block.height / HEIGHT_BUCKET_BLOCKS,
        ),
        (
            ExpiryClock::Time,
            &mut chain.time_cursor,
            block.time_ms / TIME_BUCKET_MS,
        ),
    ] {
        while cursor.bucket < limit && lists_budget > 0 && buckets_budget > 0 && records_budget > 0
        {
            let bucket = Bucket {
                clock,
                index: cursor.bucket,
            };
            let count = match state.peek(&StateKey::ExpiryBucket(bucket)) {
                Some(Some(StateValue::ExpiryBucket(count))) => count,
                Some(None) => 0,
                Some(Some(other)) => panic!("corrupt state: expiry bucket holds {other:?}"),
                None => {
                    complete = false;
                    0
                }
            };
            if cursor.entries < count {
                let key = StateKey::ExpiryEntries(bucket, cursor.entries);
                match state.peek(&key) {
                    Some(Some(StateValue::ExpiryEntries(entries))) => {
                        records_budget = records_budget.saturating_sub(entries.0.len());
                        if apply {
                            for (party, unique_id) in entries.0 {
                                state
                                    .writes
                                    .insert(StateKey::Replay(party, unique_id), None);
                            }
                            state.writes.insert(key, None);
                        }
                    }
                    Some(_) => panic!("corrupt state: {key:?} is missing below its bucket's count"),
                    None => complete = false,
                }
                cursor.entries += 1;
                lists_budget -= 1;
            } else {
                if count > 0 && apply {
                    state.writes.insert(StateKey::ExpiryBucket(bucket), None);
                }
                cursor.bucket += 1;
                cursor.entries = 0;
                buckets_budget -= 1;
            }
        }
    }
    complete
}
