//! Identifiers: short, human-readable codes (party, account and asset ids, currencies, units).
//!
//! A code is 1 to 32 characters from `A-Z 0-9 . _ - / :`, stored inline so that it is `Copy` and
//! cheap to hash and compare on the hot path. Upper case only, so that `bank-a` and `BANK-A`
//! cannot name two different parties.

use bytes::BufMut;
use commonware_codec::Buf;
use commonware_codec::{EncodeSize, Error, Read, ReadExt, Write};
use std::{fmt, str::FromStr};

/// The longest code, in bytes.
pub const CODE_LENGTH_MAX: usize = 32;

/// Why a string is not a valid code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    #[error("a code must not be empty")]
    Empty,
    #[error("a code is at most {CODE_LENGTH_MAX} characters, got {0}")]
    TooLong(usize),
    #[error("character {0:?} is not allowed in a code (use A-Z 0-9 . _ - / :)")]
    BadCharacter(char),
}

/// A validated identifier of at most [`CODE_LENGTH_MAX`] ASCII characters.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Code {
    length: u8,
    bytes: [u8; CODE_LENGTH_MAX],
}

impl Code {
    pub fn new(text: &str) -> Result<Self, CodeError> {
        if text.is_empty() {
            return Err(CodeError::Empty);
        }
        if text.len() > CODE_LENGTH_MAX {
            return Err(CodeError::TooLong(text.len()));
        }
        if let Some(bad) = text
            .chars()
            .find(|c| !Self::allowed(*c as u32 as u8) || !c.is_ascii())
        {
            return Err(CodeError::BadCharacter(bad));
        }
        let mut bytes = [0u8; CODE_LENGTH_MAX];
        bytes[..text.len()].copy_from_slice(text.as_bytes());
        Ok(Self {
            length: text.len() as u8,
            bytes,
        })
    }

    fn allowed(byte: u8) -> bool {
        matches!(byte, b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'_' | b'-' | b'/' | b':')
    }

    pub fn as_str(&self) -> &str {
        // Only validated ASCII is ever stored.
        std::str::from_utf8(&self.bytes[..self.length as usize]).expect("codes are ASCII")
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl Write for Code {
    fn write(&self, buf: &mut impl BufMut) {
        buf.put_u8(self.length);
        buf.put_slice(&self.bytes[..self.length as usize]);
    }
}

impl EncodeSize for Code {
    fn encode_size(&self) -> usize {
        1 + self.length as usize
    }
}

impl Read for Code {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, Error> {
        let length = u8::read(buf)? as usize;
        if length == 0 || length > CODE_LENGTH_MAX {
            return Err(Error::InvalidLength(length));
        }
        if buf.remaining() < length {
            return Err(Error::EndOfBuffer);
        }
        let mut bytes = [0u8; CODE_LENGTH_MAX];
        buf.copy_to_slice(&mut bytes[..length]);
        if !bytes[..length].iter().all(|b| Self::allowed(*b)) {
            return Err(Error::Invalid(
                "Code",
                "character outside A-Z 0-9 . _ - / :",
            ));
        }
        Ok(Self {
            length: length as u8,
            bytes,
        })
    }
}

/// Declare a newtype over [`Code`] with parsing, display and the codec.
macro_rules! code_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub Code);

        impl $name {
            pub fn new(text: &str) -> Result<Self, CodeError> {
                Code::new(text).map(Self)
            }
            pub fn as_str(&self) -> &str {
                self.0.as_str()
            }
        }
        impl FromStr for $name {
            type Err = CodeError;
            fn from_str(text: &str) -> Result<Self, CodeError> {
                Self::new(text)
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0.as_str())
            }
        }
        impl Write for $name {
            fn write(&self, buf: &mut impl BufMut) {
                self.0.write(buf)
            }
        }
        impl EncodeSize for $name {
            fn encode_size(&self) -> usize {
                self.0.encode_size()
            }
        }
        impl Read for $name {
            type Cfg = ();
            fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, Error> {
                Code::read(buf).map(Self)
            }
        }
    };
}

code_type!(
    /// A party: an institution or person known to the network (e.g. `BANK-A`).
    PartyId
);
code_type!(
    /// An account owned by one party (e.g. `BANK-A/CUSTODY`).
    AccountId
);
code_type!(
    /// An asset: a security, cash or commodity token (e.g. an ISIN such as `DE0001102580`, or `JPY`).
    AssetId
);
code_type!(
    /// An ISO 4217 currency code (e.g. `EUR`).
    Currency
);
code_type!(
    /// A unit of measure of a commodity (e.g. `KG`, `LOT`).
    UnitOfMeasure
);

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_codec::{DecodeExt, Encode};

    #[test]
    fn codes_are_validated() {
        assert_eq!(Code::new(""), Err(CodeError::Empty));
        assert_eq!(Code::new(&"A".repeat(33)), Err(CodeError::TooLong(33)));
        assert_eq!(Code::new("bank-a"), Err(CodeError::BadCharacter('b')));
        assert_eq!(Code::new("BANK É"), Err(CodeError::BadCharacter(' ')));
        assert_eq!(Code::new("BANK-A/001").unwrap().as_str(), "BANK-A/001");
    }

    #[test]
    fn decoding_rejects_bad_codes() {
        let good = PartyId::new("CCP").unwrap().encode();
        assert_eq!(PartyId::decode(good).unwrap().as_str(), "CCP");
        assert!(PartyId::decode(vec![0u8]).is_err());
        assert!(PartyId::decode(vec![2u8, b'a', b'b']).is_err());
        assert!(PartyId::decode(vec![40u8, b'A']).is_err());
        assert!(PartyId::decode(vec![3u8, b'A']).is_err());
    }
}
