//! Turning row values into what a column can hold (docs/decisions.md §2): bytes a
//! column's character set cannot store are written as `\xNN` (lower-case hex,
//! one escape per byte), and text longer than the column's declared length is
//! cut at a character boundary, so content never makes an insert fail.
//! A backslash in the message is left as is: only messages that needed
//! escaping (counted in `WriteReport::escaped`) can contain generated `\xNN`.
//! Pure: no I/O.

use std::borrow::Cow;

use super::schema::{Charset, ColumnInfo};

/// `bytes` as text the charset can store; `Borrowed` when nothing needed escaping.
pub(crate) fn escape_text(bytes: &[u8], charset: Charset) -> Cow<'_, str> {
    if let Ok(s) = std::str::from_utf8(bytes)
        && s.chars().all(|c| char_fits(c, charset))
    {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(bytes.len() + 16);
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if char_fits(c, charset) {
                out.push(c);
            } else {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    push_hex(&mut out, b);
                }
            }
        }
        for &b in chunk.invalid() {
            push_hex(&mut out, b);
        }
    }
    Cow::Owned(out)
}

/// Whether a character is stored unescaped. NUL never is: PostgreSQL TEXT
/// refuses it and C clients reading MySQL would cut the message there.
fn char_fits(c: char, charset: Charset) -> bool {
    match charset {
        Charset::Raw | Charset::Utf8 => c != '\0',
        Charset::Bmp => c != '\0' && (c as u32) <= 0xFFFF,
        // Latin1 text is written as bytes ([`escape_nul`]); as characters
        // only ASCII maps to itself.
        Charset::Ascii | Charset::Latin1 => c != '\0' && c.is_ascii(),
    }
}

fn push_hex(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('\\');
    out.push('x');
    out.push(HEX[usize::from(b >> 4)] as char);
    out.push(HEX[usize::from(b & 0x0f)] as char);
}

/// The longest prefix of `s` within both limits, cut at a char boundary;
/// the flag says whether anything was cut.
pub fn fit(s: &str, max_chars: Option<usize>, max_bytes: Option<usize>) -> (&str, bool) {
    let max_bytes = max_bytes.unwrap_or(usize::MAX);
    let max_chars = max_chars.unwrap_or(usize::MAX);
    if s.len() <= max_bytes && s.len() <= max_chars {
        // Fast path: a string of n bytes has at most n chars.
        return (s, false);
    }
    let mut end = 0;
    for (count, (i, c)) in s.char_indices().enumerate() {
        if count >= max_chars || i + c.len_utf8() > max_bytes {
            return (&s[..end], true);
        }
        end = i + c.len_utf8();
    }
    (s, false)
}

/// Bytes for a column that stores every byte but NUL (MySQL latin1): NUL
/// written as `\x00`, the rest as is; `Borrowed` when there was none.
pub(crate) fn escape_nul(bytes: &[u8]) -> Cow<'_, [u8]> {
    if !bytes.contains(&0) {
        return Cow::Borrowed(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len() + 8);
    for &b in bytes {
        if b == 0 {
            out.extend_from_slice(b"\\x00");
        } else {
            out.push(b);
        }
    }
    Cow::Owned(out)
}

/// Byte-slice variant of [`fit`] for raw columns (only a byte limit applies).
pub(crate) fn fit_bytes(b: &[u8], max_bytes: Option<usize>) -> (&[u8], bool) {
    match max_bytes {
        Some(m) if b.len() > m => (&b[..m], true),
        _ => (b, false),
    }
}

/// A value for a server text column: escaped for the column's charset, then
/// cut to its declared length; flags say (escaped, truncated).
pub(crate) fn for_column<'a>(bytes: &'a [u8], column: &ColumnInfo) -> (Cow<'a, str>, bool, bool) {
    let charset = match column.charset {
        // A server column never takes raw bytes through a text parameter.
        Charset::Raw => Charset::Utf8,
        c => c,
    };
    let escaped_text = escape_text(bytes, charset);
    let escaped = matches!(escaped_text, Cow::Owned(_));
    let (text, truncated) = match escaped_text {
        Cow::Borrowed(s) => {
            let (cut, t) = fit(s, column.max_chars, column.max_bytes);
            (Cow::Borrowed(cut), t)
        }
        Cow::Owned(s) => {
            let (cut, t) = fit(&s, column.max_chars, column.max_bytes);
            if t {
                (Cow::Owned(cut.to_string()), true)
            } else {
                (Cow::Owned(s), false)
            }
        }
    };
    (text, escaped, truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        let cases: &[(&[u8], Charset, &str, bool)] = &[
            (
                b"INVITE sip:a SIP/2.0\r\n",
                Charset::Utf8,
                "INVITE sip:a SIP/2.0\r\n",
                false,
            ),
            (b"a\0b", Charset::Utf8, "a\\x00b", true),
            (b"a\xffb\xc3", Charset::Utf8, "a\\xffb\\xc3", true),
            ("é€😀".as_bytes(), Charset::Utf8, "é€😀", false),
            (
                "é😀".as_bytes(),
                Charset::Bmp,
                "é\\xf0\\x9f\\x98\\x80",
                true,
            ),
            ("aé".as_bytes(), Charset::Ascii, "a\\xc3\\xa9", true),
            (b"\\x41", Charset::Utf8, "\\x41", false),
            (b"", Charset::Ascii, "", false),
            (b"\xe2\x82", Charset::Utf8, "\\xe2\\x82", true),
        ];
        for (input, cs, want, owned) in cases {
            let got = escape_text(input, *cs);
            assert_eq!(got, *want, "{input:?} {cs:?}");
            assert_eq!(matches!(got, Cow::Owned(_)), *owned, "{input:?}");
        }
    }

    #[test]
    fn fits() {
        type Case<'a> = (&'a str, Option<usize>, Option<usize>, &'a str, bool);
        let cases: &[Case] = &[
            ("abc", Some(3), None, "abc", false),
            ("abcd", Some(3), None, "abc", true),
            ("ééé", Some(2), None, "éé", true),
            ("ééé", Some(5), None, "ééé", false),
            ("ééé", None, Some(5), "éé", true),
            ("ééé", Some(3), Some(6), "ééé", false),
            ("😀x", Some(10), Some(3), "", true),
            ("", Some(0), Some(0), "", false),
        ];
        for (s, mc, mb, want, cut) in cases {
            assert_eq!(fit(s, *mc, *mb), (*want, *cut), "{s:?} {mc:?} {mb:?}");
        }
        assert_eq!(fit_bytes(b"abcdef", Some(4)), (&b"abcd"[..], true));
        assert_eq!(fit_bytes(b"ab", Some(4)), (&b"ab"[..], false));
    }

    #[test]
    fn escapes_nul_only() {
        assert!(matches!(
            escape_nul(b"a\xff\xc3"),
            Cow::Borrowed(b"a\xff\xc3")
        ));
        assert_eq!(&*escape_nul(b"\0a\0\xe9"), b"\\x00a\\x00\xe9");
    }
}
