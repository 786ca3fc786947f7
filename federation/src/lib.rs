//! Convene's federation vocabulary: how instances name people and decide whom to talk to.
//!
//! ActivityPub delivery (actors, WebFinger, signed inboxes, the delivery queue) is built on
//! these two pieces, which are pure and small enough to be settled first:
//!
//! - [`Address`]: a Passport or Space named across instances, `@name@domain`, parsed and
//!   printed one way everywhere (WebFinger's `acct:` form included).
//! - [`PartnerPolicy`]: the admins' choice of open, allow-list or block-list federation, and
//!   the one function that answers "may this domain talk to us?".
//!
//! The instance stores remote Passports with their home domain beside local ones (the
//! `passports.domain` column), so an [`Address`] maps to exactly one row.

pub mod address;
pub mod error;
pub mod policy;

pub use address::Address;
pub use error::{Error, Result};
pub use policy::{PartnerPolicy, PolicyMode};
