#!/usr/bin/env bash
# The test command (README): formatting, lints, and every test of the workspace.
# PostgreSQL tests run when PFORTE_TEST_POSTGRES_URL is set (.ci/run sets it) and say
# "skipped" otherwise.
set -euo pipefail
cd "$(dirname "$0")"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
