//! The non-INVITE server transaction: RFC 3261 §17.2.2 (Trying, Proceeding,
//! Completed, Terminated), for UDP.
//!
//! A pure state machine like `server_invite`: handed replies, retransmitted
//! requests and `now`; answers with what to re-send. No keys, addresses or
//! clock. CANCEL requests get a transaction of this kind too.

use std::time::Instant;

use super::Payload;
use super::timers::Timers;

#[derive(Debug)]
enum State {
    /// Nothing sent yet: request retransmissions are absorbed silently.
    Trying,
    /// A provisional was sent: request retransmissions get it again.
    Proceeding,
    /// The final reply was sent: request retransmissions get it again until
    /// Timer J.
    Completed {
        j_at: Instant,
    },
    Terminated,
}

/// Why a reply was refused: §17.2.2 discards any final reply after the first.
#[derive(Debug, PartialEq)]
pub(crate) enum Refused {
    AlreadyFinal { sent: u16 },
}

#[derive(Debug)]
pub(crate) struct ServerNonInvite {
    state: State,
    /// The reply re-sent to a retransmitted request (Proceeding, Completed);
    /// dropped on termination.
    last: Option<(u16, Payload)>,
    final_code: Option<u16>,
}

impl ServerNonInvite {
    pub(crate) fn new() -> Self {
        ServerNonInvite {
            state: State::Trying,
            last: None,
            final_code: None,
        }
    }

    /// A retransmission of the request arrived: the reply to send again.
    pub(crate) fn on_request(&self) -> Option<(u16, Payload)> {
        match self.state {
            State::Proceeding | State::Completed { .. } => self.last.clone(),
            State::Trying | State::Terminated => None,
        }
    }

    pub(crate) fn accepts(&self, _code: u16) -> bool {
        self.final_code.is_none()
    }

    pub(crate) fn send(
        &mut self,
        code: u16,
        bytes: &Payload,
        now: Instant,
        timers: &Timers,
    ) -> Result<(), Refused> {
        if let Some(sent) = self.final_code {
            return Err(Refused::AlreadyFinal { sent });
        }
        self.last = Some((code, bytes.clone()));
        if code < 200 {
            self.state = State::Proceeding;
        } else {
            self.final_code = Some(code);
            self.state = State::Completed {
                j_at: now + timers.j(),
            };
        }
        Ok(())
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        match self.state {
            State::Completed { j_at } => Some(j_at),
            _ => None,
        }
    }

    /// Timer J: `true` when it fired and the transaction is now terminated.
    pub(crate) fn on_timeout(&mut self, now: Instant) -> bool {
        match self.state {
            State::Completed { j_at } if j_at <= now => {
                self.terminate();
                true
            }
            _ => false,
        }
    }

    pub(crate) fn final_code(&self) -> Option<u16> {
        self.final_code
    }

    pub(crate) fn is_terminated(&self) -> bool {
        matches!(self.state, State::Terminated)
    }

    pub(crate) fn terminate(&mut self) {
        self.state = State::Terminated;
        self.last = None;
    }

    /// The message bytes the machine holds.
    pub(crate) fn retained(&self) -> Option<&Payload> {
        self.last.as_ref().map(|(_, bytes)| bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use std::time::Duration;

    #[test]
    fn states_and_timer_j() {
        let base = Instant::now();
        let t = timers();
        let mut m = ServerNonInvite::new();
        assert_eq!(m.on_request(), None, "Trying absorbs silently");
        m.send(100, &bytes("100"), base, &t).unwrap();
        assert_eq!(m.on_request(), Some((100, bytes("100"))));
        let at = base + Duration::from_millis(300);
        m.send(200, &bytes("200"), at, &t).unwrap();
        assert_eq!(m.on_request(), Some((200, bytes("200"))));
        assert_eq!(
            m.send(200, &bytes("200"), at, &t),
            Err(Refused::AlreadyFinal { sent: 200 })
        );
        assert_eq!(m.deadline(), Some(at + Duration::from_secs(32)));
        assert!(!m.on_timeout(at + Duration::from_millis(31_999)));
        assert!(m.on_timeout(at + Duration::from_secs(32)));
        assert!(m.is_terminated());
        assert_eq!(m.deadline(), None);
        assert_eq!(m.retained(), None, "nothing kept once terminated");
    }

    #[test]
    fn timer_j_capped_by_wt_timer() {
        let base = Instant::now();
        let mut m = ServerNonInvite::new();
        m.send(200, &bytes("200"), base, &kamailio_timers())
            .unwrap();
        assert_eq!(m.deadline(), Some(ms(base, 5_000)), "min(64·T1, 5 s)");
        assert_eq!(m.on_request(), Some((200, bytes("200"))));
        assert!(m.on_timeout(ms(base, 5_000)));
    }
}
