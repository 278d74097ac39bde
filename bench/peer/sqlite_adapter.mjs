// A storage adapter for oidc-provider on SQLite, through Node's built-in `node:sqlite` (no
// package to install). oidc-provider ships only a development in-memory store and asks every
// deployment for an adapter ("you MUST change it in order to not lose all stateful provider
// data upon restart"); this one keeps its state in a file the way pforte does: WAL journal,
// `synchronous=NORMAL`, every write committed before the request is answered.
//
// It implements the adapter interface oidc-provider documents (upsert, find, findByUid,
// findByUserCode, consume, destroy, revokeByGrantId) with the semantics of its in-memory
// adapter: a row past its expiry is not found, `consume` marks the payload, and revoking a
// grant removes every token issued under it.
import { DatabaseSync } from 'node:sqlite';

// The models whose rows belong to a grant (the in-memory adapter's list).
const GRANTABLE = [
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'PreAuthorizedCode',
];

export function createSqliteAdapter(path, clockTolerance = 0) {
  const db = new DatabaseSync(path);
  db.exec(`
    PRAGMA journal_mode = WAL;
    PRAGMA synchronous = NORMAL;
    CREATE TABLE IF NOT EXISTS oidc (
      model TEXT NOT NULL,
      id TEXT NOT NULL,
      payload TEXT NOT NULL,
      grant_id TEXT,
      user_code TEXT,
      uid TEXT,
      expires_at INTEGER,
      consumed_at INTEGER,
      PRIMARY KEY (model, id)
    );
    CREATE INDEX IF NOT EXISTS oidc_grant ON oidc (grant_id);
    CREATE INDEX IF NOT EXISTS oidc_uid ON oidc (model, uid) WHERE uid IS NOT NULL;
    CREATE INDEX IF NOT EXISTS oidc_user_code ON oidc (model, user_code) WHERE user_code IS NOT NULL;
  `);
  const statements = {
    upsert: db.prepare(`INSERT INTO oidc (model, id, payload, grant_id, user_code, uid, expires_at, consumed_at)
      VALUES (?, ?, ?, ?, ?, ?, ?, NULL)
      ON CONFLICT (model, id) DO UPDATE SET payload = excluded.payload, grant_id = excluded.grant_id,
        user_code = excluded.user_code, uid = excluded.uid, expires_at = excluded.expires_at,
        consumed_at = NULL`),
    find: db.prepare('SELECT payload, expires_at, consumed_at FROM oidc WHERE model = ? AND id = ?'),
    findByUid: db.prepare('SELECT payload, expires_at, consumed_at FROM oidc WHERE model = ? AND uid = ?'),
    findByUserCode: db.prepare('SELECT payload, expires_at, consumed_at FROM oidc WHERE model = ? AND user_code = ?'),
    consume: db.prepare('UPDATE oidc SET consumed_at = ? WHERE model = ? AND id = ?'),
    destroy: db.prepare('DELETE FROM oidc WHERE model = ? AND id = ?'),
    revoke: db.prepare(`DELETE FROM oidc WHERE grant_id = ? AND model IN (${GRANTABLE.map(() => '?').join(', ')})`),
  };

  // A stored row as oidc-provider wants it back: undefined once expired, `consumed` set once
  // consumed (seconds since the epoch, as the in-memory adapter does).
  function revive(row) {
    if (!row || (row.expires_at !== null && row.expires_at <= Date.now())) {
      return undefined;
    }
    const payload = JSON.parse(row.payload);
    if (row.consumed_at !== null) {
      payload.consumed = row.consumed_at;
    }
    return payload;
  }

  class SqliteAdapter {
    constructor(model) {
      this.model = model;
    }

    async upsert(id, payload, expiresIn) {
      const expiresAt = typeof expiresIn === 'number'
        ? Date.now() + ((expiresIn + clockTolerance) * 1000)
        : null;
      statements.upsert.run(
        this.model,
        id,
        JSON.stringify(payload),
        payload.grantId ?? null,
        payload.userCode ?? null,
        this.model === 'Session' ? (payload.uid ?? null) : null,
        expiresAt,
      );
    }

    async find(id) {
      return revive(statements.find.get(this.model, id));
    }

    async findByUid(uid) {
      return revive(statements.findByUid.get(this.model, uid));
    }

    async findByUserCode(userCode) {
      return revive(statements.findByUserCode.get(this.model, userCode));
    }

    async consume(id) {
      statements.consume.run(Math.floor(Date.now() / 1000), this.model, id);
    }

    async destroy(id) {
      statements.destroy.run(this.model, id);
    }

    async revokeByGrantId(grantId) {
      statements.revoke.run(grantId, ...GRANTABLE);
    }
  }

  return { Adapter: SqliteAdapter, close: () => db.close() };
}
