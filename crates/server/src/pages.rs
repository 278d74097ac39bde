//! HTML pages: login, error, form_post, logout. German and English; the texts automation
//! relies on (ids, error messages) are fixed. Each page gets its own CSP with fresh nonces
//! for the one inline style (and, for form_post, the one inline script).

use askama::Template;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use pforte_core::rng::{self, Rng};

pub struct Texts {
    pub lang: &'static str,
    pub title: &'static str,
    pub username: &'static str,
    pub password: &'static str,
    pub submit: &'static str,
    pub invalid_credentials: &'static str,
    pub error_title: &'static str,
    pub continue_label: &'static str,
    pub logout_title: &'static str,
    pub logout_question: &'static str,
    pub logout_button: &'static str,
    pub logged_out: &'static str,
}

// Keycloak's own wording, so that scripts written against Keycloak's login page still match.
pub const EN: Texts = Texts {
    lang: "en",
    title: "Sign in to your account",
    username: "Username or email",
    password: "Password",
    submit: "Sign In",
    invalid_credentials: "Invalid username or password.",
    error_title: "We are sorry...",
    continue_label: "Continue",
    logout_title: "Logging out",
    logout_question: "Do you want to log out?",
    logout_button: "Logout",
    logged_out: "You are logged out",
};

pub const DE: Texts = Texts {
    lang: "de",
    title: "Melden Sie sich an",
    username: "Benutzername oder E-Mail",
    password: "Passwort",
    submit: "Anmelden",
    invalid_credentials: "Ungültiger Benutzername oder Passwort.",
    error_title: "Es tut uns leid …",
    continue_label: "Weiter",
    logout_title: "Abmelden",
    logout_question: "Möchten Sie sich abmelden?",
    logout_button: "Abmelden",
    logged_out: "Sie sind abgemeldet",
};

/// `ui_locales` first (space-separated, in order), then `Accept-Language`, then English.
pub fn texts(ui_locales: Option<&str>, headers: &HeaderMap) -> &'static Texts {
    let pick = |tag: &str| -> Option<&'static Texts> {
        let primary = tag
            .trim()
            .split(['-', '_', ';'])
            .next()?
            .to_ascii_lowercase();
        match primary.as_str() {
            "de" => Some(&DE),
            "en" => Some(&EN),
            _ => None,
        }
    };
    if let Some(t) = ui_locales.and_then(|u| u.split_whitespace().find_map(pick)) {
        return t;
    }
    headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').find_map(pick))
        .unwrap_or(&EN)
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    t: &'a Texts,
    style_nonce: &'a str,
    realm_name: &'a str,
    action: &'a str,
    username: &'a str,
    csrf: &'a str,
    error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    t: &'a Texts,
    style_nonce: &'a str,
    message: &'a str,
}

#[derive(Template)]
#[template(path = "form_post.html")]
struct FormPostPage<'a> {
    t: &'a Texts,
    style_nonce: &'a str,
    script_nonce: &'a str,
    action: &'a str,
    params: &'a [(String, String)],
}

#[derive(Template)]
#[template(path = "logout_confirm.html")]
struct LogoutConfirmPage<'a> {
    t: &'a Texts,
    style_nonce: &'a str,
    action: &'a str,
    confirm: &'a str,
    params: &'a [(String, String)],
}

#[derive(Template)]
#[template(path = "logged_out.html")]
struct LoggedOutPage<'a> {
    t: &'a Texts,
    style_nonce: &'a str,
}

fn html(status: StatusCode, body: Result<String, askama::Error>, csp: String) -> Response {
    match body {
        Ok(body) => {
            let mut res = (status, Html(body)).into_response();
            let h = res.headers_mut();
            if let Ok(v) = HeaderValue::from_str(&csp) {
                h.insert(header::CONTENT_SECURITY_POLICY, v);
            }
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            res
        }
        Err(e) => {
            tracing::error!(error = %e, "template rendering failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "page could not be rendered",
            )
                .into_response()
        }
    }
}

fn csp(style_nonce: &str, extra: &str) -> String {
    format!(
        "default-src 'none'; style-src 'nonce-{style_nonce}'; frame-ancestors 'none'; base-uri 'none'{extra}"
    )
}

#[allow(clippy::too_many_arguments)]
pub fn login(
    t: &Texts,
    rng: &dyn Rng,
    realm_name: &str,
    action: &str,
    username: &str,
    csrf: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let nonce = rng::token(rng, 16);
    let page = LoginPage {
        t,
        style_nonce: &nonce,
        realm_name,
        action,
        username,
        csrf,
        error,
    };
    // No form-action: browsers apply it to the redirect that follows the POST, and that
    // redirect goes to the client.
    html(status, page.render(), csp(&nonce, ""))
}

pub fn error(t: &Texts, rng: &dyn Rng, status: StatusCode, message: &str) -> Response {
    let nonce = rng::token(rng, 16);
    let page = ErrorPage {
        t,
        style_nonce: &nonce,
        message,
    };
    html(status, page.render(), csp(&nonce, ""))
}

/// OAuth 2.0 Form Post Response Mode: an auto-submitting form to the client.
pub fn form_post(t: &Texts, rng: &dyn Rng, action: &str, params: &[(String, String)]) -> Response {
    let style_nonce = rng::token(rng, 16);
    let script_nonce = rng::token(rng, 16);
    let page = FormPostPage {
        t,
        style_nonce: &style_nonce,
        script_nonce: &script_nonce,
        action,
        params,
    };
    html(
        StatusCode::OK,
        page.render(),
        csp(
            &style_nonce,
            &format!("; script-src 'nonce-{script_nonce}'"),
        ),
    )
}

pub fn logout_confirm(
    t: &Texts,
    rng: &dyn Rng,
    action: &str,
    confirm: &str,
    params: &[(String, String)],
) -> Response {
    let nonce = rng::token(rng, 16);
    let page = LogoutConfirmPage {
        t,
        style_nonce: &nonce,
        action,
        confirm,
        params,
    };
    html(StatusCode::OK, page.render(), csp(&nonce, ""))
}

pub fn logged_out(t: &Texts, rng: &dyn Rng) -> Response {
    let nonce = rng::token(rng, 16);
    let page = LoggedOutPage {
        t,
        style_nonce: &nonce,
    };
    html(StatusCode::OK, page.render(), csp(&nonce, ""))
}
