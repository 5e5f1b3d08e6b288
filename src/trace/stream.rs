//! The sending side of one TCP connection that carries mirrored copies
//! (HEPv3 or raw SIP, `duplicate_uri=sip:host:port;transport=tcp`), as a
//! state machine: when to connect, how long to wait for a connect, how long
//! to back off after a failure, which bytes to write next, and what to drop
//! when the capture node cannot keep up.
//!
//! Pure: no sockets and no clock — every call that depends on time is
//! handed `now`; transport/stream.rs owns the socket and asks this module
//! what to do. Depends on std only.
//!
//! Invariants: the queue never holds more than `max_queue_bytes` (a copy
//! that would exceed it is dropped and counted, so a slow or absent capture
//! node costs bounded memory and never back-pressures SIP); a copy is only
//! ever written whole on one connection (a copy cut by a connection loss is
//! dropped and counted, as resuming it on the next connection would corrupt
//! the stream's framing).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Tuning of one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamConfig {
    /// Bytes of copies kept while the connection is down or slow.
    pub max_queue_bytes: usize,
    /// First wait after a failure; doubled on each further failure.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// A connect that has not completed by then counts as failed (a capture
    /// node whose SYNs vanish must not hold copies forever).
    pub connect_timeout: Duration,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            max_queue_bytes: 4 << 20,
            backoff_min: Duration::from_millis(200),
            backoff_max: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
        }
    }
}

/// Where the connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// No socket; connect at `retry_at` (immediately for a new sender).
    Down {
        retry_at: Instant,
    },
    /// A non-blocking connect is in flight; give up at `deadline`.
    Connecting {
        deadline: Instant,
    },
    Up,
}

/// What the socket owner must do after a timer check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerAction {
    Nothing,
    /// Open a socket and start connecting, then call [`StreamSender::connecting`].
    Connect,
    /// The pending connect took too long: close the socket (the sender has
    /// already moved to `Down`).
    Abort,
}

#[derive(Debug)]
pub struct StreamSender {
    cfg: StreamConfig,
    phase: Phase,
    backoff: Duration,
    queue: VecDeque<Vec<u8>>,
    queued_bytes: usize,
    /// Bytes of the queue head already written on the current connection.
    head_written: usize,
    /// Copies written whole into the socket, not yet collected by [`take_counts`].
    ///
    /// [`take_counts`]: StreamSender::take_counts
    sent: u64,
    /// Copies refused by a full queue or cut by a connection loss, not yet collected.
    dropped: u64,
    /// Consecutive failures since the last successful connect (for logging).
    pub failures: u32,
}

impl StreamSender {
    /// A sender that wants to connect right away.
    pub fn new(cfg: StreamConfig, now: Instant) -> StreamSender {
        let backoff = cfg.backoff_min;
        StreamSender {
            cfg,
            phase: Phase::Down { retry_at: now },
            backoff,
            queue: VecDeque::new(),
            queued_bytes: 0,
            head_written: 0,
            sent: 0,
            dropped: 0,
            failures: 0,
        }
    }

    pub(crate) fn phase(&self) -> Phase {
        self.phase
    }

    /// Queue one copy. False (and counted as dropped) when it does not fit.
    pub fn push(&mut self, copy: Vec<u8>) -> bool {
        if copy.is_empty() {
            return true;
        }
        if self.queued_bytes + copy.len() > self.cfg.max_queue_bytes {
            self.dropped += 1;
            return false;
        }
        self.queued_bytes += copy.len();
        self.queue.push_back(copy);
        true
    }

    /// Copies waiting (the head may be partly written).
    pub(crate) fn queued(&self) -> usize {
        self.queue.len()
    }

    /// The next time [`on_timer`](StreamSender::on_timer) has work to do.
    pub fn deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Down { retry_at } => Some(retry_at),
            Phase::Connecting { deadline } => Some(deadline),
            Phase::Up => None,
        }
    }

    pub(crate) fn on_timer(&mut self, now: Instant) -> TimerAction {
        match self.phase {
            Phase::Down { retry_at } if now >= retry_at => TimerAction::Connect,
            Phase::Connecting { deadline } if now >= deadline => {
                self.failed(now);
                TimerAction::Abort
            }
            _ => TimerAction::Nothing,
        }
    }

    /// The socket was opened and its connect is in flight.
    pub(crate) fn connecting(&mut self, now: Instant) {
        self.phase = Phase::Connecting {
            deadline: now + self.cfg.connect_timeout,
        };
    }

    /// The connect completed: write from the start of the queue head.
    pub fn connected(&mut self) {
        self.phase = Phase::Up;
        self.backoff = self.cfg.backoff_min;
        self.failures = 0;
        self.head_written = 0;
    }

    /// Opening, connecting or writing failed, or the peer closed: wait
    /// before the next try, doubling the wait up to `backoff_max`. A copy
    /// cut in the middle is dropped; whole queued copies wait.
    pub fn failed(&mut self, now: Instant) {
        if self.head_written > 0 {
            if let Some(head) = self.queue.pop_front() {
                self.queued_bytes -= head.len();
                self.dropped += 1;
            }
            self.head_written = 0;
        }
        self.phase = Phase::Down {
            retry_at: now + self.backoff,
        };
        self.backoff = (self.backoff * 2).min(self.cfg.backoff_max);
        self.failures = self.failures.saturating_add(1);
    }

    /// The bytes to write next, when connected and something is queued.
    pub fn pending(&self) -> Option<&[u8]> {
        if self.phase != Phase::Up {
            return None;
        }
        self.queue.front().map(|h| &h[self.head_written..])
    }

    /// `n` bytes of [`pending`](StreamSender::pending) were written.
    pub(crate) fn wrote(&mut self, n: usize) {
        let Some(head) = self.queue.front() else {
            return;
        };
        self.head_written = (self.head_written + n).min(head.len());
        if self.head_written == head.len() {
            self.queued_bytes -= head.len();
            self.queue.pop_front();
            self.head_written = 0;
            self.sent += 1;
        }
    }

    /// (sent, dropped) since the last call.
    pub(crate) fn take_counts(&mut self) -> (u64, u64) {
        (
            std::mem::take(&mut self.sent),
            std::mem::take(&mut self.dropped),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(max: usize) -> StreamConfig {
        StreamConfig {
            max_queue_bytes: max,
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_millis(400),
            connect_timeout: Duration::from_secs(1),
        }
    }

    fn ms(t0: Instant, n: u64) -> Instant {
        t0 + Duration::from_millis(n)
    }

    /// Writes everything pending in chunks of at most `chunk` bytes.
    fn drain(s: &mut StreamSender, chunk: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(p) = s.pending() {
            let n = p.len().min(chunk);
            out.extend_from_slice(&p[..n]);
            s.wrote(n);
        }
        out
    }

    #[test]
    fn connects_at_once_then_writes_in_order() {
        let t0 = Instant::now();
        let mut s = StreamSender::new(cfg(100), t0);
        assert_eq!(s.deadline(), Some(t0));
        assert!(s.push(b"one".to_vec()) && s.push(b"two".to_vec()));
        assert_eq!(s.pending(), None, "nothing is written before the connect");
        assert_eq!(s.on_timer(t0), TimerAction::Connect);
        s.connecting(t0);
        assert_eq!(s.pending(), None);
        assert_eq!(s.deadline(), Some(ms(t0, 1000)));
        s.connected();
        assert_eq!(s.deadline(), None);
        assert_eq!(drain(&mut s, 2), b"onetwo");
        assert_eq!(s.take_counts(), (2, 0));
        assert_eq!(s.take_counts(), (0, 0));
    }

    #[test]
    fn queue_is_bounded_in_bytes() {
        let t0 = Instant::now();
        let mut s = StreamSender::new(cfg(10), t0);
        assert!(s.push(vec![1; 6]));
        assert!(s.push(vec![2; 4]));
        assert!(!s.push(vec![3; 1]), "11 bytes would exceed 10");
        assert!(s.push(Vec::new()), "an empty copy costs nothing");
        assert_eq!(s.queued(), 2);
        s.connecting(t0);
        s.connected();
        s.wrote(6);
        assert!(s.push(vec![4; 6]), "room again once the head is written");
        assert_eq!(drain(&mut s, 100), [vec![2; 4], vec![4; 6]].concat());
        assert_eq!(s.take_counts(), (3, 1));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets_on_connect() {
        let t0 = Instant::now();
        let mut s = StreamSender::new(cfg(100), t0);
        let mut now = t0;
        let mut waits = Vec::new();
        for _ in 0..5 {
            assert_eq!(s.on_timer(now), TimerAction::Connect);
            s.connecting(now);
            s.failed(now);
            let Phase::Down { retry_at } = s.phase() else {
                panic!("{:?}", s.phase())
            };
            waits.push((retry_at - now).as_millis());
            assert_eq!(
                s.on_timer(retry_at - Duration::from_millis(1)),
                TimerAction::Nothing
            );
            now = retry_at;
        }
        assert_eq!(waits, [100, 200, 400, 400, 400]);
        assert_eq!(s.failures, 5);
        s.connecting(now);
        s.connected();
        assert_eq!(s.failures, 0);
        s.failed(now);
        assert_eq!(
            s.phase(),
            Phase::Down {
                retry_at: now + Duration::from_millis(100)
            }
        );
    }

    #[test]
    fn connect_timeout_aborts_and_backs_off() {
        let t0 = Instant::now();
        let mut s = StreamSender::new(cfg(100), t0);
        s.push(b"x".to_vec());
        s.connecting(t0);
        assert_eq!(s.on_timer(ms(t0, 999)), TimerAction::Nothing);
        assert_eq!(s.on_timer(ms(t0, 1000)), TimerAction::Abort);
        assert_eq!(
            s.phase(),
            Phase::Down {
                retry_at: ms(t0, 1100)
            }
        );
        assert_eq!(s.queued(), 1, "whole copies wait for the next connection");
        assert_eq!(s.take_counts(), (0, 0));
    }

    #[test]
    fn a_copy_cut_by_a_loss_is_dropped_and_the_rest_resumes_whole() {
        let t0 = Instant::now();
        let mut s = StreamSender::new(cfg(100), t0);
        s.push(b"first".to_vec());
        s.push(b"second".to_vec());
        s.connecting(t0);
        s.connected();
        s.wrote(3);
        assert_eq!(s.pending(), Some(&b"st"[..]));
        s.failed(ms(t0, 5));
        assert_eq!(s.pending(), None);
        assert_eq!(s.queued(), 1);
        assert_eq!(s.on_timer(ms(t0, 105)), TimerAction::Connect);
        s.connecting(ms(t0, 105));
        s.connected();
        assert_eq!(drain(&mut s, 100), b"second");
        assert_eq!(s.take_counts(), (1, 1));
    }

    #[test]
    fn a_loss_between_copies_drops_nothing() {
        let t0 = Instant::now();
        let mut s = StreamSender::new(cfg(100), t0);
        s.push(b"a".to_vec());
        s.push(b"b".to_vec());
        s.connecting(t0);
        s.connected();
        s.wrote(1);
        s.failed(t0);
        s.connecting(t0);
        s.connected();
        assert_eq!(drain(&mut s, 100), b"b");
        assert_eq!(s.take_counts(), (2, 0));
    }

    #[test]
    fn overlong_write_reports_are_clamped() {
        let t0 = Instant::now();
        let mut s = StreamSender::new(cfg(100), t0);
        s.push(b"abc".to_vec());
        s.connecting(t0);
        s.connected();
        s.wrote(10);
        assert_eq!(s.queued(), 0);
        s.wrote(1);
        assert_eq!(s.take_counts(), (1, 0));
        assert!(s.push(vec![0; 100]), "byte count returned to zero");
    }
}
