//! Process life: logging set-up (stderr or syslog), daemonising, the pid
//! file and dropping privileges. Called from main.rs around the reactor;
//! nothing here knows about SIP or tracing.

use nix::unistd::{Gid, Group, Uid, User};
use std::fmt;
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Debug)]
pub enum ProcessError {
    Fork(nix::Error),
    PidFile { path: PathBuf, err: std::io::Error },
    NoUser(String),
    NoGroup(String),
    Drop { what: &'static str, err: nix::Error },
}

impl fmt::Display for ProcessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProcessError::Fork(e) => write!(f, "cannot daemonise: {e}"),
            ProcessError::PidFile { path, err } => {
                write!(f, "cannot write pid file {}: {err}", path.display())
            }
            ProcessError::NoUser(u) => write!(f, "no such user: {u}"),
            ProcessError::NoGroup(g) => write!(f, "no such group: {g}"),
            ProcessError::Drop { what, err } => {
                write!(
                    f,
                    "cannot drop privileges ({what}): {err} (start as root to use -u/-g)"
                )
            }
        }
    }
}

/// Logs to stderr (`-E`, `log_stderror=yes`) or to syslog via /dev/log.
pub fn init_logging(to_stderr: bool, level: log::LevelFilter) {
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
}

impl log::Log for Syslog {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }
    fn log(&self, r: &log::Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        // facility daemon (3) * 8 + severity
        let sev = match r.level() {
            log::Level::Error => 3,
            log::Level::Warn => 4,
            log::Level::Info => 6,
            log::Level::Debug | log::Level::Trace => 7,
        };
        let line = format!(
            "<{}>siptraced[{}]: {}",
            3 * 8 + sev,
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

/// Forks into the background: the parent exits 0 at once, the child
/// becomes a session leader with stdio on /dev/null. Must be called while
/// the process is still single-threaded.
#[allow(unsafe_code)]
pub fn daemonise() -> Result<(), ProcessError> {
    use nix::unistd::{ForkResult, fork, setsid};
    // SAFETY: siptraced is single-threaded here (no thread was spawned yet),
    // so the child may run arbitrary code after fork.
    match unsafe { fork() }.map_err(ProcessError::Fork)? {
        ForkResult::Parent { .. } => {
            // _exit: run no destructors, which could close database sessions
            // the child now owns (a postgres Drop says goodbye on the wire).
            // SAFETY: _exit never returns and touches no Rust state.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Child => {}
    }
    setsid().map_err(ProcessError::Fork)?;
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
    Ok(())
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

pub fn lookup_ids(
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
pub fn drop_privileges(uid: Option<Uid>, gid: Option<Gid>) -> Result<(), ProcessError> {
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
