-- actorq PostgreSQL schema, version 2: several server nodes sharing one database.
-- A node row per server process (fresh id per process); a lease row per actor that has ever
-- been owned: its owner node, expiry (database clock, UNIX seconds) and fencing epoch. Every
-- write a node makes for an actor checks that it still holds the lease at that epoch.
CREATE TABLE nodes (
    node_id      TEXT PRIMARY KEY,
    address      TEXT,
    started_at   DOUBLE PRECISION NOT NULL,
    heartbeat_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE leases (
    actor_id   TEXT PRIMARY KEY,
    node_id    TEXT,
    epoch      BIGINT NOT NULL DEFAULT 0,
    expires_at DOUBLE PRECISION NOT NULL DEFAULT 0
);
CREATE INDEX leases_by_node ON leases (node_id);

-- a sender waiting on another node asked to be told (NOTIFY) when this message finishes
ALTER TABLE messages ADD COLUMN watched BOOLEAN NOT NULL DEFAULT false;

-- the claim scan: actors with pending or in-flight messages
CREATE INDEX messages_live ON messages (actor_id, status, available_at) WHERE status IN (0, 1);
