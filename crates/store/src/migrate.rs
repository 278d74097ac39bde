//! A small migration runner: embedded SQL files, applied in order inside one transaction,
//! recorded in `pforte_migrations(version, name, applied_at)`.

use pforte_core::store::{StoreError, StoreResult};

/// One embedded migration.
pub(crate) struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

macro_rules! migrations {
    ($dir:literal: $($version:literal $name:literal),* $(,)?) => {
        &[$(Migration {
            version: $version,
            name: $name,
            sql: include_str!(concat!("../migrations/", $dir, "/", $name, ".sql")),
        }),*]
    };
}

pub(crate) static SQLITE: &[Migration] =
    migrations!("sqlite": 1 "0001_initial", 2 "0002_refresh_families");
pub(crate) static POSTGRES: &[Migration] =
    migrations!("postgres": 1 "0001_initial", 2 "0002_refresh_families");

/// The newest version `migrations` knows.
pub(crate) fn latest(migrations: &[Migration]) -> i64 {
    migrations.iter().map(|m| m.version).max().unwrap_or(0)
}

pub(crate) const CREATE_TABLE_SQLITE: &str = "CREATE TABLE IF NOT EXISTS pforte_migrations (\
     version INTEGER NOT NULL PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)";
pub(crate) const CREATE_TABLE_POSTGRES: &str = "CREATE TABLE IF NOT EXISTS pforte_migrations (\
     version BIGINT NOT NULL PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)";

/// Which of `migrations` still need applying, given the `(version, name)` rows already
/// recorded. A recorded migration whose name differs from the embedded one is an error (the
/// database belongs to a different build); versions newer than this build are tolerated.
pub(crate) fn pending<'m>(
    migrations: &'m [Migration],
    applied: &[(i64, String)],
) -> StoreResult<Vec<&'m Migration>> {
    let mut todo = Vec::new();
    for m in migrations {
        match applied.iter().find(|(v, _)| *v == m.version) {
            Some((_, name)) if name == m.name => {}
            Some((_, name)) => {
                return Err(StoreError::Backend(format!(
                    "migration {} is '{name}' in the database but '{}' in this build",
                    m.version, m.name
                )));
            }
            None => todo.push(m),
        }
    }
    if let Some((v, name)) = applied
        .iter()
        .filter(|(v, _)| *v > latest(migrations))
        .max()
    {
        tracing::warn!(
            version = v,
            name = name.as_str(),
            "the database has a migration newer than this build knows"
        );
    }
    Ok(todo)
}

/// `ping`: the database is at least at `expected`.
pub(crate) fn check_version(found: Option<i64>, expected: i64) -> StoreResult<()> {
    match found {
        Some(v) if v >= expected => Ok(()),
        v => Err(StoreError::Backend(format!(
            "migrations not applied: database at version {}, this build needs {expected}",
            v.unwrap_or(0)
        ))),
    }
}

pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Applies the pending migrations inside the open transaction `$tx` (the caller commits).
/// Evaluates to `StoreResult<()>`.
macro_rules! apply_migrations {
    ($tx:ident, $migrations:expr, $create_table:expr) => {
        async {
            use $crate::common::err;
            sqlx::raw_sql($create_table)
                .execute(&mut *$tx)
                .await
                .map_err(err("migrations: create pforte_migrations"))?;
            let applied: Vec<(i64, String)> =
                sqlx::query_as("SELECT version, name FROM pforte_migrations ORDER BY version")
                    .fetch_all(&mut *$tx)
                    .await
                    .map_err(err("migrations: read pforte_migrations"))?;
            for m in $crate::migrate::pending($migrations, &applied)? {
                sqlx::raw_sql(m.sql).execute(&mut *$tx).await.map_err(|e| {
                    $crate::common::map_err(&format!("migration {} {}", m.version, m.name), e)
                })?;
                sqlx::query(
                    "INSERT INTO pforte_migrations (version, name, applied_at) \
                     VALUES ($1, $2, $3)",
                )
                .bind(m.version)
                .bind(m.name)
                .bind($crate::migrate::unix_now())
                .execute(&mut *$tx)
                .await
                .map_err(err("migrations: record"))?;
                tracing::info!(version = m.version, name = m.name, "applied migration");
            }
            Ok::<(), pforte_core::store::StoreError>(())
        }
    };
}
