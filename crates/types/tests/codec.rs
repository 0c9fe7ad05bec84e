//! Encoding: round trips, canonical form, hostile bytes, and a pinned conformance fixture.

use commonware_codec::{DecodeExt, Encode, EncodeSize};
use kessai_types::*;
use proptest::prelude::*;

fn code<T: std::str::FromStr + std::fmt::Debug>() -> impl Strategy<Value = T>
where
    T::Err: std::fmt::Debug,
{
    "[A-Z0-9][A-Z0-9./_:-]{0,31}".prop_map(|text| text.parse().unwrap())
}

fn hash() -> impl Strategy<Value = Hash32> {
    any::<[u8; 32]>().prop_map(Hash32)
}

fn leg() -> impl Strategy<Value = Leg> {
    (code(), code(), code(), any::<u128>()).prop_map(|(source, target, asset, quantity)| Leg {
        source,
        target,
        asset,
        quantity,
    })
}

fn class() -> impl Strategy<Value = AssetClass> {
    prop_oneof![
        code().prop_map(|currency| AssetClass::Bond { currency }),
        code().prop_map(|currency| AssetClass::Equity { currency }),
        (code(), 0u8..=8).prop_map(|(currency, minor_unit_exponent)| AssetClass::Cash {
            currency,
            minor_unit_exponent
        }),
        code().prop_map(|unit| AssetClass::Commodity { unit }),
    ]
}

fn role() -> impl Strategy<Value = Role> {
    (0..Role::ALL.len()).prop_map(|index| Role::ALL[index])
}

fn decimal() -> impl Strategy<Value = Decimal> {
    (any::<u128>(), 0u8..=18).prop_map(|(mantissa, scale)| Decimal::new(mantissa, scale).unwrap())
}

fn repo_terms() -> impl Strategy<Value = RepoTerms> {
    let collateral = prop::collection::vec(
        (code(), any::<u16>())
            .prop_map(|(asset, weight_bps)| CollateralWeight { asset, weight_bps }),
        0..=repo::COLLATERAL_ASSETS_MAX,
    );
    (
        (code(), code(), code(), code(), code(), any::<u128>()),
        (collateral, code(), any::<u32>(), any::<u32>(), any::<u64>()),
        (
            any::<Option<u64>>(),
            decimal(),
            any::<bool>(),
            code(),
            any::<u64>(),
        ),
    )
        .prop_map(
            |(
                (
                    lender,
                    lender_account,
                    borrower,
                    borrower_account,
                    principal_asset,
                    principal_quantity,
                ),
                (collateral, valuation_currency, haircut_bps, threshold_bps, start_ms),
                (maturity_ms, rate, act360, fee_asset, offer_expiry_ms),
            )| RepoTerms {
                lender,
                lender_account,
                borrower,
                borrower_account,
                principal_asset,
                principal_quantity,
                collateral: collateral.into(),
                valuation_currency,
                haircut_bps,
                threshold_bps,
                start_ms,
                maturity_ms,
                rate,
                day_count: if act360 {
                    DayCount::Act360
                } else {
                    DayCount::Act365Fixed
                },
                fee_asset,
                offer_expiry_ms,
            },
        )
}

fn operation() -> impl Strategy<Value = Operation> {
    prop_oneof![
        repo_terms().prop_map(Operation::RegisterRepo),
        (hash(), 0usize..8).prop_map(|(contract, step)| {
            let steps = [
                RepoStep::Approve,
                RepoStep::Reject,
                RepoStep::Cancel,
                RepoStep::Start,
                RepoStep::Mark,
                RepoStep::Mature,
                RepoStep::Terminate,
                RepoStep::CloseOut,
            ];
            Operation::RepoAction(RepoAction {
                contract,
                step: steps[step],
            })
        }),
        (hash(), code(), code(), any::<u128>()).prop_map(|(contract, remove, add, quantity)| {
            Operation::SubstituteCollateral(SubstituteCollateral {
                contract,
                remove,
                add,
                quantity,
            })
        }),
        (
            any::<u32>(),
            prop::collection::vec((code(), decimal()), 0..20),
            prop::collection::vec((code(), code(), decimal()), 0..5),
            any::<bool>(),
        )
            .prop_map(|(date, prices, rates, close)| {
                Operation::PublishPrices(PublishPrices {
                    date,
                    prices: prices
                        .into_iter()
                        .map(|(asset, price)| PriceEntry { asset, price })
                        .collect::<Vec<_>>()
                        .into(),
                    rates: rates
                        .into_iter()
                        .map(|(base, quote, rate)| FxEntry { base, quote, rate })
                        .collect::<Vec<_>>()
                        .into(),
                    close,
                })
            }),
        (code(), any::<u64>(), 0u16..256).prop_map(
            |(party, seed, roles)| Operation::RegisterParty(RegisterParty {
                party,
                public_key: PrivateKey::from_seed(seed).public_key(),
                roles: RoleSet(roles),
            })
        ),
        (code(), role()).prop_map(|(party, role)| Operation::GrantRole(RoleChange { party, role })),
        (code(), role())
            .prop_map(|(party, role)| Operation::RevokeRole(RoleChange { party, role })),
        (code(), hash()).prop_map(|(party, record_hash)| Operation::AttestKyc(AttestKyc {
            party,
            record_hash
        })),
        (code(), code())
            .prop_map(|(account, owner)| Operation::OpenAccount(OpenAccount { account, owner })),
        (code(), class(), any::<bool>()).prop_map(|(asset, class, kyc_required)| {
            Operation::DefineAsset(DefineAsset {
                asset,
                class,
                kyc_required,
            })
        }),
        (code(), code(), any::<u128>()).prop_map(|(asset, account, quantity)| Operation::Issue(
            SupplyChange {
                asset,
                account,
                quantity
            }
        )),
        (code(), code(), any::<u128>()).prop_map(|(asset, account, quantity)| Operation::Redeem(
            SupplyChange {
                asset,
                account,
                quantity
            }
        )),
        leg().prop_map(Operation::Transfer),
        code().prop_map(|account| Operation::Freeze(FreezeTarget::Account(account))),
        code().prop_map(|asset| Operation::Unfreeze(FreezeTarget::Asset(asset))),
        (code(), code(), any::<u128>(), code()).prop_map(
            |(account, asset, quantity, beneficiary)| Operation::Encumber(Encumber {
                account,
                asset,
                quantity,
                beneficiary
            })
        ),
        (code(), code(), hash(), any::<u128>()).prop_map(|(account, asset, lien, quantity)| {
            Operation::Release(Release {
                account,
                asset,
                lien,
                quantity,
            })
        }),
        prop::collection::vec(leg(), 0..60).prop_map(|legs| Operation::Bundle(Bundle { legs })),
        prop::collection::vec(any::<u64>(), 0..8).prop_map(|seeds| {
            Operation::SetValidators(SetValidators {
                validators: seeds
                    .into_iter()
                    .map(|seed| PrivateKey::from_seed(seed).public_key())
                    .collect(),
            })
        }),
    ]
}

fn transaction() -> impl Strategy<Value = Transaction> {
    let expiry = prop_oneof![
        any::<u64>().prop_map(Expiry::Height),
        any::<u64>().prop_map(Expiry::TimeMs)
    ];
    (
        any::<u32>(),
        code(),
        any::<[u8; 16]>(),
        expiry,
        operation(),
        prop::collection::vec((code::<PartyId>(), any::<u64>()), 0..4),
    )
        .prop_map(|(network, submitter, unique, expiry, operation, signers)| {
            let body = TxBody {
                network,
                submitter,
                unique_id: UniqueId(unique),
                expiry,
                operation,
            };
            let keys: Vec<(PartyId, PrivateKey)> = signers
                .into_iter()
                .map(|(party, seed)| (party, PrivateKey::from_seed(seed)))
                .collect();
            let references: Vec<(PartyId, &PrivateKey)> =
                keys.iter().map(|(party, key)| (*party, key)).collect();
            Transaction::sign(body, &references)
        })
}

/// The property a fuzzer checks too: decoding never panics, and whatever decodes re-encodes to
/// the same bytes (the encoding is canonical, so the id of a transaction is unambiguous).
fn decode_is_canonical(bytes: &[u8]) {
    if let Ok(transaction) = Transaction::decode(bytes.to_vec()) {
        assert_eq!(
            transaction.encode().as_ref(),
            bytes,
            "decoded bytes do not re-encode identically"
        );
    }
}

proptest! {
    #[test]
    fn transactions_round_trip(transaction in transaction()) {
        let bytes = transaction.encode();
        prop_assert_eq!(bytes.len(), transaction.encode_size());
        let decoded = Transaction::decode(bytes.clone()).unwrap();
        prop_assert_eq!(&decoded, &transaction);
        prop_assert_eq!(decoded.body.id(), transaction.body.id());
    }

    #[test]
    fn truncated_and_mutated_encodings_never_panic(transaction in transaction(), position in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let bytes = transaction.encode().to_vec();
        let cut = position.index(bytes.len() + 1);
        prop_assert!(Transaction::decode(bytes[..cut].to_vec()).is_err() || cut == bytes.len());
        let mut mutated = bytes.clone();
        let at = position.index(mutated.len());
        mutated[at] = byte;
        decode_is_canonical(&mutated);
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        decode_is_canonical(&bytes);
    }
}

#[test]
fn oversized_lengths_are_rejected_without_allocating() {
    // A bundle claiming 2^62 legs in a few bytes must fail fast.
    let body = TxBody {
        network: 1,
        submitter: "A".parse().unwrap(),
        unique_id: UniqueId([0; 16]),
        expiry: Expiry::Height(1),
        operation: Operation::Bundle(Bundle { legs: vec![] }),
    };
    let mut bytes = body.encode().to_vec();
    bytes.pop(); // the zero leg count
    bytes.extend([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f]);
    assert!(Transaction::decode(bytes).is_err());
    let too_many = Bundle {
        legs: vec![
            Leg {
                source: "A".parse().unwrap(),
                target: "B".parse().unwrap(),
                asset: "C".parse().unwrap(),
                quantity: 1
            };
            1025
        ],
    };
    let too_many_validators = SetValidators {
        validators: vec![PrivateKey::from_seed(1).public_key(); transaction::VALIDATORS_MAX + 1],
    };
    let basket = CollateralWeight {
        asset: "C".parse().unwrap(),
        weight_bps: 1,
    };
    let too_many_prices = PublishPrices {
        date: 20230419,
        prices: vec![
            PriceEntry {
                asset: "C".parse().unwrap(),
                price: "1".parse().unwrap()
            };
            repo::PRICES_PER_TX_MAX + 1
        ]
        .into(),
        rates: vec![].into(),
        close: true,
    };
    let too_many_collateral = RepoTerms {
        lender: "A".parse().unwrap(),
        lender_account: "A".parse().unwrap(),
        borrower: "B".parse().unwrap(),
        borrower_account: "B".parse().unwrap(),
        principal_asset: "P".parse().unwrap(),
        principal_quantity: 1,
        collateral: vec![basket; repo::COLLATERAL_ASSETS_MAX + 1].into(),
        valuation_currency: "USD".parse().unwrap(),
        haircut_bps: 0,
        threshold_bps: 0,
        start_ms: 0,
        maturity_ms: None,
        rate: "0".parse().unwrap(),
        day_count: DayCount::Act360,
        fee_asset: "USD".parse().unwrap(),
        offer_expiry_ms: 0,
    };
    for operation in [
        Operation::Bundle(too_many),
        Operation::SetValidators(too_many_validators),
        Operation::PublishPrices(too_many_prices),
        Operation::RegisterRepo(too_many_collateral),
    ] {
        let body = TxBody {
            operation,
            ..body.clone()
        };
        assert!(
            Transaction::decode(
                Transaction {
                    body,
                    endorsements: vec![]
                }
                .encode()
            )
            .is_err()
        );
    }
}

/// Conformance fixture: a change of these bytes is a change of the wire format and of every
/// transaction id. Make it on purpose, and update the fixture in the same commit.
#[test]
fn encoding_is_pinned() {
    let key = PrivateKey::from_seed(42);
    let body = TxBody {
        network: 1,
        submitter: "BANK-A".parse().unwrap(),
        unique_id: UniqueId(*b"0123456789abcdef"),
        expiry: Expiry::TimeMs(1_700_000_060_000),
        operation: Operation::Transfer(Leg {
            source: "BANK-A/1".parse().unwrap(),
            target: "BANK-B/1".parse().unwrap(),
            asset: "JP1103551NB6".parse().unwrap(),
            quantity: 50_000_000,
        }),
    };
    let transaction = Transaction::sign(body, &[("BANK-A".parse().unwrap(), &key)]);
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    assert_eq!(hex(&transaction.body.encode()), PINNED_BODY);
    assert_eq!(transaction.body.id().to_hex(), PINNED_ID);
    assert_eq!(transaction.encode().len(), PINNED_LENGTH);
}

const PINNED_BODY: &str = "000000010642414e4b2d4130313233343536373839616263646566010000018bcfe65260080842414e4b2d412f310842414e4b2d422f310c4a50313130333535314e423600000000000000000000000002faf080";
const PINNED_ID: &str = "42651a06f87cb4a407d6e92605fb18dacc0f65a023a8afa18777fa7f68c5d1c2";
const PINNED_LENGTH: usize = 190;

/// A block holds many transactions in one buffer: each decodes in turn, leaving the rest.
#[test]
fn transactions_decode_one_after_another_from_a_shared_buffer() {
    use commonware_codec::{ReadExt, Write};
    let key = PrivateKey::from_seed(1);
    let transactions: Vec<Transaction> = (0..3u64)
        .map(|index| {
            let body = TxBody {
                network: 1,
                submitter: "A".parse().unwrap(),
                unique_id: UniqueId([index as u8; 16]),
                expiry: Expiry::Height(index),
                operation: Operation::Bundle(Bundle {
                    legs: vec![
                        Leg {
                            source: "A/1".parse().unwrap(),
                            target: "B/1".parse().unwrap(),
                            asset: "X".parse().unwrap(),
                            quantity: 1
                        };
                        1000
                    ],
                }),
            };
            Transaction::sign(body, &[("A".parse().unwrap(), &key)])
        })
        .collect();
    let mut buffer = bytes::BytesMut::new();
    for transaction in &transactions {
        transaction.write(&mut buffer);
    }
    let mut buffer = buffer.freeze();
    for transaction in &transactions {
        assert_eq!(&Transaction::read(&mut buffer).unwrap(), transaction);
    }
    assert!(buffer.is_empty());
}
