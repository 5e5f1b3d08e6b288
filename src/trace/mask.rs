//! Secrets masked out of the bytes a trace row stores and a mirrored copy
//! carries (docs/decisions.md §13): the Digest `response` and `cnonce` of
//! Authorization/Proxy-Authorization, the key||salt of SDP `a=crypto` lines
//! (RFC 4568), and the whole value of configured headers. Each masked byte
//! becomes `x`, so lengths, Content-Length and every other byte stay as
//! they were; the message relayed on the wire is never given to this module.
//!
//! Pure: bytes in, [`Cow`] out, borrowed (no allocation) when there is
//! nothing to mask. Finds header lines with sip's scanner ([`HeaderLines`]);
//! may not depend on the core, sockets or the clock.

use std::borrow::Cow;
use std::ops::Range;

use crate::sip::{HeaderKind, HeaderLines};

/// What to mask, as configured (`mask`, `mask_headers` modparams).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskSettings {
    /// Digest `response=`/`cnonce=` in Authorization and Proxy-Authorization.
    pub auth: bool,
    /// SDP `a=crypto` key material.
    pub crypto: bool,
    /// Header names whose values are masked whole.
    pub headers: Vec<String>,
}

impl Default for MaskSettings {
    /// On by default (docs/decisions.md §13): a trace table is read by more
    /// people than the proxy's secrets should reach.
    fn default() -> Self {
        MaskSettings {
            auth: true,
            crypto: true,
            headers: Vec::new(),
        }
    }
}

/// A `mask`/`mask_headers` value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MaskError {
    #[error("unknown mask \"{0}\": use a comma-separated list of auth and crypto, or none")]
    UnknownKind(String),
    #[error("\"none\" cannot be combined with other masks: use \"none\" alone")]
    NoneWithOthers,
    #[error("\"{0}\" is not a header name (letters, digits and -.!%*_+`'~ only)")]
    BadHeaderName(String),
    #[error("empty list: name at least one header, or remove the modparam")]
    NoHeaders,
}

impl MaskSettings {
    /// Sets `auth`/`crypto` from a `mask` value: `"auth,crypto"`, any
    /// subset, or `"none"`.
    pub fn set_kinds(&mut self, v: &str) -> Result<(), MaskError> {
        let names: Vec<&str> = v
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        let (mut auth, mut crypto) = (false, false);
        for n in &names {
            match n.to_ascii_lowercase().as_str() {
                "auth" => auth = true,
                "crypto" => crypto = true,
                "none" if names.len() == 1 => {}
                "none" => return Err(MaskError::NoneWithOthers),
                _ => return Err(MaskError::UnknownKind(n.to_string())),
            }
        }
        if names.is_empty() {
            return Err(MaskError::UnknownKind(v.to_string()));
        }
        self.auth = auth;
        self.crypto = crypto;
        Ok(())
    }

    /// Sets the header list from a `mask_headers` value: `"X-Secret,P-Token"`.
    pub fn set_headers(&mut self, v: &str) -> Result<(), MaskError> {
        let mut out = Vec::new();
        for n in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if !n.bytes().all(is_token) {
                return Err(MaskError::BadHeaderName(n.to_string()));
            }
            out.push(n.to_string());
        }
        if out.is_empty() {
            return Err(MaskError::NoHeaders);
        }
        self.headers = out;
        Ok(())
    }
}

/// [`MaskSettings`] made ready to apply: header names resolved once.
#[derive(Debug, Clone)]
pub struct Masker {
    auth: bool,
    crypto: bool,
    /// (kind, name): a known kind matches its compact form too.
    headers: Vec<(HeaderKind, Box<[u8]>)>,
}

impl Masker {
    pub fn new(s: &MaskSettings) -> Masker {
        Masker {
            auth: s.auth,
            crypto: s.crypto,
            headers: s
                .headers
                .iter()
                .map(|h| (HeaderKind::of(h.as_bytes()), h.as_bytes().into()))
                .collect(),
        }
    }

    fn is_off(&self) -> bool {
        !self.auth && !self.crypto && self.headers.is_empty()
    }

    /// `msg` with its secrets replaced by `x`s of the same length; borrowed
    /// when nothing was masked. Bytes that do not scan as a SIP header
    /// block are returned as they are: masking never refuses to trace.
    pub fn mask<'a>(&self, msg: &'a [u8]) -> Cow<'a, [u8]> {
        if self.is_off() || u32::try_from(msg.len()).is_err() || !self.may_have_secrets(msg) {
            return Cow::Borrowed(msg);
        }
        let mut out = Blanker::new(msg);
        let mut lines = HeaderLines::of_message(msg);
        let mut content_type = None;
        let mut content_length = None;
        for h in &mut lines {
            let Ok(h) = h else {
                return out.finish();
            };
            let name = &msg[h.name.range()];
            let value = h.value.range();
            if self.masks_header(h.kind, name) {
                out.blank(value);
                continue;
            }
            match h.kind {
                HeaderKind::ContentType => content_type = Some(value),
                HeaderKind::ContentLength => content_length = Some(value),
                HeaderKind::Other if self.auth && is_credentials(name) => {
                    digest_secrets(msg, value, &mut out);
                }
                _ => {}
            }
        }
        if self.crypto
            && let (Some(start), Some(ct)) = (lines.body_start, content_type)
        {
            let declared = content_length.and_then(|r| {
                std::str::from_utf8(&msg[r])
                    .ok()?
                    .trim()
                    .parse::<usize>()
                    .ok()
            });
            let end = declared.map_or(msg.len(), |n| msg.len().min(start.saturating_add(n)));
            body_crypto(msg, &msg[ct], start..end, &mut out);
        }
        out.finish()
    }

    /// A cheap look before the header scan, since most traced messages
    /// carry no secret: false only when [`Masker::mask`] would find nothing
    /// (no `a=crypto:` anywhere, no header line starting with a credentials
    /// name). Configured headers always take the full scan.
    fn may_have_secrets(&self, msg: &[u8]) -> bool {
        if !self.headers.is_empty() {
            return true;
        }
        if self.crypto && memchr::memmem::find(msg, b"a=crypto:").is_some() {
            return true;
        }
        if !self.auth {
            return false;
        }
        let skip = msg
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
        let msg = &msg[skip..];
        for lf in memchr::memchr_iter(b'\n', msg) {
            let line = &msg[lf + 1..];
            if line.starts_with(b"\r\n") || line.starts_with(b"\n") {
                break;
            }
            let starts = |name: &[u8]| {
                line.len() >= name.len() && line[..name.len()].eq_ignore_ascii_case(name)
            };
            if starts(b"Authorization") || starts(b"Proxy-Authorization") {
                return true;
            }
        }
        false
    }

    fn masks_header(&self, kind: HeaderKind, name: &[u8]) -> bool {
        self.headers
            .iter()
            .any(|(k, n)| *k == kind && (kind != HeaderKind::Other || n.eq_ignore_ascii_case(name)))
    }
}

fn is_credentials(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"Authorization") || name.eq_ignore_ascii_case(b"Proxy-Authorization")
}

/// RFC 3261 §25.1 token characters.
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// The copy, made on the first masked byte only.
struct Blanker<'a> {
    src: &'a [u8],
    owned: Option<Vec<u8>>,
}

impl<'a> Blanker<'a> {
    fn new(src: &'a [u8]) -> Blanker<'a> {
        Blanker { src, owned: None }
    }

    /// Line ends and the whitespace that opens a continuation line stay:
    /// a masked folded value must remain one header.
    fn blank(&mut self, r: Range<usize>) {
        if r.is_empty() {
            return;
        }
        let buf = self.owned.get_or_insert_with(|| self.src.to_vec());
        let mut line_start = false;
        for b in &mut buf[r] {
            match *b {
                b'\r' => {}
                b'\n' => line_start = true,
                b' ' | b'\t' if line_start => {}
                _ => {
                    line_start = false;
                    *b = b'x';
                }
            }
        }
    }

    fn finish(self) -> Cow<'a, [u8]> {
        match self.owned {
            Some(v) => Cow::Owned(v),
            None => Cow::Borrowed(self.src),
        }
    }
}

/// `response` and `cnonce` values of every credential in a header value
/// (`Digest a=b, c="d", Digest …`): quoted or not, the quotes kept.
fn digest_secrets(msg: &[u8], value: Range<usize>, out: &mut Blanker<'_>) {
    let v = &msg[..value.end];
    let mut i = value.start;
    while i < v.len() {
        if is_lws(v[i]) || v[i] == b',' {
            i += 1;
            continue;
        }
        let name_start = i;
        while i < v.len() && is_token(v[i]) {
            i += 1;
        }
        if i == name_start {
            // Not a token (a stray quote or separator): step over it.
            i = if v[i] == b'"' {
                skip_quoted(v, i)
            } else {
                i + 1
            };
            continue;
        }
        let name = &v[name_start..i];
        let mut j = i;
        while j < v.len() && is_lws(v[j]) {
            j += 1;
        }
        if j >= v.len() || v[j] != b'=' {
            // An auth scheme (`Digest`), not a parameter.
            i = j;
            continue;
        }
        j += 1;
        while j < v.len() && is_lws(v[j]) {
            j += 1;
        }
        let secret = name.eq_ignore_ascii_case(b"response") || name.eq_ignore_ascii_case(b"cnonce");
        if j < v.len() && v[j] == b'"' {
            let close = skip_quoted(v, j);
            let inner_end = if close > j + 1 && v.get(close - 1) == Some(&b'"') {
                close - 1
            } else {
                close
            };
            if secret {
                out.blank(j + 1..inner_end);
            }
            i = close;
        } else {
            let start = j;
            while j < v.len() && !is_lws(v[j]) && v[j] != b',' {
                j += 1;
            }
            if secret {
                out.blank(start..j);
            }
            i = j;
        }
    }
}

/// Index just past the quoted string opening at `at` (RFC 3261 §25.1,
/// `\` escapes), or the end when it is not closed.
fn skip_quoted(v: &[u8], at: usize) -> usize {
    let mut i = at + 1;
    while i < v.len() {
        match v[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    v.len()
}

/// The media type of a Content-Type value, and its `boundary` parameter.
fn media_type(ct: &[u8]) -> (&[u8], Option<&[u8]>) {
    let mut parts = ct.split(|&b| b == b';');
    let ty = trim(parts.next().unwrap_or_default());
    let boundary = parts.find_map(|p| {
        let (n, v) = p.split_at(p.iter().position(|&b| b == b'=')?);
        trim(n).eq_ignore_ascii_case(b"boundary").then(|| {
            let v = trim(&v[1..]);
            v.strip_prefix(b"\"")
                .and_then(|v| v.strip_suffix(b"\""))
                .unwrap_or(v)
        })
    });
    (ty, boundary)
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| !is_lws(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|&b| !is_lws(b)).map_or(start, |e| e + 1);
    &s[start..end]
}

/// Crypto keys in an application/sdp body, or in the application/sdp parts
/// of a multipart body (one level: nested multiparts are left as they are).
fn body_crypto(msg: &[u8], ct: &[u8], body: Range<usize>, out: &mut Blanker<'_>) {
    let (ty, boundary) = media_type(ct);
    if ty.eq_ignore_ascii_case(b"application/sdp") {
        sdp_crypto(msg, body, out);
        return;
    }
    if ty.len() < 10 || !ty[..10].eq_ignore_ascii_case(b"multipart/") {
        return;
    }
    let Some(boundary) = boundary.filter(|b| !b.is_empty()) else {
        return;
    };
    for part in multipart_parts(msg, body, boundary) {
        let mut lines = HeaderLines::new(msg, part.start);
        let mut part_ct = None;
        for h in &mut lines {
            let Ok(h) = h else { break };
            if h.kind == HeaderKind::ContentType {
                part_ct = Some(h.value.range());
            }
        }
        if let (Some(start), Some(ct)) = (lines.body_start, part_ct)
            && start <= part.end
            && media_type(&msg[ct])
                .0
                .eq_ignore_ascii_case(b"application/sdp")
        {
            sdp_crypto(msg, start..part.end, out);
        }
    }
}

/// The parts between `--boundary` delimiter lines (RFC 2046 §5.1.1), each
/// from its first header line to the CRLF before the next delimiter.
fn multipart_parts<'a>(
    msg: &'a [u8],
    body: Range<usize>,
    boundary: &'a [u8],
) -> impl Iterator<Item = Range<usize>> + 'a {
    let end = body.end;
    let delimiter_at = move |from: usize| -> Option<usize> {
        let mut i = from;
        while i + 2 + boundary.len() <= end {
            let line_start = i == body.start || msg[i - 1] == b'\n';
            if line_start && msg[i..].starts_with(b"--") && msg[i + 2..].starts_with(boundary) {
                return Some(i);
            }
            i += 1;
        }
        None
    };
    let mut current = delimiter_at(body.start);
    std::iter::from_fn(move || {
        let d = current?;
        let after = d + 2 + boundary.len();
        if msg[after..end].starts_with(b"--") {
            return None;
        }
        let start = msg[after..end].iter().position(|&b| b == b'\n')? + after + 1;
        let next = delimiter_at(start);
        current = next;
        let mut stop = next.unwrap_or(end);
        // The line end before the delimiter belongs to it.
        if stop > start && msg[stop - 1] == b'\n' {
            stop -= 1;
            if stop > start && msg[stop - 1] == b'\r' {
                stop -= 1;
            }
        }
        Some(start..stop)
    })
}

/// RFC 4568 §9.1: `a=crypto:<tag> <suite> <key-params> [<session-params>]`,
/// key-params `inline:<key||salt>[|lifetime][|MKI:length]` joined by `;`.
/// Only key||salt is secret; the rest says how it is used.
fn sdp_crypto(msg: &[u8], body: Range<usize>, out: &mut Blanker<'_>) {
    const PREFIX: &[u8] = b"a=crypto:";
    let mut line = body.start;
    while line < body.end {
        let eol = msg[line..body.end]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(body.end, |p| line + p);
        if msg[line..eol].starts_with(PREFIX) {
            crypto_line(msg, line + PREFIX.len(), eol, out);
        }
        line = eol + 1;
    }
}

fn crypto_line(msg: &[u8], from: usize, eol: usize, out: &mut Blanker<'_>) {
    let is_sp = |b: u8| b == b' ' || b == b'\t' || b == b'\r';
    let mut i = from;
    // Tag, then suite.
    for _ in 0..2 {
        while i < eol && !is_sp(msg[i]) {
            i += 1;
        }
        while i < eol && is_sp(msg[i]) {
            i += 1;
        }
    }
    let key_params_end = msg[i..eol]
        .iter()
        .position(|&b| is_sp(b))
        .map_or(eol, |p| i + p);
    for kp in split_ranges(msg, i..key_params_end, b';') {
        let p = &msg[kp.clone()];
        if p.len() >= 7 && p[..7].eq_ignore_ascii_case(b"inline:") {
            let key_start = kp.start + 7;
            let key_end = msg[key_start..kp.end]
                .iter()
                .position(|&b| b == b'|')
                .map_or(kp.end, |q| key_start + q);
            out.blank(key_start..key_end);
        }
    }
}

fn split_ranges(msg: &[u8], r: Range<usize>, sep: u8) -> impl Iterator<Item = Range<usize>> + '_ {
    let mut at = r.start;
    let end = r.end;
    std::iter::from_fn(move || {
        if at > end {
            return None;
        }
        let stop = msg[at..end]
            .iter()
            .position(|&b| b == sep)
            .map_or(end, |p| at + p);
        let piece = at..stop;
        at = stop + 1;
        Some(piece)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message from header lines and a body written with `\n`: lines get
    /// CRLF, Content-Length is computed, and `{…}` marks a secret. Returns
    /// (the message, the message with each secret as `x`s).
    fn build(headers: &str, body: &str) -> (Vec<u8>, Vec<u8>) {
        let body = body.replace('\n', "\r\n");
        let plain_len = body.replace(['{', '}'], "").len();
        let text = format!(
            "INVITE sip:bob@example.com SIP/2.0\r\n{}Content-Length: {plain_len}\r\n\r\n{body}",
            headers.replace('\n', "\r\n"),
        );
        let (mut plain, mut masked, mut inside) = (Vec::new(), Vec::new(), false);
        for b in text.bytes() {
            match b {
                b'{' => inside = true,
                b'}' => inside = false,
                _ => {
                    plain.push(b);
                    masked.push(if inside { b'x' } else { b });
                }
            }
        }
        (plain, masked)
    }

    const BASE: &str = "Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\nCall-ID: c1\nCSeq: 1 INVITE\n";

    fn settings(auth: bool, crypto: bool, headers: &[&str]) -> MaskSettings {
        MaskSettings {
            auth,
            crypto,
            headers: headers.iter().map(|s| s.to_string()).collect(),
        }
    }

    const SDP_TWO_CRYPTO: &str = "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\nm=audio 4000 RTP/SAVP 0\n\
        a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR}|2^20|1:32\n\
        a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj};inline:{QUJjZGVmMTIzNDU2Nzg5QUJDREUwMTIzNDU2Nzg5}|2^20|2:4 KDR=1 UNENCRYPTED_SRTCP\n";

    #[test]
    fn the_precheck_never_skips_a_message_with_secrets() {
        let m = Masker::new(&MaskSettings::default());
        let (plain, _) = build(BASE, "v=0\na=rtpmap:0 PCMU/8000\n");
        assert!(!m.may_have_secrets(&plain));
        assert!(matches!(m.mask(&plain), Cow::Borrowed(_)));
        for (what, headers, body) in [
            (
                "upper case",
                format!("{BASE}PROXY-AUTHORIZATION: Digest response=\"{{ab}}\"\n"),
                "",
            ),
            (
                "space before the colon",
                format!("{BASE}Authorization : Digest cnonce={{cd}}\n"),
                "",
            ),
            (
                "crypto only",
                format!("{BASE}Content-Type: application/sdp\n"),
                "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}\n",
            ),
        ] {
            let (msg, want) = build(&headers, body);
            assert!(m.may_have_secrets(&msg), "{what}");
            assert_eq!(m.mask(&msg).as_ref(), &want[..], "{what}");
        }
        // CRLFs before the start line (RFC 3261 §7.5) do not hide a header.
        let (msg, want) = build(
            &format!("{BASE}Authorization: Digest response={{ef}}\n"),
            "",
        );
        let lead = [b"\r\n\r\n".as_slice(), &msg].concat();
        assert_eq!(
            m.mask(&lead).as_ref(),
            &[b"\r\n\r\n".as_slice(), &want].concat()[..]
        );
        // Credentials named only in the body are not a header: no scan.
        let (body_only, _) = build(BASE, "Authorization: Digest response=1\n");
        assert!(!m.may_have_secrets(&body_only));
    }

    /// (what, settings, header lines, body); `{…}` in either is what must
    /// be masked.
    #[test]
    fn masks_exactly_the_secrets() {
        let all = MaskSettings::default();
        let cases: &[(&str, MaskSettings, String, &str)] = &[
            (
                "quoted response and cnonce, other params untouched",
                all.clone(),
                format!(
                    "{BASE}Authorization: Digest username=\"alice\", realm=\"example.com\", nonce=\"abc\", uri=\"sip:bob@example.com\", response=\"{{6629fae49393a05397450978507c4ef1}}\", algorithm=MD5, cnonce=\"{{0a4f113b}}\", qop=auth, nc=00000001\n"
                ),
                "",
            ),
            (
                "unquoted values, odd spacing and case",
                all.clone(),
                format!(
                    "{BASE}authorization:Digest username=alice,RESPONSE = {{6629fae49393a05397450978507c4ef1}} , CNonce={{0a4f113b}},nc=1\n"
                ),
                "",
            ),
            (
                "Proxy-Authorization, lower case",
                all.clone(),
                format!(
                    "{BASE}proxy-authorization: Digest username=\"a\", nonce=\"n\", response=\"{{d41d8cd98f00b204e9800998ecf8427e}}\"\n"
                ),
                "",
            ),
            (
                "two credentials in one header, two headers",
                all.clone(),
                format!(
                    "{BASE}Authorization: Digest username=\"a\", realm=\"r1\", response=\"{{aaaa1111}}\", Digest username=\"b\", realm=\"r2\", response={{bbbb2222}}, cnonce=\"{{cc}}\"\nProxy-Authorization: Digest username=\"p\", response=\"{{eeee}}\"\n"
                ),
                "",
            ),
            (
                "folded credentials; an escaped quote in another param",
                all.clone(),
                format!(
                    "{BASE}Authorization: Digest username=\"a\\\"b, response=\\\"no\", realm=\"r\",\n response=\"{{f00d}}\"\n"
                ),
                "",
            ),
            (
                "two a=crypto lines with lifetime, MKI, two key-params, session params",
                all.clone(),
                format!("{BASE}Content-Type: application/sdp\n"),
                SDP_TWO_CRYPTO,
            ),
            (
                "compact Content-Type and parameters on it",
                all.clone(),
                format!("{BASE}c: Application/SDP; charset=utf-8\n"),
                "v=0\na=crypto:7 F8_128_HMAC_SHA1_80 inline:{MTIzNDU2Nzg5QUJDREUwMTIzNDU2Nzg5QUJDREVG}\n",
            ),
            (
                "multipart/mixed with an application/sdp part",
                all.clone(),
                format!("{BASE}Content-Type: multipart/mixed;boundary=\"b1\"\n"),
                "--b1\nContent-Type: application/sdp\n\nv=0\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz}|2^20\n--b1\nContent-Type: text/plain\n\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:notakey\n--b1--\n",
            ),
            (
                "a=crypto in a body that is not SDP stays",
                all.clone(),
                format!("{BASE}Content-Type: text/plain\n"),
                "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:notakey\n",
            ),
            (
                "mask_headers: whole values, compact names, folds kept",
                settings(false, false, &["X-Secret", "Subject"]),
                format!(
                    "{BASE}X-Secret: {{top secret}}\nx-secret:{{a,}}\n {{b}}\ns: {{hi}}\nX-Secret-Not: shown\nAuthorization: Digest response=\"shown\"\n"
                ),
                "",
            ),
            (
                "auth only: crypto kept",
                settings(true, false, &[]),
                format!(
                    "{BASE}Authorization: Digest response=\"{{abcd}}\"\nContent-Type: application/sdp\n"
                ),
                "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR\n",
            ),
            (
                "crypto only: credentials kept",
                settings(false, true, &[]),
                format!(
                    "{BASE}Authorization: Digest response=\"abcd\"\nContent-Type: application/sdp\n"
                ),
                "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR}\n",
            ),
        ];
        for (what, s, headers, body) in cases {
            let (plain, want) = build(headers, body);
            let got = Masker::new(s).mask(&plain);
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&want),
                "{what}"
            );
            assert_eq!(got.len(), plain.len(), "{what}");
            assert_eq!(matches!(got, Cow::Owned(_)), plain != want, "{what}");
        }
    }

    /// Nothing to mask, or masking off: the very same bytes, not a copy.
    #[test]
    fn nothing_to_mask_is_borrowed() {
        let none = {
            let mut s = MaskSettings::default();
            s.set_kinds("none").unwrap();
            s
        };
        let (secret, _) = build(
            &format!(
                "{BASE}Authorization: Digest response=\"abcd\"\nContent-Type: application/sdp\n"
            ),
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR\n",
        );
        let (plain, _) = build(
            &format!("{BASE}Authorization: Digest username=\"a\"\nContent-Type: application/sdp\n"),
            "v=0\nm=audio 4000 RTP/AVP 0\n",
        );
        let cases: &[(&str, MaskSettings, &[u8])] = &[
            ("nothing to mask", MaskSettings::default(), &plain),
            ("mask none", none, &secret),
            ("not SIP", MaskSettings::default(), b"\x00\x01 garbage"),
            (
                "no end of headers",
                MaskSettings::default(),
                b"INVITE x SIP/2.0\r\nAuthorization: Digest response=1",
            ),
            ("empty", MaskSettings::default(), b""),
        ];
        for (what, s, msg) in cases {
            let got = Masker::new(s).mask(msg);
            assert!(
                matches!(got, Cow::Borrowed(b) if std::ptr::eq(b, *msg)),
                "{what}"
            );
        }
    }

    #[test]
    fn settings_parse() {
        type Want = Result<(bool, bool), MaskError>;
        let cases: &[(&str, Want)] = &[
            ("auth,crypto", Ok((true, true))),
            (" crypto ", Ok((false, true))),
            ("AUTH", Ok((true, false))),
            ("none", Ok((false, false))),
            ("none,auth", Err(MaskError::NoneWithOthers)),
            ("auth,keys", Err(MaskError::UnknownKind("keys".into()))),
            ("", Err(MaskError::UnknownKind(String::new()))),
        ];
        for (v, want) in cases {
            let mut s = MaskSettings::default();
            let got = s.set_kinds(v).map(|()| (s.auth, s.crypto));
            assert_eq!(&got, want, "{v:?}");
        }
        let mut s = MaskSettings::default();
        s.set_headers("X-Secret, P-Token").unwrap();
        assert_eq!(s.headers, ["X-Secret", "P-Token"]);
        assert_eq!(
            s.set_headers("X-Secret,Bad Name"),
            Err(MaskError::BadHeaderName("Bad Name".into()))
        );
        assert_eq!(s.set_headers(" , "), Err(MaskError::NoHeaders));
    }

    /// Cost on a plain INVITE with SDP (nothing to mask) and on one with
    /// credentials and two crypto lines. Run:
    /// `cargo test --release --lib mask::tests::cost -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn cost() {
        let (plain, _) = build(
            &format!(
                "{BASE}From: <sip:alice@example.com>;tag=1\nTo: <sip:bob@example.com>\nMax-Forwards: 70\nContact: <sip:alice@10.0.0.1>\nUser-Agent: x\nAllow: INVITE, ACK, BYE\nContent-Type: application/sdp\n"
            ),
            "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\nm=audio 4000 RTP/AVP 0 8 101\na=rtpmap:0 PCMU/8000\na=rtpmap:8 PCMA/8000\na=rtpmap:101 telephone-event/8000\na=sendrecv\n",
        );
        let (secret, _) = build(
            &format!(
                "{BASE}Authorization: Digest username=\"a\", response=\"6629fae49393a05397450978507c4ef1\", cnonce=\"0a4f113b\"\nContent-Type: application/sdp\n"
            ),
            &SDP_TWO_CRYPTO.replace(['{', '}'], ""),
        );
        let m = Masker::new(&MaskSettings::default());
        for (what, msg) in [("plain INVITE", &plain), ("INVITE with secrets", &secret)] {
            let n = 200_000u32;
            let t = std::time::Instant::now();
            for _ in 0..n {
                std::hint::black_box(m.mask(std::hint::black_box(msg)));
            }
            let masked = t.elapsed() / n;
            // The scan every received datagram already pays, for scale.
            let t = std::time::Instant::now();
            for _ in 0..n {
                let _ = std::hint::black_box(crate::sip::SipMsg::parse(std::hint::black_box(msg)));
            }
            let parsed = t.elapsed() / n;
            println!(
                "{what} ({} bytes): mask {masked:?}/msg, SipMsg::parse {parsed:?}/msg",
                msg.len()
            );
        }
    }
}
