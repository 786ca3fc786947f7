//! Room pages: the door (join, access code), and creating, editing and deleting Rooms.

use std::sync::Arc;

use axum::Form;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use convene_web::routes;
use convene_web::view::{
    self, FormErrors, JoinPanel, RoomDeleteView, RoomForm, RoomView, Stage, UnlockForm,
};
use serde::Deserialize;

use super::spaces::web_access;
use super::{GuestSession, context, form_errors, invalid, redirect_with};
use crate::app::AppState;
use crate::cache::{RenderedPage, SpaceSnapshot};
use crate::core::{self, Actor};
use crate::domain::rooms::{self, Access, Entry, Room, RoomFields};
use crate::domain::spaces::{self, Space};
use crate::domain::values::{self, AccessCode, DisplayName, Slug};
use crate::error::{AppError, FieldError, Result};
use crate::http::caching::{self, Sharing};
use crate::http::client::ClientAddr;
use crate::http::visitor::Visitor;

/// Loads a Space and Room for a visitor; a members-only Room is 404 to non-members.
pub(super) async fn load(
    state: &AppState,
    visitor: &Visitor,
    space: &str,
    room: &str,
) -> Result<(Space, Room, bool, Entry)> {
    let space = spaces::by_slug(&state.db, space).await?;
    let member = spaces::is_member(&state.db, &space, visitor.passport()).await?;
    let room = rooms::by_slug(&state.db, &space, room).await?;
    let unlocked = rooms::is_unlocked(&state.db, &room, visitor.session_hash()).await?;
    let enters_as_member = enters_as_member(state, &space, visitor, member).await?;
    let entry = rooms::entry(&room, enters_as_member, unlocked)?;
    Ok((space, room, member, entry))
}

/// Whether the visitor comes in as one of the Space's members: a member signed in here, or a
/// Passport of another instance, visiting by ticket, that the Space's owners let in. (Only the
/// former may change the Room: `member` stays what it was for that.)
async fn enters_as_member(
    state: &AppState,
    space: &Space,
    visitor: &Visitor,
    member: bool,
) -> Result<bool> {
    match visitor.visiting() {
        Some(passport) if !member => spaces::is_member(&state.db, space, Some(passport)).await,
        _ => Ok(member),
    }
}

/// [`load`] for the Room page, from the page cache: the page may lag a write made by another
/// process by up to the cache's lifetime (see [`crate::cache`]); the token endpoint decides
/// admission afresh.
async fn load_cached(
    state: &AppState,
    visitor: &Visitor,
    space: &str,
    room: &str,
) -> Result<(Arc<SpaceSnapshot>, Room, bool, Entry)> {
    let snapshot = state.pages.space(&state.db, space).await?;
    let member = spaces::is_member(&state.db, &snapshot.space, visitor.passport()).await?;
    let room = snapshot.room(room)?.clone();
    let enters_as_member = enters_as_member(state, &snapshot.space, visitor, member).await?;
    let unlocked = room.access == rooms::Access::Locked
        && !enters_as_member
        && rooms::is_unlocked(&state.db, &room, visitor.session_hash()).await?;
    let entry = rooms::entry(&room, enters_as_member, unlocked)?;
    Ok((snapshot, room, member, entry))
}

fn room_view(
    space: &Space,
    room: &Room,
    member: bool,
    stage: Stage,
    inside: Vec<String>,
) -> RoomView {
    RoomView {
        space_name: space.name.to_string(),
        space_slug: space.slug.to_string(),
        name: room.name.to_string(),
        slug: room.slug.to_string(),
        topic: room.topic.clone(),
        access: web_access(room.access),
        listed: room.listed,
        capacity: u32::try_from(room.capacity).unwrap_or(0),
        is_entrance: space.entrance_room_id == Some(room.id),
        inside,
        stage,
        can_edit: member,
    }
}

fn join_panel(state: &AppState, space: &Space, room: &Room, visitor: &Visitor) -> Stage {
    let visiting = visitor.visiting();
    Stage::Join(JoinPanel {
        signal_url: routes::room_signal(space.slug.as_str(), room.slug.as_str()),
        token_url: routes::room_token(space.slug.as_str(), room.slug.as_str()),
        guest_name: visitor
            .session
            .as_ref()
            .and_then(|s| s.guest_name.clone())
            .unwrap_or_default(),
        visiting: visiting.map(|p| {
            (
                p.display_name.to_string(),
                p.address(&state.settings.domain()),
            )
        }),
        // Rooms with a public actor take visitors from other instances.
        elsewhere_url: (visitor.passport().is_none() && visiting.is_none() && room.listed)
            .then(|| routes::room_elsewhere(space.slug.as_str(), room.slug.as_str())),
    })
}

/// `GET /spaces/{space}/rooms/{room}`: for an anonymous visitor, rendered once per snapshot
/// and presence with a placeholder where the visitor's CSRF token goes, then completed per
/// request; such a page is the browser's own (`private, no-cache`) with an `ETag`.
pub async fn show(
    State(state): State<AppState>,
    visitor: Visitor,
    headers: HeaderMap,
    Path((space, room)): Path<(String, String)>,
) -> Result<Response> {
    let (snapshot, room, member, entry) = load_cached(&state, &visitor, &space, &room).await?;
    let space = &snapshot.space;
    let people = state
        .sfu
        .room_participants(&crate::core::gathering::media_room_id(&room));
    let me = visitor
        .passport()
        .map(|p| crate::core::gathering::media_participant_id(p.id));
    let full = people.len() >= usize::try_from(room.capacity).unwrap_or(usize::MAX)
        && !people.iter().any(|p| Some(&p.id) == me.as_ref());
    let stage = match entry {
        Entry::Enter if full => Stage::Full,
        Entry::Enter => join_panel(&state, space, &room, &visitor),
        Entry::NeedsCode => Stage::Locked(UnlockForm::default()),
    };
    // Who is inside is shown to those who may enter, not to someone still at a locked door.
    let inside: Vec<String> = match entry {
        Entry::Enter => people.into_iter().map(|p| p.display_name).collect(),
        Entry::NeedsCode => Vec::new(),
    };
    // The form for a Passport from elsewhere is answered by a redirect to its instance.
    let elsewhere = matches!(&stage, Stage::Join(panel) if panel.elsewhere_url.is_some());
    let scheme = format!("{}:", state.settings.public_url.scheme());
    let allow_elsewhere = |mut response: Response| {
        if elsewhere {
            crate::http::allow_form_targets(response.headers_mut(), &[&scheme]);
        }
        response
    };
    let anonymous = visitor.session.is_none() && visitor.flash.is_none();
    if !anonymous {
        let view = room_view(space, &room, member, stage, inside);
        return Ok(allow_elsewhere(
            convene_web::pages::room(&context(&state, &visitor), &view).into_response(),
        ));
    }
    // What the page shows besides the snapshot; the stage follows from the Room and `full`.
    let inputs = caching::digest(&(entry == Entry::Enter, full, &inside));
    let csrf = visitor.csrf(&state.csrf_key);
    let template = match snapshot.rendered(room.slug.as_str(), inputs) {
        Some(template) => template,
        None => {
            // A token no one has, so that it is found only where the page puts the token.
            let placeholder =
                crate::http::visitor::csrf_token(&state.csrf_key, &crate::domain::random_token());
            let mut ctx = context(&state, &visitor);
            ctx.csrf.clone_from(&placeholder);
            let view = room_view(space, &room, member, stage, inside);
            let body = Bytes::from(convene_web::pages::room(&ctx, &view).into_string());
            let template = RenderedPage {
                inputs,
                etag: caching::etag(caching::digest(&body[..])),
                holes: positions(&body, placeholder.as_bytes()),
                hole_len: placeholder.len(),
                body,
            };
            snapshot.keep_rendered(room.slug.as_str(), template.clone());
            template
        }
    };
    let Some(body) = fill(&template, csrf.as_bytes()) else {
        return Err(AppError::Internal(anyhow::anyhow!(
            "the Room page's CSRF placeholder does not fit the token"
        )));
    };
    let etag = caching::etag(caching::digest(&(template.etag.as_bytes(), &csrf)));
    Ok(allow_elsewhere(caching::page(
        &headers,
        body,
        etag,
        Sharing::Browser,
    )))
}

/// Where `needle` starts in `haystack`, non-overlapping.
fn positions(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    let mut found = Vec::new();
    if needle.is_empty() {
        return found;
    }
    let mut at = 0;
    while let Some(offset) = haystack
        .get(at..)
        .and_then(|rest| rest.windows(needle.len()).position(|w| w == needle))
    {
        found.push(at + offset);
        at += offset + needle.len();
    }
    found
}

/// The page with `value` written into each of its holes; `None` if one does not fit.
fn fill(page: &RenderedPage, value: &[u8]) -> Option<Bytes> {
    if page.holes.is_empty() {
        return Some(page.body.clone());
    }
    if value.len() != page.hole_len {
        return None;
    }
    let mut body = page.body.to_vec();
    for &at in &page.holes {
        body.get_mut(at..at.checked_add(value.len())?)?
            .copy_from_slice(value);
    }
    Some(Bytes::from(body))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct UnlockInput {
    code: String,
}

/// `POST /spaces/{space}/rooms/{room}/unlock`: checks the access code (rate limited per
/// client address and per Room) and remembers the Room for this browser's session.
pub async fn unlock(
    State(state): State<AppState>,
    client: ClientAddr,
    visitor: Visitor,
    Path((space_slug, room_slug)): Path<(String, String)>,
    Form(input): Form<UnlockInput>,
) -> Result<Response> {
    let (space, room, member, entry) = load(&state, &visitor, &space_slug, &room_slug).await?;
    let here = routes::room(&space_slug, &room_slug);
    if entry == Entry::Enter {
        return Ok(crate::http::redirect(&here));
    }
    let client_key = client.key();
    // A guest gets a session to remember the unlocked Room in, but only once the attempt is
    // within the limits: refused floods leave no rows behind.
    let mut session = None;
    let result = match rooms::code_limit(&state.db, &room, &client_key).await {
        Err(err) => Err(err),
        Ok(()) => {
            let guest = session.insert(GuestSession::for_visitor(&state, &visitor).await?);
            core::rooms::unlock(&state.core, &room, &client_key, &guest.hash, &input.code).await
        }
    };
    let mut response = match result {
        Ok(()) => redirect_with(&state, &here, "success", "Unlocked. Welcome in."),
        Err(AppError::RateLimited { retry_after }) => {
            let stage = Stage::Locked(UnlockForm {
                error: None,
                retry_after_secs: Some(retry_after),
            });
            let mut r = (
                StatusCode::TOO_MANY_REQUESTS,
                convene_web::pages::room(
                    &context(&state, &visitor),
                    &room_view(&space, &room, member, stage, Vec::new()),
                ),
            )
                .into_response();
            if let Ok(v) = retry_after.to_string().parse() {
                r.headers_mut().insert("retry-after", v);
            }
            r
        }
        Err(AppError::Invalid(errors)) => {
            let message = errors.into_iter().next().map(|e| e.message);
            let stage = Stage::Locked(UnlockForm {
                error: message,
                retry_after_secs: None,
            });
            invalid(convene_web::pages::room(
                &context(&state, &visitor),
                &room_view(&space, &room, member, stage, Vec::new()),
            ))
        }
        Err(other) => return Err(other),
    };
    if let Some(session) = session {
        session.set_cookie(&state, &mut response);
    }
    Ok(response)
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct RoomInput {
    name: String,
    slug: String,
    topic: String,
    access: String,
    access_code: String,
    listed: Option<String>,
    capacity: String,
}

impl RoomInput {
    /// The form's "Listed / Unlisted" choice (`true` / `false`); a missing choice is unlisted.
    fn listed(&self) -> bool {
        matches!(self.listed.as_deref(), Some("true" | "on"))
    }
}

/// Validates a Room form; `current` is the Room being edited (an empty code keeps its code).
fn room_fields(input: &RoomInput, current: Option<&Room>) -> Result<(Slug, RoomFields)> {
    let mut errors = Vec::new();
    let mut note = |field: &'static str, message: &str| {
        errors.push(FieldError {
            field,
            message: message.to_string(),
        })
    };
    let name = DisplayName::parse(&input.name)
        .map_err(|e| note("name", e.0))
        .ok();
    let slug_input = if input.slug.trim().is_empty() {
        Slug::suggest(&input.name)
    } else {
        input.slug.clone()
    };
    let slug = Slug::parse(&slug_input).map_err(|e| note("slug", e.0)).ok();
    let topic = values::parse_text(&input.topic, 300)
        .map_err(|e| note("topic", e.0))
        .ok();
    let access = Access::parse(if input.access.is_empty() {
        "open"
    } else {
        &input.access
    })
    .map_err(|_| note("access", "Choose who may enter."))
    .ok();
    let access_code = if input.access_code.trim().is_empty() {
        Some(current.and_then(|r| r.access_code.clone()))
    } else {
        AccessCode::parse(&input.access_code)
            .map(Some)
            .map_err(|e| note("access_code", e.0))
            .ok()
    };
    let capacity = input
        .capacity
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|c| (1..=rooms::MAX_CAPACITY).contains(c))
        .or_else(|| {
            note("capacity", "Capacity is a whole number from 1 to 100.");
            None
        });
    let (Some(name), Some(slug), Some(topic), Some(access), Some(access_code), Some(capacity)) =
        (name, slug, topic, access, access_code, capacity)
    else {
        return Err(AppError::Invalid(errors));
    };
    let fields = RoomFields {
        name,
        topic,
        access,
        access_code,
        listed: input.listed(),
        capacity,
    };
    fields.check()?;
    Ok((slug, fields))
}

fn form_from_input(
    space: &Space,
    input: RoomInput,
    editing: Option<&Room>,
    errors: FormErrors,
) -> RoomForm {
    let listed = input.listed();
    RoomForm {
        space_name: space.name.to_string(),
        space_slug: space.slug.to_string(),
        editing: editing.map(|r| r.slug.to_string()),
        name: input.name,
        slug: input.slug,
        topic: input.topic,
        access: input.access.parse().unwrap_or(view::Access::Open),
        access_code: input.access_code,
        code_is_set: editing.is_some_and(|r| r.access_code.is_some()),
        listed,
        capacity: input.capacity,
        errors,
    }
}

/// `GET /spaces/{space}/rooms/new` (members)
pub async fn new_page(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(slug): Path<String>,
) -> Result<Response> {
    let p = visitor.require()?;
    let space = spaces::by_slug(&state.db, &slug).await?;
    spaces::require_member(&state.db, &space, p).await?;
    let form = RoomForm::new_room(space.name.to_string(), space.slug.to_string());
    Ok(convene_web::pages::room_new(&context(&state, &visitor), &form).into_response())
}

/// `POST /spaces/{space}/rooms` (members)
pub async fn create(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(slug): Path<String>,
    Form(input): Form<RoomInput>,
) -> Result<Response> {
    let p = visitor.require()?;
    let space = spaces::by_slug(&state.db, &slug).await?;
    spaces::require_member(&state.db, &space, p).await?;
    let result = async {
        let (room_slug, fields) = room_fields(&input, None)?;
        core::rooms::create(&state.core, Actor::Person(p), &space, &room_slug, &fields).await
    }
    .await;
    match result {
        Ok(room) => Ok(redirect_with(
            &state,
            &routes::room(&slug, room.slug.as_str()),
            "success",
            "The Room is ready.",
        )),
        Err(err) => {
            let errors = form_errors(err)?;
            Ok(invalid(convene_web::pages::room_new(
                &context(&state, &visitor),
                &form_from_input(&space, input, None, errors),
            )))
        }
    }
}

/// `GET /spaces/{space}/rooms/{room}/edit` (members)
pub async fn edit_page(
    State(state): State<AppState>,
    visitor: Visitor,
    Path((space_slug, room_slug)): Path<(String, String)>,
) -> Result<Response> {
    let p = visitor.require()?;
    let (space, room, _, _) = load(&state, &visitor, &space_slug, &room_slug).await?;
    spaces::require_member(&state.db, &space, p).await?;
    let form = RoomForm {
        space_name: space.name.to_string(),
        space_slug: space.slug.to_string(),
        editing: Some(room.slug.to_string()),
        name: room.name.to_string(),
        slug: room.slug.to_string(),
        topic: room.topic.clone(),
        access: web_access(room.access),
        access_code: room
            .access_code
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        code_is_set: room.access_code.is_some(),
        listed: room.listed,
        capacity: room.capacity.to_string(),
        errors: FormErrors::new(),
    };
    Ok(convene_web::pages::room_edit(&context(&state, &visitor), &form).into_response())
}

/// `POST /spaces/{space}/rooms/{room}/edit` (members)
pub async fn edit(
    State(state): State<AppState>,
    visitor: Visitor,
    Path((space_slug, room_slug)): Path<(String, String)>,
    Form(input): Form<RoomInput>,
) -> Result<Response> {
    let p = visitor.require()?;
    let (space, room, _, _) = load(&state, &visitor, &space_slug, &room_slug).await?;
    spaces::require_member(&state.db, &space, p).await?;
    let result = async {
        let (new_slug, fields) = room_fields(&input, Some(&room))?;
        core::rooms::update(
            &state.core,
            Actor::Person(p),
            &space,
            &room,
            &new_slug,
            &fields,
        )
        .await?;
        Ok::<_, AppError>(new_slug)
    }
    .await;
    match result {
        Ok(new_slug) => Ok(redirect_with(
            &state,
            &routes::room(&space_slug, new_slug.as_str()),
            "success",
            "The Room is saved.",
        )),
        Err(err) => {
            let errors = form_errors(err)?;
            Ok(invalid(convene_web::pages::room_edit(
                &context(&state, &visitor),
                &form_from_input(&space, input, Some(&room), errors),
            )))
        }
    }
}

fn delete_view(state: &AppState, space: &Space, room: &Room, errors: FormErrors) -> RoomDeleteView {
    RoomDeleteView {
        space_name: space.name.to_string(),
        space_slug: space.slug.to_string(),
        room_name: room.name.to_string(),
        room_slug: room.slug.to_string(),
        inside: u32::try_from(
            state
                .sfu
                .room_presence(&crate::core::gathering::media_room_id(room)),
        )
        .unwrap_or(u32::MAX),
        is_entrance: space.entrance_room_id == Some(room.id),
        errors,
    }
}

/// `GET /spaces/{space}/rooms/{room}/delete` (members): asks for confirmation.
pub async fn delete_page(
    State(state): State<AppState>,
    visitor: Visitor,
    Path((space_slug, room_slug)): Path<(String, String)>,
) -> Result<Response> {
    let p = visitor.require()?;
    let (space, room, _, _) = load(&state, &visitor, &space_slug, &room_slug).await?;
    spaces::require_member(&state.db, &space, p).await?;
    Ok(convene_web::pages::room_delete_confirm(
        &context(&state, &visitor),
        &delete_view(&state, &space, &room, FormErrors::new()),
    )
    .into_response())
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct DeleteInput {
    confirm: Option<String>,
}

/// `POST /spaces/{space}/rooms/{room}/delete` (members): deletes when confirmed.
pub async fn delete(
    State(state): State<AppState>,
    visitor: Visitor,
    Path((space_slug, room_slug)): Path<(String, String)>,
    Form(input): Form<DeleteInput>,
) -> Result<Response> {
    let p = visitor.require()?;
    let (space, room, _, _) = load(&state, &visitor, &space_slug, &room_slug).await?;
    spaces::require_member(&state.db, &space, p).await?;
    if input.confirm.is_none() {
        let errors = FormErrors::new().with("confirm", "Tick the box to confirm.");
        return Ok(invalid(convene_web::pages::room_delete_confirm(
            &context(&state, &visitor),
            &delete_view(&state, &space, &room, errors),
        )));
    }
    core::rooms::delete(&state.core, Actor::Person(p), &space, &room).await?;
    Ok(redirect_with(
        &state,
        &routes::space(&space_slug),
        "success",
        &format!("{} is deleted.", room.name),
    ))
}
