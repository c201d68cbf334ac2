-- missive schema, version 1 (PostgreSQL). The same model as the SQLite
-- schema: ids are UUIDs, times are milliseconds since the Unix epoch.

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    phone_number  text NOT NULL,
    display_name  text,
    created_at    bigint NOT NULL,
    -- Last number of this user's event log (see `events`); bumped under the
    -- row lock in the transaction that appends, so number order is commit order.
    event_seq     bigint NOT NULL DEFAULT 0
);
-- Named, because a violation of it is mapped to "phone number taken".
CREATE UNIQUE INDEX users_phone_number_key ON users (phone_number);

-- Bearer tokens, stored only as SHA-256 hashes.
CREATE TABLE tokens (
    token_hash  text PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id),
    created_at  bigint NOT NULL,
    revoked_at  bigint
);
CREATE INDEX tokens_user ON tokens (user_id);

-- Ordering of `GET /chats`: larger means more recent activity. A sequence,
-- not MAX()+1, because several nodes write at once.
CREATE SEQUENCE chat_activity;

CREATE TABLE chats (
    id          uuid PRIMARY KEY,
    -- "smaller-id:larger-id" for 1:1 chats, NULL for groups.
    direct_key  text UNIQUE,
    created_at  bigint NOT NULL,
    -- Highest message seq in this chat.
    last_seq    bigint NOT NULL DEFAULT 0,
    activity    bigint NOT NULL DEFAULT nextval('chat_activity')
);
CREATE INDEX chats_activity ON chats (activity);

-- Participants, with their delivered/read watermarks (message seq).
CREATE TABLE chat_members (
    chat_id        uuid NOT NULL REFERENCES chats (id),
    user_id        uuid NOT NULL REFERENCES users (id),
    position       integer NOT NULL,
    delivered_seq  bigint NOT NULL DEFAULT 0,
    read_seq       bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (chat_id, user_id)
);
CREATE INDEX chat_members_user ON chat_members (user_id, chat_id);

CREATE TABLE messages (
    id                 uuid PRIMARY KEY,
    chat_id            uuid NOT NULL REFERENCES chats (id),
    seq                bigint NOT NULL,
    sender_id          uuid NOT NULL REFERENCES users (id),
    content            text NOT NULL,
    created_at         bigint NOT NULL,
    client_message_id  text,
    UNIQUE (chat_id, seq)
);
CREATE UNIQUE INDEX messages_idempotency
    ON messages (sender_id, client_message_id) WHERE client_message_id IS NOT NULL;

-- The per-user event log: everything durable a user must see.
CREATE TABLE events (
    user_id     uuid NOT NULL,
    seq         bigint NOT NULL,
    kind        text NOT NULL,        -- 'message' | 'receipt'
    chat_id     uuid NOT NULL,
    message_id  uuid NOT NULL,
    status      text,                 -- receipts: 'delivered' | 'read'
    actor       text,                 -- receipts: phone number of who acknowledged
    created_at  bigint NOT NULL,
    PRIMARY KEY (user_id, seq)
);

-- One-time login codes: one live code per phone number, stored only as a hash.
CREATE TABLE login_codes (
    phone_number  text PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users (id),
    code_hash     text NOT NULL,
    expires_at    bigint NOT NULL,
    attempts      bigint NOT NULL DEFAULT 0
);
