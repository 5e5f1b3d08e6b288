//! What the core keeps between messages — sockets, siptrace settings, the
//! tracer and mirror, the stateless reply memory, the transaction table,
//! the queues the reactor drains — behind operations named for what the
//! proxy does with them (send, trace, resolve, remember…), so host.rs and
//! tm.rs, which are children of `core` and would otherwise see every
//! field, cannot reach past them.
//!
//! Depends on the same modules as the rest of core/ (sip/, script/,
//! trace/, tsx/ through tm.rs) and on nothing that does I/O.

use super::dialogs::{self, Dialogs, Scope};
use super::memory::{Evicted, Memory, Remembered};
use super::park::{Park, ParkFull, Parked};
use super::resolve::{Lookup, Query, Resolver};
use super::tm::Tm;
use super::{CoreSettings, CoreStats, LocalSock, Send, StreamTrace};
use crate::clock::WallTime;
use crate::db::Row;
use crate::limits::{Bound, Limits};
use crate::script::{AvpName, MsgState, Value};
use crate::sip::{SipMsg, Transport, Uri, build_reply};
use crate::trace::filter::{FilterError, Filters, Listed, Probe};
use crate::trace::mirror::{Copied, Mirror, MirrorCopy, MirrorReq};
use crate::trace::{Direction, Endpoint, Event, Facts, Tracer, Trigger};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Everything but the program and `$var`s, so a message context can borrow
/// it mutably while the interpreter holds those.
pub(crate) struct State {
    trace_flag: Option<u8>,
    traced_user_avp: Option<AvpName>,
    trace_table_avp: Option<AvpName>,
    trace_sl_acks: bool,
    aliases: Vec<(String, Option<u16>)>,
    server_header: Option<String>,
    socks: Vec<LocalSock>,
    tracer: Tracer,
    memory: Memory,
    sends: Vec<Send>,
    /// An `out` event on a stream socket traced before its send was
    /// queued: attached to that send (docs/decisions.md §18).
    stream_trace: Option<(usize, SocketAddr, usize, Box<StreamTrace>)>,
    /// Copies for duplicate_uri / sip_trace(uri) / HEP, in event order.
    mirror: Mirror,
    rows: Vec<Row>,
    stats: CoreStats,
    resolver: Resolver,
    /// Requests waiting for the resolver.
    park: Park,
    /// Requests refused with 482 (next hop is ourselves).
    loops: u64,
    /// Prefix of the To-tags sl_send_reply writes: an ACK whose To-tag has
    /// it answers one of our stateless replies and is absorbed (sl module).
    sl_tag: String,
    udp_mtu: Option<(usize, Transport)>,
    double_rr: bool,
    tm: Tm,
    limits: Limits,
    /// Runtime trace filters (docs/decisions.md §16).
    filters: Filters,
    /// Dialogs traced whole: sip_trace "d" and filter-matched INVITEs.
    dialogs: Dialogs,
    /// The reactor's clock as last handed in, both ways: turns a
    /// filter's wall-clock expiry into a timer deadline.
    anchor: Option<(Instant, WallTime)>,
    /// `trace_mode` bits (docs/decisions.md §16).
    trace_mode: u8,
}

impl State {
    pub fn new(
        settings: CoreSettings,
        socks: Vec<LocalSock>,
        tracer: Tracer,
        tm_config: crate::tsx::ValidTsxConfig,
        seed: u64,
    ) -> State {
        let CoreSettings {
            trace_flag,
            traced_user_avp,
            trace_table_avp,
            trace_sl_acks,
            aliases,
            server_header,
            mirror,
            memory_cap,
            dns,
            park,
            memory_bytes,
            dialogs: dialog_limits,
            filter_max_ttl,
            trace_mode,
            udp_mtu,
            double_rr,
        } = settings;
        let memory_cap = memory_cap.max(1024);
        let mut limits = Limits::default();
        limits.set_value(Bound::SlMemoryEntries, memory_cap as u64);
        limits.set_value(Bound::SlMemoryBytes, memory_bytes as u64);
        let tm_values: &crate::tsx::TsxConfig = &tm_config;
        limits.set_value(Bound::Transactions, tm_values.max_transactions as u64);
        limits.set_value(Bound::TransactionBytes, tm_values.max_bytes as u64);
        limits.set_value(Bound::TracedDialogs, dialog_limits.max_entries as u64);
        limits.set_value(Bound::TracedDialogBytes, dialog_limits.max_bytes as u64);
        // UDP sockets come first (daemon.rs): a copy's listener index is
        // the reactor's UDP socket index.
        let udp: Vec<SocketAddr> = socks
            .iter()
            .take_while(|s| s.proto == Transport::Udp)
            .map(|s| s.addr)
            .collect();
        let mirror = Mirror::new(mirror, udp);
        State {
            trace_flag,
            traced_user_avp,
            trace_table_avp,
            trace_sl_acks,
            aliases,
            server_header,
            socks,
            tracer,
            memory: Memory::new(memory_cap, memory_bytes),
            sends: Vec::new(),
            stream_trace: None,
            mirror,
            rows: Vec::new(),
            stats: CoreStats::default(),
            resolver: Resolver::new(dns),
            park: Park::new(park),
            loops: 0,
            sl_tag: format!("{seed:016x}"),
            udp_mtu,
            double_rr,
            tm: Tm::new(tm_config),
            limits,
            filters: Filters::new(filter_max_ttl),
            dialogs: Dialogs::new(dialog_limits),
            anchor: None,
            trace_mode,
        }
    }

    pub fn stats(&self) -> &CoreStats {
        &self.stats
    }

    pub(crate) fn stats_mut(&mut self) -> &mut CoreStats {
        &mut self.stats
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub(crate) fn limits_mut(&mut self) -> &mut Limits {
        &mut self.limits
    }

    pub fn tm(&self) -> &Tm {
        &self.tm
    }

    pub(crate) fn tm_mut(&mut self) -> &mut Tm {
        &mut self.tm
    }

    pub(crate) fn take_sends(&mut self) -> Vec<Send> {
        std::mem::take(&mut self.sends)
    }

    pub(crate) fn take_mirrors(&mut self) -> Vec<MirrorCopy> {
        self.mirror.take()
    }

    pub(crate) fn take_rows(&mut self) -> Vec<Row> {
        std::mem::take(&mut self.rows)
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        [
            self.memory.next_deadline(),
            self.tm.next_deadline(),
            self.resolver.next_deadline(),
            self.dialogs.next_deadline(),
            self.filter_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// When the next filter expires, on the reactor's clock.
    fn filter_deadline(&self) -> Option<Instant> {
        let exp = self.filters.next_expiry()?;
        let (now, wall) = self.anchor?;
        let secs = u64::try_from(exp - wall.sec).unwrap_or(0);
        // Expiry is checked against the wall second: wake just after it.
        Some(now + Duration::from_secs(secs) + Duration::from_millis(10))
    }

    /// The clock of this turn or datagram, for what is timed in wall
    /// seconds (filters).
    pub(crate) fn set_clock(&mut self, now: Instant, wall: WallTime) {
        self.anchor = Some((now, wall));
    }

    /// The clock last handed in.
    pub(crate) fn clock(&self) -> Option<(Instant, WallTime)> {
        self.anchor
    }

    /// Does trace_mode trace every message?
    pub(crate) fn traces_all(&self) -> bool {
        self.trace_mode != 0
    }

    /// A message trace_mode traces: the `''` row when trace_on (bit 2),
    /// one copy to duplicate_uri (bits 1 and 4: the configured
    /// encapsulation, which config.rs checked agrees with the bit).
    pub(crate) fn trace_all(&mut self, ev: &Event<'_>) {
        if !self.tracer.wants(Trigger::Script, 0) {
            return;
        }
        let masked = self.tracer.mask(ev.bytes);
        let ev = Event {
            bytes: &masked,
            ..ev.clone()
        };
        if self.trace_mode & 2 != 0 && self.tracer.to_database() {
            self.tracer
                .rows(&ev, Trigger::Script, &[], None, &mut self.rows);
        }
        if self.trace_mode & 5 != 0
            && self.mirror.copy(&ev, MirrorReq::default()) == Copied::Dropped
        {
            self.stats.copies_dropped += 1;
        }
    }

    pub(crate) fn forget_expired(&mut self, now: Instant, wall: WallTime) {
        self.memory.expire(now);
        self.dialogs.expire(now);
        if self.filters.next_expiry().is_some_and(|e| e <= wall.sec) {
            for f in self.filters.expire(wall.sec) {
                log::info!(
                    "trace filter {} ({} {}) expired after matching {} messages",
                    f.id,
                    f.kind,
                    f.value,
                    f.matched
                );
            }
        }
    }

    /// `sip_trace_filter add`: the new filter's id.
    pub(crate) fn filter_add(
        &mut self,
        kind: &str,
        value: &str,
        ttl: Option<&str>,
        wall: WallTime,
    ) -> Result<u64, FilterError> {
        let id = self.filters.add(kind, value, ttl, wall.sec)?;
        if let Some(f) = self.filters.list(wall.sec).iter().find(|f| f.id == id) {
            log::info!(
                "trace filter {id} added: {} {} for {} s",
                f.kind,
                f.value,
                f.secs_left
            );
        }
        Ok(id)
    }

    /// `sip_trace_filter del ID|all`: how many were deleted.
    pub(crate) fn filter_del(&mut self, which: &str) -> Result<usize, FilterError> {
        let n = self.filters.del(which)?;
        log::info!("trace filter {which} deleted ({n})");
        Ok(n)
    }

    pub(crate) fn filter_list(&self, wall: WallTime) -> Vec<Listed> {
        self.filters.list(wall.sec)
    }

    /// The filters' state-file text when it changed since last asked.
    pub(crate) fn filters_to_save(&mut self) -> Option<String> {
        self.filters.take_dirty().then(|| self.filters.render())
    }

    /// The filters' state-file text, whatever changed (at exit: the
    /// match counts).
    pub(crate) fn filters_text(&self) -> String {
        self.filters.render()
    }

    /// Filters of an earlier run, from the state file's text; the lines
    /// that could not be read.
    pub(crate) fn restore_filters(&mut self, text: &str, wall: WallTime) -> Vec<String> {
        let bad = self.filters.restore(text, wall.sec);
        for f in self.filters.list(wall.sec) {
            log::info!(
                "trace filter {} restored: {} {}, {} s left",
                f.id,
                f.kind,
                f.value,
                f.secs_left
            );
        }
        bad
    }

    /// Dialogs traced whole now, and their bytes.
    pub(crate) fn dialogs_tracked(&self) -> (usize, usize) {
        (self.dialogs.len(), self.dialogs.bytes())
    }

    /// How the request `m` (from `src`) is to be traced beyond what the
    /// script asks: a live filter matches it, or it belongs to a dialog
    /// traced whole. An initial INVITE a filter matched starts such a
    /// dialog (docs/decisions.md §16).
    pub(crate) fn scope_of_request(
        &mut self,
        m: &SipMsg,
        src: SocketAddr,
        now: Instant,
        wall: WallTime,
    ) -> Option<Scope> {
        if self.filters.is_empty() && self.dialogs.is_empty() {
            return None;
        }
        let callid = String::from_utf8_lossy(m.call_id().unwrap_or_default()).into_owned();
        let from_tag = String::from_utf8_lossy(m.from_tag().unwrap_or_default()).into_owned();
        let to_tag = m.to_tag().map(|t| String::from_utf8_lossy(t).into_owned());
        let method = m.method().unwrap_or("");
        let mut scope = None;
        if !self.filters.is_empty() && self.probe(m, src, &callid, wall) {
            scope = Some(Scope::Filter);
        }
        if let Some(tt) = &to_tag {
            let in_dialog =
                self.dialogs
                    .lookup_request(&callid, &from_tag, tt, method == "BYE", now);
            scope = scope.or(in_dialog);
        } else if method == "INVITE" && scope == Some(Scope::Filter) {
            self.track_dialog(&callid, &from_tag, Scope::Filter, now);
        }
        scope
    }

    /// A reply: does a filter match it? A reply to a traced INVITE moves
    /// its dialog on.
    pub(crate) fn reply_forced(
        &mut self,
        m: &SipMsg,
        src: SocketAddr,
        now: Instant,
        wall: WallTime,
    ) -> bool {
        if self.filters.is_empty() && self.dialogs.is_empty() {
            return false;
        }
        let callid = String::from_utf8_lossy(m.call_id().unwrap_or_default()).into_owned();
        if !self.dialogs.is_empty() && m.cseq_method() == Some("INVITE") {
            let from_tag = String::from_utf8_lossy(m.from_tag().unwrap_or_default());
            if let Some(code) = m.status() {
                self.dialogs.on_invite_reply(&callid, &from_tag, code, now);
            }
        }
        !self.filters.is_empty() && self.probe(m, src, &callid, wall)
    }

    fn probe(&mut self, m: &SipMsg, src: SocketAddr, callid: &str, wall: WallTime) -> bool {
        let from = m.from().and_then(|n| n.uri_str().map(str::to_string));
        let to = m.to().and_then(|n| n.uri_str().map(str::to_string));
        let ruri = m.request_uri().map(str::to_string);
        let uris: Vec<Uri> = [&from, &to, &ruri]
            .into_iter()
            .flatten()
            .filter_map(|u| Uri::parse(u).ok())
            .collect();
        let probe = Probe {
            users: uris.iter().filter_map(|u| u.user()).collect(),
            ips: vec![src.ip()],
            callid,
        };
        self.filters.matches(&probe, wall.sec)
    }

    /// Does a live ip filter name `to`, where a message is being sent?
    pub(crate) fn filter_forces_dest(&mut self, to: IpAddr, wall: WallTime) -> bool {
        self.filters.has_ip() && self.filters.matches_ip(to, wall.sec)
    }

    /// Traces the rest of this INVITE's dialog (sip_trace "d", a filter);
    /// a full table is counted, and the INVITE is still traced.
    pub(crate) fn track_dialog(
        &mut self,
        callid: &str,
        from_tag: &str,
        scope: Scope,
        now: Instant,
    ) {
        match self.dialogs.track(callid, from_tag, scope, now) {
            Ok(()) => {}
            Err(dialogs::Full::Entries) => self.limits.hit(Bound::TracedDialogs),
            Err(dialogs::Full::Bytes) => self.limits.hit(Bound::TracedDialogBytes),
        }
    }

    /// MI/RPC view of the trace switch.
    pub(crate) fn trace_counters(&self) -> &crate::trace::TraceCounters {
        &self.tracer.counters
    }

    pub fn trace_on(&self) -> i32 {
        self.tracer.on
    }

    pub(crate) fn set_trace_on(&mut self, on: bool) {
        self.tracer.on = i32::from(on);
    }

    /// Does trace_sl_acks ask for ACKs absorbed by sl to be traced?
    pub(crate) fn traces_sl_acks(&self) -> bool {
        self.trace_sl_acks
    }

    /// An ACK whose To-tag we wrote in a stateless reply (sl module).
    pub(crate) fn is_sl_ack(&self, ack: &SipMsg) -> bool {
        ack.to_tag()
            .is_some_and(|t| t.starts_with(self.sl_tag.as_bytes()))
    }

    /// `{prefix}{our tag}.{n:x}`: To-tags and branches that carry this
    /// instance's tag, so what comes back for them is recognised.
    pub(crate) fn tagged(&self, prefix: &str, n: u64) -> String {
        format!("{prefix}{}.{n:x}", self.sl_tag)
    }

    /// A reply to `req` as we write it (with our Server header).
    pub(crate) fn reply_bytes(
        &self,
        req: &SipMsg,
        code: u16,
        reason: &str,
        to_tag: Option<&str>,
        extra: &[String],
    ) -> Vec<u8> {
        build_reply(
            req,
            code,
            reason,
            to_tag,
            extra,
            self.server_header.as_deref(),
        )
    }

    pub fn send(&mut self, listener: usize, to: SocketAddr, bytes: Vec<u8>) {
        let trace = match self.stream_trace.take() {
            Some((l, t, n, tr)) if l == listener && t == to && n == bytes.len() => Some(tr),
            other => {
                self.stream_trace = other;
                None
            }
        };
        self.sends.push(Send {
            listener,
            proto: self.sock_transport(listener),
            to,
            bytes,
            trace,
        });
    }

    /// The `out` event of a message sent on a stream connection whose
    /// local address the reactor knows only now (an outgoing
    /// connection's ephemeral port).
    pub(crate) fn trace_stream_sent(
        &mut self,
        t: &StreamTrace,
        bytes: &[u8],
        proto: Transport,
        local: SocketAddr,
        to: SocketAddr,
    ) {
        let ev = Event {
            bytes,
            facts: &t.facts,
            dir: Direction::Out,
            from: self.tracer.local(Endpoint::sock(proto, local)),
            to: Endpoint::sock(proto, to),
            time: t.time,
        };
        self.trace_with(&ev, t.trigger, t.users.clone(), t.table.clone(), None);
    }

    /// `host` with `port` (none: RFC 3263 SRV for a name, 5060 for an IP
    /// literal), from the cache or by a lookup asked for now.
    pub(crate) fn lookup(&mut self, host: &str, port: Option<u16>, now: Instant) -> Lookup {
        self.resolver.lookup(host, port, now)
    }

    pub(crate) fn resolver(&self) -> &Resolver {
        &self.resolver
    }

    pub(crate) fn resolver_mut(&mut self) -> &mut Resolver {
        &mut self.resolver
    }

    /// Parks work until `q` is answered; refused when the park is full
    /// (the caller answers 503).
    pub(crate) fn park(&mut self, q: Query, p: Parked) -> Result<(), ParkFull> {
        let r = self.park.park(q, p);
        if r.is_err() && self.park.full.is_power_of_two() {
            log::warn!(
                "{} requests refused with 503: too many waiting for DNS ({} parked)",
                self.park.full,
                self.park.len()
            );
        }
        r
    }

    pub(crate) fn unpark(&mut self, q: &Query) -> Vec<Parked> {
        self.park.take(q)
    }

    /// Requests parked now, waiting for the resolver.
    pub(crate) fn parked(&self) -> usize {
        self.park.len()
    }

    pub(crate) fn park_full(&self) -> u64 {
        self.park.full
    }

    pub(crate) fn count_loop(&mut self) {
        self.loops += 1;
    }

    pub(crate) fn loops(&self) -> u64 {
        self.loops
    }

    /// Is `to` one of our own listening sockets (a wildcard listen counts
    /// for loopback addresses on its port)?
    pub(crate) fn is_own_socket(&self, to: SocketAddr) -> bool {
        self.socks.iter().any(|s| {
            s.addr == to
                || (s.addr.port() == to.port()
                    && s.addr.ip().is_unspecified()
                    && (to.ip().is_loopback() || to.ip().is_unspecified()))
        })
    }

    /// The stateless branch `branch` was forwarded with the script state
    /// `st`, received on listener `li`: its replies are traced alike.
    pub(crate) fn remember(&mut self, branch: String, st: &MsgState, li: usize, now: Instant) {
        let r = Remembered {
            state: st.clone(),
            listener: li,
        };
        match self.memory.remember(branch, r, now) {
            Some(Evicted::Entries) => self.limits.hit(Bound::SlMemoryEntries),
            Some(Evicted::Bytes) => self.limits.hit(Bound::SlMemoryBytes),
            None => {}
        }
    }

    pub(crate) fn remembered(&self, branch: &str) -> Option<&Remembered> {
        self.memory.get(branch)
    }

    pub fn socket(&self, li: usize) -> Option<&LocalSock> {
        self.socks.get(li)
    }

    /// Our Via for a request leaving listener `li` (advertised address).
    pub fn via(&self, li: usize, branch: &str) -> Option<String> {
        let sock = self.socks.get(li)?;
        Some(format!(
            "SIP/2.0/{} {}:{};branch={branch}",
            sock.proto.via_name(),
            sock.sip_host,
            sock.sip_port
        ))
    }

    /// Is `host[:port]` one of our sockets or aliases? A missing port means
    /// 5060 (RFC 3261 §19.1.2).
    pub(crate) fn is_local(&self, host: &str, port: Option<u16>) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = port.unwrap_or(crate::sip::DEFAULT_PORT);
        let ip: Option<std::net::IpAddr> = host.parse().ok();
        self.socks.iter().any(|s| {
            let same_host = match ip {
                Some(ip) => ip == s.addr.ip(),
                None => false,
            } || s
                .sip_host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .eq_ignore_ascii_case(host);
            same_host && (port == s.addr.port() || port == s.sip_port)
        }) || self.aliases.iter().any(|(a, p)| {
            a.eq_ignore_ascii_case(host)
                && match p {
                    Some(p) => *p == port,
                    None => self.socks.iter().any(|s| s.addr.port() == port),
                }
        })
    }

    /// Do we listen on address `ip` (any port)?
    pub(crate) fn listens_on(&self, ip: std::net::IpAddr) -> bool {
        self.socks.iter().any(|s| s.addr.ip() == ip)
    }

    /// The socket to send to `to` over `proto` from: the preferred one
    /// when its transport and address family fit, else the first that
    /// fits.
    pub(crate) fn pick_listener(
        &self,
        to: SocketAddr,
        proto: Transport,
        preferred: Option<usize>,
    ) -> Option<usize> {
        let fits = |s: &LocalSock| s.proto == proto && s.addr.is_ipv4() == to.is_ipv4();
        if let Some(p) = preferred {
            if self.socks.get(p).is_some_and(fits) {
                return Some(p);
            }
        }
        self.socks.iter().position(fits)
    }

    /// rr `enable_double_rr`.
    pub(crate) fn double_rr(&self) -> bool {
        self.double_rr
    }

    /// Kamailio's size rule: `msg`, about to leave UDP socket `li`, is
    /// larger than `udp_mtu` once our Via is on it — the transport to try
    /// instead (`udp_mtu_try_proto`), as RFC 3261 §18.1.1 asks for
    /// requests near the path MTU.
    pub(crate) fn over_mtu(&self, li: usize, msg: &SipMsg) -> Option<Transport> {
        let (mtu, try_proto) = self.udp_mtu?;
        if self.sock_transport(li) != Transport::Udp {
            return None;
        }
        // Our Via: "Via: " + its value + CRLF, with a branch as long as
        // the ones we write.
        let via = self.via(li, &"z".repeat(40))?.len() + 7;
        (msg.as_bytes().len() + via > mtu).then_some(try_proto)
    }

    /// The transport of listener `li` (UDP when there is none: the only
    /// one served).
    pub(crate) fn sock_transport(&self, li: usize) -> Transport {
        self.socks.get(li).map(|l| l.proto).unwrap_or_default()
    }

    /// Listener `li` as a trace event's end, as it is (no trace_local_ip).
    pub(crate) fn sock_endpoint(&self, li: usize) -> Endpoint {
        match self.socks.get(li) {
            Some(l) => Endpoint::sock(l.proto, l.addr),
            None => Endpoint::Any,
        }
    }

    /// A local socket as a trace event's end, or trace_local_ip
    /// (docs/decisions.md §1).
    pub(crate) fn local_endpoint(&self, li: usize) -> Endpoint {
        self.tracer.local(self.sock_endpoint(li))
    }

    /// A connection's own local address as a trace event's end, or
    /// trace_local_ip.
    pub(crate) fn conn_endpoint(&self, proto: Transport, local: SocketAddr) -> Endpoint {
        self.tracer.local(Endpoint::sock(proto, local))
    }

    /// Is the trace flag set in `st`? A message of a dialog traced whole,
    /// or one a filter matched, counts as flagged (docs/decisions.md §16).
    pub(crate) fn flag_set(&self, st: &MsgState) -> bool {
        st.trace_scoped || st.trace_forced || self.trace_flag.is_some_and(|f| st.flag(f))
    }

    /// Sets the trace flag in `st` (when one is configured).
    pub(crate) fn set_flag(&self, st: &mut MsgState) {
        if let Some(f) = self.trace_flag {
            st.flags |= 1 << f;
        }
    }

    /// Would an event with this trigger and script state be traced at all?
    /// Lets a caller skip building the event.
    pub(crate) fn wants_trace(&self, trigger: Trigger, st: &MsgState) -> bool {
        let trigger = if st.trace_forced {
            Trigger::Forced
        } else {
            trigger
        };
        self.tracer.wants(trigger, self.traced_users(st).len())
    }

    pub(crate) fn traced_users(&self, st: &MsgState) -> Vec<String> {
        match &self.traced_user_avp {
            Some(name) => st.avps.values(name).map(Value::to_text).collect(),
            None => Vec::new(),
        }
    }

    fn trace_table(&self, st: &MsgState) -> Option<String> {
        let name = self.trace_table_avp.as_ref()?;
        match st.avps.get(name) {
            Some(Value::Str(s)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        }
    }

    /// A message we send, as a flag-triggered `out` event from listener
    /// `li` to `to`.
    pub(crate) fn trace_sent(
        &mut self,
        bytes: &[u8],
        f: &Facts,
        li: usize,
        to: SocketAddr,
        st: &MsgState,
        wall: WallTime,
    ) {
        let flag_set = self.flag_set(st);
        let proto = self.sock_transport(li);
        if proto != Transport::Udp {
            let trigger = Trigger::Flag { flag_set };
            if !self.wants_trace(trigger, st) {
                return;
            }
            let t = Box::new(StreamTrace {
                facts: f.clone(),
                trigger,
                users: self.traced_users(st),
                table: self.trace_table(st),
                time: wall,
            });
            // Replies are queued before they are traced, requests after.
            let queued =
                self.sends.iter_mut().rev().find(|s| {
                    s.listener == li && s.to == to && s.trace.is_none() && s.bytes == bytes
                });
            match queued {
                Some(s) => s.trace = Some(t),
                None => self.stream_trace = Some((li, to, bytes.len(), t)),
            }
            return;
        }
        let ev = Event {
            bytes,
            facts: f,
            dir: Direction::Out,
            from: self.local_endpoint(li),
            to: Endpoint::sock(self.sock_transport(li), to),
            time: wall,
        };
        self.trace(&ev, Trigger::Flag { flag_set }, st, None);
    }

    /// One traced wire event: rows (unless trace_to_database=0) and, when
    /// the event yields any, one mirrored copy (docs/decisions.md §1).
    pub fn trace(
        &mut self,
        ev: &Event<'_>,
        trigger: Trigger,
        st: &MsgState,
        mirror: Option<MirrorReq<'_>>,
    ) {
        let users = self.traced_users(st);
        let trigger = if st.trace_forced {
            Trigger::Forced
        } else {
            trigger
        };
        if !self.tracer.wants(trigger, users.len()) {
            return;
        }
        let table = self.trace_table(st);
        self.trace_with(ev, trigger, users, table, mirror);
    }

    fn trace_with(
        &mut self,
        ev: &Event<'_>,
        trigger: Trigger,
        users: Vec<String>,
        table: Option<String>,
        mirror: Option<MirrorReq<'_>>,
    ) {
        if !self.tracer.wants(trigger, users.len()) {
            return;
        }
        // Once per event: every row and the copy carry the same masked bytes.
        let masked = self.tracer.mask(ev.bytes);
        let masked_ev;
        let ev = match &masked {
            std::borrow::Cow::Borrowed(_) => ev,
            std::borrow::Cow::Owned(bytes) => {
                masked_ev = Event {
                    bytes,
                    ..ev.clone()
                };
                &masked_ev
            }
        };
        if self.tracer.to_database() {
            self.tracer
                .rows(ev, trigger, &users, table.as_deref(), &mut self.rows);
        } else {
            let mut scratch = Vec::new();
            self.tracer
                .rows(ev, trigger, &users, table.as_deref(), &mut scratch);
        }
        if self.mirror.copy(ev, mirror.unwrap_or_default()) == Copied::Dropped {
            self.stats.copies_dropped += 1;
        }
    }
}
