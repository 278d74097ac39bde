//! The userinfo endpoint (OIDC Core §5.3).

use serde_json::{Map, Value, json};

use crate::claims::{self, Target};
use crate::model::Timestamp;
use crate::oauth::{ErrorCode, OAuthError};
use crate::scope;
use crate::store::Store;
use crate::tokens::{self, Signer};

pub async fn userinfo<S: Store>(
    store: &S,
    signer: Signer<'_>,
    token: &str,
    now: Timestamp,
) -> Result<Map<String, Value>, OAuthError> {
    let active = tokens::active_access_token(store, signer, token, now).await?;
    let granted = active
        .claims
        .get("scope")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !scope::contains(granted, "openid") {
        return Err(OAuthError::new(
            ErrorCode::InsufficientScope,
            "the access token was not issued with the openid scope",
        ));
    }
    // The user and client were read (and found enabled) while checking the token.
    let user = active.user.as_ref().ok_or_else(|| {
        OAuthError::invalid_token("the user of this token no longer exists or is disabled")
    })?;
    let mut out = Map::new();
    out.insert("sub".into(), json!(user.id));
    for (k, v) in claims::user_claims(user, &active.client, granted, Target::Userinfo) {
        out.entry(k).or_insert(v);
    }
    Ok(out)
}
