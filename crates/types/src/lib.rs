//! Name, value and sign what the ledger holds: exact amounts, assets, parties and transactions.
//!
//! This crate does no I/O. It defines the domain types, their canonical binary encoding
//! (Commonware codec), transaction signing and batch verification, and the named rounding rules
//! of valuation.

pub mod amount;
pub mod code;
pub mod codec;
pub mod crypto;
pub mod model;
pub mod rejection;
pub mod repo;
pub mod transaction;

pub use amount::{Decimal, PriceBasis, Quantity, Ratio, Rounding};
pub use code::{AccountId, AssetId, Code, CodeError, Currency, PartyId, UnitOfMeasure};
pub use crypto::{Hash32, PrivateKey, PublicKey, Signature};
pub use model::{Account, Asset, AssetClass, Balance, KycAttestation, Lien, Party, Role, RoleSet};
pub use rejection::{Rejection, RejectionCode};
pub use repo::{
    BusinessDate, CollateralHolding, CollateralMove, CollateralWeight, DayCount, FxEntry,
    PriceEntry, PublishPrices, RepoAction, RepoContract, RepoEvent, RepoEventRecord, RepoStatus,
    RepoStep, RepoTerms, SubstituteCollateral,
};
pub use transaction::{
    AttestKyc, Bundle, DefineAsset, Encumber, Endorsement, Expiry, FreezeTarget, Leg, OpenAccount,
    Operation, RegisterParty, Release, RoleChange, SetValidators, SupplyChange, Transaction,
    TxBody, TxId, UniqueId, VerifiedTransaction, verify_transactions,
};

/// Bytes as lower-case hex text and back: how transactions, keys and proofs travel in files and
/// through the API.
pub mod hex {
    pub fn encode(bytes: &[u8]) -> String {
        commonware_formatting::hex(bytes)
    }

    /// `None` unless the text is an even number of hex digits (an `0x` prefix is allowed).
    pub fn decode(text: &str) -> Option<Vec<u8>> {
        commonware_formatting::from_hex(text)
    }
}
