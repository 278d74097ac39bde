//! Security headers on every response. Handlers that render HTML may set a stricter CSP of
//! their own; these are the floor (`if_not_present`).

use axum::http::{HeaderName, HeaderValue, header};
use tower::ServiceBuilder;
use tower::layer::util::{Identity, Stack};
use tower_http::set_header::SetResponseHeaderLayer;

type L = SetResponseHeaderLayer<HeaderValue>;

fn layer(name: HeaderName, value: &'static str) -> L {
    SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
}

#[allow(clippy::type_complexity)]
pub fn security_headers() -> ServiceBuilder<Stack<L, Stack<L, Stack<L, Stack<L, Identity>>>>> {
    ServiceBuilder::new()
        .layer(layer(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(layer(header::X_FRAME_OPTIONS, "DENY"))
        .layer(layer(header::REFERRER_POLICY, "no-referrer"))
        .layer(layer(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ))
}
