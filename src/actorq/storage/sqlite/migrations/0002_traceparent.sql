-- actorq SQLite schema, version 2: a message keeps the W3C trace context of its send, so the
-- handler's span joins the sender's trace even after a restart (NULL: the send was not traced).
ALTER TABLE messages ADD COLUMN traceparent TEXT;
