//! Elections from creation to close: the new-election form, the election page, nominations
//! (standing, nominating, accepting, withdrawing), reminders and closing the count.

use axum::Form;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use convene_web::governance_view::{
    CandidateView, DeliveryRow, ElectionForm, ElectionRow, ElectionView, NominateForm,
};
use convene_web::routes;
use serde::Deserialize;

use super::{person, require_runner, tick, u32_of, when};
use crate::app::AppState;
use crate::error::{AppError, FieldError, Result};
use crate::governance::elections::{self, Election, NewElection, Phase};
use crate::governance::{self, notices, tally, voting};
use crate::http::pages::{context, date, form_errors, invalid, redirect_with};
use crate::http::visitor::Visitor;

/// An election in the overview's list, with who was elected once it is counted. A stored
/// result that cannot be read is said so in the row (and logged) rather than failing the whole
/// overview; its own result page shows the error.
pub(super) fn election_row(e: &Election, now: i64) -> ElectionRow {
    let outcome = match tally::stored_outcome(e) {
        Ok(None) => None,
        Ok(Some(_)) if e.quorum_met == Some(false) => Some("Quorum not met".to_string()),
        Ok(Some(o)) => Some(format!("Elected: {}", o.elected.join(", "))),
        Err(err) => {
            tracing::warn!(error = %err, "governance: listing elections");
            Some("The stored result cannot be read".to_string())
        }
    };
    ElectionRow {
        url: e.path(),
        title: e.title.clone(),
        constituency: e.constituency.to_string(),
        phase: e.phase(now).label().to_string(),
        method: e.method.long_name().to_string(),
        seats: u32_of(e.seats),
        when: format!(
            "voting {} – {}",
            date(e.voting_open_at),
            date(e.voting_close_at)
        ),
        outcome,
    }
}

fn datetime_local(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%dT%H:%M").to_string())
        .unwrap_or_default()
}

fn parse_local(input: &str) -> Option<i64> {
    let s = input.trim();
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|f| chrono::NaiveDateTime::parse_from_str(s, f).ok())
        .map(|d| d.and_utc().timestamp())
}

/// `GET /governance/elections/new`: the new-election form, with times a week apart.
pub async fn new_election_page(
    State(state): State<AppState>,
    visitor: Visitor,
) -> Result<Response> {
    require_runner(&state, &visitor).await?;
    let t = state.db.now() / 3600 * 3600 + 3600;
    let form = ElectionForm {
        constituency: "resident".into(),
        seats: "1".into(),
        method: "stv".into(),
        nominations_open: datetime_local(t),
        nominations_close: datetime_local(t + 7 * 86400),
        voting_open: datetime_local(t + 7 * 86400),
        voting_close: datetime_local(t + 14 * 86400),
        quorum: "0".into(),
        ..ElectionForm::default()
    };
    Ok(convene_web::pages::election_new(&context(&state, &visitor), &form).into_response())
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct ElectionInput {
    title: String,
    constituency: String,
    seats: String,
    method: String,
    nominations_open: String,
    nominations_close: String,
    voting_open: String,
    voting_close: String,
    quorum: String,
    by_election: Option<String>,
}

/// `POST /governance/elections`: creates an election, or shows the form with its problems.
pub async fn create_election(
    State(state): State<AppState>,
    visitor: Visitor,
    Form(input): Form<ElectionInput>,
) -> Result<Response> {
    let by = require_runner(&state, &visitor).await?;
    let mut errors = Vec::new();
    let mut time = |field: &'static str, value: &str| {
        parse_local(value).unwrap_or_else(|| {
            errors.push(FieldError {
                field,
                message: "Give a date and time (UTC).".into(),
            });
            0
        })
    };
    let new = NewElection {
        title: input.title.clone(),
        constituency: input.constituency.clone(),
        seats: input.seats.trim().parse().unwrap_or(0),
        method: input.method.clone(),
        nominations_open_at: time("nominations_open", &input.nominations_open),
        nominations_close_at: time("nominations_close", &input.nominations_close),
        voting_open_at: time("voting_open", &input.voting_open),
        voting_close_at: time("voting_close", &input.voting_close),
        quorum_percent: if input.quorum.trim().is_empty() {
            0
        } else {
            input.quorum.trim().parse().unwrap_or(-1)
        },
        by_election: input.by_election.is_some(),
    };
    let result = if errors.is_empty() {
        elections::create(&state.db, &by, &new).await
    } else {
        Err(AppError::Invalid(errors))
    };
    match result {
        Ok(e) => {
            tick(&state).await;
            Ok(redirect_with(
                &state,
                &e.path(),
                "success",
                "The election is created.",
            ))
        }
        Err(err) => {
            let errors = form_errors(err)?;
            let form = ElectionForm {
                title: input.title,
                constituency: input.constituency,
                seats: input.seats,
                method: input.method,
                nominations_open: input.nominations_open,
                nominations_close: input.nominations_close,
                voting_open: input.voting_open,
                voting_close: input.voting_close,
                quorum: input.quorum,
                by_election: input.by_election.is_some(),
                errors,
            };
            Ok(invalid(convene_web::pages::election_new(
                &context(&state, &visitor),
                &form,
            )))
        }
    }
}

async fn election_view(
    state: &AppState,
    visitor: &Visitor,
    e: &Election,
    nominate_form: NominateForm,
) -> Result<ElectionView> {
    let t = state.db.now();
    let phase = e.phase(t);
    let me = visitor.passport();
    let is_admin = match me {
        Some(p) => governance::may_run_elections(&state.db, p).await?,
        None => false,
    };
    let candidates = elections::candidates(&state.db, e.id)
        .await?
        .into_iter()
        .map(|c| {
            let mine = me.is_some_and(|p| p.id == c.passport_id);
            let status = if c.withdrawn {
                "Withdrawn"
            } else if c.accepted {
                "Standing"
            } else if e.roll_frozen_at.is_some() || phase != Phase::Nominating {
                "Did not accept"
            } else {
                "Awaiting acceptance"
            };
            CandidateView {
                person: person(&c.handle, &c.display_name),
                statement: c.statement.clone(),
                nominated_by: c.nominated_by.clone().filter(|h| *h != c.handle),
                status: status.to_string(),
                ballot_number: c.ballot_number.map(u32_of),
                accept_url: (mine && !c.accepted && !c.withdrawn && phase == Phase::Nominating)
                    .then(|| routes::nomination_accept(e.id, c.nomination_id)),
                withdraw_url: (mine
                    && !c.withdrawn
                    && phase != Phase::Closed
                    && phase != Phase::Counting)
                    .then(|| routes::nomination_withdraw(e.id, c.nomination_id)),
            }
        })
        .collect();
    let turnout = if e.roll_frozen_at.is_some() {
        Some(voting::turnout(&state.db, e.id).await?)
    } else {
        None
    };
    // A damaged stored result does not hide the rest of the election: it is logged, the list
    // of elected stays empty, and the result page (linked below) shows the error.
    let elected = match tally::stored_outcome(e) {
        Ok(Some(o)) if e.quorum_met == Some(true) => o.elected,
        Ok(_) => Vec::new(),
        Err(err) => {
            tracing::warn!(error = %err, "governance: election page");
            Vec::new()
        }
    };
    let delivery = if is_admin {
        notices::delivery(&state.db, e.id)
            .await?
            .into_iter()
            .map(|d| DeliveryRow {
                notice: d.label.to_string(),
                sent: d.sent,
                pending: d.pending,
                failed: d.failed,
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(ElectionView {
        url: e.path(),
        title: e.title.clone(),
        constituency: e.constituency.to_string(),
        method: e.method.long_name().to_string(),
        seats: u32_of(e.seats),
        phase: phase.label().to_string(),
        by_election: e.by_election,
        timeline: vec![
            ("Nominations open".into(), when(e.nominations_open_at)),
            ("Nominations close".into(), when(e.nominations_close_at)),
            ("Voting opens".into(), when(e.voting_open_at)),
            ("Voting closes".into(), when(e.voting_close_at)),
        ],
        quorum_percent: u32_of(e.quorum_percent),
        seed: e.seed.map(|s| s.to_string()),
        turnout,
        candidates,
        nominate_url: (me.is_some() && phase == Phase::Nominating)
            .then(|| routes::nominations(e.id)),
        nominate_form,
        signed_in: me.is_some(),
        is_admin,
        delivery,
        remind_url: (is_admin && phase == Phase::Voting).then(|| routes::remind(e.id)),
        close_url: (is_admin && phase == Phase::Counting).then(|| routes::close(e.id)),
        receipts_url: routes::receipts(e.id),
        result_url: e.result_json.as_ref().map(|_| routes::result(e.id)),
        blt_url: (e.closed_at.is_some() && e.result_json.is_some())
            .then(|| routes::ballots_blt(e.id)),
        elected,
        notes: e.result_error.clone(),
    })
}

/// `GET /governance/elections/{id}`: the election in its current phase, with what the visitor
/// may do in it.
pub async fn election_page(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<i64>,
) -> Result<Response> {
    tick(&state).await;
    let e = elections::get(&state.db, id).await?;
    let view = election_view(&state, &visitor, &e, NominateForm::default()).await?;
    Ok(convene_web::pages::election(&context(&state, &visitor), &view).into_response())
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct NominateInput {
    handle: String,
    statement: String,
}

/// `POST /governance/elections/{id}/nominations`: stand, or nominate someone on the roll.
pub async fn nominate(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<i64>,
    Form(input): Form<NominateInput>,
) -> Result<Response> {
    let p = visitor.require()?;
    tick(&state).await;
    let e = elections::get(&state.db, id).await?;
    match elections::nominate(&state, &e, p, &input.handle, &input.statement).await {
        Ok(c) => {
            let message = if c.accepted {
                "You are a candidate.".to_string()
            } else {
                format!("@{} is nominated; they stand once they accept.", c.handle)
            };
            Ok(redirect_with(&state, &e.path(), "success", &message))
        }
        Err(err) => {
            let errors = form_errors(err)?;
            let form = NominateForm {
                handle: input.handle,
                statement: input.statement,
                errors,
            };
            let view = election_view(&state, &visitor, &e, form).await?;
            Ok(invalid(convene_web::pages::election(
                &context(&state, &visitor),
                &view,
            )))
        }
    }
}

/// `POST /governance/elections/{id}/nominations/{nid}/accept`: the nominee accepts and stands.
pub async fn accept(
    State(state): State<AppState>,
    visitor: Visitor,
    Path((id, nid)): Path<(i64, i64)>,
    Form(input): Form<NominateInput>,
) -> Result<Response> {
    let p = visitor.require()?;
    tick(&state).await;
    let e = elections::get(&state.db, id).await?;
    elections::accept(&state, &e, nid, p, &input.statement).await?;
    Ok(redirect_with(
        &state,
        &e.path(),
        "success",
        "You accepted: you are a candidate.",
    ))
}

/// `POST /governance/elections/{id}/nominations/{nid}/withdraw`: the candidate withdraws.
pub async fn withdraw(
    State(state): State<AppState>,
    visitor: Visitor,
    Path((id, nid)): Path<(i64, i64)>,
) -> Result<Response> {
    let p = visitor.require()?;
    tick(&state).await;
    let e = elections::get(&state.db, id).await?;
    elections::withdraw(&state.db, &e, nid, p).await?;
    Ok(redirect_with(
        &state,
        &e.path(),
        "success",
        "You have withdrawn.",
    ))
}

/// `POST /governance/elections/{id}/remind`: a fresh link to everyone who has not voted.
pub async fn remind(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<i64>,
) -> Result<Response> {
    require_runner(&state, &visitor).await?;
    tick(&state).await;
    let e = elections::get(&state.db, id).await?;
    let n = voting::remind(&state, &e).await?;
    Ok(redirect_with(
        &state,
        &e.path(),
        "success",
        &format!("Reminders are on their way to {n} people who have not voted."),
    ))
}

/// `POST /governance/elections/{id}/close`: closes and counts once the voting time is over.
pub async fn close(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<i64>,
) -> Result<Response> {
    require_runner(&state, &visitor).await?;
    let e = elections::get(&state.db, id).await?;
    tally::close(&state, &e).await?;
    Ok(redirect_with(
        &state,
        &routes::result(e.id),
        "success",
        "The election is closed and counted.",
    ))
}
