//! The JSON-LD `@context` of everything we serve, and Convene's own vocabulary.
//!
//! Like Mastodon's `toot:` terms, Convene's Room properties are defined inline in the context
//! (so no consumer has to fetch anything) under a namespace IRI, and the same definitions are
//! published as a standalone context document ([`convene_context_document`]) that the instance
//! serves at [`CONVENE_CONTEXT_PATH`] for anyone who dereferences the namespace.

use serde::Serialize;
use serde_json::{Value, json};

use activitypub_federation::protocol::context::WithContext;

/// The ActivityStreams 2.0 context.
pub const ACTIVITYSTREAMS: &str = "https://www.w3.org/ns/activitystreams";
/// The security vocabulary (`publicKey`, `publicKeyPem`, `owner`).
pub const SECURITY: &str = "https://w3id.org/security/v1";
/// The namespace of Convene's terms; `convene:capacity` expands to `{CONVENE_NAMESPACE}capacity`.
pub const CONVENE_NAMESPACE: &str = "https://convene.example.org/ns#";
/// Where each instance serves [`convene_context_document`].
pub const CONVENE_CONTEXT_PATH: &str = "/ns/convene.jsonld";

/// Convene's term definitions.
fn convene_terms() -> Value {
    json!({
        "convene": CONVENE_NAMESPACE,
        "xsd": "http://www.w3.org/2001/XMLSchema#",
        "manuallyApprovesFollowers": "as:manuallyApprovesFollowers",
        "accessMode": "convene:accessMode",
        "capacity": { "@id": "convene:capacity", "@type": "xsd:nonNegativeInteger" },
        "headCount": { "@id": "convene:headCount", "@type": "xsd:nonNegativeInteger" }
    })
}

/// The `@context` value of every document we serve.
pub fn context() -> Value {
    json!([ACTIVITYSTREAMS, SECURITY, convene_terms()])
}

/// The standalone context document for [`CONVENE_CONTEXT_PATH`].
pub fn convene_context_document() -> Value {
    json!({ "@context": convene_terms() })
}

/// Wraps a value in our `@context` for serving or sending.
pub fn with_context<T: Serialize>(inner: T) -> WithContext<T> {
    WithContext::new(inner, context())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_carry_both_contexts_and_the_convene_terms() -> crate::Result<()> {
        let doc = serde_json::to_value(with_context(json!({"type": "Note"})))
            .map_err(|e| crate::Error::BadJson(e.to_string()))?;
        assert_eq!(doc["@context"][0], ACTIVITYSTREAMS);
        assert_eq!(doc["@context"][1], SECURITY);
        assert_eq!(doc["@context"][2]["capacity"]["@id"], "convene:capacity");
        assert_eq!(doc["type"], "Note");
        assert_eq!(
            convene_context_document()["@context"]["convene"],
            CONVENE_NAMESPACE
        );
        Ok(())
    }
}

/// The content type we serve ActivityPub documents with.
pub const ACTIVITY_CONTENT_TYPE: &str = "application/activity+json";

/// Whether a request's `Accept` header asks for ActivityPub JSON rather than HTML: the same URL
/// serves both. `application/activity+json`, and `application/ld+json` with the ActivityStreams
/// profile (or any `ld+json`, as Mastodon accepts), count; browsers' `text/html` does not.
pub fn wants_activity_json(accept: &str) -> bool {
    accept.split(',').any(|range| {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let refused = parts.any(|p| p.replace(' ', "") == "q=0");
        !refused && (media == ACTIVITY_CONTENT_TYPE || media == "application/ld+json")
    })
}

#[cfg(test)]
mod negotiation_tests {
    use super::*;

    #[test]
    fn activitypub_clients_get_json_and_browsers_html() {
        for json in [
            "application/activity+json",
            "application/ld+json; profile=\"https://www.w3.org/ns/activitystreams\"",
            "text/html;q=0.5, Application/Activity+JSON",
        ] {
            assert!(wants_activity_json(json), "{json}");
        }
        for html in [
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            "*/*",
            "",
            "application/json",
            "application/activity+json;q=0",
        ] {
            assert!(!wants_activity_json(html), "{html}");
        }
    }
}
