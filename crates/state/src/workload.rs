//! Deterministic synthetic workloads: many accounts and streams of signed transfers.
//!
//! Used by tests, the crash-recovery writer and the benchmarks. Accounts are owned by a smaller
//! set of parties so that a million accounts do not need a million signing keys.

use crate::{genesis::Genesis, key::Parameters};
use kessai_types::{
    Account, AccountId, Asset, AssetClass, AssetId, Expiry, Leg, Operation, Party, PartyId,
    PrivateKey, Role, RoleSet, Transaction, TxBody, UniqueId,
};

/// The opening balance of every workload account, in minor units.
pub const OPENING_BALANCE: u128 = 1_000_000_000;
/// Workload block `n` is `n` times this after genesis.
pub const BLOCK_INTERVAL_MS: u64 = 1_000;
/// Workload transactions expire this long after their block.
pub const EXPIRY_AFTER_MS: u64 = 60_000;

/// The number of accounts a benchmark uses: `KESSAI_BENCH_ACCOUNTS`, or `default`.
pub fn accounts_from_env(default: usize) -> usize {
    match std::env::var("KESSAI_BENCH_ACCOUNTS") {
        Ok(value) => value
            .replace('_', "")
            .parse()
            .expect("KESSAI_BENCH_ACCOUNTS must be a number of accounts"),
        Err(_) => default,
    }
}

/// A population of funded accounts and the keys of their owners.
pub struct Workload {
    pub genesis: Genesis,
    pub asset: AssetId,
    owners: Vec<(PartyId, PrivateKey)>,
    accounts: Vec<AccountId>,
}

/// SplitMix64: a small, fixed pseudo-random sequence (never used inside the state machine).
fn mix(mut state: u64) -> u64 {
    state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Workload {
    /// `accounts` accounts spread over `owners` parties, each holding [`OPENING_BALANCE`] JPY.
    pub fn new(accounts: usize, owners: usize, time_ms: u64) -> Self {
        assert!(owners > 0 && accounts >= 2);
        let asset = AssetId::new("JPY").unwrap();
        let owners: Vec<(PartyId, PrivateKey)> = (0..owners)
            .map(|index| {
                (
                    PartyId::new(&format!("OWNER/{index}")).unwrap(),
                    PrivateKey::from_seed(index as u64 + 1_000),
                )
            })
            .collect();
        let governor = PartyId::new("GOVERNOR").unwrap();
        let mut parties = vec![Party {
            id: governor,
            public_key: PrivateKey::from_seed(1).public_key(),
            roles: RoleSet::of(&[Role::NetworkGovernor, Role::TokenAdministrator]),
            kyc: None,
        }];
        parties.extend(owners.iter().map(|(id, key)| Party {
            id: *id,
            public_key: key.public_key(),
            roles: RoleSet::of(&[Role::Participant]),
            kyc: None,
        }));
        let account_ids: Vec<AccountId> = (0..accounts)
            .map(|index| AccountId::new(&format!("ACC/{index}")).unwrap())
            .collect();
        let genesis = Genesis {
            parameters: Parameters::default(),
            time_ms,
            parties,
            assets: vec![Asset {
                id: asset,
                class: AssetClass::Cash {
                    currency: "JPY".parse().unwrap(),
                    minor_unit_exponent: 0,
                },
                administrator: governor,
                kyc_required: false,
                frozen: false,
                supply: 0,
            }],
            accounts: account_ids
                .iter()
                .enumerate()
                .map(|(index, id)| Account {
                    id: *id,
                    owner: owners[index % owners.len()].0,
                    frozen: false,
                })
                .collect(),
            balances: account_ids
                .iter()
                .map(|id| (*id, asset, OPENING_BALANCE))
                .collect(),
            validators: Vec::new(),
        };
        Workload {
            genesis,
            asset,
            owners,
            accounts: account_ids,
        }
    }

    /// `count` signed transfers between pseudo-random distinct accounts, fixed by `seed`. Every
    /// `failing_every`-th one asks for more than any balance holds (0: none fail).
    pub fn transfers(
        &self,
        seed: u64,
        count: usize,
        expiry_ms: u64,
        failing_every: usize,
    ) -> Vec<Transaction> {
        (0..count)
            .map(|index| {
                let draw = mix(seed.wrapping_mul(1_000_003).wrapping_add(index as u64));
                let source = (draw % self.accounts.len() as u64) as usize;
                let offset = 1 + (mix(draw) % (self.accounts.len() as u64 - 1)) as usize;
                let target = (source + offset) % self.accounts.len();
                let failing = failing_every > 0 && index % failing_every == failing_every - 1;
                let quantity = if failing {
                    OPENING_BALANCE * 1_000
                } else {
                    1 + ((draw >> 40) % 1_000) as u128
                };
                let (owner, key) = &self.owners[source % self.owners.len()];
                let mut unique = [0u8; 16];
                unique[..8].copy_from_slice(&seed.to_be_bytes());
                unique[8..].copy_from_slice(&(index as u64).to_be_bytes());
                let body = TxBody {
                    network: self.genesis.parameters.network,
                    submitter: *owner,
                    unique_id: UniqueId(unique),
                    expiry: Expiry::TimeMs(expiry_ms),
                    operation: Operation::Transfer(Leg {
                        source: self.accounts[source],
                        target: self.accounts[target],
                        asset: self.asset,
                        quantity,
                    }),
                };
                Transaction::sign(body, &[(*owner, key)])
            })
            .collect()
    }

    /// Block `height`: its time ([`BLOCK_INTERVAL_MS`] apart) and `size` transfers expiring
    /// [`EXPIRY_AFTER_MS`] later, fixed by the height (see [`Self::transfers`]).
    pub fn block(&self, height: u64, size: usize, failing_every: usize) -> (u64, Vec<Transaction>) {
        let time_ms = self.genesis.time_ms + height * BLOCK_INTERVAL_MS;
        (
            time_ms,
            self.transfers(height, size, time_ms + EXPIRY_AFTER_MS, failing_every),
        )
    }

    pub fn accounts(&self) -> &[AccountId] {
        &self.accounts
    }
}
