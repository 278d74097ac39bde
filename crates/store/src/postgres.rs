//! The PostgreSQL backend: shared by every node of a cluster.

use std::str::FromStr;
use std::time::Duration;

use pforte_core::store::{StoreError, StoreResult};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, Postgres, Transaction};

use crate::common::err;
use crate::migrate;

/// The key of the transaction-scoped advisory lock that serialises migrations across nodes
/// (`pforte` in ASCII).
const MIGRATION_LOCK: i64 = 0x7066_6f72_7465;

/// `Store` on PostgreSQL.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Compare-and-swap on the family's current hash: of two rotations from one token, only
    /// the first finds it. PostgreSQL takes concurrent writers itself.
    async fn rotate(
        &self,
        old_hash: &str,
        new: &pforte_core::model::RefreshToken,
    ) -> pforte_core::store::StoreResult<pforte_core::model::Rotation> {
        let done = sqlx::query(
            "UPDATE refresh_tokens SET token_hash = $3, scope = $4, created_at = $5, \
             expires_at = $6 WHERE family = $1 AND token_hash = $2 AND EXISTS \
             (SELECT 1 FROM grants g WHERE g.id = refresh_tokens.grant_id AND NOT g.revoked)",
        )
        .bind(&new.family)
        .bind(old_hash)
        .bind(&new.token_hash)
        .bind(&new.scope)
        .bind(new.created_at)
        .bind(new.expires_at)
        .execute(&self.pool)
        .await
        .map_err(err("rotate_refresh"))?;
        Ok(if done.rows_affected() == 1 {
            pforte_core::model::Rotation::Rotated
        } else {
            pforte_core::model::Rotation::Stale
        })
    }

    /// Connects to `url` (`postgres://user:password@host:port/db?sslmode=…`, also
    /// `postgresql://`) and applies the migrations. Nodes starting at once take turns.
    pub async fn connect(url: &str) -> StoreResult<PgStore> {
        let fail = |e: &dyn std::fmt::Display| {
            StoreError::Backend(format!("cannot connect to {}: {e}", crate::redact_url(url)))
        };
        let options = PgConnectOptions::from_str(url).map_err(|e| fail(&e))?;
        // One direct connection first: fails fast with the real cause (the pool would retry
        // until its acquire timeout and then report only the timeout).
        let probe = options.connect().await.map_err(|e| fail(&e))?;
        probe.close().await.map_err(|e| fail(&e))?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(|e| fail(&e))?;
        let store = PgStore { pool };
        store.migrate().await?;
        Ok(store)
    }

    /// A store on an existing pool; applies the migrations.
    pub async fn from_pool(pool: PgPool) -> StoreResult<PgStore> {
        let store = PgStore { pool };
        store.migrate().await?;
        Ok(store)
    }

    /// The underlying pool (e.g. for `LISTEN/NOTIFY`).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes the pool (waits for connections in use to be returned).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn migrate(&self) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(err("migrations: begin"))?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(err("migrations: lock"))?;
        apply_migrations!(tx, migrate::POSTGRES, migrate::CREATE_TABLE_POSTGRES).await?;
        tx.commit().await.map_err(err("migrations: commit"))
    }

    fn reader(&self) -> &PgPool {
        &self.pool
    }

    fn writer(&self) -> &PgPool {
        &self.pool
    }

    async fn begin_write(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        self.pool.begin().await
    }

    async fn ping_inner(&self) -> StoreResult<()> {
        let version: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM pforte_migrations")
            .fetch_one(self.reader())
            .await
            .map_err(err("ping"))?;
        migrate::check_version(version, migrate::latest(migrate::POSTGRES))
    }
}

impl_store!(PgStore);
