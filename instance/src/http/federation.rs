//! The ActivityPub door's read side: actor documents, discovery (WebFinger, NodeInfo) and
//! collections. The documents come from the `federation` crate's directory functions over
//! [`LocalDirectory`]; this module only maps them to HTTP.
//!
//! Actors live at the URLs their pages already have, so a Space is one URL whether a person
//! or a server asks: [`negotiate`] runs before the pages and answers a `GET` whose `Accept`
//! asks for `application/activity+json` (or `application/ld+json`) with the actor document.
//! Both answers carry `Vary: Accept` so that caches keep them apart.
//!
//! Bad input is 400 (a malformed WebFinger resource) or 404 (nothing there), never a 500:
//! errors from the federation crate carry their own status.

use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE, VARY};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use convene_federation::directory::{self, Directory, SeenActivities};
use convene_federation::nodeinfo::{self, NodeInfo, Users};
use convene_federation::protocol::Id;
use convene_federation::protocol::activity::Activity;
use convene_federation::protocol::context::{
    ACTIVITY_CONTENT_TYPE, CONVENE_CONTEXT_PATH, convene_context_document, wants_activity_json,
    with_context,
};
use convene_federation::protocol::object::OrderedCollection;
use convene_federation::receive::{FetchKeySource, Received, receive};
use convene_federation::signature::{InboundRequest, parse_signature};
use serde::Serialize;
use sqlx::Row;

use crate::activitypub::{
    ActorPath, INSTANCE_ACTOR_PATH, LocalDirectory, SHARED_INBOX_PATH, system_time,
};
use crate::app::AppState;
use crate::core;
use crate::core::network::Answer;
use crate::error::AppError;

/// The routes that only ActivityPub clients and servers use. (Actor pages that browsers also
/// see are answered by [`negotiate`].)
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/.well-known/webfinger", get(webfinger))
        .route(nodeinfo::WELL_KNOWN_PATH, get(nodeinfo_links))
        .route(nodeinfo::NODEINFO_PATH, get(nodeinfo_document))
        .route(INSTANCE_ACTOR_PATH, get(instance_actor))
        .route(CONVENE_CONTEXT_PATH, get(convene_context))
        .route("/actor/outbox", get(outbox))
        .route("/people/{handle}/followers", get(followers))
        .route("/people/{handle}/outbox", get(outbox))
        .route("/spaces/{space}/followers", get(followers))
        .route("/spaces/{space}/outbox", get(outbox))
        .route("/spaces/{space}/rooms/{room}/followers", get(followers))
        .route("/spaces/{space}/rooms/{room}/outbox", get(outbox))
        .route(SHARED_INBOX_PATH, post(inbox))
        .route("/actor/inbox", post(inbox))
        .route("/people/{handle}/inbox", post(inbox))
        .route("/spaces/{space}/inbox", post(inbox))
        .route("/spaces/{space}/rooms/{room}/inbox", post(inbox))
}

/// The largest inbox body read; the federation crate refuses more than this too (413).
const INBOX_LIMIT: usize = convene_federation::json::MAX_BODY_BYTES;

/// `POST /inbox` (shared) and `POST {actor}/inbox`: a signed activity from another server.
///
/// 202 when taken (or already seen, or of a kind we do not act on), 401 for a missing, bad or
/// RFC 9421-only signature, 400 for malformed JSON, 403 for a refused origin (or an Announce
/// from a Space nobody here follows, or about a Room that is not the Space's), 404 for a
/// Follow of something that is not a local Space, 413 over 1 MiB.
async fn inbox(State(state): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, INBOX_LIMIT).await else {
        tracing::info!(path = %parts.uri.path(), "inbox body over the limit");
        return problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the body is larger than 1 MiB",
        );
    };
    let domain = state.settings.domain();
    let request = InboundRequest {
        method: &parts.method,
        path_and_query: parts.uri.path_and_query().map_or("/", |p| p.as_str()),
        headers: &parts.headers,
        body: &body,
        host: Some(&domain),
    };
    let directory = LocalDirectory::new(state.core.clone());
    let signer = match Id::parse(&state.settings.url(INSTANCE_ACTOR_PATH)) {
        Ok(actor) => match directory.keys_of(&actor).await {
            Ok(keys) => actor.with_suffix("#main-key").ok().map(|id| (id, keys)),
            Err(err) => return failure(&err),
        },
        Err(err) => return failure(&err),
    };
    let keys = FetchKeySource {
        client: state.federation.client.clone(),
        signer,
    };
    let seen = Seen(state.core.clone());
    let policy = match core::partners::policy(&state.db).await {
        Ok(policy) => policy,
        Err(err) => {
            tracing::error!(error = %err, "partner policy");
            return problem(StatusCode::SERVICE_UNAVAILABLE, "try again later");
        }
    };
    let received = receive::<Activity>(
        &request,
        &keys,
        &policy,
        &seen,
        state.federation.replay.as_ref(),
        system_time(&state.core),
    )
    .await;
    let inbound = match received {
        Ok(Received::New(inbound)) => inbound,
        Ok(Received::Duplicate(id)) => {
            tracing::debug!(%id, "activity seen before");
            return StatusCode::ACCEPTED.into_response();
        }
        Err(convene_federation::Error::UnsupportedActivity(what)) => {
            tracing::info!(%what, "activity type not taken here");
            return StatusCode::ACCEPTED.into_response();
        }
        Err(err) => return failure(&err),
    };
    let result = match &inbound.activity {
        Activity::Follow(follow) => {
            // Where to answer: the follower's document, fetched by its key as the signature
            // check did (the follower's id is the signer's, see `receive`).
            let key_id = match Id::try_from(inbound.signer.key_id.clone()) {
                Ok(id) => id,
                Err(err) => return failure(&err),
            };
            match keys.fetch_actor(&key_id).await {
                Ok(follower) => core::followers::follow(&state.core, follow, &follower)
                    .await
                    .map(|_| ()),
                Err(err) => return failure(&err),
            }
        }
        Activity::Undo(undo) => core::followers::undo_follow(&state.core, undo).await,
        // Answers to, and news from, Spaces that Passports here follow.
        Activity::Accept(answer) => {
            core::network::answered(&state.core, &inbound.id, answer, Answer::Accepted).await
        }
        Activity::Reject(answer) => {
            core::network::answered(&state.core, &inbound.id, answer, Answer::Rejected).await
        }
        Activity::Announce(announce) => {
            core::network::announced(&state.core, &inbound.id, announce).await
        }
        Activity::Update(update) => core::network::updated(&state.core, &inbound.id, update).await,
        _ => core::followers::ignore(&state.core, &inbound.id).await,
    };
    match result {
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        Err(AppError::NotFound) => not_found(),
        Err(AppError::BadRequest(why)) => problem(StatusCode::BAD_REQUEST, &why),
        Err(AppError::Forbidden(why)) => {
            tracing::info!(activity = %inbound.id, %why, "inbox refused an activity");
            problem(StatusCode::FORBIDDEN, why)
        }
        Err(err) => {
            tracing::error!(error = %err, activity = %inbound.id, "inbox");
            problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the instance could not take this activity now; send it again later",
            )
        }
    }
}

/// The inbox's view of processed activity ids.
struct Seen(crate::core::Core);

impl SeenActivities for Seen {
    async fn seen(&self, activity_id: &Id) -> convene_federation::Result<bool> {
        core::followers::seen(&self.0, activity_id)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "seen activities");
                convene_federation::Error::Directory("storage".into())
            })
    }
}

/// Answers `GET {actor}` with the actor document when the client asks for ActivityPub JSON;
/// every other request goes on to the pages.
pub async fn negotiate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let is_read = matches!(*req.method(), Method::GET | Method::HEAD);
    let path = ActorPath::parse(req.uri().path());
    let wants_json = req
        .headers()
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(wants_activity_json);
    match path {
        Some(path) if is_read && wants_json => {
            let mut response = actor(&state, &path).await;
            vary_accept(&mut response);
            response
        }
        Some(_) => {
            let mut response = next.run(req).await;
            vary_accept(&mut response);
            response
        }
        None => next.run(req).await,
    }
}

/// Refuses any request signed by an instance the partner policy refuses (403), on every
/// route: a blocked instance learns nothing more by signing its fetches. Unsigned requests
/// name nobody and go on (public pages stay public).
pub async fn refuse_blocked_signers(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let has_signature = req.headers().contains_key("signature")
        || req
            .headers()
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("Signature "));
    if has_signature && let Ok(params) = parse_signature(req.headers()) {
        let host = convene_federation::urls::authority(params.key_id()).unwrap_or_default();
        match core::partners::policy(&state.db).await {
            Ok(policy) if !policy.allows(&host) => {
                tracing::info!(%host, path = %req.uri().path(), "refused by the partner policy");
                return problem(
                    StatusCode::FORBIDDEN,
                    "this instance does not federate with yours",
                );
            }
            Ok(_) => {}
            Err(err) => {
                tracing::error!(error = %err, "partner policy");
                return problem(StatusCode::SERVICE_UNAVAILABLE, "try again later");
            }
        }
    }
    next.run(req).await
}

fn vary_accept(response: &mut Response) {
    response
        .headers_mut()
        .append(VARY, HeaderValue::from_static("Accept"));
}

/// `GET /actor`: the instance actor (an Application), served to anyone without a signature
/// so that two instances fetching each other's keys never wait on each other.
async fn instance_actor(State(state): State<AppState>) -> Response {
    let mut response = actor(&state, &ActorPath::Instance).await;
    vary_accept(&mut response);
    response
}

/// The actor document at `path`, or a 404.
async fn actor(state: &AppState, path: &ActorPath) -> Response {
    let directory = LocalDirectory::new(state.core.clone());
    match directory.actor_at(path).await {
        Ok(Some(actor)) => {
            match convene_federation::protocol::actor::Actor::local(actor)
                .map(with_context)
                .and_then(|doc| {
                    serde_json::to_vec(&doc)
                        .map_err(|e| convene_federation::Error::BadJson(e.to_string()))
                }) {
                Ok(body) => activity_json(body),
                Err(err) => failure(&err),
            }
        }
        Ok(None) => not_found(),
        Err(err) => failure(&err),
    }
}

#[derive(serde::Deserialize)]
struct WebfingerQuery {
    resource: Option<String>,
}

/// `GET /.well-known/webfinger?resource=acct:name@domain` (or the actor's URL): the JRD of a
/// Passport, a Space or the instance actor.
async fn webfinger(
    State(state): State<AppState>,
    query: Result<Query<WebfingerQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Some(resource) = query.ok().and_then(|Query(q)| q.resource) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "the resource parameter is required",
        );
    };
    let directory = LocalDirectory::new(state.core.clone());
    let template = format!(
        "{}?uri={{uri}}",
        state.settings.url("/authorize_interaction")
    );
    match directory::webfinger_document(&directory, &resource, &state.settings.domain(), &template)
        .await
    {
        Ok(Some(jrd)) => json_response(&jrd, "application/jrd+json; charset=utf-8", true),
        Ok(None) => not_found(),
        Err(err) => failure(&err),
    }
}

/// `GET /.well-known/nodeinfo`: where the NodeInfo document is.
async fn nodeinfo_links(State(state): State<AppState>) -> Response {
    match Id::parse(&state.settings.url("")).and_then(|base| nodeinfo::Links::build(&base)) {
        Ok(links) => json_response(&links, "application/json", true),
        Err(err) => failure(&err),
    }
}

/// `GET /nodeinfo/2.1`: software, protocol, registrations and user counts.
async fn nodeinfo_document(State(state): State<AppState>) -> Response {
    let counts = sqlx::query(
        "SELECT COUNT(*) AS total, \
         SUM(CASE WHEN last_seen >= $1 THEN 1 ELSE 0 END) AS month, \
         SUM(CASE WHEN last_seen >= $2 THEN 1 ELSE 0 END) AS halfyear \
         FROM (SELECT p.id, MAX(s.created_at) AS last_seen FROM passports p \
               LEFT JOIN sessions s ON s.passport_id = p.id \
               WHERE p.domain = '' GROUP BY p.id) AS people",
    )
    .bind(state.db.now() - 30 * 86_400)
    .bind(state.db.now() - 180 * 86_400)
    .fetch_one(&state.db.pool)
    .await;
    let users = match counts {
        Ok(row) => {
            let get = |name: &str| {
                row.try_get::<Option<i64>, _>(name)
                    .ok()
                    .flatten()
                    .and_then(|n| u64::try_from(n).ok())
                    .unwrap_or(0)
            };
            Users {
                total: Some(get("total")),
                active_month: Some(get("month")),
                active_halfyear: Some(get("halfyear")),
            }
        }
        Err(err) => {
            tracing::error!(error = %err, "nodeinfo counts");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    // Anyone may sign up for a Passport (by email), so registrations are open.
    let info = NodeInfo::build(
        env!("CARGO_PKG_VERSION"),
        &state.settings.source_url,
        true,
        users,
    );
    json_response(&info, nodeinfo::CONTENT_TYPE_2_1, true)
}

/// `GET /ns/convene.jsonld`: the `convene:` terms (Room access, capacity, head count) as a
/// standalone JSON-LD context.
async fn convene_context() -> Response {
    json_response(&convene_context_document(), "application/ld+json", true)
}

/// `GET {actor}/followers`: how many follow the actor (who they are is not public).
async fn followers(State(state): State<AppState>, req: Request) -> Response {
    let Some(actor_path) = req.uri().path().strip_suffix("/followers") else {
        return not_found();
    };
    let directory = LocalDirectory::new(state.core.clone());
    let result = match Id::parse(&state.settings.url(actor_path)) {
        Ok(actor) => directory::followers_document(&directory, &actor).await,
        Err(_) => return not_found(),
    };
    match result {
        Ok(Some(collection)) => activity_document(&collection),
        Ok(None) => not_found(),
        Err(err) => failure(&err),
    }
}

/// `GET {actor}/outbox`: empty. Convene's actors publish by delivering to their followers,
/// and keep no public history of it.
async fn outbox(State(state): State<AppState>, req: Request) -> Response {
    let Some(actor_path) = req.uri().path().strip_suffix("/outbox") else {
        return not_found();
    };
    let directory = LocalDirectory::new(state.core.clone());
    let actor = match Id::parse(&state.settings.url(actor_path)) {
        Ok(actor) => actor,
        Err(_) => return not_found(),
    };
    match directory.actor_by_id(&actor).await {
        Ok(Some(_)) => match actor.with_suffix("/outbox") {
            Ok(id) => activity_document(&OrderedCollection::<Id>::with_items(id, Vec::new())),
            Err(err) => failure(&err),
        },
        Ok(None) => not_found(),
        Err(err) => failure(&err),
    }
}

fn activity_document<T: Serialize>(document: &T) -> Response {
    match serde_json::to_vec(&with_context(document)) {
        Ok(body) => activity_json(body),
        Err(err) => {
            tracing::error!(error = %err, "serialising an ActivityPub document");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

fn activity_json(body: Vec<u8>) -> Response {
    (
        [
            (CONTENT_TYPE, ACTIVITY_CONTENT_TYPE),
            (CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

fn json_response<T: Serialize>(value: &T, content_type: &'static str, cors: bool) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => {
            let mut response = (
                [(CONTENT_TYPE, content_type), (CACHE_CONTROL, "max-age=60")],
                body,
            )
                .into_response();
            if cors {
                // Discovery documents are public; web clients on other origins read them.
                response
                    .headers_mut()
                    .insert("access-control-allow-origin", HeaderValue::from_static("*"));
            }
            response
        }
        Err(err) => {
            tracing::error!(error = %err, "serialising a discovery document");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

fn not_found() -> Response {
    problem(StatusCode::NOT_FOUND, "no such actor or document here")
}

/// A federation error as its own status; storage failures are logged where they happen.
fn failure(err: &convene_federation::Error) -> Response {
    let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status.is_server_error() {
        tracing::error!(error = %err, "federation request");
        return problem(status, "the instance could not answer this request");
    }
    tracing::info!(error = %err, "federation request refused");
    problem(status, &err.to_string())
}

fn problem(status: StatusCode, detail: &str) -> Response {
    super::api::problem(
        status,
        status.canonical_reason().unwrap_or("Error"),
        detail,
        &[],
    )
}
