//! Counting ballots: one entry point, six methods, one result shape.
//!
//! [`count`] takes an [`Election`], a [`Method`], the number of seats and the published seed,
//! and returns an [`Outcome`]: who is elected, in order, and every round with each candidate's
//! votes, the quota, what happened and how each tie was broken. The outcome serialises to JSON
//! (`serde_json::to_string(&outcome)`), reads back from it as the same value (checked, so a
//! corrupt stored result is an error and never an out-of-range index; see `stored.rs`), and
//! renders for people with [`Outcome::to_text`].
//!
//! Rules shared by every method:
//! - Withdrawn candidates are skipped on every ballot, as if they had not stood.
//! - A ballot that ranks no (non-withdrawn) candidate is blank: it is reported as invalid and
//!   not counted, as the Scottish rules do with a paper showing no first preference.
//! - Ties are broken first by earlier rounds — the candidate who was ahead (or behind) at the
//!   most recent earlier round where the tied candidates differed — and only then by lot. A lot
//!   is drawn with [`Lot`] from the seed, so the same ballots and seed always give the same
//!   result, and the order ballots arrived in never matters (they are merged and sorted first).
//!   When one round leaves three or more candidates tied, earlier rounds are searched back for
//!   the first round where they differ; if that round still leaves some of them level at the
//!   deciding end, the search continues back among those, and a lot is drawn only among the
//!   candidates that were level in every round.
//! - Every tie decision is recorded in its round as an [`Event::TieBroken`].
//! - If the seats are at least the number of standing candidates, all of them are elected.
//!
//! Equal rankings (`2=3`) are handled per method; each method's module says how.

mod approval;
mod irv;
mod meek;
mod schulze;
mod scottish;
mod stored;
mod text;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::election::Election;
use crate::error::{Error, Result};
use crate::lot::{Generator, Lot};
use crate::votes::Votes;

/// A counting method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// Single transferable vote by the Scottish Local Government Elections Order 2007 rules.
    ScottishStv,
    /// Meek single transferable vote.
    Meek,
    /// Instant-runoff voting for one seat.
    Irv,
    /// Schulze's beatpath method; several seats take the top of its ranking.
    Schulze,
    /// Approval voting: each ballot approves every candidate it lists.
    Approval,
    /// Plurality: each ballot counts for its first preference.
    Plurality,
}

impl Method {
    /// The short name used on the command line and in JSON: `stv`, `meek`, `irv`, `schulze`,
    /// `approval`, `plurality`.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::ScottishStv => "stv",
            Method::Meek => "meek",
            Method::Irv => "irv",
            Method::Schulze => "schulze",
            Method::Approval => "approval",
            Method::Plurality => "plurality",
        }
    }

    /// A descriptive name for reports.
    pub fn long_name(self) -> &'static str {
        match self {
            Method::ScottishStv => "Scottish STV (Scottish Local Government Elections Order 2007)",
            Method::Meek => "Meek STV",
            Method::Irv => "Instant-runoff voting",
            Method::Schulze => "Schulze",
            Method::Approval => "Approval",
            Method::Plurality => "Plurality",
        }
    }
}

impl FromStr for Method {
    type Err = Error;
    fn from_str(s: &str) -> Result<Method> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "stv" | "scottish-stv" | "scottish" => Ok(Method::ScottishStv),
            "meek" | "meek-stv" => Ok(Method::Meek),
            "irv" | "instant-runoff" => Ok(Method::Irv),
            "schulze" => Ok(Method::Schulze),
            "approval" => Ok(Method::Approval),
            "plurality" | "fptp" => Ok(Method::Plurality),
            _ => Err(Error::UnknownMethod(s.to_string())),
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Method {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Reads any name [`Method::from_str`] accepts; results are written with [`Method::as_str`].
impl<'de> Deserialize<'de> for Method {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// The result of a count.
///
/// Serialised with the field names below (this is the JSON an instance stores and publishes);
/// deserialising checks that every index and per-candidate list fits [`Outcome::candidates`],
/// so code reading a stored outcome can index by candidate without bounds surprises.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
// The derived impls become inherent functions, wrapped in `stored.rs` to add the checks.
#[serde(remote = "Self")]
pub struct Outcome {
    /// The method used.
    pub method: Method,
    /// The election's title.
    pub title: String,
    /// Candidate names; every per-candidate list in the rounds is indexed like this one.
    pub candidates: Vec<String>,
    /// Indices of withdrawn candidates.
    pub withdrawn: Vec<usize>,
    /// Seats filled.
    pub seats: usize,
    /// The seed the lots were drawn from.
    pub seed: u64,
    /// The lot generator, for anyone redoing a draw.
    pub lot: Generator,
    /// Total weight of the ballots counted.
    pub valid_votes: Votes,
    /// Total weight of ballots that could not count (blank, or only withdrawn candidates, or,
    /// under Scottish STV, an equal first preference).
    pub invalid_votes: Votes,
    /// The quota (STV: the final one; None for methods without a quota).
    pub quota: Option<Votes>,
    /// Names of the elected candidates, in order of election.
    pub elected: Vec<String>,
    /// Indices of the elected candidates, in order of election.
    pub elected_indices: Vec<usize>,
    /// Every round (STV: every stage) of the count.
    pub rounds: Vec<Round>,
    /// Schulze only: `pairwise[i][j]` is the weight of ballots ranking `i` above `j`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pairwise: Option<Vec<Vec<Votes>>>,
    /// Schulze only: strength of the strongest path from `i` to `j`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strongest_paths: Option<Vec<Vec<Votes>>>,
    /// How equal rankings and other method-specific rules were applied, in words.
    pub notes: Vec<String>,
}

/// One round of a count (a "stage" in the Scottish rules).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Round {
    /// 1-based round number.
    pub number: usize,
    /// What this round did, e.g. "First preferences" or "Surplus of Alice transferred".
    pub description: String,
    /// Each candidate's votes at the end of the round, indexed like [`Outcome::candidates`].
    pub votes: Vec<Votes>,
    /// The quota in force (STV and IRV; IRV's is the majority threshold).
    pub quota: Option<Votes>,
    /// Cumulative weight of ballots with no further usable preference.
    pub non_transferable: Votes,
    /// Cumulative fractions of a vote lost to truncation (Scottish STV's 5-decimal transfer
    /// values). Votes are conserved exactly: the candidates' votes plus the non-transferable
    /// total plus this equal the valid votes in every round.
    pub rounding: Votes,
    /// What happened, in order.
    pub events: Vec<Event>,
    /// Meek only: iterations of the keep-factor loop in this round.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iterations: Option<usize>,
    /// Meek only: each candidate's keep factor at the end of the round.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_factors: Option<Vec<Votes>>,
}

/// Something that happened in a round.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A candidate was elected.
    Elected {
        /// Candidate index.
        candidate: usize,
        /// Candidate name.
        name: String,
        /// Votes at election.
        votes: Votes,
    },
    /// A candidate was excluded (eliminated).
    Excluded {
        /// Candidate index.
        candidate: usize,
        /// Candidate name.
        name: String,
        /// Votes at exclusion.
        votes: Votes,
    },
    /// An elected candidate's surplus was transferred.
    SurplusTransferred {
        /// Candidate index.
        candidate: usize,
        /// Candidate name.
        name: String,
        /// The surplus (votes above the quota).
        surplus: Votes,
        /// Votes credited to continuing candidates.
        transferred: Votes,
        /// Value of papers with no next preference.
        non_transferable: Votes,
        /// Lost to truncating transfer values to five decimals.
        rounding: Votes,
    },
    /// A tie was broken.
    TieBroken {
        /// What the tie decided: "exclusion", "surplus order", "order of election", "seat".
        purpose: String,
        /// The tied candidates' indices.
        tied: Vec<usize>,
        /// The tied candidates' names.
        names: Vec<String>,
        /// The chosen candidate's index.
        chosen: usize,
        /// The chosen candidate's name.
        name: String,
        /// How it was decided.
        rule: TieRule,
    },
}

/// How a tie was decided.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum TieRule {
    /// By the votes at an earlier round (the most recent one at which they differed).
    EarlierRound {
        /// The round consulted.
        round: usize,
    },
    /// By lot.
    Lot {
        /// The raw SplitMix64 output that decided it.
        draw: u64,
        /// Which draw of this count it was (1-based).
        draw_number: u64,
    },
}

/// Counts `election` by `method` for `seats` seats, drawing any lot from `seed`.
pub fn count(election: &Election, method: Method, seats: usize, seed: u64) -> Result<Outcome> {
    if seats == 0 {
        return Err(Error::Count(
            "the number of seats must be at least 1".into(),
        ));
    }
    if method == Method::Irv && seats != 1 {
        return Err(Error::Count(format!(
            "instant-runoff fills one seat, not {seats}; use stv or meek for several"
        )));
    }
    let mut counter = Counter::new(election, method, seats, seed);
    let standing = counter.standing();
    if standing.is_empty() {
        return Err(Error::Count("every candidate has withdrawn".into()));
    }
    let ranks_everyone = matches!(
        method,
        Method::Schulze | Method::Approval | Method::Plurality
    );
    if seats >= standing.len() && !ranks_everyone {
        counter.elect_everyone(standing);
    } else {
        match method {
            Method::ScottishStv => scottish::count(&mut counter)?,
            Method::Meek => meek::count(&mut counter)?,
            Method::Irv => irv::count(&mut counter)?,
            Method::Schulze => schulze::count(&mut counter)?,
            Method::Approval => approval::count(&mut counter, approval::Kind::Approval)?,
            Method::Plurality => approval::count(&mut counter, approval::Kind::Plurality)?,
        }
    }
    Ok(counter.finish())
}

/// Counts and returns only the elected candidates' indices, in order of election.
pub fn count_indices(
    election: &Election,
    method: Method,
    seats: usize,
    seed: u64,
) -> Result<Vec<usize>> {
    count(election, method, seats, seed).map(|o| o.elected_indices)
}

/// State shared by every method: the election, the rounds so far, the lot, the elected list.
pub(crate) struct Counter<'a> {
    pub(crate) election: &'a Election,
    pub(crate) seats: usize,
    lot: Lot,
    pub(crate) rounds: Vec<Round>,
    pub(crate) elected: Vec<usize>,
    outcome: Outcome,
}

impl<'a> Counter<'a> {
    fn new(election: &'a Election, method: Method, seats: usize, seed: u64) -> Counter<'a> {
        let outcome = Outcome {
            method,
            title: election.title().to_string(),
            candidates: election.candidates().to_vec(),
            withdrawn: election.withdrawn(),
            seats,
            seed,
            lot: Generator::SplitMix64,
            valid_votes: Votes::ZERO,
            invalid_votes: Votes::ZERO,
            quota: None,
            elected: Vec::new(),
            elected_indices: Vec::new(),
            rounds: Vec::new(),
            pairwise: None,
            strongest_paths: None,
            notes: Vec::new(),
        };
        Counter {
            election,
            seats,
            lot: Lot::new(seed),
            rounds: Vec::new(),
            elected: Vec::new(),
            outcome,
        }
    }

    /// Number of candidates (withdrawn included).
    pub(crate) fn n(&self) -> usize {
        self.election.candidates().len()
    }

    /// Candidates who have not withdrawn.
    pub(crate) fn standing(&self) -> Vec<usize> {
        (0..self.n())
            .filter(|&c| !self.election.is_withdrawn(c))
            .collect()
    }

    pub(crate) fn name(&self, c: usize) -> String {
        self.election
            .candidates()
            .get(c)
            .cloned()
            .unwrap_or_default()
    }

    pub(crate) fn set_valid(&mut self, valid: Votes, invalid: Votes) {
        self.outcome.valid_votes = valid;
        self.outcome.invalid_votes = invalid;
    }

    pub(crate) fn set_quota(&mut self, quota: Option<Votes>) {
        self.outcome.quota = quota;
    }

    pub(crate) fn note(&mut self, note: impl Into<String>) {
        self.outcome.notes.push(note.into());
    }

    pub(crate) fn set_schulze(&mut self, pairwise: Vec<Vec<Votes>>, paths: Vec<Vec<Votes>>) {
        self.outcome.pairwise = Some(pairwise);
        self.outcome.strongest_paths = Some(paths);
    }

    pub(crate) fn elected_event(&mut self, c: usize, votes: Votes) -> Event {
        self.elected.push(c);
        Event::Elected {
            candidate: c,
            name: self.name(c),
            votes,
        }
    }

    pub(crate) fn excluded_event(&self, c: usize, votes: Votes) -> Event {
        Event::Excluded {
            candidate: c,
            name: self.name(c),
            votes,
        }
    }

    /// Breaks a tie among `tied`: the most recent earlier round where they differ decides
    /// (`prefer_high`: the higher votes win), narrowing as described in the module docs; a lot
    /// decides among candidates level at every round. Records the decision in `events`.
    /// `current` holds this round's votes (where they are tied), which is not yet in history.
    pub(crate) fn break_tie(
        &mut self,
        tied: &[usize],
        prefer_high: bool,
        purpose: &str,
        events: &mut Vec<Event>,
    ) -> usize {
        let mut remaining: Vec<usize> = tied.to_vec();
        remaining.sort_unstable();
        remaining.dedup();
        if remaining.len() <= 1 {
            return remaining.first().copied().unwrap_or(0);
        }
        let mut decided_round = None;
        for round in self.rounds.iter().rev() {
            let votes = |c: usize| round.votes.get(c).copied().unwrap_or(Votes::ZERO);
            let first = votes(remaining[0]);
            if remaining.iter().all(|&c| votes(c) == first) {
                continue;
            }
            let best = if prefer_high {
                remaining.iter().map(|&c| votes(c)).max()
            } else {
                remaining.iter().map(|&c| votes(c)).min()
            }
            .unwrap_or(Votes::ZERO);
            remaining.retain(|&c| votes(c) == best);
            decided_round = Some(round.number);
            if remaining.len() == 1 {
                break;
            }
        }
        let (chosen, rule) = if remaining.len() == 1 {
            let round = decided_round.unwrap_or(0);
            (remaining[0], TieRule::EarlierRound { round })
        } else {
            let (c, draw) = self.lot.choose(&remaining);
            (
                c,
                TieRule::Lot {
                    draw,
                    draw_number: self.lot.draws(),
                },
            )
        };
        let mut sorted = tied.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        events.push(Event::TieBroken {
            purpose: purpose.to_string(),
            names: sorted.iter().map(|&c| self.name(c)).collect(),
            tied: sorted,
            chosen,
            name: self.name(chosen),
            rule,
        });
        chosen
    }

    /// Breaks a tie by lot alone (for methods with no earlier rounds to consult).
    pub(crate) fn lot_tie(
        &mut self,
        tied: &[usize],
        purpose: &str,
        events: &mut Vec<Event>,
    ) -> usize {
        let mut sorted = tied.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let (chosen, draw) = self.lot.choose(&sorted);
        events.push(Event::TieBroken {
            purpose: purpose.to_string(),
            names: sorted.iter().map(|&c| self.name(c)).collect(),
            tied: sorted,
            chosen,
            name: self.name(chosen),
            rule: TieRule::Lot {
                draw,
                draw_number: self.lot.draws(),
            },
        });
        chosen
    }

    /// Orders `candidates` by `votes` (highest first when `high_first`), breaking ties with
    /// [`Counter::break_tie`].
    pub(crate) fn order_by_votes(
        &mut self,
        candidates: &[usize],
        votes: &[Votes],
        high_first: bool,
        purpose: &str,
        events: &mut Vec<Event>,
    ) -> Vec<usize> {
        let mut left: Vec<usize> = candidates.to_vec();
        let mut ordered = Vec::with_capacity(left.len());
        while !left.is_empty() {
            let key = |c: &usize| votes.get(*c).copied().unwrap_or(Votes::ZERO);
            let best = if high_first {
                left.iter().map(key).max()
            } else {
                left.iter().map(key).min()
            }
            .unwrap_or(Votes::ZERO);
            let tied: Vec<usize> = left.iter().copied().filter(|c| key(c) == best).collect();
            let pick = if tied.len() == 1 {
                tied[0]
            } else {
                self.break_tie(&tied, high_first, purpose, events)
            };
            ordered.push(pick);
            left.retain(|&c| c != pick);
        }
        ordered
    }

    pub(crate) fn push_round(&mut self, mut round: Round) {
        round.number = self.rounds.len() + 1;
        self.rounds.push(round);
    }

    /// Elects every standing candidate (seats ≥ candidates), ordered by first preferences, so
    /// the report still shows support.
    fn elect_everyone(&mut self, standing: Vec<usize>) {
        let n = self.n();
        let mut votes = vec![Votes::ZERO; n];
        let mut invalid = Votes::ZERO;
        let mut valid = Votes::ZERO;
        for ballot in self.election.ballots() {
            let first = ballot
                .entries()
                .iter()
                .map(|&e| crate::election::index_of(e))
                .find(|&c| !self.election.is_withdrawn(c));
            match first {
                Some(c) => {
                    votes[c] += ballot.weight();
                    valid += ballot.weight();
                }
                None => invalid += ballot.weight(),
            }
        }
        self.set_valid(valid, invalid);
        let mut events = Vec::new();
        let order = self.order_by_votes(&standing, &votes, true, "order of election", &mut events);
        for c in order {
            let e = self.elected_event(c, votes[c]);
            events.push(e);
        }
        self.note(
            "There were no more candidates than seats, so every standing candidate is elected.",
        );
        self.push_round(Round {
            number: 0,
            description: "Every candidate elected (no more candidates than seats)".into(),
            votes,
            quota: None,
            non_transferable: Votes::ZERO,
            rounding: Votes::ZERO,
            events,
            iterations: None,
            keep_factors: None,
        });
    }

    fn finish(mut self) -> Outcome {
        self.outcome.elected_indices = self.elected.clone();
        self.outcome.elected = self.elected.iter().map(|&c| self.name(c)).collect();
        self.outcome.rounds = self.rounds;
        self.outcome
    }
}

/// A round with nothing in it yet, for methods to fill.
pub(crate) fn round(description: impl Into<String>, votes: Vec<Votes>) -> Round {
    Round {
        number: 0,
        description: description.into(),
        votes,
        quota: None,
        non_transferable: Votes::ZERO,
        rounding: Votes::ZERO,
        events: Vec::new(),
        iterations: None,
        keep_factors: None,
    }
}
