//! Fuzzing entry points: what the targets in `fuzz/fuzz_targets/` run under cargo-fuzz and what
//! the instance's `fuzz_replay` test runs over the kept corpus on stable Rust.
//!
//! Each entry point takes arbitrary bytes and returns nothing; by contract it never panics. The
//! only panics in here are assertions of properties this crate promises, so a crash is always a
//! bug in the code under test, never in the harness.

use std::sync::OnceLock;
use std::time::Instant;

use rtc::peer_connection::certificate::{CertificateParams, RTCCertificate};
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::sansio::Protocol;

use crate::signaling::ClientMessage;

/// Most events and datagrams drained from a connection after a negotiation step: enough to run
/// everything the step queued, bounded so that a bug that queues forever shows as a slow input
/// rather than a hang.
const MAX_DRAINED: usize = 1024;

/// One signaling text frame as the SFU reads it from a Room's WebSocket: parsed and validated,
/// and what is accepted serialises back to the same message.
pub fn signaling(data: &[u8]) {
    // WebSocket text frames are UTF-8 by the protocol; axum refuses anything else.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(message) = ClientMessage::parse(text) else {
        return;
    };
    let json = serde_json::to_string(&message)
        .unwrap_or_else(|e| panic!("an accepted message must serialise: {e}"));
    let again = ClientMessage::parse(&json)
        .unwrap_or_else(|e| panic!("an accepted message must parse again: {e}\n{json}"));
    assert_eq!(again, message, "a client message must round-trip");
}

/// A session description as the SFU receives it from a client.
///
/// The first line chooses the path (`offer` or `answer`), the rest is the SDP text, which goes
/// through the signaling frame's checks and then exactly what the media thread does with it:
/// - `offer`: parsed into an offer, set as the remote description of a fresh connection built
///   like the SFU's (its media engine, interceptors and settings), answered, and the answer set
///   as the local description.
/// - `answer`: a fresh connection that receives audio and video makes an offer (as the SFU
///   does when it adds tracks), and the text is parsed into an answer and set as its remote
///   description.
///
/// Either way the connection's queued events and datagrams are drained afterwards.
pub fn sdp(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (path, sdp) = text.split_once('\n').unwrap_or((text, ""));
    let frame = serde_json::json!({ "type": path.trim(), "sdp": sdp }).to_string();
    match ClientMessage::parse(&frame) {
        Ok(ClientMessage::Offer { sdp }) => {
            offer(sdp);
        }
        Ok(ClientMessage::Answer { sdp }) => {
            answer(sdp);
        }
        _ => {}
    }
}

/// A session description as the SFU parses it, without negotiating: the signaling frame's
/// checks, then webrtc-rs's SDP reader (`RTCSessionDescription::offer`, which `answer` shares),
/// the first thing the media thread does with a client's offer or answer. Far cheaper than
/// [`sdp`], so it runs many more inputs through the parser itself.
pub fn sdp_parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let frame = serde_json::json!({ "type": "offer", "sdp": text }).to_string();
    if let Ok(ClientMessage::Offer { sdp }) = ClientMessage::parse(&frame) {
        let _ = RTCSessionDescription::offer(sdp);
    }
}

/// The offer path; true when the offer was answered.
fn offer(sdp: String) -> bool {
    let Some(mut pc) = connection() else {
        return false;
    };
    let now = Instant::now();
    let Ok(desc) = RTCSessionDescription::offer(sdp) else {
        return false;
    };
    let answered = pc.set_remote_description(now, desc).is_ok()
        && pc
            .create_answer(None)
            .is_ok_and(|answer| pc.set_local_description(now, answer).is_ok());
    drain(&mut pc);
    answered
}

/// The answer path; true when the answer was applied.
fn answer(sdp: String) -> bool {
    let Some(mut pc) = connection() else {
        return false;
    };
    let now = Instant::now();
    for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
        if pc.add_transceiver_from_kind(kind, None).is_err() {
            return false;
        }
    }
    let Ok(local) = pc.create_offer(None) else {
        return false;
    };
    if pc.set_local_description(now, local).is_err() {
        return false;
    }
    let Ok(desc) = RTCSessionDescription::answer(sdp) else {
        return false;
    };
    let applied = pc.set_remote_description(now, desc).is_ok();
    drain(&mut pc);
    applied
}

/// A connection configured as the SFU's media thread configures each participant's
/// (`forwarder::Engine::open`), with no socket: the sans-IO core needs none to negotiate.
fn connection() -> Option<RTCPeerConnection> {
    let mut media_engine = crate::engine::media_engine().ok()?;
    let registry = crate::engine::interceptors(&mut media_engine).ok()?;
    RTCPeerConnectionBuilder::new()
        .with_configuration(
            RTCConfigurationBuilder::new()
                .with_certificates(vec![certificate()?])
                .build(),
        )
        .with_media_engine(media_engine)
        .with_interceptor_registry(registry)
        .with_setting_engine(SettingEngineBuilder::new().build())
        .build(Instant::now())
        .ok()
}

/// One DTLS certificate for every execution: the SFU also shares one across connections, and
/// making a key pair per input would spend most of the fuzzing time on key generation.
fn certificate() -> Option<RTCCertificate> {
    static CERTIFICATE: OnceLock<Option<RTCCertificate>> = OnceLock::new();
    CERTIFICATE
        .get_or_init(|| {
            let provider = rtc::crypto::default_provider().ok()?;
            let params = CertificateParams::new(vec!["convene".to_owned()]).ok()?;
            RTCCertificate::generate(
                provider.crypto(),
                rtc::crypto::SignatureScheme::EcdsaP256Sha256,
                params,
            )
            .ok()
        })
        .clone()
}

fn drain(pc: &mut RTCPeerConnection) {
    for _ in 0..MAX_DRAINED {
        if pc.poll_event().is_none() {
            break;
        }
    }
    for _ in 0..MAX_DRAINED {
        if pc.poll_write().is_none() {
            break;
        }
    }
    let _ = pc.close();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed's SDP after its first line, as [`sdp`] reads it.
    fn seed(text: &str) -> String {
        text.split_once('\n')
            .map(|(_, sdp)| sdp.to_owned())
            .expect("a path line")
    }

    #[test]
    fn the_seed_chromium_offer_is_answered_and_its_answer_applied() {
        // The fuzzer starts from these; were they refused, it would mostly explore refusals.
        assert!(offer(seed(include_str!(
            "../../fuzz/corpus/sdp/chromium-offer-audio-video"
        ))));
        assert!(answer(seed(include_str!(
            "../../fuzz/corpus/sdp/chromium-answer-recvonly"
        ))));
        assert!(!offer("v=0\r\nnonsense".to_owned()));
    }

    #[test]
    fn an_accepted_frame_round_trips() {
        let frame = br#"{"type":"chat","text":"hello"}"#;
        assert!(ClientMessage::parse(std::str::from_utf8(frame).expect("utf-8")).is_ok());
        signaling(frame);
    }
}
