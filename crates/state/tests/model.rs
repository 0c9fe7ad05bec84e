//! Property test: the state machine against a small reference model.
//!
//! Random blocks of transfers, bundles, issues, redemptions, liens and exact replays run on the
//! real executor and on an independent model of balances. After every block both must agree on
//! every outcome and every balance, and the full invariants must hold (supply = sum of balances,
//! encumbered = liens). Replayed transactions must be duplicates that change nothing.

use commonware_parallel::Sequential;
use kessai_state::{Genesis, MemoryLedger, Parameters};
use kessai_types::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

const PARTIES: [&str; 4] = ["P0", "P1", "P2", "ADMIN"];
const ACCOUNTS: [&str; 4] = ["A0", "A1", "A2", "A3"];
const ASSETS: [&str; 2] = ["X", "Y"];
const GENESIS_MS: u64 = 1_700_000_000_000;

fn key(party: usize) -> PrivateKey {
    PrivateKey::from_seed(party as u64 + 100)
}
fn owner(account: usize) -> usize {
    account % 3
}

#[derive(Clone, Debug)]
enum Op {
    Transfer {
        source: usize,
        target: usize,
        asset: usize,
        quantity: u128,
    },
    Bundle(Vec<(usize, usize, usize, u128)>),
    Issue {
        asset: usize,
        account: usize,
        quantity: u128,
    },
    Redeem {
        asset: usize,
        account: usize,
        quantity: u128,
    },
    Encumber {
        account: usize,
        asset: usize,
        quantity: u128,
        beneficiary: usize,
    },
    Release {
        lien: usize,
        quantity: u128,
    },
    /// Submit an exact copy of an earlier transaction.
    Replay(usize),
}

#[derive(Clone, Debug)]
struct Step {
    op: Op,
    /// Bit i set: party i signs. The submitter is the lowest signer.
    signers: u8,
    unique_id: u8,
}

fn op() -> impl Strategy<Value = Op> {
    let quantity = prop_oneof![Just(0u128), 1u128..60, 50u128..400];
    let leg = (0..4usize, 0..4usize, 0..2usize, quantity.clone());
    prop_oneof![
        4 => leg.clone().prop_map(|(source, target, asset, quantity)| Op::Transfer { source, target, asset, quantity }),
        2 => prop::collection::vec(leg, 0..5).prop_map(Op::Bundle),
        1 => (0..2usize, 0..4usize, quantity.clone()).prop_map(|(asset, account, quantity)| Op::Issue { asset, account, quantity }),
        1 => (0..2usize, 0..4usize, quantity.clone()).prop_map(|(asset, account, quantity)| Op::Redeem { asset, account, quantity }),
        1 => (0..4usize, 0..2usize, quantity.clone(), 0..3usize).prop_map(|(account, asset, quantity, beneficiary)| Op::Encumber { account, asset, quantity, beneficiary }),
        1 => (0..8usize, quantity).prop_map(|(lien, quantity)| Op::Release { lien, quantity }),
        1 => (0..64usize).prop_map(Op::Replay),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    (op(), 1u8..16, 0u8..24).prop_map(|(op, signers, unique_id)| Step {
        op,
        signers,
        unique_id,
    })
}

/// The reference: balances, supply and liens as plain maps, with the rules written out directly.
#[derive(Clone, Default)]
struct Model {
    balances: BTreeMap<(usize, usize), (u128, u128)>,
    liens: BTreeMap<TxId, (usize, usize, usize, u128)>,
    used: std::collections::BTreeSet<(usize, u8)>,
}

type Outcome = Option<(RejectionCode, Option<u16>)>;

impl Model {
    fn balance(&mut self, account: usize, asset: usize) -> &mut (u128, u128) {
        self.balances.entry((account, asset)).or_default()
    }

    fn legs(
        &mut self,
        legs: &[(usize, usize, usize, u128)],
        signed: impl Fn(usize) -> bool,
    ) -> Outcome {
        let bundle = legs.len() > 1;
        let mut scratch = self.clone();
        for (index, (source, target, asset, quantity)) in legs.iter().copied().enumerate() {
            let leg = bundle.then_some(index as u16);
            if quantity == 0 || source == target {
                return Some((RejectionCode::InvalidQuantity, leg));
            }
            if !signed(owner(source)) {
                return Some((RejectionCode::NotAuthorized, leg));
            }
            let debit = scratch.balance(source, asset);
            if debit.0 < quantity {
                return Some((RejectionCode::InsufficientBalance, leg));
            }
            debit.0 -= quantity;
            scratch.balance(target, asset).0 += quantity;
        }
        *self = scratch;
        None
    }

    fn apply(&mut self, op: &Op, signers: u8, tx_id: TxId) -> Outcome {
        let signed = |party: usize| signers & (1 << party) != 0;
        let admin = 3;
        match op {
            Op::Transfer {
                source,
                target,
                asset,
                quantity,
            } => self.legs(&[(*source, *target, *asset, *quantity)], signed),
            Op::Bundle(legs) if legs.is_empty() => Some((RejectionCode::InvalidOperation, None)),
            Op::Bundle(legs) => self.legs(legs, signed),
            Op::Issue {
                asset,
                account,
                quantity,
            } => {
                if *quantity == 0 {
                    return Some((RejectionCode::InvalidQuantity, None));
                }
                if !signed(admin) {
                    return Some((RejectionCode::NotAuthorized, None));
                }
                self.balance(*account, *asset).0 += quantity;
                None
            }
            Op::Redeem {
                asset,
                account,
                quantity,
            } => {
                if *quantity == 0 {
                    return Some((RejectionCode::InvalidQuantity, None));
                }
                if !signed(admin) || !signed(owner(*account)) {
                    return Some((RejectionCode::NotAuthorized, None));
                }
                let balance = self.balance(*account, *asset);
                if balance.0 < *quantity {
                    return Some((RejectionCode::InsufficientBalance, None));
                }
                balance.0 -= quantity;
                None
            }
            Op::Encumber {
                account,
                asset,
                quantity,
                beneficiary,
            } => {
                if *quantity == 0 {
                    return Some((RejectionCode::InvalidQuantity, None));
                }
                if !signed(owner(*account)) {
                    return Some((RejectionCode::NotAuthorized, None));
                }
                let balance = self.balance(*account, *asset);
                if balance.0 < *quantity {
                    return Some((RejectionCode::InsufficientBalance, None));
                }
                balance.0 -= quantity;
                balance.1 += quantity;
                self.liens
                    .insert(tx_id, (*account, *asset, *beneficiary, *quantity));
                None
            }
            Op::Release { .. } | Op::Replay(_) => unreachable!("resolved by the harness"),
        }
    }

    fn release(&mut self, lien: Option<TxId>, quantity: u128, signers: u8) -> Outcome {
        if quantity == 0 {
            return Some((RejectionCode::InvalidQuantity, None));
        }
        let Some((account, asset, beneficiary, held)) =
            lien.and_then(|id| self.liens.get(&id).copied())
        else {
            return Some((RejectionCode::UnknownLien, None));
        };
        if signers & (1 << beneficiary) == 0 {
            return Some((RejectionCode::NotAuthorized, None));
        }
        if held < quantity {
            return Some((RejectionCode::InsufficientBalance, None));
        }
        let id = lien.unwrap();
        if held == quantity {
            self.liens.remove(&id);
        } else {
            self.liens.get_mut(&id).unwrap().3 -= quantity;
        }
        let balance = self.balance(account, asset);
        balance.1 -= quantity;
        balance.0 += quantity;
        None
    }
}

fn genesis() -> (Genesis, Model) {
    let roles = |party: usize| {
        if party == 3 {
            RoleSet::of(&[Role::TokenAdministrator, Role::NetworkGovernor])
        } else {
            RoleSet::of(&[Role::Participant])
        }
    };
    let mut model = Model::default();
    let mut balances = Vec::new();
    for account in 0..4 {
        for asset in 0..2 {
            let quantity = 100 + 50 * account as u128 + 25 * asset as u128;
            balances.push((
                ACCOUNTS[account].parse().unwrap(),
                ASSETS[asset].parse().unwrap(),
                quantity,
            ));
            *model.balance(account, asset) = (quantity, 0);
        }
    }
    let genesis = Genesis {
        parameters: Parameters {
            bundle_legs_max: 4,
            ..Parameters::default()
        },
        time_ms: GENESIS_MS,
        parties: (0..4)
            .map(|party| Party {
                id: PARTIES[party].parse().unwrap(),
                public_key: key(party).public_key(),
                roles: roles(party),
                kyc: None,
            })
            .collect(),
        assets: ASSETS
            .iter()
            .map(|asset| Asset {
                id: asset.parse().unwrap(),
                class: AssetClass::Equity {
                    currency: "JPY".parse().unwrap(),
                },
                administrator: "ADMIN".parse().unwrap(),
                kyc_required: false,
                frozen: false,
                supply: 0,
            })
            .collect(),
        accounts: (0..4)
            .map(|account| Account {
                id: ACCOUNTS[account].parse().unwrap(),
                owner: PARTIES[owner(account)].parse().unwrap(),
                frozen: false,
            })
            .collect(),
        balances,
        validators: Vec::new(),
        synthetic: None,
    };
    (genesis, model)
}

fn leg((source, target, asset, quantity): (usize, usize, usize, u128)) -> Leg {
    Leg {
        source: ACCOUNTS[source].parse().unwrap(),
        target: ACCOUNTS[target].parse().unwrap(),
        asset: ASSETS[asset].parse().unwrap(),
        quantity,
    }
}

fn supply_change(asset: usize, account: usize, quantity: u128) -> SupplyChange {
    SupplyChange {
        asset: ASSETS[asset].parse().unwrap(),
        account: ACCOUNTS[account].parse().unwrap(),
        quantity,
    }
}

fn run(blocks: Vec<Vec<Step>>) {
    let (genesis, mut model) = genesis();
    let mut ledger = MemoryLedger::new(&genesis).unwrap();
    let mut submitted: Vec<Transaction> = Vec::new();
    let mut encumbrances: Vec<TxId> = Vec::new();
    for (block_index, block) in blocks.into_iter().enumerate() {
        let time_ms = GENESIS_MS + (block_index as u64 + 1) * 1_000;
        let mut transactions = Vec::new();
        let mut expected: Vec<Outcome> = Vec::new();
        for step in block {
            let signers: Vec<usize> = (0..4)
                .filter(|party| step.signers & (1 << party) != 0)
                .collect();
            let submitter = signers[0];
            let (transaction, outcome) = match &step.op {
                Op::Replay(index) if !submitted.is_empty() => {
                    let transaction = submitted[index % submitted.len()].clone();
                    (transaction, Some((RejectionCode::Duplicate, None)))
                }
                Op::Replay(_) => continue,
                op => {
                    let operation = match op {
                        Op::Transfer {
                            source,
                            target,
                            asset,
                            quantity,
                        } => Operation::Transfer(leg((*source, *target, *asset, *quantity))),
                        Op::Bundle(legs) => Operation::Bundle(Bundle {
                            legs: legs.iter().copied().map(leg).collect(),
                        }),
                        Op::Issue {
                            asset,
                            account,
                            quantity,
                        } => Operation::Issue(supply_change(*asset, *account, *quantity)),
                        Op::Redeem {
                            asset,
                            account,
                            quantity,
                        } => Operation::Redeem(supply_change(*asset, *account, *quantity)),
                        Op::Encumber {
                            account,
                            asset,
                            quantity,
                            beneficiary,
                        } => Operation::Encumber(Encumber {
                            account: ACCOUNTS[*account].parse().unwrap(),
                            asset: ASSETS[*asset].parse().unwrap(),
                            quantity: *quantity,
                            beneficiary: PARTIES[*beneficiary].parse().unwrap(),
                        }),
                        Op::Release { lien, quantity } => {
                            let lien_id = (!encumbrances.is_empty())
                                .then(|| encumbrances[lien % encumbrances.len()]);
                            let (account, asset) = lien_id
                                .and_then(|id| model.liens.get(&id))
                                .map_or((0, 0), |l| (l.0, l.1));
                            Operation::Release(Release {
                                account: ACCOUNTS[account].parse().unwrap(),
                                asset: ASSETS[asset].parse().unwrap(),
                                lien: lien_id.unwrap_or_default(),
                                quantity: *quantity,
                            })
                        }
                        Op::Replay(_) => unreachable!(),
                    };
                    let body = TxBody {
                        network: 1,
                        submitter: PARTIES[submitter].parse().unwrap(),
                        unique_id: UniqueId([step.unique_id; 16]),
                        expiry: Expiry::TimeMs(time_ms + 60_000),
                        operation,
                    };
                    let keys: Vec<(PartyId, PrivateKey)> = signers
                        .iter()
                        .map(|p| (PARTIES[*p].parse().unwrap(), key(*p)))
                        .collect();
                    let references: Vec<(PartyId, &PrivateKey)> =
                        keys.iter().map(|(p, k)| (*p, k)).collect();
                    let transaction = Transaction::sign(body, &references);
                    let id = transaction.body.id();
                    let outcome = if !model.used.insert((submitter, step.unique_id)) {
                        Some((RejectionCode::Duplicate, None))
                    } else {
                        match op {
                            Op::Release { lien, quantity } => {
                                let lien_id = (!encumbrances.is_empty())
                                    .then(|| encumbrances[lien % encumbrances.len()]);
                                model.release(lien_id, *quantity, step.signers)
                            }
                            other => model.apply(other, step.signers, id),
                        }
                    };
                    // A missing signature is what a forger could cause: it does not use the id.
                    if matches!(outcome, Some((RejectionCode::NotAuthorized, _))) {
                        model.used.remove(&(submitter, step.unique_id));
                    }
                    if matches!(op, Op::Encumber { .. }) {
                        encumbrances.push(id);
                    }
                    (transaction, outcome)
                }
            };
            // Exact replays of a used id are duplicates; an id left unused may land again.
            if !matches!(outcome, Some((RejectionCode::NotAuthorized, _))) {
                submitted.push(transaction.clone());
            }
            transactions.push(transaction);
            expected.push(outcome);
        }
        let verified = verify_transactions(transactions, &Sequential);
        let outcomes = ledger.apply(time_ms, &verified);
        let actual: Vec<Outcome> = outcomes
            .iter()
            .map(|o| o.rejection.map(|r| (r.code, r.leg)))
            .collect();
        assert_eq!(
            actual, expected,
            "block {block_index}: outcomes differ from the model"
        );
        ledger.audit();
        for account in 0..4 {
            for asset in 0..2 {
                let actual = ledger.balance(ACCOUNTS[account], ASSETS[asset]);
                let (available, encumbered) = model
                    .balances
                    .get(&(account, asset))
                    .copied()
                    .unwrap_or_default();
                assert_eq!(
                    (actual.available, actual.encumbered),
                    (available, encumbered),
                    "block {block_index}: balance of {} in {}",
                    ACCOUNTS[account],
                    ASSETS[asset]
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]
    #[test]
    fn executor_agrees_with_the_model(blocks in prop::collection::vec(prop::collection::vec(step(), 0..12), 1..12)) {
        run(blocks);
    }
}
