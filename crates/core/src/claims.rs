//! Which user claims a token carries: by scope (OIDC Core §5.4) plus the client's protocol
//! mappers (Keycloak's `oidc-usermodel-attribute-mapper` and `oidc-hardcoded-claim-mapper`).

use serde_json::{Map, Value, json};

use crate::model::{Client, ProtocolMapper, User};
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

/// The user's claims for `target` under `scope`.
pub fn user_claims(
    user: &User,
    client: &Client,
    granted: &str,
    target: Target,
) -> Map<String, Value> {
    let mut c = Map::new();
    if scope::contains(granted, "profile") {
        let name = [user.first_name.as_deref(), user.last_name.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        if !name.is_empty() {
            c.insert("name".into(), json!(name));
        }
        if let Some(v) = &user.first_name {
            c.insert("given_name".into(), json!(v));
        }
        if let Some(v) = &user.last_name {
            c.insert("family_name".into(), json!(v));
        }
        c.insert("preferred_username".into(), json!(user.username));
    }
    if scope::contains(granted, "email")
        && let Some(email) = &user.email
    {
        c.insert("email".into(), json!(email));
        c.insert("email_verified".into(), json!(user.email_verified));
    }
    // Keycloak's realm-roles mapper adds nothing for a user without realm roles.
    if target == Target::AccessToken
        && scope::contains(granted, "roles")
        && !user.realm_roles.is_empty()
    {
        c.insert("realm_access".into(), json!({ "roles": user.realm_roles }));
    }
    for mapper in &client.protocol_mappers {
        apply_mapper(mapper, user, target, &mut c);
    }
    c
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
    fn escaped_dot_is_literal() {
        let mut m = Map::new();
        insert_nested(&mut m, r"a\.b", json!(1));
        assert_eq!(m["a.b"], 1);
    }
}
