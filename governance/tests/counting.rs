//! Counting tests: hand-computed cases for every method, and a real Scottish ward.

use convene_governance::{Ballot, Election, Event, Method, Outcome, TieRule, Votes, blt, count};

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Builds an election from `(weight, ranking)` pairs over candidates named by letters.
fn election(candidates: &[&str], ballots: &[(u64, &[usize])]) -> Election {
    let ballots = ballots
        .iter()
        .map(|(w, r)| Ballot::weighted(Votes::whole(*w), r))
        .collect();
    Election::new("test", names(candidates), ballots).expect("valid election")
}

fn v(text: &str) -> Votes {
    Votes::parse_decimal(text).expect("decimal literal")
}

fn assert_conserved(outcome: &Outcome) {
    for round in &outcome.rounds {
        let sum: Votes =
            round.votes.iter().copied().sum::<Votes>() + round.non_transferable + round.rounding;
        assert_eq!(
            sum, outcome.valid_votes,
            "round {} does not conserve votes",
            round.number
        );
    }
}

const A: usize = 0;
const B: usize = 1;
const C: usize = 2;
const D: usize = 3;
const E: usize = 4;

#[test]
fn scottish_stv_hand_count_with_surplus_and_exclusions() {
    // 16 papers, 2 seats: quota = floor(16 / 3) + 1 = 6. A's surplus of 2 over 8 papers gives a
    // transfer value of 0.25: B gets 6 × 0.25 = 1.5, C gets 2 × 0.25 = 0.5. D (1) is excluded
    // to C (5.5), then B (4.5) is excluded: its 3 own papers and the 6 at 0.25 are
    // non-transferable (4.5), and C, the one continuing candidate, fills the last seat (rule 52).
    let e = election(
        &["A", "B", "C", "D"],
        &[
            (6, &[A, B]),
            (2, &[A, C]),
            (3, &[B]),
            (4, &[C]),
            (1, &[D, C]),
        ],
    );
    let o = count(&e, Method::ScottishStv, 2, 1).expect("counts");
    assert_eq!(o.quota, Some(Votes::whole(6)));
    assert_eq!(o.elected, ["A", "C"]);
    let votes: Vec<Vec<String>> = o
        .rounds
        .iter()
        .map(|r| r.votes.iter().map(|v| v.to_string()).collect())
        .collect();
    assert_eq!(votes[0], ["8", "3", "4", "1"]);
    assert_eq!(votes[1], ["6", "4.5", "4.5", "1"]);
    assert_eq!(votes[2], ["6", "4.5", "5.5", "0"]);
    assert_eq!(votes[3], ["6", "0", "5.5", "0"]);
    assert_eq!(o.rounds[3].non_transferable, v("4.5"));
    assert!(
        o.rounds[3]
            .events
            .iter()
            .any(|e| matches!(e, Event::Elected { name, .. } if name == "C"))
    );
    assert_conserved(&o);
}

#[test]
fn scottish_stv_truncates_transfer_values_to_five_decimals() {
    // Quota floor(10 / 2) + 1 = 6; A has 7, surplus 1: transfer value 1/7 = 0.14285 (truncated).
    // Seven papers at 0.14285 give B 0.99995; the 0.00005 dropped is recorded as rounding.
    let e = election(&["A", "B", "C"], &[(7, &[A, B]), (3, &[C])]);
    let o = count(&e, Method::ScottishStv, 1, 0).expect("counts");
    assert_eq!(o.elected, ["A"]);
    let mut e2 = election(&["A", "B", "C"], &[(7, &[A, B]), (2, &[C]), (1, &[B])]);
    let o2 = count(&e2, Method::ScottishStv, 2, 0).expect("counts");
    assert_eq!(o2.quota, Some(Votes::whole(4)));
    let after = &o2.rounds[1];
    assert_eq!(
        after.votes[B],
        v("3.99999"),
        "B: 1 + 7 × trunc5(3/7) = 1 + 7 × 0.42857"
    );
    assert_eq!(after.rounding, v("0.00001"));
    assert_conserved(&o2);
    e2 = e2.with_seats(2);
    assert_eq!(e2.seats(), Some(2));
}

#[test]
fn exclusion_tie_goes_to_the_most_recent_stage_where_they_differed() {
    // Stage 1: A7 B4 C3 D2 E1. E is excluded to D: stage 2 has C and D level on 3. At stage 1 D
    // had fewer, so D is excluded (rule 51(2)(a)).
    let e = election(
        &["A", "B", "C", "D", "E"],
        &[(7, &[A]), (4, &[B]), (3, &[C]), (2, &[D]), (1, &[E, D])],
    );
    let o = count(&e, Method::ScottishStv, 1, 99).expect("counts");
    let tie = o.rounds[2]
        .events
        .iter()
        .find_map(|e| match e {
            Event::TieBroken {
                chosen,
                rule,
                purpose,
                ..
            } => Some((*chosen, rule.clone(), purpose.clone())),
            _ => None,
        })
        .expect("a tie was broken in stage 3");
    assert_eq!(
        tie,
        (
            D,
            TieRule::EarlierRound { round: 1 },
            "exclusion".to_string()
        )
    );
    assert_eq!(o.elected, ["A"]);
    assert_conserved(&o);
}

#[test]
fn ties_level_at_every_stage_go_to_a_reproducible_lot() {
    let e = election(
        &["A", "B", "C", "D"],
        &[(2, &[A]), (2, &[B]), (1, &[C]), (1, &[D])],
    );
    let mut winners = std::collections::BTreeSet::new();
    for seed in 0..32 {
        let o = count(&e, Method::ScottishStv, 1, seed).expect("counts");
        let again = count(&e, Method::ScottishStv, 1, seed).expect("counts");
        assert_eq!(o.elected, again.elected, "same seed, same result");
        let lots = o
            .rounds
            .iter()
            .flat_map(|r| &r.events)
            .filter(|e| {
                matches!(
                    e,
                    Event::TieBroken {
                        rule: TieRule::Lot { .. },
                        ..
                    }
                )
            })
            .count();
        assert!(lots >= 2, "C/D and then A/B were level throughout");
        winners.insert(o.elected[0].clone());
    }
    assert_eq!(
        winners.len(),
        2,
        "both A and B win under some seed: {winners:?}"
    );
}

#[test]
fn scottish_stv_equal_first_preference_is_invalid_and_later_one_non_transferable() {
    let ballots = vec![
        Ballot::new(Votes::whole(3), vec![vec![A], vec![B, C]]),
        Ballot::new(Votes::whole(1), vec![vec![B, C]]),
        Ballot::weighted(Votes::whole(2), &[B]),
        Ballot::weighted(Votes::whole(1), &[C]),
    ];
    let e = Election::new("t", names(&["A", "B", "C"]), ballots).expect("valid");
    let o = count(&e, Method::ScottishStv, 2, 0).expect("counts");
    assert_eq!(o.invalid_votes, Votes::whole(1));
    assert_eq!(o.valid_votes, Votes::whole(6));
    // Quota 3: A elected with 3 exactly, no surplus; C (1) excluded; B elected by rule 52.
    assert_eq!(o.elected, ["A", "B"]);
    assert_conserved(&o);
}

#[test]
fn meek_keeps_exact_billionths() {
    // 12 votes, 2 seats: quota 4.000000001. A (10) is elected in round 1. Then A's keep factor
    // becomes ceil(4.000000001 / 10) = 0.400000001, so A keeps 4.00000001 and B receives
    // 5.99999999, reaching the quota.
    let e = election(&["A", "B", "C"], &[(10, &[A, B]), (2, &[C])]);
    let o = count(&e, Method::Meek, 2, 0).expect("counts");
    assert_eq!(o.elected, ["A", "B"]);
    assert_eq!(o.rounds[0].quota, Some(v("4.000000001")));
    let last = o.rounds.last().expect("rounds");
    assert_eq!(last.votes[A], v("4.00000001"));
    assert_eq!(last.votes[B], v("5.99999999"));
    assert_eq!(
        last.keep_factors.as_ref().map(|k| k[A]),
        Some(v("0.400000001"))
    );
    assert_conserved(&o);
}

#[test]
fn meek_passes_surpluses_through_to_later_ballots_unlike_scottish_stv() {
    // 3 seats. B (1 vote) is excluded and its ballot names A, already elected, then D. Under
    // Meek it flows through A, which keeps only its keep-factor share, on to D; under Scottish
    // STV it skips A (no longer continuing) and goes straight to D. Both elect A, C and D.
    let e = election(
        &["A", "B", "C", "D", "E"],
        &[
            (9, &[A, D]),
            (1, &[B, A, D]),
            (6, &[C]),
            (4, &[D]),
            (3, &[E]),
        ],
    );
    let meek = count(&e, Method::Meek, 3, 0).expect("counts");
    let scot = count(&e, Method::ScottishStv, 3, 0).expect("counts");
    assert_eq!(meek.elected, ["A", "C", "D"]);
    assert_eq!(scot.elected, ["A", "C", "D"]);
    assert_conserved(&meek);
    assert_conserved(&scot);
}

#[test]
fn irv_needs_a_majority_of_ballots_still_in_play() {
    // Round 1: A4 B3 C2 D1 (threshold 6). D out → C. Round 2: A4 B3 C3: B and C level, C had
    // fewer in round 1 so C is excluded; its D-C ballot is exhausted. Round 3: A4 B5 with 9
    // ballots in play: 5 is more than half of 9, B wins.
    let e = election(
        &["A", "B", "C", "D"],
        &[(4, &[A]), (3, &[B, C]), (2, &[C, B]), (1, &[D, C])],
    );
    let o = count(&e, Method::Irv, 1, 0).expect("counts");
    assert_eq!(o.elected, ["B"]);
    let last = o.rounds.last().expect("rounds");
    assert_eq!(
        last.votes,
        vec![Votes::whole(4), Votes::whole(5), Votes::ZERO, Votes::ZERO]
    );
    assert_eq!(last.non_transferable, Votes::whole(1));
    assert_eq!(
        last.quota,
        Some(v("4.500000001")),
        "strictly more than half of the 9 in play"
    );
    assert_conserved(&o);
    assert!(count(&e, Method::Irv, 2, 0).is_err(), "IRV fills one seat");
}

#[test]
fn schulze_matches_the_worked_example_of_schulzes_paper() {
    // The 45-voter example of Schulze's paper (and Wikipedia): winner E, ranking E A C B D.
    let e = election(
        &["A", "B", "C", "D", "E"],
        &[
            (5, &[A, C, B, E, D]),
            (5, &[A, D, E, C, B]),
            (8, &[B, E, D, A, C]),
            (3, &[C, A, B, E, D]),
            (7, &[C, A, E, B, D]),
            (2, &[C, B, A, D, E]),
            (7, &[D, C, E, B, A]),
            (8, &[E, B, A, D, C]),
        ],
    );
    let o = count(&e, Method::Schulze, 5, 0).expect("counts");
    assert_eq!(o.elected, ["E", "A", "C", "B", "D"]);
    let d = o.pairwise.as_ref().expect("pairwise");
    let whole = |row: &[Votes]| row.iter().map(|v| v.floor_whole()).collect::<Vec<_>>();
    assert_eq!(whole(&d[A]), [0, 20, 26, 30, 22]);
    assert_eq!(whole(&d[E]), [23, 27, 21, 31, 0]);
    let p = o.strongest_paths.as_ref().expect("paths");
    assert_eq!(whole(&p[A]), [0, 28, 28, 30, 24]);
    assert_eq!(whole(&p[E]), [25, 28, 28, 31, 0]);
    let single = count(&e, Method::Schulze, 1, 0).expect("counts");
    assert_eq!(single.elected, ["E"]);
}

#[test]
fn approval_counts_every_listed_candidate_and_plurality_the_first() {
    let ballots = vec![
        Ballot::new(Votes::whole(3), vec![vec![A], vec![B]]),
        Ballot::new(Votes::whole(2), vec![vec![C], vec![B]]),
        Ballot::new(Votes::whole(2), vec![vec![B, C]]),
    ];
    let e = Election::new("t", names(&["A", "B", "C"]), ballots).expect("valid");
    let approval = count(&e, Method::Approval, 1, 0).expect("counts");
    assert_eq!(
        approval.rounds[0].votes,
        vec![Votes::whole(3), Votes::whole(7), Votes::whole(4)]
    );
    assert_eq!(approval.elected, ["B"]);
    let plurality = count(&e, Method::Plurality, 2, 0).expect("counts");
    // A 3, C 2 + 1, B 1 (the B=C ballot is split).
    assert_eq!(
        plurality.rounds[0].votes,
        vec![Votes::whole(3), Votes::whole(1), Votes::whole(3)]
    );
    assert_eq!(plurality.elected.len(), 2);
    assert!(
        plurality.rounds[0].events.iter().any(
            |e| matches!(e, Event::TieBroken { purpose, .. } if purpose == "order of election")
        )
    );
}

#[test]
fn withdrawn_candidates_are_skipped() {
    let e = election(&["A", "B", "C"], &[(3, &[A, B]), (2, &[C]), (2, &[B])])
        .with_withdrawn(&[A])
        .expect("valid");
    for method in [
        Method::ScottishStv,
        Method::Meek,
        Method::Irv,
        Method::Plurality,
        Method::Approval,
        Method::Schulze,
    ] {
        let o = count(&e, method, 1, 0).expect("counts");
        assert_eq!(o.elected, ["B"], "{method}");
        assert!(!o.elected.contains(&"A".to_string()));
    }
}

#[test]
fn more_seats_than_candidates_elects_everyone_and_zero_seats_is_refused() {
    let e = election(&["A", "B"], &[(1, &[A])]);
    let o = count(&e, Method::ScottishStv, 3, 0).expect("counts");
    assert_eq!(o.elected, ["A", "B"]);
    assert!(count(&e, Method::Meek, 0, 0).is_err());
}

#[test]
fn method_names_parse() {
    for (name, method) in [
        ("stv", Method::ScottishStv),
        ("meek", Method::Meek),
        ("irv", Method::Irv),
        ("schulze", Method::Schulze),
        ("approval", Method::Approval),
        ("plurality", Method::Plurality),
        ("STV", Method::ScottishStv),
    ] {
        assert_eq!(name.parse::<Method>().expect("known"), method);
    }
    assert!("borda".parse::<Method>().is_err());
}

#[test]
fn glasgow_2022_dennistoun_matches_the_official_result() {
    let text = include_str!("data/glasgow_2022_ward22_dennistoun.blt");
    let e = blt::parse(text).expect("real file parses");
    let o = count(
        &e,
        Method::ScottishStv,
        e.seats().expect("seats in file"),
        0,
    )
    .expect("counts");
    let surname = |name: &str| name.split('"').next().unwrap_or("").trim().to_string();
    let elected: Vec<String> = o.elected.iter().map(|n| surname(n)).collect();
    assert_eq!(
        elected,
        ["Elaine MCDOUGALL", "Anthony CARROLL", "Allan CASEY"]
    );
    assert_eq!(o.valid_votes, Votes::whole(5464));
    assert_eq!(o.quota, Some(Votes::whole(1367)));
    // Published stage figures (rounded to whole votes), in file order:
    // Carroll, Casey, Connelly, Duncan, Finn, McCann, McDougall.
    let rounded = |r: usize| -> Vec<u64> {
        o.rounds[r]
            .votes
            .iter()
            .map(|v| (v.units() + 500_000_000) / 1_000_000_000)
            .collect()
    };
    assert_eq!(rounded(0), [1431, 1337, 339, 84, 582, 96, 1595]);
    assert_eq!(rounded(1)[1..6], [1362, 370, 109, 609, 143]);
    assert_eq!(rounded(2)[1..6], [1388, 370, 117, 626, 148]);
    assert_eq!(o.rounds.len(), 3);
    assert_conserved(&o);
    let json = serde_json::to_value(&o).expect("serialises");
    assert_eq!(
        json["elected"][2].as_str().map(surname),
        Some("Allan CASEY".to_string())
    );
    assert_eq!(json["quota"], "1367");
    assert!(o.to_text().contains("Elected, in order:"));
}

#[test]
fn real_ward_under_other_methods_still_conserves_votes() {
    let e = blt::parse(include_str!("data/glasgow_2022_ward22_dennistoun.blt")).expect("parses");
    for method in [
        Method::Meek,
        Method::Irv,
        Method::Schulze,
        Method::Approval,
        Method::Plurality,
    ] {
        let seats = if method == Method::Irv { 1 } else { 3 };
        let o = count(&e, method, seats, 7).expect("counts");
        assert_eq!(o.elected.len(), seats, "{method}");
        if matches!(method, Method::Meek | Method::Irv) {
            assert_conserved(&o);
        }
    }
}
