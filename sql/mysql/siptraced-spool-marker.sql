-- siptraced: bookkeeping for idempotent spool replay (see ARCHITECTURE.md,
-- "Spool"). One row per spool directory: every trace row with a sequence
-- number up to last_seq is committed. siptraced moves it in the same
-- transaction as the rows it writes, and creates this table itself when it
-- is missing and the database user may; siptrace-create.sql includes it.
-- Idempotent: running it again changes nothing.

CREATE TABLE IF NOT EXISTS siptraced_spool_marker (
    spool_id VARCHAR(64) PRIMARY KEY NOT NULL,
    last_seq BIGINT DEFAULT 0 NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=ascii;
