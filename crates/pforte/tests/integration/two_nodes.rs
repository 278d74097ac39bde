//! One flow, its steps spread over two `pforte` processes that share a PostgreSQL database
//! and sit behind one public URL: every step must work on whichever node it lands on.

use openidconnect::core::{
    CoreIdToken, CoreIdTokenVerifier, CoreJsonWebKeySet, CoreJwsSigningAlgorithm,
};
use openidconnect::{ClientId, IssuerUrl, JsonWebKeySetUrl, Nonce};
use pforte_testkit::{
    Browser, EXAMPLE_REALM, PforteProcess, callback, http_client, pkce, postgres_url, temp_path,
};
use serde_json::Value;

use crate::pforte_bin;
use crate::rp_library::RpHttp;

const REDIRECT: &str = "http://127.0.0.1:8082/callback";
const POST_LOGOUT: &str = "http://127.0.0.1:8082/";
/// The public URL of the cluster (a load balancer's). Only a string in tokens and discovery:
/// every request of the test goes to one node's own address.
const PUBLIC_BASE: &str = "http://pforte.test";
/// The master key `cli.rs` uses on the shared database too: a node refuses to start when it
/// cannot open the keys of a realm stored there.
const MASTER_KEY: &str = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=";
const INTROSPECTOR: (&str, &str) = ("token-exchange-client", "dev-exchange-secret-change-me");

/// A node: its process and the address it actually listens on.
struct Node {
    _process: PforteProcess,
    url: String,
}

fn start_node(realm_file: &str, data_dir: &std::path::Path, pg: &str) -> Node {
    let data = data_dir.to_str().unwrap();
    let process = PforteProcess::spawn(
        &pforte_bin(),
        &["--import", realm_file],
        &[
            ("PFORTE_DATABASE_URL", pg),
            ("PFORTE_MASTER_KEY", MASTER_KEY),
            ("PFORTE_BASE_URL", PUBLIC_BASE),
            ("PFORTE_DEV_MODE", "true"),
            ("PFORTE_DATA_DIR", data),
        ],
    );
    assert_eq!(process.base_url, PUBLIC_BASE);
    Node {
        url: process.listen_url.clone(),
        _process: process,
    }
}

struct Cluster {
    realm: String,
    issuer: String,
    a: Node,
    b: Node,
}

impl Cluster {
    fn oidc(&self, node: &Node, endpoint: &str) -> String {
        format!(
            "{}/realms/{}/protocol/openid-connect/{endpoint}",
            node.url, self.realm
        )
    }

    fn auth_url(&self, node: &Node, challenge: &str, state: &str, extra: &str) -> String {
        format!(
            "{}?client_id=demo-app&response_type=code&scope=openid%20email%20profile&redirect_uri={}&state={state}&nonce=n0nce&code_challenge={challenge}&code_challenge_method=S256{extra}",
            self.oidc(node, "auth"),
            pforte_core::oauth::urlencode(REDIRECT)
        )
    }

    async fn token(&self, node: &Node, form: &[(&str, &str)]) -> (u16, Value) {
        let res = http_client()
            .post(self.oidc(node, "token"))
            .form(form)
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.json().await.unwrap())
    }

    async fn redeem(&self, node: &Node, code: &str, verifier: &str) -> Value {
        let (status, body) = self
            .token(
                node,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", code),
                    ("redirect_uri", REDIRECT),
                    ("client_id", "demo-app"),
                    ("code_verifier", verifier),
                ],
            )
            .await;
        assert_eq!(status, 200, "code redemption on {}: {body}", node.url);
        body
    }

    async fn refresh(&self, node: &Node, refresh_token: &str) -> (u16, Value) {
        self.token(
            node,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
                ("client_id", "demo-app"),
            ],
        )
        .await
    }

    async fn introspect(&self, node: &Node, token: &str) -> Value {
        let res = http_client()
            .post(self.oidc(node, "token/introspect"))
            .basic_auth(INTROSPECTOR.0, Some(INTROSPECTOR.1))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "introspection on {}", node.url);
        res.json().await.unwrap()
    }

    async fn get_json(&self, url: &str) -> Value {
        let res = http_client().get(url).send().await.unwrap();
        assert_eq!(res.status(), 200, "{url}");
        res.json().await.unwrap()
    }
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no string `{key}` in {v}"))
}

fn assert_invalid_grant((status, body): (u16, Value), what: &str) {
    assert_eq!(status, 400, "{what}: {body}");
    assert_eq!(body["error"], "invalid_grant", "{what}: {body}");
}

#[tokio::test]
async fn one_flow_across_two_nodes_on_one_postgres() {
    let Some(pg) = postgres_url() else { return };
    let dir = temp_path("two-nodes");
    std::fs::create_dir_all(&dir).unwrap();
    // A realm of its own: the database outlives this run and is shared with other tests.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let realm = format!("demo-{}-{nanos}", std::process::id());
    let mut rep: Value = serde_json::from_str(EXAMPLE_REALM).unwrap();
    rep["realm"] = Value::String(realm.clone());
    // Lock-out on, so that the end of the test can check that both nodes count together.
    rep["bruteForceProtected"] = true.into();
    rep["failureFactor"] = 3.into();
    rep["waitIncrementSeconds"] = 60.into();
    rep["maxFailureWaitSeconds"] = 900.into();
    let file = dir.join("realm.json");
    std::fs::write(&file, serde_json::to_vec(&rep).unwrap()).unwrap();
    let file = file.to_str().unwrap();

    // Both nodes start the way a deployment starts them: same configuration, same import.
    let a = start_node(file, &dir.join("a"), &pg);
    let b = start_node(file, &dir.join("b"), &pg);
    let issuer = format!("{PUBLIC_BASE}/realms/{realm}");
    let c = Cluster {
        realm: realm.clone(),
        issuer: issuer.clone(),
        a,
        b,
    };
    let (a, b) = (&c.a, &c.b);

    // The same discovery document and the same keys from both.
    let discovery = |n: &Node| format!("{}/realms/{realm}/.well-known/openid-configuration", n.url);
    let (da, db) = (
        c.get_json(&discovery(a)).await,
        c.get_json(&discovery(b)).await,
    );
    assert_eq!(da["issuer"], c.issuer.as_str());
    assert_eq!(da, db, "the nodes describe different providers");
    let (ja, jb) = (
        c.get_json(&c.oidc(a, "certs")).await,
        c.get_json(&c.oidc(b, "certs")).await,
    );
    assert!(
        !ja["keys"].as_array().unwrap().is_empty(),
        "no published keys: {ja}"
    );
    assert_eq!(ja, jb, "the nodes publish different JWKS");

    // Authorization request on A, login form posted to B (its action is relative).
    let mut browser = Browser::new();
    let (verifier, challenge) = pkce();
    let form = browser
        .open_login(&c.auth_url(a, &challenge, "st4te", ""))
        .await;
    assert!(form.action.starts_with('/'), "form action {}", form.action);
    let res = browser.submit_login(&b.url, &form, "alice", "alice").await;
    let cb = callback(&res);
    assert!(cb.location.starts_with(REDIRECT), "{}", cb.location);
    assert_eq!(cb.get("state"), Some("st4te"));
    assert_eq!(cb.get("iss"), Some(c.issuer.as_str()));
    let code = cb.get("code").expect("no code").to_owned();

    // Code redeemed on A; the ID token A signed validates with the keys B publishes.
    let tokens = c.redeem(a, &code, &verifier).await;
    let http = RpHttp::new();
    let jwks_b =
        CoreJsonWebKeySet::fetch_async(&JsonWebKeySetUrl::new(c.oidc(b, "certs")).unwrap(), &http)
            .await
            .unwrap();
    let verifier_b = CoreIdTokenVerifier::new_public_client(
        ClientId::new("demo-app".into()),
        IssuerUrl::new(c.issuer.clone()).unwrap(),
        jwks_b,
    )
    .set_allowed_algs([CoreJwsSigningAlgorithm::EcdsaP256Sha256]);
    let id_token: CoreIdToken = str_of(&tokens, "id_token").parse().unwrap();
    let claims = id_token
        .claims(&verifier_b, &Nonce::new("n0nce".into()))
        .unwrap_or_else(|e| panic!("ID token from A does not validate with B's JWKS: {e:?}"));
    let sub = claims.subject().as_str().to_owned();

    // Userinfo on B with A's access token.
    let res = http_client()
        .get(c.oidc(b, "userinfo"))
        .bearer_auth(str_of(&tokens, "access_token"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let info: Value = res.json().await.unwrap();
    assert_eq!(info["sub"], sub.as_str());
    assert_eq!(info["preferred_username"], "alice");
    assert_eq!(info["email"], "alice@example.org");

    // Refresh on A, then the new refresh token on B.
    let rt0 = str_of(&tokens, "refresh_token").to_owned();
    let (status, r1) = c.refresh(a, &rt0).await;
    assert_eq!(status, 200, "refresh on A: {r1}");
    let rt1 = str_of(&r1, "refresh_token").to_owned();
    assert_ne!(rt1, rt0);
    let (status, r2) = c.refresh(b, &rt1).await;
    assert_eq!(status, 200, "refresh on B with A's new token: {r2}");
    let rt2 = str_of(&r2, "refresh_token").to_owned();
    assert_ne!(rt2, rt1);
    let at2 = str_of(&r2, "access_token").to_owned();

    // Introspection on A of what B issued.
    let i = c.introspect(a, &at2).await;
    assert_eq!(i["active"], true, "{i}");
    assert_eq!(i["sub"], sub.as_str(), "{i}");
    assert_eq!(i["client_id"], "demo-app", "{i}");

    // The token B rotated out is a replay on A, and the family A ends is ended on B too.
    // (Refresh tokens are checked by using them: introspection shows them only to their
    // own client, and demo-app is public.)
    assert_invalid_grant(
        c.refresh(a, &rt1).await,
        "replay on A of the token B rotated out",
    );
    assert_invalid_grant(
        c.refresh(b, &rt2).await,
        "newest refresh token on B after the replay on A",
    );
    let i = c.introspect(a, &at2).await;
    assert_eq!(
        i["active"], false,
        "access token of the revoked family on A: {i}"
    );

    // The SSO session (created by B) works on A: a silent authorization, redeemed on B.
    let (verifier, challenge) = pkce();
    let res = browser
        .get(&c.auth_url(a, &challenge, "s1lent", "&prompt=none"))
        .await;
    let cb = callback(&res);
    assert_eq!(cb.get("error"), None, "{}", cb.location);
    assert_eq!(cb.get("state"), Some("s1lent"));
    let code = cb
        .get("code")
        .expect("no code from the SSO session")
        .to_owned();
    let tokens = c.redeem(b, &code, &verifier).await;
    let session_cookie = browser
        .cookies
        .get("PFORTE_SESSION")
        .expect("no session cookie")
        .clone();

    // Logout on B with the ID token hint.
    let logout = format!(
        "{}?id_token_hint={}&post_logout_redirect_uri={}&state=bye",
        c.oidc(b, "logout"),
        str_of(&tokens, "id_token"),
        pforte_core::oauth::urlencode(POST_LOGOUT),
    );
    let res = browser.get(&logout).await;
    let back = callback(&res);
    assert_eq!(back.location, format!("{POST_LOGOUT}?state=bye"));
    assert!(
        !browser.cookies.contains_key("PFORTE_SESSION"),
        "session cookie not cleared"
    );

    // The session is unusable on A, even with the old cookie.
    browser
        .cookies
        .insert("PFORTE_SESSION".into(), session_cookie);
    let (_, challenge) = pkce();
    let res = browser
        .get(&c.auth_url(a, &challenge, "after", "&prompt=none"))
        .await;
    let cb = callback(&res);
    assert!(cb.location.starts_with(REDIRECT), "{}", cb.location);
    assert_eq!(cb.get("error"), Some("login_required"), "{}", cb.location);
    assert_eq!(cb.get("state"), Some("after"));
    assert_eq!(cb.get("code"), None);
    // ...and so are its tokens.
    let i = c.introspect(a, str_of(&tokens, "access_token")).await;
    assert_eq!(
        i["active"], false,
        "access token outlived the logout on A: {i}"
    );
    assert_invalid_grant(
        c.refresh(a, str_of(&tokens, "refresh_token")).await,
        "refresh on A after logout on B",
    );

    // An access token revoked by itself (RFC 7009) on A is refused on B.
    let mut browser = Browser::new();
    let (verifier, challenge) = pkce();
    let form = browser
        .open_login(&c.auth_url(b, &challenge, "again", ""))
        .await;
    let res = browser.submit_login(&b.url, &form, "alice", "alice").await;
    let code = callback(&res).get("code").expect("no code").to_owned();
    let tokens = c.redeem(a, &code, &verifier).await;
    let at = str_of(&tokens, "access_token");
    let userinfo_on_b = || {
        http_client()
            .get(c.oidc(b, "userinfo"))
            .bearer_auth(at)
            .send()
    };
    assert_eq!(userinfo_on_b().await.unwrap().status(), 200);
    let res = http_client()
        .post(c.oidc(a, "revoke"))
        .form(&[("token", at), ("client_id", "demo-app")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(userinfo_on_b().await.unwrap().status(), 401);
    assert_eq!(c.introspect(b, at).await["active"], false);

    // The lock-out counts failures on both nodes together: two wrong passwords on A and
    // one on B reach the factor of 3, so the right password is refused on A.
    let mut browser = Browser::new();
    let (_, challenge) = pkce();
    let form = browser
        .open_login(&c.auth_url(a, &challenge, "guess", ""))
        .await;
    for node in [a, a, b] {
        let res = browser
            .submit_login(&node.url, &form, "alice", "wrong")
            .await;
        assert_eq!(res.status(), 200, "a wrong password on {}", node.url);
        assert!(res.headers().get("location").is_none());
    }
    let res = browser.submit_login(&a.url, &form, "alice", "alice").await;
    assert_eq!(res.status(), 200, "the locked account logged in on A");
    assert!(res.headers().get("location").is_none());
    let page = res.text().await.unwrap();
    assert!(page.contains("Invalid username or password."), "{page}");
}
