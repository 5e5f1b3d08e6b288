//! The `sip_trace` table, read-only, on any backend the daemon writes:
//! SQLite (opened read-only), PostgreSQL and MySQL/MariaDB (sessions set
//! read-only), dbtext (the file read whole).
//!
//! The table's layout is read from the catalog and checked with
//! `db::schema` (v2–v4, docs/decisions.md §3; v1's `date` works too); only
//! columns the table has are selected. A search is two SELECTs whose
//! filters are bound parameters on the indexed columns of
//! sql/*/siptrace-create.sql: first the Call-IDs (`time_stamp`, `callid`,
//! `traced_user` narrow it; GROUP BY callid), then every row of those
//! Call-IDs through the `callid` index. Identifiers enter SQL only
//! validated and quoted; SQL is never built from user text.
//!
//! Depends on rusqlite, tokio-postgres, mysql (per cargo feature, as `db`
//! does), `db::url`, `db::schema`, `db::text`'s reader and the pure parts of
//! `inspect`. Writes nothing anywhere.

use std::collections::HashMap;
#[cfg(feature = "dbtext")]
use std::path::PathBuf;
use std::time::Duration;

use crate::clock::local_datetime;
use crate::db::schema::{ColumnInfo, ColumnKind, Field, Layout, LayoutProblem};
use crate::db::{DbUrl, UrlError, valid_table_name};

use super::StoredRow;
use super::call::{
    CallSummary, Filter, ip_patterns, like_escape, status_pattern, summarize, user_in_call,
};
use super::when::local_to_epoch;

/// Why the table cannot be read. Each says what to check.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{0}")]
    Url(#[from] UrlError),
    #[error(
        "table name {0:?} is not an SQL identifier [A-Za-z_][A-Za-z0-9_]{{0,63}}; check --table"
    )]
    BadTableName(String),
    #[error(
        "this siptrace cannot read {0} URLs (built without that backend, or not supported by \
         siptrace); use the daemon's native URL (sqlite, postgres, mysql, text)"
    )]
    Unsupported(&'static str),
    #[error("{target} unreachable: {detail}; is the server running, and --db right?")]
    Unreachable { target: String, detail: String },
    #[error("{0}: no such database file (check --db, or db_url in the config)")]
    NoFile(String),
    #[error("table {table} does not exist in {target}; check --table (or modparam \"table\")")]
    NoTable { table: String, target: String },
    #[error("table {table} in {target} is not a sip_trace table: {problem}")]
    BadLayout {
        table: String,
        target: String,
        problem: LayoutProblem,
    },
    #[error("{target}: query failed: {detail}")]
    Query { target: String, detail: String },
    #[error("{0}")]
    Text(String),
}

/// Connect and query timeouts: the tool is interactive.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Call-IDs per `callid IN (…)` statement: well under every engine's
/// parameter limit, and one round trip per hundreds of calls.
const IN_CHUNK: usize = 500;

/// Which columns the table has and what they are called.
#[derive(Debug, Clone)]
struct Cols {
    names: HashMap<Field, String>,
    time_kind: ColumnKind,
    version: u8,
    id: bool,
}

impl Cols {
    fn of(layout: &Layout, all: &[ColumnInfo]) -> Cols {
        let names: HashMap<Field, String> = layout
            .targets
            .iter()
            .map(|t| (t.field, t.column.name.clone()))
            .collect();
        let time_kind = layout
            .targets
            .iter()
            .find(|t| t.field == Field::Time)
            .map(|t| t.column.kind.clone())
            .unwrap_or(ColumnKind::Text);
        Cols {
            names,
            time_kind,
            version: layout.version(),
            id: all.iter().any(|c| c.name.eq_ignore_ascii_case("id")),
        }
    }
    fn has(&self, f: Field) -> bool {
        self.names.contains_key(&f)
    }
}

/// SQL flavours: how to quote, bind and cast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Sqlite,
    Postgres,
    Mysql,
}

impl Dialect {
    fn ident(self, name: &str) -> String {
        match self {
            Dialect::Sqlite => format!("\"{}\"", name.replace('"', "\"\"")),
            // Unquoted identifiers fold to lower case in PostgreSQL, and
            // Kamailio's scripts create them unquoted.
            Dialect::Postgres => format!("\"{}\"", name.to_ascii_lowercase().replace('"', "\"\"")),
            Dialect::Mysql => format!("`{}`", name.replace('`', "``")),
        }
    }

    /// The n-th (1-based) placeholder for a text value.
    fn param(self, n: usize) -> String {
        match self {
            Dialect::Postgres => format!("${n}::text"),
            _ => "?".to_string(),
        }
    }

    /// A column selected as text (msg as its bytes).
    fn select(self, col: &str, field: Field, time_kind: &ColumnKind) -> String {
        let c = self.ident(col);
        match (self, field) {
            (Dialect::Sqlite, _) => c,
            (Dialect::Postgres, Field::Time) if matches!(time_kind, ColumnKind::Timestamp(_)) => {
                format!("to_char({c}, 'YYYY-MM-DD HH24:MI:SS')")
            }
            (Dialect::Postgres, _) => format!("CAST({c} AS text)"),
            // The column's bytes, not converted to the connection charset:
            // a latin1 msg holds the bytes Kamailio stored.
            (Dialect::Mysql, Field::Msg) => format!("CAST({c} AS BINARY)"),
            (Dialect::Mysql, _) => format!("CAST({c} AS CHAR)"),
        }
    }

    /// `time <op> placeholder`, the value being local `YYYY-MM-DD HH:MM:SS`.
    fn time_cmp(self, col: &str, op: &str, ph: &str, kind: &ColumnKind) -> String {
        let c = self.ident(col);
        match (self, kind) {
            (Dialect::Postgres, ColumnKind::Timestamp(t)) => format!("{c} {op} {ph}::{t}"),
            _ => format!("{c} {op} {ph}"),
        }
    }
}

/// Parameters in placeholder order (what `?` engines need), each
/// answered with its placeholder text.
struct Binder {
    d: Dialect,
    params: Vec<String>,
}

impl Binder {
    fn bind(&mut self, v: &str) -> String {
        self.params.push(v.to_string());
        self.d.param(self.params.len())
    }
}

enum Engine {
    #[cfg(feature = "sqlite")]
    Sqlite(rusqlite::Connection),
    #[cfg(feature = "postgres")]
    Postgres(Pg),
    #[cfg(feature = "mysql")]
    Mysql(Box<mysql::Conn>),
    #[cfg(feature = "dbtext")]
    Text(PathBuf),
}

#[cfg(feature = "postgres")]
struct Pg {
    rt: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

/// One readable `sip_trace` table.
pub struct Source {
    engine: Engine,
    table: String,
    cols: Cols,
    target: String,
    /// dbtext: the whole table, read once.
    #[cfg(feature = "dbtext")]
    text_rows: Option<Vec<StoredRow>>,
}

/// A value as the SQL engines hand it back: bytes, or NULL.
type Cell = Option<Vec<u8>>;

impl Source {
    /// Open `url` and check that `table` can be read as `sip_trace`.
    pub fn open(url: &str, table: &str) -> Result<Source, SourceError> {
        if !valid_table_name(table) {
            return Err(SourceError::BadTableName(table.to_string()));
        }
        let parsed = crate::db::url::parse(url)?;
        let target = parsed.redacted();
        let (engine, columns) = match parsed {
            #[cfg(feature = "sqlite")]
            DbUrl::Sqlite { path } => open_sqlite(&path, table, &target)?,
            #[cfg(feature = "postgres")]
            DbUrl::Postgres(server) => open_pg(&server, table, &target)?,
            #[cfg(feature = "mysql")]
            DbUrl::Mysql(server) => open_mysql(&server, table, &target)?,
            #[cfg(feature = "dbtext")]
            DbUrl::Text { dir } => open_text(&dir, table, &target)?,
            DbUrl::Odbc(_) => return Err(SourceError::Unsupported("unixodbc")),
            #[allow(unreachable_patterns)]
            _ => return Err(SourceError::Unsupported("this backend's")),
        };
        let Some(columns) = columns else {
            return Err(SourceError::NoTable {
                table: table.to_string(),
                target,
            });
        };
        let layout = Layout::detect(table, &columns).map_err(|problem| SourceError::BadLayout {
            table: table.to_string(),
            target: target.clone(),
            problem,
        })?;
        Ok(Source {
            engine,
            table: table.to_string(),
            cols: Cols::of(&layout, &columns),
            target,
            #[cfg(feature = "dbtext")]
            text_rows: None,
        })
    }

    /// Kamailio's table version of the layout (2 = no time_us, 4 = totag).
    pub fn version(&self) -> u8 {
        self.cols.version
    }

    /// Rows carry microseconds (v3+).
    pub fn has_time_us(&self) -> bool {
        self.cols.has(Field::TimeUs)
    }

    /// E.g. `sqlite:///var/lib/siptraced/siptrace.db table sip_trace (v4)`.
    pub fn describe(&self) -> String {
        format!(
            "{} table {} (v{})",
            self.target, self.table, self.cols.version
        )
    }

    fn dialect(&self) -> Option<Dialect> {
        match self.engine {
            #[cfg(feature = "sqlite")]
            Engine::Sqlite(_) => Some(Dialect::Sqlite),
            #[cfg(feature = "postgres")]
            Engine::Postgres(_) => Some(Dialect::Postgres),
            #[cfg(feature = "mysql")]
            Engine::Mysql(_) => Some(Dialect::Mysql),
            #[cfg(feature = "dbtext")]
            Engine::Text(_) => None,
        }
    }

    /// The calls matching `f`, newest first, at most `limit`.
    pub fn calls(&mut self, f: &Filter, limit: usize) -> Result<Vec<CallSummary>, SourceError> {
        let groups = self.matching_calls(f, limit)?;
        let mut out: Vec<CallSummary> = groups.iter().filter_map(|g| summarize(g)).collect();
        out.sort_by(|a, b| {
            b.start_time_us
                .cmp(&a.start_time_us)
                .then(a.callid.cmp(&b.callid))
        });
        Ok(out)
    }

    /// The rows of the calls matching `f` (each call's rows in time order),
    /// newest call first, at most `limit` calls.
    pub fn matching_calls(
        &mut self,
        f: &Filter,
        limit: usize,
    ) -> Result<Vec<Vec<StoredRow>>, SourceError> {
        let Some(d) = self.dialect() else {
            return self.text_calls(f, limit);
        };
        let check = f.needs_check();
        // Without a check after the query, SQL can stop at `limit`.
        let ids = self.callids(d, f, if check { None } else { Some(limit) })?;
        let mut out = Vec::new();
        for chunk in ids.chunks(IN_CHUNK.min(limit.max(1) * 2)) {
            let rows = self.rows_of(chunk)?;
            for id in chunk {
                let call: Vec<StoredRow> =
                    rows.iter().filter(|r| &r.callid == id).cloned().collect();
                if call.is_empty() {
                    continue;
                }
                if let Some(u) = &f.user
                    && !user_in_call(u, &call)
                {
                    continue;
                }
                out.push(call);
                if out.len() >= limit {
                    return Ok(out);
                }
            }
        }
        Ok(out)
    }

    /// Every row of these Call-IDs, in time order.
    pub fn rows_of(&mut self, callids: &[String]) -> Result<Vec<StoredRow>, SourceError> {
        let Some(d) = self.dialect() else {
            let set: std::collections::HashSet<&str> = callids.iter().map(String::as_str).collect();
            let rows = self.text_all()?;
            return Ok(rows
                .iter()
                .filter(|r| set.contains(r.callid.as_str()))
                .cloned()
                .collect());
        };
        let mut out = Vec::new();
        for chunk in callids.chunks(IN_CHUNK) {
            let ph: Vec<String> = (1..=chunk.len()).map(|i| d.param(i)).collect();
            let sql = format!(
                "{} WHERE {} IN ({}) {}",
                self.select_rows(d),
                d.ident(&self.cols.names[&Field::CallId]),
                ph.join(", "),
                self.order_by(d)
            );
            let cells = self.query(&sql, chunk)?;
            out.extend(cells.into_iter().map(|c| self.to_row(c)));
        }
        out.sort_by_key(|r| (r.time_us(), r.id));
        Ok(out)
    }

    fn select_rows(&self, d: Dialect) -> String {
        let mut sel = Vec::new();
        sel.push(if self.cols.id {
            d.select("id", Field::CallId, &ColumnKind::Text)
        } else {
            "0".to_string()
        });
        for f in ROW_FIELDS {
            match self.cols.names.get(&f) {
                Some(c) => sel.push(d.select(c, f, &self.cols.time_kind)),
                None => sel.push("NULL".to_string()),
            }
        }
        format!("SELECT {} FROM {}", sel.join(", "), d.ident(&self.table))
    }

    fn order_by(&self, d: Dialect) -> String {
        let mut o = vec![d.ident(&self.cols.names[&Field::Time])];
        if let Some(us) = self.cols.names.get(&Field::TimeUs) {
            o.push(d.ident(us));
        }
        if self.cols.id {
            o.push(d.ident("id"));
        }
        format!("ORDER BY {}", o.join(", "))
    }

    /// Call-IDs with a row matching `f`, the newest first call first.
    fn callids(
        &mut self,
        d: Dialect,
        f: &Filter,
        limit: Option<usize>,
    ) -> Result<Vec<String>, SourceError> {
        let (conds, params) = self.where_clause(d, f);
        let time = d.ident(&self.cols.names[&Field::Time]);
        let callid = d.ident(&self.cols.names[&Field::CallId]);
        let mut sql = format!("SELECT {callid} FROM {}", d.ident(&self.table));
        if !conds.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conds.join(" AND "));
        }
        sql.push_str(&format!(" GROUP BY {callid} ORDER BY MIN({time}) DESC"));
        if let Some(n) = limit {
            sql.push_str(&format!(" LIMIT {n}"));
        }
        let cells = self.query(&sql, &params)?;
        Ok(cells
            .into_iter()
            .map(|c| text(c.into_iter().next().flatten()))
            .collect())
    }

    fn where_clause(&self, d: Dialect, f: &Filter) -> (Vec<String>, Vec<String>) {
        let mut conds = Vec::new();
        let mut b = Binder {
            d,
            params: Vec::new(),
        };
        let col = |fl: Field| d.ident(&self.cols.names[&fl]);
        let time = &self.cols.names[&Field::Time];
        if let Some(s) = &f.since {
            let ph = b.bind(s);
            conds.push(d.time_cmp(time, ">=", &ph, &self.cols.time_kind));
        }
        if let Some(u) = &f.until {
            let ph = b.bind(u);
            conds.push(d.time_cmp(time, "<=", &ph, &self.cols.time_kind));
        }
        if let Some(c) = &f.callid {
            conds.push(format!("{} = {}", col(Field::CallId), b.bind(c)));
        }
        if let Some(m) = &f.method {
            conds.push(format!("{} = {}", col(Field::Method), b.bind(m)));
        }
        if let Some(s) = &f.status {
            let (class, v) = status_pattern(s);
            let op = if class { "LIKE" } else { "=" };
            conds.push(format!("{} {op} {}", col(Field::Status), b.bind(&v)));
        }
        if let Some(ip) = &f.ip {
            let mut ors = Vec::new();
            for p in ip_patterns(ip) {
                for c in [Field::FromIp, Field::ToIp] {
                    ors.push(format!("{} LIKE {} ESCAPE '!'", col(c), b.bind(&p)));
                }
            }
            conds.push(format!("({})", ors.join(" OR ")));
        }
        if let Some(u) = &f.user {
            // traced_user is indexed; the From/To users live in msg, which
            // LIKE narrows and `user_in_call` then decides exactly.
            let a = b.bind(u);
            let pat = b.bind(&format!("%{}%", like_escape(u)));
            conds.push(format!(
                "({} = {a} OR {} LIKE {pat} ESCAPE '!')",
                col(Field::TracedUser),
                col(Field::Msg),
            ));
        }
        (conds, b.params)
    }

    fn to_row(&self, c: Vec<Cell>) -> StoredRow {
        let mut it = c.into_iter();
        let mut next = || text(it.next().flatten());
        let id = next().parse().unwrap_or(0);
        let time = next();
        let us = next();
        let (stamp, sec) = stamp_and_sec(&time);
        let callid = next();
        let method = next();
        let status = next();
        let fromip = next();
        let toip = next();
        let direction = next();
        let fromtag = next();
        let totag = next();
        let traced_user = next();
        let msg = it.next().flatten().unwrap_or_default();
        StoredRow {
            id,
            stamp,
            sec,
            us: self
                .cols
                .has(Field::TimeUs)
                .then(|| us.trim().parse().unwrap_or(0)),
            callid,
            method,
            status,
            fromip,
            toip,
            direction,
            fromtag,
            totag: self.cols.has(Field::ToTag).then_some(totag),
            traced_user,
            msg,
        }
    }

    fn query(&mut self, sql: &str, params: &[String]) -> Result<Vec<Vec<Cell>>, SourceError> {
        let target = self.target.clone();
        let qerr = |detail: String| SourceError::Query {
            target: target.clone(),
            detail,
        };
        match &mut self.engine {
            #[cfg(feature = "sqlite")]
            Engine::Sqlite(conn) => {
                let mut st = conn.prepare(sql).map_err(|e| qerr(e.to_string()))?;
                let n = st.column_count();
                let rows = st
                    .query_map(rusqlite::params_from_iter(params.iter()), |r| {
                        (0..n)
                            .map(|i| {
                                use rusqlite::types::ValueRef;
                                Ok(match r.get_ref(i)? {
                                    ValueRef::Null => None,
                                    ValueRef::Integer(v) => Some(v.to_string().into_bytes()),
                                    ValueRef::Real(v) => Some(v.to_string().into_bytes()),
                                    ValueRef::Text(b) | ValueRef::Blob(b) => Some(b.to_vec()),
                                })
                            })
                            .collect::<rusqlite::Result<Vec<Cell>>>()
                    })
                    .map_err(|e| qerr(e.to_string()))?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(|e| qerr(e.to_string()))
            }
            #[cfg(feature = "postgres")]
            Engine::Postgres(pg) => {
                let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
                    .iter()
                    .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
                    .collect();
                let fut = pg.client.query(sql, &refs);
                let rows = pg
                    .rt
                    .block_on(async { tokio::time::timeout(Duration::from_secs(60), fut).await })
                    .map_err(|_| qerr("no answer within 60 s".into()))?
                    .map_err(|e| qerr(pg_detail(&e)))?;
                rows.iter()
                    .map(|r| {
                        (0..r.len())
                            .map(|i| {
                                r.try_get::<_, Option<String>>(i)
                                    .map(|v| v.map(String::into_bytes))
                                    .map_err(|e| qerr(pg_detail(&e)))
                            })
                            .collect()
                    })
                    .collect()
            }
            #[cfg(feature = "mysql")]
            Engine::Mysql(conn) => {
                use mysql::prelude::Queryable;
                let p: Vec<mysql::Value> = params
                    .iter()
                    .map(|s| mysql::Value::from(s.as_str()))
                    .collect();
                let rows: Vec<mysql::Row> = conn
                    .exec(sql, mysql::Params::Positional(p))
                    .map_err(|e| qerr(e.to_string()))?;
                Ok(rows
                    .into_iter()
                    .map(|r| {
                        r.unwrap()
                            .into_iter()
                            .map(|v| match v {
                                mysql::Value::NULL => None,
                                mysql::Value::Bytes(b) => Some(b),
                                other => {
                                    Some(other.as_sql(true).trim_matches('\'').as_bytes().to_vec())
                                }
                            })
                            .collect()
                    })
                    .collect())
            }
            #[cfg(feature = "dbtext")]
            Engine::Text(_) => Err(qerr("dbtext has no SQL".into())),
        }
    }

    fn text_all(&mut self) -> Result<&Vec<StoredRow>, SourceError> {
        #[cfg(feature = "dbtext")]
        if let Engine::Text(path) = &self.engine {
            if self.text_rows.is_none() {
                let t = crate::db::text::read_table_raw(path)
                    .map_err(|e| SourceError::Text(e.to_string()))?;
                let idx = |name: &str| {
                    t.columns
                        .iter()
                        .position(|c| c.name.eq_ignore_ascii_case(name))
                };
                let get = |row: &Vec<Vec<u8>>, f: Field| -> Vec<u8> {
                    self.cols
                        .names
                        .get(&f)
                        .and_then(|n| idx(n))
                        .and_then(|i| row.get(i).cloned())
                        .unwrap_or_default()
                };
                let id_col = idx("id");
                let mut rows: Vec<StoredRow> = t
                    .rows
                    .iter()
                    .map(|row| {
                        let s = |f| String::from_utf8_lossy(&get(row, f)).into_owned();
                        let (stamp, sec) = stamp_and_sec(&s(Field::Time));
                        StoredRow {
                            id: id_col
                                .and_then(|i| row.get(i))
                                .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
                                .unwrap_or(0),
                            stamp,
                            sec,
                            us: self
                                .cols
                                .has(Field::TimeUs)
                                .then(|| s(Field::TimeUs).parse().unwrap_or(0)),
                            callid: s(Field::CallId),
                            method: s(Field::Method),
                            status: s(Field::Status),
                            fromip: s(Field::FromIp),
                            toip: s(Field::ToIp),
                            direction: s(Field::Direction),
                            fromtag: s(Field::FromTag),
                            totag: self.cols.has(Field::ToTag).then(|| s(Field::ToTag)),
                            traced_user: s(Field::TracedUser),
                            msg: get(row, Field::Msg),
                        }
                    })
                    .collect();
                rows.sort_by_key(|r| (r.time_us(), r.id));
                self.text_rows = Some(rows);
            }
            if let Some(r) = &self.text_rows {
                return Ok(r);
            }
        }
        Err(SourceError::Unsupported("this backend's"))
    }

    fn text_calls(&mut self, f: &Filter, limit: usize) -> Result<Vec<Vec<StoredRow>>, SourceError> {
        let rows = self.text_all()?.clone();
        let mut first: HashMap<&str, i64> = HashMap::new();
        for r in rows.iter().filter(|r| f.row_matches(r)) {
            let t = first.entry(r.callid.as_str()).or_insert(r.time_us());
            *t = (*t).min(r.time_us());
        }
        let mut ids: Vec<(&str, i64)> = first.into_iter().collect();
        ids.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let mut out = Vec::new();
        for (id, _) in ids {
            let call: Vec<StoredRow> = rows.iter().filter(|r| r.callid == id).cloned().collect();
            if let Some(u) = &f.user
                && !user_in_call(u, &call)
            {
                continue;
            }
            out.push(call);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }
}

/// The columns after `id`, in the order `to_row` reads them.
const ROW_FIELDS: [Field; 12] = [
    Field::Time,
    Field::TimeUs,
    Field::CallId,
    Field::Method,
    Field::Status,
    Field::FromIp,
    Field::ToIp,
    Field::Direction,
    Field::FromTag,
    Field::ToTag,
    Field::TracedUser,
    Field::Msg,
];

fn text(c: Cell) -> String {
    match c {
        Some(b) => String::from_utf8(b)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        None => String::new(),
    }
}

/// Local text and Unix seconds of a stored time value (text, or Unix
/// seconds as dbtext stores them).
fn stamp_and_sec(v: &str) -> (String, i64) {
    let v = v.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        let sec: i64 = v.parse().unwrap_or(0);
        return (local_datetime(sec), sec);
    }
    let stamp: String = v.chars().take(19).collect();
    let sec = local_to_epoch(&stamp).unwrap_or(0);
    (stamp, sec)
}

#[cfg(feature = "sqlite")]
fn open_sqlite(
    path: &std::path::Path,
    table: &str,
    target: &str,
) -> Result<(Engine, Option<Vec<ColumnInfo>>), SourceError> {
    use rusqlite::OpenFlags;
    if !path.exists() {
        return Err(SourceError::NoFile(path.display().to_string()));
    }
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| SourceError::Unreachable {
        target: target.to_string(),
        detail: e.to_string(),
    })?;
    // The daemon may be committing: wait for its lock rather than fail.
    let _ = conn.busy_timeout(Duration::from_secs(5));
    let qerr = |e: rusqlite::Error| SourceError::Query {
        target: target.to_string(),
        detail: format!("{e} (is it an SQLite database?)"),
    };
    let cols: Vec<(String, String)> = {
        let mut st = conn
            .prepare("SELECT name, type FROM pragma_table_info(?1)")
            .map_err(qerr)?;
        st.query_map([table], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(qerr)?
    };
    let cols = (!cols.is_empty()).then(|| {
        cols.into_iter()
            .map(|(name, decl)| ColumnInfo {
                kind: if decl.to_ascii_uppercase().contains("INT") {
                    ColumnKind::Integer
                } else {
                    ColumnKind::Text
                },
                ..ColumnInfo::text(&name)
            })
            .collect()
    });
    Ok((Engine::Sqlite(conn), cols))
}

#[cfg(feature = "postgres")]
fn pg_detail(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => db.message().to_string(),
        None => e.to_string(),
    }
}

#[cfg(feature = "postgres")]
fn open_pg(
    s: &crate::db::url::ServerUrl,
    table: &str,
    target: &str,
) -> Result<(Engine, Option<Vec<ColumnInfo>>), SourceError> {
    let unreachable = |detail: String| SourceError::Unreachable {
        target: target.to_string(),
        detail,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| unreachable(e.to_string()))?;
    let mut cfg = tokio_postgres::Config::new();
    cfg.user(&s.user)
        .dbname(&s.database)
        .host(&s.host)
        .port(s.port)
        .application_name("siptrace")
        .connect_timeout(CONNECT_TIMEOUT);
    if let Some(pw) = &s.password {
        cfg.password(pw);
    }
    let (client, conn) = rt
        .block_on(async {
            tokio::time::timeout(CONNECT_TIMEOUT, cfg.connect(tokio_postgres::NoTls)).await
        })
        .map_err(|_| unreachable("no login within 5 s".into()))?
        .map_err(|e| unreachable(pg_detail(&e)))?;
    rt.spawn(async move {
        let _ = conn.await;
    });
    let qerr = |e: tokio_postgres::Error| SourceError::Query {
        target: target.to_string(),
        detail: pg_detail(&e),
    };
    rt.block_on(client.batch_execute("SET default_transaction_read_only = on"))
        .map_err(qerr)?;
    let ident = Dialect::Postgres.ident(table);
    let rows = rt
        .block_on(client.query(
            "SELECT a.attname::text, t.typname::text \
             FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
             WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum",
            &[&ident],
        ))
        .map_err(qerr)?;
    let cols: Vec<ColumnInfo> = rows
        .iter()
        .map(|r| {
            let name: String = r.get(0);
            let ty: String = r.get(1);
            let kind = match ty.as_str() {
                "timestamp" => ColumnKind::Timestamp("timestamp"),
                "timestamptz" => ColumnKind::Timestamp("timestamptz"),
                "date" => ColumnKind::Timestamp("date"),
                "int2" | "int4" | "int8" => ColumnKind::Integer,
                "text" | "varchar" | "bpchar" | "name" => ColumnKind::Text,
                _ => ColumnKind::Other,
            };
            ColumnInfo {
                kind,
                ..ColumnInfo::text(&name)
            }
        })
        .collect();
    let cols = (!cols.is_empty()).then_some(cols);
    Ok((Engine::Postgres(Pg { rt, client }), cols))
}

#[cfg(feature = "mysql")]
fn open_mysql(
    s: &crate::db::url::ServerUrl,
    table: &str,
    target: &str,
) -> Result<(Engine, Option<Vec<ColumnInfo>>), SourceError> {
    use mysql::prelude::Queryable;
    let opts = mysql::OptsBuilder::new()
        .ip_or_hostname(Some(s.host.clone()))
        .tcp_port(s.port)
        .user(Some(s.user.clone()))
        .pass(s.password.clone())
        .db_name(Some(s.database.clone()))
        .prefer_socket(false)
        .tcp_connect_timeout(Some(CONNECT_TIMEOUT))
        .init(vec![
            "SET NAMES utf8mb4",
            "SET SESSION TRANSACTION READ ONLY",
        ]);
    let mut conn = mysql::Conn::new(opts).map_err(|e| SourceError::Unreachable {
        target: target.to_string(),
        detail: e.to_string(),
    })?;
    let rows: Vec<(String, String)> = conn
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (table,),
        )
        .map_err(|e| SourceError::Query {
            target: target.to_string(),
            detail: e.to_string(),
        })?;
    let cols: Vec<ColumnInfo> = rows
        .into_iter()
        .map(|(name, ty)| {
            let ty = ty.to_ascii_lowercase();
            let kind = if matches!(ty.as_str(), "datetime" | "timestamp" | "date") {
                ColumnKind::Timestamp("")
            } else if ty.contains("int") {
                ColumnKind::Integer
            } else if ty.contains("char")
                || ty.contains("text")
                || ty.contains("blob")
                || ty.contains("binary")
            {
                ColumnKind::Text
            } else {
                ColumnKind::Other
            };
            ColumnInfo {
                kind,
                ..ColumnInfo::text(&name)
            }
        })
        .collect();
    let cols = (!cols.is_empty()).then_some(cols);
    Ok((Engine::Mysql(Box::new(conn)), cols))
}

#[cfg(feature = "dbtext")]
fn open_text(
    dir: &std::path::Path,
    table: &str,
    target: &str,
) -> Result<(Engine, Option<Vec<ColumnInfo>>), SourceError> {
    use crate::db::text::TextType;
    if !dir.is_dir() {
        return Err(SourceError::Unreachable {
            target: target.to_string(),
            detail: format!("directory {} does not exist", dir.display()),
        });
    }
    let path = dir.join(table);
    if !path.is_file() {
        return Ok((Engine::Text(path), None));
    }
    let t = crate::db::text::read_table_raw(&path).map_err(|e| SourceError::Text(e.to_string()))?;
    let cols = t
        .columns
        .iter()
        .map(|c| ColumnInfo {
            kind: match c.ty {
                TextType::Int => ColumnKind::Integer,
                TextType::Double => ColumnKind::Other,
                _ => ColumnKind::Text,
            },
            ..ColumnInfo::text(&c.name)
        })
        .collect();
    Ok((Engine::Text(path), Some(cols)))
}
