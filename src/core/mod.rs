//! The proxy core: one received message in (a datagram, or a message
//! framed on a TCP/TLS connection, with that connection's own local
//! address), messages to send and trace rows out. It runs the routing script for each message and implements
//! the script's `Host` (pseudo-variables, sip_trace(), forward(),
//! sl_send_reply(), record_route(), loose_route()…), deciding which trace
//! events happen (docs/decisions.md §1, §7).
//!
//! No sockets, no database, no DNS and no clock reads of its own. The
//! reactor hands in the bytes, addresses and the time, then takes
//! `take_sends()`, `take_mirrors()` (copies for capture nodes, whose fate
//! it reports back through `count_copies()`), `take_queries()` (names to
//! look up, answered later through `on_resolved()`) and `take_rows()`.
//! Depends on sip/ (messages), script/ (the program), trace/ (rows and
//! mirrors: the core decides that an event happens, trace::mirror makes
//! its copy) and tsx/ (transactions, through tm.rs).
//!
//! Files: host.rs (the script's view of one message), tm.rs (`t_*` over
//! tsx/), state.rs (what lasts between messages, reached only through its
//! operations), memory.rs (stateless branches), resolve.rs (names: cache
//! and lookups in flight), park.rs (requests waiting for a name).

pub mod dialogs;
mod host;
pub mod memory;
pub mod park;
pub mod resolve;
mod state;
mod tm;

use crate::clock::WallTime;
use crate::db::Row;
use crate::limits::Limits;
use crate::script::{AvpName, MsgState, Program, Vars};
use crate::sip::{SipMsg, Transport};
use crate::trace::mirror::{MirrorCopy, MirrorSettings};
use crate::trace::{Facts, Tracer, Trigger};
use state::State;
use std::net::SocketAddr;
use std::time::Instant;

pub use park::ParkLimits;
pub use resolve::{Answer, DnsLimits, DnsStats, Query, Resolver};

/// One local socket as the core sees it.
#[derive(Debug, Clone)]
pub struct LocalSock {
    pub proto: Transport,
    pub addr: SocketAddr,
    /// Host and port written in our Via and Record-Route (advertised ones
    /// when configured; IPv6 in brackets).
    pub sip_host: String,
    pub sip_port: u16,
}

/// The siptrace and core settings the proxy needs at run time.
#[derive(Debug, Clone, Default)]
pub struct CoreSettings {
    pub trace_flag: Option<u8>,
    pub traced_user_avp: Option<AvpName>,
    pub trace_table_avp: Option<AvpName>,
    pub trace_sl_acks: bool,
    /// `alias=` names (and ports) that mean "us" besides the listeners.
    pub aliases: Vec<(String, Option<u16>)>,
    pub server_header: Option<String>,
    /// Where copies of traced events go (trace::mirror).
    pub mirror: MirrorSettings,
    /// Bounds of the stateless reply memory: entries, and bytes.
    pub memory_cap: usize,
    /// Resolver deadline and cache bounds.
    pub dns: DnsLimits,
    /// Requests waiting for DNS.
    pub park: ParkLimits,
    pub memory_bytes: usize,
    /// Dialogs traced whole: bounds and lifetime (docs/decisions.md §16).
    pub dialogs: dialogs::Limits,
    /// Longest TTL a runtime filter may be given (`filter_max_ttl`).
    pub filter_max_ttl: u64,
    /// Kamailio 5's `trace_mode` bits: 2 rows, 1|4 copies to duplicate_uri
    /// (docs/decisions.md §16). 0: off.
    pub trace_mode: u8,
    /// `udp_mtu` and `udp_mtu_try_proto`: None when off.
    pub udp_mtu: Option<(usize, Transport)>,
    /// rr `enable_double_rr` (Kamailio's default: on).
    pub double_rr: bool,
}

/// A message to send: a datagram from UDP socket `listener`, or on the
/// stream connection to `to` (opened from stream socket `listener` when
/// there is none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Send {
    pub listener: usize,
    pub proto: Transport,
    pub to: SocketAddr,
    pub bytes: Vec<u8>,
    /// The `out` event to trace once the reactor knows the connection's
    /// local address ([`Core::trace_stream_sent`]); None on UDP, whose
    /// events are traced when the send is queued.
    pub trace: Option<Box<StreamTrace>>,
}

/// What tracing a message sent on a stream needs besides its bytes and
/// addresses, decided when the core queued it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamTrace {
    pub(crate) facts: crate::trace::Facts,
    pub(crate) trigger: Trigger,
    pub(crate) users: Vec<String>,
    pub(crate) table: Option<String>,
    pub(crate) time: WallTime,
}

/// Counters of the SIP side.
#[derive(Debug, Default, Clone)]
pub struct CoreStats {
    pub received: u64,
    pub not_sip: u64,
    pub malformed: u64,
    pub replies_not_ours: u64,
    pub copies_sent: u64,
    pub copies_dropped: u64,
}

pub struct Core {
    program: Program,
    vars: Vars,
    s: State,
    /// `event_route[siptrace:msg]`, run for each message trace_mode traces.
    siptrace_msg: Option<crate::script::RouteId>,
}

impl Core {
    pub fn new(
        program: Program,
        settings: CoreSettings,
        socks: Vec<LocalSock>,
        tracer: Tracer,
        tm_config: crate::tsx::ValidTsxConfig,
        seed: u64,
    ) -> Core {
        let siptrace_msg = program.route_id(crate::script::RouteKind::Event, "siptrace:msg");
        Core {
            program,
            vars: Vars::default(),
            s: State::new(settings, socks, tracer, tm_config, seed),
            siptrace_msg,
        }
    }

    pub fn stats(&self) -> &CoreStats {
        self.s.stats()
    }

    /// The trace layer's counters: traced requests/replies, rows,
    /// `msgs_masked`.
    pub fn trace_counters(&self) -> &crate::trace::TraceCounters {
        self.s.trace_counters()
    }

    /// Live transactions (for `tm_stats`), and remembered stateless branches.
    pub(crate) fn live_transactions(&self) -> usize {
        self.s.tm().len()
    }

    /// Lookups handed to the resolver thread and not yet answered, and
    /// requests parked on them.
    pub(crate) fn pending_lookups(&self) -> (usize, usize) {
        (self.s.resolver().in_flight(), self.s.parked())
    }

    pub(crate) fn transactions_created(&self) -> u64 {
        self.s.tm().created
    }

    /// The bounds on peer-driven state and how often each was hit; the
    /// reactor and the control plane count theirs here too.
    pub fn limits(&self) -> &Limits {
        self.s.limits()
    }

    pub(crate) fn limits_mut(&mut self) -> &mut Limits {
        self.s.limits_mut()
    }

    /// `sip_trace_filter add` (docs/decisions.md §16).
    pub(crate) fn filter_add(
        &mut self,
        kind: &str,
        value: &str,
        ttl: Option<&str>,
        wall: WallTime,
    ) -> Result<u64, crate::trace::filter::FilterError> {
        self.s.filter_add(kind, value, ttl, wall)
    }

    /// `sip_trace_filter del ID|all`.
    pub(crate) fn filter_del(
        &mut self,
        which: &str,
    ) -> Result<usize, crate::trace::filter::FilterError> {
        self.s.filter_del(which)
    }

    pub(crate) fn filter_list(&self, wall: WallTime) -> Vec<crate::trace::filter::Listed> {
        self.s.filter_list(wall)
    }

    /// The filters' state-file text when they changed since last asked.
    pub(crate) fn filters_to_save(&mut self) -> Option<String> {
        self.s.filters_to_save()
    }

    pub(crate) fn filters_text(&self) -> String {
        self.s.filters_text()
    }

    /// Filters of the previous run; returns the lines that did not parse.
    pub(crate) fn restore_filters(&mut self, text: &str, wall: WallTime) -> Vec<String> {
        self.s.restore_filters(text, wall)
    }

    /// Dialogs traced whole now, and their bytes.
    pub(crate) fn dialogs_tracked(&self) -> (usize, usize) {
        self.s.dialogs_tracked()
    }

    /// The datagrams to send; with trace_mode, each is traced as sent
    /// (at the time of the datagram or timer that made it).
    pub(crate) fn take_sends(&mut self) -> Vec<Send> {
        let sends = self.s.take_sends();
        if self.s.traces_all() && self.s.trace_on() != 0 {
            if let Some((now, wall)) = self.s.clock() {
                // Stream sends wait for their connection's local address
                // ([`Core::trace_stream_sent`]).
                for snd in sends.iter().filter(|s| s.proto == Transport::Udp) {
                    if let Ok(m) = SipMsg::parse(&snd.bytes) {
                        let dir = crate::trace::Direction::Out;
                        let at = (snd.listener, None, snd.to);
                        self.trace_all(at, &snd.bytes, &m, dir, now, wall);
                    }
                }
            }
        }
        sends
    }

    /// trace_mode: one message received or sent on any socket, traced
    /// without script calls, subject to trace_on, unless
    /// `event_route[siptrace:msg]` drops it (docs/decisions.md §16).
    #[allow(clippy::too_many_arguments)]
    fn trace_all(
        &mut self,
        (li, conn_local, peer): (usize, Option<SocketAddr>, SocketAddr),
        raw: &[u8],
        msg: &SipMsg,
        dir: crate::trace::Direction,
        now: Instant,
        wall: WallTime,
    ) {
        if self.s.trace_on() == 0 {
            return;
        }
        if let Some(route) = self.siptrace_msg {
            let mut st = MsgState::default();
            let mut ctx = host::Ctx::new(&mut self.s, li, peer, raw, msg, now, wall);
            let outcome = self.program.run(route, &mut st, &mut self.vars, &mut ctx);
            if outcome == crate::script::Outcome::Drop {
                return;
            }
        }
        let Some(f) = facts(msg) else { return };
        let proto = self.s.sock_transport(li);
        let local = match conn_local {
            Some(a) => self.s.conn_endpoint(proto, a),
            None => self.s.local_endpoint(li),
        };
        let remote = crate::trace::Endpoint::sock(proto, peer);
        let (from, to) = match dir {
            crate::trace::Direction::In => (remote, local),
            crate::trace::Direction::Out => (local, remote),
        };
        let ev = crate::trace::Event {
            bytes: raw,
            facts: &f,
            dir,
            from,
            to,
            time: wall,
        };
        self.s.trace_all(&ev);
    }

    /// The reactor sent `s` on a connection whose local address is
    /// `local`: its `out` event is traced now, with that address.
    pub(crate) fn trace_stream_sent(&mut self, s: &Send, local: SocketAddr) {
        if let Some(t) = &s.trace {
            self.s.trace_stream_sent(t, &s.bytes, s.proto, local, s.to);
        }
        if self.s.traces_all()
            && self.s.trace_on() != 0
            && let Some((now, wall)) = self.s.clock()
            && let Ok(m) = SipMsg::parse(&s.bytes)
        {
            let at = (s.listener, Some(local), s.to);
            self.trace_all(at, &s.bytes, &m, crate::trace::Direction::Out, now, wall);
        }
    }

    /// The transport of socket `li`.
    pub(crate) fn socket_proto(&self, li: usize) -> Transport {
        self.s.sock_transport(li)
    }

    /// The address of socket `li`.
    pub(crate) fn socket_addr(&self, li: usize) -> Option<SocketAddr> {
        self.s.socket(li).map(|s| s.addr)
    }

    pub(crate) fn take_mirrors(&mut self) -> Vec<MirrorCopy> {
        self.s.take_mirrors()
    }

    /// Outcome of copies handed out by [`Core::take_mirrors`], for
    /// `sip_trace_stats` (the reactor knows whether a send succeeded).
    pub(crate) fn count_copies(&mut self, sent: u64, dropped: u64) {
        let stats = self.s.stats_mut();
        stats.copies_sent += sent;
        stats.copies_dropped += dropped;
    }

    pub(crate) fn take_rows(&mut self) -> Vec<Row> {
        self.s.take_rows()
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.s.next_deadline()
    }

    pub(crate) fn on_timer(&mut self, now: Instant, wall: WallTime) {
        self.s.set_clock(now, wall);
        self.s.forget_expired(now, wall);
        for q in self.s.resolver_mut().expire(now) {
            self.finish_parked(&q, None, now, wall);
        }
        tm::on_timer(self, now, wall);
    }

    /// Lookups the core asked for since the last call: for the resolver
    /// thread (transport/dns.rs). Their answers come back through
    /// [`Core::on_resolved`].
    pub(crate) fn take_queries(&mut self) -> Vec<Query> {
        self.s.resolver_mut().take_queries()
    }

    /// The resolver thread's answer to `q`: cached, and the requests
    /// parked on it sent (or answered 478/482).
    pub(crate) fn on_resolved(&mut self, q: &Query, a: Answer, now: Instant, wall: WallTime) {
        let addrs = self.s.resolver_mut().on_answer(q, a, now);
        self.finish_parked(q, addrs, now, wall);
    }

    /// The work parked on `q`, with the addresses found (None: the name
    /// did not resolve in time — 478, traced like any local reply).
    fn finish_parked(
        &mut self,
        q: &Query,
        addrs: Option<Vec<SocketAddr>>,
        now: Instant,
        wall: WallTime,
    ) {
        let parked = self.s.unpark(q);
        if parked.is_empty() {
            return;
        }
        for p in parked {
            let addrs: Option<Vec<SocketAddr>> = addrs.as_ref().map(|v| match p.port {
                Some(port) => v.iter().map(|a| SocketAddr::new(a.ip(), port)).collect(),
                None => v.clone(),
            });
            match p.work {
                park::Work::Stateless { li, msg, st } => {
                    let refusal = match &addrs {
                        Some(a) => match host::forward_to(
                            &mut self.s,
                            li,
                            &msg,
                            &st,
                            (p.proto, a),
                            now,
                            wall,
                        ) {
                            Ok(()) => continue,
                            Err(host::Refusal::Loop) => (482, "Loop Detected"),
                            Err(host::Refusal::NoRoute) => {
                                (tm::UNRESOLVABLE_CODE, tm::UNRESOLVABLE)
                            }
                        },
                        None => (tm::UNRESOLVABLE_CODE, tm::UNRESOLVABLE),
                    };
                    host::sl_reply_traced(&mut self.s, li, &msg, refusal.0, refusal.1, &st, wall);
                }
                park::Work::Branch { tx, li, msg } => {
                    // Answered meanwhile (CANCEL, t_reply): nothing to relay.
                    if self.s.tm().final_reply(tx).is_some() {
                        continue;
                    }
                    let refusal = match &addrs {
                        Some(a) => {
                            let to = (p.proto, a.as_slice());
                            match tm::relay_branch(&mut self.s, tx, li, &msg, to, now, wall) {
                                Ok(()) => continue,
                                Err(tm::BranchError::Route(host::Refusal::Loop)) => {
                                    (482, "Loop Detected")
                                }
                                Err(tm::BranchError::OverBudget) => {
                                    tm::refuse_over_budget(&mut self.s, tx, now, wall);
                                    continue;
                                }
                                Err(_) => (tm::UNRESOLVABLE_CODE, tm::UNRESOLVABLE),
                            }
                        }
                        None => (tm::UNRESOLVABLE_CODE, tm::UNRESOLVABLE),
                    };
                    tm::refuse(&mut self.s, tx, refusal.0, refusal.1, now, wall);
                }
            }
        }
        tm::run_pending(self, now, wall);
    }

    /// Counters of the resolver and of the requests it made wait.
    pub(crate) fn dns_stats(&self) -> (DnsStats, u64, u64) {
        (
            self.s.resolver().stats().clone(),
            self.s.park_full(),
            self.s.loops(),
        )
    }

    /// One datagram received on listener `li` from `src`.
    pub(crate) fn on_datagram(
        &mut self,
        li: usize,
        src: SocketAddr,
        raw: &[u8],
        now: Instant,
        wall: WallTime,
    ) {
        self.on_message(li, None, src, raw, now, wall);
    }

    /// One message framed on a stream connection of socket `li`, from
    /// `src`, whose own local address is `local` (an outgoing
    /// connection's ephemeral port).
    pub(crate) fn on_stream_message(
        &mut self,
        li: usize,
        local: SocketAddr,
        src: SocketAddr,
        raw: &[u8],
        now: Instant,
        wall: WallTime,
    ) {
        self.on_message(li, Some(local), src, raw, now, wall);
    }

    /// A message on a stream without Content-Length (`head` is its header
    /// section): 400 on the same connection, which the reactor then
    /// closes (RFC 3261 §18.3). Not traced, as no malformed message is.
    pub(crate) fn on_unframed(&mut self, li: usize, src: SocketAddr, head: &[u8]) {
        self.s.stats_mut().received += 1;
        self.s.stats_mut().malformed += 1;
        let Ok(m) = SipMsg::parse_to_answer(head) else {
            return;
        };
        self.answer_malformed(li, src, m, true, (400, "Missing Content-Length"));
    }

    /// An error reply (400 and kin) to what could not be handled but can be
    /// answered: a request other than ACK, answered statelessly to where it
    /// came from (on a stream, to the connection's peer: received and rport).
    fn answer_malformed(
        &mut self,
        li: usize,
        src: SocketAddr,
        mut m: SipMsg,
        stream: bool,
        (code, reason): (u16, &str),
    ) {
        if !m.is_request() || m.method() == Some("ACK") {
            return;
        }
        if stream {
            let _ = m.force_via_rport();
        }
        let _ = m.set_via_received(src.ip(), src.port());
        host::send_stateless_reply(&mut self.s, li, &m, code, reason, &[], false);
    }

    fn on_message(
        &mut self,
        li: usize,
        local: Option<SocketAddr>,
        src: SocketAddr,
        raw: &[u8],
        now: Instant,
        wall: WallTime,
    ) {
        let stream = local.is_some();
        self.s.stats_mut().received += 1;
        self.s.set_clock(now, wall);
        let msg = match SipMsg::parse(raw) {
            Ok(m) => m,
            Err(e) => {
                self.s.stats_mut().not_sip += 1;
                log::debug!("dropped {} bytes from {src}: not SIP ({e})", raw.len());
                // A request cut short of its Content-Length still earns a
                // 400 when it can be addressed (RFC 4475 §3.1.2.2).
                if let Ok(m) = SipMsg::parse_to_answer(raw) {
                    self.answer_malformed(li, src, m, stream, (400, "Bad Request"));
                }
                return;
            }
        };
        if let Err(why) = msg.validate() {
            self.s.stats_mut().malformed += 1;
            log::debug!("malformed message from {src}: {why}");
            self.answer_malformed(li, src, msg, stream, why.status());
            return;
        }
        if self.s.traces_all() {
            let at = (li, local, src);
            self.trace_all(at, raw, &msg, crate::trace::Direction::In, now, wall);
        }
        if msg.is_request() {
            self.on_request(li, local, src, raw, msg, now, wall);
        } else {
            self.on_reply(li, local, src, raw, msg, now, wall);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_request(
        &mut self,
        li: usize,
        local: Option<SocketAddr>,
        src: SocketAddr,
        raw: &[u8],
        orig: SipMsg,
        now: Instant,
        wall: WallTime,
    ) {
        if orig.method() == Some("ACK") && self.s.is_sl_ack(&orig) {
            if self.s.traces_sl_acks() {
                let mut ctx = host::Ctx::new(&mut self.s, li, src, raw, &orig, now, wall);
                ctx.local = local;
                ctx.trace_received(Trigger::Script, &MsgState::default(), None);
            }
            return;
        }
        // tm absorbs retransmissions and matches ACK/CANCEL of its
        // transactions before the script sees them only where Kamailio's
        // tm does so itself (t_check_trans / t_relay); the script runs for
        // every request (docs/decisions.md §7).
        let mut work = orig.clone();
        if local.is_some() {
            let _ = work.force_via_rport();
        }
        let _ = work.set_via_received(src.ip(), src.port());
        let mut st = MsgState::default();
        // A filter or a dialog traced whole: the request is traced as it
        // arrives, and its transaction as the flag would (docs/decisions.md §16).
        let scope = self.s.scope_of_request(&orig, src, now, wall);
        let route = self.program.request_route();
        let mut ctx = host::Ctx::new(&mut self.s, li, src, raw, &orig, now, wall);
        ctx.local = local;
        ctx.msg = work;
        match scope {
            Some(dialogs::Scope::Filter) => {
                st.trace_forced = true;
                ctx.trace_received(Trigger::Forced, &st, None);
                ctx.in_traced = true;
            }
            Some(dialogs::Scope::Script) => {
                st.trace_scoped = true;
                // With trace_on off a sip_trace() in the script may still
                // make its traced_user rows: leave the message to it.
                if ctx.s.trace_on() != 0 {
                    ctx.trace_received(Trigger::Script, &st, None);
                    ctx.in_traced = true;
                }
            }
            None => {}
        }
        self.program.run(route, &mut st, &mut self.vars, &mut ctx);
        tm::run_pending(self, now, wall);
    }

    #[allow(clippy::too_many_arguments)]
    fn on_reply(
        &mut self,
        li: usize,
        local: Option<SocketAddr>,
        src: SocketAddr,
        raw: &[u8],
        orig: SipMsg,
        now: Instant,
        wall: WallTime,
    ) {
        let Some(Ok(via)) = orig.top_via() else {
            self.s.stats_mut().replies_not_ours += 1;
            return;
        };
        let via_port = via.port.unwrap_or(crate::sip::DEFAULT_PORT);
        // Kamailio runs onreply_route for every reply and only then finds
        // that one whose top Via is not ours cannot be relayed.
        let ours = self.s.is_local(via.host_unbracketed(), Some(via_port));
        let branch = via.branch().unwrap_or("").to_string();
        let forced = self.s.reply_forced(&orig, src, now, wall);
        if ours && tm::on_reply(self, li, local, src, raw, &orig, &branch, forced, now, wall) {
            return;
        }
        let rem = if ours {
            self.s.remembered(&branch).cloned()
        } else {
            None
        };
        let mut st = rem.as_ref().map(|r| r.state.clone()).unwrap_or_default();
        st.trace_forced |= forced;
        let out_li = rem.as_ref().map(|r| r.listener);
        let route = self.program.onreply_route();
        let mut ctx = host::Ctx::new(&mut self.s, li, src, raw, &orig, now, wall);
        ctx.local = local;
        ctx.msg = orig.clone();
        let outcome = match route {
            Some(r) => Some(self.program.run(r, &mut st, &mut self.vars, &mut ctx)),
            None => None,
        };
        // Flag-driven rows for a relayed reply: its request was remembered,
        // or onreply_route set the flag (docs/decisions.md §1).
        let flag_set = ctx.flag_set(&st);
        let traced = rem.is_some() || flag_set;
        if traced {
            ctx.trace_received(Trigger::Flag { flag_set }, &st, None);
        }
        if !ours {
            ctx.s.stats_mut().replies_not_ours += 1;
            log::debug!("reply from {src} whose top Via is not ours: not relayed");
            return;
        }
        if outcome == Some(crate::script::Outcome::Drop) {
            return;
        }
        ctx.relay_reply_statelessly(out_li, traced.then_some(&st));
    }

    /// MI/RPC view of the trace switch.
    pub fn trace_on(&self) -> i32 {
        self.s.trace_on()
    }

    pub(crate) fn set_trace_on(&mut self, on: bool) {
        self.s.set_trace_on(on);
    }
}

/// The columns of a message, or None when Call-ID, CSeq, From or To is
/// missing (Kamailio stores no row for such a message, docs/kamailio.md §7.1).
pub(crate) fn facts(m: &SipMsg) -> Option<Facts> {
    let callid: crate::db::Shared<str> = (&*m.call_id_str()?).into();
    let (_, cseq_method) = m.cseq()?;
    m.from()?;
    m.to()?;
    let lossy = |b: Option<&[u8]>| -> crate::db::Shared<str> {
        b.map_or_else(|| "".into(), |b| String::from_utf8_lossy(b).into())
    };
    Some(Facts {
        callid,
        method: if m.is_request() {
            m.method().unwrap_or(cseq_method).into()
        } else {
            cseq_method.into()
        },
        status: m
            .status()
            .map_or_else(|| "".into(), |c| c.to_string().into()),
        fromtag: lossy(m.from_tag()),
        totag: lossy(m.to_tag()),
    })
}
