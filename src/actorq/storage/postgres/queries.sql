-- Named queries of the PostgreSQL driver ($n parameters, asyncpg).

-- name: find_actor
SELECT actor_id, name, key, state, created_at FROM actors WHERE name = $1 AND key = $2;

-- name: insert_actor
INSERT INTO actors (actor_id, name, key, state, created_at) VALUES ($1, $2, $3, NULL, $4)
ON CONFLICT (name, key) DO NOTHING
RETURNING actor_id, name, key, state, created_at;

-- name: load_actor
SELECT actor_id, name, key, state, created_at FROM actors WHERE actor_id = $1;

-- name: list_actors
SELECT actor_id, name, key, state, created_at FROM actors
WHERE ($1::text IS NULL OR name = $1) AND ($2::text IS NULL OR actor_id > $2)
ORDER BY actor_id LIMIT $3;

-- name: save_state
UPDATE actors SET state = $2 WHERE actor_id = $1;

-- name: lock_actor
SELECT next_seq FROM actors WHERE actor_id = $1 FOR UPDATE;

-- name: find_idempotent
SELECT id, created_at FROM messages WHERE actor_id = $1 AND idempotency_key = $2;

-- name: count_pending
SELECT pending FROM queue_depths WHERE actor_id = $1 AND queue = $2;

-- name: bump_seq
UPDATE actors SET next_seq = next_seq + 1 WHERE actor_id = $1;

-- name: insert_message
INSERT INTO messages (actor_id, id, queue, body, status, attempt, created_at, available_at, idempotency_key)
VALUES ($1, $2, $3, $4, 0, 0, $5, $6, $7);

-- name: add_depth
INSERT INTO queue_depths (actor_id, queue, pending) VALUES ($1, $2, $3)
ON CONFLICT (actor_id, queue) DO UPDATE SET pending = queue_depths.pending + excluded.pending;

-- name: ack
UPDATE messages SET status = 2, completed_at = $3 WHERE actor_id = $1 AND id = $2 AND status = 1;

-- name: ready
SELECT actor_id, id, queue, body, status, attempt, created_at, available_at, completed_at, response, error
FROM messages WHERE actor_id = $1 AND status = 0 AND available_at <= $2
ORDER BY id;

-- name: deliver
UPDATE messages SET status = 1, attempt = attempt + 1 WHERE actor_id = $1 AND id = $2;

-- name: kill
UPDATE messages SET status = 3, completed_at = $3, error = coalesce(error, 'exceeded max_attempts')
WHERE actor_id = $1 AND id = $2;

-- name: next_delayed
SELECT min(available_at) FROM messages WHERE actor_id = $1 AND status = 0 AND available_at > $2;

-- name: complete
UPDATE messages SET status = 2, completed_at = $3, response = $4 WHERE actor_id = $1 AND id = $2 AND status = 1;

-- name: release
UPDATE messages SET status = 0, error = $3 WHERE actor_id = $1 AND id = $2 AND status = 1;

-- name: get_message
SELECT actor_id, id, queue, body, status, attempt, created_at, available_at, completed_at, response, error
FROM messages WHERE actor_id = $1 AND id = $2;

-- name: list_messages
SELECT actor_id, id, queue, body, status, attempt, created_at, available_at, completed_at, response, error
FROM messages WHERE actor_id = $1 AND status = $2 AND ($4::text IS NULL OR queue = $4)
ORDER BY id LIMIT $3;

-- name: has_ready
SELECT EXISTS (SELECT 1 FROM messages WHERE actor_id = $1 AND status = 0 AND available_at <= $2);

-- name: queue_stats
SELECT queue,
       count(*) FILTER (WHERE status = 0 AND available_at <= $2),
       count(*) FILTER (WHERE status = 0 AND available_at > $2),
       count(*) FILTER (WHERE status = 1), count(*) FILTER (WHERE status = 2), count(*) FILTER (WHERE status = 3)
FROM messages WHERE actor_id = $1 GROUP BY queue ORDER BY queue;

-- name: retry_dead
UPDATE messages SET status = 0, attempt = 0, error = NULL, completed_at = NULL, available_at = $3
WHERE actor_id = $1 AND id = $2 AND status = 3 RETURNING queue;

-- name: delete_dead
DELETE FROM messages WHERE actor_id = $1 AND id = $2 AND status = 3;

-- name: recover
UPDATE messages SET status = 0 WHERE status = 1;

-- name: clear_depths
DELETE FROM queue_depths;

-- name: recount_depths
INSERT INTO queue_depths (actor_id, queue, pending)
SELECT actor_id, queue, count(*) FROM messages WHERE status = 0 GROUP BY actor_id, queue;

-- name: actors_with_work
SELECT DISTINCT actor_id FROM messages WHERE status = 0 ORDER BY actor_id;

-- name: purge_completed
DELETE FROM messages WHERE status = 2 AND completed_at < $1;

-- name: add_schedule
INSERT INTO schedules (actor_id, run_at, action, args) VALUES ($1, $2, $3, $4) RETURNING id;

-- name: due_schedules
SELECT id, actor_id, run_at, action, args, attempt FROM schedules WHERE run_at <= $1 ORDER BY run_at, id LIMIT $2;

-- name: next_schedule_at
SELECT min(run_at) FROM schedules;

-- name: delete_schedule
DELETE FROM schedules WHERE id = $1;

-- name: retry_schedule
UPDATE schedules SET run_at = $2, attempt = attempt + 1 WHERE id = $1;
