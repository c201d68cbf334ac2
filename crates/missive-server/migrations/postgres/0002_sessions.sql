-- Sessions (README, "Tokens and sessions"): every token is a session with
-- an id that can be shown and revoked without revealing the token or its
-- hash, the User-Agent that obtained it, and when it was last used (sliding
-- expiry after TOKEN_TTL; updated at most about once a minute per token).
ALTER TABLE tokens ADD COLUMN id uuid;
ALTER TABLE tokens ADD COLUMN user_agent text;
ALTER TABLE tokens ADD COLUMN last_used_at bigint NOT NULL DEFAULT 0;

-- Existing tokens become sessions: a random UUID each, and a last use of
-- now, so that they keep working for a whole TOKEN_TTL.
UPDATE tokens SET id = gen_random_uuid(),
    last_used_at = (extract(epoch FROM clock_timestamp()) * 1000)::bigint;
ALTER TABLE tokens ALTER COLUMN id SET NOT NULL;

CREATE UNIQUE INDEX tokens_id ON tokens (id);
-- Pruning finds expired tokens by their last use.
CREATE INDEX tokens_last_used ON tokens (last_used_at);
