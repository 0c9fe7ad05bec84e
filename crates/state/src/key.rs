//! The state's key space and record types, and their canonical encoding.
//!
//! Every record lives under a typed [`StateKey`]; storage addresses it by the SHA-256 of the key's
//! encoding. Values are tagged so that a record decodes without knowing its key.

use commonware_codec::{Encode, EncodeSize, Error, Write};
use kessai_types::{
    Account, AccountId, Asset, AssetId, Balance, BusinessDate, Currency, Decimal, Hash32, Lien,
    Party, PartyId, PublicKey, Rejection, RepoContract, RepoEventRecord, TxId, UniqueId,
    codec_enum, codec_seq, codec_struct, transaction::VALIDATORS_MAX,
};

/// Which clock an expiry bucket follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ExpiryClock {
    /// Buckets of [`HEIGHT_BUCKET_BLOCKS`] heights.
    Height,
    /// Buckets of [`TIME_BUCKET_MS`] milliseconds.
    Time,
}
codec_enum!(ExpiryClock { 0 => Height, 1 => Time });

/// Heights per expiry bucket.
pub const HEIGHT_BUCKET_BLOCKS: u64 = 1024;
/// Milliseconds per expiry bucket (one minute).
pub const TIME_BUCKET_MS: u64 = 60_000;

/// A bucket of expiries: all replay records expiring within one span of heights or time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bucket {
    pub clock: ExpiryClock,
    pub index: u64,
}
codec_struct!(Bucket {
    clock: ExpiryClock,
    index: u64
});

/// Where every record lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StateKey {
    Parameters,
    Chain,
    Party(PartyId),
    Account(AccountId),
    Asset(AssetId),
    Balance(AccountId, AssetId),
    Lien(AccountId, AssetId, TxId),
    Replay(PartyId, UniqueId),
    /// How many entry lists a bucket has.
    ExpiryBucket(Bucket),
    /// One entry list of a bucket: the replay keys one block added.
    ExpiryEntries(Bucket, u32),
    /// The validator set of an epoch.
    Validators(u64),
    /// A repo or securities-lending contract, by the id of the transaction that registered it.
    Repo(TxId),
    /// A contract's events, numbered from 0.
    RepoEvent(TxId, u32),
    /// The book of open contracts and the mark-to-market in progress.
    RepoBook,
    /// The open contracts, in slots `0..open` of the book.
    RepoSlot(u64),
    /// Whether a business date's prices are complete.
    PriceDay(BusinessDate),
    /// A closing price of a business date.
    Price(BusinessDate, AssetId),
    /// An FX rate of a business date: one base unit in quote units.
    FxRate(BusinessDate, Currency, Currency),
}

impl Write for StateKey {
    fn write(&self, buf: &mut impl bytes::BufMut) {
        match self {
            StateKey::Parameters => 0u8.write(buf),
            StateKey::Chain => 1u8.write(buf),
            StateKey::Party(party) => (2u8, *party).write(buf),
            StateKey::Account(account) => (3u8, *account).write(buf),
            StateKey::Asset(asset) => (4u8, *asset).write(buf),
            StateKey::Balance(account, asset) => (5u8, *account, *asset).write(buf),
            StateKey::Lien(account, asset, lien) => (6u8, *account, *asset, *lien).write(buf),
            StateKey::Replay(party, unique_id) => (7u8, *party, *unique_id).write(buf),
            StateKey::ExpiryBucket(bucket) => (8u8, *bucket).write(buf),
            StateKey::ExpiryEntries(bucket, sequence) => (9u8, *bucket, *sequence).write(buf),
            StateKey::Validators(epoch) => (10u8, *epoch).write(buf),
            StateKey::Repo(id) => (11u8, *id).write(buf),
            StateKey::RepoEvent(id, sequence) => (12u8, *id, *sequence).write(buf),
            StateKey::RepoBook => 13u8.write(buf),
            StateKey::RepoSlot(slot) => (14u8, *slot).write(buf),
            StateKey::PriceDay(date) => (15u8, *date).write(buf),
            StateKey::Price(date, asset) => (16u8, *date, *asset).write(buf),
            StateKey::FxRate(date, base, quote) => (17u8, *date, *base, *quote).write(buf),
        }
    }
}

impl EncodeSize for StateKey {
    fn encode_size(&self) -> usize {
        match self {
            StateKey::Parameters | StateKey::Chain | StateKey::RepoBook => 1,
            StateKey::Party(party) => 1 + party.encode_size(),
            StateKey::Account(account) => 1 + account.encode_size(),
            StateKey::Asset(asset) => 1 + asset.encode_size(),
            StateKey::Balance(account, asset) => 1 + account.encode_size() + asset.encode_size(),
            StateKey::Lien(account, asset, _) => {
                1 + account.encode_size() + asset.encode_size() + 32
            }
            StateKey::Replay(party, _) => 1 + party.encode_size() + 16,
            StateKey::ExpiryBucket(bucket) => 1 + bucket.encode_size(),
            StateKey::ExpiryEntries(bucket, _) => 1 + bucket.encode_size() + 4,
            StateKey::Validators(_) => 1 + 8,
            StateKey::Repo(_) => 1 + 32,
            StateKey::RepoEvent(..) => 1 + 32 + 4,
            StateKey::RepoSlot(_) => 1 + 8,
            StateKey::PriceDay(_) => 1 + 4,
            StateKey::Price(_, asset) => 1 + 4 + asset.encode_size(),
            StateKey::FxRate(_, base, quote) => 1 + 4 + base.encode_size() + quote.encode_size(),
        }
    }
}

impl StateKey {
    /// The 32-byte address of this key in authenticated storage.
    pub fn storage_key(&self) -> Hash32 {
        Hash32::of(&[&self.encode()])
    }
}

/// Network-wide settings, fixed at genesis and changed only by governance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parameters {
    /// Transactions for any other network are rejected.
    pub network: u32,
    /// How many governors must sign a governance operation (the M of M-of-N).
    pub governance_threshold: u32,
    /// How many parties hold the governor role (the N).
    pub governor_count: u32,
    /// Most legs in one bundle.
    pub bundle_legs_max: u32,
    /// Most transactions in one block.
    pub block_transactions_max: u32,
    /// How far ahead a time expiry may lie: the ledger remembers ids this long.
    pub expiry_horizon_ms: u64,
    /// How far ahead a height expiry may lie.
    pub expiry_horizon_blocks: u64,
    /// Blocks per epoch: a validator-set change takes effect after the last block of the epoch
    /// it lands in.
    pub epoch_blocks: u64,
}
codec_struct!(Parameters {
    network: u32,
    governance_threshold: u32,
    governor_count: u32,
    bundle_legs_max: u32,
    block_transactions_max: u32,
    expiry_horizon_ms: u64,
    expiry_horizon_blocks: u64,
    epoch_blocks: u64,
});

impl Default for Parameters {
    fn default() -> Self {
        Parameters {
            network: 1,
            governance_threshold: 1,
            governor_count: 0,
            bundle_legs_max: 100,
            block_transactions_max: 20_000,
            expiry_horizon_ms: 24 * 60 * 60 * 1000,
            expiry_horizon_blocks: 100_000,
            epoch_blocks: 1_000,
        }
    }
}

/// How far pruning of one clock's expired replay records has got.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PruneCursor {
    pub bucket: u64,
    pub entries: u32,
}
codec_struct!(PruneCursor {
    bucket: u64,
    entries: u32
});

/// The chain's position: the last applied block and the pruning cursors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Chain {
    pub height: u64,
    pub time_ms: u64,
    pub height_cursor: PruneCursor,
    pub time_cursor: PruneCursor,
}
codec_struct!(Chain {
    height: u64,
    time_ms: u64,
    height_cursor: PruneCursor,
    time_cursor: PruneCursor
});

/// What the ledger remembers of a transaction id until it expires: where it landed and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplayRecord {
    pub tx_id: TxId,
    pub height: u64,
    pub index: u32,
    pub rejection: Option<Rejection>,
    pub expiry: kessai_types::Expiry,
}
codec_struct!(ReplayRecord {
    tx_id: TxId,
    height: u64,
    index: u32,
    rejection: Option<Rejection>,
    expiry: kessai_types::Expiry,
});

/// The replay keys one block added to one bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpiryEntries(pub Vec<(PartyId, UniqueId)>);

/// The consensus keys of one epoch's validators, sorted and distinct.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatorSet(pub Vec<PublicKey>);

codec_seq!(ValidatorSet { 0 }, VALIDATORS_MAX);

impl Parameters {
    /// The epoch `height` belongs to.
    pub fn epoch_of(&self, height: u64) -> u64 {
        height / self.epoch_blocks
    }

    /// Whether `height` is the last block of its epoch.
    pub fn is_epoch_end(&self, height: u64) -> bool {
        height % self.epoch_blocks == self.epoch_blocks - 1
    }
}

/// The most replay keys one entry list holds: one block's transactions.
pub const EXPIRY_ENTRIES_MAX: usize = 1_000_000;

codec_seq!(ExpiryEntries { 0 }, EXPIRY_ENTRIES_MAX);

/// Every record the state holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateValue {
    Parameters(Parameters),
    Chain(Chain),
    Party(Party),
    Account(Account),
    Asset(Asset),
    Balance(Balance),
    Lien(Lien),
    Replay(ReplayRecord),
    ExpiryBucket(u32),
    ExpiryEntries(ExpiryEntries),
    Validators(ValidatorSet),
    Repo(RepoContract),
    RepoEvent(RepoEventRecord),
    RepoBook(RepoBook),
    RepoSlot(TxId),
    /// Whether the date is closed (complete).
    PriceDay(bool),
    Price(Decimal),
    FxRate(Decimal),
}

codec_enum!(StateValue {
    0 => Parameters(Parameters),
    1 => Chain(Chain),
    2 => Party(Party),
    3 => Account(Account),
    4 => Asset(Asset),
    5 => Balance(Balance),
    6 => Lien(Lien),
    7 => Replay(ReplayRecord),
    8 => ExpiryBucket(u32),
    9 => ExpiryEntries(ExpiryEntries),
    10 => Validators(ValidatorSet),
    11 => Repo(RepoContract),
    12 => RepoEvent(RepoEventRecord),
    13 => RepoBook(RepoBook),
    14 => RepoSlot(TxId),
    15 => PriceDay(bool),
    16 => Price(Decimal),
    17 => FxRate(Decimal),
});

/// A mark-to-market of every open contract to one date's prices, walked from the last slot down
/// a bounded number of contracts per block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MarkWalk {
    pub date: BusinessDate,
    /// Slots `0..remaining` are still to be marked.
    pub remaining: u64,
}
codec_struct!(MarkWalk {
    date: BusinessDate,
    remaining: u64
});

/// The open contracts, the latest complete price date and the marking in progress.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RepoBook {
    /// Open contracts fill slots `0..open`.
    pub open: u64,
    /// The latest closed business date (0: none yet).
    pub latest_closed: BusinessDate,
    pub marking: Option<MarkWalk>,
}
codec_struct!(RepoBook {
    open: u64,
    latest_closed: BusinessDate,
    marking: Option<MarkWalk>
});

impl StateValue {
    /// Decode a stored value; a failure means storage is corrupt.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        <Self as commonware_codec::DecodeExt<()>>::decode(bytes::Bytes::copy_from_slice(bytes))
    }
}
