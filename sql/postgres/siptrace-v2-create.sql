-- siptraced test fixture: table sip_trace in the OLD version 2 layout
-- (Kamailio 1.4 - 3.1: no time_us, no totag), with the old `version` table.
-- For testing old layouts; new installations use siptrace-create.sql.

CREATE TABLE IF NOT EXISTS version (
    table_name VARCHAR(32) NOT NULL,
    table_version INTEGER DEFAULT 0 NOT NULL
);

INSERT INTO version (table_name, table_version)
    SELECT 'sip_trace', 2
    WHERE NOT EXISTS (SELECT 1 FROM version WHERE table_name = 'sip_trace');

CREATE TABLE IF NOT EXISTS sip_trace (
    id SERIAL PRIMARY KEY NOT NULL,
    time_stamp TIMESTAMP WITHOUT TIME ZONE DEFAULT '1900-01-01 00:00:01' NOT NULL,
    callid VARCHAR(255) DEFAULT '' NOT NULL,
    traced_user VARCHAR(128) DEFAULT '' NOT NULL,
    msg TEXT NOT NULL,
    method VARCHAR(50) DEFAULT '' NOT NULL,
    status VARCHAR(128) DEFAULT '' NOT NULL,
    fromip VARCHAR(50) DEFAULT '' NOT NULL,
    toip VARCHAR(50) DEFAULT '' NOT NULL,
    fromtag VARCHAR(64) DEFAULT '' NOT NULL,
    direction VARCHAR(4) DEFAULT '' NOT NULL
);

CREATE INDEX IF NOT EXISTS sip_trace_traced_user_idx ON sip_trace (traced_user);
CREATE INDEX IF NOT EXISTS sip_trace_date_idx ON sip_trace (time_stamp);
CREATE INDEX IF NOT EXISTS sip_trace_fromip_idx ON sip_trace (fromip);
CREATE INDEX IF NOT EXISTS sip_trace_callid_idx ON sip_trace (callid);
