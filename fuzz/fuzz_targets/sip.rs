// Checks the SIP scanner and the proxy's edits (src/sip/msg.rs, check.rs,
// edit.rs, reply.rs, frame.rs): scanning, validating and reading any bytes
// never panics; scanned bytes scan again to the same message; every edit the
// proxy makes (Max-Forwards, Route, Via received/rport, Record-Route, Via
// push/pop, Request-URI, header add/remove) either refuses cleanly or leaves
// bytes that parse again, and never fails to re-scan for a header the proxy
// itself writes; replies, ACKs and CANCELs built from a valid message parse.
//
// Input: the message, optionally followed by OPS_MARK and bytes that choose
// extra edits with arbitrary arguments (the seeds are plain messages: they
// run the fixed proxy sequence only).
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use siptraced::fuzz_api as f;
use siptraced::sip::{
    self, EditError, SipMsg, build_ack_for_non2xx, build_cancel, build_reply, frame_len,
    keepalive_len,
};

const OPS_MARK: &[u8] = b"\0OPS\0";
const MAX_OPS: usize = 32;

const INVITE: &[u8] = b"INVITE sip:bob@b.example SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bKfz\r\n\
Max-Forwards: 70\r\n\
To: <sip:bob@b.example>\r\n\
From: <sip:alice@a.example>;tag=1\r\n\
Call-ID: fz\r\n\
CSeq: 1 INVITE\r\n\
Content-Length: 0\r\n\r\n";

#[derive(Arbitrary, Debug)]
enum Op {
    PushVia(String),
    PopVia,
    RemoveRoute,
    Received(bool, u32, u16),
    RequestUri(String),
    InsertTop(String, String),
    Append(String),
    Remove(String),
    SetMaxForwards(u8),
    Reply(u16, String, Option<String>, Vec<String>, Option<String>),
    Cancel,
}

fn is_content_length(name: &str) -> bool {
    let n = name.trim_matches([' ', '\t']);
    n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("l")
}

/// An edit's outcome: on success the bytes must scan again to the same
/// message; a re-scan failure is only acceptable when the caller wrote a
/// Content-Length of its own (`may_reframe`).
fn after_edit<T>(
    m: &SipMsg,
    r: Result<T, EditError>,
    tolerate: bool,
    may_reframe: bool,
    what: &str,
) {
    match r {
        Ok(_) => rescans(m, tolerate, what),
        Err(EditError::Reparse(e)) if !may_reframe => {
            panic!("{what}: edited message no longer scans: {e}")
        }
        Err(_) => {}
    }
}

fn rescans(m: &SipMsg, tolerate: bool, what: &str) {
    let again = if tolerate {
        f::parse_to_answer(m.as_bytes())
    } else {
        SipMsg::parse(m.as_bytes())
    };
    let again = again.unwrap_or_else(|e| panic!("{what}: edited bytes do not parse: {e}"));
    assert_eq!(
        again.as_bytes(),
        m.as_bytes(),
        "{what}: re-scan changed the bytes"
    );
    assert!(
        again.header_lines().eq(m.header_lines()),
        "{what}: re-scan found other headers"
    );
    f::read_all(m);
}

/// Bytes a builder produced must be one whole message.
fn builds(bytes: &[u8], what: &str) {
    let m = SipMsg::parse(bytes).unwrap_or_else(|e| {
        panic!(
            "{what} does not parse: {e}\n{}",
            String::from_utf8_lossy(bytes)
        )
    });
    assert_eq!(m.discarded_trailing(), 0, "{what}: trailing bytes");
    f::read_all(&m);
}

/// One edit of the relay sequence: it must re-scan, and a request that was
/// valid when it arrived must still be valid (what the next hop checks).
fn step<T>(m: &SipMsg, valid: bool, tolerate: bool, what: &str, r: Result<T, EditError>) {
    after_edit(m, r, tolerate, false, what);
    if valid {
        if let Err(e) = f::validate(m) {
            panic!(
                "{what}: a valid request became invalid: {e}\n{}",
                String::from_utf8_lossy(m.as_bytes())
            );
        }
    }
}

fn values(m: &SipMsg, name: &str) -> Vec<Vec<u8>> {
    m.header_values(name).map(<[u8]>::to_vec).collect()
}

/// A list edit did exactly what it says to the header's values: `pushed`
/// (if any) now first, then the old values less the `dropped` first ones.
fn list_edited(
    before: &[Vec<u8>],
    m: &SipMsg,
    name: &str,
    pushed: Option<&str>,
    dropped: usize,
    what: &str,
) {
    let mut want: Vec<Vec<u8>> = pushed.map(|p| p.as_bytes().to_vec()).into_iter().collect();
    want.extend(before.iter().skip(dropped).cloned());
    let got = values(m, name);
    assert!(
        got == want,
        "{what}: {name} values {:?}, want {:?}\n{}",
        got.iter()
            .map(|v| String::from_utf8_lossy(v))
            .collect::<Vec<_>>(),
        want.iter()
            .map(|v| String::from_utf8_lossy(v))
            .collect::<Vec<_>>(),
        String::from_utf8_lossy(m.as_bytes())
    );
}

fn proxy_request(orig: &SipMsg, tolerate: bool) {
    let valid = f::validate(orig).is_ok();
    let mut m = orig.clone();
    let r = f::set_max_forwards(&mut m, 70);
    step(&m, valid, tolerate, "set_max_forwards", r);
    let before = values(&m, "Route");
    let r = f::remove_first_route(&mut m);
    if r == Ok(true) {
        list_edited(&before, &m, "Route", None, 1, "remove_first_route");
    }
    step(&m, valid, tolerate, "remove_first_route", r);
    let v4 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let r = f::set_via_received(&mut m, v4, 5060);
    step(&m, valid, tolerate, "set_via_received v4", r);
    let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
    let r = f::set_via_received(&mut m, v6, 5070);
    step(&m, valid, tolerate, "set_via_received v6", r);
    if valid {
        // Once received (and rport) are written, the same source changes nothing.
        assert_eq!(
            f::set_via_received(&mut m, v6, 5070),
            Ok(false),
            "set_via_received is not idempotent:\n{}",
            String::from_utf8_lossy(m.as_bytes())
        );
    }
    let before = values(&m, "Record-Route");
    let rr = "<sip:192.0.2.2;lr>";
    let r = f::insert_header_top(&mut m, "Record-Route", rr);
    if r.is_ok() {
        list_edited(
            &before,
            &m,
            "Record-Route",
            Some(rr),
            0,
            "insert Record-Route",
        );
    }
    step(&m, valid, tolerate, "insert Record-Route", r);
    let branch = sip::stateless_branch(&m, b"fuzz");
    let before = values(&m, "Via");
    let via = format!("SIP/2.0/UDP 192.0.2.2:5060;branch={branch}");
    let r = f::push_via(&mut m, &via);
    if r.is_ok() {
        list_edited(&before, &m, "Via", Some(&via), 0, "push_via");
        let mut popped = m.clone();
        let r = f::pop_top_via(&mut popped);
        assert_eq!(r, Ok(true), "pop_top_via after push_via");
        list_edited(
            &before,
            &popped,
            "Via",
            None,
            0,
            "pop_top_via after push_via",
        );
    }
    step(&m, valid, tolerate, "push_via", r);
    let r = f::set_request_uri(&mut m, "sip:bob@192.0.2.3:5062;transport=udp");
    step(&m, valid, tolerate, "set_request_uri", r);
    let r = f::append_header(&mut m, "X-Fuzz: 1");
    step(&m, valid, tolerate, "append_header", r);
    let r = f::remove_header(&mut m, "x-fuzz");
    step(&m, valid, tolerate, "remove_header", r);
    if !valid {
        // Replies to (and relays of) an invalid request are not built from
        // its headers beyond the 400, checked by the caller.
        return;
    }
    let reply = build_reply(
        orig,
        486,
        "Busy Here",
        Some("totag"),
        &[],
        Some("siptraced"),
    );
    builds(&reply, "build_reply 486");
    let reply = build_reply(
        orig,
        180,
        "Ringing",
        Some("t"),
        &["Contact: <sip:x>".into()],
        None,
    );
    builds(&reply, "build_reply 180");
    if orig.method() == Some("INVITE") {
        if let Ok(cancel) = build_cancel(&m) {
            builds(&cancel, "build_cancel");
        }
        let reply = SipMsg::parse(&build_reply(&m, 404, "Not Found", Some("x"), &[], None));
        if let Ok(reply) = reply {
            if let Ok(ack) = build_ack_for_non2xx(&m, &reply) {
                builds(&ack, "build_ack_for_non2xx");
            }
        }
    }
}

fn proxy_response(orig: &SipMsg, tolerate: bool) {
    let mut m = orig.clone();
    let before = values(&m, "Via");
    let r = f::pop_top_via(&mut m);
    if r == Ok(true) {
        list_edited(&before, &m, "Via", None, 1, "pop_top_via");
    }
    after_edit(&m, r, tolerate, false, "pop_top_via");
    if f::validate(orig).is_ok() && m.header_values("Via").count() > 0 {
        // The reply relayed upstream: still valid with our Via gone.
        if let Err(e) = f::validate(&m) {
            panic!(
                "pop_top_via: a valid reply became invalid: {e}\n{}",
                String::from_utf8_lossy(m.as_bytes())
            );
        }
    }
    if f::validate(orig).is_ok() {
        let invite = SipMsg::parse(INVITE).expect("fixed INVITE");
        if let Ok(ack) = build_ack_for_non2xx(&invite, orig) {
            builds(&ack, "build_ack_for_non2xx (fuzzed reply)");
        }
    }
}

fn run_ops(m: &mut SipMsg, tolerate: bool, ops: &[u8]) {
    let mut u = Unstructured::new(ops);
    let orig = m.clone();
    // Unstructured keeps yielding default values once its bytes run out:
    // stop there, and bound the work one input can ask for.
    for _ in 0..MAX_OPS {
        if u.is_empty() {
            break;
        }
        let Ok(op) = Op::arbitrary(&mut u) else { break };
        match op {
            Op::PushVia(v) => {
                let r = f::push_via(m, &v);
                after_edit(m, r, tolerate, false, "op push_via");
            }
            Op::PopVia => {
                let r = f::pop_top_via(m);
                after_edit(m, r, tolerate, false, "op pop_top_via");
            }
            Op::RemoveRoute => {
                let r = f::remove_first_route(m);
                after_edit(m, r, tolerate, false, "op remove_first_route");
            }
            Op::Received(v6, ip, port) => {
                let ip = if v6 {
                    IpAddr::V6(Ipv6Addr::from(u128::from(ip) << 64 | u128::from(ip)))
                } else {
                    IpAddr::V4(Ipv4Addr::from(ip))
                };
                let r = f::set_via_received(m, ip, port);
                after_edit(m, r, tolerate, false, "op set_via_received");
            }
            Op::RequestUri(uri) => {
                let r = f::set_request_uri(m, &uri);
                after_edit(m, r, tolerate, false, "op set_request_uri");
            }
            Op::InsertTop(name, value) => {
                let r = f::insert_header_top(m, &name, &value);
                after_edit(
                    m,
                    r,
                    tolerate,
                    is_content_length(&name),
                    "op insert_header_top",
                );
            }
            Op::Append(line) => {
                let name = line.split(':').next().unwrap_or("");
                let r = f::append_header(m, &line);
                after_edit(m, r, tolerate, is_content_length(name), "op append_header");
            }
            Op::Remove(name) => {
                let r = f::remove_header(m, &name);
                after_edit(m, r, tolerate, false, "op remove_header");
            }
            Op::SetMaxForwards(n) => {
                let r = f::set_max_forwards(m, n);
                after_edit(m, r, tolerate, false, "op set_max_forwards");
            }
            Op::Reply(code, reason, tag, extra, server) => {
                let out = build_reply(m, code, &reason, tag.as_deref(), &extra, server.as_deref());
                // Only a well-formed reply is claimed: a three-digit code and
                // extra lines that are headers.
                let extra_ok = extra.iter().all(|l| {
                    l.split_once(':').is_some_and(|(n, _)| {
                        let n = n.trim_end_matches([' ', '\t']);
                        !n.is_empty()
                            && n.bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
                            && !is_content_length(n)
                    }) && !l.contains(['\r', '\n'])
                });
                if (100..=699).contains(&code) && extra_ok && f::validate(m).is_ok() {
                    builds(&out, "op build_reply");
                }
            }
            Op::Cancel => {
                if let Ok(c) = build_cancel(m) {
                    if f::validate(m).is_ok() {
                        builds(&c, "op build_cancel");
                    }
                }
                if let Ok(a) = build_ack_for_non2xx(&orig, m) {
                    if f::validate(&orig).is_ok() && f::validate(m).is_ok() {
                        builds(&a, "op build_ack_for_non2xx");
                    }
                }
            }
        }
    }
}

fn one(msg: &[u8], ops: Option<&[u8]>, tolerate: bool) {
    let parsed = if tolerate {
        f::parse_to_answer(msg)
    } else {
        SipMsg::parse(msg)
    };
    let Ok(mut m) = parsed else { return };
    let _ = f::validate(&m);
    rescans(&m, tolerate, "scan");
    if tolerate {
        // The 400 answering a truncated message must be a message.
        builds(
            &build_reply(&m, 400, "Bad Request", Some("t"), &[], None),
            "400",
        );
    }
    if m.status().is_some() {
        proxy_response(&m, tolerate);
    } else {
        proxy_request(&m, tolerate);
    }
    if let Some(ops) = ops {
        run_ops(&mut m, tolerate, ops);
    }
}

fuzz_target!(|data: &[u8]| {
    let (msg, ops) = match data.windows(OPS_MARK.len()).position(|w| w == OPS_MARK) {
        Some(i) => (&data[..i], Some(&data[i + OPS_MARK.len()..])),
        None => (data, None),
    };
    let _ = keepalive_len(msg);
    if let Ok(Some(n)) = frame_len(msg) {
        assert!(n <= msg.len(), "frame_len {n} beyond {} bytes", msg.len());
        match SipMsg::parse(&msg[..n]) {
            Ok(m) => assert_eq!(
                m.discarded_trailing(),
                0,
                "a stream frame holds one message"
            ),
            Err(e @ sip::ParseError::Truncated { .. }) => {
                panic!("frame_len cut {n} bytes, short of the body: {e}")
            }
            Err(_) => {}
        }
    }
    one(msg, ops, false);
    one(msg, ops, true);
});
