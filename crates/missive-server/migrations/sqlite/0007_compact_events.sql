-- The event log keyed by 16-byte ids instead of 36-character text: rows and
-- primary-key entries about half the size, and byte comparisons instead of
-- string comparisons on every insert and read. Appending events is the
-- largest part of the writer's work per message; the other tables keep text
-- ids. Existing events are converted in place (same numbers, same order).
CREATE TABLE events_compact (
    user_id     BLOB NOT NULL,        -- users.id, as 16 bytes
    seq         INTEGER NOT NULL,
    kind        TEXT NOT NULL,        -- 'message' | 'receipt'
    chat_id     BLOB NOT NULL,        -- chats.id, as 16 bytes
    message_id  BLOB NOT NULL,        -- messages.id, as 16 bytes
    status      TEXT,                 -- receipts: 'delivered' | 'read'
    actor       TEXT,                 -- receipts: phone number of who acknowledged
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (user_id, seq)
) WITHOUT ROWID;
INSERT INTO events_compact
    SELECT unhex(replace(user_id, '-', '')), seq, kind,
           unhex(replace(chat_id, '-', '')), unhex(replace(message_id, '-', '')),
           status, actor, created_at
    FROM events;
DROP TABLE events;
ALTER TABLE events_compact RENAME TO events;
CREATE INDEX events_created ON events(created_at);
