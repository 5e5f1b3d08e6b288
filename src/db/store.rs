//! The backend-independent half of a store: routes each row to its table
//! (validating names, caching layouts, rerouting refused tables to the
//! default one with one warning per name), groups rows into per-table runs,
//! and reacts to failures: a connection error drops the cached layouts (the
//! next call reconnects and re-reads them), a schema change is retried once
//! with fresh layouts, and a batch refused for a row's content is retried row
//! by row so one bad row cannot block the others forever.
//! Engines (one per backend) only read catalogs and insert runs.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::schema::{ColumnInfo, Layout};
use super::{Backend, DbError, Row, WriteReport, valid_table_name};

/// Layouts cached at most; past this the cache restarts (table names can come
/// from script AVPs, so their number is not ours to bound).
const LAYOUT_CACHE_MAX: usize = 256;
/// Table names warned about at most; later new names are still rerouted.
const WARNED_MAX: usize = 1024;
/// A refused table (missing, unusable) is looked up again after this long, so
/// a table created later is used without a restart; one catalog query per
/// name per minute is negligible.
const REFUSED_RECHECK: Duration = Duration::from_secs(60);

/// Rows of one batch aimed at the same table, consecutive in batch order.
pub(crate) struct Run<'a> {
    pub layout: Rc<Layout>,
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
    pub fn row(&mut self, escaped: bool, truncated: bool) {
        self.escaped += u64::from(escaped);
        self.truncated += u64::from(truncated);
    }
}

/// How an engine's insert failed.
#[derive(Debug)]
pub(crate) enum Fault {
    /// Connection, busy, rejected…: reported to the caller as is.
    Db(DbError),
    /// A table or column named in the statement no longer exists (or changed
    /// type): re-read the layouts and try once more.
    Schema { detail: String },
    /// The database refused a row's content.
    Data { detail: String },
}

impl From<DbError> for Fault {
    fn from(e: DbError) -> Self {
        Fault::Db(e)
    }
}

pub(crate) trait Engine {
    /// `sqlite`, `postgres`, `mysql`, `text`.
    fn backend(&self) -> &'static str;
    /// Where (redacted URL or path), for messages.
    fn target(&self) -> String;
    /// What to run when the default table is missing.
    fn missing_table_hint(&self) -> String;
    /// The table's columns; `None` when it does not exist.
    fn columns(&mut self, table: &str) -> Result<Option<Vec<ColumnInfo>>, DbError>;
    /// Insert all runs in one transaction: all or nothing.
    fn insert(&mut self, runs: &[Run<'_>]) -> Result<Counts, Fault>;
    /// Forget the connection after a connection error (reconnect on next use).
    fn drop_connection(&mut self);
    /// Forget prepared statements: the layouts they were built from changed.
    fn forget_statements(&mut self);
}

pub(crate) struct Store<E: Engine> {
    engine: E,
    default: String,
    default_layout: Option<Rc<Layout>>,
    layouts: HashMap<String, Rc<Layout>>,
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

    fn default_layout(&mut self) -> Result<Rc<Layout>, DbError> {
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
        let layout = Rc::new(layout);
        self.default_layout = Some(layout.clone());
        Ok(layout)
    }

    /// The layout for a `trace_table_avp` table, `None` = reroute.
    fn resolve(&mut self, table: &str) -> Result<Option<Rc<Layout>>, DbError> {
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
                    let l = Rc::new(l);
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
                Some(run) if Rc::ptr_eq(&run.layout, &layout) => run.rows.push(row),
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
            match self.engine.insert(&runs) {
                Ok(c) => {
                    return Ok(WriteReport {
                        written: rows.len() as u64,
                        escaped: c.escaped,
                        rerouted,
                        truncated: c.truncated,
                        refused: 0,
                    });
                }
                Err(Fault::Db(e)) => return Err(e),
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
                match self.engine.insert(&single) {
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
                }
            }
        }
        Ok(report)
    }
}

impl<E: Engine> Backend for Store<E> {
    fn write_batch(&mut self, rows: &[Row]) -> Result<WriteReport, DbError> {
        if rows.is_empty() {
            return Ok(WriteReport::default());
        }
        let r = self.write(rows);
        if let Err(e) = &r
            && e.is_connection()
        {
            self.engine.drop_connection();
            self.forget_layouts();
        }
        r
    }

    fn describe(&self) -> String {
        match &self.default_layout {
            Some(l) => format!("{} ({} v{})", self.engine.target(), l.table, l.version()),
            None => format!("{} ({})", self.engine.target(), self.default),
        }
    }
}
