//! JSON-RPC 2.0 over a FIFO, as Kamailio 5.6's `jsonrpcs` module speaks it
//! (docs/kamailio.md §6.3, the vectors in tests/data/jsonrpc-vectors), with the
//! improvements of docs/decisions.md §4.
//!
//! Two parts:
//! - [`JsonFramer`] cuts the FIFO byte stream into documents the way jsonrpcs does:
//!   `{`/`}` depth counted outside strings, where both `"` and `'` open and close a
//!   string unless the byte before is `\`; a document ends when the depth returns to 0.
//!   Unlike Kamailio, bytes before a document's `{` are skipped (reported when they are
//!   not blank), and an unfinished document is dropped after 8191 bytes or after 500 ms
//!   without new bytes, whichever comes first; reading then resumes at the next `{`.
//!   Time is passed in; the framer never reads a clock.
//! - [`process`] runs one document: the checks in Kamailio's order, the call through a
//!   [`Dispatch`], and the reply bytes (keys `jsonrpc`, `result`|`error`, `id`; TAB
//!   pretty print, no trailing newline). Where Kamailio stays silent on a malformed
//!   request although a reply FIFO name can be found, we answer `-32700 Parse Error`
//!   (invalid JSON; name and id recovered by a lenient scan of the text) or
//!   `-32600 Invalid Request` (wrong or missing `jsonrpc`, missing `method`, `params`
//!   neither array nor object).
//!
//! Pure data code: no I/O, no clock reads, no logging (log-worthy conditions come back
//! as [`Notice`]s); never panics on input. It knows nothing of the commands.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use super::json::{self, Json};

/// jsonrpcs reads into an 8192-byte buffer and gives up once 8191 bytes are read
/// without the document closing.
pub(crate) const MAX_DOC: usize = 8191;
/// An unfinished document is dropped after this much silence (docs/decisions.md §4).
pub(crate) const SILENCE: Duration = Duration::from_millis(500);
/// jsonrpcs copies `reply_name` into a 128-byte buffer and refuses (without running the
/// method) a name that does not fit with its NUL.
pub(crate) const REPLY_NAME_BUF: usize = 128;

/// Output of the framer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A complete document, from its `{` to the matching `}`.
    Document(Vec<u8>),
    /// Bytes thrown away; log it.
    Dropped(DropReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// 8191 bytes without the document closing ("input data too large").
    TooLarge,
    /// The document stayed unfinished for [`SILENCE`]; `bytes` of it were dropped.
    Silence { bytes: usize },
    /// Non-blank bytes outside any document.
    Garbage { bytes: usize },
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DropReason::TooLarge => write!(
                f,
                "JSON-RPC input data too large (>= {MAX_DOC} bytes without closing '}}'), dropped"
            ),
            DropReason::Silence { bytes } => write!(
                f,
                "unfinished JSON-RPC document ({bytes} bytes) dropped after {} ms of silence",
                SILENCE.as_millis()
            ),
            DropReason::Garbage { bytes } => {
                write!(f, "{bytes} bytes outside any JSON-RPC document skipped")
            }
        }
    }
}

/// Splits the JSON-RPC FIFO byte stream into documents.
#[derive(Debug, Default)]
pub struct JsonFramer {
    /// The document being read; empty when between documents.
    doc: Vec<u8>,
    depth: i64,
    /// The quote byte of the string we are in, if any.
    quote: Option<u8>,
    /// Non-blank bytes skipped since the last document.
    garbage: usize,
    /// When the last bytes arrived.
    last_rx: Option<Instant>,
    frames: VecDeque<Frame>,
}

impl JsonFramer {
    pub fn new() -> JsonFramer {
        JsonFramer::default()
    }

    /// Feed bytes read from the FIFO at `now`.
    pub fn push(&mut self, bytes: &[u8], now: Instant) {
        self.handle_timeout(now);
        for &b in bytes {
            self.byte(b);
        }
        if !bytes.is_empty() {
            self.last_rx = Some(now);
        }
    }

    /// The next frame, in stream order.
    pub(crate) fn next_frame(&mut self) -> Option<Frame> {
        self.frames.pop_front()
    }

    /// When [`JsonFramer::handle_timeout`] should be called: the instant an unfinished
    /// document expires, if there is one.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        if self.doc.is_empty() {
            return None;
        }
        self.last_rx.map(|t| t + SILENCE)
    }

    /// Drop an unfinished document whose silence has lasted [`SILENCE`] at `now`.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        let expired = matches!(self.poll_timeout(), Some(deadline) if now >= deadline);
        if expired {
            let bytes = self.doc.len();
            self.reset();
            self.frames
                .push_back(Frame::Dropped(DropReason::Silence { bytes }));
        }
    }

    fn reset(&mut self) {
        self.doc.clear();
        self.depth = 0;
        self.quote = None;
    }

    fn byte(&mut self, b: u8) {
        if self.doc.is_empty() {
            if b == b'{' {
                if self.garbage > 0 {
                    let bytes = std::mem::take(&mut self.garbage);
                    self.frames
                        .push_back(Frame::Dropped(DropReason::Garbage { bytes }));
                }
                self.doc.push(b);
                self.depth = 1;
            } else if !matches!(b, b' ' | b'\t' | b'\r' | b'\n') {
                self.garbage += 1;
            }
            return;
        }
        let escaped = self.doc.last() == Some(&b'\\');
        self.doc.push(b);
        match (b, self.quote) {
            (b'"' | b'\'', None) if !escaped => self.quote = Some(b),
            (q, Some(open)) if q == open && !escaped => self.quote = None,
            (b'{', None) => self.depth += 1,
            (b'}', None) => self.depth -= 1,
            _ => {}
        }
        if self.doc.len() >= MAX_DOC {
            self.reset();
            self.frames.push_back(Frame::Dropped(DropReason::TooLarge));
        } else if self.depth == 0 {
            let doc = std::mem::take(&mut self.doc);
            self.reset();
            self.frames.push_back(Frame::Document(doc));
        }
    }
}

/// What a method returns: a result value or a fault.
#[derive(Debug, Clone, PartialEq)]
pub enum RpcResult {
    Ok(Json),
    Fault { code: i32, message: String },
}

impl RpcResult {
    pub fn fault(code: i32, message: &str) -> RpcResult {
        RpcResult::Fault {
            code,
            message: message.to_string(),
        }
    }
}

/// The request's parameters as Kamailio's `rpc->scan` walks them: array elements, or
/// an object's member values in order (names ignored).
#[derive(Debug, Clone, Default)]
pub struct Params<'a> {
    items: Vec<&'a Json>,
}

impl<'a> Params<'a> {
    pub fn get(&self, i: usize) -> Option<&'a Json> {
        self.items.get(i).copied()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Parameters up to (not including) the first that is not a string, as repeated
    /// `scan("*s")` calls yield them.
    pub(crate) fn leading_strings(&self) -> Vec<&'a [u8]> {
        self.items.iter().map_while(|j| j.as_bytes()).collect()
    }
}

/// The method table as [`process`] needs it.
pub trait Dispatch {
    /// Whether `method` exists (checked before `params`, as Kamailio does).
    fn exists(&self, method: &[u8]) -> bool;
    /// Run `method`.
    fn call(&mut self, method: &[u8], params: &Params<'_>) -> RpcResult;
}

/// A condition worth a log line. Never sent to the client.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// The document is not JSON.
    InvalidJson(json::ParseError),
    /// The document is JSON but not an object.
    NotAnObject,
    /// `jsonrpc` missing, not a string, or not exactly "2.0".
    BadVersion,
    /// No string `reply_name`: nowhere to answer.
    MissingReplyName,
    /// `reply_name` of 128 bytes or more: refused before running the method.
    ReplyNameTooLong { len: usize },
    /// No string `method`.
    MissingMethod,
    /// No such method (answered with code 500).
    MethodNotFound(Vec<u8>),
    /// `params` is neither an array nor an object.
    BadParams,
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notice::InvalidJson(e) => write!(f, "JSON-RPC request: {e}"),
            Notice::NotAnObject => f.write_str("JSON-RPC request is not a JSON object"),
            Notice::BadVersion => {
                f.write_str("JSON-RPC request: \"jsonrpc\" missing or not \"2.0\"")
            }
            Notice::MissingReplyName => {
                f.write_str("JSON-RPC request without a string \"reply_name\": no reply possible")
            }
            Notice::ReplyNameTooLong { len } => write!(
                f,
                "JSON-RPC reply_name of {len} bytes (at most {} allowed): not run",
                REPLY_NAME_BUF - 1
            ),
            Notice::MissingMethod => f.write_str("JSON-RPC request without a string \"method\""),
            Notice::MethodNotFound(m) => write!(
                f,
                "JSON-RPC method not found [{}]",
                String::from_utf8_lossy(m)
            ),
            Notice::BadParams => {
                f.write_str("JSON-RPC \"params\" is neither an array nor an object")
            }
        }
    }
}

/// What the reactor must do with one document.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonRpcOutcome {
    /// The reply FIFO name (to check and join with `fifo_reply_dir` via
    /// `text::reply_path`, which refuses an empty or forbidden name).
    pub reply_name: Option<Vec<u8>>,
    /// The reply bytes to write there (no trailing newline), then close.
    pub reply: Option<Vec<u8>>,
    pub notice: Option<Notice>,
}

impl JsonRpcOutcome {
    fn silent(notice: Notice) -> JsonRpcOutcome {
        JsonRpcOutcome {
            reply_name: None,
            reply: None,
            notice: Some(notice),
        }
    }
}

const PARSE_ERROR: i32 = -32700;
const INVALID_REQUEST: i32 = -32600;
/// jsonrpcs answers an unknown method with this code, not JSON-RPC's -32601 (vector 20).
const METHOD_NOT_FOUND_CODE: i32 = 500;

/// The messages jsonrpcs substitutes for these codes.
fn table_message(code: i32) -> Option<&'static str> {
    Some(match code {
        -32700 => "Parse Error",
        -32600 => "Invalid Request",
        -32601 => "Method Not Found",
        -32602 => "Invalid Parameters",
        -32603 => "Internal Error",
        -32000 => "Execution Error",
        _ => return None,
    })
}

/// Run one document. `pretty` is the `pretty_format` modparam (default on).
pub fn process(doc: &[u8], pretty: bool, dispatch: &mut dyn Dispatch) -> JsonRpcOutcome {
    let doc = trim(doc);
    let root = match json::parse(doc) {
        Ok(v) => v,
        Err(e) => return recovered(doc, PARSE_ERROR, Notice::InvalidJson(e), pretty),
    };
    if !matches!(root, Json::Obj(_)) {
        return recovered(doc, INVALID_REQUEST, Notice::NotAnObject, pretty);
    }
    let id = root.get("id");
    let reply_name = root.get("reply_name").and_then(Json::as_bytes);
    let answer = |result: RpcResult, notice: Option<Notice>| JsonRpcOutcome {
        reply_name: reply_name.map(<[u8]>::to_vec),
        reply: reply_name.map(|_| build_reply(&result, id, pretty)),
        notice,
    };
    let invalid = |notice: Notice| {
        let mut out = answer(
            RpcResult::fault(INVALID_REQUEST, "Invalid Request"),
            Some(notice),
        );
        if reply_name.is_some_and(|n| n.len() >= REPLY_NAME_BUF) {
            out.reply_name = None;
            out.reply = None;
        }
        out
    };

    if root.get("jsonrpc").and_then(Json::as_bytes) != Some(b"2.0".as_slice()) {
        return invalid(Notice::BadVersion);
    }
    let Some(name) = reply_name else {
        return JsonRpcOutcome::silent(Notice::MissingReplyName);
    };
    if name.len() >= REPLY_NAME_BUF {
        return JsonRpcOutcome::silent(Notice::ReplyNameTooLong { len: name.len() });
    }
    let Some(method) = root.get("method").and_then(Json::as_bytes) else {
        return invalid(Notice::MissingMethod);
    };
    if !dispatch.exists(method) {
        return answer(
            RpcResult::fault(METHOD_NOT_FOUND_CODE, "Method Not Found"),
            Some(Notice::MethodNotFound(method.to_vec())),
        );
    }
    let params = match root.get("params") {
        None => Params::default(),
        Some(p @ (Json::Arr(_) | Json::Obj(_))) => Params {
            items: p.children(),
        },
        Some(_) => return invalid(Notice::BadParams),
    };
    let result = dispatch.call(method, &params);
    answer(result, None)
}

/// Kamailio `trim()` before parsing: space, TAB, CR, LF at both ends.
fn trim(doc: &[u8]) -> &[u8] {
    let ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    let start = doc.iter().position(|b| !ws(b)).unwrap_or(doc.len());
    let end = doc.iter().rposition(|b| !ws(b)).map_or(start, |i| i + 1);
    &doc[start..end]
}

/// An error reply for a document we could not read as a request: the reply name (and
/// id) come from a lenient scan of the text.
fn recovered(doc: &[u8], code: i32, notice: Notice, pretty: bool) -> JsonRpcOutcome {
    let name = scan_member(doc, "reply_name")
        .and_then(|v| v.as_bytes().map(<[u8]>::to_vec))
        .filter(|n| n.len() < REPLY_NAME_BUF);
    let id = scan_member(doc, "id");
    let message = table_message(code).unwrap_or("Invalid Request");
    JsonRpcOutcome {
        reply: name
            .as_ref()
            .map(|_| build_reply(&RpcResult::fault(code, message), id.as_ref(), pretty)),
        reply_name: name,
        notice: Some(notice),
    }
}

/// Find `"key"` (ASCII case-insensitive) followed by `:` and a value that parses on its
/// own, anywhere in broken JSON text.
fn scan_member(doc: &[u8], key: &str) -> Option<Json> {
    let pattern = format!("\"{key}\"");
    let pattern = pattern.as_bytes();
    let mut from = 0;
    while from + pattern.len() <= doc.len() {
        let Some(at) = doc[from..]
            .windows(pattern.len())
            .position(|w| w.eq_ignore_ascii_case(pattern))
        else {
            break;
        };
        let mut p = from + at + pattern.len();
        from = from + at + 1;
        while doc.get(p).is_some_and(|b| (1..=32).contains(b)) {
            p += 1;
        }
        if doc.get(p) != Some(&b':') {
            continue;
        }
        let value = value_prefix(&doc[p + 1..]);
        if let Ok(v @ (Json::Str(_) | Json::Int(_) | Json::Float(_))) = json::parse(value) {
            return Some(v);
        }
    }
    None
}

/// The text of a scalar value at the start of `s` (a string up to its closing quote, or
/// up to the next `,` `}` `]`), so that trailing garbage cannot make it parse.
fn value_prefix(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !(1..=32).contains(b))
        .unwrap_or(s.len());
    let rest = &s[start..];
    if rest.first() == Some(&b'"') {
        let mut i = 1;
        while i < rest.len() {
            match rest[i] {
                b'\\' => i += 2,
                b'"' => return &rest[..=i],
                _ => i += 1,
            }
        }
        // Unterminated: not a value we can trust.
        return &rest[..0];
    }
    let end = rest
        .iter()
        .position(|b| matches!(b, b',' | b'}' | b']'))
        .unwrap_or(rest.len());
    &rest[..end]
}

/// The reply document: `jsonrpc`, `result` or `error`, then `id` when the request had
/// one (a string copied, anything else as srjson's number for it).
pub fn build_reply(result: &RpcResult, id: Option<&Json>, pretty: bool) -> Vec<u8> {
    let mut members: Vec<(&str, Json)> = vec![("jsonrpc", Json::str("2.0"))];
    match result {
        RpcResult::Ok(v) => members.push(("result", v.clone())),
        RpcResult::Fault { code, message } => {
            // A fault code of 0 means "unspecified": Kamailio reports -32000.
            let code = if *code == 0 { -32000 } else { *code };
            let message = table_message(code).unwrap_or(message);
            members.push((
                "error",
                Json::obj(vec![
                    ("code", Json::Int(i64::from(code))),
                    ("message", Json::str(message)),
                ]),
            ));
        }
    }
    if let Some(id) = id {
        let id = match id {
            Json::Str(s) => Json::Str(s.clone()),
            other => Json::Float(other.as_f64()),
        };
        members.push(("id", id));
    }
    let doc = Json::obj(members);
    if pretty {
        doc.to_pretty()
    } else {
        doc.to_compact()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(chunks: &[&[u8]]) -> Vec<Frame> {
        let t0 = Instant::now();
        let mut f = JsonFramer::new();
        let mut out = Vec::new();
        for c in chunks {
            f.push(c, t0);
            while let Some(fr) = f.next_frame() {
                out.push(fr);
            }
        }
        out
    }

    fn doc(s: &str) -> Frame {
        Frame::Document(s.as_bytes().to_vec())
    }

    #[test]
    fn framing_cases() {
        let big = format!("{{\"a\":\"{}\"}}", "x".repeat(MAX_DOC));
        let just_fits = format!("{{\"a\":\"{}\"}}", "x".repeat(MAX_DOC - 9));
        let too_big = format!("{{\"a\":\"{}\"}}", "x".repeat(MAX_DOC - 8));
        let cases: Vec<(Vec<&[u8]>, Vec<Frame>)> = vec![
            (vec![b"{\"a\":1}\n"], vec![doc("{\"a\":1}")]),
            (
                vec![b"\n {\"a\":1}\n{\"b\":{\"c\":2}}"],
                vec![doc("{\"a\":1}"), doc("{\"b\":{\"c\":2}}")],
            ),
            (
                vec![b"{\"a\":", b"\"}{\"", b"}"],
                vec![doc("{\"a\":\"}{\"}")],
            ),
            (vec![b"{'a}':1}"], vec![doc("{'a}':1}")]),
            (vec![b"{\"it's\":1}"], vec![doc("{\"it's\":1}")]),
            (vec![b"{\"a\\\"}\":1}"], vec![doc("{\"a\\\"}\":1}")]),
            // Only the previous byte is looked at: `\\"` still reads as escaped.
            (vec![b"{\"a\\\\\"}", b"\"}"], vec![doc("{\"a\\\\\"}\"}")]),
            (
                vec![b"xy {\"a\":1}"],
                vec![
                    Frame::Dropped(DropReason::Garbage { bytes: 2 }),
                    doc("{\"a\":1}"),
                ],
            ),
            (vec![b"{\"a\":1"], vec![]),
            (
                vec![big.as_bytes(), b"{\"b\":2}"],
                vec![
                    Frame::Dropped(DropReason::TooLarge),
                    Frame::Dropped(DropReason::Garbage { bytes: 8 }),
                    doc("{\"b\":2}"),
                ],
            ),
            (vec![just_fits.as_bytes()], vec![doc(&just_fits)]),
            (
                vec![too_big.as_bytes()],
                vec![Frame::Dropped(DropReason::TooLarge)],
            ),
        ];
        for (chunks, expected) in cases {
            assert_eq!(frames(&chunks), expected, "{chunks:?}");
            // Byte by byte: same frames.
            let all: Vec<u8> = chunks.concat();
            let singles: Vec<&[u8]> = all.chunks(1).collect();
            assert_eq!(frames(&singles), expected, "byte by byte {chunks:?}");
        }
    }

    #[test]
    fn silence_drops_unfinished_document() {
        let t0 = Instant::now();
        let mut f = JsonFramer::new();
        assert_eq!(f.poll_timeout(), None);
        f.push(b"{\"a\":", t0);
        assert_eq!(f.poll_timeout(), Some(t0 + SILENCE));
        f.push(b"1", t0 + Duration::from_millis(400));
        assert_eq!(f.poll_timeout(), Some(t0 + Duration::from_millis(900)));
        f.handle_timeout(t0 + Duration::from_millis(899));
        assert_eq!(f.next_frame(), None);
        f.handle_timeout(t0 + Duration::from_millis(900));
        assert_eq!(
            f.next_frame(),
            Some(Frame::Dropped(DropReason::Silence { bytes: 6 }))
        );
        assert_eq!(f.poll_timeout(), None);
        // Reading resumes at the next '{'.
        f.push(b"}\"x\"{\"b\":2}", t0 + Duration::from_millis(950));
        assert_eq!(
            f.next_frame(),
            Some(Frame::Dropped(DropReason::Garbage { bytes: 4 }))
        );
        assert_eq!(f.next_frame(), Some(doc("{\"b\":2}")));
        // A late push after a long silence drops the stale part first.
        f.push(b"{\"c\":", t0 + Duration::from_secs(2));
        f.push(b"3}", t0 + Duration::from_secs(3));
        assert_eq!(
            f.next_frame(),
            Some(Frame::Dropped(DropReason::Silence { bytes: 5 }))
        );
        // "3}" is garbage, reported when the next document starts.
        assert_eq!(f.next_frame(), None);
    }

    struct Echo;

    impl Dispatch for Echo {
        fn exists(&self, method: &[u8]) -> bool {
            method == b"echo"
        }
        fn call(&mut self, _method: &[u8], params: &Params<'_>) -> RpcResult {
            match params.get(0) {
                Some(v) => RpcResult::Ok(v.clone()),
                None => RpcResult::fault(0, "ignored"),
            }
        }
    }

    fn check(doc: &str, reply_name: Option<&str>, reply: Option<&str>, notice: Option<Notice>) {
        let out = process(doc.as_bytes(), true, &mut Echo);
        assert_eq!(
            out.reply_name.as_deref(),
            reply_name.map(str::as_bytes),
            "reply_name for {doc}"
        );
        assert_eq!(
            out.reply.map(|r| String::from_utf8_lossy(&r).into_owned()),
            reply.map(str::to_string),
            "reply for {doc}"
        );
        assert_eq!(out.notice, notice, "notice for {doc}");
    }

    #[test]
    fn process_cases() {
        let e = |code: i32, msg: &str, id: &str| {
            format!(
                "{{\n\t\"jsonrpc\":\t\"2.0\",\n\t\"error\":\t{{\n\t\t\"code\":\t{code},\n\t\t\"message\":\t\"{msg}\"\n\t}}{id}\n}}"
            )
        };
        let r =
            |v: &str, id: &str| format!("{{\n\t\"jsonrpc\":\t\"2.0\",\n\t\"result\":\t{v}{id}\n}}");
        let id7 = ",\n\t\"id\":\t7";
        let bad_json = json::parse(b"{\"a\":}").err().map(Notice::InvalidJson);
        type Case<'a> = (&'a str, Option<&'a str>, Option<String>, Option<Notice>);
        let cases: Vec<Case> = vec![
            (
                "{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"params\":[\"x\"],\"reply_name\":\"r\",\"id\":7}",
                Some("r"),
                Some(r("\"x\"", id7)),
                None,
            ),
            // Keys are matched case-insensitively, first match.
            (
                "{\"JSONRPC\":\"2.0\",\"Method\":\"echo\",\"PARAMS\":{\"k\":[1, 2]},\"Reply_Name\":\"r\",\"ID\":7,\"id\":8}",
                Some("r"),
                Some(r("[1, 2]", id7)),
                None,
            ),
            // Fault code 0 becomes -32000 with the table message.
            (
                "{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"reply_name\":\"r\",\"id\":7}",
                Some("r"),
                Some(e(-32000, "Execution Error", id7)),
                None,
            ),
            (
                "{\"jsonrpc\":\"2.0\",\"method\":\"nope\",\"params\":5,\"reply_name\":\"r\",\"id\":7}",
                Some("r"),
                Some(e(500, "Method Not Found", id7)),
                Some(Notice::MethodNotFound(b"nope".to_vec())),
            ),
            (
                "{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"params\":5,\"reply_name\":\"r\",\"id\":7}",
                Some("r"),
                Some(e(-32600, "Invalid Request", id7)),
                Some(Notice::BadParams),
            ),
            (
                "{\"jsonrpc\":\"2.0\",\"reply_name\":\"r\",\"id\":7}",
                Some("r"),
                Some(e(-32600, "Invalid Request", id7)),
                Some(Notice::MissingMethod),
            ),
            (
                "{\"jsonrpc\":2,\"method\":\"echo\",\"reply_name\":\"r\"}",
                Some("r"),
                Some(e(-32600, "Invalid Request", "")),
                Some(Notice::BadVersion),
            ),
            (
                "{\"method\":\"echo\",\"reply_name\":\"r\",\"id\":\"s\"}",
                Some("r"),
                Some(e(-32600, "Invalid Request", ",\n\t\"id\":\t\"s\"")),
                Some(Notice::BadVersion),
            ),
            (
                "{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"reply_name\":5}",
                None,
                None,
                Some(Notice::MissingReplyName),
            ),
            (
                "{\"jsonrpc\":\"1.0\",\"method\":\"echo\"}",
                None,
                None,
                Some(Notice::BadVersion),
            ),
            // Invalid JSON: name and id recovered leniently.
            (
                "{\"a\":}\"id\" : \"q\\\"x\", \"Reply_Name\": \"r\"",
                Some("r"),
                Some(e(-32700, "Parse Error", ",\n\t\"id\":\t\"q\\\"x\"")),
                bad_json.clone(),
            ),
            ("{\"a\":}", None, None, bad_json.clone()),
            (
                "[{\"reply_name\":\"r\",\"id\":3.5}]",
                Some("r"),
                Some(e(-32600, "Invalid Request", ",\n\t\"id\":\t3.500000")),
                Some(Notice::NotAnObject),
            ),
            // id of other types: srjson's number for them.
            (
                "{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"params\":[null],\"reply_name\":\"r\",\"id\":true}",
                Some("r"),
                Some(r("null", ",\n\t\"id\":\t1")),
                None,
            ),
        ];
        for (doc, name, reply, notice) in cases {
            check(doc, name, reply.as_deref(), notice);
        }
    }

    #[test]
    fn long_reply_name_is_refused_before_running() {
        let name = "n".repeat(REPLY_NAME_BUF);
        let doc = format!("{{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"reply_name\":\"{name}\"}}");
        check(
            &doc,
            None,
            None,
            Some(Notice::ReplyNameTooLong {
                len: REPLY_NAME_BUF,
            }),
        );
        let ok = "n".repeat(REPLY_NAME_BUF - 1);
        let doc = format!(
            "{{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"params\":[1],\"reply_name\":\"{ok}\"}}"
        );
        let out = process(doc.as_bytes(), true, &mut Echo);
        assert_eq!(out.reply_name, Some(ok.into_bytes()));
    }

    #[test]
    fn compact_reply() {
        let out = build_reply(
            &RpcResult::Ok(Json::str("Enabled")),
            Some(&Json::Int(1)),
            false,
        );
        assert_eq!(
            out,
            b"{\"jsonrpc\":\"2.0\",\"result\":\"Enabled\",\"id\":1}".to_vec()
        );
    }

    #[test]
    fn leading_strings_stop_at_first_non_string() {
        let v = json::parse(b"[\"a\", \"b\", 1, \"c\"]").unwrap_or(Json::Null);
        let p = Params {
            items: v.children(),
        };
        assert_eq!(p.leading_strings(), vec![b"a".as_slice(), b"b".as_slice()]);
        assert_eq!(p.len(), 4);
    }
}
