mod authorize;
mod discovery;
mod health;
mod login;
mod logout;
mod oidc;
mod token;
mod userinfo;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use pforte_core::Store;
use pforte_core::model::Realm;

use crate::cors;
use crate::error::ApiError;
use crate::state::AppState;

/// Forms and tokens are small; anything bigger is refused before it is read.
pub const BODY_LIMIT: usize = 64 * 1024;

pub fn router(state: AppState) -> Router {
    let oidc = "/realms/{realm}/protocol/openid-connect";
    Router::new()
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route(
            "/realms/{realm}/.well-known/openid-configuration",
            get(discovery::openid_configuration).options(cors::preflight),
        )
        .route(
            &format!("{oidc}/certs"),
            get(discovery::certs).options(cors::preflight),
        )
        .route(
            &format!("{oidc}/auth"),
            get(authorize::get).post(authorize::post),
        )
        .route(
            "/realms/{realm}/login-actions/authenticate",
            post(login::authenticate),
        )
        .route(
            &format!("{oidc}/token"),
            post(token::token).options(cors::preflight),
        )
        .route(&format!("{oidc}/token/introspect"), post(token::introspect))
        .route(
            &format!("{oidc}/revoke"),
            post(token::revoke).options(cors::preflight),
        )
        .route(
            &format!("{oidc}/userinfo"),
            get(userinfo::get)
                .post(userinfo::post)
                .options(cors::preflight),
        )
        .route(
            &format!("{oidc}/logout"),
            get(logout::get).post(logout::post),
        )
        .fallback(not_found)
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint",
    )
}

/// The enabled realm of that name, or the 404 that clients of Keycloak expect.
pub(crate) async fn realm(state: &AppState, name: &str) -> Result<Arc<Realm>, ApiError> {
    // PostgreSQL cannot hold NUL in text: such a name is no realm, not a database failure.
    if name.len() > 255 || name.contains('\0') {
        return Err(ApiError::realm_not_found(name));
    }
    match state.store.get_realm(name).await? {
        Some(r) if r.enabled => Ok(r),
        _ => Err(ApiError::realm_not_found(name)),
    }
}
