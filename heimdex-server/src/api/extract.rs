//! Extractors whose rejections use the API's error shape.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// `axum::Json` whose rejections are JSON errors: malformed JSON and unknown fields 400, a
/// wrong content type 415, an oversized body 413.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

fn json_rejection(r: &JsonRejection) -> ApiError {
    match r {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected a JSON body with Content-Type: application/json",
        ),
        JsonRejection::BytesRejection(_) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "request body too large",
            )
        }
        _ => ApiError::invalid(r.body_text()),
    }
}

/// `axum::extract::Path` whose rejections are JSON 400 errors (axum's own are plain text),
/// and which refuses a NUL byte (`%00`) in a segment: no id holds one, and Postgres refuses
/// it in text, which would otherwise surface as a 500.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if has_nul(parts.uri.path()) {
            return Err(ApiError::invalid("path: a segment holds a NUL byte (%00)"));
        }
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Self(v)),
            Err(r) => Err(path_rejection(&r)),
        }
    }
}

fn path_rejection(r: &PathRejection) -> ApiError {
    if r.status().is_server_error() {
        // A route/extractor mismatch: the server's bug, not the caller's input.
        return ApiError::internal(&r.body_text());
    }
    ApiError::invalid(r.body_text())
}

/// Whether a percent-encoded path or query decodes to a NUL byte.
fn has_nul(encoded: &str) -> bool {
    encoded.as_bytes().windows(3).any(|w| w == b"%00")
}

/// `axum::extract::Query` whose rejections are JSON 400 errors; a NUL byte (`%00`) in a
/// value is refused like [`ApiPath`]'s.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if parts.uri.query().is_some_and(has_nul) {
            return Err(ApiError::invalid("query: a value holds a NUL byte (%00)"));
        }
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Self(v)),
            Err(r) => Err(query_rejection(&r)),
        }
    }
}

fn query_rejection(r: &QueryRejection) -> ApiError {
    ApiError::invalid(r.body_text())
}
