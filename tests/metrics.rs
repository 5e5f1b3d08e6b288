//! `GET /metrics` through the real daemon (core `metrics_listen`,
//! docs/decisions.md §12): the exposition is valid for Prometheus's own
//! text parser (Debian's python3-prometheus-client, installed by
//! scripts/test), every metric is there and moves as SIP flows, and no
//! HTTP client — stalled, half-sent, or one too many — keeps SIP from being
//! answered.

mod common;
use common::*;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const CFG: &str = r#"#!KAMAILIO
debug=2
listen=udp:127.0.0.1:@PORT@
metrics_listen="127.0.0.1:0"
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "mi_fifo.so"
loadmodule "siptrace.so"
modparam("mi_fifo", "fifo_name", "@FIFO@")
modparam("siptrace", "db_url", "sqlite://@DB@")
modparam("siptrace", "trace_on", 1)
request_route {
    sip_trace();
    sl_send_reply("200", "OK");
}
"#;

/// The daemon's connection bound and deadline (reactor/metrics.rs).
const MAX_CONNS: usize = 16;
const CONN_DEADLINE: Duration = Duration::from_secs(5);

/// Where the daemon serves `/metrics`: port 0 in the config, so the
/// address is read from its start-up line.
fn metrics_addr(d: &Daemon) -> SocketAddr {
    let log = d.log_text();
    let line = log
        .lines()
        .find_map(|l| {
            l.split_once("metrics: serving GET /metrics on ")
                .map(|(_, a)| a)
        })
        .unwrap_or_else(|| panic!("no metrics line in the log:\n{log}"));
    line.trim().parse().unwrap()
}

/// Sends `req` and reads the response to EOF: (head, body).
fn exchange(addr: SocketAddr, req: &[u8]) -> (String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(req).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    // Each header line with its CRLF, so that a test can look for "\r\nName: value\r\n".
    (format!("{head}\r\n"), body.to_string())
}

/// `GET /metrics`, parsed by prometheus_client's parser: sample (with its
/// labels, sorted) → value.
fn scrape(addr: SocketAddr) -> HashMap<String, f64> {
    let (head, body) = exchange(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    parse(&body)
}

const PARSER: &str = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        labels = ",".join('%s="%s"' % kv for kv in sorted(s.labels.items()))
        name = s.name + ("{" + labels + "}" if labels else "")
        print("%s %r" % (name, float(s.value)))
"#;

fn parse(body: &str) -> HashMap<String, f64> {
    // Debian's interpreter, where apt puts python3-prometheus-client (a
    // pyenv or venv python3 first on PATH would not have it).
    let python = if std::path::Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    };
    let mut child = std::process::Command::new(python)
        .args(["-c", PARSER])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Prometheus parser refused the exposition ({}; apt-get install python3-prometheus-client):\n{}\n{body}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

fn options(to: SocketAddr, me: SocketAddr, i: u64) -> Vec<u8> {
    format!(
        "OPTIONS sip:ping@{to} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-m-{i}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:a@x>;tag=f-{i}\r\nTo: <sip:p@x>\r\n\
         Call-ID: metrics-{i}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// One OPTIONS, answered 200 within `within`.
fn ping(d: &Daemon, peer: &Peer, i: u64, within: Duration) {
    let sent = Instant::now();
    peer.send(d.addr(), &options(d.addr(), peer.addr(), i));
    let r = peer
        .try_recv(within)
        .unwrap_or_else(|| panic!("OPTIONS {i} not answered within {within:?}"));
    assert_eq!(first_line(&r), "SIP/2.0 200 OK");
    assert!(sent.elapsed() < within);
}

const EXPECTED: &[&str] = &[
    "siptraced_rows_written_total",
    "siptraced_rows_spooled_total",
    "siptraced_rows_replayed_total",
    "siptraced_rows_dropped_total",
    "siptraced_rows_purged_total",
    "siptraced_msgs_masked_total",
    "siptraced_spool_bytes",
    "siptraced_copies_sent_total",
    "siptraced_copies_dropped_total",
    "siptraced_db_up",
    "siptraced_transactions",
    "siptraced_traced_requests_total",
    "siptraced_traced_replies_total",
    "siptraced_dns_pending",
    "siptraced_parked_requests",
    "siptraced_messages_received_total{transport=\"udp\"}",
    "siptraced_messages_sent_total{transport=\"udp\"}",
    "siptraced_bound_hits_total{bound=\"max_transactions\"}",
    "siptraced_bound_hits_total{bound=\"udp_turn_datagrams\"}",
    "siptraced_bound_hits_total{bound=\"mi_pending_replies\"}",
    "siptraced_reactor_turn_seconds_bucket{le=\"0.0001\"}",
    "siptraced_reactor_turn_seconds_bucket{le=\"1\"}",
    "siptraced_reactor_turn_seconds_bucket{le=\"+Inf\"}",
    "siptraced_reactor_turn_seconds_sum",
    "siptraced_reactor_turn_seconds_count",
    "siptraced_metrics_connections_refused_total",
    "siptraced_metrics_connections_timed_out_total",
];

#[test]
fn every_metric_is_served_and_moves_with_traffic() {
    let d = Daemon::start("metrics-move", CFG);
    let addr = metrics_addr(&d);
    let before = scrape(addr);
    for name in EXPECTED {
        assert!(before.contains_key(*name), "{name} missing: {before:?}");
    }
    assert_eq!(before["siptraced_db_up"], 1.0);
    assert_eq!(before["siptraced_rows_written_total"], 0.0);

    let peer = Peer::new();
    for i in 0..3 {
        ping(&d, &peer, i, Duration::from_secs(5));
    }
    d.wait_rows(3);
    let after = scrape(addr);
    let grew = |name: &str, by: f64| {
        assert!(
            after[name] >= before[name] + by,
            "{name}: {} then {}",
            before[name],
            after[name]
        )
    };
    grew("siptraced_rows_written_total", 3.0);
    grew("siptraced_traced_requests_total", 3.0);
    grew("siptraced_messages_received_total{transport=\"udp\"}", 3.0);
    grew("siptraced_messages_sent_total{transport=\"udp\"}", 3.0);
    // Turns, not messages: one turn may read several datagrams.
    grew("siptraced_reactor_turn_seconds_count", 1.0);

    // The same counter in MI get_statistics, as Kamailio names it.
    let name = format!("st_metrics_{}", std::process::id());
    let req = format!(":get_statistics:{name}\nsiptrace:\n\n");
    let reply = d
        .mi_raw(&name, req.as_bytes(), Duration::from_secs(5))
        .expect("get_statistics answered");
    let text = String::from_utf8_lossy(&reply);
    assert!(text.contains("\nsiptrace:traced_requests = 3\n"), "{text}");
    assert!(text.contains("\nsiptrace:traced_replies = 0\n"), "{text}");
}

#[test]
fn other_paths_and_methods_are_refused() {
    let d = Daemon::start("metrics-404", CFG);
    let addr = metrics_addr(&d);
    let (head, _) = exchange(addr, b"GET / HTTP/1.1\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 404 Not Found\r\n"), "{head}");
    let (head, _) = exchange(addr, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert!(
        head.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nAllow: GET\r\n"), "{head}");
    let (head, body) = exchange(addr, b"GET /metrics HTTP/1.0\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("\r\nConnection: close\r\n"), "{head}");
    assert!(body.contains("siptraced_db_up 1\n"));
    assert_eq!(listening_tcp_sockets(d.pid()), 1);
}

/// Sockets of `pid` in LISTEN state in /proc/net/tcp{,6}.
fn listening_tcp_sockets(pid: u32) -> usize {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect();
    let mut n = 0;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // st 0A is LISTEN; field 9 is the inode.
            if f.get(3) == Some(&"0A") && f.get(9).is_some_and(|i| inodes.iter().any(|x| x == i)) {
                n += 1;
            }
        }
    }
    n
}

#[test]
fn unset_metrics_listen_opens_no_listener() {
    let cfg = CFG.replace("metrics_listen=\"127.0.0.1:0\"\n", "");
    let d = Daemon::start("metrics-off", &cfg);
    assert!(!d.log_text().contains("metrics: serving"));
    assert_eq!(listening_tcp_sockets(d.pid()), 0);
}

/// Clients that connect and send nothing, send half a request, or send a
/// request and never read; then more than the bound. SIP is answered
/// throughout, the stalled ones are closed at their deadline, the extra
/// ones at once, and both are counted.
#[test]
fn stalled_and_excess_clients_do_not_stop_sip() {
    let d = Daemon::start("metrics-stall", CFG);
    let addr = metrics_addr(&d);
    let peer = Peer::new();
    let generous = Duration::from_secs(2);
    let opened = Instant::now();
    // Never read: a whole request, whose response (a few KiB) the
    // daemon writes into the socket buffer and closes, without waiting for
    // this reader.
    let never_read: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
            s
        })
        .collect();
    ping(&d, &peer, 0, generous);
    // Their slots must be free again before the bound is filled below.
    std::thread::sleep(Duration::from_millis(300));
    // Silent, or half a request: they hold every slot until their deadline.
    let mut stalled = Vec::new();
    for i in 0..MAX_CONNS {
        let mut s = TcpStream::connect(addr).unwrap();
        if i % 2 == 1 {
            s.write_all(b"GET /metr").unwrap();
        }
        stalled.push((i, s));
    }
    ping(&d, &peer, 1, generous);

    // Beyond the bound: accepted and closed at once.
    let extra = 3;
    for _ in 0..extra {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut b = [0u8; 16];
        match s.read(&mut b) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("a connection over the bound was not closed at once: {other:?}"),
        }
    }

    // SIP keeps being answered while the stalled ones wait.
    let mut i = 2;
    while opened.elapsed() < CONN_DEADLINE - Duration::from_millis(500) {
        ping(&d, &peer, i, generous);
        i += 1;
        std::thread::sleep(Duration::from_millis(100));
    }

    // At their deadline the silent and half-sent ones are closed.
    for (i, s) in stalled.iter_mut() {
        s.set_read_timeout(Some(CONN_DEADLINE + Duration::from_secs(3)))
            .unwrap();
        let mut b = [0u8; 64];
        match s.read(&mut b) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("stalled connection {i} not closed: {other:?}"),
        }
    }
    assert!(opened.elapsed() >= CONN_DEADLINE - Duration::from_millis(100));
    ping(&d, &peer, i, generous);

    let m = scrape(addr);
    assert!(
        m["siptraced_metrics_connections_refused_total"] >= extra as f64,
        "{m:?}"
    );
    assert!(
        m["siptraced_metrics_connections_timed_out_total"] >= MAX_CONNS as f64,
        "{m:?}"
    );
    drop(never_read);
}
