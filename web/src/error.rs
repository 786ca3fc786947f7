//! Errors of the web crate.
//!
//! Rendering itself cannot fail: every view model is plain data and maud writes into a `String`.
//! What can fail is reading a value the browser sent back into one of the crate's closed
//! vocabularies (an access mode, a role, a flash kind), so the instance can turn a form field into
//! a view-model enum without its own string matching.

/// What went wrong when reading a form value into a view-model type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A room access mode other than `open`, `members` or `locked`.
    #[error("unknown room access mode {0:?}; expected open, members or locked")]
    UnknownAccess(String),
    /// A Space role other than `owner` or `member`.
    #[error("unknown role {0:?}; expected owner or member")]
    UnknownRole(String),
    /// A flash kind other than `success`, `error` or `info`.
    #[error("unknown flash kind {0:?}; expected success, error or info")]
    UnknownFlashKind(String),
}

/// Result type of the web crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
