//! duplicate_uri over UDP, as the admin guide describes it: a capture node
//! (here a plain UDP socket) gets one datagram per traced event holding
//! exactly the bytes stored in `msg` — through the real daemon, a real call
//! and the SQLite rows.

mod common;
use common::*;
use std::net::SocketAddr;
use std::time::Duration;

/// `@LISTEN@` and `@SIPTRACE@` are filled per test; `@UAS@` is the next hop.
const CFG: &str = r#"#!KAMAILIO
listen=udp:127.0.0.1:@PORT@
@LISTEN@
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
modparam("siptrace", "traced_user_avp", "$avp(s:user)")
@SIPTRACE@

request_route {
    if (!mf_process_maxfwd_header("10")) {
        sl_send_reply("483", "Too Many Hops");
        exit;
    }
    if ($hdr(X-Trace) =~ "user") {
        $avp(s:user) = "sip:alice@example.com";
    }
    if ($hdr(X-Trace) =~ "script") {
        sip_trace();
    }
    if ($hdr(X-Trace) =~ "uri") {
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
    forward("@UAS_HOST@", @UAS_PORT@);
}
"#;

struct Setup<'a> {
    listen: &'a str,
    siptrace: &'a str,
    script_uri: &'a str,
}

fn start(tag: &str, uas: &Peer, s: Setup<'_>) -> Daemon {
    let uas_host = match uas.addr() {
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
    };
    let cfg = CFG
        .replace("@LISTEN@", s.listen)
        .replace("@SIPTRACE@", s.siptrace)
        .replace("@SCRIPT_URI@", s.script_uri)
        .replace("@UAS_HOST@", &uas_host)
        .replace("@UAS_PORT@", &uas.port().to_string());
    Daemon::start(tag, &cfg)
}

fn dup(to: SocketAddr) -> String {
    format!("modparam(\"siptrace\", \"duplicate_uri\", \"sip:{to}\")")
}

fn no_extra() -> Setup<'static> {
    Setup {
        listen: "",
        siptrace: "",
        script_uri: "",
    }
}

/// Rows of the events in `msg` order: one per event (the '' row; the
/// traced_user rows repeat it).
fn event_rows(rows: &[TraceRow]) -> Vec<&TraceRow> {
    rows.iter().filter(|r| r.traced_user.is_empty()).collect()
}

#[test]
fn each_traced_event_is_mirrored_once_with_the_stored_bytes() {
    let (uac, uas, sink) = (Peer::new(), Peer::new(), Peer::new());
    let siptrace = dup(sink.addr());
    let mut d = start(
        "mirror-raw",
        &uas,
        Setup {
            siptrace: &siptrace,
            ..no_extra()
        },
    );
    // sip_trace() on each request, the flag on the transaction, and a
    // traced user: 10 events, each stored twice ('' and the user).
    sip_call(&uac, &uas, d.addr(), "raw-1", "script,flag,user");
    let rows = d.wait_rows(20);
    assert_eq!(rows.len(), 20);
    assert_eq!(d.trace_stat("copies_sent"), 10);
    assert_eq!(d.trace_stat("copies_dropped"), 0);
    assert_eq!(d.stop(), Some(0));

    let copies = sink.drain(Duration::from_millis(300));
    let events = event_rows(&rows);
    assert_eq!(
        copies.len(),
        events.len(),
        "one copy per event, not per row"
    );
    for (i, ((bytes, from), row)) in copies.iter().zip(&events).enumerate() {
        assert_eq!(
            bytes, &row.msg,
            "copy {i} ({} {}) differs from the stored msg",
            row.direction, row.method
        );
        assert_eq!(*from, d.addr(), "sent from the listening socket");
    }
    // The user rows carry the same bytes as the '' row of their event.
    for pair in rows.chunks(2) {
        assert_eq!(pair[0].msg, pair[1].msg);
        assert_eq!(pair[1].traced_user, "sip:alice@example.com");
    }
}

#[test]
fn trace_to_database_0_writes_no_rows_but_still_mirrors() {
    let (uac, uas, sink) = (Peer::new(), Peer::new(), Peer::new());
    let siptrace = format!(
        "{}\nmodparam(\"siptrace\", \"trace_to_database\", 0)",
        dup(sink.addr())
    );
    let mut d = start(
        "mirror-nodb",
        &uas,
        Setup {
            siptrace: &siptrace,
            ..no_extra()
        },
    );
    let wire = sip_call(&uac, &uas, d.addr(), "nodb-1", "script,flag");
    assert_eq!(d.trace_stat("copies_sent"), 10);
    assert_eq!(d.trace_stat("rows_written"), 0);
    assert_eq!(d.stop(), Some(0));
    assert!(d.rows().is_empty(), "no rows with trace_to_database=0");
    assert!(!d.db.exists(), "the database is not even opened");

    // sip_trace() stores each request as received, the flag what was sent
    // and the replies in and out: exactly the wire, in order.
    let copies: Vec<Vec<u8>> = sink
        .drain(Duration::from_millis(300))
        .into_iter()
        .map(|(b, _)| b)
        .collect();
    assert_eq!(copies.len(), wire.len());
    for (i, (c, w)) in copies.iter().zip(&wire).enumerate() {
        assert_eq!(
            String::from_utf8_lossy(c),
            String::from_utf8_lossy(w),
            "copy {i}"
        );
    }
}

#[test]
fn an_ipv6_capture_node_gets_copies_from_the_ipv6_listener() {
    let (uac, uas) = (Peer::new(), Peer::new());
    let sink = Peer::bind("[::1]:0");
    let port = free_udp_port();
    let listen = format!("listen=udp:[::1]:{port}");
    let siptrace = dup(sink.addr());
    let mut d = start(
        "mirror-v6",
        &uas,
        Setup {
            listen: &listen,
            siptrace: &siptrace,
            ..no_extra()
        },
    );
    let proxy = d.addr();
    let req = format!(
        "OPTIONS sip:ping@{proxy} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK-o6\r\n\
         From: <sip:a@x>;tag=o6\r\nTo: <sip:p@x>\r\nCall-ID: opt-v6\r\nCSeq: 7 OPTIONS\r\n\
         X-Trace: script,flag\r\nContent-Length: 0\r\n\r\n",
        uac.addr()
    );
    uac.send(proxy, req.as_bytes());
    let (reply, _) = uac.recv();
    assert_eq!(first_line(&reply), "SIP/2.0 200 Alive");
    let rows = d.wait_rows(2);
    assert_eq!(d.stop(), Some(0));
    let copies = sink.drain(Duration::from_millis(300));
    assert_eq!(copies.len(), 2, "{rows:?}");
    assert_eq!(copies[0].0, req.as_bytes());
    assert_eq!(copies[1].0, reply);
    let v6_listener: SocketAddr = format!("[::1]:{port}").parse().unwrap();
    assert!(copies.iter().all(|(_, from)| *from == v6_listener));
    for (c, r) in copies.iter().zip(&rows) {
        assert_eq!(c.0, r.msg);
    }
}

#[test]
fn send_sock_addr_chooses_the_socket_copies_leave_from() {
    let (uac, uas, sink) = (Peer::new(), Peer::new(), Peer::new());
    let second = free_udp_port();
    let listen = format!("listen=udp:127.0.0.1:{second}");
    let siptrace = format!(
        "{}\nmodparam(\"siptrace\", \"send_sock_addr\", \"sip:127.0.0.1:{second}\")",
        dup(sink.addr())
    );
    let mut d = start(
        "mirror-sendsock",
        &uas,
        Setup {
            listen: &listen,
            siptrace: &siptrace,
            ..no_extra()
        },
    );
    sip_call(&uac, &uas, d.addr(), "ss-1", "script");
    let rows = d.wait_rows(3);
    assert_eq!(d.stop(), Some(0));
    let copies = sink.drain(Duration::from_millis(300));
    assert_eq!(copies.len(), 3);
    let from: SocketAddr = format!("127.0.0.1:{second}").parse().unwrap();
    for ((bytes, src), row) in copies.iter().zip(&rows) {
        assert_eq!(*src, from, "copies leave from send_sock_addr");
        assert_eq!(bytes, &row.msg);
    }
}

#[test]
fn sip_trace_uri_overrides_duplicate_uri_for_its_event() {
    let (uac, uas) = (Peer::new(), Peer::new());
    let (global, script) = (Peer::new(), Peer::new());
    let siptrace = dup(global.addr());
    let script_uri = format!("sip:{}", script.addr());
    let mut d = start(
        "mirror-uri",
        &uas,
        Setup {
            siptrace: &siptrace,
            script_uri: &script_uri,
            ..no_extra()
        },
    );
    sip_call(&uac, &uas, d.addr(), "uri-1", "uri,flag");
    let rows = d.wait_rows(10);
    assert_eq!(d.trace_stat("copies_sent"), 10);
    assert_eq!(d.stop(), Some(0));
    let to_script: Vec<Vec<u8>> = script
        .drain(Duration::from_millis(300))
        .into_iter()
        .map(|(b, _)| b)
        .collect();
    let to_global: Vec<Vec<u8>> = global
        .drain(Duration::from_millis(300))
        .into_iter()
        .map(|(b, _)| b)
        .collect();
    let (ins, rest): (Vec<&TraceRow>, Vec<&TraceRow>) = rows
        .iter()
        .partition(|r| r.direction == "in" && r.status.is_empty());
    assert_eq!(
        to_script,
        ins.iter().map(|r| r.msg.clone()).collect::<Vec<_>>(),
        "sip_trace(uri): the requests as received"
    );
    assert_eq!(
        to_global,
        rest.iter().map(|r| r.msg.clone()).collect::<Vec<_>>(),
        "flag events: duplicate_uri"
    );
    assert_eq!((to_script.len(), to_global.len()), (3, 7));
}

#[test]
fn a_refused_send_drops_the_copy_and_keeps_the_rows() {
    let (uac, uas) = (Peer::new(), Peer::new());
    // The kernel refuses a datagram to the broadcast address from a socket
    // without SO_BROADCAST (EACCES): the send error path, every time.
    let siptrace = "modparam(\"siptrace\", \"duplicate_uri\", \"sip:255.255.255.255:9\")";
    let mut d = start(
        "mirror-refused",
        &uas,
        Setup {
            siptrace,
            ..no_extra()
        },
    );
    sip_call(&uac, &uas, d.addr(), "ref-1", "script,flag");
    let rows = d.wait_rows(10);
    assert_eq!(rows.len(), 10, "rows are written whatever the copies do");
    assert_eq!(d.trace_stat("copies_dropped"), 10);
    assert_eq!(d.trace_stat("copies_sent"), 0);
    sip_call(&uac, &uas, d.addr(), "ref-2", "script,flag");
    assert_eq!(d.wait_rows(20).len(), 20);
    assert!(d.is_running());
    assert_eq!(d.stop(), Some(0));
}
