//! The DB edge of the reactor: where each turn's trace rows go.
//!
//! While the database is up and the spool is empty, rows are written
//! directly (marked, see below). When a write fails, those rows and every
//! later one go to the spool, in order, and the database is tried again on a
//! backoff timer. When it answers, the spool is replayed oldest first, one
//! bounded batch per turn, while the turn's new rows are appended behind the
//! spooled ones; once the spool is empty, rows go directly again. So the
//! table's order is the order of events.
//!
//! Every row gets a sequence number from the spool; writes move the
//! database's marker to the last number written, in the same transaction
//! (`Backend::write_batch_marked`), so a row whose commit was never
//! confirmed (timeout, lost connection, crash before the spool was trimmed)
//! is recognised on replay and not written twice. ARCHITECTURE.md, "Spool",
//! has the whole argument.
//!
//! It runs on the trace writer thread (writer.rs, docs/decisions.md §21),
//! never on the reactor's: each step makes one DB call at most for replay
//! plus the live rows' batches, each bounded by the backend's timeouts; a
//! reconnect try costs at most the connect timeout and happens at most once
//! per backoff step. Never reads the clock (`now` is passed in) and never
//! blocks on the spool beyond one append (+ fsync) per step — except the
//! retention purge (purge.rs), which measures its own batches to stay
//! within a few ms per tick, and runs only in steps without replay, while
//! nothing is spooled.

use super::backoff::{self, Backoff};
use super::disk::{Batch, FitMode};
use super::purge::Purger;
use super::{Spool, SpoolError};
use crate::clock::{WallTime, local_datetime};
use crate::config::SpoolFullPolicy;
use crate::db::{self, Backend, DbError, Marker, MarkerOpen, RetentionPolicy, Row, WriteReport};
use std::time::{Duration, Instant};

/// Bytes of one replay batch at most, besides `db_batch_rows`: with 64 KiB
/// messages 1000 rows would be 64 MiB in memory and a long stall.
const REPLAY_MAX_BYTES: usize = 4 << 20;
/// Database time one replay batch aims at: replay shares each turn with
/// SIP, so a batch is sized to what the database took for the last one
/// ([`next_replay_rows`]), not a fixed row count (1000 rows into a busy
/// PostgreSQL measured 10-15 ms per turn, the stall probe's p99 while
/// catching up).
const REPLAY_BUDGET: Duration = Duration::from_millis(3);
/// Rows of the first replay batch after the database comes back.
const REPLAY_FIRST_ROWS: usize = 64;
/// Never fewer rows per replay batch (a slow database still drains).
const REPLAY_MIN_ROWS: usize = 16;
/// Held rows are written at once past this many message bytes, whatever
/// `db_flush_ms` says: the hold saves commits, it must not hold memory.
const HOLD_MAX_BYTES: usize = 1 << 20;
/// Dropped rows are summarised in the log at most this often (each drop is
/// counted at once and appears in the next summary).
const DROP_LOG_EVERY: Duration = Duration::from_secs(10);
/// Replay pauses this long after a spool read error.
const REPLAY_HOLD: Duration = Duration::from_secs(1);
/// Replay progress is logged at most this often.
const PROGRESS_LOG_EVERY: Duration = Duration::from_secs(5);

/// Counters of the DB edge, reported by `sip_trace_stats` (docs/decisions.md §9).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DbCounters {
    /// Rows this process put in the database (live and replayed),
    /// including spooled rows that one of its commits whose answer was
    /// lost had stored already (not those an earlier run had stored).
    pub rows_written: u64,
    /// Rows appended to the spool.
    pub rows_spooled: u64,
    /// Spooled rows accounted for on replay: written, found already written,
    /// or refused by the database for their content.
    pub rows_replayed: u64,
    /// Rows lost: the spool was full (or unusable).
    pub rows_dropped: u64,
    /// Bytes of the spool files.
    pub spool_bytes: u64,
    pub msgs_escaped: u64,
    pub rows_rerouted: u64,
    /// Unix seconds since when the database has been failing, if it is.
    pub down_since: Option<i64>,
    /// Rows deleted by retention (day partitions dropped count their
    /// estimated rows), docs/decisions.md §14.
    pub rows_purged: u64,
    /// Database time of the last completed retention pass, in ms.
    pub last_purge_ms: u64,
    /// Times the reactor waited because the rows queued for the writer
    /// thread reached their bound (writer.rs, `QUEUE_MAX_BYTES`).
    pub queue_waits: u64,
}

impl DbCounters {
    /// The counters for a log line.
    pub fn summary(&self) -> String {
        format!(
            "rows_written={} rows_spooled={} rows_replayed={} rows_dropped={} spool_bytes={}",
            self.rows_written,
            self.rows_spooled,
            self.rows_replayed,
            self.rows_dropped,
            self.spool_bytes
        )
    }
}

/// What to (re)open when the database was unreachable at start-up.
#[derive(Debug, Clone)]
pub struct DbTarget {
    pub url: String,
    pub table: String,
    pub opts: db::OpenOptions,
}

#[derive(Debug, Clone, Copy)]
pub struct SinkSettings {
    /// Rows per transaction (`db_batch_rows`), live and replay.
    pub batch_rows: usize,
    pub policy: SpoolFullPolicy,
    /// `db_flush_ms`: how long rows may be held for later turns' rows to
    /// share their transaction (docs/decisions.md §17).
    pub flush_delay: Duration,
}

enum MarkerState {
    /// Must be read before the next write (start, or after a failure: the
    /// last commit's outcome is unknown).
    Unknown,
    Ready(Marker),
    /// No marker can be kept: writes go unmarked.
    Off,
}

/// Rate-limited reporting of dropped rows.
#[derive(Default)]
struct DropLog {
    unlogged: u64,
    next_log: Option<Instant>,
}

/// A replay in progress, for its rate.
struct Drain {
    started: Instant,
    replayed_before: u64,
    next_progress: Instant,
}

pub struct TraceSink {
    /// None: rows are not traced to a database at all.
    target: Option<DbTarget>,
    db: Option<Box<dyn Backend>>,
    spool: Option<Spool>,
    marker: MarkerState,
    /// Some while the database is down: when to try again.
    down: Option<Backoff>,
    last_error: String,
    counters: DbCounters,
    settings: SinkSettings,
    /// `spool_full_policy` "stop" hit the cap: refuse rows until drained.
    stopped: bool,
    drops: DropLog,
    drain: Option<Drain>,
    marker_warned: bool,
    spool_error_logged: Option<Instant>,
    /// After a spool read error, replay waits until then (no busy loop on
    /// a failing disk).
    replay_hold: Option<Instant>,
    /// The last `now` seen: a deadline already passed, to ask the reactor
    /// for an immediate turn without reading the clock here.
    last_now: Instant,
    /// Retention, when a limit is configured.
    purger: Option<Purger>,
    /// Rows of the next replay batch ([`next_replay_rows`]).
    replay_rows: usize,
    /// The first sequence number this process gave a row: spooled rows
    /// found already written with a number at least this were stored by
    /// one of our own commits whose answer was lost.
    first_own_seq: Option<u64>,
    /// Rows of earlier turns waiting to share a transaction (`db_flush_ms`),
    /// with the time the first of them arrived and their message bytes.
    held: Vec<Row>,
    held_since: Option<Instant>,
    held_bytes: usize,
}

impl TraceSink {
    /// No database tracing: rows are discarded.
    pub(crate) fn disabled(now: Instant) -> TraceSink {
        Self::build(
            None,
            None,
            None,
            SinkSettings {
                batch_rows: 1,
                policy: SpoolFullPolicy::Drop,
                flush_delay: Duration::ZERO,
            },
            now,
        )
    }

    /// `db` is None when the database was unreachable at start-up: the sink
    /// starts down and opens it on the backoff timer.
    pub fn new(
        target: DbTarget,
        db: Option<Box<dyn Backend>>,
        spool: Option<Spool>,
        settings: SinkSettings,
        now: Instant,
        wall: WallTime,
    ) -> TraceSink {
        let down = db.is_none();
        let mut s = Self::build(Some(target), db, spool, settings, now);
        if down {
            s.down = Some(Backoff::start(now));
            s.counters.down_since = Some(wall.sec);
        }
        s.sync_bytes();
        s
    }

    fn build(
        target: Option<DbTarget>,
        db: Option<Box<dyn Backend>>,
        spool: Option<Spool>,
        settings: SinkSettings,
        now: Instant,
    ) -> TraceSink {
        let marker = if spool.is_some() {
            MarkerState::Unknown
        } else {
            MarkerState::Off
        };
        TraceSink {
            target,
            db,
            spool,
            marker,
            down: None,
            last_error: String::new(),
            counters: DbCounters::default(),
            settings: SinkSettings {
                batch_rows: settings.batch_rows.max(1),
                ..settings
            },
            stopped: false,
            drops: DropLog::default(),
            drain: None,
            purger: None,
            marker_warned: false,
            spool_error_logged: None,
            replay_hold: None,
            last_now: now,
            replay_rows: REPLAY_FIRST_ROWS,
            first_own_seq: None,
            held: Vec::new(),
            held_since: None,
            held_bytes: 0,
        }
    }

    /// Delete rows per `policy` from now on (nothing when it sets no limit).
    pub fn set_retention(&mut self, policy: RetentionPolicy, now: Instant) {
        self.purger = policy.is_active().then(|| Purger::new(policy, now));
    }

    /// Whether the turn may spend time on retention: the database is up,
    /// its marker known, and nothing waits in the spool (replay first).
    fn may_purge(&self) -> bool {
        self.target.is_some()
            && self.is_up()
            && self.db.is_some()
            && self.pending() == 0
            && !matches!(self.marker, MarkerState::Unknown)
    }

    /// One retention tick when due; at most [`Purger::tick_budget`] of work.
    fn purge_tick(&mut self, now: Instant, wall: WallTime) {
        let (Some(p), Some(db)) = (self.purger.as_mut(), self.db.as_mut()) else {
            return;
        };
        if !p.due(now) {
            return;
        }
        match p.tick(db.as_mut(), now, wall, Some(Purger::tick_budget())) {
            Ok(t) => self.purged(t),
            // A lock held by someone else only postpones the pass (the
            // purger waits `retention_interval`); the rows still go in.
            Err(DbError::Busy { .. }) => {}
            Err(e) if e.is_connection() => self.go_down(&e, now, wall),
            Err(_) => {}
        }
    }

    fn purged(&mut self, t: super::purge::TickDone) {
        self.counters.rows_purged += t.rows;
        if let Some(p) = t.pass {
            self.counters.last_purge_ms = p.ms;
        }
    }

    /// `sip_trace_purge`: one whole retention pass now (bounded batches,
    /// all of them); the rows deleted, or why nothing could be done.
    pub(crate) fn purge_now(&mut self, now: Instant, wall: WallTime) -> Result<u64, String> {
        if self.target.is_none() {
            return Err("database tracing is off (trace_to_database=0)".to_string());
        }
        if self.purger.is_none() {
            return Err("no retention configured: set modparam siptrace retention, \
                        retention_rows or retention_method"
                .to_string());
        }
        if !self.is_up() {
            return Err(format!("database unavailable: {}", self.last_error));
        }
        let (Some(p), Some(db)) = (self.purger.as_mut(), self.db.as_mut()) else {
            return Err("database not open".to_string());
        };
        match p.full_pass(db.as_mut(), now, wall) {
            Ok(t) => {
                self.purged(t);
                Ok(t.pass.map_or(0, |p| p.rows))
            }
            Err(e) => {
                let text = e.to_string();
                if e.is_connection() {
                    self.go_down(&e, now, wall);
                }
                Err(text)
            }
        }
    }

    /// Whether rows go anywhere (a database is configured).
    pub(crate) fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// The spool's directory, when there is a spool.
    pub fn spool_dir(&self) -> Option<&std::path::Path> {
        self.spool.as_ref().map(|s| s.dir())
    }

    pub fn counters(&self) -> &DbCounters {
        &self.counters
    }

    /// Rows waiting in the spool.
    pub fn pending(&self) -> u64 {
        self.spool.as_ref().map_or(0, Spool::pending)
    }

    fn is_up(&self) -> bool {
        self.down.is_none()
    }

    /// When the reactor must call [`TraceSink::flush`] even without rows:
    /// the next reconnect try, at once while replay has work, or the next
    /// drop summary.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.target.as_ref()?;
        let work = match &self.down {
            Some(b) => Some(b.next_try()),
            None if self.pending() > 0 => Some(self.replay_hold.unwrap_or(self.last_now)),
            None if matches!(self.marker, MarkerState::Unknown) => Some(self.last_now),
            None => None,
        };
        let drops = self.drops.next_log.filter(|_| self.drops.unlogged > 0);
        let held = self.held_since.map(|t| t + self.settings.flush_delay);
        let purge = self
            .purger
            .as_ref()
            .filter(|_| self.may_purge())
            .map(Purger::next_tick);
        work.into_iter().chain(drops).chain(held).chain(purge).min()
    }

    /// The turn's DB step: maybe reconnect, replay one bounded batch, then
    /// place the turn's rows (written, or spooled behind older ones).
    pub(crate) fn flush(&mut self, rows: Vec<Row>, now: Instant, wall: WallTime) {
        self.last_now = now;
        if self.target.is_none() {
            return;
        }
        if let Some(b) = &self.down
            && b.due(now)
        {
            self.try_up(now, wall);
        }
        if self.is_up() && matches!(self.marker, MarkerState::Unknown) {
            if let Err(e) = self.ensure_marker() {
                self.go_down(&e, now, wall);
            }
        }
        let replaying = self.is_up() && self.pending() > 0;
        if replaying {
            self.replay_one(now, wall);
        }
        let rows = self.hold(rows, now);
        if !rows.is_empty() {
            self.take_live(rows, now, wall);
        }
        // A replay batch is the turn's DB work already; retention waits for
        // a turn of its own (ARCHITECTURE.md, "Spool").
        if !replaying && self.may_purge() {
            self.purge_tick(now, wall);
        }
        self.log_drops(now, false);
        self.sync_bytes();
    }

    /// The last turn before exit: no reconnect try (a dead host would delay
    /// the exit by the connect timeout); rows are written if the database is
    /// up and nothing is spooled, else spooled.
    pub fn finish(&mut self, rows: Vec<Row>, now: Instant, wall: WallTime) {
        self.last_now = now;
        let mut all = self.take_held();
        all.extend(rows);
        let rows = all;
        if self.target.is_none() || rows.is_empty() {
            return;
        }
        if self.is_up() && matches!(self.marker, MarkerState::Unknown) {
            if let Err(e) = self.ensure_marker() {
                self.go_down(&e, now, wall);
            }
        }
        self.take_live(rows, now, wall);
        self.sync_bytes();
    }

    /// At exit, while the database is up: replay one more batch. Returns
    /// whether more remains.
    pub(crate) fn drain_step(&mut self, now: Instant, wall: WallTime) -> bool {
        self.last_now = now;
        if self.target.is_some() && self.is_up() && self.pending() > 0 {
            self.replay_one(now, wall);
            self.sync_bytes();
        }
        // A spool read error pauses replay: stop here rather than spin.
        self.target.is_some() && self.is_up() && self.pending() > 0 && self.replay_hold.is_none()
    }

    /// Final words at exit.
    pub fn close(&mut self, now: Instant) {
        if self.target.is_none() {
            return;
        }
        self.log_drops(now, true);
        if let Some(s) = &self.spool
            && s.pending() > 0
        {
            log::warn!(
                "siptrace: stopping with {} rows in the spool {}; they are written at the \
                 next start ({})",
                s.pending(),
                s.dir().display(),
                self.counters.summary()
            );
        } else {
            log::info!("siptrace: stopping ({})", self.counters.summary());
        }
    }

    fn try_up(&mut self, now: Instant, wall: WallTime) {
        if self.db.is_none() {
            let Some(t) = &self.target else { return };
            match db::open(&t.url, &t.table, &t.opts) {
                Ok(b) => self.db = Some(b),
                Err(e) => {
                    self.still_down(&e, now);
                    return;
                }
            }
        }
        if let Err(e) = self.ensure_marker() {
            self.still_down(&e, now);
            return;
        }
        // Reading the marker proved the database answers. Without a marker
        // (dbtext, no marker table), the first replayed batch is the proof:
        // saying "back" before it would flap on every try.
        if matches!(self.marker, MarkerState::Ready(_)) || self.pending() == 0 {
            self.back_up(now, wall);
            return;
        }
        match self.replay_batch(now) {
            Ok(done) => {
                self.back_up(now, wall);
                if let Some(left) = done {
                    self.replayed(left, now);
                }
            }
            Err(e) => self.still_down(&e, now),
        }
    }

    /// Read (or create) the marker when it is unknown.
    fn ensure_marker(&mut self) -> Result<(), DbError> {
        if !matches!(self.marker, MarkerState::Unknown) {
            return Ok(());
        }
        let (Some(spool), Some(db)) = (self.spool.as_ref(), self.db.as_mut()) else {
            self.marker = MarkerState::Off;
            return Ok(());
        };
        let id = spool.id().to_string();
        match db.open_marker(&id)? {
            MarkerOpen::Ready(last) => {
                log::debug!("siptrace: spool {id} marker at {last}");
                self.marker = MarkerState::Ready(Marker { id, last });
            }
            MarkerOpen::Unsupported(why) => {
                if !self.marker_warned {
                    self.marker_warned = true;
                    log::warn!(
                        "siptrace: no spool marker ({why}); replay after a crash or a \
                         write whose answer was lost may store some rows twice"
                    );
                }
                self.marker = MarkerState::Off;
            }
            MarkerOpen::NoTransactions(why) => {
                if !self.marker_warned {
                    self.marker_warned = true;
                    log::info!(
                        "siptrace: no spool marker ({why}): replay after a crash may store \
                         some rows twice"
                    );
                }
                self.marker = MarkerState::Off;
            }
        }
        Ok(())
    }

    fn back_up(&mut self, now: Instant, wall: WallTime) {
        let since = self.counters.down_since.take();
        self.down = None;
        self.last_error.clear();
        let pending = self.pending();
        let desc = self.db.as_ref().map(|d| d.describe()).unwrap_or_default();
        log::info!(
            "siptrace: database is back: {desc}{}; {} ({})",
            since.map_or(String::new(), |s| format!(
                " (down since {}, {} s)",
                local_datetime(s),
                (wall.sec - s).max(0)
            )),
            if pending > 0 {
                format!("replaying {pending} spooled rows, oldest first")
            } else {
                "nothing spooled".to_string()
            },
            self.counters.summary()
        );
        if pending > 0 {
            self.start_drain(now);
        }
    }

    fn start_drain(&mut self, now: Instant) {
        if self.drain.is_some() {
            return;
        }
        self.drain = Some(Drain {
            started: now,
            replayed_before: self.counters.rows_replayed,
            next_progress: now + PROGRESS_LOG_EVERY,
        });
    }

    fn go_down(&mut self, e: &DbError, now: Instant, wall: WallTime) {
        // Whether the failed write committed is unknown: re-read the marker.
        if matches!(self.marker, MarkerState::Ready(_)) {
            self.marker = MarkerState::Unknown;
        }
        if self.down.is_some() {
            self.still_down(e, now);
            return;
        }
        // A drain cut short: its rate would count the outage.
        self.drain = None;
        self.down = Some(Backoff::start(now));
        self.counters.down_since = Some(wall.sec);
        self.last_error = e.to_string();
        let place = match &self.spool {
            Some(s) => format!("rows go to the spool {}", s.dir().display()),
            None => "no spool: rows are dropped".to_string(),
        };
        log::error!(
            "siptrace: database down: {e}; {place}; retrying after {} ms, then every {} s \
             ({} s after tries that time out) ({})",
            backoff::FIRST.as_millis(),
            backoff::MAX_FAST.as_secs(),
            backoff::MAX_SLOW.as_secs(),
            self.counters.summary()
        );
    }

    fn still_down(&mut self, e: &DbError, now: Instant) {
        if let Some(b) = self.down.as_mut() {
            b.failed(now, e.is_timeout());
        }
        let text = e.to_string();
        if text != self.last_error {
            log::warn!(
                "siptrace: database still unavailable: {text} ({})",
                self.counters.summary()
            );
            self.last_error = text;
        } else {
            log::debug!("siptrace: database still unavailable: {text}");
        }
    }

    fn write(&mut self, rows: &[Row], seqs: &[u64]) -> Result<WriteReport, DbError> {
        let Some(db) = self.db.as_mut() else {
            return Err(DbError::Connection {
                backend: "db",
                target: String::new(),
                detail: "not open".to_string(),
            });
        };
        match &mut self.marker {
            MarkerState::Ready(m) if seqs.len() == rows.len() => {
                db.write_batch_marked(rows, seqs, m)
            }
            _ => db.write_batch(rows),
        }
    }

    /// `own_already`: how many of `rep.already` this process had sent in
    /// a commit whose answer was lost: they are in the table, written.
    fn count(&mut self, rep: &WriteReport, own_already: u64) {
        self.counters.rows_written += rep.written + own_already;
        self.counters.msgs_escaped += rep.escaped;
        self.counters.rows_rerouted += rep.rerouted;
        if rep.already > 0 {
            log::info!(
                "siptrace: {} spooled rows were in the database already (an earlier \
                 write committed after all); not written again",
                rep.already
            );
        }
    }

    /// One bounded batch of the oldest spooled rows; a failure marks the
    /// database down.
    fn replay_one(&mut self, now: Instant, wall: WallTime) {
        match self.replay_batch(now) {
            Ok(Some(left)) => self.replayed(left, now),
            Ok(None) => {}
            Err(e) => self.go_down(&e, now, wall),
        }
    }

    /// Write one batch of the oldest spooled rows and account for it in
    /// the spool. `Ok(Some(rows left))`, or `Ok(None)` when nothing was
    /// written (nothing to do, spool read error: replay pauses a moment).
    fn replay_batch(&mut self, now: Instant) -> Result<Option<u64>, DbError> {
        if self.replay_hold.is_some_and(|t| now < t) {
            return Ok(None);
        }
        self.replay_hold = None;
        let Some(spool) = self.spool.as_mut() else {
            return Ok(None);
        };
        let Batch {
            rows,
            records,
            undecodable,
        } = match spool.peek(
            self.replay_rows.min(self.settings.batch_rows),
            REPLAY_MAX_BYTES,
        ) {
            Ok(b) => b,
            Err(e) => {
                self.spool_error(&e, now);
                self.replay_hold = Some(now + REPLAY_HOLD);
                return Ok(None);
            }
        };
        if records == 0 {
            return Ok(None);
        }
        if self.drain.is_none() {
            self.start_drain(now);
        }
        let (seqs, rows): (Vec<u64>, Vec<Row>) = rows.into_iter().unzip();
        // The one clock read of the replay path (like purge.rs's): how long
        // the database took is what sizes the next batch.
        let t0 = Instant::now();
        let rep = self.write(&rows, &seqs)?;
        self.replay_rows = next_replay_rows(
            self.replay_rows,
            rows.len(),
            t0.elapsed(),
            self.settings.batch_rows,
        );
        // Rows found already written are the batch's first ones (numbers
        // up to the marker).
        let own_already = match self.first_own_seq {
            Some(first) => seqs
                .iter()
                .take(rep.already as usize)
                .filter(|&&q| q >= first)
                .count() as u64,
            None => 0,
        };
        self.count(&rep, own_already);
        self.counters.rows_replayed += rep.written + rep.already + rep.refused;
        if undecodable > 0 {
            log::warn!("siptrace: {undecodable} spooled records could not be decoded; lost");
        }
        let Some(spool) = self.spool.as_mut() else {
            return Ok(Some(0));
        };
        let consumed = spool.consume(records);
        let left = spool.pending();
        if let Err(e) = consumed {
            self.spool_error(&e, now);
            self.replay_hold = Some(now + REPLAY_HOLD);
        }
        Ok(Some(left))
    }

    /// After a replayed batch: progress or the end of the drain.
    fn replayed(&mut self, left: u64, now: Instant) {
        if left == 0 {
            self.drained(now);
        } else if let Some(d) = self.drain.as_mut()
            && now >= d.next_progress
        {
            d.next_progress = now + PROGRESS_LOG_EVERY;
            log::info!(
                "siptrace: replaying the spool: {left} rows left ({})",
                self.counters.summary()
            );
        }
    }

    fn drained(&mut self, now: Instant) {
        self.sync_bytes();
        if let Some(d) = self.drain.take() {
            let rows = self.counters.rows_replayed - d.replayed_before;
            let secs = now.saturating_duration_since(d.started).as_secs_f64();
            let rate = if secs > 0.0 {
                format!("{:.0} rows/s", rows as f64 / secs)
            } else {
                "in one turn".to_string()
            };
            log::info!(
                "siptrace: spool drained: {rows} rows replayed in {secs:.2} s ({rate}) ({})",
                self.counters.summary()
            );
        }
        if self.stopped {
            self.stopped = false;
            log::warn!(
                "siptrace: spool drained: accepting rows again after the cap stopped them \
                 (rows_dropped={})",
                self.counters.rows_dropped
            );
        }
    }

    /// Adds the turn's rows to those held; returns what is to be written
    /// now: everything once the oldest has waited `db_flush_ms`, or the
    /// held rows fill a batch or [`HOLD_MAX_BYTES`]. Otherwise nothing,
    /// and [`TraceSink::next_deadline`] brings a turn when the wait ends.
    fn hold(&mut self, rows: Vec<Row>, now: Instant) -> Vec<Row> {
        if !rows.is_empty() {
            self.held_bytes += rows.iter().map(|r| r.msg.len()).sum::<usize>();
            if self.held.is_empty() {
                self.held = rows;
                self.held_since = Some(now);
            } else {
                self.held.extend(rows);
            }
        }
        let due = self
            .held_since
            .is_some_and(|t| now >= t + self.settings.flush_delay);
        if due || self.held.len() >= self.settings.batch_rows || self.held_bytes >= HOLD_MAX_BYTES {
            self.take_held()
        } else {
            Vec::new()
        }
    }

    /// Writes (or spools) the rows held for `db_flush_ms` now: an MI or
    /// JSON-RPC command runs after it, so the counters it reports account
    /// for every message received before it.
    pub(crate) fn write_held(&mut self, now: Instant, wall: WallTime) {
        self.last_now = now;
        let rows = self.take_held();
        if self.target.is_some() && !rows.is_empty() {
            self.take_live(rows, now, wall);
            self.sync_bytes();
        }
    }

    fn take_held(&mut self) -> Vec<Row> {
        self.held_since = None;
        self.held_bytes = 0;
        std::mem::take(&mut self.held)
    }

    /// The turn's own rows.
    fn take_live(&mut self, rows: Vec<Row>, now: Instant, wall: WallTime) {
        let n = rows.len() as u64;
        let seqs: Option<Vec<u64>> = match self.spool.as_mut().map(|s| s.alloc_seqs(n)) {
            None => None,
            Some(Ok(first)) => {
                self.first_own_seq.get_or_insert(first);
                Some((first..first + n).collect())
            }
            Some(Err(e)) => {
                self.spool_error(&e, now);
                None
            }
        };
        if !(self.is_up() && self.pending() == 0) {
            self.spool_rows(&rows, seqs.as_deref(), now);
            return;
        }
        let batch = self.settings.batch_rows;
        let mut start = 0;
        while start < rows.len() {
            let end = (start + batch).min(rows.len());
            let chunk_seqs = seqs.as_deref().map_or(&[][..], |s| &s[start..end]);
            match self.write(&rows[start..end], chunk_seqs) {
                Ok(rep) => self.count(&rep, 0),
                Err(e) => {
                    self.go_down(&e, now, wall);
                    let rest = seqs.as_deref().map(|s| &s[start..]);
                    self.spool_rows(&rows[start..], rest, now);
                    return;
                }
            }
            start = end;
        }
    }

    fn spool_rows(&mut self, rows: &[Row], seqs: Option<&[u64]>, now: Instant) {
        let n = rows.len() as u64;
        let (Some(spool), Some(seqs)) = (self.spool.as_mut(), seqs) else {
            self.dropped(n, "no usable spool", now);
            return;
        };
        if self.stopped {
            self.dropped(
                n,
                "spool full (policy \"stop\"), waiting for it to drain",
                now,
            );
            return;
        }
        let items: Vec<(u64, &Row)> = seqs.iter().copied().zip(rows).collect();
        let before = spool.pending();
        match spool.append(&items, FitMode::from(self.settings.policy)) {
            Ok(a) => {
                self.counters.rows_spooled += a.written;
                if a.refused > 0 {
                    let cap = spool.bytes();
                    if self.settings.policy == SpoolFullPolicy::Stop {
                        self.stopped = true;
                        log::warn!(
                            "siptrace: spool full ({cap} bytes): policy \"stop\": no rows are \
                             kept until it has drained"
                        );
                    }
                    self.dropped(a.refused, "spool full (spool_max_mb)", now);
                }
            }
            Err(e) => {
                let written = spool.pending().saturating_sub(before);
                self.counters.rows_spooled += written;
                self.spool_error(&e, now);
                self.dropped(n - written.min(n), "spool write failed", now);
            }
        }
    }

    fn dropped(&mut self, n: u64, why: &str, now: Instant) {
        if n == 0 {
            return;
        }
        self.counters.rows_dropped += n;
        let due = self.drops.next_log.is_none_or(|t| now >= t);
        if due {
            log::warn!(
                "siptrace: {why}: dropped {} rows ({})",
                n + self.drops.unlogged,
                self.counters.summary()
            );
            self.drops.unlogged = 0;
            self.drops.next_log = Some(now + DROP_LOG_EVERY);
        } else {
            self.drops.unlogged += n;
        }
    }

    /// Report drops not yet reported, when due (or `now` at exit).
    fn log_drops(&mut self, now: Instant, force: bool) {
        if self.drops.unlogged == 0 {
            return;
        }
        if force || self.drops.next_log.is_none_or(|t| now >= t) {
            log::warn!(
                "siptrace: dropped {} more rows since the last report ({})",
                self.drops.unlogged,
                self.counters.summary()
            );
            self.drops.unlogged = 0;
            self.drops.next_log = Some(now + DROP_LOG_EVERY);
        }
    }

    fn spool_error(&mut self, e: &SpoolError, now: Instant) {
        let due = self
            .spool_error_logged
            .is_none_or(|t| now >= t + DROP_LOG_EVERY);
        if due {
            log::error!("siptrace: {e}");
            self.spool_error_logged = Some(now);
        }
    }

    fn sync_bytes(&mut self) {
        self.counters.spool_bytes = self.spool.as_ref().map_or(0, Spool::bytes);
    }
}

/// Rows for the next replay batch, from the last one: `rows` written in
/// `took`. Proportional to what fits in [`REPLAY_BUDGET`], at most doubling
/// per batch (one fast batch may be luck), between [`REPLAY_MIN_ROWS`] and
/// `db_batch_rows`. A short batch (the spool's tail) says nothing of the
/// rate unless it was slow.
fn next_replay_rows(current: usize, rows: usize, took: Duration, max: usize) -> usize {
    let max = max.max(REPLAY_MIN_ROWS);
    if rows == 0 {
        return current.clamp(REPLAY_MIN_ROWS, max);
    }
    let took_us = took.as_micros().max(1);
    let fit = (rows as u128 * REPLAY_BUDGET.as_micros() / took_us) as usize;
    let next = if rows < current && took <= REPLAY_BUDGET {
        current
    } else {
        fit.min(current.saturating_mul(2))
    };
    next.clamp(REPLAY_MIN_ROWS, max)
}

#[cfg(test)]
pub(crate) mod tests {
    //! The sink against an in-memory database that keeps the marker
    //! contract of `Backend::write_batch_marked`, and a real spool in a
    //! temp directory; time is moved by hand.
    use super::*;
    use crate::spool::SpoolOptions;
    use std::sync::{Arc, Mutex};

    #[test]
    fn replay_batches_follow_the_database_time_they_take() {
        let ms = Duration::from_millis;
        // Fast: grows, at most doubling, up to db_batch_rows.
        assert_eq!(next_replay_rows(64, 64, ms(1), 1000), 128);
        assert_eq!(next_replay_rows(800, 800, ms(1), 1000), 1000);
        // Slow: shrinks to what fits the budget (1000 rows in 15 ms: 200).
        assert_eq!(next_replay_rows(1000, 1000, ms(15), 1000), 200);
        // A database far slower still gets its minimum.
        assert_eq!(
            next_replay_rows(64, 64, Duration::from_secs(2), 1000),
            REPLAY_MIN_ROWS
        );
        // The spool's short tail, fast: keeps the size it had.
        assert_eq!(next_replay_rows(400, 10, ms(1), 1000), 400);
        // A short tail that was slow still shrinks it.
        assert_eq!(next_replay_rows(400, 10, ms(6), 1000), REPLAY_MIN_ROWS);
    }

    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    enum Mode {
        Up,
        /// Connection refused: nothing committed.
        Down,
        /// The next write commits but its answer is lost.
        LoseAnswer,
    }

    #[derive(Default)]
    pub(crate) struct State {
        pub(crate) table: Vec<String>,
        /// How long each marked write takes (a slow server).
        pub(crate) delay: Duration,
        marker: Option<u64>,
        mode: Option<Mode>,
        writes: usize,
        /// Behave like dbtext: no marker can be kept.
        no_marker: bool,
    }

    struct FakeDb(Arc<Mutex<State>>);

    fn refused() -> DbError {
        DbError::Connection {
            backend: "fake",
            target: "x".into(),
            detail: "refused".into(),
        }
    }

    impl Backend for FakeDb {
        fn write_batch(&mut self, rows: &[Row]) -> Result<WriteReport, DbError> {
            let mut s = self.0.lock().unwrap();
            if s.mode == Some(Mode::Down) {
                return Err(refused());
            }
            s.table.extend(rows.iter().map(|r| r.callid.to_string()));
            Ok(WriteReport {
                written: rows.len() as u64,
                ..WriteReport::default()
            })
        }
        fn open_marker(&mut self, _id: &str) -> Result<MarkerOpen, DbError> {
            let mut s = self.0.lock().unwrap();
            if s.no_marker {
                return Ok(MarkerOpen::NoTransactions("fake".into()));
            }
            if s.mode == Some(Mode::Down) {
                return Err(refused());
            }
            Ok(MarkerOpen::Ready(*s.marker.get_or_insert(0)))
        }
        fn write_batch_marked(
            &mut self,
            rows: &[Row],
            seqs: &[u64],
            m: &mut Marker,
        ) -> Result<WriteReport, DbError> {
            let delay = self.0.lock().unwrap().delay;
            std::thread::sleep(delay);
            let mut s = self.0.lock().unwrap();
            s.writes += 1;
            if s.mode == Some(Mode::Down) {
                return Err(refused());
            }
            let found = s.marker.unwrap_or(0);
            m.last = m.last.max(found);
            let skip = seqs.partition_point(|&q| q <= m.last);
            s.table
                .extend(rows[skip..].iter().map(|r| r.callid.to_string()));
            if let Some(&last) = seqs[skip..].last() {
                s.marker = Some(last);
                m.last = last;
            }
            if s.mode == Some(Mode::LoseAnswer) {
                s.mode = Some(Mode::Down);
                return Err(refused());
            }
            Ok(WriteReport {
                written: (rows.len() - skip) as u64,
                already: skip as u64,
                ..WriteReport::default()
            })
        }
        fn purge_batch(&mut self, _: &db::PurgeRule, _: u32) -> Result<u64, DbError> {
            Ok(0)
        }

        fn row_cap_threshold(&mut self, _: u64) -> Result<Option<i64>, DbError> {
            Ok(None)
        }

        fn describe(&self) -> String {
            "fake".into()
        }
    }

    struct Dir(std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    pub(crate) fn row(n: usize) -> Row {
        Row {
            table: None,
            msg: b"OPTIONS sip:x SIP/2.0\r\n\r\n".to_vec().into(),
            callid: format!("c{n}").into(),
            method: "OPTIONS".into(),
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

    pub(crate) fn rows(r: std::ops::Range<usize>) -> Vec<Row> {
        r.map(row).collect()
    }

    pub(crate) fn names(r: std::ops::Range<usize>) -> Vec<String> {
        r.map(|n| format!("c{n}")).collect()
    }

    pub(crate) struct Rig {
        pub(crate) sink: TraceSink,
        pub(crate) db: Arc<Mutex<State>>,
        now: Instant,
        ms: u64,
        _dir: Dir,
    }

    impl Rig {
        fn new(tag: &str, batch_rows: usize, max_bytes: u64, policy: SpoolFullPolicy) -> Rig {
            Self::with_delay(tag, batch_rows, max_bytes, policy, Duration::ZERO)
        }
        pub(crate) fn with_delay(
            tag: &str,
            batch_rows: usize,
            max_bytes: u64,
            policy: SpoolFullPolicy,
            flush_delay: Duration,
        ) -> Rig {
            let dir = std::env::temp_dir().join(format!("st-sink-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            let (spool, _) = Spool::open(&SpoolOptions {
                dir: dir.clone(),
                max_bytes,
                fsync: false,
                owner: (None, None),
            })
            .unwrap();
            let db = Arc::new(Mutex::new(State::default()));
            let now = Instant::now();
            let sink = TraceSink::new(
                DbTarget {
                    url: "sqlite:///nonexistent/x.db".into(),
                    table: "sip_trace".into(),
                    opts: db::OpenOptions::default(),
                },
                Some(Box::new(FakeDb(db.clone()))),
                Some(spool),
                SinkSettings {
                    batch_rows,
                    policy,
                    flush_delay,
                },
                now,
                WallTime::default(),
            );
            Rig {
                sink,
                db,
                now,
                ms: 0,
                _dir: Dir(dir),
            }
        }
        fn mode(&self, m: Mode) {
            self.db.lock().unwrap().mode = Some(m);
        }
        /// One turn `ms` after the previous one (the wall clock moves too).
        fn turn(&mut self, ms: u64, rows: Vec<Row>) {
            self.now += Duration::from_millis(ms);
            self.ms += ms;
            let wall = WallTime {
                sec: 1_700_000_000 + (self.ms / 1000) as i64,
                usec: 0,
            };
            self.sink.flush(rows, self.now, wall);
        }
        pub(crate) fn table(&self) -> Vec<String> {
            self.db.lock().unwrap().table.clone()
        }
    }

    #[test]
    fn rows_of_close_turns_share_one_transaction() {
        let ms5 = Duration::from_millis(5);
        let mut r = Rig::with_delay("hold", 10, 1 << 20, SpoolFullPolicy::Drop, ms5);
        r.turn(1, rows(0..2));
        // Held: nothing written, a turn asked for when the wait ends.
        assert!(r.table().is_empty());
        assert_eq!(r.sink.next_deadline(), Some(r.now + ms5));
        r.turn(2, rows(2..4));
        r.turn(2, Vec::new());
        assert!(r.table().is_empty());
        assert_eq!(r.db.lock().unwrap().writes, 0);
        // The first rows have waited 5 ms: all four go in one write.
        r.turn(1, Vec::new());
        assert_eq!(r.table(), names(0..4));
        assert_eq!(r.db.lock().unwrap().writes, 1);
        assert_eq!(r.sink.next_deadline(), None);
        // A full batch does not wait.
        r.turn(1, rows(4..14));
        assert_eq!(r.table(), names(0..14));
        // Held rows are not lost at exit.
        r.turn(1, rows(14..15));
        let (now, wall) = (r.now, WallTime::default());
        r.sink.finish(rows(15..16), now, wall);
        assert_eq!(r.table(), names(0..16));
        // While the database is down, they are held for the spool the same
        // way, and replayed in order once it is back.
        r.mode(Mode::Down);
        r.turn(1, rows(16..17));
        r.turn(5, rows(17..18));
        r.mode(Mode::Up);
        for _ in 0..4 {
            r.turn(2000, Vec::new());
        }
        assert_eq!(r.table(), names(0..18));
    }

    #[test]
    fn an_outage_loses_nothing_and_keeps_the_order() {
        let mut r = Rig::new("order", 4, 1 << 20, SpoolFullPolicy::Drop);
        r.turn(1, rows(0..3));
        assert_eq!(r.table(), names(0..3));
        r.mode(Mode::Down);
        r.turn(1, rows(3..6));
        assert!(r.sink.counters().down_since.is_some());
        // Not due yet: spooled without a try.
        let writes = r.db.lock().unwrap().writes;
        r.turn(100, rows(6..10));
        assert_eq!(r.db.lock().unwrap().writes, writes);
        assert_eq!(r.sink.pending(), 7);
        assert!(r.sink.next_deadline().unwrap() > r.now);
        // Due, still down: the wait doubles.
        r.turn(500, rows(10..11));
        r.mode(Mode::Up);
        r.turn(10, rows(11..12));
        assert_eq!(r.table(), names(0..3), "not due yet");
        r.turn(1000, rows(12..13));
        // Back: one batch of 4 per turn, oldest first, new rows behind.
        assert_eq!(r.table(), names(0..7));
        assert_eq!(
            r.sink.next_deadline(),
            Some(r.now),
            "more replay: immediately"
        );
        for _ in 0..3 {
            r.turn(1, Vec::new());
        }
        assert_eq!(r.table(), names(0..13));
        assert_eq!(r.sink.pending(), 0);
        assert_eq!(r.sink.next_deadline(), None);
        r.turn(1, rows(13..15));
        assert_eq!(r.table(), names(0..15));
        let c = r.sink.counters();
        assert_eq!(
            (
                c.rows_written,
                c.rows_spooled,
                c.rows_replayed,
                c.rows_dropped,
                c.spool_bytes
            ),
            (15, 10, 10, 0, 0)
        );
        assert_eq!(c.down_since, None);
    }

    #[test]
    fn a_commit_whose_answer_was_lost_is_not_written_twice() {
        let mut r = Rig::new("lost", 100, 1 << 20, SpoolFullPolicy::Drop);
        r.turn(1, rows(0..2));
        r.mode(Mode::LoseAnswer);
        r.turn(1, rows(2..5));
        // Committed, but we could not know: spooled.
        assert_eq!(r.table(), names(0..5));
        assert_eq!(r.sink.pending(), 3);
        r.turn(1, rows(5..6));
        r.mode(Mode::Up);
        r.turn(600, Vec::new());
        assert_eq!(r.table(), names(0..6));
        let c = r.sink.counters();
        // Written counts what the table holds, whichever commit stored it.
        assert_eq!((c.rows_written, c.rows_spooled, c.rows_replayed), (6, 4, 4));
    }

    #[test]
    fn without_a_marker_the_database_is_back_only_when_a_batch_goes_in() {
        let mut r = Rig::new("nomarker", 100, 1 << 20, SpoolFullPolicy::Drop);
        r.db.lock().unwrap().no_marker = true;
        r.turn(1, rows(0..2));
        r.mode(Mode::Down);
        r.turn(1, rows(2..4));
        let since = r.sink.counters().down_since;
        assert!(since.is_some());
        // A try that cannot read a marker probes with a batch: still down.
        for _ in 0..3 {
            r.turn(2000, Vec::new());
            assert_eq!(r.sink.counters().down_since, since);
        }
        r.mode(Mode::Up);
        r.turn(2000, rows(4..5));
        assert_eq!(r.sink.counters().down_since, None);
        assert_eq!(r.table(), names(0..5));
    }

    #[test]
    fn a_full_spool_drops_newest_rows_and_counts_each() {
        // Each row is ~120 bytes: a 1 MiB cap takes several thousand.
        let mut r = Rig::new("cap", 1000, 1 << 20, SpoolFullPolicy::Drop);
        r.mode(Mode::Down);
        r.turn(1, rows(0..20_000));
        let c = r.sink.counters().clone();
        assert!(c.rows_dropped > 0 && c.rows_spooled > 0);
        assert_eq!(c.rows_spooled + c.rows_dropped, 20_000);
        assert!(c.spool_bytes <= 1 << 20);
        r.mode(Mode::Up);
        r.turn(600, Vec::new());
        while r.sink.pending() > 0 {
            r.turn(1, Vec::new());
        }
        // The oldest rows are kept, in order; the newest were dropped.
        let got = r.table();
        assert!(
            got == names(0..c.rows_spooled as usize),
            "{} rows",
            got.len()
        );
    }

    #[test]
    fn policy_stop_refuses_rows_until_the_spool_has_drained() {
        let mut r = Rig::new("stop", 1000, 1 << 20, SpoolFullPolicy::Stop);
        r.mode(Mode::Down);
        r.turn(1, rows(0..20_000));
        let kept = r.sink.counters().rows_spooled as usize;
        // Even a row that would fit now is refused: one gap, not a sieve.
        r.turn(1, rows(20_000..20_001));
        assert_eq!(r.sink.counters().rows_dropped, 20_001 - kept as u64);
        r.mode(Mode::Up);
        r.turn(600, Vec::new());
        while r.sink.pending() > 0 {
            r.turn(1, rows(30_000..30_001));
        }
        r.turn(1, rows(40_000..40_001));
        // Refused while draining, except in the turn that drained it.
        let mut want = names(0..kept);
        want.extend(["c30000".to_string(), "c40000".to_string()]);
        let got = r.table();
        assert!(got == want, "{} rows, last {:?}", got.len(), got.last());
    }
}
