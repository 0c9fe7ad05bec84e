//! Exact quantities, decimal prices and FX rates, and the named rounding rules of valuation.
//!
//! Quantities are whole units of an asset (shares, face amount, minor currency units, kilograms).
//! Prices and rates are decimals with an explicit scale. Valuation multiplies exactly into a
//! [`Ratio`] and rounds once, at the end, by a named [`Rounding`] rule.

use bytes::BufMut;
use commonware_codec::Buf;
use commonware_codec::{EncodeSize, Error, Read, ReadExt, Write};
use std::{cmp::Ordering, fmt, str::FromStr};

/// A whole number of an asset's smallest units. Never negative; arithmetic is checked.
pub type Quantity = u128;

/// The largest scale (digits after the point) of a [`Decimal`].
pub const DECIMAL_SCALE_MAX: u8 = 18;

/// A non-negative exact decimal: `mantissa / 10^scale`. Prices and FX rates are decimals.
#[derive(Clone, Copy, Debug)]
pub struct Decimal {
    pub mantissa: u128,
    pub scale: u8,
}

/// Why a decimal or a valuation could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("not a decimal number: {0:?}")]
    Malformed(String),
    #[error("more than {DECIMAL_SCALE_MAX} digits after the point")]
    ScaleTooLarge,
    #[error("the value does not fit in 128 bits")]
    Overflow,
    #[error("division by zero")]
    DivisionByZero,
}

impl Decimal {
    pub fn new(mantissa: u128, scale: u8) -> Result<Self, AmountError> {
        if scale > DECIMAL_SCALE_MAX {
            return Err(AmountError::ScaleTooLarge);
        }
        Ok(Self { mantissa, scale })
    }

    /// The exact value as a ratio.
    pub fn ratio(&self) -> Ratio {
        Ratio {
            numerator: self.mantissa,
            denominator: pow10(self.scale),
        }
    }
}

impl PartialEq for Decimal {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Decimal {}
impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Decimal {
    fn cmp(&self, other: &Self) -> Ordering {
        self.ratio().cmp_exact(&other.ratio())
    }
}

fn pow10(scale: u8) -> u128 {
    10u128.pow(scale as u32)
}

impl FromStr for Decimal {
    type Err = AmountError;
    fn from_str(text: &str) -> Result<Self, AmountError> {
        let malformed = || AmountError::Malformed(text.to_string());
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed());
        }
        if text.contains('.') && fraction.is_empty()
            || !fraction.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(malformed());
        }
        if fraction.len() > DECIMAL_SCALE_MAX as usize {
            return Err(AmountError::ScaleTooLarge);
        }
        let digits = format!("{whole}{fraction}");
        let mantissa = digits.parse::<u128>().map_err(|_| AmountError::Overflow)?;
        Decimal::new(mantissa, fraction.len() as u8)
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = pow10(self.scale);
        let whole = self.mantissa / unit;
        if self.scale == 0 {
            return write!(f, "{whole}");
        }
        let fraction = self.mantissa % unit;
        write!(f, "{whole}.{fraction:0width$}", width = self.scale as usize)
    }
}

impl Write for Decimal {
    fn write(&self, buf: &mut impl BufMut) {
        self.mantissa.write(buf);
        self.scale.write(buf);
    }
}
impl EncodeSize for Decimal {
    fn encode_size(&self) -> usize {
        self.mantissa.encode_size() + self.scale.encode_size()
    }
}
impl Read for Decimal {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, Error> {
        let mantissa = u128::read(buf)?;
        let scale = u8::read(buf)?;
        Decimal::new(mantissa, scale).map_err(|_| Error::Invalid("Decimal", "scale above 18"))
    }
}

/// How an exact value becomes a whole number. Each rule has one name and one meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rounding {
    /// Toward zero (truncate): what a payer can never be over-charged by.
    Down,
    /// Away from zero (ceiling for non-negative values): collateral unit counts, so that the
    /// collateral always covers the exposure.
    Up,
    /// To the nearest, ties away from zero ("commercial rounding"): reported market values.
    HalfUp,
    /// To the nearest, ties to the even neighbour ("banker's rounding").
    HalfEven,
}

/// An exact non-negative rational number, the result of valuation before rounding.
#[derive(Clone, Copy, Debug)]
pub struct Ratio {
    pub numerator: u128,
    pub denominator: u128,
}

impl Ratio {
    pub fn whole(value: u128) -> Self {
        Self {
            numerator: value,
            denominator: 1,
        }
    }

    /// Exact product, reduced by the greatest common divisor to keep headroom.
    pub fn checked_mul(self, other: Ratio) -> Result<Ratio, AmountError> {
        let a = reduce(self.numerator, other.denominator);
        let b = reduce(other.numerator, self.denominator);
        Ok(Ratio {
            numerator: a.0.checked_mul(b.0).ok_or(AmountError::Overflow)?,
            denominator: b.1.checked_mul(a.1).ok_or(AmountError::Overflow)?,
        }
        .reduced())
    }

    /// Exact sum.
    pub fn checked_add(self, other: Ratio) -> Result<Ratio, AmountError> {
        let divisor = gcd(self.denominator, other.denominator).max(1);
        let (left, right) = (self.denominator / divisor, other.denominator / divisor);
        let numerator = self
            .numerator
            .checked_mul(right)
            .and_then(|a| {
                other
                    .numerator
                    .checked_mul(left)
                    .and_then(|b| a.checked_add(b))
            })
            .ok_or(AmountError::Overflow)?;
        let denominator = self
            .denominator
            .checked_mul(right)
            .ok_or(AmountError::Overflow)?;
        Ok(Ratio {
            numerator,
            denominator,
        }
        .reduced())
    }

    /// Exact quotient.
    pub fn checked_div(self, other: Ratio) -> Result<Ratio, AmountError> {
        if other.numerator == 0 {
            return Err(AmountError::DivisionByZero);
        }
        self.checked_mul(Ratio {
            numerator: other.denominator,
            denominator: other.numerator,
        })
    }

    fn reduced(self) -> Ratio {
        let divisor = gcd(self.numerator, self.denominator).max(1);
        Ratio {
            numerator: self.numerator / divisor,
            denominator: self.denominator / divisor,
        }
    }

    /// Compare two ratios exactly (by cross-multiplication in 256 bits).
    pub fn cmp_exact(&self, other: &Ratio) -> Ordering {
        mul_wide(self.numerator, other.denominator)
            .cmp(&mul_wide(other.numerator, self.denominator))
    }

    /// Round to a whole number by `rule`.
    pub fn round(&self, rule: Rounding) -> u128 {
        assert!(self.denominator != 0, "ratio with zero denominator");
        let quotient = self.numerator / self.denominator;
        let remainder = self.numerator % self.denominator;
        if remainder == 0 {
            return quotient;
        }
        // Compare 2*remainder with the denominator without overflowing.
        let half = remainder.cmp(&(self.denominator - remainder));
        let up = match rule {
            Rounding::Down => false,
            Rounding::Up => true,
            Rounding::HalfUp => half != Ordering::Less,
            Rounding::HalfEven => {
                half == Ordering::Greater || half == Ordering::Equal && quotient % 2 == 1
            }
        };
        quotient + up as u128
    }

    /// Round to `scale` decimal places by `rule`.
    pub fn round_to_scale(&self, scale: u8, rule: Rounding) -> Result<Decimal, AmountError> {
        let scaled = self.checked_mul(Ratio::whole(pow10(scale)))?;
        Decimal::new(scaled.round(rule), scale)
    }
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn reduce(numerator: u128, denominator: u128) -> (u128, u128) {
    let divisor = gcd(numerator, denominator).max(1);
    (numerator / divisor, denominator / divisor)
}

/// The full 256-bit product as (high, low), ordered like the number it represents.
fn mul_wide(a: u128, b: u128) -> (u128, u128) {
    let mask = u64::MAX as u128;
    let (a_high, a_low) = (a >> 64, a & mask);
    let (b_high, b_low) = (b >> 64, b & mask);
    let low_low = a_low * b_low;
    let high_low = a_high * b_low;
    let low_high = a_low * b_high;
    let high_high = a_high * b_high;
    let middle = (low_low >> 64) + (high_low & mask) + (low_high & mask);
    let low = (middle << 64) | (low_low & mask);
    let high = high_high + (high_low >> 64) + (low_high >> 64) + (middle >> 64);
    (high, low)
}

/// How a security's price is quoted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PriceBasis {
    /// Price per unit (shares, kilograms, currency units).
    PerUnit,
    /// Price per 100 units of face amount (bonds).
    PerHundredFace,
}

crate::codec_enum!(PriceBasis { 0 => PerUnit, 1 => PerHundredFace });

impl PriceBasis {
    fn units_per_price(self) -> u128 {
        match self {
            PriceBasis::PerUnit => 1,
            PriceBasis::PerHundredFace => 100,
        }
    }
}

/// Market value of `quantity` units at `price` (quoted on `basis`), converted by `fx_rate` into
/// the valuation currency. Exact: nothing is rounded.
pub fn market_value(
    quantity: Quantity,
    price: Decimal,
    basis: PriceBasis,
    fx_rate: Decimal,
) -> Result<Ratio, AmountError> {
    Ratio::whole(quantity)
        .checked_mul(price.ratio())?
        .checked_mul(fx_rate.ratio())?
        .checked_div(Ratio::whole(basis.units_per_price()))
}

/// The fewest whole units, at `price` and `fx_rate`, whose value covers `value` (rounded
/// [`Rounding::Up`]). This is the collateral-count rule.
pub fn units_to_cover(
    value: Ratio,
    price: Decimal,
    basis: PriceBasis,
    fx_rate: Decimal,
) -> Result<Quantity, AmountError> {
    let unit_value = market_value(1, price, basis, fx_rate)?;
    Ok(value.checked_div(unit_value)?.round(Rounding::Up))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(text: &str) -> Decimal {
        text.parse().unwrap()
    }

    #[test]
    fn decimals_parse_and_print_exactly() {
        assert_eq!(d("98.8110").mantissa, 988110);
        assert_eq!(d("98.8110").scale, 4);
        assert_eq!(d("98.8110").to_string(), "98.8110");
        assert_eq!(d("0.00001").to_string(), "0.00001");
        assert_eq!(d("98.811"), d("98.8110"));
        for bad in ["", ".5", "5.", "-1", "1e5", "1.2.3", " 1"] {
            assert!(bad.parse::<Decimal>().is_err(), "{bad:?} should not parse");
        }
        assert_eq!(
            "1.0000000000000000000".parse::<Decimal>(),
            Err(AmountError::ScaleTooLarge)
        );
    }

    #[test]
    fn rounding_rules() {
        let cases = [
            // (numerator, denominator, down, up, half_up, half_even)
            (5, 2, 2, 3, 3, 2),
            (7, 2, 3, 4, 4, 4),
            (11, 4, 2, 3, 3, 3),
            (9, 4, 2, 3, 2, 2),
            (8, 4, 2, 2, 2, 2),
            (0, 3, 0, 0, 0, 0),
        ];
        for (numerator, denominator, down, up, half_up, half_even) in cases {
            let ratio = Ratio {
                numerator,
                denominator,
            };
            for (rule, expected) in [
                (Rounding::Down, down),
                (Rounding::Up, up),
                (Rounding::HalfUp, half_up),
                (Rounding::HalfEven, half_even),
            ] {
                assert_eq!(
                    ratio.round(rule),
                    expected,
                    "{numerator}/{denominator} {rule:?}"
                );
            }
        }
    }

    /// The brief's sample repo (19 April 2023): Bunds borrowed against US stock collateral.
    #[test]
    fn brief_sample_repo_values_exactly() {
        let eur = "EUR".parse().unwrap();
        let usd = "USD".parse().unwrap();
        let bund = crate::AssetClass::Bond { currency: eur }.price_basis();
        let stock = crate::AssetClass::Equity { currency: usd }.price_basis();
        assert_eq!(
            (bund, stock),
            (PriceBasis::PerHundredFace, PriceBasis::PerUnit)
        );
        let bunds: Quantity = 50_000_000;
        // Start of transaction.
        let bund_value = market_value(bunds, d("98.8110"), bund, d("1.09253")).unwrap();
        assert_eq!(bund_value.round(Rounding::HalfUp), 53_976_991);
        assert_eq!(
            bund_value.round_to_scale(3, Rounding::HalfUp).unwrap(),
            d("53976990.915")
        );
        let shares = units_to_cover(bund_value, d("161.01"), stock, d("1")).unwrap();
        assert_eq!(shares, 335_240);
        let stock_value = market_value(shares, d("161.01"), stock, d("1")).unwrap();
        assert_eq!(stock_value.round(Rounding::HalfUp), 53_976_992);

        // Next day, after the margin call.
        let bund_value = market_value(bunds, d("98.7590"), bund, d("1.09753")).unwrap();
        assert_eq!(bund_value.round(Rounding::HalfUp), 54_195_483);
        let required = units_to_cover(bund_value, d("162.53"), stock, d("1")).unwrap();
        assert_eq!(required, 333_450);
        assert_eq!(shares - required, 1_790);
        let stock_value = market_value(required, d("162.53"), stock, d("1")).unwrap();
        // 54,195,628.5: the brief reports 54,195,629, which is half-up, not half-even.
        assert_eq!(stock_value.round(Rounding::HalfUp), 54_195_629);
        assert_eq!(stock_value.round(Rounding::HalfEven), 54_195_628);
    }

    #[test]
    fn ratios_add_exactly() {
        let third = Ratio {
            numerator: 1,
            denominator: 3,
        };
        let sixth = Ratio {
            numerator: 1,
            denominator: 6,
        };
        let sum = third.checked_add(sixth).unwrap();
        assert_eq!((sum.numerator, sum.denominator), (1, 2));
        let huge = Ratio::whole(u128::MAX);
        assert_eq!(
            huge.checked_add(Ratio::whole(1)).unwrap_err(),
            AmountError::Overflow
        );
    }

    #[test]
    fn overflow_is_an_error_not_a_panic() {
        let huge = Decimal::new(u128::MAX / 3, 0).unwrap();
        let result = market_value(u128::MAX / 2, huge, PriceBasis::PerUnit, huge);
        assert_eq!(result.unwrap_err(), AmountError::Overflow);
    }

    proptest! {
        #[test]
        fn covering_units_cover_and_one_fewer_does_not(
            value in 1u128..10_000_000_000_000, mantissa in 1u128..100_000_000, scale in 0u8..6,
        ) {
            let price = Decimal::new(mantissa, scale).unwrap();
            let one = Decimal::new(1, 0).unwrap();
            let exposure = Ratio::whole(value);
            let units = units_to_cover(exposure, price, PriceBasis::PerUnit, one).unwrap();
            let covered = market_value(units, price, PriceBasis::PerUnit, one).unwrap();
            prop_assert!(covered.cmp_exact(&exposure) != Ordering::Less);
            let short = market_value(units - 1, price, PriceBasis::PerUnit, one).unwrap();
            prop_assert!(short.cmp_exact(&exposure) == Ordering::Less);
        }

        #[test]
        fn decimal_text_round_trips(mantissa in any::<u64>(), scale in 0u8..=18) {
            let value = Decimal::new(mantissa as u128, scale).unwrap();
            let parsed: Decimal = value.to_string().parse().unwrap();
            prop_assert_eq!(parsed.mantissa, value.mantissa);
            prop_assert_eq!(parsed.scale, value.scale);
        }
    }
}
