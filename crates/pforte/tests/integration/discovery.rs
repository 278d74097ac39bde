use pforte_testkit::{TestServer, http_client};
use serde_json::Value;

#[tokio::test]
async fn discovery_names_the_realm_issuer_and_jwks() {
    let server = TestServer::start().await;
    let res = http_client()
        .get(server.url("/realms/demo/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let doc: Value = res.json().await.unwrap();
    let issuer = server.url("/realms/demo");
    assert_eq!(doc["issuer"], issuer.as_str());
    assert_eq!(
        doc["jwks_uri"],
        format!("{issuer}/protocol/openid-connect/certs").as_str()
    );
    assert_eq!(doc["id_token_signing_alg_values_supported"][0], "ES256");
}

#[tokio::test]
async fn jwks_holds_the_es256_key_the_realm_signs_with() {
    let server = TestServer::start().await;
    let jwks: Value = http_client()
        .get(server.url("/realms/demo/protocol/openid-connect/certs"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kty"], "EC");
    assert_eq!(keys[0]["crv"], "P-256");
    assert_eq!(keys[0]["alg"], "ES256");
    assert_eq!(keys[0]["use"], "sig");
    assert!(
        keys[0].get("d").is_none(),
        "private part must never be published"
    );
    let realm = pforte_core::Store::get_realm(&*server.store, "demo")
        .await
        .unwrap()
        .unwrap();
    let active = server.state.keys.get(&realm).await.unwrap();
    assert_eq!(keys[0]["kid"], active.active.kid());
    // A token the realm signs names that kid and verifies with the published key.
    let token = active
        .active
        .sign_jwt("JWT", &serde_json::json!({"sub": "x"}))
        .unwrap();
    let jwk: pforte_jose::Jwk = serde_json::from_value(keys[0].clone()).unwrap();
    let vk = pforte_jose::VerifyingKey::from_jwk(&jwk).unwrap();
    let verified = pforte_jose::verify_jwt(&token, &[vk], &[pforte_jose::Alg::ES256]).unwrap();
    assert_eq!(verified.header.kid.as_deref(), Some(active.active.kid()));
}

#[tokio::test]
async fn realm_can_choose_eddsa_or_rs256() {
    for (alg, kty) in [("EdDSA", "OKP"), ("RS256", "RSA")] {
        let realm = format!(r#"{{"realm":"r-{alg}","defaultSignatureAlgorithm":"{alg}"}}"#);
        let server = TestServer::start_with(pforte_testkit::TestServerOptions {
            realms: vec![realm],
            ..Default::default()
        })
        .await;
        let jwks: Value = http_client()
            .get(server.url(&format!("/realms/r-{alg}/protocol/openid-connect/certs")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(jwks["keys"][0]["alg"], alg);
        assert_eq!(jwks["keys"][0]["kty"], kty);
    }
}

#[tokio::test]
async fn unknown_realm_is_a_json_404() {
    let server = TestServer::start().await;
    for path in [
        "/realms/nope/.well-known/openid-configuration",
        "/realms/nope/protocol/openid-connect/certs",
    ] {
        let res = http_client().get(server.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 404, "{path}");
        assert!(
            res.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], "Realm does not exist");
    }
}

#[tokio::test]
async fn health_endpoints_answer() {
    let server = TestServer::start().await;
    for path in ["/health/live", "/health/ready"] {
        let res = http_client().get(server.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["status"], "UP");
    }
}

#[tokio::test]
async fn responses_carry_security_headers() {
    let server = TestServer::start().await;
    let res = http_client()
        .get(server.url("/realms/demo/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap();
    let h = res.headers();
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    assert!(
        h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    assert_eq!(h["referrer-policy"], "no-referrer");
}
