//! Start-up and shutdown around the reactor: daemonises (the foreground
//! process waits for the outcome), binds the listeners, creates the FIFOs,
//! drops privileges, opens the database and writes the pid file — in that
//! order: what needs root (binding, FIFO owners) comes before the drop, what
//! creates the daemon's own files (database, pid file) after it, and every
//! start-up error reaches the terminal before the foreground process exits
//! — then runs the reactor and cleans up.
//!
//! The one module that wires the others together, so it may use any of
//! them; only main.rs uses it. It decides nothing about the config that
//! the config alone could decide (config.rs did, at load): what is left
//! here needs the host — binding, interface addresses, DNS, users.

use crate::cfg::Diagnostic;
use crate::cli::Args;
use crate::config::{Config, SiptraceParams, is_wildcard};
use crate::core::{Core, CoreSettings, LocalSock};
use crate::db;
use crate::process::{self, Detached, PidFile};
use crate::reactor::control::{Control, ControlError, ControlSettings};
use crate::reactor::{Reactor, ReactorError};
use crate::script::Program;
use crate::sip::Transport;
use crate::spool::location;
use crate::spool::{DbTarget, SinkSettings, Spool, SpoolOptions, TraceSink};
use crate::trace::dup::DupTarget;
use crate::trace::mirror::{HepSettings, MirrorDest, MirrorSettings};
use crate::trace::{TraceSettings, Tracer};
use crate::transport::tcp::StreamListener;
use crate::transport::{Listener, TransportError};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum SetupError {
    /// A listen socket could not be bound; the error names the address.
    #[error("{0}")]
    Bind(TransportError),
    #[error("cannot list interface addresses: {0}")]
    Interfaces(#[source] nix::Error),
    #[error("listen={host}: cannot resolve: {err}")]
    ListenResolve {
        host: String,
        #[source]
        err: std::io::Error,
    },
    #[error("listen={host}: no address")]
    ListenNoAddress { host: String },
    #[error("no UDP or TCP socket to listen on: add listen=udp:IP:PORT")]
    NoUdpListen,
    #[error(transparent)]
    Tls(#[from] crate::transport::tls::TlsError),
    #[error(
        "cannot listen on {proto}:{addr}: {err} (is another process on that port, or is the address not on this host?)"
    )]
    BindStream {
        proto: Transport,
        addr: SocketAddr,
        #[source]
        err: std::io::Error,
    },
    #[error("duplicate_uri {uri}: cannot resolve '{}': {err}", uri.host)]
    DuplicateResolve {
        uri: DupTarget,
        #[source]
        err: std::io::Error,
    },
    #[error("duplicate_uri {uri}: '{}' has no address", uri.host)]
    DuplicateNoAddress { uri: DupTarget },
    #[error(
        "duplicate_uri {uri}: no listen socket of the address family of {ip} to send copies from; \
         add a listen=udp:… socket of that family"
    )]
    DuplicateFamily { uri: DupTarget, ip: IpAddr },
    /// A config value refused at start-up, where only the host could decide
    /// (send_sock_addr on a wildcard listen): positioned like a load error,
    /// and exit code 1 like one.
    #[error("{0}")]
    Config(Diagnostic),
    #[error("database: {0}")]
    Db(#[from] db::DbError),
    #[error(transparent)]
    Spool(#[from] crate::spool::SpoolError),
    #[error(transparent)]
    FilterFile(#[from] crate::reactor::filter_file::FilterFileError),
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error(transparent)]
    Process(#[from] process::ProcessError),
    #[error("{0}")]
    Reactor(ReactorError),
    #[error(
        "metrics_listen={addr}: cannot listen: {err}; pick a free port or remove metrics_listen"
    )]
    MetricsListen {
        addr: std::net::SocketAddr,
        #[source]
        err: std::io::Error,
    },
    #[error("dns: {0}")]
    Dns(#[from] crate::transport::dns::DnsError),
}

pub struct Runtime {
    reactor: Reactor,
    _pid: Option<PidFile>,
}

impl Runtime {
    pub fn run(&mut self) -> Result<(), ReactorError> {
        let r = self.reactor.run();
        self.reactor.control.remove_fifos();
        log::info!("stopped");
        r
    }
}

/// Start-up, in the order the module doc gives. `debug` is the Kamailio
/// level in force (after `-d`), for MI `debug`.
pub fn setup(
    args: &Args,
    conf: Config,
    program: Program,
    debug: i32,
) -> Result<Runtime, SetupError> {
    if program.onsend_route().is_some() {
        log::warn!(
            "onsend_route is accepted but not run: trace sent messages with the trace flag instead"
        );
    }
    // Forked first, so that everything below belongs to the daemon process;
    // the foreground process waits and reports (process::daemonise).
    let detached = if !args.foreground && conf.fork {
        Some(process::daemonise()?)
    } else {
        None
    };
    let listeners = bind_listeners(&conf)?;
    let streams = bind_stream_listeners(&conf, listeners.len())?;
    // TLS certificates are read here, before privileges are dropped (a
    // key readable by root only, as Kamailio allows).
    let serve_tls = streams.iter().any(|(_, l)| l.proto == Transport::Tls);
    let tls = if conf.enable_tls && conf.module_loaded("tls") {
        Some(crate::transport::tls::TlsContext::load(
            &conf.tls, serve_tls,
        )?)
    } else {
        None
    };
    if listeners.is_empty() && streams.is_empty() {
        return Err(SetupError::NoUdpListen);
    }
    // The core's socket list: the UDP sockets first (their indices are the
    // reactor's), then the stream ones.
    let udp_socks = local_socks(&listeners);
    let mut socks = udp_socks.clone();
    socks.extend(stream_socks(&streams));
    let st = conf.siptrace.clone().unwrap_or_default();
    let mirror = mirror_settings(&conf, &st, &udp_socks)?;
    // A TCP duplicate_uri is one kept connection, which the reactor opens.
    let mirror_stream = mirror
        .duplicate
        .filter(|d| d.transport == Transport::Tcp)
        .map(|d| {
            let bind = mirror
                .send_sock
                .filter(|a| a.is_ipv4() == d.addr.is_ipv4())
                .map(|a| a.ip());
            (d.addr, bind)
        });
    let mut core = build_core(&conf, &st, program, socks, mirror);

    let (uid, gid) = process::lookup_ids(
        args.user.as_deref().or(conf.user.as_deref()),
        args.group.as_deref().or(conf.group.as_deref()),
    )?;
    let mut control = Control::create(ControlSettings::from_config(&conf, debug), uid, gid)?;
    // From here on a failed start removes the FIFOs it made: an operator
    // (or kamctl) must not find a FIFO that nobody reads.
    let sink = process::drop_privileges(uid, gid)
        .map_err(SetupError::from)
        .and_then(|()| open_sink(&conf, &st));
    let sink = match sink {
        Ok(s) => s,
        Err(e) => {
            control.remove_fifos();
            return Err(e);
        }
    };
    let filter_file = match restore_filters(&conf, &st, &sink, &mut core) {
        Ok(p) => p,
        Err(e) => {
            control.remove_fifos();
            return Err(e);
        }
    };
    let mut reactor = Reactor::new(listeners, core, control, sink).map_err(SetupError::Reactor)?;
    reactor.set_filter_file(filter_file);
    reactor
        .serve_streams(streams, conf.tcp, tls)
        .map_err(SetupError::Reactor)?;
    reactor.set_mirror_queue_bytes(st.mirror_tcp_queue_kb as usize * 1024);
    reactor.start_dns(&conf.dns)?;
    reactor.set_turn_limits(
        conf.udp_turn_datagrams as usize,
        conf.udp_turn_kb as usize * 1024,
    );
    if let Some(addr) = conf.metrics_listen {
        let local = reactor
            .listen_metrics(addr)
            .map_err(|err| SetupError::MetricsListen { addr, err })?;
        log::info!("metrics: serving GET /metrics on {local}");
    }
    if let Some((addr, bind)) = mirror_stream {
        reactor.open_mirror_stream(addr, bind);
    }
    finish(args, detached, reactor)
}

/// The pid file, the "started" line, and the foreground process released.
fn finish(
    args: &Args,
    detached: Option<Detached>,
    reactor: Reactor,
) -> Result<Runtime, SetupError> {
    let pid = match &args.pid_file {
        Some(p) => Some(PidFile::write(&PathBuf::from(p))?),
        None => None,
    };
    log::info!(
        "siptraced {} started (pid {})",
        crate::VERSION,
        std::process::id()
    );
    if let Some(d) = detached {
        d.ready();
    }
    Ok(Runtime { reactor, _pid: pid })
}

/// The stream sockets as the core sees them (their index follows the UDP
/// sockets').
fn stream_socks(streams: &[(usize, StreamListener)]) -> Vec<LocalSock> {
    streams
        .iter()
        .map(|(_, l)| {
            let (h, p) = match &l.advertise {
                Some((h, p)) => (h.clone(), *p),
                None => (l.local.ip().to_string(), l.local.port()),
            };
            let sip_host = if h.contains(':') && !h.starts_with('[') {
                format!("[{h}]")
            } else {
                h
            };
            log::info!("listening on {}:{}", l.proto.as_str(), l.local);
            LocalSock {
                proto: l.proto,
                addr: l.local,
                sip_host,
                sip_port: p,
            }
        })
        .collect()
}

fn local_socks(listeners: &[Listener]) -> Vec<LocalSock> {
    let socks: Vec<LocalSock> = listeners
        .iter()
        .map(|l| {
            let (h, p) = l.sip_hostport();
            let sip_host = if h.contains(':') && !h.starts_with('[') {
                format!("[{h}]")
            } else {
                h
            };
            LocalSock {
                proto: l.proto,
                addr: l.local,
                sip_host,
                sip_port: p,
            }
        })
        .collect();
    for s in &socks {
        log::info!("listening on {}:{}", s.proto.as_str(), s.addr);
    }
    socks
}

/// Where copies go, how they are wrapped and where they leave from,
/// decided with the bound sockets.
fn mirror_settings(
    conf: &Config,
    st: &SiptraceParams,
    socks: &[LocalSock],
) -> Result<MirrorSettings, SetupError> {
    let send_sock = match st.send_sock_addr {
        Some(a) => Some(local_send_sock(conf, a, socks)?),
        None => None,
    };
    let duplicate = match &st.duplicate_uri {
        Some(u) => Some(resolve_duplicate(u, socks)?),
        None => None,
    };
    Ok(MirrorSettings {
        duplicate,
        hep: st.hep_mode_on.then(|| HepSettings {
            version: st.hep_version(),
            capture_id: st.hep_capture_id,
            auth_key: st.auth_key.clone(),
        }),
        send_sock,
    })
}

fn build_core(
    conf: &Config,
    st: &SiptraceParams,
    program: Program,
    socks: Vec<LocalSock>,
    mirror: MirrorSettings,
) -> Core {
    let traced = conf.siptrace.is_some();
    let settings = CoreSettings {
        trace_flag: st.trace_flag,
        traced_user_avp: st.traced_user_avp.clone(),
        trace_table_avp: st.trace_table_avp.clone(),
        trace_sl_acks: st.trace_sl_acks,
        aliases: conf.aliases.clone(),
        // The config holds the whole line (Kamailio's server_header); the
        // reply builder wants the value.
        server_header: conf.server_header_line().map(|l| match l.split_once(':') {
            Some((name, v)) if name.trim().eq_ignore_ascii_case("server") => v.trim().to_string(),
            _ => l,
        }),
        mirror,
        memory_cap: crate::core::memory::DEFAULT_MEMORY_ENTRIES,
        memory_bytes: crate::core::memory::DEFAULT_MEMORY_BYTES,
        dns: crate::core::DnsLimits {
            deadline: conf.dns.deadline(),
            ..crate::core::DnsLimits::default()
        },
        park: crate::core::ParkLimits::default(),
        dialogs: st.dialogs,
        filter_max_ttl: st.filter_max_ttl.as_secs(),
        trace_mode: if traced { st.trace_mode } else { 0 },
        udp_mtu: (conf.udp_mtu > 0 && conf.udp_mtu_try_proto != Transport::Udp)
            .then_some((conf.udp_mtu as usize, conf.udp_mtu_try_proto)),
        double_rr: conf.rr.enable_double_rr,
    };
    let tracer = Tracer::new(
        if traced { st.trace_on } else { 0 },
        TraceSettings {
            trace_local_ip: st.trace_local_ip.clone(),
            trace_to_database: st.trace_to_database,
            mask: st.mask.clone(),
        },
    );
    let seed = {
        let t = crate::clock::WallTime::now();
        (t.sec as u64) << 20 ^ u64::from(t.usec) ^ u64::from(std::process::id()) << 40
    };
    Core::new(program, settings, socks, tracer, conf.tm.clone(), seed)
}

/// Opened as the user we run as (as Kamailio's child processes do), so
/// that a new SQLite file, its -wal/-shm companions, db_text files and
/// the spool belong to that user and stay writable. An unreachable
/// database is not fatal (it is retried, rows are spooled meanwhile).
fn open_sink(conf: &Config, st: &SiptraceParams) -> Result<TraceSink, SetupError> {
    if conf.siptrace.is_none() || !st.trace_to_database {
        return Ok(TraceSink::disabled(Instant::now()));
    }
    let db_target = DbTarget {
        url: st.db_url.clone(),
        table: st.table.clone(),
        opts: db::OpenOptions {
            connect_timeout: Duration::from_millis(u64::from(st.db_connect_timeout_ms)),
            ..db::OpenOptions::default()
        },
    };
    let database = open_database(&db_target)?;
    let spool = open_spool(st)?;
    let settings = SinkSettings {
        batch_rows: st.db_batch_rows as usize,
        policy: st.spool_full_policy,
        flush_delay: Duration::from_millis(u64::from(st.db_flush_ms)),
    };
    let mut sink = TraceSink::new(
        db_target,
        database,
        Some(spool),
        settings,
        Instant::now(),
        crate::clock::WallTime::now(),
    );
    sink.set_retention(st.retention.clone(), Instant::now());
    Ok(sink)
}

/// The runtime trace filters' state file (docs/decisions.md §16):
/// `filter_file`, else `trace-filters` in the spool directory (the
/// daemon's own, checked like the spool); none without either, and then
/// filters last until a restart (logged). Filters of the previous run are
/// restored with their remaining TTL.
fn restore_filters(
    conf: &Config,
    st: &SiptraceParams,
    sink: &TraceSink,
    core: &mut Core,
) -> Result<Option<PathBuf>, SetupError> {
    if conf.siptrace.is_none() {
        return Ok(None);
    }
    let path = match (&st.filter_file, sink.spool_dir()) {
        (Some(f), _) => PathBuf::from(f),
        (None, Some(dir)) => dir.join("trace-filters"),
        (None, None) => {
            log::info!(
                "trace filters are not kept across restarts: no spool directory \
                 (set modparam(\"siptrace\", \"filter_file\", path) to keep them)"
            );
            return Ok(None);
        }
    };
    if let Some(text) = crate::reactor::filter_file::load(&path)? {
        for bad in core.restore_filters(&text, crate::clock::WallTime::now()) {
            log::warn!("{}: unreadable filter {bad}: skipped", path.display());
        }
    }
    log::info!("trace filters kept in {}", path.display());
    Ok(Some(path))
}

/// send_sock_addr must be one of the sockets we listen on: copies leave
/// from it. config.rs refused what the listens alone decide; a wildcard
/// (or named) listen is decided here, with the sockets actually bound,
/// and reported at the value like a load error.
fn local_send_sock(
    conf: &Config,
    a: SocketAddr,
    socks: &[LocalSock],
) -> Result<SocketAddr, SetupError> {
    if socks.iter().any(|s| s.addr == a) {
        return Ok(a);
    }
    let have: Vec<String> = socks.iter().map(|s| format!("udp:{}", s.addr)).collect();
    let msg = format!(
        "modparam siptrace.send_sock_addr: {a} is not a listen socket (listening on {})",
        have.join(", ")
    );
    Err(match &conf.siptrace_pos.send_sock_addr {
        Some(pos) => SetupError::Config(Diagnostic::at(pos, msg)),
        // Only a config built without positions (never from a file).
        None => SetupError::Config(Diagnostic {
            file: String::new(),
            line: 0,
            col: 0,
            message: msg,
        }),
    })
}

/// duplicate_uri to an address, resolved once here (config.rs parsed
/// it). A UDP copy leaves from a listener of the destination's family,
/// so a name resolves to the first address of a family we listen on.
/// This blocking lookup is a start-up step, like Kamailio's: it runs in
/// `setup` before the reactor exists, never in the loop (names met in
/// messages go to the resolver thread, transport/dns.rs).
fn resolve_duplicate(t: &DupTarget, socks: &[LocalSock]) -> Result<MirrorDest, SetupError> {
    let found: Vec<SocketAddr> = match t.socket_addr() {
        Some(a) => vec![a],
        None => (t.host.as_str(), t.port)
            .to_socket_addrs()
            .map_err(|err| SetupError::DuplicateResolve {
                uri: t.clone(),
                err,
            })?
            .collect(),
    };
    let usable = |a: &SocketAddr| {
        t.transport == Transport::Tcp || socks.iter().any(|s| s.addr.is_ipv4() == a.is_ipv4())
    };
    match found.iter().find(|a| usable(a)) {
        Some(&addr) => {
            log::info!("copies of traced messages go to {}:{addr}", t.transport);
            Ok(MirrorDest {
                addr,
                transport: t.transport,
            })
        }
        None if found.is_empty() => Err(SetupError::DuplicateNoAddress { uri: t.clone() }),
        None => Err(SetupError::DuplicateFamily {
            uri: t.clone(),
            ip: found[0].ip(),
        }),
    }
}

/// Open the trace database. Unreachable (connection refused, timeout) is
/// not fatal: the sink starts down, spools, and retries (docs/decisions.md §9); a
/// reachable database without the table, a bad URL… are start-up errors.
fn open_database(t: &DbTarget) -> Result<Option<Box<dyn db::Backend>>, SetupError> {
    match db::open(&t.url, &t.table, &t.opts) {
        Ok(b) => {
            log::info!("tracing into {}", b.describe());
            Ok(Some(b))
        }
        Err(e) if e.is_connection() => {
            log::warn!(
                "database unreachable at start-up: {e}; starting anyway: trace rows go to \
                 the spool and the database is tried again on a backoff timer"
            );
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Lock and load the spool directory chosen per docs/decisions.md §9, and say in
/// the log where it is and what it holds.
fn open_spool(st: &SiptraceParams) -> Result<Spool, SetupError> {
    let sqlite = match db::url::parse(&st.db_url) {
        Ok(db::DbUrl::Sqlite { path }) => Some(path),
        _ => None,
    };
    // Privileges are dropped already: the spool is the run user's.
    let run_uid = nix::unistd::geteuid().as_raw();
    let env_state = std::env::var("STATE_DIRECTORY").ok();
    let choice = location::choose(
        st.spool_dir.as_deref(),
        st.state_dir.as_deref(),
        env_state.as_deref(),
        sqlite.as_deref(),
        run_uid,
        location::writable_dir,
        |d| crate::spool::disk::check_dir(d, run_uid).map_err(|e| e.to_string()),
    );
    for why in &choice.skipped {
        log::warn!("spool: {why}");
    }
    let origin = choice.origin;
    let opts = SpoolOptions {
        dir: choice.dir,
        max_bytes: st.spool_max_mb.saturating_mul(1 << 20),
        fsync: st.spool_fsync,
        owner: (None, None),
    };
    let (spool, report) = Spool::open(&opts)?;
    for p in &report.problems {
        log::warn!("spool: {p}");
    }
    log::info!(
        "spool: {} ({}), cap {} MiB, fsync {}{}",
        spool.dir().display(),
        origin.as_str(),
        st.spool_max_mb,
        if st.spool_fsync { "on" } else { "off" },
        if report.pending > 0 {
            format!(
                "; {} rows from an earlier run in {} segment(s) are replayed first",
                report.pending, report.segments
            )
        } else {
            String::new()
        }
    );
    Ok(spool)
}

/// Binds the TCP and TLS listens, numbered after the `first` UDP sockets.
fn bind_stream_listeners(
    conf: &Config,
    first: usize,
) -> Result<Vec<(usize, StreamListener)>, SetupError> {
    let mut out = Vec::new();
    for spec in &conf.listen {
        if spec.proto == Transport::Udp {
            continue;
        }
        for ip in expand_host(&spec.host)? {
            let addr = SocketAddr::new(ip, spec.port);
            let l =
                StreamListener::bind(spec.proto, addr, spec.advertise.clone()).map_err(|err| {
                    SetupError::BindStream {
                        proto: spec.proto,
                        addr,
                        err,
                    }
                })?;
            out.push((first + out.len(), l));
        }
    }
    Ok(out)
}

/// Binds the UDP listens; config.rs made the default listen (`*` on
/// `port`) when the config has none.
fn bind_listeners(conf: &Config) -> Result<Vec<Listener>, SetupError> {
    let mut out = Vec::new();
    for spec in &conf.listen {
        if spec.proto != Transport::Udp {
            continue;
        }
        for ip in expand_host(&spec.host)? {
            let addr = SocketAddr::new(ip, spec.port);
            let l = Listener::bind_udp(addr, spec.advertise.clone(), conf.maxbuffer)
                .map_err(SetupError::Bind)?;
            out.push(l);
        }
    }
    Ok(out)
}

/// `*` means every address of the host (as Kamailio does); a name is
/// resolved once here, at start-up before the reactor exists (binding
/// needs the address; nothing in the loop calls this).
fn expand_host(host: &str) -> Result<Vec<IpAddr>, SetupError> {
    if is_wildcard(host) {
        let mut ips = Vec::new();
        let addrs = nix::ifaddrs::getifaddrs().map_err(SetupError::Interfaces)?;
        for a in addrs {
            let Some(sa) = a.address else { continue };
            if let Some(v4) = sa.as_sockaddr_in() {
                ips.push(IpAddr::V4(v4.ip()));
            } else if let Some(v6) = sa.as_sockaddr_in6() {
                let ip = v6.ip();
                // Link-local addresses need a scope id to be usable.
                if (ip.segments()[0] & 0xffc0) != 0xfe80 {
                    ips.push(IpAddr::V6(ip));
                }
            }
        }
        ips.sort();
        ips.dedup();
        return Ok(ips);
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    let found: Vec<IpAddr> = (host, 0)
        .to_socket_addrs()
        .map_err(|err| SetupError::ListenResolve {
            host: host.to_string(),
            err,
        })?
        .map(|a| a.ip())
        .collect();
    if found.is_empty() {
        return Err(SetupError::ListenNoAddress {
            host: host.to_string(),
        });
    }
    Ok(found)
}
