//! Business rejections: values with stable numeric codes, recorded in block outcomes.
//!
//! A rejected transaction is included in its block, changes nothing, and carries one of these
//! codes. Codes are part of the API: never renumber one; add new ones at the end.

use std::fmt;

/// Why a transaction was rejected. The discriminant is the stable code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum RejectionCode {
    /// A signature does not verify, or a key is not the signer's registered key.
    BadSignature = 1,
    UnknownParty = 2,
    UnknownAccount = 3,
    UnknownAsset = 4,
    /// A required signature or role is missing.
    NotAuthorized = 5,
    InsufficientBalance = 6,
    AccountFrozen = 7,
    AssetFrozen = 8,
    /// The expiry has passed.
    Expired = 9,
    /// The submitter already used this unique id.
    Duplicate = 10,
    /// A configured limit (bundle legs, transactions in a block) is exceeded.
    LimitExceeded = 11,
    /// The party, account or asset already exists.
    AlreadyExists = 12,
    /// The asset requires a KYC-attested owner and the owner has none.
    KycRequired = 13,
    /// A quantity of zero, or a transfer from an account to itself.
    InvalidQuantity = 14,
    /// A total would exceed 128 bits.
    Overflow = 15,
    /// The expiry lies further ahead than the ledger remembers ids.
    ExpiryTooFar = 16,
    UnknownLien = 17,
    /// The transaction is for another network.
    WrongNetwork = 18,
    /// The operation is well formed but makes no sense in this state (e.g. a role already held).
    InvalidOperation = 19,
    /// No repo contract has this id.
    UnknownContract = 20,
    /// The counterparty approved after the offer's expiry.
    OfferExpired = 21,
    /// A closing price or FX rate the valuation needs is not published for the date.
    PriceMissing = 22,
    /// A mark on demand found no margin call to make.
    ThresholdNotReached = 23,
    /// Substitute collateral worth less than what it replaces.
    CollateralInsufficient = 24,
}

impl RejectionCode {
    pub const ALL: [RejectionCode; 24] = [
        RejectionCode::BadSignature,
        RejectionCode::UnknownParty,
        RejectionCode::UnknownAccount,
        RejectionCode::UnknownAsset,
        RejectionCode::NotAuthorized,
        RejectionCode::InsufficientBalance,
        RejectionCode::AccountFrozen,
        RejectionCode::AssetFrozen,
        RejectionCode::Expired,
        RejectionCode::Duplicate,
        RejectionCode::LimitExceeded,
        RejectionCode::AlreadyExists,
        RejectionCode::KycRequired,
        RejectionCode::InvalidQuantity,
        RejectionCode::Overflow,
        RejectionCode::ExpiryTooFar,
        RejectionCode::UnknownLien,
        RejectionCode::WrongNetwork,
        RejectionCode::InvalidOperation,
        RejectionCode::UnknownContract,
        RejectionCode::OfferExpired,
        RejectionCode::PriceMissing,
        RejectionCode::ThresholdNotReached,
        RejectionCode::CollateralInsufficient,
    ];

    pub fn code(self) -> u16 {
        self as u16
    }

    pub fn from_code(code: u16) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|rejection| rejection.code() == code)
    }

    /// The stable, machine-readable name (e.g. `INSUFFICIENT_BALANCE`).
    pub fn name(self) -> &'static str {
        match self {
            RejectionCode::BadSignature => "BAD_SIGNATURE",
            RejectionCode::UnknownParty => "UNKNOWN_PARTY",
            RejectionCode::UnknownAccount => "UNKNOWN_ACCOUNT",
            RejectionCode::UnknownAsset => "UNKNOWN_ASSET",
            RejectionCode::NotAuthorized => "NOT_AUTHORIZED",
            RejectionCode::InsufficientBalance => "INSUFFICIENT_BALANCE",
            RejectionCode::AccountFrozen => "ACCOUNT_FROZEN",
            RejectionCode::AssetFrozen => "ASSET_FROZEN",
            RejectionCode::Expired => "EXPIRED",
            RejectionCode::Duplicate => "DUPLICATE",
            RejectionCode::LimitExceeded => "LIMIT_EXCEEDED",
            RejectionCode::AlreadyExists => "ALREADY_EXISTS",
            RejectionCode::KycRequired => "KYC_REQUIRED",
            RejectionCode::InvalidQuantity => "INVALID_QUANTITY",
            RejectionCode::Overflow => "OVERFLOW",
            RejectionCode::ExpiryTooFar => "EXPIRY_TOO_FAR",
            RejectionCode::UnknownLien => "UNKNOWN_LIEN",
            RejectionCode::WrongNetwork => "WRONG_NETWORK",
            RejectionCode::InvalidOperation => "INVALID_OPERATION",
            RejectionCode::UnknownContract => "UNKNOWN_CONTRACT",
            RejectionCode::OfferExpired => "OFFER_EXPIRED",
            RejectionCode::PriceMissing => "PRICE_MISSING",
            RejectionCode::ThresholdNotReached => "THRESHOLD_NOT_REACHED",
            RejectionCode::CollateralInsufficient => "COLLATERAL_INSUFFICIENT",
        }
    }
}

impl fmt::Display for RejectionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.code())
    }
}

impl commonware_codec::Write for RejectionCode {
    fn write(&self, buf: &mut impl bytes::BufMut) {
        self.code().write(buf)
    }
}
impl commonware_codec::FixedSize for RejectionCode {
    const SIZE: usize = 2;
}
impl commonware_codec::Read for RejectionCode {
    type Cfg = ();
    fn read_cfg(
        buf: &mut impl commonware_codec::Buf,
        _: &(),
    ) -> Result<Self, commonware_codec::Error> {
        let code = <u16 as commonware_codec::ReadExt>::read(buf)?;
        Self::from_code(code).ok_or(commonware_codec::Error::Invalid(
            "RejectionCode",
            "unknown code",
        ))
    }
}

/// A rejection: the code and, for a bundle, the index of the leg that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub code: RejectionCode,
    pub leg: Option<u16>,
}

crate::codec_struct!(Rejection { code: RejectionCode, leg: Option<u16> });

impl From<RejectionCode> for Rejection {
    fn from(code: RejectionCode) -> Self {
        Rejection { code, leg: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Codes are an API: this pins every one of them.
    #[test]
    fn codes_are_stable() {
        let pinned: Vec<(u16, &str)> = RejectionCode::ALL
            .iter()
            .map(|c| (c.code(), c.name()))
            .collect();
        assert_eq!(pinned.len(), 24);
        for (index, (code, _)) in pinned.iter().enumerate() {
            assert_eq!(*code as usize, index + 1);
        }
        assert_eq!(RejectionCode::InsufficientBalance.code(), 6);
        assert_eq!(RejectionCode::Duplicate.code(), 10);
        assert_eq!(
            RejectionCode::from_code(13),
            Some(RejectionCode::KycRequired)
        );
        assert_eq!(RejectionCode::CollateralInsufficient.code(), 24);
        assert_eq!(RejectionCode::from_code(0), None);
    }
}
