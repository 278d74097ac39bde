//! Attacks on the browser side: the login form (CSRF, browser binding, wrong credentials,
//! lock-out, languages), logout with foreign redirect URIs, security headers on pages and
//! cookie attributes.

use std::collections::BTreeMap;
use std::sync::Arc;

use pforte_core::Store;
use pforte_core::secret::PasswordCost;
use pforte_jose::seal::MasterKey;
use pforte_server::{AppState, ServerConfig};
use pforte_testkit::{
    Browser, LoginForm, TestServer, TestServerOptions, callback, parse_login_form, pkce,
};
use reqwest::header::{ACCEPT_LANGUAGE, CONTENT_TYPE, COOKIE, HeaderMap};
use reqwest::{RequestBuilder, Response};
use serde_json::{Value, json};

use crate::code_flow::{REDIRECT, auth_url, login};
use crate::negative_authorize::{
    assert_error_page, assert_error_redirect, attack_realm, attack_server, attack_server_with,
    authorize_url, redeem_ok, refresh, s256, set_alice_enabled, set_cookies,
};

const INVALID_EN: &str = "Invalid username or password.";
const INVALID_DE: &str = "Ungültiger Benutzername oder Passwort.";

/// Sends `req` with the browser's cookies (for requests that need extra headers; the
/// response's cookies are not remembered).
async fn send(browser: &Browser, req: RequestBuilder) -> Response {
    let cookies = browser
        .cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    req.header(COOKIE, cookies).send().await.unwrap()
}

fn client() -> reqwest::Client {
    pforte_testkit::http_client()
}

/// True when the browser has an SSO session: prompt=none answers with a code.
async fn has_session(server: &TestServer, browser: &mut Browser) -> bool {
    let (_, challenge) = pkce();
    let res = browser
        .get(&auth_url(server, &challenge, "&prompt=none"))
        .await;
    let cb = callback(&res);
    if cb.get("error") == Some("login_required") {
        return false;
    }
    assert!(cb.get("code").is_some(), "{}", cb.location);
    true
}

fn session_cookie_set(res: &Response) -> bool {
    set_cookies(res)
        .iter()
        .any(|c| c.starts_with("PFORTE_SESSION=") && !c.contains("Max-Age=0"))
}

async fn open_demo_login(server: &TestServer, browser: &mut Browser, extra: &str) -> LoginForm {
    let (_, challenge) = pkce();
    browser
        .open_login(&auth_url(server, &challenge, extra))
        .await
}

// ---------------------------------------------------------------------------------------
// Logout
// ---------------------------------------------------------------------------------------

/// other-app has no `post.logout.redirect.uris`: like Keycloak, pforte lets it return to its
/// redirect URIs, exactly, and nowhere else.
#[tokio::test]
async fn logout_of_a_client_without_post_logout_uris_returns_only_to_its_redirect_uris() {
    let server = attack_server().await;
    let mut browser = Browser::new();
    let logout = server.url("/realms/demo/protocol/openid-connect/logout");
    let url = |uri: &str| {
        format!(
            "{logout}?client_id=other-app&post_logout_redirect_uri={}&state=s%201",
            pforte_core::oauth::urlencode(uri)
        )
    };
    let res = browser.get(&url(REDIRECT)).await;
    assert_eq!(res.status(), 302);
    assert_eq!(
        res.headers()["location"].to_str().unwrap(),
        format!("{REDIRECT}?state=s%201")
    );
    for uri in [
        "http://evil.example/",
        &format!("{REDIRECT}/"),
        &format!("{REDIRECT}?x=1"),
        "http://127.0.0.1:8082/",
    ] {
        let res = browser.get(&url(uri)).await;
        assert_error_page(res, 400).await;
    }
}

#[tokio::test]
async fn logout_to_an_unregistered_uri_is_an_error_page_and_keeps_the_session() {
    let server = attack_server().await;
    let mut browser = Browser::new();
    let (code, verifier) = login(&server, &mut browser).await;
    let tokens = redeem_ok(&server, &code, &verifier).await;
    let id_token = tokens["id_token"].as_str().unwrap();
    let logout = server.url("/realms/demo/protocol/openid-connect/logout");
    for uri in [
        "http://evil.example/",
        "http://127.0.0.1:8082/x",
        "http://127.0.0.1:8082",
        "http://127.0.0.1:8082/?next=http://evil.example/",
        REDIRECT, // a redirect URI, but not a post-logout one
    ] {
        let by_client = format!(
            "{logout}?client_id=demo-app&post_logout_redirect_uri={}&state=s",
            pforte_core::oauth::urlencode(uri)
        );
        let by_hint = format!(
            "{logout}?id_token_hint={id_token}&post_logout_redirect_uri={}&state=s",
            pforte_core::oauth::urlencode(uri)
        );
        for url in [by_client, by_hint] {
            let res = browser.get(&url).await;
            assert!(
                set_cookies(&res).is_empty(),
                "{uri}: {:?}",
                set_cookies(&res)
            );
            assert_error_page(res, 400).await;
        }
        // The same as a form POST.
        let res = browser
            .post_form(
                &logout,
                &[
                    ("id_token_hint", id_token),
                    ("post_logout_redirect_uri", uri),
                ],
            )
            .await;
        assert_error_page(res, 400).await;
    }
    assert!(
        has_session(&server, &mut browser).await,
        "a refused logout must not end the session"
    );
    let res = refresh(
        &server,
        "demo-app",
        tokens["refresh_token"].as_str().unwrap(),
        None,
    )
    .await;
    assert_eq!(res.status(), 200);

    // The control: the registered URI logs out and redirects.
    let res = browser
        .get(&format!(
            "{logout}?id_token_hint={id_token}&post_logout_redirect_uri={}&state=s",
            pforte_core::oauth::urlencode("http://127.0.0.1:8082/")
        ))
        .await;
    let cb = callback(&res);
    assert_eq!(cb.location, "http://127.0.0.1:8082/?state=s");
    assert!(!has_session(&server, &mut browser).await);
}

/// The hidden fields of the logout confirmation form (values without HTML entities).
fn confirm_form_fields(html: &str) -> Vec<(String, String)> {
    html.split("<input type=\"hidden\" name=\"")
        .skip(1)
        .filter_map(|rest| {
            let (name, rest) = rest.split_once('"')?;
            let value = rest.split_once("value=\"")?.1.split_once('"')?.0;
            Some((name.to_owned(), value.to_owned()))
        })
        .collect()
}

/// An ID token of another session (here: the same user in another browser) is no proof that
/// the request comes from this browser's session: a cross-site link with it must not log the
/// user out without asking (RP-Initiated Logout 1.0 §2; Keycloak asks too).
#[tokio::test]
async fn logout_with_the_id_token_of_another_session_asks_first() {
    let server = attack_server().await;
    let mut victim = Browser::new();
    let (code, verifier) = login(&server, &mut victim).await;
    let victim_tokens = redeem_ok(&server, &code, &verifier).await;
    let mut attacker = Browser::new();
    let (code, verifier) = login(&server, &mut attacker).await;
    let foreign = redeem_ok(&server, &code, &verifier).await;
    let foreign_hint = foreign["id_token"].as_str().unwrap();
    let logout = server.url("/realms/demo/protocol/openid-connect/logout");
    let post_logout = "http://127.0.0.1:8082/";

    let res = victim
        .get(&format!(
            "{logout}?id_token_hint={foreign_hint}&post_logout_redirect_uri={}&state=s",
            pforte_core::oauth::urlencode(post_logout)
        ))
        .await;
    assert_eq!(res.status(), 200);
    assert!(set_cookies(&res).is_empty(), "{:?}", set_cookies(&res));
    let page = res.text().await.unwrap();
    assert!(page.contains("id=\"kc-logout\""), "{page}");
    assert!(
        has_session(&server, &mut victim).await,
        "logged out without asking"
    );
    let res = refresh(
        &server,
        "demo-app",
        victim_tokens["refresh_token"].as_str().unwrap(),
        None,
    )
    .await;
    assert_eq!(res.status(), 200, "the victim's tokens must survive");

    // Confirmed by the user: logged out, and sent to the URI the hint's client registered.
    let fields = confirm_form_fields(&page);
    assert!(
        fields
            .iter()
            .any(|(k, v)| k == "id_token_hint" && v == foreign_hint),
        "{fields:?}"
    );
    let form: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (&**k, &**v)).collect();
    let res = victim.post_form(&logout, &form).await;
    assert_eq!(callback(&res).location, format!("{post_logout}?state=s"));
    assert!(!has_session(&server, &mut victim).await);

    // The control: the hint of the browser's own session logs out at once.
    let own = attacker_logout_url(&logout, foreign_hint, post_logout);
    let res = attacker.get(&own).await;
    assert_eq!(callback(&res).location, format!("{post_logout}?state=s"));
    assert!(!has_session(&server, &mut attacker).await);
}

/// An ID token alone, without the browser's cookie, ends no session: old ID tokens turn up
/// in logs and histories (the hint travels in logout URLs), and anyone could log their user
/// out with a plain HTTP request, expired hints included.
#[tokio::test]
async fn a_hint_without_the_browsers_cookie_ends_no_session() {
    let server = attack_server().await;
    let mut victim = Browser::new();
    let tokens = login_tokens(&server, &mut victim).await;
    let hint = tokens["id_token"].as_str().unwrap();
    let logout = server.url("/realms/demo/protocol/openid-connect/logout");
    let post_logout = "http://127.0.0.1:8082/";

    let res = client()
        .get(attacker_logout_url(&logout, hint, post_logout))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success() || res.status().is_redirection());
    let res = client()
        .post(&logout)
        .form(&[
            ("id_token_hint", hint),
            ("post_logout_redirect_uri", post_logout),
            ("resent", "1"),
        ])
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success() || res.status().is_redirection());
    assert!(
        has_session(&server, &mut victim).await,
        "a hint without the cookie ended the session"
    );
}

/// A client's page that POSTs the logout is another site, so the browser leaves out the
/// SameSite=Lax session cookie: pforte answers with its own page, which sends the same
/// parameters again (same-site, cookie included), and only then ends the session.
#[tokio::test]
async fn a_cross_site_post_logout_is_sent_again_with_the_cookie() {
    let server = attack_server().await;
    let mut browser = Browser::new();
    let tokens = login_tokens(&server, &mut browser).await;
    let hint = tokens["id_token"].as_str().unwrap();
    let logout = server.url("/realms/demo/protocol/openid-connect/logout");
    let post_logout = "http://127.0.0.1:8082/";

    // The cross-site POST: no cookies.
    let res = client()
        .post(&logout)
        .form(&[
            ("id_token_hint", hint),
            ("post_logout_redirect_uri", post_logout),
            ("state", "s"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let page = res.text().await.unwrap();
    assert!(
        page.contains("id=\"kc-form-post\"")
            && page.contains("action=\"/realms/demo/protocol/openid-connect/logout\""),
        "{page}"
    );
    assert!(has_session(&server, &mut browser).await, "nothing ends yet");
    let fields = confirm_form_fields(&page);
    for (k, v) in [
        ("id_token_hint", hint),
        ("post_logout_redirect_uri", post_logout),
        ("state", "s"),
        ("resent", "1"),
    ] {
        assert!(
            fields.iter().any(|(fk, fv)| fk == k && fv == v),
            "{k} missing in {fields:?}"
        );
    }

    // The page's form, sent by the browser from pforte's own origin: the cookie comes along.
    let form: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (&**k, &**v)).collect();
    let res = browser.post_form(&logout, &form).await;
    assert_eq!(callback(&res).location, format!("{post_logout}?state=s"));
    assert!(!has_session(&server, &mut browser).await);
}

fn attacker_logout_url(logout: &str, hint: &str, post_logout: &str) -> String {
    format!(
        "{logout}?id_token_hint={hint}&post_logout_redirect_uri={}&state=s",
        pforte_core::oauth::urlencode(post_logout)
    )
}

// ---------------------------------------------------------------------------------------
// The login form
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn login_without_csrf_token_is_refused() {
    let server = attack_server().await;
    let mut browser = Browser::new();
    let form = open_demo_login(&server, &mut browser, "").await;
    let url = format!("{}{}", server.base_url, form.action);
    for fields in [
        vec![("username", "alice"), ("password", "alice")],
        vec![
            ("username", "alice"),
            ("password", "alice"),
            ("csrf_token", ""),
        ],
    ] {
        let res = browser.post_form(&url, &fields).await;
        assert!(!session_cookie_set(&res), "{:?}", set_cookies(&res));
        assert_error_page(res, 400).await;
    }
    assert!(!has_session(&server, &mut browser).await);
}

#[tokio::test]
async fn login_with_wrong_csrf_token_is_refused() {
    let server = attack_server().await;
    let mut browser = Browser::new();
    let form = open_demo_login(&server, &mut browser, "").await;
    // Another flow's valid token is as wrong as a made-up one.
    let mut other = Browser::new();
    let other_form = open_demo_login(&server, &mut other, "").await;
    let url = format!("{}{}", server.base_url, form.action);
    let flipped = format!("{}A", &form.csrf[..form.csrf.len() - 1]);
    let wrong = if flipped == form.csrf {
        format!("{}B", &form.csrf[..form.csrf.len() - 1])
    } else {
        flipped
    };
    for csrf in [wrong.as_str(), other_form.csrf.as_str(), "x"] {
        let res = browser
            .post_form(
                &url,
                &[
                    ("username", "alice"),
                    ("password", "alice"),
                    ("csrf_token", csrf),
                ],
            )
            .await;
        assert!(!session_cookie_set(&res));
        assert_error_page(res, 400).await;
    }
    assert!(!has_session(&server, &mut browser).await);
    // The control: the right token logs in.
    let res = browser
        .submit_login(&server.base_url, &form, "alice", "alice")
        .await;
    assert!(callback(&res).get("code").is_some());
}

#[tokio::test]
async fn login_from_another_browser_is_refused() {
    let server = attack_server().await;
    let mut victim = Browser::new();
    let form = open_demo_login(&server, &mut victim, "").await;
    // A browser without any cookie, and one with its own browser cookie.
    let mut bare = Browser::new();
    let mut other = Browser::new();
    open_demo_login(&server, &mut other, "").await;
    for attacker in [&mut bare, &mut other] {
        let res = attacker
            .submit_login(&server.base_url, &form, "alice", "alice")
            .await;
        assert!(!session_cookie_set(&res));
        assert_error_page(res, 400).await;
    }
    // The flow still belongs to the browser that started it.
    let res = victim
        .submit_login(&server.base_url, &form, "alice", "alice")
        .await;
    assert!(callback(&res).get("code").is_some());
}

/// A login page with the values that legitimately differ between two answers replaced:
/// the flow id, the CSRF token, the style nonce and the echoed user name.
fn normalize(body: &str, username: &str) -> String {
    let form = parse_login_form(body);
    let flow = form.action.split_once("flow=").unwrap().1.to_owned();
    let mut out = body
        .replace(&flow, "FLOW")
        .replace(&form.csrf, "CSRF")
        .replace(&format!("value=\"{username}\""), "value=\"USER\"");
    while let Some(at) = out.find("nonce=\"") {
        let start = at + "nonce=\"".len();
        let end = start + out[start..].find('"').unwrap();
        out.replace_range(at..=end, "NONCE");
    }
    out
}

fn normalize_headers(h: &HeaderMap) -> BTreeMap<String, String> {
    h.iter()
        .filter(|(k, _)| !matches!(k.as_str(), "date" | "content-length"))
        .map(|(k, v)| {
            let v = v.to_str().unwrap();
            let v = match v.find("'nonce-") {
                Some(i) => {
                    let end = i + 1 + v[i + 1..].find('\'').unwrap();
                    format!("{}NONCE{}", &v[..i], &v[end + 1..])
                }
                None => v.to_owned(),
            };
            (k.as_str().to_owned(), v)
        })
        .collect()
}

/// A failed login answer: 200, the form again, the one message.
async fn failed_login(
    res: Response,
    message: &str,
    username: &str,
) -> (BTreeMap<String, String>, String) {
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("location").is_none());
    assert!(!session_cookie_set(&res));
    let headers = normalize_headers(res.headers());
    let body = res.text().await.unwrap();
    assert!(body.contains("id=\"input-error\""), "{body}");
    assert!(body.contains(message), "{body}");
    let error_div = &body[body.find("id=\"input-error\"").unwrap()..];
    let text = &error_div[error_div.find('>').unwrap() + 1..error_div.find("</div>").unwrap()];
    assert_eq!(text, message);
    (headers, normalize(&body, username))
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_the_same_answer() {
    let server = attack_server().await;
    let mut answers = Vec::new();
    for (user, password) in [
        ("alice", "wrong"),
        ("nobody", "alice"),
        ("alice@example.org", "wrong"),
    ] {
        let mut browser = Browser::new();
        let form = open_demo_login(&server, &mut browser, "").await;
        let res = browser
            .submit_login(&server.base_url, &form, user, password)
            .await;
        answers.push(failed_login(res, INVALID_EN, user).await);
    }
    assert_eq!(
        answers[0], answers[1],
        "existing and unknown users must be indistinguishable"
    );
    assert_eq!(answers[0], answers[2]);
}

#[tokio::test]
async fn invalid_credentials_message_is_german_for_ui_locales_de() {
    let server = attack_server().await;
    let mut browser = Browser::new();
    let form = open_demo_login(&server, &mut browser, "&ui_locales=de").await;
    assert!(form.html.contains("lang=\"de\""), "{}", form.html);
    let res = browser
        .submit_login(&server.base_url, &form, "alice", "wrong")
        .await;
    let (_, body) = failed_login(res, INVALID_DE, "alice").await;
    assert!(!body.contains(INVALID_EN));
    assert!(body.contains("lang=\"de\""));
}

#[tokio::test]
async fn invalid_credentials_message_is_german_for_accept_language_de() {
    let server = attack_server().await;
    let mut browser = Browser::new();
    let (_, challenge) = pkce();
    let res = browser.get(&auth_url(&server, &challenge, "")).await; // sets the browser cookie
    assert_eq!(res.status(), 200);
    let res = send(
        &browser,
        client()
            .get(auth_url(&server, &challenge, ""))
            .header(ACCEPT_LANGUAGE, "de-DE,de;q=0.9,en;q=0.5"),
    )
    .await;
    let html = res.text().await.unwrap();
    assert!(html.contains("lang=\"de\""), "{html}");
    let form = parse_login_form(&html);
    let res = send(
        &browser,
        client()
            .post(format!("{}{}", server.base_url, form.action))
            .header(ACCEPT_LANGUAGE, "de")
            .form(&[
                ("username", "nobody"),
                ("password", "x"),
                ("csrf_token", form.csrf.as_str()),
            ]),
    )
    .await;
    let (_, body) = failed_login(res, INVALID_DE, "nobody").await;
    assert!(!body.contains(INVALID_EN));
    // English for English.
    let res = send(
        &browser,
        client()
            .post(format!("{}{}", server.base_url, form.action))
            .header(ACCEPT_LANGUAGE, "en-US")
            .form(&[
                ("username", "nobody"),
                ("password", "x"),
                ("csrf_token", form.csrf.as_str()),
            ]),
    )
    .await;
    failed_login(res, INVALID_EN, "nobody").await;
}

fn lockout_patch() -> Value {
    json!({
        "bruteForceProtected": true,
        "failureFactor": 3,
        "waitIncrementSeconds": 60,
        "maxFailureWaitSeconds": 900
    })
}

#[tokio::test]
async fn lockout_is_the_same_for_existing_and_unknown_users() {
    let server = attack_server_with(lockout_patch()).await;
    let mut answers = Vec::new();
    for user in ["alice", "mallory"] {
        let mut browser = Browser::new();
        let form = open_demo_login(&server, &mut browser, "").await;
        let mut failures = Vec::new();
        for _ in 0..3 {
            let res = browser
                .submit_login(&server.base_url, &form, user, "wrong")
                .await;
            failures.push(failed_login(res, INVALID_EN, user).await);
        }
        // Locked: the right password (alice's) fails with the same answer.
        let res = browser
            .submit_login(&server.base_url, &form, user, "alice")
            .await;
        let locked = failed_login(res, INVALID_EN, user).await;
        assert_eq!(
            locked, failures[0],
            "{user}: a lock-out must look like a wrong password"
        );
        assert!(!has_session(&server, &mut browser).await);
        answers.push(locked);
    }
    assert_eq!(
        answers[0], answers[1],
        "lock-out must not reveal whether the account exists"
    );
}

/// Checks passwords only once every attempt of a burst is waiting at the check. With
/// `right_waits_for` set, the right password is confirmed only after that many failures
/// have been recorded: the right guess of a burst is judged last.
struct BurstCheck {
    barrier: Arc<tokio::sync::Barrier>,
    store: Arc<pforte_store::AnyStore>,
    right_waits_for: Option<u32>,
}

impl pforte_core::login::PasswordCheck for BurstCheck {
    async fn verify(
        &self,
        password: String,
        phc: Option<String>,
    ) -> pforte_core::login::PasswordVerdict {
        use pforte_core::login::PasswordVerdict;
        self.barrier.wait().await;
        let ok = phc.is_some_and(|h| pforte_core::secret::verify_password(&password, &h));
        if ok && let Some(n) = self.right_waits_for {
            for _ in 0..400 {
                let f = self
                    .store
                    .get_login_failures("demo", "user:alice")
                    .await
                    .unwrap();
                if f.count >= n {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }
        if ok {
            PasswordVerdict::Match
        } else {
            PasswordVerdict::NoMatch
        }
    }
}

/// Six attempts at once on one login form, each waiting at the password check until all
/// six are there; what each one ended with.
async fn login_burst(
    server: &TestServer,
    passwords: [&str; 6],
    right_waits_for: Option<u32>,
) -> Vec<&'static str> {
    use pforte_core::login::{LoginError, submit};
    let mut browser = Browser::new();
    let form = open_demo_login(server, &mut browser, "").await;
    let flow_id = form.action.split("flow=").nth(1).unwrap().to_owned();
    let browser_cookie = browser.cookies["PFORTE_BROWSER"].clone();
    let realm = server.store.get_realm("demo").await.unwrap().unwrap();
    let issuer = server.url("/realms/demo");
    let rng = pforte_server::system_rng();
    let now = pforte_server::Clock::now(&pforte_server::SystemClock);
    let check = BurstCheck {
        barrier: Arc::new(tokio::sync::Barrier::new(passwords.len())),
        store: server.store.clone(),
        right_waits_for,
    };
    let attempt = |password: &'static str| {
        submit(
            &*server.store,
            &realm,
            &issuer,
            &flow_id,
            Some(&browser_cookie),
            None,
            Some(&form.csrf),
            "alice",
            password,
            &check,
            now,
            &*rng,
        )
    };
    let [p0, p1, p2, p3, p4, p5] = passwords.map(|p| -> &'static str {
        if p == "alice" { "alice" } else { "wrong" }
    });
    let (a, b, c, d, e, f) = tokio::join!(
        attempt(p0),
        attempt(p1),
        attempt(p2),
        attempt(p3),
        attempt(p4),
        attempt(p5)
    );
    [a, b, c, d, e, f]
        .iter()
        .map(|r| match r {
            Ok(_) => "logged in",
            Err(LoginError::Credentials { .. }) => "refused",
            Err(LoginError::Flow(_)) => "flow already used",
            Err(_) => "other error",
        })
        .collect()
}

/// The lock-out bounds guesses, not bursts: guesses sent all at once all read the same
/// unlocked count before their (slow) password checks; the right one, judged after the
/// others have locked the account (failureFactor 3), must be refused all the same.
#[tokio::test]
async fn parallel_guesses_cannot_outrun_the_lockout() {
    let server = attack_server_with(lockout_patch()).await;
    let outcomes = login_burst(
        &server,
        ["wrong", "wrong", "wrong", "wrong", "wrong", "alice"],
        Some(5),
    )
    .await;
    assert_eq!(
        outcomes, ["refused"; 6],
        "the right guess got through the lock-out"
    );
}

/// Only failures count: logins with the right password at the same moment (one account on
/// several devices) do not lock each other out. (One form here, so one of them logs in and
/// the others find it used.)
#[tokio::test]
async fn parallel_right_logins_do_not_lock_the_account() {
    let server = attack_server_with(lockout_patch()).await;
    let outcomes = login_burst(&server, ["alice"; 6], None).await;
    let count = |what| outcomes.iter().filter(|o| **o == what).count();
    assert_eq!(count("logged in"), 1, "{outcomes:?}");
    assert_eq!(count("flow already used"), 5, "{outcomes:?}");
}

#[tokio::test]
async fn fewer_failures_than_the_factor_do_not_lock() {
    let server = attack_server_with(lockout_patch()).await;
    let mut browser = Browser::new();
    let form = open_demo_login(&server, &mut browser, "").await;
    for _ in 0..2 {
        let res = browser
            .submit_login(&server.base_url, &form, "bob", "wrong")
            .await;
        failed_login(res, INVALID_EN, "bob").await;
    }
    let res = browser
        .submit_login(&server.base_url, &form, "bob", "bob")
        .await;
    assert!(callback(&res).get("code").is_some());
}

#[tokio::test]
async fn lockout_counts_the_account_not_the_name_it_was_typed_as() {
    let server = attack_server_with(lockout_patch()).await;
    let mut browser = Browser::new();
    let form = open_demo_login(&server, &mut browser, "").await;
    // Three failures for alice's account, spread over her username and her email address.
    for user in ["alice", "alice@example.org", "ALICE"] {
        let res = browser
            .submit_login(&server.base_url, &form, user, "wrong")
            .await;
        failed_login(res, INVALID_EN, user).await;
    }
    for user in ["alice", "alice@example.org"] {
        let res = browser
            .submit_login(&server.base_url, &form, user, "alice")
            .await;
        failed_login(res, INVALID_EN, user).await;
    }
    assert!(!has_session(&server, &mut browser).await);
}

#[tokio::test]
async fn login_hint_and_username_are_escaped() {
    let server = attack_server().await;
    let mut browser = Browser::new();
    let evil = "\"><script>alert(1)</script>";
    let form = open_demo_login(
        &server,
        &mut browser,
        &format!("&login_hint={}", pforte_core::oauth::urlencode(evil)),
    )
    .await;
    assert!(!form.html.contains("<script>"), "{}", form.html);
    let res = browser
        .submit_login(&server.base_url, &form, evil, "x")
        .await;
    let body = res.text().await.unwrap();
    assert!(!body.contains("<script>"), "{body}");
    assert!(body.contains(INVALID_EN));
}

// ---------------------------------------------------------------------------------------
// Security headers and cookies
// ---------------------------------------------------------------------------------------

fn assert_page_headers(what: &str, res: &Response) {
    let h = res.headers();
    let get = |name: &str| {
        h.get(name)
            .unwrap_or_else(|| panic!("{what}: no {name}"))
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert!(get("content-type").starts_with("text/html"), "{what}");
    let csp = get("content-security-policy");
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    assert!(csp.contains("default-src 'none'"), "{what}: {csp}");
    assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
    assert_eq!(get("x-frame-options"), "DENY", "{what}");
    assert_eq!(get("x-content-type-options"), "nosniff", "{what}");
    let referrer = get("referrer-policy");
    assert!(
        [
            "no-referrer",
            "same-origin",
            "strict-origin",
            "strict-origin-when-cross-origin"
        ]
        .contains(&referrer.as_str()),
        "{what}: {referrer}"
    );
    assert_eq!(get("cache-control"), "no-store", "{what}");
}

#[tokio::test]
async fn html_pages_carry_security_headers() {
    let server = attack_server().await;
    let mut browser = Browser::new();
    let (_, challenge) = pkce();
    let res = browser.get(&auth_url(&server, &challenge, "")).await;
    assert_eq!(res.status(), 200);
    assert_page_headers("login page", &res);
    let form = parse_login_form(&res.text().await.unwrap());

    let res = browser
        .submit_login(&server.base_url, &form, "alice", "wrong")
        .await;
    assert_eq!(res.status(), 200);
    assert_page_headers("login page with an error", &res);

    let res = browser
        .get(&authorize_url(
            &server,
            "demo-app",
            "http://evil.example/",
            &s256(&challenge),
        ))
        .await;
    assert_eq!(res.status(), 400);
    assert_page_headers("error page", &res);

    let res = browser
        .post_form(
            &format!("{}{}", server.base_url, form.action),
            &[("username", "alice")],
        )
        .await;
    assert_eq!(res.status(), 400);
    assert_page_headers("login error page", &res);

    // Logged in, a logout without a hint asks for confirmation: a page, too.
    let res = browser
        .submit_login(&server.base_url, &form, "alice", "alice")
        .await;
    assert!(callback(&res).get("code").is_some());
    let res = browser
        .get(&server.url("/realms/demo/protocol/openid-connect/logout"))
        .await;
    assert_eq!(res.status(), 200);
    assert_page_headers("logout confirmation", &res);
}

/// The attributes of the cookie `name` among a response's `Set-Cookie` headers.
fn cookie_attrs(res: &Response, name: &str) -> Vec<String> {
    let all = set_cookies(res);
    let c = all
        .iter()
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie in {all:?}"));
    c.split(';').skip(1).map(|a| a.trim().to_owned()).collect()
}

async fn cookies_of_a_login(base_url: &str) -> (Vec<String>, Vec<String>) {
    let mut browser = Browser::new();
    let (_, challenge) = pkce();
    let url = format!(
        "{base_url}/realms/demo/protocol/openid-connect/auth?client_id=demo-app&response_type=code&scope=openid&redirect_uri={}&state=s{}",
        pforte_core::oauth::urlencode(REDIRECT),
        s256(&challenge)
    );
    let res = browser.get(&url).await;
    assert_eq!(res.status(), 200);
    let browser_cookie = cookie_attrs(&res, "PFORTE_BROWSER");
    let form = parse_login_form(&res.text().await.unwrap());
    let res = browser
        .submit_login(base_url, &form, "alice", "alice")
        .await;
    assert!(callback(&res).get("code").is_some());
    let session_cookie = cookie_attrs(&res, "PFORTE_SESSION");
    (browser_cookie, session_cookie)
}

fn assert_cookie(attrs: &[String], secure: bool) {
    assert!(attrs.iter().any(|a| a == "HttpOnly"), "{attrs:?}");
    assert!(attrs.iter().any(|a| a == "SameSite=Lax"), "{attrs:?}");
    assert!(attrs.iter().any(|a| a == "Path=/realms/demo/"), "{attrs:?}");
    assert_eq!(attrs.iter().any(|a| a == "Secure"), secure, "{attrs:?}");
}

#[tokio::test]
async fn cookies_are_httponly_and_samesite_lax_in_dev_mode() {
    let server = attack_server().await;
    let (browser_cookie, session_cookie) = cookies_of_a_login(&server.base_url).await;
    // TestServer runs in dev mode on http://127.0.0.1: no `Secure`, or the browser
    // would drop the cookies.
    assert_cookie(&browser_cookie, false);
    assert_cookie(&session_cookie, false);
}

#[tokio::test]
async fn cookies_are_secure_outside_dev_mode() {
    // TestServerOptions cannot switch dev mode off, so this starts a second node on the
    // test server's database, with the same master key and dev mode off.
    let key = [42u8; 32];
    let server = TestServer::start_with(TestServerOptions {
        realms: vec![attack_realm(json!({}))],
        master_key: Some(MasterKey::from(key)),
        ..Default::default()
    })
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    let mut config = ServerConfig::new(base_url.clone());
    assert!(!config.dev_mode);
    config.password_cost = PasswordCost::MINIMUM;
    config.login_failure_delay = std::time::Duration::from_millis(10);
    let state = AppState::new(Arc::clone(&server.store), config, MasterKey::from(key));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let node = tokio::spawn(pforte_server::serve(
        listener,
        state,
        pforte_testkit::shared_workers(),
        async {
            let _ = rx.await;
        },
    ));

    let (browser_cookie, session_cookie) = cookies_of_a_login(&base_url).await;
    assert_cookie(&browser_cookie, true);
    assert_cookie(&session_cookie, true);

    let _ = tx.send(());
    node.await.unwrap().unwrap();
}

#[tokio::test]
async fn malformed_login_posts_are_4xx() {
    let server = attack_server().await;
    let mut browser = Browser::new();
    let form = open_demo_login(&server, &mut browser, "").await;
    let url = format!("{}{}", server.base_url, form.action);
    // Not a form.
    let res = send(
        &browser,
        client()
            .post(&url)
            .header(CONTENT_TYPE, "application/json")
            .body(r#"{"username":"alice","password":"alice"}"#),
    )
    .await;
    assert_error_page(res, 400).await;
    // Duplicate fields.
    let res = send(
        &browser,
        client()
            .post(&url)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(format!(
                "username=alice&username=bob&password=alice&csrf_token={}",
                form.csrf
            )),
    )
    .await;
    assert_error_page(res, 400).await;
    // A 100 KB password, an unknown flow, no flow.
    let big = "p".repeat(100 * 1024);
    let res = browser
        .post_form(
            &url,
            &[
                ("username", "alice"),
                ("password", &big),
                ("csrf_token", &form.csrf),
            ],
        )
        .await;
    assert!(res.status().is_client_error(), "{}", res.status());
    let res = browser
        .post_form(
            &server.url("/realms/demo/login-actions/authenticate?flow=nope"),
            &[
                ("username", "alice"),
                ("password", "alice"),
                ("csrf_token", &form.csrf),
            ],
        )
        .await;
    assert_error_page(res, 400).await;
    let res = browser
        .post_form(
            &server.url("/realms/demo/login-actions/authenticate"),
            &[
                ("username", "alice"),
                ("password", "alice"),
                ("csrf_token", &form.csrf),
            ],
        )
        .await;
    assert_error_page(res, 400).await;
    // Nothing above logged anyone in.
    assert!(!has_session(&server, &mut browser).await);
}

/// The SSO session is reused only as the request allows: `prompt=login` (and
/// `select_account`, as in Keycloak) and `max_age=0`
/// always ask for the password again, a `max_age` the login is within does not. Reusing it
/// counts as activity for the idle timeout.
#[tokio::test]
async fn sso_reuse_honours_prompt_login_and_max_age_and_keeps_the_session_alive() {
    let server = attack_server().await;
    let mut browser = Browser::new();
    let sid = login_and_sid(&server, &mut browser).await;
    for extra in ["&prompt=login", "&prompt=select_account", "&max_age=0"] {
        let res = open_demo_login_response(&server, &mut browser, extra).await;
        assert_eq!(res.status(), 200, "{extra}");
        let page = res.text().await.unwrap();
        assert!(page.contains("id=\"kc-login\""), "{extra}: {page}");
    }
    let (_, challenge) = pkce();
    let res = browser
        .get(&auth_url(&server, &challenge, "&max_age=3600"))
        .await;
    assert!(
        callback(&res).get("code").is_some(),
        "{}",
        callback(&res).location
    );

    // Last seen 1700 s ago (the idle timeout is 1800 s): an SSO login now renews it.
    let now = pforte_server::Clock::now(&pforte_server::SystemClock);
    server.store.touch_session(&sid, now - 1700).await.unwrap();
    assert!(has_session(&server, &mut browser).await);
    let session = server.store.get_session(&sid).await.unwrap().unwrap();
    assert!(
        session.last_seen >= now,
        "last_seen {} not renewed (now {now})",
        session.last_seen
    );
}

/// A user disabled after logging in: their SSO session no longer answers (prompt=none says
/// `login_required` instead of handing out a code the token endpoint would refuse), it is
/// ended, and the login page is shown; the user cannot log in while disabled.
#[tokio::test]
async fn the_sso_session_of_a_disabled_user_does_not_answer() {
    let server = attack_server().await;
    let mut browser = Browser::new();
    let sid = login_and_sid(&server, &mut browser).await;
    assert!(has_session(&server, &mut browser).await);

    set_alice_enabled(&server, false).await;
    assert!(
        !has_session(&server, &mut browser).await,
        "prompt=none must answer login_required for a disabled user"
    );
    assert!(
        server.store.get_session(&sid).await.unwrap().is_none(),
        "the disabled user's session is ended"
    );
    let form = open_demo_login(&server, &mut browser, "").await;
    let res = browser
        .submit_login(&server.base_url, &form, "alice", "alice")
        .await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains(INVALID_EN));

    // Enabled again, the user logs in anew (the old session stays ended).
    set_alice_enabled(&server, true).await;
    assert!(!has_session(&server, &mut browser).await);
    let (code, verifier) = login(&server, &mut browser).await;
    redeem_ok(&server, &code, &verifier).await;
    assert!(has_session(&server, &mut browser).await);
}

/// Logs alice in with `browser` and redeems the code: demo-app's tokens.
async fn login_tokens(server: &TestServer, browser: &mut Browser) -> Value {
    let (code, verifier) = login(server, browser).await;
    redeem_ok(server, &code, &verifier).await
}

/// Logs alice in with `browser`, redeems the code and returns the SSO session's id.
async fn login_and_sid(server: &TestServer, browser: &mut Browser) -> String {
    let tokens = login_tokens(server, browser).await;
    crate::code_flow::jwt_claims(tokens["id_token"].as_str().unwrap())["sid"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn open_demo_login_response(
    server: &TestServer,
    browser: &mut Browser,
    extra: &str,
) -> Response {
    let (_, challenge) = pkce();
    browser.get(&auth_url(server, &challenge, extra)).await
}

/// An `id_token_hint` names the user the client expects: another user's SSO session does
/// not answer for them (OIDC Core §3.1.2.1), and neither does any session for a hint pforte
/// cannot verify.
#[tokio::test]
async fn authorization_with_another_users_id_token_hint_does_not_reuse_the_session() {
    let server = attack_server().await;
    let mut alice = Browser::new();
    let (code, verifier) = login(&server, &mut alice).await;
    let alice_hint = redeem_ok(&server, &code, &verifier).await["id_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut bob = Browser::new();
    let (verifier, challenge) = pkce();
    let form = bob.open_login(&auth_url(&server, &challenge, "")).await;
    let res = bob
        .submit_login(&server.base_url, &form, "bob", "bob")
        .await;
    let code = callback(&res).get("code").unwrap().to_owned();
    let bob_hint = redeem_ok(&server, &code, &verifier).await["id_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut tampered = bob_hint.clone();
    tampered.pop();

    for hint in [&bob_hint, &tampered, &"garbage".to_owned()] {
        let (_, challenge) = pkce();
        let extra = format!("&prompt=none&id_token_hint={hint}");
        let res = alice.get(&auth_url(&server, &challenge, &extra)).await;
        assert_error_redirect(&server, &res, REDIRECT, "login_required");
        let res =
            open_demo_login_response(&server, &mut alice, &format!("&id_token_hint={hint}")).await;
        assert_eq!(res.status(), 200);
        assert!(res.text().await.unwrap().contains("id=\"kc-login\""));
    }
    // The control: alice's own hint (and bob's in bob's browser) reuses the session.
    for (browser, hint) in [(&mut alice, &alice_hint), (&mut bob, &bob_hint)] {
        let (_, challenge) = pkce();
        let extra = format!("&prompt=none&id_token_hint={hint}");
        let res = browser.get(&auth_url(&server, &challenge, &extra)).await;
        assert!(
            callback(&res).get("code").is_some(),
            "{}",
            callback(&res).location
        );
    }
}

#[tokio::test]
async fn prompt_none_after_a_refused_login_is_still_login_required() {
    let server = attack_server().await;
    let mut browser = Browser::new();
    let form = open_demo_login(&server, &mut browser, "").await;
    let res = browser
        .submit_login(&server.base_url, &form, "alice", "wrong")
        .await;
    failed_login(res, INVALID_EN, "alice").await;
    let (_, challenge) = pkce();
    let res = browser
        .get(&authorize_url(
            &server,
            "demo-app",
            REDIRECT,
            &format!("{}&prompt=none", s256(&challenge)),
        ))
        .await;
    assert_error_redirect(&server, &res, REDIRECT, "login_required");
}

// ---------------------------------------------------------------------------------------
// One SSO session per browser; a login finished against the client as it is now
// ---------------------------------------------------------------------------------------

/// Logs `user` in (password = username) through the browser and redeems the code.
async fn login_as(server: &TestServer, browser: &mut Browser, user: &str, extra: &str) -> Value {
    let (verifier, challenge) = pkce();
    let form = browser
        .open_login(&auth_url(server, &challenge, extra))
        .await;
    let res = browser
        .submit_login(&server.base_url, &form, user, user)
        .await;
    let cb = callback(&res);
    redeem_ok(server, cb.get("code").unwrap(), &verifier).await
}

fn sid(tokens: &Value) -> String {
    let id = crate::code_flow::jwt_claims(tokens["id_token"].as_str().unwrap());
    id["sid"].as_str().unwrap().to_owned()
}

/// A login replaces the browser's SSO session. Another user's session is ended with its
/// tokens: left alive behind the new cookie, it would survive the logout that follows
/// (a shared browser: alice leaves, bob logs in and out, alice's tokens still refresh).
/// The same user re-authenticating (`prompt=login`) keeps the session and its tokens,
/// as in Keycloak.
#[tokio::test]
async fn a_login_ends_another_users_session_and_renews_the_same_users() {
    let server = attack_server().await;
    let mut browser = Browser::new();
    let first = login_as(&server, &mut browser, "alice", "").await;
    let again = login_as(&server, &mut browser, "alice", "&prompt=login").await;
    assert_eq!(sid(&again), sid(&first), "the same user keeps the session");
    let res = refresh(
        &server,
        "demo-app",
        first["refresh_token"].as_str().unwrap(),
        None,
    )
    .await;
    let (status, first) = crate::negative_authorize::status_json(res).await;
    assert_eq!(status, 200, "{first}");

    let bob = login_as(&server, &mut browser, "bob", "&prompt=login").await;
    assert_ne!(sid(&bob), sid(&first));
    for (which, tokens) in [("first", &first), ("again", &again)] {
        let res = refresh(
            &server,
            "demo-app",
            tokens["refresh_token"].as_str().unwrap(),
            None,
        )
        .await;
        crate::negative_authorize::assert_oauth_error(res, 400, "invalid_grant").await;
        let info = crate::negative_authorize::introspect(
            &server,
            tokens["access_token"].as_str().unwrap(),
        )
        .await;
        assert_eq!(info["active"], false, "{which}: {info}");
    }
    // The browser's session is bob's, and bob's tokens work.
    let res = refresh(
        &server,
        "demo-app",
        bob["refresh_token"].as_str().unwrap(),
        None,
    )
    .await;
    assert_eq!(res.status(), 200);
    assert!(has_session(&server, &mut browser).await);
}

/// An authorization request POSTed from the client's site carries no `SameSite=Lax`
/// cookie: pforte sends it on as a GET (303), which the browser sends with its cookies,
/// so SSO and `prompt=none` work over POST too, and no cookie is set on the POST.
#[tokio::test]
async fn a_posted_authorization_request_is_answered_with_the_sso_session() {
    let server = attack_server().await;
    let mut browser = Browser::new();
    login(&server, &mut browser).await;
    let (verifier, challenge) = pkce();
    let url = auth_url(&server, &challenge, "&prompt=none");
    let (endpoint, query) = url.split_once('?').unwrap();
    let cross_site_post = |body: String| {
        client()
            .post(endpoint)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let res = cross_site_post(query.to_owned()).await.unwrap();
    assert_eq!(res.status(), 303);
    assert!(set_cookies(&res).is_empty(), "{:?}", set_cookies(&res));
    // Relative, with the realm name as the cookie path has it.
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with("/realms/demo/protocol/openid-connect/auth?client_id=demo-app&"),
        "{location}"
    );
    let location = server.url(&location);
    let res = browser.get(&location).await;
    let cb = callback(&res);
    assert_eq!(cb.get("state"), Some("st4te"), "{}", cb.location);
    assert_eq!(cb.get("iss"), Some(server.url("/realms/demo").as_str()));
    redeem_ok(&server, cb.get("code").unwrap(), &verifier).await;

    // What the GET judges is exactly what was posted: a repeat is still refused, values
    // with reserved characters arrive intact.
    let res = cross_site_post(format!("{query}&client_id=other-app"))
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let location = server.url(res.headers()["location"].to_str().unwrap());
    assert_error_page(browser.get(&location).await, 400).await;
    let odd_state = "a b&c=d+e%/ü";
    let res = cross_site_post(query.replace(
        "state=st4te",
        &format!("state={}", pforte_core::oauth::urlencode(odd_state)),
    ))
    .await
    .unwrap();
    let location = server.url(res.headers()["location"].to_str().unwrap());
    let cb = callback(&browser.get(&location).await);
    assert_eq!(cb.get("state"), Some(odd_state));
}

/// A login form stays open for up to half an hour; an administrator may meanwhile take
/// the redirect URI off the client (or disable it). The code must not go there.
#[tokio::test]
async fn a_login_finished_after_the_client_changed_gets_no_code() {
    let server = attack_server().await;
    for change in ["redirect URI removed", "client disabled"] {
        let mut browser = Browser::new();
        let form = open_demo_login(&server, &mut browser, "").await;
        let original = server
            .store
            .get_client("demo", "demo-app")
            .await
            .unwrap()
            .unwrap();
        let mut changed = (*original).clone();
        match change {
            "redirect URI removed" => changed.redirect_uris.retain(|u| u != REDIRECT),
            _ => changed.enabled = false,
        }
        let import = |c| pforte_core::store::RealmImport {
            clients: vec![c],
            ..Default::default()
        };
        server.store.apply_import(&import(changed)).await.unwrap();
        let res = browser
            .submit_login(&server.base_url, &form, "alice", "alice")
            .await;
        assert!(!session_cookie_set(&res), "{change}");
        assert_error_page(res, 400).await;
        server
            .store
            .apply_import(&import((*original).clone()))
            .await
            .unwrap();
    }
}

/// A service account is a client's identity; no one logs in as it, even with a password
/// in the store (a database from before the import refused such users).
#[tokio::test]
async fn no_one_logs_in_as_a_service_account() {
    let server = attack_server().await;
    crate::negative_authorize::change_alice(&server, |alice| {
        alice.service_account_client_id = Some(crate::negative_authorize::EXCHANGE_CLIENT.into());
    })
    .await;
    let mut browser = Browser::new();
    let form = open_demo_login(&server, &mut browser, "").await;
    let res = browser
        .submit_login(&server.base_url, &form, "alice", "alice")
        .await;
    assert_eq!(res.status(), 200);
    assert!(!session_cookie_set(&res));
    assert!(res.text().await.unwrap().contains(INVALID_EN));
}

/// The hint decides which client's URIs a logout may return to and whose session it
/// names: a forged, foreign or wrong-kind hint is refused, and nothing ends.
#[tokio::test]
async fn logout_refuses_a_hint_that_is_not_this_realms_id_token() {
    let server = crate::negative_authorize::two_realm_server().await;
    let mut browser = Browser::new();
    let (code, verifier) = login(&server, &mut browser).await;
    let tokens = redeem_ok(&server, &code, &verifier).await;
    let id_token = tokens["id_token"].as_str().unwrap();
    // alice's ID token of realm `other`, signed with that realm's key.
    let other = crate::negative_authorize::tokens_of_realm_other(&server).await;

    let (head, rest) = id_token.split_once('.').unwrap();
    let (payload, signature) = rest.split_once('.').unwrap();
    let flipped = if signature.starts_with('A') { "B" } else { "A" };
    let tampered_signature = format!("{head}.{payload}.{flipped}{}", &signature[1..]);
    let tampered_payload = {
        let mut claims = crate::code_flow::jwt_claims(id_token);
        claims["azp"] = json!("other-app");
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!("{head}.{}.{signature}", b64.encode(claims.to_string()))
    };
    let logout = server.url("/realms/demo/protocol/openid-connect/logout");
    let post_logout = pforte_core::oauth::urlencode("http://127.0.0.1:8082/");
    for (what, hint, client_id) in [
        ("a forged signature", tampered_signature.as_str(), ""),
        ("a changed payload", tampered_payload.as_str(), ""),
        (
            "another realm's ID token",
            other["id_token"].as_str().unwrap(),
            "",
        ),
        (
            "an access token",
            tokens["access_token"].as_str().unwrap(),
            "",
        ),
        ("garbage", "not.a.jwt", ""),
        (
            "a client_id the hint does not name",
            id_token,
            "&client_id=other-app",
        ),
    ] {
        let res = browser
            .get(&format!(
                "{logout}?id_token_hint={hint}&post_logout_redirect_uri={post_logout}&state=s{client_id}"
            ))
            .await;
        assert!(
            set_cookies(&res).is_empty(),
            "{what}: {:?}",
            set_cookies(&res)
        );
        assert_error_page(res, 400).await;
    }
    assert!(has_session(&server, &mut browser).await);
    let res = refresh(
        &server,
        "demo-app",
        tokens["refresh_token"].as_str().unwrap(),
        None,
    )
    .await;
    assert_eq!(res.status(), 200);
}

/// The hidden fields and action of a `form_post` response page (entities decoded).
fn form_post_fields(html: &str) -> (String, BTreeMap<String, String>) {
    // What a browser does with the attribute values: character references back to text.
    let decode = |v: &str| {
        let mut out = String::new();
        let mut rest = v;
        while let Some(at) = rest.find('&') {
            out.push_str(&rest[..at]);
            let (entity, after) = rest[at + 1..].split_once(';').unwrap();
            let c = match entity {
                "amp" => '&',
                "lt" => '<',
                "gt" => '>',
                "quot" => '"',
                "apos" => '\'',
                e if e.starts_with("#x") => {
                    char::from_u32(u32::from_str_radix(&e[2..], 16).unwrap()).unwrap()
                }
                e if e.starts_with('#') => char::from_u32(e[1..].parse().unwrap()).unwrap(),
                e => panic!("unknown entity &{e};"),
            };
            out.push(c);
            rest = after;
        }
        out + rest
    };
    let action = html
        .split("id=\"kc-form-post\" method=\"post\" action=\"")
        .nth(1)
        .and_then(|r| r.split_once('"'))
        .map(|(a, _)| decode(a))
        .unwrap_or_else(|| panic!("no form_post form: {html}"));
    let fields = html
        .split("<input type=\"hidden\" name=\"")
        .skip(1)
        .filter_map(|rest| {
            let (name, rest) = rest.split_once('"')?;
            let value = rest.split_once("value=\"")?.1.split_once('"')?.0;
            Some((decode(name), decode(value)))
        })
        .collect();
    (action, fields)
}

/// `response_mode=form_post`: the answer is a page that posts the code (or the error),
/// `state` and `iss` to the redirect URI; a `state` full of markup arrives as it was sent
/// and never becomes markup on the page.
#[tokio::test]
async fn form_post_carries_the_response_in_an_escaped_page() {
    let server = attack_server().await;
    let evil_state = "\"><script>alert(1)</script>&x='";
    let extra = format!(
        "&response_mode=form_post&state={}",
        pforte_core::oauth::urlencode(evil_state)
    );
    // Without a session, prompt=none: the error, posted.
    let mut browser = Browser::new();
    let (verifier, challenge) = pkce();
    let url =
        auth_url(&server, &challenge, &format!("{extra}&prompt=none")).replace("state=st4te&", "");
    let res = browser.get(&url).await;
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("location").is_none());
    assert_page_headers("form_post error", &res);
    let html = res.text().await.unwrap();
    assert!(!html.contains("<script>alert"), "{html}");
    let (action, fields) = form_post_fields(&html);
    assert_eq!(action, REDIRECT);
    assert_eq!(fields["error"], "login_required");
    assert_eq!(fields["state"], evil_state);
    assert_eq!(fields["iss"], server.url("/realms/demo"));
    assert!(!fields.contains_key("code"));

    // After a login: the code, posted.
    let url = auth_url(&server, &challenge, &extra).replace("state=st4te&", "");
    let form = browser.open_login(&url).await;
    let res = browser
        .submit_login(&server.base_url, &form, "alice", "alice")
        .await;
    assert_eq!(res.status(), 200);
    assert_page_headers("form_post success", &res);
    let html = res.text().await.unwrap();
    let (action, fields) = form_post_fields(&html);
    assert_eq!(action, REDIRECT);
    assert_eq!(fields["state"], evil_state);
    assert_eq!(fields["iss"], server.url("/realms/demo"));
    redeem_ok(&server, &fields["code"], &verifier).await;
}

/// Answers every check with `verdict` and remembers which hashes it was asked about.
struct RecordingCheck {
    verdict: pforte_core::login::PasswordVerdict,
    asked: std::sync::Mutex<Vec<Option<String>>>,
}

impl pforte_core::login::PasswordCheck for RecordingCheck {
    async fn verify(
        &self,
        _password: String,
        phc: Option<String>,
    ) -> pforte_core::login::PasswordVerdict {
        self.asked.lock().unwrap().push(phc);
        self.verdict
    }
}

/// Every attempt pays for a password check, an unknown user's too (a dummy one), so the
/// time of the answer does not tell whether the account exists; a check that could not
/// run (the queue is full) is no failure: nothing is counted against the account.
#[tokio::test]
async fn every_attempt_pays_for_a_password_check_and_a_busy_one_counts_nothing() {
    use pforte_core::login::{LoginError, PasswordVerdict, submit};
    let server = attack_server().await;
    let realm = server.store.get_realm("demo").await.unwrap().unwrap();
    let issuer = server.url("/realms/demo");
    let rng = pforte_server::system_rng();
    let now = pforte_server::Clock::now(&pforte_server::SystemClock);
    let (server, realm, issuer, rng) = (&server, &realm, &issuer, &rng);
    let attempt = |verdict| async move {
        let mut browser = Browser::new();
        let form = open_demo_login(server, &mut browser, "").await;
        let flow_id = form.action.split("flow=").nth(1).unwrap().to_owned();
        let check = RecordingCheck {
            verdict,
            asked: Default::default(),
        };
        let mut outcomes = vec![];
        for user in ["nobody-here", "alice"] {
            let r = submit(
                &*server.store,
                realm,
                issuer,
                &flow_id,
                Some(&browser.cookies["PFORTE_BROWSER"]),
                None,
                Some(&form.csrf),
                user,
                "wrong",
                &check,
                now,
                &**rng,
            )
            .await;
            outcomes.push(match r {
                Err(LoginError::Credentials { .. }) => "refused",
                Err(LoginError::Busy) => "busy",
                _ => "other",
            });
        }
        let asked = check.asked.into_inner().unwrap();
        (
            outcomes,
            asked.iter().map(Option::is_some).collect::<Vec<_>>(),
        )
    };
    let (outcomes, with_hash) = attempt(PasswordVerdict::NoMatch).await;
    assert_eq!(outcomes, ["refused", "refused"]);
    assert_eq!(
        with_hash,
        [false, true],
        "the unknown user is checked against a dummy"
    );
    let failures = |user: &'static str| {
        let store = server.store.clone();
        async move {
            store
                .get_login_failures("demo", &format!("user:{user}"))
                .await
                .unwrap()
                .count
        }
    };
    assert_eq!(
        (failures("nobody-here").await, failures("alice").await),
        (1, 1)
    );
    let (outcomes, _) = attempt(PasswordVerdict::Busy).await;
    assert_eq!(outcomes, ["busy", "busy"]);
    assert_eq!(
        (failures("nobody-here").await, failures("alice").await),
        (1, 1),
        "a check that did not run is not a failed login"
    );
}

// ---------------------------------------------------------------------------------------
// Rules that need time to pass, and the logout confirmation's token
// ---------------------------------------------------------------------------------------

/// `max_age` (OIDC Core §3.1.2.1): an SSO session whose login is older than `max_age`
/// seconds asks for the login again, and `prompt=none` cannot skip it. A younger one answers
/// at once.
#[tokio::test]
async fn a_login_older_than_max_age_is_asked_for_again() {
    let clock = pforte_testkit::TestClock::new();
    let server = TestServer::start_with(TestServerOptions {
        realms: vec![attack_realm(json!({}))],
        clock: Some(clock.clone()),
        ..Default::default()
    })
    .await;
    let mut browser = Browser::new();
    login_and_sid(&server, &mut browser).await;
    clock.advance(120);

    let (_, challenge) = pkce();
    let res = browser
        .get(&auth_url(&server, &challenge, "&max_age=3600"))
        .await;
    assert!(
        callback(&res).get("code").is_some(),
        "the control: {}",
        callback(&res).location
    );
    let res = open_demo_login_response(&server, &mut browser, "&max_age=60").await;
    assert_eq!(res.status(), 200);
    let page = res.text().await.unwrap();
    assert!(page.contains("id=\"kc-login\""), "{page}");
    let res = browser
        .get(&auth_url(&server, &challenge, "&max_age=60&prompt=none"))
        .await;
    assert_error_redirect(&server, &res, REDIRECT, "login_required");
}

/// A failed login is answered only after the configured delay, for a known user with a
/// wrong password and for an unknown name alike: the brake on guessing that works even
/// when the realm has no lock-out (Keycloak's default, `bruteForceProtected: false`).
#[tokio::test]
async fn failed_logins_are_answered_after_the_delay() {
    let delay = std::time::Duration::from_millis(400);
    let server = TestServer::start_with(TestServerOptions {
        realms: vec![attack_realm(json!({}))],
        login_failure_delay: delay,
        ..Default::default()
    })
    .await;
    for (username, password) in [("alice", "wrong"), ("nobody", "wrong")] {
        let mut browser = Browser::new();
        let form = open_demo_login(&server, &mut browser, "").await;
        let started = std::time::Instant::now();
        let res = browser
            .submit_login(&server.base_url, &form, username, password)
            .await;
        let took = started.elapsed();
        assert_eq!(res.status(), 200);
        assert!(res.text().await.unwrap().contains(INVALID_EN));
        assert!(took >= delay, "{username}: answered after {took:?}");
    }
}

/// The logout confirmation's token is bound to the browser's session: a forged one, or
/// another browser's (taken from its own confirmation page), asks again and ends nothing.
#[tokio::test]
async fn the_logout_confirmation_needs_this_browsers_token() {
    let server = attack_server().await;
    let mut victim = Browser::new();
    let victim_tokens = login_tokens(&server, &mut victim).await;
    let mut attacker = Browser::new();
    let foreign = login_tokens(&server, &mut attacker).await;
    let logout = server.url("/realms/demo/protocol/openid-connect/logout");
    let post_logout = "http://127.0.0.1:8082/";
    let hint = foreign["id_token"].as_str().unwrap();

    // Both browsers are asked to confirm a logout with the attacker's hint… for the
    // attacker's browser, a hint-less logout asks as well.
    let res = victim
        .get(&attacker_logout_url(&logout, hint, post_logout))
        .await;
    let victim_fields = confirm_form_fields(&res.text().await.unwrap());
    let res = attacker.get(&logout).await;
    let attacker_fields = confirm_form_fields(&res.text().await.unwrap());
    let token_of = |fields: &[(String, String)]| {
        fields
            .iter()
            .find(|(k, _)| k == "confirm")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no confirm field: {fields:?}"))
    };
    let victims_token = token_of(&victim_fields);
    let attackers_token = token_of(&attacker_fields);
    assert_ne!(victims_token, attackers_token);

    for forged in ["garbage".to_owned(), String::new(), attackers_token] {
        let mut form: Vec<(&str, &str)> = victim_fields
            .iter()
            .filter(|(k, _)| k != "confirm")
            .map(|(k, v)| (&**k, &**v))
            .collect();
        form.push(("confirm", &forged));
        let res = victim.post_form(&logout, &form).await;
        assert_eq!(res.status(), 200, "{forged}");
        assert!(
            set_cookies(&res).is_empty(),
            "{forged}: {:?}",
            set_cookies(&res)
        );
        let page = res.text().await.unwrap();
        assert!(page.contains("id=\"kc-logout\""), "{forged}: {page}");
        assert!(has_session(&server, &mut victim).await, "{forged}");
    }
    let res = refresh(
        &server,
        "demo-app",
        victim_tokens["refresh_token"].as_str().unwrap(),
        None,
    )
    .await;
    assert_eq!(res.status(), 200, "the victim's tokens survive");

    // The control: the victim's own token logs out.
    let form: Vec<(&str, &str)> = victim_fields.iter().map(|(k, v)| (&**k, &**v)).collect();
    let res = victim.post_form(&logout, &form).await;
    assert_eq!(callback(&res).location, format!("{post_logout}?state=s"));
    assert!(!has_session(&server, &mut victim).await);
}
