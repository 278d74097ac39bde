//! The OpenID Provider metadata document (OpenID Connect Discovery 1.0, RFC 8414). It lists
//! exactly what pforte implements; a field appears here only together with its endpoint.

use serde_json::{Value, json};

use crate::keys::RealmKeys;
use crate::scope;

pub fn openid_configuration(issuer: &str, keys: &RealmKeys) -> Value {
    let oidc = format!("{issuer}/protocol/openid-connect");
    // The algorithm that signs now first, then those of the retired keys still published:
    // tokens signed before the realm changed its algorithm stay valid for a while, and a
    // relying party that enforces this list must accept them.
    let mut algs = vec![keys.active.alg().as_str()];
    for alg in keys.verifying.iter().filter_map(|k| k.alg()) {
        if !algs.contains(&alg.as_str()) {
            algs.push(alg.as_str());
        }
    }
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{oidc}/auth"),
        "token_endpoint": format!("{oidc}/token"),
        "userinfo_endpoint": format!("{oidc}/userinfo"),
        "jwks_uri": format!("{oidc}/certs"),
        "introspection_endpoint": format!("{oidc}/token/introspect"),
        "revocation_endpoint": format!("{oidc}/revoke"),
        "end_session_endpoint": format!("{oidc}/logout"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": algs,
        "scopes_supported": scope::KNOWN,
        "claims_supported": [
            "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "acr", "azp", "sid",
            "at_hash", "name", "given_name", "family_name", "preferred_username", "email",
            "email_verified"
        ],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "code_challenge_methods_supported": ["S256"],
        "prompt_values_supported": ["none", "login", "select_account"],
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "authorization_response_iss_parameter_supported": true,
        "ui_locales_supported": ["de", "en"],
        "frontchannel_logout_supported": false,
        "backchannel_logout_supported": false,
    })
}
