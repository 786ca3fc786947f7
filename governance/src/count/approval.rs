//! Approval and plurality: one round, the most supported candidates win.
//!
//! - Approval: each ballot approves every (standing) candidate it lists, whatever the order or
//!   equal rankings, with its full weight.
//! - Plurality: each ballot counts for its first preference among standing candidates. A first
//!   rank shared by several candidates is split equally between them, to the billionth (any
//!   indivisible remainder is recorded as rounding).
//!
//! With several seats, the candidates with the most votes win, in order. Ties — for a seat or
//! for the order of election — are decided by lot (there are no earlier rounds).

use super::{Counter, round};
use crate::election::index_of;
use crate::error::Result;
use crate::votes::Votes;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Approval,
    Plurality,
}

pub(super) fn count(counter: &mut Counter<'_>, kind: Kind) -> Result<()> {
    let n = counter.n();
    let mut votes = vec![0u64; n];
    let (mut valid, mut invalid, mut rounding) = (0u64, 0u64, 0u64);
    for ballot in counter.election.ballots() {
        let w = ballot.weight().units();
        let mut counted = false;
        match kind {
            Kind::Approval => {
                for &e in ballot.entries() {
                    let c = index_of(e);
                    if !counter.election.is_withdrawn(c) {
                        votes[c] += w;
                        counted = true;
                    }
                }
            }
            Kind::Plurality => {
                for group in ballot.rank_groups() {
                    let live: Vec<usize> = group
                        .iter()
                        .map(|&e| index_of(e))
                        .filter(|&c| !counter.election.is_withdrawn(c))
                        .collect();
                    if live.is_empty() {
                        continue;
                    }
                    let share = w / live.len() as u64;
                    rounding += w - share * live.len() as u64;
                    for c in live {
                        votes[c] += share;
                    }
                    counted = true;
                    break;
                }
            }
        }
        if counted {
            valid += w;
        } else {
            invalid += w;
        }
    }
    counter.set_valid(Votes::from_units(valid), Votes::from_units(invalid));
    counter.note(match kind {
        Kind::Approval => "Each ballot approves every candidate it lists.",
        Kind::Plurality => "Each ballot counts for its first preference; an equal first preference is split equally.",
    });
    let v: Vec<Votes> = votes.iter().map(|&x| Votes::from_units(x)).collect();
    let standing = counter.standing();
    let mut events = Vec::new();
    let winners = top(counter, &standing, &v, counter.seats, &mut events);
    for c in winners {
        let e = counter.elected_event(c, v[c]);
        events.push(e);
    }
    let mut r = round(
        match kind {
            Kind::Approval => "Approvals",
            Kind::Plurality => "First preferences",
        },
        v,
    );
    r.rounding = Votes::from_units(rounding);
    r.events = events;
    counter.push_round(r);
    Ok(())
}

/// The `k` candidates with the most votes, in order; ties decided by [`Counter::break_tie`].
fn top(
    counter: &mut Counter<'_>,
    candidates: &[usize],
    votes: &[Votes],
    k: usize,
    events: &mut Vec<super::Event>,
) -> Vec<usize> {
    let mut left = candidates.to_vec();
    let mut chosen = Vec::new();
    while chosen.len() < k && !left.is_empty() {
        let best = left.iter().map(|&c| votes[c]).max().unwrap_or(Votes::ZERO);
        let tied: Vec<usize> = left.iter().copied().filter(|&c| votes[c] == best).collect();
        let purpose = if tied.len() + chosen.len() > k {
            "seat"
        } else {
            "order of election"
        };
        let pick = if tied.len() == 1 {
            tied[0]
        } else {
            counter.break_tie(&tied, true, purpose, events)
        };
        chosen.push(pick);
        left.retain(|&c| c != pick);
    }
    chosen
}
