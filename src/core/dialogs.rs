//! Dialogs being traced whole (docs/decisions.md §16): siptraced's own
//! lightweight tracking for `sip_trace("", "", "d")` and for INVITEs a
//! runtime filter matched — no dialog module. A dialog is its Call-ID and
//! the caller's From-tag; a later request belongs to it when it carries
//! that Call-ID and that tag as its From-tag (caller to callee) or its
//! To-tag (callee to caller).
//!
//! Life of an entry: made at the initial INVITE (early, `EARLY_LIFETIME`);
//! a 2xx to the INVITE confirms it for the configured lifetime; a final
//! reply ≥ 300 to the INVITE before that removes it; a BYE keeps it only
//! `ENDING_LIFETIME` more, for retransmissions. Bounded in entries and
//! bytes; a dialog that does not fit is not tracked and the bound is
//! counted (`core_limits`).
//!
//! Pure: handed `now`; depends on std only.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// An INVITE not answered with a 2xx within tm's Timer C (3 min) will not
/// create a dialog.
pub const EARLY_LIFETIME: Duration = Duration::from_secs(180);
/// After a BYE: 64·T1, as long as its retransmissions may come.
pub const ENDING_LIFETIME: Duration = Duration::from_secs(32);
/// Default of the `dialog_lifetime` modparam: 12 h, Kamailio dialog's
/// `default_timeout`.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(43_200);
/// Defaults of `dialog_max` and `dialog_max_kb`.
pub const DEFAULT_MAX_ENTRIES: usize = 10_000;
pub const DEFAULT_MAX_BYTES: usize = 4 << 20;
/// What an entry costs beyond its strings (map slot, index key).
const ENTRY_OVERHEAD: usize = 96;

/// Why a dialog was traced, and so how its later messages are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// sip_trace() with "d": as the trace flag would (subject to trace_on).
    Script,
    /// A runtime filter: whatever trace_on says.
    Filter,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_entries: usize,
    pub max_bytes: usize,
    pub lifetime: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: DEFAULT_MAX_ENTRIES,
            max_bytes: DEFAULT_MAX_BYTES,
            lifetime: DEFAULT_LIFETIME,
        }
    }
}

/// Why a dialog could not be tracked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    Entries,
    Bytes,
}

#[derive(Debug, Clone)]
struct Entry {
    caller_tag: String,
    scope: Scope,
    confirmed: bool,
    expires: Instant,
    seq: u64,
}

impl Entry {
    fn bytes(&self, callid: &str) -> usize {
        callid.len() + self.caller_tag.len() + ENTRY_OVERHEAD
    }
}

#[derive(Debug, Default)]
pub struct Dialogs {
    limits: Limits,
    by_callid: HashMap<String, Entry>,
    /// Expiry order: (when, seq) → Call-ID.
    order: BTreeSet<(Instant, u64, String)>,
    bytes: usize,
    seq: u64,
}

impl Dialogs {
    pub fn new(limits: Limits) -> Dialogs {
        Dialogs {
            limits,
            ..Dialogs::default()
        }
    }

    pub fn len(&self) -> usize {
        self.by_callid.len()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.by_callid.is_empty()
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// An initial INVITE to trace whole. An entry already there for the
    /// Call-ID (a retransmission, a second sip_trace()) is kept, its scope
    /// widened to `Filter` if asked.
    pub fn track(
        &mut self,
        callid: &str,
        caller_tag: &str,
        scope: Scope,
        now: Instant,
    ) -> Result<(), Full> {
        self.expire(now);
        if let Some(e) = self.by_callid.get_mut(callid) {
            if scope == Scope::Filter {
                e.scope = Scope::Filter;
            }
            return Ok(());
        }
        let mut e = Entry {
            caller_tag: caller_tag.to_string(),
            scope,
            confirmed: false,
            expires: now + EARLY_LIFETIME.min(self.limits.lifetime),
            seq: 0,
        };
        if self.by_callid.len() >= self.limits.max_entries {
            return Err(Full::Entries);
        }
        if self.bytes + e.bytes(callid) > self.limits.max_bytes {
            return Err(Full::Bytes);
        }
        self.seq += 1;
        e.seq = self.seq;
        self.bytes += e.bytes(callid);
        self.order.insert((e.expires, e.seq, callid.to_string()));
        self.by_callid.insert(callid.to_string(), e);
        Ok(())
    }

    /// The scope of the dialog a request with these Call-ID and tags
    /// belongs to; a BYE starts its end.
    pub fn lookup_request(
        &mut self,
        callid: &str,
        from_tag: &str,
        to_tag: &str,
        is_bye: bool,
        now: Instant,
    ) -> Option<Scope> {
        let e = self.by_callid.get(callid)?;
        if e.expires <= now || (e.caller_tag != from_tag && e.caller_tag != to_tag) {
            return None;
        }
        let scope = e.scope;
        if is_bye {
            self.set_expiry(callid, now + ENDING_LIFETIME);
        }
        Some(scope)
    }

    /// A reply to an INVITE of a tracked Call-ID (with the caller's tag
    /// as From-tag): a 2xx confirms the dialog, a final failure before
    /// that ends it.
    pub fn on_invite_reply(&mut self, callid: &str, from_tag: &str, code: u16, now: Instant) {
        let Some(e) = self.by_callid.get_mut(callid) else {
            return;
        };
        if e.caller_tag != from_tag || e.confirmed {
            return;
        }
        match code {
            200..=299 => {
                e.confirmed = true;
                let lifetime = self.limits.lifetime;
                self.set_expiry(callid, now + lifetime);
            }
            300.. => self.remove(callid),
            _ => {}
        }
    }

    fn set_expiry(&mut self, callid: &str, when: Instant) {
        if let Some(e) = self.by_callid.get_mut(callid) {
            self.order.remove(&(e.expires, e.seq, callid.to_string()));
            e.expires = when;
            self.order.insert((when, e.seq, callid.to_string()));
        }
    }

    fn remove(&mut self, callid: &str) {
        if let Some(e) = self.by_callid.remove(callid) {
            self.bytes -= e.bytes(callid);
            self.order.remove(&(e.expires, e.seq, callid.to_string()));
        }
    }

    /// Forgets the dialogs whose time has passed; returns how many.
    pub fn expire(&mut self, now: Instant) -> usize {
        let mut n = 0;
        while let Some((when, _, callid)) = self.order.first().cloned() {
            if when > now {
                break;
            }
            self.remove(&callid);
            n += 1;
        }
        n
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.order.first().map(|(when, _, _)| *when)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(max_entries: usize) -> Dialogs {
        Dialogs::new(Limits {
            max_entries,
            max_bytes: 1 << 20,
            lifetime: Duration::from_secs(3600),
        })
    }

    #[test]
    fn a_call_is_matched_both_ways_until_bye() {
        let t0 = Instant::now();
        let mut d = table(10);
        d.track("c1", "ft", Scope::Script, t0).unwrap();
        // An in-dialog request before the 2xx (PRACK, UPDATE) matches too.
        assert_eq!(
            d.lookup_request("c1", "ft", "tt", false, t0),
            Some(Scope::Script)
        );
        d.on_invite_reply("c1", "ft", 180, t0);
        d.on_invite_reply("c1", "ft", 200, t0);
        let later = t0 + Duration::from_secs(600);
        // Caller to callee, callee to caller; not another call, not a
        // stranger's tags.
        assert_eq!(
            d.lookup_request("c1", "ft", "tt", false, later),
            Some(Scope::Script)
        );
        assert_eq!(
            d.lookup_request("c1", "tt", "ft", false, later),
            Some(Scope::Script)
        );
        assert_eq!(d.lookup_request("c2", "ft", "tt", false, later), None);
        assert_eq!(d.lookup_request("c1", "x", "y", false, later), None);
        // A re-INVITE's failure does not end a confirmed dialog.
        d.on_invite_reply("c1", "ft", 491, later);
        assert_eq!(d.len(), 1);
        assert!(d.lookup_request("c1", "tt", "ft", true, later).is_some());
        let after_bye = later + ENDING_LIFETIME;
        assert_eq!(d.lookup_request("c1", "ft", "tt", false, after_bye), None);
        assert_eq!(d.expire(after_bye), 1);
        assert!(d.is_empty());
        assert_eq!(d.bytes(), 0);
    }

    #[test]
    fn failed_or_unanswered_invites_are_forgotten() {
        let t0 = Instant::now();
        let mut d = table(10);
        d.track("c1", "ft", Scope::Filter, t0).unwrap();
        d.on_invite_reply("c1", "ft", 486, t0);
        assert!(d.is_empty());
        d.track("c2", "ft", Scope::Filter, t0).unwrap();
        assert_eq!(d.next_deadline(), Some(t0 + EARLY_LIFETIME));
        assert_eq!(d.expire(t0 + EARLY_LIFETIME), 1);
        // A confirmed dialog lasts the lifetime, then is forgotten.
        d.track("c3", "ft", Scope::Script, t0).unwrap();
        d.track("c3", "ft", Scope::Filter, t0).unwrap();
        d.on_invite_reply("c3", "ft", 200, t0);
        assert_eq!(
            d.lookup_request("c3", "ft", "", false, t0),
            Some(Scope::Filter)
        );
        assert_eq!(d.expire(t0 + Duration::from_secs(3599)), 0);
        assert_eq!(d.expire(t0 + Duration::from_secs(3600)), 1);
    }

    #[test]
    fn bounded_in_entries_and_bytes() {
        let t0 = Instant::now();
        let mut d = table(3);
        for i in 0..3 {
            d.track(&format!("c{i}"), "ft", Scope::Script, t0).unwrap();
        }
        assert_eq!(d.track("c9", "ft", Scope::Script, t0), Err(Full::Entries));
        assert_eq!(d.len(), 3);
        let mut d = Dialogs::new(Limits {
            max_entries: 100,
            max_bytes: 2 * (ENTRY_OVERHEAD + 4),
            lifetime: Duration::from_secs(60),
        });
        d.track("c1", "ft", Scope::Script, t0).unwrap();
        d.track("c2", "ft", Scope::Script, t0).unwrap();
        assert_eq!(d.track("c3", "ft", Scope::Script, t0), Err(Full::Bytes));
        // Room comes back as dialogs expire.
        d.expire(t0 + Duration::from_secs(60));
        d.track("c3", "ft", Scope::Script, t0 + Duration::from_secs(60))
            .unwrap();
    }
}
