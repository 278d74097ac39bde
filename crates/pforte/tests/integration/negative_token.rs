//! Attacks on the token, introspection, revocation and userinfo endpoints: code reuse and
//! binding, PKCE, refresh-token replay and scope widening, client authentication, grants a
//! client may not use, malformed requests.

use std::time::Duration;

use pforte_core::Store;
use pforte_testkit::{Browser, TestServer, TestServerOptions, http_client, pkce};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::code_flow::{REDIRECT, login, redeem};
use crate::negative_authorize::{
    CONF_SECRET, EXCHANGE_CLIENT, EXCHANGE_SECRET, assert_oauth_error, attack_server, introspect,
    login_for, post_form, post_form_basic, redeem_ok, refresh, s256, status_json, token_url,
};

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

/// Logs alice in for demo-app and redeems the code: the token response.
async fn demo_tokens(server: &TestServer) -> Value {
    let mut browser = Browser::new();
    let (code, verifier) = login(server, &mut browser).await;
    redeem_ok(server, &code, &verifier).await
}

async fn assert_active(server: &TestServer, token: &str, active: bool) {
    let body = introspect(server, token).await;
    assert_eq!(body["active"], active, "{body}");
}

fn revoke_url(server: &TestServer) -> String {
    server.url("/realms/demo/protocol/openid-connect/revoke")
}

fn introspect_url(server: &TestServer) -> String {
    server.url("/realms/demo/protocol/openid-connect/token/introspect")
}

fn userinfo_url(server: &TestServer) -> String {
    server.url("/realms/demo/protocol/openid-connect/userinfo")
}

// ---------------------------------------------------------------------------------------
// Authorization codes
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn code_reuse_is_refused_and_revokes_what_the_code_issued() {
    let server = attack_server().await;
    let mut browser = Browser::new();
    let (code, verifier) = login(&server, &mut browser).await;
    let first = redeem_ok(&server, &code, &verifier).await;
    let access = s(&first["access_token"]);
    let refresh_token = s(&first["refresh_token"]);
    assert_active(&server, access, true).await;

    let res = redeem(&server, &code, &verifier).await;
    assert_oauth_error(res, 400, "invalid_grant").await;

    assert_active(&server, access, false).await;
    // The refresh token of the grant is dead too.
    let res = refresh(&server, "demo-app", refresh_token, None).await;
    assert_oauth_error(res, 400, "invalid_grant").await;
    let res = http_client()
        .get(userinfo_url(&server))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn code_issued_to_another_client_is_refused() {
    let server = attack_server().await;
    let mut browser = Browser::new();
    let (code, verifier) = login(&server, &mut browser).await;
    // other-app is public and has the same redirect URI registered.
    let res = post_form(
        &token_url(&server),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", "other-app"),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    let body = assert_oauth_error(res, 400, "invalid_grant").await;
    assert!(body.get("access_token").is_none());
}

#[tokio::test]
async fn code_redeemed_with_another_redirect_uri_is_refused() {
    let server = attack_server().await;
    for redirect_uri in [None, Some("http://127.0.0.1:8082/other")] {
        // A fresh code each time: a used one would be refused as reused before its
        // redirect URI is ever compared.
        let mut browser = Browser::new();
        let (code, verifier) = login(&server, &mut browser).await;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("client_id", "demo-app"),
            ("code_verifier", verifier.as_str()),
        ];
        if let Some(r) = redirect_uri {
            form.push(("redirect_uri", r));
        }
        let res = post_form(&token_url(&server), &form).await;
        let body = assert_oauth_error(res, 400, "invalid_grant").await;
        assert!(
            s(&body["error_description"]).contains("redirect_uri"),
            "{redirect_uri:?}: {body}"
        );
        // The refused attempt used the code up (RFC 6749 §4.1.2: at most once).
        form.push(("redirect_uri", REDIRECT));
        form.retain(|(k, v)| *k != "redirect_uri" || *v == REDIRECT);
        let res = post_form(&token_url(&server), &form).await;
        assert_oauth_error(res, 400, "invalid_grant").await;
    }
}

#[tokio::test]
async fn wrong_code_verifier_is_refused() {
    let server = attack_server().await;
    let mut browser = Browser::new();
    let (code, _) = login(&server, &mut browser).await;
    let (other_verifier, _) = pkce();
    let res = redeem(&server, &code, &other_verifier).await;
    assert_oauth_error(res, 400, "invalid_grant").await;
}

#[tokio::test]
async fn code_verifier_extending_the_right_one_is_refused() {
    let server = attack_server().await;
    let mut browser = Browser::new();
    let (code, verifier) = login(&server, &mut browser).await;
    // Each attempt uses the code up, hence one wrong verifier per test.
    let res = redeem(&server, &code, &format!("{verifier}A")).await;
    assert_oauth_error(res, 400, "invalid_grant").await;
}

#[tokio::test]
async fn missing_code_verifier_is_refused() {
    let server = attack_server().await;
    let mut browser = Browser::new();
    let (code, _) = login(&server, &mut browser).await;
    let res = post_form(
        &token_url(&server),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", "demo-app"),
        ],
    )
    .await;
    assert_oauth_error(res, 400, "invalid_grant").await;
}

#[tokio::test]
async fn pkce_downgrade_is_refused() {
    let server = attack_server().await;
    let mut browser = Browser::new();
    // conf-app is confidential and does not require PKCE: its request has no challenge.
    let cb = login_for(&server, &mut browser, "conf-app", REDIRECT, "").await;
    let (verifier, _) = pkce();
    let res = post_form_basic(
        &token_url(&server),
        "conf-app",
        CONF_SECRET,
        &[
            ("grant_type", "authorization_code"),
            ("code", cb.get("code").unwrap()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_oauth_error(res, 400, "invalid_grant").await;
    // The control: the same kind of code without a verifier is fine.
    let res = browser
        .get(&crate::negative_authorize::authorize_url(
            &server, "conf-app", REDIRECT, "",
        ))
        .await;
    let cb = pforte_testkit::callback(&res);
    let res = redeem_as_conf_app(&server, cb.get("code").unwrap()).await;
    assert_eq!(res.status(), 200);
}

/// conf-app (confidential, client_secret_basic) redeems a code it got without PKCE.
async fn redeem_as_conf_app(server: &TestServer, code: &str) -> reqwest::Response {
    post_form_basic(
        &token_url(server),
        "conf-app",
        CONF_SECRET,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await
}

// ---------------------------------------------------------------------------------------
// Refresh tokens
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn refresh_replay_revokes_the_whole_family() {
    let server = attack_server().await;
    let tokens = demo_tokens(&server).await;
    let a = s(&tokens["refresh_token"]).to_owned();
    let res = refresh(&server, "demo-app", &a, None).await;
    let (status, rotated) = status_json(res).await;
    assert_eq!(status, 200, "{rotated}");
    let b = s(&rotated["refresh_token"]).to_owned();
    let b_access = s(&rotated["access_token"]).to_owned();
    assert_ne!(a, b, "refresh tokens rotate");
    assert_active(&server, &b_access, true).await;

    // A comes back: someone holds a copy.
    let res = refresh(&server, "demo-app", &a, None).await;
    assert_oauth_error(res, 400, "invalid_grant").await;
    // Every token of the family is dead now.
    let res = refresh(&server, "demo-app", &b, None).await;
    assert_oauth_error(res, 400, "invalid_grant").await;
    assert_active(&server, &b_access, false).await;
    assert_active(&server, s(&tokens["access_token"]), false).await;
}

/// The same refresh token twice at the same moment is a replay too: at most one answer
/// carries tokens, and the family ends either way.
#[tokio::test]
async fn concurrent_refresh_replay_revokes_the_family() {
    let server = attack_server().await;
    let tokens = demo_tokens(&server).await;
    let a = s(&tokens["refresh_token"]);
    let (x, y) = tokio::join!(
        refresh(&server, "demo-app", a, None),
        refresh(&server, "demo-app", a, None)
    );
    let (sx, bx) = status_json(x).await;
    let (sy, by) = status_json(y).await;
    assert!(sx == 400 || sy == 400, "{bx} {by}");
    for (status, body) in [(sx, bx), (sy, by)] {
        if status == 200 {
            assert_active(&server, s(&body["access_token"]), false).await;
            let res = refresh(&server, "demo-app", s(&body["refresh_token"]), None).await;
            assert_oauth_error(res, 400, "invalid_grant").await;
        } else {
            assert_eq!(body["error"], "invalid_grant", "{body}");
        }
    }
    assert_active(&server, s(&tokens["access_token"]), false).await;
}

#[tokio::test]
async fn refresh_token_of_another_client_is_refused() {
    let server = attack_server().await;
    let tokens = demo_tokens(&server).await;
    let rt = s(&tokens["refresh_token"]);
    let res = refresh(&server, "other-app", rt, None).await;
    assert_oauth_error(res, 400, "invalid_grant").await;
    let res = post_form_basic(
        &token_url(&server),
        "conf-app",
        CONF_SECRET,
        &[("grant_type", "refresh_token"), ("refresh_token", rt)],
    )
    .await;
    assert_oauth_error(res, 400, "invalid_grant").await;
    // The refusal neither rotated nor revoked it (RFC 6749 §6 binds the token to its client;
    // a foreign client presenting it proves nothing about its owner): its own client still
    // refreshes with it.
    let res = refresh(&server, "demo-app", rt, None).await;
    let (status, body) = status_json(res).await;
    assert_eq!(status, 200, "{body}");
}

/// Introspection as conf-app (confidential, so it may introspect).
async fn introspect_as_conf_app(server: &TestServer, token: &str) -> Value {
    let res = post_form_basic(
        &introspect_url(server),
        "conf-app",
        CONF_SECRET,
        &[("token", token), ("token_type_hint", "refresh_token")],
    )
    .await;
    let (status, body) = status_json(res).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// conf-app's tokens for alice after a fresh login (a new SSO session each time).
async fn conf_app_tokens(server: &TestServer) -> Value {
    let mut browser = Browser::new();
    let cb = login_for(server, &mut browser, "conf-app", REDIRECT, "").await;
    let (status, body) =
        status_json(redeem_as_conf_app(server, cb.get("code").unwrap()).await).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Introspection of an access token answers with its whole claim set (roles and mapped
/// claims included, as Keycloak does), plus RFC 7662's `active`, `token_type`, `username`.
#[tokio::test]
async fn introspection_answers_with_the_whole_claim_set() {
    let server = attack_server().await;
    let tokens = conf_app_tokens(&server).await;
    let at = s(&tokens["access_token"]);
    let claims = crate::code_flow::jwt_claims(at);
    let body = introspect_as_conf_app(&server, at).await;
    assert_eq!(body["active"], true, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["username"], claims["preferred_username"], "{body}");
    let claims = claims.as_object().unwrap();
    for (k, v) in claims {
        assert_eq!(&body[k], v, "claim {k} in {body}");
    }
    // More than RFC 7662's own members reach the resource server.
    for k in ["realm_access", "azp", "email", "preferred_username"] {
        assert!(
            claims.contains_key(k),
            "the test token lacks {k}: {claims:?}"
        );
    }
}

/// "active" means usable now (RFC 7662 §2.2): a token whose SSO session has ended (here: idle
/// for longer than the realm allows) or whose user has been disabled is inactive, though
/// its JWT has not expired. Keycloak answers the same way.
#[tokio::test]
async fn tokens_of_an_ended_session_or_a_disabled_user_are_inactive() {
    let server = attack_server().await;
    let now = pforte_server::Clock::now(&pforte_server::SystemClock);

    let idle = conf_app_tokens(&server).await;
    let (at, rt) = (s(&idle["access_token"]), s(&idle["refresh_token"]));
    assert_active(&server, at, true).await;
    assert_eq!(introspect_as_conf_app(&server, rt).await["active"], true);
    let sid = crate::code_flow::jwt_claims(s(&idle["id_token"]))["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    // Last seen longer ago than the realm's idle timeout (30 minutes).
    server.store.touch_session(&sid, now - 1801).await.unwrap();
    assert_active(&server, at, false).await;
    assert_eq!(introspect_as_conf_app(&server, rt).await["active"], false);
    let res = http_client()
        .get(userinfo_url(&server))
        .bearer_auth(at)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    let tokens = conf_app_tokens(&server).await;
    let (at, rt) = (s(&tokens["access_token"]), s(&tokens["refresh_token"]));
    assert_active(&server, at, true).await;
    assert_eq!(introspect_as_conf_app(&server, rt).await["active"], true);
    crate::negative_authorize::set_alice_enabled(&server, false).await;
    assert_active(&server, at, false).await;
    assert_eq!(introspect_as_conf_app(&server, rt).await["active"], false);
}

/// Only the client a refresh token was issued to learns about it at introspection; to
/// anyone else, even an authenticated confidential client, it is inactive.
#[tokio::test]
async fn refresh_token_introspection_is_for_its_own_client() {
    let server = attack_server().await;
    let mut browser = Browser::new();
    let cb = login_for(&server, &mut browser, "conf-app", REDIRECT, "").await;
    let res = redeem_as_conf_app(&server, cb.get("code").unwrap()).await;
    let (status, tokens) = status_json(res).await;
    assert_eq!(status, 200, "{tokens}");
    let a = s(&tokens["refresh_token"]).to_owned();

    let own = introspect_as_conf_app(&server, &a).await;
    assert_eq!(own["active"], true, "{own}");
    assert_eq!(own["token_type"], "Refresh", "{own}");
    assert_eq!(own["client_id"], "conf-app", "{own}");
    let foreign = introspect(&server, &a).await;
    assert_eq!(
        foreign,
        serde_json::json!({"active": false}),
        "another client learns nothing about it"
    );
    // The access token stays introspectable by any confidential client (resource servers).
    assert_active(&server, s(&tokens["access_token"]), true).await;

    // Its own client sees the rotation.
    let res = post_form_basic(
        &token_url(&server),
        "conf-app",
        CONF_SECRET,
        &[("grant_type", "refresh_token"), ("refresh_token", &a)],
    )
    .await;
    let (status, rotated) = status_json(res).await;
    assert_eq!(status, 200, "{rotated}");
    let b = s(&rotated["refresh_token"]);
    assert_eq!(introspect_as_conf_app(&server, b).await["active"], true);
    let old = introspect_as_conf_app(&server, &a).await;
    assert_eq!(old["active"], false, "rotated out: {old}");
}

#[tokio::test]
async fn refresh_cannot_widen_the_scope_but_can_narrow_it() {
    let server = attack_server().await;
    let mut browser = Browser::new();
    let (verifier, challenge) = pkce();
    // restricted-app's only default scope is profile; email is not granted even if asked.
    let url = crate::negative_authorize::authorize_url(
        &server,
        "restricted-app",
        REDIRECT,
        &s256(&challenge),
    )
    .replace("scope=openid", "scope=openid%20profile%20email");
    let form = browser.open_login(&url).await;
    let res = browser
        .submit_login(&server.base_url, &form, "alice", "alice")
        .await;
    let cb = pforte_testkit::callback(&res);
    let res = post_form(
        &token_url(&server),
        &[
            ("grant_type", "authorization_code"),
            ("code", cb.get("code").unwrap()),
            ("redirect_uri", REDIRECT),
            ("client_id", "restricted-app"),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    let (status, tokens) = status_json(res).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["scope"], "openid profile");
    let rt = s(&tokens["refresh_token"]);

    for wider in ["openid profile email", "email", "openid offline_access"] {
        let res = refresh(&server, "restricted-app", rt, Some(wider)).await;
        assert_oauth_error(res, 400, "invalid_scope").await;
    }
    // The refused attempts did not use the token up: narrowing works with it.
    let res = refresh(&server, "restricted-app", rt, Some("openid")).await;
    let (status, narrowed) = status_json(res).await;
    assert_eq!(status, 200, "{narrowed}");
    assert_eq!(narrowed["scope"], "openid");
    let claims = introspect(&server, s(&narrowed["access_token"])).await;
    assert_eq!(claims["scope"], "openid");
    let info: Value = http_client()
        .get(userinfo_url(&server))
        .bearer_auth(s(&narrowed["access_token"]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(info.get("email").is_none(), "{info}");
    assert!(
        info.get("preferred_username").is_none(),
        "profile was narrowed away: {info}"
    );
}

// ---------------------------------------------------------------------------------------
// Client authentication
// ---------------------------------------------------------------------------------------

async fn assert_invalid_client(res: reqwest::Response) {
    assert_eq!(res.status(), 401);
    let challenge = res
        .headers()
        .get(WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned());
    assert!(
        challenge.as_deref().is_some_and(|c| c.starts_with("Basic")),
        "{challenge:?}"
    );
    assert_eq!(res.headers()[CACHE_CONTROL], "no-store");
    let (_, body) = status_json(res).await;
    assert_eq!(body["error"], "invalid_client", "{body}");
}

#[tokio::test]
async fn bad_client_secret_is_401_invalid_client() {
    let server = attack_server().await;
    let cc = [("grant_type", "client_credentials")];
    let res = post_form_basic(&token_url(&server), EXCHANGE_CLIENT, "wrong-secret", &cc).await;
    assert_invalid_client(res).await;
    let res = post_form(
        &token_url(&server),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", EXCHANGE_CLIENT),
            ("client_secret", "wrong-secret"),
        ],
    )
    .await;
    assert_invalid_client(res).await;
    // Another client's secret is as wrong as any other.
    let res = post_form_basic(&token_url(&server), EXCHANGE_CLIENT, CONF_SECRET, &cc).await;
    assert_invalid_client(res).await;
    // Same at introspection and revocation.
    let res = post_form_basic(
        &introspect_url(&server),
        EXCHANGE_CLIENT,
        "wrong",
        &[("token", "x")],
    )
    .await;
    assert_invalid_client(res).await;
    let res = post_form_basic(
        &revoke_url(&server),
        EXCHANGE_CLIENT,
        "wrong",
        &[("token", "x")],
    )
    .await;
    assert_invalid_client(res).await;
    // The control.
    let res = post_form_basic(&token_url(&server), EXCHANGE_CLIENT, EXCHANGE_SECRET, &cc).await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn confidential_client_without_credentials_is_401() {
    let server = attack_server().await;
    let res = post_form(
        &token_url(&server),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", EXCHANGE_CLIENT),
        ],
    )
    .await;
    assert_invalid_client(res).await;
    // conf-app redeeming a code with only its id.
    let mut browser = Browser::new();
    let cb = login_for(&server, &mut browser, "conf-app", REDIRECT, "").await;
    let res = post_form(
        &token_url(&server),
        &[
            ("grant_type", "authorization_code"),
            ("code", cb.get("code").unwrap()),
            ("redirect_uri", REDIRECT),
            ("client_id", "conf-app"),
        ],
    )
    .await;
    assert_invalid_client(res).await;
    // Nothing at all.
    let res = post_form(&token_url(&server), &[("grant_type", "client_credentials")]).await;
    assert_invalid_client(res).await;
    // Unknown client.
    let res = post_form_basic(
        &token_url(&server),
        "nobody",
        "x",
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_invalid_client(res).await;
}

#[tokio::test]
async fn credentials_in_header_and_body_are_invalid_request() {
    let server = attack_server().await;
    let res = post_form_basic(
        &token_url(&server),
        EXCHANGE_CLIENT,
        EXCHANGE_SECRET,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", EXCHANGE_CLIENT),
            ("client_secret", EXCHANGE_SECRET),
        ],
    )
    .await;
    assert_oauth_error(res, 400, "invalid_request").await;
    // A body client_id that differs from the header's.
    let res = post_form_basic(
        &token_url(&server),
        EXCHANGE_CLIENT,
        EXCHANGE_SECRET,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "demo-app"),
        ],
    )
    .await;
    assert_oauth_error(res, 400, "invalid_request").await;
}

// ---------------------------------------------------------------------------------------
// Grants a client may not use
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn client_credentials_works_for_a_service_account_client() {
    let server = attack_server().await;
    let res = post_form_basic(
        &token_url(&server),
        EXCHANGE_CLIENT,
        EXCHANGE_SECRET,
        &[("grant_type", "client_credentials"), ("scope", "openid")],
    )
    .await;
    assert_eq!(res.headers()[CACHE_CONTROL], "no-store");
    let (status, body) = status_json(res).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["access_token"].is_string());
    assert!(body.get("refresh_token").is_none(), "{body}");
    assert!(body.get("id_token").is_none(), "{body}");
    assert_eq!(body["not-before-policy"], 0, "{body}");
    assert!(
        !s(&body["scope"]).split(' ').any(|x| x == "openid"),
        "{body}"
    );
    let claims = introspect(&server, s(&body["access_token"])).await;
    assert_eq!(claims["active"], true);
    assert_eq!(claims["client_id"], EXCHANGE_CLIENT);
}

/// The claims of a client_credentials access token of the exchange client.
async fn service_account_token_claims(server: &TestServer) -> Value {
    let res = post_form_basic(
        &token_url(server),
        EXCHANGE_CLIENT,
        EXCHANGE_SECRET,
        &[("grant_type", "client_credentials")],
    )
    .await;
    let (status, body) = status_json(res).await;
    assert_eq!(status, 200, "{body}");
    crate::code_flow::jwt_claims(s(&body["access_token"]))
}

/// A realm exported from Keycloak carries each service account's user
/// (`service-account-<client>`, `serviceAccountClientId`): its id is the `sub` and its
/// realm roles the `realm_access` of the client's tokens, as in Keycloak, so that APIs keep
/// recognising the client after the move.
#[tokio::test]
async fn client_credentials_names_keycloaks_service_account_user() {
    const SA_ID: &str = "5b0c3c1e-2f5a-4d7e-9a61-3f1f9e2b8c44";
    let mut realm: Value = serde_json::from_str(&crate::negative_authorize::attack_realm(
        serde_json::json!({}),
    ))
    .unwrap();
    realm["users"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "id": SA_ID,
            "username": format!("service-account-{EXCHANGE_CLIENT}"),
            "enabled": true,
            "serviceAccountClientId": EXCHANGE_CLIENT,
            "realmRoles": ["patient"]
        }));
    let server = TestServer::start_with(TestServerOptions {
        realms: vec![realm.to_string()],
        ..Default::default()
    })
    .await;
    let claims = service_account_token_claims(&server).await;
    assert_eq!(claims["sub"], SA_ID, "{claims}");
    assert_eq!(
        claims["preferred_username"],
        format!("service-account-{EXCHANGE_CLIENT}")
    );
    assert_eq!(
        claims["realm_access"]["roles"],
        serde_json::json!(["patient"])
    );

    // Disabling the service-account user stops the client, as in Keycloak.
    realm["users"].as_array_mut().unwrap().last_mut().unwrap()["enabled"] = false.into();
    let server = TestServer::start_with(TestServerOptions {
        realms: vec![realm.to_string()],
        ..Default::default()
    })
    .await;
    let res = post_form_basic(
        &token_url(&server),
        EXCHANGE_CLIENT,
        EXCHANGE_SECRET,
        &[("grant_type", "client_credentials")],
    )
    .await;
    let body = assert_oauth_error(res, 400, "invalid_request").await;
    assert!(body.get("access_token").is_none());

    // Without that user in the file, the subject is pforte's stable stand-in, no roles.
    let claims = service_account_token_claims(&attack_server().await).await;
    assert_ne!(claims["sub"], SA_ID);
    assert!(claims.get("realm_access").is_none(), "{claims}");
}

/// A client_credentials token lives only as long as the client may use the grant:
/// switching service accounts off, or disabling the service-account user, makes the
/// tokens it already has inactive, as the grant itself is refused from then on.
#[tokio::test]
async fn client_credentials_tokens_end_with_the_service_account() {
    let server = attack_server().await;
    let original = server
        .store
        .get_client("demo", EXCHANGE_CLIENT)
        .await
        .unwrap()
        .unwrap();
    for change in ["service accounts off", "service-account user disabled"] {
        let res = post_form_basic(
            &token_url(&server),
            EXCHANGE_CLIENT,
            EXCHANGE_SECRET,
            &[("grant_type", "client_credentials")],
        )
        .await;
        let (status, body) = status_json(res).await;
        assert_eq!(status, 200, "{body}");
        let at = s(&body["access_token"]);
        assert_active(&server, at, true).await;
        let mut changed = (*original).clone();
        match change {
            "service accounts off" => changed.service_accounts_enabled = false,
            _ => {
                changed.service_account_user = Some(pforte_core::model::ServiceAccountUser {
                    id: "sa".into(),
                    realm_roles: vec![],
                    disabled: true,
                });
            }
        }
        let import = |c| pforte_core::store::RealmImport {
            clients: vec![c],
            ..Default::default()
        };
        server.store.apply_import(&import(changed)).await.unwrap();
        // Introspected by conf-app: the exchange client's own credentials are beside the point.
        let info = introspect_as_conf_app(&server, at).await;
        assert_eq!(info["active"], false, "{change}: {info}");
        server
            .store
            .apply_import(&import((*original).clone()))
            .await
            .unwrap();
        assert_active(&server, at, true).await;
    }
}

#[tokio::test]
async fn client_credentials_is_refused_for_a_public_client() {
    let server = attack_server().await;
    let res = post_form(
        &token_url(&server),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "demo-app"),
        ],
    )
    .await;
    let body = assert_oauth_error(res, 400, "unauthorized_client").await;
    assert!(body.get("access_token").is_none());
}

#[tokio::test]
async fn client_credentials_is_refused_without_service_accounts() {
    let server = attack_server().await;
    let res = post_form_basic(
        &token_url(&server),
        "conf-app",
        CONF_SECRET,
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_oauth_error(res, 400, "unauthorized_client").await;
}

// ---------------------------------------------------------------------------------------
// Revocation
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn revoking_another_clients_token_is_refused() {
    let server = attack_server().await;
    let tokens = demo_tokens(&server).await;
    let rt = s(&tokens["refresh_token"]);
    let at = s(&tokens["access_token"]);
    for token in [rt, at] {
        let res = post_form_basic(
            &revoke_url(&server),
            EXCHANGE_CLIENT,
            EXCHANGE_SECRET,
            &[("token", token)],
        )
        .await;
        assert_oauth_error(res, 400, "unauthorized_client").await;
    }
    assert_active(&server, at, true).await;
    // Not revoked: demo-app still refreshes.
    let res = refresh(&server, "demo-app", rt, None).await;
    let (status, body) = status_json(res).await;
    assert_eq!(status, 200, "{body}");
    // The control: its own client may revoke it.
    let rt2 = s(&body["refresh_token"]);
    let res = post_form(
        &revoke_url(&server),
        &[("token", rt2), ("client_id", "demo-app")],
    )
    .await;
    assert_eq!(res.status(), 200);
    let res = refresh(&server, "demo-app", rt2, None).await;
    assert_oauth_error(res, 400, "invalid_grant").await;
}

/// RFC 7009: a client revokes its own access token; from then on introspection calls it
/// inactive and userinfo refuses it, though its signature and expiry are still fine.
#[tokio::test]
async fn a_revoked_access_token_is_refused_everywhere() {
    let server = attack_server().await;
    let tokens = demo_tokens(&server).await;
    let at = s(&tokens["access_token"]);
    let userinfo = || {
        http_client()
            .get(userinfo_url(&server))
            .bearer_auth(at)
            .send()
    };
    assert_eq!(userinfo().await.unwrap().status(), 200);
    let res = post_form(
        &revoke_url(&server),
        &[("token", at), ("client_id", "demo-app")],
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_active(&server, at, false).await;
    let res = userinfo().await.unwrap();
    assert_eq!(res.status(), 401);
    let challenge = res.headers()[WWW_AUTHENTICATE].to_str().unwrap().to_owned();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    // The refresh token was not revoked with it (RFC 7009 §2.1 leaves that open; Keycloak
    // keeps it too).
    let res = refresh(&server, "demo-app", s(&tokens["refresh_token"]), None).await;
    assert_eq!(res.status(), 200);
}

/// Userinfo over POST (OIDC Core §5.3.1): the token in the header or in the form body,
/// never both, and a body that is not a valid form is a malformed request (RFC 6750 §3.1).
#[tokio::test]
async fn userinfo_over_post() {
    let server = attack_server().await;
    let tokens = demo_tokens(&server).await;
    let at = s(&tokens["access_token"]);
    let post = || http_client().post(userinfo_url(&server));
    let res = post().form(&[("access_token", at)]).send().await.unwrap();
    let (status, info) = status_json(res).await;
    assert_eq!(
        (status, &info["preferred_username"]),
        (StatusCode::OK, &Value::from("alice"))
    );
    // A bearer header with an empty body (no form at all) is the common case.
    let res = post().bearer_auth(at).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let res = post()
        .bearer_auth(at)
        .form(&[("access_token", at)])
        .send()
        .await
        .unwrap();
    assert_oauth_error(res, 400, "invalid_request").await;
    let res = post()
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("access_token={at}&access_token={at}"))
        .send()
        .await
        .unwrap();
    assert_oauth_error(res, 400, "invalid_request").await;
}

// ---------------------------------------------------------------------------------------
// Malformed requests: 4xx, never 5xx
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn oversized_form_body_is_refused() {
    let server = attack_server().await;
    let big = "a".repeat(100 * 1024);
    let res = post_form(
        &token_url(&server),
        &[
            ("grant_type", "authorization_code"),
            ("client_id", "demo-app"),
            ("code", &big),
        ],
    )
    .await;
    // Refused by pforte's 64 KiB body limit, before any parameter is looked at (axum's own
    // default limit is 2 MiB; under it, the parameter check would refuse the code instead).
    let (status, body) = status_json(res).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_request", "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("length limit exceeded")),
        "{body}"
    );
    // Under the body limit but over the parameter limit.
    let long = "a".repeat(10 * 1024);
    let res = post_form(
        &token_url(&server),
        &[
            ("grant_type", "authorization_code"),
            ("client_id", "demo-app"),
            ("code", &long),
        ],
    )
    .await;
    assert_oauth_error(res, 400, "invalid_request").await;
    let res = refresh(&server, "demo-app", &long, None).await;
    assert_oauth_error(res, 400, "invalid_request").await;
    let res = post_form_basic(
        &introspect_url(&server),
        EXCHANGE_CLIENT,
        EXCHANGE_SECRET,
        &[("token", &big)],
    )
    .await;
    assert!(
        res.status() == 413 || res.status() == 400,
        "{}",
        res.status()
    );
    let res = post_form_basic(
        &introspect_url(&server),
        EXCHANGE_CLIENT,
        EXCHANGE_SECRET,
        &[("token", &long)],
    )
    .await;
    let (status, body) = status_json(res).await;
    assert_eq!(status, 200);
    assert_eq!(body, serde_json::json!({"active": false}));
}

/// Raw bytes to the server on a fresh connection; returns everything it answers until it
/// closes the connection (`None` if it has not within 10 s).
async fn raw_exchange(server: &TestServer, parts: &[&[u8]], pause: Duration) -> Option<String> {
    let addr = server.base_url.trim_start_matches("http://");
    let mut conn = TcpStream::connect(addr).await.unwrap();
    for part in parts {
        conn.write_all(part).await.unwrap();
        tokio::time::sleep(pause).await;
    }
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut answer)).await;
    // A reset instead of an orderly close also ends the connection.
    read.ok()
        .map(|_| String::from_utf8_lossy(&answer).into_owned())
}

const HALF_HEADER: &[u8] =
    b"POST /realms/demo/protocol/openid-connect/token HTTP/1.1\r\nHost: x\r\n";
const FORM_HEADER: &[u8] = b"POST /realms/demo/protocol/openid-connect/token HTTP/1.1\r\n\
    Host: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 48\r\n\r\n";

#[tokio::test]
async fn slow_and_silent_clients_lose_their_connection() {
    let server = TestServer::start_with(TestServerOptions {
        read_timeout: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    // Half a request header, then silence (slowloris): closed without an answer.
    let answer = raw_exchange(&server, &[HALF_HEADER], Duration::ZERO).await;
    assert_eq!(answer.as_deref(), Some(""), "half a header: {answer:?}");
    // Connected, and not a byte: closed.
    let answer = raw_exchange(&server, &[], Duration::ZERO).await;
    assert_eq!(answer.as_deref(), Some(""), "silent: {answer:?}");
    // A whole header, then a body that stalls halfway: a 400, and the connection closes.
    let answer = raw_exchange(
        &server,
        &[FORM_HEADER, b"grant_type=client_"],
        Duration::ZERO,
    )
    .await
    .expect("a stalled body must not hold the connection");
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(answer.contains("invalid_request"), "{answer}");
    // A complete request is answered, and the kept-alive connection closes once idle.
    let answer = raw_exchange(
        &server,
        &[
            FORM_HEADER,
            b"grant_type=client_credentials&client_id=nobody-x",
        ],
        Duration::ZERO,
    )
    .await
    .expect("an idle kept-alive connection must be closed");
    assert!(answer.starts_with("HTTP/1.1 401 "), "{answer}");
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
}

#[tokio::test]
async fn a_client_pausing_within_the_read_timeout_is_served() {
    // The control for the test above: the same requests with pauses well inside the
    // (default) timeout are answered.
    let server = attack_server().await;
    let pause = Duration::from_millis(200);
    let (head, tail) = HALF_HEADER.split_at(20);
    let parts: [&[u8]; 5] = [
        head,
        tail,
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 48\r\n\r\n",
        b"grant_type=client_",
        b"credentials&client_id=nobody-x",
    ];
    let addr = server.base_url.trim_start_matches("http://");
    let mut conn = TcpStream::connect(addr).await.unwrap();
    for part in parts {
        conn.write_all(part).await.unwrap();
        tokio::time::sleep(pause).await;
    }
    let mut answer = [0u8; 12];
    conn.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"HTTP/1.1 401");
}

#[tokio::test]
async fn duplicate_grant_type_is_invalid_request() {
    let server = attack_server().await;
    let res = post_form(
        &token_url(&server),
        &[
            ("grant_type", "client_credentials"),
            ("grant_type", "authorization_code"),
            ("client_id", "demo-app"),
        ],
    )
    .await;
    assert_oauth_error(res, 400, "invalid_request").await;
}

#[tokio::test]
async fn non_form_content_type_is_invalid_request() {
    let server = attack_server().await;
    for (ct, body) in [
        (
            "application/json",
            r#"{"grant_type":"client_credentials","client_id":"demo-app"}"#,
        ),
        (
            "text/plain",
            "grant_type=client_credentials&client_id=demo-app",
        ),
        ("multipart/form-data; boundary=x", "--x--"),
    ] {
        let res = http_client()
            .post(token_url(&server))
            .basic_auth(EXCHANGE_CLIENT, Some(EXCHANGE_SECRET))
            .header(CONTENT_TYPE, ct)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_oauth_error(res, 400, "invalid_request").await;
    }
    // No body and no content type at all.
    let res = http_client().post(token_url(&server)).send().await.unwrap();
    assert_oauth_error(res, 400, "invalid_request").await;
}

#[tokio::test]
async fn invalid_percent_encoding_is_a_4xx() {
    let server = attack_server().await;
    for body in [
        "grant_type=client_credentials&client_id=demo%ZZapp",
        "grant_type=authorization%2&client_id=demo-app",
        "grant_type=%&client_id=demo-app",
        "grant_type=%FF%FE&client_id=demo-app",
        "grant_type=client_credentials&client_id=%00",
        "grant_type=refresh_token&client_id=demo-app&refresh_token=%C0%AF%00",
        "%%%%=%%%%",
    ] {
        let res = http_client()
            .post(token_url(&server))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = res.status();
        assert!(status.is_client_error(), "{body}: {status}");
        let (_, json) = status_json(res).await;
        assert!(json["error"].is_string(), "{body}: {json}");
    }
}

#[tokio::test]
async fn garbage_basic_authorization_is_invalid_client() {
    let server = attack_server().await;
    let form = [("grant_type", "client_credentials")];
    for header in [
        "Basic !!!not-base64!!!",
        "Basic ",
        "Basic bm8tY29sb24=",                         // "no-colon"
        "Basic //79/A==",                             // not UTF-8
        "Basic dG9rZW4tZXhjaGFuZ2UtY2xpZW50OiV6eg==", // "token-exchange-client:%zz"
    ] {
        let res = http_client()
            .post(token_url(&server))
            .header(AUTHORIZATION, header)
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "{header}");
        let (_, body) = status_json(res).await;
        assert_eq!(body["error"], "invalid_client", "{header}: {body}");
    }
    // Not even ASCII.
    let res = http_client()
        .post(token_url(&server))
        .header(
            AUTHORIZATION,
            reqwest::header::HeaderValue::from_bytes(b"Basic \xff\xfe").unwrap(),
        )
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn garbage_bearer_token_at_userinfo_is_401() {
    let server = attack_server().await;
    for token in [
        "garbage",
        "a.b.c",
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
        &"x".repeat(20_000),
    ] {
        let res = http_client()
            .get(userinfo_url(&server))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "{}", &token[..token.len().min(40)]);
        let challenge = res.headers()[WWW_AUTHENTICATE].to_str().unwrap().to_owned();
        assert!(challenge.starts_with("Bearer"), "{challenge}");
        assert!(challenge.contains("invalid_token"), "{challenge}");
    }
    // No token at all: a bare challenge, without an error code (RFC 6750 §3.1).
    let res = http_client()
        .get(userinfo_url(&server))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()[WWW_AUTHENTICATE], "Bearer realm=\"demo\"");
    // An ID token is not an access token.
    let tokens = demo_tokens(&server).await;
    let res = http_client()
        .get(userinfo_url(&server))
        .bearer_auth(s(&tokens["id_token"]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn garbage_token_at_introspection_is_inactive() {
    let server = attack_server().await;
    let tokens = demo_tokens(&server).await;
    for token in ["garbage", "a.b.c", "", "..", s(&tokens["id_token"])] {
        let res = post_form_basic(
            &introspect_url(&server),
            EXCHANGE_CLIENT,
            EXCHANGE_SECRET,
            &[("token", token)],
        )
        .await;
        let (status, body) = status_json(res).await;
        if token.is_empty() {
            assert!(status == 200 || status == 400, "{status}");
            continue;
        }
        assert_eq!(status, 200, "{token}: {body}");
        assert_eq!(body, serde_json::json!({"active": false}), "{token}");
    }
    // A public client may not introspect at all.
    let res = post_form(
        &introspect_url(&server),
        &[
            ("token", s(&tokens["access_token"])),
            ("client_id", "demo-app"),
        ],
    )
    .await;
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn unknown_grant_type_is_unsupported_grant_type() {
    let server = attack_server().await;
    for grant in [
        "password",
        "implicit",
        "urn:ietf:params:oauth:grant-type:device_code",
        "AUTHORIZATION_CODE",
    ] {
        let res = post_form(
            &token_url(&server),
            &[("grant_type", grant), ("client_id", "demo-app")],
        )
        .await;
        assert_oauth_error(res, 400, "unsupported_grant_type").await;
    }
    let res = post_form(&token_url(&server), &[("client_id", "demo-app")]).await;
    assert_oauth_error(res, 400, "invalid_request").await;
}

#[tokio::test]
async fn token_responses_are_no_store() {
    let server = attack_server().await;
    let mut browser = Browser::new();
    let (code, verifier) = login(&server, &mut browser).await;
    let res = redeem(&server, &code, &verifier).await;
    assert_eq!(res.status(), 200);
    assert_no_store(&res);
    let tokens: Value = res.json().await.unwrap();
    let res = refresh(&server, "demo-app", s(&tokens["refresh_token"]), None).await;
    assert_eq!(res.status(), 200);
    assert_no_store(&res);
    // Errors too, and introspection answers.
    let res = redeem(&server, &code, &verifier).await;
    assert_eq!(res.status(), 400);
    assert_no_store(&res);
    let res = post_form_basic(
        &introspect_url(&server),
        EXCHANGE_CLIENT,
        EXCHANGE_SECRET,
        &[("token", "x")],
    )
    .await;
    assert_no_store(&res);
    let res = http_client()
        .get(userinfo_url(&server))
        .bearer_auth(s(&tokens["access_token"]))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::UNAUTHORIZED,
        "revoked by the reuse above"
    );
    assert_no_store(&res);
}

/// RFC 6749 §5.1: `Cache-Control: no-store`, and `Pragma: no-cache` for HTTP/1.0 caches.
fn assert_no_store(res: &reqwest::Response) {
    assert_eq!(res.headers()[CACHE_CONTROL], "no-store");
    assert_eq!(res.headers()[reqwest::header::PRAGMA], "no-cache");
}

/// A token without `openid` (here a service account's) is a valid token that may not read
/// userinfo: 403 with `insufficient_scope` in the challenge (RFC 6750 §3.1).
#[tokio::test]
async fn userinfo_without_the_openid_scope_is_insufficient_scope() {
    let server = attack_server().await;
    let res = post_form_basic(
        &token_url(&server),
        EXCHANGE_CLIENT,
        EXCHANGE_SECRET,
        &[("grant_type", "client_credentials")],
    )
    .await;
    let (_, body) = status_json(res).await;
    let res = http_client()
        .get(userinfo_url(&server))
        .bearer_auth(s(&body["access_token"]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let challenge = res.headers()[WWW_AUTHENTICATE].to_str().unwrap().to_owned();
    assert!(
        challenge.starts_with("Bearer ") && challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
}

/// The master key of `cli.rs` and `two_nodes.rs` on the shared PostgreSQL database.
const SHARED_PG_MASTER_KEY: &str = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=";

/// NUL cannot be stored in PostgreSQL text: an identifier with one used to reach the
/// database and come back as a 503 "database not available". It is bad input: a 4xx.
async fn nul_bytes_are_4xx_on(database_url: Option<String>) {
    // On the shared PostgreSQL database, the master key every test there uses: a `pforte`
    // process refuses to start when it cannot open the keys of a realm stored there.
    let master_key = database_url
        .as_ref()
        .map(|_| pforte_jose::seal::MasterKey::from_base64(SHARED_PG_MASTER_KEY).unwrap());
    let realm = format!(
        "nul-{}",
        &pkce().0[..12].to_lowercase().replace(['-', '_'], "x")
    );
    #[allow(clippy::needless_update)] // the options may grow fields
    let options = pforte_testkit::TestServerOptions {
        database_url,
        master_key,
        realms: vec![crate::negative_authorize::attack_realm(
            serde_json::json!({ "realm": realm }),
        )],
        ..Default::default()
    };
    let server = TestServer::start_with(options).await;
    let base = server.url(&format!("/realms/{realm}"));
    let oidc = format!("{base}/protocol/openid-connect");
    for body in [
        "grant_type=client_credentials&client_id=%00",
        "grant_type=client_credentials&client_id=token-exchange-client%00&client_secret=x",
    ] {
        let res = http_client()
            .post(format!("{oidc}/token"))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_oauth_error(res, 401, "invalid_client").await;
    }
    let res = post_form_basic(
        &format!("{oidc}/token"),
        "demo-app\0",
        "x",
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(res.status(), 401);

    let (_, challenge) = pkce();
    let auth = format!(
        "{oidc}/auth?response_type=code&scope=openid&state=s&redirect_uri={}{}",
        pforte_core::oauth::urlencode(REDIRECT),
        s256(&challenge)
    );
    let res = http_client()
        .get(format!("{auth}&client_id=demo%00app"))
        .send()
        .await
        .unwrap();
    crate::negative_authorize::assert_error_page(res, 400).await;
    let mut browser = Browser::new();
    let res = browser
        .get(&format!("{auth}&client_id=demo-app&nonce=n%00"))
        .await;
    let cb = pforte_testkit::callback(&res);
    assert_eq!(cb.get("error"), Some("invalid_request"), "{}", cb.location);

    let form = browser
        .open_login(&format!("{auth}&client_id=demo-app"))
        .await;
    let res = browser
        .submit_login(&server.base_url, &form, "ali\0ce", "alice")
        .await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("id=\"input-error\""));
    let res = browser
        .post_form(
            &format!("{base}/login-actions/authenticate?flow=%00"),
            &[
                ("username", "alice"),
                ("password", "alice"),
                ("csrf_token", &form.csrf),
            ],
        )
        .await;
    crate::negative_authorize::assert_error_page(res, 400).await;

    let res = http_client()
        .get(format!(
            "{oidc}/logout?client_id=demo%00app&post_logout_redirect_uri=x"
        ))
        .send()
        .await
        .unwrap();
    crate::negative_authorize::assert_error_page(res, 400).await;
    let res = http_client()
        .get(server.url(&format!(
            "/realms/{realm}%00/.well-known/openid-configuration"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn nul_bytes_are_4xx_on_sqlite() {
    nul_bytes_are_4xx_on(None).await;
}

#[tokio::test]
async fn nul_bytes_are_4xx_on_postgres() {
    if let Some(url) = pforte_testkit::postgres_url() {
        nul_bytes_are_4xx_on(Some(url)).await;
    }
}

/// Two redemptions of one code at the same moment: the reuse may be noticed while the first
/// redemption is still being served. Then both are refused; never may the first one's
/// tokens outlive the reuse.
#[tokio::test]
async fn concurrent_code_reuse_still_revokes() {
    let server = attack_server().await;
    let mut browser = Browser::new();
    let (mut code, mut verifier) = login(&server, &mut browser).await;
    let mut slipped = 0;
    for _ in 0..30 {
        let (a, b) = tokio::join!(
            redeem(&server, &code, &verifier),
            redeem(&server, &code, &verifier)
        );
        let (sa, ba) = status_json(a).await;
        let (sb, bb) = status_json(b).await;
        for (status, body) in [(sa, &ba), (sb, &bb)] {
            if status == 400 {
                assert_eq!(body["error"], "invalid_grant", "{body}");
            }
        }
        let winner = match (sa.as_u16(), sb.as_u16()) {
            (200, 400) => Some(ba),
            (400, 200) => Some(bb),
            (400, 400) => None,
            other => panic!("{other:?}: {ba} {bb}"),
        };
        if let Some(w) = winner
            && introspect(&server, s(&w["access_token"])).await["active"] == true
        {
            slipped += 1;
        }
        let (v, challenge) = pkce();
        let res = browser
            .get(&crate::code_flow::auth_url(&server, &challenge, ""))
            .await;
        code = pforte_testkit::callback(&res)
            .get("code")
            .unwrap()
            .to_owned();
        verifier = v;
    }
    assert_eq!(
        slipped, 0,
        "concurrent reuses left the first redemption's tokens active"
    );
}

/// A code past its lifetime is refused, even unused and otherwise right.
#[tokio::test]
async fn an_expired_code_is_refused() {
    let server = attack_server().await;
    let tokens = demo_tokens(&server).await;
    let id = crate::code_flow::jwt_claims(s(&tokens["id_token"]));
    let now = server.state.now();
    let (verifier, challenge) = pkce();
    let code = |name: &str, expires_at| pforte_core::model::AuthCode {
        code_hash: pforte_core::secret::hash_token(name),
        realm: "demo".into(),
        client_id: "demo-app".into(),
        user_id: s(&id["sub"]).into(),
        session_id: s(&id["sid"]).into(),
        grant_id: format!("grant-{name}"),
        redirect_uri: REDIRECT.into(),
        scope: "openid".into(),
        nonce: None,
        code_challenge: Some(challenge.clone()),
        code_challenge_method: Some("S256".into()),
        auth_time: now,
        acr: None,
        expires_at,
    };
    server
        .store
        .insert_code(&code("expired", now - 1))
        .await
        .unwrap();
    server
        .store
        .insert_code(&code("fresh", now + 60))
        .await
        .unwrap();
    let res = redeem(&server, "expired", &verifier).await;
    let body = assert_oauth_error(res, 400, "invalid_grant").await;
    assert!(s(&body["error_description"]).contains("expired"), "{body}");
    // The control: the same code with time left redeems.
    let res = redeem(&server, "fresh", &verifier).await;
    assert_eq!(res.status(), 200);
}

/// Realms are apart: another realm's code, refresh token and access token mean nothing
/// here, though the client ids and the user's name are the same.
#[tokio::test]
async fn another_realms_tokens_are_refused() {
    let server = crate::negative_authorize::two_realm_server().await;
    let other_url =
        |path: &str| server.url(&format!("/realms/other/protocol/openid-connect/{path}"));
    // A code of realm `other` at demo's token endpoint: refused, and then it is used up.
    let mut browser = Browser::new();
    let (verifier, challenge) = pkce();
    let form = browser
        .open_login(
            &crate::code_flow::auth_url(&server, &challenge, "")
                .replace("/realms/demo/", "/realms/other/"),
        )
        .await;
    let res = browser
        .submit_login(&server.base_url, &form, "alice", "alice")
        .await;
    let cb = pforte_testkit::callback(&res);
    let res = redeem(&server, cb.get("code").unwrap(), &verifier).await;
    assert_oauth_error(res, 400, "invalid_grant").await;

    let tokens = crate::negative_authorize::tokens_of_realm_other(&server).await;
    let res = refresh(&server, "demo-app", s(&tokens["refresh_token"]), None).await;
    assert_oauth_error(res, 400, "invalid_grant").await;
    let res = http_client()
        .get(userinfo_url(&server))
        .bearer_auth(s(&tokens["access_token"]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_active(&server, s(&tokens["access_token"]), false).await;
    // The controls: in their own realm, they work.
    let res = http_client()
        .get(other_url("userinfo"))
        .bearer_auth(s(&tokens["access_token"]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = post_form(
        &other_url("token"),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", s(&tokens["refresh_token"])),
            ("client_id", "demo-app"),
        ],
    )
    .await;
    assert_eq!(res.status(), 200);
}

/// A confidential client that sent a PKCE challenge is held to it (RFC 7636 §4.6), though
/// it authenticates with its secret.
#[tokio::test]
async fn a_confidential_client_that_sent_a_challenge_must_send_its_verifier() {
    let server = attack_server().await;
    let mut browser = Browser::new();
    for verifier in [None, Some(pkce().0)] {
        let (right, challenge) = pkce();
        let res = browser
            .get(&crate::negative_authorize::authorize_url(
                &server,
                "conf-app",
                REDIRECT,
                &s256(&challenge),
            ))
            .await;
        let res = if res.status() == StatusCode::OK {
            let form = pforte_testkit::parse_login_form(&res.text().await.unwrap());
            browser
                .submit_login(&server.base_url, &form, "alice", "alice")
                .await
        } else {
            res
        };
        let cb = pforte_testkit::callback(&res);
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", cb.get("code").unwrap()),
            ("redirect_uri", REDIRECT),
        ];
        if let Some(v) = &verifier {
            form.push(("code_verifier", v.as_str()));
        }
        let res = post_form_basic(&token_url(&server), "conf-app", CONF_SECRET, &form).await;
        assert_oauth_error(res, 400, "invalid_grant").await;
        // The control: the right verifier with a fresh code.
        let res = browser
            .get(&crate::negative_authorize::authorize_url(
                &server,
                "conf-app",
                REDIRECT,
                &s256(&challenge),
            ))
            .await;
        let cb = pforte_testkit::callback(&res);
        let res = post_form_basic(
            &token_url(&server),
            "conf-app",
            CONF_SECRET,
            &[
                ("grant_type", "authorization_code"),
                ("code", cb.get("code").unwrap()),
                ("redirect_uri", REDIRECT),
                ("code_verifier", right.as_str()),
            ],
        )
        .await;
        assert_eq!(res.status(), 200);
    }
}

// ---------------------------------------------------------------------------------------
// Access tokens that must not pass: expired, forged
// ---------------------------------------------------------------------------------------

/// Userinfo's status and `WWW-Authenticate` challenge for `token`.
async fn userinfo_status(server: &TestServer, token: &str) -> (StatusCode, String) {
    let res = http_client()
        .get(userinfo_url(server))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let challenge = res
        .headers()
        .get(WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (res.status(), challenge)
}

/// Refused by userinfo as an invalid token and inactive at introspection, with nothing
/// else said about it.
async fn assert_refused_everywhere(server: &TestServer, token: &str, what: &str) {
    let (status, challenge) = userinfo_status(server, token).await;
    assert_eq!(status, 401, "{what}");
    assert!(
        challenge.contains("error=\"invalid_token\""),
        "{what}: {challenge}"
    );
    assert_eq!(
        introspect(server, token).await,
        serde_json::json!({"active": false}),
        "{what}"
    );
}

/// An access token past its `exp` is refused, though its session, grant, user and client
/// are all still alive (the refresh token still works).
#[tokio::test]
async fn an_expired_access_token_is_refused() {
    let clock = pforte_testkit::TestClock::new();
    let server = TestServer::start_with(TestServerOptions {
        realms: vec![crate::negative_authorize::attack_realm(serde_json::json!(
            {}
        ))],
        clock: Some(clock.clone()),
        ..Default::default()
    })
    .await;
    let tokens = demo_tokens(&server).await;
    let at = s(&tokens["access_token"]);
    let lifespan = tokens["expires_in"].as_i64().unwrap();
    assert_eq!(userinfo_status(&server, at).await.0, 200, "the control");
    assert_active(&server, at, true).await;

    // Halfway it still passes; at `exp` it is over.
    clock.advance(lifespan / 2);
    assert_eq!(userinfo_status(&server, at).await.0, 200);
    clock.advance(lifespan - lifespan / 2);
    assert_refused_everywhere(&server, at, "expired").await;
    let res = refresh(&server, "demo-app", s(&tokens["refresh_token"]), None).await;
    let (status, body) = status_json(res).await;
    assert_eq!(status, 200, "the grant is alive: {body}");
    assert_eq!(
        userinfo_status(&server, s(&body["access_token"])).await.0,
        200
    );
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// An EC JWK's public point, uncompressed: `04 || x || y`.
fn public_point(jwk: &Value) -> Vec<u8> {
    use base64::Engine;
    let b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut point = vec![4u8];
    point.extend(b64url.decode(s(&jwk["x"])).unwrap());
    point.extend(b64url.decode(s(&jwk["y"])).unwrap());
    point
}

fn jwt_header(token: &str) -> Value {
    use base64::Engine;
    let header = token.split('.').next().unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// The published JWK that signed `token`.
async fn signing_jwk(server: &TestServer, token: &str) -> Value {
    let kid = jwt_header(token)["kid"].clone();
    let certs = crate::discovery::demo_jwks(&server.base_url).await;
    certs["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .unwrap_or_else(|| panic!("the token's key {kid} is published: {certs}"))
        .clone()
}

/// Forgeries of a real access token: a changed payload under the original signature, a
/// changed signature, `alg: none`, and HS256 keyed with the public key in each form a
/// confused verifier might use (JWK, raw point, SPKI DER, PEM), each with the real `kid`
/// and `typ`. None passes userinfo or introspection.
#[tokio::test]
async fn forged_access_tokens_are_refused() {
    let server = attack_server().await;
    let tokens = demo_tokens(&server).await;
    let at = s(&tokens["access_token"]);
    assert_eq!(userinfo_status(&server, at).await.0, 200, "the control");
    let parts: Vec<&str> = at.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header = jwt_header(at);
    let claims = crate::code_flow::jwt_claims(at);

    let mut forged = Vec::new();
    // The payload changed, the signature kept: another subject, a later expiry.
    for (name, value) in [
        ("sub", serde_json::json!("someone-else")),
        (
            "exp",
            serde_json::json!(claims["exp"].as_i64().unwrap() + 86_400),
        ),
    ] {
        let mut c = claims.clone();
        c[name] = value;
        let payload = b64(&serde_json::to_vec(&c).unwrap());
        forged.push((
            format!("changed {name}"),
            format!("{}.{payload}.{}", parts[0], parts[2]),
        ));
    }
    // One character of the signature changed, in its middle (the last one may carry only
    // padding bits).
    let mut sig: Vec<u8> = parts[2].bytes().collect();
    let i = sig.len() / 2;
    sig[i] = if sig[i] == b'A' { b'B' } else { b'A' };
    let sig = String::from_utf8(sig).unwrap();
    forged.push((
        "changed signature".into(),
        format!("{}.{}.{sig}", parts[0], parts[1]),
    ));
    // `alg: none`, and HS256 with the published key as the HMAC secret.
    let jwk = signing_jwk(&server, at).await;
    let with_alg = |alg: &str| {
        let mut h = header.clone();
        h["alg"] = alg.into();
        format!("{}.{}", b64(&serde_json::to_vec(&h).unwrap()), parts[1])
    };
    forged.push(("alg none".into(), format!("{}.", with_alg("none"))));
    let point = public_point(&jwk);
    // A P-256 SubjectPublicKeyInfo is this fixed prefix and the point.
    let mut spki = hex_bytes("3059301306072a8648ce3d020106082a8648ce3d030107034200");
    spki.extend_from_slice(&point);
    let pem = {
        use base64::Engine;
        let body = base64::engine::general_purpose::STANDARD.encode(&spki);
        format!("-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n")
    };
    let input = with_alg("HS256");
    for (form, key) in [
        ("JWK", serde_json::to_vec(&jwk).unwrap()),
        ("raw point", point),
        ("SPKI DER", spki),
        ("PEM", pem.into_bytes()),
    ] {
        let signature = b64(&pforte_testkit::hmac_sha256(&key, input.as_bytes()));
        forged.push((
            format!("HS256 keyed with the {form}"),
            format!("{input}.{signature}"),
        ));
    }
    for (what, token) in forged {
        assert_ne!(token, at);
        assert_refused_everywhere(&server, &token, &what).await;
    }
    assert_eq!(
        userinfo_status(&server, at).await.0,
        200,
        "the original still passes"
    );
}

/// `client_secret_post`: the secret in the form body authenticates as well as the Basic
/// header does (the negative tests would also pass if the body's secret were never
/// accepted).
#[tokio::test]
async fn client_secret_post_authenticates() {
    let server = attack_server().await;
    let res = post_form(
        &token_url(&server),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", EXCHANGE_CLIENT),
            ("client_secret", EXCHANGE_SECRET),
        ],
    )
    .await;
    let (status, body) = status_json(res).await;
    assert_eq!(status, 200, "{body}");
    assert_active(&server, s(&body["access_token"]), true).await;
    // A confidential client redeems its code with the secret in the body.
    let mut browser = Browser::new();
    let cb = login_for(&server, &mut browser, "conf-app", REDIRECT, "").await;
    let res = post_form(
        &token_url(&server),
        &[
            ("grant_type", "authorization_code"),
            ("code", cb.get("code").unwrap()),
            ("redirect_uri", REDIRECT),
            ("client_id", "conf-app"),
            ("client_secret", CONF_SECRET),
        ],
    )
    .await;
    let (status, body) = status_json(res).await;
    assert_eq!(status, 200, "{body}");
    // The wrong secret in the body is refused like a wrong Basic one.
    let res = post_form(
        &token_url(&server),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", EXCHANGE_CLIENT),
            ("client_secret", "not-the-secret"),
        ],
    )
    .await;
    assert_eq!(res.status(), 401);
}

/// A code presented again after its tokens were refreshed: what the refresh issued is
/// revoked as well, not only the first pair.
#[tokio::test]
async fn code_reuse_after_a_refresh_revokes_the_refreshed_tokens() {
    let server = attack_server().await;
    let mut browser = Browser::new();
    let (code, verifier) = login(&server, &mut browser).await;
    let first = redeem_ok(&server, &code, &verifier).await;
    let res = refresh(&server, "demo-app", s(&first["refresh_token"]), None).await;
    let (status, second) = status_json(res).await;
    assert_eq!(status, 200, "{second}");
    assert_active(&server, s(&second["access_token"]), true).await;

    let res = redeem(&server, &code, &verifier).await;
    assert_oauth_error(res, 400, "invalid_grant").await;
    assert_active(&server, s(&second["access_token"]), false).await;
    let res = refresh(&server, "demo-app", s(&second["refresh_token"]), None).await;
    assert_oauth_error(res, 400, "invalid_grant").await;
}

/// A native app's code is bound to the loopback port it was issued for: the port may vary
/// between authorizations, not between the authorization and the token request.
#[tokio::test]
async fn a_native_apps_code_is_bound_to_its_loopback_port() {
    let server = attack_server().await;
    for (redeemed_at, ok) in [
        ("http://127.0.0.1:40000/cb", false),
        ("http://127.0.0.1/cb", false),
        ("http://127.0.0.1:53117/cb", true),
    ] {
        let mut browser = Browser::new();
        let (verifier, challenge) = pkce();
        let issued_for = "http://127.0.0.1:53117/cb";
        let cb = login_for(
            &server,
            &mut browser,
            "native-app",
            issued_for,
            &s256(&challenge),
        )
        .await;
        let res = post_form(
            &token_url(&server),
            &[
                ("grant_type", "authorization_code"),
                ("code", cb.get("code").unwrap()),
                ("redirect_uri", redeemed_at),
                ("client_id", "native-app"),
                ("code_verifier", &verifier),
            ],
        )
        .await;
        if ok {
            assert_eq!(res.status(), 200, "{redeemed_at}");
        } else {
            assert_oauth_error(res, 400, "invalid_grant").await;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Secrets at rest
// ---------------------------------------------------------------------------------------

/// The bytes of a SQLite database: the file, its write-ahead log and shared memory.
fn database_bytes(path: &std::path::Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        if let Ok(b) = std::fs::read(&p) {
            bytes.extend_from_slice(&b);
        }
    }
    assert!(!bytes.is_empty(), "no database at {}", path.display());
    bytes
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// The design's rule: client secrets and private keys hashed or encrypted, codes and
/// refresh tokens stored as hashes. After a login, a refresh and a client_credentials
/// grant, none of them is in the database's bytes in plain text.
#[tokio::test]
async fn secrets_are_not_stored_in_plain_text() {
    let path = pforte_testkit::temp_path("at-rest").with_extension("db");
    let server = TestServer::start_with(TestServerOptions {
        database_url: Some(format!("sqlite://{}", path.display())),
        realms: vec![crate::negative_authorize::attack_realm(serde_json::json!(
            {}
        ))],
        ..Default::default()
    })
    .await;
    let mut browser = Browser::new();
    let (code, verifier) = login(&server, &mut browser).await;
    let first = redeem_ok(&server, &code, &verifier).await;
    let res = refresh(&server, "demo-app", s(&first["refresh_token"]), None).await;
    let (status, second) = status_json(res).await;
    assert_eq!(status, 200, "{second}");
    let res = post_form_basic(
        &token_url(&server),
        EXCHANGE_CLIENT,
        EXCHANGE_SECRET,
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(res.status(), 200);
    let jwk = signing_jwk(&server, s(&first["access_token"])).await;
    assert_eq!(jwk["kty"], "EC", "{jwk}");

    let bytes = database_bytes(&path);
    // The controls: what is stored in plain text is found — a client id, the public key,
    // and the refresh tokens' family id (a refresh token is `<family>.<secret>`; only the
    // secret is hashed), which proves the refresh rows are in the bytes read.
    assert!(contains(&bytes, b"token-exchange-client"));
    assert!(
        contains(&bytes, s(&jwk["x"]).as_bytes()),
        "the public key is stored"
    );
    let (family, _) = s(&second["refresh_token"]).split_once('.').unwrap();
    assert!(contains(&bytes, family.as_bytes()), "the family is stored");
    let secret_of = |token: &Value| s(token).split_once('.').unwrap().1.to_owned();
    let (first_secret, second_secret) = (
        secret_of(&first["refresh_token"]),
        secret_of(&second["refresh_token"]),
    );
    let cookie = browser
        .cookies
        .get("PFORTE_SESSION")
        .unwrap_or_else(|| panic!("no session cookie: {:?}", browser.cookies))
        .clone();
    for (what, secret) in [
        ("session cookie", cookie.as_str()),
        ("code", code.as_str()),
        ("first refresh token's secret", first_secret.as_str()),
        ("rotated refresh token's secret", second_secret.as_str()),
        ("exchange client's secret", EXCHANGE_SECRET),
        ("conf-app's secret", CONF_SECRET),
    ] {
        assert!(
            !contains(&bytes, secret.as_bytes()),
            "the {what} is stored in plain text"
        );
    }
    // A private JWK would carry `"d"`; a plain PKCS#8 key would carry the raw public point.
    assert!(!contains(&bytes, b"\"d\":\""), "a private JWK is stored");
    assert!(
        !contains(&bytes, &public_point(&jwk)),
        "a plain private key is stored"
    );
    server.stop().await;
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
}
