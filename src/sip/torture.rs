//! RFC 4475 torture messages (§3.1.1 valid, §3.1.2 invalid, plus §3.2-3.4)
//! and RFC 5118 IPv6 messages, as wire bytes under testdata/, with what
//! this module does with each; then a no-panic sweep over truncations and
//! byte flips of them, and a parse-speed figure (ignored test).
//!
//! testdata/README.md says where each message comes from.

use std::net::{IpAddr, Ipv4Addr};

use super::*;

enum Expect {
    /// Parses, validates; (Call-ID, CSeq, From tag) read back.
    Valid(&'static [u8], (u32, &'static str), Option<&'static [u8]>),
    /// Parses (trace it); `validate` names the breach and the proxy
    /// answers `Malformed::status()` (a reply is dropped instead).
    Answer(Malformed),
    /// The scanner refuses it: a counted drop, nothing to answer.
    Reject(ParseError),
    /// `parse` refuses it (Truncated); `parse_to_answer` keeps it so that
    /// a 400 can be sent (RFC 4475 §3.1.2.2).
    TruncatedAnswer,
}

struct Case {
    file: &'static str,
    section: &'static str,
    bytes: &'static [u8],
    expect: Expect,
}

macro_rules! case {
    ($file:literal, $section:literal, $expect:expr) => {
        Case {
            file: $file,
            section: $section,
            bytes: include_bytes!(concat!("testdata/", $file, ".dat")),
            expect: $expect,
        }
    };
}

use Expect::{Answer, Reject, TruncatedAnswer, Valid};

fn cases() -> Vec<Case> {
    vec![
        // RFC 4475 §3.1.1: valid messages, all relayed/traced.
        case!("wsinv", "3.1.1.1", Valid(b"wsinv.ndaksdj@192.0.2.1", (9, "INVITE"), Some(b"98asjd8"))),
        case!("intmeth", "3.1.1.2", Valid(b"intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{", (139122385, "!interesting-Method0123456789_*+`.%indeed'~"), Some(b"_token~1'+`*%!-."))),
        case!("esc01", "3.1.1.3", Valid(b"esc01.239409asdfakjkn23onasd0-3234", (234234, "INVITE"), Some(b"938"))),
        case!("escnull", "3.1.1.4", Valid(b"escnull.39203ndfvkjdasfkq3w4otrq0adsfdfnavd", (14398234, "REGISTER"), Some(b"839923423"))),
        case!("esc02", "3.1.1.5", Valid(b"esc02.asdfnqwo34rq23i34jrjasdcnl23nrlknsdf", (29344, "RE%47IST%45R"), Some(b"f232jadfj23"))),
        case!("lwsdisp", "3.1.1.6", Valid(b"lwsdisp.1234abcd@funky.example.com", (60, "OPTIONS"), Some(b"323"))),
        case!("longreq", "3.1.1.7", Valid(b"longreq.onereallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallylongcallid", (3882340, "INVITE"), Some(b"12982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982424"))),
        case!("dblreq", "3.1.1.8", Valid(b"dblreq.0ha0isndaksdj99sdfafnl3lk233412", (8, "REGISTER"), Some(b"43251j3j324"))),
        case!("semiuri", "3.1.1.9", Valid(b"semiuri.0ha0isndaksdj", (8, "OPTIONS"), Some(b"33242"))),
        case!("transports", "3.1.1.10", Valid(b"transports.kijh4akdnaqjkwendsasfdj", (60, "OPTIONS"), Some(b"323"))),
        case!("mpart01", "3.1.1.11", Valid(b"3d9485ad0c49859b@Zmx1ZmZ5LW1hYy0xNi5sb2NhbA..", (1, "MESSAGE"), Some(b"2fb0dcc9"))),
        case!("unreason", "3.1.1.12", Valid(b"unreason.1234ksdfak3j2erwedfsASdf", (35, "INVITE"), Some(b"11141343"))),
        case!("noreason", "3.1.1.13", Valid(b"noreason.asndj203insdf99223ndf", (35, "INVITE"), Some(b"39ansfi3"))),
        // RFC 4475 §3.1.2: invalid messages.
        case!("badinv01", "3.1.2.1", Answer(Malformed::Via(ViaError::EmptyParam))),
        case!("clerr", "3.1.2.2", TruncatedAnswer),
        case!("ncl", "3.1.2.3", Answer(Malformed::ContentLength)),
        case!("scalar02", "3.1.2.4", Answer(Malformed::CSeq)),
        case!("scalarlg", "3.1.2.5", Answer(Malformed::CSeq)),
        case!("quotbal", "3.1.2.6", Answer(Malformed::Address(HeaderKind::To, NameAddrError::UnterminatedQuote))),
        case!("ltgtruri", "3.1.2.7", Answer(Malformed::RequestUri(UriError::BadScheme))),
        case!("lwsruri", "3.1.2.8", Answer(Malformed::StartLine(StartLineIssue::UriWhitespace))),
        case!("lwsstart", "3.1.2.9", Answer(Malformed::StartLine(StartLineIssue::ExtraWhitespace))),
        case!("trws", "3.1.2.10", Answer(Malformed::StartLine(StartLineIssue::ExtraWhitespace))),
        case!("escruri", "3.1.2.11", Answer(Malformed::RequestUriHeaders)),
        // A proxy does not read Date; RFC 4475 lets it ignore the value.
        case!("baddate", "3.1.2.12", Valid(b"baddate.239423mnsadf3j23lj42--sedfnm234", (1392934, "INVITE"), Some(b"2234923"))),
        case!("regbadct", "3.1.2.13", Answer(Malformed::Address(HeaderKind::Contact, NameAddrError::AddrSpecNeedsBrackets))),
        case!("badaspec", "3.1.2.14", Answer(Malformed::Address(HeaderKind::To, NameAddrError::WhitespaceInUri))),
        case!("baddn", "3.1.2.15", Answer(Malformed::Address(HeaderKind::From, NameAddrError::BadDisplayName))),
        case!("badvers", "3.1.2.16", Answer(Malformed::Version)),
        case!("mismatch01", "3.1.2.17", Answer(Malformed::CSeqMethodMismatch)),
        // RFC 4475 prefers 501 here; 400 is also acceptable to it.
        case!("mismatch02", "3.1.2.18", Answer(Malformed::CSeqMethodMismatch)),
        case!("bigcode", "3.1.2.19", Reject(ParseError::BadStatusCode)),
        // §3.2 transaction layer: parsed; stateless_branch falls back to
        // the RFC 2543 hash for the bare cookie.
        case!("badbranch", "3.2.1", Valid(b"badbranch.sadonfo23i420jv0as0derf3j3n", (8, "OPTIONS"), Some(b"33242"))),
        // §3.3 application layer: grammar-valid; the script answers
        // (420, 416, 483, 415...) or relays.
        case!("insuf", "3.3.1", Answer(Malformed::Missing(HeaderKind::CallId))),
        case!("unkscm", "3.3.2", Valid(b"unkscm.nasdfasser0q239nwsdfasdkl34", (3923423, "OPTIONS"), Some(b"384"))),
        case!("novelsc", "3.3.3", Valid(b"novelsc.asdfasser0q239nwsdfasdkl34", (3923423, "OPTIONS"), Some(b"384"))),
        case!("unksm2", "3.3.4", Valid(b"unksm2.daksdj@hyphenated-host.example.com", (234902, "REGISTER"), Some(b"3234233"))),
        case!("bext01", "3.3.5", Valid(b"bext01.0ha0isndaksdj", (8, "OPTIONS"), Some(b"242etr"))),
        case!("invut", "3.3.6", Valid(b"invut.0ha0isndaksdjadsfij34n23d", (235448, "INVITE"), Some(b"8392034"))),
        case!("regaut01", "3.3.7", Valid(b"regaut01.0ha0isndaksdj", (9338, "REGISTER"), Some(b"87321hj23128"))),
        case!("multi01", "3.3.8", Answer(Malformed::Duplicate(HeaderKind::CallId))),
        case!("mcl01", "3.3.9", Answer(Malformed::ConflictingContentLength)),
        case!("bcast", "3.3.10", Valid(b"bcast.0384840201234ksdfak3j2erwedfsASdf", (35, "INVITE"), Some(b"11141343"))),
        case!("zeromf", "3.3.11", Valid(b"zeromf.jfasdlfnm2o2l43r5u0asdfas", (39234321, "OPTIONS"), Some(b"3ghsd41"))),
        case!("cparam01", "3.3.12", Valid(b"cparam01.70710@saturn.example.com", (2, "REGISTER"), Some(b"DkfVgjkrtMwaerKKpe"))),
        case!("cparam02", "3.3.13", Valid(b"cparam02.70710@saturn.example.com", (3, "REGISTER"), Some(b"838293"))),
        case!("regescrt", "3.3.14", Valid(b"regescrt.k345asrl3fdbv@192.0.2.1", (14398234, "REGISTER"), Some(b"8"))),
        case!("sdp01", "3.3.15", Valid(b"sdp01.ndaksdj9342dasdd", (8, "INVITE"), Some(b"234"))),
        // §3.4: RFC 2543 syntax (no tags, no Max-Forwards, no Content-Length).
        case!("inv2543", "3.4.1", Valid(b"inv2543.1717@ift.client.example.com", (56, "INVITE"), None)),
        // RFC 5118 §4 (IPv6), header parts.
        case!("ipv6-good", "5118-4.1", Valid(b"SSG9559905523997077@hlau_4100", (98176, "REGISTER"), Some(b"81x2"))),
        case!("ipv6-bad", "5118-4.2", Answer(Malformed::RequestUri(UriError::BadPort))),
        case!("port-ambiguous", "5118-4.3", Valid(b"SSG9559905523997077@hlau_4100", (98176, "REGISTER"), Some(b"81x2"))),
        case!("port-unambiguous", "5118-4.4", Valid(b"SSG9559905523997077@hlau_4100", (98176, "REGISTER"), Some(b"81x2"))),
        case!("via-received-param-with-delim", "5118-4.5", Valid(b"SSG9559905523997077@hlau_4100", (321, "BYE"), Some(b"81x2"))),
        case!("via-received-param-no-delim", "5118-4.5", Valid(b"SSG95523997077@hlau_4100", (921, "OPTIONS"), Some(b"81x2"))),
        case!("mult-ip-in-header", "5118-4.7", Valid(b"997077@lau_4100", (89187, "BYE"), Some(b"81x2"))),
        case!("ipv4-mapped-ipv6", "5118-4.9", Valid(b"SSG9559905523997077@hlau_4100", (612, "INVITE"), Some(b"81x2"))),
        case!("ipv6-extra-colon", "5118-4.10", Valid(b"G9559905523997077@hlau_4100", (689, "OPTIONS"), Some(b"810x2"))),
    ]
}

#[test]
fn every_torture_message_gets_its_documented_outcome() {
    for c in cases() {
        let id = format!("{} ({})", c.file, c.section);
        match c.expect {
            Valid(call_id, cseq, from_tag) => {
                let m = SipMsg::parse(c.bytes).unwrap_or_else(|e| panic!("{id}: {e}"));
                assert_eq!(m.validate(), Ok(()), "{id}");
                assert_eq!(m.call_id(), Some(call_id), "{id}");
                assert_eq!(m.cseq(), Some(cseq), "{id}");
                assert_eq!(m.from_tag(), from_tag, "{id}");
                assert_eq!(m.method_or_cseq(), Some(cseq.1), "{id}");
                relay_round_trip(&m, &id);
            }
            Answer(breach) => {
                let m = SipMsg::parse(c.bytes).unwrap_or_else(|e| panic!("{id}: {e}"));
                assert_eq!(m.validate(), Err(breach), "{id}");
                if m.is_request() {
                    let (code, reason) = breach.status();
                    let reply = build_reply(&m, code, reason, Some("t1"), &[], None);
                    let r = SipMsg::parse(&reply).unwrap_or_else(|e| panic!("{id} reply: {e}"));
                    assert_eq!(r.status(), Some(code), "{id}");
                }
            }
            Reject(err) => assert_eq!(SipMsg::parse(c.bytes).err(), Some(err), "{id}"),
            TruncatedAnswer => {
                assert!(
                    matches!(SipMsg::parse(c.bytes), Err(ParseError::Truncated { .. })),
                    "{id}"
                );
                let m = SipMsg::parse_to_answer(c.bytes).unwrap_or_else(|e| panic!("{id}: {e}"));
                assert_eq!(m.validate(), Err(Malformed::BodyTruncated), "{id}");
            }
        }
    }
}

/// What a relay does to a valid message keeps every other byte: a pushed
/// Via pops off leaving the original bytes, and the result still validates.
fn relay_round_trip(m: &SipMsg, id: &str) {
    let mut r = m.clone();
    r.push_via("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKrelay")
        .unwrap_or_else(|e| panic!("{id}: {e}"));
    assert_eq!(r.via_values().count(), m.via_values().count() + 1, "{id}");
    assert_eq!(r.validate(), Ok(()), "{id}");
    assert_eq!(r.body(), m.body(), "{id}");
    assert_eq!(r.pop_top_via(), Ok(true), "{id}");
    assert_eq!(r.as_bytes(), m.as_bytes(), "{id}");
}

fn load(file: &str) -> SipMsg {
    let c = cases()
        .into_iter()
        .find(|c| c.file == file)
        .expect("known file");
    SipMsg::parse(c.bytes).expect("parses")
}

#[test]
fn torture_details() {
    let m = load("wsinv");
    assert_eq!(m.via_values().count(), 3);
    assert_eq!(m.to_tag(), Some(&b"1918181833n"[..]));
    assert_eq!(m.max_forwards(), MaxForwards::Value(68));
    assert_eq!(m.content_length(), Some(150));
    assert_eq!(m.header("s"), Some(&b""[..]));
    assert_eq!(
        m.header_str("NewFangledHeader").as_deref(),
        Some("newfangled value continued newfangled value")
    );
    assert_eq!(
        m.header("UnknownHeaderWithUnusualValue"),
        Some(&b";;,,;;,;"[..])
    );
    assert_eq!(
        m.route_values().collect::<Vec<_>>(),
        vec![&b"<sip:services.example.com;lr;unknownwith=value;unknown-no-value>"[..]]
    );
    let vias: Vec<Via> = m
        .via_values()
        .map(|v| Via::parse_bytes(v).expect("via"))
        .collect();
    assert_eq!(vias[1].host, "spindle.example.com");
    assert_eq!(vias[2].branch(), Some("z9hG4bK30239"));

    let m = load("intmeth");
    assert_eq!(
        m.method(),
        Some("!interesting-Method0123456789_*+`.%indeed'~")
    );
    assert_eq!(
        m.header("extensionHeader-!.%*+_`'~"),
        Some(&b"\xef\xbb\xbf\xe5\xa4\xa7\xe5\x81\x9c\xe9\x9b\xbb"[..])
    );
    let uri = Uri::parse(m.request_uri().expect("uri")).expect("parses");
    assert_eq!(
        uri.user(),
        Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
    );
    assert_eq!(uri.host(), "example.com");
    assert_eq!(
        m.to().expect("to").display,
        Some(&b"\"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f\""[..])
    );

    let m = load("esc02");
    assert_eq!(m.contact_values().count(), 2);
    assert_eq!(
        m.header("C%6Fntact"),
        Some(&b"<sip:alias2@host2.example.com>"[..])
    );

    let m = load("longreq");
    assert_eq!(m.via_values().count(), 34);
    assert_eq!(m.to_uri().map(|u| u.len()), Some(379));

    let m = load("dblreq");
    assert!(m.as_bytes().ends_with(b"Content-Length: 0\r\n\r\n"));
    assert!(m.discarded_trailing() > 0);

    let m = load("semiuri");
    let uri = Uri::parse(m.request_uri().expect("uri")).expect("parses");
    assert_eq!(uri.user(), Some("user;par=u%40example.net"));
    assert_eq!(m.header_values("Accept").count(), 6);

    let m = load("mpart01");
    assert_eq!(m.body().len(), 553);
    assert!(m.body().contains(&0));
    assert_eq!(
        m.top_via().expect("via").expect("decodes").rport(),
        Some(None)
    );

    let m = load("unreason");
    assert_eq!(m.status(), Some(200));
    assert!(
        m.reason()
            .expect("reason")
            .starts_with(b"= 2**3 * 5**2 \xd0\xbd\xd0\xbe")
    );
    let m = load("noreason");
    assert_eq!((m.status(), m.reason()), (Some(100), Some(&b""[..])));

    for (file, scheme) in [
        ("unkscm", Scheme::Other),
        ("novelsc", Scheme::Other),
        ("ipv6-good", Scheme::Sip),
    ] {
        let m = load(file);
        let uri = Uri::parse(m.request_uri().expect("uri")).expect("parses");
        assert_eq!(uri.scheme(), scheme, "{file}");
    }
    assert_eq!(load("zeromf").max_forwards(), MaxForwards::Value(0));
    assert_eq!(load("inv2543").body_framing(), BodyFraming::Absent);
    assert!(
        !load("badbranch")
            .top_via()
            .expect("via")
            .expect("decodes")
            .has_rfc3261_branch()
    );

    let uri = |f: &str| Uri::parse(load(f).request_uri().expect("uri")).expect("parses");
    assert_eq!(
        (uri("port-ambiguous").host(), uri("port-ambiguous").port()),
        ("[2001:db8::10:5070]", None)
    );
    assert_eq!(
        (
            uri("port-unambiguous").host(),
            uri("port-unambiguous").port()
        ),
        ("[2001:db8::10]", Some(5070))
    );
    let target = |f: &str| {
        load(f)
            .top_via()
            .expect("via")
            .expect("decodes")
            .response_addr()
    };
    assert_eq!(
        target("via-received-param-with-delim"),
        Some("[2001:db8::9:255]:5060".parse().unwrap())
    );
    assert_eq!(
        target("via-received-param-no-delim"),
        Some("[2001:db8::9:255]:5060".parse().unwrap())
    );
    assert_eq!(
        target("mult-ip-in-header"),
        Some("[2001:db8::9:1]:6050".parse().unwrap())
    );
    assert_eq!(
        target("ipv4-mapped-ipv6"),
        Some("[::ffff:192.0.2.10]:19823".parse().unwrap())
    );
}

/// Runs every entry point over `bytes`; the test is that nothing panics.
fn exercise(bytes: &[u8]) {
    let _ = frame_len(bytes);
    let _ = keepalive_len(bytes);
    let _ = SipMsg::parse_to_answer(bytes).map(|m| m.validate());
    let Ok(m) = SipMsg::parse(bytes) else {
        return;
    };
    // Invariants: the kept bytes re-scan to themselves; the body ends them.
    let again = SipMsg::parse(m.as_bytes()).expect("kept bytes re-scan");
    assert_eq!(again.as_bytes(), m.as_bytes());
    assert!(m.as_bytes().ends_with(m.body()));
    if let Ok(Some(n)) = frame_len(bytes) {
        assert!(SipMsg::parse(&bytes[..n]).is_ok(), "a framed message scans");
    }
    let _ = (
        m.is_request(),
        m.method(),
        m.method_or_cseq(),
        m.request_uri(),
        m.version(),
    );
    let _ = (
        m.status(),
        m.reason_str(),
        m.start_line(),
        m.start_line_issue(),
    );
    let _ = (
        m.call_id_str(),
        m.cseq(),
        m.from_tag(),
        m.to_tag(),
        m.has_totag(),
    );
    let _ = (
        m.from_uri(),
        m.to_uri(),
        m.content_length(),
        m.body(),
        m.user_agent(),
    );
    let _ = (
        m.server(),
        m.max_forwards(),
        m.header_str("Via"),
        m.discarded_trailing(),
    );
    let _ = m.header_lines().count() + m.header_values("Contact").count();
    let _ = m.validate();
    for v in m.via_values() {
        if let Ok(via) = Via::parse_bytes(v) {
            let _ = (
                via.response_addr(),
                via.branch(),
                via.ttl(),
                via.params().count(),
            );
        }
    }
    for v in m
        .contact_values()
        .chain(m.route_values())
        .chain(m.record_route_values())
    {
        if let Ok(n) = NameAddr::parse(v) {
            let _ = (n.check_strict(), n.tag(), n.uri_str().map(Uri::parse));
        }
    }
    if let Some(Ok(u)) = m.request_uri().map(Uri::parse) {
        let _ = (
            u.to_string(),
            u.params().count(),
            u.host_unbracketed(),
            u.headers(),
        );
    }
    let _ = stateless_branch(&m, b"salt");
    let _ = build_reply(
        &m,
        400,
        "Bad Request",
        Some("x"),
        &["A: b".to_owned()],
        Some("s"),
    );
    let _ = build_cancel(&m);
    let _ = build_ack_for_non2xx(&m, &m);
    type Edit = fn(&mut SipMsg) -> Result<(), EditError>;
    let edits: [Edit; 10] = [
        |m| m.push_via("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx"),
        |m| m.pop_top_via().map(drop),
        |m| {
            m.set_via_received(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9)), 5062)
                .map(drop)
        },
        |m| m.set_request_uri("sip:x@192.0.2.3"),
        |m| m.remove_first_route().map(drop),
        |m| m.insert_header_top("Record-Route", "<sip:192.0.2.1;lr>"),
        |m| m.append_header("X-A: b"),
        |m| m.remove_header("Contact").map(drop),
        |m| m.set_max_forwards(9),
        |m| m.remove_header("l").map(drop),
    ];
    for edit in edits {
        let mut c = m.clone();
        if edit(&mut c).is_ok() {
            let _ = c.validate();
        }
    }
}

/// xorshift64*: a fixed-seed generator so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn no_panic_on_truncations_and_byte_flips() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    // Bytes that steer the scanner: separators, quotes, brackets, digits.
    const INTERESTING: &[u8] = b"\r\n \t:;,\"<>[]@?=\\/0123456789\x00\xff%";
    for c in cases() {
        for cut in 0..=c.bytes.len() {
            exercise(&c.bytes[..cut]);
        }
        for _ in 0..300 {
            let mut b = c.bytes.to_vec();
            for _ in 0..=rng.below(4) {
                let at = rng.below(b.len());
                b[at] = if rng.next().is_multiple_of(2) {
                    INTERESTING[rng.below(INTERESTING.len())]
                } else {
                    rng.next() as u8
                };
            }
            exercise(&b);
        }
    }
}

/// `cargo test --release -- --ignored --nocapture parse_speed`
#[test]
#[ignore]
fn parse_speed() {
    let raw = "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.example.com>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 142\r\n\
\r\n\
v=0\r\no=alice 2890844526 2890844526 IN IP4 pc33.atlanta.example.com\r\ns=-\r\n\
c=IN IP4 192.0.2.101\r\nt=0 0\r\nm=audio 49172 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
    let bytes = raw.as_bytes();
    assert!(SipMsg::parse(bytes).is_ok());
    let n = 1_000_000u32;
    let started = std::time::Instant::now();
    for _ in 0..n {
        let m = SipMsg::parse(std::hint::black_box(bytes)).expect("parses");
        std::hint::black_box((m.call_id(), m.cseq(), m.from_tag()));
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "parse + call_id/cseq/from_tag: {:.0} msg/s ({:.0} ns/msg)",
        f64::from(n) / secs,
        secs * 1e9 / f64::from(n)
    );
}
