//! How the domain's [`AppError`] reaches people over HTTP.
//!
//! Turning an error into a response only records an [`ErrorInfo`] in the response's
//! extensions; the HTML and API routers each have a layer that renders it as a page (with the
//! visitor's navigation) or as `application/problem+json`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::error::{AppError, FieldError};

/// The error as recorded on a response, for the rendering layers.
#[derive(Debug, Clone)]
pub struct ErrorInfo {
    pub status: StatusCode,
    pub title: String,
    pub detail: String,
    pub errors: Vec<FieldError>,
    pub retry_after: Option<u64>,
}

/// The status each kind of refusal answers with.
pub fn status(err: &AppError) -> StatusCode {
    match err {
        AppError::NotFound => StatusCode::NOT_FOUND,
        AppError::Unauthenticated => StatusCode::UNAUTHORIZED,
        AppError::Forbidden(_) | AppError::Csrf => StatusCode::FORBIDDEN,
        AppError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
        AppError::Conflict { .. } => StatusCode::CONFLICT,
        AppError::Gone(_) => StatusCode::GONE,
        AppError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The status, words and field problems of an error.
pub fn info(err: &AppError) -> ErrorInfo {
    let (title, detail) = err.message();
    ErrorInfo {
        status: status(err),
        title: title.to_string(),
        detail,
        errors: match err {
            AppError::Invalid(errors) => errors.clone(),
            AppError::Conflict { field, message } => vec![FieldError {
                field,
                message: message.clone(),
            }],
            _ => Vec::new(),
        },
        retry_after: match err {
            AppError::RateLimited { retry_after } => Some(*retry_after),
            _ => None,
        },
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let Self::Internal(err) = &self {
            tracing::error!(error = ?err, "internal error");
        }
        let info = info(&self);
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
