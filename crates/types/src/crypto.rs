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
use std::fmt;

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

crate::codec_enum!(PublicKey { 0 => Ed25519(ed25519::PublicKey) });

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
        let bytes = hex32(hex)?;
        let key = ed25519::PublicKey::decode(bytes::Bytes::copy_from_slice(&bytes))
            .map_err(|_| KeyTextError::Invalid)?;
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
