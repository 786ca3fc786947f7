//! Convene's governance core: pure, documented rules with no database, network or clock.
//!
//! What is here:
//! - [`Election`] and [`Ballot`]: candidates and (merged, validated) ballots.
//! - [`blt`]: reading and writing the BLT ballot format ([`blt::parse`], [`blt::write`]).
//! - [`count()`]: the tally — Scottish STV, Meek STV, IRV, Schulze, approval and plurality — returning
//!   an [`Outcome`] with every round, which round-trips through JSON (the stored form, read
//!   back checked, see `count::stored`) and prints with [`Outcome::to_text`].
//! - [`circle`]: the Circle of Stewards, whose seats are always N Resident and N Worker.
//! - [`motion`]: the Circle's double-majority decisions.
//! - [`budget`]: the Budget's shares.
//!
//! Where to start: `count::count` and the module docs of `count::scottish`, which cite the
//! Scottish rules one by one.
//!
//! Invariants:
//! - Counts are pure functions of (ballots, method, seats, seed): exact integer arithmetic, no
//!   floating point, ballots merged and sorted before counting so their order never matters,
//!   and ties broken by earlier rounds and then by a lot drawn from the published seed.
//! - Votes are conserved: in every STV round the candidates' votes, the non-transferable total
//!   and the truncation loss add up to the valid vote exactly.
//! - Nothing here panics on input from people: malformed ballots, BLT files and Circle changes
//!   return [`Error`]; a damaged stored result fails to deserialise.
//! - The JSON of an [`Outcome`] only ever gains optional fields, so results stored by any
//!   earlier version read back unchanged (`tests/data/stored/` holds the oldest format).
//! - A Circle can only be changed through operations that keep its Resident and Worker seats
//!   equal in number and filled only from their own constituency.
//!
//! Why a separate crate: results must be reproducible by anyone from the published ballots
//! (`convene tally FILE.blt`), so the rules live where nothing else can reach into them.

pub mod blt;
pub mod budget;
pub mod circle;
pub mod count;
mod election;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod lot;
pub mod motion;
mod votes;

pub use count::{Event, Method, Outcome, Round, TieRule, count, count_indices};
pub use election::{Ballot, Election, MAX_CANDIDATES};
pub use error::{Error, Result};
pub use votes::{MAX_TOTAL_VOTES, SCALE, Votes};
