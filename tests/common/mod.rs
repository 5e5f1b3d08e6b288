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

/// A port free right now for UDP and TCP on 127.0.0.1 and ::1 (when the
/// host has IPv6): a daemon may listen on all four (`listen=tcp:` beside
/// `listen=udp:`), and other tests' TCP clients take ephemeral ports.
pub fn free_port() -> u16 {
    use std::net::TcpListener;
    for _ in 0..100 {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        let v6_ok = |r: std::io::Result<()>| match r {
            Ok(()) => true,
            Err(e) => e.kind() == std::io::ErrorKind::AddrNotAvailable,
        };
        if TcpListener::bind(("127.0.0.1", port)).is_ok()
            && v6_ok(TcpListener::bind(("::1", port)).map(drop))
            && v6_ok(UdpSocket::bind(("::1", port)).map(drop))
        {
            return port;
        }
    }
    panic!("no port free for UDP and TCP");
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
        let port = free_port();
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
            // The spool (and any state) in the test's own directory, never
            // a shared /var/lib/siptraced (docs/decisions.md §9).
            .env("STATE_DIRECTORY", self.dir.path())
            .stdin(Stdio::null())
            .stdout(logf.try_clone().unwrap())
            .stderr(logf)
            .spawn()
            .expect("start siptraced");
        // Ready when start-up is logged (by this process: the log file is
        // shared by restarts): sockets bound, FIFOs made and their owner
        // and mode applied, database open.
        let ready = format!(" started (pid {})", child.id());
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.log_text().contains(&ready) {
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

    /// Polls until `n` rows satisfying `pred` are stored (or 5 s pass);
    /// returns those rows.
    pub fn wait_rows_where(&self, n: usize, pred: impl Fn(&TraceRow) -> bool) -> Vec<TraceRow> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let rows: Vec<TraceRow> = self.rows().into_iter().filter(|r| pred(r)).collect();
            if rows.len() >= n || Instant::now() > deadline {
                return rows;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
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

impl TraceRow {
    /// A row of `SELECT id, time_stamp, time_us, callid, traced_user,
    /// CAST(msg AS BLOB), method, status, fromip, toip, fromtag, totag,
    /// direction`.
    pub fn from_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<TraceRow> {
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
    }
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
    st.query_map([], TraceRow::from_sqlite)
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

// ---- SIP calls through the proxy (shared by the mirror_* tests) ----

impl Peer {
    /// A SIP endpoint on `addr` (e.g. "[::1]:0" for IPv6 loopback).
    pub fn bind(addr: &str) -> Peer {
        let sock = UdpSocket::bind(addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        Peer { sock }
    }

    /// Every datagram that arrives until `quiet` passes without one, with
    /// its sender.
    pub fn drain(&self, quiet: Duration) -> Vec<(Vec<u8>, SocketAddr)> {
        self.sock.set_read_timeout(Some(quiet)).unwrap();
        let mut out = Vec::new();
        let mut buf = vec![0u8; 65535];
        while let Ok((n, from)) = self.sock.recv_from(&mut buf) {
            out.push((buf[..n].to_vec(), from));
        }
        self.sock
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        out
    }
}

/// An INVITE from `uac` to a UAS behind `proxy`, with an `X-Trace` header
/// the test configs route on.
pub fn sip_invite(
    uac: SocketAddr,
    proxy: SocketAddr,
    uas: SocketAddr,
    call_id: &str,
    x_trace: &str,
) -> Vec<u8> {
    format!(
        "INVITE sip:bob@{uas} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {uac};branch=z9hG4bK-inv-{call_id};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@{uac}>;tag=ft-{call_id}\r\n\
         To: <sip:bob@{proxy}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:alice@{uac}>\r\n\
         X-Trace: {x_trace}\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// An in-dialog request (ACK, BYE…) routed through `proxy`.
#[allow(clippy::too_many_arguments)]
pub fn sip_in_dialog(
    method: &str,
    cseq: u32,
    uac: SocketAddr,
    proxy: SocketAddr,
    uas: SocketAddr,
    call_id: &str,
    x_trace: &str,
    branch: &str,
) -> Vec<u8> {
    format!(
        "{method} sip:bob@{uas} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {uac};branch=z9hG4bK-{branch}\r\n\
         Max-Forwards: 70\r\n\
         Route: <sip:{proxy};lr>\r\n\
         From: <sip:alice@{uac}>;tag=ft-{call_id}\r\n\
         To: <sip:bob@{proxy}>;tag=tt-{call_id}\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} {method}\r\n\
         X-Trace: {x_trace}\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// INVITE/200/ACK/BYE/200 from `uac` through `proxy` to `uas`. Returns
/// every message as it crossed the wire, in order: for each request and
/// reply first the bytes its sender sent, then the bytes its receiver got
/// (10 messages). Panics when a step does not arrive within 3 s.
pub fn sip_call(
    uac: &Peer,
    uas: &Peer,
    proxy: SocketAddr,
    call_id: &str,
    x_trace: &str,
) -> Vec<Vec<u8>> {
    let (a, b) = (uac.addr(), uas.addr());
    let mut wire = Vec::new();
    let inv = sip_invite(a, proxy, b, call_id, x_trace);
    uac.send(proxy, &inv);
    let (fwd, _) = uas.recv();
    assert!(
        first_line(&fwd).starts_with("INVITE "),
        "{}",
        String::from_utf8_lossy(&fwd)
    );
    let ok = reply_to(&fwd, 200, "OK", &format!("tt-{call_id}"));
    uas.send(proxy, &ok);
    let (ok_at_uac, _) = uac.recv();
    assert_eq!(first_line(&ok_at_uac), "SIP/2.0 200 OK");
    wire.extend([inv, fwd, ok, ok_at_uac]);
    for (i, (m, n)) in [("ACK", 1), ("BYE", 2)].into_iter().enumerate() {
        let req = sip_in_dialog(
            m,
            n,
            a,
            proxy,
            b,
            call_id,
            x_trace,
            &format!("{m}{i}-{call_id}"),
        );
        uac.send(proxy, &req);
        let (got, _) = uas.recv();
        assert!(
            first_line(&got).starts_with(m),
            "{}",
            String::from_utf8_lossy(&got)
        );
        wire.extend([req, got.clone()]);
        if m == "BYE" {
            let r = reply_to(&got, 200, "OK", "");
            uas.send(proxy, &r);
            let (r_at_uac, _) = uac.recv();
            assert_eq!(first_line(&r_at_uac), "SIP/2.0 200 OK");
            wire.extend([r, r_at_uac]);
        }
    }
    wire
}

impl Daemon {
    /// `sip_trace_stats` over the MI FIFO as name → value. Asked with
    /// our own FIFO client rather than scripts/kamctl, so that tests which
    /// poll the counters do not depend on the script's process juggling.
    pub fn trace_stats(&self) -> std::collections::HashMap<String, String> {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "st_stats_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let req = format!(":sip_trace_stats:{name}\n\n");
        let reply = self
            .mi_raw(&name, req.as_bytes(), Duration::from_secs(5))
            .expect("no reply to sip_trace_stats");
        let text = String::from_utf8_lossy(&reply).into_owned();
        assert!(text.starts_with("200 OK\n"), "{text}");
        text.lines()
            .filter_map(|l| l.split_once("::"))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect()
    }

    /// One counter of `sip_trace_stats`.
    pub fn trace_stat(&self, name: &str) -> u64 {
        let stats = self.trace_stats();
        stats
            .get(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no counter {name} in {stats:?}"))
    }
}

// ------------------------------------------------------------------------
// Databases for the backend flow tests (tests/db_*.rs): a fresh, uniquely
// named database (or file / directory) per test, initialised with the
// shipped scripts, read back row by row, dropped at the end.

/// Which backend a [`TestDb`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbKind {
    Sqlite,
    Postgres,
    Mysql,
    Text,
}

impl DbKind {
    pub const ALL: [DbKind; 4] = [
        DbKind::Sqlite,
        DbKind::Postgres,
        DbKind::Mysql,
        DbKind::Text,
    ];

    /// The directory of sql/ holding this backend's scripts.
    pub fn sql_dir(self) -> &'static str {
        match self {
            DbKind::Sqlite => "sqlite",
            DbKind::Postgres => "postgres",
            DbKind::Mysql => "mysql",
            DbKind::Text => "db_text",
        }
    }

    /// Backends that cannot store NUL / invalid UTF-8 and write `\xNN`.
    pub fn escapes(self) -> bool {
        matches!(self, DbKind::Postgres | DbKind::Mysql)
    }
}

const PG_HOWTO: &str = "start it with: pg_ctlcluster --skip-systemctl-redirect \
                        $(ls /etc/postgresql) main start (or run scripts/test)";
const MY_HOWTO: &str = "start it with: start-stop-daemon --start --oknodo --background \
                        --exec /usr/sbin/mariadbd (or run scripts/test)";

/// Admin URL of the test PostgreSQL server (SIPTRACED_TEST_PG_URL).
pub fn pg_admin_url() -> String {
    std::env::var("SIPTRACED_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Admin URL of the test MariaDB/MySQL server (SIPTRACED_TEST_MYSQL_URL).
pub fn mysql_admin_url() -> String {
    std::env::var("SIPTRACED_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/mysql".into())
}

/// A database name nobody else uses: process, counter, clock.
pub fn unique_db_name(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst),
        nanos % 1_000_000
    )
}

struct PgAdmin {
    rt: tokio::runtime::Runtime,
    base: tokio_postgres::Config,
    admin: tokio_postgres::Client,
}

impl PgAdmin {
    fn connect_to(&self, db: &str) -> tokio_postgres::Client {
        let mut cfg = self.base.clone();
        cfg.dbname(db);
        pg_connect(&self.rt, &cfg)
    }
}

fn pg_connect(
    rt: &tokio::runtime::Runtime,
    cfg: &tokio_postgres::Config,
) -> tokio_postgres::Client {
    let (client, conn) = rt
        .block_on(cfg.connect(tokio_postgres::NoTls))
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL not reachable ({}): {e}; {PG_HOWTO}",
                pg_admin_url()
            )
        });
    rt.spawn(async move {
        let _ = conn.await;
    });
    client
}

/// A fresh database of one backend; dropped (or removed) on drop.
pub struct TestDb {
    pub kind: DbKind,
    /// The `db_url` siptraced is given.
    pub url: String,
    /// Server database name, SQLite file, or dbtext directory.
    pub name: String,
    dir: TempDir,
    pg: Option<PgAdmin>,
    my: Option<mysql::Opts>,
}

impl TestDb {
    /// An empty database: no tables (server), no file (SQLite), an empty
    /// directory (dbtext).
    pub fn empty(kind: DbKind) -> TestDb {
        let dir = TempDir::new("db");
        let name = unique_db_name("siptraced_flow");
        match kind {
            DbKind::Sqlite => {
                let path = dir.join("trace.db").display().to_string();
                TestDb {
                    kind,
                    url: format!("sqlite://{path}"),
                    name: path,
                    dir,
                    pg: None,
                    my: None,
                }
            }
            DbKind::Text => {
                let path = dir.join("dbtext");
                std::fs::create_dir_all(&path).unwrap();
                let path = path.display().to_string();
                TestDb {
                    kind,
                    url: format!("text://{path}"),
                    name: path,
                    dir,
                    pg: None,
                    my: None,
                }
            }
            DbKind::Postgres => {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let base: tokio_postgres::Config =
                    pg_admin_url().parse().expect("SIPTRACED_TEST_PG_URL");
                let admin = pg_connect(&rt, &base);
                rt.block_on(admin.batch_execute(&format!("CREATE DATABASE {name}")))
                    .expect("create test database");
                let user = base.get_user().unwrap_or("postgres").to_string();
                let port = base.get_ports().first().copied().unwrap_or(5432);
                TestDb {
                    kind,
                    url: format!("postgres://{user}@127.0.0.1:{port}/{name}"),
                    name,
                    dir,
                    pg: Some(PgAdmin { rt, base, admin }),
                    my: None,
                }
            }
            DbKind::Mysql => {
                use mysql::prelude::Queryable;
                let base =
                    mysql::Opts::from_url(&mysql_admin_url()).expect("SIPTRACED_TEST_MYSQL_URL");
                let mut admin = mysql::Conn::new(base.clone()).unwrap_or_else(|e| {
                    panic!(
                        "MariaDB/MySQL not reachable ({}): {e}; {MY_HOWTO}",
                        mysql_admin_url()
                    )
                });
                admin
                    .query_drop(format!("CREATE DATABASE {name}"))
                    .expect("create test database");
                let user = base.get_user().unwrap_or("root").to_string();
                let port = base.get_tcp_port();
                TestDb {
                    kind,
                    url: format!("mysql://{user}@127.0.0.1:{port}/{name}"),
                    name,
                    dir,
                    pg: None,
                    my: Some(base),
                }
            }
        }
    }

    /// A database initialised the way the README tells users to:
    /// `scripts/siptraced-dbinit DB_URL` (table version 4).
    pub fn initialised(kind: DbKind) -> TestDb {
        let db = TestDb::empty(kind);
        db.dbinit("sip_trace");
        db
    }

    /// Run `scripts/siptraced-dbinit URL TABLE`, panicking with its output
    /// when it fails.
    pub fn dbinit(&self, table: &str) {
        let out = Command::new(repo_root().join("scripts/siptraced-dbinit"))
            .arg(&self.url)
            .arg(table)
            .output()
            .expect("run scripts/siptraced-dbinit");
        assert!(
            out.status.success(),
            "siptraced-dbinit {} {table} failed: {}{}",
            self.url,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Apply a script of sql/<backend>/ (e.g. `siptrace-v2-create.sql`);
    /// for dbtext, copy the files of sql/db_text/<name>/ into the directory.
    pub fn apply_script(&self, name: &str) {
        let src = repo_root().join("sql").join(self.kind.sql_dir()).join(name);
        if self.kind == DbKind::Text {
            for e in std::fs::read_dir(&src).unwrap() {
                let e = e.unwrap();
                std::fs::copy(e.path(), Path::new(&self.name).join(e.file_name())).unwrap();
            }
            return;
        }
        self.exec(&std::fs::read_to_string(&src).unwrap());
    }

    /// Run SQL (several statements allowed). Not for dbtext.
    pub fn exec(&self, sql: &str) {
        match self.kind {
            DbKind::Sqlite => {
                let c = rusqlite::Connection::open(&self.name).unwrap();
                c.execute_batch(sql)
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
            DbKind::Postgres => {
                let pg = self.pg.as_ref().unwrap();
                let c = pg.connect_to(&self.name);
                pg.rt
                    .block_on(c.batch_execute(sql))
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
            DbKind::Mysql => {
                use mysql::prelude::Queryable;
                let mut c = self.my_conn();
                let mut r = c.query_iter(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
                while let Some(set) = r.iter() {
                    for row in set {
                        row.unwrap_or_else(|e| panic!("{sql}: {e}"));
                    }
                }
            }
            DbKind::Text => panic!("no SQL on dbtext"),
        }
    }

    /// The first column of the first row of `sql`, as an integer (a count,
    /// an id); 0 when there is no row. Not for dbtext.
    pub fn scalar(&self, sql: &str) -> i64 {
        match self.kind {
            DbKind::Sqlite => {
                let c = rusqlite::Connection::open(&self.name).unwrap();
                c.query_row(sql, [], |r| r.get::<_, Option<i64>>(0))
                    .unwrap_or_else(|e| panic!("{sql}: {e}"))
                    .unwrap_or(0)
            }
            DbKind::Postgres => {
                let pg = self.pg.as_ref().unwrap();
                let c = pg.connect_to(&self.name);
                let rows = pg
                    .rt
                    .block_on(c.query(sql, &[]))
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
                rows.first()
                    .and_then(|r| r.get::<_, Option<i64>>(0))
                    .unwrap_or(0)
            }
            DbKind::Mysql => {
                use mysql::prelude::Queryable;
                let mut c = self.my_conn();
                c.query_first::<Option<i64>, _>(sql)
                    .unwrap_or_else(|e| panic!("{sql}: {e}"))
                    .flatten()
                    .unwrap_or(0)
            }
            DbKind::Text => panic!("no SQL on dbtext"),
        }
    }

    fn my_conn(&self) -> mysql::Conn {
        let o = mysql::OptsBuilder::from_opts(self.my.clone().unwrap())
            .db_name(Some(self.name.clone()));
        mysql::Conn::new(o).expect("connect test database")
    }

    /// The dbtext file of a table.
    pub fn text_file(&self, table: &str) -> PathBuf {
        Path::new(&self.name).join(table)
    }

    /// Tables in the database (dbtext: files in the directory), sorted.
    pub fn tables(&self) -> Vec<String> {
        let mut t: Vec<String> = match self.kind {
            DbKind::Sqlite => {
                let Ok(c) = rusqlite::Connection::open_with_flags(
                    &self.name,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
                ) else {
                    return Vec::new();
                };
                let mut st = c
                    .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
                    .unwrap();
                st.query_map([], |r| r.get(0))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect()
            }
            DbKind::Postgres => {
                let pg = self.pg.as_ref().unwrap();
                let c = pg.connect_to(&self.name);
                pg.rt
                    .block_on(c.query(
                        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'",
                        &[],
                    ))
                    .unwrap()
                    .iter()
                    .map(|r| r.get(0))
                    .collect()
            }
            DbKind::Mysql => {
                use mysql::prelude::Queryable;
                self.my_conn().query("SHOW TABLES").unwrap()
            }
            DbKind::Text => std::fs::read_dir(&self.name)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect(),
        };
        t.sort();
        t
    }

    /// Column names of a table in declaration order (empty if none).
    pub fn columns(&self, table: &str) -> Vec<String> {
        match self.kind {
            DbKind::Sqlite => {
                let Ok(c) = rusqlite::Connection::open_with_flags(
                    &self.name,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
                ) else {
                    return Vec::new();
                };
                let mut st = c.prepare("SELECT name FROM pragma_table_info(?1)").unwrap();
                st.query_map([table], |r| r.get(0))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect()
            }
            DbKind::Postgres => {
                let pg = self.pg.as_ref().unwrap();
                let c = pg.connect_to(&self.name);
                pg.rt
                    .block_on(c.query(
                        "SELECT column_name::text FROM information_schema.columns \
                         WHERE table_schema = 'public' AND table_name = $1 \
                         ORDER BY ordinal_position",
                        &[&table],
                    ))
                    .unwrap()
                    .iter()
                    .map(|r| r.get(0))
                    .collect()
            }
            DbKind::Mysql => {
                use mysql::prelude::Queryable;
                self.my_conn()
                    .exec(
                        "SELECT COLUMN_NAME FROM information_schema.COLUMNS \
                         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? \
                         ORDER BY ORDINAL_POSITION",
                        (table,),
                    )
                    .unwrap()
            }
            DbKind::Text => {
                let Ok(t) = siptraced::db::text::read_table_raw(&self.text_file(table)) else {
                    return Vec::new();
                };
                t.columns.into_iter().map(|c| c.name).collect()
            }
        }
    }

    /// Every row of `table` in id order, values as stored: `msg` bytes as
    /// the column holds them (`\xNN` escapes included), `time_stamp` as
    /// local `YYYY-MM-DD HH:MM:SS` text (dbtext's Unix seconds rendered so),
    /// `time_us` 0 and `totag` '' where the table has no such column.
    pub fn rows(&self, table: &str) -> Vec<TraceRow> {
        let cols = self.columns(table);
        if cols.is_empty() {
            return Vec::new();
        }
        let has = |c: &str| cols.iter().any(|x| x == c);
        match self.kind {
            DbKind::Sqlite => {
                if has("time_us") && has("totag") {
                    return read_rows(Path::new(&self.name), table);
                }
                let c = rusqlite::Connection::open_with_flags(
                    &self.name,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
                )
                .unwrap();
                let sql = format!(
                    "SELECT id, time_stamp, {}, callid, traced_user, CAST(msg AS BLOB), method, \
                     status, fromip, toip, fromtag, {}, direction FROM \"{table}\" ORDER BY id",
                    if has("time_us") { "time_us" } else { "0" },
                    if has("totag") { "totag" } else { "''" },
                );
                let mut st = c.prepare(&sql).unwrap();
                st.query_map([], TraceRow::from_sqlite)
                    .unwrap()
                    .map(Result::unwrap)
                    .collect()
            }
            DbKind::Postgres => {
                let pg = self.pg.as_ref().unwrap();
                let c = pg.connect_to(&self.name);
                let sql = format!(
                    "SELECT id::int8, to_char(time_stamp, 'YYYY-MM-DD HH24:MI:SS'), {}::int8, \
                     callid::text, traced_user::text, msg::text, method::text, status::text, \
                     fromip::text, toip::text, fromtag::text, {}::text, direction::text \
                     FROM \"{table}\" ORDER BY id",
                    if has("time_us") { "time_us" } else { "0" },
                    if has("totag") { "totag" } else { "''" },
                );
                pg.rt
                    .block_on(c.query(&sql, &[]))
                    .unwrap()
                    .iter()
                    .map(|r| TraceRow {
                        id: r.get(0),
                        time_stamp: r.get(1),
                        time_us: r.get(2),
                        callid: r.get(3),
                        traced_user: r.get(4),
                        msg: r.get::<_, String>(5).into_bytes(),
                        method: r.get(6),
                        status: r.get(7),
                        fromip: r.get(8),
                        toip: r.get(9),
                        fromtag: r.get(10),
                        totag: r.get(11),
                        direction: r.get(12),
                    })
                    .collect()
            }
            DbKind::Mysql => {
                use mysql::prelude::Queryable;
                let sql = format!(
                    "SELECT id, DATE_FORMAT(time_stamp, '%Y-%m-%d %H:%i:%s'), {}, callid, \
                     traced_user, CAST(msg AS BINARY), method, status, fromip, toip, fromtag, {}, direction \
                     FROM `{table}` ORDER BY id",
                    if has("time_us") { "time_us" } else { "0" },
                    if has("totag") { "totag" } else { "''" },
                );
                let rows: Vec<mysql::Row> = self.my_conn().query(sql).unwrap();
                rows.into_iter()
                    .map(|r| {
                        let v = r.unwrap();
                        let bytes = |i: usize| -> Vec<u8> {
                            match &v[i] {
                                mysql::Value::Bytes(b) => b.clone(),
                                mysql::Value::Int(n) => n.to_string().into_bytes(),
                                mysql::Value::UInt(n) => n.to_string().into_bytes(),
                                other => panic!("column {i}: unexpected {other:?}"),
                            }
                        };
                        let text = |i: usize| String::from_utf8(bytes(i)).unwrap();
                        let int = |i: usize| text(i).parse::<i64>().unwrap();
                        TraceRow {
                            id: int(0),
                            time_stamp: text(1),
                            time_us: int(2),
                            callid: text(3),
                            traced_user: text(4),
                            msg: bytes(5),
                            method: text(6),
                            status: text(7),
                            fromip: text(8),
                            toip: text(9),
                            fromtag: text(10),
                            totag: text(11),
                            direction: text(12),
                        }
                    })
                    .collect()
            }
            DbKind::Text => {
                let Ok(t) = siptraced::db::text::read_table_raw(&self.text_file(table)) else {
                    return Vec::new();
                };
                let idx = |name: &str| t.columns.iter().position(|c| c.name == name);
                let mut out: Vec<TraceRow> = t
                    .rows
                    .iter()
                    .map(|r| {
                        let bytes =
                            |name: &str| idx(name).map(|i| r[i].clone()).unwrap_or_default();
                        let text = |name: &str| String::from_utf8(bytes(name)).unwrap();
                        let int = |name: &str| text(name).parse::<i64>().unwrap_or(0);
                        let secs: i64 = text("time_stamp").parse().unwrap_or_else(|_| {
                            panic!("dbtext time_stamp {:?}", text("time_stamp"))
                        });
                        TraceRow {
                            id: int("id"),
                            time_stamp: siptraced::clock::local_datetime(secs),
                            time_us: int("time_us"),
                            callid: text("callid"),
                            traced_user: text("traced_user"),
                            msg: bytes("msg"),
                            method: text("method"),
                            status: text("status"),
                            fromip: text("fromip"),
                            toip: text("toip"),
                            fromtag: text("fromtag"),
                            totag: text("totag"),
                            direction: text("direction"),
                        }
                    })
                    .collect();
                out.sort_by_key(|r| r.id);
                out
            }
        }
    }

    /// Polls until `table` holds at least `n` rows (or 10 s pass).
    pub fn wait_rows(&self, table: &str, n: usize) -> Vec<TraceRow> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let rows = self.rows(table);
            if rows.len() >= n || Instant::now() > deadline {
                return rows;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if std::env::var_os("SIPTRACED_KEEP_TMP").is_some() {
            eprintln!("kept test database {} ({})", self.name, self.url);
            return;
        }
        if let Some(pg) = &self.pg {
            let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
            if let Err(e) = pg.rt.block_on(pg.admin.batch_execute(&sql)) {
                eprintln!("could not drop test database {}: {e}", self.name);
            }
        }
        if let Some(base) = &self.my {
            use mysql::prelude::Queryable;
            let r = mysql::Conn::new(base.clone())
                .and_then(|mut c| c.query_drop(format!("DROP DATABASE IF EXISTS {}", self.name)));
            if let Err(e) = r {
                eprintln!("could not drop test database {}: {e}", self.name);
            }
        }
    }
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

/// The shipped config with its sockets, FIFOs, database (and, packaged,
/// its run user) moved to the test's own; every other line as shipped.
pub fn shipped_for_test(rel: &str) -> String {
    let text = std::fs::read_to_string(repo_root().join(rel)).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        let t = line.trim_start();
        // The packaged run user and group need not exist here.
        if t.starts_with("user=") || t.starts_with("group=") || t.contains("\"fifo_group\"") {
            continue;
        }
        let l = if t.starts_with("listen=") {
            "listen=udp:127.0.0.1:@PORT@".to_string()
        } else if t.contains("\"mi_fifo\", \"fifo_name\"") {
            "modparam(\"mi_fifo\", \"fifo_name\", \"@FIFO@\")".to_string()
        } else if t.contains("\"jsonrpcs\", \"fifo_name\"") {
            "modparam(\"jsonrpcs\", \"fifo_name\", \"@RPCFIFO@\")".to_string()
        } else if t.contains("\"siptrace\", \"db_url\"") {
            "modparam(\"siptrace\", \"db_url\", \"sqlite://@DB@\")".to_string()
        } else {
            line.to_string()
        };
        out.push_str(&l);
        out.push('\n');
    }
    for placeholder in ["@PORT@", "@FIFO@", "@RPCFIFO@", "@DB@"] {
        assert!(
            out.contains(placeholder),
            "{rel}: no line for {placeholder}"
        );
    }
    out
}

/// A sipp command with `args`, no stdin and its output kept for a
/// failure message; callers add the address options (`-i`, `-max_socket`).
pub fn sipp(args: &[&str]) -> Command {
    let mut c = Command::new("sipp");
    c.args(args)
        .arg("-nostdin")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Waits (at most two minutes) for a sipp to exit 0: sipp's exit code is
/// non-zero when any call failed. Its output is in the failure message.
pub fn wait_sipp_ok(mut child: Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            assert!(
                st.success(),
                "sipp {what} failed ({st}):\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("sipp {what} did not finish");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The daemon's resident set, from /proc/PID/status.
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status");
    kb * 1024
}

/// MI `core_limits`: bound name → (value, hits).
pub fn core_limits(d: &Daemon) -> std::collections::HashMap<String, (u64, u64)> {
    let name = unique_name("limits");
    let req = format!(":core_limits:{name}\n\n");
    let reply = d
        .mi_raw(&name, req.as_bytes(), Duration::from_secs(5))
        .expect("no reply to core_limits");
    let text = String::from_utf8_lossy(&reply).into_owned();
    assert!(text.starts_with("200 OK\n"), "{text}");
    text.lines()
        .filter_map(|l| {
            let (name, rest) = l.split_once(":: ")?;
            let (value, hits) = rest.split_once(" hits=")?;
            Some((name.to_string(), (value.parse().ok()?, hits.parse().ok()?)))
        })
        .collect()
}
