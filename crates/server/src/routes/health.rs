use axum::Json;
use axum::http::StatusCode;
use pforte_core::Store;
use serde_json::{Value, json};

use axum::extract::State;

use crate::state::AppState;

pub async fn live() -> Json<Value> {
    Json(json!({ "status": "UP" }))
}

/// Ready = the database answers and its migrations are applied (the store checks both).
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({ "status": "UP" }))),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(
                    json!({ "status": "DOWN", "checks": [{ "name": "database", "status": "DOWN" }] }),
                ),
            )
        }
    }
}
