//! DNS off the reactor thread (issue 12 items 1 and 3), through the real
//! daemon. The daemon is pointed at name servers on loopback with the
//! siptraced global `dns_servers` (docs/decisions.md §10): nothing leaves
//! the machine.

mod common;
use common::*;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const CFG: &str = r#"#!KAMAILIO
listen=udp:127.0.0.1:@PORT@
dns_servers="@DNS@"
dns_retr_time=1
dns_retr_no=2
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "textops.so"
loadmodule "mi_fifo.so"
loadmodule "siptrace.so"
modparam("mi_fifo", "fifo_name", "@FIFO@")
modparam("siptrace", "db_url", "sqlite://@DB@")
modparam("siptrace", "trace_on", 1)
modparam("siptrace", "trace_flag", 22)

request_route {
    if (is_method("OPTIONS")) {
        sl_send_reply("200", "OK");
        exit;
    }
    setflag(22);
    if ($hdr(X-Mode) =~ "stateful") {
        t_relay();
        exit;
    }
    forward();
}
"#;

/// A UDP "name server" that reads every query and never answers.
struct Blackhole {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    queries: Arc<std::sync::atomic::AtomicUsize>,
}

impl Blackhole {
    fn start() -> Blackhole {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let queries = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (s, q) = (stop.clone(), queries.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !s.load(Ordering::Relaxed) {
                if sock.recv_from(&mut buf).is_ok() {
                    q.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        Blackhole {
            addr,
            stop,
            queries,
        }
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A tiny authoritative responder for `example.test`: SRV
/// `_sip._udp.example.test` → `uas.example.test:<srv_port>`, A
/// `uas.example.test` → 127.0.0.1, NODATA for other types of known
/// names, NXDOMAIN for everything else. DNS wire format by hand
/// (RFC 1035 §4.1, RFC 2782).
struct Responder {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

fn qname(buf: &[u8]) -> Option<(String, usize)> {
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let n = *buf.get(i)? as usize;
        i += 1;
        if n == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(buf.get(i..i + n)?).to_ascii_lowercase());
        i += n;
    }
    Some((labels.join("."), i))
}

fn labels(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for l in name.split('.') {
        out.push(l.len() as u8);
        out.extend_from_slice(l.as_bytes());
    }
    out.push(0);
    out
}

fn answer(query: &[u8], srv_port: u16) -> Option<Vec<u8>> {
    let (name, end) = qname(query)?;
    let qtype = u16::from_be_bytes([*query.get(end)?, *query.get(end + 1)?]);
    let question = &query[12..end + 4];
    let known = [
        "_sip._udp.example.test",
        "uas.example.test",
        "example.test",
        "naptr.test",
        "_sip._udp.srv2.test",
    ];
    let mut rdata: Option<(u16, Vec<u8>)> = None;
    match (name.as_str(), qtype) {
        ("_sip._udp.example.test", 33) => {
            let mut d = Vec::new();
            d.extend_from_slice(&0u16.to_be_bytes()); // priority
            d.extend_from_slice(&10u16.to_be_bytes()); // weight
            d.extend_from_slice(&srv_port.to_be_bytes());
            d.extend_from_slice(&labels("uas.example.test"));
            rdata = Some((33, d));
        }
        ("uas.example.test", 1) => rdata = Some((1, vec![127, 0, 0, 1])),
        // RFC 3263 §4.1: a NAPTR naming the SRV name for UDP.
        ("naptr.test", 35) => {
            let mut d = Vec::new();
            d.extend_from_slice(&20u16.to_be_bytes()); // order
            d.extend_from_slice(&10u16.to_be_bytes()); // preference
            d.push(1);
            d.push(b's');
            d.push(7);
            d.extend_from_slice(b"SIP+D2U");
            d.push(0); // no regexp
            d.extend_from_slice(&labels("_sip._udp.srv2.test"));
            rdata = Some((35, d));
        }
        ("_sip._udp.srv2.test", 33) => {
            let mut d = Vec::new();
            d.extend_from_slice(&0u16.to_be_bytes());
            d.extend_from_slice(&0u16.to_be_bytes());
            d.extend_from_slice(&srv_port.to_be_bytes());
            d.extend_from_slice(&labels("uas.example.test"));
            rdata = Some((33, d));
        }
        _ => {}
    }
    let rcode = if rdata.is_some() || known.contains(&name.as_str()) {
        0
    } else {
        3
    };
    let mut out = Vec::new();
    out.extend_from_slice(&query[0..2]); // id
    out.push(0x84 | (query[2] & 0x01)); // QR, AA, RD copied
    out.push(0x80 | rcode); // RA
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&(rdata.is_some() as u16).to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(question);
    if let Some((t, d)) = rdata {
        out.extend_from_slice(&[0xc0, 0x0c]); // the question's name
        out.extend_from_slice(&t.to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes());
        out.extend_from_slice(&60u32.to_be_bytes());
        out.extend_from_slice(&(d.len() as u16).to_be_bytes());
        out.extend_from_slice(&d);
    }
    Some(out)
}

impl Responder {
    fn start(srv_port: u16) -> Responder {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !s.load(Ordering::Relaxed) {
                if let Ok((n, from)) = sock.recv_from(&mut buf) {
                    if let Some(a) = answer(&buf[..n], srv_port) {
                        let _ = sock.send_to(&a, from);
                    }
                }
            }
        });
        Responder { addr, stop }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn request(method: &str, ruri: &str, uac: SocketAddr, call_id: &str, mode: &str) -> Vec<u8> {
    format!(
        "{method} {ruri} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {uac};branch=z9hG4bK-{call_id};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@{uac}>;tag=ft-{call_id}\r\n\
         To: <{ruri}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 {method}\r\n\
         Contact: <sip:alice@{uac}>\r\n\
         X-Mode: {mode}\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn status(msg: &[u8]) -> Option<u16> {
    let l = first_line(msg);
    l.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
}

/// The next datagram of call `call` (retransmissions of others skipped).
#[track_caller]
fn recv_call(p: &Peer, call: &str) -> (Vec<u8>, SocketAddr) {
    loop {
        let (m, from) = p.recv();
        if header(&m, "Call-ID").as_deref() == Some(call) {
            return (m, from);
        }
    }
}

fn start(tag: &str, dns: SocketAddr) -> Daemon {
    Daemon::start(tag, &CFG.replace("@DNS@", &dns.to_string()))
}

/// With `dns_try_naptr=1`, NAPTR comes first (RFC 3263 §4.1): `naptr.test`
/// has no SRV of its own, its NAPTR names `_sip._udp.srv2.test`.
#[test]
fn naptr_names_the_srv_record() {
    let uas = Peer::new();
    let ns = Responder::start(uas.port());
    let cfg = CFG
        .replace("@DNS@", &ns.addr.to_string())
        .replace("dns_retr_no=2", "dns_retr_no=2\ndns_try_naptr=1");
    let d = Daemon::start("dns-naptr", &cfg);
    let uac = Peer::new();
    uac.send(
        d.addr(),
        &request(
            "MESSAGE",
            "sip:bob@naptr.test",
            uac.addr(),
            "naptr-1",
            "stateless",
        ),
    );
    let (m, _) = recv_call(&uas, "naptr-1");
    assert!(first_line(&m).starts_with("MESSAGE sip:bob@naptr.test"));
}

/// 20 requests to names a silent server is asked about are parked; OPTIONS
/// answered by the script keep being answered meanwhile; at the deadline
/// (dns_retr_time × dns_retr_no = 2 s here) each parked request gets 478,
/// traced.
#[test]
fn silent_name_server_does_not_stop_the_proxy() {
    let ns = Blackhole::start();
    let d = start("dns-silent", ns.addr);
    let uac = Peer::new();
    let t0 = Instant::now();
    for i in 0..20 {
        let mode = if i % 2 == 0 { "stateless" } else { "stateful" };
        let method = if i % 2 == 0 { "MESSAGE" } else { "INVITE" };
        let ruri = format!("sip:bob@h{i}.nowhere.test:5060");
        uac.send(
            d.addr(),
            &request(method, &ruri, uac.addr(), &format!("parked-{i}"), mode),
        );
    }
    // While they wait: OPTIONS, each answered within 1 s.
    let mut early_finals = Vec::new();
    for i in 0..10 {
        let sent = Instant::now();
        uac.send(
            d.addr(),
            &request(
                "OPTIONS",
                "sip:ping@127.0.0.1",
                uac.addr(),
                &format!("ping-{i}"),
                "",
            ),
        );
        loop {
            let left = Duration::from_secs(1).saturating_sub(sent.elapsed());
            let Some(m) = uac.try_recv(left) else {
                panic!(
                    "OPTIONS {i} not answered within 1 s while lookups hang:\n{}",
                    d.log_text()
                );
            };
            if header(&m, "Call-ID").as_deref() == Some(&format!("ping-{i}")) {
                assert_eq!(status(&m), Some(200));
                break;
            }
            // 100 Trying of the parked INVITEs; nothing final yet.
            if status(&m).is_some_and(|c| c >= 200) {
                early_finals.push(m);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(t0.elapsed() < Duration::from_millis(1900));
    assert!(
        early_finals.is_empty(),
        "final replies before the deadline: {:?}",
        early_finals
            .iter()
            .map(|m| first_line(m))
            .collect::<Vec<_>>()
    );
    assert!(
        ns.queries.load(Ordering::Relaxed) >= 20,
        "the server was asked"
    );
    // The deadline: each parked request gets its 478.
    let mut got = std::collections::BTreeSet::new();
    let until = Instant::now() + Duration::from_secs(6);
    while got.len() < 20 && Instant::now() < until {
        if let Some(m) = uac.try_recv(Duration::from_millis(200)) {
            if status(&m) == Some(478) {
                got.insert(header(&m, "Call-ID").unwrap_or_default());
            }
        }
    }
    assert_eq!(got.len(), 20, "478s received: {got:?}\n{}", d.log_text());
    assert!(
        t0.elapsed() >= Duration::from_millis(1900),
        "not before the deadline"
    );
    let rows = d.wait_rows_where(20, |r| r.status == "478" && r.direction == "out");
    let ids: std::collections::BTreeSet<String> = rows.iter().map(|r| r.callid.clone()).collect();
    assert_eq!(ids.len(), 20, "traced 478s: {ids:?}");
    // The request rows are not written twice (one `in` per request).
    let all = d.rows();
    for i in 0..20 {
        let id = format!("parked-{i}");
        let ins = all
            .iter()
            .filter(|r| r.callid == id && r.direction == "out" && r.status.is_empty())
            .count();
        assert_eq!(ins, 0, "{id}: no request was sent anywhere");
    }
    // A lookup still running does not hold up the exit.
    uac.send(
        d.addr(),
        &request(
            "MESSAGE",
            "sip:x@late.nowhere.test:5060",
            uac.addr(),
            "late",
            "stateless",
        ),
    );
    std::thread::sleep(Duration::from_millis(100));
    let mut d = d;
    let t = Instant::now();
    assert_eq!(d.stop(), Some(0));
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "exit took {:?}",
        t.elapsed()
    );
}

/// A name server that answers: `sip:bob@example.test` goes to the SRV
/// target's port (RFC 3263), both statelessly and through tm.
#[test]
fn srv_target_receives_the_request() {
    let uas = Peer::new();
    let ns = Responder::start(uas.port());
    let d = start("dns-srv", ns.addr);
    let uac = Peer::new();
    for (i, (method, mode)) in [("MESSAGE", "stateless"), ("INVITE", "stateful")]
        .into_iter()
        .enumerate()
    {
        let call = format!("srv-{i}");
        uac.send(
            d.addr(),
            &request(method, "sip:bob@example.test", uac.addr(), &call, mode),
        );
        let (m, from) = recv_call(&uas, &call);
        assert_eq!(from, d.addr());
        assert!(
            first_line(&m).starts_with(&format!("{method} sip:bob@example.test")),
            "{}",
            String::from_utf8_lossy(&m)
        );
        assert_eq!(header(&m, "Call-ID").as_deref(), Some(call.as_str()));
    }
    // Cached now: the next one goes at once.
    let t = Instant::now();
    uac.send(
        d.addr(),
        &request(
            "MESSAGE",
            "sip:bob@example.test",
            uac.addr(),
            "srv-2",
            "stateless",
        ),
    );
    recv_call(&uas, "srv-2");
    assert!(t.elapsed() < Duration::from_secs(1));
    // A name with no SRV and no address: 478, stateless and stateful.
    for (i, mode) in ["stateless", "stateful"].iter().enumerate() {
        let call = format!("nx-{i}");
        uac.send(
            d.addr(),
            &request(
                "MESSAGE",
                "sip:bob@nx.example.test",
                uac.addr(),
                &call,
                mode,
            ),
        );
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let m = uac
                .try_recv(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|| panic!("no 478 for {call}:\n{}", d.log_text()));
            if header(&m, "Call-ID").as_deref() == Some(call.as_str()) && status(&m) == Some(478) {
                break;
            }
        }
    }
}

/// R-URI pointing at siptraced itself: refused with 482 at once (a bounded
/// number of rows), not relayed 70 times, stateless and through tm.
#[test]
fn request_to_ourselves_is_a_loop() {
    let ns = Blackhole::start();
    let d = start("dns-loop", ns.addr);
    let uac = Peer::new();
    for (i, mode) in ["stateless", "stateful"].iter().enumerate() {
        let call = format!("loop-{i}");
        let ruri = format!("sip:bob@127.0.0.1:{}", d.port);
        uac.send(
            d.addr(),
            &request("MESSAGE", &ruri, uac.addr(), &call, mode),
        );
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let m = uac
                .try_recv(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|| panic!("no 482 for {call}:\n{}", d.log_text()));
            if header(&m, "Call-ID").as_deref() == Some(call.as_str()) {
                assert_eq!(status(&m), Some(482), "{}", first_line(&m));
                break;
            }
        }
        let rows = d.wait_rows_where(1, |r| r.callid == call && r.status == "482");
        assert_eq!(rows.len(), 1);
    }
    std::thread::sleep(Duration::from_millis(300));
    for i in 0..2 {
        let call = format!("loop-{i}");
        let n = d.rows().iter().filter(|r| r.callid == call).count();
        assert!(n <= 3, "{call}: {n} rows");
    }
    assert!(
        uac.drain(Duration::from_millis(200))
            .iter()
            .all(|(m, _)| status(m) != Some(200))
    );
}
