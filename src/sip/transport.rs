//! The transports a SIP socket or destination can name (`udp:1.2.3.4:5060`,
//! `;transport=tcp`), the one type the whole crate uses for them: listeners,
//! script destinations, trace rows' `proto:ip:port`, duplicate targets and
//! HEP. Kamailio also knows SCTP and WebSocket; siptraced serves none of
//! them, so they are not transports here but [`Unserved`] names a caller
//! may recognise (a config keeps `listen=sctp:…` with a warning).
//! Std only; depends on nothing else in the crate.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Transport {
    #[default]
    Udp,
    Tcp,
    Tls,
}

/// Protocol names Kamailio has and siptraced does not serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unserved {
    Sctp,
    Ws,
    Wss,
}

impl Unserved {
    pub fn as_str(self) -> &'static str {
        match self {
            Unserved::Sctp => "sctp",
            Unserved::Ws => "ws",
            Unserved::Wss => "wss",
        }
    }
}

impl fmt::Display for Unserved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// A name Kamailio accepts: the caller decides whether that is a warning.
    #[error("protocol '{0}' is not served by siptraced (udp, tcp and tls are)")]
    Unserved(Unserved),
    #[error("unknown protocol '{0}'")]
    Unknown(String),
}

impl Transport {
    /// Case-insensitive, as Kamailio reads `UDP:` and `;transport=TCP`.
    pub fn parse(s: &str) -> Result<Transport, TransportError> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "udp" => Transport::Udp,
            "tcp" => Transport::Tcp,
            "tls" => Transport::Tls,
            "sctp" => return Err(TransportError::Unserved(Unserved::Sctp)),
            "ws" => return Err(TransportError::Unserved(Unserved::Ws)),
            "wss" => return Err(TransportError::Unserved(Unserved::Wss)),
            _ => return Err(TransportError::Unknown(s.to_string())),
        })
    }

    /// Lower case: the form of `fromip`/`toip` and `listen=` (docs/decisions.md §2).
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }

    /// Upper case: the form of a Via's sent-protocol (RFC 3261 §20.42).
    pub(crate) fn via_name(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Transport {
    type Err = TransportError;

    fn from_str(s: &str) -> Result<Transport, TransportError> {
        Transport::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expect: Result<Transport, TransportError>) {
        assert_eq!(Transport::parse(input), expect, "{input:?}");
        if let Ok(t) = expect {
            assert_eq!(t.to_string(), input.to_ascii_lowercase());
            assert_eq!(t.via_name(), input.to_ascii_uppercase());
        }
    }

    #[test]
    fn names() {
        use TransportError::{Unknown, Unserved as U};
        let cases = [
            ("udp", Ok(Transport::Udp)),
            ("UDP", Ok(Transport::Udp)),
            ("Tcp", Ok(Transport::Tcp)),
            ("tls", Ok(Transport::Tls)),
            ("sctp", Err(U(Unserved::Sctp))),
            ("WS", Err(U(Unserved::Ws))),
            ("wss", Err(U(Unserved::Wss))),
            ("", Err(Unknown(String::new()))),
            ("quic", Err(Unknown("quic".into()))),
            ("udp ", Err(Unknown("udp ".into()))),
        ];
        for (input, expect) in cases {
            check(input, expect);
        }
        assert!(
            TransportError::Unserved(Unserved::Sctp)
                .to_string()
                .contains("'sctp' is not served")
        );
    }
}
