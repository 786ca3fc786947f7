//! The Circle's motions on the Budget and the Objectives: proposing, the motion page and
//! stewards' votes.

use axum::Form;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use convene_web::governance_view::{MotionForm, MotionView, RoleForm, SizeForm};
use convene_web::routes;
use serde::Deserialize;
use serde_json::Value;

use super::overview::overview_with;
use crate::app::AppState;
use crate::error::{AppError, Result};
use crate::governance::{self, motions};
use crate::http::pages::{context, date, redirect_with};
use crate::http::visitor::Visitor;

/// A stored decision's count as text (motions store their decision as JSON counts).
fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

pub(super) fn motion_status(passed: Option<bool>) -> &'static str {
    match passed {
        None => "Open",
        Some(true) => "Passed",
        Some(false) => "Not passed",
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct MotionInput {
    kind: String,
    infrastructure: String,
    operations: String,
    patronage: String,
    objectives: String,
}

/// `POST /governance/motions`: a steward proposes a new Budget or new Objectives.
pub async fn propose(
    State(state): State<AppState>,
    visitor: Visitor,
    Form(input): Form<MotionInput>,
) -> Result<Response> {
    let p = visitor.require()?;
    let pct = |field: &'static str, v: &str| {
        v.trim()
            .parse::<i64>()
            .map_err(|_| AppError::invalid(field, "Give a whole percentage from 0 to 100."))
    };
    let result = match input.kind.as_str() {
        "budget" => match (
            pct("infrastructure", &input.infrastructure),
            pct("operations", &input.operations),
            pct("patronage", &input.patronage),
        ) {
            (Ok(i), Ok(o), Ok(pa)) => motions::propose_budget(&state.db, p, i, o, pa).await,
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => Err(e),
        },
        "objectives" => motions::propose_objectives(&state.db, p, &input.objectives).await,
        _ => Err(AppError::BadRequest("Unknown kind of motion.".into())),
    };
    match result {
        Ok(id) => Ok(redirect_with(
            &state,
            &routes::motion(id),
            "success",
            "The motion is proposed; stewards vote on it here.",
        )),
        Err(err) => {
            overview_with(&state, &visitor, err, |errors| {
                (
                    RoleForm::default(),
                    SizeForm::default(),
                    MotionForm {
                        infrastructure: input.infrastructure.clone(),
                        operations: input.operations.clone(),
                        patronage: input.patronage.clone(),
                        objectives: input.objectives.clone(),
                        errors,
                    },
                )
            })
            .await
        }
    }
}

/// `GET /governance/motions/{id}`: the proposal, the votes so far and, once decided, the count.
pub async fn motion_page(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<i64>,
) -> Result<Response> {
    let m = motions::get(&state.db, id).await?;
    let voted = visitor
        .passport()
        .is_some_and(|p| m.votes.iter().any(|v| v.handle == p.handle.as_str()));
    let steward = match visitor.passport() {
        Some(p) => governance::is_steward(&state.db, p.id).await?,
        None => false,
    };
    let mut proposal = Vec::new();
    if let Some(b) = &m.budget {
        proposal.push(format!("Infrastructure {}%", b.infrastructure()));
        proposal.push(format!("Operations {}%", b.operations()));
        proposal.push(format!("Patronage {}%", b.patronage()));
        proposal.push(format!("Reserve {}%", b.reserve()));
    }
    if let Some(list) = &m.objectives {
        proposal.extend(list.iter().cloned());
    }
    let decision = m.decision.as_ref().map(|d| {
        format!(
            "Residents {} of {} seats for, Workers {} of {} seats for; {} needed on each side: {}.",
            text_of(&d["resident_for"]),
            text_of(&d["resident_seats"]),
            text_of(&d["worker_for"]),
            text_of(&d["worker_seats"]),
            text_of(&d["needed"]),
            if m.passed == Some(true) {
                "passed"
            } else {
                "not passed"
            }
        )
    });
    let view = MotionView {
        title: m.title.clone(),
        status: motion_status(m.passed).to_string(),
        proposed_by: m.proposed_by.clone(),
        created: date(m.created_at),
        proposal,
        votes: m
            .votes
            .iter()
            .map(|v| {
                (
                    format!("{} @{}", v.display_name, v.handle),
                    v.constituency.to_string(),
                    v.position.clone(),
                )
            })
            .collect(),
        vote_url: (steward && !voted && m.decided_at.is_none()).then(|| routes::motion_vote(id)),
        decision,
    };
    Ok(convene_web::pages::motion(&context(&state, &visitor), &view).into_response())
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct VoteInput {
    position: String,
}

/// `POST /governance/motions/{id}/vote`: a steward's vote, once.
pub async fn vote(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<i64>,
    Form(input): Form<VoteInput>,
) -> Result<Response> {
    let p = visitor.require()?;
    let position = motions::parse_position(&input.position)?;
    let m = motions::vote(&state.db, id, p, position).await?;
    let message = match m.passed {
        Some(true) => "Your vote is recorded. The motion has passed and is in force.",
        Some(false) => "Your vote is recorded. The motion cannot pass any more.",
        None => "Your vote is recorded.",
    };
    Ok(redirect_with(
        &state,
        &routes::motion(id),
        "success",
        message,
    ))
}
