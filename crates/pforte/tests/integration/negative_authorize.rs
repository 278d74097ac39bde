//! Attacks on the authorization endpoint: redirect URI matching, PKCE at the front door,
//! prompt=none, response types, oversized and malformed parameters. Also the helpers the
//! other `negative_*` files share (the attack realm, token-endpoint calls, page checks).

use pforte_core::Store;
use pforte_core::oauth::urlencode;
use pforte_testkit::{
    Browser, Callback, EXAMPLE_REALM, TestServer, TestServerOptions, callback, http_client, pkce,
};
use reqwest::header::{CONTENT_TYPE, LOCATION, SET_COOKIE};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use crate::code_flow::REDIRECT;

// ---------------------------------------------------------------------------------------
// Shared by the negative tests
// ---------------------------------------------------------------------------------------

/// A native app's loopback registration (RFC 8252 §7.3): no port.
pub const NATIVE_REDIRECT: &str = "http://127.0.0.1/cb";
/// `conf-app`: confidential, standard flow, no service account.
pub const CONF_SECRET: &str = "conf-app-secret-for-tests";
pub const EXCHANGE_CLIENT: &str = "token-exchange-client";
pub const EXCHANGE_SECRET: &str = "dev-exchange-secret-change-me";

/// The example realm (`demo`, demo-app, token-exchange-client, alice) plus:
/// `other-app` (public, same redirect URI as demo-app), `native-app` (public,
/// `http://127.0.0.1/cb`), `conf-app` (confidential, standard flow, secret, the demo
/// redirect URI and `http://127.0.0.1/cb`, no service account), `restricted-app` (public,
/// default scopes `profile` only) and the user bob/bob. `patch` overrides top-level fields.
pub fn attack_realm(patch: Value) -> String {
    let mut realm: Value = serde_json::from_str(EXAMPLE_REALM).unwrap();
    let clients = realm["clients"].as_array_mut().unwrap();
    clients.push(json!({
        "clientId": "other-app",
        "publicClient": true,
        "standardFlowEnabled": true,
        "redirectUris": [REDIRECT],
        "attributes": { "pkce.code.challenge.method": "S256" }
    }));
    clients.push(json!({
        "clientId": "native-app",
        "publicClient": true,
        "standardFlowEnabled": true,
        "redirectUris": [NATIVE_REDIRECT]
    }));
    clients.push(json!({
        "clientId": "conf-app",
        "publicClient": false,
        "secret": CONF_SECRET,
        "standardFlowEnabled": true,
        "serviceAccountsEnabled": false,
        "redirectUris": [REDIRECT, NATIVE_REDIRECT]
    }));
    clients.push(json!({
        "clientId": "restricted-app",
        "publicClient": true,
        "standardFlowEnabled": true,
        "redirectUris": [REDIRECT],
        "defaultClientScopes": ["profile"]
    }));
    realm["users"].as_array_mut().unwrap().push(json!({
        "username": "bob",
        "email": "bob@example.org",
        "enabled": true,
        "credentials": [{ "type": "password", "value": "bob", "temporary": false }]
    }));
    for (k, v) in patch.as_object().unwrap() {
        realm[k] = v.clone();
    }
    serde_json::to_string(&realm).unwrap()
}

pub async fn attack_server() -> TestServer {
    attack_server_with(json!({})).await
}

pub async fn attack_server_with(patch: Value) -> TestServer {
    TestServer::start_with(TestServerOptions {
        realms: vec![attack_realm(patch)],
        ..Default::default()
    })
    .await
}

/// Enables or disables alice, as an import of the realm file would.
pub async fn set_alice_enabled(server: &TestServer, enabled: bool) {
    change_alice(server, |alice| alice.enabled = enabled).await;
}

/// Changes alice's stored record, as an import of the realm file would.
pub async fn change_alice(server: &TestServer, change: impl FnOnce(&mut pforte_core::model::User)) {
    let mut alice = server
        .store
        .find_user_by_username("demo", "alice")
        .await
        .unwrap()
        .unwrap();
    change(&mut alice);
    server
        .store
        .apply_import(&pforte_core::store::RealmImport {
            users: vec![alice],
            ..Default::default()
        })
        .await
        .unwrap();
}

/// A server with the attack realm twice: as `demo` and as `other` (same clients, same users,
/// keys of its own).
pub async fn two_realm_server() -> TestServer {
    TestServer::start_with(TestServerOptions {
        realms: vec![
            attack_realm(json!({})),
            attack_realm(json!({"realm": "other"})),
        ],
        ..Default::default()
    })
    .await
}

/// Logs alice in at realm `other` for demo-app and redeems the code there: the tokens.
pub async fn tokens_of_realm_other(server: &TestServer) -> Value {
    let mut browser = Browser::new();
    let (verifier, challenge) = pkce();
    let form = browser
        .open_login(
            &crate::code_flow::auth_url(server, &challenge, "")
                .replace("/realms/demo/", "/realms/other/"),
        )
        .await;
    let res = browser
        .submit_login(&server.base_url, &form, "alice", "alice")
        .await;
    let cb = callback(&res);
    let res = post_form(
        &server.url("/realms/other/protocol/openid-connect/token"),
        &[
            ("grant_type", "authorization_code"),
            ("code", cb.get("code").unwrap()),
            ("redirect_uri", REDIRECT),
            ("client_id", "demo-app"),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    let (status, body) = status_json(res).await;
    assert_eq!(status, 200, "{body}");
    body
}

pub fn issuer(server: &TestServer) -> String {
    server.url("/realms/demo")
}

/// An authorization request of `client_id` for `redirect_uri` with `scope=openid` and
/// `state=st4te`; `extra` is appended as is (`&code_challenge=…`).
pub fn authorize_url(
    server: &TestServer,
    client_id: &str,
    redirect_uri: &str,
    extra: &str,
) -> String {
    server.url(&format!(
        "/realms/demo/protocol/openid-connect/auth?client_id={}&response_type=code&scope=openid&redirect_uri={}&state=st4te{extra}",
        urlencode(client_id),
        urlencode(redirect_uri),
    ))
}

pub fn s256(challenge: &str) -> String {
    format!("&code_challenge={challenge}&code_challenge_method=S256")
}

/// Logs alice in for `client_id` and returns the redirect back to the client.
pub async fn login_for(
    server: &TestServer,
    browser: &mut Browser,
    client_id: &str,
    redirect_uri: &str,
    extra: &str,
) -> Callback {
    let form = browser
        .open_login(&authorize_url(server, client_id, redirect_uri, extra))
        .await;
    let res = browser
        .submit_login(&server.base_url, &form, "alice", "alice")
        .await;
    let cb = callback(&res);
    assert!(cb.location.starts_with(redirect_uri), "{}", cb.location);
    cb
}

pub fn token_url(server: &TestServer) -> String {
    server.url("/realms/demo/protocol/openid-connect/token")
}

pub async fn post_form(url: &str, form: &[(&str, &str)]) -> Response {
    http_client().post(url).form(form).send().await.unwrap()
}

pub async fn post_form_basic(url: &str, id: &str, secret: &str, form: &[(&str, &str)]) -> Response {
    http_client()
        .post(url)
        .basic_auth(id, Some(secret))
        .form(form)
        .send()
        .await
        .unwrap()
}

/// Status and JSON body of an API answer.
pub async fn status_json(res: Response) -> (StatusCode, Value) {
    let status = res.status();
    let text = res.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, body)
}

/// Asserts an OAuth error answer at a back-channel endpoint.
pub async fn assert_oauth_error(res: Response, status: u16, error: &str) -> Value {
    let (s, body) = status_json(res).await;
    assert_eq!(s, status, "{body}");
    assert_eq!(body["error"], error, "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "an error needs a description: {body}"
    );
    body
}

/// Redeems a code for demo-app (public) and returns the token response.
pub async fn redeem_ok(server: &TestServer, code: &str, verifier: &str) -> Value {
    let res = crate::code_flow::redeem(server, code, verifier).await;
    let (status, body) = status_json(res).await;
    assert_eq!(status, 200, "{body}");
    body
}

pub async fn refresh(
    server: &TestServer,
    client_id: &str,
    token: &str,
    scope: Option<&str>,
) -> Response {
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", token),
        ("client_id", client_id),
    ];
    if let Some(s) = scope {
        form.push(("scope", s));
    }
    post_form(&token_url(server), &form).await
}

/// Introspects with token-exchange-client's credentials.
pub async fn introspect(server: &TestServer, token: &str) -> Value {
    let res = post_form_basic(
        &server.url("/realms/demo/protocol/openid-connect/token/introspect"),
        EXCHANGE_CLIENT,
        EXCHANGE_SECRET,
        &[("token", token)],
    )
    .await;
    let (status, body) = status_json(res).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// An HTML error page: the status, no redirect anywhere, pforte's error message element.
pub async fn assert_error_page(res: Response, status: u16) -> String {
    assert_eq!(res.status(), status);
    assert!(
        res.headers().get(LOCATION).is_none(),
        "an error page must never redirect: {:?}",
        res.headers().get(LOCATION)
    );
    let ct = res.headers()[CONTENT_TYPE].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/html"), "{ct}");
    let body = res.text().await.unwrap();
    assert!(body.contains("id=\"kc-error-message\""), "{body}");
    body
}

/// The `Set-Cookie` headers of a response.
pub fn set_cookies(res: &Response) -> Vec<String> {
    res.headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// Asserts an error redirect to the client: the OAuth error, `state`, `iss`, no code.
pub fn assert_error_redirect(
    server: &TestServer,
    res: &Response,
    redirect_uri: &str,
    error: &str,
) -> Callback {
    let cb = callback(res);
    let (base, _) = cb.location.split_once('?').unwrap();
    assert_eq!(base, redirect_uri, "{}", cb.location);
    assert_eq!(cb.get("error"), Some(error), "{}", cb.location);
    assert!(cb.get("error_description").is_some_and(|d| !d.is_empty()));
    assert_eq!(cb.get("iss"), Some(issuer(server).as_str()));
    assert!(
        cb.get("code").is_none(),
        "an error must not carry a code: {}",
        cb.location
    );
    cb
}

// ---------------------------------------------------------------------------------------
// Redirect URI matching
// ---------------------------------------------------------------------------------------

async fn get(url: &str) -> Response {
    http_client().get(url).send().await.unwrap()
}

#[tokio::test]
async fn unregistered_redirect_uri_gets_an_error_page_never_a_redirect() {
    let server = attack_server().await;
    let (_, challenge) = pkce();
    // A control: the registered URI gets the login page.
    let ok = get(&authorize_url(
        &server,
        "demo-app",
        REDIRECT,
        &s256(&challenge),
    ))
    .await;
    assert_eq!(ok.status(), 200);
    for evil in [
        "http://evil.example/callback",
        "https://127.0.0.1:8082/callback",
        "http://127.0.0.1:8082/",
    ] {
        let res = get(&authorize_url(&server, "demo-app", evil, &s256(&challenge))).await;
        let body = assert_error_page(res, 400).await;
        assert!(body.contains("redirect_uri"), "{body}");
        assert!(
            !body.contains("evil.example"),
            "the page must not link to the URI: {body}"
        );
    }
}

#[tokio::test]
async fn unknown_client_id_gets_an_error_page() {
    let server = attack_server().await;
    let (_, challenge) = pkce();
    let res = get(&authorize_url(
        &server,
        "no-such-client",
        REDIRECT,
        &s256(&challenge),
    ))
    .await;
    assert_error_page(res, 400).await;
    // A client without the standard flow has no redirect URIs either: still a page.
    let res = get(&authorize_url(
        &server,
        EXCHANGE_CLIENT,
        REDIRECT,
        &s256(&challenge),
    ))
    .await;
    assert_error_page(res, 400).await;
    // No client_id at all.
    let res = get(&server.url(&format!(
        "/realms/demo/protocol/openid-connect/auth?response_type=code&scope=openid&redirect_uri={}",
        urlencode(REDIRECT)
    )))
    .await;
    assert_error_page(res, 400).await;
}

#[tokio::test]
async fn client_id_is_html_escaped_on_the_error_page() {
    let server = attack_server().await;
    let res = get(&authorize_url(
        &server,
        "<script>alert(1)</script>",
        REDIRECT,
        "",
    ))
    .await;
    let body = assert_error_page(res, 400).await;
    assert!(!body.contains("<script>"), "{body}");
    assert!(
        body.contains("&lt;script&gt;") || body.contains("&#60;script&#62;"),
        "{body}"
    );
}

#[tokio::test]
async fn missing_redirect_uri_gets_an_error_page() {
    let server = attack_server().await;
    let (_, challenge) = pkce();
    let res = get(&server.url(&format!(
        "/realms/demo/protocol/openid-connect/auth?client_id=demo-app&response_type=code&scope=openid&state=st4te{}",
        s256(&challenge)
    )))
    .await;
    assert_error_page(res, 400).await;
    // Empty counts as missing.
    let res = get(&authorize_url(&server, "demo-app", "", &s256(&challenge))).await;
    assert_error_page(res, 400).await;
}

#[tokio::test]
async fn redirect_uri_sharing_only_a_prefix_is_refused() {
    let server = attack_server().await;
    let (_, challenge) = pkce();
    for client in ["demo-app", "conf-app"] {
        for uri in [
            format!("{REDIRECT}x"),
            format!("{REDIRECT}/"),
            format!("{REDIRECT}/evil"),
            format!("{REDIRECT}/../evil"),
            format!("{REDIRECT}.evil.example"),
            "http://127.0.0.1:8082/call".to_owned(),
            "http://127.0.0.1:8082@evil.example/callback".to_owned(),
            "http://127.0.0.1:8082/CALLBACK".to_owned(),
        ] {
            let res = get(&authorize_url(&server, client, &uri, &s256(&challenge))).await;
            assert_eq!(res.status(), 400, "{client} {uri}");
            assert_error_page(res, 400).await;
        }
    }
}

#[tokio::test]
async fn redirect_uri_with_extra_query_or_fragment_is_refused() {
    let server = attack_server().await;
    let (_, challenge) = pkce();
    for client in ["demo-app", "conf-app", "native-app"] {
        let registered = if client == "native-app" {
            NATIVE_REDIRECT
        } else {
            REDIRECT
        };
        for uri in [
            format!("{registered}?next=http://evil.example/"),
            format!("{registered}?"),
            format!("{registered}#frag"),
            format!("{registered}#"),
        ] {
            let res = get(&authorize_url(&server, client, &uri, &s256(&challenge))).await;
            assert_eq!(res.status(), 400, "{client} {uri}");
            assert_error_page(res, 400).await;
        }
    }
}

#[tokio::test]
async fn loopback_port_may_vary_for_a_public_native_client() {
    let server = attack_server().await;
    let mut browser = Browser::new();
    let (verifier, challenge) = pkce();
    let uri = "http://127.0.0.1:53117/cb";
    let cb = login_for(&server, &mut browser, "native-app", uri, &s256(&challenge)).await;
    assert!(
        cb.location.starts_with("http://127.0.0.1:53117/cb?"),
        "{}",
        cb.location
    );
    // The code is bound to the URI with the port the app used.
    let res = post_form(
        &token_url(&server),
        &[
            ("grant_type", "authorization_code"),
            ("code", cb.get("code").unwrap()),
            ("redirect_uri", uri),
            ("client_id", "native-app"),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(res.status(), 200);
    // Only the port may vary: not the host, the path or the scheme.
    for bad in [
        "http://127.0.0.1:53117/cbx",
        "http://127.0.0.1:53117/",
        "http://localhost:53117/cb",
        "http://127.0.0.2:53117/cb",
        "https://127.0.0.1:53117/cb",
        "http://127.0.0.1:53117x/cb",
    ] {
        let res = get(&authorize_url(
            &server,
            "native-app",
            bad,
            &s256(&challenge),
        ))
        .await;
        assert_eq!(res.status(), 400, "{bad}");
        assert_error_page(res, 400).await;
    }
}

#[tokio::test]
async fn loopback_port_may_not_vary_for_a_confidential_client() {
    let server = attack_server().await;
    let ok = get(&authorize_url(&server, "conf-app", NATIVE_REDIRECT, "")).await;
    assert_eq!(ok.status(), 200, "the exact registration is accepted");
    let res = get(&authorize_url(
        &server,
        "conf-app",
        "http://127.0.0.1:53117/cb",
        "",
    ))
    .await;
    assert_error_page(res, 400).await;
    let res = get(&authorize_url(
        &server,
        "conf-app",
        "http://127.0.0.1:9999/callback",
        "",
    ))
    .await;
    assert_error_page(res, 400).await;
}

// ---------------------------------------------------------------------------------------
// PKCE, prompt, response types
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn plain_code_challenge_method_is_refused_at_the_redirect_uri() {
    let server = attack_server().await;
    let mut browser = Browser::new();
    // Logged in already: the refusal must not depend on the login page being shown.
    let (_, challenge) = pkce();
    login_for(
        &server,
        &mut browser,
        "demo-app",
        REDIRECT,
        &s256(&challenge),
    )
    .await;
    let (verifier, _) = pkce();
    for client in ["demo-app", "conf-app"] {
        let res = browser
            .get(&authorize_url(
                &server,
                client,
                REDIRECT,
                &format!("&code_challenge={verifier}&code_challenge_method=plain"),
            ))
            .await;
        let cb = assert_error_redirect(&server, &res, REDIRECT, "invalid_request");
        assert_eq!(cb.get("state"), Some("st4te"));
    }
}

#[tokio::test]
async fn public_client_without_code_challenge_is_refused_at_the_redirect_uri() {
    let server = attack_server().await;
    let mut browser = Browser::new();
    let (_, challenge) = pkce();
    login_for(
        &server,
        &mut browser,
        "demo-app",
        REDIRECT,
        &s256(&challenge),
    )
    .await;
    for client in ["demo-app", "restricted-app"] {
        let res = browser
            .get(&authorize_url(&server, client, REDIRECT, ""))
            .await;
        let cb = assert_error_redirect(&server, &res, REDIRECT, "invalid_request");
        assert_eq!(cb.get("state"), Some("st4te"));
    }
    let res = browser
        .get(&authorize_url(
            &server,
            "native-app",
            "http://127.0.0.1:40000/cb",
            "",
        ))
        .await;
    assert_error_redirect(
        &server,
        &res,
        "http://127.0.0.1:40000/cb",
        "invalid_request",
    );
    // A method without a challenge is no better.
    let res = browser
        .get(&authorize_url(
            &server,
            "demo-app",
            REDIRECT,
            "&code_challenge_method=S256",
        ))
        .await;
    assert_error_redirect(&server, &res, REDIRECT, "invalid_request");
}

/// demo-app's authorization request (PKCE S256) with `extra` appended, without a session.
async fn demo_authorize(server: &TestServer, extra: &str) -> Response {
    let (_, challenge) = pkce();
    let pkce = s256(&challenge);
    get(&authorize_url(
        server,
        "demo-app",
        REDIRECT,
        &format!("{pkce}{extra}"),
    ))
    .await
}

#[tokio::test]
async fn prompt_none_without_a_session_is_login_required() {
    let server = attack_server().await;
    let res = demo_authorize(&server, "&prompt=none").await;
    let cb = assert_error_redirect(&server, &res, REDIRECT, "login_required");
    assert_eq!(cb.get("state"), Some("st4te"));
}

/// The parameters of a redirect's fragment (`#…`); none when there is no fragment.
fn fragment_params(location: &str) -> Option<std::collections::HashMap<String, String>> {
    let (_, fragment) = location.split_once('#')?;
    let parsed = reqwest::Url::parse(&format!("http://x/?{fragment}")).unwrap();
    Some(parsed.query_pairs().into_owned().collect())
}

#[tokio::test]
async fn response_type_token_is_unsupported_at_the_redirect_uri() {
    let server = attack_server().await;
    let (_, challenge) = pkce();
    for rt in ["token", "id_token", "code%20token", "code%20id_token"] {
        let url = authorize_url(&server, "demo-app", REDIRECT, &s256(&challenge))
            .replace("response_type=code", &format!("response_type={rt}"));
        let res = get(&url).await;
        assert_eq!(res.status(), 302, "{rt}");
        let location = res.headers()["location"].to_str().unwrap().to_owned();
        // Response types that return tokens answer in the fragment (OAuth 2.0 Multiple
        // Response Types §2.1; OIDC Core §3.2.2.6): a client asking for them reads it there.
        assert!(
            location.starts_with(&format!("{REDIRECT}#")),
            "{rt}: {location}"
        );
        let params = fragment_params(&location).unwrap();
        assert_eq!(params["error"], "unsupported_response_type", "{location}");
        assert!(!params["error_description"].is_empty());
        assert_eq!(params["state"], "st4te");
        assert_eq!(params["iss"], issuer(&server));
        for leaked in ["access_token", "id_token", "code"] {
            assert!(!params.contains_key(leaked), "{location}");
        }
        // Asked for explicitly, the query.
        let res = get(&format!("{url}&response_mode=query")).await;
        let cb = assert_error_redirect(&server, &res, REDIRECT, "unsupported_response_type");
        assert!(!cb.location.contains('#'), "{}", cb.location);
    }
}

#[tokio::test]
async fn response_mode_fragment_carries_the_response_after_the_hash() {
    let server = attack_server().await;
    let res = demo_authorize(&server, "&prompt=none&response_mode=fragment").await;
    assert_eq!(res.status(), 302);
    let location = res.headers()["location"].to_str().unwrap();
    assert!(location.starts_with(&format!("{REDIRECT}#")), "{location}");
    let params = fragment_params(location).unwrap();
    assert_eq!(params["error"], "login_required");
    assert_eq!(params["state"], "st4te");
    // An unknown mode is refused (at the query: the request asked for no token).
    let res = demo_authorize(&server, "&response_mode=jwt").await;
    assert_error_redirect(&server, &res, REDIRECT, "invalid_request");
    // An empty state is no state: the error redirect carries none.
    let (_, challenge) = pkce();
    let res = get(&authorize_url(
        &server,
        "demo-app",
        REDIRECT,
        &format!("{}&response_mode=jwt", s256(&challenge)),
    )
    .replace("state=st4te", "state="))
    .await;
    let location = res.headers()["location"].to_str().unwrap();
    assert!(!location.contains("state="), "{location}");
}

// ---------------------------------------------------------------------------------------
// Oversized and malformed parameters
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn oversized_state_is_refused_without_a_5xx() {
    let server = attack_server().await;
    let (_, challenge) = pkce();
    let state = "s".repeat(10 * 1024);
    // The redirect URI is trusted, so the error goes to the client (RFC 6749 §4.1.2.1),
    // without echoing 10 KB back.
    let url = authorize_url(&server, "demo-app", REDIRECT, &s256(&challenge))
        .replace("state=st4te", &format!("state={state}"));
    let res = get(&url).await;
    let cb = assert_error_redirect(&server, &res, REDIRECT, "invalid_request");
    assert!(cb.get("state").is_none());
    assert!(cb.location.len() < 2048, "{}", cb.location.len());
    // With an untrusted redirect URI it is an error page.
    let res = get(&url.replace(&urlencode(REDIRECT), &urlencode("http://evil.example/"))).await;
    assert_error_page(res, 400).await;
    // A 10 KB nonce, too.
    let res = get(&format!(
        "{}&nonce={state}",
        authorize_url(&server, "demo-app", REDIRECT, &s256(&challenge))
    ))
    .await;
    assert_error_redirect(&server, &res, REDIRECT, "invalid_request");
    // A 60 KB query string (near what an URI can hold): refused, never a 5xx.
    let huge = "a".repeat(60 * 1024);
    let res = get(&format!(
        "{}&login_hint={huge}",
        authorize_url(&server, "demo-app", REDIRECT, &s256(&challenge))
    ))
    .await;
    assert!(
        res.status().is_client_error() || res.status() == StatusCode::FOUND,
        "{}",
        res.status()
    );
    if res.status() == StatusCode::FOUND {
        assert_error_redirect(&server, &res, REDIRECT, "invalid_request");
    }
}

#[tokio::test]
async fn malformed_authorization_requests_are_4xx_pages() {
    let server = attack_server().await;
    let (_, challenge) = pkce();
    let good = authorize_url(&server, "demo-app", REDIRECT, &s256(&challenge));
    // A duplicate parameter is ambiguous: which redirect URI did the client mean?
    let res = get(&format!(
        "{good}&redirect_uri={}",
        urlencode("http://evil.example/")
    ))
    .await;
    assert_error_page(res, 400).await;
    let res = get(&format!("{good}&client_id=other-app")).await;
    assert_error_page(res, 400).await;
    // Broken percent-encoding in the client id or redirect URI.
    let res = get(&good.replace("client_id=demo-app", "client_id=demo%ZZapp")).await;
    assert_error_page(res, 400).await;
    let res = get(&good.replace(
        &urlencode(REDIRECT),
        "http%3A%2F%2F127.0.0.1%3A8082%2Fcallback%",
    ))
    .await;
    assert_error_page(res, 400).await;
    let res = get(&good.replace("client_id=demo-app", "client_id=%FF%FE")).await;
    assert_error_page(res, 400).await;
    // Broken encoding in a value after the redirect URI is trusted: no 5xx either way.
    for state in ["%ZZ", "%FF%FE", "%", "%00"] {
        let res = get(&good.replace("state=st4te", &format!("state={state}"))).await;
        assert!(
            res.status() == StatusCode::OK || res.status().is_client_error(),
            "state={state}: {}",
            res.status()
        );
    }
    // The same over POST, with a body that is not a form.
    let res = http_client()
        .post(server.url("/realms/demo/protocol/openid-connect/auth"))
        .header(CONTENT_TYPE, "application/json")
        .body(r#"{"client_id":"demo-app"}"#)
        .send()
        .await
        .unwrap();
    assert_error_page(res, 400).await;
}
