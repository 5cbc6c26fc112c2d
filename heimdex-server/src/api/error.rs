//! The one JSON error shape of the HTTP API, mapped from error kinds in one place.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use heimdex_core::ErrorKind;
use serde::Serialize;

use crate::engine::EngineError;

/// An error answer: `{"error": {"kind": "...", "message": "..."}}` with its status.
///
/// Server errors (5xx) never carry internal detail to the client: the message says what
/// failed in general terms, and the detail goes to the log with the request id (see
/// [`ApiError::internal`]).
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable kind name (`not_found`, `invalid_input`, `unauthorized`, …).
    pub kind: &'static str,
    /// What went wrong, for the client.
    pub message: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorDetail {
    /// Stable kind: not_found, invalid_input, conflict, unauthorized, unavailable,
    /// bad_media, internal, payload_too_large, unsupported_media_type, method_not_allowed.
    kind: String,
    /// Human-readable message.
    message: String,
}

impl ApiError {
    /// An error of `kind` with `status`.
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
        }
    }

    /// 400 invalid input.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_input", message)
    }

    /// 401: no or a bad bearer token.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 500 with the detail logged, not sent.
    pub fn internal(detail: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error (see the server log for this request id)",
        )
    }
}

/// The status for each error kind: the API's one exhaustive mapping.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        // A storage permission problem of the server, not the caller's credentials.
        ErrorKind::Unauthorized => StatusCode::FORBIDDEN,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::BadMedia => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let kind = e.kind();
        let status = status_of(kind);
        if status.is_server_error() {
            tracing::error!(error = %e, kind = %kind, "request failed");
            let message = match kind {
                ErrorKind::Unavailable => "a backend is unavailable; retry later",
                _ => "internal error (see the server log for this request id)",
            };
            return Self::new(status, kind.as_str(), message);
        }
        Self::new(status, kind.as_str(), e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                kind: self.kind.to_owned(),
                message: self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}
