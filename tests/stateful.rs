//! The stateful proxy (t_relay over RFC 3261 transactions) through the real
//! daemon: a typical Kamailio config, and the rows the trace flag yields per
//! transaction event (docs/decisions.md §1, §7).

mod common;
use common::*;
use std::net::SocketAddr;
use std::time::Duration;

/// The shape of Kamailio's default stateful proxy, trimmed to what we serve.
const CFG: &str = r#"#!KAMAILIO
#!define FLT_TRACE 22
listen=udp:127.0.0.1:@PORT@
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "rr.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "mi_fifo.so"
loadmodule "siptrace.so"
modparam("mi_fifo", "fifo_name", "@FIFO@")
modparam("siptrace", "db_url", "sqlite://@DB@")
modparam("siptrace", "trace_on", 1)
modparam("siptrace", "trace_flag", FLT_TRACE)
modparam("tm", "fr_timer", 2000)
modparam("tm", "fr_inv_timer", 3000)
# Short RFC timers so finished transactions are freed within the test.
modparam("tm", "retr_timer1", 100)
modparam("tm", "retr_timer2", 400)

request_route {
    if (!mf_process_maxfwd_header("10")) {
        sl_send_reply("483", "Too Many Hops");
        exit;
    }
    if (!has_totag() && $hdr(X-Trace) =~ "script") {
        sip_trace();
    }
    setflag(FLT_TRACE);
    if (is_method("CANCEL")) {
        if (t_check_trans()) {
            t_relay();
        }
        exit;
    }
    if (has_totag()) {
        if (!loose_route()) {
            if (is_method("ACK")) {
                if (t_check_trans()) {
                    exit;
                }
            }
            $du = "sip:127.0.0.1:" + UAS_PORT;
        }
        t_relay();
        exit;
    }
    t_check_trans();
    if (is_method("INVITE")) {
        record_route();
    }
    t_on_failure("MANAGE_FAILURE");
    $du = "sip:127.0.0.1:" + UAS_PORT;
    if (!t_relay()) {
        sl_reply_error();
    }
    exit;
}

failure_route[MANAGE_FAILURE] {
    xlog("L_INFO", "failure_route: $T_reply_code for $ci\n");
}
"#;

struct Net {
    uac: Peer,
    uas: Peer,
    d: Daemon,
}

fn start() -> Net {
    let uas = Peer::new();
    let uac = Peer::new();
    let define = format!("UAS_PORT={}", uas.port());
    let d = Daemon::start_with("tm", CFG, &["-A", &define]);
    Net { uac, uas, d }
}

fn invite(uac: SocketAddr, proxy: SocketAddr, call_id: &str) -> Vec<u8> {
    format!(
        "INVITE sip:bob@example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP {uac};branch=z9hG4bK-{call_id};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@example.com>;tag=ft-{call_id}\r\n\
         To: <sip:bob@example.com>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:alice@{uac}>\r\n\
         X-Trace: script\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .replace("{proxy}", &proxy.to_string())
    .into_bytes()
}

/// ACK or CANCEL for `inv` (RFC 3261 §17.1.1.3 / §9.1): same branch.
fn same_branch(inv: &[u8], method: &str, to_tag: Option<&str>) -> Vec<u8> {
    let text = String::from_utf8_lossy(inv);
    let mut out = String::new();
    for (i, line) in text.split("\r\n").enumerate() {
        if i == 0 {
            out.push_str(&line.replacen("INVITE", method, 1));
        } else if line.starts_with("CSeq:") {
            out.push_str(&format!("CSeq: 1 {method}"));
        } else if line.starts_with("To:") {
            out.push_str(line);
            if let Some(t) = to_tag {
                out.push_str(&format!(";tag={t}"));
            }
        } else if line.starts_with("Contact:") || line.starts_with("X-Trace") {
            continue;
        } else {
            out.push_str(line);
        }
        out.push_str("\r\n");
    }
    out.trim_end_matches("\r\n")
        .to_string()
        .into_bytes()
        .into_iter()
        .chain(*b"\r\n\r\n")
        .collect()
}

fn summary(rows: &[TraceRow]) -> Vec<String> {
    rows.iter()
        .map(|r| {
            format!("{} {} {}", r.direction, r.method, r.status)
                .trim_end()
                .to_string()
        })
        .collect()
}

fn tm_current(d: &Daemon) -> String {
    let out = d.kamctl(&["fifo", "tm_stats"]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls `tm_stats` until no transaction is live. They linger after their
/// final reply: 64·T1 (T1 is 100 ms here), T4 (5 s) after an ACK, and a
/// client INVITE that got a non-2xx keeps timer D (32 s, RFC 3261 §17.1.1.2).
fn wait_no_transactions(d: &Daemon) {
    for _ in 0..400 {
        if tm_current(d).contains("current:: 0") {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("transactions still live: {}", tm_current(d));
}

#[test]
fn call_through_t_relay_is_traced_per_transaction_event() {
    let n = start();
    let proxy = n.d.addr();
    let inv = invite(n.uac.addr(), proxy, "tm-1");
    n.uac.send(proxy, &inv);
    let (trying, _) = n.uac.recv();
    assert_eq!(first_line(&trying), "SIP/2.0 100 Trying");
    let (fwd, _) = n.uas.recv();
    assert!(first_line(&fwd).starts_with("INVITE sip:bob@example.com"));
    n.uas.send(proxy, &reply_to(&fwd, 180, "Ringing", "tt-1"));
    assert_eq!(first_line(&n.uac.recv().0), "SIP/2.0 180 Ringing");
    let ok = reply_to(&fwd, 200, "OK", "tt-1");
    n.uas.send(proxy, &ok);
    let (ok_at_uac, _) = n.uac.recv();
    assert_eq!(first_line(&ok_at_uac), "SIP/2.0 200 OK");
    // 2xx ACK: no transaction, relayed statelessly to the UAS.
    let ack = same_branch(&inv, "ACK", Some("tt-1"));
    let ack = String::from_utf8_lossy(&ack)
        .replace("z9hG4bK-tm-1", "z9hG4bK-tm-1-ack")
        .into_bytes();
    n.uac.send(proxy, &ack);
    assert!(first_line(&n.uas.recv().0).starts_with("ACK "));

    let rows = n.d.wait_rows(8);
    assert_eq!(
        summary(&rows),
        [
            "in INVITE",
            "out INVITE 100",
            "out INVITE",
            "in INVITE 180",
            "out INVITE 180",
            "in INVITE 200",
            "out INVITE 200",
            "out ACK"
        ]
    );
    let sent = &rows[2];
    assert_eq!(sent.toip, format!("udp:{}", n.uas.addr()));
    assert!(String::from_utf8_lossy(&sent.msg).contains("Record-Route: <sip:127.0.0.1:"));
    assert_eq!(
        rows[1].msg, trying,
        "the automatic 100 Trying as sent, before the branch"
    );
    assert_eq!(rows[1].totag, "");
    assert_eq!(rows[6].msg, ok_at_uac);
    wait_no_transactions(&n.d);
}

#[test]
fn unanswered_invite_gets_408_and_retransmissions_are_not_traced_twice() {
    let n = start();
    let proxy = n.d.addr();
    let inv = invite(n.uac.addr(), proxy, "tm-408");
    n.uac.send(proxy, &inv);
    assert_eq!(first_line(&n.uac.recv().0), "SIP/2.0 100 Trying");
    // The UAS hears the INVITE and its retransmissions (timer A), never answers.
    let mut copies = 0;
    while let Some(m) = n.uas.try_recv(Duration::from_millis(700)) {
        assert!(first_line(&m).starts_with("INVITE"));
        copies += 1;
        if copies >= 3 {
            break;
        }
    }
    assert!(copies >= 2, "timer A retransmits");
    // A retransmission from the UAC is absorbed: the 100 is sent again.
    n.uac.send(proxy, &inv);
    assert_eq!(first_line(&n.uac.recv().0), "SIP/2.0 100 Trying");
    // fr_timer (2 s) fires: 408 to the UAC.
    let deadline = std::time::Instant::now() + Duration::from_secs(6);
    let r408 = loop {
        let m = n.uac.try_recv(Duration::from_millis(500));
        if let Some(m) = m.filter(|m| first_line(m).starts_with("SIP/2.0 408")) {
            break m;
        }
        assert!(std::time::Instant::now() < deadline, "no 408");
    };
    let to_tag = header(&r408, "To").unwrap();
    let tag = to_tag.split("tag=").nth(1).unwrap().to_string();
    n.uac.send(proxy, &same_branch(&inv, "ACK", Some(&tag)));
    let rows = n.d.wait_rows(6);
    let s = summary(&rows);
    // in INVITE twice (sip_trace() runs for the retransmission too, docs/decisions.md §7);
    // one out INVITE (timer A copies are skipped) and one 100 (the re-sent
    // 100 is a retransmission of the reply, not traced).
    assert_eq!(
        s,
        [
            "in INVITE",
            "out INVITE 100",
            "out INVITE",
            "in INVITE",
            "out INVITE 408",
            "in ACK"
        ]
    );
    assert!(
        n.d.log_text().contains("failure_route: 408 for tm-408"),
        "{}",
        n.d.log_text()
    );
    wait_no_transactions(&n.d);
}

#[test]
fn cancel_is_relayed_and_487_comes_back() {
    let n = start();
    let proxy = n.d.addr();
    let inv = invite(n.uac.addr(), proxy, "tm-cancel");
    n.uac.send(proxy, &inv);
    assert_eq!(first_line(&n.uac.recv().0), "SIP/2.0 100 Trying");
    let (fwd, _) = n.uas.recv();
    n.uas.send(proxy, &reply_to(&fwd, 180, "Ringing", "tt-c"));
    assert_eq!(first_line(&n.uac.recv().0), "SIP/2.0 180 Ringing");

    n.uac.send(proxy, &same_branch(&inv, "CANCEL", None));
    assert_eq!(first_line(&n.uac.recv().0), "SIP/2.0 200 canceling");
    let (cancel, _) = n.uas.recv();
    assert!(
        first_line(&cancel).starts_with("CANCEL sip:bob@example.com"),
        "{}",
        String::from_utf8_lossy(&cancel)
    );
    assert_eq!(
        header(&cancel, "Via"),
        header(&fwd, "Via").map(|v| v.split(',').next().unwrap().to_string())
    );
    n.uas.send(proxy, &reply_to(&cancel, 200, "OK", "tt-c"));
    n.uas
        .send(proxy, &reply_to(&fwd, 487, "Request Terminated", "tt-c"));
    // Hop-by-hop ACK for the 487 from the proxy, and the 487 to the UAC.
    let (ack, _) = n.uas.recv();
    assert!(
        first_line(&ack).starts_with("ACK "),
        "{}",
        String::from_utf8_lossy(&ack)
    );
    let (r487, _) = n.uac.recv();
    assert_eq!(first_line(&r487), "SIP/2.0 487 Request Terminated");
    n.uac.send(proxy, &same_branch(&inv, "ACK", Some("tt-c")));
    // The last event is the absorbed ACK from the UAC.
    n.d.wait_rows_where(1, |r| r.method == "ACK" && r.direction == "in");
    let s = summary(&n.d.rows());
    for want in [
        "out CANCEL",
        "out CANCEL 200",
        "in INVITE 487",
        "out INVITE 487",
        "out ACK",
        "in ACK",
    ] {
        assert!(s.contains(&want.to_string()), "{want} missing in {s:?}");
    }
    wait_no_transactions(&n.d);
}

#[test]
fn lost_request_and_reply_are_recovered_by_retransmission() {
    let n = start();
    let proxy = n.d.addr();
    let inv = invite(n.uac.addr(), proxy, "tm-loss");
    n.uac.send(proxy, &inv);
    assert_eq!(first_line(&n.uac.recv().0), "SIP/2.0 100 Trying");
    // The first copy "is lost": the UAS answers only the retransmission.
    let _lost = n.uas.recv();
    let (fwd, _) = n.uas.recv();
    let ok = reply_to(&fwd, 200, "OK", "tt-l");
    n.uas.send(proxy, &ok);
    let _lost_ok = n.uac.recv();
    // The UAS retransmits its 2xx; the proxy relays it again.
    n.uas.send(proxy, &ok);
    assert_eq!(first_line(&n.uac.recv().0), "SIP/2.0 200 OK");
    let s = summary(&n.d.wait_rows(7));
    assert_eq!(
        s,
        [
            "in INVITE",
            "out INVITE 100",
            "out INVITE",
            "in INVITE 200",
            "out INVITE 200",
            "in INVITE 200",
            "out INVITE 200"
        ]
    );
}

const FORKING: &str = r#"#!KAMAILIO
listen=udp:127.0.0.1:@PORT@
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "siptrace.so"
modparam("siptrace", "db_url", "sqlite://@DB@")
modparam("siptrace", "trace_on", 1)
modparam("siptrace", "trace_flag", 1)
modparam("tm", "retr_timer1", 100)

request_route {
    setflag(1);
    if ($rU == "busy") {
        t_newtran();
        t_reply("486", "Busy Here");
        exit;
    }
    t_on_reply("SEEN");
    t_on_failure("NEXT");
    t_relay("127.0.0.1", FIRST);
}

onreply_route[SEEN] {
    xlog("L_INFO", "onreply_route[SEEN]: $rs from $si:$sp\n");
}

failure_route[NEXT] {
    xlog("L_INFO", "failure_route[NEXT]: $T_reply_code\n");
    t_relay("127.0.0.1", SECOND);
}
"#;

#[test]
fn failure_route_forks_serially_and_t_reply_answers() {
    let (first, second, uac) = (Peer::new(), Peer::new(), Peer::new());
    let d = Daemon::start_with(
        "fork",
        FORKING,
        &[
            "-A",
            &format!("FIRST={}", first.port()),
            "-A",
            &format!("SECOND={}", second.port()),
        ],
    );
    let proxy = d.addr();
    let inv = invite(uac.addr(), proxy, "fork-1");
    uac.send(proxy, &inv);
    assert_eq!(first_line(&uac.recv().0), "SIP/2.0 100 Trying");
    let (f1, _) = first.recv();
    first.send(proxy, &reply_to(&f1, 486, "Busy Here", "b1"));
    // Hop-by-hop ACK to the first branch, then the second branch.
    assert!(first_line(&first.recv().0).starts_with("ACK "));
    let (f2, _) = second.recv();
    assert!(first_line(&f2).starts_with("INVITE "));
    assert_ne!(header(&f1, "Via"), header(&f2, "Via"), "a new branch");
    second.send(proxy, &reply_to(&f2, 200, "OK", "b2"));
    let (ok, _) = uac.recv();
    assert_eq!(first_line(&ok), "SIP/2.0 200 OK");
    assert!(header(&ok, "To").unwrap().contains("tag=b2"));
    let log = d.log_text();
    assert!(log.contains("failure_route[NEXT]: 486"), "{log}");
    assert!(log.contains("onreply_route[SEEN]: 200"), "{log}");

    // t_reply from request_route: a stateful local reply, traced.
    let busy = String::from_utf8_lossy(&invite(uac.addr(), proxy, "fork-2"))
        .replace("sip:bob@", "sip:busy@");
    uac.send(proxy, busy.as_bytes());
    assert_eq!(first_line(&uac.recv().0), "SIP/2.0 100 Trying");
    assert_eq!(first_line(&uac.recv().0), "SIP/2.0 486 Busy Here");
    let s = summary(&d.wait_rows(9));
    assert_eq!(
        s,
        [
            "out INVITE 100",
            "out INVITE",
            "in INVITE 486",
            "out ACK",
            "out INVITE",
            "in INVITE 200",
            "out INVITE 200",
            "out INVITE 100",
            "out INVITE 486"
        ]
    );
}
