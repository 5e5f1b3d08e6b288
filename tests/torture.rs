//! RFC 4475 (and RFC 5118) torture messages through the real daemon
//! (docs/decisions.md §6): every valid one is traced exactly as received and the
//! requests are relayed; invalid requests get 400/505 and no row; nothing
//! crashes the daemon.

mod common;
use common::*;
use std::time::Duration;

const CFG: &str = r#"listen=udp:127.0.0.1:@PORT@
loadmodule "sl.so"
loadmodule "textops.so"
loadmodule "siptrace.so"
modparam("siptrace", "db_url", "sqlite://@DB@")
modparam("siptrace", "trace_on", 1)
request_route {
    sip_trace();
    if ($hdr(X-Route) == "ruri") {
        forward();
        exit;
    }
    forward("127.0.0.1", UAS_PORT);
}
onreply_route {
    sip_trace();
}
"#;

/// (file, what the daemon must do with it).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Want {
    /// Traced; a request is relayed.
    Traced,
    /// A request answered with this code, not traced.
    Answered(u16),
    /// Dropped silently (an invalid reply, or not SIP at all).
    Dropped,
}

const CASES: &[(&str, Want)] = &[
    ("wsinv", Want::Traced),
    ("intmeth", Want::Traced),
    ("esc01", Want::Traced),
    ("escnull", Want::Traced),
    ("esc02", Want::Traced),
    ("lwsdisp", Want::Traced),
    ("longreq", Want::Traced),
    ("dblreq", Want::Traced),
    ("semiuri", Want::Traced),
    ("transports", Want::Traced),
    ("mpart01", Want::Traced),
    ("unreason", Want::Traced),
    ("noreason", Want::Traced),
    // Its Via is the breach: a 400 cannot be addressed.
    ("badinv01", Want::Dropped),
    ("clerr", Want::Answered(400)),
    ("ncl", Want::Answered(400)),
    ("scalar02", Want::Answered(400)),
    ("scalarlg", Want::Dropped),
    ("quotbal", Want::Answered(400)),
    ("ltgtruri", Want::Answered(400)),
    ("lwsruri", Want::Answered(400)),
    ("lwsstart", Want::Answered(400)),
    ("trws", Want::Answered(400)),
    ("escruri", Want::Answered(400)),
    ("baddate", Want::Traced),
    ("regbadct", Want::Answered(400)),
    ("badaspec", Want::Answered(400)),
    ("baddn", Want::Answered(400)),
    ("badvers", Want::Answered(505)),
    ("mismatch01", Want::Answered(400)),
    ("mismatch02", Want::Answered(400)),
    ("bigcode", Want::Dropped),
    ("badbranch", Want::Traced),
    ("insuf", Want::Answered(400)),
    ("unkscm", Want::Traced),
    ("novelsc", Want::Traced),
    ("unksm2", Want::Traced),
    ("bext01", Want::Traced),
    ("invut", Want::Traced),
    ("regaut01", Want::Traced),
    ("multi01", Want::Answered(400)),
    ("mcl01", Want::Answered(400)),
    ("bcast", Want::Traced),
    ("zeromf", Want::Traced),
    ("cparam01", Want::Traced),
    ("cparam02", Want::Traced),
    ("regescrt", Want::Traced),
    ("sdp01", Want::Traced),
    ("inv2543", Want::Traced),
    ("ipv6-good", Want::Traced),
    ("ipv6-bad", Want::Answered(400)),
    ("port-ambiguous", Want::Traced),
    ("port-unambiguous", Want::Traced),
    ("via-received-param-with-delim", Want::Traced),
    ("via-received-param-no-delim", Want::Traced),
    ("mult-ip-in-header", Want::Traced),
    ("ipv4-mapped-ipv6", Want::Traced),
    ("ipv6-extra-colon", Want::Traced),
];

/// The message with its first Via's sent-by pointed at `to`, so that the
/// answer comes back to the test (the RFC's hosts are documentation
/// addresses: nothing may be sent there).
fn redirect_via(m: &[u8], to: std::net::SocketAddr) -> Vec<u8> {
    let mut out = Vec::with_capacity(m.len() + 16);
    let mut done = false;
    for line in m.split_inclusive(|b| *b == b'\n') {
        let lower = String::from_utf8_lossy(line).to_ascii_lowercase();
        if !done && (lower.starts_with("via:") || lower.starts_with("v:")) {
            let text = String::from_utf8_lossy(line).into_owned();
            // "Via: SIP/2.0/UDP host[:port];params" -> replace host[:port]
            let proto_at = text.find("SIP/").expect("via protocol");
            let after = &text[proto_at..];
            let sp = after.find(' ').expect("sent-by");
            let start = proto_at + sp + 1;
            let end = start
                + text[start..]
                    .find([';', ',', '\r', '\n'])
                    .unwrap_or(text.len() - start);
            out.extend_from_slice(format!("{}{}{}", &text[..start], to, &text[end..]).as_bytes());
            done = true;
        } else {
            out.extend_from_slice(line);
        }
    }
    out
}

fn is_reply(m: &[u8]) -> bool {
    m.starts_with(b"SIP/2.0 ")
}

#[test]
fn torture_messages_are_traced_relayed_or_answered() {
    let uas = Peer::new();
    let define = format!("UAS_PORT={}", uas.port());
    let d = Daemon::start_with("torture", CFG, &["-A", &define]);
    let files = std::fs::read_dir(repo_root().join("src/sip/testdata"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "dat")
        });
    assert_eq!(
        files.count(),
        CASES.len(),
        "every test message has an expected outcome"
    );

    let mut traced = Vec::new();
    for (name, want) in CASES {
        let bytes =
            std::fs::read(repo_root().join(format!("src/sip/testdata/{name}.dat"))).unwrap();
        // A fresh source per message: its replies are its own.
        let uac = Peer::new();
        let bytes = match want {
            Want::Answered(_) => redirect_via(&bytes, uac.addr()),
            _ => bytes,
        };
        uac.send(d.addr(), &bytes);
        match want {
            Want::Traced => {
                traced.push((name, bytes.clone()));
                if !is_reply(&bytes) {
                    let Some(fwd) = uas.try_recv(Duration::from_secs(2)) else {
                        panic!("{name}: not relayed")
                    };
                    assert!(
                        header(&fwd, "Via").is_some_and(|v| v.contains(&d.addr().to_string())),
                        "{name}: relayed with our Via"
                    );
                }
            }
            Want::Answered(code) => {
                let Some(r) = uac.try_recv(Duration::from_secs(2)) else {
                    panic!("{name}: no {code}")
                };
                assert!(
                    first_line(&r).starts_with(&format!("SIP/2.0 {code} ")),
                    "{name}: {}",
                    first_line(&r)
                );
            }
            Want::Dropped => assert!(uac.try_recv(Duration::from_millis(100)).is_none(), "{name}"),
        }
    }
    let rows = d.wait_rows(traced.len());
    assert_eq!(
        rows.len(),
        traced.len(),
        "one row per valid message, none for invalid ones"
    );
    for (row, (name, bytes)) in rows.iter().zip(&traced) {
        assert_eq!(&row.msg, bytes, "{name} stored exactly as received");
        assert_eq!(row.direction, "in");
    }
    assert!(
        uas.try_recv(Duration::from_millis(100)).is_none(),
        "nothing else relayed"
    );
}

#[test]
fn unknown_request_uri_scheme_gets_416_when_routed_by_it() {
    let d = Daemon::start_with("unkscm", CFG, &["-A", "UAS_PORT=9"]);
    let uac = Peer::new();
    let m = format!(
        "OPTIONS soap.beep://192.0.2.100:3002 SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK-416\r\n\
         Max-Forwards: 70\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: scheme-1\r\n\
         CSeq: 1 OPTIONS\r\nX-Route: ruri\r\nContent-Length: 0\r\n\r\n",
        uac.addr()
    );
    uac.send(d.addr(), m.as_bytes());
    assert_eq!(
        first_line(&uac.recv().0),
        "SIP/2.0 416 Unsupported URI Scheme"
    );
}
