//! Where duplicates of traced messages go: the `duplicate_uri` modparam
//! and the URI argument of `sip_trace("sip:host:port")`, both read once at
//! load into a [`DupTarget`] (a host, a port and a transport). Kamailio
//! parses both as SIP URIs and uses only host and port (default 5060) plus
//! `;transport=` (UDP unless `tcp`). What the mirror cannot serve — sips:,
//! TLS, SCTP, WebSocket — is refused here, so it is a config error and not
//! a failure on every message.
//!
//! Pure: the grammar is sip::UriTarget; no DNS (the reactor resolves host
//! names at start-up), no sockets. [`DupTarget::socket_addr`] serves IP
//! literals directly. The script compiler uses it too, for constant
//! sip_trace() URIs.

use std::fmt;
use std::net::SocketAddr;

use crate::sip::{AddrError, DEFAULT_PORT, Host, Transport, UriTarget};

/// A parsed duplicate destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DupTarget {
    /// Host name or IP literal; an IPv6 literal is kept without brackets.
    pub host: String,
    pub port: u16,
    /// Udp or Tcp: the transports copies are sent over.
    pub transport: Transport,
}

/// Why a duplicate URI was refused; each message quotes the URI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DupError {
    #[error("duplicate URI is empty; give a destination such as sip:10.1.1.1:5888")]
    Empty,
    #[error("duplicate URI '{uri}' is not a sip: URI; write it as sip:host[:port][;transport=tcp]")]
    NotSip { uri: String },
    #[error(
        "duplicate URI '{uri}': sips: asks for TLS, which copies are not sent over; \
         write it as sip:host[:port] (transport udp or tcp)"
    )]
    Sips { uri: String },
    #[error("duplicate URI '{uri}': {err}")]
    Addr { uri: String, err: AddrError },
    #[error(
        "duplicate URI '{uri}': transport '{transport}' is not supported for duplicates; \
         use transport=udp (the default) or transport=tcp"
    )]
    UnsupportedTransport { uri: String, transport: String },
    /// `send_sock_addr` must name a local IP address and port.
    #[error(
        "'{value}' does not name a local socket; write it as sip:IP:PORT or udp:IP:PORT \
         with the address of a listen= socket"
    )]
    NotLocalSocket { value: String },
}

impl DupTarget {
    /// Parse `sip:[user@]host[:port][;params][?headers]` (sip::UriTarget),
    /// then keep what the mirror can send: sip:, over UDP or TCP.
    pub fn parse(uri: &str) -> Result<DupTarget, DupError> {
        let trimmed = uri.trim();
        if trimmed.is_empty() {
            return Err(DupError::Empty);
        }
        let owned = || trimmed.to_string();
        let t = UriTarget::parse(trimmed).map_err(|err| match err {
            AddrError::NotSip => DupError::NotSip { uri: owned() },
            AddrError::BadTransport(transport) => DupError::UnsupportedTransport {
                uri: owned(),
                transport,
            },
            err => DupError::Addr { uri: owned(), err },
        })?;
        if t.sips {
            return Err(DupError::Sips { uri: owned() });
        }
        let transport = match t.transport.unwrap_or(Transport::Udp) {
            Transport::Tls => {
                return Err(DupError::UnsupportedTransport {
                    uri: owned(),
                    transport: "tls".into(),
                });
            }
            t => t,
        };
        Ok(DupTarget {
            host: t.host.unbracketed(),
            port: t.port.unwrap_or(DEFAULT_PORT),
            transport,
        })
    }

    /// The destination when the host is an IP literal; `None` for a host
    /// name, which the reactor resolves.
    pub(crate) fn socket_addr(&self) -> Option<SocketAddr> {
        let ip = self.host.parse().ok()?;
        Some(SocketAddr::new(ip, self.port))
    }
}

impl fmt::Display for DupTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = match self.host.parse() {
            Ok(ip) => Host::Ip(ip),
            Err(_) => Host::Name(self.host.clone()),
        };
        write!(f, "sip:{host}:{}", self.port)?;
        match self.transport {
            Transport::Udp => Ok(()),
            t => write!(f, ";transport={t}"),
        }
    }
}

/// `send_sock_addr` (alias `force_send_sock`): the local socket copies
/// leave from. Kamailio takes a SIP URI (`sip:10.1.1.2:5000`); the socket
/// forms of `listen=` (`udp:10.1.1.2:5000`, `10.1.1.2:5000`, `[::1]:5000`)
/// are accepted too. The host must be an IP address: the socket must match
/// a listener, which has one.
pub(crate) fn parse_send_sock(value: &str) -> Result<SocketAddr, DupError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use AddrError::{BadHost, BadIpv6, BadPort, EmptyHost, UnbracketedIpv6};

    fn ok(host: &str, port: u16, transport: Transport) -> Result<DupTarget, DupError> {
        Ok(DupTarget {
            host: host.to_string(),
            port,
            transport,
        })
    }

    #[test]
    fn parse_cases() {
        use Transport::{Tcp, Udp};
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
                Err(DupError::Sips {
                    uri: s("sips:10.0.0.1"),
                }),
            ),
            (
                "sip:",
                Err(DupError::Addr {
                    uri: s("sip:"),
                    err: EmptyHost,
                }),
            ),
            (
                "sip::5060",
                Err(DupError::Addr {
                    uri: s("sip::5060"),
                    err: EmptyHost,
                }),
            ),
            (
                "sip:user@",
                Err(DupError::Addr {
                    uri: s("sip:user@"),
                    err: EmptyHost,
                }),
            ),
            (
                "sip:;transport=tcp",
                Err(DupError::Addr {
                    uri: s("sip:;transport=tcp"),
                    err: EmptyHost,
                }),
            ),
            (
                "sip:10.0.0.1:",
                Err(DupError::Addr {
                    uri: s("sip:10.0.0.1:"),
                    err: BadPort(s("")),
                }),
            ),
            (
                "sip:10.0.0.1:0",
                Err(DupError::Addr {
                    uri: s("sip:10.0.0.1:0"),
                    err: BadPort(s("0")),
                }),
            ),
            (
                "sip:10.0.0.1:65536",
                Err(DupError::Addr {
                    uri: s("sip:10.0.0.1:65536"),
                    err: BadPort(s("65536")),
                }),
            ),
            (
                "sip:10.0.0.1:50x",
                Err(DupError::Addr {
                    uri: s("sip:10.0.0.1:50x"),
                    err: BadPort(s("50x")),
                }),
            ),
            (
                "sip:10.0.0.1:+80",
                Err(DupError::Addr {
                    uri: s("sip:10.0.0.1:+80"),
                    err: BadPort(s("+80")),
                }),
            ),
            (
                "sip:[::1]:",
                Err(DupError::Addr {
                    uri: s("sip:[::1]:"),
                    err: BadPort(s("")),
                }),
            ),
            (
                "sip:::1",
                Err(DupError::Addr {
                    uri: s("sip:::1"),
                    err: UnbracketedIpv6,
                }),
            ),
            (
                "sip:2001:db8::1:5060",
                Err(DupError::Addr {
                    uri: s("sip:2001:db8::1:5060"),
                    err: UnbracketedIpv6,
                }),
            ),
            (
                "sip:[::1",
                Err(DupError::Addr {
                    uri: s("sip:[::1"),
                    err: BadIpv6(s("[::1")),
                }),
            ),
            (
                "sip:[zz::1]:5060",
                Err(DupError::Addr {
                    uri: s("sip:[zz::1]:5060"),
                    err: BadIpv6(s("[zz::1]:5060")),
                }),
            ),
            (
                "sip:[10.0.0.1]",
                Err(DupError::Addr {
                    uri: s("sip:[10.0.0.1]"),
                    err: BadIpv6(s("[10.0.0.1]")),
                }),
            ),
            (
                "sip:[::1]5060",
                Err(DupError::Addr {
                    uri: s("sip:[::1]5060"),
                    err: BadIpv6(s("[::1]5060")),
                }),
            ),
            (
                "sip:host name",
                Err(DupError::Addr {
                    uri: s("sip:host name"),
                    err: BadHost(s("host name")),
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
