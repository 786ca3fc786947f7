//! The published count of an election: the result page, rendered from the governance core's
//! [`Outcome`] read back from the stored JSON, and that JSON itself.
//!
//! The page works from the type, not from the JSON's shape: a new kind of event or a renamed
//! field is then a compile error here rather than a silently blank line on a published result.
//! A stored result that does not read back is an error page (see [`tally::stored_outcome`]).

use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use convene_governance::{Event, Outcome, Round, TieRule, Votes};
use convene_web::governance_view::{EventView, ResultView, RoundView, TieDecision};
use convene_web::routes;

use super::tick;
use crate::app::AppState;
use crate::error::{AppError, Result};
use crate::governance::elections::{self, Election};
use crate::governance::tally;
use crate::http::pages::context;
use crate::http::visitor::Visitor;

/// `GET /governance/elections/{id}/result`: every round, transfer and tie decision.
pub async fn result_page(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<i64>,
) -> Result<Response> {
    tick(&state).await;
    let e = elections::get(&state.db, id).await?;
    let outcome = tally::stored_outcome(&e)?.ok_or(AppError::NotFound)?;
    let view = result_view(&e, &outcome);
    Ok(convene_web::pages::election_result(&context(&state, &visitor), &view).into_response())
}

/// `GET /governance/elections/{id}/result.json`: the count as the governance core reports it
/// (the same shape as `convene tally --json`), served as stored so it stays byte for byte what
/// was published at the close.
pub async fn result_json(State(state): State<AppState>, Path(id): Path<i64>) -> Result<Response> {
    tick(&state).await;
    let e = elections::get(&state.db, id).await?;
    let json = e.result_json.ok_or(AppError::NotFound)?;
    Ok(([(CONTENT_TYPE, "application/json")], json).into_response())
}

/// Counts in the view are whole numbers; anything past `u32` is shown as its ceiling rather
/// than wrapped (no real count gets there).
fn u32_from(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn votes(v: Votes) -> String {
    v.to_string()
}

fn result_view(e: &Election, o: &Outcome) -> ResultView {
    let mut notes = o.notes.clone();
    if let Some(n) = &e.result_error {
        notes.push(n.clone());
    }
    let pct = if e.roll_size > 0 {
        e.ballots_cast * 100 / e.roll_size
    } else {
        0
    };
    ResultView {
        election_title: e.title.clone(),
        election_url: e.path(),
        method: o.method.long_name().to_string(),
        seats: u32_from(o.seats),
        seed: o.seed.to_string(),
        valid_votes: votes(o.valid_votes),
        invalid_votes: votes(o.invalid_votes),
        quota: o.quota.map(votes),
        turnout: format!("{} of {} ({pct}%)", e.ballots_cast, e.roll_size),
        candidates: o.candidates.clone(),
        // Without a quorum the count is published but nobody takes a seat.
        elected: if e.quorum_met == Some(false) {
            Vec::new()
        } else {
            o.elected.clone()
        },
        rounds: o.rounds.iter().map(round_view).collect(),
        notes,
        receipts_url: routes::receipts(e.id),
        blt_url: routes::ballots_blt(e.id),
        json_url: routes::result_json(e.id),
        text: e.result_text.clone().unwrap_or_default(),
    }
}

fn round_view(r: &Round) -> RoundView {
    RoundView {
        number: u32_from(r.number),
        description: r.description.clone(),
        quota: r.quota.map(votes),
        votes: r.votes.iter().copied().map(votes).collect(),
        keep_factors: r
            .keep_factors
            .as_ref()
            .map(|k| k.iter().copied().map(votes).collect()),
        non_transferable: votes(r.non_transferable),
        rounding: (r.rounding > Votes::ZERO).then(|| votes(r.rounding)),
        iterations: r.iterations.map(u32_from),
        events: r.events.iter().map(event_view).collect(),
    }
}

fn event_view(e: &Event) -> EventView {
    match e {
        Event::Elected { name, votes: v, .. } => EventView::Elected {
            name: name.clone(),
            votes: votes(*v),
        },
        Event::Excluded { name, votes: v, .. } => EventView::Excluded {
            name: name.clone(),
            votes: votes(*v),
        },
        Event::SurplusTransferred {
            name,
            surplus,
            transferred,
            non_transferable,
            rounding,
            ..
        } => EventView::SurplusTransferred {
            name: name.clone(),
            surplus: votes(*surplus),
            transferred: votes(*transferred),
            non_transferable: votes(*non_transferable),
            rounding: votes(*rounding),
        },
        Event::TieBroken {
            purpose,
            names,
            name,
            rule,
            ..
        } => EventView::TieBroken {
            purpose: purpose.clone(),
            tied: names.clone(),
            chosen: name.clone(),
            decided_by: match rule {
                TieRule::EarlierRound { round } => TieDecision::EarlierRound {
                    round: u32_from(*round),
                },
                TieRule::Lot { draw, draw_number } => TieDecision::Lot {
                    draw_number: *draw_number,
                    draw: *draw,
                },
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use convene_governance::Method;
    use convene_governance::circle::Constituency;

    use super::*;

    /// A closed election as the close stores it, holding `json` as its result.
    fn closed(json: &str) -> Election {
        Election {
            id: 3,
            title: "Resident Representatives 2026".into(),
            constituency: Constituency::Resident,
            seats: 2,
            method: Method::ScottishStv,
            nominations_open_at: 0,
            nominations_close_at: 1,
            voting_open_at: 1,
            voting_close_at: 2,
            quorum_percent: 50,
            by_election: false,
            seed: Some(1),
            roll_frozen_at: Some(1),
            roll_size: 5,
            ballots_cast: 4,
            closed_at: Some(2),
            quorum_met: Some(true),
            result_json: Some(json.to_string()),
            result_text: Some("text".into()),
            result_error: None,
            nominations_notice_at: None,
            candidates_notice_at: None,
            auto_reminder_at: None,
            created_at: 0,
        }
    }

    fn view_of(json: &str) -> ResultView {
        let e = closed(json);
        let o = tally::stored_outcome(&e)
            .expect("the stored result reads back")
            .expect("there is one");
        result_view(&e, &o)
    }

    /// Results stored before Outcome could be read back: this version must still show them.
    const STORED_STV: &str = include_str!("../../../../../governance/tests/data/stored/stv.json");
    const STORED_MEEK: &str = include_str!("../../../../../governance/tests/data/stored/meek.json");
    const STORED_EARLIER: &str =
        include_str!("../../../../../governance/tests/data/stored/stv_earlier_round.json");

    #[test]
    fn a_result_stored_by_an_earlier_version_renders_every_round_and_event() {
        let v = view_of(STORED_STV);
        assert_eq!(v.method, Method::ScottishStv.long_name());
        assert_eq!((v.seats, v.seed.as_str()), (2, "1"));
        assert_eq!(v.quota.as_deref(), Some("6"));
        assert_eq!(v.elected, ["Ann Able (@ann)", "Cal Cole (@cal)"]);
        assert_eq!(v.turnout, "4 of 5 (80%)");
        assert_eq!(v.json_url, "/governance/elections/3/result.json");
        assert_eq!(v.rounds.len(), 5);
        assert_eq!(v.rounds[1].votes, ["6", "4.5", "4.5", "1", "1"]);
        assert_eq!(
            v.rounds[0].rounding, None,
            "no rounding row when nothing was lost"
        );
        assert_eq!(
            v.rounds[0].events,
            [EventView::Elected {
                name: "Ann Able (@ann)".into(),
                votes: "8".into()
            }]
        );
        assert!(matches!(
            &v.rounds[1].events[0],
            EventView::SurplusTransferred { surplus, transferred, .. } if surplus == "2" && transferred == "2"
        ));
        assert!(matches!(
            &v.rounds[2].events[..],
            [
                EventView::TieBroken { purpose, tied, chosen, decided_by: TieDecision::Lot { draw_number: 1, .. } },
                EventView::Excluded { .. },
            ] if purpose == "exclusion" && tied.len() == 2 && chosen == "Eve Early (@eve)"
        ));
        let earlier = view_of(STORED_EARLIER);
        assert!(
            earlier
                .rounds
                .iter()
                .flat_map(|r| &r.events)
                .any(|e| matches!(
                    e,
                    EventView::TieBroken {
                        decided_by: TieDecision::EarlierRound { round: 1 },
                        ..
                    }
                ))
        );
    }

    #[test]
    fn meek_rounds_show_keep_factors_and_iterations() {
        let v = view_of(STORED_MEEK);
        let last = v.rounds.last().expect("rounds");
        assert_eq!(last.iterations, Some(2));
        assert_eq!(
            last.keep_factors.as_ref().map(|k| k[0].as_str()),
            Some("0.638888889")
        );
        assert_eq!(last.non_transferable, "0.249999996");
    }

    #[test]
    fn without_a_quorum_the_count_is_shown_but_nobody_is_elected() {
        let mut e = closed(STORED_STV);
        e.quorum_met = Some(false);
        e.result_error = Some("The quorum was not met.".into());
        let o = tally::stored_outcome(&e).expect("reads").expect("one");
        let v = result_view(&e, &o);
        assert!(v.elected.is_empty());
        assert_eq!(v.rounds.len(), 5);
        assert_eq!(
            v.notes.last().map(String::as_str),
            Some("The quorum was not met.")
        );
    }

    #[test]
    fn a_damaged_stored_result_is_an_internal_error_not_a_panic() {
        for json in [
            "{",
            "{}",
            &STORED_STV.replace("\"elected_indices\":[0,2]", "\"elected_indices\":[0,9]"),
            &STORED_STV.replace("\"event\":\"excluded\"", "\"event\":\"promoted\""),
        ] {
            let err = tally::stored_outcome(&closed(json)).expect_err("refused");
            assert!(matches!(err, AppError::Internal(_)), "{err:?}");
            assert!(err.to_string().contains("election 3"), "{err}");
        }
        let mut none = closed("");
        none.result_json = None;
        assert!(matches!(tally::stored_outcome(&none), Ok(None)));
    }
}
