//! Test servers, processes, clients and fixtures. Everything listens on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod browser;
mod process;
mod server;

pub use browser::{Browser, Callback, LoginForm, callback, parse_login_form, pkce};
pub use process::PforteProcess;
pub use server::{TestClock, TestServer, TestServerOptions, shared_workers};

/// The example realm shipped in the repository (`examples/realm.json`).
pub const EXAMPLE_REALM: &str = include_str!("../../../examples/realm.json");

/// The PostgreSQL URL CI provides. `None` on a laptop without PostgreSQL: callers print
/// that they skipped and return.
pub fn postgres_url() -> Option<String> {
    match std::env::var("PFORTE_TEST_POSTGRES_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            eprintln!("skipped: PFORTE_TEST_POSTGRES_URL not set");
            None
        }
    }
}

/// HMAC-SHA256 of `data` under `key`: for forging tokens in tests.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    aws_lc_rs::hmac::sign(&key, data).as_ref().to_vec()
}

/// A unique path under the system temp folder (no extra dependency for temp dirs).
pub fn temp_path(prefix: &str) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    std::env::temp_dir().join(format!(
        "pforte-{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// An HTTP client that does not follow redirects: tests look at every hop.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}
