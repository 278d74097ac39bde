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
        .and_then(|v| preferred(v, pick))
        .unwrap_or(&EN)
}

/// The language the `Accept-Language` header weighs highest among those `pick` knows
/// (RFC 9110 §12.5.4): by `q` (default 1, `q=0` means "not this one"), the earlier entry
/// on a tie.
fn preferred(
    header: &str,
    pick: impl Fn(&str) -> Option<&'static Texts>,
) -> Option<&'static Texts> {
    let mut best: Option<(u16, &'static Texts)> = None;
    for entry in header.split(',') {
        let mut parts = entry.split(';');
        let Some(texts) = parts.next().and_then(&pick) else {
            continue;
        };
        let q = parts
            .find_map(|p| p.trim().strip_prefix("q="))
            .map_or(Some(1000), quality);
        let Some(q) = q.filter(|q| *q > 0) else {
            continue;
        };
        if best.is_none_or(|(b, _)| q > b) {
            best = Some((q, texts));
        }
    }
    best.map(|(_, t)| t)
}

/// A `q` value in thousandths; `None` when it is not one.
fn quality(v: &str) -> Option<u16> {
    let v = v.trim();
    let (whole, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths: u16 = format!("{frac:0<3}").parse().ok()?;
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn lang(accept: &str, ui_locales: Option<&str>) -> &'static str {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT_LANGUAGE, accept.parse().unwrap());
        texts(ui_locales, &h).logout_button
    }

    #[test]
    fn accept_language_is_weighed_by_q() {
        let (de, en) = (DE.logout_button, EN.logout_button);
        assert_eq!(lang("en;q=0.1, de;q=0.9", None), de);
        assert_eq!(lang("de;q=0.5, en", None), en, "no q is 1");
        assert_eq!(lang("de-DE,de;q=0.9,en;q=0.8", None), de);
        assert_eq!(
            lang("fr, de;q=0.2, en;q=0.1", None),
            de,
            "unknown ones skipped"
        );
        assert_eq!(lang("de;q=0, en;q=0.001", None), en, "q=0 is a refusal");
        assert_eq!(lang("de;q=0", None), en, "nothing acceptable: English");
        assert_eq!(lang("de;q=2, en;q=0.5", None), en, "a bad q is ignored");
        assert_eq!(lang("en, de", None), en, "a tie keeps the order");
        // ui_locales comes first, whatever the header says.
        assert_eq!(lang("en;q=1", Some("de")), de);
        assert_eq!(lang("de", Some("fr en")), en);
    }
}
