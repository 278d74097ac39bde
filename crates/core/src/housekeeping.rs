//! Periodic clean-up of what has expired. Any node may run it; the deletes are idempotent.

use crate::model::Timestamp;
use crate::store::{Store, StoreResult};

/// How often a node runs [`purge`].
pub const INTERVAL_SECONDS: u64 = 300;

/// Deletes expired rows. Sessions are kept for the longest idle timeout of any realm, so
/// no realm loses a session that is still valid for it.
pub async fn purge<S: Store>(store: &S, now: Timestamp) -> StoreResult<u64> {
    let longest_idle = store
        .list_realms()
        .await?
        .iter()
        .map(|r| r.sso_session_idle_timeout)
        .max()
        .unwrap_or(0);
    store.purge_expired(now, now - longest_idle).await
}
