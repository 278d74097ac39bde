//! Parse → validate → convert → export, end to end, on a Keycloak-export-like file.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};

use super::*;
use crate::model::{Realm, Timestamp, User};
use crate::rng::CountingRng;
use crate::secret::{PasswordCost, hash_client_secret, verify_password};
use crate::store::RealmImport;

const EXPORT: &str = include_str!("testdata/keycloak-export.json");
const NOW: Timestamp = 1_700_000_000;

fn parse(json: &str) -> ParsedRealm {
    parse_realm(json.as_bytes(), "realm.json").unwrap()
}

fn import(parsed: &ParsedRealm, realm: Option<&Realm>, users: &[User]) -> RealmImport {
    to_import(
        parsed,
        realm,
        users,
        NOW,
        PasswordCost::MINIMUM,
        &CountingRng::default(),
    )
    .unwrap()
}

/// Imports `parsed` on top of an earlier import, as the store would hold it.
fn reimport(parsed: &ParsedRealm, before: &RealmImport) -> RealmImport {
    import(parsed, before.realm.as_ref(), &before.users)
}

/// What `to_import` refuses `doc` with, as a new realm.
fn import_problems(doc: &Value) -> ImportError {
    to_import(
        &parse(&doc.to_string()),
        None,
        &[],
        NOW,
        PasswordCost::MINIMUM,
        &CountingRng::default(),
    )
    .unwrap_err()
}

/// The problems `validate` finds in `doc`.
fn problems(doc: Value) -> Vec<Problem> {
    validate(&parse(&doc.to_string())).unwrap_err().problems
}

#[test]
fn keycloak_export_imports_with_warnings() {
    let parsed = parse(EXPORT);
    let w = &parsed.warnings;
    for expected in [
        "realm.json: unknown field clients[0].frontchannelLogout (ignored)",
        "realm.json: unknown field id (ignored)",
        "realm.json: unknown field roles.realm[0].composite (ignored)",
        "realm.json: unknown field roles.client (ignored)",
        "realm.json: unknown field users[0].requiredActions (ignored)",
        "realm.json: unknown field clients[0].protocolMappers[0].consentRequired (ignored)",
        "realm.json: identityProviders: not supported yet: 1 identity provider(s) not imported",
    ] {
        assert!(
            w.iter().any(|x| x == expected),
            "missing {expected:?} in {w:#?}"
        );
    }
    // One warning per skipped built-in client, none for the fields inside it.
    assert!(
        w.iter()
            .any(|x| x.starts_with("realm.json: clients[2]: Keycloak's built-in client"))
    );
    assert!(
        !w.iter()
            .any(|x| x.contains("clients[2].") || x.contains("clients[3].")),
        "{w:#?}"
    );
    // The hashed password and the OTP credential are reported, not their fields.
    assert!(
        w.iter()
            .any(|x| x.starts_with("realm.json: users[0].credentials[0]: a password hash"))
    );
    assert!(
        w.iter()
            .any(|x| x.starts_with("realm.json: users[1].credentials[1]: credential type"))
    );
    assert!(
        !w.iter().any(|x| x.contains("credentials[0].userLabel")),
        "{w:#?}"
    );

    validate(&parsed).unwrap();
    let out = import(&parsed, None, &[]);
    let realm = out.realm.as_ref().unwrap();
    assert_eq!(realm.name, "demo");
    assert_eq!(realm.signature_alg, pforte_jose::Alg::RS256);
    assert_eq!(realm.brute_force.failure_factor, 30);
    let roles: Vec<&str> = realm.roles.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        roles,
        [
            "offline_access",
            "default-roles-demo",
            "app-admin",
            "uma_authorization"
        ]
    );

    let ids: Vec<&str> = out.clients.iter().map(|c| c.client_id.as_str()).collect();
    assert_eq!(ids, ["demo-app", "token-exchange-client"]);
    let app = &out.clients[0];
    assert!(app.public_client && app.secret_hash.is_none() && app.standard_flow_enabled);
    assert_eq!(
        app.protocol_mappers[0].protocol_mapper,
        "oidc-usermodel-attribute-mapper"
    );
    let tx = &out.clients[1];
    assert_eq!(
        tx.secret_hash,
        Some(hash_client_secret("k3Q9sVx2LmP8rT4wYz7bN1cF6hJ0dG5e"))
    );
    assert!(tx.service_accounts_enabled && !tx.standard_flow_enabled);

    let alice = &out.users[0];
    assert_eq!(alice.id, "8f0e4c1a-6a0b-4f7e-9a51-0d3c2b1a0001");
    assert_eq!(alice.username, "alice");
    assert_eq!(alice.email.as_deref(), Some("alice@example.org"));
    assert_eq!(alice.attributes["locale"], ["de"]);
    assert_eq!(alice.password_hash, None);
    assert_eq!(alice.created_at, NOW);
    let bob = &out.users[1];
    assert_eq!(bob.id.len(), 36);
    assert!(verify_password(
        "bob-password",
        bob.password_hash.as_deref().unwrap()
    ));
}

#[test]
fn wrong_type_reports_the_exact_path() {
    let doc =
        json!({"realm": "d", "users": [{"username": "a"}, {"username": "b", "enabled": "yes"}]});
    let e = parse_realm(doc.to_string().as_bytes(), "realm.json").unwrap_err();
    assert_eq!(e.problems[0].path, "users[1].enabled");
    assert!(
        e.to_string().starts_with(
            r#"realm.json: users[1].enabled: invalid type: string "yes", expected a boolean"#
        ),
        "{e}"
    );
}

#[test]
fn every_rule_has_a_failing_case() {
    let confidential = |extra: Value| {
        let mut c = json!({"clientId": "c", "secret": "0123456789abcdef0123"});
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({"realm": "d", "clients": [c]})
    };
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!({}), "realm", "required"),
        (
            json!({"realm": "my realm"}),
            "realm",
            "not a valid realm name",
        ),
        (
            json!({"realm": "a".repeat(65)}),
            "realm",
            "not a valid realm name",
        ),
        (json!({"realm": ".."}), "realm", "not a valid realm name"),
        (
            json!({"realm": "d", "defaultSignatureAlgorithm": "HS256"}),
            "defaultSignatureAlgorithm",
            "use ES256",
        ),
        (
            json!({"realm": "d", "accessTokenLifespan": 0}),
            "accessTokenLifespan",
            "from 1 to",
        ),
        (
            json!({"realm": "d", "ssoSessionMaxLifespan": -5}),
            "ssoSessionMaxLifespan",
            "from 1 to",
        ),
        (
            json!({"realm": "d", "failureFactor": 0}),
            "failureFactor",
            "at least 1",
        ),
        (
            json!({"realm": "d", "waitIncrementSeconds": -1}),
            "waitIncrementSeconds",
            "from 0 to",
        ),
        (
            json!({"realm": "d", "roles": {"realm": [{"name": "x"}, {"name": "x"}]}}),
            "roles.realm[1].name",
            "already defined",
        ),
        (
            json!({"realm": "d", "clients": [{"publicClient": true}]}),
            "clients[0].clientId",
            "required",
        ),
        (
            json!({"realm": "d", "clients": [{"clientId": "a", "publicClient": true}, {"clientId": "a", "publicClient": true}]}),
            "clients[1].clientId",
            "must be unique",
        ),
        (
            json!({"realm": "d", "clients": [{"clientId": "p", "publicClient": true}, {"clientId": "c"}]}),
            "clients[1].secret",
            "needs a secret: set clients[1].secret or publicClient: true",
        ),
        (
            json!({"realm": "d", "clients": [{"clientId": "c", "serviceAccountsEnabled": true, "standardFlowEnabled": false}]}),
            "clients[0].secret",
            "needs a secret",
        ),
        (
            confidential(json!({"secret": "**********"})),
            "clients[0].secret",
            "masked",
        ),
        (
            confidential(json!({"redirectUris": ["https://a.example/*"]})),
            "clients[0].redirectUris[0]",
            "matches redirect URIs exactly",
        ),
        (
            confidential(json!({"redirectUris": ["https://a.example/cb", "/cb"]})),
            "clients[0].redirectUris[1]",
            "not an absolute URI",
        ),
        (
            confidential(json!({"redirectUris": ["https://a.example/cb#x"]})),
            "clients[0].redirectUris[0]",
            "fragment",
        ),
        (
            confidential(json!({"attributes": {"pkce.code.challenge.method": "plain"}})),
            r#"clients[0].attributes["pkce.code.challenge.method"]"#,
            "\"plain\" is refused",
        ),
        (
            confidential(json!({"attributes": {"access.token.lifespan": "-1"}})),
            r#"clients[0].attributes["access.token.lifespan"]"#,
            "not a lifespan",
        ),
        (
            confidential(
                json!({"attributes": {"post.logout.redirect.uris": "+##https://a.example/*"}}),
            ),
            r#"clients[0].attributes["post.logout.redirect.uris"]"#,
            "wildcard",
        ),
        (
            confidential(json!({"protocolMappers": [{"name": "m"}]})),
            "clients[0].protocolMappers[0].protocolMapper",
            "required",
        ),
        (
            json!({"realm": "d", "users": [{"email": "a@example.org"}]}),
            "users[0].username",
            "required",
        ),
        (
            json!({"realm": "d", "users": [{"username": "Ann"}, {"username": "ann"}]}),
            "users[1].username",
            "ignoring case",
        ),
        (
            json!({"realm": "d", "users": [{"username": "a", "email": "X@example.org"}, {"username": "b", "email": "x@Example.org"}]}),
            "users[1].email",
            "unique per realm",
        ),
        (
            json!({"realm": "d", "users": [{"username": "a", "id": "1"}, {"username": "b", "id": "1"}]}),
            "users[1].id",
            "must be unique",
        ),
        (
            json!({"realm": "d", "roles": {"realm": [{"name": "r"}]}, "users": [{"username": "a", "realmRoles": ["r", "boss"]}]}),
            "users[0].realmRoles[1]",
            "role \"boss\" is not defined",
        ),
        (
            json!({"realm": "d", "users": [{"username": "a", "credentials": [{"type": "password", "value": ""}]}]}),
            "users[0].credentials[0].value",
            "empty password",
        ),
        (
            json!({"realm": "d", "users": [{"username": "a", "credentials": [
                {"type": "password", "value": "x"}, {"type": "password", "value": "y"}]}]}),
            "users[0].credentials[1]",
            "a second password",
        ),
    ];
    for (doc, path, fragment) in cases {
        let found = problems(doc.clone());
        assert!(
            found
                .iter()
                .any(|p| p.path == path && p.message.contains(fragment)),
            "{doc}: expected {path}: …{fragment}…, got {found:#?}"
        );
    }
}

#[test]
fn accepted_edge_cases() {
    let doc = json!({
        "realm": "my-realm.v2_x",
        "defaultSignatureAlgorithm": "EdDSA",
        "users": [{"username": "a", "realmRoles": ["offline_access", "uma_authorization", "default-roles-my-realm.v2_x"]}],
        "clients": [
            {"clientId": "native", "publicClient": true, "secret": "ignored",
             "redirectUris": ["com.example.app:/cb", "http://127.0.0.1/cb"],
             "attributes": {"pkce.code.challenge.method": "", "post.logout.redirect.uris": "+", "access.token.lifespan": ""}},
            {"clientId": "api", "bearerOnly": true},
            {"clientId": "saml", "protocol": "saml", "redirectUris": ["*"]}
        ]
    });
    let parsed = parse(&doc.to_string());
    validate(&parsed).unwrap();
    let out = import(&parsed, None, &[]);
    assert_eq!(out.clients.len(), 2);
    assert_eq!(out.clients[0].secret_hash, None);
    let api = &out.clients[1];
    assert!(
        !api.standard_flow_enabled && !api.service_accounts_enabled && api.secret_hash.is_none()
    );
}

#[test]
fn three_problems_are_all_reported() {
    let doc = json!({
        "realm": "demo",
        "clients": [{"clientId": "c", "redirectUris": ["https://a.example/*"]}],
        "users": [{"username": "x", "realmRoles": ["nope"]}],
        "roles": {"realm": []}
    });
    let e = validate(&parse(&doc.to_string())).unwrap_err();
    let paths: Vec<&str> = e.problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "clients[0].secret",
            "clients[0].redirectUris[0]",
            "users[0].realmRoles[0]"
        ]
    );
    let shown = e.to_string();
    assert_eq!(shown.lines().count(), 3);
    assert!(
        shown.lines().all(|l| l.starts_with("realm.json: ")),
        "{shown}"
    );
    // to_import refuses the same file with the same problems.
    let again = import_problems(&doc);
    assert_eq!(again, e);
}

/// Keycloak exports each service account's user; the import links it to its client, whose
/// client_credentials tokens then name it, and keeps the link when a later file has no users.
#[test]
fn a_service_account_user_is_linked_to_its_client() {
    let first = import(&parse(EXPORT), None, &[]);
    let user = first
        .users
        .iter()
        .find(|u| u.username == "service-account-token-exchange-client")
        .unwrap();
    assert_eq!(
        user.service_account_client_id.as_deref(),
        Some("token-exchange-client")
    );
    assert!(
        user.password_hash.is_none(),
        "a service account has no password"
    );
    let linked = |import: &RealmImport| {
        import
            .clients
            .iter()
            .find(|c| c.client_id == "token-exchange-client")
            .unwrap()
            .service_account_user
            .clone()
    };
    let expected = crate::model::ServiceAccountUser {
        id: "8f0e4c1a-6a0b-4f7e-9a51-0d3c2b1a0003".into(),
        realm_roles: user.realm_roles.clone(),
        disabled: false,
    };
    assert!(expected.realm_roles.contains(&"app-admin".to_owned()));
    assert_eq!(linked(&first), Some(expected.clone()));
    let demo_app = first.clients.iter().find(|c| c.client_id == "demo-app");
    assert_eq!(demo_app.unwrap().service_account_user, None);

    let mut doc: Value = serde_json::from_str(EXPORT).unwrap();
    doc.as_object_mut().unwrap().remove("users");
    let clients_only = reimport(&parse(&doc.to_string()), &first);
    assert_eq!(linked(&clients_only), Some(expected));
}

/// The file's users decide a client's service-account user; a stored user the file
/// redefines no longer counts with its stored link. A service-account user with a
/// password is refused: its `sub` and roles would go into the client's tokens.
#[test]
fn service_account_links_follow_the_file() {
    let client = |id: &str| crate::model::Client {
        client_id: id.into(),
        ..export_client_fixture()
    };
    let user = |id: &str, sa_for: Option<&str>| User {
        service_account_client_id: sa_for.map(Into::into),
        ..User::new(id, "demo", format!("user-{id}"), NOW)
    };
    let mut clients = vec![client("a"), client("b")];
    // Stored: s links to a. The file moves s to b.
    link_service_accounts(
        &mut clients,
        &[user("s", Some("b"))],
        &[user("s", Some("a")), user("t", None)],
    );
    assert_eq!(clients[0].service_account_user, None);
    assert_eq!(clients[1].service_account_user.as_ref().unwrap().id, "s");
    // Only stored users: they count.
    link_service_accounts(&mut clients, &[], &[user("s", Some("a"))]);
    assert_eq!(clients[0].service_account_user.as_ref().unwrap().id, "s");
    assert_eq!(clients[1].service_account_user, None);

    let doc = json!({
        "realm": "demo",
        "users": [{
            "username": "service-account-x",
            "serviceAccountClientId": "x",
            "credentials": [{ "type": "password", "value": "secret" }]
        }]
    });
    let err = import_problems(&doc);
    assert!(
        err.problems
            .iter()
            .any(|p| p.to_string().contains("service-account user")),
        "{err:?}"
    );
}

/// A client of the Keycloak export, converted.
fn export_client_fixture() -> crate::model::Client {
    import(&parse(EXPORT), None, &[]).clients[0].clone()
}

#[test]
fn importing_twice_changes_nothing() {
    let parsed = parse(EXPORT);
    let first = import(&parsed, None, &[]);
    let second = reimport(&parsed, &first);
    assert_eq!(second, first);
    // Also when stored users already have other created_at values and the rng differs.
    let third = to_import(
        &parsed,
        first.realm.as_ref(),
        &first.users,
        NOW + 1000,
        PasswordCost::MINIMUM,
        &CountingRng::default(),
    )
    .unwrap();
    assert_eq!(third, first);
}

#[test]
fn changing_one_clients_redirect_uris_changes_only_that_client() {
    let parsed = parse(EXPORT);
    let first = import(&parsed, None, &[]);
    let mut doc: Value = serde_json::from_str(EXPORT).unwrap();
    doc["clients"][0]["redirectUris"] = json!(["https://app.example.org/callback"]);
    let second = reimport(&parse(&doc.to_string()), &first);
    assert_eq!(second.realm, first.realm);
    assert_eq!(second.users, first.users);
    assert_eq!(second.clients[1], first.clients[1]);
    assert_eq!(
        second.clients[0].redirect_uris,
        ["https://app.example.org/callback"]
    );
    let mut expected = first.clients[0].clone();
    expected.redirect_uris = second.clients[0].redirect_uris.clone();
    assert_eq!(second.clients[0], expected);
}

#[test]
fn sections_the_file_omits_are_left_alone() {
    let first = import(&parse(EXPORT), None, &[]);
    // Keycloak's separate users file: realm name and users only.
    let users_file =
        json!({"realm": "demo", "users": [{"username": "carol", "realmRoles": ["app-admin"]}]});
    let parsed = parse(&users_file.to_string());
    validate(&parsed).unwrap();
    let out = reimport(&parsed, &first);
    assert_eq!(out.realm, first.realm, "realm settings and roles kept");
    assert!(out.clients.is_empty(), "no clients defined, none written");
    assert_eq!(out.users.len(), 1);
    assert_eq!(out.users[0].realm_roles, ["app-admin"]);

    // A role neither in the file nor stored is refused by to_import.
    let bad = json!({"realm": "demo", "users": [{"username": "dave", "realmRoles": ["ghost"]}]});
    let e = to_import(
        &parse(&bad.to_string()),
        first.realm.as_ref(),
        &first.users,
        NOW,
        PasswordCost::MINIMUM,
        &CountingRng::default(),
    )
    .unwrap_err();
    assert_eq!(e.problems[0].path, "users[0].realmRoles[0]");
}

#[test]
fn stored_users_keep_identity_and_password() {
    let first = import(&parse(EXPORT), None, &[]);
    let bob = first.users[1].clone();

    // Matched by username (any case); no password in the file keeps the stored one.
    let doc = json!({"realm": "demo", "users": [{"username": "BOB", "firstName": "Robert"}]});
    let out = reimport(&parse(&doc.to_string()), &first);
    let u = &out.users[0];
    assert_eq!(
        (u.id.as_str(), u.created_at),
        (bob.id.as_str(), bob.created_at)
    );
    assert_eq!(u.password_hash, bob.password_hash);
    assert_eq!(u.email, bob.email, "absent field keeps the stored value");
    assert_eq!(u.first_name.as_deref(), Some("Robert"));

    // A different password is hashed anew; "" clears an optional text.
    let doc = json!({"realm": "demo", "users": [{"username": "bob", "email": "",
        "credentials": [{"type": "password", "value": "new-password"}]}]});
    let out = reimport(&parse(&doc.to_string()), &first);
    let hash = out.users[0].password_hash.as_deref().unwrap();
    assert!(verify_password("new-password", hash));
    assert_eq!(out.users[0].email, None);
}

#[test]
fn conflicts_with_stored_users_are_reported() {
    let first = import(&parse(EXPORT), None, &[]);
    // A new user taking bob's email, and one with a new id but alice's username.
    let doc = json!({"realm": "demo", "users": [
        {"username": "eve", "email": "BOB@example.org"},
        {"id": "other-id", "username": "alice"}
    ]});
    let e = to_import(
        &parse(&doc.to_string()),
        first.realm.as_ref(),
        &first.users,
        NOW,
        PasswordCost::MINIMUM,
        &CountingRng::default(),
    )
    .unwrap_err();
    let paths: Vec<&str> = e.problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, ["users[0].email", "users[1].username"], "{e}");
}

#[test]
fn new_records_take_keycloak_defaults() {
    let doc = json!({"realm": "fresh", "clients": [{"clientId": "c", "secret": "0123456789abcdef0123"}],
        "users": [{"username": "u"}]});
    let out = import(&parse(&doc.to_string()), None, &[]);
    let mut expected = Realm::new("fresh");
    expected.roles = super::keycloak::builtin_roles("fresh").to_vec();
    assert_eq!(out.realm, Some(expected));
    let c = &out.clients[0];
    assert!(
        c.enabled && !c.public_client && c.standard_flow_enabled && !c.service_accounts_enabled
    );
    let u = &out.users[0];
    assert!(u.enabled && !u.email_verified && u.password_hash.is_none());
}

#[test]
fn export_has_no_secrets_and_round_trips() {
    let first = import(&parse(EXPORT), None, &[]);
    let realm = first.realm.as_ref().unwrap();
    let exported = export_realm(realm, &first.clients, &first.users);
    let text = serde_json::to_string_pretty(&exported).unwrap();
    assert!(!text.contains("k3Q9sVx2"), "client secret exported");
    assert!(!text.contains("sha256:"), "client secret hash exported");
    assert!(!text.contains("argon2"), "password hash exported");
    assert!(
        !text.contains("\"secret\"") && !text.contains("\"credentials\""),
        "{text}"
    );

    let parsed = parse(&text);
    assert!(parsed.warnings.is_empty(), "{:#?}", parsed.warnings);
    assert_eq!(parsed.rep, exported);

    // Re-importing the export changes nothing, once the confidential client's secret (which
    // an export never carries) is filled in again.
    let mut doc: Value = serde_json::from_str(&text).unwrap();
    doc["clients"][1]["secret"] = json!("k3Q9sVx2LmP8rT4wYz7bN1cF6hJ0dG5e");
    assert_eq!(reimport(&parse(&doc.to_string()), &first), first);
    let e = validate(&parse(&text)).unwrap_err();
    assert_eq!(e.problems[0].path, "clients[1].secret");
}

/// A Keycloak export carries a generated secret even for clients that authenticate with a
/// signed JWT or a certificate; in Keycloak that secret opens nothing, so it must not open
/// anything in pforte either: such clients are not imported.
#[test]
fn clients_with_another_authenticator_are_not_imported_with_their_secret() {
    let secret = "0123456789abcdef0123456789abcdef";
    let doc = json!({"realm": "d", "clients": [
        {"clientId": "jwt-app", "clientAuthenticatorType": "client-jwt", "secret": secret,
         "serviceAccountsEnabled": true},
        {"clientId": "x509-app", "clientAuthenticatorType": "client-x509", "secret": secret},
        {"clientId": "secret-app", "clientAuthenticatorType": "client-secret", "secret": secret},
        {"clientId": "plain-app", "secret": secret}
    ]});
    let imported = import(&parse(&doc.to_string()), None, &[]);
    let ids: Vec<&str> = imported
        .clients
        .iter()
        .map(|c| c.client_id.as_str())
        .collect();
    assert_eq!(ids, ["secret-app", "plain-app"]);
    assert!(
        imported
            .clients
            .iter()
            .all(|c| c.secret_hash.as_deref() == Some(&*hash_client_secret(secret)))
    );
    // Exported, a confidential client names its authenticator as Keycloak does.
    let exported = export_client(&imported.clients[0]);
    assert_eq!(
        exported.client_authenticator_type.as_deref(),
        Some("client-secret")
    );
}

/// Client settings pforte does not act on are reported by name, never silently dropped or
/// silently kept: unknown attributes are not imported (one warning per client), mappers of
/// an unsupported type are imported without effect (one warning each).
#[test]
fn unsupported_client_settings_are_reported_by_name() {
    let doc = json!({"realm": "d", "clients": [{
        "clientId": "app", "publicClient": true, "redirectUris": ["https://app.example/cb"],
        "attributes": {
            "pkce.code.challenge.method": "S256",
            "dpop.bound.access.tokens": "true",
            "client.secret.rotated": "old-secret-in-clear"
        },
        "protocolMappers": [
            {"name": "pairwise", "protocol": "openid-connect",
             "protocolMapper": "oidc-sha256-pairwise-sub-mapper", "config": {}},
            {"name": "kvnr", "protocol": "openid-connect",
             "protocolMapper": "oidc-usermodel-attribute-mapper",
             "config": {"user.attribute": "kvnr", "claim.name": "kvnr"}}
        ]
    }]});
    let parsed = parse(&doc.to_string());
    assert_eq!(
        parsed.warnings,
        [
            "realm.json: clients[0].attributes: not supported, not imported: \
             client.secret.rotated, dpop.bound.access.tokens",
            "realm.json: clients[0].protocolMappers[0].protocolMapper: \
             \"oidc-sha256-pairwise-sub-mapper\" is not supported: mapper \"pairwise\" is kept \
             without effect (supported: oidc-usermodel-attribute-mapper, \
             oidc-hardcoded-claim-mapper)"
        ]
    );
    let imported = import(&parsed, None, &[]);
    let attributes: Vec<&str> = imported.clients[0]
        .attributes
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(attributes, ["pkce.code.challenge.method"]);
}

#[test]
fn an_oversized_mapper_value_is_refused() {
    let doc = |value: String| {
        json!({"realm": "d", "clients": [{
            "clientId": "svc", "secret": "0123456789abcdef0123456789abcdef",
            "serviceAccountsEnabled": true, "standardFlowEnabled": false,
            "protocolMappers": [{"name": "big", "protocol": "openid-connect",
                "protocolMapper": "oidc-hardcoded-claim-mapper",
                "config": {"claim.name": "big", "claim.value": value}}]
        }]})
    };
    let found = problems(doc("x".repeat(20_000)));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        found[0].to_string(),
        "clients[0].protocolMappers[0].config[\"claim.value\"]: 20000 bytes: at most 2048 (a \
         claim goes into every token, and a token may not exceed 16 KiB)"
    );
    assert!(validate(&parse(&doc("x".repeat(2048)).to_string())).is_ok());
}

/// A confidential client with no flow at all is a resource server that authenticates to
/// introspect tokens: without a secret in the file (an export never carries one), importing
/// it would silently leave it unable to. The file must give one, as for any confidential
/// client; only a bearer-only client may come without.
#[test]
fn a_confidential_client_without_flows_still_needs_a_secret() {
    let doc = |secret: Option<&str>| {
        let mut c = json!({"clientId": "rs", "standardFlowEnabled": false,
                           "serviceAccountsEnabled": false});
        if let Some(s) = secret {
            c["secret"] = json!(s);
        }
        json!({"realm": "d", "clients": [c]})
    };
    let found = problems(doc(None));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        found[0].to_string(),
        "clients[0].secret: confidential client \"rs\" needs a secret: set clients[0].secret or \
         publicClient: true"
    );
    let secret = "0123456789abcdef0123456789abcdef";
    let imported = import(&parse(&doc(Some(secret)).to_string()), None, &[]);
    assert_eq!(
        imported.clients[0].secret_hash.as_deref(),
        Some(&*hash_client_secret(secret))
    );
}

#[test]
fn a_service_account_user_never_gets_a_password() {
    const REFUSED: &str = "a service-account user (serviceAccountClientId) cannot have a password";
    let refusal = |doc: &Value, before: &[User]| {
        to_import(
            &parse(&doc.to_string()),
            None,
            before,
            NOW,
            PasswordCost::MINIMUM,
            &CountingRng::default(),
        )
        .err()
        .map(|e| {
            e.problems
                .iter()
                .map(|p| format!("{}: {}", p.path, p.message))
                .collect::<Vec<_>>()
        })
    };
    let expected = Some(vec![format!("users[0]: {REFUSED}")]);
    let password = json!([{"type": "password", "value": "pw"}]);
    // In one file.
    let doc = json!({"realm": "demo", "users": [{"username": "service-account-backend",
        "serviceAccountClientId": "backend", "credentials": password}]});
    assert_eq!(refusal(&doc, &[]), expected);

    // The link stored (Keycloak's users file came first), the password in a later file.
    let linked = import(
        &parse(
            &json!({"realm": "demo", "users": [{"username": "service-account-backend",
                "serviceAccountClientId": "backend"}]})
            .to_string(),
        ),
        None,
        &[],
    );
    let doc = json!({"realm": "demo", "users": [{"username": "service-account-backend",
        "credentials": password}]});
    assert_eq!(refusal(&doc, &linked.users), expected);

    // The password stored, the link in a later file.
    let person = import(
        &parse(
            &json!({"realm": "demo", "users": [{"username": "service-account-backend",
                "credentials": password}]})
            .to_string(),
        ),
        None,
        &[],
    );
    assert!(person.users[0].password_hash.is_some());
    let doc = json!({"realm": "demo", "users": [{"username": "service-account-backend",
        "serviceAccountClientId": "backend"}]});
    assert_eq!(refusal(&doc, &person.users), expected);

    // Re-importing the linked user without credentials stays fine.
    let doc = json!({"realm": "demo", "users": [{"username": "service-account-backend",
        "enabled": true}]});
    assert_eq!(refusal(&doc, &linked.users), None);
}
