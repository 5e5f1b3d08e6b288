//! The INVITE client transaction: RFC 3261 §17.1.1 for UDP, with RFC 6026's
//! Accepted state for 2xx replies, and the §9.1 CANCEL wait.
//!
//! A pure state machine: it is handed replies and `now`, and answers with
//! what to (re)transmit; the owner (a proxy branch) decides what the replies
//! mean for the proxy. It knows no keys, addresses or clock.
//!
//! States: Calling (Timer A retransmits, Timer B gives up) → Proceeding on a
//! provisional → Completed on a 300–699 final (hop-by-hop ACK, Timer D) or
//! Accepted on a 2xx (Timer M; 2xx retransmissions keep being passed up so
//! the proxy relays them) → Terminated.
//!
//! Deviation, documented: when the branch gives up (Timer B, `fr_timer`,
//! `fr_inv_timer`, a CANCEL) the machine does not vanish at once but stops
//! retransmitting and lingers for 64·T1, capped by `wt_timer`
//! (`give_up_at`), so that a late provisional can still be cancelled (§9.1:
//! a CANCEL waits for a provisional) and a late non-2xx final still gets its
//! ACK.
//!
//! Memory: the request is kept while a reply may still need it (Timer A, the
//! CANCEL built from it, the ACK built from it), that is until the first
//! final; afterwards only the ACK of a non-2xx final stays (re-sent on each
//! retransmission of that final). Provisionals and 2xx are remembered as
//! fingerprints, only to recognise retransmissions.

use std::time::{Duration, Instant};

use super::timers::Timers;
use super::{Fingerprint, Payload, Received};

#[derive(Debug)]
enum State {
    Calling {
        /// Timer A: when to retransmit next and the current interval; `None`
        /// once the branch gave up.
        retransmit: Option<(Instant, Duration)>,
        /// Timer B; `None` once fired or the branch gave up.
        b_at: Option<Instant>,
    },
    Proceeding,
    Completed {
        d_at: Instant,
    },
    Accepted {
        m_at: Instant,
    },
    Terminated,
}

/// What a timer firing asks the owner to do.
#[derive(Debug, PartialEq)]
pub(crate) enum Fired {
    /// Timer A: send the request again.
    Retransmit(Payload),
    /// Timer B: no reply at all; retransmissions stopped. The owner decides
    /// how long to linger ([`ClientInvite::give_up`]).
    TimerB,
    /// The linger after giving up ran out without a final reply; terminated.
    GaveUp,
    /// Timer D or M: terminated.
    Ended,
}

#[derive(Debug)]
pub(crate) struct ClientInvite {
    state: State,
    /// The request, until the first final reply (Calling and Proceeding).
    request: Option<Payload>,
    /// The hop-by-hop ACK for the non-2xx final, re-sent for each
    /// retransmission of that final (§17.1.1.2); kept in Completed only.
    ack: Option<Payload>,
    last_provisional: Option<Fingerprint>,
    last_2xx: Option<Fingerprint>,
    /// Set when the branch gave up or was cancelled: terminate at this
    /// instant if no final reply came (§9.1).
    give_up_at: Option<Instant>,
}

impl ClientInvite {
    /// A new transaction whose request the owner transmits now.
    pub(crate) fn new(request: Payload, now: Instant, timers: &Timers) -> Self {
        ClientInvite {
            state: State::Calling {
                // No Timer A over a reliable transport (§17.1.1.2).
                retransmit: (!timers.reliable)
                    .then(|| (now + timers.a_initial(), timers.a_initial())),
                b_at: Some(now + timers.b()),
            },
            request: Some(request),
            ack: None,
            last_provisional: None,
            last_2xx: None,
            give_up_at: None,
        }
    }

    /// The request to build a CANCEL from: only in Proceeding, the one
    /// state where a CANCEL may be sent (§9.1: not before a provisional, and
    /// pointless after a final).
    pub(crate) fn cancellable(&self) -> Option<&Payload> {
        match self.state {
            State::Proceeding => self.request.as_ref(),
            _ => None,
        }
    }

    /// The message bytes the machine holds: the request, the ACK.
    pub(crate) fn retained(&self) -> [Option<&Payload>; 2] {
        [self.request.as_ref(), self.ack.as_ref()]
    }

    /// A reply matched this transaction. `make_ack` builds the hop-by-hop
    /// ACK from the request bytes; it is called at most once, for the first
    /// 300–699 final.
    pub(crate) fn on_reply<F>(
        &mut self,
        code: u16,
        bytes: &Payload,
        now: Instant,
        timers: &Timers,
        make_ack: F,
    ) -> Received
    where
        F: FnOnce(&[u8]) -> Payload,
    {
        let provisional = code < 200;
        let success = (200..300).contains(&code);
        match self.state {
            State::Calling { .. } | State::Proceeding => {
                if provisional {
                    let seen = Fingerprint::of(bytes);
                    let retransmission = self.last_provisional == Some(seen);
                    self.last_provisional = Some(seen);
                    self.state = State::Proceeding;
                    return Received::passed(retransmission);
                }
                // The first final: the request has served its purpose.
                let request = self.request.take();
                self.last_provisional = None;
                if success {
                    self.last_2xx = Some(Fingerprint::of(bytes));
                    self.state = State::Accepted {
                        m_at: now + timers.m(),
                    };
                    Received::passed(false)
                } else {
                    // The request is always there in Calling and Proceeding.
                    let ack = make_ack(request.as_deref().unwrap_or_default());
                    self.ack = Some(ack.clone());
                    self.state = State::Completed {
                        d_at: now + timers.d(),
                    };
                    Received {
                        retransmission: false,
                        passed_up: true,
                        ack: Some((ack, false)),
                    }
                }
            }
            State::Completed { .. } => {
                if success {
                    // A 2xx after a non-2xx final (a downstream fork): RFC
                    // 3261 §16.7 step 5 wants every 2xx forwarded.
                    Received::passed(false)
                } else if provisional {
                    Received::stray()
                } else {
                    // §17.1.1.2: a retransmitted final gets the ACK again and
                    // is not passed up.
                    Received {
                        retransmission: true,
                        passed_up: false,
                        ack: self.ack.clone().map(|a| (a, true)),
                    }
                }
            }
            State::Accepted { .. } => {
                if success {
                    // RFC 6026 §8.4: every 2xx in Accepted goes to the TU.
                    let seen = Fingerprint::of(bytes);
                    let retransmission = self.last_2xx == Some(seen);
                    self.last_2xx = Some(seen);
                    Received::passed(retransmission)
                } else {
                    Received::stray()
                }
            }
            State::Terminated => Received::stray(),
        }
    }

    /// Stop retransmitting and terminate `cancel_wait` (64·T1, capped by
    /// `wt_timer`) from `now` unless a final reply comes first. Called when the branch times out or
    /// is cancelled, and again when the CANCEL is actually sent (§9.1 counts
    /// from the CANCEL).
    pub(crate) fn give_up(&mut self, now: Instant, timers: &Timers) {
        match &mut self.state {
            State::Calling { retransmit, b_at } => {
                *retransmit = None;
                *b_at = None;
            }
            State::Proceeding => {}
            State::Completed { .. } | State::Accepted { .. } | State::Terminated => return,
        }
        self.give_up_at = Some(now + timers.cancel_wait());
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        match self.state {
            State::Calling { retransmit, b_at } => {
                [retransmit.map(|(at, _)| at), b_at, self.give_up_at]
                    .into_iter()
                    .flatten()
                    .min()
            }
            State::Proceeding => self.give_up_at,
            State::Completed { d_at } => Some(d_at),
            State::Accepted { m_at } => Some(m_at),
            State::Terminated => None,
        }
    }

    /// Fire the earliest due timer, if any. Each call makes progress, so the
    /// owner may loop while `deadline() <= now`.
    pub(crate) fn on_timeout(&mut self, now: Instant, timers: &Timers) -> Option<Fired> {
        match &mut self.state {
            State::Calling { retransmit, b_at } => {
                if self.give_up_at.is_some_and(|at| at <= now) {
                    self.terminate();
                    return Some(Fired::GaveUp);
                }
                if b_at.is_some_and(|at| at <= now) {
                    *b_at = None;
                    *retransmit = None;
                    return Some(Fired::TimerB);
                }
                match retransmit {
                    Some((at, interval)) if *at <= now => {
                        *interval = timers.a_next(*interval);
                        *at = now + *interval;
                        self.request.clone().map(Fired::Retransmit)
                    }
                    _ => None,
                }
            }
            State::Proceeding => {
                if self.give_up_at.is_some_and(|at| at <= now) {
                    self.terminate();
                    return Some(Fired::GaveUp);
                }
                None
            }
            State::Completed { d_at: at } | State::Accepted { m_at: at } => {
                if *at > now {
                    return None;
                }
                self.terminate();
                Some(Fired::Ended)
            }
            State::Terminated => None,
        }
    }

    /// In Calling: no provisional yet, so a CANCEL must wait (§9.1).
    pub(crate) fn is_calling(&self) -> bool {
        matches!(self.state, State::Calling { .. })
    }

    pub(crate) fn is_proceeding(&self) -> bool {
        matches!(self.state, State::Proceeding)
    }

    pub(crate) fn is_terminated(&self) -> bool {
        matches!(self.state, State::Terminated)
    }

    pub(crate) fn terminate(&mut self) {
        self.state = State::Terminated;
        self.request = None;
        self.ack = None;
        self.last_provisional = None;
        self.last_2xx = None;
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    fn run(m: &mut ClientInvite, base: Instant, until_ms: u64) -> Vec<(u64, Fired)> {
        let t = timers();
        let mut out = Vec::new();
        while let Some(d) = m.deadline() {
            if d > ms(base, until_ms) {
                break;
            }
            if let Some(f) = m.on_timeout(d, &t) {
                out.push(((d - base).as_millis() as u64, f));
            }
        }
        out
    }

    fn no_ack(_: &[u8]) -> Payload {
        panic!("no ACK expected")
    }

    #[test]
    fn timer_a_then_b() {
        let base = Instant::now();
        let mut m = ClientInvite::new(bytes("INVITE"), base, &timers());
        let fired = run(&mut m, base, 40_000);
        let want: Vec<(u64, Fired)> = [500, 1_500, 3_500, 7_500, 15_500, 31_500]
            .into_iter()
            .map(|at| (at, Fired::Retransmit(bytes("INVITE"))))
            .chain([(32_000, Fired::TimerB)])
            .collect();
        assert_eq!(fired, want);
        assert!(m.is_calling(), "B stops retransmissions; the owner decides");
        assert_eq!(m.deadline(), None);
    }

    #[test]
    fn no_timer_a_over_a_reliable_transport() {
        let base = Instant::now();
        let mut m = ClientInvite::new(bytes("INVITE"), base, &timers().over(true));
        assert_eq!(run(&mut m, base, 40_000), vec![(32_000, Fired::TimerB)]);
    }

    #[test]
    fn provisional_stops_a_and_linger_after_give_up() {
        let base = Instant::now();
        let t = timers();
        let mut m = ClientInvite::new(bytes("INVITE"), base, &t);
        let r = m.on_reply(180, &bytes("180"), ms(base, 700), &t, no_ack);
        assert_eq!(r, Received::passed(false));
        let r = m.on_reply(180, &bytes("180"), ms(base, 800), &t, no_ack);
        assert_eq!(r, Received::passed(true), "same bytes: retransmission");
        let r = m.on_reply(180, &bytes("180 other"), ms(base, 900), &t, no_ack);
        assert_eq!(r, Received::passed(false), "other bytes: a new provisional");
        assert_eq!(m.cancellable(), Some(&bytes("INVITE")), "§9.1");
        assert_eq!(m.deadline(), None, "no timer in Proceeding (§17.1.1.2)");
        m.give_up(ms(base, 1_000), &t);
        assert_eq!(run(&mut m, base, 60_000), vec![(33_000, Fired::GaveUp)]);
        assert!(m.is_terminated());
        assert_eq!(m.retained(), [None, None]);
    }

    #[test]
    fn non_2xx_final_acks_and_timer_d() {
        let base = Instant::now();
        let t = timers();
        let mut m = ClientInvite::new(bytes("INVITE"), base, &t);
        let r = m.on_reply(486, &bytes("486"), ms(base, 200), &t, |req| {
            assert_eq!(req, b"INVITE");
            bytes("ACK")
        });
        assert_eq!(
            r,
            Received {
                retransmission: false,
                passed_up: true,
                ack: Some((bytes("ACK"), false)),
            }
        );
        let r = m.on_reply(486, &bytes("486"), ms(base, 700), &t, no_ack);
        assert_eq!(
            r,
            Received {
                retransmission: true,
                passed_up: false,
                ack: Some((bytes("ACK"), true)),
            }
        );
        // Completed keeps only the ACK: the request built it, and no CANCEL
        // follows a final.
        assert_eq!(m.retained(), [None, Some(&bytes("ACK"))]);
        assert_eq!(m.cancellable(), None);
        assert_eq!(run(&mut m, base, 60_000), vec![(32_200, Fired::Ended)]);
        assert_eq!(m.retained(), [None, None]);
    }

    #[test]
    fn accepted_passes_every_2xx() {
        let base = Instant::now();
        let t = timers();
        let mut m = ClientInvite::new(bytes("INVITE"), base, &t);
        assert_eq!(
            m.on_reply(200, &bytes("200a"), base, &t, no_ack),
            Received::passed(false)
        );
        assert_eq!(
            m.on_reply(200, &bytes("200a"), base, &t, no_ack),
            Received::passed(true)
        );
        assert_eq!(
            m.on_reply(200, &bytes("200b"), base, &t, no_ack),
            Received::passed(false),
            "a 2xx from another downstream fork is new"
        );
        assert_eq!(
            m.on_reply(180, &bytes("180"), base, &t, no_ack),
            Received::stray()
        );
        assert_eq!(m.retained(), [None, None], "Accepted keeps no bytes");
        assert_eq!(run(&mut m, base, 60_000), vec![(32_000, Fired::Ended)]);
    }

    #[test]
    fn waits_after_completion_capped_by_wt_timer() {
        let base = Instant::now();
        let t = kamailio_timers();
        // (reply code, or give up without one; the instant it ends)
        let cases: [(Option<u16>, u64); 3] =
            [(Some(486), 5_100), (Some(200), 5_100), (None, 5_100)];
        for (code, want) in cases {
            let mut m = ClientInvite::new(bytes("INVITE"), base, &t);
            m.on_reply(180, &bytes("180"), ms(base, 50), &t, no_ack);
            match code {
                Some(code) => {
                    m.on_reply(code, &bytes("final"), ms(base, 100), &t, |_| bytes("ACK"));
                }
                None => m.give_up(ms(base, 100), &t),
            }
            assert_eq!(m.deadline(), Some(ms(base, want)), "{code:?}");
        }
    }
}
