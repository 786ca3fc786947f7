//! The one error type of the instance, [`AppError`], and how it reaches people.
//!
//! Handlers return `Result<_, AppError>`. Turning an error into a response only records an
//! [`ErrorInfo`] in the response's extensions; the HTML and API routers each have a layer
//! ([`crate::http::errors`]) that renders it as a page (with the visitor's navigation) or as
//! `application/problem+json`. Internal details are logged, never shown.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

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

    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) | Self::Csrf => StatusCode::FORBIDDEN,
            Self::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::Gone(_) => StatusCode::GONE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What a person is told: a title and one sentence.
    pub fn info(&self) -> ErrorInfo {
        let status = self.status();
        let (title, detail): (&str, String) = match self {
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
        };
        ErrorInfo {
            status,
            title: title.to_string(),
            detail,
            errors: match self {
                Self::Invalid(errors) => errors.clone(),
                Self::Conflict { field, message } => vec![FieldError {
                    field,
                    message: message.clone(),
                }],
                _ => Vec::new(),
            },
            retry_after: match self {
                Self::RateLimited { retry_after } => Some(*retry_after),
                _ => None,
            },
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

/// The error as recorded on a response, for the rendering layers.
#[derive(Debug, Clone)]
pub struct ErrorInfo {
    pub status: StatusCode,
    pub title: String,
    pub detail: String,
    pub errors: Vec<FieldError>,
    pub retry_after: Option<u64>,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let Self::Internal(err) = &self {
            tracing::error!(error = ?err, "internal error");
        }
        let info = self.info();
        let mut response = (info.status, info.detail.clone()).into_response();
        if let Some(seconds) = info.retry_after
            && let Ok(value) = seconds.to_string().parse()
        {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, value);
        }
        response.extensions_mut().insert(info);
        response
    }
}

/// True when a database error is a unique-constraint violation (a taken handle or slug).
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .is_some_and(|e| e.is_unique_violation())
}
