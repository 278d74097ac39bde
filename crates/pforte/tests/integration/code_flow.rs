//! The authorization code flow end to end over raw HTTP.

use pforte_testkit::{Browser, TestServer, callback, http_client, pkce};
use serde_json::Value;

pub const REDIRECT: &str = "http://127.0.0.1:8082/callback";

pub fn auth_url(server: &TestServer, challenge: &str, extra: &str) -> String {
    server.url(&format!(
        "/realms/demo/protocol/openid-connect/auth?client_id=demo-app&response_type=code&scope=openid%20email%20profile&redirect_uri={}&state=st4te&nonce=n0nce&code_challenge={challenge}&code_challenge_method=S256{extra}",
        pforte_core::oauth::urlencode(REDIRECT)
    ))
}

/// Logs alice in through the browser and returns the code and its verifier.
pub async fn login(server: &TestServer, browser: &mut Browser) -> (String, String) {
    let (verifier, challenge) = pkce();
    let form = browser.open_login(&auth_url(server, &challenge, "")).await;
    let res = browser
        .submit_login(&server.base_url, &form, "alice", "alice")
        .await;
    let cb = callback(&res);
    assert!(cb.location.starts_with(REDIRECT), "{}", cb.location);
    (cb.get("code").unwrap().to_owned(), verifier)
}

pub async fn redeem(server: &TestServer, code: &str, verifier: &str) -> reqwest::Response {
    redeem_request(server, code, verifier).send().await.unwrap()
}

/// The code redemption of `demo-app`, ready to send (callers may add headers).
pub fn redeem_request(server: &TestServer, code: &str, verifier: &str) -> reqwest::RequestBuilder {
    http_client()
        .post(server.url("/realms/demo/protocol/openid-connect/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("client_id", "demo-app"),
            ("code_verifier", verifier),
        ])
}

#[tokio::test]
async fn code_flow_over_raw_http() {
    let server = TestServer::start().await;
    let mut browser = Browser::new();
    let (verifier, challenge) = pkce();
    let form = browser.open_login(&auth_url(&server, &challenge, "")).await;
    assert!(form.html.contains("id=\"username\""));
    assert!(form.html.contains("id=\"kc-login\""));
    let res = browser
        .submit_login(&server.base_url, &form, "alice", "alice")
        .await;
    let cb = callback(&res);
    assert_eq!(cb.get("state"), Some("st4te"));
    assert_eq!(cb.get("iss"), Some(server.url("/realms/demo").as_str()));
    let code = cb.get("code").unwrap().to_owned();

    let res = redeem(&server, &code, &verifier).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let tokens: Value = res.json().await.unwrap();
    assert_eq!(tokens["token_type"], "Bearer");
    assert!(tokens["id_token"].is_string());
    assert!(tokens["refresh_token"].is_string());
    // Keycloak's extra fields, which Keycloak client libraries may read.
    assert_eq!(tokens["not-before-policy"], 0, "{tokens}");
    assert!(
        tokens["refresh_expires_in"].as_i64().unwrap() > 0,
        "{tokens}"
    );
    assert!(tokens["session_state"].is_string(), "{tokens}");

    let info: Value = http_client()
        .get(server.url("/realms/demo/protocol/openid-connect/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["email"], "alice@example.org");
    assert_eq!(info["preferred_username"], "alice");

    // SSO: a second authorization skips the login page.
    let (_, challenge) = pkce();
    let res = browser.get(&auth_url(&server, &challenge, "")).await;
    let cb = callback(&res);
    assert!(cb.get("code").is_some());
}

pub fn jwt_claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// `response_mode=fragment`: the code, `state` and `iss` after the `#`, and the code redeems.
#[tokio::test]
async fn code_in_the_fragment_when_asked() {
    let server = TestServer::start().await;
    let mut browser = Browser::new();
    let (verifier, challenge) = pkce();
    let form = browser
        .open_login(&auth_url(&server, &challenge, "&response_mode=fragment"))
        .await;
    let res = browser
        .submit_login(&server.base_url, &form, "alice", "alice")
        .await;
    assert_eq!(res.status(), 302);
    let location = res.headers()["location"].to_str().unwrap();
    let (base, fragment) = location.split_once('#').unwrap();
    assert_eq!(base, REDIRECT, "{location}");
    let params: std::collections::HashMap<String, String> =
        reqwest::Url::parse(&format!("http://x/?{fragment}"))
            .unwrap()
            .query_pairs()
            .into_owned()
            .collect();
    assert_eq!(params["state"], "st4te");
    assert_eq!(params["iss"], server.url("/realms/demo"));
    let res = redeem(&server, &params["code"], &verifier).await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn attribute_mapper_puts_the_kvnr_into_tokens_and_userinfo() {
    let server = TestServer::start().await;
    let mut browser = Browser::new();
    let (code, verifier) = login(&server, &mut browser).await;
    let tokens: Value = redeem(&server, &code, &verifier)
        .await
        .json()
        .await
        .unwrap();
    let at = jwt_claims(tokens["access_token"].as_str().unwrap());
    let id = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(at["kvnr"], "A123456780");
    assert_eq!(id["kvnr"], "A123456780");
    assert_eq!(at["realm_access"]["roles"][0], "patient");
    // The default scopes `roles`, `web-origins`, `acr` and `basic` are granted (realm_access
    // above) but, as in Keycloak, not listed in the scope a client is shown.
    assert_eq!(tokens["scope"], "openid profile email", "{tokens}");
    assert_eq!(at["scope"], tokens["scope"]);
    // Refreshing with the scope it was shown keeps what it was not shown.
    let refreshed: Value = crate::negative_authorize::refresh(
        &server,
        "demo-app",
        tokens["refresh_token"].as_str().unwrap(),
        tokens["scope"].as_str(),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(refreshed["scope"], "openid profile email", "{refreshed}");
    let at2 = jwt_claims(refreshed["access_token"].as_str().unwrap());
    assert_eq!(at2["realm_access"]["roles"][0], "patient", "{at2}");
    assert_eq!(id["nonce"], "n0nce");
    assert!(id["at_hash"].is_string() && id["sid"].is_string() && id["auth_time"].is_i64());
    let info: Value = http_client()
        .get(server.url("/realms/demo/protocol/openid-connect/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["kvnr"], "A123456780");
}

#[tokio::test]
async fn client_may_override_the_access_token_lifespan() {
    let realm = pforte_testkit::EXAMPLE_REALM.replace(
        "\"pkce.code.challenge.method\": \"S256\",",
        "\"pkce.code.challenge.method\": \"S256\", \"access.token.lifespan\": \"42\",",
    );
    assert_ne!(realm, pforte_testkit::EXAMPLE_REALM);
    let server = TestServer::start_with(pforte_testkit::TestServerOptions {
        realms: vec![realm],
        ..Default::default()
    })
    .await;
    let mut browser = Browser::new();
    let (code, verifier) = login(&server, &mut browser).await;
    let tokens: Value = redeem(&server, &code, &verifier)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(tokens["expires_in"], 42);
    let at = jwt_claims(tokens["access_token"].as_str().unwrap());
    assert_eq!(
        at["exp"].as_i64().unwrap() - at["iat"].as_i64().unwrap(),
        42
    );
}

#[tokio::test]
async fn housekeeping_purges_what_has_expired() {
    let server = TestServer::start().await;
    let mut browser = Browser::new();
    let (code, verifier) = login(&server, &mut browser).await;
    let tokens: Value = redeem(&server, &code, &verifier)
        .await
        .json()
        .await
        .unwrap();
    let now = server.state.now();
    // Nothing has expired yet: nothing of this login goes.
    pforte_core::housekeeping::purge(&*server.store, now)
        .await
        .unwrap();
    let refresh = |rt: String| {
        let url = server.url("/realms/demo/protocol/openid-connect/token");
        async move {
            http_client()
                .post(url)
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", rt.as_str()),
                    ("client_id", "demo-app"),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let res = refresh(tokens["refresh_token"].as_str().unwrap().to_owned()).await;
    assert_eq!(res.status(), 200);
    let tokens: Value = res.json().await.unwrap();
    // Two days on, the session, the refresh token and its grant are gone.
    let removed = pforte_core::housekeeping::purge(&*server.store, now + 2 * 86_400)
        .await
        .unwrap();
    assert!(removed >= 3, "removed {removed}");
    let res = refresh(tokens["refresh_token"].as_str().unwrap().to_owned()).await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn graceful_shutdown_lets_an_in_flight_request_finish() {
    let server = TestServer::start_with(pforte_testkit::TestServerOptions {
        login_failure_delay: std::time::Duration::from_millis(800),
        ..Default::default()
    })
    .await;
    let mut browser = Browser::new();
    let (_, challenge) = pkce();
    let form = browser.open_login(&auth_url(&server, &challenge, "")).await;
    let base = server.base_url.clone();
    // A failed login is answered only after the failure delay: in flight while we stop.
    let in_flight =
        tokio::spawn(async move { browser.submit_login(&base, &form, "alice", "wrong").await });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // A non-graceful stop would drop the connection: the request would fail, not answer.
    server.stop().await;
    let res = in_flight.await.unwrap();
    assert_eq!(res.status(), 200, "the in-flight request was cut off");
    assert!(res.text().await.unwrap().contains("input-error"));
}
