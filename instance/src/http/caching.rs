//! Validators and `Cache-Control` for pages.
//!
//! A burst of visitors to a public page (link previews from every server that received an
//! announcement, then people following the link) is cheapest when it never reaches the
//! instance: a reverse proxy may reuse the anonymous Space page for a few seconds
//! (`public, max-age`), and anyone who has the page already can ask whether it changed
//! (`If-None-Match`) and get a bodiless 304.
//!
//! Sharing is opt-in and narrow. A page is `public` only when a handler proves it holds nothing
//! of the visitor (no CSRF token, no name, no flash) and the visitor is anonymous; then it also
//! sets no cookie and says `Vary: Cookie`, so a cache keeps the cookie-less version apart from
//! what signed-in people see. A page that carries the visitor's CSRF token but nothing else of
//! theirs (the Room page for a guest) is `private, no-cache`: only that browser keeps it, and it
//! revalidates. Every other page gets `private, no-store` from [`default_policy`], so forgetting
//! to choose never shares a personal page.

use std::hash::{DefaultHasher, Hash, Hasher};

use axum::body::Bytes;
use axum::http::header::{CACHE_CONTROL, ETAG, IF_NONE_MATCH, VARY};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// What any page that does not choose gets: nothing may keep it.
pub const PRIVATE_NO_STORE: &str = "private, no-store";

/// Who may keep a copy of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// Anyone, shared caches included, for `max_age` seconds (0: revalidate every time).
    Public { max_age: u32 },
    /// Only the visitor's browser, which revalidates before each use.
    Browser,
}

/// A digest of anything hashable; stable within one build of the program, which is all a
/// validator needs (another build answers 200 once, then matches again).
pub fn digest(value: &(impl Hash + ?Sized)) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

/// A strong entity tag for a digest.
pub fn etag(digest: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{digest:016x}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("\"0\""))
}

/// Whether the request's `If-None-Match` names `etag` (or `*`): then the visitor's copy is
/// current. Comparison is weak, as RFC 9110 asks for `If-None-Match` (`W/` is ignored).
pub fn not_modified(request: &HeaderMap, etag: &HeaderValue) -> bool {
    let ours = etag.as_bytes();
    let ours = ours.strip_prefix(b"W/").unwrap_or(ours);
    request
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag).as_bytes() == ours)
}

/// An HTML page with its validator and caching policy, or a 304 when the visitor's copy is
/// current.
pub fn page(request: &HeaderMap, body: Bytes, etag: HeaderValue, sharing: Sharing) -> Response {
    let mut response = if not_modified(request, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                axum::http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            )],
            body,
        )
            .into_response()
    };
    let headers = response.headers_mut();
    headers.insert(ETAG, etag);
    headers.insert(VARY, HeaderValue::from_static("Cookie"));
    let control = match sharing {
        Sharing::Public { max_age: 0 } => HeaderValue::from_static("public, no-cache"),
        Sharing::Public { max_age } => HeaderValue::from_str(&format!("public, max-age={max_age}"))
            .unwrap_or_else(|_| HeaderValue::from_static("public, no-cache")),
        Sharing::Browser => HeaderValue::from_static("private, no-cache"),
    };
    headers.insert(CACHE_CONTROL, control);
    response
}

/// Whether a response may be kept by shared caches.
pub fn is_public(headers: &HeaderMap) -> bool {
    headers
        .get(CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|d| d.trim() == "public"))
}

/// The last word on a page's caching, after the layers added their cookies: a page without a
/// policy is `private, no-store`, and a page that sets a cookie is never public, whatever its
/// handler said.
pub fn default_policy(headers: &mut HeaderMap) {
    let sets_cookie = headers.contains_key(axum::http::header::SET_COOKIE);
    if !headers.contains_key(CACHE_CONTROL) || (sets_cookie && is_public(headers)) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static(PRIVATE_NO_STORE));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(if_none_match: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(IF_NONE_MATCH, HeaderValue::from_static(if_none_match));
        headers
    }

    #[test]
    fn if_none_match_is_compared_weakly_in_lists() {
        let tag = etag(0xabc);
        assert_eq!(tag.to_str().ok(), Some("\"0000000000000abc\""));
        assert!(not_modified(&request("\"0000000000000abc\""), &tag));
        assert!(not_modified(&request("W/\"0000000000000abc\""), &tag));
        assert!(not_modified(&request("\"x\", \"0000000000000abc\""), &tag));
        assert!(not_modified(&request("*"), &tag));
        assert!(!not_modified(&request("\"0000000000000abd\""), &tag));
        assert!(!not_modified(&HeaderMap::new(), &tag));
    }

    #[test]
    fn current_copies_get_a_304_with_the_same_headers() {
        let tag = etag(digest("page"));
        let fresh = page(
            &HeaderMap::new(),
            Bytes::from_static(b"<p>hi</p>"),
            tag.clone(),
            Sharing::Public { max_age: 5 },
        );
        assert_eq!(fresh.status(), StatusCode::OK);
        assert_eq!(
            fresh
                .headers()
                .get(CACHE_CONTROL)
                .and_then(|v| v.to_str().ok()),
            Some("public, max-age=5")
        );
        let mut conditional = HeaderMap::new();
        conditional.insert(IF_NONE_MATCH, tag.clone());
        let again = page(&conditional, Bytes::new(), tag.clone(), Sharing::Browser);
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(again.headers().get(ETAG), Some(&tag));
        assert_eq!(
            again
                .headers()
                .get(CACHE_CONTROL)
                .and_then(|v| v.to_str().ok()),
            Some("private, no-cache")
        );
    }

    #[test]
    fn pages_that_set_cookies_or_say_nothing_are_not_stored() {
        let mut silent = HeaderMap::new();
        default_policy(&mut silent);
        assert_eq!(
            silent.get(CACHE_CONTROL).and_then(|v| v.to_str().ok()),
            Some(PRIVATE_NO_STORE)
        );
        let mut public_with_cookie = HeaderMap::new();
        public_with_cookie.insert(CACHE_CONTROL, HeaderValue::from_static("public, max-age=2"));
        public_with_cookie.insert(
            axum::http::header::SET_COOKIE,
            HeaderValue::from_static("a=b"),
        );
        default_policy(&mut public_with_cookie);
        assert_eq!(
            public_with_cookie
                .get(CACHE_CONTROL)
                .and_then(|v| v.to_str().ok()),
            Some(PRIVATE_NO_STORE)
        );
        let mut public = HeaderMap::new();
        public.insert(CACHE_CONTROL, HeaderValue::from_static("public, max-age=2"));
        default_policy(&mut public);
        assert!(is_public(&public));
    }
}
