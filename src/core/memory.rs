//! What a stateless proxy remembers of a forwarded request so that its
//! replies are traced like the request was (docs/decisions.md §1): the script state
//! (trace flag, traced_user/trace_table AVPs) keyed by the branch of the
//! Via we added, for as long as a transaction would live (64·T1).
//!
//! Bounded: at most `cap` entries; the oldest is forgotten first. Pure: the
//! caller hands in `now`.

use crate::script::MsgState;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// RFC 3261 timer B/F: 64·T1 with T1 = 500 ms — no reply to a forwarded
/// request can be expected after that.
pub(crate) const REMEMBER_FOR: Duration = Duration::from_secs(32);

#[derive(Debug, Clone)]
pub struct Remembered {
    pub state: MsgState,
    /// The listener the request came in on: replies go back out of it.
    pub listener: usize,
}

#[derive(Debug)]
pub struct Memory {
    map: HashMap<String, (Remembered, Instant)>,
    /// (expiry, branch) in insertion order; expiries only grow, so the
    /// front is always the next to go. Stale pairs (re-remembered branch)
    /// are skipped by comparing with the map's expiry.
    order: VecDeque<(Instant, String)>,
    cap: usize,
}

impl Memory {
    pub fn new(cap: usize) -> Memory {
        Memory {
            map: HashMap::new(),
            order: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    pub(crate) fn remember(&mut self, branch: String, r: Remembered, now: Instant) {
        let exp = now + REMEMBER_FOR;
        while self.map.len() >= self.cap && !self.map.contains_key(&branch) {
            match self.order.pop_front() {
                Some((e, b)) => {
                    if self.map.get(&b).is_some_and(|(_, x)| *x == e) {
                        self.map.remove(&b);
                    }
                }
                None => break,
            }
        }
        self.order.push_back((exp, branch.clone()));
        self.map.insert(branch, (r, exp));
    }

    pub fn get(&self, branch: &str) -> Option<&Remembered> {
        self.map.get(branch).map(|(r, _)| r)
    }

    pub(crate) fn expire(&mut self, now: Instant) {
        while let Some((e, _)) = self.order.front() {
            if *e > now {
                break;
            }
            if let Some((e, b)) = self.order.pop_front() {
                if self.map.get(&b).is_some_and(|(_, x)| *x == e) {
                    self.map.remove(&b);
                }
            }
        }
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.order.front().map(|(e, _)| *e)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(flags: u32) -> Remembered {
        Remembered {
            state: MsgState {
                flags,
                ..Default::default()
            },
            listener: 0,
        }
    }

    #[test]
    fn expires_after_64_t1_and_is_bounded() {
        let t0 = Instant::now();
        let mut m = Memory::new(2);
        m.remember("a".into(), r(1), t0);
        m.remember("b".into(), r(2), t0 + Duration::from_secs(1));
        m.remember("c".into(), r(4), t0 + Duration::from_secs(2));
        assert!(m.get("a").is_none(), "oldest forgotten at the cap");
        assert_eq!(m.get("c").unwrap().state.flags, 4);
        assert_eq!(m.len(), 2);
        m.expire(t0 + REMEMBER_FOR + Duration::from_secs(1));
        assert!(m.get("b").is_none());
        assert!(m.get("c").is_some());
        // A retransmission re-remembers: the entry lives on from then.
        m.remember("c".into(), r(4), t0 + Duration::from_secs(30));
        m.expire(t0 + REMEMBER_FOR + Duration::from_secs(3));
        assert!(m.get("c").is_some());
        m.expire(t0 + Duration::from_secs(30) + REMEMBER_FOR);
        assert!(m.is_empty());
        assert_eq!(m.next_deadline(), None);
    }
}
