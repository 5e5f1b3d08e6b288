//! Lowering of the parsed kamailio.cfg into a typed [`Config`] plus the
//! compiled routing [`Program`]. This is the ONE place holding every default
//! (core globals, siptrace, mi_fifo, jsonrpcs, tm, rr, maxfwd parameters) and
//! the one place that knows which Kamailio globals and modules exist. Pure:
//! it sees only the AST (`cfg`) and hands the route blocks to `script`;
//! it uses the value parsers and protocol constants of `sip`, `trace` and
//! `tsx` (RFC defaults stay with their protocol and are taken from there),
//! and never a socket, a clock or a logger.
//!
//! Two stages, one call: [`build`] lowers globals, `loadmodule` and
//! `modparam` in file order, then compiles the routes against the loaded
//! modules; every diagnostic of both stages comes back together.
//!
//! Every value is parsed here, once, into the type its user needs
//! (`DupTarget`, `SocketAddr`, a validated `TsxConfig`), and every check
//! that the config alone can decide is made here, so `siptraced -c` refuses
//! what start-up would. What needs the host (DNS, interface addresses) is
//! left to daemon.rs. Nothing is logged from here: logging starts after the
//! config is built, so what is worth saying is kept in [`Config::notes`].

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use log::LevelFilter;
use thiserror::Error;

use crate::cfg::ast::{self, GlobalValue, Item, ModValue};
use crate::cfg::{Diagnostic, Pos};
use crate::db::retention::{MethodAge, RetentionPolicy};
use crate::script::{AvpName, CompileEnv, Program};
use crate::sip::{Transport, TransportError};
use crate::trace::dup::{DupError, DupTarget, parse_send_sock};
use crate::trace::hep::HepError;
use crate::trace::mask::{MaskError, MaskSettings};
use crate::trace::stream::StreamConfig;
use crate::tsx::{MAX_TIMER, TsxConfig, ValidTsxConfig};

/// Modules siptraced accepts in `loadmodule` (docs/decisions.md §5): those whose
/// functions or parameters it implements, and known ones it needs nothing
/// from (kex, corex, pv, ctl, xlog…) which load silently.
pub(crate) const SUPPORTED_MODULES: &[&str] = &[
    "cfg_rpc",
    "corex",
    "ctl",
    "db_mysql",
    "db_postgres",
    "db_sqlite",
    "db_text",
    "jsonrpcs",
    "kex",
    "maxfwd",
    "mi_fifo",
    "mi_rpc",
    "pv",
    "rr",
    "sanity",
    "siptrace",
    "siputils",
    "sl",
    "textops",
    "textopsx",
    "tls",
    "tm",
    "tmx",
    "xlog",
];

/// Old (OpenSER 1.x) module file names and the module they are now.
const MODULE_ALIASES: &[(&str, &str)] = &[
    ("mysql", "db_mysql"),
    ("postgres", "db_postgres"),
    ("dbtext", "db_text"),
];

/// Defaults of `udp_turn_datagrams` / `udp_turn_kb`: what one reactor turn
/// reads from one UDP socket before timers, FIFOs and the database get
/// their turn. 256 small requests take ~5 ms in a release build; 1 MiB is
/// 16 datagrams of 64 KB.
pub(crate) const DEFAULT_UDP_TURN_DATAGRAMS: u32 = 256;
pub(crate) const DEFAULT_UDP_TURN_KB: u32 = 1024;
/// Core `maxbuffer` (bytes): the receive buffer asked for each UDP socket
/// (docs/decisions.md §20). Kamailio probes up to 256 KiB; one reactor
/// thread that pauses for a database commit needs more room for a burst.
pub(crate) const DEFAULT_MAXBUFFER: usize = 4 << 20;

/// Every core parameter name of Kamailio (3.x–5.x `cfg.lex`, plus the
/// OpenSER 1.x/Kamailio 1.5 names that later disappeared), aliases included.
/// A global not listed here is no Kamailio parameter at all and an error;
/// one listed but not applied below is accepted and ignored.
#[rustfmt::skip]
const KNOWN_GLOBALS: &[&str] = &[
    "advertised_address", "advertised_port", "alias", "async_nonblock", "async_usleep",
    "async_workers", "async_workers_group", "auto_aliases", "auto_bind_ipv6", "avp_aliases",
    "bind_ipv6_link_local", "cfgengine", "check_via", "children", "chroot", "core_log",
    "corelog", "db_default_url", "db_version_table", "debug", "desc", "descr", "description",
    "disable_503_translation", "disable_core_dump", "disable_dns_blacklist",
    "disable_dns_failover", "disable_sctp", "disable_stateless_fwd", "disable_tcp",
    "disable_tls", "dns", "dns_cache_del_nonexp", "dns_cache_delete_nonexpired",
    "dns_cache_flags", "dns_cache_gc_interval", "dns_cache_init", "dns_cache_max_ttl",
    "dns_cache_mem", "dns_cache_min_ttl", "dns_cache_negative_ttl", "dns_cache_rec_pref",
    "dns_naptr_ignore_rfc", "dns_retr_no", "dns_retr_time", "dns_sctp_pref",
    "dns_sctp_preference", "dns_search_full_match", "dns_servers_no", "dns_slow_query_ms",
    "dns_srv_lb", "dns_srv_loadbalancing", "dns_tcp_pref", "dns_tcp_preference", "dns_tls_pref",
    "dns_tls_preference", "dns_try_ipv6", "dns_try_naptr", "dns_udp_pref", "dns_udp_preference",
    "dns_use_search_list", "dst_blacklist", "dst_blacklist_expire", "dst_blacklist_gc_interval",
    "dst_blacklist_init", "dst_blacklist_mem", "dst_blacklist_sctp_imask",
    "dst_blacklist_tcp_imask", "dst_blacklist_tls_imask", "dst_blacklist_ttl",
    "dst_blacklist_udp_imask", "enable_sctp", "enable_tls", "event_route_callback",
    "exec_dns_threshold", "exec_msg_threshold", "execdnsthreshold", "execmsgthreshold",
    "exit_timeout", "fifo", "fifo_db_url", "fifo_dir", "fifo_group", "fifo_mode", "fifo_user",
    "file_mode", "force_rport", "fork", "fork_delay", "gid", "group", "http_reply_hack",
    "http_reply_parse", "ip_free_bind", "ip_nonlocal_bind", "ipfreebind", "ipv6_hex_style",
    "kemi", "latency_cfg_log", "latency_limit_action", "latency_limit_cfg", "latency_limit_db",
    "latency_log", "listen", "loadpath", "local_rport", "log_color", "log_engine_data",
    "log_engine_type", "log_facility", "log_name", "log_prefix", "log_prefix_mode",
    "log_stderror", "max_branches", "max_recursive_level", "max_while_loops", "maxbuffer",
    "mcast", "mcast_loopback", "mcast_ttl", "mem_dbg", "mem_dump", "mem_join", "mem_log",
    "mem_safety", "mem_status_mode", "mem_summary", "memdbg", "memdump", "memlog", "mhomed",
    "mlock_pages", "modinit_delay", "mpath", "msg_time", "onsend_route_callback",
    "onsend_route_reply", "open_files_limit", "phone2tel", "pmtu_discovery", "port",
    "pv_buffer_size", "pv_buffer_slots", "pv_cache_action", "pv_cache_limit",
    "query_buffer_size", "query_flush_time", "real_time", "received_route_callback",
    "received_route_mode", "reply_route_callback", "reply_to_via", "rev_dns",
    "route_locks_size", "rt_fast_timer_prio", "rt_ftimer_policy", "rt_ftimer_prio", "rt_policy",
    "rt_prio", "rt_stimer_policy", "rt_stimer_prio", "rt_timer1_policy", "rt_timer1_prio",
    "rt_timer2_policy", "rt_timer2_prio", "run_dir", "rundir", "sctp_children",
    "ser_kill_timeout", "server_header", "server_id", "server_signature", "shm",
    "shm_force_alloc", "shm_mem", "shm_mem_size", "sip_parser_log", "sip_parser_mode",
    "sip_warning", "sock_group", "sock_mode", "sock_user", "socket_workers", "sql_buffer_size",
    "statistics", "stats_name_separator", "syn_branch", "tcp_accept_aliases",
    "tcp_accept_haproxy", "tcp_accept_hep3", "tcp_accept_no_cl", "tcp_accept_unique",
    "tcp_async", "tcp_buf_write", "tcp_children", "tcp_clone_rcvbuf", "tcp_conn_wq_max",
    "tcp_connect_timeout", "tcp_connection_lifetime", "tcp_connection_match", "tcp_crlf_ping",
    "tcp_crlf_pingpong", "tcp_defer_accept", "tcp_delayed_ack", "tcp_fd_cache", "tcp_keepalive",
    "tcp_keepcnt", "tcp_keepcount", "tcp_keepidle", "tcp_keepinterval", "tcp_keepintvl",
    "tcp_linger2", "tcp_max_connections", "tcp_no_connect", "tcp_no_new_conn_bflag",
    "tcp_poll_method", "tcp_rd_buf_size", "tcp_reuse_port", "tcp_send_timeout",
    "tcp_source_ipv4", "tcp_source_ipv6", "tcp_syncnt", "tcp_threshold", "tcp_wq_blk_size",
    "tcp_wq_max", "tcpthreshold", "tls_ca_list", "tls_certificate", "tls_ciphers_list",
    "tls_client_domain", "tls_client_domain_avp", "tls_disable", "tls_enable",
    "tls_handshake_timeout", "tls_log", "tls_max_connections", "tls_method", "tls_port_no",
    "tls_private_key", "tls_require_certificate", "tls_require_client_certificate",
    "tls_send_timeout", "tls_server_domain", "tls_verify", "tls_verify_client",
    "tls_verify_server", "tlslog", "tos", "udp4_raw", "udp4_raw_mtu", "udp4_raw_ttl", "udp_mtu",
    "udp_mtu_try_proto", "uid", "unix_sock", "unix_sock_children", "unix_tx_timeout",
    "uri_host_extra_chars", "use_dns_cache", "use_dns_failover", "use_dst_blacklist", "user",
    "user_agent_header", "verbose_startup", "version_table", "wait_worker1_mode",
    "wait_worker1_time", "wait_worker1_usleep", "wdir", "workdir", "xavp_via_fields",
    "xavp_via_params",
];

/// Globals that are siptraced's own, not Kamailio's: where the resolver
/// thread asks (docs/decisions.md §10), and the bounds of one reactor turn,
/// which Kamailio, with its pool of receiver processes, has no need for
/// (docs/decisions.md §11), and where Prometheus scrapes `/metrics`
/// (docs/decisions.md §12).
const SIPTRACED_GLOBALS: &[&str] = &[
    "dns_servers",
    "dns_resolv_conf",
    "udp_turn_datagrams",
    "udp_turn_kb",
    "metrics_listen",
];

/// Settings accepted for compatibility that change nothing here, with the
/// reason. Each one set in the config gives one start-up warning, at its
/// position; a global is named as written, a modparam as `module.param`.
/// (Other known globals, such as the DNS cache or memory knobs, are
/// Kamailio internals with nothing to do here: a debug note only.)
pub(crate) const IGNORED_SETTINGS: &[(&str, &str)] = &[
    (
        "advertised_address",
        "the global form is not applied; put `advertise HOST[:PORT]` on the listen= line",
    ),
    (
        "advertised_port",
        "the global form is not applied; put `advertise HOST[:PORT]` on the listen= line",
    ),
    (
        "auto_aliases",
        "`myself` is the listen addresses and the alias= names, whatever its value",
    ),
    ("log_prefix", "log lines carry no per-message prefix"),
    ("sip_warning", "no Warning header is added to local replies"),
    ("workdir", "the working directory is not changed"),
    ("wdir", "the working directory is not changed"),
    (
        "tcp_send_timeout",
        "a stalled connection is bounded by tcp_conn_wq_max and tcp_connection_lifetime instead",
    ),
    (
        "siptrace.xheaders_write",
        "no X-Siptrace-* headers are added to relayed messages",
    ),
    (
        "siptrace.xheaders_read",
        "X-Siptrace-* headers of received messages are not read",
    ),
];

/// Multi-process knobs: accepted, but siptraced is one thread by design
/// (docs/decisions.md §5: one info line, not a warning).
const PROCESS_KNOBS: &[&str] = &[
    "children",
    "tcp_children",
    "sctp_children",
    "socket_workers",
    "async_workers",
];

/// syslog facilities by the names Kamailio's `log_facility` takes, with
/// their RFC 3164 numbers.
const SYSLOG_FACILITIES: &[(&str, u8)] = &[
    ("LOG_KERN", 0),
    ("LOG_USER", 1),
    ("LOG_MAIL", 2),
    ("LOG_DAEMON", 3),
    ("LOG_AUTH", 4),
    ("LOG_SYSLOG", 5),
    ("LOG_LPR", 6),
    ("LOG_NEWS", 7),
    ("LOG_UUCP", 8),
    ("LOG_CRON", 9),
    ("LOG_AUTHPRIV", 10),
    ("LOG_FTP", 11),
    ("LOG_LOCAL0", 16),
    ("LOG_LOCAL1", 17),
    ("LOG_LOCAL2", 18),
    ("LOG_LOCAL3", 19),
    ("LOG_LOCAL4", 20),
    ("LOG_LOCAL5", 21),
    ("LOG_LOCAL6", 22),
    ("LOG_LOCAL7", 23),
];

/// A diagnostic worth logging once logging has started, at its level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub level: log::Level,
    pub diag: Diagnostic,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenSpec {
    pub proto: Transport,
    /// IP literal (IPv6 without brackets), `*` for all addresses, or a name.
    pub host: String,
    /// Given, or the `port` global.
    pub port: u16,
    /// `advertise host[:port]`; a missing port is the listen port.
    pub advertise: Option<(String, u16)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpoolFullPolicy {
    /// Drop the newest rows, those that do not fit (each counted); rows
    /// are spooled again as soon as replay makes room.
    Drop,
    /// Stop spooling at the cap until the spool has drained completely, so
    /// the table keeps one gap instead of many (rows counted as dropped).
    Stop,
}

/// siptrace modparams (old guide's eight plus the later ones).
#[derive(Debug, Clone, PartialEq)]
pub struct SiptraceParams {
    pub db_url: String,
    pub table: String,
    /// None: flag-driven tracing off (docs/decisions.md §1).
    pub trace_flag: Option<u8>,
    /// The shared trace_on int: any value is kept (MI `sip_trace` then shows
    /// no status for values other than 0 and 1, docs/kamailio.md §3.1).
    pub trace_on: i32,
    pub traced_user_avp: Option<AvpName>,
    pub trace_table_avp: Option<AvpName>,
    /// Where copies go; a host name is resolved at start-up (daemon.rs).
    pub duplicate_uri: Option<DupTarget>,
    /// Verbatim into fromip/toip (docs/kamailio.md §4.1).
    pub trace_local_ip: Option<String>,
    pub trace_to_database: bool,
    pub hep_mode_on: bool,
    /// As configured; see [`SiptraceParams::hep_version`].
    pub hep_version: Option<u8>,
    pub hep_capture_id: u32,
    pub auth_key: Option<String>,
    /// `send_sock_addr` / `force_send_sock`: checked against the listens
    /// at load where that can be decided, else at start-up.
    pub send_sock_addr: Option<SocketAddr>,
    pub trace_sl_acks: bool,
    pub spool_dir: Option<String>,
    pub spool_max_mb: u64,
    pub spool_full_policy: SpoolFullPolicy,
    /// fsync the spool after each turn's append (a power loss then loses
    /// no spooled row); off trades that for less disk latency.
    pub spool_fsync: bool,
    /// None: chosen at start-up (docs/decisions.md §9).
    pub state_dir: Option<String>,
    pub db_batch_rows: u32,
    /// How long a turn's rows may wait for later turns' to share one
    /// transaction (ms; 0: every turn commits its own; docs/decisions.md §17).
    pub db_flush_ms: u32,
    pub db_connect_timeout_ms: u32,
    /// Bytes (in KiB) of copies a TCP capture connection holds while its
    /// node is away or slow; more are dropped and counted.
    pub mirror_tcp_queue_kb: u32,
    /// Secrets masked in rows and copies (`mask`, `mask_headers`;
    /// docs/decisions.md §13).
    pub mask: MaskSettings,
    /// `retention`, `retention_rows`, `retention_method`,
    /// `retention_interval` (docs/decisions.md §14).
    pub retention: RetentionPolicy,
    /// Runtime trace filters' state file (`filter_file`); None: beside
    /// the spool (docs/decisions.md §16).
    pub filter_file: Option<String>,
    /// Longest TTL `sip_trace_filter add` accepts (`filter_max_ttl`).
    pub filter_max_ttl: Duration,
    /// Dialogs traced whole: `dialog_max`, `dialog_max_kb`, `dialog_lifetime`.
    pub dialogs: crate::core::dialogs::Limits,
    /// Kamailio 5's `trace_mode` bit mask: every message received and sent
    /// traced without script calls (1 HEP copy, 2 database, 4 raw copy;
    /// docs/decisions.md §16). 0: off.
    pub trace_mode: u8,
}

impl Default for SiptraceParams {
    fn default() -> Self {
        SiptraceParams {
            // Our embedded default: a SQLite file that works with zero set-up (docs/decisions.md §3).
            db_url: "sqlite:///var/lib/siptraced/siptrace.db".into(),
            table: "sip_trace".into(),
            trace_flag: None,
            trace_on: 0,
            traced_user_avp: None,
            trace_table_avp: None,
            duplicate_uri: None,
            trace_local_ip: None,
            trace_to_database: true,
            hep_mode_on: false,
            hep_version: None,
            hep_capture_id: 1,
            auth_key: None,
            send_sock_addr: None,
            trace_sl_acks: true,
            spool_dir: None,
            spool_max_mb: 256,
            spool_full_policy: SpoolFullPolicy::Drop,
            spool_fsync: true,
            state_dir: None,
            db_batch_rows: 1000,
            db_flush_ms: 5,
            db_connect_timeout_ms: 2000,
            // The stream's own bound, where it is defined.
            mirror_tcp_queue_kb: u32::try_from(StreamConfig::default().max_queue_bytes / 1024)
                .unwrap_or(u32::MAX),
            mask: MaskSettings::default(),
            retention: RetentionPolicy::default(),
            filter_file: None,
            filter_max_ttl: Duration::from_secs(crate::trace::filter::DEFAULT_MAX_TTL),
            dialogs: crate::core::dialogs::Limits::default(),
            trace_mode: 0,
        }
    }
}

impl SiptraceParams {
    /// The HEP version to send: as configured, else 3 (docs/decisions.md §8).
    pub fn hep_version(&self) -> u8 {
        self.hep_version.unwrap_or(3)
    }
}

/// mi_fifo modparams (docs/kamailio.md §1.1).
#[derive(Debug, Clone, PartialEq)]
pub struct MiFifoParams {
    /// Mandatory in Kamailio ("No MI fifo configured" otherwise); used as given.
    pub fifo_name: Option<String>,
    pub fifo_mode: u32,
    pub fifo_user: Option<String>,
    pub fifo_group: Option<String>,
    /// String-concatenated with reply names, so it must end in '/'.
    pub reply_dir: String,
    pub reply_indent: String,
}

impl Default for MiFifoParams {
    fn default() -> Self {
        MiFifoParams {
            fifo_name: None,
            fifo_mode: 0o660,
            fifo_user: None,
            fifo_group: None,
            reply_dir: "/tmp/".into(),
            reply_indent: "\t".into(),
        }
    }
}

/// jsonrpcs modparams (docs/kamailio.md §6.3).
#[derive(Debug, Clone, PartialEq)]
pub struct JsonrpcsParams {
    /// Relative names live under the run dir: see [`Config::jsonrpcs_fifo_path`].
    pub fifo_name: String,
    pub fifo_mode: u32,
    pub fifo_user: Option<String>,
    pub fifo_group: Option<String>,
    pub fifo_reply_dir: String,
    pub pretty_format: bool,
    /// 1 HTTP, 2 FIFO, 4 datagram, 0 all; only the FIFO is served here.
    pub transport: u32,
}

impl Default for JsonrpcsParams {
    fn default() -> Self {
        JsonrpcsParams {
            fifo_name: "kamailio_rpc.fifo".into(),
            fifo_mode: 0o660,
            fifo_user: None,
            fifo_group: None,
            fifo_reply_dir: "/tmp/".into(),
            pretty_format: true,
            transport: 6,
        }
    }
}

/// Where the siptrace values were set: for checks that involve several
/// (reported at the later one), and for the start-up checks of daemon.rs
/// that need the host (DNS, interface addresses) to report at the value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SiptracePos {
    pub duplicate_uri: Option<Pos>,
    pub send_sock_addr: Option<Pos>,
    pub hep_mode_on: Option<Pos>,
    pub hep_version: Option<Pos>,
    pub hep_capture_id: Option<Pos>,
    pub trace_mode: Option<Pos>,
}

/// rr modparams that change what record_route() writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RrParams {
    /// `;lr=on` instead of `;lr`.
    pub enable_full_lr: bool,
    pub append_fromtag: bool,
    /// Two Record-Routes when the proxy changes socket/protocol.
    pub enable_double_rr: bool,
}

impl Default for RrParams {
    fn default() -> Self {
        RrParams {
            enable_full_lr: false,
            append_fromtag: false,
            enable_double_rr: true,
        }
    }
}

/// Everything the daemon needs from kamailio.cfg besides the routes.
#[derive(Debug, Clone)]
pub struct Config {
    /// Sockets to open; a listen without protocol gives one per protocol
    /// (udp, and tcp unless disable_tcp), and no listen at all gives `*` on `port`.
    pub listen: Vec<ListenSpec>,
    pub port: u16,
    pub aliases: Vec<(String, Option<u16>)>,
    /// Kamailio's level number, see [`Config::log_level`].
    pub debug: i32,
    pub log_stderror: bool,
    /// syslog facility number (`log_facility=LOG_LOCAL0` is 16).
    pub log_facility: u8,
    /// syslog ident.
    pub log_name: String,
    pub fork: bool,
    pub user: Option<String>,
    pub group: Option<String>,
    pub mpath: Option<String>,
    pub run_dir: String,
    /// Full header line for local replies, e.g. "Server: x"; None: the default.
    pub server_header: Option<String>,
    pub user_agent_header: Option<String>,
    pub server_signature: bool,
    pub max_while_loops: u32,
    pub disable_tcp: bool,
    /// SIP over TCP: tcp_max_connections, tcp_connection_lifetime,
    /// tcp_connect_timeout, tcp_conn_wq_max (docs/decisions.md §18).
    pub tcp: crate::transport::tcp::TcpConfig,
    /// `udp_mtu` (0: off) and `udp_mtu_try_proto`: a request larger than
    /// the MTU that would leave over UDP leaves over that transport.
    pub udp_mtu: u32,
    pub udp_mtu_try_proto: Transport,
    /// `maxbuffer`: SO_RCVBUF asked for each UDP listener (0: the OS
    /// default), docs/decisions.md §20.
    pub maxbuffer: usize,
    /// `enable_tls=yes`: `listen=tls:` sockets are opened (with the tls
    /// module loaded), as in Kamailio.
    pub enable_tls: bool,
    /// `modparam("tls", …)` (docs/decisions.md §19).
    pub tls: crate::transport::tls::TlsParams,
    /// Datagrams and KiB read from one UDP socket per reactor turn.
    pub udp_turn_datagrams: u32,
    pub udp_turn_kb: u32,
    /// Where `GET /metrics` is served (docs/decisions.md §12); None: nowhere.
    pub metrics_listen: Option<SocketAddr>,
    /// Loaded modules by base name, in load order.
    pub modules: Vec<String>,
    /// None when siptrace is not loaded.
    pub siptrace: Option<SiptraceParams>,
    pub siptrace_pos: SiptracePos,
    pub mi_fifo: Option<MiFifoParams>,
    pub jsonrpcs: Option<JsonrpcsParams>,
    /// tm modparams (docs/decisions.md §7) over tsx's defaults (Kamailio tm's).
    pub tm: ValidTsxConfig,
    pub rr: RrParams,
    /// maxfwd `max_limit`.
    pub maxfwd_max_limit: u32,
    /// The resolver thread's settings (docs/decisions.md §10).
    pub dns: DnsConfig,
    /// Things accepted but worth telling (the caller logs them at warn).
    pub warnings: Vec<Diagnostic>,
    /// Lesser things to log once logging has started (info, debug).
    pub notes: Vec<Note>,
}

/// Which name servers the resolver thread asks.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DnsServers {
    /// /etc/resolv.conf (and /etc/hosts), as the system resolver would.
    #[default]
    System,
    /// siptraced's `dns_resolv_conf="/path"`: a resolv.conf of our own.
    ResolvConf(PathBuf),
    /// siptraced's `dns_servers="IP[:PORT], …"` (port 53 by default).
    Servers(Vec<SocketAddr>),
}

/// DNS settings: Kamailio's core `dns_retr_time` (seconds a query waits
/// before it is sent again, default 2), `dns_retr_no` (tries, default 2;
/// the lookup's deadline is their product, 4 s by default) and
/// `dns_try_naptr` (RFC 3263 NAPTR before SRV, default off as in
/// Kamailio), plus siptraced's server choice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfig {
    pub servers: DnsServers,
    pub retr_time: Duration,
    pub retr_no: u32,
    pub try_naptr: bool,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            servers: DnsServers::System,
            retr_time: Duration::from_secs(2),
            retr_no: 2,
            try_naptr: false,
        }
    }
}

impl DnsConfig {
    /// How long a lookup may take before the request waiting for it is
    /// answered 478: `dns_retr_time` × `dns_retr_no`.
    pub fn deadline(&self) -> Duration {
        self.retr_time * self.retr_no.max(1)
    }
}

/// `dns_servers` value: addresses separated by commas or blanks, each
/// `IP`, `IP:PORT` or `[IPv6]:PORT`.
fn dns_servers_of(text: &str) -> VResult<Vec<SocketAddr>> {
    let mut out = Vec::new();
    for item in text.split([',', ' ', '\t']).filter(|x| !x.is_empty()) {
        let a = match item.parse::<SocketAddr>() {
            Ok(a) => a,
            Err(_) => match item
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
            {
                Ok(ip) => SocketAddr::new(ip, 53),
                Err(_) => return Err(ValueError::BadDnsServer(item.to_string())),
            },
        };
        if a.port() == 0 {
            return Err(ValueError::BadDnsServer(item.to_string()));
        }
        out.push(a);
    }
    if out.is_empty() {
        return Err(ValueError::BadDnsServer(text.to_string()));
    }
    Ok(out)
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: Vec::new(),
            // RFC 3261 §19.1.2, as Kamailio.
            port: crate::sip::DEFAULT_PORT,
            aliases: Vec::new(),
            // Kamailio's default: L_WARN.
            debug: 0,
            log_stderror: false,
            // LOG_DAEMON, as Kamailio.
            log_facility: 3,
            log_name: "siptraced".into(),
            fork: true,
            user: None,
            group: None,
            mpath: None,
            run_dir: "/run/siptraced".into(),
            server_header: None,
            user_agent_header: None,
            server_signature: true,
            // Kamailio's max_while_loops default.
            max_while_loops: 100,
            disable_tcp: false,
            tcp: crate::transport::tcp::TcpConfig::default(),
            udp_mtu: 0,
            udp_mtu_try_proto: Transport::Udp,
            maxbuffer: DEFAULT_MAXBUFFER,
            enable_tls: false,
            tls: crate::transport::tls::TlsParams::default(),
            udp_turn_datagrams: DEFAULT_UDP_TURN_DATAGRAMS,
            udp_turn_kb: DEFAULT_UDP_TURN_KB,
            metrics_listen: None,
            modules: Vec::new(),
            siptrace: None,
            siptrace_pos: SiptracePos::default(),
            mi_fifo: None,
            jsonrpcs: None,
            tm: ValidTsxConfig::default(),
            rr: RrParams::default(),
            // maxfwd's MAXFWD_UPPER_LIMIT.
            maxfwd_max_limit: 256,
            dns: DnsConfig::default(),
            warnings: Vec::new(),
            notes: Vec::new(),
        }
    }
}

impl Config {
    /// The configured `debug` as a log filter, see [`level_of_debug`].
    pub fn log_level(&self) -> LevelFilter {
        level_of_debug(self.debug)
    }

    /// The Kamailio level number for the log filter in force (after `-d`
    /// flags): the configured `debug` when it gives that filter, else the
    /// filter's own Kamailio number.
    pub fn debug_in_force(&self, level: LevelFilter) -> i32 {
        if level_of_debug(self.debug) == level {
            return self.debug;
        }
        match level {
            // L_ALERT, the lowest Kamailio level.
            LevelFilter::Off => -5,
            LevelFilter::Error => -1,
            LevelFilter::Warn => 0,
            LevelFilter::Info => 2,
            LevelFilter::Debug => 3,
            LevelFilter::Trace => 4,
        }
    }

    /// The Server header line for local replies, or None when
    /// `server_signature=no`.
    pub(crate) fn server_header_line(&self) -> Option<String> {
        if !self.server_signature {
            return None;
        }
        Some(
            self.server_header
                .clone()
                .unwrap_or_else(|| format!("Server: siptraced ({})", env!("CARGO_PKG_VERSION"))),
        )
    }

    /// The User-Agent header line for requests the proxy itself generates.
    pub fn user_agent_header_line(&self) -> String {
        self.user_agent_header
            .clone()
            .unwrap_or_else(|| format!("User-Agent: siptraced ({})", env!("CARGO_PKG_VERSION")))
    }

    /// The JSON-RPC FIFO path: a relative `fifo_name` lives under `run_dir`.
    pub(crate) fn jsonrpcs_fifo_path(&self) -> Option<String> {
        let j = self.jsonrpcs.as_ref()?;
        Some(if j.fifo_name.starts_with('/') {
            j.fifo_name.clone()
        } else {
            format!("{}/{}", self.run_dir.trim_end_matches('/'), j.fifo_name)
        })
    }

    pub(crate) fn module_loaded(&self, name: &str) -> bool {
        self.modules.iter().any(|m| m == name)
    }
}

/// Kamailio's `debug` numbers as a log filter: ≤-1 error, 0 warn,
/// 1–2 info (notice, info), 3 debug, ≥4 trace. Also what MI `debug N` sets.
pub(crate) fn level_of_debug(debug: i32) -> LevelFilter {
    match debug {
        i32::MIN..=-1 => LevelFilter::Error,
        0 => LevelFilter::Warn,
        1 | 2 => LevelFilter::Info,
        3 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    }
}

/// Lowers `cfg` and compiles its routes. Returns every diagnostic found.
pub fn build(cfg: &ast::Cfg) -> Result<(Config, Program), Vec<Diagnostic>> {
    let mut b = Builder::default();
    b.c.notes.extend(cfg.notes.iter().map(|d| Note {
        level: log::Level::Debug,
        diag: d.clone(),
    }));
    for item in &cfg.items {
        match item {
            Item::Global(g) => b.global(g),
            Item::LoadModule { path, pos } => b.loadmodule(path, pos),
            Item::ModParam(m) => b.modparam(m),
            Item::Route(_) => {}
        }
    }
    b.finish_listen();
    b.finish_mirror();
    b.finish_send_sock();
    b.finish_tm();
    b.finish_process_knobs();
    let env = CompileEnv {
        modules: b.c.modules.clone(),
        max_while_loops: b.c.max_while_loops,
        maxfwd_max_limit: b.c.maxfwd_max_limit,
    };
    let prog = Program::compile(cfg, &env);
    let mut diags = b.diags;
    match prog {
        Ok(p) if diags.is_empty() => Ok((b.c, p)),
        Ok(_) => Err(diags),
        Err(d) => {
            diags.extend(d);
            Err(diags)
        }
    }
}

#[derive(Default)]
struct Builder {
    c: Config,
    diags: Vec<Diagnostic>,
    /// Listens as written (proto optional, port optional), resolved at the end.
    listens: Vec<ast::SockSpec>,
    /// tm modparams over tsx's defaults, validated at the end.
    tm: TsxConfig,
    tm_pos: TmPos,
    /// Multi-process knobs set, for one note at the end.
    process_knobs: Vec<(String, Pos)>,
}

/// Where the tm values checked together were set.
#[derive(Default)]
struct TmPos {
    loadmodule: Option<Pos>,
    retr_timer1: Option<Pos>,
    retr_timer2: Option<Pos>,
}

/// Why a global or modparam value was refused; reported at the value,
/// after "NAME: " (or "modparam MODULE.PARAM: ").
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ValueError {
    #[error("expects an integer, got \"{0}\"")]
    NotAnInteger(String),
    #[error("expects a number, got {0}")]
    NotANumber(String),
    #[error("expects yes/no or a number, got {0}")]
    NotABool(String),
    #[error("expects a string, got the number {0}")]
    NumberForString(i64),
    #[error("expects a string, got {0}")]
    NotAString(String),
    #[error("expects an address")]
    NotAnAddress,
    #[error("expects a host name")]
    NotAHostName,
    #[error("an alias takes no 'advertise'")]
    AliasAdvertise,
    #[error("must be from {lo} to {hi}, got {got}")]
    OutOfRange { lo: i64, hi: i64, got: i64 },
    #[error("port {0} out of range 1..65535")]
    BadPort(i64),
    #[error(
        "unknown syslog facility '{0}'; use LOG_DAEMON, LOG_USER, LOG_LOCAL0 … LOG_LOCAL7 or another LOG_* name"
    )]
    UnknownFacility(String),
    #[error("\"{0}\" is not a valid table name ([A-Za-z_][A-Za-z0-9_]*, at most 64 characters)")]
    BadTableName(String),
    #[error(transparent)]
    BadAvp(#[from] crate::script::AvpNameError),
    #[error(transparent)]
    Dup(#[from] DupError),
    #[error(transparent)]
    Mask(#[from] MaskError),
    #[error("{addr} is not a listen socket (listening on {listening})")]
    NotAListenSocket { addr: SocketAddr, listening: String },
    #[error("must be \"drop\" or \"stop\", got \"{0}\"")]
    BadSpoolPolicy(String),
    #[error("column name overrides are not supported: the sip_trace columns are fixed")]
    ColumnOverride,
    #[error("not supported by siptraced")]
    Unsupported,
    #[error("\"{0}\" is not a transport: use UDP, TCP or TLS")]
    BadTransport(String),
    #[error(
        "\"{0}\" is not a tls_method siptraced can speak: use TLSv1.2+, TLSv1.2 or TLSv1.3 (rustls has nothing older)"
    )]
    BadTlsMethod(String),
    #[error(
        "\"{0}\" is not an address to serve metrics on: write IP:PORT, e.g. \"127.0.0.1:9464\" or \"[::1]:9464\""
    )]
    BadMetricsListen(String),
    #[error("\"{0}\" is not a name server address (IP, IP:PORT or [IPv6]:PORT)")]
    BadDnsServer(String),
    #[error("dns_servers and dns_resolv_conf exclude each other")]
    DnsServersTwice,
    #[error(
        "expects a size: an integer in MiB, or a string with a unit K, M or G (\"256M\"), got \"{0}\""
    )]
    NotASize(String),
    #[error("must be from 1 MiB to {max_gib} GiB, got {got} bytes")]
    SizeOutOfRange { max_gib: u64, got: u64 },
    /// `hint` lists the known names, or quotes the unknown one.
    #[error(
        "expects an age: a number with a unit s, m, h or d (\"7d\", \"12h\"), or an integer in seconds, got \"{0}\""
    )]
    NotAnAge(String),
    #[error("must be from 1 second to 3650 days, got {0} s")]
    AgeOutOfRange(u64),
    #[error("expects METHOD=AGE, such as \"OPTIONS=1h\", got \"{0}\"")]
    NotAMethodAge(String),
    #[error("\"{0}\" is not a SIP method name (a token: letters, digits, -.!%*_+`'~)")]
    NotAMethod(String),
    #[error("method {0} has a retention_method already; keep one")]
    MethodTwice(String),
    #[error("unknown {module} parameter{hint}")]
    UnknownParam { module: &'static str, hint: String },
}

/// A modparam or global value problem, reported at the value.
type VResult<T> = Result<T, ValueError>;

fn int_of(v: &ModValue) -> VResult<i64> {
    match v {
        ModValue::Int(n) => Ok(*n),
        // Kamailio converts a string given for an integer parameter (decimal).
        ModValue::Str(s) => s
            .trim()
            .parse()
            .map_err(|_| ValueError::NotAnInteger(s.clone())),
    }
}

fn str_of(v: &ModValue) -> VResult<String> {
    match v {
        ModValue::Str(s) => Ok(s.clone()),
        ModValue::Int(n) => Err(ValueError::NumberForString(*n)),
    }
}

/// int or string, as the user/group parameters take.
fn name_of(v: &ModValue) -> String {
    match v {
        ModValue::Str(s) => s.clone(),
        ModValue::Int(n) => n.to_string(),
    }
}

fn range_of<T: TryFrom<i64>>(v: &ModValue, lo: i64, hi: i64) -> VResult<T> {
    in_range(int_of(v)?, lo, hi)
}

fn in_range<T: TryFrom<i64>>(got: i64, lo: i64, hi: i64) -> VResult<T> {
    let out = ValueError::OutOfRange { lo, hi, got };
    if got < lo || got > hi {
        return Err(out);
    }
    T::try_from(got).map_err(|_| out)
}

/// A byte size: an integer is MiB (as `spool_max_mb`), a string carries
/// its unit (`"512K"`, `"256M"`, `"2G"`; binary multiples), 1 MiB to
/// `max_gib` GiB (docs/decisions.md §7).
fn size_of(v: &ModValue, max_gib: u64) -> VResult<usize> {
    const MIB: u64 = 1 << 20;
    let bytes = match v {
        ModValue::Int(n) => u64::try_from(*n)
            .ok()
            .and_then(|n| n.checked_mul(MIB))
            .ok_or_else(|| ValueError::NotASize(n.to_string()))?,
        ModValue::Str(s) => {
            let t = s.trim();
            let (num, unit) = t.split_at(t.len() - t.chars().last().map_or(0, char::len_utf8));
            let mult = match unit {
                "K" | "k" => 1 << 10,
                "M" | "m" => MIB,
                "G" | "g" => 1 << 30,
                _ => return Err(ValueError::NotASize(s.clone())),
            };
            num.trim()
                .parse::<u64>()
                .ok()
                .and_then(|n| n.checked_mul(mult))
                .ok_or_else(|| ValueError::NotASize(s.clone()))?
        }
    };
    if !(MIB..=max_gib << 30).contains(&bytes) {
        return Err(ValueError::SizeOutOfRange {
            max_gib,
            got: bytes,
        });
    }
    usize::try_from(bytes).map_err(|_| ValueError::SizeOutOfRange {
        max_gib,
        got: bytes,
    })
}

/// An age for retention: `"90s"`, `"30m"`, `"12h"`, `"7d"`, or an integer
/// number of seconds; 1 s to 10 years (longer is a typo, not a policy).
fn age_of(v: &ModValue) -> VResult<Duration> {
    let secs = match v {
        ModValue::Int(n) => u64::try_from(*n).map_err(|_| ValueError::NotAnAge(n.to_string()))?,
        ModValue::Str(s) => age_secs(s).ok_or_else(|| ValueError::NotAnAge(s.clone()))?,
    };
    if !(1..=3650 * 86_400).contains(&secs) {
        return Err(ValueError::AgeOutOfRange(secs));
    }
    Ok(Duration::from_secs(secs))
}

fn age_secs(s: &str) -> Option<u64> {
    let t = s.trim();
    let unit = t.chars().last()?;
    let mult = match unit {
        's' | 'S' => 1,
        'm' | 'M' => 60,
        'h' | 'H' => 3600,
        'd' | 'D' => 86_400,
        c if c.is_ascii_digit() => return t.parse().ok(),
        _ => return None,
    };
    let num = t[..t.len() - 1].trim();
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    num.parse::<u64>().ok()?.checked_mul(mult)
}

/// `retention_method`'s `METHOD=AGE`.
fn method_age_of(v: &ModValue) -> VResult<MethodAge> {
    let s = str_of(v)?;
    let Some((m, age)) = s.split_once('=') else {
        return Err(ValueError::NotAMethodAge(s));
    };
    let method = m.trim();
    // RFC 3261 token characters: what a method column can hold.
    let token = |c: char| c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c);
    if method.is_empty() || !method.chars().all(token) {
        return Err(ValueError::NotAMethod(method.to_string()));
    }
    Ok(MethodAge {
        method: method.to_string(),
        max_age: age_of(&ModValue::Str(age.to_string()))?,
    })
}

fn bool_of(v: &ModValue) -> VResult<bool> {
    Ok(int_of(v)? != 0)
}

/// A tm timer in milliseconds, within what the transaction layer accepts.
fn timer_of(v: &ModValue) -> VResult<std::time::Duration> {
    let max = i64::try_from(MAX_TIMER.as_millis()).unwrap_or(i64::MAX);
    let ms: u64 = range_of(v, 1, max)?;
    Ok(std::time::Duration::from_millis(ms))
}

fn facility_of(name: &str) -> VResult<u8> {
    SYSLOG_FACILITIES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name.trim()))
        .map(|(_, code)| *code)
        .ok_or_else(|| ValueError::UnknownFacility(name.to_string()))
}

/// SQL identifier rule for table names (docs/decisions.md §3).
fn is_sql_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.len() <= 64
}

fn ignored_reason(name: &str) -> Option<&'static str> {
    IGNORED_SETTINGS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, why)| *why)
}

impl Builder {
    fn err(&mut self, pos: &Pos, msg: impl Into<String>) {
        self.diags.push(Diagnostic::at(pos, msg));
    }

    fn warn(&mut self, pos: &Pos, msg: impl Into<String>) {
        self.c.warnings.push(Diagnostic::at(pos, msg));
    }

    fn note(&mut self, level: log::Level, pos: &Pos, msg: impl Into<String>) {
        self.c.notes.push(Note {
            level,
            diag: Diagnostic::at(pos, msg),
        });
    }

    /// One warning for a setting of [`IGNORED_SETTINGS`], once its value
    /// has passed its type check.
    fn warn_if_ignored(&mut self, name: &str, pos: &Pos) {
        if let Some(why) = ignored_reason(name) {
            self.warn(pos, format!("{name} is accepted but ignored: {why}"));
        }
    }

    // ---- globals ----

    fn global(&mut self, g: &ast::Global) {
        let name = g.name.as_str();
        if !KNOWN_GLOBALS.contains(&name) && !SIPTRACED_GLOBALS.contains(&name) {
            self.err(&g.pos, format!("unknown core parameter '{name}'"));
            return;
        }
        match self.apply_global(g) {
            Ok(()) => self.warn_if_ignored(name, &g.pos),
            Err(e) => self.err(&g.value_pos, format!("{name}: {e}")),
        }
    }

    fn apply_global(&mut self, g: &ast::Global) -> VResult<()> {
        let v = &g.value;
        let int = || match v {
            GlobalValue::Int(n) => Ok(*n),
            _ => Err(ValueError::NotANumber(v.to_string())),
        };
        let boolean = || match v {
            GlobalValue::Int(n) => Ok(*n != 0),
            _ => Err(ValueError::NotABool(v.to_string())),
        };
        let text = || match v {
            GlobalValue::Str(s) | GlobalValue::Word(s) => Ok(s.clone()),
            GlobalValue::Int(n) => Ok(n.to_string()),
            GlobalValue::Sockets(_) => Err(ValueError::NotAString(v.to_string())),
        };
        let u32_of = |n: i64| in_range::<u32>(n, 0, u32::MAX.into());
        let name = g.name.as_str();
        match name {
            "listen" => match v {
                GlobalValue::Sockets(s) => self.listens.extend(s.iter().cloned()),
                _ => return Err(ValueError::NotAnAddress),
            },
            "alias" => self.alias(v)?,
            "port" => self.c.port = port_of(int()?)?,
            "debug" => self.c.debug = in_range(int()?, i32::MIN.into(), i32::MAX.into())?,
            "log_stderror" => self.c.log_stderror = boolean()?,
            "log_facility" => self.c.log_facility = facility_of(&text()?)?,
            "log_name" => self.c.log_name = text()?,
            "fork" => self.c.fork = boolean()?,
            "user" | "uid" => self.c.user = Some(text()?),
            "group" | "gid" => self.c.group = Some(text()?),
            "mpath" | "loadpath" => self.c.mpath = Some(text()?),
            "rundir" | "run_dir" => self.c.run_dir = text()?,
            "server_header" => self.c.server_header = Some(text()?),
            "user_agent_header" => self.c.user_agent_header = Some(text()?),
            "server_signature" => self.c.server_signature = boolean()?,
            "max_while_loops" => self.c.max_while_loops = u32_of(int()?)?,
            "disable_tcp" => self.c.disable_tcp = boolean()?,
            "dns_retr_time" => {
                self.c.dns.retr_time = Duration::from_secs(in_range::<u64>(int()?, 1, 60)?)
            }
            "dns_retr_no" => self.c.dns.retr_no = in_range(int()?, 1, 10)?,
            "dns_try_naptr" => self.c.dns.try_naptr = boolean()?,
            "dns_servers" => {
                if matches!(self.c.dns.servers, DnsServers::ResolvConf(_)) {
                    return Err(ValueError::DnsServersTwice);
                }
                self.c.dns.servers = DnsServers::Servers(dns_servers_of(&text()?)?);
            }
            "dns_resolv_conf" => {
                if matches!(self.c.dns.servers, DnsServers::Servers(_)) {
                    return Err(ValueError::DnsServersTwice);
                }
                self.c.dns.servers = DnsServers::ResolvConf(PathBuf::from(text()?));
            }
            "udp_turn_datagrams" => self.c.udp_turn_datagrams = in_range(int()?, 1, 65_536)?,
            "udp_turn_kb" => self.c.udp_turn_kb = in_range(int()?, 64, 1 << 20)?,
            "metrics_listen" => {
                let t = text()?;
                let addr = t
                    .parse::<SocketAddr>()
                    .map_err(|_| ValueError::BadMetricsListen(t.clone()))?;
                self.c.metrics_listen = Some(addr);
            }
            // Type-checked as Kamailio would, then ignored (IGNORED_SETTINGS).
            "sip_warning" | "auto_aliases" => {
                boolean()?;
            }
            "advertised_port" => {
                port_of(int()?)?;
            }
            "tcp_connection_lifetime" => {
                self.c.tcp.lifetime = Duration::from_secs(in_range::<u64>(int()?, 1, 1 << 31)?)
            }
            "tcp_max_connections" => {
                self.c.tcp.max_connections = in_range::<usize>(int()?, 1, 1 << 20)?
            }
            "tcp_connect_timeout" => {
                self.c.tcp.connect_timeout = Duration::from_secs(in_range::<u64>(int()?, 1, 3600)?)
            }
            "tcp_conn_wq_max" => self.c.tcp.wq_max = in_range::<usize>(int()?, 1024, 1 << 30)?,
            "tcp_send_timeout" => {
                u32_of(int()?)?;
            }
            "udp_mtu" => self.c.udp_mtu = in_range(int()?, 0, 65_535)?,
            "maxbuffer" => self.c.maxbuffer = in_range::<usize>(int()?, 0, 1 << 30)?,
            "udp_mtu_try_proto" => {
                let t = text()?;
                self.c.udp_mtu_try_proto = match Transport::parse(&t) {
                    Ok(p) => p,
                    // Kamailio accepts SCTP here; siptraced has none.
                    Err(TransportError::Unserved(_)) => {
                        self.warn(
                            &g.pos,
                            format!(
                                "udp_mtu_try_proto={t}: not served; large requests stay on UDP"
                            ),
                        );
                        Transport::Udp
                    }
                    Err(_) => return Err(ValueError::BadTransport(t)),
                };
            }
            "advertised_address" | "log_prefix" | "workdir" | "wdir" => {
                text()?;
            }
            "enable_tls" | "tls_enable" => self.c.enable_tls = boolean()?,
            "disable_tls" | "tls_disable" => self.c.enable_tls = !boolean()?,
            "enable_sctp" if boolean().unwrap_or(false) => {
                self.warn(
                    &g.pos,
                    format!("{name}: siptraced speaks SIP over UDP, TCP and TLS only; ignored"),
                );
            }
            "chroot" => self.warn(&g.pos, "chroot is not supported; ignored"),
            n if PROCESS_KNOBS.contains(&n) => {
                int()?;
                self.process_knobs.push((n.to_string(), g.pos.clone()));
            }
            n => self.note(
                log::Level::Debug,
                &g.pos,
                format!("core parameter '{n}' accepted and ignored"),
            ),
        }
        Ok(())
    }

    fn alias(&mut self, v: &GlobalValue) -> VResult<()> {
        let GlobalValue::Sockets(socks) = v else {
            return Err(ValueError::NotAHostName);
        };
        for s in socks {
            if s.advertise.is_some() {
                return Err(ValueError::AliasAdvertise);
            }
            let port = s.port.map(|p| port_of(p.into())).transpose()?;
            self.c.aliases.push((s.host.clone(), port));
        }
        Ok(())
    }

    /// One info line for every multi-process knob set (docs/decisions.md §5).
    fn finish_process_knobs(&mut self) {
        let Some((_, pos)) = self.process_knobs.first().cloned() else {
            return;
        };
        let names: Vec<&str> = self.process_knobs.iter().map(|(n, _)| n.as_str()).collect();
        let verb = if names.len() == 1 { "is" } else { "are" };
        let msg = format!(
            "{} {verb} accepted but siptraced runs one thread by design",
            names.join(", ")
        );
        self.note(log::Level::Info, &pos, msg);
    }

    /// Resolves listen specs: proto-less ones open udp and tcp, missing ports
    /// take the `port` global, and no listen at all means every address —
    /// the one place that default is made.
    fn finish_listen(&mut self) {
        let protos_for = |p: Option<Transport>, disable_tcp: bool| -> Vec<Transport> {
            match p {
                Some(p) => vec![p],
                None if disable_tcp => vec![Transport::Udp],
                None => vec![Transport::Udp, Transport::Tcp],
            }
        };
        if self.listens.is_empty() {
            for proto in protos_for(None, self.c.disable_tcp) {
                self.c.listen.push(ListenSpec {
                    proto,
                    host: "*".into(),
                    port: self.c.port,
                    advertise: None,
                });
            }
            return;
        }
        let mut unserved = None;
        for s in std::mem::take(&mut self.listens) {
            let proto = match &s.proto {
                None => None,
                Some(p) => match Transport::parse(p) {
                    Ok(p) => Some(p),
                    // Kamailio has it: the config still starts, without
                    // that socket.
                    Err(TransportError::Unserved(_)) => {
                        self.warn(
                            &s.pos,
                            format!("listen={s}: only UDP, TCP and TLS are served; this socket is not opened"),
                        );
                        unserved.get_or_insert(s.pos.clone());
                        continue;
                    }
                    Err(e) => {
                        self.err(&s.pos, format!("listen: {e}"));
                        continue;
                    }
                },
            };
            if proto == Some(Transport::Tls) && !(self.c.enable_tls && self.c.module_loaded("tls"))
            {
                self.warn(
                    &s.pos,
                    format!(
                        "listen={s}: TLS needs enable_tls=yes and loadmodule \"tls.so\"; this socket is not opened"
                    ),
                );
                unserved.get_or_insert(s.pos.clone());
                continue;
            }
            // A TLS socket without a port takes Kamailio's tls_port_no (5061).
            let default_port = match proto {
                Some(Transport::Tls) => crate::sip::DEFAULT_TLS_PORT,
                _ => self.c.port,
            };
            let port = match s.port.map(|p| port_of(p.into())).transpose() {
                Ok(p) => p.unwrap_or(default_port),
                Err(m) => {
                    self.err(&s.pos, format!("listen: {m}"));
                    continue;
                }
            };
            let advertise = match &s.advertise {
                None => None,
                Some((h, p)) => match p.map(|p| port_of(p.into())).transpose() {
                    Ok(ap) => Some((h.clone(), ap.unwrap_or(port))),
                    Err(m) => {
                        self.err(&s.pos, format!("listen: advertise {m}"));
                        continue;
                    }
                },
            };
            for proto in protos_for(proto, self.c.disable_tcp) {
                self.c.listen.push(ListenSpec {
                    proto,
                    host: s.host.clone(),
                    port,
                    advertise: advertise.clone(),
                });
            }
        }
        // An empty list would mean "every address" to the daemon.
        if let (true, Some(pos)) = (self.c.listen.is_empty(), unserved) {
            self.err(
                &pos,
                "listen: no socket siptraced can serve; add listen=udp:IP:PORT",
            );
        }
    }

    // ---- modules ----

    fn loadmodule(&mut self, path: &str, pos: &Pos) {
        let file = path.rsplit('/').next().unwrap_or(path);
        let base = file.strip_suffix(".so").unwrap_or(file);
        let name = MODULE_ALIASES
            .iter()
            .find(|(old, _)| *old == base)
            .map(|(_, new)| *new)
            .unwrap_or(base);
        if !SUPPORTED_MODULES.contains(&name) {
            self.err(
                pos,
                format!(
                    "unknown module \"{base}\" (loadmodule \"{path}\"); siptraced supports: {}",
                    SUPPORTED_MODULES.join(", ")
                ),
            );
            return;
        }
        if self.c.module_loaded(name) {
            self.warn(pos, format!("module {name} is loaded twice"));
            return;
        }
        self.c.modules.push(name.to_string());
        match name {
            "siptrace" => self.c.siptrace = Some(SiptraceParams::default()),
            "mi_fifo" => self.c.mi_fifo = Some(MiFifoParams::default()),
            "jsonrpcs" => self.c.jsonrpcs = Some(JsonrpcsParams::default()),
            "tm" => self.tm_pos.loadmodule = Some(pos.clone()),
            _ => {}
        }
    }

    fn modparam(&mut self, m: &ast::ModParam) {
        let module = m.module.as_str();
        let plain = !module.is_empty()
            && module
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !plain {
            self.err(
                &m.pos,
                format!("modparam: \"{module}\" must be a plain module name (regular expressions such as \"tm|sl\" are not supported)"),
            );
            return;
        }
        let module = MODULE_ALIASES
            .iter()
            .find(|(old, _)| *old == module)
            .map(|(_, new)| *new)
            .unwrap_or(module);
        if !self.c.module_loaded(module) {
            self.err(
                &m.pos,
                format!("modparam for module \"{module}\", which is not loaded: put loadmodule \"{module}.so\" before it"),
            );
            return;
        }
        let r = match module {
            "siptrace" => self.siptrace_param(m),
            "mi_fifo" => self.mi_fifo_param(m),
            "jsonrpcs" => self.jsonrpcs_param(m),
            "tm" => self.tm_param(m),
            "rr" => self.rr_param(m),
            "maxfwd" => self.maxfwd_param(m),
            "tls" => self.tls_param(m),
            _ => {
                self.note(
                    log::Level::Debug,
                    &m.pos,
                    format!("modparam {module}.{} accepted and ignored", m.param),
                );
                Ok(())
            }
        };
        match r {
            Ok(()) => self.warn_if_ignored(&format!("{module}.{}", m.param), &m.pos),
            Err(e) => self.err(&m.value_pos, format!("modparam {module}.{}: {e}", m.param)),
        }
    }

    fn siptrace_param(&mut self, m: &ast::ModParam) -> VResult<()> {
        let p = m.param.as_str();
        refuse_unsupported_siptrace_param(p)?;
        if self.siptrace_mirror_param(m)?
            || self.siptrace_spool_param(m)?
            || self.siptrace_mask_param(m)?
            || self.siptrace_retention_param(m)?
            || self.siptrace_scope_param(m)?
        {
            return Ok(());
        }
        let v = &m.value;
        let t = self.c.siptrace.get_or_insert_with(SiptraceParams::default);
        match p {
            "db_url" => t.db_url = str_of(v)?,
            "table" => {
                let s = str_of(v)?;
                if !is_sql_identifier(&s) {
                    return Err(ValueError::BadTableName(s));
                }
                t.table = s;
            }
            // Kamailio's MAX_FLAG is 31; an unset flag disables flag-driven tracing.
            "trace_flag" => t.trace_flag = Some(range_of(v, 0, 31)?),
            "trace_on" => t.trace_on = range_of(v, i32::MIN.into(), i32::MAX.into())?,
            "traced_user_avp" => t.traced_user_avp = opt_avp(v)?,
            "trace_table_avp" => t.trace_table_avp = opt_avp(v)?,
            "trace_local_ip" => t.trace_local_ip = Some(str_of(v)?).filter(|s| !s.is_empty()),
            "trace_to_database" => t.trace_to_database = bool_of(v)?,
            "trace_sl_acks" => t.trace_sl_acks = bool_of(v)?,
            // Type-checked, then ignored (IGNORED_SETTINGS).
            "xheaders_write" | "xheaders_read" => {
                bool_of(v)?;
            }
            // Sanity bounds: a batch above a million rows or a connect
            // timeout above 10 minutes is a typo, not a setting.
            "db_batch_rows" => t.db_batch_rows = range_of(v, 1, 1_000_000)?,
            "db_connect_timeout_ms" => t.db_connect_timeout_ms = range_of(v, 1, 600_000)?,
            // Above a second, rows would sit in memory longer than any
            // database needs to amortise a commit.
            "db_flush_ms" => t.db_flush_ms = range_of(v, 0, 1000)?,
            // Insert tuning knobs of Kamailio: our batching replaces them.
            "trace_delayed" | "trace_db_mode" => {
                int_of(v)?;
                self.note(
                    log::Level::Debug,
                    &m.pos,
                    format!("siptrace {p} accepted and ignored: rows are batched per reactor turn"),
                );
            }
            _ => {
                return Err(ValueError::UnknownParam {
                    module: "siptrace",
                    hint: String::new(),
                });
            }
        }
        Ok(())
    }

    /// The duplicate/HEP parameters; false when `m` is none of them.
    fn siptrace_mirror_param(&mut self, m: &ast::ModParam) -> VResult<bool> {
        let v = &m.value;
        let pos = Some(m.value_pos.clone());
        let t = self.c.siptrace.get_or_insert_with(SiptraceParams::default);
        let at = &mut self.c.siptrace_pos;
        match m.param.as_str() {
            // Kamailio refuses a bad URI at init; we do it at load, with the
            // position. Host names are resolved at start-up (daemon.rs).
            "duplicate_uri" => {
                let uri = str_of(v)?;
                t.duplicate_uri = if uri.trim().is_empty() {
                    None
                } else {
                    Some(DupTarget::parse(&uri)?)
                };
                at.duplicate_uri = t.duplicate_uri.as_ref().and(pos);
            }
            "hep_mode_on" => {
                t.hep_mode_on = bool_of(v)?;
                at.hep_mode_on = pos;
            }
            "hep_version" => {
                t.hep_version = Some(range_of(v, 1, 3)?);
                at.hep_version = pos;
            }
            "hep_capture_id" => {
                t.hep_capture_id = range_of(v, 0, u32::MAX.into())?;
                at.hep_capture_id = pos;
            }
            "auth_key" => t.auth_key = Some(str_of(v)?),
            "send_sock_addr" | "force_send_sock" => {
                t.send_sock_addr = Some(parse_send_sock(&str_of(v)?)?);
                at.send_sock_addr = pos;
            }
            // 1 KiB to 1 GiB per TCP capture destination.
            "mirror_tcp_queue_kb" => t.mirror_tcp_queue_kb = range_of(v, 1, 1 << 20)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The masking parameters (docs/decisions.md §13); false when `m` is
    /// none of them.
    fn siptrace_mask_param(&mut self, m: &ast::ModParam) -> VResult<bool> {
        let v = &m.value;
        let t = self.c.siptrace.get_or_insert_with(SiptraceParams::default);
        match m.param.as_str() {
            "mask" => t.mask.set_kinds(&str_of(v)?)?,
            "mask_headers" => t.mask.set_headers(&str_of(v)?)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The spool parameters; false when `m` is none of them.
    fn siptrace_spool_param(&mut self, m: &ast::ModParam) -> VResult<bool> {
        let v = &m.value;
        let t = self.c.siptrace.get_or_insert_with(SiptraceParams::default);
        match m.param.as_str() {
            "spool_dir" => t.spool_dir = Some(str_of(v)?),
            // Sanity bounds only: up to 1 TiB of spool.
            "spool_max_mb" => t.spool_max_mb = range_of(v, 1, 1 << 20)?,
            "spool_full_policy" => {
                t.spool_full_policy = match str_of(v)?.as_str() {
                    "drop" => SpoolFullPolicy::Drop,
                    "stop" => SpoolFullPolicy::Stop,
                    other => return Err(ValueError::BadSpoolPolicy(other.to_string())),
                }
            }
            "spool_fsync" => t.spool_fsync = bool_of(v)?,
            "state_dir" => t.state_dir = Some(str_of(v)?),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Runtime filters and dialog tracking (docs/decisions.md §16);
    /// false when `m` is none of them.
    fn siptrace_scope_param(&mut self, m: &ast::ModParam) -> VResult<bool> {
        let v = &m.value;
        let t = self.c.siptrace.get_or_insert_with(SiptraceParams::default);
        match m.param.as_str() {
            "filter_file" => t.filter_file = Some(str_of(v)?),
            "filter_max_ttl" => t.filter_max_ttl = age_of(v)?,
            "dialog_lifetime" => t.dialogs.lifetime = age_of(v)?,
            "trace_mode" => {
                t.trace_mode = range_of(v, 0, 7)?;
                self.c.siptrace_pos.trace_mode = Some(m.value_pos.clone());
            }
            // Sanity bounds: up to 10 million dialogs, 4 GiB.
            "dialog_max" => t.dialogs.max_entries = range_of(v, 1, 10_000_000)?,
            "dialog_max_kb" => {
                t.dialogs.max_bytes = range_of::<usize>(v, 1, 4 << 20)?.saturating_mul(1024)
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The retention parameters; false when `m` is none of them.
    fn siptrace_retention_param(&mut self, m: &ast::ModParam) -> VResult<bool> {
        let v = &m.value;
        let r = &mut self
            .c
            .siptrace
            .get_or_insert_with(SiptraceParams::default)
            .retention;
        match m.param.as_str() {
            "retention" => r.max_age = Some(age_of(v)?),
            // Sanity bound: a trillion rows is no table anyone keeps.
            "retention_rows" => r.max_rows = Some(range_of(v, 1, 1_000_000_000_000)?),
            "retention_method" => {
                let ma = method_age_of(v)?;
                if r.methods.iter().any(|x| x.method == ma.method) {
                    return Err(ValueError::MethodTwice(ma.method));
                }
                r.methods.push(ma);
            }
            "retention_interval" => r.interval = age_of(v)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Checks between siptrace params, once all are known (their order in
    /// the file does not matter): HEPv2's 16-bit capture id, and TCP
    /// duplicates only with a format that can be framed on a stream.
    fn finish_mirror(&mut self) {
        let Some(t) = self.c.siptrace.clone() else {
            return;
        };
        let at = self.c.siptrace_pos.clone();
        let wide = u16::try_from(t.hep_capture_id).is_err();
        if let (Some(2), true, Some(pos)) = (t.hep_version, wide, &at.hep_capture_id) {
            let msg = HepError::CaptureIdTooWide {
                capture_id: t.hep_capture_id,
            };
            self.err(pos, format!("modparam siptrace.hep_capture_id: {msg}"));
        }
        if let (true, None, Some(pos)) = (t.hep_mode_on, &t.duplicate_uri, &at.hep_mode_on) {
            self.warn(
                pos,
                "hep_mode_on is set but duplicate_uri is not: only sip_trace(\"sip:host:port\") \
                 calls will send HEP",
            );
        }
        if let Some(pos) = &at.trace_mode {
            let why = if t.trace_mode & 5 != 0 && t.duplicate_uri.is_none() {
                Some("bits 1 and 4 send copies to duplicate_uri, which is not set")
            } else if t.trace_mode & 1 != 0 && !t.hep_mode_on {
                Some("bit 1 sends HEP copies: set hep_mode_on to 1 (or use bit 4 for raw copies)")
            } else if t.trace_mode & 4 != 0 && t.hep_mode_on {
                Some("bit 4 sends raw copies, but hep_mode_on asks for HEP: use bit 1")
            } else {
                None
            };
            if let Some(why) = why {
                self.err(pos, format!("modparam siptrace.trace_mode: {why}"));
            }
        }
        let tcp = t
            .duplicate_uri
            .as_ref()
            .is_some_and(|d| d.transport == Transport::Tcp);
        if tcp && t.hep_mode_on && t.hep_version() < 3 {
            if let Some(pos) = &at.duplicate_uri {
                let version_at = match &at.hep_version {
                    Some(p) => {
                        format!(" (hep_version {} at {}:{})", t.hep_version(), p.line, p.col)
                    }
                    None => String::new(),
                };
                self.err(
                    pos,
                    format!(
                        "modparam siptrace.duplicate_uri: HEPv{}{version_at} has no total length, so it \
                         cannot be framed on a TCP stream; use hep_version 3 or transport=udp",
                        t.hep_version()
                    ),
                );
            }
        }
    }

    /// send_sock_addr must be one of our UDP sockets (copies leave from
    /// it). Decided here when the listens say so: an IP-literal listen
    /// must have the same address and port; a wildcard listen (`*`,
    /// `0.0.0.0`, `::` — each of which daemon.rs expands to every
    /// interface address, of both families) only the same port, since
    /// which addresses the host has is known at start-up only (daemon.rs
    /// checks again there); a listen by host name is left to start-up too.
    fn finish_send_sock(&mut self) {
        let (Some(addr), Some(pos)) = (
            self.c.siptrace.as_ref().and_then(|t| t.send_sock_addr),
            self.c.siptrace_pos.send_sock_addr.clone(),
        ) else {
            return;
        };
        let udp = || self.c.listen.iter().filter(|l| l.proto == Transport::Udp);
        let may_match = |l: &ListenSpec| {
            l.port == addr.port()
                && match l.host.parse::<IpAddr>() {
                    _ if is_wildcard(&l.host) => {
                        !addr.ip().is_unspecified() && !addr.ip().is_multicast()
                    }
                    Ok(ip) => ip == addr.ip(),
                    Err(_) => true,
                }
        };
        if udp().any(may_match) {
            return;
        }
        let listening = udp().map(listen_name).collect::<Vec<_>>().join(", ");
        let e = ValueError::NotAListenSocket {
            addr,
            listening: if listening.is_empty() {
                "no UDP socket".into()
            } else {
                listening
            },
        };
        self.err(&pos, format!("modparam siptrace.send_sock_addr: {e}"));
    }

    fn mi_fifo_param(&mut self, m: &ast::ModParam) -> VResult<()> {
        let v = &m.value;
        let mut warn = None;
        let f = self.c.mi_fifo.get_or_insert_with(MiFifoParams::default);
        match m.param.as_str() {
            "fifo_name" => f.fifo_name = Some(str_of(v)?),
            "fifo_mode" => {
                let mode: u32 = range_of(v, 0, 0o7777)?;
                f.fifo_mode = if mode == 0 {
                    // As mi_fifo does: 0 would make the FIFO unusable.
                    warn = Some("mi_fifo fifo_mode 0 is not usable; using 0600");
                    0o600
                } else {
                    mode
                };
            }
            "fifo_user" => f.fifo_user = Some(name_of(v)),
            "fifo_group" => f.fifo_group = Some(name_of(v)),
            "reply_dir" => f.reply_dir = str_of(v)?,
            "reply_indent" => f.reply_indent = str_of(v)?,
            _ => {
                return Err(ValueError::UnknownParam {
                    module: "mi_fifo",
                    hint: " (fifo_name, fifo_mode, fifo_user, fifo_group, reply_dir, reply_indent)"
                        .into(),
                });
            }
        }
        if let Some(w) = warn {
            self.warn(&m.value_pos, w);
        }
        Ok(())
    }

    fn jsonrpcs_param(&mut self, m: &ast::ModParam) -> VResult<()> {
        let v = &m.value;
        let j = self.c.jsonrpcs.get_or_insert_with(JsonrpcsParams::default);
        match m.param.as_str() {
            "fifo_name" => j.fifo_name = str_of(v)?,
            "fifo_mode" => j.fifo_mode = range_of(v, 0, 0o7777)?,
            "fifo_user" => j.fifo_user = Some(name_of(v)),
            "fifo_group" => j.fifo_group = Some(name_of(v)),
            "fifo_reply_dir" => j.fifo_reply_dir = str_of(v)?,
            "pretty_format" => j.pretty_format = bool_of(v)?,
            "transport" => j.transport = range_of(v, 0, 7)?,
            // Datagram/TCP transports of jsonrpcs: accepted, not served.
            "dgram_socket" | "dgram_workers" | "dgram_timeout" | "dgram_mode" | "dgram_user"
            | "dgram_group" | "tcp_socket" => self.note(
                log::Level::Debug,
                &m.pos,
                format!("jsonrpcs {} accepted and ignored", m.param),
            ),
            _ => {
                return Err(ValueError::UnknownParam {
                    module: "jsonrpcs",
                    hint: String::new(),
                });
            }
        }
        Ok(())
    }

    fn tm_param(&mut self, m: &ast::ModParam) -> VResult<()> {
        let v = &m.value;
        let pos = Some(m.value_pos.clone());
        match m.param.as_str() {
            p @ ("fr_timer" | "fr_inv_timer") => {
                let d = timer_of(v)?;
                // Kamailio ≥3.0 takes milliseconds; 1.x took seconds.
                if d.as_millis() < 1000 {
                    let ms = d.as_millis();
                    self.warn(
                        &m.value_pos,
                        format!("tm {p}={ms} is in milliseconds (Kamailio 1.x used seconds: did you mean {}?)", ms * 1000),
                    );
                }
                if p == "fr_timer" {
                    self.tm.fr_timer = d;
                } else {
                    self.tm.fr_inv_timer = d;
                }
            }
            "retr_timer1" => {
                self.tm.t1 = timer_of(v)?;
                self.tm_pos.retr_timer1 = pos;
            }
            "retr_timer2" => {
                self.tm.t2 = timer_of(v)?;
                self.tm_pos.retr_timer2 = pos;
            }
            "max_inv_lifetime" => self.tm.max_inv_lifetime = timer_of(v)?,
            "max_noninv_lifetime" => self.tm.max_noninv_lifetime = timer_of(v)?,
            "restart_fr_on_each_reply" => self.tm.restart_fr_on_each_reply = bool_of(v)?,
            // Kamailio tm's wait timer: how long a completed transaction
            // stays to absorb late retransmissions (ms, as in Kamailio ≥3).
            "wt_timer" => self.tm.wt_timer = timer_of(v)?,
            // siptraced's own bound on live transactions (Kamailio bounds
            // them by its shared memory size instead).
            "max_transactions" => {
                self.tm.max_transactions = range_of(v, 1, i64::from(u32::MAX))?;
            }
            // siptraced's bound on the message bytes transactions hold
            // (Kamailio's is its shared memory size): beyond it, 503.
            "max_tsx_bytes" => self.tm.max_bytes = size_of(v, 1024)?,
            p => self.note(
                log::Level::Debug,
                &m.pos,
                format!("tm {p} accepted and ignored"),
            ),
        }
        Ok(())
    }

    /// Every tm value was range-checked as it was read; what is left is
    /// T2 ≥ T1, reported at the later of the two settings (the one that
    /// broke it), naming where the other one was set.
    fn finish_tm(&mut self) {
        let (t1, t2) = (self.tm.t1.as_millis(), self.tm.t2.as_millis());
        let (p1, p2) = (&self.tm_pos.retr_timer1, &self.tm_pos.retr_timer2);
        let where_ = |p: &Option<Pos>| match p {
            Some(p) => format!(" at {}:{}", p.line, p.col),
            None => ", the default".into(),
        };
        if t2 < t1 {
            let t2_later = match (p1, p2) {
                (Some(a), Some(b)) => (b.line, b.col) > (a.line, a.col),
                (_, b) => b.is_some(),
            };
            let (pos, msg) = if t2_later {
                (
                    p2.clone(),
                    format!(
                        "modparam tm.retr_timer2: {t2} ms is less than retr_timer1 ({t1} ms{}); \
                         T2 caps the retransmission interval that starts at T1",
                        where_(p1)
                    ),
                )
            } else {
                (
                    p1.clone(),
                    format!(
                        "modparam tm.retr_timer1: {t1} ms is more than retr_timer2 ({t2} ms{}); \
                         T2 caps the retransmission interval that starts at T1",
                        where_(p2)
                    ),
                )
            };
            if let Some(pos) = pos.or_else(|| self.tm_pos.loadmodule.clone()) {
                self.err(&pos, msg);
            }
            return;
        }
        match std::mem::take(&mut self.tm).validated() {
            Ok(v) => self.c.tm = v,
            // Unreachable while every field is range-checked above; said
            // at the module rather than lost.
            Err(e) => {
                if let Some(pos) = self.tm_pos.loadmodule.clone() {
                    self.err(&pos, format!("tm parameters: {e}"));
                }
            }
        }
    }

    fn rr_param(&mut self, m: &ast::ModParam) -> VResult<()> {
        let v = &m.value;
        match m.param.as_str() {
            "enable_full_lr" => self.c.rr.enable_full_lr = bool_of(v)?,
            "append_fromtag" => self.c.rr.append_fromtag = bool_of(v)?,
            "enable_double_rr" => self.c.rr.enable_double_rr = bool_of(v)?,
            p => self.note(
                log::Level::Debug,
                &m.pos,
                format!("rr {p} accepted and ignored"),
            ),
        }
        Ok(())
    }

    /// Kamailio's tls module parameters for the default server and client
    /// profile (a `tls.cfg` with per-domain profiles is not read).
    fn tls_param(&mut self, m: &ast::ModParam) -> VResult<()> {
        let v = &m.value;
        let t = &mut self.c.tls;
        match m.param.as_str() {
            "certificate" => t.certificate = Some(str_of(v)?.into()),
            "private_key" => t.private_key = Some(str_of(v)?.into()),
            "ca_list" => t.ca_list = Some(str_of(v)?.into()),
            "verify_certificate" => t.verify_certificate = bool_of(v)?,
            "require_certificate" => t.require_certificate = bool_of(v)?,
            "tls_method" => {
                let s = str_of(v)?;
                t.versions = crate::transport::tls::TlsVersions::parse(&s)
                    .ok_or(ValueError::BadTlsMethod(s))?;
            }
            p => self.note(
                log::Level::Debug,
                &m.pos,
                format!("tls {p} accepted and ignored"),
            ),
        }
        Ok(())
    }

    fn maxfwd_param(&mut self, m: &ast::ModParam) -> VResult<()> {
        match m.param.as_str() {
            // maxfwd's MAXFWD_UPPER_LIMIT bounds max_limit.
            "max_limit" => self.c.maxfwd_max_limit = range_of(&m.value, 1, 256)?,
            p => {
                return Err(ValueError::UnknownParam {
                    module: "maxfwd",
                    hint: format!(" '{p}'"),
                });
            }
        }
        Ok(())
    }
}

/// Kamailio siptrace parameters refused outright, with why.
fn refuse_unsupported_siptrace_param(p: &str) -> VResult<()> {
    const COLUMN_PARAMS: &[&str] = &[
        "date_column",
        "callid_column",
        "traced_user_column",
        "msg_column",
        "method_column",
        "status_column",
        "fromip_column",
        "toip_column",
        "fromtag_column",
        "direction_column",
        "time_us_column",
        "totag_column",
    ];
    const UNSUPPORTED: &[&str] = &["trace_init_mode", "evcb_msg", "send_sock_name"];
    if COLUMN_PARAMS.contains(&p) {
        return Err(ValueError::ColumnOverride);
    }
    if UNSUPPORTED.contains(&p) {
        return Err(ValueError::Unsupported);
    }
    Ok(())
}

/// `*`, `0.0.0.0` and `::` all mean every address of the host (daemon.rs).
pub(crate) fn is_wildcard(host: &str) -> bool {
    matches!(host, "*" | "0.0.0.0" | "::")
}

/// A listen as the operator would write it, for messages.
fn listen_name(l: &ListenSpec) -> String {
    if l.host.contains(':') {
        format!("{}:[{}]:{}", l.proto.as_str(), l.host, l.port)
    } else {
        format!("{}:{}:{}", l.proto.as_str(), l.host, l.port)
    }
}

fn opt_avp(v: &ModValue) -> VResult<Option<AvpName>> {
    let s = str_of(v)?;
    if s.trim().is_empty() {
        return Ok(None);
    }
    AvpName::parse_spec(&s)
        .map(Some)
        .map_err(ValueError::BadAvp)
}

fn port_of(p: i64) -> VResult<u16> {
    u16::try_from(p)
        .ok()
        .filter(|p| *p != 0)
        .ok_or(ValueError::BadPort(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cfg;
    use std::path::Path;

    const REAL: &str = include_str!("cfg/testdata/stateful-proxy.cfg");

    fn load(src: &str) -> Result<(Config, Program), String> {
        let mut no_files = |p: &Path| -> std::io::Result<String> {
            Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                p.display().to_string(),
            ))
        };
        let join = |d: Vec<Diagnostic>| {
            d.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        };
        let cfg = cfg::parse_with("k.cfg", src, &[], &mut no_files).map_err(join)?;
        build(&cfg).map_err(join)
    }

    fn config(src: &str) -> Config {
        match load(src) {
            Ok((c, _)) => c,
            Err(e) => panic!("{src}\n{e}"),
        }
    }

    const ROUTE: &str = "\nrequest_route { exit; }\n";

    #[test]
    fn defaults() {
        let c = config(&format!("loadmodule \"siptrace.so\"{ROUTE}"));
        assert_eq!(c.port, 5060);
        assert_eq!(c.debug, 0);
        assert_eq!(c.log_level(), LevelFilter::Warn);
        assert!(c.fork && !c.log_stderror && c.server_signature);
        assert_eq!((c.log_facility, c.log_name.as_str()), (3, "siptraced"));
        assert_eq!(c.max_while_loops, 100);
        assert_eq!(
            (c.udp_turn_datagrams, c.udp_turn_kb),
            (DEFAULT_UDP_TURN_DATAGRAMS, DEFAULT_UDP_TURN_KB)
        );
        assert_eq!(c.run_dir, "/run/siptraced");
        assert_eq!(
            c.listen,
            vec![
                ListenSpec {
                    proto: Transport::Udp,
                    host: "*".into(),
                    port: 5060,
                    advertise: None
                },
                ListenSpec {
                    proto: Transport::Tcp,
                    host: "*".into(),
                    port: 5060,
                    advertise: None
                },
            ]
        );
        assert_eq!(c.modules, ["siptrace"]);
        let t = c.siptrace.clone().unwrap();
        assert_eq!(t, SiptraceParams::default());
        assert_eq!(t.db_url, "sqlite:///var/lib/siptraced/siptrace.db");
        assert_eq!(t.table, "sip_trace");
        assert_eq!(t.trace_flag, None);
        assert!(t.trace_on == 0 && t.trace_to_database && t.trace_sl_acks && !t.hep_mode_on);
        assert_eq!(t.hep_version(), 3);
        assert_eq!(
            (
                t.hep_capture_id,
                t.spool_max_mb,
                t.db_batch_rows,
                t.db_flush_ms,
                t.db_connect_timeout_ms
            ),
            (1, 256, 1000, 5, 2000)
        );
        assert_eq!(t.spool_full_policy, SpoolFullPolicy::Drop);
        assert_eq!(t.mirror_tcp_queue_kb, 4096);
        assert!(t.spool_fsync);
        assert!(c.mi_fifo.is_none() && c.jsonrpcs.is_none());
        assert_eq!(*c.tm, TsxConfig::default());
        assert_eq!(
            (c.tm.fr_timer.as_millis(), c.tm.fr_inv_timer.as_millis()),
            (30000, 120000)
        );
        assert_eq!(c.maxfwd_max_limit, 256);
        assert!(c.warnings.is_empty());
        assert!(c.notes.is_empty());
        assert!(
            c.server_header_line()
                .unwrap()
                .starts_with("Server: siptraced")
        );

        let c = config(&format!(
            "loadmodule \"mi_fifo.so\"\nloadmodule \"jsonrpcs.so\"{ROUTE}"
        ));
        let f = c.mi_fifo.clone().unwrap();
        assert_eq!(
            (
                f.fifo_name,
                f.fifo_mode,
                f.reply_dir.as_str(),
                f.reply_indent.as_str()
            ),
            (None, 0o660, "/tmp/", "\t")
        );
        let j = c.jsonrpcs.clone().unwrap();
        assert_eq!(
            (
                j.fifo_mode,
                j.fifo_reply_dir.as_str(),
                j.pretty_format,
                j.transport
            ),
            (0o660, "/tmp/", true, 6)
        );
        assert_eq!(
            c.jsonrpcs_fifo_path().unwrap(),
            "/run/siptraced/kamailio_rpc.fifo"
        );
    }

    #[test]
    fn every_siptrace_param() {
        let c = config(&format!(
            r#"listen=udp:10.0.0.1:5060
loadmodule "/usr/lib/kamailio/modules/siptrace.so"
modparam("siptrace", "db_url", "postgres://u:p@db/kam")
modparam("siptrace", "table", "strace")
modparam("siptrace", "trace_flag", "22")
modparam("siptrace", "trace_on", 1)
modparam("siptrace", "traced_user_avp", "$avp(i:123)")
modparam("siptrace", "trace_table_avp", "$avp(s:siptrace_table)")
modparam("siptrace", "duplicate_uri", "sip:10.0.0.2:5085")
modparam("siptrace", "trace_local_ip", "10.1.1.1:5064")
modparam("siptrace", "trace_to_database", 0)
modparam("siptrace", "hep_mode_on", 1)
modparam("siptrace", "hep_version", 2)
modparam("siptrace", "hep_capture_id", 7)
modparam("siptrace", "auth_key", "secret")
modparam("siptrace", "force_send_sock", "udp:10.0.0.1:5060")
modparam("siptrace", "trace_sl_acks", 0)
modparam("siptrace", "spool_dir", "/var/spool/st")
modparam("siptrace", "spool_max_mb", 10)
modparam("siptrace", "spool_full_policy", "stop")
modparam("siptrace", "spool_fsync", 0)
modparam("siptrace", "state_dir", "/var/lib/st")
modparam("siptrace", "db_batch_rows", 50)
modparam("siptrace", "db_connect_timeout_ms", 500)
modparam("siptrace", "db_flush_ms", 0)
modparam("siptrace", "mirror_tcp_queue_kb", 64)
modparam("siptrace", "trace_db_mode", 1)
modparam("siptrace", "mask", "crypto")
modparam("siptrace", "mask_headers", "X-Secret,P-Token")
modparam("siptrace", "filter_file", "/var/lib/st/filters")
modparam("siptrace", "filter_max_ttl", "2h")
modparam("siptrace", "dialog_max", 50)
modparam("siptrace", "dialog_max_kb", 64)
modparam("siptrace", "dialog_lifetime", "1h")
modparam("siptrace", "trace_mode", 3){ROUTE}"#
        ));
        let t = c.siptrace.unwrap();
        let want = SiptraceParams {
            db_url: "postgres://u:p@db/kam".into(),
            table: "strace".into(),
            trace_flag: Some(22),
            trace_on: 1,
            traced_user_avp: Some(AvpName::Int(123)),
            trace_table_avp: Some(AvpName::Str("siptrace_table".into())),
            duplicate_uri: Some(DupTarget {
                host: "10.0.0.2".into(),
                port: 5085,
                transport: Transport::Udp,
            }),
            trace_local_ip: Some("10.1.1.1:5064".into()),
            trace_to_database: false,
            hep_mode_on: true,
            hep_version: Some(2),
            hep_capture_id: 7,
            auth_key: Some("secret".into()),
            send_sock_addr: Some("10.0.0.1:5060".parse().unwrap()),
            trace_sl_acks: false,
            spool_dir: Some("/var/spool/st".into()),
            spool_max_mb: 10,
            spool_full_policy: SpoolFullPolicy::Stop,
            spool_fsync: false,
            state_dir: Some("/var/lib/st".into()),
            db_batch_rows: 50,
            db_flush_ms: 0,
            db_connect_timeout_ms: 500,
            mirror_tcp_queue_kb: 64,
            mask: MaskSettings {
                auth: false,
                crypto: true,
                headers: vec!["X-Secret".into(), "P-Token".into()],
            },
            retention: RetentionPolicy::default(),
            filter_file: Some("/var/lib/st/filters".into()),
            filter_max_ttl: Duration::from_secs(7200),
            dialogs: crate::core::dialogs::Limits {
                max_entries: 50,
                max_bytes: 64 * 1024,
                lifetime: Duration::from_secs(3600),
            },
            trace_mode: 3,
        };
        assert_eq!(t, want);
        assert_eq!(t.hep_version(), 2);
        // $avp(s:user) and $avp(user) are one name.
        let c = config(&format!(
            "loadmodule \"siptrace\"\nmodparam(\"siptrace\",\"traced_user_avp\",\"$avp(user)\"){ROUTE}"
        ));
        assert_eq!(
            c.siptrace.unwrap().traced_user_avp,
            Some(AvpName::Str("user".into()))
        );
    }

    #[test]
    fn dns_globals() {
        let c = config(&format!(
            "dns_servers=\"127.0.0.1:5353, [::1]\"\ndns_retr_time=1\ndns_retr_no=3\ndns_try_naptr=1{ROUTE}"
        ));
        assert_eq!(
            c.dns.servers,
            DnsServers::Servers(vec![
                "127.0.0.1:5353".parse().unwrap(),
                "[::1]:53".parse().unwrap()
            ])
        );
        assert_eq!(c.dns.deadline(), Duration::from_secs(3));
        assert!(c.dns.try_naptr);
        let d = config(ROUTE).dns;
        assert_eq!(d.servers, DnsServers::System);
        assert_eq!(d.deadline(), Duration::from_secs(4));
        let c = config(&format!("dns_resolv_conf=\"/tmp/r.conf\"{ROUTE}"));
        assert_eq!(c.dns.servers, DnsServers::ResolvConf("/tmp/r.conf".into()));
        for bad in [
            "dns_servers=\"nameserver\"",
            "dns_servers=\"127.0.0.1:0\"",
            "dns_retr_no=0",
            "dns_servers=\"127.0.0.1\"\ndns_resolv_conf=\"/r\"",
        ] {
            assert!(load(&format!("{bad}{ROUTE}")).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn globals() {
        let c = config(&format!(
            r#"debug=3
log_stderror=yes
fork=no
children=8
port=5070
listen=udp:127.0.0.1
listen=10.0.0.1:5080 advertise 1.2.3.4
listen=tcp:[::1]:5090
alias=example.com
alias=udp:other.example.com:5061
user="kamailio"
group=kamailio
server_signature=no
max_while_loops=20
tcp_connection_lifetime=3605
memdbg=5
dns=off
log_facility=LOG_LOCAL0
rundir="/var/run/x"
udp_turn_datagrams=8
metrics_listen="[::1]:9464"
udp_turn_kb=128{ROUTE}"#
        ));
        assert_eq!(c.log_level(), LevelFilter::Debug);
        assert!(c.log_stderror && !c.fork);
        // docs/decisions.md §5: one info line, not a warning; a setting that
        // changes nothing here warns, once, at its place.
        let warnings: Vec<String> = c.warnings.iter().map(|w| w.to_string()).collect();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(c.tcp.lifetime, Duration::from_secs(3605));
        let t = config(&format!(
            "udp_mtu=1300\nudp_mtu_try_proto=TCP\ntcp_max_connections=10\ntcp_connect_timeout=3\ntcp_conn_wq_max=65536{ROUTE}"
        ));
        assert_eq!((t.udp_mtu, t.udp_mtu_try_proto), (1300, Transport::Tcp));
        // docs/decisions.md §20: 4 MiB unless set; 0 keeps the OS default.
        assert_eq!(t.maxbuffer, DEFAULT_MAXBUFFER);
        assert_eq!(config(&format!("maxbuffer=0{ROUTE}")).maxbuffer, 0);
        assert_eq!(
            config(&format!("maxbuffer=262144{ROUTE}")).maxbuffer,
            262_144
        );
        assert_eq!(
            t.tcp,
            crate::transport::tcp::TcpConfig {
                max_connections: 10,
                lifetime: crate::transport::tcp::DEFAULT_LIFETIME,
                connect_timeout: Duration::from_secs(3),
                wq_max: 65536,
            }
        );
        let info: Vec<String> = c
            .notes
            .iter()
            .filter(|n| n.level == log::Level::Info)
            .map(|n| n.diag.to_string())
            .collect();
        assert_eq!(
            info,
            ["k.cfg:4:1: children is accepted but siptraced runs one thread by design"]
        );
        let l = |p, h: &str, port, adv: Option<(&str, u16)>| ListenSpec {
            proto: p,
            host: h.into(),
            port,
            advertise: adv.map(|(a, b)| (a.to_string(), b)),
        };
        assert_eq!(
            c.listen,
            vec![
                l(Transport::Udp, "127.0.0.1", 5070, None),
                l(Transport::Udp, "10.0.0.1", 5080, Some(("1.2.3.4", 5080))),
                l(Transport::Tcp, "10.0.0.1", 5080, Some(("1.2.3.4", 5080))),
                l(Transport::Tcp, "::1", 5090, None),
            ]
        );
        assert_eq!(
            c.aliases,
            vec![
                ("example.com".to_string(), None),
                ("other.example.com".to_string(), Some(5061))
            ]
        );
        assert_eq!(
            (c.user.as_deref(), c.group.as_deref()),
            (Some("kamailio"), Some("kamailio"))
        );
        assert_eq!(c.server_header_line(), None);
        assert_eq!(c.max_while_loops, 20);
        assert_eq!((c.udp_turn_datagrams, c.udp_turn_kb), (8, 128));
        assert_eq!(c.metrics_listen, Some("[::1]:9464".parse().unwrap()));
        assert_eq!(c.log_facility, 16);
        assert_eq!(c.jsonrpcs_fifo_path(), None);
        let c = config(&format!("disable_tcp=yes\nlisten=1.2.3.4{ROUTE}"));
        assert_eq!(c.listen, vec![l(Transport::Udp, "1.2.3.4", 5060, None)]);
    }

    #[test]
    fn debug_levels() {
        for (d, want) in [
            (-3, LevelFilter::Error),
            (-1, LevelFilter::Error),
            (0, LevelFilter::Warn),
            (1, LevelFilter::Info),
            (2, LevelFilter::Info),
            (3, LevelFilter::Debug),
            (4, LevelFilter::Trace),
            (9, LevelFilter::Trace),
        ] {
            let c = Config {
                debug: d,
                ..Config::default()
            };
            assert_eq!(c.log_level(), want, "debug={d}");
        }
    }

    #[test]
    fn modules_and_params() {
        let c = config(&format!(
            r#"loadmodule "mysql.so"
loadmodule "tm"
loadmodule "rr.so"
loadmodule "maxfwd.so"
loadmodule "mi_fifo.so"
loadmodule "jsonrpcs.so"
modparam("tm", "fr_timer", 5000)
modparam("tm", "fr_inv_timer", "60000")
modparam("tm", "restart_fr_on_each_reply", 0)
modparam("tm", "wt_timer", 3000)
modparam("tm", "max_transactions", 20000)
modparam("tm", "max_tsx_bytes", "64M")
modparam("rr", "enable_full_lr", 1)
modparam("rr", "append_fromtag", yes)
modparam("maxfwd", "max_limit", 70)
modparam("mi_fifo", "fifo_name", "/tmp/kamailio_fifo")
modparam("mi_fifo", "fifo_mode", 0)
modparam("mi_fifo", "fifo_user", 33)
modparam("mi_fifo", "reply_indent", "  ")
modparam("jsonrpcs", "fifo_name", "/tmp/rpc.fifo")
modparam("jsonrpcs", "pretty_format", 0)
modparam("jsonrpcs", "dgram_socket", "udp:1.2.3.4:9090")
modparam("mysql", "ping_interval", 10){ROUTE}"#
        ));
        assert_eq!(
            c.modules,
            ["db_mysql", "tm", "rr", "maxfwd", "mi_fifo", "jsonrpcs"]
        );
        assert_eq!(
            *c.tm,
            TsxConfig {
                fr_timer: std::time::Duration::from_millis(5000),
                fr_inv_timer: std::time::Duration::from_millis(60000),
                restart_fr_on_each_reply: false,
                wt_timer: std::time::Duration::from_millis(3000),
                max_transactions: 20_000,
                max_bytes: 64 << 20,
                ..TsxConfig::default()
            }
        );
        assert!(c.rr.enable_full_lr && c.rr.append_fromtag && c.rr.enable_double_rr);
        assert_eq!(c.maxfwd_max_limit, 70);
        let f = c.mi_fifo.clone().unwrap();
        assert_eq!(f.fifo_name.as_deref(), Some("/tmp/kamailio_fifo"));
        assert_eq!(f.fifo_mode, 0o600);
        assert_eq!(f.fifo_user.as_deref(), Some("33"));
        assert_eq!(f.reply_indent, "  ");
        assert_eq!(c.jsonrpcs_fifo_path().as_deref(), Some("/tmp/rpc.fifo"));
        assert!(!c.jsonrpcs.as_ref().unwrap().pretty_format);
        assert_eq!(c.warnings.len(), 1);
        assert_eq!(
            c.warnings[0].message,
            "mi_fifo fifo_mode 0 is not usable; using 0600"
        );
        let c = config(&format!(
            "loadmodule \"tm.so\"\nmodparam(\"tm\",\"fr_timer\",30){ROUTE}"
        ));
        assert_eq!(
            c.warnings[0].to_string(),
            "k.cfg:2:26: tm fr_timer=30 is in milliseconds (Kamailio 1.x used seconds: did you mean 30000?)"
        );
    }

    #[test]
    fn hep_without_a_destination_is_a_warning() {
        let c = config(&format!(
            "loadmodule \"siptrace.so\"\nmodparam(\"siptrace\",\"hep_mode_on\",1){ROUTE}"
        ));
        assert_eq!(
            c.warnings[0].to_string(),
            "k.cfg:2:35: hep_mode_on is set but duplicate_uri is not: only sip_trace(\"sip:host:port\") calls will send HEP"
        );
        let c = config(&format!(
            "loadmodule \"siptrace.so\"\nmodparam(\"siptrace\",\"hep_mode_on\",1)\nmodparam(\"siptrace\",\"duplicate_uri\",\"sip:10.0.0.1:9060\"){ROUTE}"
        ));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn mirror_params_that_fit_together() {
        let ok = [
            // v3 (the default) has a 32-bit capture id and frames on TCP.
            "modparam(\"siptrace\",\"hep_capture_id\",70000)",
            "modparam(\"siptrace\",\"hep_mode_on\",1)\nmodparam(\"siptrace\",\"duplicate_uri\",\"sip:h.example:9060;transport=tcp\")",
            // Raw SIP frames itself on TCP (Content-Length).
            "modparam(\"siptrace\",\"hep_version\",2)\nmodparam(\"siptrace\",\"duplicate_uri\",\"sip:[::1]:9060;transport=tcp\")",
            "modparam(\"siptrace\",\"hep_version\",2)\nmodparam(\"siptrace\",\"hep_capture_id\",65535)",
            "modparam(\"siptrace\",\"duplicate_uri\",\"\")\nmodparam(\"siptrace\",\"send_sock_addr\",\"sip:127.0.0.1:5060\")",
        ];
        for src in ok {
            let r = load(&format!("loadmodule \"siptrace.so\"\n{src}{ROUTE}"));
            assert!(r.is_ok(), "{src}: {r:?}");
        }
    }

    #[test]
    fn retention_params() {
        let c = config(&format!(
            "loadmodule \"siptrace.so\"\n\
             modparam(\"siptrace\", \"retention\", \"7d\")\n\
             modparam(\"siptrace\", \"retention_rows\", 1000000)\n\
             modparam(\"siptrace\", \"retention_method\", \"OPTIONS=1h\")\n\
             modparam(\"siptrace\", \"retention_method\", \"NOTIFY = 30m\")\n\
             modparam(\"siptrace\", \"retention_interval\", 5){ROUTE}"
        ));
        let r = c.siptrace.unwrap().retention;
        assert_eq!(r.max_age, Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(r.max_rows, Some(1_000_000));
        assert_eq!(
            r.methods,
            [
                MethodAge {
                    method: "OPTIONS".into(),
                    max_age: Duration::from_secs(3600)
                },
                MethodAge {
                    method: "NOTIFY".into(),
                    max_age: Duration::from_secs(1800)
                },
            ]
        );
        assert_eq!(r.interval, Duration::from_secs(5));
        assert!(r.is_active());
        let none = config(&format!("loadmodule \"siptrace.so\"{ROUTE}"));
        assert!(!none.siptrace.unwrap().retention.is_active());
        for (s, secs) in [
            ("90s", 90),
            ("2m", 120),
            ("12h", 43_200),
            ("1D", 86_400),
            ("30", 30),
        ] {
            assert_eq!(age_secs(s), Some(secs), "{s}");
        }
        for s in ["", "d", "7w", "-1d", "1.5h", "7 days"] {
            assert_eq!(age_secs(s), None, "{s}");
        }
    }

    #[test]
    fn retention_errors_with_positions() {
        let cases = [
            (
                "modparam(\"siptrace\",\"retention\",\"7w\")",
                "k.cfg:2:33: modparam siptrace.retention: expects an age: a number with a unit s, m, h or d (\"7d\", \"12h\"), or an integer in seconds, got \"7w\"",
            ),
            (
                "modparam(\"siptrace\",\"retention\",0)",
                "k.cfg:2:33: modparam siptrace.retention: must be from 1 second to 3650 days, got 0 s",
            ),
            (
                "modparam(\"siptrace\",\"retention\",\"4000d\")",
                "k.cfg:2:33: modparam siptrace.retention: must be from 1 second to 3650 days, got 345600000 s",
            ),
            (
                "modparam(\"siptrace\",\"retention_rows\",0)",
                "k.cfg:2:38: modparam siptrace.retention_rows: must be from 1 to 1000000000000, got 0",
            ),
            (
                "modparam(\"siptrace\",\"retention_method\",\"OPTIONS\")",
                "k.cfg:2:40: modparam siptrace.retention_method: expects METHOD=AGE, such as \"OPTIONS=1h\", got \"OPTIONS\"",
            ),
            (
                "modparam(\"siptrace\",\"retention_method\",\"OPT IONS=1h\")",
                "k.cfg:2:40: modparam siptrace.retention_method: \"OPT IONS\" is not a SIP method name (a token: letters, digits, -.!%*_+`'~)",
            ),
            (
                "modparam(\"siptrace\",\"retention_method\",\"OPTIONS=1y\")",
                "k.cfg:2:40: modparam siptrace.retention_method: expects an age: a number with a unit s, m, h or d (\"7d\", \"12h\"), or an integer in seconds, got \"1y\"",
            ),
            (
                "modparam(\"siptrace\",\"retention_method\",\"OPTIONS=1h\")\nmodparam(\"siptrace\",\"retention_method\",\"OPTIONS=2h\")",
                "k.cfg:3:40: modparam siptrace.retention_method: method OPTIONS has a retention_method already; keep one",
            ),
        ];
        for (src, want) in cases {
            let e = load(&format!("loadmodule \"siptrace.so\"\n{src}{ROUTE}")).unwrap_err();
            assert_eq!(e, want, "{src}");
        }
    }

    #[test]
    fn errors_with_positions() {
        let supported = SUPPORTED_MODULES.join(", ");
        let cases: Vec<(String, String)> = vec![
            ("foo_bar=1".into(), "k.cfg:1:1: unknown core parameter 'foo_bar'".into()),
            ("debug=\"x\"".into(), "k.cfg:1:7: debug: expects a number, got \"x\"".into()),
            ("fork=maybe".into(), "k.cfg:1:6: fork: expects yes/no or a number, got maybe".into()),
            ("port=70000".into(), "k.cfg:1:6: port: port 70000 out of range 1..65535".into()),
            ("udp_turn_datagrams=0".into(), "k.cfg:1:20: udp_turn_datagrams: must be from 1 to 65536, got 0".into()),
            ("udp_mtu_try_proto=\"QUIC\"".into(), "k.cfg:1:19: udp_mtu_try_proto: \"QUIC\" is not a transport: use UDP, TCP or TLS".into()),
            ("tcp_max_connections=0".into(), "k.cfg:1:21: tcp_max_connections: must be from 1 to 1048576, got 0".into()),
            ("maxbuffer=-1".into(), "k.cfg:1:11: maxbuffer: must be from 0 to 1073741824, got -1".into()),
            ("metrics_listen=\"localhost:9464\"".into(), "k.cfg:1:16: metrics_listen: \"localhost:9464\" is not an address to serve metrics on: write IP:PORT, e.g. \"127.0.0.1:9464\" or \"[::1]:9464\"".into()),
            ("listen=udp:1.2.3.4:0".into(), "k.cfg:1:8: listen: port 0 out of range 1..65535".into()),
            ("loadmodule \"usrloc.so\"".into(), format!("k.cfg:1:12: unknown module \"usrloc\" (loadmodule \"usrloc.so\"); siptraced supports: {supported}")),
            ("modparam(\"tm\",\"fr_timer\",1)".into(), "k.cfg:1:1: modparam for module \"tm\", which is not loaded: put loadmodule \"tm.so\" before it".into()),
            ("loadmodule \"tm.so\"\nmodparam(\"tm|sl\",\"x\",1)".into(), "k.cfg:2:1: modparam: \"tm|sl\" must be a plain module name (regular expressions such as \"tm|sl\" are not supported)".into()),
            ("loadmodule \"siptrace.so\"\nmodparam(\"siptrace\",\"trace_flag\",40)".into(), "k.cfg:2:34: modparam siptrace.trace_flag: must be from 0 to 31, got 40".into()),
            ("loadmodule \"siptrace.so\"\nmodparam(\"siptrace\",\"trace_flag\",-1)".into(), "k.cfg:2:34: modparam siptrace.trace_flag: must be from 0 to 31, got -1".into()),
            ("loadmodule \"siptrace.so\"\nmodparam(\"siptrace\",\"trace_flag\",\"abc\")".into(), "k.cfg:2:34: modparam siptrace.trace_flag: expects an integer, got \"abc\"".into()),
            ("loadmodule \"siptrace.so\"\nmodparam(\"siptrace\",\"db_url\",5)".into(), "k.cfg:2:30: modparam siptrace.db_url: expects a string, got the number 5".into()),
            ("loadmodule \"siptrace.so\"\nmodparam(\"siptrace\",\"traced_user_avp\",\"s:user\")".into(), "k.cfg:2:39: modparam siptrace.traced_user_avp: 's:user' is not an AVP spec: expected $avp(i:NUMBER), $avp(s:NAME) or $avp(NAME)".into()),
            ("loadmodule \"siptrace.so\"\nmodparam(\"siptrace\",\"trace_table_avp\",\"$avp(i:x)\")".into(), "k.cfg:2:39: modparam siptrace.trace_table_avp: invalid AVP name 'i:x': expected i:NUMBER, s:NAME or NAME".into()),
            ("loadmodule \"siptrace.so\"\nmodparam(\"siptrace\",\"table\",\"a;drop\")".into(), "k.cfg:2:29: modparam siptrace.table: \"a;drop\" is not a valid table name ([A-Za-z_][A-Za-z0-9_]*, at most 64 characters)".into()),
            ("loadmodule \"siptrace.so\"\nmodparam(\"siptrace\",\"mask\",\"auth,keys\")".into(), "k.cfg:2:28: modparam siptrace.mask: unknown mask \"keys\": use a comma-separated list of auth and crypto, or none".into()),
            ("loadmodule \"siptrace.so\"\nmodparam(\"siptrace\",\"mask\",\"none,auth\")".into(), "k.cfg:2:28: modparam siptrace.mask: \"none\" cannot be combined with other masks: use \"none\" alone".into()),
            ("loadmodule \"siptrace.so\"\nmodparam(\"siptrace\",\"mask_headers\",\"X-Secret,P Token\")".into(), "k.cfg:2:36: modparam siptrace.mask_headers: \"P Token\" is not a header name (letters, digits and -.!%*_+`'~ only)".into()),
            ("loadmodule \"siptrace.so\"\nmodparam(\"siptrace\",\"hep_version\",4)".into(), "k.cfg:2:35: modparam siptrace.hep_version: must be from 1 to 3, got 4".into()),
            ("loadmodule \"siptrace.so\"\nmodparam(\"siptrace\",\"duplicate_uri\",\"udp:1.2.3.4\")".into(), "k.cfg:2:37: modparam siptrace.duplicate_uri: duplicate URI 'udp:1.2.3.4' is not a sip: URI; write it as sip:host[:port][;transport=tcp]".into()),
            ("loadmodule \"siptrace.so\"\nmodparam(\"siptrace\",\"duplicate_uri\",\"sip:10.0.0.1:99999\")".into(), "k.cfg:2:37: modparam siptrace.duplicate_uri: duplicate URI 'sip:10.0.0.1:99999': port '99999' is not a number from 1 to 65535".into()),
            ("loadmodule \"siptrace.so\"\nmodparam(\"siptrace\",\"hep_capture_id\",70000)\nmodparam(\"siptrace\",\"hep_version\",2)".into(), "k.cfg:2:38: modparam siptrace.hep_capture_id: hep_capture_id 70000 does not fit the 16-bit field of HEPv2; use a value up to 65535 or set hep_version to 3".into()),
            ("loadmodule \"siptrace.so\"\nmodparam(\"siptrace\",\"hep_version\",2)\nmodparam(\"siptrace\",\"hep_capture_id\",65536)".into(), "k.cfg:3:38: modparam siptrace.hep_capture_id: hep_capture_id 65536 does not fit the 16-bit field of HEPv2; use a value up to 65535 or set hep_version to 3".into()),
            ("loadmodule \"siptrace.so\"\nmodparam(\"siptrace\",\"hep_capture_id\",-1)".into(), "k.cfg:2:38: modparam siptrace.hep_capture_id: must be from 0 to 4294967295, got -1".into()),
            ("loadmodule \"siptrace.so\"\nmodparam(\"siptrace\",\"hep_mode_on\",1)\nmodparam(\"siptrace\",\"hep_version\",2)\nmodparam(\"siptrace\",\"duplicate_uri\",\"sip:127.0.0.1:9060;transport=tcp\")".into(), "k.cfg:4:37: modparam siptrace.duplicate_uri: HEPv2 (hep_version 2 at 3:35) has no total length, so it cannot be framed on a TCP stream; use hep_version 3 or transport=udp".into()),
            ("loadmodule \"siptrace.so\"\nmodparam(\"siptrace\",\"send_sock_addr\",\"eth0\")".into(), "k.cfg:2:38: modparam siptrace.send_sock_addr: 'eth0' does not name a local socket; write it as sip:IP:PORT or udp:IP:PORT with the address of a listen= socket".into()),
            ("loadmodule \"siptrace.so\"\nmodparam(\"siptrace\",\"mirror_tcp_queue_kb\",0)".into(), "k.cfg:2:43: modparam siptrace.mirror_tcp_queue_kb: must be from 1 to 1048576, got 0".into()),
            ("loadmodule \"tm.so\"\nmodparam(\"tm\",\"max_tsx_bytes\",\"256\")".into(), "k.cfg:2:31: modparam tm.max_tsx_bytes: expects a size: an integer in MiB, or a string with a unit K, M or G (\"256M\"), got \"256\"".into()),
            ("loadmodule \"tm.so\"\nmodparam(\"tm\",\"max_tsx_bytes\",0)".into(), "k.cfg:2:31: modparam tm.max_tsx_bytes: must be from 1 MiB to 1024 GiB, got 0 bytes".into()),
            ("loadmodule \"tm.so\"\nmodparam(\"tm\",\"max_tsx_bytes\",\"512K\")".into(), "k.cfg:2:31: modparam tm.max_tsx_bytes: must be from 1 MiB to 1024 GiB, got 524288 bytes".into()),
            ("loadmodule \"siptrace.so\"\nmodparam(\"siptrace\",\"spool_full_policy\",\"wait\")".into(), "k.cfg:2:41: modparam siptrace.spool_full_policy: must be \"drop\" or \"stop\", got \"wait\"".into()),
            ("loadmodule \"siptrace.so\"\nmodparam(\"siptrace\",\"nope\",1)".into(), "k.cfg:2:28: modparam siptrace.nope: unknown siptrace parameter".into()),
            ("loadmodule \"siptrace.so\"\nmodparam(\"siptrace\",\"date_column\",\"d\")".into(), "k.cfg:2:35: modparam siptrace.date_column: column name overrides are not supported: the sip_trace columns are fixed".into()),
            ("loadmodule \"siptrace.so\"\nmodparam(\"siptrace\",\"trace_mode\",1)".into(), "k.cfg:2:34: modparam siptrace.trace_mode: bits 1 and 4 send copies to duplicate_uri, which is not set".into()),
            ("loadmodule \"siptrace.so\"\nmodparam(\"siptrace\",\"duplicate_uri\",\"sip:10.0.0.1\")\nmodparam(\"siptrace\",\"trace_mode\",3)".into(), "k.cfg:3:34: modparam siptrace.trace_mode: bit 1 sends HEP copies: set hep_mode_on to 1 (or use bit 4 for raw copies)".into()),
            ("loadmodule \"siptrace.so\"\nmodparam(\"siptrace\",\"trace_mode\",8)".into(), "k.cfg:2:34: modparam siptrace.trace_mode: must be from 0 to 7, got 8".into()),
            ("loadmodule \"siptrace.so\"\nmodparam(\"siptrace\",\"trace_init_mode\",1)".into(), "k.cfg:2:39: modparam siptrace.trace_init_mode: not supported by siptraced".into()),
            ("loadmodule \"mi_fifo.so\"\nmodparam(\"mi_fifo\",\"fifo_nmae\",\"x\")".into(), "k.cfg:2:32: modparam mi_fifo.fifo_nmae: unknown mi_fifo parameter (fifo_name, fifo_mode, fifo_user, fifo_group, reply_dir, reply_indent)".into()),
            ("loadmodule \"maxfwd.so\"\nmodparam(\"maxfwd\",\"max_limit\",300)".into(), "k.cfg:2:31: modparam maxfwd.max_limit: must be from 1 to 256, got 300".into()),
        ];
        let mut bad = Vec::new();
        for (src, want) in &cases {
            let got = match load(&format!("{src}{ROUTE}")) {
                Ok(_) => "ok".to_string(),
                Err(e) => e,
            };
            if &got != want {
                bad.push(format!("{src}\n  got: {got}\n want: {want}"));
            }
        }
        assert!(bad.is_empty(), "{}", bad.join("\n"));
    }

    #[test]
    fn typed_values_and_their_positions() {
        let t = |tail: &str| -> Result<Config, String> {
            load(&format!(
                "listen=udp:127.0.0.1:5060\nlisten=udp:*:5070\nloadmodule \"tm.so\"\nloadmodule \"siptrace.so\"\n{tail}{ROUTE}"
            ))
            .map(|(c, _)| c)
        };
        // T2 < T1: at the later of the two, naming the other.
        let e = t("modparam(\"tm\",\"retr_timer1\",1000)\nmodparam(\"tm\",\"retr_timer2\",800)")
            .unwrap_err();
        assert_eq!(
            e,
            "k.cfg:6:29: modparam tm.retr_timer2: 800 ms is less than retr_timer1 (1000 ms at 5:29); T2 caps the retransmission interval that starts at T1"
        );
        let e = t("modparam(\"tm\",\"retr_timer2\",800)\nmodparam(\"tm\",\"retr_timer1\",1000)")
            .unwrap_err();
        assert_eq!(
            e,
            "k.cfg:6:29: modparam tm.retr_timer1: 1000 ms is more than retr_timer2 (800 ms at 5:29); T2 caps the retransmission interval that starts at T1"
        );
        let e = t("modparam(\"tm\",\"retr_timer1\",5000)").unwrap_err();
        assert_eq!(
            e,
            "k.cfg:5:29: modparam tm.retr_timer1: 5000 ms is more than retr_timer2 (4000 ms, the default); T2 caps the retransmission interval that starts at T1"
        );
        // The transaction layer's own bound, at the value.
        let e = t("modparam(\"tm\",\"fr_timer\",86400001)").unwrap_err();
        assert_eq!(
            e,
            "k.cfg:5:26: modparam tm.fr_timer: must be from 1 to 86400000, got 86400001"
        );
        let c = t("modparam(\"tm\",\"retr_timer1\",100)\nmodparam(\"tm\",\"retr_timer2\",400)\nmodparam(\"tm\",\"max_inv_lifetime\",90000)").unwrap();
        assert_eq!(
            (
                c.tm.t1.as_millis(),
                c.tm.t2.as_millis(),
                c.tm.max_inv_lifetime.as_millis()
            ),
            (100, 400, 90000)
        );

        // send_sock_addr: a socket address, checked against the UDP listens.
        let c = t("modparam(\"siptrace\",\"send_sock_addr\",\"sip:127.0.0.1:5060\")").unwrap();
        assert_eq!(
            c.siptrace.unwrap().send_sock_addr,
            Some("127.0.0.1:5060".parse().unwrap())
        );
        assert_eq!(
            c.siptrace_pos.send_sock_addr.map(|p| (p.line, p.col)),
            Some((5, 38))
        );
        // A wildcard listen on that port: decided at start-up.
        assert!(t("modparam(\"siptrace\",\"send_sock_addr\",\"udp:10.9.9.9:5070\")").is_ok());
        let e = t("modparam(\"siptrace\",\"send_sock_addr\",\"udp:127.0.0.2:5060\")").unwrap_err();
        assert_eq!(
            e,
            "k.cfg:5:38: modparam siptrace.send_sock_addr: 127.0.0.2:5060 is not a listen socket (listening on udp:127.0.0.1:5060, udp:*:5070)"
        );
        let e = t("modparam(\"siptrace\",\"send_sock_addr\",\"udp:0.0.0.0:5070\")").unwrap_err();
        assert!(e.contains("0.0.0.0:5070 is not a listen socket"), "{e}");
        let e = load(&format!(
            "listen=tcp:127.0.0.1:5060\nloadmodule \"siptrace.so\"\nmodparam(\"siptrace\",\"send_sock_addr\",\"127.0.0.1:5060\"){ROUTE}"
        ))
        .unwrap_err();
        assert!(e.ends_with("(listening on no UDP socket)"), "{e}");

        // duplicate_uri: parsed once, here.
        let c =
            t("modparam(\"siptrace\",\"duplicate_uri\",\"sip:[::1]:9060;transport=tcp\")").unwrap();
        assert_eq!(
            c.siptrace.unwrap().duplicate_uri,
            Some(DupTarget {
                host: "::1".into(),
                port: 9060,
                transport: Transport::Tcp
            })
        );
        assert_eq!(
            c.siptrace_pos.duplicate_uri.map(|p| (p.line, p.col)),
            Some((5, 37))
        );
        let c = t("modparam(\"siptrace\",\"duplicate_uri\",\" \")").unwrap();
        assert_eq!(c.siptrace.unwrap().duplicate_uri, None);
        assert_eq!(c.siptrace_pos.duplicate_uri, None);

        // syslog settings.
        let c = t("log_facility=LOG_LOCAL7\nlog_name=\"sbc-trace\"").unwrap();
        assert_eq!((c.log_facility, c.log_name.as_str()), (23, "sbc-trace"));
        let e = t("log_facility=LOG_NOPE").unwrap_err();
        assert!(
            e.starts_with("k.cfg:5:14: log_facility: unknown syslog facility 'LOG_NOPE'"),
            "{e}"
        );
    }

    #[test]
    fn a_skipped_import_file_is_a_note_for_the_logger() {
        let c = config(&format!("import_file \"gone.cfg\"\n{ROUTE}"));
        let notes: Vec<(log::Level, String)> = c
            .notes
            .iter()
            .map(|n| (n.level, n.diag.to_string()))
            .collect();
        assert_eq!(
            notes,
            [(
                log::Level::Debug,
                "k.cfg:1:13: import_file \"gone.cfg\" skipped: not found".to_string()
            )]
        );
    }

    #[test]
    fn ignored_settings_warn_once_each_and_notes_wait_for_the_logger() {
        let c = config(&format!(
            "workdir=\"/\"\nchildren=4\ntcp_children=2\ndns=off\nloadmodule \"siptrace.so\"\nmodparam(\"siptrace\",\"xheaders_read\",1)\nmodparam(\"siptrace\",\"trace_db_mode\",1){ROUTE}"
        ));
        let warnings: Vec<String> = c.warnings.iter().map(|w| w.to_string()).collect();
        assert_eq!(
            warnings,
            [
                "k.cfg:1:1: workdir is accepted but ignored: the working directory is not changed",
                "k.cfg:6:1: siptrace.xheaders_read is accepted but ignored: X-Siptrace-* headers of received messages are not read",
            ]
        );
        let notes: Vec<(log::Level, String)> = c
            .notes
            .iter()
            .map(|n| (n.level, n.diag.to_string()))
            .collect();
        assert_eq!(
            notes,
            [
                (
                    log::Level::Debug,
                    "k.cfg:4:1: core parameter 'dns' accepted and ignored".to_string()
                ),
                (
                    log::Level::Debug,
                    "k.cfg:7:1: siptrace trace_db_mode accepted and ignored: rows are batched per reactor turn".to_string()
                ),
                (
                    log::Level::Info,
                    "k.cfg:2:1: children, tcp_children are accepted but siptraced runs one thread by design".to_string()
                ),
            ]
        );
        // Every ignored name is a setting the loader knows.
        for (name, _) in IGNORED_SETTINGS {
            match name.split_once('.') {
                None => assert!(KNOWN_GLOBALS.contains(name), "{name}"),
                Some((m, _)) => assert!(SUPPORTED_MODULES.contains(&m), "{name}"),
            }
        }
    }

    #[test]
    fn debug_in_force_follows_the_filter() {
        let c = Config {
            debug: 1,
            ..Config::default()
        };
        assert_eq!(c.debug_in_force(LevelFilter::Info), 1);
        assert_eq!(c.debug_in_force(LevelFilter::Debug), 3);
        assert_eq!(c.debug_in_force(LevelFilter::Trace), 4);
        assert_eq!(c.debug_in_force(LevelFilter::Warn), 0);
        for d in [-5, -1, 0, 2, 3, 4] {
            let f = level_of_debug(d);
            assert_eq!(level_of_debug(Config::default().debug_in_force(f)), f);
        }
    }

    #[test]
    fn all_errors_at_once() {
        let err = load("foo=1\nbar=2\nloadmodule \"x.so\"\nroute { nosuch(); }").unwrap_err();
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 4, "{err}");
        assert!(
            lines[3].starts_with("k.cfg:4:9: unknown function 'nosuch'"),
            "{err}"
        );
    }

    #[test]
    fn function_table_modules_are_supported() {
        for d in crate::script::function_modules() {
            assert!(SUPPORTED_MODULES.contains(&d), "{d}");
        }
    }

    /// Mutated configs that still parse must build, and programs that build
    /// must run, without panicking.
    #[test]
    fn mutations_never_panic() {
        use crate::script::{Host, HostCall, MsgPv, MsgState, Value, Vars};
        struct Quiet(u32);
        impl Host for Quiet {
            fn pv_get(&mut self, _: &MsgPv) -> Value {
                Value::Str("x".into())
            }
            fn pv_set(&mut self, _: &MsgPv, _: &Value) -> bool {
                true
            }
            fn call(&mut self, _: HostCall<'_>, _: &mut MsgState) -> crate::script::Ret {
                self.0 = self.0.wrapping_mul(1_103_515_245).wrapping_add(12345);
                // Cycle through true, false and "stop".
                use crate::script::Ret;
                [Ret::False, Ret::Exit, Ret::True][(self.0 >> 16) as usize % 3]
            }
            fn log(&mut self, _: log::Level, _: &str) {}
        }
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as usize
        };
        let lines: Vec<&str> = REAL.lines().collect();
        let (mut built, mut runs) = (0, 0);
        for _ in 0..400 {
            // Drop, duplicate or swap a few lines: mostly still valid syntax.
            let mut l = lines.clone();
            for _ in 0..(1 + rnd() % 3) {
                let (a, b) = (rnd() % l.len(), rnd() % l.len());
                match rnd() % 3 {
                    0 => {
                        l.remove(a);
                    }
                    1 => l.insert(a, lines[b]),
                    _ => l.swap(a, b),
                }
            }
            let src = l.join("\n");
            if let Ok((_, p)) = load(&src) {
                built += 1;
                for seed in 0..4 {
                    let mut st = MsgState::default();
                    let mut vars = Vars::default();
                    let _ = p.run(p.request_route(), &mut st, &mut vars, &mut Quiet(seed));
                    runs += 1;
                }
            }
        }
        assert!(built > 20 && runs > 80, "too few mutations built: {built}");
    }

    #[test]
    fn realistic_stateful_proxy_loads_unchanged() {
        let (c, p) = load(REAL).unwrap();
        assert_eq!(c.debug, 2);
        assert_eq!(
            c.listen,
            vec![
                ListenSpec {
                    proto: Transport::Udp,
                    host: "127.0.0.1".into(),
                    port: 5060,
                    advertise: None
                },
                ListenSpec {
                    proto: Transport::Tcp,
                    host: "127.0.0.1".into(),
                    port: 5060,
                    advertise: None
                },
            ]
        );
        assert_eq!(c.aliases, vec![("sip.example.com".to_string(), None)]);
        let t = c.siptrace.clone().unwrap();
        assert_eq!(t.trace_flag, Some(22));
        assert_eq!(t.trace_on, 1);
        assert_eq!(t.traced_user_avp, Some(AvpName::Str("traced_user".into())));
        assert_eq!(t.trace_local_ip.as_deref(), Some("127.0.0.1:5060"));
        assert_eq!(
            c.mi_fifo.as_ref().unwrap().fifo_name.as_deref(),
            Some("/tmp/kamailio_fifo")
        );
        assert_eq!(c.tm.fr_inv_timer.as_millis(), 120000);
        assert_eq!(c.server_header_line().as_deref(), Some("Server: siptraced"));
        let ignored: Vec<String> = c
            .warnings
            .iter()
            .map(|w| w.message.split(' ').next().unwrap_or("").to_string())
            .collect();
        assert_eq!(
            ignored,
            ["log_prefix", "auto_aliases", "sip_warning"],
            "{:?}",
            c.warnings
        );
        assert!(p.onreply_route().is_none());
        for (kind, name) in [
            (crate::script::RouteKind::Named, "RELAY"),
            (crate::script::RouteKind::Named, "REQINIT"),
            (crate::script::RouteKind::Named, "WITHINDLG"),
            (crate::script::RouteKind::Branch, "MANAGE_BRANCH"),
            (crate::script::RouteKind::OnReply, "MANAGE_REPLY"),
            (crate::script::RouteKind::Failure, "MANAGE_FAILURE"),
        ] {
            let id = p.route_id(kind, name).unwrap_or_else(|| panic!("{name}"));
            assert_eq!(p.route_name(id), name);
        }
    }
}
