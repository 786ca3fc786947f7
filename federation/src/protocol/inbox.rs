//! One enum per inbox, and the one way to read an inbox body: [`parse_inbox`].
//!
//! | inbox | enum | takes |
//! |---|---|---|
//! | a Space's or a Room's (`Group`) | [`GroupInbox`] | Follow, Undo, Join, Leave, Accept and Reject (of an Invite) |
//! | a Passport's (`Person`) | [`PersonInbox`] | Accept, Reject, TentativeAccept, Announce, Invite, Create, Update, Delete, Undo, Follow |
//! | the instance's shared inbox | [`Activity`] | all of the above |
//!
//! The instance's inbox route is then: [`crate::json::check_limits`] on the raw body (413/400)
//! → [`crate::signature::parse_signature`] → fetch the key → [`crate::signature::verify_request`]
//! (401/403) → [`parse_inbox`] (400) → [`crate::signature::VerifiedRequest::check_actor`] with
//! the activity's actor (403) → the partner policy (403) → [`crate::directory::SeenActivities`]
//! (a repeat answers 202 and changes nothing) → one use case of the core, in one transaction →
//! 202.

use serde::Deserialize;

use crate::error::{Error, Result, excerpt};
use crate::json;
use crate::protocol::activity::{Action, Activity, Announce, Delete, Publish, Response, Undo};

/// An inbox's enum: which activity types it takes, and how it is cut out of [`Activity`].
pub trait InboxActivity: Sized {
    const ACCEPTS: &'static [&'static str];
    /// The activity as this inbox's enum, if it takes it.
    fn from_activity(activity: Activity) -> Option<Self>;
}

impl InboxActivity for Activity {
    const ACCEPTS: &'static [&'static str] = Activity::TYPES;
    fn from_activity(activity: Activity) -> Option<Self> {
        Some(activity)
    }
}

/// What a Space or Room inbox takes.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupInbox {
    Follow(Action),
    Undo(Undo),
    Join(Action),
    Leave(Action),
    /// Accept of an Invite by the invited Passport.
    Accept(Response),
    /// Reject of an Invite by the invited Passport.
    Reject(Response),
}

impl GroupInbox {
    fn cut(activity: Activity) -> Option<Self> {
        Some(match activity {
            Activity::Follow(a) => Self::Follow(a),
            Activity::Undo(u) => Self::Undo(u),
            Activity::Join(a) => Self::Join(a),
            Activity::Leave(a) => Self::Leave(a),
            Activity::Accept(r) => Self::Accept(r),
            Activity::Reject(r) => Self::Reject(r),
            _ => return None,
        })
    }
}

impl InboxActivity for GroupInbox {
    fn from_activity(activity: Activity) -> Option<Self> {
        Self::cut(activity)
    }
    const ACCEPTS: &'static [&'static str] =
        &["Follow", "Undo", "Join", "Leave", "Accept", "Reject"];
}

/// What a Passport's inbox takes.
#[derive(Debug, Clone, PartialEq)]
pub enum PersonInbox {
    Accept(Response),
    Reject(Response),
    TentativeAccept(Response),
    Announce(Announce),
    Invite(Action),
    Create(Publish),
    Update(Publish),
    Delete(Delete),
    Undo(Undo),
    Follow(Action),
}

impl PersonInbox {
    fn cut(activity: Activity) -> Option<Self> {
        Some(match activity {
            Activity::Accept(r) => Self::Accept(r),
            Activity::Reject(r) => Self::Reject(r),
            Activity::TentativeAccept(r) => Self::TentativeAccept(r),
            Activity::Announce(a) => Self::Announce(a),
            Activity::Invite(a) => Self::Invite(a),
            Activity::Create(p) => Self::Create(p),
            Activity::Update(p) => Self::Update(p),
            Activity::Delete(d) => Self::Delete(d),
            Activity::Undo(u) => Self::Undo(u),
            Activity::Follow(a) => Self::Follow(a),
            _ => return None,
        })
    }
}

impl InboxActivity for PersonInbox {
    fn from_activity(activity: Activity) -> Option<Self> {
        Self::cut(activity)
    }
    const ACCEPTS: &'static [&'static str] = &[
        "Accept",
        "Reject",
        "TentativeAccept",
        "Announce",
        "Invite",
        "Create",
        "Update",
        "Delete",
        "Undo",
        "Follow",
    ];
}

/// Reads an inbox body: limits, then the `type` (a type this inbox does not take is
/// [`Error::UnsupportedActivity`], which the instance may answer with 202 and drop), then the
/// full shape, then [`Activity::check_origin`].
pub fn parse_inbox<T: InboxActivity>(body: &[u8]) -> Result<T> {
    #[derive(Deserialize)]
    struct Kind {
        #[serde(rename = "type")]
        kind: String,
    }
    let Kind { kind } = json::from_slice(body)?;
    if !T::ACCEPTS.contains(&kind.as_str()) {
        return Err(Error::UnsupportedActivity(excerpt(kind)));
    }
    let activity: Activity = json::from_slice(body)?;
    activity.check_origin()?;
    T::from_activity(activity).ok_or(Error::UnsupportedActivity(kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    const JOIN: &[u8] = br#"{"@context":"https://www.w3.org/ns/activitystreams","type":"Join",
        "id":"https://a.example/activities/j1","actor":"https://a.example/passports/ada",
        "object":"https://b.example/rooms/shed"}"#;

    #[test]
    fn each_inbox_takes_its_own_types() -> Result<()> {
        assert!(matches!(
            parse_inbox::<GroupInbox>(JOIN)?,
            GroupInbox::Join(_)
        ));
        assert!(matches!(parse_inbox::<Activity>(JOIN)?, Activity::Join(_)));
        assert_eq!(
            parse_inbox::<PersonInbox>(JOIN),
            Err(Error::UnsupportedActivity("Join".into()))
        );
        let like = br#"{"type":"Like","id":"https://a.example/l","actor":"https://a.example/u","object":"https://b.example/x"}"#;
        assert_eq!(
            parse_inbox::<Activity>(like),
            Err(Error::UnsupportedActivity("Like".into()))
        );
        Ok(())
    }

    #[test]
    fn hostile_bodies_get_400_or_413_never_a_panic() {
        let deep = format!(
            "{{\"type\":\"Join\",\"x\":{}{}}}",
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        let wide = format!(
            "{{\"type\":\"Join\",\"to\":[{}\"x\"]}}",
            "\"x\",".repeat(20_000)
        );
        let big = format!(
            "{{\"type\":\"Join\",\"x\":\"{}\"}}",
            "a".repeat(2 * 1024 * 1024)
        );
        for (body, status) in [
            (deep.as_bytes(), 400),
            (wide.as_bytes(), 400),
            (big.as_bytes(), 413),
            (&b"{\"type\":7}"[..], 400),
            (b"{\"id\":\"https://a.example/1\"}", 400),
            (b"\x00\x01", 400),
        ] {
            match parse_inbox::<GroupInbox>(body) {
                Err(e) => assert_eq!(e.status(), status, "{e}"),
                Ok(a) => panic!("accepted {a:?}"),
            }
        }
    }

    #[test]
    fn a_forged_origin_is_403() {
        let forged = br#"{"type":"Join","id":"https://b.example/activities/j1",
            "actor":"https://a.example/passports/ada","object":"https://b.example/rooms/shed"}"#;
        assert_eq!(
            parse_inbox::<GroupInbox>(forged).map_err(|e| e.status()),
            Err(403)
        );
    }
}
