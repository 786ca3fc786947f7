//! Exact fixed-point vote values.
//!
//! Every tally in this crate is a whole number of billionths of a vote held in a `u64`. Scottish
//! STV works to five decimal places and Meek STV to nine; both are exact multiples of a
//! billionth, so sums never drift the way floating point would and two counts of the same
//! ballots agree to the last digit on every machine. The ceiling this puts on an election
//! ([`MAX_TOTAL_VOTES`] votes) is far above any real electorate, and the BLT reader and
//! [`crate::Election::new`] enforce it so that no later sum can overflow.

use std::fmt;

/// Units of a [`Votes`] value per whole vote.
pub const SCALE: u64 = 1_000_000_000;

/// Largest total weight an election may carry, in whole votes. `MAX_TOTAL_VOTES * SCALE` fits
/// in a `u64` with room for the intermediate sums the counts make.
pub const MAX_TOTAL_VOTES: u64 = 1_000_000_000;

/// A non-negative number of votes, exact to nine decimal places.
///
/// Serialised as a decimal string ("1367", "12.5", "0.00001") so that JSON readers never see a
/// binary floating-point approximation of a published tally.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Votes(u64);

impl Votes {
    /// No votes.
    pub const ZERO: Votes = Votes(0);

    /// `n` whole votes. Saturates rather than overflowing (callers bound `n` first).
    pub fn whole(n: u64) -> Votes {
        Votes(n.saturating_mul(SCALE))
    }

    /// A value given in billionths of a vote.
    pub const fn from_units(units: u64) -> Votes {
        Votes(units)
    }

    /// The value in billionths of a vote.
    pub const fn units(self) -> u64 {
        self.0
    }

    /// Whole votes, any fraction dropped.
    pub const fn floor_whole(self) -> u64 {
        self.0 / SCALE
    }

    /// True when the value has no fractional part.
    pub const fn is_whole(self) -> bool {
        self.0.is_multiple_of(SCALE)
    }

    /// Parses a non-negative decimal such as `12`, `0.5` or `3.00001` (at most nine decimals).
    /// Returns `None` for anything else, including values above [`MAX_TOTAL_VOTES`].
    pub fn parse_decimal(text: &str) -> Option<Votes> {
        parse(text, MAX_TOTAL_VOTES * SCALE)
    }

    /// `self + other`, or `None` on overflow.
    pub fn checked_add(self, other: Votes) -> Option<Votes> {
        self.0.checked_add(other.0).map(Votes)
    }

    /// `self - other`, floored at zero.
    pub fn saturating_sub(self, other: Votes) -> Votes {
        Votes(self.0.saturating_sub(other.0))
    }
}

/// Reads the decimal form [`Votes`] prints, up to `max_units` billionths. Checked arithmetic
/// throughout: this reads people's BLT files and stored results, so it must not overflow.
fn parse(text: &str, max_units: u64) -> Option<Votes> {
    let (int_part, frac_part) = match text.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (text, None),
    };
    if int_part.is_empty() || !int_part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut whole: u64 = 0;
    for b in int_part.bytes() {
        whole = whole.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
        if whole > max_units / SCALE {
            return None;
        }
    }
    let mut frac: u64 = 0;
    if let Some(f) = frac_part {
        if f.is_empty() || f.len() > 9 || !f.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        for b in f.bytes() {
            frac = frac * 10 + u64::from(b - b'0');
        }
        frac *= 10u64.pow(9 - u32::try_from(f.len()).ok()?);
    }
    let units = whole.checked_mul(SCALE)?.checked_add(frac)?;
    (units <= max_units).then_some(Votes(units))
}

impl std::ops::Add for Votes {
    type Output = Votes;
    fn add(self, other: Votes) -> Votes {
        // Totals are bounded by MAX_TOTAL_VOTES * SCALE (enforced when an Election is built),
        // so a sum of parts of one election cannot overflow; saturate rather than wrap anyway.
        Votes(self.0.saturating_add(other.0))
    }
}

impl std::ops::AddAssign for Votes {
    fn add_assign(&mut self, other: Votes) {
        *self = *self + other;
    }
}

impl std::ops::Sub for Votes {
    type Output = Votes;
    fn sub(self, other: Votes) -> Votes {
        Votes(self.0.saturating_sub(other.0))
    }
}

impl std::ops::SubAssign for Votes {
    fn sub_assign(&mut self, other: Votes) {
        *self = *self - other;
    }
}

impl std::iter::Sum for Votes {
    fn sum<I: Iterator<Item = Votes>>(iter: I) -> Votes {
        iter.fold(Votes::ZERO, |a, b| a + b)
    }
}

impl fmt::Display for Votes {
    /// Exact decimal with trailing zeros dropped: `1367`, `1362.12345`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / SCALE;
        let frac = self.0 % SCALE;
        if frac == 0 {
            return write!(f, "{whole}");
        }
        let digits = format!("{frac:09}");
        write!(f, "{whole}.{}", digits.trim_end_matches('0'))
    }
}

impl serde::Serialize for Votes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Reads the decimal string [`Votes`] is written as, over the whole `u64` range (a stored
/// result may hold sums no ballot file could, such as Schulze's path strengths). A number is
/// refused rather than accepted as a float: the point of the string form is exactness.
impl<'de> serde::Deserialize<'de> for Votes {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Votes, D::Error> {
        struct Decimal;
        impl serde::de::Visitor<'_> for Decimal {
            type Value = Votes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of votes as a decimal string such as \"12.5\"")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Votes, E> {
                parse(text, u64::MAX)
                    .ok_or_else(|| E::invalid_value(serde::de::Unexpected::Str(text), &self))
            }
        }
        deserializer.deserialize_str(Decimal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_exact_decimals() {
        for (text, units, shown) in [
            ("12", 12 * SCALE, "12"),
            ("0.5", SCALE / 2, "0.5"),
            ("3.00001", 3 * SCALE + 10_000, "3.00001"),
            ("0.000000001", 1, "0.000000001"),
        ] {
            let v = Votes::parse_decimal(text).expect("valid decimal");
            assert_eq!(v.units(), units, "{text}");
            assert_eq!(v.to_string(), shown);
        }
    }

    #[test]
    fn rejects_malformed_or_huge_decimals() {
        for text in [
            "",
            "-1",
            "1.",
            ".5",
            "1e3",
            "1.0000000001",
            "abc",
            "1 2",
            "1000000001",
            "99999999999999999999999",
        ] {
            assert_eq!(Votes::parse_decimal(text), None, "{text:?}");
        }
    }

    #[test]
    fn serde_reads_back_what_it_writes_over_the_whole_range() {
        for units in [
            0,
            1,
            SCALE / 2,
            3 * SCALE + 10_000,
            MAX_TOTAL_VOTES * SCALE,
            u64::MAX,
        ] {
            let v = Votes::from_units(units);
            let json = serde_json::to_string(&v).expect("serialises");
            let back: Votes = serde_json::from_str(&json).expect("reads back");
            assert_eq!(back, v, "{json}");
        }
    }

    #[test]
    fn serde_refuses_floats_and_out_of_range_strings() {
        // A float would be inexact, and a value past u64 cannot be held: both are errors.
        for json in [
            "12.5",
            "12",
            "\"-1\"",
            "\"18446744073.709551616\"",
            "\"1e3\"",
            "null",
        ] {
            assert!(serde_json::from_str::<Votes>(json).is_err(), "{json}");
        }
    }
}
