//! `siptrace`, the reading side of the `sip_trace` table: find calls
//! (`calls`), draw one as a ladder (`show`: text, JSON, SVG, HTML), and
//! export the stored messages as a capture file (`pcap`).
//!
//! Read-only over the database: [`source`] opens the table the daemon
//! writes (any backend, layouts v2–v4, docs/decisions.md §3), checks its
//! layout with `db::schema`, and runs only SELECTs with bound parameters —
//! it never writes, creates or alters anything. Everything after the rows
//! are read is pure data in, data out, and unit-tested without a database:
//! [`when`] (time arguments, local time ↔ Unix time), [`call`] (filters and
//! per-call summaries), [`ladder`] (which arrows between which hosts, text
//! and JSON), [`svg`] (SVG and the self-contained HTML page), [`pcap`]
//! (synthesised Ethernet/IP/UDP/TCP frames, pcap and pcapng), [`args`] (the
//! command line). [`web`] serves all of it as pages and a JSON API
//! (`siptrace serve`, over tiny_http), with the same read-only [`source`].
//!
//! May depend on: `db::url` (URL grammar), `db::schema` (layout
//! detection), `db::text` (the dbtext reader), `sip` (decoding stored
//! messages), `clock` (local time), `cfg`/`config` (only [`args`]' caller,
//! for `-f FILE`). Must not depend on the daemon's core, reactor, spool or
//! the write path of `db`.

pub mod args;
pub mod call;
pub mod json;
pub mod ladder;
pub mod pcap;
pub mod source;
pub mod svg;
pub mod web;
pub mod when;

/// One stored `sip_trace` row, as read back. Columns a table lacks are
/// `None` (`time_us` before v3, `totag` before v4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRow {
    pub id: i64,
    /// Local `YYYY-MM-DD HH:MM:SS`, as the daemon wrote it (dbtext's Unix
    /// seconds are rendered so).
    pub stamp: String,
    /// Unix seconds of `stamp` (the process's zone; see `when`).
    pub sec: i64,
    pub us: Option<u32>,
    pub callid: String,
    pub method: String,
    pub status: String,
    pub fromip: String,
    pub toip: String,
    pub direction: String,
    pub fromtag: String,
    pub totag: Option<String>,
    pub traced_user: String,
    /// The column's bytes exactly (a PostgreSQL/MariaDB `\xNN` escape stays
    /// as written: it is what the table holds).
    pub msg: Vec<u8>,
}

impl StoredRow {
    /// Microseconds since the Unix epoch (to the second on a v2 table).
    pub fn time_us(&self) -> i64 {
        self.sec * 1_000_000 + i64::from(self.us.unwrap_or(0))
    }
}
