//! Applying a realm file: parse, validate, convert against what is stored (`prepare_import`),
//! write in one transaction (`apply_import`). Nothing of a file is written unless all of it
//! is valid; a caller with several files prepares them all before writing any.

use crate::model::Timestamp;
use crate::representation::{self, ImportError, RealmRepresentation};
use crate::rng::Rng;
use crate::secret::PasswordCost;
use crate::store::{RealmImport, Store, StoreError};

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

/// A realm file parsed, validated and converted against what is stored: ready to be
/// written. Preparing writes nothing, so that several files can all be checked before the
/// first of them is written.
#[derive(Debug)]
pub struct PreparedImport {
    /// The realm the file defines.
    pub realm: String,
    /// Where the file came from (a path), for messages.
    pub source: String,
    /// Unknown or unsupported fields, by JSON path.
    pub warnings: Vec<String>,
    import: RealmImport,
}

/// Prepares one file against what is stored, or, when `earlier` (the files of the same
/// import prepared before it) holds a file of the same realm (Keycloak's directory export:
/// the realm file, then its users files), against the state the last of those will leave:
/// its realm, and the stored users with its users on top. So all the files of an import
/// can be checked before the first is written.
pub async fn prepare_import<S: Store>(
    store: &S,
    bytes: &[u8],
    source: &str,
    now: Timestamp,
    cost: PasswordCost,
    rng: &dyn Rng,
    earlier: &[PreparedImport],
) -> Result<PreparedImport, ImportFailure> {
    let store_err = |error| ImportFailure::Store {
        source_name: source.to_owned(),
        error,
    };
    let parsed = representation::parse_realm(bytes, source)?;
    representation::validate(&parsed)?;
    let name = parsed.rep.realm.clone().unwrap_or_default();
    let after = earlier.iter().rev().find(|a| a.realm == name);
    let existing_realm = match after.and_then(|a| a.import.realm.clone()) {
        Some(r) => Some(r),
        None => store
            .get_realm(&name)
            .await
            .map_err(store_err)?
            .map(|r| (*r).clone()),
    };
    let mut existing_users = store.list_users(&name).await.map_err(store_err)?;
    if let Some(a) = after {
        existing_users.retain(|u| !a.import.users.iter().any(|n| n.id == u.id));
        existing_users.extend(a.import.users.iter().cloned());
    }
    let mut import = representation::to_import(
        &parsed,
        existing_realm.as_ref(),
        &existing_users,
        now,
        cost,
        rng,
    )?;
    if let Some(a) = after
        && import.clients.is_empty()
    {
        // A users file after the realm file: its service-account users belong to the
        // clients the realm file brings. The clients travel on down the chain (written
        // again, unchanged but for the links), so that a later users file finds them too.
        let mut clients = a.import.clients.clone();
        representation::link_service_accounts(&mut clients, &import.users, &existing_users);
        import.clients = clients;
    }
    Ok(PreparedImport {
        realm: name,
        source: source.to_owned(),
        warnings: parsed.warnings,
        import,
    })
}

/// Writes a prepared file, in one transaction.
pub async fn apply_import<S: Store>(
    store: &S,
    prepared: PreparedImport,
) -> Result<ImportOutcome, ImportFailure> {
    store
        .apply_import(&prepared.import)
        .await
        .map_err(|error| ImportFailure::Store {
            source_name: prepared.source,
            error,
        })?;
    Ok(ImportOutcome {
        realm: prepared.realm,
        warnings: prepared.warnings,
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
