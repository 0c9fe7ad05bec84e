//! The records the ledger holds: parties and their roles, accounts, assets and balances.

use crate::{
    amount::{PriceBasis, Quantity},
    code::{AccountId, AssetId, Currency, PartyId, UnitOfMeasure},
    crypto::{Hash32, PublicKey},
};

/// What a party may do. Roles gate operations; a party may hold several.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Approves governance: parties, roles, validator set (M of N governors must sign).
    NetworkGovernor,
    /// Defines assets and issues and redeems the assets it administers.
    TokenAdministrator,
    /// Holds accounts and moves tokens.
    Participant,
    /// Attests parties' KYC records and opens accounts for them.
    AccountOpeningAgent,
    /// Publishes closing prices and FX rates.
    PriceOracle,
    /// A central counterparty: nets and guarantees trades.
    CentralCounterparty,
    /// A regulator or auditor: reads everything, may freeze accounts.
    Regulator,
    /// A platform (e.g. a crowdfunding platform) that consumes investor quotas.
    Platform,
}

crate::codec_enum!(Role {
    0 => NetworkGovernor,
    1 => TokenAdministrator,
    2 => Participant,
    3 => AccountOpeningAgent,
    4 => PriceOracle,
    5 => CentralCounterparty,
    6 => Regulator,
    7 => Platform,
});

impl Role {
    pub const ALL: [Role; 8] = [
        Role::NetworkGovernor,
        Role::TokenAdministrator,
        Role::Participant,
        Role::AccountOpeningAgent,
        Role::PriceOracle,
        Role::CentralCounterparty,
        Role::Regulator,
        Role::Platform,
    ];

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// A set of roles, one bit each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoleSet(pub u16);

impl RoleSet {
    pub fn of(roles: &[Role]) -> Self {
        RoleSet(roles.iter().fold(0, |bits, role| bits | role.bit()))
    }
    pub fn contains(self, role: Role) -> bool {
        self.0 & role.bit() != 0
    }
    pub fn with(self, role: Role) -> Self {
        RoleSet(self.0 | role.bit())
    }
    pub fn without(self, role: Role) -> Self {
        RoleSet(self.0 & !role.bit())
    }
    /// Bits that name no role are malformed.
    pub fn is_valid(self) -> bool {
        self.0 >> Role::ALL.len() == 0
    }
}

crate::codec_struct!(RoleSet { 0: u16 });

/// A KYC attestation: an account-opening agent vouches for the party's real-name record, which
/// stays off the ledger; only its hash is here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KycAttestation {
    pub record_hash: Hash32,
    pub agent: PartyId,
    pub attested_at_ms: u64,
}

crate::codec_struct!(KycAttestation {
    record_hash: Hash32,
    agent: PartyId,
    attested_at_ms: u64
});

/// A party known to the network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Party {
    pub id: PartyId,
    pub public_key: PublicKey,
    pub roles: RoleSet,
    pub kyc: Option<KycAttestation>,
}

crate::codec_struct!(Party { id: PartyId, public_key: PublicKey, roles: RoleSet, kyc: Option<KycAttestation> });

/// An account, owned by one party, holding balances of any number of assets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    pub owner: PartyId,
    pub frozen: bool,
}

crate::codec_struct!(Account {
    id: AccountId,
    owner: PartyId,
    frozen: bool
});

/// What kind of token an asset is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AssetClass {
    /// A bond: one unit is one currency unit of face amount; priced per 100 face.
    Bond { currency: Currency },
    /// An equity: one unit is one share; priced per share.
    Equity { currency: Currency },
    /// Cash: one unit is one minor unit (e.g. cent); `minor_unit_exponent` digits (2 for EUR).
    Cash {
        currency: Currency,
        minor_unit_exponent: u8,
    },
    /// A commodity warehouse receipt: one unit is one `unit` (e.g. KG, LOT).
    Commodity { unit: UnitOfMeasure },
}

impl commonware_codec::Write for AssetClass {
    fn write(&self, buf: &mut impl bytes::BufMut) {
        match self {
            AssetClass::Bond { currency } => {
                0u8.write(buf);
                currency.write(buf);
            }
            AssetClass::Equity { currency } => {
                1u8.write(buf);
                currency.write(buf);
            }
            AssetClass::Cash {
                currency,
                minor_unit_exponent,
            } => {
                2u8.write(buf);
                currency.write(buf);
                minor_unit_exponent.write(buf);
            }
            AssetClass::Commodity { unit } => {
                3u8.write(buf);
                unit.write(buf);
            }
        }
    }
}
impl commonware_codec::EncodeSize for AssetClass {
    fn encode_size(&self) -> usize {
        1 + match self {
            AssetClass::Bond { currency } | AssetClass::Equity { currency } => {
                currency.encode_size()
            }
            AssetClass::Cash { currency, .. } => currency.encode_size() + 1,
            AssetClass::Commodity { unit } => unit.encode_size(),
        }
    }
}
impl commonware_codec::Read for AssetClass {
    type Cfg = ();
    fn read_cfg(
        buf: &mut impl commonware_codec::Buf,
        _: &(),
    ) -> Result<Self, commonware_codec::Error> {
        use commonware_codec::ReadExt as _;
        Ok(match u8::read(buf)? {
            0 => AssetClass::Bond {
                currency: Currency::read(buf)?,
            },
            1 => AssetClass::Equity {
                currency: Currency::read(buf)?,
            },
            2 => {
                let currency = Currency::read(buf)?;
                let minor_unit_exponent = u8::read(buf)?;
                if minor_unit_exponent > 8 {
                    return Err(commonware_codec::Error::Invalid(
                        "AssetClass",
                        "minor unit exponent above 8",
                    ));
                }
                AssetClass::Cash {
                    currency,
                    minor_unit_exponent,
                }
            }
            3 => AssetClass::Commodity {
                unit: UnitOfMeasure::read(buf)?,
            },
            other => return Err(commonware_codec::Error::InvalidEnum(other)),
        })
    }
}

impl AssetClass {
    /// How prices of this asset are quoted.
    pub fn price_basis(&self) -> PriceBasis {
        match self {
            AssetClass::Bond { .. } => PriceBasis::PerHundredFace,
            _ => PriceBasis::PerUnit,
        }
    }
}

/// An asset and its live state: administrator, total supply, frozen flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Asset {
    pub id: AssetId,
    pub class: AssetClass,
    /// The token administrator: the only party that issues and redeems it, and freezes it.
    pub administrator: PartyId,
    /// Real-name rule: only accounts of KYC-attested owners may receive it.
    pub kyc_required: bool,
    pub frozen: bool,
    /// Units in existence: always the sum of all balances of this asset.
    pub supply: Quantity,
}

crate::codec_struct!(Asset {
    id: AssetId,
    class: AssetClass,
    administrator: PartyId,
    kyc_required: bool,
    frozen: bool,
    supply: Quantity,
});

/// What an account holds of one asset. Encumbered units are pledged or posted as collateral:
/// they count towards the supply but cannot move until released.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Balance {
    pub available: Quantity,
    pub encumbered: Quantity,
}

crate::codec_struct!(Balance {
    available: Quantity,
    encumbered: Quantity
});

impl Balance {
    pub fn total(&self) -> Option<Quantity> {
        self.available.checked_add(self.encumbered)
    }
}

/// A lien: units of one balance encumbered in favour of a beneficiary, who alone may release them.
/// Its id is the id of the transaction that created it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lien {
    pub beneficiary: PartyId,
    pub quantity: Quantity,
    /// Held by a repo contract (the lien's id is the contract's): only the contract's steps
    /// release it, never the beneficiary's `Release`.
    pub by_contract: bool,
}

crate::codec_struct!(Lien {
    beneficiary: PartyId,
    quantity: Quantity,
    by_contract: bool
});
