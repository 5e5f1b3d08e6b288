//! The reactor: the one owner of `mio::Poll`, of the clock, of the FIFO
//! descriptors and of the database write.
//!
//! Each turn: wait for readiness or the nearest deadline, read the time
//! once, turn every ready source into data for a pure core (`core::Core`
//! for SIP, `mi` for control requests), perform the effects they return
//! (datagrams, reply FIFOs), then hand the turn's trace rows to the trace
//! sink (`spool::TraceSink`): written in batched transactions, or spooled
//! while the database is down — the only blocking call, bounded by
//! `db_batch_rows` per transaction and the backend's timeouts.
//!
//! Invariant: nothing a peer or a FIFO client sends can stop the loop; a
//! bad packet, request or DB error is logged and counted.

pub mod control;
pub mod fifo;

use crate::clock::WallTime;
use crate::core::Core;
use crate::spool::TraceSink;
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
const TOKEN_LISTENER_BASE: usize = 16;

/// How often the FIFO paths are checked for deletion/replacement.
const FIFO_CHECK_EVERY: Duration = Duration::from_secs(1);

/// Counters of the DB edge, reported by `sip_trace_stats`; kept by the sink.
pub use crate::spool::DbCounters;

/// At exit, how long replay may go on while the database is up: rows left
/// after it stay in the spool for the next start.
const EXIT_DRAIN: Duration = Duration::from_secs(5);

pub struct Reactor {
    poll: Poll,
    pub listeners: Vec<Listener>,
    pub core: Core,
    pub control: control::Control,
    sink: TraceSink,
    /// Read ends of the signal pipes: SIGTERM/SIGINT on one, SIGHUP on the
    /// other, so which one woke us needs no global flag.
    term_pipe: UnixStream,
    hup_pipe: UnixStream,
    stop: bool,
    next_fifo_check: Instant,
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
        let mut r = Reactor {
            poll,
            listeners,
            core,
            control,
            sink,
            term_pipe,
            hup_pipe,
            stop: false,
            next_fifo_check: Instant::now() + FIFO_CHECK_EVERY,
        };
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

    /// After daemonising: things that name our pid say the new one.
    pub fn after_fork(&mut self) {
        self.sink.after_fork();
    }

    fn register_fifos(&mut self) -> io::Result<()> {
        if let Some(fd) = self.control.mi_fd() {
            self.poll
                .registry()
                .register(&mut SourceFd(&fd), TOKEN_MI, Interest::READABLE)?;
        }
        if let Some(fd) = self.control.rpc_fd() {
            self.poll
                .registry()
                .register(&mut SourceFd(&fd), TOKEN_RPC, Interest::READABLE)?;
        }
        Ok(())
    }

    /// Runs until SIGTERM/SIGINT or MI `kill`; then writes what is pending.
    pub fn run(&mut self) -> Result<(), ReactorError> {
        let mut events = Events::with_capacity(256);
        let mut buf = vec![0u8; MAX_DATAGRAM];
        while !self.stop {
            let timeout = self
                .next_deadline()
                .map(|d| d.saturating_duration_since(Instant::now()));
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ReactorError::Poll(e)),
            }
            let now = Instant::now();
            let wall = WallTime::now();
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
                    TOKEN_MI => {
                        self.control
                            .on_mi_readable(&mut self.core, self.sink.counters(), now)
                    }
                    TOKEN_RPC => {
                        self.control
                            .on_rpc_readable(&mut self.core, self.sink.counters(), now)
                    }
                    Token(t) if t >= TOKEN_LISTENER_BASE => {
                        self.on_listener(t - TOKEN_LISTENER_BASE, &mut buf, now, wall)
                    }
                    Token(_) => {}
                }
            }
            self.on_timers(now, wall);
            self.flush_sends();
            self.flush_rows(now, wall);
            if self.control.kill_requested() {
                log::info!("MI kill: stopping");
                self.stop = true;
            }
        }
        self.flush_sends();
        self.finish_rows();
        Ok(())
    }

    fn next_deadline(&self) -> Option<Instant> {
        [
            self.core.next_deadline(),
            self.control.next_deadline(),
            self.sink.next_deadline(),
            Some(self.next_fifo_check),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn on_listener(&mut self, idx: usize, buf: &mut [u8], now: Instant, wall: WallTime) {
        loop {
            let got = match self.listeners.get(idx).map(|l| l.recv(buf)) {
                Some(Ok(Some(g))) => g,
                Some(Ok(None)) | None => return,
                Some(Err(e)) => {
                    log::warn!("udp receive error: {e}");
                    return;
                }
            };
            let (n, src) = got;
            self.core.on_datagram(idx, src, &buf[..n], now, wall);
            // Keep memory flat under a burst: send as we go.
            self.flush_sends();
        }
    }

    fn on_timers(&mut self, now: Instant, wall: WallTime) {
        self.core.on_timer(now, wall);
        self.control
            .on_timer(&mut self.core, self.sink.counters(), now);
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

    fn flush_sends(&mut self) {
        for s in self.core.take_sends() {
            match self.listeners.get_mut(s.listener) {
                Some(l) => {
                    l.send(&s.bytes, s.to);
                }
                None => log::error!("send on unknown socket {}", s.listener),
            }
        }
    }

    /// The turn's one blocking step: the rows, in order, to the database
    /// (or the spool), plus one bounded batch of replay when due.
    fn flush_rows(&mut self, now: Instant, wall: WallTime) {
        let rows = self.core.take_rows();
        self.sink.flush(rows, now, wall);
    }

    /// At exit: the last rows are written or spooled, then replay goes on
    /// for at most [`EXIT_DRAIN`] while the database is up.
    fn finish_rows(&mut self) {
        let now = Instant::now();
        self.sink
            .finish(self.core.take_rows(), now, WallTime::now());
        let deadline = now + EXIT_DRAIN;
        loop {
            let now = Instant::now();
            if now >= deadline || !self.sink.drain_step(now, WallTime::now()) {
                break;
            }
        }
        self.sink.close(Instant::now());
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
