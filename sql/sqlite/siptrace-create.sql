-- siptraced: table sip_trace, version 4 (Kamailio 5 columns, types,
-- defaults and indexes), plus the Kamailio `version` table and its rows.
-- Idempotent: running it again on an initialised database changes nothing.
-- siptraced applies this file itself to a new, empty SQLite file.
-- time_stamp holds local time as text 'YYYY-MM-DD HH:MM:SS' (not Kamailio
-- 5's Julian REAL); msg holds the message bytes exactly, as TEXT.

CREATE TABLE IF NOT EXISTS version (
    id INTEGER PRIMARY KEY NOT NULL,
    table_name VARCHAR(32) NOT NULL,
    table_version INTEGER DEFAULT 0 NOT NULL,
    CONSTRAINT version_table_name_idx UNIQUE (table_name)
);

INSERT INTO version (table_name, table_version)
    SELECT 'version', 1
    WHERE NOT EXISTS (SELECT 1 FROM version WHERE table_name = 'version');

CREATE TABLE IF NOT EXISTS sip_trace (
    id INTEGER PRIMARY KEY NOT NULL,
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
    direction VARCHAR(4) DEFAULT '' NOT NULL
);

CREATE INDEX IF NOT EXISTS sip_trace_traced_user_idx ON sip_trace (traced_user);
CREATE INDEX IF NOT EXISTS sip_trace_date_idx ON sip_trace (time_stamp);
CREATE INDEX IF NOT EXISTS sip_trace_fromip_idx ON sip_trace (fromip);
CREATE INDEX IF NOT EXISTS sip_trace_callid_idx ON sip_trace (callid);

INSERT INTO version (table_name, table_version)
    SELECT 'sip_trace', 4
    WHERE NOT EXISTS (SELECT 1 FROM version WHERE table_name = 'sip_trace');

-- Spool replay bookkeeping (siptraced-spool-marker.sql).
CREATE TABLE IF NOT EXISTS siptraced_spool_marker (
    spool_id VARCHAR(64) PRIMARY KEY NOT NULL,
    last_seq BIGINT DEFAULT 0 NOT NULL
);
