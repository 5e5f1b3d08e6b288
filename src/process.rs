//! Process life: logging set-up (stderr or syslog), daemonising, the pid
//! file and dropping privileges. Called from main.rs around the reactor;
//! nothing here knows about SIP or tracing.

use nix::unistd::{Gid, Group, Uid, User};
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ProcessError {
    #[error("cannot daemonise: {0}")]
    Fork(#[source] nix::Error),
    #[error("cannot write pid file {}: {err}", path.display())]
    PidFile {
        path: PathBuf,
        #[source]
        err: std::io::Error,
    },
    #[error("no such user: {0}")]
    NoUser(String),
    #[error("no such group: {0}")]
    NoGroup(String),
    #[error("cannot drop privileges ({what}): {err} (start as root to use -u/-g)")]
    Drop {
        what: &'static str,
        #[source]
        err: nix::Error,
    },
}

/// Where syslog lines go and how they are tagged (`log_facility`,
/// `log_name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogSettings {
    /// RFC 3164 facility number.
    pub facility: u8,
    pub ident: String,
}

/// Logs to stderr (`-E`, `log_stderror=yes`) or to syslog via /dev/log.
pub fn init_logging(to_stderr: bool, level: log::LevelFilter, syslog: SyslogSettings) {
    // RUST_LOG, when set, wins over the config's `debug=`.
    let level = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse::<log::LevelFilter>().ok())
        .unwrap_or(level);
    if to_stderr {
        let _ = env_logger::Builder::new()
            .filter_level(level)
            .parse_default_env()
            .format_timestamp_millis()
            .try_init();
    } else {
        let logger = Syslog {
            sock: Mutex::new(UnixDatagram::unbound().ok()),
            settings: syslog,
        };
        if log::set_boxed_logger(Box::new(logger)).is_ok() {
            log::set_max_level(level);
        }
    }
}

/// A minimal RFC 3164 client: enough for journald/rsyslog on /dev/log,
/// without a dependency. Never blocks: a full socket loses the line.
struct Syslog {
    sock: Mutex<Option<UnixDatagram>>,
    settings: SyslogSettings,
}

impl log::Log for Syslog {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }
    fn log(&self, r: &log::Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        // PRI = facility * 8 + severity (RFC 3164 §4.1.1).
        let sev = match r.level() {
            log::Level::Error => 3,
            log::Level::Warn => 4,
            log::Level::Info => 6,
            log::Level::Debug | log::Level::Trace => 7,
        };
        let line = format!(
            "<{}>{}[{}]: {}",
            u32::from(self.settings.facility) * 8 + sev,
            self.settings.ident,
            std::process::id(),
            r.args()
        );
        if let Ok(guard) = self.sock.lock() {
            if let Some(s) = guard.as_ref() {
                let _ = s.set_nonblocking(true);
                let _ = s.send_to(line.as_bytes(), "/dev/log");
            }
        }
    }
    fn flush(&self) {}
}

/// Forks into the background. The parent keeps the terminal until the
/// child reports, through a pipe, that its start-up is complete
/// ([`Detached::ready`]): it then exits 0; if the child dies first (a
/// start-up error, which the child prints on the still-shared stderr) it
/// exits with the child's status. So `siptraced` returns only once the
/// daemon is serving and its pid file written, and a failed start is seen
/// by the init script. Everything the daemon holds (sockets, database
/// connections and their locks: POSIX locks are not inherited by a fork
/// child) is made in the child. Must be called while single-threaded.
#[allow(unsafe_code)]
pub(crate) fn daemonise() -> Result<Detached, ProcessError> {
    use nix::sys::wait::{WaitStatus, waitpid};
    use nix::unistd::{ForkResult, fork, pipe, setsid};
    use std::io::Read;
    let (rx, tx) = pipe().map_err(ProcessError::Fork)?;
    // SAFETY: siptraced is single-threaded here (no thread was spawned yet),
    // so the child may run arbitrary code after fork.
    match unsafe { fork() }.map_err(ProcessError::Fork)? {
        ForkResult::Parent { child } => {
            drop(tx);
            let mut byte = [0u8; 1];
            let ready = matches!(std::fs::File::from(rx).read(&mut byte), Ok(1));
            let code = if ready {
                0
            } else {
                match waitpid(child, None) {
                    Ok(WaitStatus::Exited(_, c)) if c != 0 => c,
                    _ => 3,
                }
            };
            // _exit: run no destructors and flush nothing of the child's.
            // SAFETY: _exit never returns and touches no Rust state.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Child => {}
    }
    drop(rx);
    setsid().map_err(ProcessError::Fork)?;
    Ok(Detached(tx))
}

/// The child's side of [`daemonise`]. Dropped without [`Detached::ready`]
/// (a start-up error), the parent exits with the child's status.
pub struct Detached(std::os::fd::OwnedFd);

impl Detached {
    /// Start-up is complete: releases the parent and the terminal (stdio on
    /// /dev/null from here on).
    pub fn ready(self) {
        let _ = std::fs::File::from(self.0).write_all(b"1");
        if let Ok(null) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
        {
            use std::os::fd::AsRawFd;
            for fd in [0, 1, 2] {
                let _ = nix::unistd::dup2(null.as_raw_fd(), fd);
            }
        }
    }
}

/// Writes our pid; removed again by `PidFile::drop` at a clean stop.
pub struct PidFile(PathBuf);

impl PidFile {
    pub fn write(path: &Path) -> Result<PidFile, ProcessError> {
        let err = |err| ProcessError::PidFile {
            path: path.into(),
            err,
        };
        let mut f = std::fs::File::create(path).map_err(err)?;
        writeln!(f, "{}", std::process::id()).map_err(err)?;
        Ok(PidFile(path.into()))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

pub(crate) fn lookup_ids(
    user: Option<&str>,
    group: Option<&str>,
) -> Result<(Option<Uid>, Option<Gid>), ProcessError> {
    let mut uid = None;
    let mut gid = None;
    if let Some(u) = user {
        let found = match u.parse::<u32>() {
            Ok(n) => User::from_uid(Uid::from_raw(n)).ok().flatten(),
            Err(_) => User::from_name(u).ok().flatten(),
        }
        .ok_or_else(|| ProcessError::NoUser(u.into()))?;
        uid = Some(found.uid);
        // As Kamailio: a user name also sets the group, unless one is given.
        gid = Some(found.gid);
    }
    if let Some(g) = group {
        let found = match g.parse::<u32>() {
            Ok(n) => Group::from_gid(Gid::from_raw(n)).ok().flatten(),
            Err(_) => Group::from_name(g).ok().flatten(),
        }
        .ok_or_else(|| ProcessError::NoGroup(g.into()))?;
        gid = Some(found.gid);
    }
    Ok((uid, gid))
}

/// setgroups/setgid/setuid in the order that cannot be undone.
pub(crate) fn drop_privileges(uid: Option<Uid>, gid: Option<Gid>) -> Result<(), ProcessError> {
    // Started as the target user already (`sudo -u siptraced siptraced ...`
    // with the packaged config's user=/group=): nothing to drop, and
    // setgroups would need root.
    let same_uid = uid.is_none_or(|u| u == Uid::current() && u == Uid::effective());
    let same_gid = gid.is_none_or(|g| g == Gid::current() && g == Gid::effective());
    if same_uid && same_gid && !Uid::effective().is_root() {
        return Ok(());
    }
    if let Some(g) = gid {
        nix::unistd::setgroups(&[g]).map_err(|err| ProcessError::Drop {
            what: "setgroups",
            err,
        })?;
        nix::unistd::setgid(g).map_err(|err| ProcessError::Drop {
            what: "setgid",
            err,
        })?;
    }
    if let Some(u) = uid {
        nix::unistd::setuid(u).map_err(|err| ProcessError::Drop {
            what: "setuid",
            err,
        })?;
    }
    Ok(())
}
