//! Candidates and ballots: the input of every count.
//!
//! An [`Election`] is validated once, when it is built, so the counting code can trust it: every
//! candidate index is in range, no ballot names a candidate twice, every weight is positive and
//! the total fits [`MAX_TOTAL_VOTES`]. Identical ballots are merged (weights summed) and sorted,
//! which makes every count faster and independent of the order the ballots arrived in.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::error::{Error, Result};
use crate::votes::{MAX_TOTAL_VOTES, SCALE, Votes};

/// Most candidates an election may have. Far above any ballot a person can rank, and small
/// enough that candidate numbers fit comfortably in the packed ballot representation.
pub const MAX_CANDIDATES: usize = 10_000;

/// Marks a ballot entry ranked equal to the entry before it.
const TIE: u32 = 1 << 31;

/// One voter's (or several identical voters') ranking.
///
/// Ranks are groups of candidate indices (0-based, into [`Election::candidates`]); a group of
/// more than one candidate is an equal ranking (`2=3` in BLT). Stored packed, one `u32` per
/// candidate with a flag for "equal to the previous one", because a million ballots of nested
/// vectors would cost a million allocations.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ballot {
    weight: Votes,
    entries: Box<[u32]>,
}

impl Ballot {
    /// A ballot from rank groups, e.g. `vec![vec![0], vec![2, 1]]` for "A, then B and C equal".
    /// Empty groups are ignored. Checked against the candidates by [`Election::new`].
    pub fn new(weight: Votes, ranks: Vec<Vec<usize>>) -> Ballot {
        let mut entries = Vec::new();
        for group in ranks.iter().filter(|g| !g.is_empty()) {
            for (i, &c) in group.iter().enumerate() {
                entries.push(pack(c, i > 0));
            }
        }
        Ballot {
            weight,
            entries: entries.into_boxed_slice(),
        }
    }

    /// A strict ranking with weight one: `Ballot::ranked(&[2, 0, 1])`.
    pub fn ranked(order: &[usize]) -> Ballot {
        Ballot::new(Votes::whole(1), order.iter().map(|&c| vec![c]).collect())
    }

    /// A strict ranking with the given weight.
    pub fn weighted(weight: Votes, order: &[usize]) -> Ballot {
        Ballot::new(weight, order.iter().map(|&c| vec![c]).collect())
    }

    /// How many voters this ballot stands for (may be fractional when read from BLT).
    pub fn weight(&self) -> Votes {
        self.weight
    }

    /// The rank groups, most preferred first.
    pub fn ranks(&self) -> Vec<Vec<usize>> {
        self.rank_groups()
            .map(|g| g.iter().map(|&e| index_of(e)).collect())
            .collect()
    }

    /// True when the ballot ranks nobody.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The packed entries (candidate index, with the TIE flag for equal ranks).
    pub(crate) fn entries(&self) -> &[u32] {
        &self.entries
    }

    /// Iterates over rank groups as slices of packed entries.
    pub(crate) fn rank_groups(&self) -> RankGroups<'_> {
        RankGroups {
            entries: &self.entries,
        }
    }

    pub(crate) fn from_parts(weight: Votes, entries: Box<[u32]>) -> Ballot {
        Ballot { weight, entries }
    }
}

/// The candidate index of a packed entry.
pub(crate) fn index_of(entry: u32) -> usize {
    (entry & !TIE) as usize
}

/// True if a packed entry is ranked equal to the one before it.
pub(crate) fn is_tied(entry: u32) -> bool {
    entry & TIE != 0
}

/// Packs a candidate index, optionally marking it equal to the previous entry.
pub(crate) fn pack(index: usize, tied_with_previous: bool) -> u32 {
    // An index past MAX_CANDIDATES can never be valid; clamping keeps it invalid (and out of
    // the TIE bit) so that Election::new reports it instead of silently aliasing another.
    let i = u32::try_from(index.min(MAX_CANDIDATES)).unwrap_or(0);
    if tied_with_previous { i | TIE } else { i }
}

/// Iterator over rank groups of packed entries.
pub(crate) struct RankGroups<'a> {
    entries: &'a [u32],
}

impl<'a> Iterator for RankGroups<'a> {
    type Item = &'a [u32];
    fn next(&mut self) -> Option<&'a [u32]> {
        if self.entries.is_empty() {
            return None;
        }
        let len = 1 + self.entries[1..]
            .iter()
            .take_while(|&&e| is_tied(e))
            .count();
        let (group, rest) = self.entries.split_at(len);
        self.entries = rest;
        Some(group)
    }
}

/// A set of candidates and the ballots cast for them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Election {
    title: String,
    candidates: Vec<String>,
    withdrawn: Vec<bool>,
    seats: Option<usize>,
    ballots: Vec<Ballot>,
    total: Votes,
}

impl Election {
    /// Validates and builds an election. Candidate names must be non-empty and distinct;
    /// ballots must name known candidates, each at most once, with a positive weight; the
    /// total weight must not exceed [`MAX_TOTAL_VOTES`]. Identical ballots are merged.
    pub fn new(
        title: impl Into<String>,
        candidates: Vec<String>,
        ballots: Vec<Ballot>,
    ) -> Result<Election> {
        let candidates = validate_candidates(candidates)?;
        let n = candidates.len();
        let mut seen = vec![usize::MAX; n];
        let mut grouped = Grouper::default();
        for (position, ballot) in ballots.into_iter().enumerate() {
            if ballot.weight == Votes::ZERO {
                return Err(Error::Ballot {
                    ballot: position,
                    message: "weight must be positive".into(),
                });
            }
            for &entry in ballot.entries.iter() {
                let c = index_of(entry);
                if c >= n {
                    return Err(Error::Ballot {
                        ballot: position,
                        message: format!(
                            "ranks unknown candidate number {} (there are {n})",
                            c + 1
                        ),
                    });
                }
                if seen[c] == position {
                    return Err(Error::Ballot {
                        ballot: position,
                        message: format!("ranks {} more than once", candidates[c]),
                    });
                }
                seen[c] = position;
            }
            grouped
                .add(&ballot.entries, ballot.weight)
                .map_err(|message| Error::Ballot {
                    ballot: position,
                    message,
                })?;
        }
        let (ballots, total) = grouped.finish();
        Ok(Election {
            title: title.into(),
            withdrawn: vec![false; n],
            candidates,
            seats: None,
            ballots,
            total,
        })
    }

    /// Used by the BLT reader, which has already validated and grouped everything.
    pub(crate) fn from_validated(
        title: String,
        candidates: Vec<String>,
        withdrawn: Vec<bool>,
        seats: Option<usize>,
        ballots: Vec<Ballot>,
        total: Votes,
    ) -> Election {
        Election {
            title,
            candidates,
            withdrawn,
            seats,
            ballots,
            total,
        }
    }

    /// Marks candidates (0-based indices) as withdrawn: they are skipped on every ballot, as if
    /// they had not stood. Replaces any earlier withdrawals.
    pub fn with_withdrawn(mut self, withdrawn: &[usize]) -> Result<Election> {
        let mut flags = vec![false; self.candidates.len()];
        for &c in withdrawn {
            let slot = flags.get_mut(c).ok_or_else(|| {
                Error::Election(format!(
                    "cannot withdraw candidate number {} (there are {})",
                    c + 1,
                    self.candidates.len()
                ))
            })?;
            *slot = true;
        }
        self.withdrawn = flags;
        Ok(self)
    }

    /// Records the number of seats (BLT files carry it; in-memory elections may set it).
    pub fn with_seats(mut self, seats: usize) -> Election {
        self.seats = Some(seats);
        self
    }

    /// The election's title.
    pub fn title(&self) -> &str {
        &self.title
    }

    /// Candidate names, in ballot-number order (index 0 is BLT candidate 1).
    pub fn candidates(&self) -> &[String] {
        &self.candidates
    }

    /// True if the candidate at `index` has withdrawn.
    pub fn is_withdrawn(&self, index: usize) -> bool {
        self.withdrawn.get(index).copied().unwrap_or(false)
    }

    /// Indices of withdrawn candidates, ascending.
    pub fn withdrawn(&self) -> Vec<usize> {
        (0..self.candidates.len())
            .filter(|&c| self.withdrawn[c])
            .collect()
    }

    /// Seats recorded with the election (from the BLT header), if any.
    pub fn seats(&self) -> Option<usize> {
        self.seats
    }

    /// The distinct ballots with their summed weights, in a canonical order.
    pub fn ballots(&self) -> &[Ballot] {
        &self.ballots
    }

    /// Sum of all ballot weights (blank ballots included).
    pub fn total_weight(&self) -> Votes {
        self.total
    }
}

fn validate_candidates(candidates: Vec<String>) -> Result<Vec<String>> {
    if candidates.is_empty() {
        return Err(Error::Election("there are no candidates".into()));
    }
    if candidates.len() > MAX_CANDIDATES {
        return Err(Error::Election(format!(
            "{} candidates is more than the {MAX_CANDIDATES} supported",
            candidates.len()
        )));
    }
    let mut names: HashMap<&str, usize> = HashMap::new();
    for (i, name) in candidates.iter().enumerate() {
        if name.trim().is_empty() {
            return Err(Error::Election(format!(
                "candidate number {} has no name",
                i + 1
            )));
        }
        if let Some(first) = names.insert(name.as_str(), i) {
            return Err(Error::Election(format!(
                "candidates {} and {} are both named {name:?}",
                first + 1,
                i + 1
            )));
        }
    }
    Ok(candidates)
}

/// Merges identical rankings, summing their weights, and enforces the total-weight ceiling.
#[derive(Default)]
pub(crate) struct Grouper {
    map: HashMap<Box<[u32]>, u64, BuildHasherDefault<FxHasher>>,
    total: u64,
}

impl Grouper {
    /// Adds `weight` to the ranking `entries`. Fails (with a message) past the ceiling.
    pub(crate) fn add(
        &mut self,
        entries: &[u32],
        weight: Votes,
    ) -> std::result::Result<(), String> {
        let limit = MAX_TOTAL_VOTES * SCALE;
        self.total = match self.total.checked_add(weight.units()) {
            Some(t) if t <= limit => t,
            _ => {
                return Err(format!(
                    "the total weight of the ballots exceeds {MAX_TOTAL_VOTES} votes"
                ));
            }
        };
        if let Some(w) = self.map.get_mut(entries) {
            *w += weight.units();
        } else {
            self.map.insert(entries.into(), weight.units());
        }
        Ok(())
    }

    /// The merged ballots in canonical (sorted) order, and their total weight.
    pub(crate) fn finish(self) -> (Vec<Ballot>, Votes) {
        let mut ballots: Vec<Ballot> = self
            .map
            .into_iter()
            .map(|(entries, w)| Ballot::from_parts(Votes::from_units(w), entries))
            .collect();
        ballots.sort_unstable_by(|a, b| a.entries.cmp(&b.entries));
        (ballots, Votes::from_units(self.total))
    }
}

/// A small multiplicative hasher (the one rustc uses internally). Ballot rankings are short
/// arrays of small integers chosen by voters, not by an attacker who sees the process's
/// memory, and SipHash's DoS resistance would cost a third of the BLT parse time.
#[derive(Default)]
pub(crate) struct FxHasher {
    hash: u64,
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut buf = [0u8; 8];
            buf[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(buf));
        }
    }
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    fn finish(&self) -> u64 {
        self.hash
    }
}

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("C{i}")).collect()
    }

    #[test]
    fn merges_identical_ballots_and_sums_weights() {
        let e = Election::new(
            "t",
            names(3),
            vec![
                Ballot::ranked(&[0, 1]),
                Ballot::ranked(&[2]),
                Ballot::ranked(&[0, 1]),
            ],
        )
        .expect("valid");
        assert_eq!(e.ballots().len(), 2);
        let b = e
            .ballots()
            .iter()
            .find(|b| b.ranks() == vec![vec![0], vec![1]])
            .expect("merged");
        assert_eq!(b.weight(), Votes::whole(2));
        assert_eq!(e.total_weight(), Votes::whole(3));
    }

    #[test]
    fn keeps_equal_rank_groups() {
        let b = Ballot::new(Votes::whole(1), vec![vec![0], vec![2, 1], vec![3]]);
        assert_eq!(b.ranks(), vec![vec![0], vec![2, 1], vec![3]]);
    }

    #[test]
    fn rejects_unknown_duplicate_and_weightless() {
        let err = Election::new("t", names(2), vec![Ballot::ranked(&[0, 2])]).expect_err("unknown");
        assert!(matches!(err, Error::Ballot { ballot: 0, .. }), "{err}");
        let err = Election::new(
            "t",
            names(2),
            vec![Ballot::ranked(&[1]), Ballot::ranked(&[0, 1, 0])],
        )
        .expect_err("duplicate");
        assert!(matches!(err, Error::Ballot { ballot: 1, .. }), "{err}");
        let err = Election::new("t", names(2), vec![Ballot::weighted(Votes::ZERO, &[0])])
            .expect_err("zero");
        assert!(err.to_string().contains("positive"), "{err}");
    }

    #[test]
    fn rejects_bad_candidate_lists() {
        assert!(Election::new("t", vec![], vec![]).is_err());
        assert!(Election::new("t", vec!["A".into(), "A".into()], vec![]).is_err());
        assert!(Election::new("t", vec!["A".into(), " ".into()], vec![]).is_err());
    }

    #[test]
    fn rejects_totals_over_the_ceiling() {
        let big = Votes::whole(MAX_TOTAL_VOTES);
        let err = Election::new(
            "t",
            names(1),
            vec![Ballot::weighted(big, &[0]), Ballot::ranked(&[0])],
        )
        .expect_err("too many votes");
        assert!(err.to_string().contains("exceeds"), "{err}");
    }
}
