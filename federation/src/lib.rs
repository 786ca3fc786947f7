//! Convene's ActivityPub toolkit: everything the instance needs to federate, with no network
//! of its own except the guarded [`fetch::FetchClient`], and no knowledge of the instance.
//!
//! Where to start:
//! - [`Address`] and [`PartnerPolicy`]: naming people across instances and deciding whom to
//!   talk to.
//! - [`protocol`]: the ActivityStreams shapes (actors, activities, collections, the `convene:`
//!   context) and one enum per inbox; [`json`] reads remote JSON within size and depth limits
//!   before serde sees it.
//! - [`keys`] and [`signature`]: RSA actor keys, signing outbound requests, verifying inbound
//!   ones as pure functions of (request, key, time).
//! - [`receive`]: the inbound pipeline the instance's inbox and signed-GET routes call
//!   (policy, key lookup with rotation, verification, parsing, origin and duplicate checks).
//! - [`webfinger`] and [`nodeinfo`]: discovery documents, built and parsed.
//! - [`fetch`]: outbound HTTP that refuses private addresses, caps bodies and times out.
//! - [`delivery`]: one job per remote shared inbox, and one signed attempt per call, classified
//!   for the instance's durable queue.
//! - [`directory`]: the small traits the instance implements (local actors, keys, followers,
//!   remote keys, seen activity ids) and the documents served from them.
//! - [`admission`]: the signed ticket request that lets a member of a remote Room walk in.
//! - [`text`]: remote HTML reduced to plain text for display.
//!
//! Invariants: nothing here panics on remote input; every remote body is read through
//! [`json::from_slice`]; every error maps to an HTTP status ([`Error::status`]).
//!
//! Built on `activitypub_federation` 0.7 (its key generation, `PublicKey`, WebFinger types and
//! `application/activity+json` constant) but not on its queue or its inbox handler: the instance
//! keeps deliveries in its database, and verifies signed GETs as well as POSTs (see
//! `DEPENDENCIES-NOTES.md` at the repository root for why).

pub mod address;
pub mod admission;
pub mod delivery;
pub mod directory;
pub mod error;
pub mod fetch;
pub mod json;
pub mod keys;
pub mod nodeinfo;
pub mod policy;
pub mod protocol;
pub mod receive;
pub mod signature;
pub mod text;
pub mod urls;
pub mod webfinger;

pub use address::Address;
pub use error::{Error, Result, SignatureError};
pub use keys::ActorKeys;
pub use policy::{PartnerPolicy, PolicyMode};
