//! The conformance suite on both backends, plus backend-specific checks.
//! PostgreSQL tests run when `PFORTE_TEST_POSTGRES_URL` is set.

use std::path::PathBuf;
use std::sync::Arc;

use pforte_core::model::RefreshToken;
use pforte_core::store::{RefreshOutcome, RefreshStep, Store, StoreError};

use crate::{AnyStore, PgStore, SqliteStore, conformance, migrate, redact_url};

pub(crate) const PG_URL_VAR: &str = "PFORTE_TEST_POSTGRES_URL";

/// A database file in the temp dir, removed (with its WAL files) on drop.
struct TempDb(PathBuf);

impl TempDb {
    fn new() -> TempDb {
        TempDb(std::env::temp_dir().join(format!("{}.db", conformance::unique("pforte-store"))))
    }

    fn url(&self) -> String {
        format!("sqlite://{}", self.0.display())
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut p = self.0.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }
}

fn pg_url() -> Option<String> {
    match std::env::var(PG_URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("skipped: {PG_URL_VAR} not set");
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_sqlite_file() {
    let db = TempDb::new();
    let store = SqliteStore::connect(&db.url()).await.unwrap();
    if let Err(failures) = conformance::run_all(Arc::new(store.clone())).await {
        panic!("SQLite conformance failures:\n{failures}");
    }
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_sqlite_memory_via_any_store() {
    let store = AnyStore::connect("sqlite::memory:").await.unwrap();
    assert_eq!(store.backend(), "sqlite");
    if let Err(failures) = conformance::run_all(Arc::new(store)).await {
        panic!("SQLite (in-memory) conformance failures:\n{failures}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_postgres() {
    let Some(url) = pg_url() else { return };
    let store = AnyStore::connect(&url).await.unwrap();
    assert_eq!(store.backend(), "postgres");
    if let Err(failures) = conformance::run_all(Arc::new(store)).await {
        panic!("PostgreSQL conformance failures:\n{failures}");
    }
}

/// PostgreSQL runs a refresh as separate statements (read, decision, swap). A revocation by
/// another node that lands in between (a replay or a logout there) must win: no successor
/// token within the revoked grant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_revocation_between_refresh_read_and_swap() {
    let Some(url) = pg_url() else { return };
    let store = PgStore::connect(&url).await.unwrap();
    let other_node = PgStore::connect(&url).await.unwrap();
    let g = conformance::grant(
        &conformance::unique("realm"),
        &conformance::unique("g"),
        None,
    );
    let family = conformance::unique("rt");
    let t1 = conformance::refresh(&g.id, &family, conformance::NOW + 1000);
    store
        .insert_grant_with_refresh(&g, Some(&t1))
        .await
        .unwrap();
    let successor = RefreshToken {
        token_hash: conformance::unique("h"),
        ..t1.clone()
    };
    let grant_id = g.id.clone();
    let outcome = store
        .refresh_family(&family, move |found| {
            assert!(!found.grant.revoked, "read after the revocation");
            let handle = tokio::runtime::Handle::current();
            tokio::task::block_in_place(|| handle.block_on(other_node.revoke_grant(&grant_id)))
                .unwrap();
            RefreshStep::<(), ()>::Rotate(successor, ())
        })
        .await
        .unwrap();
    assert!(matches!(outcome, RefreshOutcome::Stale), "{outcome:?}");
    let after = store.get_refresh(&family).await.unwrap().unwrap();
    assert_eq!(
        after.token, t1,
        "a successor was stored within a revoked grant"
    );
    assert!(after.grant.revoked);
}

#[tokio::test]
async fn sqlite_migrations_are_idempotent() {
    let db = TempDb::new();
    let first = SqliteStore::connect(&db.url()).await.unwrap();
    let realm = conformance::realm(&conformance::unique("realm"));
    first
        .apply_import(&pforte_core::store::RealmImport {
            realm: Some(realm.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    first.close().await;

    let second = SqliteStore::connect(&db.url()).await.unwrap();
    second.ping().await.unwrap();
    assert_eq!(
        second.get_realm(&realm.name).await.unwrap().as_deref(),
        Some(&realm)
    );
    let rows: Vec<(i64, String)> = second
        .raw(|c| {
            let mut stmt =
                c.prepare("SELECT version, name FROM pforte_migrations ORDER BY version")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
        .await
        .unwrap();
    let expected: Vec<(i64, String)> = migrate::SQLITE
        .iter()
        .map(|m| (m.version, m.name.to_owned()))
        .collect();
    assert_eq!(rows, expected);
    second.close().await;
}

#[tokio::test]
async fn sqlite_pragmas() {
    let db = TempDb::new();
    let store = SqliteStore::connect(&db.url()).await.unwrap();
    let pragma = |name: &'static str| {
        let store = store.clone();
        async move {
            store
                .raw(move |c| {
                    c.query_row(&format!("PRAGMA {name}"), [], |r| {
                        r.get::<_, rusqlite::types::Value>(0)
                    })
                })
                .await
                .unwrap()
        }
    };
    use rusqlite::types::Value::{Integer, Text};
    assert_eq!(pragma("journal_mode").await, Text("wal".into()));
    assert_eq!(pragma("foreign_keys").await, Integer(1));
    assert_eq!(
        pragma("synchronous").await,
        Integer(1),
        "synchronous=NORMAL"
    );
    assert_eq!(pragma("busy_timeout").await, Integer(5000));
    store.close().await;
}

#[tokio::test]
async fn sqlite_relative_url_creates_the_file() {
    // `sqlite://relative.db` is relative to the working directory (the crate dir in tests),
    // so point it at the temp dir through a relative path from there.
    let db = TempDb::new();
    let cwd = std::env::current_dir().unwrap();
    let depth = cwd.components().count().saturating_sub(1);
    let relative = format!(
        "{}{}",
        "../".repeat(depth),
        db.0.display().to_string().trim_start_matches('/')
    );
    let store = SqliteStore::connect(&format!("sqlite://{relative}"))
        .await
        .unwrap();
    store.ping().await.unwrap();
    assert!(
        db.0.exists(),
        "database file not created at {}",
        db.0.display()
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_concurrent_writers() {
    let db = TempDb::new();
    let store = Arc::new(SqliteStore::connect(&db.url()).await.unwrap());
    conformance::concurrent_login_failures(store.clone(), 50)
        .await
        .unwrap();
    // Reads alongside writes.
    let realm = conformance::unique("realm");
    let mut tasks = Vec::new();
    for i in 0..40 {
        let (store, realm) = (store.clone(), realm.clone());
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                store.record_login_failure(&realm, "k", i).await.map(|_| ())
            } else {
                store.get_login_failures(&realm, "k").await.map(|_| ())
            }
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(
        store.get_login_failures(&realm, "k").await.unwrap().count,
        20
    );
    store.close().await;
}

#[tokio::test]
async fn sqlite_another_process_may_write_meanwhile() {
    // `pforte keys rotate` or `pforte import` beside a running server: the file is shared.
    let db = TempDb::new();
    let server = SqliteStore::connect(&db.url()).await.unwrap();
    let cli = SqliteStore::connect(&db.url()).await.unwrap();
    let realm = conformance::realm(&conformance::unique("realm"));
    cli.apply_import(&pforte_core::store::RealmImport {
        realm: Some(realm.clone()),
        ..Default::default()
    })
    .await
    .unwrap();
    cli.close().await;
    assert_eq!(
        server.get_realm(&realm.name).await.unwrap().as_deref(),
        Some(&realm)
    );
    server.close().await;
}

#[tokio::test]
async fn sqlite_corrupt_document_is_corrupt() {
    let db = TempDb::new();
    let store = SqliteStore::connect(&db.url()).await.unwrap();
    store
        .raw(|c| {
            c.execute(
                "INSERT INTO realms (name, doc) VALUES ('broken', '{not json')",
                [],
            )
        })
        .await
        .unwrap();
    assert!(matches!(
        store.get_realm("broken").await,
        Err(StoreError::Corrupt(_))
    ));
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_concurrent_connects() {
    let Some(url) = pg_url() else { return };
    let (a, b) = tokio::join!(PgStore::connect(&url), PgStore::connect(&url));
    let (a, b) = (a.unwrap(), b.unwrap());
    a.ping().await.unwrap();
    b.ping().await.unwrap();
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn unknown_scheme_names_accepted_forms() {
    let err = AnyStore::connect("mysql://root:hunter2@db/pforte")
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("mysql://root:***@db/pforte"), "{msg}");
    assert!(!msg.contains("hunter2"), "{msg}");
    assert!(
        msg.contains("sqlite:///absolute/path.db") && msg.contains("postgres://"),
        "{msg}"
    );
}

#[tokio::test]
async fn postgres_connect_failure_redacts_password() {
    // Port 1 on localhost: nothing listens there.
    let url = "postgres://pforte:s3cret@127.0.0.1:1/pforte";
    let err = AnyStore::connect(url).await.unwrap_err();
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(matches!(err, StoreError::Backend(_)), "{msg}");
    assert!(
        msg.contains("postgres://pforte:***@127.0.0.1:1/pforte"),
        "{msg}"
    );
    assert!(!msg.contains("s3cret"), "{msg}");
    assert!(
        msg.to_lowercase().contains("refused"),
        "the cause is missing: {msg}"
    );
}

#[tokio::test]
async fn sqlite_open_failure_names_the_url() {
    let err = SqliteStore::connect("sqlite:///nonexistent-dir-pforte/x/y.db")
        .await
        .unwrap_err();
    eprintln!("{err}");
    assert!(
        err.to_string().contains("/nonexistent-dir-pforte/x/y.db"),
        "{err}"
    );
}

#[test]
fn redaction() {
    assert_eq!(
        redact_url("postgres://user:pw@host/db"),
        "postgres://user:***@host/db"
    );
    assert_eq!(
        redact_url("postgresql://u:p%40ss@h:5432/d?x=1"),
        "postgresql://u:***@h:5432/d?x=1"
    );
    assert_eq!(
        redact_url("postgres://user@host/db"),
        "postgres://user@host/db"
    );
    assert_eq!(
        redact_url("postgres://host/db?password=pw&a=b"),
        "postgres://host/db?password=***&a=b"
    );
    assert_eq!(
        redact_url("sqlite:///var/lib/pforte.db"),
        "sqlite:///var/lib/pforte.db"
    );
    assert_eq!(redact_url("sqlite::memory:"), "sqlite::memory:");
}

#[test]
fn embedded_migrations_are_ordered_and_paired() {
    for set in [migrate::SQLITE, migrate::POSTGRES] {
        let versions: Vec<i64> = set.iter().map(|m| m.version).collect();
        let expected: Vec<i64> = (1..=set.len() as i64).collect();
        assert_eq!(versions, expected);
        for m in set {
            assert!(
                m.name.starts_with(&format!("{:04}_", m.version)),
                "{}",
                m.name
            );
        }
    }
    let names = |set: &[migrate::Migration]| set.iter().map(|m| m.name).collect::<Vec<_>>();
    assert_eq!(names(migrate::SQLITE), names(migrate::POSTGRES));
}

#[test]
fn pending_migrations() {
    let applied: Vec<(i64, String)> = migrate::SQLITE
        .iter()
        .map(|m| (m.version, m.name.to_owned()))
        .collect();
    assert!(
        migrate::pending(migrate::SQLITE, &applied)
            .unwrap()
            .is_empty()
    );
    let first_only = vec![(1, "0001_initial".to_owned())];
    assert_eq!(
        migrate::pending(migrate::SQLITE, &first_only)
            .unwrap()
            .len(),
        migrate::SQLITE.len() - 1
    );
    assert_eq!(
        migrate::pending(migrate::SQLITE, &[]).unwrap().len(),
        migrate::SQLITE.len()
    );
    let wrong = vec![(1, "0001_other".to_owned())];
    assert!(migrate::pending(migrate::SQLITE, &wrong).is_err());
}

#[test]
fn import_self_conflicts() {
    use crate::common::import_self_conflict;
    use conformance::user;
    let ok = [
        user("r", "1", "a", Some("a@x")),
        user("r", "2", "b", None),
        user("s", "3", "a", None),
    ];
    assert_eq!(import_self_conflict(&ok), None);
    let twice = [user("r", "1", "a", None), user("r", "1", "a", None)];
    assert!(
        import_self_conflict(&twice)
            .unwrap()
            .contains("appears twice")
    );
    let name = [user("r", "1", "Ann", None), user("r", "2", "ann", None)];
    assert!(import_self_conflict(&name).unwrap().contains("'ann'"));
    let email = [
        user("r", "1", "a", Some("A@x")),
        user("r", "2", "b", Some("a@x")),
    ];
    assert!(import_self_conflict(&email).unwrap().contains("'a@x'"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_connect_waits_for_a_lock_held_elsewhere() {
    // A database in rollback-journal mode, locked by another connection for a moment:
    // switching it to WAL must wait for the lock (busy timeout), not fail at once.
    let db = TempDb::new();
    let other = rusqlite::Connection::open(&db.0).unwrap();
    other
        .execute_batch("CREATE TABLE t (x INTEGER); BEGIN EXCLUSIVE; INSERT INTO t VALUES (1);")
        .unwrap();
    let release = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        other.execute_batch("COMMIT").unwrap();
    });
    let store = SqliteStore::connect(&db.url()).await;
    release.join().unwrap();
    let store = store.unwrap();
    store.ping().await.unwrap();
    store.close().await;
}
