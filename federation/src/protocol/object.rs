//! Objects that are not actors: the Note/Page a Space announces so Mastodon timelines show its
//! Rooms, and the ordered collections behind `followers` and `outbox`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::protocol::{Id, one_or_many};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NoteKind {
    Note,
    Page,
}

/// A `Note` or a `Page`: what Mastodon-like timelines show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Note {
    #[serde(rename = "type")]
    pub kind: NoteKind,
    pub id: Id,
    pub attributed_to: Id,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// HTML; the instance renders remote content escaped and stripped of markup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// The page the note points to (a Room's page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<Id>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "one_or_many"
    )]
    pub to: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "one_or_many"
    )]
    pub cc: Vec<String>,
    /// FEP-1b12: the Space this belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<DateTime<Utc>>,
}

impl Note {
    /// The `Page` a Space announces so Mastodon-like timelines show a Room: titled with the
    /// Room's name, its content a short HTML paragraph (escaped) and a link to the Room's page,
    /// addressed to the public and the Space's followers, `audience` the Space (FEP-1b12).
    pub fn room_page(
        id: Id,
        space: &Id,
        followers: &Id,
        room_page: Id,
        name: &str,
        summary: Option<&str>,
    ) -> Self {
        let mut content = String::new();
        if let Some(summary) = summary {
            content.push_str(&format!("<p>{}</p>", escape_html(summary)));
        }
        content.push_str(&format!(
            "<p><a href=\"{url}\">{url}</a></p>",
            url = escape_html(room_page.as_str())
        ));
        Self {
            kind: NoteKind::Page,
            id,
            attributed_to: space.clone(),
            name: Some(name.to_owned()),
            content: Some(content),
            summary: None,
            url: Some(room_page),
            to: vec![crate::protocol::PUBLIC.to_owned()],
            cc: vec![followers.to_string()],
            audience: Some(space.clone()),
            published: None,
        }
    }
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderedCollectionKind {
    OrderedCollection,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderedCollectionPageKind {
    OrderedCollectionPage,
}

/// `followers` (items are actor ids) or `outbox` (items are activities). Small collections
/// inline their items; large ones point at a `first` page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderedCollection<T> {
    #[serde(rename = "type")]
    pub kind: OrderedCollectionKind,
    pub id: Id,
    pub total_items: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first: Option<Id>,
    #[serde(default = "Vec::new", skip_serializing_if = "Vec::is_empty")]
    pub ordered_items: Vec<T>,
}

impl<T> OrderedCollection<T> {
    /// A collection that shows only its size (followers of a Space are not listed publicly).
    pub fn count_only(id: Id, total_items: u64) -> Self {
        Self {
            kind: OrderedCollectionKind::OrderedCollection,
            id,
            total_items,
            first: None,
            ordered_items: Vec::new(),
        }
    }

    /// A collection with its items inline.
    pub fn with_items(id: Id, ordered_items: Vec<T>) -> Self {
        Self {
            kind: OrderedCollectionKind::OrderedCollection,
            id,
            total_items: ordered_items.len() as u64,
            first: None,
            ordered_items,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderedCollectionPage<T> {
    #[serde(rename = "type")]
    pub kind: OrderedCollectionPageKind,
    pub id: Id,
    pub part_of: Id,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<Id>,
    #[serde(default = "Vec::new")]
    pub ordered_items: Vec<T>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Result;
    use crate::json;

    #[test]
    fn collections_round_trip_and_count() -> Result<()> {
        let id = Id::parse("https://b.example/spaces/garden/followers")?;
        let followers =
            OrderedCollection::with_items(id.clone(), vec![Id::parse("https://a.example/u/ada")?]);
        let body = json::to_vec(&followers)?;
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains(r#""type":"OrderedCollection""#));
        assert!(text.contains(r#""totalItems":1"#));
        let back: OrderedCollection<Id> = json::from_slice(&body)?;
        assert_eq!(back, followers);
        let count: OrderedCollection<Id> = OrderedCollection::count_only(id, 40);
        assert!(!String::from_utf8_lossy(&json::to_vec(&count)?).contains("orderedItems"));
        assert!(
            json::from_slice::<OrderedCollection<Id>>(
                br#"{"type":"Collection","id":"https://b.example/f","totalItems":1}"#
            )
            .is_err()
        );
        assert!(
            json::from_slice::<OrderedCollection<Id>>(
                br#"{"type":"OrderedCollection","id":"https://b.example/f","totalItems":-1}"#
            )
            .is_err()
        );
        Ok(())
    }

    #[test]
    fn a_room_page_links_the_room_and_escapes_text() -> Result<()> {
        let space = Id::parse("https://b.example/spaces/garden")?;
        let page = Note::room_page(
            Id::parse("https://b.example/rooms/shed/page")?,
            &space,
            &Id::parse("https://b.example/spaces/garden/followers")?,
            Id::parse("https://b.example/rooms/shed")?,
            "Potting <Shed>",
            Some("Seeds & <script>"),
        );
        let value: serde_json::Value = json::from_slice(&json::to_vec(&page)?)?;
        assert_eq!(value["type"], "Page");
        assert_eq!(value["name"], "Potting <Shed>");
        assert_eq!(value["url"], "https://b.example/rooms/shed");
        assert_eq!(value["audience"], space.as_str());
        assert_eq!(value["to"][0], crate::protocol::PUBLIC);
        let content = value["content"].as_str().unwrap_or_default();
        assert!(content.contains("Seeds &amp; &lt;script&gt;"), "{content}");
        assert!(
            content.contains(r#"<a href="https://b.example/rooms/shed">"#),
            "{content}"
        );
        Ok(())
    }

    #[test]
    fn a_page_reads_with_its_links() -> Result<()> {
        let page: OrderedCollectionPage<Id> = json::from_slice(
            br#"{"type":"OrderedCollectionPage","id":"https://b.example/o?page=2","partOf":"https://b.example/o",
                "next":"https://b.example/o?page=3","orderedItems":["https://a.example/u/1"]}"#,
        )?;
        assert_eq!(
            page.next.map(|n| n.to_string()).as_deref(),
            Some("https://b.example/o?page=3")
        );
        assert_eq!(page.ordered_items.len(), 1);
        Ok(())
    }
}
