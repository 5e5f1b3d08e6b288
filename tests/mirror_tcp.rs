//! HEPv3 over TCP (`duplicate_uri=sip:…;transport=tcp`) to a capture node
//! that goes away, comes back, or stops reading: SIP calls keep completing,
//! copies that cannot be kept are dropped and counted, and delivery resumes
//! on the new connection.

mod common;
use common::*;
use std::io::Read;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const CFG: &str = r#"#!KAMAILIO
listen=udp:127.0.0.1:@PORT@
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "rr.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "mi_fifo.so"
loadmodule "siptrace.so"
modparam("mi_fifo", "fifo_name", "@FIFO@")
modparam("siptrace", "db_url", "sqlite://@DB@")
modparam("siptrace", "trace_on", 1)
modparam("siptrace", "trace_flag", 22)
modparam("siptrace", "hep_mode_on", 1)
modparam("siptrace", "hep_version", 3)
modparam("siptrace", "duplicate_uri", "sip:@NODE@;transport=tcp")
modparam("siptrace", "mirror_tcp_queue_kb", @QUEUE_KB@)
@SIPTRACE@

request_route {
    if ($hdr(X-Trace) =~ "script") {
        sip_trace();
    }
    if ($hdr(X-Trace) =~ "tcpuri") {
        sip_trace("@SCRIPT_URI@");
    }
    if ($hdr(X-Trace) =~ "flag") {
        setflag(22);
    }
    if (is_method("OPTIONS")) {
        sl_send_reply("200", "Alive");
        exit;
    }
    if (is_method("INVITE")) {
        record_route();
    }
    if (has_totag() && loose_route()) {
        forward();
        exit;
    }
    forward("127.0.0.1", @UAS_PORT@);
}
"#;

fn start(tag: &str, uas: &Peer, node: SocketAddr, queue_kb: u32, extra: &str) -> Daemon {
    start_with_uri(tag, uas, node, queue_kb, extra, "")
}

fn start_with_uri(
    tag: &str,
    uas: &Peer,
    node: SocketAddr,
    queue_kb: u32,
    extra: &str,
    script_uri: &str,
) -> Daemon {
    let cfg = CFG
        .replace("@SCRIPT_URI@", script_uri)
        .replace("@NODE@", &node.to_string())
        .replace("@QUEUE_KB@", &queue_kb.to_string())
        .replace("@SIPTRACE@", extra)
        .replace("@UAS_PORT@", &uas.port().to_string());
    Daemon::start(tag, &cfg)
}

enum Got {
    Accepted,
    Frame(Vec<u8>),
}

/// A capture node that accepts one connection, then closes its listening
/// socket (so later connects are refused) and reads HEPv3 packets, split
/// by their length field, until the connection ends.
struct Node {
    rx: Receiver<Got>,
    conn: Arc<Mutex<Option<TcpStream>>>,
    thread: Option<JoinHandle<()>>,
}

impl Node {
    fn start(listener: TcpListener) -> Node {
        let (tx, rx) = mpsc::channel();
        let conn = Arc::new(Mutex::new(None));
        let shared = conn.clone();
        let thread = std::thread::spawn(move || {
            let Ok((mut s, _)) = listener.accept() else {
                return;
            };
            drop(listener);
            *shared.lock().unwrap() = Some(s.try_clone().unwrap());
            let _ = tx.send(Got::Accepted);
            loop {
                let mut head = [0u8; 6];
                if s.read_exact(&mut head).is_err() {
                    return;
                }
                assert_eq!(&head[..4], b"HEP3", "stream out of step");
                let len = u16::from_be_bytes([head[4], head[5]]) as usize;
                let mut p = head.to_vec();
                p.resize(len, 0);
                if s.read_exact(&mut p[6..]).is_err() {
                    return;
                }
                if tx.send(Got::Frame(p)).is_err() {
                    return;
                }
            }
        });
        Node {
            rx,
            conn,
            thread: Some(thread),
        }
    }

    fn wait_accepted(&self) {
        match self.rx.recv_timeout(Duration::from_secs(15)) {
            Ok(Got::Accepted) => {}
            Ok(Got::Frame(_)) => panic!("frame before accept"),
            Err(e) => panic!("the daemon did not connect: {e}"),
        }
    }

    /// The next `n` packets (each within 10 s).
    fn frames(&self, n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| match self.rx.recv_timeout(Duration::from_secs(10)) {
                Ok(Got::Frame(p)) => p,
                Ok(Got::Accepted) => panic!("second accept"),
                Err(e) => panic!("packet {i} of {n} did not arrive: {e}"),
            })
            .collect()
    }

    fn nothing_more(&self) -> bool {
        matches!(
            self.rx.recv_timeout(Duration::from_millis(300)),
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected)
        )
    }

    /// The node goes away: the connection is closed under the daemon.
    fn stop(mut self) {
        if let Some(c) = self.conn.lock().unwrap().take() {
            let _ = c.shutdown(Shutdown::Both);
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

/// The SIP message inside a HEPv3 packet (chunk 0x000f).
fn payload(p: &[u8]) -> Vec<u8> {
    let mut pos = 6;
    while pos + 6 <= p.len() {
        let ty = u16::from_be_bytes([p[pos + 2], p[pos + 3]]);
        let len = u16::from_be_bytes([p[pos + 4], p[pos + 5]]) as usize;
        assert!(len >= 6 && pos + len <= p.len(), "bad chunk at {pos}");
        if ty == 0x000f {
            return p[pos + 6..pos + len].to_vec();
        }
        pos += len;
    }
    panic!("no payload chunk");
}

fn msgs_of(rows: &[TraceRow], call_ids: &[&str]) -> Vec<Vec<u8>> {
    rows.iter()
        .filter(|r| call_ids.contains(&r.callid.as_str()))
        .map(|r| r.msg.clone())
        .collect()
}

/// Until the daemon's log (RUST_LOG=debug in tests) has `needle`.
fn wait_log(d: &Daemon, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !d.log_text().contains(needle) {
        assert!(
            Instant::now() < deadline,
            "no '{needle}' in:\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `sip_trace_stats` until `done(sent, dropped)` (or 15 s pass).
fn wait_copies(d: &Daemon, mut done: impl FnMut(u64, u64) -> bool) -> (u64, u64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (s, dr) = (d.trace_stat("copies_sent"), d.trace_stat("copies_dropped"));
        if done(s, dr) || Instant::now() > deadline {
            return (s, dr);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_node_that_goes_away_and_comes_back() {
    let (uac, uas) = (Peer::new(), Peer::new());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let node_addr = listener.local_addr().unwrap();
    let node = Node::start(listener);
    // 1 KiB: room for one copy while the node is away.
    let mut d = start("mirror-tcp", &uas, node_addr, 1, "");
    // duplicate_uri is connected at start-up, not on the first copy.
    node.wait_accepted();
    wait_log(&d, &format!("capture connection to tcp:{node_addr} is up"));

    sip_call(&uac, &uas, d.addr(), "tcp-1", "script,flag");
    let got: Vec<Vec<u8>> = node.frames(10).iter().map(|p| payload(p)).collect();
    let rows = d.wait_rows(10);
    assert_eq!(
        got,
        msgs_of(&rows, &["tcp-1"]),
        "HEP payloads = stored msgs, in order"
    );
    assert_eq!(wait_copies(&d, |s, _| s == 10), (10, 0));

    // The node goes away: calls go on; copies beyond the queue are dropped.
    node.stop();
    let away = ["tcp-2", "tcp-3", "tcp-4", "tcp-5", "tcp-6"];
    for id in away {
        sip_call(&uac, &uas, d.addr(), id, "script,flag");
    }
    let rows = d.wait_rows(60);
    assert_eq!(rows.len(), 60, "every call completed and was stored");
    let (sent_away, dropped) = (d.trace_stat("copies_sent"), d.trace_stat("copies_dropped"));
    assert!(dropped > 0, "the 1 KiB queue cannot hold 50 copies");
    assert!(sent_away + dropped < 60, "one copy waits in the queue");

    // The node comes back on the same port: the daemon reconnects (backoff
    // at most 5 s) and delivers what it kept, whole, in order.
    let node = Node::start(TcpListener::bind(node_addr).unwrap());
    node.wait_accepted();
    let (sent, dropped) = wait_copies(&d, |s, dr| s + dr == 60);
    assert_eq!(sent + dropped, 60, "the queue drained");
    let kept: Vec<Vec<u8>> = node
        .frames((sent - sent_away) as usize)
        .iter()
        .map(|p| payload(p))
        .collect();
    assert!(!kept.is_empty());
    eprintln!(
        "node away for 50 copies: {} sent before it left, {dropped} dropped, {} kept and delivered on reconnect",
        sent_away,
        kept.len()
    );
    let away_msgs = msgs_of(&rows, &away);
    let mut it = away_msgs.iter();
    for k in &kept {
        assert!(
            it.any(|m| m == k),
            "kept copies are stored messages, in order: {}",
            String::from_utf8_lossy(k)
        );
    }

    // Delivery resumes for new traffic.
    sip_call(&uac, &uas, d.addr(), "tcp-7", "script,flag");
    let got: Vec<Vec<u8>> = node.frames(10).iter().map(|p| payload(p)).collect();
    let rows = d.wait_rows(70);
    assert_eq!(got, msgs_of(&rows, &["tcp-7"]));
    assert!(node.nothing_more());
    let (sent2, dropped2) = wait_copies(&d, |s, _| s == sent + 10);
    assert_eq!((sent2, dropped2), (sent + 10, dropped));
    assert_eq!(d.stop(), Some(0));
    node.stop();
}

#[test]
fn a_node_that_stops_reading_never_stalls_sip() {
    let uas = Peer::new();
    let uac = Peer::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let node_addr = listener.local_addr().unwrap();
    // Accepts and never reads: the kernel buffers fill, then the daemon's
    // queue (64 KiB), then copies are dropped.
    let accepted = std::thread::spawn(move || listener.accept().map(|(s, _)| s));
    let mut d = start(
        "mirror-tcp-stuck",
        &uas,
        node_addr,
        64,
        "modparam(\"siptrace\", \"trace_to_database\", 0)",
    );
    let pad = "x".repeat(30_000);
    let proxy = d.addr();
    let mut answered = 0;
    for i in 0..5000 {
        let req = format!(
            "OPTIONS sip:ping@{proxy} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK-s{i}\r\n\
             From: <sip:a@x>;tag=s{i}\r\nTo: <sip:p@x>\r\nCall-ID: stuck-{i}\r\nCSeq: 1 OPTIONS\r\n\
             X-Trace: script\r\nX-Pad: {pad}\r\nContent-Length: 0\r\n\r\n",
            uac.addr()
        );
        uac.send(proxy, req.as_bytes());
        let (r, _) = uac.recv();
        assert_eq!(first_line(&r), "SIP/2.0 200 Alive");
        answered += 1;
        if i % 50 == 49 && d.trace_stat("copies_dropped") > 0 {
            break;
        }
    }
    let dropped = d.trace_stat("copies_dropped");
    assert!(dropped > 0, "no drop after {answered} padded OPTIONS");
    eprintln!(
        "stuck node: first drops after {answered} OPTIONS of 30 kB ({} copies sent, {dropped} dropped)",
        d.trace_stat("copies_sent")
    );
    // Still answering at once while the node stays stuck.
    sip_call(&uac, &uas, proxy, "after-stuck", "");
    assert!(d.is_running());
    assert_eq!(d.stop(), Some(0));
    drop(accepted.join().unwrap());
}

#[test]
fn sip_trace_uri_with_transport_tcp_opens_its_own_connection() {
    let (uac, uas) = (Peer::new(), Peer::new());
    let global = TcpListener::bind("127.0.0.1:0").unwrap();
    let global_addr = global.local_addr().unwrap();
    let global = Node::start(global);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let script_uri = format!("sip:{};transport=tcp", listener.local_addr().unwrap());
    let script = Node::start(listener);
    let mut d = start_with_uri("mirror-tcp-uri", &uas, global_addr, 4096, "", &script_uri);
    global.wait_accepted();
    sip_call(&uac, &uas, d.addr(), "tcpuri-1", "tcpuri");
    // Connected on the first copy; the copies wait in the queue meanwhile.
    script.wait_accepted();
    let got: Vec<Vec<u8>> = script.frames(3).iter().map(|p| payload(p)).collect();
    let rows = d.wait_rows(3);
    assert_eq!(got, msgs_of(&rows, &["tcpuri-1"]));
    assert!(
        global.nothing_more(),
        "sip_trace(uri) replaces duplicate_uri"
    );
    assert_eq!(wait_copies(&d, |s, _| s == 3), (3, 0));
    assert_eq!(d.stop(), Some(0));
    script.stop();
    global.stop();
}

/// A listening socket whose accept queue holds one connection (backlog 0):
/// once `filler` is in it, the kernel drops further SYNs, so a connect to
/// it hangs as it would to a black-holed capture node.
fn full_listener() -> (TcpListener, TcpStream) {
    use nix::sys::socket::{
        AddressFamily, Backlog, SockFlag, SockType, SockaddrIn, bind, listen, socket,
    };
    use std::os::fd::AsRawFd;
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    bind(
        fd.as_raw_fd(),
        &SockaddrIn::from("127.0.0.1:0".parse::<std::net::SocketAddrV4>().unwrap()),
    )
    .unwrap();
    listen(&fd, Backlog::new(0).unwrap()).unwrap();
    let listener = TcpListener::from(fd);
    let filler = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    (listener, filler)
}

#[test]
fn a_node_that_never_answers_the_connect_never_stalls_sip() {
    let (uac, uas) = (Peer::new(), Peer::new());
    let (listener, filler) = full_listener();
    let node_addr = listener.local_addr().unwrap();
    let mut d = start("mirror-tcp-hang", &uas, node_addr, 64, "");
    // The connect stays unanswered: calls complete meanwhile.
    for i in 0..3 {
        sip_call(&uac, &uas, d.addr(), &format!("hang-{i}"), "script,flag");
    }
    assert_eq!(d.wait_rows(30).len(), 30);
    // After the connect timeout (3 s) the daemon gives up and retries.
    wait_log(
        &d,
        &format!("capture connection to tcp:{node_addr}: connect timed out"),
    );
    // The node wakes up: it takes the filler off its queue, then the
    // daemon's next attempt is accepted and the kept copies arrive.
    let (filler_peer, _) = listener.accept().unwrap();
    drop((filler, filler_peer));
    let node = Node::start(listener);
    node.wait_accepted();
    let (sent, dropped) = wait_copies(&d, |s, dr| s + dr == 30);
    assert_eq!(sent + dropped, 30);
    let got: Vec<Vec<u8>> = node
        .frames(sent as usize)
        .iter()
        .map(|p| payload(p))
        .collect();
    let rows = d.rows();
    let all = msgs_of(&rows, &["hang-0", "hang-1", "hang-2"]);
    let mut it = all.iter();
    assert!(
        got.iter().all(|g| it.any(|m| m == g)),
        "kept copies, in order"
    );
    eprintln!(
        "node silent for 3 s: {sent} copies kept and delivered, {dropped} dropped (64 KiB queue)"
    );
    assert_eq!(d.stop(), Some(0));
    node.stop();
}
