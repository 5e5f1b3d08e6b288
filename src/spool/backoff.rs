//! When to try the database again after a failure: exponential backoff,
//! pure (the caller hands in `now`).
//!
//! A try against a refusing server (restarting, port closed) costs nothing;
//! against a host that drops packets or a server that accepts and never
//! answers, it stalls the reactor for up to the connect timeout. So tries
//! are spread out: 0.5 s after the failure, then doubling to at most 10 s.
//! A database that comes back is noticed within 10 s; a silent one costs at
//! most one connect timeout (db_connect_timeout_ms) per 10 s.

use std::time::{Duration, Instant};

/// First wait after a failure.
pub const FIRST: Duration = Duration::from_millis(500);
/// Longest wait between tries.
pub const MAX: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    /// Wait before the next try.
    delay: Duration,
    /// When the next try is due.
    next_try: Instant,
}

impl Backoff {
    /// The first failure, at `now`.
    pub fn start(now: Instant) -> Backoff {
        Backoff {
            delay: FIRST,
            next_try: now + FIRST,
        }
    }

    /// Whether a try is due at `now`.
    pub fn due(&self, now: Instant) -> bool {
        now >= self.next_try
    }

    pub fn next_try(&self) -> Instant {
        self.next_try
    }

    /// The try made at `now` failed: wait twice as long (up to [`MAX`]).
    pub fn failed(&mut self, now: Instant) {
        self.delay = (self.delay * 2).min(MAX);
        self.next_try = now + self.delay;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap() {
        let t0 = Instant::now();
        let mut b = Backoff::start(t0);
        assert!(!b.due(t0));
        assert!(b.due(t0 + FIRST));
        let mut now = t0 + FIRST;
        let mut waits = Vec::new();
        for _ in 0..8 {
            b.failed(now);
            waits.push((b.next_try() - now).as_millis());
            now = b.next_try();
        }
        assert_eq!(waits, [1000, 2000, 4000, 8000, 10000, 10000, 10000, 10000]);
    }
}
