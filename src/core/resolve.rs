//! Turning a SIP host into a socket address.
//!
//! IP literals are parsed; names are looked up once through the system
//! resolver and cached for the life of the process. The lookup is the one
//! place the core may wait on the system (getaddrinfo): names normally
//! come from the config (next hops, duplicate_uri) and are resolved at
//! start-up; a name first seen in a message costs one lookup.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

#[derive(Debug, Default)]
pub struct Resolver {
    cache: HashMap<String, Option<IpAddr>>,
}

impl Resolver {
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
            Some(hit) => *hit,
            None => {
                let found = (key.as_str(), port)
                    .to_socket_addrs()
                    .ok()
                    .and_then(|mut it| it.next())
                    .map(|a| a.ip());
                if found.is_none() {
                    log::warn!("cannot resolve SIP host '{host}'");
                }
                self.cache.insert(key, found);
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
}
