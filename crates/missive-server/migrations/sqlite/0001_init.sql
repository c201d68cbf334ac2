-- missive schema, version 1 (SQLite).
-- Ids are UUID text; times are milliseconds since the Unix epoch.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    phone_number  TEXT NOT NULL UNIQUE,
    display_name  TEXT,
    created_at    INTEGER NOT NULL,
    -- Last sequence number of this user's event log (see `events`).
    event_seq     INTEGER NOT NULL DEFAULT 0
);

-- Bearer tokens, stored only as SHA-256 hashes.
CREATE TABLE tokens (
    token_hash  TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id),
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE INDEX tokens_user ON tokens(user_id);

CREATE TABLE chats (
    id          TEXT PRIMARY KEY,
    -- "smaller-id:larger-id" for 1:1 chats, NULL for groups.
    direct_key  TEXT UNIQUE,
    created_at  INTEGER NOT NULL,
    -- Highest message seq in this chat.
    last_seq    INTEGER NOT NULL DEFAULT 0,
    -- Global activity counter: larger means more recent activity.
    activity    INTEGER NOT NULL
);
CREATE INDEX chats_activity ON chats(activity);

-- Participants, with their delivered/read watermarks (message seq).
CREATE TABLE chat_members (
    chat_id        TEXT NOT NULL REFERENCES chats(id),
    user_id        TEXT NOT NULL REFERENCES users(id),
    position       INTEGER NOT NULL,
    delivered_seq  INTEGER NOT NULL DEFAULT 0,
    read_seq       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (chat_id, user_id)
) WITHOUT ROWID;
CREATE INDEX chat_members_user ON chat_members(user_id, chat_id);

CREATE TABLE messages (
    id                 TEXT PRIMARY KEY,
    chat_id            TEXT NOT NULL REFERENCES chats(id),
    seq                INTEGER NOT NULL,
    sender_id          TEXT NOT NULL REFERENCES users(id),
    content            TEXT NOT NULL,
    created_at         INTEGER NOT NULL,
    client_message_id  TEXT,
    UNIQUE (chat_id, seq)
);
CREATE UNIQUE INDEX messages_idempotency
    ON messages(sender_id, client_message_id) WHERE client_message_id IS NOT NULL;

-- The per-user event log: everything durable a user must see, numbered per
-- user by the single writer, so that number order is commit order.
CREATE TABLE events (
    user_id     TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    kind        TEXT NOT NULL,        -- 'message' | 'receipt'
    chat_id     TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    status      TEXT,                 -- receipts: 'delivered' | 'read'
    actor       TEXT,                 -- receipts: phone number of who acknowledged
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (user_id, seq)
) WITHOUT ROWID;
