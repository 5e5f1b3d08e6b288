//! Retention in the reactor's turn: deletes old rows (and rows beyond the
//! row cap) from the default trace table a few milliseconds at a time, so
//! that a table of millions of rows shrinks without stalling SIP
//! (docs/decisions.md §14, ARCHITECTURE.md "Spool").
//!
//! A pass is a list of steps computed when it starts: on a table partitioned
//! by day, drop the day partitions older than `retention` and create today's
//! and tomorrow's; then rows older than `retention`; then each
//! `retention_method`'s rows; then rows beyond `retention_rows` (its id
//! threshold is looked up when that step is reached). Each tick runs
//! batches, oldest first, until a step is done or the tick's time budget is
//! spent; the batch size adapts so that one statement stays near
//! [`BATCH_TARGET`]. While a pass has work, ticks come every
//! [`BUSY_EVERY`]; after it, the next pass starts `retention_interval` later.
//!
//! Unlike the rest of the sink, this reads the clock (`Instant::now`): the
//! budget is about how long the database takes, which only measuring tells.
//! Depends on the db module's `Backend` and retention types, and on the
//! clock module for local dates.

use std::time::{Duration, Instant};

use crate::clock::{WallTime, local_datetime};
use crate::db::retention::{Cutoff, PurgeRule, RetentionPolicy};
use crate::db::{Backend, DbError};

/// Rows per DELETE at most. A fast server (or a small table in cache)
/// reaches it; SQLite with a million rows does not: each row deleted
/// touches a random page of the callid index, ~25–90 µs a row
/// (examples/purge_bench.rs), so there the batch settles near 100.
pub(crate) const BATCH_MAX: u32 = 1000;
/// Rows per DELETE at least: below this, per-statement overhead dominates.
const BATCH_MIN: u32 = 50;
/// The first batch of a daemon: small, so that a cold cache never makes
/// the first statement a long one; it grows while statements stay fast.
const BATCH_FIRST: u32 = 100;
/// What one DELETE should cost; the batch size halves above it and
/// doubles below half of it.
const BATCH_TARGET: Duration = Duration::from_millis(4);
/// A tick stops starting batches once it has spent this long.
const TICK_BUDGET: Duration = Duration::from_millis(5);
/// Ticks while a pass has work: with [`TICK_BUDGET`], the purge takes at
/// most ~5% of the reactor's time, and still ~10k rows/s on SQLite.
pub(crate) const BUSY_EVERY: Duration = Duration::from_millis(100);

/// One step of a pass.
#[derive(Debug, Clone)]
enum Step {
    Rows(PurgeRule),
    /// `retention_rows`: threshold looked up when the step is reached.
    RowCap(u64),
}

struct Pass {
    steps: Vec<Step>,
    deleted: u64,
    /// Of `deleted`, what earlier ticks reported already.
    reported: u64,
    /// Time spent in the database by this pass (all its ticks).
    spent: Duration,
    partitions: Vec<String>,
}

/// What a finished pass did, for the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PassDone {
    pub rows: u64,
    pub ms: u64,
}

/// What one tick did: rows deleted in it (counted at once, so that
/// `rows_purged` follows a long pass), and the pass when it ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TickDone {
    pub rows: u64,
    pub pass: Option<PassDone>,
}

pub(crate) struct Purger {
    policy: RetentionPolicy,
    next_tick: Instant,
    pass: Option<Pass>,
    batch: u32,
    /// Failures other than connection ones are logged once per pass.
    failed_pass_logged: bool,
    /// Rows deleted by a pass that then failed, not yet counted.
    unreported: u64,
}

/// The local date `YYYY-MM-DD` of Unix second `sec`.
fn local_day(sec: i64) -> String {
    local_datetime(sec).chars().take(10).collect()
}

fn before(wall: WallTime, age: Duration) -> Cutoff {
    let sec = wall.sec - i64::try_from(age.as_secs()).unwrap_or(i64::MAX / 2);
    Cutoff {
        sec,
        local: local_datetime(sec),
    }
}

impl Purger {
    /// The first pass starts at once (after the start-up replay, if any).
    pub(crate) fn new(policy: RetentionPolicy, now: Instant) -> Purger {
        Purger {
            policy,
            next_tick: now,
            pass: None,
            batch: BATCH_FIRST,
            failed_pass_logged: false,
            unreported: 0,
        }
    }

    pub(crate) fn next_tick(&self) -> Instant {
        self.next_tick
    }

    pub(crate) fn due(&self, now: Instant) -> bool {
        now >= self.next_tick
    }

    fn start(&mut self, db: &mut dyn Backend, wall: WallTime) -> Result<Pass, DbError> {
        let t0 = Instant::now();
        let p = &self.policy;
        let keep_from = p.max_age.map(|a| local_day(before(wall, a).sec));
        let ahead: Vec<String> = (0..3).map(|d| local_day(wall.sec + d * 86_400)).collect();
        let parts = db.maintain_partitions(keep_from.as_deref(), &ahead)?;
        if !parts.created.is_empty() {
            log::info!(
                "siptrace retention: created day partitions {}",
                parts.created.join(", ")
            );
        }
        let mut steps = Vec::new();
        if let Some(a) = p.max_age {
            steps.push(Step::Rows(PurgeRule::Older {
                before: before(wall, a),
                method: None,
            }));
        }
        for m in &p.methods {
            steps.push(Step::Rows(PurgeRule::Older {
                before: before(wall, m.max_age),
                method: Some(m.method.clone()),
            }));
        }
        if let Some(n) = p.max_rows {
            steps.push(Step::RowCap(n));
        }
        // Oldest rows first: the pass walks the steps from the front.
        steps.reverse();
        Ok(Pass {
            steps,
            deleted: parts.dropped_rows,
            reported: 0,
            spent: t0.elapsed(),
            partitions: parts.dropped,
        })
    }

    /// One tick: batches until the budget is spent or the pass is done
    /// (`budget` None: until done, for `sip_trace_purge`). `Ok(Some)` when
    /// a pass ended in this tick.
    pub(crate) fn tick(
        &mut self,
        db: &mut dyn Backend,
        now: Instant,
        wall: WallTime,
        budget: Option<Duration>,
    ) -> Result<TickDone, DbError> {
        let mut r = self.run(db, wall, budget);
        if let Ok(t) = r.as_mut() {
            t.rows += std::mem::take(&mut self.unreported);
        }
        match &r {
            Ok(TickDone { pass: Some(_), .. }) => self.next_tick = now + self.policy.interval,
            Ok(_) => self.next_tick = now + BUSY_EVERY,
            Err(e) => {
                self.pass = None;
                self.next_tick = now + self.policy.interval;
                let busy = matches!(e, DbError::Busy { .. });
                if (busy || !e.is_connection()) && !self.failed_pass_logged {
                    self.failed_pass_logged = true;
                    log::warn!(
                        "siptrace retention: purge failed: {e}; trying again in {} s",
                        self.policy.interval.as_secs()
                    );
                }
            }
        }
        r
    }

    fn run(
        &mut self,
        db: &mut dyn Backend,
        wall: WallTime,
        budget: Option<Duration>,
    ) -> Result<TickDone, DbError> {
        let tick_start = Instant::now();
        let mut pass = match self.pass.take() {
            Some(p) => p,
            None => self.start(db, wall)?,
        };
        while let Some(step) = pass.steps.last().cloned() {
            if budget.is_some_and(|b| tick_start.elapsed() >= b) {
                let rows = pass.deleted - pass.reported;
                pass.reported = pass.deleted;
                self.pass = Some(pass);
                return Ok(TickDone { rows, pass: None });
            }
            let t0 = Instant::now();
            let rule = match step {
                Step::Rows(rule) => rule,
                Step::RowCap(keep) => match db.row_cap_threshold(keep) {
                    Ok(Some(id)) => {
                        pass.steps.pop();
                        pass.steps.push(Step::Rows(PurgeRule::IdBelow(id)));
                        pass.spent += t0.elapsed();
                        continue;
                    }
                    Ok(None) => {
                        pass.steps.pop();
                        pass.spent += t0.elapsed();
                        continue;
                    }
                    Err(e) => return Err(self.keep_count(pass, e)),
                },
            };
            let limit = self.batch;
            let n = match db.purge_batch(&rule, limit) {
                Ok(n) => n,
                Err(e) => return Err(self.keep_count(pass, e)),
            };
            let took = t0.elapsed();
            pass.spent += took;
            pass.deleted += n;
            self.adapt(took);
            if n < u64::from(limit) {
                pass.steps.pop();
            }
        }
        self.failed_pass_logged = false;
        let done = PassDone {
            rows: pass.deleted,
            ms: u64::try_from(pass.spent.as_millis()).unwrap_or(u64::MAX),
        };
        if done.rows == 0 {
            log::debug!("siptrace retention: pass done, nothing to purge");
        } else {
            log::info!(
                "siptrace retention: pass done: purged {} rows{} in {} ms of database time",
                done.rows,
                if pass.partitions.is_empty() {
                    String::new()
                } else {
                    format!(
                        " (day partitions dropped: {}; their rows as estimated)",
                        pass.partitions.join(", ")
                    )
                },
                done.ms
            );
        }
        Ok(TickDone {
            rows: pass.deleted - pass.reported,
            pass: Some(done),
        })
    }

    /// A pass cut short by an error: what it deleted is still counted at
    /// the next pass's first tick.
    fn keep_count(&mut self, pass: Pass, e: DbError) -> DbError {
        self.unreported += pass.deleted - pass.reported;
        e
    }

    fn adapt(&mut self, took: Duration) {
        if took > BATCH_TARGET {
            self.batch = (self.batch / 2).max(BATCH_MIN);
        } else if took < BATCH_TARGET / 2 {
            self.batch = self.batch.saturating_mul(2).min(BATCH_MAX);
        }
    }

    /// `sip_trace_purge`: a whole new pass now, in bounded batches.
    pub(crate) fn full_pass(
        &mut self,
        db: &mut dyn Backend,
        now: Instant,
        wall: WallTime,
    ) -> Result<TickDone, DbError> {
        if let Some(p) = self.pass.take() {
            self.unreported += p.deleted - p.reported;
        }
        self.tick(db, now, wall, None)
    }

    /// The per-tick budget of the reactor's timer.
    pub(crate) fn tick_budget() -> Duration {
        TICK_BUDGET
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::retention::MethodAge;
    use crate::db::{Marker, MarkerOpen, Row, WriteReport};

    /// A table of `old` rows older than `retention`, `options` old OPTIONS
    /// rows, and `total` rows in all; records each statement's rule.
    struct Fake {
        old: u64,
        options: u64,
        total: u64,
        calls: Vec<String>,
    }

    impl Backend for Fake {
        fn write_batch(&mut self, _: &[Row]) -> Result<WriteReport, DbError> {
            unreachable!()
        }
        fn open_marker(&mut self, _: &str) -> Result<MarkerOpen, DbError> {
            unreachable!()
        }
        fn write_batch_marked(
            &mut self,
            _: &[Row],
            _: &[u64],
            _: &mut Marker,
        ) -> Result<WriteReport, DbError> {
            unreachable!()
        }
        fn describe(&self) -> String {
            "fake".into()
        }
        fn purge_batch(&mut self, rule: &PurgeRule, limit: u32) -> Result<u64, DbError> {
            let (label, pool) = match rule {
                PurgeRule::Older { method: None, .. } => ("age", &mut self.old),
                PurgeRule::Older {
                    method: Some(_), ..
                } => ("method", &mut self.options),
                PurgeRule::IdBelow(_) => ("cap", &mut self.total),
            };
            let n = (*pool).min(u64::from(limit));
            *pool -= n;
            self.total -= if label == "cap" { 0 } else { n };
            self.calls.push(format!("{label}:{n}"));
            Ok(n)
        }
        fn row_cap_threshold(&mut self, keep: u64) -> Result<Option<i64>, DbError> {
            self.calls.push("threshold".into());
            // Rows beyond the cap become the cap step's pool.
            Ok((self.total > keep).then(|| {
                self.total -= keep;
                1
            }))
        }
    }

    fn policy() -> RetentionPolicy {
        RetentionPolicy {
            max_age: Some(Duration::from_secs(86_400)),
            max_rows: Some(100),
            methods: vec![MethodAge {
                method: "OPTIONS".into(),
                max_age: Duration::from_secs(3600),
            }],
            interval: Duration::from_secs(60),
        }
    }

    #[test]
    fn a_full_pass_runs_every_step_in_bounded_batches() {
        let mut db = Fake {
            old: 2500,
            options: 10,
            total: 2500 + 10 + 150,
            calls: Vec::new(),
        };
        let now = Instant::now();
        let mut p = Purger::new(policy(), now);
        let t = p.full_pass(&mut db, now, WallTime::now()).unwrap();
        // Age first, oldest batches of at most BATCH_MAX rows; the threshold
        // only once the age and method steps are done; 50 rows over the cap.
        assert_eq!(t.pass.unwrap().rows, 2500 + 10 + 50);
        assert_eq!(t.rows, 2560);
        assert!(db.calls.iter().all(|c| {
            c.split(':')
                .nth(1)
                .is_none_or(|n| n.parse::<u32>().unwrap() <= BATCH_MAX)
        }));
        let first_method = db
            .calls
            .iter()
            .position(|c| c.starts_with("method"))
            .unwrap();
        let threshold = db.calls.iter().position(|c| c == "threshold").unwrap();
        assert!(
            db.calls[..first_method]
                .iter()
                .all(|c| c.starts_with("age"))
        );
        assert!(first_method < threshold);
        assert_eq!(p.next_tick(), now + Duration::from_secs(60));
    }

    #[test]
    fn a_spent_budget_leaves_the_rest_for_the_next_tick() {
        let mut db = Fake {
            old: 5000,
            options: 0,
            total: 5000,
            calls: Vec::new(),
        };
        let now = Instant::now();
        let mut p = Purger::new(policy(), now);
        // A zero budget still lets one tick start: the pass begins and
        // yields before its first batch.
        let t = p
            .tick(&mut db, now, WallTime::now(), Some(Duration::ZERO))
            .unwrap();
        assert_eq!((t.rows, t.pass), (0, None));
        assert_eq!(p.next_tick(), now + BUSY_EVERY);
        let mut rows = 0;
        for i in 1..100u32 {
            let t = p
                .tick(&mut db, now, WallTime::now(), Some(TICK_BUDGET))
                .unwrap();
            rows += t.rows;
            if t.pass.is_some() {
                assert!(i >= 1);
                break;
            }
        }
        assert_eq!(rows, 5000);
    }
}
