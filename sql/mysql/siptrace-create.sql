-- siptraced: table sip_trace, version 4 (Kamailio 5 columns, types,
-- defaults and indexes), plus the Kamailio `version` table and its rows.
-- Idempotent (MySQL >= 5.7, MariaDB >= 10.1): running it again changes
-- nothing. Indexes are declared inside CREATE TABLE because MySQL has no
-- CREATE INDEX IF NOT EXISTS. utf8mb4 so that msg holds any UTF-8 text;
-- NUL and invalid UTF-8 bytes are written as \xNN.

CREATE TABLE IF NOT EXISTS version (
    id INT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL,
    table_name VARCHAR(32) NOT NULL,
    table_version INT UNSIGNED DEFAULT 0 NOT NULL,
    CONSTRAINT table_name_idx UNIQUE (table_name)
) DEFAULT CHARSET=utf8mb4;

INSERT INTO version (table_name, table_version)
    SELECT 'version', 1 FROM DUAL
    WHERE NOT EXISTS (SELECT 1 FROM version WHERE table_name = 'version');

CREATE TABLE IF NOT EXISTS sip_trace (
    id INT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL,
    time_stamp DATETIME DEFAULT '2000-01-01 00:00:01' NOT NULL,
    time_us INT UNSIGNED DEFAULT 0 NOT NULL,
    callid VARCHAR(255) DEFAULT '' NOT NULL,
    traced_user VARCHAR(255) DEFAULT '' NOT NULL,
    msg MEDIUMTEXT NOT NULL,
    method VARCHAR(50) DEFAULT '' NOT NULL,
    status VARCHAR(255) DEFAULT '' NOT NULL,
    fromip VARCHAR(64) DEFAULT '' NOT NULL,
    toip VARCHAR(64) DEFAULT '' NOT NULL,
    fromtag VARCHAR(128) DEFAULT '' NOT NULL,
    totag VARCHAR(128) DEFAULT '' NOT NULL,
    direction VARCHAR(4) DEFAULT '' NOT NULL,
    INDEX traced_user_idx (traced_user),
    INDEX date_idx (time_stamp),
    INDEX fromip_idx (fromip),
    INDEX callid_idx (callid)
) DEFAULT CHARSET=utf8mb4;

INSERT INTO version (table_name, table_version)
    SELECT 'sip_trace', 4 FROM DUAL
    WHERE NOT EXISTS (SELECT 1 FROM version WHERE table_name = 'sip_trace');

-- Spool replay bookkeeping (siptraced-spool-marker.sql).
CREATE TABLE IF NOT EXISTS siptraced_spool_marker (
    spool_id VARCHAR(64) PRIMARY KEY NOT NULL,
    last_seq BIGINT DEFAULT 0 NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=ascii;
