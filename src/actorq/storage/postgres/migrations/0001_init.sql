-- actorq PostgreSQL schema, version 1 (mirrors the SQLite schema).
CREATE TABLE actors (
    actor_id   TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    key        TEXT NOT NULL,
    state      TEXT,
    next_seq   BIGINT NOT NULL DEFAULT 1,
    created_at DOUBLE PRECISION NOT NULL,
    UNIQUE (name, key)
);

CREATE TABLE messages (
    actor_id        TEXT NOT NULL,
    id              BIGINT NOT NULL,
    queue           TEXT NOT NULL,
    body            TEXT NOT NULL,
    status          SMALLINT NOT NULL,
    attempt         INTEGER NOT NULL DEFAULT 0,
    created_at      DOUBLE PRECISION NOT NULL,
    available_at    DOUBLE PRECISION NOT NULL,
    completed_at    DOUBLE PRECISION,
    response        TEXT,
    error           TEXT,
    idempotency_key TEXT,
    PRIMARY KEY (actor_id, id)
);
CREATE INDEX messages_by_status ON messages (actor_id, status, id);
CREATE INDEX messages_by_queue ON messages (actor_id, queue, status);
CREATE UNIQUE INDEX messages_idempotency ON messages (actor_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX messages_active ON messages (status, completed_at);

CREATE TABLE queue_depths (
    actor_id TEXT NOT NULL,
    queue    TEXT NOT NULL,
    pending  BIGINT NOT NULL,
    PRIMARY KEY (actor_id, queue)
);

CREATE TABLE schedules (
    id         BIGSERIAL PRIMARY KEY,
    actor_id   TEXT NOT NULL,
    run_at     DOUBLE PRECISION NOT NULL,
    action     TEXT NOT NULL,
    args       TEXT NOT NULL,
    attempt    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX schedules_due ON schedules (run_at);
