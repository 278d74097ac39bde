//! Which user claims a token carries: by scope (OIDC Core §5.4) plus the client's protocol
//! mappers (Keycloak's `oidc-usermodel-attribute-mapper` and `oidc-hardcoded-claim-mapper`).

use std::borrow::Cow;

use serde_json::{Map, Value, json};

use crate::model::{Client, ProtocolMapper, User};
use crate::payload::{Claim, Payload};
use crate::scope;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    AccessToken,
    IdToken,
    Userinfo,
}

impl Target {
    fn mapper_flag(self) -> &'static str {
        match self {
            Target::AccessToken => "access.token.claim",
            Target::IdToken => "id.token.claim",
            Target::Userinfo => "userinfo.token.claim",
        }
    }
}

/// The claims the granted scopes release (OIDC Core §5.4), and Keycloak's realm roles, in
/// a fixed order.
fn standard_claims<'a>(
    user: &'a User,
    granted: &str,
    target: Target,
    mut emit: impl FnMut(&'static str, Claim<'a>),
) {
    if scope::contains(granted, "profile") {
        let name: Cow<'a, str> = match (user.first_name.as_deref(), user.last_name.as_deref()) {
            (Some(first), Some(last)) => Cow::Owned(format!("{first} {last}")),
            (Some(one), None) | (None, Some(one)) => Cow::Borrowed(one),
            (None, None) => Cow::Borrowed(""),
        };
        if !name.is_empty() {
            emit("name", Claim::Str(name));
        }
        if let Some(v) = &user.first_name {
            emit("given_name", Claim::from(v.as_str()));
        }
        if let Some(v) = &user.last_name {
            emit("family_name", Claim::from(v.as_str()));
        }
        emit("preferred_username", Claim::from(user.username.as_str()));
    }
    if scope::contains(granted, "email")
        && let Some(email) = &user.email
    {
        emit("email", Claim::from(email.as_str()));
        emit("email_verified", Claim::Bool(user.email_verified));
    }
    if target == Target::AccessToken && releases_realm_roles(granted, &user.realm_roles) {
        emit("realm_access", Claim::RealmAccess(&user.realm_roles));
    }
}

/// Whether an access token under `granted` carries `realm_access` for these roles: with the
/// `roles` scope, and (as Keycloak's realm-roles mapper) only when there is a role at all.
pub fn releases_realm_roles(granted: &str, roles: &[String]) -> bool {
    scope::contains(granted, "roles") && !roles.is_empty()
}

/// The user's claims for `target` under `scope`.
pub fn user_claims(
    user: &User,
    client: &Client,
    granted: &str,
    target: Target,
) -> Map<String, Value> {
    let mut c = Map::new();
    standard_claims(user, granted, target, |name, value| {
        c.insert(name.into(), value.into_value());
    });
    for mapper in &client.protocol_mappers {
        apply_mapper(mapper, user, target, &mut c);
    }
    c
}

/// Adds the user's claims for `target` under `granted` to a token's payload; claims already
/// in it win. The same claims as [`user_claims`], without building a map when no protocol
/// mapper is involved.
pub fn add_user_claims<'a>(
    out: &mut Payload<'a>,
    user: &'a User,
    client: &Client,
    granted: &str,
    target: Target,
) {
    if client
        .protocol_mappers
        .iter()
        .any(|m| flag(m, target.mapper_flag()))
    {
        // A mapper may replace a standard claim or nest into one (`realm_access.x`): build
        // them together as a map, exactly as userinfo does.
        for (name, value) in user_claims(user, client, granted, target) {
            out.add(name, Claim::Json(value));
        }
        return;
    }
    standard_claims(user, granted, target, |name, value| out.add(name, value));
}

fn flag(mapper: &ProtocolMapper, key: &str) -> bool {
    // Keycloak's admin console sets these to "true" by default; absent means on.
    mapper.config.get(key).is_none_or(|v| v == "true")
}

fn apply_mapper(
    mapper: &ProtocolMapper,
    user: &User,
    target: Target,
    claims: &mut Map<String, Value>,
) {
    if !flag(mapper, target.mapper_flag()) {
        return;
    }
    let Some(claim_name) = mapper.config.get("claim.name").filter(|n| !n.is_empty()) else {
        return;
    };
    let json_type = mapper
        .config
        .get("jsonType.label")
        .map(String::as_str)
        .unwrap_or("String");
    let value = match mapper.protocol_mapper.as_str() {
        "oidc-usermodel-attribute-mapper" => {
            let Some(attr) = mapper.config.get("user.attribute") else {
                return;
            };
            let Some(values) = user.attributes.get(attr).filter(|v| !v.is_empty()) else {
                return;
            };
            if mapper
                .config
                .get("multivalued")
                .is_some_and(|v| v == "true")
            {
                Value::Array(values.iter().map(|v| typed(v, json_type)).collect())
            } else {
                typed(&values[0], json_type)
            }
        }
        "oidc-hardcoded-claim-mapper" => {
            let Some(v) = mapper.config.get("claim.value") else {
                return;
            };
            typed(v, json_type)
        }
        _ => return,
    };
    insert_nested(claims, claim_name, value);
}

/// Converts a stored string to the mapper's JSON type; a value that does not parse stays a
/// string rather than disappearing.
fn typed(v: &str, json_type: &str) -> Value {
    match json_type {
        "long" | "int" => v
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| json!(v)),
        "boolean" => v
            .parse::<bool>()
            .map(Value::from)
            .unwrap_or_else(|_| json!(v)),
        "JSON" => serde_json::from_str(v).unwrap_or_else(|_| json!(v)),
        _ => json!(v),
    }
}

/// Keycloak treats dots in claim names as nesting (`a.b` → `{"a":{"b":…}}`); `\.` is a
/// literal dot.
fn insert_nested(claims: &mut Map<String, Value>, name: &str, value: Value) {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut chars = name.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '\\' if chars.peek() == Some(&'.') => {
                cur.push('.');
                chars.next();
            }
            '.' => parts.push(std::mem::take(&mut cur)),
            other => cur.push(other),
        }
    }
    parts.push(cur);
    let Some((last, path)) = parts.split_last() else {
        return;
    };
    let mut map = claims;
    for p in path {
        let entry = map
            .entry(p.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        let Value::Object(next) = entry else { return };
        map = next;
    }
    map.insert(last.clone(), value);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn user() -> User {
        User {
            email: Some("alice@example.org".into()),
            email_verified: true,
            first_name: Some("Alice".into()),
            last_name: Some("Example".into()),
            attributes: BTreeMap::from([("kvnr".into(), vec!["A123456780".into()])]),
            realm_roles: vec!["patient".into()],
            ..User::new("u1", "r", "alice", 0)
        }
    }

    fn client(mappers: Vec<ProtocolMapper>) -> Client {
        Client {
            protocol_mappers: mappers,
            ..Client::test_public()
        }
    }

    /// A mapper of `kind` for `claim`, with one more config entry (its source or value).
    fn mapper(claim: &str, kind: &str, extra: (&str, &str)) -> ProtocolMapper {
        ProtocolMapper {
            name: claim.into(),
            protocol_mapper: kind.into(),
            config: BTreeMap::from([
                ("claim.name".into(), claim.into()),
                (extra.0.into(), extra.1.into()),
            ]),
        }
    }

    #[test]
    fn scopes_release_their_claims_only() {
        let c = user_claims(&user(), &client(vec![]), "openid profile", Target::IdToken);
        assert_eq!(c["name"], "Alice Example");
        assert_eq!(c["preferred_username"], "alice");
        assert!(c.get("email").is_none());
        let c = user_claims(&user(), &client(vec![]), "openid email", Target::IdToken);
        assert_eq!(c["email"], "alice@example.org");
        assert!(c.get("name").is_none());
    }

    #[test]
    fn roles_only_in_access_tokens() {
        let c = user_claims(&user(), &client(vec![]), "roles", Target::AccessToken);
        assert_eq!(c["realm_access"]["roles"][0], "patient");
        let c = user_claims(&user(), &client(vec![]), "roles", Target::IdToken);
        assert!(c.get("realm_access").is_none());
        // Like Keycloak's realm-roles mapper: no claim for a user without realm roles.
        let mut no_roles = user();
        no_roles.realm_roles.clear();
        let c = user_claims(&no_roles, &client(vec![]), "roles", Target::AccessToken);
        assert!(c.get("realm_access").is_none(), "{c:?}");
    }

    #[test]
    fn attribute_mapper_with_nesting_and_flags() {
        let m = ProtocolMapper {
            name: "kvnr".into(),
            protocol_mapper: "oidc-usermodel-attribute-mapper".into(),
            config: BTreeMap::from([
                ("user.attribute".into(), "kvnr".into()),
                ("claim.name".into(), "health.kvnr".into()),
                ("id.token.claim".into(), "false".into()),
            ]),
        };
        let cl = client(vec![m]);
        let c = user_claims(&user(), &cl, "", Target::AccessToken);
        assert_eq!(c["health"]["kvnr"], "A123456780");
        let c = user_claims(&user(), &cl, "", Target::IdToken);
        assert!(c.get("health").is_none());
    }

    #[test]
    fn token_payload_carries_the_same_claims_as_the_map() {
        let mut users = vec![user()];
        let mut u = user();
        u.first_name = None;
        users.push(u);
        let mut u = user();
        u.last_name = None;
        u.email = None;
        users.push(u);
        let mut u = user();
        u.first_name = Some(String::new());
        u.last_name = Some("Solo".into());
        u.realm_roles.clear();
        users.push(u);
        let clients = [
            client(vec![]),
            client(vec![
                mapper(
                    "kvnr",
                    "oidc-usermodel-attribute-mapper",
                    ("user.attribute", "kvnr"),
                ),
                // Replaces a standard claim, and nests into another.
                mapper("name", "oidc-hardcoded-claim-mapper", ("claim.value", "X")),
                mapper(
                    "realm_access.extra",
                    "oidc-hardcoded-claim-mapper",
                    ("claim.value", "Y"),
                ),
            ]),
        ];
        for cl in &clients {
            for u in &users {
                for scope in ["", "openid", "openid profile email roles", "email roles"] {
                    for target in [Target::AccessToken, Target::IdToken, Target::Userinfo] {
                        let mut p = Payload::default();
                        add_user_claims(&mut p, u, cl, scope, target);
                        assert_eq!(
                            p.into_map(),
                            user_claims(u, cl, scope, target),
                            "{scope:?} {target:?} {u:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn claims_already_in_the_payload_win() {
        let m = mapper(
            "sub",
            "oidc-hardcoded-claim-mapper",
            ("claim.value", "admin"),
        );
        for cl in [client(vec![]), client(vec![m])] {
            let u = user();
            let mut p = Payload::default();
            p.add("sub", "u1");
            p.add("preferred_username", "set-by-the-token");
            add_user_claims(&mut p, &u, &cl, "profile", Target::AccessToken);
            assert_eq!(p.get("sub"), Some(&Claim::from("u1")));
            assert_eq!(
                p.get("preferred_username"),
                Some(&Claim::from("set-by-the-token"))
            );
            assert!(p.contains("name"));
        }
    }

    #[test]
    fn escaped_dot_is_literal() {
        let mut m = Map::new();
        insert_nested(&mut m, r"a\.b", json!(1));
        assert_eq!(m["a.b"], 1);
    }
}
