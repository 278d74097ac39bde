//! pforte's one integration-test binary: real servers on 127.0.0.1:0, driven over HTTP the
//! way a client would, and the real `pforte` binary where only a process can tell.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cli;
mod code_flow;
mod cors;
mod discovery;
mod negative_authorize;
mod negative_session;
mod negative_token;
mod rp_library;
mod two_nodes;

use std::path::PathBuf;

/// The `pforte` binary cargo built for these tests.
pub fn pforte_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_pforte"))
}
