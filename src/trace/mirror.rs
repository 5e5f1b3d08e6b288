//! Mirrored copies of traced events: for duplicate_uri or sip_trace()'s own
//! URI, one copy per traced event (docs/decisions.md §1), the raw bytes or a HEP
//! datagram (docs/decisions.md §8), queued for the reactor with the socket to send
//! it from. The core calls [`Mirror::copy`] once per traced event and hands
//! [`Mirror::take`]'s queue to the reactor.
//!
//! Pure: no sockets, no DNS (destinations arrive resolved), no clock (the
//! event carries its time). Depends on trace's events, hep.rs and
//! sip::Transport; it knows the listeners only as a list of addresses.

use std::net::{IpAddr, SocketAddr};

use super::Event;
use super::hep::{self, HepError};
use crate::sip::Transport;

/// HEP encapsulation of mirrored copies (issue: duplicate_uri / Homer).
#[derive(Debug, Clone)]
pub struct HepSettings {
    pub version: u8,
    pub capture_id: u32,
    pub auth_key: Option<String>,
}

/// Where a mirrored copy goes: duplicate_uri or the URI given to
/// sip_trace(), resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MirrorDest {
    pub addr: SocketAddr,
    /// Udp or Tcp (trace::dup refuses the others).
    pub transport: Transport,
}

/// What sip_trace() adds to an event's copy: its own destination (else
/// duplicate_uri) and a HEP correlation id (chunk 0x0011).
#[derive(Debug, Clone, Copy, Default)]
pub struct MirrorReq<'a> {
    pub dest: Option<MirrorDest>,
    pub correlation_id: Option<&'a str>,
    /// sip_trace() named a destination whose name is not resolved yet:
    /// this copy is dropped (not sent to duplicate_uri instead).
    pub unresolved: bool,
}

/// One mirrored copy for the reactor to send; it reports the outcome back
/// to the core (sent or dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorCopy {
    pub to: SocketAddr,
    pub via: CopyVia,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyVia {
    /// A datagram from this listening socket.
    Udp { listener: usize },
    /// The kept TCP connection to `to`, bound to this address when set.
    Tcp { bind: Option<IpAddr> },
}

/// The mirror's fixed settings, from the config at start-up.
#[derive(Debug, Clone, Default)]
pub struct MirrorSettings {
    /// duplicate_uri, resolved at start-up.
    pub duplicate: Option<MirrorDest>,
    pub hep: Option<HepSettings>,
    /// Local address to send copies from (`send_sock_addr`).
    pub send_sock: Option<SocketAddr>,
}

/// What became of one event's copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Copied {
    /// No destination: neither sip_trace()'s URI nor duplicate_uri.
    Nowhere,
    Queued,
    /// Refused (logged once per reason); the caller counts it dropped.
    Dropped,
}

/// Why a copy could not be made. Each repeats with every traced message (a
/// script or config choice), so each is warned about once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CopyError {
    #[error("copy to udp:{0} not sent: no listening socket of that address family")]
    NoFamily(SocketAddr),
    /// HEPv1/v2 carry no total length: a stream of them cannot be split
    /// again (config.rs refuses that for duplicate_uri).
    #[error("copy to tcp:{0} not sent: HEPv1/v2 cannot be framed on TCP; use hep_version 3")]
    UnframedOnTcp(SocketAddr),
    #[error("copy to {0} not sent: copies go over udp or tcp only")]
    Unsupported(Transport),
    #[error("HEP copy not sent: {0}")]
    Hep(#[from] HepError),
}

#[derive(Debug)]
pub struct Mirror {
    settings: MirrorSettings,
    /// Local addresses of the listeners, by index.
    listeners: Vec<SocketAddr>,
    queue: Vec<MirrorCopy>,
    warned: WarnedOnce,
}

impl Mirror {
    pub fn new(settings: MirrorSettings, listeners: Vec<SocketAddr>) -> Mirror {
        Mirror {
            settings,
            listeners,
            queue: Vec::new(),
            warned: WarnedOnce::default(),
        }
    }

    /// One copy of a traced event for sip_trace()'s destination, else
    /// duplicate_uri.
    pub fn copy(&mut self, ev: &Event<'_>, req: MirrorReq<'_>) -> Copied {
        if req.unresolved {
            return Copied::Dropped;
        }
        let Some(dest) = req.dest.or(self.settings.duplicate) else {
            return Copied::Nowhere;
        };
        match self.build(ev, dest, req.correlation_id) {
            Ok(copy) => {
                self.queue.push(copy);
                Copied::Queued
            }
            Err(e) => {
                self.warned.warn(&e);
                Copied::Dropped
            }
        }
    }

    /// The copies queued since the last call, in event order.
    pub fn take(&mut self) -> Vec<MirrorCopy> {
        std::mem::take(&mut self.queue)
    }

    /// UDP copies leave from send_sock_addr or a listener of the
    /// destination's family (docs/kamailio.md §4.4); TCP ones on the
    /// reactor's kept connection.
    fn build(
        &self,
        ev: &Event<'_>,
        dest: MirrorDest,
        corr: Option<&str>,
    ) -> Result<MirrorCopy, CopyError> {
        let to = dest.addr;
        let send_sock = self
            .settings
            .send_sock
            .filter(|a| a.is_ipv4() == to.is_ipv4());
        let via = match dest.transport {
            Transport::Udp => {
                let from = match send_sock {
                    Some(a) => self.listeners.iter().position(|l| *l == a),
                    None => self
                        .listeners
                        .iter()
                        .position(|l| l.is_ipv4() == to.is_ipv4()),
                };
                CopyVia::Udp {
                    listener: from.ok_or(CopyError::NoFamily(to))?,
                }
            }
            Transport::Tcp => {
                if self.settings.hep.as_ref().is_some_and(|h| h.version < 3) {
                    return Err(CopyError::UnframedOnTcp(to));
                }
                CopyVia::Tcp {
                    bind: send_sock.map(|a| a.ip()),
                }
            }
            t @ Transport::Tls => return Err(CopyError::Unsupported(t)),
        };
        let bytes = match &self.settings.hep {
            None => ev.bytes.to_vec(),
            Some(h) => hep_packet(ev, h, corr)?,
        };
        Ok(MirrorCopy { to, via, bytes })
    }
}

/// Copy refusals already warned about: the first of each kind is a
/// warning, the rest debug lines; copies_dropped counts them all.
#[derive(Debug, Default)]
struct WarnedOnce {
    no_family: bool,
    unframed: bool,
    unsupported: bool,
    hep_failed: bool,
}

impl WarnedOnce {
    fn warn(&mut self, e: &CopyError) {
        let seen = match e {
            CopyError::NoFamily(_) => &mut self.no_family,
            CopyError::UnframedOnTcp(_) => &mut self.unframed,
            CopyError::Unsupported(_) => &mut self.unsupported,
            CopyError::Hep(_) => &mut self.hep_failed,
        };
        if std::mem::replace(seen, true) {
            log::debug!("{e}");
        } else {
            log::warn!("{e} (further ones are logged at debug level)");
        }
    }
}

/// The HEP datagram for one event: addresses and transport of the event's
/// ends, as Kamailio's siptrace builds it from the row's fromip/toip.
pub(crate) fn hep_packet(
    ev: &Event<'_>,
    h: &HepSettings,
    corr: Option<&str>,
) -> Result<Vec<u8>, HepError> {
    let end = |e: &super::Endpoint| {
        e.hep().unwrap_or_else(|| {
            log::debug!(
                "HEP: '{}' names no IP address; sending 0.0.0.0:0",
                e.render()
            );
            (Transport::Udp, SocketAddr::from(([0, 0, 0, 0], 0)))
        })
    };
    let (proto, src) = end(&ev.from);
    let (_, dst) = end(&ev.to);
    let p = hep::HepPacket {
        src,
        dst,
        proto,
        ts_sec: u32::try_from(ev.time.sec).unwrap_or(0),
        ts_usec: ev.time.usec,
        capture_id: h.capture_id,
        auth_key: h.auth_key.as_deref(),
        correlation_id: corr,
        payload: ev.bytes,
        proto_type: hep::PROTO_TYPE_SIP,
    };
    match h.version {
        1 => hep::encode_v1(&p),
        2 => hep::encode_v2(&p),
        _ => hep::encode_v3(&p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::WallTime;
    use crate::trace::{Direction, Endpoint, Facts};

    fn event(f: &Facts) -> Event<'_> {
        Event {
            bytes: b"OPTIONS sip:x SIP/2.0\r\n\r\n",
            facts: f,
            dir: Direction::Out,
            from: Endpoint::sock(Transport::Tcp, "10.0.0.1:5060".parse().unwrap()),
            to: Endpoint::sock(Transport::Tcp, "10.0.0.2:5080".parse().unwrap()),
            time: WallTime {
                sec: 1_700_000_000,
                usec: 123_456,
            },
        }
    }

    #[test]
    fn hep_packet_takes_the_events_addresses_and_time() {
        let f = Facts::default();
        let ev = event(&f);
        let h = HepSettings {
            version: 3,
            capture_id: 2001,
            auth_key: Some("k".into()),
        };
        let got = hep_packet(&ev, &h, Some("cid")).unwrap();
        let want = hep::encode_v3(&hep::HepPacket {
            src: "10.0.0.1:5060".parse().unwrap(),
            dst: "10.0.0.2:5080".parse().unwrap(),
            proto: Transport::Tcp,
            ts_sec: 1_700_000_000,
            ts_usec: 123_456,
            capture_id: 2001,
            auth_key: Some("k"),
            correlation_id: Some("cid"),
            payload: ev.bytes,
            proto_type: hep::PROTO_TYPE_SIP,
        })
        .unwrap();
        assert_eq!(got, want);
        let v2 = HepSettings {
            version: 2,
            capture_id: 70_000,
            auth_key: None,
        };
        assert_eq!(
            hep_packet(&ev, &v2, None),
            Err(HepError::CaptureIdTooWide { capture_id: 70_000 })
        );
    }

    /// (destination, HEP version, send_sock) -> what the copy becomes.
    #[test]
    fn copies_choose_their_socket_or_are_dropped() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        let udp = |s| MirrorDest {
            addr: a(s),
            transport: Transport::Udp,
        };
        let tcp = |s| MirrorDest {
            addr: a(s),
            transport: Transport::Tcp,
        };
        let hep = |version| {
            Some(HepSettings {
                version,
                capture_id: 1,
                auth_key: None,
            })
        };
        let listeners = vec![a("127.0.0.1:5060"), a("10.0.0.1:5060")];
        type Case = (
            MirrorDest,
            Option<HepSettings>,
            Option<SocketAddr>,
            Result<CopyVia, ()>,
        );
        let cases: Vec<Case> = vec![
            (
                udp("10.9.9.9:9060"),
                None,
                None,
                Ok(CopyVia::Udp { listener: 0 }),
            ),
            (
                udp("10.9.9.9:9060"),
                None,
                Some(a("10.0.0.1:5060")),
                Ok(CopyVia::Udp { listener: 1 }),
            ),
            (udp("[::1]:9060"), None, None, Err(())),
            (
                tcp("[::1]:9060"),
                hep(3),
                None,
                Ok(CopyVia::Tcp { bind: None }),
            ),
            (
                tcp("10.9.9.9:9060"),
                None,
                Some(a("10.0.0.1:5060")),
                Ok(CopyVia::Tcp {
                    bind: Some(a("10.0.0.1:5060").ip()),
                }),
            ),
            (tcp("10.9.9.9:9060"), hep(2), None, Err(())),
            (
                MirrorDest {
                    addr: a("10.9.9.9:9061"),
                    transport: Transport::Tls,
                },
                None,
                None,
                Err(()),
            ),
        ];
        let f = Facts::default();
        for (dest, hep, send_sock, want) in cases {
            let mut m = Mirror::new(
                MirrorSettings {
                    duplicate: Some(dest),
                    hep,
                    send_sock,
                },
                listeners.clone(),
            );
            let got = m.copy(&event(&f), MirrorReq::default());
            let copies = m.take();
            match want {
                Ok(via) => {
                    assert_eq!(got, Copied::Queued, "{dest:?}");
                    assert_eq!(copies.len(), 1);
                    assert_eq!((copies[0].to, copies[0].via), (dest.addr, via));
                }
                Err(()) => assert_eq!((got, copies.len()), (Copied::Dropped, 0), "{dest:?}"),
            }
        }
        let mut m = Mirror::new(MirrorSettings::default(), listeners);
        assert_eq!(m.copy(&event(&f), MirrorReq::default()), Copied::Nowhere);
    }
}
