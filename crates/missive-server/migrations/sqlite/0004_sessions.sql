-- Sessions (README, "Tokens and sessions"): every token is a session with
-- an id that can be shown and revoked without revealing the token or its
-- hash, the User-Agent that obtained it, and when it was last used (sliding
-- expiry after TOKEN_TTL; updated at most about once a minute per token).
ALTER TABLE tokens ADD COLUMN id TEXT;
ALTER TABLE tokens ADD COLUMN user_agent TEXT;
ALTER TABLE tokens ADD COLUMN last_used_at INTEGER NOT NULL DEFAULT 0;

-- Existing tokens become sessions: a random UUID (version 4) each, and a
-- last use of now, so that they keep working for a whole TOKEN_TTL.
UPDATE tokens SET id = lower(hex(randomblob(16)));
UPDATE tokens SET id = substr(id, 1, 8) || '-' || substr(id, 9, 4) || '-4' || substr(id, 14, 3)
    || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(id, 18, 3)
    || '-' || substr(id, 21, 12);
UPDATE tokens SET last_used_at = CAST(strftime('%s', 'now') AS INTEGER) * 1000;

CREATE UNIQUE INDEX tokens_id ON tokens(id);
-- Pruning finds expired tokens by their last use.
CREATE INDEX tokens_last_used ON tokens(last_used_at);
