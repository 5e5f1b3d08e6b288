//! The bounds on peer-driven state (ARCHITECTURE.md, "state is bounded"),
//! their configured values and how often each was hit, for MI
//! `core_limits` / JSON-RPC `core.limits` and the log (docs/decisions.md
//! §10).
//!
//! Pure: a table of counters, handed `now` for the log summary; depends on
//! nothing but `log`. The core counts the transaction and stateless-memory
//! bounds, the reactor the per-turn datagram caps, the control plane the
//! pending MI/JSON-RPC replies; they all reach one `Limits` owned by the
//! core, which the control plane reads.

use std::time::{Duration, Instant};

/// Each bound, in the order `core_limits` lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// tm `max_transactions`: live transactions.
    Transactions,
    /// tm `max_tsx_bytes`: message bytes the transactions hold.
    TransactionBytes,
    /// Stateless reply memory, entries.
    SlMemoryEntries,
    /// Stateless reply memory, bytes.
    SlMemoryBytes,
    /// Datagrams read from one UDP socket in one reactor turn.
    TurnDatagrams,
    /// Bytes read from one UDP socket in one reactor turn.
    TurnBytes,
    /// MI/JSON-RPC replies waiting for their reader.
    PendingReplies,
    /// Bytes of those replies.
    PendingReplyBytes,
    /// Dialogs traced whole (sip_trace "d", runtime filters), entries.
    TracedDialogs,
    /// Their bytes.
    TracedDialogBytes,
    /// core `tcp_max_connections`: SIP TCP connections, accepted and
    /// outgoing together.
    TcpConnections,
    /// core `tcp_conn_wq_max`: bytes waiting to be written on one
    /// connection.
    TcpWriteQueue,
}

impl Bound {
    pub const ALL: [Bound; 12] = [
        Bound::Transactions,
        Bound::TransactionBytes,
        Bound::SlMemoryEntries,
        Bound::SlMemoryBytes,
        Bound::TurnDatagrams,
        Bound::TurnBytes,
        Bound::PendingReplies,
        Bound::PendingReplyBytes,
        Bound::TracedDialogs,
        Bound::TracedDialogBytes,
        Bound::TcpConnections,
        Bound::TcpWriteQueue,
    ];

    /// The name `core_limits` prints (the setting's name where there is one).
    pub fn name(self) -> &'static str {
        match self {
            Bound::Transactions => "max_transactions",
            Bound::TransactionBytes => "max_tsx_bytes",
            Bound::SlMemoryEntries => "sl_memory_entries",
            Bound::SlMemoryBytes => "sl_memory_bytes",
            Bound::TurnDatagrams => "udp_turn_datagrams",
            Bound::TurnBytes => "udp_turn_bytes",
            Bound::PendingReplies => "mi_pending_replies",
            Bound::PendingReplyBytes => "mi_pending_reply_bytes",
            Bound::TracedDialogs => "dialog_max",
            Bound::TracedDialogBytes => "dialog_max_bytes",
            Bound::TcpConnections => "tcp_max_connections",
            Bound::TcpWriteQueue => "tcp_conn_wq_max",
        }
    }

    /// What hitting it costs, for the log.
    fn consequence(self) -> &'static str {
        match self {
            Bound::Transactions | Bound::TransactionBytes => {
                "new transactions refused with 503 Service Unavailable"
            }
            Bound::SlMemoryEntries | Bound::SlMemoryBytes => {
                "oldest stateless branches forgotten (their replies are traced only if onreply_route asks)"
            }
            Bound::TurnDatagrams | Bound::TurnBytes => {
                "socket read again next turn, after timers, FIFOs and the database"
            }
            Bound::PendingReplies | Bound::PendingReplyBytes => "MI/JSON-RPC reply dropped",
            Bound::TracedDialogs | Bound::TracedDialogBytes => {
                "new dialogs not traced whole (their INVITE transaction still is)"
            }
            Bound::TcpConnections => "TCP connection refused (closed at accept, or not opened)",
            Bound::TcpWriteQueue => "message for a TCP connection dropped",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How often the log repeats a summary while bounds keep being hit.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(10);

/// One bound as `core_limits` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitStat {
    pub bound: Bound,
    pub value: u64,
    pub hits: u64,
}

#[derive(Debug, Clone, Default)]
pub struct Limits {
    values: [u64; Bound::ALL.len()],
    hits: [u64; Bound::ALL.len()],
    /// `hits` as of the last summary line.
    logged: [u64; Bound::ALL.len()],
    next_summary: Option<Instant>,
}

impl Limits {
    /// Record the configured value of a bound (at start-up).
    pub fn set_value(&mut self, bound: Bound, value: u64) {
        self.values[bound.index()] = value;
    }

    pub fn value(&self, bound: Bound) -> u64 {
        self.values[bound.index()]
    }

    pub fn hits(&self, bound: Bound) -> u64 {
        self.hits[bound.index()]
    }

    /// The bound was hit once. The first hit of each is logged at once;
    /// later ones go into the summary ([`Limits::log_summary`]).
    pub fn hit(&mut self, bound: Bound) {
        let i = bound.index();
        if self.hits[i] == 0 {
            log::warn!(
                "limit {} ({}) reached: {}; further hits are summarised at most every {} s",
                bound.name(),
                self.values[i],
                bound.consequence(),
                SUMMARY_EVERY.as_secs()
            );
            // The first hit is its own line: the summary starts after it.
            self.logged[i] = 1;
        }
        self.hits[i] += 1;
    }

    /// One warning line with every bound hit since the last one, at most
    /// every [`SUMMARY_EVERY`]; `force` (at exit) ignores the interval.
    pub fn log_summary(&mut self, now: Instant, force: bool) {
        if !force && self.next_summary.is_some_and(|t| now < t) {
            return;
        }
        let news: Vec<String> = Bound::ALL
            .iter()
            .filter(|b| self.hits[b.index()] > self.logged[b.index()])
            .map(|b| {
                let i = b.index();
                format!(
                    "{} +{} (total {})",
                    b.name(),
                    self.hits[i] - self.logged[i],
                    self.hits[i]
                )
            })
            .collect();
        if news.is_empty() {
            return;
        }
        log::warn!("limits hit: {}", news.join(", "));
        self.logged = self.hits;
        self.next_summary = Some(now + SUMMARY_EVERY);
    }

    /// Every bound with its value and hits, in [`Bound::ALL`] order.
    pub fn stats(&self) -> Vec<LimitStat> {
        Bound::ALL
            .iter()
            .map(|&b| LimitStat {
                bound: b,
                value: self.value(b),
                hits: self.hits(b),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_summarises_only_news() {
        let t0 = Instant::now();
        let mut l = Limits::default();
        l.set_value(Bound::TurnDatagrams, 256);
        l.hit(Bound::TurnDatagrams);
        // The first hit was logged on its own: nothing new to summarise.
        l.log_summary(t0, false);
        assert_eq!(l.next_summary, None);
        l.hit(Bound::TurnDatagrams);
        l.hit(Bound::TurnDatagrams);
        l.log_summary(t0, false);
        assert_eq!(l.next_summary, Some(t0 + SUMMARY_EVERY));
        assert_eq!(l.logged[Bound::TurnDatagrams.index()], 3);
        l.hit(Bound::TurnDatagrams);
        // Within the interval: held back.
        l.log_summary(t0 + Duration::from_secs(1), false);
        assert_eq!(l.logged[Bound::TurnDatagrams.index()], 3);
        l.log_summary(t0 + SUMMARY_EVERY, false);
        assert_eq!(l.logged[Bound::TurnDatagrams.index()], 4);
        let s = l.stats();
        assert_eq!(s.len(), Bound::ALL.len());
        assert_eq!(
            s[Bound::TurnDatagrams.index()],
            LimitStat {
                bound: Bound::TurnDatagrams,
                value: 256,
                hits: 4
            }
        );
        assert!(Bound::ALL.iter().enumerate().all(|(i, b)| b.index() == i));
    }
}
