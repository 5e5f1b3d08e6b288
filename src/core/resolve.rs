//! Turning a SIP host into socket addresses, without waiting.
//!
//! Sans-IO: IP literals are parsed here; a name is answered from a bounded
//! cache, or a lookup is asked for (`take_queries`, an effect like the
//! core's sends) and the caller parks its work until the answer is handed
//! in (`on_answer`) or the lookup's deadline passes (`expire`). The
//! resolver thread (transport/dns.rs) does the network part: RFC 3263 for
//! a `sip:` host without port (SRV `_sip._udp`, NAPTR first when
//! `dns_try_naptr`), A/AAAA otherwise.
//!
//! Bounded (ARCHITECTURE.md, "state is bounded"): the positive and the
//! negative cache are LRUs capped in entries and bytes
//! ([`DnsLimits`]), evictions counted; lookups in flight are capped too
//! (a request that would need one more is refused by the caller with 503).
//! Positive answers live for their DNS TTL (capped at
//! [`DnsLimits::max_ttl`]); failures and timeouts for
//! [`DnsLimits::negative_ttl`], so a name that did not resolve during a
//! DNS hiccup works again without a restart. Time comes from the caller.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// What one lookup asks for: a lower-case name, and whether the RFC 3263
/// procedure applies (a `sip:` host with no port: NAPTR/SRV, whose answer
/// carries ports) or only A/AAAA (port from the URI).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Query {
    pub name: String,
    pub srv: bool,
}

impl Query {
    /// Bytes this key holds (cache and park accounting).
    fn cost(&self) -> usize {
        self.name.len() + std::mem::size_of::<Query>()
    }
}

/// What the resolver thread found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Addresses in the order to try. For an A/AAAA query the ports are 0
    /// (the caller's port applies); for an SRV query they are the SRV
    /// targets' ports (5060 when the name had no SRV and A/AAAA was used).
    /// `ttl`: the smallest TTL of the records used.
    Found {
        addrs: Vec<SocketAddr>,
        ttl: Duration,
    },
    /// No such name, no address, or the server failed.
    NotFound,
}

/// What the caller can do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Addresses to use, best first, ports applied.
    Ready(Vec<SocketAddr>),
    /// Asked (or already being asked): park the work under this query.
    Pending(Query),
    /// Known not to resolve (negative cache), or not a host at all.
    Failed,
    /// Too many lookups in flight: refuse the work (503).
    Busy,
}

/// Caps and timers. Defaults documented in docs/decisions.md §10.
#[derive(Debug, Clone)]
pub struct DnsLimits {
    /// A lookup not answered within this gives up (Kamailio's
    /// `dns_retr_time` × `dns_retr_no`: 2 s × 2).
    pub deadline: Duration,
    /// Lookups in flight at once.
    pub max_in_flight: usize,
    /// Positive cache: entries and bytes.
    pub positive_entries: usize,
    pub positive_bytes: usize,
    /// Negative cache: entries and bytes.
    pub negative_entries: usize,
    pub negative_bytes: usize,
    /// Longest a positive answer is used, whatever its TTL.
    pub max_ttl: Duration,
    /// How long a name that did not resolve is answered "no address".
    pub negative_ttl: Duration,
}

impl Default for DnsLimits {
    fn default() -> Self {
        DnsLimits {
            deadline: Duration::from_secs(4),
            max_in_flight: 1024,
            positive_entries: 4096,
            positive_bytes: 1 << 20,
            negative_entries: 4096,
            negative_bytes: 512 << 10,
            max_ttl: Duration::from_secs(3600),
            negative_ttl: Duration::from_secs(10),
        }
    }
}

/// Counters of the resolver (logged; see `DnsStats` users).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DnsStats {
    pub queries: u64,
    pub answers: u64,
    pub not_found: u64,
    pub timeouts: u64,
    pub hits: u64,
    pub busy: u64,
    pub evicted_positive: u64,
    pub evicted_negative: u64,
}

/// An LRU map bounded in entries and bytes; `V` tells its size.
#[derive(Debug)]
struct Lru<V> {
    map: HashMap<Query, (V, Instant, usize, u64)>,
    order: BTreeMap<u64, Query>,
    tick: u64,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
}

impl<V> Lru<V> {
    fn new(max_entries: usize, max_bytes: usize) -> Lru<V> {
        Lru {
            map: HashMap::new(),
            order: BTreeMap::new(),
            tick: 0,
            bytes: 0,
            max_entries: max_entries.max(1),
            max_bytes,
        }
    }

    /// The value if present and not expired (then most recently used);
    /// an expired entry is removed.
    fn get(&mut self, k: &Query, now: Instant) -> Option<&V> {
        let (_, expires, _, stamp) = self.map.get(k)?;
        if *expires <= now {
            self.remove(k);
            return None;
        }
        let old = *stamp;
        self.tick += 1;
        let tick = self.tick;
        self.order.remove(&old);
        self.order.insert(tick, k.clone());
        let e = self.map.get_mut(k)?;
        e.3 = tick;
        Some(&e.0)
    }

    fn remove(&mut self, k: &Query) {
        if let Some((_, _, cost, stamp)) = self.map.remove(k) {
            self.order.remove(&stamp);
            self.bytes -= cost;
        }
    }

    /// Inserts, evicting the least recently used entries beyond the caps;
    /// returns how many were evicted.
    fn insert(&mut self, k: Query, v: V, cost: usize, expires: Instant) -> u64 {
        self.remove(&k);
        self.tick += 1;
        self.order.insert(self.tick, k.clone());
        self.map.insert(k, (v, expires, cost, self.tick));
        self.bytes += cost;
        let mut evicted = 0;
        while self.map.len() > self.max_entries
            || (self.bytes > self.max_bytes && self.map.len() > 1)
        {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            if let Some((_, _, c, _)) = self.map.remove(&oldest) {
                self.bytes -= c;
            }
            evicted += 1;
        }
        evicted
    }

    fn len(&self) -> usize {
        self.map.len()
    }
}

#[derive(Debug)]
pub struct Resolver {
    limits: DnsLimits,
    positive: Lru<Vec<SocketAddr>>,
    negative: Lru<()>,
    /// Lookups asked and not answered yet, with their deadline.
    in_flight: HashMap<Query, Instant>,
    /// Asked but not yet handed to the resolver thread.
    outbox: Vec<Query>,
    stats: DnsStats,
}

impl Default for Resolver {
    fn default() -> Self {
        Resolver::new(DnsLimits::default())
    }
}

/// An IP literal (IPv6 with or without brackets).
pub(crate) fn ip_literal(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

impl Resolver {
    pub fn new(limits: DnsLimits) -> Resolver {
        Resolver {
            positive: Lru::new(limits.positive_entries, limits.positive_bytes),
            negative: Lru::new(limits.negative_entries, limits.negative_bytes),
            in_flight: HashMap::new(),
            outbox: Vec::new(),
            stats: DnsStats::default(),
            limits,
        }
    }

    pub fn stats(&self) -> &DnsStats {
        &self.stats
    }

    /// Cached entries (positive, negative).
    pub fn cached(&self) -> (usize, usize) {
        (self.positive.len(), self.negative.len())
    }

    /// Bytes of the caches (positive, negative).
    pub fn cached_bytes(&self) -> (usize, usize) {
        (self.positive.bytes, self.negative.bytes)
    }

    /// `host` (a name or an IP literal) with `port`; no port on a name
    /// means RFC 3263 (SRV; the answer carries ports), on an IP literal
    /// 5060.
    pub fn lookup(&mut self, host: &str, port: Option<u16>, now: Instant) -> Lookup {
        if let Some(ip) = ip_literal(host) {
            return Lookup::Ready(vec![SocketAddr::new(
                ip,
                port.unwrap_or(crate::sip::DEFAULT_PORT),
            )]);
        }
        let name = host.trim_end_matches('.').to_ascii_lowercase();
        if name.is_empty() {
            return Lookup::Failed;
        }
        let q = Query {
            name,
            srv: port.is_none(),
        };
        if let Some(addrs) = self.positive.get(&q, now) {
            self.stats.hits += 1;
            let addrs = match port {
                Some(p) => addrs.iter().map(|a| SocketAddr::new(a.ip(), p)).collect(),
                None => addrs.clone(),
            };
            return Lookup::Ready(addrs);
        }
        if self.negative.get(&q, now).is_some() {
            self.stats.hits += 1;
            return Lookup::Failed;
        }
        if self.in_flight.contains_key(&q) {
            return Lookup::Pending(q);
        }
        if self.in_flight.len() >= self.limits.max_in_flight {
            self.stats.busy += 1;
            return Lookup::Busy;
        }
        self.stats.queries += 1;
        self.in_flight.insert(q.clone(), now + self.limits.deadline);
        self.outbox.push(q.clone());
        Lookup::Pending(q)
    }

    /// Lookups to hand to the resolver thread.
    pub fn take_queries(&mut self) -> Vec<Query> {
        std::mem::take(&mut self.outbox)
    }

    /// The resolver thread's answer (maybe after the deadline: it is still
    /// cached). Returns the addresses to use (ports as in the answer), or
    /// None when the name did not resolve.
    pub fn on_answer(&mut self, q: &Query, a: Answer, now: Instant) -> Option<Vec<SocketAddr>> {
        self.in_flight.remove(q);
        match a {
            Answer::Found { addrs, ttl } if !addrs.is_empty() => {
                self.stats.answers += 1;
                let ttl = ttl.min(self.limits.max_ttl);
                let cost = q.cost() + addrs.len() * std::mem::size_of::<SocketAddr>() + 64;
                self.negative.remove(q);
                if !ttl.is_zero() {
                    self.stats.evicted_positive +=
                        self.positive
                            .insert(q.clone(), addrs.clone(), cost, now + ttl);
                }
                Some(addrs)
            }
            _ => {
                self.stats.not_found += 1;
                log::warn!(
                    "cannot resolve SIP host '{}'{} (tried again in {:?})",
                    q.name,
                    if q.srv { " (SRV, A/AAAA)" } else { "" },
                    self.limits.negative_ttl
                );
                self.remember_failure(q, now);
                None
            }
        }
    }

    fn remember_failure(&mut self, q: &Query, now: Instant) {
        self.positive.remove(q);
        let cost = q.cost() + 64;
        self.stats.evicted_negative +=
            self.negative
                .insert(q.clone(), (), cost, now + self.limits.negative_ttl);
    }

    /// Lookups whose deadline has passed: given up (and remembered as
    /// failed for `negative_ttl`), returned so their parked work is
    /// answered.
    pub fn expire(&mut self, now: Instant) -> Vec<Query> {
        let mut gone: Vec<Query> = self
            .in_flight
            .iter()
            .filter(|(_, d)| **d <= now)
            .map(|(q, _)| q.clone())
            .collect();
        gone.sort();
        for q in &gone {
            self.in_flight.remove(q);
            self.stats.timeouts += 1;
            log::warn!(
                "no answer for SIP host '{}' within {:?}: given up (tried again in {:?})",
                q.name,
                self.limits.deadline,
                self.limits.negative_ttl
            );
            self.remember_failure(q, now);
        }
        gone
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.in_flight.values().min().copied()
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(ip: &str, ttl: u64) -> Answer {
        Answer::Found {
            addrs: vec![SocketAddr::new(ip.parse().unwrap(), 0)],
            ttl: Duration::from_secs(ttl),
        }
    }

    #[test]
    fn literals_need_no_lookup() {
        let t0 = Instant::now();
        let mut r = Resolver::default();
        assert_eq!(
            r.lookup("10.0.0.1", Some(5060), t0),
            Lookup::Ready(vec!["10.0.0.1:5060".parse().unwrap()])
        );
        assert_eq!(
            r.lookup("[::1]", Some(5070), t0),
            Lookup::Ready(vec!["[::1]:5070".parse().unwrap()])
        );
        assert_eq!(
            r.lookup("::1", None, t0),
            Lookup::Ready(vec!["[::1]:5060".parse().unwrap()])
        );
        assert_eq!(r.lookup("", Some(5060), t0), Lookup::Failed);
        assert!(r.take_queries().is_empty());
    }

    #[test]
    fn a_name_is_asked_once_then_cached_for_its_ttl() {
        let t0 = Instant::now();
        let mut r = Resolver::default();
        let q = Query {
            name: "proxy.example".into(),
            srv: false,
        };
        assert_eq!(
            r.lookup("Proxy.Example", Some(5080), t0),
            Lookup::Pending(q.clone())
        );
        assert_eq!(
            r.lookup("proxy.example", Some(5090), t0),
            Lookup::Pending(q.clone())
        );
        assert_eq!(r.take_queries(), vec![q.clone()]);
        r.on_answer(&q, found("192.0.2.7", 30), t0);
        assert_eq!(
            r.lookup("proxy.example", Some(5080), t0),
            Lookup::Ready(vec!["192.0.2.7:5080".parse().unwrap()])
        );
        // The TTL passes: asked again.
        let t1 = t0 + Duration::from_secs(30);
        assert_eq!(
            r.lookup("proxy.example", Some(5080), t1),
            Lookup::Pending(q.clone())
        );
        assert_eq!(r.take_queries(), vec![q]);
    }

    #[test]
    fn srv_answers_keep_their_ports_and_differ_from_host_queries() {
        let t0 = Instant::now();
        let mut r = Resolver::default();
        let Lookup::Pending(q) = r.lookup("example.test", None, t0) else {
            panic!()
        };
        assert!(q.srv);
        let a: SocketAddr = "127.0.0.1:5999".parse().unwrap();
        r.on_answer(
            &q,
            Answer::Found {
                addrs: vec![a],
                ttl: Duration::from_secs(60),
            },
            t0,
        );
        assert_eq!(r.lookup("example.test", None, t0), Lookup::Ready(vec![a]));
        assert!(matches!(
            r.lookup("example.test", Some(5060), t0),
            Lookup::Pending(Query { srv: false, .. })
        ));
    }

    #[test]
    fn failures_and_timeouts_are_remembered_for_the_negative_ttl() {
        let t0 = Instant::now();
        let lim = DnsLimits::default();
        let mut r = Resolver::new(lim.clone());
        let Lookup::Pending(q) = r.lookup("gone.example", Some(5060), t0) else {
            panic!()
        };
        r.on_answer(&q, Answer::NotFound, t0);
        assert_eq!(r.lookup("gone.example", Some(5060), t0), Lookup::Failed);
        let later = t0 + lim.negative_ttl;
        assert!(matches!(
            r.lookup("gone.example", Some(5060), later),
            Lookup::Pending(_)
        ));
        // Never answered: given up at the deadline.
        assert_eq!(r.next_deadline(), Some(later + lim.deadline));
        assert!(
            r.expire(later + lim.deadline - Duration::from_millis(1))
                .is_empty()
        );
        assert_eq!(r.expire(later + lim.deadline), vec![q]);
        assert_eq!(r.stats().timeouts, 1);
        assert_eq!(
            r.lookup("gone.example", Some(5060), later + lim.deadline),
            Lookup::Failed
        );
        assert_eq!(r.next_deadline(), None);
    }

    #[test]
    fn lookups_in_flight_are_capped() {
        let t0 = Instant::now();
        let mut r = Resolver::new(DnsLimits {
            max_in_flight: 2,
            ..DnsLimits::default()
        });
        assert!(matches!(
            r.lookup("a.example", Some(1), t0),
            Lookup::Pending(_)
        ));
        assert!(matches!(
            r.lookup("b.example", Some(1), t0),
            Lookup::Pending(_)
        ));
        assert_eq!(r.lookup("c.example", Some(1), t0), Lookup::Busy);
        // Joining a lookup already asked needs no new slot.
        assert!(matches!(
            r.lookup("a.example", Some(2), t0),
            Lookup::Pending(_)
        ));
        assert_eq!(r.stats().busy, 1);
    }

    /// 64 000 distinct random names, half answered and half failing: both
    /// caches stay within their entry and byte caps, evictions counted.
    #[test]
    fn random_names_stay_within_the_bounds() {
        let t0 = Instant::now();
        let lim = DnsLimits::default();
        let mut r = Resolver::new(DnsLimits {
            max_in_flight: 64,
            ..lim.clone()
        });
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for i in 0..64_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let name = format!("{x:016x}.{i}.attacker.example");
            let Lookup::Pending(q) = r.lookup(&name, Some(5060), t0) else {
                panic!("{name} not asked")
            };
            let a = if i % 2 == 0 {
                found("192.0.2.1", 300)
            } else {
                Answer::NotFound
            };
            r.on_answer(&q, a, t0);
            let (p, n) = r.cached();
            assert!(p <= lim.positive_entries && n <= lim.negative_entries);
            let (pb, nb) = r.cached_bytes();
            assert!(pb <= lim.positive_bytes && nb <= lim.negative_bytes);
        }
        assert!(r.take_queries().len() == 64_000);
        let s = r.stats();
        assert!(s.evicted_positive >= 32_000 - lim.positive_entries as u64);
        assert!(s.evicted_negative >= 32_000 - lim.negative_entries as u64);
        // Recently used names are still there; the oldest were evicted.
        assert_eq!(r.in_flight(), 0);
    }

    #[test]
    fn lru_keeps_what_is_used() {
        let t0 = Instant::now();
        let mut r = Resolver::new(DnsLimits {
            positive_entries: 2,
            ..DnsLimits::default()
        });
        let ask = |r: &mut Resolver, n: &str| {
            let Lookup::Pending(q) = r.lookup(n, Some(1), t0) else {
                panic!()
            };
            r.on_answer(&q, found("192.0.2.1", 60), t0);
        };
        ask(&mut r, "a.example");
        ask(&mut r, "b.example");
        assert!(matches!(
            r.lookup("a.example", Some(1), t0),
            Lookup::Ready(_)
        ));
        ask(&mut r, "c.example");
        assert!(matches!(
            r.lookup("a.example", Some(1), t0),
            Lookup::Ready(_)
        ));
        assert!(matches!(
            r.lookup("b.example", Some(1), t0),
            Lookup::Pending(_)
        ));
        assert_eq!(r.stats().evicted_positive, 1);
    }
}
