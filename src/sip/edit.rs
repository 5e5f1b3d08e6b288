//! Edits a proxy makes to a message it relays (RFC 3261 §16.6, §18.2.1,
//! RFC 3581): each edit splices new bytes into a copy of the buffer,
//! leaves every other byte as it was, and re-indexes the result with the
//! same scanner. No I/O; edits never panic, they return [`EditError`].

use std::fmt;
use std::net::IpAddr;
use std::ops::Range;

use super::lex;
use super::msg::{BodyFraming, HeaderKind, ParseError, SipMsg, Start, scan};
use super::via::{Via, ViaError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EditError {
    /// The edit only applies to requests.
    NotARequest,
    /// A value or line holds CR or LF (header injection).
    LineBreak,
    /// A header name that is not a token, or a line without `name:`.
    BadName,
    /// A Request-URI that is empty or holds white space.
    BadUri,
    NoVia,
    BadVia(ViaError),
    /// The edited bytes no longer scan (cannot happen with valid input;
    /// reported rather than assumed).
    Reparse(ParseError),
}

impl fmt::Display for EditError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EditError::NotARequest => write!(f, "edit applies to requests only"),
            EditError::LineBreak => write!(f, "header value contains CR or LF"),
            EditError::BadName => write!(f, "header name is not a token"),
            EditError::BadUri => write!(f, "Request-URI is empty or contains white space"),
            EditError::NoVia => write!(f, "message has no Via"),
            EditError::BadVia(e) => write!(f, "top Via cannot be decoded: {e}"),
            EditError::Reparse(e) => write!(f, "edited message does not scan: {e}"),
        }
    }
}

impl std::error::Error for EditError {}

fn check_value(v: &str) -> Result<(), EditError> {
    if v.bytes().any(|b| b == b'\r' || b == b'\n') {
        return Err(EditError::LineBreak);
    }
    Ok(())
}

fn check_name(n: &str) -> Result<(), EditError> {
    if lex::all_token(n.as_bytes()) {
        Ok(())
    } else {
        Err(EditError::BadName)
    }
}

fn header_line(name: &str, value: &str) -> Vec<u8> {
    format!("{name}: {value}\r\n").into_bytes()
}

impl SipMsg {
    /// Applies `(range, replacement)` splices and re-indexes.
    fn splice(&mut self, mut edits: Vec<(Range<usize>, Vec<u8>)>) -> Result<(), EditError> {
        edits.sort_by_key(|e| e.0.start);
        let extra: usize = edits.iter().map(|e| e.1.len()).sum();
        let mut out = Vec::with_capacity(self.buf.len() + extra);
        let mut pos = 0;
        for (r, bytes) in edits {
            let start = r.start.clamp(pos, self.buf.len());
            let end = r.end.clamp(start, self.buf.len());
            out.extend_from_slice(&self.buf[pos..start]);
            out.extend_from_slice(&bytes);
            pos = end;
        }
        out.extend_from_slice(&self.buf[pos..]);
        let tolerate = matches!(self.framing, BodyFraming::Truncated { .. });
        let discarded = self.discarded;
        *self = scan(out, tolerate).map_err(EditError::Reparse)?;
        self.discarded = discarded;
        Ok(())
    }

    fn first_line_of(&self, kind: HeaderKind) -> Option<usize> {
        self.by_kind(kind).next().map(|h| h.line.start as usize)
    }

    /// Removes the first comma-separated value of the first `kind` header
    /// line, or the whole line when it holds one value.
    fn remove_first_value(&mut self, kind: HeaderKind) -> Result<bool, EditError> {
        let Some(h) = self.by_kind(kind).next().copied() else {
            return Ok(false);
        };
        let v = self.slice(h.value);
        let base = h.value.start as usize;
        let mut list = lex::split_list(v);
        let first = list.next().unwrap_or(0..0);
        let cut = match list.next() {
            Some(second) => base + first.start..base + second.start,
            None => h.line.range(),
        };
        self.splice(vec![(cut, Vec::new())])?;
        Ok(true)
    }

    /// Adds `Via: value` as the new topmost Via (before the first Via
    /// line, or at the top of the headers if there is none).
    pub(crate) fn push_via(&mut self, value: &str) -> Result<(), EditError> {
        check_value(value)?;
        let at = self
            .first_line_of(HeaderKind::Via)
            .unwrap_or(self.headers_start as usize);
        self.splice(vec![(at..at, header_line("Via", value))])
    }

    /// Removes the topmost Via value (only that value when the first Via
    /// line carries several). `false` when there was no Via.
    pub(crate) fn pop_top_via(&mut self) -> Result<bool, EditError> {
        self.remove_first_value(HeaderKind::Via)
    }

    /// Removes the first Route value (RFC 3261 §16.4 loose routing).
    /// `false` when there was no Route.
    pub(crate) fn remove_first_route(&mut self) -> Result<bool, EditError> {
        self.remove_first_value(HeaderKind::Route)
    }

    /// RFC 3261 §18.2.1: adds `received=<src_ip>` to the top Via when its
    /// sent-by host is not that address; RFC 3581 §4: fills a valueless
    /// `rport` with `src_port` and then always adds `received`. IPv6 is
    /// written without brackets, as RFC 3261's `via-received` grammar has
    /// it. Returns whether the message changed.
    pub(crate) fn set_via_received(
        &mut self,
        src_ip: IpAddr,
        src_port: u16,
    ) -> Result<bool, EditError> {
        let top = self.top_via_range()?;
        let (base, end) = (top.start, top.end);
        let via = Via::parse_bytes(&self.as_bytes()[top]).map_err(EditError::BadVia)?;
        let is_named = |p: &lex::Param, n: &str| {
            via.as_str()
                .as_bytes()
                .get(p.name.clone())
                .is_some_and(|x| x.eq_ignore_ascii_case(n.as_bytes()))
        };
        let rport = via.raw_params().find(|p| is_named(p, "rport"));
        let received = via.raw_params().find(|p| is_named(p, "received"));
        let mut need_received = via.host_unbracketed().parse::<IpAddr>().ok() != Some(src_ip);
        let mut edits = Vec::new();
        if let Some(p) = &rport {
            if p.value.is_none() {
                let at = base + p.name.end;
                edits.push((at..at, format!("={src_port}").into_bytes()));
                need_received = true;
            }
        }
        if need_received {
            let ip = src_ip.to_string();
            match received {
                Some(lex::Param { value: Some(r), .. }) => {
                    if via.as_str().get(r.clone()) != Some(ip.as_str()) {
                        edits.push((base + r.start..base + r.end, ip.into_bytes()));
                    }
                }
                Some(lex::Param {
                    name, value: None, ..
                }) => {
                    let at = base + name.end;
                    edits.push((at..at, format!("={ip}").into_bytes()));
                }
                None => edits.push((end..end, format!(";received={ip}").into_bytes())),
            }
        }
        if edits.is_empty() {
            return Ok(false);
        }
        self.splice(edits)?;
        Ok(true)
    }

    /// Adds a valueless `rport` to the top Via when it has none, so that
    /// [`SipMsg::set_via_received`] records the source port: on a stream
    /// the response must go back on the connection the request came on
    /// (RFC 3261 §18.2.2), whose peer is exactly received:rport
    /// (docs/decisions.md §18). Returns whether the message changed.
    pub(crate) fn force_via_rport(&mut self) -> Result<bool, EditError> {
        let top = self.top_via_range()?;
        let end = top.end;
        let via = Via::parse_bytes(&self.as_bytes()[top]).map_err(EditError::BadVia)?;
        if via.rport().is_some() {
            return Ok(false);
        }
        self.splice(vec![(end..end, b";rport".to_vec())])?;
        Ok(true)
    }

    /// Where the topmost Via value lies in the message (the first element
    /// of the first Via line): what the two Via edits above change.
    fn top_via_range(&self) -> Result<Range<usize>, EditError> {
        let h = self
            .by_kind(HeaderKind::Via)
            .next()
            .copied()
            .ok_or(EditError::NoVia)?;
        let first = lex::split_list(self.slice(h.value)).next().unwrap_or(0..0);
        let at = h.value.start as usize;
        Ok(at + first.start..at + first.end)
    }

    /// Replaces the first `name` header line, when its value is exactly
    /// `expect`, by one line per value of `with` (double Record-Route).
    /// False when the first such line is something else.
    pub(crate) fn replace_first_header(
        &mut self,
        name: &str,
        expect: &str,
        with: &[&str],
    ) -> Result<bool, EditError> {
        check_name(name)?;
        for w in with {
            check_value(w)?;
        }
        let Some(h) = self.matching(name).next().copied() else {
            return Ok(false);
        };
        if self.slice(h.value) != expect.as_bytes() {
            return Ok(false);
        }
        let mut bytes = Vec::new();
        for w in with {
            bytes.extend(header_line(name, w));
        }
        self.splice(vec![(h.line.range(), bytes)])?;
        Ok(true)
    }

    /// Replaces the Request-URI, leaving the rest of the request line as is.
    pub(crate) fn set_request_uri(&mut self, uri: &str) -> Result<(), EditError> {
        let Start::Request { uri: span, .. } = self.start else {
            return Err(EditError::NotARequest);
        };
        if uri.is_empty() || uri.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(EditError::BadUri);
        }
        self.splice(vec![(span.range(), uri.as_bytes().to_vec())])
    }

    /// Inserts `name: value` before the first header of that name (e.g.
    /// Record-Route, RFC 3261 §16.6 step 4), or at the top of the headers.
    pub(crate) fn insert_header_top(&mut self, name: &str, value: &str) -> Result<(), EditError> {
        check_name(name)?;
        check_value(value)?;
        let at = self
            .matching(name)
            .next()
            .map_or(self.headers_start as usize, |h| h.line.start as usize);
        self.splice(vec![(at..at, header_line(name, value))])
    }

    /// Appends a whole header line (`Name: value`, a trailing CRLF is
    /// optional) after the last header.
    pub(crate) fn append_header(&mut self, line: &str) -> Result<(), EditError> {
        let line = line
            .strip_suffix("\r\n")
            .or_else(|| line.strip_suffix('\n'))
            .unwrap_or(line);
        check_value(line)?;
        let (name, _) = line.split_once(':').ok_or(EditError::BadName)?;
        check_name(name.trim_end_matches([' ', '\t']))?;
        let at = self
            .headers
            .last()
            .map_or(self.headers_start as usize, |h| h.line.end as usize);
        let mut bytes = line.as_bytes().to_vec();
        bytes.extend_from_slice(b"\r\n");
        self.splice(vec![(at..at, bytes)])
    }

    /// Removes every header line named `name` (full or compact, any case);
    /// returns how many.
    pub(crate) fn remove_header(&mut self, name: &str) -> Result<usize, EditError> {
        let cuts: Vec<(Range<usize>, Vec<u8>)> = self
            .matching(name)
            .map(|h| (h.line.range(), Vec::new()))
            .collect();
        let n = cuts.len();
        if n > 0 {
            self.splice(cuts)?;
        }
        Ok(n)
    }

    /// Sets the first Max-Forwards value, or inserts `Max-Forwards: n` at
    /// the top of the headers when there is none (as Kamailio's
    /// `mf_process_maxfwd_header` does).
    pub(crate) fn set_max_forwards(&mut self, n: u8) -> Result<(), EditError> {
        let existing = self
            .by_kind(HeaderKind::MaxForwards)
            .next()
            .map(|h| h.value.range());
        match existing {
            Some(r) => self.splice(vec![(r, n.to_string().into_bytes())]),
            None => self.insert_header_top("Max-Forwards", &n.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const REQ: &str = "INVITE sip:bob@b.example SIP/2.0\r\n\
v: SIP/2.0/UDP a.example;branch=z9hG4bK1, SIP/2.0/UDP p.example;branch=z9hG4bK0\r\n\
Via: SIP/2.0/UDP q.example;branch=z9hG4bKq\r\n\
Route: <sip:p1.example;lr>,\r\n <sip:p2.example;lr>\r\n\
Route: <sip:p3.example;lr>\r\n\
Max-Forwards: 0070\r\n\
To: <sip:bob@b.example>\r\n\
From: <sip:alice@a.example>;tag=1\r\n\
Call-ID: c1\r\n\
CSeq: 1 INVITE\r\n\
Content-Length: 3\r\n\
\r\n\
x\r\n";

    type Edit = fn(&mut SipMsg) -> Result<(), EditError>;

    /// Applies one edit to `REQ` and checks the full result: only the
    /// intended bytes change.
    fn check(edit: Edit, replace: &[(&str, &str)]) {
        let mut m = SipMsg::parse(REQ.as_bytes()).expect("REQ parses");
        edit(&mut m).expect("edit succeeds");
        let mut want = REQ.to_owned();
        for (from, to) in replace {
            assert!(want.contains(from), "fixture lacks {from:?}");
            want = want.replacen(from, to, 1);
        }
        assert_eq!(String::from_utf8_lossy(m.as_bytes()), want);
        assert_eq!(m.body(), b"x\r\n", "body untouched");
    }

    #[test]
    fn edits_table() {
        let cases: Vec<(Edit, Vec<(&str, &str)>)> = vec![
            (
                |m| m.push_via("SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKnew"),
                vec![("v: ", "Via: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKnew\r\nv: ")],
            ),
            (
                |m| m.push_via("SIP/2.0/UDP [2001:db8::1]:5062;branch=z9hG4bKv6"),
                vec![(
                    "v: ",
                    "Via: SIP/2.0/UDP [2001:db8::1]:5062;branch=z9hG4bKv6\r\nv: ",
                )],
            ),
            (
                |m| m.pop_top_via().map(|_| ()),
                vec![("SIP/2.0/UDP a.example;branch=z9hG4bK1, ", "")],
            ),
            (
                |m| m.remove_first_route().map(|_| ()),
                vec![("<sip:p1.example;lr>,\r\n ", "")],
            ),
            (
                |m| m.set_request_uri("sip:bob@192.0.2.7:5080;transport=udp"),
                vec![(
                    "sip:bob@b.example SIP",
                    "sip:bob@192.0.2.7:5080;transport=udp SIP",
                )],
            ),
            (
                |m| m.insert_header_top("Record-Route", "<sip:10.0.0.1;lr>"),
                vec![("v: ", "Record-Route: <sip:10.0.0.1;lr>\r\nv: ")],
            ),
            (
                |m| m.insert_header_top("route", "<sip:p0.example;lr>"),
                vec![(
                    "Route: <sip:p1",
                    "route: <sip:p0.example;lr>\r\nRoute: <sip:p1",
                )],
            ),
            (
                |m| m.append_header("X-Trace: on\r\n"),
                vec![(
                    "Content-Length: 3\r\n",
                    "Content-Length: 3\r\nX-Trace: on\r\n",
                )],
            ),
            (
                |m| m.remove_header("ROUTE").map(|_| ()),
                vec![
                    (
                        "Route: <sip:p1.example;lr>,\r\n <sip:p2.example;lr>\r\n",
                        "",
                    ),
                    ("Route: <sip:p3.example;lr>\r\n", ""),
                ],
            ),
            (
                |m| m.set_max_forwards(10),
                vec![("Max-Forwards: 0070", "Max-Forwards: 10")],
            ),
            (
                |m| {
                    m.set_via_received(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 5060)
                        .map(|_| ())
                },
                vec![("branch=z9hG4bK1,", "branch=z9hG4bK1;received=192.0.2.1,")],
            ),
            (
                |m| {
                    m.force_via_rport()?;
                    m.set_via_received(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 40123)
                        .map(|_| ())
                },
                vec![(
                    "branch=z9hG4bK1,",
                    "branch=z9hG4bK1;rport=40123;received=192.0.2.1,",
                )],
            ),
            (
                |m| {
                    let done = m.replace_first_header(
                        "Route",
                        "<sip:p1.example;lr>,\r\n <sip:p2.example;lr>",
                        &["<sip:a;r2=on;lr>", "<sip:b;r2=on;lr>"],
                    )?;
                    assert!(done);
                    Ok(())
                },
                vec![(
                    "Route: <sip:p1.example;lr>,\r\n <sip:p2.example;lr>\r\n",
                    "Route: <sip:a;r2=on;lr>\r\nRoute: <sip:b;r2=on;lr>\r\n",
                )],
            ),
        ];
        for (edit, replace) in cases {
            check(edit, &replace);
        }
        // Not the expected value, or an rport already there: unchanged.
        let mut m = SipMsg::parse(REQ.as_bytes()).unwrap();
        assert_eq!(
            m.replace_first_header("Route", "<sip:other;lr>", &["<sip:x;lr>"]),
            Ok(false)
        );
        let with_rport = REQ.replace("branch=z9hG4bK1,", "branch=z9hG4bK1;rport,");
        let mut m = SipMsg::parse(with_rport.as_bytes()).unwrap();
        assert_eq!(m.force_via_rport(), Ok(false));
        assert_eq!(m.as_bytes(), with_rport.as_bytes());
    }

    /// (top Via, source, expected top Via after set_via_received)
    #[test]
    fn received_and_rport_table() {
        let v4 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        let v6: IpAddr = IpAddr::V6("2001:db8::9:255".parse::<Ipv6Addr>().expect("literal"));
        let cases: &[(&str, IpAddr, u16, &str, bool)] = &[
            (
                "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa",
                v4,
                5060,
                "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa",
                false,
            ),
            (
                "SIP/2.0/UDP host.example;branch=z9hG4bKa",
                v4,
                5060,
                "SIP/2.0/UDP host.example;branch=z9hG4bKa;received=192.0.2.1",
                true,
            ),
            (
                "SIP/2.0/UDP 10.0.0.1:5070;rport;branch=z9hG4bKa",
                v4,
                34567,
                "SIP/2.0/UDP 10.0.0.1:5070;rport=34567;branch=z9hG4bKa;received=192.0.2.1",
                true,
            ),
            (
                "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa;rport",
                v4,
                5060,
                "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa;rport=5060;received=192.0.2.1",
                true,
            ),
            (
                "SIP/2.0/UDP 10.0.0.1;received=10.9.9.9",
                v4,
                5060,
                "SIP/2.0/UDP 10.0.0.1;received=192.0.2.1",
                true,
            ),
            (
                "SIP/2.0/UDP [2001:db8::9:1];branch=z9hG4bKas3-111",
                v6,
                5060,
                "SIP/2.0/UDP [2001:db8::9:1];branch=z9hG4bKas3-111;received=2001:db8::9:255",
                true,
            ),
            (
                "SIP/2.0/UDP [2001:db8::9:255];rport",
                v6,
                6000,
                "SIP/2.0/UDP [2001:db8::9:255];rport=6000;received=2001:db8::9:255",
                true,
            ),
        ];
        for (via, ip, port, want, changed) in cases {
            let raw =
                format!("OPTIONS sip:a@b SIP/2.0\r\nVia: {via} , SIP/2.0/UDP z\r\nl: 0\r\n\r\n");
            let mut m = SipMsg::parse(raw.as_bytes()).expect("parses");
            assert_eq!(m.set_via_received(*ip, *port), Ok(*changed), "{via}");
            let expect =
                format!("OPTIONS sip:a@b SIP/2.0\r\nVia: {want} , SIP/2.0/UDP z\r\nl: 0\r\n\r\n");
            assert_eq!(String::from_utf8_lossy(m.as_bytes()), expect, "{via}");
        }
    }

    #[test]
    fn pop_single_value_lines_and_errors() {
        let mut m = SipMsg::parse(
            b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP p\r\nVia: SIP/2.0/UDP a\r\nl: 0\r\n\r\n",
        )
        .expect("parses");
        assert_eq!(m.pop_top_via(), Ok(true));
        assert_eq!(
            m.as_bytes(),
            b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP a\r\nl: 0\r\n\r\n"
        );
        assert_eq!(m.pop_top_via(), Ok(true));
        assert_eq!(m.pop_top_via(), Ok(false));
        assert_eq!(m.remove_first_route(), Ok(false));
        assert_eq!(m.set_request_uri("sip:x"), Err(EditError::NotARequest));
        assert_eq!(m.push_via("a\r\nInjected: 1"), Err(EditError::LineBreak));
        assert_eq!(
            m.insert_header_top("Bad Name", "x"),
            Err(EditError::BadName)
        );
        assert_eq!(m.append_header("no colon"), Err(EditError::BadName));
        assert_eq!(
            m.set_via_received(IpAddr::V4(Ipv4Addr::LOCALHOST), 1),
            Err(EditError::NoVia)
        );
        assert_eq!(m.remove_header("Via"), Ok(0));
        m.set_max_forwards(70).expect("inserted");
        assert_eq!(
            m.as_bytes(),
            b"SIP/2.0 200 OK\r\nMax-Forwards: 70\r\nl: 0\r\n\r\n"
        );
    }

    #[test]
    fn edits_keep_discarded_count_and_lf_messages_work() {
        let mut m = SipMsg::parse(b"OPTIONS sip:a@b SIP/2.0\nVia: SIP/2.0/UDP h\nl: 0\n\njunk")
            .expect("parses");
        assert_eq!(m.discarded_trailing(), 4);
        m.push_via("SIP/2.0/UDP p;branch=z9hG4bKp").expect("pushed");
        assert_eq!(m.discarded_trailing(), 4);
        assert_eq!(
            m.as_bytes(),
            b"OPTIONS sip:a@b SIP/2.0\nVia: SIP/2.0/UDP p;branch=z9hG4bKp\r\nVia: SIP/2.0/UDP h\nl: 0\n\n"
        );
        assert_eq!(m.via_values().count(), 2);
    }
}
