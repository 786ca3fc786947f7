//! Errors of the federation crate.

/// What can be wrong with federation input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// An address that is not `@name@domain` (or `acct:name@domain`).
    #[error("not an address of the form @name@domain: {0}")]
    BadAddress(String),
    /// A domain that is not a host name with an optional port.
    #[error("not a domain: {0}")]
    BadDomain(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
