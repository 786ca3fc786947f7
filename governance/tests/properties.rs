//! Property tests: votes conserved, results independent of ballot order and grouping, the same
//! seed giving the same result, BLT round trips, the reader surviving any input, and the Circle
//! staying balanced through any sequence of changes.

use convene_governance::circle::{Circle, Constituency};
use convene_governance::{Ballot, Election, Method, Outcome, Votes, blt, count};
use proptest::prelude::*;

const METHODS: [Method; 6] = [
    Method::ScottishStv,
    Method::Meek,
    Method::Irv,
    Method::Schulze,
    Method::Approval,
    Method::Plurality,
];

/// A raw ballot: weight, a sort key per candidate, how many to rank, and equal-rank flags.
type RawBallot = (u64, Vec<u8>, usize, Vec<bool>);

fn raw_election() -> impl Strategy<Value = (usize, Vec<RawBallot>, usize, u64)> {
    (2usize..=6).prop_flat_map(|n| {
        (
            Just(n),
            prop::collection::vec(
                (
                    1u64..=12,
                    prop::collection::vec(any::<u8>(), n),
                    0..=n,
                    prop::collection::vec(prop::bool::weighted(0.15), n),
                ),
                1..25,
            ),
            1..=n,
            any::<u64>(),
        )
    })
}

fn ranks_of(n: usize, keys: &[u8], len: usize, ties: &[bool]) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&c| (keys[c], c));
    let mut ranks: Vec<Vec<usize>> = Vec::new();
    for (i, &c) in order.iter().take(len).enumerate() {
        match ranks.last_mut() {
            Some(last) if i > 0 && ties[i] => last.push(c),
            _ => ranks.push(vec![c]),
        }
    }
    ranks
}

fn build(n: usize, raw: &[RawBallot], with_ties: bool) -> Vec<Ballot> {
    raw.iter()
        .map(|(w, keys, len, ties)| {
            let no_ties = vec![false; n];
            let ranks = ranks_of(n, keys, *len, if with_ties { ties } else { &no_ties });
            Ballot::new(Votes::whole(*w), ranks)
        })
        .collect()
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("C{i}")).collect()
}

fn json(o: &Outcome) -> String {
    serde_json::to_string(o).expect("outcomes serialise")
}

fn seats_for(method: Method, seats: usize) -> usize {
    if method == Method::Irv { 1 } else { seats }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]

    #[test]
    fn votes_are_conserved_in_every_round((n, raw, seats, seed) in raw_election(), ties in any::<bool>()) {
        let e = Election::new("p", names(n), build(n, &raw, ties)).expect("valid");
        for method in [Method::ScottishStv, Method::Meek, Method::Irv] {
            let o = count(&e, method, seats_for(method, seats), seed).expect("counts");
            prop_assert_eq!(o.valid_votes + o.invalid_votes, e.total_weight());
            for round in &o.rounds {
                let sum: Votes = round.votes.iter().copied().sum::<Votes>() + round.non_transferable + round.rounding;
                prop_assert_eq!(sum, o.valid_votes, "{} round {}", method, round.number);
            }
        }
    }

    #[test]
    fn result_is_independent_of_ballot_order_and_grouping((n, raw, seats, seed) in raw_election(), ties in any::<bool>()) {
        let ballots = build(n, &raw, ties);
        let mut reversed = ballots.clone();
        reversed.reverse();
        // Every ballot of weight w split into w ballots of weight one, interleaved.
        let mut singles: Vec<Ballot> = Vec::new();
        let most = raw.iter().map(|r| r.0).max().unwrap_or(0);
        for k in 0..most {
            for (b, r) in ballots.iter().zip(&raw) {
                if k < r.0 {
                    singles.push(Ballot::new(Votes::whole(1), b.ranks()));
                }
            }
        }
        let e1 = Election::new("p", names(n), ballots).expect("valid");
        let e2 = Election::new("p", names(n), reversed).expect("valid");
        let e3 = Election::new("p", names(n), singles).expect("valid");
        prop_assert_eq!(&e1, &e2);
        prop_assert_eq!(&e1, &e3);
        for method in METHODS {
            let s = seats_for(method, seats);
            let a = json(&count(&e1, method, s, seed).expect("counts"));
            prop_assert_eq!(&a, &json(&count(&e2, method, s, seed).expect("counts")));
            prop_assert_eq!(&a, &json(&count(&e3, method, s, seed).expect("counts")));
        }
    }

    #[test]
    fn same_seed_same_result_and_seats_filled((n, raw, seats, seed) in raw_election()) {
        let e = Election::new("p", names(n), build(n, &raw, true)).expect("valid");
        for method in METHODS {
            let s = seats_for(method, seats);
            let a = count(&e, method, s, seed).expect("counts");
            let b = count(&e, method, s, seed).expect("counts");
            prop_assert_eq!(json(&a), json(&b));
            prop_assert_eq!(a.elected.len(), s.min(n), "{}", method);
            let mut unique = a.elected_indices.clone();
            unique.sort_unstable();
            unique.dedup();
            prop_assert_eq!(unique.len(), a.elected.len());
        }
    }

    #[test]
    fn blt_round_trips((n, raw, seats, _seed) in raw_election(), withdrawn in 0usize..8) {
        let mut e = Election::new("Board \"2025\"", names(n), build(n, &raw, true)).expect("valid").with_seats(seats);
        if withdrawn < n {
            e = e.with_withdrawn(&[withdrawn]).expect("in range");
        }
        let text = blt::write(&e);
        prop_assert_eq!(blt::parse(&text).expect("own output parses"), e);
    }

    #[test]
    fn blt_reader_never_panics_on_garbage(text in "\\PC{0,300}") {
        let _ = blt::parse(&text);
    }

    #[test]
    fn blt_reader_never_panics_on_damaged_files((n, raw, seats, _seed) in raw_election(), cut in any::<prop::sample::Index>(), junk in "[-0-9=\" #\n]{0,12}") {
        let e = Election::new("t", names(n), build(n, &raw, true)).expect("valid").with_seats(seats);
        let text = blt::write(&e);
        let at = cut.index(text.len() + 1);
        let at = (0..=at).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
        let damaged = format!("{}{}{}", &text[..at], junk, &text[at..]);
        if let Ok(parsed) = blt::parse(&damaged) {
            // Whatever parses must still count without panicking.
            let _ = count(&parsed, Method::ScottishStv, 1, 0);
        }
    }

    #[test]
    fn circle_stays_balanced(size in 1usize..5, ops in prop::collection::vec((0u8..4, any::<bool>(), 0u32..8, 1usize..6), 0..60)) {
        let mut circle: Circle<u32> = Circle::new(size).expect("non-empty");
        for (op, resident, member, new_size) in ops {
            let constituency = if resident { Constituency::Resident } else { Constituency::Worker };
            let before = circle.clone();
            let result = match op {
                0 | 1 => circle.seat(constituency, member).map(|_| ()),
                2 => circle.vacate(&member).map(|_| ()),
                _ => circle.resize(new_size),
            };
            if result.is_err() {
                prop_assert_eq!(&circle, &before, "a refused change leaves the Circle as it was");
            }
            let seats = circle.seats_per_constituency();
            prop_assert!(seats >= 1);
            for c in [Constituency::Resident, Constituency::Worker] {
                prop_assert_eq!(circle.seated(c) + circle.vacancies(c), seats);
                for m in circle.members(c) {
                    prop_assert_eq!(circle.seat_of(m), Some(c));
                }
            }
            let mut everyone: Vec<u32> = circle.members(Constituency::Resident).into_iter().chain(circle.members(Constituency::Worker)).copied().collect();
            let total = everyone.len();
            everyone.sort_unstable();
            everyone.dedup();
            prop_assert_eq!(everyone.len(), total, "nobody holds two seats");
        }
    }
}
