//! pforte's HTTP surface: routes, thin handlers, error → HTTP mapping, security headers.
//! The only crate that knows HTTP. Handlers parse, call one domain function, map the result.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod cookies;
mod cors;
mod error;
mod headers;
mod keycache;
mod pages;
mod password;
mod routes;
mod state;

use std::future::Future;

use axum::Router;
use tokio::net::TcpListener;

pub use error::ApiError;
pub use keycache::KeyCache;
pub use state::{AppState, Clock, ServerConfig, SystemClock};

/// The whole application as one router.
pub fn router(state: AppState) -> Router {
    routes::router(state.clone()).layer(headers::security_headers())
}

/// Serves until `shutdown` resolves, then lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// The operating system's random source, for callers outside the server (CLI import).
pub fn system_rng() -> std::sync::Arc<dyn pforte_core::rng::Rng> {
    state::system_rng()
}
