//! The login form: flow and CSRF checks, brute-force detection, password verification,
//! session creation. Failures all look alike to the user, whether or not the account
//! exists, is locked or is disabled.

use std::future::Future;

use aws_lc_rs::constant_time::verify_slices_are_equal;

use crate::authorize::{self, AuthResponse, FLOW_KIND, LoginFlow};
use crate::model::{BruteForce, LoginFailures, Realm, Session, Timestamp, User};
use crate::rng::Rng;
use crate::secret::hash_token;
use crate::session;
use crate::store::{Store, StoreError};

/// Password verification is slow on purpose; the server runs it off the async threads with
/// bounded concurrency. With `phc = None` it must spend comparable time and return false,
/// so that timing does not reveal whether an account exists.
pub trait PasswordCheck: Send + Sync {
    fn verify(
        &self,
        password: String,
        phc: Option<String>,
    ) -> impl Future<Output = PasswordVerdict> + Send;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PasswordVerdict {
    Match,
    NoMatch,
    /// Too many checks are waiting already: nothing was checked (and nothing counts as a
    /// failure); the user is asked to try again shortly.
    Busy,
}

#[derive(Debug)]
pub enum LoginError {
    /// The flow is unknown or expired, belongs to another browser, or the CSRF token is
    /// missing or wrong: an error page, nothing is retried.
    Flow(String),
    /// Wrong credentials (or a locked or disabled account): show the form again.
    Credentials {
        flow_id: String,
        flow: Box<LoginFlow>,
    },
    /// The password checks are saturated: answer 503 and let the user retry.
    Busy,
    Store(StoreError),
}

impl From<StoreError> for LoginError {
    fn from(e: StoreError) -> Self {
        LoginError::Store(e)
    }
}

pub struct LoginSuccess {
    pub response: AuthResponse,
    /// Value for the SSO session cookie.
    pub session_cookie: String,
}

/// Keycloak's lock-out: after `failure_factor` failures, wait `wait_increment` per
/// multiple of the factor (capped), counted from the last failure.
pub fn is_locked(bf: &BruteForce, f: &LoginFailures, now: Timestamp) -> bool {
    if !bf.protected || f.count < bf.failure_factor.max(1) || is_stale(bf, f, now) {
        return false;
    }
    let steps = i64::from(f.count / bf.failure_factor.max(1));
    let wait = (bf.wait_increment_seconds * steps).min(bf.max_failure_wait_seconds);
    now - f.last_failure < wait
}

fn is_stale(bf: &BruteForce, f: &LoginFailures, now: Timestamp) -> bool {
    f.count > 0 && now - f.last_failure > bf.max_delta_time_seconds
}

/// Loads a login flow and checks it belongs to this browser and carries the right CSRF token.
pub async fn load_flow<S: Store>(
    store: &S,
    realm: &Realm,
    flow_id: &str,
    browser: Option<&str>,
    csrf: Option<&str>,
    now: Timestamp,
) -> Result<LoginFlow, LoginError> {
    let expired = || {
        LoginError::Flow(
            "Your login attempt timed out. Login will start from the beginning.".into(),
        )
    };
    if flow_id.is_empty() || flow_id.len() > 128 || flow_id.contains('\0') {
        return Err(expired());
    }
    let Some(state) = store.get_flow(flow_id).await? else {
        return Err(expired());
    };
    if state.kind != FLOW_KIND || state.realm != realm.name || state.expires_at <= now {
        return Err(expired());
    }
    let flow: LoginFlow = serde_json::from_str(&state.data)
        .map_err(|e| LoginError::Store(StoreError::Corrupt(e.to_string())))?;
    let same_browser = browser
        .map(hash_token)
        .is_some_and(|b| verify_slices_are_equal(b.as_bytes(), flow.browser.as_bytes()).is_ok());
    if !same_browser {
        return Err(LoginError::Flow(
            "This login was started in another browser or its cookie is missing. Please start again.".into(),
        ));
    }
    match csrf.filter(|c| !c.is_empty()) {
        None => return Err(LoginError::Flow("CSRF token missing".into())),
        Some(c) if verify_slices_are_equal(c.as_bytes(), flow.csrf.as_bytes()).is_err() => {
            return Err(LoginError::Flow("CSRF token invalid".into()));
        }
        Some(_) => {}
    }
    Ok(flow)
}

async fn find_user<S: Store>(
    store: &S,
    realm: &str,
    login: &str,
) -> Result<Option<User>, StoreError> {
    if let Some(u) = store.find_user_by_username(realm, login).await? {
        return Ok(Some(u));
    }
    if login.contains('@') {
        return store.find_user_by_email(realm, login).await;
    }
    Ok(None)
}

#[allow(clippy::too_many_arguments)]
pub async fn submit<S: Store, P: PasswordCheck>(
    store: &S,
    realm: &Realm,
    issuer: &str,
    flow_id: &str,
    browser: Option<&str>,
    // The browser's SSO session cookie, if it sent one: the login replaces that session.
    session_cookie: Option<&str>,
    csrf: Option<&str>,
    username: &str,
    password: &str,
    checker: &P,
    now: Timestamp,
    rng: &dyn Rng,
) -> Result<LoginSuccess, LoginError> {
    let flow = load_flow(store, realm, flow_id, browser, csrf, now).await?;
    let retry = |flow: LoginFlow| LoginError::Credentials {
        flow_id: flow_id.to_owned(),
        flow: Box::new(flow),
    };
    let login = username.trim().to_lowercase();
    // NUL is in no login name (and PostgreSQL cannot look it up): a failed login like any.
    if login.is_empty() || login.len() > 255 || login.contains('\0') || password.len() > 1024 {
        return Err(retry(flow));
    }
    let user = find_user(store, &realm.name, &login).await?;
    // Failures count per account, by its username, whether it was addressed by username or
    // by email (else each alias would get its own allowance); per typed name otherwise.
    let key = match &user {
        Some(u) => format!("user:{}", u.username.to_lowercase()),
        None => format!("user:{login}"),
    };
    let mut before = store.get_login_failures(&realm.name, &key).await?;
    if is_stale(&realm.brute_force, &before, now) {
        store.clear_login_failures(&realm.name, &key).await?;
        before = LoginFailures::default();
    }
    let locked = is_locked(&realm.brute_force, &before, now);
    let phc = user.as_ref().and_then(|u| u.password_hash.clone());
    // Always verify (a dummy when there is no hash), so every failure costs the same time.
    let verdict = checker.verify(password.to_owned(), phc).await;
    let user = match (verdict, user) {
        (PasswordVerdict::Busy, _) => return Err(LoginError::Busy),
        // A service account is a client's identity: no person logs in as one, whatever
        // credentials it was given (Keycloak refuses them too).
        (PasswordVerdict::Match, Some(u))
            if u.enabled && !locked && u.service_account_client_id.is_none() =>
        {
            u
        }
        _ => {
            store.record_login_failure(&realm.name, &key, now).await?;
            return Err(retry(flow));
        }
    };
    // The count is read again after the (slow) check: guesses sent in parallel all read the
    // same unlocked count before it, and the right one must not get through once the
    // others have locked the account meanwhile. Only failures count, so parallel logins
    // with the right password (one account on several devices) do not lock each other out.
    let after = store.get_login_failures(&realm.name, &key).await?;
    if is_locked(&realm.brute_force, &after, now) {
        store.record_login_failure(&realm.name, &key, now).await?;
        return Err(retry(flow));
    }
    // The flow is single-use from here on: a double submit finds nothing.
    if store.take_flow(flow_id).await?.is_none() {
        return Err(LoginError::Flow(
            "This login has already been completed.".into(),
        ));
    }
    store.clear_login_failures(&realm.name, &key).await?;
    // The client may have changed while the user typed (up to the login lifespan): a
    // disabled client or a redirect URI taken off it gets no code.
    let client = store
        .get_client(&realm.name, &flow.request.client_id)
        .await?;
    if !client.as_deref().is_some_and(|c| {
        c.enabled
            && c.standard_flow_enabled
            && authorize::redirect_uri_allowed(c, &flow.request.redirect_uri)
    }) {
        return Err(LoginError::Flow(
            "The application you are logging in to has changed. Please start again.".into(),
        ));
    }
    let (session, cookie) = replace_session(store, realm, &user, session_cookie, now, rng).await?;
    let response =
        authorize::issue_code(store, realm, issuer, &flow.request, &session, now, rng).await?;
    Ok(LoginSuccess {
        response,
        session_cookie: cookie,
    })
}

/// The session a successful login leaves the browser with. A browser holds one SSO session
/// per realm: the same user logging in again (`prompt=login`, `max_age`) re-authenticates
/// the session they have, so its other clients keep their tokens, as in Keycloak (which
/// counts the maximum lifespan from the first login; here a re-authentication starts it
/// anew, as the session's `auth_time` is both). A different user's session is ended with
/// its grants, or it would live on unseen behind the new cookie, beyond the reach of
/// logout (Keycloak refuses such a login with an error page and keeps the old session).
async fn replace_session<S: Store>(
    store: &S,
    realm: &Realm,
    user: &User,
    cookie: Option<&str>,
    now: Timestamp,
    rng: &dyn Rng,
) -> Result<(Session, String), StoreError> {
    let old = session::by_cookie(store, cookie).await?.zip(cookie);
    let same_user = old
        .as_ref()
        .filter(|(s, _)| s.user_id == user.id && session::is_active(realm, s, now));
    if let Some((s, c)) = same_user {
        // False when a logout ended it at this moment: then a new session below.
        if store.reauthenticate_session(&s.id, now).await? {
            let s = Session {
                auth_time: now,
                last_seen: now,
                ..s.clone()
            };
            return Ok((s, (*c).to_owned()));
        }
    } else if let Some((s, _)) = old.as_ref().filter(|(s, _)| s.realm == realm.name) {
        store.delete_session(&s.id).await?;
    }
    session::create(store, realm, &user.id, vec!["pwd".into()], None, now, rng).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lockout_follows_keycloak_arithmetic() {
        let bf = BruteForce::default(); // factor 5, wait 60, max 900
        let f = |count, last| LoginFailures {
            count,
            last_failure: last,
        };
        assert!(!is_locked(&bf, &f(4, 1000), 1001));
        assert!(is_locked(&bf, &f(5, 1000), 1001));
        assert!(is_locked(&bf, &f(5, 1000), 1059));
        assert!(!is_locked(&bf, &f(5, 1000), 1061));
        assert!(is_locked(&bf, &f(10, 1000), 1119), "two steps: 120 s");
        assert!(is_locked(&bf, &f(500, 1000), 1899), "capped at 900 s");
        assert!(!is_locked(&bf, &f(500, 1000), 1901));
        let off = BruteForce {
            protected: false,
            ..BruteForce::default()
        };
        assert!(!is_locked(&off, &f(50, 1000), 1001));
    }
}
