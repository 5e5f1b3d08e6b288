//! The resolver thread: DNS never runs on the reactor's thread.
//!
//! One thread runs a current-thread tokio runtime with hickory-resolver;
//! each query the core asked for (`core::Query`) becomes a task, so a
//! name server that never answers holds up only its own lookups. Answers
//! go back through a channel and wake the reactor with a `mio::Waker`
//! (`TOKEN_WAKE`, shared with the trace writer); the reactor hands them to `Core::on_resolved`.
//!
//! RFC 3263 for a `sip:` host without port (`Query::srv`): NAPTR first
//! when `dns_try_naptr` (the `SIP+D2U` records, lowest order/preference,
//! naming the SRV name), then SRV `_sip._udp.NAME` (targets by priority,
//! then weight, each resolved to A/AAAA), and when there is no SRV the
//! name's own A/AAAA at 5060. Other queries: A/AAAA only. hickory's own
//! cache is left small (its default, 32 entries): the core's bounded LRU
//! is the cache that counts.
//!
//! Bounded: the core caps the lookups in flight (resolve.rs), so the
//! request channel holds at most that many; each lookup is bounded by
//! `dns_retr_time` per try and `dns_retr_no` tries.

use crate::config::{DnsConfig, DnsServers};
use crate::core::{Answer, Query};
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::proto::xfer::Protocol;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum DnsError {
    #[error("dns_resolv_conf {path}: {err}")]
    ResolvConf {
        path: String,
        #[source]
        err: std::io::Error,
    },
    #[error("{what}: {err}")]
    Config { what: String, err: String },
    #[error("cannot start the resolver thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// How many SRV targets are resolved for one name.
const MAX_SRV_TARGETS: usize = 4;

pub struct DnsThread {
    queries: Option<tokio::sync::mpsc::UnboundedSender<Query>>,
    answers: mpsc::Receiver<(Query, Answer)>,
    handle: Option<std::thread::JoinHandle<()>>,
}

/// The resolver configuration and options `cfg` asks for.
fn resolver_config(cfg: &DnsConfig) -> Result<(ResolverConfig, ResolverOpts), DnsError> {
    let (conf, mut opts) = match &cfg.servers {
        // A host without /etc/resolv.conf still starts: /etc/hosts and
        // IP literals work, other names fail (478), as they would with
        // getaddrinfo.
        DnsServers::System => match hickory_resolver::system_conf::read_system_conf() {
            Ok(c) => c,
            Err(e) => {
                log::warn!("/etc/resolv.conf: {e}; only /etc/hosts names will resolve");
                (ResolverConfig::new(), ResolverOpts::default())
            }
        },
        DnsServers::ResolvConf(path) => {
            let text = std::fs::read(path).map_err(|err| DnsError::ResolvConf {
                path: path.display().to_string(),
                err,
            })?;
            hickory_resolver::system_conf::parse_resolv_conf(text).map_err(|e| {
                DnsError::Config {
                    what: format!("dns_resolv_conf {}", path.display()),
                    err: e.to_string(),
                }
            })?
        }
        DnsServers::Servers(addrs) => {
            let mut c = ResolverConfig::new();
            for a in addrs {
                c.add_name_server(NameServerConfig::new(*a, Protocol::Udp));
                c.add_name_server(NameServerConfig::new(*a, Protocol::Tcp));
            }
            (c, ResolverOpts::default())
        }
    };
    opts.timeout = cfg.retr_time;
    opts.attempts = cfg.retr_no as usize;
    Ok((conf, opts))
}

impl DnsThread {
    /// Starts the thread; `waker` wakes the reactor when answers are
    /// waiting. Configuration errors (an unreadable resolv.conf) are
    /// start-up errors.
    pub fn start(cfg: &DnsConfig, waker: Arc<mio::Waker>) -> Result<DnsThread, DnsError> {
        let (conf, opts) = resolver_config(cfg)?;
        let try_naptr = cfg.try_naptr;
        let (qtx, mut qrx) = tokio::sync::mpsc::unbounded_channel::<Query>();
        let (atx, arx) = mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("siptraced-dns".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        log::error!("resolver thread: no runtime ({e}); names will not resolve");
                        return;
                    }
                };
                let local = tokio::task::LocalSet::new();
                local.block_on(&rt, async move {
                    let resolver = Arc::new(
                        TokioResolver::builder_with_config(
                            conf,
                            TokioConnectionProvider::default(),
                        )
                        .with_options(opts)
                        .build(),
                    );
                    while let Some(q) = qrx.recv().await {
                        let resolver = resolver.clone();
                        let atx = atx.clone();
                        let waker = waker.clone();
                        tokio::task::spawn_local(async move {
                            let a = rfc3263(&resolver, &q, try_naptr).await;
                            if atx.send((q, a)).is_ok() {
                                if let Err(e) = waker.wake() {
                                    log::error!("resolver thread cannot wake the reactor: {e}");
                                }
                            }
                        });
                    }
                });
            })
            .map_err(DnsError::Thread)?;
        Ok(DnsThread {
            queries: Some(qtx),
            answers: arx,
            handle: Some(handle),
        })
    }

    /// Hands a lookup to the thread.
    pub fn ask(&self, q: Query) {
        if let Some(tx) = &self.queries {
            if tx.send(q).is_err() {
                log::error!("resolver thread is gone: lookup not made");
            }
        }
    }

    /// The answers that arrived (non-blocking).
    pub fn answers(&self) -> Vec<(Query, Answer)> {
        self.answers.try_iter().collect()
    }
}

impl Drop for DnsThread {
    /// Closing the request channel ends the thread's loop; lookups still
    /// running are dropped with the runtime.
    fn drop(&mut self) {
        self.queries = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn ttl_of(valid_until: Instant) -> Duration {
    valid_until.saturating_duration_since(Instant::now())
}

/// A/AAAA of `name`, ports 0.
async fn addresses(r: &TokioResolver, name: &str) -> Option<(Vec<SocketAddr>, Duration)> {
    let found = r.lookup_ip(name).await.ok()?;
    let ttl = ttl_of(found.valid_until());
    let addrs: Vec<SocketAddr> = found.iter().map(|ip| SocketAddr::new(ip, 0)).collect();
    (!addrs.is_empty()).then_some((addrs, ttl))
}

/// SRV records of `srv_name`, targets resolved, best first.
async fn srv(r: &TokioResolver, srv_name: &str) -> Option<(Vec<SocketAddr>, Duration)> {
    let found = r.srv_lookup(srv_name).await.ok()?;
    let mut ttl = ttl_of(found.as_lookup().valid_until());
    let mut recs: Vec<_> = found.iter().cloned().collect();
    // RFC 2782: lowest priority first; among equals, heavier first (a
    // fixed order rather than a weighted draw: the core keeps one answer
    // per TTL anyway).
    recs.sort_by_key(|s| (s.priority(), std::cmp::Reverse(s.weight())));
    let mut out = Vec::new();
    for s in recs.iter().take(MAX_SRV_TARGETS) {
        let target = s.target().to_ascii();
        if target == "." {
            continue;
        }
        if let Some((addrs, t)) = addresses(r, &target).await {
            ttl = ttl.min(t);
            out.extend(addrs.into_iter().map(|a| SocketAddr::new(a.ip(), s.port())));
        }
    }
    (!out.is_empty()).then_some((out, ttl))
}

/// RFC 3263 §4.1 NAPTR for UDP: the replacement of the best `SIP+D2U`
/// record with flag `s`.
async fn naptr_udp(r: &TokioResolver, name: &str) -> Option<String> {
    let found = r.lookup(name, RecordType::NAPTR).await.ok()?;
    found
        .iter()
        .filter_map(|rd| match rd {
            RData::NAPTR(n)
                if n.flags().eq_ignore_ascii_case(b"s")
                    && n.services().eq_ignore_ascii_case(b"SIP+D2U") =>
            {
                Some((n.order(), n.preference(), n.replacement().to_ascii()))
            }
            _ => None,
        })
        .min()
        .map(|(_, _, repl)| repl)
}

async fn rfc3263(r: &TokioResolver, q: &Query, try_naptr: bool) -> Answer {
    let name = q.name.as_str();
    let found = if q.srv {
        let mut found = None;
        if try_naptr {
            if let Some(srv_name) = naptr_udp(r, name).await {
                found = srv(r, &srv_name).await;
            }
        }
        if found.is_none() {
            found = srv(r, &format!("_sip._udp.{name}")).await;
        }
        match found {
            Some(f) => Some(f),
            // No SRV: the name's own addresses, at 5060 (RFC 3263 §4.2).
            None => addresses(r, name).await.map(|(a, ttl)| {
                let a = a
                    .into_iter()
                    .map(|x| SocketAddr::new(x.ip(), crate::sip::DEFAULT_PORT))
                    .collect();
                (a, ttl)
            }),
        }
    } else {
        addresses(r, name).await
    };
    match found {
        Some((addrs, ttl)) => Answer::Found { addrs, ttl },
        None => Answer::NotFound,
    }
}
