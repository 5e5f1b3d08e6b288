-- siptraced: table sip_trace, version 4, PARTITIONED BY DAY (RANGE on
-- time_stamp): the same columns, defaults and indexes as
-- siptrace-create.sql, plus the Kamailio `version` table and its rows.
-- With it, retention (modparam siptrace retention) drops whole day
-- partitions instead of deleting rows, and creates today's and tomorrow's
-- ahead of time. Day partitions are named sip_trace_pYYYYMMDD (the daemon
-- only ever drops names of that form). The DEFAULT partition takes rows of
-- a day without its partition, so an insert never fails for want of one;
-- retention deletes its old rows in batches like a plain table's.
-- The primary key must include the partition key: (id, time_stamp).
-- For a new database (PostgreSQL >= 11); an existing plain sip_trace is not
-- converted (rename it, run this, then INSERT … SELECT the rows you keep).
-- Idempotent: running it again changes nothing.

CREATE TABLE IF NOT EXISTS version (
    id SERIAL PRIMARY KEY NOT NULL,
    table_name VARCHAR(32) NOT NULL,
    table_version INTEGER DEFAULT 0 NOT NULL,
    CONSTRAINT version_table_name_idx UNIQUE (table_name)
);

INSERT INTO version (table_name, table_version)
    SELECT 'version', 1
    WHERE NOT EXISTS (SELECT 1 FROM version WHERE table_name = 'version');

CREATE TABLE IF NOT EXISTS sip_trace (
    id SERIAL NOT NULL,
    time_stamp TIMESTAMP WITHOUT TIME ZONE DEFAULT '2000-01-01 00:00:01' NOT NULL,
    time_us INTEGER DEFAULT 0 NOT NULL,
    callid VARCHAR(255) DEFAULT '' NOT NULL,
    traced_user VARCHAR(255) DEFAULT '' NOT NULL,
    msg TEXT NOT NULL,
    method VARCHAR(50) DEFAULT '' NOT NULL,
    status VARCHAR(255) DEFAULT '' NOT NULL,
    fromip VARCHAR(64) DEFAULT '' NOT NULL,
    toip VARCHAR(64) DEFAULT '' NOT NULL,
    fromtag VARCHAR(128) DEFAULT '' NOT NULL,
    totag VARCHAR(128) DEFAULT '' NOT NULL,
    direction VARCHAR(4) DEFAULT '' NOT NULL,
    PRIMARY KEY (id, time_stamp)
) PARTITION BY RANGE (time_stamp);

-- Indexes on the parent are created on every partition, present and future.
CREATE INDEX IF NOT EXISTS sip_trace_traced_user_idx ON sip_trace (traced_user);
CREATE INDEX IF NOT EXISTS sip_trace_date_idx ON sip_trace (time_stamp);
CREATE INDEX IF NOT EXISTS sip_trace_fromip_idx ON sip_trace (fromip);
CREATE INDEX IF NOT EXISTS sip_trace_callid_idx ON sip_trace (callid);

-- The safety net: rows of a day without partition land here.
CREATE TABLE IF NOT EXISTS sip_trace_default PARTITION OF sip_trace DEFAULT;

-- Today's and tomorrow's partitions (the daemon keeps creating them ahead).
DO $$
DECLARE
    d DATE;
BEGIN
    FOREACH d IN ARRAY ARRAY[localtimestamp::date, localtimestamp::date + 1] LOOP
        EXECUTE format(
            'CREATE TABLE IF NOT EXISTS %I PARTITION OF sip_trace FOR VALUES FROM (%L) TO (%L)',
            'sip_trace_p' || to_char(d, 'YYYYMMDD'), d, d + 1);
    END LOOP;
END
$$;

INSERT INTO version (table_name, table_version)
    SELECT 'sip_trace', 4
    WHERE NOT EXISTS (SELECT 1 FROM version WHERE table_name = 'sip_trace');

-- Spool replay bookkeeping (siptraced-spool-marker.sql).
CREATE TABLE IF NOT EXISTS siptraced_spool_marker (
    spool_id VARCHAR(64) PRIMARY KEY NOT NULL,
    last_seq BIGINT DEFAULT 0 NOT NULL
);
