-- Named queries of the SQLite driver. `-- name: x` starts query x; parameters are named (:p).
-- The tables are in schema.sql; a status literal names its MessageStatus member (3 /* MessageStatus.DEAD */).

-- name: find_actor
SELECT actor_id, name, key, state, created_at, state_version FROM actors WHERE name = :name AND key = :key;

-- name: insert_actor
INSERT INTO actors (actor_id, name, key, state, created_at) VALUES (:actor_id, :name, :key, NULL, :now);

-- name: load_actor
SELECT actor_id, name, key, state, created_at, state_version FROM actors WHERE actor_id = :actor_id;

-- name: list_actors
SELECT actor_id, name, key, state, created_at, state_version FROM actors
WHERE (:name IS NULL OR name = :name) AND (:after IS NULL OR actor_id > :after)
ORDER BY actor_id LIMIT :limit;

-- name: save_state
UPDATE actors SET state = :state WHERE actor_id = :actor_id;

-- name: save_state_version
UPDATE actors SET state = :state, state_version = :version WHERE actor_id = :actor_id;

-- name: find_idempotent
SELECT id, created_at FROM messages WHERE actor_id = :actor_id AND idempotency_key = :key;

-- name: count_pending
SELECT pending FROM queue_depths WHERE actor_id = :actor_id AND queue = :queue;

-- name: add_depth
INSERT INTO queue_depths (actor_id, queue, pending) VALUES (:actor_id, :queue, :n)
ON CONFLICT (actor_id, queue) DO UPDATE SET pending = pending + excluded.pending;

-- name: clear_depths
DELETE FROM queue_depths;

-- name: recount_depths
INSERT INTO queue_depths (actor_id, queue, pending)
SELECT actor_id, queue, count(*) FROM messages WHERE status = 0 /* MessageStatus.PENDING */ GROUP BY actor_id, queue;

-- name: take_seq
UPDATE actors SET next_seq = next_seq + 1 WHERE actor_id = :actor_id RETURNING next_seq - 1;

-- name: insert_message
INSERT INTO messages (actor_id, id, queue, body, status, attempt, created_at, available_at, idempotency_key,
                      traceparent)
VALUES (:actor_id, :id, :queue, :body, 0 /* MessageStatus.PENDING */, 0, :now, :available_at, :key, :traceparent);

-- name: ack
UPDATE messages SET status = 2 /* MessageStatus.COMPLETED */, completed_at = :now
WHERE actor_id = :actor_id AND id = :id AND status = 1 /* MessageStatus.INFLIGHT */;

-- name: ready
SELECT actor_id, id, queue, body, status, attempt, created_at, available_at, completed_at, response, error, traceparent
FROM messages INDEXED BY messages_by_status
WHERE actor_id = :actor_id AND status = 0 /* MessageStatus.PENDING */ AND available_at <= :now
ORDER BY id LIMIT :limit;

-- name: deliver
UPDATE messages SET status = 1 /* MessageStatus.INFLIGHT */, attempt = attempt + 1 WHERE actor_id = :actor_id AND id = :id;

-- name: kill
UPDATE messages SET status = 3 /* MessageStatus.DEAD */, completed_at = :now,
    error = coalesce(error, 'exceeded max_attempts')
WHERE actor_id = :actor_id AND id = :id;

-- name: next_delayed
SELECT min(available_at) FROM messages INDEXED BY messages_by_status
WHERE actor_id = :actor_id AND status = 0 /* MessageStatus.PENDING */ AND available_at > :now;

-- name: complete
UPDATE messages SET status = 2 /* MessageStatus.COMPLETED */, completed_at = :now, response = :response
WHERE actor_id = :actor_id AND id = :id AND status = 1 /* MessageStatus.INFLIGHT */;

-- name: release
UPDATE messages SET status = 0 /* MessageStatus.PENDING */, error = :error WHERE actor_id = :actor_id AND id = :id AND status = 1 /* MessageStatus.INFLIGHT */;

-- name: get_message
SELECT actor_id, id, queue, body, status, attempt, created_at, available_at, completed_at, response, error, traceparent
FROM messages WHERE actor_id = :actor_id AND id = :id;

-- name: list_messages
SELECT actor_id, id, queue, body, status, attempt, created_at, available_at, completed_at, response, error, traceparent
FROM messages WHERE actor_id = :actor_id AND status = :status AND (:queue IS NULL OR queue = :queue)
ORDER BY id LIMIT :limit;

-- name: has_ready
SELECT EXISTS (SELECT 1 FROM messages INDEXED BY messages_by_status
               WHERE actor_id = :actor_id AND status = 0 /* MessageStatus.PENDING */ AND available_at <= :now);

-- name: queue_stats
SELECT queue,
       sum(status = 0 /* MessageStatus.PENDING */ AND available_at <= :now),
       sum(status = 0 /* MessageStatus.PENDING */ AND available_at > :now),
       sum(status = 1 /* MessageStatus.INFLIGHT */), sum(status = 2 /* MessageStatus.COMPLETED */),
       sum(status = 3 /* MessageStatus.DEAD */)
FROM messages WHERE actor_id = :actor_id GROUP BY queue ORDER BY queue;

-- name: queue_depths
SELECT a.name, m.queue,
       sum(m.status = 0 /* MessageStatus.PENDING */ AND m.available_at <= :now),
       sum(m.status = 0 /* MessageStatus.PENDING */ AND m.available_at > :now),
       sum(m.status = 1 /* MessageStatus.INFLIGHT */), sum(m.status = 3 /* MessageStatus.DEAD */)
FROM messages m JOIN actors a ON a.actor_id = m.actor_id
WHERE m.status IN (0 /* MessageStatus.PENDING */, 1 /* MessageStatus.INFLIGHT */, 3 /* MessageStatus.DEAD */)
GROUP BY a.name, m.queue ORDER BY a.name, m.queue;

-- name: retry_dead
UPDATE messages SET status = 0 /* MessageStatus.PENDING */, attempt = 0, error = NULL, completed_at = NULL, available_at = :now
WHERE actor_id = :actor_id AND id = :id AND status = 3 /* MessageStatus.DEAD */;

-- name: delete_dead
DELETE FROM messages WHERE actor_id = :actor_id AND id = :id AND status = 3 /* MessageStatus.DEAD */;

-- name: recover
UPDATE messages SET status = 0 /* MessageStatus.PENDING */ WHERE status = 1 /* MessageStatus.INFLIGHT */;

-- name: actors_with_work
SELECT DISTINCT actor_id FROM messages WHERE status = 0 /* MessageStatus.PENDING */;

-- name: purge_completed
DELETE FROM messages WHERE status = 2 /* MessageStatus.COMPLETED */ AND completed_at < :before;

-- name: add_schedule
INSERT INTO schedules (actor_id, run_at, action, args) VALUES (:actor_id, :run_at, :action, :args) RETURNING id;

-- name: due_schedules
SELECT id, actor_id, run_at, action, args, attempt FROM schedules WHERE run_at <= :now ORDER BY run_at, id LIMIT :limit;

-- name: next_schedule_at
SELECT min(run_at) FROM schedules;

-- name: delete_schedule
DELETE FROM schedules WHERE id = :id;

-- name: retry_schedule
UPDATE schedules SET run_at = :run_at, attempt = attempt + 1 WHERE id = :id;
