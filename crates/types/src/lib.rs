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
pub mod transaction;

pub use amount::{Decimal, PriceBasis, Quantity, Ratio, Rounding};
pub use code::{AccountId, AssetId, Code, CodeError, Currency, PartyId, UnitOfMeasure};
pub use crypto::{Hash32, PrivateKey, PublicKey, Signature};
pub use model::{Account, Asset, AssetClass, Balance, KycAttestation, Lien, Party, Role, RoleSet};
pub use rejection::{Rejection, RejectionCode};
pub use transaction::{
    AttestKyc, Bundle, DefineAsset, Encumber, Endorsement, Expiry, FreezeTarget, Leg, OpenAccount,
    Operation, RegisterParty, Release, RoleChange, SupplyChange, Transaction, TxBody, TxId,
    UniqueId, VerifiedTransaction, verify_transactions,
};
