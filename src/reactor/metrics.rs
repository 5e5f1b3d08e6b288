//! The `/metrics` endpoint's sockets (core `metrics_listen`,
//! docs/decisions.md §12): a non-blocking TCP listener and at most
//! [`MAX_CONNS`] connections, driven by the reactor's readiness events and
//! timers.
//!
//! This is the socket edge only: what a request asks for and the response
//! bytes come from `metrics::http`, the body from `metrics::render`, both
//! pure. Nothing here blocks or waits: reads and writes stop at
//! `WouldBlock`, and mio, edge-triggered, reports the next readiness.
//!
//! Invariants (ARCHITECTURE.md): at most [`MAX_CONNS`] descriptors besides
//! the listener — a connection beyond them is accepted and closed at once,
//! and counted; each one holds at most `MAX_REQUEST_BYTES` of request and
//! one response; each is closed at its deadline, [`CONN_DEADLINE`] after it
//! was accepted, whether or not its peer read or wrote anything.

use crate::metrics::http::{self, MAX_REQUEST_BYTES, Route};
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Connections served at once.
pub const MAX_CONNS: usize = 16;

/// How long a connection may live, from accept to its last byte written.
pub const CONN_DEADLINE: Duration = Duration::from_secs(5);

/// A response larger than this is not sent (500 instead): the body's size
/// is fixed by the metric set, so this only guards against a bug.
const MAX_RESPONSE_BYTES: usize = 1 << 20;

struct Conn {
    sock: TcpStream,
    req: Vec<u8>,
    state: State,
    deadline: Instant,
}

enum State {
    Reading,
    /// A `/metrics` request waits for the turn's body.
    WantsBody,
    Writing {
        out: Vec<u8>,
        done: usize,
    },
}

/// What the endpoint counts about itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HttpCounters {
    pub refused: u64,
    pub timed_out: u64,
    pub served: u64,
}

pub struct MetricsServer {
    listener: TcpListener,
    listener_token: Token,
    conn_base: usize,
    conns: Vec<Option<Conn>>,
    pub counters: HttpCounters,
}

impl MetricsServer {
    /// Binds `addr` and registers the listener under `listener_token`;
    /// connections take tokens `conn_base .. conn_base + MAX_CONNS`.
    pub fn bind(
        registry: &Registry,
        addr: SocketAddr,
        listener_token: Token,
        conn_base: usize,
    ) -> io::Result<MetricsServer> {
        let mut listener = TcpListener::bind(addr)?;
        registry.register(&mut listener, listener_token, Interest::READABLE)?;
        Ok(MetricsServer {
            listener,
            listener_token,
            conn_base,
            conns: (0..MAX_CONNS).map(|_| None).collect(),
            counters: HttpCounters::default(),
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Whether `t` is the listener's or one of the connections' token.
    pub fn owns(&self, t: Token) -> bool {
        t == self.listener_token || (self.conn_base..self.conn_base + MAX_CONNS).contains(&t.0)
    }

    pub fn on_event(&mut self, registry: &Registry, t: Token, now: Instant) {
        if t == self.listener_token {
            self.accept(registry, now);
        } else {
            self.drive(registry, t.0 - self.conn_base);
        }
    }

    /// Whether a `/metrics` request waits for [`MetricsServer::supply_body`].
    pub fn wants_body(&self) -> bool {
        self.conns
            .iter()
            .flatten()
            .any(|c| matches!(c.state, State::WantsBody))
    }

    /// The body for every request waiting for one; their responses start.
    pub fn supply_body(&mut self, registry: &Registry, body: &[u8]) {
        let mut resp = http::response(Route::Metrics, body, crate::metrics::CONTENT_TYPE);
        if resp.len() > MAX_RESPONSE_BYTES {
            log::error!("metrics: response of {} bytes not sent", resp.len());
            resp = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                .to_vec();
        }
        for i in 0..self.conns.len() {
            if let Some(c) = &mut self.conns[i] {
                if matches!(c.state, State::WantsBody) {
                    c.state = State::Writing {
                        out: resp.clone(),
                        done: 0,
                    };
                    self.counters.served += 1;
                    self.drive(registry, i);
                }
            }
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.conns.iter().flatten().map(|c| c.deadline).min()
    }

    /// Closes the connections whose deadline has passed.
    pub fn on_timer(&mut self, registry: &Registry, now: Instant) {
        for i in 0..self.conns.len() {
            if self.conns[i].as_ref().is_some_and(|c| now >= c.deadline) {
                self.counters.timed_out += 1;
                self.close(registry, i);
            }
        }
    }

    fn accept(&mut self, registry: &Registry, now: Instant) {
        loop {
            let (mut sock, _) = match self.listener.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and the like: the pending connection stays in
                    // the backlog; the next connection's event retries.
                    log::warn!("metrics: cannot accept a connection: {e}");
                    return;
                }
            };
            let Some(slot) = self.conns.iter().position(Option::is_none) else {
                // Dropped here: closed without a reply.
                self.counters.refused += 1;
                continue;
            };
            let token = Token(self.conn_base + slot);
            if let Err(e) =
                registry.register(&mut sock, token, Interest::READABLE | Interest::WRITABLE)
            {
                log::warn!("metrics: cannot watch a connection: {e}");
                continue;
            }
            self.conns[slot] = Some(Conn {
                sock,
                req: Vec::new(),
                state: State::Reading,
                deadline: now + CONN_DEADLINE,
            });
            // Data may already be there: edge-triggered, no new event for it.
            self.drive(registry, slot);
        }
    }

    /// Reads, routes or writes connection `i` as far as it goes without
    /// blocking; closes it when done or failed.
    fn drive(&mut self, registry: &Registry, i: usize) {
        let Some(Some(c)) = self.conns.get_mut(i) else {
            return;
        };
        if let State::Reading = c.state {
            match read_request(c) {
                Ok(None) => return,
                Ok(Some(Route::Metrics)) => {
                    c.state = State::WantsBody;
                    return;
                }
                Ok(Some(route)) => {
                    c.state = State::Writing {
                        out: http::response(route, b"", ""),
                        done: 0,
                    };
                }
                Err(()) => return self.close(registry, i),
            }
        }
        if let State::Writing { out, done } = &mut c.state {
            loop {
                if *done == out.len() {
                    let _ = c.sock.shutdown(std::net::Shutdown::Write);
                    return self.close(registry, i);
                }
                match c.sock.write(&out[*done..]) {
                    Ok(0) => return self.close(registry, i),
                    Ok(n) => *done += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => return self.close(registry, i),
                }
            }
        }
    }

    fn close(&mut self, registry: &Registry, i: usize) {
        if let Some(mut c) = self.conns[i].take() {
            let _ = registry.deregister(&mut c.sock);
        }
    }
}

/// Reads what is there, up to the request bound. `Ok(None)`: incomplete,
/// wait for more; `Err`: the peer closed or failed before a whole request.
fn read_request(c: &mut Conn) -> Result<Option<Route>, ()> {
    let mut buf = [0u8; 1024];
    loop {
        let room = MAX_REQUEST_BYTES - c.req.len();
        if room > 0 {
            match c.sock.read(&mut buf[..room.min(1024)]) {
                Ok(0) => return Err(()),
                Ok(n) => c.req.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(http::route(&c.req));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Err(()),
            }
        }
        if let Some(r) = http::route(&c.req) {
            return Ok(Some(r));
        }
    }
}
