//! A JWT payload built claim by claim and serialised as it stands.
//!
//! Tokens are minted on every grant, so their claims are not collected in a
//! `serde_json::Map` first: that costs a string per name and per value and a sorted-tree
//! insert each (measured: about half the allocations of a refresh grant). Names and values
//! are borrowed from the realm, client and user where they can be.
//!
//! The rule that keeps names unique: **the first claim of a name wins**. Callers add the
//! claims that must not be overridden (`iss`, `sub`, `aud`, ...) before the user's claims.

use std::borrow::Cow;

use serde::ser::{Serialize, SerializeMap, SerializeStruct, Serializer};
use serde_json::Value;

/// One claim's value.
#[derive(Clone, Debug, PartialEq)]
pub enum Claim<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    Bool(bool),
    /// Keycloak's `realm_access`: `{"roles": [...]}`.
    RealmAccess(&'a [String]),
    /// Anything else, e.g. what a protocol mapper produced.
    Json(Value),
}

impl Claim<'_> {
    pub fn into_value(self) -> Value {
        match self {
            Claim::Str(s) => Value::String(s.into_owned()),
            Claim::Int(i) => Value::from(i),
            Claim::Bool(b) => Value::Bool(b),
            Claim::RealmAccess(roles) => serde_json::json!({ "roles": roles }),
            Claim::Json(v) => v,
        }
    }
}

impl<'a> From<&'a str> for Claim<'a> {
    fn from(s: &'a str) -> Self {
        Claim::Str(Cow::Borrowed(s))
    }
}

impl From<String> for Claim<'_> {
    fn from(s: String) -> Self {
        Claim::Str(Cow::Owned(s))
    }
}

impl From<i64> for Claim<'_> {
    fn from(i: i64) -> Self {
        Claim::Int(i)
    }
}

impl From<bool> for Claim<'_> {
    fn from(b: bool) -> Self {
        Claim::Bool(b)
    }
}

struct Roles<'a>(&'a [String]);

impl Serialize for Roles<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_struct("RealmAccess", 1)?;
        m.serialize_field("roles", self.0)?;
        m.end()
    }
}

impl Serialize for Claim<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Claim::Str(v) => s.serialize_str(v),
            Claim::Int(v) => s.serialize_i64(*v),
            Claim::Bool(v) => s.serialize_bool(*v),
            Claim::RealmAccess(roles) => Roles(roles).serialize(s),
            Claim::Json(v) => v.serialize(s),
        }
    }
}

/// Claims in the order they were added, each name once.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Payload<'a> {
    claims: Vec<(Cow<'a, str>, Claim<'a>)>,
}

impl<'a> Payload<'a> {
    pub fn with_capacity(n: usize) -> Self {
        Payload {
            claims: Vec::with_capacity(n),
        }
    }

    /// Adds a claim unless one of that name is already there (the first one wins).
    pub fn add(&mut self, name: impl Into<Cow<'a, str>>, value: impl Into<Claim<'a>>) {
        let name = name.into();
        if !self.contains(&name) {
            self.claims.push((name, value.into()));
        }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.claims.iter().any(|(n, _)| n == name)
    }

    pub fn get(&self, name: &str) -> Option<&Claim<'a>> {
        self.claims.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The payload as a JSON object (for tests and for callers that need a `Value`).
    pub fn into_map(self) -> serde_json::Map<String, Value> {
        self.claims
            .into_iter()
            .map(|(n, v)| (n.into_owned(), v.into_value()))
            .collect()
    }
}

impl Serialize for Payload<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.claims.len()))?;
        for (name, value) in &self.claims {
            m.serialize_entry(name, value)?;
        }
        m.end()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn first_claim_of_a_name_wins() {
        let mut p = Payload::default();
        p.add("sub", "user-1");
        p.add("sub", "mapper-says-admin");
        p.add("n", 3_i64);
        p.add(String::from("n"), true);
        assert_eq!(p.get("sub"), Some(&Claim::from("user-1")));
        let text = serde_json::to_string(&p).unwrap();
        assert_eq!(text, r#"{"sub":"user-1","n":3}"#);
    }

    #[test]
    fn serialises_like_the_equivalent_value() {
        let roles = vec!["a".to_owned(), "b\"c".to_owned()];
        let mut p = Payload::default();
        p.add("s", "x\u{0}y\n");
        p.add("i", -5_i64);
        p.add("b", false);
        p.add("realm_access", Claim::RealmAccess(&roles));
        p.add("j", Claim::Json(json!({"k": [1, null]})));
        let parsed: Value = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        let expected = json!({
            "s": "x\u{0}y\n", "i": -5, "b": false,
            "realm_access": {"roles": ["a", "b\"c"]}, "j": {"k": [1, null]},
        });
        assert_eq!(parsed, expected);
        assert_eq!(Value::Object(p.into_map()), expected);
    }
}
