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
    let at = tokens::active_access_token(store, signer, token, now).await?;
    let granted = at.get("scope").and_then(Value::as_str).unwrap_or("");
    if !scope::contains(granted, "openid") {
        return Err(OAuthError::new(
            ErrorCode::InsufficientScope,
            "the access token was not issued with the openid scope",
        ));
    }
    let sub = at.get("sub").and_then(Value::as_str).unwrap_or("");
    let client_id = at.get("azp").and_then(Value::as_str).unwrap_or("");
    let user = store
        .get_user(&signer.realm.name, sub)
        .await?
        .filter(|u| u.enabled)
        .ok_or_else(|| {
            OAuthError::invalid_token("the user of this token no longer exists or is disabled")
        })?;
    let client = store
        .get_client(&signer.realm.name, client_id)
        .await?
        .ok_or_else(|| OAuthError::invalid_token("the client of this token no longer exists"))?;
    let mut out = Map::new();
    out.insert("sub".into(), json!(user.id));
    for (k, v) in claims::user_claims(&user, &client, granted, Target::Userinfo) {
        out.entry(k).or_insert(v);
    }
    Ok(out)
}
