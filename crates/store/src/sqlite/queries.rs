//! `Store` on SQLite: the same SQL as PostgreSQL (see `common.rs`), with SQLite's numbered
//! `?N` parameters, run on the connection's thread through [`SqliteStore::read`] and
//! [`SqliteStore::write`] (a savepoint of the group's transaction per operation).

use std::sync::Arc;

use pforte_core::model::*;
use pforte_core::store::{
    RealmImport, RefreshOutcome, RefreshStep, Store, StoreError, StoreResult,
};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{SqliteStore, err, map_err};
use crate::common::*;

/// A row as the tuple `T` (rusqlite decodes tuples of up to 16 columns).
fn tuple<T>(r: &Row<'_>) -> rusqlite::Result<T>
where
    T: for<'a> TryFrom<&'a Row<'a>, Error = rusqlite::Error>,
{
    T::try_from(r)
}

/// At most one row of `sql`, as the tuple `T`.
fn optional_row<T>(
    c: &Connection,
    what: &'static str,
    sql: &str,
    params: impl rusqlite::Params,
) -> StoreResult<Option<T>>
where
    T: for<'a> TryFrom<&'a Row<'a>, Error = rusqlite::Error>,
{
    c.prepare_cached(sql)
        .and_then(|mut s| s.query_row(params, tuple::<T>).optional())
        .map_err(err(what))
}

/// The session columns starting at `at`.
fn session_row(r: &Row<'_>, at: usize) -> rusqlite::Result<SessionRow> {
    Ok((
        r.get(at)?,
        r.get(at + 1)?,
        r.get(at + 2)?,
        r.get(at + 3)?,
        r.get(at + 4)?,
        r.get(at + 5)?,
        r.get(at + 6)?,
        r.get(at + 7)?,
    ))
}

/// Every `doc` column of a query, decoded as `what`.
fn docs<T: serde::de::DeserializeOwned>(
    c: &Connection,
    what: &'static str,
    sql: &str,
    params: impl rusqlite::Params,
) -> StoreResult<Vec<T>> {
    let mut stmt = c.prepare_cached(sql).map_err(err(what))?;
    let rows = stmt
        .query_map(params, |r| r.get::<_, String>(0))
        .map_err(err(what))?;
    let mut out = Vec::new();
    for doc in rows {
        out.push(from_json(what, &doc.map_err(err(what))?)?);
    }
    Ok(out)
}

/// The `doc` column of at most one row, decoded as `what`.
fn doc<T: serde::de::DeserializeOwned>(
    c: &Connection,
    what: &'static str,
    sql: &str,
    params: impl rusqlite::Params,
) -> StoreResult<Option<T>> {
    let doc: Option<String> = c
        .prepare_cached(sql)
        .and_then(|mut s| s.query_row(params, |r| r.get(0)).optional())
        .map_err(err(what))?;
    doc.map(|d| from_json(what, &d)).transpose()
}

fn exec(
    c: &Connection,
    what: &'static str,
    sql: &str,
    params: impl rusqlite::Params,
) -> StoreResult<usize> {
    c.prepare_cached(sql)
        .and_then(|mut s| s.execute(params))
        .map_err(err(what))
}

fn insert_grant(c: &Connection, g: &Grant) -> StoreResult<()> {
    exec(
        c,
        "insert grant",
        concat!(
            "INSERT INTO grants (",
            grant_cols!(),
            ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
        ),
        params![
            g.id,
            g.realm,
            g.client_id,
            g.user_id,
            g.session_id,
            g.scope,
            g.auth_time,
            g.acr,
            g.created_at,
            g.revoked
        ],
    )
    .map(|_| ())
}

fn import(c: &Connection, import: &RealmImport) -> StoreResult<()> {
    if let Some(realm) = &import.realm {
        exec(
            c,
            "import: realm",
            "INSERT INTO realms (name, doc) VALUES (?1, ?2) \
             ON CONFLICT (name) DO UPDATE SET doc = excluded.doc",
            params![realm.name, to_json("realm", realm)?],
        )?;
    }
    for client in &import.clients {
        exec(
            c,
            "import: client",
            "INSERT INTO clients (realm, client_id, doc) VALUES (?1, ?2, ?3) \
             ON CONFLICT (realm, client_id) DO UPDATE SET doc = excluded.doc",
            params![client.realm, client.client_id, to_json("client", client)?],
        )?;
    }
    // Users are replaced by id: remove the imported ids first so that names may move
    // between them (a swap is not a conflict), then insert each one after checking that
    // nobody outside the import holds its username or email.
    for user in &import.users {
        exec(
            c,
            "import: user",
            "DELETE FROM users WHERE realm = ?1 AND id = ?2",
            params![user.realm, user.id],
        )?;
    }
    for user in &import.users {
        let username = user.username.to_lowercase();
        let email = user.email.as_ref().map(|e| e.to_lowercase());
        let holder: Option<(String, String)> = c
            .prepare_cached(
                "SELECT id, username FROM users \
                 WHERE realm = ?1 AND (username = ?2 OR email = ?3) LIMIT 1",
            )
            .and_then(|mut s| {
                s.query_row(params![user.realm, username, email], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()
            })
            .map_err(err("import: user"))?;
        if let Some((other, other_name)) = holder {
            let what = if other_name == username {
                format!("username '{username}'")
            } else {
                format!("email '{}'", email.as_deref().unwrap_or_default())
            };
            return Err(StoreError::Conflict(format!(
                "{what} already belongs to user {other} in realm '{}' (importing user {})",
                user.realm, user.id
            )));
        }
        let doc = to_json("user", user)?;
        c.prepare_cached(
            "INSERT INTO users (realm, id, username, email, doc) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .and_then(|mut s| s.execute(params![user.realm, user.id, username, email, doc]))
        .map_err(|e| {
            map_err(
                &format!(
                    "import: user {} (username '{username}', email {email:?})",
                    user.id
                ),
                e,
            )
        })?;
    }
    Ok(())
}

fn refresh_lookup(c: &Connection, family: &str) -> StoreResult<Option<RefreshLookup>> {
    // One query for everything a refresh checks: token, grant, user, session.
    let sql = concat!(
        "SELECT ",
        refresh_join_cols!(),
        ", u.doc, s.id, s.realm, s.user_id, s.auth_time, s.last_seen, s.acr, s.amr, s.idp \
         FROM refresh_tokens t JOIN grants g ON g.id = t.grant_id \
         LEFT JOIN users u ON u.realm = g.realm AND u.id = g.user_id \
         LEFT JOIN sessions s ON s.id = g.session_id \
         WHERE t.family = ?1"
    );
    type Joined = (RefreshJoinRow, Option<String>, Option<SessionRow>);
    let row: Option<Joined> = c
        .prepare_cached(sql)
        .and_then(|mut s| {
            s.query_row([family], |r| {
                let session_id: Option<String> = r.get(16)?;
                let session = match session_id {
                    None => None,
                    Some(_) => Some(session_row(r, 16)?),
                };
                Ok((tuple::<RefreshJoinRow>(r)?, r.get(15)?, session))
            })
            .optional()
        })
        .map_err(err("get_refresh"))?;
    row.map(|(base, user_doc, session)| refresh_from_row(base, user_doc, session))
        .transpose()
}

/// Compare-and-swap on the family's current hash, and only while its grant stands: of two
/// rotations from one token only the first finds it, and none outruns a revocation.
fn swap_refresh(c: &Connection, old_hash: &str, new: &RefreshToken) -> StoreResult<Rotation> {
    let swapped = exec(
        c,
        "rotate_refresh",
        "UPDATE refresh_tokens SET token_hash = ?3, scope = ?4, created_at = ?5, \
         expires_at = ?6 WHERE family = ?1 AND token_hash = ?2 AND EXISTS \
         (SELECT 1 FROM grants g WHERE g.id = refresh_tokens.grant_id AND NOT g.revoked)",
        params![
            new.family,
            old_hash,
            new.token_hash,
            new.scope,
            new.created_at,
            new.expires_at
        ],
    )?;
    Ok(if swapped == 1 {
        Rotation::Rotated
    } else {
        Rotation::Stale
    })
}

fn revoke_grant(c: &Connection, id: &str) -> StoreResult<()> {
    exec(
        c,
        "revoke_grant",
        "UPDATE grants SET revoked = TRUE WHERE id = ?1",
        [id],
    )
    .map(drop)
}

fn purge(
    c: &Connection,
    now: Timestamp,
    session_idle_before: Timestamp,
    failures_before: Timestamp,
) -> StoreResult<u64> {
    let mut removed = 0;
    for sql in [
        "DELETE FROM refresh_tokens WHERE expires_at < ?1",
        "DELETE FROM revoked_access_tokens WHERE expires_at < ?1",
        "DELETE FROM flow_states WHERE expires_at < ?1",
    ] {
        removed += exec(c, "purge_expired", sql, [now])?;
    }
    removed += exec(
        c,
        "purge_expired: sessions",
        "DELETE FROM sessions WHERE last_seen < ?1",
        [session_idle_before],
    )?;
    removed += exec(
        c,
        "purge_expired: login failures",
        "DELETE FROM login_failures WHERE last_failure < ?1",
        [failures_before],
    )?;
    // A day's margin: a grant revoked or without refresh tokens for that long has no access
    // token left that could still be valid (a missing grant reads as revoked anyway), and
    // no redemption of its code is still in flight; a code kept that long after it expired
    // still makes a late reuse revoke what it issued.
    let day_ago = now - 86_400;
    for sql in [
        "DELETE FROM auth_codes WHERE expires_at < ?1",
        "DELETE FROM grants WHERE created_at < ?1 AND (revoked = TRUE OR NOT EXISTS \
         (SELECT 1 FROM refresh_tokens t WHERE t.grant_id = grants.id))",
    ] {
        removed += exec(c, "purge_expired", sql, [day_ago])?;
    }
    Ok(u64::try_from(removed).unwrap_or(u64::MAX))
}

impl SqliteStore {
    /// Runs one statement on the writer; evaluates to the number of rows it changed.
    async fn execute<P>(
        &self,
        what: &'static str,
        sql: &'static str,
        params: P,
    ) -> StoreResult<usize>
    where
        P: rusqlite::Params + Send + 'static,
    {
        self.write(what, move |c| exec(c, what, sql, params)).await
    }

    /// The `doc` column of at most one row of `sql`, decoded.
    async fn doc<T, const N: usize>(
        &self,
        what: &'static str,
        sql: &'static str,
        args: [&str; N],
    ) -> StoreResult<Option<T>>
    where
        T: serde::de::DeserializeOwned + Send + 'static,
    {
        let args = args.map(str::to_owned);
        self.read(what, move |c| {
            doc(c, what, sql, rusqlite::params_from_iter(args))
        })
        .await
    }

    /// The `doc` column of every row of `sql`, decoded.
    async fn docs<T, const N: usize>(
        &self,
        what: &'static str,
        sql: &'static str,
        args: [&str; N],
    ) -> StoreResult<Vec<T>>
    where
        T: serde::de::DeserializeOwned + Send + 'static,
    {
        let args = args.map(str::to_owned);
        self.read(what, move |c| {
            docs(c, what, sql, rusqlite::params_from_iter(args))
        })
        .await
    }
}

impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        self.ping_inner().await
    }

    // --- realms, clients, users -----------------------------------------------------------

    async fn apply_import(&self, import: &RealmImport) -> StoreResult<()> {
        if let Some(msg) = import_self_conflict(&import.users) {
            return Err(StoreError::Conflict(msg));
        }
        let import = import.clone();
        self.write("import", move |c| self::import(c, &import))
            .await
    }

    async fn get_realm(&self, name: &str) -> StoreResult<Option<Arc<Realm>>> {
        let sql = "SELECT doc FROM realms WHERE name = ?1";
        Ok(self.doc("get_realm", sql, [name]).await?.map(Arc::new))
    }

    async fn list_realms(&self) -> StoreResult<Vec<Realm>> {
        let sql = "SELECT doc FROM realms ORDER BY name";
        self.docs("list_realms", sql, []).await
    }

    async fn get_client(&self, realm: &str, client_id: &str) -> StoreResult<Option<Arc<Client>>> {
        let sql = "SELECT doc FROM clients WHERE realm = ?1 AND client_id = ?2";
        Ok(self
            .doc("get_client", sql, [realm, client_id])
            .await?
            .map(Arc::new))
    }

    async fn list_clients(&self, realm: &str) -> StoreResult<Vec<Client>> {
        let sql = "SELECT doc FROM clients WHERE realm = ?1 ORDER BY client_id";
        self.docs("list_clients", sql, [realm]).await
    }

    async fn get_user(&self, realm: &str, id: &str) -> StoreResult<Option<User>> {
        let sql = "SELECT doc FROM users WHERE realm = ?1 AND id = ?2";
        self.doc("get_user", sql, [realm, id]).await
    }

    async fn find_user_by_username(
        &self,
        realm: &str,
        username: &str,
    ) -> StoreResult<Option<User>> {
        let sql = "SELECT doc FROM users WHERE realm = ?1 AND username = ?2";
        let username = username.to_lowercase();
        self.doc("find_user_by_username", sql, [realm, &username])
            .await
    }

    async fn find_user_by_email(&self, realm: &str, email: &str) -> StoreResult<Option<User>> {
        let sql = "SELECT doc FROM users WHERE realm = ?1 AND email = ?2";
        let email = email.to_lowercase();
        self.doc("find_user_by_email", sql, [realm, &email]).await
    }

    async fn list_users(&self, realm: &str) -> StoreResult<Vec<User>> {
        let sql = "SELECT doc FROM users WHERE realm = ?1 ORDER BY username";
        self.docs("list_users", sql, [realm]).await
    }

    // --- signing keys -----------------------------------------------------------------------

    async fn list_keys(&self, realm: &str) -> StoreResult<Vec<StoredKey>> {
        let realm = realm.to_owned();
        self.read("list_keys", move |c| {
            let mut stmt = c
                .prepare_cached(concat!(
                    "SELECT ",
                    key_cols!(),
                    " FROM signing_keys WHERE realm = ?1 \
                     ORDER BY created_at DESC, (retired_at IS NULL) DESC, kid DESC"
                ))
                .map_err(err("list_keys"))?;
            let rows = stmt
                .query_map([realm], tuple::<KeyRow>)
                .map_err(err("list_keys"))?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(err("list_keys"))?;
            rows.into_iter().map(key_from_row).collect()
        })
        .await
    }

    async fn insert_first_key(&self, key: &StoredKey) -> StoreResult<bool> {
        let key = key.clone();
        self.write("insert_first_key", move |c| {
            // The partial unique index on (realm) WHERE retired_at IS NULL decides.
            let inserted = exec(
                c,
                "insert_first_key",
                "INSERT INTO signing_keys \
                 (realm, kid, alg, public_jwk, sealed_private, created_at, retired_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL) ON CONFLICT DO NOTHING",
                params![
                    key.realm,
                    key.kid,
                    key.alg.as_str(),
                    key.public_jwk,
                    key.sealed_private,
                    key.created_at
                ],
            )?;
            Ok(inserted == 1)
        })
        .await
    }

    async fn rotate_key(&self, key: &StoredKey, now: Timestamp) -> StoreResult<()> {
        let key = key.clone();
        self.write("rotate_key", move |c| {
            exec(
                c,
                "rotate_key: retire",
                "UPDATE signing_keys SET retired_at = ?2 WHERE realm = ?1 AND retired_at IS NULL",
                params![key.realm, now],
            )?;
            exec(
                c,
                "rotate_key: insert",
                "INSERT INTO signing_keys \
                 (realm, kid, alg, public_jwk, sealed_private, created_at, retired_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL)",
                params![
                    key.realm,
                    key.kid,
                    key.alg.as_str(),
                    key.public_jwk,
                    key.sealed_private,
                    key.created_at
                ],
            )
            .map(|_| ())
        })
        .await
    }

    async fn delete_retired_keys(&self, realm: &str, before: Timestamp) -> StoreResult<u64> {
        let realm = realm.to_owned();
        self.write("delete_retired_keys", move |c| {
            let n = exec(
                c,
                "delete_retired_keys",
                "DELETE FROM signing_keys \
                 WHERE realm = ?1 AND retired_at IS NOT NULL AND retired_at < ?2",
                params![realm, before],
            )?;
            Ok(u64::try_from(n).unwrap_or(u64::MAX))
        })
        .await
    }

    // --- sessions ---------------------------------------------------------------------------

    async fn create_session(&self, session: &Session) -> StoreResult<()> {
        let amr = to_json("session amr", &session.amr)?;
        let s = session.clone();
        self.execute(
            "create_session",
            concat!(
                "INSERT INTO sessions (",
                session_cols!(),
                ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
            ),
            (
                s.id,
                s.realm,
                s.user_id,
                s.auth_time,
                s.last_seen,
                s.acr,
                amr,
                s.idp,
            ),
        )
        .await
        .map(drop)
    }

    async fn get_session(&self, id: &str) -> StoreResult<Option<Session>> {
        let id = id.to_owned();
        self.read("get_session", move |c| {
            let row: Option<SessionRow> = optional_row(
                c,
                "get_session",
                concat!("SELECT ", session_cols!(), " FROM sessions WHERE id = ?1"),
                [id],
            )?;
            row.map(session_from_row).transpose()
        })
        .await
    }

    async fn touch_session(&self, id: &str, now: Timestamp) -> StoreResult<()> {
        let id = id.to_owned();
        self.execute(
            "touch_session",
            "UPDATE sessions SET last_seen = ?2 WHERE id = ?1",
            (id, now),
        )
        .await
        .map(drop)
    }

    async fn reauthenticate_session(&self, id: &str, now: Timestamp) -> StoreResult<bool> {
        let id = id.to_owned();
        self.execute(
            "reauthenticate_session",
            "UPDATE sessions SET auth_time = ?2, last_seen = ?2 WHERE id = ?1",
            (id, now),
        )
        .await
        .map(|rows| rows == 1)
    }

    async fn delete_session(&self, id: &str) -> StoreResult<()> {
        let id = id.to_owned();
        self.write("delete_session", move |c| {
            exec(
                c,
                "delete_session: revoke grants",
                "UPDATE grants SET revoked = TRUE WHERE session_id = ?1",
                [&id],
            )?;
            exec(
                c,
                "delete_session",
                "DELETE FROM sessions WHERE id = ?1",
                [&id],
            )
            .map(|_| ())
        })
        .await
    }

    // --- codes, grants, refresh tokens ------------------------------------------------------

    async fn insert_code(&self, code: &AuthCode) -> StoreResult<()> {
        let k = code.clone();
        self.execute(
            "insert_code",
            concat!(
                "INSERT INTO auth_codes (",
                code_cols!(),
                ", used) VALUES \
                     (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, FALSE)"
            ),
            (
                k.code_hash,
                k.realm,
                k.client_id,
                k.user_id,
                k.session_id,
                k.grant_id,
                k.redirect_uri,
                k.scope,
                k.nonce,
                k.code_challenge,
                k.code_challenge_method,
                k.auth_time,
                k.acr,
                k.expires_at,
            ),
        )
        .await
        .map(drop)
    }

    async fn redeem_code(&self, code_hash: &str) -> StoreResult<CodeRedemption> {
        let code_hash = code_hash.to_owned();
        self.write("redeem_code", move |c| {
            let fresh: Option<CodeRow> = optional_row(
                c,
                "redeem_code",
                concat!(
                    "UPDATE auth_codes SET used = TRUE \
                     WHERE code_hash = ?1 AND used = FALSE RETURNING ",
                    code_cols!()
                ),
                [&code_hash],
            )?;
            if let Some(row) = fresh {
                return Ok(CodeRedemption::Fresh(code_from_row(row)));
            }
            let used: Option<CodeRow> = optional_row(
                c,
                "redeem_code: lookup",
                concat!(
                    "SELECT ",
                    code_cols!(),
                    " FROM auth_codes WHERE code_hash = ?1"
                ),
                [&code_hash],
            )?;
            Ok(match used {
                Some(row) => CodeRedemption::Reused(code_from_row(row)),
                None => CodeRedemption::Unknown,
            })
        })
        .await
    }

    async fn insert_grant(&self, grant: &Grant) -> StoreResult<()> {
        let grant = grant.clone();
        self.write("insert_grant", move |c| insert_grant(c, &grant))
            .await
    }

    async fn get_grant(&self, id: &str) -> StoreResult<Option<Grant>> {
        let id = id.to_owned();
        self.read("get_grant", move |c| {
            let row: Option<GrantRow> = optional_row(
                c,
                "get_grant",
                concat!("SELECT ", grant_cols!(), " FROM grants WHERE id = ?1"),
                [id],
            )?;
            Ok(row.map(grant_from_row))
        })
        .await
    }

    async fn revoke_grant(&self, id: &str) -> StoreResult<()> {
        let id = id.to_owned();
        self.write("revoke_grant", move |c| revoke_grant(c, &id))
            .await
    }

    async fn insert_grant_with_refresh(
        &self,
        grant: &Grant,
        refresh: Option<&RefreshToken>,
    ) -> StoreResult<()> {
        let grant = grant.clone();
        let refresh = refresh.cloned();
        self.write("insert_grant_with_refresh", move |c| {
            // The thread runs one job at a time: no logout can come between this check and
            // the insert.
            if let Some(sid) = &grant.session_id {
                let alive: bool = c
                    .prepare_cached("SELECT EXISTS (SELECT 1 FROM sessions WHERE id = ?1)")
                    .and_then(|mut s| s.query_row([sid], |r| r.get(0)))
                    .map_err(err("insert_grant_with_refresh: session"))?;
                if !alive {
                    return Err(StoreError::Conflict(format!(
                        "the session of grant {} has ended",
                        grant.id
                    )));
                }
            }
            insert_grant(c, &grant)?;
            if let Some(t) = refresh {
                exec(
                    c,
                    "insert refresh token",
                    "INSERT INTO refresh_tokens \
                     (family, token_hash, grant_id, scope, created_at, expires_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        t.family,
                        t.token_hash,
                        t.grant_id,
                        t.scope,
                        t.created_at,
                        t.expires_at
                    ],
                )?;
            }
            Ok(())
        })
        .await
    }

    async fn get_refresh(&self, family: &str) -> StoreResult<Option<RefreshLookup>> {
        let family = family.to_owned();
        self.read("get_refresh", move |c| refresh_lookup(c, &family))
            .await
    }

    async fn rotate_refresh(&self, old_hash: &str, new: &RefreshToken) -> StoreResult<Rotation> {
        let old_hash = old_hash.to_owned();
        let new = new.clone();
        self.write("rotate_refresh", move |c| swap_refresh(c, &old_hash, &new))
            .await
    }

    /// One job on the connection's thread instead of a read and a write: each hand-off
    /// costs two thread wake-ups, a large share of a refresh.
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
        let family = family.to_owned();
        self.write("refresh_family", move |c| {
            let Some(found) = refresh_lookup(c, &family)? else {
                return Ok(RefreshOutcome::Unknown);
            };
            Ok(match decide(&found) {
                RefreshStep::Rotate(new, passed) => {
                    match swap_refresh(c, &found.token.token_hash, &new)? {
                        Rotation::Rotated => RefreshOutcome::Rotated(found, passed),
                        Rotation::Stale => {
                            revoke_grant(c, &found.grant.id)?;
                            RefreshOutcome::Stale
                        }
                    }
                }
                RefreshStep::RevokeGrant(refusal) => {
                    revoke_grant(c, &found.grant.id)?;
                    RefreshOutcome::Refused(refusal)
                }
                RefreshStep::Refuse(refusal) => RefreshOutcome::Refused(refusal),
            })
        })
        .await
    }

    // --- access-token revocation ------------------------------------------------------------

    async fn revoke_access_token(&self, jti: &str, expires_at: Timestamp) -> StoreResult<()> {
        let jti = jti.to_owned();
        self.execute(
            "revoke_access_token",
            "INSERT INTO revoked_access_tokens (jti, expires_at) VALUES (?1, ?2) \
                 ON CONFLICT (jti) DO UPDATE SET expires_at = CASE \
                 WHEN excluded.expires_at > revoked_access_tokens.expires_at \
                 THEN excluded.expires_at ELSE revoked_access_tokens.expires_at END",
            (jti, expires_at),
        )
        .await
        .map(drop)
    }

    async fn is_access_token_revoked(&self, jti: &str) -> StoreResult<bool> {
        let jti = jti.to_owned();
        self.read("is_access_token_revoked", move |c| {
            c.prepare_cached("SELECT 1 FROM revoked_access_tokens WHERE jti = ?1")
                .and_then(|mut s| s.exists([jti]))
                .map_err(err("is_access_token_revoked"))
        })
        .await
    }

    // --- brute-force detection --------------------------------------------------------------

    async fn get_login_failures(&self, realm: &str, key: &str) -> StoreResult<LoginFailures> {
        let (realm, key) = (realm.to_owned(), key.to_owned());
        self.read("get_login_failures", move |c| {
            let row: Option<(i64, i64)> = c
                .prepare_cached(
                    "SELECT count, last_failure FROM login_failures \
                     WHERE realm = ?1 AND key = ?2",
                )
                .and_then(|mut s| {
                    s.query_row([realm, key], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()
                })
                .map_err(err("get_login_failures"))?;
            row.map(failures_from_row)
                .transpose()
                .map(Option::unwrap_or_default)
        })
        .await
    }

    async fn record_login_failure(
        &self,
        realm: &str,
        key: &str,
        now: Timestamp,
    ) -> StoreResult<LoginFailures> {
        let (realm, key) = (realm.to_owned(), key.to_owned());
        self.write("record_login_failure", move |c| {
            let row: (i64, i64) = c
                .prepare_cached(
                    "INSERT INTO login_failures (realm, key, count, last_failure) \
                     VALUES (?1, ?2, 1, ?3) ON CONFLICT (realm, key) DO UPDATE \
                     SET count = login_failures.count + 1, last_failure = excluded.last_failure \
                     RETURNING count, last_failure",
                )
                .and_then(|mut s| {
                    s.query_row(params![realm, key, now], |r| Ok((r.get(0)?, r.get(1)?)))
                })
                .map_err(err("record_login_failure"))?;
            failures_from_row(row)
        })
        .await
    }

    async fn clear_login_failures(&self, realm: &str, key: &str) -> StoreResult<()> {
        let (realm, key) = (realm.to_owned(), key.to_owned());
        self.execute(
            "clear_login_failures",
            "DELETE FROM login_failures WHERE realm = ?1 AND key = ?2",
            (realm, key),
        )
        .await
        .map(drop)
    }

    // --- flow state -------------------------------------------------------------------------

    async fn put_flow(&self, flow: &FlowState) -> StoreResult<()> {
        let f = flow.clone();
        self.execute(
            "put_flow",
            concat!(
                "INSERT INTO flow_states (",
                flow_cols!(),
                ") VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (id) DO UPDATE SET \
                     realm = excluded.realm, kind = excluded.kind, data = excluded.data, \
                     expires_at = excluded.expires_at"
            ),
            (f.id, f.realm, f.kind, f.data, f.expires_at),
        )
        .await
        .map(drop)
    }

    async fn get_flow(&self, id: &str) -> StoreResult<Option<FlowState>> {
        let id = id.to_owned();
        self.read("get_flow", move |c| {
            let row: Option<FlowRow> = optional_row(
                c,
                "get_flow",
                concat!("SELECT ", flow_cols!(), " FROM flow_states WHERE id = ?1"),
                [id],
            )?;
            Ok(row.map(flow_from_row))
        })
        .await
    }

    async fn take_flow(&self, id: &str) -> StoreResult<Option<FlowState>> {
        let id = id.to_owned();
        self.write("take_flow", move |c| {
            let row: Option<FlowRow> = optional_row(
                c,
                "take_flow",
                concat!(
                    "DELETE FROM flow_states WHERE id = ?1 RETURNING ",
                    flow_cols!()
                ),
                [id],
            )?;
            Ok(row.map(flow_from_row))
        })
        .await
    }

    // --- housekeeping -----------------------------------------------------------------------

    async fn purge_expired(
        &self,
        now: Timestamp,
        session_idle_before: Timestamp,
        failures_before: Timestamp,
    ) -> StoreResult<u64> {
        self.write("purge_expired", move |c| {
            purge(c, now, session_idle_before, failures_before)
        })
        .await
    }
}
