//! The backend-independent half of a store: routes each row to its table
//! (validating names, caching layouts, rerouting refused tables to the
//! default one with one warning per name), groups rows into per-table runs,
//! and reacts to failures: a connection error drops the cached layouts (the
//! next call reconnects and re-reads them), a schema change is retried once
//! with fresh layouts, and a batch refused for a row's content is retried row
//! by row so one bad row cannot block the others forever.
//! It also runs the marker protocol of marked writes (ARCHITECTURE.md,
//! "Spool"): skip rows at or below the marker, compare-and-set it with the
//! rows, re-read it when the compare fails.
//! Engines (one per backend) only read catalogs, insert runs and run the
//! marker's few statements.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::retention::{PurgeRule, PurgeTarget, TimeKind};
use super::schema::{ColumnInfo, ColumnKind, Field, Layout};
use super::{
    Backend, DbError, MARKER_TABLE, Marker, MarkerOpen, PartitionReport, Row, WriteReport,
    valid_table_name,
};

/// Layouts cached at most; past this the cache restarts (table names can come
/// from script AVPs, so their number is not ours to bound).
const LAYOUT_CACHE_MAX: usize = 256;
/// Table names warned about at most; later new names are still rerouted.
const WARNED_MAX: usize = 1024;
/// A refused table (missing, unusable) is looked up again after this long, so
/// a table created later is used without a restart; one catalog query per
/// name per minute is negligible.
const REFUSED_RECHECK: Duration = Duration::from_secs(60);

/// How many times a marked write re-reads a marker that moved under it
/// before giving up: once is the normal case (an earlier attempt's commit
/// landed after all); more means another writer uses the same spool id.
const MARKER_MOVES_MAX: u32 = 3;

/// The marker move a transaction makes with its rows: `last_seq` goes from
/// `expected` to `new`, and if it does not hold `expected`, nothing is
/// written ([`Fault::Moved`]).
#[derive(Debug, Clone, Copy)]
#[cfg_attr(
    not(any(
        feature = "sqlite",
        feature = "postgres",
        feature = "mysql",
        feature = "odbc"
    )),
    expect(dead_code, reason = "only the SQL engines move a marker")
)]
pub(crate) struct MarkCas<'a> {
    pub id: &'a str,
    pub expected: u64,
    pub new: u64,
}

/// Rows of one batch aimed at the same table, consecutive in batch order.
pub(crate) struct Run<'a> {
    pub layout: Arc<Layout>,
    pub rows: Vec<&'a Row>,
}

/// Per-insert tallies an engine reports.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Counts {
    pub escaped: u64,
    pub truncated: u64,
}

impl Counts {
    /// Count one row whose values needed escaping / cutting.
    #[cfg(any(feature = "postgres", feature = "mysql", feature = "odbc"))]
    pub fn row(&mut self, escaped: bool, truncated: bool) {
        self.escaped += u64::from(escaped);
        self.truncated += u64::from(truncated);
    }
}

/// How an engine's insert failed.
#[derive(Debug)]
#[cfg_attr(
    not(any(
        feature = "sqlite",
        feature = "postgres",
        feature = "mysql",
        feature = "odbc"
    )),
    expect(
        dead_code,
        reason = "the text engine only fails as a whole (Fault::Db)"
    )
)]
pub(crate) enum Fault {
    /// Connection, busy, rejected…: reported to the caller as is.
    Db(DbError),
    /// A table or column named in the statement no longer exists (or changed
    /// type): re-read the layouts and try once more.
    Schema { detail: String },
    /// The database refused a row's content.
    Data { detail: String },
    /// The marker did not hold the expected value: nothing was written.
    Moved,
}

impl Fault {
    /// Outside an insert (catalog, marker statements) every fault is a
    /// plain error: content and schema faults there are refusals.
    #[cfg(any(
        feature = "sqlite",
        feature = "postgres",
        feature = "mysql",
        feature = "odbc"
    ))]
    pub(crate) fn into_db(self, backend: &'static str, target: String) -> DbError {
        match self {
            Fault::Db(e) => e,
            Fault::Schema { detail } | Fault::Data { detail } => DbError::Rejected {
                backend,
                target,
                detail,
            },
            Fault::Moved => DbError::Rejected {
                backend,
                target,
                detail: "the spool marker moved".to_string(),
            },
        }
    }
}

/// What a server error classified by its SQLSTATE becomes, when it is not
/// about the schema or a row's content.
#[cfg(any(feature = "postgres", feature = "odbc"))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrClass {
    Connection,
    Busy,
    Rejected,
}

#[cfg(any(feature = "postgres", feature = "odbc"))]
impl ErrClass {
    pub fn fault(self, backend: &'static str, target: String, detail: String) -> Fault {
        Fault::Db(match self {
            ErrClass::Connection => DbError::Connection {
                backend,
                target,
                detail,
            },
            ErrClass::Busy => DbError::Busy {
                backend,
                target,
                detail,
            },
            ErrClass::Rejected => DbError::Rejected {
                backend,
                target,
                detail,
            },
        })
    }
}

impl From<DbError> for Fault {
    fn from(e: DbError) -> Self {
        Fault::Db(e)
    }
}

pub(crate) trait Engine: Send {
    /// `sqlite`, `postgres`, `mysql`, `text`.
    fn backend(&self) -> &'static str;
    /// Where (redacted URL or path), for messages.
    fn target(&self) -> String;
    /// What to run when the default table is missing.
    fn missing_table_hint(&self) -> String;
    /// The table's columns; `None` when it does not exist.
    fn columns(&mut self, table: &str) -> Result<Option<Vec<ColumnInfo>>, DbError>;
    /// Insert all runs in one transaction: all or nothing. With `mark`, the
    /// same transaction moves the marker (compare-and-set) and inserts
    /// nothing if it did not hold `mark.expected` ([`Fault::Moved`]).
    fn insert(&mut self, runs: &[Run<'_>], mark: Option<&MarkCas<'_>>) -> Result<Counts, Fault>;
    /// Whether this engine can keep a marker (needs transactions).
    fn supports_marker(&self) -> bool {
        false
    }
    /// Run sql/<backend>/siptraced-spool-marker.sql.
    fn marker_create(&mut self) -> Result<(), DbError> {
        Err(self.no_marker())
    }
    /// The marker of spool `id`; `None` when it has no row.
    fn marker_read(&mut self, _id: &str) -> Result<Option<u64>, DbError> {
        Err(self.no_marker())
    }
    /// Insert the row of spool `id` with `last`, unless it exists.
    fn marker_insert(&mut self, _id: &str, _last: u64) -> Result<(), DbError> {
        Err(self.no_marker())
    }
    /// The error of the marker methods on an engine without them.
    fn no_marker(&self) -> DbError {
        DbError::Rejected {
            backend: self.backend(),
            target: self.target(),
            detail: "this backend cannot keep a spool marker".to_string(),
        }
    }
    /// One bounded DELETE of [`Backend::purge_batch`].
    fn purge_batch(
        &mut self,
        target: &PurgeTarget,
        rule: &PurgeRule,
        limit: u32,
    ) -> Result<u64, DbError>;
    /// See [`Backend::row_cap_threshold`].
    fn row_cap_threshold(&mut self, table: &str, keep: u64) -> Result<Option<i64>, DbError>;
    /// See [`Backend::maintain_partitions`]; only PostgreSQL partitions.
    fn maintain_partitions(
        &mut self,
        _table: &str,
        _keep_from: Option<&str>,
        _ahead: &[String],
    ) -> Result<PartitionReport, DbError> {
        Ok(PartitionReport::default())
    }
    /// Forget the connection after a connection error (reconnect on next use).
    fn drop_connection(&mut self);
    /// Forget prepared statements: the layouts they were built from changed.
    fn forget_statements(&mut self);
}

pub(crate) struct Store<E: Engine> {
    engine: E,
    default: String,
    default_layout: Option<Arc<Layout>>,
    layouts: HashMap<String, Arc<Layout>>,
    /// Tables refused, with when; re-checked after [`REFUSED_RECHECK`].
    refused: HashMap<String, Instant>,
    warned: HashSet<String>,
}

impl<E: Engine> Store<E> {
    /// Wrap an engine and check the default table now (start-up errors).
    pub fn new(engine: E, default_table: &str) -> Result<Self, DbError> {
        let mut s = Store {
            engine,
            default: default_table.to_string(),
            default_layout: None,
            layouts: HashMap::new(),
            refused: HashMap::new(),
            warned: HashSet::new(),
        };
        let layout = s.default_layout()?;
        log::info!(
            "siptrace db: {} (table {} v{})",
            s.engine.target(),
            layout.table,
            layout.version()
        );
        Ok(s)
    }

    fn default_layout(&mut self) -> Result<Arc<Layout>, DbError> {
        if let Some(l) = &self.default_layout {
            return Ok(l.clone());
        }
        let table = self.default.clone();
        let Some(cols) = self.engine.columns(&table)? else {
            return Err(DbError::MissingTable {
                table,
                hint: self.engine.missing_table_hint(),
            });
        };
        let layout = Layout::detect(&table, &cols)
            .map_err(|problem| DbError::BadLayout { table, problem })?;
        let layout = Arc::new(layout);
        self.default_layout = Some(layout.clone());
        Ok(layout)
    }

    /// The layout for a `trace_table_avp` table, `None` = reroute.
    fn resolve(&mut self, table: &str) -> Result<Option<Arc<Layout>>, DbError> {
        if let Some(l) = self.layouts.get(table) {
            return Ok(Some(l.clone()));
        }
        if !valid_table_name(table) {
            self.warn_once(
                table,
                "is not an SQL identifier [A-Za-z_][A-Za-z0-9_]{0,63}",
            );
            return Ok(None);
        }
        if let Some(since) = self.refused.get(table) {
            if since.elapsed() < REFUSED_RECHECK {
                return Ok(None);
            }
            self.refused.remove(table);
        }
        let problem: String = match self.engine.columns(table)? {
            None => "does not exist".to_string(),
            Some(cols) => match Layout::detect(table, &cols) {
                Ok(l) => {
                    if self.layouts.len() >= LAYOUT_CACHE_MAX {
                        self.layouts.clear();
                    }
                    let l = Arc::new(l);
                    self.layouts.insert(table.to_string(), l.clone());
                    return Ok(Some(l));
                }
                Err(p) => format!("cannot hold sip_trace rows: {p}"),
            },
        };
        self.warn_once(table, &problem);
        if self.refused.len() >= LAYOUT_CACHE_MAX {
            self.refused.clear();
        }
        self.refused.insert(table.to_string(), Instant::now());
        Ok(None)
    }

    fn warn_once(&mut self, table: &str, why: &str) {
        if self.warned.len() < WARNED_MAX && self.warned.insert(table.to_string()) {
            log::warn!(
                "siptrace db: table {table:?} {why}; its rows go to table {} \
                 (said once per table name)",
                self.default
            );
        }
    }

    /// Route every row; consecutive rows for the same table share a run.
    fn plan<'a>(&mut self, rows: &'a [Row]) -> Result<(Vec<Run<'a>>, u64), DbError> {
        let default = self.default_layout()?;
        let mut runs: Vec<Run<'a>> = Vec::new();
        let mut rerouted = 0;
        for row in rows {
            let layout = match row.table.as_deref() {
                None => default.clone(),
                Some(t) if t == self.default => default.clone(),
                Some(t) => match self.resolve(t)? {
                    Some(l) => l,
                    None => {
                        rerouted += 1;
                        default.clone()
                    }
                },
            };
            match runs.last_mut() {
                Some(run) if Arc::ptr_eq(&run.layout, &layout) => run.rows.push(row),
                _ => runs.push(Run {
                    layout,
                    rows: vec![row],
                }),
            }
        }
        Ok((runs, rerouted))
    }

    fn forget_layouts(&mut self) {
        self.default_layout = None;
        self.layouts.clear();
        self.refused.clear();
        self.engine.forget_statements();
    }

    fn write(&mut self, rows: &[Row]) -> Result<WriteReport, DbError> {
        let mut retried = false;
        loop {
            let (runs, rerouted) = self.plan(rows)?;
            match self.engine.insert(&runs, None) {
                Ok(c) => {
                    return Ok(WriteReport {
                        written: rows.len() as u64,
                        escaped: c.escaped,
                        rerouted,
                        truncated: c.truncated,
                        refused: 0,
                        already: 0,
                    });
                }
                Err(Fault::Db(e)) => return Err(e),
                Err(Fault::Moved) => return Err(self.rejected("marker moved without a marker")),
                Err(Fault::Schema { detail }) if !retried => {
                    log::warn!(
                        "siptrace db: {} schema changed ({detail}); re-reading table layouts",
                        self.engine.target()
                    );
                    self.forget_layouts();
                    retried = true;
                }
                Err(Fault::Schema { detail }) => {
                    return Err(DbError::Rejected {
                        backend: self.engine.backend(),
                        target: self.engine.target(),
                        detail,
                    });
                }
                Err(Fault::Data { detail }) => {
                    log::warn!(
                        "siptrace db: {} refused a batch of {} rows ({detail}); \
                         writing them one by one",
                        self.engine.target(),
                        rows.len()
                    );
                    return self.one_by_one(&runs, rerouted);
                }
            }
        }
    }

    /// After a content error: each row in its own transaction, refusing the
    /// ones the database will not take. Rows committed before a connection
    /// error here are written again if the caller retries the batch — a
    /// rare case (content error, then connection loss) accepted for
    /// simplicity.
    fn one_by_one(&mut self, runs: &[Run<'_>], rerouted: u64) -> Result<WriteReport, DbError> {
        let mut report = WriteReport {
            rerouted,
            ..WriteReport::default()
        };
        for run in runs {
            for row in &run.rows {
                let single = [Run {
                    layout: run.layout.clone(),
                    rows: vec![*row],
                }];
                match self.engine.insert(&single, None) {
                    Ok(c) => {
                        report.written += 1;
                        report.escaped += c.escaped;
                        report.truncated += c.truncated;
                    }
                    Err(Fault::Data { detail }) | Err(Fault::Schema { detail }) => {
                        report.refused += 1;
                        log::warn!(
                            "siptrace db: row refused by table {} (call-id {:?}): {detail}",
                            run.layout.table,
                            row.callid
                        );
                    }
                    Err(Fault::Db(e)) => return Err(e),
                    Err(Fault::Moved) => {
                        return Err(self.rejected("marker moved without a marker"));
                    }
                }
            }
        }
        Ok(report)
    }
}

impl<E: Engine> Store<E> {
    fn rejected(&self, detail: &str) -> DbError {
        DbError::Rejected {
            backend: self.engine.backend(),
            target: self.engine.target(),
            detail: detail.to_string(),
        }
    }

    /// After a connection error: reconnect and re-read everything next time.
    fn after<T>(&mut self, r: Result<T, DbError>) -> Result<T, DbError> {
        if let Err(e) = &r
            && e.is_connection()
        {
            self.engine.drop_connection();
            self.forget_layouts();
        }
        r
    }

    fn prepare_marker(&mut self, id: &str) -> Result<MarkerOpen, DbError> {
        let backend = self.engine.backend();
        if !self.engine.supports_marker() {
            return Ok(MarkerOpen::NoTransactions(format!(
                "the {backend} backend has no transactions to keep a marker in"
            )));
        }
        let script = format!("sql/{}/siptraced-spool-marker.sql", sql_dir(backend));
        // Only connection errors are errors; the rest means "no marker".
        let soft = |e: DbError, what: &str| -> Result<MarkerOpen, DbError> {
            if e.is_connection() {
                Err(e)
            } else {
                Ok(MarkerOpen::Unsupported(format!(
                    "{what}: {e}; run {script}"
                )))
            }
        };
        match self.engine.columns(MARKER_TABLE) {
            Err(e) => return soft(e, "cannot read the marker table's columns"),
            Ok(None) => match self.engine.marker_create() {
                Ok(()) => log::info!(
                    "siptrace db: created table {MARKER_TABLE} in {} (spool replay bookkeeping)",
                    self.engine.target()
                ),
                Err(e) => {
                    return soft(
                        e,
                        &format!("table {MARKER_TABLE} is missing and cannot be created"),
                    );
                }
            },
            Ok(Some(cols)) => {
                let has = |n: &str| cols.iter().any(|c| c.name.eq_ignore_ascii_case(n));
                if !has("spool_id") || !has("last_seq") {
                    return Ok(MarkerOpen::Unsupported(format!(
                        "table {MARKER_TABLE} lacks spool_id/last_seq; recreate it with {script}"
                    )));
                }
            }
        }
        match self.engine.marker_read(id) {
            Ok(Some(v)) => return Ok(MarkerOpen::Ready(v)),
            Ok(None) => {}
            Err(e) => return soft(e, &format!("cannot read table {MARKER_TABLE}")),
        }
        if let Err(e) = self.engine.marker_insert(id, 0) {
            return soft(e, &format!("cannot insert into table {MARKER_TABLE}"));
        }
        match self.engine.marker_read(id) {
            Ok(Some(v)) => Ok(MarkerOpen::Ready(v)),
            Ok(None) => Ok(MarkerOpen::Unsupported(format!(
                "the row inserted into {MARKER_TABLE} cannot be read back"
            ))),
            Err(e) => soft(e, &format!("cannot read table {MARKER_TABLE}")),
        }
    }

    /// The marker's value after a compare-and-set failed; a row deleted
    /// meanwhile is put back with what we know.
    fn reread_marker(&mut self, marker: &Marker) -> Result<u64, DbError> {
        if let Some(v) = self.engine.marker_read(&marker.id)? {
            return Ok(v);
        }
        log::warn!(
            "siptrace db: the row of spool {} vanished from {MARKER_TABLE}; restored",
            marker.id
        );
        self.engine.marker_insert(&marker.id, marker.last)?;
        Ok(self.engine.marker_read(&marker.id)?.unwrap_or(marker.last))
    }

    fn moved(&mut self, marker: &mut Marker, moves: &mut u32) -> Result<(), DbError> {
        *moves += 1;
        if *moves > MARKER_MOVES_MAX {
            return Err(self.rejected(&format!(
                "the marker of spool {} keeps moving under us: is another siptraced \
                 using a copy of this spool directory?",
                marker.id
            )));
        }
        let found = self.reread_marker(marker)?;
        log::info!(
            "siptrace db: spool {} marker is at {found}, not {} (an earlier write \
             committed after all); rows up to it are skipped",
            marker.id,
            marker.last
        );
        marker.last = found;
        Ok(())
    }

    fn write_marked(
        &mut self,
        rows: &[Row],
        seqs: &[u64],
        marker: &mut Marker,
    ) -> Result<WriteReport, DbError> {
        let mut schema_retried = false;
        let mut moves = 0;
        loop {
            // Numbers rise: the rows already written are a prefix.
            let skip = seqs.partition_point(|&s| s <= marker.last);
            let (rows, seqs_left) = (&rows[skip..], &seqs[skip..]);
            let already = skip as u64;
            let Some(&new) = seqs_left.last() else {
                return Ok(WriteReport {
                    already,
                    ..WriteReport::default()
                });
            };
            let (runs, rerouted) = self.plan(rows)?;
            let id = marker.id.clone();
            let cas = MarkCas {
                id: &id,
                expected: marker.last,
                new,
            };
            match self.engine.insert(&runs, Some(&cas)) {
                Ok(c) => {
                    marker.last = new;
                    return Ok(WriteReport {
                        written: rows.len() as u64,
                        escaped: c.escaped,
                        rerouted,
                        truncated: c.truncated,
                        refused: 0,
                        already,
                    });
                }
                Err(Fault::Moved) => self.moved(marker, &mut moves)?,
                Err(Fault::Db(e)) => return Err(e),
                Err(Fault::Schema { detail }) if !schema_retried => {
                    log::warn!(
                        "siptrace db: {} schema changed ({detail}); re-reading table layouts",
                        self.engine.target()
                    );
                    self.forget_layouts();
                    schema_retried = true;
                }
                Err(Fault::Schema { detail }) => return Err(self.rejected(&detail)),
                Err(Fault::Data { detail }) => {
                    log::warn!(
                        "siptrace db: {} refused a batch of {} rows ({detail}); \
                         writing them one by one",
                        self.engine.target(),
                        rows.len()
                    );
                    let mut report = self.one_by_one_marked(&runs, seqs_left, marker)?;
                    report.rerouted = rerouted;
                    report.already += already;
                    return Ok(report);
                }
            }
        }
    }

    /// [`Store::one_by_one`] for marked rows: each row moves the marker in
    /// its own transaction, so a crash midway leaves nothing to write twice.
    fn one_by_one_marked(
        &mut self,
        runs: &[Run<'_>],
        seqs: &[u64],
        marker: &mut Marker,
    ) -> Result<WriteReport, DbError> {
        let mut report = WriteReport::default();
        let mut moves = 0;
        let singles = runs
            .iter()
            .flat_map(|run| run.rows.iter().map(move |row| (run, *row)));
        for ((run, row), &seq) in singles.zip(seqs) {
            loop {
                if seq <= marker.last {
                    report.already += 1;
                    break;
                }
                let single = [Run {
                    layout: run.layout.clone(),
                    rows: vec![row],
                }];
                let id = marker.id.clone();
                let cas = MarkCas {
                    id: &id,
                    expected: marker.last,
                    new: seq,
                };
                match self.engine.insert(&single, Some(&cas)) {
                    Ok(c) => {
                        marker.last = seq;
                        report.written += 1;
                        report.escaped += c.escaped;
                        report.truncated += c.truncated;
                    }
                    Err(Fault::Moved) => {
                        self.moved(marker, &mut moves)?;
                        continue;
                    }
                    Err(Fault::Data { detail }) | Err(Fault::Schema { detail }) => {
                        report.refused += 1;
                        log::warn!(
                            "siptrace db: row refused by table {} (call-id {:?}): {detail}",
                            run.layout.table,
                            row.callid
                        );
                    }
                    Err(Fault::Db(e)) => return Err(e),
                }
                break;
            }
        }
        Ok(report)
    }
}

/// The directory of sql/ for a backend name.
fn sql_dir(backend: &str) -> &str {
    match backend {
        "text" => "db_text",
        b => b,
    }
}

impl<E: Engine> Store<E> {
    /// The default table as a purge sees it: its time and method columns.
    fn purge_target(&mut self) -> Result<PurgeTarget, DbError> {
        let layout = self.default_layout()?;
        let col = |f: Field| layout.targets.iter().find(|t| t.field == f);
        let Some(time) = col(Field::Time) else {
            return Err(self.rejected("the table has no time column to purge by"));
        };
        let time_kind = match time.column.kind {
            ColumnKind::Integer => TimeKind::UnixSeconds,
            ColumnKind::Timestamp(t) if !t.is_empty() => TimeKind::PgTimestamp,
            _ => TimeKind::Local,
        };
        Ok(PurgeTarget {
            table: layout.table.clone(),
            time_col: time.column.name.clone(),
            time_kind,
            method_col: col(Field::Method).map(|t| t.column.name.clone()),
        })
    }
}

impl<E: Engine> Backend for Store<E> {
    fn purge_batch(&mut self, rule: &PurgeRule, limit: u32) -> Result<u64, DbError> {
        let r = self
            .purge_target()
            .and_then(|t| self.engine.purge_batch(&t, rule, limit.max(1)));
        self.after(r)
    }

    fn row_cap_threshold(&mut self, keep: u64) -> Result<Option<i64>, DbError> {
        let table = self.default.clone();
        let r = self.engine.row_cap_threshold(&table, keep.max(1));
        self.after(r)
    }

    fn maintain_partitions(
        &mut self,
        keep_from: Option<&str>,
        ahead: &[String],
    ) -> Result<PartitionReport, DbError> {
        let table = self.default.clone();
        let r = self.engine.maintain_partitions(&table, keep_from, ahead);
        self.after(r)
    }

    fn write_batch(&mut self, rows: &[Row]) -> Result<WriteReport, DbError> {
        if rows.is_empty() {
            return Ok(WriteReport::default());
        }
        let r = self.write(rows);
        self.after(r)
    }

    fn open_marker(&mut self, id: &str) -> Result<MarkerOpen, DbError> {
        let r = self.prepare_marker(id);
        self.after(r)
    }

    fn write_batch_marked(
        &mut self,
        rows: &[Row],
        seqs: &[u64],
        marker: &mut Marker,
    ) -> Result<WriteReport, DbError> {
        if rows.len() != seqs.len() {
            return Err(self.rejected("rows and sequence numbers differ in count"));
        }
        if rows.is_empty() {
            return Ok(WriteReport::default());
        }
        let r = self.write_marked(rows, seqs, marker);
        self.after(r)
    }

    fn describe(&self) -> String {
        match &self.default_layout {
            Some(l) => format!("{} ({} v{})", self.engine.target(), l.table, l.version()),
            None => format!("{} ({})", self.engine.target(), self.default),
        }
    }
}
