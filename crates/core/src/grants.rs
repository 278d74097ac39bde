//! The token endpoint's grants: `authorization_code`, `refresh_token`,
//! `client_credentials`. Each takes an authenticated client and answers tokens or an
//! RFC 6749 §5.2 error.

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::model::{
    AuthCode, Client, CodeRedemption, Grant, Realm, RefreshLookup, RefreshToken, Session, Timestamp,
};
use crate::oauth::{ErrorCode, OAuthError, bounded};
use crate::rng::Rng;
use crate::secret::hash_token;
use crate::store::{RefreshOutcome, RefreshStep, Store, StoreError};
use crate::tokens::{self, AuthContext, Principal, Signer, TokenResponse};
use crate::{scope, session};

#[derive(Clone, Debug, Default)]
pub struct TokenRequest {
    pub grant_type: Option<String>,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
    pub refresh_token: Option<String>,
    pub scope: Option<String>,
}

pub async fn token<S: Store>(
    store: &S,
    signer: Signer<'_>,
    client: &Client,
    req: &TokenRequest,
    now: Timestamp,
    rng: &dyn Rng,
) -> Result<TokenResponse, OAuthError> {
    match bounded("grant_type", req.grant_type.as_deref())? {
        Some("authorization_code") => {
            authorization_code(store, signer, client, req, now, rng).await
        }
        Some("refresh_token") => refresh(store, signer, client, req, now, rng).await,
        Some("client_credentials") => client_credentials(signer, client, req, now, rng),
        Some(other) => Err(OAuthError::new(
            ErrorCode::UnsupportedGrantType,
            format!(
                "grant_type `{other}` is not supported (authorization_code, refresh_token, client_credentials)"
            ),
        )),
        None => Err(OAuthError::invalid_request("grant_type is missing")),
    }
}

/// RFC 7636 §4.1: 43–128 characters from the unreserved set.
fn valid_pkce_value(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()))
}

fn check_pkce(challenge: Option<&str>, verifier: Option<&str>) -> Result<(), OAuthError> {
    match (challenge, verifier) {
        (None, None) => Ok(()),
        (None, Some(_)) => Err(OAuthError::invalid_grant(
            "code_verifier sent, but the authorization request had no code_challenge",
        )),
        (Some(_), None) => Err(OAuthError::invalid_grant(
            "PKCE verification failed: code_verifier is missing",
        )),
        (Some(challenge), Some(verifier)) => {
            if !valid_pkce_value(verifier) {
                return Err(OAuthError::invalid_grant(
                    "PKCE verification failed: code_verifier must be 43-128 unreserved characters",
                ));
            }
            let computed = s256(verifier);
            if aws_lc_rs::constant_time::verify_slices_are_equal(
                computed.as_bytes(),
                challenge.as_bytes(),
            )
            .is_err()
            {
                return Err(OAuthError::invalid_grant(
                    "PKCE verification failed: code_verifier does not match the code_challenge",
                ));
            }
            Ok(())
        }
    }
}

/// How long a refresh token lives: as long as its session stays active without further
/// use (idle timeout from the session's last activity), never past the session's maximum
/// lifespan. A session is marked seen at most once a minute (`session::needs_touch`), so
/// its last activity can be up to a minute before `now`; counting from `now` would promise
/// a token life the session does not have. A grant without a session counts from `now`.
fn refresh_expiry(
    realm: &Realm,
    session: Option<&Session>,
    auth_time: Timestamp,
    now: Timestamp,
) -> Timestamp {
    let seen = match session {
        Some(s) if !session::needs_touch(s, now) => s.last_seen,
        _ => now,
    };
    (seen + realm.sso_session_idle_timeout).min(auth_time + realm.sso_session_max_lifespan)
}

async fn authorization_code<S: Store>(
    store: &S,
    signer: Signer<'_>,
    client: &Client,
    req: &TokenRequest,
    now: Timestamp,
    rng: &dyn Rng,
) -> Result<TokenResponse, OAuthError> {
    let code = bounded("code", req.code.as_deref())?
        .ok_or_else(|| OAuthError::invalid_request("code is missing"))?;
    let rec = match store.redeem_code(&hash_token(code)).await? {
        CodeRedemption::Fresh(rec) => rec,
        CodeRedemption::Reused(rec) => {
            // RFC 6749 §4.1.2: a code used twice may be stolen; revoke what it issued.
            revoke_code_grant(store, &rec, now).await?;
            return Err(OAuthError::invalid_grant(
                "code already used; the tokens issued with it have been revoked",
            ));
        }
        CodeRedemption::Unknown => return Err(OAuthError::invalid_grant("code not valid")),
    };
    if rec.realm != signer.realm.name || rec.client_id != client.client_id {
        return Err(OAuthError::invalid_grant(
            "code was issued to another client",
        ));
    }
    if rec.expires_at <= now {
        return Err(OAuthError::invalid_grant("code has expired"));
    }
    if req.redirect_uri.as_deref() != Some(rec.redirect_uri.as_str()) {
        return Err(OAuthError::invalid_grant(
            "redirect_uri does not match the one of the authorization request",
        ));
    }
    check_pkce(
        rec.code_challenge.as_deref(),
        bounded("code_verifier", req.code_verifier.as_deref())?,
    )?;
    let user = store
        .get_user(&rec.realm, &rec.user_id)
        .await?
        .filter(|u| u.enabled)
        .ok_or_else(|| OAuthError::invalid_grant("user not found or disabled"))?;
    let session = store
        .get_session(&rec.session_id)
        .await?
        .filter(|s| session::is_active(signer.realm, s, now))
        .ok_or_else(|| OAuthError::invalid_grant("session not active"))?;

    // Redeeming the code is activity of the session, as a refresh is.
    if session::needs_touch(&session, now) {
        store.touch_session(&session.id, now).await?;
    }

    let grant = Grant {
        id: rec.grant_id.clone(),
        realm: rec.realm.clone(),
        client_id: client.client_id.clone(),
        user_id: user.id.clone(),
        session_id: Some(session.id.clone()),
        scope: rec.scope.clone(),
        auth_time: rec.auth_time,
        acr: rec.acr.clone(),
        created_at: now,
        revoked: false,
    };
    let (refresh_plain, family, secret_hash) = tokens::new_refresh_token(rng, None);
    let refresh = RefreshToken {
        family,
        token_hash: secret_hash,
        grant_id: grant.id.clone(),
        scope: rec.scope.clone(),
        created_at: now,
        expires_at: refresh_expiry(signer.realm, Some(&session), session.auth_time, now),
    };
    match store
        .insert_grant_with_refresh(&grant, Some(&refresh))
        .await
    {
        Ok(()) => {}
        // A logout ended the session since it was checked above.
        Err(StoreError::Conflict(_)) if store.get_session(&session.id).await?.is_none() => {
            return Err(OAuthError::invalid_grant("session not active"));
        }
        // A concurrent reuse of this code wrote the grant as revoked first.
        Err(StoreError::Conflict(_)) => {
            return Err(OAuthError::invalid_grant(
                "code already used; the tokens issued with it have been revoked",
            ));
        }
        Err(e) => return Err(e.into()),
    }
    let auth = AuthContext {
        session_id: Some(&session.id),
        auth_time: Some(rec.auth_time),
        acr: rec.acr.as_deref(),
        nonce: rec.nonce.as_deref(),
        grant_id: Some(&grant.id),
    };
    respond(
        signer,
        client,
        &user,
        &rec.scope,
        &auth,
        Some((refresh_plain, refresh.expires_at)),
        now,
        rng,
    )
}

/// Revokes the grant a reused code issued. The first redemption may not have written that
/// grant yet (it is still checking the request): then a revoked grant under the same id is
/// written now, so that its write fails instead of issuing tokens that escape revocation.
async fn revoke_code_grant<S: Store>(
    store: &S,
    rec: &AuthCode,
    now: Timestamp,
) -> Result<(), StoreError> {
    let revoked = Grant {
        id: rec.grant_id.clone(),
        realm: rec.realm.clone(),
        client_id: rec.client_id.clone(),
        user_id: rec.user_id.clone(),
        session_id: Some(rec.session_id.clone()),
        scope: rec.scope.clone(),
        auth_time: rec.auth_time,
        acr: rec.acr.clone(),
        created_at: now,
        revoked: true,
    };
    match store.insert_grant(&revoked).await {
        Err(StoreError::Conflict(_)) => store.revoke_grant(&rec.grant_id).await,
        other => other,
    }
}

#[allow(clippy::too_many_arguments)]
fn respond(
    signer: Signer<'_>,
    client: &Client,
    user: &crate::model::User,
    scope_granted: &str,
    auth: &AuthContext<'_>,
    refresh: Option<(String, Timestamp)>,
    now: Timestamp,
    rng: &dyn Rng,
) -> Result<TokenResponse, OAuthError> {
    let access = tokens::access_token(
        signer,
        client,
        &Principal::User(user),
        scope_granted,
        auth,
        now,
        rng,
    )?;
    let id_token = if scope::contains(scope_granted, "openid") {
        Some(tokens::id_token(
            signer,
            client,
            user,
            scope_granted,
            auth,
            &access.token,
            now,
            rng,
        )?)
    } else {
        None
    };
    let (refresh_token, refresh_expires_in) = match refresh {
        Some((t, exp)) => (Some(t), Some(exp - now)),
        None => (None, None),
    };
    Ok(TokenResponse {
        access_token: access.token,
        token_type: "Bearer",
        expires_in: access.expires_in,
        refresh_token,
        refresh_expires_in,
        id_token,
        scope: access.scope,
        session_state: auth.session_id.map(str::to_owned),
        not_before_policy: 0,
        issued_token_type: None,
    })
}

async fn refresh<S: Store>(
    store: &S,
    signer: Signer<'_>,
    client: &Client,
    req: &TokenRequest,
    now: Timestamp,
    rng: &dyn Rng,
) -> Result<TokenResponse, OAuthError> {
    let presented = bounded("refresh_token", req.refresh_token.as_deref())?
        .ok_or_else(|| OAuthError::invalid_request("refresh_token is missing"))?;
    let Some((family, old_hash)) = tokens::parse_refresh_token(presented) else {
        return Err(OAuthError::invalid_grant("refresh token not valid"));
    };
    let (new_plain, _, new_hash) = tokens::new_refresh_token(rng, Some(family));
    let check = RefreshCheck {
        realm: signer.realm.clone(),
        client_id: client.client_id.clone(),
        presented_hash: old_hash,
        // Bounded inside `decide`, after the replay check: an oversized scope must not spare
        // a replayed token's family.
        requested_scope: req.scope.clone(),
        successor_hash: new_hash,
        now,
    };
    let (found, passed) = match store
        .refresh_family(family, move |found| check.decide(found))
        .await?
    {
        RefreshOutcome::Rotated(found, passed) => (found, passed),
        RefreshOutcome::Unknown => {
            return Err(OAuthError::invalid_grant("refresh token not valid"));
        }
        RefreshOutcome::Stale => return Err(OAuthError::invalid_grant(REPLAYED)),
        RefreshOutcome::Refused(e) => return Err(e),
    };
    let grant = &found.grant;
    // `decide` let the refresh through only with an enabled user.
    let user = found
        .user
        .as_ref()
        .ok_or_else(|| OAuthError::invalid_grant("user not found or disabled"))?;
    // The join yields a session only for a grant that has one; `decide` found it active.
    if let Some(s) = &found.session
        && session::needs_touch(s, now)
    {
        store.touch_session(&s.id, now).await?;
    }
    let auth = AuthContext {
        session_id: grant.session_id.as_deref(),
        auth_time: Some(passed.auth_time),
        acr: grant.acr.as_deref(),
        nonce: None,
        grant_id: Some(&grant.id),
    };
    respond(
        signer,
        client,
        user,
        &passed.scope,
        &auth,
        Some((new_plain, passed.expires_at)),
        now,
        rng,
    )
}

const REPLAYED: &str = "refresh token was already used; all tokens of this grant have been revoked";

/// The checks of a refresh grant, judged on the family as the store has just read it, so
/// that reading and rotating are one store operation. Owned, because a store may run it on
/// its own thread.
struct RefreshCheck {
    realm: Realm,
    client_id: String,
    presented_hash: String,
    requested_scope: Option<String>,
    successor_hash: String,
    now: Timestamp,
}

/// What a refresh that passed its checks answers with.
#[derive(Debug)]
struct RefreshPassed {
    /// The scope of this response (the request may narrow the grant's scope).
    scope: String,
    auth_time: Timestamp,
    expires_at: Timestamp,
}

impl RefreshCheck {
    fn decide(self, found: &RefreshLookup) -> RefreshStep<RefreshPassed, OAuthError> {
        let grant = &found.grant;
        if grant.realm != self.realm.name || grant.client_id != self.client_id {
            return RefreshStep::Refuse(OAuthError::invalid_grant(
                "refresh token was issued to another client",
            ));
        }
        if !tokens::same_hash(&self.presented_hash, &found.token.token_hash) {
            // A token of this family that is not the current one: rotated out, so someone
            // holds a copy (the family id appears nowhere but in refresh tokens). End the
            // family.
            return RefreshStep::RevokeGrant(OAuthError::invalid_grant(REPLAYED));
        }
        if grant.revoked {
            return RefreshStep::Refuse(OAuthError::invalid_grant(
                "refresh token has been revoked",
            ));
        }
        if found.token.expires_at <= self.now {
            return RefreshStep::Refuse(OAuthError::invalid_grant("refresh token has expired"));
        }
        let session = match &grant.session_id {
            Some(_) => match found
                .session
                .as_ref()
                .filter(|s| session::is_active(&self.realm, s, self.now))
            {
                Some(s) => Some(s),
                None => {
                    return RefreshStep::Refuse(OAuthError::invalid_grant("session not active"));
                }
            },
            None => None,
        };
        let requested = match bounded("scope", self.requested_scope.as_deref()) {
            Ok(r) => r,
            Err(e) => return RefreshStep::Refuse(e),
        };
        let scope = match scope::narrow(&found.token.scope, requested) {
            Ok(s) => s,
            Err(e) => return RefreshStep::Refuse(OAuthError::invalid_scope(e)),
        };
        if !found.user.as_ref().is_some_and(|u| u.enabled) {
            return RefreshStep::Refuse(OAuthError::invalid_grant("user not found or disabled"));
        }
        let auth_time = session.map_or(grant.auth_time, |s| s.auth_time);
        let expires_at = refresh_expiry(&self.realm, session, auth_time, self.now);
        let successor = RefreshToken {
            family: found.token.family.clone(),
            token_hash: self.successor_hash,
            grant_id: grant.id.clone(),
            // The successor keeps the grant's scope; narrowing applies to this response.
            scope: found.token.scope.clone(),
            created_at: self.now,
            expires_at,
        };
        RefreshStep::Rotate(
            successor,
            RefreshPassed {
                scope,
                auth_time,
                expires_at,
            },
        )
    }
}

/// Why `client` may not use client_credentials now, if it may not. The token endpoint
/// refuses the grant with it; introspection and userinfo treat the client's earlier tokens
/// as inactive for the same reasons.
pub fn client_credentials_refusal(client: &Client) -> Option<OAuthError> {
    if client.public_client {
        return Some(OAuthError::unauthorized_client(
            "public clients cannot use client_credentials",
        ));
    }
    if !client.service_accounts_enabled {
        return Some(OAuthError::unauthorized_client(
            "client_credentials is not enabled for this client (serviceAccountsEnabled)",
        ));
    }
    if client
        .service_account_user
        .as_ref()
        .is_some_and(|sa| sa.disabled)
    {
        // Disabling the service-account user stops the client, as in Keycloak.
        return Some(OAuthError::invalid_request(format!(
            "User 'service-account-{}' disabled",
            client.client_id
        )));
    }
    None
}

fn client_credentials(
    signer: Signer<'_>,
    client: &Client,
    req: &TokenRequest,
    now: Timestamp,
    rng: &dyn Rng,
) -> Result<TokenResponse, OAuthError> {
    if let Some(refusal) = client_credentials_refusal(client) {
        return Err(refusal);
    }
    let granted = scope::grant(client, bounded("scope", req.scope.as_deref())?);
    // No ID token without an end-user: drop `openid`.
    let granted = granted
        .split_whitespace()
        .filter(|s| *s != "openid")
        .collect::<Vec<_>>()
        .join(" ");
    let access = tokens::access_token(
        signer,
        client,
        &Principal::ServiceAccount(client),
        &granted,
        &AuthContext::default(),
        now,
        rng,
    )?;
    Ok(TokenResponse {
        access_token: access.token,
        token_type: "Bearer",
        expires_in: access.expires_in,
        refresh_token: None,
        refresh_expires_in: None,
        id_token: None,
        scope: access.scope,
        session_state: None,
        not_before_policy: 0,
        issued_token_type: None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::model::{Grant, Session, User};

    const NOW: Timestamp = 1_700_000_000;

    /// A family as the store would hand it to `decide`: a session login an hour ago, seen
    /// a minute ago, with an enabled user.
    fn family() -> RefreshLookup {
        let grant = Grant {
            id: "g1".into(),
            realm: "r".into(),
            client_id: "app".into(),
            user_id: "u1".into(),
            session_id: Some("s1".into()),
            scope: "openid profile email".into(),
            auth_time: NOW - 3600,
            acr: None,
            created_at: NOW - 3600,
            revoked: false,
        };
        RefreshLookup {
            token: RefreshToken {
                family: "fam".into(),
                token_hash: "current".into(),
                grant_id: "g1".into(),
                scope: "openid profile email".into(),
                created_at: NOW - 60,
                expires_at: NOW + 600,
            },
            user: Some(User::new("u1", "r", "alice", NOW - 86_400)),
            session: Some(Session {
                id: "s1".into(),
                realm: "r".into(),
                user_id: "u1".into(),
                auth_time: NOW - 3600,
                last_seen: NOW - 60,
                acr: None,
                amr: Vec::new(),
                idp: None,
            }),
            grant,
        }
    }

    fn check(presented: &str, scope: Option<&str>) -> RefreshCheck {
        RefreshCheck {
            realm: Realm::new("r"),
            client_id: "app".into(),
            presented_hash: presented.into(),
            requested_scope: scope.map(str::to_owned),
            successor_hash: "next".into(),
            now: NOW,
        }
    }

    fn refusal(step: RefreshStep<RefreshPassed, OAuthError>) -> (&'static str, String) {
        match step {
            RefreshStep::Refuse(e) => ("refuse", e.description),
            RefreshStep::RevokeGrant(e) => ("revoke", e.description),
            RefreshStep::Rotate(..) => ("rotate", String::new()),
        }
    }

    #[test]
    fn refresh_check_rotates_the_current_token() {
        let RefreshStep::Rotate(next, passed) =
            check("current", Some("openid email")).decide(&family())
        else {
            panic!("a valid refresh was refused");
        };
        assert_eq!(next.family, "fam");
        assert_eq!(next.token_hash, "next");
        assert_eq!(next.grant_id, "g1");
        assert_eq!(
            next.scope, "openid profile email",
            "the successor keeps the scope"
        );
        assert_eq!(next.created_at, NOW);
        // Idle timeout (1800 s) from now; the session's max lifespan ends later.
        assert_eq!(next.expires_at, NOW + 1800);
        assert_eq!(passed.scope, "openid email", "the response is narrowed");
        assert_eq!(passed.auth_time, NOW - 3600);
        assert_eq!(passed.expires_at, NOW + 1800);
    }

    #[test]
    fn refresh_token_expires_with_the_sessions_idle_time() {
        // Seen 30 s ago: not marked seen again yet, so the session idles out 30 s before
        // now + idle timeout, and so does the token.
        let mut f = family();
        if let Some(s) = f.session.as_mut() {
            s.last_seen = NOW - 30;
        }
        let RefreshStep::Rotate(next, passed) = check("current", None).decide(&f) else {
            panic!("refused");
        };
        assert_eq!(next.expires_at, NOW - 30 + 1800);
        assert_eq!(passed.expires_at, next.expires_at);
        // Seen a minute ago or earlier: this refresh marks it seen now.
        let f = family();
        let RefreshStep::Rotate(next, _) = check("current", None).decide(&f) else {
            panic!("refused");
        };
        assert_eq!(next.expires_at, NOW + 1800);
    }

    #[test]
    fn refresh_check_never_outlives_the_session() {
        let mut f = family();
        let realm = Realm::new("r");
        let auth_time = NOW - realm.sso_session_max_lifespan + 100;
        if let Some(s) = f.session.as_mut() {
            s.auth_time = auth_time;
        }
        let RefreshStep::Rotate(next, _) = check("current", None).decide(&f) else {
            panic!("refused");
        };
        assert_eq!(next.expires_at, auth_time + realm.sso_session_max_lifespan);
    }

    #[test]
    fn refresh_check_refusals() {
        let f = family();
        assert_eq!(
            refusal(check("old", None).decide(&f)).0,
            "revoke",
            "a rotated-out token ends the grant"
        );
        let mut other = check("current", None);
        other.client_id = "someone-else".into();
        let (kind, why) = refusal(other.decide(&f));
        assert_eq!(
            kind, "refuse",
            "another client's token is refused, not revoked"
        );
        assert!(why.contains("another client"), "{why}");
        let mut other_realm = check("current", None);
        other_realm.realm = Realm::new("r2");
        assert_eq!(refusal(other_realm.decide(&f)).0, "refuse");

        type Spoil = fn(&mut RefreshLookup);
        let refusals: [(&str, Spoil); 6] = [
            ("revoked", |f| f.grant.revoked = true),
            ("expired", |f| f.token.expires_at = NOW),
            ("session", |f| {
                if let Some(s) = f.session.as_mut() {
                    s.last_seen = NOW - 1800;
                }
            }),
            ("session", |f| f.session = None),
            ("disabled", |f| {
                if let Some(u) = f.user.as_mut() {
                    u.enabled = false;
                }
            }),
            ("disabled", |f| f.user = None),
        ];
        for (why, spoil) in refusals {
            let mut spoilt = family();
            spoil(&mut spoilt);
            let (kind, description) = refusal(check("current", None).decide(&spoilt));
            assert_eq!(kind, "refuse", "{why}");
            assert!(description.contains(why), "{why}: {description}");
        }
        let oversized = "openid ".repeat(10_000);
        assert_eq!(
            refusal(check("old", Some(&oversized)).decide(&f)).0,
            "revoke",
            "an oversized scope spares a replayed family"
        );
        let too_long = check("current", Some(&oversized)).decide(&f);
        assert!(
            matches!(too_long, RefreshStep::Refuse(ref e) if e.code == ErrorCode::InvalidRequest),
            "oversized scope: {too_long:?}"
        );
        let wider = check("current", Some("openid offline_access")).decide(&f);
        assert!(
            matches!(wider, RefreshStep::Refuse(ref e) if e.code == ErrorCode::InvalidScope),
            "widening the scope: {wider:?}"
        );
    }

    #[test]
    fn pkce_rules() {
        let v = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let c = s256(v);
        assert_eq!(c, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        assert!(check_pkce(Some(&c), Some(v)).is_ok());
        assert!(check_pkce(Some(&c), None).is_err());
        assert!(check_pkce(None, Some(v)).is_err(), "downgrade");
        assert!(check_pkce(Some(&c), Some("short")).is_err());
        assert!(check_pkce(Some(&c), Some(&format!("{v}x"))).is_err());
        assert!(check_pkce(None, None).is_ok());
    }
}
