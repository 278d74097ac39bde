//! Shared pieces of the OpenID Connect handlers: realm context, form parsing, answers to
//! the client.

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use pforte_core::authorize::AuthResponse;
use pforte_core::keys::RealmKeys;
use pforte_core::model::Realm;
use pforte_core::oauth::OAuthError;
use pforte_core::tokens::Signer;

use super::realm;
use crate::error::ApiError;
use crate::pages::{self, Texts};
use crate::state::AppState;

/// A realm with its keys and issuer: what every token operation needs.
pub struct RealmContext {
    pub realm: Arc<Realm>,
    pub keys: Arc<RealmKeys>,
    pub issuer: String,
}

impl RealmContext {
    pub async fn load(state: &AppState, name: &str) -> Result<RealmContext, ApiError> {
        let realm = realm(state, name).await?;
        let keys = state.keys.get(&realm).await?;
        let issuer = state.issuer(&realm.name);
        Ok(RealmContext {
            realm,
            keys,
            issuer,
        })
    }

    /// The keys, re-read first if `token` (a JWT about to be verified) names a key this node
    /// has not seen yet (see [`crate::KeyCache::get_for_token`]).
    pub async fn keys_for(
        mut self,
        state: &AppState,
        token: Option<&str>,
    ) -> Result<Self, ApiError> {
        if let Some(token) = token.filter(|t| !t.is_empty()) {
            self.keys = state.keys.get_for_token(&self.realm, token).await?;
        }
        Ok(self)
    }

    pub fn signer(&self) -> Signer<'_> {
        Signer {
            issuer: &self.issuer,
            realm: &self.realm,
            keys: &self.keys,
        }
    }
}

/// A body that did not parse as a form (wrong content type, duplicate parameter, bad
/// encoding) is the client's mistake: `invalid_request`, never a 5xx.
pub fn form_error(e: impl std::fmt::Display) -> OAuthError {
    OAuthError::invalid_request(format!("the request body is not a valid form: {e}"))
}

/// The authorization response, by response mode.
pub fn respond_to_client(
    t: &Texts,
    state: &AppState,
    r: &AuthResponse,
    headers: HeaderMap,
) -> Response {
    let mut res = match r.location() {
        Some(location) => match HeaderValue::from_str(&location) {
            Ok(v) => (StatusCode::FOUND, [(header::LOCATION, v)]).into_response(),
            Err(_) => pages::error(
                t,
                &*state.rng,
                StatusCode::BAD_REQUEST,
                "Invalid parameter: redirect_uri",
            ),
        },
        None => pages::form_post(t, &*state.rng, &r.redirect_uri, &r.params),
    };
    res.headers_mut().extend(headers);
    res
}

/// Token-endpoint-style JSON success with `no-store`.
pub fn no_store_json(body: impl serde::Serialize) -> Response {
    // Sized for a token response with an ID token, so that it is written without growing
    // the buffer (`axum::Json` starts at 128 bytes).
    let mut buf = Vec::with_capacity(2048);
    if let Err(e) = serde_json::to_writer(&mut buf, &body) {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot serialise the response: {e}"),
        )
            .into_response();
    }
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (header::PRAGMA, HeaderValue::from_static("no-cache")),
        ],
        buf,
    )
        .into_response()
}
