//! The block: ordered transactions, the proposer's timestamp and a finalized state root.

use bytes::BufMut;
use commonware_codec::{Buf, EncodeSize, Error, Read, ReadExt, Write};
use commonware_consensus::{Heightable, types::Height};
use commonware_cryptography::{Digestible, Hasher, Sha256, sha256::Digest};
use kessai_types::{
    Hash32, Transaction,
    codec::{read_seq, seq_size, write_seq},
};

/// Transactions a block may carry whatever the genesis parameters say: what decoding allocates.
pub const BLOCK_TRANSACTIONS_MAX: usize = 100_000;

/// Encoded bytes a block may take: it travels in one p2p message.
pub const BLOCK_BYTES_MAX: usize = 16 * 1024 * 1024;

/// A block of the chain.
///
/// The state root is not the root *after* this block: execution runs after finality, in its own
/// task, so that consensus on the next block overlaps with executing this one. Instead a block
/// carries the root after an earlier, finalized block (`state_height`), which every validator has
/// computed independently; a validator whose execution diverged refuses to vote for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    pub parent: Digest,
    pub height: u64,
    /// The proposer's clock, in milliseconds since the Unix epoch; never below the parent's.
    pub time_ms: u64,
    /// The finalized height whose resulting state root this block attests.
    pub state_height: u64,
    pub state_root: Hash32,
    pub transactions: Vec<Transaction>,
}

impl Block {
    /// The block every chain with this `genesis_hash` starts from (height 0).
    pub fn genesis(genesis_hash: Hash32, time_ms: u64) -> Self {
        Block {
            parent: Digest::from(genesis_hash.0),
            height: 0,
            time_ms,
            state_height: 0,
            state_root: Hash32([0; 32]),
            transactions: Vec::new(),
        }
    }
}

impl Write for Block {
    fn write(&self, buf: &mut impl BufMut) {
        self.parent.write(buf);
        self.height.write(buf);
        self.time_ms.write(buf);
        self.state_height.write(buf);
        self.state_root.write(buf);
        write_seq(&self.transactions, buf);
    }
}

impl EncodeSize for Block {
    fn encode_size(&self) -> usize {
        self.parent.encode_size()
            + self.height.encode_size()
            + self.time_ms.encode_size()
            + self.state_height.encode_size()
            + self.state_root.encode_size()
            + seq_size(&self.transactions)
    }
}

impl Read for Block {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, Error> {
        Ok(Block {
            parent: Digest::read(buf)?,
            height: u64::read(buf)?,
            time_ms: u64::read(buf)?,
            state_height: u64::read(buf)?,
            state_root: Hash32::read(buf)?,
            transactions: read_seq(buf, BLOCK_TRANSACTIONS_MAX)?,
        })
    }
}

impl Digestible for Block {
    type Digest = Digest;
    fn digest(&self) -> Digest {
        Sha256::hash(&[&commonware_codec::Encode::encode(self)])
    }
}

impl Heightable for Block {
    fn height(&self) -> Height {
        Height::new(self.height)
    }
}

impl commonware_consensus::Block for Block {
    fn parent(&self) -> Digest {
        self.parent
    }
}

/// A block digest as the API shows it.
pub fn digest_hash(digest: &Digest) -> Hash32 {
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(digest.as_ref());
    Hash32(bytes)
}
