//! The one error type of the governance core.
//!
//! Every variant carries enough context for a person to fix their input: a BLT file error names
//! the line, a ballot error names the ballot, a Circle error names the constituency. Nothing in
//! this crate panics on user input; it returns one of these instead.

use crate::circle::Constituency;

/// Everything that can go wrong while reading ballots, counting them or changing the Circle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A BLT file is malformed. `line` is 1-based; 0 means "the end of the file".
    #[error("BLT line {line}: {message}")]
    Blt {
        /// 1-based line number in the file (0 when the file ended too early).
        line: usize,
        /// What is wrong, in words a steward can act on.
        message: String,
    },
    /// An in-memory ballot handed to [`crate::Election::new`] is invalid.
    #[error("ballot {ballot}: {message}")]
    Ballot {
        /// 0-based position of the ballot in the list given.
        ballot: usize,
        /// What is wrong with it.
        message: String,
    },
    /// The election as a whole is invalid (no candidates, duplicate names, too many votes...).
    #[error("invalid election: {0}")]
    Election(String),
    /// The count cannot be run as asked (zero seats, IRV for several seats...).
    #[error("cannot count: {0}")]
    Count(String),
    /// A method name that is not one of stv, meek, irv, schulze, approval, plurality.
    #[error(
        "unknown counting method {0:?} (expected stv, meek, irv, schulze, approval or plurality)"
    )]
    UnknownMethod(String),
    /// A change to the Circle of Stewards that would break its rules.
    #[error("Circle of Stewards ({constituency}): {message}")]
    Circle {
        /// The constituency whose seats the change concerned.
        constituency: Constituency,
        /// Why the change was refused.
        message: String,
    },
    /// A motion's votes are invalid (a non-member voting, someone voting twice).
    #[error("motion: {0}")]
    Motion(String),
    /// Budget shares out of range.
    #[error("budget: {0}")]
    Budget(String),
}

/// Result with this crate's [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn blt(line: usize, message: impl Into<String>) -> Self {
        Error::Blt {
            line,
            message: message.into(),
        }
    }
}
