//! SIP transactions for a stateful proxy over UDP: RFC 3261 §17 state
//! machines, Kamailio tm's proxy timers and the pairing of one server
//! transaction with its client branches (RFC 3261 §16).
//!
//! Pure and clock-free, in the quinn-proto style: every input is a
//! `handle_*`/command call given `now`; outputs are polled
//! ([`Table::poll_transmit`], [`Table::poll_event`]); the reactor sleeps until
//! [`Table::next_deadline`] and then calls [`Table::handle_timeout`]. This
//! module depends on std only: it never parses SIP (the caller hands in
//! [`RequestKey`]/[`ClientKey`], status codes and opaque bytes), never builds
//! a message (the caller builds 100/408/487/200-for-CANCEL replies, ACKs and
//! CANCELs), never touches a socket and never reads a clock.
//!
//! # Lifecycle
//!
//! **What enters.**
//! - A request: [`Table::handle_request`] first. A retransmission or an ACK
//!   for a non-2xx final is absorbed here (the last reply is re-sent, the
//!   ACK is reported); otherwise [`RequestMatch::NoMatch`] and the script
//!   runs. `t_relay`/`t_newtran` then call [`Table::create`] (optionally
//!   sending `100 Trying`), [`Table::add_branch`] per destination, and
//!   [`Table::send_reply`] for local replies. A CANCEL finds its INVITE with
//!   [`Table::find_invite`], gets its own transaction (create + a 200 through
//!   `send_reply`) and calls [`Table::cancel`] on the INVITE.
//! - A reply: [`Table::handle_reply`] returns [`ReplyMatch`] with a
//!   [`Disposition`]: relay it now (1xx except 100, every 2xx), keep it as a
//!   best-reply candidate, or only trace it (100s, retransmissions, replies
//!   to our CANCEL). Every matched reply is reported, so every one can be
//!   traced (`TMCB_RESPONSE_IN`, docs/kamailio.md §7.1). Relaying is the
//!   caller's `send_reply` after its onreply_route and Via pop.
//! - Time: [`Table::handle_timeout`] whenever `next_deadline` is reached.
//!
//! **What comes out.** [`Transmit`]s (request, ACK, CANCEL or reply bytes,
//! with the caller's destination and a `retransmission` flag so the caller
//! traces only first transmissions, `TMCB_REQUEST_SENT`/`RESPONSE_SENT`) and
//! [`Event`]s: a branch timed out, a branch must be cancelled (the caller
//! builds the CANCEL from the branch's request and calls
//! [`Table::send_cancel`]), all branches failed (run failure_route, then
//! `add_branch` or `send_reply` the best reply, or a generated 408/487 when
//! the best is local), no ACK came, the lifetime cap expired, the
//! transaction was freed.
//!
//! **When state is freed.** Each RFC machine leaves the matching indexes the
//! moment it terminates (timers D, H, I, J, K, L, M, F, the §9.1 CANCEL
//! wait). A proxy transaction whose server and client machines have all
//! terminated is freed, with its user data, by the *next*
//! [`Table::handle_timeout`] call (`next_deadline` then returns the instant
//! it terminated), so the caller can still read [`Table::user`] while it
//! handles the outputs of the call that terminated it. Nothing lives longer
//! than the transaction lifetime cap (`max_inv_lifetime`,
//! `max_noninv_lifetime`) plus at most 64·T1 (Timer H waiting for an ACK,
//! or the grace for a transaction the caller never answers) and the wait
//! after completion (`wt_timer`); [`Table::len`] returns to 0 once all
//! traffic has been answered and the timers have run.
//!
//! **What a finished transaction keeps.** Only what a late message can ask
//! for: its matching keys, the server's last reply while a retransmitted
//! request gets it again (non-INVITE Completed, INVITE Completed until the
//! ACK; nothing once Accepted or Confirmed, which re-send nothing), and the
//! hop-by-hop ACK of a branch's non-2xx final (re-sent to a retransmitted
//! final). A branch's request goes with its first final reply (the CANCEL,
//! the ACK and Timer A/E were its only users); received provisionals and 2xx
//! are remembered as fingerprints only; a stored best-reply candidate goes
//! once a final was sent upstream. [`Table::retained_bytes`] sums what is
//! held.
//!
//! # Choices
//! - Kamailio tm's `wt_timer` (default 5 s) caps every wait after a
//!   transaction completed: timers D, I, J, K, L, M and a branch's linger
//!   after giving up last min(RFC value, `wt_timer`) (`Timers::wait`, the one
//!   place of the rule); the live phases (A, B, E, F, G, H, tm's fr timers)
//!   keep their values. Why: Kamailio's tm frees a transaction `wt_timer`
//!   after its final reply, and siptraced runs Kamailio's configs; and the
//!   RFC's 32 s (64·T1) per transaction, two transactions per call (INVITE,
//!   BYE), would keep ~128 000 finished transactions at 2000 calls/s where
//!   5 s keeps ~20 000. What a late message meets after `wt_timer`, as in
//!   Kamailio: a retransmitted request matches nothing
//!   ([`RequestMatch::NoMatch`]) and runs the script again as a new request
//!   (a late INVITE or BYE is forwarded again; the next hop answers it as a
//!   merged request or for a dialog that has ended, e.g. 482 or 481); a late
//!   reply matches no branch ([`ReplyMatch::NoMatch`]): a 2xx retransmission
//!   is relayed by the core's stateless path (onreply_route, Via pop), so
//!   the caller still gets it, but a late non-2xx final is no longer ACKed
//!   by us and a late provisional on a given-up branch gets no CANCEL. A
//!   retransmission within `wt_timer` is absorbed as the RFC wants; peers
//!   retransmit at most every T2 (4 s), so one lost reply is still answered.
//! - RFC 6026's Accepted state on both INVITE machines (timers L and M):
//!   after a 2xx the transactions stay (min(64·T1, `wt_timer`)), absorbing
//!   INVITE retransmissions and relaying every 2xx, as Kamailio's tm does,
//!   instead of RFC 3261's immediate Terminated. A 2xx ACK never matches: it
//!   is a request of its own, forwarded by the script.
//! - A reply is a "retransmission" when it repeats the last provisional (or
//!   2xx) byte for byte, or is any final after a non-2xx final.
//! - Best reply among the current set of branches as Kamailio's
//!   `t_pick_branch` with `failure_reply_mode=3`: 6xx, then 3xx, 4xx (401,
//!   407, 415, 420, 484 first), 5xx; lowest code within a class; earliest
//!   branch on ties; locally generated 408/487 compete like received replies
//!   (`faked_reply_prio=0`). Branches added from failure_route start a new
//!   set. Mapping a relayed 503 to 500 (§16.7 step 6) is left to the caller.
//! - The RFC 2543 ACK match ignores the To tag (the RFC compares it with the
//!   tag of the reply sent, which needs parsing); all other fields match.
//! - Timer D is 32 s (UDP) before the `wt_timer` cap; T1/T2/T4 are
//!   configurable.
//! - A branch that gives up (Timer B, `fr_timer`, `fr_inv_timer`, a CANCEL)
//!   keeps its INVITE client machine for 64·T1, capped by `wt_timer`, without
//!   retransmitting, so a late provisional still gets its CANCEL (§9.1) and a
//!   late final its ACK.
//!   A branch ending without a final counts as a local 408, or 487 once the
//!   transaction was cancelled.
//! - Kamailio tm's `max_inv_lifetime`/`max_noninv_lifetime` bound every
//!   transaction that sent no final reply: pending branches time out at the
//!   cap, and 64·T1 later a still unanswered transaction is dropped
//!   ([`Event::Expired`]).
//! - `now` must not go backwards from one call to the next.

mod client_invite;
mod client_non_invite;
mod key;
mod proxy;
mod server_invite;
mod server_non_invite;
mod table;
#[cfg(test)]
mod testutil;
mod timers;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use key::{ClientKey, LegacyKey, MAGIC_COOKIE, Method, RequestKey, ServerKey};
pub use table::Table;
pub use timers::{
    DEFAULT_FR_INV_TIMER, DEFAULT_FR_TIMER, DEFAULT_MAX_INV_LIFETIME, DEFAULT_MAX_NONINV_LIFETIME,
    DEFAULT_T1, DEFAULT_T2, DEFAULT_T4, DEFAULT_WT_TIMER, TimerKind,
};

/// Where a transaction sends (its caller's address type): the table asks
/// only whether its transport is reliable, which turns timers A, E, G off
/// and D, I, J, K to 0 for the machines that send there (timers.rs).
pub trait Destination: Clone {
    fn reliable(&self) -> bool {
        false
    }
}

#[cfg(test)]
impl Destination for &'static str {}

/// Message bytes, shared between the table (for retransmission) and the
/// outputs it hands back without copying.
pub type Payload = Arc<[u8]>;

/// Default bound on transactions in the table, finished ones included. A call
/// makes two (INVITE, BYE), each staying its setup time plus `wt_timer`, so
/// at R calls/s the table holds about R·(INVITE setup + BYE round trip +
/// 2·`wt_timer`): 2000 calls/s with a 1 s setup keep ~22 000 (the load test
/// in table/tests/capacity.rs), with a 10 s average ringing time ~40 000.
/// 100 000 leaves 2.5× headroom over the latter, i.e. an average setup up to
/// 40 s at 2000 calls/s. Memory is bounded by bytes, not by this count: a
/// live INVITE transaction holds its request and last reply (~1–2 KB for a
/// typical call) plus ~1 KB of bookkeeping, a finished one the bookkeeping
/// and at most a reply and an ACK.
pub(crate) const DEFAULT_MAX_TRANSACTIONS: usize = 100_000;

/// Default bound on the message bytes the table holds (tm `max_tsx_bytes`,
/// docs/decisions.md §7): 256 MiB, about 100 000 live calls of ~2.5 KB, the
/// default `max_transactions` at typical message sizes. It is what keeps
/// memory flat when requests are large: 100 000 INVITEs of 60 KB would
/// otherwise hold 18 GB (each counted three times, see
/// [`Table::create_holding`]).
pub(crate) const DEFAULT_MAX_TSX_BYTES: usize = 256 << 20;

/// Upper bound for every configured duration: keeps `now + timer` (and
/// 64·T1) far from `Instant` overflow. Kamailio's tm timers are u32
/// milliseconds, and no sane SIP timer comes near a day. Public so that
/// config.rs refuses larger modparams at load, with their position.
pub(crate) const MAX_TIMER: Duration = Duration::from_secs(86_400);

/// Default bound on branches per transaction: Kamailio's `MAX_BRANCHES` (12).
pub(crate) const DEFAULT_MAX_BRANCHES: usize = 12;

/// Everything configurable about the transaction layer. The project's
/// config.rs fills it from modparams; the defaults are Kamailio tm's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TsxConfig {
    /// RFC 3261 T1 (RTT estimate).
    pub t1: Duration,
    /// RFC 3261 T2 (retransmission interval cap).
    pub t2: Duration,
    /// RFC 3261 T4 (message lifetime in the network).
    pub t4: Duration,
    /// tm `fr_timer`: wait for any reply on a branch.
    pub fr_timer: Duration,
    /// tm `fr_inv_timer`: wait for a final reply on an INVITE branch once a
    /// provisional arrived.
    pub fr_inv_timer: Duration,
    /// tm `restart_fr_on_each_reply` (default on): restart `fr_inv_timer` on
    /// every provisional; off, only when the code rises to 180 or above.
    pub restart_fr_on_each_reply: bool,
    /// tm `max_inv_lifetime`: longest wait for an INVITE's final reply.
    pub max_inv_lifetime: Duration,
    /// tm `max_noninv_lifetime`: the same for other methods.
    pub max_noninv_lifetime: Duration,
    /// tm `wt_timer`: the longest a transaction stays after it completed,
    /// absorbing retransmissions; caps timers D, I, J, K, L, M and a
    /// branch's linger after giving up (see Choices above).
    pub wt_timer: Duration,
    /// Bound on proxy transactions, finished ones still absorbing
    /// retransmissions included; [`Table::create`] fails beyond it.
    pub max_transactions: usize,
    /// Bound on branches per proxy transaction.
    pub max_branches: usize,
    /// Bound on [`Table::retained_bytes`]: [`Table::create_holding`] and
    /// [`Table::add_branch`] fail when what they add would pass it.
    pub max_bytes: usize,
}

impl Default for TsxConfig {
    fn default() -> Self {
        TsxConfig {
            t1: DEFAULT_T1,
            t2: DEFAULT_T2,
            t4: DEFAULT_T4,
            fr_timer: DEFAULT_FR_TIMER,
            fr_inv_timer: DEFAULT_FR_INV_TIMER,
            restart_fr_on_each_reply: true,
            max_inv_lifetime: DEFAULT_MAX_INV_LIFETIME,
            max_noninv_lifetime: DEFAULT_MAX_NONINV_LIFETIME,
            wt_timer: DEFAULT_WT_TIMER,
            max_transactions: DEFAULT_MAX_TRANSACTIONS,
            max_branches: DEFAULT_MAX_BRANCHES,
            max_bytes: DEFAULT_MAX_TSX_BYTES,
        }
    }
}

impl TsxConfig {
    /// Check the values make a working table: every timer positive (a zero
    /// interval would make the reactor spin), T2 ≥ T1, bounds non-zero.
    pub(crate) fn validate(&self) -> Result<(), TsxError> {
        let positive = [
            ("t1", self.t1),
            ("t2", self.t2),
            ("t4", self.t4),
            ("fr_timer", self.fr_timer),
            ("fr_inv_timer", self.fr_inv_timer),
            ("max_inv_lifetime", self.max_inv_lifetime),
            ("max_noninv_lifetime", self.max_noninv_lifetime),
            ("wt_timer", self.wt_timer),
        ];
        for (name, value) in positive {
            if value.is_zero() {
                return Err(TsxError::InvalidConfig {
                    field: name,
                    reason: "must be greater than 0",
                });
            }
            if value > MAX_TIMER {
                return Err(TsxError::InvalidConfig {
                    field: name,
                    reason: "must be at most one day (86400000 ms)",
                });
            }
        }
        if self.t2 < self.t1 {
            return Err(TsxError::InvalidConfig {
                field: "t2",
                reason: "must not be smaller than t1",
            });
        }
        if self.max_transactions == 0 || self.max_transactions > u32::MAX as usize {
            return Err(TsxError::InvalidConfig {
                field: "max_transactions",
                reason: "must be between 1 and 4294967295",
            });
        }
        if self.max_bytes == 0 {
            return Err(TsxError::InvalidConfig {
                field: "max_tsx_bytes",
                reason: "must be greater than 0",
            });
        }
        if self.max_branches == 0 || self.max_branches > u16::MAX as usize {
            return Err(TsxError::InvalidConfig {
                field: "max_branches",
                reason: "must be between 1 and 65535",
            });
        }
        Ok(())
    }

    /// The proof that [`TsxConfig::validate`] passed: a table built from
    /// it cannot be refused, so its user has no error (or default) to fall
    /// back on.
    pub(crate) fn validated(self) -> Result<ValidTsxConfig, TsxError> {
        self.validate()?;
        Ok(ValidTsxConfig(self))
    }

    pub(crate) fn timers(&self) -> timers::Timers {
        timers::Timers {
            t1: self.t1,
            t2: self.t2,
            t4: self.t4,
            wt: self.wt_timer,
            reliable: false,
        }
    }
}

/// A [`TsxConfig`] that passed [`TsxConfig::validate`]; made only by
/// [`TsxConfig::validated`] and as the default (Kamailio tm's, which the
/// tests check validate).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ValidTsxConfig(TsxConfig);

impl std::ops::Deref for ValidTsxConfig {
    type Target = TsxConfig;
    fn deref(&self) -> &TsxConfig {
        &self.0
    }
}

impl ValidTsxConfig {
    pub fn into_inner(self) -> TsxConfig {
        self.0
    }
}

/// Identifies a proxy transaction (server transaction plus branches) while it
/// lives; a freed id never matches a later transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TxId {
    slot: u32,
    generation: u32,
}

impl TxId {
    /// Greatest id, for range bounds on (deadline, id) keys.
    pub(crate) const MAX: TxId = TxId {
        slot: u32::MAX,
        generation: u32::MAX,
    };

    pub(crate) fn new(slot: u32, generation: u32) -> TxId {
        TxId { slot, generation }
    }

    pub(crate) fn slot(self) -> usize {
        self.slot as usize
    }

    pub(crate) fn generation(self) -> u32 {
        self.generation
    }
}

impl fmt::Display for TxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tx#{}.{}", self.slot, self.generation)
    }
}

/// Index of a branch within its proxy transaction, in creation order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BranchId(pub u16);

/// Bytes to put on the wire.
#[derive(Clone, Debug, PartialEq)]
pub struct Transmit<A> {
    pub tx: TxId,
    /// The destination the caller attached: the branch's for requests, ACKs
    /// and CANCELs, the transaction's reply address for replies.
    pub to: A,
    pub bytes: Payload,
    pub what: Sent,
    /// A retransmission made by the transaction layer itself (timers A, E, G,
    /// a re-sent reply or ACK on absorbed retransmissions). Kamailio's
    /// REQUEST_SENT/RESPONSE_SENT trace hooks skip these.
    pub retransmission: bool,
}

/// What a [`Transmit`] carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    /// The request forwarded on a branch.
    Request { branch: BranchId },
    /// The hop-by-hop ACK for a branch's 300–699 final reply.
    Ack { branch: BranchId },
    /// The CANCEL of a branch.
    Cancel { branch: BranchId },
    /// A reply through the server transaction (relayed or local).
    Reply { code: u16 },
}

/// Things the caller must know or act on, in the order they happened.
#[derive(Clone, Debug, PartialEq)]
pub enum Event<A> {
    /// A branch got no (final) reply in time. It now counts as a locally
    /// generated 408 (487 if the transaction was cancelled) for best-reply
    /// selection; a late final on it is ACKed and only traced.
    Timeout {
        tx: TxId,
        branch: BranchId,
        timer: TimerKind,
    },
    /// Cancel this INVITE branch: build a CANCEL from `request` (same
    /// Request-URI, Call-ID, From, To, CSeq number, top Via and Route, RFC
    /// 3261 §9.1) and hand it to [`Table::send_cancel`]. Emitted only once
    /// the branch has had a provisional reply (§9.1).
    CancelBranch {
        tx: TxId,
        branch: BranchId,
        request: Payload,
        to: A,
    },
    /// Every branch of the current set has a final non-2xx outcome and no
    /// final reply was sent: run failure_route, then either add branches or
    /// send a final reply (the best one, `best.reply`, after the Via pop; or,
    /// when `best.reply` is `None`, a locally built reply with `best.code`).
    /// Until one of those happens the transaction waits, bounded by the
    /// lifetime cap.
    AllBranchesFailed { tx: TxId, best: BestReply },
    /// The CANCEL sent on a branch got no final reply (Timer F).
    CancelTimeout { tx: TxId, branch: BranchId },
    /// Timer H: the ACK for a non-2xx final reply never came.
    NoAck { tx: TxId },
    /// The lifetime cap ran out with no final reply sent; the transaction
    /// was dropped without answering.
    Expired { tx: TxId },
    /// The transaction and its user data are gone; its id is dead.
    Freed { tx: TxId },
}

/// The reply to forward upstream when all branches failed.
#[derive(Clone, Debug, PartialEq)]
pub struct BestReply {
    pub branch: BranchId,
    pub code: u16,
    /// The received reply, or `None` when the outcome was generated locally
    /// (408 after a timeout, 487 for a branch cancelled before any reply).
    pub reply: Option<Payload>,
}

/// The result of [`Table::handle_request`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestMatch {
    /// No transaction: a new request, an ACK for a 2xx, or a CANCEL not seen
    /// before. Run the script.
    NoMatch,
    /// A retransmission, absorbed; the last reply (if any) was queued again.
    Retransmission { tx: TxId },
    /// An ACK for a non-2xx final reply, absorbed (`first` is false for ACK
    /// retransmissions). Kamailio traces it as ACK_NEG_IN.
    AckAbsorbed { tx: TxId, first: bool },
}

/// The result of [`Table::handle_reply`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyMatch {
    /// No client transaction: the caller forwards it statelessly (RFC 3261
    /// §16.7) or drops it.
    NoMatch,
    /// The status code is outside 100–699; dropped.
    InvalidStatus,
    Matched(MatchedReply),
}

/// A reply that matched a branch (or the CANCEL of a branch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatchedReply {
    pub tx: TxId,
    pub branch: BranchId,
    /// The reply answers the CANCEL this proxy sent on the branch.
    pub to_cancel: bool,
    pub code: u16,
    /// See the module doc for what counts as a retransmission.
    pub retransmission: bool,
    pub disposition: Disposition,
}

/// What the caller does with a matched reply, beyond tracing it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Run onreply_route and relay it now with [`Table::send_reply`].
    Relay,
    /// A final non-2xx kept as a best-reply candidate; run onreply_route but
    /// do not relay. If it completed the branch set, an
    /// [`Event::AllBranchesFailed`] is queued.
    Stored,
    /// Trace only: a 100, a retransmission the machine absorbed, a reply
    /// after the transaction's final, or a reply to our CANCEL.
    Absorbed,
}

/// The result of [`Table::cancel`] (an incoming CANCEL for an INVITE).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelOutcome {
    /// Branches are being cancelled; the final reply (a relayed or a local
    /// 487, usually) comes through the normal events. `awaiting` counts the
    /// branches whose final reply (the 487) is still to come; branches that
    /// had no provisional yet count as a local 487 at once.
    Cancelling { awaiting: usize },
    /// The INVITE has no branch awaiting a reply (none forwarded yet): the
    /// caller should reply 487 itself (RFC 3261 §9.2).
    NothingPending,
    /// A final reply was already sent: the CANCEL has no effect.
    AlreadyFinal,
    /// A CANCEL was already applied.
    AlreadyCancelled,
    /// Not an INVITE transaction: CANCEL has no effect (RFC 3261 §9.2).
    NotInvite,
}

/// A reply remembered only to tell a retransmission (the same bytes again)
/// from a new reply, without keeping a copy of it: its length and a 64-bit
/// SipHash. A collision could only mark a new reply as a retransmission in
/// [`MatchedReply::retransmission`]; what is relayed does not depend on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fingerprint {
    len: usize,
    hash: u64,
}

impl Fingerprint {
    pub(crate) fn of(bytes: &[u8]) -> Fingerprint {
        use std::hash::Hasher;
        // Fixed keys: the same bytes must give the same value in every
        // transaction; nothing here needs protection from chosen input.
        let mut h = std::hash::DefaultHasher::new();
        h.write(bytes);
        Fingerprint {
            len: bytes.len(),
            hash: h.finish(),
        }
    }
}

/// What a client machine made of a reply.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Received {
    pub(crate) retransmission: bool,
    /// RFC semantics: the machine passes the reply to its user (the proxy);
    /// false for absorbed retransmissions and strays.
    pub(crate) passed_up: bool,
    /// The hop-by-hop ACK to send, and whether it is a re-send.
    pub(crate) ack: Option<(Payload, bool)>,
}

impl Received {
    pub(crate) fn passed(retransmission: bool) -> Received {
        Received {
            retransmission,
            passed_up: true,
            ack: None,
        }
    }

    /// A reply the state does not expect (a provisional after a final…).
    pub(crate) fn stray() -> Received {
        Received {
            retransmission: false,
            passed_up: false,
            ack: None,
        }
    }
}

/// Misuse of the table by the caller, or a full table. Input from the
/// network never produces these: unknown or odd messages are
/// [`RequestMatch::NoMatch`] / [`ReplyMatch::NoMatch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TsxError {
    InvalidConfig {
        field: &'static str,
        reason: &'static str,
    },
    TableFull {
        max: usize,
    },
    TooManyBranches {
        max: usize,
    },
    /// The message bytes held would pass `max_bytes`.
    OverBudget {
        max: usize,
    },
    UnknownTransaction(TxId),
    UnknownBranch {
        tx: TxId,
        branch: BranchId,
    },
    /// `create` for a request that matches a live transaction.
    Exists(TxId),
    /// `create` for an ACK.
    AckCreatesNoTransaction,
    /// `add_branch` with a (branch, method) already in use.
    DuplicateBranch(String),
    /// `add_branch` with a method other than the transaction's.
    MethodMismatch {
        transaction: Method,
        branch: Method,
    },
    /// A status code outside 100–699.
    InvalidStatus(u16),
    /// A reply or branch after the final reply: only 2xx may still pass
    /// (INVITE).
    AlreadyFinal {
        sent: u16,
    },
    /// `add_branch` after the INVITE was cancelled.
    Cancelled(TxId),
}

impl fmt::Display for TsxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TsxError::InvalidConfig { field, reason } => {
                write!(f, "invalid tm setting {field}: {reason}")
            }
            TsxError::TableFull { max } => write!(
                f,
                "transaction table full ({max} live transactions): reply 503 or raise max_transactions"
            ),
            TsxError::OverBudget { max } => write!(
                f,
                "transactions hold {max} bytes of messages (tm max_tsx_bytes): reply 503 or raise max_tsx_bytes"
            ),
            TsxError::TooManyBranches { max } => write!(
                f,
                "a transaction may have at most {max} branches: fork to fewer destinations"
            ),
            TsxError::UnknownTransaction(tx) => {
                write!(f, "{tx} does not exist (already freed or never created)")
            }
            TsxError::UnknownBranch { tx, branch } => {
                write!(f, "{tx} has no branch {}", branch.0)
            }
            TsxError::Exists(tx) => write!(
                f,
                "the request matches live transaction {tx}: call handle_request before create"
            ),
            TsxError::AckCreatesNoTransaction => {
                write!(
                    f,
                    "an ACK never creates a transaction: forward it statelessly"
                )
            }
            TsxError::DuplicateBranch(branch) => write!(
                f,
                "branch {branch} is already in use: generate a unique Via branch per forwarded request"
            ),
            TsxError::MethodMismatch {
                transaction,
                branch,
            } => write!(
                f,
                "cannot forward a {branch} on a {transaction} transaction: the branch method must be the request's"
            ),
            TsxError::InvalidStatus(code) => {
                write!(f, "status code {code} is outside 100-699")
            }
            TsxError::AlreadyFinal { sent } => write!(
                f,
                "a final reply ({sent}) was already sent on this transaction: only 2xx to INVITE may follow"
            ),
            TsxError::Cancelled(tx) => {
                write!(f, "{tx} was cancelled: no new branch may be forwarded")
            }
        }
    }
}

impl std::error::Error for TsxError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_validation() {
        let ok = TsxConfig::default();
        assert_eq!(ok.validate(), Ok(()));
        // ValidTsxConfig::default skips the check on the strength of this one.
        assert_eq!(ok.clone().validated(), Ok(ValidTsxConfig::default()));
        let cases: Vec<(TsxConfig, &str)> = vec![
            (
                TsxConfig {
                    t1: Duration::ZERO,
                    ..TsxConfig::default()
                },
                "t1",
            ),
            (
                TsxConfig {
                    t2: Duration::from_millis(100),
                    ..TsxConfig::default()
                },
                "t2",
            ),
            (
                TsxConfig {
                    fr_inv_timer: Duration::ZERO,
                    ..TsxConfig::default()
                },
                "fr_inv_timer",
            ),
            (
                TsxConfig {
                    max_inv_lifetime: Duration::from_secs(86_401),
                    ..TsxConfig::default()
                },
                "max_inv_lifetime",
            ),
            (
                TsxConfig {
                    wt_timer: Duration::ZERO,
                    ..TsxConfig::default()
                },
                "wt_timer",
            ),
            (
                TsxConfig {
                    wt_timer: Duration::from_secs(86_401),
                    ..TsxConfig::default()
                },
                "wt_timer",
            ),
            (
                TsxConfig {
                    max_transactions: 0,
                    ..TsxConfig::default()
                },
                "max_transactions",
            ),
            (
                TsxConfig {
                    max_branches: 0,
                    ..TsxConfig::default()
                },
                "max_branches",
            ),
        ];
        for (cfg, field) in cases {
            match cfg.validate() {
                Err(TsxError::InvalidConfig { field: got, .. }) => assert_eq!(got, field),
                other => panic!("{field}: expected InvalidConfig, got {other:?}"),
            }
        }
    }

    #[test]
    fn error_messages_say_what_to_do() {
        let tx = TxId::new(3, 1);
        let cases = [
            (TsxError::TableFull { max: 10 }, "raise max_transactions"),
            (TsxError::OverBudget { max: 10 }, "raise max_tsx_bytes"),
            (TsxError::Exists(tx), "handle_request before create"),
            (TsxError::AckCreatesNoTransaction, "statelessly"),
            (TsxError::UnknownTransaction(tx), "tx#3.1"),
            (TsxError::InvalidStatus(99), "99"),
        ];
        for (err, needle) in cases {
            let text = err.to_string();
            assert!(text.contains(needle), "{text:?} lacks {needle:?}");
        }
    }
}
