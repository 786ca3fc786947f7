//! View models of the federation pages: the Network page (`GET /network`), where a Passport
//! follows Spaces on other instances and sees their Rooms, and the partner page for admins
//! (`GET /admin/federation`).
//!
//! Every string here that came from another instance was reduced to plain text by the
//! instance; the pages escape it again like any other text.

use crate::view::FormErrors;

/// `GET /network`.
#[derive(Debug, Clone, Default)]
pub struct NetworkView {
    /// The follow form: what was typed (or handed over by `/authorize_interaction`).
    pub follow: FollowForm,
    pub spaces: Vec<RemoteSpaceCard>,
    /// The partner instances' directory (allow-listed partners).
    pub partners: Vec<PartnerCard>,
}

/// The "follow a Space elsewhere" form.
#[derive(Debug, Clone, Default)]
pub struct FollowForm {
    pub handle: String,
    pub errors: FormErrors,
}

/// A Space elsewhere that the visitor follows (or asked to).
#[derive(Debug, Clone, Default)]
pub struct RemoteSpaceCard {
    pub name: String,
    /// `@slug@host`.
    pub handle: String,
    pub summary: String,
    /// Its page on its own instance.
    pub url: String,
    /// `pending`, `accepted` or `rejected`.
    pub state: String,
    /// Where the unfollow button posts.
    pub unfollow_url: String,
    pub rooms: Vec<RemoteRoomRow>,
}

/// A Room of a Space elsewhere, as its Space last announced it.
#[derive(Debug, Clone, Default)]
pub struct RemoteRoomRow {
    pub name: String,
    pub url: String,
    /// `open`, `members-only` or `locked`.
    pub access: String,
    pub capacity: u32,
    /// People inside when last announced.
    pub head_count: u32,
}

/// A partner instance in the Network directory.
#[derive(Debug, Clone, Default)]
pub struct PartnerCard {
    pub domain: String,
    pub url: String,
    /// "convene 0.1.0", when its NodeInfo was read.
    pub software: Option<String>,
    /// Its listed Spaces (for a Convene partner), each with a follow button.
    pub spaces: Vec<PartnerSpace>,
}

/// A partner's listed Space in the directory.
#[derive(Debug, Clone, Default)]
pub struct PartnerSpace {
    pub name: String,
    /// Its page, which is also what the follow button sends.
    pub url: String,
}

/// `GET /admin/federation`.
#[derive(Debug, Clone, Default)]
pub struct FederationAdminView {
    /// `open`, `allow-list` or `block-list`.
    pub mode: String,
    pub partners: Vec<PartnerRow>,
    pub blocked: Vec<PartnerRow>,
    /// The add-a-partner / block forms' input and problems.
    pub domain: String,
    pub errors: FormErrors,
    /// Passports of other instances blocked one by one: (address, where "Unblock" posts).
    pub blocked_passports: Vec<(String, String)>,
    /// The block-a-Passport form's input (its problems are in `errors`, field `address`).
    pub passport_address: String,
}

/// A partner or blocked instance, with what its NodeInfo said and its delivery queue.
#[derive(Debug, Clone, Default)]
pub struct PartnerRow {
    pub domain: String,
    pub software: Option<String>,
    pub version: Option<String>,
    /// `None` until checked; then whether its NodeInfo answered.
    pub reachable: Option<bool>,
    /// Why it was not reachable, or nothing.
    pub check_note: Option<String>,
    pub checked: Option<String>,
    /// The queue's state for it (`ok`, `failing`, `unreachable`), if deliveries went there.
    pub queue_state: Option<String>,
    pub pending: i64,
    pub last_error: Option<String>,
    /// Where its "check again" button posts.
    pub check_url: String,
    /// Where its "remove" (or "unblock") button posts.
    pub remove_url: String,
}
