-- Named queries of the PostgreSQL driver ($n parameters, asyncpg).
-- The tables and functions are in schema.sql; a status literal names its MessageStatus member.

-- name: find_actor
SELECT actor_id, name, key, state, created_at, state_version FROM actors WHERE name = $1 AND key = $2;

-- name: insert_actor
INSERT INTO actors (actor_id, name, key, state, created_at) VALUES ($1, $2, $3, NULL, $4)
ON CONFLICT (name, key) DO NOTHING
RETURNING actor_id, name, key, state, created_at, state_version;

-- name: load_actor
SELECT actor_id, name, key, state, created_at, state_version FROM actors WHERE actor_id = $1;

-- name: list_actors
SELECT actor_id, name, key, state, created_at, state_version FROM actors
WHERE ($1::text IS NULL OR name = $1) AND ($2::text IS NULL OR actor_id > $2)
ORDER BY actor_id LIMIT $3;

-- name: save_state
UPDATE actors SET state = $2 WHERE actor_id = $1;

-- name: save_state_version
UPDATE actors SET state = $2, state_version = $3 WHERE actor_id = $1;

-- name: add_depth
INSERT INTO queue_depths (actor_id, queue, pending) VALUES ($1, $2, $3)
ON CONFLICT (actor_id, queue) DO UPDATE SET pending = queue_depths.pending + excluded.pending;

-- name: kill
UPDATE messages SET status = 3 /* MessageStatus.DEAD */, completed_at = $3, error = coalesce(error, 'exceeded max_attempts')
WHERE actor_id = $1 AND id = $2
RETURNING watched;

-- name: next_delayed
SELECT min(available_at) FROM messages WHERE actor_id = $1 AND status = 0 /* MessageStatus.PENDING */ AND available_at > $2;

-- name: release
UPDATE messages SET status = 0 /* MessageStatus.PENDING */, error = $3 WHERE actor_id = $1 AND id = $2 AND status = 1 /* MessageStatus.INFLIGHT */;

-- name: get_message
SELECT actor_id, id, queue, body, status, attempt, created_at, available_at, completed_at, response, error, traceparent
FROM messages WHERE actor_id = $1 AND id = $2;

-- name: list_messages
SELECT actor_id, id, queue, body, status, attempt, created_at, available_at, completed_at, response, error, traceparent
FROM messages WHERE actor_id = $1 AND status = $2 AND ($4::text IS NULL OR queue = $4)
ORDER BY id LIMIT $3;

-- name: has_ready
SELECT EXISTS (SELECT 1 FROM messages WHERE actor_id = $1 AND status = 0 /* MessageStatus.PENDING */ AND available_at <= $2);

-- name: queue_stats
SELECT queue,
       count(*) FILTER (WHERE status = 0 /* MessageStatus.PENDING */ AND available_at <= $2),
       count(*) FILTER (WHERE status = 0 /* MessageStatus.PENDING */ AND available_at > $2),
       count(*) FILTER (WHERE status = 1 /* MessageStatus.INFLIGHT */),
       count(*) FILTER (WHERE status = 2 /* MessageStatus.COMPLETED */),
       count(*) FILTER (WHERE status = 3 /* MessageStatus.DEAD */)
FROM messages WHERE actor_id = $1 GROUP BY queue ORDER BY queue;

-- name: queue_depths
SELECT a.name, m.queue,
       count(*) FILTER (WHERE m.status = 0 /* MessageStatus.PENDING */ AND m.available_at <= $1),
       count(*) FILTER (WHERE m.status = 0 /* MessageStatus.PENDING */ AND m.available_at > $1),
       count(*) FILTER (WHERE m.status = 1 /* MessageStatus.INFLIGHT */),
       count(*) FILTER (WHERE m.status = 3 /* MessageStatus.DEAD */)
FROM messages m JOIN actors a ON a.actor_id = m.actor_id
WHERE m.status IN (0 /* MessageStatus.PENDING */, 1 /* MessageStatus.INFLIGHT */, 3 /* MessageStatus.DEAD */)
GROUP BY a.name, m.queue ORDER BY a.name, m.queue;

-- name: retry_dead
UPDATE messages SET status = 0 /* MessageStatus.PENDING */, attempt = 0, error = NULL, completed_at = NULL, available_at = $3
WHERE actor_id = $1 AND id = $2 AND status = 3 /* MessageStatus.DEAD */ RETURNING queue;

-- name: delete_dead
DELETE FROM messages WHERE actor_id = $1 AND id = $2 AND status = 3 /* MessageStatus.DEAD */;

-- name: recover
UPDATE messages SET status = 0 /* MessageStatus.PENDING */ WHERE status = 1 /* MessageStatus.INFLIGHT */;

-- name: clear_depths
DELETE FROM queue_depths;
DELETE FROM queue_taken;

-- name: recount_depths
INSERT INTO queue_depths (actor_id, queue, pending)
SELECT actor_id, queue, count(*) FROM messages WHERE status = 0 /* MessageStatus.PENDING */ GROUP BY actor_id, queue;

-- name: actors_with_work
SELECT DISTINCT actor_id FROM messages WHERE status = 0 /* MessageStatus.PENDING */ ORDER BY actor_id;

-- name: purge_completed
DELETE FROM messages WHERE status = 2 /* MessageStatus.COMPLETED */ AND completed_at < $1;

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

-- Nodes and leases (several nodes sharing one database). Lease times use the database clock.

-- name: register_node
INSERT INTO nodes (node_id, address, started_at, heartbeat_at)
VALUES ($1, $2, extract(epoch from clock_timestamp()), extract(epoch from clock_timestamp()));

-- name: forget_old_nodes
DELETE FROM nodes WHERE heartbeat_at < extract(epoch from clock_timestamp()) - $1;

-- name: heartbeat
UPDATE nodes SET heartbeat_at = extract(epoch from clock_timestamp()) WHERE node_id = $1;

-- name: list_nodes
SELECT node_id, address, started_at, heartbeat_at FROM nodes ORDER BY started_at, node_id;

-- name: node_actors
SELECT node_id, actor_id, held FROM (
    SELECT node_id, actor_id, count(*) OVER (PARTITION BY node_id) AS held,
           row_number() OVER (PARTITION BY node_id ORDER BY actor_id) AS n
    FROM leases WHERE node_id IS NOT NULL AND expires_at > extract(epoch from clock_timestamp())
) AS live WHERE n <= $1 ORDER BY node_id, actor_id;

-- name: deregister_node
DELETE FROM nodes WHERE node_id = $1;

-- name: ensure_lease
INSERT INTO leases (actor_id) VALUES ($1) ON CONFLICT (actor_id) DO NOTHING;

-- name: lock_lease
SELECT l.node_id, l.epoch, l.expires_at - extract(epoch from clock_timestamp()), n.address
FROM leases l LEFT JOIN nodes n ON n.node_id = l.node_id
WHERE l.actor_id = $1 FOR UPDATE OF l SKIP LOCKED;

-- name: peek_lease
SELECT l.node_id, l.epoch, l.expires_at - extract(epoch from clock_timestamp()), n.address
FROM leases l LEFT JOIN nodes n ON n.node_id = l.node_id
WHERE l.actor_id = $1;

-- name: take_lease
UPDATE leases SET node_id = $2, epoch = epoch + 1, expires_at = extract(epoch from clock_timestamp()) + $3
WHERE actor_id = $1 RETURNING epoch;

-- name: requeue_inflight
UPDATE messages SET status = 0 /* MessageStatus.PENDING */ WHERE actor_id = $1 AND status = 1 /* MessageStatus.INFLIGHT */ RETURNING queue;

-- name: renew_leases
UPDATE leases SET expires_at = extract(epoch from clock_timestamp()) + $2
WHERE node_id = $1 RETURNING actor_id, epoch;

-- name: release_lease
UPDATE leases SET node_id = NULL, expires_at = 0 WHERE actor_id = $1 AND node_id = $2 AND epoch = $3;

-- name: release_node_leases
UPDATE leases SET node_id = NULL, expires_at = 0 WHERE node_id = $1;

-- name: fence
SELECT epoch FROM leases WHERE actor_id = $1 AND node_id = $2 FOR KEY SHARE;

-- name: claimable
SELECT m.actor_id, l.node_id = $1 AS mine
FROM (SELECT DISTINCT actor_id FROM messages
      WHERE status IN (0 /* MessageStatus.PENDING */, 1 /* MessageStatus.INFLIGHT */) AND (status = 1 /* MessageStatus.INFLIGHT */ OR available_at <= $2)) m
LEFT JOIN leases l ON l.actor_id = m.actor_id
WHERE l.actor_id IS NULL OR l.node_id IS NULL OR l.node_id = $1
   OR l.expires_at < extract(epoch from clock_timestamp())
LIMIT $3;

-- name: watch
UPDATE messages SET watched = true WHERE actor_id = $1 AND id = $2
RETURNING actor_id, id, queue, body, status, attempt, created_at, available_at, completed_at, response, error, traceparent;

-- name: notify
SELECT pg_notify($1, $2);

-- (send_one and receive_msgs are called only by send_many and receive_many, in schema.sql)
-- name: send_many
SELECT o_status, o_id, o_created, o_pending FROM send_many($1, $2, $3, $4, $5, $6, $7, $8, $9);

-- name: receive_many
SELECT ord, kind, id, queue, body, attempt, created_at, available_at, error, traceparent
FROM receive_many($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11);

-- name: complete_many
SELECT ord, outcome FROM complete_many($1, $2, $3, $4, $5, $6, $7, $8);
