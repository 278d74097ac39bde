//! CORS for the endpoints single-page applications call (token, userinfo, revocation,
//! JWKS, discovery). Preflights are answered for any origin; the actual response carries
//! `Access-Control-Allow-Origin` only when the client's `webOrigins` allow the origin, and
//! that is what the browser enforces.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use pforte_core::cors::origin_allowed;
use pforte_core::model::Client;

pub fn origin(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .filter(|o| o.len() <= 255)
}

/// Allows `origin` on `res` if `client` lists it.
pub fn allow_for_client(res: &mut Response, origin: Option<&str>, client: Option<&Client>) {
    let (Some(origin), Some(client)) = (origin, client) else {
        return;
    };
    if !origin_allowed(client, origin) {
        return;
    }
    if let Ok(v) = HeaderValue::from_str(origin) {
        let h = res.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
}

pub async fn preflight(headers: HeaderMap) -> Response {
    let mut res = StatusCode::NO_CONTENT.into_response();
    if let Some(v) = origin(&headers).and_then(|o| HeaderValue::from_str(o).ok()) {
        let h = res.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, OPTIONS"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("Authorization, Content-Type"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("3600"),
        );
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    res
}
