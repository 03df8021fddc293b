-- actorq PostgreSQL schema, version 6: completions in batches too (group commit, batched.py).
-- complete_msg for several calls in one statement; rows carry ``ord``, the 1-based index of the
-- call they answer (1 completed, 0 not in flight, 9 lease lost). The driver sorts calls by actor
-- id (stable), as for sends and receives, so concurrent batches lock rows in one order.
CREATE OR REPLACE FUNCTION complete_many(
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
