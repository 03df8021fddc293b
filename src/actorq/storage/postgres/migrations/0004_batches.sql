-- actorq PostgreSQL schema, version 4: the hot paths for many calls at once (the driver's group
-- commit, batched.py): one statement, one round trip and one commit for many sends or many
-- receives, of any number of actors. Items run in the order given; the driver sorts them by
-- actor id (stable) so that concurrent batches lock actor rows in one order and cannot deadlock.

CREATE OR REPLACE FUNCTION send_many(
    p_actors TEXT[], p_queues TEXT[], p_bodies TEXT[], p_now DOUBLE PRECISION[],
    p_available DOUBLE PRECISION[], p_keys TEXT[], p_max BIGINT[], p_channels TEXT[])
RETURNS TABLE (o_status SMALLINT, o_id BIGINT, o_created DOUBLE PRECISION, o_pending BIGINT)
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_actors, 1), 0) LOOP
        SELECT s.o_status, s.o_id, s.o_created, s.o_pending INTO o_status, o_id, o_created, o_pending
        FROM send_one(p_actors[i], p_queues[i], p_bodies[i], p_now[i], p_available[i], p_keys[i],
                      p_max[i], p_channels[i]) s;
        RETURN NEXT;
    END LOOP;
END $$;

-- receive_msgs for several actors: rows carry ``ord``, the 1-based index of the call they answer.
-- Acknowledged ids of all calls are one flat array (``p_ack_counts[i]`` of them belong to call i);
-- each call's queue filter is a JSON array of names, or NULL for every queue.
CREATE OR REPLACE FUNCTION receive_many(
    p_actors TEXT[], p_node TEXT, p_epochs BIGINT[], p_acks BIGINT[], p_ack_counts INT[],
    p_states TEXT[], p_counts INT[], p_queues TEXT[], p_now DOUBLE PRECISION[], p_max_attempts INT[],
    p_channel TEXT)
RETURNS TABLE (ord INT, kind SMALLINT, id BIGINT, queue TEXT, body TEXT, attempt INT,
               created_at DOUBLE PRECISION, available_at DOUBLE PRECISION, error TEXT)
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
            SELECT i, r.kind, r.id, r.queue, r.body, r.attempt, r.created_at, r.available_at, r.error
            FROM receive_msgs(p_actors[i], p_node, p_epochs[i], acks, p_states[i], p_counts[i], qs,
                              p_now[i], p_max_attempts[i], p_channel) r;
    END LOOP;
END $$;
