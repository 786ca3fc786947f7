//! The Circle's seats and the Worker roll: marking Workers, resizing the Circle, vacating a
//! seat and filling a vacancy by countback. Operators and stewards manage; a Representative
//! may vacate their own seat.

use axum::Form;
use axum::extract::{Path, State};
use axum::response::Response;
use convene_web::governance_view::{MotionForm, RoleForm, SizeForm};
use convene_web::routes;
use serde::Deserialize;

use super::overview::overview_with;
use crate::app::AppState;
use crate::domain::passports::Passport;
use crate::error::{AppError, Result};
use crate::governance::{self, circle, roll, tally};
use crate::http::pages::redirect_with;
use crate::http::visitor::Visitor;

/// Workers and the Circle are managed by operators and stewards only.
async fn require_manager(state: &AppState, visitor: &Visitor) -> Result<Passport> {
    let p = visitor.require()?.clone();
    if governance::may_set_roles(&state.db, &p).await? {
        Ok(p)
    } else {
        Err(AppError::Forbidden(
            "Only operators and stewards manage Workers and the Circle.",
        ))
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct RoleInput {
    handle: String,
    role: String,
    reason: String,
}

/// `POST /governance/workers`: marks (or unmarks) a Worker, logged.
pub async fn set_role(
    State(state): State<AppState>,
    visitor: Visitor,
    Form(input): Form<RoleInput>,
) -> Result<Response> {
    let by = require_manager(&state, &visitor).await?;
    let result = match roll::WorkerRole::parse_optional(&input.role) {
        Ok(role) => roll::set_worker_role(&state.db, &by, &input.handle, role, &input.reason).await,
        Err(err) => Err(err),
    };
    match result {
        Ok(change) => Ok(redirect_with(
            &state,
            routes::GOVERNANCE,
            "success",
            &format!(
                "@{} is now {}.",
                change.handle,
                change
                    .new_role
                    .as_deref()
                    .unwrap_or("without a Worker role")
            ),
        )),
        Err(err) => {
            overview_with(&state, &visitor, err, |errors| {
                (
                    RoleForm {
                        handle: input.handle.clone(),
                        role: input.role.clone(),
                        reason: input.reason.clone(),
                        errors,
                    },
                    SizeForm::default(),
                    MotionForm::default(),
                )
            })
            .await
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct SizeInput {
    seats: String,
    constituency: String,
}

/// `POST /governance/circle/size`: resizes both constituencies at once.
pub async fn resize(
    State(state): State<AppState>,
    visitor: Visitor,
    Form(input): Form<SizeInput>,
) -> Result<Response> {
    require_manager(&state, &visitor).await?;
    let result = match input.seats.trim().parse::<i64>() {
        Ok(n) => circle::resize(&state.db, n).await,
        Err(_) => Err(AppError::invalid("seats", "Give a whole number of seats.")),
    };
    match result {
        Ok(()) => Ok(redirect_with(
            &state,
            routes::GOVERNANCE,
            "success",
            "The Circle is resized.",
        )),
        Err(err) => {
            overview_with(&state, &visitor, err, |errors| {
                (
                    RoleForm::default(),
                    SizeForm {
                        seats: input.seats.clone(),
                        errors,
                    },
                    MotionForm::default(),
                )
            })
            .await
        }
    }
}

/// `POST /governance/circle/countback`: fills a vacancy from the last election's ballots.
pub async fn countback(
    State(state): State<AppState>,
    visitor: Visitor,
    Form(input): Form<SizeInput>,
) -> Result<Response> {
    require_manager(&state, &visitor).await?;
    let result = match governance::parse_constituency(&input.constituency) {
        Ok(c) => tally::countback(&state.db, c).await,
        Err(err) => Err(err),
    };
    match result {
        Ok(name) => Ok(redirect_with(
            &state,
            routes::GOVERNANCE,
            "success",
            &format!("{name} takes the vacant seat by countback."),
        )),
        Err(err) => {
            let seats = circle::size(&state.db).await?.to_string();
            overview_with(&state, &visitor, err, |errors| {
                (
                    RoleForm::default(),
                    SizeForm { seats, errors },
                    MotionForm::default(),
                )
            })
            .await
        }
    }
}

/// `POST /governance/circle/seats/{handle}/vacate`: the holder resigns, or an operator
/// removes them. The vacancy stays with the seat's constituency.
pub async fn vacate(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(handle): Path<String>,
) -> Result<Response> {
    let p = visitor.require()?;
    let handle = crate::domain::values::Handle::parse(&handle).map_err(|_| AppError::NotFound)?;
    let holder = crate::domain::passports::by_handle(&state.db, &handle)
        .await?
        .ok_or(AppError::NotFound)?;
    if !(p.is_operator || p.id == holder.id) {
        return Err(AppError::Forbidden(
            "Only the Representative themself or an operator vacates a seat.",
        ));
    }
    let c = circle::vacate(&state.db, holder.id).await?;
    Ok(redirect_with(
        &state,
        routes::GOVERNANCE,
        "success",
        &format!(
            "The {c} seat of @{} is vacant; fill it by countback or a by-election.",
            holder.handle
        ),
    ))
}
