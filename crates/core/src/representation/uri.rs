//! The shape rules for registered redirect URIs. pforte compares redirect URIs exactly
//! (no prefix, no wildcard), so what is registered must be a complete absolute URI; this
//! module refuses at import time what could never match, or must never be redirected to.

/// Schemes a browser would execute or read locally instead of navigating: a redirect
/// there turns an authorization response into script or file access.
const FORBIDDEN_SCHEMES: [&str; 4] = ["javascript", "data", "vbscript", "file"];

/// `Ok` for a URI that may be registered as a redirect URI, else what is wrong and how to
/// fix it. Custom schemes (`com.example.app:/cb`) are allowed for native apps (RFC 8252).
pub(crate) fn check_redirect_uri(uri: &str) -> Result<(), String> {
    if uri.is_empty() {
        return Err("empty redirect URI: remove it or write the full URI".to_owned());
    }
    if uri.contains('*') {
        return Err(format!(
            "\"{uri}\" contains a wildcard: pforte matches redirect URIs exactly, list every \
             redirect URI in full"
        ));
    }
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "\"{uri}\" contains spaces or control characters: percent-encode them"
        ));
    }
    if uri.contains('#') {
        return Err(format!(
            "\"{uri}\" has a fragment: redirect URIs must not contain '#' (RFC 6749 §3.1.2)"
        ));
    }
    let Some(scheme) = scheme(uri) else {
        return Err(format!(
            "\"{uri}\" is not an absolute URI: pforte needs the full URI with scheme and host \
             (Keycloak resolves relative URIs against rootUrl; write that out)"
        ));
    };
    let rest = &uri[scheme.len() + 1..];
    let scheme = scheme.to_ascii_lowercase();
    if FORBIDDEN_SCHEMES.contains(&scheme.as_str()) {
        return Err(format!(
            "\"{uri}\": the scheme \"{scheme}:\" is never allowed for redirects"
        ));
    }
    if scheme == "http" || scheme == "https" {
        let host_part = rest
            .strip_prefix("//")
            .map(|r| r.split(['/', '?']).next().unwrap_or_default())
            .unwrap_or_default();
        if host_part.is_empty() {
            return Err(format!(
                "\"{uri}\" has no host: write it as {scheme}://host/path"
            ));
        }
        if host_part.contains('@') {
            return Err(format!(
                "\"{uri}\" contains user information ('@' before the host): remove it"
            ));
        }
    } else if rest.is_empty() {
        return Err(format!(
            "\"{uri}\" has nothing after the scheme: add the path"
        ));
    }
    Ok(())
}

/// The scheme of an absolute URI (RFC 3986 §3.1), or `None` for a relative reference.
fn scheme(uri: &str) -> Option<&str> {
    let (scheme, _) = uri.split_once(':')?;
    let mut chars = scheme.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    (first_ok && rest_ok).then_some(scheme)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn accepts_web_and_native_uris() {
        for ok in [
            "https://app.example.com/cb",
            "http://localhost:8082/callback?x=1",
            "http://127.0.0.1/cb",
            "com.example.app:/cb",
            "myapp://callback",
        ] {
            assert_eq!(check_redirect_uri(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refuses_what_cannot_match_or_is_dangerous() {
        for (bad, why) in [
            ("https://app.example.com/*", "wildcard"),
            ("/realms/demo/account/*", "wildcard"),
            ("/cb", "not an absolute URI"),
            ("app.example.com/cb", "not an absolute URI"),
            ("https://app.example.com/cb#x", "fragment"),
            ("https:///cb", "no host"),
            ("https:cb", "no host"),
            ("https://user@evil.example/cb", "user information"),
            ("javascript:alert(1)", "never allowed"),
            ("JavaScript:alert(1)", "never allowed"),
            ("https://a.example/c b", "spaces"),
            ("", "empty"),
            ("myapp:", "nothing after the scheme"),
        ] {
            let e = check_redirect_uri(bad).expect_err(bad);
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
