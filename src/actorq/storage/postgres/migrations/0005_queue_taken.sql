-- actorq PostgreSQL schema, version 5: a queue's pending count in two rows instead of one.
-- queue_depths.pending (what was added: sends, redeliveries) is updated by every sender, on any
-- node; receives used to decrement that same row, so each node's receives waited on the row locks
-- of other nodes' send batches (and the other way round) until they committed: the lock wait was
-- most of a send's and a receive's time in the database under load. Now the receiving owner counts
-- what it takes in queue_taken, a row only it writes; pending = queue_depths.pending - taken.

CREATE TABLE queue_taken (
    actor_id TEXT NOT NULL,
    queue    TEXT NOT NULL,
    taken    BIGINT NOT NULL,
    PRIMARY KEY (actor_id, queue)
);

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
    SELECT d.pending - coalesce(t.taken, 0) INTO o_pending
    FROM queue_depths d LEFT JOIN queue_taken t ON t.actor_id = d.actor_id AND t.queue = d.queue
    WHERE d.actor_id = p_actor AND d.queue = p_queue;
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
            INSERT INTO queue_taken AS t (actor_id, queue, taken) VALUES (p_actor, r.queue, 1)
            ON CONFLICT (actor_id, queue) DO UPDATE SET taken = t.taken + 1;
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
