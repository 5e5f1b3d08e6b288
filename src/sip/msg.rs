//! The SIP message scanner and its index: a lenient byte-level pass that
//! finds the start line, every header line (folds joined, compact names
//! resolved) and the body (by Content-Length), and keeps the message bytes
//! exactly as received so that they can be traced and relayed unchanged.
//! Accessors read the index; typed decoding (URI, Via, name-addr) happens
//! on demand in sibling modules. No I/O, no clock, never panics on input.
//!
//! Only what cannot be SIP is a [`ParseError`]; a message that is framed
//! but breaks RFC 3261 grammar parses, and [`SipMsg::validate`]
//! (check.rs) says why a proxy should answer 400.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use super::lex::{self, is_wsp};
use super::nameaddr::NameAddr;
use super::via::{Via, ViaError};

/// Offsets into [`SipMsg::as_bytes`]; `u32` keeps the index small (a SIP
/// message is far below 4 GiB; larger input is [`ParseError::TooLarge`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub(crate) fn of(r: Range<usize>) -> Span {
        // Callers only pass offsets into a buffer already checked to fit u32.
        Span {
            start: u32::try_from(r.start).unwrap_or(u32::MAX),
            end: u32::try_from(r.end).unwrap_or(u32::MAX),
        }
    }

    pub(crate) fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// Header names the proxy and the trace path look up, with their compact
/// forms resolved (RFC 3261 §7.3.3 and the extensions' own RFCs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderKind {
    Via,
    From,
    To,
    CallId,
    CSeq,
    ContentLength,
    ContentType,
    ContentEncoding,
    MaxForwards,
    Route,
    RecordRoute,
    Contact,
    UserAgent,
    Server,
    Subject,
    Supported,
    /// RFC 6665 (`o`).
    Event,
    /// RFC 3515 (`r`).
    ReferTo,
    /// RFC 6665 (`u`).
    AllowEvents,
    /// RFC 4028 (`x`).
    SessionExpires,
    /// RFC 3892 (`b`).
    ReferredBy,
    /// RFC 3841 (`a`).
    AcceptContact,
    /// RFC 3841 (`j`).
    RejectContact,
    /// RFC 3841 (`d`).
    RequestDisposition,
    /// RFC 8224 (`y`).
    Identity,
    /// Any other name: compared by its text, case-insensitively.
    Other,
}

/// (kind, canonical name, compact form).
const KNOWN: &[(HeaderKind, &str, Option<u8>)] = &[
    (HeaderKind::Via, "Via", Some(b'v')),
    (HeaderKind::From, "From", Some(b'f')),
    (HeaderKind::To, "To", Some(b't')),
    (HeaderKind::CallId, "Call-ID", Some(b'i')),
    (HeaderKind::CSeq, "CSeq", None),
    (HeaderKind::ContentLength, "Content-Length", Some(b'l')),
    (HeaderKind::ContentType, "Content-Type", Some(b'c')),
    (HeaderKind::ContentEncoding, "Content-Encoding", Some(b'e')),
    (HeaderKind::MaxForwards, "Max-Forwards", None),
    (HeaderKind::Route, "Route", None),
    (HeaderKind::RecordRoute, "Record-Route", None),
    (HeaderKind::Contact, "Contact", Some(b'm')),
    (HeaderKind::UserAgent, "User-Agent", None),
    (HeaderKind::Server, "Server", None),
    (HeaderKind::Subject, "Subject", Some(b's')),
    (HeaderKind::Supported, "Supported", Some(b'k')),
    (HeaderKind::Event, "Event", Some(b'o')),
    (HeaderKind::ReferTo, "Refer-To", Some(b'r')),
    (HeaderKind::AllowEvents, "Allow-Events", Some(b'u')),
    (HeaderKind::SessionExpires, "Session-Expires", Some(b'x')),
    (HeaderKind::ReferredBy, "Referred-By", Some(b'b')),
    (HeaderKind::AcceptContact, "Accept-Contact", Some(b'a')),
    (HeaderKind::RejectContact, "Reject-Contact", Some(b'j')),
    (
        HeaderKind::RequestDisposition,
        "Request-Disposition",
        Some(b'd'),
    ),
    (HeaderKind::Identity, "Identity", Some(b'y')),
];

impl HeaderKind {
    /// Resolves a header name, full or compact, in any letter case.
    pub fn of(name: &[u8]) -> HeaderKind {
        if name.len() == 1 {
            let c = name[0].to_ascii_lowercase();
            return KNOWN
                .iter()
                .find(|(_, _, compact)| *compact == Some(c))
                .map_or(HeaderKind::Other, |k| k.0);
        }
        KNOWN
            .iter()
            .find(|(_, full, _)| {
                full.len() == name.len() && full.as_bytes().eq_ignore_ascii_case(name)
            })
            .map_or(HeaderKind::Other, |k| k.0)
    }

    /// The long form used when this code writes the header.
    pub(crate) fn canonical_name(self) -> Option<&'static str> {
        KNOWN.iter().find(|k| k.0 == self).map(|k| k.1)
    }
}

/// One header line of the index. `value` is LWS-trimmed and may still
/// contain the CRLF+WSP of folds; `line` covers the name through the line
/// terminator of the last continuation line (what an edit removes).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Header {
    pub kind: HeaderKind,
    pub name: Span,
    pub value: Span,
    pub line: Span,
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Start {
    Request {
        method: Span,
        uri: Span,
        version: Span,
    },
    Response {
        version: Span,
        code: u16,
        reason: Span,
    },
}

/// A start line that was framed but not written as RFC 3261 §7.1 demands;
/// the scanner accepts it so that a 400 can be addressed (RFC 4475
/// §3.1.2.8-10), and [`SipMsg::validate`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartLineIssue {
    /// More than one SP between elements, or white space before the CRLF.
    ExtraWhitespace,
    /// White space inside the Request-URI.
    UriWhitespace,
}

/// How the body was delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    /// No Content-Length: on a datagram the body is the rest (RFC 3261
    /// §18.3 allows it for UDP).
    Absent,
    /// A Content-Length the body honours.
    Declared(usize),
    /// Content-Length is not a non-negative decimal (RFC 4475 §3.1.2.3);
    /// the body is taken as the rest of the datagram.
    Invalid,
    /// Several Content-Length values that disagree (RFC 4475 §3.3.9); the
    /// body is the rest of the datagram.
    Conflicting,
    /// Only from [`SipMsg::parse_to_answer`]: the declared length exceeds
    /// the bytes present; the body is what there is.
    Truncated { declared: usize },
}

/// Why bytes cannot be a SIP message at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Nothing but CR/LF (a keep-alive) or no bytes.
    Empty,
    /// Over 4 GiB: not a SIP message this process will index.
    TooLarge,
    /// The first line is neither `Method SP Request-URI SP SIP/x.y` nor
    /// `SIP/x.y SP code SP reason`.
    BadStartLine,
    /// The status code is not exactly three digits (RFC 4475 §3.1.2.19).
    BadStatusCode,
    /// No empty line ends the header section.
    NoEndOfHeaders,
    /// A header line (1-based line number) has no colon.
    MissingColon { line: usize },
    /// A header name is empty or not a token, or a continuation line has
    /// no header to continue.
    BadHeaderName { line: usize },
    /// Content-Length promises more bytes than arrived (RFC 4475 §3.1.2.2).
    Truncated { declared: usize, present: usize },
    /// Stream framing: Content-Length is mandatory on TCP (RFC 3261 §18.3).
    MissingContentLength,
    /// Stream framing: Content-Length is not a decimal, or disagrees with
    /// another Content-Length; the stream cannot be re-synchronised.
    BadContentLength,
    /// Stream framing: the message exceeds the per-message bound.
    MessageTooLarge { limit: usize },
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Empty => write!(f, "no SIP message (empty or only CR/LF keep-alive)"),
            ParseError::TooLarge => write!(f, "message larger than 4 GiB"),
            ParseError::BadStartLine => write!(
                f,
                "first line is neither a SIP request line nor a SIP status line"
            ),
            ParseError::BadStatusCode => write!(f, "status code is not three digits"),
            ParseError::NoEndOfHeaders => {
                write!(f, "no empty line ends the headers (message cut short?)")
            }
            ParseError::MissingColon { line } => write!(f, "header line {line} has no colon"),
            ParseError::BadHeaderName { line } => {
                write!(f, "header line {line} has no valid header name")
            }
            ParseError::Truncated { declared, present } => write!(
                f,
                "Content-Length says {declared} body bytes but only {present} arrived"
            ),
            ParseError::MissingContentLength => {
                write!(
                    f,
                    "no Content-Length on a stream transport (RFC 3261 §18.3)"
                )
            }
            ParseError::BadContentLength => {
                write!(f, "Content-Length is not a single non-negative number")
            }
            ParseError::MessageTooLarge { limit } => {
                write!(
                    f,
                    "message exceeds the {limit}-byte limit for stream transports"
                )
            }
        }
    }
}

impl std::error::Error for ParseError {}

/// Max-Forwards as found (RFC 3261 §20.22: 0-255).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaxForwards {
    Absent,
    Value(u8),
    /// Present but not a decimal in 0..=255 (first header line counts).
    Invalid,
}

/// A parsed and indexed SIP message. The bytes are the message exactly as
/// received, minus leading CR/LF and minus datagram bytes past
/// Content-Length (RFC 3261 §18.3 discards those; see
/// [`SipMsg::discarded_trailing`]).
#[derive(Clone, Debug)]
pub struct SipMsg {
    pub(crate) buf: Vec<u8>,
    pub(crate) start: Start,
    pub start_line: Span,
    pub(crate) start_issue: Option<StartLineIssue>,
    /// Offset of the first header line (just past the start line's LF).
    pub(crate) headers_start: u32,
    pub(crate) headers: Vec<Header>,
    pub(crate) body: Span,
    pub(crate) framing: BodyFraming,
    pub(crate) discarded: usize,
}

/// Typical INVITEs carry 10-20 header lines; one allocation covers them.
const HEADER_INDEX_CAPACITY: usize = 24;

/// Line end found from `from`: (end of content without CR, start of next line).
pub(crate) fn find_line(b: &[u8], from: usize) -> Option<(usize, usize)> {
    let lf = lex::find_byte(b, from, b'\n')?;
    let end = if lf > from && b[lf - 1] == b'\r' {
        lf - 1
    } else {
        lf
    };
    Some((end, lf + 1))
}

fn is_sip_version(v: &[u8]) -> bool {
    if v.len() < 7 || !v[..4].eq_ignore_ascii_case(b"SIP/") {
        return false;
    }
    let rest = &v[4..];
    match rest.iter().position(|&b| b == b'.') {
        Some(dot) => {
            dot > 0
                && dot + 1 < rest.len()
                && rest[..dot].iter().all(u8::is_ascii_digit)
                && rest[dot + 1..].iter().all(u8::is_ascii_digit)
        }
        None => false,
    }
}

fn parse_start_line(b: &[u8], end: usize) -> Result<(Start, Option<StartLineIssue>), ParseError> {
    let line = &b[..end];
    if line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"SIP/") {
        return parse_status_line(line);
    }
    let mut issue = None;
    let method_end = line
        .iter()
        .position(|&x| is_wsp(x))
        .ok_or(ParseError::BadStartLine)?;
    if method_end == 0 || !lex::all_token(&line[..method_end]) {
        return Err(ParseError::BadStartLine);
    }
    let mut last = line.len();
    while last > method_end && is_wsp(line[last - 1]) {
        last -= 1;
        issue = Some(StartLineIssue::ExtraWhitespace);
    }
    let version_start = line[..last]
        .iter()
        .rposition(|&x| is_wsp(x))
        .map_or(last, |p| p + 1);
    if version_start <= method_end + 1 || !is_sip_version(&line[version_start..last]) {
        return Err(ParseError::BadStartLine);
    }
    let mut uri_start = method_end + 1;
    let mut uri_end = version_start - 1;
    while uri_start < uri_end && is_wsp(line[uri_start]) {
        uri_start += 1;
        issue = Some(StartLineIssue::ExtraWhitespace);
    }
    while uri_end > uri_start && is_wsp(line[uri_end - 1]) {
        uri_end -= 1;
        issue = Some(StartLineIssue::ExtraWhitespace);
    }
    if uri_start >= uri_end {
        return Err(ParseError::BadStartLine);
    }
    if line[uri_start..uri_end].iter().any(|&x| is_wsp(x)) {
        issue = Some(StartLineIssue::UriWhitespace);
    }
    Ok((
        Start::Request {
            method: Span::of(0..method_end),
            uri: Span::of(uri_start..uri_end),
            version: Span::of(version_start..last),
        },
        issue,
    ))
}

fn parse_status_line(line: &[u8]) -> Result<(Start, Option<StartLineIssue>), ParseError> {
    let mut issue = None;
    let version_end = line
        .iter()
        .position(|&x| is_wsp(x))
        .ok_or(ParseError::BadStartLine)?;
    if !is_sip_version(&line[..version_end]) {
        return Err(ParseError::BadStartLine);
    }
    let mut i = version_end + 1;
    while i < line.len() && is_wsp(line[i]) {
        i += 1;
        issue = Some(StartLineIssue::ExtraWhitespace);
    }
    let digits = line[i..].iter().take_while(|x| x.is_ascii_digit()).count();
    let after = i + digits;
    // Status-Code = 3DIGIT (RFC 3261 §25.1), followed by SP or, leniently,
    // by the end of the line (RFC 4475 §3.1.1.13 allows accepting that).
    if digits != 3 || (after < line.len() && !is_wsp(line[after])) {
        return Err(ParseError::BadStatusCode);
    }
    let code = line[i..after]
        .iter()
        .fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
    let reason_start = (after + 1).min(line.len());
    Ok((
        Start::Response {
            version: Span::of(0..version_end),
            code,
            reason: Span::of(reason_start..line.len()),
        },
        issue,
    ))
}

/// The header lines from `pos` up to the empty line, in order: folds joined,
/// names resolved. Borrows the bytes and allocates nothing, so the trace
/// path can look at a message it does not keep parsed (trace/mask.rs);
/// [`scan`] builds its index with it. Stops at the first error.
pub(crate) struct HeaderLines<'a> {
    b: &'a [u8],
    pos: usize,
    line_no: usize,
    /// Set once the empty line is reached: where the body starts.
    pub body_start: Option<usize>,
    failed: bool,
}

impl<'a> HeaderLines<'a> {
    /// `pos`: just past the start line's LF (line 2).
    pub(crate) fn new(b: &'a [u8], pos: usize) -> HeaderLines<'a> {
        HeaderLines {
            b,
            pos,
            line_no: 2,
            body_start: None,
            failed: false,
        }
    }

    /// Past leading CRLFs (RFC 3261 §7.5) and the start line, without
    /// checking the start line: for bytes already relayed or received.
    pub(crate) fn of_message(b: &'a [u8]) -> HeaderLines<'a> {
        let skip = b.iter().take_while(|&&c| c == b'\r' || c == b'\n').count();
        match find_line(b, skip) {
            Some((_, next)) => HeaderLines::new(b, next),
            None => HeaderLines {
                failed: true,
                ..HeaderLines::new(b, b.len())
            },
        }
    }

    fn next_header(&mut self) -> Result<Option<Header>, ParseError> {
        let (b, pos) = (self.b, self.pos);
        let (end, next) = find_line(b, pos).ok_or(ParseError::NoEndOfHeaders)?;
        if end == pos {
            self.body_start = Some(next);
            return Ok(None);
        }
        let line_no = self.line_no;
        if is_wsp(b[pos]) {
            // A fold with no header before it.
            return Err(ParseError::BadHeaderName { line: line_no });
        }
        let colon = lex::find_byte(&b[..end], pos, b':')
            .ok_or(ParseError::MissingColon { line: line_no })?;
        let mut name_end = colon;
        while name_end > pos && is_wsp(b[name_end - 1]) {
            name_end -= 1;
        }
        if !lex::all_token(&b[pos..name_end]) {
            return Err(ParseError::BadHeaderName { line: line_no });
        }
        let (mut last_end, mut last_next) = (end, next);
        while last_next < b.len() && is_wsp(b[last_next]) {
            let (e, n) = find_line(b, last_next).ok_or(ParseError::NoEndOfHeaders)?;
            last_end = e;
            last_next = n;
            self.line_no += 1;
        }
        self.pos = last_next;
        self.line_no += 1;
        Ok(Some(Header {
            kind: HeaderKind::of(&b[pos..name_end]),
            name: Span::of(pos..name_end),
            value: Span::of(lex::trim_range(b, colon + 1..last_end)),
            line: Span::of(pos..last_next),
        }))
    }
}

impl Iterator for HeaderLines<'_> {
    type Item = Result<Header, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.body_start.is_some() {
            return None;
        }
        match self.next_header() {
            Ok(h) => h.map(Ok),
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// Indexes `buf` in place. `tolerate_truncation` keeps a message whose
/// body is shorter than its Content-Length (see `parse_to_answer`).
pub(crate) fn scan(mut buf: Vec<u8>, tolerate_truncation: bool) -> Result<SipMsg, ParseError> {
    // RFC 3261 §7.5: CRLFs before the start line are ignored.
    let skip = buf
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    if skip == buf.len() {
        return Err(ParseError::Empty);
    }
    if skip > 0 {
        buf.drain(..skip);
    }
    if u32::try_from(buf.len()).is_err() {
        return Err(ParseError::TooLarge);
    }
    let b = &buf[..];
    let (start_end, pos) = find_line(b, 0).ok_or(ParseError::NoEndOfHeaders)?;
    let (start, start_issue) = parse_start_line(b, start_end)?;
    let headers_start = pos;
    let mut headers = Vec::with_capacity(HEADER_INDEX_CAPACITY);
    let mut lines = HeaderLines::new(b, pos);
    for h in &mut lines {
        headers.push(h?);
    }
    let body_start = lines.body_start.ok_or(ParseError::NoEndOfHeaders)?;

    let present = b.len() - body_start;
    let mut framing = BodyFraming::Absent;
    for h in headers
        .iter()
        .filter(|h| h.kind == HeaderKind::ContentLength)
    {
        let declared = lex::parse_u64(&b[h.value.range()]).and_then(|n| usize::try_from(n).ok());
        framing = match (framing, declared) {
            (BodyFraming::Absent, Some(n)) => BodyFraming::Declared(n),
            (BodyFraming::Absent, None) => BodyFraming::Invalid,
            (BodyFraming::Declared(m), Some(n)) if m == n => BodyFraming::Declared(n),
            (BodyFraming::Declared(_), Some(_)) => BodyFraming::Conflicting,
            (BodyFraming::Declared(_), None) => BodyFraming::Invalid,
            (other, _) => other,
        };
    }
    let body_end = match framing {
        BodyFraming::Declared(n) if n <= present => body_start + n,
        BodyFraming::Declared(n) => {
            if !tolerate_truncation {
                return Err(ParseError::Truncated {
                    declared: n,
                    present,
                });
            }
            framing = BodyFraming::Truncated { declared: n };
            b.len()
        }
        _ => b.len(),
    };
    let discarded = b.len() - body_end;
    buf.truncate(body_end);
    Ok(SipMsg {
        buf,
        start,
        start_line: Span::of(0..start_end),
        start_issue,
        headers_start: Span::of(0..headers_start).end,
        headers,
        body: Span::of(body_start..body_end),
        framing,
        discarded,
    })
}

/// CSeq number and method (RFC 3261 §20.16), LWS and folds allowed
/// between them.
pub(crate) fn parse_cseq(v: &[u8]) -> Option<(u32, &str)> {
    let v = lex::trim(v);
    let digits = v.iter().take_while(|b| b.is_ascii_digit()).count();
    let num = u32::try_from(lex::parse_u64(&v[..digits])?).ok()?;
    let rest = &v[digits..];
    let method = lex::trim(rest);
    if rest.len() == method.len() || !lex::all_token(method) {
        return None;
    }
    Some((num, lex::as_str(method)))
}

impl SipMsg {
    /// Scans a datagram (or a frame cut by [`super::frame_len`]).
    pub fn parse(bytes: &[u8]) -> Result<SipMsg, ParseError> {
        scan(bytes.to_vec(), false)
    }

    /// [`SipMsg::parse`] taking ownership of the bytes (no copy).
    pub fn parse_owned(bytes: Vec<u8>) -> Result<SipMsg, ParseError> {
        scan(bytes, false)
    }

    /// Like [`SipMsg::parse`] but keeps a message whose body is shorter than
    /// its Content-Length ([`BodyFraming::Truncated`]), so that the proxy can
    /// still address a 400 (RFC 4475 §3.1.2.2). Never relay such a message.
    pub(crate) fn parse_to_answer(bytes: &[u8]) -> Result<SipMsg, ParseError> {
        scan(bytes.to_vec(), true)
    }

    /// The message bytes (what a relay sends when nothing was edited).
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// Datagram bytes found after the body and dropped (RFC 3261 §18.3).
    pub fn discarded_trailing(&self) -> usize {
        self.discarded
    }

    pub(crate) fn slice(&self, s: Span) -> &[u8] {
        self.buf.get(s.range()).unwrap_or(&[])
    }

    pub(crate) fn is_request(&self) -> bool {
        matches!(self.start, Start::Request { .. })
    }

    /// The request method (a token, so always ASCII); `None` for replies.
    pub fn method(&self) -> Option<&str> {
        match self.start {
            Start::Request { method, .. } => Some(lex::as_str(self.slice(method))),
            Start::Response { .. } => None,
        }
    }

    /// The request method, or for a reply the CSeq method (what a trace row
    /// records as the method of a reply).
    pub fn method_or_cseq(&self) -> Option<&str> {
        self.method().or_else(|| self.cseq_method())
    }

    pub(crate) fn request_uri_bytes(&self) -> Option<&[u8]> {
        match self.start {
            Start::Request { uri, .. } => Some(self.slice(uri)),
            Start::Response { .. } => None,
        }
    }

    /// The Request-URI as written; `None` for replies or a non-UTF-8 URI
    /// (which [`SipMsg::validate`] rejects).
    pub(crate) fn request_uri(&self) -> Option<&str> {
        std::str::from_utf8(self.request_uri_bytes()?).ok()
    }

    /// `SIP/2.0` for anything this proxy relays; other versions parse so
    /// that a 505 can be sent (RFC 4475 §3.1.2.16).
    pub fn version(&self) -> &[u8] {
        match self.start {
            Start::Request { version, .. } | Start::Response { version, .. } => self.slice(version),
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self.start {
            Start::Response { code, .. } => Some(code),
            Start::Request { .. } => None,
        }
    }

    pub fn reason(&self) -> Option<&[u8]> {
        match self.start {
            Start::Response { reason, .. } => Some(self.slice(reason)),
            Start::Request { .. } => None,
        }
    }

    pub fn reason_str(&self) -> Option<Cow<'_, str>> {
        self.reason().map(String::from_utf8_lossy)
    }

    /// The start line without its line end.
    pub fn start_line(&self) -> &[u8] {
        self.slice(self.start_line)
    }

    pub(crate) fn start_line_issue(&self) -> Option<StartLineIssue> {
        self.start_issue
    }

    pub(crate) fn by_kind(&self, kind: HeaderKind) -> impl Iterator<Item = &Header> + '_ {
        self.headers.iter().filter(move |h| h.kind == kind)
    }

    pub(crate) fn matching<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Header> + 'a {
        let kind = HeaderKind::of(name.as_bytes());
        self.headers.iter().filter(move |h| {
            h.kind == kind
                && (kind != HeaderKind::Other
                    || self.slice(h.name).eq_ignore_ascii_case(name.as_bytes()))
        })
    }

    /// Value of the first header line named `name` (full or compact name,
    /// any case). Folded values keep their CRLF+WSP; see [`SipMsg::header_str`].
    pub fn header<'a>(&'a self, name: &'a str) -> Option<&'a [u8]> {
        self.matching(name).next().map(|h| self.slice(h.value))
    }

    /// Values of every header line named `name`, in message order.
    pub fn headers<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.matching(name).map(|h| self.slice(h.value))
    }

    /// [`SipMsg::header`] as text: invalid UTF-8 replaced, each fold turned
    /// into one SP.
    pub fn header_str<'a>(&'a self, name: &'a str) -> Option<Cow<'a, str>> {
        self.header(name).map(unfold_lossy)
    }

    /// Every header line as (name as written, value), in order.
    pub fn header_lines(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.headers
            .iter()
            .map(|h| (self.slice(h.name), self.slice(h.value)))
    }

    /// The comma-separated elements of every `name` header line, in order
    /// (Via, Route, Record-Route, Contact...), LWS-trimmed; commas inside
    /// quotes or `<>` do not split.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers(name)
            .flat_map(|v| lex::split_list(v).map(move |r| &v[r]))
    }

    pub(crate) fn kind_values(&self, kind: HeaderKind) -> impl Iterator<Item = &[u8]> + '_ {
        self.by_kind(kind).flat_map(move |h| {
            let v = self.slice(h.value);
            lex::split_list(v).map(move |r| &v[r])
        })
    }

    fn first(&self, kind: HeaderKind) -> Option<&[u8]> {
        self.by_kind(kind).next().map(|h| self.slice(h.value))
    }

    pub fn call_id(&self) -> Option<&[u8]> {
        self.first(HeaderKind::CallId)
    }

    pub(crate) fn call_id_str(&self) -> Option<Cow<'_, str>> {
        self.call_id().map(String::from_utf8_lossy)
    }

    /// CSeq number and method; `None` if absent or not `1*DIGIT LWS token`
    /// with the number below 2^32.
    pub fn cseq(&self) -> Option<(u32, &str)> {
        parse_cseq(self.first(HeaderKind::CSeq)?)
    }

    pub(crate) fn cseq_method(&self) -> Option<&str> {
        self.cseq().map(|c| c.1)
    }

    pub fn from(&self) -> Option<NameAddr<'_>> {
        NameAddr::parse(self.first(HeaderKind::From)?).ok()
    }

    pub fn to(&self) -> Option<NameAddr<'_>> {
        NameAddr::parse(self.first(HeaderKind::To)?).ok()
    }

    pub fn from_tag(&self) -> Option<&[u8]> {
        self.from()?.tag()
    }

    pub fn to_tag(&self) -> Option<&[u8]> {
        self.to()?.tag()
    }

    /// A non-empty To tag: the request is inside a dialog.
    pub fn has_totag(&self) -> bool {
        self.to_tag().is_some_and(|t| !t.is_empty())
    }

    pub fn from_uri(&self) -> Option<&[u8]> {
        self.from().map(|n| n.uri)
    }

    pub fn to_uri(&self) -> Option<&[u8]> {
        self.to().map(|n| n.uri)
    }

    /// The declared Content-Length when it frames the body.
    pub fn content_length(&self) -> Option<usize> {
        match self.framing {
            BodyFraming::Declared(n) => Some(n),
            _ => None,
        }
    }

    pub(crate) fn body_framing(&self) -> BodyFraming {
        self.framing
    }

    pub fn body(&self) -> &[u8] {
        self.slice(self.body)
    }

    pub(crate) fn user_agent(&self) -> Option<&[u8]> {
        self.first(HeaderKind::UserAgent)
    }

    pub fn server(&self) -> Option<&[u8]> {
        self.first(HeaderKind::Server)
    }

    pub(crate) fn max_forwards(&self) -> MaxForwards {
        match self.first(HeaderKind::MaxForwards) {
            None => MaxForwards::Absent,
            Some(v) => lex::parse_u64(v)
                .and_then(|n| u8::try_from(n).ok())
                .map_or(MaxForwards::Invalid, MaxForwards::Value),
        }
    }

    /// Every Via value in order (topmost first), as text.
    pub(crate) fn via_values(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.kind_values(HeaderKind::Via)
    }

    pub(crate) fn top_via_value(&self) -> Option<&[u8]> {
        self.via_values().next()
    }

    /// The topmost Via decoded; `None` when the message has no Via.
    pub(crate) fn top_via(&self) -> Option<Result<Via<'_>, ViaError>> {
        self.top_via_value().map(Via::parse_bytes)
    }

    /// Route values in order (first is where a loose router sends next).
    pub(crate) fn route_values(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.kind_values(HeaderKind::Route)
    }

    pub fn record_route_values(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.kind_values(HeaderKind::RecordRoute)
    }

    pub(crate) fn contact_values(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.kind_values(HeaderKind::Contact)
    }
}

/// Lossy UTF-8 with every fold (CR? LF followed by WSP) replaced by one SP.
pub fn unfold_lossy(v: &[u8]) -> Cow<'_, str> {
    if !v.contains(&b'\n') {
        return String::from_utf8_lossy(v);
    }
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        match v[i] {
            b'\r' | b'\n' => {
                while i < v.len() && lex::is_lws(v[i]) {
                    i += 1;
                }
                out.push(b' ');
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.example.com>\r\n\
User-Agent: softphone/1.0\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\
\r\n\
v=0\n";

    fn parse(s: &str) -> SipMsg {
        SipMsg::parse(s.as_bytes()).unwrap_or_else(|e| panic!("{e}: {s:?}"))
    }

    #[test]
    fn accessors_of_a_plain_invite() {
        let m = parse(INVITE);
        assert!(m.is_request());
        assert_eq!(m.method(), Some("INVITE"));
        assert_eq!(m.request_uri(), Some("sip:bob@biloxi.example.com"));
        assert_eq!(m.version(), b"SIP/2.0");
        assert_eq!(m.status(), None);
        assert_eq!(
            m.call_id(),
            Some(&b"a84b4c76e66710@pc33.atlanta.example.com"[..])
        );
        assert_eq!(m.cseq(), Some((314159, "INVITE")));
        assert_eq!(m.from_tag(), Some(&b"1928301774"[..]));
        assert_eq!(m.to_tag(), None);
        assert!(!m.has_totag());
        assert_eq!(m.from_uri(), Some(&b"sip:alice@atlanta.example.com"[..]));
        assert_eq!(m.to_uri(), Some(&b"sip:bob@biloxi.example.com"[..]));
        assert_eq!(m.content_length(), Some(4));
        assert_eq!(m.body(), b"v=0\n");
        assert_eq!(m.user_agent(), Some(&b"softphone/1.0"[..]));
        assert_eq!(m.max_forwards(), MaxForwards::Value(70));
        assert_eq!(m.as_bytes(), INVITE.as_bytes());
        let owned = SipMsg::parse_owned(format!("\r\n{INVITE}").into_bytes()).expect("parses");
        assert_eq!(owned.as_bytes(), INVITE.as_bytes());
        assert_eq!(m.method_or_cseq(), Some("INVITE"));
    }

    /// (message, header name asked, expected first value or None)
    #[test]
    fn header_lookup_table() {
        let msg = "OPTIONS sip:a@b SIP/2.0\r\n\
v: SIP/2.0/UDP h1\r\n\
VIA: SIP/2.0/UDP h2, SIP/2.0/UDP h3\r\n\
i: cid\r\n\
f: <sip:x@y>;tag=1\r\n\
t: <sip:a@b>\r\n\
l: 0\r\n\
m: <sip:c@d>\r\n\
s: subj\r\n\
k: 100rel\r\n\
c: text/plain\r\n\
e: gzip\r\n\
o: presence\r\n\
r: <sip:r@t>\r\n\
u: dialog\r\n\
x: 1800\r\n\
b: <sip:b@y>\r\n\
X-Custom: one\r\n\
x-custom: two\r\n\
Folded: first\r\n  second\r\n\tthird\r\n\
Empty:\r\n\
\r\n";
        let m = parse(msg);
        let cases: &[(&str, Option<&str>)] = &[
            ("Via", Some("SIP/2.0/UDP h1")),
            ("v", Some("SIP/2.0/UDP h1")),
            ("call-id", Some("cid")),
            ("From", Some("<sip:x@y>;tag=1")),
            ("TO", Some("<sip:a@b>")),
            ("Content-Length", Some("0")),
            ("Contact", Some("<sip:c@d>")),
            ("Subject", Some("subj")),
            ("Supported", Some("100rel")),
            ("Content-Type", Some("text/plain")),
            ("Content-Encoding", Some("gzip")),
            ("Event", Some("presence")),
            ("Refer-To", Some("<sip:r@t>")),
            ("Allow-Events", Some("dialog")),
            ("Session-Expires", Some("1800")),
            ("Referred-By", Some("<sip:b@y>")),
            ("x-CUSTOM", Some("one")),
            ("Folded", Some("first\r\n  second\r\n\tthird")),
            ("Empty", Some("")),
            ("Missing", None),
        ];
        for (name, want) in cases {
            assert_eq!(m.header(name), want.map(str::as_bytes), "header {name}");
        }
        assert_eq!(
            m.header_str("Folded").as_deref(),
            Some("first second third")
        );
        assert_eq!(
            m.headers("X-Custom").collect::<Vec<_>>(),
            vec![&b"one"[..], b"two"]
        );
        let vias: Vec<&[u8]> = m.via_values().collect();
        assert_eq!(
            vias,
            vec![&b"SIP/2.0/UDP h1"[..], b"SIP/2.0/UDP h2", b"SIP/2.0/UDP h3"]
        );
        assert_eq!(m.header_lines().count(), 20);
    }

    #[test]
    fn status_lines() {
        // (start line, code, reason)
        let cases: &[(&str, u16, &str)] = &[
            ("SIP/2.0 200 OK", 200, "OK"),
            ("SIP/2.0 100 ", 100, ""),
            ("SIP/2.0 100", 100, ""),
            ("SIP/2.0 486 Busy Here", 486, "Busy Here"),
        ];
        for (line, code, reason) in cases {
            let m = parse(&format!("{line}\r\nCall-ID: x\r\n\r\n"));
            assert!(!m.is_request());
            assert_eq!(m.status(), Some(*code), "{line}");
            assert_eq!(m.reason(), Some(reason.as_bytes()), "{line}");
        }
    }

    #[test]
    fn rejects_what_cannot_be_sip() {
        let cases: &[(&str, ParseError)] = &[
            ("", ParseError::Empty),
            ("\r\n\r\n", ParseError::Empty),
            ("GET / HTTP/1.1\r\n\r\n", ParseError::BadStartLine),
            ("INVITE\r\n\r\n", ParseError::BadStartLine),
            ("INVITE sip:a@b\r\n\r\n", ParseError::BadStartLine),
            (
                "IN VITE sip:a@b SIP/2.0 x\r\n\r\n",
                ParseError::BadStartLine,
            ),
            ("SIP/2.0 2000 OK\r\n\r\n", ParseError::BadStatusCode),
            ("SIP/2.0 20 OK\r\n\r\n", ParseError::BadStatusCode),
            ("SIP/2.0 OK\r\n\r\n", ParseError::BadStatusCode),
            (
                "OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n",
                ParseError::NoEndOfHeaders,
            ),
            ("OPTIONS sip:a@b SIP/2.0", ParseError::NoEndOfHeaders),
            (
                "OPTIONS sip:a@b SIP/2.0\r\nNoColon\r\n\r\n",
                ParseError::MissingColon { line: 2 },
            ),
            (
                "OPTIONS sip:a@b SIP/2.0\r\nA: b\r\nBad Name: x\r\n\r\n",
                ParseError::BadHeaderName { line: 3 },
            ),
            (
                "OPTIONS sip:a@b SIP/2.0\r\n folded: x\r\n\r\n",
                ParseError::BadHeaderName { line: 2 },
            ),
            (
                "OPTIONS sip:a@b SIP/2.0\r\n: x\r\n\r\n",
                ParseError::BadHeaderName { line: 2 },
            ),
            (
                "OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 10\r\n\r\nabc",
                ParseError::Truncated {
                    declared: 10,
                    present: 3,
                },
            ),
        ];
        for (input, want) in cases {
            assert_eq!(
                SipMsg::parse(input.as_bytes()).err(),
                Some(*want),
                "input {input:?}"
            );
        }
    }

    #[test]
    fn body_framing_table() {
        // (headers, bytes after the empty line, framing, body, discarded)
        let cases: &[(&str, &str, BodyFraming, &str, usize)] = &[
            ("", "rest", BodyFraming::Absent, "rest", 0),
            (
                "Content-Length: 2\r\n",
                "abcd",
                BodyFraming::Declared(2),
                "ab",
                2,
            ),
            ("l:0\r\n", "", BodyFraming::Declared(0), "", 0),
            (
                "Content-Length: -1\r\n",
                "ab",
                BodyFraming::Invalid,
                "ab",
                0,
            ),
            (
                "Content-Length: five\r\n",
                "ab",
                BodyFraming::Invalid,
                "ab",
                0,
            ),
            (
                "Content-Length: 1\r\nl: 2\r\n",
                "ab",
                BodyFraming::Conflicting,
                "ab",
                0,
            ),
            (
                "Content-Length: 2\r\nl: 2\r\n",
                "abc",
                BodyFraming::Declared(2),
                "ab",
                1,
            ),
        ];
        for (hdrs, rest, framing, body, discarded) in cases {
            let m = parse(&format!("OPTIONS sip:a@b SIP/2.0\r\n{hdrs}\r\n{rest}"));
            assert_eq!(m.body_framing(), *framing, "{hdrs:?}");
            assert_eq!(m.body(), body.as_bytes(), "{hdrs:?}");
            assert_eq!(m.discarded_trailing(), *discarded, "{hdrs:?}");
        }
        let t =
            SipMsg::parse_to_answer(b"OPTIONS sip:a@b SIP/2.0\r\nl: 9\r\n\r\nab").expect("kept");
        assert_eq!(t.body_framing(), BodyFraming::Truncated { declared: 9 });
        assert_eq!(t.body(), b"ab");
    }

    #[test]
    fn bare_lf_and_leading_crlf_are_accepted() {
        let m = parse("\r\n\r\nOPTIONS sip:a@b SIP/2.0\nCall-ID: x\nFolded: a\n b\nl: 1\n\nZ");
        assert_eq!(m.call_id(), Some(&b"x"[..]));
        assert_eq!(m.header_str("folded").as_deref(), Some("a b"));
        assert_eq!(m.body(), b"Z");
        assert!(m.as_bytes().starts_with(b"OPTIONS"));
    }

    #[test]
    fn sloppy_start_lines_parse_with_an_issue() {
        let cases: &[(&str, Option<StartLineIssue>, &str)] = &[
            ("INVITE sip:a@b SIP/2.0", None, "sip:a@b"),
            (
                "INVITE  sip:a@b  SIP/2.0",
                Some(StartLineIssue::ExtraWhitespace),
                "sip:a@b",
            ),
            (
                "OPTIONS sip:a@b SIP/2.0  ",
                Some(StartLineIssue::ExtraWhitespace),
                "sip:a@b",
            ),
            (
                "INVITE sip:a@b; lr SIP/2.0",
                Some(StartLineIssue::UriWhitespace),
                "sip:a@b; lr",
            ),
        ];
        for (line, issue, uri) in cases {
            let m = parse(&format!("{line}\r\n\r\n"));
            assert_eq!(m.start_line_issue(), *issue, "{line}");
            assert_eq!(m.request_uri(), Some(*uri), "{line}");
        }
    }

    #[test]
    fn cseq_forms() {
        let cases: &[(&str, Option<(u32, &str)>)] = &[
            ("1 INVITE", Some((1, "INVITE"))),
            ("0009\r\n  INVITE", Some((9, "INVITE"))),
            ("4294967295 ACK", Some((u32::MAX, "ACK"))),
            ("4294967296 ACK", None),
            ("1INVITE", None),
            ("INVITE", None),
            ("1 INVITE x", None),
        ];
        for (v, want) in cases {
            assert_eq!(parse_cseq(v.as_bytes()), *want, "{v:?}");
        }
    }

    #[test]
    fn max_forwards_values() {
        let cases: &[(&str, MaxForwards)] = &[
            ("", MaxForwards::Absent),
            ("Max-Forwards: 0068\r\n", MaxForwards::Value(68)),
            ("Max-Forwards: 0\r\n", MaxForwards::Value(0)),
            ("Max-Forwards: 300\r\n", MaxForwards::Invalid),
            ("Max-Forwards: x\r\n", MaxForwards::Invalid),
        ];
        for (h, want) in cases {
            let m = parse(&format!("OPTIONS sip:a@b SIP/2.0\r\n{h}\r\n"));
            assert_eq!(m.max_forwards(), *want, "{h:?}");
        }
    }

    #[test]
    fn non_utf8_anywhere_parses() {
        let mut raw = b"MESSAGE sip:a@b SIP/2.0\r\nSubject: \xff\xfe\r\nX\xc3: y\r\n".to_vec();
        raw.extend_from_slice(b"Call-ID: \x80abc\r\nl: 2\r\n\r\n\x00\xff");
        // A header name with a non-token byte is the one thing refused.
        assert_eq!(
            SipMsg::parse(&raw).err(),
            Some(ParseError::BadHeaderName { line: 3 })
        );
        let raw: Vec<u8> = raw
            .split(|&b| b == b'\n')
            .filter(|l| !l.starts_with(b"X"))
            .collect::<Vec<_>>()
            .join(&b'\n');
        let m = SipMsg::parse(&raw).expect("parses");
        assert_eq!(m.header("Subject"), Some(&b"\xff\xfe"[..]));
        assert_eq!(m.call_id_str().as_deref(), Some("\u{fffd}abc"));
        assert_eq!(m.body(), b"\x00\xff");
    }

    #[test]
    fn compact_names_resolve() {
        for (name, kind) in [
            ("i", HeaderKind::CallId),
            ("F", HeaderKind::From),
            ("v", HeaderKind::Via),
            ("L", HeaderKind::ContentLength),
            ("q", HeaderKind::Other),
            ("call-id", HeaderKind::CallId),
            ("RECORD-ROUTE", HeaderKind::RecordRoute),
            ("Route", HeaderKind::Route),
            ("Routes", HeaderKind::Other),
        ] {
            assert_eq!(HeaderKind::of(name.as_bytes()), kind, "{name}");
        }
    }
}
