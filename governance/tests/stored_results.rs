//! Results stored as JSON read back as the same `Outcome`: every method's, the ones written
//! before outcomes could be read (`data/stored/`), and never a panic on a damaged row.

use convene_governance::{Ballot, Election, Event, Method, Outcome, TieRule, Votes, count};
use proptest::prelude::*;

/// Results as instances stored them before issue 7 (see `data/README.md`).
const STORED: [(&str, &str); 9] = [
    ("stv", include_str!("data/stored/stv.json")),
    ("stv_lot", include_str!("data/stored/stv_lot.json")),
    (
        "stv_earlier_round",
        include_str!("data/stored/stv_earlier_round.json"),
    ),
    ("meek", include_str!("data/stored/meek.json")),
    ("irv", include_str!("data/stored/irv.json")),
    ("schulze", include_str!("data/stored/schulze.json")),
    ("approval", include_str!("data/stored/approval.json")),
    ("plurality", include_str!("data/stored/plurality.json")),
    ("everyone", include_str!("data/stored/everyone.json")),
];

const METHODS: [Method; 6] = [
    Method::ScottishStv,
    Method::Meek,
    Method::Irv,
    Method::Schulze,
    Method::Approval,
    Method::Plurality,
];

fn read(json: &str) -> Result<Outcome, serde_json::Error> {
    serde_json::from_str(json)
}

fn round_trip(o: &Outcome) {
    let json = serde_json::to_string(o).expect("outcomes serialise");
    let back = read(&json).unwrap_or_else(|e| panic!("{} reads back: {e}\n{json}", o.method));
    assert_eq!(&back, o, "{json}");
    assert_eq!(serde_json::to_string(&back).expect("serialises"), json);
}

#[test]
fn results_stored_before_issue_7_read_back_and_write_the_same_bytes() {
    for (name, json) in STORED {
        let o = read(json).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            serde_json::to_string(&o).expect("serialises"),
            json,
            "{name}: the stored format is unchanged"
        );
        assert!(!o.to_text().is_empty());
    }
}

#[test]
fn stored_results_read_back_typed_with_every_kind_of_event() {
    let by_name = |name: &str| {
        let (_, json) = STORED.iter().find(|(n, _)| *n == name).expect("a fixture");
        read(json).expect("reads")
    };
    let stv = by_name("stv");
    assert_eq!(stv.method, Method::ScottishStv);
    assert_eq!(stv.quota, Some(Votes::whole(6)));
    assert_eq!(stv.elected_indices, [0, 2]);
    assert!(matches!(
        &stv.rounds[1].events[0],
        Event::SurplusTransferred { candidate: 0, surplus, .. } if *surplus == Votes::whole(2)
    ));
    assert_eq!(
        stv.rounds[1].votes[1],
        Votes::parse_decimal("4.5").expect("decimal")
    );
    let lot = by_name("stv_lot");
    assert!(lot.rounds.iter().flat_map(|r| &r.events).any(|e| matches!(
        e,
        Event::TieBroken {
            rule: TieRule::Lot { draw_number: 1, .. },
            ..
        }
    )));
    let earlier = by_name("stv_earlier_round");
    assert!(earlier.rounds.iter().flat_map(|r| &r.events).any(|e| matches!(
        e,
        Event::TieBroken { rule: TieRule::EarlierRound { round: 1 }, purpose, .. } if purpose == "exclusion"
    )));
    assert!(
        earlier
            .rounds
            .iter()
            .flat_map(|r| &r.events)
            .any(|e| matches!(e, Event::Excluded { .. }))
    );
    let meek = by_name("meek");
    assert_eq!(meek.rounds[1].iterations, Some(2));
    assert_eq!(
        meek.rounds[1].keep_factors.as_ref().map(|k| k[0]),
        Votes::parse_decimal("0.638888889")
    );
    let schulze = by_name("schulze");
    assert_eq!(
        schulze.pairwise.as_ref().map(|d| d[0][1]),
        Some(Votes::whole(20))
    );
    assert!(schulze.strongest_paths.is_some());
    assert!(by_name("irv").rounds[0].keep_factors.is_none());
    assert_eq!(by_name("everyone").withdrawn, [2]);
}

#[test]
fn every_methods_outcome_round_trips_including_ties_and_withdrawals() {
    let names: Vec<String> = ["A", "B", "C", "D"].iter().map(|s| s.to_string()).collect();
    let ballots = vec![
        Ballot::weighted(Votes::whole(4), &[0, 1, 2]),
        Ballot::weighted(Votes::whole(4), &[1, 0]),
        Ballot::weighted(Votes::whole(2), &[2, 3]),
        Ballot::weighted(Votes::whole(2), &[3, 2, 1]),
        Ballot::new(Votes::whole(1), vec![vec![0, 2], vec![1]]),
    ];
    let e = Election::new("Round trip", names, ballots).expect("valid");
    let withdrawn = e.clone().with_withdrawn(&[3]).expect("valid");
    for method in METHODS {
        for seats in 1..=4 {
            if method == Method::Irv && seats != 1 {
                continue;
            }
            for election in [&e, &withdrawn] {
                round_trip(&count(election, method, seats, 42).expect("counts"));
            }
        }
    }
}

#[test]
fn damaged_results_are_errors_that_say_what_is_wrong() {
    let (_, json) = STORED[0];
    let good: serde_json::Value = serde_json::from_str(json).expect("json");
    let damaged = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut v = good.clone();
        f(&mut v);
        serde_json::from_value::<Outcome>(v)
            .expect_err("refused")
            .to_string()
    };
    assert!(damaged(&|v| v["elected_indices"][1] = 9.into()).contains("candidate 9"));
    assert!(
        damaged(&|v| v["rounds"][2]["votes"] = serde_json::json!(["1"]))
            .contains("1 entries for 5")
    );
    assert!(damaged(&|v| v["rounds"][0]["number"] = 7.into()).contains("numbered 7"));
    assert!(
        damaged(&|v| v["rounds"][2]["events"][0]["chosen"] = 0.into()).contains("inconsistent")
    );
    assert!(
        damaged(&|v| v["rounds"][0]["events"][0]["candidate"] = 5.into()).contains("candidate 5")
    );
    assert!(damaged(&|v| v["elected"][0] = "Somebody Else".into()).contains("Somebody Else"));
    assert!(damaged(&|v| v["valid_votes"] = 17.into()).contains("decimal string"));
    assert!(damaged(&|v| v["method"] = "borda".into()).contains("unknown counting method"));
    assert!(damaged(&|v| v["lot"] = "mersenne".into()).contains("mersenne"));
    assert!(
        damaged(&|v| v["rounds"][1]["events"][0]["event"] = "promoted".into()).contains("promoted")
    );
}

/// A raw election: candidates, (weight, ranking) ballots, seats and seed.
fn raw_election() -> impl Strategy<Value = (usize, Vec<(u64, Vec<usize>)>, usize, u64)> {
    (2usize..=6).prop_flat_map(|n| {
        (
            Just(n),
            prop::collection::vec(
                (
                    1u64..=9,
                    Just((0..n).collect::<Vec<_>>())
                        .prop_shuffle()
                        .prop_flat_map(move |order| {
                            (0..=n).prop_map(move |len| order[..len].to_vec())
                        }),
                ),
                1..20,
            ),
            1..=n,
            any::<u64>(),
        )
    })
}

/// Indices of every number in a JSON value, by path, so a property can damage any of them.
fn number_paths(v: &serde_json::Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match v {
        serde_json::Value::Number(_) => out.push(path.clone()),
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                path.push(i.to_string());
                number_paths(x, path, out);
                path.pop();
            }
        }
        serde_json::Value::Object(o) => {
            for (k, x) in o {
                path.push(k.clone());
                number_paths(x, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(120))]

    #[test]
    fn any_count_by_any_method_reads_back_as_itself((n, raw, seats, seed) in raw_election()) {
        let names: Vec<String> = (0..n).map(|i| format!("Candidate {i}")).collect();
        let ballots = raw.iter().map(|(w, r)| Ballot::weighted(Votes::whole(*w), r)).collect();
        let e = Election::new("p", names, ballots).expect("valid");
        for method in METHODS {
            let seats = if method == Method::Irv { 1 } else { seats };
            let o = count(&e, method, seats, seed).expect("counts");
            let json = serde_json::to_string(&o).expect("serialises");
            let back: Outcome = serde_json::from_str(&json).expect("reads back");
            prop_assert_eq!(&back, &o);
            prop_assert_eq!(serde_json::to_string(&back).expect("serialises"), json);
        }
    }

    #[test]
    fn votes_read_back_exactly(units in any::<u64>()) {
        let v = Votes::from_units(units);
        let back: Votes = serde_json::from_str(&serde_json::to_string(&v).expect("json")).expect("reads");
        prop_assert_eq!(back, v);
    }

    #[test]
    fn a_stored_result_with_any_number_changed_reads_or_errs_but_never_panics(
        which in 0usize..STORED.len(), pick in any::<prop::sample::Index>(), value in any::<u64>()
    ) {
        let mut v: serde_json::Value = serde_json::from_str(STORED[which].1).expect("json");
        let mut paths = Vec::new();
        number_paths(&v, &mut Vec::new(), &mut paths);
        let path = pick.get(&paths).clone();
        let mut at = &mut v;
        for key in &path {
            at = match at {
                serde_json::Value::Array(a) => &mut a[key.parse::<usize>().expect("an index")],
                other => &mut other[key.as_str()],
            };
        }
        *at = value.into();
        if let Ok(o) = serde_json::from_value::<Outcome>(v) {
            // What reads back is usable as any counted outcome is.
            prop_assert!(!o.to_text().is_empty());
            let n = o.candidates.len();
            prop_assert!(o.rounds.iter().all(|r| r.votes.len() == n));
            prop_assert!(o.elected_indices.iter().all(|&c| c < n));
        }
    }
}
