use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use pforte_core::authorize::{self, AuthorizeError, AuthorizeParams, Next};
use pforte_core::rng;
use pforte_core::{Store, session};

use super::oidc::respond_to_client;
use crate::ApiError;
use crate::cookies::{self, CookieJar};
use crate::pages;
use crate::state::AppState;

/// Everything but RFC 3986's unreserved characters: safe in a query value, and no longer
/// than it must be (the URL of a POSTed request can be long).
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub async fn get(
    State(state): State<AppState>,
    Path(realm): Path<String>,
    headers: HeaderMap,
    query: Result<Query<AuthorizeParams>, QueryRejection>,
) -> Response {
    match query {
        Ok(Query(p)) => authorize(state, &realm, &headers, p).await,
        Err(e) => bad_request(&state, &headers, &e.to_string()),
    }
}

/// A POSTed authorization request is sent on as a GET of the same parameters (303).
/// Browsers send `SameSite=Lax` cookies with a top-level GET from another site but not
/// with a POST: answered directly, a POST from the client's site would find no SSO session
/// (a login page for a logged-in user, `login_required` for `prompt=none`) and no
/// browser cookie (a new one would break a login pending in another tab).
pub async fn post(
    State(state): State<AppState>,
    Path(realm_name): Path<String>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let pairs = match form {
        Ok(Form(pairs)) => pairs,
        Err(e) => return bad_request(&state, &headers, &e.to_string()),
    };
    let realm = match super::realm(&state, &realm_name).await {
        Ok(r) => r,
        Err(e) => {
            let t = pages::texts(None, &headers);
            return pages::error(t, &*state.rng, e.status, &e.description);
        }
    };
    // Re-encoded pair by pair, in order and with repeats, so the GET judges exactly the
    // parameters that were posted (a repeated one is refused there as it would be here).
    let query = pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                utf8_percent_encode(k, QUERY_VALUE),
                utf8_percent_encode(v, QUERY_VALUE)
            )
        })
        .collect::<Vec<_>>()
        .join("&");
    // Relative, and the realm name as the cookies' path has it (its characters are
    // URL-safe): an encoded name would not match the cookie path, and the browser would
    // send no cookie with the GET; an absolute URL could switch the host it came in by.
    let location = format!(
        "/realms/{}/protocol/openid-connect/auth?{query}",
        realm.name
    );
    match HeaderValue::from_str(&location) {
        Ok(v) => (StatusCode::SEE_OTHER, [(header::LOCATION, v)]).into_response(),
        Err(_) => bad_request(&state, &headers, "the parameters cannot be sent on"),
    }
}

fn bad_request(state: &AppState, headers: &HeaderMap, detail: &str) -> Response {
    let t = pages::texts(None, headers);
    pages::error(
        t,
        &*state.rng,
        StatusCode::BAD_REQUEST,
        &format!("Invalid request: {detail}"),
    )
}

async fn authorize(
    state: AppState,
    realm_name: &str,
    headers: &HeaderMap,
    p: AuthorizeParams,
) -> Response {
    let t = pages::texts(p.ui_locales.as_deref(), headers);
    let now = state.now();
    let realm = match super::realm(&state, realm_name).await {
        Ok(r) => r,
        Err(e) => return pages::error(t, &*state.rng, e.status, &e.description),
    };
    let issuer = state.issuer(&realm.name);
    let client = match p
        .client_id
        .as_deref()
        .filter(|c| !c.is_empty() && c.len() <= 255 && !c.contains('\0'))
    {
        Some(id) => match state.store.get_client(&realm.name, id).await {
            Ok(c) => c,
            Err(e) => return store_failure(&state, t, e),
        },
        None => None,
    };
    let req = match authorize::validate(&issuer, client.as_deref(), &p) {
        Ok(r) => r,
        Err(AuthorizeError::Page(msg)) => {
            return pages::error(t, &*state.rng, StatusCode::BAD_REQUEST, &msg);
        }
        Err(AuthorizeError::Redirect(r)) => {
            return respond_to_client(t, &state, &r, HeaderMap::new());
        }
    };
    let session = match session::from_cookie(
        &*state.store,
        &realm,
        cookies::get(headers, cookies::SESSION),
        now,
    )
    .await
    {
        Ok(s) => s,
        Err(e) => return store_failure(&state, t, e),
    };
    let session = match p.id_token_hint.as_deref().filter(|h| !h.is_empty()) {
        None => session,
        Some(hint) => match state.keys.get_for_token(&realm, hint).await {
            Ok(keys) => authorize::session_for_hint(session, hint, &keys, &issuer, now),
            Err(e) => {
                let e = ApiError::from(e);
                return pages::error(t, &*state.rng, e.status, &e.description);
            }
        },
    };
    let jar = CookieJar::new(state.secure_cookies(), &realm.name);
    let mut set = HeaderMap::new();
    let browser = match cookies::get(headers, cookies::BROWSER).filter(|b| b.len() <= 128) {
        Some(b) => b.to_owned(),
        None => {
            let b = rng::token(&*state.rng, 24);
            jar.set(&mut set, cookies::BROWSER, &b, None);
            b
        }
    };
    let next = authorize::start(
        &*state.store,
        &realm,
        &issuer,
        req,
        session,
        &browser,
        now,
        &*state.rng,
    )
    .await;
    match next {
        Ok(Next::Respond(r)) => respond_to_client(t, &state, &r, set),
        Ok(Next::Login { flow_id, flow }) => {
            let action = format!(
                "/realms/{}/login-actions/authenticate?flow={flow_id}",
                realm.name
            );
            let mut res = pages::login(
                t,
                &*state.rng,
                realm.display_name.as_deref().unwrap_or(&realm.name),
                &action,
                flow.request.login_hint.as_deref().unwrap_or(""),
                &flow.csrf,
                None,
                StatusCode::OK,
            );
            res.headers_mut().extend(set);
            res
        }
        Err(e) => store_failure(&state, t, e),
    }
}

pub fn store_failure(state: &AppState, t: &pages::Texts, e: impl std::fmt::Display) -> Response {
    tracing::warn!(error = %e, "database failure during an interactive request");
    busy(state, t)
}

/// 503 with `Retry-After`: the request was not carried out and may simply be sent again.
pub fn busy(state: &AppState, t: &pages::Texts) -> Response {
    let mut res = pages::error(
        t,
        &*state.rng,
        StatusCode::SERVICE_UNAVAILABLE,
        "The service is temporarily unavailable. Please try again later.",
    );
    res.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from_static("5"),
    );
    res.into_response()
}
