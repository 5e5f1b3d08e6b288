//! `name-addr / addr-spec` header values (From, To, Contact, Route,
//! Record-Route; RFC 3261 §20.10, §25.1) decoded on demand from the bytes
//! of one list element. `parse` is lenient (what the trace path and the
//! proxy read: URI and tag); `check_strict` holds the grammar rules whose
//! breach RFC 4475 §3.1.2 answers with 400. Depends only on `lex`.

use std::fmt;

use super::lex;

/// A decoded name-addr or addr-spec. Slices borrow the header value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// The display name as written (quotes kept when quoted); `None` when
    /// absent.
    pub display: Option<&'a [u8]>,
    /// The URI: inside `<>` when bracketed, else up to the first `;`.
    pub uri: &'a [u8],
    /// The header parameters, starting with `;` (or empty).
    pub params: &'a [u8],
    /// Written as `<uri>`.
    pub bracketed: bool,
    /// White space was found inside the `<>` (RFC 4475 §3.1.2.14).
    spaced: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameAddrError {
    Empty,
    /// A display name's quoted string never closes (RFC 4475 §3.1.2.6).
    UnterminatedQuote,
    /// A quoted display name is not followed by `<`.
    MissingAngle,
    /// `<` without a matching `>`.
    UnclosedAngle,
    /// Something other than `;params` after `>`.
    TrailingGarbage,
    /// An unquoted display name with non-token characters (RFC 4475 §3.1.2.15).
    BadDisplayName,
    /// LWS inside `<...>` (RFC 4475 §3.1.2.14).
    WhitespaceInUri,
    /// An addr-spec containing `,` or `?`, which RFC 3261 §20.10 requires
    /// to be bracketed (RFC 4475 §3.1.2.13).
    AddrSpecNeedsBrackets,
    /// `;;` or a parameter without a name.
    EmptyParam,
}

impl fmt::Display for NameAddrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameAddrError::Empty => "empty address",
            NameAddrError::UnterminatedQuote => "unterminated quoted display name",
            NameAddrError::MissingAngle => "quoted display name not followed by <uri>",
            NameAddrError::UnclosedAngle => "'<' without '>'",
            NameAddrError::TrailingGarbage => "text after '>' that is not ;parameters",
            NameAddrError::BadDisplayName => "unquoted display name with non-token characters",
            NameAddrError::WhitespaceInUri => "white space inside <uri>",
            NameAddrError::AddrSpecNeedsBrackets => "URI with ',' or '?' must be inside <>",
            NameAddrError::EmptyParam => "empty header parameter",
        })
    }
}

impl std::error::Error for NameAddrError {}

impl<'a> NameAddr<'a> {
    pub fn parse(value: &'a [u8]) -> Result<NameAddr<'a>, NameAddrError> {
        let v = lex::trim(value);
        if v.is_empty() {
            return Err(NameAddrError::Empty);
        }
        let (display, open) = if v[0] == b'"' {
            let end = lex::skip_quoted(v, 0).ok_or(NameAddrError::UnterminatedQuote)?;
            let mut i = end;
            while i < v.len() && lex::is_lws(v[i]) {
                i += 1;
            }
            if v.get(i) != Some(&b'<') {
                return Err(NameAddrError::MissingAngle);
            }
            (Some(&v[..end]), Some(i))
        } else {
            match v.iter().position(|&b| b == b'<') {
                Some(i) => {
                    let d = lex::trim(&v[..i]);
                    ((!d.is_empty()).then_some(d), Some(i))
                }
                None => (None, None),
            }
        };
        match open {
            Some(i) => {
                let close = lex::find_byte(v, i + 1, b'>').ok_or(NameAddrError::UnclosedAngle)?;
                let inner = &v[i + 1..close];
                let uri = lex::trim(inner);
                let params = lex::trim(&v[close + 1..]);
                if !params.is_empty() && params[0] != b';' {
                    return Err(NameAddrError::TrailingGarbage);
                }
                Ok(NameAddr {
                    display,
                    uri,
                    params,
                    bracketed: true,
                    spaced: inner.iter().any(|&b| lex::is_lws(b)),
                })
            }
            None => {
                let semi = v.iter().position(|&b| b == b';').unwrap_or(v.len());
                Ok(NameAddr {
                    display: None,
                    uri: lex::trim(&v[..semi]),
                    params: &v[semi..],
                    bracketed: false,
                    spaced: false,
                })
            }
        }
    }

    /// The rules of RFC 3261 §25.1 that RFC 4475 §3.1.2 exercises.
    pub(crate) fn check_strict(&self) -> Result<(), NameAddrError> {
        if let Some(d) = self.display {
            let unquoted = d.first() != Some(&b'"');
            // UTF-8 in an unquoted name breaks §25.1 too, but UAs send it
            // and nothing is ambiguous; ASCII punctuation is refused.
            let ok = |b: u8| lex::is_token(b) || lex::is_lws(b) || b >= 0x80;
            if unquoted && !d.iter().all(|&b| ok(b)) {
                return Err(NameAddrError::BadDisplayName);
            }
        }
        if self.spaced || self.uri.iter().any(|&b| lex::is_lws(b)) {
            return Err(NameAddrError::WhitespaceInUri);
        }
        if self.uri.is_empty() {
            return Err(NameAddrError::Empty);
        }
        if !self.bracketed && self.uri.iter().any(|&b| b == b',' || b == b'?') {
            return Err(NameAddrError::AddrSpecNeedsBrackets);
        }
        if lex::params(self.params, 0).any(|p| p.name.is_empty()) {
            return Err(NameAddrError::EmptyParam);
        }
        Ok(())
    }

    /// A header parameter (case-insensitive name): `Some(None)` if valueless.
    pub fn param(&self, name: &str) -> Option<Option<&'a [u8]>> {
        lex::find_param(self.params, 0, name)
    }

    /// The `tag` parameter; a valueless tag reads as empty.
    pub fn tag(&self) -> Option<&'a [u8]> {
        self.param("tag").map(|v| v.unwrap_or(&[]))
    }

    pub(crate) fn uri_str(&self) -> Option<&'a str> {
        std::str::from_utf8(self.uri).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (value, display, uri, tag)
    #[test]
    fn lenient_parse_table() {
        type Case = (
            &'static [u8],
            Option<&'static [u8]>,
            &'static [u8],
            Option<&'static [u8]>,
        );
        let cases: &[Case] = &[
            (b"<sip:a@b>;tag=1", None, b"sip:a@b", Some(b"1")),
            (b"Bob <sip:b@c>", Some(b"Bob"), b"sip:b@c", None),
            (
                b"\"A, B\" <sip:b@c> ; TAG = x",
                Some(b"\"A, B\""),
                b"sip:b@c",
                Some(b"x"),
            ),
            (b"sip:a@b;tag=9;x", None, b"sip:a@b", Some(b"9")),
            (
                b"caller<sip:caller@example.com>;tag=323",
                Some(b"caller"),
                b"sip:caller@example.com",
                Some(b"323"),
            ),
            (
                b"\"J \\\"\"   <sip:j@e>\r\n  ;\r\n  tag = 98",
                Some(b"\"J \\\"\""),
                b"sip:j@e",
                Some(b"98"),
            ),
            (b"<sip:a@b;lr>", None, b"sip:a@b;lr", None),
            (b"*", None, b"*", None),
            (b"<sip:a@b>;tag", None, b"sip:a@b", Some(b"")),
        ];
        for (v, display, uri, tag) in cases {
            let n = NameAddr::parse(v).unwrap_or_else(|e| panic!("{e}: {v:?}"));
            assert_eq!(n.display, *display, "{v:?}");
            assert_eq!(n.uri, *uri, "{v:?}");
            assert_eq!(n.tag(), *tag, "{v:?}");
        }
    }

    #[test]
    fn errors_table() {
        // (value, parse error) and (value, strict error)
        let parse_errs: &[(&[u8], NameAddrError)] = &[
            (b"", NameAddrError::Empty),
            (
                b"\"Mr. J. User <sip:j.user@example.com>",
                NameAddrError::UnterminatedQuote,
            ),
            (b"\"x\" sip:a@b", NameAddrError::MissingAngle),
            (b"<sip:a@b", NameAddrError::UnclosedAngle),
            (b"<sip:a@b> junk", NameAddrError::TrailingGarbage),
        ];
        for (v, e) in parse_errs {
            assert_eq!(NameAddr::parse(v).err(), Some(*e), "{v:?}");
        }
        let strict_errs: &[(&[u8], NameAddrError)] = &[
            (
                b"Bell, Alexander <sip:a.g.bell@example.com>;tag=43",
                NameAddrError::BadDisplayName,
            ),
            (
                b"\"Watson, Thomas\" < sip:t.watson@example.org >",
                NameAddrError::WhitespaceInUri,
            ),
            (
                b"sip:user@example.com?Route=%3Csip:sip.example.com%3E",
                NameAddrError::AddrSpecNeedsBrackets,
            ),
            (
                b"\"Joe\" <sip:joe@example.org>;;;;",
                NameAddrError::EmptyParam,
            ),
            (b"<>", NameAddrError::Empty),
        ];
        for (v, e) in strict_errs {
            let n = NameAddr::parse(v).unwrap_or_else(|e| panic!("{e}: {v:?}"));
            assert_eq!(n.check_strict(), Err(*e), "{v:?}");
        }
        let ok: &[&[u8]] = &[
            b"token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;fromParam''~+*_!.-%=\"\xd1\x80\";tag=_token~1'+`*%!-.",
            b"sip:+19725552222@gw1.example.net;unknownparam",
            b"\"%Z%45\" <sip:resource@example.com>",
            "J\u{fc}rgen <sip:j@example.com>".as_bytes(),
        ];
        for v in ok {
            let n = NameAddr::parse(v).unwrap_or_else(|e| panic!("{e}: {v:?}"));
            assert_eq!(n.check_strict(), Ok(()), "{v:?}");
        }
    }
}
