//! Slow reactor turns, explained: where a turn's time went, logged when a
//! turn takes longer than [`SLOW_TURN`] so that a stall a caller felt can
//! be traced to its step (reading sockets, timers, database writes…).
//!
//! Plain data: the reactor hands in the instants it read; this module reads
//! no clock and depends on nothing but `std` and `log`.

use std::time::{Duration, Instant};

/// A turn longer than this is logged: a SIP retransmission timer (T1, 500
/// ms) is far, but a caller's round trip already feels it.
pub const SLOW_TURN: Duration = Duration::from_millis(20);
/// At most one line per this interval; the turns in between are counted.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// The steps of one turn, in the order the reactor runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Poll events: FIFOs, DNS answers, metrics, stream accept/connect.
    Events,
    /// UDP datagrams read and handled, with their sends.
    Udp,
    /// TCP/TLS connections read and their messages handled.
    Tcp,
    /// Transaction, connection and control timers.
    Timers,
    /// Sends, filters, DNS log.
    Sends,
    /// Rows to the database or spool, replay, retention.
    Rows,
    /// Metrics and the rest.
    Tail,
}

const STEPS: [Step; 7] = [
    Step::Events,
    Step::Udp,
    Step::Tcp,
    Step::Timers,
    Step::Sends,
    Step::Rows,
    Step::Tail,
];

impl Step {
    fn name(self) -> &'static str {
        match self {
            Step::Events => "events",
            Step::Udp => "udp",
            Step::Tcp => "tcp",
            Step::Timers => "timers",
            Step::Sends => "sends",
            Step::Rows => "rows",
            Step::Tail => "tail",
        }
    }
}

/// One turn's marks: the instant each step ended.
#[derive(Debug)]
pub struct TurnMarks {
    start: Instant,
    ends: [Option<Instant>; STEPS.len()],
    /// Datagrams and stream messages handled, rows handed to the sink.
    pub messages: u64,
    pub rows: usize,
}

impl TurnMarks {
    pub fn new(start: Instant) -> TurnMarks {
        TurnMarks {
            start,
            ends: [None; STEPS.len()],
            messages: 0,
            rows: 0,
        }
    }

    pub fn mark(&mut self, step: Step, at: Instant) {
        if let Some(i) = STEPS.iter().position(|s| *s == step) {
            self.ends[i] = Some(at);
        }
    }

    /// Time per step (a step not marked took nothing).
    fn durations(&self) -> [Duration; STEPS.len()] {
        let mut out = [Duration::ZERO; STEPS.len()];
        let mut prev = self.start;
        for (i, e) in self.ends.iter().enumerate() {
            if let Some(e) = *e {
                out[i] = e.saturating_duration_since(prev);
                prev = e;
            }
        }
        out
    }

    fn total(&self) -> Duration {
        self.ends
            .iter()
            .flatten()
            .max()
            .map_or(Duration::ZERO, |e| e.saturating_duration_since(self.start))
    }
}

/// Slow turns since the last line, and the worst of them.
#[derive(Debug, Default)]
pub struct SlowTurns {
    count: u64,
    worst: Option<(Duration, [Duration; STEPS.len()], u64, usize)>,
    next_log: Option<Instant>,
    /// Slow turns since start.
    pub total: u64,
}

impl SlowTurns {
    /// Accounts for a finished turn; returns the line to log, if one is due.
    pub fn finish(&mut self, t: &TurnMarks, now: Instant) -> Option<String> {
        let total = t.total();
        if total >= SLOW_TURN {
            self.count += 1;
            self.total += 1;
            if self.worst.as_ref().is_none_or(|w| total > w.0) {
                self.worst = Some((total, t.durations(), t.messages, t.rows));
            }
        }
        if self.count == 0 || self.next_log.is_some_and(|n| now < n) {
            return None;
        }
        self.next_log = Some(now + LOG_EVERY);
        let (worst, steps, messages, rows) = self.worst.take()?;
        let count = std::mem::take(&mut self.count);
        let parts: Vec<String> = STEPS
            .iter()
            .zip(steps)
            .filter(|(_, d)| *d >= Duration::from_millis(1))
            .map(|(s, d)| format!("{} {} ms", s.name(), d.as_millis()))
            .collect();
        Some(format!(
            "{count} reactor turn(s) over {} ms; the worst took {} ms ({}), \
             handling {messages} messages and {rows} rows",
            SLOW_TURN.as_millis(),
            worst.as_millis(),
            if parts.is_empty() {
                "no single step over 1 ms".to_string()
            } else {
                parts.join(", ")
            }
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_fast_turn_says_nothing() {
        let t0 = Instant::now();
        let mut m = TurnMarks::new(t0);
        m.mark(Step::Udp, t0 + ms(3));
        m.mark(Step::Rows, t0 + ms(8));
        let mut s = SlowTurns::default();
        assert_eq!(s.finish(&m, t0 + ms(8)), None);
        assert_eq!(s.total, 0);
    }

    #[test]
    fn a_slow_turn_names_its_steps_then_waits_before_the_next_line() {
        let t0 = Instant::now();
        let mut m = TurnMarks::new(t0);
        m.mark(Step::Udp, t0 + ms(4));
        m.mark(Step::Timers, t0 + ms(5));
        m.mark(Step::Rows, t0 + ms(45));
        m.messages = 120;
        m.rows = 900;
        let mut s = SlowTurns::default();
        let line = s.finish(&m, t0 + ms(45)).unwrap();
        assert!(line.starts_with("1 reactor turn(s) over 20 ms; the worst took 45 ms"));
        assert!(line.contains("udp 4 ms, timers 1 ms, rows 40 ms"), "{line}");
        assert!(line.contains("120 messages and 900 rows"), "{line}");
        // Within the interval: counted, not logged; the worst is kept.
        let mut m2 = TurnMarks::new(t0 + ms(100));
        m2.mark(Step::Timers, t0 + ms(130));
        assert_eq!(s.finish(&m2, t0 + ms(130)), None);
        let m3 = TurnMarks::new(t0 + ms(200));
        let later = t0 + ms(45) + LOG_EVERY;
        let line = s.finish(&m3, later).unwrap();
        assert!(line.starts_with("1 reactor turn(s)"), "{line}");
        assert!(line.contains("took 30 ms (timers 30 ms)"), "{line}");
        assert_eq!(s.total, 2);
        assert_eq!(s.finish(&m3, later + LOG_EVERY), None);
    }
}
