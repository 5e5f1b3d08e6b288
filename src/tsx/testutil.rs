//! Helpers shared by the transaction machines' unit tests: RFC default
//! timers, payloads from text, and instants as milliseconds after a base.

use super::Payload;
use super::timers::Timers;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) fn timers() -> Timers {
    Timers {
        t1: Duration::from_millis(500),
        t2: Duration::from_secs(4),
        t4: Duration::from_secs(5),
    }
}

pub(crate) fn bytes(s: &str) -> Payload {
    Arc::from(s.as_bytes())
}

pub(crate) fn ms(base: Instant, n: u64) -> Instant {
    base + Duration::from_millis(n)
}
