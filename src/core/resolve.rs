//! Turning a SIP host into a socket address.
//!
//! IP literals are parsed; names are looked up through the system resolver
//! and cached. The lookup is the one place the core may wait on the system
//! (getaddrinfo): names normally come from the config (next hops,
//! duplicate_uri) and are resolved at start-up; a name first seen in a
//! message costs one lookup, then one per `POSITIVE_TTL`. A failed lookup
//! is remembered only for `NEGATIVE_TTL`, so a name that did not resolve
//! during a DNS hiccup works again without a restart. getaddrinfo gives no
//! TTL, hence fixed ones. The reactor hands in the time (`set_now`); the
//! only clock read is the placeholder `Instant` of `Resolver::default`,
//! replaced before the first lookup. Not bounded yet: the cache keeps
//! every distinct name met (ARCHITECTURE.md, "state is bounded").

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

/// How long a resolved name is used before it is looked up again.
pub(crate) const POSITIVE_TTL: Duration = Duration::from_secs(300);
/// How long a name that did not resolve is answered "no address" at once.
pub(crate) const NEGATIVE_TTL: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct Resolver {
    cache: HashMap<String, (Option<IpAddr>, Instant)>,
    now: Instant,
}

impl Default for Resolver {
    fn default() -> Self {
        Resolver {
            cache: HashMap::new(),
            now: Instant::now(),
        }
    }
}

impl Resolver {
    /// The time of the event being handled (cache expiry).
    pub(crate) fn set_now(&mut self, now: Instant) {
        self.now = now;
    }

    pub fn resolve(&mut self, host: &str, port: u16) -> Option<SocketAddr> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Some(SocketAddr::new(ip, port));
        }
        if host.is_empty() {
            return None;
        }
        let key = host.to_ascii_lowercase();
        let ip = match self.cache.get(&key) {
            Some((hit, expires)) if *expires > self.now => *hit,
            _ => {
                let found = (key.as_str(), port)
                    .to_socket_addrs()
                    .ok()
                    .and_then(|mut it| it.next())
                    .map(|a| a.ip());
                let ttl = match found {
                    Some(_) => POSITIVE_TTL,
                    None => {
                        log::warn!(
                            "cannot resolve SIP host '{host}' (tried again in {NEGATIVE_TTL:?})"
                        );
                        NEGATIVE_TTL
                    }
                };
                self.cache.insert(key, (found, self.now + ttl));
                found
            }
        };
        ip.map(|ip| SocketAddr::new(ip, port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_names() {
        let mut r = Resolver::default();
        assert_eq!(
            r.resolve("10.0.0.1", 5060),
            Some("10.0.0.1:5060".parse().unwrap())
        );
        assert_eq!(
            r.resolve("[::1]", 5070),
            Some("[::1]:5070".parse().unwrap())
        );
        assert_eq!(r.resolve("::1", 5070), Some("[::1]:5070".parse().unwrap()));
        assert_eq!(r.resolve("localhost", 5080).map(|a| a.port()), Some(5080));
        assert_eq!(r.resolve("", 5060), None);
        assert_eq!(r.resolve("no-such-host.invalid", 5060), None);
    }

    #[test]
    fn answers_expire() {
        let t0 = Instant::now();
        let mut r = Resolver::default();
        r.set_now(t0);
        // A planted failure for a name that does resolve: served from the
        // cache until NEGATIVE_TTL has passed, then looked up again.
        r.cache
            .insert("localhost".into(), (None, t0 + NEGATIVE_TTL));
        assert_eq!(r.resolve("localhost", 5060), None);
        r.set_now(t0 + NEGATIVE_TTL);
        assert!(r.resolve("LocalHost", 5060).is_some());
        // A planted answer is used until POSITIVE_TTL, then refreshed.
        let fake: IpAddr = "192.0.2.7".parse().unwrap();
        r.cache
            .insert("localhost".into(), (Some(fake), t0 + POSITIVE_TTL));
        assert_eq!(r.resolve("localhost", 1).map(|a| a.ip()), Some(fake));
        r.set_now(t0 + POSITIVE_TTL);
        assert_ne!(r.resolve("localhost", 1).map(|a| a.ip()), Some(fake));
    }
}
