//! Same SIP flows, same rows, on every backend: the real siptraced binary is
//! pointed (db_url) at a fresh SQLite file, PostgreSQL database, MariaDB
//! database and dbtext directory, each initialised with
//! scripts/siptraced-dbinit; the same UDP flows run through it (a call with
//! sip_trace() + the trace flag + traced_user_avp, stateless replies over
//! IPv4 and IPv6, a message whose header and body hold NUL and invalid
//! UTF-8). The stored rows are checked column by column against what the
//! peers put on and took off the wire, and against each other across
//! backends. PostgreSQL and MariaDB must be running (scripts/test starts
//! them); nothing is skipped.

mod common;
use common::*;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

const CFG: &str = r#"#!KAMAILIO
listen=udp:127.0.0.1:@PORT@
listen=udp:[::1]:@PORT6@
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "rr.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "mi_fifo.so"
loadmodule "jsonrpcs.so"
loadmodule "siptrace.so"
modparam("mi_fifo", "fifo_name", "@FIFO@")
modparam("jsonrpcs", "fifo_name", "@RPCFIFO@")
modparam("siptrace", "db_url", "@DBURL@")
modparam("siptrace", "trace_on", 1)
modparam("siptrace", "trace_flag", 22)
modparam("siptrace", "traced_user_avp", "$avp(s:user)")
modparam("siptrace", "trace_table_avp", "$avp(s:tbl)")

request_route {
    if (is_present_hf("X-User")) {
        $avp(s:user) = $hdr(X-User);
    }
    if ($hdr(X-Table) == "other") {
        $avp(s:tbl) = "other_table";
    } else if (is_present_hf("X-Table")) {
        $avp(s:tbl) = $hdr(X-Table);
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
        t_relay();
        exit;
    }
    t_relay("127.0.0.1", UAS_PORT);
}
"#;

/// A free UDP port on [::1].
fn free_udp6_port() -> u16 {
    UdpSocket::bind("[::1]:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// siptraced on `db`, with a UAC and UAS on IPv4 and a UAC on IPv6.
struct Setup {
    d: Daemon,
    uac: Peer,
    uas: Peer,
    uac6: UdpSocket,
    proxy6: SocketAddr,
}

fn start(db: &TestDb, tag: &str) -> Setup {
    let uac = Peer::new();
    let uas = Peer::new();
    let uac6 = UdpSocket::bind("[::1]:0").unwrap();
    uac6.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let port6 = free_udp6_port();
    let cfg = CFG
        .replace("@DBURL@", &db.url)
        .replace("@PORT6@", &port6.to_string());
    let define = format!("UAS_PORT={}", uas.port());
    let d = Daemon::start_with(tag, &cfg, &["-A", &define]);
    Setup {
        d,
        uac,
        uas,
        uac6,
        proxy6: SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port6)),
    }
}

/// Every datagram the peers sent to or received from the proxy, labelled.
#[derive(Default)]
struct Wire(Vec<(&'static str, Vec<u8>)>);

impl Wire {
    fn note(&mut self, label: &'static str, bytes: &[u8]) -> Vec<u8> {
        self.0.push((label, bytes.to_vec()));
        bytes.to_vec()
    }
    fn get(&self, label: &str) -> &[u8] {
        &self
            .0
            .iter()
            .find(|(l, _)| *l == label)
            .unwrap_or_else(|| panic!("no datagram {label}"))
            .1
    }
}

/// A To/From tag from a message's header.
fn tag_of(msg: &[u8], name: &str) -> String {
    header(msg, name)
        .and_then(|v| {
            v.split(";tag=")
                .nth(1)
                .map(|t| t.split(';').next().unwrap().to_string())
        })
        .unwrap_or_default()
}

/// The MESSAGE body: NUL, bytes that are not UTF-8, a valid multibyte char,
/// a truncated sequence, and dbtext's metacharacters.
const BIN_BODY: &[u8] = b"bin\0ary \xff\xfe caf\xc3\xa9 \xc3( a:b\\c\tend";
/// The same body as PostgreSQL and MariaDB store it (docs/decisions.md §2).
const BIN_BODY_ESCAPED: &[u8] = b"bin\\x00ary \\xff\\xfe caf\xc3\xa9 \\xc3( a:b\\c\tend";

/// Runs the flows; returns what went over the wire.
fn drive(s: &Setup) -> Wire {
    let mut w = Wire::default();
    let proxy = s.d.addr();
    let (uac, uas) = (s.uac.addr(), s.uas.addr());

    // 1. A call: INVITE/100/200/ACK/BYE/200, sip_trace() + flag + user AVP.
    let invite = format!(
        "INVITE sip:bob@{uas} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {uac};branch=z9hG4bK-flow-inv;rport\r\n\
         Max-Forwards: 70\r\n\
         From: \"Alice\" <sip:alice@{uac}>;tag=ft-call\r\n\
         To: <sip:bob@{proxy}>\r\n\
         Call-ID: flow-call@test\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:alice@{uac}>\r\n\
         X-Trace: script,flag\r\n\
         X-User: sip:alice@example.com\r\n\
         Content-Length: 0\r\n\r\n"
    );
    s.uac.send(proxy, &w.note("uac>INVITE", invite.as_bytes()));
    let (fwd, _) = s.uas.recv();
    w.note("uas<INVITE", &fwd);
    assert!(
        first_line(&fwd).starts_with("INVITE "),
        "{}",
        String::from_utf8_lossy(&fwd)
    );
    let ok = reply_to(&fwd, 200, "OK", "tt-call");
    s.uas.send(proxy, &w.note("uas>200INVITE", &ok));
    // The proxy's 100 Trying comes first (t_relay), then the relayed 200.
    loop {
        let (r, _) = s.uac.recv();
        if first_line(&r).starts_with("SIP/2.0 100") {
            w.note("uac<100", &r);
            continue;
        }
        assert_eq!(first_line(&r), "SIP/2.0 200 OK");
        w.note("uac<200INVITE", &r);
        break;
    }
    for (method, cseq, label_out, label_in) in [
        ("ACK", 1, "uac>ACK", "uas<ACK"),
        ("BYE", 2, "uac>BYE", "uas<BYE"),
    ] {
        let req = format!(
            "{method} sip:bob@{uas} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {uac};branch=z9hG4bK-flow-{method}\r\n\
             Max-Forwards: 70\r\n\
             Route: <sip:{proxy};lr>\r\n\
             From: \"Alice\" <sip:alice@{uac}>;tag=ft-call\r\n\
             To: <sip:bob@{proxy}>;tag=tt-call\r\n\
             Call-ID: flow-call@test\r\n\
             CSeq: {cseq} {method}\r\n\
             X-Trace: script,flag\r\n\
             X-User: sip:alice@example.com\r\n\
             Content-Length: 0\r\n\r\n"
        );
        s.uac.send(proxy, &w.note(label_out, req.as_bytes()));
        let (got, _) = s.uas.recv();
        assert!(
            first_line(&got).starts_with(method),
            "{}",
            String::from_utf8_lossy(&got)
        );
        w.note(label_in, &got);
    }
    let bye_ok = reply_to(w.get("uas<BYE"), 200, "OK", "");
    s.uas.send(proxy, &w.note("uas>200BYE", &bye_ok));
    let (r, _) = s.uac.recv();
    assert_eq!(first_line(&r), "SIP/2.0 200 OK");
    w.note("uac<200BYE", &r);

    // 2. Stateless reply over IPv4.
    let options = |from: SocketAddr, to: SocketAddr, id: &str| {
        format!(
            "OPTIONS sip:ping@{to} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {from};branch=z9hG4bK-{id}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:mon@{from}>;tag=ft-{id}\r\n\
             To: <sip:ping@{to}>\r\n\
             Call-ID: {id}@test\r\n\
             CSeq: 7 OPTIONS\r\n\
             X-Trace: script,flag\r\n\
             Content-Length: 0\r\n\r\n"
        )
    };
    s.uac.send(
        proxy,
        &w.note("uac>OPTIONS", options(uac, proxy, "flow-opt4").as_bytes()),
    );
    let (r, _) = s.uac.recv();
    assert_eq!(first_line(&r), "SIP/2.0 200 Alive");
    w.note("uac<200OPTIONS", &r);

    // 3. The same over IPv6.
    let uac6 = s.uac6.local_addr().unwrap();
    let req6 = options(uac6, s.proxy6, "flow-opt6");
    s.uac6
        .send_to(&w.note("uac6>OPTIONS", req6.as_bytes()), s.proxy6)
        .unwrap();
    let mut buf = vec![0u8; 65535];
    let (n, from) = s.uac6.recv_from(&mut buf).expect("reply over IPv6");
    assert_eq!(from, s.proxy6);
    assert_eq!(first_line(&buf[..n]), "SIP/2.0 200 Alive");
    w.note("uac6<200OPTIONS", &buf[..n]);

    // 4. A MESSAGE with NUL and invalid UTF-8 in a header and the body.
    let mut msg = format!(
        "MESSAGE sip:bob@{uas} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {uac};branch=z9hG4bK-flow-bin\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@{uac}>;tag=ft-bin\r\n\
         To: <sip:bob@{uas}>\r\n\
         Call-ID: flow-bin@test\r\n\
         CSeq: 3 MESSAGE\r\n\
         X-Trace: script,flag\r\n"
    )
    .into_bytes();
    msg.extend_from_slice(b"Subject: caf\xe9\r\nContent-Type: application/octet-stream\r\n");
    msg.extend_from_slice(format!("Content-Length: {}\r\n\r\n", BIN_BODY.len()).as_bytes());
    msg.extend_from_slice(BIN_BODY);
    s.uac.send(proxy, &w.note("uac>MESSAGE", &msg));
    let (got, _) = s.uas.recv();
    assert!(got.ends_with(BIN_BODY), "body relayed as is");
    w.note("uas<MESSAGE", &got);
    let accepted = reply_to(&got, 202, "Accepted", "tt-bin");
    s.uas.send(proxy, &w.note("uas>202MESSAGE", &accepted));
    let (r, _) = s.uac.recv();
    assert_eq!(first_line(&r), "SIP/2.0 202 Accepted");
    w.note("uac<202MESSAGE", &r);
    w
}

/// One expected row: direction, method, status, sender and receiver roles,
/// traced_user, and the datagram whose bytes the msg column holds.
type Want = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);

const ALICE: &str = "sip:alice@example.com";

/// What the flows store, in order (docs/decisions.md §1): sip_trace() gives
/// the received request, the flag the forwarded request and the replies in
/// and out (100 Trying included), the user AVP one more row per event.
const EXPECTED: &[Want] = &[
    ("in", "INVITE", "", "UAC", "PROXY", "", "uac>INVITE"),
    ("in", "INVITE", "", "UAC", "PROXY", ALICE, "uac>INVITE"),
    ("out", "INVITE", "100", "PROXY", "UAC", "", "uac<100"),
    ("out", "INVITE", "100", "PROXY", "UAC", ALICE, "uac<100"),
    ("out", "INVITE", "", "PROXY", "UAS", "", "uas<INVITE"),
    ("out", "INVITE", "", "PROXY", "UAS", ALICE, "uas<INVITE"),
    ("in", "INVITE", "200", "UAS", "PROXY", "", "uas>200INVITE"),
    (
        "in",
        "INVITE",
        "200",
        "UAS",
        "PROXY",
        ALICE,
        "uas>200INVITE",
    ),
    ("out", "INVITE", "200", "PROXY", "UAC", "", "uac<200INVITE"),
    (
        "out",
        "INVITE",
        "200",
        "PROXY",
        "UAC",
        ALICE,
        "uac<200INVITE",
    ),
    ("in", "ACK", "", "UAC", "PROXY", "", "uac>ACK"),
    ("in", "ACK", "", "UAC", "PROXY", ALICE, "uac>ACK"),
    ("out", "ACK", "", "PROXY", "UAS", "", "uas<ACK"),
    ("out", "ACK", "", "PROXY", "UAS", ALICE, "uas<ACK"),
    ("in", "BYE", "", "UAC", "PROXY", "", "uac>BYE"),
    ("in", "BYE", "", "UAC", "PROXY", ALICE, "uac>BYE"),
    ("out", "BYE", "", "PROXY", "UAS", "", "uas<BYE"),
    ("out", "BYE", "", "PROXY", "UAS", ALICE, "uas<BYE"),
    ("in", "BYE", "200", "UAS", "PROXY", "", "uas>200BYE"),
    ("in", "BYE", "200", "UAS", "PROXY", ALICE, "uas>200BYE"),
    ("out", "BYE", "200", "PROXY", "UAC", "", "uac<200BYE"),
    ("out", "BYE", "200", "PROXY", "UAC", ALICE, "uac<200BYE"),
    ("in", "OPTIONS", "", "UAC", "PROXY", "", "uac>OPTIONS"),
    (
        "out",
        "OPTIONS",
        "200",
        "PROXY",
        "UAC",
        "",
        "uac<200OPTIONS",
    ),
    ("in", "OPTIONS", "", "UAC6", "PROXY6", "", "uac6>OPTIONS"),
    (
        "out",
        "OPTIONS",
        "200",
        "PROXY6",
        "UAC6",
        "",
        "uac6<200OPTIONS",
    ),
    ("in", "MESSAGE", "", "UAC", "PROXY", "", "uac>MESSAGE"),
    ("out", "MESSAGE", "", "PROXY", "UAS", "", "uas<MESSAGE"),
    ("in", "MESSAGE", "202", "UAS", "PROXY", "", "uas>202MESSAGE"),
    (
        "out",
        "MESSAGE",
        "202",
        "PROXY",
        "UAC",
        "",
        "uac<202MESSAGE",
    ),
];

/// Replies the proxy generated (tm's 100 Trying, sl_send_reply).
/// How a backend's msg column holds bytes (docs/decisions.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holds {
    /// Every byte as is (SQLite TEXT, dbtext).
    Raw,
    /// UTF-8 text: NUL and invalid UTF-8 written as `\xNN` (PostgreSQL
    /// UTF8, MariaDB utf8mb4).
    Utf8,
    /// One byte per character: only NUL written as `\x00` (MariaDB latin1,
    /// the charset kamdbctl gave Kamailio's MySQL databases).
    Latin1,
}

impl Holds {
    fn of(kind: DbKind) -> Holds {
        if kind.escapes() {
            Holds::Utf8
        } else {
            Holds::Raw
        }
    }
    fn stored(self, bytes: &[u8]) -> Vec<u8> {
        match self {
            Holds::Raw => bytes.to_vec(),
            Holds::Utf8 => escaped(bytes),
            Holds::Latin1 => {
                let mut out = Vec::new();
                for &b in bytes {
                    match b {
                        0 => out.extend_from_slice(b"\\x00"),
                        b => out.push(b),
                    }
                }
                out
            }
        }
    }
}

/// `bytes` as a PostgreSQL/MariaDB text column holds them: NUL and every
/// byte of an invalid UTF-8 sequence as `\xNN` (lower-case hex).
fn escaped(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\0' {
                out.extend_from_slice(b"\\x00");
            } else {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
        for b in chunk.invalid() {
            out.extend_from_slice(format!("\\x{b:02x}").as_bytes());
        }
    }
    out
}

/// A row with the run's addresses and generated tags replaced by roles and
/// its msg by the datagram label: what must be equal on every backend.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Norm {
    direction: String,
    method: String,
    status: String,
    fromip: String,
    toip: String,
    callid: String,
    fromtag: String,
    totag: String,
    traced_user: String,
    msg: &'static str,
}

/// Address roles of one run.
struct Roles(Vec<(String, &'static str)>);

impl Roles {
    fn of(s: &Setup) -> Roles {
        Roles(vec![
            (format!("udp:{}", s.d.addr()), "udp:PROXY"),
            (format!("udp:{}", s.uac.addr()), "udp:UAC"),
            (format!("udp:{}", s.uas.addr()), "udp:UAS"),
            (format!("udp:{}", s.proxy6), "udp:PROXY6"),
            (format!("udp:{}", s.uac6.local_addr().unwrap()), "udp:UAC6"),
        ])
    }
    fn addr(&self, role: &str) -> &str {
        let want = format!("udp:{role}");
        &self.0.iter().find(|(_, r)| *r == want).unwrap().0
    }
    fn role(&self, addr: &str) -> String {
        self.0
            .iter()
            .find(|(a, _)| a == addr)
            .map(|(_, r)| r.to_string())
            .unwrap_or_else(|| format!("unknown {addr}"))
    }
}

/// `sip_trace_stats` over the MI FIFO. The reply FIFO gets a name of our
/// own (kamctl's `kamailio_receiver_<pid>` can meet a stale writer of
/// another process that had the same pid on this shared /tmp).
fn mi_stats(d: &Daemon) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let name = format!(
        "siptraced_dbflow_{}_{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    );
    let req = format!(":sip_trace_stats:{name}\n\n");
    let reply = d.mi_raw(&name, req.as_bytes(), Duration::from_secs(5));
    String::from_utf8_lossy(&reply.unwrap_or_default()).into_owned()
}

/// Which `sip_trace` layout the database was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// scripts/siptraced-dbinit: version 4 (time_us, totag).
    V4,
    /// sql/<backend>/siptrace-v2-create.sql: Kamailio 1.4-3.1 (neither).
    V2,
}

/// Flows through siptraced on one backend; checks every stored row against
/// the wire; returns the normalised rows.
fn flows_on(db: &TestDb, layout: Layout) -> Vec<Norm> {
    flows_holding(db, layout, Holds::of(db.kind))
}

fn flows_holding(db: &TestDb, layout: Layout, holds: Holds) -> Vec<Norm> {
    let kind = db.kind;
    let v4 = layout == Layout::V4;
    let t0 = siptraced::clock::local_datetime(siptraced::clock::WallTime::now().sec);
    let mut s = start(db, "flows");
    let wire = drive(&s);
    let roles = Roles::of(&s);
    db.wait_rows("sip_trace", EXPECTED.len());
    // The two MESSAGE rows needed \xNN escapes where the column cannot
    // hold their bytes; the counter says so.
    let stats = mi_stats(&s.d);
    let escapes = if holds == Holds::Raw { 0 } else { 2 };
    assert!(
        stats.contains(&format!("rows_written:: {}\n", EXPECTED.len()))
            && stats.contains(&format!("msgs_escaped:: {escapes}\n")),
        "{kind:?}: {stats}\n{}",
        s.d.log_text()
    );
    assert_eq!(s.d.stop(), Some(0), "clean exit");
    let t1 = siptraced::clock::local_datetime(siptraced::clock::WallTime::now().sec);
    let rows = db.rows("sip_trace");
    let log = s.d.log_text();
    let version = if v4 { 4 } else { 2 };
    assert!(
        log.contains(&format!("(table sip_trace v{version})")),
        "{kind:?}: layout v{version} detected at start-up (daemon dir {} exists: {}):\n{log}",
        s.d.dir.path().display(),
        s.d.dir.path().exists()
    );
    let got: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {}",
                r.direction, r.method, r.status, r.traced_user
            )
        })
        .collect();
    assert_eq!(rows.len(), EXPECTED.len(), "{kind:?} rows: {got:#?}\n{log}");

    let mut norms = Vec::new();
    for (i, (r, w)) in rows.iter().zip(EXPECTED).enumerate() {
        let (dir, method, status, from, to, user, label) = *w;
        let ctx = format!("{kind:?} row {i} ({label} {user:?})");
        let sent = wire.get(label);
        assert_eq!(r.direction, dir, "{ctx}: direction");
        assert_eq!(r.method, method, "{ctx}: method");
        assert_eq!(r.status, status, "{ctx}: status");
        assert_eq!(r.fromip, roles.addr(from), "{ctx}: fromip");
        assert_eq!(r.toip, roles.addr(to), "{ctx}: toip");
        assert_eq!(
            Some(r.callid.clone()),
            header(sent, "Call-ID"),
            "{ctx}: callid"
        );
        assert_eq!(r.fromtag, tag_of(sent, "From"), "{ctx}: fromtag");
        // Tags come from the message as sent (docs/decisions.md §2), also
        // for the replies the proxy makes itself.
        let totag = if !v4 {
            String::new()
        } else {
            tag_of(sent, "To")
        };
        assert_eq!(r.totag, totag, "{ctx}: totag");
        assert_eq!(r.traced_user, user, "{ctx}: traced_user");
        let want_msg = holds.stored(sent);
        assert!(
            r.msg == want_msg,
            "{ctx}: msg\n got: {:?}\nwant: {:?}",
            String::from_utf8_lossy(&r.msg),
            String::from_utf8_lossy(&want_msg)
        );
        assert!(
            r.time_stamp.len() == 19 && t0 <= r.time_stamp && r.time_stamp <= t1,
            "{ctx}: time_stamp {:?} not local time within [{t0}, {t1}]",
            r.time_stamp
        );
        if v4 {
            assert!(
                (0..1_000_000).contains(&r.time_us),
                "{ctx}: time_us {}",
                r.time_us
            );
        }
        norms.push(Norm {
            direction: r.direction.clone(),
            method: r.method.clone(),
            status: r.status.clone(),
            fromip: roles.role(&r.fromip),
            toip: roles.role(&r.toip),
            callid: r.callid.clone(),
            fromtag: r.fromtag.clone(),
            // The proxy's own To-tags differ per run (already checked
            // against the wire above): compared as a role.
            totag: if r.totag.is_empty() || r.totag.starts_with("tt-") {
                r.totag.clone()
            } else {
                "PROXY-TAG".into()
            },
            traced_user: r.traced_user.clone(),
            msg: label,
        });
    }
    // All rows of one event share one timestamp (docs/decisions.md §2).
    for pair in rows.chunks(2).zip(EXPECTED.chunks(2)) {
        if let ([a, b], [wa, wb]) = pair
            && wa.6 == wb.6
        {
            assert_eq!(
                (&a.time_stamp, a.time_us),
                (&b.time_stamp, b.time_us),
                "{kind:?}: rows of event {} share a timestamp",
                wa.6
            );
        }
    }
    // The binary message, as each backend is documented to hold it.
    let bin = rows
        .iter()
        .find(|r| r.method == "MESSAGE" && r.status.is_empty())
        .unwrap();
    let (body, subject): (&[u8], &[u8]) = match holds {
        Holds::Utf8 => (BIN_BODY_ESCAPED, b"Subject: caf\\xe9\r\n"),
        Holds::Raw | Holds::Latin1 => (BIN_BODY, b"Subject: caf\xe9\r\n"),
    };
    assert!(
        bin.msg.ends_with(&holds.stored(body)),
        "{kind:?}: body {:?}",
        String::from_utf8_lossy(&bin.msg)
    );
    assert!(contains(&bin.msg, subject), "{kind:?}: Subject");
    norms
}

#[test]
fn same_flows_give_the_same_rows_on_every_backend() {
    let reference = flows_on(&TestDb::initialised(DbKind::Sqlite), Layout::V4);
    for kind in [DbKind::Postgres, DbKind::Mysql, DbKind::Text] {
        let other = flows_on(&TestDb::initialised(kind), Layout::V4);
        assert_eq!(other.len(), reference.len(), "{kind:?}");
        for (i, (a, b)) in reference.iter().zip(&other).enumerate() {
            assert_eq!(a, b, "row {i}: sqlite vs {kind:?}");
        }
    }
}

/// An existing Kamailio 1.4-3.1 table (no time_us, no totag): siptraced
/// reads the layout at start-up and writes the columns the table has.
fn v2_table_gets_the_same_rows(kind: DbKind) {
    let db = TestDb::empty(kind);
    db.apply_script(if kind == DbKind::Text {
        "v2"
    } else {
        "siptrace-v2-create.sql"
    });
    let before = db.columns("sip_trace");
    assert!(!before.is_empty() && !before.iter().any(|c| c == "time_us" || c == "totag"));
    let norms = flows_on(&db, Layout::V2);
    assert_eq!(norms.len(), EXPECTED.len());
    assert_eq!(
        db.columns("sip_trace"),
        before,
        "{kind:?}: table left as it was"
    );
}

#[test]
fn v2_table_sqlite() {
    v2_table_gets_the_same_rows(DbKind::Sqlite);
}

#[test]
fn v2_table_postgres() {
    v2_table_gets_the_same_rows(DbKind::Postgres);
}

#[test]
fn v2_table_mysql() {
    v2_table_gets_the_same_rows(DbKind::Mysql);
}

/// A Kamailio 3.x MySQL database as kamdbctl made it: latin1 (its default
/// CHARSET), MyISAM, v2 table. latin1 holds every byte, so msg keeps the
/// exact bytes Kamailio would have stored (only NUL is written as \x00).
#[test]
fn v2_table_mysql_latin1() {
    let db = TestDb::empty(DbKind::Mysql);
    db.exec("ALTER DATABASE CHARACTER SET latin1");
    db.apply_script("siptrace-v2-create.sql");
    flows_holding(&db, Layout::V2, Holds::Latin1);
}

#[test]
fn v2_table_dbtext() {
    v2_table_gets_the_same_rows(DbKind::Text);
}

// ---------------------------------------------------------------- tables

/// `trace_table_avp` names chosen by the script or copied from a header:
/// the first is a real table, the others must never reach SQL (or a path).
const HOSTILE_TABLES: &[&str] = &[
    "other_table; DROP TABLE sip_trace; --",
    "sip_trace\" (msg) VALUES ('x'); DROP TABLE other_table; --",
    "other_table`; DROP TABLE other_table; --",
    "../other_table",
    "",
];

/// OPTIONS traced by sip_trace() only (one row), with an X-Table header.
fn options_to_table(s: &Setup, id: &str, table: Option<&str>) {
    let (uac, proxy) = (s.uac.addr(), s.d.addr());
    let x_table = table
        .map(|t| format!("X-Table: {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "OPTIONS sip:ping@{proxy} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {uac};branch=z9hG4bK-{id}\r\n\
         From: <sip:mon@{uac}>;tag=ft-{id}\r\n\
         To: <sip:ping@{proxy}>\r\n\
         Call-ID: {id}\r\n\
         CSeq: 1 OPTIONS\r\n\
         X-Trace: script\r\n\
         {x_table}Content-Length: 0\r\n\r\n"
    );
    s.uac.send(proxy, req.as_bytes());
    let (r, _) = s.uac.recv();
    assert_eq!(first_line(&r), "SIP/2.0 200 Alive");
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn callids(rows: &[TraceRow]) -> Vec<String> {
    rows.iter().map(|r| r.callid.clone()).collect()
}

/// `$avp(s:tbl) = "other_table"` sends the rows there; names that are not
/// SQL identifiers are refused and logged, their rows go to the default
/// table, and nothing else happens to the database.
fn trace_table_avp(kind: DbKind) {
    let db = TestDb::initialised(kind);
    db.dbinit("other_table");
    let tables = db.tables();
    assert!(tables.contains(&"other_table".to_string()), "{tables:?}");
    let mut s = start(&db, "tblavp");

    options_to_table(&s, "tbl-other", Some("other"));
    for (i, name) in HOSTILE_TABLES.iter().enumerate() {
        options_to_table(&s, &format!("tbl-bad-{i}"), Some(name));
    }
    options_to_table(&s, "tbl-missing", Some("no_such_table"));
    options_to_table(&s, "tbl-other-again", Some("other"));
    options_to_table(&s, "tbl-default", None);
    let n_default = HOSTILE_TABLES.len() + 2;
    db.wait_rows("sip_trace", n_default);
    db.wait_rows("other_table", 2);
    assert_eq!(s.d.stop(), Some(0));
    let log = s.d.log_text();

    assert_eq!(
        callids(&db.rows("other_table")),
        ["tbl-other", "tbl-other-again"],
        "{kind:?}: other_table"
    );
    let mut want: Vec<String> = (0..HOSTILE_TABLES.len())
        .map(|i| format!("tbl-bad-{i}"))
        .collect();
    want.push("tbl-missing".into());
    want.push("tbl-default".into());
    let rows = db.rows("sip_trace");
    assert_eq!(callids(&rows), want, "{kind:?}: sip_trace\n{log}");
    assert!(
        rows.iter()
            .all(|r| r.method == "OPTIONS" && r.direction == "in")
    );
    for name in HOSTILE_TABLES.iter().filter(|n| !n.is_empty()) {
        assert!(
            log.contains(&format!("table {name:?} is not an SQL identifier")),
            "{kind:?}: refusal of {name:?} logged:\n{log}"
        );
    }
    assert!(
        log.contains("table \"no_such_table\" does not exist; its rows go to table sip_trace"),
        "{kind:?}: missing table logged:\n{log}"
    );
    // Nothing dropped, nothing created, nothing written beside the directory.
    assert_eq!(db.tables(), tables, "{kind:?}: tables unchanged");
    if kind == DbKind::Text {
        let parent = std::path::Path::new(&db.name).parent().unwrap();
        assert!(
            !parent.join("other_table").exists(),
            "no file outside the dbtext directory"
        );
    }
}

#[test]
fn trace_table_avp_sqlite() {
    trace_table_avp(DbKind::Sqlite);
}

#[test]
fn trace_table_avp_postgres() {
    trace_table_avp(DbKind::Postgres);
}

#[test]
fn trace_table_avp_mysql() {
    trace_table_avp(DbKind::Mysql);
}

#[test]
fn trace_table_avp_dbtext() {
    trace_table_avp(DbKind::Text);
}

// ---------------------------------------------------------------- start-up

/// Runs siptraced on `db_url`, expecting it to give up at start-up; returns
/// its exit code and everything it printed.
fn start_fails(db_url: &str) -> (Option<i32>, String) {
    let dir = TempDir::new("nostart");
    let cfg = expand(
        &CFG.replace("@DBURL@", db_url)
            .replace("@PORT6@", &free_udp6_port().to_string()),
        free_udp_port(),
        &dir.join("unused.db"),
        &dir.join("mi.fifo"),
        &dir.join("rpc.fifo"),
        dir.path(),
    );
    let cfg_path = dir.join("siptraced.cfg");
    std::fs::write(&cfg_path, cfg).unwrap();
    let mut child = std::process::Command::new(BIN)
        .args(["-D", "-E", "-A", "UAS_PORT=5060", "-f"])
        .arg(&cfg_path)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "siptraced started on {db_url} although it should not:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// A server database without the table: siptraced refuses to start and
/// says which script creates it.
fn missing_table_is_a_startup_error(db: &TestDb) {
    let kind = db.kind;
    let (code, out) = start_fails(&db.url);
    assert!(
        matches!(code, Some(c) if c != 0),
        "exit code {code:?}\n{out}"
    );
    let dir = kind.sql_dir();
    for want in [
        "table sip_trace does not exist".to_string(),
        format!("run sql/{dir}/siptrace-create.sql"),
        format!("scripts/siptraced-dbinit {}", db.url),
    ] {
        assert!(out.contains(&want), "{kind:?}: {want:?} in:\n{out}");
    }
}

#[test]
fn missing_table_postgres() {
    let db = TestDb::empty(DbKind::Postgres);
    missing_table_is_a_startup_error(&db);
    assert!(db.tables().is_empty(), "nothing created");
}

#[test]
fn missing_table_mysql() {
    let db = TestDb::empty(DbKind::Mysql);
    missing_table_is_a_startup_error(&db);
    assert!(db.tables().is_empty(), "nothing created");
}

#[test]
fn missing_table_in_an_existing_sqlite_file() {
    let db = TestDb::empty(DbKind::Sqlite);
    db.exec("CREATE TABLE unrelated (x INTEGER)");
    missing_table_is_a_startup_error(&db);
    assert_eq!(
        db.tables(),
        ["unrelated"],
        "someone else's file is left alone"
    );
}

#[test]
fn missing_dbtext_directory_is_a_startup_error() {
    let dir = TempDir::new("nodir");
    let url = format!("text://{}", dir.join("absent").display());
    let (code, out) = start_fails(&url);
    assert!(matches!(code, Some(c) if c != 0), "{out}");
    assert!(out.contains("absent does not exist"), "{out}");
    assert!(out.contains("siptraced-dbinit text://"), "{out}");
    assert!(!dir.join("absent").exists());
}

#[test]
fn new_sqlite_file_gets_the_schema() {
    let db = TestDb::empty(DbKind::Sqlite);
    assert!(!std::path::Path::new(&db.name).exists());
    flows_on(&db, Layout::V4);
    let c = rusqlite::Connection::open(&db.name).unwrap();
    let version: i64 = c
        .query_row(
            "SELECT table_version FROM version WHERE table_name = 'sip_trace'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(version, 4);
    let mut st = c
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'sip_trace' ORDER BY name")
        .unwrap();
    let idx: Vec<String> = st
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        idx,
        [
            "sip_trace_callid_idx",
            "sip_trace_date_idx",
            "sip_trace_fromip_idx",
            "sip_trace_traced_user_idx"
        ]
    );
}

// ---------------------------------------------------------------- dbtext

/// A new dbtext directory gets Kamailio's files; what siptraced appends is
/// in Kamailio's format and reads back with our own reader.
#[test]
fn dbtext_files_are_kamailios_format() {
    let db = TestDb::empty(DbKind::Text);
    flows_on(&db, Layout::V4);
    let sql = repo_root().join("sql/db_text");
    let table = std::fs::read(db.text_file("sip_trace")).unwrap();
    let header = std::fs::read(sql.join("sip_trace")).unwrap();
    assert!(
        table.starts_with(&header),
        "Kamailio's header line, trailing space included"
    );
    assert_eq!(
        std::fs::read_to_string(db.text_file("version")).unwrap(),
        std::fs::read_to_string(sql.join("version")).unwrap()
    );
    let lines: Vec<&[u8]> = table[header.len()..]
        .strip_suffix(b"\n")
        .unwrap()
        .split(|b| *b == b'\n')
        .collect();
    assert_eq!(lines.len(), EXPECTED.len());
    for (i, line) in lines.iter().enumerate() {
        let fields = siptraced::db::text::split_row(line);
        assert_eq!(fields.len(), 13, "line {i}");
        assert_eq!(fields[0], (i + 1).to_string().as_bytes(), "auto id");
        assert!(
            fields[1].iter().all(u8::is_ascii_digit),
            "time_stamp(int) is Unix seconds"
        );
        assert!(
            !line.contains(&b'\r') && !line.contains(&0),
            "line {i} escaped"
        );
    }
    // The MESSAGE as received: every dbtext escape, other bytes as they are.
    let bin = lines
        .iter()
        .find(|l| contains(l, b":flow-bin@test:"))
        .unwrap();
    let mut want_body = Vec::new();
    want_body
        .extend_from_slice(b"\\r\\n\\r\\nbin\\0ary \xff\xfe caf\xc3\xa9 \xc3( a\\:b\\\\c\\tend:");
    assert!(
        contains(bin, &want_body),
        "{}",
        String::from_utf8_lossy(bin)
    );
    assert!(
        contains(bin, b"Subject\\: caf"),
        "colon in a header escaped"
    );
    // Our reader gives back every column.
    let rows = siptraced::db::text::read_table(&db.text_file("sip_trace")).unwrap();
    assert_eq!(rows.len(), EXPECTED.len());
    assert!(rows.iter().all(|r| r.len() == 13));
    assert_eq!(rows[0][3], "flow-call@test");
    assert_eq!(rows[0][12], "in");
}

// ---------------------------------------------------------------- ODBC

/// With the `odbc` feature: the same flows through `unixodbc://` URLs
/// (DSN-less, Debian's psqlODBC and MariaDB Connector/ODBC) give the same
/// rows as the native backends.
#[cfg(feature = "odbc")]
#[test]
fn same_flows_through_unixodbc() {
    let reference = flows_on(&TestDb::initialised(DbKind::Sqlite), Layout::V4);
    for (kind, driver) in [
        (DbKind::Postgres, "PostgreSQL Unicode"),
        (DbKind::Mysql, "MariaDB Unicode"),
    ] {
        let mut db = TestDb::initialised(kind);
        // scheme://user@127.0.0.1:port/name, as TestDb builds it.
        let (user, rest) = db.url.split_once("://").unwrap().1.split_once('@').unwrap();
        let port = rest.split_once(':').unwrap().1.split_once('/').unwrap().0;
        let (user, port) = (user.to_string(), port.to_string());
        db.url = format!(
            "unixodbc://{user}@/Driver={{{driver}}};Server=127.0.0.1;Port={port};Database={}",
            db.name
        );
        let rows = flows_on(&db, Layout::V4);
        assert_eq!(rows, reference, "{kind:?} through ODBC");
    }
}
