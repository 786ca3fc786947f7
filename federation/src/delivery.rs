//! Delivery: turning one activity into jobs for the instance's durable queue, and making one
//! attempt at one job.
//!
//! The queue lives in the instance's database (it must survive restarts, which
//! `activitypub_federation`'s in-memory queue does not). This module gives it:
//! - [`plan`]: one [`DeliveryJob`] per remote inbox, followers grouped by their shared inbox,
//!   our own domain and domains the [`PartnerPolicy`] refuses left out;
//! - [`deliver`]: one signed POST, signed afresh at `now` (never a stale `Date` on a retry),
//!   classified as a [`DeliveryOutcome`] the queue acts on: done, retry (honouring
//!   `Retry-After`), or give up.
//!
//! Backoff, jitter, and marking an instance unreachable are the queue's business: it knows the
//! history of attempts; this module only reports what one attempt says.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use axum::http::{HeaderMap, StatusCode, header};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fetch::{FetchClient, Signer};
use crate::json;
use crate::keys::ActorKeys;
use crate::policy::PartnerPolicy;
use crate::protocol::Id;
use crate::protocol::activity::Activity;
use crate::protocol::context::with_context;
use crate::urls::authority;

/// The longest `Retry-After` we honour; a peer asking for more gets the queue's own backoff.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// Someone to deliver to: their inbox and, if their server has one, its shared inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub inbox: Id,
    pub shared_inbox: Option<Id>,
}

/// One POST to make: stored by the instance's queue as it is (it is serde), attempted with
/// [`deliver`] until it is done or given up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryJob {
    /// The inbox to POST to.
    pub inbox: Id,
    /// The activity's id, for logs and the admins' queue view.
    pub activity_id: Id,
    /// The sending actor's key id (`{actor}#main-key`); the queue looks up the keys by it.
    pub key_id: Id,
    /// The activity as JSON with our `@context`, exactly as it will be sent.
    pub body: String,
}

impl DeliveryJob {
    /// The host this job goes to, for grouping per instance.
    pub fn host(&self) -> String {
        authority(&self.inbox).unwrap_or_default()
    }
}

/// Plans the deliveries of `activity` from the actor whose key is `key_id` to `recipients`:
/// one job per distinct target (the shared inbox if the recipient has one, else its inbox),
/// skipping `local_domain` and any domain `policy` refuses.
pub fn plan(
    activity: &Activity,
    key_id: &Id,
    recipients: impl IntoIterator<Item = Recipient>,
    policy: &PartnerPolicy,
    local_domain: &str,
) -> Result<Vec<DeliveryJob>> {
    let body = String::from_utf8(json::to_vec(&with_context(activity))?)
        .map_err(|e| Error::BadJson(e.to_string()))?;
    let local = local_domain.to_ascii_lowercase();
    let targets: BTreeSet<Id> = recipients
        .into_iter()
        .map(|r| r.shared_inbox.unwrap_or(r.inbox))
        .filter(|target| {
            authority(target).is_some_and(|host| host != local && policy.allows(&host))
        })
        .collect();
    Ok(targets
        .into_iter()
        .map(|inbox| DeliveryJob {
            inbox,
            activity_id: activity.id().clone(),
            key_id: key_id.clone(),
            body: body.clone(),
        })
        .collect())
}

/// What one attempt achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// 2xx: done.
    Delivered,
    /// Try again later: a network error, a timeout, 408, 429 or 5xx. `after` is the peer's
    /// `Retry-After` (seconds or an HTTP date), capped at [`MAX_RETRY_AFTER`].
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    /// 410: the inbox is gone for good; the instance drops follows through it.
    Gone,
    /// Any other 4xx, a redirect, or a refusal by our own rules: retrying will not help.
    Permanent { reason: String },
}

/// Makes one attempt: signs `job` at `now` with `keys` and POSTs it.
pub async fn deliver(
    client: &FetchClient,
    job: &DeliveryJob,
    keys: &ActorKeys,
    now: SystemTime,
) -> DeliveryOutcome {
    let signer = Signer {
        key_id: job.key_id.url(),
        keys,
    };
    match client
        .post_activity(job.inbox.url(), job.body.clone().into_bytes(), signer, now)
        .await
    {
        Ok(response) => classify(response.status, &response.headers, now),
        Err(error) => classify_error(&error),
    }
}

/// The outcome an HTTP answer means.
pub fn classify(status: StatusCode, headers: &HeaderMap, now: SystemTime) -> DeliveryOutcome {
    let code = status.as_u16();
    if status.is_success() {
        DeliveryOutcome::Delivered
    } else if code == 408 || code == 429 || status.is_server_error() {
        DeliveryOutcome::Retry {
            after: retry_after(headers, now),
            reason: format!("HTTP {code}"),
        }
    } else if code == 410 {
        DeliveryOutcome::Gone
    } else {
        DeliveryOutcome::Permanent {
            reason: format!("HTTP {code}"),
        }
    }
}

/// The outcome a failure before any answer means.
pub fn classify_error(error: &Error) -> DeliveryOutcome {
    match error {
        Error::Fetch(_) | Error::Timeout(_) | Error::TooLarge { .. } => DeliveryOutcome::Retry {
            after: None,
            reason: error.to_string(),
        },
        _ => DeliveryOutcome::Permanent {
            reason: error.to_string(),
        },
    }
}

/// `Retry-After` as seconds or as an HTTP date (RFC 9110 §10.2.3), relative to `now`.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => httpdate::parse_http_date(value)
            .ok()?
            .duration_since(now)
            .unwrap_or(Duration::ZERO),
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::body::Bytes;
    use axum::extract::{Path, State};
    use axum::http::{HeaderValue, Uri};
    use axum::response::{IntoResponse, Response};
    use axum::routing::post;
    use url::Url;

    use super::*;
    use crate::fetch::tests::{serve, test_settings};
    use crate::keys::tests::test_keys;
    use crate::policy::PolicyMode;
    use crate::protocol::activity::Action;
    use crate::protocol::inbox::{GroupInbox, parse_inbox};
    use crate::signature::{
        InboundRequest, MemoryReplayGuard, PublicKey, RemoteKey, verify_request,
    };

    fn id(s: &str) -> Result<Id> {
        Id::parse(s)
    }

    fn join() -> Result<Activity> {
        Ok(Activity::Join(Action::new(
            id("http://localhost/passports/ada/activities/1")?,
            id("http://localhost/passports/ada")?,
            id("http://localhost/rooms/shed")?,
        )))
    }

    fn recipient(inbox: &str, shared: Option<&str>) -> Result<Recipient> {
        Ok(Recipient {
            inbox: id(inbox)?,
            shared_inbox: shared.map(id).transpose()?,
        })
    }

    #[test]
    fn followers_are_grouped_by_shared_inbox() -> Result<()> {
        let mut policy = PartnerPolicy::new(PolicyMode::Open);
        policy.block("spam.example")?;
        let recipients = vec![
            recipient(
                "https://m.example/users/1/inbox",
                Some("https://m.example/inbox"),
            )?,
            recipient(
                "https://m.example/users/2/inbox",
                Some("https://m.example/inbox"),
            )?,
            recipient(
                "https://m.example/users/3/inbox",
                Some("https://m.example/inbox"),
            )?,
            recipient("https://solo.example/u/1/inbox", None)?,
            recipient("https://solo.example/u/2/inbox", None)?,
            recipient(
                "https://spam.example/u/1/inbox",
                Some("https://spam.example/inbox"),
            )?,
            recipient(
                "https://b.example/u/local/inbox",
                Some("https://b.example/inbox"),
            )?,
        ];
        let jobs = plan(
            &join()?,
            &id("https://b.example/spaces/garden#main-key")?,
            recipients,
            &policy,
            "B.example",
        )?;
        let inboxes: Vec<&str> = jobs.iter().map(|j| j.inbox.as_str()).collect();
        assert_eq!(
            inboxes,
            [
                "https://m.example/inbox",
                "https://solo.example/u/1/inbox",
                "https://solo.example/u/2/inbox"
            ]
        );
        let body: serde_json::Value = json::from_slice(jobs[0].body.as_bytes())?;
        assert_eq!(body["type"], "Join");
        assert_eq!(body["@context"][0], "https://www.w3.org/ns/activitystreams");
        assert_eq!(jobs[0].host(), "m.example");
        // Jobs survive a trip through the queue's storage.
        let stored = serde_json::to_string(&jobs[0]).map_err(|e| Error::BadJson(e.to_string()))?;
        let back: DeliveryJob = json::from_slice(stored.as_bytes())?;
        assert_eq!(back, jobs[0]);
        Ok(())
    }

    #[test]
    fn answers_are_classified_for_the_queue() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000);
        let none = HeaderMap::new();
        assert_eq!(
            classify(StatusCode::ACCEPTED, &none, now),
            DeliveryOutcome::Delivered
        );
        assert_eq!(
            classify(StatusCode::GONE, &none, now),
            DeliveryOutcome::Gone
        );
        for code in [400, 401, 403, 404, 413, 422, 301] {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::IM_A_TEAPOT);
            assert!(
                matches!(
                    classify(status, &none, now),
                    DeliveryOutcome::Permanent { .. }
                ),
                "{code}"
            );
        }
        let mut seconds = HeaderMap::new();
        seconds.insert(header::RETRY_AFTER, HeaderValue::from_static("120"));
        assert_eq!(
            classify(StatusCode::TOO_MANY_REQUESTS, &seconds, now),
            DeliveryOutcome::Retry {
                after: Some(Duration::from_secs(120)),
                reason: "HTTP 429".into()
            }
        );
        let mut date = HeaderMap::new();
        let later = httpdate::fmt_http_date(now + Duration::from_secs(300));
        date.insert(
            header::RETRY_AFTER,
            HeaderValue::from_str(&later).unwrap_or(HeaderValue::from_static("x")),
        );
        assert_eq!(retry_after(&date, now), Some(Duration::from_secs(300)));
        assert!(matches!(
            classify(StatusCode::SERVICE_UNAVAILABLE, &date, now),
            DeliveryOutcome::Retry { after: Some(d), .. } if d == Duration::from_secs(300)
        ));
        assert!(matches!(
            classify(StatusCode::REQUEST_TIMEOUT, &none, now),
            DeliveryOutcome::Retry { after: None, .. }
        ));
        let mut huge = HeaderMap::new();
        huge.insert(header::RETRY_AFTER, HeaderValue::from_static("99999999"));
        assert_eq!(retry_after(&huge, now), Some(MAX_RETRY_AFTER));
        let mut past = HeaderMap::new();
        past.insert(
            header::RETRY_AFTER,
            HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"),
        );
        assert_eq!(retry_after(&past, now), Some(Duration::ZERO));
        let mut junk = HeaderMap::new();
        junk.insert(header::RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&junk, now), None);
        assert!(matches!(
            classify_error(&Error::Refused("x".into())),
            DeliveryOutcome::Permanent { .. }
        ));
        assert!(matches!(
            classify_error(&Error::Timeout("x".into())),
            DeliveryOutcome::Retry { .. }
        ));
    }

    /// An inbox that verifies like the instance will: signature, digest, date, replay, shape.
    #[derive(Clone)]
    struct Inbox {
        guard: Arc<MemoryReplayGuard>,
        dates: Arc<Mutex<Vec<String>>>,
    }

    async fn inbox(
        State(inbox): State<Inbox>,
        Path(answer): Path<u16>,
        uri: Uri,
        headers: axum::http::HeaderMap,
        body: Bytes,
    ) -> Response {
        let Ok(owner) = Url::parse("http://localhost/passports/ada") else {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        };
        let key = RemoteKey::new(PublicKey {
            id: "http://localhost/passports/ada#main-key".into(),
            owner,
            public_key_pem: test_keys().public_key_pem().into(),
        });
        let Ok(key) = key else {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        };
        let request = InboundRequest::post(&uri, &headers, &body);
        let verified = match verify_request(&request, &key, SystemTime::now(), inbox.guard.as_ref())
        {
            Ok(v) => v,
            Err(e) => {
                return (
                    StatusCode::from_u16(e.status()).unwrap_or(StatusCode::UNAUTHORIZED),
                    e.to_string(),
                )
                    .into_response();
            }
        };
        let activity = match parse_inbox::<GroupInbox>(&body) {
            Ok(GroupInbox::Join(join)) => join,
            Ok(_) => return StatusCode::UNPROCESSABLE_ENTITY.into_response(),
            Err(e) => {
                return (
                    StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST),
                    e.to_string(),
                )
                    .into_response();
            }
        };
        if verified.check_actor(&activity.actor).is_err() {
            return StatusCode::FORBIDDEN.into_response();
        }
        if let Some(date) = headers.get("date").and_then(|d| d.to_str().ok()) {
            inbox
                .dates
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(date.to_owned());
        }
        let mut response = StatusCode::from_u16(answer)
            .unwrap_or(StatusCode::ACCEPTED)
            .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("7"));
        response
    }

    #[tokio::test]
    async fn deliver_signs_each_attempt_and_reports_the_answer() -> Result<()> {
        let state = Inbox {
            guard: Arc::new(MemoryReplayGuard::new(1000)),
            dates: Arc::new(Mutex::new(Vec::new())),
        };
        let addr = serve(
            Router::new()
                .route("/inbox/{answer}", post(inbox))
                .with_state(state.clone()),
        )
        .await?;
        let client = FetchClient::new(test_settings())?;
        let policy = PartnerPolicy::default();
        let key_id = id("http://localhost/passports/ada#main-key")?;
        let job_for = |answer: u16| -> Result<DeliveryJob> {
            let target = recipient(
                &format!("http://localhost:{}/inbox/{answer}", addr.port()),
                None,
            )?;
            plan(&join()?, &key_id, [target], &policy, "convene.example")?
                .pop()
                .ok_or_else(|| Error::BadDocument("no job".into()))
        };
        let now = SystemTime::now();
        assert_eq!(
            deliver(&client, &job_for(202)?, test_keys(), now).await,
            DeliveryOutcome::Delivered
        );
        // The queue retries the same job a little later: a fresh signature, not a replay.
        assert_eq!(
            deliver(
                &client,
                &job_for(202)?,
                test_keys(),
                now + Duration::from_secs(2)
            )
            .await,
            DeliveryOutcome::Delivered
        );
        let dates = state.dates.lock().map(|d| d.clone()).unwrap_or_default();
        assert_eq!(dates.len(), 2);
        assert_ne!(dates[0], dates[1]);
        // Replaying the exact same signed request is refused by the inbox (401 → permanent).
        assert!(matches!(
            deliver(&client, &job_for(202)?, test_keys(), now).await,
            DeliveryOutcome::Permanent { ref reason } if reason == "HTTP 401"
        ));
        assert_eq!(
            deliver(
                &client,
                &job_for(503)?,
                test_keys(),
                now + Duration::from_secs(4)
            )
            .await,
            DeliveryOutcome::Retry {
                after: Some(Duration::from_secs(7)),
                reason: "HTTP 503".into()
            }
        );
        assert_eq!(
            deliver(
                &client,
                &job_for(410)?,
                test_keys(),
                now + Duration::from_secs(6)
            )
            .await,
            DeliveryOutcome::Gone
        );
        // Nobody listening: retry later.
        let closed = DeliveryJob {
            inbox: id("http://127.0.0.1:9/inbox")?,
            ..job_for(202)?
        };
        assert!(matches!(
            deliver(&client, &closed, test_keys(), now).await,
            DeliveryOutcome::Retry { after: None, .. }
        ));
        Ok(())
    }
}
