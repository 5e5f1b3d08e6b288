//! Messages the proxy writes itself: a reply to a request (RFC 3261
//! §8.2.6, §16.7 — what Kamailio's `sl_send_reply` sends), the ACK for a
//! non-2xx final reply (§17.1.1.3) and a CANCEL (§9.1), both as the
//! transaction layer needs them. Built from the indexed header values, so
//! copied headers keep their bytes. No I/O.

use std::borrow::Cow;
use std::fmt;

use super::msg::{HeaderKind, SipMsg};
use super::nameaddr::NameAddr;

/// RFC 3261 §8.1.1.6: the recommended initial Max-Forwards.
const DEFAULT_MAX_FORWARDS: &str = "70";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildError {
    /// The message given as the request is a reply, or vice versa.
    WrongKind,
    /// ACK/CANCEL are built for an INVITE only.
    NotInvite,
    /// The ACK of §17.1.1.3 answers a final non-2xx reply (300-699) only.
    NotNon2xxFinal,
    /// A header the built request must copy is absent (or CSeq unreadable).
    Missing(HeaderKind),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::WrongKind => write!(f, "request and reply arguments are swapped"),
            BuildError::NotInvite => write!(f, "ACK/CANCEL can only be built for an INVITE"),
            BuildError::NotNon2xxFinal => write!(f, "reply is not a final non-2xx reply"),
            BuildError::Missing(k) => write!(
                f,
                "message has no usable {} header",
                k.canonical_name().unwrap_or("required")
            ),
        }
    }
}

impl std::error::Error for BuildError {}

/// Text we write on a line must not break it (header injection).
fn one_line(s: &str) -> Cow<'_, str> {
    if s.contains(['\r', '\n']) {
        Cow::Owned(s.replace(['\r', '\n'], " "))
    } else {
        Cow::Borrowed(s)
    }
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Copies every `kind` header line (value bytes as received).
fn copy_all(out: &mut Vec<u8>, m: &SipMsg, kind: HeaderKind, name: &str) {
    for h in m.by_kind(kind) {
        push_header(out, name, m.slice(h.value));
    }
}

fn first(m: &SipMsg, kind: HeaderKind) -> Option<&[u8]> {
    m.by_kind(kind).next().map(|h| m.slice(h.value))
}

fn require(m: &SipMsg, kind: HeaderKind) -> Result<&[u8], BuildError> {
    first(m, kind).ok_or(BuildError::Missing(kind))
}

/// A reply to `req`: status line, every Via as received (with any
/// received/rport already set), From, To (with `;tag=to_tag` added when
/// the code is above 100 and To has no tag), Call-ID, CSeq, Record-Route
/// for 101-299 (dialog-creating replies, RFC 3261 §12.1.1), then
/// `extra_headers` (whole lines without CRLF), Server, and
/// `Content-Length: 0`. Headers missing from the request are left out.
/// CR/LF inside `reason` or the extra lines become spaces.
pub fn build_reply(
    req: &SipMsg,
    code: u16,
    reason: &str,
    to_tag: Option<&str>,
    extra_headers: &[String],
    server_header: Option<&str>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(req.as_bytes().len().min(2048) + 128);
    out.extend_from_slice(format!("SIP/2.0 {code} {}\r\n", one_line(reason)).as_bytes());
    copy_all(&mut out, req, HeaderKind::Via, "Via");
    if let Some(v) = first(req, HeaderKind::From) {
        push_header(&mut out, "From", v);
    }
    if let Some(v) = first(req, HeaderKind::To) {
        let has_tag = NameAddr::parse(v).is_ok_and(|n| n.tag().is_some());
        match to_tag {
            Some(tag) if code > 100 && !has_tag => {
                let mut value = v.to_vec();
                value.extend_from_slice(b";tag=");
                value.extend_from_slice(one_line(tag).as_bytes());
                push_header(&mut out, "To", &value);
            }
            _ => push_header(&mut out, "To", v),
        }
    }
    if let Some(v) = first(req, HeaderKind::CallId) {
        push_header(&mut out, "Call-ID", v);
    }
    if let Some(v) = first(req, HeaderKind::CSeq) {
        push_header(&mut out, "CSeq", v);
    }
    if (101..300).contains(&code) {
        copy_all(&mut out, req, HeaderKind::RecordRoute, "Record-Route");
    }
    for line in extra_headers {
        out.extend_from_slice(one_line(line).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(server) = server_header {
        push_header(&mut out, "Server", one_line(server).as_bytes());
    }
    out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    out
}

/// Request line, top Via only, Route as sent, From, To, Call-ID, CSeq
/// with `method`, Max-Forwards, empty body: the shape shared by §9.1 and
/// §17.1.1.3.
fn check_invite(invite: &SipMsg) -> Result<(), BuildError> {
    match invite.method() {
        Some("INVITE") => Ok(()),
        Some(_) => Err(BuildError::NotInvite),
        None => Err(BuildError::WrongKind),
    }
}

fn build_in_transaction(invite: &SipMsg, method: &str, to: &[u8]) -> Result<Vec<u8>, BuildError> {
    let ruri = invite.request_uri_bytes().unwrap_or_default();
    let via = invite
        .top_via_value()
        .ok_or(BuildError::Missing(HeaderKind::Via))?;
    let from = require(invite, HeaderKind::From)?;
    let call_id = require(invite, HeaderKind::CallId)?;
    let (cseq, _) = invite.cseq().ok_or(BuildError::Missing(HeaderKind::CSeq))?;
    let max_fwd = first(invite, HeaderKind::MaxForwards).unwrap_or(DEFAULT_MAX_FORWARDS.as_bytes());
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(ruri);
    out.extend_from_slice(b" SIP/2.0\r\n");
    push_header(&mut out, "Via", via);
    copy_all(&mut out, invite, HeaderKind::Route, "Route");
    push_header(&mut out, "From", from);
    push_header(&mut out, "To", to);
    push_header(&mut out, "Call-ID", call_id);
    push_header(&mut out, "CSeq", format!("{cseq} {method}").as_bytes());
    push_header(&mut out, "Max-Forwards", max_fwd);
    out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    Ok(out)
}

/// RFC 3261 §17.1.1.3: the ACK a client transaction sends for a 300-699
/// reply: the INVITE's Request-URI, top Via (same branch), Route, From,
/// Call-ID and CSeq number, and the To of the reply (with its tag).
pub fn build_ack_for_non2xx(invite: &SipMsg, reply: &SipMsg) -> Result<Vec<u8>, BuildError> {
    check_invite(invite)?;
    let code = reply.status().ok_or(BuildError::WrongKind)?;
    if !(300..=699).contains(&code) {
        return Err(BuildError::NotNon2xxFinal);
    }
    let to = require(reply, HeaderKind::To)?;
    build_in_transaction(invite, "ACK", to)
}

/// RFC 3261 §9.1: CANCEL for an INVITE as it was sent (so the top Via is
/// the proxy's own, with the branch to cancel).
pub fn build_cancel(invite_as_sent: &SipMsg) -> Result<Vec<u8>, BuildError> {
    check_invite(invite_as_sent)?;
    let to = require(invite_as_sent, HeaderKind::To)?;
    build_in_transaction(invite_as_sent, "CANCEL", to)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:bob@b.example SIP/2.0\r\n\
Via: SIP/2.0/UDP p.example;branch=z9hG4bKp;received=192.0.2.1\r\n\
v: SIP/2.0/UDP a.example;branch=z9hG4bKa;rport=5070\r\n\
Record-Route: <sip:p.example;lr>\r\n\
Route: <sip:n.example;lr>\r\n\
Max-Forwards: 69\r\n\
t: Bob <sip:bob@b.example>\r\n\
f: Alice <sip:alice@a.example>;tag=88\r\n\
i: cid-1\r\n\
CSeq: 7 INVITE\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\
\r\n\
v=0\n";

    fn invite() -> SipMsg {
        SipMsg::parse(INVITE.as_bytes()).expect("fixture parses")
    }

    #[test]
    fn reply_table() {
        let vias = "Via: SIP/2.0/UDP p.example;branch=z9hG4bKp;received=192.0.2.1\r\n\
Via: SIP/2.0/UDP a.example;branch=z9hG4bKa;rport=5070\r\n";
        let tail = "Call-ID: cid-1\r\nCSeq: 7 INVITE\r\n";
        let from = "From: Alice <sip:alice@a.example>;tag=88\r\n";
        // (code, reason, to tag, extra, server, expected)
        type Case = (
            u16,
            &'static str,
            Option<&'static str>,
            Vec<String>,
            Option<&'static str>,
            String,
        );
        let cases: Vec<Case> = vec![
            (
                100,
                "Trying",
                Some("zz"),
                vec![],
                None,
                format!(
                    "SIP/2.0 100 Trying\r\n{vias}{from}To: Bob <sip:bob@b.example>\r\n{tail}Content-Length: 0\r\n\r\n"
                ),
            ),
            (
                404,
                "Not Found",
                Some("zz"),
                vec![],
                Some("siptraced"),
                format!(
                    "SIP/2.0 404 Not Found\r\n{vias}{from}To: Bob <sip:bob@b.example>;tag=zz\r\n{tail}Server: siptraced\r\nContent-Length: 0\r\n\r\n"
                ),
            ),
            (
                180,
                "Ringing",
                Some("zz"),
                vec!["Contact: <sip:p.example>".to_owned()],
                None,
                format!(
                    "SIP/2.0 180 Ringing\r\n{vias}{from}To: Bob <sip:bob@b.example>;tag=zz\r\n{tail}Record-Route: <sip:p.example;lr>\r\nContact: <sip:p.example>\r\nContent-Length: 0\r\n\r\n"
                ),
            ),
            (
                483,
                "Too Many\r\nHops",
                None,
                vec!["X: a\r\nY: b".to_owned()],
                None,
                format!(
                    "SIP/2.0 483 Too Many  Hops\r\n{vias}{from}To: Bob <sip:bob@b.example>\r\n{tail}X: a  Y: b\r\nContent-Length: 0\r\n\r\n"
                ),
            ),
        ];
        let req = invite();
        for (code, reason, tag, extra, server, want) in cases {
            let got = build_reply(&req, code, reason, tag, &extra, server);
            assert_eq!(String::from_utf8_lossy(&got), want, "{code}");
            let parsed = SipMsg::parse(&got).expect("reply parses");
            assert_eq!(parsed.status(), Some(code));
        }
    }

    #[test]
    fn existing_to_tag_is_kept() {
        let req = SipMsg::parse(
            b"BYE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nTo: <sip:a@b>;tag=x\r\nl: 0\r\n\r\n",
        )
        .expect("parses");
        let got = build_reply(&req, 200, "OK", Some("new"), &[], None);
        assert_eq!(
            got,
            b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h\r\nTo: <sip:a@b>;tag=x\r\nContent-Length: 0\r\n\r\n"
        );
    }

    #[test]
    fn ack_and_cancel() {
        let inv = invite();
        let reply = SipMsg::parse(
            b"SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP p.example;branch=z9hG4bKp\r\nTo: Bob <sip:bob@b.example>;tag=b1\r\nl: 0\r\n\r\n",
        )
        .expect("parses");
        let common = "Via: SIP/2.0/UDP p.example;branch=z9hG4bKp;received=192.0.2.1\r\n\
Route: <sip:n.example;lr>\r\n\
From: Alice <sip:alice@a.example>;tag=88\r\n";
        let ack = build_ack_for_non2xx(&inv, &reply).expect("ack");
        assert_eq!(
            String::from_utf8_lossy(&ack),
            format!(
                "ACK sip:bob@b.example SIP/2.0\r\n{common}To: Bob <sip:bob@b.example>;tag=b1\r\nCall-ID: cid-1\r\nCSeq: 7 ACK\r\nMax-Forwards: 69\r\nContent-Length: 0\r\n\r\n"
            )
        );
        let cancel = build_cancel(&inv).expect("cancel");
        assert_eq!(
            String::from_utf8_lossy(&cancel),
            format!(
                "CANCEL sip:bob@b.example SIP/2.0\r\n{common}To: Bob <sip:bob@b.example>\r\nCall-ID: cid-1\r\nCSeq: 7 CANCEL\r\nMax-Forwards: 69\r\nContent-Length: 0\r\n\r\n"
            )
        );
        assert_eq!(build_cancel(&reply), Err(BuildError::WrongKind));
        assert_eq!(
            build_ack_for_non2xx(&reply, &reply),
            Err(BuildError::WrongKind)
        );
        assert_eq!(build_ack_for_non2xx(&inv, &inv), Err(BuildError::WrongKind));
        let ok = SipMsg::parse(b"SIP/2.0 200 OK\r\nl: 0\r\n\r\n").expect("parses");
        assert_eq!(
            build_ack_for_non2xx(&inv, &ok),
            Err(BuildError::NotNon2xxFinal)
        );
        let bye = SipMsg::parse(b"BYE sip:a@b SIP/2.0\r\nl: 0\r\n\r\n").expect("parses");
        assert_eq!(build_cancel(&bye), Err(BuildError::NotInvite));
        let bare = SipMsg::parse(b"INVITE sip:a@b SIP/2.0\r\nTo: <sip:a@b>\r\nl: 0\r\n\r\n")
            .expect("parses");
        assert_eq!(
            build_cancel(&bare),
            Err(BuildError::Missing(HeaderKind::Via))
        );
    }
}
