//! Entering a Room's gathering: the media token and the signaling WebSocket.
//!
//! The web layer is where access is decided. `POST …/token` checks the Room's rules (open,
//! members-only, locked and unlocked for this session) and its capacity, then issues a media
//! token signed with the instance's key, bound to the Room and the person, valid for two
//! minutes and usable once. `GET …/signal` upgrades to a WebSocket whose first frame must
//! carry that token; the SFU verifies it before anything else happens.

use std::time::Duration;

use axum::Form;
use axum::Json;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use convene_media::Claims;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;

use super::GuestSession;
use super::rooms::load;
use crate::app::AppState;
use crate::domain::auth;
use crate::domain::rooms::{Entry, Room};
use crate::domain::values::DisplayName;
use crate::error::{AppError, Result};
use crate::http::visitor::Visitor;

/// How long a media token is valid.
pub const TOKEN_TTL_SECS: u64 = 120;
/// How long the SFU waits for the `join` frame after the upgrade.
const JOIN_TIMEOUT: Duration = Duration::from_secs(15);
/// How long sending a close frame may take before the socket is simply dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest signaling frame accepted from a browser (the SFU applies its own, smaller limit).
const MAX_FRAME: usize = 128 * 1024;

/// The SFU's id for a Room: its database id, so a deleted and re-created Room is another Room.
pub fn media_room_id(room: &Room) -> String {
    format!("room-{}", room.id)
}

/// The SFU's id for a Passport.
pub fn media_participant_id(passport_id: i64) -> String {
    format!("p{passport_id}")
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct TokenInput {
    guest_name: String,
}

/// `POST /spaces/{space}/rooms/{room}/token`: a media token for a visitor who may enter.
pub async fn token(
    State(state): State<AppState>,
    visitor: Visitor,
    Path((space_slug, room_slug)): Path<(String, String)>,
    Form(input): Form<TokenInput>,
) -> Result<Response> {
    let (_space, room, _member, entry) = load(&state, &visitor, &space_slug, &room_slug).await?;
    if entry != Entry::Enter {
        return Err(AppError::Forbidden(
            "This Room is locked: enter its access code first.",
        ));
    }
    let room_id = media_room_id(&room);
    let mut guest = None;
    let (participant, display_name, handle) = match visitor.passport() {
        Some(p) => (
            media_participant_id(p.id),
            p.display_name.to_string(),
            Some(p.address(&state.settings.domain())),
        ),
        None => {
            let name = DisplayName::parse(&input.guest_name)
                .map_err(|e| AppError::invalid("guest_name", e.0))?;
            let session = GuestSession::for_visitor(&state, &visitor).await?;
            let hash = session.hash.clone();
            guest = Some(session);
            auth::set_guest_name(&state.db, &hash, &name).await?;
            // A guest is known by their session: the same browser rejoining replaces itself.
            (format!("g{}", &hash[..16]), name.to_string(), None)
        }
    };
    let capacity = u32::try_from(room.capacity).unwrap_or(u32::MAX);
    let inside = state.sfu.room_participants(&room_id);
    let rejoining = inside.iter().any(|p| p.id == participant);
    if !rejoining && inside.len() >= room.capacity as usize {
        return Err(AppError::Conflict {
            field: "room",
            message: format!("The Room is full ({capacity} people). Try again later."),
        });
    }
    let mut claims = Claims::new(
        room_id.clone(),
        participant.clone(),
        display_name.clone(),
        convene_media::token::unix_now(),
        TOKEN_TTL_SECS,
    );
    claims.handle = handle;
    claims.capacity = Some(capacity);
    let token = state.sfu.token_key().issue(&claims);
    let mut response = Json(json!({
        "token": token,
        "signal_url": format!("{}/signal", convene_web::routes::room(&space_slug, &room_slug)),
        "participant": participant,
        "display_name": display_name,
        "expires_in": TOKEN_TTL_SECS,
    }))
    .into_response();
    if let Some(session) = guest {
        session.set_cookie(&state, &mut response);
    }
    Ok(response)
}

/// `GET /spaces/{space}/rooms/{room}/signal`: the Room's signaling WebSocket.
///
/// No session is needed: the media token in the first frame is the admission.
pub async fn signal(
    State(state): State<AppState>,
    Path((space_slug, room_slug)): Path<(String, String)>,
    upgrade: WebSocketUpgrade,
) -> Result<Response> {
    let space = crate::domain::spaces::by_slug(&state.db, &space_slug).await?;
    let room = crate::domain::rooms::by_slug(&state.db, &space, &room_slug).await?;
    let room_id = media_room_id(&room);
    let sfu = state.sfu.clone();
    // Signaling frames are small and few: modest socket buffers keep a participant's memory
    // to what the media needs.
    Ok(upgrade
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(MAX_FRAME)
        .max_frame_size(MAX_FRAME)
        .on_upgrade(move |socket| run_signaling(sfu, room_id, socket)))
}

async fn run_signaling(sfu: convene_media::Sfu, room_id: String, mut socket: WebSocket) {
    let first = match tokio::time::timeout(JOIN_TIMEOUT, next_text(&mut socket)).await {
        Ok(Some(text)) => text,
        Ok(None) => return,
        Err(_) => {
            close(socket, 4001, "no join message in time".into()).await;
            return;
        }
    };
    let session = match sfu.connect(&room_id, &first).await {
        Ok(session) => session,
        Err(err) => {
            tracing::info!(room = %room_id, reason = %err.reason(), "join refused");
            let frame = Message::Text(err.to_frame().into());
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, socket.send(frame)).await;
            close(socket, 4001, err.reason()).await;
            return;
        }
    };
    let (mut sink, stream) = socket.split();
    let incoming = Box::pin(stream.filter_map(|frame| async move {
        match frame {
            Ok(Message::Text(text)) => Some(text.as_str().to_owned()),
            // Binary frames are not part of the protocol: the SFU refuses them as garbage.
            Ok(Message::Binary(_)) => Some("binary frame".to_owned()),
            _ => None,
        }
    }));
    let outgoing = Box::pin(
        (&mut sink)
            .with(|text: String| async move { Ok::<_, axum::Error>(Message::Text(text.into())) }),
    );
    let reason = session.run(incoming, outgoing).await;
    let text: String = reason.text().chars().take(120).collect();
    // A client that stopped reading must not hold this task: the close frame gets a deadline.
    let _ = tokio::time::timeout(
        CLOSE_TIMEOUT,
        sink.send(Message::Close(Some(CloseFrame {
            code: 4000,
            reason: text.into(),
        }))),
    )
    .await;
}

/// The next text frame, skipping pings; `None` when the socket closes.
async fn next_text(socket: &mut WebSocket) -> Option<String> {
    while let Some(frame) = socket.recv().await {
        match frame {
            Ok(Message::Text(text)) => return Some(text.as_str().to_owned()),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
    None
}

async fn close(mut socket: WebSocket, code: u16, reason: String) {
    let reason: String = reason.chars().take(120).collect();
    let frame = Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }));
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, socket.send(frame)).await;
}
