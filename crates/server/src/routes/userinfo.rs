use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use pforte_core::oauth::OAuthError;
use pforte_core::{Store, userinfo};
use serde::Deserialize;

use super::oidc::{RealmContext, no_store_json};
use crate::cors;
use crate::error::oauth_response;
use crate::state::AppState;

#[derive(Deserialize, Default)]
pub struct UserinfoForm {
    access_token: Option<String>,
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
}

pub async fn get(
    State(state): State<AppState>,
    Path(realm): Path<String>,
    headers: HeaderMap,
) -> Response {
    let token = bearer(&headers).map(str::to_owned);
    handle(state, &realm, token, &headers).await
}

pub async fn post(
    State(state): State<AppState>,
    Path(realm): Path<String>,
    headers: HeaderMap,
    form: Result<Form<UserinfoForm>, FormRejection>,
) -> Response {
    // RFC 6750 §2.2: the token may come in the body instead of the header, not both.
    let from_body = match form {
        Ok(Form(f)) => f.access_token,
        // A form that does not parse (e.g. `access_token` twice) is a malformed request
        // (RFC 6750 §3.1), not a request without a token.
        Err(
            FormRejection::FailedToDeserializeForm(_)
            | FormRejection::FailedToDeserializeFormBody(_),
        ) => {
            return oauth_response(
                &OAuthError::invalid_request("the request body is not a valid form"),
                &realm,
                true,
            );
        }
        // No form at all (a bearer header with an empty or other body) is fine.
        Err(_) => None,
    };
    let token = match (bearer(&headers), from_body) {
        (Some(_), Some(_)) => {
            return oauth_response(
                &OAuthError::invalid_request(
                    "send the access token in the header or the body, not both",
                ),
                &realm,
                true,
            );
        }
        (Some(h), None) => Some(h.to_owned()),
        (None, b) => b,
    };
    handle(state, &realm, token, &headers).await
}

async fn handle(
    state: AppState,
    realm: &str,
    token: Option<String>,
    headers: &HeaderMap,
) -> Response {
    let ctx = match async {
        RealmContext::load(&state, realm)
            .await?
            .keys_for(&state, token.as_deref())
            .await
    }
    .await
    {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let Some(token) = token else {
        let mut res = oauth_response(
            &OAuthError::invalid_token("no access token"),
            &ctx.realm.name,
            true,
        );
        // A request without any credentials gets the bare challenge, no error code
        // (RFC 6750 §3.1).
        if let Ok(v) = HeaderValue::from_str(&format!("Bearer realm=\"{}\"", ctx.realm.name)) {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        return res;
    };
    let mut res = match userinfo::userinfo(&*state.store, ctx.signer(), &token, state.now()).await {
        Ok(claims) => no_store_json(claims),
        Err(e) => oauth_response(&e, &ctx.realm.name, true),
    };
    if let Some(origin) = cors::origin(headers) {
        // Only to pick the client whose webOrigins apply; the token itself was verified
        // (or refused) above.
        let azp = pforte_jose::decode_unverified_claims(&token)
            .ok()
            .and_then(|c| c.get("azp").and_then(|v| v.as_str().map(str::to_owned)));
        if let Some(azp) = azp {
            let client = state
                .store
                .get_client(&ctx.realm.name, &azp)
                .await
                .ok()
                .flatten();
            cors::allow_for_client(&mut res, Some(origin), client.as_deref());
        }
    }
    res
}
