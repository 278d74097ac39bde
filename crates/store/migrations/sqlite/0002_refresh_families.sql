-- One row per refresh-token family (one per grant): rotation is a single conditional
-- UPDATE of the current token's hash, so it needs no transaction of several statements.
-- A presented token whose family exists but whose hash is not the current one has been
-- rotated out (or forged by someone who saw a token of that family): the family is revoked.
DROP TABLE refresh_tokens;
CREATE TABLE refresh_tokens (
    family     TEXT    NOT NULL PRIMARY KEY,
    token_hash TEXT    NOT NULL,
    grant_id   TEXT    NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    scope      TEXT    NOT NULL,
    created_at INTEGER  NOT NULL,
    expires_at INTEGER  NOT NULL
);
CREATE INDEX refresh_tokens_grant_id ON refresh_tokens (grant_id);
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);
