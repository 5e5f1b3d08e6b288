//! SIP over TCP and TLS: the listening sockets, the accepted and outgoing
//! connections (non-blocking connect), their reads and writes; a TLS
//! connection's rustls session (configured by tls.rs) is fed the bytes
//! read and drained into the socket here. The (plaintext) bytes of each
//! connection are cut into messages by `sip::stream` (pure); this
//! file owns only the descriptors, the slab of connections, their tokens
//! and deadlines (handed `now` by the reactor). Knows nothing of SIP
//! beyond that framing: messages go to the reactor as [`Received`], and
//! what the core wants sent comes back through [`SipStreams::send`].
//!
//! Bounds (docs/decisions.md §18): at most `tcp_max_connections`
//! connections (accepted and outgoing together; one accepted beyond is
//! closed at once and counted), each with a read buffer of one maximal
//! message plus one byte (`sip::stream::READ_BUFFER_MAX`), a write queue of
//! `tcp_conn_wq_max` bytes (a message that does not fit is dropped and
//! counted), at most [`TURN_BYTES`] read per connection per reactor turn
//! (a connection left unread is read again next turn), closed after
//! `tcp_connection_lifetime` without traffic and after
//! `tcp_connect_timeout` still connecting (or, on TLS, still handshaking).

use crate::sip::Transport;
use crate::sip::stream::{Framed, StreamError, StreamReader, WriteQueue};
use crate::transport::tls::TlsContext;
use mio::event::Event;
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Bytes read from one connection in one reactor turn, at most.
pub const TURN_BYTES: usize = 64 * 1024;

/// How often idle and connect deadlines are swept (they need no finer
/// grain than a second).
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Accepts per listener per turn, so a connect flood cannot hold a turn.
const ACCEPTS_PER_TURN: usize = 64;

/// Kamailio's defaults, and siptraced's write-queue cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpConfig {
    /// core `tcp_max_connections` (Kamailio: 2048).
    pub max_connections: usize,
    /// core `tcp_connection_lifetime` (Kamailio: 120 s).
    pub lifetime: Duration,
    /// core `tcp_connect_timeout` (Kamailio: 10 s).
    pub connect_timeout: Duration,
    /// core `tcp_conn_wq_max`: bytes waiting per connection.
    pub wq_max: usize,
}

pub const DEFAULT_MAX_CONNECTIONS: usize = 2048;
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(120);
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Larger than Kamailio's 32 KiB: a connection still connecting holds
/// everything for its peer, and one message may be 64 KiB.
pub const DEFAULT_WQ_MAX: usize = 256 * 1024;

impl Default for TcpConfig {
    fn default() -> TcpConfig {
        TcpConfig {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            lifetime: DEFAULT_LIFETIME,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            wq_max: DEFAULT_WQ_MAX,
        }
    }
}

/// A bound socket waiting for connections; `li` is its index among the
/// core's sockets.
#[derive(Debug)]
pub struct StreamListener {
    pub proto: Transport,
    pub local: SocketAddr,
    pub advertise: Option<(String, u16)>,
    sock: TcpListener,
}

impl StreamListener {
    pub fn bind(
        proto: Transport,
        addr: SocketAddr,
        advertise: Option<(String, u16)>,
    ) -> io::Result<StreamListener> {
        let sock = TcpListener::bind(addr)?;
        let local = sock.local_addr()?;
        Ok(StreamListener {
            proto,
            local,
            advertise,
            sock,
        })
    }
}

/// What a connection produced for the core.
#[derive(Debug)]
pub enum Received {
    /// One framed message from `peer`, received at `local`.
    Message {
        li: usize,
        local: SocketAddr,
        peer: SocketAddr,
        bytes: Vec<u8>,
    },
    /// A message without Content-Length: the core answers 400 from its
    /// header section; the connection is closed once that is written.
    Unframed {
        li: usize,
        local: SocketAddr,
        peer: SocketAddr,
        head: Vec<u8>,
    },
}

/// Why a message could not be handed to a connection.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("tcp_max_connections ({0}) reached: no new connection")]
    TooMany(usize),
    #[error("connect to {to} failed: {err}")]
    Connect { to: SocketAddr, err: io::Error },
    #[error("write queue to {0} full (tcp_conn_wq_max)")]
    QueueFull(SocketAddr),
    #[error("no stream listener {0}")]
    NoListener(usize),
    #[error("TLS is not configured")]
    NoTls,
    #[error("TLS session: {0}")]
    Tls(String),
}

#[derive(Debug)]
struct Conn {
    sock: TcpStream,
    li: usize,
    local: SocketAddr,
    peer: SocketAddr,
    /// Some(deadline) while the non-blocking connect is in progress.
    connecting: Option<Instant>,
    reader: StreamReader,
    wq: WriteQueue,
    idle_deadline: Instant,
    /// Close once the write queue is empty; read no more.
    closing: bool,
    /// Ready to read and not read down to WouldBlock yet.
    readable: bool,
    /// The TLS session of a `tls:` connection.
    tls: Option<Box<rustls::Connection>>,
    /// Some while a TLS handshake is not done: closed at this instant.
    handshake_deadline: Option<Instant>,
}

/// Counters for `/metrics` and the log.
#[derive(Debug, Default, Clone, Copy)]
pub struct TcpCounters {
    pub accepted: u64,
    pub connected: u64,
    pub refused_max: u64,
    pub queue_drops: u64,
    pub idle_closed: u64,
    pub connect_timeouts: u64,
    pub framing_errors: u64,
    /// TLS handshakes or sessions that failed (bad certificate, protocol
    /// error) or did not finish within `tcp_connect_timeout`.
    pub tls_failures: u64,
}

pub struct SipStreams {
    listeners: Vec<(usize, StreamListener)>,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    live: usize,
    /// The connection to use for a peer over a transport (TCP or TLS):
    /// the newest one.
    by_peer: HashMap<(bool, SocketAddr), usize>,
    /// Connections marked readable, so a turn visits only those (not
    /// every slot of thousands of idle connections).
    ready: Vec<usize>,
    /// Listeners whose accept queue was not drained last turn.
    accept_ready: Vec<usize>,
    cfg: TcpConfig,
    listener_base: usize,
    conn_base: usize,
    next_sweep: Option<Instant>,
    /// The TLS configurations, when TLS is served or used.
    tls: Option<TlsContext>,
    pub counters: TcpCounters,
}

impl SipStreams {
    /// `listeners` with their core socket index; tokens from
    /// `listener_base` and `conn_base` up.
    pub fn new(
        listeners: Vec<(usize, StreamListener)>,
        cfg: TcpConfig,
        listener_base: usize,
        conn_base: usize,
    ) -> SipStreams {
        SipStreams {
            listeners,
            conns: Vec::new(),
            free: Vec::new(),
            live: 0,
            by_peer: HashMap::new(),
            ready: Vec::new(),
            accept_ready: Vec::new(),
            cfg,
            listener_base,
            conn_base,
            next_sweep: None,
            tls: None,
            counters: TcpCounters::default(),
        }
    }

    pub fn set_config(&mut self, cfg: TcpConfig) {
        self.cfg = cfg;
    }

    /// TLS for `tls:` listeners and outgoing TLS connections.
    pub fn set_tls(&mut self, tls: Option<TlsContext>) {
        self.tls = tls;
    }

    pub fn config(&self) -> TcpConfig {
        self.cfg
    }

    pub fn register(&mut self, registry: &Registry) -> io::Result<()> {
        for (i, (_, l)) in self.listeners.iter_mut().enumerate() {
            registry.register(
                &mut l.sock,
                Token(self.listener_base + i),
                Interest::READABLE,
            )?;
        }
        Ok(())
    }

    /// The transports of the listening sockets.
    pub fn protos(&self) -> Vec<Transport> {
        let mut v: Vec<Transport> = self.listeners.iter().map(|(_, l)| l.proto).collect();
        v.dedup();
        v
    }

    pub fn connections(&self) -> usize {
        self.live
    }

    pub fn owns(&self, t: Token) -> bool {
        (t.0 >= self.listener_base && t.0 < self.listener_base + self.listeners.len())
            || (t.0 >= self.conn_base && t.0 < self.conn_base + self.conns.len())
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.next_sweep
    }

    /// Any connection left with bytes to read (the poll must not wait).
    pub fn has_readable(&self) -> bool {
        !self.ready.is_empty() || !self.accept_ready.is_empty()
    }

    /// Readiness of a listener (accept) or a connection (flush writes,
    /// mark readable). Returns the connections refused for
    /// `tcp_max_connections`.
    pub fn on_event(&mut self, registry: &Registry, ev: &Event, now: Instant) -> u64 {
        let t = ev.token().0;
        if t >= self.listener_base && t < self.listener_base + self.listeners.len() {
            return self.accept(registry, t - self.listener_base, now);
        }
        let id = t - self.conn_base;
        let Some(Some(c)) = self.conns.get_mut(id) else {
            return 0;
        };
        if (ev.is_readable() || ev.is_read_closed() || ev.is_error()) && !c.readable {
            c.readable = true;
            self.ready.push(id);
        }
        let Some(Some(c)) = self.conns.get_mut(id) else {
            return 0;
        };
        if ev.is_writable() || ev.is_error() {
            if c.connecting.is_some() {
                match c.sock.take_error() {
                    Ok(None) if c.sock.peer_addr().is_ok() => {
                        c.connecting = None;
                        self.counters.connected += 1;
                    }
                    Ok(None) => return 0,
                    Ok(Some(e)) | Err(e) => {
                        log::debug!("tcp connect to {} failed: {e}", c.peer);
                        self.close(registry, id);
                        return 0;
                    }
                }
            }
            self.flush(registry, id, now);
        }
        0
    }

    /// Accepts on listener `idx` until it would block or the turn's
    /// share is taken; then it is listed to be accepted on next turn (mio
    /// is edge-triggered: no new event would come for connections already
    /// waiting). Returns the connections refused.
    fn accept(&mut self, registry: &Registry, idx: usize, now: Instant) -> u64 {
        let mut refused = 0;
        self.accept_ready.retain(|&i| i != idx);
        for _ in 0..ACCEPTS_PER_TURN {
            let (li, listener) = &self.listeners[idx];
            let li = *li;
            let local = listener.local;
            let proto = listener.proto;
            let (sock, peer) = match listener.sock.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return refused,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!("tcp accept on {local}: {e}");
                    return refused;
                }
            };
            if self.live >= self.cfg.max_connections {
                self.counters.refused_max += 1;
                refused += 1;
                drop(sock);
                continue;
            }
            let tls = match proto {
                Transport::Tls => match self.tls.as_ref().and_then(TlsContext::accept) {
                    Some(t) => Some(Box::new(t)),
                    None => {
                        self.counters.tls_failures += 1;
                        continue;
                    }
                },
                _ => None,
            };
            // A wildcard listener: the connection's own local address.
            let local = sock.local_addr().unwrap_or(local);
            let _ = sock.set_nodelay(true);
            self.counters.accepted += 1;
            self.insert(registry, sock, li, (local, peer), None, tls, now);
        }
        self.accept_ready.push(idx);
        refused
    }

    /// Listeners left with connections to accept last turn: accepted on
    /// now. Returns the connections refused.
    pub fn accept_pending(&mut self, registry: &Registry, now: Instant) -> u64 {
        let mut refused = 0;
        for idx in std::mem::take(&mut self.accept_ready) {
            refused += self.accept(registry, idx, now);
        }
        refused
    }

    #[allow(clippy::too_many_arguments)]
    fn insert(
        &mut self,
        registry: &Registry,
        mut sock: TcpStream,
        li: usize,
        (local, peer): (SocketAddr, SocketAddr),
        connecting: Option<Instant>,
        tls: Option<Box<rustls::Connection>>,
        now: Instant,
    ) -> Option<usize> {
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                self.conns.push(None);
                self.conns.len() - 1
            }
        };
        if let Err(e) = registry.register(
            &mut sock,
            Token(self.conn_base + id),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            log::warn!("tcp connection with {peer}: cannot watch it: {e}");
            self.free.push(id);
            return None;
        }
        let is_tls = tls.is_some();
        self.conns[id] = Some(Conn {
            sock,
            li,
            local,
            peer,
            connecting,
            reader: StreamReader::default(),
            wq: WriteQueue::new(self.cfg.wq_max),
            idle_deadline: now + self.cfg.lifetime,
            closing: false,
            readable: false,
            handshake_deadline: tls.as_ref().map(|_| now + self.cfg.connect_timeout),
            tls,
        });
        self.live += 1;
        self.by_peer.insert((is_tls, peer), id);
        if self.next_sweep.is_none() {
            self.next_sweep = Some(now + SWEEP_EVERY);
        }
        Some(id)
    }

    fn close(&mut self, registry: &Registry, id: usize) {
        if let Some(mut c) = self.conns.get_mut(id).and_then(Option::take) {
            let _ = registry.deregister(&mut c.sock);
            let key = (c.tls.is_some(), c.peer);
            if self.by_peer.get(&key) == Some(&id) {
                self.by_peer.remove(&key);
            }
            self.live -= 1;
            self.free.push(id);
            log::debug!("tcp connection {} <-> {} closed", c.local, c.peer);
        }
    }

    /// Writes what waits on connection `id` until the socket would block
    /// (on TLS: the session's records first, then one queued message at a
    /// time into the session, so the session never holds more than one
    /// message's records beyond the bounded queue); closes it on error, or
    /// when it was closing and is now drained.
    fn flush(&mut self, registry: &Registry, id: usize, now: Instant) {
        let Some(Some(c)) = self.conns.get_mut(id) else {
            return;
        };
        if c.connecting.is_some() {
            return;
        }
        let mut failed = false;
        let mut pending_records = false;
        if let Some(tls) = c.tls.as_mut() {
            'out: loop {
                while tls.wants_write() {
                    match tls.write_tls(&mut c.sock) {
                        Ok(0) => {
                            failed = true;
                            break 'out;
                        }
                        Ok(_) => c.idle_deadline = now + self.cfg.lifetime,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break 'out,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            log::debug!("tls write to {}: {e}", c.peer);
                            failed = true;
                            break 'out;
                        }
                    }
                }
                if tls.is_handshaking() || c.wq.is_empty() {
                    break;
                }
                match tls.writer().write(c.wq.front()) {
                    Ok(0) => break,
                    Ok(n) => c.wq.advance(n),
                    Err(e) => {
                        log::debug!("tls session to {}: {e}", c.peer);
                        failed = true;
                        break;
                    }
                }
            }
            if !tls.is_handshaking() {
                c.handshake_deadline = None;
            }
            pending_records = tls.wants_write();
        } else {
            while !c.wq.is_empty() {
                match c.sock.write(c.wq.front()) {
                    Ok(0) => {
                        failed = true;
                        break;
                    }
                    Ok(n) => {
                        c.wq.advance(n);
                        c.idle_deadline = now + self.cfg.lifetime;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        log::debug!("tcp write to {}: {e}", c.peer);
                        failed = true;
                        break;
                    }
                }
            }
        }
        if failed || (c.closing && c.wq.is_empty() && !pending_records) {
            self.close(registry, id);
        }
    }

    /// Connections ready to read, by id (the reactor reads each in turn,
    /// handling its messages before the next one's; one left with more to
    /// read is listed again by [`SipStreams::read`]).
    pub fn readable_ids(&mut self) -> Vec<usize> {
        std::mem::take(&mut self.ready)
    }

    /// Reads connection `id` up to [`TURN_BYTES`]; its messages in order
    /// (decrypted first on a TLS connection). Left marked readable when it
    /// may hold more.
    pub fn read(&mut self, registry: &Registry, id: usize, now: Instant) -> Vec<Received> {
        let mut out = Vec::new();
        let mut st = ReadState::default();
        let tls;
        {
            let Some(Some(c)) = self.conns.get_mut(id) else {
                return out;
            };
            if c.closing {
                c.readable = false;
                return out;
            }
            tls = c.tls.is_some();
            let mut total = 0;
            let mut buf = [0u8; 16 * 1024];
            loop {
                if total >= TURN_BYTES {
                    break;
                }
                let mut want = buf.len().min(TURN_BYTES - total);
                if !tls {
                    want = want.min(c.reader.room());
                    if want == 0 {
                        // Full without a frame: a framing error.
                        st.bad = true;
                        break;
                    }
                }
                match c.sock.read(&mut buf[..want]) {
                    Ok(0) => {
                        st.eof = true;
                        c.readable = false;
                        break;
                    }
                    Ok(n) => {
                        total += n;
                        c.idle_deadline = now + self.cfg.lifetime;
                        if !c.ingest(&buf[..n], &mut out, &mut st) {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        c.readable = false;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        log::debug!("tcp read from {}: {e}", c.peer);
                        st.eof = true;
                        c.readable = false;
                        break;
                    }
                }
            }
            if st.pong {
                let _ = c.wq.push(b"\r\n".to_vec());
            }
            if st.unframed {
                c.closing = true;
                c.readable = false;
            }
            if st.bad && !st.unframed {
                st.eof = true;
            }
        }
        if st.bad || st.unframed {
            self.counters.framing_errors += 1;
        }
        if st.tls_failed {
            self.counters.tls_failures += 1;
        }
        if st.eof {
            if let Some(Some(c)) = self.conns.get(id) {
                if st.bad {
                    log::debug!("tcp stream from {} cannot be framed: closed", c.peer);
                }
            }
            self.close(registry, id);
            return out;
        }
        if self
            .conns
            .get(id)
            .is_some_and(|c| c.as_ref().is_some_and(|c| c.readable))
        {
            self.ready.push(id);
        }
        if st.pong || tls {
            // A TLS session may have handshake records to send.
            self.flush(registry, id, now);
        }
        out
    }

    /// After the core answered an unframed message: close once written.
    pub fn flush_closing(&mut self, registry: &Registry, now: Instant) {
        let ids: Vec<usize> = self
            .conns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.as_ref().filter(|c| c.closing).map(|_| i))
            .collect();
        for id in ids {
            self.flush(registry, id, now);
        }
    }

    /// Queues `bytes` for `to` on the connection to it, opening one from
    /// stream listener `li` when there is none. Returns the local address
    /// of the connection used (the ephemeral one for an outgoing
    /// connection), for the trace row.
    pub fn send(
        &mut self,
        registry: &Registry,
        li: usize,
        to: SocketAddr,
        bytes: Vec<u8>,
        now: Instant,
    ) -> Result<SocketAddr, SendError> {
        let Some(proto) = self
            .listeners
            .iter()
            .find(|(l, _)| *l == li)
            .map(|(_, l)| l.proto)
        else {
            return Err(SendError::NoListener(li));
        };
        let id = match self.by_peer.get(&(proto == Transport::Tls, to)) {
            Some(&id) => id,
            None => {
                let tls = match proto {
                    Transport::Tls => {
                        let ctx = self.tls.as_ref().ok_or(SendError::NoTls)?;
                        let t = ctx
                            .connect(to.ip())
                            .map_err(|e| SendError::Tls(e.to_string()))?;
                        Some(Box::new(t))
                    }
                    _ => None,
                };
                if self.live >= self.cfg.max_connections {
                    self.counters.refused_max += 1;
                    return Err(SendError::TooMany(self.cfg.max_connections));
                }
                let sock = TcpStream::connect(to).map_err(|err| SendError::Connect { to, err })?;
                let _ = sock.set_nodelay(true);
                let local = sock
                    .local_addr()
                    .map_err(|err| SendError::Connect { to, err })?;
                let deadline = now + self.cfg.connect_timeout;
                self.insert(registry, sock, li, (local, to), Some(deadline), tls, now)
                    .ok_or(SendError::Connect {
                        to,
                        err: io::Error::other("cannot register the connection"),
                    })?
            }
        };
        let Some(Some(c)) = self.conns.get_mut(id) else {
            return Err(SendError::NoListener(li));
        };
        let local = c.local;
        if c.wq.push(bytes).is_err() {
            self.counters.queue_drops += 1;
            return Err(SendError::QueueFull(to));
        }
        self.flush(registry, id, now);
        Ok(local)
    }

    /// Closes connections idle for `tcp_connection_lifetime` and connects
    /// pending past `tcp_connect_timeout`.
    pub fn on_timer(&mut self, registry: &Registry, now: Instant) {
        let Some(due) = self.next_sweep else { return };
        if now < due {
            return;
        }
        let mut expired = Vec::new();
        for (i, c) in self.conns.iter().enumerate() {
            let Some(c) = c else { continue };
            match (c.connecting, c.handshake_deadline) {
                (Some(d), _) if now >= d => {
                    self.counters.connect_timeouts += 1;
                    log::debug!("tcp connect to {} timed out", c.peer);
                    expired.push(i);
                }
                (_, Some(d)) if now >= d => {
                    self.counters.tls_failures += 1;
                    log::debug!("tls handshake with {} not done in time: closed", c.peer);
                    expired.push(i);
                }
                _ if now >= c.idle_deadline => {
                    self.counters.idle_closed += 1;
                    expired.push(i);
                }
                _ => {}
            }
        }
        for id in expired {
            self.close(registry, id);
        }
        self.next_sweep = (self.live > 0).then(|| now + SWEEP_EVERY);
    }
}

/// What one read of a connection found.
#[derive(Debug, Default)]
struct ReadState {
    eof: bool,
    unframed: bool,
    bad: bool,
    pong: bool,
    tls_failed: bool,
}

impl Conn {
    /// Bytes read from the socket: framed (after decryption on TLS).
    /// False when the connection cannot be read on (`st` says why).
    fn ingest(&mut self, data: &[u8], out: &mut Vec<Received>, st: &mut ReadState) -> bool {
        let Some(tls) = self.tls.as_mut() else {
            self.reader.push(data);
            drain_frames(&mut self.reader, (self.li, self.local, self.peer), out, st);
            return !(st.bad || st.unframed);
        };
        let mut rd = data;
        while !rd.is_empty() {
            if let Err(e) = tls.read_tls(&mut rd) {
                log::debug!("tls from {}: {e}", self.peer);
                st.tls_failed = true;
                st.eof = true;
                return false;
            }
            if let Err(e) = tls.process_new_packets() {
                // A bad certificate, a protocol error: the alert is lost
                // with the connection, which is closed.
                log::debug!("tls from {}: {e}", self.peer);
                st.tls_failed = true;
                st.eof = true;
                return false;
            }
            let mut plain = [0u8; 16 * 1024];
            loop {
                let room = self.reader.room().min(plain.len());
                if room == 0 {
                    break;
                }
                match tls.reader().read(&mut plain[..room]) {
                    // close_notify: the peer is done.
                    Ok(0) => {
                        st.eof = true;
                        return false;
                    }
                    Ok(n) => self.reader.push(&plain[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        log::debug!("tls from {}: {e}", self.peer);
                        st.eof = true;
                        return false;
                    }
                }
                drain_frames(&mut self.reader, (self.li, self.local, self.peer), out, st);
                if st.bad || st.unframed {
                    return false;
                }
            }
            drain_frames(&mut self.reader, (self.li, self.local, self.peer), out, st);
            if st.bad || st.unframed {
                return false;
            }
        }
        if !tls.is_handshaking() {
            self.handshake_deadline = None;
        }
        true
    }
}

/// Moves every complete frame of `reader` into `out`; sets `st.bad` on a
/// framing error other than a missing Content-Length (which sets
/// `st.unframed`).
fn drain_frames(
    reader: &mut StreamReader,
    (li, local, peer): (usize, SocketAddr, SocketAddr),
    out: &mut Vec<Received>,
    st: &mut ReadState,
) {
    loop {
        match reader.next_frame() {
            Ok(None) => return,
            Ok(Some(Framed::Ping)) => st.pong = true,
            Ok(Some(Framed::Message(bytes))) => out.push(Received::Message {
                li,
                local,
                peer,
                bytes,
            }),
            Err(StreamError::Unframed { head }) => {
                out.push(Received::Unframed {
                    li,
                    local,
                    peer,
                    head,
                });
                st.unframed = true;
                return;
            }
            Err(StreamError::Bad(e)) => {
                log::debug!("stream from {peer}: {e}");
                st.bad = true;
                return;
            }
        }
    }
}
