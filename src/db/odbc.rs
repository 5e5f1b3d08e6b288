//! ODBC engine (odbc-api over the unixODBC driver manager), built only with
//! the non-default `odbc` cargo feature: for databases reached through a DSN,
//! as Kamailio's db_unixodbc module does (`unixodbc://user:pw@host/DSN`).
//!
//! The native engines stay the better choice for PostgreSQL and MariaDB
//! (bounded I/O, byte-exact encodings, multi-row statements); this one is
//! portable and plain:
//! - layout from the result set metadata of `SELECT * FROM t WHERE 1=0`
//!   (works on any driver, unlike the catalog functions' schema rules);
//!   identifiers are validated names, written unquoted (quoting differs
//!   between servers), so they fold as the server folds unquoted names;
//! - one prepared `INSERT` per table, executed per row inside one
//!   transaction (autocommit off for the batch, committed or rolled back);
//! - text bound as UTF-8 (narrow) parameters with NUL and invalid UTF-8
//!   written as `\xNN`, cut to VARCHAR(n); a date/time column gets an ODBC
//!   TIMESTAMP parameter parsed from the local-time text; integers as BIGINT;
//! - bounds: the login timeout and a per-statement query timeout, both in
//!   whole seconds as ODBC counts them. How a driver enforces them (and
//!   whether a dead TCP peer is noticed sooner) is the driver's business.
//! - errors sorted by SQLSTATE (ODBC appendix A): class 08 and HYT00/HYT01
//!   are connection errors, 40xxx busy, 42S02/42S22 (and PostgreSQL's
//!   42P01/42703) schema changes, 22xxx/23xxx the row's content.
//!
//! Depends on odbc-api and the store/schema/encode modules.

use std::collections::HashMap;
use std::time::Duration;

use odbc_api::handles::slice_to_cow_utf8;
use odbc_api::parameter::{InputParameter, VarCharBox, WithDataType};
use odbc_api::sys::Timestamp;
use odbc_api::{Connection, ConnectionOptions, DataType, ResultSetMetadata};

use super::encode;
use super::schema::{Charset, ColumnInfo, ColumnKind, Field, Layout};
use super::store::{Counts, Engine, ErrClass, Fault, MarkCas, Run};
use super::url::OdbcUrl;
use super::{DbError, OpenOptions, Value};

pub(crate) struct Odbc {
    url: OdbcUrl,
    connect_timeout: Duration,
    io_timeout: Duration,
    conn: Option<Connection<'static>>,
    /// INSERT text per table, built once from its layout.
    sql: HashMap<String, String>,
}

/// Whole seconds, at least 1 (ODBC reads 0 as "no timeout").
fn secs(d: Duration) -> u64 {
    d.as_secs().max(1)
}

impl Odbc {
    pub fn open(url: OdbcUrl, opts: &OpenOptions) -> Result<Odbc, DbError> {
        let mut o = Odbc {
            url,
            connect_timeout: opts.connect_timeout,
            io_timeout: opts.io_timeout,
            conn: None,
            sql: HashMap::new(),
        };
        o.connection()?;
        Ok(o)
    }

    fn connect(&self) -> Result<Connection<'static>, DbError> {
        let env = odbc_api::environment().map_err(|e| DbError::Rejected {
            backend: "unixodbc",
            target: self.target(),
            detail: format!("cannot set up the ODBC environment (is libodbc installed?): {e}"),
        })?;
        let opts = ConnectionOptions {
            login_timeout_sec: Some(u32::try_from(secs(self.connect_timeout)).unwrap_or(u32::MAX)),
            ..ConnectionOptions::default()
        };
        env.connect_with_connection_string(&self.url.connection_string(), opts)
            .map_err(|e| classify(e, &self.target()).into_db("unixodbc", self.target()))
    }

    fn connection(&mut self) -> Result<&Connection<'static>, DbError> {
        if self.conn.is_none() {
            self.conn = Some(self.connect()?);
        }
        match self.conn.as_ref() {
            Some(c) => Ok(c),
            None => Err(DbError::Connection {
                backend: "unixodbc",
                target: self.target(),
                detail: "not connected".to_string(),
            }),
        }
    }

    fn query_timeout(&self) -> Option<usize> {
        Some(usize::try_from(secs(self.io_timeout)).unwrap_or(usize::MAX))
    }

    fn insert_sql(&mut self, layout: &Layout) -> String {
        self.sql
            .entry(layout.table.clone())
            .or_insert_with(|| {
                let cols: Vec<&str> = layout
                    .targets
                    .iter()
                    .map(|t| t.column.name.as_str())
                    .collect();
                format!(
                    "INSERT INTO {} ({}) VALUES ({})",
                    layout.table,
                    cols.join(", "),
                    vec!["?"; cols.len()].join(", ")
                )
            })
            .clone()
    }
}

/// The diagnostic text of an error (the message shown lossily as UTF-8).
fn error_text(e: &odbc_api::Error) -> String {
    match e {
        odbc_api::Error::Diagnostics { record, .. } => {
            let msg = slice_to_cow_utf8(&record.message);
            format!("{} (SQLSTATE {})", msg.trim(), record.state.as_str())
        }
        other => other.to_string(),
    }
}

fn sqlstate(e: &odbc_api::Error) -> Option<String> {
    match e {
        odbc_api::Error::Diagnostics { record, .. } => Some(record.state.as_str().to_string()),
        _ => None,
    }
}

/// Sort an error by what the caller can do about it, from its SQLSTATE.
fn classify(e: odbc_api::Error, target: &str) -> Fault {
    let detail = error_text(&e);
    let state = sqlstate(&e).unwrap_or_default();
    let db = |class: ErrClass| class.fault("unixodbc", target.to_string(), detail.clone());
    match state.as_str() {
        // 08xxx connection exception, HYT00 timeout expired, HYT01
        // connection timeout; 57P0x: PostgreSQL shutting down.
        s if s.starts_with("08") || s.starts_with("57P") => db(ErrClass::Connection),
        "HYT00" | "HYT01" => db(ErrClass::Connection),
        // Serialization failure / deadlock, lock timeouts.
        s if s.starts_with("40") || s == "55P03" || s == "HY008" => db(ErrClass::Busy),
        // Base table or column not found.
        "42S02" | "42S22" | "42P01" | "42703" => Fault::Schema { detail },
        s if s.starts_with("22") || s.starts_with("23") => Fault::Data { detail },
        _ => db(ErrClass::Rejected),
    }
}

/// `YYYY-MM-DD HH:MM:SS` as an ODBC TIMESTAMP value.
fn timestamp(text: &[u8]) -> Option<Timestamp> {
    let s = std::str::from_utf8(text).ok()?;
    let b = s.as_bytes();
    if b.len() != 19 || b[4] != b'-' || b[7] != b'-' || b[10] != b' ' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<u16>().ok();
    Some(Timestamp {
        year: i16::try_from(num(0..4)?).ok()?,
        month: num(5..7)?,
        day: num(8..10)?,
        hour: num(11..13)?,
        minute: num(14..16)?,
        second: num(17..19)?,
        fraction: 0,
    })
}

/// Column kind from the ODBC data type of a result set column.
fn odbc_kind(ty: DataType) -> (ColumnKind, Option<usize>) {
    match ty {
        DataType::Char { length }
        | DataType::WChar { length }
        | DataType::Varchar { length }
        | DataType::WVarchar { length } => (ColumnKind::Text, length.map(|n| n.get())),
        // Unbounded text (PostgreSQL TEXT, MySQL TEXT types): drivers report
        // an arbitrary display size, not a limit.
        DataType::LongVarchar { .. } | DataType::WLongVarchar { .. } => (ColumnKind::Text, None),
        DataType::Integer
        | DataType::SmallInt
        | DataType::BigInt
        | DataType::TinyInt
        | DataType::Numeric { .. }
        | DataType::Decimal { .. } => (ColumnKind::Integer, None),
        DataType::Timestamp { .. } | DataType::Date => (ColumnKind::Timestamp(""), None),
        _ => (ColumnKind::Other, None),
    }
}

impl Odbc {
    /// Drivers differ in how they bound a DELETE: no portable batch form.
    fn no_retention(&self) -> DbError {
        DbError::Rejected {
            backend: "unixodbc",
            target: self.target(),
            detail: "retention is not available over ODBC; purge with the \
                     database's own tools, or use a native db_url"
                .to_string(),
        }
    }
}

impl Engine for Odbc {
    fn backend(&self) -> &'static str {
        "unixodbc"
    }

    fn target(&self) -> String {
        format!("unixodbc://{}", self.url.display_target())
    }

    fn missing_table_hint(&self) -> String {
        format!(
            "create it with the sql/<backend>/siptrace-create.sql of the database behind {}",
            self.target()
        )
    }

    fn columns(&mut self, table: &str) -> Result<Option<Vec<ColumnInfo>>, DbError> {
        let target = self.target();
        let timeout = self.query_timeout();
        let conn = self.connection()?;
        // `table` is a validated identifier; nothing else enters the text.
        let sql = format!("SELECT * FROM {table} WHERE 1=0");
        let to_db = |f: Fault| f.into_db("unixodbc", target.clone());
        let cursor = match conn.execute(&sql, (), timeout) {
            Ok(c) => c,
            Err(e) => {
                return match classify(e, &target) {
                    Fault::Schema { .. } => Ok(None),
                    f => Err(to_db(f)),
                };
            }
        };
        let Some(mut cursor) = cursor else {
            return Ok(None);
        };
        let n = cursor
            .num_result_cols()
            .map_err(|e| to_db(classify(e, &target)))?;
        let mut cols = Vec::new();
        for i in 1..=u16::try_from(n).unwrap_or(0) {
            let name = cursor
                .col_name(i)
                .map_err(|e| to_db(classify(e, &target)))?;
            let ty = cursor
                .col_data_type(i)
                .map_err(|e| to_db(classify(e, &target)))?;
            let (kind, max_chars) = odbc_kind(ty);
            cols.push(ColumnInfo {
                name,
                kind,
                max_chars,
                max_bytes: None,
                charset: Charset::Utf8,
            });
        }
        Ok(Some(cols))
    }

    fn insert(&mut self, runs: &[Run<'_>], mark: Option<&MarkCas<'_>>) -> Result<Counts, Fault> {
        if mark.is_some() {
            // supports_marker() is false: the store never asks. ODBC drivers
            // differ too much in how one statement can move the marker and
            // insert atomically; replay without a marker may repeat rows
            // after a crash, which the sink says in the log.
            return Err(Fault::Db(self.no_marker()));
        }
        let target = self.target();
        let timeout = self.query_timeout();
        let sqls: Vec<String> = runs.iter().map(|r| self.insert_sql(&r.layout)).collect();
        let conn = self.connection()?;
        let fault = |e| classify(e, &target);
        conn.set_autocommit(false).map_err(fault)?;
        let mut counts = Counts::default();
        let result = (|| {
            for (run, sql) in runs.iter().zip(&sqls) {
                let mut stmt = conn.prepare(sql).map_err(fault)?;
                if let Some(t) = timeout {
                    stmt.set_query_timeout_sec(t).map_err(fault)?;
                }
                for row in &run.rows {
                    let mut params: Vec<Box<dyn InputParameter>> = Vec::new();
                    let (mut escaped, mut cut) = (false, false);
                    for t in &run.layout.targets {
                        let p: Box<dyn InputParameter> = match (row.value_for(t), &t.column.kind) {
                            (Value::Int(n), _) => Box::new(n),
                            (Value::Text(b), ColumnKind::Timestamp(_))
                                if t.field == Field::Time =>
                            {
                                match timestamp(b) {
                                    Some(ts) => Box::new(WithDataType::new(
                                        ts,
                                        DataType::Timestamp { precision: 0 },
                                    )),
                                    None => {
                                        return Err(Fault::Data {
                                            detail: format!(
                                                "time_stamp {:?} is not YYYY-MM-DD HH:MM:SS",
                                                String::from_utf8_lossy(b)
                                            ),
                                        });
                                    }
                                }
                            }
                            (Value::Text(b), _) => {
                                let (text, e, c) = encode::for_column(b, &t.column);
                                escaped |= e;
                                cut |= c;
                                Box::new(VarCharBox::from_string(text.into_owned()))
                            }
                        };
                        params.push(p);
                    }
                    stmt.execute(params.as_slice()).map_err(fault)?;
                    counts.row(escaped, cut);
                }
            }
            conn.commit().map_err(fault)
        })();
        if result.is_err() {
            // Nothing of the batch stays; a dead connection is dropped by the
            // store, so failures here only matter for a live one.
            let _ = conn.rollback();
        }
        let _ = conn.set_autocommit(true);
        result.map(|_| counts)
    }

    fn purge_batch(
        &mut self,
        _target: &super::retention::PurgeTarget,
        _rule: &super::retention::PurgeRule,
        _limit: u32,
    ) -> Result<u64, DbError> {
        Err(self.no_retention())
    }

    fn row_cap_threshold(&mut self, _table: &str, _keep: u64) -> Result<Option<i64>, DbError> {
        Err(self.no_retention())
    }

    fn drop_connection(&mut self) {
        self.conn = None;
    }

    fn forget_statements(&mut self) {
        self.sql.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse() {
        let t = timestamp(b"2026-09-21 10:20:30").unwrap();
        assert_eq!(
            (
                t.year, t.month, t.day, t.hour, t.minute, t.second, t.fraction
            ),
            (2026, 9, 21, 10, 20, 30, 0)
        );
        for bad in [
            &b"2026-09-21T10:20:30"[..],
            b"2026-09-21",
            b"x026-09-21 10:20:30",
        ] {
            assert!(timestamp(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn kinds() {
        use std::num::NonZeroUsize;
        let n = NonZeroUsize::new(64);
        assert_eq!(
            odbc_kind(DataType::Varchar { length: n }),
            (ColumnKind::Text, Some(64))
        );
        assert_eq!(
            odbc_kind(DataType::WLongVarchar { length: n }),
            (ColumnKind::Text, None)
        );
        assert_eq!(odbc_kind(DataType::Integer), (ColumnKind::Integer, None));
        assert_eq!(
            odbc_kind(DataType::Timestamp { precision: 0 }),
            (ColumnKind::Timestamp(""), None)
        );
        assert_eq!(
            odbc_kind(DataType::LongVarbinary { length: n }).0,
            ColumnKind::Other
        );
    }
}
