//! The landing page, Space pages, members and invitations.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use convene_web::routes;
use convene_web::view::{
    self, FollowRequestRow, FormErrors, InvitationRow, InvitationView, InviteForm, LandingView,
    MemberRow, MembersView, RoomDoor, RoomOption, SpaceCard, SpaceEditForm, SpaceForm, SpaceView,
};
use serde::Deserialize;

use super::{context, date, form_errors, invalid, redirect_with, web_role};
use crate::app::AppState;
use crate::cache::RenderedPage;
use crate::core::{self, Actor};
use crate::domain::invitations::{self, InvitationState};
use crate::domain::passports;
use crate::domain::rooms::{self, Access};
use crate::domain::spaces::{self, Role, Space, SpaceFields};
use crate::domain::values::{self, DisplayName, Email, Handle, Slug};
use crate::error::{AppError, FieldError, Result};
use crate::http::caching::{self, Sharing};
use crate::http::visitor::Visitor;

pub(super) fn web_access(access: Access) -> view::Access {
    match access {
        Access::Open => view::Access::Open,
        Access::Members => view::Access::Members,
        Access::Locked => view::Access::Locked,
    }
}

/// `GET /`
pub async fn landing(State(state): State<AppState>, visitor: Visitor) -> Result<Response> {
    let list = spaces::directory(&state.db, visitor.passport()).await?;
    let inside = people_inside_by_space(&state).await?;
    let view = LandingView {
        tagline: "Video meeting places that this community runs for itself.".into(),
        spaces: list
            .into_iter()
            .map(|s| SpaceCard {
                url: routes::space(s.space.slug.as_str()),
                name: s.space.name.to_string(),
                slug: s.space.slug.to_string(),
                description: s.space.description,
                room_count: u32::try_from(s.listed_rooms).unwrap_or(0),
                people_inside: inside.get(&s.space.id).copied().unwrap_or(0),
            })
            .collect(),
    };
    Ok(convene_web::pages::landing(&context(&state, &visitor), &view).into_response())
}

/// People in gatherings right now, per Space, from the SFU's presence.
async fn people_inside_by_space(state: &AppState) -> Result<std::collections::HashMap<i64, u32>> {
    let presence = state.sfu.presence();
    let room_ids: Vec<i64> = presence
        .keys()
        .filter_map(|k| k.strip_prefix("room-")?.parse().ok())
        .collect();
    let spaces_of = rooms::space_ids(&state.db, &room_ids).await?;
    let mut out = std::collections::HashMap::new();
    for (key, count) in presence {
        let Some(room_id) = key
            .strip_prefix("room-")
            .and_then(|k| k.parse::<i64>().ok())
        else {
            continue;
        };
        if let Some(space_id) = spaces_of.get(&room_id) {
            *out.entry(*space_id).or_insert(0) += u32::try_from(count).unwrap_or(u32::MAX);
        }
    }
    Ok(out)
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct SpaceInput {
    name: String,
    slug: String,
    description: String,
    listed: Option<String>,
    entrance_room: String,
}

fn space_fields(input: &SpaceInput) -> Result<SpaceFields> {
    let mut errors = Vec::new();
    let name = DisplayName::parse(&input.name)
        .map_err(|e| {
            errors.push(FieldError {
                field: "name",
                message: e.0.into(),
            })
        })
        .ok();
    let description = values::parse_text(&input.description, 2000)
        .map_err(|e| {
            errors.push(FieldError {
                field: "description",
                message: e.0.into(),
            })
        })
        .ok();
    match (name, description) {
        (Some(name), Some(description)) => Ok(SpaceFields {
            name,
            description,
            listed: input.listed.is_some(),
        }),
        _ => Err(AppError::Invalid(errors)),
    }
}

fn require_creator(state: &AppState, visitor: &Visitor) -> Result<()> {
    let p = visitor.require()?;
    if spaces::may_create(p, state.settings.open_space_creation) {
        Ok(())
    } else {
        Err(AppError::Forbidden(
            "On this instance only operators create Spaces.",
        ))
    }
}

/// `GET /spaces/new`
pub async fn new_page(State(state): State<AppState>, visitor: Visitor) -> Result<Response> {
    require_creator(&state, &visitor)?;
    Ok(
        convene_web::pages::space_new(&context(&state, &visitor), &SpaceForm::default())
            .into_response(),
    )
}

/// `POST /spaces`
pub async fn create(
    State(state): State<AppState>,
    visitor: Visitor,
    Form(input): Form<SpaceInput>,
) -> Result<Response> {
    require_creator(&state, &visitor)?;
    let p = visitor.require()?;
    let result = async {
        let slug_input = if input.slug.trim().is_empty() {
            Slug::suggest(&input.name)
        } else {
            input.slug.clone()
        };
        let slug = Slug::parse(&slug_input).map_err(|e| AppError::invalid("slug", e.0));
        let fields = space_fields(&input);
        match (slug, fields) {
            (Ok(slug), Ok(fields)) => {
                core::spaces::create(&state.core, Actor::Person(p), p, &slug, &fields).await
            }
            (slug, fields) => {
                let mut errors = Vec::new();
                for err in [fields.err(), slug.err()].into_iter().flatten() {
                    if let AppError::Invalid(mut e) = err {
                        errors.append(&mut e);
                    }
                }
                Err(AppError::Invalid(errors))
            }
        }
    }
    .await;
    match result {
        Ok(space) => Ok(redirect_with(
            &state,
            &routes::space(space.slug.as_str()),
            "success",
            "Your Space is ready. Add a Room to meet in.",
        )),
        Err(err) => {
            let errors = form_errors(err)?;
            Ok(invalid(convene_web::pages::space_new(
                &context(&state, &visitor),
                &SpaceForm {
                    name: input.name,
                    slug: input.slug,
                    description: input.description,
                    listed: input.listed.is_some(),
                    errors,
                },
            )))
        }
    }
}

/// `GET /spaces/{space}`: public and revalidatable (`ETag`) for anonymous visitors, who all
/// see the same page; private for everyone else.
pub async fn show(
    State(state): State<AppState>,
    visitor: Visitor,
    headers: HeaderMap,
    Path(slug): Path<String>,
) -> Result<Response> {
    let snapshot = state.pages.space(&state.db, &slug).await?;
    let space = &snapshot.space;
    let role = spaces::role(&state.db, space, visitor.passport()).await?;
    let member = role.is_some() || visitor.passport().is_some_and(|p| p.is_operator);
    let room_list: Vec<_> = snapshot.visible_rooms(member).collect();
    let member_count = snapshot.member_count;
    let presence: Vec<usize> = room_list
        .iter()
        .map(|(_, media_id)| state.sfu.room_presence(media_id))
        .collect();
    // Anonymous visitors all see the same page: serve the one rendered for these counts.
    let anonymous = visitor.session.is_none() && visitor.flash.is_none();
    let inputs = caching::digest(&presence);
    let public = Sharing::Public {
        max_age: state.settings.public_max_age,
    };
    if anonymous && let Some(page) = snapshot.rendered(SPACE_PAGE, inputs) {
        return Ok(caching::page(&headers, page.body, page.etag, public));
    }
    let is_operator = visitor.passport().is_some_and(|p| p.is_operator);
    let view = SpaceView {
        name: space.name.to_string(),
        slug: space.slug.to_string(),
        description: space.description.clone(),
        listed: space.listed,
        member_count: u32::try_from(member_count).unwrap_or(u32::MAX),
        your_role: role.map(web_role),
        rooms: room_list
            .iter()
            .enumerate()
            .map(|(i, (r, _))| RoomDoor {
                name: r.name.to_string(),
                slug: r.slug.to_string(),
                topic: r.topic.clone(),
                access: web_access(r.access),
                listed: r.listed,
                capacity: u32::try_from(r.capacity).unwrap_or(0),
                inside: u32::try_from(presence.get(i).copied().unwrap_or(0)).unwrap_or(u32::MAX),
                is_entrance: space.entrance_room_id == Some(r.id),
                url: routes::room(space.slug.as_str(), r.slug.as_str()),
            })
            .collect(),
        can_create_rooms: member,
        can_manage: role == Some(Role::Owner) || is_operator,
    };
    let ctx = context(&state, &visitor);
    let page = axum::body::Bytes::from(convene_web::pages::space(&ctx, &view).into_string());
    // Only a page that carries nothing of the visitor may be shared.
    if anonymous && !contains(&page, ctx.csrf.as_bytes()) {
        let etag = caching::etag(caching::digest(&page[..]));
        snapshot.keep_rendered(
            SPACE_PAGE,
            RenderedPage {
                inputs,
                body: page.clone(),
                etag: etag.clone(),
                holes: Vec::new(),
                hole_len: 0,
            },
        );
        return Ok(caching::page(&headers, page, etag, public));
    }
    Ok(html_response(page))
}

/// The Space page's name among the pages kept with a snapshot (Rooms go by their slugs).
const SPACE_PAGE: &str = "";

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

fn html_response(page: axum::body::Bytes) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")],
        page,
    )
        .into_response()
}

async fn edit_form(state: &AppState, space: &Space) -> Result<SpaceEditForm> {
    let room_list = rooms::visible(&state.db, space, true).await?;
    Ok(SpaceEditForm {
        space_slug: space.slug.to_string(),
        name: space.name.to_string(),
        description: space.description.clone(),
        listed: space.listed,
        entrance_room: space
            .entrance_room_id
            .and_then(|id| room_list.iter().find(|r| r.id == id))
            .map(|r| r.slug.to_string()),
        rooms: room_list
            .iter()
            .map(|r| RoomOption {
                slug: r.slug.to_string(),
                name: r.name.to_string(),
            })
            .collect(),
        errors: FormErrors::new(),
    })
}

/// `GET /spaces/{space}/edit` (owners)
pub async fn edit_page(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(slug): Path<String>,
) -> Result<Response> {
    let p = visitor.require()?;
    let space = spaces::by_slug(&state.db, &slug).await?;
    spaces::require_owner(&state.db, &space, p).await?;
    let form = edit_form(&state, &space).await?;
    Ok(convene_web::pages::space_edit(&context(&state, &visitor), &form).into_response())
}

/// `POST /spaces/{space}/edit` (owners)
pub async fn edit(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(slug): Path<String>,
    Form(input): Form<SpaceInput>,
) -> Result<Response> {
    let p = visitor.require()?;
    let space = spaces::by_slug(&state.db, &slug).await?;
    spaces::require_owner(&state.db, &space, p).await?;
    let result = async {
        let fields = space_fields(&input)?;
        let entrance = if input.entrance_room.is_empty() {
            None
        } else {
            Some(
                rooms::by_slug(&state.db, &space, &input.entrance_room)
                    .await
                    .map_err(|_| {
                        AppError::invalid("entrance_room", "Choose one of this Space's Rooms.")
                    })?
                    .id,
            )
        };
        core::spaces::update(&state.core, Actor::Person(p), &space, &fields, entrance).await
    }
    .await;
    match result {
        Ok(()) => Ok(redirect_with(
            &state,
            &routes::space(&slug),
            "success",
            "The Space is saved.",
        )),
        Err(err) => {
            let errors = form_errors(err)?;
            let mut form = edit_form(&state, &space).await?;
            form.name = input.name;
            form.description = input.description;
            form.listed = input.listed.is_some();
            form.entrance_room = Some(input.entrance_room).filter(|s| !s.is_empty());
            form.errors = errors;
            Ok(invalid(convene_web::pages::space_edit(
                &context(&state, &visitor),
                &form,
            )))
        }
    }
}

async fn members_view(
    state: &AppState,
    visitor: &Visitor,
    space: &Space,
    invite: InviteForm,
) -> Result<MembersView> {
    let p = visitor.require()?;
    let role = spaces::role(&state.db, space, Some(p)).await?;
    let can_manage = role == Some(Role::Owner) || p.is_operator;
    let members = spaces::members(&state.db, space).await?;
    let invitations = if can_manage {
        invitations::pending(&state.db, space).await?
    } else {
        Vec::new()
    };
    let join_requests = if can_manage {
        core::membership::requests(&state.core, space)
            .await?
            .into_iter()
            .map(|r| convene_web::view::JoinRequestRow {
                display_name: r.passport.display_name.to_string(),
                address: r.passport.address(&state.settings.domain()),
                room_name: r.room_name,
                approve_url: routes::join_request_decision(space.slug.as_str(), r.id, true),
                decline_url: routes::join_request_decision(space.slug.as_str(), r.id, false),
            })
            .collect()
    } else {
        Vec::new()
    };
    let follow_requests = if can_manage {
        core::followers::follow_requests(&state.core, space).await?
    } else {
        Vec::new()
    };
    Ok(MembersView {
        space_name: space.name.to_string(),
        space_slug: space.slug.to_string(),
        members: members
            .iter()
            .map(|m| MemberRow {
                display_name: m.passport.display_name.to_string(),
                // A member from another instance is named with its instance.
                handle: if m.passport.domain.is_empty() {
                    m.passport.handle.to_string()
                } else {
                    format!("{}@{}", m.passport.handle, m.passport.domain)
                },
                role: web_role(m.role),
                is_you: m.passport.id == p.id,
                can_remove: can_manage && m.passport.id != p.id,
            })
            .collect(),
        invitations: invitations
            .iter()
            .map(|i| InvitationRow {
                id: i.id.to_string(),
                email: i.email.to_string(),
                role: web_role(i.role),
                expires: date(i.expires_at),
            })
            .collect(),
        can_manage,
        can_leave: role.is_some(),
        invite,
        join_requests,
        follow_requests: follow_requests
            .into_iter()
            .map(|r| FollowRequestRow {
                approve_url: routes::follow_request(
                    space.slug.as_str(),
                    "approve",
                    &r.remote_actor,
                ),
                reject_url: routes::follow_request(space.slug.as_str(), "reject", &r.remote_actor),
                actor: r.remote_actor,
                host: r.remote_host,
                requested: date(r.created_at),
            })
            .collect(),
    })
}

/// `GET /spaces/{space}/members` (members)
pub async fn members(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(slug): Path<String>,
) -> Result<Response> {
    let p = visitor.require()?;
    let space = spaces::by_slug(&state.db, &slug).await?;
    spaces::require_member(&state.db, &space, p).await?;
    let view = members_view(&state, &visitor, &space, InviteForm::default()).await?;
    Ok(convene_web::pages::members(&context(&state, &visitor), &view).into_response())
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct InviteInput {
    email: String,
    role: String,
}

/// `POST /spaces/{space}/invitations` (owners)
pub async fn invite(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(slug): Path<String>,
    Form(input): Form<InviteInput>,
) -> Result<Response> {
    let p = visitor.require()?;
    let space = spaces::by_slug(&state.db, &slug).await?;
    spaces::require_owner(&state.db, &space, p).await?;
    let result = async {
        let email = Email::parse(&input.email).map_err(|e| AppError::invalid("email", e.0))?;
        let role = Role::parse(if input.role.is_empty() {
            "member"
        } else {
            &input.role
        })?;
        core::spaces::invite(&state.core, p, &space, &email, role).await
    }
    .await;
    match result {
        Ok(inv) => Ok(redirect_with(
            &state,
            &routes::members(&slug),
            "success",
            &format!("Invitation sent to {}.", inv.email),
        )),
        Err(err) => {
            let errors = form_errors(err)?;
            let form = InviteForm {
                email: input.email,
                role: if input.role == "owner" {
                    view::Role::Owner
                } else {
                    view::Role::Member
                },
                errors,
            };
            let view = members_view(&state, &visitor, &space, form).await?;
            Ok(invalid(convene_web::pages::members(
                &context(&state, &visitor),
                &view,
            )))
        }
    }
}

/// `POST /spaces/{space}/invitations/{id}/revoke` (owners)
pub async fn revoke_invitation(
    State(state): State<AppState>,
    visitor: Visitor,
    Path((slug, id)): Path<(String, i64)>,
) -> Result<Response> {
    let p = visitor.require()?;
    let space = spaces::by_slug(&state.db, &slug).await?;
    spaces::require_owner(&state.db, &space, p).await?;
    core::spaces::revoke_invitation(&state.core, Actor::Person(p), &space, id).await?;
    Ok(redirect_with(
        &state,
        &routes::members(&slug),
        "success",
        "The invitation is withdrawn.",
    ))
}

/// `POST /spaces/{space}/members/{handle}/remove` (owners)
pub async fn remove_member(
    State(state): State<AppState>,
    visitor: Visitor,
    Path((slug, handle)): Path<(String, String)>,
) -> Result<Response> {
    let p = visitor.require()?;
    let space = spaces::by_slug(&state.db, &slug).await?;
    spaces::require_owner(&state.db, &space, p).await?;
    // `name@instance` names a member from another instance.
    let target = match handle.split_once('@') {
        Some((name, domain)) => passports::by_address(&state.db, name, domain).await?,
        None => {
            let handle = Handle::parse(&handle).map_err(|_| AppError::NotFound)?;
            passports::by_handle(&state.db, &handle).await?
        }
    }
    .ok_or(AppError::NotFound)?;
    core::spaces::remove_member(&state.core, Actor::Person(p), &space, &target).await?;
    Ok(redirect_with(
        &state,
        &routes::members(&slug),
        "success",
        &format!("{} is no longer a member.", target.display_name),
    ))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct FollowRequestQuery {
    actor: String,
}

/// `POST /spaces/{space}/follow-requests/{action}?actor={actor}` (owners): `approve` sends
/// the held follow its `Accept`, `reject` its `Reject`.
pub async fn answer_follow_request(
    State(state): State<AppState>,
    visitor: Visitor,
    Path((slug, action)): Path<(String, String)>,
    axum::extract::Query(query): axum::extract::Query<FollowRequestQuery>,
) -> Result<Response> {
    let p = visitor.require()?;
    let space = spaces::by_slug(&state.db, &slug).await?;
    let approve = match action.as_str() {
        "approve" => true,
        "reject" => false,
        _ => return Err(AppError::NotFound),
    };
    core::followers::answer_follow_request(
        &state.core,
        Actor::Person(p),
        &space,
        &query.actor,
        approve,
    )
    .await?;
    let message = if approve {
        format!("{} now follows {}.", query.actor, space.name)
    } else {
        format!("The follow by {} is refused.", query.actor)
    };
    Ok(redirect_with(
        &state,
        &routes::members(&slug),
        "success",
        &message,
    ))
}

/// `POST /spaces/{space}/leave`
pub async fn leave(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(slug): Path<String>,
) -> Result<Response> {
    let p = visitor.require()?;
    let space = spaces::by_slug(&state.db, &slug).await?;
    core::spaces::remove_member(&state.core, Actor::Person(p), &space, p).await?;
    Ok(redirect_with(
        &state,
        &routes::space(&slug),
        "info",
        &format!("You left {}.", space.name),
    ))
}

/// `GET /invitations/{token}`
pub async fn invitation(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(token): Path<String>,
) -> Result<Response> {
    let inv = invitations::by_secret(&state.db, &token).await?;
    let space = spaces::by_id(&state.db, inv.space_id).await?;
    let inviter = match inv.invited_by {
        Some(id) => passports::by_id(&state.db, id)
            .await?
            .map(|p| p.display_name.to_string()),
        None => None,
    }
    .unwrap_or_else(|| "The owners".to_string());
    let here = routes::invitation(&token);
    let state_view = match inv.state {
        InvitationState::Accepted | InvitationState::Declined => view::InvitationState::AlreadyUsed,
        InvitationState::Revoked => view::InvitationState::Revoked,
        InvitationState::Expired => view::InvitationState::Expired,
        InvitationState::Pending => match visitor.passport() {
            None => view::InvitationState::SignInRequired {
                signin_url: routes::signin_then_with_email(&here, inv.email.as_str()),
                signup_url: routes::signup_then_with_email(&here, inv.email.as_str()),
            },
            Some(p) if spaces::role(&state.db, &space, Some(p)).await?.is_some() => {
                view::InvitationState::AlreadyMember
            }
            Some(_) => view::InvitationState::Pending,
        },
    };
    let view = InvitationView {
        token,
        inviter,
        space_name: space.name.to_string(),
        space_url: routes::space(space.slug.as_str()),
        role: web_role(inv.role),
        state: state_view,
    };
    Ok(convene_web::pages::invitation(&context(&state, &visitor), &view).into_response())
}

/// `POST /invitations/{token}/accept`
pub async fn accept_invitation(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(token): Path<String>,
) -> Result<Response> {
    let p = visitor.require()?;
    let inv = invitations::by_secret(&state.db, &token).await?;
    let space = core::spaces::accept_invitation(&state.core, p, &inv).await?;
    Ok(redirect_with(
        &state,
        &routes::space(space.slug.as_str()),
        "success",
        &format!("Welcome to {}.", space.name),
    ))
}

/// `POST /invitations/{token}/decline`
pub async fn decline_invitation(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response> {
    let inv = invitations::by_secret(&state.db, &token).await?;
    core::spaces::decline_invitation(&state.core, &inv).await?;
    Ok(redirect_with(
        &state,
        "/",
        "info",
        "The invitation is declined.",
    ))
}
