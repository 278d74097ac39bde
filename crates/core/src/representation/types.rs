//! Keycloak's JSON representations, the subset pforte understands, with Keycloak's
//! (camelCase) field names.
//!
//! Every field is an `Option`: `None` means "absent from the document", which matters on
//! import (absent takes the Keycloak default for a new record, see `convert`) and keeps
//! exports and admin-API answers free of fields pforte does not have (`None` is never
//! serialised). Fields not listed here are reported by `parse_realm` as warnings.

use std::collections::BTreeMap;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

/// A realm, as in Keycloak's `RealmRepresentation`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RealmRepresentation {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub realm: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_signature_algorithm: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_token_lifespan: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_code_lifespan: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_code_lifespan_login: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sso_session_idle_timeout: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sso_session_max_lifespan: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub brute_force_protected: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_factor: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait_increment_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_failure_wait_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_delta_time_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roles: Option<RolesRepresentation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clients: Option<Vec<ClientRepresentation>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub users: Option<Vec<UserRepresentation>>,
    /// Placeholder until identity providers are implemented: accepted so that a Keycloak
    /// export parses, reported as not imported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_providers: Option<Vec<serde_json::Value>>,
    /// Placeholder, like `identity_providers`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_provider_mappers: Option<Vec<serde_json::Value>>,
}

/// `roles` of a realm. Keycloak's `client` roles are not supported (reported as unknown).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolesRepresentation {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub realm: Option<Vec<RoleRepresentation>>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleRepresentation {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A client, as in Keycloak's `ClientRepresentation`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientRepresentation {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `openid-connect` (the default) or `saml`; pforte imports OpenID Connect clients
    /// only, so the field is read to refuse the others instead of mis-importing them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// The secret in clear text, only ever read (import, admin API); never exported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_client: Option<bool>,
    /// How a confidential client authenticates: `client-secret` (Keycloak's default, and
    /// the only one pforte supports so far), `client-jwt`, `client-secret-jwt`,
    /// `client-x509`. Keycloak exports a generated `secret` for all of them, which only
    /// `client-secret` accepts, so the field decides whether that secret may be imported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_authenticator_type: Option<String>,
    /// Keycloak's resource-server clients: they cannot obtain tokens, whatever their flow
    /// flags say, so they are imported with every flow disabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bearer_only: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect_uris: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub web_origins: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub standard_flow_enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_accounts_enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol_mappers: Option<Vec<ProtocolMapperRepresentation>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_client_scopes: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub optional_client_scopes: Option<Vec<String>>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProtocolMapperRepresentation {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol_mapper: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<BTreeMap<String, String>>,
}

/// A user, as in Keycloak's `UserRepresentation`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserRepresentation {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Keycloak writes lists here, but some exports (and hand-written files) hold a single
    /// string; both are read, lists are written.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "one_or_many_map"
    )]
    pub attributes: Option<BTreeMap<String, Vec<String>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub realm_roles: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials: Option<Vec<CredentialRepresentation>>,
    /// On the user Keycloak keeps for a client's service account: that client's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account_client_id: Option<String>,
}

/// A credential. pforte imports `password` credentials with a clear-text `value`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialRepresentation {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub credential_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temporary: Option<bool>,
    /// Keycloak's exported password hash. Read only to explain precisely why it cannot be
    /// imported (pforte stores Argon2id, Keycloak PBKDF2); never written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_data: Option<String>,
    /// Keycloak's hash parameters (JSON text naming the algorithm), read with `secret_data`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential_data: Option<String>,
}

/// A list of strings, or a single string standing for a list of one.
struct OneOrMany(Vec<String>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![v.to_owned()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    out.push(s);
                }
                Ok(OneOrMany(out))
            }
        }
        d.deserialize_any(V)
    }
}

fn one_or_many_map<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<BTreeMap<String, Vec<String>>>, D::Error> {
    let map = Option::<BTreeMap<String, OneOrMany>>::deserialize(d)?;
    Ok(map.map(|m| m.into_iter().map(|(k, v)| (k, v.0)).collect()))
}
