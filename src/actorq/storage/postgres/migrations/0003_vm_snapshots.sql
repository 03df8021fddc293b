-- Agent VM snapshots (/home/user as tar.gz chunks) so a VM follows its actor to another node.
CREATE TABLE vm_snapshots (
    actor_id   TEXT    NOT NULL,
    seq        INTEGER NOT NULL,
    generation BIGINT  NOT NULL,
    data       BYTEA   NOT NULL,
    PRIMARY KEY (actor_id, seq)
);
