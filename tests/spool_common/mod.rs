//! Helpers for the spool tests (tests/spool_*.rs): fresh PostgreSQL and
//! MariaDB databases made with scripts/siptraced-dbinit and read back with
//! the psql/mysql clients, `sip_trace_stats` through the real kamctl, a TCP
//! gate that cuts the path to a database server on demand, and the row
//! checks (every row once, in event order).
#![allow(dead_code)]

use crate::common::{Daemon, repo_root};
use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// One stored row, as the checks need it (msg as its MD5).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DbRow {
    pub id: i64,
    pub callid: String,
    pub method: String,
    pub status: String,
    pub direction: String,
    pub time_stamp: String,
    pub time_us: i64,
    pub msg_md5: String,
}

impl DbRow {
    /// Everything but the id: two rows equal here are the same event
    /// stored twice.
    pub fn content(&self) -> (String, String, String, String, String, i64, String) {
        (
            self.callid.clone(),
            self.method.clone(),
            self.status.clone(),
            self.direction.clone(),
            self.time_stamp.clone(),
            self.time_us,
            self.msg_md5.clone(),
        )
    }
}

fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// Run a command; panic with its output when it fails.
#[track_caller]
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Which server a test database lives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    Postgres,
    Mariadb,
}

/// The server's port: 5432 / 3306, or SIPTRACED_TEST_PG_PORT /
/// SIPTRACED_TEST_MY_PORT (a private server, e.g. to run spool_faults.rs on
/// a machine where others use the shared ones).
pub fn server_port(server: Server) -> u16 {
    let (var, default) = match server {
        Server::Postgres => ("SIPTRACED_TEST_PG_PORT", 5432),
        Server::Mariadb => ("SIPTRACED_TEST_MY_PORT", 3306),
    };
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A fresh database with the v4 schema (and the marker table) made by
/// scripts/siptraced-dbinit; dropped on drop.
pub struct SpoolDb {
    pub server: Server,
    pub name: String,
    /// The server's port (5432 / 3306) unless a gate is put in between.
    pub port: u16,
}

const FIELDS: &str = "id, callid, method, status, direction, time_stamp, time_us";

impl SpoolDb {
    pub fn new(server: Server) -> SpoolDb {
        let db = SpoolDb {
            server,
            name: unique("st_spool"),
            port: server_port(server),
        };
        run(Command::new(repo_root().join("scripts/siptraced-dbinit")).arg(db.url()));
        db
    }

    /// The db_url for the daemon, through `port` (a gate or the server).
    pub fn url_via(&self, port: u16) -> String {
        match self.server {
            Server::Postgres => format!("postgres://postgres@127.0.0.1:{port}/{}", self.name),
            Server::Mariadb => format!("mysql://root@127.0.0.1:{port}/{}", self.name),
        }
    }

    pub fn url(&self) -> String {
        self.url_via(self.port)
    }

    /// Run SQL in this database; returns the output, one line per row,
    /// fields separated by \x1f.
    pub fn sql(&self, sql: &str) -> String {
        match self.server {
            Server::Postgres => run(Command::new("psql")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "postgres",
                ])
                .args([
                    "-X",
                    "-q",
                    "-A",
                    "-t",
                    "-F",
                    "\u{1f}",
                    "-v",
                    "ON_ERROR_STOP=1",
                ])
                .args(["-d", &self.name, "-c", sql])),
            Server::Mariadb => run(Command::new("mysql")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-P",
                    &self.port.to_string(),
                    "-uroot",
                    "-N",
                    "-B",
                ])
                .args([&self.name, "-e", sql])),
        }
    }

    pub fn rows(&self) -> Vec<DbRow> {
        let md5 = match self.server {
            Server::Postgres => "md5(msg)",
            Server::Mariadb => "MD5(msg)",
        };
        let sep = match self.server {
            Server::Postgres => '\u{1f}',
            Server::Mariadb => '\t',
        };
        self.sql(&format!(
            "SELECT {FIELDS}, {md5} FROM sip_trace ORDER BY id"
        ))
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(sep).collect();
            assert_eq!(f.len(), 8, "row line {l:?}");
            DbRow {
                id: f[0].parse().unwrap(),
                callid: f[1].into(),
                method: f[2].into(),
                status: f[3].into(),
                direction: f[4].into(),
                time_stamp: f[5].into(),
                time_us: f[6].parse().unwrap(),
                msg_md5: f[7].into(),
            }
        })
        .collect()
    }

    pub fn count(&self) -> usize {
        self.sql("SELECT count(*) FROM sip_trace")
            .trim()
            .parse()
            .unwrap()
    }
}

impl Drop for SpoolDb {
    fn drop(&mut self) {
        let r = match self.server {
            Server::Postgres => Command::new("psql")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "postgres",
                ])
                .args(["-X", "-q", "-d", "postgres"])
                .arg("-c")
                .arg(format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ))
                .output(),
            Server::Mariadb => Command::new("mysql")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-P",
                    &self.port.to_string(),
                    "-uroot",
                    "-e",
                ])
                .arg(format!("DROP DATABASE IF EXISTS {}", self.name))
                .output(),
        };
        if !matches!(&r, Ok(o) if o.status.success()) {
            eprintln!("could not drop test database {}: {r:?}", self.name);
        }
    }
}

/// `sip_trace_stats` through the MI FIFO (as kamctl speaks it, via
/// common::fifo_exchange): name → value.
pub fn stats(d: &Daemon) -> HashMap<String, String> {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "st_spool_stats_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    );
    let req = format!(":sip_trace_stats:{name}\n\n");
    let reply = d
        .mi_raw(&name, req.as_bytes(), Duration::from_secs(5))
        .expect("a sip_trace_stats reply");
    let text = String::from_utf8_lossy(&reply).into_owned();
    assert!(text.starts_with("200 OK\n"), "sip_trace_stats: {text}");
    text.lines()
        .filter_map(|l| l.split_once(":: "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn stat(s: &HashMap<String, String>, name: &str) -> u64 {
    s.get(name)
        .unwrap_or_else(|| panic!("no {name} in {s:?}"))
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not a number in {s:?}"))
}

/// Poll `cond` until it holds; panics with `what` after `limit`.
#[track_caller]
pub fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every row once, in event order: ids ascending give non-decreasing
/// (time_stamp, time_us) — the reactor stamps rows in the order it sees
/// the events — and no two rows have the same content and time.
#[track_caller]
pub fn check_once_in_order(rows: &[DbRow]) {
    let mut seen = HashSet::new();
    for r in rows {
        assert!(
            seen.insert(r.content()),
            "row stored twice: {r:?} (id {})",
            r.id
        );
    }
    for w in rows.windows(2) {
        assert!(w[0].id < w[1].id);
        assert!(
            (&w[0].time_stamp, w[0].time_us) <= (&w[1].time_stamp, w[1].time_us),
            "out of event order: {:?} then {:?}",
            w[0],
            w[1]
        );
    }
}

/// A TCP gate between the daemon and a database server: forwards while
/// open; `close` resets every connection and refuses new ones (a server
/// gone from the network, as the daemon sees it), `open` lets them in
/// again on the same port; `trickle` passes the server's bytes on one
/// every 100 ms (a server that answers, but too slowly to ever finish).
pub struct Gate {
    pub port: u16,
    target: SocketAddr,
    open: Arc<AtomicBool>,
    trickle: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    acceptor: Option<std::thread::JoinHandle<()>>,
}

impl Gate {
    pub fn new(target_port: u16) -> Gate {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut g = Gate {
            port,
            target: SocketAddr::from(([127, 0, 0, 1], target_port)),
            open: Arc::new(AtomicBool::new(false)),
            trickle: Arc::new(AtomicBool::new(false)),
            conns: Arc::new(Mutex::new(Vec::new())),
            acceptor: None,
        };
        g.open();
        g
    }

    pub fn open(&mut self) {
        if self.open.swap(true, Ordering::SeqCst) {
            return;
        }
        let listener = TcpListener::bind(("127.0.0.1", self.port)).expect("rebind gate port");
        listener.set_nonblocking(true).unwrap();
        let (open, conns, target) = (self.open.clone(), self.conns.clone(), self.target);
        let trickle = self.trickle.clone();
        self.acceptor = Some(std::thread::spawn(move || {
            while open.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let Ok(server) = TcpStream::connect(target) else {
                            continue;
                        };
                        let mut list = conns.lock().unwrap();
                        list.push(client.try_clone().unwrap());
                        list.push(server.try_clone().unwrap());
                        pipe(
                            client.try_clone().unwrap(),
                            server.try_clone().unwrap(),
                            None,
                        );
                        pipe(server, client, Some(trickle.clone()));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            // Dropping the listener: new connections are refused.
        }));
    }

    /// Server bytes one every 100 ms from now on (`false`: at full speed).
    pub fn trickle(&self, on: bool) {
        self.trickle.store(on, Ordering::SeqCst);
    }

    pub fn close(&mut self) {
        self.open.store(false, Ordering::SeqCst);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.close();
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream, trickle: Option<Arc<AtomicBool>>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16384];
        let slow = || trickle.as_ref().is_some_and(|t| t.load(Ordering::SeqCst));
        'copy: loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) if slow() => {
                    for b in &buf[..n] {
                        std::thread::sleep(Duration::from_millis(100));
                        if to.write_all(std::slice::from_ref(b)).is_err() {
                            break 'copy;
                        }
                    }
                }
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}

/// A TCP port with nothing listening (connection refused).
pub fn dead_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Replace the db_url line of a daemon's config (for its next start).
pub fn set_db_url(d: &Daemon, url: &str) {
    let cfg = std::fs::read_to_string(&d.cfg).unwrap();
    let out: Vec<String> = cfg
        .lines()
        .map(|l| {
            if l.contains("\"db_url\"") {
                format!("modparam(\"siptrace\", \"db_url\", \"{url}\")")
            } else {
                l.to_string()
            }
        })
        .collect();
    std::fs::write(&d.cfg, out.join("\n") + "\n").unwrap();
}

/// An OPTIONS request with a Call-ID naming `n`.
pub fn options(n: usize, from_port: u16, body: usize) -> Vec<u8> {
    let b = "x".repeat(body);
    format!(
        "OPTIONS sip:probe@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{from_port};branch=z9hG4bK-sp{n}\r\n\
         From: <sip:t@127.0.0.1>;tag=f{n}\r\n\
         To: <sip:probe@127.0.0.1>\r\n\
         Call-ID: spool-{n:06}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Max-Forwards: 70\r\n\
         Content-Type: text/plain\r\n\
         Content-Length: {}\r\n\r\n{b}",
        b.len()
    )
    .into_bytes()
}

/// SIP round trips to the daemon every 20 ms: an OPTIONS answered by the
/// script, so the time includes whatever the
/// reactor was blocked on (DB writes, spool appends, reconnect tries).
pub struct Prober {
    stop: Arc<AtomicBool>,
    results: mpsc::Receiver<Vec<(Instant, Duration)>>,
}

impl Prober {
    pub fn start(to: std::net::SocketAddr) -> Prober {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, results) = mpsc::channel();
        let flag = stop.clone();
        std::thread::spawn(move || {
            let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
            sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let port = sock.local_addr().unwrap().port();
            let mut samples = Vec::new();
            let mut buf = vec![0u8; 65535];
            let mut n = 0usize;
            while !flag.load(Ordering::SeqCst) {
                n += 1;
                let req = options(1_000_000 + n, port, 0);
                let sent = Instant::now();
                sock.send_to(&req, to).unwrap();
                // Wait for this probe's answer (drop late ones).
                let want = format!("spool-{:06}", 1_000_000 + n);
                let rtt = loop {
                    match sock.recv_from(&mut buf) {
                        Ok((len, _)) if String::from_utf8_lossy(&buf[..len]).contains(&want) => {
                            break sent.elapsed();
                        }
                        Ok(_) => continue,
                        Err(_) => break Duration::from_secs(2),
                    }
                };
                samples.push((sent, rtt));
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = tx.send(samples);
        });
        Prober { stop, results }
    }

    pub fn finish(self) -> Vec<(Instant, Duration)> {
        self.stop.store(true, Ordering::SeqCst);
        self.results.recv().unwrap()
    }
}

/// The longest round trip among probes sent within [from, to].
pub fn worst(samples: &[(Instant, Duration)], from: Instant, to: Instant) -> Duration {
    samples
        .iter()
        .filter(|(t, _)| *t >= from && *t <= to)
        .map(|(_, rtt)| *rtt)
        .max()
        .unwrap_or_default()
}

/// A database "server" that accepts TCP connections and never answers
/// (a stopped process, a black hole behind a NAT).
pub struct Silent {
    pub port: u16,
    _held: Arc<Mutex<Vec<TcpStream>>>,
}

impl Silent {
    pub fn new() -> Silent {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let held = Arc::new(Mutex::new(Vec::new()));
        let keep = held.clone();
        std::thread::spawn(move || {
            for c in l.incoming().flatten() {
                keep.lock().unwrap().push(c);
            }
        });
        Silent { port, _held: held }
    }
}
