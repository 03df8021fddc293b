-- The actorq SQLite schema as the migrations leave it (version 3): every table and index in one
-- place. Read this instead of replaying migrations/NNNN_*.sql; the driver never runs this file
-- (it applies the migrations, writer.py), and tests/storage/test_schema.py checks that applying
-- the migrations to an empty database gives exactly this (comments aside).
-- A new migration changes this file too.
--
-- The message statuses, as the Python enum actorq.storage.protocol.MessageStatus must list them;
-- every status literal in queries.sql is annotated with its member (also checked):
-- codes MessageStatus: PENDING=0 INFLIGHT=1 COMPLETED=2 DEAD=3

PRAGMA user_version = 3;

CREATE TABLE actors (
    actor_id   TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    key        TEXT NOT NULL,            -- JSON array of strings
    state      TEXT,                     -- JSON, NULL until first saved
    next_seq   INTEGER NOT NULL DEFAULT 1,
    created_at REAL NOT NULL,
    state_version INTEGER NOT NULL DEFAULT 1,  -- actor(state_version=...) of the code that saved state
    UNIQUE (name, key)
);

CREATE TABLE messages (
    actor_id        TEXT NOT NULL,
    id              INTEGER NOT NULL,    -- per-actor, monotonic: FIFO order
    queue           TEXT NOT NULL,
    body            TEXT NOT NULL,
    status          INTEGER NOT NULL,    -- MessageStatus
    attempt         INTEGER NOT NULL DEFAULT 0,
    created_at      REAL NOT NULL,
    available_at    REAL NOT NULL,
    completed_at    REAL,
    response        TEXT,
    error           TEXT,
    idempotency_key TEXT,
    traceparent     TEXT,                -- W3C trace context of the send, NULL if not traced
    PRIMARY KEY (actor_id, id)
) WITHOUT ROWID;

-- receive: lowest id among an actor's pending/in-flight messages
CREATE INDEX messages_by_status ON messages (actor_id, status, id);
-- queue statistics and listing per queue
CREATE INDEX messages_by_queue ON messages (actor_id, queue, status);
CREATE UNIQUE INDEX messages_idempotency ON messages (actor_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- retention purge and start-up recovery
CREATE INDEX messages_active ON messages (status, completed_at);

-- pending (not yet received) messages per queue, kept in step by every transition so that the
-- max_size check of a send is O(1) however deep the backlog is
CREATE TABLE queue_depths (
    actor_id TEXT NOT NULL,
    queue    TEXT NOT NULL,
    pending  INTEGER NOT NULL,
    PRIMARY KEY (actor_id, queue)
) WITHOUT ROWID;

CREATE TABLE schedules (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    actor_id   TEXT NOT NULL,
    run_at     REAL NOT NULL,
    action     TEXT NOT NULL,
    args       TEXT NOT NULL,            -- JSON array
    attempt    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX schedules_due ON schedules (run_at);
