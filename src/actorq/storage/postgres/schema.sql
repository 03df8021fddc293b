-- The actorq PostgreSQL schema as the migrations leave it (version 8): every table, index and
-- function, in one place. Read this instead of replaying migrations/NNNN_*.sql; the driver never
-- runs this file (it applies the migrations, database.py), and tests/storage/test_schema.py checks
-- that applying the migrations to an empty schema gives exactly this (comments aside).
-- A new migration changes this file too.
--
-- The result codes the functions return and the message statuses, as the Python enums
-- (actorq.storage.protocol.MessageStatus, actorq.storage.postgres.codes) must list them; every
-- code literal below and in queries.sql is annotated with its member (also checked):
-- codes MessageStatus: PENDING=0 INFLIGHT=1 COMPLETED=2 DEAD=3
-- codes SendCode: STORED=0 DUPLICATE=1 FULL=2 NO_ACTOR=3
-- codes ReceiveRow: ACKED=0 DELIVERED=1 DEAD=2 NOTHING=3 LEASE_LOST=9
-- codes CompleteCode: NOT_INFLIGHT=0 COMPLETED=1 LEASE_LOST=9

-- applied migrations (the driver creates this table before the first one)
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version (version) VALUES (1), (2), (3), (4), (5), (6), (7), (8);

CREATE TABLE actors (
    actor_id   TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    key        TEXT NOT NULL,            -- JSON array of strings
    state      TEXT,                     -- JSON, NULL until first saved
    next_seq   BIGINT NOT NULL DEFAULT 1,
    created_at DOUBLE PRECISION NOT NULL,
    state_version INTEGER NOT NULL DEFAULT 1,  -- actor(state_version=...) of the code that saved state
    UNIQUE (name, key)
);

CREATE TABLE messages (
    actor_id        TEXT NOT NULL,
    id              BIGINT NOT NULL,     -- per-actor, gap-free, monotonic: FIFO order
    queue           TEXT NOT NULL,
    body            TEXT NOT NULL,
    status          SMALLINT NOT NULL,   -- MessageStatus
    attempt         INTEGER NOT NULL DEFAULT 0,
    created_at      DOUBLE PRECISION NOT NULL,
    available_at    DOUBLE PRECISION NOT NULL,
    completed_at    DOUBLE PRECISION,
    response        TEXT,
    error           TEXT,
    idempotency_key TEXT,
    -- a sender waiting on another node asked to be told (NOTIFY) when this message finishes
    watched         BOOLEAN NOT NULL DEFAULT false,
    traceparent     TEXT,                -- W3C trace context of the send, NULL if not traced
    PRIMARY KEY (actor_id, id)
);
CREATE INDEX messages_by_status ON messages (actor_id, status, id);
CREATE INDEX messages_by_queue ON messages (actor_id, queue, status);
CREATE UNIQUE INDEX messages_idempotency ON messages (actor_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- retention purge, start-up recovery and the claim scan (actors with pending or in-flight messages)
CREATE INDEX messages_active ON messages (status, completed_at);

-- a queue's pending count is queue_depths.pending - queue_taken.taken: senders (any node) add to
-- the first, the owner's receives count in the second, a row only it writes, so neither waits on
-- the other's row locks
CREATE TABLE queue_depths (
    actor_id TEXT NOT NULL,
    queue    TEXT NOT NULL,
    pending  BIGINT NOT NULL,
    PRIMARY KEY (actor_id, queue)
);

CREATE TABLE queue_taken (
    actor_id TEXT NOT NULL,
    queue    TEXT NOT NULL,
    taken    BIGINT NOT NULL,
    PRIMARY KEY (actor_id, queue)
);

CREATE TABLE schedules (
    id         BIGSERIAL PRIMARY KEY,
    actor_id   TEXT NOT NULL,
    run_at     DOUBLE PRECISION NOT NULL,
    action     TEXT NOT NULL,
    args       TEXT NOT NULL,            -- JSON array
    attempt    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX schedules_due ON schedules (run_at);

-- one row per server process (a fresh id per process)
CREATE TABLE nodes (
    node_id      TEXT PRIMARY KEY,
    address      TEXT,
    started_at   DOUBLE PRECISION NOT NULL,
    heartbeat_at DOUBLE PRECISION NOT NULL
);

-- one row per actor that has ever been owned: its owner node, expiry (database clock, UNIX
-- seconds) and fencing epoch; every owner write checks it still holds the lease at its epoch
CREATE TABLE leases (
    actor_id   TEXT PRIMARY KEY,
    node_id    TEXT,
    epoch      BIGINT NOT NULL DEFAULT 0,
    expires_at DOUBLE PRECISION NOT NULL DEFAULT 0
);
CREATE INDEX leases_by_node ON leases (node_id);

-- agent VM snapshots (/home/user as tar.gz chunks) so a VM follows its actor to another node
CREATE TABLE vm_snapshots (
    actor_id   TEXT    NOT NULL,
    seq        INTEGER NOT NULL,
    generation BIGINT  NOT NULL,
    data       BYTEA   NOT NULL,
    PRIMARY KEY (actor_id, seq)
);

-- The hot paths as server-side functions: one round trip per call, and the *_many forms one
-- statement for many calls (the driver's group commit). ``p_node``/``p_epoch`` fence the owner
-- writes (NULL node: no cluster); ``p_channel`` (NULL: no NOTIFY) is the node's LISTEN channel.
-- The driver sorts the calls of a batch by actor id (stable) so concurrent batches lock rows in
-- one order.

-- one send: o_status is a SendCode (DUPLICATE: o_id is the existing message; FULL: o_pending)
CREATE FUNCTION send_one(
    p_actor TEXT, p_queue TEXT, p_body TEXT, p_now DOUBLE PRECISION, p_available DOUBLE PRECISION,
    p_key TEXT, p_max BIGINT, p_channel TEXT, p_trace TEXT,
    OUT o_status SMALLINT, OUT o_id BIGINT, OUT o_created DOUBLE PRECISION, OUT o_pending BIGINT)
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    seq BIGINT;
BEGIN
    SELECT next_seq INTO seq FROM actors WHERE actor_id = p_actor FOR UPDATE;
    IF NOT FOUND THEN
        o_status := 3 /* SendCode.NO_ACTOR */;
        RETURN;
    END IF;
    IF p_key IS NOT NULL THEN
        SELECT id, created_at INTO o_id, o_created FROM messages
        WHERE actor_id = p_actor AND idempotency_key = p_key;
        IF FOUND THEN
            o_status := 1 /* SendCode.DUPLICATE */;
            RETURN;
        END IF;
    END IF;
    SELECT d.pending - coalesce(t.taken, 0) INTO o_pending
    FROM queue_depths d LEFT JOIN queue_taken t ON t.actor_id = d.actor_id AND t.queue = d.queue
    WHERE d.actor_id = p_actor AND d.queue = p_queue;
    o_pending := coalesce(o_pending, 0);
    IF o_pending >= p_max THEN
        o_status := 2 /* SendCode.FULL */;
        RETURN;
    END IF;
    UPDATE actors SET next_seq = next_seq + 1 WHERE actor_id = p_actor;
    INSERT INTO messages (actor_id, id, queue, body, status, attempt, created_at, available_at, idempotency_key,
                          traceparent)
    VALUES (p_actor, seq, p_queue, p_body, 0 /* MessageStatus.PENDING */, 0, p_now, p_available, p_key, p_trace);
    INSERT INTO queue_depths (actor_id, queue, pending) VALUES (p_actor, p_queue, 1)
    ON CONFLICT (actor_id, queue) DO UPDATE SET pending = queue_depths.pending + 1;
    IF p_channel IS NOT NULL THEN
        PERFORM pg_notify(p_channel, 'm:' || p_actor);
    END IF;
    o_status := 0 /* SendCode.STORED */;
    o_id := seq;
    o_created := p_now;
END $$;

-- send_one for several items, in the order given
CREATE FUNCTION send_many(
    p_actors TEXT[], p_queues TEXT[], p_bodies TEXT[], p_now DOUBLE PRECISION[],
    p_available DOUBLE PRECISION[], p_keys TEXT[], p_max BIGINT[], p_channels TEXT[], p_traces TEXT[])
RETURNS TABLE (o_status SMALLINT, o_id BIGINT, o_created DOUBLE PRECISION, o_pending BIGINT)
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_actors, 1), 0) LOOP
        SELECT s.o_status, s.o_id, s.o_created, s.o_pending INTO o_status, o_id, o_created, o_pending
        FROM send_one(p_actors[i], p_queues[i], p_bodies[i], p_now[i], p_available[i], p_keys[i],
                      p_max[i], p_channels[i], p_traces[i]) s;
        RETURN NEXT;
    END LOOP;
END $$;

-- acknowledge, save state, hand out: rows of kind ReceiveRow (DELIVERED: attempt already + 1;
-- NOTHING: available_at is the earliest delayed message; LEASE_LOST: nothing was written)
CREATE FUNCTION receive_msgs(
    p_actor TEXT, p_node TEXT, p_epoch BIGINT, p_acks BIGINT[], p_state TEXT, p_count INT,
    p_queues TEXT[], p_now DOUBLE PRECISION, p_max_attempts INT, p_channel TEXT)
RETURNS TABLE (kind SMALLINT, id BIGINT, queue TEXT, body TEXT, attempt INT, created_at DOUBLE PRECISION,
               available_at DOUBLE PRECISION, error TEXT, traceparent TEXT)
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
#variable_conflict use_column
DECLARE
    r RECORD;
    n INT := 0;
    w BOOLEAN;
    a BIGINT;
    e BIGINT;
BEGIN
    IF p_node IS NOT NULL THEN
        SELECT l.epoch INTO e FROM leases l WHERE l.actor_id = p_actor AND l.node_id = p_node FOR KEY SHARE;
        IF e IS DISTINCT FROM p_epoch THEN
            kind := 9 /* ReceiveRow.LEASE_LOST */;
            RETURN NEXT;
            RETURN;
        END IF;
    END IF;
    IF p_acks IS NOT NULL THEN
        FOREACH a IN ARRAY p_acks LOOP
            UPDATE messages m SET status = 2 /* MessageStatus.COMPLETED */, completed_at = p_now
            WHERE m.actor_id = p_actor AND m.id = a AND m.status = 1 /* MessageStatus.INFLIGHT */ RETURNING m.watched INTO w;
            IF FOUND THEN
                kind := 0 /* ReceiveRow.ACKED */;
                id := a;
                RETURN NEXT;
                IF w AND p_channel IS NOT NULL THEN
                    PERFORM pg_notify(p_channel, 'd:' || p_actor || ':' || a);
                END IF;
            END IF;
        END LOOP;
    END IF;
    IF p_state IS NOT NULL THEN
        UPDATE actors SET state = p_state WHERE actor_id = p_actor;
    END IF;
    IF p_count > 0 THEN
        FOR r IN
            SELECT m.id, m.queue, m.body, m.attempt, m.created_at, m.available_at, m.error, m.traceparent
            FROM messages m
            WHERE m.actor_id = p_actor AND m.status = 0 /* MessageStatus.PENDING */ AND m.available_at <= p_now
              AND (p_queues IS NULL OR m.queue = ANY (p_queues))
            ORDER BY m.id
        LOOP
            kind := NULL;
            id := r.id; queue := r.queue; body := r.body; created_at := r.created_at;
            available_at := r.available_at; error := r.error; traceparent := r.traceparent;
            IF r.attempt >= p_max_attempts THEN
                UPDATE messages m SET status = 3 /* MessageStatus.DEAD */, completed_at = p_now,
                    error = coalesce(m.error, 'exceeded max_attempts')
                WHERE m.actor_id = p_actor AND m.id = r.id RETURNING m.watched INTO w;
                IF w AND p_channel IS NOT NULL THEN
                    PERFORM pg_notify(p_channel, 'd:' || p_actor || ':' || r.id);
                END IF;
                kind := 2 /* ReceiveRow.DEAD */;
                attempt := r.attempt;
            ELSE
                UPDATE messages m SET status = 1 /* MessageStatus.INFLIGHT */, attempt = m.attempt + 1 WHERE m.actor_id = p_actor AND m.id = r.id;
                kind := 1 /* ReceiveRow.DELIVERED */;
                attempt := r.attempt + 1;
                n := n + 1;
            END IF;
            INSERT INTO queue_taken AS t (actor_id, queue, taken) VALUES (p_actor, r.queue, 1)
            ON CONFLICT (actor_id, queue) DO UPDATE SET taken = t.taken + 1;
            RETURN NEXT;
            EXIT WHEN n >= p_count;
        END LOOP;
    END IF;
    IF n = 0 THEN
        kind := 3 /* ReceiveRow.NOTHING */;
        id := NULL; queue := NULL; body := NULL; attempt := NULL; created_at := NULL; error := NULL;
        traceparent := NULL;
        SELECT min(m.available_at) INTO available_at FROM messages m
        WHERE m.actor_id = p_actor AND m.status = 0 /* MessageStatus.PENDING */ AND m.available_at > p_now;
        RETURN NEXT;
    END IF;
END $$;

-- receive_msgs for several actors: rows carry ``ord``, the 1-based index of the call they answer.
-- Acknowledged ids of all calls are one flat array (``p_ack_counts[i]`` of them belong to call i);
-- each call's queue filter is a JSON array of names, or NULL for every queue.
CREATE FUNCTION receive_many(
    p_actors TEXT[], p_node TEXT, p_epochs BIGINT[], p_acks BIGINT[], p_ack_counts INT[],
    p_states TEXT[], p_counts INT[], p_queues TEXT[], p_now DOUBLE PRECISION[], p_max_attempts INT[],
    p_channel TEXT)
RETURNS TABLE (ord INT, kind SMALLINT, id BIGINT, queue TEXT, body TEXT, attempt INT,
               created_at DOUBLE PRECISION, available_at DOUBLE PRECISION, error TEXT, traceparent TEXT)
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    off INT := 0;
    acks BIGINT[];
    qs TEXT[];
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_actors, 1), 0) LOOP
        acks := NULL;
        IF p_ack_counts[i] > 0 THEN
            acks := p_acks[off + 1 : off + p_ack_counts[i]];
            off := off + p_ack_counts[i];
        END IF;
        qs := NULL;
        IF p_queues[i] IS NOT NULL THEN
            qs := ARRAY(SELECT json_array_elements_text(p_queues[i]::json));
        END IF;
        RETURN QUERY
            SELECT i, r.kind, r.id, r.queue, r.body, r.attempt, r.created_at, r.available_at, r.error,
                   r.traceparent
            FROM receive_msgs(p_actors[i], p_node, p_epochs[i], acks, p_states[i], p_counts[i], qs,
                              p_now[i], p_max_attempts[i], p_channel) r;
    END LOOP;
END $$;

-- one completion: a CompleteCode
CREATE FUNCTION complete_msg(
    p_actor TEXT, p_node TEXT, p_epoch BIGINT, p_id BIGINT, p_now DOUBLE PRECISION, p_response TEXT,
    p_state TEXT, p_channel TEXT)
RETURNS SMALLINT
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    w BOOLEAN;
    e BIGINT;
BEGIN
    IF p_node IS NOT NULL THEN
        SELECT l.epoch INTO e FROM leases l WHERE l.actor_id = p_actor AND l.node_id = p_node FOR KEY SHARE;
        IF e IS DISTINCT FROM p_epoch THEN
            RETURN 9 /* CompleteCode.LEASE_LOST */;
        END IF;
    END IF;
    UPDATE messages m SET status = 2 /* MessageStatus.COMPLETED */, completed_at = p_now, response = p_response
    WHERE m.actor_id = p_actor AND m.id = p_id AND m.status = 1 /* MessageStatus.INFLIGHT */ RETURNING m.watched INTO w;
    IF NOT FOUND THEN
        RETURN 0 /* CompleteCode.NOT_INFLIGHT */;
    END IF;
    IF w AND p_channel IS NOT NULL THEN
        PERFORM pg_notify(p_channel, 'd:' || p_actor || ':' || p_id);
    END IF;
    IF p_state IS NOT NULL THEN
        UPDATE actors SET state = p_state WHERE actor_id = p_actor;
    END IF;
    RETURN 1 /* CompleteCode.COMPLETED */;
END $$;

-- complete_msg for several calls: rows carry ``ord``, the 1-based index of the call they answer
CREATE FUNCTION complete_many(
    p_actors TEXT[], p_node TEXT, p_epochs BIGINT[], p_ids BIGINT[], p_now DOUBLE PRECISION[],
    p_responses TEXT[], p_states TEXT[], p_channel TEXT)
RETURNS TABLE (ord INT, outcome SMALLINT)
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_actors, 1), 0) LOOP
        ord := i;
        outcome := complete_msg(p_actors[i], p_node, p_epochs[i], p_ids[i], p_now[i], p_responses[i],
                                p_states[i], p_channel);
        RETURN NEXT;
    END LOOP;
END $$;
