//! Secrets masked before storage and mirroring (docs/decisions.md §13),
//! through the real daemon: a REGISTER with Digest credentials and an
//! INVITE offering two SDP `a=crypto` lines are relayed statelessly; the
//! UAS gets them unchanged, the SQLite rows and the duplicate_uri copies
//! hold them with each secret turned into `x`s of the same length.

mod common;
use common::*;
use std::net::SocketAddr;
use std::time::Duration;

const CFG: &str = r#"#!KAMAILIO
listen=udp:127.0.0.1:@PORT@
loadmodule "sl.so"
loadmodule "mi_fifo.so"
loadmodule "siptrace.so"
modparam("mi_fifo", "fifo_name", "@FIFO@")
modparam("siptrace", "db_url", "sqlite://@DB@")
modparam("siptrace", "trace_on", 1)
modparam("siptrace", "trace_flag", 22)
modparam("siptrace", "duplicate_uri", "sip:@SINK@")
@MASK@

request_route {
    sip_trace();
    setflag(22);
    forward("127.0.0.1", @UAS_PORT@);
}
"#;

const RESPONSE: &str = "6629fae49393a05397450978507c4ef1";
const CNONCE: &str = "0a4f113b";
const PROXY_RESPONSE: &str = "d41d8cd98f00b204e9800998ecf8427e";
const PROXY_CNONCE: &str = "c0ffee42";
const KEYS: [&str; 3] = [
    "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
    "NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj",
    "QUJjZGVmMTIzNDU2Nzg5QUJDREUwMTIzNDU2Nzg5",
];

fn secrets() -> Vec<&'static str> {
    let mut s = vec![RESPONSE, CNONCE, PROXY_RESPONSE, PROXY_CNONCE];
    s.extend(KEYS);
    s
}

/// `msg` with every secret replaced by as many `x`s: what a row must hold.
fn masked(msg: &[u8]) -> Vec<u8> {
    let mut text = String::from_utf8(msg.to_vec()).unwrap();
    for s in secrets() {
        text = text.replace(s, &"x".repeat(s.len()));
    }
    text.into_bytes()
}

fn has_secret(msg: &[u8]) -> bool {
    let text = String::from_utf8_lossy(msg);
    secrets().iter().any(|s| text.contains(s))
}

fn register(uac: SocketAddr, proxy: SocketAddr) -> Vec<u8> {
    format!(
        "REGISTER sip:example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP {uac};branch=z9hG4bK-reg-1;rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@example.com>;tag=reg1\r\n\
         To: <sip:alice@example.com>\r\n\
         Call-ID: mask-reg-1\r\n\
         CSeq: 2 REGISTER\r\n\
         Contact: <sip:alice@{uac}>\r\n\
         Authorization: Digest username=\"alice\", realm=\"example.com\", nonce=\"4d2b\", \
         uri=\"sip:example.com\", response=\"{RESPONSE}\", algorithm=MD5, cnonce=\"{CNONCE}\", \
         qop=auth, nc=00000001\r\n\
         proxy-authorization: Digest username=\"alice\", realm=\"{proxy}\", nonce=\"77\", \
         uri=\"sip:example.com\", response={PROXY_RESPONSE}, cnonce={PROXY_CNONCE}, qop=auth, nc=1\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn invite(uac: SocketAddr) -> Vec<u8> {
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio 4000 RTP/SAVP 0\r\n\
         a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{}|2^20|1:32\r\n\
         a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{};inline:{}|2^20|2:4 KDR=1\r\n",
        KEYS[0], KEYS[1], KEYS[2]
    );
    format!(
        "INVITE sip:bob@example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP {uac};branch=z9hG4bK-inv-1;rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@example.com>;tag=inv1\r\n\
         To: <sip:bob@example.com>\r\n\
         Call-ID: mask-inv-1\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:alice@{uac}>\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
    .into_bytes()
}

struct Run {
    d: Daemon,
    /// (what the UAC sent, what the UAS received), per request.
    requests: Vec<(Vec<u8>, Vec<u8>)>,
    copies: Vec<Vec<u8>>,
}

fn run(tag: &str, mask: &str) -> Run {
    let (uac, uas, sink) = (Peer::new(), Peer::new(), Peer::new());
    let cfg = CFG
        .replace("@SINK@", &sink.addr().to_string())
        .replace("@UAS_PORT@", &uas.port().to_string())
        .replace("@MASK@", mask);
    let d = Daemon::start(tag, &cfg);
    let mut requests = Vec::new();
    for req in [register(uac.addr(), d.addr()), invite(uac.addr())] {
        uac.send(d.addr(), &req);
        let (got, _) = uas.recv();
        requests.push((req, got));
    }
    // Two events per request (in, out), each one '' row and one copy.
    d.wait_rows(4);
    let copies = sink
        .drain(Duration::from_millis(300))
        .into_iter()
        .map(|(b, _)| b)
        .collect();
    Run {
        d,
        requests,
        copies,
    }
}

#[test]
fn secrets_are_masked_in_rows_and_copies_never_on_the_wire() {
    let mut r = run("mask-default", "");
    let rows = r.d.rows();
    assert_eq!(rows.len(), 4, "{rows:#?}");
    for (sent, received) in &r.requests {
        // The relayed request: the proxy's edits only (Via, Max-Forwards),
        // every secret as the UAC wrote it.
        assert!(has_secret(received));
        assert_eq!(
            secrets()
                .iter()
                .filter(|s| String::from_utf8_lossy(sent).contains(*s))
                .count(),
            secrets()
                .iter()
                .filter(|s| String::from_utf8_lossy(received).contains(*s))
                .count(),
        );
        let tail = |m: &[u8]| {
            let t = String::from_utf8_lossy(m).into_owned();
            t[t.find("From:").unwrap()..].to_string()
        };
        assert_eq!(
            tail(sent),
            tail(received),
            "the UAS got the request unchanged"
        );
    }
    let (reg, inv) = (&r.requests[0], &r.requests[1]);
    let want = [
        masked(&reg.0),
        masked(&reg.1),
        masked(&inv.0),
        masked(&inv.1),
    ];
    for (row, want) in rows.iter().zip(&want) {
        assert_eq!(
            String::from_utf8_lossy(&row.msg),
            String::from_utf8_lossy(want),
            "{} {}",
            row.direction,
            row.method
        );
        assert!(!has_secret(&row.msg));
    }
    assert_eq!(r.copies.len(), 4);
    for (copy, row) in r.copies.iter().zip(&rows) {
        assert_eq!(copy, &row.msg, "a copy carries the stored bytes");
    }
    assert_eq!(r.d.trace_stat("msgs_masked"), 4);
    assert_eq!(r.d.stop(), Some(0));
}

#[test]
fn mask_none_stores_verbatim() {
    let mut r = run("mask-none", "modparam(\"siptrace\", \"mask\", \"none\")");
    let rows = r.d.rows();
    let (reg, inv) = (&r.requests[0], &r.requests[1]);
    let want = [&reg.0, &reg.1, &inv.0, &inv.1];
    assert_eq!(rows.len(), 4);
    for (row, want) in rows.iter().zip(want) {
        assert_eq!(&row.msg, want, "{} {}", row.direction, row.method);
    }
    let copies: Vec<&Vec<u8>> = r.copies.iter().collect();
    assert_eq!(copies, want);
    assert_eq!(r.d.trace_stat("msgs_masked"), 0);
    assert_eq!(r.d.stop(), Some(0));
}
