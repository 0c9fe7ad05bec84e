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
//!   blocks N                                 apply N empty blocks (the mark-to-market walk runs)
//!   expect repo LABEL STATUS [ASSET=QTY ...] [default]   a contract's status, collateral, default
//!   expect events LABEL NAME,NAME,...        a contract's events, in order
//!   expect valuation LABEL SEQ EXPOSURE REQUIRED HELD    the values of a MARKED event
//!   expect moves LABEL SEQ ASSET:+QTY|ASSET:-QTY ... held=VALUE   collateral moved (+ to the lender)
//!   expect fee LABEL SEQ QTY                 the fee of a MATURED or TERMINATED event
//!   expect open N                            open contracts in the book
//!
//! Operations: register PARTY ROLES | grant PARTY ROLE | revoke PARTY ROLE | kyc PARTY |
//!   open ACCOUNT OWNER | define ASSET CLASS [kyc] | issue ASSET ACCOUNT QTY |
//!   redeem ASSET ACCOUNT QTY | transfer SOURCE TARGET ASSET QTY |
//!   bundle SOURCE>TARGET:ASSET:QTY ... | freeze account:X|asset:X | unfreeze account:X|asset:X |
//!   encumber ACCOUNT ASSET QTY BENEFICIARY | release ACCOUNT ASSET LIEN_LABEL QTY |
//!   validators NAME,NAME|none (keys derived from the names; `none` is the empty set) |
//!   repo KEY=VALUE ... (lender=PARTY:ACCOUNT borrower=PARTY:ACCOUNT principal=ASSET:QTY
//!     collateral=ASSET:BPS,... ccy=CUR haircut=BPS threshold=BPS start=DUR maturity=DUR|open
//!     rate=DEC basis=360|365 fee=ASSET offer=DUR; DUR is from the block time: 0, 5s, 2h, 7d, -5s) |
//!   approve|reject|cancel|start|mark|mature|terminate|closeout CONTRACT_LABEL |
//!   substitute CONTRACT_LABEL REMOVE ADD QTY |
//!   prices DATE [ASSET=PRICE ...] [BASE/QUOTE=RATE ...] [close]

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

fn repo_step(text: &str) -> Option<RepoStep> {
    Some(match text {
        "approve" => RepoStep::Approve,
        "reject" => RepoStep::Reject,
        "cancel" => RepoStep::Cancel,
        "start" => RepoStep::Start,
        "mark" => RepoStep::Mark,
        "mature" => RepoStep::Mature,
        "terminate" => RepoStep::Terminate,
        "closeout" => RepoStep::CloseOut,
        _ => return None,
    })
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

    /// Milliseconds after the current block time: `0`, `5s`, `2h`, `7d`; `-5s` is before it.
    fn after(&self, text: &str) -> u64 {
        if let Some(before) = text.strip_prefix('-') {
            return 2 * self.time_ms - self.after(before);
        }
        let (number, unit) =
            text.split_at(text.find(|c: char| c.is_alphabetic()).unwrap_or(text.len()));
        let unit = match unit {
            "" => 1,
            "s" => 1_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            other => panic!("unknown duration unit {other}"),
        };
        self.time_ms + number.parse::<u64>().unwrap() * unit
    }

    fn repo_terms(&self, options: &[&str]) -> RepoTerms {
        let options: HashMap<&str, &str> =
            options.iter().map(|o| o.split_once('=').unwrap()).collect();
        let pair = |name: &str| options[name].split_once(':').unwrap();
        let (lender, lender_account) = pair("lender");
        let (borrower, borrower_account) = pair("borrower");
        let (principal_asset, principal_quantity) = pair("principal");
        RepoTerms {
            lender: lender.parse().unwrap(),
            lender_account: lender_account.parse().unwrap(),
            borrower: borrower.parse().unwrap(),
            borrower_account: borrower_account.parse().unwrap(),
            principal_asset: principal_asset.parse().unwrap(),
            principal_quantity: principal_quantity.parse().unwrap(),
            collateral: options["collateral"]
                .split(',')
                .map(|item| {
                    let (asset, weight) = item.split_once(':').unwrap();
                    CollateralWeight {
                        asset: asset.parse().unwrap(),
                        weight_bps: weight.parse().unwrap(),
                    }
                })
                .collect::<Vec<_>>()
                .into(),
            valuation_currency: options["ccy"].parse().unwrap(),
            haircut_bps: options.get("haircut").map_or(0, |v| v.parse().unwrap()),
            threshold_bps: options.get("threshold").map_or(0, |v| v.parse().unwrap()),
            start_ms: self.after(options.get("start").unwrap_or(&"0")),
            maturity_ms: match options.get("maturity") {
                None | Some(&"open") => None,
                Some(duration) => Some(self.after(duration)),
            },
            rate: options.get("rate").unwrap_or(&"0").parse().unwrap(),
            day_count: match options.get("basis") {
                Some(&"360") => DayCount::Act360,
                _ => DayCount::Act365Fixed,
            },
            fee_asset: options["fee"].parse().unwrap(),
            offer_expiry_ms: self.after(options.get("offer").unwrap_or(&"1h")),
        }
    }

    fn contract(&mut self, label: &str) -> RepoContract {
        let id = self.tx_ids[label];
        match self.ledger().get(&StateKey::Repo(id)) {
            Some(StateValue::Repo(contract)) => contract.clone(),
            other => panic!("no contract {label}: {other:?}"),
        }
    }

    fn event(&mut self, label: &str, sequence: &str) -> RepoEvent {
        let id = self.tx_ids[label];
        match self
            .ledger()
            .get(&StateKey::RepoEvent(id, sequence.parse().unwrap()))
        {
            Some(StateValue::RepoEvent(record)) => record.event.clone(),
            other => panic!("no event {sequence} of {label}: {other:?}"),
        }
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
            ["repo", options @ ..] => Operation::RegisterRepo(self.repo_terms(options)),
            [step, contract] if repo_step(step).is_some() => Operation::RepoAction(RepoAction {
                contract: self.tx_ids[*contract],
                step: repo_step(step).unwrap(),
            }),
            ["substitute", contract, remove, add, quantity] => {
                Operation::SubstituteCollateral(SubstituteCollateral {
                    contract: self.tx_ids[*contract],
                    remove: remove.parse().unwrap(),
                    add: add.parse().unwrap(),
                    quantity: quantity.parse().unwrap(),
                })
            }
            ["prices", date, entries @ ..] => {
                let mut prices = Vec::new();
                let mut rates = Vec::new();
                for entry in entries.iter().filter(|e| **e != "close") {
                    let (name, value) = entry.split_once('=').unwrap();
                    match name.split_once('/') {
                        Some((base, quote)) => rates.push(FxEntry {
                            base: base.parse().unwrap(),
                            quote: quote.parse().unwrap(),
                            rate: value.parse().unwrap(),
                        }),
                        None => prices.push(PriceEntry {
                            asset: name.parse().unwrap(),
                            price: value.parse().unwrap(),
                        }),
                    }
                }
                Operation::PublishPrices(PublishPrices {
                    date: date.parse().unwrap(),
                    prices: prices.into(),
                    rates: rates.into(),
                    close: entries.contains(&"close"),
                })
            }
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
            ["blocks", count] => {
                runner.flush(file);
                for _ in 0..count.parse::<u32>().unwrap() {
                    runner.time_ms += 1_000;
                    let time_ms = runner.time_ms;
                    runner.ledger().apply(time_ms, &[]);
                }
                runner.ledger().audit();
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
                    ["repo", label, status, rest @ ..] => {
                        let contract = runner.contract(label);
                        assert_eq!(contract.status.name(), *status, "{file}:{line}: status");
                        let held: Vec<String> = contract
                            .collateral
                            .iter()
                            .map(|h| format!("{}={}", h.asset, h.quantity))
                            .collect();
                        let expected: Vec<&&str> =
                            rest.iter().filter(|w| **w != "default").collect();
                        assert_eq!(
                            held.iter().collect::<Vec<_>>(),
                            expected,
                            "{file}:{line}: collateral"
                        );
                        assert_eq!(
                            contract.in_default,
                            rest.contains(&"default"),
                            "{file}:{line}: default flag"
                        );
                    }
                    ["events", label, names] => {
                        let contract = runner.contract(label);
                        let held: Vec<&str> = (0..contract.events)
                            .map(|n| runner.event(label, &n.to_string()).name())
                            .collect();
                        assert_eq!(held.join(","), *names, "{file}:{line}: events");
                    }
                    ["valuation", label, sequence, exposure, required, held] => {
                        let RepoEvent::Marked(valuation) = runner.event(label, sequence) else {
                            panic!("{file}:{line}: not a MARKED event");
                        };
                        let values = [valuation.exposure, valuation.required, valuation.held];
                        let expected = [exposure, required, held].map(|v| v.parse().unwrap());
                        assert_eq!(values, expected, "{file}:{line}: valuation");
                    }
                    ["moves", label, sequence, expected @ ..] => {
                        let moves = match runner.event(label, sequence) {
                            RepoEvent::Started(moves) | RepoEvent::MarginCallSettled(moves) => {
                                moves
                            }
                            other => panic!("{file}:{line}: no moves in {other:?}"),
                        };
                        let held: Vec<String> = moves
                            .moves
                            .iter()
                            .map(|m| {
                                let sign = if m.returned { '-' } else { '+' };
                                format!("{}:{sign}{}", m.asset, m.quantity)
                            })
                            .chain([format!("held={}", moves.held)])
                            .collect();
                        assert_eq!(held.join(" "), expected.join(" "), "{file}:{line}: moves");
                    }
                    ["fee", label, sequence, fee] => {
                        let held = match runner.event(label, sequence) {
                            RepoEvent::Matured(fee) | RepoEvent::Terminated(fee) => fee,
                            other => panic!("{file}:{line}: no fee in {other:?}"),
                        };
                        assert_eq!(held, fee.parse::<u128>().unwrap(), "{file}:{line}: fee");
                    }
                    ["open", count] => {
                        let open = match runner.ledger().get(&StateKey::RepoBook) {
                            Some(StateValue::RepoBook(book)) => book.open,
                            _ => 0,
                        };
                        assert_eq!(open, count.parse::<u64>().unwrap(), "{file}:{line}: open");
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
