//! Periodic clean-up of what has expired. Any node may run it; the deletes are idempotent.

use crate::model::Timestamp;
use crate::store::{Store, StoreResult};

/// How often a node runs [`purge`].
pub const INTERVAL_SECONDS: u64 = 300;

/// Deletes expired rows. Sessions are kept for the longest idle timeout of any realm, so
/// no realm loses a session that is still valid for it; login-failure counters for at
/// least a day, and as long as any realm's lock-out may last or count failures together.
pub async fn purge<S: Store>(store: &S, now: Timestamp) -> StoreResult<u64> {
    let realms = store.list_realms().await?;
    let longest_idle = realms
        .iter()
        .map(|r| r.sso_session_idle_timeout)
        .max()
        .unwrap_or(0);
    let longest_lockout = realms
        .iter()
        .map(|r| {
            r.brute_force
                .max_failure_wait_seconds
                .max(r.brute_force.max_delta_time_seconds)
        })
        .fold(86_400, i64::max);
    store
        .purge_expired(now, now - longest_idle, now - longest_lockout)
        .await
}
