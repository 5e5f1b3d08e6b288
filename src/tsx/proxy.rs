//! One proxy transaction (RFC 3261 §16 "response context"): a server
//! transaction paired with 1..n client branches, Kamailio tm's proxy timers
//! on each branch, best-reply selection, and CANCEL of pending branches.
//!
//! It owns the four RFC machines and turns what they report into
//! [`Transmit`]s and [`Event`]s for the caller. It knows nothing of the
//! matching indexes, slots or the deadline map (`table.rs` owns those), and
//! like every part of this module it never reads a clock or parses SIP.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use super::client_invite::{self, ClientInvite};
use super::client_non_invite::{self, ClientNonInvite};
use super::server_invite::{self, ServerInvite};
use super::server_non_invite::{self, ServerNonInvite};
use super::timers::{TimerKind, Timers};
use super::{
    BestReply, BranchId, CancelOutcome, ClientKey, Destination, Disposition, Event, MatchedReply,
    Method, Payload, Received, RequestKey, Sent, Transmit, TsxConfig, TsxError, TxId,
};

/// RFC 3261 §21.4.9: the code of the reply a proxy generates for a branch
/// that timed out.
const REQUEST_TIMEOUT: u16 = 408;
/// RFC 3261 §21.4.26 / §9.2: the code for a request cancelled before it was
/// answered.
const REQUEST_TERMINATED: u16 = 487;

/// The output queues the table drains through `poll_transmit`/`poll_event`.
pub(crate) struct Queues<A> {
    pub(crate) transmits: VecDeque<Transmit<A>>,
    pub(crate) events: VecDeque<Event<A>>,
}

impl<A> Queues<A> {
    pub(crate) fn new() -> Self {
        Queues {
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }
}

/// What every transaction operation needs besides the transaction itself.
pub(crate) struct Ctx<'a, A> {
    pub(crate) cfg: &'a TsxConfig,
    pub(crate) timers: Timers,
    pub(crate) q: &'a mut Queues<A>,
}

enum ServerSide {
    Invite(ServerInvite),
    NonInvite(ServerNonInvite),
}

impl ServerSide {
    fn final_code(&self) -> Option<u16> {
        match self {
            ServerSide::Invite(m) => m.final_code(),
            ServerSide::NonInvite(m) => m.final_code(),
        }
    }

    fn accepts(&self, code: u16) -> bool {
        match self {
            ServerSide::Invite(m) => m.accepts(code),
            ServerSide::NonInvite(m) => m.accepts(code),
        }
    }

    fn deadline(&self) -> Option<Instant> {
        match self {
            ServerSide::Invite(m) => m.deadline(),
            ServerSide::NonInvite(m) => m.deadline(),
        }
    }

    fn is_terminated(&self) -> bool {
        match self {
            ServerSide::Invite(m) => m.is_terminated(),
            ServerSide::NonInvite(m) => m.is_terminated(),
        }
    }

    fn terminate(&mut self) {
        match self {
            ServerSide::Invite(m) => m.terminate(),
            ServerSide::NonInvite(m) => m.terminate(),
        }
    }

    fn retained(&self) -> Option<&Payload> {
        match self {
            ServerSide::Invite(m) => m.retained(),
            ServerSide::NonInvite(m) => m.retained(),
        }
    }
}

pub(crate) enum ClientSide {
    Invite(ClientInvite),
    NonInvite(ClientNonInvite),
}

impl ClientSide {
    fn deadline(&self) -> Option<Instant> {
        match self {
            ClientSide::Invite(m) => m.deadline(),
            ClientSide::NonInvite(m) => m.deadline(),
        }
    }

    pub(crate) fn is_terminated(&self) -> bool {
        match self {
            ClientSide::Invite(m) => m.is_terminated(),
            ClientSide::NonInvite(m) => m.is_terminated(),
        }
    }

    fn terminate(&mut self) {
        match self {
            ClientSide::Invite(m) => m.terminate(),
            ClientSide::NonInvite(m) => m.terminate(),
        }
    }

    /// The request (until the final reply) and the non-2xx ACK.
    fn retained(&self) -> [Option<&Payload>; 2] {
        match self {
            ClientSide::Invite(m) => m.retained(),
            ClientSide::NonInvite(m) => [m.retained(), None],
        }
    }

    /// Fire the earliest due timer of either machine kind.
    fn on_timeout(&mut self, now: Instant, timers: &Timers) -> Option<BranchFired> {
        match self {
            ClientSide::Invite(m) => m.on_timeout(now, timers).map(|f| match f {
                client_invite::Fired::Retransmit(bytes) => BranchFired::Retransmit(bytes),
                client_invite::Fired::TimerB => BranchFired::Timeout(TimerKind::B),
                client_invite::Fired::GaveUp => BranchFired::GaveUp,
                client_invite::Fired::Ended => BranchFired::Ended,
            }),
            ClientSide::NonInvite(m) => m.on_timeout(now, timers).map(|f| match f {
                client_non_invite::Fired::Retransmit(bytes) => BranchFired::Retransmit(bytes),
                client_non_invite::Fired::TimerF => BranchFired::Timeout(TimerKind::F),
                client_non_invite::Fired::Ended => BranchFired::Ended,
            }),
        }
    }
}

enum BranchFired {
    Retransmit(Payload),
    Timeout(TimerKind),
    GaveUp,
    Ended,
}

/// Where a branch stands with respect to cancelling (RFC 3261 §9.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CancelState {
    NotCancelled,
    /// Cancel wanted, but no provisional yet: the CANCEL must wait for one.
    WaitProvisional,
    /// [`Event::CancelBranch`] was emitted; the caller has not sent it yet.
    Requested,
    Sent,
}

/// A branch's final outcome for best-reply selection.
#[derive(Clone, Debug)]
struct Outcome {
    code: u16,
    /// The received non-2xx final, while it may still become the best reply
    /// (no final sent upstream, branch in the current set). `None` for a
    /// locally generated outcome (408 timeout, 487 cancel), for a 2xx (relayed
    /// at once, never "best"), and once the reply cannot be picked any more.
    reply: Option<Payload>,
}

/// Which machine of a transaction a client index entry points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Leg {
    Branch(BranchId),
    Cancel(BranchId),
}

pub(crate) struct Branch<A> {
    pub(crate) key: ClientKey,
    dest: A,
    pub(crate) machine: ClientSide,
    /// Whether the table's client index points at `machine`.
    pub(crate) indexed: bool,
    /// The running tm timer (`fr_timer` or `fr_inv_timer`), until the
    /// branch has its outcome.
    fr: Option<(Instant, TimerKind)>,
    outcome: Option<Outcome>,
    cancel: CancelState,
    pub(crate) cancel_machine: Option<ClientNonInvite>,
    pub(crate) cancel_indexed: bool,
    /// Last provisional code received, for `restart_fr_on_each_reply=0`.
    last_provisional: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LifetimeStage {
    /// The tm lifetime cap: time out whatever is pending.
    Cap,
    /// Grace after the cap for the caller to answer: then drop.
    Grace,
}

pub(crate) struct ProxyTx<U, A> {
    pub(crate) id: TxId,
    pub(crate) key: RequestKey,
    reply_to: A,
    server: ServerSide,
    /// Whether the table's server index points at this transaction.
    pub(crate) server_indexed: bool,
    pub(crate) branches: Vec<Branch<A>>,
    /// First branch of the current set (branches added after an
    /// AllBranchesFailed start a new set, Kamailio `failure_reply_mode=3`).
    set_start: usize,
    failure_reported: bool,
    /// An incoming CANCEL was applied (Kamailio `t_is_canceled`).
    cancelled: bool,
    lifetime: Option<(Instant, LifetimeStage)>,
    pub(crate) user: U,
    /// The deadline under which the table's map holds this transaction.
    pub(crate) scheduled: Option<Instant>,
    /// Every machine terminated; freed on the next `handle_timeout`.
    pub(crate) dead: bool,
    /// [`ProxyTx::retained_bytes`] as the table last counted it.
    pub(crate) accounted: usize,
    /// Bytes the caller keeps with the transaction (in `user`), as it
    /// declared them: counted with the messages, since they live as long.
    pub(crate) held: usize,
}

impl<U, A: Destination> ProxyTx<U, A> {
    pub(crate) fn new(
        id: TxId,
        key: RequestKey,
        reply_to: A,
        user: U,
        now: Instant,
        cfg: &TsxConfig,
    ) -> Self {
        let invite = *key.method() == Method::Invite;
        let (server, cap) = if invite {
            (
                ServerSide::Invite(ServerInvite::new()),
                cfg.max_inv_lifetime,
            )
        } else {
            (
                ServerSide::NonInvite(ServerNonInvite::new()),
                cfg.max_noninv_lifetime,
            )
        };
        ProxyTx {
            id,
            key,
            reply_to,
            server,
            server_indexed: false,
            branches: Vec::new(),
            set_start: 0,
            failure_reported: false,
            cancelled: false,
            lifetime: Some((now + cap, LifetimeStage::Cap)),
            user,
            scheduled: None,
            dead: false,
            accounted: 0,
            held: 0,
        }
    }

    fn is_invite(&self) -> bool {
        matches!(self.server, ServerSide::Invite(_))
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled
    }

    pub(crate) fn final_code(&self) -> Option<u16> {
        self.server.final_code()
    }

    pub(crate) fn server_terminated(&self) -> bool {
        self.server.is_terminated()
    }

    /// Every machine terminated: nothing can match or fire any more.
    pub(crate) fn is_finished(&self) -> bool {
        self.server.is_terminated()
            && self.branches.iter().all(|b| {
                b.machine.is_terminated()
                    && b.cancel_machine.as_ref().is_none_or(|m| m.is_terminated())
            })
    }

    /// Every message the transaction holds; a payload shared by two parts
    /// (the caller may hand in one `Arc` twice) appears twice.
    fn payloads(&self) -> impl Iterator<Item = &Payload> + Clone {
        let branches = self.branches.iter().flat_map(|b| {
            let [request, ack] = b.machine.retained();
            [
                request,
                ack,
                b.cancel_machine.as_ref().and_then(|m| m.retained()),
                b.outcome.as_ref().and_then(|o| o.reply.as_ref()),
            ]
        });
        std::iter::once(self.server.retained())
            .chain(branches)
            .flatten()
    }

    /// Payload bytes held, each shared `Arc` counted once, plus what the
    /// caller declared it holds (`held`). The quadratic
    /// scan allocates nothing and stays small: at most 1 + 4·`max_branches`
    /// payloads, and 1–3 for a typical call.
    pub(crate) fn retained_bytes(&self) -> usize {
        let all = self.payloads();
        self.held
            + all
                .clone()
                .enumerate()
                .filter(|&(i, p)| !all.clone().take(i).any(|q| Arc::ptr_eq(p, q)))
                .map(|(_, p)| p.len())
                .sum::<usize>()
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        let branch_deadlines = self.branches.iter().flat_map(|b| {
            [
                b.machine.deadline(),
                b.fr.map(|(at, _)| at),
                b.cancel_machine.as_ref().and_then(|m| m.deadline()),
            ]
        });
        [self.server.deadline(), self.lifetime.map(|(at, _)| at)]
            .into_iter()
            .chain(branch_deadlines)
            .flatten()
            .min()
    }

    /// A retransmission of the request that created the transaction.
    pub(crate) fn on_request(&mut self, cx: &mut Ctx<'_, A>) {
        let again = match &self.server {
            ServerSide::Invite(m) => m.on_request(),
            ServerSide::NonInvite(m) => m.on_request(),
        };
        if let Some((code, bytes)) = again {
            self.push_reply(cx, code, bytes, true);
        }
    }

    /// An ACK matched the INVITE: `Some(first)` when absorbed.
    pub(crate) fn on_ack(&mut self, now: Instant, cx: &mut Ctx<'_, A>) -> Option<bool> {
        match &mut self.server {
            ServerSide::Invite(m) => m.on_ack(now, &cx.timers.over(self.reply_to.reliable())),
            ServerSide::NonInvite(_) => None,
        }
    }

    pub(crate) fn send_reply(
        &mut self,
        code: u16,
        bytes: Payload,
        now: Instant,
        cx: &mut Ctx<'_, A>,
    ) -> Result<(), TsxError> {
        if !(100..=699).contains(&code) {
            return Err(TsxError::InvalidStatus(code));
        }
        let sent = match &mut self.server {
            ServerSide::Invite(m) => m
                .send(code, &bytes, now, &cx.timers.over(self.reply_to.reliable()))
                .map_err(|server_invite::Refused::AlreadyFinal { sent }| sent),
            ServerSide::NonInvite(m) => m
                .send(code, &bytes, now, &cx.timers.over(self.reply_to.reliable()))
                .map_err(|server_non_invite::Refused::AlreadyFinal { sent }| sent),
        };
        sent.map_err(|sent| TsxError::AlreadyFinal { sent })?;
        self.push_reply(cx, code, bytes, false);
        if code >= 200 {
            self.lifetime = None;
            // No best reply will be picked any more.
            self.forget_candidates();
            if self.is_invite() {
                // §16.7 step 10: a final response forwarded → cancel every
                // pending branch.
                self.cancel_pending(now, cx);
            }
        }
        Ok(())
    }

    pub(crate) fn add_branch(
        &mut self,
        key: ClientKey,
        dest: A,
        request: Payload,
        now: Instant,
        cx: &mut Ctx<'_, A>,
    ) -> Result<BranchId, TsxError> {
        if key.method != *self.key.method() {
            return Err(TsxError::MethodMismatch {
                transaction: self.key.method().clone(),
                branch: key.method,
            });
        }
        if let Some(sent) = self.server.final_code() {
            return Err(TsxError::AlreadyFinal { sent });
        }
        if self.cancelled {
            return Err(TsxError::Cancelled(self.id));
        }
        if self.branches.len() >= cx.cfg.max_branches {
            return Err(TsxError::TooManyBranches {
                max: cx.cfg.max_branches,
            });
        }
        if self.failure_reported {
            // failure_route forwards again: a new set of branches, and the
            // old set's replies can no longer be picked.
            self.forget_candidates();
            self.set_start = self.branches.len();
            self.failure_reported = false;
        }
        let Ok(index) = u16::try_from(self.branches.len()) else {
            return Err(TsxError::TooManyBranches {
                max: cx.cfg.max_branches,
            });
        };
        let branch = BranchId(index);
        let machine = if self.is_invite() {
            ClientSide::Invite(ClientInvite::new(
                request.clone(),
                now,
                &cx.timers.over(dest.reliable()),
            ))
        } else {
            ClientSide::NonInvite(ClientNonInvite::new(
                request.clone(),
                now,
                &cx.timers.over(dest.reliable()),
            ))
        };
        cx.q.transmits.push_back(Transmit {
            tx: self.id,
            to: dest.clone(),
            bytes: request,
            what: Sent::Request { branch },
            retransmission: false,
        });
        // Almost every transaction has one branch: a first push would
        // reserve four (~1.1 KB unused per transaction, held until wt_timer
        // frees it).
        self.branches.reserve_exact(1);
        self.branches.push(Branch {
            key,
            dest,
            machine,
            indexed: false,
            fr: Some((now + cx.cfg.fr_timer, TimerKind::FrTimer)),
            outcome: None,
            cancel: CancelState::NotCancelled,
            cancel_machine: None,
            cancel_indexed: false,
            last_provisional: 0,
        });
        Ok(branch)
    }

    /// A reply matched one of this transaction's client machines. `None`
    /// only if the leg no longer exists (cannot happen through the table).
    pub(crate) fn on_reply<F>(
        &mut self,
        leg: Leg,
        code: u16,
        bytes: Payload,
        now: Instant,
        cx: &mut Ctx<'_, A>,
        make_ack: F,
    ) -> Option<MatchedReply>
    where
        F: FnOnce(&[u8]) -> Payload,
    {
        match leg {
            Leg::Cancel(branch) => {
                let b = self.branches.get_mut(usize::from(branch.0))?;
                let received = b.cancel_machine.as_mut()?.on_reply(
                    code,
                    &bytes,
                    now,
                    &cx.timers.over(b.dest.reliable()),
                );
                Some(MatchedReply {
                    tx: self.id,
                    branch,
                    to_cancel: true,
                    code,
                    retransmission: received.retransmission,
                    disposition: Disposition::Absorbed,
                })
            }
            Leg::Branch(branch) => {
                let (retransmission, disposition) =
                    self.on_branch_reply(branch, code, bytes, now, cx, make_ack)?;
                Some(MatchedReply {
                    tx: self.id,
                    branch,
                    to_cancel: false,
                    code,
                    retransmission,
                    disposition,
                })
            }
        }
    }

    fn on_branch_reply<F>(
        &mut self,
        branch: BranchId,
        code: u16,
        bytes: Payload,
        now: Instant,
        cx: &mut Ctx<'_, A>,
        make_ack: F,
    ) -> Option<(bool, Disposition)>
    where
        F: FnOnce(&[u8]) -> Payload,
    {
        let i = usize::from(branch.0);
        let server_final = self.server.final_code();
        let server_accepts = self.server.accepts(code);
        let id = self.id;
        let b = self.branches.get_mut(i)?;
        let received: Received = match &mut b.machine {
            ClientSide::Invite(m) => m.on_reply(
                code,
                &bytes,
                now,
                &cx.timers.over(b.dest.reliable()),
                make_ack,
            ),
            ClientSide::NonInvite(m) => {
                m.on_reply(code, &bytes, now, &cx.timers.over(b.dest.reliable()))
            }
        };
        if let Some((ack, again)) = received.ack {
            cx.q.transmits.push_back(Transmit {
                tx: id,
                to: b.dest.clone(),
                bytes: ack,
                what: Sent::Ack { branch },
                retransmission: again,
            });
        }
        let retransmission = received.retransmission;
        if !received.passed_up {
            return Some((retransmission, Disposition::Absorbed));
        }
        let disposition = if code < 200 {
            self.branch_provisional(i, code, now, cx);
            let done = self.branches[i].outcome.is_some();
            // §16.7 step 5: provisionals other than 100 are forwarded at once;
            // Kamailio discards them on a branch or transaction already final.
            if code == 100 || done || server_final.is_some() {
                Disposition::Absorbed
            } else {
                Disposition::Relay
            }
        } else if code < 300 {
            let b = &mut self.branches[i];
            b.fr = None;
            if b.outcome.as_ref().is_none_or(|o| o.code >= 300) {
                b.outcome = Some(Outcome { code, reply: None });
            }
            // Every 2xx to INVITE is forwarded (§16.7 step 5); a non-INVITE
            // 2xx only while no final was sent.
            if server_accepts {
                Disposition::Relay
            } else {
                Disposition::Absorbed
            }
        } else {
            let b = &mut self.branches[i];
            if b.outcome.is_some() {
                // A late final after the branch timed out or was cancelled
                // before any reply: ACKed by the machine, not reported again.
                return Some((retransmission, Disposition::Absorbed));
            }
            b.fr = None;
            b.outcome = Some(Outcome {
                code,
                reply: server_final.is_none().then_some(bytes),
            });
            if code >= 600 && self.is_invite() {
                // §16.7: a 6xx ends the search; cancel the other branches.
                self.cancel_pending(now, cx);
            }
            self.check_all_failed(cx);
            if server_final.is_none() {
                Disposition::Stored
            } else {
                Disposition::Absorbed
            }
        };
        Some((retransmission, disposition))
    }

    /// A provisional on branch `i` was passed up: tm timer and §9.1 CANCEL.
    fn branch_provisional(&mut self, i: usize, code: u16, now: Instant, cx: &mut Ctx<'_, A>) {
        let id = self.id;
        let b = &mut self.branches[i];
        let ClientSide::Invite(m) = &b.machine else {
            // Non-INVITE: fr_timer keeps running (Kamailio), like Timer F.
            return;
        };
        if b.outcome.is_none() {
            let last = b.last_provisional;
            let restart =
                cx.cfg.restart_fr_on_each_reply || last == 0 || (code > last && code >= 180);
            if restart {
                b.fr = Some((now + cx.cfg.fr_inv_timer, TimerKind::FrInvTimer));
            }
        }
        b.last_provisional = code;
        if b.cancel == CancelState::WaitProvisional
            && let Some(request) = m.cancellable()
        {
            b.cancel = CancelState::Requested;
            cx.q.events.push_back(Event::CancelBranch {
                tx: id,
                branch: BranchId(i as u16),
                request: request.clone(),
                to: b.dest.clone(),
            });
        }
    }

    /// The caller built the CANCEL for a branch. `Ok(false)` when no CANCEL
    /// is (or is yet) due: not an INVITE, already sent, final reply already
    /// in, or no provisional yet (§9.1; it is requested again then).
    pub(crate) fn send_cancel(
        &mut self,
        branch: BranchId,
        bytes: Payload,
        now: Instant,
        cx: &mut Ctx<'_, A>,
    ) -> Result<bool, TsxError> {
        let id = self.id;
        let b = self
            .branches
            .get_mut(usize::from(branch.0))
            .ok_or(TsxError::UnknownBranch { tx: id, branch })?;
        let ClientSide::Invite(m) = &mut b.machine else {
            return Ok(false);
        };
        if b.cancel_machine.is_some() || !m.is_proceeding() {
            return Ok(false);
        }
        // §9.1: the INVITE transaction is given 64·T1 from the CANCEL.
        m.give_up(now, &cx.timers.over(b.dest.reliable()));
        b.cancel_machine = Some(ClientNonInvite::new(
            bytes.clone(),
            now,
            &cx.timers.over(b.dest.reliable()),
        ));
        b.cancel = CancelState::Sent;
        cx.q.transmits.push_back(Transmit {
            tx: id,
            to: b.dest.clone(),
            bytes,
            what: Sent::Cancel { branch },
            retransmission: false,
        });
        Ok(true)
    }

    /// An incoming CANCEL for this INVITE (RFC 3261 §16.10).
    pub(crate) fn cancel(&mut self, now: Instant, cx: &mut Ctx<'_, A>) -> CancelOutcome {
        if !self.is_invite() {
            return CancelOutcome::NotInvite;
        }
        if self.cancelled {
            return CancelOutcome::AlreadyCancelled;
        }
        if self.server.final_code().is_some() {
            return CancelOutcome::AlreadyFinal;
        }
        self.cancelled = true;
        let touched = self.cancel_pending(now, cx);
        let awaiting = self.branches.iter().filter(|b| b.outcome.is_none()).count();
        self.check_all_failed(cx);
        if touched == 0 && awaiting == 0 {
            CancelOutcome::NothingPending
        } else {
            CancelOutcome::Cancelling { awaiting }
        }
    }

    /// Cancel every INVITE branch without a final outcome: one with a
    /// provisional gets a CANCEL (via [`Event::CancelBranch`]); one without
    /// stops retransmitting and counts as a local 487 at once, its CANCEL
    /// waiting for a provisional (§9.1; Kamailio `cancel_b_method=0`).
    /// Returns how many branches were affected.
    fn cancel_pending(&mut self, now: Instant, cx: &mut Ctx<'_, A>) -> usize {
        let id = self.id;
        let mut touched = 0;
        for (i, b) in self.branches.iter_mut().enumerate() {
            if b.outcome.is_some() || b.cancel != CancelState::NotCancelled {
                continue;
            }
            let ClientSide::Invite(m) = &mut b.machine else {
                continue;
            };
            if m.is_calling() {
                m.give_up(now, &cx.timers.over(b.dest.reliable()));
                b.fr = None;
                b.outcome = Some(Outcome {
                    code: REQUEST_TERMINATED,
                    reply: None,
                });
                b.cancel = CancelState::WaitProvisional;
                touched += 1;
            } else if let Some(request) = m.cancellable() {
                b.cancel = CancelState::Requested;
                cx.q.events.push_back(Event::CancelBranch {
                    tx: id,
                    branch: BranchId(i as u16),
                    request: request.clone(),
                    to: b.dest.clone(),
                });
                touched += 1;
            }
        }
        touched
    }

    /// Drop the stored replies of every branch so far: none of them can
    /// become the best reply any more (their outcome codes stay).
    fn forget_candidates(&mut self) {
        for b in &mut self.branches {
            if let Some(outcome) = &mut b.outcome {
                outcome.reply = None;
            }
        }
    }

    /// Emit [`Event::AllBranchesFailed`] once the current set is complete,
    /// all non-2xx, and nothing final was sent.
    fn check_all_failed(&mut self, cx: &mut Ctx<'_, A>) {
        if self.failure_reported || self.server.final_code().is_some() {
            return;
        }
        let set = self.branches.get(self.set_start..).unwrap_or_default();
        if set.is_empty() || set.iter().any(|b| b.outcome.is_none()) {
            return;
        }
        let outcomes = set.iter().enumerate().filter_map(|(offset, b)| {
            let outcome = b.outcome.as_ref()?;
            Some((BranchId((self.set_start + offset) as u16), outcome))
        });
        let Some(best) = pick_best(outcomes) else {
            return;
        };
        if (200..300).contains(&best.code) {
            // A 2xx was (to be) relayed; nothing failed.
            return;
        }
        self.failure_reported = true;
        cx.q.events
            .push_back(Event::AllBranchesFailed { tx: self.id, best });
    }

    pub(crate) fn on_timeout(&mut self, now: Instant, cx: &mut Ctx<'_, A>) {
        self.server_timers(now, cx);
        for i in 0..self.branches.len() {
            self.branch_timers(i, now, cx);
        }
        self.lifetime_timer(now, cx);
    }

    fn server_timers(&mut self, now: Instant, cx: &mut Ctx<'_, A>) {
        loop {
            let fired = match &mut self.server {
                ServerSide::Invite(m) => {
                    if m.deadline().is_none_or(|d| d > now) {
                        return;
                    }
                    m.on_timeout(now, &cx.timers.over(self.reply_to.reliable()))
                }
                ServerSide::NonInvite(m) => {
                    m.on_timeout(now);
                    return;
                }
            };
            match fired {
                None => return,
                Some(server_invite::Fired::Retransmit { code, bytes }) => {
                    self.push_reply(cx, code, bytes, true);
                }
                Some(server_invite::Fired::NoAck) => {
                    cx.q.events.push_back(Event::NoAck { tx: self.id });
                }
                Some(server_invite::Fired::Ended) => {}
            }
        }
    }

    fn branch_timers(&mut self, i: usize, now: Instant, cx: &mut Ctx<'_, A>) {
        let id = self.id;
        let branch = BranchId(i as u16);
        loop {
            let b = &mut self.branches[i];
            if b.machine.deadline().is_none_or(|d| d > now) {
                break;
            }
            match b
                .machine
                .on_timeout(now, &cx.timers.over(b.dest.reliable()))
            {
                None => break,
                Some(BranchFired::Retransmit(bytes)) => cx.q.transmits.push_back(Transmit {
                    tx: id,
                    to: b.dest.clone(),
                    bytes,
                    what: Sent::Request { branch },
                    retransmission: true,
                }),
                Some(BranchFired::Timeout(timer)) => self.branch_timeout(i, timer, now, cx),
                Some(BranchFired::GaveUp) => self.branch_gave_up(i, cx),
                Some(BranchFired::Ended) => {}
            }
        }
        if let Some((at, timer)) = self.branches[i].fr
            && at <= now
        {
            self.branch_timeout(i, timer, now, cx);
        }
        loop {
            let b = &mut self.branches[i];
            let Some(m) = b.cancel_machine.as_mut() else {
                break;
            };
            if m.deadline().is_none_or(|d| d > now) {
                break;
            }
            match m.on_timeout(now, &cx.timers.over(b.dest.reliable())) {
                None => break,
                Some(client_non_invite::Fired::Retransmit(bytes)) => {
                    cx.q.transmits.push_back(Transmit {
                        tx: id,
                        to: b.dest.clone(),
                        bytes,
                        what: Sent::Cancel { branch },
                        retransmission: true,
                    })
                }
                Some(client_non_invite::Fired::TimerF) => {
                    cx.q.events
                        .push_back(Event::CancelTimeout { tx: id, branch });
                }
                Some(client_non_invite::Fired::Ended) => {}
            }
        }
    }

    /// The outcome a branch gets when it ends without a final reply: 408,
    /// or 487 once an incoming CANCEL was applied (RFC 3261 §9.2: the UAS
    /// of a cancelled INVITE answers 487).
    fn local_failure_code(&self) -> u16 {
        if self.cancelled {
            REQUEST_TERMINATED
        } else {
            REQUEST_TIMEOUT
        }
    }

    /// Branch `i` got no (final) reply in time: it becomes a local 408; an
    /// INVITE branch is cancelled (at once if it had a provisional, else when
    /// one comes).
    fn branch_timeout(&mut self, i: usize, timer: TimerKind, now: Instant, cx: &mut Ctx<'_, A>) {
        let id = self.id;
        let branch = BranchId(i as u16);
        let code = self.local_failure_code();
        let b = &mut self.branches[i];
        b.fr = None;
        if b.outcome.is_some() {
            return;
        }
        b.outcome = Some(Outcome { code, reply: None });
        cx.q.events.push_back(Event::Timeout {
            tx: id,
            branch,
            timer,
        });
        match &mut b.machine {
            ClientSide::Invite(m) => {
                let cancellable = m.cancellable().cloned();
                m.give_up(now, &cx.timers.over(b.dest.reliable()));
                if b.cancel == CancelState::NotCancelled {
                    if let Some(request) = cancellable {
                        b.cancel = CancelState::Requested;
                        cx.q.events.push_back(Event::CancelBranch {
                            tx: id,
                            branch,
                            request,
                            to: b.dest.clone(),
                        });
                    } else {
                        b.cancel = CancelState::WaitProvisional;
                    }
                }
            }
            ClientSide::NonInvite(m) => m.terminate(),
        }
        self.check_all_failed(cx);
    }

    /// The INVITE machine of branch `i` lingered (64·T1 capped by
    /// `wt_timer`) after giving up or being cancelled, and no final came.
    fn branch_gave_up(&mut self, i: usize, cx: &mut Ctx<'_, A>) {
        let code = self.local_failure_code();
        let b = &mut self.branches[i];
        b.fr = None;
        if b.outcome.is_some() {
            return;
        }
        b.outcome = Some(Outcome { code, reply: None });
        cx.q.events.push_back(Event::Timeout {
            tx: self.id,
            branch: BranchId(i as u16),
            timer: TimerKind::CancelWait,
        });
        self.check_all_failed(cx);
    }

    fn lifetime_timer(&mut self, now: Instant, cx: &mut Ctx<'_, A>) {
        let Some((at, stage)) = self.lifetime else {
            return;
        };
        if at > now {
            return;
        }
        self.lifetime = None;
        if self.server.final_code().is_some() {
            return;
        }
        if stage == LifetimeStage::Grace || self.branches.is_empty() {
            // Nothing was ever forwarded (the caller had the whole lifetime
            // to reply), or the grace ran out too.
            self.expire(cx);
            return;
        }
        for i in 0..self.branches.len() {
            if self.branches[i].outcome.is_none() {
                self.branch_timeout(i, TimerKind::Lifetime, now, cx);
            }
        }
        if self.server.final_code().is_none() {
            // A failure may have been reported in this very call: give the
            // caller time to answer it before dropping the transaction.
            self.lifetime = Some((now + cx.timers.lifetime_grace(), LifetimeStage::Grace));
        }
    }

    /// Drop every machine at once: the lifetime cap ran out unanswered.
    fn expire(&mut self, cx: &mut Ctx<'_, A>) {
        self.server.terminate();
        for b in &mut self.branches {
            b.machine.terminate();
            b.fr = None;
            if let Some(m) = b.cancel_machine.as_mut() {
                m.terminate();
            }
        }
        self.lifetime = None;
        cx.q.events.push_back(Event::Expired { tx: self.id });
    }

    fn push_reply(&self, cx: &mut Ctx<'_, A>, code: u16, bytes: Payload, retransmission: bool) {
        cx.q.transmits.push_back(Transmit {
            tx: self.id,
            to: self.reply_to.clone(),
            bytes,
            what: Sent::Reply { code },
            retransmission,
        });
    }
}

/// Kamailio tm's reply priority (`get_prio`): lower wins. 2xx first (never
/// used here: 2xx are relayed at once), then 6xx, 3xx, 4xx with 401, 407,
/// 415, 420 and 484 ahead of the other 4xx, then 5xx.
pub(crate) fn priority(code: u16) -> u32 {
    let xx = u32::from(code % 100);
    match code / 100 {
        2 => xx,
        6 => 1_000 + xx,
        3 => 3_000 + xx,
        4 => {
            4_000
                + match xx {
                    // Replies the UAC can act on (credentials, body type,
                    // extensions, more digits) beat the other 4xx (§16.7).
                    1 | 7 | 15 | 20 | 84 => xx,
                    _ => 100 + xx,
                }
        }
        5 => 5_000 + xx,
        1 => 11_000 + xx,
        0 => 32_000 + xx,
        _ => 10_000 + u32::from(code),
    }
}

/// The best outcome: lowest priority value, the earliest branch on ties
/// (Kamailio `t_pick_branch`).
fn pick_best<'a>(outcomes: impl Iterator<Item = (BranchId, &'a Outcome)>) -> Option<BestReply> {
    let mut best: Option<(u32, BranchId, &Outcome)> = None;
    for (branch, outcome) in outcomes {
        let p = priority(outcome.code);
        if best.as_ref().is_none_or(|(bp, _, _)| p < *bp) {
            best = Some((p, branch, outcome));
        }
    }
    best.map(|(_, branch, outcome)| BestReply {
        branch,
        code: outcome.code,
        reply: outcome.reply.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One case: the branch outcomes in order (code, received?) and the
    /// expected best (branch index, code).
    fn check(outcomes: &[(u16, bool)], want: (u16, u16)) {
        let stored: Vec<Outcome> = outcomes
            .iter()
            .map(|&(code, received)| Outcome {
                code,
                reply: received.then(|| Payload::from(code.to_string().as_bytes())),
            })
            .collect();
        let best = pick_best(
            stored
                .iter()
                .enumerate()
                .map(|(i, o)| (BranchId(i as u16), o)),
        )
        .expect("some outcome");
        assert_eq!((best.branch.0, best.code), want, "outcomes {outcomes:?}");
        assert_eq!(best.reply.is_some(), outcomes[usize::from(want.0)].1);
    }

    #[test]
    fn best_reply_selection() {
        type Case = (&'static [(u16, bool)], (u16, u16));
        let cases: &[Case] = &[
            (&[(486, true)], (0, 486)),
            (&[(486, true), (603, true)], (1, 603)),
            (&[(503, true), (404, true)], (1, 404)),
            (&[(404, true), (302, true)], (1, 302)),
            (&[(480, true), (401, true)], (1, 401)),
            (&[(404, true), (407, true), (401, true)], (2, 401)),
            (&[(484, true), (404, true)], (0, 484)),
            (&[(415, true), (420, true)], (0, 415)),
            (&[(408, false), (486, true)], (0, 408)),
            (&[(486, true), (408, false)], (1, 408)),
            (&[(500, true), (503, true)], (0, 500)),
            (&[(487, false), (487, true)], (0, 487)),
            (&[(600, true), (603, true)], (0, 600)),
            (&[(699, true), (301, true)], (0, 699)),
            (&[(404, true), (404, true)], (0, 404)),
        ];
        for (outcomes, want) in cases {
            check(outcomes, *want);
        }
    }

    #[test]
    fn priority_classes_are_ordered() {
        let ordered = [
            200, 600, 699, 300, 401, 407, 484, 400, 404, 499, 500, 503, 599,
        ];
        for pair in ordered.windows(2) {
            assert!(
                priority(pair[0]) < priority(pair[1]),
                "{} should beat {}",
                pair[0],
                pair[1]
            );
        }
    }
}
