//! NodeInfo 2.1: what software an instance runs, how many people use it, whether it is open.
//! Served at the address the `/.well-known/nodeinfo` links document gives; read from partners
//! when an admin adds one.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result, excerpt};
use crate::json;
use crate::protocol::Id;

/// Where the links document lives.
pub const WELL_KNOWN_PATH: &str = "/.well-known/nodeinfo";
/// Where we serve the 2.1 document.
pub const NODEINFO_PATH: &str = "/nodeinfo/2.1";
pub const SCHEMA_2_1: &str = "http://nodeinfo.diaspora.software/ns/schema/2.1";
pub const SCHEMA_2_0: &str = "http://nodeinfo.diaspora.software/ns/schema/2.0";
/// The content type of the 2.1 document.
pub const CONTENT_TYPE_2_1: &str =
    "application/json; profile=\"http://nodeinfo.diaspora.software/ns/schema/2.1#\"";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub rel: String,
    pub href: Id,
}

/// The `/.well-known/nodeinfo` document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Links {
    pub links: Vec<Link>,
}

impl Links {
    /// Ours: one link to [`NODEINFO_PATH`] on `base` (`https://domain`).
    pub fn build(base: &Id) -> Result<Self> {
        Ok(Self {
            links: vec![Link {
                rel: SCHEMA_2_1.into(),
                href: base.with_suffix(NODEINFO_PATH)?,
            }],
        })
    }

    /// Reads a partner's, and picks its 2.1 document (or 2.0, which has the same fields we use).
    pub fn parse_best(body: &[u8]) -> Result<Id> {
        let links: Self = json::from_slice(body)?;
        let by = |schema: &str| {
            links
                .links
                .iter()
                .find(|l| l.rel.trim_end_matches('#') == schema)
        };
        by(SCHEMA_2_1)
            .or_else(|| by(SCHEMA_2_0))
            .map(|l| l.href.clone())
            .ok_or_else(|| Error::BadDocument("no NodeInfo 2.x link".into()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Software {
    /// Lowercase letters, digits and `-` (the schema's pattern).
    pub name: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub homepage: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Services {
    pub inbound: Vec<String>,
    pub outbound: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Users {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_month: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_halfyear: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    pub users: Users,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_posts: Option<u64>,
}

/// A NodeInfo 2.1 (or 2.0) document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfo {
    pub version: String,
    pub software: Software,
    pub protocols: Vec<String>,
    #[serde(default)]
    pub services: Services,
    pub open_registrations: bool,
    pub usage: Usage,
    #[serde(default)]
    pub metadata: Value,
}

impl NodeInfo {
    /// Ours: software `convene` at `version`, ActivityPub, with the given registration state and
    /// counts.
    pub fn build(version: &str, repository: &str, open_registrations: bool, users: Users) -> Self {
        Self {
            version: "2.1".into(),
            software: Software {
                name: "convene".into(),
                version: version.into(),
                repository: Some(repository.into()),
                homepage: Some(repository.into()),
            },
            protocols: vec!["activitypub".into()],
            services: Services::default(),
            open_registrations,
            usage: Usage {
                users,
                local_posts: None,
            },
            metadata: Value::Object(Default::default()),
        }
    }

    /// Reads a partner's document: version 2.0 or 2.1, a software name of the schema's shape.
    pub fn parse(body: &[u8]) -> Result<Self> {
        let info: Self = json::from_slice(body)?;
        if !matches!(info.version.as_str(), "2.0" | "2.1") {
            return Err(Error::BadDocument(format!(
                "NodeInfo version {}",
                excerpt(&info.version)
            )));
        }
        let name_ok = !info.software.name.is_empty()
            && info.software.name.len() <= 64
            && info
                .software
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !name_ok || info.software.version.len() > 128 {
            return Err(Error::BadDocument(
                "NodeInfo software name or version".into(),
            ));
        }
        Ok(info)
    }

    pub fn speaks_activitypub(&self) -> bool {
        self.protocols.iter().any(|p| p == "activitypub")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_documents_round_trip() -> Result<()> {
        let links = Links::build(&Id::parse("http://localhost:8081")?)?;
        let body = json::to_vec(&links)?;
        assert_eq!(
            Links::parse_best(&body)?.as_str(),
            "http://localhost:8081/nodeinfo/2.1"
        );

        let info = NodeInfo::build(
            "0.1.0",
            "https://convene.example.org/convene",
            true,
            Users {
                total: Some(3),
                active_month: Some(2),
                active_halfyear: Some(3),
            },
        );
        let body = json::to_vec(&info)?;
        let value: serde_json::Value = json::from_slice(&body)?;
        assert_eq!(value["software"]["name"], "convene");
        assert_eq!(value["protocols"][0], "activitypub");
        assert_eq!(value["openRegistrations"], true);
        assert_eq!(value["usage"]["users"]["activeMonth"], 2);
        let back = NodeInfo::parse(&body)?;
        assert_eq!(back, info);
        assert!(back.speaks_activitypub());
        Ok(())
    }

    #[test]
    fn partner_documents_are_checked() -> Result<()> {
        let mastodon_links = br#"{"links":[{"rel":"http://nodeinfo.diaspora.software/ns/schema/2.0","href":"https://m.example/nodeinfo/2.0"}]}"#;
        assert_eq!(
            Links::parse_best(mastodon_links)?.as_str(),
            "https://m.example/nodeinfo/2.0"
        );
        assert!(Links::parse_best(br#"{"links":[]}"#).is_err());
        assert!(Links::parse_best(br#"{"links":[{"rel":"x","href":"file:///etc"}]}"#).is_err());

        let v20 = br#"{"version":"2.0","software":{"name":"mastodon","version":"4.5.0"},"protocols":["activitypub"],
            "services":{"outbound":[],"inbound":[]},"usage":{"users":{"total":10}},"openRegistrations":false,"metadata":{}}"#;
        assert_eq!(NodeInfo::parse(v20)?.software.name, "mastodon");
        let bad_name = br#"{"version":"2.1","software":{"name":"<script>","version":"1"},"protocols":[],"usage":{"users":{}},"openRegistrations":false}"#;
        assert!(NodeInfo::parse(bad_name).is_err());
        let bad_version = br#"{"version":"9","software":{"name":"x","version":"1"},"protocols":[],"usage":{"users":{}},"openRegistrations":false}"#;
        assert!(NodeInfo::parse(bad_version).is_err());
        Ok(())
    }
}
