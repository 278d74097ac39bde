//! pforte's domain. Pure logic: no HTTP, no SQL, no clock, no ambient randomness.
//! Time arrives as `now: Timestamp`, randomness through [`rng::Rng`].

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod authorize;
pub mod claims;
pub mod client_auth;
pub mod cors;
pub mod discovery;
pub mod grants;
pub mod housekeeping;
pub mod import;
pub mod introspect;
pub mod keys;
pub mod login;
pub mod logout;
pub mod model;
pub mod oauth;
pub mod payload;
pub mod representation;
pub mod rng;
pub mod scope;
pub mod secret;
pub mod session;
pub mod store;
pub mod tokens;
pub mod userinfo;

pub use model::Timestamp;
pub use store::{RefreshOutcome, RefreshStep, Store, StoreError, StoreResult};
