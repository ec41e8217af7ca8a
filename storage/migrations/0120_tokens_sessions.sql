-- Named API tokens with scopes, stored as SHA-256 of a high-entropy token (the token itself is shown once),
-- and server-side login sessions (the browser cookie holds a random session id; its hash is kept here).
CREATE TABLE IF NOT EXISTS api_tokens (
    name          text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$'),
    token_sha256  bytea NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
    scopes        text[] NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);

CREATE TABLE IF NOT EXISTS api_sessions (
    session_sha256 bytea PRIMARY KEY CHECK (length(session_sha256) = 32),
    principal      text NOT NULL,
    scopes         text[] NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    ended_at       timestamptz,
    client_addr    text
);
CREATE INDEX IF NOT EXISTS api_sessions_principal_idx ON api_sessions (principal);
