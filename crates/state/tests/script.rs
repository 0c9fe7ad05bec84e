//! Data-driven tests: each `tests/scripts/*.ledger` file is a script of transactions and the
//! outcomes and balances expected after them.
//!
//! Script lines (`#` starts a comment):
//!   genesis threshold=M                      parameters of the network (before any party)
//!   party NAME ROLE,ROLE                     a genesis party; its key is derived from its name
//!   epoch blocks=N                           blocks per epoch
//!   validator NAME                           a genesis validator; its key is derived from NAME
//!   account ACCOUNT OWNER [ASSET=QTY ...]     a genesis account with opening balances
//!   asset ASSET CLASS ADMIN [kyc]             a genesis asset (CLASS: cash:JPY:0, equity:USD, bond:EUR, commodity:KG)
//!   block [time=MS]                          start the next block (applied at the next `expect` or `block`)
//!   tx SUBMITTER [options] OPERATION ARGS => ok | CODE [leg=N]
//!       options: signers=A,B  id=LABEL  expiry=time:MS|height:H  network=N  as=LABEL  forge
//!   expect balance ACCOUNT ASSET AVAILABLE [ENCUMBERED]
//!   expect supply ASSET QTY
//!   expect replay SUBMITTER LABEL ok|CODE    the first outcome remembered for a unique id
//!   expect records KIND COUNT                how many replay records are remembered
//!   expect validators EPOCH NAME,NAME|absent the validator set of an epoch, or none yet
//!
//! Operations: register PARTY ROLES | grant PARTY ROLE | revoke PARTY ROLE | kyc PARTY |
//!   open ACCOUNT OWNER | define ASSET CLASS [kyc] | issue ASSET ACCOUNT QTY |
//!   redeem ASSET ACCOUNT QTY | transfer SOURCE TARGET ASSET QTY |
//!   bundle SOURCE>TARGET:ASSET:QTY ... | freeze account:X|asset:X | unfreeze account:X|asset:X |
//!   encumber ACCOUNT ASSET QTY BENEFICIARY | release ACCOUNT ASSET LIEN_LABEL QTY |
//!   validators NAME,NAME|none (keys derived from the names; `none` is the empty set)

use commonware_parallel::Sequential;
use kessai_state::{Genesis, MemoryLedger, Parameters, StateKey, StateValue, TxOutcome};
use kessai_types::*;
use std::collections::HashMap;

fn key_of(name: &str) -> PrivateKey {
    PrivateKey::from_seed(name.bytes().fold(7u64, |hash, byte| {
        hash.wrapping_mul(31).wrapping_add(byte as u64)
    }))
}

fn role(text: &str) -> Role {
    match text {
        "NetworkGovernor" => Role::NetworkGovernor,
        "TokenAdministrator" => Role::TokenAdministrator,
        "Participant" => Role::Participant,
        "AccountOpeningAgent" => Role::AccountOpeningAgent,
        "PriceOracle" => Role::PriceOracle,
        "CentralCounterparty" => Role::CentralCounterparty,
        "Regulator" => Role::Regulator,
        "Platform" => Role::Platform,
        other => panic!("unknown role {other}"),
    }
}

fn validator_keys(names: &str) -> Vec<PublicKey> {
    names
        .split(',')
        .filter(|name| !name.is_empty() && *name != "none")
        .map(|name| key_of(name).public_key())
        .collect()
}

fn roles(text: &str) -> RoleSet {
    RoleSet::of(
        &text
            .split(',')
            .filter(|r| !r.is_empty())
            .map(role)
            .collect::<Vec<_>>(),
    )
}

fn class(text: &str) -> AssetClass {
    let parts: Vec<&str> = text.split(':').collect();
    match parts.as_slice() {
        ["cash", currency, exponent] => AssetClass::Cash {
            currency: currency.parse().unwrap(),
            minor_unit_exponent: exponent.parse().unwrap(),
        },
        ["equity", currency] => AssetClass::Equity {
            currency: currency.parse().unwrap(),
        },
        ["bond", currency] => AssetClass::Bond {
            currency: currency.parse().unwrap(),
        },
        ["commodity", unit] => AssetClass::Commodity {
            unit: unit.parse().unwrap(),
        },
        _ => panic!("unknown asset class {text}"),
    }
}

fn code(text: &str) -> Option<RejectionCode> {
    if text == "ok" {
        return None;
    }
    Some(
        RejectionCode::ALL
            .into_iter()
            .find(|code| code.name() == text)
            .unwrap_or_else(|| panic!("unknown code {text}")),
    )
}

fn target(text: &str) -> FreezeTarget {
    match text.split_once(':') {
        Some(("account", id)) => FreezeTarget::Account(id.parse().unwrap()),
        Some(("asset", id)) => FreezeTarget::Asset(id.parse().unwrap()),
        _ => panic!("freeze target is account:X or asset:X, got {text}"),
    }
}

struct Runner {
    genesis: Genesis,
    ledger: Option<MemoryLedger>,
    time_ms: u64,
    pending: Vec<(Transaction, Option<Rejection>, usize)>,
    unique_ids: HashMap<String, UniqueId>,
    tx_ids: HashMap<String, TxId>,
    next_unique: u64,
}

impl Runner {
    fn ledger(&mut self) -> &mut MemoryLedger {
        if self.ledger.is_none() {
            self.ledger = Some(MemoryLedger::new(&self.genesis).expect("valid genesis"));
        }
        self.ledger.as_mut().unwrap()
    }

    fn flush(&mut self, file: &str) {
        if self.pending.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut self.pending);
        let transactions: Vec<Transaction> = pending.iter().map(|(tx, _, _)| tx.clone()).collect();
        let verified = verify_transactions(transactions, &Sequential);
        let time_ms = self.time_ms;
        let outcomes: Vec<TxOutcome> = self.ledger().apply(time_ms, &verified);
        for ((_, expected, line), outcome) in pending.iter().zip(outcomes) {
            assert_eq!(
                outcome.rejection, *expected,
                "{file}:{line}: unexpected outcome"
            );
        }
        self.ledger().audit();
    }

    fn unique_id(&mut self, label: Option<&str>) -> UniqueId {
        if let Some(id) = label.and_then(|label| self.unique_ids.get(label)) {
            return *id;
        }
        self.next_unique += 1;
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.next_unique.to_be_bytes());
        let id = UniqueId(bytes);
        if let Some(label) = label {
            self.unique_ids.insert(label.to_string(), id);
        }
        id
    }

    fn transaction(&mut self, words: &[&str], line: usize) {
        let (words, expected) = {
            let arrow = words
                .iter()
                .position(|w| *w == "=>")
                .expect("tx line needs => outcome");
            (&words[..arrow], &words[arrow + 1..])
        };
        let expected = code(expected[0]).map(|code| Rejection {
            code,
            leg: expected
                .get(1)
                .map(|leg| leg.strip_prefix("leg=").unwrap().parse().unwrap()),
        });
        let submitter = words[1];
        let mut signers = vec![submitter.to_string()];
        let mut label = None;
        let mut save_as = None;
        let mut expiry = Expiry::TimeMs(self.time_ms + 60_000);
        let mut network = 1;
        let mut forge = false;
        let mut rest = &words[2..];
        while let Some((option, value)) = rest
            .first()
            .and_then(|w| w.split_once('='))
            .or_else(|| (rest.first() == Some(&"forge")).then_some(("forge", "")))
        {
            match option {
                "signers" => signers = value.split(',').map(str::to_string).collect(),
                "id" => label = Some(value.to_string()),
                "as" => save_as = Some(value.to_string()),
                "network" => network = value.parse().unwrap(),
                "forge" => forge = true,
                "expiry" => {
                    expiry = match value.split_once(':') {
                        Some(("time", ms)) => Expiry::TimeMs(ms.parse().unwrap()),
                        Some(("height", h)) => Expiry::Height(h.parse().unwrap()),
                        _ => panic!("expiry is time:MS or height:H"),
                    }
                }
                _ => break,
            }
            rest = &rest[1..];
        }
        let operation = match rest {
            ["register", party, party_roles] => Operation::RegisterParty(RegisterParty {
                party: party.parse().unwrap(),
                public_key: key_of(party).public_key(),
                roles: roles(party_roles),
            }),
            ["grant", party, r] => Operation::GrantRole(RoleChange {
                party: party.parse().unwrap(),
                role: role(r),
            }),
            ["revoke", party, r] => Operation::RevokeRole(RoleChange {
                party: party.parse().unwrap(),
                role: role(r),
            }),
            ["kyc", party] => Operation::AttestKyc(AttestKyc {
                party: party.parse().unwrap(),
                record_hash: Hash32::of(&[party.as_bytes()]),
            }),
            ["open", account, owner] => Operation::OpenAccount(OpenAccount {
                account: account.parse().unwrap(),
                owner: owner.parse().unwrap(),
            }),
            ["define", asset, c, flags @ ..] => Operation::DefineAsset(DefineAsset {
                asset: asset.parse().unwrap(),
                class: class(c),
                kyc_required: flags.contains(&"kyc"),
            }),
            ["issue", asset, account, quantity] => Operation::Issue(SupplyChange {
                asset: asset.parse().unwrap(),
                account: account.parse().unwrap(),
                quantity: quantity.parse().unwrap(),
            }),
            ["redeem", asset, account, quantity] => Operation::Redeem(SupplyChange {
                asset: asset.parse().unwrap(),
                account: account.parse().unwrap(),
                quantity: quantity.parse().unwrap(),
            }),
            ["transfer", source, target, asset, quantity] => Operation::Transfer(Leg {
                source: source.parse().unwrap(),
                target: target.parse().unwrap(),
                asset: asset.parse().unwrap(),
                quantity: quantity.parse().unwrap(),
            }),
            ["bundle", legs @ ..] => Operation::Bundle(Bundle {
                legs: legs
                    .iter()
                    .map(|leg| {
                        let (source, rest) = leg.split_once('>').unwrap();
                        let parts: Vec<&str> = rest.split(':').collect();
                        Leg {
                            source: source.parse().unwrap(),
                            target: parts[0].parse().unwrap(),
                            asset: parts[1].parse().unwrap(),
                            quantity: parts[2].parse().unwrap(),
                        }
                    })
                    .collect(),
            }),
            ["bulk", source, target, asset, count] => Operation::Bundle(Bundle {
                legs: (0..count.parse::<usize>().unwrap())
                    .map(|_| Leg {
                        source: source.parse().unwrap(),
                        target: target.parse().unwrap(),
                        asset: asset.parse().unwrap(),
                        quantity: 1,
                    })
                    .collect(),
            }),
            ["freeze", t] => Operation::Freeze(target(t)),
            ["unfreeze", t] => Operation::Unfreeze(target(t)),
            ["encumber", account, asset, quantity, beneficiary] => Operation::Encumber(Encumber {
                account: account.parse().unwrap(),
                asset: asset.parse().unwrap(),
                quantity: quantity.parse().unwrap(),
                beneficiary: beneficiary.parse().unwrap(),
            }),
            ["validators", names] => Operation::SetValidators(SetValidators {
                validators: validator_keys(names),
            }),
            ["release", account, asset, lien, quantity] => Operation::Release(Release {
                account: account.parse().unwrap(),
                asset: asset.parse().unwrap(),
                lien: self.tx_ids[*lien],
                quantity: quantity.parse().unwrap(),
            }),
            other => panic!("line {line}: unknown operation {other:?}"),
        };
        let body = TxBody {
            network,
            submitter: submitter.parse().unwrap(),
            unique_id: self.unique_id(label.as_deref()),
            expiry,
            operation,
        };
        if let Some(save_as) = save_as {
            self.tx_ids.insert(save_as, body.id());
        }
        let keys: Vec<(PartyId, PrivateKey)> = signers
            .iter()
            .map(|s| (s.parse().unwrap(), key_of(s)))
            .collect();
        let refs: Vec<(PartyId, &PrivateKey)> = keys.iter().map(|(p, k)| (*p, k)).collect();
        let mut transaction = Transaction::sign(body, &refs);
        if forge {
            // Sign a different body: the signature no longer matches.
            let mut other = transaction.body.clone();
            other.network += 1;
            transaction.endorsements = Transaction::sign(other, &refs).endorsements;
        }
        self.pending.push((transaction, expected, line));
    }
}

fn run(file: &str, text: &str) {
    let mut runner = Runner {
        genesis: Genesis {
            parameters: Parameters::default(),
            time_ms: 1_700_000_000_000,
            ..Default::default()
        },
        ledger: None,
        time_ms: 1_700_000_000_000,
        pending: Vec::new(),
        unique_ids: HashMap::new(),
        tx_ids: HashMap::new(),
        next_unique: 0,
    };
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let words: Vec<&str> = raw.split('#').next().unwrap().split_whitespace().collect();
        match words.as_slice() {
            [] => {}
            ["genesis", option] => {
                runner.genesis.parameters.governance_threshold =
                    option.strip_prefix("threshold=").unwrap().parse().unwrap()
            }
            ["epoch", option] => {
                runner.genesis.parameters.epoch_blocks =
                    option.strip_prefix("blocks=").unwrap().parse().unwrap()
            }
            ["validator", name] => runner.genesis.validators.push(key_of(name).public_key()),
            ["limit", "legs", n] => runner.genesis.parameters.bundle_legs_max = n.parse().unwrap(),
            ["party", name, party_roles] => runner.genesis.parties.push(Party {
                id: name.parse().unwrap(),
                public_key: key_of(name).public_key(),
                roles: roles(party_roles),
                kyc: None,
            }),
            ["asset", asset, c, admin, flags @ ..] => runner.genesis.assets.push(Asset {
                id: asset.parse().unwrap(),
                class: class(c),
                administrator: admin.parse().unwrap(),
                kyc_required: flags.contains(&"kyc"),
                frozen: false,
                supply: 0,
            }),
            ["account", account, owner, balances @ ..] => {
                runner.genesis.accounts.push(Account {
                    id: account.parse().unwrap(),
                    owner: owner.parse().unwrap(),
                    frozen: false,
                });
                for balance in balances {
                    let (asset, quantity) = balance.split_once('=').unwrap();
                    runner.genesis.balances.push((
                        account.parse().unwrap(),
                        asset.parse().unwrap(),
                        quantity.parse().unwrap(),
                    ));
                }
            }
            ["block", options @ ..] => {
                runner.flush(file);
                runner.time_ms += 1_000;
                for option in options {
                    runner.time_ms = option.strip_prefix("time=").unwrap().parse().unwrap();
                }
                runner.ledger();
            }
            ["tx", ..] => runner.transaction(&words, line),
            ["expect", rest @ ..] => {
                runner.flush(file);
                let ledger = runner.ledger();
                match rest {
                    ["balance", account, asset, available, encumbered @ ..] => {
                        let balance = ledger.balance(account, asset);
                        assert_eq!(
                            balance.available,
                            available.parse::<u128>().unwrap(),
                            "{file}:{line}: available"
                        );
                        let encumbered =
                            encumbered.first().map_or(0, |e| e.parse::<u128>().unwrap());
                        assert_eq!(balance.encumbered, encumbered, "{file}:{line}: encumbered");
                    }
                    ["supply", asset, quantity] => {
                        assert_eq!(
                            ledger.asset(asset).map(|a| a.supply),
                            Some(quantity.parse().unwrap()),
                            "{file}:{line}: supply"
                        );
                    }
                    ["replay", submitter, label, outcome] => {
                        let unique_id = runner.unique_ids[*label];
                        let record = runner
                            .ledger()
                            .replay_record(submitter.parse().unwrap(), unique_id);
                        let record =
                            record.unwrap_or_else(|| panic!("{file}:{line}: no replay record"));
                        assert_eq!(
                            record.rejection.map(|r| r.code),
                            code(outcome),
                            "{file}:{line}: first outcome"
                        );
                    }
                    ["records", "replay", count] => {
                        let n = runner
                            .ledger()
                            .count(|key| matches!(key, StateKey::Replay(..)));
                        assert_eq!(
                            n,
                            count.parse::<usize>().unwrap(),
                            "{file}:{line}: replay records"
                        );
                    }
                    ["validators", epoch, names] => {
                        let held = match ledger.get(&StateKey::Validators(epoch.parse().unwrap())) {
                            Some(StateValue::Validators(set)) => Some(set.0.clone()),
                            None => None,
                            Some(other) => panic!("{file}:{line}: {other:?}"),
                        };
                        let mut expected = (*names != "absent").then(|| validator_keys(names));
                        if let Some(keys) = expected.as_mut() {
                            keys.sort();
                        }
                        assert_eq!(held, expected, "{file}:{line}: validators");
                    }
                    other => panic!("{file}:{line}: unknown expectation {other:?}"),
                }
            }
            other => panic!("{file}:{line}: unknown line {other:?}"),
        }
    }
    runner.flush(file);
}

#[test]
fn scripts() {
    let directory = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scripts");
    let mut files: Vec<_> = std::fs::read_dir(directory)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no scripts found in {directory}");
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        run(&name, &std::fs::read_to_string(&path).unwrap());
    }
}
