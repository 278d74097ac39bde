//! The domain's records. These are pforte's own shapes (what the store persists), not
//! Keycloak's representation (see `representation`), which is mapped onto them on import.

use std::collections::BTreeMap;

use pforte_jose::Alg;
use serde::{Deserialize, Serialize};

/// Seconds since the Unix epoch. `core` never reads the clock: callers pass `now`.
pub type Timestamp = i64;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Realm {
    pub name: String,
    pub enabled: bool,
    pub display_name: Option<String>,
    /// `defaultSignatureAlgorithm`: what the realm signs its tokens with.
    pub signature_alg: Alg,
    /// Seconds.
    pub access_token_lifespan: i64,
    /// How long an authorization code is valid (`accessCodeLifespan`).
    pub access_code_lifespan: i64,
    /// How long a user may take on the login page (`accessCodeLifespanLogin`).
    pub access_code_lifespan_login: i64,
    pub sso_session_idle_timeout: i64,
    pub sso_session_max_lifespan: i64,
    pub brute_force: BruteForce,
    pub roles: Vec<RoleDef>,
}

impl Realm {
    /// A realm with Keycloak's defaults.
    pub fn new(name: &str) -> Self {
        Realm {
            name: name.to_owned(),
            enabled: true,
            display_name: None,
            signature_alg: Alg::ES256,
            access_token_lifespan: 300,
            access_code_lifespan: 60,
            access_code_lifespan_login: 1800,
            sso_session_idle_timeout: 1800,
            sso_session_max_lifespan: 36000,
            brute_force: BruteForce::default(),
            roles: Vec::new(),
        }
    }
}

/// Keycloak's brute-force detection settings, with its field meanings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BruteForce {
    /// pforte always slows repeated failures down; this only controls the lock-out.
    pub protected: bool,
    pub failure_factor: u32,
    pub wait_increment_seconds: i64,
    pub max_failure_wait_seconds: i64,
    pub max_delta_time_seconds: i64,
}

impl Default for BruteForce {
    fn default() -> Self {
        BruteForce {
            protected: true,
            failure_factor: 5,
            wait_increment_seconds: 60,
            max_failure_wait_seconds: 900,
            max_delta_time_seconds: 43200,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleDef {
    pub name: String,
    pub description: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Client {
    pub realm: String,
    pub client_id: String,
    pub name: Option<String>,
    pub enabled: bool,
    pub public_client: bool,
    /// Hash of the client secret (see `secret::hash_client_secret`); never the secret.
    pub secret_hash: Option<String>,
    pub redirect_uris: Vec<String>,
    pub web_origins: Vec<String>,
    pub standard_flow_enabled: bool,
    pub service_accounts_enabled: bool,
    /// Keycloak client attributes, e.g. `pkce.code.challenge.method`,
    /// `post.logout.redirect.uris`, `access.token.lifespan`.
    pub attributes: BTreeMap<String, String>,
    pub protocol_mappers: Vec<ProtocolMapper>,
    pub default_client_scopes: Vec<String>,
    pub optional_client_scopes: Vec<String>,
    /// The user Keycloak keeps for this client's service account, as the import found it:
    /// client_credentials tokens name it as `sub` and carry its realm roles. Copied onto the
    /// client so that the grant, pforte's busiest, reads no user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_user: Option<ServiceAccountUser>,
}

/// A client's service-account user (Keycloak's `service-account-<client>`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceAccountUser {
    pub id: String,
    pub realm_roles: Vec<String>,
    /// The user is disabled: Keycloak then refuses the client's client_credentials grant.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
}

#[cfg(test)]
impl Client {
    /// A public client `c` of realm `r` with nothing else configured; tests set the fields
    /// they are about on top (`Client { web_origins, ..Client::test_public() }`).
    pub(crate) fn test_public() -> Client {
        Client {
            realm: "r".into(),
            client_id: "c".into(),
            name: None,
            enabled: true,
            public_client: true,
            secret_hash: None,
            redirect_uris: vec![],
            web_origins: vec![],
            standard_flow_enabled: true,
            service_accounts_enabled: false,
            attributes: BTreeMap::new(),
            protocol_mappers: vec![],
            default_client_scopes: vec![],
            optional_client_scopes: vec![],
            service_account_user: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtocolMapper {
    pub name: String,
    pub protocol_mapper: String,
    pub config: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub realm: String,
    /// Lower-cased, as Keycloak does.
    pub username: String,
    /// Lower-cased.
    pub email: Option<String>,
    pub email_verified: bool,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub enabled: bool,
    pub attributes: BTreeMap<String, Vec<String>>,
    pub realm_roles: Vec<String>,
    /// PHC string (Argon2id); `None` when the user has no password (e.g. federated only).
    pub password_hash: Option<String>,
    pub created_at: Timestamp,
    /// Set on the user Keycloak keeps for a client's service account (its export's
    /// `serviceAccountClientId`): the client it stands for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_client_id: Option<String>,
}

impl User {
    /// An enabled user with a username and nothing else: no password, e-mail, name,
    /// attributes or roles.
    pub fn new(
        id: impl Into<String>,
        realm: impl Into<String>,
        username: impl Into<String>,
        created_at: Timestamp,
    ) -> User {
        User {
            id: id.into(),
            realm: realm.into(),
            username: username.into(),
            email: None,
            email_verified: false,
            first_name: None,
            last_name: None,
            enabled: true,
            attributes: BTreeMap::new(),
            realm_roles: Vec::new(),
            password_hash: None,
            created_at,
            service_account_client_id: None,
        }
    }
}

/// A realm signing key as stored: the private half sealed with the master key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredKey {
    pub realm: String,
    pub kid: String,
    pub alg: Alg,
    /// The public JWK as JSON text.
    pub public_jwk: String,
    /// PKCS#8 private key sealed with the master key (see `pforte_jose::seal`).
    pub sealed_private: Vec<u8>,
    pub created_at: Timestamp,
    /// `None` while the key is the realm's active signing key.
    pub retired_at: Option<Timestamp>,
}

/// An authorization code as stored. `code_hash` is the key; the code itself is never stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthCode {
    pub code_hash: String,
    pub realm: String,
    pub client_id: String,
    pub user_id: String,
    pub session_id: String,
    /// The grant (token family) that redeeming this code starts; reuse revokes it.
    pub grant_id: String,
    pub redirect_uri: String,
    pub scope: String,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub auth_time: Timestamp,
    pub acr: Option<String>,
    pub expires_at: Timestamp,
}

/// What redeeming a code found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodeRedemption {
    /// First redemption: the code is now marked used.
    Fresh(AuthCode),
    /// The code had been redeemed before.
    Reused(AuthCode),
    Unknown,
}

/// A grant: one line of tokens (a refresh-token family) issued to one client for one user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub id: String,
    pub realm: String,
    pub client_id: String,
    pub user_id: String,
    pub session_id: Option<String>,
    pub scope: String,
    pub auth_time: Timestamp,
    pub acr: Option<String>,
    pub created_at: Timestamp,
    pub revoked: bool,
}

/// The current refresh token of a grant. The token handed out is `<family>.<secret>`; the
/// family identifies the grant's line of refresh tokens and is never shown anywhere else,
/// `token_hash` is the hash of the current secret. Rotation replaces the hash, so a
/// presented token of a known family with another hash is a rotated-out (replayed) one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshToken {
    pub family: String,
    pub token_hash: String,
    pub grant_id: String,
    /// May be narrower than the grant's scope.
    pub scope: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// A family's current refresh token joined with its grant, and with the grant's user and
/// session as they are now (`None` when deleted) — one read for the whole refresh check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshLookup {
    pub token: RefreshToken,
    pub grant: Grant,
    pub user: Option<User>,
    pub session: Option<Session>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rotation {
    /// The old hash was current and has been replaced by the new token.
    Rotated,
    /// The old hash was no longer current (a concurrent rotation won), or the grant has been
    /// revoked: nothing was written.
    Stale,
}

/// An SSO session (the browser's login at pforte).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub id: String,
    pub realm: String,
    pub user_id: String,
    pub auth_time: Timestamp,
    pub last_seen: Timestamp,
    pub acr: Option<String>,
    pub amr: Vec<String>,
    /// Identity provider alias when the login was brokered.
    pub idp: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct LoginFailures {
    pub count: u32,
    pub last_failure: Timestamp,
}

/// Short-lived flow state (a pending authorization request, an upstream login in flight),
/// keyed by a random id held in a cookie or a `state` parameter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowState {
    pub id: String,
    pub realm: String,
    pub kind: String,
    /// JSON text owned by the flow that wrote it.
    pub data: String,
    pub expires_at: Timestamp,
}
