//! Synchronous row store for `sip_trace` rows, chosen by `db_url` scheme:
//! SQLite, PostgreSQL, MySQL/MariaDB, Kamailio's dbtext files, or (with the
//! `odbc` feature) any unixODBC data source.
//!
//! It moves rows whose values the trace layer already decided; it knows
//! nothing of SIP, scripts or the reactor, and never reads the clock for row
//! values. The one blocking call is [`Backend::write_batch`]: one transaction
//! per call, bounded in time by [`OpenOptions`] (connect and I/O timeouts), so
//! the reactor can call it once per turn.
//!
//! What it guarantees (docs/decisions.md §2, §3):
//! - the table layout (v1 `date` … v4 `totag`) is read from the catalog and
//!   rows are written with the columns the table has;
//! - table names are `[A-Za-z_][A-Za-z0-9_]{0,63}`; a row aimed at an invalid,
//!   missing or unusable table goes to the default table (logged once per name);
//! - values are always bound parameters; identifiers enter SQL only validated
//!   and quoted;
//! - content never fails an insert: bytes a column cannot hold are written as
//!   `\xNN`, over-long values are cut to the column's declared length;
//! - a failed batch is not partially committed; [`DbError::is_connection`]
//!   says "retry later (spool it)", and the next call reconnects;
//! - [`Backend::write_batch_marked`] writes rows at most once across
//!   retries, crashes and commits whose outcome was never seen, by moving a
//!   per-spool marker (table `siptraced_spool_marker`) in the same
//!   transaction with a compare-and-set (ARCHITECTURE.md, "Spool").
//!
//! Depends on: std, log, and per cargo feature rusqlite (`sqlite`),
//! tokio-postgres + tokio (`postgres`), mysql (`mysql`), odbc-api (`odbc`,
//! not default: `unixodbc://` URLs); `dbtext` is std only.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

pub mod encode;
pub mod retention;
pub mod schema;
// A build without any backend (`--no-default-features`) opens nothing.
#[cfg(any(
    feature = "sqlite",
    feature = "postgres",
    feature = "mysql",
    feature = "dbtext",
    feature = "odbc"
))]
mod store;
pub mod url;

#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "odbc")]
mod odbc;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(feature = "sqlite")]
mod sqlite_insert;
#[cfg(feature = "sqlite")]
mod sqlite_wal;
#[cfg(feature = "dbtext")]
pub mod text;

#[cfg(all(
    test,
    feature = "sqlite",
    feature = "postgres",
    feature = "mysql",
    feature = "dbtext"
))]
mod live_tests;

pub use retention::{PurgeRule, RetentionPolicy};
pub use schema::{LayoutProblem, valid_table_name};
pub use url::{DbUrl, UrlError};

/// One `sip_trace` row; values already decided by the trace layer.
///
/// Values an event's rows have in common are shared, not copied: a message
/// traced for two users is one `msg`, and every row of a second one
/// `time_stamp` (callgrind: each copy cost a malloc, a memcpy and a free).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// From `trace_table_avp`; `None` = the configured default table.
    pub table: Option<String>,
    /// Exact message bytes; may contain NUL or invalid UTF-8.
    pub msg: Shared<[u8]>,
    pub callid: Shared<str>,
    pub method: Shared<str>,
    pub status: Shared<str>,
    pub fromip: Shared<str>,
    pub toip: Shared<str>,
    /// Unix seconds (what dbtext stores).
    pub time_sec: i64,
    pub time_us: u32,
    /// Local time `YYYY-MM-DD HH:MM:SS`, formatted by the caller (SQL backends).
    pub time_stamp: Shared<str>,
    /// `"in"` or `"out"`.
    pub direction: &'static str,
    pub fromtag: Shared<str>,
    pub totag: Shared<str>,
    pub traced_user: String,
}

/// A value several rows hold: cloning it counts a reference.
pub type Shared<T> = std::sync::Arc<T>;

/// A row value as the backends see it.
#[cfg(any(
    feature = "sqlite",
    feature = "postgres",
    feature = "mysql",
    feature = "dbtext",
    feature = "odbc"
))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Value<'a> {
    Text(&'a [u8]),
    Int(i64),
}

#[cfg(any(
    feature = "sqlite",
    feature = "postgres",
    feature = "mysql",
    feature = "dbtext",
    feature = "odbc"
))]
impl Row {
    /// The value of one field (`Time` is the formatted local time; dbtext
    /// integer columns use [`Row::time_sec`] instead).
    pub(crate) fn value(&self, field: schema::Field) -> Value<'_> {
        use schema::Field as F;
        Value::Text(match field {
            F::Msg => &self.msg,
            F::CallId => self.callid.as_bytes(),
            F::Method => self.method.as_bytes(),
            F::Status => self.status.as_bytes(),
            F::FromIp => self.fromip.as_bytes(),
            F::ToIp => self.toip.as_bytes(),
            F::Time => self.time_stamp.as_bytes(),
            F::Direction => self.direction.as_bytes(),
            F::FromTag => self.fromtag.as_bytes(),
            F::TracedUser => self.traced_user.as_bytes(),
            F::ToTag => self.totag.as_bytes(),
            F::TimeUs => return Value::Int(i64::from(self.time_us)),
        })
    }

    /// The value for one target column: as [`Row::value`], except that a
    /// time column of an integer type gets Unix seconds, as Kamailio's
    /// dbtext `time_stamp(int)` does.
    pub(crate) fn value_for(&self, target: &schema::Target) -> Value<'_> {
        match (target.field, &target.column.kind) {
            (schema::Field::Time, schema::ColumnKind::Integer) => Value::Int(self.time_sec),
            (f, _) => self.value(f),
        }
    }
}

/// What one [`Backend::write_batch`] call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteReport {
    /// Rows stored.
    pub written: u64,
    /// Rows with a value written with `\xNN` escapes (msg_escaped counter).
    pub escaped: u64,
    /// Rows sent to the default table instead of their `table`.
    pub rerouted: u64,
    /// Rows with a value cut to its column's declared length.
    pub truncated: u64,
    /// Rows the database refused for their content even after escaping and
    /// cutting (e.g. a CHECK constraint); logged, not stored, not retryable.
    pub refused: u64,
    /// Rows not written because the marker showed them committed already
    /// (by an earlier attempt whose answer was lost, or before a crash).
    pub already: u64,
}

/// The table holding one marker row per spool: the highest sequence number
/// whose row is committed (sql/<backend>/siptraced-spool-marker.sql).
pub(crate) const MARKER_TABLE: &str = "siptraced_spool_marker";

/// A spool's marker as last seen in the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    /// The spool's identity (`spool.id` in its directory).
    pub id: String,
    /// Every row with a sequence number up to this one is committed.
    pub last: u64,
}

/// What [`Backend::open_marker`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkerOpen {
    /// The marker row exists (created at 0 if it did not); its value.
    Ready(u64),
    /// No marker can be kept (no table and no right to create it, a table
    /// of another shape…): writes go unmarked. Says why and what to do.
    Unsupported(String),
    /// This backend has no transactions to keep a marker in (dbtext):
    /// writes go unmarked, nothing to be done about it.
    NoTransactions(String),
}

/// Knobs for [`open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenOptions {
    /// Bound on establishing a server connection (TCP connect + login).
    pub connect_timeout: Duration,
    /// Bound on any single exchange with a server (a batch's statements,
    /// a catalog query): a stalled server costs at most this, then the
    /// connection is dropped and the batch reported as a connection error.
    pub io_timeout: Duration,
    /// Create the schema in a new, empty SQLite file, and the table file (and
    /// `version` entry) in an existing dbtext directory without one.
    pub create_sqlite_schema: bool,
    /// How long a SQLite write waits for another process's lock before the
    /// batch fails with [`DbError::Busy`] (to be spooled).
    pub sqlite_busy_timeout: Duration,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            // 3 s: a reachable server on a LAN logs in within milliseconds;
            // longer only delays the spool taking over at start-up.
            connect_timeout: Duration::from_secs(3),
            // 5 s: a 1000-row batch takes tens of ms; anything near seconds
            // means the server is stuck, and the proxy must not stall longer.
            io_timeout: Duration::from_secs(5),
            create_sqlite_schema: true,
            // 50 ms: about one reactor turn's worth of waiting; a longer lock
            // (a cron DELETE on the same file) is better met by spooling.
            sqlite_busy_timeout: Duration::from_millis(50),
        }
    }
}

/// A row store. Implemented by each backend (through a shared router).
pub trait Backend: Send {
    /// Write all rows in order in ONE transaction (or one multi-row INSERT
    /// per run of rows aimed at the same table). On `Err`, nothing of the
    /// batch is committed; if `is_connection()`, retry later.
    fn write_batch(&mut self, rows: &[Row]) -> Result<WriteReport, DbError>;
    /// Make sure the marker table (created when missing and permitted) and
    /// the row of spool `id` exist, and read it. Errors are connection
    /// errors only; anything else is [`MarkerOpen::Unsupported`].
    fn open_marker(&mut self, id: &str) -> Result<MarkerOpen, DbError>;
    /// As [`Backend::write_batch`], for rows with rising sequence numbers
    /// `seqs` (one per row): rows at or below `marker.last` are skipped
    /// (counted in `already`), the rest are written in one transaction that
    /// also moves the marker from `marker.last` to the last written number —
    /// only if it still holds `marker.last` (compare-and-set; if not, the
    /// marker is re-read and the batch retried). On `Ok`, `marker.last` is
    /// the new value; on `Err`, the caller must re-read the marker before
    /// trusting it again ([`Backend::open_marker`]).
    fn write_batch_marked(
        &mut self,
        rows: &[Row],
        seqs: &[u64],
        marker: &mut Marker,
    ) -> Result<WriteReport, DbError>;
    /// E.g. `sqlite:/var/lib/siptraced/trace.db (sip_trace v4)`.
    fn describe(&self) -> String;
    /// Delete at most `limit` rows of the default table that `rule`
    /// matches, oldest (lowest id) first, in one statement; the count
    /// deleted. Fewer than `limit` means the rule has no more work.
    fn purge_batch(&mut self, rule: &PurgeRule, limit: u32) -> Result<u64, DbError>;
    /// The id of the `keep`-th newest row of the default table: rows below
    /// it exceed `retention_rows`. None when the table holds no more.
    fn row_cap_threshold(&mut self, keep: u64) -> Result<Option<i64>, DbError>;
    /// On a table partitioned by day (PostgreSQL): drop the day partitions
    /// wholly before `keep_from` (`YYYY-MM-DD`) and create those of `ahead`.
    /// Other tables: nothing (the default).
    fn maintain_partitions(
        &mut self,
        _keep_from: Option<&str>,
        _ahead: &[String],
    ) -> Result<PartitionReport, DbError> {
        Ok(PartitionReport::default())
    }
}

/// What [`Backend::maintain_partitions`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionReport {
    /// The table is partitioned (by day, as sql/postgres/siptrace-partitioned.sql).
    pub partitioned: bool,
    /// Day partitions dropped.
    pub dropped: Vec<String>,
    /// Their rows, as the planner estimated them (`reltuples`): counting
    /// exactly would scan the partitions the drop avoids reading.
    pub dropped_rows: u64,
    /// Day partitions created ahead of time.
    pub created: Vec<String>,
}

/// Why the store cannot (now) do what was asked.
#[derive(Debug)]
pub enum DbError {
    /// The `db_url` is malformed.
    Url(UrlError),
    /// The default table name is not an SQL identifier.
    BadTableName { table: String },
    /// The URL names a backend this binary was built without.
    BackendDisabled {
        scheme: &'static str,
        feature: &'static str,
    },
    /// The server cannot be reached, the connection was lost, or it did not
    /// answer within the timeout: retry later.
    Connection {
        backend: &'static str,
        target: String,
        detail: String,
    },
    /// The server did not answer within the connect or I/O timeout (a
    /// stalled process, a host dropping packets): retry later, not soon —
    /// each try may cost the whole timeout.
    Timeout {
        backend: &'static str,
        target: String,
        detail: String,
    },
    /// The database is locked by someone else or the server asks to retry
    /// (deadlock, lock wait timeout): retry later.
    Busy {
        backend: &'static str,
        target: String,
        detail: String,
    },
    /// The default table does not exist.
    MissingTable { table: String, hint: String },
    /// The default table cannot hold trace rows.
    BadLayout {
        table: String,
        problem: LayoutProblem,
    },
    /// The server refused the statement for a reason that retrying will not
    /// fix by itself (permissions, read-only database, disk full, a schema
    /// change we could not follow).
    Rejected {
        backend: &'static str,
        target: String,
        detail: String,
    },
    /// A file could not be opened, read or written.
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The dbtext directory does not exist.
    MissingDirectory { path: PathBuf },
    /// A dbtext table file whose header cannot be parsed.
    BadTextTable { path: PathBuf, detail: String },
}

impl DbError {
    /// Connection refused, lost or timed out, server shutting down, or the
    /// database busy: "retry later, spool the batch". Everything else needs a
    /// person (or is a problem of the rows themselves).
    pub(crate) fn is_connection(&self) -> bool {
        matches!(
            self,
            DbError::Connection { .. } | DbError::Timeout { .. } | DbError::Busy { .. }
        )
    }

    /// A failure that took the whole timeout to show: tries should be
    /// spaced out, since each one stalls the caller that long.
    pub(crate) fn is_timeout(&self) -> bool {
        matches!(self, DbError::Timeout { .. })
    }
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbError::Url(e) => e.fmt(f),
            DbError::BadTableName { table } => write!(
                f,
                "table name {table:?} is not an SQL identifier [A-Za-z_][A-Za-z0-9_]{{0,63}}; \
                 fix modparam(\"siptrace\", \"table\", …)"
            ),
            DbError::BackendDisabled { scheme, feature } => write!(
                f,
                "db_url scheme '{scheme}' needs the '{feature}' cargo feature, which this \
                 build left out; rebuild with --features {feature}"
            ),
            DbError::Connection {
                backend,
                target,
                detail,
            } => write!(
                f,
                "{backend} at {target} unreachable: {detail} (rows are kept and retried)"
            ),
            DbError::Timeout {
                backend,
                target,
                detail,
            } => write!(
                f,
                "{backend} at {target} did not answer: {detail} (rows are kept and retried)"
            ),
            DbError::Busy {
                backend,
                target,
                detail,
            } => write!(f, "{backend} {target} busy: {detail} (will retry)"),
            DbError::MissingTable { table, hint } => {
                write!(f, "table {table} does not exist; {hint}")
            }
            DbError::BadLayout { table, problem } => write!(
                f,
                "table {table} cannot hold sip_trace rows: {problem}; recreate it from \
                 sql/<backend>/siptrace-create.sql"
            ),
            DbError::Rejected {
                backend,
                target,
                detail,
            } => write!(f, "{backend} {target} refused the insert: {detail}"),
            DbError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            DbError::MissingDirectory { path } => write!(
                f,
                "dbtext directory {} does not exist; create it (scripts/siptraced-dbinit text://…)",
                path.display()
            ),
            DbError::BadTextTable { path, detail } => {
                write!(f, "dbtext table {}: {detail}", path.display())
            }
        }
    }
}

impl std::error::Error for DbError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DbError::Url(e) => Some(e),
            DbError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<UrlError> for DbError {
    fn from(e: UrlError) -> Self {
        DbError::Url(e)
    }
}

/// The hint of [`DbError::MissingTable`] for one backend directory of sql/.
#[cfg(any(
    feature = "sqlite",
    feature = "postgres",
    feature = "mysql",
    feature = "odbc"
))]
pub(crate) fn missing_table_hint(sql_dir: &str, url: &str) -> String {
    format!("run sql/{sql_dir}/siptrace-create.sql (or scripts/siptraced-dbinit {url})")
}

/// Open the store named by `url`, whose rows go to `default_table` unless a
/// row names another. Connects, reads the default table's layout and fails if
/// the table is missing (a new SQLite file, or a dbtext directory without the
/// table file, is initialised instead when `create_sqlite_schema`).
#[cfg_attr(
    not(any(
        feature = "sqlite",
        feature = "postgres",
        feature = "mysql",
        feature = "dbtext",
        feature = "odbc"
    )),
    expect(unused_variables, reason = "no backend to hand the options to")
)]
pub fn open(
    url: &str,
    default_table: &str,
    opts: &OpenOptions,
) -> Result<Box<dyn Backend>, DbError> {
    if !valid_table_name(default_table) {
        return Err(DbError::BadTableName {
            table: default_table.to_string(),
        });
    }
    let parsed = url::parse(url)?;
    match parsed {
        #[cfg(feature = "sqlite")]
        DbUrl::Sqlite { path } => {
            let engine = sqlite::Sqlite::open(&path, default_table, opts)?;
            Ok(Box::new(store::Store::new(engine, default_table)?))
        }
        #[cfg(feature = "postgres")]
        DbUrl::Postgres(server) => {
            let engine = postgres::Postgres::open(server, opts)?;
            Ok(Box::new(store::Store::new(engine, default_table)?))
        }
        #[cfg(feature = "mysql")]
        DbUrl::Mysql(server) => {
            let engine = mysql::Mysql::open(server, opts)?;
            Ok(Box::new(store::Store::new(engine, default_table)?))
        }
        #[cfg(feature = "dbtext")]
        DbUrl::Text { dir } => {
            let engine = text::Text::open(&dir, default_table, opts)?;
            Ok(Box::new(store::Store::new(engine, default_table)?))
        }
        #[cfg(feature = "odbc")]
        DbUrl::Odbc(url) => {
            let engine = odbc::Odbc::open(url, opts)?;
            Ok(Box::new(store::Store::new(engine, default_table)?))
        }
        #[cfg(not(all(
            feature = "sqlite",
            feature = "postgres",
            feature = "mysql",
            feature = "dbtext",
            feature = "odbc"
        )))]
        other => Err(disabled(&other)),
    }
}

// With every backend compiled in, no URL is refused outside the tests.
#[cfg(any(
    test,
    not(all(
        feature = "sqlite",
        feature = "postgres",
        feature = "mysql",
        feature = "dbtext",
        feature = "odbc"
    ))
))]
fn disabled(url: &DbUrl) -> DbError {
    let (scheme, feature) = match url {
        DbUrl::Sqlite { .. } => ("sqlite", "sqlite"),
        DbUrl::Postgres(_) => ("postgres", "postgres"),
        DbUrl::Mysql(_) => ("mysql", "mysql"),
        DbUrl::Text { .. } => ("text", "dbtext"),
        DbUrl::Odbc(_) => ("unixodbc", "odbc"),
    };
    DbError::BackendDisabled { scheme, feature }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_backend_names_the_feature() {
        let url = url::parse("text:///x").unwrap();
        let e = disabled(&url);
        assert!(!e.is_connection());
        assert!(e.to_string().contains("--features dbtext"), "{e}");
    }

    #[cfg(not(feature = "mysql"))]
    #[test]
    fn compiled_out_backend_is_a_clear_error() {
        let e = open("mysql://u@h/d", "sip_trace", &OpenOptions::default())
            .err()
            .unwrap();
        assert!(
            matches!(
                e,
                DbError::BackendDisabled {
                    feature: "mysql",
                    ..
                }
            ),
            "{e}"
        );
    }
}
