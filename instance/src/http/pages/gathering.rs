//! Entering a Room's gathering: the media token and the signaling WebSocket.
//!
//! The web layer is where access is decided. `POST …/token` checks the Room's rules (open,
//! members-only, locked and unlocked for this session) and its capacity, then issues a media
//! token signed with the instance's key, bound to the Room and the person, valid for two
//! minutes and usable once. `GET …/signal` upgrades to a WebSocket whose first frame must
//! carry that token; the SFU verifies it before anything else happens.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Form;
use axum::Json;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;

use super::GuestSession;
use super::rooms::load;
use crate::app::AppState;
use crate::core::gathering::{self, Entrant};
use crate::domain::auth;
use crate::domain::rooms::Entry;
use crate::domain::values::DisplayName;
use crate::error::{AppError, Result};
use crate::http::client::ClientAddr;
use crate::http::visitor::Visitor;

/// How long the SFU waits for the `join` frame after the upgrade.
const JOIN_TIMEOUT: Duration = Duration::from_secs(15);
/// How long sending a close frame may take before the socket is simply dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest signaling frame accepted from a browser (the SFU applies its own, smaller limit).
const MAX_FRAME: usize = 128 * 1024;

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct TokenInput {
    guest_name: String,
}

/// `POST /spaces/{space}/rooms/{room}/token`: a media token for a visitor who may enter.
pub async fn token(
    State(state): State<AppState>,
    client: ClientAddr,
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
    let client_key = client.key();
    let mut guest = None;
    let entrant = match visitor.passport() {
        Some(p) => Entrant {
            passport_id: Some(p.id),
            session_hash: visitor.session_hash(),
            display_name: p.display_name.to_string(),
            handle: Some(p.address(&state.settings.domain())),
            client_key: &client_key,
        },
        None => {
            let name = DisplayName::parse(&input.guest_name)
                .map_err(|e| AppError::invalid("guest_name", e.0))?;
            let session = GuestSession::for_visitor(&state, &visitor).await?;
            auth::set_guest_name(&state.db, &session.hash, &name).await?;
            guest = Some(session);
            Entrant {
                passport_id: None,
                session_hash: guest.as_ref().map(|s| s.hash.as_str()),
                display_name: name.to_string(),
                handle: None,
                client_key: &client_key,
            }
        }
    };
    let display_name = entrant.display_name.clone();
    let issued = gathering::issue_token(&state.core, &room, entry, &entrant).await?;
    let mut response = Json(json!({
        "token": issued.token,
        "signal_url": convene_web::routes::room_signal(&space_slug, &room_slug),
        "participant": issued.participant,
        "display_name": display_name,
        "expires_in": gathering::TOKEN_TTL_SECS,
    }))
    .into_response();
    // A token is a key to the Room: no cache may keep it.
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    if let Some(session) = guest {
        session.set_cookie(&state, &mut response);
    }
    Ok(response)
}

/// `GET /spaces/{space}/rooms/{room}/signal`: the Room's signaling WebSocket.
///
/// No session is needed: the media token in the first frame is the admission. Every address
/// upgrades alike, whether a Room is there or not, so the socket reveals nothing a token does
/// not already prove.
pub async fn signal(
    State(state): State<AppState>,
    Path((space_slug, room_slug)): Path<(String, String)>,
    upgrade: WebSocketUpgrade,
) -> Response {
    // Signaling frames are small and few: modest socket buffers keep a participant's memory
    // to what the media needs.
    upgrade
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(MAX_FRAME)
        .max_frame_size(MAX_FRAME)
        .on_upgrade(move |socket| run_signaling(state, space_slug, room_slug, socket))
}

/// The Room's SFU id, or `None` when the address names no Room.
async fn media_room(state: &AppState, space_slug: &str, room_slug: &str) -> Option<String> {
    let space = crate::domain::spaces::by_slug(&state.db, space_slug)
        .await
        .ok()?;
    let room = crate::domain::rooms::by_slug(&state.db, &space, room_slug)
        .await
        .ok()?;
    Some(gathering::media_room_id(&room))
}

async fn run_signaling(
    state: AppState,
    space_slug: String,
    room_slug: String,
    mut socket: WebSocket,
) {
    let first = match tokio::time::timeout(JOIN_TIMEOUT, next_text(&mut socket)).await {
        Ok(Some(text)) => text,
        Ok(None) => return,
        Err(_) => {
            close(socket, 4001, "no join message in time".into()).await;
            return;
        }
    };
    let room_id = media_room(&state, &space_slug, &room_slug).await;
    if let Err(refusal) = gathering::admit(&state.core, room_id.as_deref(), &first).await {
        state.metrics.joins_refused.fetch_add(1, Ordering::Relaxed);
        tracing::info!(space = %space_slug, room = %room_slug, reason = refusal.0, "join refused");
        let frame = Message::Text(refusal.to_frame().into());
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, socket.send(frame)).await;
        close(socket, 4001, refusal.0.to_owned()).await;
        return;
    }
    let Some(room_id) = room_id else {
        return;
    };
    let session = match state.sfu.connect(&room_id, &first).await {
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
