//! What a stateless proxy remembers of a forwarded request so that its
//! replies are traced like the request was (docs/decisions.md §1): the script state
//! (trace flag, traced_user/trace_table AVPs) keyed by the branch of the
//! Via we added, for as long as a transaction would live (64·T1).
//!
//! Bounded in entries and in bytes (ARCHITECTURE.md, "state is bounded"):
//! the least recently remembered branch is forgotten first, and each
//! branch has exactly one place in the expiry order, so a retransmission
//! (which re-remembers the same branch) grows nothing. Pure: the caller
//! hands in `now`; depends only on script's `MsgState`.

use crate::script::MsgState;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// RFC 3261 timer B/F: 64·T1 with T1 = 500 ms — no reply to a forwarded
/// request can be expected after that.
pub(crate) const REMEMBER_FOR: Duration = Duration::from_secs(32);

/// Default bound on remembered branches.
pub(crate) const DEFAULT_MEMORY_ENTRIES: usize = 65_536;
/// Default bound on the bytes they hold: 65 536 entries of ~512 bytes
/// (a branch, one or two traced_user values and the map's own share).
pub(crate) const DEFAULT_MEMORY_BYTES: usize = 32 << 20;

#[derive(Debug, Clone)]
pub struct Remembered {
    pub state: MsgState,
    /// The listener the request came in on: replies go back out of it.
    pub listener: usize,
}

/// Which bound made [`Memory::remember`] forget an older branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Evicted {
    Entries,
    Bytes,
}

#[derive(Debug)]
struct Entry {
    r: Remembered,
    expires: Instant,
    bytes: usize,
}

#[derive(Debug)]
pub struct Memory {
    map: HashMap<String, Entry>,
    /// (expiry, branch), one pair per branch in the map, sorted by expiry.
    /// A re-remembered branch keeps its pair and gets a later expiry in
    /// the map only; when the pair reaches the front it is put back in its
    /// new place (near the back: expiries handed in only grow).
    order: VecDeque<(Instant, String)>,
    cap: usize,
    max_bytes: usize,
    bytes: usize,
}

impl Memory {
    pub fn new(cap: usize, max_bytes: usize) -> Memory {
        Memory {
            map: HashMap::new(),
            order: VecDeque::new(),
            cap: cap.max(1),
            max_bytes,
            bytes: 0,
        }
    }

    /// Estimated heap bytes of one entry: the branch twice (map key and
    /// order), the script state, and the map's and order's slots.
    fn entry_bytes(branch: &str, r: &Remembered) -> usize {
        2 * branch.len()
            + r.state.avps.heap_bytes()
            + std::mem::size_of::<(String, Entry)>()
            + std::mem::size_of::<(Instant, String)>()
    }

    /// Remember `r` for `branch` until `now` + 64·T1. Returns which bound,
    /// if any, made it forget older branches.
    pub(crate) fn remember(
        &mut self,
        branch: String,
        r: Remembered,
        now: Instant,
    ) -> Option<Evicted> {
        let expires = now + REMEMBER_FOR;
        let bytes = Self::entry_bytes(&branch, &r);
        if let Some(e) = self.map.get_mut(&branch) {
            // A retransmission: same place in the order, later expiry.
            self.bytes = self.bytes - e.bytes + bytes;
            *e = Entry { r, expires, bytes };
            return None;
        }
        let mut evicted = None;
        while !self.map.is_empty()
            && (self.map.len() >= self.cap || self.bytes + bytes > self.max_bytes)
        {
            evicted = Some(if self.map.len() >= self.cap {
                Evicted::Entries
            } else {
                Evicted::Bytes
            });
            self.forget_oldest();
        }
        self.order.push_back((expires, branch.clone()));
        self.bytes += bytes;
        self.map.insert(branch, Entry { r, expires, bytes });
        evicted
    }

    /// Drops the branch least recently remembered.
    fn forget_oldest(&mut self) {
        while let Some((at, b)) = self.order.pop_front() {
            match self.map.get(&b) {
                Some(e) if e.expires != at => {
                    let at = e.expires;
                    self.requeue(at, b);
                }
                Some(_) => {
                    self.remove(&b);
                    return;
                }
                None => {}
            }
        }
    }

    /// Puts a re-remembered branch's pair back in expiry order.
    fn requeue(&mut self, at: Instant, branch: String) {
        let i = self.order.partition_point(|(x, _)| *x <= at);
        self.order.insert(i, (at, branch));
    }

    fn remove(&mut self, branch: &str) {
        if let Some(e) = self.map.remove(branch) {
            self.bytes -= e.bytes;
        }
    }

    pub fn get(&self, branch: &str) -> Option<&Remembered> {
        self.map.get(branch).map(|e| &e.r)
    }

    pub(crate) fn expire(&mut self, now: Instant) {
        while let Some((at, _)) = self.order.front() {
            if *at > now {
                break;
            }
            let Some((at, b)) = self.order.pop_front() else {
                break;
            };
            match self.map.get(&b) {
                // Re-remembered since: it lives on, now at the back.
                Some(e) if e.expires != at => {
                    let at = e.expires;
                    self.requeue(at, b);
                }
                Some(_) => self.remove(&b),
                None => {}
            }
        }
    }

    /// The earliest instant [`Memory::expire`] has work; for a
    /// re-remembered branch, a wake-up that only moves it back in line.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.order.front().map(|(e, _)| *e)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Estimated bytes held (see [`Memory::entry_bytes`]).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    #[cfg(test)]
    fn order_len(&self) -> usize {
        self.order.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::{AvpName, Value};

    fn r(flags: u32) -> Remembered {
        Remembered {
            state: MsgState {
                flags,
                ..Default::default()
            },
            listener: 0,
        }
    }

    fn big(user: usize) -> Remembered {
        let mut st = MsgState::default();
        st.avps
            .add(AvpName::Str("u".into()), Value::Str("x".repeat(user)));
        Remembered {
            state: st,
            listener: 0,
        }
    }

    #[test]
    fn expires_after_64_t1_and_is_bounded() {
        let t0 = Instant::now();
        let mut m = Memory::new(2, DEFAULT_MEMORY_BYTES);
        m.remember("a".into(), r(1), t0);
        m.remember("b".into(), r(2), t0 + Duration::from_secs(1));
        let ev = m.remember("c".into(), r(4), t0 + Duration::from_secs(2));
        assert_eq!(ev, Some(Evicted::Entries));
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
        assert_eq!(m.bytes(), 0);
    }

    #[test]
    fn retransmission_flood_stays_one_entry() {
        let t0 = Instant::now();
        let mut m = Memory::new(DEFAULT_MEMORY_ENTRIES, DEFAULT_MEMORY_BYTES);
        let mut now = t0;
        for i in 0..100_000u32 {
            // The same forwarded request, every 0.5 ms.
            now = t0 + Duration::from_micros(500) * i;
            assert_eq!(m.remember("z9hG4bKsl.1".into(), r(1), now), None);
            if i % 1000 == 0 {
                m.expire(now);
            }
            assert_eq!((m.len(), m.order_len()), (1, 1), "at {i}");
        }
        let one = m.bytes();
        m.expire(now + REMEMBER_FOR - Duration::from_millis(1));
        assert_eq!((m.len(), m.order_len(), m.bytes()), (1, 1, one));
        m.expire(now + REMEMBER_FOR);
        assert!(m.is_empty());
        assert_eq!((m.order_len(), m.bytes()), (0, 0));
    }

    #[test]
    fn bounded_in_bytes_oldest_first() {
        let t0 = Instant::now();
        let one = Memory::entry_bytes("b0", &big(1000));
        let mut m = Memory::new(1000, 3 * one);
        for i in 0..3 {
            assert_eq!(m.remember(format!("b{i}"), big(1000), t0), None);
        }
        // b0 was re-remembered: b1 is now the least recent.
        m.remember("b0".into(), big(1000), t0 + Duration::from_secs(1));
        let ev = m.remember("b3".into(), big(1000), t0 + Duration::from_secs(2));
        assert_eq!(ev, Some(Evicted::Bytes));
        assert!(m.get("b1").is_none());
        assert!(m.get("b0").is_some() && m.get("b2").is_some() && m.get("b3").is_some());
        assert!(m.bytes() <= 3 * one);
        assert_eq!(m.order_len(), m.len());
        // One entry larger than the whole budget is still kept, alone.
        m.remember("huge".into(), big(10 * one), t0 + Duration::from_secs(3));
        assert_eq!(m.len(), 1);
        assert_eq!(m.order_len(), 1);
    }
}
