//! MySQL / MariaDB engine (the `mysql` crate, synchronous, no TLS).
//!
//! A run of rows becomes multi-row `INSERT … VALUES (?,…),(?,…)` statements
//! with bound parameters, all in one transaction. Statement sizes are powers
//! of two (1, 2, 4 … [`MAX_ROWS_PER_STATEMENT`]) so that any batch size
//! reuses a handful of cached prepared statements, and each statement's
//! values stay under half of the server's `max_allowed_packet`.
//! Every exchange has a total deadline, as PostgreSQL's has (the crate's own
//! read/write timeouts are per system call, so a server that trickles a
//! byte now and then would hold a call for ever): the connect — name
//! lookup, TCP connect, login, first query — runs on a helper thread that
//! the caller waits for at most `connect_timeout` (an attempt still running
//! is waited for again by the next try, never doubled); each statement
//! (a whole batch, transaction included) runs under a watchdog thread that
//! shuts the socket down once `io_timeout` has passed, which ends the call
//! at once with an I/O error.
//! Both threads read the clock (`Instant`) for their own deadlines. The
//! URL's host is used as given (no switch to the local Unix socket).
//!
//! Text is escaped per column character set (utf8mb4: NUL and invalid UTF-8
//! as `\xNN`; utf8mb3 also 4-byte characters; latin1, which holds every
//! byte, takes the raw bytes with only NUL escaped — what Kamailio stored in
//! the latin1 databases kamdbctl creates; other sets every non-ASCII byte;
//! binary columns take the raw bytes) and cut to the column's length.
//! Old v2 tables are MyISAM: there a failed batch may be partly stored.
//! Depends on mysql and the store/schema/encode modules.

use std::collections::HashMap;
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;
use mysql::{Conn, OptsBuilder, TxOpts, Value as MyValue};

use super::encode;
use super::retention::{self, Dialect, PurgeRule, PurgeTarget, TimeKind};
use super::schema::{Charset, ColumnInfo, ColumnKind, Layout};
use super::store::{Counts, Engine, Fault, MarkCas, Run};
use super::url::ServerUrl;
use super::{DbError, OpenOptions, Row, Value, missing_table_hint};

/// sql/mysql/siptraced-spool-marker.sql, run when the table is missing.
const MARKER_DDL: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/sql/mysql/siptraced-spool-marker.sql"
));

/// Largest multi-row statement: 1024 rows × 13 columns stays far below the
/// protocol's 65535 placeholders, and beyond ~1000 rows a statement gains
/// nothing measurable.
const MAX_ROWS_PER_STATEMENT: usize = 1024;
/// Prepared statements kept per connection: 11 sizes (2^0..2^10) for a few
/// tables.
const STMT_CACHE: usize = 64;
/// Per-value overhead counted against the packet budget (length prefix,
/// type bytes).
const VALUE_OVERHEAD: usize = 16;

pub(crate) struct Mysql {
    server: ServerUrl,
    connect_timeout: Duration,
    io_timeout: Duration,
    conn: Option<MyConn>,
    /// A connect attempt that outlived a try's wait, still running.
    connecting: Option<Receiver<Result<MyConn, DbError>>>,
    watchdog: Watchdog,
    /// INSERT prefix (`INSERT INTO t (cols) VALUES `) and one row's
    /// placeholder group, per table.
    sql: HashMap<String, (String, String)>,
}

struct MyConn {
    conn: Conn,
    /// A second handle on the connection's socket, for the watchdog.
    socket: Arc<TcpStream>,
    /// Bytes of values one statement may carry: half of max_allowed_packet.
    value_budget: usize,
}

/// Ends an exchange that outlives its deadline by shutting its socket down
/// (shut down, not closed: the descriptor stays the connection's, and the
/// blocked read or write returns at once). One thread per backend, idle
/// between exchanges.
struct Watchdog {
    shared: Arc<Watch>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Watch {
    state: Mutex<WatchState>,
    wake: Condvar,
}

#[derive(Default)]
struct WatchState {
    armed: Option<(Arc<TcpStream>, Instant)>,
    fired: bool,
    stop: bool,
}

impl Watchdog {
    fn start() -> std::io::Result<Watchdog> {
        let shared = Arc::new(Watch::default());
        let w = shared.clone();
        let thread = std::thread::Builder::new()
            .name("mysql-deadline".into())
            .spawn(move || w.run())?;
        Ok(Watchdog {
            shared,
            thread: Some(thread),
        })
    }

    fn arm(&self, socket: Arc<TcpStream>, limit: Duration) {
        let mut st = self.shared.lock();
        st.armed = Some((socket, Instant::now() + limit));
        st.fired = false;
        self.shared.wake.notify_one();
    }

    /// Ends the watch: true when the deadline passed and the socket was
    /// shut down.
    fn disarm(&self) -> bool {
        let mut st = self.shared.lock();
        st.armed = None;
        std::mem::take(&mut st.fired)
    }
}

impl Watch {
    fn lock(&self) -> std::sync::MutexGuard<'_, WatchState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn run(&self) {
        let mut st = self.lock();
        loop {
            if st.stop {
                return;
            }
            let Some((socket, deadline)) = st.armed.clone() else {
                st = self.wake.wait(st).unwrap_or_else(PoisonError::into_inner);
                continue;
            };
            let now = Instant::now();
            if now >= deadline {
                let _ = socket.shutdown(Shutdown::Both);
                st.armed = None;
                st.fired = true;
            } else {
                st = self
                    .wake
                    .wait_timeout(st, deadline - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A second handle on `conn`'s socket (a dup of its descriptor).
#[allow(unsafe_code)]
fn socket_handle(conn: &Conn) -> std::io::Result<TcpStream> {
    // SAFETY: the descriptor is `conn`'s open socket, alive for the whole
    // borrow; it is only duplicated here, and the duplicate is owned by the
    // returned stream.
    let fd = unsafe { BorrowedFd::borrow_raw(conn.as_raw_fd()) };
    Ok(TcpStream::from(fd.try_clone_to_owned()?))
}

/// One exchange with the server (`f`'s calls on the connection whose
/// socket this is) under a total deadline of `limit`.
fn exchange<T>(
    watchdog: &Watchdog,
    socket: &Arc<TcpStream>,
    limit: Duration,
    target: &str,
    f: impl FnOnce() -> Result<T, Fault>,
) -> Result<T, Fault> {
    watchdog.arm(socket.clone(), limit);
    let r = f();
    if watchdog.disarm() {
        return Err(Fault::Db(DbError::Timeout {
            backend: "mysql",
            target: target.to_string(),
            detail: format!(
                "no complete answer within {} ms (the server stalls or trickles its \
                 answer); connection dropped",
                limit.as_millis()
            ),
        }));
    }
    r
}

fn quote(ident: &str) -> String {
    format!("`{}`", ident.replace('`', "``"))
}

impl Mysql {
    pub fn open(server: ServerUrl, opts: &OpenOptions) -> Result<Mysql, DbError> {
        let watchdog = Watchdog::start().map_err(|e| DbError::Connection {
            backend: "mysql",
            target: server.display_target(),
            detail: format!("cannot start the deadline thread: {e}"),
        })?;
        let mut m = Mysql {
            server,
            connect_timeout: opts.connect_timeout,
            io_timeout: opts.io_timeout,
            conn: None,
            connecting: None,
            watchdog,
            sql: HashMap::new(),
        };
        m.connection()?;
        Ok(m)
    }

    /// Starts a connect attempt on its own thread.
    fn start_connect(&self) -> Result<Receiver<Result<MyConn, DbError>>, DbError> {
        let (tx, rx) = mpsc::sync_channel(1);
        let (server, target) = (self.server.clone(), self.target());
        let (connect, io) = (self.connect_timeout, self.io_timeout);
        std::thread::Builder::new()
            .name("mysql-connect".into())
            .spawn(move || {
                let _ = tx.send(connect_now(&server, &target, connect, io));
            })
            .map_err(|e| DbError::Connection {
                backend: "mysql",
                target: self.target(),
                detail: format!("cannot start a connect thread: {e}"),
            })?;
        Ok(rx)
    }

    fn connection(&mut self) -> Result<&mut MyConn, DbError> {
        if self.conn.is_none() {
            let rx = match self.connecting.take() {
                Some(rx) => rx,
                None => self.start_connect()?,
            };
            match rx.recv_timeout(self.connect_timeout) {
                Ok(Ok(c)) => self.conn = Some(c),
                Ok(Err(e)) => return Err(e),
                Err(RecvTimeoutError::Timeout) => {
                    // Left running: the next try waits for this attempt.
                    self.connecting = Some(rx);
                    return Err(DbError::Timeout {
                        backend: "mysql",
                        target: self.server.display_target(),
                        detail: format!(
                            "not connected within {} ms (name lookup, connect and login)",
                            self.connect_timeout.as_millis()
                        ),
                    });
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(DbError::Connection {
                        backend: "mysql",
                        target: self.server.display_target(),
                        detail: "the connect thread ended without an answer".to_string(),
                    });
                }
            }
        }
        match self.conn.as_mut() {
            Some(c) => Ok(c),
            None => Err(DbError::Connection {
                backend: "mysql",
                target: self.server.display_target(),
                detail: "not connected".to_string(),
            }),
        }
    }

    /// One exchange on the open connection under the I/O deadline.
    fn exchange<T>(
        &mut self,
        f: impl FnOnce(&mut Conn) -> Result<T, mysql::Error>,
    ) -> Result<T, DbError> {
        let target = self.target();
        let limit = self.io_timeout;
        self.connection()?;
        let Some(conn) = self.conn.as_mut() else {
            return Err(DbError::Connection {
                backend: "mysql",
                target,
                detail: "not connected".to_string(),
            });
        };
        let socket = conn.socket.clone();
        let c = &mut conn.conn;
        exchange(&self.watchdog, &socket, limit, &target, || {
            f(c).map_err(|e| classify(e, &target))
        })
        .map_err(|f| f.into_db("mysql", target.clone()))
    }

    fn sql_for(&mut self, layout: &Layout) -> &(String, String) {
        self.sql.entry(layout.table.clone()).or_insert_with(|| {
            let cols: Vec<String> = layout
                .targets
                .iter()
                .map(|t| quote(&t.column.name))
                .collect();
            let params: Vec<&str> = layout
                .targets
                .iter()
                .map(|t| match t.column.charset {
                    // Bound as a binary string: the server puts the bytes
                    // into the latin1 column unconverted instead of reading
                    // them as utf8mb4 (the connection's charset), which
                    // would refuse bytes that are not UTF-8.
                    Charset::Latin1 if t.column.kind == ColumnKind::Text => "CAST(? AS BINARY)",
                    _ => "?",
                })
                .collect();
            let group = format!("({})", params.join(","));
            (
                format!(
                    "INSERT INTO {} ({}) VALUES ",
                    quote(&layout.table),
                    cols.join(", ")
                ),
                group,
            )
        })
    }
}

/// Name lookup, connect, login and the first query, on the connect thread.
/// The crate's per-call timeouts keep this thread from hanging on a silent
/// server; the caller's wait is bounded by `connect` whatever happens here.
fn connect_now(
    s: &ServerUrl,
    target: &str,
    connect: Duration,
    io: Duration,
) -> Result<MyConn, DbError> {
    let db_error = |e| classify(e, target).into_db("mysql", target.to_string());
    let opts = OptsBuilder::new()
        .ip_or_hostname(Some(s.host.clone()))
        .tcp_port(s.port)
        .user(Some(s.user.clone()))
        .pass(s.password.clone())
        .db_name(Some(s.database.clone()))
        .prefer_socket(false)
        .tcp_connect_timeout(Some(connect))
        .read_timeout(Some(io))
        .write_timeout(Some(io))
        .stmt_cache_size(Some(STMT_CACHE))
        .init(vec!["SET NAMES utf8mb4"]);
    let mut conn = Conn::new(opts).map_err(db_error)?;
    let packet: Option<u64> = conn
        .query_first("SELECT @@max_allowed_packet")
        .map_err(db_error)?;
    // 4 MiB: MySQL 5.x's default, if the server will not say.
    let packet = packet.unwrap_or(4 << 20);
    let socket = socket_handle(&conn).map_err(|e| DbError::Connection {
        backend: "mysql",
        target: target.to_string(),
        detail: format!("cannot duplicate the socket: {e}"),
    })?;
    Ok(MyConn {
        conn,
        socket: Arc::new(socket),
        value_budget: usize::try_from(packet / 2).unwrap_or(usize::MAX),
    })
}

/// Sort an error by what the caller can do about it. Server error numbers
/// from the MariaDB/MySQL error reference.
fn classify(e: mysql::Error, target: &str) -> Fault {
    use mysql::DriverError as D;
    let detail = e.to_string();
    let connection = || {
        Fault::Db(DbError::Connection {
            backend: "mysql",
            target: target.to_string(),
            detail: detail.clone(),
        })
    };
    let timeout = || {
        Fault::Db(DbError::Timeout {
            backend: "mysql",
            target: target.to_string(),
            detail: detail.clone(),
        })
    };
    match &e {
        // A socket read/write timeout surfaces as WouldBlock or TimedOut.
        mysql::Error::IoError(io)
            if matches!(
                io.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            timeout()
        }
        mysql::Error::DriverError(D::ConnectTimeout | D::Timeout) => timeout(),
        mysql::Error::IoError(_) | mysql::Error::CodecError(_) => connection(),
        mysql::Error::DriverError(
            D::CouldNotConnect(_) | D::PacketOutOfSync | D::UnexpectedPacket | D::SetupError,
        ) => connection(),
        mysql::Error::MySqlError(me) => match me.code {
            // 1146 no such table, 1054 unknown column.
            1146 | 1054 => Fault::Schema { detail },
            // 1406 data too long, 1366 incorrect string value, 1292 bad
            // datetime, 1048 NULL, 1062 duplicate key, 1264 out of range,
            // 1451/1452 foreign key, 4025 (MariaDB) / 3819 (MySQL) CHECK.
            1406 | 1366 | 1292 | 1048 | 1062 | 1264 | 1451 | 1452 | 4025 | 3819 => {
                Fault::Data { detail }
            }
            // 1205 lock wait timeout, 1213 deadlock, 1040/1203 too many
            // connections, 1021 disk full, 1114 table full.
            1205 | 1213 | 1040 | 1203 | 1021 | 1114 => Fault::Db(DbError::Busy {
                backend: "mysql",
                target: target.to_string(),
                detail,
            }),
            // 1053 server shutdown, 1927 connection killed (MariaDB), 3169
            // session killed (MySQL), 1152/1184 aborted connection, 2006/2013
            // server gone / lost during query.
            1053 | 1927 | 3169 | 1152 | 1184 | 2006 | 2013 => connection(),
            _ => Fault::Db(DbError::Rejected {
                backend: "mysql",
                target: target.to_string(),
                detail,
            }),
        },
        _ => Fault::Db(DbError::Rejected {
            backend: "mysql",
            target: target.to_string(),
            detail,
        }),
    }
}

/// Column kind and character set from information_schema.COLUMNS.
fn my_kind(data_type: &str, charset: Option<&str>) -> (ColumnKind, Charset) {
    let cs = match charset {
        Some("utf8mb4") => Charset::Utf8,
        Some("utf8" | "utf8mb3") => Charset::Bmp,
        Some("binary") => Charset::Raw,
        Some("latin1") => Charset::Latin1,
        Some(_) => Charset::Ascii,
        None => Charset::Raw,
    };
    match data_type {
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" => {
            (ColumnKind::Text, cs)
        }
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => {
            (ColumnKind::Text, Charset::Raw)
        }
        "tinyint" | "smallint" | "mediumint" | "int" | "bigint" | "decimal" => {
            (ColumnKind::Integer, cs)
        }
        "datetime" | "timestamp" | "date" => (ColumnKind::Timestamp(""), cs),
        _ => (ColumnKind::Other, cs),
    }
}

/// One row's parameters, appended to `out`; returns (escaped, truncated).
fn push_row(row: &Row, layout: &Layout, out: &mut Vec<MyValue>) -> (bool, bool) {
    let (mut escaped, mut cut) = (false, false);
    for t in &layout.targets {
        let v = match row.value_for(t) {
            Value::Int(n) => MyValue::Int(n),
            Value::Text(b)
                if t.column.charset == Charset::Raw && t.column.kind == ColumnKind::Text =>
            {
                let (b, c) = encode::fit_bytes(b, t.column.max_bytes);
                cut |= c;
                MyValue::Bytes(b.to_vec())
            }
            Value::Text(b)
                if t.column.charset == Charset::Latin1 && t.column.kind == ColumnKind::Text =>
            {
                let bytes = encode::escape_nul(b);
                escaped |= matches!(bytes, std::borrow::Cow::Owned(_));
                // One byte per character: the octet length is the limit.
                let (b, c) = encode::fit_bytes(&bytes, t.column.max_bytes);
                cut |= c;
                MyValue::Bytes(b.to_vec())
            }
            Value::Text(b) => {
                let (s, e, c) = encode::for_column(b, &t.column);
                escaped |= e;
                cut |= c;
                MyValue::Bytes(s.into_owned().into_bytes())
            }
        };
        out.push(v);
    }
    (escaped, cut)
}

/// Bytes a row's values take on the wire, roughly (for chunking).
fn row_size(row: &Row) -> usize {
    row.msg.len()
        + row.callid.len()
        + row.method.len()
        + row.status.len()
        + row.fromip.len()
        + row.toip.len()
        + row.time_stamp.len()
        + row.fromtag.len()
        + row.totag.len()
        + row.traced_user.len()
        + 13 * VALUE_OVERHEAD
}

/// Split `rows` into statement sizes: powers of two, each within `budget`
/// bytes (at least one row per statement).
fn chunk_sizes(rows: &[&Row], budget: usize) -> Vec<usize> {
    let mut sizes = Vec::new();
    let mut i = 0;
    while i < rows.len() {
        let mut n = 0;
        let mut bytes = 0;
        while i + n < rows.len() && n < MAX_ROWS_PER_STATEMENT {
            let s = row_size(rows[i + n]);
            if n > 0 && bytes + s > budget {
                break;
            }
            bytes += s;
            n += 1;
        }
        // Largest power of two ≤ n.
        let n = 1usize << (usize::BITS - 1 - n.leading_zeros());
        sizes.push(n);
        i += n;
    }
    sizes
}

impl Engine for Mysql {
    fn backend(&self) -> &'static str {
        "mysql"
    }

    fn target(&self) -> String {
        format!("mysql://{}", self.server.display_target())
    }

    fn missing_table_hint(&self) -> String {
        missing_table_hint("mysql", &self.target())
    }

    fn columns(&mut self, table: &str) -> Result<Option<Vec<ColumnInfo>>, DbError> {
        type ColRow = (String, String, Option<u64>, Option<u64>, Option<String>);
        let rows: Vec<ColRow> = self.exchange(|c| {
            c.exec(
                "SELECT COLUMN_NAME, DATA_TYPE, CHARACTER_MAXIMUM_LENGTH, \
                        CHARACTER_OCTET_LENGTH, CHARACTER_SET_NAME \
                 FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? \
                 ORDER BY ORDINAL_POSITION",
                (table,),
            )
        })?;
        // A MySQL table has at least one column: no rows = no table.
        if rows.is_empty() {
            return Ok(None);
        }
        let to_usize = |n: Option<u64>| n.and_then(|n| usize::try_from(n).ok());
        Ok(Some(
            rows.into_iter()
                .map(|(name, ty, chars, octets, cs)| {
                    let (kind, charset) = my_kind(&ty.to_ascii_lowercase(), cs.as_deref());
                    ColumnInfo {
                        name,
                        kind,
                        max_chars: to_usize(chars),
                        max_bytes: to_usize(octets),
                        charset,
                    }
                })
                .collect(),
        ))
    }

    fn insert(&mut self, runs: &[Run<'_>], mark: Option<&MarkCas<'_>>) -> Result<Counts, Fault> {
        let target = self.target();
        let budget = self.connection()?.value_budget;
        let mut statements: Vec<(String, Vec<MyValue>)> = Vec::new();
        let mut counts = Counts::default();
        for run in runs {
            let (prefix, group) = self.sql_for(&run.layout).clone();
            let mut start = 0;
            for n in chunk_sizes(&run.rows, budget) {
                let mut sql = String::with_capacity(prefix.len() + n * (group.len() + 1));
                sql.push_str(&prefix);
                let mut params = Vec::with_capacity(n * run.layout.targets.len());
                for (k, row) in run.rows[start..start + n].iter().enumerate() {
                    if k > 0 {
                        sql.push(',');
                    }
                    sql.push_str(&group);
                    let (e, c) = push_row(row, &run.layout, &mut params);
                    counts.row(e, c);
                }
                statements.push((sql, params));
                start += n;
            }
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err(Fault::Db(DbError::Connection {
                backend: "mysql",
                target,
                detail: "not connected".to_string(),
            }));
        };
        let (wd, limit, socket) = (&self.watchdog, self.io_timeout, conn.socket.clone());
        // The whole batch, its rollback included, within io_timeout
        // (OpenOptions::io_timeout): a server slow enough to need longer is
        // stuck as far as the proxy is concerned.
        exchange(wd, &socket, limit, &target, || {
            let my = |e| classify(e, &target);
            if statements.len() == 1
                && mark.is_none()
                && let Some((sql, params)) = statements.pop()
            {
                // One statement is atomic by itself (InnoDB, autocommit).
                conn.conn.exec_drop(sql.as_str(), params).map_err(my)?;
                return Ok(counts);
            }
            let mut tx = conn.conn.start_transaction(TxOpts::default()).map_err(my)?;
            if let Some(m) = mark {
                // First, so that the marker row's lock orders competing writers
                // (an earlier attempt whose COMMIT we never saw) before any row.
                // A changed value always differs (new > expected), so the
                // affected-rows count (changed rows) is 1 exactly when it held.
                tx.exec_drop(
                    "UPDATE siptraced_spool_marker SET last_seq = ? \
                     WHERE spool_id = ? AND last_seq = ?",
                    (m.new, m.id, m.expected),
                )
                .map_err(my)?;
                if tx.affected_rows() != 1 {
                    // Dropping `tx` rolls back.
                    return Err(Fault::Moved);
                }
            }
            for (sql, params) in statements {
                // Dropping `tx` uncommitted on error rolls it back.
                tx.exec_drop(sql.as_str(), params).map_err(my)?;
            }
            tx.commit().map_err(my)?;
            Ok(counts)
        })
    }

    fn drop_connection(&mut self) {
        self.conn = None;
    }

    fn forget_statements(&mut self) {
        self.sql.clear();
    }

    fn supports_marker(&self) -> bool {
        true
    }

    fn marker_create(&mut self) -> Result<(), DbError> {
        self.exchange(|c| c.query_drop(MARKER_DDL))
    }

    fn purge_batch(
        &mut self,
        target: &PurgeTarget,
        rule: &PurgeRule,
        limit: u32,
    ) -> Result<u64, DbError> {
        let Some(sql) = retention::delete_batch_sql(Dialect::Mysql, target, rule, limit) else {
            return Ok(0);
        };
        let mut params: Vec<MyValue> = Vec::with_capacity(2);
        match rule {
            PurgeRule::Older { before, method } => {
                params.push(match target.time_kind {
                    TimeKind::UnixSeconds => MyValue::Int(before.sec),
                    _ => MyValue::Bytes(before.local.clone().into_bytes()),
                });
                if let Some(m) = method {
                    params.push(MyValue::Bytes(m.clone().into_bytes()));
                }
            }
            PurgeRule::IdBelow(id) => params.push(MyValue::Int(*id)),
        }
        // Autocommit: each batch commits alone, its row locks released at once.
        self.exchange(|c| {
            c.exec_drop(sql.as_str(), params)?;
            Ok(c.affected_rows())
        })
    }

    fn row_cap_threshold(&mut self, table: &str, keep: u64) -> Result<Option<i64>, DbError> {
        let span_sql = retention::id_span_sql(Dialect::Mysql, table);
        let span = self.exchange(|c| c.query_first::<Option<i64>, _>(span_sql.as_str()))?;
        if span
            .flatten()
            .is_none_or(|n| u64::try_from(n).unwrap_or(0) <= keep)
        {
            return Ok(None);
        }
        let sql = retention::row_cap_threshold_sql(Dialect::Mysql, table, keep);
        self.exchange(|c| c.query_first::<i64, _>(sql.as_str()))
    }

    fn marker_read(&mut self, id: &str) -> Result<Option<u64>, DbError> {
        self.exchange(|c| {
            c.exec_first(
                "SELECT last_seq FROM siptraced_spool_marker WHERE spool_id = ?",
                (id,),
            )
        })
    }

    fn marker_insert(&mut self, id: &str, last: u64) -> Result<(), DbError> {
        self.exchange(|c| {
            c.exec_drop(
                "INSERT IGNORE INTO siptraced_spool_marker (spool_id, last_seq) VALUES (?, ?)",
                (id, last),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(msg_len: usize) -> Row {
        Row {
            table: None,
            msg: vec![b'x'; msg_len].into(),
            callid: "".into(),
            method: "".into(),
            status: "".into(),
            fromip: "".into(),
            toip: "".into(),
            time_sec: 0,
            time_us: 0,
            time_stamp: "".into(),
            direction: "in",
            fromtag: "".into(),
            totag: "".into(),
            traced_user: String::new(),
        }
    }

    #[test]
    fn chunks_are_powers_of_two_within_budget() {
        let r = row(100);
        let per = row_size(&r);
        let check = |count: usize, budget: usize, want: &[usize]| {
            let rows: Vec<&Row> = std::iter::repeat_n(&r, count).collect();
            assert_eq!(
                chunk_sizes(&rows, budget),
                want,
                "{count} rows, budget {budget}"
            );
        };
        check(1, usize::MAX, &[1]);
        check(13, usize::MAX, &[8, 4, 1]);
        check(1000, usize::MAX, &[512, 256, 128, 64, 32, 8]);
        check(2100, usize::MAX, &[1024, 1024, 32, 16, 4]);
        check(5, per * 2, &[2, 2, 1]);
        check(3, 1, &[1, 1, 1]);
        check(0, 1, &[]);
    }
}
