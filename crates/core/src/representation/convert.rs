//! From Keycloak's representation to pforte's records, against what is already stored, so
//! that importing the same file again changes nothing.
//!
//! What an import defines:
//! - Sections: a file without `clients` (or `users`, or `roles.realm`) leaves the stored
//!   ones untouched. An import never deletes anything.
//! - The realm and users: a field the file omits keeps its stored value, or takes
//!   Keycloak's default (pforte's, from `Realm::new`) for a new record. This is what lets
//!   Keycloak's separate users file (`{"realm": …, "users": […]}`) be imported after the
//!   realm file without resetting the realm, and it is Keycloak's own update semantics.
//!   An empty string clears an optional text (`"email": ""`).
//! - Clients: the file's client is the whole client (absent fields take Keycloak's
//!   defaults), since the stored clients are not consulted.
//! - Users are matched by `id` when the file gives one, else by lower-cased username; a
//!   matched user keeps its id and `created_at`, and its password hash when the file's
//!   password verifies against it (or the file gives none: exports never carry passwords).

use std::collections::{HashMap, HashSet};

use pforte_jose::Alg;

use super::error::{ImportError, Problem, collect};
use super::keycloak;
use super::parse::ParsedRealm;
use super::types::{ClientRepresentation, RealmRepresentation, UserRepresentation};
use super::validate::check;
use crate::model::{Client, ProtocolMapper, Realm, RoleDef, ServiceAccountUser, Timestamp, User};
use crate::rng::{Rng, uuid};
use crate::secret::{PasswordCost, hash_client_secret, hash_password, verify_password};
use crate::store::RealmImport;

/// Validates the file (all rules; when the file has no `roles.realm`, users' roles are
/// checked against `existing_realm`'s) and converts it into the records to write. `existing_realm` and `existing_users` are what
/// the store holds for the file's realm (`None`/empty for a new realm). Pure: the caller
/// writes the result, in one transaction, only when this returns `Ok`.
pub fn to_import(
    parsed: &ParsedRealm,
    existing_realm: Option<&Realm>,
    existing_users: &[User],
    now: Timestamp,
    cost: PasswordCost,
    rng: &dyn Rng,
) -> Result<RealmImport, ImportError> {
    let rep = &parsed.rep;
    let name = rep.realm.as_deref().unwrap_or_default();
    let mut problems = Vec::new();
    if let Some(stored) = existing_realm
        && stored.name != name
    {
        // A caller bug, but merging two realms' settings must not happen silently.
        problems.push(Problem::new(
            "realm",
            format!(
                "the stored realm given for comparison is \"{}\", not \"{name}\"",
                stored.name
            ),
        ));
    }
    // A new realm has no stored roles: its users may hold only what the file defines.
    let stored_roles = existing_realm.map_or(&[][..], |r| r.roles.as_slice());
    problems.extend(check(rep, Some(stored_roles)));
    collect(&parsed.source, problems)?;

    let realm = convert_realm(rep, name, existing_realm);
    let mut clients: Vec<Client> = rep
        .clients
        .iter()
        .flatten()
        .filter(|c| keycloak::skip_reason(c).is_none())
        .map(|c| convert_client(c, name))
        .collect();
    let existing: Vec<&User> = existing_users.iter().filter(|u| u.realm == name).collect();
    let users = match rep.users.as_deref() {
        Some(users) => {
            let (users, problems) = convert_users(users, name, &existing, now, cost, rng);
            collect(&parsed.source, problems)?;
            users
        }
        None => Vec::new(),
    };
    link_service_accounts(&mut clients, &users, existing.iter().copied());
    Ok(RealmImport {
        realm: Some(realm),
        clients,
        users,
    })
}

/// Copies each client's service-account user (the user whose `serviceAccountClientId`
/// names it) onto the client: from `users` (a file's), else from `stored` — leaving out
/// stored users the file redefines, whose stored link may be outdated.
pub fn link_service_accounts<'a>(
    clients: &mut [Client],
    users: &'a [User],
    stored: impl IntoIterator<Item = &'a User>,
) {
    let current = stored
        .into_iter()
        .filter(|s| !users.iter().any(|u| u.id == s.id));
    let candidates: Vec<&User> = users.iter().chain(current).collect();
    for client in clients {
        client.service_account_user = candidates
            .iter()
            .find(|u| u.service_account_client_id.as_deref() == Some(&*client.client_id))
            .map(|u| ServiceAccountUser {
                id: u.id.clone(),
                realm_roles: u.realm_roles.clone(),
                disabled: !u.enabled,
            });
    }
}

/// The file's text when given (an empty string clears it), else the stored one.
fn text(file: Option<&String>, stored: Option<String>) -> Option<String> {
    match file {
        Some(s) if s.trim().is_empty() => None,
        Some(s) => Some(s.clone()),
        None => stored,
    }
}

fn convert_realm(rep: &RealmRepresentation, name: &str, existing: Option<&Realm>) -> Realm {
    let base = existing.cloned().unwrap_or_else(|| Realm::new(name));
    let bf = base.brute_force;
    let mut roles: Vec<RoleDef> = match rep.roles.as_ref().and_then(|r| r.realm.as_ref()) {
        Some(file) => file
            .iter()
            .map(|r| RoleDef {
                name: r.name.clone().unwrap_or_default(),
                description: r.description.clone(),
            })
            .collect(),
        None => base.roles,
    };
    for builtin in keycloak::builtin_roles(name) {
        if !roles.iter().any(|r| r.name == builtin.name) {
            roles.push(builtin);
        }
    }
    Realm {
        name: name.to_owned(),
        enabled: rep.enabled.unwrap_or(base.enabled),
        display_name: text(rep.display_name.as_ref(), base.display_name),
        signature_alg: rep
            .default_signature_algorithm
            .as_deref()
            .and_then(Alg::parse)
            .unwrap_or(base.signature_alg),
        access_token_lifespan: rep
            .access_token_lifespan
            .unwrap_or(base.access_token_lifespan),
        access_code_lifespan: rep
            .access_code_lifespan
            .unwrap_or(base.access_code_lifespan),
        access_code_lifespan_login: rep
            .access_code_lifespan_login
            .unwrap_or(base.access_code_lifespan_login),
        sso_session_idle_timeout: rep
            .sso_session_idle_timeout
            .unwrap_or(base.sso_session_idle_timeout),
        sso_session_max_lifespan: rep
            .sso_session_max_lifespan
            .unwrap_or(base.sso_session_max_lifespan),
        brute_force: crate::model::BruteForce {
            protected: rep.brute_force_protected.unwrap_or(bf.protected),
            failure_factor: rep
                .failure_factor
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(bf.failure_factor),
            wait_increment_seconds: rep
                .wait_increment_seconds
                .unwrap_or(bf.wait_increment_seconds),
            max_failure_wait_seconds: rep
                .max_failure_wait_seconds
                .unwrap_or(bf.max_failure_wait_seconds),
            max_delta_time_seconds: rep
                .max_delta_time_seconds
                .unwrap_or(bf.max_delta_time_seconds),
        },
        roles,
    }
}

fn convert_client(c: &ClientRepresentation, realm: &str) -> Client {
    let public = keycloak::is_public(c);
    let (standard, service) = keycloak::flows(c);
    Client {
        realm: realm.to_owned(),
        client_id: c.client_id.clone().unwrap_or_default(),
        name: text(c.name.as_ref(), None),
        enabled: c.enabled.unwrap_or(true),
        public_client: public,
        // Deterministic hash: importing the same secret again stores the same value.
        secret_hash: if public {
            None
        } else {
            c.secret
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(hash_client_secret)
        },
        redirect_uris: c.redirect_uris.clone().unwrap_or_default(),
        web_origins: c.web_origins.clone().unwrap_or_default(),
        standard_flow_enabled: standard,
        service_accounts_enabled: service,
        // Only what pforte reads: anything else would have no effect here, yet be exported
        // again as if it had (and some Keycloak attributes hold secrets).
        attributes: c
            .attributes
            .iter()
            .flatten()
            .filter(|(k, _)| keycloak::SUPPORTED_CLIENT_ATTRIBUTES.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        protocol_mappers: c
            .protocol_mappers
            .iter()
            .flatten()
            .filter(|m| keycloak::is_oidc_mapper(m))
            .map(|m| ProtocolMapper {
                name: m.name.clone().unwrap_or_default(),
                protocol_mapper: m.protocol_mapper.clone().unwrap_or_default(),
                config: m.config.clone().unwrap_or_default(),
            })
            .collect(),
        default_client_scopes: c.default_client_scopes.clone().unwrap_or_default(),
        optional_client_scopes: c.optional_client_scopes.clone().unwrap_or_default(),
        service_account_user: None,
    }
}

fn convert_users(
    users: &[UserRepresentation],
    realm: &str,
    existing: &[&User],
    now: Timestamp,
    cost: PasswordCost,
    rng: &dyn Rng,
) -> (Vec<User>, Vec<Problem>) {
    let by_id: HashMap<&str, &User> = existing.iter().map(|u| (u.id.as_str(), *u)).collect();
    let by_name: HashMap<String, &User> = existing
        .iter()
        .map(|u| (u.username.to_lowercase(), *u))
        .collect();
    // Ids a generated one must not repeat: a repeat would overwrite another user.
    let mut taken: HashSet<String> = existing.iter().map(|u| u.id.clone()).collect();
    taken.extend(users.iter().filter_map(|u| u.id.clone()));
    let mut problems = Vec::new();
    let mut out = Vec::with_capacity(users.len());
    for (i, u) in users.iter().enumerate() {
        let username = u
            .username
            .as_deref()
            .unwrap_or_default()
            .trim()
            .to_lowercase();
        let matched = match u.id.as_deref() {
            Some(id) => by_id.get(id).copied(),
            None => by_name.get(&username).copied(),
        };
        let id = match (&u.id, matched) {
            (Some(id), _) => id.clone(),
            (None, Some(m)) => m.id.clone(),
            (None, None) => match fresh_id(rng, &taken) {
                Some(id) => id,
                None => {
                    problems.push(Problem::new(
                        format!("users[{i}]"),
                        "could not generate an unused id: the random source repeats itself",
                    ));
                    continue;
                }
            },
        };
        taken.insert(id.clone());
        let base = matched
            .cloned()
            .unwrap_or_else(|| User::new(id, realm, username.clone(), now));
        let password = u
            .credentials
            .iter()
            .flatten()
            .find_map(keycloak::password_value);
        let service_account_client_id = u
            .service_account_client_id
            .clone()
            .filter(|c| !c.is_empty())
            .or(base.service_account_client_id);
        // Judged on the user as it will be stored, this file merged onto what an earlier
        // file or import left: a password from one and the link from the other make the
        // same person-who-is-a-service.
        if service_account_client_id.is_some()
            && (password.is_some() || base.password_hash.is_some())
        {
            // Its tokens would carry this user's `sub` and roles: a person who can log in
            // must not be one.
            problems.push(Problem::new(
                format!("users[{i}]"),
                "a service-account user (serviceAccountClientId) cannot have a password",
            ));
            continue;
        }
        let password_hash = match (password, base.password_hash) {
            // Rehashing would change the stored record on every import of the same file.
            (Some(pw), Some(stored)) if verify_password(pw, &stored) => Some(stored),
            (Some(pw), _) => match hash_password(pw, cost, rng) {
                Ok(h) => Some(h),
                Err(e) => {
                    problems.push(Problem::new(
                        format!("users[{i}].credentials"),
                        e.to_string(),
                    ));
                    None
                }
            },
            (None, stored) => stored,
        };
        out.push(User {
            id: base.id,
            realm: realm.to_owned(),
            username,
            email: match u.email.as_deref().map(str::trim) {
                Some("") => None,
                Some(e) => Some(e.to_lowercase()),
                None => base.email,
            },
            email_verified: u.email_verified.unwrap_or(base.email_verified),
            first_name: text(u.first_name.as_ref(), base.first_name),
            last_name: text(u.last_name.as_ref(), base.last_name),
            enabled: u.enabled.unwrap_or(base.enabled),
            attributes: u.attributes.clone().unwrap_or(base.attributes),
            realm_roles: match &u.realm_roles {
                Some(roles) => dedup(roles),
                None => base.realm_roles,
            },
            password_hash,
            created_at: base.created_at,
            service_account_client_id,
        });
    }
    problems.extend(conflicts_with_stored(&out, existing));
    (out, problems)
}

/// A random id not in `taken`. A real random source never repeats; the bound only keeps
/// a broken one from looping forever.
fn fresh_id(rng: &dyn Rng, taken: &HashSet<String>) -> Option<String> {
    (0..16).map(|_| uuid(rng)).find(|id| !taken.contains(id))
}

fn dedup(items: &[String]) -> Vec<String> {
    let mut seen = HashSet::new();
    items
        .iter()
        .filter(|r| seen.insert(r.as_str()))
        .cloned()
        .collect()
}

/// Usernames and emails the import would take from stored users it does not change: the
/// store would refuse the whole import, so say which user and why before it is tried.
fn conflicts_with_stored(imported: &[User], existing: &[&User]) -> Vec<Problem> {
    let imported_ids: HashSet<&str> = imported.iter().map(|u| u.id.as_str()).collect();
    let untouched = existing
        .iter()
        .filter(|u| !imported_ids.contains(u.id.as_str()));
    let mut names: HashMap<String, &str> = HashMap::new();
    let mut emails: HashMap<String, &str> = HashMap::new();
    for u in untouched {
        names.insert(u.username.to_lowercase(), &u.id);
        if let Some(e) = &u.email {
            emails.insert(e.to_lowercase(), &u.id);
        }
    }
    let mut out = Vec::new();
    let mut ids: HashMap<&str, usize> = HashMap::new();
    for (i, u) in imported.iter().enumerate() {
        if let Some(first) = ids.insert(&u.id, i) {
            out.push(Problem::new(
                format!("users[{i}]"),
                format!(
                    "is the same stored user (id \"{}\") as users[{first}], one found by id and \
                     one by username: keep one",
                    u.id
                ),
            ));
        }
        if let Some(owner) = names.get(&u.username) {
            out.push(Problem::new(
                format!("users[{i}].username"),
                format!(
                    "\"{}\" already belongs to the stored user \"{owner}\", which this file does \
                     not change: choose another username, or give this user that id (or no id) to \
                     update that user",
                    u.username
                ),
            ));
        }
        if let Some(owner) = u.email.as_ref().and_then(|e| emails.get(e)) {
            out.push(Problem::new(
                format!("users[{i}].email"),
                format!(
                    "\"{}\" already belongs to the stored user \"{owner}\", which this file does \
                     not change: emails are unique per realm",
                    u.email.as_deref().unwrap_or_default()
                ),
            ));
        }
    }
    out
}
