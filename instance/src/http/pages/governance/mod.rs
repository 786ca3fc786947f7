//! The governance pages: the Circle, elections, ballots, results and motions, one file per
//! topic, with every route of the section in [`routes`]:
//! - [`overview`]: `/governance`, the Circle, the Budget, the Objectives and the lists;
//! - [`circle`]: Worker roles and the Circle's seats (size, vacating, countback);
//! - [`elections`]: creating an election, nominations, reminders and the close;
//! - [`ballots`]: the secret ballot, its receipt, the list of receipts and the BLT file;
//! - [`results`]: the published count, rendered from the governance core's `Outcome`;
//! - [`motions`]: the Circle's Budget and Objectives motions.
//!
//! Every handler that shows an election first runs [`tick`], which moves elections along
//! (notices, roll freeze, close and count) lazily, so the pages always show an election in its
//! true phase. Every link and redirect is built by `convene_web::routes`, so the pages and the
//! patterns below cannot drift apart one hand-written `format!` at a time.

mod ballots;
pub(crate) mod circle;
pub(crate) mod elections;
pub(crate) mod motions;
mod overview;
mod results;

use axum::Router;
use axum::routing::{get, post};
use convene_web::governance_view::PersonRef;
use convene_web::routes;

use crate::app::AppState;
use crate::domain::passports::Passport;
use crate::error::{AppError, Result};
use crate::governance;
use crate::http::visitor::Visitor;

/// The governance routes, merged into the page router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(routes::GOVERNANCE, get(overview::overview))
        .route(routes::GOVERNANCE_WORKERS, post(circle::set_role))
        .route(routes::CIRCLE_SIZE, post(circle::resize))
        .route(routes::CIRCLE_COUNTBACK, post(circle::countback))
        .route(
            "/governance/circle/seats/{handle}/vacate",
            post(circle::vacate),
        )
        .route(routes::ELECTION_NEW, get(elections::new_election_page))
        .route(routes::ELECTIONS, post(elections::create_election))
        .route("/governance/elections/{id}", get(elections::election_page))
        .route(
            "/governance/elections/{id}/nominations",
            post(elections::nominate),
        )
        .route(
            "/governance/elections/{id}/nominations/{nid}/accept",
            post(elections::accept),
        )
        .route(
            "/governance/elections/{id}/nominations/{nid}/withdraw",
            post(elections::withdraw),
        )
        .route(
            "/governance/elections/{id}/ballot/{secret}",
            get(ballots::ballot_page).post(ballots::cast),
        )
        .route(
            "/governance/elections/{id}/receipts",
            get(ballots::receipts),
        )
        .route(
            "/governance/elections/{id}/ballots.blt",
            get(ballots::ballots_blt),
        )
        .route(
            "/governance/elections/{id}/result",
            get(results::result_page),
        )
        .route(
            "/governance/elections/{id}/result.json",
            get(results::result_json),
        )
        .route("/governance/elections/{id}/remind", post(elections::remind))
        .route("/governance/elections/{id}/close", post(elections::close))
        .route(routes::MOTIONS, post(motions::propose))
        .route("/governance/motions/{id}", get(motions::motion_page))
        .route("/governance/motions/{id}/vote", post(motions::vote))
}

/// Moves elections along; a failure is logged and the page still shows.
pub(super) async fn tick(state: &AppState) {
    if let Err(err) = governance::tick(state).await {
        tracing::warn!(error = %err, "governance: moving elections along");
    }
}

/// A moment as the governance pages show it: in words, in UTC, which is what the forms take.
pub(super) fn when(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%-d %B %Y, %H:%M UTC").to_string())
        .unwrap_or_default()
}

pub(super) fn person(handle: &str, name: &str) -> PersonRef {
    PersonRef {
        handle: handle.to_string(),
        display_name: name.to_string(),
    }
}

/// Stored counts are `i64`; one that does not fit (never written) shows as 0 rather than
/// wrapping.
pub(super) fn u32_of(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

/// Stewards run elections, and operators do until the first steward is seated (so that an
/// instance can hold its founding election).
pub(super) async fn require_runner(state: &AppState, visitor: &Visitor) -> Result<Passport> {
    let p = visitor.require()?.clone();
    if governance::may_run_elections(&state.db, &p).await? {
        Ok(p)
    } else {
        Err(AppError::Forbidden(
            "Only stewards run elections (operators do until the first steward is seated).",
        ))
    }
}
