-- Event retention (EVENT_RETENTION): events older than the retention are
-- pruned, a prefix of each user's log at a time.
-- The highest event number of the user that may have been pruned: a resume
-- from a cursor below it gets a `resync` frame instead of a silent gap.
-- `event_seq` (the last number handed out) is never lowered, so numbers are
-- never reused, whatever was pruned.
ALTER TABLE users ADD COLUMN events_pruned_seq bigint NOT NULL DEFAULT 0;
-- Finds the events older than the cutoff without scanning the whole log.
CREATE INDEX events_created ON events (created_at);
