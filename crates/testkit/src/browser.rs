//! A minimal browser for driving login flows over HTTP: keeps cookies, never follows
//! redirects on its own, and reads pforte's login form the way a script written against
//! Keycloak would (by its ids and names).

use std::collections::HashMap;

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Response, StatusCode};

/// A PKCE verifier and its S256 challenge.
pub fn pkce() -> (String, String) {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    let verifier = URL_SAFE_NO_PAD.encode(bytes);
    let challenge = URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()));
    (verifier, challenge)
}

#[derive(Default)]
pub struct Browser {
    client: Option<reqwest::Client>,
    pub cookies: HashMap<String, String>,
}

/// What a redirect to the client carried.
#[derive(Debug, Clone)]
pub struct Callback {
    pub location: String,
    pub params: HashMap<String, String>,
}

impl Callback {
    pub fn get(&self, k: &str) -> Option<&str> {
        self.params.get(k).map(String::as_str)
    }
}

/// The login form as a script sees it.
#[derive(Debug, Clone)]
pub struct LoginForm {
    pub action: String,
    pub csrf: String,
    pub html: String,
}

impl Browser {
    pub fn new() -> Self {
        Browser {
            client: Some(crate::http_client()),
            cookies: HashMap::new(),
        }
    }

    fn client(&self) -> &reqwest::Client {
        self.client.as_ref().unwrap()
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn remember(&mut self, res: &Response) {
        for v in res.headers().get_all(SET_COOKIE) {
            let s = v.to_str().unwrap();
            let pair = s.split(';').next().unwrap();
            let (k, val) = pair.split_once('=').unwrap();
            let expired = s.contains("Max-Age=0");
            if expired || val.is_empty() {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), val.to_owned());
            }
        }
    }

    pub async fn get(&mut self, url: &str) -> Response {
        let res = self
            .client()
            .get(url)
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .unwrap();
        self.remember(&res);
        res
    }

    pub async fn post_form(&mut self, url: &str, form: &[(&str, &str)]) -> Response {
        let res = self
            .client()
            .post(url)
            .header(COOKIE, self.cookie_header())
            .form(form)
            .send()
            .await
            .unwrap();
        self.remember(&res);
        res
    }

    /// GET the authorization endpoint and expect the login page.
    pub async fn open_login(&mut self, auth_url: &str) -> LoginForm {
        let res = self.get(auth_url).await;
        assert_eq!(res.status(), StatusCode::OK, "expected the login page");
        let html = res.text().await.unwrap();
        parse_login_form(&html)
    }

    /// Submits credentials on a login form; `base` resolves the form's relative action.
    pub async fn submit_login(
        &mut self,
        base: &str,
        form: &LoginForm,
        user: &str,
        password: &str,
    ) -> Response {
        let url = format!("{base}{}", form.action);
        self.post_form(
            &url,
            &[
                ("username", user),
                ("password", password),
                ("csrf_token", &form.csrf),
            ],
        )
        .await
    }
}

/// Reads `kc-form-login`: its action and the CSRF token.
pub fn parse_login_form(html: &str) -> LoginForm {
    let form_start = html
        .find("id=\"kc-form-login\"")
        .expect("no kc-form-login in page");
    let tag_start = html[..form_start].rfind('<').unwrap();
    let tag = &html[tag_start..html[tag_start..].find('>').unwrap() + tag_start];
    let action = attr(tag, "action").expect("form without action");
    let csrf_at = html
        .find("name=\"csrf_token\"")
        .expect("no csrf_token input");
    let input_start = html[..csrf_at].rfind('<').unwrap();
    let input = &html[input_start..html[input_start..].find('>').unwrap() + input_start];
    LoginForm {
        action,
        csrf: attr(input, "value").unwrap(),
        html: html.to_owned(),
    }
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let key = format!("{name}=\"");
    let start = tag.find(&key)? + key.len();
    let end = tag[start..].find('"')? + start;
    Some(unescape(&tag[start..end]))
}

fn unescape(s: &str) -> String {
    s.replace("&amp;", "&")
        .replace("&#x3d;", "=")
        .replace("&#61;", "=")
        .replace("&quot;", "\"")
        .replace("&#x2f;", "/")
        .replace("&#47;", "/")
}

/// The client-side view of a redirect: its Location and query parameters.
pub fn callback(res: &Response) -> Callback {
    assert_eq!(res.status(), StatusCode::FOUND, "expected a redirect");
    let location = res.headers()[LOCATION].to_str().unwrap().to_owned();
    let url = reqwest::Url::parse(&location).unwrap();
    let params = url.query_pairs().into_owned().collect();
    Callback { location, params }
}
