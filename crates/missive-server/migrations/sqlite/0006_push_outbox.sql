-- The durable outbox of push notifications (PUSH_WEBHOOK_URL): one row per
-- recipient who had no connection when a message committed, written in the
-- same transaction as the message. The dispatcher claims due rows (moving
-- next_attempt_at forward as a lease), deletes them once the gateway took
-- them, or reschedules them with exponential backoff.
CREATE TABLE push_outbox (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id          TEXT NOT NULL,
    chat_id          TEXT NOT NULL,
    message_id       TEXT NOT NULL,
    sender           TEXT NOT NULL,
    preview          TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    created_at       INTEGER NOT NULL
);
CREATE INDEX push_outbox_due ON push_outbox (next_attempt_at);
