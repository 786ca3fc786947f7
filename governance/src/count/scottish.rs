//! Scottish STV: the counting rules of the Scottish Local Government Elections Order 2007
//! (SSI 2007/42), Schedule 1, rules 45 to 52, as used for every Scottish council election since
//! 2007 (the 2011 Order, SSI 2011/399, renumbered them 46 to 53 without changing the count).
//!
//! The rules, as this module applies them (rule numbers are those of the 2007 Order):
//!
//! - **Rule 45, first stage.** Each valid paper is credited to its first preference at a value
//!   of one. A paper is valid if it shows a first preference for a standing candidate.
//! - **Rule 46, the quota.** The number of valid papers divided by one more than the number of
//!   seats, ignoring any decimals, plus one.
//! - **Rule 47.** A candidate whose votes equal or exceed the quota at the end of any stage is
//!   deemed elected. When several reach it at the same stage, they are listed highest first
//!   (ties between them decided as for surpluses, rule 49).
//! - **Rule 48, transfer of a surplus.** All the papers an elected candidate holds are passed
//!   to their next available preference (the next continuing candidate, skipping anyone elected
//!   or excluded) at a transfer value of `surplus × value of the paper ÷ candidate's total
//!   votes`, calculated to five decimal places with any remainder ignored. Papers with no next
//!   preference are non-transferable. The elected candidate keeps exactly the quota. Each
//!   surplus transfer is one stage.
//! - **Rule 49.** When several candidates have surpluses, the highest surplus is transferred
//!   first; equal surpluses go by the candidate who had more votes at the most recent earlier
//!   stage at which they differed, and by lot if they were equal at every stage.
//! - **Rule 50, exclusion.** When no surplus remains to transfer and seats remain, the
//!   continuing candidate with the fewest votes is excluded and all their papers pass to the
//!   next available preference at the value at which the candidate received them (one for
//!   first preferences). One exclusion is one stage.
//! - **Rule 51.** Candidates tied for fewest votes: the one with fewer votes at the most recent
//!   earlier stage at which they differed is excluded; by lot if they were equal throughout.
//! - **Rule 52.** When the continuing candidates are no more than the vacancies left, they are
//!   all deemed elected (highest votes first) and no further transfer is made.
//!
//! Arithmetic. Paper values are integers in units of 1/100000, exactly the Order's five
//! decimals, and tallies are exact [`Votes`]; the fractions dropped when a transfer value is
//! truncated are recorded as `rounding`, so that in every stage the candidates' votes, the
//! non-transferable total and the rounding add up to the valid vote exactly.
//!
//! Equal rankings. The Order treats a paper on which the same preference is given to more than
//! one candidate as void at that point: a paper whose first preference is shared is rejected
//! (rule 43), and one whose sequence is broken later has no next available preference from
//! there. So a ballot is read up to its first equal ranking: if that is its first preference it
//! is invalid, otherwise it becomes non-transferable when it gets there.
//!
//! Ballots with a weight other than one (BLT files allow it) count as that many papers; a
//! fractional weight credits `value × weight`, truncated to the billionth.
//!
//! Speed. Identical ballots travel together for the whole count (their value depends only on
//! their ranking), so the work of a stage is proportional to the distinct rankings held by the
//! one candidate whose papers move, not to the number of voters.

use super::{Counter, Event, Round, round};
use crate::election::{index_of, is_tied};
use crate::error::Result;
use crate::votes::{SCALE, Votes};

/// One paper value: 1/100000 of a vote, the precision of rule 48(3).
const ONE: u64 = 100_000;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Continuing,
    Elected,
    Excluded,
    Withdrawn,
}

/// All papers with one ranking: they share a holder and a value throughout the count.
struct Parcel {
    start: u32,
    len: u32,
    /// Position in the ranking of the candidate holding it.
    pos: u32,
    /// Value per paper, in units of 1/100000.
    value: u64,
    /// Number of papers, in billionths (BLT weights may be fractional).
    weight: u64,
}

impl Parcel {
    /// Votes this parcel credits to its holder.
    fn credit(&self) -> u64 {
        mul_div(self.value, self.weight, ONE)
    }
}

fn mul_div(a: u64, b: u64, c: u64) -> u64 {
    let v = u128::from(a) * u128::from(b) / u128::from(c.max(1));
    u64::try_from(v).unwrap_or(u64::MAX)
}

struct Stv<'c, 'e> {
    counter: &'c mut Counter<'e>,
    prefs: Vec<u32>,
    parcels: Vec<Parcel>,
    piles: Vec<Vec<u32>>,
    tally: Vec<u64>,
    state: Vec<State>,
    /// Elected candidates whose surplus has not been transferred yet.
    pending: Vec<usize>,
    quota: u64,
    non_transferable: u64,
    rounding: u64,
}

pub(super) fn count(counter: &mut Counter<'_>) -> Result<()> {
    let n = counter.n();
    let state: Vec<State> = (0..n)
        .map(|c| {
            if counter.election.is_withdrawn(c) {
                State::Withdrawn
            } else {
                State::Continuing
            }
        })
        .collect();
    let mut prefs = Vec::new();
    let mut parcels = Vec::new();
    let mut piles: Vec<Vec<u32>> = vec![Vec::new(); n];
    let mut tally = vec![0u64; n];
    let (mut valid, mut invalid) = (0u64, 0u64);
    for ballot in counter.election.ballots() {
        let start = prefs.len();
        read_ranking(ballot.entries(), &state, &mut prefs);
        let len = prefs.len() - start;
        let weight = ballot.weight().units();
        if len == 0 {
            invalid += weight;
            continue;
        }
        // Rule 45: first preferences at a value of one.
        let first = prefs[start] as usize;
        let parcel = Parcel {
            start: u32::try_from(start).unwrap_or(u32::MAX),
            len: u32::try_from(len).unwrap_or(0),
            pos: 0,
            value: ONE,
            weight,
        };
        tally[first] += parcel.credit();
        piles[first].push(u32::try_from(parcels.len()).unwrap_or(u32::MAX));
        parcels.push(parcel);
        valid += weight;
    }
    counter.set_valid(Votes::from_units(valid), Votes::from_units(invalid));
    // Rule 46: floor(valid / (seats + 1)) + 1, in whole votes.
    let seats = u64::try_from(counter.seats).unwrap_or(u64::MAX);
    let quota = (valid / SCALE / seats.saturating_add(1) + 1) * SCALE;
    counter.set_quota(Some(Votes::from_units(quota)));
    counter.note("Quota (rule 46): valid papers ÷ (seats + 1), decimals ignored, plus one.");
    counter.note(
        "A ballot is read up to its first equal ranking: an equal first preference makes it invalid, \
         a later one makes it non-transferable from there (rules 43 and 48).",
    );
    let mut stv = Stv {
        counter,
        prefs,
        parcels,
        piles,
        tally,
        state,
        pending: Vec::new(),
        quota,
        non_transferable: 0,
        rounding: 0,
    };
    stv.run();
    Ok(())
}

/// Appends the usable part of a ranking: withdrawn candidates dropped, stopping at the first
/// rank shared by two or more standing candidates.
fn read_ranking(entries: &[u32], state: &[State], out: &mut Vec<u32>) {
    let mut i = 0;
    while i < entries.len() {
        let mut j = i + 1;
        while j < entries.len() && is_tied(entries[j]) {
            j += 1;
        }
        let standing: Vec<u32> = entries[i..j]
            .iter()
            .map(|&e| index_of(e))
            .filter(|&c| state.get(c) != Some(&State::Withdrawn))
            .map(|c| u32::try_from(c).unwrap_or(u32::MAX))
            .collect();
        match standing.len() {
            0 => {}
            1 => out.push(standing[0]),
            _ => return,
        }
        i = j;
    }
}

impl Stv<'_, '_> {
    fn votes(&self) -> Vec<Votes> {
        self.tally.iter().map(|&t| Votes::from_units(t)).collect()
    }

    fn continuing(&self) -> Vec<usize> {
        (0..self.state.len())
            .filter(|&c| self.state[c] == State::Continuing)
            .collect()
    }

    fn vacancies(&self) -> usize {
        self.counter
            .seats
            .saturating_sub(self.counter.elected.len())
    }

    fn run(&mut self) {
        let mut events = Vec::new();
        self.elect_reached(&mut events);
        self.finish_stage("First preferences".into(), events);
        loop {
            if self.vacancies() == 0 {
                break;
            }
            let continuing = self.continuing();
            if continuing.len() <= self.vacancies() {
                // Rule 52: the last vacancies are filled by the continuing candidates.
                let mut events = Vec::new();
                let votes = self.votes();
                let order = self.counter.order_by_votes(
                    &continuing,
                    &votes,
                    true,
                    "order of election",
                    &mut events,
                );
                for c in order {
                    self.state[c] = State::Elected;
                    let e = self.counter.elected_event(c, votes[c]);
                    events.push(e);
                }
                if let Some(last) = self.counter.rounds.last_mut() {
                    last.events.extend(events);
                    last.description
                        .push_str("; remaining candidates elected (rule 52)");
                }
                break;
            }
            let mut events = Vec::new();
            let description = if let Some(c) = self.next_surplus(&mut events) {
                self.transfer_surplus(c, &mut events);
                format!("Surplus of {} transferred", self.counter.name(c))
            } else {
                let c = self.lowest(&continuing, &mut events);
                self.exclude(c, &mut events);
                format!("{} excluded", self.counter.name(c))
            };
            self.elect_reached(&mut events);
            self.finish_stage(description, events);
        }
    }

    fn finish_stage(&mut self, description: String, events: Vec<Event>) {
        let mut r: Round = round(description, self.votes());
        r.quota = Some(Votes::from_units(self.quota));
        r.non_transferable = Votes::from_units(self.non_transferable);
        r.rounding = Votes::from_units(self.rounding);
        r.events = events;
        self.counter.push_round(r);
    }

    /// Rule 47: deems elected every continuing candidate at or above the quota.
    fn elect_reached(&mut self, events: &mut Vec<Event>) {
        let reached: Vec<usize> = self
            .continuing()
            .into_iter()
            .filter(|&c| self.tally[c] >= self.quota)
            .collect();
        if reached.is_empty() {
            return;
        }
        let votes = self.votes();
        let order =
            self.counter
                .order_by_votes(&reached, &votes, true, "order of election", events);
        for c in order {
            if self.vacancies() == 0 {
                break;
            }
            self.state[c] = State::Elected;
            if self.tally[c] > self.quota {
                self.pending.push(c);
            }
            let e = self.counter.elected_event(c, votes[c]);
            events.push(e);
        }
    }

    /// Rule 49: the highest surplus first; ties by earlier stages, then lot.
    fn next_surplus(&mut self, events: &mut Vec<Event>) -> Option<usize> {
        let surplus = |c: usize| self.tally[c].saturating_sub(self.quota);
        let best = self.pending.iter().map(|&c| surplus(c)).max()?;
        let tied: Vec<usize> = self
            .pending
            .iter()
            .copied()
            .filter(|&c| surplus(c) == best)
            .collect();
        let c = if tied.len() == 1 {
            tied[0]
        } else {
            self.counter.break_tie(&tied, true, "surplus order", events)
        };
        self.pending.retain(|&p| p != c);
        Some(c)
    }

    /// Rules 50 and 51: the continuing candidate with the fewest votes; ties by earlier stages,
    /// then lot.
    fn lowest(&mut self, continuing: &[usize], events: &mut Vec<Event>) -> usize {
        let least = continuing.iter().map(|&c| self.tally[c]).min().unwrap_or(0);
        let tied: Vec<usize> = continuing
            .iter()
            .copied()
            .filter(|&c| self.tally[c] == least)
            .collect();
        if tied.len() == 1 {
            tied[0]
        } else {
            self.counter.break_tie(&tied, false, "exclusion", events)
        }
    }

    /// The next continuing candidate on a parcel's ranking after its current holder.
    fn next_holder(&self, parcel: &Parcel) -> Option<(u32, usize)> {
        let start = parcel.start as usize;
        let end = start + parcel.len as usize;
        (start + parcel.pos as usize + 1..end).find_map(|i| {
            let c = self.prefs[i] as usize;
            (self.state[c] == State::Continuing)
                .then(|| (u32::try_from(i - start).unwrap_or(u32::MAX), c))
        })
    }

    /// Rule 48: every paper of `from` moves on at `surplus × value ÷ total`, truncated to five
    /// decimals.
    fn transfer_surplus(&mut self, from: usize, events: &mut Vec<Event>) {
        let total = self.tally[from];
        let surplus = total.saturating_sub(self.quota);
        let pile = std::mem::take(&mut self.piles[from]);
        let (mut moved, mut dead) = (0u64, 0u64);
        for &p in &pile {
            let next = self.next_holder(&self.parcels[p as usize]);
            let parcel = &mut self.parcels[p as usize];
            parcel.value = mul_div(surplus, parcel.value, total);
            let credit = parcel.credit();
            match next {
                Some((pos, to)) => {
                    parcel.pos = pos;
                    self.tally[to] += credit;
                    self.piles[to].push(p);
                    moved += credit;
                }
                None => dead += credit,
            }
        }
        let lost = surplus.saturating_sub(moved + dead);
        self.non_transferable += dead;
        self.rounding += lost;
        self.tally[from] = self.quota;
        events.push(Event::SurplusTransferred {
            candidate: from,
            name: self.counter.name(from),
            surplus: Votes::from_units(surplus),
            transferred: Votes::from_units(moved),
            non_transferable: Votes::from_units(dead),
            rounding: Votes::from_units(lost),
        });
    }

    /// Rule 50: all of an excluded candidate's papers move on at the value they came in at.
    fn exclude(&mut self, c: usize, events: &mut Vec<Event>) {
        events.push(
            self.counter
                .excluded_event(c, Votes::from_units(self.tally[c])),
        );
        self.state[c] = State::Excluded;
        let pile = std::mem::take(&mut self.piles[c]);
        for &p in &pile {
            let next = self.next_holder(&self.parcels[p as usize]);
            let parcel = &mut self.parcels[p as usize];
            let credit = parcel.credit();
            match next {
                Some((pos, to)) => {
                    parcel.pos = pos;
                    self.tally[to] += credit;
                    self.piles[to].push(p);
                }
                None => self.non_transferable += credit,
            }
        }
        self.tally[c] = 0;
    }
}
