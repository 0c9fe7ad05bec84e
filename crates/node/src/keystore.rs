//! The client's keystore: named party signing keys, encrypted at rest.
//!
//! The file is JSON: a random salt, a random nonce and the ciphertext of the key list, sealed with
//! XChaCha20-Poly1305 under a key derived from the passphrase by Argon2id (its default cost). A
//! wrong passphrase or a tampered file fails authentication; nothing is ever written in clear.

use argon2::Argon2;
use chacha20poly1305::{
    KeyInit, XChaCha20Poly1305, XNonce,
    aead::{Aead, Payload},
};
use kessai_types::{PartyId, PrivateKey};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The environment variable holding the keystore passphrase.
pub const PASSPHRASE_VAR: &str = "KESSAI_KEYSTORE_PASSPHRASE";

const FORMAT: &str = "kessai-keystore-v1";

#[derive(Serialize, Deserialize)]
struct File {
    format: String,
    kdf: String,
    salt: String,
    nonce: String,
    ciphertext: String,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    party: String,
    key: String,
}

#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    #[error("keystore {path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("keystore is not a {FORMAT} file: {0}")]
    Format(String),
    #[error("wrong passphrase, or the keystore was altered")]
    Decrypt,
    #[error("no key for party {0} in the keystore")]
    Missing(String),
    #[error("set {PASSPHRASE_VAR} to the keystore passphrase")]
    NoPassphrase,
}

/// Decrypted keys, by party.
pub struct Keystore {
    pub keys: Vec<(PartyId, PrivateKey)>,
}

fn cipher(passphrase: &str, salt: &[u8]) -> XChaCha20Poly1305 {
    let mut key = [0u8; 32];
    Argon2::default()
        .hash_password_into(passphrase.as_bytes(), salt, &mut key)
        .expect("argon2 accepts a 16-byte salt and 32-byte output");
    XChaCha20Poly1305::new(&key.into())
}

use kessai_types::hex::encode as hex;

fn unhex(text: &str) -> Result<Vec<u8>, KeystoreError> {
    kessai_types::hex::decode(text).ok_or_else(|| KeystoreError::Format("bad hex".into()))
}

/// The passphrase from the environment.
pub fn passphrase() -> Result<String, KeystoreError> {
    std::env::var(PASSPHRASE_VAR).map_err(|_| KeystoreError::NoPassphrase)
}

impl Keystore {
    pub fn key(&self, party: PartyId) -> Result<&PrivateKey, KeystoreError> {
        self.keys
            .iter()
            .find(|(id, _)| *id == party)
            .map(|(_, key)| key)
            .ok_or_else(|| KeystoreError::Missing(party.to_string()))
    }

    pub fn save(&self, path: &Path, passphrase: &str) -> Result<(), KeystoreError> {
        let entries: Vec<Entry> = self
            .keys
            .iter()
            .map(|(party, key)| Entry {
                party: party.to_string(),
                key: key.to_text(),
            })
            .collect();
        let plaintext = serde_json::to_vec(&entries).expect("serializable");
        let salt: [u8; 16] = rand::random();
        let nonce: [u8; 24] = rand::random();
        let ciphertext = cipher(passphrase, &salt)
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plaintext,
                    aad: FORMAT.as_bytes(),
                },
            )
            .expect("encryption of a bounded message");
        let file = File {
            format: FORMAT.into(),
            kdf: "argon2id".into(),
            salt: hex(&salt),
            nonce: hex(&nonce),
            ciphertext: hex(&ciphertext),
        };
        std::fs::write(
            path,
            serde_json::to_vec_pretty(&file).expect("serializable"),
        )
        .map_err(|error| KeystoreError::Io {
            path: path.display().to_string(),
            error,
        })
    }

    pub fn open(path: &Path, passphrase: &str) -> Result<Self, KeystoreError> {
        let bytes = std::fs::read(path).map_err(|error| KeystoreError::Io {
            path: path.display().to_string(),
            error,
        })?;
        let file: File =
            serde_json::from_slice(&bytes).map_err(|e| KeystoreError::Format(e.to_string()))?;
        if file.format != FORMAT || file.kdf != "argon2id" {
            return Err(KeystoreError::Format(file.format));
        }
        let nonce = unhex(&file.nonce)?;
        if nonce.len() != 24 {
            return Err(KeystoreError::Format("nonce length".into()));
        }
        let plaintext = cipher(passphrase, &unhex(&file.salt)?)
            .decrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &unhex(&file.ciphertext)?,
                    aad: FORMAT.as_bytes(),
                },
            )
            .map_err(|_| KeystoreError::Decrypt)?;
        let entries: Vec<Entry> =
            serde_json::from_slice(&plaintext).map_err(|e| KeystoreError::Format(e.to_string()))?;
        let keys = entries
            .into_iter()
            .map(|entry| {
                Ok((
                    PartyId::new(&entry.party).map_err(|e| KeystoreError::Format(e.to_string()))?,
                    PrivateKey::from_text(&entry.key)
                        .map_err(|e| KeystoreError::Format(e.to_string()))?,
                ))
            })
            .collect::<Result<_, KeystoreError>>()?;
        Ok(Keystore { keys })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_wrong_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let key = PrivateKey::from_seed(7);
        let party = PartyId::new("BANK-A").unwrap();
        Keystore {
            keys: vec![(party, key.clone())],
        }
        .save(&path, "correct horse")
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains(&key.to_text()[8..]),
            "the secret is not in clear"
        );
        let opened = Keystore::open(&path, "correct horse").unwrap();
        assert_eq!(opened.key(party).unwrap().public_key(), key.public_key());
        assert!(matches!(
            Keystore::open(&path, "wrong"),
            Err(KeystoreError::Decrypt)
        ));
        let tampered = text.replacen("\"ciphertext\": \"", "\"ciphertext\": \"00", 1);
        std::fs::write(&path, tampered).unwrap();
        assert!(Keystore::open(&path, "correct horse").is_err());
    }
}
