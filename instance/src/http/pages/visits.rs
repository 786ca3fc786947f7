//! Rooms on other instances (issue 9), from both sides.
//!
//! - Home side: `GET /visit` reads a Room elsewhere and asks to confirm; `POST /visit` asks the
//!   Room's instance for a ticket and sends the browser there. `GET /authorize_interaction`
//!   (the remote-interaction template WebFinger advertises) leads here for a Room.
//! - Room side: `POST {room}/elsewhere` takes a signed-out visitor's address on another
//!   instance and sends them to that instance's remote-interaction page for this Room;
//!   `GET /enter?ticket=` spends a ticket for a visitor session and drops it from the URL.

use axum::extract::{Path, Query, State};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use convene_federation::protocol::Id;
use convene_federation::protocol::actor::AccessMode;
use convene_federation::{Address, webfinger};
use convene_web::pages::{ElsewhereRow, InvitationElsewhereRow, RemoteRoomView, VisitView};
use convene_web::routes;
use serde::Deserialize;

use super::{context, redirect_with};
use crate::app::AppState;
use crate::core::admission;
use crate::error::{AppError, Result};
use crate::http::visitor::{self, Visitor};

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct VisitQuery {
    room: String,
}

/// `GET /visit[?room=…]`
pub async fn page(
    State(state): State<AppState>,
    visitor: Visitor,
    Query(query): Query<VisitQuery>,
) -> Result<Response> {
    let passport = visitor.require()?;
    let elsewhere = crate::core::membership::elsewhere(&state.core, passport).await?;
    // Live head counts for the Rooms the person may enter, read concurrently and kept briefly.
    let member_rooms: Vec<String> = elsewhere
        .iter()
        .filter(|(_, _, state)| state == "accepted")
        .map(|(room, _, _)| room.clone())
        .collect();
    let mut counts = admission::head_counts(
        &state.core,
        &state.federation.client,
        &state.federation.head_counts,
        &member_rooms,
    )
    .await
    .into_iter();
    let mut view = VisitView {
        input: query.room.clone(),
        address: passport.address(&state.settings.domain()),
        elsewhere: elsewhere
            .into_iter()
            .map(|(room, name, state)| {
                let member = state == "accepted";
                ElsewhereRow {
                    visit_url: format!("{}?room={}", routes::VISIT, urlencoding(&room)),
                    name,
                    state: match state.as_str() {
                        "accepted" => "member",
                        "rejected" => "declined",
                        _ => "waiting for the owners",
                    }
                    .to_owned(),
                    head_count: member
                        .then(|| counts.next().flatten())
                        .flatten()
                        .map(|c| (c.inside, c.capacity)),
                    can_enter: member,
                    room,
                }
            })
            .collect(),
        invitations: crate::core::membership::invitations_elsewhere(&state.core, passport)
            .await?
            .into_iter()
            .map(|i| InvitationElsewhereRow {
                invite_id: i.invite_id,
                space_name: i.space_name,
                space_url: i.space,
            })
            .collect(),
        ..VisitView::default()
    };
    if !query.room.trim().is_empty() {
        match admission::preview(&state.core, &state.federation.client, &query.room).await {
            Ok(room) => {
                let standing =
                    crate::core::membership::standing(&state.core, passport, &room.id).await?;
                view.room = Some(RemoteRoomView {
                    id: room.id.to_string(),
                    name: room.name,
                    space: room.space,
                    host: room.host,
                    access: match room.access {
                        AccessMode::Open => "open",
                        AccessMode::MembersOnly => "members only",
                        AccessMode::Locked => "locked with an access code",
                    }
                    .to_owned(),
                    capacity: room.capacity,
                    head_count: room.head_count,
                    standing,
                });
            }
            Err(AppError::BadRequest(why)) => view.error = Some(why),
            Err(err) => return Err(err),
        }
    }
    // "Join" and "Enter" are answered by a redirect to the Room's instance.
    let mut targets: Vec<String> = view
        .room
        .iter()
        .map(|room| room.id.as_str())
        .chain(member_rooms.iter().map(String::as_str))
        .filter_map(|id| url::Url::parse(id).ok())
        .map(|url| url.origin().ascii_serialization())
        .filter(|origin| origin != "null")
        .collect();
    targets.sort();
    targets.dedup();
    let mut response = convene_web::pages::visit(&context(&state, &visitor), &view).into_response();
    if !targets.is_empty() {
        let targets: Vec<&str> = targets.iter().map(String::as_str).collect();
        crate::http::allow_form_targets(response.headers_mut(), &targets);
    }
    Ok(response)
}

#[derive(Deserialize)]
pub struct VisitInput {
    room: String,
}

/// `POST /visit`: a ticket from the Room's instance, then off to it.
pub async fn visit(
    State(state): State<AppState>,
    visitor: Visitor,
    axum::Form(input): axum::Form<VisitInput>,
) -> Result<Response> {
    let passport = visitor.require()?;
    let Ok(room) = Id::parse(&input.room) else {
        return Ok(redirect_with(
            &state,
            routes::VISIT,
            "error",
            "Paste the link of a Room's page on another instance.",
        ));
    };
    match admission::visit(&state.core, &state.federation.client, passport, &room).await {
        Ok(grant) => Ok(super::super::redirect(grant.enter_url.as_str())),
        Err(AppError::BadRequest(why)) => Ok(redirect_with(
            &state,
            &format!("{}?room={}", routes::VISIT, urlencoding(room.as_str())),
            "error",
            &why,
        )),
        Err(err) => Err(err),
    }
}

/// `POST /visit/join`: asks a members-only Room elsewhere to let this Passport join; its
/// Space's owners there decide, and the visit page shows their answer.
pub async fn join(
    State(state): State<AppState>,
    visitor: Visitor,
    axum::Form(input): axum::Form<VisitInput>,
) -> Result<Response> {
    let passport = visitor.require()?;
    let back = format!("{}?room={}", routes::VISIT, urlencoding(&input.room));
    let room = match admission::preview(&state.core, &state.federation.client, &input.room).await {
        Ok(room) => room,
        Err(AppError::BadRequest(why)) => {
            return Ok(redirect_with(&state, &back, "error", &why));
        }
        Err(err) => return Err(err),
    };
    crate::core::membership::ask(&state.core, passport, &room.id, &room.name, &room.inbox).await?;
    Ok(redirect_with(
        &state,
        &back,
        "success",
        &format!(
            "You asked to join {}. Its Space's owners decide.",
            room.name
        ),
    ))
}

#[derive(Deserialize)]
pub struct RemoteInviteInput {
    address: String,
}

/// `POST /spaces/{space}/invitations/remote` (owners): invites a Passport of another instance
/// by its address; accepting there makes it a member here.
pub async fn invite_remote(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(space): Path<String>,
    axum::Form(input): axum::Form<RemoteInviteInput>,
) -> Result<Response> {
    let owner = visitor.require()?;
    let space = crate::domain::spaces::by_slug(&state.db, &space).await?;
    crate::domain::spaces::require_owner(&state.db, &space, owner).await?;
    let members = routes::members(space.slug.as_str());
    let invited = async {
        let person =
            admission::resolve_person(&state.core, &state.federation.client, &input.address)
                .await?;
        crate::core::membership::invite(&state.core, owner, &space, &person).await
    }
    .await;
    match invited {
        Ok(passport) => Ok(redirect_with(
            &state,
            &members,
            "success",
            &format!(
                "{} is invited; they answer on their own instance.",
                passport.address(&state.settings.domain())
            ),
        )),
        Err(AppError::BadRequest(why)) => Ok(redirect_with(&state, &members, "error", &why)),
        Err(err) => Err(err),
    }
}

#[derive(Deserialize)]
pub struct InvitationAnswer {
    invite: String,
}

/// `POST /visit/invitations/{accept|decline}`: the person answers an invitation to a Space
/// elsewhere.
pub async fn answer_invitation(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(verb): Path<String>,
    axum::Form(input): axum::Form<InvitationAnswer>,
) -> Result<Response> {
    let passport = visitor.require()?;
    let accept = match verb.as_str() {
        "accept" => true,
        "decline" => false,
        _ => return Err(AppError::NotFound),
    };
    let space =
        crate::core::membership::answer_invitation(&state.core, passport, &input.invite, accept)
            .await?;
    Ok(redirect_with(
        &state,
        routes::VISIT,
        "success",
        &if accept {
            format!("You accepted the invitation to {space}.")
        } else {
            format!("You declined the invitation to {space}.")
        },
    ))
}

/// `POST /spaces/{space}/join-requests/{id}/approve|decline` (owners).
pub async fn decide(
    State(state): State<AppState>,
    visitor: Visitor,
    Path((space, id, verb)): Path<(String, i64, String)>,
) -> Result<Response> {
    let owner = visitor.require()?;
    let approve = match verb.as_str() {
        "approve" => true,
        "decline" => false,
        _ => return Err(AppError::NotFound),
    };
    let space = crate::domain::spaces::by_slug(&state.db, &space).await?;
    let passport = crate::core::membership::decide(&state.core, owner, &space, id, approve).await?;
    let address = passport.address(&state.settings.domain());
    Ok(redirect_with(
        &state,
        &routes::members(space.slug.as_str()),
        "success",
        &if approve {
            format!("{address} is a member now.")
        } else {
            format!("{address} was turned down.")
        },
    ))
}

#[derive(Deserialize)]
pub struct ElsewhereInput {
    address: String,
}

/// `POST {room}/elsewhere`: a signed-out visitor names their Passport on another instance; we
/// find that instance's remote-interaction page and send them there with this Room.
pub async fn elsewhere(
    State(state): State<AppState>,
    Path((space, room)): Path<(String, String)>,
    axum::Form(input): axum::Form<ElsewhereInput>,
) -> Result<Response> {
    let here = routes::room(&space, &room);
    let back = |message: &str| Ok(redirect_with(&state, &here, "error", message));
    let Ok(address) = Address::parse(input.address.trim()) else {
        return back("Write your Passport like @ada@example.org.");
    };
    if address
        .domain()
        .eq_ignore_ascii_case(&state.settings.domain())
    {
        return back("That Passport is from this instance: sign in instead.");
    }
    let Ok(room_id) = Id::parse(&state.settings.url(&here)) else {
        return Err(AppError::NotFound);
    };
    let scheme = state.settings.public_url.scheme().to_owned();
    let template = async {
        let url = webfinger::query_url(&address, &scheme)?;
        let jrd = state
            .federation
            .client
            .get(&url, "application/jrd+json", None)
            .await?;
        if !jrd.status.is_success() {
            return Err(convene_federation::Error::Fetch(format!(
                "{url} answered {}",
                jrd.status
            )));
        }
        let resolved = webfinger::parse(&jrd.body, &address)?;
        let template = resolved.subscribe_template.ok_or_else(|| {
            convene_federation::Error::BadDocument("no remote-interaction link".into())
        })?;
        let url = webfinger::interaction_url(&template, &room_id)?;
        // The browser is sent there: only to the Passport's own instance (its domain, or a
        // host under it, as when WebFinger is served at the bare domain), never to some other
        // host or network that a forged answer names.
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let domain = address.domain().split(':').next().unwrap_or_default();
        let target = convene_federation::urls::authority(&url).unwrap_or_default();
        if target != address.domain() && !host.ends_with(&format!(".{domain}")) {
            return Err(convene_federation::Error::BadDocument(format!(
                "its remote-interaction link leads to another host ({})",
                target.chars().take(100).collect::<String>()
            )));
        }
        Ok(url)
    }
    .await;
    match template {
        Ok(url) => Ok(super::super::redirect(url.as_str())),
        Err(err) => {
            tracing::info!(error = %err, address = %input.address, "remote interaction lookup");
            back(&format!(
                "Your instance could not be asked to let you in ({err}). Check the address, or visit from your instance."
            ))
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct EnterQuery {
    ticket: String,
}

/// `GET /enter?ticket=…`: spends the ticket for a visitor session, then the Room's page (the
/// redirect drops the ticket from the address bar; no referrer carries it anywhere).
pub async fn enter(
    State(state): State<AppState>,
    Query(query): Query<EnterQuery>,
) -> Result<Response> {
    let redeemed = admission::redeem(&state.core, &query.ticket).await?;
    let mut response = redirect_with(
        &state,
        &routes::room(redeemed.space.slug.as_str(), redeemed.room.slug.as_str()),
        "success",
        "You're visiting with your Passport from your own instance.",
    );
    let headers = response.headers_mut();
    visitor::append_cookie(
        headers,
        visitor::set_cookie(
            visitor::SESSION_COOKIE,
            &redeemed.session_token,
            Some(crate::domain::auth::GUEST_SESSION_TTL),
            state.settings.secure_cookies(),
        ),
    );
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    Ok(response)
}

/// Percent-encodes a query value.
pub(super) fn urlencoding(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}
