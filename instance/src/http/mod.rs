//! HTTP: the router and the layers every request passes.
//!
//! Two families of routes share one router: server-rendered pages (behind [`html_layer`]:
//! browser id cookie, CSRF check on every unsafe method, friendly error pages) and the JSON API
//! under `/api/v1` (behind [`api::problem_layer`]: bearer tokens, `application/problem+json`).

pub mod admission;
pub mod api;
pub mod caching;
pub mod client;
pub mod error;
pub mod federation;
mod openapi;
pub mod pages;
pub mod visitor;

use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower_http::trace::TraceLayer;

use crate::app::AppState;
use crate::error::AppError;
use error::ErrorInfo;
use visitor::{BROWSER_COOKIE, BrowserId, FLASH_COOKIE};

/// Largest form body a page accepts.
pub const FORM_LIMIT: usize = 64 * 1024;
/// Largest JSON body the API accepts.
pub const API_LIMIT: usize = 256 * 1024;

pub fn router(state: AppState) -> Router {
    let html = pages::routes()
        .layer(middleware::from_fn_with_state(state.clone(), html_layer))
        .layer(DefaultBodyLimit::max(FORM_LIMIT));
    let api = api::routes()
        .layer(middleware::from_fn(api::problem_layer))
        .layer(DefaultBodyLimit::max(API_LIMIT));
    Router::new()
        .merge(html)
        .nest("/api/v1", api)
        .merge(federation::routes())
        .merge(admission::routes())
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/static/style.css", get(style))
        .route("/static/favicon.svg", get(favicon))
        .route("/static/icons.svg", get(icons))
        .route("/static/room.js", get(room_js))
        .route("/static/room.css", get(room_css))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            federation::negotiate,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            federation::refuse_blocked_signers,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// `GET /healthz`: 200 when the database answers.
async fn healthz(State(state): State<AppState>) -> Response {
    match sqlx::query("SELECT 1 AS one")
        .fetch_one(&state.db.pool)
        .await
    {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(err) => {
            tracing::error!(error = %err, "health check");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n").into_response()
        }
    }
}

/// `GET /metrics`: Prometheus text format, for clients on this machine or with the configured
/// bearer token (counts of people and queues are nobody else's business).
async fn metrics(
    State(state): State<AppState>,
    client: client::ClientAddr,
    headers: axum::http::HeaderMap,
) -> Response {
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let allowed = match (&state.settings.metrics_token, bearer) {
        (Some(token), Some(given)) => crate::domain::constant_time_eq(token, given),
        _ => client.0.is_loopback(),
    };
    if !allowed {
        return (
            StatusCode::FORBIDDEN,
            [(CACHE_CONTROL, "no-store")],
            "metrics are served to this machine or with the metrics token\n",
        )
            .into_response();
    }
    let outbox = state.mailer.depth().await.unwrap_or(-1);
    let m = &state.metrics;
    let media = state.sfu.metrics();
    let body = format!(
        "# HELP convene_http_requests_total HTTP requests served.\n\
         # TYPE convene_http_requests_total counter\n\
         convene_http_requests_total {}\n\
         # HELP convene_http_errors_total HTTP responses with a 5xx status.\n\
         # TYPE convene_http_errors_total counter\n\
         convene_http_errors_total {}\n\
         # HELP convene_email_outbox_depth Emails queued or retrying.\n\
         # TYPE convene_email_outbox_depth gauge\n\
         convene_email_outbox_depth {outbox}\n\
         # HELP convene_gatherings Rooms with people in them now.\n\
         # TYPE convene_gatherings gauge\n\
         convene_gatherings {}\n\
         # HELP convene_participants People connected to the SFU now.\n\
         # TYPE convene_participants gauge\n\
         convene_participants {}\n\
         # HELP convene_published_tracks Tracks being published now.\n\
         # TYPE convene_published_tracks gauge\n\
         convene_published_tracks {}\n\
         # HELP convene_forwarded_packets_total RTP packets forwarded to subscribers.\n\
         # TYPE convene_forwarded_packets_total counter\n\
         convene_forwarded_packets_total {}\n\
         # HELP convene_forwarded_bytes_total RTP payload bytes forwarded to subscribers.\n\
         # TYPE convene_forwarded_bytes_total counter\n\
         convene_forwarded_bytes_total {}\n\
         # HELP convene_dropped_packets_total RTP packets not forwarded (full queues and the like).\n\
         # TYPE convene_dropped_packets_total counter\n\
         convene_dropped_packets_total {}\n\
         # HELP convene_keyframe_requests_total Keyframe requests relayed to publishers.\n\
         # TYPE convene_keyframe_requests_total counter\n\
         convene_keyframe_requests_total {}\n\
         # HELP convene_joins_refused_total Joins refused (bad or spent token, access lost, full or ended Room).\n\
         # TYPE convene_joins_refused_total counter\n\
         convene_joins_refused_total {}\n\
         # HELP convene_media_room_failures_total Rooms whose media panicked and was restarted.\n\
         # TYPE convene_media_room_failures_total counter\n\
         convene_media_room_failures_total {}\n",
        m.requests.load(Ordering::Relaxed),
        m.errors.load(Ordering::Relaxed),
        media.gatherings,
        media.participants,
        media.published_tracks,
        media.packets_forwarded,
        media.bytes_forwarded,
        media.packets_dropped,
        media.keyframe_requests,
        media.joins_refused + m.joins_refused.load(Ordering::Relaxed),
        media.room_failures,
    );
    let body =
        body + &state.pages.metrics() + &state.db.metrics() + &state.db.group_commit().metrics();
    let mut body = body;
    body.push_str(&format!(
        "# HELP convene_gatherings_held Gatherings this process holds for the processes sharing its database.\n\
         # TYPE convene_gatherings_held gauge\n\
         convene_gatherings_held {}\n",
        crate::core::gathering::claimed_here(&state.core)
            .await
            .unwrap_or(-1)
    ));
    let fed = &state.federation.stats;
    body.push_str(&format!(
        "# HELP convene_federation_actor_fetches_total Remote actor documents fetched (the rest come from the stored copies).\n\
         # TYPE convene_federation_actor_fetches_total counter\n\
         convene_federation_actor_fetches_total {}\n",
        fed.actor_fetches.load(Ordering::Relaxed),
    ));
    body.push_str(&format!(
        "# HELP convene_federation_unsigned_fetches_refused_total GETs refused in authorized-fetch mode for want of a valid signature.\n\
         # TYPE convene_federation_unsigned_fetches_refused_total counter\n\
         convene_federation_unsigned_fetches_refused_total {}\n",
        fed.unsigned_fetches_refused.load(Ordering::Relaxed),
    ));
    body.push_str(&format!(
        "# HELP convene_federation_inbox_throttled_total Inbox deliveries refused with 429 by the per-instance rate limit.\n\
         # TYPE convene_federation_inbox_throttled_total counter\n\
         convene_federation_inbox_throttled_total {}\n",
        fed.inbox_throttled.load(Ordering::Relaxed),
    ));
    body.push_str(
        "# HELP convene_jobs Jobs in the durable queue, by kind (mail, deliveries) and state.\n\
         # TYPE convene_jobs gauge\n",
    );
    for (kind, job_state, n) in crate::jobs::status::counts(&state.db)
        .await
        .unwrap_or_default()
    {
        body.push_str(&format!(
            "convene_jobs{{kind=\"{kind}\",state=\"{job_state}\"}} {n}\n"
        ));
    }
    body.push_str(&format!(
        "# HELP convene_media_layer_switches_total Simulcast layer switches (a subscriber's video starting, stopping or changing layer).\n\
         # TYPE convene_media_layer_switches_total counter\n\
         convene_media_layer_switches_total {}\n\
         # HELP convene_media_duplicate_packets_total Packets that arrived a second time (a publisher probing its uplink with retransmissions) and were not forwarded.\n\
         # TYPE convene_media_duplicate_packets_total counter\n\
         convene_media_duplicate_packets_total {}\n\
         # HELP convene_media_downlink_estimate_bps Each participant's estimated downlink (send-side, from transport-wide congestion control feedback).\n\
         # TYPE convene_media_downlink_estimate_bps gauge\n",
        media.layer_switches,
        media.duplicates
    ));
    body.push_str(
        "# HELP convene_media_participants_by_quality Participants by the connection quality last measured for them (good, fair, poor, lost).\n\
         # TYPE convene_media_participants_by_quality gauge\n",
    );
    for (level, n) in convene_media::Metrics::QUALITY_LEVELS
        .iter()
        .zip(media.quality)
    {
        body.push_str(&format!(
            "convene_media_participants_by_quality{{level=\"{}\"}} {n}\n",
            level.as_str()
        ));
    }
    for e in state.sfu.downlink_estimates() {
        body.push_str(&format!(
            "convene_media_downlink_estimate_bps{{room=\"{}\",participant=\"{}\"}} {}\n",
            label_value(&e.room),
            label_value(&e.participant),
            e.bits_per_second
        ));
    }
    ([(CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// A Prometheus label value: backslash, double quote and newline escaped.
fn label_value(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

async fn style() -> Response {
    (
        [
            (CONTENT_TYPE, "text/css; charset=utf-8"),
            (CACHE_CONTROL, "public, max-age=3600"),
        ],
        convene_web::assets::STYLE_CSS,
    )
        .into_response()
}

/// `GET /static/room.js`: the Room page's client. Its URL carries no version, so browsers
/// revalidate it and a new release reaches them at once.
async fn room_js() -> Response {
    (
        [
            (CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (CACHE_CONTROL, "no-cache"),
        ],
        convene_web::assets::ROOM_JS,
    )
        .into_response()
}

/// `GET /static/room.css`: the in-room stylesheet.
async fn room_css() -> Response {
    (
        [
            (CONTENT_TYPE, "text/css; charset=utf-8"),
            (CACHE_CONTROL, "public, max-age=3600"),
        ],
        convene_web::assets::ROOM_CSS,
    )
        .into_response()
}

/// `GET /static/icons.svg`: the icon sprite; pages ask for it by version, so it never changes.
async fn icons() -> Response {
    (
        [
            (CONTENT_TYPE, "image/svg+xml"),
            (CACHE_CONTROL, convene_web::assets::IMMUTABLE_CACHE_CONTROL),
        ],
        convene_web::assets::ICONS_SVG,
    )
        .into_response()
}

async fn favicon() -> Response {
    (
        [
            (CONTENT_TYPE, "image/svg+xml"),
            (CACHE_CONTROL, "public, max-age=86400"),
        ],
        convene_web::assets::FAVICON_SVG,
    )
        .into_response()
}

async fn count_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    state.metrics.requests.fetch_add(1, Ordering::Relaxed);
    let response = next.run(req).await;
    if response.status().is_server_error() {
        state.metrics.errors.fetch_add(1, Ordering::Relaxed);
    }
    response
}

/// The layer around every page: gives each browser an id, checks the CSRF token of every
/// unsafe request, turns errors into pages and sends unauthenticated visitors to sign in.
async fn html_layer(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let secure = state.settings.secure_cookies();
    let existing = visitor::cookie(req.headers(), BROWSER_COOKIE);
    let minted = existing.is_none().then(crate::domain::random_token);
    let bid = existing.or_else(|| minted.clone()).unwrap_or_default();
    req.extensions_mut().insert(BrowserId(bid.clone()));
    let had_flash = visitor::cookie(req.headers(), FLASH_COOKIE).is_some();
    // Scripts on our pages (the room client) ask for JSON and get problem+json errors.
    let wants_json = req
        .headers()
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let session_cookie = visitor::cookie(req.headers(), visitor::SESSION_COOKIE);
    let uri = req.uri().clone();

    let mut response = if is_safe(req.method()) {
        next.run(req).await
    } else if req.method() != Method::POST {
        // Pages speak GET and POST only; anything else never reaches a handler.
        StatusCode::METHOD_NOT_ALLOWED.into_response()
    } else {
        match check_csrf(&state, &bid, req).await {
            Ok(req) => next.run(req).await,
            Err(err) => err.into_response(),
        }
    };

    let status = response.status();
    let info = response.extensions().get::<ErrorInfo>().cloned();
    if wants_json && (status.is_client_error() || status.is_server_error()) {
        let info = match info {
            Some(info) => info,
            None => rejection_info(response).await,
        };
        response = api::problem(info.status, &info.title, &info.detail, &info.errors);
    } else if status == StatusCode::UNAUTHORIZED {
        let here = uri.path_and_query().map_or("/", |p| p.as_str());
        response = redirect(&convene_web::routes::signin_then(here));
    } else if info.is_some()
        || (status.is_client_error() || status.is_server_error()) && !is_html(&response)
    {
        let info = match info {
            Some(info) => info,
            None => rejection_info(response).await,
        };
        response = pages::error_page(&state, session_cookie.as_deref(), &bid, &info).await;
    }
    security_headers(response.headers_mut());
    // A page shared through caches must not hand one browser id to everyone; such a page
    // holds no CSRF token, so the browser gets its id on the first page that needs one.
    if let Some(bid) = minted.filter(|_| !caching::is_public(response.headers())) {
        visitor::append_cookie(
            response.headers_mut(),
            visitor::set_cookie(BROWSER_COOKIE, &bid, Some(400 * 24 * 3600), secure),
        );
    }
    if had_flash && status.is_success() {
        visitor::append_cookie(
            response.headers_mut(),
            visitor::set_cookie(FLASH_COOKIE, "", Some(0), secure),
        );
    }
    caching::default_policy(response.headers_mut());
    response
}

/// What every page may load and do: only this instance's own scripts, styles and connections
/// (the pages carry no inline script or style), never framed by another site.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; media-src 'self' blob: mediastream:; connect-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// [`CONTENT_SECURITY_POLICY`] for a page with a form answered by a redirect to another
/// instance (a Room's "Join with your Passport from another instance", the visit page's "Join"):
/// browsers hold the redirect's target to `form-action` too, so `'self'` alone blocks it.
/// `targets` are CSP sources such as an origin (`https://b.example`) or a scheme (`https:`).
pub fn allow_form_targets(headers: &mut axum::http::HeaderMap, targets: &[&str]) {
    let policy = CONTENT_SECURITY_POLICY.replace(
        "form-action 'self'",
        &format!("form-action 'self' {}", targets.join(" ")),
    );
    if let Ok(value) = HeaderValue::from_str(&policy) {
        headers.insert("content-security-policy", value);
    }
}

/// Adds the pages' security headers, leaving any a handler chose itself (a ballot page's
/// stricter referrer policy, say).
fn security_headers(headers: &mut axum::http::HeaderMap) {
    for (name, value) in [
        ("content-security-policy", CONTENT_SECURITY_POLICY),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "same-origin"),
    ] {
        if !headers.contains_key(name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn is_html(response: &Response) -> bool {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"))
}

/// How much of an oversized form is read and thrown away before answering, so that the
/// browser, still sending, gets the "too large" page instead of a reset connection.
const DRAIN_LIMIT: usize = 1024 * 1024;

/// Reads a form body of at most [`FORM_LIMIT`] bytes.
async fn read_form(body: Body) -> Result<axum::body::Bytes, AppError> {
    use futures_util::StreamExt;
    let too_large = || AppError::BadRequest("The form is too large (at most 64 KiB).".into());
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::new();
    let mut seen = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|_| AppError::BadRequest("The form could not be read.".into()))?;
        seen += chunk.len();
        if seen <= FORM_LIMIT {
            bytes.extend_from_slice(&chunk);
        } else if seen > DRAIN_LIMIT {
            return Err(too_large());
        }
    }
    if seen > FORM_LIMIT {
        return Err(too_large());
    }
    Ok(bytes.into())
}

/// Reads the body (bounded), checks its `csrf` field (or the `x-csrf-token` header), and gives
/// the request back with the body intact.
async fn check_csrf(state: &AppState, bid: &str, req: Request) -> Result<Request, AppError> {
    let (parts, body) = req.into_parts();
    let bytes = read_form(body).await?;
    let submitted = parts
        .headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| {
            url::form_urlencoded::parse(&bytes)
                .find(|(k, _)| k == "csrf")
                .map(|(_, v)| v.into_owned())
        })
        .unwrap_or_default();
    if !visitor::csrf_valid(&state.csrf_key, bid, &submitted) {
        return Err(AppError::Csrf);
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// Describes one of axum's own rejections (a malformed form, a wrong method, an unknown route).
async fn rejection_info(response: Response) -> ErrorInfo {
    let status = response.status();
    let text = to_bytes(response.into_body(), 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let (title, detail) = match status {
        StatusCode::NOT_FOUND => (
            "Not found",
            "There is nothing here, or it is not yours to see.".to_string(),
        ),
        StatusCode::METHOD_NOT_ALLOWED => (
            "Not allowed",
            "That address does not accept this kind of request.".to_string(),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "Too large",
            "What you sent is larger than this instance accepts.".to_string(),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "Unsupported form",
            "Send the form as a normal web form.".to_string(),
        ),
        s if s.is_client_error() => (
            "Please check the form",
            format!("The form could not be read: {}", text.trim()),
        ),
        _ => (
            "Something went wrong",
            "An unexpected error happened on our side; please try again.".to_string(),
        ),
    };
    ErrorInfo {
        status,
        title: title.to_string(),
        detail,
        errors: Vec::new(),
        retry_after: None,
    }
}

/// A 303 See Other to `to` (after a form post).
pub fn redirect(to: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(to) {
        response.headers_mut().insert(LOCATION, value);
    }
    response
}
