//! Janus (the Janus WebRTC Gateway 1.x) and its VideoRoom plugin, as the
//! benchmarks that measure Convene beside it drive it: finding the install,
//! starting a process with a configuration of its own, and one session over
//! its WebSocket API making the VideoRoom requests.
//!
//! `sfu_bench` and `freeze_bench` both include this file (`#[path]`), so the
//! two compare against the same Janus, configured and spoken to alike; what
//! they publish, how they subscribe and what they measure stays in each.
//!
//! Two variables help when Janus refuses something:
//! `CONVENE_BENCH_JANUS_DEBUG` runs Janus at debug level 5 and prints each
//! publisher's offer, Janus's answer and the trickled candidates on stderr;
//! `CONVENE_BENCH_KEEP_JANUS_LOG` keeps the temporary folder with Janus's
//! configuration and `janus.log` after the run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use convene_media::signaling::{Candidate, ClientMessage};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use webrtc::peer_connection::{PeerConnection, RTCSessionDescription};

type Result<T, E = String> = std::result::Result<T, E>;

/// Where Debian and others put Janus's plugins.
const LIB_DIRS: [&str; 4] = [
    "/usr/lib/x86_64-linux-gnu/janus",
    "/usr/lib/aarch64-linux-gnu/janus",
    "/usr/lib/janus",
    "/opt/janus/lib/janus",
];
/// Longest Janus may take to listen, and to answer a request.
const PATIENCE: Duration = Duration::from_secs(15);
/// Longest a subscriber waits for its feeds to be published.
const FEEDS_LIMIT: Duration = Duration::from_secs(20);

fn debugging() -> bool {
    std::env::var_os("CONVENE_BENCH_JANUS_DEBUG").is_some()
}

/// Janus's plugin folder, if Janus is installed (`JANUS_LIB_DIR` overrides
/// where it is looked for).
pub fn install() -> Option<PathBuf> {
    let found = std::process::Command::new("janus")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        // Janus 1.1 prints its version and then exits with 1 ("unknown option").
        .is_ok();
    if !found {
        return None;
    }
    if let Ok(dir) = std::env::var("JANUS_LIB_DIR") {
        return Some(PathBuf::from(dir));
    }
    LIB_DIRS
        .iter()
        .map(PathBuf::from)
        .find(|d| d.join("plugins").join("libjanus_videoroom.so").exists())
}

/// The VideoRoom feed id of participant `index`.
pub fn feed_id(index: u8) -> u64 {
    1000 + u64::from(index)
}

/// A Janus process with a configuration of its own in a temporary folder.
pub struct Janus {
    child: tokio::process::Child,
    pid: u32,
    port: u16,
    dir: PathBuf,
}

impl Janus {
    /// Starts Janus from the plugin folder `lib` (see [`install`]) with its
    /// WebSocket API on a free loopback port and ICE on `media_ip` only, and
    /// waits until it listens.
    pub async fn start(lib: &Path, media_ip: impl std::fmt::Display) -> Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| format!("a free loopback port: {e}"))?;
        let dir = std::env::temp_dir().join(format!("convene-janus-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        write_config(&dir, lib, port, media_ip)?;
        let log_path = dir.join("janus.log");
        let log =
            std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
        let child = tokio::process::Command::new("janus")
            .arg("--configs-folder")
            .arg(&dir)
            .arg("--config")
            .arg(dir.join("janus.jcfg"))
            .stdout(log.try_clone().map_err(|e| format!("Janus log: {e}"))?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("janus: {e}"))?;
        let pid = child.id().ok_or("Janus exited at once")?;
        let deadline = Instant::now() + PATIENCE;
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if Instant::now() > deadline {
                return Err(format!(
                    "Janus did not listen on {port}; see {}",
                    log_path.display()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Self {
            child,
            pid,
            port,
            dir,
        })
    }

    /// The process id, to measure Janus from outside.
    // Only `sfu_bench` measures Janus's CPU and memory; `freeze_bench`, which
    // includes this file too, does not.
    #[allow(dead_code)]
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The loopback port of Janus's WebSocket API.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills Janus and removes its folder, unless `CONVENE_BENCH_KEEP_JANUS_LOG` is set.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
        if std::env::var_os("CONVENE_BENCH_KEEP_JANUS_LOG").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Only what the benchmarks need: VideoRoom, the WebSocket transport on
/// loopback, ICE on `media_ip`, no session timeouts, modest logging.
fn write_config(dir: &Path, lib: &Path, port: u16, media_ip: impl std::fmt::Display) -> Result<()> {
    let lib = lib.display();
    let main = format!(
        r#"general: {{
	configs_folder = "{dir}"
	plugins_folder = "{lib}/plugins"
	transports_folder = "{lib}/transports"
	events_folder = "{lib}/events"
	loggers_folder = "{lib}/loggers"
	debug_level = {level}
	log_to_stdout = true
	session_timeout = 0
	server_name = "convene-bench"
}}
media: {{
	rtp_port_range = "40000-49999"
}}
nat: {{
	ice_enforce_list = "{media_ip}"
	ignore_mdns = true
}}
plugins: {{
	disable = "libjanus_audiobridge.so,libjanus_echotest.so,libjanus_duktape.so,libjanus_lua.so,libjanus_nosip.so,libjanus_recordplay.so,libjanus_sip.so,libjanus_streaming.so,libjanus_textroom.so,libjanus_videocall.so,libjanus_voicemail.so"
}}
transports: {{
	disable = "libjanus_http.so,libjanus_mqtt.so,libjanus_nanomsg.so,libjanus_pfunix.so,libjanus_rabbitmq.so"
}}
events: {{
	broadcast = false
	disable = "libjanus_gelfevh.so,libjanus_mqttevh.so,libjanus_nanomsgevh.so,libjanus_rabbitmqevh.so,libjanus_sampleevh.so,libjanus_wsevh.so"
}}
loggers: {{
	disable = "libjanus_jsonlog.so"
}}
"#,
        dir = dir.display(),
        level = if debugging() { 5 } else { 3 },
    );
    let ws = format!(
        r#"general: {{
	json = "compact"
	ws = true
	ws_port = {port}
	ws_ip = "127.0.0.1"
	wss = false
}}
admin: {{
	admin_ws = false
}}
"#
    );
    for (name, text) in [
        ("janus.jcfg", main.as_str()),
        ("janus.transport.websockets.jcfg", ws.as_str()),
        ("janus.plugin.videoroom.jcfg", "general: {\n}\n"),
    ] {
        std::fs::write(dir.join(name), text).map_err(|e| format!("Janus's {name}: {e}"))?;
    }
    Ok(())
}

/// One WebSocket to Janus with one Janus session on it.
pub struct Session {
    out: mpsc::UnboundedSender<String>,
    pending: Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>>,
    next: AtomicU64,
    id: u64,
}

impl Session {
    /// Connects to Janus's WebSocket API on `port` and creates a session.
    pub async fn open(port: u16) -> Result<Arc<Self>> {
        let mut request = format!("ws://127.0.0.1:{port}/")
            .into_client_request()
            .map_err(|e| e.to_string())?;
        request.headers_mut().insert(
            "sec-websocket-protocol",
            "janus-protocol".parse().map_err(|_| "header")?,
        );
        let (ws, _) = tokio_tungstenite::connect_async(request)
            .await
            .map_err(|e| format!("Janus WebSocket: {e}"))?;
        let (mut sink, mut stream) = ws.split();
        let (out, mut out_rx) = mpsc::unbounded_channel::<String>();
        let pending: Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>> = Arc::default();
        tokio::spawn(async move {
            while let Some(text) = out_rx.recv().await {
                if sink.send(Message::text(text)).await.is_err() {
                    break;
                }
            }
        });
        let replies = pending.clone();
        tokio::spawn(async move {
            while let Some(Ok(frame)) = stream.next().await {
                let Message::Text(text) = frame else { continue };
                let Ok(v) = serde_json::from_str::<Value>(text.as_str()) else {
                    continue;
                };
                // Plugin requests are acknowledged first and answered by an event later.
                if v["janus"] == "ack" {
                    continue;
                }
                if let Some(t) = v["transaction"].as_str()
                    && let Some(reply) = replies.lock().ok().and_then(|mut p| p.remove(t))
                {
                    let _ = reply.send(v);
                }
            }
        });
        let mut session = Self {
            out,
            pending,
            next: AtomicU64::new(1),
            id: 0,
        };
        let created = session.call(json!({"janus": "create"})).await?;
        session.id = created["data"]["id"].as_u64().ok_or("no Janus session")?;
        Ok(Arc::new(session))
    }

    fn transaction(&self) -> String {
        format!("t{}", self.next.fetch_add(1, Ordering::Relaxed))
    }

    /// Sends a request and waits for its answer (the event, for plugin
    /// messages); Janus's refusal is an `Err`.
    async fn call(&self, mut request: Value) -> Result<Value> {
        let t = self.transaction();
        request["transaction"] = json!(t);
        if self.id != 0 {
            request["session_id"] = json!(self.id);
        }
        let (tx, rx) = oneshot::channel();
        if let Ok(mut p) = self.pending.lock() {
            p.insert(t, tx);
        }
        let _ = self.out.send(request.to_string());
        let reply = tokio::time::timeout(PATIENCE, rx)
            .await
            .map_err(|_| format!("Janus did not answer {request}"))?
            .map_err(|_| "Janus connection closed")?;
        if reply["janus"] == "error" || !reply["plugindata"]["data"]["error"].is_null() {
            return Err(format!("Janus refused {request}: {reply}"));
        }
        Ok(reply)
    }

    /// A new VideoRoom handle.
    async fn attach(&self) -> Result<u64> {
        let attached = self
            .call(json!({"janus": "attach", "plugin": "janus.plugin.videoroom"}))
            .await?;
        attached["data"]["id"]
            .as_u64()
            .ok_or_else(|| "no Janus handle".to_owned())
    }

    /// A VideoRoom request on `handle`, with a session description if given.
    pub async fn message(&self, handle: u64, body: Value, jsep: Option<Value>) -> Result<Value> {
        let mut m = json!({"janus": "message", "handle_id": handle, "body": body});
        if let Some(jsep) = jsep {
            m["jsep"] = jsep;
        }
        self.call(m).await
    }

    /// Forwards a peer connection's candidates to Janus as trickles on `handle`.
    fn trickle(self: &Arc<Self>, handle: u64, mut candidates: mpsc::UnboundedReceiver<String>) {
        let session = self.clone();
        tokio::spawn(async move {
            while let Some(text) = candidates.recv().await {
                if let Ok(ClientMessage::Candidate(Candidate {
                    candidate,
                    sdp_mid,
                    sdp_mline_index,
                })) = serde_json::from_str(&text)
                {
                    if debugging() {
                        eprintln!("trickle on {handle}: {candidate}");
                    }
                    let m = json!({
                        "janus": "trickle", "handle_id": handle,
                        "transaction": session.transaction(), "session_id": session.id,
                        "candidate": {"candidate": candidate, "sdpMid": sdp_mid, "sdpMLineIndex": sdp_mline_index},
                    });
                    let _ = session.out.send(m.to_string());
                }
            }
        });
    }

    /// Joins VideoRoom `room` as publisher `index` on a new handle, creating
    /// the room first for index 0; returns the handle to [`publish`](Self::publish) on.
    pub async fn join_as_publisher(&self, room: u64, index: u8) -> Result<u64> {
        let handle = self.attach().await?;
        if index == 0 {
            self.message(
                handle,
                json!({
                    "request": "create", "room": room, "publishers": 64,
                    "audiocodec": "opus", "videocodec": "vp8", "bitrate": 0,
                    "fir_freq": 0, "audiolevel_ext": true, "notify_joining": false,
                }),
                None,
            )
            .await?;
        }
        self.message(
            handle,
            json!({"request": "join", "ptype": "publisher", "room": room,
                   "id": feed_id(index), "display": format!("p{index}")}),
            None,
        )
        .await?;
        Ok(handle)
    }

    /// Publishes what `pc` sends (its tracks added) on a publisher `handle`:
    /// offers, trickles its `candidates` and applies Janus's answer.
    pub async fn publish(
        self: &Arc<Self>,
        handle: u64,
        pc: &Arc<dyn PeerConnection>,
        candidates: mpsc::UnboundedReceiver<String>,
    ) -> Result<()> {
        let offer = pc
            .create_offer(None)
            .await
            .map_err(|e| format!("offer: {e}"))?;
        let jsep = json!({"type": "offer", "sdp": offer.sdp});
        pc.set_local_description(offer)
            .await
            .map_err(|e| format!("local offer: {e}"))?;
        self.trickle(handle, candidates);
        let answered = self
            .message(
                handle,
                json!({"request": "publish", "audio": true, "video": true}),
                Some(jsep.clone()),
            )
            .await?;
        let sdp = answered["jsep"]["sdp"]
            .as_str()
            .ok_or_else(|| format!("Janus answered without SDP: {answered}"))?
            .to_owned();
        if debugging() {
            eprintln!(
                "publisher {handle} offers:\n{}\nJanus answers:\n{sdp}",
                jsep["sdp"]
            );
        }
        let answer = RTCSessionDescription::answer(sdp).map_err(|e| format!("answer: {e}"))?;
        pc.set_remote_description(answer)
            .await
            .map_err(|e| format!("Janus's answer: {e}"))
    }

    /// Subscribes to `feeds` of `room` on one new multistream handle, as
    /// Janus's own clients do, receiving on `pc` and trickling its
    /// `candidates`. A feed can be subscribed to once its publisher's
    /// connection is up, so the join is repeated until all are. Returns the
    /// handle and Janus's answer to the join (its `streams` say which mid
    /// carries which feed).
    pub async fn subscribe(
        self: &Arc<Self>,
        room: u64,
        feeds: &[u64],
        pc: &Arc<dyn PeerConnection>,
        candidates: mpsc::UnboundedReceiver<String>,
    ) -> Result<(u64, Value)> {
        let handle = self.attach().await?;
        let streams: Vec<Value> = feeds.iter().map(|f| json!({"feed": f})).collect();
        let deadline = Instant::now() + FEEDS_LIMIT;
        let joined = loop {
            let join =
                json!({"request": "join", "ptype": "subscriber", "room": room, "streams": streams});
            match self.message(handle, join, None).await {
                Ok(v) => break v,
                Err(e) if Instant::now() < deadline && e.contains("No such feed") => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e),
            }
        };
        let sdp = joined["jsep"]["sdp"]
            .as_str()
            .ok_or_else(|| format!("Janus offered no SDP: {joined}"))?
            .to_owned();
        let offer = RTCSessionDescription::offer(sdp).map_err(|e| format!("offer: {e}"))?;
        pc.set_remote_description(offer)
            .await
            .map_err(|e| format!("Janus's offer: {e}"))?;
        let answer = pc
            .create_answer(None)
            .await
            .map_err(|e| format!("answer: {e}"))?;
        let jsep = json!({"type": "answer", "sdp": answer.sdp});
        pc.set_local_description(answer)
            .await
            .map_err(|e| format!("local answer: {e}"))?;
        self.trickle(handle, candidates);
        self.message(handle, json!({"request": "start"}), Some(jsep))
            .await?;
        Ok((handle, joined))
    }
}
