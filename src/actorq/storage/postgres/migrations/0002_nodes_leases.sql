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

-- (the claim scan, "actors with pending or in-flight messages", uses messages_active (status, ...))

-- The hot paths as server-side functions: one round trip per send / receive / completion instead
-- of one per statement. ``p_node``/``p_epoch`` fence the owner writes (NULL node: no cluster);
-- ``p_channel`` (NULL: no NOTIFY) is the node's LISTEN channel.

-- status: 0 stored, 1 duplicate (id of the existing message), 2 queue full (o_pending), 3 no actor
CREATE OR REPLACE FUNCTION send_one(
    p_actor TEXT, p_queue TEXT, p_body TEXT, p_now DOUBLE PRECISION, p_available DOUBLE PRECISION,
    p_key TEXT, p_max BIGINT, p_channel TEXT,
    OUT o_status SMALLINT, OUT o_id BIGINT, OUT o_created DOUBLE PRECISION, OUT o_pending BIGINT)
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    seq BIGINT;
BEGIN
    SELECT next_seq INTO seq FROM actors WHERE actor_id = p_actor FOR UPDATE;
    IF NOT FOUND THEN
        o_status := 3;
        RETURN;
    END IF;
    IF p_key IS NOT NULL THEN
        SELECT id, created_at INTO o_id, o_created FROM messages
        WHERE actor_id = p_actor AND idempotency_key = p_key;
        IF FOUND THEN
            o_status := 1;
            RETURN;
        END IF;
    END IF;
    SELECT pending INTO o_pending FROM queue_depths WHERE actor_id = p_actor AND queue = p_queue;
    o_pending := coalesce(o_pending, 0);
    IF o_pending >= p_max THEN
        o_status := 2;
        RETURN;
    END IF;
    UPDATE actors SET next_seq = next_seq + 1 WHERE actor_id = p_actor;
    INSERT INTO messages (actor_id, id, queue, body, status, attempt, created_at, available_at, idempotency_key)
    VALUES (p_actor, seq, p_queue, p_body, 0, 0, p_now, p_available, p_key);
    INSERT INTO queue_depths (actor_id, queue, pending) VALUES (p_actor, p_queue, 1)
    ON CONFLICT (actor_id, queue) DO UPDATE SET pending = queue_depths.pending + 1;
    IF p_channel IS NOT NULL THEN
        PERFORM pg_notify(p_channel, 'm:' || p_actor);
    END IF;
    o_status := 0;
    o_id := seq;
    o_created := p_now;
END $$;

-- rows: kind 0 acknowledged (id), 1 delivered (message, attempt already + 1), 2 dead-lettered,
-- 3 nothing delivered (available_at: the earliest delayed message), 9 lease lost (nothing written)
CREATE OR REPLACE FUNCTION receive_msgs(
    p_actor TEXT, p_node TEXT, p_epoch BIGINT, p_acks BIGINT[], p_state TEXT, p_count INT,
    p_queues TEXT[], p_now DOUBLE PRECISION, p_max_attempts INT, p_channel TEXT)
RETURNS TABLE (kind SMALLINT, id BIGINT, queue TEXT, body TEXT, attempt INT, created_at DOUBLE PRECISION,
               available_at DOUBLE PRECISION, error TEXT)
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
            kind := 9;
            RETURN NEXT;
            RETURN;
        END IF;
    END IF;
    IF p_acks IS NOT NULL THEN
        FOREACH a IN ARRAY p_acks LOOP
            UPDATE messages m SET status = 2, completed_at = p_now
            WHERE m.actor_id = p_actor AND m.id = a AND m.status = 1 RETURNING m.watched INTO w;
            IF FOUND THEN
                kind := 0;
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
            SELECT m.id, m.queue, m.body, m.attempt, m.created_at, m.available_at, m.error FROM messages m
            WHERE m.actor_id = p_actor AND m.status = 0 AND m.available_at <= p_now
              AND (p_queues IS NULL OR m.queue = ANY (p_queues))
            ORDER BY m.id
        LOOP
            kind := NULL;
            id := r.id; queue := r.queue; body := r.body; created_at := r.created_at;
            available_at := r.available_at; error := r.error;
            IF r.attempt >= p_max_attempts THEN
                UPDATE messages m SET status = 3, completed_at = p_now,
                    error = coalesce(m.error, 'exceeded max_attempts')
                WHERE m.actor_id = p_actor AND m.id = r.id RETURNING m.watched INTO w;
                IF w AND p_channel IS NOT NULL THEN
                    PERFORM pg_notify(p_channel, 'd:' || p_actor || ':' || r.id);
                END IF;
                kind := 2;
                attempt := r.attempt;
            ELSE
                UPDATE messages m SET status = 1, attempt = m.attempt + 1 WHERE m.actor_id = p_actor AND m.id = r.id;
                kind := 1;
                attempt := r.attempt + 1;
                n := n + 1;
            END IF;
            UPDATE queue_depths d SET pending = d.pending - 1 WHERE d.actor_id = p_actor AND d.queue = r.queue;
            RETURN NEXT;
            EXIT WHEN n >= p_count;
        END LOOP;
    END IF;
    IF n = 0 THEN
        kind := 3;
        id := NULL; queue := NULL; body := NULL; attempt := NULL; created_at := NULL; error := NULL;
        SELECT min(m.available_at) INTO available_at FROM messages m
        WHERE m.actor_id = p_actor AND m.status = 0 AND m.available_at > p_now;
        RETURN NEXT;
    END IF;
END $$;

-- 1 completed, 0 not in flight, 9 lease lost (nothing written)
CREATE OR REPLACE FUNCTION complete_msg(
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
            RETURN 9;
        END IF;
    END IF;
    UPDATE messages m SET status = 2, completed_at = p_now, response = p_response
    WHERE m.actor_id = p_actor AND m.id = p_id AND m.status = 1 RETURNING m.watched INTO w;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    IF w AND p_channel IS NOT NULL THEN
        PERFORM pg_notify(p_channel, 'd:' || p_actor || ':' || p_id);
    END IF;
    IF p_state IS NOT NULL THEN
        UPDATE actors SET state = p_state WHERE actor_id = p_actor;
    END IF;
    RETURN 1;
END $$;
