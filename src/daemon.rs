//! Start-up and shutdown around the reactor: binds the listeners, opens the
//! database, creates the FIFOs, drops privileges, daemonises and writes the
//! pid file — in that order, so that every start-up error reaches the
//! terminal before we detach — then runs the reactor and cleans up.

use crate::cli::Args;
use crate::config::{Config, ListenSpec};
use crate::core::{Core, CoreSettings, HepSettings, LocalSock};
use crate::db;
use crate::process::{self, PidFile};
use crate::reactor::control::{Control, ControlSettings};
use crate::reactor::{Reactor, ReactorError};
use crate::script::{Program, Proto as ScriptProto};
use crate::spool::location;
use crate::spool::{DbTarget, SinkSettings, Spool, SpoolOptions, TraceSink};
use crate::trace::dup::DupTarget;
use crate::trace::{TraceSettings, Tracer};
use crate::transport::Listener;
use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub enum SetupError {
    Listen(String),
    Db(db::DbError),
    Spool(crate::spool::SpoolError),
    Fifo(String),
    Process(process::ProcessError),
    Reactor(ReactorError),
    Config(String),
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetupError::Listen(e) | SetupError::Fifo(e) | SetupError::Config(e) => f.write_str(e),
            SetupError::Db(e) => write!(f, "database: {e}"),
            SetupError::Spool(e) => write!(f, "{e}"),
            SetupError::Process(e) => write!(f, "{e}"),
            SetupError::Reactor(e) => write!(f, "{e}"),
        }
    }
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

pub fn setup(args: &Args, conf: Config, program: Program) -> Result<Runtime, SetupError> {
    let listeners = bind_listeners(&conf)?;
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

    let st = conf.siptrace.clone().unwrap_or_default();
    let traced = conf.siptrace.is_some();
    let to_db = traced && st.trace_to_database;
    let db_target = DbTarget {
        url: st.db_url.clone(),
        table: st.table.clone(),
        opts: db::OpenOptions {
            connect_timeout: Duration::from_millis(u64::from(st.db_connect_timeout_ms)),
            ..db::OpenOptions::default()
        },
    };
    let database = if to_db {
        open_database(&db_target)?
    } else {
        None
    };

    let duplicate = match &st.duplicate_uri {
        Some(u) => {
            let t = DupTarget::parse(u)
                .map_err(|e| SetupError::Config(format!("duplicate_uri: {e}")))?;
            let a = (t.host.as_str(), t.port)
                .to_socket_addrs()
                .ok()
                .and_then(|mut i| i.next())
                .ok_or_else(|| {
                    SetupError::Config(format!("duplicate_uri {u}: cannot resolve {}", t.host))
                })?;
            Some(a)
        }
        None => None,
    };
    let send_sock = match &st.send_sock_addr {
        Some(s) => Some(parse_sock_addr(s).ok_or_else(|| {
            SetupError::Config(format!(
                "send_sock_addr {s}: expected [udp:]ip:port of a listen socket"
            ))
        })?),
        None => None,
    };
    let settings = CoreSettings {
        trace_flag: st.trace_flag,
        traced_user_avp: st.traced_user_avp.clone(),
        trace_table_avp: st.trace_table_avp.clone(),
        trace_sl_acks: st.trace_sl_acks,
        aliases: conf.aliases.clone(),
        server_header: conf.server_header_line(),
        duplicate,
        hep: st.hep_mode_on.then(|| HepSettings {
            version: st.hep_version(),
            capture_id: st.hep_capture_id,
            auth_key: st.auth_key.clone(),
        }),
        send_sock,
        memory_cap: 65_536,
    };
    let tracer = Tracer::new(
        i32::from(traced && st.trace_on),
        TraceSettings {
            trace_local_ip: st.trace_local_ip.clone(),
            trace_to_database: st.trace_to_database,
        },
    );
    let tsx = crate::tsx::TsxConfig {
        fr_timer: Duration::from_millis(u64::from(conf.tm.fr_timer_ms)),
        fr_inv_timer: Duration::from_millis(u64::from(conf.tm.fr_inv_timer_ms)),
        ..crate::tsx::TsxConfig::default()
    };
    let seed = {
        let t = crate::clock::WallTime::now();
        (t.sec as u64) << 20 ^ u64::from(t.usec) ^ u64::from(std::process::id()) << 40
    };
    let core = Core::new(program, settings, socks, tracer, tsx, seed);

    let (uid, gid) = process::lookup_ids(
        args.user.as_deref().or(conf.user.as_deref()),
        args.group.as_deref().or(conf.group.as_deref()),
    )
    .map_err(SetupError::Process)?;
    let control = Control::create(ControlSettings::from_config(&conf, args), uid, gid)
        .map_err(SetupError::Fifo)?;
    let sink = if to_db {
        let spool = open_spool(&st, uid, gid)?;
        let settings = SinkSettings {
            batch_rows: st.db_batch_rows as usize,
            policy: st.spool_full_policy,
        };
        let now = (Instant::now(), crate::clock::WallTime::now());
        TraceSink::new(db_target, database, Some(spool), settings, now.0, now.1)
    } else {
        TraceSink::disabled(Instant::now())
    };
    let mut reactor = Reactor::new(listeners, core, control, sink).map_err(SetupError::Reactor)?;

    process::drop_privileges(uid, gid).map_err(SetupError::Process)?;
    if !args.foreground && conf.fork {
        process::daemonise().map_err(SetupError::Process)?;
        // The spool lock survives the fork; the pid it names does not.
        reactor.after_fork();
    }
    let pid = match &args.pid_file {
        Some(p) => Some(PidFile::write(&PathBuf::from(p)).map_err(SetupError::Process)?),
        None => None,
    };
    log::info!(
        "siptraced {} started (pid {})",
        crate::VERSION,
        std::process::id()
    );
    Ok(Runtime { reactor, _pid: pid })
}

/// Open the trace database. Unreachable (connection refused, timeout) is
/// not fatal: the sink starts down, spools, and retries (DECISIONS §9); a
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
        Err(e) => Err(SetupError::Db(e)),
    }
}

/// Lock and load the spool directory chosen per DECISIONS §9, and say in
/// the log where it is and what it holds.
fn open_spool(
    st: &crate::config::SiptraceParams,
    uid: Option<nix::unistd::Uid>,
    gid: Option<nix::unistd::Gid>,
) -> Result<Spool, SetupError> {
    let sqlite = match db::url::parse(&st.db_url) {
        Ok(db::DbUrl::Sqlite { path }) => Some(path),
        _ => None,
    };
    let run_uid = uid.unwrap_or_else(nix::unistd::geteuid).as_raw();
    let env_state = std::env::var("STATE_DIRECTORY").ok();
    let (dir, origin) = location::choose(
        st.spool_dir.as_deref(),
        st.state_dir.as_deref(),
        env_state.as_deref(),
        sqlite.as_deref(),
        run_uid,
        location::writable_dir,
    );
    let opts = SpoolOptions {
        dir,
        max_bytes: st.spool_max_mb.saturating_mul(1 << 20),
        fsync: st.spool_fsync,
        owner: (uid, gid),
    };
    let (spool, report) = Spool::open(&opts).map_err(SetupError::Spool)?;
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

fn parse_sock_addr(s: &str) -> Option<SocketAddr> {
    let rest = s.strip_prefix("udp:").unwrap_or(s);
    rest.parse().ok()
}

fn bind_listeners(conf: &Config) -> Result<Vec<Listener>, SetupError> {
    let specs: Vec<ListenSpec> = if conf.listen.is_empty() {
        vec![ListenSpec {
            proto: ScriptProto::Udp,
            host: "*".into(),
            port: conf.port,
            advertise: None,
        }]
    } else {
        conf.listen.clone()
    };
    let mut out = Vec::new();
    for spec in specs {
        if spec.proto != ScriptProto::Udp {
            log::warn!(
                "listen={}:{}:{}: only UDP is served; this socket is not opened",
                spec.proto.as_str(),
                spec.host,
                spec.port
            );
            continue;
        }
        for ip in expand_host(&spec.host)? {
            let addr = SocketAddr::new(ip, spec.port);
            let l = Listener::bind_udp(addr, spec.advertise.clone())
                .map_err(|e| SetupError::Listen(e.to_string()))?;
            out.push(l);
        }
    }
    if out.is_empty() {
        return Err(SetupError::Listen(
            "no UDP socket to listen on: add listen=udp:IP:PORT".into(),
        ));
    }
    Ok(out)
}

/// `*` means every address of the host (as Kamailio does); a name is
/// resolved once here.
fn expand_host(host: &str) -> Result<Vec<IpAddr>, SetupError> {
    if host == "*" || host == "0.0.0.0" || host == "::" {
        let mut ips = Vec::new();
        let addrs = nix::ifaddrs::getifaddrs()
            .map_err(|e| SetupError::Listen(format!("cannot list interface addresses: {e}")))?;
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
        .map_err(|e| SetupError::Listen(format!("listen={host}: cannot resolve: {e}")))?
        .map(|a| a.ip())
        .collect();
    if found.is_empty() {
        return Err(SetupError::Listen(format!("listen={host}: no address")));
    }
    Ok(found)
}
