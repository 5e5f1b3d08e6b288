//! A call through the real daemon over UDP: UAC → siptraced → UAS, with
//! sip_trace(), with the trace flag, and with traced_user AVPs; then the
//! exact rows in SQLite.

mod common;
use common::*;
use std::net::SocketAddr;
use std::time::Duration;

const CFG: &str = r#"#!KAMAILIO
listen=udp:127.0.0.1:@PORT@
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "rr.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "mi_fifo.so"
loadmodule "jsonrpcs.so"
loadmodule "siptrace.so"
modparam("mi_fifo", "fifo_name", "@FIFO@")
modparam("jsonrpcs", "fifo_name", "@RPCFIFO@")
modparam("siptrace", "db_url", "sqlite://@DB@")
modparam("siptrace", "trace_on", 1)
modparam("siptrace", "trace_flag", 22)
modparam("siptrace", "traced_user_avp", "$avp(s:user)")

request_route {
    if (!mf_process_maxfwd_header("10")) {
        sl_send_reply("483", "Too Many Hops");
        exit;
    }
    if ($hdr(X-Trace) =~ "user") {
        $avp(s:user) = "sip:alice@example.com";
        $avp(s:user) = "sip:bob@example.com";
    }
    if ($hdr(X-Trace) =~ "script") {
        sip_trace();
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
    forward("127.0.0.1", UAS_PORT);
}
"#;

struct Call {
    uac: Peer,
    uas: Peer,
    d: Daemon,
}

fn start() -> Call {
    let uas = Peer::new();
    let uac = Peer::new();
    let define = format!("UAS_PORT={}", uas.port());
    let d = Daemon::start_with("call", CFG, &["-A", &define]);
    Call { uac, uas, d }
}

/// INVITE/200/ACK/BYE/200 through the proxy; returns what each side saw.
fn run_call(c: &Call, call_id: &str, mode: &str) -> Vec<Vec<u8>> {
    let proxy = c.d.addr();
    let (uac, uas) = (c.uac.addr(), c.uas.addr());
    let mut wire = Vec::new();
    let inv = sip_invite(uac, proxy, uas, call_id, mode);
    c.uac.send(proxy, &inv);
    wire.push(inv);
    let (fwd, from) = c.uas.recv();
    assert_eq!(from, proxy);
    assert!(
        first_line(&fwd).starts_with("INVITE "),
        "{}",
        String::from_utf8_lossy(&fwd)
    );
    let ok = reply_to(&fwd, 200, "OK", &format!("tt-{call_id}"));
    c.uas.send(proxy, &ok);
    let (ok_at_uac, _) = c.uac.recv();
    assert_eq!(first_line(&ok_at_uac), "SIP/2.0 200 OK");
    assert_eq!(
        header(&ok_at_uac, "Via")
            .unwrap()
            .matches("SIP/2.0")
            .count(),
        1,
        "our Via removed"
    );
    for (i, (m, n)) in [("ACK", 1), ("BYE", 2)].into_iter().enumerate() {
        let req = sip_in_dialog(
            m,
            n,
            uac,
            proxy,
            uas,
            call_id,
            mode,
            &format!("{m}{i}-{call_id}"),
        );
        c.uac.send(proxy, &req);
        let (got, _) = c.uas.recv();
        assert!(
            first_line(&got).starts_with(m),
            "{}",
            String::from_utf8_lossy(&got)
        );
        assert!(header(&got, "Route").is_none(), "our Route entry removed");
        if m == "BYE" {
            c.uas.send(proxy, &reply_to(&got, 200, "OK", ""));
            let (r, _) = c.uac.recv();
            assert_eq!(first_line(&r), "SIP/2.0 200 OK");
        }
    }
    wire
}

fn summary(rows: &[TraceRow]) -> Vec<String> {
    rows.iter()
        .map(|r| {
            format!(
                "{} {} {} {}",
                r.direction, r.method, r.status, r.traced_user
            )
            .trim_end()
            .to_string()
        })
        .collect()
}

#[test]
fn sip_trace_stores_requests_as_received() {
    let c = start();
    let wire = run_call(&c, "st-1", "script");
    let rows = c.d.wait_rows(3);
    assert_eq!(summary(&rows), ["in INVITE", "in ACK", "in BYE"]);
    let r = &rows[0];
    assert_eq!(r.msg, wire[0], "stored exactly as received");
    assert_eq!(r.callid, "st-1");
    assert_eq!(r.fromtag, "ft-st-1");
    assert_eq!(r.totag, "");
    assert_eq!(r.status, "");
    assert_eq!(r.fromip, format!("udp:{}", c.uac.addr()));
    assert_eq!(r.toip, format!("udp:{}", c.d.addr()));
    assert_eq!(rows[1].totag, "tt-st-1");
    assert!(r.time_stamp.len() == 19 && r.time_us < 1_000_000);
}

#[test]
fn trace_flag_stores_what_is_sent_and_the_replies() {
    let c = start();
    run_call(&c, "fl-1", "flag");
    let rows = c.d.wait_rows(7);
    assert_eq!(
        summary(&rows),
        [
            "out INVITE",
            "in INVITE 200",
            "out INVITE 200",
            "out ACK",
            "out BYE",
            "in BYE 200",
            "out BYE 200"
        ]
    );
    let proxy = format!("udp:{}", c.d.addr());
    let inv = &rows[0];
    assert_eq!(
        (inv.fromip.as_str(), inv.toip.clone()),
        (proxy.as_str(), format!("udp:{}", c.uas.addr()))
    );
    assert!(
        String::from_utf8_lossy(&inv.msg).contains(&format!("Via: SIP/2.0/UDP {}", c.d.addr())),
        "sent bytes, with our Via"
    );
    assert!(String::from_utf8_lossy(&inv.msg).contains("Record-Route: <sip:127.0.0.1:"));
    let reply_in = &rows[1];
    assert_eq!(reply_in.fromip, format!("udp:{}", c.uas.addr()));
    assert_eq!(reply_in.toip, proxy);
    assert_eq!(reply_in.totag, "tt-fl-1");
    let reply_out = &rows[2];
    assert_eq!(reply_out.toip, format!("udp:{}", c.uac.addr()));
    assert_eq!(
        String::from_utf8_lossy(&reply_out.msg)
            .matches("Via:")
            .count(),
        1
    );
}

#[test]
fn traced_user_avp_multiplies_rows_and_survives_trace_off() {
    let c = start();
    run_call(&c, "us-1", "script,user");
    // Each request: sip_trace() gives '' + one row per user (newest value
    // first, Kamailio's AVP list order); forwarding and the relayed replies
    // give the users' rows (no flag, so no '' row).
    let rows = c.d.wait_rows(23);
    assert_eq!(
        summary(&rows)[..5],
        [
            "in INVITE",
            "in INVITE  sip:bob@example.com",
            "in INVITE  sip:alice@example.com",
            "out INVITE  sip:bob@example.com",
            "out INVITE  sip:alice@example.com"
        ]
    );
    assert_eq!(rows.len(), 23);

    let out = c.d.kamctl(&["fifo", "sip_trace", "off"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    let st = c.d.kamctl(&["fifo", "sip_trace"]);
    assert_eq!(String::from_utf8_lossy(&st.stdout), "off\n");

    run_call(&c, "us-2", "script,user");
    let rows2 = c.d.wait_rows_where(20, |r| r.callid == "us-2");
    assert_eq!(
        rows2.len(),
        20,
        "only the AVP rows while off: {:?}",
        summary(&rows2)
    );
    assert!(rows2.iter().all(|r| !r.traced_user.is_empty()));

    assert!(c.d.kamctl(&["fifo", "sip_trace", "on"]).status.success());
    assert_eq!(
        String::from_utf8_lossy(&c.d.kamctl(&["fifo", "sip_trace"]).stdout),
        "on\n"
    );
    run_call(&c, "us-3", "script");
    let rows3 = c.d.wait_rows_where(3, |r| r.callid == "us-3");
    assert_eq!(summary(&rows3), ["in INVITE", "in ACK", "in BYE"]);
}

#[test]
fn max_forwards_above_max_limit_is_lowered() {
    // maxfwd's max_limit: 70 becomes max_limit + 1, then the decrement; a value
    // below the limit is only decremented (docs/decisions.md §7).
    let uas = Peer::new();
    let uac = Peer::new();
    let cfg = CFG.replace(
        "modparam(\"siptrace\", \"trace_on\", 1)",
        "modparam(\"siptrace\", \"trace_on\", 1)\nmodparam(\"maxfwd\", \"max_limit\", 16)",
    );
    let define = format!("UAS_PORT={}", uas.port());
    let d = Daemon::start_with("maxfwd", &cfg, &["-A", &define]);
    for (sent, want) in [("70", "16"), ("16", "15"), ("3", "2")] {
        let call_id = format!("mf-{sent}");
        let inv = sip_invite(uac.addr(), d.addr(), uas.addr(), &call_id, "none");
        let inv = replace_bytes(
            &inv,
            b"Max-Forwards: 70",
            format!("Max-Forwards: {sent}").as_bytes(),
        );
        uac.send(d.addr(), &inv);
        let (fwd, _) = uas.recv();
        assert_eq!(header(&fwd, "Call-ID").as_deref(), Some(call_id.as_str()));
        assert_eq!(
            header(&fwd, "Max-Forwards").as_deref(),
            Some(want),
            "sent {sent}: {}",
            String::from_utf8_lossy(&fwd)
        );
    }
}

#[test]
fn stateless_reply_is_traced_with_the_flag() {
    let c = start();
    let proxy = c.d.addr();
    let req = format!(
        "OPTIONS sip:ping@{proxy} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK-o1\r\n\
         From: <sip:a@x>;tag=o1\r\nTo: <sip:p@x>\r\nCall-ID: opt-1\r\nCSeq: 7 OPTIONS\r\n\
         X-Trace: flag\r\nContent-Length: 0\r\n\r\n",
        c.uac.addr()
    );
    c.uac.send(proxy, req.as_bytes());
    let (r, _) = c.uac.recv();
    assert_eq!(first_line(&r), "SIP/2.0 200 Alive");
    assert!(header(&r, "To").unwrap().contains(";tag="));
    let rows = c.d.wait_rows(1);
    assert_eq!(summary(&rows), ["out OPTIONS 200"]);
    assert_eq!(rows[0].msg, r);
    assert_eq!(rows[0].toip, format!("udp:{}", c.uac.addr()));
}

#[test]
fn garbage_and_truncated_datagrams_are_dropped_and_the_daemon_goes_on() {
    let mut c = start();
    let proxy = c.d.addr();
    let inv = sip_invite(c.uac.addr(), proxy, c.uas.addr(), "bad-1", "script");
    let junk: Vec<Vec<u8>> = vec![
        b"hello world".to_vec(),
        vec![0u8; 1500],
        (0..=255u8).collect(),
        inv[..inv.len() / 2].to_vec(),
        b"INVITE sip:x SIP/2.0\r\nContent-Length: 500\r\n\r\nshort".to_vec(),
        b"\r\n\r\n".to_vec(),
    ];
    for j in &junk {
        c.uac.send(proxy, j);
    }
    // Still routing and tracing.
    run_call(&c, "good-1", "script");
    let rows = c.d.wait_rows(3);
    assert_eq!(summary(&rows), ["in INVITE", "in ACK", "in BYE"]);
    assert!(rows.iter().all(|r| r.callid == "good-1"));
    assert!(c.d.is_running());
    assert_eq!(c.d.stop(), Some(0));
}

#[test]
fn ipv6_addresses_are_bracketed_in_rows() {
    let cfg = r#"listen=udp:[::1]:@PORT@
loadmodule "siptrace.so"
modparam("siptrace", "db_url", "sqlite://@DB@")
modparam("siptrace", "trace_on", 1)
modparam("siptrace", "trace_flag", 1)
request_route {
    sip_trace();
    setflag(1);
    forward("::1", UAS_PORT);
}
"#;
    let bind6 = || {
        let s = std::net::UdpSocket::bind("[::1]:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        s
    };
    let (uac, uas) = (bind6(), bind6());
    let uas_port = uas.local_addr().unwrap().port();
    let d = Daemon::start_with("v6", cfg, &["-A", &format!("UAS_PORT={uas_port}")]);
    let proxy: SocketAddr = format!("[::1]:{}", d.port).parse().unwrap();
    let msg = format!(
        "MESSAGE sip:bob@[::1] SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK-v6\r\n\
         Max-Forwards: 70\r\nFrom: <sip:a@[::1]>;tag=v6\r\nTo: <sip:b@[::1]>\r\nCall-ID: v6-1\r\n\
         CSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n",
        uac.local_addr().unwrap()
    );
    uac.send_to(msg.as_bytes(), proxy).unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = uas.recv_from(&mut buf).unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n])
            .contains(&format!("Via: SIP/2.0/UDP [::1]:{};branch=", d.port))
    );
    let rows = d.wait_rows(2);
    assert_eq!(rows[0].fromip, format!("udp:{}", uac.local_addr().unwrap()));
    assert_eq!(rows[0].toip, format!("udp:[::1]:{}", d.port));
    assert_eq!(rows[1].direction, "out");
    assert_eq!(rows[1].toip, format!("udp:[::1]:{uas_port}"));
}
