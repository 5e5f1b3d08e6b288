//! tm: the script's `t_*` functions on top of the pure transaction table
//! (tsx/), and what the core does with the table's outputs — datagrams to
//! send, trace events (docs/decisions.md §1: request sent per branch, every reply
//! received, every reply sent incl. `100 Trying`, tm's CANCEL and
//! hop-by-hop ACK; retransmissions the table makes itself are not traced),
//! failure_route runs and locally generated final replies.
//!
//! The transaction carries the script state of the request (flags and
//! AVPs), so its replies are traced with the same flag and traced_user
//! values, and failure_route sees them.

use super::host::{Ctx, Refusal, is_loop, pick_target};
use super::park::{Parked, Work};
use super::resolve::Lookup;
use super::state::State;
use super::{Core, facts};
use crate::clock::WallTime;
use crate::limits::Bound;
use crate::script::{HostCall, MsgState, Outcome, Ret, RouteId};
use crate::sip::{SipMsg, build_ack_for_non2xx, build_cancel};
use crate::trace::Trigger;
use crate::tsx::{
    ClientKey, Event, LegacyKey, Method, Payload, ReplyMatch, RequestKey, RequestMatch, ServerKey,
    Table, Transmit, TsxError, TxId, ValidTsxConfig,
};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// Where a transaction sends: out of listener `li`, to `to`; `reliable`
/// when that socket is a stream (no retransmissions, no absorbing waits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hop {
    pub li: usize,
    pub to: SocketAddr,
    pub reliable: bool,
}

impl crate::tsx::Destination for Hop {
    fn reliable(&self) -> bool {
        self.reliable
    }
}

/// The request a transaction was made from, kept until its final reply
/// is sent: failure_route works on it and local replies are built from it.
/// Dropped then, because finished transactions linger for `wt_timer` and
/// would otherwise hold more copies of each request.
///
/// Kept as bytes and parsed again on those two paths (a failure or a local
/// final reply): a parsed copy (buffer plus header index) beside the raw
/// bytes cost ~1.5 KB more per live INVITE, held for the whole ringing
/// time of every call only for them.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    /// As received.
    pub raw: Arc<[u8]>,
    /// As the script left it when t_relay() ran (received/rport set), when
    /// that differs from `raw`.
    edited: Option<Arc<[u8]>>,
}

impl Origin {
    fn new(raw: &[u8], msg: &SipMsg) -> Origin {
        let raw: Arc<[u8]> = Arc::from(raw);
        let edited = (msg.as_bytes() != &raw[..]).then(|| Arc::from(msg.as_bytes()));
        Origin { raw, edited }
    }

    /// The request as the script left it (parsed again: both byte strings
    /// were parsed once, so this fails only if memory does).
    pub fn request(&self) -> Option<SipMsg> {
        SipMsg::parse(self.edited.as_deref().unwrap_or(&self.raw)).ok()
    }
}

/// What the core keeps with each transaction.
#[derive(Debug, Clone)]
pub(crate) struct TxData {
    pub st: MsgState,
    pub origin: Option<Origin>,
    pub li: usize,
    pub src: SocketAddr,
    pub on_reply: Option<RouteId>,
    pub on_failure: Option<RouteId>,
}

pub(crate) struct Tm {
    table: Table<TxData, Hop>,
    next_branch: u64,
    /// Events that need the program (failure_route): handled by the core
    /// once the script that caused them has returned.
    pending: Vec<Event<Hop>>,
    pub created: u64,
}

impl Tm {
    /// config.rs validated the tm modparams at load (with their positions),
    /// so there is nothing left here to refuse or default.
    pub fn new(cfg: ValidTsxConfig) -> Tm {
        Tm {
            table: Table::with_config(cfg),
            next_branch: 0,
            pending: Vec::new(),
            created: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.table.next_deadline()
    }

    pub(crate) fn final_reply(&self, tx: TxId) -> Option<u16> {
        self.table.final_reply(tx)
    }
}

/// The server-transaction key of a received request (RFC 3261 §17.2.3,
/// with the RFC 2543 fallback).
pub(crate) fn request_key(m: &SipMsg) -> Option<RequestKey> {
    let via = m.top_via()?.ok()?;
    let method = Method::from_token(m.method()?);
    match via.branch() {
        Some(b)
            if RequestKey::is_rfc3261_branch(Some(b))
                && b.len() > crate::tsx::MAGIC_COOKIE.len() =>
        {
            let sent_by = match via.port {
                Some(p) => format!("{}:{p}", via.host),
                None => via.host.to_string(),
            };
            Some(RequestKey::Rfc3261(ServerKey {
                branch: b.to_string(),
                sent_by,
                method,
            }))
        }
        _ => {
            let lossy = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
            Some(RequestKey::Rfc2543(LegacyKey {
                request_uri: m.request_uri()?.to_string(),
                to_tag: lossy(m.to_tag()),
                from_tag: lossy(m.from_tag()),
                call_id: m.call_id_str()?.into_owned(),
                cseq_num: m.cseq()?.0,
                top_via: String::from_utf8_lossy(m.top_via_value()?).into_owned(),
                method,
            }))
        }
    }
}

/// Builtins of the tm module, called from a route.
pub(crate) fn call(ctx: &mut Ctx<'_>, call: HostCall<'_>, st: &mut MsgState) -> Ret {
    match call {
        HostCall::TCheckTrans => check_trans(ctx),
        HostCall::TNewTran => match ensure_tx(ctx, st) {
            Ok(_) => Ret::True,
            Err(rc) => rc,
        },
        HostCall::TRelay(dest) => relay(ctx, dest.as_ref(), st),
        HostCall::TOnReply(id) => {
            ctx.on_reply = Some(id);
            if let Some(d) = ctx
                .current_tx
                .and_then(|tx| ctx.s.tm_mut().table.user_mut(tx))
            {
                d.on_reply = Some(id);
            }
            Ret::True
        }
        HostCall::TOnFailure(id) => {
            ctx.on_failure = Some(id);
            if let Some(d) = ctx
                .current_tx
                .and_then(|tx| ctx.s.tm_mut().table.user_mut(tx))
            {
                d.on_failure = Some(id);
            }
            Ret::True
        }
        HostCall::TOnBranch(_) => {
            log::debug!("t_on_branch(): branch_route is accepted but not run by siptraced");
            Ret::True
        }
        HostCall::TReply { code, reason } => t_reply(ctx, code, &reason, st),
        HostCall::TRelease => Ret::True,
        HostCall::TIsCanceled => match ctx.current_tx {
            Some(tx) if ctx.s.tm().table.is_cancelled(tx) => Ret::True,
            _ => Ret::False,
        },
        other => {
            log::error!("{other:?} is not a tm function");
            Ret::False
        }
    }
}

fn check_trans(ctx: &mut Ctx<'_>) -> Ret {
    let Some(key) = request_key(ctx.orig) else {
        return Ret::False;
    };
    if *key.method() == Method::Cancel {
        return if ctx.s.tm().table.find_invite(&key).is_some() {
            Ret::True
        } else {
            Ret::False
        };
    }
    match ctx.s.tm_mut().table.handle_request(&key, ctx.now) {
        RequestMatch::NoMatch => Ret::False,
        RequestMatch::Retransmission { tx } => {
            ctx.current_tx = Some(tx);
            drain(ctx.s, ctx.wall);
            Ret::Exit
        }
        RequestMatch::AckAbsorbed { tx, first } => {
            ack_absorbed(ctx, tx, first);
            Ret::Exit
        }
    }
}

/// ACK for a negative final reply (Kamailio's ACK_NEG_IN): traced `in` with
/// the transaction's flag and users.
fn ack_absorbed(ctx: &mut Ctx<'_>, tx: TxId, first: bool) {
    if let Some(d) = ctx.s.tm().table.user(tx) {
        let st = d.st.clone();
        let flag_set = ctx.flag_set(&st);
        // Traced already as it arrived when a filter matched it.
        if first && !ctx.in_traced {
            ctx.trace_received(Trigger::Flag { flag_set }, &st, None);
        }
    }
    drain(ctx.s, ctx.wall);
}

/// The transaction of this request, created if it has none. `Err(ret)` is
/// the script's answer when there is none to have (retransmission or ACK
/// absorbed: `Exit`; error: `False`).
fn ensure_tx(ctx: &mut Ctx<'_>, st: &MsgState) -> Result<TxId, Ret> {
    if let Some(tx) = ctx.current_tx {
        if ctx.s.tm().table.user(tx).is_some() {
            return Ok(tx);
        }
    }
    let key = request_key(ctx.orig).ok_or(Ret::False)?;
    match ctx.s.tm_mut().table.handle_request(&key, ctx.now) {
        RequestMatch::NoMatch => {}
        RequestMatch::Retransmission { tx } => {
            ctx.current_tx = Some(tx);
            drain(ctx.s, ctx.wall);
            return Err(Ret::Exit);
        }
        RequestMatch::AckAbsorbed { tx, first } => {
            ack_absorbed(ctx, tx, first);
            return Err(Ret::Exit);
        }
    }
    let via = ctx.msg.top_via().and_then(Result::ok).ok_or(Ret::False)?;
    // Replies need no DNS: received/rport of the top Via (RFC 3581).
    let to = via.response_addr().ok_or(Ret::False)?;
    // Replies go back over the transport the request came in on.
    let proto = ctx.proto();
    let li = ctx
        .s
        .pick_listener(to, proto, Some(ctx.li))
        .ok_or(Ret::False)?;
    let trying = (ctx.msg.method() == Some("INVITE"))
        .then(|| Payload::from(ctx.s.reply_bytes(&ctx.msg, 100, "Trying", None, &[])));
    // The copies of the request kept until the final reply count against
    // tm max_tsx_bytes with the table's own (docs/decisions.md §7).
    let held = ctx.raw.len() + ctx.msg.as_bytes().len() + st.avps.heap_bytes();
    let data = TxData {
        st: st.clone(),
        origin: Some(Origin::new(ctx.raw, &ctx.msg)),
        li: ctx.li,
        src: ctx.src,
        on_reply: ctx.on_reply,
        on_failure: ctx.on_failure,
    };
    match ctx.s.tm_mut().table.create_holding(
        key,
        Hop {
            li,
            to,
            reliable: proto != crate::sip::Transport::Udp,
        },
        data,
        held,
        trying,
        ctx.now,
    ) {
        Ok(tx) => {
            ctx.s.tm_mut().created += 1;
            ctx.current_tx = Some(tx);
            drain(ctx.s, ctx.wall);
            Ok(tx)
        }
        Err(e @ (TsxError::TableFull { .. } | TsxError::OverBudget { .. })) => {
            log::debug!("cannot create transaction: {e}");
            ctx.s.limits_mut().hit(bound_of(&e));
            local_stateless(ctx, 503, "Service Unavailable", &retry_after(), st);
            Err(Ret::Exit)
        }
        Err(e) => {
            log::warn!("cannot create transaction: {e}");
            Err(Ret::False)
        }
    }
}

/// How long a client refused for lack of room is asked to wait: the
/// longest a completed transaction stays (tm `wt_timer` default), after
/// which room has been made (docs/decisions.md §7).
const RETRY_AFTER_SECS: u64 = crate::tsx::DEFAULT_WT_TIMER.as_secs();

fn retry_after() -> [String; 1] {
    [format!("Retry-After: {RETRY_AFTER_SECS}")]
}

fn bound_of(e: &TsxError) -> Bound {
    match e {
        TsxError::TableFull { .. } => Bound::Transactions,
        _ => Bound::TransactionBytes,
    }
}

fn relay(ctx: &mut Ctx<'_>, dest: Option<&crate::script::Dest<'_>>, st: &mut MsgState) -> Ret {
    if !ctx.msg.is_request() {
        return Ret::False;
    }
    match ctx.msg.method() {
        // A 2xx ACK has no transaction: relayed statelessly, as Kamailio.
        Some("ACK") => {
            if let Some(key) = request_key(ctx.orig) {
                match ctx.s.tm_mut().table.handle_request(&key, ctx.now) {
                    RequestMatch::AckAbsorbed { tx, first } => {
                        ack_absorbed(ctx, tx, first);
                        return Ret::Exit;
                    }
                    RequestMatch::Retransmission { .. } | RequestMatch::NoMatch => {}
                }
            }
            return ctx.forward(dest, st);
        }
        Some("CANCEL") if ctx.in_failure_route.is_none() => return relay_cancel(ctx, st),
        _ => {}
    }
    if ctx.refuse_unknown_scheme(dest, st) {
        return Ret::False;
    }
    let tx = match ctx.in_failure_route {
        Some(tx) => tx,
        None => match ensure_tx(ctx, st) {
            Ok(tx) => tx,
            Err(rc) => return rc,
        },
    };
    // The script state at t_relay time is what the transaction traces with.
    if let Some(d) = ctx.s.tm_mut().table.user_mut(tx) {
        d.st = st.clone();
        d.on_reply = ctx.on_reply.or(d.on_reply);
        d.on_failure = ctx.on_failure;
    }
    let Some((host, port, proto)) = ctx.next_hop_target(dest) else {
        log::warn!(
            "t_relay(): no usable destination for {}",
            ctx.msg.request_uri().unwrap_or("?")
        );
        return Ret::False;
    };
    // From here on tm answers a request it cannot relay itself, as
    // Kamailio's t_relay does (kill_transaction): 478, 482 or 503.
    match ctx.s.lookup(&host, port, ctx.now) {
        Lookup::Ready(addrs) => {
            let to = (proto, addrs.as_slice());
            match relay_branch(ctx.s, tx, ctx.li, &ctx.msg, to, ctx.now, ctx.wall) {
                Ok(()) => {
                    ctx.relayed = true;
                    Ret::True
                }
                Err(BranchError::Route(Refusal::Loop)) => {
                    ctx.relayed = true;
                    refuse(ctx.s, tx, 482, "Loop Detected", ctx.now, ctx.wall);
                    Ret::False
                }
                Err(BranchError::Route(Refusal::NoRoute)) => {
                    log::warn!("t_relay(): no {proto} listening socket can reach {host}");
                    Ret::False
                }
                // In failure_route the transaction's best reply goes
                // upstream instead.
                Err(BranchError::OverBudget) if ctx.in_failure_route.is_some() => Ret::False,
                Err(BranchError::OverBudget) => {
                    ctx.relayed = true;
                    refuse_over_budget(ctx.s, tx, ctx.now, ctx.wall);
                    Ret::Exit
                }
                Err(BranchError::Refused) => Ret::False,
            }
        }
        Lookup::Failed => {
            log::warn!("t_relay(): cannot resolve '{host}'");
            ctx.relayed = true;
            refuse(
                ctx.s,
                tx,
                UNRESOLVABLE_CODE,
                UNRESOLVABLE,
                ctx.now,
                ctx.wall,
            );
            Ret::False
        }
        Lookup::Busy => {
            ctx.relayed = true;
            refuse(ctx.s, tx, 503, "Service Unavailable", ctx.now, ctx.wall);
            Ret::False
        }
        Lookup::Pending(q) => {
            ctx.relayed = true;
            let work = Work::Branch {
                tx,
                li: ctx.li,
                msg: ctx.msg.clone(),
            };
            match ctx.s.park(q, Parked::new(port, proto, work)) {
                // The branch is added when the resolver answers.
                Ok(()) => Ret::True,
                Err(_) => {
                    refuse(ctx.s, tx, 503, "Service Unavailable", ctx.now, ctx.wall);
                    Ret::False
                }
            }
        }
    }
}

/// What a request whose next hop does not resolve (in time) is answered:
/// 478 (RFC 3261 §21.4.19), as Kamailio's tm does (E_BAD_ADDRESS).
pub(crate) const UNRESOLVABLE_CODE: u16 = 478;
pub(crate) const UNRESOLVABLE: &str = "Unresolvable Destination";

/// A local final reply on `tx` (traced as tm's replies are), unless it
/// already has one.
pub(crate) fn refuse(
    s: &mut State,
    tx: TxId,
    code: u16,
    reason: &str,
    now: Instant,
    wall: WallTime,
) {
    if s.tm().table.final_reply(tx).is_none() {
        send_local_final(s, tx, code, reason, &[], now);
    }
    drain(s, wall);
}

/// A new client branch of `tx` carrying `msg` (as the script left it),
/// to the first usable of `addrs`. `Err(None)`: the table refused it
/// (logged).
pub(crate) fn relay_branch(
    s: &mut State,
    tx: TxId,
    li: usize,
    msg: &SipMsg,
    (proto, addrs): (crate::sip::Transport, &[SocketAddr]),
    now: Instant,
    wall: WallTime,
) -> Result<(), BranchError> {
    let (to, out_li) =
        pick_target(s, proto, addrs, li, msg).ok_or(BranchError::Route(Refusal::NoRoute))?;
    if is_loop(s, to, msg) {
        s.count_loop();
        log::info!("t_relay(): next hop {to} is this proxy and no Route is left: 482");
        return Err(BranchError::Route(Refusal::Loop));
    }
    s.tm_mut().next_branch += 1;
    let branch = s.tagged("z9hG4bK", s.tm().next_branch);
    let mut out = msg.clone();
    super::host::double_rr(s, li, out_li, &mut out);
    if s.via(out_li, &branch)
        .is_none_or(|via| out.push_via(&via).is_err())
    {
        return Err(BranchError::Refused);
    }
    let method = Method::from_token(msg.method().unwrap_or(""));
    let key = ClientKey { branch, method };
    let reliable = s.sock_transport(out_li) != crate::sip::Transport::Udp;
    match s.tm_mut().table.add_branch(
        tx,
        key,
        Hop {
            li: out_li,
            to,
            reliable,
        },
        Payload::from(out.into_bytes()),
        now,
    ) {
        Ok(_) => {
            drain(s, wall);
            Ok(())
        }
        Err(e @ TsxError::OverBudget { .. }) => {
            log::debug!("t_relay(): {e}");
            s.limits_mut().hit(Bound::TransactionBytes);
            Err(BranchError::OverBudget)
        }
        Err(e) => {
            log::warn!("t_relay(): {e}");
            Err(BranchError::Refused)
        }
    }
}

/// Why [`relay_branch`] added no branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BranchError {
    /// The next hop is this proxy (482) or unreachable from our sockets.
    Route(Refusal),
    /// The transaction byte budget is spent (503 with Retry-After).
    OverBudget,
    /// The table refused it otherwise (logged).
    Refused,
}

/// tm's 503 for a spent transaction budget: `Retry-After` tells the peer
/// when to try again, as Kamailio's tm does for its own overload replies.
pub(crate) fn refuse_over_budget(s: &mut State, tx: TxId, now: Instant, wall: WallTime) {
    if s.tm().table.final_reply(tx).is_none() {
        send_local_final(s, tx, 503, "Service Unavailable", &retry_after(), now);
    }
    drain(s, wall);
}

/// CANCEL of an INVITE we relayed: 200 to the CANCEL, the table cancels
/// the branches (RFC 3261 §16.10). An unknown CANCEL gets 481.
fn relay_cancel(ctx: &mut Ctx<'_>, st: &MsgState) -> Ret {
    let Some(key) = request_key(ctx.orig) else {
        return Ret::False;
    };
    let Some(tx) = ctx.s.tm().table.find_invite(&key) else {
        local_stateless(ctx, 481, "Call/Transaction Does Not Exist", &[], st);
        return Ret::False;
    };
    local_stateless(ctx, 200, "canceling", &[], st);
    match ctx.s.tm_mut().table.cancel(tx, ctx.now) {
        Ok(crate::tsx::CancelOutcome::NothingPending) => {
            send_local_final(ctx.s, tx, 487, "Request Terminated", &[], ctx.now);
        }
        Ok(_) => {}
        Err(e) => log::debug!("CANCEL: {e}"),
    }
    drain(ctx.s, ctx.wall);
    Ret::True
}

fn local_stateless(ctx: &mut Ctx<'_>, code: u16, reason: &str, extra: &[String], st: &MsgState) {
    if let Some((bytes, li, to)) =
        super::host::send_stateless_reply(ctx.s, ctx.li, &ctx.msg, code, reason, extra, true)
    {
        if let Some(f) = SipMsg::parse(&bytes).ok().as_ref().and_then(facts) {
            ctx.trace_sent(&bytes, &f, li, to, st);
        }
    }
}

fn t_reply(ctx: &mut Ctx<'_>, code: u16, reason: &str, st: &MsgState) -> Ret {
    let tx = match ctx.in_failure_route {
        Some(tx) => tx,
        None => match ensure_tx(ctx, st) {
            Ok(tx) => tx,
            Err(rc) => return rc,
        },
    };
    ctx.relayed = true;
    if send_local_final(ctx.s, tx, code, reason, &[], ctx.now) {
        drain(ctx.s, ctx.wall);
        Ret::True
    } else {
        Ret::False
    }
}

/// A reply tm builds itself from the transaction's request.
fn send_local_final(
    s: &mut State,
    tx: TxId,
    code: u16,
    reason: &str,
    extra: &[String],
    now: Instant,
) -> bool {
    let Some(req) = s
        .tm()
        .table
        .user(tx)
        .and_then(|d| d.origin.as_ref())
        .and_then(Origin::request)
    else {
        return false;
    };
    let tag = (code > 100).then(|| s.tagged("tm", tx_hash(&req)));
    let bytes = s.reply_bytes(&req, code, reason, tag.as_deref(), extra);
    match s
        .tm_mut()
        .table
        .send_reply(tx, code, Payload::from(bytes), now)
    {
        Ok(()) => true,
        Err(e) => {
            log::debug!("t_reply({code}): {e}");
            false
        }
    }
}

fn tx_hash(m: &SipMsg) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in m
        .call_id()
        .unwrap_or_default()
        .iter()
        .chain(m.from_tag().unwrap_or_default())
    {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Sends (and traces) what the table queued; keeps events for the core.
pub(crate) fn drain(s: &mut State, wall: WallTime) {
    while let Some(t) = s.tm_mut().table.poll_transmit() {
        transmit(s, t, wall);
    }
    let tm = s.tm_mut();
    while let Some(ev) = tm.table.poll_event() {
        tm.pending.push(ev);
    }
}

fn transmit(s: &mut State, t: Transmit<Hop>, wall: WallTime) {
    let Transmit {
        tx,
        to,
        bytes,
        what,
        retransmission,
    } = t;
    if let crate::tsx::Sent::Reply { code: 200.. } = what {
        if let Some(d) = s.tm_mut().table.user_mut(tx) {
            d.origin = None;
            let held = d.st.avps.heap_bytes();
            s.tm_mut().table.set_held(tx, held);
        }
    }
    if !retransmission {
        if let Some(st) = s.tm().table.user(tx).map(|d| d.st.clone()) {
            trace_out(s, &bytes, to, &st, wall);
        }
    }
    s.send(to.li, to.to, bytes.to_vec());
}

fn trace_out(s: &mut State, bytes: &[u8], to: Hop, st: &MsgState, wall: WallTime) {
    // A live ip filter naming where this goes (docs/decisions.md §16).
    let forced;
    let st = if !st.trace_forced && s.filter_forces_dest(to.to.ip(), wall) {
        forced = MsgState {
            trace_forced: true,
            ..st.clone()
        };
        &forced
    } else {
        st
    };
    // Checked before parsing: most transmissions of a busy proxy are not
    // traced.
    let flag_set = s.flag_set(st);
    if !s.wants_trace(Trigger::Flag { flag_set }, st) {
        return;
    }
    let Ok(m) = SipMsg::parse(bytes) else { return };
    let Some(f) = facts(&m) else { return };
    s.trace_sent(bytes, &f, to.li, to.to, st, wall);
}

/// A reply that reached us: matched to a branch, traced, onreply_route
/// run, relayed when the table says so. False when no transaction knows
/// it (the caller relays it statelessly).
#[allow(clippy::too_many_arguments)]
pub(crate) fn on_reply(
    core: &mut Core,
    li: usize,
    local: Option<SocketAddr>,
    src: SocketAddr,
    raw: &[u8],
    orig: &SipMsg,
    branch: &str,
    forced: bool,
    now: Instant,
    wall: WallTime,
) -> bool {
    let Some(code) = orig.status() else {
        return false;
    };
    let key = ClientKey {
        branch: branch.to_string(),
        method: Method::from_token(orig.cseq_method().unwrap_or("")),
    };
    let m = core
        .s
        .tm_mut()
        .table
        .handle_reply(&key, code, Payload::from(raw), now, |req| {
            let ack = SipMsg::parse(req)
                .ok()
                .and_then(|r| build_ack_for_non2xx(&r, orig).ok());
            Payload::from(ack.unwrap_or_default())
        });
    let m = match m {
        ReplyMatch::NoMatch => return false,
        ReplyMatch::InvalidStatus => return true,
        ReplyMatch::Matched(m) => m,
    };
    let Some((st, on_reply)) = core
        .s
        .tm()
        .table
        .user(m.tx)
        .map(|d| (d.st.clone(), d.on_reply))
    else {
        return true;
    };
    let mut st = st;
    // A filter matching the reply itself: it is traced in (and its
    // onreply_route sees it so); the transaction's state is unchanged.
    st.trace_forced |= forced;
    let mut ctx = Ctx::new(&mut core.s, li, src, raw, orig, now, wall);
    ctx.local = local;
    ctx.current_tx = Some(m.tx);
    let flag_set = ctx.flag_set(&st);
    ctx.trace_received(Trigger::Flag { flag_set }, &st, None);
    use crate::tsx::Disposition;
    if matches!(m.disposition, Disposition::Relay | Disposition::Stored) && !m.to_cancel {
        let route = on_reply.or(core.program.onreply_route());
        let outcome = route.map(|r| core.program.run(r, &mut st, &mut core.vars, &mut ctx));
        if m.disposition == Disposition::Relay && outcome != Some(Outcome::Drop) {
            let mut out = ctx.msg.clone();
            if matches!(out.pop_top_via(), Ok(true)) {
                if let Err(e) = ctx.s.tm_mut().table.send_reply(
                    m.tx,
                    code,
                    Payload::from(out.into_bytes()),
                    now,
                ) {
                    log::debug!("relaying {code}: {e}");
                }
            }
        }
    }
    drain(&mut core.s, wall);
    run_pending(core, now, wall);
    true
}

/// Timers of the table, then what they caused.
pub(crate) fn on_timer(core: &mut Core, now: Instant, wall: WallTime) {
    core.s.tm_mut().table.handle_timeout(now);
    drain(&mut core.s, wall);
    run_pending(core, now, wall);
}

/// Events that need the program or build messages: failure_route and the
/// final reply when all branches failed, CANCELs for branches.
pub(crate) fn run_pending(core: &mut Core, now: Instant, wall: WallTime) {
    // Bounded: each event handled may queue more (a failure_route relaying
    // again), but a transaction's branches are bounded by tsx.
    let mut rounds = 0;
    while !core.s.tm().pending.is_empty() && rounds < 64 {
        rounds += 1;
        for ev in std::mem::take(&mut core.s.tm_mut().pending) {
            match ev {
                Event::CancelBranch {
                    tx,
                    branch,
                    request,
                    ..
                } => {
                    let cancel = SipMsg::parse(&request)
                        .ok()
                        .and_then(|r| build_cancel(&r).ok());
                    if let Some(c) = cancel {
                        if let Err(e) =
                            core.s
                                .tm_mut()
                                .table
                                .send_cancel(tx, branch, Payload::from(c), now)
                        {
                            log::debug!("CANCEL on {tx}: {e}");
                        }
                    }
                }
                Event::AllBranchesFailed { tx, best } => all_failed(core, tx, best, now, wall),
                Event::Timeout { tx, branch, timer } => {
                    log::debug!("{tx} branch {} timed out ({timer:?})", branch.0)
                }
                Event::Expired { tx } => log::info!("{tx} expired with no final reply"),
                Event::NoAck { .. } | Event::CancelTimeout { .. } | Event::Freed { .. } => {}
            }
            drain(&mut core.s, wall);
        }
    }
}

fn all_failed(
    core: &mut Core,
    tx: TxId,
    best: crate::tsx::BestReply,
    now: Instant,
    wall: WallTime,
) {
    let Some(d) = core.s.tm().table.user(tx).cloned() else {
        return;
    };
    let mut relayed = false;
    if let Some(route) = d.on_failure {
        let mut st = d.st.clone();
        let Some((origin, request)) = d
            .origin
            .as_ref()
            .and_then(|o| Some((o.clone(), o.request()?)))
        else {
            return;
        };
        let mut ctx = Ctx::new(&mut core.s, d.li, d.src, &origin.raw, &request, now, wall);
        ctx.current_tx = Some(tx);
        ctx.in_failure_route = Some(tx);
        ctx.t_reply_code = Some(best.code);
        // A failure_route arms its own next failure_route, as in Kamailio.
        if let Some(dd) = ctx.s.tm_mut().table.user_mut(tx) {
            dd.on_failure = None;
        }
        core.program.run(route, &mut st, &mut core.vars, &mut ctx);
        relayed = ctx.relayed;
    }
    if relayed || core.s.tm().table.final_reply(tx).is_some() {
        return;
    }
    let sent = match best.reply.as_deref().map(SipMsg::parse) {
        Some(Ok(mut r)) => {
            matches!(r.pop_top_via(), Ok(true))
                && core
                    .s
                    .tm_mut()
                    .table
                    .send_reply(tx, best.code, Payload::from(r.into_bytes()), now)
                    .is_ok()
        }
        _ => false,
    };
    if !sent {
        let reason = match best.code {
            408 => "Request Timeout",
            487 => "Request Terminated",
            _ => "Server Internal Error",
        };
        send_local_final(&mut core.s, tx, best.code, reason, &[], now);
    }
}
