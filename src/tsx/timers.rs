//! Every timer value of the transaction layer, in one place: RFC 3261 §17
//! timers A–K (plus RFC 6026's L and M), §9.1's CANCEL wait, and the defaults
//! of Kamailio tm's proxy timers (`fr_timer`, `fr_inv_timer`, the lifetime
//! caps) that docs/decisions.md §7 adopts, and tm's `wt_timer`, which caps every wait
//! after completion ([`Timers::wait`]).
//!
//! Pure values and arithmetic: no clock, no state. The machines ask this file
//! for a duration and add it to the `now` they were handed. Over a reliable
//! transport (TCP, TLS: [`Timers::over`]) timers A, E and G never fire (a
//! stream does not lose a message) and D, I, J and K are 0 s (RFC 3261
//! §17.1.1.2, §17.1.2.2, §17.2.1, §17.2.2).

use std::time::Duration;

/// T1, RFC 3261 §17.1.1.1: the round-trip time estimate (default 500 ms).
pub const DEFAULT_T1: Duration = Duration::from_millis(500);
/// T2, RFC 3261 §17.1.2.2: the longest interval between retransmissions of a
/// non-INVITE request or an INVITE final response (default 4 s).
pub const DEFAULT_T2: Duration = Duration::from_secs(4);
/// T4, RFC 3261 §17.1.2.2: the longest time a message stays in the network
/// (default 5 s).
pub const DEFAULT_T4: Duration = Duration::from_secs(5);
/// Kamailio tm `fr_timer` default (30000 ms): how long a branch waits for any
/// reply (docs/decisions.md §7).
pub const DEFAULT_FR_TIMER: Duration = Duration::from_secs(30);
/// Kamailio tm `fr_inv_timer` default (120000 ms): how long an INVITE branch
/// waits for a final reply once a provisional arrived (docs/decisions.md §7). It plays
/// the role of RFC 3261 §16.8 Timer C.
pub const DEFAULT_FR_INV_TIMER: Duration = Duration::from_secs(120);
/// Kamailio tm `max_inv_lifetime` default (180000 ms): the longest an INVITE
/// transaction may wait for its final reply, whatever its branches do.
pub const DEFAULT_MAX_INV_LIFETIME: Duration = Duration::from_secs(180);
/// Kamailio tm `max_noninv_lifetime` default (32000 ms): the same cap for
/// non-INVITE transactions.
pub const DEFAULT_MAX_NONINV_LIFETIME: Duration = Duration::from_secs(32);

/// Kamailio tm `wt_timer` default (5000 ms): "time for which a transaction
/// stays in memory to absorb delayed messages after it completed". Every
/// wait after completion is capped at it ([`Timers::wait`]).
pub const DEFAULT_WT_TIMER: Duration = Duration::from_secs(5);

/// Timer D for unreliable transports, RFC 3261 §17.1.1.2: "at least 32
/// seconds", long enough to absorb every retransmission of the final reply
/// the server transaction may send (its Timer H is 64·T1).
const TIMER_D_UNRELIABLE: Duration = Duration::from_secs(32);

/// The "64·T1" multiplier of timers B, F, H and J (RFC 3261 §17, Table 4),
/// of L and M (RFC 6026 §8.7, §8.4) and of the wait after a CANCEL (§9.1).
const SIXTY_FOUR: u32 = 64;

/// Which timer fired, as reported in events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimerKind {
    /// RFC 3261 §17.1.1.2: INVITE request retransmission.
    A,
    /// RFC 3261 §17.1.1.2: INVITE transaction timeout (64·T1).
    B,
    /// RFC 3261 §17.1.1.2: wait time for final-response retransmissions.
    D,
    /// RFC 3261 §17.1.2.2: non-INVITE request retransmission.
    E,
    /// RFC 3261 §17.1.2.2: non-INVITE transaction timeout (64·T1).
    F,
    /// RFC 3261 §17.2.1: INVITE final-response retransmission.
    G,
    /// RFC 3261 §17.2.1: wait time for the ACK (64·T1).
    H,
    /// RFC 3261 §17.2.1: wait time for ACK retransmissions (T4).
    I,
    /// RFC 3261 §17.2.2: wait time for non-INVITE request retransmissions.
    J,
    /// RFC 3261 §17.1.2.2: wait time for non-INVITE response retransmissions.
    K,
    /// RFC 6026 §8.7: wait time in the server's Accepted state.
    L,
    /// RFC 6026 §8.4: wait time in the client's Accepted state.
    M,
    /// Kamailio tm `fr_timer`: no reply at all on a branch.
    FrTimer,
    /// Kamailio tm `fr_inv_timer`: no final reply on an INVITE branch after a
    /// provisional.
    FrInvTimer,
    /// RFC 3261 §9.1: no final reply 64·T1 after the branch was cancelled.
    CancelWait,
    /// Kamailio tm `max_inv_lifetime` / `max_noninv_lifetime`.
    Lifetime,
}

/// The three base values the RFC timers derive from, and tm's `wt_timer`
/// that caps the waits after completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timers {
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
    pub wt: Duration,
    /// The machine's transport is reliable (TCP, TLS).
    pub reliable: bool,
}

impl Timers {
    /// The one rule for every wait a machine does after its transaction
    /// completed (D, I, J, K, L, M, and a branch's linger after giving up):
    /// the RFC value, but never longer than `wt_timer`, as Kamailio's tm
    /// keeps a finished transaction only `wt_timer` (mod.rs, Choices).
    /// Retransmission and reply-wait timers (A, B, E, F, G, H) never pass
    /// through here.
    pub fn wait(&self, rfc: Duration) -> Duration {
        rfc.min(self.wt)
    }

    /// These timers for a machine whose messages go over a reliable
    /// transport (`true`) or not.
    pub(crate) fn over(self, reliable: bool) -> Timers {
        Timers { reliable, ..self }
    }

    /// The waits that absorb retransmissions (D, I, J, K): none over a
    /// reliable transport.
    fn absorb(&self, rfc: Duration) -> Duration {
        if self.reliable {
            Duration::ZERO
        } else {
            self.wait(rfc)
        }
    }

    fn sixty_four_t1(&self) -> Duration {
        self.t1.saturating_mul(SIXTY_FOUR)
    }

    /// Timer A's first interval, RFC 3261 §17.1.1.2: T1.
    pub(crate) fn a_initial(&self) -> Duration {
        self.t1
    }

    /// Timer A's next interval, RFC 3261 §17.1.1.2: doubled each time and,
    /// unlike E and G, never capped at T2.
    pub(crate) fn a_next(&self, previous: Duration) -> Duration {
        previous.saturating_mul(2)
    }

    /// Timer B, RFC 3261 §17.1.1.2: 64·T1.
    pub fn b(&self) -> Duration {
        self.sixty_four_t1()
    }

    /// Timer D, RFC 3261 §17.1.1.2: at least 32 s over UDP; capped by
    /// [`Timers::wait`].
    pub fn d(&self) -> Duration {
        self.absorb(TIMER_D_UNRELIABLE)
    }

    /// Timer E's first interval, RFC 3261 §17.1.2.2: T1.
    pub(crate) fn e_initial(&self) -> Duration {
        self.t1
    }

    /// Timer E's next interval in Trying, RFC 3261 §17.1.2.2: MIN(2x, T2).
    pub(crate) fn e_next(&self, previous: Duration) -> Duration {
        previous.saturating_mul(2).min(self.t2)
    }

    /// Timer E's interval in Proceeding, RFC 3261 §17.1.2.2: T2.
    pub(crate) fn e_proceeding(&self) -> Duration {
        self.t2
    }

    /// Timer F, RFC 3261 §17.1.2.2: 64·T1.
    pub fn f(&self) -> Duration {
        self.sixty_four_t1()
    }

    /// Timer G's first interval, RFC 3261 §17.2.1: T1.
    pub(crate) fn g_initial(&self) -> Duration {
        self.t1
    }

    /// Timer G's next interval, RFC 3261 §17.2.1: MIN(2x, T2).
    pub(crate) fn g_next(&self, previous: Duration) -> Duration {
        previous.saturating_mul(2).min(self.t2)
    }

    /// Timer H, RFC 3261 §17.2.1: 64·T1.
    pub fn h(&self) -> Duration {
        self.sixty_four_t1()
    }

    /// Timer I, RFC 3261 §17.2.1: T4 over UDP; capped by [`Timers::wait`].
    pub fn i(&self) -> Duration {
        self.absorb(self.t4)
    }

    /// Timer J, RFC 3261 §17.2.2: 64·T1 over UDP; capped by
    /// [`Timers::wait`].
    pub fn j(&self) -> Duration {
        self.absorb(self.sixty_four_t1())
    }

    /// Timer K, RFC 3261 §17.1.2.2: T4 over UDP; capped by [`Timers::wait`].
    pub fn k(&self) -> Duration {
        self.absorb(self.t4)
    }

    /// Timer L, RFC 6026 §8.7: 64·T1; capped by [`Timers::wait`].
    pub fn l(&self) -> Duration {
        self.wait(self.sixty_four_t1())
    }

    /// Timer M, RFC 6026 §8.4: 64·T1; capped by [`Timers::wait`].
    pub fn m(&self) -> Duration {
        self.wait(self.sixty_four_t1())
    }

    /// RFC 3261 §9.1: a cancelled INVITE client transaction with no final
    /// response 64·T1 after the CANCEL is considered terminated. Also the
    /// grace given after a timeout for a late provisional to be cancelled.
    /// Capped by [`Timers::wait`]: the branch has given up, and Kamailio
    /// drops a cancelled branch with its transaction `wt_timer` after the
    /// final reply.
    pub(crate) fn cancel_wait(&self) -> Duration {
        self.wait(self.sixty_four_t1())
    }

    /// Grace after the lifetime cap fired with branches still pending: time
    /// for the caller to answer the resulting failure before the transaction
    /// is dropped. 64·T1, the RFC's generic "give up" span.
    pub(crate) fn lifetime_grace(&self) -> Duration {
        self.sixty_four_t1()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC values: a `wt_timer` no shorter than the longest RFC wait (32 s)
    /// leaves every timer as RFC 3261 and RFC 6026 define it.
    fn rfc() -> Timers {
        Timers {
            t1: DEFAULT_T1,
            t2: DEFAULT_T2,
            t4: DEFAULT_T4,
            wt: Duration::from_secs(32),
            reliable: false,
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn rfc_values() {
        let t = rfc();
        let cases: &[(&str, Duration, Duration)] = &[
            ("A", t.a_initial(), ms(500)),
            ("B", t.b(), ms(32_000)),
            ("D", t.d(), ms(32_000)),
            ("E", t.e_initial(), ms(500)),
            ("E proceeding", t.e_proceeding(), ms(4_000)),
            ("F", t.f(), ms(32_000)),
            ("G", t.g_initial(), ms(500)),
            ("H", t.h(), ms(32_000)),
            ("I", t.i(), ms(5_000)),
            ("J", t.j(), ms(32_000)),
            ("K", t.k(), ms(5_000)),
            ("L", t.l(), ms(32_000)),
            ("M", t.m(), ms(32_000)),
            ("cancel wait", t.cancel_wait(), ms(32_000)),
        ];
        for (name, got, want) in cases {
            assert_eq!(got, want, "timer {name}");
        }
    }

    #[test]
    fn waits_after_completion_capped_by_wt_timer() {
        let t = Timers {
            wt: DEFAULT_WT_TIMER,
            ..rfc()
        };
        let cases: &[(&str, Duration, Duration)] = &[
            // Capped: what a finished transaction waits.
            ("D", t.d(), ms(5_000)),
            ("I", t.i(), ms(5_000)),
            ("J", t.j(), ms(5_000)),
            ("K", t.k(), ms(5_000)),
            ("L", t.l(), ms(5_000)),
            ("M", t.m(), ms(5_000)),
            ("cancel wait", t.cancel_wait(), ms(5_000)),
            // Live phases keep their RFC values.
            ("A", t.a_initial(), ms(500)),
            ("B", t.b(), ms(32_000)),
            ("F", t.f(), ms(32_000)),
            ("G", t.g_initial(), ms(500)),
            ("H", t.h(), ms(32_000)),
            ("lifetime grace", t.lifetime_grace(), ms(32_000)),
        ];
        for (name, got, want) in cases {
            assert_eq!(got, want, "timer {name}");
        }
        let short = Timers { wt: ms(1_000), ..t };
        assert_eq!(short.i(), ms(1_000), "T4 above wt_timer is capped too");
    }

    #[test]
    fn reliable_transports_absorb_nothing() {
        let t = rfc().over(true);
        for (name, got) in [("D", t.d()), ("I", t.i()), ("J", t.j()), ("K", t.k())] {
            assert_eq!(got, Duration::ZERO, "timer {name}");
        }
        assert_eq!(t.b(), ms(32_000));
        assert_eq!(t.h(), ms(32_000));
        assert_eq!(t.l(), ms(32_000), "L is not a retransmission wait");
    }

    #[test]
    fn backoff() {
        let t = rfc();
        // (previous interval, A next, E next, G next)
        let cases = [
            (500, 1_000, 1_000, 1_000),
            (1_000, 2_000, 2_000, 2_000),
            (2_000, 4_000, 4_000, 4_000),
            (4_000, 8_000, 4_000, 4_000),
            (8_000, 16_000, 4_000, 4_000),
        ];
        for (prev, a, e, g) in cases {
            assert_eq!(t.a_next(ms(prev)), ms(a), "A after {prev}");
            assert_eq!(t.e_next(ms(prev)), ms(e), "E after {prev}");
            assert_eq!(t.g_next(ms(prev)), ms(g), "G after {prev}");
        }
    }
}
