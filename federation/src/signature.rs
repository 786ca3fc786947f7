//! HTTP Signatures (draft-cavage-http-signatures, `rsa-sha256`): signing what we send and
//! verifying what we receive, as pure functions of the request and the time.
//!
//! We sign `(request-target) host date` plus `digest` when there is a body, as Mastodon does.
//! Each attempt is signed afresh ([`sign_request`] takes the time), so a retried delivery never
//! carries an expired `Date`.
//!
//! Verification ([`verify_request`]) takes the request, the public key the caller fetched for
//! the signature's `keyId` (see [`parse_signature`]), the time and a [`ReplayGuard`], and checks,
//! in order: the header parses and uses `rsa-sha256`/`hs2019`; `(request-target)`, `host`,
//! `date` (and `digest` when there is a body) are covered; the key belongs to the `keyId` and
//! its owner is on the `keyId`'s host; the request's `Host` is ours (when the caller says which
//! that is); `Date` is inside Mastodon's window; `Digest` matches the
//! body; the signature verifies; it has not been seen before. The caller then checks that the
//! activity's actor is on the signer's host with [`VerifiedRequest::check_actor`].
//!
//! `activitypub_federation` does this for POSTs inside `receive_activity`, but it reads the
//! clock itself and has no entry point for signed GETs on axum (authorized fetch, admission
//! tickets), so the instance uses these functions for both.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest, Sha256};
use url::Url;

use crate::error::{Error, Result, SignatureError, excerpt};
use rsa::RsaPublicKey;

use crate::keys::{ActorKeys, parse_public_key_pem, verify_sha256};
use crate::urls::authority;

/// How old a `Date` may be. Mastodon's figure: `EXPIRATION_WINDOW_LIMIT = 12.hours`, in its
/// `SignedRequest` class (`signed_request.rb`) and earlier in
/// `app/controllers/concerns/signature_verification.rb`. Mastodon also accepts exactly the
/// algorithms we do, `rsa-sha256` and `hs2019`.
pub const MAX_AGE: Duration = Duration::from_secs(12 * 60 * 60);
/// How far in the future a `Date` may be. Mastodon's figure: `CLOCK_SKEW_MARGIN = 1.hour`,
/// beside the one above.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(60 * 60);
/// The longest signature header we parse.
const MAX_SIGNATURE_HEADER: usize = 8 * 1024;

/// The headers that make a request signed. Add them all to the outgoing request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    pub host: String,
    pub date: String,
    /// `SHA-256=<base64>` of the body, when there is one.
    pub digest: Option<String>,
    pub signature: String,
}

impl SignedHeaders {
    /// The headers as `(name, value)` pairs, ready for a `HeaderMap` or a request builder.
    pub fn to_header_map(&self) -> Result<HeaderMap> {
        let mut map = HeaderMap::new();
        let mut put = |name: HeaderName, value: &str| -> Result<()> {
            let value = HeaderValue::from_str(value).map_err(|e| Error::Key(e.to_string()))?;
            map.insert(name, value);
            Ok(())
        };
        put(axum::http::header::HOST, &self.host)?;
        put(axum::http::header::DATE, &self.date)?;
        if let Some(digest) = &self.digest {
            put(HeaderName::from_static("digest"), digest)?;
        }
        put(HeaderName::from_static("signature"), &self.signature)?;
        Ok(map)
    }
}

/// `SHA-256=<base64 of the SHA-256 of body>`, the `Digest` header value (RFC 3230).
pub fn digest_header(body: &[u8]) -> String {
    format!("SHA-256={}", BASE64.encode(Sha256::digest(body)))
}

/// Signs a request to `url` as `key_id` at time `now`.
///
/// With a body (POST), the signature covers `(request-target) host date digest`; without
/// (GET), `(request-target) host date`.
pub fn sign_request(
    method: &Method,
    url: &Url,
    body: Option<&[u8]>,
    key_id: &Url,
    keys: &ActorKeys,
    now: SystemTime,
) -> Result<SignedHeaders> {
    let host = authority(url).ok_or_else(|| Error::BadUrl(excerpt(url)))?;
    let date = httpdate::fmt_http_date(now);
    let digest = body.map(digest_header);
    let mut target = url.path().to_owned();
    if let Some(query) = url.query() {
        target.push('?');
        target.push_str(query);
    }
    let mut signing_string = format!(
        "(request-target): {} {target}\nhost: {host}\ndate: {date}",
        method.as_str().to_ascii_lowercase()
    );
    let mut covered = "(request-target) host date".to_owned();
    if let Some(digest) = &digest {
        signing_string.push_str("\ndigest: ");
        signing_string.push_str(digest);
        covered.push_str(" digest");
    }
    let signature = BASE64.encode(keys.sign_sha256(signing_string.as_bytes())?);
    Ok(SignedHeaders {
        host,
        date,
        digest,
        signature: format!(
            "keyId=\"{key_id}\",algorithm=\"rsa-sha256\",headers=\"{covered}\",signature=\"{signature}\""
        ),
    })
}

/// What a draft-cavage `Signature` header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureParams {
    key_id: Url,
    algorithm: Option<String>,
    headers: Vec<String>,
    signature: Vec<u8>,
    created: Option<String>,
    expires: Option<u64>,
}

impl SignatureParams {
    /// The key to fetch (usually `{actor}#main-key`).
    pub fn key_id(&self) -> &Url {
        &self.key_id
    }

    /// The signed header names, lowercased, in signing order.
    pub fn headers(&self) -> &[String] {
        &self.headers
    }
}

/// Reads the signature header of a request so the caller can fetch the key it names.
///
/// `Signature: keyId=...` and `Authorization: Signature keyId=...` are both accepted. A request
/// that carries an RFC 9421 `Signature-Input` and no draft-cavage signature gets
/// [`SignatureError::Rfc9421Only`].
pub fn parse_signature(headers: &HeaderMap) -> Result<SignatureParams, SignatureError> {
    let raw = match headers.get("signature") {
        Some(value) => Some(value),
        None => headers
            .get(axum::http::header::AUTHORIZATION)
            .filter(|v| v.as_bytes().starts_with(b"Signature ")),
    };
    let Some(raw) = raw else {
        return Err(if headers.contains_key("signature-input") {
            SignatureError::Rfc9421Only
        } else {
            SignatureError::Missing
        });
    };
    if raw.len() > MAX_SIGNATURE_HEADER {
        return Err(SignatureError::Malformed("header too long".into()));
    }
    let text = raw
        .to_str()
        .map_err(|_| SignatureError::Malformed("not ASCII".into()))?;
    let text = text.strip_prefix("Signature ").unwrap_or(text);
    let mut fields = match parse_fields(text) {
        Some(fields) => fields,
        // RFC 9421 also uses a `Signature` header, shaped `sig1=:base64:`.
        None if headers.contains_key("signature-input") => {
            return Err(SignatureError::Rfc9421Only);
        }
        None => return Err(SignatureError::Malformed("unparsable parameters".into())),
    };
    let Some(key_id) = fields.remove("keyid") else {
        return Err(if headers.contains_key("signature-input") {
            SignatureError::Rfc9421Only
        } else {
            SignatureError::Malformed("no keyId".into())
        });
    };
    let key_id = Url::parse(&key_id)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        .ok_or_else(|| SignatureError::Malformed("keyId is not an http(s) URL".into()))?;
    let signature = fields
        .remove("signature")
        .ok_or_else(|| SignatureError::Malformed("no signature".into()))?;
    let signature = BASE64
        .decode(signature.as_bytes())
        .map_err(|_| SignatureError::Malformed("signature is not base64".into()))?;
    let algorithm = fields.remove("algorithm").map(|a| a.to_ascii_lowercase());
    if let Some(algorithm) = &algorithm
        && !matches!(algorithm.as_str(), "rsa-sha256" | "hs2019")
    {
        return Err(SignatureError::UnsupportedAlgorithm(excerpt(algorithm)));
    }
    // The draft's default when `headers` is absent is `(created)`; we require more anyway.
    let headers: Vec<String> = fields
        .remove("headers")
        .unwrap_or_else(|| "(created)".to_owned())
        .split_ascii_whitespace()
        .map(str::to_ascii_lowercase)
        .collect();
    let expires = match fields.remove("expires") {
        Some(e) => Some(
            e.parse::<u64>()
                .map_err(|_| SignatureError::Malformed("expires is not a number".into()))?,
        ),
        None => None,
    };
    Ok(SignatureParams {
        key_id,
        algorithm,
        headers,
        signature,
        created: fields.remove("created"),
        expires,
    })
}

/// Parses `name="value",name=token,...` into lowercased names. `None` if it is not that shape.
fn parse_fields(text: &str) -> Option<HashMap<String, String>> {
    let mut fields = HashMap::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let (name, after) = rest.split_once('=')?;
        let name = name.trim().to_ascii_lowercase();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return None;
        }
        let after = after.trim_start();
        let (value, after) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => value.push(chars.next()?.1),
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => value.push(c),
                }
            }
            (value, quoted.get(end?..)?)
        } else {
            let end = after.find(',').unwrap_or(after.len());
            let token = after.get(..end)?.trim();
            if token.is_empty() || token.contains(['"', ':', ' ']) {
                return None;
            }
            (token.to_owned(), after.get(end..)?)
        };
        if fields.insert(name, value).is_some() {
            return None; // a repeated parameter is ambiguous
        }
        let after = after.trim_start();
        rest = match after.strip_prefix(',') {
            Some(more) => more.trim_start(),
            None if after.is_empty() => after,
            None => return None,
        };
    }
    Some(fields)
}

/// A request as the inbox (or a signed-GET route) received it.
#[derive(Debug, Clone, Copy)]
pub struct InboundRequest<'a> {
    pub method: &'a Method,
    /// The path and query exactly as received (`/rooms/shed/inbox`, `/x?page=2`).
    pub path_and_query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    /// Our own host (`convene.example.org`, `localhost:PORT`). When given, a request whose
    /// `Host` names another server is refused ([`SignatureError::WrongHost`]): a delivery
    /// captured on its way to another instance cannot be replayed to us. It also stands in for
    /// a missing `Host` header (HTTP/2 carries `:authority` instead).
    pub host: Option<&'a str>,
}

impl<'a> InboundRequest<'a> {
    /// A `POST` to `uri` with no host of ours to check against.
    pub fn post(uri: &'a axum::http::Uri, headers: &'a HeaderMap, body: &'a [u8]) -> Self {
        Self {
            method: &Method::POST,
            path_and_query: uri.path_and_query().map_or("/", |p| p.as_str()),
            headers,
            body,
            host: None,
        }
    }
}

/// A remote actor's public key as its actor document publishes it.
pub use activitypub_federation::protocol::public_key::PublicKey;

/// A remote [`PublicKey`] with its PEM already decoded: reading the PEM costs about as much as
/// verifying a signature, so key caches hold these.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteKey {
    key: PublicKey,
    /// The key as PKCS#1 `RSAPublicKey` DER, what `ring` verifies with.
    pkcs1: Vec<u8>,
}

impl RemoteKey {
    /// Decodes the PEM (an RSA key of 2048 to 4096 bits).
    pub fn new(key: PublicKey) -> Result<Self> {
        let rsa: RsaPublicKey = parse_public_key_pem(&key.public_key_pem)?;
        let pkcs1 = crate::keys::pkcs1_der(&rsa)?;
        Ok(Self { key, pkcs1 })
    }

    pub fn key(&self) -> &PublicKey {
        &self.key
    }
}

/// A request whose signature checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRequest {
    pub key_id: Url,
    /// The actor that owns the key.
    pub signer: Url,
    /// When the request says it was signed (its `Date`).
    pub signed_at: SystemTime,
}

impl VerifiedRequest {
    /// Refuses an activity whose actor is on another host than the signing key.
    pub fn check_actor(&self, actor: &Url) -> Result<(), SignatureError> {
        let key_host = authority(&self.key_id).unwrap_or_default();
        let actor_host = authority(actor).unwrap_or_default();
        if key_host.is_empty() || key_host != actor_host {
            return Err(SignatureError::ActorHostMismatch {
                key_host: excerpt(key_host),
                actor_host: excerpt(actor_host),
            });
        }
        Ok(())
    }
}

/// Remembers signatures already accepted, so a captured request cannot be played again.
///
/// `first_use` returns `true` the first time it sees `fingerprint`, `false` after. Entries may
/// be forgotten after `keep_until` (the end of the signature's validity window). The instance
/// can back this with a table when several processes share the inbox; activity ids are
/// deduplicated separately (see [`crate::directory::SeenActivities`]).
pub trait ReplayGuard: Send + Sync {
    fn first_use(&self, fingerprint: [u8; 32], keep_until: SystemTime) -> bool;
}

/// A [`ReplayGuard`] in memory, for one process. Forgets expired entries as it goes, and holds
/// at most `capacity` (beyond that the oldest expiring entries go first).
#[derive(Debug)]
pub struct MemoryReplayGuard {
    seen: Mutex<HashMap<[u8; 32], SystemTime>>,
    capacity: usize,
}

impl MemoryReplayGuard {
    pub fn new(capacity: usize) -> Self {
        Self {
            seen: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }
}

impl ReplayGuard for MemoryReplayGuard {
    fn first_use(&self, fingerprint: [u8; 32], keep_until: SystemTime) -> bool {
        // A poisoned lock only means another thread panicked mid-insert; the map is still sound.
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.contains_key(&fingerprint) {
            return false;
        }
        if seen.len() >= self.capacity {
            let now = SystemTime::now();
            seen.retain(|_, until| *until > now);
            while seen.len() >= self.capacity {
                let oldest = seen
                    .iter()
                    .min_by_key(|(_, until)| **until)
                    .map(|(k, _)| *k);
                match oldest {
                    Some(key) => seen.remove(&key),
                    None => break,
                };
            }
        }
        seen.insert(fingerprint, keep_until);
        true
    }
}

/// For signed GETs of data that is not secret, where a replay does no harm.
#[derive(Debug, Clone, Copy, Default)]
pub struct AcceptReplays;

impl ReplayGuard for AcceptReplays {
    fn first_use(&self, _: [u8; 32], _: SystemTime) -> bool {
        true
    }
}

/// Verifies a draft-cavage signature; see the module docs for every check, in order.
pub fn verify_request(
    request: &InboundRequest<'_>,
    remote: &RemoteKey,
    now: SystemTime,
    replay: &dyn ReplayGuard,
) -> Result<VerifiedRequest, SignatureError> {
    let params = parse_signature(request.headers)?;
    let has_body = !request.body.is_empty() || request.method == Method::POST;
    let mut required = vec!["(request-target)", "host", "date"];
    if has_body {
        required.push("digest");
    }
    for name in required {
        if !params.headers.iter().any(|h| h == name) {
            return Err(SignatureError::HeaderNotSigned(name.to_owned()));
        }
    }

    // The key must be the one named, and live on the same host as the key id.
    let key = &remote.key;
    if key.id != params.key_id.as_str()
        || authority(&key.owner).is_none()
        || authority(&key.owner) != authority(&params.key_id)
    {
        return Err(SignatureError::KeyMismatch);
    }

    if let (Some(ours), Some(theirs)) = (request.host, header_text(request.headers, "host")?)
        && !ours.eq_ignore_ascii_case(&theirs)
    {
        return Err(SignatureError::WrongHost(excerpt(theirs)));
    }

    let date = header_text(request.headers, "date")?.ok_or(SignatureError::BadDate)?;
    let signed_at = httpdate::parse_http_date(&date).map_err(|_| SignatureError::BadDate)?;
    if signed_at + MAX_AGE < now {
        return Err(SignatureError::Expired);
    }
    if signed_at > now + MAX_CLOCK_SKEW {
        return Err(SignatureError::FromTheFuture);
    }
    // `checked_add`: a remote `expires` far beyond what SystemTime holds means "not expired".
    if let Some(expires) = params.expires
        && UNIX_EPOCH
            .checked_add(Duration::from_secs(expires))
            .is_some_and(|at| at < now)
    {
        return Err(SignatureError::Expired);
    }

    if has_body {
        check_digest(request.headers, request.body)?;
    }

    let signing_string = signing_string(request, &params)?;
    if !verify_sha256(&remote.pkcs1, signing_string.as_bytes(), &params.signature) {
        return Err(SignatureError::BadSignature);
    }

    let fingerprint: [u8; 32] = Sha256::digest(&params.signature).into();
    if !replay.first_use(fingerprint, signed_at + MAX_AGE + MAX_CLOCK_SKEW) {
        return Err(SignatureError::Replayed);
    }
    Ok(VerifiedRequest {
        key_id: params.key_id,
        signer: key.owner.clone(),
        signed_at,
    })
}

/// All values of one header, joined as the draft says (`, `); `None` if absent.
fn header_text(headers: &HeaderMap, name: &str) -> Result<Option<String>, SignatureError> {
    let mut values = headers.get_all(name).iter().peekable();
    if values.peek().is_none() {
        return Ok(None);
    }
    let mut parts = Vec::new();
    for value in values {
        let text = value
            .to_str()
            .map_err(|_| SignatureError::Malformed(format!("{name} is not visible ASCII")))?;
        parts.push(text.trim().to_owned());
    }
    Ok(Some(parts.join(", ")))
}

/// The `Digest` header must have a SHA-256 entry equal to the body's.
fn check_digest(headers: &HeaderMap, body: &[u8]) -> Result<(), SignatureError> {
    let digest = header_text(headers, "digest")?.ok_or(SignatureError::DigestMissing)?;
    let expected = BASE64.encode(Sha256::digest(body));
    let mut found = false;
    for entry in digest.split(',') {
        let Some((algorithm, value)) = entry.trim().split_once('=') else {
            continue;
        };
        if algorithm.eq_ignore_ascii_case("sha-256") {
            found = true;
            if value.trim() != expected {
                return Err(SignatureError::DigestMismatch);
            }
        }
    }
    if found {
        Ok(())
    } else {
        Err(SignatureError::DigestMissing)
    }
}

fn signing_string(
    request: &InboundRequest<'_>,
    params: &SignatureParams,
) -> Result<String, SignatureError> {
    let mut lines = Vec::with_capacity(params.headers.len());
    for name in &params.headers {
        let value = match name.as_str() {
            "(request-target)" => format!(
                "{} {}",
                request.method.as_str().to_ascii_lowercase(),
                request.path_and_query
            ),
            "(created)" => params
                .created
                .clone()
                .ok_or_else(|| SignatureError::SignedHeaderAbsent(name.clone()))?,
            "(expires)" => params
                .expires
                .map(|e| e.to_string())
                .ok_or_else(|| SignatureError::SignedHeaderAbsent(name.clone()))?,
            _ => match header_text(request.headers, name)? {
                Some(value) => value,
                None if name == "host" => request
                    .host
                    .map(str::to_owned)
                    .ok_or_else(|| SignatureError::SignedHeaderAbsent(name.clone()))?,
                None => return Err(SignatureError::SignedHeaderAbsent(excerpt(name))),
            },
        };
        lines.push(format!("{name}: {value}"));
    }
    Ok(lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::tests::{other_keys, test_keys};

    const ACTOR: &str = "https://a.example/passports/ada";
    const KEY: &str = "https://a.example/passports/ada#main-key";
    const INBOX: &str = "https://b.example/rooms/shed/inbox?x=1";
    const BODY: &[u8] = br#"{"type":"Join"}"#;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_790_000_000)
    }

    fn key(pem: &str) -> Result<RemoteKey> {
        RemoteKey::new(PublicKey {
            id: KEY.into(),
            owner: Url::parse(ACTOR).map_err(|e| Error::BadUrl(e.to_string()))?,
            public_key_pem: pem.into(),
        })
    }

    fn url(s: &str) -> Result<Url> {
        Url::parse(s).map_err(|e| Error::BadUrl(e.to_string()))
    }

    fn signed_post(body: &[u8], at: SystemTime) -> Result<HeaderMap> {
        let headers = sign_request(
            &Method::POST,
            &url(INBOX)?,
            Some(body),
            &url(KEY)?,
            test_keys(),
            at,
        )?;
        assert_eq!(headers.host, "b.example");
        headers.to_header_map()
    }

    fn verify(
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        body: &[u8],
        at: SystemTime,
    ) -> Result<VerifiedRequest> {
        let request = InboundRequest {
            method,
            path_and_query: path,
            headers,
            body,
            host: None,
        };
        Ok(verify_request(
            &request,
            &key(test_keys().public_key_pem())?,
            at,
            &AcceptReplays,
        )?)
    }

    #[test]
    fn a_signed_post_verifies() -> Result<()> {
        let headers = signed_post(BODY, now())?;
        let signature = headers
            .get("signature")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(signature.contains(r#"headers="(request-target) host date digest""#));
        assert!(signature.contains(r#"algorithm="rsa-sha256""#));
        let verified = verify(
            &Method::POST,
            "/rooms/shed/inbox?x=1",
            &headers,
            BODY,
            now(),
        )?;
        assert_eq!(verified.signer.as_str(), ACTOR);
        verified.check_actor(&url(ACTOR)?)?;
        assert!(matches!(
            verified.check_actor(&url("https://c.example/passports/ada")?),
            Err(SignatureError::ActorHostMismatch { .. })
        ));
        Ok(())
    }

    #[test]
    fn a_signed_get_verifies_without_digest() -> Result<()> {
        let headers = sign_request(
            &Method::GET,
            &url("http://localhost:8081/spaces/garden")?,
            None,
            &url(KEY)?,
            test_keys(),
            now(),
        )?;
        assert_eq!(headers.host, "localhost:8081");
        assert_eq!(headers.digest, None);
        let map = headers.to_header_map()?;
        verify(&Method::GET, "/spaces/garden", &map, b"", now())?;
        // The same signature does not cover another path or method.
        assert_eq!(
            verify(&Method::GET, "/spaces/other", &map, b"", now()),
            Err(SignatureError::BadSignature.into())
        );
        assert!(verify(&Method::POST, "/spaces/garden", &map, b"", now()).is_err());
        Ok(())
    }

    #[test]
    fn each_attempt_gets_a_fresh_signature() -> Result<()> {
        let first = signed_post(BODY, now())?;
        let later = signed_post(BODY, now() + Duration::from_secs(3600))?;
        assert_ne!(first.get("date"), later.get("date"));
        assert_ne!(first.get("signature"), later.get("signature"));
        Ok(())
    }

    #[test]
    fn a_changed_body_is_caught_by_the_digest() -> Result<()> {
        let headers = signed_post(BODY, now())?;
        assert_eq!(
            verify(
                &Method::POST,
                "/rooms/shed/inbox?x=1",
                &headers,
                br#"{"type":"Leave"}"#,
                now()
            ),
            Err(SignatureError::DigestMismatch.into())
        );
        Ok(())
    }

    #[test]
    fn a_rewritten_digest_breaks_the_signature() -> Result<()> {
        let other = br#"{"type":"Leave"}"#;
        let mut headers = signed_post(BODY, now())?;
        headers.insert(
            "digest",
            HeaderValue::from_str(&digest_header(other)).map_err(|e| Error::Key(e.to_string()))?,
        );
        assert_eq!(
            verify(
                &Method::POST,
                "/rooms/shed/inbox?x=1",
                &headers,
                other,
                now()
            ),
            Err(SignatureError::BadSignature.into())
        );
        headers.insert("digest", HeaderValue::from_static("MD5=abc"));
        assert_eq!(
            verify(
                &Method::POST,
                "/rooms/shed/inbox?x=1",
                &headers,
                other,
                now()
            ),
            Err(SignatureError::DigestMissing.into())
        );
        Ok(())
    }

    #[test]
    fn dates_outside_mastodons_window_are_refused() -> Result<()> {
        let path = "/rooms/shed/inbox?x=1";
        let old = signed_post(BODY, now() - MAX_AGE - Duration::from_secs(1))?;
        assert_eq!(
            verify(&Method::POST, path, &old, BODY, now()),
            Err(SignatureError::Expired.into())
        );
        let almost_old = signed_post(BODY, now() - MAX_AGE + Duration::from_secs(5))?;
        verify(&Method::POST, path, &almost_old, BODY, now())?;
        let future = signed_post(BODY, now() + MAX_CLOCK_SKEW + Duration::from_secs(5))?;
        assert_eq!(
            verify(&Method::POST, path, &future, BODY, now()),
            Err(SignatureError::FromTheFuture.into())
        );
        let skewed = signed_post(BODY, now() + MAX_CLOCK_SKEW - Duration::from_secs(5))?;
        verify(&Method::POST, path, &skewed, BODY, now())?;
        let mut garbled = signed_post(BODY, now())?;
        garbled.insert("date", HeaderValue::from_static("yesterday"));
        assert_eq!(
            verify(&Method::POST, path, &garbled, BODY, now()),
            Err(SignatureError::BadDate.into())
        );
        Ok(())
    }

    #[test]
    fn a_key_on_another_host_or_of_another_actor_is_refused() -> Result<()> {
        let headers = signed_post(BODY, now())?;
        let request = InboundRequest {
            method: &Method::POST,
            path_and_query: "/rooms/shed/inbox?x=1",
            headers: &headers,
            body: BODY,
            host: None,
        };
        let mut elsewhere = key(test_keys().public_key_pem())?.key().clone();
        elsewhere.owner = url("https://evil.example/passports/ada")?;
        let elsewhere = RemoteKey::new(elsewhere)?;
        assert_eq!(
            verify_request(&request, &elsewhere, now(), &AcceptReplays),
            Err(SignatureError::KeyMismatch)
        );
        let mut renamed = key(test_keys().public_key_pem())?.key().clone();
        renamed.id = "https://a.example/passports/bob#main-key".into();
        let renamed = RemoteKey::new(renamed)?;
        assert_eq!(
            verify_request(&request, &renamed, now(), &AcceptReplays),
            Err(SignatureError::KeyMismatch)
        );
        let wrong_key = key(other_keys().public_key_pem())?;
        assert_eq!(
            verify_request(&request, &wrong_key, now(), &AcceptReplays),
            Err(SignatureError::BadSignature)
        );
        Ok(())
    }

    #[test]
    fn unsigned_headers_and_missing_headers_are_refused() -> Result<()> {
        let path = "/rooms/shed/inbox?x=1";
        let headers = signed_post(BODY, now())?;
        let signature = headers
            .get("signature")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();

        let mut no_digest_signed = headers.clone();
        let changed = signature.replace(" digest\"", "\"");
        no_digest_signed.insert(
            "signature",
            HeaderValue::from_str(&changed).map_err(|e| Error::Key(e.to_string()))?,
        );
        assert_eq!(
            verify(&Method::POST, path, &no_digest_signed, BODY, now()),
            Err(SignatureError::HeaderNotSigned("digest".into()).into())
        );

        let mut no_host = headers.clone();
        no_host.remove("host");
        assert_eq!(
            verify(&Method::POST, path, &no_host, BODY, now()),
            Err(SignatureError::SignedHeaderAbsent("host".into()).into())
        );
        // The route may supply the host from HTTP/2's :authority instead.
        let request = InboundRequest {
            method: &Method::POST,
            path_and_query: path,
            headers: &no_host,
            body: BODY,
            host: Some("b.example"),
        };
        verify_request(
            &request,
            &key(test_keys().public_key_pem())?,
            now(),
            &AcceptReplays,
        )?;

        // Sent to b.example, replayed to us at c.example.
        let replayed_elsewhere = InboundRequest {
            method: &Method::POST,
            path_and_query: path,
            headers: &headers,
            body: BODY,
            host: Some("c.example"),
        };
        assert_eq!(
            verify_request(
                &replayed_elsewhere,
                &key(test_keys().public_key_pem())?,
                now(),
                &AcceptReplays
            ),
            Err(SignatureError::WrongHost("b.example".into()))
        );
        let addressed_to_us = InboundRequest {
            host: Some("B.example"),
            ..replayed_elsewhere
        };
        verify_request(
            &addressed_to_us,
            &key(test_keys().public_key_pem())?,
            now(),
            &AcceptReplays,
        )?;

        let mut unsigned = headers.clone();
        unsigned.remove("signature");
        assert_eq!(
            verify(&Method::POST, path, &unsigned, BODY, now()),
            Err(SignatureError::Missing.into())
        );
        Ok(())
    }

    #[test]
    fn absurd_expires_values_do_not_panic() -> Result<()> {
        let mut headers = signed_post(BODY, now())?;
        let signature = headers
            .get("signature")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        for expires in ["18446744073709551615", "1"] {
            let with_expires = format!("{signature},expires={expires}");
            headers.insert(
                "signature",
                HeaderValue::from_str(&with_expires).map_err(|e| Error::Key(e.to_string()))?,
            );
            let result = verify(
                &Method::POST,
                "/rooms/shed/inbox?x=1",
                &headers,
                BODY,
                now(),
            );
            if expires == "1" {
                assert_eq!(result, Err(SignatureError::Expired.into()));
            } else {
                assert!(result.is_ok(), "{result:?}");
            }
        }
        Ok(())
    }

    #[test]
    fn rfc9421_only_requests_get_their_own_error() -> Result<()> {
        let mut headers = HeaderMap::new();
        headers.insert(
            "signature-input",
            HeaderValue::from_static(r#"sig1=("@method" "@target-uri");keyid="k""#),
        );
        assert_eq!(parse_signature(&headers), Err(SignatureError::Rfc9421Only));
        headers.insert("signature", HeaderValue::from_static("sig1=:AAAA:"));
        assert_eq!(parse_signature(&headers), Err(SignatureError::Rfc9421Only));
        assert_eq!(Error::from(SignatureError::Rfc9421Only).status(), 401);
        Ok(())
    }

    #[test]
    fn a_replay_is_caught_by_the_guard() -> Result<()> {
        let headers = signed_post(BODY, now())?;
        let guard = MemoryReplayGuard::new(100);
        let request = InboundRequest {
            method: &Method::POST,
            path_and_query: "/rooms/shed/inbox?x=1",
            headers: &headers,
            body: BODY,
            host: None,
        };
        let key = key(test_keys().public_key_pem())?;
        verify_request(&request, &key, now(), &guard)?;
        assert_eq!(
            verify_request(&request, &key, now(), &guard),
            Err(SignatureError::Replayed)
        );
        Ok(())
    }

    #[test]
    fn malformed_signature_headers_are_errors_not_panics() {
        for raw in [
            "",
            "keyId",
            "keyId=\"https://a.example/k\"",
            "keyId=\"https://a.example/k\",signature=\"not base64!\"",
            "keyId=\"ftp://a.example/k\",signature=\"AAAA\"",
            "keyId=\"https://a.example/k\",signature=\"AAAA\",algorithm=\"rsa-sha1\"",
            "keyId=\"https://a.example/k\",keyId=\"https://b.example/k\",signature=\"AAAA\"",
            "keyId=\"https://a.example/k\",signature=\"AAAA\",expires=soon",
            "keyId=\"unterminated",
            "=\"x\"",
            "keyId=\"https://a.example/k\" junk",
        ] {
            let mut headers = HeaderMap::new();
            if let Ok(value) = HeaderValue::from_str(raw) {
                headers.insert("signature", value);
            }
            assert!(
                parse_signature(&headers).is_err(),
                "{raw:?} should be refused"
            );
        }
    }

    #[test]
    fn signature_parameters_parse_like_the_draft() -> Result<()> {
        let mut headers = HeaderMap::new();
        headers.insert(
            axum::http::header::AUTHORIZATION,
            HeaderValue::from_static(
                "Signature keyId=\"https://a.example/u#k\", algorithm=\"hs2019\", created=1402170695, headers=\"(request-target) Host date\", signature=\"AAAA\"",
            ),
        );
        let params = parse_signature(&headers)?;
        assert_eq!(params.key_id().as_str(), "https://a.example/u#k");
        assert_eq!(params.headers(), ["(request-target)", "host", "date"]);
        assert_eq!(params.created.as_deref(), Some("1402170695"));
        Ok(())
    }
}
