//! The old MI FIFO text protocol (Kamailio `mi_fifo`, identical in K1.5 and K3.0),
//! byte for byte: requests in, reply bytes out.
//!
//! Kamailio's FIFO server reads the FIFO through stdio `fgets` into fixed buffers, and
//! many of its visible behaviours are consequences of that: a 1024-byte first line, one
//! 8192-byte buffer shared by all argument lines, "end of arguments" meaning a line of
//! length exactly 1, a `line_len` variable that survives from one request to the next
//! and decides how far a "consume" reads. [`TextReader`] reproduces those semantics by
//! simulating the same calls on the same buffer sizes (docs/kamailio.md §1.3–§1.5).
//!
//! The FIFO is a byte stream shared by every writer: a request larger than PIPE_BUF
//! (4096 bytes) may arrive in several writes, and one read may hold the end of one
//! request and the start of the next. The reader is incremental: [`TextReader::push`]
//! appends whatever was read, [`TextReader::next`] returns events as soon as the bytes
//! that Kamailio's blocking `fgets` would have waited for are there, and `None` when it
//! needs more. How the bytes were split into reads never changes the result.
//!
//! The reactor follows Kamailio's order (docs/kamailio.md §1.3): on [`TextEvent::OpenReply`] it opens
//! `path` (O_WRONLY|O_NONBLOCK, 5 tries 80 ms apart, FIFO/link checks) and then calls
//! [`TextReader::reply_opened`]; nothing more is read until then, because whether the
//! reply opened decides how the rest of the request is consumed. Each
//! [`TextEvent::Request`] is then answered on that reply FIFO (see `commands::handle_text`),
//! which is closed afterwards.
//!
//! [`MiReply::encode`] is the reply writer (docs/kamailio.md §2.1), including its 8192-byte line buffer.
//!
//! Pure data code: no I/O, no clock, no logging; never panics on input. It knows nothing
//! of the command table: the caller passes a lookup.

use std::ffi::OsString;
use std::fmt;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

/// `MAX_MI_FIFO_BUFFER`: the first line is read with `fgets` into this many bytes
/// (1022 characters plus `\n` fit).
pub(crate) const FIRST_LINE_BUF: usize = 1024;
/// `MAX_MI_FIFO_READ`: the one buffer all argument lines of a request share.
pub(crate) const ARGS_BUF: usize = 8192;
/// `MAX_MI_FILENAME`: reply_dir + name + NUL must fit.
pub(crate) const MAX_REPLY_PATH: usize = 128;
/// The reply writer's buffer; one node line longer than this aborts the reply.
pub(crate) const WRITE_BUF: usize = 8192;

/// What the command table says about a command name (`MI_NO_INPUT_FLAG`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandKind {
    /// Not registered: answered `500 command '<cmd>' not available`.
    Unknown,
    /// Registered with `MI_NO_INPUT_FLAG`: argument lines are read and discarded.
    NoInput,
    /// Registered without it: argument lines are parsed into [`Arg`]s.
    WithInput,
}

/// One argument line: `value`, `name::value`, `name::` or a quoted value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arg {
    pub name: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
}

/// Why the argument lines could not be parsed (all answered `400 parse error ...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgsError {
    /// A line did not end within the room left in the 8192-byte argument buffer.
    LineTooLong,
    /// A `"` inside a name or an unquoted value.
    QuoteInUnquoted,
    /// Something other than white space after a closing quote.
    JunkAfterQuote,
    /// An empty line while a quoted value was open (nothing more is parsed).
    EmptyLineInQuotes,
    /// A line starting with a NUL byte. Kamailio's parser then reads past the line
    /// (undefined behaviour); we refuse the request instead.
    NulLine,
    /// A quoted value filled the whole buffer. Kamailio's `fgets` then fails and the
    /// server sends SIGTERM to its own process group; we refuse the request instead.
    BufferExhausted,
}

impl fmt::Display for ArgsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ArgsError::LineTooLong => "argument line longer than the 8192-byte buffer",
            ArgsError::QuoteInUnquoted => "'\"' inside a name or an unquoted value",
            ArgsError::JunkAfterQuote => "text after the closing quote",
            ArgsError::EmptyLineInQuotes => "empty line inside a quoted value",
            ArgsError::NulLine => "argument line starting with a NUL byte",
            ArgsError::BufferExhausted => "quoted value fills the 8192-byte buffer",
        })
    }
}

impl std::error::Error for ArgsError {}

/// Why a reply FIFO name is refused (docs/kamailio.md §1.3; the same rules in jsonrpcs, §6.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyNameError {
    /// No name at all: there is nowhere to reply.
    Empty,
    /// The name contains `.`, `/` or `\` (it must be a plain file name under reply_dir).
    Forbidden(u8),
    /// reply_dir + name + NUL exceeds 128 bytes; `len` is reply_dir + name.
    TooLong { len: usize },
}

impl fmt::Display for ReplyNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyNameError::Empty => f.write_str("empty reply fifo name"),
            ReplyNameError::Forbidden(b) => write!(
                f,
                "forbidden reply fifo name: contains {:?} (no '.', '/' or '\\' allowed)",
                char::from(*b)
            ),
            ReplyNameError::TooLong { len } => write!(
                f,
                "reply fifo path too long: {len} bytes, at most {} allowed",
                MAX_REPLY_PATH - 1
            ),
        }
    }
}

impl std::error::Error for ReplyNameError {}

/// A request consumed without any reply (docs/kamailio.md §1.5 last row); for the log only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The first line did not fit in 1024 bytes.
    LineTooLong,
    /// An empty first line. Quirk: the rest "of the request" is consumed, so a stray
    /// blank line swallows the next request.
    EmptyLine,
    /// Fewer than 3 characters after trimming.
    TooShort,
    /// The first line does not start with `:`.
    NoLeadingColon,
    /// No `:` after the command name.
    NoReplySeparator,
    /// `::...`: empty command name.
    EmptyCommand,
    /// The reply FIFO name breaks the rules.
    BadReplyName { cmd: Vec<u8>, err: ReplyNameError },
    /// `:cmd:` with no reply name: the command is not run.
    NoReplyFifo { cmd: Vec<u8> },
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::LineTooLong => write!(
                f,
                "MI request line longer than {} bytes, request consumed",
                FIRST_LINE_BUF - 2
            ),
            Rejection::EmptyLine => {
                f.write_str("empty MI request line; consumed up to the next empty line")
            }
            Rejection::TooShort => f.write_str("MI request line shorter than 3 characters"),
            Rejection::NoLeadingColon => f.write_str("MI request line does not start with ':'"),
            Rejection::NoReplySeparator => {
                f.write_str("MI request line has no ':' after the command name")
            }
            Rejection::EmptyCommand => f.write_str("MI request line has an empty command name"),
            Rejection::BadReplyName { cmd, err } => write!(
                f,
                "MI command '{}' not run: {err}",
                String::from_utf8_lossy(cmd)
            ),
            Rejection::NoReplyFifo { cmd } => write!(
                f,
                "MI command '{}' not run: no reply fifo name given",
                String::from_utf8_lossy(cmd)
            ),
        }
    }
}

/// A request ready to be answered on its (open) reply FIFO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextRequest {
    pub cmd: Vec<u8>,
    /// The kind the lookup gave when the first line was read.
    pub kind: CommandKind,
    /// Parsed arguments; always empty for `Unknown` and `NoInput` commands.
    pub args: Result<Vec<Arg>, ArgsError>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextEvent {
    /// Open this reply FIFO now, then call [`TextReader::reply_opened`].
    OpenReply {
        cmd: Vec<u8>,
        reply_name: Vec<u8>,
        path: PathBuf,
    },
    /// Answer this request on the reply FIFO just opened, then close it.
    Request(TextRequest),
    /// Consumed with no reply; log it.
    Rejected(Rejection),
}

/// reply_dir + name, concatenated as strings as Kamailio does (so reply_dir must end
/// in `/`), after the name checks of docs/kamailio.md §1.3.
pub(crate) fn reply_path(reply_dir: &str, name: &[u8]) -> Result<PathBuf, ReplyNameError> {
    check_reply_name(reply_dir.len(), name)?;
    let mut bytes = reply_dir.as_bytes().to_vec();
    bytes.extend_from_slice(name);
    Ok(PathBuf::from(OsString::from_vec(bytes)))
}

fn check_reply_name(dir_len: usize, name: &[u8]) -> Result<(), ReplyNameError> {
    if name.is_empty() {
        return Err(ReplyNameError::Empty);
    }
    if let Some(&b) = name.iter().find(|b| matches!(b, b'.' | b'/' | b'\\')) {
        return Err(ReplyNameError::Forbidden(b));
    }
    if dir_len + name.len() + 1 > MAX_REPLY_PATH {
        return Err(ReplyNameError::TooLong {
            len: dir_len + name.len(),
        });
    }
    Ok(())
}

/// C `isspace` in the C locale.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// One `fgets` result as `mi_read_line` sees it.
struct Line {
    /// The bytes `fgets` stored (before its NUL).
    bytes: Vec<u8>,
    /// `strlen` of them: a NUL byte in the line shortens it.
    len: usize,
    /// `mi_read_line` succeeded: the string is empty or ends in `\n` or `\r`.
    ok: bool,
}

/// A quoted value that continues on the next line.
#[derive(Debug)]
struct Quoted {
    name: Option<Vec<u8>>,
    /// Where the value starts in the argument buffer.
    value_s: usize,
}

/// `mi_parse_tree` in progress: the shared 8192-byte buffer and its `str buf` cursor.
#[derive(Debug)]
struct ArgParse {
    cmd: Vec<u8>,
    buf: Vec<u8>,
    /// `buf->s`: where the next line is read to.
    s: usize,
    /// `buf->len`: room from `s` to the end (`s + room == ARGS_BUF`).
    room: usize,
    args: Vec<Arg>,
    quoted: Option<Quoted>,
    /// The last line read stopped before its `\n` (it did not fit).
    mid_line: bool,
}

/// What one argument line did to the parse.
enum LineOutcome {
    /// Blank line skipped, node added, or quoted value still open: read on.
    More,
    /// The end-of-arguments line.
    End,
    /// A parse error; `consume` is whether the rest of the request is still to be
    /// skipped (every error but the empty line inside quotes, which ends it).
    Error { err: ArgsError, consume: bool },
}

#[derive(Debug)]
enum State {
    /// Waiting for a first line `:cmd:reply_name`.
    FirstLine,
    /// Waiting for the reactor to report whether the reply FIFO opened.
    AwaitReply { cmd: Vec<u8>, kind: CommandKind },
    /// The server's `mi_do_consume`: read lines until `line_len <= 1`; then emit `then`.
    Consume { then: Option<TextRequest> },
    /// Parsing argument lines.
    Args(ArgParse),
    /// After a parse error: the rest of the bad request is skipped up to its own
    /// blank line, then the 400 is emitted (docs/decisions.md §4). `mid_line` is
    /// whether the last byte skipped was not a line end, so that the tail of a long
    /// line is never taken for the blank line.
    ArgsConsume { req: TextRequest, mid_line: bool },
}

enum Step {
    Event(TextEvent),
    Continue,
    NeedInput,
}

/// Incremental MI FIFO request reader. One per FIFO; it lives as long as the FIFO.
#[derive(Debug)]
pub struct TextReader {
    reply_dir: String,
    /// Received bytes; those before `pos` are consumed.
    pending: Vec<u8>,
    pos: usize,
    /// `line_len` of Kamailio's server loop. It is not reset between requests and the
    /// consume loop reads it; a failed read leaves it unchanged. Its first value is
    /// uninitialised memory in C; we start with a value > 1 so that the consume after a
    /// too-long first line reads on to the request's end, as the code intends.
    line_len: isize,
    state: State,
    queued: Option<TextEvent>,
}

impl TextReader {
    /// `reply_dir` is the `mi_fifo` `reply_dir` modparam (default `/tmp/`).
    pub fn new(reply_dir: &str) -> TextReader {
        TextReader {
            reply_dir: reply_dir.to_string(),
            pending: Vec::new(),
            pos: 0,
            line_len: 2,
            state: State::FirstLine,
            queued: None,
        }
    }

    /// Append bytes read from the FIFO.
    pub fn push(&mut self, bytes: &[u8]) {
        // Drop consumed bytes before growing, so the buffer holds only unread input.
        if self.pos > 0 {
            self.pending.drain(..self.pos);
            self.pos = 0;
        }
        self.pending.extend_from_slice(bytes);
    }

    /// Bytes received but not yet consumed. Kamailio leaves unread bytes in the pipe;
    /// a reactor may stop reading the FIFO while this is large.
    pub fn buffered(&self) -> usize {
        self.pending.len() - self.pos
    }

    /// Whether the reader waits for [`TextReader::reply_opened`].
    pub(crate) fn awaiting_reply(&self) -> bool {
        matches!(self.state, State::AwaitReply { .. })
    }

    /// Report the outcome of opening the reply FIFO announced by
    /// [`TextEvent::OpenReply`]. Ignored at any other time.
    pub(crate) fn reply_opened(&mut self, opened: bool) {
        let State::AwaitReply { cmd, kind } = std::mem::replace(&mut self.state, State::FirstLine)
        else {
            return;
        };
        self.state = if !opened {
            // The request is consumed; the command is not run.
            State::Consume { then: None }
        } else {
            match kind {
                CommandKind::Unknown => {
                    // Kamailio answers at once and consumes the arguments afterwards.
                    self.queued = Some(TextEvent::Request(TextRequest {
                        cmd,
                        kind,
                        args: Ok(Vec::new()),
                    }));
                    State::Consume { then: None }
                }
                CommandKind::NoInput => State::Consume {
                    then: Some(TextRequest {
                        cmd,
                        kind,
                        args: Ok(Vec::new()),
                    }),
                },
                CommandKind::WithInput => State::Args(ArgParse {
                    cmd,
                    buf: vec![0; ARGS_BUF],
                    s: 0,
                    room: ARGS_BUF,
                    args: Vec::new(),
                    quoted: None,
                    mid_line: false,
                }),
            }
        };
    }

    /// The next event, or `None` when more input (or a `reply_opened` call) is needed.
    pub fn next(&mut self, lookup: &dyn Fn(&[u8]) -> CommandKind) -> Option<TextEvent> {
        if let Some(ev) = self.queued.take() {
            return Some(ev);
        }
        loop {
            let step = match std::mem::replace(&mut self.state, State::FirstLine) {
                State::FirstLine => self.first_line(lookup),
                st @ State::AwaitReply { .. } => {
                    self.state = st;
                    Step::NeedInput
                }
                State::Consume { then } => self.consume(then),
                State::Args(parse) => self.args(parse),
                State::ArgsConsume { req, mid_line } => self.args_consume(req, mid_line),
            };
            match step {
                Step::Event(ev) => return Some(ev),
                Step::Continue => {}
                Step::NeedInput => return None,
            }
        }
    }

    /// `fgets(buf, n, stream)` followed by `mi_read_line`'s checks; `None` while the
    /// bytes `fgets` would block for have not arrived. `n` must be at least 1.
    fn read_line(&mut self, n: usize) -> Option<Line> {
        if n <= 1 {
            // glibc: with room for the NUL only, store "" and read nothing.
            return Some(Line {
                bytes: Vec::new(),
                len: 0,
                ok: true,
            });
        }
        let max = n - 1;
        let unread = &self.pending[self.pos..];
        let limit = max.min(unread.len());
        let take = match unread[..limit].iter().position(|&b| b == b'\n') {
            Some(i) => i + 1,
            None if unread.len() >= max => max,
            None => return None,
        };
        let bytes = unread[..take].to_vec();
        self.pos += take;
        let len = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        let ok = len == 0 || matches!(bytes[len - 1], b'\n' | b'\r');
        Some(Line { bytes, len, ok })
    }

    fn first_line(&mut self, lookup: &dyn Fn(&[u8]) -> CommandKind) -> Step {
        let Some(line) = self.read_line(FIRST_LINE_BUF) else {
            self.state = State::FirstLine;
            return Step::NeedInput;
        };
        let reject = |this: &mut Self, r: Rejection| {
            this.state = State::Consume { then: None };
            Step::Event(TextEvent::Rejected(r))
        };
        if !line.ok {
            // line_len keeps its previous value: the consume loop depends on it.
            return reject(self, Rejection::LineTooLong);
        }
        let mut l = line.len;
        while l > 0 && matches!(line.bytes[l - 1], b'\n' | b'\r' | b' ' | b'\t') {
            l -= 1;
        }
        self.line_len = l as isize;
        let text = &line.bytes[..l];
        if l == 0 {
            return reject(self, Rejection::EmptyLine);
        }
        if l < 3 {
            return reject(self, Rejection::TooShort);
        }
        if text[0] != b':' {
            return reject(self, Rejection::NoLeadingColon);
        }
        let Some(sep) = text[1..].iter().position(|&b| b == b':') else {
            return reject(self, Rejection::NoReplySeparator);
        };
        if sep == 0 {
            return reject(self, Rejection::EmptyCommand);
        }
        let cmd = text[1..1 + sep].to_vec();
        let name = &text[2 + sep..];
        if name.is_empty() {
            // Neither an unknown nor a known command can be answered: not run.
            return reject(self, Rejection::NoReplyFifo { cmd });
        }
        let path = match reply_path(&self.reply_dir, name) {
            Ok(p) => p,
            Err(err) => return reject(self, Rejection::BadReplyName { cmd, err }),
        };
        let kind = lookup(&cmd);
        let reply_name = name.to_vec();
        self.state = State::AwaitReply {
            cmd: cmd.clone(),
            kind,
        };
        Step::Event(TextEvent::OpenReply {
            cmd,
            reply_name,
            path,
        })
    }

    /// `mi_do_consume`: `do { mi_read_line(1024) } while (line_len > 1)`.
    fn consume(&mut self, then: Option<TextRequest>) -> Step {
        loop {
            let Some(line) = self.read_line(FIRST_LINE_BUF) else {
                self.state = State::Consume { then };
                return Step::NeedInput;
            };
            if line.ok {
                self.line_len = line.len as isize;
            }
            if self.line_len <= 1 {
                self.state = State::FirstLine;
                return match then {
                    Some(req) => Step::Event(TextEvent::Request(req)),
                    None => Step::Continue,
                };
            }
        }
    }

    /// Skips the rest of a request whose arguments failed to parse, up to the first
    /// line that is exactly `\n`, then emits it (answered `400 parse error`).
    ///
    /// Kamailio's parser stops its own consume at the first *read* of length <= 1 (a
    /// failed read of a long line counts) and the server then runs a second consume,
    /// which reads the *next* request up to its blank line: the following client never
    /// gets an answer. siptraced consumes the bad request exactly, by bytes rather
    /// than `fgets` reads, and the next request is served (docs/decisions.md §4).
    fn args_consume(&mut self, req: TextRequest, mut mid_line: bool) -> Step {
        loop {
            let unread = &self.pending[self.pos..];
            let Some(i) = unread.iter().position(|&b| b == b'\n') else {
                mid_line |= !unread.is_empty();
                self.pos = self.pending.len();
                self.state = State::ArgsConsume { req, mid_line };
                return Step::NeedInput;
            };
            let blank = i == 0 && !mid_line;
            self.pos += i + 1;
            mid_line = false;
            if blank {
                self.state = State::FirstLine;
                return Step::Event(TextEvent::Request(req));
            }
        }
    }

    fn args(&mut self, mut ap: ArgParse) -> Step {
        loop {
            if ap.room == 0 {
                return self.args_failed(ap, ArgsError::BufferExhausted, true);
            }
            let Some(line) = self.read_line(ap.room) else {
                self.state = State::Args(ap);
                return Step::NeedInput;
            };
            if let Some(&last) = line.bytes.last() {
                ap.mid_line = last != b'\n';
            }
            match ap.take_line(&line) {
                LineOutcome::More => {}
                LineOutcome::End => {
                    let req = TextRequest {
                        cmd: ap.cmd,
                        kind: CommandKind::WithInput,
                        args: Ok(ap.args),
                    };
                    self.state = State::FirstLine;
                    return Step::Event(TextEvent::Request(req));
                }
                LineOutcome::Error { err, consume } => {
                    return self.args_failed(ap, err, consume);
                }
            }
        }
    }

    fn args_failed(&mut self, ap: ArgParse, err: ArgsError, consume: bool) -> Step {
        let req = TextRequest {
            cmd: ap.cmd,
            kind: CommandKind::WithInput,
            args: Err(err),
        };
        if consume {
            self.state = State::ArgsConsume {
                req,
                mid_line: ap.mid_line,
            };
            Step::Continue
        } else {
            // The line that failed was the request's blank line: nothing more to skip.
            self.state = State::FirstLine;
            Step::Event(TextEvent::Request(req))
        }
    }
}

impl ArgParse {
    /// `mi_parse_node` for one line read into the buffer at `s` (docs/kamailio.md §1.4).
    fn take_line(&mut self, line: &Line) -> LineOutcome {
        let s = self.s;
        // fgets stored the bytes and a NUL at s (room >= bytes + 1 by construction).
        self.buf[s..s + line.bytes.len()].copy_from_slice(&line.bytes);
        self.buf[s + line.bytes.len()] = 0;
        if !line.ok {
            return LineOutcome::Error {
                err: ArgsError::LineTooLong,
                consume: true,
            };
        }
        let len = line.len;
        if let Some(q) = self.quoted.take() {
            if len == 1 {
                return LineOutcome::Error {
                    err: ArgsError::EmptyLineInQuotes,
                    consume: false,
                };
            }
            // With len == 0 (a NUL-led line) pmax is s - 1: nothing is scanned and the
            // cursor moves one byte on, as in C. s >= 1 here since a quote preceded.
            let pmax = s + len - 1;
            return self.scan_quoted(q, s, pmax);
        }
        if len == 1 {
            return LineOutcome::End;
        }
        if len == 0 {
            return LineOutcome::Error {
                err: ArgsError::NulLine,
                consume: true,
            };
        }
        let pmax = s + len - 1;
        let mut start = s;
        while start < pmax && is_space(self.buf[start]) {
            start += 1;
        }
        if start == pmax {
            // A blank line: skipped, and the next line overwrites it.
            return LineOutcome::More;
        }
        if self.buf[start] == b'"' {
            let q = Quoted {
                name: None,
                value_s: start + 1,
            };
            return self.scan_quoted(q, start + 1, pmax);
        }
        self.unquoted(start, pmax)
    }

    fn unquoted(&mut self, start: usize, pmax: usize) -> LineOutcome {
        let quote_err = LineOutcome::Error {
            err: ArgsError::QuoteInUnquoted,
            consume: true,
        };
        let mut p = start;
        let mut mark = start;
        // Look for "::"; a ':' whose next byte is the line end does not start one.
        while p != pmax && !(self.buf[p] == b':' && p + 1 != pmax && self.buf[p + 1] == b':') {
            if !is_space(self.buf[p]) {
                if self.buf[p] == b'"' {
                    return quote_err;
                }
                mark = p;
            }
            p += 1;
        }
        if p == pmax {
            let value = self.buf[start..=mark].to_vec();
            self.add(None, Some(value), p);
            return LineOutcome::More;
        }
        let name = (p != start).then(|| self.buf[start..=mark].to_vec());
        p += 2;
        while p != pmax && is_space(self.buf[p]) {
            p += 1;
        }
        if p == pmax {
            self.add(name, None, p);
            return LineOutcome::More;
        }
        if self.buf[p] == b'"' {
            let q = Quoted {
                name,
                value_s: p + 1,
            };
            return self.scan_quoted(q, p + 1, pmax);
        }
        let vstart = p;
        while p != pmax {
            if !is_space(self.buf[p]) {
                if self.buf[p] == b'"' {
                    return quote_err;
                }
                mark = p;
            }
            p += 1;
        }
        let value = self.buf[vstart..=mark].to_vec();
        self.add(name, Some(value), p);
        LineOutcome::More
    }

    /// The quoted-value loop of `mi_parse_node`, from `start` up to `pmax` (the line's
    /// last byte). `\"` is unescaped in place by moving the rest of the line down one
    /// byte, as the C `memmove` does; quirk: not when the quote is the second byte from
    /// `start`.
    fn scan_quoted(&mut self, q: Quoted, start: usize, mut pmax: usize) -> LineOutcome {
        let mut p = start;
        while p < pmax {
            if self.buf[p] != b'"' {
                p += 1;
                continue;
            }
            if start + 1 != p && self.buf[p - 1] == b'\\' {
                self.buf.copy_within(p..pmax, p - 1);
                pmax -= 1;
                continue;
            }
            let value = self.buf[q.value_s..p].to_vec();
            p += 1;
            while p != pmax && is_space(self.buf[p]) {
                p += 1;
            }
            if p != pmax {
                return LineOutcome::Error {
                    err: ArgsError::JunkAfterQuote,
                    consume: true,
                };
            }
            self.add(q.name, Some(value), p);
            return LineOutcome::More;
        }
        // The value goes on: the next line is read right after this one (after its
        // newline, or over the last byte if an unescape shortened the line).
        let next = p + 1;
        self.room -= next - self.s;
        self.s = next;
        self.quoted = Some(q);
        LineOutcome::More
    }

    /// Add a node and move the cursor to `p`, the line's last byte (its `\n`), which the
    /// next line overwrites.
    fn add(&mut self, name: Option<Vec<u8>>, value: Option<Vec<u8>>, p: usize) {
        self.args.push(Arg { name, value });
        self.room -= p - self.s;
        self.s = p;
    }
}

/// One node of a reply tree (`struct mi_node`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Node {
    pub name: Option<String>,
    pub value: Option<String>,
    /// `(name, value)`; an attribute without a name prints its value with no separator.
    pub attrs: Vec<(Option<String>, String)>,
    pub kids: Vec<Node>,
}

impl Node {
    /// A value-only node: `value\n`.
    pub fn value(value: impl Into<String>) -> Node {
        Node {
            value: Some(value.into()),
            ..Node::default()
        }
    }

    /// A named node: `name:: value\n`.
    pub fn named(name: impl Into<String>, value: impl Into<String>) -> Node {
        Node {
            name: Some(name.into()),
            value: Some(value.into()),
            ..Node::default()
        }
    }

    fn line(&self, indent: &str, level: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for _ in 0..level {
            out.extend_from_slice(indent.as_bytes());
        }
        if let Some(name) = &self.name {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b":: ");
        }
        if let Some(value) = &self.value {
            out.extend_from_slice(value.as_bytes());
        }
        for (name, value) in &self.attrs {
            if let Some(name) = name {
                out.push(b' ');
                out.extend_from_slice(name.as_bytes());
                out.push(b'=');
            }
            out.extend_from_slice(value.as_bytes());
        }
        out.push(b'\n');
        out
    }
}

/// A reply tree (`struct mi_root`): status line plus nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MiReply {
    pub code: u16,
    pub reason: String,
    pub nodes: Vec<Node>,
}

impl MiReply {
    /// `200 OK` with these nodes.
    pub fn ok(nodes: Vec<Node>) -> MiReply {
        MiReply {
            code: 200,
            reason: "OK".to_string(),
            nodes,
        }
    }

    /// A reply with no nodes, e.g. `400 Bad parameter`.
    pub fn status(code: u16, reason: &str) -> MiReply {
        MiReply {
            code,
            reason: reason.to_string(),
            nodes: Vec::new(),
        }
    }

    /// `mi_write_tree`: `<code> <reason>\n`, one line per node depth-first with
    /// `indent` (the `reply_indent` modparam) per level, then an empty line.
    /// Values are written raw. Bytes go through an 8192-byte buffer flushed with
    /// `fprintf("%.*s")`, so a flush stops at a NUL byte, and a single line that does
    /// not fit even an empty buffer ends the reply there, without the empty line.
    pub(crate) fn encode(&self, indent: &str) -> Vec<u8> {
        let mut w = Writer::default();
        let code = self.code.to_string();
        if code.len() + self.reason.len() + 1 > WRITE_BUF {
            return w.out; // "reason too long": nothing is written
        }
        w.buf.extend_from_slice(code.as_bytes());
        w.buf.push(b' ');
        w.buf.extend_from_slice(self.reason.as_bytes());
        w.buf.push(b'\n');
        if !w.nodes(&self.nodes, indent, 0) || w.buf.len() >= WRITE_BUF {
            return w.out;
        }
        w.buf.push(b'\n');
        w.flush();
        w.out
    }
}

#[derive(Default)]
struct Writer {
    out: Vec<u8>,
    buf: Vec<u8>,
}

impl Writer {
    /// `mi_fifo_reply(stream, "%.*s", ...)`: stops at a NUL; writing nothing counts as
    /// a write error.
    fn flush(&mut self) -> bool {
        let n = self
            .buf
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.buf.len());
        self.out.extend_from_slice(&self.buf[..n]);
        self.buf.clear();
        n > 0
    }

    fn nodes(&mut self, nodes: &[Node], indent: &str, level: usize) -> bool {
        for node in nodes {
            let line = node.line(indent, level);
            // Does not fit: flush, and give up if it does not fit an empty buffer.
            if self.buf.len() + line.len() > WRITE_BUF && (!self.flush() || line.len() > WRITE_BUF)
            {
                return false;
            }
            self.buf.extend_from_slice(&line);
            if !self.nodes(&node.kids, indent, level + 1) {
                return false;
            }
        }
        true
    }
}

/// `500 command '<cmd>' not available\n` (no empty line after it).
pub(crate) fn not_available(cmd: &[u8]) -> Vec<u8> {
    status_line(b"500 command '", cmd, b"' not available\n")
}

/// `400 parse error in command '<cmd>'\n`.
pub fn parse_error(cmd: &[u8]) -> Vec<u8> {
    status_line(b"400 parse error in command '", cmd, b"'\n")
}

/// `500 command '<cmd>' failed\n`: the handler returned no tree.
pub fn failed(cmd: &[u8]) -> Vec<u8> {
    status_line(b"500 command '", cmd, b"' failed\n")
}

fn status_line(head: &[u8], cmd: &[u8], tail: &[u8]) -> Vec<u8> {
    [head, cmd, tail].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(cmd: &[u8]) -> CommandKind {
        match cmd {
            b"sip_trace" | b"debug" => CommandKind::WithInput,
            b"which" | b"ps" | b"uptime" => CommandKind::NoInput,
            _ => CommandKind::Unknown,
        }
    }

    /// Events, with reply FIFOs opening (or not) as `open` says, rendered compactly:
    /// `open <cmd>`, `req <cmd> [args]` / `req <cmd> err <e>`, `rej <reason>`.
    fn run(input: &[u8], chunk: usize, open: bool) -> (Vec<String>, usize) {
        let mut r = TextReader::new("/tmp/");
        let mut events = Vec::new();
        let mut fed = 0;
        loop {
            while let Some(ev) = r.next(&lookup) {
                events.push(render(&ev));
                if matches!(ev, TextEvent::OpenReply { .. }) {
                    r.reply_opened(open);
                }
            }
            if fed >= input.len() {
                break;
            }
            let end = (fed + chunk).min(input.len());
            r.push(&input[fed..end]);
            fed = end;
        }
        (events, r.buffered())
    }

    fn show(b: &[u8]) -> String {
        String::from_utf8_lossy(b)
            .replace('\n', "\\n")
            .replace('\r', "\\r")
    }

    fn render(ev: &TextEvent) -> String {
        match ev {
            TextEvent::OpenReply { cmd, path, .. } => {
                format!("open {} {}", show(cmd), path.display())
            }
            TextEvent::Request(req) => match &req.args {
                Ok(args) => {
                    let parts: Vec<String> = args
                        .iter()
                        .map(|a| {
                            format!(
                                "{}={}",
                                a.name.as_deref().map(show).unwrap_or("-".into()),
                                a.value.as_deref().map(show).unwrap_or("-".into())
                            )
                        })
                        .collect();
                    format!("req {} [{}]", show(&req.cmd), parts.join(","))
                }
                Err(e) => format!("req {} err {e:?}", show(&req.cmd)),
            },
            TextEvent::Rejected(r) => format!("rej {r:?}"),
        }
    }

    /// (input, reply FIFO opens, expected events, bytes left unconsumed)
    fn check(input: &[u8], open: bool, expected: &[&str], left: usize) {
        let (events, rest) = run(input, input.len().max(1), open);
        assert_eq!(events, expected, "input {:?}", show(input));
        assert_eq!(rest, left, "unconsumed bytes for {:?}", show(input));
        // Incremental reading: any split gives the same result.
        for chunk in [1, 2, 3, 7, 4096] {
            let (ev2, rest2) = run(input, chunk, open);
            assert_eq!(ev2, events, "chunk {chunk} for {:?}", show(input));
            assert_eq!(rest2, rest, "chunk {chunk} leftover");
        }
    }

    const OPEN_ST: &str = "open sip_trace /tmp/r";

    #[test]
    fn first_line_cases() {
        let long_cmd = format!(":{}:r\non\n\n", "x".repeat(1100));
        let long_name = format!(":sip_trace:{}\non\n\n", "n".repeat(123));
        let max_name = format!(":sip_trace:{}\n\n", "n".repeat(122));
        let max_open = format!("open sip_trace /tmp/{}", "n".repeat(122));
        let max_events = [max_open.as_str(), "req sip_trace []"];
        let cases: Vec<(&[u8], &[&str], usize)> = vec![
            (
                b":sip_trace:r\non\n\n",
                &[OPEN_ST, "req sip_trace [-=on]"],
                0,
            ),
            (b":sip_trace:r  \t\r\n\n", &[OPEN_ST, "req sip_trace []"], 0),
            (b":which:r\n\n", &["open which /tmp/r", "req which []"], 0),
            (
                b":which:r\nignored\n\"x\n\n",
                &["open which /tmp/r", "req which []"],
                0,
            ),
            (b":nope:r\na\n\n", &["open nope /tmp/r", "req nope []"], 0),
            (
                b":sip_trace:\non\n\n",
                &["rej NoReplyFifo { cmd: [115, 105, 112, 95, 116, 114, 97, 99, 101] }"],
                0,
            ),
            (
                b":sip_trace:a.b\non\n\n",
                &[
                    "rej BadReplyName { cmd: [115, 105, 112, 95, 116, 114, 97, 99, 101], err: Forbidden(46) }",
                ],
                0,
            ),
            (
                b":x:/tmp/r\n\n",
                &["rej BadReplyName { cmd: [120], err: Forbidden(47) }"],
                0,
            ),
            (
                b":x:a\\b\n\n",
                &["rej BadReplyName { cmd: [120], err: Forbidden(92) }"],
                0,
            ),
            (
                long_name.as_bytes(),
                &[
                    "rej BadReplyName { cmd: [115, 105, 112, 95, 116, 114, 97, 99, 101], err: TooLong { len: 128 } }",
                ],
                0,
            ),
            (max_name.as_bytes(), &max_events, 0),
            (b"::r\n\n", &["rej EmptyCommand"], 0),
            (b"sip_trace:r\n\n", &["rej NoLeadingColon"], 0),
            (b":ab\n\n", &["rej NoReplySeparator"], 0),
            (b":a\n\n", &["rej TooShort"], 0),
            // Empty first line: consumed up to the next empty line, swallowing a request.
            (b"\n:which:r\n\n", &["rej EmptyLine"], 0),
            (
                b"  \r\n:which:r\n\n:ps:r\n\n",
                &["rej EmptyLine", "open ps /tmp/r", "req ps []"],
                0,
            ),
            (long_cmd.as_bytes(), &["rej LineTooLong"], 0),
            // A command with its reply FIFO name then a second request.
            (
                b":ps:r\n\n:uptime:r\n\n",
                &[
                    "open ps /tmp/r",
                    "req ps []",
                    "open uptime /tmp/r",
                    "req uptime []",
                ],
                0,
            ),
            // Incomplete request: waits.
            (b":sip_trace:r\non\n", &[OPEN_ST], 0),
        ];
        for (input, expected, left) in cases {
            check(input, true, expected, left);
        }
    }

    #[test]
    fn reply_fifo_not_opened_consumes_request() {
        check(
            b":sip_trace:r\non\n\n:ps:r\n\n",
            false,
            &[OPEN_ST, "open ps /tmp/r"],
            0,
        );
        // The consume uses 1024-byte lines and stops at the first line of length <= 1,
        // whatever quotes it is in.
        check(
            b":sip_trace:r\n\"a\n\nb\"\n\n",
            false,
            &[OPEN_ST, "rej TooShort"],
            0,
        );
    }

    #[test]
    fn argument_cases() {
        let cases: Vec<(&[u8], &[&str])> = vec![
            (
                b":sip_trace:r\nmode::on\n\n",
                &[OPEN_ST, "req sip_trace [mode=on]"],
            ),
            (
                b":sip_trace:r\n  a b  ::  c d \t\n\n",
                &[OPEN_ST, "req sip_trace [a b=c d]"],
            ),
            (
                b":sip_trace:r\nname::\n\n",
                &[OPEN_ST, "req sip_trace [name=-]"],
            ),
            (b":sip_trace:r\n::v\n\n", &[OPEN_ST, "req sip_trace [-=v]"]),
            (b":sip_trace:r\na:\n\n", &[OPEN_ST, "req sip_trace [-=a:]"]),
            (
                b":sip_trace:r\na:b\n\n",
                &[OPEN_ST, "req sip_trace [-=a:b]"],
            ),
            (
                b":sip_trace:r\na:::b\n\n",
                &[OPEN_ST, "req sip_trace [a=:b]"],
            ),
            (b":sip_trace:r\n.\n\n", &[OPEN_ST, "req sip_trace [-=.]"]),
            // Blank lines (and CRLF) are skipped, "\r\n" does not end the request.
            (
                b":sip_trace:r\n\r\n   \non\r\n\t\n\n",
                &[OPEN_ST, "req sip_trace [-=on]"],
            ),
            (
                b":sip_trace:r\non\nfoo\n\n",
                &[OPEN_ST, "req sip_trace [-=on,-=foo]"],
            ),
            // Quoted values.
            (
                b":sip_trace:r\n\"a b\"\n\n",
                &[OPEN_ST, "req sip_trace [-=a b]"],
            ),
            (
                b":sip_trace:r\nn::\"x\\\"y\"  \n\n",
                &[OPEN_ST, "req sip_trace [n=x\"y]"],
            ),
            (b":sip_trace:r\n\"\"\n\n", &[OPEN_ST, "req sip_trace [-=]"]),
            (
                b":sip_trace:r\n\"a\\nb\\\\c\"\n\n",
                &[OPEN_ST, "req sip_trace [-=a\\nb\\\\c]"],
            ),
            // `\\"` at the end still reads as an escaped quote: the value never closes.
            (
                b":sip_trace:r\n\"ab\\\"\n\n",
                &[OPEN_ST, "req sip_trace err EmptyLineInQuotes"],
            ),
            // Continuation over lines keeps the newline.
            (
                b":sip_trace:r\n\"a\nb\"\n\n",
                &[OPEN_ST, "req sip_trace [-=a\\nb]"],
            ),
            (
                b":sip_trace:r\n\"a\r\nb\"\n\n",
                &[OPEN_ST, "req sip_trace [-=a\\r\\nb]"],
            ),
            // After an unescape the newline is replaced by the line's last byte again.
            (
                b":sip_trace:r\n\"a\\\"b\nc\"\n\n",
                &[OPEN_ST, "req sip_trace [-=a\"bbc]"],
            ),
            // Quirk: an escaped quote right at the start is not recognised.
            (
                b":sip_trace:r\n\"\\\"x\"\n\n",
                &[OPEN_ST, "req sip_trace err JunkAfterQuote"],
            ),
            // Errors.
            (
                b":sip_trace:r\na\"b\n\n",
                &[OPEN_ST, "req sip_trace err QuoteInUnquoted"],
            ),
            (
                b":sip_trace:r\nn::a\"b\n\n",
                &[OPEN_ST, "req sip_trace err QuoteInUnquoted"],
            ),
            (
                b":sip_trace:r\n\"a\" b\n\n",
                &[OPEN_ST, "req sip_trace err JunkAfterQuote"],
            ),
            (
                b":sip_trace:r\n\0x\n\n",
                &[OPEN_ST, "req sip_trace err NulLine"],
            ),
            (
                b":sip_trace:r\nab\0c\n\n",
                &[OPEN_ST, "req sip_trace err LineTooLong"],
            ),
        ];
        for (input, expected) in cases {
            check(input, true, expected, 0);
        }
    }

    #[test]
    fn parse_errors_consume_their_own_request_only() {
        // The bad request is skipped up to its own blank line; the next one is served
        // (docs/decisions.md §4: Kamailio would swallow `:ps:r` here).
        check(
            b":sip_trace:r\na\"b\nmore\n\n:ps:r\n\n:uptime:r\n\n",
            true,
            &[
                OPEN_ST,
                "req sip_trace err QuoteInUnquoted",
                "open ps /tmp/r",
                "req ps []",
                "open uptime /tmp/r",
                "req uptime []",
            ],
            0,
        );
        // Empty line inside quotes: that line ends the request; `x` is then read as a
        // first line (too short: refused, consumed to its blank line) and `:ps:r` is served.
        check(
            b":sip_trace:r\n\"abc\n\nx\n\n:ps:r\n\n",
            true,
            &[
                OPEN_ST,
                "req sip_trace err EmptyLineInQuotes",
                "rej TooShort",
                "open ps /tmp/r",
                "req ps []",
            ],
            0,
        );
        // A line far longer than the buffer: its tail, read in pieces, never passes for
        // the blank line, even when a piece ends right before its newline.
        for len in [8191, 8192, 16382, 16383, 16384, 20000] {
            let mut long = b":sip_trace:r\n".to_vec();
            long.extend(std::iter::repeat_n(b'a', len));
            long.extend_from_slice(b"\nmore\n\n:ps:r\n\n");
            check(
                &long,
                true,
                &[
                    OPEN_ST,
                    "req sip_trace err LineTooLong",
                    "open ps /tmp/r",
                    "req ps []",
                ],
                0,
            );
        }
        // The 400 waits for the blank line; a half-sent bad request waits too.
        check(b":sip_trace:r\n\0x\nmore\n", true, &[OPEN_ST], 0);
    }

    #[test]
    fn argument_buffer_is_shared_and_bounded() {
        // Each node uses len-1 bytes (its newline is overwritten): 8191 bytes of room
        // for fgets on the first line.
        let mut ok = b":sip_trace:r\n".to_vec();
        ok.extend(std::iter::repeat_n(b'a', 8190));
        ok.extend_from_slice(b"\n\n");
        let (events, _) = run(&ok, ok.len(), true);
        assert_eq!(events.len(), 2);
        assert!(
            events[1].starts_with("req sip_trace [-=aaaa"),
            "{}",
            events[1]
        );

        // 8191 bytes without newline: too long.
        let mut long = b":sip_trace:r\n".to_vec();
        long.extend(std::iter::repeat_n(b'a', 8191));
        long.extend_from_slice(b"\n\n");
        check(&long, true, &[OPEN_ST, "req sip_trace err LineTooLong"], 0);

        // Two lines share the buffer: 4000 + 4190 bytes (+ newlines) leave room 2 for
        // the end line, which is then exactly one byte.
        let mut two = b":sip_trace:r\n".to_vec();
        two.extend(std::iter::repeat_n(b'a', 4000));
        two.push(b'\n');
        two.extend(std::iter::repeat_n(b'b', 4190));
        two.extend_from_slice(b"\n\n");
        let (events, _) = run(&two, two.len(), true);
        assert_eq!(events.len(), 2, "{events:?}");
        assert!(events[1].starts_with("req sip_trace [-=aaa"));

        // One byte more and the second line no longer fits: parse error.
        let mut over = b":sip_trace:r\n".to_vec();
        over.extend(std::iter::repeat_n(b'a', 4000));
        over.push(b'\n');
        over.extend(std::iter::repeat_n(b'b', 4191));
        over.extend_from_slice(b"\n\n");
        let (events, _) = run(&over, over.len(), true);
        assert_eq!(events[1], "req sip_trace err LineTooLong");

        // A quoted value that fills the buffer exactly leaves fgets room for its NUL
        // only ("" is read), then none: Kamailio would kill itself here.
        let mut q = b":sip_trace:r\n\"\n".to_vec();
        q.extend(std::iter::repeat_n(b'q', 8188));
        q.extend_from_slice(b"\n\"\n\n");
        let (events, _) = run(&q, q.len(), true);
        assert_eq!(events[1], "req sip_trace err BufferExhausted");
    }

    #[test]
    fn too_long_first_line_uses_previous_line_len() {
        // After a no-input request the server's line_len is 1: the consume after a
        // too-long first line stops after one more failed 1023-byte read, and the rest
        // is read as a new first line.
        let mut input = b":ps:r\n\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 2100));
        input.extend_from_slice(b"\n\n");
        check(
            &input,
            true,
            &[
                "open ps /tmp/r",
                "req ps []",
                "rej LineTooLong",
                "rej NoLeadingColon",
            ],
            0,
        );
    }

    #[test]
    fn reply_path_cases() {
        let cases: Vec<(&str, &[u8], Result<&str, ReplyNameError>)> = vec![
            (
                "/tmp/",
                b"kamailio_receiver_42",
                Ok("/tmp/kamailio_receiver_42"),
            ),
            ("/tmp", b"x", Ok("/tmpx")),
            ("/tmp/", b"", Err(ReplyNameError::Empty)),
            ("/tmp/", b"a.b", Err(ReplyNameError::Forbidden(b'.'))),
            ("/tmp/", b"../x", Err(ReplyNameError::Forbidden(b'.'))),
            ("/tmp/", b"a/b", Err(ReplyNameError::Forbidden(b'/'))),
            ("/tmp/", b"a\\b", Err(ReplyNameError::Forbidden(b'\\'))),
        ];
        for (dir, name, expected) in cases {
            let got = reply_path(dir, name);
            assert_eq!(
                got.as_ref()
                    .map(|p| p.to_string_lossy().into_owned())
                    .map_err(Clone::clone),
                expected.map(str::to_string),
                "{dir} {name:?}"
            );
        }
        assert!(reply_path("/tmp/", &[b'n'; 122]).is_ok());
        assert_eq!(
            reply_path("/tmp/", &[b'n'; 123]),
            Err(ReplyNameError::TooLong { len: 128 })
        );
    }

    #[test]
    fn encode_cases() {
        let ps = Node {
            name: Some("Process".into()),
            attrs: vec![
                (Some("ID".into()), "0".into()),
                (Some("PID".into()), "123".into()),
                (Some("Type".into()), "attendant".into()),
            ],
            ..Node::default()
        };
        let nested = Node {
            name: Some("a".into()),
            kids: vec![Node {
                value: Some("b".into()),
                kids: vec![Node::named("c", "d")],
                ..Node::default()
            }],
            ..Node::default()
        };
        let bare_attr = Node {
            value: Some("v".into()),
            attrs: vec![(None, "w".into())],
            ..Node::default()
        };
        let cases: Vec<(MiReply, &str, &str)> = vec![
            (MiReply::ok(vec![]), "\t", "200 OK\n\n"),
            (
                MiReply::status(400, "Bad parameter"),
                "\t",
                "400 Bad parameter\n\n",
            ),
            (MiReply::status(200, ""), "\t", "200 \n\n"),
            (MiReply::ok(vec![Node::value("on")]), "\t", "200 OK\non\n\n"),
            (
                MiReply::ok(vec![ps]),
                "\t",
                "200 OK\nProcess::  ID=0 PID=123 Type=attendant\n\n",
            ),
            (
                MiReply::ok(vec![nested.clone()]),
                "\t",
                "200 OK\na:: \n\tb\n\t\tc:: d\n\n",
            ),
            (MiReply::ok(vec![nested]), "", "200 OK\na:: \nb\nc:: d\n\n"),
            (MiReply::ok(vec![bare_attr]), "\t", "200 OK\nvw\n\n"),
            (
                MiReply::ok(vec![
                    Node::named("Build", "x compiled\n"),
                    Node::named("Flags", "f"),
                ]),
                "\t",
                "200 OK\nBuild:: x compiled\n\nFlags:: f\n\n",
            ),
        ];
        for (reply, indent, expected) in cases {
            assert_eq!(String::from_utf8_lossy(&reply.encode(indent)), expected);
        }
    }

    #[test]
    fn encode_buffer_limits() {
        // Lines are flushed in 8192-byte chunks but the bytes are the same.
        let many: Vec<Node> = (0..2000).map(|i| Node::value(format!("v{i}"))).collect();
        let mut expected = b"200 OK\n".to_vec();
        for i in 0..2000 {
            expected.extend_from_slice(format!("v{i}\n").as_bytes());
        }
        expected.push(b'\n');
        assert_eq!(MiReply::ok(many).encode("\t"), expected);

        // A line longer than the buffer: what was buffered is written, then nothing.
        let huge = MiReply::ok(vec![Node::value("a"), Node::value("x".repeat(WRITE_BUF))]);
        assert_eq!(huge.encode("\t"), b"200 OK\na\n".to_vec());
        // A line that fills an empty buffer exactly leaves no room for the final empty
        // line: the buffered line is dropped too ("EOC does not fit").
        let full = MiReply::ok(vec![Node::value("x".repeat(WRITE_BUF - 1))]);
        assert_eq!(full.encode("\t"), b"200 OK\n".to_vec());
        let fits = MiReply::ok(vec![Node::value("x".repeat(WRITE_BUF - 2))]);
        assert_eq!(fits.encode("\t").len(), 7 + (WRITE_BUF - 1) + 1);
        // A NUL byte cuts the flushed chunk.
        let nul = MiReply::ok(vec![Node::value("a\0b")]);
        assert_eq!(nul.encode("\t"), b"200 OK\na".to_vec());
    }

    #[test]
    fn error_lines() {
        assert_eq!(
            not_available(b"x"),
            b"500 command 'x' not available\n".to_vec()
        );
        assert_eq!(
            parse_error(b"x"),
            b"400 parse error in command 'x'\n".to_vec()
        );
        assert_eq!(failed(b"kill"), b"500 command 'kill' failed\n".to_vec());
    }
}
