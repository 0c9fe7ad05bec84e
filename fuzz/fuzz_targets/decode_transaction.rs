//! Fuzz the transaction decoder: it never panics, and what decodes re-encodes to the same bytes.
#![no_main]

use commonware_codec::{DecodeExt, Encode};
use kessai_types::Transaction;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(transaction) = Transaction::decode(bytes.to_vec()) {
        assert_eq!(transaction.encode().as_ref(), bytes);
        let _ = transaction.body.id();
    }
});
