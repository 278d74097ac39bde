//! SSO sessions: a browser's login at pforte. The cookie holds a random secret; the
//! session's id (also the `sid` claim) is the hash of that secret, so the database never
//! holds a value that would open the session.

use crate::model::{Realm, Session, Timestamp};
use crate::rng::{self, Rng};
use crate::secret::hash_token;
use crate::store::{Store, StoreResult};

/// Idle sessions are refreshed at most this often, so busy clients don't write on every
/// request.
const TOUCH_INTERVAL: i64 = 60;

pub fn is_active(realm: &Realm, s: &Session, now: Timestamp) -> bool {
    s.realm == realm.name
        && now - s.last_seen < realm.sso_session_idle_timeout
        && now - s.auth_time < realm.sso_session_max_lifespan
}

pub fn needs_touch(s: &Session, now: Timestamp) -> bool {
    now - s.last_seen >= TOUCH_INTERVAL
}

/// Creates a session and returns it with the cookie value that opens it.
pub async fn create<S: Store>(
    store: &S,
    realm: &Realm,
    user_id: &str,
    amr: Vec<String>,
    idp: Option<String>,
    now: Timestamp,
    rng: &dyn Rng,
) -> StoreResult<(Session, String)> {
    let secret = rng::token(rng, 32);
    let session = Session {
        id: hash_token(&secret),
        realm: realm.name.clone(),
        user_id: user_id.to_owned(),
        auth_time: now,
        last_seen: now,
        acr: Some("1".into()),
        amr,
        idp,
    };
    store.create_session(&session).await?;
    Ok((session, secret))
}

/// The active session a cookie value opens, if any.
pub async fn from_cookie<S: Store>(
    store: &S,
    realm: &Realm,
    cookie: Option<&str>,
    now: Timestamp,
) -> StoreResult<Option<Session>> {
    Ok(by_cookie(store, cookie)
        .await?
        .filter(|s| is_active(realm, s, now)))
}

/// The session a cookie value opens, whether or not it is still active.
pub async fn by_cookie<S: Store>(store: &S, cookie: Option<&str>) -> StoreResult<Option<Session>> {
    match cookie.filter(|c| !c.is_empty() && c.len() <= 128) {
        Some(secret) => store.get_session(&hash_token(secret)).await,
        None => Ok(None),
    }
}
