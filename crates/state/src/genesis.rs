//! The initial state: parameters, parties, assets, accounts and opening balances.

use crate::{
    execute::{SUPPLY_MAX, WriteSet},
    key::{
        Chain, EXPIRY_ENTRIES_MAX, Parameters, PruneCursor, StateKey, StateValue, TIME_BUCKET_MS,
        ValidatorSet,
    },
};
use kessai_types::{
    Account, AccountId, Asset, AssetId, Balance, Party, PublicKey, Quantity, Role,
    transaction::{BUNDLE_LEGS_MAX_ENCODED, VALIDATORS_MAX},
};
use std::collections::BTreeMap;

/// Everything the ledger holds at height 0.
#[derive(Clone, Debug, Default)]
pub struct Genesis {
    pub parameters: Parameters,
    /// The time of height 0, in Unix milliseconds.
    pub time_ms: u64,
    pub parties: Vec<Party>,
    /// Assets; their supply is computed from the balances.
    pub assets: Vec<Asset>,
    pub accounts: Vec<Account>,
    pub balances: Vec<(AccountId, AssetId, Quantity)>,
    /// The consensus keys of epoch 0's validators (none for a ledger run without consensus).
    pub validators: Vec<PublicKey>,
}

/// Why a genesis is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenesisError {
    #[error("{0} is defined twice")]
    Duplicate(String),
    #[error("{0} refers to unknown {1}")]
    Unknown(String, String),
    #[error(
        "governance threshold {threshold} must be between 1 and the number of governors ({governors})"
    )]
    Threshold { threshold: u32, governors: u32 },
    #[error("supply of {0} exceeds the ledger's maximum")]
    SupplyTooLarge(String),
    #[error("parameter {name} is {value}; it must be between {min} and {max}")]
    Parameter {
        name: &'static str,
        value: u64,
        min: u64,
        max: u64,
    },
}

/// Check each configurable limit against the hard limit behind it: a bundle limit above what a
/// bundle can encode, or a block limit above what one expiry entry list can decode, would let the
/// ledger accept what it cannot store.
fn check_parameters(parameters: &Parameters) -> Result<(), GenesisError> {
    let ranges: [(&'static str, u64, u64, u64); 5] = [
        (
            "bundle_legs_max",
            parameters.bundle_legs_max as u64,
            1,
            BUNDLE_LEGS_MAX_ENCODED as u64,
        ),
        (
            "block_transactions_max",
            parameters.block_transactions_max as u64,
            1,
            EXPIRY_ENTRIES_MAX as u64,
        ),
        (
            "expiry_horizon_ms",
            parameters.expiry_horizon_ms,
            1,
            u64::MAX,
        ),
        (
            "expiry_horizon_blocks",
            parameters.expiry_horizon_blocks,
            1,
            u64::MAX,
        ),
        // The consensus engine needs at least two blocks per epoch.
        ("epoch_blocks", parameters.epoch_blocks, 2, u64::MAX),
    ];
    for (name, value, min, max) in ranges {
        if !(min..=max).contains(&value) {
            return Err(GenesisError::Parameter {
                name,
                value,
                min,
                max,
            });
        }
    }
    Ok(())
}

/// Validate `genesis` and produce its records.
pub fn genesis_writes(genesis: &Genesis) -> Result<WriteSet, GenesisError> {
    let mut records: BTreeMap<StateKey, StateValue> = BTreeMap::new();
    let insert =
        |records: &mut BTreeMap<StateKey, StateValue>, key: StateKey, value: StateValue| {
            match records.insert(key, value) {
                Some(_) => Err(GenesisError::Duplicate(format!("{key:?}"))),
                None => Ok(()),
            }
        };
    let mut parameters = genesis.parameters;
    parameters.governor_count = genesis
        .parties
        .iter()
        .filter(|party| party.roles.contains(Role::NetworkGovernor))
        .count() as u32;
    if parameters.governance_threshold == 0
        || parameters.governance_threshold > parameters.governor_count
    {
        return Err(GenesisError::Threshold {
            threshold: parameters.governance_threshold,
            governors: parameters.governor_count,
        });
    }
    check_parameters(&parameters)?;
    for party in &genesis.parties {
        insert(
            &mut records,
            StateKey::Party(party.id),
            StateValue::Party(party.clone()),
        )?;
    }
    // `by` names the referring record; it is only formatted when the reference is broken.
    let known =
        |records: &BTreeMap<StateKey, StateValue>, key: StateKey, by: &dyn Fn() -> String| {
            if records.contains_key(&key) {
                Ok(())
            } else {
                Err(GenesisError::Unknown(by(), format!("{key:?}")))
            }
        };
    for asset in &genesis.assets {
        known(&records, StateKey::Party(asset.administrator), &|| {
            format!("asset {}", asset.id)
        })?;
        insert(
            &mut records,
            StateKey::Asset(asset.id),
            StateValue::Asset(Asset {
                supply: 0,
                ..*asset
            }),
        )?;
    }
    for account in &genesis.accounts {
        known(&records, StateKey::Party(account.owner), &|| {
            format!("account {}", account.id)
        })?;
        insert(
            &mut records,
            StateKey::Account(account.id),
            StateValue::Account(*account),
        )?;
    }
    for (account, asset, quantity) in &genesis.balances {
        let by = || format!("balance of {account} in {asset}");
        known(&records, StateKey::Account(*account), &by)?;
        let Some(StateValue::Asset(mut record)) = records.get(&StateKey::Asset(*asset)).cloned()
        else {
            return Err(GenesisError::Unknown(by(), format!("asset {asset}")));
        };
        record.supply = record
            .supply
            .checked_add(*quantity)
            .filter(|supply| *supply <= SUPPLY_MAX)
            .ok_or_else(|| GenesisError::SupplyTooLarge(asset.to_string()))?;
        records.insert(StateKey::Asset(*asset), StateValue::Asset(record));
        let balance = Balance {
            available: *quantity,
            encumbered: 0,
        };
        insert(
            &mut records,
            StateKey::Balance(*account, *asset),
            StateValue::Balance(balance),
        )?;
    }
    let chain = Chain {
        height: 0,
        time_ms: genesis.time_ms,
        height_cursor: PruneCursor::default(),
        time_cursor: PruneCursor {
            bucket: genesis.time_ms / TIME_BUCKET_MS,
            entries: 0,
        },
    };
    let mut validators = genesis.validators.clone();
    validators.sort();
    if let Some(pair) = validators.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(GenesisError::Duplicate(format!("validator {}", pair[0])));
    }
    if validators.len() > VALIDATORS_MAX {
        return Err(GenesisError::Parameter {
            name: "validators",
            value: validators.len() as u64,
            min: 0,
            max: VALIDATORS_MAX as u64,
        });
    }
    records.insert(StateKey::Parameters, StateValue::Parameters(parameters));
    records.insert(StateKey::Chain, StateValue::Chain(chain));
    records.insert(
        StateKey::Validators(0),
        StateValue::Validators(ValidatorSet(validators)),
    );
    Ok(records
        .into_iter()
        .map(|(key, value)| (key, Some(value)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kessai_types::{PrivateKey, RoleSet};

    fn genesis(parameters: Parameters) -> Genesis {
        let governor = Party {
            id: "GOV".parse().unwrap(),
            public_key: PrivateKey::from_seed(1).public_key(),
            roles: RoleSet::of(&[Role::NetworkGovernor]),
            kyc: None,
        };
        Genesis {
            parameters,
            parties: vec![governor],
            ..Genesis::default()
        }
    }

    #[test]
    fn limits_beyond_what_the_ledger_can_store_are_refused() {
        assert!(genesis_writes(&genesis(Parameters::default())).is_ok());
        let cases = [
            (
                "bundle_legs_max",
                Parameters {
                    bundle_legs_max: 1025,
                    ..Parameters::default()
                },
            ),
            (
                "bundle_legs_max",
                Parameters {
                    bundle_legs_max: 0,
                    ..Parameters::default()
                },
            ),
            (
                "block_transactions_max",
                Parameters {
                    block_transactions_max: 1_000_001,
                    ..Parameters::default()
                },
            ),
            (
                "expiry_horizon_ms",
                Parameters {
                    expiry_horizon_ms: 0,
                    ..Parameters::default()
                },
            ),
            (
                "expiry_horizon_blocks",
                Parameters {
                    expiry_horizon_blocks: 0,
                    ..Parameters::default()
                },
            ),
        ];
        for (expected, parameters) in cases {
            match genesis_writes(&genesis(parameters)) {
                Err(GenesisError::Parameter { name, .. }) => assert_eq!(name, expected),
                other => panic!("{expected}: expected a parameter error, got {other:?}"),
            }
        }
    }
}
