//! Instant-runoff voting for one seat.
//!
//! Each round every ballot counts for its highest-ranked continuing candidate. A candidate
//! with a majority of the ballots still in play — strictly more than half of the votes not
//! exhausted — wins. Otherwise the candidate with the fewest votes is excluded (ties by earlier
//! rounds, then lot) and the count goes on. The last continuing candidate wins.
//!
//! Equal rankings. A ballot whose highest continuing rank is shared by several continuing
//! candidates is split equally between them, to the billionth; any indivisible remainder is
//! recorded as rounding, so votes are conserved exactly each round.

use super::{Counter, round};
use crate::election::{index_of, is_tied};
use crate::error::Result;
use crate::votes::Votes;

pub(super) fn count(counter: &mut Counter<'_>) -> Result<()> {
    let n = counter.n();
    let mut continuing: Vec<bool> = (0..n).map(|c| !counter.election.is_withdrawn(c)).collect();
    counter.note("Majority of the ballots still in play: strictly more than half of the votes not exhausted.");
    counter.note(
        "An equal ranking splits a ballot equally between the continuing candidates sharing it.",
    );
    let mut first = true;
    loop {
        let mut votes = vec![0u64; n];
        let (mut exhausted, mut rounding, mut valid) = (0u64, 0u64, 0u64);
        for ballot in counter.election.ballots() {
            let w = ballot.weight().units();
            let standing = ballot
                .entries()
                .iter()
                .any(|&e| !counter.election.is_withdrawn(index_of(e)));
            if !standing {
                continue;
            }
            valid += w;
            match top_group(ballot.entries(), &continuing) {
                Some(group) => {
                    let share = w / group.len() as u64;
                    rounding += w - share * group.len() as u64;
                    for c in group {
                        votes[c] += share;
                    }
                }
                None => exhausted += w,
            }
        }
        if first {
            let invalid = counter
                .election
                .total_weight()
                .units()
                .saturating_sub(valid);
            counter.set_valid(Votes::from_units(valid), Votes::from_units(invalid));
            first = false;
        }
        let in_play = valid - exhausted - rounding;
        let threshold = in_play / 2 + 1;
        let live: Vec<usize> = (0..n).filter(|&c| continuing[c]).collect();
        let v: Vec<Votes> = votes.iter().map(|&x| Votes::from_units(x)).collect();
        let mut events = Vec::new();
        let best = live.iter().map(|&c| votes[c]).max().unwrap_or(0);
        let description;
        if best >= threshold || live.len() == 1 {
            let leaders: Vec<usize> = live.iter().copied().filter(|&c| votes[c] == best).collect();
            let winner = if leaders.len() == 1 {
                leaders[0]
            } else {
                counter.break_tie(&leaders, true, "seat", &mut events)
            };
            let e = counter.elected_event(winner, v[winner]);
            events.push(e);
            description = format!("{} elected", counter.name(winner));
        } else {
            let least = live.iter().map(|&c| votes[c]).min().unwrap_or(0);
            let tied: Vec<usize> = live
                .iter()
                .copied()
                .filter(|&c| votes[c] == least)
                .collect();
            let loser = if tied.len() == 1 {
                tied[0]
            } else {
                counter.break_tie(&tied, false, "exclusion", &mut events)
            };
            events.push(counter.excluded_event(loser, v[loser]));
            continuing[loser] = false;
            description = format!("{} excluded", counter.name(loser));
        }
        let mut r = round(description, v);
        r.quota = Some(Votes::from_units(threshold));
        r.non_transferable = Votes::from_units(exhausted);
        r.rounding = Votes::from_units(rounding);
        r.events = events;
        counter.set_quota(Some(Votes::from_units(threshold)));
        counter.push_round(r);
        if !counter.elected.is_empty() {
            return Ok(());
        }
    }
}

/// The continuing candidates of the highest rank that has any.
fn top_group(entries: &[u32], continuing: &[bool]) -> Option<Vec<usize>> {
    let mut i = 0;
    while i < entries.len() {
        let mut j = i + 1;
        while j < entries.len() && is_tied(entries[j]) {
            j += 1;
        }
        let live: Vec<usize> = entries[i..j]
            .iter()
            .map(|&e| index_of(e))
            .filter(|&c| continuing[c])
            .collect();
        if !live.is_empty() {
            return Some(live);
        }
        i = j;
    }
    None
}
