//! The operators' pages. The job queue: the same [`jobs::status`] that `convene admin queue`
//! prints, and a retry button for dead jobs; and the live gatherings by media node.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use convene_web::queue_view::{
    GatheringRow, QueueDeadRow, QueueDestinationRow, QueueKindRow, QueueView,
};
use convene_web::routes;

use super::{context, redirect_with};
use crate::app::AppState;
use crate::domain::passports::Passport;
use crate::error::{AppError, Result};
use crate::http::visitor::Visitor;
use crate::jobs::{self, JobId};

/// "28 Nov 2026, 16:04:05 UTC": the queue moves in seconds, so the page shows them.
fn moment(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%-d %b %Y, %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

fn operator(visitor: &Visitor) -> Result<&Passport> {
    let p = visitor.require()?;
    if !p.is_operator {
        return Err(AppError::Forbidden(
            "Only the instance's operators see this page.",
        ));
    }
    Ok(p)
}

/// `GET /admin/queue`
pub async fn page(State(state): State<AppState>, visitor: Visitor) -> Result<Response> {
    operator(&visitor)?;
    let status = jobs::status::status(&state.db).await?;
    let view = QueueView {
        kinds: status
            .kinds
            .into_iter()
            .map(|k| QueueKindRow {
                kind: k.kind,
                queued: k.queued,
                running: k.running,
                retrying: k.retrying,
                done: k.done,
                dead: k.dead,
            })
            .collect(),
        destinations: status
            .destinations
            .into_iter()
            .map(|d| QueueDestinationRow {
                name: d.destination,
                state: d.state.as_str().to_string(),
                pending: d.pending,
                consecutive_failures: d.consecutive_failures,
                last_error: d.last_error,
                last_failure: d.last_failure_at.map(moment),
                next_try: d.next_probe_at.map(moment),
            })
            .collect(),
        dead: status
            .dead
            .into_iter()
            .map(|j| QueueDeadRow {
                id: j.id.0,
                kind: j.kind,
                tag: j.tag,
                destination: j.destination,
                attempts: j.attempts,
                error: j.last_error.unwrap_or_default(),
                when: j.finished_at.map(moment).unwrap_or_default(),
                retry_url: j.retryable.then(|| routes::admin_queue_retry(j.id.0)),
            })
            .collect(),
    };
    Ok(convene_web::pages::queue(&context(&state, &visitor), &view).into_response())
}

/// `POST /admin/queue/jobs/{id}/retry`
pub async fn retry(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<i64>,
) -> Result<Response> {
    operator(&visitor)?;
    if jobs::status::retry(&state.db, JobId(id)).await? {
        state.queue.wake();
        Ok(redirect_with(
            &state,
            routes::ADMIN_QUEUE,
            "success",
            &format!("Job {id} will be tried again."),
        ))
    } else {
        Ok(redirect_with(
            &state,
            routes::ADMIN_QUEUE,
            "error",
            &format!("Job {id} is not a dead job with something left to send."),
        ))
    }
}

/// `GET /admin/gatherings`: live gatherings by the process that holds them.
pub async fn gatherings(State(state): State<AppState>, visitor: Visitor) -> Result<Response> {
    operator(&visitor)?;
    let rows: Vec<GatheringRow> = crate::core::gathering::held_gatherings(&state.core)
        .await?
        .into_iter()
        .map(|g| GatheringRow {
            space_name: g.space_name,
            space_slug: g.space_slug,
            room_name: g.room_name,
            room_slug: g.room_slug,
            node: g.node_url,
            here: g.here,
            seated: g.seated,
            lease_until: moment(g.lease_until),
        })
        .collect();
    Ok(convene_web::pages::gatherings(&context(&state, &visitor), &rows).into_response())
}
