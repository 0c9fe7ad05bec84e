//! Transactions: a signed body carrying one operation, its client-chosen unique id and expiry.
//!
//! Replay protection uses no sequential nonce. The submitter picks a unique id (a UUID, say) and
//! an expiry; the ledger remembers `(submitter, unique id)` until the expiry passes. Independent
//! transactions of one sender therefore never wait for each other.

use crate::{
    amount::Quantity,
    code::{AccountId, AssetId, PartyId},
    codec::{read_seq, seq_size, write_seq},
    crypto::{Hash32, PublicKey, Signature, SignatureCheck, verify_signatures},
    model::{AssetClass, Role, RoleSet},
    repo::{PublishPrices, RepoAction, RepoTerms, SubstituteCollateral},
};
use bytes::BufMut;
use commonware_codec::Buf;
use commonware_codec::{Encode, EncodeSize, Error, Read, ReadExt, Write};
use commonware_parallel::Strategy;

/// The most legs any bundle may encode. The ledger's configured limit is lower or equal.
pub const BUNDLE_LEGS_MAX_ENCODED: usize = 1024;
/// The most signatures one transaction may carry.
pub const SIGNATURES_MAX: usize = 128;
/// The most validators one set may hold.
pub const VALIDATORS_MAX: usize = 128;
/// The largest encoded transaction, in bytes: anything longer is malformed.
pub const TRANSACTION_BYTES_MAX: usize = 256 * 1024;

/// A transaction id: the SHA-256 of the canonical encoding of the signed body.
pub type TxId = Hash32;

/// A client-chosen id, unique per submitter while the transaction can still be valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UniqueId(pub [u8; 16]);

crate::codec_struct!(UniqueId { 0: [u8; 16] });

/// The last moment a transaction may be included: a block height or a block time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// Valid in blocks at or below this height.
    Height(u64),
    /// Valid in blocks whose time (Unix milliseconds) is at or below this.
    TimeMs(u64),
}

crate::codec_enum!(Expiry { 0 => Height(u64), 1 => TimeMs(u64) });

/// One movement of units between two accounts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leg {
    pub source: AccountId,
    pub target: AccountId,
    pub asset: AssetId,
    pub quantity: Quantity,
}

crate::codec_struct!(Leg {
    source: AccountId,
    target: AccountId,
    asset: AssetId,
    quantity: Quantity
});

/// Admit a new party (governance: M of N governors sign).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterParty {
    pub party: PartyId,
    pub public_key: PublicKey,
    pub roles: RoleSet,
}
crate::codec_struct!(RegisterParty {
    party: PartyId,
    public_key: PublicKey,
    roles: RoleSet
});

/// Grant or revoke one role (governance: M of N governors sign).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoleChange {
    pub party: PartyId,
    pub role: Role,
}
crate::codec_struct!(RoleChange {
    party: PartyId,
    role: Role
});

/// An account-opening agent attests the hash of a party's off-ledger KYC record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttestKyc {
    pub party: PartyId,
    pub record_hash: Hash32,
}
crate::codec_struct!(AttestKyc {
    party: PartyId,
    record_hash: Hash32
});

/// Open an account for an owner (the owner itself, or an account-opening agent, signs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenAccount {
    pub account: AccountId,
    pub owner: PartyId,
}
crate::codec_struct!(OpenAccount {
    account: AccountId,
    owner: PartyId
});

/// Define a new asset; the signing token administrator administers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DefineAsset {
    pub asset: AssetId,
    pub class: AssetClass,
    pub kyc_required: bool,
}
crate::codec_struct!(DefineAsset {
    asset: AssetId,
    class: AssetClass,
    kyc_required: bool
});

/// Create (issue) or destroy (redeem) units of an asset in an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SupplyChange {
    pub asset: AssetId,
    pub account: AccountId,
    pub quantity: Quantity,
}
crate::codec_struct!(SupplyChange {
    asset: AssetId,
    account: AccountId,
    quantity: Quantity
});

/// What a freeze applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FreezeTarget {
    Account(AccountId),
    Asset(AssetId),
}
crate::codec_enum!(FreezeTarget { 0 => Account(AccountId), 1 => Asset(AssetId) });

/// Encumber available units in favour of a beneficiary (the owner signs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Encumber {
    pub account: AccountId,
    pub asset: AssetId,
    pub quantity: Quantity,
    pub beneficiary: PartyId,
}
crate::codec_struct!(Encumber {
    account: AccountId,
    asset: AssetId,
    quantity: Quantity,
    beneficiary: PartyId
});

/// Release units of a lien back to available (the beneficiary signs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Release {
    pub account: AccountId,
    pub asset: AssetId,
    pub lien: TxId,
    pub quantity: Quantity,
}
crate::codec_struct!(Release {
    account: AccountId,
    asset: AssetId,
    lien: TxId,
    quantity: Quantity
});

/// Many legs that settle all together or not at all: delivery versus payment, payment versus
/// payment, security versus security, or bulk movements. Every source owner signs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bundle {
    pub legs: Vec<Leg>,
}

crate::codec_seq!(Bundle { legs }, BUNDLE_LEGS_MAX_ENCODED);

/// The consensus keys that validate from the next epoch boundary on (M-of-N governors). The
/// whole set is named, in any order; the ledger keeps it sorted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetValidators {
    pub validators: Vec<PublicKey>,
}

crate::codec_seq!(SetValidators { validators }, VALIDATORS_MAX);

/// Everything a transaction can do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operation {
    RegisterParty(RegisterParty),
    GrantRole(RoleChange),
    RevokeRole(RoleChange),
    AttestKyc(AttestKyc),
    OpenAccount(OpenAccount),
    DefineAsset(DefineAsset),
    Issue(SupplyChange),
    Redeem(SupplyChange),
    Transfer(Leg),
    Freeze(FreezeTarget),
    Unfreeze(FreezeTarget),
    Encumber(Encumber),
    Release(Release),
    Bundle(Bundle),
    SetValidators(SetValidators),
    /// Propose a repo or securities-lending contract (the lender or the borrower signs).
    RegisterRepo(RepoTerms),
    /// A lifecycle step of a contract.
    RepoAction(RepoAction),
    SubstituteCollateral(SubstituteCollateral),
    /// Closing prices and FX rates of a business date (the price oracle signs).
    PublishPrices(PublishPrices),
}

crate::codec_enum!(Operation {
    0 => RegisterParty(RegisterParty),
    1 => GrantRole(RoleChange),
    2 => RevokeRole(RoleChange),
    3 => AttestKyc(AttestKyc),
    4 => OpenAccount(OpenAccount),
    5 => DefineAsset(DefineAsset),
    6 => Issue(SupplyChange),
    7 => Redeem(SupplyChange),
    8 => Transfer(Leg),
    9 => Freeze(FreezeTarget),
    10 => Unfreeze(FreezeTarget),
    11 => Encumber(Encumber),
    12 => Release(Release),
    13 => Bundle(Bundle),
    14 => SetValidators(SetValidators),
    15 => RegisterRepo(RepoTerms),
    16 => RepoAction(RepoAction),
    17 => SubstituteCollateral(SubstituteCollateral),
    18 => PublishPrices(PublishPrices),
});

/// What the signers sign.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxBody {
    /// The network this transaction is for: a signature for a test network never counts on
    /// production.
    pub network: u32,
    pub submitter: PartyId,
    pub unique_id: UniqueId,
    pub expiry: Expiry,
    pub operation: Operation,
}

crate::codec_struct!(TxBody {
    network: u32,
    submitter: PartyId,
    unique_id: UniqueId,
    expiry: Expiry,
    operation: Operation,
});

/// One party's signature over the body. The key is carried so that signatures can be checked
/// without reading state; the ledger then checks that it is the party's registered key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endorsement {
    pub signer: PartyId,
    pub public_key: PublicKey,
    pub signature: Signature,
}

crate::codec_struct!(Endorsement {
    signer: PartyId,
    public_key: PublicKey,
    signature: Signature
});

/// A signed transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transaction {
    pub body: TxBody,
    pub endorsements: Vec<Endorsement>,
}

impl Write for Transaction {
    fn write(&self, buf: &mut impl BufMut) {
        self.body.write(buf);
        write_seq(&self.endorsements, buf);
    }
}
impl EncodeSize for Transaction {
    fn encode_size(&self) -> usize {
        self.body.encode_size() + seq_size(&self.endorsements)
    }
}
impl Read for Transaction {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, Error> {
        // Field bounds cap what decoding allocates; the byte limit applies to this transaction
        // alone, not to the rest of the buffer (a block holds many transactions).
        let transaction = Transaction {
            body: TxBody::read(buf)?,
            endorsements: read_seq(buf, SIGNATURES_MAX)?,
        };
        if transaction.encode_size() > TRANSACTION_BYTES_MAX {
            return Err(Error::Invalid(
                "Transaction",
                "longer than the transaction byte limit",
            ));
        }
        Ok(transaction)
    }
}

impl TxBody {
    /// The id of any transaction with this body.
    pub fn id(&self) -> TxId {
        Hash32::of(&[&self.encode()])
    }
}

impl Transaction {
    /// Sign `body` by each of `signers` (party id and key).
    pub fn sign(body: TxBody, signers: &[(PartyId, &crate::crypto::PrivateKey)]) -> Self {
        let message = body.encode();
        let endorsements = signers
            .iter()
            .map(|(signer, key)| Endorsement {
                signer: *signer,
                public_key: key.public_key(),
                signature: key.sign(&message),
            })
            .collect();
        Transaction { body, endorsements }
    }
}

/// A transaction with its id and the verdict on its signatures, checked once.
#[derive(Clone, Debug)]
pub struct VerifiedTransaction {
    pub transaction: Transaction,
    pub id: TxId,
    /// Every endorsement's signature verifies against its carried key.
    pub signatures_valid: bool,
}

/// Compute ids and check every signature of `transactions`, in batches across the strategy's
/// threads.
pub fn verify_transactions(
    transactions: Vec<Transaction>,
    strategy: &impl Strategy,
) -> Vec<VerifiedTransaction> {
    let messages: Vec<_> =
        strategy.map_collect_vec(&transactions, |transaction| transaction.body.encode());
    let checks: Vec<SignatureCheck<'_>> = transactions
        .iter()
        .zip(&messages)
        .flat_map(|(transaction, message)| {
            transaction
                .endorsements
                .iter()
                .map(move |endorsement| SignatureCheck {
                    public_key: &endorsement.public_key,
                    message,
                    signature: &endorsement.signature,
                })
        })
        .collect();
    let verdicts = verify_signatures(&checks, strategy);
    drop(checks);
    let mut verdicts = verdicts.into_iter();
    transactions
        .into_iter()
        .zip(messages)
        .map(|(transaction, message)| {
            let mut signatures_valid = !transaction.endorsements.is_empty();
            for _ in 0..transaction.endorsements.len() {
                signatures_valid &= verdicts.next().expect("one verdict per endorsement");
            }
            VerifiedTransaction {
                id: Hash32::of(&[&message]),
                transaction,
                signatures_valid,
            }
        })
        .collect()
}
