//! Gatherings end to end: real webrtc-rs peers enter Rooms the way the room client does, with a
//! media token from `POST …/token` (session cookie and CSRF header) and the signaling WebSocket
//! at `…/signal`, and exchange synthetic Opus and VP8 through the instance's SFU. Every payload
//! names its sender and sequence, so receivers check what arrives, not just how much.

use std::time::{Duration, Instant};

use convene_media::signaling::{ClientMessage, Kind, ServerMessage};
use convene_media::testing::{self, Client, Tally, checked_tail_run, start_publishing};
use convene_media::{Claims, TokenKey};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::*;

/// Failure bound for anything that should happen promptly.
const LIMIT: Duration = Duration::from_secs(20);

/// What `POST …/token` answers.
#[derive(Debug, Deserialize)]
pub(super) struct Ticket {
    token: String,
    signal_url: String,
    pub(super) participant: String,
    pub(super) display_name: String,
}

/// A refusal from the token endpoint: status and problem+json body.
#[derive(Debug)]
pub(super) struct Refusal {
    pub(super) status: StatusCode,
    pub(super) problem: serde_json::Value,
}

fn room_path(room: &str) -> String {
    format!("/spaces/book-club/rooms/{room}")
}

/// The browser's CSRF token, read from a page it may see (the value is per browser).
async fn csrf(browser: &Browser, room: &str) -> String {
    for path in [room_path(room), "/signin".to_string(), "/".to_string()] {
        if let Some(token) = browser.get(&path).await.csrf() {
            return token;
        }
    }
    panic!("no page with a CSRF token");
}

/// Asks for a media token as the room client does: JSON wanted, CSRF in a header.
pub(super) async fn ticket(
    inst: &TestInstance,
    browser: &Browser,
    room: &str,
    guest_name: Option<&str>,
) -> Result<Ticket, Refusal> {
    let csrf = csrf(browser, room).await;
    let mut form = Vec::new();
    if let Some(name) = guest_name {
        form.push(("guest_name", name));
    }
    let response = browser
        .client
        .post(inst.url(&format!("{}/token", room_path(room))))
        .header("x-csrf-token", csrf)
        .header("accept", "application/json")
        .form(&form)
        .send()
        .await
        .expect("token request");
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = response.text().await.expect("token body");
    if status == StatusCode::OK {
        Ok(serde_json::from_str(&body).unwrap_or_else(|e| panic!("ticket {body}: {e}")))
    } else {
        assert!(
            content_type.starts_with("application/problem+json"),
            "{status} as {content_type}: {body}"
        );
        Err(Refusal {
            status,
            problem: serde_json::from_str(&body).expect("problem+json"),
        })
    }
}

/// One signaling WebSocket, pumped into channels. Incoming frames go through a small
/// bounded channel, so a client that stops reading it stops reading the socket too.
struct Socket {
    to_server: mpsc::Sender<String>,
    from_server: mpsc::Receiver<String>,
    /// The close frame the server sent: code and reason.
    closed: watch::Receiver<Option<(u16, String)>>,
}

/// Opens `signal_url` on the instance and sends the `join` frame with `token`.
async fn open(inst: &TestInstance, signal_url: &str, token: &str) -> Socket {
    let url = format!("ws://{}{signal_url}", inst.settings.listen);
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("signaling WebSocket opens");
    let (mut sink, mut stream) = ws.split();
    let join = serde_json::to_string(&ClientMessage::Join {
        token: token.to_string(),
    })
    .expect("json");
    sink.send(Message::text(join)).await.expect("join sent");
    let (to_server, mut outgoing) = mpsc::channel::<String>(256);
    let (incoming, from_server) = mpsc::channel::<String>(16);
    let (closed_tx, closed) = watch::channel(None);
    tokio::spawn(async move {
        while let Some(text) = outgoing.recv().await {
            if sink.send(Message::text(text)).await.is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        while let Some(frame) = stream.next().await {
            match frame {
                Ok(Message::Text(text)) => {
                    if incoming.send(text.as_str().to_string()).await.is_err() {
                        break;
                    }
                }
                Ok(Message::Close(frame)) => {
                    let (code, reason) = frame.map_or((1005, String::new()), |f| {
                        (u16::from(f.code), f.reason.as_str().to_string())
                    });
                    let _ = closed_tx.send(Some((code, reason)));
                    return;
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        let _ = closed_tx.send(Some((u16::from(CloseCode::Abnormal), String::new())));
    });
    Socket {
        to_server,
        from_server,
        closed,
    }
}

/// Waits for the server's close frame.
async fn closed(closed: &mut watch::Receiver<Option<(u16, String)>>) -> (u16, String) {
    let seen = tokio::time::timeout(LIMIT, closed.wait_for(Option::is_some))
        .await
        .expect("the server closes the socket in time")
        .expect("socket watcher alive")
        .clone();
    seen.expect("waited for a close frame")
}

/// A participant in a gathering, connected through the instance.
pub(super) struct Peer {
    pub(super) client: Client,
    pub(super) participant: String,
    closed: watch::Receiver<Option<(u16, String)>>,
    publishing: Option<JoinHandle<()>>,
}

impl Peer {
    fn publish(&mut self, epoch: Instant) {
        self.publishing = Some(start_publishing(&self.client, 30, 1, 1000, epoch));
    }

    pub(super) async fn closed(&mut self) -> (u16, String) {
        closed(&mut self.closed).await
    }

    pub(super) async fn end(mut self) {
        if let Some(p) = self.publishing.take() {
            p.abort();
        }
        self.client.close().await;
    }
}

/// Enters `room` with a fresh ticket as `browser` and connects a peer as publisher `index`.
pub(super) async fn enter(
    inst: &TestInstance,
    browser: &Browser,
    room: &str,
    index: u8,
    guest_name: Option<&str>,
) -> Peer {
    let ticket = ticket(inst, browser, room, guest_name)
        .await
        .unwrap_or_else(|r| panic!("ticket for {room}: {r:?}"));
    if let Some(name) = guest_name {
        assert_eq!(ticket.display_name, name);
    }
    connect(inst, &ticket, index).await
}

pub(super) async fn connect(inst: &TestInstance, ticket: &Ticket, index: u8) -> Peer {
    let socket = open(inst, &ticket.signal_url, &ticket.token).await;
    let client = testing::start(
        &ticket.participant,
        index,
        true,
        socket.to_server,
        socket.from_server,
    )
    .await
    .unwrap_or_else(|why| panic!("{} did not get in: {why}", ticket.participant));
    seated(inst, &ticket.participant).await;
    Peer {
        client,
        participant: ticket.participant.clone(),
        closed: socket.closed,
        publishing: None,
    }
}

/// Waits until `participant`'s media connected and holds a seat, when `inst` holds the
/// gathering (a gathering held by another process is that process's to count).
async fn seated(inst: &TestInstance, participant: &str) {
    let sfu = &inst.state().sfu;
    let room = sfu
        .gatherings()
        .into_iter()
        .find(|room| sfu.room_admitted(room).iter().any(|p| p.id == participant));
    if let Some(room) = room {
        testing::until_seated(sfu, &room, participant).await;
    }
}

/// Opens the signaling socket with `token` and expects a refusal: an `error` frame with a
/// reason, then a close frame (4001) with the same reason, and nothing else.
async fn refused(inst: &TestInstance, signal_url: &str, token: &str) -> String {
    let mut socket = open(inst, signal_url, token).await;
    let first = tokio::time::timeout(LIMIT, socket.from_server.recv())
        .await
        .expect("an answer in time")
        .expect("an error frame before the close");
    let reason = match serde_json::from_str::<ServerMessage>(&first) {
        Ok(ServerMessage::Error { reason }) => reason,
        other => panic!("expected an error frame, got {other:?} ({first})"),
    };
    let (code, close_reason) = closed(&mut socket.closed).await;
    assert_eq!((code, close_reason.as_str()), (4001, reason.as_str()));
    assert!(
        socket.from_server.recv().await.is_none(),
        "nothing follows a refusal"
    );
    reason
}

/// The ids of `peers` in publisher-index order, as the payload check wants them.
fn ids(peers: &[&Peer]) -> Vec<String> {
    peers.iter().map(|p| p.participant.clone()).collect()
}

/// Waits for `peer` to learn that `who` left: both its tracks unpublished, then gone.
async fn sees_departure(peer: &mut Peer, who: &str) {
    let mut unpublished = Vec::new();
    let mut left = false;
    while !(left && unpublished.len() == 2) {
        match peer.client.wait_event(LIMIT, |_| true).await {
            ServerMessage::TrackUnpublished(t) if t.participant == who => unpublished.push(t.kind),
            ServerMessage::ParticipantLeft { id } if id == who => left = true,
            _ => {}
        }
    }
    unpublished.sort_by_key(|k| *k == Kind::Video);
    assert_eq!(unpublished, vec![Kind::Audio, Kind::Video]);
}

/// The "N of M inside" line of a Room's door on the Space page.
async fn inside_on_space_page(browser: &Browser, count: usize, capacity: usize) -> bool {
    browser
        .get("/spaces/book-club")
        .await
        .body
        .contains(&format!("{count} of {capacity} inside"))
}

async fn metric(inst: &TestInstance, name: &str) -> u64 {
    let body = inst.browser().get("/metrics").await.body;
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("metric {name} in {body}"))
}

/// Signs up `handle` and makes them a member of Book Club through an emailed invitation.
async fn member(inst: &TestInstance, owner: &Browser, handle: &str, name: &str) -> Browser {
    let email = format!("{handle}@example.org");
    let browser = inst.sign_up(&email, handle, name).await;
    owner.get("/spaces/book-club/members").await;
    let page = owner
        .submit(
            "/spaces/book-club/invitations",
            &[("email", email.as_str()), ("role", "member")],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let mail = inst.mailbox.wait_for(&email, 2).await;
    let link = link_in(&mail.body, &inst.url("/invitations/"));
    let path = link.trim_start_matches(&inst.base).to_string();
    browser.get(&path).await;
    let page = browser.submit(&format!("{path}/accept"), &[]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    browser
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_peers_meet_through_the_instance_and_a_leaver_takes_their_tracks() {
    let _share = convene_tests::share_machine().await;
    let (inst, owner) = instance_with_space(Backend::Sqlite).await;
    let (ada, bob) = (inst.browser(), inst.browser());
    let epoch = Instant::now();
    let mut peers = vec![
        enter(&inst, &owner, "lobby", 0, None).await,
        enter(&inst, &ada, "lobby", 1, Some("Ada Guest")).await,
        enter(&inst, &bob, "lobby", 2, Some("Bob Guest")).await,
    ];
    let ids = ids(&peers.iter().collect::<Vec<_>>());
    for p in peers.iter_mut() {
        p.publish(epoch);
    }
    // The last to come was welcomed with the two already there.
    let welcome = peers[2]
        .client
        .wait_event(LIMIT, |e| matches!(e, ServerMessage::Welcome { .. }))
        .await;
    let ServerMessage::Welcome {
        you, participants, ..
    } = welcome
    else {
        unreachable!("matched a welcome");
    };
    assert_eq!(you, ids[2]);
    let mut names: Vec<_> = participants
        .iter()
        .map(|p| p.display_name.clone())
        .collect();
    names.sort();
    assert_eq!(names, vec!["Ada Guest", "Olive Owner"]);
    assert!(
        participants.iter().any(|p| p
            .handle
            .as_deref()
            .is_some_and(|h| h.starts_with("@olive@"))),
        "{participants:?}"
    );

    // Each receives the other two's audio and video, intact, labelled and in order.
    let mut tallies = [Tally::new(), Tally::new(), Tally::new()];
    for (i, p) in peers.iter_mut().enumerate() {
        let others: Vec<u8> = (0..3u8).filter(|j| usize::from(*j) != i).collect();
        testing::receive_from(&mut p.client, &ids, &others, 60, &mut tallies[i], LIMIT).await;
        assert!(
            !tallies[i].keys().any(|(s, _)| usize::from(*s) == i),
            "nobody gets their own media back"
        );
    }
    assert!(
        inside_on_space_page(&ada, 3, 12).await,
        "presence on the Space page"
    );
    assert!(metric(&inst, "convene_forwarded_packets_total").await >= 6 * 60);

    // Bob leaves: the others lose his two tracks and hear that he left.
    let mut bob_peer = peers.pop().expect("three peers");
    bob_peer.client.send(&ClientMessage::Leave);
    assert_eq!(bob_peer.closed().await, (4000, "left".to_string()));
    let bob_id = bob_peer.participant.clone();
    bob_peer.end().await;
    for p in peers.iter_mut() {
        sees_departure(p, &bob_id).await;
    }
    assert!(inside_on_space_page(&owner, 2, 12).await);
    // The two still meet.
    for (i, p) in peers.iter_mut().enumerate() {
        let other = [1u8, 0][i];
        let run = tallies[i]
            .get(&(other, 1))
            .map_or(0, |s| checked_tail_run(s));
        testing::receive_from(
            &mut p.client,
            &ids,
            &[other],
            run + 30,
            &mut tallies[i],
            LIMIT,
        )
        .await;
    }
    for p in peers {
        p.end().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_get_nothing_and_a_closed_socket_with_a_reason() {
    let _share = convene_tests::share_machine().await;
    let (inst, owner) = instance_with_space(Backend::Sqlite).await;
    let guest = inst.browser();
    let mut inside = enter(&inst, &owner, "lobby", 0, None).await;
    let lobby = ticket(&inst, &guest, "lobby", Some("Mallory"))
        .await
        .expect("a ticket");
    let claims = inst
        .state()
        .sfu
        .token_key()
        .verify(&lobby.token, convene_media::token::unix_now())
        .expect("the instance's own token verifies");
    let refused_before = metric(&inst, "convene_joins_refused_total").await;

    // Signed by another key.
    let forged = TokenKey::generate().issue(&claims);
    assert_eq!(
        refused(&inst, &lobby.signal_url, &forged).await,
        "media token signature is invalid"
    );
    // The right key, but a payload changed after signing.
    let (_, signature) = lobby.token.split_once('.').expect("payload.signature");
    let mut bigger = claims.clone();
    bigger.capacity = Some(1000);
    let tampered = format!(
        "{}.{signature}",
        inst.state()
            .sfu
            .token_key()
            .issue(&bigger)
            .split_once('.')
            .expect("two parts")
            .0
    );
    assert_eq!(
        refused(&inst, &lobby.signal_url, &tampered).await,
        "media token signature is invalid"
    );
    // Expired: issued with the instance's key five minutes ago.
    let mut old = Claims::new(
        claims.room.clone(),
        claims.participant.clone(),
        "Mallory",
        convene_media::token::unix_now() - 300,
        120,
    );
    old.capacity = claims.capacity;
    let expired = inst.state().sfu.token_key().issue(&old);
    assert_eq!(
        refused(&inst, &lobby.signal_url, &expired).await,
        "media token has expired"
    );
    // Another Room's token on this Room's socket.
    let hideout = ticket(&inst, &guest, "hideout", Some("Mallory"))
        .await
        .expect("a ticket for the hideout");
    assert_eq!(
        refused(&inst, &lobby.signal_url, &hideout.token).await,
        "media token is for another room"
    );
    // Garbage instead of a join.
    assert_eq!(
        refused(&inst, &lobby.signal_url, "not a token").await,
        "malformed media token"
    );
    // A good token works once; used again it is refused.
    let mallory = connect(&inst, &lobby, 1).await;
    assert_eq!(
        refused(&inst, &lobby.signal_url, &lobby.token).await,
        "media token was already used"
    );
    assert_eq!(
        metric(&inst, "convene_joins_refused_total").await,
        refused_before + 6
    );
    // Of all those attempts only the one good join was announced.
    let mut announced = Vec::new();
    inside
        .client
        .wait_event(LIMIT, |e| match e {
            ServerMessage::ParticipantJoined { id, .. } => {
                announced.push(id.clone());
                true
            }
            ServerMessage::ParticipantLeft { id } => panic!("{id} left: was someone let in?"),
            _ => false,
        })
        .await;
    assert_eq!(announced, vec![lobby.participant.clone()]);
    assert_eq!(inst.state().sfu.room_presence(&claims.room), 2);
    mallory.end().await;
    inside.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_is_enforced_by_the_token_endpoint_and_by_the_sfu() {
    let _share = convene_tests::share_machine().await;
    let (inst, owner) = instance_with_space(Backend::Sqlite).await;
    owner.get("/spaces/book-club/rooms/lobby/edit").await;
    let page = owner
        .submit(
            "/spaces/book-club/rooms/lobby/edit",
            &[
                ("name", "Lobby"),
                ("slug", "lobby"),
                ("topic", "Talk"),
                ("access", "open"),
                ("access_code", ""),
                ("listed", "true"),
                ("capacity", "2"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);

    let (ada, bob, cy, dee) = (
        inst.browser(),
        inst.browser(),
        inst.browser(),
        inst.browser(),
    );
    // Cy gets a ticket while the Room is empty but comes in late.
    let late = ticket(&inst, &cy, "lobby", Some("Cy"))
        .await
        .expect("room for Cy");
    let a = enter(&inst, &ada, "lobby", 0, Some("Ada")).await;
    let b = enter(&inst, &bob, "lobby", 1, Some("Bob")).await;
    assert!(inside_on_space_page(&dee, 2, 2).await);

    let refusal = ticket(&inst, &dee, "lobby", Some("Dee"))
        .await
        .expect_err("no ticket for a full Room");
    assert_eq!(
        refusal.status,
        StatusCode::CONFLICT,
        "{:?}",
        refusal.problem
    );
    assert_eq!(refusal.problem["status"], 409);
    // The SFU holds the line even with a ticket from before.
    assert_eq!(
        refused(&inst, &late.signal_url, &late.token).await,
        "room is full"
    );
    // Someone already inside may rejoin (a reload) without counting twice.
    let again = enter(&inst, &ada, "lobby", 0, Some("Ada")).await;
    let mut a = a;
    assert_eq!(a.closed().await.1, "joined from another place");
    a.end().await;

    // Once someone leaves there is room again.
    b.client.send(&ClientMessage::Leave);
    let mut b = b;
    assert_eq!(b.closed().await, (4000, "left".to_string()));
    b.end().await;
    let dee_peer = enter(&inst, &dee, "lobby", 2, Some("Dee")).await;
    dee_peer.end().await;
    again.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_reading_does_not_slow_the_others() {
    let _share = convene_tests::share_machine().await;
    let (inst, owner) = instance_with_space(Backend::Sqlite).await;
    let (ada, bob) = (inst.browser(), inst.browser());
    let epoch = Instant::now();
    let mut peers = vec![
        enter(&inst, &owner, "lobby", 0, None).await,
        enter(&inst, &ada, "lobby", 1, Some("Ada")).await,
        enter(&inst, &bob, "lobby", 2, Some("Bob")).await,
    ];
    let ids = ids(&peers.iter().collect::<Vec<_>>());
    for p in peers.iter_mut() {
        p.publish(epoch);
    }
    let mut tally = Tally::new();
    testing::receive_from(&mut peers[0].client, &ids, &[1, 2], 30, &mut tally, LIMIT).await;

    // Bob stops reading his socket and his media, and keeps publishing.
    let mut bob_tally = Tally::new();
    testing::drain(&mut peers[2].client, &ids, &mut bob_tally);
    peers[2].client.stall();
    // Chat keeps flowing between the others, and so does everyone's media: 3 s of
    // consecutive video from Ada and from the stuck Bob himself.
    peers[1].client.send(&ClientMessage::Chat {
        text: "still here".into(),
    });
    peers[0]
        .client
        .wait_event(
            LIMIT,
            |e| matches!(e, ServerMessage::Chat { text, .. } if text == "still here"),
        )
        .await;
    let run = |t: &Tally, who: u8| t.get(&(who, 1)).map_or(0, |s| checked_tail_run(s));
    let (ada_run, bob_run) = (run(&tally, 1), run(&tally, 2));
    testing::receive_from(
        &mut peers[0].client,
        &ids,
        &[1],
        ada_run + 90,
        &mut tally,
        LIMIT,
    )
    .await;
    testing::receive_from(
        &mut peers[0].client,
        &ids,
        &[2],
        bob_run + 90,
        &mut tally,
        LIMIT,
    )
    .await;
    let mut ada_tally = Tally::new();
    testing::receive_from(&mut peers[1].client, &ids, &[0], 90, &mut ada_tally, LIMIT).await;
    assert!(
        peers[2].closed.borrow().is_none(),
        "a slow reader is not cut off for a few seconds of media"
    );
    // When Bob reads again, his backlog is there and media flows on.
    peers[2].client.unstall();
    testing::receive_from(
        &mut peers[2].client,
        &ids,
        &[0, 1],
        30,
        &mut bob_tally,
        LIMIT,
    )
    .await;
    for p in peers {
        p.end().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locked_rooms_refuse_tokens_until_unlocked_and_members_only_rooms_hide() {
    let _share = convene_tests::share_machine().await;
    let (inst, owner) = instance_with_space(Backend::Sqlite).await;
    let guest = inst.browser();
    let refusal = ticket(&inst, &guest, "vault", Some("Gus"))
        .await
        .expect_err("locked");
    assert_eq!(
        refusal.status,
        StatusCode::FORBIDDEN,
        "{:?}",
        refusal.problem
    );
    guest.get(&room_path("vault")).await;
    let page = guest
        .submit(
            "/spaces/book-club/rooms/vault/unlock",
            &[("code", "open sesame")],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK);
    let gus = enter(&inst, &guest, "vault", 0, Some("Gus")).await;

    // Members-only: a 404 for a signed-in outsider and for a guest, a token for members.
    let outsider = inst
        .sign_up("out@example.org", "outsider", "Outsider")
        .await;
    for who in [&outsider, &guest] {
        let refusal = ticket(&inst, who, "circle", Some("Nosy"))
            .await
            .expect_err("not a member");
        assert_eq!(
            refusal.status,
            StatusCode::NOT_FOUND,
            "{:?}",
            refusal.problem
        );
    }
    let olive = enter(&inst, &owner, "circle", 0, None).await;
    // A guest without a name gets no token either.
    let refusal = ticket(&inst, &inst.browser(), "lobby", Some(""))
        .await
        .expect_err("a name is needed");
    assert_eq!(refusal.status, StatusCode::UNPROCESSABLE_ENTITY);
    gus.end().await;
    olive.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_member_ends_theirs_and_deleting_the_room_ends_everyones() {
    let _share = convene_tests::share_machine().await;
    let (inst, owner) = instance_with_space(Backend::Sqlite).await;
    let bea = member(&inst, &owner, "bea", "Bea Member").await;
    let guest = inst.browser();
    let mut olive = enter(&inst, &owner, "circle", 0, None).await;
    let mut bea_peer = enter(&inst, &bea, "circle", 1, None).await;
    let mut gus = enter(&inst, &guest, "lobby", 2, Some("Gus")).await;
    let epoch = Instant::now();
    bea_peer.publish(epoch);
    for _ in 0..2 {
        olive
            .client
            .wait_event(LIMIT, |e| matches!(e, ServerMessage::TrackPublished(_)))
            .await;
    }

    owner.get("/spaces/book-club/members").await;
    let page = owner
        .submit("/spaces/book-club/members/bea/remove", &[])
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        bea_peer.closed().await,
        (4000, "removed from the space".to_string())
    );
    let bea_id = bea_peer.participant.clone();
    sees_departure(&mut olive, &bea_id).await;
    bea_peer.end().await;

    // Deleting the circle ends Olive's session there; the lobby goes on.
    owner.get("/spaces/book-club/rooms/circle/delete").await;
    let page = owner
        .submit(
            "/spaces/book-club/rooms/circle/delete",
            &[("confirm", "true")],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(olive.closed().await, (4000, "room has ended".to_string()));
    assert!(gus.closed.borrow().is_none(), "other Rooms go on");
    gus.client.send(&ClientMessage::Ping);
    gus.client
        .wait_event(LIMIT, |e| matches!(e, ServerMessage::Pong))
        .await;
    let refusal = ticket(&inst, &owner, "circle", None)
        .await
        .expect_err("the Room is gone");
    assert_eq!(refusal.status, StatusCode::NOT_FOUND);

    // Deleting the lobby ends the guest's session.
    owner.get("/spaces/book-club/rooms/lobby/delete").await;
    owner
        .submit(
            "/spaces/book-club/rooms/lobby/delete",
            &[("confirm", "true")],
        )
        .await;
    assert_eq!(gus.closed().await, (4000, "room has ended".to_string()));
    olive.end().await;
    gus.end().await;
}

/// Guards issue 7 and issue 10 (item 4): every operation that takes access away ends the media
/// of whoever lost it and refuses their outstanding tokens, whichever door it came through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_access_ends_media_from_the_page_the_api_and_the_command_line() {
    let _share = convene_tests::share_machine().await;
    let (inst, owner) = instance_with_space(Backend::Sqlite).await;
    let bea = member(&inst, &owner, "bea", "Bea Member").await;
    let guest = inst.browser();

    // Page: the lobby becomes members-only. The guest inside leaves; the member stays; a token
    // the guest took before the change no longer opens the door.
    let mut gus = enter(&inst, &guest, "lobby", 0, Some("Gus")).await;
    let mut bea_lobby = enter(&inst, &bea, "lobby", 1, None).await;
    let spare = ticket(&inst, &guest, "lobby", Some("Gus"))
        .await
        .expect("a second ticket while the lobby is open");
    owner.get("/spaces/book-club/rooms/lobby/edit").await;
    let page = owner
        .submit(
            "/spaces/book-club/rooms/lobby/edit",
            &[
                ("name", "Lobby"),
                ("slug", "lobby"),
                ("topic", "Talk"),
                ("access", "members"),
                ("access_code", ""),
                ("capacity", "12"),
                ("listed", "true"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(
        gus.closed().await,
        (4000, "no longer allowed in this room".to_string())
    );
    assert_eq!(
        refused(&inst, &spare.signal_url, &spare.token).await,
        "no longer allowed in this room"
    );
    assert!(
        bea_lobby.closed.borrow().is_none(),
        "members keep their seat"
    );
    bea_lobby.client.send(&ClientMessage::Ping);
    bea_lobby
        .client
        .wait_event(LIMIT, |e| matches!(e, ServerMessage::Pong))
        .await;
    gus.end().await;

    // Page: a new code for the vault sends out the guest who came in with the old one.
    guest.get(&room_path("vault")).await;
    guest
        .submit(
            "/spaces/book-club/rooms/vault/unlock",
            &[("code", "open sesame")],
        )
        .await;
    let mut gus_vault = enter(&inst, &guest, "vault", 2, Some("Gus")).await;
    owner.get("/spaces/book-club/rooms/vault/edit").await;
    let page = owner
        .submit(
            "/spaces/book-club/rooms/vault/edit",
            &[
                ("name", "The Vault"),
                ("slug", "vault"),
                ("topic", "Talk"),
                ("access", "locked"),
                ("access_code", "new sesame"),
                ("capacity", "12"),
                ("listed", "true"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(
        gus_vault.closed().await,
        (4000, "no longer allowed in this room".to_string())
    );
    gus_vault.end().await;

    // API: Bea is removed from the Space. Her media in the members-only lobby ends, and the
    // circle token she took before the removal is refused.
    let bea_circle = ticket(&inst, &bea, "circle", None)
        .await
        .expect("a member's ticket");
    owner.get("/me/tokens").await;
    let page = owner.submit("/me/tokens", &[("name", "script")]).await;
    let at = page.body.find("cvn_").expect("a new API token");
    let token: String = page.body[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    let removed = reqwest::Client::new()
        .delete(inst.url("/api/v1/spaces/book-club/members/bea"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .expect("remove through the API");
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        bea_lobby.closed().await,
        (4000, "removed from the space".to_string())
    );
    assert_eq!(
        refused(&inst, &bea_circle.signal_url, &bea_circle.token).await,
        "no longer allowed in this room"
    );
    bea_lobby.end().await;

    // API: the vault becomes members-only; the guest who unlocked it with the new code leaves.
    // Then the API deletes it with the owner inside: the gathering ends.
    let api = reqwest::Client::new();
    guest
        .submit(
            "/spaces/book-club/rooms/vault/unlock",
            &[("code", "new sesame")],
        )
        .await;
    let mut gus_vault = enter(&inst, &guest, "vault", 6, Some("Gus")).await;
    let mut olive_vault = enter(&inst, &owner, "vault", 7, None).await;
    let patched = api
        .patch(inst.url("/api/v1/spaces/book-club/rooms/vault"))
        .header("authorization", format!("Bearer {token}"))
        .json(&serde_json::json!({"access": "members"}))
        .send()
        .await
        .expect("patch through the API");
    assert_eq!(
        patched.status(),
        StatusCode::OK,
        "{:?}",
        patched.text().await
    );
    assert_eq!(
        gus_vault.closed().await,
        (4000, "no longer allowed in this room".to_string())
    );
    assert!(olive_vault.closed.borrow().is_none(), "the owner stays");
    let deleted = api
        .delete(inst.url("/api/v1/spaces/book-club/rooms/vault"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .expect("delete through the API");
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        olive_vault.closed().await,
        (4000, "room has ended".to_string())
    );
    gus_vault.end().await;
    olive_vault.end().await;

    // Command line: the hideout becomes members-only from another process; the serving
    // process's reconciler sends the guest out within a few seconds.
    let mut gus_hideout = enter(&inst, &guest, "hideout", 3, Some("Gus")).await;
    inst.admin(&[
        "room",
        "update",
        "--space",
        "book-club",
        "--room",
        "hideout",
        "--access",
        "members",
    ])
    .await;
    assert_eq!(
        gus_hideout.closed().await,
        (4000, "no longer allowed in this room".to_string())
    );
    gus_hideout.end().await;

    // Command line: a member removed from the Space leaves the circle; deleting the Room ends
    // the gathering for whoever is left.
    let cleo = member(&inst, &owner, "cleo", "Cleo Member").await;
    let mut cleo_peer = enter(&inst, &cleo, "circle", 4, None).await;
    let mut olive = enter(&inst, &owner, "circle", 5, None).await;
    inst.admin(&[
        "space",
        "remove-member",
        "--space",
        "book-club",
        "--handle",
        "cleo",
    ])
    .await;
    assert_eq!(
        cleo_peer.closed().await,
        (4000, "no longer allowed in this room".to_string())
    );
    inst.admin(&["room", "delete", "--space", "book-club", "--room", "circle"])
        .await;
    assert_eq!(olive.closed().await, (4000, "room has ended".to_string()));
    cleo_peer.end().await;
    olive.end().await;
}

/// Guards issue 10 (item 3): one client cannot take guest seats without end. Tokens for
/// guests are limited per client address; signed-in members are not limited this way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_tokens_are_limited_per_client() {
    let _share = convene_tests::share_machine().await;
    let (inst, owner) = instance_with_space(Backend::Sqlite).await;
    let squatter = inst.browser();
    for i in 0..30 {
        ticket(&inst, &squatter, "lobby", Some("Phantom"))
            .await
            .unwrap_or_else(|r| panic!("guest ticket {i}: {r:?}"));
    }
    let refusal = ticket(&inst, &inst.browser(), "lobby", Some("Phantom"))
        .await
        .expect_err("the client's share of guest tokens is used up");
    assert_eq!(
        refusal.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{:?}",
        refusal.problem
    );
    // Members still enter.
    ticket(&inst, &owner, "lobby", None)
        .await
        .expect("a member's ticket");
    // Ten minutes later the client may take guest tokens again.
    inst.advance_clock(601);
    ticket(&inst, &squatter, "lobby", Some("Phantom"))
        .await
        .expect("a guest ticket after the window");
}

/// Guards issue 11: two processes share one PostgreSQL database. Two people enter the same
/// Room through different processes and meet on the one SFU that holds the gathering; when
/// that process dies, its claim runs out and they meet again on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_database_hold_each_gathering_on_one_sfu() {
    let _share = convene_tests::share_machine().await;
    if convene_tests::postgres_url("two_processes").is_none() {
        return;
    }
    let (mut a, owner) =
        instance_with_space_and(Backend::Postgres, |s| s.gathering_lease_seconds = 3).await;
    let database_url = a.settings.database_url.clone();
    let b = TestInstance::spawn_with(Backend::Postgres, |s| {
        s.database_url = database_url;
        s.gathering_lease_seconds = 3;
    })
    .await;
    let epoch = Instant::now();
    let ada = a.browser();
    let bob = b.browser();
    let mut ada_peer = enter(&a, &ada, "lobby", 0, Some("Ada")).await;
    let mut bob_peer = enter(&b, &bob, "lobby", 1, Some("Bob")).await;
    assert_eq!(metric(&a, "convene_gatherings_held").await, 1);
    assert_eq!(metric(&b, "convene_gatherings_held").await, 0);
    // Bob's signaling went through B: A counts him once his media connected.
    let lobby = lobby_media_id(&a).await;
    testing::until_seated(&a.state().sfu, &lobby, &bob_peer.participant).await;
    assert_eq!(a.state().sfu.room_presence(&lobby), 2);
    // The operators' page shows the gathering on its node, with both inside.
    let page = owner.get("/admin/gatherings").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body
            .contains(&format!("{}</code>: 1 gathering<", a.state().node.url)),
        "{}",
        page.body
    );
    assert!(page.body.contains("this process") && page.body.contains("<td>2</td>"));
    meet(&mut ada_peer, &mut bob_peer, epoch).await;

    // The holder stops (its port closes and it renews nothing; in this one test process its
    // tasks cannot be killed outright, so the two leave as a dropped network would make them).
    // Until the claim runs out B still passes joins on; then the Room moves to B.
    a.stop().await;
    ada_peer.end().await;
    bob_peer.end().await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let ada_again = b.browser();
    let mut ada_peer = enter(&b, &ada_again, "lobby", 0, Some("Ada")).await;
    let mut bob_peer = enter(&b, &bob, "lobby", 1, Some("Bob")).await;
    assert_eq!(metric(&b, "convene_gatherings_held").await, 1);
    meet(&mut ada_peer, &mut bob_peer, epoch).await;
    ada_peer.end().await;
    bob_peer.end().await;
}

/// Both publish and each receives 30 packets in a row of the other's media.
async fn meet(first: &mut Peer, second: &mut Peer, epoch: Instant) {
    first.publish(epoch);
    second.publish(epoch);
    let both = ids(&[&*first, &*second]);
    let mut tally = Tally::default();
    testing::receive_from(&mut first.client, &both, &[1], 30, &mut tally, LIMIT).await;
    let mut tally = Tally::default();
    testing::receive_from(&mut second.client, &both, &[0], 30, &mut tally, LIMIT).await;
}

async fn lobby_media_id(inst: &TestInstance) -> String {
    let space = convene::domain::spaces::by_slug(&inst.state().db, "book-club")
        .await
        .expect("space");
    let room = convene::domain::rooms::by_slug(&inst.state().db, &space, "lobby")
        .await
        .expect("room");
    convene::core::gathering::media_room_id(&room)
}
