//! SQLite engine (rusqlite, bundled library).
//!
//! The file runs in WAL mode with `synchronous=NORMAL`: a commit then appends
//! to the write-ahead log without an fsync (measured here: ~0.5 ms per commit
//! in WAL versus ~1.6 ms with the rollback journal and fsync), and the daemon
//! commits once per reactor turn, so commits stay cheap under load. A power
//! loss can lose the last commits, never corrupt the file — the same trade
//! Kamailio's asynchronous DB modes make. Readers (sqlite3, scripts) do not
//! block the writer in WAL; another writer holding the lock longer than
//! `sqlite_busy_timeout` makes the batch fail with `Busy` (spooled, retried).
//!
//! Values are bound, never spliced: `msg` as TEXT with its exact bytes (even
//! invalid UTF-8 — SQLite stores TEXT bytes as given), time_stamp as the
//! caller's local-time text (not Kamailio 5's Julian REAL, docs/decisions.md §2).
//! A new, empty file gets sql/sqlite/siptrace-create.sql applied.
//! Depends on rusqlite and the store/schema modules only.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, ErrorCode, TransactionBehavior};

use super::retention::{self, Dialect, PurgeRule, PurgeTarget};
use super::schema::{self, Charset, ColumnInfo, ColumnKind};
use super::sqlite_insert::Insert;
use super::sqlite_wal::{Checkpointer, JOURNAL_SIZE_LIMIT, WRITER_AUTOCHECKPOINT_PAGES};
use super::store::{Counts, Engine, Fault, MarkCas, Run};
use super::{DbError, missing_table_hint};

/// sql/sqlite/siptraced-spool-marker.sql, run when the table is missing.
const MARKER_DDL: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/sql/sqlite/siptraced-spool-marker.sql"
));

/// Page size for files we create (bytes), see `open`. SQLite's default:
/// a traced row's Call-ID lands on a random page of `callid_idx`, and each
/// page a commit touches is written whole to the log and checksummed, so
/// small pages cost less per commit. Measured on a table of 200 000 rows
/// with distinct Call-IDs, commits of 10, 100 and 400 rows: 4 KiB pages
/// took 20-30% less time per row than 16 KiB ones (16 KiB pages only won
/// batches of 1000 rows into an empty table).
const PAGE_SIZE: i64 = 4096;
/// Page cache, in KiB when negative (SQLite's convention): 16 MiB keeps the
/// four indexes' hot pages in memory; the 2 MiB default re-reads them from
/// the OS on every batch (measured: ~30% of insert time).
const CACHE_SIZE: i64 = -16384;

pub(crate) struct Sqlite {
    /// The INSERT per table, prepared once (sqlite_insert.rs). Declared
    /// before `conn`: statements are finalised before it closes.
    inserts: HashMap<String, Insert>,
    conn: Connection,
    path: PathBuf,
    /// INSERT text per table, built once from its layout.
    sql: HashMap<String, String>,
    /// Runs while the connection lives; declared last, so it stops after
    /// the writer's connection is closed.
    _checkpointer: Option<Checkpointer>,
}

impl Sqlite {
    pub fn open(
        path: &Path,
        default_table: &str,
        opts: &super::OpenOptions,
    ) -> Result<Sqlite, DbError> {
        let io = |kind: std::io::ErrorKind, msg: String| DbError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(kind, msg),
        };
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
            && !dir.is_dir()
        {
            return Err(io(
                std::io::ErrorKind::NotFound,
                format!("directory {} does not exist", dir.display()),
            ));
        }
        let conn = Connection::open(path)
            .map_err(|e| io(std::io::ErrorKind::Other, format!("cannot open: {e}")))?;
        let bad = |e: rusqlite::Error| {
            io(
                std::io::ErrorKind::InvalidData,
                format!("not a usable SQLite database: {e}"),
            )
        };
        conn.busy_timeout(opts.sqlite_busy_timeout).map_err(bad)?;
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .map_err(bad)?;
        let create = tables == 0 && opts.create_sqlite_schema;
        if create {
            // Only takes effect before the first write (see PAGE_SIZE).
            conn.pragma_update(None, "page_size", PAGE_SIZE)
                .map_err(bad)?;
        }
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(bad)?;
        let wal = mode.eq_ignore_ascii_case("wal");
        if !wal {
            log::warn!(
                "siptrace db: {} stays in journal mode {mode} (WAL refused); commits will be slower",
                path.display()
            );
        }
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(bad)?;
        // Checkpoints off the reactor's thread (sqlite_wal.rs); the writer's
        // own threshold stays as a far safety net.
        let checkpointer = if wal {
            match Checkpointer::start(path) {
                Ok(c) => {
                    conn.pragma_update(None, "wal_autocheckpoint", WRITER_AUTOCHECKPOINT_PAGES)
                        .map_err(bad)?;
                    conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT)
                        .map_err(bad)?;
                    Some(c)
                }
                Err(e) => {
                    log::warn!(
                        "siptrace db: no checkpoint thread for {} ({e}): commits checkpoint \
                         the log themselves, with stalls of tens of ms",
                        path.display()
                    );
                    None
                }
            }
        } else {
            None
        };
        conn.pragma_update(None, "cache_size", CACHE_SIZE)
            .map_err(bad)?;
        if create {
            let script = schema::script_for_table(schema::SQLITE_CREATE, default_table);
            conn.execute_batch(&script).map_err(|e| {
                io(
                    std::io::ErrorKind::Other,
                    format!("cannot create the schema: {e}"),
                )
            })?;
            log::info!(
                "siptrace db: created table {default_table} (v4) in new SQLite file {}",
                path.display()
            );
        }
        Ok(Sqlite {
            inserts: HashMap::new(),
            conn,
            path: path.to_path_buf(),
            sql: HashMap::new(),
            _checkpointer: checkpointer,
        })
    }

    fn insert_sql(&mut self, layout: &schema::Layout) -> &str {
        self.sql.entry(layout.table.clone()).or_insert_with(|| {
            let cols: Vec<String> = layout
                .targets
                .iter()
                .map(|t| quote(&t.column.name))
                .collect();
            let params: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
            format!(
                "INSERT INTO {} ({}) VALUES ({})",
                quote(&layout.table),
                cols.join(", "),
                params.join(", ")
            )
        })
    }
}

/// A marker value as SQLite's 64-bit signed integer (numbers stay below 2^63).
fn seq(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Identifiers here come from [`schema::valid_table_name`] or the catalog;
/// quoting keeps reserved words usable.
fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

fn fault(e: rusqlite::Error, target: &str) -> Fault {
    let detail = e.to_string();
    let code = match &e {
        rusqlite::Error::SqliteFailure(f, _) => f.code,
        _ => ErrorCode::Unknown,
    };
    match code {
        ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => Fault::Db(DbError::Busy {
            backend: "sqlite",
            target: target.to_string(),
            detail,
        }),
        ErrorCode::ConstraintViolation | ErrorCode::TooBig | ErrorCode::TypeMismatch => {
            Fault::Data { detail }
        }
        ErrorCode::SchemaChanged => Fault::Schema { detail },
        _ if detail.contains("no such table")
            || detail.contains("no such column")
            || detail.contains("has no column named") =>
        {
            Fault::Schema { detail }
        }
        _ => Fault::Db(DbError::Rejected {
            backend: "sqlite",
            target: target.to_string(),
            detail,
        }),
    }
}

impl Engine for Sqlite {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn target(&self) -> String {
        format!("sqlite:{}", self.path.display())
    }

    fn missing_table_hint(&self) -> String {
        missing_table_hint("sqlite", &format!("sqlite://{}", self.path.display()))
    }

    fn columns(&mut self, table: &str) -> Result<Option<Vec<ColumnInfo>>, DbError> {
        let target = self.target();
        let to_err = |e| fault(e, &target).into_db("sqlite", target.clone());
        let mut stmt = self
            .conn
            .prepare_cached("SELECT name, type FROM pragma_table_info(?1)")
            .map_err(to_err)?;
        let cols = stmt
            .query_map([table], |r| {
                let name: String = r.get(0)?;
                let decl: String = r.get(1)?;
                Ok((name, decl))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(to_err)?;
        if cols.is_empty() {
            return Ok(None);
        }
        Ok(Some(
            cols.into_iter()
                .map(|(name, decl)| ColumnInfo {
                    // SQLite's affinity rule 1: a declared type containing
                    // "INT" is an integer column; the rest take text as given.
                    kind: if decl.to_ascii_uppercase().contains("INT") {
                        ColumnKind::Integer
                    } else {
                        ColumnKind::Text
                    },
                    // SQLite ignores VARCHAR(n) lengths: nothing to cut.
                    max_chars: None,
                    max_bytes: None,
                    charset: Charset::Raw,
                    name,
                })
                .collect(),
        ))
    }

    fn insert(&mut self, runs: &[Run<'_>], mark: Option<&MarkCas<'_>>) -> Result<Counts, Fault> {
        let target = self.target();
        for run in runs {
            if !self.inserts.contains_key(&run.layout.table) {
                let sql = self.insert_sql(&run.layout).to_string();
                let ins = Insert::prepare(&self.conn, &sql).map_err(|e| fault(e, &target))?;
                self.inserts.insert(run.layout.table.clone(), ins);
            }
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| fault(e, &target))?;
        if let Some(m) = mark {
            // IMMEDIATE already holds the write lock: nobody can move the
            // marker between this check and the commit.
            let changed = tx
                .prepare_cached(
                    "UPDATE siptraced_spool_marker SET last_seq = ?1 \
                     WHERE spool_id = ?2 AND last_seq = ?3",
                )
                .and_then(|mut st| st.execute(rusqlite::params![seq(m.new), m.id, seq(m.expected)]))
                .map_err(|e| fault(e, &target))?;
            if changed != 1 {
                return Err(Fault::Moved);
            }
        }
        for run in runs {
            let Some(ins) = self.inserts.get_mut(&run.layout.table) else {
                continue;
            };
            for row in &run.rows {
                let values = run.layout.targets.iter().map(|t| row.value_for(t));
                ins.row(&tx, values).map_err(|e| fault(e, &target))?;
            }
        }
        // Dropping `tx` on an error above rolls the whole batch back.
        tx.commit().map_err(|e| fault(e, &target))?;
        // SQLite stores every byte as given: nothing escaped or cut.
        Ok(Counts::default())
    }

    fn purge_batch(
        &mut self,
        target: &PurgeTarget,
        rule: &PurgeRule,
        limit: u32,
    ) -> Result<u64, DbError> {
        let t = self.target();
        let to_err = |e| fault(e, &t).into_db("sqlite", t.clone());
        let Some(sql) = retention::delete_batch_sql(Dialect::Sqlite, target, rule, limit) else {
            return Ok(0);
        };
        let mut stmt = self.conn.prepare_cached(&sql).map_err(to_err)?;
        let mut n = 1;
        let bound = match rule {
            PurgeRule::Older { before, method } => {
                let r = match target.time_kind {
                    retention::TimeKind::UnixSeconds => stmt.raw_bind_parameter(1, before.sec),
                    _ => stmt.raw_bind_parameter(1, before.local.as_str()),
                };
                r.and_then(|()| match method {
                    Some(m) => {
                        n += 1;
                        stmt.raw_bind_parameter(n, m.as_str())
                    }
                    None => Ok(()),
                })
            }
            PurgeRule::IdBelow(id) => stmt.raw_bind_parameter(1, *id),
        };
        bound
            .and_then(|()| stmt.raw_bind_parameter(n + 1, i64::from(limit)))
            .map_err(to_err)?;
        // One statement is its own transaction: a batch commits alone and
        // holds the write lock only for its own rows.
        let deleted = stmt.raw_execute().map_err(to_err)?;
        Ok(deleted as u64)
    }

    fn row_cap_threshold(&mut self, table: &str, keep: u64) -> Result<Option<i64>, DbError> {
        use rusqlite::OptionalExtension;
        let t = self.target();
        let span: Option<i64> = self
            .conn
            .prepare_cached(&retention::id_span_sql(Dialect::Sqlite, table))
            .and_then(|mut st| st.query_row([], |r| r.get(0)))
            .map_err(|e| fault(e, &t).into_db("sqlite", t.clone()))?;
        if span.is_none_or(|n| n <= seq(keep)) {
            return Ok(None);
        }
        let sql = retention::row_cap_threshold_sql(Dialect::Sqlite, table, keep);
        self.conn
            .prepare_cached(&sql)
            .and_then(|mut st| {
                st.query_row([seq(keep.saturating_sub(1))], |r| r.get::<_, i64>(0))
                    .optional()
            })
            .map_err(|e| fault(e, &t).into_db("sqlite", t.clone()))
    }

    fn drop_connection(&mut self) {
        // A file has no connection to lose; a busy lock clears by itself.
    }

    fn supports_marker(&self) -> bool {
        true
    }

    fn marker_create(&mut self) -> Result<(), DbError> {
        let target = self.target();
        self.conn
            .execute_batch(MARKER_DDL)
            .map_err(|e| fault(e, &target).into_db("sqlite", target.clone()))
    }

    fn marker_read(&mut self, id: &str) -> Result<Option<u64>, DbError> {
        use rusqlite::OptionalExtension;
        let target = self.target();
        self.conn
            .query_row(
                "SELECT last_seq FROM siptraced_spool_marker WHERE spool_id = ?1",
                [id],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map(|v| v.map(|n| u64::try_from(n).unwrap_or(0)))
            .map_err(|e| fault(e, &target).into_db("sqlite", target.clone()))
    }

    fn marker_insert(&mut self, id: &str, last: u64) -> Result<(), DbError> {
        let target = self.target();
        self.conn
            .execute(
                "INSERT OR IGNORE INTO siptraced_spool_marker (spool_id, last_seq) VALUES (?1, ?2)",
                rusqlite::params![id, seq(last)],
            )
            .map(|_| ())
            .map_err(|e| fault(e, &target).into_db("sqlite", target.clone()))
    }

    fn forget_statements(&mut self) {
        self.inserts.clear();
        self.sql.clear();
        self.conn.flush_prepared_statement_cache();
    }
}
