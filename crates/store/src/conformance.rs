//! The behaviour every [`Store`] must show, as one suite that runs against any backend.
//!
//! Each check creates its own realm (and ids) with a random suffix, so runs against a shared
//! PostgreSQL database neither collide nor need cleaning up, and can be repeated. Checks
//! return `Err(description)` instead of panicking; [`run_all`] runs them all and reports every
//! failure.
//!
//! Enabled for this crate's tests; other crates get it with the `conformance` feature.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use pforte_core::model::*;
use pforte_core::store::{
    RealmImport, RefreshOutcome, RefreshStep, Store, StoreError, StoreResult,
};
use pforte_jose::Alg;

/// What a check returns: `Err` describes the first violated expectation.
pub type CheckResult = Result<(), String>;

/// A fixed "now" for checks that do not involve expiry (November 2023).
pub const NOW: Timestamp = 1_700_000_000;

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

macro_rules! ensure_eq {
    ($left:expr, $right:expr, $what:expr) => {{
        let (l, r) = (&$left, &$right);
        if l != r {
            return Err(format!("{}: expected {:?}, got {:?}", $what, r, l));
        }
    }};
}

/// `StoreResult` → `CheckResult`-friendly error with the operation's name.
trait Ctx<T> {
    fn ctx(self, what: &str) -> Result<T, String>;
}

impl<T> Ctx<T> for StoreResult<T> {
    fn ctx(self, what: &str) -> Result<T, String> {
        self.map_err(|e| format!("{what} failed: {e}"))
    }
}

/// A name unique to this run: `prefix-<time>-<pid>-<counter>`.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{nanos:x}-{:x}-{n}", std::process::id())
}

/// Runs every check and reports all failures, one per line.
pub async fn run_all<S: Store>(store: Arc<S>) -> CheckResult {
    let s = &*store;
    let results: Vec<(&str, CheckResult)> = vec![
        ("ping", ping(s).await),
        ("realms_clients_users", realms_clients_users(s).await),
        ("import_replaces_by_id", import_replaces_by_id(s).await),
        (
            "import_conflict_writes_nothing",
            import_conflict_writes_nothing(s).await,
        ),
        ("signing_keys", signing_keys(s).await),
        (
            "keys_from_the_given_generator",
            keys_from_the_given_generator(s).await,
        ),
        ("sessions", sessions(s).await),
        (
            "delete_session_revokes_grants",
            delete_session_revokes_grants(s).await,
        ),
        ("codes", codes(s).await),
        ("grants", grants(s).await),
        ("refresh_rotation", refresh_rotation(s).await),
        ("refresh_family", refresh_family(s).await),
        ("access_token_revocation", access_token_revocation(s).await),
        ("login_failures", login_failures(s).await),
        ("flows", flows(s).await),
        ("purge_expired", purge_expired(s).await),
        (
            "concurrent_code_redemption",
            concurrent_code_redemption(store.clone()).await,
        ),
        (
            "concurrent_logout_and_grant",
            concurrent_logout_and_grant(store.clone()).await,
        ),
        (
            "concurrent_algorithm_change",
            concurrent_algorithm_change(store.clone()).await,
        ),
        (
            "concurrent_refresh_rotation",
            concurrent_refresh_rotation(store.clone()).await,
        ),
        (
            "concurrent_refresh_family",
            concurrent_refresh_family(store.clone()).await,
        ),
        (
            "concurrent_first_key",
            concurrent_first_key(store.clone()).await,
        ),
        (
            "concurrent_login_failures",
            concurrent_login_failures(store.clone(), 50).await,
        ),
    ];
    let failures: Vec<String> = results
        .into_iter()
        .filter_map(|(name, r)| r.err().map(|e| format!("{name}: {e}")))
        .collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n"))
    }
}

// --- fixtures ------------------------------------------------------------------------------

pub fn realm(name: &str) -> Realm {
    let mut r = Realm::new(name);
    r.display_name = Some(format!("Realm {name}"));
    r.roles = vec![RoleDef {
        name: "admin".into(),
        description: Some("Admins".into()),
    }];
    r
}

pub fn client(realm: &str, client_id: &str) -> Client {
    Client {
        realm: realm.into(),
        client_id: client_id.into(),
        name: Some(format!("Client {client_id}")),
        enabled: true,
        public_client: false,
        secret_hash: Some("$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA".into()),
        redirect_uris: vec!["https://app.example/cb".into()],
        web_origins: vec!["https://app.example".into()],
        standard_flow_enabled: true,
        service_accounts_enabled: false,
        attributes: BTreeMap::from([("pkce.code.challenge.method".into(), "S256".into())]),
        protocol_mappers: vec![ProtocolMapper {
            name: "email".into(),
            protocol_mapper: "oidc-usermodel-property-mapper".into(),
            config: BTreeMap::from([("claim.name".into(), "email".into())]),
        }],
        default_client_scopes: vec!["profile".into(), "email".into()],
        optional_client_scopes: vec!["offline_access".into()],
        service_account_user: Some(ServiceAccountUser {
            id: format!("sa-{client_id}"),
            realm_roles: vec!["api".into()],
            disabled: false,
        }),
    }
}

pub fn user(realm: &str, id: &str, username: &str, email: Option<&str>) -> User {
    User {
        id: id.into(),
        realm: realm.into(),
        username: username.into(),
        email: email.map(Into::into),
        email_verified: true,
        first_name: Some("Erika".into()),
        last_name: Some("Mustermann".into()),
        enabled: true,
        attributes: BTreeMap::from([("kvnr".into(), vec!["A123456789".into()])]),
        realm_roles: vec!["admin".into()],
        password_hash: None,
        created_at: NOW,
        service_account_client_id: None,
    }
}

pub fn key(realm: &str, kid: &str, created_at: Timestamp) -> StoredKey {
    StoredKey {
        realm: realm.into(),
        kid: kid.into(),
        alg: Alg::ES256,
        public_jwk: format!(r#"{{"kty":"EC","crv":"P-256","kid":"{kid}"}}"#),
        sealed_private: vec![0, 1, 2, 254, 255, kid.len() as u8],
        created_at,
        retired_at: None,
    }
}

pub fn session(realm: &str, id: &str, last_seen: Timestamp) -> Session {
    Session {
        id: id.into(),
        realm: realm.into(),
        user_id: "user-1".into(),
        auth_time: last_seen,
        last_seen,
        acr: Some("gematik-ehealth-loa-high".into()),
        amr: vec!["pwd".into(), "otp".into()],
        idp: Some("healthid".into()),
    }
}

pub fn code(realm: &str, code_hash: &str, expires_at: Timestamp) -> AuthCode {
    AuthCode {
        code_hash: code_hash.into(),
        realm: realm.into(),
        client_id: "app".into(),
        user_id: "user-1".into(),
        session_id: "session-1".into(),
        grant_id: format!("grant-of-{code_hash}"),
        redirect_uri: "https://app.example/cb".into(),
        scope: "openid profile".into(),
        nonce: Some("n-0S6_WzA2Mj".into()),
        code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into()),
        code_challenge_method: Some("S256".into()),
        auth_time: NOW,
        acr: None,
        expires_at,
    }
}

pub fn grant(realm: &str, id: &str, session_id: Option<&str>) -> Grant {
    Grant {
        id: id.into(),
        realm: realm.into(),
        client_id: "app".into(),
        user_id: "user-1".into(),
        session_id: session_id.map(Into::into),
        scope: "openid profile offline_access".into(),
        auth_time: NOW,
        acr: Some("1".into()),
        created_at: NOW,
        revoked: false,
    }
}

/// A refresh-token family `family` whose current hash is `h-<family>`.
pub fn refresh(grant_id: &str, family: &str, expires_at: Timestamp) -> RefreshToken {
    RefreshToken {
        family: family.into(),
        token_hash: format!("h-{family}"),
        grant_id: grant_id.into(),
        scope: "openid profile".into(),
        created_at: NOW,
        expires_at,
    }
}

pub fn flow(realm: &str, id: &str, expires_at: Timestamp) -> FlowState {
    FlowState {
        id: id.into(),
        realm: realm.into(),
        kind: "authorize".into(),
        data: r#"{"client_id":"app","state":"xyz"}"#.into(),
        expires_at,
    }
}

// --- checks --------------------------------------------------------------------------------

pub async fn ping<S: Store>(s: &S) -> CheckResult {
    s.ping().await.ctx("ping")
}

pub async fn realms_clients_users<S: Store>(s: &S) -> CheckResult {
    let r = unique("realm");
    ensure!(
        s.get_realm(&r).await.ctx("get_realm")?.is_none(),
        "realm exists before import"
    );
    let import = RealmImport {
        realm: Some(realm(&r)),
        clients: vec![client(&r, "web"), client(&r, "app")],
        users: vec![
            user(&r, "u1", "erika", Some("erika@example.org")),
            user(&r, "u2", "max", None),
        ],
    };
    s.apply_import(&import).await.ctx("apply_import")?;

    ensure_eq!(
        s.get_realm(&r).await.ctx("get_realm")?.as_deref().cloned(),
        Some(realm(&r)),
        "get_realm"
    );
    let realms = s.list_realms().await.ctx("list_realms")?;
    ensure!(
        realms.contains(&realm(&r)),
        "list_realms lacks the imported realm"
    );

    ensure_eq!(
        s.get_client(&r, "web")
            .await
            .ctx("get_client")?
            .as_deref()
            .cloned(),
        Some(client(&r, "web")),
        "get_client"
    );
    ensure!(
        s.get_client(&r, "nope").await.ctx("get_client")?.is_none(),
        "unknown client found"
    );
    ensure!(
        s.get_client(&unique("other"), "web")
            .await
            .ctx("get_client")?
            .is_none(),
        "client found in another realm"
    );
    ensure_eq!(
        s.list_clients(&r).await.ctx("list_clients")?,
        vec![client(&r, "app"), client(&r, "web")],
        "list_clients (ordered by client_id)"
    );

    let erika = user(&r, "u1", "erika", Some("erika@example.org"));
    ensure_eq!(
        s.get_user(&r, "u1").await.ctx("get_user")?,
        Some(erika.clone()),
        "get_user"
    );
    ensure!(
        s.get_user(&r, "u9").await.ctx("get_user")?.is_none(),
        "unknown user found"
    );
    ensure_eq!(
        s.find_user_by_username(&r, "erika")
            .await
            .ctx("find_user_by_username")?,
        Some(erika.clone()),
        "find_user_by_username"
    );
    ensure_eq!(
        s.find_user_by_username(&r, "ERika")
            .await
            .ctx("find_user_by_username")?,
        Some(erika.clone()),
        "find_user_by_username is case-insensitive"
    );
    ensure!(
        s.find_user_by_username(&r, "nobody")
            .await
            .ctx("find_user_by_username")?
            .is_none(),
        "unknown username found"
    );
    ensure!(
        s.find_user_by_username(&unique("other"), "erika")
            .await
            .ctx("find_user_by_username")?
            .is_none(),
        "username found in another realm"
    );
    ensure_eq!(
        s.find_user_by_email(&r, "Erika@Example.ORG")
            .await
            .ctx("find_user_by_email")?,
        Some(erika.clone()),
        "find_user_by_email is case-insensitive"
    );
    ensure!(
        s.find_user_by_email(&r, "max@example.org")
            .await
            .ctx("find_user_by_email")?
            .is_none(),
        "unknown email found"
    );
    let users = s.list_users(&r).await.ctx("list_users")?;
    ensure_eq!(users.len(), 2, "list_users count");
    ensure!(users.contains(&erika), "list_users lacks a user");
    Ok(())
}

pub async fn import_replaces_by_id<S: Store>(s: &S) -> CheckResult {
    let r = unique("realm");
    s.apply_import(&RealmImport {
        realm: Some(realm(&r)),
        clients: vec![client(&r, "web")],
        users: vec![
            user(&r, "u1", "anna", Some("anna@example.org")),
            user(&r, "u2", "bert", Some("bert@example.org")),
        ],
    })
    .await
    .ctx("apply_import")?;

    // Replace: a changed realm, client and users; anna and bert swap names and emails.
    let mut realm2 = realm(&r);
    realm2.access_token_lifespan = 600;
    let mut web2 = client(&r, "web");
    web2.redirect_uris.push("https://app.example/cb2".into());
    let anna_now_bert = user(&r, "u1", "bert", Some("bert@example.org"));
    let bert_now_anna = user(&r, "u2", "anna", Some("anna@example.org"));
    s.apply_import(&RealmImport {
        realm: Some(realm2.clone()),
        clients: vec![web2.clone()],
        users: vec![anna_now_bert.clone(), bert_now_anna.clone()],
    })
    .await
    .ctx("apply_import (swap)")?;
    ensure_eq!(
        s.get_realm(&r).await.ctx("get_realm")?.as_deref().cloned(),
        Some(realm2),
        "realm replaced"
    );
    ensure_eq!(
        s.get_client(&r, "web")
            .await
            .ctx("get_client")?
            .as_deref()
            .cloned(),
        Some(web2),
        "client replaced"
    );
    ensure_eq!(
        s.find_user_by_username(&r, "bert")
            .await
            .ctx("find_user_by_username")?,
        Some(anna_now_bert),
        "username moved to u1"
    );
    ensure_eq!(
        s.find_user_by_email(&r, "anna@example.org")
            .await
            .ctx("find_user_by_email")?,
        Some(bert_now_anna),
        "email moved to u2"
    );

    // An import without a realm only adds to it; a renamed user frees the old name.
    let carl = user(&r, "u1", "carl", None);
    s.apply_import(&RealmImport {
        realm: None,
        clients: vec![],
        users: vec![carl.clone()],
    })
    .await
    .ctx("apply_import (users only)")?;
    ensure_eq!(
        s.get_user(&r, "u1").await.ctx("get_user")?,
        Some(carl),
        "user replaced"
    );
    ensure!(
        s.find_user_by_username(&r, "bert")
            .await
            .ctx("find_user_by_username")?
            .is_none(),
        "old username still found after rename"
    );
    ensure!(
        s.find_user_by_email(&r, "bert@example.org")
            .await
            .ctx("find_user_by_email")?
            .is_none(),
        "old email still found after it was removed"
    );
    ensure_eq!(
        s.list_users(&r).await.ctx("list_users")?.len(),
        2,
        "list_users count"
    );
    Ok(())
}

pub async fn import_conflict_writes_nothing<S: Store>(s: &S) -> CheckResult {
    fn is_conflict_naming(r: StoreResult<()>, needle: &str) -> CheckResult {
        match r {
            Err(StoreError::Conflict(msg)) if msg.contains(needle) => Ok(()),
            other => Err(format!(
                "expected a Conflict naming {needle:?}, got {other:?}"
            )),
        }
    }

    // Within one import: two ids, one username.
    let r = unique("realm");
    let result = s
        .apply_import(&RealmImport {
            realm: Some(realm(&r)),
            clients: vec![client(&r, "web")],
            users: vec![user(&r, "u1", "dora", None), user(&r, "u2", "dora", None)],
        })
        .await;
    is_conflict_naming(result, "dora")?;
    ensure!(
        s.get_realm(&r).await.ctx("get_realm")?.is_none(),
        "realm written by failed import"
    );
    ensure!(
        s.get_client(&r, "web").await.ctx("get_client")?.is_none(),
        "client written by failed import"
    );
    ensure!(
        s.list_users(&r).await.ctx("list_users")?.is_empty(),
        "user written"
    );

    // Against stored users: username (case-insensitively) and email of another id.
    s.apply_import(&RealmImport {
        realm: Some(realm(&r)),
        clients: vec![],
        users: vec![user(&r, "u1", "dora", Some("dora@example.org"))],
    })
    .await
    .ctx("apply_import")?;
    let mut changed = realm(&r);
    changed.enabled = false;
    let result = s
        .apply_import(&RealmImport {
            realm: Some(changed.clone()),
            clients: vec![client(&r, "web")],
            users: vec![user(&r, "u7", "emil", None), user(&r, "u2", "Dora", None)],
        })
        .await;
    is_conflict_naming(result, "dora")?;
    let result = s
        .apply_import(&RealmImport {
            realm: Some(changed),
            clients: vec![client(&r, "web")],
            users: vec![user(&r, "u3", "dora2", Some("dora@example.org"))],
        })
        .await;
    is_conflict_naming(result, "dora@example.org")?;
    ensure_eq!(
        s.get_realm(&r).await.ctx("get_realm")?.as_deref().cloned(),
        Some(realm(&r)),
        "realm changed"
    );
    ensure!(
        s.get_client(&r, "web").await.ctx("get_client")?.is_none(),
        "client written"
    );
    ensure!(
        s.get_user(&r, "u7").await.ctx("get_user")?.is_none(),
        "user u7 written"
    );
    ensure_eq!(
        s.list_users(&r).await.ctx("list_users")?.len(),
        1,
        "users after conflicts"
    );
    Ok(())
}

pub async fn signing_keys<S: Store>(s: &S) -> CheckResult {
    let r = unique("realm");
    ensure!(
        s.list_keys(&r).await.ctx("list_keys")?.is_empty(),
        "keys before any insert"
    );
    let k1 = key(&r, "k1", NOW);
    ensure!(
        s.insert_first_key(&k1).await.ctx("insert_first_key")?,
        "first key not stored"
    );
    let k2 = key(&r, "k2", NOW + 1);
    ensure!(
        !s.insert_first_key(&k2).await.ctx("insert_first_key")?,
        "second first key stored"
    );
    ensure_eq!(
        s.list_keys(&r).await.ctx("list_keys")?,
        vec![k1.clone()],
        "keys after two inserts"
    );

    let later = NOW + 3600;
    let k3 = key(&r, "k3", later);
    s.rotate_key(&k3, later).await.ctx("rotate_key")?;
    let keys = s.list_keys(&r).await.ctx("list_keys")?;
    let mut k1_retired = k1.clone();
    k1_retired.retired_at = Some(later);
    ensure_eq!(
        keys,
        vec![k3.clone(), k1_retired.clone()],
        "keys after rotation (newest first)"
    );
    ensure_eq!(
        keys.iter().filter(|k| k.retired_at.is_none()).count(),
        1,
        "active keys after rotation"
    );

    let k4 = key(&r, "k4", later + 10);
    s.rotate_key(&k4, later + 10).await.ctx("rotate_key")?;
    let keys = s.list_keys(&r).await.ctx("list_keys")?;
    ensure_eq!(keys.len(), 3, "keys after second rotation");
    ensure_eq!(keys[0], k4, "newest key first and active");
    ensure_eq!(
        keys[1].retired_at,
        Some(later + 10),
        "k3 retired at the second rotation"
    );
    ensure_eq!(
        keys[2].retired_at,
        Some(later),
        "k1 keeps its retirement time"
    );

    // Retired before `later + 10` is only k1 (k3 retired exactly then).
    ensure_eq!(
        s.delete_retired_keys(&r, later + 10)
            .await
            .ctx("delete_retired_keys")?,
        1,
        "deleted retired keys"
    );
    let kids: Vec<String> = s
        .list_keys(&r)
        .await
        .ctx("list_keys")?
        .into_iter()
        .map(|k| k.kid)
        .collect();
    ensure_eq!(kids, vec!["k4".to_owned(), "k3".to_owned()], "keys left");
    ensure_eq!(
        s.delete_retired_keys(&r, later + 1000)
            .await
            .ctx("delete_retired_keys")?,
        1,
        "deleted retired keys (k3)"
    );
    ensure_eq!(
        s.list_keys(&r).await.ctx("list_keys")?,
        vec![k4],
        "active key never deleted"
    );
    Ok(())
}

pub async fn sessions<S: Store>(s: &S) -> CheckResult {
    let r = unique("realm");
    let id = unique("session");
    let sess = session(&r, &id, NOW);
    s.create_session(&sess).await.ctx("create_session")?;
    ensure_eq!(
        s.get_session(&id).await.ctx("get_session")?,
        Some(sess.clone()),
        "get_session"
    );
    ensure!(
        matches!(s.create_session(&sess).await, Err(StoreError::Conflict(_))),
        "duplicate session id is not a Conflict"
    );
    s.touch_session(&id, NOW + 60).await.ctx("touch_session")?;
    let mut touched = sess;
    touched.last_seen = NOW + 60;
    ensure_eq!(
        s.get_session(&id).await.ctx("get_session")?,
        Some(touched.clone()),
        "touched session"
    );
    ensure!(
        s.reauthenticate_session(&id, NOW + 90)
            .await
            .ctx("reauthenticate_session")?,
        "reauthenticate_session found no session"
    );
    let mut renewed = touched;
    renewed.auth_time = NOW + 90;
    renewed.last_seen = NOW + 90;
    ensure_eq!(
        s.get_session(&id).await.ctx("get_session")?,
        Some(renewed),
        "re-authenticated session"
    );
    ensure!(
        !s.reauthenticate_session(&unique("none"), NOW)
            .await
            .ctx("reauthenticate_session (unknown)")?,
        "reauthenticate_session claims an unknown session"
    );
    s.touch_session(&unique("none"), NOW)
        .await
        .ctx("touch_session (unknown)")?;
    ensure!(
        s.get_session(&unique("none"))
            .await
            .ctx("get_session")?
            .is_none(),
        "unknown found"
    );
    s.delete_session(&id).await.ctx("delete_session")?;
    ensure!(
        s.get_session(&id).await.ctx("get_session")?.is_none(),
        "deleted session found"
    );
    s.delete_session(&id).await.ctx("delete_session (again)")?;
    Ok(())
}

pub async fn delete_session_revokes_grants<S: Store>(s: &S) -> CheckResult {
    let r = unique("realm");
    let (sid, other_sid) = (unique("session"), unique("session"));
    s.create_session(&session(&r, &sid, NOW))
        .await
        .ctx("create_session")?;
    s.create_session(&session(&r, &other_sid, NOW))
        .await
        .ctx("create_session")?;
    let (g1, g2, g3, g4) = (unique("g"), unique("g"), unique("g"), unique("g"));
    let rt = unique("rt");
    s.insert_grant(&grant(&r, &g1, Some(&sid)))
        .await
        .ctx("insert_grant")?;
    s.insert_grant_with_refresh(
        &grant(&r, &g2, Some(&sid)),
        Some(&refresh(&g2, &rt, NOW + 99)),
    )
    .await
    .ctx("insert_grant_with_refresh")?;
    s.insert_grant(&grant(&r, &g3, Some(&other_sid)))
        .await
        .ctx("insert_grant")?;
    s.insert_grant(&grant(&r, &g4, None))
        .await
        .ctx("insert_grant")?;

    let before = s
        .get_refresh(&rt)
        .await
        .ctx("get_refresh")?
        .ok_or("refresh missing")?;
    ensure_eq!(
        before.session.map(|x| x.id),
        Some(sid.clone()),
        "get_refresh joins the grant's session"
    );
    s.delete_session(&sid).await.ctx("delete_session")?;
    ensure!(
        s.get_session(&sid).await.ctx("get_session")?.is_none(),
        "session not deleted"
    );
    for (g, revoked) in [(&g1, true), (&g2, true), (&g3, false), (&g4, false)] {
        let got = s
            .get_grant(g)
            .await
            .ctx("get_grant")?
            .ok_or("grant disappeared")?;
        ensure_eq!(got.revoked, revoked, format!("grant {g} revoked"));
    }
    let lookup = s
        .get_refresh(&rt)
        .await
        .ctx("get_refresh")?
        .ok_or("refresh disappeared")?;
    ensure!(lookup.grant.revoked, "refresh token's grant not revoked");
    ensure!(lookup.session.is_none(), "deleted session still joined");
    ensure!(
        s.get_session(&other_sid)
            .await
            .ctx("get_session")?
            .is_some(),
        "other session deleted"
    );
    // After the logout, no grant can be stored for the ended session.
    let late = unique("g");
    let refused = s
        .insert_grant_with_refresh(
            &grant(&r, &late, Some(&sid)),
            Some(&refresh(&late, &unique("rt"), NOW + 99)),
        )
        .await;
    ensure!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "grant for an ended session stored: {refused:?}"
    );
    ensure!(
        s.get_grant(&late).await.ctx("get_grant")?.is_none(),
        "refused grant written"
    );
    Ok(())
}

/// Nodes that see a realm's new signature algorithm at the same moment all rotate to it
/// without an error (on PostgreSQL the losers of the race hit the one-active-key index),
/// and one active key of that algorithm remains.
pub async fn concurrent_algorithm_change<S: Store>(store: Arc<S>) -> CheckResult {
    let mut realm = Realm::new(&unique("realm"));
    let master = pforte_jose::seal::MasterKey::generate().map_err(|e| e.to_string())?;
    pforte_core::keys::load_or_create(&*store, &realm, 600, &master, NOW)
        .await
        .map_err(|e| format!("first key: {e}"))?;
    realm.signature_alg = Alg::EdDSA;
    let tasks = (0..5)
        .map(|_| {
            let (store, realm, master) = (store.clone(), realm.clone(), master.clone());
            tokio::spawn(async move {
                pforte_core::keys::load_or_create(&*store, &realm, 600, &master, NOW + 1)
                    .await
                    .map(|k| k.active.alg())
                    .map_err(|e| e.to_string())
            })
        })
        .collect::<Vec<_>>();
    for t in tasks {
        let alg = t.await.map_err(|e| format!("task: {e}"))??;
        ensure_eq!(alg, Alg::EdDSA, "a node signs with the old algorithm");
    }
    let keys = store.list_keys(&realm.name).await.ctx("list_keys")?;
    let active: Vec<_> = keys.iter().filter(|k| k.retired_at.is_none()).collect();
    ensure_eq!(active.len(), 1, "active keys");
    ensure_eq!(active[0].alg, Alg::EdDSA, "active key's algorithm");
    Ok(())
}

/// A key generator that counts its calls; `wrong_alg` makes it a broken one that makes keys
/// of another algorithm than asked.
struct CountingGenerator {
    calls: AtomicU64,
    wrong_alg: Option<Alg>,
}

impl pforte_core::keys::KeyGenerator for CountingGenerator {
    fn generate(
        &self,
        alg: Alg,
    ) -> impl Future<Output = Result<pforte_jose::SigningKey, pforte_core::keys::KeyError>> + Send
    {
        self.calls.fetch_add(1, Ordering::SeqCst);
        std::future::ready(pforte_core::keys::generate_key(
            self.wrong_alg.unwrap_or(alg),
        ))
    }
}

/// Loads the realm's keys with `generator`; also says how many keys it has made so far.
async fn load_counting<S: Store>(
    store: &S,
    realm: &Realm,
    master: &pforte_jose::seal::MasterKey,
    generator: &CountingGenerator,
    what: &str,
) -> Result<(pforte_core::keys::RealmKeys, u64), String> {
    let keys = pforte_core::keys::load_or_create_with(store, realm, 600, master, NOW, generator)
        .await
        .map_err(|e| format!("{what}: {e}"))?;
    Ok((keys, generator.calls.load(Ordering::SeqCst)))
}

/// New keys come from the generator the caller passes (the server makes them off its
/// request threads), only when the realm needs one, and only of the realm's algorithm.
pub async fn keys_from_the_given_generator<S: Store>(store: &S) -> CheckResult {
    let mut realm = Realm::new(&unique("realm"));
    let master = pforte_jose::seal::MasterKey::generate().map_err(|e| e.to_string())?;
    let generator = CountingGenerator {
        calls: AtomicU64::new(0),
        wrong_alg: None,
    };
    let (first, made) = load_counting(store, &realm, &master, &generator, "first key").await?;
    ensure_eq!(made, 1, "keys made for a new realm");
    let (again, made) = load_counting(store, &realm, &master, &generator, "reload").await?;
    ensure_eq!(made, 1, "keys made on a reload");
    ensure_eq!(
        again.active.kid(),
        first.active.kid(),
        "active key after a reload"
    );
    realm.signature_alg = Alg::EdDSA;
    let (changed, made) = load_counting(store, &realm, &master, &generator, "new alg").await?;
    ensure_eq!(made, 2, "keys made for a new algorithm");
    ensure_eq!(changed.active.alg(), Alg::EdDSA, "active key's algorithm");

    let broken = CountingGenerator {
        calls: AtomicU64::new(0),
        wrong_alg: Some(Alg::ES256),
    };
    realm.signature_alg = Alg::RS256;
    let refused = load_counting(store, &realm, &master, &broken, "broken generator").await;
    ensure!(
        refused.is_err(),
        "a key of the wrong algorithm was accepted: {:?}",
        refused.map(|(k, _)| k.active.alg())
    );
    let keys = store.list_keys(&realm.name).await.ctx("list_keys")?;
    let active: Vec<_> = keys.iter().filter(|k| k.retired_at.is_none()).collect();
    ensure!(
        active.len() == 1 && active[0].alg == Alg::EdDSA,
        "a refused key was stored: {active:?}"
    );
    Ok(())
}

/// A logout and a code redemption of the same session at once: whichever wins, no grant of
/// that session survives unrevoked (it is either refused or revoked by the logout).
pub async fn concurrent_logout_and_grant<S: Store>(store: Arc<S>) -> CheckResult {
    let r = unique("realm");
    let mut pairs = Vec::new();
    for _ in 0..20 {
        let (sid, g) = (unique("session"), unique("g"));
        store
            .create_session(&session(&r, &sid, NOW))
            .await
            .ctx("create_session")?;
        pairs.push((sid, g));
    }
    let mut tasks = Vec::new();
    for (sid, g) in &pairs {
        let (a, b) = (store.clone(), store.clone());
        let (sid_a, sid_b, g) = (sid.clone(), sid.clone(), g.clone());
        let r = r.clone();
        tasks.push(tokio::spawn(async move {
            let insert = async {
                let rt = unique("rt");
                // Err is fine: the logout came first.
                let _ = a
                    .insert_grant_with_refresh(
                        &grant(&r, &g, Some(&sid_a)),
                        Some(&refresh(&g, &rt, NOW + 99)),
                    )
                    .await;
            };
            let logout = async { b.delete_session(&sid_b).await.map(|_| ()) };
            let ((), logged_out) = tokio::join!(insert, logout);
            logged_out
        }));
    }
    for t in tasks {
        t.await
            .map_err(|e| format!("task: {e}"))?
            .ctx("delete_session")?;
    }
    for (_, g) in &pairs {
        if let Some(found) = store.get_grant(g).await.ctx("get_grant")? {
            ensure!(found.revoked, "grant {g} survived its session's logout");
        }
    }
    Ok(())
}

pub async fn codes<S: Store>(s: &S) -> CheckResult {
    let r = unique("realm");
    let h = unique("codehash");
    let c = code(&r, &h, NOW + 60);
    s.insert_code(&c).await.ctx("insert_code")?;
    ensure!(
        matches!(s.insert_code(&c).await, Err(StoreError::Conflict(_))),
        "duplicate code hash is not a Conflict"
    );
    ensure_eq!(
        s.redeem_code(&h).await.ctx("redeem_code")?,
        CodeRedemption::Fresh(c.clone()),
        "first redemption"
    );
    ensure_eq!(
        s.redeem_code(&h).await.ctx("redeem_code")?,
        CodeRedemption::Reused(c.clone()),
        "second redemption"
    );
    ensure_eq!(
        s.redeem_code(&h).await.ctx("redeem_code")?,
        CodeRedemption::Reused(c),
        "third redemption"
    );
    ensure_eq!(
        s.redeem_code(&unique("codehash"))
            .await
            .ctx("redeem_code")?,
        CodeRedemption::Unknown,
        "unknown code"
    );
    // Expiry is the caller's business: an expired code still redeems.
    let old = code(&r, &unique("codehash"), NOW - 3600);
    s.insert_code(&old).await.ctx("insert_code")?;
    ensure_eq!(
        s.redeem_code(&old.code_hash).await.ctx("redeem_code")?,
        CodeRedemption::Fresh(old),
        "expired code"
    );
    Ok(())
}

pub async fn grants<S: Store>(s: &S) -> CheckResult {
    let r = unique("realm");
    let g = grant(&r, &unique("g"), Some("s-1"));
    ensure!(
        s.get_grant(&g.id).await.ctx("get_grant")?.is_none(),
        "grant before insert"
    );
    s.insert_grant(&g).await.ctx("insert_grant")?;
    ensure_eq!(
        s.get_grant(&g.id).await.ctx("get_grant")?,
        Some(g.clone()),
        "get_grant"
    );
    ensure!(
        matches!(s.insert_grant(&g).await, Err(StoreError::Conflict(_))),
        "duplicate grant id is not a Conflict"
    );
    s.revoke_grant(&g.id).await.ctx("revoke_grant")?;
    let mut revoked = g.clone();
    revoked.revoked = true;
    ensure_eq!(
        s.get_grant(&g.id).await.ctx("get_grant")?,
        Some(revoked),
        "revoked grant"
    );
    s.revoke_grant(&unique("g"))
        .await
        .ctx("revoke_grant (unknown)")?;

    // A grant without a refresh token; and one whose token cannot be stored rolls back.
    let g2 = grant(&r, &unique("g"), None);
    s.insert_grant_with_refresh(&g2, None)
        .await
        .ctx("insert_grant_with_refresh")?;
    ensure_eq!(
        s.get_grant(&g2.id).await.ctx("get_grant")?,
        Some(g2.clone()),
        "grant w/o token"
    );
    let taken = unique("rt");
    let holder = grant(&r, &unique("g"), None);
    s.insert_grant_with_refresh(&holder, Some(&refresh(&holder.id, &taken, NOW)))
        .await
        .ctx("insert_grant_with_refresh")?;
    let g3 = grant(&r, &unique("g"), None);
    let result = s
        .insert_grant_with_refresh(&g3, Some(&refresh(&g3.id, &taken, NOW)))
        .await;
    ensure!(
        matches!(result, Err(StoreError::Conflict(_))),
        "refresh family reused across grants is not a Conflict: {result:?}"
    );
    ensure!(
        s.get_grant(&g3.id).await.ctx("get_grant")?.is_none(),
        "grant stored although its refresh token was not"
    );
    Ok(())
}

pub async fn refresh_rotation<S: Store>(s: &S) -> CheckResult {
    let r = unique("realm");
    let g = grant(&r, &unique("g"), None);
    let family = unique("rt");
    let t1 = refresh(&g.id, &family, NOW + 1000);
    s.insert_grant_with_refresh(&g, Some(&t1))
        .await
        .ctx("insert_grant_with_refresh")?;
    ensure_eq!(
        s.get_refresh(&family).await.ctx("get_refresh")?,
        Some(RefreshLookup {
            token: t1.clone(),
            grant: g.clone(),
            user: None,
            session: None,
        }),
        "get_refresh joins the grant"
    );
    ensure!(
        s.get_refresh(&unique("rt"))
            .await
            .ctx("get_refresh")?
            .is_none(),
        "unknown family found"
    );

    let t2 = RefreshToken {
        token_hash: unique("h"),
        scope: "openid".into(),
        created_at: NOW + 1,
        expires_at: NOW + 2000,
        ..t1.clone()
    };
    ensure_eq!(
        s.rotate_refresh(&t1.token_hash, &t2)
            .await
            .ctx("rotate_refresh")?,
        Rotation::Rotated,
        "rotate"
    );
    ensure_eq!(
        s.get_refresh(&family).await.ctx("get_refresh")?,
        Some(RefreshLookup {
            token: t2.clone(),
            grant: g.clone(),
            user: None,
            session: None,
        }),
        "the family's token after rotation"
    );

    // The old hash is no longer current: a second rotation from it changes nothing.
    let t3 = RefreshToken {
        token_hash: unique("h"),
        ..t2.clone()
    };
    ensure_eq!(
        s.rotate_refresh(&t1.token_hash, &t3)
            .await
            .ctx("rotate_refresh")?,
        Rotation::Stale,
        "second rotation of the same token"
    );
    ensure_eq!(
        s.get_refresh(&family)
            .await
            .ctx("get_refresh")?
            .map(|l| l.token),
        Some(t2.clone()),
        "a stale rotation wrote"
    );
    let t4 = RefreshToken {
        family: unique("rt"),
        ..t2.clone()
    };
    ensure_eq!(
        s.rotate_refresh(&t2.token_hash, &t4)
            .await
            .ctx("rotate_refresh")?,
        Rotation::Stale,
        "rotation of an unknown family"
    );
    ensure!(
        s.get_refresh(&t4.family)
            .await
            .ctx("get_refresh")?
            .is_none(),
        "rotation of an unknown family stored a token"
    );

    s.revoke_grant(&g.id).await.ctx("revoke_grant")?;
    let lookup = s
        .get_refresh(&family)
        .await
        .ctx("get_refresh")?
        .ok_or("token disappeared")?;
    ensure!(
        lookup.grant.revoked,
        "get_refresh does not show the grant's revocation"
    );
    // The current token of a revoked grant does not rotate.
    let t5 = RefreshToken {
        token_hash: unique("h"),
        ..t2.clone()
    };
    ensure_eq!(
        s.rotate_refresh(&t2.token_hash, &t5)
            .await
            .ctx("rotate_refresh")?,
        Rotation::Stale,
        "rotation within a revoked grant"
    );
    ensure_eq!(
        stored_family(s, &family).await?.token,
        t2,
        "a rotation within a revoked grant wrote"
    );
    Ok(())
}

async fn stored_family<S: Store>(s: &S, family: &str) -> Result<RefreshLookup, String> {
    s.get_refresh(family)
        .await
        .ctx("get_refresh")?
        .ok_or_else(|| "the family disappeared".to_owned())
}

/// The whole refresh as one operation: `decide` sees the stored family, and its decision is
/// carried out (or nothing is written).
pub async fn refresh_family<S: Store>(s: &S) -> CheckResult {
    let g = grant(&unique("realm"), &unique("g"), None);
    let family = unique("rt");
    let t1 = refresh(&g.id, &family, NOW + 1000);
    s.insert_grant_with_refresh(&g, Some(&t1))
        .await
        .ctx("insert_grant_with_refresh")?;
    match s
        .refresh_family(&unique("rt"), |_| -> RefreshStep<(), ()> {
            RefreshStep::Refuse(())
        })
        .await
        .ctx("refresh_family")?
    {
        RefreshOutcome::Unknown => {}
        other => return Err(format!("unknown family: {other:?}")),
    }

    // Refuse: `decide` saw the stored family; nothing is written.
    let expected = RefreshLookup {
        token: t1.clone(),
        grant: g.clone(),
        user: None,
        session: None,
    };
    let seen = expected.clone();
    match s
        .refresh_family(&family, move |found| -> RefreshStep<(), &'static str> {
            if *found == seen {
                RefreshStep::Refuse("no")
            } else {
                RefreshStep::Refuse("decide saw something else")
            }
        })
        .await
        .ctx("refresh_family")?
    {
        RefreshOutcome::Refused("no") => {}
        other => return Err(format!("refuse: {other:?}")),
    }
    ensure_eq!(
        stored_family(s, &family).await?,
        expected,
        "a refusal wrote"
    );

    // Rotate: the successor replaces the token; the outcome carries the family as read.
    let t2 = RefreshToken {
        token_hash: unique("h"),
        created_at: NOW + 1,
        expires_at: NOW + 2000,
        ..t1.clone()
    };
    let successor = t2.clone();
    match s
        .refresh_family(&family, move |_| -> RefreshStep<u8, ()> {
            RefreshStep::Rotate(successor, 7)
        })
        .await
        .ctx("refresh_family")?
    {
        RefreshOutcome::Rotated(found, 7) if found == expected => {}
        other => return Err(format!("rotate: {other:?}")),
    }
    ensure_eq!(
        stored_family(s, &family).await?.token,
        t2.clone(),
        "the successor"
    );

    // RevokeGrant: the grant is revoked, the token stays.
    match s
        .refresh_family(&family, |_| -> RefreshStep<(), u8> {
            RefreshStep::RevokeGrant(3)
        })
        .await
        .ctx("refresh_family")?
    {
        RefreshOutcome::Refused(3) => {}
        other => return Err(format!("revoke: {other:?}")),
    }
    let after = stored_family(s, &family).await?;
    ensure!(after.grant.revoked, "RevokeGrant did not revoke the grant");
    ensure_eq!(after.token, t2.clone(), "RevokeGrant changed the token");

    // A rotation that `decide` allows still does not happen within a revoked grant.
    let t3 = RefreshToken {
        token_hash: unique("h"),
        ..t2.clone()
    };
    match s
        .refresh_family(&family, move |_| -> RefreshStep<(), ()> {
            RefreshStep::Rotate(t3, ())
        })
        .await
        .ctx("refresh_family")?
    {
        RefreshOutcome::Stale => {}
        other => return Err(format!("rotate within a revoked grant: {other:?}")),
    }
    ensure_eq!(
        stored_family(s, &family).await?.token,
        t2,
        "a rotation within a revoked grant wrote"
    );
    Ok(())
}

pub async fn access_token_revocation<S: Store>(s: &S) -> CheckResult {
    let (jti, other) = (unique("jti"), unique("jti"));
    ensure!(
        !s.is_access_token_revoked(&jti).await.ctx("is_revoked")?,
        "revoked before revoke"
    );
    s.revoke_access_token(&jti, NOW + 300)
        .await
        .ctx("revoke_access_token")?;
    ensure!(
        s.is_access_token_revoked(&jti).await.ctx("is_revoked")?,
        "not revoked"
    );
    ensure!(
        !s.is_access_token_revoked(&other).await.ctx("is_revoked")?,
        "other jti revoked"
    );
    s.revoke_access_token(&jti, NOW + 100)
        .await
        .ctx("revoke_access_token (again)")?;
    ensure!(
        s.is_access_token_revoked(&jti).await.ctx("is_revoked")?,
        "not revoked after twice"
    );
    Ok(())
}

pub async fn login_failures<S: Store>(s: &S) -> CheckResult {
    let r = unique("realm");
    let zero = LoginFailures::default();
    ensure_eq!(
        s.get_login_failures(&r, "erika").await.ctx("get")?,
        zero,
        "no failures yet"
    );
    for n in 1..=3u32 {
        let now = NOW + i64::from(n);
        let got = s
            .record_login_failure(&r, "erika", now)
            .await
            .ctx("record")?;
        ensure_eq!(
            got,
            LoginFailures {
                count: n,
                last_failure: now
            },
            "recorded failure"
        );
    }
    let three = LoginFailures {
        count: 3,
        last_failure: NOW + 3,
    };
    ensure_eq!(
        s.get_login_failures(&r, "erika").await.ctx("get")?,
        three,
        "after three"
    );
    ensure_eq!(
        s.get_login_failures(&r, "max").await.ctx("get")?,
        zero,
        "other key"
    );
    ensure_eq!(
        s.get_login_failures(&unique("realm"), "erika")
            .await
            .ctx("get")?,
        zero,
        "other realm"
    );
    s.clear_login_failures(&r, "erika").await.ctx("clear")?;
    ensure_eq!(
        s.get_login_failures(&r, "erika").await.ctx("get")?,
        zero,
        "after clear"
    );
    let again = s
        .record_login_failure(&r, "erika", NOW + 9)
        .await
        .ctx("record")?;
    ensure_eq!(
        again,
        LoginFailures {
            count: 1,
            last_failure: NOW + 9
        },
        "counting restarts"
    );
    s.clear_login_failures(&r, "nobody")
        .await
        .ctx("clear (unknown)")?;
    Ok(())
}

pub async fn flows<S: Store>(s: &S) -> CheckResult {
    let r = unique("realm");
    let id = unique("flow");
    let f = flow(&r, &id, NOW + 600);
    s.put_flow(&f).await.ctx("put_flow")?;
    ensure_eq!(
        s.get_flow(&id).await.ctx("get_flow")?,
        Some(f.clone()),
        "get_flow"
    );
    ensure_eq!(
        s.get_flow(&id).await.ctx("get_flow")?,
        Some(f.clone()),
        "get_flow keeps it"
    );
    let mut f2 = f;
    f2.data = r#"{"step":2}"#.into();
    f2.kind = "upstream".into();
    s.put_flow(&f2).await.ctx("put_flow (replace)")?;
    ensure_eq!(
        s.take_flow(&id).await.ctx("take_flow")?,
        Some(f2),
        "take_flow"
    );
    ensure!(
        s.take_flow(&id).await.ctx("take_flow")?.is_none(),
        "take_flow twice"
    );
    ensure!(
        s.get_flow(&id).await.ctx("get_flow")?.is_none(),
        "flow after take"
    );
    ensure!(
        s.take_flow(&unique("flow"))
            .await
            .ctx("take_flow")?
            .is_none(),
        "unknown flow"
    );
    Ok(())
}

/// Uses timestamps far before [`NOW`], so that it removes nothing the other checks (or a
/// concurrent run on the same database) still need.
pub async fn purge_expired<S: Store>(s: &S) -> CheckResult {
    const T: Timestamp = 1_000_000_000;
    let r = unique("realm");
    let g = grant(&r, &unique("g"), None);
    let live = grant(&r, &unique("g"), None);
    let (old_rt, new_rt) = (unique("rt"), unique("rt"));
    s.insert_grant_with_refresh(&g, Some(&refresh(&g.id, &old_rt, T - 10)))
        .await
        .ctx("insert_grant_with_refresh")?;
    s.insert_grant_with_refresh(&live, Some(&refresh(&live.id, &new_rt, T + 10)))
        .await
        .ctx("insert_grant_with_refresh")?;
    // Codes stay a day past their expiry, so that a late reuse still finds them.
    let (ancient_code, old_code, new_code) = (
        code(&r, &unique("c"), T - 90_000),
        code(&r, &unique("c"), T - 10),
        code(&r, &unique("c"), T + 10),
    );
    s.insert_code(&ancient_code).await.ctx("insert_code")?;
    s.insert_code(&old_code).await.ctx("insert_code")?;
    s.insert_code(&new_code).await.ctx("insert_code")?;
    let (old_jti, new_jti) = (unique("jti"), unique("jti"));
    s.revoke_access_token(&old_jti, T - 10)
        .await
        .ctx("revoke_access_token")?;
    s.revoke_access_token(&new_jti, T + 10)
        .await
        .ctx("revoke_access_token")?;
    let (old_flow, new_flow) = (
        flow(&r, &unique("f"), T - 10),
        flow(&r, &unique("f"), T + 10),
    );
    s.put_flow(&old_flow).await.ctx("put_flow")?;
    s.put_flow(&new_flow).await.ctx("put_flow")?;
    let (idle, live) = (
        session(&r, &unique("s"), T - 2000),
        session(&r, &unique("s"), T - 10),
    );
    s.create_session(&idle).await.ctx("create_session")?;
    s.create_session(&live).await.ctx("create_session")?;
    // A grant revoked long ago, one revoked recently, an old failure counter, a recent one.
    let mut long_revoked = grant(&r, &unique("g"), None);
    long_revoked.created_at = T - 200_000;
    long_revoked.revoked = true;
    let mut just_revoked = grant(&r, &unique("g"), None);
    just_revoked.created_at = T - 10;
    just_revoked.revoked = true;
    s.insert_grant(&long_revoked).await.ctx("insert_grant")?;
    s.insert_grant(&just_revoked).await.ctx("insert_grant")?;
    let (old_key, new_key, long_key) = (unique("user"), unique("user"), unique("user"));
    s.record_login_failure(&r, &old_key, T - 200_000)
        .await
        .ctx("record_login_failure")?;
    // Older than a day, but within the cut-off given (a realm's long lock-out).
    s.record_login_failure(&r, &long_key, T - 100_000)
        .await
        .ctx("record_login_failure")?;
    s.record_login_failure(&r, &new_key, T - 10)
        .await
        .ctx("record_login_failure")?;

    let removed = s
        .purge_expired(T, T - 1000, T - 150_000)
        .await
        .ctx("purge_expired")?;
    ensure!(
        s.get_grant(&long_revoked.id)
            .await
            .ctx("get_grant")?
            .is_none(),
        "grant revoked a day ago kept"
    );
    ensure!(
        s.get_grant(&just_revoked.id)
            .await
            .ctx("get_grant")?
            .is_some(),
        "recently revoked grant removed"
    );
    ensure_eq!(
        s.get_login_failures(&r, &old_key)
            .await
            .ctx("get_login_failures")?
            .count,
        0,
        "old failure counter kept"
    );
    ensure_eq!(
        s.get_login_failures(&r, &new_key)
            .await
            .ctx("get_login_failures")?
            .count,
        1,
        "recent failure counter removed"
    );
    ensure_eq!(
        s.get_login_failures(&r, &long_key)
            .await
            .ctx("get_login_failures")?
            .count,
        1,
        "failure counter within the cut-off removed"
    );
    ensure!(
        removed >= 5,
        "purge_expired reported {removed} rows, expected at least 5"
    );

    ensure!(
        s.get_refresh(&old_rt).await.ctx("get_refresh")?.is_none(),
        "expired token kept"
    );
    ensure!(
        s.get_refresh(&new_rt).await.ctx("get_refresh")?.is_some(),
        "live token removed"
    );
    ensure!(
        s.get_grant(&g.id).await.ctx("get_grant")?.is_some(),
        "grant removed"
    );
    ensure_eq!(
        s.redeem_code(&ancient_code.code_hash)
            .await
            .ctx("redeem_code")?,
        CodeRedemption::Unknown,
        "code expired a day ago kept"
    );
    ensure!(
        s.redeem_code(&old_code.code_hash)
            .await
            .ctx("redeem_code")?
            != CodeRedemption::Unknown,
        "code that just expired removed: its reuse would no longer be noticed"
    );
    ensure_eq!(
        s.redeem_code(&new_code.code_hash)
            .await
            .ctx("redeem_code")?,
        CodeRedemption::Fresh(new_code),
        "live code"
    );
    ensure!(
        !s.is_access_token_revoked(&old_jti)
            .await
            .ctx("is_revoked")?,
        "expired jti kept"
    );
    ensure!(
        s.is_access_token_revoked(&new_jti)
            .await
            .ctx("is_revoked")?,
        "live jti removed"
    );
    ensure!(
        s.get_flow(&old_flow.id).await.ctx("get_flow")?.is_none(),
        "expired flow kept"
    );
    ensure_eq!(
        s.get_flow(&new_flow.id).await.ctx("get_flow")?,
        Some(new_flow),
        "live flow"
    );
    ensure!(
        s.get_session(&idle.id).await.ctx("get_session")?.is_none(),
        "idle session kept"
    );
    ensure_eq!(
        s.get_session(&live.id).await.ctx("get_session")?,
        Some(live),
        "live session"
    );
    Ok(())
}

// --- concurrency -----------------------------------------------------------------------------

/// Joins spawned tasks; a panicked or cancelled task is a failure.
async fn join_all<T: Send + 'static>(
    tasks: Vec<tokio::task::JoinHandle<StoreResult<T>>>,
) -> Result<Vec<T>, String> {
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(
            t.await
                .map_err(|e| format!("task failed: {e}"))?
                .ctx("concurrent call")?,
        );
    }
    Ok(out)
}

/// Ten redemptions of one code at once: exactly one is `Fresh`.
pub async fn concurrent_code_redemption<S: Store>(store: Arc<S>) -> CheckResult {
    let c = code(&unique("realm"), &unique("c"), NOW + 60);
    store.insert_code(&c).await.ctx("insert_code")?;
    let tasks = (0..10)
        .map(|_| {
            let (store, h) = (store.clone(), c.code_hash.clone());
            tokio::spawn(async move { store.redeem_code(&h).await })
        })
        .collect();
    let results = join_all(tasks).await?;
    let fresh = results
        .iter()
        .filter(|r| matches!(r, CodeRedemption::Fresh(_)))
        .count();
    let reused = results
        .iter()
        .filter(|r| matches!(r, CodeRedemption::Reused(_)))
        .count();
    ensure!(
        fresh == 1 && reused == 9,
        "{fresh} fresh and {reused} reused of 10"
    );
    Ok(())
}

/// Ten rotations of one token at once: exactly one succeeds and only its token is stored.
pub async fn concurrent_refresh_rotation<S: Store>(store: Arc<S>) -> CheckResult {
    let g = grant(&unique("realm"), &unique("g"), None);
    let old = unique("rt");
    store
        .insert_grant_with_refresh(&g, Some(&refresh(&g.id, &old, NOW + 100)))
        .await
        .ctx("insert_grant_with_refresh")?;
    let old_hash = refresh(&g.id, &old, NOW + 100).token_hash;
    let news: Vec<RefreshToken> = (0..10)
        .map(|_| RefreshToken {
            token_hash: unique("h"),
            ..refresh(&g.id, &old, NOW + 200)
        })
        .collect();
    let tasks = news
        .iter()
        .map(|new| {
            let (store, old_hash, new) = (store.clone(), old_hash.clone(), new.clone());
            tokio::spawn(async move { store.rotate_refresh(&old_hash, &new).await })
        })
        .collect();
    let results = join_all(tasks).await?;
    let rotated = results.iter().filter(|r| **r == Rotation::Rotated).count();
    let stale = results.iter().filter(|r| **r == Rotation::Stale).count();
    ensure!(
        rotated == 1 && stale == 9,
        "{rotated} rotated and {stale} stale of 10"
    );
    let current = store
        .get_refresh(&old)
        .await
        .ctx("get_refresh")?
        .ok_or("family disappeared")?
        .token;
    ensure!(
        news.contains(&current),
        "the family's token is none of the rotations: {current:?}"
    );
    Ok(())
}

/// Ten refreshes of one token at once, each rotating only the token it presented (as the
/// refresh grant does): exactly one rotates; every other one ends the grant.
pub async fn concurrent_refresh_family<S: Store>(store: Arc<S>) -> CheckResult {
    let g = grant(&unique("realm"), &unique("g"), None);
    let family = unique("rt");
    let t1 = refresh(&g.id, &family, NOW + 100);
    store
        .insert_grant_with_refresh(&g, Some(&t1))
        .await
        .ctx("insert_grant_with_refresh")?;
    let tasks = (0..10)
        .map(|_| {
            let (store, family, presented) = (store.clone(), family.clone(), t1.token_hash.clone());
            let successor = RefreshToken {
                token_hash: unique("h"),
                ..t1.clone()
            };
            tokio::spawn(async move {
                let outcome = store
                    .refresh_family(&family, move |found| -> RefreshStep<(), ()> {
                        if found.token.token_hash == presented {
                            RefreshStep::Rotate(successor, ())
                        } else {
                            RefreshStep::RevokeGrant(())
                        }
                    })
                    .await?;
                Ok::<_, StoreError>(match outcome {
                    RefreshOutcome::Rotated(..) => "rotated",
                    RefreshOutcome::Stale | RefreshOutcome::Refused(()) => "ended",
                    RefreshOutcome::Unknown => "unknown",
                })
            })
        })
        .collect();
    let results = join_all(tasks).await?;
    let rotated = results.iter().filter(|r| **r == "rotated").count();
    let ended = results.iter().filter(|r| **r == "ended").count();
    ensure!(
        rotated == 1 && ended == 9,
        "{rotated} rotated and {ended} ended of 10"
    );
    let after = store
        .get_refresh(&family)
        .await
        .ctx("get_refresh")?
        .ok_or("family disappeared")?;
    ensure!(after.grant.revoked, "the replays did not revoke the grant");
    Ok(())
}

/// Five nodes inserting their first key at once: one key.
pub async fn concurrent_first_key<S: Store>(store: Arc<S>) -> CheckResult {
    let r = unique("realm");
    let tasks = (0..5)
        .map(|i| {
            let (store, k) = (store.clone(), key(&r, &format!("k{i}"), NOW));
            tokio::spawn(async move { store.insert_first_key(&k).await })
        })
        .collect();
    let stored = join_all(tasks).await?.into_iter().filter(|b| *b).count();
    ensure_eq!(stored, 1, "keys reported stored");
    let keys = store.list_keys(&r).await.ctx("list_keys")?;
    ensure!(
        keys.len() == 1 && keys[0].retired_at.is_none(),
        "expected one active key, got {keys:?}"
    );
    Ok(())
}

/// `n` failures recorded at once all count.
pub async fn concurrent_login_failures<S: Store>(store: Arc<S>, n: u32) -> CheckResult {
    let r = unique("realm");
    let tasks = (0..n)
        .map(|i| {
            let (store, r) = (store.clone(), r.clone());
            tokio::spawn(async move {
                store
                    .record_login_failure(&r, "target", NOW + i64::from(i))
                    .await
            })
        })
        .collect();
    let mut counts: Vec<u32> = join_all(tasks)
        .await?
        .into_iter()
        .map(|f| f.count)
        .collect();
    counts.sort_unstable();
    ensure_eq!(counts, (1..=n).collect::<Vec<u32>>(), "counts returned");
    let total = store
        .get_login_failures(&r, "target")
        .await
        .ctx("get_login_failures")?;
    ensure_eq!(total.count, n, "final count");
    Ok(())
}
