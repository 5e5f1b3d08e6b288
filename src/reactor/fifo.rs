//! The FIFO edge: the server FIFOs clients write requests into, and the
//! reply FIFOs we write answers to. Only file-descriptor work lives here;
//! what the bytes mean is mi/'s business. May use nix and std; knows nothing
//! of the protocols, the core or the clock (callers pass `now`).
//!
//! Server side (docs/kamailio.md §1.1): an existing file at the path is
//! removed and a FIFO made with the configured mode (applied with chmod, so
//! the umask does not narrow it) and owner. We open it read-only
//! non-blocking *and* write-only ourselves, so the read end never sees EOF
//! when the last client closes (no EOF storm between clients), and
//! [`ServerFifo::is_stale`] tells when the path no longer names our FIFO
//! (deleted or replaced), so the control plane can make a new one.
//!
//! How requests are read:
//! - A FIFO is one byte stream shared by every client. Reads are bounded
//!   ([`ServerFifo::read_up_to`]) and their bytes are appended to the
//!   protocol's incremental reader (`mi::text::TextReader`,
//!   `mi::jsonrpc::JsonFramer`), which cuts requests out of the stream
//!   whatever the read boundaries were. So a request larger than PIPE_BUF
//!   (4096 bytes on Linux) — which the kernel may deliver in pieces, and
//!   which may take several of our reads — is still handled whole: an MI
//!   request can reach 1 KiB of first line plus 8 KiB of arguments, a
//!   JSON-RPC document 8 KiB.
//! - Concurrent clients never interleave as long as each writes its request
//!   with one write(2) of at most PIPE_BUF bytes: POSIX makes such writes to
//!   a pipe atomic, so each request lies contiguous in the stream. Both
//!   kamctl scripts do that (one `printf`, one write of up to 8 KiB — so
//!   requests between 4 and 8 KiB are only safe from one client at a time;
//!   interleaved, they turn into garbage the readers reject or answer with an
//!   error, as Kamailio's would).
//!
//! Reply side: the reply FIFO is opened write-only non-blocking; ENXIO (no
//! reader yet) is retried by the reactor's timer — 5 tries 80 ms apart, as
//! Kamailio (docs/decisions.md §4) — never by sleeping. The file must be a FIFO,
//! not a symlink, with one link, and the opened fd must be the file that
//! was checked; it is never created. Writes are non-blocking; a reader that
//! stops reading is given up on after a deadline instead of stalling the
//! reactor.

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{Mode, SFlag, fstat, lstat};
use nix::unistd::{Gid, Uid, mkfifo};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub enum FifoError {
    Create { path: PathBuf, err: Errno },
    Open { path: PathBuf, err: Errno },
    Chown { path: PathBuf, err: Errno },
}

impl std::fmt::Display for FifoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FifoError::Create { path, err } => write!(
                f,
                "cannot create FIFO {}: {err} (does its directory exist and is it writable?)",
                path.display()
            ),
            FifoError::Open { path, err } => {
                write!(f, "cannot open FIFO {}: {err}", path.display())
            }
            FifoError::Chown { path, err } => write!(
                f,
                "cannot set owner of FIFO {}: {err} (fifo_user/fifo_group need root)",
                path.display()
            ),
        }
    }
}

/// Why [`ServerFifo::read_up_to`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    /// The pipe is empty: wait for the next readiness event.
    Empty,
    /// The byte limit was reached; the pipe may hold more.
    Limit,
}

/// A server FIFO we read requests from.
#[derive(Debug)]
pub struct ServerFifo {
    pub path: PathBuf,
    reader: File,
    /// Held open so the reader never sees EOF between clients.
    _keepalive: File,
    ino: (u64, u64),
}

impl ServerFifo {
    pub fn create(
        path: &Path,
        mode: u32,
        uid: Option<Uid>,
        gid: Option<Gid>,
    ) -> Result<ServerFifo, FifoError> {
        let _ = std::fs::remove_file(path);
        let perm = Mode::from_bits_truncate(mode);
        mkfifo(path, perm).map_err(|err| FifoError::Create {
            path: path.into(),
            err,
        })?;
        // Mode and owner are set through the opened descriptor, which
        // open_existing got with O_NOFOLLOW and checked to be a FIFO: the
        // directory may be writable by the user we drop to (/run/siptraced),
        // and a path-based chown as root could be pointed at another file
        // by swapping in a symlink between mkfifo and chown.
        let fifo = Self::open_existing(path)?;
        let fd = fifo.reader.as_raw_fd();
        // mkfifo is subject to the umask; the operator's fifo_mode is not.
        nix::sys::stat::fchmod(fd, perm).map_err(|err| FifoError::Create {
            path: path.into(),
            err,
        })?;
        if uid.is_some() || gid.is_some() {
            nix::unistd::fchown(fd, uid, gid).map_err(|err| FifoError::Chown {
                path: path.into(),
                err,
            })?;
        }
        Ok(fifo)
    }

    fn open_existing(path: &Path) -> Result<ServerFifo, FifoError> {
        let errno = |e: io::Error| Errno::from_raw(e.raw_os_error().unwrap_or(0));
        let nonblock = (OFlag::O_NONBLOCK | OFlag::O_NOFOLLOW).bits();
        let rd = OpenOptions::new()
            .read(true)
            .custom_flags(nonblock)
            .open(path)
            .map_err(|e| FifoError::Open {
                path: path.into(),
                err: errno(e),
            })?;
        let st = fstat(rd.as_raw_fd()).map_err(|err| FifoError::Open {
            path: path.into(),
            err,
        })?;
        let wr = OpenOptions::new()
            .write(true)
            .custom_flags(nonblock)
            .open(path)
            .map_err(|e| FifoError::Open {
                path: path.into(),
                err: errno(e),
            })?;
        let wst = fstat(wr.as_raw_fd()).map_err(|err| FifoError::Open {
            path: path.into(),
            err,
        })?;
        // Something else than the FIFO we made (replaced in between): refuse.
        if !is_fifo(st.st_mode) || (wst.st_dev, wst.st_ino) != (st.st_dev, st.st_ino) {
            return Err(FifoError::Open {
                path: path.into(),
                err: Errno::EEXIST,
            });
        }
        Ok(ServerFifo {
            path: path.into(),
            reader: rd,
            _keepalive: wr,
            ino: (st.st_dev, st.st_ino),
        })
    }

    pub fn fd(&self) -> RawFd {
        self.reader.as_raw_fd()
    }

    /// Reads what is available now into `buf`, stopping at WouldBlock
    /// ([`Drained::Empty`]) or once at least `max` bytes were read
    /// ([`Drained::Limit`]: more may be waiting in the pipe).
    pub(crate) fn read_up_to(&mut self, buf: &mut Vec<u8>, max: usize) -> io::Result<Drained> {
        let mut chunk = [0u8; 8192];
        let mut total = 0;
        while total < max {
            let want = chunk.len().min(max - total);
            match self.reader.read(&mut chunk[..want]) {
                // No writer at all (cannot happen while we hold one): nothing to read.
                Ok(0) => return Ok(Drained::Empty),
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    total += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Drained::Empty),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(Drained::Limit)
    }

    /// True when the path no longer names the FIFO we read (deleted or
    /// replaced by someone): the reactor then recreates it.
    pub(crate) fn is_stale(&self) -> bool {
        match lstat(&self.path) {
            Ok(st) => (st.st_dev, st.st_ino) != self.ino || !is_fifo(st.st_mode),
            Err(_) => true,
        }
    }
}

fn is_fifo(mode: u32) -> bool {
    SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits()) == SFlag::S_IFIFO
}

/// Why a reply could not be delivered (each costs a log line).
#[derive(Debug, PartialEq, Eq)]
pub enum ReplyFail {
    NoReader,
    NotAFifo,
    Open(Errno),
    Write(Errno),
    Timeout,
}

impl std::fmt::Display for ReplyFail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplyFail::NoReader => write!(f, "no reader opened it after 5 tries 80 ms apart"),
            ReplyFail::NotAFifo => write!(f, "it is not a FIFO, is a symlink or has several links"),
            ReplyFail::Open(e) => write!(f, "open failed: {e}"),
            ReplyFail::Write(e) => write!(f, "write failed: {e}"),
            ReplyFail::Timeout => write!(f, "the reader stopped reading"),
        }
    }
}

/// Tries per reply FIFO open and the wait between them (Kamailio's
/// FIFO_REPLY_RETRIES + 1 and FIFO_REPLY_WAIT).
pub(crate) const REPLY_OPEN_TRIES: u32 = 5;
pub(crate) const REPLY_OPEN_WAIT: Duration = Duration::from_millis(80);
/// How long a slow reader may take to drain a reply before we give up.
pub(crate) const REPLY_WRITE_DEADLINE: Duration = Duration::from_secs(5);

/// One reply on its way to a client's FIFO.
#[derive(Debug)]
pub struct PendingReply {
    pub path: PathBuf,
    /// None while only opening (the MI reader waits for the open before it
    /// parses the request's arguments, as Kamailio does).
    bytes: Option<Vec<u8>>,
    written: usize,
    tries: u32,
    fd: Option<File>,
    pub next_try: Instant,
    give_up: Instant,
}

pub enum Progress {
    Done,
    /// Open, and nothing to write yet: call `set_bytes`, then `step`.
    Opened,
    Again,
    Failed(ReplyFail),
}

impl PendingReply {
    pub fn new(path: PathBuf, bytes: Vec<u8>, now: Instant) -> PendingReply {
        let mut r = Self::open(path, now);
        r.bytes = Some(bytes);
        r
    }

    /// A reply FIFO to open now, whose bytes come later.
    pub fn open(path: PathBuf, now: Instant) -> PendingReply {
        PendingReply {
            path,
            bytes: None,
            written: 0,
            tries: 0,
            fd: None,
            next_try: now,
            give_up: now + REPLY_WRITE_DEADLINE,
        }
    }

    /// Reply bytes not written yet (what this reply holds in memory).
    pub(crate) fn pending_bytes(&self) -> usize {
        self.bytes
            .as_ref()
            .map_or(0, |b| b.len().saturating_sub(self.written))
    }

    pub(crate) fn set_bytes(&mut self, bytes: Vec<u8>, now: Instant) {
        self.bytes = Some(bytes);
        self.next_try = now;
    }

    /// Opens the FIFO (checked, non-blocking) if not yet open, then writes
    /// as much as the pipe takes. `Again` means: call again at `next_try`.
    pub fn step(&mut self, now: Instant) -> Progress {
        if self.fd.is_none() {
            self.tries += 1;
            match open_reply(&self.path) {
                Ok(f) => self.fd = Some(f),
                Err(ReplyFail::NoReader) if self.tries < REPLY_OPEN_TRIES => {
                    self.next_try = now + REPLY_OPEN_WAIT;
                    return Progress::Again;
                }
                Err(e) => return Progress::Failed(e),
            }
        }
        let Some(f) = self.fd.as_mut() else {
            return Progress::Failed(ReplyFail::NoReader);
        };
        let Some(bytes) = self.bytes.as_ref() else {
            return Progress::Opened;
        };
        while self.written < bytes.len() {
            match f.write(&bytes[self.written..]) {
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if now >= self.give_up {
                        return Progress::Failed(ReplyFail::Timeout);
                    }
                    self.next_try = now + Duration::from_millis(10);
                    return Progress::Again;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Progress::Failed(ReplyFail::Write(Errno::from_raw(
                        e.raw_os_error().unwrap_or(0),
                    )));
                }
            }
        }
        Progress::Done
    }
}

fn open_reply(path: &Path) -> Result<File, ReplyFail> {
    let before = lstat(path).map_err(ReplyFail::Open)?;
    if !is_fifo(before.st_mode) || before.st_nlink > 1 {
        return Err(ReplyFail::NotAFifo);
    }
    let opened = OpenOptions::new()
        .write(true)
        .custom_flags((OFlag::O_NONBLOCK | OFlag::O_NOFOLLOW).bits())
        .open(path);
    let file = match opened {
        Ok(f) => f,
        Err(e) => {
            return Err(match Errno::from_raw(e.raw_os_error().unwrap_or(0)) {
                Errno::ENXIO => ReplyFail::NoReader,
                Errno::ELOOP => ReplyFail::NotAFifo,
                other => ReplyFail::Open(other),
            });
        }
    };
    let after = fstat(file.as_raw_fd()).map_err(ReplyFail::Open)?;
    if (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino) {
        return Err(ReplyFail::NotAFifo);
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("siptraced-fifo-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn server_fifo_reads_and_detects_replacement() {
        let d = tmpdir("srv");
        let p = d.join("f");
        std::fs::write(&p, b"old regular file").unwrap();
        let mut s = ServerFifo::create(&p, 0o600, None, None).unwrap();
        let mode = std::fs::metadata(&p).unwrap();
        use std::os::unix::fs::{FileTypeExt, PermissionsExt};
        assert!(mode.file_type().is_fifo());
        assert_eq!(mode.permissions().mode() & 0o777, 0o600);
        let mut w = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        w.write_all(b":which:r\n\n").unwrap();
        drop(w);
        let mut buf = Vec::new();
        assert_eq!(s.read_up_to(&mut buf, 4).unwrap(), Drained::Limit);
        assert_eq!(buf, b":whi");
        assert_eq!(s.read_up_to(&mut buf, 100).unwrap(), Drained::Empty);
        assert_eq!(buf, b":which:r\n\n");
        // No EOF storm after the client left: a read now just has nothing.
        assert_eq!(s.read_up_to(&mut buf, 100).unwrap(), Drained::Empty);
        assert_eq!(buf.len(), 10);
        assert!(!s.is_stale());
        std::fs::remove_file(&p).unwrap();
        assert!(s.is_stale());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn reply_refuses_regular_files_and_retries_without_reader() {
        let d = tmpdir("rpl");
        let reg = d.join("reg");
        std::fs::write(&reg, b"").unwrap();
        let now = Instant::now();
        let mut r = PendingReply::new(reg, b"x".to_vec(), now);
        assert!(matches!(r.step(now), Progress::Failed(ReplyFail::NotAFifo)));

        let link = d.join("link");
        let fifo = d.join("fifo");
        mkfifo(&fifo, Mode::from_bits_truncate(0o600)).unwrap();
        std::os::unix::fs::symlink(&fifo, &link).unwrap();
        let mut r = PendingReply::new(link, b"x".to_vec(), now);
        assert!(matches!(r.step(now), Progress::Failed(ReplyFail::NotAFifo)));

        let mut r = PendingReply::new(fifo.clone(), b"200 OK\n\n".to_vec(), now);
        for i in 1..REPLY_OPEN_TRIES {
            assert!(matches!(r.step(now), Progress::Again), "try {i}");
            assert_eq!(r.next_try, now + REPLY_OPEN_WAIT);
        }
        assert!(matches!(r.step(now), Progress::Failed(ReplyFail::NoReader)));

        // With a reader present the reply goes through whole.
        let rd = OpenOptions::new()
            .read(true)
            .custom_flags(OFlag::O_NONBLOCK.bits())
            .open(&fifo)
            .unwrap();
        let mut r = PendingReply::new(fifo, b"200 OK\n\n".to_vec(), now);
        assert!(matches!(r.step(now), Progress::Done));
        drop(r);
        let mut got = Vec::new();
        let mut rd = rd;
        let _ = rd.read_to_end(&mut got);
        assert_eq!(got, b"200 OK\n\n");
        let _ = std::fs::remove_dir_all(&d);
    }
}
