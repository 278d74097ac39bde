//! The SQLite backend: embedded, one file, one node.
//!
//! SQLite is a library, not a server, and allows one writer at a time. This backend calls it
//! directly (rusqlite) on **one connection owned by one thread** ([`db_thread`]): callers
//! send whole operations there and await the answer; the thread runs what is waiting in
//! groups, one transaction and one commit per group. One hand-off per operation (sqlx ran
//! every statement on a connection thread of its own: one hand-off per statement), no
//! `SQLITE_BUSY` between our own writes, and a page cache that no other connection's commits
//! invalidate.
//!
//! Other processes (`pforte import`, `pforte keys rotate`) may use the file at the same
//! time: WAL and the 5 s busy timeout take care of them.

mod db_thread;
mod queries;

use std::path::PathBuf;
use std::time::Duration;

use pforte_core::store::{StoreError, StoreResult};
use rusqlite::Connection;

use crate::migrate;
use db_thread::DbThread;

const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Prepared statements kept: the store has about 55 distinct ones, plus the handful of
/// transaction-control statements the connection's thread runs.
const STATEMENT_CACHE: usize = 96;

/// `Store` on SQLite.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    db: DbThread,
}

/// Maps a rusqlite error: unique violations are `Conflict`, decode failures `Corrupt`,
/// everything else `Backend`; `context` says what was being done.
pub(crate) fn map_err(context: &str, e: rusqlite::Error) -> StoreError {
    use rusqlite::Error as E;
    use rusqlite::ffi;
    match &e {
        E::SqliteFailure(f, _)
            if f.extended_code == ffi::SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
        {
            StoreError::Conflict(format!("{context}: {e}"))
        }
        E::FromSqlConversionFailure(..)
        | E::IntegralValueOutOfRange(..)
        | E::InvalidColumnType(..)
        | E::InvalidColumnIndex(_)
        | E::InvalidColumnName(_) => StoreError::Corrupt(format!("{context}: {e}")),
        _ => StoreError::Backend(format!("{context}: {e}")),
    }
}

/// `.map_err(err("what"))`.
pub(crate) fn err(context: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |e| map_err(context, e)
}

/// Where a `sqlite:` URL points.
#[derive(Debug, PartialEq)]
enum Location {
    Memory,
    File(PathBuf),
}

/// `sqlite::memory:`, `sqlite://<path>` or `sqlite:<path>` (scheme in any case, path
/// percent-decoded), optionally with `?mode=memory` (in-memory) or `?mode=rwc` (the
/// default: read-write, created when missing).
fn parse_url(url: &str) -> Result<Location, String> {
    let rest = url
        .get(..7)
        .filter(|scheme| scheme.eq_ignore_ascii_case("sqlite:"))
        .map(|_| &url[7..])
        .ok_or_else(|| "not a sqlite: URL".to_owned())?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    let mut memory = path == ":memory:";
    for pair in query.into_iter().flat_map(|q| q.split('&')) {
        match pair.split_once('=') {
            _ if pair.is_empty() => {}
            Some(("mode", "memory")) => memory = true,
            Some(("mode", "rwc")) => {}
            _ => {
                return Err(format!(
                    "unsupported parameter '{pair}' (supported: mode=rwc, mode=memory)"
                ));
            }
        }
    }
    if memory {
        return Ok(Location::Memory);
    }
    let path = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .map_err(|_| "the path is not UTF-8 after percent-decoding".to_owned())?;
    if path.is_empty() {
        return Err("no database file given".to_owned());
    }
    Ok(Location::File(PathBuf::from(path.as_ref())))
}

/// Opens and migrates: blocking file work, run off the async threads.
fn open(url: &str) -> StoreResult<Connection> {
    let fail = |e: &dyn std::fmt::Display| {
        StoreError::Backend(format!("cannot open {}: {e}", crate::redact_url(url)))
    };
    let mut conn = match parse_url(url).map_err(|e| fail(&e))? {
        Location::Memory => Connection::open_in_memory().map_err(|e| fail(&e))?,
        Location::File(path) => {
            let conn = Connection::open(&path).map_err(|e| fail(&e))?;
            // Before the first statement: another process (a running server, `pforte
            // import`) may hold a lock on the file right now.
            conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| fail(&e))?;
            let mode: String = conn
                .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
                .map_err(|e| fail(&e))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(fail(&format!(
                    "cannot switch to WAL journaling (journal_mode is {mode})"
                )));
            }
            conn
        }
    };
    conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| fail(&e))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
        .map_err(|e| fail(&e))?;
    migrate_sqlite(&mut conn)?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating it when missing) and migrates the database at `url`:
    /// `sqlite:///absolute/path.db`, `sqlite://relative.db` or `sqlite::memory:`.
    pub async fn connect(url: &str) -> StoreResult<SqliteStore> {
        let owned = url.to_owned();
        let conn = tokio::task::spawn_blocking(move || open(&owned))
            .await
            .map_err(|e| {
                StoreError::Backend(format!("opening {}: {e}", crate::redact_url(url)))
            })??;
        Ok(SqliteStore {
            db: DbThread::spawn(conn)?,
        })
    }

    /// Lets the operations queued before finish, then closes the connection.
    pub async fn close(&self) {
        self.db.close().await;
    }

    /// Runs `work`, which only reads.
    async fn read<T, F>(&self, what: &'static str, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.db.read(what, work).await
    }

    /// Runs `work` in a transaction; answers after the commit.
    async fn write<T, F>(&self, what: &'static str, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.db.write(what, work).await
    }

    async fn ping_inner(&self) -> StoreResult<()> {
        let version = self
            .read("ping", |c| {
                c.query_row("SELECT MAX(version) FROM pforte_migrations", [], |r| {
                    r.get::<_, Option<i64>>(0)
                })
                .map_err(err("ping"))
            })
            .await?;
        migrate::check_version(version, migrate::latest(migrate::SQLITE))
    }

    /// Runs `work` on the connection (tests look at pragmas and raw rows).
    #[cfg(test)]
    pub(crate) async fn raw<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> rusqlite::Result<T> {
        self.write("test", move |c| Ok(work(c)))
            .await
            .unwrap_or_else(|e| Err(rusqlite::Error::InvalidParameterName(e.to_string())))
    }
}

/// Applies the pending migrations in one `BEGIN IMMEDIATE` transaction.
fn migrate_sqlite(conn: &mut Connection) -> StoreResult<()> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(err("migrations: begin"))?;
    tx.execute_batch(migrate::CREATE_TABLE_SQLITE)
        .map_err(err("migrations: create pforte_migrations"))?;
    let applied = {
        let mut stmt = tx
            .prepare("SELECT version, name FROM pforte_migrations ORDER BY version")
            .map_err(err("migrations: read pforte_migrations"))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
            .map_err(err("migrations: read pforte_migrations"))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(err("migrations: read pforte_migrations"))?
    };
    for m in migrate::pending(migrate::SQLITE, &applied)? {
        tx.execute_batch(m.sql)
            .map_err(|e| map_err(&format!("migration {} {}", m.version, m.name), e))?;
        tx.execute(
            "INSERT INTO pforte_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
            (m.version, m.name, migrate::unix_now()),
        )
        .map_err(err("migrations: record"))?;
        tracing::info!(version = m.version, name = m.name, "applied migration");
    }
    tx.commit().map_err(err("migrations: commit"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(parse_url("sqlite::memory:"), Ok(Location::Memory));
        assert_eq!(parse_url("sqlite://x.db?mode=memory"), Ok(Location::Memory));
        assert_eq!(
            parse_url("sqlite:///var/lib/pforte.db"),
            Ok(Location::File("/var/lib/pforte.db".into()))
        );
        assert_eq!(
            parse_url("sqlite://data/p.db?mode=rwc"),
            Ok(Location::File("data/p.db".into()))
        );
        assert_eq!(parse_url("sqlite:p.db"), Ok(Location::File("p.db".into())));
        assert_eq!(
            parse_url("SQLite:///srv/my%20db/p.db?"),
            Ok(Location::File("/srv/my db/p.db".into()))
        );
        let e = parse_url("sqlite://p.db?cache=shared").unwrap_err();
        assert!(e.contains("cache=shared"), "{e}");
        assert!(parse_url("sqlite://").is_err());
    }
}
