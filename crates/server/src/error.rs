//! Errors as HTTP answers. API errors are JSON bodies in the OAuth 2.0 shape
//! (`error`, `error_description`); nothing internal leaks into a response.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: String,
}

impl ApiError {
    pub fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        ApiError {
            status,
            error,
            description: description.into(),
        }
    }

    pub fn realm_not_found(realm: &str) -> Self {
        // Keycloak answers unknown realms with this exact error text; clients match on it.
        ApiError::new(
            StatusCode::NOT_FOUND,
            "Realm does not exist",
            format!("realm `{realm}` does not exist"),
        )
    }

    /// An internal failure: logged in full, answered without details.
    pub fn internal(context: &str, err: impl std::fmt::Display) -> Self {
        tracing::error!(%err, "{context}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            format!("{context}; the server log has the details"),
        )
    }

    pub fn unavailable(context: &str, err: impl std::fmt::Display) -> Self {
        tracing::warn!(%err, "{context}");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            context,
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({ "error": self.error, "error_description": self.description })),
        )
            .into_response()
    }
}

impl From<pforte_core::StoreError> for ApiError {
    fn from(e: pforte_core::StoreError) -> Self {
        ApiError::unavailable("the database is not available", e)
    }
}

impl From<pforte_core::keys::KeyError> for ApiError {
    fn from(e: pforte_core::keys::KeyError) -> Self {
        ApiError::internal("signing keys could not be loaded", e)
    }
}

/// An OAuth error as the RFC wants it: 400 by default, 401 with `WWW-Authenticate` for
/// client and bearer-token failures, `no-store` always.
pub fn oauth_response(err: &pforte_core::oauth::OAuthError, realm: &str, bearer: bool) -> Response {
    use axum::http::{HeaderValue, header};
    use pforte_core::oauth::ErrorCode;
    let status = match err.code {
        ErrorCode::InvalidClient | ErrorCode::InvalidToken => StatusCode::UNAUTHORIZED,
        ErrorCode::InsufficientScope => StatusCode::FORBIDDEN,
        ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    };
    if status.is_server_error() {
        tracing::error!(error = %err, "request failed");
    }
    let mut res = (
        status,
        Json(json!({ "error": err.code.as_str(), "error_description": err.description })),
    )
        .into_response();
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    let challenge = match (err.code, bearer) {
        (ErrorCode::InvalidToken | ErrorCode::InsufficientScope, true) => Some(format!(
            "Bearer realm=\"{realm}\", error=\"{}\", error_description=\"{}\"",
            err.code.as_str(),
            err.description.replace(['"', '\\'], "'")
        )),
        (ErrorCode::InvalidClient, _) => Some(format!("Basic realm=\"{realm}\"")),
        _ => None,
    };
    if let Some(v) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
        h.insert(header::WWW_AUTHENTICATE, v);
    }
    res
}
