//! The rules a realm file must satisfy before anything of it is written. All rules run and
//! every violation is reported, each with its path and how to fix it, so that one round
//! of editing fixes the whole file.

use std::collections::{HashMap, HashSet};

use super::error::{ImportError, Problem, collect};
use super::keycloak;
use super::parse::ParsedRealm;
use super::path::join_key;
use super::types::{ClientRepresentation, RealmRepresentation, UserRepresentation};
use super::uri::check_redirect_uri;
use crate::model::RoleDef;

/// Keycloak stores durations and counts in Java `int`s; holding imports to that range
/// accepts every Keycloak export and keeps `now + lifespan` far from overflowing.
const MAX_SECONDS: i64 = i32::MAX as i64;
/// A mapper's configuration values (a hard-coded claim's value, say) are bounded so that
/// no import can make every token of a client too large to sign.
const MAX_MAPPER_VALUE: usize = 2048;

const PKCE_METHOD: &str = "pkce.code.challenge.method";
const ACCESS_TOKEN_LIFESPAN: &str = "access.token.lifespan";
const POST_LOGOUT_URIS: &str = "post.logout.redirect.uris";

/// Checks the file on its own. User roles are checked against `roles.realm` when the file
/// has one; a file without it (such as Keycloak's separate users file) can only be checked
/// against the stored realm, which [`to_import`](super::to_import) does.
pub fn validate(parsed: &ParsedRealm) -> Result<(), ImportError> {
    collect(&parsed.source, check(&parsed.rep, None))
}

/// Every problem of the file. `stored_roles` are the realm roles already stored, used
/// when the file does not define `roles.realm`.
pub(crate) fn check(rep: &RealmRepresentation, stored_roles: Option<&[RoleDef]>) -> Vec<Problem> {
    let mut out = Vec::new();
    check_realm(rep, &mut out);
    let defined = defined_roles(rep, stored_roles, &mut out);
    check_clients(rep, &mut out);
    check_users(rep, defined.as_ref(), &mut out);
    out
}

fn check_realm(rep: &RealmRepresentation, out: &mut Vec<Problem>) {
    match rep.realm.as_deref() {
        None | Some("") => out.push(Problem::new(
            "realm",
            "required: set \"realm\" to the realm's name (it appears in every URL: /realms/{realm}/…)",
        )),
        Some(name) if !valid_realm_name(name) => out.push(Problem::new(
            "realm",
            format!(
                "\"{name}\" is not a valid realm name: use 1 to 64 letters, digits, '.', '_' or \
                 '-' (and not \".\" or \"..\", which would be read as URL path steps)"
            ),
        )),
        Some(_) => {}
    }
    if let Some(alg) = rep.default_signature_algorithm.as_deref()
        && !matches!(alg, "ES256" | "EdDSA" | "RS256")
    {
        out.push(Problem::new(
            "defaultSignatureAlgorithm",
            format!("\"{alg}\" is not supported: use ES256 (the default), EdDSA or RS256"),
        ));
    }
    for (key, value) in [
        ("accessTokenLifespan", rep.access_token_lifespan),
        ("accessCodeLifespan", rep.access_code_lifespan),
        ("accessCodeLifespanLogin", rep.access_code_lifespan_login),
        ("ssoSessionIdleTimeout", rep.sso_session_idle_timeout),
        ("ssoSessionMaxLifespan", rep.sso_session_max_lifespan),
    ] {
        if let Some(v) = value
            && !(1..=MAX_SECONDS).contains(&v)
        {
            out.push(Problem::new(
                key,
                format!("{v} is out of range: set a number of seconds from 1 to {MAX_SECONDS}"),
            ));
        }
    }
    if let Some(v) = rep.failure_factor
        && !(1..=MAX_SECONDS).contains(&v)
    {
        out.push(Problem::new(
            "failureFactor",
            format!("{v} is out of range: set the number of failures before lock-out, at least 1"),
        ));
    }
    for (key, value) in [
        ("waitIncrementSeconds", rep.wait_increment_seconds),
        ("maxFailureWaitSeconds", rep.max_failure_wait_seconds),
        ("maxDeltaTimeSeconds", rep.max_delta_time_seconds),
    ] {
        if let Some(v) = value
            && !(0..=MAX_SECONDS).contains(&v)
        {
            out.push(Problem::new(
                key,
                format!("{v} is out of range: set a number of seconds from 0 to {MAX_SECONDS}"),
            ));
        }
    }
}

pub(crate) fn valid_realm_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && name != "."
        && name != ".."
}

/// Checks `roles.realm` and returns the role names users may hold, or `None` when the
/// file defines no realm roles and none are stored (nothing to check against).
fn defined_roles<'a>(
    rep: &'a RealmRepresentation,
    stored_roles: Option<&'a [RoleDef]>,
    out: &mut Vec<Problem>,
) -> Option<HashSet<&'a str>> {
    let Some(roles) = rep.roles.as_ref().and_then(|r| r.realm.as_ref()) else {
        return stored_roles.map(|rs| rs.iter().map(|r| r.name.as_str()).collect());
    };
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, role) in roles.iter().enumerate() {
        let at = format!("roles.realm[{i}].name");
        match role.name.as_deref() {
            None | Some("") => out.push(Problem::new(at, "required: give the role a name")),
            Some(name) => {
                if let Some(first) = seen.insert(name, i) {
                    out.push(Problem::new(
                        at,
                        format!(
                            "role \"{name}\" is already defined by roles.realm[{first}]: keep one"
                        ),
                    ));
                }
            }
        }
    }
    Some(seen.into_keys().collect())
}

fn check_clients(rep: &RealmRepresentation, out: &mut Vec<Problem>) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, c) in rep.clients.iter().flatten().enumerate() {
        if keycloak::skip_reason(c).is_some() {
            continue;
        }
        let at = format!("clients[{i}]");
        let id = match c.client_id.as_deref() {
            None | Some("") => {
                out.push(Problem::new(
                    format!("{at}.clientId"),
                    "required: set the client's id",
                ));
                ""
            }
            Some(id) => {
                if let Some(first) = seen.insert(id, i) {
                    out.push(Problem::new(
                        format!("{at}.clientId"),
                        format!(
                            "\"{id}\" is already the clientId of clients[{first}]: client ids \
                             must be unique, rename or remove one"
                        ),
                    ));
                }
                id
            }
        };
        check_secret(c, &at, id, out);
        for (j, uri) in c.redirect_uris.iter().flatten().enumerate() {
            if let Err(why) = check_redirect_uri(uri) {
                out.push(Problem::new(format!("{at}.redirectUris[{j}]"), why));
            }
        }
        check_client_attributes(c, &at, out);
        let mut mapper_names: HashMap<&str, usize> = HashMap::new();
        for (j, m) in c.protocol_mappers.iter().flatten().enumerate() {
            if !keycloak::is_oidc_mapper(m) {
                continue;
            }
            let mat = format!("{at}.protocolMappers[{j}]");
            match m.name.as_deref() {
                None | Some("") => out.push(Problem::new(
                    format!("{mat}.name"),
                    "required: name the mapper",
                )),
                Some(name) => {
                    if let Some(first) = mapper_names.insert(name, j) {
                        out.push(Problem::new(
                            format!("{mat}.name"),
                            format!(
                                "\"{name}\" is already the name of protocolMappers[{first}] of \
                                 this client: mapper names must be unique per client"
                            ),
                        ));
                    }
                }
            }
            if m.protocol_mapper.as_deref().is_none_or(str::is_empty) {
                out.push(Problem::new(
                    format!("{mat}.protocolMapper"),
                    "required: set the mapper type, e.g. \"oidc-usermodel-attribute-mapper\"",
                ));
            }
            for (key, value) in m.config.iter().flatten() {
                if value.len() > MAX_MAPPER_VALUE {
                    out.push(Problem::new(
                        join_key(&format!("{mat}.config"), key),
                        format!(
                            "{} bytes: at most {MAX_MAPPER_VALUE} (a claim goes into every token, \
                             and a token may not exceed 16 KiB)",
                            value.len()
                        ),
                    ));
                }
            }
        }
    }
}

fn check_secret(c: &ClientRepresentation, at: &str, id: &str, out: &mut Vec<Problem>) {
    if keycloak::is_public(c) {
        return;
    }
    // Also without any flow: such a client (a resource server) still authenticates, to
    // introspect tokens. Only a bearer-only client may come without one, as in Keycloak.
    let needs_secret = !c.bearer_only.unwrap_or(false);
    match c.secret.as_deref() {
        None | Some("") if needs_secret => out.push(Problem::new(
            format!("{at}.secret"),
            format!(
                "confidential client \"{id}\" needs a secret: set {at}.secret or publicClient: true"
            ),
        )),
        // Keycloak's partial export replaces secrets with asterisks; importing that
        // would make a well-known string the client's secret.
        Some(s) if !s.is_empty() && s.chars().all(|ch| ch == '*') => out.push(Problem::new(
            format!("{at}.secret"),
            "the secret is masked (Keycloak's partial export writes asterisks): set the real \
             secret, or a new one",
        )),
        _ => {}
    }
}

fn check_client_attributes(c: &ClientRepresentation, at: &str, out: &mut Vec<Problem>) {
    let Some(attrs) = c.attributes.as_ref() else {
        return;
    };
    let attr_path = |key: &str| join_key(&format!("{at}.attributes"), key);
    match attrs.get(PKCE_METHOD).map(String::as_str) {
        None | Some("" | "S256") => {}
        Some("plain") => out.push(Problem::new(
            attr_path(PKCE_METHOD),
            "\"plain\" is refused: it does not protect a stolen code; use \"S256\" or leave it empty",
        )),
        Some(other) => out.push(Problem::new(
            attr_path(PKCE_METHOD),
            format!("unknown method \"{other}\": use \"S256\" or leave it empty"),
        )),
    }
    if let Some(v) = attrs.get(ACCESS_TOKEN_LIFESPAN)
        && !v.is_empty()
        && !v
            .parse::<i64>()
            .is_ok_and(|n| (1..=MAX_SECONDS).contains(&n))
    {
        out.push(Problem::new(
            attr_path(ACCESS_TOKEN_LIFESPAN),
            format!(
                "\"{v}\" is not a lifespan: set a number of seconds from 1 to {MAX_SECONDS}, or \
                 leave it empty for the realm's"
            ),
        ));
    }
    if let Some(v) = attrs.get(POST_LOGOUT_URIS) {
        // `##`-separated like Keycloak's; `+` stands for "the redirect URIs".
        for uri in v.split("##").filter(|u| !u.is_empty() && *u != "+") {
            if let Err(why) = check_redirect_uri(uri) {
                out.push(Problem::new(attr_path(POST_LOGOUT_URIS), why));
            }
        }
    }
}

fn check_users(rep: &RealmRepresentation, roles: Option<&HashSet<&str>>, out: &mut Vec<Problem>) {
    let realm = rep.realm.as_deref().unwrap_or_default();
    let mut usernames: HashMap<String, usize> = HashMap::new();
    let mut emails: HashMap<String, usize> = HashMap::new();
    let mut ids: HashMap<&str, usize> = HashMap::new();
    for (i, u) in rep.users.iter().flatten().enumerate() {
        let at = format!("users[{i}]");
        match u.username.as_deref().map(str::trim) {
            None | Some("") => out.push(Problem::new(
                format!("{at}.username"),
                "required: set a username",
            )),
            Some(name) => {
                if let Some(first) = usernames.insert(name.to_lowercase(), i) {
                    out.push(Problem::new(
                        format!("{at}.username"),
                        format!(
                            "\"{name}\" is already the username of users[{first}] (usernames \
                             are compared ignoring case): keep one"
                        ),
                    ));
                }
            }
        }
        match u.id.as_deref() {
            Some("") => out.push(Problem::new(
                format!("{at}.id"),
                "empty: remove \"id\" to have one generated",
            )),
            Some(id) => {
                if let Some(first) = ids.insert(id, i) {
                    out.push(Problem::new(
                        format!("{at}.id"),
                        format!("\"{id}\" is already the id of users[{first}]: ids must be unique"),
                    ));
                }
            }
            None => {}
        }
        if let Some(email) = u.email.as_deref().map(str::trim).filter(|e| !e.is_empty())
            && let Some(first) = emails.insert(email.to_lowercase(), i)
        {
            out.push(Problem::new(
                format!("{at}.email"),
                format!(
                    "\"{email}\" is already the email of users[{first}] (emails are unique per \
                     realm, compared ignoring case): change or remove one"
                ),
            ));
        }
        if let Some(roles) = roles {
            for (j, role) in u.realm_roles.iter().flatten().enumerate() {
                if !roles.contains(role.as_str()) && !keycloak::is_builtin_role(realm, role) {
                    out.push(Problem::new(
                        format!("{at}.realmRoles[{j}]"),
                        format!(
                            "role \"{role}\" is not defined: add {{\"name\": \"{role}\"}} to \
                             roles.realm, or remove it from the user"
                        ),
                    ));
                }
            }
        }
        check_credentials(u, &at, out);
    }
}

fn check_credentials(u: &UserRepresentation, at: &str, out: &mut Vec<Problem>) {
    let mut first_password = None;
    for (j, c) in u.credentials.iter().flatten().enumerate() {
        let Some(value) = keycloak::password_value(c) else {
            continue;
        };
        if value.is_empty() {
            out.push(Problem::new(
                format!("{at}.credentials[{j}].value"),
                "empty password: set a password or remove the credential",
            ));
        }
        if let Some(first) = first_password {
            out.push(Problem::new(
                format!("{at}.credentials[{j}]"),
                format!("a second password (the first is credentials[{first}]): keep one"),
            ));
        } else {
            first_password = Some(j);
        }
    }
}
