//! Signature schemes, transaction signing and batch verification across cores.
//!
//! Keys and signatures are tagged by scheme so that a second scheme (secp256r1, for keys held in
//! HSMs) can be added without changing the transaction format: a new tag, not a new layout.

use bytes::BufMut;
use commonware_codec::Buf;
use commonware_codec::{DecodeExt as _, Error, FixedSize, Read, ReadExt, Write};
use commonware_cryptography::{
    BatchEntry, BatchVerifier, Hasher, Sha256, Signer as _, Verifier as _, ed25519,
};
use commonware_parallel::Strategy;
use std::{
    collections::HashMap,
    fmt,
    sync::{LazyLock, PoisonError, RwLock},
};

/// The namespace of transaction signatures: a signature made for anything else never verifies.
pub const TRANSACTION_NAMESPACE: &[u8] = b"_KESSAI_TRANSACTION";

/// A 32-byte SHA-256 digest (transaction ids, KYC record hashes, state roots).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hash32(pub [u8; 32]);

impl Hash32 {
    pub fn of(parts: &[&[u8]]) -> Self {
        let digest = Sha256::hash(parts);
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(digest.as_ref());
        Hash32(bytes)
    }

    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_hex())
    }
}
impl fmt::Display for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_hex())
    }
}
impl Write for Hash32 {
    fn write(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.0);
    }
}
impl FixedSize for Hash32 {
    const SIZE: usize = 32;
}
impl Read for Hash32 {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, Error> {
        <[u8; 32]>::read(buf).map(Hash32)
    }
}

/// A party's public key, tagged by scheme. Ordered by scheme, then by the key's bytes (the
/// consensus order of a validator set).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum PublicKey {
    Ed25519(ed25519::PublicKey),
}

// Written as `codec_enum!` would write it (tag 0, then the 32 bytes), but read through the
// decompressed-key cache.
impl Write for PublicKey {
    fn write(&self, buf: &mut impl BufMut) {
        match self {
            PublicKey::Ed25519(key) => {
                0u8.write(buf);
                key.write(buf);
            }
        }
    }
}

impl commonware_codec::EncodeSize for PublicKey {
    fn encode_size(&self) -> usize {
        match self {
            PublicKey::Ed25519(_) => 1 + ed25519::PublicKey::SIZE,
        }
    }
}

impl Read for PublicKey {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, Error> {
        match u8::read(buf)? {
            0 => Ok(PublicKey::Ed25519(decompressed(<[u8; 32]>::read(buf)?)?)),
            other => Err(Error::InvalidEnum(other)),
        }
    }
}

/// Most keys remembered by [`decompressed`]; at this many it starts again from empty.
const DECOMPRESSED_KEYS_MAX: usize = 65_536;

/// Ed25519 keys already decompressed, by their 32 bytes.
static DECOMPRESSED_KEYS: LazyLock<RwLock<HashMap<[u8; 32], ed25519::PublicKey>>> =
    LazyLock::new(RwLock::default);

/// The ed25519 key of `bytes`, validated as the codec validates it.
///
/// Decompressing a key is a field exponentiation. A node decodes each transaction several
/// times (the API's request, gossip, the proposed block, the finalized block), and the signers
/// are a consortium's few thousand parties: a profiled validator spent 12 % of its time
/// decompressing the same keys again. Only valid keys are remembered; invalid bytes are
/// refused each time, exactly as before.
fn decompressed(bytes: [u8; 32]) -> Result<ed25519::PublicKey, Error> {
    let known = DECOMPRESSED_KEYS
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&bytes)
        .cloned();
    if let Some(key) = known {
        return Ok(key);
    }
    let key = ed25519::PublicKey::decode(bytes::Bytes::copy_from_slice(&bytes))?;
    let mut keys = DECOMPRESSED_KEYS
        .write()
        .unwrap_or_else(PoisonError::into_inner);
    if keys.len() >= DECOMPRESSED_KEYS_MAX {
        keys.clear();
    }
    keys.insert(bytes, key.clone());
    Ok(key)
}

/// A signature, tagged by scheme.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Signature {
    Ed25519(ed25519::Signature),
}

crate::codec_enum!(Signature { 0 => Ed25519(ed25519::Signature) });

/// A private signing key, tagged by scheme. Never part of any ledger record.
#[derive(Clone)]
pub enum PrivateKey {
    Ed25519(ed25519::PrivateKey),
}

impl PrivateKey {
    /// A key derived from a seed: for tests, demos and benchmarks only.
    pub fn from_seed(seed: u64) -> Self {
        PrivateKey::Ed25519(ed25519::PrivateKey::from_seed(seed))
    }

    pub fn public_key(&self) -> PublicKey {
        match self {
            PrivateKey::Ed25519(key) => PublicKey::Ed25519(key.public_key()),
        }
    }

    pub fn sign(&self, message: &[u8]) -> Signature {
        match self {
            PrivateKey::Ed25519(key) => {
                Signature::Ed25519(key.sign(TRANSACTION_NAMESPACE, message))
            }
        }
    }
}

impl PublicKey {
    pub fn verify(&self, message: &[u8], signature: &Signature) -> bool {
        match (self, signature) {
            (PublicKey::Ed25519(key), Signature::Ed25519(signature)) => {
                key.verify(TRANSACTION_NAMESPACE, message, signature)
            }
        }
    }
}

/// One signature to check: who claims to have signed which message.
pub struct SignatureCheck<'a> {
    pub public_key: &'a PublicKey,
    pub message: &'a [u8],
    pub signature: &'a Signature,
}

/// Check many signatures at once. Ed25519 signatures are verified as one batch spread over the
/// strategy's threads; only if the batch fails is each checked alone to find the bad ones.
/// Returns one verdict per check, in order.
pub fn verify_signatures(checks: &[SignatureCheck<'_>], strategy: &impl Strategy) -> Vec<bool> {
    if checks.is_empty() {
        return Vec::new();
    }
    // Randomness only weights the batch equation; the verdict is the same on every node.
    let batch_ok = ed25519::PublicKey::verify_batch(
        &mut rand::rng(),
        checks,
        |_, check| {
            let (PublicKey::Ed25519(public_key), Signature::Ed25519(signature)) =
                (check.public_key, check.signature);
            BatchEntry {
                namespace: TRANSACTION_NAMESPACE,
                message: check.message,
                public_key,
                signature,
            }
        },
        strategy,
    );
    if batch_ok {
        return vec![true; checks.len()];
    }
    strategy.map_collect_vec(checks, |check| {
        check.public_key.verify(check.message, check.signature)
    })
}

/// Why a key or hash in text form does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyTextError {
    #[error("expected \"ed25519:\" followed by 64 hex digits")]
    Format,
    #[error("not a valid ed25519 key")]
    Invalid,
}

fn hex32(text: &str) -> Result<[u8; 32], KeyTextError> {
    let bytes = commonware_formatting::from_hex(text).ok_or(KeyTextError::Format)?;
    bytes.try_into().map_err(|_| KeyTextError::Format)
}

impl std::str::FromStr for Hash32 {
    type Err = KeyTextError;
    /// 64 hex digits.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        hex32(text).map(Hash32)
    }
}

impl fmt::Display for PublicKey {
    /// `ed25519:` and the key's 32 bytes in hex.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublicKey::Ed25519(key) => {
                write!(f, "ed25519:{}", commonware_formatting::hex(key.as_ref()))
            }
        }
    }
}

impl std::str::FromStr for PublicKey {
    type Err = KeyTextError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let hex = text.strip_prefix("ed25519:").ok_or(KeyTextError::Format)?;
        let key = decompressed(hex32(hex)?).map_err(|_| KeyTextError::Invalid)?;
        Ok(PublicKey::Ed25519(key))
    }
}

impl PrivateKey {
    /// A new key from the operating system's entropy.
    pub fn generate() -> Self {
        let seed: [u8; 32] = rand::random();
        PrivateKey::from_text(&format!("ed25519:{}", commonware_formatting::hex(&seed)))
            .expect("every 32-byte seed is an ed25519 key")
    }

    /// `ed25519:` and the 32-byte secret in hex: for key files, never for logs.
    pub fn to_text(&self) -> String {
        match self {
            PrivateKey::Ed25519(key) => format!(
                "ed25519:{}",
                commonware_formatting::hex(&commonware_codec::Encode::encode(key))
            ),
        }
    }

    pub fn from_text(text: &str) -> Result<Self, KeyTextError> {
        let hex = text.strip_prefix("ed25519:").ok_or(KeyTextError::Format)?;
        let bytes = hex32(hex)?;
        let key = ed25519::PrivateKey::decode(bytes::Bytes::copy_from_slice(&bytes))
            .map_err(|_| KeyTextError::Invalid)?;
        Ok(PrivateKey::Ed25519(key))
    }

    /// The ed25519 key itself, for the consensus layer (validators sign votes with it).
    pub fn ed25519(&self) -> &ed25519::PrivateKey {
        match self {
            PrivateKey::Ed25519(key) => key,
        }
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey({})", self.public_key())
    }
}

impl PublicKey {
    /// The ed25519 key itself, for the consensus layer.
    pub fn ed25519(&self) -> &ed25519::PublicKey {
        match self {
            PublicKey::Ed25519(key) => key,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_codec::Encode as _;

    #[test]
    fn keys_decode_the_same_from_the_cache_and_invalid_keys_never_decode() {
        let key = PrivateKey::from_seed(7).public_key();
        let encoded = key.encode();
        assert_eq!(encoded.len(), 33);
        assert_eq!(encoded[0], 0);
        for _ in 0..3 {
            assert_eq!(PublicKey::decode(encoded.clone()).unwrap(), key);
        }
        assert_eq!(key.to_string().parse::<PublicKey>().unwrap(), key);
        // The y-coordinate 2 is not on the curve: refused every time, never remembered.
        let mut invalid = [0u8; 33];
        invalid[1] = 2;
        for _ in 0..3 {
            assert!(PublicKey::decode(bytes::Bytes::copy_from_slice(&invalid)).is_err());
        }
        assert!(
            !DECOMPRESSED_KEYS
                .read()
                .unwrap()
                .contains_key(&invalid[1..])
        );
        let mut unknown_scheme = encoded.to_vec();
        unknown_scheme[0] = 1;
        assert!(PublicKey::decode(bytes::Bytes::from(unknown_scheme)).is_err());
    }
}
