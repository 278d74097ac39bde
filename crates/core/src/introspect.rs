//! Token introspection (RFC 7662) and revocation (RFC 7009).

use serde_json::{Value, json};

use crate::model::{Client, Timestamp};
use crate::oauth::OAuthError;
use crate::store::Store;
use crate::tokens::{self, ACCESS_TOKEN_TYP, Signer};
use crate::{scope, session};

fn inactive() -> Value {
    json!({ "active": false })
}

/// A JWT has two dots; pforte's refresh tokens are opaque and have none.
fn looks_like_jwt(token: &str) -> bool {
    token.bytes().filter(|b| *b == b'.').count() == 2
}

pub async fn introspect<S: Store>(
    store: &S,
    signer: Signer<'_>,
    caller: &Client,
    token: &str,
    now: Timestamp,
) -> Result<Value, OAuthError> {
    if caller.public_client {
        return Err(OAuthError::invalid_client(
            "public clients may not introspect tokens",
        ));
    }
    if token.is_empty() || token.len() > pforte_jose::MAX_TOKEN_LEN {
        return Ok(inactive());
    }
    if looks_like_jwt(token) {
        let Ok(active) = tokens::active_access_token(store, signer, token, now).await else {
            return Ok(inactive());
        };
        // The whole claim set, as Keycloak answers: resource servers that authorise from
        // introspection read the roles (`realm_access`) and mapped claims from it, not
        // only the RFC 7662 members. Then the members RFC 7662 §2.2 defines.
        let mut out = active.claims;
        out.insert("active".into(), json!(true));
        out.insert("token_type".into(), json!("Bearer"));
        if let Some(u) = out.get("preferred_username").cloned() {
            out.insert("username".into(), u);
        }
        return Ok(Value::Object(out));
    }
    let Some((family, hash)) = tokens::parse_refresh_token(token) else {
        return Ok(inactive());
    };
    let Some(found) = store.get_refresh(family).await? else {
        return Ok(inactive());
    };
    let g = &found.grant;
    let session_ok = match &g.session_id {
        Some(_) => found
            .session
            .as_ref()
            .is_some_and(|s| session::is_active(signer.realm, s, now)),
        None => true,
    };
    // A refresh token is a credential of the client it was issued to (RFC 6749 §6), never
    // shown to a resource server: only that client learns anything about it here (RFC 7662
    // §4 lets the answer depend on the caller). Keycloak answers the same way.
    if !tokens::same_hash(&hash, &found.token.token_hash)
        || g.revoked
        || found.token.expires_at <= now
        || g.realm != signer.realm.name
        || g.client_id != caller.client_id
        || !session_ok
        || !found.user.as_ref().is_some_and(|u| u.enabled)
    {
        return Ok(inactive());
    }
    Ok(json!({
        "active": true,
        "token_type": "Refresh",
        "iss": signer.issuer,
        "sub": g.user_id,
        "client_id": g.client_id,
        "scope": scope::presented(&found.token.scope),
        "exp": found.token.expires_at,
        "iat": found.token.created_at,
        "sid": g.session_id,
    }))
}

/// Revokes a refresh token (its whole grant) or an access token (until it expires).
/// Unknown tokens are not an error (RFC 7009 §2.2); another client's token is refused.
pub async fn revoke<S: Store>(
    store: &S,
    signer: Signer<'_>,
    caller: &Client,
    token: &str,
    now: Timestamp,
) -> Result<(), OAuthError> {
    if token.is_empty() || token.len() > pforte_jose::MAX_TOKEN_LEN {
        return Ok(());
    }
    let mismatch = || OAuthError::unauthorized_client("the token was not issued to this client");
    if looks_like_jwt(token) {
        let Ok(c) = tokens::verify_own(
            token,
            signer.keys,
            signer.issuer,
            ACCESS_TOKEN_TYP,
            now,
            false,
        ) else {
            return Ok(());
        };
        if c.get("azp").and_then(Value::as_str) != Some(caller.client_id.as_str()) {
            return Err(mismatch());
        }
        let exp = c.get("exp").and_then(Value::as_i64).unwrap_or(now);
        if exp > now
            && let Some(jti) = c.get("jti").and_then(Value::as_str)
        {
            store.revoke_access_token(jti, exp).await?;
        }
        return Ok(());
    }
    // Any token of the family (current or rotated out) names the grant to end.
    let Some((family, _)) = tokens::parse_refresh_token(token) else {
        return Ok(());
    };
    let Some(found) = store.get_refresh(family).await? else {
        return Ok(());
    };
    if found.grant.client_id != caller.client_id || found.grant.realm != signer.realm.name {
        return Err(mismatch());
    }
    store.revoke_grant(&found.grant.id).await?;
    Ok(())
}
