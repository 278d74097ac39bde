//! The SQLite backend: embedded, one file, one node.

use std::str::FromStr;
use std::time::Duration;

use pforte_core::store::{StoreError, StoreResult};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};

use crate::common::err;
use crate::migrate;
use crate::rotation::Batcher;

const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
const READERS: u32 = 4;

/// `Store` on SQLite.
///
/// Every write and transaction goes through a single writer connection, so writers queue in
/// the pool instead of failing with `SQLITE_BUSY`; reads use a separate pool of readers,
/// which WAL lets run alongside the writer. Write transactions start with `BEGIN IMMEDIATE`.
/// An in-memory database (`sqlite::memory:`) uses the one connection for everything.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    writer: SqlitePool,
    readers: SqlitePool,
    rotations: Batcher,
}

impl SqliteStore {
    /// Opens (creating it when missing) and migrates the database at `url`:
    /// `sqlite:///absolute/path.db`, `sqlite://relative.db` or `sqlite::memory:`.
    pub async fn connect(url: &str) -> StoreResult<SqliteStore> {
        let fail = |e: &dyn std::fmt::Display| {
            StoreError::Backend(format!("cannot open {}: {e}", crate::redact_url(url)))
        };
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| fail(&e))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");

        let mut writer_pool = SqlitePoolOptions::new().max_connections(1);
        if in_memory {
            // The database lives as long as a connection to it: keep the one open forever.
            writer_pool = writer_pool
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        }
        let writer = writer_pool
            .connect_with(options.clone())
            .await
            .map_err(|e| fail(&e))?;

        let mut tx = writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| fail(&e))?;
        apply_migrations!(tx, migrate::SQLITE, migrate::CREATE_TABLE_SQLITE).await?;
        tx.commit().await.map_err(err("migrations: commit"))?;

        let readers = if in_memory {
            writer.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(READERS)
                .connect_with(options.pragma("query_only", "ON"))
                .await
                .map_err(|e| fail(&e))?
        };
        let pool = writer.clone();
        let rotations = Batcher::spawn(move |items| {
            let pool = pool.clone();
            async move { exec_rotations!(&pool, &items) }
        });
        Ok(SqliteStore {
            writer,
            readers,
            rotations,
        })
    }

    /// Closes both pools (waits for connections in use to be returned).
    pub async fn close(&self) {
        self.readers.close().await;
        self.writer.close().await;
    }

    pub(crate) fn reader(&self) -> &SqlitePool {
        &self.readers
    }

    pub(crate) fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
        self.writer.begin_with("BEGIN IMMEDIATE").await
    }

    /// Refresh rotations share statements on the one writer (see [`crate::rotation`]).
    async fn rotate(
        &self,
        old_hash: &str,
        new: &pforte_core::model::RefreshToken,
    ) -> StoreResult<pforte_core::model::Rotation> {
        self.rotations.rotate(old_hash, new).await
    }

    async fn ping_inner(&self) -> StoreResult<()> {
        let version: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM pforte_migrations")
            .fetch_one(self.reader())
            .await
            .map_err(err("ping"))?;
        migrate::check_version(version, migrate::latest(migrate::SQLITE))
    }
}

impl_store!(SqliteStore);
