//! Applying a realm file: parse, validate, convert against what is stored, write in one
//! transaction. Nothing of a file is written unless all of it is valid.

use crate::model::Timestamp;
use crate::representation::{self, ImportError, RealmRepresentation};
use crate::rng::Rng;
use crate::secret::PasswordCost;
use crate::store::{Store, StoreError};

/// What a successful import reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportOutcome {
    pub realm: String,
    /// Unknown or unsupported fields, by JSON path: never silently dropped.
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportFailure {
    #[error("{0}")]
    Invalid(#[from] ImportError),
    #[error("{source_name}: {error}")]
    Store {
        source_name: String,
        error: StoreError,
    },
}

pub async fn import_realm<S: Store>(
    store: &S,
    bytes: &[u8],
    source: &str,
    now: Timestamp,
    cost: PasswordCost,
    rng: &dyn Rng,
) -> Result<ImportOutcome, ImportFailure> {
    let store_err = |error| ImportFailure::Store {
        source_name: source.to_owned(),
        error,
    };
    let parsed = representation::parse_realm(bytes, source)?;
    representation::validate(&parsed)?;
    let name = parsed.rep.realm.clone().unwrap_or_default();
    let existing_realm = store.get_realm(&name).await.map_err(store_err)?;
    let existing_users = store.list_users(&name).await.map_err(store_err)?;
    let import = representation::to_import(
        &parsed,
        existing_realm.as_deref(),
        &existing_users,
        now,
        cost,
        rng,
    )?;
    store.apply_import(&import).await.map_err(store_err)?;
    Ok(ImportOutcome {
        realm: name,
        warnings: parsed.warnings,
    })
}

/// The stored realm in Keycloak's representation, or `None` when it does not exist.
pub async fn export<S: Store>(
    store: &S,
    realm: &str,
) -> Result<Option<RealmRepresentation>, StoreError> {
    let Some(r) = store.get_realm(realm).await? else {
        return Ok(None);
    };
    let clients = store.list_clients(realm).await?;
    let users = store.list_users(realm).await?;
    Ok(Some(representation::export_realm(&r, &clients, &users)))
}
