//! End-to-end tests of the SFU with real webrtc-rs peers on loopback, driving it
//! through the session API exactly as the instance's WebSocket glue does.

use std::time::{Duration, Instant};

use convene_media::signaling::{ClientMessage, Kind, ServerMessage, TileReport, TrackInfo};
use convene_media::testing::{
    self, Client, Tally, Transport, checked_tail_run, join, join_over, join_with_token,
    start_publishing,
};
use convene_media::{Claims, CloseReason, Error, Sfu, SfuConfig, TokenKey};

const LIMIT: Duration = Duration::from_secs(20);

fn sfu() -> Sfu {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    Sfu::new(SfuConfig::loopback(TokenKey::generate())).expect("SFU starts on loopback")
}

async fn receive_from(
    client: &mut Client,
    ids: &[String],
    from: &[u8],
    run: usize,
    tally: &mut Tally,
) {
    testing::receive_from(client, ids, from, run, tally, LIMIT).await;
}

fn ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("p{i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_peers_receive_each_others_media_intact_and_in_order_and_leaving_removes_tracks() {
    let sfu = sfu();
    let ids = ids(3);
    let epoch = Instant::now();
    let mut clients = Vec::new();
    let mut publishers = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let c = join(&sfu, "space/room", id, i as u8, None).await;
        publishers.push(start_publishing(&c, 30, 1, 1000, epoch));
        clients.push(c);
    }
    assert_eq!(sfu.room_presence("space/room"), 3);
    assert_eq!(sfu.presence().get("space/room"), Some(&3));

    let mut tallies: Vec<Tally> = vec![Tally::new(), Tally::new(), Tally::new()];
    for (i, c) in clients.iter_mut().enumerate() {
        let others: Vec<u8> = (0..3u8).filter(|j| usize::from(*j) != i).collect();
        receive_from(c, &ids, &others, 60, &mut tallies[i]).await;
        // Nobody receives their own media back.
        assert!(!tallies[i].keys().any(|(s, _)| usize::from(*s) == i));
    }
    let m = sfu.metrics();
    assert_eq!(
        (m.gatherings, m.participants, m.published_tracks),
        (1, 3, 6)
    );
    assert!(m.packets_forwarded > 6 * 60, "{m:?}");
    assert!(m.bytes_forwarded > m.packets_forwarded * 100, "{m:?}");

    // Participant 0 has the loud microphone.
    clients[1]
        .wait_event(
            LIMIT,
            |e| matches!(e, ServerMessage::ActiveSpeaker { participant } if participant == "p0"),
        )
        .await;

    // p2 leaves: the others learn it, lose its two tracks, and stop getting its media.
    let leaver = clients.pop().expect("three clients");
    publishers[2].abort();
    leaver.send(&ClientMessage::Leave);
    let reason = tokio::time::timeout(LIMIT, leaver.session.expect("in process"))
        .await
        .expect("session ends")
        .expect("join");
    assert_eq!(reason, CloseReason::Left);
    for c in clients.iter_mut() {
        let mut unpublished = Vec::new();
        let mut left = false;
        while !(left && unpublished.len() == 2) {
            match c.wait_event(LIMIT, |_| true).await {
                ServerMessage::TrackUnpublished(t) if t.participant == "p2" => {
                    unpublished.push(t.kind)
                }
                ServerMessage::ParticipantLeft { id } if id == "p2" => left = true,
                _ => {}
            }
        }
        unpublished.sort_by_key(|k| *k == Kind::Video);
        assert_eq!(unpublished, vec![Kind::Audio, Kind::Video]);
    }
    assert_eq!(sfu.room_presence("space/room"), 2);
    let m = sfu.metrics();
    assert_eq!((m.participants, m.published_tracks), (2, 4));
    // The two remaining still hear and see each other.
    for (i, c) in clients.iter_mut().enumerate() {
        let other = [1u8, 0][i];
        let run = tallies[i]
            .get(&(other, 1))
            .map_or(0, |s| checked_tail_run(s));
        receive_from(c, &ids, &[other], run + 30, &mut tallies[i]).await;
    }
    for p in publishers {
        p.abort();
    }
    for c in clients {
        c.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_get_nothing() {
    let sfu = sfu();
    let now = convene_media::token::unix_now();
    let join_frame = |t: &str| {
        serde_json::to_string(&ClientMessage::Join {
            token: t.to_owned(),
        })
        .expect("json")
    };

    let claims = Claims::new("space/room", "mallory", "M", now, 120);
    let forged = TokenKey::generate().issue(&claims);
    assert!(matches!(
        sfu.connect("space/room", &join_frame(&forged)).await,
        Err(Error::ForgedToken)
    ));

    let expired = sfu
        .token_key()
        .issue(&Claims::new("space/room", "mallory", "M", now - 300, 120));
    assert!(matches!(
        sfu.connect("space/room", &join_frame(&expired)).await,
        Err(Error::ExpiredToken)
    ));

    let other_room = sfu
        .token_key()
        .issue(&Claims::new("space/other", "mallory", "M", now, 120));
    assert!(matches!(
        sfu.connect("space/room", &join_frame(&other_room)).await,
        Err(Error::WrongRoom)
    ));

    assert!(matches!(
        sfu.connect("space/room", "garbage").await,
        Err(Error::MalformedToken)
    ));
    assert!(matches!(
        sfu.connect("space/room", r#"{"type":"ping"}"#).await,
        Err(Error::Protocol(_))
    ));

    // A good token works once; the same token again is refused.
    let good = sfu.token_key().issue(&claims);
    let first = join_with_token(&sfu, "space/room", "mallory", 0, &good, true)
        .await
        .expect("first use");
    let reused = sfu.connect("space/room", &join_frame(&good)).await;
    assert!(matches!(reused, Err(Error::ReusedToken)));
    let frame: serde_json::Value =
        serde_json::from_str(&Error::ReusedToken.to_frame()).expect("json");
    assert_eq!(frame["type"], "error");

    assert_eq!(sfu.room_presence("space/room"), 1);
    assert_eq!(sfu.metrics().joins_refused, 6);
    first.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_is_enforced_and_ended_rooms_refuse_and_disconnect() {
    let sfu = sfu();
    let a = join(&sfu, "space/small", "a", 0, Some(2)).await;
    let b = join(&sfu, "space/small", "b", 1, Some(2)).await;
    let now = convene_media::token::unix_now();
    let mut claims = Claims::new("space/small", "c", "C", now, 120);
    claims.capacity = Some(2);
    let token = sfu.token_key().issue(&claims);
    let refused = join_with_token(&sfu, "space/small", "c", 2, &token, true).await;
    assert!(matches!(refused, Err(Error::RoomFull)));
    assert_eq!(sfu.room_presence("space/small"), 2);

    // Rejoining as the same participant replaces the old session, within capacity.
    let a2 = join(&sfu, "space/small", "a", 0, Some(2)).await;
    let reason = tokio::time::timeout(LIMIT, a.session.expect("in process"))
        .await
        .expect("old ends")
        .expect("join");
    assert_eq!(reason, CloseReason::Replaced);
    assert_eq!(sfu.room_presence("space/small"), 2);

    // Removing a person ends their session.
    sfu.remove_participant("space/small", "b");
    let reason = tokio::time::timeout(LIMIT, b.session.expect("in process"))
        .await
        .expect("b ends")
        .expect("join");
    assert_eq!(reason, CloseReason::Removed);

    // Deleting the room ends the rest and refuses new joins.
    sfu.end_room("space/small");
    let reason = tokio::time::timeout(LIMIT, a2.session.expect("in process"))
        .await
        .expect("a2 ends")
        .expect("join");
    assert_eq!(reason, CloseReason::RoomEnded);
    assert_eq!(sfu.room_presence("space/small"), 0);
    let token = sfu
        .token_key()
        .issue(&Claims::new("space/small", "d", "D", now, 120));
    let refused = sfu
        .connect(
            "space/small",
            &serde_json::to_string(&ClientMessage::Join { token }).expect("json"),
        )
        .await;
    assert!(matches!(refused, Err(Error::RoomEnded)));
    assert_eq!(sfu.metrics().gatherings, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_peer_does_not_slow_the_others_and_garbage_closes_only_its_sender() {
    let sfu = sfu();
    let ids = ids(4);
    let epoch = Instant::now();
    let mut clients = Vec::new();
    let mut publishers = Vec::new();
    for (i, id) in ids.iter().take(3).enumerate() {
        let c = join(&sfu, "space/room", id, i as u8, None).await;
        publishers.push(start_publishing(&c, 30, 1, 1000, epoch));
        clients.push(c);
    }
    let mut tallies: Vec<Tally> = vec![Tally::new(), Tally::new(), Tally::new()];
    receive_from(&mut clients[0], &ids, &[1, 2], 30, &mut tallies[0]).await;

    // p2 stops reading signaling and media entirely.
    clients[2].stall();
    let run = tallies[0].get(&(1, 1)).map_or(0, |s| checked_tail_run(s));
    // Chat keeps flowing between the others, and so does media.
    clients[1].send(&ClientMessage::Chat {
        text: "still here".into(),
    });
    clients[0]
        .wait_event(LIMIT, |e| matches!(e, ServerMessage::Chat { from, text, .. } if from == "p1" && text == "still here"))
        .await;
    // 90 more consecutive packets (3 s of video) while p2 is stuck.
    receive_from(&mut clients[0], &ids, &[1], run + 90, &mut tallies[0]).await;

    // A fourth peer sends garbage: its session ends with a reason, nobody else's does.
    let d = join(&sfu, "space/room", "p3", 3, None).await;
    d.send_raw("{\"type\":\"offer\",\"sdp\":\"not sdp\"}");
    let reason = tokio::time::timeout(LIMIT, d.session.expect("in process"))
        .await
        .expect("garbage ends session")
        .expect("join");
    assert!(
        matches!(&reason, CloseReason::Protocol(why) if why.contains("v=0")),
        "{reason:?}"
    );
    clients[0]
        .wait_event(
            LIMIT,
            |e| matches!(e, ServerMessage::ParticipantLeft { id } if id == "p3"),
        )
        .await;
    let run = checked_tail_run(&tallies[0][&(1, 1)]);
    receive_from(&mut clients[0], &ids, &[1], run + 30, &mut tallies[0]).await;

    // Flooding is cut off by the rate limit.
    let e = join(&sfu, "space/room", "p4", 4, None).await;
    for _ in 0..200 {
        e.send(&ClientMessage::Ping);
    }
    let reason = tokio::time::timeout(LIMIT, e.session.expect("in process"))
        .await
        .expect("flood ends session")
        .expect("join");
    assert_eq!(
        reason,
        CloseReason::Protocol("too many signaling messages".into())
    );
    assert_eq!(sfu.room_presence("space/room"), 3);

    for p in publishers {
        p.abort();
    }
}

fn sfu_with(threads: usize) -> Sfu {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let mut config = SfuConfig::loopback(TokenKey::generate());
    config.media_threads = Some(threads);
    Sfu::new(config).expect("SFU starts on loopback")
}

/// UDP sockets bound to `port` on loopback, from /proc/net/udp.
fn udp_sockets_on(port: u16) -> usize {
    let (unconnected, connected) = udp_sockets_by_peer(port);
    unconnected + connected
}

/// UDP sockets bound to `port` on loopback: (not connected, connected to a peer).
fn udp_sockets_by_peer(port: u16) -> (usize, usize) {
    let table = std::fs::read_to_string("/proc/net/udp").expect("/proc/net/udp");
    let local = format!("0100007F:{port:04X}");
    let mut counts = (0, 0);
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(1) == Some(&local.as_str()) {
            if fields.get(2) == Some(&"00000000:0000") {
                counts.0 += 1;
            } else {
                counts.1 += 1;
            }
        }
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_participants_in_four_rooms_share_one_udp_port_and_meet_only_their_room() {
    const THREADS: usize = 3;
    let sfu = sfu_with(THREADS);
    let port = sfu.media_port().expect("one shared media port");
    // One socket per media thread, all on the one port, before anyone joins...
    assert_eq!(udp_sockets_by_peer(port), (THREADS, 0));
    let ids = ids(30);
    let room_of = |i: usize| format!("space/r{}", i % 4);
    let epoch = Instant::now();
    let mut clients = Vec::new();
    let mut publishers = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let c = join(&sfu, &room_of(i), id, i as u8, None).await;
        publishers.push(start_publishing(&c, 15, 1, 600, epoch));
        clients.push(c);
    }
    let presence = sfu.presence();
    assert_eq!(
        (0..4)
            .map(|r| presence[&format!("space/r{r}")])
            .collect::<Vec<_>>(),
        vec![8, 8, 7, 7]
    );

    for (i, c) in clients.iter_mut().enumerate() {
        let mates: Vec<u8> = (0..30)
            .filter(|j| *j != i && j % 4 == i % 4)
            .map(|j| j as u8)
            .collect();
        let mut tally = Tally::new();
        receive_from(c, &ids, &mates, 10, &mut tally).await;
        // Nothing from another Room (or from oneself) ever arrives.
        for (sender, _) in tally.keys() {
            assert!(mates.contains(sender), "{} got media of p{sender}", c.id);
        }
    }
    // Once everyone is connected: still one socket per media thread, plus for
    // each participant a socket on the same port connected to its address,
    // which brings its datagrams straight to its Room's thread. Nothing binds
    // another port.
    let (unconnected, connected) = udp_sockets_by_peer(port);
    assert_eq!(unconnected, THREADS);
    assert!(
        (30..=30 * 4).contains(&connected),
        "{connected} connected sockets"
    );
    let m = sfu.metrics();
    assert_eq!(
        (m.gatherings, m.participants, m.published_tracks),
        (4, 30, 60)
    );
    assert_eq!(m.room_failures, 0);
    for p in publishers {
        p.abort();
    }
    for c in clients {
        c.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_one_rooms_media_ends_that_room_alone_and_its_people_can_rejoin() {
    // One media thread, so both Rooms share it: the panic must not take it down.
    let sfu = sfu_with(1);
    let ids = ids(5);
    let epoch = Instant::now();
    let rooms = ["space/a", "space/a", "space/b", "space/b"];
    let mut clients = Vec::new();
    let mut publishers = Vec::new();
    for (i, room) in rooms.iter().enumerate() {
        let c = join(&sfu, room, &ids[i], i as u8, None).await;
        publishers.push(start_publishing(&c, 30, 1, 800, epoch));
        clients.push(c);
    }
    let mut tallies: Vec<Tally> = (0..4).map(|_| Tally::new()).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        let mate = (i ^ 1) as u8;
        receive_from(c, &ids, &[mate], 20, &mut tallies[i]).await;
    }

    assert!(sfu.inject_media_fault("space/a"));
    let mut b_clients = clients.split_off(2);
    for c in clients {
        let reason = tokio::time::timeout(LIMIT, c.session.expect("in process"))
            .await
            .expect("room a's sessions end")
            .expect("join");
        assert_eq!(reason, CloseReason::Reconnect);
        assert!(reason.text().starts_with("reconnecting"));
    }
    for p in publishers.drain(..2) {
        p.abort();
    }
    assert_eq!(sfu.room_presence("space/a"), 0);
    assert_eq!(sfu.metrics().room_failures, 1);

    // Room B never noticed: 60 more consecutive packets each way (2 s of video).
    for (k, c) in b_clients.iter_mut().enumerate() {
        let i = k + 2;
        let mate = (i ^ 1) as u8;
        let run = checked_tail_run(&tallies[i][&(mate, 1)]);
        receive_from(c, &ids, &[mate], run + 60, &mut tallies[i]).await;
    }
    assert_eq!(sfu.room_presence("space/b"), 2);

    // Room A's people rejoin and meet again on the same, surviving thread.
    let mut again = Vec::new();
    for i in [0usize, 4] {
        let c = join(&sfu, "space/a", &ids[i], i as u8, None).await;
        publishers.push(start_publishing(&c, 30, 1, 800, epoch));
        again.push(c);
    }
    let mut t = Tally::new();
    receive_from(&mut again[0], &ids, &[4], 20, &mut t).await;
    let mut t = Tally::new();
    receive_from(&mut again[1], &ids, &[0], 20, &mut t).await;
    assert_eq!(sfu.metrics().room_failures, 1);
    for p in publishers {
        p.abort();
    }
    for c in again.into_iter().chain(b_clients) {
        c.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_without_udp_exchanges_media_over_ice_tcp_on_the_media_port() {
    let sfu = sfu_with(2);
    let port = sfu.media_port().expect("one shared media port");
    let ids = ids(2);
    let epoch = Instant::now();
    let mut udp = join(&sfu, "space/tcp", &ids[0], 0, None).await;
    let mut tcp = join_over(&sfu, "space/tcp", &ids[1], 1, None, Transport::TcpOnly).await;
    let publishers = [
        start_publishing(&udp, 30, 1, 1000, epoch),
        start_publishing(&tcp, 30, 1, 1000, epoch),
    ];
    let (mut t0, mut t1) = (Tally::new(), Tally::new());
    receive_from(&mut tcp, &ids, &[0], 60, &mut t1).await;
    receive_from(&mut udp, &ids, &[1], 60, &mut t0).await;
    // The TCP client's only way in: an established stream to the media port.
    let tcp_table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    let local = format!("0100007F:{port:04X}");
    let established = tcp_table
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(1) == Some(&local.as_str()) && f.get(3) == Some(&"01")
        })
        .count();
    assert!(established >= 1, "no ICE-TCP stream to port {port}");
    for p in publishers {
        p.abort();
    }
    udp.close().await;
    tcp.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_port_range_each_participant_gets_a_port_of_its_own() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let mut config = SfuConfig::loopback(TokenKey::generate());
    // A range picked at random below Linux's ephemeral ports (32768 and up,
    // where the clients' own sockets land), so parallel runs rarely meet; the
    // SFU skips ports someone else holds.
    let min = 20_000 + rand::random::<u16>() % 12_000;
    (config.udp_port_min, config.udp_port_max) = (min, min + 200);
    config.media_threads = Some(2);
    let sfu = Sfu::new(config).expect("SFU starts");
    assert_eq!(sfu.media_port(), None);
    let ids = ids(2);
    let epoch = Instant::now();
    let mut a = join(&sfu, "space/range", &ids[0], 0, None).await;
    let mut b = join(&sfu, "space/range", &ids[1], 1, None).await;
    let publishers = [
        start_publishing(&a, 30, 1, 1000, epoch),
        start_publishing(&b, 30, 1, 1000, epoch),
    ];
    let ports: usize = (min..=min + 200).map(udp_sockets_on).sum();
    assert_eq!(ports, 2, "one port of the range per participant");
    let (mut ta, mut tb) = (Tally::new(), Tally::new());
    receive_from(&mut a, &ids, &[1], 30, &mut ta).await;
    receive_from(&mut b, &ids, &[0], 30, &mut tb).await;
    for p in publishers {
        p.abort();
    }
    a.close().await;
    b.close().await;
}

#[test]
fn a_media_port_someone_else_holds_is_an_error_not_a_panic() {
    let holder = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = holder.local_addr().expect("addr").port();
    let mut config = SfuConfig::loopback(TokenKey::generate());
    (config.udp_port_min, config.udp_port_max) = (port, port);
    assert!(matches!(Sfu::new(config), Err(Error::MediaPort(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sfu_on_the_same_port_refuses_to_start_rather_than_share_it() {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free port")
        .port();
    let config = || {
        let mut c = SfuConfig::loopback(TokenKey::generate());
        (c.udp_port_min, c.udp_port_max) = (port, port);
        c
    };
    let first = Sfu::new(config()).expect("the first SFU binds the port");
    assert_eq!(first.media_port(), Some(port));
    assert!(matches!(Sfu::new(config()), Err(Error::MediaPort(_))));
}

/// Guards issue 10 (item 3): a socket that joins but never connects media holds no seat, and
/// only for the grace period; then the session closes, while a participant whose media
/// connected stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seat_without_media_is_given_back_after_the_grace_period() {
    let mut config = SfuConfig::loopback(TokenKey::generate());
    config.media_grace = Duration::from_secs(2);
    let sfu = Sfu::new(config).expect("the SFU starts");
    let real = join(&sfu, "space/small", "real", 0, Some(2)).await;

    // A squatter: a valid token and a join, then silence (no offer, no ICE).
    let now = convene_media::token::unix_now();
    let mut claims = Claims::new("space/small", "squatter", "Phantom", now, 120);
    claims.capacity = Some(2);
    let token = sfu.token_key().issue(&claims);
    let session = sfu
        .connect(
            "space/small",
            &serde_json::to_string(&ClientMessage::Join { token }).expect("json"),
        )
        .await
        .expect("the squatter is admitted at first");
    assert_eq!(sfu.room_presence("space/small"), 1, "but holds no seat");
    assert_eq!(sfu.room_admitted("space/small").len(), 2);
    let (_to_sfu, from_client) = tokio::sync::mpsc::channel::<String>(16);
    let (to_client, mut _from_sfu) = tokio::sync::mpsc::channel::<String>(64);
    let started = Instant::now();
    let squatting = tokio::spawn(session.run_channels(from_client, to_client));

    // The last seat is still there for someone who really comes in.
    let late = join(&sfu, "space/small", "late", 1, Some(2)).await;
    assert_eq!(sfu.room_presence("space/small"), 2);

    let reason = tokio::time::timeout(LIMIT, squatting)
        .await
        .expect("the squatter's session ends")
        .expect("session task");
    assert_eq!(
        reason,
        CloseReason::Failed("no media connection".to_owned())
    );
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert_eq!(
        sfu.room_admitted("space/small").len(),
        2,
        "the squatter is gone"
    );

    // The participants whose media connected are still there after the grace period.
    assert!(real.session.as_ref().is_some_and(|s| !s.is_finished()));
    assert!(late.session.as_ref().is_some_and(|s| !s.is_finished()));
}

/// Guards issue 10 (item 3): two people admitted to the last seat at once both negotiate;
/// the first whose media connects takes the seat, the other is told the Room is full.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_seat_goes_to_whoever_connects_media_first() {
    let sfu = sfu();
    let first = join(&sfu, "space/small", "first", 0, Some(2)).await;
    let now = convene_media::token::unix_now();
    let mut sessions = Vec::new();
    let mut clients = Vec::new();
    for (index, id) in [(1u8, "b"), (2, "c")] {
        let mut claims = Claims::new("space/small", id, id, now, 120);
        claims.capacity = Some(2);
        let token = sfu.token_key().issue(&claims);
        let session = sfu
            .connect(
                "space/small",
                &serde_json::to_string(&ClientMessage::Join { token }).expect("json"),
            )
            .await
            .expect("both are admitted while only one seat is taken");
        let (in_tx, in_rx) = tokio::sync::mpsc::channel::<String>(1024);
        let (out_tx, out_rx) = tokio::sync::mpsc::channel::<String>(64);
        sessions.push(tokio::spawn(session.run_channels(in_rx, out_tx)));
        clients.push(testing::start(id, index, true, in_tx, out_rx));
    }
    let (b, c) = tokio::join!(clients.remove(0), clients.remove(0));
    let (b, c) = (b.expect("b negotiates"), c.expect("c negotiates"));
    let (ended, index, rest) = futures_util::future::select_all(sessions).await;
    assert_eq!(ended.expect("session task"), CloseReason::RoomFull);
    assert_eq!(sfu.room_presence("space/small"), 2);
    let winner = if index == 0 { "c" } else { "b" };
    assert!(
        sfu.room_participants("space/small")
            .iter()
            .any(|p| p.id == winner)
    );
    assert!(rest.iter().all(|s| !s.is_finished()));
    for c in [first, b, c] {
        c.close().await;
    }
}

/// One video packet of the simulcast publisher as a viewer received it.
#[derive(Debug, Clone, Copy)]
struct Seen {
    seq: u16,
    ts: u32,
    ssrc: u32,
    layer: u8,
    keyframe: bool,
}

/// Moves what `viewer` received on `track_id` into `seen`.
fn drain_layers(viewer: &mut Client, track_id: &str, seen: &mut Vec<Seen>) {
    while let Ok(r) = viewer.received.try_recv() {
        if r.track_id != track_id {
            continue;
        }
        let (layer, _, keyframe) = testing::decode_simulcast(&r.payload)
            .unwrap_or_else(|| panic!("not a simulcast test payload: {:?}", r.payload));
        seen.push(Seen {
            seq: r.rtp_seq,
            ts: r.rtp_ts,
            ssrc: r.ssrc,
            layer,
            keyframe,
        });
    }
}

/// Waits until the last `run` packets `viewer` received on `track_id` are all of `layer`.
async fn receive_layer(
    viewer: &mut Client,
    track_id: &str,
    layer: u8,
    run: usize,
    seen: &mut Vec<Seen>,
) {
    let deadline = Instant::now() + LIMIT;
    loop {
        drain_layers(viewer, track_id, seen);
        let tail = seen.iter().rev().take_while(|s| s.layer == layer).count();
        if tail >= run {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no run of {run} packets of layer {layer}; last layers: {:?}",
            seen.iter()
                .rev()
                .take(20)
                .map(|s| s.layer)
                .collect::<Vec<_>>()
        );
        // Polling interval for a failure bound, not synchronisation.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The video track `participant` publishes, as `viewer` is told of it.
async fn video_of(viewer: &mut Client, participant: &str) -> TrackInfo {
    match viewer
        .wait_event(LIMIT, |e| {
            matches!(e, ServerMessage::TrackPublished(t) if t.participant == participant && t.kind == Kind::Video)
        })
        .await
    {
        ServerMessage::TrackPublished(t) => t,
        other => panic!("not a track: {other:?}"),
    }
}

fn tile(track_id: &str, width: u32, height: u32) -> ClientMessage {
    ClientMessage::Tiles {
        tiles: vec![TileReport {
            mid: None,
            track_id: track_id.to_owned(),
            width,
            height,
            visible: true,
            screen: false,
        }],
    }
}

/// Issue 12: a publisher sends three simulcast layers; a viewer showing it in a
/// small tile gets the low layer only, and the publisher is told to pause the
/// others; a large tile moves the viewer up, on a keyframe of the top layer the
/// SFU asked for (the middle layer pauses; the lowest stays while anyone
/// watches, as the fallback); a hidden tile pauses everything. Across both switches the viewer sees one SSRC whose sequence
/// numbers go up by exactly one and whose timestamps never go back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_tile_gets_the_low_simulcast_layer_and_a_large_one_moves_up_on_a_keyframe_seamlessly()
 {
    let sfu = sfu();
    let epoch = Instant::now();
    let mut publisher = testing::join_simulcast(&sfu, "space/sim", "p0", 0).await;
    let publishing = testing::publish_simulcast(&publisher, 30, epoch);
    let mut viewer = join(&sfu, "space/sim", "p1", 1, None).await;
    let video = video_of(&mut viewer, "p0").await;

    viewer.send(&tile(&video.track_id, 320, 180));
    let mut seen = Vec::new();
    receive_layer(&mut viewer, &video.track_id, 0, 60, &mut seen).await;
    publisher
        .wait_event(LIMIT, |e| {
            matches!(e, ServerMessage::SendLayers { mid, rids } if *mid == video.mid && rids == &["q"])
        })
        .await;

    viewer.send(&tile(&video.track_id, 1280, 720));
    receive_layer(&mut viewer, &video.track_id, 2, 60, &mut seen).await;
    publisher
        .wait_event(LIMIT, |e| {
            matches!(e, ServerMessage::SendLayers { rids, .. } if rids.iter().any(|r| r == "f") && !rids.iter().any(|r| r == "h"))
        })
        .await;

    // One stream to the viewer, however many layers it came from.
    assert!(seen.iter().all(|s| s.ssrc == seen[0].ssrc));
    for pair in seen.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        assert_eq!(
            b.seq,
            a.seq.wrapping_add(1),
            "a gap or reordering: {a:?} then {b:?}"
        );
        assert!(
            b.ts.wrapping_sub(a.ts) < 0x8000_0000,
            "timestamp went back: {a:?} then {b:?}"
        );
        if b.layer != a.layer {
            assert!(b.keyframe, "switched to layer {} off a keyframe", b.layer);
        }
    }
    assert!(
        seen[0].keyframe,
        "started off a keyframe: {:?}",
        &seen[..seen.len().min(3)]
    );
    let layers: Vec<u8> = std::iter::once(seen[0].layer)
        .chain(
            seen.windows(2)
                .filter(|w| w[0].layer != w[1].layer)
                .map(|w| w[1].layer),
        )
        .collect();
    assert!(layers.ends_with(&[0, 2]), "layers in turn: {layers:?}");
    let m = sfu.metrics();
    assert!(m.layer_switches >= 2, "{m:?}");
    assert!(m.keyframe_requests >= 2, "{m:?}");
    // The viewer's transport-wide feedback gave the SFU an estimate of its downlink.
    let estimates = sfu.downlink_estimates();
    assert!(
        estimates
            .iter()
            .any(|e| e.participant == "p1" && e.room == "space/sim" && e.bits_per_second > 0),
        "{estimates:?}"
    );

    // Scrolled away: nobody takes any layer, so the publisher may send none.
    viewer.send(&ClientMessage::Tiles {
        tiles: vec![TileReport {
            mid: None,
            track_id: video.track_id.clone(),
            width: 1280,
            height: 720,
            visible: false,
            screen: false,
        }],
    });
    publisher
        .wait_event(
            LIMIT,
            |e| matches!(e, ServerMessage::SendLayers { rids, .. } if rids.is_empty()),
        )
        .await;
    publishing.abort();
}

/// Issue 12: resuming a paused layer makes a browser reconfigure its encoder,
/// which on a busy machine stills every layer of that camera for seconds, so
/// the SFU resumes one only for a tile that needs it. Someone joining a Room
/// whose watchers all show a camera small gets the layer that flows until
/// their own tile sizes arrive, instead of waking the top layer for a moment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomer_whose_tiles_are_not_known_yet_does_not_wake_paused_layers() {
    let sfu = sfu();
    let mut publisher = testing::join_simulcast(&sfu, "space/wake", "p0", 0).await;
    let publishing = testing::publish_simulcast(&publisher, 30, Instant::now());
    let mut first = join(&sfu, "space/wake", "p1", 1, None).await;
    let video = video_of(&mut first, "p0").await;
    first.send(&tile(&video.track_id, 320, 180));
    publisher
        .wait_event(
            LIMIT,
            |e| matches!(e, ServerMessage::SendLayers { rids, .. } if rids == &["q"]),
        )
        .await;

    // A newcomer who has not said how it shows the camera: it gets the low
    // layer, and the publisher is asked for nothing more.
    let mut second = join(&sfu, "space/wake", "p2", 2, None).await;
    let mut seen = Vec::new();
    receive_layer(&mut second, &video.track_id, 0, 30, &mut seen).await;
    let mut asked = Vec::new();
    while let Ok(e) = publisher.events.try_recv() {
        if let ServerMessage::SendLayers { rids, .. } = e {
            asked.push(rids);
        }
    }
    assert!(
        asked.is_empty(),
        "layers woken for a tile nobody knows: {asked:?}"
    );

    // Its tile is large: now the top layer is worth waking.
    second.send(&tile(&video.track_id, 1280, 720));
    publisher
        .wait_event(LIMIT, |e| {
            matches!(e, ServerMessage::SendLayers { rids, .. } if rids.iter().any(|r| r == "f"))
        })
        .await;
    receive_layer(&mut second, &video.track_id, 2, 30, &mut seen).await;
    publishing.abort();
}

/// Issue 12: three simulcast publishers join one Room one after another, and
/// each keeps receiving the video of both others. Each join makes the SFU
/// renegotiate the connections of those already there, and each publisher, as
/// a browser does, names its layers (mid and rid header extensions) on its
/// first frames only: the SFU must keep every layer's SSRC across those
/// renegotiations (webrtc-rs 0.21.1 rebuilds a simulcast receiver without them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulcast_publishers_joining_in_turn_keep_receiving_each_others_video() {
    use std::collections::HashMap;

    /// A third of a second of frames at 30 fps, as a browser names its layers
    /// until the first receiver reports.
    const NAMED_FRAMES: u32 = 10;
    let sfu = sfu();
    let epoch = Instant::now();
    let mut clients = Vec::new();
    let mut publishing = Vec::new();
    for i in 0..3u8 {
        let client = testing::join_simulcast(&sfu, "space/turns", &format!("p{i}"), i).await;
        publishing.push(testing::publish_simulcast_naming(
            &client,
            30,
            epoch,
            NAMED_FRAMES,
        ));
        clients.push(client);
        // The scenario, not synchronisation: people stay a while before the
        // next one joins, and the layers flow unnamed by then.
        tokio::time::sleep(Duration::from_millis(800)).await;
    }

    // Each shows both others' cameras in small tiles.
    let mut cameras = Vec::new();
    for client in &mut clients {
        let videos: HashMap<String, String> = client
            .others_cameras(2, LIMIT)
            .await
            .into_iter()
            .map(|t| (t.track_id, t.participant))
            .collect();
        client.send(&ClientMessage::Tiles {
            tiles: videos
                .keys()
                .map(|track_id| TileReport {
                    mid: None,
                    track_id: track_id.clone(),
                    width: 320,
                    height: 180,
                    visible: true,
                    screen: false,
                })
                .collect(),
        });
        cameras.push(videos);
    }

    // Settle, then every second of a five-second watch brings each client
    // video frames from both others.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for client in &mut clients {
        while client.received.try_recv().is_ok() {}
    }
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    for (client, cameras) in clients.iter_mut().zip(&cameras) {
        // Per publisher, camera packets in each second of the watch.
        let mut per_second: HashMap<String, [u32; 5]> = HashMap::new();
        while let Ok(r) = client.received.try_recv() {
            let Some(publisher) = cameras.get(&r.track_id) else {
                continue;
            };
            let second = r.at.saturating_duration_since(start).as_secs() as usize;
            if let Some(n) = per_second
                .entry(publisher.clone())
                .or_default()
                .get_mut(second)
            {
                *n += 1;
            }
        }
        for other in clients_ids(&client.id) {
            let counts = per_second.get(&other).copied().unwrap_or_default();
            assert!(
                counts.iter().all(|n| *n >= 10),
                "{} froze on {other}'s video: packets per second {counts:?}",
                client.id
            );
        }
    }
    for p in publishing {
        p.abort();
    }
    for c in clients {
        c.close().await;
    }
}

/// The other two of the three publishers p0, p1, p2.
fn clients_ids(me: &str) -> Vec<String> {
    (0..3)
        .map(|i| format!("p{i}"))
        .filter(|id| id != me)
        .collect()
}

/// The video packets `client` received from sender `from`, by synthetic
/// sequence number, with how many copies of each arrived.
fn video_from(client: &mut Client, from: u8, got: &mut std::collections::HashMap<u32, u32>) {
    while let Ok(r) = client.received.try_recv() {
        if let Some((sender, 1, seq, _)) = testing::decode(&r.payload)
            && sender == from
        {
            *got.entry(seq).or_default() += 1;
        }
    }
}

/// The video packets `client` received from sender `from` until one numbered
/// `last` or later came, with how many copies of each.
async fn video_until(
    client: &mut Client,
    from: u8,
    last: u32,
) -> std::collections::HashMap<u32, u32> {
    let mut got = std::collections::HashMap::new();
    let deadline = Instant::now() + LIMIT;
    while !got.keys().any(|q| *q >= last) {
        assert!(
            Instant::now() < deadline,
            "video stopped at {:?}",
            got.keys().max()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        video_from(client, from, &mut got);
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packets_lost_on_either_leg_are_recovered_by_nack_and_rtx_and_asked_for_once() {
    use convene_media::impairment::{Direction, Impairment, Loss};
    use std::collections::HashSet;
    use std::sync::atomic::Ordering;

    let sfu = sfu();
    let chosen = |seqs: std::ops::Range<u32>| -> HashSet<(u8, u8, u32)> {
        seqs.map(|q| (0u8, 1u8, q)).collect()
    };
    // Lost on the publisher's uplink: the SFU must ask the publisher again.
    let up_lost = chosen(200..205);
    // Lost on the subscriber's downlink: the SFU must resend from its history.
    let down_lost = chosen(300..306);
    let publisher_link = testing::Link::new(Impairment {
        up: Direction {
            loss: Loss::Chosen(up_lost.clone()),
            ..Default::default()
        },
        ..Default::default()
    });
    let viewer_link = testing::Link::new(Impairment {
        down: Direction {
            loss: Loss::Chosen(down_lost.clone()),
            ..Default::default()
        },
        ..Default::default()
    });
    let (up_log, down_log) = (publisher_link.log.clone(), viewer_link.log.clone());
    let publisher = testing::join_behind(&sfu, "space/lossy", "p0", 0, publisher_link).await;
    let mut viewer = testing::join_behind(&sfu, "space/lossy", "p1", 1, viewer_link).await;
    let sending = start_publishing(&publisher, 30, 3, 1000, Instant::now());

    // 90 video packets a second: sequence 500 comes about 5.5 s in.
    let mut got = video_until(&mut viewer, 0, 500).await;
    // Two more NACK intervals, so a generator that keeps asking would show it.
    tokio::time::sleep(Duration::from_millis(400)).await;
    video_from(&mut viewer, 0, &mut got);
    sending.abort();

    // The links did drop them...
    let dropped_up = up_log.dropped_up.lock().expect("log").clone();
    let dropped_down = down_log.dropped_down.lock().expect("log").clone();
    assert_eq!(
        dropped_up, up_lost,
        "the uplink dropped exactly the chosen packets"
    );
    assert_eq!(
        dropped_down, down_lost,
        "the downlink dropped exactly the chosen packets"
    );
    // ...and every packet from 150 to 500 arrived all the same.
    let missing: Vec<u32> = (150..=500).filter(|q| !got.contains_key(q)).collect();
    assert!(missing.is_empty(), "never arrived: {missing:?}");
    // The downlink losses came back as RTX from the SFU's history.
    let rtx = down_log.rtx_down.lock().expect("log").clone();
    for key in &down_lost {
        let copies = rtx.get(key).copied().unwrap_or(0);
        assert!((1..=2).contains(&copies), "{key:?}: {copies} RTX copies");
    }
    // The SFU asked the publisher for what its uplink lost, the viewer asked
    // the SFU for what its downlink lost (and maybe, once, for the uplink's
    // losses while the SFU was still fetching them): a packet that came back
    // is not asked for again every 100 ms.
    let asked_up = up_log.nacked_seqs_received.load(Ordering::Relaxed);
    let asked_down = down_log.nacked_seqs.load(Ordering::Relaxed);
    let lost = (up_lost.len() + down_lost.len()) as u64;
    assert!(
        (up_lost.len() as u64..=2 * up_lost.len() as u64).contains(&asked_up),
        "the SFU asked the publisher for {asked_up} sequence numbers"
    );
    assert!(
        (down_lost.len() as u64..=2 * lost).contains(&asked_down),
        "the viewer asked the SFU for {asked_down} sequence numbers"
    );
    publisher.close().await;
    viewer.close().await;
}

/// Issue 12: on a slow downlink (a round trip of 200 ms) the viewer asks
/// again for a lost packet every 100 ms while the first retransmission is
/// still on its way. The SFU resends a packet at most once a round trip, so
/// each loss costs the link one copy, not one per request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_packet_lost_on_a_slow_downlink_is_resent_once_per_round_trip() {
    use convene_media::impairment::{Direction, Impairment, Loss};
    use std::collections::HashSet;

    let sfu = sfu();
    let down_lost: HashSet<(u8, u8, u32)> = (300..330).step_by(3).map(|q| (0u8, 1u8, q)).collect();
    let viewer_link = testing::Link::new(Impairment {
        down: Direction {
            loss: Loss::Chosen(down_lost.clone()),
            delay: Duration::from_millis(170),
            ..Default::default()
        },
        up: Direction {
            delay: Duration::from_millis(30),
            ..Default::default()
        },
        ..Default::default()
    });
    let down_log = viewer_link.log.clone();
    let publisher = testing::join(&sfu, "space/slow", "p0", 0, None).await;
    let mut viewer = testing::join_behind(&sfu, "space/slow", "p1", 1, viewer_link).await;
    let sending = start_publishing(&publisher, 30, 3, 1000, Instant::now());

    let got = video_until(&mut viewer, 0, 450).await;
    sending.abort();

    assert_eq!(
        down_log.dropped_down.lock().expect("log").clone(),
        down_lost
    );
    let missing: Vec<u32> = (250..=450).filter(|q| !got.contains_key(q)).collect();
    assert!(missing.is_empty(), "never arrived: {missing:?}");
    // Each loss was asked for two or three times before its repair arrived;
    // one copy came back (a second only where the round trip measured short).
    let rtx = down_log.rtx_down.lock().expect("log").clone();
    let copies: Vec<u32> = down_lost
        .iter()
        .map(|k| rtx.get(k).copied().unwrap_or(0))
        .collect();
    let total: u32 = copies.iter().sum();
    assert!(
        copies.iter().all(|c| *c >= 1) && total <= down_lost.len() as u32 * 3 / 2,
        "RTX copies per lost packet: {copies:?}"
    );
    publisher.close().await;
    viewer.close().await;
}

/// Issue 12: a packet a simulcast publisher's uplink loses is asked for again
/// and forwarded, so the viewer's picture never waits for a keyframe. The
/// publisher resends it on an RTX stream no description names, naming the
/// layer it repairs in the repaired-rid extension as browsers do; webrtc-rs
/// never binds such a stream, so the SFU learns it from that extension.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packets_a_simulcast_layer_loses_on_the_uplink_are_repaired() {
    use convene_media::impairment::{Direction, Impairment, Loss, SIMULCAST_KIND};
    use std::collections::HashSet;
    use std::sync::atomic::Ordering;

    let sfu = sfu();
    // 30 frames a second on each layer: frame 150 comes 5 s in, well after
    // the viewer settled on the low layer.
    let lost: HashSet<(u8, u8, u32)> = (120..125)
        .chain([135])
        .map(|f| (0, SIMULCAST_KIND, f))
        .collect();
    let link = testing::Link::new(Impairment {
        up: Direction {
            loss: Loss::Chosen(lost.clone()),
            ..Default::default()
        },
        ..Default::default()
    });
    let log = link.log.clone();
    let mut publisher =
        testing::join_simulcast_behind(&sfu, "space/lossy-sim", "p0", 0, link).await;
    let publishing = testing::publish_simulcast(&publisher, 30, Instant::now());
    let mut viewer = join(&sfu, "space/lossy-sim", "p1", 1, None).await;
    let video = video_of(&mut viewer, "p0").await;
    viewer.send(&tile(&video.track_id, 320, 180));
    publisher
        .wait_event(LIMIT, |e| {
            matches!(e, ServerMessage::SendLayers { mid, rids } if *mid == video.mid && rids == &["q"])
        })
        .await;

    let mut frames: HashSet<u32> = HashSet::new();
    let mut first_low: Option<u32> = None;
    let deadline = Instant::now() + LIMIT;
    while !frames.iter().any(|f| *f >= 160) {
        assert!(
            Instant::now() < deadline,
            "video stopped at frame {:?}",
            frames.iter().max()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        while let Ok(r) = viewer.received.try_recv() {
            if r.track_id != video.track_id {
                continue;
            }
            if let Some((0, frame, _)) = testing::decode_simulcast(&r.payload) {
                first_low.get_or_insert(frame);
                frames.insert(frame);
            }
        }
    }
    publishing.abort();

    assert_eq!(
        log.dropped_up.lock().expect("log").clone(),
        lost,
        "the uplink dropped exactly the chosen packets"
    );
    let first = first_low.expect("low layer frames arrived");
    assert!(first < 120, "the low layer only started at frame {first}");
    let missing: Vec<u32> = (first..=160).filter(|f| !frames.contains(f)).collect();
    assert!(missing.is_empty(), "never arrived: {missing:?}");
    let asked = log.nacked_seqs_received.load(Ordering::Relaxed);
    assert!(
        (lost.len() as u64..=2 * lost.len() as u64).contains(&asked),
        "the SFU asked the publisher for {asked} sequence numbers"
    );
    publisher.close().await;
    viewer.close().await;
}

/// Issue 12: a publisher probing its uplink sends packets again as RTX, as
/// Chromium does once RTX is negotiated. The SFU takes them as repairs of
/// packets that had arrived already and forwards none of them, so they cost
/// the viewer's downlink nothing. (The viewer's SRTP would drop such copies
/// as replays: what the SFU sent is what tells.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packets_a_publisher_sends_again_to_probe_are_not_forwarded() {
    use convene_media::impairment::Impairment;
    use std::collections::HashSet;

    let sfu = sfu();
    let mut link = testing::Link::new(Impairment::default());
    link.probe_every = Some(3);
    let publisher = testing::join_simulcast_behind(&sfu, "space/probing", "p0", 0, link).await;
    let publishing = testing::publish_simulcast(&publisher, 30, Instant::now());
    // The viewer sends nothing: all the SFU forwards goes to it.
    let mut viewer = join(&sfu, "space/probing", "p1", 1, None).await;
    let video = video_of(&mut viewer, "p0").await;
    viewer.send(&tile(&video.track_id, 320, 180));

    let mut got: HashSet<(String, u16)> = HashSet::new();
    let deadline = Instant::now() + LIMIT;
    while got.len() < 300 || sfu.metrics().duplicates < 30 {
        assert!(
            Instant::now() < deadline,
            "{} packets, {} duplicates",
            got.len(),
            sfu.metrics().duplicates
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        while let Ok(r) = viewer.received.try_recv() {
            got.insert((r.track_id, r.rtp_seq));
        }
    }
    publishing.abort();
    // What is on its way arrives; then each packet the SFU sent is one the viewer got.
    tokio::time::sleep(Duration::from_millis(500)).await;
    while let Ok(r) = viewer.received.try_recv() {
        got.insert((r.track_id, r.rtp_seq));
    }
    let forwarded = sfu.metrics().packets_forwarded;
    assert!(
        forwarded <= got.len() as u64 + 3,
        "{forwarded} packets forwarded for {} different ones",
        got.len()
    );
    publisher.close().await;
    viewer.close().await;
}

/// Issue 12: the SFU reports the arrival of what a publisher sends in
/// transport-wide congestion control feedback, for every simulcast layer and
/// the audio, as a browser's own uplink estimate needs: without it Chromium
/// never raises its estimate enough to send the upper layers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_gets_transport_wide_feedback_for_each_layer_it_sends() {
    let sfu = sfu();
    let epoch = Instant::now();
    let publisher = testing::join_simulcast(&sfu, "space/twcc", "p0", 0).await;
    let publishing = testing::publish_simulcast(&publisher, 30, epoch);
    let mut ssrcs: Vec<u32> = publisher.simulcast.iter().map(|(_, ssrc)| *ssrc).collect();
    ssrcs.push(publisher.audio_ssrc);
    let deadline = Instant::now() + LIMIT;
    let enough = |fates: &std::collections::HashMap<u32, testing::Fates>| {
        ssrcs
            .iter()
            .all(|s| fates.get(s).is_some_and(|f| f.arrived >= 30))
    };
    let mut fates = publisher.feedback.by_ssrc();
    while !enough(&fates) {
        assert!(
            Instant::now() < deadline,
            "feedback for {ssrcs:?} within {LIMIT:?}: {fates:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        fates = publisher.feedback.by_ssrc();
    }
    // Loopback loses nothing: a packet reported lost would halve a browser's estimate.
    let (arrived, lost) = fates
        .values()
        .fold((0, 0), |(a, l), f| (a + f.arrived, l + f.lost));
    assert!(
        lost * 50 <= arrived,
        "{lost} of {} reported lost: {fates:?}",
        arrived + lost
    );
    publishing.abort();
    publisher.close().await;
}

/// The connection quality each client has been told of, by participant, from its events so far.
fn qualities(
    client: &mut Client,
    seen: &mut std::collections::HashMap<String, Vec<convene_media::quality::Level>>,
) {
    while let Ok(event) = client.events.try_recv() {
        if let ServerMessage::Quality { participant, level } = event {
            seen.entry(participant).or_default().push(level);
        }
    }
}

/// Issue 12: a participant behind a link that loses a fifth of its packets each way is
/// reported poor to the others (and to itself), one whose uplink delays packets unevenly (by
/// 10 to 150 ms) is not called good (its audio jitter; also, its transport-wide feedback
/// arrives reordered, which the congestion controller reads as downlink loss), a participant on a clean link stays good, and someone who
/// enters later is told the levels and who speaks at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lossy_participant_is_reported_poor_and_a_clean_one_good() {
    use convene_media::impairment::{Direction, Impairment};
    use convene_media::quality::Level;
    use std::collections::HashMap;

    let sfu = sfu();
    let room = "space/quality";
    let lossy = testing::Link::new(Impairment::symmetric(
        0.2,
        Duration::ZERO,
        Duration::ZERO,
        12,
    ));
    let clean = join(&sfu, room, "p0", 0, None).await;
    let mut poor = testing::join_behind(&sfu, room, "p1", 1, lossy).await;
    let mut watcher = join(&sfu, room, "p2", 2, None).await;
    let jittery = testing::join_behind(
        &sfu,
        room,
        "p4",
        4,
        testing::Link::new(Impairment {
            up: Direction {
                delay: Duration::from_millis(80),
                jitter: Duration::from_millis(70),
                ..Direction::default()
            },
            seed: 4,
            ..Impairment::default()
        }),
    )
    .await;
    let epoch = Instant::now();
    let sending = [
        start_publishing(&clean, 30, 3, 1000, epoch),
        start_publishing(&poor, 30, 3, 1000, epoch),
        start_publishing(&watcher, 30, 1, 1000, epoch),
        start_publishing(&jittery, 30, 1, 1000, epoch),
    ];

    let mut seen: HashMap<String, Vec<Level>> = HashMap::new();
    let mut own: HashMap<String, Vec<Level>> = HashMap::new();
    let deadline = Instant::now() + LIMIT;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        qualities(&mut watcher, &mut seen);
        qualities(&mut poor, &mut own);
        let last = |who: &str| seen.get(who).and_then(|l| l.last().copied());
        if last("p1") == Some(Level::Poor)
            && last("p0") == Some(Level::Good)
            && last("p4").is_some_and(|l| l < Level::Good)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the watcher was told {seen:?}; the lossy participant {own:?}"
        );
    }
    // The clean participant was never anything but good.
    assert!(
        seen["p0"].iter().all(|l| *l == Level::Good),
        "the clean participant: {:?}",
        seen["p0"]
    );
    // The lossy one hears it too (its signaling is not on the lossy link).
    let deadline = Instant::now() + Duration::from_secs(2);
    while own.get("p1").and_then(|l| l.last()) != Some(&Level::Poor) {
        assert!(
            Instant::now() < deadline,
            "the lossy participant was told {own:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        qualities(&mut poor, &mut own);
    }
    // Hysteresis: a handful of changes at most, not one a second.
    assert!(seen["p1"].len() <= 3, "flickered: {:?}", seen["p1"]);
    // The operator's view (`/metrics`) counts the same levels: p1 poor, p0 good.
    let counted = sfu.metrics().quality;
    let at = |level: Level| {
        convene_media::Metrics::QUALITY_LEVELS
            .iter()
            .position(|l| *l == level)
            .map_or(0, |i| counted[i])
    };
    assert!(
        at(Level::Poor) >= 1 && at(Level::Good) >= 1,
        "participants by quality (good, fair, poor, lost): {counted:?}"
    );

    // A newcomer is told the levels of everyone present right after welcome, and who
    // speaks (publisher 0 sends loud audio levels).
    let mut late = join(&sfu, room, "p3", 3, None).await;
    let mut told: HashMap<String, Vec<Level>> = HashMap::new();
    let mut speaker = None;
    let deadline = Instant::now() + Duration::from_secs(2);
    while !(told.contains_key("p0") && told.contains_key("p1") && speaker.is_some()) {
        assert!(
            Instant::now() < deadline,
            "the newcomer was told {told:?}, speaker {speaker:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        while let Ok(event) = late.events.try_recv() {
            match event {
                ServerMessage::Quality { participant, level } => {
                    told.entry(participant).or_default().push(level);
                }
                ServerMessage::ActiveSpeaker { participant } => speaker = Some(participant),
                _ => {}
            }
        }
    }
    assert_eq!(speaker.as_deref(), Some("p0"));
    assert_eq!(told["p0"].first(), Some(&Level::Good));
    assert_eq!(told["p1"].first(), Some(&Level::Poor));
    for s in sending {
        s.abort();
    }
}
