//! Double-majority decisions of the Circle of Stewards.
//!
//! A motion (changing the Budget or the Objectives, for example) passes only if it has a
//! majority of the Resident seats **and** a majority of the Worker seats. A majority of seats
//! means more than half of the seats of that constituency vote for it: with 3 seats, 2; with 4
//! seats, 3. It is a majority of seats, not of votes cast, so abstentions, absences and vacant
//! seats all count as not in favour. That way neither constituency can be outvoted by the other
//! and a Circle with vacancies cannot pass what a full one would not.

use std::fmt;

use serde::Serialize;

use crate::circle::{Circle, Constituency};
use crate::error::{Error, Result};

/// A member's vote on a motion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Position {
    /// In favour.
    For,
    /// Against.
    Against,
    /// Present, not voting either way.
    Abstain,
}

/// The result of a motion, with the counts that decided it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// True when both constituencies gave a majority of their seats.
    pub passed: bool,
    /// Resident seats (vacant ones included).
    pub resident_seats: usize,
    /// Resident members voting for.
    pub resident_for: usize,
    /// Resident members voting against.
    pub resident_against: usize,
    /// Worker seats (vacant ones included).
    pub worker_seats: usize,
    /// Worker members voting for.
    pub worker_for: usize,
    /// Worker members voting against.
    pub worker_against: usize,
    /// Votes needed in each constituency: `seats / 2 + 1`.
    pub needed: usize,
}

/// True if `votes_for` is a majority of `seats`.
pub fn is_majority_of_seats(votes_for: usize, seats: usize) -> bool {
    votes_for * 2 > seats
}

/// Decides a motion. Every voter must hold a seat and vote once.
pub fn decide<M: Clone + PartialEq + fmt::Debug>(
    circle: &Circle<M>,
    votes: &[(M, Position)],
) -> Result<Decision> {
    let seats = circle.seats_per_constituency();
    let mut tally = [[0usize; 2]; 2];
    for (i, (member, position)) in votes.iter().enumerate() {
        let constituency = circle.seat_of(member).ok_or_else(|| {
            Error::Motion(format!(
                "{member:?} holds no seat on the Circle and cannot vote"
            ))
        })?;
        if votes[..i].iter().any(|(m, _)| m == member) {
            return Err(Error::Motion(format!("{member:?} voted more than once")));
        }
        let side = usize::from(constituency == Constituency::Worker);
        match position {
            Position::For => tally[side][0] += 1,
            Position::Against => tally[side][1] += 1,
            Position::Abstain => {}
        }
    }
    let passed =
        is_majority_of_seats(tally[0][0], seats) && is_majority_of_seats(tally[1][0], seats);
    Ok(Decision {
        passed,
        resident_seats: seats,
        resident_for: tally[0][0],
        resident_against: tally[0][1],
        worker_seats: seats,
        worker_for: tally[1][0],
        worker_against: tally[1][1],
        needed: seats / 2 + 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn circle() -> Circle<&'static str> {
        let mut c = Circle::new(3).expect("three each");
        for r in ["r1", "r2", "r3"] {
            c.seat(Constituency::Resident, r).expect("vacancy");
        }
        for w in ["w1", "w2"] {
            c.seat(Constituency::Worker, w).expect("vacancy");
        }
        c
    }

    #[test]
    fn needs_a_majority_of_seats_in_both_constituencies() {
        let c = circle();
        use Position::*;
        let all_residents = [("r1", For), ("r2", For), ("r3", For)];
        let d = decide(
            &c,
            &[&all_residents[..], &[("w1", For), ("w2", Against)]].concat(),
        )
        .expect("valid");
        assert!(!d.passed, "one of three worker seats is not a majority");
        let d = decide(
            &c,
            &[&all_residents[..], &[("w1", For), ("w2", For)]].concat(),
        )
        .expect("valid");
        assert!(
            d.passed,
            "two of three seats, with one vacant, is a majority"
        );
        let d = decide(
            &c,
            &[
                ("r1", For),
                ("r2", Abstain),
                ("r3", Against),
                ("w1", For),
                ("w2", For),
            ],
        )
        .expect("valid");
        assert!(
            !d.passed,
            "abstentions count against: 1 of 3 resident seats"
        );
        assert_eq!(d.needed, 2);
    }

    #[test]
    fn rejects_outsiders_and_double_votes() {
        let c = circle();
        assert!(decide(&c, &[("x", Position::For)]).is_err());
        assert!(decide(&c, &[("r1", Position::For), ("r1", Position::Against)]).is_err());
    }

    #[test]
    fn majority_of_seats_arithmetic() {
        assert!(!is_majority_of_seats(2, 4));
        assert!(is_majority_of_seats(3, 4));
        assert!(is_majority_of_seats(2, 3));
        assert!(!is_majority_of_seats(0, 0));
    }
}
