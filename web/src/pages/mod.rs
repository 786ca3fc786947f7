//! One render function per page of the web UI (see the routes table in the web spec).
//!
//! Each takes the [`PageContext`](crate::view::PageContext) and the page's view model and returns
//! the whole HTML document. Pages never decide permissions: the view model says what the visitor
//! may do (`can_manage`, `Stage::Join`, ...) and the page shows exactly that.

mod account;
mod auth;
mod governance;
mod home;
mod network;
mod queue;
mod rooms;
mod spaces;
#[cfg(test)]
mod tests;
mod visits;

pub use account::{account, tokens};
pub use auth::{signin, signup, verify};
pub use governance::{
    ballot, ballot_receipt, election, election_new, election_result, governance, motion, receipts,
};
pub use home::{error, error_copy, error_status, landing, notice};
pub use network::{federation_admin, network};
pub use queue::{gatherings, queue};
pub use rooms::{room, room_delete_confirm, room_edit, room_new};
pub use spaces::{invitation, members, space, space_edit, space_new};
pub use visits::{ElsewhereRow, InvitationElsewhereRow, RemoteRoomView, VisitView, visit};

/// Help text under the handle field; the instance's handle rule should match it.
pub const HANDLE_HELP: &str =
    "Lowercase letters, digits and underscores. People find you by it; it can't be changed later.";

/// Help text under slug fields; the instance's slug rule should match it.
pub const SLUG_HELP: &str = "Used in links. Lowercase letters, digits and dashes.";
