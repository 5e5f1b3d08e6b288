//! The one host:port grammar of the crate, and SIP URIs read as a place to
//! send to: host = IPv4 | `[IPv6]` | name, port 1..65535, `;transport=`.
//! Configuration (duplicate_uri, `listen=`), script destinations
//! (sip_trace's URI, forward/t_relay targets) and database URLs all split
//! and check addresses here, so an address one of them accepts is not
//! refused by another at run time.
//!
//! Pure and std only (plus [`Transport`]); no DNS: a name stays a name,
//! the caller resolves it. [`Uri`](super::Uri) is the lenient reader of
//! URIs inside messages; this is the strict one for addresses a person
//! wrote.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::transport::{Transport, TransportError};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    Ip(IpAddr),
    /// A name for the resolver (RFC 3261 §25.1 hostname, plus `_`), or a
    /// dotted quad out of range such as `10.0.0.300`, which resolvers see
    /// as a name too.
    Name(String),
}

impl Host {
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Host::Ip(ip) => Some(*ip),
            Host::Name(_) => None,
        }
    }

    /// IPv6 without brackets: what `ToSocketAddrs` and `IpAddr` take.
    pub(crate) fn unbracketed(&self) -> String {
        match self {
            Host::Ip(ip) => ip.to_string(),
            Host::Name(n) => n.clone(),
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(IpAddr::V6(v6)) => write!(f, "[{v6}]"),
            Host::Ip(IpAddr::V4(v4)) => write!(f, "{v4}"),
            Host::Name(n) => f.write_str(n),
        }
    }
}

/// Why an address was refused. Messages name the offending part; callers
/// add the whole text and where it was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddrError {
    #[error("missing host")]
    EmptyHost,
    #[error("'{0}' is not a valid host name or IP address")]
    BadHost(String),
    #[error("an IPv6 address must be in brackets, e.g. [::1]:5060")]
    UnbracketedIpv6,
    #[error("malformed bracketed IPv6 address '{0}'; write it as [2001:db8::1]")]
    BadIpv6(String),
    #[error("port '{0}' is not a number from 1 to 65535")]
    BadPort(String),
    #[error("not a sip: or sips: URI")]
    NotSip,
    #[error("transport '{0}' is not known; use udp, tcp or tls")]
    BadTransport(String),
}

/// `host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub host: Host,
    pub port: Option<u16>,
}

impl HostPort {
    /// `host[:port]`; an IPv6 address must be bracketed (`[::1]:5060`)
    /// since its colons would otherwise swallow the port.
    pub fn parse(s: &str) -> Result<HostPort, AddrError> {
        if let Some(bracketed) = s.strip_prefix('[') {
            let bad = || AddrError::BadIpv6(s.to_string());
            let (inner, after) = bracketed.split_once(']').ok_or_else(bad)?;
            let v6: Ipv6Addr = inner.parse().map_err(|_| bad())?;
            let port = match after {
                "" => None,
                _ => Some(parse_port(after.strip_prefix(':').ok_or_else(bad)?)?),
            };
            return Ok(HostPort {
                host: Host::Ip(IpAddr::V6(v6)),
                port,
            });
        }
        if s.matches(':').count() > 1 {
            return Err(AddrError::UnbracketedIpv6);
        }
        let (host, port) = match s.split_once(':') {
            Some((h, p)) => (h, Some(parse_port(p)?)),
            None => (s, None),
        };
        Ok(HostPort {
            host: parse_host(host)?,
            port,
        })
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.host)?;
        match self.port {
            Some(p) => write!(f, ":{p}"),
            None => Ok(()),
        }
    }
}

/// An unbracketed host: IPv4 or name.
fn parse_host(h: &str) -> Result<Host, AddrError> {
    if h.is_empty() {
        return Err(AddrError::EmptyHost);
    }
    if let Ok(v4) = h.parse::<Ipv4Addr>() {
        return Ok(Host::Ip(IpAddr::V4(v4)));
    }
    // RFC 3261 §25.1 hostname characters; '_' as well since resolvers accept it.
    if h.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    {
        Ok(Host::Name(h.to_string()))
    } else {
        Err(AddrError::BadHost(h.to_string()))
    }
}

/// A port is 1–65535 in plain digits; 0 cannot be a destination.
pub fn parse_port(text: &str) -> Result<u16, AddrError> {
    let bad = || AddrError::BadPort(text.to_string());
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    text.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad)
}

/// A `sip:`/`sips:` URI read as a destination: where to send and how.
/// User part, other parameters and headers are ignored, as Kamailio does
/// for duplicate_uri and sip_trace's URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriTarget {
    pub sips: bool,
    pub host: Host,
    pub port: Option<u16>,
    /// The last `;transport=` (scheme and parameter names are
    /// case-insensitive).
    pub transport: Option<Transport>,
}

impl UriTarget {
    pub fn parse(uri: &str) -> Result<UriTarget, AddrError> {
        let (scheme, rest) = uri.split_once(':').ok_or(AddrError::NotSip)?;
        let sips = if scheme.eq_ignore_ascii_case("sip") {
            false
        } else if scheme.eq_ignore_ascii_case("sips") {
            true
        } else {
            return Err(AddrError::NotSip);
        };
        let rest = rest.split_once('?').map_or(rest, |(before, _)| before);
        // The user part may hold ';' (RFC 3261 §19.1.1 user params): the
        // host starts after the last '@'.
        let rest = rest.rsplit_once('@').map_or(rest, |(_, after)| after);
        let (hostport, params) = rest.split_once(';').unwrap_or((rest, ""));
        let hp = HostPort::parse(hostport)?;
        let mut transport = None;
        for param in params.split(';') {
            let (name, value) = param.split_once('=').unwrap_or((param, ""));
            if name.trim().eq_ignore_ascii_case("transport") {
                let value = value.trim();
                transport = Some(Transport::parse(value).map_err(|e| match e {
                    TransportError::Unserved(u) => AddrError::BadTransport(u.to_string()),
                    TransportError::Unknown(_) => AddrError::BadTransport(value.to_string()),
                })?);
            }
        }
        Ok(UriTarget {
            sips,
            host: hp.host,
            port: hp.port,
            transport,
        })
    }
}

/// A `listen=` / `alias=` value as Kamailio's config grammar writes it:
/// `[proto:]host[:port]`, the host `*`, a name, an IP, `[IPv6]` or a bare
/// IPv6 address (then without a port: its colons would swallow it). Only
/// split here, not checked: the config layer checks the protocol (every
/// name Kamailio has parses, served or not) and the port range with the
/// value's position, and binding decides the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenForm<'a> {
    /// As written (any case).
    pub proto: Option<&'a str>,
    /// Without brackets.
    pub host: &'a str,
    /// The digits as written, unchecked for range (config.rs reports
    /// "port N out of range").
    pub port: Option<u32>,
}

/// Why a listen-form value could not be split; each message quotes the
/// whole value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListenFormError {
    #[error("missing ']' in address '{0}'")]
    UnclosedBracket(String),
    #[error("unexpected '{after}' after ']' in address '{text}'")]
    AfterBracket { after: String, text: String },
    #[error("missing host in address '{0}'")]
    EmptyHost(String),
    #[error("invalid port '{port}' in address '{text}'")]
    BadPort { port: String, text: String },
    /// Digits, but more than a u32 holds.
    #[error("invalid port '{0}'")]
    HugePort(String),
}

impl<'a> ListenForm<'a> {
    pub fn parse(text: &'a str) -> Result<ListenForm<'a>, ListenFormError> {
        let (proto, rest) = match text.split_once(':') {
            Some((p, r)) if !matches!(Transport::parse(p), Err(TransportError::Unknown(_))) => {
                (Some(p), r)
            }
            _ => (None, text),
        };
        let (host, port) = if let Some(r) = rest.strip_prefix('[') {
            let end = r
                .find(']')
                .ok_or_else(|| ListenFormError::UnclosedBracket(text.to_string()))?;
            let after = &r[end + 1..];
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => {
                    return Err(ListenFormError::AfterBracket {
                        after: after.to_string(),
                        text: text.to_string(),
                    });
                }
            };
            (&r[..end], port)
        } else if rest.matches(':').count() > 1 {
            (rest, None)
        } else {
            match rest.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            }
        };
        if host.is_empty() {
            return Err(ListenFormError::EmptyHost(text.to_string()));
        }
        let port = match port {
            None => None,
            Some(p) if !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()) => Some(
                p.parse::<u32>()
                    .map_err(|_| ListenFormError::HugePort(p.to_string()))?,
            ),
            Some(p) => {
                return Err(ListenFormError::BadPort {
                    port: p.to_string(),
                    text: text.to_string(),
                });
            }
        };
        Ok(ListenForm { proto, host, port })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &str) -> Host {
        Host::Name(n.to_string())
    }

    fn ip(s: &str) -> Host {
        Host::Ip(s.parse().unwrap())
    }

    fn check(input: &str, expect: Result<(Host, Option<u16>), AddrError>) {
        let got = HostPort::parse(input).map(|hp| (hp.host, hp.port));
        assert_eq!(got, expect, "{input:?}");
        if let Ok((h, p)) = expect {
            // What is printed parses back to the same address.
            let printed = HostPort { host: h, port: p }.to_string();
            assert_eq!(
                HostPort::parse(&printed).map(|hp| (hp.host, hp.port)),
                got,
                "{printed}"
            );
        }
    }

    #[test]
    fn host_port() {
        use AddrError::*;
        let s = String::from;
        let cases = [
            ("10.1.1.1:5888", Ok((ip("10.1.1.1"), Some(5888)))),
            ("10.1.1.1", Ok((ip("10.1.1.1"), None))),
            ("[::1]:9060", Ok((ip("::1"), Some(9060)))),
            ("[2001:db8::7]", Ok((ip("2001:db8::7"), None))),
            (
                "[::ffff:192.0.2.2]:5060",
                Ok((ip("::ffff:192.0.2.2"), Some(5060))),
            ),
            (
                "homer.example.com:9060",
                Ok((name("homer.example.com"), Some(9060))),
            ),
            ("capture_node-1.lan", Ok((name("capture_node-1.lan"), None))),
            ("10.0.0.300", Ok((name("10.0.0.300"), None))),
            ("h:65535", Ok((name("h"), Some(65535)))),
            ("h:1", Ok((name("h"), Some(1)))),
            ("", Err(EmptyHost)),
            (":5060", Err(EmptyHost)),
            ("h:", Err(BadPort(s("")))),
            ("h:0", Err(BadPort(s("0")))),
            ("h:65536", Err(BadPort(s("65536")))),
            ("h:99999999999", Err(BadPort(s("99999999999")))),
            ("h:50x", Err(BadPort(s("50x")))),
            ("h:+80", Err(BadPort(s("+80")))),
            ("[::1]:", Err(BadPort(s("")))),
            ("::1", Err(UnbracketedIpv6)),
            ("2001:db8::1:5060", Err(UnbracketedIpv6)),
            ("[::1", Err(BadIpv6(s("[::1")))),
            ("[zz::1]:5060", Err(BadIpv6(s("[zz::1]:5060")))),
            ("[10.0.0.1]", Err(BadIpv6(s("[10.0.0.1]")))),
            ("[::1]5060", Err(BadIpv6(s("[::1]5060")))),
            ("host name", Err(BadHost(s("host name")))),
            ("a/b:5", Err(BadHost(s("a/b")))),
        ];
        for (input, expect) in cases {
            check(input, expect);
        }
    }

    fn check_uri(
        input: &str,
        expect: Result<(bool, Host, Option<u16>, Option<Transport>), AddrError>,
    ) {
        let got = UriTarget::parse(input).map(|t| (t.sips, t.host, t.port, t.transport));
        assert_eq!(got, expect, "{input:?}");
    }

    #[test]
    fn uri_targets() {
        use AddrError::*;
        use Transport::{Tcp, Tls, Udp};
        let s = String::from;
        let cases = [
            (
                "sip:10.1.1.1:5888",
                Ok((false, ip("10.1.1.1"), Some(5888), None)),
            ),
            (
                "SIP:Homer.Example;TRANSPORT=TCP",
                Ok((false, name("Homer.Example"), None, Some(Tcp))),
            ),
            (
                "sips:127.0.0.1:5061",
                Ok((true, ip("127.0.0.1"), Some(5061), None)),
            ),
            (
                "sip:[::1]:9060;transport=udp",
                Ok((false, ip("::1"), Some(9060), Some(Udp))),
            ),
            (
                "sip:h;transport=tls",
                Ok((false, name("h"), None, Some(Tls))),
            ),
            (
                "sip:10.0.0.1;transport=tcp;transport=udp",
                Ok((false, ip("10.0.0.1"), None, Some(Udp))),
            ),
            ("sip:10.0.0.1;lr", Ok((false, ip("10.0.0.1"), None, None))),
            (
                "sip:trace@10.0.0.1:5070",
                Ok((false, ip("10.0.0.1"), Some(5070), None)),
            ),
            (
                "sip:user;par=u%40x@10.0.0.1",
                Ok((false, ip("10.0.0.1"), None, None)),
            ),
            (
                "sip:10.0.0.1:5070?Subject=x",
                Ok((false, ip("10.0.0.1"), Some(5070), None)),
            ),
            ("sip:10.0.0.1;transport=sctp", Err(BadTransport(s("sctp")))),
            ("sip:10.0.0.1;transport=ws", Err(BadTransport(s("ws")))),
            ("sip:10.0.0.1;transport", Err(BadTransport(s("")))),
            ("sip:10.0.0.1;transport=quic", Err(BadTransport(s("quic")))),
            ("udp:10.0.0.1:5060", Err(NotSip)),
            ("10.0.0.1", Err(NotSip)),
            ("http://x", Err(NotSip)),
            ("sip:", Err(EmptyHost)),
            ("sip:user@", Err(EmptyHost)),
            ("sip:h:99999", Err(BadPort(s("99999")))),
            ("sip:2001:db8::1", Err(UnbracketedIpv6)),
        ];
        for (input, expect) in cases {
            check_uri(input, expect);
        }
    }

    #[test]
    fn listen_form_keeps_what_it_cannot_judge() {
        // A protocol name is recognised whatever its case and served or
        // not; an unknown one is the host. The port is not range-checked.
        let f = ListenForm::parse("SCTP:host:70000").unwrap();
        assert_eq!(
            (f.proto, f.host, f.port),
            (Some("SCTP"), "host", Some(70000))
        );
        let f = ListenForm::parse("sipx:5060").unwrap();
        assert_eq!((f.proto, f.host, f.port), (None, "sipx", Some(5060)));
        assert_eq!(
            ListenForm::parse("h:99999999999").unwrap_err().to_string(),
            "invalid port '99999999999'"
        );
    }
}
