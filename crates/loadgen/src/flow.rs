//! The OAuth/OIDC requests of the scenarios: token requests and the whole authorization-code
//! flow without a browser, with a small adapter per target for its login pages.

use std::borrow::Cow;

use anyhow::{Context, Result, anyhow, bail};
use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Deserialize;

use crate::html;
use crate::http::{Conn, CookieJar, Response, Url, form_encode};

/// Which provider is measured: decides how its login pages are filled in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// pforte: Keycloak's login-page contract (`form#kc-form-login`, `username`, `password`,
    /// submit `#kc-login`).
    Pforte,
    /// oidc-provider with its built-in dev interactions (`login`/`password`, then possibly a
    /// consent form with hidden `prompt=consent`).
    OidcProvider,
    /// Keycloak itself (a peer in the benchmark): the same login-page contract as pforte.
    Keycloak,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::Pforte => "pforte",
            Target::OidcProvider => "oidc-provider",
            Target::Keycloak => "keycloak",
        }
    }
}

/// Everything a flow needs that does not change between iterations.
pub struct Setup {
    pub target: Target,
    pub issuer: String,
    pub discovery: Url,
    pub auth_endpoint: Url,
    pub token_endpoint: Url,
    /// The client of the code flow and the refresh grant.
    pub app_client_id: String,
    /// `Authorization: Basic …` for that client when it is confidential; `None`: a public
    /// client, `client_id` in the body.
    pub app_basic: Option<String>,
    pub redirect_uri: String,
    pub redirect_base: String,
    pub scope: String,
    pub username: String,
    pub password: String,
    /// The body and `Authorization` header of a client_credentials request (fixed).
    pub cc_body: Vec<u8>,
    pub cc_basic: String,
}

/// `Basic` credentials as RFC 6749 §2.3.1 wants them (form-encoded id and secret).
pub fn basic_auth(client_id: &str, secret: &str) -> String {
    let mut raw = String::new();
    crate::http::form_encode_into(&mut raw, client_id);
    raw.push(':');
    crate::http::form_encode_into(&mut raw, secret);
    format!("Basic {}", STANDARD.encode(raw))
}

pub struct Tokens {
    pub refresh_token: Option<String>,
}

/// The fields of a token response the scenarios look at, borrowed from the body: tokens
/// contain no JSON escapes, so nothing is copied per request (`Cow` copes if one does).
/// Absent fields are empty.
#[derive(Deserialize)]
struct TokenFields<'a> {
    #[serde(borrow, default)]
    access_token: Cow<'a, str>,
    #[serde(borrow, default)]
    refresh_token: Cow<'a, str>,
}

/// A token response that counts as success: 200 with an `access_token`.
fn tokens<'a>(response: &'a Response, what: &str) -> Result<TokenFields<'a>> {
    if response.status != 200 {
        bail!("{what}: {}", response.describe());
    }
    let tokens: TokenFields<'_> = serde_json::from_slice(&response.body)
        .with_context(|| format!("{what}: not a JSON token response: {}", response.describe()))?;
    if tokens.access_token.is_empty() {
        bail!("{what}: 200 without access_token: {}", response.describe());
    }
    Ok(tokens)
}

pub async fn client_credentials(conn: &mut Conn, setup: &Setup) -> Result<()> {
    let response = conn
        .post_form(
            &setup.token_endpoint,
            &[("Authorization", &setup.cc_basic)],
            &setup.cc_body,
        )
        .await?;
    tokens(&response, "client_credentials").map(|_| ())
}

pub async fn discovery(conn: &mut Conn, setup: &Setup) -> Result<()> {
    let response = conn.get(&setup.discovery, &[]).await?;
    if response.status != 200 {
        bail!("discovery: {}", response.describe());
    }
    Ok(())
}

/// One refresh; returns the refresh token to use next (the rotated one, or the same one if the
/// provider did not rotate).
pub async fn refresh(conn: &mut Conn, setup: &Setup, refresh_token: &str) -> Result<String> {
    let pairs = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ];
    let response = post_as_app(conn, setup, pairs).await?;
    let t = tokens(&response, "refresh_token grant")?;
    Ok(if t.refresh_token.is_empty() {
        refresh_token.to_owned()
    } else {
        t.refresh_token.into_owned()
    })
}

/// POSTs `pairs` to the token endpoint as the app client: Basic credentials when it is
/// confidential, its `client_id` in the body when it is public.
async fn post_as_app<'a>(
    conn: &mut Conn,
    setup: &'a Setup,
    mut pairs: Vec<(&'a str, &'a str)>,
) -> Result<Response> {
    if setup.app_basic.is_none() {
        pairs.push(("client_id", &setup.app_client_id));
    }
    let body = form_encode(pairs);
    let headers: Vec<(&str, &str)> = setup
        .app_basic
        .as_deref()
        .map(|b| ("Authorization", b))
        .into_iter()
        .collect();
    conn.post_form(&setup.token_endpoint, &headers, body.as_bytes())
        .await
}

fn random_b64(n: usize) -> Result<String> {
    let mut bytes = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| anyhow!("no randomness"))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The whole authorization-code flow with PKCE: authorization request, login page(s), the
/// redirect to the client with `code`, and the code exchange. `jar` is emptied first (a new
/// browser session per flow).
/// `trace`: print every step to stderr (the preflight does, with `--trace`).
pub async fn code_flow(
    conn: &mut Conn,
    setup: &Setup,
    jar: &mut CookieJar,
    trace: bool,
) -> Result<Tokens> {
    jar.clear();
    let verifier = random_b64(32)?;
    let challenge = URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()));
    let state = random_b64(16)?;
    let nonce = random_b64(16)?;
    let query = form_encode([
        ("response_type", "code"),
        ("client_id", setup.app_client_id.as_str()),
        ("redirect_uri", setup.redirect_uri.as_str()),
        ("scope", setup.scope.as_str()),
        ("state", state.as_str()),
        ("nonce", nonce.as_str()),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ]);
    let sep = if setup.auth_endpoint.target.contains('?') {
        '&'
    } else {
        '?'
    };
    let mut url = setup
        .auth_endpoint
        .join(&format!("{}{sep}{query}", setup.auth_endpoint.target))?;
    let mut method = "GET";
    let mut body: Vec<u8> = Vec::new();
    let mut logins = 0;
    let mut code = None;

    for _step in 0..16 {
        let cookie = jar.header_for(&url);
        let mut headers: Vec<(&str, &str)> = Vec::with_capacity(1);
        if let Some(c) = cookie.as_deref() {
            headers.push(("Cookie", c));
        }
        let response = if method == "POST" {
            conn.post_form(&url, &headers, &body).await?
        } else {
            conn.get(&url, &headers).await?
        };
        jar.store(&url, &response);
        if trace {
            eprintln!(
                "loadgen: trace: {method} {url} -> {} {}",
                response.status,
                response.header("location").unwrap_or("")
            );
        }
        match response.status {
            301 | 302 | 303 | 307 | 308 => {
                let location = response.header("location").ok_or_else(|| {
                    anyhow!("{} {url}: redirect without Location", response.status)
                })?;
                let next = url.join(location)?;
                if next.without_query() == setup.redirect_base {
                    code = Some(callback(&next, setup, &state)?);
                    break;
                }
                if (301..=303).contains(&response.status) {
                    method = "GET";
                    body.clear();
                }
                url = next;
            }
            200 => {
                let page = response.text();
                let (action, values) =
                    fill_form(setup, &page, &mut logins).with_context(|| format!("page {url}"))?;
                let form_url = url.join(&action.url)?;
                if action.post {
                    method = "POST";
                    body = form_encode(values.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                        .into_bytes();
                    url = form_url;
                } else {
                    method = "GET";
                    body.clear();
                    let q = form_encode(values.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                    url = form_url.join(&format!("{}?{q}", form_url.path()))?;
                }
            }
            _ => bail!("{method} {url}: {}", response.describe()),
        }
    }
    let code =
        code.ok_or_else(|| anyhow!("no redirect to {} within 16 steps", setup.redirect_uri))?;

    let pairs = vec![
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", setup.redirect_uri.as_str()),
        ("code_verifier", verifier.as_str()),
    ];
    let response = post_as_app(conn, setup, pairs).await?;
    if trace {
        eprintln!(
            "loadgen: trace: POST {} (authorization_code) -> {}",
            setup.token_endpoint, response.status
        );
    }
    let t = tokens(&response, "authorization_code grant")?;
    Ok(Tokens {
        refresh_token: (!t.refresh_token.is_empty()).then(|| t.refresh_token.into_owned()),
    })
}

/// Checks the authorization response at the client's redirect URI and returns the code.
fn callback(url: &Url, setup: &Setup, state: &str) -> Result<String> {
    if let Some(error) = url.query_param("error") {
        let description = url.query_param("error_description").unwrap_or_default();
        bail!("authorization error at the redirect URI: {error} {description}");
    }
    if url.query_param("state").as_deref() != Some(state) {
        bail!("state not returned unchanged: {url}");
    }
    if let Some(iss) = url.query_param("iss")
        && iss != setup.issuer
    {
        bail!(
            "iss {iss:?} in the authorization response is not the issuer {:?}",
            setup.issuer
        );
    }
    url.query_param("code")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| anyhow!("redirect to the client without code: {url}"))
}

#[derive(Debug)]
struct FormAction {
    url: String,
    post: bool,
}

/// The adapter: which form of this page to submit, and with which values.
fn fill_form(
    setup: &Setup,
    page: &str,
    logins: &mut u32,
) -> Result<(FormAction, Vec<(String, String)>)> {
    let forms = html::forms(page);
    let (form, submitter, credentials) = match setup.target {
        Target::Pforte | Target::Keycloak => {
            let form = forms
                .iter()
                .find(|f| f.attr("id") == Some("kc-form-login"))
                .ok_or_else(|| unexpected_page(page, "no <form id=\"kc-form-login\">"))?;
            (form, Some("kc-login"), Some(("username", "password")))
        }
        Target::OidcProvider => {
            if let Some(form) = forms
                .iter()
                .find(|f| f.control("login").is_some() && f.control("password").is_some())
            {
                (form, None, Some(("login", "password")))
            } else if let Some(form) = forms.iter().find(|f| {
                f.control("prompt")
                    .and_then(|c| c.element.attr("value"))
                    .is_some_and(|v| v == "consent")
            }) {
                (form, None, None)
            } else {
                return Err(unexpected_page(page, "neither a login nor a consent form"));
            }
        }
    };
    let mut values = form.successful_values(submitter);
    if let Some((user_field, password_field)) = credentials {
        *logins += 1;
        if *logins > 1 {
            let message = html::text_of_id(page, "input-error")
                .unwrap_or_else(|| "the login form was shown again".to_owned());
            bail!("login as {:?} refused: {message}", setup.username);
        }
        for (field, value) in [
            (user_field, &setup.username),
            (password_field, &setup.password),
        ] {
            match values.iter_mut().find(|(k, _)| k == field) {
                Some(slot) => slot.1.clone_from(value),
                None => values.push((field.to_owned(), value.clone())),
            }
        }
    }
    let post = form
        .attr("method")
        .is_some_and(|m| m.eq_ignore_ascii_case("post"));
    let url = form.attr("action").unwrap_or("").to_owned();
    Ok((FormAction { url, post }, values))
}

fn unexpected_page(page: &str, what: &str) -> anyhow::Error {
    let title = page
        .to_ascii_lowercase()
        .find("<title")
        .and_then(|i| {
            let start = i + page[i..].find('>')? + 1;
            let end = start + page[start..].to_ascii_lowercase().find("</title")?;
            Some(html::decode_entities(page[start..end].trim()))
        })
        .unwrap_or_default();
    let error = html::text_of_id(page, "input-error").unwrap_or_default();
    anyhow!(
        "unexpected page (title {title:?}{}): {what}",
        if error.is_empty() {
            String::new()
        } else {
            format!(", error {error:?}")
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(target: Target) -> Setup {
        let url = Url::parse("http://127.0.0.1:1/t").unwrap();
        Setup {
            target,
            issuer: "http://127.0.0.1:1".into(),
            discovery: url.clone(),
            auth_endpoint: url.clone(),
            token_endpoint: url,
            app_client_id: "bench-app".into(),
            app_basic: None,
            redirect_uri: "http://127.0.0.1:18099/cb".into(),
            redirect_base: "http://127.0.0.1:18099/cb".into(),
            scope: "openid".into(),
            username: "bench".into(),
            password: "pw".into(),
            cc_body: Vec::new(),
            cc_basic: String::new(),
        }
    }

    #[test]
    fn pforte_adapter_fills_keycloak_form() {
        let page = r#"<form id="kc-form-login" action="/realms/bench/login-actions/authenticate?x=1&amp;y=2" method="post">
          <input name="username" id="username"><input type="password" name="password">
          <input type="hidden" name="csrf_token" value="c1">
          <button type="submit" id="kc-login" name="login" value="Sign In">Sign in</button></form>"#;
        let mut logins = 0;
        let (action, values) = fill_form(&setup(Target::Pforte), page, &mut logins).unwrap();
        assert!(action.post);
        assert_eq!(
            action.url,
            "/realms/bench/login-actions/authenticate?x=1&y=2"
        );
        let v: Vec<(&str, &str)> = values
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        assert_eq!(
            v,
            [
                ("username", "bench"),
                ("password", "pw"),
                ("csrf_token", "c1"),
                ("login", "Sign In")
            ]
        );
        let again = fill_form(&setup(Target::Pforte), page, &mut logins).unwrap_err();
        assert!(again.to_string().contains("refused"), "{again}");
        let err = fill_form(&setup(Target::Pforte), "<title>Oops</title>", &mut 0).unwrap_err();
        assert!(err.to_string().contains("Oops"), "{err}");
    }

    #[test]
    fn oidc_provider_adapter_handles_consent() {
        let page = r#"<form autocomplete="off" action="/interaction/u1/confirm" method="post">
          <input type="hidden" name="prompt" value="consent"/>
          <button autofocus type="submit" class="login login-submit">Continue</button></form>"#;
        let (action, values) = fill_form(&setup(Target::OidcProvider), page, &mut 0).unwrap();
        assert_eq!(action.url, "/interaction/u1/confirm");
        assert_eq!(values, [("prompt".to_owned(), "consent".to_owned())]);
    }

    #[test]
    fn callback_checks_state_and_iss() {
        let s = setup(Target::Pforte);
        let ok =
            Url::parse("http://127.0.0.1:18099/cb?code=c&state=st&iss=http%3A%2F%2F127.0.0.1%3A1")
                .unwrap();
        assert_eq!(callback(&ok, &s, "st").unwrap(), "c");
        assert!(callback(&ok, &s, "other").is_err());
        let bad_iss = Url::parse("http://127.0.0.1:18099/cb?code=c&state=st&iss=x").unwrap();
        assert!(callback(&bad_iss, &s, "st").is_err());
        let error = Url::parse("http://127.0.0.1:18099/cb?error=access_denied&state=st").unwrap();
        assert!(callback(&error, &s, "st").is_err());
    }

    #[test]
    fn basic_auth_encodes_per_rfc6749() {
        assert_eq!(
            basic_auth("bench-cc", "bench-secret"),
            "Basic YmVuY2gtY2M6YmVuY2gtc2VjcmV0"
        );
    }
}
