//! TCP connections to capture nodes (`duplicate_uri=…;transport=tcp`, or
//! `sip_trace("sip:host:port;transport=tcp")`): non-blocking mio sockets
//! driven by the reactor, one per destination, each following the pure
//! state machine of `trace::stream` (connect, back off, bounded queue).
//!
//! Depends on mio and trace::stream; knows nothing of SIP or HEP — a copy
//! is an opaque byte string that must reach the stream whole.
//!
//! Invariant: nothing here blocks. Connects are non-blocking and bounded by
//! the state machine's timeout; a write that would block leaves the rest in
//! the queue until the socket is writable again; a full queue drops (counted).

use crate::trace::stream::{Phase, StreamConfig, StreamSender, TimerAction};
use mio::event::Event;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::Instant;

/// Destinations served at once; a copy to one more is dropped (counted).
/// Bounds the tokens the reactor reserves and the memory a script that
/// computes destinations could claim.
pub(crate) const MAX_STREAMS: usize = 16;

/// One destination: its socket (when open) and its sender state.
#[derive(Debug)]
struct Stream {
    to: SocketAddr,
    /// Local address to bind before connecting (the family of `to`).
    bind: Option<IpAddr>,
    token: Token,
    sock: Option<TcpStream>,
    sender: StreamSender,
    /// The queue refused the last copy: warn once per episode, not per copy.
    dropping: bool,
}

/// Every TCP mirror connection, on tokens `base..base + MAX_STREAMS`.
#[derive(Debug)]
pub struct Streams {
    base: usize,
    cfg: StreamConfig,
    streams: Vec<Stream>,
    /// Copies refused because MAX_STREAMS destinations are already served.
    refused: u64,
}

impl Streams {
    pub fn new(base: usize, cfg: StreamConfig) -> Streams {
        Streams {
            base,
            cfg,
            streams: Vec::new(),
            refused: 0,
        }
    }

    /// Whether `token` is one of ours.
    pub(crate) fn owns(&self, token: Token) -> bool {
        (self.base..self.base + MAX_STREAMS).contains(&token.0)
    }

    /// Start connecting to `to` now, before any copy (duplicate_uri at
    /// start-up: the first copies need not wait for a connect).
    pub fn open(
        &mut self,
        registry: &Registry,
        to: SocketAddr,
        bind: Option<IpAddr>,
        now: Instant,
    ) {
        if let Some(i) = self.slot(to, bind, now) {
            self.streams[i].poke(registry, now);
        }
    }

    /// Queue a copy for `to`, opening the connection on first use.
    pub fn push(
        &mut self,
        registry: &Registry,
        to: SocketAddr,
        bind: Option<IpAddr>,
        bytes: Vec<u8>,
        now: Instant,
    ) {
        let Some(idx) = self.slot(to, bind, now) else {
            self.refused += 1;
            log::warn!("copy to tcp:{to} dropped: already {MAX_STREAMS} TCP capture destinations");
            return;
        };
        let s = &mut self.streams[idx];
        let kept = s.sender.push(bytes);
        if !kept && !s.dropping {
            log::warn!(
                "capture node tcp:{} is away or slow and {} KiB of copies wait: dropping copies \
                 (counted in copies_dropped) until the queue drains",
                s.to,
                self.cfg.max_queue_bytes / 1024
            );
        } else if kept && s.dropping {
            log::info!("capture node tcp:{}: copies are queued again", s.to);
        }
        s.dropping = !kept;
        s.poke(registry, now);
    }

    /// The stream for `to`, created when there is room.
    fn slot(&mut self, to: SocketAddr, bind: Option<IpAddr>, now: Instant) -> Option<usize> {
        match self.streams.iter().position(|s| s.to == to) {
            Some(i) => Some(i),
            None if self.streams.len() < MAX_STREAMS => {
                let token = Token(self.base + self.streams.len());
                self.streams.push(Stream {
                    to,
                    bind,
                    token,
                    sock: None,
                    sender: StreamSender::new(self.cfg.clone(), now),
                    dropping: false,
                });
                Some(self.streams.len() - 1)
            }
            None => None,
        }
    }

    /// Readiness of one of our sockets.
    pub(crate) fn on_event(&mut self, registry: &Registry, ev: &Event, now: Instant) {
        if let Some(s) = self.streams.iter_mut().find(|s| s.token == ev.token()) {
            s.on_ready(registry, ev, now);
        }
    }

    /// Retries and connect timeouts that are due.
    pub(crate) fn on_timer(&mut self, registry: &Registry, now: Instant) {
        for s in &mut self.streams {
            s.poke(registry, now);
        }
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.streams
            .iter()
            .filter_map(|s| s.sender.deadline())
            .min()
    }

    /// (sent, dropped) copies since the last call, over all destinations.
    pub(crate) fn take_counts(&mut self) -> (u64, u64) {
        let mut sent = 0;
        let mut dropped = std::mem::take(&mut self.refused);
        for s in &mut self.streams {
            let (a, b) = s.sender.take_counts();
            sent += a;
            dropped += b;
        }
        (sent, dropped)
    }
}

impl Stream {
    /// Timer work (connect now, or give up a slow connect), then writes.
    fn poke(&mut self, registry: &Registry, now: Instant) {
        match self.sender.on_timer(now) {
            TimerAction::Nothing => {}
            TimerAction::Abort => {
                self.close(registry);
                self.log_failure("connect timed out");
            }
            TimerAction::Connect => self.open(registry, now),
        }
        self.flush(registry, now);
    }

    fn open(&mut self, registry: &Registry, now: Instant) {
        self.close(registry);
        let opened = connect(self.to, self.bind).and_then(|mut sock| {
            registry.register(
                &mut sock,
                self.token,
                Interest::READABLE | Interest::WRITABLE,
            )?;
            Ok(sock)
        });
        match opened {
            Ok(sock) => {
                self.sock = Some(sock);
                self.sender.connecting(now);
            }
            Err(e) => {
                self.sender.failed(now);
                self.log_failure(&e.to_string());
            }
        }
    }

    fn on_ready(&mut self, registry: &Registry, ev: &Event, now: Instant) {
        let Some(sock) = self.sock.as_mut() else {
            return;
        };
        if let Phase::Connecting { .. } = self.sender.phase() {
            // mio's recipe for a non-blocking connect: an error, or a peer
            // address once it is established; neither means "not yet".
            match sock.take_error() {
                Ok(Some(e)) | Err(e) => return self.fail(registry, now, &e.to_string()),
                Ok(None) => {}
            }
            match sock.peer_addr() {
                Ok(_) => {
                    if self.sender.failures > 0 {
                        log::info!("capture connection to tcp:{} is up again", self.to);
                    } else {
                        log::debug!("capture connection to tcp:{} is up", self.to);
                    }
                    self.sender.connected();
                }
                Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                    if ev.is_error() || ev.is_write_closed() {
                        return self.fail(registry, now, "connection refused");
                    }
                    return;
                }
                Err(e) => return self.fail(registry, now, &e.to_string()),
            }
        }
        if ev.is_readable() || ev.is_read_closed() {
            // Capture nodes send nothing; reading tells us when they close.
            let mut buf = [0u8; 512];
            loop {
                match sock.read(&mut buf) {
                    Ok(0) => return self.fail(registry, now, "closed by the peer"),
                    Ok(_) => continue,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return self.fail(registry, now, &e.to_string()),
                }
            }
        }
        self.flush(registry, now);
    }

    /// Write queued copies until done or the socket would block.
    fn flush(&mut self, registry: &Registry, now: Instant) {
        loop {
            let (Some(sock), Some(bytes)) = (self.sock.as_mut(), self.sender.pending()) else {
                return;
            };
            match sock.write(bytes) {
                Ok(0) => return self.fail(registry, now, "write returned 0"),
                Ok(n) => self.sender.wrote(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return self.fail(registry, now, &e.to_string()),
            }
        }
    }

    fn fail(&mut self, registry: &Registry, now: Instant, why: &str) {
        self.close(registry);
        self.sender.failed(now);
        self.log_failure(why);
    }

    fn close(&mut self, registry: &Registry) {
        if let Some(mut sock) = self.sock.take() {
            let _ = registry.deregister(&mut sock);
        }
    }

    /// The first failure in a row is a warning; repeats while the node
    /// stays away are debug lines, so an absent node does not flood the log.
    fn log_failure(&self, why: &str) {
        let queued = self.sender.queued();
        if self.sender.failures <= 1 {
            log::warn!(
                "capture connection to tcp:{}: {why}; retrying with backoff ({queued} copies queued)",
                self.to
            );
        } else {
            log::debug!(
                "capture connection to tcp:{} (failure {}): {why}; {queued} copies queued",
                self.to,
                self.sender.failures
            );
        }
    }
}

/// A non-blocking socket with its connect in flight; bound to `bind` first
/// when given (send_sock_addr's address).
fn connect(to: SocketAddr, bind: Option<IpAddr>) -> io::Result<TcpStream> {
    use nix::sys::socket::{
        AddressFamily, SockFlag, SockType, SockaddrIn, SockaddrIn6, bind as nix_bind,
        connect as nix_connect, socket,
    };
    let Some(ip) = bind else {
        let sock = TcpStream::connect(to)?;
        let _ = sock.set_nodelay(true);
        return Ok(sock);
    };
    let family = match to {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd = socket(
        family,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let local = SocketAddr::new(ip, 0);
    let r = match (local, to) {
        (SocketAddr::V4(l), SocketAddr::V4(t)) => nix_bind(fd.as_raw_fd(), &SockaddrIn::from(l))
            .and_then(|()| nix_connect(fd.as_raw_fd(), &SockaddrIn::from(t))),
        (SocketAddr::V6(l), SocketAddr::V6(t)) => nix_bind(fd.as_raw_fd(), &SockaddrIn6::from(l))
            .and_then(|()| nix_connect(fd.as_raw_fd(), &SockaddrIn6::from(t))),
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot send from {ip} to {to}: address families differ"),
            ));
        }
    };
    match r {
        Ok(()) | Err(nix::errno::Errno::EINPROGRESS) => {}
        Err(e) => return Err(e.into()),
    }
    let sock = TcpStream::from_std(std::net::TcpStream::from(fd));
    let _ = sock.set_nodelay(true);
    Ok(sock)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mio::{Events, Poll};
    use std::time::Duration;

    /// Drives the streams like the reactor does until `done` or 5 s.
    fn run(poll: &mut Poll, s: &mut Streams, mut done: impl FnMut(&mut Streams) -> bool) {
        let mut events = Events::with_capacity(16);
        let end = Instant::now() + Duration::from_secs(5);
        while !done(s) {
            assert!(Instant::now() < end, "timed out: {s:?}");
            poll.poll(&mut events, Some(Duration::from_millis(20)))
                .unwrap();
            let now = Instant::now();
            for ev in events.iter() {
                assert!(s.owns(ev.token()));
                s.on_event(poll.registry(), ev, now);
            }
            s.on_timer(poll.registry(), now);
        }
    }

    #[test]
    fn delivers_whole_copies_in_order_and_binds_the_local_address() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let to = listener.local_addr().unwrap();
        let mut poll = Poll::new().unwrap();
        let mut s = Streams::new(100, StreamConfig::default());
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let bind = Some(local);
        for part in ["HEP3-a", "HEP3-bb", "HEP3-ccc"] {
            s.push(
                poll.registry(),
                to,
                bind,
                part.as_bytes().to_vec(),
                Instant::now(),
            );
        }
        let (mut conn, peer) = listener.accept().unwrap();
        assert_eq!(peer.ip(), local);
        let mut sent = 0;
        run(&mut poll, &mut s, |s| {
            sent += s.take_counts().0;
            sent == 3
        });
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut got = vec![0u8; 21];
        conn.read_exact(&mut got).unwrap();
        assert_eq!(got, b"HEP3-aHEP3-bbHEP3-ccc");
    }

    #[test]
    fn a_refused_connect_keeps_copies_until_the_node_is_back() {
        // A port nobody listens on, then a listener on that same port.
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let to = probe.local_addr().unwrap();
        drop(probe);
        let mut poll = Poll::new().unwrap();
        let cfg = StreamConfig {
            backoff_min: Duration::from_millis(20),
            backoff_max: Duration::from_millis(40),
            max_queue_bytes: 8,
            ..StreamConfig::default()
        };
        let mut s = Streams::new(100, cfg);
        s.push(poll.registry(), to, None, b"1234".to_vec(), Instant::now());
        s.push(poll.registry(), to, None, b"5678".to_vec(), Instant::now());
        s.push(poll.registry(), to, None, b"9".to_vec(), Instant::now());
        assert_eq!(s.take_counts(), (0, 1), "the queue holds 8 bytes");
        run(&mut poll, &mut s, |s| s.streams[0].sender.failures >= 2);
        let listener = std::net::TcpListener::bind(to).unwrap();
        let mut sent = 0;
        run(&mut poll, &mut s, |s| {
            sent += s.take_counts().0;
            sent == 2
        });
        let (mut conn, _) = listener.accept().unwrap();
        let mut got = [0u8; 8];
        conn.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"12345678");
    }

    #[test]
    fn destinations_are_bounded() {
        let mut poll = Poll::new().unwrap();
        let mut s = Streams::new(100, StreamConfig::default());
        for port in 1..=(MAX_STREAMS as u16 + 2) {
            let to = SocketAddr::from(([127, 0, 0, 1], port));
            s.push(poll.registry(), to, None, b"x".to_vec(), Instant::now());
        }
        assert_eq!(s.streams.len(), MAX_STREAMS);
        assert!(s.owns(Token(100)) && s.owns(Token(100 + MAX_STREAMS - 1)));
        assert!(!s.owns(Token(99)) && !s.owns(Token(100 + MAX_STREAMS)));
        assert_eq!(s.take_counts().1, 2);
        let _ = poll.poll(&mut Events::with_capacity(1), Some(Duration::ZERO));
    }
}
