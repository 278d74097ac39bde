use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use pforte_core::login::{self, LoginError};
use serde::Deserialize;

use super::authorize::{busy, store_failure};
use super::oidc::respond_to_client;
use crate::cookies::{self, CookieJar};
use crate::pages;
use crate::state::AppState;

#[derive(Deserialize)]
pub struct FlowQuery {
    flow: Option<String>,
}

#[derive(Deserialize)]
pub struct LoginForm {
    username: Option<String>,
    password: Option<String>,
    csrf_token: Option<String>,
}

pub async fn authenticate(
    State(state): State<AppState>,
    Path(realm_name): Path<String>,
    query: Result<Query<FlowQuery>, QueryRejection>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let t = pages::texts(None, &headers);
    let Ok(Form(form)) = form else {
        return pages::error(
            t,
            &*state.rng,
            StatusCode::BAD_REQUEST,
            "Invalid request: the login form is malformed.",
        );
    };
    let realm = match super::realm(&state, &realm_name).await {
        Ok(r) => r,
        Err(e) => return pages::error(t, &*state.rng, e.status, &e.description),
    };
    let issuer = state.issuer(&realm.name);
    let flow_id = query.ok().and_then(|Query(q)| q.flow).unwrap_or_default();
    let username = form.username.unwrap_or_default();
    let result = login::submit(
        &*state.store,
        &realm,
        &issuer,
        &flow_id,
        cookies::get(&headers, cookies::BROWSER),
        cookies::get(&headers, cookies::SESSION),
        form.csrf_token.as_deref(),
        &username,
        form.password.as_deref().unwrap_or(""),
        &state.passwords,
        state.now(),
        &*state.rng,
    )
    .await;
    match result {
        Ok(success) => {
            let t = pages::texts(None, &headers);
            let jar = CookieJar::new(state.secure_cookies(), &realm.name);
            let mut set = HeaderMap::new();
            jar.set(&mut set, cookies::SESSION, &success.session_cookie, None);
            respond_to_client(t, &state, &success.response, set)
        }
        Err(LoginError::Flow(msg)) => pages::error(t, &*state.rng, StatusCode::BAD_REQUEST, &msg),
        Err(LoginError::Credentials { flow_id, flow }) => {
            // Slows down guessing; the same for every kind of failure.
            tokio::time::sleep(state.config.login_failure_delay).await;
            let t = pages::texts(flow.request.ui_locales.as_deref(), &headers);
            let action = format!(
                "/realms/{}/login-actions/authenticate?flow={flow_id}",
                realm.name
            );
            pages::login(
                t,
                &*state.rng,
                realm.display_name.as_deref().unwrap_or(&realm.name),
                &action,
                &username,
                &flow.csrf,
                Some(t.invalid_credentials),
                StatusCode::OK,
            )
        }
        Err(LoginError::Busy) => busy(&state, t),
        Err(LoginError::Store(e)) => store_failure(&state, t, e),
    }
}
