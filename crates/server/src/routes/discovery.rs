use axum::Json;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use pforte_core::discovery;
use pforte_jose::Jwks;

use super::realm;
use crate::error::ApiError;
use crate::state::AppState;

pub async fn openid_configuration(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let realm = realm(&state, &name).await?;
    let keys = state.keys.get(&realm).await?;
    let doc = discovery::openid_configuration(&state.issuer(&realm.name), &keys);
    Ok((
        [
            (header::CACHE_CONTROL, "public, max-age=60"),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        Json(doc),
    ))
}

pub async fn certs(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let realm = realm(&state, &name).await?;
    let keys = state.keys.get(&realm).await?;
    let jwks = Jwks {
        keys: keys.published.clone(),
    };
    // Short caching: relying parties should see a rotated-in key within a minute.
    Ok((
        [
            (header::CACHE_CONTROL, "public, max-age=60"),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        Json(jwks),
    ))
}
