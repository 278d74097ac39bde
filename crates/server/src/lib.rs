//! pforte's HTTP surface: routes, thin handlers, error → HTTP mapping, security headers.
//! The only crate that knows HTTP. Handlers parse, call one domain function, map the result.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod cookies;
mod cors;
mod error;
mod headers;
mod keycache;
mod listen;
mod pages;
mod password;
mod random;
mod routes;
mod state;
mod workers;

use std::future::Future;

use tokio::net::TcpListener;

pub use error::ApiError;
pub use keycache::KeyCache;
pub use state::{AppState, Clock, ServerConfig, SystemClock, is_plain_http_loopback};
pub use workers::Workers;

/// Serves until `shutdown` resolves, then lets in-flight requests finish. The connections
/// are served on `workers` (see [`Workers`]); several servers may share them.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    workers: &Workers,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let read_timeout = state.config.read_timeout;
    listen::serve(
        listener,
        routes::router(state),
        workers,
        read_timeout,
        shutdown,
    )
    .await
}

/// The operating system's random source, for callers outside the server (CLI import).
pub fn system_rng() -> std::sync::Arc<dyn pforte_core::rng::Rng> {
    state::system_rng()
}
