//! The persistence contract. `store` implements it for SQLite and PostgreSQL; one
//! conformance suite (in `pforte-store`) holds both to the same behaviour.
//!
//! Every method is one atomic step, except the default `refresh_family` (a read, a pure
//! decision, then one atomic write; see there). Methods that need several writes to agree
//! (import, rotation, code redemption) are single methods so that each backend can run them
//! in one transaction.

use std::future::Future;
use std::sync::Arc;

use crate::model::*;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint would be violated (e.g. a username already taken).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database could not be reached or answered with an error.
    #[error("database error: {0}")]
    Backend(String),
    /// Stored data could not be decoded (a bug or a manual edit).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// What a refresh decides about the family it found (see [`Store::refresh_family`]).
#[derive(Debug)]
pub enum RefreshStep<P, E> {
    /// Replace the family's token with this successor (if it is still the one that was
    /// read) and go on with `P`.
    Rotate(RefreshToken, P),
    /// A rotated-out token was presented: revoke the family's grant, then refuse with `E`.
    RevokeGrant(E),
    /// Refuse with `E`; write nothing.
    Refuse(E),
}

/// How [`Store::refresh_family`] ended.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "made once per refresh and moved once: boxing would only add an allocation"
)]
pub enum RefreshOutcome<P, E> {
    /// No family of that id.
    Unknown,
    /// Rotated: the family as it was read, and what `decide` passed on.
    Rotated(RefreshLookup, P),
    /// `decide` chose to rotate, but another rotation of the same token came first: the
    /// grant has been revoked.
    Stale,
    /// `decide` refused (and the grant has been revoked if it asked for that).
    Refused(E),
}

/// Everything an import writes, applied in one transaction: all or nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RealmImport {
    pub realm: Option<Realm>,
    pub clients: Vec<Client>,
    pub users: Vec<User>,
}

pub trait Store: Send + Sync + 'static {
    /// Readiness: the database answers and the migrations are applied.
    fn ping(&self) -> impl Future<Output = StoreResult<()>> + Send;

    // --- realms, clients, users -------------------------------------------------------

    /// Inserts or replaces the realm, clients and users of `import` in one transaction.
    /// Users are matched by `id`; a user whose username or email belongs to another id
    /// in the same realm is a `Conflict` and nothing is written.
    fn apply_import(&self, import: &RealmImport) -> impl Future<Output = StoreResult<()>> + Send;
    /// Shared: realms and clients are read on every request and cached by the store.
    fn get_realm(&self, name: &str)
    -> impl Future<Output = StoreResult<Option<Arc<Realm>>>> + Send;
    fn list_realms(&self) -> impl Future<Output = StoreResult<Vec<Realm>>> + Send;
    fn get_client(
        &self,
        realm: &str,
        client_id: &str,
    ) -> impl Future<Output = StoreResult<Option<Arc<Client>>>> + Send;
    fn list_clients(&self, realm: &str) -> impl Future<Output = StoreResult<Vec<Client>>> + Send;
    fn get_user(
        &self,
        realm: &str,
        id: &str,
    ) -> impl Future<Output = StoreResult<Option<User>>> + Send;
    /// `username` is compared lower-cased.
    fn find_user_by_username(
        &self,
        realm: &str,
        username: &str,
    ) -> impl Future<Output = StoreResult<Option<User>>> + Send;
    /// `email` is compared lower-cased. Emails are unique per realm.
    fn find_user_by_email(
        &self,
        realm: &str,
        email: &str,
    ) -> impl Future<Output = StoreResult<Option<User>>> + Send;
    fn list_users(&self, realm: &str) -> impl Future<Output = StoreResult<Vec<User>>> + Send;

    // --- signing keys ------------------------------------------------------------------

    /// All keys of the realm, active and retired, newest first.
    fn list_keys(&self, realm: &str) -> impl Future<Output = StoreResult<Vec<StoredKey>>> + Send;
    /// Stores `key` as the realm's active key only if the realm has no active key yet.
    /// Returns whether it was stored. Two nodes starting at once end up with one key.
    fn insert_first_key(&self, key: &StoredKey) -> impl Future<Output = StoreResult<bool>> + Send;
    /// In one transaction: retires the active key(s) of `key.realm` at `now` and stores
    /// `key` as the active one.
    fn rotate_key(
        &self,
        key: &StoredKey,
        now: Timestamp,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Deletes retired keys of the realm retired before `before`.
    fn delete_retired_keys(
        &self,
        realm: &str,
        before: Timestamp,
    ) -> impl Future<Output = StoreResult<u64>> + Send;

    // --- sessions ----------------------------------------------------------------------

    fn create_session(&self, session: &Session) -> impl Future<Output = StoreResult<()>> + Send;
    fn get_session(&self, id: &str) -> impl Future<Output = StoreResult<Option<Session>>> + Send;
    fn touch_session(
        &self,
        id: &str,
        now: Timestamp,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// A fresh login of the session's own user: `auth_time` and `last_seen` become `now`.
    /// False when the session is gone (a logout at the same moment).
    fn reauthenticate_session(
        &self,
        id: &str,
        now: Timestamp,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Deletes the session and revokes every grant that belongs to it (including one that
    /// `insert_grant_with_refresh` is storing at the same moment).
    fn delete_session(&self, id: &str) -> impl Future<Output = StoreResult<()>> + Send;

    // --- codes, grants, refresh tokens ------------------------------------------------

    fn insert_code(&self, code: &AuthCode) -> impl Future<Output = StoreResult<()>> + Send;
    /// Marks the code used and returns it (`Fresh`), or reports that it was used before
    /// (`Reused`) or never existed (`Unknown`). Expiry is the caller's business.
    fn redeem_code(
        &self,
        code_hash: &str,
    ) -> impl Future<Output = StoreResult<CodeRedemption>> + Send;
    fn insert_grant(&self, grant: &Grant) -> impl Future<Output = StoreResult<()>> + Send;
    fn get_grant(&self, id: &str) -> impl Future<Output = StoreResult<Option<Grant>>> + Send;
    fn revoke_grant(&self, id: &str) -> impl Future<Output = StoreResult<()>> + Send;
    /// Stores a grant together with its first refresh token, in one transaction. `Conflict`
    /// when the grant id exists, or when the grant's session no longer does: a logout that
    /// ran between a code redemption's session check and this insert would otherwise leave
    /// the new grant unrevoked. Against `delete_session` this is atomic.
    fn insert_grant_with_refresh(
        &self,
        grant: &Grant,
        refresh: Option<&RefreshToken>,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// The current refresh token of `family`, with its grant.
    fn get_refresh(
        &self,
        family: &str,
    ) -> impl Future<Output = StoreResult<Option<RefreshLookup>>> + Send;
    /// Atomically (one conditional update): if `new.family`'s current hash is `old_hash` and
    /// its grant is not revoked, replaces the family's token with `new`. The grant condition
    /// keeps a rotation that read the family before a revocation (a replay, a logout) from
    /// handing out tokens after it.
    fn rotate_refresh(
        &self,
        old_hash: &str,
        new: &RefreshToken,
    ) -> impl Future<Output = StoreResult<Rotation>> + Send;
    /// A whole refresh as one store operation: reads the current token of `family` (as
    /// [`Store::get_refresh`]), lets `decide` judge it, and carries out the decision: a
    /// rotation by compare-and-swap on the hash that was read (a lost race revokes the
    /// grant, as a replay would), or the grant's revocation. `decide` is pure and cheap;
    /// a backend may run it on its own thread, inside its transaction.
    ///
    /// The default runs the separate steps: a revocation may land between the read and the
    /// swap, and then the swap's own grant condition refuses it (`Stale`). SQLite overrides
    /// it to spare the hand-offs to its connection's thread, and runs it in one transaction.
    /// Either way it takes the write path, also for tokens that turn out unknown or refused.
    fn refresh_family<P, E, F>(
        &self,
        family: &str,
        decide: F,
    ) -> impl Future<Output = StoreResult<RefreshOutcome<P, E>>> + Send
    where
        P: Send + 'static,
        E: Send + 'static,
        F: FnOnce(&RefreshLookup) -> RefreshStep<P, E> + Send + 'static,
    {
        async move {
            let Some(found) = self.get_refresh(family).await? else {
                return Ok(RefreshOutcome::Unknown);
            };
            Ok(match decide(&found) {
                RefreshStep::Rotate(new, passed) => {
                    match self.rotate_refresh(&found.token.token_hash, &new).await? {
                        Rotation::Rotated => RefreshOutcome::Rotated(found, passed),
                        Rotation::Stale => {
                            self.revoke_grant(&found.grant.id).await?;
                            RefreshOutcome::Stale
                        }
                    }
                }
                RefreshStep::RevokeGrant(refusal) => {
                    self.revoke_grant(&found.grant.id).await?;
                    RefreshOutcome::Refused(refusal)
                }
                RefreshStep::Refuse(refusal) => RefreshOutcome::Refused(refusal),
            })
        }
    }

    // --- access-token revocation (RFC 7009) --------------------------------------------

    fn revoke_access_token(
        &self,
        jti: &str,
        expires_at: Timestamp,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    fn is_access_token_revoked(&self, jti: &str) -> impl Future<Output = StoreResult<bool>> + Send;

    // --- brute-force detection -----------------------------------------------------------

    /// `key` identifies the attempted account (realm + lower-cased login name), whether or
    /// not such a user exists, so that counting reveals nothing.
    fn get_login_failures(
        &self,
        realm: &str,
        key: &str,
    ) -> impl Future<Output = StoreResult<LoginFailures>> + Send;
    fn record_login_failure(
        &self,
        realm: &str,
        key: &str,
        now: Timestamp,
    ) -> impl Future<Output = StoreResult<LoginFailures>> + Send;
    fn clear_login_failures(
        &self,
        realm: &str,
        key: &str,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    // --- flow state ------------------------------------------------------------------------

    fn put_flow(&self, flow: &FlowState) -> impl Future<Output = StoreResult<()>> + Send;
    fn get_flow(&self, id: &str) -> impl Future<Output = StoreResult<Option<FlowState>>> + Send;
    /// Deletes and returns the flow state: each flow step that must happen once uses this.
    fn take_flow(&self, id: &str) -> impl Future<Output = StoreResult<Option<FlowState>>> + Send;

    // --- housekeeping ----------------------------------------------------------------------

    /// Removes expired refresh tokens, revoked-token entries and flow states, sessions last
    /// seen before `session_idle_before`, login-failure counters last touched before
    /// `failures_before`, and — after a day's margin — codes (so that a reuse of a code
    /// that has just expired still finds it and revokes what it issued) and grants that are
    /// revoked or have no refresh token left. Returns the number of rows removed.
    fn purge_expired(
        &self,
        now: Timestamp,
        session_idle_before: Timestamp,
        failures_before: Timestamp,
    ) -> impl Future<Output = StoreResult<u64>> + Send;
}
