//! The trace writer thread: the one place trace rows wait on a database.
//!
//! The reactor hands each turn's rows to [`TraceWriter::flush`], which queues
//! them and returns at once; a thread of its own (`trace-writer`) owns the
//! [`TraceSink`] and does what the reactor used to do in its turn: hold rows
//! for `db_flush_ms`, write them in one transaction, spool them while the
//! database is down, replay, reconnect on the backoff timer, run the
//! retention purge (docs/decisions.md §21). A commit that waits on the
//! server's log flush, a purge batch or a reconnect therefore never delays
//! a SIP message; the SQLite inserts run on the second core.
//!
//! Order is kept: one queue, one consumer, and the sink's own order (live
//! rows behind spooled ones). Memory is bounded: rows queued and not yet
//! taken by the thread are counted in bytes ([`QUEUE_MAX_BYTES`]); past it
//! the reactor waits for the thread to catch up, which is the back-pressure
//! the synchronous write gave before, and each such wait is counted
//! (`queue_waits` in the counters). Commands that must see every row
//! handed in before them (MI and JSON-RPC) ask for a sync ticket and run
//! once the thread has written its held rows and published the counters:
//! the thread wakes the reactor then (a `wake` callback, the reactor's mio
//! Waker), so the reactor never waits on it for a command. `sip_trace_purge`
//! and exit are jobs on the thread.
//!
//! Depends on the sink, db rows and the clock (this is an edge: the thread
//! reads `Instant::now` and the wall clock for the sink, as the reactor
//! does). The sink itself stays the plain, unit-tested state machine.

use super::sink::{DbCounters, TraceSink};
use crate::clock::WallTime;
use crate::db::Row;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Rows handed in and not yet taken by the thread, in bytes (messages plus
/// the row itself). 8 MiB is ~0.25 s of a 2000 calls/s traced load: more
/// than a commit takes, small beside the transaction table.
pub const QUEUE_MAX_BYTES: usize = 8 << 20;

/// At exit, how long replay may go on while the database is up: rows left
/// after it stay in the spool for the next start.
const EXIT_DRAIN: Duration = Duration::from_secs(5);

enum Job {
    Rows(Vec<Row>, usize),
    /// Write the held rows, publish the ticket as synced, wake the reactor
    /// (and answer, for a caller that waits).
    Sync(u64, Option<mpsc::SyncSender<()>>),
    Purge(mpsc::SyncSender<Result<u64, String>>),
    /// The last rows; then drain, close and end the thread.
    Finish(Vec<Row>),
}

/// What the thread publishes after each step.
struct Published {
    counters: DbCounters,
    /// The last sync ticket done.
    synced: u64,
}

struct Shared {
    published: Mutex<Published>,
    queued: AtomicUsize,
}

/// The reactor's handle on the writer thread.
pub struct TraceWriter {
    /// None when database tracing is off: rows are discarded here.
    tx: Option<Sender<Job>>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    spool_dir: Option<PathBuf>,
    queue_waits: u64,
    /// The last sync ticket given out, and whether rows were handed in
    /// since (if not, that ticket still covers every row).
    ticket: u64,
    rows_since_ticket: bool,
}

/// Called by the writer thread after a sync: the reactor's Waker.
pub type Wake = Box<dyn Fn() + Send>;

fn row_bytes(rows: &[Row]) -> usize {
    rows.iter()
        .map(|r| r.msg.len() + std::mem::size_of::<Row>())
        .sum()
}

impl TraceWriter {
    /// Starts the thread with `sink` (none when the sink has no database);
    /// `wake` tells the reactor that a sync ticket is done.
    pub fn spawn(sink: TraceSink, wake: Wake) -> std::io::Result<TraceWriter> {
        let shared = Arc::new(Shared {
            published: Mutex::new(Published {
                counters: sink.counters().clone(),
                synced: 0,
            }),
            queued: AtomicUsize::new(0),
        });
        let spool_dir = sink.spool_dir().map(Path::to_path_buf);
        if !sink.is_enabled() {
            return Ok(TraceWriter {
                tx: None,
                shared,
                thread: None,
                spool_dir,
                queue_waits: 0,
                ticket: 0,
                rows_since_ticket: false,
            });
        }
        let (tx, rx) = mpsc::channel();
        let sh = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("trace-writer".into())
            .spawn(move || run(sink, rx, &sh, &wake))?;
        Ok(TraceWriter {
            tx: Some(tx),
            shared,
            thread: Some(thread),
            spool_dir,
            queue_waits: 0,
            ticket: 0,
            rows_since_ticket: false,
        })
    }

    /// Queues the turn's rows. Waits only when [`QUEUE_MAX_BYTES`] are
    /// queued already.
    pub fn flush(&mut self, rows: Vec<Row>) {
        let Some(tx) = &self.tx else { return };
        if rows.is_empty() {
            return;
        }
        self.rows_since_ticket = true;
        let bytes = row_bytes(&rows);
        let queued = self.shared.queued.fetch_add(bytes, Ordering::AcqRel) + bytes;
        if tx.send(Job::Rows(rows, bytes)).is_err() {
            self.thread_gone();
            return;
        }
        if queued > QUEUE_MAX_BYTES {
            self.queue_waits += 1;
            if self.queue_waits.is_power_of_two() {
                log::warn!(
                    "siptrace: {queued} bytes of rows wait for the database writer (bound \
                     {QUEUE_MAX_BYTES}); SIP waits for it ({} time(s) so far)",
                    self.queue_waits
                );
            }
            self.sync();
        }
    }

    /// Waits until every row handed in is written or spooled (held rows
    /// too), so that the counters account for them.
    pub fn sync(&mut self) {
        let Some(tx) = &self.tx else { return };
        self.ticket += 1;
        self.rows_since_ticket = false;
        let (ack_tx, ack_rx) = mpsc::sync_channel(1);
        if tx.send(Job::Sync(self.ticket, Some(ack_tx))).is_err() || ack_rx.recv().is_err() {
            self.thread_gone();
        }
    }

    /// Asks for every row handed in so far to be written or spooled,
    /// without waiting: [`TraceWriter::synced`] says when it is done, and
    /// the thread calls `wake` then.
    pub fn request_sync(&mut self) -> u64 {
        let Some(tx) = &self.tx else { return 0 };
        if !self.rows_since_ticket && self.ticket > 0 {
            return self.ticket;
        }
        self.ticket += 1;
        self.rows_since_ticket = false;
        if tx.send(Job::Sync(self.ticket, None)).is_err() {
            self.thread_gone();
        }
        self.ticket
    }

    /// Whether the sync `ticket` asked for is done (or can never be: with
    /// the thread gone, a command must not wait for ever).
    pub fn synced(&self, ticket: u64) -> bool {
        if self.tx.is_none() || self.thread.as_ref().is_none_or(JoinHandle::is_finished) {
            return true;
        }
        let done = match self.shared.published.lock() {
            Ok(p) => p.synced,
            Err(p) => p.into_inner().synced,
        };
        done >= ticket
    }

    /// `sip_trace_purge`: one whole retention pass, on the thread.
    pub fn purge_now(&mut self) -> Result<u64, String> {
        let Some(tx) = &self.tx else {
            return Err("database tracing is off (trace_to_database=0)".to_string());
        };
        let (ack_tx, ack_rx) = mpsc::sync_channel(1);
        if tx.send(Job::Purge(ack_tx)).is_ok()
            && let Ok(r) = ack_rx.recv()
        {
            return r;
        }
        self.thread_gone();
        Err("the database writer thread is gone (see the log)".to_string())
    }

    /// The counters as the thread last published them, with the reactor's
    /// own count of waits on the queue.
    pub fn counters(&self) -> DbCounters {
        let mut c = match self.shared.published.lock() {
            Ok(p) => p.counters.clone(),
            Err(p) => p.into_inner().counters.clone(),
        };
        c.queue_waits = self.queue_waits;
        c
    }

    pub fn spool_dir(&self) -> Option<&Path> {
        self.spool_dir.as_deref()
    }

    /// At exit: the last rows, replay for at most [`EXIT_DRAIN`], the final
    /// log line; returns when the thread has ended.
    pub fn finish(&mut self, rows: Vec<Row>) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Job::Finish(rows));
        }
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            log::error!(
                "siptrace: the database writer thread panicked; rows not yet written are lost"
            );
        }
    }

    fn thread_gone(&mut self) {
        if self.tx.take().is_some() {
            log::error!(
                "siptrace: the database writer thread stopped; trace rows are discarded from now on"
            );
        }
    }
}

impl Drop for TraceWriter {
    fn drop(&mut self) {
        self.finish(Vec::new());
    }
}

fn publish(sink: &TraceSink, shared: &Shared, synced: Option<u64>) {
    let mut p = match shared.published.lock() {
        Ok(p) => p,
        Err(p) => p.into_inner(),
    };
    p.counters.clone_from(sink.counters());
    if let Some(t) = synced {
        p.synced = p.synced.max(t);
    }
}

fn run(mut sink: TraceSink, rx: Receiver<Job>, shared: &Shared, wake: &Wake) {
    let mut next: Option<Job> = None;
    loop {
        let job = match next.take() {
            Some(j) => Ok(j),
            None => match sink.next_deadline() {
                Some(d) => rx.recv_timeout(d.saturating_duration_since(Instant::now())),
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            },
        };
        match job {
            Ok(Job::Rows(mut rows, mut bytes)) => {
                // Everything queued meanwhile goes in the same step: one
                // transaction for all of it.
                while let Ok(j) = rx.try_recv() {
                    match j {
                        Job::Rows(r, b) => {
                            rows.extend(r);
                            bytes += b;
                        }
                        other => {
                            next = Some(other);
                            break;
                        }
                    }
                }
                sink.flush(rows, Instant::now(), WallTime::now());
                shared.queued.fetch_sub(bytes, Ordering::AcqRel);
            }
            Ok(Job::Sync(ticket, ack)) => {
                sink.write_held(Instant::now(), WallTime::now());
                publish(&sink, shared, Some(ticket));
                match ack {
                    Some(ack) => {
                        let _ = ack.send(());
                    }
                    None => wake(),
                }
                continue;
            }
            Ok(Job::Purge(ack)) => {
                let r = sink.purge_now(Instant::now(), WallTime::now());
                publish(&sink, shared, None);
                let _ = ack.send(r);
                continue;
            }
            Ok(Job::Finish(rows)) => {
                finish(&mut sink, rows);
                publish(&sink, shared, None);
                return;
            }
            Err(RecvTimeoutError::Timeout) => {
                sink.flush(Vec::new(), Instant::now(), WallTime::now())
            }
            Err(RecvTimeoutError::Disconnected) => {
                finish(&mut sink, Vec::new());
                publish(&sink, shared, None);
                return;
            }
        }
        publish(&sink, shared, None);
    }
}

fn finish(sink: &mut TraceSink, rows: Vec<Row>) {
    let now = Instant::now();
    sink.finish(rows, now, WallTime::now());
    let deadline = now + EXIT_DRAIN;
    loop {
        let now = Instant::now();
        if now >= deadline || !sink.drain_step(now, WallTime::now()) {
            break;
        }
    }
    sink.close(Instant::now());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SpoolFullPolicy;
    use crate::spool::sink::tests::{Rig, names, row, rows};

    /// The sink of a rig on the thread; the rig keeps the fake database and
    /// the spool directory.
    fn writer(tag: &str, flush_delay: Duration) -> (TraceWriter, Rig) {
        let mut rig = Rig::with_delay(tag, 1000, 64 << 20, SpoolFullPolicy::Drop, flush_delay);
        let sink = std::mem::replace(&mut rig.sink, TraceSink::disabled(Instant::now()));
        (TraceWriter::spawn(sink, Box::new(|| {})).unwrap(), rig)
    }

    #[test]
    fn sync_accounts_for_every_row_handed_in_in_order() {
        // Held for an hour: only the sync can write them.
        let (mut w, rig) = writer("w-sync", Duration::from_secs(3600));
        w.flush(rows(0..10));
        w.flush(rows(10..20));
        w.sync();
        assert_eq!(rig.table(), names(0..20));
        assert_eq!(w.counters().rows_written, 20);
        w.finish(rows(20..25));
        assert_eq!(rig.table(), names(0..25));
    }

    #[test]
    fn a_sync_ticket_is_done_without_waiting_and_wakes_the_caller() {
        let mut rig = Rig::with_delay(
            "w-ticket",
            1000,
            64 << 20,
            SpoolFullPolicy::Drop,
            Duration::from_secs(3600),
        );
        let sink = std::mem::replace(&mut rig.sink, TraceSink::disabled(Instant::now()));
        let (wake_tx, wake_rx) = mpsc::channel();
        let mut w = TraceWriter::spawn(
            sink,
            Box::new(move || {
                let _ = wake_tx.send(());
            }),
        )
        .unwrap();
        w.flush(rows(0..3));
        let t = w.request_sync();
        wake_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(w.synced(t));
        assert_eq!(rig.table(), names(0..3));
        assert_eq!(w.counters().rows_written, 3);
        // Nothing handed in since: the same ticket covers it, done already.
        assert_eq!(w.request_sync(), t);
        w.flush(rows(3..4));
        let t2 = w.request_sync();
        assert!(t2 > t);
        wake_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(w.synced(t2));
        assert_eq!(rig.table(), names(0..4));
    }

    #[test]
    fn held_rows_go_in_on_the_threads_own_timer() {
        let (mut w, rig) = writer("w-timer", Duration::from_millis(20));
        w.flush(rows(0..5));
        let end = Instant::now() + Duration::from_secs(10);
        while rig.table().len() < 5 && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(rig.table(), names(0..5));
        drop(w);
    }

    #[test]
    fn a_slow_database_makes_the_caller_wait_at_the_queue_bound() {
        let (mut w, rig) = writer("w-bound", Duration::ZERO);
        rig.db.lock().unwrap().delay = Duration::from_millis(200);
        // 64 KiB messages: the bound is reached after ~130 rows.
        let big = |n| Row {
            msg: vec![b'x'; 64 << 10].into(),
            ..row(n)
        };
        for n in 0..300 {
            w.flush(vec![big(n)]);
        }
        assert!(w.counters().queue_waits >= 1, "{:?}", w.counters());
        assert!(w.shared.queued.load(Ordering::Acquire) <= QUEUE_MAX_BYTES + (66 << 10));
        w.finish(Vec::new());
        assert_eq!(rig.table(), names(0..300));
    }
}
