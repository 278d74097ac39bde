//! From pforte's records to Keycloak's representation: `pforte export` and the admin API.
//!
//! Exports carry no secrets: no client secret and no password hash, nor any credential.
//! pforte only holds hashes, which are useless to Keycloak and to other pforte instances'
//! operators alike, and an export file is easily shared. Importing an export therefore
//! keeps existing users' passwords, while confidential clients need their `secret` filled
//! in again (validation says so).

use super::keycloak::{CLIENT_SECRET, OIDC};
use super::types::{
    ClientRepresentation, ProtocolMapperRepresentation, RealmRepresentation, RoleRepresentation,
    RolesRepresentation, UserRepresentation,
};
use crate::model::{Client, Realm, User};

/// The realm with the given clients and users (the caller passes this realm's), every
/// field written out so that the file shows the effective settings.
pub fn export_realm(realm: &Realm, clients: &[Client], users: &[User]) -> RealmRepresentation {
    let bf = &realm.brute_force;
    RealmRepresentation {
        realm: Some(realm.name.clone()),
        enabled: Some(realm.enabled),
        display_name: realm.display_name.clone(),
        default_signature_algorithm: Some(realm.signature_alg.as_str().to_owned()),
        access_token_lifespan: Some(realm.access_token_lifespan),
        access_code_lifespan: Some(realm.access_code_lifespan),
        access_code_lifespan_login: Some(realm.access_code_lifespan_login),
        sso_session_idle_timeout: Some(realm.sso_session_idle_timeout),
        sso_session_max_lifespan: Some(realm.sso_session_max_lifespan),
        brute_force_protected: Some(bf.protected),
        failure_factor: Some(i64::from(bf.failure_factor)),
        wait_increment_seconds: Some(bf.wait_increment_seconds),
        max_failure_wait_seconds: Some(bf.max_failure_wait_seconds),
        max_delta_time_seconds: Some(bf.max_delta_time_seconds),
        roles: Some(RolesRepresentation {
            realm: Some(
                realm
                    .roles
                    .iter()
                    .map(|r| RoleRepresentation {
                        name: Some(r.name.clone()),
                        description: r.description.clone(),
                    })
                    .collect(),
            ),
        }),
        clients: Some(clients.iter().map(export_client).collect()),
        users: Some(users.iter().map(export_user).collect()),
        identity_providers: None,
        identity_provider_mappers: None,
    }
}

pub fn export_client(c: &Client) -> ClientRepresentation {
    ClientRepresentation {
        client_id: Some(c.client_id.clone()),
        name: c.name.clone(),
        protocol: Some(OIDC.to_owned()),
        enabled: Some(c.enabled),
        // Only the hash is stored, and even that stays in the store.
        secret: None,
        public_client: Some(c.public_client),
        client_authenticator_type: (!c.public_client).then(|| CLIENT_SECRET.to_owned()),
        bearer_only: None,
        redirect_uris: Some(c.redirect_uris.clone()),
        web_origins: Some(c.web_origins.clone()),
        standard_flow_enabled: Some(c.standard_flow_enabled),
        service_accounts_enabled: Some(c.service_accounts_enabled),
        attributes: Some(c.attributes.clone()),
        protocol_mappers: Some(
            c.protocol_mappers
                .iter()
                .map(|m| ProtocolMapperRepresentation {
                    name: Some(m.name.clone()),
                    protocol: Some(OIDC.to_owned()),
                    protocol_mapper: Some(m.protocol_mapper.clone()),
                    config: Some(m.config.clone()),
                })
                .collect(),
        ),
        default_client_scopes: Some(c.default_client_scopes.clone()),
        optional_client_scopes: Some(c.optional_client_scopes.clone()),
    }
}

pub fn export_user(u: &User) -> UserRepresentation {
    UserRepresentation {
        id: Some(u.id.clone()),
        username: Some(u.username.clone()),
        email: u.email.clone(),
        email_verified: Some(u.email_verified),
        first_name: u.first_name.clone(),
        last_name: u.last_name.clone(),
        enabled: Some(u.enabled),
        attributes: Some(u.attributes.clone()),
        realm_roles: Some(u.realm_roles.clone()),
        // No password hash, ever.
        credentials: None,
        service_account_client_id: u.service_account_client_id.clone(),
    }
}
