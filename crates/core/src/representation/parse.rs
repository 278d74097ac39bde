//! Reading a realm file: JSON syntax, types, and the list of everything in it that pforte
//! will not import. Nothing a file says is dropped without a warning naming its path.

use super::error::{ImportError, Problem};
use super::keycloak;
use super::path::{self, Seg};
use super::types::RealmRepresentation;

/// Client secrets are stored with a fast unsalted hash (see `secret`), which is only safe
/// for random secrets; shorter ones are accepted (hand-written dev files) with a warning.
const MIN_SECRET_LEN: usize = 16;

/// A realm file that is well-formed JSON of the right shape. Not yet validated: see
/// [`validate`](super::validate) (which [`to_import`](super::to_import) also runs).
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedRealm {
    pub rep: RealmRepresentation,
    /// What will not be imported, one line each, prefixed with the source name
    /// (`realm.json: unknown field clients[0].frontchannelLogout (ignored)`).
    pub warnings: Vec<String>,
    /// The source name given to [`parse_realm`], for messages of later steps.
    pub source: String,
}

/// Parses a realm file in Keycloak's JSON representation. `source` names the file in
/// every message. Fails on malformed JSON (with line and column) or on a value of the
/// wrong type (with its JSON path); unknown fields become warnings.
pub fn parse_realm(bytes: &[u8], source: &str) -> Result<ParsedRealm, ImportError> {
    // Editors on Windows like to start UTF-8 files with a byte-order mark; JSON forbids
    // it, but refusing a file for an invisible character helps nobody.
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    // serde reads a struct from a JSON array too (fields by position), so a list of
    // realms would be misread as one realm: refuse it before it is read.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(ImportError::single(
            source,
            Problem::new(
                "",
                "this file holds a list, pforte imports one realm per file: export each realm \
                 to a file of its own",
            ),
        ));
    }
    let mut ignored: Vec<Vec<Seg>> = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let rep: RealmRepresentation = {
        let mut record = |p: serde_ignored::Path<'_>| ignored.push(path::from_ignored(&p));
        serde_path_to_error::deserialize(serde_ignored::Deserializer::new(&mut de, &mut record))
            .map_err(|e| ImportError::single(source, json_problem(e.path(), e.inner())))?
    };
    de.end()
        .map_err(|e| ImportError::single(source, syntax_problem(&e)))?;

    let mut warnings: Vec<String> = ignored
        .iter()
        .filter(|segs| !in_dropped_subtree(&rep, segs))
        .map(|segs| format!("{source}: unknown field {} (ignored)", path::render(segs)))
        .collect();
    warnings.extend(notices(&rep).into_iter().map(|p| format!("{source}: {p}")));
    Ok(ParsedRealm {
        rep,
        warnings,
        source: source.to_owned(),
    })
}

/// serde_json's message without its position suffix, so that the position can be
/// placed where it reads best.
fn bare_message(e: &serde_json::Error) -> String {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    full.strip_suffix(&suffix).unwrap_or(&full).to_owned()
}

fn syntax_problem(e: &serde_json::Error) -> Problem {
    Problem::new(
        "",
        format!(
            "malformed JSON at line {}, column {}: {}",
            e.line(),
            e.column(),
            bare_message(e)
        ),
    )
}

fn json_problem(at: &serde_path_to_error::Path, e: &serde_json::Error) -> Problem {
    if e.classify() != serde_json::error::Category::Data {
        return syntax_problem(e);
    }
    let segs = path::from_tracked(at);
    let mut message = format!(
        "{} (line {}, column {})",
        bare_message(e),
        e.line(),
        e.column()
    );
    if segs.is_empty() {
        message.push_str(": a realm file holds one JSON object, Keycloak's RealmRepresentation");
    }
    Problem::new(path::render(&segs), message)
}

/// Whether an unknown field lies inside something that is reported as not imported as a
/// whole (a skipped client, a SAML mapper, an unsupported credential): one warning for
/// the whole says it all.
fn in_dropped_subtree(rep: &RealmRepresentation, segs: &[Seg]) -> bool {
    match segs {
        [Seg::Key(k), Seg::Index(i), rest @ ..] if k == "clients" => {
            let Some(c) = rep.clients.as_ref().and_then(|cs| cs.get(*i)) else {
                return false;
            };
            if keycloak::skip_reason(c).is_some() {
                return true;
            }
            match rest {
                [Seg::Key(k), Seg::Index(j), ..] if k == "protocolMappers" => c
                    .protocol_mappers
                    .as_ref()
                    .and_then(|ms| ms.get(*j))
                    .is_some_and(|m| !keycloak::is_oidc_mapper(m)),
                _ => false,
            }
        }
        [Seg::Key(k), Seg::Index(i), Seg::Key(c), Seg::Index(j), ..]
            if k == "users" && c == "credentials" =>
        {
            rep.users
                .as_ref()
                .and_then(|us| us.get(*i))
                .and_then(|u| u.credentials.as_ref())
                .and_then(|cs| cs.get(*j))
                .is_some_and(|c| keycloak::password_value(c).is_none())
        }
        _ => false,
    }
}

/// Things the file defines that pforte understands but will not import, with why.
fn notices(rep: &RealmRepresentation) -> Vec<Problem> {
    let mut out = Vec::new();
    // Keycloak writes empty lists for these in every export; only a non-empty list
    // actually loses something.
    for (key, list, what) in [
        (
            "identityProviders",
            &rep.identity_providers,
            "identity provider(s)",
        ),
        (
            "identityProviderMappers",
            &rep.identity_provider_mappers,
            "identity provider mapper(s)",
        ),
    ] {
        if let Some(list) = list.as_ref().filter(|l| !l.is_empty()) {
            out.push(Problem::new(
                key,
                format!("not supported yet: {} {what} not imported", list.len()),
            ));
        }
    }
    for (i, c) in rep.clients.iter().flatten().enumerate() {
        if let Some(reason) = keycloak::skip_reason(c) {
            out.push(Problem::new(format!("clients[{i}]"), reason));
            continue;
        }
        if keycloak::is_public(c) {
            if c.secret.is_some() {
                out.push(Problem::new(
                    format!("clients[{i}].secret"),
                    "ignored: a public client has no secret",
                ));
            }
            if c.service_accounts_enabled == Some(true) {
                out.push(Problem::new(
                    format!("clients[{i}].serviceAccountsEnabled"),
                    "ignored: a public client cannot use client credentials (as in Keycloak)",
                ));
            }
        } else if let Some(s) = c.secret.as_deref()
            && s.chars().count() < MIN_SECRET_LEN
            && !s.chars().all(|ch| ch == '*')
        {
            out.push(Problem::new(
                format!("clients[{i}].secret"),
                format!(
                    "only {} characters: client secrets are stored with a fast hash that is \
                     safe for random secrets only; use at least 32 random characters",
                    s.chars().count()
                ),
            ));
        }
        let unsupported: Vec<&str> = c
            .attributes
            .iter()
            .flatten()
            .map(|(k, _)| k.as_str())
            .filter(|k| !keycloak::SUPPORTED_CLIENT_ATTRIBUTES.contains(k))
            .collect();
        if !unsupported.is_empty() {
            out.push(Problem::new(
                format!("clients[{i}].attributes"),
                format!("not supported, not imported: {}", unsupported.join(", ")),
            ));
        }
        for (j, m) in c.protocol_mappers.iter().flatten().enumerate() {
            if !keycloak::is_oidc_mapper(m) {
                out.push(Problem::new(
                    format!("clients[{i}].protocolMappers[{j}]"),
                    format!(
                        "protocol \"{}\" is not supported: mapper \"{}\" not imported",
                        m.protocol.as_deref().unwrap_or_default(),
                        m.name.as_deref().unwrap_or_default()
                    ),
                ));
            } else if let Some(kind) = m
                .protocol_mapper
                .as_deref()
                .filter(|k| !k.is_empty() && !keycloak::SUPPORTED_MAPPERS.contains(k))
            {
                out.push(Problem::new(
                    format!("clients[{i}].protocolMappers[{j}].protocolMapper"),
                    format!(
                        "\"{kind}\" is not supported: mapper \"{}\" is kept without effect \
                         (supported: {})",
                        m.name.as_deref().unwrap_or_default(),
                        keycloak::SUPPORTED_MAPPERS.join(", ")
                    ),
                ));
            }
        }
    }
    for (i, u) in rep.users.iter().flatten().enumerate() {
        for (j, c) in u.credentials.iter().flatten().enumerate() {
            let at = format!("users[{i}].credentials[{j}]");
            match (c.credential_type.as_deref(), &c.value) {
                (Some(keycloak::PASSWORD), Some(_)) => {
                    if c.temporary == Some(true) {
                        out.push(Problem::new(
                            format!("{at}.temporary"),
                            "pforte has no required actions yet: the password is imported as a \
                             permanent one and the user will not be asked to change it",
                        ));
                    }
                }
                (Some(keycloak::PASSWORD), None) if c.secret_data.is_some() => {
                    out.push(Problem::new(
                        at,
                        format!(
                            "a password hash exported by Keycloak ({}) cannot be imported, \
                             pforte stores Argon2id: not imported (a password the user already \
                             has in pforte is kept); set \"value\" to import a password",
                            hash_algorithm(c.credential_data.as_deref())
                        ),
                    ));
                }
                (Some(keycloak::PASSWORD), None) => {
                    out.push(Problem::new(at, "password without \"value\": not imported"));
                }
                (Some(other), _) => out.push(Problem::new(
                    at,
                    format!(
                        "credential type \"{other}\" is not supported: not imported, the user \
                         will log in without it"
                    ),
                )),
                (None, _) => out.push(Problem::new(
                    at,
                    "credential without \"type\": not imported",
                )),
            }
        }
    }
    out
}

/// The algorithm named in Keycloak's `credentialData` (`{"algorithm":"pbkdf2-sha512",…}`).
fn hash_algorithm(credential_data: Option<&str>) -> String {
    credential_data
        .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .and_then(|v| {
            v.get("algorithm")
                .and_then(|a| a.as_str())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "unknown algorithm".to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<ParsedRealm, ImportError> {
        parse_realm(json.as_bytes(), "realm.json")
    }

    #[test]
    fn unknown_fields_are_warned_with_their_path() {
        let p = parse(
            r#"{"realm":"demo","notBefore":0,
                "clients":[{"clientId":"a","frontchannelLogout":true,
                  "attributes":{"pkce.code.challenge.method":"S256"}}],
                "users":[{"username":"u","totp":false,"credentials":[
                  {"type":"password","value":"pw","userLabel":"x"}]}]}"#,
        )
        .unwrap();
        assert_eq!(
            p.warnings,
            [
                "realm.json: unknown field notBefore (ignored)",
                "realm.json: unknown field clients[0].frontchannelLogout (ignored)",
                "realm.json: unknown field users[0].totp (ignored)",
                "realm.json: unknown field users[0].credentials[0].userLabel (ignored)",
            ]
        );
    }

    #[test]
    fn wrong_type_names_path_and_reason() {
        let e = parse(
            r#"{"realm":"demo","clients":[{"clientId":"a"},{"clientId":"b","publicClient":"yes"}]}"#,
        )
        .unwrap_err();
        assert_eq!(e.problems.len(), 1);
        assert_eq!(e.problems[0].path, "clients[1].publicClient");
        let shown = e.to_string();
        assert!(
            shown.starts_with(
                r#"realm.json: clients[1].publicClient: invalid type: string "yes", expected a boolean"#
            ),
            "{shown}"
        );
    }

    #[test]
    fn malformed_json_names_line_and_column() {
        let e = parse("{\n  \"realm\": \"demo\",\n}").unwrap_err();
        let shown = e.to_string();
        assert!(
            shown.starts_with("realm.json: malformed JSON at line 3, column 1:"),
            "{shown}"
        );
        let e = parse(r#"{"realm":"demo"} x"#).unwrap_err();
        assert!(e.to_string().contains("line 1, column 18"), "{e}");
    }

    #[test]
    fn a_list_of_realms_gets_a_hint() {
        let e = parse(r#"[{"realm":"a"}]"#).unwrap_err();
        assert!(e.to_string().contains("one realm per file"), "{e}");
    }

    #[test]
    fn byte_order_mark_is_accepted() {
        let p = parse_realm(b"\xEF\xBB\xBF{\"realm\":\"demo\"}", "r.json").unwrap();
        assert_eq!(p.rep.realm.as_deref(), Some("demo"));
    }

    #[test]
    fn user_attributes_accept_string_or_list() {
        let p = parse(
            r#"{"realm":"d","users":[{"username":"u","attributes":{"kvnr":"A1","x":["1","2"]}}]}"#,
        )
        .unwrap();
        let attrs = p.rep.users.unwrap()[0].attributes.clone().unwrap();
        assert_eq!(attrs["kvnr"], ["A1"]);
        assert_eq!(attrs["x"], ["1", "2"]);
        let e = parse(r#"{"realm":"d","users":[{"username":"u","attributes":{"kvnr":3}}]}"#)
            .unwrap_err();
        assert_eq!(e.problems[0].path, "users[0].attributes.kvnr");
    }

    #[test]
    fn identity_providers_give_one_warning_each() {
        let p = parse(
            r#"{"realm":"d","identityProviders":[{"alias":"a","x":1},{"alias":"b"}],
                "identityProviderMappers":[{"name":"m"}]}"#,
        )
        .unwrap();
        assert_eq!(
            p.warnings,
            [
                "realm.json: identityProviders: not supported yet: 2 identity provider(s) not imported",
                "realm.json: identityProviderMappers: not supported yet: 1 identity provider mapper(s) not imported",
            ]
        );
        let p =
            parse(r#"{"realm":"d","identityProviders":[],"identityProviderMappers":[]}"#).unwrap();
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    }

    #[test]
    fn credentials_not_imported_are_warned() {
        let p = parse(
            r#"{"realm":"d","users":[{"username":"u","credentials":[
                {"type":"otp","id":"1","secretData":"{}"},
                {"type":"password","id":"2","secretData":"{\"value\":\"h\"}",
                 "credentialData":"{\"hashIterations\":27500,\"algorithm\":\"pbkdf2-sha256\"}"},
                {"type":"password","value":"pw","temporary":true}]}]}"#,
        )
        .unwrap();
        assert_eq!(p.warnings.len(), 3, "{:?}", p.warnings);
        assert!(p.warnings[0].starts_with(
            "realm.json: users[0].credentials[0]: credential type \"otp\" is not supported"
        ));
        assert!(
            p.warnings[1].contains("(pbkdf2-sha256)"),
            "{}",
            p.warnings[1]
        );
        assert!(p.warnings[2].starts_with("realm.json: users[0].credentials[2].temporary:"));
    }

    #[test]
    fn skipped_clients_warn_once() {
        let p = parse(
            r#"{"realm":"d","clients":[
                {"clientId":"account-console","rootUrl":"${authBaseUrl}","redirectUris":["/x/*"]},
                {"clientId":"saml-app","protocol":"saml","frontchannelLogout":true},
                {"clientId":"pub","publicClient":true,"secret":"s","protocolMappers":[
                   {"name":"m","protocol":"saml","protocolMapper":"x","consentRequired":false}]},
                {"clientId":"jwt-app","clientAuthenticatorType":"client-jwt","secret":"s",
                 "serviceAccountsEnabled":true,"attributes":{"jwt.credential.certificate":"x"}},
                {"clientId":"secret-app","clientAuthenticatorType":"client-secret",
                 "secret":"0123456789abcdef0123456789abcdef"},
                {"clientId":"pub-jwt","publicClient":true,"clientAuthenticatorType":"client-jwt"}]}"#,
        )
        .unwrap();
        assert_eq!(p.warnings.len(), 5, "{:?}", p.warnings);
        assert_eq!(
            p.warnings[4],
            "realm.json: clients[3]: client \"jwt-app\" authenticates with \"client-jwt\" and \
             is not imported (pforte supports client secrets only: set clientAuthenticatorType \
             to \"client-secret\" to import it with its secret)"
        );
        assert!(p.warnings[0].starts_with("realm.json: clients[0]: Keycloak's built-in client"));
        assert!(p.warnings[1].contains("protocol \"saml\""));
        assert_eq!(
            p.warnings[2],
            "realm.json: clients[2].secret: ignored: a public client has no secret"
        );
        assert!(p.warnings[3].starts_with("realm.json: clients[2].protocolMappers[0]:"));
    }
}
