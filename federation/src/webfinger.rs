//! WebFinger (RFC 7033) for `acct:` handles: the document we serve, and reading others'.
//!
//! A Passport and a Space share one namespace, so `acct:name@domain` names exactly one actor;
//! the instance guarantees that, this module only builds and reads the documents.
//!
//! Our JRD has three links: `self` (`application/activity+json`, the actor), the profile page
//! (`text/html`) and the remote-interaction template (OStatus subscribe, which Mastodon and
//! others use to send a visitor "home" to confirm a follow or a join).

use std::collections::HashMap;

use serde::Deserialize;
use url::Url;

use activitypub_federation::FEDERATION_CONTENT_TYPE;
pub use activitypub_federation::fetch::webfinger::{Webfinger, WebfingerLink};

use crate::address::Address;
use crate::error::{Error, Result, excerpt};
use crate::json;
use crate::protocol::Id;

/// Where WebFinger lives.
pub const WEBFINGER_PATH: &str = "/.well-known/webfinger";
/// The content type of the answer.
pub const JRD_CONTENT_TYPE: &str = "application/jrd+json";
/// The rel of the profile page link.
pub const PROFILE_PAGE_REL: &str = "http://webfinger.net/rel/profile-page";
/// The rel of the remote-interaction template.
pub const SUBSCRIBE_REL: &str = "http://ostatus.org/schema/1.0/subscribe";
/// The other media type peers use for `self` links.
const LD_JSON_AS: &str = "application/ld+json; profile=\"https://www.w3.org/ns/activitystreams\"";

/// What a WebFinger query asks about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// `acct:name@domain`
    Acct(Address),
    /// An actor's URL (some servers look actors up this way).
    Url(Id),
}

impl Resource {
    /// Reads the `resource` query parameter.
    pub fn parse(resource: &str) -> Result<Self> {
        let trimmed = resource.trim();
        if trimmed.starts_with("acct:") {
            return Address::parse(trimmed).map(Self::Acct);
        }
        if trimmed.starts_with("http://") || trimmed.starts_with("https://") {
            return Id::parse(trimmed).map(Self::Url);
        }
        Err(Error::BadAddress(excerpt(resource)))
    }
}

/// The JRD for one of our actors.
///
/// `subscribe_template` is the instance's remote-interaction URL with `{uri}` where the object
/// goes, e.g. `https://a.example/interact?uri={uri}`.
pub fn build(
    address: &Address,
    actor: &Id,
    profile_page: Option<&Id>,
    subscribe_template: Option<&str>,
) -> Webfinger {
    let mut links = vec![WebfingerLink {
        rel: Some("self".into()),
        kind: Some(FEDERATION_CONTENT_TYPE.into()),
        href: Some(actor.url().clone()),
        ..Default::default()
    }];
    let mut aliases = vec![actor.url().clone()];
    if let Some(page) = profile_page {
        links.push(WebfingerLink {
            rel: Some(PROFILE_PAGE_REL.into()),
            kind: Some("text/html".into()),
            href: Some(page.url().clone()),
            ..Default::default()
        });
        if page != actor {
            aliases.push(page.url().clone());
        }
    }
    if let Some(template) = subscribe_template {
        links.push(WebfingerLink {
            rel: Some(SUBSCRIBE_REL.into()),
            template: Some(template.into()),
            ..Default::default()
        });
    }
    Webfinger {
        subject: address.acct(),
        links,
        aliases,
        properties: HashMap::new(),
    }
}

/// The URL to ask `address`'s home for its JRD. `scheme` is `https` except in tests and
/// development (`http` for `localhost:PORT`).
pub fn query_url(address: &Address, scheme: &str) -> Result<Url> {
    let mut url = Url::parse(&format!("{scheme}://{}{WEBFINGER_PATH}", address.domain()))
        .map_err(|_| Error::BadDomain(excerpt(address.domain())))?;
    url.query_pairs_mut()
        .append_pair("resource", &address.acct());
    Ok(url)
}

/// What we learn about a remote handle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The actor, from the `self` link.
    pub actor: Id,
    pub profile_page: Option<Id>,
    /// The remote-interaction template, with `{uri}` in it.
    pub subscribe_template: Option<String>,
}

/// Reads a remote JRD for `address`: its subject must be that handle (or list it among its
/// aliases), and it must have an ActivityPub `self` link on an http(s) URL.
pub fn parse(body: &[u8], address: &Address) -> Result<Resolved> {
    #[derive(Deserialize)]
    struct Jrd {
        subject: String,
        #[serde(default)]
        aliases: Vec<String>,
        #[serde(default)]
        links: Vec<Link>,
    }
    #[derive(Deserialize)]
    struct Link {
        rel: Option<String>,
        #[serde(rename = "type")]
        kind: Option<String>,
        href: Option<String>,
        template: Option<String>,
    }
    let jrd: Jrd = json::from_slice(body)?;
    let names_address = |s: &str| Address::parse(s).is_ok_and(|a| &a == address);
    if !names_address(&jrd.subject) && !jrd.aliases.iter().any(|a| names_address(a)) {
        return Err(Error::BadDocument(format!(
            "WebFinger subject {} is not {address}",
            excerpt(&jrd.subject)
        )));
    }
    let mut actor = None;
    let mut profile_page = None;
    let mut subscribe_template = None;
    for link in jrd.links {
        match (link.rel.as_deref(), link.kind.as_deref()) {
            (Some("self"), Some(kind))
                if actor.is_none() && (kind == FEDERATION_CONTENT_TYPE || kind == LD_JSON_AS) =>
            {
                actor = link.href.as_deref().map(Id::parse).transpose()?;
            }
            (Some(PROFILE_PAGE_REL), _) if profile_page.is_none() => {
                profile_page = link.href.as_deref().and_then(|h| Id::parse(h).ok());
            }
            (Some(SUBSCRIBE_REL), _) if subscribe_template.is_none() => {
                subscribe_template = link.template.filter(|t| t.contains("{uri}"));
            }
            _ => {}
        }
    }
    Ok(Resolved {
        actor: actor.ok_or_else(|| Error::BadDocument("no ActivityPub self link".into()))?,
        profile_page,
        subscribe_template,
    })
}

/// Fills a remote-interaction template with `object` (percent-encoded). The result must be an
/// http(s) URL: a template pointing at another scheme is refused.
pub fn interaction_url(template: &str, object: &Id) -> Result<Id> {
    let encoded: String =
        url::form_urlencoded::byte_serialize(object.as_str().as_bytes()).collect();
    Id::parse(&template.replacen("{uri}", &encoded, 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ada() -> Result<Address> {
        Address::parse("@ada@localhost:8081")
    }

    #[test]
    fn our_jrd_has_the_three_links_and_reads_back() -> Result<()> {
        let actor = Id::parse("http://localhost:8081/passports/ada")?;
        let page = Id::parse("http://localhost:8081/@ada")?;
        let doc = build(
            &ada()?,
            &actor,
            Some(&page),
            Some("http://localhost:8081/interact?uri={uri}"),
        );
        let body = json::to_vec(&doc)?;
        let value: serde_json::Value = json::from_slice(&body)?;
        assert_eq!(value["subject"], "acct:ada@localhost:8081");
        assert_eq!(value["links"][0]["rel"], "self");
        assert_eq!(value["links"][0]["type"], "application/activity+json");
        assert_eq!(value["links"][1]["rel"], PROFILE_PAGE_REL);
        assert_eq!(value["links"][2]["rel"], SUBSCRIBE_REL);
        assert_eq!(
            value["links"][2]["template"],
            "http://localhost:8081/interact?uri={uri}"
        );

        let resolved = parse(&body, &ada()?)?;
        assert_eq!(resolved.actor, actor);
        assert_eq!(resolved.profile_page, Some(page));
        let go = interaction_url(
            resolved.subscribe_template.as_deref().unwrap_or_default(),
            &Id::parse("https://b.example/rooms/shed?x=1")?,
        )?;
        assert_eq!(
            go.as_str(),
            "http://localhost:8081/interact?uri=https%3A%2F%2Fb.example%2Frooms%2Fshed%3Fx%3D1"
        );
        Ok(())
    }

    #[test]
    fn resources_parse_as_handles_or_urls() -> Result<()> {
        assert_eq!(
            Resource::parse("acct:Ada@localhost:8081")?,
            Resource::Acct(ada()?)
        );
        assert!(matches!(
            Resource::parse("https://a.example/u/ada")?,
            Resource::Url(_)
        ));
        for bad in [
            "ada@localhost",
            "mailto:ada@x.org",
            "acct:ada",
            "javascript:alert(1)",
        ] {
            assert!(Resource::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            query_url(&ada()?, "http")?.as_str(),
            "http://localhost:8081/.well-known/webfinger?resource=acct%3Aada%40localhost%3A8081"
        );
        Ok(())
    }

    #[test]
    fn a_mastodon_shaped_jrd_parses_and_bad_ones_do_not() -> Result<()> {
        let mastodon = br#"{"subject":"acct:ada@m.example","aliases":["https://m.example/@ada","https://m.example/users/ada"],
            "links":[{"rel":"http://webfinger.net/rel/profile-page","type":"text/html","href":"https://m.example/@ada"},
                     {"rel":"self","type":"application/activity+json","href":"https://m.example/users/ada"},
                     {"rel":"http://ostatus.org/schema/1.0/subscribe","template":"https://m.example/authorize_interaction?uri={uri}"}]}"#;
        let resolved = parse(mastodon, &Address::parse("ada@m.example")?)?;
        assert_eq!(resolved.actor.as_str(), "https://m.example/users/ada");
        // Someone else's document.
        assert!(parse(mastodon, &Address::parse("eve@m.example")?).is_err());
        // No self link, or one to another scheme.
        let no_self = br#"{"subject":"acct:ada@m.example","links":[]}"#;
        assert!(parse(no_self, &Address::parse("ada@m.example")?).is_err());
        let ftp = br#"{"subject":"acct:ada@m.example","links":[{"rel":"self","type":"application/activity+json","href":"ftp://m.example/u"}]}"#;
        assert!(parse(ftp, &Address::parse("ada@m.example")?).is_err());
        // A template to another scheme cannot become an interaction URL.
        assert!(
            interaction_url(
                "javascript:alert('{uri}')",
                &Id::parse("https://b.example/r")?
            )
            .is_err()
        );
        Ok(())
    }
}
