//! UDP listening sockets: bind, receive one datagram at a time (the reactor
//! decides how many per turn), send without blocking. Knows nothing of SIP
//! beyond "a datagram is one message".
//! stream.rs adds the TCP connections that carry mirrored copies to
//! capture nodes; tcp.rs the SIP listeners and connections over TCP (and
//! TLS, configured by tls.rs). dns.rs is the resolver thread (DNS off the reactor's
//! thread).
//!
//! Invariant: a send never blocks the reactor; a full socket buffer drops
//! the datagram and counts it (UDP may lose it anyway; the transaction layer
//! retransmits).

pub mod dns;
pub mod stream;
pub mod tcp;
pub mod tls;

use mio::net::UdpSocket;
use std::io;
use std::net::SocketAddr;

use crate::sip::Transport;

/// Largest datagram we accept; SIP over UDP must fit in 65507 bytes.
pub(crate) const MAX_DATAGRAM: usize = 65_535;

#[derive(Debug)]
pub struct Listener {
    pub proto: Transport,
    pub local: SocketAddr,
    /// Address to put in Via/Record-Route when it differs (`advertise`).
    pub advertise: Option<(String, u16)>,
    pub sock: UdpSocket,
    pub send_drops: u64,
}

#[derive(Debug)]
pub enum TransportError {
    Bind { addr: SocketAddr, err: io::Error },
}

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransportError::Bind { addr, err } => write!(
                f,
                "cannot listen on udp:{addr}: {err} (is another process on that port, or is the address not on this host?)"
            ),
        }
    }
}

impl Listener {
    /// `rcvbuf`: the receive buffer to ask for (core `maxbuffer`; 0 keeps
    /// the OS default).
    pub(crate) fn bind_udp(
        addr: SocketAddr,
        advertise: Option<(String, u16)>,
        rcvbuf: usize,
    ) -> Result<Listener, TransportError> {
        let sock = UdpSocket::bind(addr).map_err(|err| TransportError::Bind { addr, err })?;
        let local = sock
            .local_addr()
            .map_err(|err| TransportError::Bind { addr, err })?;
        if rcvbuf > 0 {
            grow_receive_buffer(&sock, local, rcvbuf);
        }
        Ok(Listener {
            proto: Transport::Udp,
            local,
            advertise,
            sock,
            send_drops: 0,
        })
    }

    /// The host and port that name this socket in SIP headers.
    pub(crate) fn sip_hostport(&self) -> (String, u16) {
        match &self.advertise {
            Some((h, p)) => (h.clone(), *p),
            None => (self.local.ip().to_string(), self.local.port()),
        }
    }

    /// One datagram, or None when drained.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<(usize, SocketAddr)>> {
        loop {
            match self.sock.recv_from(buf) {
                Ok(r) => return Ok(Some(r)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // ICMP port-unreachable from an earlier send surfaces here on
                // Linux; it concerns that send, not this socket.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// One datagram; false (counted in `send_drops`) when the kernel
    /// refused it, including a full buffer (WouldBlock): never waits.
    pub fn send(&mut self, bytes: &[u8], to: SocketAddr) -> bool {
        loop {
            match self.sock.send_to(bytes, to) {
                Ok(_) => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.send_drops += 1;
                    log::debug!("udp send to {to} from {} failed: {e}", self.local);
                    return false;
                }
            }
        }
    }
}

/// Asks for a receive buffer of `want` bytes, so that datagrams arriving
/// while the reactor is busy (a database commit, a burst) wait in the
/// kernel instead of being dropped there (docs/decisions.md §20). An
/// unprivileged process gets at most net.core.rmem_max; with CAP_NET_ADMIN
/// (root before dropping privileges) SO_RCVBUFFORCE passes that cap, as
/// Kamailio's probe does. Falling short is logged, never fatal.
fn grow_receive_buffer(sock: &UdpSocket, local: SocketAddr, want: usize) {
    use nix::sys::socket::{getsockopt, setsockopt, sockopt};
    // Linux doubles the value set (for its own bookkeeping) and reports
    // the doubled figure.
    let got = |s: &UdpSocket| getsockopt(s, sockopt::RcvBuf).map_or(0, |n| n / 2);
    if got(sock) >= want {
        return;
    }
    if setsockopt(sock, sockopt::RcvBufForce, &want).is_err() {
        let _ = setsockopt(sock, sockopt::RcvBuf, &want);
    }
    let have = got(sock);
    if have < want {
        log::warn!(
            "udp:{local}: receive buffer is {} KiB, less than maxbuffer ({} KiB): raise \
             net.core.rmem_max (sysctl) so that bursts are not dropped by the kernel",
            have / 1024,
            want / 1024
        );
    } else {
        log::debug!("udp:{local}: receive buffer {} KiB", have / 1024);
    }
}
