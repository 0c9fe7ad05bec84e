//! Fuzz the balance-proof decoder a participant runs on bytes from any node: it never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let _ = kessai_storage::decode_proof(bytes);
});
