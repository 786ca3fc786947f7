//! Admission tickets: the real-time half of joining a Room on another instance (issue 9).
//!
//! Membership travels as activities (`Join` → `Accept`), which are queued and retried for
//! hours, so a ticket is **never** put inside an activity. Instead, when a member enters:
//! 1. their home instance A POSTs a [`TicketRequest`] (Passport, Room) to the Room's
//!    [`tickets_url`], signed by A's **instance actor** ([`request_ticket`]);
//! 2. the Room's instance B authenticates the request ([`crate::receive::authenticate`]), checks
//!    with [`check_ticket_request`] that the signer is the Passport's own instance and the Room
//!    is B's, then checks policy, membership, access and capacity itself, and answers a
//!    [`TicketGrant`]: a random single-use [`new_ticket`] valid [`TICKET_TTL`], of which B stores
//!    only the [`ticket_digest`], bound to that Passport and Room;
//! 3. A sends the browser to [`TicketGrant::enter_url`]; B exchanges the ticket for a visitor
//!    session, deletes it, and drops it from the URL.

use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result, excerpt};
use crate::fetch::{FetchClient, Signer};
use crate::json;
use crate::protocol::Id;
use crate::signature::VerifiedRequest;
use crate::urls::authority;

/// How long a ticket is valid.
pub const TICKET_TTL: Duration = Duration::from_secs(120);
/// The longest validity A accepts from B (clocks differ a little).
const MAX_ACCEPTED_TTL: Duration = Duration::from_secs(10 * 60);

/// A asks B for a ticket for `passport` to enter `room`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TicketRequest {
    pub passport: Id,
    pub room: Id,
}

/// B's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TicketGrant {
    pub ticket: String,
    pub passport: Id,
    pub room: Id,
    pub expires_at: DateTime<Utc>,
    /// Where the browser goes with the ticket (on the Room's host).
    pub enter_url: Id,
}

/// Where a Room takes ticket requests: `{room}/tickets`.
pub fn tickets_url(room: &Id) -> Result<Id> {
    room.with_suffix("/tickets")
}

/// A fresh ticket: 32 random bytes, base64url.
pub fn new_ticket() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What B stores instead of the ticket itself (hex SHA-256), so a database leak admits nobody.
pub fn ticket_digest(ticket: &str) -> String {
    Sha256::digest(ticket.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// B's first check of an authenticated ticket request: the signer is on the Passport's host
/// (403 otherwise) and the Room is on `local_domain` (404-worthy, reported as 403 here).
pub fn check_ticket_request(
    signer: &VerifiedRequest,
    request: &TicketRequest,
    local_domain: &str,
) -> Result<()> {
    signer.check_actor(&request.passport)?;
    if authority(&request.room).as_deref() != Some(&local_domain.to_ascii_lowercase()) {
        return Err(Error::Refused(format!(
            "{} is not a Room here",
            excerpt(&request.room)
        )));
    }
    Ok(())
}

/// A's side: asks the Room's instance for a ticket, signed by A's instance actor, and checks the
/// answer is for this Passport and Room, on the Room's host, and valid for a short while.
pub async fn request_ticket(
    client: &FetchClient,
    instance: Signer<'_>,
    request: &TicketRequest,
    now: SystemTime,
) -> Result<TicketGrant> {
    /// The request with a fresh nonce: two requests for the same Passport and Room within
    /// one second must not carry the same signature, or the Room's instance takes the second
    /// for a replay of the first.
    #[derive(Serialize)]
    struct Fresh<'a> {
        #[serde(flatten)]
        request: &'a TicketRequest,
        nonce: String,
    }
    let url = tickets_url(&request.room)?;
    let body = json::to_vec(&Fresh {
        request,
        nonce: new_ticket(),
    })?;
    let response = client.post_activity(url.url(), body, instance, now).await?;
    if !response.status.is_success() {
        // The Room's instance says why in a problem body; its words reach the person, as
        // plain text and briefly.
        let reason = json::from_slice::<serde_json::Value>(&response.body)
            .ok()
            .and_then(|problem| {
                problem
                    .get("detail")
                    .and_then(|d| d.as_str())
                    .map(|d| crate::text::plain_text(d, 200))
            })
            .filter(|d| !d.trim().is_empty());
        return Err(Error::Refused(match reason {
            Some(reason) => format!("{reason} ({})", response.status),
            None => format!(
                "{} refused a ticket: {}",
                excerpt(&request.room),
                response.status
            ),
        }));
    }
    let grant: TicketGrant = json::from_slice(&response.body)?;
    let now: DateTime<Utc> = now.into();
    let valid_for = (grant.expires_at - now).to_std().unwrap_or(Duration::ZERO);
    if grant.passport != request.passport
        || grant.room != request.room
        || authority(&grant.enter_url) != authority(&request.room)
        || grant.ticket.is_empty()
        || grant.ticket.len() > 256
        || valid_for.is_zero()
        || valid_for > MAX_ACCEPTED_TTL
    {
        return Err(Error::BadDocument(
            "ticket grant does not match the request".into(),
        ));
    }
    Ok(grant)
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Bytes;
    use axum::http::{HeaderMap, StatusCode, Uri};
    use axum::response::{IntoResponse, Response};
    use axum::routing::post;
    use url::Url;

    use super::*;
    use crate::fetch::tests::{serve, test_settings};
    use crate::keys::tests::{other_keys, test_keys};
    use crate::signature::{AcceptReplays, InboundRequest, PublicKey, RemoteKey, verify_request};

    /// B: verifies the instance actor of `localhost` (A), then grants.
    async fn tickets(uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
        let Ok(owner) = Url::parse("http://localhost/actor") else {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        };
        let key = RemoteKey::new(PublicKey {
            id: "http://localhost/actor#main-key".into(),
            owner,
            public_key_pem: test_keys().public_key_pem().into(),
        });
        let Ok(key) = key else {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        };
        let request = InboundRequest::post(&uri, &headers, &body);
        let verified = match verify_request(&request, &key, SystemTime::now(), &AcceptReplays) {
            Ok(v) => v,
            Err(e) => return (StatusCode::UNAUTHORIZED, e.to_string()).into_response(),
        };
        let asked: TicketRequest = match json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        };
        let host = headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        if let Err(e) = check_ticket_request(&verified, &asked, host) {
            return (
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::FORBIDDEN),
                e.to_string(),
            )
                .into_response();
        }
        let Ok(enter_url) = asked.room.with_suffix("/enter") else {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        };
        axum::Json(TicketGrant {
            ticket: new_ticket(),
            passport: asked.passport,
            room: asked.room,
            expires_at: (SystemTime::now() + TICKET_TTL).into(),
            enter_url,
        })
        .into_response()
    }

    #[tokio::test]
    async fn a_member_instance_gets_a_ticket_and_others_do_not() -> Result<()> {
        let addr = serve(Router::new().route("/rooms/shed/tickets", post(tickets))).await?;
        let client = FetchClient::new(test_settings())?;
        let key_id = Url::parse("http://localhost/actor#main-key")
            .map_err(|e| Error::BadUrl(e.to_string()))?;
        let room = Id::parse(&format!("http://127.0.0.1:{}/rooms/shed", addr.port()))?;
        let asked = TicketRequest {
            passport: Id::parse("http://localhost/passports/ada")?,
            room: room.clone(),
        };
        let signer = Signer {
            key_id: &key_id,
            keys: test_keys(),
        };
        let grant = request_ticket(&client, signer, &asked, SystemTime::now()).await?;
        assert_eq!(grant.room, room);
        assert_eq!(grant.enter_url.as_str(), format!("{room}/enter"));
        assert_eq!(grant.ticket.len(), 43);
        assert_eq!(ticket_digest(&grant.ticket).len(), 64);
        assert_ne!(ticket_digest(&grant.ticket), ticket_digest(&new_ticket()));

        // A's instance asking for a Passport of another instance: 403.
        let foreign = TicketRequest {
            passport: Id::parse("http://elsewhere.example/passports/eve")?,
            room: room.clone(),
        };
        let refused = request_ticket(&client, signer, &foreign, SystemTime::now()).await;
        assert!(
            matches!(refused, Err(Error::Refused(ref m)) if m.contains("403")),
            "{refused:?}"
        );
        // Signed with a key that is not A's instance actor's: 401.
        let impostor = Signer {
            key_id: &key_id,
            keys: other_keys(),
        };
        let refused = request_ticket(&client, impostor, &asked, SystemTime::now()).await;
        assert!(
            matches!(refused, Err(Error::Refused(ref m)) if m.contains("401")),
            "{refused:?}"
        );
        Ok(())
    }

    #[test]
    fn ticket_requests_must_come_from_the_passports_home() -> Result<()> {
        let signer = VerifiedRequest {
            key_id: Url::parse("https://a.example/actor#main-key")
                .map_err(|e| Error::BadUrl(e.to_string()))?,
            signer: Url::parse("https://a.example/actor")
                .map_err(|e| Error::BadUrl(e.to_string()))?,
            signed_at: SystemTime::now(),
        };
        let ok = TicketRequest {
            passport: Id::parse("https://a.example/passports/ada")?,
            room: Id::parse("https://b.example/rooms/shed")?,
        };
        check_ticket_request(&signer, &ok, "b.example")?;
        let wrong_home = TicketRequest {
            passport: Id::parse("https://c.example/passports/ada")?,
            ..ok.clone()
        };
        assert_eq!(
            check_ticket_request(&signer, &wrong_home, "b.example").map_err(|e| e.status()),
            Err(403)
        );
        let not_ours = TicketRequest {
            room: Id::parse("https://c.example/rooms/shed")?,
            ..ok
        };
        assert!(check_ticket_request(&signer, &not_ours, "b.example").is_err());
        Ok(())
    }
}
