//! The inbound side, without axum: authenticating a signed request and reading an inbox
//! delivery, as the instance's routes call them.
//!
//! [`authenticate`] is for every signed request (inbox POSTs, authorized-fetch GETs, admission
//! ticket requests):
//! 1. the body is within [`crate::json`]'s limits (413/400) and the signature header parses (401);
//! 2. the signer's domain is allowed by the [`PartnerPolicy`] (403): a blocked instance's key
//!    is never even fetched;
//! 3. the key comes from the [`KeySource`], and the request is verified
//!    ([`crate::signature::verify_request`], 401); if that fails with a cached key, the key is
//!    fetched again once and the request verified again (key rotation).
//!
//! [`receive`] then reads the body as the inbox's enum (400), checks that the activity's actor is
//! on the signer's host (403) and whether the activity was seen before. The instance's route:
//! ```text
//! POST {actor}/inbox, POST /inbox
//!   let request = InboundRequest { method, path_and_query, headers, body, host };
//!   match receive::<GroupInbox>(&request, &keys, &policy, &seen, &replay, clock.now()).await {
//!       Ok(Received::New(inbound)) => { core.handle(inbound) /* records the id in its transaction */; 202 }
//!       Ok(Received::Duplicate(_)) => 202,
//!       Err(Error::UnsupportedActivity(_)) => 202 (logged, dropped),
//!       Err(e) => e.status(), logged with the reason,
//!   }
//! ```

use std::time::SystemTime;

use crate::directory::{KeySource, SeenActivities};
use crate::error::{Error, Result, SignatureError, excerpt};
use crate::fetch::{FetchClient, Signer};
use crate::json;
use crate::keys::ActorKeys;
use crate::policy::PartnerPolicy;
use crate::protocol::Id;
use crate::protocol::activity::Activity;
use crate::protocol::actor::Actor;
use crate::protocol::inbox::{InboxActivity, parse_inbox};
use crate::signature::{
    InboundRequest, RemoteKey, ReplayGuard, VerifiedRequest, parse_signature, verify_request,
};
use crate::urls::authority;

/// Checks who signed `request`; see the module docs for the steps.
pub async fn authenticate(
    request: &InboundRequest<'_>,
    keys: &impl KeySource,
    policy: &PartnerPolicy,
    replay: &dyn ReplayGuard,
    now: SystemTime,
) -> Result<VerifiedRequest> {
    json::check_limits(request.body)?;
    let params = parse_signature(request.headers)?;
    let key_id = Id::try_from(params.key_id().clone())?;
    let domain = authority(&key_id).unwrap_or_default();
    if !policy.allows(&domain) {
        return Err(Error::Refused(format!(
            "{} is not a partner",
            excerpt(domain)
        )));
    }
    let cached = keys.public_key(&key_id, false).await?;
    match verify_request(request, &cached, now, replay) {
        Err(SignatureError::BadSignature | SignatureError::KeyMismatch) => {
            let fresh = keys.public_key(&key_id, true).await?;
            if fresh == cached {
                return Err(SignatureError::BadSignature.into());
            }
            Ok(verify_request(request, &fresh, now, replay)?)
        }
        other => Ok(other?),
    }
}

/// A verified, well-formed, new activity for the core to act on.
#[derive(Debug, Clone, PartialEq)]
pub struct Inbound<T> {
    pub activity: T,
    pub id: Id,
    pub actor: Id,
    pub signer: VerifiedRequest,
}

/// What [`receive`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Received<T> {
    New(Box<Inbound<T>>),
    /// Already processed: answer 202 and do nothing.
    Duplicate(Id),
}

/// Reads an inbox delivery; see the module docs.
pub async fn receive<T: InboxActivity>(
    request: &InboundRequest<'_>,
    keys: &impl KeySource,
    policy: &PartnerPolicy,
    seen: &impl SeenActivities,
    replay: &dyn ReplayGuard,
    now: SystemTime,
) -> Result<Received<T>> {
    let signer = authenticate(request, keys, policy, replay, now).await?;
    let activity: Activity = parse_inbox(request.body)?;
    signer.check_actor(activity.actor())?;
    let id = activity.id().clone();
    let actor = activity.actor().clone();
    if seen.seen(&id).await? {
        return Ok(Received::Duplicate(id));
    }
    let activity =
        T::from_activity(activity).ok_or_else(|| Error::UnsupportedActivity(excerpt(&id)))?;
    Ok(Received::New(Box::new(Inbound {
        activity,
        id,
        actor,
        signer,
    })))
}

/// A [`KeySource`] that fetches the actor document behind a key id (no cache: the instance
/// wraps it with its table). Fetches are signed by the instance actor, so servers in
/// authorized-fetch mode answer.
#[derive(Debug, Clone)]
pub struct FetchKeySource {
    pub client: FetchClient,
    /// The instance actor's key id and keys.
    pub signer: Option<(Id, ActorKeys)>,
}

impl FetchKeySource {
    async fn get(&self, url: &url::Url) -> Result<Vec<u8>> {
        let signer = self.signer.as_ref().map(|(id, keys)| Signer {
            key_id: id.url(),
            keys,
        });
        let response = self.client.get_activity(url, signer).await?;
        if !response.status.is_success() {
            return Err(Error::Fetch(format!("{url} answered {}", response.status)));
        }
        Ok(response.body)
    }

    /// Fetches and validates the actor that owns `key_id`, and returns it.
    ///
    /// Most servers name keys `{actor}#main-key`, so the key id's document is the actor. Some
    /// (GoToSocial) give keys their own URL serving a key document or a stub; then the key's
    /// `owner` is fetched and must publish the same key id, so nobody can claim another's key.
    pub async fn fetch_actor(&self, key_id: &Id) -> Result<Actor> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct KeyDocument {
            owner: Id,
        }
        let mut url = key_id.url().clone();
        url.set_fragment(None);
        let body = self.get(&url).await?;
        let actor = match Actor::parse(&body) {
            Ok(actor) if actor.id.url() == &url => actor,
            _ => {
                // A key document, or a stub actor: find the owner and ask it.
                let owner = match json::from_slice::<KeyDocument>(&body) {
                    Ok(doc) => doc.owner,
                    Err(_) => json::from_slice::<serde_json::Value>(&body)?
                        .get("publicKey")
                        .and_then(|k| k.get("owner"))
                        .and_then(|o| o.as_str())
                        .map(Id::parse)
                        .transpose()?
                        .ok_or_else(|| Error::BadDocument(format!("no key or actor at {url}")))?,
                };
                if authority(&owner) != authority(key_id) {
                    return Err(SignatureError::KeyMismatch.into());
                }
                Actor::parse(&self.get(owner.url()).await?)?
            }
        };
        if actor.public_key.id != key_id.as_str() {
            return Err(SignatureError::KeyMismatch.into());
        }
        Ok(actor)
    }
}

impl KeySource for FetchKeySource {
    async fn public_key(&self, key_id: &Id, _refresh: bool) -> Result<RemoteKey> {
        RemoteKey::new(self.fetch_actor(key_id).await?.public_key)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use axum::Router;
    use axum::http::{HeaderMap, Method};
    use axum::routing::get;
    use url::Url;

    use super::*;
    use crate::fetch::tests::{serve, test_settings};
    use crate::keys::tests::{other_keys, test_keys};
    use crate::policy::PolicyMode;
    use crate::protocol::activity::Action;
    use crate::protocol::actor::{ActorKind, LocalActor};
    use crate::protocol::context::with_context;
    use crate::protocol::inbox::GroupInbox;
    use crate::signature::{AcceptReplays, MemoryReplayGuard, PublicKey, sign_request};

    const ADA: &str = "https://a.example/passports/ada";
    const KEY: &str = "https://a.example/passports/ada#main-key";

    /// Keys by id; `stale` answers with an old key until refreshed; counts fetches.
    struct FakeKeys {
        current: RemoteKey,
        stale: Option<RemoteKey>,
        fetches: AtomicUsize,
    }

    impl KeySource for FakeKeys {
        async fn public_key(&self, key_id: &Id, refresh: bool) -> Result<RemoteKey> {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            if key_id.as_str() != self.current.key().id {
                return Err(Error::Fetch("no such key".into()));
            }
            Ok(match (&self.stale, refresh) {
                (Some(stale), false) => stale.clone(),
                _ => self.current.clone(),
            })
        }
    }

    struct FakeSeen(Mutex<HashSet<Id>>);

    impl SeenActivities for FakeSeen {
        async fn seen(&self, id: &Id) -> Result<bool> {
            Ok(self.0.lock().map(|s| s.contains(id)).unwrap_or(false))
        }
    }

    fn key(pem: &str) -> Result<RemoteKey> {
        RemoteKey::new(PublicKey {
            id: KEY.into(),
            owner: Url::parse(ADA).map_err(|e| Error::BadUrl(e.to_string()))?,
            public_key_pem: pem.into(),
        })
    }

    fn join_body(actor: &str, id: &str) -> Result<Vec<u8>> {
        json::to_vec(&with_context(Activity::Join(Action::new(
            Id::parse(id)?,
            Id::parse(actor)?,
            Id::parse("https://b.example/rooms/shed")?,
        ))))
    }

    fn signed(body: &[u8], now: SystemTime) -> Result<HeaderMap> {
        sign_request(
            &Method::POST,
            &Url::parse("https://b.example/inbox").map_err(|e| Error::BadUrl(e.to_string()))?,
            Some(body),
            &Url::parse(KEY).map_err(|e| Error::BadUrl(e.to_string()))?,
            test_keys(),
            now,
        )?
        .to_header_map()
    }

    fn request<'a>(headers: &'a HeaderMap, body: &'a [u8]) -> InboundRequest<'a> {
        InboundRequest {
            method: &Method::POST,
            path_and_query: "/inbox",
            headers,
            body,
            host: None,
        }
    }

    #[tokio::test]
    async fn a_good_delivery_is_received_once() -> Result<()> {
        let now = SystemTime::now();
        let keys = FakeKeys {
            current: key(test_keys().public_key_pem())?,
            stale: None,
            fetches: AtomicUsize::new(0),
        };
        let seen = FakeSeen(Mutex::new(HashSet::new()));
        let body = join_body(ADA, "https://a.example/activities/1")?;
        let headers = signed(&body, now)?;
        let received = receive::<GroupInbox>(
            &request(&headers, &body),
            &keys,
            &PartnerPolicy::default(),
            &seen,
            &AcceptReplays,
            now,
        )
        .await?;
        let Received::New(inbound) = received else {
            return Err(Error::BadDocument("expected a new activity".into()));
        };
        assert!(matches!(inbound.activity, GroupInbox::Join(_)));
        assert_eq!(inbound.actor.as_str(), ADA);
        // The core records the id; the same activity again is a duplicate.
        if let Ok(mut s) = seen.0.lock() {
            s.insert(inbound.id.clone());
        }
        let again = receive::<GroupInbox>(
            &request(&headers, &body),
            &keys,
            &PartnerPolicy::default(),
            &seen,
            &AcceptReplays,
            now,
        )
        .await?;
        assert_eq!(again, Received::Duplicate(inbound.id));
        Ok(())
    }

    #[tokio::test]
    async fn every_bad_delivery_gets_its_status() -> Result<()> {
        let now = SystemTime::now();
        let keys = FakeKeys {
            current: key(test_keys().public_key_pem())?,
            stale: None,
            fetches: AtomicUsize::new(0),
        };
        let seen = FakeSeen(Mutex::new(HashSet::new()));
        let open = PartnerPolicy::default();
        let status = |r: Result<Received<GroupInbox>>| r.err().map(|e| e.status());

        // Unsigned.
        let body = join_body(ADA, "https://a.example/activities/2")?;
        let empty = HeaderMap::new();
        assert_eq!(
            status(
                receive(
                    &request(&empty, &body),
                    &keys,
                    &open,
                    &seen,
                    &AcceptReplays,
                    now
                )
                .await
            ),
            Some(401)
        );
        // Signed for another body.
        let headers = signed(&body, now)?;
        let other = join_body(ADA, "https://a.example/activities/3")?;
        assert_eq!(
            status(
                receive(
                    &request(&headers, &other),
                    &keys,
                    &open,
                    &seen,
                    &AcceptReplays,
                    now
                )
                .await
            ),
            Some(401)
        );
        // Expired.
        let old = signed(&body, now - Duration::from_secs(13 * 3600))?;
        assert_eq!(
            status(
                receive(
                    &request(&old, &body),
                    &keys,
                    &open,
                    &seen,
                    &AcceptReplays,
                    now
                )
                .await
            ),
            Some(401)
        );
        // Signed by ada@a.example for an actor on c.example.
        let forged = join_body(
            "https://c.example/passports/eve",
            "https://c.example/activities/1",
        )?;
        let forged_headers = signed(&forged, now)?;
        assert_eq!(
            status(
                receive(
                    &request(&forged_headers, &forged),
                    &keys,
                    &open,
                    &seen,
                    &AcceptReplays,
                    now
                )
                .await
            ),
            Some(403)
        );
        // Not JSON, but properly signed.
        let garbage = b"{not json".to_vec();
        let garbage_headers = signed(&garbage, now)?;
        assert_eq!(
            status(
                receive(
                    &request(&garbage_headers, &garbage),
                    &keys,
                    &open,
                    &seen,
                    &AcceptReplays,
                    now
                )
                .await
            ),
            Some(400)
        );
        // Replayed.
        let guard = MemoryReplayGuard::new(10);
        receive::<GroupInbox>(&request(&headers, &body), &keys, &open, &seen, &guard, now).await?;
        assert_eq!(
            status(receive(&request(&headers, &body), &keys, &open, &seen, &guard, now).await),
            Some(401)
        );
        // Blocked: 403, and the key is not even fetched.
        let mut blocking = PartnerPolicy::new(PolicyMode::Open);
        blocking.block("a.example")?;
        let before = keys.fetches.load(Ordering::SeqCst);
        assert_eq!(
            status(
                receive(
                    &request(&headers, &body),
                    &keys,
                    &blocking,
                    &seen,
                    &AcceptReplays,
                    now
                )
                .await
            ),
            Some(403)
        );
        assert_eq!(keys.fetches.load(Ordering::SeqCst), before);
        Ok(())
    }

    #[tokio::test]
    async fn a_rotated_key_is_fetched_again_once() -> Result<()> {
        let now = SystemTime::now();
        let rotated = FakeKeys {
            current: key(test_keys().public_key_pem())?,
            stale: Some(key(other_keys().public_key_pem())?),
            fetches: AtomicUsize::new(0),
        };
        let body = join_body(ADA, "https://a.example/activities/4")?;
        let headers = signed(&body, now)?;
        let verified = authenticate(
            &request(&headers, &body),
            &rotated,
            &PartnerPolicy::default(),
            &AcceptReplays,
            now,
        )
        .await?;
        assert_eq!(verified.signer.as_str(), ADA);
        assert_eq!(rotated.fetches.load(Ordering::SeqCst), 2);
        // A key that really is wrong is fetched once more, then refused.
        let wrong = FakeKeys {
            current: key(other_keys().public_key_pem())?,
            stale: None,
            fetches: AtomicUsize::new(0),
        };
        let refused = authenticate(
            &request(&headers, &body),
            &wrong,
            &PartnerPolicy::default(),
            &AcceptReplays,
            now,
        )
        .await;
        assert_eq!(refused.map_err(|e| e.status()).err(), Some(401));
        assert_eq!(wrong.fetches.load(Ordering::SeqCst), 2);
        Ok(())
    }

    #[tokio::test]
    async fn fetch_key_source_reads_the_actor_over_http() -> Result<()> {
        let listener_actor = |port: u16| -> Result<serde_json::Value> {
            let actor = Actor::local(LocalActor {
                kind: ActorKind::Person,
                id: Id::parse(&format!("http://localhost:{port}/passports/ada"))?,
                preferred_username: "ada".into(),
                name: None,
                summary: None,
                url: None,
                icon: None,
                public_key_pem: test_keys().public_key_pem().into(),
                shared_inbox: Id::parse(&format!("http://localhost:{port}/inbox"))?,
                attributed_to: None,
                room: None,
                manually_approves_followers: false,
            })?;
            serde_json::to_value(with_context(actor)).map_err(|e| Error::BadJson(e.to_string()))
        };
        // The document names the server's own port, known only once it listens.
        let port_cell = std::sync::Arc::new(std::sync::OnceLock::<u16>::new());
        let cell = port_cell.clone();
        let key_cell = cell.clone();
        let stray_cell = cell.clone();
        let bob_cell = cell.clone();
        let bob_key_cell = cell.clone();
        let app = Router::new()
            .route(
                "/passports/ada",
                get(move || {
                    let cell = cell.clone();
                    async move {
                        let port = cell.get().copied().unwrap_or(0);
                        axum::Json(listener_actor(port).unwrap_or_default())
                    }
                }),
            )
            // A key with its own URL, as GoToSocial does; ada's actor does not list it.
            .route(
                "/keys/ada",
                get(move || {
                    let port = key_cell.get().copied().unwrap_or(0);
                    async move {
                        axum::Json(serde_json::json!({
                            "id": format!("http://localhost:{port}/keys/ada"),
                            "owner": format!("http://localhost:{port}/passports/ada"),
                            "publicKeyPem": test_keys().public_key_pem(),
                        }))
                    }
                }),
            )
            // Bob publishes his key at its own URL, and his actor lists it.
            .route(
                "/passports/bob",
                get(move || {
                    let port = bob_cell.get().copied().unwrap_or(0);
                    async move {
                        let mut bob = listener_actor(port).unwrap_or_default();
                        bob["id"] = format!("http://localhost:{port}/passports/bob").into();
                        bob["inbox"] =
                            format!("http://localhost:{port}/passports/bob/inbox").into();
                        bob["publicKey"]["id"] = format!("http://localhost:{port}/keys/bob").into();
                        bob["publicKey"]["owner"] =
                            format!("http://localhost:{port}/passports/bob").into();
                        axum::Json(bob)
                    }
                }),
            )
            .route(
                "/keys/bob",
                get(move || {
                    let port = bob_key_cell.get().copied().unwrap_or(0);
                    async move {
                        axum::Json(serde_json::json!({
                            "id": format!("http://localhost:{port}/keys/bob"),
                            "owner": format!("http://localhost:{port}/passports/bob"),
                            "publicKeyPem": test_keys().public_key_pem(),
                        }))
                    }
                }),
            )
            // A key document claiming an owner on another host.
            .route(
                "/keys/stray",
                get(move || {
                    let port = stray_cell.get().copied().unwrap_or(0);
                    async move {
                        axum::Json(serde_json::json!({
                            "id": format!("http://localhost:{port}/keys/stray"),
                            "owner": "http://elsewhere.example/passports/ada",
                            "publicKeyPem": test_keys().public_key_pem(),
                        }))
                    }
                }),
            );
        let addr = serve(app).await?;
        let _ = port_cell.set(addr.port());
        let source = FetchKeySource {
            client: FetchClient::new(test_settings())?,
            signer: None,
        };
        let key_id = Id::parse(&format!(
            "http://localhost:{}/passports/ada#main-key",
            addr.port()
        ))?;
        let key = source.public_key(&key_id, false).await?;
        assert_eq!(key.key().public_key_pem, test_keys().public_key_pem());
        let wrong_id = Id::parse(&format!(
            "http://localhost:{}/passports/ada#other-key",
            addr.port()
        ))?;
        assert!(source.public_key(&wrong_id, false).await.is_err());
        // A key at its own URL whose owner publishes it: accepted, owned by bob.
        let bob_key = Id::parse(&format!("http://localhost:{}/keys/bob", addr.port()))?;
        let key = source.public_key(&bob_key, false).await?;
        assert_eq!(key.key().owner.path(), "/passports/bob");
        // A key document whose owner does not publish that key id: refused.
        let key_url = Id::parse(&format!("http://localhost:{}/keys/ada", addr.port()))?;
        assert_eq!(
            source
                .public_key(&key_url, false)
                .await
                .map_err(|e| e.status())
                .err(),
            Some(401)
        );
        let stray = Id::parse(&format!("http://localhost:{}/keys/stray", addr.port()))?;
        assert_eq!(
            source
                .public_key(&stray, false)
                .await
                .map_err(|e| e.status())
                .err(),
            Some(401)
        );
        Ok(())
    }
}
