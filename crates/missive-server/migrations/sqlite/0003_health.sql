-- One row that the readiness probe rewrites: `/readyz` is ready only when a
-- write commits, not merely when a SELECT answers (a full disk reads fine).
CREATE TABLE health (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    checked_at  INTEGER NOT NULL
);
INSERT INTO health (id, checked_at) VALUES (1, 0);
