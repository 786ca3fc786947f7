//! The JSON API under `/api/v1`: the same Spaces, Rooms and members as the pages, for scripts.
//!
//! Authentication is a personal access token (`Authorization: Bearer cvn_…`) created on the
//! account page; reads of public data work without one. Errors are
//! `application/problem+json` (RFC 9457) with an `errors` list for field problems.

use axum::body::to_bytes;
use axum::extract::{FromRef, FromRequestParts, Path, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ErrorInfo;
use crate::app::AppState;
use crate::core::{self, Actor};
use crate::domain::invitations;
use crate::domain::passports::{self, Passport};
use crate::domain::rooms::{self, Access, Room, RoomFields};
use crate::domain::spaces::{self, Role, Space, SpaceFields};
use crate::domain::values::{self, AccessCode, DisplayName, Email, Handle, Slug};
use crate::error::{AppError, FieldError, Result};
use convene_web::routes;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/me", get(me))
        .route("/spaces", get(list_spaces).post(create_space))
        .route("/spaces/{space}", get(get_space).patch(update_space))
        .route("/spaces/{space}/rooms", get(list_rooms).post(create_room))
        .route(
            "/spaces/{space}/rooms/{room}",
            get(get_room).patch(update_room).delete(delete_room),
        )
        .route("/spaces/{space}/members", get(list_members))
        .route("/spaces/{space}/members/{handle}", delete(remove_member))
        .route(
            "/spaces/{space}/invitations",
            get(list_invitations).post(invite),
        )
        .route(
            "/spaces/{space}/invitations/{id}",
            delete(revoke_invitation),
        )
        .fallback(|| async { AppError::NotFound })
}

/// The caller: the Passport behind a bearer token, if one was given.
pub struct ApiCaller(pub Option<Passport>);

impl ApiCaller {
    fn require(&self) -> Result<&Passport> {
        self.0.as_ref().ok_or(AppError::Unauthenticated)
    }
}

impl<S> FromRequestParts<S> for ApiCaller
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let Some(header) = parts.headers.get(AUTHORIZATION) else {
            return Ok(Self(None));
        };
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or(AppError::Unauthenticated)?;
        match crate::domain::auth::passport_for_api_token(&state.db, token).await? {
            Some(passport) => Ok(Self(Some(passport))),
            None => Err(AppError::Unauthenticated),
        }
    }
}

/// Renders every error of the API as `application/problem+json`.
pub async fn problem_layer(req: Request, next: Next) -> Response {
    let mut response = api_problem(next.run(req).await).await;
    // API answers are personal (tokens, members, codes): never stored by a cache, never
    // sniffed into another type.
    let headers = response.headers_mut();
    headers.insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    headers.insert(
        "x-content-type-options",
        axum::http::HeaderValue::from_static("nosniff"),
    );
    response
}

/// Turns an error response into `application/problem+json`.
async fn api_problem(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let info = response.extensions().get::<ErrorInfo>().cloned();
    let retry_after = response.headers().get("retry-after").cloned();
    let (title, detail, errors) = match info {
        Some(info) => (info.title, info.detail, info.errors),
        None => {
            let text = to_bytes(response.into_body(), 4096)
                .await
                .map(|b| String::from_utf8_lossy(&b).trim().to_string())
                .unwrap_or_default();
            let title = status.canonical_reason().unwrap_or("Error").to_string();
            let detail = if status == StatusCode::NOT_FOUND {
                "No such resource.".to_string()
            } else if text.is_empty() {
                title.clone()
            } else {
                text
            };
            (title, detail, Vec::new())
        }
    };
    let mut out = problem(status, &title, &detail, &errors);
    if let Some(v) = retry_after {
        out.headers_mut().insert("retry-after", v);
    }
    out
}

/// An `application/problem+json` response (RFC 9457).
pub fn problem(status: StatusCode, title: &str, detail: &str, errors: &[FieldError]) -> Response {
    let body = json!({
        "type": "about:blank",
        "title": title,
        "status": status.as_u16(),
        "detail": detail,
        "errors": errors,
    });
    let mut out = (status, Json(body)).into_response();
    out.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    if status == StatusCode::UNAUTHORIZED {
        out.headers_mut().insert(
            "www-authenticate",
            HeaderValue::from_static("Bearer realm=\"convene\""),
        );
    }
    out
}

fn passport_json(state: &AppState, p: &Passport) -> Value {
    json!({
        "handle": p.handle,
        "address": p.address(&state.settings.domain()),
        "display_name": p.display_name,
        "is_operator": p.is_operator,
    })
}

fn space_json(state: &AppState, s: &Space) -> Value {
    json!({
        "slug": s.slug,
        "name": s.name,
        "description": s.description,
        "listed": s.listed,
        "url": state.settings.url(&routes::space(s.slug.as_str())),
        "created_at": s.created_at,
    })
}

fn room_json(state: &AppState, space: &Space, r: &Room, show_code: bool) -> Value {
    let mut v = json!({
        "slug": r.slug,
        "space": space.slug,
        "name": r.name,
        "topic": r.topic,
        "access": r.access,
        "listed": r.listed,
        "capacity": r.capacity,
        "url": state
            .settings
            .url(&routes::room(space.slug.as_str(), r.slug.as_str())),
        "is_entrance": space.entrance_room_id == Some(r.id),
        "created_at": r.created_at,
    });
    if show_code && let (Some(code), Some(obj)) = (&r.access_code, v.as_object_mut()) {
        obj.insert("access_code".into(), json!(code));
    }
    v
}

/// `GET /api/v1/me`
async fn me(State(state): State<AppState>, caller: ApiCaller) -> Result<Json<Value>> {
    let p = caller.require()?;
    let spaces = spaces::memberships(&state.db, p).await?;
    let mut body = passport_json(&state, p);
    if let Some(obj) = body.as_object_mut() {
        obj.insert(
            "spaces".into(),
            spaces
                .iter()
                .map(|(s, role)| json!({"slug": s.slug, "name": s.name, "role": role}))
                .collect(),
        );
    }
    Ok(Json(body))
}

/// `GET /api/v1/spaces`: listed Spaces and the caller's own.
async fn list_spaces(State(state): State<AppState>, caller: ApiCaller) -> Result<Json<Value>> {
    let list = spaces::directory(&state.db, caller.0.as_ref()).await?;
    Ok(Json(json!({
        "spaces": list.iter().map(|s| {
            let mut v = space_json(&state, &s.space);
            if let Some(obj) = v.as_object_mut() {
                obj.insert("members".into(), json!(s.members));
            }
            v
        }).collect::<Vec<_>>()
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SpaceBody {
    slug: Option<String>,
    name: Option<String>,
    description: Option<String>,
    listed: Option<bool>,
    entrance_room: Option<String>,
}

fn collect<T>(
    errors: &mut Vec<FieldError>,
    field: &'static str,
    r: std::result::Result<T, values::Invalid>,
) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            errors.push(FieldError {
                field,
                message: e.0.to_string(),
            });
            None
        }
    }
}

/// `POST /api/v1/spaces`
async fn create_space(
    State(state): State<AppState>,
    caller: ApiCaller,
    Json(body): Json<SpaceBody>,
) -> Result<Response> {
    let p = caller.require()?;
    if !spaces::may_create(p, state.settings.open_space_creation) {
        return Err(AppError::Forbidden(
            "Only operators may create Spaces on this instance.",
        ));
    }
    let mut errors = Vec::new();
    let name = collect(
        &mut errors,
        "name",
        DisplayName::parse(body.name.as_deref().unwrap_or("")),
    );
    let slug_input = body
        .slug
        .clone()
        .unwrap_or_else(|| Slug::suggest(body.name.as_deref().unwrap_or("")));
    let slug = collect(&mut errors, "slug", Slug::parse(&slug_input));
    let description = collect(
        &mut errors,
        "description",
        values::parse_text(body.description.as_deref().unwrap_or(""), 2000),
    );
    let (Some(name), Some(slug), Some(description)) = (name, slug, description) else {
        return Err(AppError::Invalid(errors));
    };
    let space = core::spaces::create(
        &state.core,
        Actor::Person(p),
        p,
        &slug,
        &SpaceFields {
            name,
            description,
            listed: body.listed.unwrap_or(true),
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(space_json(&state, &space))).into_response())
}

/// Loads a Space the caller may see (unlisted Spaces are seen by link, like pages).
async fn load_space(state: &AppState, slug: &str) -> Result<Space> {
    spaces::by_slug(&state.db, slug).await
}

/// `GET /api/v1/spaces/{space}`
async fn get_space(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(slug): Path<String>,
) -> Result<Json<Value>> {
    let space = load_space(&state, &slug).await?;
    let member = spaces::is_member(&state.db, &space, caller.0.as_ref()).await?;
    let rooms = rooms::visible(&state.db, &space, member).await?;
    let mut v = space_json(&state, &space);
    if let Some(obj) = v.as_object_mut() {
        obj.insert(
            "rooms".into(),
            rooms
                .iter()
                .map(|r| room_json(&state, &space, r, member))
                .collect(),
        );
        obj.insert(
            "your_role".into(),
            json!(spaces::role(&state.db, &space, caller.0.as_ref()).await?),
        );
    }
    Ok(Json(v))
}

/// `PATCH /api/v1/spaces/{space}` (owners)
async fn update_space(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(slug): Path<String>,
    Json(body): Json<SpaceBody>,
) -> Result<Json<Value>> {
    let p = caller.require()?;
    let space = load_space(&state, &slug).await?;
    spaces::require_owner(&state.db, &space, p).await?;
    if body
        .slug
        .as_deref()
        .is_some_and(|s| s != space.slug.as_str())
    {
        return Err(AppError::invalid(
            "slug",
            "A Space's address cannot be changed.",
        ));
    }
    let mut errors = Vec::new();
    let name = match &body.name {
        Some(n) => collect(&mut errors, "name", DisplayName::parse(n)),
        None => Some(space.name.clone()),
    };
    let description = match &body.description {
        Some(d) => collect(&mut errors, "description", values::parse_text(d, 2000)),
        None => Some(space.description.clone()),
    };
    let (Some(name), Some(description)) = (name, description) else {
        return Err(AppError::Invalid(errors));
    };
    let entrance = match &body.entrance_room {
        Some(r) if r.is_empty() => None,
        Some(r) => Some(
            rooms::by_slug(&state.db, &space, r)
                .await
                .map_err(|_| AppError::invalid("entrance_room", "No such Room in this Space."))?
                .id,
        ),
        None => space.entrance_room_id,
    };
    let fields = SpaceFields {
        name,
        description,
        listed: body.listed.unwrap_or(space.listed),
    };
    core::spaces::update(&state.core, Actor::Person(p), &space, &fields, entrance).await?;
    let space = load_space(&state, &slug).await?;
    Ok(Json(space_json(&state, &space)))
}

/// `GET /api/v1/spaces/{space}/rooms`
async fn list_rooms(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(slug): Path<String>,
) -> Result<Json<Value>> {
    let space = load_space(&state, &slug).await?;
    let member = spaces::is_member(&state.db, &space, caller.0.as_ref()).await?;
    let rooms = rooms::visible(&state.db, &space, member).await?;
    Ok(Json(json!({
        "rooms": rooms.iter().map(|r| room_json(&state, &space, r, member)).collect::<Vec<_>>()
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RoomBody {
    slug: Option<String>,
    name: Option<String>,
    topic: Option<String>,
    access: Option<String>,
    access_code: Option<String>,
    listed: Option<bool>,
    capacity: Option<i64>,
}

fn room_fields(body: &RoomBody, current: Option<&Room>) -> Result<RoomFields> {
    let mut errors = Vec::new();
    let name = match (&body.name, current) {
        (Some(n), _) => collect(&mut errors, "name", DisplayName::parse(n)),
        (None, Some(r)) => Some(r.name.clone()),
        (None, None) => collect(&mut errors, "name", DisplayName::parse("")),
    };
    let topic = match (&body.topic, current) {
        (Some(t), _) => collect(&mut errors, "topic", values::parse_text(t, 300)),
        (None, Some(r)) => Some(r.topic.clone()),
        (None, None) => Some(String::new()),
    };
    let access = match (&body.access, current) {
        (Some(a), _) => match Access::parse(a) {
            Ok(a) => Some(a),
            Err(_) => {
                errors.push(FieldError {
                    field: "access",
                    message: "Choose open, members or locked.".into(),
                });
                None
            }
        },
        (None, Some(r)) => Some(r.access),
        (None, None) => Some(Access::Open),
    };
    let access_code = match (&body.access_code, current) {
        (Some(c), _) => collect(&mut errors, "access_code", AccessCode::parse(c)).map(Some),
        (None, Some(r)) => Some(r.access_code.clone()),
        (None, None) => Some(None),
    };
    let (Some(name), Some(topic), Some(access), Some(access_code)) =
        (name, topic, access, access_code)
    else {
        return Err(AppError::Invalid(errors));
    };
    let fields = RoomFields {
        name,
        topic,
        access,
        access_code,
        listed: body.listed.or(current.map(|r| r.listed)).unwrap_or(true),
        capacity: body
            .capacity
            .or(current.map(|r| r.capacity))
            .unwrap_or(rooms::DEFAULT_CAPACITY),
    };
    fields.check()?;
    Ok(fields)
}

/// `POST /api/v1/spaces/{space}/rooms` (members)
async fn create_room(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(slug): Path<String>,
    Json(body): Json<RoomBody>,
) -> Result<Response> {
    let p = caller.require()?;
    let space = load_space(&state, &slug).await?;
    spaces::require_member(&state.db, &space, p).await?;
    let room_slug = Slug::parse(
        &body
            .slug
            .clone()
            .unwrap_or_else(|| Slug::suggest(body.name.as_deref().unwrap_or(""))),
    )
    .map_err(|e| AppError::invalid("slug", e.0))?;
    let fields = room_fields(&body, None)?;
    let room =
        core::rooms::create(&state.core, Actor::Person(p), &space, &room_slug, &fields).await?;
    let space = load_space(&state, &slug).await?;
    Ok((
        StatusCode::CREATED,
        Json(room_json(&state, &space, &room, true)),
    )
        .into_response())
}

/// Loads a Room as the caller may see it: members-only Rooms are 404 to non-members.
async fn load_room(
    state: &AppState,
    caller: &ApiCaller,
    space: &str,
    room: &str,
) -> Result<(Space, Room, bool)> {
    let space = load_space(state, space).await?;
    let member = spaces::is_member(&state.db, &space, caller.0.as_ref()).await?;
    let room = rooms::by_slug(&state.db, &space, room).await?;
    rooms::entry(&room, member, false)?;
    Ok((space, room, member))
}

/// `GET /api/v1/spaces/{space}/rooms/{room}`
async fn get_room(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path((space, room)): Path<(String, String)>,
) -> Result<Json<Value>> {
    let (space, room, member) = load_room(&state, &caller, &space, &room).await?;
    Ok(Json(room_json(&state, &space, &room, member)))
}

/// `PATCH /api/v1/spaces/{space}/rooms/{room}` (members)
async fn update_room(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path((space_slug, room_slug)): Path<(String, String)>,
    Json(body): Json<RoomBody>,
) -> Result<Json<Value>> {
    let p = caller.require()?;
    let (space, room, _) = load_room(&state, &caller, &space_slug, &room_slug).await?;
    spaces::require_member(&state.db, &space, p).await?;
    let new_slug = match &body.slug {
        Some(s) => Slug::parse(s).map_err(|e| AppError::invalid("slug", e.0))?,
        None => room.slug.clone(),
    };
    let fields = room_fields(&body, Some(&room))?;
    core::rooms::update(
        &state.core,
        Actor::Person(p),
        &space,
        &room,
        &new_slug,
        &fields,
    )
    .await?;
    let room = rooms::by_slug(&state.db, &space, new_slug.as_str()).await?;
    Ok(Json(room_json(&state, &space, &room, true)))
}

/// `DELETE /api/v1/spaces/{space}/rooms/{room}` (members)
async fn delete_room(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path((space_slug, room_slug)): Path<(String, String)>,
) -> Result<StatusCode> {
    let p = caller.require()?;
    let (space, room, _) = load_room(&state, &caller, &space_slug, &room_slug).await?;
    spaces::require_member(&state.db, &space, p).await?;
    core::rooms::delete(&state.core, Actor::Person(p), &space, &room).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/spaces/{space}/members` (members)
async fn list_members(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(slug): Path<String>,
) -> Result<Json<Value>> {
    let p = caller.require()?;
    let space = load_space(&state, &slug).await?;
    spaces::require_member(&state.db, &space, p).await?;
    let members = spaces::members(&state.db, &space).await?;
    Ok(Json(json!({
        "members": members.iter().map(|m| {
            let mut v = passport_json(&state, &m.passport);
            if let Some(obj) = v.as_object_mut() {
                obj.insert("role".into(), json!(m.role));
                obj.insert("since".into(), json!(m.since));
            }
            v
        }).collect::<Vec<_>>()
    })))
}

/// `DELETE /api/v1/spaces/{space}/members/{handle}`: owners remove anyone; members leave.
async fn remove_member(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path((slug, handle)): Path<(String, String)>,
) -> Result<StatusCode> {
    let p = caller.require()?;
    let space = load_space(&state, &slug).await?;
    let handle = Handle::parse(&handle).map_err(|_| AppError::NotFound)?;
    let target = passports::by_handle(&state.db, &handle)
        .await?
        .ok_or(AppError::NotFound)?;
    core::spaces::remove_member(&state.core, Actor::Person(p), &space, &target).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InviteBody {
    email: String,
    role: Option<String>,
}

/// `GET /api/v1/spaces/{space}/invitations` (owners)
async fn list_invitations(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(slug): Path<String>,
) -> Result<Json<Value>> {
    let p = caller.require()?;
    let space = load_space(&state, &slug).await?;
    spaces::require_owner(&state.db, &space, p).await?;
    let pending = invitations::pending(&state.db, &space).await?;
    Ok(Json(json!({ "invitations": pending })))
}

/// `POST /api/v1/spaces/{space}/invitations` (owners): emails an invitation link.
async fn invite(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(slug): Path<String>,
    Json(body): Json<InviteBody>,
) -> Result<Response> {
    let p = caller.require()?;
    let space = load_space(&state, &slug).await?;
    spaces::require_owner(&state.db, &space, p).await?;
    let email = Email::parse(&body.email).map_err(|e| AppError::invalid("email", e.0))?;
    let role = Role::parse(body.role.as_deref().unwrap_or("member"))?;
    let invitation = core::spaces::invite(&state.core, p, &space, &email, role).await?;
    Ok((StatusCode::CREATED, Json(json!(invitation))).into_response())
}

/// `DELETE /api/v1/spaces/{space}/invitations/{id}` (owners)
async fn revoke_invitation(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path((slug, id)): Path<(String, i64)>,
) -> Result<StatusCode> {
    let p = caller.require()?;
    let space = load_space(&state, &slug).await?;
    spaces::require_owner(&state.db, &space, p).await?;
    core::spaces::revoke_invitation(&state.core, Actor::Person(p), &space, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/openapi.json`: this API described as OpenAPI 3.1.
async fn openapi(State(state): State<AppState>) -> Json<Value> {
    Json(super::openapi::document(&state.settings.url("/api/v1")))
}
