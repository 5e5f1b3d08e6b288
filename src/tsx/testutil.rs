//! Helpers shared by the transaction machines' unit tests: RFC default
//! timers, payloads from text, and instants as milliseconds after a base.

use super::Payload;
use super::timers::Timers;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// RFC 3261 defaults, with `wt_timer` at the longest RFC wait (64·T1 = 32 s)
/// so that no wait is capped: the machines' tests check the RFC timers.
pub(crate) fn timers() -> Timers {
    Timers {
        t1: Duration::from_millis(500),
        t2: Duration::from_secs(4),
        t4: Duration::from_secs(5),
        wt: Duration::from_secs(32),
        reliable: false,
    }
}

/// The same with Kamailio's default `wt_timer` (5 s).
pub(crate) fn kamailio_timers() -> Timers {
    Timers {
        wt: super::timers::DEFAULT_WT_TIMER,
        ..timers()
    }
}

pub(crate) fn bytes(s: &str) -> Payload {
    Arc::from(s.as_bytes())
}

pub(crate) fn ms(base: Instant, n: u64) -> Instant {
    base + Duration::from_millis(n)
}
