//! OAuth 2.0 / OIDC error codes (RFC 6749 §4.1.2.1, §5.2; RFC 6750; OIDC Core §3.1.2.6;
//! RFC 8693). The server maps them onto HTTP statuses; the description tells the operator
//! or developer what to fix.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    UnsupportedResponseType,
    UnsupportedTokenType,
    InvalidScope,
    AccessDenied,
    LoginRequired,
    InvalidToken,
    InsufficientScope,
    RequestNotSupported,
    RequestUriNotSupported,
    ServerError,
    TemporarilyUnavailable,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::UnsupportedTokenType => "unsupported_token_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::LoginRequired => "login_required",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::InsufficientScope => "insufficient_scope",
            ErrorCode::RequestNotSupported => "request_not_supported",
            ErrorCode::RequestUriNotSupported => "request_uri_not_supported",
            ErrorCode::ServerError => "server_error",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthError {
    pub code: ErrorCode,
    pub description: String,
}

impl OAuthError {
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        OAuthError {
            code,
            description: description.into(),
        }
    }
    pub fn invalid_request(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, d)
    }
    pub fn invalid_client(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidClient, d)
    }
    pub fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidGrant, d)
    }
    pub fn invalid_scope(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidScope, d)
    }
    pub fn unauthorized_client(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::UnauthorizedClient, d)
    }
    pub fn invalid_token(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidToken, d)
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.description)
    }
}

impl std::error::Error for OAuthError {}

/// A store failure inside an OAuth operation: the request could not be served now.
impl From<crate::store::StoreError> for OAuthError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::Backend(_) => OAuthError::new(
                ErrorCode::TemporarilyUnavailable,
                "the database is not available; retry later",
            ),
            other => OAuthError::new(ErrorCode::ServerError, format!("stored data: {other}")),
        }
    }
}

impl From<crate::keys::KeyError> for OAuthError {
    fn from(e: crate::keys::KeyError) -> Self {
        OAuthError::new(ErrorCode::ServerError, format!("signing keys: {e}"))
    }
}

/// Parameters are bounded so that a request cannot make us store or hash megabytes.
pub const MAX_PARAM_LEN: usize = 4096;

/// Checks the length of an optional parameter.
pub fn bounded<'a>(name: &str, v: Option<&'a str>) -> Result<Option<&'a str>, OAuthError> {
    match v {
        Some(s) if s.len() > MAX_PARAM_LEN => Err(OAuthError::invalid_request(format!(
            "parameter `{name}` is longer than {MAX_PARAM_LEN} bytes"
        ))),
        Some("") => Ok(None),
        other => Ok(other),
    }
}

/// application/x-www-form-urlencoded for one value (RFC 3986 unreserved kept).
pub fn urlencode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Appends `params` form-encoded to `out`, the first after `first`, the others after `&`.
fn push_params(out: &mut String, first: char, params: &[(String, String)]) {
    let mut sep = first;
    for (k, v) in params {
        out.push(sep);
        out.push_str(&urlencode(k));
        out.push('=');
        out.push_str(&urlencode(v));
        sep = '&';
    }
}

/// `uri` with `params` as its fragment (a registered redirect URI has none of its own; one
/// that had would be replaced).
pub fn with_fragment(uri: &str, params: &[(String, String)]) -> String {
    let mut out = uri.split('#').next().unwrap_or(uri).to_owned();
    if params.is_empty() {
        out.push('#');
    }
    push_params(&mut out, '#', params);
    out
}

/// `uri` with `params` appended to its query.
pub fn append_query(uri: &str, params: &[(String, String)]) -> String {
    let mut out = uri.to_owned();
    push_params(&mut out, if uri.contains('?') { '&' } else { '?' }, params);
    out
}
