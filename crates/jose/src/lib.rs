//! Keys, JWS and JWK for pforte. No IO: callers bring bytes, this crate brings maths.
//!
//! Signing and verification use aws-lc-rs directly and keep parsed key objects, so a token
//! costs one signature operation and no DER parsing.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod alg;
mod b64;
mod error;
mod jwk;
pub mod seal;
mod signing;
mod verify;

pub use alg::Alg;
pub use error::JoseError;
pub use jwk::{Jwk, Jwks};
pub use seal::MasterKey;
pub use signing::SigningKey;
pub use verify::{
    Header, MAX_TOKEN_LEN, VerifiedJwt, VerifyingKey, decode_unverified_claims,
    decode_unverified_header, verify_jwt,
};
