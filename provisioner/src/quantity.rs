//! Kubernetes resource quantities (`5Gi`, `1G`, `500m`, `1e3`) as exact numbers.
//!
//! Storage sizes decide bindings, so they are compared exactly: `1G` (10^9) is less
//! than `1Gi` (2^30). A quantity is held as a whole number of nano-units in an
//! `i128`, which is exact for every value Kubernetes can express down to its
//! smallest suffix (`n`) and wide enough for hundreds of exbibytes. Finer
//! fractions are rounded up, as the API server does when it canonicalises.

use std::cmp::Ordering;
use std::fmt;

use thiserror::Error;

/// Nano-units per unit.
const NANO: i128 = 1_000_000_000;

/// Why a quantity string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QuantityError {
    #[error("quantity {0:?} is empty")]
    Empty(String),
    #[error("quantity {0:?} has no digits")]
    NoDigits(String),
    #[error(
        "quantity {input:?} has an unknown suffix {suffix:?} (expected one of n, u, m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei or an exponent like e3)"
    )]
    BadSuffix { input: String, suffix: String },
    #[error("quantity {0:?} is too large")]
    TooLarge(String),
}

/// How the quantity was written; the canonical string keeps the same family,
/// as the API server does (`1024Mi` prints as `1Gi`, `1000M` as `1G`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    BinarySi,
    DecimalSi,
    DecimalExponent,
}

/// An exact Kubernetes quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quantity {
    nanos: i128,
    format: Format,
}

impl Quantity {
    /// A whole number of bytes, printed in binary units.
    pub fn from_bytes(bytes: u64) -> Self {
        Quantity {
            nanos: i128::from(bytes) * NANO,
            format: Format::BinarySi,
        }
    }

    pub fn zero() -> Self {
        Quantity {
            nanos: 0,
            format: Format::DecimalSi,
        }
    }

    /// Parses the Kubernetes quantity grammar:
    /// `[+-]digits[.digits](suffix | e[+-]digits | E[+-]digits)`.
    pub fn parse(input: &str) -> Result<Self, QuantityError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(QuantityError::Empty(input.to_string()));
        }
        let bytes = s.as_bytes();
        let mut pos = 0;
        let negative = match bytes[0] {
            b'-' => {
                pos = 1;
                true
            }
            b'+' => {
                pos = 1;
                false
            }
            _ => false,
        };
        let int_start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_digit() {
            pos += 1;
        }
        let int_digits = &s[int_start..pos];
        let mut frac_digits = "";
        if pos < bytes.len() && bytes[pos] == b'.' {
            pos += 1;
            let frac_start = pos;
            while pos < bytes.len() && bytes[pos].is_ascii_digit() {
                pos += 1;
            }
            frac_digits = &s[frac_start..pos];
        }
        if int_digits.is_empty() && frac_digits.is_empty() {
            return Err(QuantityError::NoDigits(input.to_string()));
        }
        let suffix = &s[pos..];
        let bad_suffix = || QuantityError::BadSuffix {
            input: input.to_string(),
            suffix: suffix.to_string(),
        };
        let too_large = || QuantityError::TooLarge(input.to_string());

        // The value is mantissa * 10^exp10 * 2^exp2, with mantissa the digits
        // without the decimal point.
        let (format, exp10, exp2): (Format, i32, u32) = match suffix {
            "" => (Format::DecimalSi, 0, 0),
            "n" => (Format::DecimalSi, -9, 0),
            "u" => (Format::DecimalSi, -6, 0),
            "m" => (Format::DecimalSi, -3, 0),
            "k" => (Format::DecimalSi, 3, 0),
            "M" => (Format::DecimalSi, 6, 0),
            "G" => (Format::DecimalSi, 9, 0),
            "T" => (Format::DecimalSi, 12, 0),
            "P" => (Format::DecimalSi, 15, 0),
            "E" => (Format::DecimalSi, 18, 0),
            "Ki" => (Format::BinarySi, 0, 10),
            "Mi" => (Format::BinarySi, 0, 20),
            "Gi" => (Format::BinarySi, 0, 30),
            "Ti" => (Format::BinarySi, 0, 40),
            "Pi" => (Format::BinarySi, 0, 50),
            "Ei" => (Format::BinarySi, 0, 60),
            other if other.starts_with('e') || other.starts_with('E') => {
                let exp = &other[1..];
                let (sign, digits) = match exp.as_bytes().first() {
                    Some(b'-') => (-1, &exp[1..]),
                    Some(b'+') => (1, &exp[1..]),
                    _ => (1, exp),
                };
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad_suffix());
                }
                let value: i32 = digits.parse().map_err(|_| too_large())?;
                if value > 60 {
                    return Err(too_large());
                }
                (Format::DecimalExponent, sign * value, 0)
            }
            _ => return Err(bad_suffix()),
        };

        let digits = format!("{int_digits}{frac_digits}");
        let digits = digits.trim_start_matches('0');
        // Scale to nano-units: value_nanos = mantissa * 10^(exp10 + 9 - frac_len) * 2^exp2.
        let scale = exp10 + 9 - frac_digits.len() as i32;
        let mut mantissa: i128 = 0;
        let mut dropped_nonzero = false;
        let keep = if scale < 0 {
            digits.len().saturating_sub((-scale) as usize)
        } else {
            digits.len()
        };
        for (i, b) in digits.bytes().enumerate() {
            if i < keep {
                mantissa = mantissa
                    .checked_mul(10)
                    .and_then(|m| m.checked_add(i128::from(b - b'0')))
                    .ok_or_else(too_large)?;
            } else if b != b'0' {
                dropped_nonzero = true;
            }
        }
        if scale > 0 {
            let factor = 10i128.checked_pow(scale as u32).ok_or_else(too_large)?;
            mantissa = mantissa.checked_mul(factor).ok_or_else(too_large)?;
        }
        mantissa = mantissa.checked_mul(1i128 << exp2).ok_or_else(too_large)?;
        // Kubernetes rounds anything finer than a nano-unit up (away from zero).
        if dropped_nonzero {
            mantissa = mantissa.checked_add(1).ok_or_else(too_large)?;
        }
        // Keep headroom so sums of many quantities (quota usage) cannot overflow.
        if mantissa > i128::MAX / 1_000_000 {
            return Err(too_large());
        }
        Ok(Quantity {
            nanos: if negative { -mantissa } else { mantissa },
            format,
        })
    }

    pub fn is_positive(&self) -> bool {
        self.nanos > 0
    }

    /// The value rounded up to a whole number, as Go's `Quantity.Value()`.
    pub fn value_ceil(&self) -> i128 {
        self.nanos.div_euclid(NANO) + i128::from(self.nanos.rem_euclid(NANO) != 0)
    }

    /// Sum, keeping the left side's format unless the left side is zero (as Go's
    /// `Quantity.Add` on an empty quantity does), so quota usage prints as `5Gi`.
    pub fn saturating_add(self, other: Quantity) -> Quantity {
        Quantity {
            nanos: self.nanos.saturating_add(other.nanos),
            format: if self.nanos == 0 {
                other.format
            } else {
                self.format
            },
        }
    }

    /// A plain count (`persistentvolumeclaims: 3`).
    pub fn from_count(n: u64) -> Self {
        Quantity {
            nanos: i128::from(n) * NANO,
            format: Format::DecimalSi,
        }
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// Nano-units; exposed for ordering keys in indexes.
    pub fn as_nanos(&self) -> i128 {
        self.nanos
    }
}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    /// Compares values only: `1024Mi == 1Gi`.
    fn cmp(&self, other: &Self) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

impl fmt::Display for Quantity {
    /// The canonical form the API server prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.nanos;
        if n == 0 {
            return f.write_str("0");
        }
        let sign = if n < 0 { "-" } else { "" };
        let abs = n.unsigned_abs();
        let nano = NANO as u128;
        if self.format == Format::BinarySi && abs % nano == 0 && abs / nano >= 1024 {
            let mut whole = abs / nano;
            let mut idx = 0;
            const SUFFIXES: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
            while idx < 6 && whole % 1024 == 0 {
                whole /= 1024;
                idx += 1;
            }
            return write!(f, "{sign}{whole}{}", SUFFIXES[idx]);
        }
        // Decimal: find the largest power of 1000 (from 10^-9 up) dividing the value.
        let mut mantissa = abs;
        let mut exp3: i32 = -3; // in units of 10^3, starting at nano
        while exp3 < 6 && mantissa % 1000 == 0 {
            mantissa /= 1000;
            exp3 += 1;
        }
        if self.format == Format::DecimalExponent {
            let exp = exp3 * 3;
            return if exp == 0 {
                write!(f, "{sign}{mantissa}")
            } else {
                write!(f, "{sign}{mantissa}e{exp}")
            };
        }
        let suffix = match exp3 {
            -3 => "n",
            -2 => "u",
            -1 => "m",
            0 => "",
            1 => "k",
            2 => "M",
            3 => "G",
            4 => "T",
            5 => "P",
            _ => "E",
        };
        write!(f, "{sign}{mantissa}{suffix}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        match Quantity::parse(s) {
            Ok(q) => q,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn decimal_and_binary_suffixes_are_exact() {
        let cases: &[(&str, i128)] = &[
            ("1", 1),
            ("1k", 1_000),
            ("1Ki", 1_024),
            ("1G", 1_000_000_000),
            ("1Gi", 1 << 30),
            ("5Gi", 5 << 30),
            ("1.5Gi", 3 << 29),
            ("1e3", 1_000),
            ("1E3", 1_000),
            ("2E", 2_000_000_000_000_000_000),
            ("0.5", 0), // value_ceil below checks rounding; here the whole part
        ];
        for (s, whole) in cases {
            assert_eq!(q(s).as_nanos() / NANO, *whole, "{s}");
        }
    }

    #[test]
    fn one_g_is_less_than_one_gi() {
        assert!(q("1G") < q("1Gi"));
        assert_eq!(q("1024Mi"), q("1Gi"));
        assert_eq!(q("1000M"), q("1G"));
        assert!(q("8Gi") > q("5Gi"));
    }

    #[test]
    fn milli_and_rounding() {
        assert_eq!(q("500m").as_nanos(), NANO / 2);
        assert_eq!(q("1500m").value_ceil(), 2);
        assert_eq!(q("1n").as_nanos(), 1);
        // finer than nano rounds up
        assert_eq!(q("0.1n").as_nanos(), 1);
        assert_eq!(q("-1").as_nanos(), -NANO);
    }

    #[test]
    fn canonical_strings_follow_the_input_family() {
        let cases = [
            ("5Gi", "5Gi"),
            ("1024Mi", "1Gi"),
            ("1536Mi", "1536Mi"),
            ("1000M", "1G"),
            ("1500M", "1500M"),
            ("500m", "500m"),
            ("1e3", "1e3"),
            ("0", "0"),
            ("512", "512"),
            ("100Ki", "100Ki"),
            ("0.5Gi", "512Mi"),
        ];
        for (input, want) in cases {
            assert_eq!(q(input).to_string(), want, "{input}");
        }
    }

    /// Found by the fuzz target (`tests/fuzz/fuzz_targets/quantity.rs`):
    /// a binary quantity that is a whole number of bytes but no whole
    /// number of any binary unit prints without a suffix, as upstream's
    /// `CanonicalizeBytes` does, and that text reads back as a decimal
    /// quantity, so a second print differs (upstream too: `62.5Ki` →
    /// `64000` → `64k`). The value never changes.
    #[test]
    fn a_binary_quantity_printed_without_suffix_reads_back_decimal() {
        let first = q("62.5Ki");
        assert_eq!(first.to_string(), "64000");
        let second = q(&first.to_string());
        assert_eq!(second.cmp(&first), Ordering::Equal);
        assert_eq!(second.to_string(), "64k");
        assert_eq!(q("64k").to_string(), "64k");
    }

    #[test]
    fn bad_inputs_are_errors_not_panics() {
        for s in [
            "", "12XB", "Gi", "1.2.3", "1ee3", "1e", "--1", "1 Gi", "1e999", "1e61",
        ] {
            assert!(Quantity::parse(s).is_err(), "{s:?} should not parse");
        }
        assert!(matches!(
            Quantity::parse("99999999999999999999999999999999999999Ei"),
            Err(QuantityError::TooLarge(_))
        ));
    }
}
