//! Shared helpers for the integration tests: a temp dir, free ports, the
//! real `siptraced` binary started on a generated config, SIP endpoints on
//! loopback sockets, FIFO clients and row readers.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_siptraced");

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A directory removed when dropped (kept when SIPTRACED_KEEP_TMP is set).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "st-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
    pub fn join(&self, s: &str) -> PathBuf {
        self.0.join(s)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("SIPTRACED_KEEP_TMP").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A UDP port free right now on 127.0.0.1.
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running siptraced. Stopped with SIGTERM (and waited for) on drop.
pub struct Daemon {
    pub child: Option<Child>,
    pub dir: TempDir,
    pub cfg: PathBuf,
    pub fifo: PathBuf,
    pub rpc_fifo: PathBuf,
    pub db: PathBuf,
    pub port: u16,
    pub log: PathBuf,
}

pub struct DaemonOpts {
    pub extra_args: Vec<String>,
}

impl Daemon {
    /// Writes `cfg` (with `@PORT@`, `@DB@`, `@FIFO@`, `@RPCFIFO@`, `@DIR@`
    /// replaced) and starts `siptraced -D -E -f cfg`, waiting until its MI
    /// FIFO exists (it is created after the sockets are bound).
    pub fn start(tag: &str, cfg: &str) -> Daemon {
        Self::start_with(tag, cfg, &[])
    }

    pub fn start_with(tag: &str, cfg: &str, extra: &[&str]) -> Daemon {
        let dir = TempDir::new(tag);
        let port = free_udp_port();
        let fifo = dir.join("mi.fifo");
        let rpc_fifo = dir.join("rpc.fifo");
        let db = dir.join("trace.db");
        let text = expand(cfg, port, &db, &fifo, &rpc_fifo, dir.path());
        let cfg_path = dir.join("siptraced.cfg");
        std::fs::write(&cfg_path, text).unwrap();
        let log = dir.join("daemon.log");
        let mut d = Daemon {
            child: None,
            dir,
            cfg: cfg_path,
            fifo,
            rpc_fifo,
            db,
            port,
            log,
        };
        d.spawn(extra);
        d
    }

    pub fn spawn(&mut self, extra: &[&str]) {
        let logf = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(BIN)
            .args(["-D", "-E", "-f"])
            .arg(&self.cfg)
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("SIPTRACED_TEST_LOG").unwrap_or("debug".into()),
            )
            .stdin(Stdio::null())
            .stdout(logf.try_clone().unwrap())
            .stderr(logf)
            .spawn()
            .expect("start siptraced");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.fifo.exists() {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("siptraced exited early ({st}):\n{}", self.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "siptraced did not start:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// SIGTERM and wait; returns the exit status code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return st.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("siptraced ignored SIGTERM:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// One MI text request through our own scripts/kamctl; returns stdout.
    pub fn kamctl(&self, args: &[&str]) -> std::process::Output {
        Command::new(repo_root().join("scripts/kamctl"))
            .args(args)
            .env("OSER_FIFO", &self.fifo)
            .env("RPCFIFOPATH", &self.rpc_fifo)
            .env("KAMCTL_TIMEOUT", "5")
            .output()
            .expect("run scripts/kamctl")
    }

    /// Raw MI request: writes `req` (which must name reply FIFO `name`)
    /// and reads the reply until the server closes it. None when no reply
    /// came within `wait`.
    pub fn mi_raw(&self, name: &str, req: &[u8], wait: Duration) -> Option<Vec<u8>> {
        fifo_exchange(&self.fifo, name, req, wait)
    }

    pub fn rows(&self) -> Vec<TraceRow> {
        read_rows(&self.db, "sip_trace")
    }

    /// Polls until `n` rows are stored (or the deadline passes).
    pub fn wait_rows(&self, n: usize) -> Vec<TraceRow> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let rows = self.rows();
            if rows.len() >= n || Instant::now() > deadline {
                return rows;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn expand(cfg: &str, port: u16, db: &Path, fifo: &Path, rpc: &Path, dir: &Path) -> String {
    cfg.replace("@PORT@", &port.to_string())
        .replace("@DB@", &db.display().to_string())
        .replace("@FIFO@", &fifo.display().to_string())
        .replace("@RPCFIFO@", &rpc.display().to_string())
        .replace("@DIR@", &dir.display().to_string())
}

/// What a client of a Kamailio FIFO does: make `/tmp/<name>`, write the
/// request, read the reply until EOF.
pub fn fifo_exchange(server: &Path, name: &str, req: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let reply = PathBuf::from("/tmp").join(name);
    let _ = std::fs::remove_file(&reply);
    let st = Command::new("mkfifo")
        .arg("-m")
        .arg("0666")
        .arg(&reply)
        .status()
        .unwrap();
    assert!(st.success());
    // Open our read end non-blocking first so the server's open succeeds.
    use std::os::unix::fs::OpenOptionsExt;
    let mut rd = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc_o_nonblock())
        .open(&reply)
        .unwrap();
    {
        let mut w = std::fs::OpenOptions::new()
            .write(true)
            .open(server)
            .unwrap();
        w.write_all(req).unwrap();
    }
    let deadline = Instant::now() + wait;
    let mut out = Vec::new();
    let mut seen_writer = false;
    let mut buf = [0u8; 4096];
    loop {
        match rd.read(&mut buf) {
            Ok(0) if seen_writer => break,
            Ok(0) => {}
            Ok(n) => {
                seen_writer = true;
                out.extend_from_slice(&buf[..n]);
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => seen_writer = true,
            Err(e) => panic!("reading reply fifo: {e}"),
        }
        if Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = std::fs::remove_file(&reply);
    if out.is_empty() { None } else { Some(out) }
}

fn libc_o_nonblock() -> i32 {
    0o4000 // O_NONBLOCK on Linux
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceRow {
    pub id: i64,
    pub time_stamp: String,
    pub time_us: i64,
    pub callid: String,
    pub traced_user: String,
    pub msg: Vec<u8>,
    pub method: String,
    pub status: String,
    pub fromip: String,
    pub toip: String,
    pub fromtag: String,
    pub totag: String,
    pub direction: String,
}

pub fn read_rows(db: &Path, table: &str) -> Vec<TraceRow> {
    let Ok(conn) =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return Vec::new();
    };
    let sql = format!(
        "SELECT id, time_stamp, time_us, callid, traced_user, CAST(msg AS BLOB), method, status, \
         fromip, toip, fromtag, totag, direction FROM {table} ORDER BY id"
    );
    let Ok(mut st) = conn.prepare(&sql) else {
        return Vec::new();
    };
    st.query_map([], |r| {
        Ok(TraceRow {
            id: r.get(0)?,
            time_stamp: r.get(1)?,
            time_us: r.get(2)?,
            callid: r.get(3)?,
            traced_user: r.get(4)?,
            msg: r.get(5)?,
            method: r.get(6)?,
            status: r.get(7)?,
            fromip: r.get(8)?,
            toip: r.get(9)?,
            fromtag: r.get(10)?,
            totag: r.get(11)?,
            direction: r.get(12)?,
        })
    })
    .map(|it| it.filter_map(Result::ok).collect())
    .unwrap_or_default()
}

/// A SIP endpoint on a loopback UDP socket.
pub struct Peer {
    pub sock: UdpSocket,
}

impl Peer {
    pub fn new() -> Peer {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        Peer { sock }
    }
    pub fn addr(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }
    pub fn port(&self) -> u16 {
        self.addr().port()
    }
    pub fn send(&self, to: SocketAddr, msg: &[u8]) {
        self.sock.send_to(msg, to).unwrap();
    }
    #[track_caller]
    pub fn recv(&self) -> (Vec<u8>, SocketAddr) {
        let mut buf = vec![0u8; 65535];
        match self.sock.recv_from(&mut buf) {
            Ok((n, from)) => {
                buf.truncate(n);
                (buf, from)
            }
            Err(e) => panic!("{} expected a datagram: {e}", self.addr()),
        }
    }
    /// None when nothing arrives within `wait`.
    pub fn try_recv(&self, wait: Duration) -> Option<Vec<u8>> {
        self.sock.set_read_timeout(Some(wait)).unwrap();
        let mut buf = vec![0u8; 65535];
        let r = self.sock.recv_from(&mut buf).ok().map(|(n, _)| {
            buf.truncate(n);
            buf
        });
        self.sock
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        r
    }
}

impl Default for Peer {
    fn default() -> Self {
        Self::new()
    }
}

/// Value of the first header `name` (case-insensitive) in a SIP message.
pub fn header(msg: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(msg);
    text.split("\r\n")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
}

pub fn first_line(msg: &[u8]) -> String {
    String::from_utf8_lossy(msg)
        .split("\r\n")
        .next()
        .unwrap_or("")
        .to_string()
}

/// Builds a SIP reply to `req` as a UAS would: copies Via/From/To/Call-ID/CSeq.
pub fn reply_to(req: &[u8], code: u16, reason: &str, to_tag: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(req);
    let mut out = format!("SIP/2.0 {code} {reason}\r\n");
    for l in text.split("\r\n").skip(1).take_while(|l| !l.is_empty()) {
        let name = l
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match name.as_str() {
            "via" | "v" | "from" | "f" | "call-id" | "i" | "cseq" | "record-route" => {
                out.push_str(l);
                out.push_str("\r\n");
            }
            "to" | "t" => {
                out.push_str(l);
                if !l.contains(";tag=") && code > 100 {
                    out.push_str(&format!(";tag={to_tag}"));
                }
                out.push_str("\r\n");
            }
            _ => {}
        }
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out.into_bytes()
}

/// A client's reply FIFO, as kamctl makes it: `<dir>/<name>` (dir `/tmp` unless
/// given), with its read end opened non-blocking at once, so the server's first
/// `O_WRONLY|O_NONBLOCK` open succeeds. Removed when dropped.
pub struct ReplyFifo {
    pub name: String,
    pub path: PathBuf,
    rd: std::fs::File,
}

impl ReplyFifo {
    /// A fresh FIFO under /tmp named `st_<tag>_<pid>_<n>` (no `.`, `/` or `\`).
    pub fn new(tag: &str) -> ReplyFifo {
        Self::named(Path::new("/tmp"), &unique_name(tag))
    }

    /// A FIFO with exactly this name in `dir` (replacing whatever is there).
    pub fn named(dir: &Path, name: &str) -> ReplyFifo {
        use std::os::unix::fs::OpenOptionsExt;
        let path = dir.join(name);
        let _ = std::fs::remove_file(&path);
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o666))
            .unwrap_or_else(|e| panic!("mkfifo {}: {e}", path.display()));
        let rd = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc_o_nonblock())
            .open(&path)
            .unwrap();
        ReplyFifo {
            name: name.to_string(),
            path,
            rd,
        }
    }

    /// Reads the reply until the server closes its end. None when no writer
    /// connected within `wait`; Some(bytes) (possibly empty) once one did.
    pub fn read_reply(&mut self, wait: Duration) -> Option<Vec<u8>> {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        use std::os::fd::AsFd;
        let deadline = Instant::now() + wait;
        let mut out = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let ms = PollTimeout::try_from(left.as_millis().min(10_000) as i32 + 1)
                .unwrap_or(PollTimeout::MAX);
            let mut fds = [PollFd::new(self.rd.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, ms) {
                Ok(0) => continue,
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => panic!("poll reply fifo: {e}"),
            }
            let ev = fds[0].revents().unwrap_or(PollFlags::empty());
            // Linux reports POLLHUP on a FIFO's reader only after a writer has
            // connected and left: read what is left, then the reply is whole.
            loop {
                match self.rd.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => out.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("reading reply fifo: {e}"),
                }
            }
            if ev.contains(PollFlags::POLLHUP) {
                return Some(out);
            }
        }
    }

    /// Whether a writer has connected since the FIFO was made (it may still be
    /// connected). Does not wait.
    pub fn was_opened(&self) -> bool {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        use std::os::fd::AsFd;
        let mut fds = [PollFd::new(self.rd.as_fd(), PollFlags::POLLIN)];
        poll(&mut fds, PollTimeout::ZERO).unwrap_or(0) > 0
    }
}

impl Drop for ReplyFifo {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// `st_<tag>_<pid>_<n>`: unique across the test binaries running at once.
pub fn unique_name(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "st_{tag}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// Writes `bytes` to a server FIFO with one write(2) (atomic up to PIPE_BUF),
/// as `printf ... > fifo` does.
/// Fails at once (instead of blocking in open) when nothing reads the FIFO.
pub fn write_fifo(server: &Path, bytes: &[u8]) {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let mut w = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc_o_nonblock())
        .open(server)
        .unwrap_or_else(|e| panic!("open {} (is anything reading it?): {e}", server.display()));
    // Blocking again for the write itself: a large request waits for the
    // reader instead of failing with EAGAIN.
    fcntl(w.as_raw_fd(), FcntlArg::F_SETFL(OFlag::empty())).unwrap();
    w.write_all(bytes).unwrap();
}

/// Bytes shown with escapes, for readable assertion messages.
pub fn escape_bytes(b: &[u8]) -> String {
    b.escape_ascii().to_string()
}

/// What one reply FIFO of a [`FifoRow`] must see.
pub enum FifoWant {
    /// Exactly these bytes, then the server closes it.
    Reply(Vec<u8>),
    /// A reply whose text matches (for times and other moving values).
    Matches(regex_lite::Regex),
    /// Never opened by the server.
    Silent,
}

/// One row of a control-FIFO table: request bytes and what each reply FIFO
/// gets. In `req` and in the FIFO names, `@R@` and `@R2@` stand for fresh
/// unique names (padded with `x` to `pad` bytes when set).
pub struct FifoRow {
    pub req: Vec<u8>,
    pub fifos: Vec<(String, FifoWant)>,
    pub pad: Option<usize>,
}

impl FifoRow {
    pub fn reply(req: impl AsRef<[u8]>, want: impl AsRef<[u8]>) -> FifoRow {
        FifoRow {
            req: req.as_ref().to_vec(),
            fifos: vec![("@R@".into(), FifoWant::Reply(want.as_ref().to_vec()))],
            pad: None,
        }
    }
    pub fn silent(req: impl AsRef<[u8]>) -> FifoRow {
        FifoRow {
            req: req.as_ref().to_vec(),
            fifos: vec![("@R@".into(), FifoWant::Silent)],
            pad: None,
        }
    }
    pub fn matches(req: impl AsRef<[u8]>, pattern: &str) -> FifoRow {
        FifoRow {
            req: req.as_ref().to_vec(),
            fifos: vec![(
                "@R@".into(),
                FifoWant::Matches(regex_lite::Regex::new(pattern).unwrap()),
            )],
            pad: None,
        }
    }
    /// Name the (first) FIFO differently, e.g. `@R@.x`.
    pub fn fifo(mut self, template: &str) -> FifoRow {
        self.fifos[0].0 = template.into();
        self
    }
    /// A second reply FIFO `@R2@` (two requests in one write).
    pub fn and(mut self, want: FifoWant) -> FifoRow {
        self.fifos.push(("@R2@".into(), want));
        self
    }
    pub fn pad(mut self, len: usize) -> FifoRow {
        self.pad = Some(len);
        self
    }
}

/// `hay` with every `from` replaced by `to`.
pub fn replace_bytes(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if !from.is_empty() && hay[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

/// Runs the rows in order against a control FIFO (reply FIFOs under /tmp);
/// panics at the first difference. Silence is checked without sleeping: the
/// server handles requests in order and opens a request's reply FIFO before
/// it answers a later one, so a FIFO still unopened once a later request has
/// been answered never will be. A table must end with an answered row.
pub fn run_fifo_table(server: &Path, rows: Vec<FifoRow>) {
    const WAIT: Duration = Duration::from_secs(5);
    let mut unanswered: Vec<(String, ReplyFifo)> = Vec::new();
    for (i, row) in rows.into_iter().enumerate() {
        let mut names = Vec::new();
        for tag in ["r", "s"] {
            let mut n = unique_name(tag);
            if let Some(len) = row.pad {
                assert!(n.len() <= len, "pad {len} is shorter than {n}");
                n.push_str(&"x".repeat(len - n.len()));
            }
            names.push(n);
        }
        let fill = |t: &[u8]| {
            let t = replace_bytes(t, b"@R2@", names[1].as_bytes());
            replace_bytes(&t, b"@R@", names[0].as_bytes())
        };
        let mut fifos: Vec<(ReplyFifo, FifoWant)> = row
            .fifos
            .into_iter()
            .map(|(t, w)| {
                let name = String::from_utf8(fill(t.as_bytes())).unwrap();
                (ReplyFifo::named(Path::new("/tmp"), &name), w)
            })
            .collect();
        let req = fill(&row.req);
        write_fifo(server, &req);
        let what = format!(
            "row {i}: request {}",
            escape_bytes(&req[..req.len().min(300)])
        );
        let mut answered = false;
        for (j, (fifo, want)) in fifos.drain(..).enumerate() {
            let mut fifo = fifo;
            let got = match &want {
                FifoWant::Silent => {
                    unanswered.push((format!("{what} (reply FIFO {j})"), fifo));
                    continue;
                }
                _ => fifo.read_reply(WAIT),
            };
            let Some(got) = got else {
                panic!("{what}: no reply on FIFO {j} within {WAIT:?}");
            };
            match want {
                FifoWant::Reply(want) => {
                    assert_eq!(escape_bytes(&got), escape_bytes(&want), "{what}")
                }
                FifoWant::Matches(re) => {
                    let text = String::from_utf8_lossy(&got);
                    assert!(re.is_match(&text), "{what}: {text:?} !~ {re}");
                }
                FifoWant::Silent => unreachable!(),
            }
            answered = true;
        }
        if answered {
            for (what, f) in unanswered.drain(..) {
                assert!(!f.was_opened(), "{what}: its reply FIFO was opened");
            }
        }
    }
    assert!(
        unanswered.is_empty(),
        "a table must end with an answered request"
    );
}

/// Runs `cmd` in a process group of its own; returns its pid and output.
/// Fails the test when it has not finished within `limit` (the group is
/// killed first) or when any process of its group outlives it.
pub fn run_in_group(cmd: &mut Command, limit: Duration) -> (u32, std::process::Output) {
    use nix::sys::signal::{Signal, killpg};
    use nix::unistd::Pid;
    use std::os::unix::process::CommandExt;
    let mut child = cmd
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let pgid = Pid::from_raw(child.id() as i32);
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out_pipe.read_to_end(&mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err_pipe.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = killpg(pgid, Signal::SIGKILL);
            let _ = child.wait();
            panic!("{cmd:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    // Children already told to exit may take a moment to go.
    let gone_by = Instant::now() + Duration::from_secs(2);
    while killpg(pgid, None).is_ok() {
        if Instant::now() > gone_by {
            let _ = killpg(pgid, Signal::SIGKILL);
            panic!("{cmd:?} left processes of its group running");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let pid = child.id();
    (
        pid,
        std::process::Output {
            status,
            stdout: out_t.join().unwrap(),
            stderr: err_t.join().unwrap(),
        },
    )
}

/// Sends an OPTIONS request from `peer` to `to` and returns the reply.
pub fn send_options(peer: &Peer, to: SocketAddr, call_id: &str) -> Vec<u8> {
    let msg = format!(
        "OPTIONS sip:ping@{to} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK-{call_id}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:a@x>;tag=f-{call_id}\r\nTo: <sip:p@x>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        peer.addr()
    );
    peer.send(to, msg.as_bytes());
    peer.recv().0
}
