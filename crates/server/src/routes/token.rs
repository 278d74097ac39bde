use std::sync::Arc;

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use pforte_core::client_auth::{self, PresentedClient};
use pforte_core::grants::{self, TokenRequest};
use pforte_core::model::Client;
use pforte_core::oauth::OAuthError;
use pforte_core::{Store, introspect};
use serde::Deserialize;

use super::oidc::{RealmContext, form_error, no_store_json};
use crate::cors;
use crate::error::oauth_response;
use crate::state::AppState;

#[derive(Deserialize, Default)]
pub struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    scope: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct TokenOnlyForm {
    /// `token_type_hint` (RFC 7009/7662) is accepted and not needed: pforte tells its
    /// JWT access tokens from its opaque refresh tokens by their shape.
    token: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// RFC 6749 §2.3.1: id and secret are form-urlencoded, then joined with `:` and base64'd.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let bad = || OAuthError::invalid_client("malformed Basic authorization header");
    let text = value.to_str().map_err(|_| bad())?;
    let Some(encoded) = text
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .map(|(_, rest)| rest.trim())
    else {
        return Ok(None);
    };
    let decoded = STANDARD.decode(encoded).map_err(|_| bad())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
    let unescape = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8()
            .map(|d| d.into_owned())
            .map_err(|_| bad())
    };
    Ok(Some((unescape(id)?, unescape(secret)?)))
}

fn presented(
    headers: &HeaderMap,
    client_id: Option<String>,
    client_secret: Option<String>,
) -> Result<PresentedClient, OAuthError> {
    Ok(PresentedClient {
        basic: basic_credentials(headers)?,
        client_id: client_id.filter(|c| !c.is_empty()),
        client_secret: client_secret.filter(|c| !c.is_empty()),
    })
}

pub async fn token(
    State(state): State<AppState>,
    Path(realm): Path<String>,
    headers: HeaderMap,
    form: Result<Form<TokenForm>, FormRejection>,
) -> Response {
    let ctx = match RealmContext::load(&state, &realm).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    // The client the request claims to be, for CORS: a browser app must be able to read
    // errors too (an expired refresh token, say), not only successes.
    let mut claimed: Option<String> = None;
    let result = async {
        let Form(f) = form.map_err(form_error)?;
        let presented = presented(&headers, f.client_id.clone(), f.client_secret.clone())?;
        claimed = presented
            .basic
            .as_ref()
            .map(|(id, _)| id.clone())
            .or_else(|| presented.client_id.clone());
        let client = client_auth::authenticate(&*state.store, &ctx.realm.name, &presented).await?;
        let req = TokenRequest {
            grant_type: f.grant_type,
            code: f.code,
            redirect_uri: f.redirect_uri,
            code_verifier: f.code_verifier,
            refresh_token: f.refresh_token,
            scope: f.scope,
        };
        grants::token(
            &*state.store,
            ctx.signer(),
            &client,
            &req,
            state.now(),
            &*state.rng,
        )
        .await
    }
    .await;
    let mut res = match result {
        Ok(body) => no_store_json(body),
        Err(e) => oauth_response(&e, &ctx.realm.name, false),
    };
    allow_claimed_client(&state, &ctx.realm.name, &headers, claimed, &mut res).await;
    res
}

/// CORS for the client a request claims to be, whether or not it authenticated: a browser
/// app must be able to read an error (an expired refresh token, a refused revocation) too,
/// and the claimed client's `webOrigins` decide, as for its successes.
async fn allow_claimed_client(
    state: &AppState,
    realm: &str,
    headers: &HeaderMap,
    claimed: Option<String>,
    res: &mut Response,
) {
    if let (Some(origin), Some(id)) = (cors::origin(headers), claimed) {
        let client = state.store.get_client(realm, &id).await.ok().flatten();
        cors::allow_for_client(res, Some(origin), client.as_deref());
    }
}

/// What introspection and revocation share: the realm, the authenticated caller and the
/// token it names — or the error answer.
async fn client_and_token(
    state: &AppState,
    realm: &str,
    headers: &HeaderMap,
    form: Result<Form<TokenOnlyForm>, FormRejection>,
) -> Result<(RealmContext, Arc<Client>, String), Response> {
    let ctx = RealmContext::load(state, realm)
        .await
        .map_err(IntoResponse::into_response)?;
    let result = async {
        let Form(f) = form.map_err(form_error)?;
        let client = client_auth::authenticate(
            &*state.store,
            &ctx.realm.name,
            &presented(headers, f.client_id, f.client_secret)?,
        )
        .await?;
        let token = f
            .token
            .ok_or_else(|| OAuthError::invalid_request("token is missing"))?;
        Ok::<_, OAuthError>((client, token))
    }
    .await;
    match result {
        Ok((client, token)) => {
            let ctx = ctx
                .keys_for(state, Some(&token))
                .await
                .map_err(IntoResponse::into_response)?;
            Ok((ctx, client, token))
        }
        Err(e) => Err(oauth_response(&e, &ctx.realm.name, false)),
    }
}

pub async fn introspect(
    State(state): State<AppState>,
    Path(realm): Path<String>,
    headers: HeaderMap,
    form: Result<Form<TokenOnlyForm>, FormRejection>,
) -> Response {
    let (ctx, client, token) = match client_and_token(&state, &realm, &headers, form).await {
        Ok(parts) => parts,
        Err(res) => return res,
    };
    match introspect::introspect(&*state.store, ctx.signer(), &client, &token, state.now()).await {
        Ok(body) => no_store_json(body),
        Err(e) => oauth_response(&e, &ctx.realm.name, false),
    }
}

pub async fn revoke(
    State(state): State<AppState>,
    Path(realm): Path<String>,
    headers: HeaderMap,
    form: Result<Form<TokenOnlyForm>, FormRejection>,
) -> Response {
    let claimed = basic_credentials(&headers)
        .ok()
        .flatten()
        .map(|(id, _)| id)
        .or_else(|| {
            form.as_ref()
                .ok()
                .and_then(|Form(f)| f.client_id.clone())
                .filter(|id| !id.is_empty())
        });
    let (ctx, client, token) = match client_and_token(&state, &realm, &headers, form).await {
        Ok(parts) => parts,
        Err(mut res) => {
            allow_claimed_client(&state, &realm, &headers, claimed, &mut res).await;
            return res;
        }
    };
    let mut res =
        match introspect::revoke(&*state.store, ctx.signer(), &client, &token, state.now()).await {
            Ok(()) => no_store_json(serde_json::json!({})),
            Err(e) => oauth_response(&e, &ctx.realm.name, false),
        };
    cors::allow_for_client(&mut res, cors::origin(&headers), Some(&client));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded() {
        let mut h = HeaderMap::new();
        let v = STANDARD.encode("my%20client:p%3Ass+word");
        h.insert(header::AUTHORIZATION, format!("Basic {v}").parse().unwrap());
        assert_eq!(
            basic_credentials(&h).unwrap(),
            Some(("my client".into(), "p:ss word".into()))
        );
        h.insert(header::AUTHORIZATION, "Basic !!!".parse().unwrap());
        assert!(basic_credentials(&h).is_err());
    }
}
