//! The node's configuration file (TOML), with defaults and environment overrides.
//!
//! Any field can be overridden by `KESSAI_<SECTION>_<FIELD>` (upper case), e.g.
//! `KESSAI_API_LISTEN=0.0.0.0:8080`. An unknown, missing or ill-typed field is an error that names
//! the field.

use serde::{Deserialize, Serialize};
use std::{net::SocketAddr, path::Path, path::PathBuf};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    pub node: NodeSection,
    pub p2p: P2pSection,
    pub api: ApiSection,
    #[serde(default)]
    pub mempool: MempoolSection,
    #[serde(default)]
    pub consensus: ConsensusSection,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeRole {
    /// Votes in consensus.
    Validator,
    /// Follows, verifies and serves the ledger without voting (participant, regulator, DR site).
    Observer,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    pub role: NodeRole,
    /// The node's p2p (and, for a validator, consensus) key file, `ed25519:<hex>`.
    pub key_file: PathBuf,
    pub genesis_file: PathBuf,
    pub data_dir: PathBuf,
    #[serde(default = "defaults::worker_threads")]
    pub worker_threads: usize,
    /// 4 KiB pages of the state's read cache.
    #[serde(default = "defaults::page_cache_pages")]
    pub page_cache_pages: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct P2pSection {
    pub listen: SocketAddr,
    /// Every node of the network (this one included), by key and address.
    pub peers: Vec<Peer>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    pub public_key: String,
    pub address: SocketAddr,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSection {
    pub listen: SocketAddr,
    /// Largest request body accepted.
    #[serde(default = "defaults::request_bytes_max")]
    pub request_bytes_max: usize,
    /// Longest a submission with `wait=true` waits for finality.
    #[serde(default = "defaults::wait_timeout_ms")]
    pub wait_timeout_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MempoolSection {
    pub transactions_max: usize,
    pub bytes_max: usize,
}

impl Default for MempoolSection {
    fn default() -> Self {
        let limits = kessai_chain::MempoolLimits::default();
        MempoolSection {
            transactions_max: limits.transactions_max,
            bytes_max: limits.bytes_max,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsensusSection {
    /// A proposer waits this long after its parent block, to fill its block.
    pub block_interval_ms: u64,
    pub leader_timeout_ms: u64,
    pub certification_timeout_ms: u64,
}

impl Default for ConsensusSection {
    fn default() -> Self {
        ConsensusSection {
            block_interval_ms: 100,
            leader_timeout_ms: 1_000,
            certification_timeout_ms: 2_000,
        }
    }
}

mod defaults {
    pub fn worker_threads() -> usize {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    }
    pub fn page_cache_pages() -> usize {
        16_384
    }
    pub fn request_bytes_max() -> usize {
        4 * 1024 * 1024
    }
    pub fn wait_timeout_ms() -> u64 {
        30_000
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

impl NodeConfig {
    /// Read `path`, apply `KESSAI_*` environment overrides, and check every field. Relative
    /// paths in the file are relative to the file's folder.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let display = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Io {
            path: display.clone(),
            error,
        })?;
        let invalid = |message: String| ConfigError::Invalid {
            path: display.clone(),
            message,
        };
        let mut value: toml::Table = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        apply_overrides(&mut value, std::env::vars()).map_err(invalid)?;
        let mut config: NodeConfig = toml::Value::Table(value)
            .try_into()
            .map_err(|e: toml::de::Error| invalid(e.to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        for path in [
            &mut config.node.key_file,
            &mut config.node.genesis_file,
            &mut config.node.data_dir,
        ] {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
        if config.node.worker_threads == 0 || config.node.page_cache_pages == 0 {
            return Err(invalid(
                "node.worker_threads and node.page_cache_pages must be positive".into(),
            ));
        }
        let c = &config.consensus;
        if c.leader_timeout_ms == 0
            || c.certification_timeout_ms <= c.leader_timeout_ms
            || c.block_interval_ms >= c.leader_timeout_ms
        {
            return Err(invalid(format!(
                "consensus: need 0 < block_interval_ms ({}) < leader_timeout_ms ({}) < \
                 certification_timeout_ms ({})",
                c.block_interval_ms, c.leader_timeout_ms, c.certification_timeout_ms
            )));
        }
        if config.mempool.transactions_max == 0 || config.mempool.bytes_max == 0 {
            return Err(invalid("mempool limits must be positive".into()));
        }
        Ok(config)
    }
}

/// `KESSAI_SECTION_FIELD=value` sets `section.field`; numbers and booleans keep their type.
fn apply_overrides(
    table: &mut toml::Table,
    vars: impl Iterator<Item = (String, String)>,
) -> Result<(), String> {
    const SECTIONS: [&str; 5] = ["node", "p2p", "api", "mempool", "consensus"];
    for (name, raw) in vars {
        let Some(rest) = name.strip_prefix("KESSAI_") else {
            continue;
        };
        let rest = rest.to_ascii_lowercase();
        let Some(section) = SECTIONS
            .iter()
            .find(|section| rest.starts_with(&format!("{section}_")))
        else {
            continue;
        };
        let field = &rest[section.len() + 1..];
        let value = if let Ok(n) = raw.parse::<i64>() {
            toml::Value::Integer(n)
        } else if let Ok(b) = raw.parse::<bool>() {
            toml::Value::Boolean(b)
        } else {
            toml::Value::String(raw)
        };
        let entry = table
            .entry(section.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let toml::Value::Table(section_table) = entry else {
            return Err(format!("`{section}` is not a section"));
        };
        section_table.insert(field.to_string(), value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[node]
role = "validator"
key_file = "v0.key"
genesis_file = "genesis.toml"
data_dir = "data/v0"
[p2p]
listen = "127.0.0.1:7000"
peers = []
[api]
listen = "127.0.0.1:8000"
"#;

    fn load(text: &str, vars: &[(&str, &str)]) -> Result<NodeConfig, String> {
        let mut table: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
        apply_overrides(
            &mut table,
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )?;
        toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| e.to_string())
    }

    #[test]
    fn defaults_fill_optional_sections() {
        let config = load(FILE, &[]).unwrap();
        assert_eq!(config.consensus.block_interval_ms, 100);
        assert_eq!(config.api.request_bytes_max, 4 * 1024 * 1024);
    }

    #[test]
    fn environment_overrides_a_field() {
        let config = load(FILE, &[("KESSAI_API_LISTEN", "0.0.0.0:9999")]).unwrap();
        assert_eq!(config.api.listen.port(), 9999);
        let config = load(FILE, &[("KESSAI_CONSENSUS_BLOCK_INTERVAL_MS", "250")]);
        // A partial section from the environment lacks the section's other fields.
        assert!(config.unwrap_err().contains("leader_timeout_ms"));
    }

    #[test]
    fn errors_name_the_field() {
        let missing = load(&FILE.replace("listen = \"127.0.0.1:8000\"", ""), &[]).unwrap_err();
        assert!(missing.contains("listen"), "{missing}");
        let unknown = load(&format!("{FILE}colour = 1\n"), &[]).unwrap_err();
        assert!(unknown.contains("colour"), "{unknown}");
        let typed = load(&FILE.replace("\"validator\"", "\"voter\""), &[]).unwrap_err();
        assert!(typed.contains("role") || typed.contains("voter"), "{typed}");
        let address = load(&FILE.replace("127.0.0.1:7000", "nowhere"), &[]).unwrap_err();
        assert!(address.contains("listen"), "{address}");
    }
}
