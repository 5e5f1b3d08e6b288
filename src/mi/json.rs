//! JSON values as Kamailio's jsonrpcs module reads and prints them.
//!
//! Kamailio parses and prints JSON with `srjson`, a fork of the 2009 cJSON. To answer
//! JSON-RPC byte for byte like Kamailio 5.6 (the vectors in
//! tests/data/jsonrpc-vectors), this file reproduces srjson's behaviour rather than
//! RFC 8259's: what the parser accepts (a leading `0` before digits, a bare `-`, raw
//! control bytes inside strings, any `\x` escape meaning `x`, trailing text after the
//! root value ignored, a NUL byte ending the input), how `\uXXXX` escapes become UTF-8
//! (surrogate pairs joined, lone or invalid surrogates and `\u0000` dropped), and how
//! numbers and containers are printed (`%d` for integral values in `int` range, else
//! `%.0f`/`%e`/`%f`; arrays always on one line as `[a, b]`; objects one member per line,
//! TAB-indented, `"key":<TAB>value`; no trailing newline).
//!
//! Strings are bytes, not `String`: srjson copies bytes verbatim, and a reply must echo
//! a client's non-UTF-8 `id` exactly.
//!
//! Pure data code: no I/O, no clock, no logging; never panics on input.

use std::fmt;

/// A JSON value. Object members keep their order (replies print in insertion order and
/// Kamailio looks members up first-match).
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    /// An integer literal (no fraction, no exponent) whose value is exact in an `f64`.
    Int(i64),
    /// Any other number, with the value srjson computes for it.
    Float(f64),
    Str(Vec<u8>),
    Arr(Vec<Json>),
    Obj(Vec<(Vec<u8>, Json)>),
}

/// Nesting deeper than this is refused. srjson recurses without a limit; a FIFO document
/// is at most 8190 bytes, so this only bounds our own stack for pathological input.
const MAX_DEPTH: usize = 512;

/// Largest magnitude below which every integer is exact in an `f64` (2^53).
const F64_EXACT_INT: f64 = 9_007_199_254_740_992.0;

/// Why a document is not JSON (as srjson would refuse it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Byte offset where parsing stopped.
    pub offset: usize,
    pub kind: ParseErrorKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseErrorKind {
    /// The input ended (or hit a NUL byte) where a value or delimiter was needed.
    UnexpectedEnd,
    /// This byte cannot start a value or continue the container here.
    UnexpectedByte(u8),
    /// `\u` not followed by four hex digits.
    BadUnicodeEscape,
    /// An object key is not a string.
    KeyNotString,
    /// More than 512 nested arrays/objects (our stack bound; see `MAX_DEPTH`).
    TooDeep,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ParseErrorKind::UnexpectedEnd => {
                write!(f, "invalid JSON: input ends at byte {}", self.offset)
            }
            ParseErrorKind::UnexpectedByte(b) => write!(
                f,
                "invalid JSON: unexpected {:?} at byte {}",
                char::from(b),
                self.offset
            ),
            ParseErrorKind::BadUnicodeEscape => write!(
                f,
                "invalid JSON: \\u escape without four hex digits at byte {}",
                self.offset
            ),
            ParseErrorKind::KeyNotString => write!(
                f,
                "invalid JSON: object key is not a string at byte {}",
                self.offset
            ),
            ParseErrorKind::TooDeep => write!(
                f,
                "invalid JSON: nested deeper than {MAX_DEPTH} levels at byte {}",
                self.offset
            ),
        }
    }
}

impl std::error::Error for ParseError {}

impl Json {
    /// A string value from text.
    pub fn str(s: &str) -> Json {
        Json::Str(s.as_bytes().to_vec())
    }

    /// An object from `(key, value)` pairs, in order.
    pub(crate) fn obj(members: Vec<(&str, Json)>) -> Json {
        Json::Obj(
            members
                .into_iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v))
                .collect(),
        )
    }

    /// An unsigned counter as a number.
    pub(crate) fn uint(n: u64) -> Json {
        // Counters beyond i64::MAX cannot happen in practice; saturate rather than wrap.
        Json::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }

    /// Member lookup as srjson's `GetObjectItem`: ASCII case-insensitive, first match.
    /// `None` for a missing member or a non-object.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Obj(members) => members
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key.as_bytes()))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The bytes of a string value.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }

    /// srjson's `valuedouble`: numbers as themselves, `true` as 1, everything else 0.
    pub(crate) fn as_f64(&self) -> f64 {
        match self {
            Json::Int(i) => *i as f64,
            Json::Float(f) => *f,
            Json::Bool(true) => 1.0,
            _ => 0.0,
        }
    }

    /// srjson's numeric type codes, which Kamailio logs ("field is not a string - type 3").
    pub fn srjson_type(&self) -> u8 {
        match self {
            Json::Bool(false) => 0,
            Json::Bool(true) => 1,
            Json::Null => 2,
            Json::Int(_) | Json::Float(_) => 3,
            Json::Str(_) => 4,
            Json::Arr(_) => 5,
            Json::Obj(_) => 6,
        }
    }

    /// The children srjson iterates for `params`: array elements, or object member
    /// values in order (names ignored); nothing for scalars.
    pub fn children(&self) -> Vec<&Json> {
        match self {
            Json::Arr(items) => items.iter().collect(),
            Json::Obj(members) => members.iter().map(|(_, v)| v).collect(),
            _ => Vec::new(),
        }
    }

    /// `srjson_Print`: the TAB-indented layout jsonrpcs uses with `pretty_format=1`.
    pub(crate) fn to_pretty(&self) -> Vec<u8> {
        let mut out = Vec::new();
        print_value(self, 0, true, &mut out);
        out
    }

    /// `srjson_PrintUnformatted` (`pretty_format=0`).
    pub(crate) fn to_compact(&self) -> Vec<u8> {
        let mut out = Vec::new();
        print_value(self, 0, false, &mut out);
        out
    }
}

/// Parse one value as `srjson_Parse` does: leading bytes <= 0x20 are skipped, anything
/// after the value is ignored, a NUL byte ends the input.
pub fn parse(input: &[u8]) -> Result<Json, ParseError> {
    let end = input.iter().position(|&b| b == 0).unwrap_or(input.len());
    let mut p = Parser {
        b: &input[..end],
        depth: 0,
    };
    let start = p.skip(0);
    p.value(start).map(|(v, _)| v)
}

/// A parsed value and the offset just after it.
type Parsed = Result<(Json, usize), ParseError>;

struct Parser<'a> {
    b: &'a [u8],
    depth: usize,
}

impl Parser<'_> {
    fn at(&self, i: usize) -> Option<u8> {
        self.b.get(i).copied()
    }

    /// srjson `skip`: every byte from 1 to 32 counts as white space.
    fn skip(&self, mut i: usize) -> usize {
        while matches!(self.at(i), Some(1..=32)) {
            i += 1;
        }
        i
    }

    fn err(&self, offset: usize, kind: ParseErrorKind) -> ParseError {
        ParseError { offset, kind }
    }

    fn unexpected(&self, i: usize) -> ParseError {
        match self.at(i) {
            Some(b) => self.err(i, ParseErrorKind::UnexpectedByte(b)),
            None => self.err(i, ParseErrorKind::UnexpectedEnd),
        }
    }

    fn value(&mut self, i: usize) -> Parsed {
        let rest = &self.b[i.min(self.b.len())..];
        // srjson compares with strncmp: a prefix match, whatever follows.
        if rest.starts_with(b"null") {
            return Ok((Json::Null, i + 4));
        }
        if rest.starts_with(b"false") {
            return Ok((Json::Bool(false), i + 5));
        }
        if rest.starts_with(b"true") {
            return Ok((Json::Bool(true), i + 4));
        }
        match self.at(i) {
            Some(b'"') => self.string(i).map(|(s, j)| (Json::Str(s), j)),
            Some(b'-' | b'0'..=b'9') => Ok(self.number(i)),
            Some(b'[') => self.nested(i, Self::array),
            Some(b'{') => self.nested(i, Self::object),
            _ => Err(self.unexpected(i)),
        }
    }

    fn nested(&mut self, i: usize, f: fn(&mut Self, usize) -> Parsed) -> Parsed {
        if self.depth >= MAX_DEPTH {
            return Err(self.err(i, ParseErrorKind::TooDeep));
        }
        self.depth += 1;
        let r = f(self, i);
        self.depth -= 1;
        r
    }

    fn digit(&self, i: usize) -> Option<u8> {
        self.at(i).filter(u8::is_ascii_digit).map(|d| d - b'0')
    }

    /// srjson `parse_number`, including its accumulation order (so the double is the
    /// one Kamailio computes) and its leniency: `-` alone is 0, one leading `0` may be
    /// followed by more digits, `1.` stops before the dot, an exponent may have no digits.
    fn number(&self, mut i: usize) -> (Json, usize) {
        let mut n = 0.0_f64;
        let mut sign = 1.0_f64;
        let mut scale = 0.0_f64;
        let mut subscale: i32 = 0;
        let mut signsubscale: i32 = 1;
        let mut integral = true;
        let mut any_digit = false;
        if self.at(i) == Some(b'-') {
            sign = -1.0;
            i += 1;
        }
        if self.at(i) == Some(b'0') {
            i += 1;
            any_digit = true;
        }
        if matches!(self.at(i), Some(b'1'..=b'9')) {
            while let Some(d) = self.digit(i) {
                n = n * 10.0 + f64::from(d);
                i += 1;
            }
            any_digit = true;
        }
        if self.at(i) == Some(b'.') && self.digit(i + 1).is_some() {
            i += 1;
            integral = false;
            while let Some(d) = self.digit(i) {
                n = n * 10.0 + f64::from(d);
                scale -= 1.0;
                i += 1;
            }
        }
        if matches!(self.at(i), Some(b'e' | b'E')) {
            integral = false;
            i += 1;
            match self.at(i) {
                Some(b'+') => i += 1,
                Some(b'-') => {
                    signsubscale = -1;
                    i += 1;
                }
                _ => {}
            }
            while let Some(d) = self.digit(i) {
                // Newer srjson saturates instead of overflowing the int.
                let d = i32::from(d);
                subscale = if subscale > (i32::MAX - d) / 10 {
                    i32::MAX
                } else {
                    subscale * 10 + d
                };
                i += 1;
            }
        }
        let exp = scale + f64::from(subscale) * f64::from(signsubscale);
        // glibc's pow, as srjson calls it (powi would round differently).
        let value = sign * n * 10.0_f64.powf(exp);
        let v = if integral && any_digit && value.abs() <= F64_EXACT_INT && value.fract() == 0.0 {
            Json::Int(value as i64)
        } else {
            Json::Float(value)
        };
        (v, i)
    }

    fn hex4(&self, i: usize) -> Option<u32> {
        let s = self.b.get(i..i + 4)?;
        let mut v = 0u32;
        for &c in s {
            v = v * 16 + char::from(c).to_digit(16)?;
        }
        Some(v)
    }

    /// srjson `parse_string`. An unterminated string at the end of the input is accepted
    /// (srjson stops at the NUL); the caller then fails on the missing delimiter.
    fn string(&self, start: usize) -> Result<(Vec<u8>, usize), ParseError> {
        // First pass: srjson validates `\u` escapes and a trailing backslash up front.
        let mut p = start + 1;
        while let Some(c) = self.at(p) {
            if c == b'"' {
                break;
            }
            p += 1;
            if c == b'\\' {
                match self.at(p) {
                    Some(b'u') => {
                        if self.hex4(p + 1).is_none() {
                            return Err(self.err(p, ParseErrorKind::BadUnicodeEscape));
                        }
                        p += 5;
                    }
                    Some(_) => p += 1,
                    None => return Err(self.err(p, ParseErrorKind::UnexpectedEnd)),
                }
            }
        }
        // Second pass: decode.
        let mut out = Vec::new();
        let mut p = start + 1;
        while let Some(c) = self.at(p) {
            if c == b'"' {
                break;
            }
            if c != b'\\' {
                out.push(c);
                p += 1;
                continue;
            }
            p += 1;
            match self.at(p) {
                Some(b'b') => out.push(0x08),
                Some(b'f') => out.push(0x0c),
                Some(b'n') => out.push(b'\n'),
                Some(b'r') => out.push(b'\r'),
                Some(b't') => out.push(b'\t'),
                Some(b'u') => {
                    let mut uc = self
                        .hex4(p + 1)
                        .ok_or(self.err(p, ParseErrorKind::BadUnicodeEscape))?;
                    p += 4; // now on the last hex digit, as srjson's ptr
                    let emit = if (0xDC00..=0xDFFF).contains(&uc) || uc == 0 {
                        false
                    } else if (0xD800..=0xDBFF).contains(&uc) {
                        if self.at(p + 1) != Some(b'\\') || self.at(p + 2) != Some(b'u') {
                            false
                        } else {
                            let uc2 = self
                                .hex4(p + 3)
                                .ok_or(self.err(p + 2, ParseErrorKind::BadUnicodeEscape))?;
                            p += 6;
                            if (0xDC00..=0xDFFF).contains(&uc2) {
                                uc = 0x10000 | ((uc & 0x3FF) << 10) | (uc2 & 0x3FF);
                                true
                            } else {
                                false
                            }
                        }
                    } else {
                        true
                    };
                    if emit {
                        push_utf8(uc, &mut out);
                    }
                }
                Some(other) => out.push(other),
                // Unreachable after the first pass; stop like srjson would at the NUL.
                None => break,
            }
            p += 1;
        }
        if self.at(p) == Some(b'"') {
            p += 1;
        }
        Ok((out, p))
    }

    fn array(&mut self, i: usize) -> Parsed {
        let mut items = Vec::new();
        let mut p = self.skip(i + 1);
        if self.at(p) == Some(b']') {
            return Ok((Json::Arr(items), p + 1));
        }
        loop {
            let start = self.skip(p);
            let (v, after) = self.value(start)?;
            items.push(v);
            p = self.skip(after);
            match self.at(p) {
                Some(b',') => p += 1,
                Some(b']') => return Ok((Json::Arr(items), p + 1)),
                _ => return Err(self.unexpected(p)),
            }
        }
    }

    fn object(&mut self, i: usize) -> Parsed {
        let mut members = Vec::new();
        let mut p = self.skip(i + 1);
        if self.at(p) == Some(b'}') {
            return Ok((Json::Obj(members), p + 1));
        }
        loop {
            let start = self.skip(p);
            if self.at(start) != Some(b'"') {
                return Err(match self.at(start) {
                    None => self.err(start, ParseErrorKind::UnexpectedEnd),
                    Some(_) => self.err(start, ParseErrorKind::KeyNotString),
                });
            }
            let (key, after_key) = self.string(start)?;
            p = self.skip(after_key);
            if self.at(p) != Some(b':') {
                return Err(self.unexpected(p));
            }
            let vstart = self.skip(p + 1);
            let (v, after) = self.value(vstart)?;
            members.push((key, v));
            p = self.skip(after);
            match self.at(p) {
                Some(b',') => p += 1,
                Some(b'}') => return Ok((Json::Obj(members), p + 1)),
                _ => return Err(self.unexpected(p)),
            }
        }
    }
}

/// UTF-8 encoding as srjson writes it (code points up to 0x10FFFF from a surrogate pair).
fn push_utf8(uc: u32, out: &mut Vec<u8>) {
    // Lossless: every value srjson can produce here is a valid scalar value.
    if let Some(c) = char::from_u32(uc) {
        let mut buf = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    }
}

fn tabs(n: usize, out: &mut Vec<u8>) {
    out.extend(std::iter::repeat_n(b'\t', n));
}

fn print_value(v: &Json, depth: usize, fmt: bool, out: &mut Vec<u8>) {
    match v {
        Json::Null => out.extend_from_slice(b"null"),
        Json::Bool(true) => out.extend_from_slice(b"true"),
        Json::Bool(false) => out.extend_from_slice(b"false"),
        Json::Int(i) => out.extend_from_slice(format_int(*i).as_bytes()),
        Json::Float(f) => out.extend_from_slice(format_number(*f).as_bytes()),
        Json::Str(s) => print_string(s, out),
        Json::Arr(items) => {
            // srjson (5.6) keeps every array on one line, elements one level deeper.
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                print_value(item, depth + 1, fmt, out);
                if i + 1 != items.len() {
                    out.push(b',');
                    if fmt {
                        out.push(b' ');
                    }
                }
            }
            out.push(b']');
        }
        Json::Obj(members) => {
            let inner = depth + 1;
            out.push(b'{');
            if fmt {
                out.push(b'\n');
            }
            for (i, (k, val)) in members.iter().enumerate() {
                if fmt {
                    tabs(inner, out);
                }
                print_string(k, out);
                out.push(b':');
                if fmt {
                    out.push(b'\t');
                }
                print_value(val, inner, fmt, out);
                if i + 1 != members.len() {
                    out.push(b',');
                }
                if fmt {
                    out.push(b'\n');
                }
            }
            if fmt {
                tabs(depth, out);
            }
            out.push(b'}');
        }
    }
}

/// srjson `print_string_ptr`: `"` `\` and the five named controls escaped, other bytes
/// below 0x20 as `\u00xx`, everything else (including bytes >= 0x80) verbatim.
fn print_string(s: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for &c in s {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..=0x1f => out.extend_from_slice(format!("\\u{c:04x}").as_bytes()),
            _ => out.push(c),
        }
    }
    out.push(b'"');
}

fn format_int(i: i64) -> String {
    // Within `int` srjson prints "%d"; beyond it "%.0f" of the (exact) double: the same
    // digits for every integer we hold.
    i.to_string()
}

/// srjson `print_number` for a double.
pub(crate) fn format_number(d: f64) -> String {
    if !d.is_finite() {
        return "null".to_string();
    }
    if d <= f64::from(i32::MAX) && d >= f64::from(i32::MIN) {
        let i = d as i32; // C's truncating cast
        if (f64::from(i) - d).abs() <= f64::EPSILON {
            return i.to_string();
        }
    }
    if (d.floor() - d).abs() <= f64::EPSILON {
        format!("{d:.0}")
    } else if d.abs() < 1.0e-6 || d.abs() > 1.0e9 {
        c_exp(d)
    } else {
        format!("{d:.6}")
    }
}

/// C's `%e`: six decimals, exponent with a sign and at least two digits.
fn c_exp(d: f64) -> String {
    let s = format!("{d:.6e}");
    match s.split_once('e') {
        Some((mantissa, exp)) => {
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(rest) => ('-', rest),
                None => ('+', exp),
            };
            format!("{mantissa}e{sign}{digits:0>2}")
        }
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_parse(input: &str, expected: Result<Json, ParseErrorKind>) {
        let got = parse(input.as_bytes()).map_err(|e| e.kind);
        assert_eq!(got, expected, "input {input:?}");
    }

    #[test]
    fn parse_cases() {
        use Json::*;
        let cases: Vec<(&str, Result<Json, ParseErrorKind>)> = vec![
            ("null", Ok(Null)),
            ("  true", Ok(Bool(true))),
            ("false", Ok(Bool(false))),
            ("nullx", Ok(Null)), // prefix match, trailing text ignored
            ("4242", Ok(Int(4242))),
            ("-7", Ok(Int(-7))),
            ("0123", Ok(Int(123))), // srjson skips one leading zero
            ("-", Ok(Float(-0.0))),
            ("1.5", Ok(Float(1.5))),
            ("1e2", Ok(Float(100.0))),
            ("1.", Ok(Int(1))), // stops before the dot
            ("2E-1", Ok(Float(0.2))),
            ("\"a\\tb\\\"c\\/\\x\"", Ok(Str(b"a\tb\"c/x".to_vec()))),
            ("\"raw\ttab\"", Ok(Str(b"raw\ttab".to_vec()))),
            ("\"\\u00e9\"", Ok(Str("é".as_bytes().to_vec()))),
            ("\"\\ud83d\\ude00\"", Ok(Str("😀".as_bytes().to_vec()))),
            ("\"a\\ud83db\"", Ok(Str(b"ab".to_vec()))), // lone high surrogate dropped
            ("\"a\\ude00b\"", Ok(Str(b"ab".to_vec()))), // lone low surrogate dropped
            ("\"a\\u0000b\"", Ok(Str(b"ab".to_vec()))), // \u0000 dropped
            ("\"a\\ud83d\\u0041b\"", Ok(Str(b"ab".to_vec()))), // bad pair: both dropped
            ("\"\\u12\"", Err(ParseErrorKind::BadUnicodeEscape)),
            ("\"abc", Ok(Str(b"abc".to_vec()))), // unterminated at end: srjson accepts
            (
                "[1, \"a\" ,[]]",
                Ok(Arr(vec![Int(1), Json::str("a"), Arr(vec![])])),
            ),
            (
                "{\"a\":1,\"A\":2}",
                Ok(Obj(vec![(b"a".to_vec(), Int(1)), (b"A".to_vec(), Int(2))])),
            ),
            ("{}", Ok(Obj(vec![]))),
            ("{\"a\":1,}", Err(ParseErrorKind::KeyNotString)),
            ("[1,]", Err(ParseErrorKind::UnexpectedByte(b']'))),
            ("[1 2]", Err(ParseErrorKind::UnexpectedByte(b'2'))),
            ("[00]", Err(ParseErrorKind::UnexpectedByte(b'0'))),
            ("{\"a\" 1}", Err(ParseErrorKind::UnexpectedByte(b'1'))),
            ("{\"a\":1", Err(ParseErrorKind::UnexpectedEnd)),
            ("x", Err(ParseErrorKind::UnexpectedByte(b'x'))),
            ("", Err(ParseErrorKind::UnexpectedEnd)),
            (".5", Err(ParseErrorKind::UnexpectedByte(b'.'))),
            ("{\"a\":\"b\u{0}\"}", Err(ParseErrorKind::UnexpectedEnd)), // NUL ends input
        ];
        for (input, expected) in cases {
            check_parse(input, expected);
        }
    }

    #[test]
    fn too_deep_is_an_error_not_a_crash() {
        let s = "[".repeat(MAX_DEPTH + 1);
        assert_eq!(
            parse(s.as_bytes()).map_err(|e| e.kind),
            Err(ParseErrorKind::TooDeep)
        );
    }

    #[test]
    fn get_is_case_insensitive_first_match() {
        let v = parse(b"{\"ID\":1,\"id\":2}").unwrap_or(Json::Null);
        assert_eq!(v.get("id"), Some(&Json::Int(1)));
        assert_eq!(v.get("Id"), Some(&Json::Int(1)));
        assert_eq!(v.get("x"), None);
        assert_eq!(Json::Int(1).get("id"), None);
    }

    #[test]
    fn number_format_cases() {
        let cases: &[(f64, &str)] = &[
            (4242.0, "4242"),
            (1.5, "1.500000"),
            (-0.0, "0"),
            (2147483648.0, "2147483648"),
            (1e10, "10000000000"),
            (-3000000000.0, "-3000000000"),
            (1e-7, "1.000000e-07"),
            (1234567890.5, "1.234568e+09"),
            (0.25, "0.250000"),
            (1.0 + f64::EPSILON, "1"),
            (f64::INFINITY, "null"),
            (1e100, &format!("{:.0}", 1e100)),
        ];
        for (d, s) in cases {
            assert_eq!(format_number(*d), *s, "value {d:e}");
        }
    }

    #[test]
    fn pretty_layout_matches_srjson() {
        let v = Json::obj(vec![
            ("jsonrpc", Json::str("2.0")),
            (
                "result",
                Json::Arr(vec![
                    Json::obj(vec![("IDX", Json::Int(0)), ("DSC", Json::str("a"))]),
                    Json::obj(vec![("IDX", Json::Int(1))]),
                ]),
            ),
            (
                "list",
                Json::Arr(vec![Json::Int(1), Json::str("a\"\n\u{1}")]),
            ),
            ("empty", Json::Obj(vec![])),
            ("none", Json::Arr(vec![])),
            ("id", Json::Float(1.5)),
        ]);
        let expected = "{\n\t\"jsonrpc\":\t\"2.0\",\n\t\"result\":\t[{\n\t\t\t\"IDX\":\t0,\n\t\t\t\"DSC\":\t\"a\"\n\t\t}, {\n\t\t\t\"IDX\":\t1\n\t\t}],\n\t\"list\":\t[1, \"a\\\"\\n\\u0001\"],\n\t\"empty\":\t{\n\t},\n\t\"none\":\t[],\n\t\"id\":\t1.500000\n}";
        assert_eq!(String::from_utf8_lossy(&v.to_pretty()), expected);
        let compact = "{\"jsonrpc\":\"2.0\",\"result\":[{\"IDX\":0,\"DSC\":\"a\"},{\"IDX\":1}],\"list\":[1,\"a\\\"\\n\\u0001\"],\"empty\":{},\"none\":[],\"id\":1.500000}";
        assert_eq!(String::from_utf8_lossy(&v.to_compact()), compact);
    }

    #[test]
    fn non_utf8_strings_round_trip_verbatim() {
        let v = parse(b"\"\xff\xfe\"").unwrap_or(Json::Null);
        assert_eq!(v, Json::Str(vec![0xff, 0xfe]));
        assert_eq!(v.to_pretty(), b"\"\xff\xfe\"".to_vec());
    }
}
