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
    let jwks = demo_jwks(&server.base_url).await;
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

/// Every response: a document, no such endpoint (404), a method the endpoint does not
/// have (405), a body over the limit (400), a malformed request the router never sees.
#[tokio::test]
async fn responses_carry_security_headers() {
    let server = TestServer::start().await;
    let client = http_client();
    let token = server.url("/realms/demo/protocol/openid-connect/token");
    let big = format!("grant_type=x&code={}", "a".repeat(100 * 1024));
    for (what, req, status) in [
        (
            "discovery",
            client.get(server.url("/realms/demo/.well-known/openid-configuration")),
            200,
        ),
        ("no such endpoint", client.get(server.url("/nowhere")), 404),
        ("wrong method", client.delete(&token), 405),
        (
            "body over the limit",
            client
                .post(&token)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(big),
            400,
        ),
    ] {
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), status, "{what}");
        let h = res.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
        assert_eq!(h["x-frame-options"], "DENY", "{what}");
        assert!(
            h["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'"),
            "{what}"
        );
        assert_eq!(h["referrer-policy"], "no-referrer", "{what}");
    }
}

/// A test server whose master key is `key`, its realm `demo` and the current time.
async fn server_with_master_key(
    key: [u8; 32],
) -> (TestServer, std::sync::Arc<pforte_core::model::Realm>, i64) {
    use pforte_core::Store;
    let server = TestServer::start_with(pforte_testkit::TestServerOptions {
        master_key: Some(pforte_jose::seal::MasterKey::from(key)),
        ..Default::default()
    })
    .await;
    let realm = server.store.get_realm("demo").await.unwrap().unwrap();
    let now = pforte_server::Clock::now(&pforte_server::SystemClock);
    (server, realm, now)
}

/// The JWKS of realm `demo` at the node listening at `base`.
pub async fn demo_jwks(base: &str) -> Value {
    http_client()
        .get(format!("{base}/realms/demo/protocol/openid-connect/certs"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn jwks_kids(base: &str) -> Vec<String> {
    demo_jwks(base).await["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// Node B has read the realm's keys; then the key is rotated (as by `pforte keys rotate`)
/// and node A, reading the keys afresh, signs with the new one. B must verify A's tokens
/// at once — re-reading the keys for a kid it does not know — instead of refusing them
/// until its key cache expires.
#[tokio::test]
async fn a_node_verifies_tokens_signed_with_a_key_rotated_in_since_it_read_the_keys() {
    use pforte_jose::seal::MasterKey;
    use pforte_server::{AppState, ServerConfig};

    let key = [7u8; 32];
    let (a, realm, now) = server_with_master_key(key).await;
    // Node B: the same database and master key, and the same public base URL (behind one
    // load balancer both are the issuer), listening on its own port.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let b_url = format!("http://{}", listener.local_addr().unwrap());
    let mut config = ServerConfig::new(a.base_url.clone());
    config.dev_mode = true;
    let b = AppState::new(a.store.clone(), config, MasterKey::from(key));
    tokio::spawn(pforte_server::serve(
        listener,
        b,
        pforte_testkit::shared_workers(),
        std::future::pending(),
    ));
    let before = jwks_kids(&b_url).await;

    let new_kid = pforte_core::keys::rotate(&*a.store, &realm, 3600, &MasterKey::from(key), now)
        .await
        .unwrap();
    assert!(!before.contains(&new_kid));

    let mut browser = pforte_testkit::Browser::new();
    let (code, verifier) = crate::code_flow::login(&a, &mut browser).await;
    let tokens: Value = crate::code_flow::redeem(&a, &code, &verifier)
        .await
        .json()
        .await
        .unwrap();
    let at = tokens["access_token"].as_str().unwrap();
    let header = pforte_jose::decode_unverified_header(at).unwrap();
    assert_eq!(header.kid.as_deref(), Some(new_kid.as_str()));

    let res = http_client()
        .get(format!(
            "{b_url}/realms/demo/protocol/openid-connect/userinfo"
        ))
        .bearer_auth(at)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    assert!(jwks_kids(&b_url).await.contains(&new_kid));
}

/// A node started with another master key must not replace the realm's keys: it would seal
/// the new key so that no correctly configured node could open it, and retire the one
/// they all can. Rotation (CLI) and an algorithm change both check the key first.
#[tokio::test]
async fn a_wrong_master_key_cannot_rotate_the_realms_keys() {
    use pforte_core::Store;
    use pforte_jose::Alg;
    use pforte_jose::seal::MasterKey;

    let key = [9u8; 32];
    let (server, realm, now) = server_with_master_key(key).await;
    let store = &*server.store;
    pforte_core::keys::load_or_create(store, &realm, 3600, &MasterKey::from(key), now)
        .await
        .unwrap();
    let before = store.list_keys("demo").await.unwrap();
    let wrong = MasterKey::from([10u8; 32]);

    let err = pforte_core::keys::rotate(store, &realm, 3600, &wrong, now)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("PFORTE_MASTER_KEY"), "{err}");
    let mut eddsa = (*realm).clone();
    eddsa.signature_alg = Alg::EdDSA;
    let err = match pforte_core::keys::load_or_create(store, &eddsa, 3600, &wrong, now).await {
        Ok(_) => panic!("an algorithm change with the wrong master key must fail"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("PFORTE_MASTER_KEY"), "{err}");
    assert_eq!(store.list_keys("demo").await.unwrap(), before);

    // The control: the right key rotates.
    pforte_core::keys::rotate(store, &realm, 3600, &MasterKey::from(key), now)
        .await
        .unwrap();
    assert_eq!(
        store.list_keys("demo").await.unwrap().len(),
        before.len() + 1
    );
}
