//! Which scopes a client gets. Keycloak's model: a client's *default* scopes are always
//! granted, its *optional* scopes when asked for; scopes pforte does not know are ignored
//! (as Keycloak does), `openid` is granted when asked for.

use crate::model::Client;

/// Scopes whose claims pforte knows how to release.
pub const KNOWN: &[&str] = &[
    "openid",
    "profile",
    "email",
    "roles",
    "web-origins",
    "acr",
    "basic",
];

/// Keycloak's built-in scopes with `include.in.token.scope` off: granted (their claims are
/// released) but left out of the `scope` a client is shown, as Keycloak does.
const NOT_IN_TOKEN_SCOPE: &[&str] = &["roles", "web-origins", "acr", "basic"];

/// Keycloak's default client scopes for a new OIDC client.
const DEFAULT_SCOPES: &[&str] = &["profile", "email", "roles", "web-origins", "acr", "basic"];

fn defaults(client: &Client) -> Vec<&str> {
    if client.default_client_scopes.is_empty() {
        DEFAULT_SCOPES.to_vec()
    } else {
        client
            .default_client_scopes
            .iter()
            .map(String::as_str)
            .collect()
    }
}

/// The granted scope for a request: `openid` if requested, the client's default scopes,
/// and the requested optional ones. Returned space-separated, in a stable order.
pub fn grant(client: &Client, requested: Option<&str>) -> String {
    let requested: Vec<&str> = requested.unwrap_or("").split_whitespace().collect();
    let mut out: Vec<&str> = Vec::new();
    if requested.contains(&"openid") {
        out.push("openid");
    }
    for s in defaults(client) {
        if KNOWN.contains(&s) && !out.contains(&s) {
            out.push(s);
        }
    }
    for s in &requested {
        if client.optional_client_scopes.iter().any(|o| o == s)
            && KNOWN.contains(s)
            && !out.contains(s)
        {
            out.push(s);
        }
    }
    out.join(" ")
}

/// The `scope` of token responses, access tokens and introspection: the granted scope
/// without the scopes Keycloak keeps out of it (so a client sees `openid profile email`,
/// as from Keycloak, not `openid profile email roles web-origins acr basic`).
pub fn presented(granted: &str) -> String {
    granted
        .split_whitespace()
        .filter(|s| !NOT_IN_TOKEN_SCOPE.contains(s))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn contains(scope: &str, item: &str) -> bool {
    scope.split_whitespace().any(|s| s == item)
}

/// A narrower scope for a refresh: every requested scope must already be in `granted`. The
/// granted scopes a client is not shown (`roles`, …; see [`presented`]) stay: a client that
/// sends back the scope it was shown must not lose their claims.
pub fn narrow(granted: &str, requested: Option<&str>) -> Result<String, String> {
    let Some(requested) = requested.filter(|r| !r.trim().is_empty()) else {
        return Ok(granted.to_owned());
    };
    let mut out: Vec<&str> = Vec::new();
    for s in requested.split_whitespace() {
        if !contains(granted, s) {
            return Err(format!(
                "scope `{s}` was not granted originally; a refresh may narrow the scope, never widen it"
            ));
        }
        if !out.contains(&s) {
            out.push(s);
        }
    }
    for s in granted.split_whitespace() {
        if NOT_IN_TOKEN_SCOPE.contains(&s) && !out.contains(&s) {
            out.push(s);
        }
    }
    Ok(out.join(" "))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn client() -> Client {
        Client::test_public()
    }

    #[test]
    fn presented_scope_leaves_out_what_keycloak_does() {
        let granted = grant(&client(), Some("openid email"));
        assert!(
            contains(&granted, "roles"),
            "granted: the claims are released"
        );
        assert_eq!(presented(&granted), "openid profile email");
        assert_eq!(presented("roles web-origins acr basic"), "");
        assert_eq!(presented("openid  custom roles"), "openid custom");
    }

    #[test]
    fn openid_only_when_asked() {
        assert!(!contains(&grant(&client(), Some("email")), "openid"));
        assert!(contains(&grant(&client(), Some("openid")), "openid"));
        assert!(contains(&grant(&client(), Some("openid")), "profile"));
    }

    #[test]
    fn restricted_defaults_do_not_grant_email() {
        let mut c = client();
        c.default_client_scopes = vec!["profile".into()];
        assert_eq!(grant(&c, Some("openid email")), "openid profile");
        c.optional_client_scopes = vec!["email".into()];
        assert_eq!(grant(&c, Some("openid email")), "openid profile email");
    }

    #[test]
    fn narrowing_never_widens() {
        assert_eq!(
            narrow("openid profile email", Some("openid")).unwrap(),
            "openid"
        );
        assert!(narrow("openid profile", Some("openid email")).is_err());
        assert_eq!(narrow("openid profile", None).unwrap(), "openid profile");
        // The scope the client was shown, sent back, keeps what it was not shown.
        let granted = "openid profile email roles web-origins acr basic";
        assert_eq!(narrow(granted, Some(&presented(granted))).unwrap(), granted);
        assert_eq!(
            narrow(granted, Some("openid")).unwrap(),
            "openid roles web-origins acr basic"
        );
    }
}
