//! What pforte knows about Keycloak's conventions: its built-in clients and roles and the
//! defaults of fields a file may omit. Parsing, validation and conversion all ask here, so
//! that they agree on which clients are imported and what an absent field means.

use super::types::{ClientRepresentation, CredentialRepresentation, ProtocolMapperRepresentation};
use crate::model::RoleDef;

pub(crate) const OIDC: &str = "openid-connect";
pub(crate) const PASSWORD: &str = "password";
/// The mapper types pforte applies (in `claims`); others are imported but have no effect,
/// and the import says so.
pub(crate) const SUPPORTED_MAPPERS: [&str; 2] = [
    "oidc-usermodel-attribute-mapper",
    "oidc-hardcoded-claim-mapper",
];
/// The client attributes pforte reads; the others are not imported, and the import says so.
pub(crate) const SUPPORTED_CLIENT_ATTRIBUTES: [&str; 3] = [
    "pkce.code.challenge.method",
    "post.logout.redirect.uris",
    "access.token.lifespan",
];
/// Keycloak's default client authenticator: a shared secret (Basic or in the body).
pub(crate) const CLIENT_SECRET: &str = "client-secret";

/// Clients Keycloak creates in every realm for its own consoles and internals. Every
/// Keycloak export contains them; pforte has no counterpart (and their redirect URIs are
/// relative wildcards pforte would refuse), so they are skipped with one warning each.
const BUILTIN_CLIENTS: [&str; 6] = [
    "account",
    "account-console",
    "admin-cli",
    "broker",
    "realm-management",
    "security-admin-console",
];

/// Realm roles Keycloak creates in every realm. Users of an export carry them, so they
/// are accepted without being defined in `roles.realm` and are always defined on import.
pub(crate) fn builtin_roles(realm: &str) -> [RoleDef; 3] {
    [
        RoleDef {
            name: format!("default-roles-{realm}"),
            description: Some("Default roles of every user".to_owned()),
        },
        RoleDef {
            name: "offline_access".to_owned(),
            description: Some("Offline access".to_owned()),
        },
        RoleDef {
            name: "uma_authorization".to_owned(),
            description: Some("User-managed access".to_owned()),
        },
    ]
}

pub(crate) fn is_builtin_role(realm: &str, name: &str) -> bool {
    name == "offline_access"
        || name == "uma_authorization"
        || name.strip_prefix("default-roles-") == Some(realm)
}

/// Why a client of the file is not imported, or `None` when it is.
pub(crate) fn skip_reason(c: &ClientRepresentation) -> Option<String> {
    let id = c.client_id.as_deref().unwrap_or_default();
    if BUILTIN_CLIENTS.contains(&id) {
        return Some(format!(
            "Keycloak's built-in client \"{id}\" is not imported (pforte has no account or \
             admin console; this client id is reserved)"
        ));
    }
    if let Some(other) = c.protocol.as_deref().filter(|p| *p != OIDC) {
        return Some(format!(
            "client \"{id}\" uses protocol \"{other}\" and is not imported (pforte speaks \
             OpenID Connect only)"
        ));
    }
    // Importing such a client with its (exported, but in Keycloak unusable) secret would let
    // that secret authenticate it; importing it without one would leave a client that
    // cannot authenticate at all. Neither is what the file means.
    match c.client_authenticator_type.as_deref() {
        Some(other) if other != CLIENT_SECRET && !is_public(c) => Some(format!(
            "client \"{id}\" authenticates with \"{other}\" and is not imported (pforte \
                 supports client secrets only: set clientAuthenticatorType to \"client-secret\" \
                 to import it with its secret)"
        )),
        _ => None,
    }
}

pub(crate) fn is_public(c: &ClientRepresentation) -> bool {
    c.public_client.unwrap_or(false)
}

/// Whether the client may use the authorization-code flow and client credentials. As in
/// Keycloak, whatever the flags say, a bearer-only client may use neither and a public
/// client no client credentials (anyone could ask for its tokens).
pub(crate) fn flows(c: &ClientRepresentation) -> (bool, bool) {
    if c.bearer_only.unwrap_or(false) {
        return (false, false);
    }
    let service = c.service_accounts_enabled.unwrap_or(false) && !is_public(c);
    (c.standard_flow_enabled.unwrap_or(true), service)
}

pub(crate) fn is_oidc_mapper(m: &ProtocolMapperRepresentation) -> bool {
    m.protocol.as_deref().is_none_or(|p| p == OIDC)
}

/// A credential pforte imports: a password given in clear text.
pub(crate) fn password_value(c: &CredentialRepresentation) -> Option<&str> {
    match c.credential_type.as_deref() {
        Some(PASSWORD) => c.value.as_deref(),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn builtin_roles_are_recognised() {
        for r in builtin_roles("demo") {
            assert!(is_builtin_role("demo", &r.name));
        }
        assert!(!is_builtin_role("demo", "default-roles-other"));
        assert!(!is_builtin_role("demo", "admin"));
    }
}
