//! Reading a result back from storage.
//!
//! An instance keeps every count as JSON and renders its pages from that JSON, years and
//! versions after the count ran. So the JSON [`Outcome`] writes is the one it reads: fields are
//! only ever added (as optional ones), never renamed or reshaped, and the results written
//! before outcomes could be read back (`tests/data/stored/`) must keep reading unchanged. That
//! is why no stored row ever needs converting.
//!
//! Stored JSON is input, not the trusted value the count produced: a hand-edited or damaged
//! row must give an error, not an outcome whose indices point past its candidates (which would
//! make every renderer bounds-check, or panic). So [`Outcome`]'s `Deserialize` checks what
//! every count guarantees — each index names a candidate, each per-candidate list has one entry
//! per candidate, rounds are numbered 1, 2, 3 … — and refuses anything else.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Event, Outcome};

impl Serialize for Outcome {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // The derived impl (`#[serde(remote = "Self")]`), unchanged.
        Outcome::serialize(self, serializer)
    }
}

impl<'de> Deserialize<'de> for Outcome {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Outcome, D::Error> {
        let outcome = Outcome::deserialize(deserializer)?;
        outcome.check().map_err(D::Error::custom)?;
        Ok(outcome)
    }
}

impl Outcome {
    /// The invariants of a count's outcome, as a description of the first one broken.
    fn check(&self) -> Result<(), String> {
        let n = self.candidates.len();
        let candidate = |what: &str, c: usize| {
            if c < n {
                Ok(())
            } else {
                Err(format!("{what} names candidate {c}, but there are {n}"))
            }
        };
        let per_candidate = |what: &str, len: usize| {
            if len == n {
                Ok(())
            } else {
                Err(format!("{what} has {len} entries for {n} candidates"))
            }
        };
        for &c in &self.withdrawn {
            candidate("the withdrawn list", c)?;
        }
        if self.elected.len() != self.elected_indices.len() {
            return Err(format!(
                "{} elected names but {} elected indices",
                self.elected.len(),
                self.elected_indices.len()
            ));
        }
        for (name, &c) in self.elected.iter().zip(&self.elected_indices) {
            candidate("the elected list", c)?;
            if self.candidates.get(c) != Some(name) {
                return Err(format!("elected {name:?} is not candidate {c}"));
            }
        }
        for (i, round) in self.rounds.iter().enumerate() {
            let what = format!("round {}", i + 1);
            if round.number != i + 1 {
                return Err(format!("{what} is numbered {}", round.number));
            }
            per_candidate(&format!("the votes of {what}"), round.votes.len())?;
            if let Some(keep) = &round.keep_factors {
                per_candidate(&format!("the keep factors of {what}"), keep.len())?;
            }
            for event in &round.events {
                match event {
                    Event::Elected { candidate: c, .. }
                    | Event::Excluded { candidate: c, .. }
                    | Event::SurplusTransferred { candidate: c, .. } => candidate(&what, *c)?,
                    Event::TieBroken {
                        tied,
                        names,
                        chosen,
                        ..
                    } => {
                        for &c in tied {
                            candidate(&format!("a tie in {what}"), c)?;
                        }
                        if names.len() != tied.len() || !tied.contains(chosen) {
                            return Err(format!("a tie in {what} is inconsistent"));
                        }
                    }
                }
            }
        }
        for (what, matrix) in [
            ("pairwise", &self.pairwise),
            ("strongest_paths", &self.strongest_paths),
        ] {
            if let Some(rows) = matrix {
                per_candidate(what, rows.len())?;
                for row in rows {
                    per_candidate(&format!("a row of {what}"), row.len())?;
                }
            }
        }
        Ok(())
    }
}
