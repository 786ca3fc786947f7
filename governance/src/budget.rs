//! The Budget: what share of the instance's revenue goes where.
//!
//! Three shares, whole percentages: infrastructure, operations and patronage (payouts to the
//! people whose work the instance relies on). Each is 0 to 100 and together they are at most
//! 100. Whatever is not allocated — 1% with the default 33/33/33 — is the **reserve**: it stays
//! in the instance's account, carried over from period to period, until the Circle allocates it
//! by a motion (double majority, like any change of the Budget). Splitting an amount rounds each
//! share down to the smallest currency unit and adds the leftover units to the reserve, so the
//! parts always add up to the whole.

use serde::Serialize;

use crate::error::{Error, Result};

/// The Budget's shares, in percent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Budget {
    infrastructure: u8,
    operations: u8,
    patronage: u8,
}

/// An amount split by a [`Budget`], in the smallest currency unit (cents).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Allocation {
    /// Infrastructure's part.
    pub infrastructure: u64,
    /// Operations' part.
    pub operations: u64,
    /// Patronage's part.
    pub patronage: u64,
    /// The unallocated share plus rounding leftovers.
    pub reserve: u64,
}

impl Default for Budget {
    /// 33% infrastructure, 33% operations, 33% patronage, 1% reserve.
    fn default() -> Budget {
        Budget {
            infrastructure: 33,
            operations: 33,
            patronage: 33,
        }
    }
}

impl Budget {
    /// Validates shares: each 0..=100, sum at most 100.
    pub fn new(infrastructure: u8, operations: u8, patronage: u8) -> Result<Budget> {
        for (name, share) in [
            ("infrastructure", infrastructure),
            ("operations", operations),
            ("patronage", patronage),
        ] {
            if share > 100 {
                return Err(Error::Budget(format!(
                    "the {name} share is {share}%, more than 100%"
                )));
            }
        }
        let sum = u16::from(infrastructure) + u16::from(operations) + u16::from(patronage);
        if sum > 100 {
            return Err(Error::Budget(format!(
                "the shares add up to {sum}%, more than 100%"
            )));
        }
        Ok(Budget {
            infrastructure,
            operations,
            patronage,
        })
    }

    /// Infrastructure's share, in percent.
    pub fn infrastructure(&self) -> u8 {
        self.infrastructure
    }

    /// Operations' share, in percent.
    pub fn operations(&self) -> u8 {
        self.operations
    }

    /// Patronage's share, in percent.
    pub fn patronage(&self) -> u8 {
        self.patronage
    }

    /// The unallocated share, in percent.
    pub fn reserve(&self) -> u8 {
        100 - self.infrastructure - self.operations - self.patronage
    }

    /// Splits `amount` (in cents); the parts add up to `amount` exactly.
    pub fn split(&self, amount: u64) -> Allocation {
        let part = |pct: u8| u64::try_from(u128::from(amount) * u128::from(pct) / 100).unwrap_or(0);
        let infrastructure = part(self.infrastructure);
        let operations = part(self.operations);
        let patronage = part(self.patronage);
        Allocation {
            infrastructure,
            operations,
            patronage,
            reserve: amount - infrastructure - operations - patronage,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_leaves_one_percent_in_reserve() {
        let b = Budget::default();
        assert_eq!(
            (
                b.infrastructure(),
                b.operations(),
                b.patronage(),
                b.reserve()
            ),
            (33, 33, 33, 1)
        );
        let a = b.split(100_001);
        assert_eq!(a.infrastructure, 33_000);
        assert_eq!(
            a.infrastructure + a.operations + a.patronage + a.reserve,
            100_001
        );
        assert_eq!(a.reserve, 100_001 - 3 * 33_000);
    }

    #[test]
    fn rejects_shares_out_of_range() {
        assert!(Budget::new(101, 0, 0).is_err());
        assert!(Budget::new(50, 30, 21).is_err());
        assert_eq!(Budget::new(50, 30, 20).map(|b| b.reserve()), Ok(0));
        assert_eq!(Budget::new(0, 0, 0).map(|b| b.reserve()), Ok(100));
    }
}
