//! The Circle of Stewards: N Resident seats and N Worker seats, always.
//!
//! The only way to hold a [`Circle`] is through its methods, and each of them keeps three rules
//! or refuses the change with an [`Error::Circle`]:
//!
//! 1. There are exactly as many Worker seats as Resident seats (`seats_per_constituency` each).
//!    The size changes for both constituencies at once, and shrinking only removes empty seats.
//! 2. A seat is filled only from its own constituency: a vacancy left by a Resident
//!    Representative is refilled by a Resident (countback or by-election), never by a Worker.
//! 3. A person holds at most one seat, even if they are on both rolls.
//!
//! Vacancies are tracked per constituency. Decisions count seats, not members present (see
//! [`crate::motion`]), so a vacancy can never tilt a vote towards the other constituency.

use std::fmt;

use serde::Serialize;

use crate::error::{Error, Result};

/// The two constituencies of an instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Constituency {
    /// Passport Holders of the instance.
    Resident,
    /// Maintainers and Contributors.
    Worker,
}

impl fmt::Display for Constituency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Constituency::Resident => "Resident",
            Constituency::Worker => "Worker",
        })
    }
}

/// The seats of the Circle of Stewards, held by members identified by `M` (a Passport id in the
/// instance).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Circle<M> {
    resident: Vec<Option<M>>,
    worker: Vec<Option<M>>,
}

impl<M: Clone + PartialEq + fmt::Debug> Circle<M> {
    /// An empty Circle with `seats_per_constituency` Resident and as many Worker seats.
    pub fn new(seats_per_constituency: usize) -> Result<Circle<M>> {
        if seats_per_constituency == 0 {
            return Err(Error::Circle {
                constituency: Constituency::Resident,
                message: "a Circle needs at least one seat per constituency".into(),
            });
        }
        Ok(Circle {
            resident: vec![None; seats_per_constituency],
            worker: vec![None; seats_per_constituency],
        })
    }

    fn side(&self, constituency: Constituency) -> &Vec<Option<M>> {
        match constituency {
            Constituency::Resident => &self.resident,
            Constituency::Worker => &self.worker,
        }
    }

    fn side_mut(&mut self, constituency: Constituency) -> &mut Vec<Option<M>> {
        match constituency {
            Constituency::Resident => &mut self.resident,
            Constituency::Worker => &mut self.worker,
        }
    }

    /// Seats in each constituency (the Circle has twice this many).
    pub fn seats_per_constituency(&self) -> usize {
        self.resident.len()
    }

    /// Seats filled in one constituency.
    pub fn seated(&self, constituency: Constituency) -> usize {
        self.side(constituency)
            .iter()
            .filter(|s| s.is_some())
            .count()
    }

    /// Empty seats in one constituency.
    pub fn vacancies(&self, constituency: Constituency) -> usize {
        self.seats_per_constituency() - self.seated(constituency)
    }

    /// True when every seat of both constituencies is filled.
    pub fn is_full(&self) -> bool {
        self.vacancies(Constituency::Resident) == 0 && self.vacancies(Constituency::Worker) == 0
    }

    /// The members holding seats of one constituency, in seat order.
    pub fn members(&self, constituency: Constituency) -> Vec<&M> {
        self.side(constituency).iter().flatten().collect()
    }

    /// The constituency whose seat `member` holds, if any.
    pub fn seat_of(&self, member: &M) -> Option<Constituency> {
        [Constituency::Resident, Constituency::Worker]
            .into_iter()
            .find(|&c| self.side(c).iter().any(|s| s.as_ref() == Some(member)))
    }

    /// Seats `member` in a vacant seat of `constituency` (the caller has checked they are on
    /// that roll and were elected or counted back). Returns the seat number. Refused when the
    /// constituency has no vacancy or the member already holds a seat.
    pub fn seat(&mut self, constituency: Constituency, member: M) -> Result<usize> {
        if let Some(held) = self.seat_of(&member) {
            return Err(Error::Circle {
                constituency,
                message: format!(
                    "{member:?} already holds a {held} seat; a person holds one seat at most"
                ),
            });
        }
        let seats = self.side_mut(constituency);
        let slot = seats
            .iter()
            .position(Option::is_none)
            .ok_or_else(|| Error::Circle {
                constituency,
                message: "no vacant seat: a seat can only be filled from its own constituency"
                    .into(),
            })?;
        seats[slot] = Some(member);
        Ok(slot)
    }

    /// Frees the seat `member` holds (resignation, end of term). The vacancy stays with that
    /// seat's constituency. Returns the constituency and seat number.
    pub fn vacate(&mut self, member: &M) -> Result<(Constituency, usize)> {
        for constituency in [Constituency::Resident, Constituency::Worker] {
            let seats = self.side_mut(constituency);
            if let Some(slot) = seats.iter().position(|s| s.as_ref() == Some(member)) {
                seats[slot] = None;
                return Ok((constituency, slot));
            }
        }
        Err(Error::Circle {
            constituency: Constituency::Resident,
            message: format!("{member:?} holds no seat"),
        })
    }

    /// Changes the number of seats of both constituencies at once. Growing adds vacancies;
    /// shrinking removes only vacant seats and is refused if either constituency has fewer
    /// vacancies than the seats to remove.
    pub fn resize(&mut self, seats_per_constituency: usize) -> Result<()> {
        if seats_per_constituency == 0 {
            return Err(Error::Circle {
                constituency: Constituency::Resident,
                message: "a Circle needs at least one seat per constituency".into(),
            });
        }
        let current = self.seats_per_constituency();
        if seats_per_constituency < current {
            let remove = current - seats_per_constituency;
            for constituency in [Constituency::Resident, Constituency::Worker] {
                if self.vacancies(constituency) < remove {
                    return Err(Error::Circle {
                        constituency,
                        message: format!(
                            "cannot remove {remove} seats: only {} are vacant",
                            self.vacancies(constituency)
                        ),
                    });
                }
            }
            for constituency in [Constituency::Resident, Constituency::Worker] {
                let seats = self.side_mut(constituency);
                let mut left = remove;
                seats.retain(|s| {
                    if s.is_none() && left > 0 {
                        left -= 1;
                        false
                    } else {
                        true
                    }
                });
            }
        } else {
            self.resident.resize(seats_per_constituency, None);
            self.worker.resize(seats_per_constituency, None);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seats_only_from_the_own_constituency() {
        let mut circle: Circle<&str> = Circle::new(2).expect("two seats each");
        circle.seat(Constituency::Resident, "ana").expect("vacancy");
        circle.seat(Constituency::Resident, "ben").expect("vacancy");
        let err = circle
            .seat(Constituency::Resident, "cy")
            .expect_err("resident seats full");
        assert!(err.to_string().contains("no vacant seat"), "{err}");
        circle
            .seat(Constituency::Worker, "cy")
            .expect("worker vacancy");
        assert_eq!(circle.vacancies(Constituency::Worker), 1);
        assert_eq!(
            circle.vacate(&"ana").expect("seated"),
            (Constituency::Resident, 0)
        );
        assert_eq!(circle.vacancies(Constituency::Resident), 1);
        let err = circle
            .seat(Constituency::Resident, "cy")
            .expect_err("one seat per person");
        assert!(err.to_string().contains("already holds"), "{err}");
    }

    #[test]
    fn resizing_keeps_both_sides_equal() {
        let mut circle: Circle<u32> = Circle::new(1).expect("one each");
        circle.seat(Constituency::Worker, 1).expect("vacancy");
        circle.resize(3).expect("grow");
        assert_eq!(
            (
                circle.vacancies(Constituency::Resident),
                circle.vacancies(Constituency::Worker)
            ),
            (3, 2)
        );
        circle.seat(Constituency::Worker, 2).expect("vacancy");
        circle.seat(Constituency::Worker, 3).expect("vacancy");
        assert!(
            circle.resize(2).is_err(),
            "workers have no vacancy to give up"
        );
        assert_eq!(circle.seats_per_constituency(), 3);
        assert!(Circle::<u32>::new(0).is_err());
    }
}
