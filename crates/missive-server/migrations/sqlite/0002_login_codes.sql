-- One-time login codes (README, "Authentication"): one live code per phone number, stored
-- only as a hash; a new request replaces the old code.
CREATE TABLE login_codes (
    phone_number  TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users(id),
    code_hash     TEXT NOT NULL,
    expires_at    INTEGER NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0
);
