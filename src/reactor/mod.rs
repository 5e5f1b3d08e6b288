//! The reactor: the one owner of `mio::Poll`, of the clock, of the FIFO
//! descriptors and of the database write.
//!
//! Each turn: wait for readiness or the nearest deadline, read the time
//! once, turn every ready source into data for a pure core (`core::Core`
//! for SIP, `mi` for control requests), perform the effects they return
//! (datagrams, reply FIFOs), then write the turn's trace rows in one
//! batched transaction — the only blocking call, bounded by
//! `db_batch_rows` per transaction and the backend's timeouts.
//!
//! Invariant: nothing a peer or a FIFO client sends can stop the loop; a
//! bad packet, request or DB error is logged and counted.

pub mod control;
pub mod fifo;

use crate::clock::WallTime;
use crate::core::Core;
use crate::db::{Backend, Row};
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

/// Counters of the DB edge, reported by `sip_trace_stats`.
#[derive(Debug, Default, Clone)]
pub struct DbCounters {
    pub rows_written: u64,
    pub rows_dropped: u64,
    pub msgs_escaped: u64,
    pub rows_rerouted: u64,
    /// Unix seconds since when the database has been failing, if it is.
    pub down_since: Option<i64>,
}

pub struct Reactor {
    poll: Poll,
    pub listeners: Vec<Listener>,
    pub core: Core,
    pub control: control::Control,
    db: Option<Box<dyn Backend>>,
    pub db_counters: DbCounters,
    batch_rows: usize,
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
        db: Option<Box<dyn Backend>>,
        batch_rows: usize,
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
            db,
            db_counters: DbCounters::default(),
            batch_rows: batch_rows.max(1),
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
                    TOKEN_MI => self
                        .control
                        .on_mi_readable(&mut self.core, &self.db_counters, now),
                    TOKEN_RPC => {
                        self.control
                            .on_rpc_readable(&mut self.core, &self.db_counters, now)
                    }
                    Token(t) if t >= TOKEN_LISTENER_BASE => {
                        self.on_listener(t - TOKEN_LISTENER_BASE, &mut buf, now, wall)
                    }
                    Token(_) => {}
                }
            }
            self.on_timers(now, wall);
            self.flush_sends();
            self.flush_rows(wall);
            if self.control.kill_requested() {
                log::info!("MI kill: stopping");
                self.stop = true;
            }
        }
        self.flush_sends();
        self.flush_rows(WallTime::now());
        Ok(())
    }

    fn next_deadline(&self) -> Option<Instant> {
        [
            self.core.next_deadline(),
            self.control.next_deadline(),
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
            .on_timer(&mut self.core, &self.db_counters, now);
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

    /// The turn's one blocking step: the rows, in order, in transactions of
    /// at most `batch_rows` rows.
    fn flush_rows(&mut self, wall: WallTime) {
        let rows: Vec<Row> = self.core.take_rows();
        if rows.is_empty() {
            return;
        }
        let Some(db) = self.db.as_mut() else {
            return;
        };
        for chunk in rows.chunks(self.batch_rows) {
            match db.write_batch(chunk) {
                Ok(rep) => {
                    self.db_counters.rows_written += rep.written;
                    self.db_counters.msgs_escaped += rep.escaped;
                    self.db_counters.rows_rerouted += rep.rerouted;
                    if self.db_counters.down_since.take().is_some() {
                        log::info!("database is back: {}", db.describe());
                    }
                }
                Err(e) => {
                    self.db_counters.rows_dropped += chunk.len() as u64;
                    if self.db_counters.down_since.is_none() {
                        self.db_counters.down_since = Some(wall.sec);
                    }
                    log::error!(
                        "error storing trace: {e}; {} rows lost ({} lost so far)",
                        chunk.len(),
                        self.db_counters.rows_dropped
                    );
                }
            }
        }
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
