-- The durable outbox of push notifications (PUSH_WEBHOOK_URL): one row per
-- recipient who had no connection when a message committed, written in the
-- same transaction as the message. Dispatchers of every node claim due rows
-- with FOR UPDATE SKIP LOCKED (moving next_attempt_at forward as a lease),
-- delete them once the gateway took them, or reschedule them with
-- exponential backoff.
CREATE TABLE push_outbox (
    id               bigserial PRIMARY KEY,
    user_id          uuid NOT NULL,
    chat_id          uuid NOT NULL,
    message_id       uuid NOT NULL,
    sender           text NOT NULL,
    preview          text NOT NULL,
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  bigint NOT NULL,
    created_at       bigint NOT NULL
);
CREATE INDEX push_outbox_due ON push_outbox (next_attempt_at);
