//! Which scopes a client gets. Keycloak's model: a client's *default* scopes are always
//! granted, its *optional* scopes when asked for, `openid` when asked for; a requested scope
//! the client is not assigned is ignored. Assigned scopes pforte has no claims for (a
//! realm's own `api.read`, Keycloak's `phone`) are granted all the same, as Keycloak does:
//! resource servers check the `scope` claim.

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
const NOT_IN_TOKEN_SCOPE: &[&str] = &["roles", "web-origins", "acr", "basic", "service_account"];

/// Assigned scopes that are never granted: `offline_access` asks for a refresh token that
/// outlives the SSO session, which pforte does not issue; granting the name would promise it.
const NOT_GRANTED: &[&str] = &["offline_access"];

/// RFC 6749 §3.3 `scope-token`: one or more of %x21 / %x23-5B / %x5D-7E. A name from a realm
/// file that is not one (a space, a quote) would corrupt the space-separated scope.
fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

fn grantable(s: &str) -> bool {
    !NOT_GRANTED.contains(&s) && is_scope_token(s)
}

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
        if grantable(s) && !out.contains(&s) {
            out.push(s);
        }
    }
    for s in &requested {
        if client.optional_client_scopes.iter().any(|o| o == s) && grantable(s) && !out.contains(s)
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
    fn assigned_scopes_without_claims_are_granted_and_shown() {
        let mut c = client();
        c.default_client_scopes = vec!["profile".into(), "api.read".into()];
        c.optional_client_scopes = vec!["phone".into(), "api.write".into()];
        let granted = grant(&c, Some("openid api.write unassigned"));
        assert_eq!(granted, "openid profile api.read api.write");
        assert_eq!(presented(&granted), "openid profile api.read api.write");
        assert_eq!(grant(&c, Some("openid")), "openid profile api.read");
    }

    #[test]
    fn offline_access_and_malformed_names_are_never_granted() {
        let mut c = client();
        c.default_client_scopes = vec!["profile".into(), "bad name".into(), "q\"uote".into()];
        c.optional_client_scopes = vec!["offline_access".into()];
        assert_eq!(grant(&c, Some("openid offline_access")), "openid profile");
        assert!(is_scope_token("a!#[]~"));
        assert!(!is_scope_token("") && !is_scope_token("back\\slash"));
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
