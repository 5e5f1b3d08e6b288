//! The reactor: the one owner of `mio::Poll`, of the clock and of the FIFO
//! descriptors.
//!
//! Each turn: wait for readiness or the nearest deadline, read the time
//! once, turn every ready source into data for a pure core (`core::Core`
//! for SIP, `mi` for control requests), perform the effects they return
//! (datagrams, reply FIFOs), then hand the turn's trace rows to the trace
//! writer thread (`spool::TraceWriter`), which writes them in batched
//! transactions, or spools them while the database is down. The reactor
//! waits for it only when its bounded queue is full, or for a command that
//! must see every row (docs/decisions.md §21).
//!
//! Invariant: nothing a peer or a FIFO client sends can stop the loop; a
//! bad packet, request or DB error is logged and counted.
//!
//! Invariant: one turn reads at most `udp_turn_datagrams` datagrams or
//! `udp_turn_kb` KiB from each UDP socket (docs/decisions.md §11), so a
//! flood cannot starve timers, FIFOs and the database, and the rows a turn
//! buffers are bounded. mio is edge-triggered: a socket left unread is kept
//! in `readable` and read again next turn without a new event, the poll
//! not waiting while any is.
//!
//! Invariant: one turn reads at most 64 KiB from each SIP TCP/TLS
//! connection (transport/tcp.rs), handling each connection's messages
//! before the next one's, so a peer that streams cannot starve the others;
//! a connection left with more is read again next turn, the poll not
//! waiting (docs/decisions.md §18).
//!
//! Invariant: the `/metrics` endpoint (`metrics_listen`) never blocks a
//! turn: its connections are non-blocking, bounded in number and buffers,
//! and closed at their deadline (reactor/metrics.rs); its body is rendered
//! from counters this thread owns, in the turn the request completed.

pub mod control;
pub mod fifo;
pub mod filter_file;
pub mod metrics;
mod slow;

use crate::clock::WallTime;
use crate::config::DnsConfig;
use crate::core::Core;
use crate::sip::Transport;
use crate::spool::{TraceSink, TraceWriter};
use crate::trace::mirror::CopyVia;
use crate::trace::stream::StreamConfig;
use crate::transport::dns::{DnsError, DnsThread};
use crate::transport::stream::Streams;
use crate::transport::tcp::{Received, SipStreams, StreamListener, TcpConfig};
use crate::transport::{Listener, MAX_DATAGRAM};
use mio::net::UnixStream;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use std::io::{self, Read};
use std::time::{Duration, Instant};

/// Token layout: fixed slots first, then one per listener. Named, never
/// literal at the call sites.
const TOKEN_TERM: Token = Token(0);
const TOKEN_HUP: Token = Token(3);
const TOKEN_MI: Token = Token(1);
const TOKEN_RPC: Token = Token(2);
/// The helper threads' one waker (mio allows one per Poll): the resolver
/// thread has answers (transport/dns.rs), or the trace writer finished a
/// sync (spool/writer.rs).
const TOKEN_WAKE: Token = Token(4);
/// The `/metrics` listener (reactor/metrics.rs).
const TOKEN_METRICS: Token = Token(5);
const TOKEN_LISTENER_BASE: usize = 16;
/// TCP connections to capture nodes: a range above any listener token.
const TOKEN_STREAM_BASE: usize = 1 << 20;
/// `/metrics` connections: `metrics::MAX_CONNS` tokens below the streams'.
const TOKEN_METRICS_CONN_BASE: usize = 1 << 19;
/// SIP over TCP: the listening sockets, then one token per connection
/// slot (at most `tcp_max_connections`, below 2^20 slots).
const TOKEN_SIP_TCP_LISTENER_BASE: usize = 1 << 18;
const TOKEN_SIP_TCP_CONN_BASE: usize = 1 << 21;

/// How often the FIFO paths are checked for deletion/replacement.
const FIFO_CHECK_EVERY: Duration = Duration::from_secs(1);

/// How often the resolver's counters are logged when they moved.
const DNS_LOG_EVERY: Duration = Duration::from_secs(10);

/// Counters of the DB edge, reported by `sip_trace_stats`; kept by the sink.
pub use crate::spool::DbCounters;

pub struct Reactor {
    poll: Poll,
    pub listeners: Vec<Listener>,
    pub core: Core,
    pub control: control::Control,
    /// Kept TCP connections for mirrored copies (`;transport=tcp`).
    streams: Streams,
    /// SIP over TCP: listeners and connections (transport/tcp.rs).
    sip_tcp: SipStreams,
    /// The writer thread that owns the trace sink (spool/writer.rs).
    sink: TraceWriter,
    /// Shared by the helper threads that wake the reactor ([`TOKEN_WAKE`]).
    waker: std::sync::Arc<mio::Waker>,
    /// Read ends of the signal pipes: SIGTERM/SIGINT on one, SIGHUP on the
    /// other, so which one woke us needs no global flag.
    term_pipe: UnixStream,
    hup_pipe: UnixStream,
    stop: bool,
    next_fifo_check: Instant,
    /// The resolver thread; None until `start_dns` (lookups then time out).
    dns: Option<DnsThread>,
    /// Counters last logged (DNS trouble is logged when they move).
    dns_logged: (u64, u64, u64, u64),
    next_dns_log: Instant,
    /// Per listener: ready and not yet read down to WouldBlock.
    readable: Vec<bool>,
    /// Per socket and turn: datagrams, bytes.
    turn_datagrams: usize,
    turn_bytes: usize,
    /// The `/metrics` endpoint, when `metrics_listen` is set.
    metrics: Option<metrics::MetricsServer>,
    /// How long each turn took, for `/metrics`.
    turns: crate::metrics::TurnHistogram,
    /// Turns over [`slow::SLOW_TURN`], logged with where their time went.
    slow: slow::SlowTurns,
    /// SIP messages received and sent, per transport (`Transport as usize`).
    sip_received: [u64; 3],
    sip_sent: [u64; 3],
    /// The runtime trace filters' state file; None: not kept.
    filter_file: Option<std::path::PathBuf>,
}

#[derive(Debug)]
pub enum ReactorError {
    Poll(io::Error),
}

impl std::fmt::Display for ReactorError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReactorError::Poll(e) => write!(f, "event loop failed: {e}"),
        }
    }
}

impl Reactor {
    pub fn new(
        listeners: Vec<Listener>,
        core: Core,
        control: control::Control,
        sink: TraceSink,
    ) -> Result<Reactor, ReactorError> {
        let poll = Poll::new().map_err(ReactorError::Poll)?;
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let term_pipe = signal_pipe(&poll, &[SIGTERM, SIGINT], TOKEN_TERM)?;
        let hup_pipe = signal_pipe(&poll, &[SIGHUP], TOKEN_HUP)?;
        let waker = std::sync::Arc::new(
            mio::Waker::new(poll.registry(), TOKEN_WAKE).map_err(ReactorError::Poll)?,
        );
        let w = std::sync::Arc::clone(&waker);
        let wake = Box::new(move || {
            if let Err(e) = w.wake() {
                log::error!("cannot wake the reactor for the trace writer: {e}");
            }
        });
        let sink = TraceWriter::spawn(sink, wake).map_err(ReactorError::Poll)?;
        let mut r = Reactor {
            poll,
            listeners,
            core,
            control,
            streams: Streams::new(TOKEN_STREAM_BASE, StreamConfig::default()),
            sip_tcp: SipStreams::new(
                Vec::new(),
                TcpConfig::default(),
                TOKEN_SIP_TCP_LISTENER_BASE,
                TOKEN_SIP_TCP_CONN_BASE,
            ),
            sink,
            waker,
            term_pipe,
            hup_pipe,
            stop: false,
            next_fifo_check: Instant::now() + FIFO_CHECK_EVERY,
            dns: None,
            dns_logged: (0, 0, 0, 0),
            next_dns_log: Instant::now() + DNS_LOG_EVERY,
            readable: Vec::new(),
            turn_datagrams: 0,
            turn_bytes: 0,
            metrics: None,
            turns: crate::metrics::TurnHistogram::default(),
            slow: slow::SlowTurns::default(),
            sip_received: [0; 3],
            sip_sent: [0; 3],
            filter_file: None,
        };
        r.readable = vec![false; r.listeners.len()];
        let limits = r.core.limits_mut();
        use crate::limits::Bound;
        limits.set_value(Bound::PendingReplies, control::MAX_PENDING_REPLIES as u64);
        limits.set_value(
            Bound::PendingReplyBytes,
            control::MAX_PENDING_REPLY_BYTES as u64,
        );
        r.set_turn_limits(
            crate::config::DEFAULT_UDP_TURN_DATAGRAMS as usize,
            crate::config::DEFAULT_UDP_TURN_KB as usize * 1024,
        );
        for (i, l) in r.listeners.iter_mut().enumerate() {
            r.poll
                .registry()
                .register(
                    &mut l.sock,
                    Token(TOKEN_LISTENER_BASE + i),
                    Interest::READABLE,
                )
                .map_err(ReactorError::Poll)?;
        }
        r.register_fifos().map_err(ReactorError::Poll)?;
        Ok(r)
    }

    /// Serves SIP over the bound TCP `listeners` (with their core socket
    /// index), bounded as `cfg` says.
    pub(crate) fn serve_streams(
        &mut self,
        listeners: Vec<(usize, StreamListener)>,
        cfg: TcpConfig,
        tls: Option<crate::transport::tls::TlsContext>,
    ) -> Result<(), ReactorError> {
        self.sip_tcp = SipStreams::new(
            listeners,
            cfg,
            TOKEN_SIP_TCP_LISTENER_BASE,
            TOKEN_SIP_TCP_CONN_BASE,
        );
        self.sip_tcp.set_tls(tls);
        self.sip_tcp
            .register(self.poll.registry())
            .map_err(ReactorError::Poll)?;
        use crate::limits::Bound;
        let limits = self.core.limits_mut();
        limits.set_value(Bound::TcpConnections, cfg.max_connections as u64);
        limits.set_value(Bound::TcpWriteQueue, cfg.wq_max as u64);
        Ok(())
    }

    /// Bytes of copies each TCP capture connection may hold while its node
    /// is away or slow (siptrace `mirror_tcp_queue_kb`).
    pub(crate) fn set_mirror_queue_bytes(&mut self, bytes: usize) {
        let cfg = StreamConfig {
            max_queue_bytes: bytes,
            ..StreamConfig::default()
        };
        self.streams = Streams::new(TOKEN_STREAM_BASE, cfg);
    }

    /// Starts the resolver thread, which wakes this poll when answers wait.
    pub(crate) fn start_dns(&mut self, cfg: &DnsConfig) -> Result<(), DnsError> {
        self.dns = Some(DnsThread::start(cfg, std::sync::Arc::clone(&self.waker))?);
        Ok(())
    }

    /// Serves `GET /metrics` on `addr` (core `metrics_listen`); returns
    /// the bound address.
    pub(crate) fn listen_metrics(
        &mut self,
        addr: std::net::SocketAddr,
    ) -> io::Result<std::net::SocketAddr> {
        let server = metrics::MetricsServer::bind(
            self.poll.registry(),
            addr,
            TOKEN_METRICS,
            TOKEN_METRICS_CONN_BASE,
        )?;
        let local = server.local_addr()?;
        self.metrics = Some(server);
        Ok(local)
    }

    /// What one turn reads from one UDP socket at most (core
    /// `udp_turn_datagrams`, `udp_turn_kb`).
    pub(crate) fn set_turn_limits(&mut self, datagrams: usize, bytes: usize) {
        use crate::limits::Bound;
        self.turn_datagrams = datagrams.max(1);
        self.turn_bytes = bytes.max(MAX_DATAGRAM);
        let limits = self.core.limits_mut();
        limits.set_value(Bound::TurnDatagrams, self.turn_datagrams as u64);
        limits.set_value(Bound::TurnBytes, self.turn_bytes as u64);
    }

    /// Connect to a TCP capture node now (duplicate_uri), rather than on
    /// its first copy.
    pub(crate) fn open_mirror_stream(
        &mut self,
        to: std::net::SocketAddr,
        bind: Option<std::net::IpAddr>,
    ) {
        self.streams
            .open(self.poll.registry(), to, bind, Instant::now());
    }

    /// Registers the control FIFOs' read ends. Also called after one was
    /// recreated: the other one is still registered then (EEXIST), which
    /// must not keep the new one from being watched.
    fn register_fifos(&mut self) -> io::Result<()> {
        let fds = [
            (self.control.mi_fd(), TOKEN_MI),
            (self.control.rpc_fd(), TOKEN_RPC),
        ];
        for (fd, token) in fds {
            let Some(fd) = fd else { continue };
            match self
                .poll
                .registry()
                .register(&mut SourceFd(&fd), token, Interest::READABLE)
            {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                other => other?,
            }
        }
        Ok(())
    }

    /// Runs until SIGTERM/SIGINT or MI `kill`; then writes what is pending.
    pub fn run(&mut self) -> Result<(), ReactorError> {
        let mut events = Events::with_capacity(256);
        let mut buf = vec![0u8; MAX_DATAGRAM];
        while !self.stop {
            let timeout = if self.readable.contains(&true) || self.sip_tcp.has_readable() {
                Some(Duration::ZERO)
            } else {
                self.next_deadline()
                    .map(|d| d.saturating_duration_since(Instant::now()))
            };
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ReactorError::Poll(e)),
            }
            let now = Instant::now();
            let wall = WallTime::now();
            let mut marks = slow::TurnMarks::new(now);
            let received_before: u64 = self.sip_received.iter().sum();
            for ev in events.iter() {
                match ev.token() {
                    TOKEN_TERM => {
                        drain(&mut self.term_pipe);
                        log::info!("signal received: stopping after writing pending rows");
                        self.stop = true;
                    }
                    TOKEN_HUP => {
                        drain(&mut self.hup_pipe);
                        log::info!(
                            "SIGHUP: nothing to reopen (logs go to syslog or stderr); restart to apply config changes"
                        );
                    }
                    TOKEN_MI => self
                        .control
                        .on_mi_readable(&mut self.core, &mut self.sink, now),
                    TOKEN_RPC => self
                        .control
                        .on_rpc_readable(&mut self.core, &mut self.sink, now),
                    TOKEN_WAKE => {
                        self.on_dns(now, wall);
                        // Held MI/JSON-RPC commands may run now.
                        self.control
                            .on_writer_synced(&mut self.core, &mut self.sink, now);
                    }
                    t if self.metrics.as_ref().is_some_and(|m| m.owns(t)) => {
                        if let Some(m) = &mut self.metrics {
                            m.on_event(self.poll.registry(), t, now);
                        }
                    }
                    t if self.streams.owns(t) => {
                        self.streams.on_event(self.poll.registry(), ev, now)
                    }
                    t if self.sip_tcp.owns(t) => {
                        let refused = self.sip_tcp.on_event(self.poll.registry(), ev, now);
                        for _ in 0..refused {
                            self.core
                                .limits_mut()
                                .hit(crate::limits::Bound::TcpConnections);
                        }
                    }
                    Token(t) if t >= TOKEN_LISTENER_BASE => {
                        if let Some(r) = self.readable.get_mut(t - TOKEN_LISTENER_BASE) {
                            *r = true;
                        }
                    }
                    Token(_) => {}
                }
            }
            marks.mark(slow::Step::Events, Instant::now());
            for idx in 0..self.readable.len() {
                if self.readable[idx] {
                    self.readable[idx] = !self.on_listener(idx, &mut buf, now);
                }
            }
            marks.mark(slow::Step::Udp, Instant::now());
            let refused = self.sip_tcp.accept_pending(self.poll.registry(), now);
            for _ in 0..refused {
                self.core
                    .limits_mut()
                    .hit(crate::limits::Bound::TcpConnections);
            }
            self.on_tcp_reads(now);
            marks.mark(slow::Step::Tcp, Instant::now());
            self.on_timers(now, wall);
            marks.mark(slow::Step::Timers, Instant::now());
            self.save_filters(false);
            self.flush_sends();
            self.log_dns(now);
            marks.mark(slow::Step::Sends, Instant::now());
            marks.rows = self.flush_rows();
            marks.mark(slow::Step::Rows, Instant::now());
            self.core.limits_mut().log_summary(now, false);
            self.serve_metrics();
            let end = Instant::now();
            marks.mark(slow::Step::Tail, end);
            marks.messages = self.sip_received.iter().sum::<u64>() - received_before;
            // The turn's work, not its wait: `now` was read when the poll
            // returned.
            self.turns.observe(end.saturating_duration_since(now));
            if let Some(line) = self.slow.finish(&marks, end) {
                log::warn!("{line}");
            }
            if self.control.kill_requested() {
                log::info!("MI kill: stopping");
                self.stop = true;
            }
        }
        self.flush_sends();
        self.save_filters(true);
        self.finish_rows();
        self.core.limits_mut().log_summary(Instant::now(), true);
        Ok(())
    }

    /// Where the runtime trace filters are kept (docs/decisions.md §16).
    pub(crate) fn set_filter_file(&mut self, path: Option<std::path::PathBuf>) {
        self.filter_file = path;
    }

    /// Writes the filters' state file when they changed (`all`: at exit,
    /// whatever changed, for the match counts). A failed write is logged
    /// and tried again at the next change.
    fn save_filters(&mut self, all: bool) {
        let text = match self.core.filters_to_save() {
            Some(t) => t,
            None if all => self.core.filters_text(),
            None => return,
        };
        if let Some(path) = &self.filter_file {
            if let Err(e) = filter_file::save(path, &text) {
                log::warn!("{e}; the filters will not survive a restart until it can be written");
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        [
            self.core.next_deadline(),
            self.control.next_deadline(),
            self.streams.next_deadline(),
            self.sip_tcp.next_deadline(),
            self.metrics.as_ref().and_then(|m| m.next_deadline()),
            Some(self.next_fifo_check),
            Some(self.next_dns_log),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Reads listener `idx` up to the turn's limits; true when it was read
    /// down to WouldBlock (or failed), false when it may hold more.
    fn on_listener(&mut self, idx: usize, buf: &mut [u8], now: Instant) -> bool {
        use crate::limits::Bound;
        let (mut datagrams, mut bytes) = (0, 0);
        loop {
            if datagrams >= self.turn_datagrams || bytes >= self.turn_bytes {
                let bound = if datagrams >= self.turn_datagrams {
                    Bound::TurnDatagrams
                } else {
                    Bound::TurnBytes
                };
                self.core.limits_mut().hit(bound);
                return false;
            }
            let got = match self.listeners.get(idx).map(|l| l.recv(buf)) {
                Some(Ok(Some(g))) => g,
                Some(Ok(None)) | None => return true,
                Some(Err(e)) => {
                    log::warn!("udp receive error: {e}");
                    return true;
                }
            };
            let (n, src) = got;
            if let Some(l) = self.listeners.get(idx) {
                self.sip_received[l.proto as usize] += 1;
            }
            datagrams += 1;
            bytes += n;
            // Each datagram's own wall time (a vDSO read): a reply drained
            // in the same turn as its request must not share its time_us.
            self.core
                .on_datagram(idx, src, &buf[..n], now, WallTime::now());
            // Keep memory flat under a burst: send as we go.
            self.flush_sends();
        }
    }

    /// Each TCP connection ready to read, up to its turn's bound; its
    /// messages handled (and their sends made) before the next one's.
    fn on_tcp_reads(&mut self, now: Instant) {
        for id in self.sip_tcp.readable_ids() {
            let got = self.sip_tcp.read(self.poll.registry(), id, now);
            let mut unframed = false;
            for r in got {
                match r {
                    Received::Message {
                        li,
                        local,
                        peer,
                        bytes,
                    } => {
                        let proto = self.core.socket_proto(li);
                        self.sip_received[proto as usize] += 1;
                        self.core
                            .on_stream_message(li, local, peer, &bytes, now, WallTime::now());
                    }
                    Received::Unframed { li, peer, head, .. } => {
                        self.core.on_unframed(li, peer, &head);
                        unframed = true;
                    }
                }
                self.flush_sends();
            }
            if unframed {
                self.sip_tcp.flush_closing(self.poll.registry(), now);
            }
        }
    }

    fn on_timers(&mut self, now: Instant, wall: WallTime) {
        self.core.on_timer(now, wall);
        self.streams.on_timer(self.poll.registry(), now);
        self.sip_tcp.on_timer(self.poll.registry(), now);
        if let Some(m) = &mut self.metrics {
            m.on_timer(self.poll.registry(), now);
        }
        self.control.on_timer(&mut self.core, &mut self.sink, now);
        if now >= self.next_fifo_check {
            self.next_fifo_check = now + FIFO_CHECK_EVERY;
            match self.control.recreate_stale() {
                Ok(true) => {
                    if let Err(e) = self.register_fifos() {
                        log::error!("cannot watch the recreated FIFO: {e}");
                    }
                }
                Ok(false) => {}
                Err(e) => log::error!("{e}"),
            }
        }
    }

    /// Answers of the resolver thread: parked requests go on.
    fn on_dns(&mut self, now: Instant, wall: WallTime) {
        let answers = match &self.dns {
            Some(d) => d.answers(),
            None => return,
        };
        for (q, a) in answers {
            self.core.on_resolved(&q, a, now, wall);
            self.flush_sends();
        }
    }

    /// Lookups the core asked for go to the resolver thread (without one,
    /// they time out in the core).
    fn flush_queries(&mut self) {
        let queries = self.core.take_queries();
        if let Some(d) = &self.dns {
            for q in queries {
                d.ask(q);
            }
        }
    }

    /// One line when lookups failed, timed out, or requests were refused
    /// for want of room, since the last one (at most every 10 s).
    fn log_dns(&mut self, now: Instant) {
        if now < self.next_dns_log {
            return;
        }
        self.next_dns_log = now + DNS_LOG_EVERY;
        let (st, full, loops) = self.core.dns_stats();
        let cur = (st.not_found, st.timeouts, full, st.busy);
        if cur != self.dns_logged {
            self.dns_logged = cur;
            log::warn!(
                "dns: {} lookups, {} answered, {} not found, {} timed out, {} refused (busy), \
                 {} requests refused (park full), {} cache evictions (+{} negative), {} loops refused",
                st.queries,
                st.answers,
                st.not_found,
                st.timeouts,
                st.busy,
                full,
                st.evicted_positive,
                st.evicted_negative,
                loops
            );
        }
    }

    fn flush_sends(&mut self) {
        self.flush_queries();
        for s in self.core.take_sends() {
            if s.proto != Transport::Udp {
                self.send_stream(s);
                continue;
            }
            match self.listeners.get_mut(s.listener) {
                Some(l) => {
                    if l.send(&s.bytes, s.to) {
                        self.sip_sent[l.proto as usize] += 1;
                    }
                }
                None => log::error!("send on unknown socket {}", s.listener),
            }
        }
        self.flush_mirrors();
    }

    /// One message for a stream connection: queued on the connection to
    /// its peer (opened now when there is none), then its `out` event
    /// traced with the connection's real local address. A message that
    /// cannot be queued is dropped (counted) and traced from the
    /// listening socket, as a refused UDP datagram is traced.
    fn send_stream(&mut self, s: crate::core::Send) {
        use crate::transport::tcp::SendError;
        let now = Instant::now();
        let proto = s.proto;
        let local =
            match self
                .sip_tcp
                .send(self.poll.registry(), s.listener, s.to, s.bytes.clone(), now)
            {
                Ok(local) => {
                    self.sip_sent[proto as usize] += 1;
                    local
                }
                Err(e) => {
                    use crate::limits::Bound;
                    match e {
                        SendError::TooMany(_) => self.core.limits_mut().hit(Bound::TcpConnections),
                        SendError::QueueFull(_) => self.core.limits_mut().hit(Bound::TcpWriteQueue),
                        _ => {}
                    }
                    log::debug!("{proto} send to {}: {e}", s.to);
                    match self.core.socket_addr(s.listener) {
                        Some(a) => a,
                        None => return,
                    }
                }
            };
        self.core.trace_stream_sent(&s, local);
    }

    /// Copies for capture nodes, after the SIP sends of the same turn:
    /// UDP ones now (a refused datagram is a dropped copy), TCP ones into
    /// their connection's bounded queue. Then the outcome is counted.
    fn flush_mirrors(&mut self) {
        let now = Instant::now();
        let (mut sent, mut dropped) = (0, 0);
        for m in self.core.take_mirrors() {
            match m.via {
                CopyVia::Udp { listener } => {
                    let ok = match self.listeners.get_mut(listener) {
                        Some(l) => l.send(&m.bytes, m.to),
                        None => false,
                    };
                    if ok {
                        sent += 1;
                    } else {
                        dropped += 1;
                    }
                }
                CopyVia::Tcp { bind } => {
                    self.streams
                        .push(self.poll.registry(), m.to, bind, m.bytes, now)
                }
            }
        }
        let (tcp_sent, tcp_dropped) = self.streams.take_counts();
        self.core
            .count_copies(sent + tcp_sent, dropped + tcp_dropped);
    }

    /// Renders the body once when a `/metrics` request waits for it.
    fn serve_metrics(&mut self) {
        if !self.metrics.as_ref().is_some_and(|m| m.wants_body()) {
            return;
        }
        let body = crate::metrics::render(&self.metrics_snapshot());
        if let Some(m) = &mut self.metrics {
            m.supply_body(self.poll.registry(), body.as_bytes());
        }
    }

    /// The counters as `/metrics` shows them.
    fn metrics_snapshot(&self) -> crate::metrics::Snapshot {
        let db = self.sink.counters();
        let core = self.core.stats();
        let trace = self.core.trace_counters();
        let (dns_pending, parked) = self.core.pending_lookups();
        let mut protos: Vec<Transport> = Vec::new();
        for l in &self.listeners {
            if !protos.contains(&l.proto) {
                protos.push(l.proto);
            }
        }
        for p in self.sip_tcp.protos() {
            if !protos.contains(&p) {
                protos.push(p);
            }
        }
        let http = self
            .metrics
            .as_ref()
            .map(|m| m.counters)
            .unwrap_or_default();
        crate::metrics::Snapshot {
            rows_written: db.rows_written,
            rows_spooled: db.rows_spooled,
            rows_replayed: db.rows_replayed,
            rows_dropped: db.rows_dropped,
            rows_purged: db.rows_purged,
            last_purge_ms: db.last_purge_ms,
            msgs_masked: trace.msgs_masked,
            spool_bytes: db.spool_bytes,
            copies_sent: core.copies_sent,
            copies_dropped: core.copies_dropped,
            db_up: db.down_since.is_none(),
            transactions: self.core.live_transactions() as u64,
            traced_requests: trace.traced_requests,
            traced_replies: trace.traced_replies,
            dns_pending: dns_pending as u64,
            parked: parked as u64,
            received: protos
                .iter()
                .map(|&t| (t.as_str(), self.sip_received[t as usize]))
                .collect(),
            sent: protos
                .iter()
                .map(|&t| (t.as_str(), self.sip_sent[t as usize]))
                .collect(),
            bounds: self
                .core
                .limits()
                .stats()
                .into_iter()
                .map(|l| crate::metrics::BoundSample {
                    bound: l.bound,
                    value: l.value,
                    hits: l.hits,
                })
                .collect(),
            turns: self.turns.clone(),
            http_refused: http.refused,
            http_timed_out: http.timed_out,
        }
    }

    /// Hands the turn's rows, in order, to the writer thread (which writes
    /// or spools them); returns how many there were.
    fn flush_rows(&mut self) -> usize {
        let rows = self.core.take_rows();
        let n = rows.len();
        self.sink.flush(rows);
        n
    }

    /// At exit: the last rows are written or spooled, then replay goes on
    /// for a bounded time while the database is up (spool/writer.rs).
    fn finish_rows(&mut self) {
        self.sink.finish(self.core.take_rows());
    }
}

/// A socket pair whose write end the signal handler writes a byte to.
fn signal_pipe(poll: &Poll, sigs: &[i32], token: Token) -> Result<UnixStream, ReactorError> {
    let (rd, wr) = std::os::unix::net::UnixStream::pair().map_err(ReactorError::Poll)?;
    for s in [&rd, &wr] {
        s.set_nonblocking(true).map_err(ReactorError::Poll)?;
    }
    let mut rd = UnixStream::from_std(rd);
    for &sig in sigs {
        let w = wr.try_clone().map_err(ReactorError::Poll)?;
        signal_hook::low_level::pipe::register(sig, w).map_err(ReactorError::Poll)?;
    }
    poll.registry()
        .register(&mut rd, token, Interest::READABLE)
        .map_err(ReactorError::Poll)?;
    Ok(rd)
}

fn drain(s: &mut UnixStream) {
    let mut b = [0u8; 64];
    loop {
        match s.read(&mut b) {
            Ok(0) => return,
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        }
    }
}
