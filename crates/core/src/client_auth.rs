//! Client authentication at the token, introspection and revocation endpoints
//! (RFC 6749 §2.3): `client_secret_basic`, `client_secret_post`, and `none` for public
//! clients.

use std::sync::Arc;

use crate::model::Client;
use crate::oauth::OAuthError;
use crate::secret;
use crate::store::Store;

/// What the request presented. The server extracts it (Basic header decoding is HTTP).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PresentedClient {
    /// From the `Authorization: Basic` header.
    pub basic: Option<(String, String)>,
    /// `client_id` form parameter.
    pub client_id: Option<String>,
    /// `client_secret` form parameter.
    pub client_secret: Option<String>,
}

// Keycloak's wording; clients and their tests compare it.
const INVALID: &str = "Invalid client or Invalid client credentials";

pub async fn authenticate<S: Store>(
    store: &S,
    realm: &str,
    presented: &PresentedClient,
) -> Result<Arc<Client>, OAuthError> {
    let (client_id, secret) = match (&presented.basic, &presented.client_secret) {
        (Some(_), Some(_)) => {
            return Err(OAuthError::invalid_request(
                "client credentials were sent both in the Authorization header and in the body; use one method",
            ));
        }
        (Some((id, secret)), None) => {
            if presented.client_id.as_ref().is_some_and(|b| b != id) {
                return Err(OAuthError::invalid_request(
                    "client_id in the body differs from the one in the Authorization header",
                ));
            }
            (id.as_str(), Some(secret.as_str()))
        }
        (None, secret) => match &presented.client_id {
            Some(id) => (id.as_str(), secret.as_deref()),
            None => {
                return Err(OAuthError::invalid_client(
                    "client authentication is required: send client_id (and client_secret for confidential clients)",
                ));
            }
        },
    };
    // NUL is in no client id, and PostgreSQL cannot even look it up.
    if client_id.contains('\0') {
        return Err(OAuthError::invalid_client(INVALID));
    }
    let client = store
        .get_client(realm, client_id)
        .await?
        .filter(|c| c.enabled)
        .ok_or_else(|| OAuthError::invalid_client(INVALID))?;
    if client.public_client {
        return Ok(client);
    }
    let (Some(secret), Some(hash)) = (secret, client.secret_hash.as_deref()) else {
        return Err(OAuthError::invalid_client(INVALID));
    };
    if !secret::verify_client_secret(secret, hash) {
        return Err(OAuthError::invalid_client(INVALID));
    }
    Ok(client)
}
