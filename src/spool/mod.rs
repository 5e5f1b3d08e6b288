//! The durable local spool: trace rows the database cannot take now (down,
//! slow, refusing) are appended to files, and replayed oldest first, once,
//! when it can again (ARCHITECTURE.md, "Spool"; docs/decisions.md §9).
//!
//! - `record`: the on-disk format: framing, CRC, row codec, damage scanner
//!   (pure, no I/O).
//! - `disk`: the spool directory: lock, identity and run number, segments,
//!   append / peek / consume, repair at open.
//! - `backoff`: when to try the database again (pure, handed the time).
//! - `sink`: the DB edge, called once per step of the writer thread: writes live rows,
//!   spools them when the database fails, replays in bounded batches, keeps
//!   the counters `sip_trace_stats` shows.
//! - `location`: which directory holds the spool (pure choice, docs/decisions.md §9).
//! - `writer`: the thread that owns the sink, so that no database wait
//!   happens on the reactor's thread (docs/decisions.md §21).
//!
//! Depends on db (rows, the Backend trait), config (policy), std, nix, log.
//! Never reads the clock, except the writer thread's loop (an edge, like the
//! reactor) and the purge's own budget: `now` is passed in.

pub mod backoff;
pub mod disk;
pub mod location;
mod purge;
pub mod record;
pub mod sink;
pub mod writer;

pub use disk::{OpenReport, Spool, SpoolOptions};
pub use sink::{DbCounters, DbTarget, SinkSettings, TraceSink};
pub use writer::TraceWriter;

use std::fmt;
use std::path::PathBuf;

/// Why the spool cannot do what was asked.
#[derive(Debug)]
pub enum SpoolError {
    /// A file operation failed.
    Io {
        path: PathBuf,
        what: &'static str,
        source: std::io::Error,
    },
    /// Another process holds the spool directory's lock.
    Locked { dir: PathBuf, holder: String },
    /// Every run number has been used (2^23 starts).
    Exhausted { dir: PathBuf },
    /// The directory is not the daemon's alone (another owner, writable by
    /// others, a symbolic link, or in a directory others may write).
    Unsafe {
        dir: PathBuf,
        why: location::UnsafeDir,
    },
}

impl fmt::Display for SpoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpoolError::Io { path, what, source } => {
                write!(f, "spool: {what} {}: {source}", path.display())?;
                if source.raw_os_error() == Some(libc::ELOOP) {
                    f.write_str(
                        " (a symbolic link: siptraced never follows links in its spool; \
                         remove it)",
                    )?;
                }
                Ok(())
            }
            SpoolError::Locked { dir, holder } => write!(
                f,
                "spool directory {} is in use by another siptraced{}; give each instance \
                 its own with modparam(\"siptrace\", \"spool_dir\", …)",
                dir.display(),
                if holder.is_empty() {
                    String::new()
                } else {
                    format!(" (pid {holder})")
                }
            ),
            SpoolError::Unsafe { dir, why } => {
                write!(f, "spool directory {} {why}", dir.display())
            }
            SpoolError::Exhausted { dir } => write!(
                f,
                "spool {}: sequence numbers exhausted; stop siptraced, let the database \
                 catch up, then remove the directory",
                dir.display()
            ),
        }
    }
}

impl std::error::Error for SpoolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SpoolError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
