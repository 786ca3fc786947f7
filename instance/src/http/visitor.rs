//! Who is asking: cookies, the session behind them, CSRF tokens and flash messages.
//!
//! Every browser gets a random `convene_bid` cookie on its first page; its CSRF token is an
//! HMAC of that value under the instance's key, so tokens need no storage and a forged form from
//! another site cannot know it. The `convene_session` cookie names a server-side session row.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::app::AppState;
use crate::domain::auth::{self, Session};
use crate::domain::passports::Passport;
use crate::error::AppError;

pub const SESSION_COOKIE: &str = "convene_session";
pub const BROWSER_COOKIE: &str = "convene_bid";
pub const FLASH_COOKIE: &str = "convene_flash";

/// The browser id given to this request (from its cookie, or minted by the CSRF layer).
#[derive(Clone, Debug)]
pub struct BrowserId(pub String);

/// The visitor of an HTML page.
#[derive(Clone, Debug)]
pub struct Visitor {
    pub session: Option<Session>,
    /// The browser id the CSRF token is derived from (see [`Visitor::csrf`]).
    pub bid: String,
    pub flash: Option<(String, String)>,
}

impl Visitor {
    pub fn passport(&self) -> Option<&Passport> {
        self.session.as_ref().and_then(|s| s.passport.as_ref())
    }

    /// A Passport of another instance visiting by ticket (see
    /// [`crate::core::admission`]); such a visitor is otherwise a guest.
    pub fn visiting(&self) -> Option<&Passport> {
        self.session.as_ref().and_then(|s| s.visiting.as_ref())
    }

    /// The signed-in Passport, or `Unauthenticated` (which sends browsers to sign in).
    pub fn require(&self) -> Result<&Passport, AppError> {
        self.passport().ok_or(AppError::Unauthenticated)
    }

    /// The token this visitor's forms carry. Computed on demand: a page served from the
    /// cache to an anonymous visitor never needs it.
    pub fn csrf(&self, key: &[u8; 32]) -> String {
        csrf_token(key, &self.bid)
    }

    pub fn session_hash(&self) -> Option<&str> {
        self.session.as_ref().map(|s| s.token_hash.as_str())
    }
}

impl<S> FromRequestParts<S> for Visitor
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let session = match cookie(&parts.headers, SESSION_COOKIE) {
            Some(token) => auth::session(&state.db, &token).await?,
            None => None,
        };
        let bid = parts
            .extensions
            .get::<BrowserId>()
            .map(|b| b.0.clone())
            .or_else(|| cookie(&parts.headers, BROWSER_COOKIE))
            .unwrap_or_default();
        let flash = cookie(&parts.headers, FLASH_COOKIE).and_then(|v| decode_flash(&v));
        Ok(Self {
            session,
            bid,
            flash,
        })
    }
}

/// The CSRF token for a browser id.
pub fn csrf_token(key: &[u8; 32], bid: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts a key of any length");
    mac.update(b"csrf:");
    mac.update(bid.as_bytes());
    crate::domain::hex(&mac.finalize().into_bytes()[..20])
}

/// Constant-time check of a submitted token.
pub fn csrf_valid(key: &[u8; 32], bid: &str, submitted: &str) -> bool {
    if bid.is_empty() {
        return false;
    }
    crate::domain::constant_time_eq(&csrf_token(key, bid), submitted)
}

/// Reads one cookie's value.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, path /, Secure on https instances.
pub fn set_cookie(name: &str, value: &str, max_age: Option<i64>, secure: bool) -> HeaderValue {
    let mut s = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if let Some(age) = max_age {
        s.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        s.push_str("; Secure");
    }
    HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static("invalid=1; Max-Age=0"))
}

pub fn append_cookie(headers: &mut HeaderMap, value: HeaderValue) {
    headers.append(SET_COOKIE, value);
}

/// A flash message for the next page: `kind` is success, error or info.
pub fn flash_cookie(kind: &str, message: &str, secure: bool) -> HeaderValue {
    let encoded: String = url::form_urlencoded::byte_serialize(message.as_bytes()).collect();
    set_cookie(FLASH_COOKIE, &format!("{kind}.{encoded}"), Some(60), secure)
}

fn decode_flash(value: &str) -> Option<(String, String)> {
    let (kind, message) = value.split_once('.')?;
    if !matches!(kind, "success" | "error" | "info") {
        return None;
    }
    let message: String = url::form_urlencoded::parse(format!("m={message}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())?;
    Some((kind.to_string(), message.chars().take(300).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_are_bound_to_the_browser() {
        let key = [7u8; 32];
        let token = csrf_token(&key, "browser-a");
        assert!(csrf_valid(&key, "browser-a", &token));
        assert!(!csrf_valid(&key, "browser-b", &token));
        assert!(!csrf_valid(&key, "", &csrf_token(&key, "")));
        assert!(!csrf_valid(&[8u8; 32], "browser-a", &token));
    }

    #[test]
    fn cookies_and_flash_round_trip() {
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_static("a=1; convene_flash=success.Saved+%26+done; b=2"),
        );
        assert_eq!(cookie(&headers, "b").as_deref(), Some("2"));
        let flash = cookie(&headers, FLASH_COOKIE).and_then(|v| decode_flash(&v));
        assert_eq!(flash, Some(("success".into(), "Saved & done".into())));
        assert_eq!(decode_flash("evil.x"), None);
    }
}
