//! The domain's error type, [`AppError`]: what a use case answers when it says no.
//!
//! It knows nothing of HTTP. Each door maps it to its own form: the HTTP layer
//! ([`crate::http::error`]) to a status, an HTML page or `application/problem+json`; the
//! command line to one line of text. [`AppError::message`] gives the words a person is shown;
//! internal details are logged, never shown.

/// One field's problem, for re-rendering a form or for a problem body's `errors`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Unknown id, or something the visitor may not know exists.
    #[error("not found")]
    NotFound,
    /// The visitor must sign in first.
    #[error("sign in required")]
    Unauthenticated,
    /// Signed in, but not allowed.
    #[error("{0}")]
    Forbidden(&'static str),
    /// A form or body with values that fail validation, per field.
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    /// The request itself is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// Clashes with existing data (a taken handle or slug).
    #[error("{message}")]
    Conflict {
        field: &'static str,
        message: String,
    },
    /// Expired, used or revoked: it existed but is no longer valid.
    #[error("{0}")]
    Gone(&'static str),
    /// Too many attempts; try again after this many seconds.
    #[error("too many attempts")]
    RateLimited { retry_after: u64 },
    /// The form's CSRF token is missing or forged.
    #[error("csrf")]
    Csrf,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type Result<T, E = AppError> = std::result::Result<T, E>;

impl AppError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError {
            field,
            message: message.into(),
        }])
    }

    /// What a person is told: a title and one sentence.
    pub fn message(&self) -> (&'static str, String) {
        match self {
            Self::NotFound => (
                "Not found",
                "There is nothing here, or it is not yours to see.".into(),
            ),
            Self::Unauthenticated => ("Sign in needed", "Sign in to continue.".into()),
            Self::Forbidden(why) => ("Not allowed", (*why).into()),
            Self::Invalid(errors) => (
                "Please check the form",
                errors
                    .iter()
                    .map(|e| e.message.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            Self::BadRequest(why) => ("Bad request", why.clone()),
            Self::Conflict { message, .. } => ("Already taken", message.clone()),
            Self::Gone(why) => ("No longer valid", (*why).into()),
            Self::RateLimited { retry_after } => (
                "Too many attempts",
                format!(
                    "Please wait {} before trying again.",
                    human_seconds(*retry_after)
                ),
            ),
            Self::Csrf => (
                "Form expired",
                "This form was not sent from this site, or it is too old. Go back, reload the page and try again.".into(),
            ),
            Self::Internal(_) => (
                "Something went wrong",
                "An unexpected error happened on our side. It has been logged; please try again.".into(),
            ),
        }
    }
}

fn human_seconds(seconds: u64) -> String {
    match seconds {
        0..=1 => "a second".into(),
        2..=90 => format!("{seconds} seconds"),
        _ => format!("{} minutes", seconds.div_ceil(60)),
    }
}

impl From<sqlx::Error> for AppError {
    fn from(err: sqlx::Error) -> Self {
        Self::Internal(anyhow::Error::new(err))
    }
}

/// True when a database error is a unique-constraint violation (a taken handle or slug).
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .is_some_and(|e| e.is_unique_violation())
}
