//! Either backend, chosen by the URL scheme.

use pforte_core::model::*;
use pforte_core::store::{
    RealmImport, RefreshOutcome, RefreshStep, Store, StoreError, StoreResult,
};

use std::sync::Arc;

use crate::cache::ReadCache;
use crate::{PgStore, SqliteStore};

/// The accepted database URL forms, for error messages.
pub const ACCEPTED_URLS: &str = "sqlite:///absolute/path.db, sqlite://relative/path.db, \
     sqlite::memory:, postgres://user:password@host:port/database \
     (or postgresql://…)";

/// A [`SqliteStore`] or a [`PgStore`], with a read-through cache of realms and clients
/// (see [`crate::cache`]).
#[derive(Clone)]
pub struct AnyStore {
    backend: Backend,
    cache: Arc<ReadCache>,
}

#[derive(Clone, Debug)]
enum Backend {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl std::fmt::Debug for AnyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnyStore")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl AnyStore {
    /// Connects by scheme (`sqlite:`, `postgres:`, `postgresql:`) and applies migrations.
    pub async fn connect(url: &str) -> StoreResult<AnyStore> {
        match Self::backend_of(url) {
            Some("sqlite") => Ok(SqliteStore::connect(url).await?.into()),
            Some(_) => Ok(PgStore::connect(url).await?.into()),
            None => Err(StoreError::Backend(format!(
                "unsupported database URL {}: expected one of {ACCEPTED_URLS}",
                crate::redact_url(url)
            ))),
        }
    }

    /// The backend [`AnyStore::connect`] picks for `url` (`"sqlite"` or `"postgres"`, as
    /// [`AnyStore::backend`] names it), by its scheme; `None` for a URL it refuses.
    pub fn backend_of(url: &str) -> Option<&'static str> {
        let scheme = url.split_once(':').map(|(s, _)| s.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("sqlite") => Some("sqlite"),
            Some("postgres" | "postgresql") => Some("postgres"),
            _ => None,
        }
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Closes the connection pools.
    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite(s) => s.close().await,
            Backend::Postgres(s) => s.close().await,
        }
    }
}

impl From<SqliteStore> for AnyStore {
    fn from(s: SqliteStore) -> Self {
        AnyStore {
            backend: Backend::Sqlite(s),
            cache: Arc::new(ReadCache::new()),
        }
    }
}

impl From<PgStore> for AnyStore {
    fn from(s: PgStore) -> Self {
        AnyStore {
            backend: Backend::Postgres(s),
            cache: Arc::new(ReadCache::new()),
        }
    }
}

macro_rules! delegate {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        match &$self.backend {
            Backend::Sqlite(s) => s.$method($($arg),*).await,
            Backend::Postgres(s) => s.$method($($arg),*).await,
        }
    };
}

impl Store for AnyStore {
    async fn ping(&self) -> StoreResult<()> {
        delegate!(self.ping())
    }
    async fn apply_import(&self, import: &RealmImport) -> StoreResult<()> {
        let result = delegate!(self.apply_import(import));
        let realms = import
            .realm
            .iter()
            .map(|r| r.name.as_str())
            .chain(import.clients.iter().map(|c| c.realm.as_str()));
        for realm in realms {
            self.cache.invalidate(realm);
        }
        result
    }
    async fn get_realm(&self, name: &str) -> StoreResult<Option<Arc<Realm>>> {
        if let Some(hit) = self.cache.realm(name) {
            return Ok(hit);
        }
        let realm = delegate!(self.get_realm(name))?;
        self.cache.put_realm(name, realm.clone());
        Ok(realm)
    }
    async fn list_realms(&self) -> StoreResult<Vec<Realm>> {
        delegate!(self.list_realms())
    }
    async fn get_client(&self, realm: &str, client_id: &str) -> StoreResult<Option<Arc<Client>>> {
        if let Some(hit) = self.cache.client(realm, client_id) {
            return Ok(hit);
        }
        let client = delegate!(self.get_client(realm, client_id))?;
        self.cache.put_client(realm, client_id, client.clone());
        Ok(client)
    }
    async fn list_clients(&self, realm: &str) -> StoreResult<Vec<Client>> {
        if let Some(hit) = self.cache.clients(realm) {
            return Ok(hit);
        }
        let clients = delegate!(self.list_clients(realm))?;
        self.cache.put_clients(realm, clients.clone());
        Ok(clients)
    }
    async fn get_user(&self, realm: &str, id: &str) -> StoreResult<Option<User>> {
        delegate!(self.get_user(realm, id))
    }
    async fn find_user_by_username(
        &self,
        realm: &str,
        username: &str,
    ) -> StoreResult<Option<User>> {
        delegate!(self.find_user_by_username(realm, username))
    }
    async fn find_user_by_email(&self, realm: &str, email: &str) -> StoreResult<Option<User>> {
        delegate!(self.find_user_by_email(realm, email))
    }
    async fn list_users(&self, realm: &str) -> StoreResult<Vec<User>> {
        delegate!(self.list_users(realm))
    }
    async fn list_keys(&self, realm: &str) -> StoreResult<Vec<StoredKey>> {
        delegate!(self.list_keys(realm))
    }
    async fn insert_first_key(&self, key: &StoredKey) -> StoreResult<bool> {
        delegate!(self.insert_first_key(key))
    }
    async fn rotate_key(&self, key: &StoredKey, now: Timestamp) -> StoreResult<()> {
        delegate!(self.rotate_key(key, now))
    }
    async fn delete_retired_keys(&self, realm: &str, before: Timestamp) -> StoreResult<u64> {
        delegate!(self.delete_retired_keys(realm, before))
    }
    async fn create_session(&self, session: &Session) -> StoreResult<()> {
        delegate!(self.create_session(session))
    }
    async fn get_session(&self, id: &str) -> StoreResult<Option<Session>> {
        delegate!(self.get_session(id))
    }
    async fn touch_session(&self, id: &str, now: Timestamp) -> StoreResult<()> {
        delegate!(self.touch_session(id, now))
    }
    async fn reauthenticate_session(&self, id: &str, now: Timestamp) -> StoreResult<bool> {
        delegate!(self.reauthenticate_session(id, now))
    }
    async fn delete_session(&self, id: &str) -> StoreResult<()> {
        delegate!(self.delete_session(id))
    }
    async fn insert_code(&self, code: &AuthCode) -> StoreResult<()> {
        delegate!(self.insert_code(code))
    }
    async fn redeem_code(&self, code_hash: &str) -> StoreResult<CodeRedemption> {
        delegate!(self.redeem_code(code_hash))
    }
    async fn insert_grant(&self, grant: &Grant) -> StoreResult<()> {
        delegate!(self.insert_grant(grant))
    }
    async fn get_grant(&self, id: &str) -> StoreResult<Option<Grant>> {
        delegate!(self.get_grant(id))
    }
    async fn revoke_grant(&self, id: &str) -> StoreResult<()> {
        delegate!(self.revoke_grant(id))
    }
    async fn insert_grant_with_refresh(
        &self,
        grant: &Grant,
        refresh: Option<&RefreshToken>,
    ) -> StoreResult<()> {
        delegate!(self.insert_grant_with_refresh(grant, refresh))
    }
    async fn get_refresh(&self, token_hash: &str) -> StoreResult<Option<RefreshLookup>> {
        delegate!(self.get_refresh(token_hash))
    }
    async fn rotate_refresh(&self, old_hash: &str, new: &RefreshToken) -> StoreResult<Rotation> {
        delegate!(self.rotate_refresh(old_hash, new))
    }
    async fn refresh_family<P, E, F>(
        &self,
        family: &str,
        decide: F,
    ) -> StoreResult<RefreshOutcome<P, E>>
    where
        P: Send + 'static,
        E: Send + 'static,
        F: FnOnce(&RefreshLookup) -> RefreshStep<P, E> + Send + 'static,
    {
        delegate!(self.refresh_family(family, decide))
    }
    async fn revoke_access_token(&self, jti: &str, expires_at: Timestamp) -> StoreResult<()> {
        delegate!(self.revoke_access_token(jti, expires_at))
    }
    async fn is_access_token_revoked(&self, jti: &str) -> StoreResult<bool> {
        delegate!(self.is_access_token_revoked(jti))
    }
    async fn get_login_failures(&self, realm: &str, key: &str) -> StoreResult<LoginFailures> {
        delegate!(self.get_login_failures(realm, key))
    }
    async fn record_login_failure(
        &self,
        realm: &str,
        key: &str,
        now: Timestamp,
    ) -> StoreResult<LoginFailures> {
        delegate!(self.record_login_failure(realm, key, now))
    }
    async fn clear_login_failures(&self, realm: &str, key: &str) -> StoreResult<()> {
        delegate!(self.clear_login_failures(realm, key))
    }
    async fn put_flow(&self, flow: &FlowState) -> StoreResult<()> {
        delegate!(self.put_flow(flow))
    }
    async fn get_flow(&self, id: &str) -> StoreResult<Option<FlowState>> {
        delegate!(self.get_flow(id))
    }
    async fn take_flow(&self, id: &str) -> StoreResult<Option<FlowState>> {
        delegate!(self.take_flow(id))
    }
    async fn purge_expired(
        &self,
        now: Timestamp,
        session_idle_before: Timestamp,
        failures_before: Timestamp,
    ) -> StoreResult<u64> {
        delegate!(self.purge_expired(now, session_idle_before, failures_before))
    }
}
