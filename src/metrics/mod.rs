//! Prometheus metrics: a snapshot of the daemon's counters, the histogram
//! of reactor turn durations, and their rendering in the Prometheus text
//! exposition format (version 0.0.4), served by `reactor::metrics` at
//! `GET /metrics` when the core parameter `metrics_listen` is set
//! (docs/decisions.md §12).
//!
//! Pure: no sockets, no clock, no globals. The reactor fills a [`Snapshot`]
//! from the counters it already owns (the sink's `DbCounters`, the core's
//! stats, the tracer's counters, `Limits`) once per request, and this module
//! turns it into text. It depends on `limits::Bound` for the bound labels and
//! on nothing else of the daemon. `http` holds the equally pure request
//! routing.
//!
//! The format is rendered here rather than through the `prometheus-client`
//! crate: that crate's model is metric handles registered once and updated
//! through atomics from any thread, while every counter here is a plain
//! `u64` owned by one single-threaded component; mirroring them into a
//! registry would duplicate the state for no gain, and the text format is
//! small and specified.

pub mod http;

use crate::limits::Bound;
use std::fmt::Write as _;
use std::time::Duration;

/// Upper bounds of the turn-duration buckets, in seconds: 100 µs to 1 s.
/// Turns above 1 s only land in `+Inf` (and the sum).
pub const TURN_BUCKETS: [f64; 13] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// Durations of reactor turns: per-bucket counts (not cumulative: the
/// rendering accumulates), the total and the count. Fixed size: observing
/// never allocates.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TurnHistogram {
    buckets: [u64; TURN_BUCKETS.len()],
    /// Turns longer than the last bucket.
    over: u64,
    sum: Duration,
    count: u64,
}

impl TurnHistogram {
    pub fn observe(&mut self, d: Duration) {
        let secs = d.as_secs_f64();
        match TURN_BUCKETS.iter().position(|&le| secs <= le) {
            Some(i) => self.buckets[i] += 1,
            None => self.over += 1,
        }
        self.sum += d;
        self.count += 1;
    }

    pub fn count(&self) -> u64 {
        self.count
    }
}

/// Per bound (`limits::Bound`): its configured value and its hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoundSample {
    pub bound: Bound,
    pub value: u64,
    pub hits: u64,
}

/// Everything `/metrics` shows, read once per request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub rows_written: u64,
    pub rows_spooled: u64,
    pub rows_replayed: u64,
    pub rows_dropped: u64,
    pub rows_purged: u64,
    /// As the retention helper defines it (`DbCounters::last_purge_ms`).
    pub last_purge_ms: u64,
    pub msgs_masked: u64,
    pub spool_bytes: u64,
    pub copies_sent: u64,
    pub copies_dropped: u64,
    pub db_up: bool,
    pub transactions: u64,
    pub traced_requests: u64,
    pub traced_replies: u64,
    pub dns_pending: u64,
    pub parked: u64,
    /// SIP messages per transport name (`udp`, …).
    pub received: Vec<(&'static str, u64)>,
    pub sent: Vec<(&'static str, u64)>,
    pub bounds: Vec<BoundSample>,
    pub turns: TurnHistogram,
    /// The metrics endpoint's own connections: refused over the bound, and
    /// closed at their deadline.
    pub http_refused: u64,
    pub http_timed_out: u64,
}

/// `Content-Type` of the rendering.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One family: `# HELP`, `# TYPE`, then its samples.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    // Writing to a String cannot fail.
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{k}=\"{}\"", escape_label(v));
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

/// Label values escape backslash, double quote and newline (the format's
/// only escapes).
fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

fn counter(out: &mut String, name: &str, help: &str, v: u64) {
    family(out, name, "counter", help);
    sample(out, name, &[], v);
}

fn gauge(out: &mut String, name: &str, help: &str, v: u64) {
    family(out, name, "gauge", help);
    sample(out, name, &[], v);
}

/// The exposition text of `s`.
pub fn render(s: &Snapshot) -> String {
    let mut o = String::with_capacity(8 * 1024);
    let counters: [(&str, &str, u64); 12] = [
        (
            "siptraced_rows_written_total",
            "Trace rows inserted into the database, live and replayed.",
            s.rows_written,
        ),
        (
            "siptraced_rows_spooled_total",
            "Trace rows appended to the spool while the database was away.",
            s.rows_spooled,
        ),
        (
            "siptraced_rows_replayed_total",
            "Spooled rows accounted for on replay.",
            s.rows_replayed,
        ),
        (
            "siptraced_rows_dropped_total",
            "Trace rows lost: the spool was full or unusable.",
            s.rows_dropped,
        ),
        (
            "siptraced_rows_purged_total",
            "Trace rows deleted by retention.",
            s.rows_purged,
        ),
        (
            "siptraced_msgs_masked_total",
            "Traced messages whose content was masked.",
            s.msgs_masked,
        ),
        (
            "siptraced_copies_sent_total",
            "Mirrored copies sent to capture nodes.",
            s.copies_sent,
        ),
        (
            "siptraced_copies_dropped_total",
            "Mirrored copies dropped (send refused or queue full).",
            s.copies_dropped,
        ),
        (
            "siptraced_traced_requests_total",
            "Traced requests (siptrace:traced_requests).",
            s.traced_requests,
        ),
        (
            "siptraced_traced_replies_total",
            "Traced replies (siptrace:traced_replies).",
            s.traced_replies,
        ),
        (
            "siptraced_metrics_connections_refused_total",
            "Metrics connections closed at once: the connection bound was reached.",
            s.http_refused,
        ),
        (
            "siptraced_metrics_connections_timed_out_total",
            "Metrics connections closed at their deadline.",
            s.http_timed_out,
        ),
    ];
    for (name, help, v) in counters {
        counter(&mut o, name, help, v);
    }
    let gauges: [(&str, &str, u64); 6] = [
        (
            "siptraced_spool_bytes",
            "Bytes of the spool files.",
            s.spool_bytes,
        ),
        (
            "siptraced_last_purge_ms",
            "Retention's last purge (DbCounters::last_purge_ms).",
            s.last_purge_ms,
        ),
        (
            "siptraced_db_up",
            "1 while the database accepts writes, 0 while rows go to the spool.",
            u64::from(s.db_up),
        ),
        (
            "siptraced_transactions",
            "Live transactions.",
            s.transactions,
        ),
        (
            "siptraced_dns_pending",
            "DNS lookups handed to the resolver thread and not yet answered.",
            s.dns_pending,
        ),
        (
            "siptraced_parked_requests",
            "Requests parked until their DNS lookup is answered.",
            s.parked,
        ),
    ];
    for (name, help, v) in gauges {
        gauge(&mut o, name, help, v);
    }
    for (name, help, list) in [
        (
            "siptraced_messages_received_total",
            "SIP messages received, per transport.",
            &s.received,
        ),
        (
            "siptraced_messages_sent_total",
            "SIP messages sent, per transport.",
            &s.sent,
        ),
    ] {
        family(&mut o, name, "counter", help);
        for (t, v) in list {
            sample(&mut o, name, &[("transport", t)], v);
        }
    }
    family(
        &mut o,
        "siptraced_bound_hits_total",
        "counter",
        "Times a bound on peer-driven state was hit (MI core_limits).",
    );
    for b in &s.bounds {
        sample(
            &mut o,
            "siptraced_bound_hits_total",
            &[("bound", b.bound.name())],
            b.hits,
        );
    }
    family(
        &mut o,
        "siptraced_bound_value",
        "gauge",
        "The configured value of each bound (MI core_limits).",
    );
    for b in &s.bounds {
        sample(
            &mut o,
            "siptraced_bound_value",
            &[("bound", b.bound.name())],
            b.value,
        );
    }
    let h = &s.turns;
    let name = "siptraced_reactor_turn_seconds";
    family(
        &mut o,
        name,
        "histogram",
        "Time the reactor spent in one turn, from the poll's return to the next poll.",
    );
    let mut cum = 0;
    for (le, n) in TURN_BUCKETS.iter().zip(h.buckets) {
        cum += n;
        sample(
            &mut o,
            &format!("{name}_bucket"),
            &[("le", &le.to_string())],
            cum,
        );
    }
    sample(
        &mut o,
        &format!("{name}_bucket"),
        &[("le", "+Inf")],
        cum + h.over,
    );
    sample(&mut o, &format!("{name}_sum"), &[], h.sum.as_secs_f64());
    sample(&mut o, &format!("{name}_count"), &[], h.count);
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_inf_counts_all() {
        let mut h = TurnHistogram::default();
        h.observe(Duration::from_micros(50));
        h.observe(Duration::from_micros(100));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(2));
        let s = Snapshot {
            turns: h,
            ..Snapshot::default()
        };
        let text = render(&s);
        assert!(
            text.contains("siptraced_reactor_turn_seconds_bucket{le=\"0.0001\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("siptraced_reactor_turn_seconds_bucket{le=\"0.005\"} 3\n"));
        assert!(text.contains("siptraced_reactor_turn_seconds_bucket{le=\"1\"} 3\n"));
        assert!(text.contains("siptraced_reactor_turn_seconds_bucket{le=\"+Inf\"} 4\n"));
        assert!(text.contains("siptraced_reactor_turn_seconds_count 4\n"));
    }

    #[test]
    fn every_family_has_help_and_type_and_counters_end_in_total() {
        let s = Snapshot {
            rows_written: 7,
            db_up: true,
            received: vec![("udp", 3)],
            sent: vec![("udp", 2)],
            bounds: vec![BoundSample {
                bound: Bound::Transactions,
                value: 100,
                hits: 1,
            }],
            ..Snapshot::default()
        };
        let text = render(&s);
        assert!(text.contains("siptraced_rows_written_total 7\n"));
        assert!(text.contains("siptraced_db_up 1\n"));
        assert!(text.contains("siptraced_messages_received_total{transport=\"udp\"} 3\n"));
        assert!(text.contains("siptraced_bound_hits_total{bound=\"max_transactions\"} 1\n"));
        let mut typed = 0;
        for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
            let mut f = line.split(' ').skip(2);
            let (name, kind) = (f.next().unwrap(), f.next().unwrap());
            assert!(name.starts_with("siptraced_"), "{line}");
            assert_eq!(kind == "counter", name.ends_with("_total"), "{line}");
            assert!(text.contains(&format!("# HELP {name} ")), "{name}");
            typed += 1;
        }
        assert_eq!(typed, 23);
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with("siptraced_"), "{line}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
