//! Browser applications (Keycloak `webOrigins`) may read token and userinfo responses;
//! other origins may not.

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
