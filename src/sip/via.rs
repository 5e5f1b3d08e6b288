//! One Via value (RFC 3261 §20.42, §25.1 `via-parm`) decoded on demand:
//! sent-protocol, sent-by host and port, parameters (branch, received,
//! rport with or without value, maddr, ttl), with LWS and folds allowed
//! wherever the grammar allows them. Also where a response goes (RFC 3261
//! §18.2.2 with RFC 3581 rport). Depends only on `lex`.

use std::fmt;
use std::ops::Range;

use super::lex::{self, Param};

/// RFC 3261 §8.1.1.7: branches of RFC 3261 elements start with this.
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// RFC 3261 §18.1.1 / §19.1.2 default ports.
pub const DEFAULT_PORT: u16 = 5060;
pub const DEFAULT_TLS_PORT: u16 = 5061;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ViaError {
    /// The value holds bytes that are not UTF-8 (a Via is ASCII).
    NotUtf8,
    /// Not `name / version / transport`.
    BadProtocol,
    MissingHost,
    BadHost,
    BadPort,
    /// Text after sent-by that is not `;params`.
    Trailing,
    /// `;;` or `;=x` (RFC 4475 §3.1.2.1).
    EmptyParam,
    /// A parameter name that is not a token, or a value with white space.
    BadParam,
}

impl fmt::Display for ViaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ViaError::NotUtf8 => "Via holds non-UTF-8 bytes",
            ViaError::BadProtocol => "Via does not start with protocol/version/transport",
            ViaError::MissingHost => "Via has no sent-by host",
            ViaError::BadHost => "Via sent-by host is invalid",
            ViaError::BadPort => "Via sent-by port is invalid",
            ViaError::Trailing => "unexpected text after Via sent-by",
            ViaError::EmptyParam => "empty Via parameter",
            ViaError::BadParam => "invalid Via parameter",
        })
    }
}

impl std::error::Error for ViaError {}

/// A decoded Via value borrowing its text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Via<'a> {
    src: &'a str,
    /// `SIP`.
    pub protocol: &'a str,
    /// `2.0`.
    pub version: &'a str,
    /// `UDP`, `TCP`, `TLS`, `SCTP`, or an extension.
    pub transport: &'a str,
    /// sent-by host as written (IPv6 with brackets).
    pub host: &'a str,
    pub port: Option<u16>,
    params_start: usize,
}

fn skip_lws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && lex::is_lws(b[i]) {
        i += 1;
    }
    i
}

fn token(b: &[u8], i: &mut usize) -> Range<usize> {
    let start = *i;
    while *i < b.len() && lex::is_token(b[*i]) {
        *i += 1;
    }
    start..*i
}

impl<'a> Via<'a> {
    pub fn parse(src: &'a str) -> Result<Via<'a>, ViaError> {
        let b = src.as_bytes();
        let get = |r: Range<usize>| src.get(r).unwrap_or("");
        let mut i = skip_lws(b, 0);
        let mut parts = [0..0, 0..0, 0..0];
        for (n, part) in parts.iter_mut().enumerate() {
            if n > 0 {
                i = skip_lws(b, i);
                if b.get(i) != Some(&b'/') {
                    return Err(ViaError::BadProtocol);
                }
                i = skip_lws(b, i + 1);
            }
            *part = token(b, &mut i);
            if part.start == part.end {
                return Err(ViaError::BadProtocol);
            }
        }
        i = skip_lws(b, i);
        let host_start = i;
        if b.get(i) == Some(&b'[') {
            let close = lex::find_byte(b, i, b']').ok_or(ViaError::BadHost)?;
            if !b[i + 1..close]
                .iter()
                .all(|&c| c.is_ascii_hexdigit() || c == b':' || c == b'.')
            {
                return Err(ViaError::BadHost);
            }
            i = close + 1;
        } else {
            while i < b.len()
                && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'-' | b'.' | b'_'))
            {
                i += 1;
            }
        }
        if i == host_start {
            return Err(if i >= b.len() || b[i] == b';' {
                ViaError::MissingHost
            } else {
                ViaError::BadHost
            });
        }
        let host = host_start..i;
        i = skip_lws(b, i);
        let mut port = None;
        if b.get(i) == Some(&b':') {
            i = skip_lws(b, i + 1);
            let digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
            let p = lex::parse_u64(&b[i..i + digits]).and_then(|p| u16::try_from(p).ok());
            port = Some(p.ok_or(ViaError::BadPort)?);
            i = skip_lws(b, i + digits);
        }
        if i < b.len() && b[i] != b';' {
            return Err(ViaError::Trailing);
        }
        for p in lex::params(b, i) {
            if p.name.is_empty() {
                return Err(ViaError::EmptyParam);
            }
            if !lex::all_token(&b[p.name.clone()]) {
                return Err(ViaError::BadParam);
            }
            if let Some(v) = p.value {
                // gen-value = token / host / quoted-string (RFC 3261 §25.1):
                // a quote anywhere else would hide the parameters after it
                // from every later lookup (received, rport, branch).
                let v = &b[v];
                let ok = if v.first() == Some(&b'"') {
                    lex::skip_quoted(v, 0) == Some(v.len())
                } else {
                    !v.iter().any(|&c| lex::is_lws(c) || c == b'"')
                };
                if !ok {
                    return Err(ViaError::BadParam);
                }
            }
        }
        let [protocol, version, transport] = parts;
        Ok(Via {
            src,
            protocol: get(protocol),
            version: get(version),
            transport: get(transport),
            host: get(host),
            port,
            params_start: i,
        })
    }

    pub(crate) fn parse_bytes(v: &'a [u8]) -> Result<Via<'a>, ViaError> {
        Via::parse(std::str::from_utf8(v).map_err(|_| ViaError::NotUtf8)?)
    }

    /// The whole value as parsed.
    pub fn as_str(&self) -> &'a str {
        self.src
    }

    /// sent-by host without IPv6 brackets.
    pub(crate) fn host_unbracketed(&self) -> &'a str {
        unbracket(self.host)
    }

    /// Raw parameters with ranges into [`Via::as_str`] (for edits).
    pub(crate) fn raw_params(&self) -> impl Iterator<Item = Param> + 'a {
        lex::params(self.src.as_bytes(), self.params_start)
    }

    /// Parameters in order as (name, value).
    pub fn params(&self) -> impl Iterator<Item = (&'a str, Option<&'a str>)> + 'a {
        let src = self.src;
        self.raw_params().map(move |p| {
            (
                src.get(p.name).unwrap_or(""),
                p.value.map(|v| src.get(v).unwrap_or("")),
            )
        })
    }

    /// A parameter by case-insensitive name: `Some(None)` if valueless.
    pub fn param(&self, name: &str) -> Option<Option<&'a str>> {
        self.params()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    pub fn branch(&self) -> Option<&'a str> {
        self.param("branch").flatten()
    }

    /// The branch starts with the RFC 3261 magic cookie and carries an id
    /// after it (RFC 4475 §3.2.1 sends the bare cookie).
    pub(crate) fn has_rfc3261_branch(&self) -> bool {
        self.branch()
            .is_some_and(|b| b.len() > MAGIC_COOKIE.len() && b.starts_with(MAGIC_COOKIE))
    }

    pub fn received(&self) -> Option<&'a str> {
        self.param("received").flatten()
    }

    /// RFC 3581: `Some(None)` for a bare `;rport`, `Some(Some(port))` once
    /// filled in, `None` when absent.
    pub fn rport(&self) -> Option<Option<&'a str>> {
        self.param("rport")
    }

    /// Read for completeness; replies ignore it (`response_addr`), as
    /// Kamailio does.
    #[allow(dead_code)]
    pub(crate) fn maddr(&self) -> Option<&'a str> {
        self.param("maddr").flatten()
    }

    pub fn ttl(&self) -> Option<u8> {
        self.param("ttl")
            .flatten()
            .and_then(|t| t.parse::<u8>().ok())
    }

    fn default_port(&self) -> u16 {
        if self.transport.eq_ignore_ascii_case("TLS") {
            DEFAULT_TLS_PORT
        } else {
            DEFAULT_PORT
        }
    }

    /// Where a response to the request carrying this Via goes, for an
    /// unreliable transport, without DNS (RFC 3261 §18.2.2, RFC 3581 §4):
    /// `received` (added by whoever received the request when sent-by
    /// was not the source IP), else sent-by when it is an IP literal; at
    /// `rport` once filled in, else the sent-by port (or the transport's
    /// default). `maddr` is ignored, as Kamailio does. None when sent-by
    /// is a name and no `received` says where it came from.
    pub(crate) fn response_addr(&self) -> Option<std::net::SocketAddr> {
        let sent_port = self.port.unwrap_or_else(|| self.default_port());
        let host = self.received().unwrap_or(self.host);
        let ip: std::net::IpAddr = unbracket(host).parse().ok()?;
        let port = match self.rport() {
            Some(Some(p)) => p.parse::<u16>().unwrap_or(sent_port),
            _ => sent_port,
        };
        Some(std::net::SocketAddr::new(ip, port))
    }
}

fn unbracket(h: &str) -> &str {
    h.strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (value, protocol/version/transport, host, port, params)
    #[test]
    fn parse_table() {
        type Case = (
            &'static str,
            [&'static str; 3],
            &'static str,
            Option<u16>,
            &'static [(&'static str, Option<&'static str>)],
        );
        let cases: &[Case] = &[
            (
                "SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds",
                ["SIP", "2.0", "UDP"],
                "pc33.atlanta.com",
                None,
                &[("branch", Some("z9hG4bK776asdhds"))],
            ),
            (
                "SIP/2.0/TCP 192.0.2.1:5070;rport;branch=z9hG4bKx",
                ["SIP", "2.0", "TCP"],
                "192.0.2.1",
                Some(5070),
                &[("rport", None), ("branch", Some("z9hG4bKx"))],
            ),
            (
                "sip/2.0/udp h;RPORT=1234;Received=10.0.0.1",
                ["sip", "2.0", "udp"],
                "h",
                None,
                &[("RPORT", Some("1234")), ("Received", Some("10.0.0.1"))],
            ),
            (
                "SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw",
                ["SIP", "2.0", "UDP"],
                "192.0.2.2",
                None,
                &[("branch", Some("390skdjuw"))],
            ),
            (
                "SIP  / 2.0  / TCP     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8",
                ["SIP", "2.0", "TCP"],
                "spindle.example.com",
                None,
                &[("branch", Some("z9hG4bK9ikj8"))],
            ),
            (
                "SIP  /    2.0   / UDP  192.168.255.111   ; branch=\r\n z9hG4bK30239",
                ["SIP", "2.0", "UDP"],
                "192.168.255.111",
                None,
                &[("branch", Some("z9hG4bK30239"))],
            ),
            (
                "SIP/2.0/UDP [2001:db8::9:1];received=[2001:db8::9:255];branch=z9hG4bKas3-111",
                ["SIP", "2.0", "UDP"],
                "[2001:db8::9:1]",
                None,
                &[
                    ("received", Some("[2001:db8::9:255]")),
                    ("branch", Some("z9hG4bKas3-111")),
                ],
            ),
            (
                "SIP/2.0/UDP [2001:db8::9:1]:6050;branch=z9hG4bKas3-111",
                ["SIP", "2.0", "UDP"],
                "[2001:db8::9:1]",
                Some(6050),
                &[("branch", Some("z9hG4bKas3-111"))],
            ),
            (
                "SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en",
                ["SIP", "2.0", "UNKNOWN"],
                "t4.example.com",
                None,
                &[("branch", Some("z9hG4bKasd0f3en"))],
            ),
            (
                "SIP/2.0/TCP host1.example.com;branch=z9hG4bK-.!%66*_+`'~",
                ["SIP", "2.0", "TCP"],
                "host1.example.com",
                None,
                &[("branch", Some("z9hG4bK-.!%66*_+`'~"))],
            ),
            (
                "SIP/2.0/UDP iftgw.example.com",
                ["SIP", "2.0", "UDP"],
                "iftgw.example.com",
                None,
                &[],
            ),
            (
                "SIP/2.0/UDP h ; x=\"a b\"",
                ["SIP", "2.0", "UDP"],
                "h",
                None,
                &[("x", Some("\"a b\""))],
            ),
        ];
        for (s, proto, host, port, params) in cases {
            let v = Via::parse(s).unwrap_or_else(|e| panic!("{e}: {s:?}"));
            assert_eq!([v.protocol, v.version, v.transport], *proto, "{s:?}");
            assert_eq!(v.host, *host, "{s:?}");
            assert_eq!(v.port, *port, "{s:?}");
            assert_eq!(v.params().collect::<Vec<_>>(), *params, "{s:?}");
        }
    }

    #[test]
    fn errors_table() {
        let cases: &[(&str, ViaError)] = &[
            ("", ViaError::BadProtocol),
            ("SIP/2.0 host", ViaError::BadProtocol),
            ("SIP/2.0/UDP", ViaError::MissingHost),
            ("SIP/2.0/UDP ;branch=x", ViaError::MissingHost),
            ("SIP/2.0/UDP 192.0.2.15;;", ViaError::EmptyParam),
            ("SIP/2.0/UDP h;=x", ViaError::EmptyParam),
            ("SIP/2.0/UDP h:99999", ViaError::BadPort),
            ("SIP/2.0/UDP h:", ViaError::BadPort),
            ("SIP/2.0/UDP h junk", ViaError::Trailing),
            ("SIP/2.0/UDP <h>", ViaError::BadHost),
            ("SIP/2.0/UDP [zz]", ViaError::BadHost),
            ("SIP/2.0/UDP h;branch=a b", ViaError::BadParam),
            ("SIP/2.0/UDP h;bra nch=a", ViaError::BadParam),
            // Found by fuzz/ (target sip): a quote inside a token value
            // opened a quoted string that swallowed the parameters after
            // it, so `received` went unseen and was added again per hop.
            (
                "SIP/2.0/UDP funky.example.com;branch=z9hG4\"Kkdjuw;received=192.0.2.1",
                ViaError::BadParam,
            ),
            ("SIP/2.0/UDP h;x=\"open;branch=z9hG4bK1", ViaError::BadParam),
            ("SIP/2.0/UDP h;x=\"a\"b;branch=z9hG4bK1", ViaError::BadParam),
        ];
        for (s, e) in cases {
            assert_eq!(Via::parse(s).err(), Some(*e), "{s:?}");
        }
        assert_eq!(
            Via::parse_bytes(b"SIP/2.0/UDP \xff").err(),
            Some(ViaError::NotUtf8)
        );
    }

    #[test]
    fn response_addr_table() {
        let cases: &[(&str, Option<&str>)] = &[
            // A name with no received: nowhere (no DNS for replies).
            ("SIP/2.0/UDP pc33.atlanta.com", None),
            (
                "SIP/2.0/UDP pc33.atlanta.com:5070;received=192.0.2.9",
                Some("192.0.2.9:5070"),
            ),
            (
                "SIP/2.0/TLS pc33.atlanta.com;received=192.0.2.9",
                Some("192.0.2.9:5061"),
            ),
            (
                "SIP/2.0/UDP 10.0.0.1:5070;received=192.0.2.1",
                Some("192.0.2.1:5070"),
            ),
            (
                "SIP/2.0/UDP 10.0.0.1;received=192.0.2.1",
                Some("192.0.2.1:5060"),
            ),
            (
                "SIP/2.0/UDP 10.0.0.1:5070;rport=34567;received=192.0.2.1",
                Some("192.0.2.1:34567"),
            ),
            ("SIP/2.0/UDP 10.0.0.1:5070;rport", Some("10.0.0.1:5070")),
            // maddr is ignored for replies, as Kamailio does.
            (
                "SIP/2.0/UDP h:5070;maddr=224.0.1.75;received=192.0.2.1",
                Some("192.0.2.1:5070"),
            ),
            ("SIP/2.0/UDP h:5070;maddr=224.0.1.75", None),
            (
                "SIP/2.0/UDP [2001:db8::9:1];received=[2001:db8::9:255]",
                Some("[2001:db8::9:255]:5060"),
            ),
            (
                "SIP/2.0/UDP [2001:db8::9:1];received=2001:db8::9:255",
                Some("[2001:db8::9:255]:5060"),
            ),
            (
                "SIP/2.0/UDP [2001:db8::9:1]:6050",
                Some("[2001:db8::9:1]:6050"),
            ),
        ];
        for (s, want) in cases {
            let v = Via::parse(s).unwrap_or_else(|e| panic!("{e}: {s:?}"));
            let want = want.map(|w| w.parse::<std::net::SocketAddr>().unwrap());
            assert_eq!(v.response_addr(), want, "{s:?}");
        }
    }

    #[test]
    fn param_helpers() {
        let v = Via::parse("SIP/2.0/UDP h;Branch=z9hG4bKabc;rport;ttl=16;maddr=m").expect("valid");
        assert_eq!(v.branch(), Some("z9hG4bKabc"));
        assert!(v.has_rfc3261_branch());
        assert_eq!(v.rport(), Some(None));
        assert_eq!(v.ttl(), Some(16));
        assert_eq!(v.maddr(), Some("m"));
        assert_eq!(v.received(), None);
        let bare = Via::parse("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK").expect("valid");
        assert!(!bare.has_rfc3261_branch());
    }
}
