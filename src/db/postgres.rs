//! PostgreSQL engine.
//!
//! Uses tokio-postgres (the engine under the sync `postgres` crate) on a
//! private current-thread runtime, driven only inside `block_on`: the caller
//! stays synchronous, and every exchange runs under `tokio::time::timeout`
//! (`io_timeout`), which the sync crate cannot do — a stalled server (stopped
//! process, full disk hanging the WAL writer) costs at most that long, then
//! the connection is dropped and the batch reported as a connection error.
//! No TLS (NoTls). A host name other than an IP literal is resolved on
//! tokio's blocking pool (one helper thread); use an IP to avoid it.
//!
//! A run of rows is ONE statement: `INSERT … SELECT * FROM unnest($1::text[],
//! …)`, one array parameter per column, prepared once per table. Measured
//! here (examples/db_bench.rs, ~800-byte rows, 1000-row batches): ~85–100k
//! rows/s, against ~12k rows/s for a prepared single-row INSERT executed per
//! row in one transaction (one round trip per row).
//! Text is escaped for the server encoding (UTF8 and SQL_ASCII: `\xNN` for
//! NUL and invalid UTF-8; LATIN1, which holds every byte: the bytes as they
//! are, NUL as `\x00`; any other encoding: every non-ASCII byte as `\xNN`)
//! and cut to VARCHAR(n).
//! Table names fold to lower case as unquoted SQL identifiers do, then are
//! quoted (reserved words work).
//! Depends on tokio-postgres, tokio and the store/schema/encode modules.

use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use tokio::runtime::Runtime;
use tokio::task::JoinHandle;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, NoTls, Statement};

use super::encode;
use super::retention::{self, Dialect, PurgeRule, PurgeTarget, TimeKind};
use super::schema::{Charset, ColumnInfo, ColumnKind, Layout};
use super::store::{Counts, Engine, ErrClass, Fault, MarkCas, Run};
use super::url::ServerUrl;
use super::{DbError, MARKER_TABLE, OpenOptions, PartitionReport, Value, missing_table_hint};

/// sql/postgres/siptraced-spool-marker.sql, run when the table is missing.
const MARKER_DDL: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/sql/postgres/siptraced-spool-marker.sql"
));

/// TCP keepalive idle time: a peer gone silently (host down) is noticed
/// between batches instead of at the next write.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);

pub(crate) struct Postgres {
    server: ServerUrl,
    connect_timeout: Duration,
    io_timeout: Duration,
    rt: Runtime,
    conn: Option<PgConn>,
}

struct PgConn {
    client: Client,
    /// The task polling the socket; aborted when the connection is dropped
    /// so that a hung socket does not linger in the runtime.
    task: JoinHandle<()>,
    /// What the server's encoding can store.
    charset: Charset,
    stmts: HashMap<String, Statement>,
}

impl Drop for PgConn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `"name"` after folding to lower case (unquoted identifiers fold so in
/// PostgreSQL; Kamailio's SQL uses them unquoted).
fn pg_ident(name: &str) -> String {
    format!("\"{}\"", name.to_ascii_lowercase().replace('"', "\"\""))
}

impl Postgres {
    pub fn open(server: ServerUrl, opts: &OpenOptions) -> Result<Postgres, DbError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| DbError::Connection {
                backend: "postgres",
                target: server.display_target(),
                detail: format!("cannot set up the I/O runtime: {e}"),
            })?;
        let mut pg = Postgres {
            server,
            connect_timeout: opts.connect_timeout,
            io_timeout: opts.io_timeout,
            rt,
            conn: None,
        };
        pg.connection()?;
        Ok(pg)
    }

    fn conn_error(&self, detail: String) -> DbError {
        DbError::Connection {
            backend: "postgres",
            target: self.target(),
            detail,
        }
    }

    fn connect(&self) -> Result<PgConn, DbError> {
        let s = &self.server;
        let mut cfg = Config::new();
        cfg.user(&s.user)
            .dbname(&s.database)
            .host(&s.host)
            .port(s.port)
            .application_name("siptraced")
            .connect_timeout(self.connect_timeout)
            .keepalives(true)
            .keepalives_idle(KEEPALIVE_IDLE)
            // Unacknowledged data (peer host gone) fails the socket after this.
            .tcp_user_timeout(self.io_timeout);
        if let Some(pw) = &s.password {
            cfg.password(pw);
        }
        // connect_timeout bounds the TCP connect AND the login: a server
        // that accepts and never answers (stopped process, black hole
        // behind a NAT) stalls a reconnect try, and so the reactor, at most
        // this long.
        let deadline = self.connect_timeout;
        let (client, connection) = match self
            .rt
            .block_on(async { tokio::time::timeout(deadline, cfg.connect(NoTls)).await })
        {
            Err(_) => {
                return Err(DbError::Timeout {
                    backend: "postgres",
                    target: self.target(),
                    detail: format!("no login within {} ms", deadline.as_millis()),
                });
            }
            Ok(Err(e)) => return Err(self.fault(e).into_db("postgres", self.target())),
            Ok(Ok(pair)) => pair,
        };
        let task = self.rt.spawn(async move {
            if let Err(e) = connection.await {
                log::debug!("siptrace db: postgres connection ended: {e}");
            }
        });
        let mut conn = PgConn {
            client,
            task,
            charset: Charset::Utf8,
            stmts: HashMap::new(),
        };
        let row = self
            .block(conn.client.query_one("SHOW server_encoding", &[]))
            .map_err(|f| f.into_db("postgres", self.target()))?;
        let encoding: String = row.get(0);
        conn.charset = match encoding.to_ascii_uppercase().as_str() {
            // SQL_ASCII stores what the (UTF8) client sends without
            // conversion: valid UTF-8 goes in as is, like UTF8.
            "UTF8" | "SQL_ASCII" => Charset::Utf8,
            // Every byte is a LATIN1 character: sent as that character, the
            // server stores the original byte (what Kamailio stored).
            "LATIN1" => Charset::Latin1,
            _ => {
                log::warn!(
                    "siptrace db: {} has encoding {encoding}; non-ASCII bytes are written as \\xNN",
                    self.target()
                );
                Charset::Ascii
            }
        };
        Ok(conn)
    }

    /// The live connection, connecting first if there is none.
    fn connection(&mut self) -> Result<&mut PgConn, DbError> {
        if self.conn.is_none() {
            self.conn = Some(self.connect()?);
        }
        match self.conn.as_mut() {
            Some(c) => Ok(c),
            None => Err(DbError::Connection {
                backend: "postgres",
                target: self.server.display_target(),
                detail: "not connected".to_string(),
            }),
        }
    }

    /// Run one exchange under the I/O timeout.
    fn block<T>(
        &self,
        fut: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, Fault> {
        block_on(&self.rt, self.io_timeout, fut, &self.target())
    }

    fn fault(&self, e: tokio_postgres::Error) -> Fault {
        classify(e, &self.target())
    }
}

fn block_on<T>(
    rt: &Runtime,
    io_timeout: Duration,
    fut: impl Future<Output = Result<T, tokio_postgres::Error>>,
    target: &str,
) -> Result<T, Fault> {
    // The timer must be created inside the runtime (it needs its clock).
    match rt.block_on(async { tokio::time::timeout(io_timeout, fut).await }) {
        Err(_) => Err(Fault::Db(DbError::Timeout {
            backend: "postgres",
            target: target.to_string(),
            detail: format!("no answer within {} ms", io_timeout.as_millis()),
        })),
        Ok(r) => r.map_err(|e| classify(e, target)),
    }
}

/// Sort an error by what the caller can do about it, from its SQLSTATE
/// (PostgreSQL manual, appendix A "Error Codes").
fn classify(e: tokio_postgres::Error, target: &str) -> Fault {
    let Some(db) = e.as_db_error() else {
        // No SQLSTATE: I/O error, closed connection, refused connect.
        return Fault::Db(DbError::Connection {
            backend: "postgres",
            target: target.to_string(),
            detail: error_text(&e),
        });
    };
    let code = db.code().code();
    let detail = format!("{} (SQLSTATE {code})", db.message());
    let db_err = |class: ErrClass| class.fault("postgres", target.to_string(), detail.clone());
    match code {
        // Class 08 connection exception; 57P01..57P05 admin/crash shutdown,
        // cannot connect now, idle timeouts.
        c if c.starts_with("08") || c.starts_with("57P") => db_err(ErrClass::Connection),
        // 57014 query_canceled (statement_timeout), class 40 deadlock and
        // serialization failure, 55P03 lock_not_available, class 53
        // insufficient resources (disk full, too many connections).
        "57014" | "55P03" => db_err(ErrClass::Busy),
        c if c.starts_with("40") || c.starts_with("53") => db_err(ErrClass::Busy),
        // undefined table / column, datatype mismatch: the schema moved.
        "42P01" | "42703" | "42804" => Fault::Schema { detail },
        // Class 22 data exception, 23 integrity constraint violation.
        c if c.starts_with("22") || c.starts_with("23") => Fault::Data { detail },
        _ => db_err(ErrClass::Rejected),
    }
}

/// The error with its cause (tokio-postgres puts the OS error in `source`).
fn error_text(e: &tokio_postgres::Error) -> String {
    match std::error::Error::source(e) {
        Some(src) => format!("{e}: {src}"),
        None => e.to_string(),
    }
}

/// One array parameter.
enum Column<'a> {
    Text(Vec<Cow<'a, str>>),
    Int4(Vec<i32>),
    Int8(Vec<i64>),
}

impl Column<'_> {
    fn param(&self) -> &(dyn ToSql + Sync) {
        match self {
            Column::Text(v) => v,
            Column::Int4(v) => v,
            Column::Int8(v) => v,
        }
    }
}

/// The statement for one table: every column bound as an array, unnested.
fn insert_sql(layout: &Layout) -> String {
    let mut cols = Vec::new();
    let mut arrays = Vec::new();
    for (i, t) in layout.targets.iter().enumerate() {
        cols.push(pg_ident(&t.column.name));
        let n = i + 1;
        arrays.push(match (&t.field, &t.column.kind) {
            (super::schema::Field::TimeUs, _) => format!("${n}::int4[]"),
            (_, ColumnKind::Integer) => format!("${n}::int8[]"),
            // The local-time text is parsed by the server into the column's
            // type; the type name comes from a fixed list, never from input.
            (_, ColumnKind::Timestamp(ty)) if !ty.is_empty() => {
                format!("${n}::text[]::{ty}[]")
            }
            _ => format!("${n}::text[]"),
        });
    }
    format!(
        "INSERT INTO {} ({}) SELECT * FROM unnest({})",
        pg_ident(&layout.table),
        cols.join(", "),
        arrays.join(", ")
    )
}

/// Bytes for a LATIN1 database: each byte as the LATIN1 character of that
/// value (the server converts them back to the same bytes), NUL as `\x00`;
/// cut to `max_chars` (one byte per character). Flags: (escaped, truncated).
fn latin1_text(bytes: &[u8], max_chars: Option<usize>) -> (String, bool, bool) {
    let limit = max_chars.unwrap_or(usize::MAX);
    let mut out = String::with_capacity(bytes.len() + bytes.len() / 8);
    let mut n = 0;
    let (mut escaped, mut cut) = (false, false);
    for &b in bytes {
        let piece: &[char] = if b == 0 {
            &['\\', 'x', '0', '0']
        } else {
            &[char::from(b)]
        };
        if n + piece.len() > limit {
            cut = true;
            break;
        }
        escaped |= b == 0;
        out.extend(piece);
        n += piece.len();
    }
    (out, escaped, cut)
}

/// [`insert_sql`] that also moves the spool marker, as one statement: the
/// rows go in only if the UPDATE matched, i.e. the marker still held the
/// expected value. The UPDATE takes the marker row's lock before any row
/// is inserted, so a competing statement (an earlier attempt still running
/// on a connection we gave up on) is either waited for or finds the marker
/// moved and inserts nothing. Parameters after the columns: new value,
/// spool id, expected value.
fn insert_sql_marked(layout: &Layout) -> String {
    let n = layout.targets.len();
    format!(
        "WITH m AS (UPDATE {MARKER_TABLE} SET last_seq = ${}::int8 \
         WHERE spool_id = ${}::text AND last_seq = ${}::int8 RETURNING 1) \
         {} WHERE EXISTS (SELECT 1 FROM m)",
        n + 1,
        n + 2,
        n + 3,
        insert_sql(layout)
    )
}

/// Marker statement of a multi-table transaction (runs before the inserts).
const MARKER_CAS: &str = "UPDATE siptraced_spool_marker SET last_seq = $1::int8 \
                          WHERE spool_id = $2::text AND last_seq = $3::int8";

/// A marker value as the BIGINT column holds it (numbers stay below 2^63).
fn seq_param(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The array parameters of one run, and its escape/cut tallies.
fn columns_of<'a>(run: &Run<'a>, charset: Charset) -> (Vec<Column<'a>>, Counts) {
    let n = run.rows.len();
    let mut escaped = vec![false; n];
    let mut cut = vec![false; n];
    let mut out = Vec::with_capacity(run.layout.targets.len());
    for t in &run.layout.targets {
        let info = ColumnInfo {
            charset,
            ..t.column.clone()
        };
        let column = match (t.field, &t.column.kind) {
            (super::schema::Field::TimeUs, _) => Column::Int4(
                run.rows
                    .iter()
                    .map(|r| i32::try_from(r.time_us).unwrap_or(i32::MAX))
                    .collect(),
            ),
            _ => {
                let mut texts = Vec::with_capacity(n);
                let mut ints = Vec::new();
                for (i, r) in run.rows.iter().enumerate() {
                    match r.value_for(t) {
                        Value::Int(v) => ints.push(v),
                        Value::Text(b) if charset == Charset::Latin1 => {
                            let (text, e, c) = latin1_text(b, info.max_chars);
                            escaped[i] |= e;
                            cut[i] |= c;
                            texts.push(Cow::Owned(text));
                        }
                        Value::Text(b) => {
                            let (text, e, c) = encode::for_column(b, &info);
                            escaped[i] |= e;
                            cut[i] |= c;
                            texts.push(text);
                        }
                    }
                }
                if ints.is_empty() {
                    Column::Text(texts)
                } else {
                    Column::Int8(ints)
                }
            }
        };
        out.push(column);
    }
    let mut counts = Counts::default();
    for (e, c) in escaped.into_iter().zip(cut) {
        counts.row(e, c);
    }
    (out, counts)
}

impl Engine for Postgres {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn target(&self) -> String {
        format!("postgres://{}", self.server.display_target())
    }

    fn missing_table_hint(&self) -> String {
        missing_table_hint("postgres", &self.target())
    }

    fn columns(&mut self, table: &str) -> Result<Option<Vec<ColumnInfo>>, DbError> {
        let ident = pg_ident(table);
        let charset = self.connection()?.charset;
        let Some(conn) = self.conn.as_ref() else {
            return Err(self.conn_error("not connected".to_string()));
        };
        let exists = self
            .block(
                conn.client
                    .query_one("SELECT to_regclass($1) IS NOT NULL", &[&ident]),
            )
            .map_err(|f| f.into_db("postgres", self.target()))?;
        if !exists.get::<_, bool>(0) {
            return Ok(None);
        }
        // atttypmod of varchar(n)/char(n) is n + 4 (VARHDRSZ).
        let rows = self
            .block(conn.client.query(
                "SELECT a.attname::text, t.typname::text, \
                        CASE WHEN a.atttypid IN (1042, 1043) AND a.atttypmod > 4 \
                             THEN a.atttypmod - 4 END \
                 FROM pg_catalog.pg_attribute a \
                 JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
                 WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped \
                 ORDER BY a.attnum",
                &[&ident],
            ))
            .map_err(|f| f.into_db("postgres", self.target()))?;
        Ok(Some(
            rows.iter()
                .map(|r| {
                    let name: String = r.get(0);
                    let ty: String = r.get(1);
                    let len: Option<i32> = r.get(2);
                    ColumnInfo {
                        kind: pg_kind(&ty),
                        max_chars: len.and_then(|n| usize::try_from(n).ok()),
                        max_bytes: None,
                        charset,
                        name,
                    }
                })
                .collect(),
        ))
    }

    fn insert(&mut self, runs: &[Run<'_>], mark: Option<&MarkCas<'_>>) -> Result<Counts, Fault> {
        let target = self.target();
        let io_timeout = self.io_timeout;
        self.connection()?;
        let Postgres {
            rt,
            conn: Some(conn),
            ..
        } = self
        else {
            return Err(Fault::Db(self.conn_error("not connected".to_string())));
        };
        // One run with a marker: the marker rides in the statement.
        let single_marked = mark.is_some() && runs.len() == 1;
        for run in runs {
            let table = &run.layout.table;
            let key = stmt_key(table, single_marked);
            if !conn.stmts.contains_key(&key) {
                let sql = if single_marked {
                    insert_sql_marked(&run.layout)
                } else {
                    insert_sql(&run.layout)
                };
                let stmt = block_on(rt, io_timeout, conn.client.prepare(&sql), &target)?;
                conn.stmts.insert(key, stmt);
            }
        }
        let mut counts = Counts::default();
        let mut batches = Vec::with_capacity(runs.len());
        for run in runs {
            let (cols, c) = columns_of(run, conn.charset);
            counts.escaped += c.escaped;
            counts.truncated += c.truncated;
            let key = stmt_key(&run.layout.table, single_marked);
            batches.push((&conn.stmts[&key], cols, run.rows.len() as u64));
        }
        let marker = mark.map(|m| (seq_param(m.new), m.id.to_string(), seq_param(m.expected)));
        let client = &mut conn.client;
        let work = async {
            if let [(stmt, cols, n)] = batches.as_slice() {
                // One statement is atomic by itself.
                let mut params: Vec<&(dyn ToSql + Sync)> = cols.iter().map(Column::param).collect();
                if let Some((new, id, expected)) = &marker {
                    params.extend([new as &(dyn ToSql + Sync), id, expected]);
                }
                let done = client.execute(*stmt, &params).await?;
                return Ok(marker.is_none() || done == *n);
            }
            // Several need a transaction (dropped uncommitted on error or
            // when the marker moved = rolled back). The marker goes first so
            // its row lock orders competing writers before any insert.
            let tx = client.transaction().await?;
            if let Some((new, id, expected)) = &marker
                && tx
                    .execute(MARKER_CAS, &[new as &(dyn ToSql + Sync), id, expected])
                    .await?
                    != 1
            {
                return Ok(false);
            }
            for (stmt, cols, _) in &batches {
                let params: Vec<&(dyn ToSql + Sync)> = cols.iter().map(Column::param).collect();
                tx.execute(*stmt, &params).await?;
            }
            tx.commit().await?;
            Ok(true)
        };
        if !block_on(rt, io_timeout, work, &target)? {
            return Err(Fault::Moved);
        }
        Ok(counts)
    }

    fn supports_marker(&self) -> bool {
        true
    }

    fn marker_create(&mut self) -> Result<(), DbError> {
        self.connection()?;
        let Some(conn) = self.conn.as_ref() else {
            return Err(self.conn_error("not connected".to_string()));
        };
        self.block(conn.client.batch_execute(MARKER_DDL))
            .map_err(|f| f.into_db("postgres", self.target()))
    }

    fn marker_read(&mut self, id: &str) -> Result<Option<u64>, DbError> {
        self.connection()?;
        let Some(conn) = self.conn.as_ref() else {
            return Err(self.conn_error("not connected".to_string()));
        };
        let row = self
            .block(conn.client.query_opt(
                "SELECT last_seq FROM siptraced_spool_marker WHERE spool_id = $1::text",
                &[&id],
            ))
            .map_err(|f| f.into_db("postgres", self.target()))?;
        Ok(row.map(|r| u64::try_from(r.get::<_, i64>(0)).unwrap_or(0)))
    }

    fn marker_insert(&mut self, id: &str, last: u64) -> Result<(), DbError> {
        self.connection()?;
        let Some(conn) = self.conn.as_ref() else {
            return Err(self.conn_error("not connected".to_string()));
        };
        self.block(conn.client.execute(
            "INSERT INTO siptraced_spool_marker (spool_id, last_seq) \
             VALUES ($1::text, $2::int8) ON CONFLICT (spool_id) DO NOTHING",
            &[&id, &seq_param(last)],
        ))
        .map(|_| ())
        .map_err(|f| f.into_db("postgres", self.target()))
    }

    fn purge_batch(
        &mut self,
        target: &PurgeTarget,
        rule: &PurgeRule,
        limit: u32,
    ) -> Result<u64, DbError> {
        let Some(sql) = retention::delete_batch_sql(Dialect::Postgres, target, rule, limit) else {
            return Ok(0);
        };
        self.connection()?;
        let Some(conn) = self.conn.as_ref() else {
            return Err(self.conn_error("not connected".to_string()));
        };
        let limit = i64::from(limit);
        let r = match rule {
            PurgeRule::Older { before, method } => {
                let time: Box<dyn ToSql + Sync> = match target.time_kind {
                    TimeKind::UnixSeconds => Box::new(before.sec),
                    _ => Box::new(before.local.as_str()),
                };
                match method {
                    Some(m) => self.block(
                        conn.client
                            .execute(sql.as_str(), &[time.as_ref(), &m.as_str(), &limit]),
                    ),
                    None => self.block(conn.client.execute(sql.as_str(), &[time.as_ref(), &limit])),
                }
            }
            PurgeRule::IdBelow(id) => self.block(conn.client.execute(sql.as_str(), &[id, &limit])),
        };
        r.map_err(|f| f.into_db("postgres", self.target()))
    }

    fn row_cap_threshold(&mut self, table: &str, keep: u64) -> Result<Option<i64>, DbError> {
        self.connection()?;
        let Some(conn) = self.conn.as_ref() else {
            return Err(self.conn_error("not connected".to_string()));
        };
        let span: Option<i64> = self
            .block(conn.client.query_one(
                retention::id_span_sql(Dialect::Postgres, table).as_str(),
                &[],
            ))
            .map_err(|f| f.into_db("postgres", self.target()))?
            .get(0);
        if span.is_none_or(|n| n <= seq_param(keep)) {
            return Ok(None);
        }
        let sql = retention::row_cap_threshold_sql(Dialect::Postgres, table, keep);
        let offset = seq_param(keep.saturating_sub(1));
        let row = self
            .block(conn.client.query_opt(sql.as_str(), &[&offset]))
            .map_err(|f| f.into_db("postgres", self.target()))?;
        Ok(row.map(|r| r.get::<_, i64>(0)))
    }

    fn maintain_partitions(
        &mut self,
        table: &str,
        keep_from: Option<&str>,
        ahead: &[String],
    ) -> Result<PartitionReport, DbError> {
        self.connection()?;
        let target = self.target();
        let Some(conn) = self.conn.as_ref() else {
            return Err(self.conn_error("not connected".to_string()));
        };
        let db = |f: Fault| f.into_db("postgres", target.clone());
        let mut report = PartitionReport::default();
        let parent = pg_ident(table);
        let partitioned: bool = self
            .block(conn.client.query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_partitioned_table                  WHERE partrelid = to_regclass($1::text))",
                &[&parent],
            ))
            .map_err(db)?
            .get(0);
        if !partitioned {
            return Ok(report);
        }
        report.partitioned = true;
        let parts: Vec<(String, i64)> = self
            .block(conn.client.query(
                "SELECT c.relname::text, GREATEST(c.reltuples, 0)::int8 FROM pg_inherits i                  JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass($1::text)",
                &[&parent],
            ))
            .map_err(db)?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        if let Some(keep_from) = keep_from.filter(|d| is_day(d)) {
            for (name, rows) in &parts {
                // Only names of our pattern: the DEFAULT partition and anything
                // a person attached under another name are never dropped whole.
                let Some(day) = retention::partition_day(table, name) else {
                    continue;
                };
                if day.as_str() >= keep_from {
                    continue;
                }
                self.block(
                    conn.client
                        .batch_execute(&format!("DROP TABLE {}", pg_ident(name))),
                )
                .map_err(db)?;
                report.dropped.push(name.clone());
                report.dropped_rows += u64::try_from(*rows).unwrap_or(0);
            }
        }
        for pair in ahead.windows(2) {
            let (day, next) = (&pair[0], &pair[1]);
            if !is_day(day) || !is_day(next) {
                continue;
            }
            let Some(name) = retention::partition_name(table, day) else {
                continue;
            };
            if parts.iter().any(|(n, _)| *n == name) {
                continue;
            }
            // Days are digits and dashes checked above: safe as literals,
            // which DDL needs (it takes no parameters).
            let ddl = format!(
                "CREATE TABLE IF NOT EXISTS {} PARTITION OF {parent} FOR VALUES FROM ('{day}') TO ('{next}')",
                pg_ident(&name)
            );
            match self.block(conn.client.batch_execute(&ddl)) {
                Ok(()) => report.created.push(name),
                Err(Fault::Db(e)) if e.is_connection() => return Err(e),
                // Typically: the DEFAULT partition already holds rows of that
                // day. They stay there (still purged row by row); say so.
                Err(f) => log::warn!(
                    "siptrace retention: cannot create partition {name} of {table}: {};                      rows of {day} stay in the DEFAULT partition",
                    db(f)
                ),
            }
        }
        Ok(report)
    }

    fn drop_connection(&mut self) {
        self.conn = None;
    }

    fn forget_statements(&mut self) {
        if let Some(c) = self.conn.as_mut() {
            c.stmts.clear();
        }
    }
}

/// `YYYY-MM-DD`, digits where digits go.
fn is_day(s: &str) -> bool {
    s.len() == 10
        && s.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        })
}

/// Prepared-statement cache key: plain and marked inserts differ.
fn stmt_key(table: &str, marked: bool) -> String {
    if marked {
        format!("{table}\0marked")
    } else {
        table.to_string()
    }
}

/// Column kind from pg_type.typname.
fn pg_kind(typname: &str) -> ColumnKind {
    match typname {
        "text" | "varchar" | "bpchar" | "name" | "citext" => ColumnKind::Text,
        "int2" | "int4" | "int8" | "numeric" => ColumnKind::Integer,
        "timestamp" => ColumnKind::Timestamp("timestamp"),
        "timestamptz" => ColumnKind::Timestamp("timestamptz"),
        "date" => ColumnKind::Timestamp("date"),
        _ => ColumnKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::schema::{ColumnInfo, Layout};

    #[test]
    fn latin1_bytes_become_their_characters() {
        assert_eq!(
            latin1_text(b"a\xe9\xff\x80\0z", None),
            ("a\u{e9}\u{ff}\u{80}\\x00z".to_string(), true, false)
        );
        assert_eq!(
            latin1_text(b"\xe9\xe9\xe9", Some(2)),
            ("\u{e9}\u{e9}".to_string(), false, true)
        );
        assert_eq!(
            latin1_text(b"ab\0", Some(4)),
            ("ab".to_string(), false, true)
        );
    }

    #[test]
    fn statement_shape() {
        let mut cols: Vec<ColumnInfo> = [
            "id",
            "time_stamp",
            "callid",
            "traced_user",
            "msg",
            "method",
            "status",
            "fromip",
            "toip",
            "fromtag",
            "direction",
            "time_us",
        ]
        .iter()
        .map(|n| ColumnInfo::text(n))
        .collect();
        cols[1].kind = ColumnKind::Timestamp("timestamp");
        cols[11].kind = ColumnKind::Integer;
        let l = Layout::detect("Trace_B", &cols).unwrap();
        assert_eq!(
            insert_sql(&l),
            "INSERT INTO \"trace_b\" (\"msg\", \"callid\", \"method\", \"status\", \"fromip\", \
             \"toip\", \"time_stamp\", \"direction\", \"fromtag\", \"traced_user\", \"time_us\") \
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
             $6::text[], $7::text[]::timestamp[], $8::text[], $9::text[], $10::text[], $11::int4[])"
        );
    }
}
