//! The INVITE server transaction: RFC 3261 §17.2.1, with the Accepted state
//! of RFC 6026 §8.6–8.7 for 2xx replies.
//!
//! A pure state machine: it is handed replies to send, retransmitted
//! requests, ACKs and `now`, and answers with what to (re)transmit. It does
//! not know keys, addresses, branches or the table; it never reads a clock.
//!
//! Why Accepted instead of RFC 3261's "2xx → Terminated": a proxy that
//! forgets the transaction at the 2xx would treat a late INVITE
//! retransmission as a new request and fork it again. In Accepted (Timer L,
//! 64·T1) INVITE retransmissions are absorbed without a reply (the UAS
//! retransmits its 2xx end to end), further 2xx replies pass through, and an
//! ACK is not absorbed (the 2xx ACK is its own end-to-end request).

use std::time::{Duration, Instant};

use super::Payload;
use super::timers::Timers;

#[derive(Debug)]
enum State {
    /// No final reply sent yet; any provisional is kept for retransmission.
    Proceeding,
    /// A 300–699 final reply was sent: retransmit it on Timer G until the ACK
    /// or Timer H.
    Completed {
        g_at: Instant,
        g_interval: Duration,
        h_at: Instant,
    },
    /// The ACK arrived: absorb ACK retransmissions until Timer I.
    Confirmed {
        i_at: Instant,
    },
    /// A 2xx was sent (RFC 6026): absorb INVITE retransmissions until Timer L.
    Accepted {
        l_at: Instant,
    },
    Terminated,
}

/// What a timer firing asks the owner to do.
#[derive(Debug, PartialEq)]
pub(crate) enum Fired {
    /// Timer G: send the final reply again.
    Retransmit { code: u16, bytes: Payload },
    /// Timer H: no ACK came; the transaction is now terminated.
    NoAck,
    /// Timer I or L: the transaction is now terminated.
    Ended,
}

/// Why a reply was refused.
#[derive(Debug, PartialEq)]
pub(crate) enum Refused {
    /// A final reply was already sent; only 2xx may follow (RFC 3261 §16.7
    /// step 5: a proxy forwards every 2xx).
    AlreadyFinal { sent: u16 },
}

#[derive(Debug)]
pub(crate) struct ServerInvite {
    state: State,
    /// The last reply sent through the transaction, with its status code:
    /// re-sent when the INVITE is retransmitted (§17.2.1) and on Timer G.
    /// Kept only in Proceeding and Completed: Confirmed, Accepted and
    /// Terminated never send it again, and those states are where a
    /// finished transaction spends its `wt_timer`.
    last: Option<(u16, Payload)>,
    final_code: Option<u16>,
}

impl ServerInvite {
    pub(crate) fn new() -> Self {
        ServerInvite {
            state: State::Proceeding,
            last: None,
            final_code: None,
        }
    }

    /// A retransmission of the INVITE arrived: the reply to send again, if
    /// any (§17.2.1: the most recent provisional in Proceeding, the final in
    /// Completed; RFC 6026 §8.6: nothing in Accepted).
    pub(crate) fn on_request(&self) -> Option<(u16, Payload)> {
        match self.state {
            State::Proceeding | State::Completed { .. } => self.last.clone(),
            State::Confirmed { .. } | State::Accepted { .. } | State::Terminated => None,
        }
    }

    /// An ACK matched: `Some(first)` if absorbed here (an ACK for a non-2xx
    /// final reply, §17.2.1), `None` if it is not for this machine (no final
    /// yet, or a 2xx ACK, which the proxy forwards as a request of its own).
    pub(crate) fn on_ack(&mut self, now: Instant, timers: &Timers) -> Option<bool> {
        match self.state {
            State::Completed { .. } => {
                self.state = State::Confirmed {
                    i_at: now + timers.i(),
                };
                self.last = None;
                Some(true)
            }
            State::Confirmed { .. } => Some(false),
            State::Proceeding | State::Accepted { .. } | State::Terminated => None,
        }
    }

    /// Whether [`ServerInvite::send`] would accept a reply with this code.
    pub(crate) fn accepts(&self, code: u16) -> bool {
        self.final_code.is_none() || is_2xx(code)
    }

    /// The proxy core sends a reply (relayed or local) through the
    /// transaction. The caller transmits `bytes` itself; this only moves the
    /// state and remembers the reply for retransmission.
    pub(crate) fn send(
        &mut self,
        code: u16,
        bytes: &Payload,
        now: Instant,
        timers: &Timers,
    ) -> Result<(), Refused> {
        if let Some(sent) = self.final_code {
            if is_2xx(code) {
                // A later 2xx (another fork, or a retransmission from the
                // UAS) passes through; the state stays.
                return Ok(());
            }
            return Err(Refused::AlreadyFinal { sent });
        }
        self.final_code = (code >= 200).then_some(code);
        if is_2xx(code) {
            // RFC 6026 §8.6: Accepted re-sends nothing (the UAS retransmits
            // its 2xx end to end), so the reply is not kept.
            self.last = None;
            self.state = State::Accepted {
                l_at: now + timers.l(),
            };
            return Ok(());
        }
        self.last = Some((code, bytes.clone()));
        if code >= 200 {
            let h_at = now + timers.h();
            // No Timer G over a reliable transport (§17.2.1): due with H,
            // which fires first.
            let g_at = if timers.reliable {
                h_at
            } else {
                now + timers.g_initial()
            };
            self.state = State::Completed {
                g_at,
                g_interval: timers.g_initial(),
                h_at,
            };
        }
        Ok(())
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        match self.state {
            State::Completed { g_at, h_at, .. } => Some(g_at.min(h_at)),
            State::Confirmed { i_at } => Some(i_at),
            State::Accepted { l_at } => Some(l_at),
            State::Proceeding | State::Terminated => None,
        }
    }

    /// Fire the earliest due timer, if any. The owner calls this while
    /// `deadline() <= now`; each call makes progress (a state change or a
    /// deadline moved past `now`).
    pub(crate) fn on_timeout(&mut self, now: Instant, timers: &Timers) -> Option<Fired> {
        match &mut self.state {
            State::Completed {
                g_at,
                g_interval,
                h_at,
            } => {
                if *h_at <= now {
                    self.state = State::Terminated;
                    self.last = None;
                    return Some(Fired::NoAck);
                }
                if *g_at > now {
                    return None;
                }
                *g_interval = timers.g_next(*g_interval);
                *g_at = now + *g_interval;
                let (code, bytes) = self.last.clone()?;
                Some(Fired::Retransmit { code, bytes })
            }
            State::Confirmed { i_at } | State::Accepted { l_at: i_at } => {
                if *i_at > now {
                    return None;
                }
                self.state = State::Terminated;
                Some(Fired::Ended)
            }
            State::Proceeding | State::Terminated => None,
        }
    }

    pub(crate) fn final_code(&self) -> Option<u16> {
        self.final_code
    }

    pub(crate) fn is_terminated(&self) -> bool {
        matches!(self.state, State::Terminated)
    }

    /// Drop the machine at once (lifetime cap reached).
    pub(crate) fn terminate(&mut self) {
        self.state = State::Terminated;
        self.last = None;
    }

    /// The message bytes the machine holds.
    pub(crate) fn retained(&self) -> Option<&Payload> {
        self.last.as_ref().map(|(_, bytes)| bytes)
    }
}

fn is_2xx(code: u16) -> bool {
    (200..300).contains(&code)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    /// Drive the machine from `base` to `base + until_ms`, returning the ms
    /// offsets at which each kind of timer fired.
    fn run(m: &mut ServerInvite, base: Instant, until_ms: u64) -> Vec<(u64, Fired)> {
        let t = timers();
        let mut out = Vec::new();
        while let Some(d) = m.deadline() {
            if d > base + Duration::from_millis(until_ms) {
                break;
            }
            if let Some(f) = m.on_timeout(d, &t) {
                out.push(((d - base).as_millis() as u64, f));
            }
        }
        out
    }

    #[test]
    fn timer_g_and_h() {
        let base = Instant::now();
        let mut m = ServerInvite::new();
        let t = timers();
        m.send(100, &bytes("100"), base, &t).unwrap();
        assert_eq!(m.on_request(), Some((100, bytes("100"))));
        m.send(486, &bytes("486"), base, &t).unwrap();
        assert_eq!(m.on_request(), Some((486, bytes("486"))));
        let fired = run(&mut m, base, 40_000);
        let g: Vec<u64> = fired
            .iter()
            .filter(|(_, f)| matches!(f, Fired::Retransmit { .. }))
            .map(|(at, _)| *at)
            .collect();
        // §17.2.1: T1, 2T1, 4T1, then capped at T2 until H (64·T1).
        assert_eq!(
            g,
            vec![
                500, 1_500, 3_500, 7_500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500
            ]
        );
        assert_eq!(fired.last(), Some(&(32_000, Fired::NoAck)));
        assert!(m.is_terminated());
        assert_eq!(m.retained(), None);
    }

    #[test]
    fn ack_confirms_then_timer_i() {
        let base = Instant::now();
        let t = timers();
        let mut m = ServerInvite::new();
        m.send(404, &bytes("404"), base, &t).unwrap();
        let at = base + Duration::from_millis(700);
        assert_eq!(m.retained(), Some(&bytes("404")), "for Timer G");
        assert_eq!(m.on_ack(at, &t), Some(true));
        assert_eq!(m.on_ack(at, &t), Some(false));
        assert_eq!(m.on_request(), None);
        assert_eq!(m.retained(), None, "Confirmed re-sends nothing");
        assert_eq!(m.deadline(), Some(at + t.t4));
        let fired = run(&mut m, base, 10_000);
        assert_eq!(fired, vec![(5_700, Fired::Ended)]);
    }

    #[test]
    fn accepted_absorbs_and_passes_2xx() {
        let base = Instant::now();
        let t = timers();
        let mut m = ServerInvite::new();
        m.send(180, &bytes("180"), base, &t).unwrap();
        m.send(200, &bytes("200"), base, &t).unwrap();
        assert_eq!(m.on_request(), None);
        assert_eq!(m.retained(), None, "Accepted re-sends nothing");
        assert_eq!(m.on_ack(base, &t), None);
        assert_eq!(m.send(200, &bytes("200b"), base, &t), Ok(()));
        assert_eq!(
            m.send(486, &bytes("486"), base, &t),
            Err(Refused::AlreadyFinal { sent: 200 })
        );
        assert_eq!(
            m.send(180, &bytes("180"), base, &t),
            Err(Refused::AlreadyFinal { sent: 200 })
        );
        assert_eq!(run(&mut m, base, 40_000), vec![(32_000, Fired::Ended)]);
    }

    #[test]
    fn no_timer_g_over_a_reliable_transport_and_i_is_zero() {
        let base = Instant::now();
        let t = timers().over(true);
        let mut m = ServerInvite::new();
        m.send(486, &bytes("486"), base, &t).unwrap();
        assert_eq!(m.deadline(), Some(ms(base, 32_000)), "only H is pending");
        assert_eq!(m.on_ack(ms(base, 100), &t), Some(true));
        assert_eq!(m.deadline(), Some(ms(base, 100)), "Timer I is 0");
    }

    #[test]
    fn timers_i_and_l_capped_by_wt_timer() {
        let base = Instant::now();
        let t = crate::tsx::timers::Timers {
            t4: Duration::from_secs(8),
            ..kamailio_timers()
        };
        let mut m = ServerInvite::new();
        m.send(200, &bytes("200"), base, &t).unwrap();
        assert_eq!(m.deadline(), Some(ms(base, 5_000)), "L = min(64·T1, 5 s)");
        let mut m = ServerInvite::new();
        m.send(486, &bytes("486"), base, &t).unwrap();
        assert_eq!(m.deadline(), Some(ms(base, 500)), "G is not capped");
        m.on_ack(ms(base, 100), &t);
        assert_eq!(m.deadline(), Some(ms(base, 5_100)), "I = min(T4, 5 s)");
    }

    #[test]
    fn odd_inputs_do_not_move_proceeding() {
        let base = Instant::now();
        let t = timers();
        let mut m = ServerInvite::new();
        assert_eq!(m.on_request(), None);
        assert_eq!(m.on_ack(base, &t), None);
        assert_eq!(m.deadline(), None);
        assert_eq!(m.on_timeout(base, &t), None);
        assert!(!m.is_terminated());
    }
}
