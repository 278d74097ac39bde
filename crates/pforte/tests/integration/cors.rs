//! Browser applications (Keycloak `webOrigins`) may read token, userinfo and revocation
//! responses; other origins may not.

use pforte_testkit::{Browser, TestServer, http_client};
use serde_json::Value;

use crate::code_flow::{login, redeem_request};

const APP: &str = "http://127.0.0.1:8082";

fn acao(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().unwrap().to_owned())
}

async fn redeem_from(
    server: &TestServer,
    origin: &str,
    code: &str,
    verifier: &str,
) -> reqwest::Response {
    redeem_request(server, code, verifier)
        .header("Origin", origin)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn token_and_userinfo_allow_the_clients_web_origin_only() {
    let server = TestServer::start().await;
    let mut browser = Browser::new();
    let (code, verifier) = login(&server, &mut browser).await;
    let res = redeem_from(&server, APP, &code, &verifier).await;
    assert_eq!(res.status(), 200);
    assert_eq!(acao(&res).as_deref(), Some(APP));

    // An error answer is readable by the app too (it must see `invalid_grant`).
    let res = redeem_from(&server, APP, &code, &verifier).await;
    assert_eq!(res.status(), 400);
    assert_eq!(acao(&res).as_deref(), Some(APP));

    let (code, verifier) = login(&server, &mut Browser::new()).await;
    let res = redeem_from(&server, "http://evil.example", &code, &verifier).await;
    assert_eq!(res.status(), 200);
    assert_eq!(acao(&res), None, "a foreign origin must not be allowed");
    // (The first code's tokens died with its reuse above; these are live.)
    let tokens: Value = res.json().await.unwrap();

    let at = tokens["access_token"].as_str().unwrap();
    for (origin, allowed) in [(APP, true), ("http://evil.example", false)] {
        let res = http_client()
            .get(server.url("/realms/demo/protocol/openid-connect/userinfo"))
            .header("Origin", origin)
            .bearer_auth(at)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(acao(&res).is_some(), allowed, "{origin}");
    }
}

/// The app may read revocation answers from its web origin, refusals included: a request
/// that fails before the token is looked at (here: no token) is answered for the client it
/// names, as at the token endpoint.
#[tokio::test]
async fn revocation_answers_are_readable_by_the_clients_web_origin_errors_included() {
    let server = TestServer::start().await;
    let (code, verifier) = login(&server, &mut Browser::new()).await;
    let res = redeem_from(&server, APP, &code, &verifier).await;
    assert_eq!(res.status(), 200);
    let tokens: Value = res.json().await.unwrap();
    let rt = tokens["refresh_token"].as_str().unwrap();
    let revoke = |origin: &'static str, form: Vec<(&'static str, String)>| {
        http_client()
            .post(server.url("/realms/demo/protocol/openid-connect/revoke"))
            .header("Origin", origin)
            .form(&form)
            .send()
    };
    let client = || ("client_id", "demo-app".to_owned());

    let res = revoke(APP, vec![client()]).await.unwrap();
    assert_eq!(res.status(), 400, "no token to revoke");
    assert_eq!(
        acao(&res).as_deref(),
        Some(APP),
        "the app must read the refusal"
    );
    let res = revoke("http://evil.example", vec![client()]).await.unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(acao(&res), None, "a foreign origin must not be allowed");
    let res = revoke(APP, vec![("client_id", "no-such-client".to_owned())])
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(acao(&res), None, "an unknown client has no web origins");

    let res = revoke(APP, vec![client(), ("token", rt.to_owned())])
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(acao(&res).as_deref(), Some(APP));
}

#[tokio::test]
async fn preflight_and_public_documents() {
    let server = TestServer::start().await;
    let res = http_client()
        .request(
            reqwest::Method::OPTIONS,
            server.url("/realms/demo/protocol/openid-connect/userinfo"),
        )
        .header("Origin", APP)
        .header("Access-Control-Request-Method", "GET")
        .header("Access-Control-Request-Headers", "authorization")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert!(
        res.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("Authorization")
    );
    let res = http_client()
        .get(server.url("/realms/demo/protocol/openid-connect/certs"))
        .header("Origin", "http://anywhere.example")
        .send()
        .await
        .unwrap();
    assert_eq!(acao(&res).as_deref(), Some("*"));
}
