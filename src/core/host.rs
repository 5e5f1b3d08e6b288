//! The script's view of one message: `Ctx` implements `script::Host` for
//! the message being routed — pseudo-variables over the working copy, and
//! the stateless builtins (forward, sl_send_reply, record_route,
//! loose_route, sip_trace, header edits). Transaction builtins (`t_*`) are
//! handed to tm.rs.
//!
//! Two copies of the message live here: `orig`/`raw`, exactly as received
//! (what sip_trace() stores — "prior applying changes"), and `msg`, the
//! working copy the script edits and the proxy sends.

use super::facts;
use super::park::{Parked, Work};
use super::resolve::Lookup;
use super::state::State;
use crate::clock::WallTime;
use crate::script::{Dest, Host, HostCall, MsgPv, MsgState, Ret, RouteId, Value};
use crate::sip::{MaxForwards, NameAddr, SipMsg, Transport, Uri, stateless_branch};
use crate::trace::dup::DupTarget;
use crate::trace::mirror::{MirrorDest, MirrorReq};
use crate::trace::{Direction, Endpoint, Event, Trigger};
use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::Instant;

pub(crate) struct Ctx<'a> {
    pub s: &'a mut State,
    pub li: usize,
    pub src: SocketAddr,
    /// The stream connection's own local address the message came in on
    /// (None: the socket `li` itself, as for UDP).
    pub local: Option<SocketAddr>,
    pub raw: &'a [u8],
    pub orig: &'a SipMsg,
    pub msg: SipMsg,
    /// `$du`: the next hop overriding the R-URI (set by loose_route too).
    pub du: Option<String>,
    pub now: Instant,
    pub wall: WallTime,
    /// Routes armed by t_on_reply / t_on_failure for the transaction t_relay
    /// creates from this message.
    pub on_reply: Option<RouteId>,
    pub on_failure: Option<RouteId>,
    /// Status of the winning reply while failure_route runs ($T_reply_code).
    pub t_reply_code: Option<u16>,
    /// The transaction of this message, once t_newtran/t_relay made or
    /// found it.
    pub current_tx: Option<crate::tsx::TxId>,
    /// Set while failure_route runs for this transaction.
    pub in_failure_route: Option<crate::tsx::TxId>,
    /// t_relay()/t_reply() ran (failure_route: no automatic final reply).
    pub relayed: bool,
    /// The received message was traced before the script ran (a filter,
    /// a dialog traced whole): sip_trace() adds no second `in` row.
    pub in_traced: bool,
}

impl<'a> Ctx<'a> {
    pub fn new(
        s: &'a mut State,
        li: usize,
        src: SocketAddr,
        raw: &'a [u8],
        orig: &'a SipMsg,
        now: Instant,
        wall: WallTime,
    ) -> Ctx<'a> {
        Ctx {
            s,
            li,
            src,
            local: None,
            raw,
            orig,
            msg: orig.clone(),
            du: None,
            now,
            wall,
            on_reply: None,
            on_failure: None,
            t_reply_code: None,
            current_tx: None,
            in_failure_route: None,
            relayed: false,
            in_traced: false,
        }
    }

    pub fn proto(&self) -> crate::sip::Transport {
        self.s.sock_transport(self.li)
    }

    pub(crate) fn flag_set(&self, st: &MsgState) -> bool {
        self.s.flag_set(st)
    }

    /// The received message as an event (sip_trace(), replies in, sl ACKs).
    pub(crate) fn trace_received(
        &mut self,
        trigger: Trigger,
        st: &MsgState,
        mirror: Option<MirrorReq<'_>>,
    ) {
        let Some(f) = facts(self.orig) else {
            log::debug!("not traced: message without Call-ID, CSeq, From or To");
            return;
        };
        let toip = match (trigger, self.local) {
            // sip_trace() shows the receiving socket as is (docs/kamailio.md §4.3).
            (Trigger::Script, None) => self.s.sock_endpoint(self.li),
            (Trigger::Script, Some(a)) => Endpoint::sock(self.proto(), a),
            (Trigger::Flag { .. } | Trigger::Forced, None) => self.s.local_endpoint(self.li),
            (Trigger::Flag { .. } | Trigger::Forced, Some(a)) => {
                self.s.conn_endpoint(self.proto(), a)
            }
        };
        let ev = Event {
            bytes: self.raw,
            facts: &f,
            dir: Direction::In,
            from: Endpoint::sock(self.proto(), self.src),
            to: toip,
            time: self.wall,
        };
        self.s.trace(&ev, trigger, st, mirror);
    }

    /// A message we send, as an `out` event from listener `li` to `to`.
    pub(crate) fn trace_sent(
        &mut self,
        bytes: &[u8],
        f: &crate::trace::Facts,
        li: usize,
        to: SocketAddr,
        st: &MsgState,
    ) {
        self.s.trace_sent(bytes, f, li, to, st, self.wall);
    }

    /// Where a request goes: `$du`, else the R-URI (maddr-less): host
    /// and port as written, and the transport (`;transport=`, else TLS
    /// for `sips:`, else UDP; a script destination's own). No port on a
    /// name means RFC 3263 (SRV), on an IP literal 5060 (5061 for TLS)
    /// (resolve.rs).
    pub(crate) fn next_hop_target(
        &self,
        dest: Option<&Dest<'_>>,
    ) -> Option<(String, Option<u16>, Transport)> {
        let (host, port, proto) = match dest {
            Some(d) => (d.host.to_string(), d.port, d.proto.unwrap_or_default()),
            None => {
                let uri = match &self.du {
                    Some(du) => du.clone(),
                    None => self.msg.request_uri()?.to_string(),
                };
                let u = Uri::parse(&uri).ok()?;
                let proto = uri_transport(&u);
                (u.host_unbracketed().to_string(), u.port(), proto)
            }
        };
        let port = match port {
            None if proto == Transport::Tls && host.parse::<std::net::IpAddr>().is_ok() => {
                Some(crate::sip::DEFAULT_TLS_PORT)
            }
            p => p,
        };
        Some((host, port, proto))
    }

    /// Routing by the R-URI when its scheme is neither sip, sips nor tel
    /// cannot work: answer 416 (RFC 3261 §8.2.2.1) and tell the caller.
    pub(crate) fn refuse_unknown_scheme(&mut self, dest: Option<&Dest<'_>>, st: &MsgState) -> bool {
        if dest.is_some() || self.du.is_some() {
            return false;
        }
        let scheme_ok = self
            .msg
            .request_uri()
            .and_then(|u| Uri::parse(u).ok())
            .is_some_and(|u| !matches!(u.scheme(), crate::sip::Scheme::Other));
        if !scheme_ok {
            self.sl_reply(416, "Unsupported URI Scheme", st);
        }
        !scheme_ok
    }

    pub fn forward(&mut self, dest: Option<&Dest<'_>>, st: &MsgState) -> Ret {
        if !self.msg.is_request() {
            // forward() in onreply_route: Kamailio relays the reply; we do
            // that after the route anyway.
            return Ret::True;
        }
        if self.refuse_unknown_scheme(dest, st) {
            return Ret::False;
        }
        let Some((host, port, proto)) = self.next_hop_target(dest) else {
            log::warn!(
                "forward(): no usable destination for {}",
                self.msg.request_uri().unwrap_or("?")
            );
            return Ret::False;
        };
        match self.s.lookup(&host, port, self.now) {
            Lookup::Ready(addrs) => {
                let to = (proto, addrs.as_slice());
                match forward_to(self.s, self.li, &self.msg, st, to, self.now, self.wall) {
                    Ok(()) => Ret::True,
                    Err(Refusal::Loop) => {
                        self.sl_reply(482, "Loop Detected", st);
                        Ret::False
                    }
                    Err(Refusal::NoRoute) => {
                        log::warn!("forward(): no {proto} listening socket can reach {host}");
                        Ret::False
                    }
                }
            }
            // The script decides, as with Kamailio's forward().
            Lookup::Failed => {
                log::warn!("forward(): cannot resolve '{host}'");
                Ret::False
            }
            Lookup::Busy => {
                self.sl_reply(503, "Service Unavailable", st);
                Ret::False
            }
            Lookup::Pending(q) => {
                let work = Work::Stateless {
                    li: self.li,
                    msg: self.msg.clone(),
                    st: st.clone(),
                };
                match self.s.park(q, Parked::new(port, proto, work)) {
                    // Sent (or answered) when the resolver answers.
                    Ok(()) => Ret::True,
                    Err(_) => {
                        self.sl_reply(503, "Service Unavailable", st);
                        Ret::False
                    }
                }
            }
        }
    }

    /// After onreply_route: our Via off, on to the next Via's address.
    pub(crate) fn relay_reply_statelessly(
        &mut self,
        out_li: Option<usize>,
        traced: Option<&MsgState>,
    ) {
        let mut out = self.msg.clone();
        if !matches!(out.pop_top_via(), Ok(true)) {
            return;
        }
        let Some(Ok(next)) = out.top_via() else {
            log::debug!("reply with no Via left after ours: it was for us, dropped");
            return;
        };
        // RFC 3581 / RFC 3261 §18.2.2 without DNS: received (we added it
        // when sent-by was not the source IP) at rport; maddr ignored, as
        // Kamailio does.
        let Some(to) = next.response_addr() else {
            log::debug!("reply's next Via has no address to send to (no received): dropped");
            return;
        };
        // Back over the transport its request came in on when we know it
        // (Kamailio's tm does so), else the one the Via names (its
        // forward_reply).
        let proto = match out_li {
            Some(l) => self.s.sock_transport(l),
            None => via_transport(&next),
        };
        let Some(li) = self.s.pick_listener(to, proto, out_li.or(Some(self.li))) else {
            log::debug!("reply to {proto}:{to}: no {proto} socket of that family: dropped");
            return;
        };
        let bytes = out.as_bytes().to_vec();
        if let Some(st) = traced {
            if let Some(f) = facts(&out) {
                self.trace_sent(&bytes, &f, li, to, st);
            }
        }
        self.s.send(li, to, bytes);
    }

    fn sl_reply(&mut self, code: u16, reason: &str, st: &MsgState) -> Ret {
        Ret::from(sl_reply_traced(
            self.s, self.li, &self.msg, code, reason, st, self.wall,
        ))
    }

    fn record_route(&mut self) -> Ret {
        let Some(value) = rr_value(self.s, self.li, false) else {
            return Ret::False;
        };
        match self.msg.insert_header_top("Record-Route", &value) {
            Ok(()) => Ret::True,
            Err(_) => Ret::False,
        }
    }

    /// RFC 3261 §16.4 loose routing: our own Route entry off the top, the
    /// next one becomes `$du`. -1 when there is no Route header at all.
    fn loose_route(&mut self) -> Ret {
        let routes: Vec<String> = self
            .msg
            .route_values()
            .filter_map(|v| {
                NameAddr::parse(v)
                    .ok()
                    .and_then(|n| n.uri_str().map(str::to_string))
            })
            .collect();
        let Some(first) = routes.first() else {
            return Ret::False;
        };
        let is_ours = |r: &str| -> Option<bool> {
            let u = Uri::parse(r).ok()?;
            self.s
                .is_local(u.host_unbracketed(), u.port())
                .then(|| u.param("r2").is_some())
        };
        let next = match is_ours(first) {
            Some(r2) => {
                if self.msg.remove_first_route().is_err() {
                    return Ret::False;
                }
                // Double Record-Route (`r2=on`): both entries are ours.
                let second = routes.get(1);
                if r2 && second.is_some_and(|r| is_ours(r).is_some()) {
                    if self.msg.remove_first_route().is_err() {
                        return Ret::False;
                    }
                    routes.get(2)
                } else {
                    second
                }
            }
            None => Some(first),
        };
        if let Some(n) = next {
            self.du = Some(n.clone());
        }
        Ret::True
    }

    fn maxfwd(&mut self, value: u32, max_limit: u32) -> Ret {
        match self.msg.max_forwards() {
            MaxForwards::Absent => match self.msg.set_max_forwards(value.min(255) as u8) {
                Ok(()) => Ret::TrueCode(2),
                Err(_) => Ret::False,
            },
            MaxForwards::Value(0) => Ret::False,
            MaxForwards::Value(v) => match self.msg.set_max_forwards(maxfwd_next(v, max_limit)) {
                Ok(()) => Ret::True,
                Err(_) => Ret::False,
            },
            MaxForwards::Invalid => Ret::Err(-2),
        }
    }

    /// `sip_trace()`: the received message traced now; with a URI, also
    /// mirrored there; modes t/d trace the rest of the transaction too.
    fn sip_trace(
        &mut self,
        dest: Option<&crate::script::TraceDest<'_>>,
        correlation_id: Option<&str>,
        mode: Option<crate::script::TraceMode>,
        st: &mut MsgState,
    ) -> Ret {
        let target = match dest {
            None => None,
            Some(crate::script::TraceDest::Target(t)) => Some(Cow::Borrowed(*t)),
            Some(crate::script::TraceDest::Uri(uri)) => match DupTarget::parse(uri) {
                Ok(t) => Some(Cow::Owned(t)),
                Err(e) => {
                    log::warn!("sip_trace(): {e}");
                    return Ret::False;
                }
            },
        };
        // A name not resolved yet: the row is written now, this copy is
        // dropped (counted), the lookup fills the cache for the next ones.
        let mut unresolved = false;
        let mirror = match target {
            Some(t) => match self.s.lookup(&t.host, Some(t.port), self.now) {
                Lookup::Ready(addrs) => addrs.first().map(|&addr| MirrorDest {
                    addr,
                    transport: t.transport,
                }),
                Lookup::Failed => return Ret::False,
                Lookup::Pending(_) | Lookup::Busy => {
                    unresolved = true;
                    None
                }
            },
            None => None,
        };
        if matches!(
            mode,
            Some(crate::script::TraceMode::Transaction | crate::script::TraceMode::Dialog)
        ) {
            // Kamailio 5's transaction mode: the rest of the
            // transaction is traced too — our trace flag does that.
            self.s.set_flag(st);
        }
        if mode == Some(crate::script::TraceMode::Dialog) {
            // Dialog mode: the transaction as the flag would (even with
            // no trace_flag configured), and the later requests of the
            // dialog an initial INVITE creates (docs/decisions.md §16).
            st.trace_scoped = true;
            if self.orig.method() == Some("INVITE") && self.orig.to_tag().is_none() {
                let callid = String::from_utf8_lossy(self.orig.call_id().unwrap_or_default());
                let tag = String::from_utf8_lossy(self.orig.from_tag().unwrap_or_default());
                self.s
                    .track_dialog(&callid, &tag, super::dialogs::Scope::Script, self.now);
            }
        }
        if self.in_traced {
            return Ret::True;
        }
        let req = MirrorReq {
            dest: mirror,
            correlation_id,
            unresolved,
        };
        self.trace_received(Trigger::Script, st, Some(req));
        Ret::True
    }

    /// Old-style `== myself`: a SIP URI, an IP address or a host name of ours.
    fn is_myself(&self, t: &str) -> bool {
        match Uri::parse(t) {
            Ok(u) if u.is_sip() => self.s.is_local(u.host_unbracketed(), u.port()),
            _ => match t.parse::<std::net::IpAddr>() {
                Ok(ip) => self.s.listens_on(ip),
                Err(_) => self.s.is_local(t, None),
            },
        }
    }

    fn uri_part(&self, uri: Option<&str>, part: UriPart) -> Value {
        let Some(u) = uri.and_then(|s| Uri::parse(s).ok()) else {
            return Value::Null;
        };
        match part {
            UriPart::User => u
                .user()
                .map(|x| Value::Str(x.to_string()))
                .unwrap_or(Value::Null),
            UriPart::Host => Value::Str(u.host().to_string()),
            UriPart::Port => Value::Int(i64::from(u.port().unwrap_or(crate::sip::DEFAULT_PORT))),
        }
    }

    fn name_addr_uri(&self, which: HeaderSide) -> Option<String> {
        let na = match which {
            HeaderSide::From => self.msg.from(),
            HeaderSide::To => self.msg.to(),
        }?;
        na.uri_str().map(str::to_string)
    }

    fn rewrite_ruri(&mut self, part: UriPart, v: &Value) -> bool {
        let Some(cur) = self.msg.request_uri().and_then(|s| Uri::parse(s).ok()) else {
            return false;
        };
        let text = v.to_text();
        let user = match part {
            UriPart::User => (!text.is_empty()).then_some(text.as_str()),
            _ => cur.user(),
        };
        let host = match part {
            UriPart::Host => text.as_str(),
            _ => cur.host(),
        };
        let port = match part {
            UriPart::Port => text.parse::<u16>().ok(),
            _ => cur.port(),
        };
        let mut s = format!("{}:", cur.scheme_str());
        if let Some(u) = user {
            s.push_str(u);
            if let Some(p) = cur.password() {
                s.push(':');
                s.push_str(p);
            }
            s.push('@');
        }
        s.push_str(host);
        if let Some(p) = port {
            s.push_str(&format!(":{p}"));
        }
        s.push_str(cur.params_str());
        if let Some(h) = cur.headers() {
            s.push('?');
            s.push_str(h);
        }
        self.msg.set_request_uri(&s).is_ok()
    }
}

#[derive(Clone, Copy)]
enum UriPart {
    User,
    Host,
    Port,
}

#[derive(Clone, Copy)]
enum HeaderSide {
    From,
    To,
}

fn text(v: Option<impl AsRef<[u8]>>) -> Value {
    match v {
        Some(b) => Value::Str(String::from_utf8_lossy(b.as_ref()).into_owned()),
        None => Value::Null,
    }
}

fn fnv1a(parts: &[&[u8]]) -> u64 {
    // FNV-1a: stable across runs (unlike std's RandomState), enough to make
    // our To-tags differ per dialog.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.iter().chain(b"\0") {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// Builds and queues a stateless reply to `req` (whose top Via already has
/// received/rport), sent to that Via's response address. Returns what was
/// sent for the caller to trace.
pub(crate) fn send_stateless_reply(
    s: &mut State,
    li: usize,
    req: &SipMsg,
    code: u16,
    reason: &str,
    extra: &[String],
    with_tag: bool,
) -> Option<(Vec<u8>, usize, SocketAddr)> {
    let via = req.top_via()?.ok()?;
    let to = via.response_addr()?;
    // Over the transport the request came in on, whatever its Via says
    // (Kamailio's sl: reply_to_via=0).
    let out_li = s.pick_listener(to, s.sock_transport(li), Some(li))?;
    let tag = with_tag.then(|| {
        let h = fnv1a(&[
            req.call_id().unwrap_or_default(),
            req.from_tag().unwrap_or_default(),
            via.branch().unwrap_or_default().as_bytes(),
        ]);
        s.tagged("", h)
    });
    let bytes = s.reply_bytes(req, code, reason, tag.as_deref(), extra);
    s.send(out_li, to, bytes.clone());
    Some((bytes, out_li, to))
}

/// A stateless reply to `req` (sl), traced like sl_send_reply's: the
/// row's tags are the sent reply's own (docs/decisions.md §2), our To-tag
/// included. False when none can be sent (not a request, ACK, no Via
/// address).
pub(crate) fn sl_reply_traced(
    s: &mut State,
    li: usize,
    req: &SipMsg,
    code: u16,
    reason: &str,
    st: &MsgState,
    wall: WallTime,
) -> bool {
    if !req.is_request() || req.method() == Some("ACK") {
        return false;
    }
    let Some((bytes, out_li, to)) = send_stateless_reply(s, li, req, code, reason, &[], true)
    else {
        return false;
    };
    if let Some(f) = SipMsg::parse(&bytes).ok().as_ref().and_then(facts) {
        s.trace_sent(&bytes, &f, out_li, to, st, wall);
    }
    true
}

/// Why a request could not be sent to a resolved next hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The next hop is one of our own sockets and no Route is left to
    /// consume: 482 (issue 12 item 3).
    Loop,
    /// No listening socket of any of the addresses' families.
    NoRoute,
}

/// The first of `addrs` some socket of `proto` can reach, and that socket;
/// a request too large for UDP (`udp_mtu`) moves to `udp_mtu_try_proto`
/// when a socket of it can reach the same address.
pub(crate) fn pick_target(
    s: &State,
    proto: Transport,
    addrs: &[SocketAddr],
    li: usize,
    msg: &SipMsg,
) -> Option<(SocketAddr, usize)> {
    let (to, out_li) = addrs
        .iter()
        .find_map(|&a| s.pick_listener(a, proto, Some(li)).map(|l| (a, l)))?;
    if let Some(p) = s.over_mtu(out_li, msg) {
        if let Some(bigger) = s.pick_listener(to, p, Some(li)) {
            return Some((to, bigger));
        }
    }
    Some((to, out_li))
}

/// The transport a Via's sent-protocol names (UDP when unknown).
pub(crate) fn via_transport(v: &crate::sip::Via<'_>) -> Transport {
    Transport::parse(v.transport).unwrap_or_default()
}

/// The transport a URI asks for: `;transport=`, else TLS for `sips:`,
/// else UDP (RFC 3263 §4.1 without NAPTR).
pub(crate) fn uri_transport(u: &Uri) -> Transport {
    match u.param("transport").flatten().map(Transport::parse) {
        Some(Ok(t)) => t,
        _ if matches!(u.scheme(), crate::sip::Scheme::Sips) => Transport::Tls,
        _ => Transport::Udp,
    }
}

/// Our Record-Route value for socket `li`: its transport named unless
/// UDP; `r2` when it is one of a double Record-Route (rr's
/// enable_double_rr: the transport or family changes between the legs).
pub(crate) fn rr_value(s: &State, li: usize, r2: bool) -> Option<String> {
    let sock = s.socket(li)?;
    let transport = match sock.proto {
        Transport::Udp => String::new(),
        t => format!(";transport={t}"),
    };
    let r2 = if r2 { ";r2=on" } else { "" };
    Some(format!(
        "<sip:{}:{}{transport}{r2};lr>",
        sock.sip_host, sock.sip_port
    ))
}

/// When the request carries our Record-Route for `li` and leaves from
/// `out_li` of another transport or family, that entry becomes two: the
/// outgoing socket's on top, the incoming one's below (each `r2=on`), so
/// each side routes back to the socket it can reach.
pub(crate) fn double_rr(s: &State, li: usize, out_li: usize, msg: &mut SipMsg) {
    let (Some(a), Some(b)) = (s.socket(li), s.socket(out_li)) else {
        return;
    };
    if !s.double_rr() {
        return;
    }
    if a.proto == b.proto && a.addr.is_ipv4() == b.addr.is_ipv4() {
        return;
    }
    let (Some(single), Some(inner), Some(outer)) = (
        rr_value(s, li, false),
        rr_value(s, li, true),
        rr_value(s, out_li, true),
    ) else {
        return;
    };
    let _ = msg.replace_first_header("Record-Route", &single, &[&outer, &inner]);
}

/// A request we would send to ourselves with nothing left to route it
/// further is a loop.
pub(crate) fn is_loop(s: &State, to: SocketAddr, msg: &SipMsg) -> bool {
    s.is_own_socket(to) && msg.route_values().next().is_none()
}

/// The stateless forward of `msg` (as the script left it; received on
/// `li`) to the first usable of `addrs`: our Via (RFC 3261 §16.11 branch)
/// pushed, traced and remembered when the script state asks for it, sent.
pub(crate) fn forward_to(
    s: &mut State,
    li: usize,
    msg: &SipMsg,
    st: &MsgState,
    (proto, addrs): (Transport, &[SocketAddr]),
    now: Instant,
    wall: WallTime,
) -> Result<(), Refusal> {
    let (to, out_li) = pick_target(s, proto, addrs, li, msg).ok_or(Refusal::NoRoute)?;
    if is_loop(s, to, msg) {
        s.count_loop();
        log::info!("forward(): next hop {to} is this proxy and no Route is left: 482");
        return Err(Refusal::Loop);
    }
    let sock = s.socket(out_li).ok_or(Refusal::NoRoute)?;
    let branch = stateless_branch(msg, sock.addr.to_string().as_bytes());
    let via = s.via(out_li, &branch);
    let mut out = msg.clone();
    double_rr(s, li, out_li, &mut out);
    if via.is_none_or(|v| out.push_via(&v).is_err()) {
        log::warn!("forward(): cannot add our Via");
        return Err(Refusal::NoRoute);
    }
    let bytes = out.as_bytes().to_vec();
    let users = s.traced_users(st);
    // A live ip filter naming the next hop: traced from here on.
    let forced;
    let st = if !st.trace_forced && s.filter_forces_dest(to.ip(), wall) {
        forced = MsgState {
            trace_forced: true,
            ..st.clone()
        };
        &forced
    } else {
        st
    };
    if s.flag_set(st) || !users.is_empty() {
        if let Some(f) = facts(&out) {
            s.trace_sent(&bytes, &f, out_li, to, st, wall);
        }
        s.remember(branch, st, li, now);
    }
    s.send(out_li, to, bytes);
    Ok(())
}

impl Host for Ctx<'_> {
    fn pv_get(&mut self, pv: &MsgPv) -> Value {
        let m = &self.msg;
        match pv {
            MsgPv::Method => text(m.method().or_else(|| m.cseq_method())),
            MsgPv::RUri => text(m.request_uri()),
            MsgPv::RUser => self.uri_part(m.request_uri(), UriPart::User),
            MsgPv::RDomain => self.uri_part(m.request_uri(), UriPart::Host),
            MsgPv::RPort => self.uri_part(m.request_uri(), UriPart::Port),
            MsgPv::OrigRUri => text(self.orig.request_uri()),
            MsgPv::DstUri => self.du.clone().map(Value::Str).unwrap_or(Value::Null),
            MsgPv::FromUri => text(self.name_addr_uri(HeaderSide::From)),
            MsgPv::FromUser => self.uri_part(
                self.name_addr_uri(HeaderSide::From).as_deref(),
                UriPart::User,
            ),
            MsgPv::FromDomain => self.uri_part(
                self.name_addr_uri(HeaderSide::From).as_deref(),
                UriPart::Host,
            ),
            MsgPv::FromName => text(m.from().and_then(|n| n.display)),
            MsgPv::FromTag => text(m.from_tag()),
            MsgPv::ToUri => text(self.name_addr_uri(HeaderSide::To)),
            MsgPv::ToUser => {
                self.uri_part(self.name_addr_uri(HeaderSide::To).as_deref(), UriPart::User)
            }
            MsgPv::ToDomain => {
                self.uri_part(self.name_addr_uri(HeaderSide::To).as_deref(), UriPart::Host)
            }
            MsgPv::ToName => text(m.to().and_then(|n| n.display)),
            MsgPv::ToTag => text(m.to_tag()),
            MsgPv::CallId => text(m.call_id()),
            MsgPv::CSeq => m
                .cseq()
                .map(|(n, _)| Value::Int(i64::from(n)))
                .unwrap_or(Value::Null),
            MsgPv::Contact => text(m.header("Contact")),
            MsgPv::ContentType => text(m.header("Content-Type")),
            MsgPv::ContentLength => Value::Int(m.body().len() as i64),
            MsgPv::SrcIp => Value::Str(self.src.ip().to_string()),
            MsgPv::SrcPort => Value::Int(i64::from(self.src.port())),
            MsgPv::RcvIp => self
                .local
                .or_else(|| self.s.socket(self.li).map(|l| l.addr))
                .map(|a| Value::Str(a.ip().to_string()))
                .unwrap_or(Value::Null),
            MsgPv::RcvPort => self
                .local
                .or_else(|| self.s.socket(self.li).map(|l| l.addr))
                .map(|a| Value::Int(i64::from(a.port())))
                .unwrap_or(Value::Null),
            MsgPv::Proto => Value::Str(self.proto().as_str().to_string()),
            MsgPv::Status => m
                .status()
                .map(|c| Value::Int(i64::from(c)))
                .unwrap_or(Value::Null),
            MsgPv::Reason => text(m.reason()),
            MsgPv::UserAgent => text(m.user_agent()),
            MsgPv::Header(name) => text(m.header(name)),
            MsgPv::MsgBuf => text(Some(m.as_bytes())),
            MsgPv::MsgLen => Value::Int(m.as_bytes().len() as i64),
            MsgPv::Body => text(Some(m.body())),
            MsgPv::TReplyCode => match self.t_reply_code.or_else(|| m.status()) {
                Some(c) => Value::Int(i64::from(c)),
                None => Value::Null,
            },
        }
    }

    fn pv_set(&mut self, pv: &MsgPv, v: &Value) -> bool {
        match pv {
            MsgPv::DstUri => {
                self.du = match v {
                    Value::Null => None,
                    v => Some(v.to_text()),
                };
                true
            }
            MsgPv::RUri => match v {
                Value::Null => false,
                v => self.msg.set_request_uri(&v.to_text()).is_ok(),
            },
            MsgPv::RUser => self.rewrite_ruri(UriPart::User, v),
            MsgPv::RDomain => self.rewrite_ruri(UriPart::Host, v),
            MsgPv::RPort => self.rewrite_ruri(UriPart::Port, v),
            _ => false,
        }
    }

    fn call(&mut self, call: HostCall<'_>, st: &mut MsgState) -> Ret {
        match call {
            HostCall::SipTrace {
                dest,
                correlation_id,
                mode,
            } => self.sip_trace(dest.as_ref(), correlation_id.as_deref(), mode, st),
            HostCall::IsMethod(list) => {
                let m = self
                    .msg
                    .method()
                    .or_else(|| self.msg.cseq_method())
                    .unwrap_or("");
                Ret::from(list.iter().any(|x| x.eq_ignore_ascii_case(m)))
            }
            HostCall::HasTotag => Ret::from(self.msg.has_totag()),
            HostCall::MaxFwd { value, max_limit } => self.maxfwd(value, max_limit),
            HostCall::RecordRoute => self.record_route(),
            HostCall::LooseRoute => self.loose_route(),
            HostCall::Forward(dest) => self.forward(dest.as_ref(), st),
            HostCall::SlSendReply { code, reason } => self.sl_reply(code, &reason, st),
            HostCall::SlReplyError => self.sl_reply(500, "Server Internal Error", st),
            HostCall::IsPresentHf(name) => Ret::from(self.msg.header(name).is_some()),
            HostCall::AppendHf(line) => {
                let line = line.trim_end_matches(['\r', '\n']);
                Ret::from(self.msg.append_header(line).is_ok())
            }
            HostCall::RemoveHf(name) => {
                Ret::from(matches!(self.msg.remove_header(name), Ok(n) if n > 0))
            }
            HostCall::IsMyself(target) => Ret::from(self.is_myself(target.trim())),
            tm_call => super::tm::call(self, tm_call, st),
        }
    }

    fn log(&mut self, level: log::Level, text: &str) {
        log::log!(level, "{}", text.trim_end_matches('\n'));
    }
}

/// The Max-Forwards a request found with `found` (≥ 1) leaves with. maxfwd
/// replaces a value above its `max_limit` modparam by `max_limit + 1` before
/// the decrement, so such a request leaves with exactly `max_limit`
/// (docs/decisions.md §7); the default limit (256) never lowers anything.
fn maxfwd_next(found: u8, max_limit: u32) -> u8 {
    let next = u32::from(found).saturating_sub(1).min(max_limit);
    u8::try_from(next).unwrap_or(u8::MAX)
}

#[cfg(test)]
mod tests {
    use super::maxfwd_next;

    #[test]
    fn max_forwards_is_lowered_to_max_limit_then_decremented() {
        // (found, max_limit, leaves with)
        for (found, limit, want) in [
            (70, 256, 69),
            (255, 256, 254),
            (1, 256, 0),
            (70, 16, 16),
            (17, 16, 16),
            (16, 16, 15),
            (2, 16, 1),
            (255, 1, 1),
            (1, 1, 0),
        ] {
            assert_eq!(
                maxfwd_next(found, limit),
                want,
                "{found} with max_limit {limit}"
            );
        }
    }
}
