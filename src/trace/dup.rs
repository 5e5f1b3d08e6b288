//! Where duplicates of traced messages go: parsing of the `duplicate_uri`
//! modparam and of the URI argument of `sip_trace("sip:host:port")` into a
//! host, a port and a transport. Kamailio parses both as SIP URIs and uses
//! only host and port (default 5060) plus `;transport=` (UDP unless `tcp`).
//!
//! Pure and std-only: no DNS (the reactor resolves host names at start-up),
//! no sockets. [`DupTarget::socket_addr`] serves IP literals directly.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// RFC 3261 §19.1.2: the default port of a sip: URI.
const DEFAULT_SIP_PORT: u16 = 5060;

/// Transport used to send the duplicates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DupTransport {
    #[default]
    Udp,
    Tcp,
}

/// A parsed duplicate destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DupTarget {
    /// Host name or IP literal; an IPv6 literal is kept without brackets.
    pub host: String,
    pub port: u16,
    pub transport: DupTransport,
}

/// Why a duplicate URI was refused; each message quotes the URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DupError {
    Empty,
    NotSip {
        uri: String,
    },
    EmptyHost {
        uri: String,
    },
    BadHost {
        uri: String,
        host: String,
    },
    UnbracketedIpv6 {
        uri: String,
    },
    BadIpv6 {
        uri: String,
    },
    BadPort {
        uri: String,
        port: String,
    },
    UnsupportedTransport {
        uri: String,
        transport: String,
    },
    /// `send_sock_addr` must name a local IP address and port.
    NotLocalSocket {
        value: String,
    },
}

impl fmt::Display for DupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DupError::Empty => write!(
                f,
                "duplicate URI is empty; give a destination such as sip:10.1.1.1:5888"
            ),
            DupError::NotSip { uri } => write!(
                f,
                "duplicate URI '{uri}' is not a sip: URI; write it as sip:host[:port][;transport=tcp]"
            ),
            DupError::EmptyHost { uri } => write!(
                f,
                "duplicate URI '{uri}' has no host; write it as sip:host[:port]"
            ),
            DupError::BadHost { uri, host } => write!(
                f,
                "duplicate URI '{uri}': '{host}' is not a valid host name or IP address"
            ),
            DupError::UnbracketedIpv6 { uri } => write!(
                f,
                "duplicate URI '{uri}': an IPv6 address must be in brackets, e.g. sip:[::1]:9060"
            ),
            DupError::BadIpv6 { uri } => write!(
                f,
                "duplicate URI '{uri}': malformed bracketed IPv6 address; write it as sip:[2001:db8::1]:port"
            ),
            DupError::BadPort { uri, port } => write!(
                f,
                "duplicate URI '{uri}': port '{port}' is not a number from 1 to 65535"
            ),
            DupError::UnsupportedTransport { uri, transport } => write!(
                f,
                "duplicate URI '{uri}': transport '{transport}' is not supported for duplicates; \
                 use transport=udp (the default) or transport=tcp"
            ),
            DupError::NotLocalSocket { value } => write!(
                f,
                "'{value}' does not name a local socket; write it as sip:IP:PORT or udp:IP:PORT \
                 with the address of a listen= socket"
            ),
        }
    }
}

impl std::error::Error for DupError {}

impl DupTarget {
    /// Parse `sip:[user@]host[:port][;params][?headers]`. The scheme and
    /// parameter names are case-insensitive; user part, other parameters and
    /// headers are ignored, as Kamailio uses only host, port and transport.
    pub fn parse(uri: &str) -> Result<DupTarget, DupError> {
        let trimmed = uri.trim();
        if trimmed.is_empty() {
            return Err(DupError::Empty);
        }
        let owned = || trimmed.to_string();
        let rest = match trimmed.split_once(':') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("sip") => rest,
            _ => return Err(DupError::NotSip { uri: owned() }),
        };
        let rest = rest
            .split_once('?')
            .map_or(rest, |(before, _headers)| before);
        let (userhostport, params) = rest.split_once(';').unwrap_or((rest, ""));
        let hostport = userhostport
            .rsplit_once('@')
            .map_or(userhostport, |(_user, hp)| hp);

        let (host, port) = split_host_port(hostport, trimmed)?;
        let port = match port {
            None => DEFAULT_SIP_PORT,
            Some(text) => parse_port(text).ok_or_else(|| DupError::BadPort {
                uri: owned(),
                port: text.to_string(),
            })?,
        };

        let mut transport = DupTransport::Udp;
        for param in params.split(';') {
            let (name, value) = param.split_once('=').unwrap_or((param, ""));
            if !name.trim().eq_ignore_ascii_case("transport") {
                continue;
            }
            let value = value.trim();
            transport = if value.eq_ignore_ascii_case("udp") {
                DupTransport::Udp
            } else if value.eq_ignore_ascii_case("tcp") {
                DupTransport::Tcp
            } else {
                return Err(DupError::UnsupportedTransport {
                    uri: owned(),
                    transport: value.to_string(),
                });
            };
        }

        Ok(DupTarget {
            host: host.to_string(),
            port,
            transport,
        })
    }

    /// The destination when the host is an IP literal; `None` for a host
    /// name, which the reactor resolves.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        let ip: IpAddr = self.host.parse().ok()?;
        Some(SocketAddr::new(ip, self.port))
    }
}

impl fmt::Display for DupTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "sip:[{}]:{}", self.host, self.port)?;
        } else {
            write!(f, "sip:{}:{}", self.host, self.port)?;
        }
        match self.transport {
            DupTransport::Udp => Ok(()),
            DupTransport::Tcp => f.write_str(";transport=tcp"),
        }
    }
}

/// `send_sock_addr` (alias `force_send_sock`): the local socket copies
/// leave from. Kamailio takes a SIP URI (`sip:10.1.1.2:5000`); the socket
/// forms of `listen=` (`udp:10.1.1.2:5000`, `10.1.1.2:5000`, `[::1]:5000`)
/// are accepted too. The host must be an IP address: the socket must match
/// a listener, which has one.
pub fn parse_send_sock(value: &str) -> Result<SocketAddr, DupError> {
    let bad = || DupError::NotLocalSocket {
        value: value.trim().to_string(),
    };
    let v = value.trim();
    let scheme = v.split_once(':').map(|(p, _)| p.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("sip") => DupTarget::parse(v).ok().and_then(|t| t.socket_addr()),
        Some("udp") => v[4..].parse().ok(),
        _ => v.parse().ok(),
    }
    .ok_or_else(bad)
}

/// Split `host[:port]` or `[v6][:port]`; the host comes back without
/// brackets and already validated.
fn split_host_port<'a>(
    hostport: &'a str,
    uri: &str,
) -> Result<(&'a str, Option<&'a str>), DupError> {
    let err_uri = || uri.to_string();
    if let Some(bracketed) = hostport.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| DupError::BadIpv6 { uri: err_uri() })?;
        if host.parse::<Ipv6Addr>().is_err() {
            return Err(DupError::BadIpv6 { uri: err_uri() });
        }
        return match after {
            "" => Ok((host, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((host, Some(port))),
                None => Err(DupError::BadIpv6 { uri: err_uri() }),
            },
        };
    }
    if hostport.matches(':').count() > 1 {
        return Err(DupError::UnbracketedIpv6 { uri: err_uri() });
    }
    let (host, port) = match hostport.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (hostport, None),
    };
    if host.is_empty() {
        return Err(DupError::EmptyHost { uri: err_uri() });
    }
    // RFC 3261 §25.1 hostname characters; '_' as well since resolvers accept it.
    let valid = host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if !valid {
        return Err(DupError::BadHost {
            uri: err_uri(),
            host: host.to_string(),
        });
    }
    Ok((host, port))
}

/// A port is 1–65535 in plain digits; 0 cannot be a destination.
fn parse_port(text: &str) -> Option<u16> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u16>().ok().filter(|p| *p != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(host: &str, port: u16, transport: DupTransport) -> Result<DupTarget, DupError> {
        Ok(DupTarget {
            host: host.to_string(),
            port,
            transport,
        })
    }

    #[test]
    fn parse_cases() {
        use DupTransport::{Tcp, Udp};
        let s = |x: &str| x.to_string();
        let cases: Vec<(&str, Result<DupTarget, DupError>)> = vec![
            // The admin guide's example.
            ("sip:10.1.1.1:5888", ok("10.1.1.1", 5888, Udp)),
            ("sip:1.2.3.4", ok("1.2.3.4", 5060, Udp)),
            ("sip:[::1]:9060", ok("::1", 9060, Udp)),
            ("sip:[2001:db8::7]", ok("2001:db8::7", 5060, Udp)),
            (
                "sip:homer.example.com:9060;transport=tcp",
                ok("homer.example.com", 9060, Tcp),
            ),
            (
                "SIP:Homer.Example;TRANSPORT=TCP",
                ok("Homer.Example", 5060, Tcp),
            ),
            ("sip:10.0.0.1;lr;transport=udp", ok("10.0.0.1", 5060, Udp)),
            (
                "sip:10.0.0.1;transport=tcp;transport=udp",
                ok("10.0.0.1", 5060, Udp),
            ),
            ("sip:trace@10.0.0.1:5070", ok("10.0.0.1", 5070, Udp)),
            ("sip:10.0.0.1:5070?Subject=x", ok("10.0.0.1", 5070, Udp)),
            ("  sip:10.0.0.1:65535  ", ok("10.0.0.1", 65535, Udp)),
            (
                "sip:capture_node-1.lan",
                ok("capture_node-1.lan", 5060, Udp),
            ),
            ("", Err(DupError::Empty)),
            ("   ", Err(DupError::Empty)),
            (
                "10.0.0.1:5060",
                Err(DupError::NotSip {
                    uri: s("10.0.0.1:5060"),
                }),
            ),
            ("10.0.0.1", Err(DupError::NotSip { uri: s("10.0.0.1") })),
            (
                "udp:10.0.0.1:5060",
                Err(DupError::NotSip {
                    uri: s("udp:10.0.0.1:5060"),
                }),
            ),
            (
                "sips:10.0.0.1",
                Err(DupError::NotSip {
                    uri: s("sips:10.0.0.1"),
                }),
            ),
            ("sip:", Err(DupError::EmptyHost { uri: s("sip:") })),
            (
                "sip::5060",
                Err(DupError::EmptyHost {
                    uri: s("sip::5060"),
                }),
            ),
            (
                "sip:user@",
                Err(DupError::EmptyHost {
                    uri: s("sip:user@"),
                }),
            ),
            (
                "sip:;transport=tcp",
                Err(DupError::EmptyHost {
                    uri: s("sip:;transport=tcp"),
                }),
            ),
            (
                "sip:10.0.0.1:",
                Err(DupError::BadPort {
                    uri: s("sip:10.0.0.1:"),
                    port: s(""),
                }),
            ),
            (
                "sip:10.0.0.1:0",
                Err(DupError::BadPort {
                    uri: s("sip:10.0.0.1:0"),
                    port: s("0"),
                }),
            ),
            (
                "sip:10.0.0.1:65536",
                Err(DupError::BadPort {
                    uri: s("sip:10.0.0.1:65536"),
                    port: s("65536"),
                }),
            ),
            (
                "sip:10.0.0.1:50x",
                Err(DupError::BadPort {
                    uri: s("sip:10.0.0.1:50x"),
                    port: s("50x"),
                }),
            ),
            (
                "sip:10.0.0.1:+80",
                Err(DupError::BadPort {
                    uri: s("sip:10.0.0.1:+80"),
                    port: s("+80"),
                }),
            ),
            (
                "sip:[::1]:",
                Err(DupError::BadPort {
                    uri: s("sip:[::1]:"),
                    port: s(""),
                }),
            ),
            (
                "sip:::1",
                Err(DupError::UnbracketedIpv6 { uri: s("sip:::1") }),
            ),
            (
                "sip:2001:db8::1:5060",
                Err(DupError::UnbracketedIpv6 {
                    uri: s("sip:2001:db8::1:5060"),
                }),
            ),
            ("sip:[::1", Err(DupError::BadIpv6 { uri: s("sip:[::1") })),
            (
                "sip:[zz::1]:5060",
                Err(DupError::BadIpv6 {
                    uri: s("sip:[zz::1]:5060"),
                }),
            ),
            (
                "sip:[10.0.0.1]",
                Err(DupError::BadIpv6 {
                    uri: s("sip:[10.0.0.1]"),
                }),
            ),
            (
                "sip:[::1]5060",
                Err(DupError::BadIpv6 {
                    uri: s("sip:[::1]5060"),
                }),
            ),
            (
                "sip:host name",
                Err(DupError::BadHost {
                    uri: s("sip:host name"),
                    host: s("host name"),
                }),
            ),
            (
                "sip:10.0.0.1;transport=tls",
                Err(DupError::UnsupportedTransport {
                    uri: s("sip:10.0.0.1;transport=tls"),
                    transport: s("tls"),
                }),
            ),
            (
                "sip:10.0.0.1;transport",
                Err(DupError::UnsupportedTransport {
                    uri: s("sip:10.0.0.1;transport"),
                    transport: s(""),
                }),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(DupTarget::parse(input), want, "input {input:?}");
        }
    }

    #[test]
    fn socket_addr_only_for_ip_literals() {
        let cases = [
            ("sip:10.1.1.1:5888", Some("10.1.1.1:5888")),
            ("sip:[::1]:9060", Some("[::1]:9060")),
            ("sip:1.2.3.4", Some("1.2.3.4:5060")),
            ("sip:homer.example.com:9060", None),
            ("sip:10.0.0.300", None),
        ];
        for (input, want) in cases {
            let got = DupTarget::parse(input).unwrap().socket_addr();
            let want = want.map(|w| w.parse::<SocketAddr>().unwrap());
            assert_eq!(got, want, "input {input:?}");
        }
    }

    #[test]
    fn send_sock_forms() {
        let ok = [
            ("sip:10.1.1.2:5000", "10.1.1.2:5000"),
            ("sip:10.1.1.2", "10.1.1.2:5060"),
            ("udp:127.0.0.1:5060", "127.0.0.1:5060"),
            ("UDP:127.0.0.1:5060", "127.0.0.1:5060"),
            (" 127.0.0.1:5070 ", "127.0.0.1:5070"),
            ("[::1]:5060", "[::1]:5060"),
            ("sip:[::1]:5062", "[::1]:5062"),
        ];
        for (input, want) in ok {
            assert_eq!(
                parse_send_sock(input),
                Ok(want.parse().unwrap()),
                "input {input:?}"
            );
        }
        for bad in [
            "",
            "sip:proxy.example.com:5060",
            "tcp:127.0.0.1:5060",
            "127.0.0.1",
            "udp:127.0.0.1",
            "sip:127.0.0.1:0",
        ] {
            let err = parse_send_sock(bad).unwrap_err();
            assert_eq!(
                err,
                DupError::NotLocalSocket {
                    value: bad.trim().to_string()
                }
            );
            assert!(err.to_string().contains("sip:IP:PORT"), "{err}");
        }
    }

    #[test]
    fn display_round_trips() {
        let cases = [
            ("sip:10.1.1.1:5888", "sip:10.1.1.1:5888"),
            ("sip:1.2.3.4", "sip:1.2.3.4:5060"),
            ("sip:[::1]", "sip:[::1]:5060"),
            (
                "SIP:h.example;lr;Transport=Tcp",
                "sip:h.example:5060;transport=tcp",
            ),
        ];
        for (input, want) in cases {
            let target = DupTarget::parse(input).unwrap();
            assert_eq!(target.to_string(), want, "input {input:?}");
            assert_eq!(DupTarget::parse(want), Ok(target));
        }
    }

    #[test]
    fn errors_name_the_uri_and_the_fix() {
        let cases = [
            ("udp:1.2.3.4", "sip:host"),
            ("sip:::1", "brackets"),
            ("sip:1.2.3.4:99999", "1 to 65535"),
            ("sip:1.2.3.4;transport=ws", "transport=tcp"),
            ("", "sip:10.1.1.1:5888"),
        ];
        for (input, hint) in cases {
            let msg = DupTarget::parse(input).unwrap_err().to_string();
            assert!(
                msg.contains(input) && msg.contains(hint),
                "{input:?}: {msg}"
            );
        }
    }
}
