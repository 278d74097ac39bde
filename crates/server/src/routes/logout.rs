use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use pforte_core::logout::{self, LogoutError, LogoutOutcome, LogoutParams};
use pforte_core::session;

use super::authorize::store_failure;
use super::oidc::RealmContext;
use crate::cookies::{self, CookieJar};
use crate::pages;
use crate::state::AppState;

pub async fn get(
    State(state): State<AppState>,
    Path(realm): Path<String>,
    headers: HeaderMap,
    query: Result<Query<LogoutParams>, QueryRejection>,
) -> Response {
    match query {
        Ok(Query(p)) => handle(state, &realm, &headers, p).await,
        Err(e) => bad(&state, &headers, &e.to_string()),
    }
}

pub async fn post(
    State(state): State<AppState>,
    Path(realm): Path<String>,
    headers: HeaderMap,
    form: Result<Form<LogoutParams>, FormRejection>,
) -> Response {
    match form {
        // A client's page that POSTs the logout (RP-Initiated Logout 1.0 §2 allows it) is
        // another site: the browser leaves out the SameSite=Lax session cookie. Send the
        // request once more from pforte's own page, same-site, so that the cookie comes
        // along and the browser's session can end; a hint alone ends nothing.
        Ok(Form(p)) if p.resent.is_none() && cookies::get(&headers, cookies::SESSION).is_none() => {
            let t = pages::texts(p.ui_locales.as_deref(), &headers);
            let realm = match super::realm(&state, &realm).await {
                Ok(r) => r,
                Err(e) => return pages::error(t, &*state.rng, e.status, &e.description),
            };
            let mut params = params_of(&p);
            if let Some(confirm) = &p.confirm {
                params.push(("confirm".into(), confirm.clone()));
            }
            params.push(("resent".into(), "1".into()));
            let action = format!("/realms/{}/protocol/openid-connect/logout", realm.name);
            pages::form_post(t, &*state.rng, &action, &params)
        }
        Ok(Form(p)) => handle(state, &realm, &headers, p).await,
        Err(e) => bad(&state, &headers, &e.to_string()),
    }
}

/// The request's own parameters, to pass on in a form.
fn params_of(p: &LogoutParams) -> Vec<(String, String)> {
    [
        ("id_token_hint", &p.id_token_hint),
        ("post_logout_redirect_uri", &p.post_logout_redirect_uri),
        ("state", &p.state),
        ("client_id", &p.client_id),
        ("ui_locales", &p.ui_locales),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.clone().map(|v| (k.to_owned(), v)))
    .collect()
}

fn bad(state: &AppState, headers: &HeaderMap, detail: &str) -> Response {
    let t = pages::texts(None, headers);
    pages::error(
        t,
        &*state.rng,
        StatusCode::BAD_REQUEST,
        &format!("Invalid request: {detail}"),
    )
}

async fn handle(state: AppState, realm: &str, headers: &HeaderMap, p: LogoutParams) -> Response {
    let t = pages::texts(p.ui_locales.as_deref(), headers);
    let ctx = match async {
        RealmContext::load(&state, realm)
            .await?
            .keys_for(&state, p.id_token_hint.as_deref())
            .await
    }
    .await
    {
        Ok(c) => c,
        Err(e) => return pages::error(t, &*state.rng, e.status, &e.description),
    };
    let now = state.now();
    let cookie = cookies::get(headers, cookies::SESSION);
    let session = match session::from_cookie(&*state.store, &ctx.realm, cookie, now).await {
        Ok(s) => s,
        Err(e) => return store_failure(&state, t, e),
    };
    let outcome = logout::logout(&*state.store, ctx.signer(), &p, session, cookie, now).await;
    let jar = CookieJar::new(state.secure_cookies(), &ctx.realm.name);
    let mut res = match outcome {
        Ok(LogoutOutcome::Redirect(uri)) => match HeaderValue::from_str(&uri) {
            Ok(v) => (StatusCode::FOUND, [(header::LOCATION, v)]).into_response(),
            Err(_) => pages::error(
                t,
                &*state.rng,
                StatusCode::BAD_REQUEST,
                "Invalid redirect uri",
            ),
        },
        Ok(LogoutOutcome::LoggedOut) => pages::logged_out(t, &*state.rng),
        Ok(LogoutOutcome::Confirm { token }) => {
            // The hint travels on: it still decides which client the redirect is checked
            // against once the user has confirmed.
            let params = params_of(&p);
            let action = format!("/realms/{}/protocol/openid-connect/logout", ctx.realm.name);
            return pages::logout_confirm(t, &*state.rng, &action, &token, &params);
        }
        Err(LogoutError::Page(msg)) => {
            return pages::error(t, &*state.rng, StatusCode::BAD_REQUEST, &msg);
        }
        Err(LogoutError::Store(e)) => return store_failure(&state, t, e),
    };
    jar.clear(res.headers_mut(), cookies::SESSION);
    res
}
