//! WAL checkpoints of the SQLite file on a thread of their own.
//!
//! A checkpoint copies the write-ahead log back into the database file.
//! Left to SQLite's auto-checkpoint it runs inside the commit that crosses
//! the threshold, on the reactor thread: measured here, 70–230 ms for a
//! retention DELETE's WAL and a burst of failed calls once every few
//! minutes under a 2000 calls/s soak (docs/decisions.md §15). Here a second
//! connection on a "sqlite-wal" thread runs PASSIVE checkpoints, which
//! never take the write lock, so the reactor's commits only append to the
//! log. The writer keeps a high auto-checkpoint threshold
//! ([`WRITER_AUTOCHECKPOINT_PAGES`]) as a safety net should this thread fall
//! behind. Depends on rusqlite and std only; touches no SIP state and is the
//! one place besides the writer that opens the file.

use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

/// The writer's own auto-checkpoint threshold while this thread runs (WAL
/// pages; 65 536 × 4 KiB = 256 MiB for the files we create): only reached if checkpoints here stop
/// keeping up (a reader holding an old snapshot for minutes, a failing
/// disk), and it then bounds the log's size at the cost of one stall.
pub(crate) const WRITER_AUTOCHECKPOINT_PAGES: i64 = 65536;
/// WAL file size kept after the log restarts (bytes): SQLite truncates a
/// longer file to this, so a burst does not keep its disk space for ever.
pub(crate) const JOURNAL_SIZE_LIMIT: i64 = 64 << 20;
/// Pause after a pass that left nothing to copy.
const IDLE: Duration = Duration::from_millis(50);
/// Pause after a pass that copied frames: short, so that the log is
/// caught up between two commits and the writer can restart it from the
/// beginning (it does so only when every frame is copied back).
const BUSY: Duration = Duration::from_millis(2);
/// Pause after an error (logged once per streak).
const AFTER_ERROR: Duration = Duration::from_secs(1);

/// The running checkpoint thread; stopped and joined on drop.
pub(crate) struct Checkpointer {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Opens a second connection to `path` (already in WAL mode) and starts
    /// the thread. An error leaves checkpoints to the writer.
    pub(crate) fn start(path: &Path) -> std::io::Result<Checkpointer> {
        let conn = Connection::open(path).map_err(std::io::Error::other)?;
        let (tx, rx) = mpsc::channel::<()>();
        let name = path.display().to_string();
        let thread = std::thread::Builder::new()
            .name("sqlite-wal".into())
            .spawn(move || {
                let mut wait = IDLE;
                let mut failing = false;
                loop {
                    match rx.recv_timeout(wait) {
                        Err(RecvTimeoutError::Timeout) => {}
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                    }
                    wait = match pass(&conn) {
                        Ok(Pass { log, copied }) => {
                            failing = false;
                            if log == 0 || (log == copied && log < 64) {
                                IDLE
                            } else {
                                BUSY
                            }
                        }
                        Err(e) => {
                            if !failing {
                                log::warn!(
                                    "siptrace db: WAL checkpoint of {name} failed: {e}; \
                                     retrying every second (the log grows meanwhile)"
                                );
                            }
                            failing = true;
                            AFTER_ERROR
                        }
                    };
                }
            })?;
        Ok(Checkpointer {
            stop: Some(tx),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            // A send error means the thread is gone already.
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What one PASSIVE checkpoint reported: frames in the log, frames copied.
struct Pass {
    log: i64,
    copied: i64,
}

fn pass(conn: &Connection) -> rusqlite::Result<Pass> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok(Pass {
            log: r.get(1)?,
            copied: r.get(2)?,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thread_copies_the_log_back_and_lets_the_writer_restart_it() {
        let dir = std::env::temp_dir().join(format!("siptraced-wal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.db");
        let wal = dir.join("t.db-wal");
        let w = Connection::open(&path).unwrap();
        let mode: String = w
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        // The writer never checkpoints: whatever reaches the file is the
        // thread's doing.
        w.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        w.execute_batch("CREATE TABLE t (x TEXT)").unwrap();
        let len = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
        let big = "x".repeat(4000);
        for _ in 0..100 {
            w.execute("INSERT INTO t VALUES (?1)", [&big]).unwrap();
        }
        assert!(len(&path) < 100_000, "nothing copied yet: {}", len(&path));
        let ck = Checkpointer::start(&path).unwrap();
        // 8 MB more, in commits with pauses as a reactor's turns have: the
        // log is copied back and restarted, so its file stays far shorter.
        for i in 0..2000 {
            w.execute("INSERT INTO t VALUES (?1)", [&big]).unwrap();
            if i % 20 == 0 {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        drop(ck);
        assert!(len(&path) > 4_000_000, "database file {} bytes", len(&path));
        assert!(len(&wal) < 4_000_000, "log file {} bytes", len(&wal));
        let n: i64 = w
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2100);
        drop(w);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
