//! The control plane's edge: the MI FIFO (old text protocol) and the
//! JSON-RPC FIFO. Bytes come in here, go through mi/'s pure codecs and
//! command table, and replies go out to the clients' reply FIFOs — opened
//! with timer-driven retries, written without blocking (fifo.rs). Depends on
//! mi/, the core (the state commands read and change), fifo.rs and the
//! parsed config (never the command line: main.rs hands in what it adds,
//! such as the level `-d` sets); only the reactor calls it, and it never
//! blocks.
//!
//! Reading (see fifo.rs for why large and concurrent requests come out
//! whole): a readiness event marks a FIFO unread; it is then read at most
//! [`READ_PER_TURN`] bytes per reactor turn, and only as far as the
//! protocol reader needs bytes. A flood of requests or garbage therefore
//! delays SIP by one bounded read per turn, and the memory held is bounded:
//! what is not read yet waits in the pipe.
//!
//! The MI reader handles one request at a time, as Kamailio's MI process
//! does: while a reply FIFO is being opened (up to 5 tries 80 ms apart) the
//! reader waits, and reads nothing more, which keeps the order of
//! operations of docs/kamailio.md §1.3 (open the reply first, then parse the arguments, then
//! run). JSON-RPC documents are run as soon as they are framed; their
//! replies are opened and written alongside.
//!
//! Replies that cannot be written at once (a reader not there yet, or
//! slow) wait in `writing`, each holding a descriptor and its bytes: at most
//! [`MAX_PENDING_REPLIES`] of them and [`MAX_PENDING_REPLY_BYTES`] in all,
//! MI and JSON-RPC together. Beyond that a new one is dropped and counted
//! (`core_limits`), and the daemon goes on serving clients that read.
//!
//! A FIFO deleted or replaced while we run is noticed by
//! [`Control::recreate_stale`] (the reactor calls it once a second) and made
//! again with the same mode and owner; requests half-read from the old one
//! are dropped with it.

use super::fifo::{Drained, FifoError, PendingReply, Progress, ServerFifo};
use crate::clock::{WallTime, ctime, local_datetime};
use crate::config::{Config, MiFifoParams, level_of_debug};
use crate::core::Core;
use crate::mi::commands::{self, DbState, MiHost, Process, TraceStats, Uptime, VersionInfo};
use crate::mi::jsonrpc::{Frame, JsonFramer};
use crate::mi::text::{self, TextEvent, TextReader, TextRequest};
use crate::spool::TraceWriter;
use nix::unistd::{Gid, Uid};
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::time::Instant;
use thiserror::Error;

/// Why the control FIFOs could not be made (start-up) or remade (a stale
/// FIFO, once a second).
#[derive(Debug, Error)]
pub enum ControlError {
    #[error(
        "mi_fifo is loaded but has no fifo_name: set modparam(\"mi_fifo\", \"fifo_name\", \"/tmp/siptraced_fifo\") (kamctl's OSER_FIFO names the same path), or do not load mi_fifo"
    )]
    NoMiFifoName,
    #[error(
        "{module} {param} \"{dir}\" is not a directory: create it or set modparam(\"{module}\", \"{param}\", \"/tmp/\")"
    )]
    ReplyDir {
        module: &'static str,
        param: &'static str,
        dir: String,
    },
    /// fifo_user/fifo_group (or jsonrpcs's) name no user or group.
    #[error("FIFO owner: {0}")]
    Owner(#[source] crate::process::ProcessError),
    /// `what` is "MI FIFO" or "JSON-RPC FIFO"; the FifoError names the path.
    #[error("{what}: {err}")]
    Fifo { what: &'static str, err: FifoError },
}

#[derive(Debug, Clone)]
pub struct FifoSettings {
    pub path: PathBuf,
    pub mode: u32,
    pub reply_dir: String,
}

#[derive(Debug, Clone)]
pub struct ControlSettings {
    pub mi: Option<FifoSettings>,
    /// mi_fifo is loaded but has no fifo_name (Kamailio: "No MI fifo
    /// configured", a start-up error).
    pub mi_without_name: bool,
    pub reply_indent: String,
    pub rpc: Option<FifoSettings>,
    pub pretty: bool,
    pub fifo_user: Option<String>,
    pub fifo_group: Option<String>,
    pub rpc_user: Option<String>,
    pub rpc_group: Option<String>,
    pub argv: Vec<String>,
    pub debug: i32,
    pub tm_loaded: bool,
}

impl ControlSettings {
    /// `debug` is the Kamailio level in force (the config's, moved by `-d`
    /// flags), which MI `debug` reports.
    pub(crate) fn from_config(conf: &Config, debug: i32) -> ControlSettings {
        let mi = conf.mi_fifo.as_ref().and_then(|m| {
            m.fifo_name.as_ref().map(|n| FifoSettings {
                path: PathBuf::from(n),
                mode: m.fifo_mode,
                reply_dir: m.reply_dir.clone(),
            })
        });
        let rpc = conf.jsonrpcs.as_ref().and_then(|j| {
            // transport: 0 = all, else bit 2 = FIFO (docs/kamailio.md §6.3).
            let fifo = j.transport == 0 || j.transport & 2 != 0;
            let path = conf.jsonrpcs_fifo_path()?;
            fifo.then(|| FifoSettings {
                path: PathBuf::from(path),
                mode: j.fifo_mode,
                reply_dir: j.fifo_reply_dir.clone(),
            })
        });
        ControlSettings {
            mi,
            mi_without_name: conf.mi_fifo.as_ref().is_some_and(|m| m.fifo_name.is_none()),
            reply_indent: conf
                .mi_fifo
                .as_ref()
                .map(|m| m.reply_indent.clone())
                .unwrap_or_else(|| MiFifoParams::default().reply_indent),
            rpc,
            pretty: conf.jsonrpcs.as_ref().is_none_or(|j| j.pretty_format),
            fifo_user: conf.mi_fifo.as_ref().and_then(|m| m.fifo_user.clone()),
            fifo_group: conf.mi_fifo.as_ref().and_then(|m| m.fifo_group.clone()),
            rpc_user: conf.jsonrpcs.as_ref().and_then(|j| j.fifo_user.clone()),
            rpc_group: conf.jsonrpcs.as_ref().and_then(|j| j.fifo_group.clone()),
            argv: std::env::args().collect(),
            debug,
            tm_loaded: conf.module_loaded("tm"),
        }
    }
}

/// Bytes read from one control FIFO per reactor turn. A client flooding a
/// FIFO then delays SIP by at most one such read per turn, and what is held
/// in memory stays bounded: the rest waits in the pipe (whose own capacity,
/// 64 KiB on Linux, then blocks the writer), as with Kamailio's reader.
const READ_PER_TURN: usize = 64 * 1024;

/// Bound on replies waiting for their reader, MI and JSON-RPC together
/// (docs/decisions.md §11): each holds a descriptor, so it stays far below
/// the usual limit of 1024 open files.
pub(crate) const MAX_PENDING_REPLIES: usize = 64;
/// Bound on the bytes those replies hold: a slow reader of the largest
/// replies (~420 KB) does not get to hold more than ten of them.
pub(crate) const MAX_PENDING_REPLY_BYTES: usize = 4 << 20;

/// Count and unwritten bytes of the replies in `list`.
fn pending(list: &[PendingReply]) -> (usize, usize) {
    (list.len(), list.iter().map(|w| w.pending_bytes()).sum())
}

/// Keeps `w` waiting in `list` unless that would pass a bound, counting
/// `other` (the other FIFO's waiting replies) too; a reply dropped here is
/// counted in the core's limits.
fn keep_pending(
    list: &mut Vec<PendingReply>,
    w: PendingReply,
    other: (usize, usize),
    core: &mut Core,
    what: &str,
) {
    use crate::limits::Bound;
    let (n, bytes) = pending(list);
    let bound = if n + other.0 >= MAX_PENDING_REPLIES {
        Some(Bound::PendingReplies)
    } else if bytes + other.1 + w.pending_bytes() > MAX_PENDING_REPLY_BYTES {
        Some(Bound::PendingReplyBytes)
    } else {
        None
    };
    match bound {
        None => list.push(w),
        Some(b) => {
            log::debug!(
                "{what} reply FIFO {}: dropped, {} replies already wait for their readers",
                w.path.display(),
                n + other.0
            );
            core.limits_mut().hit(b);
        }
    }
}

struct MiEnd {
    fifo: ServerFifo,
    /// Set when the FIFO became readable and has not been read empty since:
    /// the turn that noticed it (a deadline in the past brings the reactor
    /// back at once to read on).
    unread: Option<Instant>,
    settings: FifoSettings,
    owner: (Option<Uid>, Option<Gid>),
    reader: TextReader,
    /// The reply FIFO being opened for the request the reader holds.
    opening: Option<PendingReply>,
    /// Opened, waiting for the request's reply bytes.
    opened: Option<PendingReply>,
    /// A request waiting for its sync ticket (the rows before it written).
    held: Option<(TextRequest, u64)>,
    writing: Vec<PendingReply>,
}

struct RpcEnd {
    fifo: ServerFifo,
    /// As [`MiEnd::unread`].
    unread: Option<Instant>,
    settings: FifoSettings,
    owner: (Option<Uid>, Option<Gid>),
    framer: JsonFramer,
    /// A document waiting for its sync ticket, as [`MiEnd::held`].
    held: Option<(Vec<u8>, u64)>,
    writing: Vec<PendingReply>,
}

/// What the command handlers may read or change besides the core.
struct Info {
    argv: Vec<String>,
    started: WallTime,
    debug: i32,
    kill: bool,
    tm_loaded: bool,
    indent: String,
    pretty: bool,
}

pub struct Control {
    mi: Option<MiEnd>,
    rpc: Option<RpcEnd>,
    info: Info,
}

fn owner(
    user: Option<&str>,
    group: Option<&str>,
) -> Result<(Option<Uid>, Option<Gid>), ControlError> {
    crate::process::lookup_ids(user, group).map_err(ControlError::Owner)
}

fn fifo_err(what: &'static str) -> impl FnOnce(FifoError) -> ControlError {
    move |err| ControlError::Fifo { what, err }
}

impl Control {
    /// Creates the FIFOs (before privileges are dropped, so fifo_user and
    /// fifo_group can be applied). Their owner defaults to the user the
    /// daemon runs as after the drop.
    pub fn create(
        s: ControlSettings,
        run_uid: Option<Uid>,
        run_gid: Option<Gid>,
    ) -> Result<Control, ControlError> {
        if s.mi_without_name {
            return Err(ControlError::NoMiFifoName);
        }
        if let Some(f) = &s.mi {
            check_reply_dir("mi_fifo", "reply_dir", &f.reply_dir)?;
        }
        if let Some(f) = &s.rpc {
            check_reply_dir("jsonrpcs", "fifo_reply_dir", &f.reply_dir)?;
        }
        let mi = match &s.mi {
            Some(f) => {
                let (u, g) = owner(s.fifo_user.as_deref(), s.fifo_group.as_deref())?;
                let own = (u.or(run_uid), g.or(run_gid));
                let fifo = ServerFifo::create(&f.path, f.mode, own.0, own.1)
                    .map_err(fifo_err("MI FIFO"))?;
                Some(MiEnd {
                    fifo,
                    unread: None,
                    settings: f.clone(),
                    owner: own,
                    reader: TextReader::new(&f.reply_dir),
                    opening: None,
                    opened: None,
                    held: None,
                    writing: Vec::new(),
                })
            }
            None => None,
        };
        let rpc = match &s.rpc {
            Some(f) => {
                let (u, g) = owner(s.rpc_user.as_deref(), s.rpc_group.as_deref())?;
                let own = (u.or(run_uid), g.or(run_gid));
                if let Some(dir) = f.path.parent() {
                    let _ = std::fs::create_dir_all(dir);
                }
                let fifo = ServerFifo::create(&f.path, f.mode, own.0, own.1)
                    .map_err(fifo_err("JSON-RPC FIFO"))?;
                Some(RpcEnd {
                    fifo,
                    unread: None,
                    settings: f.clone(),
                    owner: own,
                    framer: JsonFramer::new(),
                    held: None,
                    writing: Vec::new(),
                })
            }
            None => None,
        };
        Ok(Control {
            mi,
            rpc,
            info: Info {
                argv: s.argv,
                started: WallTime::now(),
                debug: s.debug,
                kill: false,
                tm_loaded: s.tm_loaded,
                indent: s.reply_indent,
                pretty: s.pretty,
            },
        })
    }

    pub(crate) fn mi_fd(&self) -> Option<RawFd> {
        self.mi.as_ref().map(|m| m.fifo.fd())
    }

    pub(crate) fn rpc_fd(&self) -> Option<RawFd> {
        self.rpc.as_ref().map(|r| r.fifo.fd())
    }

    pub(crate) fn kill_requested(&self) -> bool {
        self.info.kill
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let mut d: Vec<Instant> = Vec::new();
        if let Some(m) = &self.mi {
            d.extend(m.opening.as_ref().map(|o| o.next_try));
            d.extend(m.writing.iter().map(|w| w.next_try));
            // While a reply FIFO is being opened the request waits, and so
            // do the bytes behind it.
            if !m.reader.awaiting_reply() {
                d.extend(m.unread);
            }
        }
        if let Some(r) = &self.rpc {
            d.extend(r.framer.poll_timeout());
            d.extend(r.writing.iter().map(|w| w.next_try));
            d.extend(r.unread);
        }
        d.into_iter().min()
    }

    pub(crate) fn on_mi_readable(&mut self, core: &mut Core, sink: &mut TraceWriter, now: Instant) {
        let Some(m) = self.mi.as_mut() else { return };
        m.unread.get_or_insert(now);
        self.pump_mi(core, sink, now);
    }

    pub(crate) fn on_rpc_readable(
        &mut self,
        core: &mut Core,
        sink: &mut TraceWriter,
        now: Instant,
    ) {
        let Some(r) = self.rpc.as_mut() else { return };
        r.unread.get_or_insert(now);
        self.pump_rpc(core, sink, now);
    }

    /// The trace writer finished a sync: a held request may run.
    pub(crate) fn on_writer_synced(
        &mut self,
        core: &mut Core,
        sink: &mut TraceWriter,
        now: Instant,
    ) {
        self.pump_mi(core, sink, now);
        self.pump_rpc(core, sink, now);
    }

    pub(crate) fn on_timer(&mut self, core: &mut Core, sink: &mut TraceWriter, now: Instant) {
        if let Some(r) = self.rpc.as_mut() {
            if r.framer.poll_timeout().is_some_and(|t| t <= now) {
                r.framer.handle_timeout(now);
            }
            step_all(&mut r.writing, now, "JSON-RPC");
        }
        if let Some(m) = self.mi.as_mut() {
            step_all(&mut m.writing, now, "MI");
        }
        self.pump_mi(core, sink, now);
        self.pump_rpc(core, sink, now);
    }

    fn pump_mi(&mut self, core: &mut Core, sink: &mut TraceWriter, now: Instant) {
        let other = self.rpc.as_ref().map_or((0, 0), |r| pending(&r.writing));
        let Some(m) = self.mi.as_mut() else { return };
        let mut budget = READ_PER_TURN;
        loop {
            if m.held.is_some() {
                // Not synced yet: the writer thread wakes the reactor.
                let Some(req) = take_synced(&mut m.held, sink) else {
                    return;
                };
                let mut host = Host::new(core, sink, &mut self.info);
                let indent = host.info.indent.clone();
                let bytes = commands::handle_text(&mut host, &req, &indent);
                match m.opened.take() {
                    Some(mut w) => {
                        w.set_bytes(bytes, now);
                        if let Some(w) = step_one(w, now, "MI") {
                            keep_pending(&mut m.writing, w, other, core, "MI");
                        }
                    }
                    None => log::debug!("MI request without an open reply FIFO"),
                }
                continue;
            }
            if let Some(op) = m.opening.as_mut() {
                if op.next_try > now {
                    return;
                }
                match op.step(now) {
                    Progress::Again => return,
                    Progress::Opened | Progress::Done => {
                        m.opened = m.opening.take();
                        m.reader.reply_opened(true);
                    }
                    Progress::Failed(why) => {
                        log::warn!(
                            "MI reply FIFO {}: {why}; request not run",
                            op.path.display()
                        );
                        m.opening = None;
                        m.reader.reply_opened(false);
                    }
                }
            }
            let host = Host::new(core, sink, &mut self.info);
            let ev = m.reader.next(&|c| commands::text_kind(&host, c));
            match ev {
                // The reader needs bytes, unless it waits for a reply FIFO.
                None => {
                    if m.reader.awaiting_reply() || m.unread.is_none() || budget == 0 {
                        return;
                    }
                    let mut buf = Vec::new();
                    read_some(&mut m.fifo, &mut m.unread, &mut buf, &mut budget, "MI");
                    if buf.is_empty() {
                        return;
                    }
                    m.reader.push(&buf);
                }
                Some(TextEvent::OpenReply { path, .. }) => {
                    m.opening = Some(PendingReply::open(path, now))
                }
                Some(TextEvent::Request(req)) => {
                    // What the command reports counts every message before
                    // it: it runs once the writer thread has written them.
                    let ticket = host.sink.request_sync();
                    m.held = Some((req, ticket));
                }
                Some(TextEvent::Rejected(r)) => log::warn!("MI FIFO: {r}"),
            }
        }
    }

    fn pump_rpc(&mut self, core: &mut Core, sink: &mut TraceWriter, now: Instant) {
        let other = self.mi.as_ref().map_or((0, 0), |m| pending(&m.writing));
        let Some(r) = self.rpc.as_mut() else { return };
        let mut budget = READ_PER_TURN;
        loop {
            if r.held.is_some() {
                let Some(doc) = take_synced(&mut r.held, sink) else {
                    return;
                };
                let mut host = Host::new(core, sink, &mut self.info);
                let pretty = host.info.pretty;
                let out = commands::handle_jsonrpc(&mut host, &doc, pretty);
                if let Some(n) = &out.notice {
                    log::warn!("JSON-RPC: {n}");
                }
                let (Some(name), Some(reply)) = (out.reply_name, out.reply) else {
                    continue;
                };
                match text::reply_path(&r.settings.reply_dir, &name) {
                    Ok(path) => {
                        if let Some(w) =
                            step_one(PendingReply::new(path, reply, now), now, "JSON-RPC")
                        {
                            keep_pending(&mut r.writing, w, other, core, "JSON-RPC");
                        }
                    }
                    Err(e) => log::warn!(
                        "JSON-RPC reply name {}: {e}",
                        String::from_utf8_lossy(&name)
                    ),
                }
                continue;
            }
            let Some(frame) = r.framer.next_frame() else {
                if r.unread.is_none() || budget == 0 {
                    return;
                }
                let mut buf = Vec::new();
                read_some(
                    &mut r.fifo,
                    &mut r.unread,
                    &mut buf,
                    &mut budget,
                    "JSON-RPC",
                );
                if buf.is_empty() {
                    return;
                }
                r.framer.push(&buf, now);
                continue;
            };
            match frame {
                Frame::Dropped(why) => log::warn!("JSON-RPC FIFO: {why}"),
                Frame::Document(doc) => {
                    // Run once the rows before it are written (as MI's).
                    let ticket = sink.request_sync();
                    r.held = Some((doc, ticket));
                }
            }
        }
    }

    /// Recreates a FIFO whose path was deleted or replaced. True when a
    /// descriptor changed (the reactor then registers it again).
    pub(crate) fn recreate_stale(&mut self) -> Result<bool, ControlError> {
        let mut changed = false;
        if let Some(m) = self.mi.as_mut() {
            if m.fifo.is_stale() {
                log::warn!(
                    "MI FIFO {} was removed or replaced: recreating it",
                    m.settings.path.display()
                );
                m.fifo =
                    ServerFifo::create(&m.settings.path, m.settings.mode, m.owner.0, m.owner.1)
                        .map_err(fifo_err("MI FIFO"))?;
                m.reader = TextReader::new(&m.settings.reply_dir);
                m.unread = None;
                m.opening = None;
                m.opened = None;
                changed = true;
            }
        }
        if let Some(r) = self.rpc.as_mut() {
            if r.fifo.is_stale() {
                log::warn!(
                    "JSON-RPC FIFO {} was removed or replaced: recreating it",
                    r.settings.path.display()
                );
                r.fifo =
                    ServerFifo::create(&r.settings.path, r.settings.mode, r.owner.0, r.owner.1)
                        .map_err(fifo_err("JSON-RPC FIFO"))?;
                r.framer = JsonFramer::new();
                r.unread = None;
                changed = true;
            }
        }
        Ok(changed)
    }

    pub(crate) fn remove_fifos(&mut self) {
        if let Some(m) = &self.mi {
            let _ = std::fs::remove_file(&m.settings.path);
        }
        if let Some(r) = &self.rpc {
            let _ = std::fs::remove_file(&r.settings.path);
        }
    }
}

/// The reply directory must exist (as Kamailio checks at start-up). It is
/// joined to the client's name as a string, so one without a trailing '/'
/// is almost surely a mistake: said once, at start-up.
fn check_reply_dir(
    module: &'static str,
    param: &'static str,
    dir: &str,
) -> Result<(), ControlError> {
    if !std::path::Path::new(dir).is_dir() {
        return Err(ControlError::ReplyDir {
            module,
            param,
            dir: dir.to_string(),
        });
    }
    if !dir.ends_with('/') {
        log::warn!(
            "{module} {param} \"{dir}\" does not end in '/': reply FIFOs will be \"{dir}<name>\", as in Kamailio"
        );
    }
    Ok(())
}

/// One bounded read of a server FIFO into `buf`; clears `unread` once the
/// pipe is empty (or unreadable: logged, and retried on the next event).
fn read_some(
    fifo: &mut ServerFifo,
    unread: &mut Option<Instant>,
    buf: &mut Vec<u8>,
    budget: &mut usize,
    what: &str,
) {
    match fifo.read_up_to(buf, *budget) {
        Ok(Drained::Empty) => *unread = None,
        Ok(Drained::Limit) => {}
        Err(e) => {
            log::error!("reading {what} FIFO {}: {e}", fifo.path.display());
            *unread = None;
        }
    }
    *budget = budget.saturating_sub(buf.len());
}

/// Steps a reply; returns it when it still has work to do.
fn step_one(mut w: PendingReply, now: Instant, what: &str) -> Option<PendingReply> {
    match w.step(now) {
        Progress::Done | Progress::Opened => None,
        Progress::Again => Some(w),
        Progress::Failed(why) => {
            log::warn!("{what} reply FIFO {}: {why}", w.path.display());
            None
        }
    }
}

fn step_all(list: &mut Vec<PendingReply>, now: Instant, what: &str) {
    let mut keep = Vec::with_capacity(list.len());
    for w in list.drain(..) {
        if w.next_try > now {
            keep.push(w);
        } else if let Some(w) = step_one(w, now, what) {
            keep.push(w);
        }
    }
    *list = keep;
}

/// A request held for its sync ticket (`MiEnd::held`, `RpcEnd::held`),
/// taken once the writer thread has written every row handed in before it.
fn take_synced<T>(held: &mut Option<(T, u64)>, sink: &TraceWriter) -> Option<T> {
    match held {
        Some((_, ticket)) if sink.synced(*ticket) => held.take().map(|(x, _)| x),
        _ => None,
    }
}

/// The daemon as the MI/RPC command handlers see it.
struct Host<'a> {
    core: &'a mut Core,
    sink: &'a mut TraceWriter,
    info: &'a mut Info,
    now: WallTime,
}

impl<'a> Host<'a> {
    fn new(core: &'a mut Core, sink: &'a mut TraceWriter, info: &'a mut Info) -> Host<'a> {
        Host {
            core,
            sink,
            info,
            now: WallTime::now(),
        }
    }
}

impl MiHost for Host<'_> {
    fn trace_on(&self) -> i32 {
        self.core.trace_on()
    }

    fn set_trace_on(&mut self, on: bool) {
        log::info!("tracing switched {}", if on { "on" } else { "off" });
        self.core.set_trace_on(on);
    }

    fn debug_level(&self) -> i32 {
        self.info.debug
    }

    fn set_debug_level(&mut self, level: i32) {
        self.info.debug = level;
        log::set_max_level(level_of_debug(level));
    }

    fn uptime(&self) -> Uptime {
        Uptime {
            now_ctime: ctime(self.now.sec),
            up_since_ctime: ctime(self.info.started.sec),
            secs: (self.now.sec - self.info.started.sec).max(0) as u64,
        }
    }

    fn processes(&self) -> Vec<Process> {
        vec![Process {
            idx: 0,
            pid: std::process::id(),
            descr: "main process - attendant".into(),
        }]
    }

    fn argv(&self) -> Vec<String> {
        self.info.argv.clone()
    }

    fn cwd(&self) -> Option<String> {
        std::env::current_dir()
            .ok()
            .map(|p| p.display().to_string())
    }

    fn version(&self) -> VersionInfo {
        let mut flags = Vec::new();
        for (on, name) in [
            (cfg!(feature = "sqlite"), "SQLITE"),
            (cfg!(feature = "postgres"), "POSTGRES"),
            (cfg!(feature = "mysql"), "MYSQL"),
            (cfg!(feature = "dbtext"), "DBTEXT"),
        ] {
            if on {
                flags.push(name);
            }
        }
        VersionInfo {
            name: "siptraced".into(),
            version: crate::VERSION.into(),
            arch: std::env::consts::ARCH.into(),
            os: std::env::consts::OS.into(),
            repo: String::new(),
            build: format!("siptraced {} (rust)", crate::VERSION),
            flags: flags.join(", "),
        }
    }

    fn request_kill(&mut self) {
        self.info.kill = true;
    }

    fn trace_purge(&mut self) -> Result<u64, String> {
        self.sink.purge_now()
    }

    fn trace_stats(&self) -> TraceStats {
        let s = self.core.stats();
        let db = self.sink.counters();
        TraceStats {
            rows_written: db.rows_written,
            rows_spooled: db.rows_spooled,
            rows_replayed: db.rows_replayed,
            rows_dropped: db.rows_dropped,
            spool_bytes: db.spool_bytes,
            msgs_escaped: db.msgs_escaped,
            copies_sent: s.copies_sent,
            copies_dropped: s.copies_dropped,
            traced_requests: self.core.trace_counters().traced_requests,
            traced_replies: self.core.trace_counters().traced_replies,
            db_state: match db.down_since {
                None => DbState::Up,
                Some(t) => DbState::DownSince(local_datetime(t)),
            },
            msgs_masked: self.core.trace_counters().msgs_masked,
            rows_purged: db.rows_purged,
            last_purge_ms: db.last_purge_ms,
        }
    }

    fn limits(&self) -> Vec<crate::limits::LimitStat> {
        self.core.limits().stats()
    }

    fn filter_add(&mut self, kind: &str, value: &str, ttl: Option<&str>) -> Result<u64, String> {
        self.core
            .filter_add(kind, value, ttl, self.now)
            .map_err(|e| e.to_string())
    }

    fn filter_del(&mut self, which: &str) -> Result<usize, String> {
        self.core.filter_del(which).map_err(|e| e.to_string())
    }

    fn filter_list(&self) -> Vec<crate::trace::filter::Listed> {
        self.core.filter_list(self.now)
    }

    fn dialogs_tracked(&self) -> (usize, usize) {
        self.core.dialogs_tracked()
    }

    fn tm_stats(&self) -> Option<Vec<(String, String)>> {
        self.info.tm_loaded.then(|| {
            vec![
                (
                    "current".to_string(),
                    self.core.live_transactions().to_string(),
                ),
                (
                    "total".to_string(),
                    self.core.transactions_created().to_string(),
                ),
            ]
        })
    }
}
