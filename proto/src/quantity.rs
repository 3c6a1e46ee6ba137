//! Kubernetes resource quantities: `500m`, `2`, `0.5`, `128Mi`, `1G`,
//! `1.5Gi`, `1e3`.
//!
//! A quantity is parsed exactly into nano-units (an `i128`), so comparisons
//! and sums never lose precision; [`Quantity::millis`] (CPU) and
//! [`Quantity::units`] (bytes, pods) round up as Kubernetes does.

use std::fmt;

/// A parsed quantity, exact to one nano-unit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Quantity {
    nanos: i128,
}

/// Why a string is not a quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{given:?} is not a valid quantity: {reason} (examples: 500m, 2, 128Mi, 1G, 1.5Gi)")]
pub struct QuantityError {
    pub given: String,
    pub reason: &'static str,
}

const NANOS_PER_UNIT: i128 = 1_000_000_000;
const MAX_DIGITS: usize = 30;

impl Quantity {
    /// A quantity of whole units (bytes, pods, cores).
    pub const fn from_units(units: i64) -> Quantity {
        Quantity {
            nanos: units as i128 * NANOS_PER_UNIT,
        }
    }

    /// A quantity of thousandths of a unit (millicores).
    pub const fn from_millis(millis: i64) -> Quantity {
        Quantity {
            nanos: millis as i128 * 1_000_000,
        }
    }

    /// Parses a quantity as Kubernetes writes it.
    ///
    /// # Errors
    /// [`QuantityError`] naming what is wrong with the string.
    pub fn parse(given: &str) -> Result<Quantity, QuantityError> {
        let fail = |reason| QuantityError {
            given: given.to_string(),
            reason,
        };
        let s = given.trim();
        if s.is_empty() {
            return Err(fail("it is empty"));
        }
        let (negative, s) = match s.as_bytes()[0] {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let number_len = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
        let (number, suffix) = s.split_at(number_len);
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && fraction.is_empty() {
            return Err(fail("it does not start with a number"));
        }
        if fraction.contains('.') {
            return Err(fail("it has more than one decimal point"));
        }
        if whole.len() + fraction.len() > MAX_DIGITS {
            return Err(fail("it has too many digits"));
        }
        let (exp10, exp2) = parse_suffix(suffix).ok_or_else(|| {
            fail("its suffix is not one of n, u, m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei or an exponent like e3")
        })?;
        let mut mantissa: i128 = 0;
        for digit in whole.bytes().chain(fraction.bytes()) {
            mantissa = mantissa * 10 + i128::from(digit - b'0');
        }
        let too_large = || fail("it is too large");
        let mut nanos = mantissa.checked_mul(1i128 << exp2).ok_or_else(too_large)?;
        let exponent = 9 + exp10 - fraction.len() as i32;
        if exponent >= 0 {
            let factor = 10i128.checked_pow(exponent as u32).ok_or_else(too_large)?;
            nanos = nanos.checked_mul(factor).ok_or_else(too_large)?;
        } else {
            let divisor = 10i128
                .checked_pow(exponent.unsigned_abs())
                .ok_or_else(|| fail("it is too small"))?;
            // Round up, as Kubernetes does for precision it cannot represent.
            nanos = (nanos + divisor - 1) / divisor;
        }
        if nanos > i128::from(i64::MAX) * NANOS_PER_UNIT {
            return Err(too_large());
        }
        Ok(Quantity {
            nanos: if negative { -nanos } else { nanos },
        })
    }

    /// Thousandths of a unit, rounded up: the CPU quantity `0.5` is 500.
    pub fn millis(self) -> i64 {
        div_ceil(self.nanos, 1_000_000)
    }

    /// Whole units, rounded up: the memory quantity `1Ki` is 1024.
    pub fn units(self) -> i64 {
        div_ceil(self.nanos, NANOS_PER_UNIT)
    }

    pub fn is_negative(self) -> bool {
        self.nanos < 0
    }
}

fn div_ceil(nanos: i128, per: i128) -> i64 {
    let q = nanos.div_euclid(per) + i128::from(nanos.rem_euclid(per) != 0);
    q.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// The decimal and binary exponents a suffix stands for.
fn parse_suffix(suffix: &str) -> Option<(i32, u32)> {
    Some(match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        _ => {
            let digits = suffix.strip_prefix(['e', 'E'])?;
            let exp: i32 = digits.parse().ok()?;
            if !(-18..=18).contains(&exp) {
                return None;
            }
            (exp, 0)
        }
    })
}

impl std::str::FromStr for Quantity {
    type Err = QuantityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Quantity::parse(s)
    }
}

/// Formats millicores as Kubernetes prints CPU: `500m`, `2`.
pub fn format_cpu_millis(millis: i64) -> String {
    if millis % 1000 == 0 {
        (millis / 1000).to_string()
    } else {
        format!("{millis}m")
    }
}

/// Formats bytes with the largest binary suffix that divides them exactly:
/// `128Mi`, `1536Mi`, `1000`.
pub fn format_bytes(bytes: i64) -> String {
    const SUFFIXES: [(&str, u32); 5] = [("Pi", 50), ("Ti", 40), ("Gi", 30), ("Mi", 20), ("Ki", 10)];
    for (suffix, shift) in SUFFIXES {
        let unit = 1i64 << shift;
        if bytes != 0 && bytes % unit == 0 {
            return format!("{}{suffix}", bytes / unit);
        }
    }
    bytes.to_string()
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nanos % NANOS_PER_UNIT == 0 {
            write!(f, "{}", self.nanos / NANOS_PER_UNIT)
        } else if self.nanos % 1_000_000 == 0 {
            write!(f, "{}m", self.nanos / 1_000_000)
        } else {
            write!(f, "{}n", self.nanos)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubernetes_examples() {
        let cases = [
            ("500m", 500, 1),
            ("2", 2000, 2),
            ("0.5", 500, 1),
            (".5", 500, 1),
            ("1.5", 1500, 2),
            ("128Mi", 128 * 1024 * 1024 * 1000, 128 * 1024 * 1024),
            ("1G", 1_000_000_000_000, 1_000_000_000),
            ("1.5Gi", 1_610_612_736_000, 1_610_612_736),
            ("1e3", 1_000_000, 1000),
            ("1k", 1_000_000, 1000),
            ("100n", 1, 1),
            ("1Ki", 1_024_000, 1024),
        ];
        for (given, millis, units) in cases {
            let q = Quantity::parse(given).unwrap();
            assert_eq!(q.millis(), millis, "{given} millis");
            assert_eq!(q.units(), units, "{given} units");
        }
    }

    #[test]
    fn rejects_garbage_with_a_reason() {
        for given in [
            "",
            "abc",
            "12x",
            "1..2",
            "1.2.3",
            "Mi",
            "1e99",
            "99999999999999999999999999999999Ei",
        ] {
            let err = Quantity::parse(given).unwrap_err();
            assert!(err.to_string().contains("is not a valid quantity"), "{given}: {err}");
        }
    }

    #[test]
    fn orders_across_suffixes() {
        assert!(Quantity::parse("1Gi").unwrap() > Quantity::parse("1G").unwrap());
        assert!(Quantity::parse("999m").unwrap() < Quantity::parse("1").unwrap());
    }

    #[test]
    fn formats_cpu_and_memory_like_kubectl() {
        assert_eq!(format_cpu_millis(500), "500m");
        assert_eq!(format_cpu_millis(2000), "2");
        assert_eq!(format_bytes(128 << 20), "128Mi");
        assert_eq!(format_bytes(1000), "1000");
        assert_eq!(format_bytes(3 << 30), "3Gi");
    }
}
