//! pforte's [`Store`] on SQLite (embedded, the default) and PostgreSQL (multi-node).
//!
//! - [`SqliteStore`]: WAL, `synchronous=NORMAL`, foreign keys, 5 s busy timeout; one
//!   connection on one thread that runs the queued operations in groups, one commit each.
//! - [`PgStore`]: a `PgPool`; migrations serialised across nodes by an advisory lock.
//! - [`AnyStore`]: either of them, chosen by the URL scheme.
//!
//! Both backends run the same SQL (PostgreSQL's `$n` written as SQLite's `?n`), share the row
//! shapes of `common`, and are held to the same behaviour by [`conformance`].
//!
//! Migrations are embedded (`migrations/<backend>/NNNN_name.sql`) and applied by
//! [`connect`](SqliteStore::connect) in one transaction, recorded in `pforte_migrations`.
//!
//! Tests: `cargo test -p pforte-store` runs the conformance suite on SQLite; with
//! `PFORTE_TEST_POSTGRES_URL=postgres://user:password@host/db` set it runs on PostgreSQL too
//! (otherwise those tests print `skipped: PFORTE_TEST_POSTGRES_URL not set`). Every check uses
//! its own random realm, so a shared database needs no cleaning between runs.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

#[macro_use]
mod common;
#[macro_use]
mod migrate;
mod any;
mod cache;
mod postgres;
mod sqlite;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

#[cfg(test)]
mod tests;

pub use any::{ACCEPTED_URLS, AnyStore};
pub use pforte_core::store::{RealmImport, Store, StoreError, StoreResult};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// `url` with any password replaced by `***`, fit for error messages and logs:
/// `postgres://user:secret@host/db` becomes `postgres://user:***@host/db`, and a
/// `password=` query parameter is masked too.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => (&url[..i + 3], &url[i + 3..]),
        None => ("", url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rfind('@') {
        Some(at) => {
            let (userinfo, host) = authority.split_at(at);
            match userinfo.find(':') {
                Some(colon) => format!("{}:***{host}", &userinfo[..colon]),
                None => authority.to_owned(),
            }
        }
        None => authority.to_owned(),
    };
    let tail = match tail.find('?') {
        Some(q) => {
            let (path, query) = tail.split_at(q + 1);
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{path}{}", query.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}{authority}{tail}")
}
