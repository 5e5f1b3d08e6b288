-- siptraced test fixture: table sip_trace in the OLD version 2 layout
-- (Kamailio 1.4 - 3.1: no time_us, no totag, MyISAM), with the old
-- `version` table. For testing old layouts; new installations use
-- siptrace-create.sql.

CREATE TABLE IF NOT EXISTS version (
    table_name VARCHAR(32) NOT NULL,
    table_version INT UNSIGNED DEFAULT 0 NOT NULL
) ENGINE=MyISAM;

INSERT INTO version (table_name, table_version)
    SELECT 'sip_trace', 2 FROM DUAL
    WHERE NOT EXISTS (SELECT 1 FROM version WHERE table_name = 'sip_trace');

CREATE TABLE IF NOT EXISTS sip_trace (
    id INT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL,
    time_stamp DATETIME DEFAULT '1900-01-01 00:00:01' NOT NULL,
    callid VARCHAR(255) DEFAULT '' NOT NULL,
    traced_user VARCHAR(128) DEFAULT '' NOT NULL,
    msg TEXT NOT NULL,
    method VARCHAR(50) DEFAULT '' NOT NULL,
    status VARCHAR(128) DEFAULT '' NOT NULL,
    fromip VARCHAR(50) DEFAULT '' NOT NULL,
    toip VARCHAR(50) DEFAULT '' NOT NULL,
    fromtag VARCHAR(64) DEFAULT '' NOT NULL,
    direction VARCHAR(4) DEFAULT '' NOT NULL,
    INDEX traced_user_idx (traced_user),
    INDEX date_idx (time_stamp),
    INDEX fromip_idx (fromip),
    INDEX callid_idx (callid)
) ENGINE=MyISAM;
