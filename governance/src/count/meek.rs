//! Meek STV (B. L. Meek, 1969; the algorithm of Hill, Wichmann and Woodall, "Algorithm 123:
//! Single Transferable Vote by Meek's method", The Computer Journal 30(3), 1987).
//!
//! Every candidate has a keep factor: 1 while hopeful, 0 once excluded (or withdrawn), and for
//! an elected candidate the fraction of each vote reaching them that they keep, chosen so that
//! they keep just a quota. A ballot's value flows down its ranking: each candidate keeps
//! `keep factor × value arriving` and passes the rest on; what is left after the last
//! preference is excess (exhausted). Unlike Scottish STV, a surplus therefore reaches the next
//! preferences of *every* ballot, including ones that arrive later, and excluded candidates'
//! votes flow as if they had never stood.
//!
//! Each round iterates:
//! 1. distribute every ballot with the current keep factors;
//! 2. quota = (valid votes − excess) ÷ (seats + 1), truncated to the billionth, plus one
//!    billionth (so a candidate needs strictly more than a Droop fraction);
//! 3. any hopeful at or above the quota is elected (highest first) and the round ends;
//! 4. otherwise each elected candidate's keep factor becomes `keep × quota ÷ votes`, rounded
//!    up to the billionth (rounding up keeps the surplus from oscillating below zero);
//! 5. the round has converged when the elected candidates' total surplus is at most
//!    0.00001 vote, or no keep factor changed, or after 10,000 iterations.
//!
//! At convergence with no one newly elected, the hopeful with the fewest votes is excluded
//! (ties by earlier rounds, then lot). When the hopefuls are no more than the seats left, they
//! are all elected.
//!
//! Precision. Everything is exact integer arithmetic in billionths of a vote. Amounts a
//! candidate keeps are truncated and the remainder passes on, so no fraction is ever lost: the
//! candidates' votes plus the excess equal the valid votes exactly in every round.
//!
//! Equal rankings. At a rank shared by several candidates, the value arriving is split equally
//! between those not excluded (any indivisible billionths pass on); each keeps their keep
//! factor's share of their part and the rest of every part passes on together to the next rank.

use super::{Counter, round};
use crate::election::{index_of, is_tied};
use crate::error::Result;
use crate::votes::{SCALE, Votes};

/// Convergence tolerance: total surplus of elected candidates, in billionths (0.00001 vote).
const TOLERANCE: u64 = 10_000;
/// Iteration cap per round; real elections converge in tens.
const MAX_ITERATIONS: usize = 10_000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Hopeful,
    Elected,
    Excluded,
}

struct Ballots {
    entries: Vec<u32>,
    /// `ends[i]` is the end of ballot `i`'s entries; ballot `i` starts at `ends[i - 1]`.
    ends: Vec<u32>,
    weights: Vec<u64>,
}

pub(super) fn count(counter: &mut Counter<'_>) -> Result<()> {
    let n = counter.n();
    let mut state: Vec<State> = (0..n)
        .map(|c| {
            if counter.election.is_withdrawn(c) {
                State::Excluded
            } else {
                State::Hopeful
            }
        })
        .collect();
    let mut keep: Vec<u64> = state
        .iter()
        .map(|s| if *s == State::Hopeful { SCALE } else { 0 })
        .collect();

    let mut ballots = Ballots {
        entries: Vec::new(),
        ends: Vec::new(),
        weights: Vec::new(),
    };
    let (mut valid, mut invalid) = (0u64, 0u64);
    for ballot in counter.election.ballots() {
        let w = ballot.weight().units();
        if ballot
            .entries()
            .iter()
            .any(|&e| !counter.election.is_withdrawn(index_of(e)))
        {
            ballots.entries.extend_from_slice(ballot.entries());
            ballots
                .ends
                .push(u32::try_from(ballots.entries.len()).unwrap_or(u32::MAX));
            ballots.weights.push(w);
            valid += w;
        } else {
            invalid += w;
        }
    }
    counter.set_valid(Votes::from_units(valid), Votes::from_units(invalid));
    counter.note(
        "Meek STV, exact to the billionth; converged when the total surplus is at most 0.00001.",
    );
    counter.note(
        "An equal ranking splits the value arriving equally between the candidates sharing it.",
    );

    let seats = u64::try_from(counter.seats).unwrap_or(u64::MAX);
    let mut votes = vec![0u64; n];
    let mut quota;
    loop {
        let elected_count = counter.elected.len();
        let vacancies = counter.seats.saturating_sub(elected_count);
        if vacancies == 0 {
            break;
        }
        let hopefuls: Vec<usize> = (0..n).filter(|&c| state[c] == State::Hopeful).collect();
        let mut events = Vec::new();
        let mut iterations = 0;
        let mut excess;
        let description;
        if hopefuls.len() <= vacancies {
            excess = distribute(&ballots, &keep, &mut votes);
            quota = (valid.saturating_sub(excess)) / (seats + 1) + 1;
            let v: Vec<Votes> = votes.iter().map(|&x| Votes::from_units(x)).collect();
            let order =
                counter.order_by_votes(&hopefuls, &v, true, "order of election", &mut events);
            for c in order {
                state[c] = State::Elected;
                let e = counter.elected_event(c, v[c]);
                events.push(e);
            }
            description = "Remaining hopefuls elected (no more than the seats left)".to_string();
        } else {
            let newly: Vec<usize> = loop {
                iterations += 1;
                excess = distribute(&ballots, &keep, &mut votes);
                quota = (valid.saturating_sub(excess)) / (seats + 1) + 1;
                let reached: Vec<usize> = hopefuls
                    .iter()
                    .copied()
                    .filter(|&c| votes[c] >= quota)
                    .collect();
                if !reached.is_empty() {
                    break reached;
                }
                let mut surplus = 0u64;
                let mut changed = false;
                for c in (0..n).filter(|&c| state[c] == State::Elected) {
                    surplus += votes[c].saturating_sub(quota);
                    if votes[c] > 0 {
                        let k = ceil_mul_div(keep[c], quota, votes[c]).min(SCALE);
                        changed |= k != keep[c];
                        keep[c] = k;
                    }
                }
                if surplus <= TOLERANCE || !changed || iterations >= MAX_ITERATIONS {
                    break Vec::new();
                }
            };
            let v: Vec<Votes> = votes.iter().map(|&x| Votes::from_units(x)).collect();
            if newly.is_empty() {
                let least = hopefuls.iter().map(|&c| votes[c]).min().unwrap_or(0);
                let tied: Vec<usize> = hopefuls
                    .iter()
                    .copied()
                    .filter(|&c| votes[c] == least)
                    .collect();
                let c = if tied.len() == 1 {
                    tied[0]
                } else {
                    counter.break_tie(&tied, false, "exclusion", &mut events)
                };
                events.push(counter.excluded_event(c, v[c]));
                state[c] = State::Excluded;
                keep[c] = 0;
                description = format!("{} excluded", counter.name(c));
            } else {
                let order =
                    counter.order_by_votes(&newly, &v, true, "order of election", &mut events);
                let mut names = Vec::new();
                for c in order {
                    if counter.elected.len() >= counter.seats {
                        break;
                    }
                    state[c] = State::Elected;
                    names.push(counter.name(c));
                    let e = counter.elected_event(c, v[c]);
                    events.push(e);
                }
                description = format!("{} elected", names.join(", "));
            }
        }
        let mut r = round(
            description,
            votes.iter().map(|&x| Votes::from_units(x)).collect(),
        );
        r.quota = Some(Votes::from_units(quota));
        r.non_transferable = Votes::from_units(excess);
        r.events = events;
        r.iterations = Some(iterations);
        r.keep_factors = Some(keep.iter().map(|&k| Votes::from_units(k)).collect());
        counter.set_quota(Some(Votes::from_units(quota)));
        counter.push_round(r);
        if hopefuls.len() <= vacancies {
            // Everyone left has been elected; nothing can change any more.
            break;
        }
    }
    Ok(())
}

fn ceil_mul_div(a: u64, b: u64, c: u64) -> u64 {
    let num = u128::from(a) * u128::from(b);
    let den = u128::from(c.max(1));
    u64::try_from(num.div_ceil(den)).unwrap_or(u64::MAX)
}

fn keep_share(value: u64, keep: u64) -> u64 {
    u64::try_from(u128::from(value) * u128::from(keep) / u128::from(SCALE)).unwrap_or(u64::MAX)
}

/// One pass of every ballot through the keep factors. Fills `votes`, returns the excess.
fn distribute(ballots: &Ballots, keep: &[u64], votes: &mut [u64]) -> u64 {
    votes.iter_mut().for_each(|v| *v = 0);
    let mut excess = 0u64;
    let mut start = 0usize;
    for (i, &end) in ballots.ends.iter().enumerate() {
        let end = end as usize;
        let entries = &ballots.entries[start..end];
        start = end;
        let mut value = ballots.weights[i];
        let mut j = 0;
        while j < entries.len() && value > 0 {
            let mut k = j + 1;
            while k < entries.len() && is_tied(entries[k]) {
                k += 1;
            }
            let group = &entries[j..k];
            j = k;
            if group.len() == 1 {
                let c = index_of(group[0]);
                let kept = keep_share(value, keep[c]);
                votes[c] += kept;
                value -= kept;
                continue;
            }
            let live = group.iter().filter(|&&e| keep[index_of(e)] > 0).count() as u64;
            if live == 0 {
                continue;
            }
            let share = value / live;
            let mut passed = value - share * live;
            for &e in group {
                let c = index_of(e);
                if keep[c] == 0 {
                    continue;
                }
                let kept = keep_share(share, keep[c]);
                votes[c] += kept;
                passed += share - kept;
            }
            value = passed;
        }
        excess += value;
    }
    excess
}
