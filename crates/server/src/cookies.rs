//! The cookies pforte sets: `HttpOnly`, `SameSite=Lax`, `Secure` except in explicit dev mode
//! on http://, and scoped to the realm's path.

use axum::http::{HeaderMap, HeaderValue, header};

pub const SESSION: &str = "PFORTE_SESSION";
pub const BROWSER: &str = "PFORTE_BROWSER";

pub fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

pub struct CookieJar {
    secure: bool,
    path: String,
}

impl CookieJar {
    pub fn new(secure: bool, realm: &str) -> Self {
        CookieJar {
            secure,
            path: format!("/realms/{realm}/"),
        }
    }

    fn build(&self, name: &str, value: &str, max_age: Option<i64>) -> Option<HeaderValue> {
        let mut c = format!("{name}={value}; Path={}; HttpOnly; SameSite=Lax", self.path);
        if self.secure {
            c.push_str("; Secure");
        }
        if let Some(age) = max_age {
            c.push_str(&format!("; Max-Age={age}"));
        }
        HeaderValue::from_str(&c).ok()
    }

    pub fn set(&self, headers: &mut HeaderMap, name: &str, value: &str, max_age: Option<i64>) {
        if let Some(v) = self.build(name, value, max_age) {
            headers.append(header::SET_COOKIE, v);
        }
    }

    pub fn clear(&self, headers: &mut HeaderMap, name: &str) {
        if let Some(v) = self.build(name, "", Some(0)) {
            headers.append(header::SET_COOKIE, v);
        }
    }
}
