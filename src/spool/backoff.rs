//! When to try the database again after a failure: exponential backoff,
//! pure (the caller hands in `now`).
//!
//! A try against a refusing server (restarting, port closed, shutting
//! down) costs next to nothing, so such tries are frequent: 0.5 s after the
//! failure, doubling to at most 2 s — a database that comes back is noticed
//! within 2 s. A try against a host that drops packets, or a server that
//! accepts and never answers, stalls the reactor for the whole connect
//! timeout; after such a failure the wait doubles up to 30 s, so a silent
//! database costs at most one `db_connect_timeout_ms` stall per 30 s.

use std::time::{Duration, Instant};

/// First wait after a failure.
pub const FIRST: Duration = Duration::from_millis(500);
/// Longest wait between tries after fast failures (refused).
pub(crate) const MAX_FAST: Duration = Duration::from_secs(2);
/// Longest wait between tries after a try that timed out.
pub(crate) const MAX_SLOW: Duration = Duration::from_secs(30);

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
    pub(crate) fn due(&self, now: Instant) -> bool {
        now >= self.next_try
    }

    pub(crate) fn next_try(&self) -> Instant {
        self.next_try
    }

    /// The try made at `now` failed, after a timeout (`slow`) or at once:
    /// wait twice as long, up to [`MAX_SLOW`] or [`MAX_FAST`].
    pub fn failed(&mut self, now: Instant, slow: bool) {
        let cap = if slow { MAX_SLOW } else { MAX_FAST };
        self.delay = (self.delay * 2).min(cap);
        self.next_try = now + self.delay;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waits(kinds: &[bool]) -> Vec<u128> {
        let t0 = Instant::now();
        let mut b = Backoff::start(t0);
        assert!(!b.due(t0));
        assert!(b.due(t0 + FIRST));
        let mut now = t0 + FIRST;
        let mut out = Vec::new();
        for &slow in kinds {
            b.failed(now, slow);
            out.push((b.next_try() - now).as_millis());
            now = b.next_try();
        }
        out
    }

    #[test]
    fn refused_tries_stay_frequent_timed_out_ones_spread_out() {
        assert_eq!(waits(&[false; 5]), [1000, 2000, 2000, 2000, 2000]);
        assert_eq!(
            waits(&[true; 7]),
            [1000, 2000, 4000, 8000, 16000, 30000, 30000]
        );
        // A refused try after timeouts: back to the fast cap.
        assert_eq!(
            waits(&[true, true, true, true, false]),
            [1000, 2000, 4000, 8000, 2000]
        );
    }
}
