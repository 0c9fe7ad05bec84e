//! The Kessai node: configuration, genesis file, HTTP API, keystore, and the `init` and `devnet`
//! commands. The `kessai` binary is a thin command line over these.

pub mod api;
pub mod baseline;
pub mod bench;
pub mod config;
pub mod devnet;
pub mod genesis;
pub mod keystore;
pub mod node;
pub mod repo_json;
pub mod sim;
