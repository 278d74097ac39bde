-- pforte schema, SQLite. Timestamps are seconds since the Unix epoch (INTEGER).
-- Realms, clients and users are read whole: their `doc` is the serde_json of the core
-- record; the other columns exist for lookups and uniqueness.

CREATE TABLE realms (
    name TEXT NOT NULL PRIMARY KEY,
    doc  TEXT NOT NULL
);

CREATE TABLE clients (
    realm     TEXT NOT NULL,
    client_id TEXT NOT NULL,
    doc       TEXT NOT NULL,
    PRIMARY KEY (realm, client_id)
);

-- username and email are stored lower-cased; lookups lower-case their argument.
CREATE TABLE users (
    realm    TEXT NOT NULL,
    id       TEXT NOT NULL,
    username TEXT NOT NULL,
    email    TEXT,
    doc      TEXT NOT NULL,
    PRIMARY KEY (realm, id),
    UNIQUE (realm, username),
    UNIQUE (realm, email)
);

CREATE TABLE signing_keys (
    realm          TEXT    NOT NULL,
    kid            TEXT    NOT NULL,
    alg            TEXT    NOT NULL,
    public_jwk     TEXT    NOT NULL,
    sealed_private BLOB    NOT NULL,
    created_at     INTEGER NOT NULL,
    retired_at     INTEGER,
    PRIMARY KEY (realm, kid)
);
-- At most one active key per realm: what makes insert_first_key safe across nodes.
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (realm) WHERE retired_at IS NULL;

CREATE TABLE sessions (
    id        TEXT    NOT NULL PRIMARY KEY,
    realm     TEXT    NOT NULL,
    user_id   TEXT    NOT NULL,
    auth_time INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    acr       TEXT,
    amr       TEXT    NOT NULL, -- JSON array of strings
    idp       TEXT
);
CREATE INDEX sessions_last_seen ON sessions (last_seen);

CREATE TABLE auth_codes (
    code_hash             TEXT    NOT NULL PRIMARY KEY,
    realm                 TEXT    NOT NULL,
    client_id             TEXT    NOT NULL,
    user_id               TEXT    NOT NULL,
    session_id            TEXT    NOT NULL,
    grant_id              TEXT    NOT NULL,
    redirect_uri          TEXT    NOT NULL,
    scope                 TEXT    NOT NULL,
    nonce                 TEXT,
    code_challenge        TEXT,
    code_challenge_method TEXT,
    auth_time             INTEGER NOT NULL,
    acr                   TEXT,
    expires_at            INTEGER NOT NULL,
    used                  BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX auth_codes_expires_at ON auth_codes (expires_at);

CREATE TABLE grants (
    id         TEXT    NOT NULL PRIMARY KEY,
    realm      TEXT    NOT NULL,
    client_id  TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    session_id TEXT,
    scope      TEXT    NOT NULL,
    auth_time  INTEGER NOT NULL,
    acr        TEXT,
    created_at INTEGER NOT NULL,
    revoked    BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX grants_session_id ON grants (session_id);

CREATE TABLE refresh_tokens (
    token_hash TEXT    NOT NULL PRIMARY KEY,
    grant_id   TEXT    NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    scope      TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used       BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX refresh_tokens_grant_id ON refresh_tokens (grant_id);
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);

CREATE TABLE revoked_access_tokens (
    jti        TEXT    NOT NULL PRIMARY KEY,
    expires_at INTEGER NOT NULL
);
CREATE INDEX revoked_access_tokens_expires_at ON revoked_access_tokens (expires_at);

CREATE TABLE login_failures (
    realm        TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    count        INTEGER NOT NULL,
    last_failure INTEGER NOT NULL,
    PRIMARY KEY (realm, key)
);

CREATE TABLE flow_states (
    id         TEXT    NOT NULL PRIMARY KEY,
    realm      TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    data       TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX flow_states_expires_at ON flow_states (expires_at);
