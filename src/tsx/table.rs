//! The transaction table: owns every proxy transaction, matches requests
//! and replies to them (RFC 3261 §17.1.3, §17.2.3), keeps the deadline map
//! behind `next_deadline`, and frees transactions once they terminated.
//!
//! Storage is a slab of generation-checked slots (a freed [`TxId`] never
//! reaches a later transaction), two server indexes (RFC 3261 branch, RFC
//! 2543 Call-ID), one client index (our branch), and a `BTreeSet` of
//! `(deadline, id)` kept exact: each transaction has at most one entry, moved
//! whenever its earliest deadline changes. Pure: no I/O, no clock, no SIP
//! parsing.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use super::proxy::{Ctx, Leg, ProxyTx, Queues};
use super::timers::Timers;
use super::{
    BranchId, CancelOutcome, ClientKey, Event, LegacyKey, Method, Payload, ReplyMatch, RequestKey,
    RequestMatch, Transmit, TsxConfig, TsxError, TxId, ValidTsxConfig,
};

/// All transactions of one proxy. `U` is per-transaction data the caller
/// keeps with it (trace flags, AVPs…); `A` is the caller's notion of a
/// destination (socket and address), handed back on every [`Transmit`].
pub struct Table<U, A> {
    cfg: TsxConfig,
    timers: Timers,
    slots: Vec<Slot<U, A>>,
    free_slots: Vec<u32>,
    live: usize,
    servers: ServerIndex,
    clients: ClientIndex,
    deadlines: BTreeSet<(Instant, TxId)>,
    /// Transactions whose machines all terminated, with the instant they did:
    /// freed at the start of the next `handle_timeout`.
    dead: Vec<(Instant, TxId)>,
    /// Sum of every transaction's `accounted` bytes, moved in `settle` and
    /// `free`.
    retained: usize,
    q: Queues<A>,
}

struct Slot<U, A> {
    generation: u32,
    tx: Option<Box<ProxyTx<U, A>>>,
}

impl<U, A: super::Destination> Table<U, A> {
    pub fn new(cfg: TsxConfig) -> Result<Self, TsxError> {
        Ok(Table::with_config(cfg.validated()?))
    }

    /// A table from settings already validated (at config load): nothing
    /// left to refuse.
    pub(crate) fn with_config(cfg: ValidTsxConfig) -> Self {
        let cfg = cfg.into_inner();
        Table {
            timers: cfg.timers(),
            cfg,
            slots: Vec::new(),
            free_slots: Vec::new(),
            live: 0,
            servers: ServerIndex::default(),
            clients: ClientIndex::default(),
            deadlines: BTreeSet::new(),
            dead: Vec::new(),
            retained: 0,
            q: Queues::new(),
        }
    }

    pub fn config(&self) -> &TsxConfig {
        &self.cfg
    }

    /// Live proxy transactions, including terminated ones not yet freed.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Message bytes the transactions hold (requests, replies and ACKs kept
    /// for retransmission, replies kept as best-reply candidates), a payload
    /// shared within one transaction counted once, one shared between two
    /// transactions counted in each, plus the bytes callers declared they
    /// keep with them ([`Table::create_holding`], [`Table::set_held`]).
    /// Excludes keys, bookkeeping and the output queues the caller drains
    /// every turn. O(1): a running sum updated whenever a transaction
    /// changes. Bounded by the config's `max_bytes`.
    pub fn retained_bytes(&self) -> usize {
        self.retained
    }

    /// [`Table::retained_bytes`] of one transaction, until it is freed.
    pub fn retained_bytes_of(&self, tx: TxId) -> Option<usize> {
        tx_ref(&self.slots, tx).map(|t| t.accounted)
    }

    /// Match a received request against the server transactions; absorb
    /// retransmissions (re-sending the last reply) and ACKs of non-2xx
    /// finals. Call before running the script on any request.
    pub(crate) fn handle_request(&mut self, key: &RequestKey, now: Instant) -> RequestMatch {
        let ack = *key.method() == Method::Ack;
        let Some(id) = self
            .servers
            .find(key, key.method().transaction_method(), ack)
        else {
            return RequestMatch::NoMatch;
        };
        let result = self.with_tx(id, now, |tx, cx| {
            if ack {
                match tx.on_ack(now, cx) {
                    Some(first) => RequestMatch::AckAbsorbed { tx: id, first },
                    None => RequestMatch::NoMatch,
                }
            } else {
                tx.on_request(cx);
                RequestMatch::Retransmission { tx: id }
            }
        });
        result.unwrap_or(RequestMatch::NoMatch)
    }

    /// The live INVITE transaction a CANCEL (given by its own key) cancels:
    /// same branch and sent-by, or the RFC 2543 fields with the INVITE
    /// method (§9.2, §17.2.3).
    pub(crate) fn find_invite(&self, cancel: &RequestKey) -> Option<TxId> {
        self.servers.find(cancel, &Method::Invite, false)
    }

    /// Create a proxy transaction for a request that matched nothing
    /// (`t_newtran`/`t_relay`). `reply_to` is where replies go; `trying`, if
    /// given, is sent at once as a 100 (tm's automatic `100 Trying`).
    pub fn create(
        &mut self,
        key: RequestKey,
        reply_to: A,
        user: U,
        trying: Option<Payload>,
        now: Instant,
    ) -> Result<TxId, TsxError> {
        self.create_holding(key, reply_to, user, 0, trying, now)
    }

    /// [`Table::create`] for a caller that keeps `held` bytes of messages
    /// in `user` (a copy of the request, say) for as long as the
    /// transaction lives, or until [`Table::set_held`]: they count against
    /// `max_bytes` like the table's own.
    pub fn create_holding(
        &mut self,
        key: RequestKey,
        reply_to: A,
        user: U,
        held: usize,
        trying: Option<Payload>,
        now: Instant,
    ) -> Result<TxId, TsxError> {
        let method = key.method();
        if *method == Method::Ack {
            return Err(TsxError::AckCreatesNoTransaction);
        }
        if let Some(existing) = self.servers.find(&key, method, false) {
            return Err(TsxError::Exists(existing));
        }
        if self.live >= self.cfg.max_transactions {
            return Err(TsxError::TableFull {
                max: self.cfg.max_transactions,
            });
        }
        let adds = held + trying.as_ref().map_or(0, |t| t.len());
        self.check_budget(adds)?;
        let slot = match self.free_slots.pop() {
            Some(slot) => slot,
            None => {
                let Ok(slot) = u32::try_from(self.slots.len()) else {
                    return Err(TsxError::TableFull {
                        max: self.cfg.max_transactions,
                    });
                };
                self.slots.push(Slot {
                    generation: 0,
                    tx: None,
                });
                slot
            }
        };
        let entry = &mut self.slots[slot as usize];
        let id = TxId::new(slot, entry.generation);
        self.servers.insert(&key, id);
        let mut tx = Box::new(ProxyTx::new(id, key, reply_to, user, now, &self.cfg));
        tx.server_indexed = true;
        tx.held = held;
        entry.tx = Some(tx);
        self.live += 1;
        if let Some(bytes) = trying {
            // 100 is always accepted by a fresh server transaction.
            self.with_tx(id, now, |tx, cx| tx.send_reply(100, bytes, now, cx))??;
        } else {
            self.settle(id, now);
        }
        Ok(id)
    }

    /// Send a reply through the server transaction: a relayed reply (after
    /// the caller's Via pop) or a local one. A final reply to an INVITE
    /// cancels the branches still pending (RFC 3261 §16.7 step 10).
    pub(crate) fn send_reply(
        &mut self,
        tx: TxId,
        code: u16,
        bytes: Payload,
        now: Instant,
    ) -> Result<(), TsxError> {
        self.with_tx(tx, now, |t, cx| t.send_reply(code, bytes, now, cx))?
    }

    /// Forward the request on a new branch: `key` carries the Via branch this
    /// proxy generated, `dest` where to send, `request` the bytes to send
    /// (queued at once as a first transmission).
    pub(crate) fn add_branch(
        &mut self,
        tx: TxId,
        key: ClientKey,
        dest: A,
        request: Payload,
        now: Instant,
    ) -> Result<BranchId, TsxError> {
        if self.clients.find(&key).is_some() {
            return Err(TsxError::DuplicateBranch(key.branch));
        }
        self.check_budget(request.len())?;
        self.with_tx(tx, now, |t, cx| t.add_branch(key, dest, request, now, cx))?
    }

    /// The caller now keeps `held` bytes with `tx` (it dropped its copy of
    /// the request, say). Never refused: it is how memory is given back.
    pub(crate) fn set_held(&mut self, tx: TxId, held: usize) {
        if let Some(t) = tx_mut(&mut self.slots, tx) {
            // `accounted` included the old value: move both sums by the
            // difference, as `settle` would.
            self.retained = self.retained - t.held + held;
            t.accounted = t.accounted - t.held + held;
            t.held = held;
        }
    }

    /// Would `adds` more bytes pass `max_bytes`?
    fn check_budget(&self, adds: usize) -> Result<(), TsxError> {
        if self.retained.saturating_add(adds) > self.cfg.max_bytes {
            return Err(TsxError::OverBudget {
                max: self.cfg.max_bytes,
            });
        }
        Ok(())
    }

    /// Match a received reply (`key`: top Via branch and CSeq method). The
    /// result says whether to relay it; side effects (ACK, CANCEL request,
    /// all-branches-failed) are queued. `make_ack` builds the hop-by-hop ACK
    /// for a first 300–699 final to an INVITE from the branch's request
    /// bytes (the reply's To header comes from the caller's own capture); it
    /// is not called otherwise.
    pub(crate) fn handle_reply<F>(
        &mut self,
        key: &ClientKey,
        code: u16,
        bytes: Payload,
        now: Instant,
        make_ack: F,
    ) -> ReplyMatch
    where
        F: FnOnce(&[u8]) -> Payload,
    {
        if !(100..=699).contains(&code) {
            return ReplyMatch::InvalidStatus;
        }
        let Some((id, leg)) = self.clients.find(key) else {
            return ReplyMatch::NoMatch;
        };
        match self.with_tx(id, now, |tx, cx| {
            tx.on_reply(leg, code, bytes, now, cx, make_ack)
        }) {
            Ok(Some(matched)) => ReplyMatch::Matched(matched),
            Ok(None) | Err(_) => ReplyMatch::NoMatch,
        }
    }

    /// Send the CANCEL the caller built after [`Event::CancelBranch`].
    /// `Ok(false)` when it is not (or not yet) due: a final reply came in
    /// meanwhile, it was already sent, or the branch is not an INVITE.
    pub(crate) fn send_cancel(
        &mut self,
        tx: TxId,
        branch: BranchId,
        bytes: Payload,
        now: Instant,
    ) -> Result<bool, TsxError> {
        self.with_tx(tx, now, |t, cx| t.send_cancel(branch, bytes, now, cx))?
    }

    /// Apply an incoming CANCEL to the INVITE transaction `tx` (found with
    /// [`Table::find_invite`]). The CANCEL's own transaction and its 200 are
    /// the caller's `create` + `send_reply`.
    pub fn cancel(&mut self, tx: TxId, now: Instant) -> Result<CancelOutcome, TsxError> {
        self.with_tx(tx, now, |t, cx| t.cancel(now, cx))
    }

    /// Fire every timer due at `now`, and free the transactions that
    /// terminated before this call.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        for (_, id) in std::mem::take(&mut self.dead) {
            self.free(id);
        }
        let due: Vec<(Instant, TxId)> =
            self.deadlines.range(..=(now, TxId::MAX)).copied().collect();
        for (at, id) in due {
            self.deadlines.remove(&(at, id));
            let Table {
                slots,
                cfg,
                timers,
                q,
                ..
            } = self;
            if let Some(tx) = tx_mut(slots, id) {
                tx.scheduled = None;
                let mut cx = Ctx {
                    cfg,
                    timers: *timers,
                    q,
                };
                tx.on_timeout(now, &mut cx);
            }
            self.settle(id, now);
        }
    }

    /// When `handle_timeout` must next be called: the earliest timer of any
    /// transaction, or the instant a transaction terminated if one awaits
    /// freeing. `None` when the table is idle.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let timer = self.deadlines.first().map(|&(at, _)| at);
        let reap = self.dead.first().map(|&(at, _)| at);
        match (timer, reap) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub(crate) fn poll_transmit(&mut self) -> Option<Transmit<A>> {
        self.q.transmits.pop_front()
    }

    pub(crate) fn poll_event(&mut self) -> Option<Event<A>> {
        self.q.events.pop_front()
    }

    /// The caller's data for a transaction, until it is freed.
    pub fn user(&self, tx: TxId) -> Option<&U> {
        tx_ref(&self.slots, tx).map(|t| &t.user)
    }

    pub(crate) fn user_mut(&mut self, tx: TxId) -> Option<&mut U> {
        tx_mut(&mut self.slots, tx).map(|t| &mut t.user)
    }

    /// Whether an incoming CANCEL was applied (`t_is_canceled`).
    pub(crate) fn is_cancelled(&self, tx: TxId) -> bool {
        tx_ref(&self.slots, tx).is_some_and(|t| t.is_cancelled())
    }

    /// The final status sent upstream, if any.
    pub(crate) fn final_reply(&self, tx: TxId) -> Option<u16> {
        tx_ref(&self.slots, tx).and_then(|t| t.final_code())
    }

    /// Run `f` on a live (not yet terminated) transaction, then bring the
    /// indexes and the deadline map up to date.
    fn with_tx<R>(
        &mut self,
        id: TxId,
        now: Instant,
        f: impl FnOnce(&mut ProxyTx<U, A>, &mut Ctx<'_, A>) -> R,
    ) -> Result<R, TsxError> {
        let Table {
            slots,
            cfg,
            timers,
            q,
            ..
        } = self;
        let tx = tx_mut(slots, id)
            .filter(|t| !t.dead)
            .ok_or(TsxError::UnknownTransaction(id))?;
        let mut cx = Ctx {
            cfg,
            timers: *timers,
            q,
        };
        let result = f(tx, &mut cx);
        self.settle(id, now);
        Ok(result)
    }

    /// Drop index entries of terminated machines, add entries for new ones,
    /// move the transaction's deadline entry, recount its bytes, and queue it
    /// for freeing once everything in it terminated. Every operation on a
    /// transaction ends here, so the byte count never misses a change.
    fn settle(&mut self, id: TxId, now: Instant) {
        let Table {
            slots,
            servers,
            clients,
            deadlines,
            dead,
            retained,
            ..
        } = self;
        let Some(tx) = tx_mut(slots, id) else {
            return;
        };
        let bytes = tx.retained_bytes();
        *retained = *retained - tx.accounted + bytes;
        tx.accounted = bytes;
        if tx.server_indexed && tx.server_terminated() {
            servers.remove(&tx.key, id);
            tx.server_indexed = false;
        }
        for (i, b) in tx.branches.iter_mut().enumerate() {
            let branch = BranchId(i as u16);
            let want = !b.machine.is_terminated();
            if want != b.indexed {
                clients.set(&b.key.branch, &b.key.method, id, Leg::Branch(branch), want);
                b.indexed = want;
            }
            let want = b
                .cancel_machine
                .as_ref()
                .is_some_and(|m| !m.is_terminated());
            if want != b.cancel_indexed {
                clients.set(
                    &b.key.branch,
                    &Method::Cancel,
                    id,
                    Leg::Cancel(branch),
                    want,
                );
                b.cancel_indexed = want;
            }
        }
        let next = if tx.is_finished() {
            if !tx.dead {
                tx.dead = true;
                dead.push((now, id));
            }
            None
        } else {
            tx.deadline()
        };
        if next != tx.scheduled {
            if let Some(old) = tx.scheduled {
                deadlines.remove(&(old, id));
            }
            if let Some(at) = next {
                deadlines.insert((at, id));
            }
            tx.scheduled = next;
        }
    }

    fn free(&mut self, id: TxId) {
        let Some(slot) = self.slots.get_mut(id.slot()) else {
            return;
        };
        if slot.generation != id.generation() {
            return;
        }
        let Some(tx) = slot.tx.take() else {
            return;
        };
        slot.generation = slot.generation.wrapping_add(1);
        // Settled transactions have no entries left; this only guards the
        // invariant.
        if tx.server_indexed {
            self.servers.remove(&tx.key, id);
        }
        for (i, b) in tx.branches.iter().enumerate() {
            let branch = BranchId(i as u16);
            if b.indexed {
                self.clients
                    .set(&b.key.branch, &b.key.method, id, Leg::Branch(branch), false);
            }
            if b.cancel_indexed {
                self.clients.set(
                    &b.key.branch,
                    &Method::Cancel,
                    id,
                    Leg::Cancel(branch),
                    false,
                );
            }
        }
        if let Some(at) = tx.scheduled {
            self.deadlines.remove(&(at, id));
        }
        self.free_slots.push(id.slot() as u32);
        self.live -= 1;
        self.retained -= tx.accounted;
        self.q.events.push_back(Event::Freed { tx: id });
    }
}

fn tx_ref<U, A>(slots: &[Slot<U, A>], id: TxId) -> Option<&ProxyTx<U, A>> {
    let slot = slots.get(id.slot())?;
    if slot.generation != id.generation() {
        return None;
    }
    slot.tx.as_deref()
}

fn tx_mut<U, A>(slots: &mut [Slot<U, A>], id: TxId) -> Option<&mut ProxyTx<U, A>> {
    let slot = slots.get_mut(id.slot())?;
    if slot.generation != id.generation() {
        return None;
    }
    slot.tx.as_deref_mut()
}

/// Server transactions by RFC 3261 branch, and by Call-ID for RFC 2543
/// requests. A branch or Call-ID maps to a handful of transactions at most
/// (an INVITE and its CANCEL), scanned linearly.
#[derive(Default)]
struct ServerIndex {
    by_branch: HashMap<String, Vec<(String, Method, TxId)>>,
    by_call_id: HashMap<String, Vec<(LegacyKey, TxId)>>,
}

impl ServerIndex {
    fn insert(&mut self, key: &RequestKey, tx: TxId) {
        match key {
            RequestKey::Rfc3261(k) => {
                self.by_branch.entry(k.branch.clone()).or_default().push((
                    k.sent_by.clone(),
                    k.method.clone(),
                    tx,
                ));
            }
            RequestKey::Rfc2543(k) => {
                self.by_call_id
                    .entry(k.call_id.clone())
                    .or_default()
                    .push((k.clone(), tx));
            }
        }
    }

    fn remove(&mut self, key: &RequestKey, tx: TxId) {
        match key {
            RequestKey::Rfc3261(k) => {
                if let Some(list) = self.by_branch.get_mut(k.branch.as_str()) {
                    list.retain(|e| e.2 != tx);
                    if list.is_empty() {
                        self.by_branch.remove(k.branch.as_str());
                    }
                }
            }
            RequestKey::Rfc2543(k) => {
                if let Some(list) = self.by_call_id.get_mut(k.call_id.as_str()) {
                    list.retain(|e| e.1 != tx);
                    if list.is_empty() {
                        self.by_call_id.remove(k.call_id.as_str());
                    }
                }
            }
        }
    }

    /// The transaction created by a `method` request that `key` matches.
    /// `ignore_to_tag` is for ACKs under RFC 2543 rules (see [`LegacyKey`]).
    fn find(&self, key: &RequestKey, method: &Method, ignore_to_tag: bool) -> Option<TxId> {
        match key {
            RequestKey::Rfc3261(k) => self
                .by_branch
                .get(k.branch.as_str())?
                .iter()
                .find(|(sent_by, m, _)| *sent_by == k.sent_by && m == method)
                .map(|e| e.2),
            RequestKey::Rfc2543(k) => self
                .by_call_id
                .get(k.call_id.as_str())?
                .iter()
                .find(|(stored, _)| {
                    stored.method == *method
                        && stored.request_uri == k.request_uri
                        && stored.from_tag == k.from_tag
                        && stored.cseq_num == k.cseq_num
                        && stored.top_via == k.top_via
                        && (ignore_to_tag || stored.to_tag == k.to_tag)
                })
                .map(|e| e.1),
        }
    }
}

/// Client transactions by the Via branch this proxy generated, then method
/// (a branch's request and its CANCEL share the branch, §9.1).
#[derive(Default)]
struct ClientIndex {
    by_branch: HashMap<String, Vec<(Method, TxId, Leg)>>,
}

impl ClientIndex {
    fn find(&self, key: &ClientKey) -> Option<(TxId, Leg)> {
        self.by_branch
            .get(key.branch.as_str())?
            .iter()
            .find(|(m, _, _)| *m == key.method)
            .map(|&(_, tx, leg)| (tx, leg))
    }

    fn set(&mut self, branch: &str, method: &Method, tx: TxId, leg: Leg, present: bool) {
        if present {
            self.by_branch
                .entry(branch.to_owned())
                .or_default()
                .push((method.clone(), tx, leg));
        } else if let Some(list) = self.by_branch.get_mut(branch) {
            list.retain(|&(_, t, l)| !(t == tx && l == leg));
            if list.is_empty() {
                self.by_branch.remove(branch);
            }
        }
    }
}

#[cfg(test)]
mod tests;
