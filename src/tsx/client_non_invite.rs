//! The non-INVITE client transaction: RFC 3261 §17.1.2 for UDP (Trying,
//! Proceeding, Completed, Terminated). Also used for the CANCEL a proxy
//! sends on a branch.
//!
//! A pure state machine: handed replies and `now`, answers with what to
//! retransmit. No keys, addresses or clock. The request is kept only while
//! Timer E may resend it; provisionals are remembered as fingerprints.

use std::time::{Duration, Instant};

use super::timers::Timers;
use super::{Fingerprint, Payload, Received};

#[derive(Debug)]
enum State {
    /// Timer E doubles from T1 up to T2; Timer F gives up.
    Trying {
        e_at: Instant,
        e_interval: Duration,
        f_at: Instant,
    },
    /// After a provisional: Timer E fires every T2; Timer F still runs.
    Proceeding {
        e_at: Instant,
        f_at: Instant,
    },
    /// Absorb final-reply retransmissions until Timer K.
    Completed {
        k_at: Instant,
    },
    Terminated,
}

#[derive(Debug, PartialEq)]
pub(crate) enum Fired {
    /// Timer E: send the request again.
    Retransmit(Payload),
    /// Timer F: no final reply; terminated.
    TimerF,
    /// Timer K: terminated.
    Ended,
}

#[derive(Debug)]
pub(crate) struct ClientNonInvite {
    state: State,
    /// The request, for Timer E: until the final reply.
    request: Option<Payload>,
    last_provisional: Option<Fingerprint>,
}

impl ClientNonInvite {
    /// A new transaction whose request the owner transmits now.
    pub(crate) fn new(request: Payload, now: Instant, timers: &Timers) -> Self {
        let f_at = now + timers.f();
        // No Timer E over a reliable transport (§17.1.2.2): it is due with
        // F, which fires first.
        let e_at = if timers.reliable {
            f_at
        } else {
            now + timers.e_initial()
        };
        ClientNonInvite {
            state: State::Trying {
                e_at,
                e_interval: timers.e_initial(),
                f_at,
            },
            request: Some(request),
            last_provisional: None,
        }
    }

    pub(crate) fn on_reply(
        &mut self,
        code: u16,
        bytes: &Payload,
        now: Instant,
        timers: &Timers,
    ) -> Received {
        match self.state {
            State::Trying { e_at, f_at, .. } | State::Proceeding { e_at, f_at } => {
                if code < 200 {
                    let seen = Fingerprint::of(bytes);
                    let retransmission = self.last_provisional == Some(seen);
                    self.last_provisional = Some(seen);
                    // The pending Timer E keeps its instant; only the next
                    // interval becomes T2 (§17.1.2.2).
                    self.state = State::Proceeding { e_at, f_at };
                    Received::passed(retransmission)
                } else {
                    self.state = State::Completed {
                        k_at: now + timers.k(),
                    };
                    self.request = None;
                    self.last_provisional = None;
                    Received::passed(false)
                }
            }
            State::Completed { .. } if code >= 200 => Received {
                retransmission: true,
                passed_up: false,
                ack: None,
            },
            State::Completed { .. } | State::Terminated => Received::stray(),
        }
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        match self.state {
            State::Trying { e_at, f_at, .. } | State::Proceeding { e_at, f_at } => {
                Some(e_at.min(f_at))
            }
            State::Completed { k_at } => Some(k_at),
            State::Terminated => None,
        }
    }

    /// Fire the earliest due timer, if any (F before E when both are due).
    pub(crate) fn on_timeout(&mut self, now: Instant, timers: &Timers) -> Option<Fired> {
        match &mut self.state {
            State::Trying {
                e_at,
                e_interval,
                f_at,
            } => {
                if *f_at <= now {
                    self.terminate();
                    return Some(Fired::TimerF);
                }
                if *e_at > now {
                    return None;
                }
                *e_interval = timers.e_next(*e_interval);
                *e_at = now + *e_interval;
                self.request.clone().map(Fired::Retransmit)
            }
            State::Proceeding { e_at, f_at } => {
                if *f_at <= now {
                    self.terminate();
                    return Some(Fired::TimerF);
                }
                if *e_at > now {
                    return None;
                }
                *e_at = now + timers.e_proceeding();
                self.request.clone().map(Fired::Retransmit)
            }
            State::Completed { k_at } => {
                if *k_at > now {
                    return None;
                }
                self.terminate();
                Some(Fired::Ended)
            }
            State::Terminated => None,
        }
    }

    pub(crate) fn is_terminated(&self) -> bool {
        matches!(self.state, State::Terminated)
    }

    /// Drop the machine at once (`fr_timer` expiry, lifetime cap).
    pub(crate) fn terminate(&mut self) {
        self.state = State::Terminated;
        self.request = None;
        self.last_provisional = None;
    }

    /// The message bytes the machine holds.
    pub(crate) fn retained(&self) -> Option<&Payload> {
        self.request.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    fn run(
        m: &mut ClientNonInvite,
        base: Instant,
        from_ms: u64,
        until_ms: u64,
    ) -> Vec<(u64, Fired)> {
        let t = timers();
        let mut out = Vec::new();
        while let Some(d) = m.deadline() {
            if d > ms(base, until_ms) {
                break;
            }
            if let Some(f) = m.on_timeout(d, &t) {
                let at = (d - base).as_millis() as u64;
                if at >= from_ms {
                    out.push((at, f));
                }
            }
        }
        out
    }

    fn retransmits(fired: &[(u64, Fired)]) -> Vec<u64> {
        fired
            .iter()
            .filter(|(_, f)| matches!(f, Fired::Retransmit(_)))
            .map(|(at, _)| *at)
            .collect()
    }

    #[test]
    fn timer_e_capped_at_t2_then_f() {
        let base = Instant::now();
        let mut m = ClientNonInvite::new(bytes("OPTIONS"), base, &timers());
        let fired = run(&mut m, base, 0, 40_000);
        assert_eq!(
            retransmits(&fired),
            vec![
                500, 1_500, 3_500, 7_500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500
            ]
        );
        assert_eq!(fired.last(), Some(&(32_000, Fired::TimerF)));
        assert!(m.is_terminated());
    }

    #[test]
    fn no_timer_e_over_a_reliable_transport_and_k_is_zero() {
        let base = Instant::now();
        let t = timers().over(true);
        let mut m = ClientNonInvite::new(bytes("OPTIONS"), base, &t);
        assert_eq!(run(&mut m, base, 0, 40_000), vec![(32_000, Fired::TimerF)]);
        let mut m = ClientNonInvite::new(bytes("OPTIONS"), base, &t);
        m.on_reply(200, &bytes("200"), ms(base, 10), &t);
        assert_eq!(m.deadline(), Some(ms(base, 10)), "Timer K is 0");
    }

    #[test]
    fn provisional_switches_e_to_t2() {
        let base = Instant::now();
        let t = timers();
        let mut m = ClientNonInvite::new(bytes("BYE"), base, &t);
        // E fires at 0.5 s in Trying; the 100 at 0.7 s leaves the pending E
        // (1.5 s) alone, then E repeats every T2.
        assert_eq!(
            run(&mut m, base, 0, 600),
            vec![(500, Fired::Retransmit(bytes("BYE")))]
        );
        assert_eq!(
            m.on_reply(100, &bytes("100"), ms(base, 700), &t),
            Received::passed(false)
        );
        let fired = run(&mut m, base, 600, 40_000);
        assert_eq!(
            retransmits(&fired),
            vec![1_500, 5_500, 9_500, 13_500, 17_500, 21_500, 25_500, 29_500]
        );
        assert_eq!(fired.last(), Some(&(32_000, Fired::TimerF)));
    }

    #[test]
    fn final_then_timer_k() {
        let base = Instant::now();
        let t = timers();
        let mut m = ClientNonInvite::new(bytes("BYE"), base, &t);
        assert_eq!(
            m.on_reply(200, &bytes("200"), ms(base, 2_000), &t),
            Received::passed(false)
        );
        assert_eq!(m.deadline(), Some(ms(base, 7_000)), "Timer K");
        assert_eq!(m.retained(), None, "no Timer E after the final");
        let again = m.on_reply(200, &bytes("200"), ms(base, 2_500), &t);
        assert!(again.retransmission && !again.passed_up);
        assert_eq!(
            m.on_reply(180, &bytes("180"), ms(base, 2_600), &t),
            Received::stray()
        );
        assert_eq!(run(&mut m, base, 0, 60_000), vec![(7_000, Fired::Ended)]);
    }
}
