//! The ActivityStreams shapes Convene sends and reads, in compacted JSON-LD as every fediverse
//! server writes it (nobody expands JSON-LD; we read the compact keys and ignore `@context`).
//!
//! - [`actor::Actor`]: the instance (Application), a Passport (Person), a Space (Group) and a
//!   Room (Group attributed to its Space, with [`actor::RoomProperties`]).
//! - [`activity`]: Follow, Accept, Reject, TentativeAccept, Undo, Announce, Create, Update,
//!   Delete, Join, Leave, Invite, all variants of the tagged [`activity::Activity`].
//! - [`object`]: Note and Page, OrderedCollection and its pages.
//! - [`inbox`]: one enum per inbox, parsed with [`inbox::parse_inbox`].
//!
//! Strictness: every id and link must be an absolute http(s) URL ([`Id`]); a missing required
//! field or a wrong type is an error; lists are capped by [`crate::json`]. Unknown properties
//! are ignored, because every implementation adds its own.

pub mod activity;
pub mod actor;
pub mod context;
pub mod inbox;
pub mod object;

use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use url::Url;

use crate::error::Result;
use crate::urls::parse_http_url;

/// The special collection that means "everyone".
pub const PUBLIC: &str = "https://www.w3.org/ns/activitystreams#Public";

/// An absolute http(s) URL naming an object. Read from a string, or from an embedded object's
/// `id` (peers embed what others reference); always written as a string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(Url);

impl Id {
    pub fn parse(input: &str) -> Result<Self> {
        parse_http_url(input).map(Id)
    }

    pub fn url(&self) -> &Url {
        &self.0
    }

    pub fn into_url(self) -> Url {
        self.0
    }

    /// `{self}{suffix}`, for the conventional `…/inbox`, `…#main-key` and so on.
    pub fn with_suffix(&self, suffix: &str) -> Result<Self> {
        Self::parse(&format!(
            "{}{suffix}",
            self.0.as_str().trim_end_matches('/')
        ))
    }
}

impl TryFrom<Url> for Id {
    type Error = crate::Error;
    fn try_from(url: Url) -> Result<Self> {
        Self::parse(url.as_str())
    }
}

impl Deref for Id {
    type Target = Url;
    fn deref(&self) -> &Url {
        &self.0
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.as_str())
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct IdVisitor;
        impl<'de> serde::de::Visitor<'de> for IdVisitor {
            type Value = Id;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an http(s) URL, or an object with one as its id")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<Id, E> {
                Id::parse(v).map_err(E::custom)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Id, A::Error> {
                let mut id = None;
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    if key == "id" && id.is_none() {
                        id = Some(map.next_value::<String>()?);
                    } else {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                let id = id.ok_or_else(|| serde::de::Error::missing_field("id"))?;
                Id::parse(&id).map_err(serde::de::Error::custom)
            }
        }
        deserializer.deserialize_any(IdVisitor)
    }
}

/// Either the object itself or only its id: `Accept` may embed the `Follow` or name it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Embedded<T> {
    /// Tried first: an embedded object of a shape we do not know still names its id.
    Object(Box<T>),
    Id(Id),
}

impl<T> Embedded<T> {
    /// The embedded object, if there is one.
    pub fn object(&self) -> Option<&T> {
        match self {
            Self::Object(o) => Some(o),
            Self::Id(_) => None,
        }
    }
}

/// Reads `"x"` or `["x", "y"]` as a list (`to`, `cc`, `audience` come both ways).
pub(crate) fn one_or_many<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(deserializer)? {
        None => Vec::new(),
        Some(OneOrMany::One(s)) => vec![s],
        Some(OneOrMany::Many(v)) => v,
    })
}

/// Whether an addressing list names the public collection (in any of its three spellings).
pub fn is_public(addressed: &[String]) -> bool {
    addressed
        .iter()
        .any(|a| a == PUBLIC || a == "as:Public" || a == "Public")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_http_urls_plain_or_embedded() -> Result<()> {
        let plain: Id = crate::json::from_slice(br#""https://a.example/u/ada""#)?;
        let embedded: Id =
            crate::json::from_slice(br#"{"id":"https://a.example/u/ada","type":"Person"}"#)?;
        assert_eq!(plain, embedded);
        assert_eq!(
            serde_json::to_string(&plain).ok().as_deref(),
            Some(r#""https://a.example/u/ada""#)
        );
        for bad in [
            &br#""javascript:alert(1)""#[..],
            br#""/relative""#,
            br#"42"#,
            br#"{"name":"x"}"#,
            br#"["https://a.example/"]"#,
        ] {
            assert!(crate::json::from_slice::<Id>(bad).is_err());
        }
        assert_eq!(
            plain.with_suffix("#main-key")?.as_str(),
            "https://a.example/u/ada#main-key"
        );
        Ok(())
    }

    #[test]
    fn addressing_reads_one_or_many() -> Result<()> {
        #[derive(Deserialize)]
        struct Addressed {
            #[serde(default, deserialize_with = "one_or_many")]
            to: Vec<String>,
        }
        let one: Addressed = crate::json::from_slice(br#"{"to":"as:Public"}"#)?;
        assert!(is_public(&one.to));
        let many: Addressed = crate::json::from_slice(br#"{"to":["https://a.example/f"]}"#)?;
        assert!(!is_public(&many.to));
        let none: Addressed = crate::json::from_slice(br#"{}"#)?;
        assert!(none.to.is_empty());
        assert!(crate::json::from_slice::<Addressed>(br#"{"to":[1,2]}"#).is_err());
        Ok(())
    }
}
