-- actorq SQLite schema, version 3: an actor's state records the state_version of the code that
-- saved it, so a later deploy knows which migrate_state step it needs (states saved before this
-- column existed are version 1, the version of code that declares none).
ALTER TABLE actors ADD COLUMN state_version INTEGER NOT NULL DEFAULT 1;
