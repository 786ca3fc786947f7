//! `POST {room}/tickets`: another instance asks, signed by its instance actor, for a ticket
//! that lets one of its Passports into a Room here (issue 9). Server to server, so outside the
//! pages' CSRF layer; every answer is JSON (a grant, or a problem).

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use convene_federation::admission::{TicketRequest, check_ticket_request};
use convene_federation::json;
use convene_federation::receive::authenticate;
use convene_federation::signature::InboundRequest;

use super::federation::{failure as federation_failure, problem};
use crate::activitypub::{RemoteActors, system_time};
use crate::app::AppState;
use crate::core;
use crate::error::AppError;

pub fn routes() -> Router<AppState> {
    Router::new().route("/spaces/{space}/rooms/{room}/tickets", post(tickets))
}

/// 200 with a [`convene_federation::admission::TicketGrant`]; 401 for a missing or bad
/// signature, 403 when the signer is not the Passport's instance or the policy or the Room's
/// rules refuse, 404 for no such (public) Room, 409 when it is full, 400 for a malformed body.
async fn tickets(State(state): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, json::MAX_BODY_BYTES).await else {
        return problem(StatusCode::PAYLOAD_TOO_LARGE, "the body is too large");
    };
    let domain = state.settings.domain();
    let request = InboundRequest {
        method: &parts.method,
        path_and_query: parts.uri.path_and_query().map_or("/", |p| p.as_str()),
        headers: &parts.headers,
        body: &body,
        host: Some(&domain),
    };
    // The signer's key, and later the Passport's actor, from the stored remote actors (as the
    // inbox reads them), fetched only when missing or stale.
    let keys = match RemoteActors::new(state.core.clone(), state.federation.clone()).await {
        Ok(keys) => keys,
        Err(err) => return federation_failure(&err),
    };
    let policy = match core::partners::policy(&state.db).await {
        Ok(policy) => policy,
        Err(err) => return failure(err),
    };
    let verified = match authenticate(
        &request,
        &keys,
        &policy,
        state.federation.replay.as_ref(),
        system_time(&state.core),
    )
    .await
    {
        Ok(verified) => verified,
        Err(err) => return federation_failure(&err),
    };
    let asked: TicketRequest = match json::from_slice(&body) {
        Ok(asked) => asked,
        Err(err) => return federation_failure(&err),
    };
    if let Err(err) = check_ticket_request(&verified, &asked, &domain) {
        return federation_failure(&err);
    }
    // Who the Passport is, from its own instance (the signer's host, checked above).
    let passport = match asked.passport.with_suffix("#main-key") {
        Ok(key_id) => match keys.fetch_actor(&key_id).await {
            Ok(actor) => actor,
            Err(err) => return federation_failure(&err),
        },
        Err(err) => return federation_failure(&err),
    };
    match core::admission::grant(&state.core, &verified, &asked, &passport).await {
        Ok(grant) => {
            let mut response = axum::Json(grant).into_response();
            // A ticket is a key: nothing may keep it.
            response.headers_mut().insert(
                axum::http::header::CACHE_CONTROL,
                axum::http::HeaderValue::from_static("no-store"),
            );
            response
        }
        Err(err) => failure(err),
    }
}

fn failure(err: AppError) -> Response {
    let info = super::error::info(&err);
    if info.status.is_server_error() {
        tracing::error!(error = %err, "ticket request");
        return problem(info.status, "the instance could not answer; try again");
    }
    tracing::info!(error = %err, "ticket refused");
    problem(info.status, &info.detail)
}
