//! Minting pforte's tokens and checking its own access tokens.
//!
//! Access tokens are JWTs (`typ: at+jwt`, RFC 9068). Their `jti` is `<grant id>.<random>`
//! when they belong to a grant, so that revoking the grant (code reuse, refresh replay,
//! logout) makes them inactive at introspection and userinfo without storing every token.
//! Refresh tokens are opaque random strings, stored only as hashes.

use std::sync::Arc;

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use pforte_jose::Alg;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::claims::{self, Target};
use crate::keys::RealmKeys;
use crate::model::{Client, Realm, Timestamp, User};
use crate::oauth::{ErrorCode, OAuthError};
use crate::payload::{Claim, Payload};
use crate::rng::{self, Rng};
use crate::scope;
use crate::secret::hash_token;
use crate::session;
use crate::store::Store;

pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// What the token endpoint answers (RFC 6749 §5.1, plus Keycloak's extra fields).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_expires_in: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_state: Option<String>,
    /// Keycloak's realm "not before" revocation time, always in its token responses; some
    /// Keycloak client libraries read it. pforte has no such push revocation, so it is 0,
    /// what Keycloak sends for a realm where none was ever set.
    #[serde(rename = "not-before-policy")]
    pub not_before_policy: i64,
    /// RFC 8693 responses name the type of the issued token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<&'static str>,
}

/// Everything needed to sign for one realm.
#[derive(Clone, Copy)]
pub struct Signer<'a> {
    pub issuer: &'a str,
    pub realm: &'a Realm,
    pub keys: &'a RealmKeys,
}

/// Who a token is about.
pub enum Principal<'a> {
    User(&'a User),
    /// A client acting for itself (client_credentials).
    ServiceAccount(&'a Client),
}

/// The authentication facts a token carries.
#[derive(Clone, Debug, Default)]
pub struct AuthContext<'a> {
    pub session_id: Option<&'a str>,
    pub auth_time: Option<Timestamp>,
    pub acr: Option<&'a str>,
    pub nonce: Option<&'a str>,
    pub grant_id: Option<&'a str>,
}

/// Seconds an access token lives: the client's `access.token.lifespan` or the realm's.
pub fn access_lifespan(realm: &Realm, client: &Client) -> i64 {
    client
        .attributes
        .get("access.token.lifespan")
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|v| *v > 0)
        .unwrap_or(realm.access_token_lifespan)
}

/// A stable subject for a client's service account, as Keycloak gives it a user of its own.
pub fn service_account_sub(client: &Client) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for part in ["service-account:", &client.realm, ":", &client.client_id] {
        ctx.update(part.as_bytes());
    }
    let d = ctx.finish();
    // The first 128 bits as a UUID-shaped string (8-4-4-4-12 hex digits). Written by hand:
    // this runs on every client_credentials grant.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(36);
    for (i, byte) in d.as_ref()[..16].iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    out
}

fn jti(rng: &dyn Rng, grant_id: Option<&str>) -> String {
    let r = rng::token(rng, 12);
    match grant_id {
        Some(g) => format!("{g}.{r}"),
        None => r,
    }
}

/// A new refresh token: returns the token to hand out, its family and the hash to store.
/// `family` continues an existing family (rotation); `None` starts one.
pub fn new_refresh_token(rng: &dyn Rng, family: Option<&str>) -> (String, String, String) {
    let family = family.map_or_else(|| rng::token(rng, 16), str::to_owned);
    let secret = rng::token(rng, 32);
    let token = format!("{family}.{secret}");
    (token, family, hash_token(&secret))
}

/// Splits a presented refresh token into its family and the hash of its secret.
pub fn parse_refresh_token(token: &str) -> Option<(&str, String)> {
    let (family, secret) = token.split_once('.')?;
    let ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    (ok(family) && ok(secret)).then(|| (family, hash_token(secret)))
}

/// Constant-time comparison of two stored-hash strings.
pub fn same_hash(a: &str, b: &str) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

/// The grant an access token belongs to, read from its `jti`.
pub fn grant_of_jti(jti: &str) -> Option<&str> {
    jti.split_once('.').map(|(g, _)| g)
}

fn sign(signer: Signer<'_>, typ: &str, claims: &Payload<'_>) -> Result<String, OAuthError> {
    signer
        .keys
        .active
        .sign_jwt(typ, claims)
        .map_err(|e| OAuthError::new(ErrorCode::ServerError, format!("signing failed: {e}")))
}

/// A minted access token.
pub struct IssuedAccessToken {
    pub token: String,
    /// Its lifetime in seconds.
    pub expires_in: i64,
    /// The scope the client is shown ([`scope::presented`]), as in the token.
    pub scope: String,
}

/// Mints an access token.
#[allow(clippy::too_many_arguments)]
pub fn access_token(
    signer: Signer<'_>,
    client: &Client,
    principal: &Principal<'_>,
    scope: &str,
    auth: &AuthContext<'_>,
    now: Timestamp,
    rng: &dyn Rng,
) -> Result<IssuedAccessToken, OAuthError> {
    let lifespan = access_lifespan(signer.realm, client);
    let shown = scope::presented(scope);
    // The token's own claims first: a user claim or protocol mapper of the same name must
    // not replace them (the first claim of a name wins).
    let mut c = Payload::with_capacity(24);
    c.add("iss", signer.issuer);
    c.add("exp", now + lifespan);
    c.add("iat", now);
    c.add("jti", jti(rng, auth.grant_id));
    c.add("aud", client.client_id.as_str());
    c.add("typ", "Bearer");
    c.add("azp", client.client_id.as_str());
    c.add("client_id", client.client_id.as_str());
    c.add("scope", shown.as_str());
    if let Some(t) = auth.auth_time {
        c.add("auth_time", t);
    }
    if let Some(sid) = auth.session_id {
        c.add("sid", sid);
    }
    if let Some(acr) = auth.acr {
        c.add("acr", acr);
    }
    match principal {
        Principal::User(user) => {
            c.add("sub", user.id.as_str());
            claims::add_user_claims(&mut c, user, client, scope, Target::AccessToken);
        }
        Principal::ServiceAccount(cl) => {
            // Keycloak's service-account user, when the realm file had it: its id and
            // roles, as Keycloak puts them in the token, so that APIs keep recognising
            // the client after the move.
            match &cl.service_account_user {
                Some(sa) => c.add("sub", sa.id.as_str()),
                None => c.add("sub", service_account_sub(cl)),
            }
            c.add(
                "preferred_username",
                format!("service-account-{}", cl.client_id),
            );
            if let Some(sa) = &cl.service_account_user
                && claims::releases_realm_roles(scope, &sa.realm_roles)
            {
                c.add("realm_access", Claim::RealmAccess(&sa.realm_roles));
            }
        }
    }
    let token = sign(signer, ACCESS_TOKEN_TYP, &c)?;
    Ok(IssuedAccessToken {
        token,
        expires_in: lifespan,
        scope: shown,
    })
}

/// `at_hash` (OIDC Core §3.1.3.6): the left half of the hash of the access token, with the
/// hash that goes with the signing algorithm.
pub fn at_hash(alg: Alg, access_token: &str) -> String {
    let algorithm = match alg {
        Alg::ES384 => &digest::SHA384,
        // Ed25519 signs with SHA-512 internally; OIDC implementations use it for at_hash.
        Alg::EdDSA => &digest::SHA512,
        _ => &digest::SHA256,
    };
    let d = digest::digest(algorithm, access_token.as_bytes());
    let bytes = d.as_ref();
    URL_SAFE_NO_PAD.encode(&bytes[..bytes.len() / 2])
}

#[allow(clippy::too_many_arguments)]
pub fn id_token(
    signer: Signer<'_>,
    client: &Client,
    user: &User,
    scope: &str,
    auth: &AuthContext<'_>,
    access_token: &str,
    now: Timestamp,
    rng: &dyn Rng,
) -> Result<String, OAuthError> {
    let mut c = Payload::with_capacity(24);
    c.add("iss", signer.issuer);
    c.add("sub", user.id.as_str());
    c.add("aud", client.client_id.as_str());
    c.add("exp", now + access_lifespan(signer.realm, client));
    c.add("iat", now);
    c.add("jti", rng::token(rng, 12));
    c.add("azp", client.client_id.as_str());
    c.add("typ", "ID");
    c.add("at_hash", at_hash(signer.keys.active.alg(), access_token));
    if let Some(t) = auth.auth_time {
        c.add("auth_time", t);
    }
    if let Some(n) = auth.nonce {
        c.add("nonce", n);
    }
    if let Some(sid) = auth.session_id {
        c.add("sid", sid);
    }
    if let Some(acr) = auth.acr {
        c.add("acr", acr);
    }
    claims::add_user_claims(&mut c, user, client, scope, Target::IdToken);
    sign(signer, "JWT", &c)
}

/// Verifies one of this realm's own JWTs (signature with a published key, issuer, expiry).
/// `typ` selects the kind (`at+jwt` for access tokens, `JWT` for ID tokens).
pub fn verify_own(
    token: &str,
    keys: &RealmKeys,
    issuer: &str,
    typ: &str,
    now: Timestamp,
    check_expiry: bool,
) -> Result<Map<String, Value>, OAuthError> {
    let algs = [keys.active.alg(), Alg::ES256, Alg::EdDSA, Alg::RS256];
    let v = pforte_jose::verify_jwt(token, &keys.verifying, &algs)
        .map_err(|e| OAuthError::invalid_token(format!("token is not valid: {e}")))?;
    if !v.header.typ_is(typ) {
        return Err(OAuthError::invalid_token(format!(
            "token is not of type {typ}"
        )));
    }
    if v.claims.get("iss").and_then(Value::as_str) != Some(issuer) {
        return Err(OAuthError::invalid_token(
            "token was issued by another issuer",
        ));
    }
    if check_expiry {
        let exp = v.claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
        if exp <= now {
            return Err(OAuthError::invalid_token("token has expired"));
        }
    }
    Ok(v.claims)
}

/// An access token that is usable right now (RFC 7662 §2.2 "active"): signature, issuer,
/// expiry; neither the token nor its grant revoked; its client still there and enabled;
/// for a user's token, the user still enabled and the SSO session it came from not ended
/// (logged out, idle or past its lifespan). Keycloak's introspection answers the same way;
/// the JWT alone cannot know any of this.
pub async fn active_access_token<S: Store>(
    store: &S,
    signer: Signer<'_>,
    token: &str,
    now: Timestamp,
) -> Result<ActiveAccessToken, OAuthError> {
    let realm = signer.realm;
    let claims = verify_own(
        token,
        signer.keys,
        signer.issuer,
        ACCESS_TOKEN_TYP,
        now,
        true,
    )?;
    let jti = claims.get("jti").and_then(Value::as_str).unwrap_or("");
    if store.is_access_token_revoked(jti).await? {
        return Err(OAuthError::invalid_token("token has been revoked"));
    }
    let client_id = claims
        .get("client_id")
        .and_then(Value::as_str)
        .unwrap_or("");
    let client = store
        .get_client(&realm.name, client_id)
        .await?
        .filter(|c| c.enabled)
        .ok_or_else(|| {
            OAuthError::invalid_token("the client of this token no longer exists or is disabled")
        })?;
    let grant_id = grant_of_jti(jti);
    // A client's own token (client_credentials: no grant) lives only as long as the client
    // may use that grant.
    if grant_id.is_none() && crate::grants::client_credentials_refusal(&client).is_some() {
        return Err(OAuthError::invalid_token(
            "the service account of this token is disabled",
        ));
    }
    let mut user = None;
    if let Some(grant_id) = grant_id {
        let grant = match store.get_grant(grant_id).await? {
            Some(g) if !g.revoked => g,
            _ => {
                return Err(OAuthError::invalid_token(
                    "the grant of this token has been revoked",
                ));
            }
        };
        if let Some(sid) = &grant.session_id
            && !store
                .get_session(sid)
                .await?
                .is_some_and(|s| session::is_active(realm, &s, now))
        {
            return Err(OAuthError::invalid_token(
                "the session of this token has ended",
            ));
        }
        user = Some(
            store
                .get_user(&realm.name, &grant.user_id)
                .await?
                .filter(|u| u.enabled)
                .ok_or_else(|| {
                    OAuthError::invalid_token(
                        "the user of this token no longer exists or is disabled",
                    )
                })?,
        );
    }
    Ok(ActiveAccessToken {
        claims,
        client,
        user,
    })
}

/// What [`active_access_token`] checked, for callers that need the records too.
pub struct ActiveAccessToken {
    pub claims: Map<String, Value>,
    pub client: Arc<Client>,
    /// The token's user; `None` for a client's own token (client_credentials).
    pub user: Option<User>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_account_sub_is_stable_and_uuid_shaped() {
        let mut client = Client::test_public();
        client.realm = "demo".into();
        client.client_id = "svc".into();
        // The first 16 bytes of SHA-256("service-account:demo:svc"): the subject must never
        // change for an existing client.
        assert_eq!(
            service_account_sub(&client),
            "15d88bf2-6867-9227-4ae7-7c411b939bc4"
        );
        client.client_id = "svc2".into();
        assert_ne!(
            service_account_sub(&client),
            "15d88bf2-6867-9227-4ae7-7c411b939bc4"
        );
    }
}
