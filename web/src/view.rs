//! View models: the plain data every page is rendered from.
//!
//! The instance maps its domain types (Passports, Spaces, Rooms, memberships) into these structs
//! at the boundary; nothing here knows about the database. Strings are shown as given (escaped on
//! output), so dates and times arrive already formatted for people ("12 March 2026", "2 hours
//! ago"). Form models carry the values the person submitted, so a form that failed validation is
//! shown again with their input intact, plus a [`FormErrors`] list in the order the fields appear.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Where the footer's "source" link points unless the operator publishes their own fork.
///
/// AGPL-3.0 asks that people using the service over a network can get its source.
pub const DEFAULT_SOURCE_URL: &str = "https://convene.example.org/convene";

// ---------------------------------------------------------------------------------------------
// Every page
// ---------------------------------------------------------------------------------------------

/// What every page needs: the instance, the visitor, the CSRF token and a flash message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageContext {
    /// Shown as the brand in the header and at the end of every `<title>`.
    pub instance_name: String,
    /// The instance's domain, e.g. `convene.example.org`; used in handles (`@name@domain`).
    pub instance_domain: String,
    /// The signed-in visitor, if any.
    pub user: Option<NavUser>,
    /// The CSRF token placed in every POST form as the hidden input `csrf`.
    /// Empty for a bare context: POST forms are then still rendered but will be rejected.
    pub csrf: String,
    /// A one-off message from the previous request (e.g. "Space created").
    pub flash: Option<Flash>,
    /// Whether the visitor may create Spaces (operators always, others if the instance allows).
    pub can_create_spaces: bool,
    /// Where the footer's "source" link points (the AGPL source offer).
    pub source_url: String,
}

impl PageContext {
    /// A context with no visitor, no CSRF token and no flash: enough for error pages rendered
    /// before (or without) a session lookup.
    pub fn bare(instance_name: impl Into<String>, instance_domain: impl Into<String>) -> Self {
        Self {
            instance_name: instance_name.into(),
            instance_domain: instance_domain.into(),
            user: None,
            csrf: String::new(),
            flash: None,
            can_create_spaces: false,
            source_url: DEFAULT_SOURCE_URL.to_owned(),
        }
    }
}

/// The signed-in visitor as the navigation shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NavUser {
    /// The local handle without `@` (e.g. `ada`).
    pub handle: String,
    pub display_name: String,
    pub is_operator: bool,
}

/// A one-off message shown under the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    pub kind: FlashKind,
    pub message: String,
}

impl Flash {
    pub fn success(message: impl Into<String>) -> Self {
        Self {
            kind: FlashKind::Success,
            message: message.into(),
        }
    }
    pub fn error(message: impl Into<String>) -> Self {
        Self {
            kind: FlashKind::Error,
            message: message.into(),
        }
    }
    pub fn info(message: impl Into<String>) -> Self {
        Self {
            kind: FlashKind::Info,
            message: message.into(),
        }
    }
}

/// The tone of a [`Flash`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlashKind {
    Success,
    Error,
    Info,
}

impl FlashKind {
    /// The lowercase name, as stored in a cookie or query string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Error => "error",
            Self::Info => "info",
        }
    }
}

impl FromStr for FlashKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "success" => Ok(Self::Success),
            "error" => Ok(Self::Error),
            "info" => Ok(Self::Info),
            other => Err(Error::UnknownFlashKind(other.to_owned())),
        }
    }
}

/// A plain link: a label and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub label: String,
    pub href: String,
}

impl Link {
    pub fn new(label: impl Into<String>, href: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            href: href.into(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Forms
// ---------------------------------------------------------------------------------------------

/// One problem with a submitted form, tied to the field's `name` (which is also its input `id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// The problems with a submitted form, in the order the fields appear on the page.
///
/// The error summary lists them in this order with links to the fields, and each field shows
/// its own first message inline.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FormErrors(pub Vec<FieldError>);

impl FormErrors {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a problem with `field` (the input's `name`).
    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    /// Builder form of [`FormErrors::push`].
    #[must_use]
    pub fn with(mut self, field: impl Into<String>, message: impl Into<String>) -> Self {
        self.push(field, message);
        self
    }

    /// The first message for `field`, if it has one.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|e| e.field == field)
            .map(|e| e.message.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &FieldError> {
        self.0.iter()
    }
}

// ---------------------------------------------------------------------------------------------
// Spaces and rooms
// ---------------------------------------------------------------------------------------------

/// Who may enter a Room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Anyone with the link, guests included.
    #[default]
    Open,
    /// Members of the Space only; others get a 404.
    Members,
    /// Anyone who knows the access code.
    Locked,
}

impl Access {
    pub const ALL: [Access; 3] = [Access::Open, Access::Members, Access::Locked];

    /// The form value (`open`, `members`, `locked`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Members => "members",
            Self::Locked => "locked",
        }
    }

    /// The badge text.
    pub fn label(self) -> &'static str {
        match self {
            Self::Open => "Open",
            Self::Members => "Members",
            Self::Locked => "Locked",
        }
    }

    /// One sentence saying who may enter.
    pub fn explanation(self) -> &'static str {
        match self {
            Self::Open => "Anyone with the link may enter.",
            Self::Members => "Members of this Space may enter.",
            Self::Locked => "Locked: enter the access code to come in.",
        }
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Access {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "open" => Ok(Self::Open),
            "members" => Ok(Self::Members),
            "locked" => Ok(Self::Locked),
            other => Err(Error::UnknownAccess(other.to_owned())),
        }
    }
}

/// A person's role in a Space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    #[default]
    Member,
}

impl Role {
    /// The form value (`owner`, `member`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Member => "member",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Owner => "Owner",
            Self::Member => "Member",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "owner" => Ok(Self::Owner),
            "member" => Ok(Self::Member),
            other => Err(Error::UnknownRole(other.to_owned())),
        }
    }
}

/// A listed Space on the landing page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpaceCard {
    pub name: String,
    pub slug: String,
    pub description: String,
    pub room_count: u32,
    /// People in the Space's Rooms right now.
    pub people_inside: u32,
    pub url: String,
}

/// `GET /`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LandingView {
    /// One line under the instance name; a friendly default is shown when empty.
    pub tagline: String,
    pub spaces: Vec<SpaceCard>,
}

/// A Room as a door on its Space's page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomDoor {
    pub name: String,
    pub slug: String,
    pub topic: String,
    pub access: Access,
    pub listed: bool,
    pub capacity: u32,
    /// People inside right now.
    pub inside: u32,
    pub is_entrance: bool,
    pub url: String,
}

/// `GET /spaces/{space}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpaceView {
    pub name: String,
    pub slug: String,
    pub description: String,
    /// Unlisted Spaces are not on the landing page; the header says so.
    pub listed: bool,
    pub member_count: u32,
    /// The visitor's role, if they are a member.
    pub your_role: Option<Role>,
    /// Rooms the visitor may see (unlisted ones only for those allowed to see them).
    pub rooms: Vec<RoomDoor>,
    /// Shows "New room" (members).
    pub can_create_rooms: bool,
    /// Shows "Edit space" and "Members" (owners, operators).
    pub can_manage: bool,
}

/// One choice in the entrance-room select.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomOption {
    pub slug: String,
    pub name: String,
}

/// `GET /spaces/new`, and `POST /spaces` when it needs another try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpaceForm {
    pub name: String,
    pub slug: String,
    pub description: String,
    pub listed: bool,
    pub errors: FormErrors,
}

impl Default for SpaceForm {
    /// An empty form; new Spaces are listed unless the creator says otherwise.
    fn default() -> Self {
        Self {
            name: String::new(),
            slug: String::new(),
            description: String::new(),
            listed: true,
            errors: FormErrors::new(),
        }
    }
}

/// `GET/POST /spaces/{space}/edit`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpaceEditForm {
    /// The Space being edited (its slug does not change here).
    pub space_slug: String,
    pub name: String,
    pub description: String,
    pub listed: bool,
    /// Slug of the chosen entrance Room; `None` for no entrance.
    pub entrance_room: Option<String>,
    /// The Space's Rooms, to choose the entrance from.
    pub rooms: Vec<RoomOption>,
    pub errors: FormErrors,
}

/// One member on the members page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRow {
    pub display_name: String,
    /// The handle without `@`; remote members as `name@domain`.
    pub handle: String,
    pub role: Role,
    /// This row is the visitor.
    pub is_you: bool,
    /// Shows a remove button (owners, never on their own row).
    pub can_remove: bool,
}

/// A pending invitation on the members page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitationRow {
    pub id: String,
    pub email: String,
    pub role: Role,
    /// When it expires, formatted for people ("in 13 days", "8 April 2026").
    pub expires: String,
}

/// The invite form on the members page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InviteForm {
    pub email: String,
    pub role: Role,
    pub errors: FormErrors,
}

/// `GET /spaces/{space}/members`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MembersView {
    pub space_name: String,
    pub space_slug: String,
    pub members: Vec<MemberRow>,
    pub invitations: Vec<InvitationRow>,
    /// Shows remove buttons, invitations and the invite form (owners).
    pub can_manage: bool,
    /// Shows "Leave this Space" (members who are not the last owner).
    pub can_leave: bool,
    pub invite: InviteForm,
    /// People of other instances asking to join (owners see them).
    pub join_requests: Vec<JoinRequestRow>,
    /// Follows from other instances waiting for an owner (unlisted Spaces; owners only).
    pub follow_requests: Vec<FollowRequestRow>,
}

/// A request to join from another instance, waiting for an owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequestRow {
    pub display_name: String,
    /// `@ada@home`.
    pub address: String,
    /// The Room they asked to join from.
    pub room_name: String,
    pub approve_url: String,
    pub decline_url: String,
}

/// A follow of the Space from another instance, held for an owner's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowRequestRow {
    /// The follower's actor URL (also its page on most servers).
    pub actor: String,
    /// Its instance.
    pub host: String,
    pub requested: String,
    pub approve_url: String,
    pub reject_url: String,
}

/// `GET /invitations/{token}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitationView {
    /// The token from the URL; the accept/decline forms post back to it.
    pub token: String,
    /// Who sent it, as a display name.
    pub inviter: String,
    pub space_name: String,
    pub space_url: String,
    pub role: Role,
    pub state: InvitationState,
}

/// What the visitor can do with an invitation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvitationState {
    /// Signed in and the invitation is good: Accept / Decline.
    Pending,
    /// The invitation is good but the visitor must sign in (or sign up) first.
    SignInRequired {
        signin_url: String,
        signup_url: String,
    },
    Expired,
    Revoked,
    /// Someone already accepted or declined it.
    AlreadyUsed,
    /// The visitor is already a member of the Space.
    AlreadyMember,
}

/// `GET/POST /spaces/{space}/rooms/new` and `.../rooms/{room}/edit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomForm {
    pub space_name: String,
    pub space_slug: String,
    /// The Room's current slug when editing; `None` when creating.
    pub editing: Option<String>,
    pub name: String,
    pub slug: String,
    pub topic: String,
    pub access: Access,
    /// The code as typed; never filled in from storage.
    pub access_code: String,
    /// When editing a locked Room: a code is already set, so an empty field keeps it.
    pub code_is_set: bool,
    pub listed: bool,
    /// As typed, so an invalid number is shown back to the person.
    pub capacity: String,
    pub errors: FormErrors,
}

impl RoomForm {
    /// An empty "new room" form with the defaults: open, listed, capacity 12.
    pub fn new_room(space_name: impl Into<String>, space_slug: impl Into<String>) -> Self {
        Self {
            space_name: space_name.into(),
            space_slug: space_slug.into(),
            editing: None,
            name: String::new(),
            slug: String::new(),
            topic: String::new(),
            access: Access::Open,
            access_code: String::new(),
            code_is_set: false,
            listed: true,
            capacity: DEFAULT_CAPACITY.to_string(),
            errors: FormErrors::new(),
        }
    }
}

/// A Room's capacity unless its creator chooses another.
pub const DEFAULT_CAPACITY: u32 = 12;

/// `GET /spaces/{space}/rooms/{room}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomView {
    pub space_name: String,
    pub space_slug: String,
    pub name: String,
    pub slug: String,
    pub topic: String,
    pub access: Access,
    pub listed: bool,
    pub capacity: u32,
    pub is_entrance: bool,
    /// Display names of the people inside now.
    pub inside: Vec<String>,
    /// What the visitor sees where the meeting happens.
    pub stage: Stage,
    /// Shows "Edit room" and "Delete room" (members).
    pub can_edit: bool,
}

/// The part of the Room page where people meet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    /// The visitor may enter: the join panel and the video client's mount point.
    Join(JoinPanel),
    /// A locked Room the visitor has not unlocked yet: the access-code form.
    Locked(UnlockForm),
    /// The visitor may enter but the Room is at capacity.
    Full,
}

/// The join panel of a Room the visitor may enter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinPanel {
    /// WebSocket URL of the Room's signaling endpoint (`data-signal-url`).
    pub signal_url: String,
    /// Where the client asks for a media token (`data-token-url`).
    pub token_url: String,
    /// Prefill for the "Your name" field that signed-out visitors (guests of open Rooms) see;
    /// signed-in visitors enter under their Passport and get no field.
    pub guest_name: String,
    /// A visitor admitted with a Passport of another instance: its name and address
    /// (`@ada@home`), under which it enters.
    pub visiting: Option<(String, String)>,
    /// For signed-out visitors: where to name a Passport of another instance to join with.
    pub elsewhere_url: Option<String>,
}

/// The access-code form of a locked Room.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnlockForm {
    /// Inline message after a wrong code.
    pub error: Option<String>,
    /// After too many wrong codes: seconds until the visitor may try again.
    pub retry_after_secs: Option<u64>,
}

/// `POST /spaces/{space}/rooms/{room}/delete` confirmation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomDeleteView {
    pub space_name: String,
    pub space_slug: String,
    pub room_name: String,
    pub room_slug: String,
    /// People inside now; they are disconnected when the Room goes.
    pub inside: u32,
    pub is_entrance: bool,
    pub errors: FormErrors,
}

// ---------------------------------------------------------------------------------------------
// Passports
// ---------------------------------------------------------------------------------------------

/// `GET/POST /signup`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignupForm {
    pub email: String,
    /// The handle without `@`.
    pub handle: String,
    pub display_name: String,
    /// A local path to return to after signing in (e.g. an invitation), carried through the
    /// forms as the hidden field `next`; empty for none. The instance must check it is local.
    pub next: String,
    pub errors: FormErrors,
}

/// `GET/POST /signin`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SigninForm {
    pub email: String,
    /// A local path to return to after signing in (e.g. an invitation), carried through the
    /// forms as the hidden field `next`; empty for none. The instance must check it is local.
    pub next: String,
    pub errors: FormErrors,
}

/// `GET/POST /verify?email=E`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyForm {
    /// Where the code was sent; carried as a hidden field.
    pub email: String,
    /// The code as typed.
    pub code: String,
    /// Where "send a new code" leads (e.g. the sign-in form with the email filled in).
    pub resend_url: String,
    /// A local path to return to after signing in (e.g. an invitation), carried through the
    /// forms as the hidden field `next`; empty for none. The instance must check it is local.
    pub next: String,
    pub errors: FormErrors,
}

/// `GET/POST /me`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountForm {
    /// The handle without `@`; shown, not editable.
    pub handle: String,
    /// Shown, not editable.
    pub email: String,
    pub display_name: String,
    pub errors: FormErrors,
}

/// A personal access token in the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub id: String,
    pub name: String,
    /// Formatted for people.
    pub created: String,
    /// Formatted for people; `None` if never used.
    pub last_used: Option<String>,
}

/// A token just created: its secret is shown this once and never again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    pub name: String,
    pub secret: String,
}

/// The "new token" form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenForm {
    pub name: String,
    pub errors: FormErrors,
}

/// `GET/POST /me/tokens`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokensView {
    pub tokens: Vec<TokenRow>,
    pub new_token: Option<NewToken>,
    pub form: TokenForm,
}

// ---------------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------------

/// A simple message page ("Check your email").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoticeView {
    pub icon: NoticeIcon,
    pub title: String,
    pub message: String,
    /// Next steps, the first shown as the main button.
    pub links: Vec<Link>,
}

/// The picture at the top of a [`NoticeView`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NoticeIcon {
    #[default]
    Info,
    /// "Check your email".
    Mail,
    Success,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_round_trips_through_its_form_value() {
        for access in Access::ALL {
            assert_eq!(access.as_str().parse::<Access>(), Ok(access));
        }
        assert_eq!(
            "Locked".parse::<Access>(),
            Err(Error::UnknownAccess("Locked".into()))
        );
    }

    #[test]
    fn role_and_flash_kind_parse_their_form_values() {
        assert_eq!("owner".parse::<Role>(), Ok(Role::Owner));
        assert_eq!("member".parse::<Role>(), Ok(Role::Member));
        assert!("admin".parse::<Role>().is_err());
        for kind in [FlashKind::Success, FlashKind::Error, FlashKind::Info] {
            assert_eq!(kind.as_str().parse::<FlashKind>(), Ok(kind));
        }
        assert!("warning".parse::<FlashKind>().is_err());
    }

    #[test]
    fn form_errors_keep_order_and_return_the_first_message_per_field() {
        let errors = FormErrors::new()
            .with("slug", "Use lowercase letters")
            .with("name", "Give it a name")
            .with("slug", "Already taken");
        assert_eq!(errors.len(), 3);
        assert_eq!(errors.get("slug"), Some("Use lowercase letters"));
        assert_eq!(errors.get("topic"), None);
        let order: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(order, ["slug", "name", "slug"]);
    }
}
