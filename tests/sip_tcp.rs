//! SIP over TCP through the real daemon (docs/decisions.md §18): sipp
//! `-t t1` and `-t tn` calls, UDP↔TCP legs, stream framing from a client
//! of the test's own, an idle-connection flood with a slowloris sender
//! while UDP calls flow, and IPv6. Every call must complete and leave
//! exactly its rows, whose `tcp:` addresses carry the sockets' real ports
//! (read from the test side: the sockets the test holds, or `ss`).

mod common;
use common::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A stateful proxy: sip_trace() on initial requests, the trace flag on
/// all, every request relayed to @NEXT@ (initial ones by the R-URI,
/// in-dialog ones by $du when no Route of ours is left).
const CFG: &str = r#"#!KAMAILIO
@LISTEN@
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "rr.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "mi_fifo.so"
loadmodule "siptrace.so"
modparam("mi_fifo", "fifo_name", "@FIFO@")
modparam("siptrace", "db_url", "sqlite://@DB@")
modparam("siptrace", "trace_on", 1)
modparam("siptrace", "trace_flag", 22)
@EXTRA@

request_route {
    if (!has_totag()) {
        sip_trace();
    }
    setflag(22);
    if (has_totag()) {
        if (!loose_route()) {
            if (is_method("ACK") && t_check_trans()) {
                exit;
            }
            $du = "@NEXT@";
        }
        t_relay();
        exit;
    }
    record_route();
    $ru = "@NEXT@";
    t_relay();
}
"#;

fn config(listen: &str, next: &str, extra: &str) -> String {
    CFG.replace("@LISTEN@", listen)
        .replace("@NEXT@", next)
        .replace("@EXTRA@", extra)
}

/// UDP and TCP on 127.0.0.1:@PORT@.
const LISTEN_V4: &str = "listen=udp:127.0.0.1:@PORT@\nlisten=tcp:127.0.0.1:@PORT@";

/// A sipp UAS that runs until dropped (so its connections stay open for
/// `ss` to see).
struct Uas(Child);

impl Uas {
    fn start(transport: &str, ip: &str, port: u16) -> Uas {
        let child = sipp_at(&[
            "-sn",
            "uas",
            "-t",
            transport,
            "-i",
            ip,
            "-p",
            &port.to_string(),
        ])
        .spawn()
        .expect("sipp installed (apt-get install sip-tester)");
        std::thread::sleep(Duration::from_millis(300));
        Uas(child)
    }
}

impl Drop for Uas {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn uac(transport: &str, ip: &str, target: &str, port: u16, calls: u32, rate: u32) {
    let child = sipp_at(&[
        "-sn",
        "uac",
        target,
        "-t",
        transport,
        "-i",
        ip,
        "-p",
        &port.to_string(),
        "-m",
        &calls.to_string(),
        "-r",
        &rate.to_string(),
        "-timeout",
        "60s",
        "-timeout_error",
    ])
    .spawn()
    .unwrap();
    wait_sipp_ok(child, &format!("uac -t {transport}"));
}

/// The rows a stateful relay of sipp's default call leaves, per call.
const CALL_ROWS: [&str; 11] = [
    "in INVITE",
    "in INVITE 180",
    "in INVITE 200",
    "in BYE 200",
    "out ACK",
    "out BYE",
    "out BYE 200",
    "out INVITE",
    "out INVITE 100",
    "out INVITE 180",
    "out INVITE 200",
];

fn kind(r: &TraceRow) -> String {
    format!("{} {} {}", r.direction, r.method, r.status)
        .trim_end()
        .to_string()
}

/// Rows by Call-ID, each call's checked to be exactly [`CALL_ROWS`].
fn calls_of(rows: &[TraceRow], calls: usize) -> BTreeMap<String, Vec<TraceRow>> {
    let mut by: BTreeMap<String, Vec<TraceRow>> = BTreeMap::new();
    for r in rows {
        by.entry(r.callid.clone()).or_default().push(r.clone());
    }
    assert_eq!(by.len(), calls, "calls in the table");
    let mut want: Vec<String> = CALL_ROWS.iter().map(|s| s.to_string()).collect();
    want.sort();
    for (id, rs) in &by {
        let mut got: Vec<String> = rs.iter().map(kind).collect();
        got.sort();
        assert_eq!(got, want, "rows of call {id}");
    }
    by
}

fn one<'a>(rs: &'a [TraceRow], k: &str) -> &'a TraceRow {
    let v: Vec<&TraceRow> = rs.iter().filter(|r| kind(r) == k).collect();
    assert_eq!(v.len(), 1, "{k}: {rs:#?}");
    v[0]
}

/// `proto:ip:port` → port.
fn port_of(addr: &str) -> u16 {
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

/// Local ports of established TCP sockets whose remote port is `dport`
/// (read from the kernel with `ss`).
fn ss_local_ports_to(dport: u16) -> BTreeSet<u16> {
    let out = Command::new("ss")
        .args([
            "-Htn",
            "state",
            "established",
            "dport",
            &format!("= :{dport}"),
        ])
        .output()
        .expect("ss (iproute2)");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let local = l.split_whitespace().nth(2)?;
            local.rsplit(':').next()?.parse().ok()
        })
        .collect()
}

/// sipp UAC over `uac_t` → siptraced → sipp UAS over `uas_t`, `calls`
/// calls; checks the rows per call and their addresses. Returns the rows.
fn tcp_calls(uac_t: &str, uas_t: &str, calls: u32) -> Vec<TraceRow> {
    let uas_port = free_port();
    let uas_proto = if uas_t.starts_with('t') { "tcp" } else { "udp" };
    let next = format!("sip:service@127.0.0.1:{uas_port};transport={uas_proto}");
    let d = Daemon::start("tcp-sipp", &config(LISTEN_V4, &next, ""));
    let uas = Uas::start(uas_t, "127.0.0.1", uas_port);
    let uac_port = free_port();
    uac(
        uac_t,
        "127.0.0.1",
        &d.addr().to_string(),
        uac_port,
        calls,
        100,
    );
    let rows = d.wait_rows(calls as usize * CALL_ROWS.len());
    let by = calls_of(&rows, calls as usize);
    let uac_proto = if uac_t.starts_with('t') { "tcp" } else { "udp" };
    let me = |p: &str| format!("{p}:127.0.0.1:{}", d.port);
    // Our side of the connection(s) to the UAS, as the kernel has them.
    let to_uas_ports = if uas_proto == "tcp" {
        let p = ss_local_ports_to(uas_port);
        assert_eq!(p.len(), 1, "one connection to the UAS, reused: {p:?}");
        p
    } else {
        BTreeSet::from([d.port])
    };
    let mut uac_ports = BTreeSet::new();
    for rs in by.values() {
        let inv = one(rs, "in INVITE");
        assert_eq!(inv.toip, me(uac_proto));
        assert!(inv.fromip.starts_with(&format!("{uac_proto}:127.0.0.1:")));
        let caller = inv.fromip.clone();
        uac_ports.insert(port_of(&caller));
        for k in [
            "out INVITE 100",
            "out INVITE 180",
            "out INVITE 200",
            "out BYE 200",
        ] {
            let r = one(rs, k);
            assert_eq!(
                (r.fromip.as_str(), r.toip.as_str()),
                (me(uac_proto).as_str(), caller.as_str()),
                "{k}"
            );
        }
        let callee = format!("{uas_proto}:127.0.0.1:{uas_port}");
        for k in ["out INVITE", "out ACK", "out BYE"] {
            let r = one(rs, k);
            assert_eq!(r.toip, callee, "{k}");
            assert!(
                to_uas_ports.contains(&port_of(&r.fromip)),
                "{k} from {} (our sockets to the UAS: {to_uas_ports:?})",
                r.fromip
            );
            assert!(r.fromip.starts_with(&format!("{uas_proto}:127.0.0.1:")));
        }
        for k in ["in INVITE 180", "in INVITE 200", "in BYE 200"] {
            let r = one(rs, k);
            assert_eq!(r.fromip, callee, "{k}");
            assert!(
                to_uas_ports.contains(&port_of(&r.toip)),
                "{k} to {}",
                r.toip
            );
        }
    }
    match uac_t {
        // One connection, from sipp's own port.
        "t1" => assert_eq!(uac_ports, BTreeSet::from([uac_port])),
        // One connection per call, each from its own ephemeral port.
        "tn" => assert_eq!(uac_ports.len(), calls as usize),
        _ => assert_eq!(uac_ports, BTreeSet::from([uac_port])),
    }
    if uas_proto == "tcp" {
        assert!(
            !to_uas_ports.contains(&d.port),
            "an ephemeral port, not ours"
        );
    }
    drop(uas);
    rows
}

/// sipp with this file's address options.
fn sipp_at(args: &[&str]) -> Command {
    let mut c = sipp(args);
    c.args(["-max_socket", "2000"]);
    c
}

#[test]
fn sipp_t1_through_tcp_every_call_with_its_rows_and_real_ports() {
    tcp_calls("t1", "t1", 200);
}

#[test]
fn sipp_tn_through_tcp_every_call_with_its_rows_and_real_ports() {
    tcp_calls("tn", "tn", 200);
}

#[test]
fn udp_caller_to_tcp_callee_and_tcp_caller_to_udp_callee() {
    // UDP → TCP: R-URI ;transport=tcp. The transport changes between the
    // legs: two Record-Route entries of ours, the TCP one on top.
    let rows = tcp_calls("u1", "t1", 20);
    let inv = rows
        .iter()
        .find(|r| kind(r) == "out INVITE")
        .expect("out INVITE");
    let rr: Vec<String> = String::from_utf8_lossy(&inv.msg)
        .lines()
        .filter(|l| l.starts_with("Record-Route:"))
        .map(str::to_string)
        .collect();
    assert_eq!(rr.len(), 2, "{rr:?}");
    assert!(rr[0].contains(";transport=tcp;r2=on;lr"), "{rr:?}");
    assert!(
        rr[1].contains(";r2=on;lr") && !rr[1].contains("transport"),
        "{rr:?}"
    );
    let via = String::from_utf8_lossy(&inv.msg)
        .lines()
        .find(|l| l.starts_with("Via:"))
        .unwrap()
        .to_string();
    assert!(via.starts_with("Via: SIP/2.0/TCP 127.0.0.1:"), "{via}");
    // TCP → UDP.
    tcp_calls("t1", "u1", 20);
}

// ---- framing, with a client of the test's own and a UDP callee ----

/// A stateless proxy forwarding everything to a UDP peer.
fn forwarding_daemon(peer: &Peer, extra: &str) -> Daemon {
    let cfg = format!(
        "#!KAMAILIO\n{LISTEN_V4}\nloadmodule \"mi_fifo.so\"\nloadmodule \"siptrace.so\"\n\
         modparam(\"mi_fifo\", \"fifo_name\", \"@FIFO@\")\n\
         modparam(\"siptrace\", \"db_url\", \"sqlite://@DB@\")\n\
         modparam(\"siptrace\", \"trace_on\", 1)\n{extra}\n\
         request_route {{\n    sip_trace();\n    $du = \"sip:127.0.0.1:{}\";\n    forward();\n}}\n",
        peer.port()
    );
    Daemon::start("tcp-frame", &cfg)
}

fn request(method: &str, call_id: &str, local: SocketAddr, body: &str) -> Vec<u8> {
    format!(
        "{method} sip:bob@example.com SIP/2.0\r\n\
         Via: SIP/2.0/TCP {local};branch=z9hG4bK-{call_id}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@example.com>;tag=a-{call_id}\r\n\
         To: <sip:bob@example.com>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 {method}\r\n\
         Content-Type: text/plain\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn connect(d: &Daemon) -> TcpStream {
    let s = TcpStream::connect(d.addr()).expect("connect to siptraced over TCP");
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

#[test]
fn a_40k_invite_in_one_byte_writes_arrives_whole_and_is_stored_as_sent() {
    let peer = Peer::new();
    let d = forwarding_daemon(&peer, "");
    let mut c = connect(&d);
    let local = c.local_addr().unwrap();
    let body: String = "v=0 0123456789abcdef0123456789abcdef\r\n".repeat(40_000 / 38);
    let msg = request("INVITE", "big-1", local, &body);
    assert!(msg.len() > 40_000);
    for b in &msg {
        c.write_all(std::slice::from_ref(b)).unwrap();
    }
    let (got, _) = peer.recv();
    assert!(
        got.ends_with(body.as_bytes()),
        "forwarded with its whole body"
    );
    assert_eq!(header(&got, "Call-ID").as_deref(), Some("big-1"));
    let rows = d.wait_rows(1);
    let r = rows.iter().find(|r| r.callid == "big-1").expect("row");
    assert_eq!(r.msg, msg, "stored byte-equal to what was sent");
    assert_eq!(r.fromip, format!("tcp:{local}"));
    assert_eq!(r.toip, format!("tcp:127.0.0.1:{}", d.port));
}

#[test]
fn two_messages_in_one_segment_are_both_handled() {
    let peer = Peer::new();
    let d = forwarding_daemon(&peer, "");
    let mut c = connect(&d);
    let local = c.local_addr().unwrap();
    let mut seg = request("OPTIONS", "two-1", local, "");
    seg.extend(request("OPTIONS", "two-2", local, "hello"));
    c.write_all(&seg).unwrap();
    let mut ids: Vec<String> = (0..2)
        .map(|_| header(&peer.recv().0, "Call-ID").unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, ["two-1", "two-2"]);
}

#[test]
fn a_truncated_message_then_close_is_dropped_and_the_next_connection_works() {
    let peer = Peer::new();
    let d = forwarding_daemon(&peer, "");
    let mut c = connect(&d);
    let local = c.local_addr().unwrap();
    let msg = request("OPTIONS", "cut-1", local, "0123456789");
    c.write_all(&msg[..msg.len() - 5]).unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    let _ = c.read_to_end(&mut rest);
    assert!(rest.is_empty(), "no answer to half a message");
    assert!(peer.try_recv(Duration::from_millis(300)).is_none());
    let mut c2 = connect(&d);
    let local2 = c2.local_addr().unwrap();
    c2.write_all(&request("OPTIONS", "cut-2", local2, ""))
        .unwrap();
    assert_eq!(header(&peer.recv().0, "Call-ID").unwrap(), "cut-2");
}

#[test]
fn a_message_without_content_length_is_answered_400_and_the_connection_closed() {
    let peer = Peer::new();
    let d = forwarding_daemon(&peer, "");
    let mut c = connect(&d);
    let local = c.local_addr().unwrap();
    let msg = format!(
        "OPTIONS sip:bob@example.com SIP/2.0\r\n\
         Via: SIP/2.0/TCP {local};branch=z9hG4bK-nocl\r\n\
         From: <sip:alice@example.com>;tag=a\r\nTo: <sip:bob@example.com>\r\n\
         Call-ID: nocl-1\r\nCSeq: 1 OPTIONS\r\n\r\n"
    );
    c.write_all(msg.as_bytes()).unwrap();
    let mut all = Vec::new();
    c.read_to_end(&mut all)
        .expect("closed by the daemon after the 400");
    let text = String::from_utf8_lossy(&all);
    assert!(text.starts_with("SIP/2.0 400 "), "{text}");
    assert_eq!(header(&all, "Call-ID").as_deref(), Some("nocl-1"));
    assert!(peer.try_recv(Duration::from_millis(300)).is_none());
}

// ---- bounds ----

#[test]
fn idle_connections_and_a_slowloris_never_stall_udp_calls_and_stay_bounded() {
    const MAX: usize = 1000;
    const IDLE: usize = 1500;
    let uas_port = free_port();
    let next = format!("sip:service@127.0.0.1:{uas_port}");
    let d = Daemon::start(
        "tcp-flood",
        &config(LISTEN_V4, &next, &format!("tcp_max_connections={MAX}")),
    );
    let rss_before = rss_bytes(d.pid());
    // The slowloris: a message that never ends, one byte at a time.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut slow = connect(&d);
    let slow_local = slow.local_addr().unwrap();
    let slow_stop = stop.clone();
    let slowloris = std::thread::spawn(move || {
        let msg = request("INVITE", "slow", slow_local, &"x".repeat(60_000));
        let mut sent = 0;
        while !slow_stop.load(std::sync::atomic::Ordering::Relaxed) && sent < msg.len() {
            if slow.write_all(&msg[sent..sent + 1]).is_err() {
                return sent;
            }
            sent += 1;
            std::thread::sleep(Duration::from_millis(5));
        }
        sent
    });
    let idle: Vec<TcpStream> = (0..IDLE).map(|_| connect(&d)).collect();
    // Every connection beyond the bound is closed at accept and counted.
    let refused = IDLE + 1 - MAX;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let hits = core_limits(&d)
            .get("tcp_max_connections")
            .map(|&(_, h)| h)
            .unwrap_or(0);
        if hits as usize >= refused {
            assert_eq!(hits as usize, refused);
            break;
        }
        assert!(Instant::now() < deadline, "{hits} of {refused} refused");
        std::thread::sleep(Duration::from_millis(100));
    }
    let limits = core_limits(&d);
    assert_eq!(limits["tcp_max_connections"].0, MAX as u64);
    let mut closed = 0;
    for mut s in idle {
        s.set_nonblocking(true).unwrap();
        let mut b = [0u8; 1];
        match s.read(&mut b) {
            Ok(0) => closed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => closed += 1,
            Ok(_) => panic!("nothing is sent on an idle connection"),
        }
    }
    assert_eq!(closed, refused, "closed by the daemon");
    // UDP calls flow meanwhile, every one of them.
    let uas = Uas::start("u1", "127.0.0.1", uas_port);
    uac(
        "u1",
        "127.0.0.1",
        &d.addr().to_string(),
        free_port(),
        100,
        50,
    );
    drop(uas);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = slowloris.join().unwrap();
    assert!(sent > 0);
    let rows = d.wait_rows(100 * CALL_ROWS.len());
    calls_of(&rows, 100);
    // A thousand connections cost their kernel buffers, not ours: far
    // below one read buffer (64 KiB) each.
    let grown = rss_bytes(d.pid()).saturating_sub(rss_before);
    assert!(
        grown < (MAX as u64) * 16 * 1024,
        "RSS grew by {grown} bytes for {MAX} connections"
    );
}

// ---- IPv6 ----

#[test]
fn ipv6_tcp_calls_on_loopback_and_mixed_families_both_ways() {
    let listen = "listen=udp:127.0.0.1:@PORT@\nlisten=tcp:127.0.0.1:@PORT@\n\
                  listen=udp:[::1]:@PORT@\nlisten=tcp:[::1]:@PORT@";
    // The address as a URI host and as `proto:ip:port` writes it.
    let host = |ip: &str| {
        if ip.contains(':') {
            format!("[{ip}]")
        } else {
            ip.to_string()
        }
    };
    let calls = 20u32;
    for (uac_ip, uas_ip) in [("::1", "::1"), ("127.0.0.1", "::1"), ("::1", "127.0.0.1")] {
        let uas_port = free_port();
        let next = format!("sip:service@{}:{uas_port};transport=tcp", host(uas_ip));
        let d = Daemon::start("tcp-v6", &config(listen, &next, ""));
        let uas = Uas::start("t1", uas_ip, uas_port);
        let target = format!("{}:{}", host(uac_ip), d.port);
        let uac_port = free_port();
        uac("t1", uac_ip, &target, uac_port, calls, 50);
        let rows = d.wait_rows(calls as usize * CALL_ROWS.len());
        let by = calls_of(&rows, calls as usize);
        let to_uas = ss_local_ports_to(uas_port);
        let caller = format!("tcp:{}:{uac_port}", host(uac_ip));
        let me_out = format!("tcp:{}:", host(uas_ip));
        for rs in by.values() {
            let inv = one(rs, "in INVITE");
            assert_eq!(inv.fromip, caller);
            assert_eq!(inv.toip, format!("tcp:{}:{}", host(uac_ip), d.port));
            let out = one(rs, "out INVITE");
            assert_eq!(out.toip, format!("tcp:{}:{uas_port}", host(uas_ip)));
            assert!(out.fromip.starts_with(&me_out), "{}", out.fromip);
            assert!(to_uas.contains(&port_of(&out.fromip)), "{to_uas:?}");
        }
        // Two Record-Routes exactly when the family changes between legs.
        let out = rows.iter().find(|r| kind(r) == "out INVITE").unwrap();
        let n = String::from_utf8_lossy(&out.msg)
            .lines()
            .filter(|l| l.starts_with("Record-Route:"))
            .count();
        assert_eq!(
            n,
            if uac_ip == uas_ip { 1 } else { 2 },
            "{uac_ip} -> {uas_ip}"
        );
        drop(uas);
    }
}

// ---- the size rule ----

#[test]
fn a_request_over_udp_mtu_leaves_over_tcp_a_small_one_over_udp() {
    // The next hop listens on one port for both transports.
    let port = free_port();
    let udp = std::net::UdpSocket::bind(("127.0.0.1", port)).unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let tcp = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let cfg = format!(
        "#!KAMAILIO\n{LISTEN_V4}\nudp_mtu=1300\nudp_mtu_try_proto=TCP\n\
         loadmodule \"siptrace.so\"\n\
         modparam(\"siptrace\", \"db_url\", \"sqlite://@DB@\")\n\
         modparam(\"siptrace\", \"trace_on\", 1)\n\
         request_route {{\n    sip_trace();\n    $du = \"sip:127.0.0.1:{port}\";\n    forward();\n}}\n"
    );
    let d = Daemon::start("tcp-mtu", &cfg);
    let peer = Peer::new();
    let small = sip_invite(peer.addr(), d.addr(), d.addr(), "mtu-small", "x");
    peer.send(d.addr(), &small);
    let mut buf = vec![0u8; 65535];
    let (n, _) = udp.recv_from(&mut buf).expect("small request over UDP");
    assert_eq!(header(&buf[..n], "Call-ID").as_deref(), Some("mtu-small"));
    let big = String::from_utf8(sip_invite(peer.addr(), d.addr(), d.addr(), "mtu-big", "x"))
        .unwrap()
        .replace(
            "Content-Length: 0\r\n\r\n",
            &format!("Content-Length: 1500\r\n\r\n{}", "b".repeat(1500)),
        );
    peer.send(d.addr(), big.as_bytes());
    let (mut conn, _) = tcp.accept().expect("big request over TCP");
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    while !got.ends_with(&b"b".repeat(1500)) {
        let n = conn.read(&mut buf).unwrap();
        assert!(n > 0, "closed before the whole request");
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(header(&got, "Call-ID").as_deref(), Some("mtu-big"));
    assert!(String::from_utf8_lossy(&got).contains("Via: SIP/2.0/TCP "));
    let rows = d.wait_rows_where(1, |r| r.callid == "mtu-big");
    assert_eq!(rows[0].fromip, format!("udp:{}", peer.addr()));
}

// ---- HEP copies of TCP events ----

/// HEPv3 chunks (type → payload) of one packet.
fn hep3_chunks(p: &[u8]) -> HashMap<u16, Vec<u8>> {
    assert_eq!(&p[..4], b"HEP3");
    let total = u16::from_be_bytes([p[4], p[5]]) as usize;
    assert_eq!(total, p.len());
    let mut out = HashMap::new();
    let mut i = 6;
    while i + 6 <= p.len() {
        let kind = u16::from_be_bytes([p[i + 2], p[i + 3]]);
        let len = u16::from_be_bytes([p[i + 4], p[i + 5]]) as usize;
        out.insert(kind, p[i + 6..i + len].to_vec());
        i += len;
    }
    out
}

#[test]
fn hep_copies_of_tcp_events_say_tcp_and_carry_the_real_ports() {
    let peer = Peer::new();
    let node = Peer::new();
    let extra = format!(
        "modparam(\"siptrace\", \"hep_mode_on\", 1)\n\
         modparam(\"siptrace\", \"duplicate_uri\", \"sip:127.0.0.1:{}\")",
        node.port()
    );
    let d = forwarding_daemon(&peer, &extra);
    let mut c = connect(&d);
    let local = c.local_addr().unwrap();
    c.write_all(&request("OPTIONS", "hep-tcp", local, ""))
        .unwrap();
    let (copy, _) = node.recv();
    let ch = hep3_chunks(&copy);
    assert_eq!(ch[&0x0001], [2], "AF_INET");
    assert_eq!(ch[&0x0002], [6], "IPPROTO_TCP");
    assert_eq!(ch[&0x0003], [127, 0, 0, 1]);
    assert_eq!(
        ch[&0x0007],
        local.port().to_be_bytes(),
        "the client's own port"
    );
    assert_eq!(ch[&0x0008], d.port.to_be_bytes(), "our listening port");
    assert_eq!(
        header(&ch[&0x000f], "Call-ID").as_deref(),
        Some("hep-tcp"),
        "the message"
    );
}

#[test]
fn metrics_count_tcp_messages_received_and_sent() {
    let peer = Peer::new();
    let d = forwarding_daemon(&peer, "metrics_listen=\"127.0.0.1:0\"");
    let mut c = connect(&d);
    let local = c.local_addr().unwrap();
    for n in 0..2 {
        c.write_all(&request("OPTIONS", &format!("m-{n}"), local, ""))
            .unwrap();
        peer.recv();
    }
    let log = d.log_text();
    let addr: SocketAddr = log
        .lines()
        .find_map(|l| l.split_once("metrics: serving GET /metrics on "))
        .map(|(_, a)| a.trim().parse().unwrap())
        .expect("metrics address in the log");
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    assert!(
        body.contains("siptraced_messages_received_total{transport=\"tcp\"} 2\n"),
        "{body}"
    );
    assert!(
        body.contains("siptraced_messages_sent_total{transport=\"udp\"} 2\n"),
        "{body}"
    );
}
