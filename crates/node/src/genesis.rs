//! The genesis file: the chain's validators, parameters, and opening parties, assets, accounts
//! and balances, in TOML. Its SHA-256 identifies the chain.

use kessai_state::{Genesis, Parameters, SyntheticAccounts};
use kessai_types::{
    Account, AccountId, Asset, AssetClass, AssetId, Hash32, Party, PartyId, PublicKey, Role,
    RoleSet,
};
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisFile {
    pub chain: ChainSection,
    /// Consensus keys of the validators, `ed25519:<hex>`.
    pub validators: Vec<ValidatorEntry>,
    #[serde(default)]
    pub parties: Vec<PartyEntry>,
    #[serde(default)]
    pub assets: Vec<AssetEntry>,
    #[serde(default)]
    pub accounts: Vec<AccountEntry>,
    #[serde(default)]
    pub balances: Vec<BalanceEntry>,
    /// Accounts generated when the genesis is written rather than listed here (benchmarks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synthetic_accounts: Option<SyntheticAccountsEntry>,
}

/// Accounts `PREFIX/0` to `PREFIX/{count - 1}`: account `i` is owned by `owners[i % len]` and
/// holds each of `balances`. A few lines stand for millions of accounts; each node expands them
/// when it writes the genesis.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyntheticAccountsEntry {
    pub prefix: String,
    pub count: u64,
    pub owners: Vec<String>,
    #[serde(default)]
    pub balances: Vec<SyntheticBalanceEntry>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyntheticBalanceEntry {
    pub asset: String,
    /// Units, as a decimal string.
    pub quantity: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainSection {
    /// Network id: transactions signed for another network are refused.
    pub network: u32,
    /// Time of height 0, Unix milliseconds.
    pub time_ms: u64,
    pub governance_threshold: u32,
    #[serde(default = "defaults::bundle_legs_max")]
    pub bundle_legs_max: u32,
    #[serde(default = "defaults::block_transactions_max")]
    pub block_transactions_max: u32,
    #[serde(default = "defaults::expiry_horizon_ms")]
    pub expiry_horizon_ms: u64,
    #[serde(default = "defaults::expiry_horizon_blocks")]
    pub expiry_horizon_blocks: u64,
    /// Blocks per epoch: validator-set changes take effect at the end of an epoch.
    #[serde(default = "defaults::epoch_blocks")]
    pub epoch_blocks: u64,
}

mod defaults {
    use kessai_state::Parameters;
    pub fn bundle_legs_max() -> u32 {
        Parameters::default().bundle_legs_max
    }
    pub fn block_transactions_max() -> u32 {
        Parameters::default().block_transactions_max
    }
    pub fn expiry_horizon_ms() -> u64 {
        Parameters::default().expiry_horizon_ms
    }
    pub fn expiry_horizon_blocks() -> u64 {
        Parameters::default().expiry_horizon_blocks
    }
    pub fn epoch_blocks() -> u64 {
        Parameters::default().epoch_blocks
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidatorEntry {
    pub name: String,
    pub public_key: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartyEntry {
    pub id: String,
    pub public_key: String,
    /// network-governor, token-administrator, participant, account-opening-agent, price-oracle,
    /// central-counterparty, regulator, platform.
    pub roles: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetEntry {
    pub id: String,
    /// bond, equity, cash or commodity.
    pub class: String,
    /// The currency of a bond, equity or cash token.
    #[serde(default)]
    pub currency: Option<String>,
    /// Digits of the minor unit of a cash token (2: cents).
    #[serde(default)]
    pub minor_unit_exponent: Option<u8>,
    /// The unit of a commodity token (KG, LOT...).
    #[serde(default)]
    pub unit: Option<String>,
    pub administrator: String,
    #[serde(default)]
    pub kyc_required: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountEntry {
    pub id: String,
    pub owner: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BalanceEntry {
    pub account: String,
    pub asset: String,
    /// Units, as a decimal string (quantities exceed JSON's and TOML's integers).
    pub quantity: String,
}

/// A genesis file that does not make a chain.
#[derive(Debug, thiserror::Error)]
pub enum GenesisFileError {
    #[error("cannot read {path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("{path}: {error}")]
    Syntax {
        path: String,
        error: toml::de::Error,
    },
    #[error("genesis field `{field}`: {reason}")]
    Field { field: String, reason: String },
}

fn field(field: impl Into<String>, reason: impl ToString) -> GenesisFileError {
    GenesisFileError::Field {
        field: field.into(),
        reason: reason.to_string(),
    }
}

pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::NetworkGovernor => "network-governor",
        Role::TokenAdministrator => "token-administrator",
        Role::Participant => "participant",
        Role::AccountOpeningAgent => "account-opening-agent",
        Role::PriceOracle => "price-oracle",
        Role::CentralCounterparty => "central-counterparty",
        Role::Regulator => "regulator",
        Role::Platform => "platform",
    }
}

/// The genesis file, read and checked, with what the node derives from it.
pub struct LoadedGenesis {
    /// The initial state, the first epoch's validators included.
    pub genesis: Genesis,
    /// SHA-256 of the file's bytes: the chain's identity.
    pub hash: Hash32,
}

impl GenesisFile {
    pub fn load(path: &Path) -> Result<LoadedGenesis, GenesisFileError> {
        let display = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|error| GenesisFileError::Io {
            path: display.clone(),
            error,
        })?;
        let text = String::from_utf8_lossy(&bytes);
        let file: GenesisFile =
            toml::from_str(&text).map_err(|error| GenesisFileError::Syntax {
                path: display,
                error,
            })?;
        let genesis = file.to_genesis()?;
        Ok(LoadedGenesis {
            genesis,
            hash: Hash32::of(&[&bytes]),
        })
    }

    pub fn to_genesis(&self) -> Result<Genesis, GenesisFileError> {
        let validators = self
            .validators
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.public_key
                    .parse()
                    .map_err(|e| field(format!("validators[{i}].public_key"), e))
            })
            .collect::<Result<Vec<PublicKey>, _>>()?;
        if validators.is_empty() {
            return Err(field("validators", "at least one validator is needed"));
        }
        let parties = self
            .parties
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let at = |name: &str| format!("parties[{i}].{name}");
                let roles = p
                    .roles
                    .iter()
                    .map(|name| {
                        Role::ALL
                            .into_iter()
                            .find(|role| role_name(*role) == name)
                            .ok_or_else(|| field(at("roles"), format!("unknown role {name:?}")))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Party {
                    id: PartyId::new(&p.id).map_err(|e| field(at("id"), e))?,
                    public_key: p
                        .public_key
                        .parse()
                        .map_err(|e| field(at("public_key"), e))?,
                    roles: RoleSet::of(&roles),
                    kyc: None,
                })
            })
            .collect::<Result<Vec<_>, GenesisFileError>>()?;
        let assets = self
            .assets
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let at = |name: &str| format!("assets[{i}].{name}");
                let currency = || {
                    a.currency
                        .as_deref()
                        .ok_or_else(|| field(at("currency"), "required for this class"))?
                        .parse()
                        .map_err(|e| field(at("currency"), e))
                };
                let class = match a.class.as_str() {
                    "bond" => AssetClass::Bond {
                        currency: currency()?,
                    },
                    "equity" => AssetClass::Equity {
                        currency: currency()?,
                    },
                    "cash" => AssetClass::Cash {
                        currency: currency()?,
                        minor_unit_exponent: a.minor_unit_exponent.unwrap_or(0),
                    },
                    "commodity" => AssetClass::Commodity {
                        unit: a
                            .unit
                            .as_deref()
                            .ok_or_else(|| field(at("unit"), "required for a commodity"))?
                            .parse()
                            .map_err(|e| field(at("unit"), e))?,
                    },
                    other => {
                        return Err(field(
                            at("class"),
                            format!("{other:?} is not bond, equity, cash or commodity"),
                        ));
                    }
                };
                Ok(Asset {
                    id: AssetId::new(&a.id).map_err(|e| field(at("id"), e))?,
                    class,
                    administrator: PartyId::new(&a.administrator)
                        .map_err(|e| field(at("administrator"), e))?,
                    kyc_required: a.kyc_required,
                    frozen: false,
                    supply: 0,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let accounts = self
            .accounts
            .iter()
            .enumerate()
            .map(|(i, a)| {
                Ok(Account {
                    id: AccountId::new(&a.id).map_err(|e| field(format!("accounts[{i}].id"), e))?,
                    owner: PartyId::new(&a.owner)
                        .map_err(|e| field(format!("accounts[{i}].owner"), e))?,
                    frozen: false,
                })
            })
            .collect::<Result<Vec<_>, GenesisFileError>>()?;
        let balances = self
            .balances
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let at = |name: &str| format!("balances[{i}].{name}");
                Ok((
                    AccountId::new(&b.account).map_err(|e| field(at("account"), e))?,
                    AssetId::new(&b.asset).map_err(|e| field(at("asset"), e))?,
                    b.quantity
                        .parse::<u128>()
                        .map_err(|e| field(at("quantity"), e))?,
                ))
            })
            .collect::<Result<Vec<_>, GenesisFileError>>()?;
        let synthetic = self
            .synthetic_accounts
            .as_ref()
            .map(|section| {
                let at = |name: &str| format!("synthetic_accounts.{name}");
                Ok(SyntheticAccounts {
                    prefix: section.prefix.clone(),
                    count: section.count,
                    owners: section
                        .owners
                        .iter()
                        .map(|owner| PartyId::new(owner).map_err(|e| field(at("owners"), e)))
                        .collect::<Result<_, _>>()?,
                    balances: section
                        .balances
                        .iter()
                        .map(|b| {
                            Ok((
                                AssetId::new(&b.asset)
                                    .map_err(|e| field(at("balances.asset"), e))?,
                                b.quantity
                                    .parse::<u128>()
                                    .map_err(|e| field(at("balances.quantity"), e))?,
                            ))
                        })
                        .collect::<Result<_, GenesisFileError>>()?,
                })
            })
            .transpose()?;
        let governor_count = parties
            .iter()
            .filter(|p| p.roles.contains(Role::NetworkGovernor))
            .count() as u32;
        let c = &self.chain;
        let genesis = Genesis {
            parameters: Parameters {
                network: c.network,
                governance_threshold: c.governance_threshold,
                governor_count,
                bundle_legs_max: c.bundle_legs_max,
                block_transactions_max: c.block_transactions_max,
                expiry_horizon_ms: c.expiry_horizon_ms,
                expiry_horizon_blocks: c.expiry_horizon_blocks,
                epoch_blocks: c.epoch_blocks,
            },
            time_ms: c.time_ms,
            parties,
            assets,
            accounts,
            balances,
            validators,
            synthetic,
        };
        // Checks everything, synthetic accounts included, without expanding them.
        kessai_state::genesis_base_writes(&genesis).map_err(|e| field("chain", e))?;
        Ok(genesis)
    }
}
