//! The initial state: parameters, parties, assets, accounts and opening balances.

use crate::{
    execute::{SUPPLY_MAX, WriteSet},
    key::{
        Chain, EXPIRY_ENTRIES_MAX, Parameters, PruneCursor, StateKey, StateValue, TIME_BUCKET_MS,
        ValidatorSet,
    },
};
use kessai_types::{
    Account, AccountId, Asset, AssetId, Balance, Party, PartyId, PublicKey, Quantity, Role,
    transaction::{BUNDLE_LEGS_MAX_ENCODED, VALIDATORS_MAX},
};
use std::{collections::BTreeMap, ops::Range};

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
    /// Accounts generated rather than listed (benchmarks): millions of them cost a few lines.
    pub synthetic: Option<SyntheticAccounts>,
}

/// Accounts `{prefix}/0` to `{prefix}/{count - 1}`, expanded deterministically when the
/// genesis is written: account `i` is owned by `owners[i % owners.len()]` and holds each of
/// `balances`. They are written in chunks ([`SyntheticAccounts::records`]), so that neither
/// the genesis file nor a node's memory holds them all at once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyntheticAccounts {
    pub prefix: String,
    pub count: u64,
    pub owners: Vec<PartyId>,
    pub balances: Vec<(AssetId, Quantity)>,
}

impl SyntheticAccounts {
    /// The id of account `index`.
    pub fn account(&self, index: u64) -> Result<AccountId, GenesisError> {
        AccountId::new(&format!("{}/{index}", self.prefix)).map_err(|error| {
            GenesisError::Synthetic(format!("account {}/{index}: {error}", self.prefix))
        })
    }

    /// The records of accounts `range` (within `0..count`), each account then its balances.
    /// [`genesis_writes`] checked the section, so every id is valid.
    pub fn records(&self, range: Range<u64>) -> impl Iterator<Item = (StateKey, StateValue)> {
        assert!(
            range.end <= self.count,
            "synthetic accounts {range:?} beyond {}",
            self.count
        );
        range.flat_map(move |index| {
            let id = self.account(index).expect("checked by genesis_writes");
            let account = Account {
                id,
                owner: self.owners[index as usize % self.owners.len()],
                frozen: false,
            };
            let balances = self.balances.iter().map(move |(asset, quantity)| {
                let balance = Balance {
                    available: *quantity,
                    encumbered: 0,
                };
                (StateKey::Balance(id, *asset), StateValue::Balance(balance))
            });
            std::iter::once((StateKey::Account(id), StateValue::Account(account))).chain(balances)
        })
    }
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
    #[error("synthetic accounts: {0}")]
    Synthetic(String),
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

/// Validate `genesis` and produce all its records, the synthetic accounts' included.
pub fn genesis_writes(genesis: &Genesis) -> Result<WriteSet, GenesisError> {
    let mut writes = genesis_base_writes(genesis)?;
    if let Some(synthetic) = &genesis.synthetic {
        for (key, value) in synthetic.records(0..synthetic.count) {
            writes.insert(key, Some(value));
        }
    }
    Ok(writes)
}

/// Validate `genesis` (its synthetic accounts included) and produce its records except the
/// synthetic accounts' (see [`SyntheticAccounts::records`]). Asset supplies count them.
pub fn genesis_base_writes(genesis: &Genesis) -> Result<WriteSet, GenesisError> {
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
    if let Some(synthetic) = &genesis.synthetic {
        check_synthetic(&mut records, synthetic, &genesis.accounts)?;
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

/// The section names known owners and assets, and ids that are valid and not listed too; the
/// supplies grow by what the accounts hold.
fn check_synthetic(
    records: &mut BTreeMap<StateKey, StateValue>,
    synthetic: &SyntheticAccounts,
    listed: &[Account],
) -> Result<(), GenesisError> {
    let invalid = |reason: String| Err(GenesisError::Synthetic(reason));
    if synthetic.owners.is_empty() {
        return invalid("no owners".into());
    }
    for owner in &synthetic.owners {
        if !records.contains_key(&StateKey::Party(*owner)) {
            return Err(GenesisError::Unknown(
                "synthetic accounts".into(),
                format!("party {owner}"),
            ));
        }
    }
    if synthetic.count > 0 {
        // The longest id is the last one's.
        synthetic.account(synthetic.count - 1)?;
    }
    let prefix = format!("{}/", synthetic.prefix);
    if let Some(account) = listed
        .iter()
        .find(|account| account.id.to_string().starts_with(&prefix))
    {
        return Err(GenesisError::Duplicate(format!(
            "account {} (listed, and under the synthetic prefix {prefix})",
            account.id
        )));
    }
    for (index, (asset, quantity)) in synthetic.balances.iter().enumerate() {
        if synthetic.balances[..index].iter().any(|(a, _)| a == asset) {
            return Err(GenesisError::Duplicate(format!(
                "synthetic balance in {asset}"
            )));
        }
        let Some(StateValue::Asset(mut record)) = records.get(&StateKey::Asset(*asset)).cloned()
        else {
            return Err(GenesisError::Unknown(
                "synthetic accounts".into(),
                format!("asset {asset}"),
            ));
        };
        record.supply = quantity
            .checked_mul(synthetic.count as u128)
            .and_then(|total| record.supply.checked_add(total))
            .filter(|supply| *supply <= SUPPLY_MAX)
            .ok_or_else(|| GenesisError::SupplyTooLarge(asset.to_string()))?;
        records.insert(StateKey::Asset(*asset), StateValue::Asset(record));
    }
    Ok(())
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

    /// A genesis with two owners and a JPY cash asset, and `synthetic` accounts.
    fn with_accounts(listed: &[(&str, &str)], synthetic: Option<SyntheticAccounts>) -> Genesis {
        let party = |id: &str, seed: u64, roles: &[Role]| Party {
            id: id.parse().unwrap(),
            public_key: PrivateKey::from_seed(seed).public_key(),
            roles: RoleSet::of(roles),
            kyc: None,
        };
        let jpy: AssetId = "JPY".parse().unwrap();
        Genesis {
            parties: vec![
                party("GOV", 1, &[Role::NetworkGovernor, Role::TokenAdministrator]),
                party("A", 2, &[Role::Participant]),
                party("B", 3, &[Role::Participant]),
            ],
            assets: vec![Asset {
                id: jpy,
                class: kessai_types::AssetClass::Cash {
                    currency: "JPY".parse().unwrap(),
                    minor_unit_exponent: 0,
                },
                administrator: "GOV".parse().unwrap(),
                kyc_required: false,
                frozen: false,
                supply: 0,
            }],
            accounts: listed
                .iter()
                .map(|(id, owner)| Account {
                    id: id.parse().unwrap(),
                    owner: owner.parse().unwrap(),
                    frozen: false,
                })
                .collect(),
            balances: listed
                .iter()
                .map(|(id, _)| (id.parse().unwrap(), jpy, 7))
                .collect(),
            synthetic,
            ..genesis(Parameters::default())
        }
    }

    fn bench(count: u64) -> SyntheticAccounts {
        SyntheticAccounts {
            prefix: "BENCH".into(),
            count,
            owners: vec!["A".parse().unwrap(), "B".parse().unwrap()],
            balances: vec![("JPY".parse().unwrap(), 7)],
        }
    }

    #[test]
    fn synthetic_accounts_are_the_accounts_they_stand_for() {
        let listed = [
            ("BENCH/0", "A"),
            ("BENCH/1", "B"),
            ("BENCH/2", "A"),
            ("X", "B"),
        ];
        let expected = genesis_writes(&with_accounts(&listed, None)).unwrap();
        let synthetic = with_accounts(&listed[3..], Some(bench(3)));
        assert_eq!(genesis_writes(&synthetic).unwrap(), expected);
        // The base holds everything else, the supply counting the synthetic accounts.
        let base = genesis_base_writes(&synthetic).unwrap();
        let chunks: Vec<_> = [0..2, 2..3]
            .into_iter()
            .flat_map(|range| bench(3).records(range).collect::<Vec<_>>())
            .collect();
        assert_eq!(base.len() + chunks.len(), expected.len());
        for (key, value) in chunks {
            assert_eq!(expected[&key], Some(value));
        }
        for (key, value) in &base {
            assert_eq!(&expected[key], value);
        }
    }

    #[test]
    fn synthetic_accounts_that_cannot_exist_are_refused() {
        let unknown_owner = SyntheticAccounts {
            owners: vec!["C".parse().unwrap()],
            ..bench(3)
        };
        let unknown_asset = SyntheticAccounts {
            balances: vec![("USD".parse().unwrap(), 1)],
            ..bench(3)
        };
        let too_long = SyntheticAccounts {
            prefix: "A".repeat(30),
            ..bench(100)
        };
        let no_owner = SyntheticAccounts {
            owners: Vec::new(),
            ..bench(3)
        };
        let cases: [(&[(&str, &str)], SyntheticAccounts); 5] = [
            (&[], unknown_owner),
            (&[], unknown_asset),
            (&[], too_long),
            (&[], no_owner),
            (&[("BENCH/7", "A")], bench(3)),
        ];
        for (listed, synthetic) in cases {
            let result = genesis_base_writes(&with_accounts(listed, Some(synthetic.clone())));
            assert!(result.is_err(), "{synthetic:?} accepted");
        }
    }
}
