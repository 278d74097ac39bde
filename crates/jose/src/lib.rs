//! Keys, JWS and JWK for pforte. No IO: callers bring bytes, this crate brings maths.

mod alg;

pub use alg::Alg;
