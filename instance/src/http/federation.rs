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

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE, ETAG, RETRY_AFTER, VARY};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use convene_federation::PartnerPolicy;
use convene_federation::directory::{self, Directory, SeenActivities};
use convene_federation::nodeinfo::{self, NodeInfo, Users};
use convene_federation::protocol::Id;
use convene_federation::protocol::activity::Activity;
use convene_federation::protocol::context::{
    ACTIVITY_CONTENT_TYPE, CONVENE_CONTEXT_PATH, convene_context_document, wants_activity_json,
    with_context,
};
use convene_federation::protocol::object::OrderedCollection;
use convene_federation::receive::{Received, authenticate, receive};
use convene_federation::signature::{AcceptReplays, InboundRequest, parse_signature};
use serde::Serialize;
use sqlx::Row;

use super::caching;
use crate::activitypub::{
    ActorPath, INSTANCE_ACTOR_PATH, LocalDirectory, RemoteActors, SHARED_INBOX_PATH, system_time,
};
use crate::app::AppState;
use crate::cache::Document;
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
    if let Some(response) = throttled(&state, &parts.headers) {
        return response;
    }
    let domain = state.settings.domain();
    let request = InboundRequest {
        method: &parts.method,
        path_and_query: parts.uri.path_and_query().map_or("/", |p| p.as_str()),
        headers: &parts.headers,
        body: &body,
        host: Some(&domain),
    };
    let keys = match RemoteActors::new(state.core.clone(), state.federation.clone()).await {
        Ok(keys) => keys,
        Err(err) => return failure(&err),
    };
    let seen = RecordedByUseCase;
    let policy = match policy_for(&state, &parts.extensions).await {
        Ok(policy) => policy,
        Err(response) => return response,
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
                Ok(follower) => core::followers::follow(&state.core, &policy, follow, &follower)
                    .await
                    .map(|_| ()),
                Err(err) => return failure(&err),
            }
        }
        Activity::Join(join) => {
            let key_id = match Id::try_from(inbound.signer.key_id.clone()) {
                Ok(id) => id,
                Err(err) => return failure(&err),
            };
            match keys.actor(&key_id, false).await {
                Ok(joiner) => core::membership::receive_join(&state.core, join, &joiner).await,
                Err(err) => return failure(&err),
            }
        }
        Activity::Invite(invitation) => {
            let key_id = match Id::try_from(inbound.signer.key_id.clone()) {
                Ok(id) => id,
                Err(err) => return failure(&err),
            };
            match keys.fetch_actor(&key_id).await {
                Ok(space) => {
                    core::membership::receive_invite(&state.core, invitation, &space).await
                }
                Err(err) => return failure(&err),
            }
        }
        Activity::Leave(leave) => {
            core::membership::receive_leave(&state.core, &leave.id, &leave.actor, &leave.object)
                .await
        }
        Activity::Undo(undo) => match undo.object.object() {
            Some(Activity::Join(join)) if join.actor == undo.actor => {
                core::membership::receive_leave(&state.core, &undo.id, &undo.actor, &join.object)
                    .await
            }
            _ => core::followers::undo_follow(&state.core, undo).await,
        },
        Activity::Accept(response)
        | Activity::TentativeAccept(response)
        | Activity::Reject(response) => {
            let answer = match &inbound.activity {
                Activity::Accept(_) => core::membership::Answer::Accept,
                Activity::TentativeAccept(_) => core::membership::Answer::TentativeAccept,
                _ => core::membership::Answer::Reject,
            };
            match core::membership::receive_answer(&state.core, answer, response).await {
                Ok(true) => Ok(()),
                // Not about a Join or Invite of ours: perhaps a Follow from here.
                Ok(false) => match &inbound.activity {
                    Activity::Accept(_) => {
                        core::network::answered(
                            &state.core,
                            &inbound.id,
                            response,
                            Answer::Accepted,
                        )
                        .await
                    }
                    Activity::Reject(_) => {
                        core::network::answered(
                            &state.core,
                            &inbound.id,
                            response,
                            Answer::Rejected,
                        )
                        .await
                    }
                    _ => core::followers::ignore(&state.core, &inbound.id).await,
                },
                Err(err) => Err(err),
            }
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

/// Takes a token from the signer's instance's bucket ([`crate::activitypub::limits`]); a 429
/// with `Retry-After` when it is empty, `None` to go on. Requests without a readable
/// signature name nobody and go on, to be refused by the signature check.
fn throttled(state: &AppState, headers: &axum::http::HeaderMap) -> Option<Response> {
    let params = parse_signature(headers).ok()?;
    let host = convene_federation::urls::authority(params.key_id()).unwrap_or_default();
    match state
        .federation
        .limits
        .take(&host, std::time::Instant::now())
    {
        Ok(()) => None,
        Err(wait) => {
            state
                .federation
                .stats
                .inbox_throttled
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(%host, "inbox rate limit reached");
            let mut response = problem(
                StatusCode::TOO_MANY_REQUESTS,
                "your instance is sending faster than this one takes; retry later",
            );
            response.headers_mut().insert(
                RETRY_AFTER,
                HeaderValue::from(crate::activitypub::limits::retry_after_secs(wait)),
            );
            Some(response)
        }
    }
}

/// The partner policy that [`refuse_blocked_signers`] read for this request, or read now (a
/// request without a readable signature, which the middleware lets through unread): one read
/// per request, so a change from the command line still applies from the next request on.
async fn policy_for(
    state: &AppState,
    extensions: &axum::http::Extensions,
) -> Result<Arc<PartnerPolicy>, Response> {
    if let Some(ReadPolicy(policy)) = extensions.get::<ReadPolicy>() {
        return Ok(policy.clone());
    }
    match core::partners::policy(&state.db).await {
        Ok(policy) => Ok(Arc::new(policy)),
        Err(err) => {
            tracing::error!(error = %err, "partner policy");
            Err(problem(StatusCode::SERVICE_UNAVAILABLE, "try again later"))
        }
    }
}

/// The partner policy as [`refuse_blocked_signers`] read it, handed to the route behind it.
#[derive(Clone)]
struct ReadPolicy(Arc<PartnerPolicy>);

/// In authorized-fetch mode, refuses a GET that is not signed by a key that checks out (401),
/// or is signed for an instance the partner policy refuses (403; those are mostly stopped
/// earlier by [`refuse_blocked_signers`]). `None`: go on.
fn refuse_unsigned<'a>(
    state: &'a AppState,
    req: &Request,
) -> impl Future<Output = Option<Response>> + Send + 'a {
    // The parts the check reads, copied apart from the body (which is not `Sync`, so a borrow
    // of the whole request could not be held across an await), and only when it is on.
    let parts = state.settings.federation_authorized_fetch.then(|| {
        (
            req.method().clone(),
            req.uri().clone(),
            req.headers().clone(),
        )
    });
    async move {
        let (method, uri, headers) = parts?;
        refuse_unsigned_parts(state, &method, &uri, &headers).await
    }
}

async fn refuse_unsigned_parts(
    state: &AppState,
    method: &Method,
    uri: &axum::http::Uri,
    headers: &axum::http::HeaderMap,
) -> Option<Response> {
    let refused = |status: StatusCode, detail: &str| {
        state
            .federation
            .stats
            .unsigned_fetches_refused
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut response = problem(status, detail);
        vary_accept(&mut response);
        Some(response)
    };
    let domain = state.settings.domain();
    let request = InboundRequest {
        method,
        path_and_query: uri.path_and_query().map_or("/", |p| p.as_str()),
        headers,
        body: b"",
        host: Some(&domain),
    };
    let keys = match RemoteActors::new(state.core.clone(), state.federation.clone()).await {
        Ok(keys) => keys,
        Err(err) => return Some(failure(&err)),
    };
    let policy = match core::partners::policy(&state.db).await {
        Ok(policy) => policy,
        Err(err) => {
            tracing::error!(error = %err, "partner policy");
            return Some(problem(StatusCode::SERVICE_UNAVAILABLE, "try again later"));
        }
    };
    // A signed GET of public data does no harm when replayed, so signatures are not
    // remembered here.
    match authenticate(
        &request,
        &keys,
        &policy,
        &AcceptReplays,
        system_time(&state.core),
    )
    .await
    {
        Ok(_) => None,
        Err(err) if err.status() == 403 => refused(StatusCode::FORBIDDEN, &err.to_string()),
        Err(err) if err.status() >= 500 => Some(failure(&err)),
        Err(err) => {
            tracing::info!(error = %err, path = %uri.path(), "unsigned fetch refused");
            refused(
                StatusCode::UNAUTHORIZED,
                &format!("this instance serves its actors to signed requests only: {err}"),
            )
        }
    }
}

/// The inbox's view of processed activity ids: it asks nothing before the use case, because
/// every use case the inbox calls records the activity's id in the same transaction as its
/// effect, and does nothing when the id was there already (a redelivery). Asking first as
/// well would cost every new activity a read to spare a redelivery its use case's reads.
struct RecordedByUseCase;

impl SeenActivities for RecordedByUseCase {
    async fn seen(&self, _activity_id: &Id) -> convene_federation::Result<bool> {
        Ok(false)
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
            if path != ActorPath::Instance
                && let Some(refused) = refuse_unsigned(&state, &req).await
            {
                return refused;
            }
            let mut response = actor(&state, req.headers(), &path).await;
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
    mut req: Request,
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
            Ok(policy) => {
                // The inbox checks the policy again with the verified signer: it reads this.
                req.extensions_mut().insert(ReadPolicy(Arc::new(policy)));
            }
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
async fn instance_actor(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let mut response = actor(&state, &headers, &ActorPath::Instance).await;
    vary_accept(&mut response);
    response
}

/// The actor document at `path`, or a 404. A Room's document carries its live head count, so
/// it is kept per count.
async fn actor(state: &AppState, headers: &HeaderMap, path: &ActorPath) -> Response {
    let key = match path {
        ActorPath::Instance => "actor /actor".to_owned(),
        ActorPath::Person(handle) => format!("actor /people/{handle}"),
        ActorPath::Space(space) => format!("actor /spaces/{space}"),
        ActorPath::Room { space, room } => {
            let inside = match state.pages.space(&state.db, space).await {
                Ok(snapshot) => snapshot
                    .rooms
                    .iter()
                    .zip(&snapshot.media_ids)
                    .find(|(r, _)| r.slug.as_str() == room)
                    .map_or(0, |(_, media_id)| state.sfu.room_presence(media_id)),
                Err(_) => 0,
            };
            format!("actor /spaces/{space}/rooms/{room} {inside}")
        }
    };
    let directory = LocalDirectory::new(state.core.clone());
    let path = path.clone();
    cached(
        state,
        headers,
        &key,
        ACTIVITY_CONTENT_TYPE,
        move || async move {
            let Some(actor) = directory.actor_at(&path).await? else {
                return Ok(None);
            };
            let document =
                convene_federation::protocol::actor::Actor::local(actor).map(with_context)?;
            serde_json::to_vec(&document)
                .map(Some)
                .map_err(|e| convene_federation::Error::BadJson(e.to_string()))
        },
    )
    .await
}

/// How a cached document may be kept elsewhere.
#[derive(Clone, Copy)]
enum Kind {
    /// An ActivityPub document: shared caches may keep it for the instance's public lifetime.
    Activity,
    /// A discovery document (WebFinger, NodeInfo): kept a minute, readable from any origin.
    Discovery,
}

/// Answers from the document cache (see [`crate::cache::PageCache::document`]): however many
/// servers ask at once, one of them loads the document. Conditional requests get a 304.
async fn cached<F, Fut>(
    state: &AppState,
    headers: &HeaderMap,
    key: &str,
    content_type: &'static str,
    load: F,
) -> Response
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = convene_federation::Result<Option<Vec<u8>>>> + Send + 'static,
{
    let kind = if content_type == ACTIVITY_CONTENT_TYPE {
        Kind::Activity
    } else {
        Kind::Discovery
    };
    let loaded = state
        .pages
        .document(key, || {
            let body = load();
            async move {
                Ok(body.await?.map(|body| Document {
                    etag: caching::etag(caching::digest(&body)),
                    body: Bytes::from(body),
                }))
            }
        })
        .await;
    let document = match loaded {
        Ok(document) => document,
        Err(err) => return failure(&err),
    };
    let Some(document) = document.as_ref() else {
        return not_found();
    };
    let mut response = if caching::not_modified(headers, &document.etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(CONTENT_TYPE, content_type)], document.body.clone()).into_response()
    };
    let response_headers = response.headers_mut();
    response_headers.insert(ETAG, document.etag.clone());
    let control = match kind {
        // With authorized fetch, only a signer may read it: no shared cache may keep it.
        Kind::Activity if state.settings.federation_authorized_fetch => {
            HeaderValue::from_static("private, no-cache")
        }
        Kind::Activity => match state.settings.public_max_age {
            0 => HeaderValue::from_static("public, no-cache"),
            age => HeaderValue::from_str(&format!("public, max-age={age}"))
                .unwrap_or_else(|_| HeaderValue::from_static("public, no-cache")),
        },
        Kind::Discovery => {
            // Discovery documents are public; web clients on other origins read them.
            response_headers.insert("access-control-allow-origin", HeaderValue::from_static("*"));
            HeaderValue::from_static("public, max-age=60")
        }
    };
    response_headers.insert(CACHE_CONTROL, control);
    response
}

#[derive(serde::Deserialize)]
struct WebfingerQuery {
    resource: Option<String>,
}

/// `GET /.well-known/webfinger?resource=acct:name@domain` (or the actor's URL): the JRD of a
/// Passport, a Space or the instance actor.
async fn webfinger(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<WebfingerQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Some(resource) = query.ok().and_then(|Query(q)| q.resource) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "the resource parameter is required",
        );
    };
    if resource.len() > 512 {
        return problem(StatusCode::BAD_REQUEST, "the resource is too long");
    }
    let directory = LocalDirectory::new(state.core.clone());
    let template = format!(
        "{}?uri={{uri}}",
        state.settings.url("/authorize_interaction")
    );
    let domain = state.settings.domain();
    let key = format!("webfinger {resource}");
    cached(
        &state,
        &headers,
        &key,
        JRD_CONTENT_TYPE,
        move || async move {
            let jrd =
                directory::webfinger_document(&directory, &resource, &domain, &template).await?;
            jrd.map(|jrd| serde_json::to_vec(&jrd))
                .transpose()
                .map_err(|e| convene_federation::Error::BadJson(e.to_string()))
        },
    )
    .await
}

const JRD_CONTENT_TYPE: &str = "application/jrd+json; charset=utf-8";

/// `GET /.well-known/nodeinfo`: where the NodeInfo document is.
async fn nodeinfo_links(State(state): State<AppState>) -> Response {
    match Id::parse(&state.settings.url("")).and_then(|base| nodeinfo::Links::build(&base)) {
        Ok(links) => json_response(&links, "application/json", true),
        Err(err) => failure(&err),
    }
}

/// `GET /nodeinfo/2.1`: software, protocol, registrations and user counts.
async fn nodeinfo_document(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let core = state.core.clone();
    cached(
        &state,
        &headers,
        "nodeinfo",
        nodeinfo::CONTENT_TYPE_2_1,
        move || async move {
            let users = user_counts(&core).await.map_err(|err| {
                tracing::error!(error = %err, "nodeinfo counts");
                convene_federation::Error::Directory("storage".into())
            })?;
            // Anyone may sign up for a Passport (by email), so registrations are open.
            let info = NodeInfo::build(
                env!("CARGO_PKG_VERSION"),
                &core.settings.source_url,
                true,
                users,
            );
            serde_json::to_vec(&info)
                .map(Some)
                .map_err(|e| convene_federation::Error::BadJson(e.to_string()))
        },
    )
    .await
}

/// Local Passports: all, and those signed in within the last month and half year.
async fn user_counts(core: &core::Core) -> Result<Users, sqlx::Error> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS total, \
         SUM(CASE WHEN last_seen >= $1 THEN 1 ELSE 0 END) AS month, \
         SUM(CASE WHEN last_seen >= $2 THEN 1 ELSE 0 END) AS halfyear \
         FROM (SELECT p.id, MAX(s.created_at) AS last_seen FROM passports p \
               LEFT JOIN sessions s ON s.passport_id = p.id \
               WHERE p.domain = '' GROUP BY p.id) AS people",
    )
    .bind(core.db.now() - 30 * 86_400)
    .bind(core.db.now() - 180 * 86_400)
    .fetch_one(&core.db.pool)
    .await?;
    let get = |name: &str| {
        row.try_get::<Option<i64>, _>(name)
            .ok()
            .flatten()
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(0)
    };
    Ok(Users {
        total: Some(get("total")),
        active_month: Some(get("month")),
        active_halfyear: Some(get("halfyear")),
    })
}

/// `GET /ns/convene.jsonld`: the `convene:` terms (Room access, capacity, head count) as a
/// standalone JSON-LD context.
async fn convene_context() -> Response {
    json_response(&convene_context_document(), "application/ld+json", true)
}

/// `GET {actor}/followers`: how many follow the actor (who they are is not public).
async fn followers(State(state): State<AppState>, req: Request) -> Response {
    if let Some(refused) = refuse_unsigned(&state, &req).await {
        return refused;
    }
    let Some(actor_path) = req.uri().path().strip_suffix("/followers") else {
        return not_found();
    };
    let Ok(actor) = Id::parse(&state.settings.url(actor_path)) else {
        return not_found();
    };
    let directory = LocalDirectory::new(state.core.clone());
    let key = format!("followers {actor_path}");
    cached(
        &state,
        req.headers(),
        &key,
        ACTIVITY_CONTENT_TYPE,
        move || async move {
            directory::followers_document(&directory, &actor)
                .await?
                .map(|collection| activity_bytes(&collection))
                .transpose()
        },
    )
    .await
}

/// `GET {actor}/outbox`: empty. Convene's actors publish by delivering to their followers,
/// and keep no public history of it.
async fn outbox(State(state): State<AppState>, req: Request) -> Response {
    if let Some(refused) = refuse_unsigned(&state, &req).await {
        return refused;
    }
    let Some(actor_path) = req.uri().path().strip_suffix("/outbox") else {
        return not_found();
    };
    let Ok(actor) = Id::parse(&state.settings.url(actor_path)) else {
        return not_found();
    };
    let directory = LocalDirectory::new(state.core.clone());
    let key = format!("outbox {actor_path}");
    cached(
        &state,
        req.headers(),
        &key,
        ACTIVITY_CONTENT_TYPE,
        move || async move {
            if directory.actor_by_id(&actor).await?.is_none() {
                return Ok(None);
            }
            let id = actor.with_suffix("/outbox")?;
            activity_bytes(&OrderedCollection::<Id>::with_items(id, Vec::new())).map(Some)
        },
    )
    .await
}

fn activity_bytes<T: Serialize>(document: &T) -> convene_federation::Result<Vec<u8>> {
    serde_json::to_vec(&with_context(document))
        .map_err(|e| convene_federation::Error::BadJson(e.to_string()))
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
pub(super) fn failure(err: &convene_federation::Error) -> Response {
    let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status.is_server_error() {
        tracing::error!(error = %err, "federation request");
        return problem(status, "the instance could not answer this request");
    }
    tracing::info!(error = %err, "federation request refused");
    problem(status, &err.to_string())
}

pub(super) fn problem(status: StatusCode, detail: &str) -> Response {
    super::api::problem(
        status,
        status.canonical_reason().unwrap_or("Error"),
        detail,
        &[],
    )
}
