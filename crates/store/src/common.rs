//! What both backends share: row shapes, their decoding and import checks; plus the sqlx
//! side — error mapping and the PostgreSQL implementation of [`Store`](pforte_core::Store)
//! (the [`impl_store!`] macro). SQLite runs the same SQL through rusqlite
//! (`sqlite/queries.rs`, with `?n` for `$n`); the conformance suite holds both to it.

use pforte_core::model::*;
use pforte_core::store::{StoreError, StoreResult};
use pforte_jose::Alg;

/// Maps an sqlx error: unique violations are `Conflict`, decode failures `Corrupt`,
/// everything else `Backend`; `context` says what was being done.
pub(crate) fn map_err(context: &str, e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(format!("{context}: {}", db.message()))
        }
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::TypeNotFound { .. } => StoreError::Corrupt(format!("{context}: {e}")),
        _ => StoreError::Backend(format!("{context}: {e}")),
    }
}

/// `.map_err(err("what"))`.
pub(crate) fn err(context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| map_err(context, e)
}

pub(crate) fn to_json<T: serde::Serialize>(what: &str, v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Backend(format!("encoding {what}: {e}")))
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(what: &str, doc: &str) -> StoreResult<T> {
    serde_json::from_str(doc).map_err(|e| StoreError::Corrupt(format!("decoding {what}: {e}")))
}

// --- row shapes (tuples decode on either backend) -------------------------------------

macro_rules! key_cols {
    () => {
        "realm, kid, alg, public_jwk, sealed_private, created_at, retired_at"
    };
}
pub(crate) type KeyRow = (String, String, String, String, Vec<u8>, i64, Option<i64>);

pub(crate) fn key_from_row(r: KeyRow) -> StoreResult<StoredKey> {
    let (realm, kid, alg, public_jwk, sealed_private, created_at, retired_at) = r;
    let alg = Alg::parse(&alg).ok_or_else(|| {
        StoreError::Corrupt(format!("signing key {realm}/{kid}: unknown alg {alg:?}"))
    })?;
    Ok(StoredKey {
        realm,
        kid,
        alg,
        public_jwk,
        sealed_private,
        created_at,
        retired_at,
    })
}

macro_rules! session_cols {
    () => {
        "id, realm, user_id, auth_time, last_seen, acr, amr, idp"
    };
}
pub(crate) type SessionRow = (
    String,
    String,
    String,
    i64,
    i64,
    Option<String>,
    String,
    Option<String>,
);

pub(crate) fn session_from_row(r: SessionRow) -> StoreResult<Session> {
    let (id, realm, user_id, auth_time, last_seen, acr, amr, idp) = r;
    let amr = from_json("session amr", &amr)?;
    Ok(Session {
        id,
        realm,
        user_id,
        auth_time,
        last_seen,
        acr,
        amr,
        idp,
    })
}

macro_rules! code_cols {
    () => {
        "code_hash, realm, client_id, user_id, session_id, grant_id, redirect_uri, scope, \
         nonce, code_challenge, code_challenge_method, auth_time, acr, expires_at"
    };
}
pub(crate) type CodeRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
    Option<String>,
    i64,
);

pub(crate) fn code_from_row(r: CodeRow) -> AuthCode {
    let (
        code_hash,
        realm,
        client_id,
        user_id,
        session_id,
        grant_id,
        redirect_uri,
        scope,
        nonce,
        code_challenge,
        code_challenge_method,
        auth_time,
        acr,
        expires_at,
    ) = r;
    AuthCode {
        code_hash,
        realm,
        client_id,
        user_id,
        session_id,
        grant_id,
        redirect_uri,
        scope,
        nonce,
        code_challenge,
        code_challenge_method,
        auth_time,
        acr,
        expires_at,
    }
}

macro_rules! grant_cols {
    () => {
        "id, realm, client_id, user_id, session_id, scope, auth_time, acr, created_at, revoked"
    };
}
pub(crate) type GrantRow = (
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    i64,
    Option<String>,
    i64,
    bool,
);

pub(crate) fn grant_from_row(r: GrantRow) -> Grant {
    let (id, realm, client_id, user_id, session_id, scope, auth_time, acr, created_at, revoked) = r;
    Grant {
        id,
        realm,
        client_id,
        user_id,
        session_id,
        scope,
        auth_time,
        acr,
        created_at,
        revoked,
    }
}

/// A refresh token joined with its grant (the grant's id is the token's `grant_id`).
macro_rules! refresh_join_cols {
    () => {
        "t.family, t.token_hash, t.grant_id, t.scope, t.created_at, t.expires_at, \
         g.realm, g.client_id, g.user_id, g.session_id, g.scope, g.auth_time, g.acr, \
         g.created_at, g.revoked"
    };
}
pub(crate) type RefreshJoinRow = (
    String,
    String,
    String,
    String,
    i64,
    i64,
    String,
    String,
    String,
    Option<String>,
    String,
    i64,
    Option<String>,
    i64,
    bool,
);

pub(crate) fn refresh_from_row(
    r: RefreshJoinRow,
    user_doc: Option<String>,
    session: Option<SessionRow>,
) -> StoreResult<RefreshLookup> {
    let (
        family,
        token_hash,
        grant_id,
        scope,
        created_at,
        expires_at,
        realm,
        client_id,
        user_id,
        session_id,
        grant_scope,
        auth_time,
        acr,
        grant_created_at,
        revoked,
    ) = r;
    Ok(RefreshLookup {
        grant: Grant {
            id: grant_id.clone(),
            realm,
            client_id,
            user_id,
            session_id,
            scope: grant_scope,
            auth_time,
            acr,
            created_at: grant_created_at,
            revoked,
        },
        token: RefreshToken {
            family,
            token_hash,
            grant_id,
            scope,
            created_at,
            expires_at,
        },
        user: user_doc.map(|d| from_json("user", &d)).transpose()?,
        session: session.map(session_from_row).transpose()?,
    })
}

macro_rules! flow_cols {
    () => {
        "id, realm, kind, data, expires_at"
    };
}
pub(crate) type FlowRow = (String, String, String, String, i64);

pub(crate) fn flow_from_row(r: FlowRow) -> FlowState {
    let (id, realm, kind, data, expires_at) = r;
    FlowState {
        id,
        realm,
        kind,
        data,
        expires_at,
    }
}

pub(crate) fn failures_from_row(r: (i64, i64)) -> StoreResult<LoginFailures> {
    let count = u32::try_from(r.0)
        .map_err(|_| StoreError::Corrupt(format!("login failure count {} out of range", r.0)))?;
    Ok(LoginFailures {
        count,
        last_failure: r.1,
    })
}

/// Users of an import that would clash with each other: one id twice, or two ids with one
/// username or email.
pub(crate) fn import_self_conflict(users: &[User]) -> Option<String> {
    use std::collections::{HashMap, HashSet};
    let mut ids: HashSet<(&str, &str)> = HashSet::new();
    let mut names: HashMap<(&str, String), &str> = HashMap::new();
    let mut emails: HashMap<(&str, String), &str> = HashMap::new();
    for u in users {
        if !ids.insert((&u.realm, &u.id)) {
            return Some(format!(
                "user id {} ('{}') appears twice in the import of realm '{}'",
                u.id, u.username, u.realm
            ));
        }
        let name = u.username.to_lowercase();
        if let Some(other) = names.insert((u.realm.as_str(), name.clone()), u.id.as_str())
            && other != u.id
        {
            return Some(format!(
                "username '{name}' is given to two users ({other} and {}) in realm '{}'",
                u.id, u.realm
            ));
        }
        if let Some(email) = &u.email {
            let email = email.to_lowercase();
            if let Some(other) = emails.insert((u.realm.as_str(), email.clone()), u.id.as_str())
                && other != u.id
            {
                return Some(format!(
                    "email '{email}' is given to two users ({other} and {}) in realm '{}'",
                    u.id, u.realm
                ));
            }
        }
    }
    None
}

/// `Store` on sqlx (PostgreSQL), for a type with:
/// `fn reader(&self) -> &Pool<DB>` (reads), `fn writer(&self) -> &Pool<DB>` (single-statement
/// writes), `async fn begin_write(&self) -> Result<Transaction<'static, DB>, sqlx::Error>`
/// and `async fn ping_inner(&self) -> StoreResult<()>`.
macro_rules! impl_store {
    ($store:ty) => {
        impl pforte_core::store::Store for $store {
            async fn ping(&self) -> pforte_core::store::StoreResult<()> {
                self.ping_inner().await
            }

            // --- realms, clients, users ---------------------------------------------------

            async fn apply_import(
                &self,
                import: &pforte_core::store::RealmImport,
            ) -> pforte_core::store::StoreResult<()> {
                use $crate::common::*;
                if let Some(msg) = import_self_conflict(&import.users) {
                    return Err(pforte_core::store::StoreError::Conflict(msg));
                }
                let mut tx = self.begin_write().await.map_err(err("import: begin"))?;
                if let Some(realm) = &import.realm {
                    sqlx::query(
                        "INSERT INTO realms (name, doc) VALUES ($1, $2) \
                         ON CONFLICT (name) DO UPDATE SET doc = excluded.doc",
                    )
                    .bind(&realm.name)
                    .bind(to_json("realm", realm)?)
                    .execute(&mut *tx)
                    .await
                    .map_err(err("import: realm"))?;
                }
                for client in &import.clients {
                    sqlx::query(
                        "INSERT INTO clients (realm, client_id, doc) VALUES ($1, $2, $3) \
                         ON CONFLICT (realm, client_id) DO UPDATE SET doc = excluded.doc",
                    )
                    .bind(&client.realm)
                    .bind(&client.client_id)
                    .bind(to_json("client", client)?)
                    .execute(&mut *tx)
                    .await
                    .map_err(err("import: client"))?;
                }
                // Users are replaced by id: remove the imported ids first so that names may
                // move between them (a swap is not a conflict), then insert each one after
                // checking that nobody outside the import holds its username or email.
                for user in &import.users {
                    sqlx::query("DELETE FROM users WHERE realm = $1 AND id = $2")
                        .bind(&user.realm)
                        .bind(&user.id)
                        .execute(&mut *tx)
                        .await
                        .map_err(err("import: user"))?;
                }
                for user in &import.users {
                    let username = user.username.to_lowercase();
                    let email = user.email.as_ref().map(|e| e.to_lowercase());
                    let holder: Option<(String, String, Option<String>)> = sqlx::query_as(
                        "SELECT id, username, email FROM users \
                         WHERE realm = $1 AND (username = $2 OR email = $3) LIMIT 1",
                    )
                    .bind(&user.realm)
                    .bind(&username)
                    .bind(&email)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(err("import: user"))?;
                    if let Some((other, other_name, _)) = holder {
                        let what = if other_name == username {
                            format!("username '{username}'")
                        } else {
                            format!("email '{}'", email.as_deref().unwrap_or_default())
                        };
                        return Err(pforte_core::store::StoreError::Conflict(format!(
                            "{what} already belongs to user {other} in realm '{}' \
                             (importing user {})",
                            user.realm, user.id
                        )));
                    }
                    sqlx::query(
                        "INSERT INTO users (realm, id, username, email, doc) \
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(&user.realm)
                    .bind(&user.id)
                    .bind(&username)
                    .bind(&email)
                    .bind(to_json("user", user)?)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| {
                        map_err(
                            &format!(
                                "import: user {} (username '{username}', email {:?})",
                                user.id, email
                            ),
                            e,
                        )
                    })?;
                }
                tx.commit().await.map_err(err("import: commit"))
            }

            async fn get_realm(
                &self,
                name: &str,
            ) -> pforte_core::store::StoreResult<Option<std::sync::Arc<pforte_core::model::Realm>>>
            {
                use $crate::common::*;
                let doc: Option<String> =
                    sqlx::query_scalar("SELECT doc FROM realms WHERE name = $1")
                        .bind(name)
                        .fetch_optional(self.reader())
                        .await
                        .map_err(err("get_realm"))?;
                doc.map(|d| from_json("realm", &d).map(std::sync::Arc::new))
                    .transpose()
            }

            async fn list_realms(
                &self,
            ) -> pforte_core::store::StoreResult<Vec<pforte_core::model::Realm>> {
                use $crate::common::*;
                let docs: Vec<String> = sqlx::query_scalar("SELECT doc FROM realms ORDER BY name")
                    .fetch_all(self.reader())
                    .await
                    .map_err(err("list_realms"))?;
                docs.iter().map(|d| from_json("realm", d)).collect()
            }

            async fn get_client(
                &self,
                realm: &str,
                client_id: &str,
            ) -> pforte_core::store::StoreResult<Option<std::sync::Arc<pforte_core::model::Client>>>
            {
                use $crate::common::*;
                let doc: Option<String> = sqlx::query_scalar(
                    "SELECT doc FROM clients WHERE realm = $1 AND client_id = $2",
                )
                .bind(realm)
                .bind(client_id)
                .fetch_optional(self.reader())
                .await
                .map_err(err("get_client"))?;
                doc.map(|d| from_json("client", &d).map(std::sync::Arc::new))
                    .transpose()
            }

            async fn list_clients(
                &self,
                realm: &str,
            ) -> pforte_core::store::StoreResult<Vec<pforte_core::model::Client>> {
                use $crate::common::*;
                let docs: Vec<String> = sqlx::query_scalar(
                    "SELECT doc FROM clients WHERE realm = $1 ORDER BY client_id",
                )
                .bind(realm)
                .fetch_all(self.reader())
                .await
                .map_err(err("list_clients"))?;
                docs.iter().map(|d| from_json("client", d)).collect()
            }

            async fn get_user(
                &self,
                realm: &str,
                id: &str,
            ) -> pforte_core::store::StoreResult<Option<pforte_core::model::User>> {
                use $crate::common::*;
                let doc: Option<String> =
                    sqlx::query_scalar("SELECT doc FROM users WHERE realm = $1 AND id = $2")
                        .bind(realm)
                        .bind(id)
                        .fetch_optional(self.reader())
                        .await
                        .map_err(err("get_user"))?;
                doc.map(|d| from_json("user", &d)).transpose()
            }

            async fn find_user_by_username(
                &self,
                realm: &str,
                username: &str,
            ) -> pforte_core::store::StoreResult<Option<pforte_core::model::User>> {
                use $crate::common::*;
                let doc: Option<String> = sqlx::query_scalar(
                    "SELECT doc FROM users WHERE realm = $1 AND username = $2",
                )
                .bind(realm)
                .bind(username.to_lowercase())
                .fetch_optional(self.reader())
                .await
                .map_err(err("find_user_by_username"))?;
                doc.map(|d| from_json("user", &d)).transpose()
            }

            async fn find_user_by_email(
                &self,
                realm: &str,
                email: &str,
            ) -> pforte_core::store::StoreResult<Option<pforte_core::model::User>> {
                use $crate::common::*;
                let doc: Option<String> =
                    sqlx::query_scalar("SELECT doc FROM users WHERE realm = $1 AND email = $2")
                        .bind(realm)
                        .bind(email.to_lowercase())
                        .fetch_optional(self.reader())
                        .await
                        .map_err(err("find_user_by_email"))?;
                doc.map(|d| from_json("user", &d)).transpose()
            }

            async fn list_users(
                &self,
                realm: &str,
            ) -> pforte_core::store::StoreResult<Vec<pforte_core::model::User>> {
                use $crate::common::*;
                let docs: Vec<String> = sqlx::query_scalar(
                    "SELECT doc FROM users WHERE realm = $1 ORDER BY username",
                )
                .bind(realm)
                .fetch_all(self.reader())
                .await
                .map_err(err("list_users"))?;
                docs.iter().map(|d| from_json("user", d)).collect()
            }

            // --- signing keys -------------------------------------------------------------

            async fn list_keys(
                &self,
                realm: &str,
            ) -> pforte_core::store::StoreResult<Vec<pforte_core::model::StoredKey>> {
                use $crate::common::*;
                let rows: Vec<KeyRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    key_cols!(),
                    " FROM signing_keys WHERE realm = $1 \
                     ORDER BY created_at DESC, (retired_at IS NULL) DESC, kid DESC"
                ))
                .bind(realm)
                .fetch_all(self.reader())
                .await
                .map_err(err("list_keys"))?;
                rows.into_iter().map(key_from_row).collect()
            }

            async fn insert_first_key(
                &self,
                key: &pforte_core::model::StoredKey,
            ) -> pforte_core::store::StoreResult<bool> {
                use $crate::common::*;
                // The partial unique index on (realm) WHERE retired_at IS NULL decides.
                let done = sqlx::query(
                    "INSERT INTO signing_keys \
                     (realm, kid, alg, public_jwk, sealed_private, created_at, retired_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, NULL) ON CONFLICT DO NOTHING",
                )
                .bind(&key.realm)
                .bind(&key.kid)
                .bind(key.alg.as_str())
                .bind(&key.public_jwk)
                .bind(&key.sealed_private)
                .bind(key.created_at)
                .execute(self.writer())
                .await
                .map_err(err("insert_first_key"))?;
                Ok(done.rows_affected() == 1)
            }

            async fn rotate_key(
                &self,
                key: &pforte_core::model::StoredKey,
                now: pforte_core::model::Timestamp,
            ) -> pforte_core::store::StoreResult<()> {
                use $crate::common::*;
                let mut tx = self.begin_write().await.map_err(err("rotate_key: begin"))?;
                sqlx::query(
                    "UPDATE signing_keys SET retired_at = $2 \
                     WHERE realm = $1 AND retired_at IS NULL",
                )
                .bind(&key.realm)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(err("rotate_key: retire"))?;
                sqlx::query(
                    "INSERT INTO signing_keys \
                     (realm, kid, alg, public_jwk, sealed_private, created_at, retired_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, NULL)",
                )
                .bind(&key.realm)
                .bind(&key.kid)
                .bind(key.alg.as_str())
                .bind(&key.public_jwk)
                .bind(&key.sealed_private)
                .bind(key.created_at)
                .execute(&mut *tx)
                .await
                .map_err(err("rotate_key: insert"))?;
                tx.commit().await.map_err(err("rotate_key: commit"))
            }

            async fn delete_retired_keys(
                &self,
                realm: &str,
                before: pforte_core::model::Timestamp,
            ) -> pforte_core::store::StoreResult<u64> {
                use $crate::common::*;
                let done = sqlx::query(
                    "DELETE FROM signing_keys \
                     WHERE realm = $1 AND retired_at IS NOT NULL AND retired_at < $2",
                )
                .bind(realm)
                .bind(before)
                .execute(self.writer())
                .await
                .map_err(err("delete_retired_keys"))?;
                Ok(done.rows_affected())
            }

            // --- sessions -----------------------------------------------------------------

            async fn create_session(
                &self,
                session: &pforte_core::model::Session,
            ) -> pforte_core::store::StoreResult<()> {
                use $crate::common::*;
                sqlx::query(concat!(
                    "INSERT INTO sessions (",
                    session_cols!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                ))
                .bind(&session.id)
                .bind(&session.realm)
                .bind(&session.user_id)
                .bind(session.auth_time)
                .bind(session.last_seen)
                .bind(&session.acr)
                .bind(to_json("session amr", &session.amr)?)
                .bind(&session.idp)
                .execute(self.writer())
                .await
                .map_err(err("create_session"))?;
                Ok(())
            }

            async fn get_session(
                &self,
                id: &str,
            ) -> pforte_core::store::StoreResult<Option<pforte_core::model::Session>> {
                use $crate::common::*;
                let row: Option<SessionRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    session_cols!(),
                    " FROM sessions WHERE id = $1"
                ))
                .bind(id)
                .fetch_optional(self.reader())
                .await
                .map_err(err("get_session"))?;
                row.map(session_from_row).transpose()
            }

            async fn touch_session(
                &self,
                id: &str,
                now: pforte_core::model::Timestamp,
            ) -> pforte_core::store::StoreResult<()> {
                use $crate::common::*;
                sqlx::query("UPDATE sessions SET last_seen = $2 WHERE id = $1")
                    .bind(id)
                    .bind(now)
                    .execute(self.writer())
                    .await
                    .map_err(err("touch_session"))?;
                Ok(())
            }

            async fn reauthenticate_session(
                &self,
                id: &str,
                now: pforte_core::model::Timestamp,
            ) -> pforte_core::store::StoreResult<bool> {
                use $crate::common::*;
                let done = sqlx::query(
                    "UPDATE sessions SET auth_time = $2, last_seen = $2 WHERE id = $1",
                )
                .bind(id)
                .bind(now)
                .execute(self.writer())
                .await
                .map_err(err("reauthenticate_session"))?;
                Ok(done.rows_affected() == 1)
            }

            async fn delete_session(&self, id: &str) -> pforte_core::store::StoreResult<()> {
                use $crate::common::*;
                let mut tx = self.begin_write().await.map_err(err("delete_session: begin"))?;
                // Delete first: this waits for a grant insert holding the session's share
                // lock, and the UPDATE after it (a new snapshot under READ COMMITTED) then
                // sees and revokes that grant too.
                sqlx::query("DELETE FROM sessions WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(err("delete_session"))?;
                sqlx::query("UPDATE grants SET revoked = TRUE WHERE session_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(err("delete_session: revoke grants"))?;
                tx.commit().await.map_err(err("delete_session: commit"))
            }

            // --- codes, grants, refresh tokens --------------------------------------------

            async fn insert_code(
                &self,
                code: &pforte_core::model::AuthCode,
            ) -> pforte_core::store::StoreResult<()> {
                use $crate::common::*;
                sqlx::query(concat!(
                    "INSERT INTO auth_codes (",
                    code_cols!(),
                    ", used) VALUES \
                     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, FALSE)"
                ))
                .bind(&code.code_hash)
                .bind(&code.realm)
                .bind(&code.client_id)
                .bind(&code.user_id)
                .bind(&code.session_id)
                .bind(&code.grant_id)
                .bind(&code.redirect_uri)
                .bind(&code.scope)
                .bind(&code.nonce)
                .bind(&code.code_challenge)
                .bind(&code.code_challenge_method)
                .bind(code.auth_time)
                .bind(&code.acr)
                .bind(code.expires_at)
                .execute(self.writer())
                .await
                .map_err(err("insert_code"))?;
                Ok(())
            }

            async fn redeem_code(
                &self,
                code_hash: &str,
            ) -> pforte_core::store::StoreResult<pforte_core::model::CodeRedemption> {
                use $crate::common::*;
                use pforte_core::model::CodeRedemption;
                let fresh: Option<CodeRow> = sqlx::query_as(concat!(
                    "UPDATE auth_codes SET used = TRUE \
                     WHERE code_hash = $1 AND used = FALSE RETURNING ",
                    code_cols!()
                ))
                .bind(code_hash)
                .fetch_optional(self.writer())
                .await
                .map_err(err("redeem_code"))?;
                if let Some(row) = fresh {
                    return Ok(CodeRedemption::Fresh(code_from_row(row)));
                }
                let used: Option<CodeRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    code_cols!(),
                    " FROM auth_codes WHERE code_hash = $1"
                ))
                .bind(code_hash)
                .fetch_optional(self.writer())
                .await
                .map_err(err("redeem_code: lookup"))?;
                Ok(match used {
                    Some(row) => CodeRedemption::Reused(code_from_row(row)),
                    None => CodeRedemption::Unknown,
                })
            }

            async fn insert_grant(
                &self,
                grant: &pforte_core::model::Grant,
            ) -> pforte_core::store::StoreResult<()> {
                insert_grant_in!(self.writer(), grant)
            }

            async fn get_grant(
                &self,
                id: &str,
            ) -> pforte_core::store::StoreResult<Option<pforte_core::model::Grant>> {
                use $crate::common::*;
                let row: Option<GrantRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    grant_cols!(),
                    " FROM grants WHERE id = $1"
                ))
                .bind(id)
                .fetch_optional(self.reader())
                .await
                .map_err(err("get_grant"))?;
                Ok(row.map(grant_from_row))
            }

            async fn revoke_grant(&self, id: &str) -> pforte_core::store::StoreResult<()> {
                use $crate::common::*;
                sqlx::query("UPDATE grants SET revoked = TRUE WHERE id = $1")
                    .bind(id)
                    .execute(self.writer())
                    .await
                    .map_err(err("revoke_grant"))?;
                Ok(())
            }

            async fn insert_grant_with_refresh(
                &self,
                grant: &pforte_core::model::Grant,
                refresh: Option<&pforte_core::model::RefreshToken>,
            ) -> pforte_core::store::StoreResult<()> {
                use $crate::common::*;
                let mut tx = self
                    .begin_write()
                    .await
                    .map_err(err("insert_grant_with_refresh: begin"))?;
                // The share lock makes a concurrent delete_session wait for this commit (and
                // then revoke the grant), or this insert wait for the delete (and then find
                // no session).
                if let Some(sid) = &grant.session_id {
                    let alive = sqlx::query("SELECT 1 FROM sessions WHERE id = $1 FOR SHARE")
                        .bind(sid)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(err("insert_grant_with_refresh: session"))?
                        .is_some();
                    if !alive {
                        return Err(pforte_core::store::StoreError::Conflict(format!(
                            "the session of grant {} has ended",
                            grant.id
                        )));
                    }
                }
                insert_grant_in!(&mut *tx, grant)?;
                if let Some(token) = refresh {
                    insert_refresh_in!(&mut *tx, token)?;
                }
                tx.commit().await.map_err(err("insert_grant_with_refresh: commit"))
            }

            async fn get_refresh(
                &self,
                family: &str,
            ) -> pforte_core::store::StoreResult<Option<pforte_core::model::RefreshLookup>> {
                use $crate::common::*;
                use sqlx::Row;
                // One round trip for everything a refresh checks: token, grant, user, session.
                let row = sqlx::query(concat!(
                    "SELECT ",
                    refresh_join_cols!(),
                    ", u.doc, s.id, s.realm, s.user_id, s.auth_time, s.last_seen, s.acr, \
                     s.amr, s.idp \
                     FROM refresh_tokens t JOIN grants g ON g.id = t.grant_id \
                     LEFT JOIN users u ON u.realm = g.realm AND u.id = g.user_id \
                     LEFT JOIN sessions s ON s.id = g.session_id \
                     WHERE t.family = $1"
                ))
                .bind(family)
                .fetch_optional(self.reader())
                .await
                .map_err(err("get_refresh"))?;
                let Some(row) = row else { return Ok(None) };
                let decode = |e| map_err("get_refresh: decode", e);
                let base: RefreshJoinRow = (
                    row.try_get(0).map_err(decode)?,
                    row.try_get(1).map_err(decode)?,
                    row.try_get(2).map_err(decode)?,
                    row.try_get(3).map_err(decode)?,
                    row.try_get(4).map_err(decode)?,
                    row.try_get(5).map_err(decode)?,
                    row.try_get(6).map_err(decode)?,
                    row.try_get(7).map_err(decode)?,
                    row.try_get(8).map_err(decode)?,
                    row.try_get(9).map_err(decode)?,
                    row.try_get(10).map_err(decode)?,
                    row.try_get(11).map_err(decode)?,
                    row.try_get(12).map_err(decode)?,
                    row.try_get(13).map_err(decode)?,
                    row.try_get(14).map_err(decode)?,
                );
                let user_doc: Option<String> = row.try_get(15).map_err(decode)?;
                let session_id: Option<String> = row.try_get(16).map_err(decode)?;
                let session: Option<SessionRow> = match session_id {
                    None => None,
                    Some(id) => Some((
                        id,
                        row.try_get(17).map_err(decode)?,
                        row.try_get(18).map_err(decode)?,
                        row.try_get(19).map_err(decode)?,
                        row.try_get(20).map_err(decode)?,
                        row.try_get(21).map_err(decode)?,
                        row.try_get(22).map_err(decode)?,
                        row.try_get(23).map_err(decode)?,
                    )),
                };
                refresh_from_row(base, user_doc, session).map(Some)
            }

            async fn rotate_refresh(
                &self,
                old_hash: &str,
                new: &pforte_core::model::RefreshToken,
            ) -> pforte_core::store::StoreResult<pforte_core::model::Rotation> {
                self.rotate(old_hash, new).await
            }

            // --- access-token revocation ----------------------------------------------------

            async fn revoke_access_token(
                &self,
                jti: &str,
                expires_at: pforte_core::model::Timestamp,
            ) -> pforte_core::store::StoreResult<()> {
                use $crate::common::*;
                sqlx::query(
                    "INSERT INTO revoked_access_tokens (jti, expires_at) VALUES ($1, $2) \
                     ON CONFLICT (jti) DO UPDATE SET expires_at = CASE \
                     WHEN excluded.expires_at > revoked_access_tokens.expires_at \
                     THEN excluded.expires_at ELSE revoked_access_tokens.expires_at END",
                )
                .bind(jti)
                .bind(expires_at)
                .execute(self.writer())
                .await
                .map_err(err("revoke_access_token"))?;
                Ok(())
            }

            async fn is_access_token_revoked(
                &self,
                jti: &str,
            ) -> pforte_core::store::StoreResult<bool> {
                use $crate::common::*;
                let row = sqlx::query("SELECT 1 FROM revoked_access_tokens WHERE jti = $1")
                    .bind(jti)
                    .fetch_optional(self.reader())
                    .await
                    .map_err(err("is_access_token_revoked"))?;
                Ok(row.is_some())
            }

            // --- brute-force detection ------------------------------------------------------

            async fn get_login_failures(
                &self,
                realm: &str,
                key: &str,
            ) -> pforte_core::store::StoreResult<pforte_core::model::LoginFailures> {
                use $crate::common::*;
                let row: Option<(i64, i64)> = sqlx::query_as(
                    "SELECT count, last_failure FROM login_failures \
                     WHERE realm = $1 AND key = $2",
                )
                .bind(realm)
                .bind(key)
                .fetch_optional(self.reader())
                .await
                .map_err(err("get_login_failures"))?;
                row.map(failures_from_row).transpose().map(Option::unwrap_or_default)
            }

            async fn record_login_failure(
                &self,
                realm: &str,
                key: &str,
                now: pforte_core::model::Timestamp,
            ) -> pforte_core::store::StoreResult<pforte_core::model::LoginFailures> {
                use $crate::common::*;
                let row: (i64, i64) = sqlx::query_as(
                    "INSERT INTO login_failures (realm, key, count, last_failure) \
                     VALUES ($1, $2, 1, $3) ON CONFLICT (realm, key) DO UPDATE \
                     SET count = login_failures.count + 1, last_failure = excluded.last_failure \
                     RETURNING count, last_failure",
                )
                .bind(realm)
                .bind(key)
                .bind(now)
                .fetch_one(self.writer())
                .await
                .map_err(err("record_login_failure"))?;
                failures_from_row(row)
            }

            async fn clear_login_failures(
                &self,
                realm: &str,
                key: &str,
            ) -> pforte_core::store::StoreResult<()> {
                use $crate::common::*;
                sqlx::query("DELETE FROM login_failures WHERE realm = $1 AND key = $2")
                    .bind(realm)
                    .bind(key)
                    .execute(self.writer())
                    .await
                    .map_err(err("clear_login_failures"))?;
                Ok(())
            }

            // --- flow state -------------------------------------------------------------------

            async fn put_flow(
                &self,
                flow: &pforte_core::model::FlowState,
            ) -> pforte_core::store::StoreResult<()> {
                use $crate::common::*;
                sqlx::query(concat!(
                    "INSERT INTO flow_states (",
                    flow_cols!(),
                    ") VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET \
                     realm = excluded.realm, kind = excluded.kind, data = excluded.data, \
                     expires_at = excluded.expires_at"
                ))
                .bind(&flow.id)
                .bind(&flow.realm)
                .bind(&flow.kind)
                .bind(&flow.data)
                .bind(flow.expires_at)
                .execute(self.writer())
                .await
                .map_err(err("put_flow"))?;
                Ok(())
            }

            async fn get_flow(
                &self,
                id: &str,
            ) -> pforte_core::store::StoreResult<Option<pforte_core::model::FlowState>> {
                use $crate::common::*;
                let row: Option<FlowRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    flow_cols!(),
                    " FROM flow_states WHERE id = $1"
                ))
                .bind(id)
                .fetch_optional(self.reader())
                .await
                .map_err(err("get_flow"))?;
                Ok(row.map(flow_from_row))
            }

            async fn take_flow(
                &self,
                id: &str,
            ) -> pforte_core::store::StoreResult<Option<pforte_core::model::FlowState>> {
                use $crate::common::*;
                let row: Option<FlowRow> = sqlx::query_as(concat!(
                    "DELETE FROM flow_states WHERE id = $1 RETURNING ",
                    flow_cols!()
                ))
                .bind(id)
                .fetch_optional(self.writer())
                .await
                .map_err(err("take_flow"))?;
                Ok(row.map(flow_from_row))
            }

            // --- housekeeping -----------------------------------------------------------------

            async fn purge_expired(
                &self,
                now: pforte_core::model::Timestamp,
                session_idle_before: pforte_core::model::Timestamp,
                failures_before: pforte_core::model::Timestamp,
            ) -> pforte_core::store::StoreResult<u64> {
                use $crate::common::*;
                let mut tx = self.begin_write().await.map_err(err("purge_expired: begin"))?;
                let mut removed = 0;
                for sql in [
                    "DELETE FROM refresh_tokens WHERE expires_at < $1",
                    "DELETE FROM revoked_access_tokens WHERE expires_at < $1",
                    "DELETE FROM flow_states WHERE expires_at < $1",
                ] {
                    removed += sqlx::query(sql)
                        .bind(now)
                        .execute(&mut *tx)
                        .await
                        .map_err(err("purge_expired"))?
                        .rows_affected();
                }
                removed += sqlx::query("DELETE FROM sessions WHERE last_seen < $1")
                    .bind(session_idle_before)
                    .execute(&mut *tx)
                    .await
                    .map_err(err("purge_expired: sessions"))?
                    .rows_affected();
                removed += sqlx::query("DELETE FROM login_failures WHERE last_failure < $1")
                    .bind(failures_before)
                    .execute(&mut *tx)
                    .await
                    .map_err(err("purge_expired: login failures"))?
                    .rows_affected();
                // A day's margin: a grant revoked or without refresh tokens for that long
                // has no access token left that could still be valid (a missing grant reads
                // as revoked anyway), and no redemption of its code is still in flight; a
                // code kept that long after it expired still makes a late reuse revoke what
                // it issued.
                let day_ago = now - 86_400;
                for sql in [
                    "DELETE FROM auth_codes WHERE expires_at < $1",
                    "DELETE FROM grants WHERE created_at < $1 AND (revoked = TRUE OR NOT EXISTS \
                     (SELECT 1 FROM refresh_tokens t WHERE t.grant_id = grants.id))",
                ] {
                    removed += sqlx::query(sql)
                        .bind(day_ago)
                        .execute(&mut *tx)
                        .await
                        .map_err(err("purge_expired"))?
                        .rows_affected();
                }
                tx.commit().await.map_err(err("purge_expired: commit"))?;
                Ok(removed)
            }
        }
    };
}

/// Inserts a grant through the executor `$exec`; evaluates to `StoreResult<()>`.
macro_rules! insert_grant_in {
    ($exec:expr, $grant:expr) => {{
        let g: &pforte_core::model::Grant = $grant;
        sqlx::query(concat!(
            "INSERT INTO grants (",
            grant_cols!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .bind(&g.id)
        .bind(&g.realm)
        .bind(&g.client_id)
        .bind(&g.user_id)
        .bind(&g.session_id)
        .bind(&g.scope)
        .bind(g.auth_time)
        .bind(&g.acr)
        .bind(g.created_at)
        .bind(g.revoked)
        .execute($exec)
        .await
        .map(|_| ())
        .map_err($crate::common::err("insert grant"))
    }};
}

/// Inserts a refresh-token family through the executor `$exec`; evaluates to
/// `StoreResult<()>`.
macro_rules! insert_refresh_in {
    ($exec:expr, $token:expr) => {{
        let t: &pforte_core::model::RefreshToken = $token;
        sqlx::query(
            "INSERT INTO refresh_tokens \
             (family, token_hash, grant_id, scope, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&t.family)
        .bind(&t.token_hash)
        .bind(&t.grant_id)
        .bind(&t.scope)
        .bind(t.created_at)
        .bind(t.expires_at)
        .execute($exec)
        .await
        .map(|_| ())
        .map_err($crate::common::err("insert refresh token"))
    }};
}
