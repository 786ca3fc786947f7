//! Schulze's method (M. Schulze, "A new monotonic, clone-independent, reversal symmetric, and
//! Condorcet-consistent single-winner election method", Social Choice and Welfare 36, 2011).
//!
//! 1. `d[i][j]` is the weight of ballots ranking `i` above `j`. A ranked candidate is above
//!    every unranked one; candidates ranked equal, or both unranked, are above neither.
//! 2. A link `i → j` has strength `d[i][j]` if `d[i][j] > d[j][i]` (winning votes), else none.
//! 3. `p[i][j]` is the strength of the strongest (widest) path from `i` to `j`, by the
//!    Floyd–Warshall variant of the paper.
//! 4. `i` beats `j` when `p[i][j] > p[j][i]`; this relation is transitive. The winner is a
//!    candidate nobody beats. For several seats, the next seat goes to a candidate nobody
//!    remaining beats, and so on (the Schulze ranking, top N).
//!
//! When several candidates are unbeaten at a step, a lot drawn from the seed decides (there are
//! no earlier rounds to consult). Each step is reported as a round whose votes column holds,
//! for each remaining candidate, how many of the other remaining candidates they beat.

use super::{Counter, round};
use crate::election::index_of;
use crate::error::Result;
use crate::votes::Votes;

pub(super) fn count(counter: &mut Counter<'_>) -> Result<()> {
    let n = counter.n();
    let standing = counter.standing();
    let mut d = vec![vec![0u64; n]; n];
    let (mut valid, mut invalid) = (0u64, 0u64);
    let mut rank = vec![usize::MAX; n];
    for ballot in counter.election.ballots() {
        let w = ballot.weight().units();
        let mut ranked = Vec::new();
        for (r, group) in ballot.rank_groups().enumerate() {
            for &e in group {
                let c = index_of(e);
                if !counter.election.is_withdrawn(c) {
                    rank[c] = r;
                    ranked.push(c);
                }
            }
        }
        if ranked.is_empty() {
            invalid += w;
            continue;
        }
        valid += w;
        for &i in &ranked {
            for &j in &standing {
                if rank[i] < rank[j] {
                    d[i][j] += w;
                }
            }
        }
        for &c in &ranked {
            rank[c] = usize::MAX;
        }
    }
    counter.set_valid(Votes::from_units(valid), Votes::from_units(invalid));
    counter.note("Schulze with winning votes; ranked candidates beat unranked ones; equal ranks beat neither.");

    let mut p = vec![vec![0u64; n]; n];
    for &i in &standing {
        for &j in &standing {
            if i != j && d[i][j] > d[j][i] {
                p[i][j] = d[i][j];
            }
        }
    }
    for &k in &standing {
        for &i in &standing {
            if i == k {
                continue;
            }
            for &j in &standing {
                if j != i && j != k {
                    p[i][j] = p[i][j].max(p[i][k].min(p[k][j]));
                }
            }
        }
    }
    let to_votes = |m: &Vec<Vec<u64>>| -> Vec<Vec<Votes>> {
        m.iter()
            .map(|row| row.iter().map(|&x| Votes::from_units(x)).collect())
            .collect()
    };
    counter.set_schulze(to_votes(&d), to_votes(&p));

    let mut remaining = standing.clone();
    while counter.elected.len() < counter.seats && !remaining.is_empty() {
        let beats = |i: usize, j: usize| p[i][j] > p[j][i];
        let mut wins = vec![Votes::ZERO; n];
        for &i in &remaining {
            let count = remaining.iter().filter(|&&j| j != i && beats(i, j)).count() as u64;
            wins[i] = Votes::whole(count);
        }
        let unbeaten: Vec<usize> = remaining
            .iter()
            .copied()
            .filter(|&i| remaining.iter().all(|&j| !beats(j, i)))
            .collect();
        let mut events = Vec::new();
        let pick = match unbeaten.as_slice() {
            [only] => *only,
            [] => remaining[0],
            tied => counter.lot_tie(tied, "seat", &mut events),
        };
        let e = counter.elected_event(pick, wins[pick]);
        events.push(e);
        let mut r = round(
            format!(
                "Seat {}: {} unbeaten",
                counter.elected.len(),
                counter.name(pick)
            ),
            wins,
        );
        r.events = events;
        counter.push_round(r);
        remaining.retain(|&c| c != pick);
    }
    Ok(())
}
