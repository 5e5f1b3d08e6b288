//! Byte-level lexical helpers shared by the scanner and the on-demand
//! decoders (RFC 3261 §25.1 character classes, LWS trimming, comma lists,
//! `;name=value` parameter runs). Pure functions over `&[u8]`; they never
//! index out of bounds and never allocate. Depends on `std` and `memchr` only.

use std::ops::Range;

/// RFC 3261 §25.1 `token` characters.
pub(crate) fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

/// SP or HTAB (RFC 3261 `WSP`).
pub(crate) fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Any byte of linear white space, folds included (RFC 3261 `LWS`).
pub(crate) fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Shrinks `r` so that it neither starts nor ends with LWS. Out-of-range
/// input yields an empty range at the clamped start.
pub(crate) fn trim_range(s: &[u8], r: Range<usize>) -> Range<usize> {
    let mut start = r.start.min(s.len());
    let mut end = r.end.min(s.len()).max(start);
    while start < end && is_lws(s[start]) {
        start += 1;
    }
    while end > start && is_lws(s[end - 1]) {
        end -= 1;
    }
    start..end
}

pub(crate) fn trim(s: &[u8]) -> &[u8] {
    let r = trim_range(s, 0..s.len());
    &s[r]
}

/// `s` made of one or more token characters.
pub(crate) fn all_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_token(b))
}

/// Decimal digits only, no sign, no overflow of `u64`.
pub(crate) fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

/// Position of the first byte of `s[from..]` equal to `needle`. memchr's
/// vector search: line ends are looked for in every message, several
/// times (callgrind: the byte loop was the busiest function outside SQLite).
pub(crate) fn find_byte(s: &[u8], from: usize, needle: u8) -> Option<usize> {
    memchr::memchr(needle, s.get(from..)?).map(|p| p + from)
}

/// Splits a header value into its top-level comma-separated elements
/// (RFC 3261 §7.3.1): commas inside a quoted string (with `\` escapes) or
/// inside `<...>` do not separate. Each element is LWS-trimmed; empty
/// elements are yielded too so that a validator can see `a,,b`.
pub(crate) struct ListIter<'a> {
    s: &'a [u8],
    pos: usize,
    done: bool,
}

pub(crate) fn split_list(s: &[u8]) -> ListIter<'_> {
    ListIter {
        s,
        pos: 0,
        done: false,
    }
}

impl Iterator for ListIter<'_> {
    type Item = Range<usize>;

    fn next(&mut self) -> Option<Range<usize>> {
        if self.done {
            return None;
        }
        let s = self.s;
        let start = self.pos;
        let mut i = start;
        let mut in_quote = false;
        let mut angle = 0usize;
        while i < s.len() {
            let b = s[i];
            if in_quote {
                if b == b'\\' {
                    i += 2;
                    continue;
                }
                if b == b'"' {
                    in_quote = false;
                }
            } else {
                match b {
                    b'"' => in_quote = true,
                    b'<' => angle += 1,
                    b'>' => angle = angle.saturating_sub(1),
                    b',' if angle == 0 => break,
                    _ => {}
                }
            }
            i += 1;
        }
        let end = i.min(s.len());
        if end >= s.len() {
            self.done = true;
        } else {
            self.pos = end + 1;
        }
        Some(trim_range(s, start..end))
    }
}

/// One `;name[=value]` item of a parameter run. Ranges index the slice the
/// iterator was built over, already LWS-trimmed; a quoted value keeps its
/// quotes. `item` spans the name through the value (no leading `;`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Param {
    pub name: Range<usize>,
    pub value: Option<Range<usize>>,
    pub item: Range<usize>,
}

/// Iterates the parameters of `s[from..]`, where the run is expected to be
/// empty or to start (after LWS) with `;`. Separators inside quoted strings
/// are ignored. An empty item (`;;`) is yielded with an empty name.
pub(crate) struct ParamIter<'a> {
    s: &'a [u8],
    pos: usize,
}

pub(crate) fn params(s: &[u8], from: usize) -> ParamIter<'_> {
    ParamIter {
        s,
        pos: from.min(s.len()),
    }
}

impl Iterator for ParamIter<'_> {
    type Item = Param;

    fn next(&mut self) -> Option<Param> {
        let s = self.s;
        let mut i = self.pos;
        while i < s.len() && is_lws(s[i]) {
            i += 1;
        }
        if i >= s.len() {
            self.pos = i;
            return None;
        }
        if s[i] == b';' {
            i += 1;
        }
        let start = i;
        let mut eq = None;
        let mut in_quote = false;
        while i < s.len() {
            let b = s[i];
            if in_quote {
                if b == b'\\' {
                    i += 2;
                    continue;
                }
                if b == b'"' {
                    in_quote = false;
                }
            } else {
                match b {
                    b'"' => in_quote = true,
                    b'=' if eq.is_none() => eq = Some(i),
                    b';' => break,
                    _ => {}
                }
            }
            i += 1;
        }
        let end = i.min(s.len());
        self.pos = end;
        let item = trim_range(s, start..end);
        let (name, value) = match eq {
            Some(e) => (trim_range(s, start..e), Some(trim_range(s, e + 1..end))),
            None => (item.clone(), None),
        };
        Some(Param { name, value, item })
    }
}

/// First parameter named `name` (ASCII case-insensitive): `Some(None)` when
/// it has no value.
pub(crate) fn find_param<'a>(s: &'a [u8], from: usize, name: &str) -> Option<Option<&'a [u8]>> {
    params(s, from)
        .find(|p| s[p.name.clone()].eq_ignore_ascii_case(name.as_bytes()))
        .map(|p| p.value.map(|v| &s[v]))
}

/// Index just past the closing quote of the quoted string starting at
/// `s[at] == '"'`, honouring `\` escapes; `None` if it never closes.
pub(crate) fn skip_quoted(s: &[u8], at: usize) -> Option<usize> {
    let mut i = at + 1;
    while i < s.len() {
        match s[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// `s` as `&str` when it is UTF-8 (it always is for slices of ASCII-split
/// UTF-8 input); never panics.
pub(crate) fn as_str(s: &[u8]) -> &str {
    std::str::from_utf8(s).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(s: &str) -> Vec<&str> {
        split_list(s.as_bytes()).map(|r| &s[r]).collect()
    }

    #[test]
    fn list_splitting_respects_quotes_and_angles() {
        let cases: &[(&str, &[&str])] = &[
            ("a, b ,c", &["a", "b", "c"]),
            (
                "\"x, y\" <sip:a@b>, <sip:c;p=1,2>",
                &["\"x, y\" <sip:a@b>", "<sip:c;p=1,2>"],
            ),
            ("\"q\\\",\" <sip:a>, b", &["\"q\\\",\" <sip:a>", "b"]),
            (";;,;,,", &[";;", ";", "", ""]),
            ("", &[""]),
            ("a,\r\n b", &["a", "b"]),
        ];
        for (input, want) in cases {
            assert_eq!(list(input), *want, "input {input:?}");
        }
    }

    fn ps(s: &str) -> Vec<(&str, Option<&str>)> {
        params(s.as_bytes(), 0)
            .map(|p| (&s[p.name], p.value.map(|v| &s[v])))
            .collect()
    }

    #[test]
    fn params_are_split_and_trimmed() {
        type Case = (
            &'static str,
            &'static [(&'static str, Option<&'static str>)],
        );
        let cases: &[Case] = &[
            (
                ";branch=z9;rport",
                &[("branch", Some("z9")), ("rport", None)],
            ),
            (
                "  ;\r\n  branch  =   z9hG4bK9ikj8  ",
                &[("branch", Some("z9hG4bK9ikj8"))],
            ),
            (";a=\"x;y\";b=", &[("a", Some("\"x;y\"")), ("b", Some(""))]),
            (";;", &[("", None), ("", None)]),
            ("", &[]),
        ];
        for (input, want) in cases {
            assert_eq!(ps(input), *want, "input {input:?}");
        }
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u64(b"0068"), Some(68));
        assert_eq!(parse_u64(b"-1"), None);
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"99999999999999999999999"), None);
    }
}
