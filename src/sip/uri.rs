//! SIP, SIPS and TEL URIs (RFC 3261 §19.1, RFC 3966), parsed leniently
//! into ranges over the original text so that `Display` prints back
//! exactly what was read. Any other scheme is recognised as
//! [`Scheme::Other`] (the caller answers 416, RFC 3261 §8.2.2.1). Escapes
//! are kept as written; comparing users or params is the caller's call.
//! Depends only on `lex`.

use std::fmt;
use std::ops::Range;

use super::lex;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Sip,
    Sips,
    Tel,
    /// Any other syntactically valid scheme (`soap.beep`, `http`, ...).
    Other,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UriError {
    Empty,
    /// The URI bytes are not UTF-8 (reported for a Request-URI read from
    /// a message; URIs are ASCII).
    NotUtf8,
    /// No `scheme:` prefix.
    NoScheme,
    /// The scheme is not `ALPHA *(ALPHA / DIGIT / "+" / "-" / ".")`.
    BadScheme,
    /// White space or a control character inside the URI.
    Whitespace,
    /// A SIP URI without a host.
    EmptyHost,
    /// Characters a hostname, IPv4 or IPv6 reference cannot hold.
    BadHost,
    /// `[` without `]`.
    UnclosedIpv6,
    /// A port that is not 1-5 digits below 65536.
    BadPort,
    /// Text after `host[:port]` that is neither `;params` nor `?headers`.
    Trailing,
}

impl fmt::Display for UriError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UriError::Empty => "empty URI",
            UriError::NotUtf8 => "URI is not UTF-8",
            UriError::NoScheme => "URI has no scheme",
            UriError::BadScheme => "URI scheme is not a valid scheme name",
            UriError::Whitespace => "white space or control character in URI",
            UriError::EmptyHost => "SIP URI without host",
            UriError::BadHost => "invalid host in SIP URI",
            UriError::UnclosedIpv6 => "IPv6 reference without ']'",
            UriError::BadPort => "invalid port in SIP URI",
            UriError::Trailing => "unexpected text after host:port",
        })
    }
}

impl std::error::Error for UriError {}

/// A URI as ranges over its own text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uri {
    text: String,
    scheme: Scheme,
    scheme_end: usize,
    user: Option<Range<usize>>,
    password: Option<Range<usize>>,
    host: Range<usize>,
    port: Option<u16>,
    /// From the first `;` (included) to `?` or the end; empty if none.
    params: Range<usize>,
    headers: Option<Range<usize>>,
}

fn host_char(b: u8) -> bool {
    // Hostnames, IPv4; `_` is outside RFC 1123 but seen in the wild.
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')
}

fn ipv6_char(b: u8) -> bool {
    b.is_ascii_hexdigit() || b == b':' || b == b'.'
}

impl Uri {
    pub fn parse(s: &str) -> Result<Uri, UriError> {
        let b = s.as_bytes();
        if b.is_empty() {
            return Err(UriError::Empty);
        }
        if b.iter().any(|&c| c <= b' ' || c == 0x7f) {
            return Err(UriError::Whitespace);
        }
        let colon = lex::find_byte(b, 0, b':').ok_or(UriError::NoScheme)?;
        let name = &b[..colon];
        let valid_scheme = name.first().is_some_and(u8::is_ascii_alphabetic)
            && name
                .iter()
                .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'));
        if !valid_scheme {
            return Err(UriError::BadScheme);
        }
        let scheme = if name.eq_ignore_ascii_case(b"sip") {
            Scheme::Sip
        } else if name.eq_ignore_ascii_case(b"sips") {
            Scheme::Sips
        } else if name.eq_ignore_ascii_case(b"tel") {
            Scheme::Tel
        } else {
            Scheme::Other
        };
        let mut uri = Uri {
            text: s.to_owned(),
            scheme,
            scheme_end: colon,
            user: None,
            password: None,
            host: b.len()..b.len(),
            port: None,
            params: b.len()..b.len(),
            headers: None,
        };
        let rest = colon + 1;
        match scheme {
            Scheme::Other => return Ok(uri),
            Scheme::Tel => {
                let end = b[rest..]
                    .iter()
                    .position(|&c| c == b';' || c == b'?')
                    .map_or(b.len(), |p| p + rest);
                uri.user = Some(rest..end);
                uri.set_tail(end)?;
                return Ok(uri);
            }
            Scheme::Sip | Scheme::Sips => {}
        }
        let mut host_start = rest;
        if let Some(at) = lex::find_byte(b, rest, b'@') {
            match lex::find_byte(&b[..at], rest, b':') {
                Some(c) => {
                    uri.user = Some(rest..c);
                    uri.password = Some(c + 1..at);
                }
                None => uri.user = Some(rest..at),
            }
            host_start = at + 1;
        }
        let mut i = host_start;
        if b.get(i) == Some(&b'[') {
            let close = lex::find_byte(b, i, b']').ok_or(UriError::UnclosedIpv6)?;
            if close == i + 1 || !b[i + 1..close].iter().all(|&c| ipv6_char(c)) {
                return Err(UriError::BadHost);
            }
            i = close + 1;
        } else {
            while i < b.len() && host_char(b[i]) {
                i += 1;
            }
            if i == host_start {
                return Err(if matches!(b.get(i), None | Some(b':' | b';' | b'?')) {
                    UriError::EmptyHost
                } else {
                    UriError::BadHost
                });
            }
        }
        uri.host = host_start..i;
        if b.get(i) == Some(&b':') {
            let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if digits == 0 || digits > 5 {
                return Err(UriError::BadPort);
            }
            let end = i + 1 + digits;
            let port = lex::parse_u64(&b[i + 1..end]).and_then(|p| u16::try_from(p).ok());
            uri.port = Some(port.ok_or(UriError::BadPort)?);
            i = end;
        }
        uri.set_tail(i)?;
        Ok(uri)
    }

    /// `;params` then `?headers` from `i` to the end.
    fn set_tail(&mut self, i: usize) -> Result<(), UriError> {
        let b = self.text.as_bytes();
        let len = b.len();
        match b.get(i) {
            None => Ok(()),
            Some(b';') => {
                let q = lex::find_byte(b, i, b'?').unwrap_or(len);
                self.params = i..q;
                if q < len {
                    self.headers = Some(q + 1..len);
                }
                Ok(())
            }
            Some(b'?') => {
                self.params = i..i;
                self.headers = Some(i + 1..len);
                Ok(())
            }
            Some(_) => Err(UriError::Trailing),
        }
    }

    fn get(&self, r: &Range<usize>) -> &str {
        self.text.get(r.clone()).unwrap_or("")
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The scheme as written.
    pub(crate) fn scheme_str(&self) -> &str {
        self.get(&(0..self.scheme_end))
    }

    /// `sip:` or `sips:`.
    pub(crate) fn is_sip(&self) -> bool {
        matches!(self.scheme, Scheme::Sip | Scheme::Sips)
    }

    /// Everything after `scheme:` (for [`Scheme::Other`] the opaque part).
    pub fn after_scheme(&self) -> &str {
        self.get(&(self.scheme_end + 1..self.text.len()))
    }

    /// User part as written (escapes kept); for TEL the number.
    pub fn user(&self) -> Option<&str> {
        self.user.as_ref().map(|r| self.get(r))
    }

    pub(crate) fn password(&self) -> Option<&str> {
        self.password.as_ref().map(|r| self.get(r))
    }

    /// Host as written: IPv6 references keep their brackets. Empty for
    /// TEL and other schemes.
    pub fn host(&self) -> &str {
        self.get(&self.host)
    }

    /// Host without IPv6 brackets, ready for `IpAddr::from_str`.
    pub(crate) fn host_unbracketed(&self) -> &str {
        let h = self.host();
        h.strip_prefix('[')
            .and_then(|x| x.strip_suffix(']'))
            .unwrap_or(h)
    }

    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The parameter run including its leading `;` (empty if none).
    pub(crate) fn params_str(&self) -> &str {
        self.get(&self.params)
    }

    /// URI parameters in order as (name, value).
    pub fn params(&self) -> impl Iterator<Item = (&str, Option<&str>)> + '_ {
        let p = self.params_str();
        lex::params(p.as_bytes(), 0)
            .filter(|x| !x.name.is_empty())
            .map(move |x| {
                (
                    p.get(x.name).unwrap_or(""),
                    x.value.map(|v| p.get(v).unwrap_or("")),
                )
            })
    }

    /// A URI parameter by case-insensitive name: `Some(None)` if valueless.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// `;lr` present (RFC 3261 §16.12 loose routing).
    pub fn has_lr(&self) -> bool {
        self.param("lr").is_some()
    }

    /// The `?headers` part without its `?`.
    pub(crate) fn headers(&self) -> Option<&str> {
        self.headers.as_ref().map(|r| self.get(r))
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for Uri {
    type Err = UriError;

    fn from_str(s: &str) -> Result<Uri, UriError> {
        Uri::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Want {
        scheme: Scheme,
        user: Option<&'static str>,
        password: Option<&'static str>,
        host: &'static str,
        port: Option<u16>,
        params: &'static [(&'static str, Option<&'static str>)],
        headers: Option<&'static str>,
    }

    const fn w(
        scheme: Scheme,
        user: Option<&'static str>,
        host: &'static str,
        port: Option<u16>,
    ) -> Want {
        Want {
            scheme,
            user,
            password: None,
            host,
            port,
            params: &[],
            headers: None,
        }
    }

    #[test]
    fn parse_table() {
        let cases: Vec<(&str, Want)> = vec![
            (
                "sip:alice@atlanta.com",
                w(Scheme::Sip, Some("alice"), "atlanta.com", None),
            ),
            (
                "SIP:alice@atlanta.com:5070",
                w(Scheme::Sip, Some("alice"), "atlanta.com", Some(5070)),
            ),
            (
                "sips:example.com",
                w(Scheme::Sips, None, "example.com", None),
            ),
            ("sip:192.0.2.4", w(Scheme::Sip, None, "192.0.2.4", None)),
            (
                "sip:[2001:db8::10]",
                w(Scheme::Sip, None, "[2001:db8::10]", None),
            ),
            (
                "sip:[2001:db8::10]:5070",
                w(Scheme::Sip, None, "[2001:db8::10]", Some(5070)),
            ),
            (
                "sip:[2001:db8::10:5070]",
                w(Scheme::Sip, None, "[2001:db8::10:5070]", None),
            ),
            (
                "sip:bob@[2001:db8::9]",
                w(Scheme::Sip, Some("bob"), "[2001:db8::9]", None),
            ),
            (
                "sip:user@[::ffff:192.0.2.2]",
                w(Scheme::Sip, Some("user"), "[::ffff:192.0.2.2]", None),
            ),
            (
                "sip:services.example.com;lr;unknownwith=value;unknown-no-value",
                Want {
                    params: &[
                        ("lr", None),
                        ("unknownwith", Some("value")),
                        ("unknown-no-value", None),
                    ],
                    ..w(Scheme::Sip, None, "services.example.com", None)
                },
            ),
            (
                "sip:alice:secretword@atlanta.com;transport=tcp",
                Want {
                    password: Some("secretword"),
                    params: &[("transport", Some("tcp"))],
                    ..w(Scheme::Sip, Some("alice"), "atlanta.com", None)
                },
            ),
            (
                "sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com",
                Want {
                    params: &[("method", Some("REGISTER"))],
                    headers: Some("to=alice%40atlanta.com"),
                    ..w(Scheme::Sip, None, "atlanta.com", None)
                },
            ),
            (
                "sip:user@example.com?Route=%3Csip:example.com%3E",
                Want {
                    headers: Some("Route=%3Csip:example.com%3E"),
                    ..w(Scheme::Sip, Some("user"), "example.com", None)
                },
            ),
            (
                "sip:sips%3Auser%40example.com@example.net",
                w(
                    Scheme::Sip,
                    Some("sips%3Auser%40example.com"),
                    "example.net",
                    None,
                ),
            ),
            (
                "sip:user;par=u%40example.net@example.com",
                w(
                    Scheme::Sip,
                    Some("user;par=u%40example.net"),
                    "example.com",
                    None,
                ),
            ),
            (
                "sip:null-%00-null@example.com",
                w(Scheme::Sip, Some("null-%00-null"), "example.com", None),
            ),
            (
                "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com",
                Want {
                    password: Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"),
                    ..w(
                        Scheme::Sip,
                        Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"),
                        "example.com",
                        None,
                    )
                },
            ),
            (
                "tel:+1-201-555-0123;phone-context=example.com",
                Want {
                    params: &[("phone-context", Some("example.com"))],
                    ..w(Scheme::Tel, Some("+1-201-555-0123"), "", None)
                },
            ),
            (
                "soap.beep://192.0.2.103:3002",
                w(Scheme::Other, None, "", None),
            ),
            (
                "nobodyKnowsThisScheme:totallyopaquecontent",
                w(Scheme::Other, None, "", None),
            ),
            ("http://www.example.com", w(Scheme::Other, None, "", None)),
        ];
        for (s, want) in cases {
            let u = Uri::parse(s).unwrap_or_else(|e| panic!("{e}: {s}"));
            assert_eq!(u.to_string(), s, "print-back of {s}");
            assert_eq!(u.scheme(), want.scheme, "{s}");
            assert_eq!(u.user(), want.user, "{s}");
            assert_eq!(u.password(), want.password, "{s}");
            assert_eq!(u.host(), want.host, "{s}");
            assert_eq!(u.port(), want.port, "{s}");
            assert_eq!(u.params().collect::<Vec<_>>(), want.params, "{s}");
            assert_eq!(u.headers(), want.headers, "{s}");
        }
    }

    #[test]
    fn errors_table() {
        let cases: &[(&str, UriError)] = &[
            ("", UriError::Empty),
            ("alice", UriError::NoScheme),
            ("<sip:user@example.com>", UriError::BadScheme),
            ("1sip:a", UriError::BadScheme),
            ("sip:user@example.com; lr", UriError::Whitespace),
            ("sip:2001:db8::10", UriError::BadPort),
            ("sip:a@b:70000", UriError::BadPort),
            ("sip:a@b:", UriError::BadPort),
            ("sip:a@", UriError::EmptyHost),
            ("sip:", UriError::EmptyHost),
            ("sip:a@[2001:db8::1", UriError::UnclosedIpv6),
            ("sip:a@[xyz]", UriError::BadHost),
            ("sip:a@b>c", UriError::Trailing),
            ("sip:a@/x", UriError::BadHost),
        ];
        for (s, e) in cases {
            assert_eq!(Uri::parse(s).err(), Some(*e), "{s}");
        }
    }

    #[test]
    fn helpers() {
        let u: Uri = "sip:[2001:db8::1]:5060;LR;maddr=x".parse().expect("valid");
        assert_eq!(u.host_unbracketed(), "2001:db8::1");
        assert!(u.has_lr());
        assert_eq!(u.param("MADDR"), Some(Some("x")));
        assert_eq!(u.params_str(), ";LR;maddr=x");
        assert!(u.is_sip());
        assert_eq!(u.scheme_str(), "sip");
        assert_eq!(u.after_scheme(), "[2001:db8::1]:5060;LR;maddr=x");
    }
}
