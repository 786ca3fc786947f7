//! The Network page: Spaces a Passport follows on other instances with their Rooms, the form
//! to follow one, and the partners' directory; and `/authorize_interaction`, where WebFinger's
//! subscribe template sends someone who clicked "follow" elsewhere.

use axum::Form;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use convene_web::network_view::{
    FollowForm, NetworkView, PartnerCard, PartnerSpace, RemoteRoomRow, RemoteSpaceCard,
};
use convene_web::routes;
use serde::Deserialize;

use super::{context, form_errors, invalid, redirect_with};
use crate::app::AppState;
use crate::core;
use crate::error::Result;
use crate::http::visitor::Visitor;

async fn view(state: &AppState, visitor: &Visitor, follow: FollowForm) -> Result<NetworkView> {
    let p = visitor.require()?;
    let spaces = core::network::followed(&state.core, p).await?;
    let scheme = state.settings.public_url.scheme();
    let partners = core::partners::list(&state.db)
        .await?
        .into_iter()
        .filter(|partner| partner.status == "partner")
        .map(|partner| PartnerCard {
            url: format!("{scheme}://{}/", partner.domain),
            software: partner.software.map(|s| match partner.version {
                Some(v) => format!("{s} {v}"),
                None => s,
            }),
            spaces: partner
                .public_spaces
                .into_iter()
                .map(|s| PartnerSpace {
                    name: s.name,
                    url: s.url,
                })
                .collect(),
            domain: partner.domain,
        })
        .collect();
    Ok(NetworkView {
        follow,
        spaces: spaces
            .into_iter()
            .map(|s| RemoteSpaceCard {
                unfollow_url: routes::network_unfollow(&s.actor_id),
                name: s.name,
                handle: s.handle,
                summary: s.summary,
                url: s.page_url,
                state: s.state,
                rooms: s
                    .rooms
                    .into_iter()
                    .map(|r| RemoteRoomRow {
                        name: r.name,
                        url: r.page_url,
                        access: r.access_mode,
                        capacity: u32::try_from(r.capacity).unwrap_or(0),
                        head_count: u32::try_from(r.head_count).unwrap_or(0),
                    })
                    .collect(),
            })
            .collect(),
        partners,
    })
}

/// `GET /network` (signed in)
pub async fn page(State(state): State<AppState>, visitor: Visitor) -> Result<Response> {
    let view = view(&state, &visitor, FollowForm::default()).await?;
    Ok(convene_web::pages::network(&context(&state, &visitor), &view).into_response())
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct FollowInput {
    handle: String,
}

/// `POST /network/follow` (signed in): resolves the Space and sends the Follow.
pub async fn follow(
    State(state): State<AppState>,
    visitor: Visitor,
    Form(input): Form<FollowInput>,
) -> Result<Response> {
    let p = visitor.require()?;
    match core::network::follow(&state.core, &state.federation.client, p, &input.handle).await {
        Ok(space) => {
            let message = if space.state == "accepted" {
                format!("You follow {} already.", space.name)
            } else {
                format!(
                    "Asked to follow {}; its Rooms appear here as it announces them.",
                    space.name
                )
            };
            Ok(redirect_with(&state, routes::NETWORK, "success", &message))
        }
        Err(err) => {
            let errors = form_errors(err)?;
            let form = FollowForm {
                handle: input.handle,
                errors,
            };
            let view = view(&state, &visitor, form).await?;
            Ok(invalid(convene_web::pages::network(
                &context(&state, &visitor),
                &view,
            )))
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct SpaceQuery {
    space: String,
}

/// `POST /network/unfollow?space={actor}` (signed in)
pub async fn unfollow(
    State(state): State<AppState>,
    visitor: Visitor,
    Query(query): Query<SpaceQuery>,
) -> Result<Response> {
    let p = visitor.require()?;
    core::network::unfollow(&state.core, p, &query.space).await?;
    Ok(redirect_with(
        &state,
        routes::NETWORK,
        "info",
        "You no longer follow that Space.",
    ))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct InteractionQuery {
    uri: String,
}

/// `GET /authorize_interaction?uri={actor}`: the remote-interaction template our WebFinger
/// documents name. Shows the Network page with the follow form filled in, so the person
/// confirms with one click (a GET never follows anything by itself).
pub async fn authorize_interaction(
    State(state): State<AppState>,
    visitor: Visitor,
    Query(query): Query<InteractionQuery>,
) -> Result<Response> {
    // A Room elsewhere is visited, not followed: its page asks to confirm the visit.
    if url::Url::parse(query.uri.trim()).is_ok_and(|u| u.path().contains("/rooms/")) {
        return Ok(crate::http::redirect(&format!(
            "{}?room={}",
            convene_web::routes::VISIT,
            super::visits::urlencoding(query.uri.trim())
        )));
    }
    let form = FollowForm {
        handle: query.uri.trim().chars().take(500).collect(),
        errors: Default::default(),
    };
    let view = view(&state, &visitor, form).await?;
    Ok(convene_web::pages::network(&context(&state, &visitor), &view).into_response())
}
