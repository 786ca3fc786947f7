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
    let entrant = match visitor.passport().or(visitor.visiting()) {
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
    headers: axum::http::HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let proxied = headers
        .get(PROXIED_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|proof| {
            crate::domain::constant_time_eq(proof, &proxy_proof(&state, &space_slug, &room_slug))
        });
    // Signaling frames are small and few: modest socket buffers keep a participant's memory
    // to what the media needs.
    upgrade
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(MAX_FRAME)
        .max_frame_size(MAX_FRAME)
        .on_upgrade(move |socket| run_signaling(state, space_slug, room_slug, proxied, socket))
}

/// Marks a signaling socket passed on by another process of this instance: the receiver
/// holds the gathering and handles it itself. Its value is an HMAC with the instance's shared
/// key, so a client cannot use it to split a Room.
const PROXIED_HEADER: &str = "x-convene-proxied";

fn proxy_proof(state: &AppState, space_slug: &str, room_slug: &str) -> String {
    crate::http::visitor::csrf_token(&state.csrf_key, &format!("proxy:{space_slug}/{room_slug}"))
}

/// Passes a signaling socket to the process that holds the Room's gathering, frame by frame
/// both ways, with `first` (the join) sent ahead. Media then flows between the browser and
/// that process's SFU directly (its candidates carry its own address).
async fn proxy_signaling(
    state: &AppState,
    node_url: &str,
    space_slug: &str,
    room_slug: &str,
    first: String,
    socket: WebSocket,
) {
    use tokio_tungstenite::tungstenite::Message as Upstream;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let path = convene_web::routes::room_signal(space_slug, room_slug);
    let url = format!("{}{path}", node_url.replacen("http", "ws", 1));
    let request = url.into_client_request().ok().and_then(|mut request| {
        let proof = proxy_proof(state, space_slug, room_slug).parse().ok()?;
        request.headers_mut().insert(PROXIED_HEADER, proof);
        Some(request)
    });
    let Some(request) = request else {
        close(
            socket,
            4001,
            "this Room's media node cannot be reached".into(),
        )
        .await;
        return;
    };
    let upstream =
        tokio::time::timeout(JOIN_TIMEOUT, tokio_tungstenite::connect_async(request)).await;
    let Ok(Ok((upstream, _))) = upstream else {
        tracing::warn!(
            node = node_url,
            "the node holding a gathering does not answer"
        );
        close(socket, 4000, "reconnecting".into()).await;
        return;
    };
    let (mut up_tx, mut up_rx) = upstream.split();
    if up_tx.send(Upstream::text(first)).await.is_err() {
        close(socket, 4000, "reconnecting".into()).await;
        return;
    }
    let (mut down_tx, mut down_rx) = socket.split();
    loop {
        tokio::select! {
            frame = down_rx.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    if up_tx.send(Upstream::text(text.as_str())).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    let _ = up_tx.send(Upstream::Close(None)).await;
                    return;
                }
                Some(Ok(_)) => {}
            },
            frame = up_rx.next() => match frame {
                Some(Ok(Upstream::Text(text))) => {
                    if down_tx.send(Message::Text(text.as_str().into())).await.is_err() {
                        let _ = up_tx.send(Upstream::Close(None)).await;
                        return;
                    }
                }
                Some(Ok(Upstream::Close(frame))) => {
                    let (code, reason) = frame.map_or((1000, String::new()), |f| {
                        (u16::from(f.code), f.reason.as_str().to_owned())
                    });
                    let _ = tokio::time::timeout(
                        CLOSE_TIMEOUT,
                        down_tx.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))),
                    )
                    .await;
                    return;
                }
                None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
    // The holder went away mid-gathering: the client reconnects and the Room moves.
    let _ = tokio::time::timeout(
        CLOSE_TIMEOUT,
        down_tx.send(Message::Close(Some(CloseFrame {
            code: 4000,
            reason: "reconnecting".into(),
        }))),
    )
    .await;
}

/// The Room's SFU id and database id, or `None` when the address names no Room.
async fn media_room(state: &AppState, space_slug: &str, room_slug: &str) -> Option<(String, i64)> {
    let space = crate::domain::spaces::by_slug(&state.db, space_slug)
        .await
        .ok()?;
    let room = crate::domain::rooms::by_slug(&state.db, &space, room_slug)
        .await
        .ok()?;
    Some((gathering::media_room_id(&room), room.id))
}

async fn run_signaling(
    state: AppState,
    space_slug: String,
    room_slug: String,
    proxied: bool,
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
    let room = media_room(&state, &space_slug, &room_slug).await;
    if !proxied && let Some((_, db_id)) = &room {
        match gathering::claim(&state.core, *db_id).await {
            Ok(gathering::Home::Elsewhere(node_url)) => {
                proxy_signaling(&state, &node_url, &space_slug, &room_slug, first, socket).await;
                return;
            }
            Ok(gathering::Home::Here) => {}
            Err(err) => tracing::warn!(error = %err, "claiming a gathering"),
        }
    }
    let room_id = room.map(|(media_id, _)| media_id);
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
    let (mut sink, mut stream) = socket.split();
    let incoming = Box::pin((&mut stream).filter_map(|frame| async move {
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
    await_close_reply(&mut stream).await;
}

/// The rest of the closing handshake: reads until the client answers our close frame (or
/// goes, or [`CLOSE_TIMEOUT`] passes). Dropping the socket with frames the client sent still
/// unread makes the kernel reset the connection, and a client then loses the close frame
/// with its reason ("room has ended") and sees only an abnormal closure.
async fn await_close_reply(stream: &mut futures_util::stream::SplitStream<WebSocket>) {
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        while let Some(Ok(frame)) = stream.next().await {
            if matches!(frame, Message::Close(_)) {
                break;
            }
        }
    })
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
    if let Ok(Ok(())) = tokio::time::timeout(CLOSE_TIMEOUT, socket.send(frame)).await {
        let (_, mut stream) = socket.split();
        await_close_reply(&mut stream).await;
    }
}
