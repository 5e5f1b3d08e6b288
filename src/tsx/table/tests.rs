//! Table-level tests: whole proxy transactions driven by hand-moved time.

use std::time::Duration;

use super::*;
use crate::tsx::timers::TimerKind;
use crate::tsx::{
    BestReply, DEFAULT_MAX_TRANSACTIONS, DEFAULT_WT_TIMER, Disposition, MatchedReply, Sent,
    ServerKey,
};

mod capacity;

type Dest = &'static str;
const UPSTREAM: Dest = "upstream";
const SENT_BY: &str = "192.0.2.1:5060";

fn p(s: &str) -> Payload {
    Payload::from(s.as_bytes())
}

fn skey(branch: &str, method: Method) -> RequestKey {
    RequestKey::Rfc3261(ServerKey {
        branch: branch.to_owned(),
        sent_by: SENT_BY.to_owned(),
        method,
    })
}

fn ckey(branch: &str, method: Method) -> ClientKey {
    ClientKey {
        branch: branch.to_owned(),
        method,
    }
}

fn bye() -> Method {
    Method::Other("BYE".to_owned())
}

fn reply_bytes(code: u16, branch: &str) -> Payload {
    p(&format!("SIP/2.0 {code} {branch}"))
}

fn ack_for(request: &[u8]) -> Payload {
    let mut v = b"ACK for ".to_vec();
    v.extend_from_slice(request);
    Payload::from(v)
}

/// Everything the table put out while time was moved.
#[derive(Default, Debug)]
struct Log {
    transmits: Vec<(u64, Transmit<Dest>)>,
    events: Vec<(u64, Event<Dest>)>,
}

impl Log {
    /// Instants of transmissions of one kind with the given flag.
    fn times(&self, what: Sent, retransmission: bool) -> Vec<u64> {
        self.transmits
            .iter()
            .filter(|(_, t)| t.what == what && t.retransmission == retransmission)
            .map(|(at, _)| *at)
            .collect()
    }
}

struct H {
    t: Table<u32, Dest>,
    base: Instant,
}

/// Kamailio's defaults with `wt_timer` at the longest RFC wait (64·T1 =
/// 32 s): nothing is capped, for the tests of the RFC timers themselves.
fn rfc_config() -> TsxConfig {
    TsxConfig {
        wt_timer: Duration::from_secs(32),
        ..TsxConfig::default()
    }
}

impl H {
    fn new() -> H {
        H::with(TsxConfig::default())
    }

    fn rfc() -> H {
        H::with(rfc_config())
    }

    fn with(cfg: TsxConfig) -> H {
        H {
            t: Table::new(cfg).expect("valid config"),
            base: Instant::now(),
        }
    }

    fn at(&self, ms: u64) -> Instant {
        self.base + Duration::from_millis(ms)
    }

    fn ms(&self, at: Instant) -> u64 {
        (at - self.base).as_millis() as u64
    }

    fn transmits(&mut self) -> Vec<Transmit<Dest>> {
        std::iter::from_fn(|| self.t.poll_transmit()).collect()
    }

    fn events(&mut self) -> Vec<Event<Dest>> {
        std::iter::from_fn(|| self.t.poll_event()).collect()
    }

    /// Call `handle_timeout` at every deadline up to `ms`, like the reactor.
    fn run_until(&mut self, ms: u64) -> Log {
        let mut log = Log::default();
        let limit = self.at(ms);
        let mut guard = 0;
        while let Some(d) = self.t.next_deadline() {
            if d > limit {
                break;
            }
            guard += 1;
            assert!(guard < 10_000, "timer loop does not progress");
            self.t.handle_timeout(d);
            let at = self.ms(d);
            log.transmits
                .extend(self.transmits().into_iter().map(|t| (at, t)));
            log.events
                .extend(self.events().into_iter().map(|e| (at, e)));
        }
        log
    }

    /// Run until nothing is left and check the table emptied itself.
    #[track_caller]
    fn drain_to_empty(&mut self) -> Log {
        let mut log = Log::default();
        let mut guard = 0;
        while let Some(d) = self.t.next_deadline() {
            guard += 1;
            assert!(guard < 10_000, "timer loop does not progress");
            self.t.handle_timeout(d);
            let at = self.ms(d);
            log.transmits
                .extend(self.transmits().into_iter().map(|t| (at, t)));
            log.events
                .extend(self.events().into_iter().map(|e| (at, e)));
        }
        assert_eq!(self.t.next_deadline(), None, "idle table has no deadline");
        assert_eq!(self.t.len(), 0, "every transaction freed");
        assert!(self.t.servers.by_branch.is_empty() && self.t.servers.by_call_id.is_empty());
        assert!(self.t.clients.by_branch.is_empty());
        log
    }

    fn create(&mut self, branch: &str, method: Method, trying: bool, ms: u64) -> TxId {
        let trying = trying.then(|| p("SIP/2.0 100 Trying"));
        self.t
            .create(skey(branch, method), UPSTREAM, 7, trying, self.at(ms))
            .expect("create")
    }

    fn fork(&mut self, tx: TxId, branch: &str, method: Method, ms: u64) -> BranchId {
        let request = p(&format!("{method} {branch}"));
        self.t
            .add_branch(tx, ckey(branch, method), "downstream", request, self.at(ms))
            .expect("add_branch")
    }

    fn reply(&mut self, branch: &str, method: Method, code: u16, ms: u64) -> ReplyMatch {
        let at = self.at(ms);
        self.t.handle_reply(
            &ckey(branch, method),
            code,
            reply_bytes(code, branch),
            at,
            ack_for,
        )
    }

    #[track_caller]
    fn matched(&mut self, branch: &str, method: Method, code: u16, ms: u64) -> MatchedReply {
        match self.reply(branch, method, code, ms) {
            ReplyMatch::Matched(m) => m,
            other => panic!("{code} on {branch}: expected a match, got {other:?}"),
        }
    }

    fn send(&mut self, tx: TxId, code: u16, ms: u64) {
        let at = self.at(ms);
        self.t
            .send_reply(tx, code, p(&format!("SIP/2.0 {code} up")), at)
            .expect("send_reply");
    }
}

fn kinds(transmits: &[Transmit<Dest>]) -> Vec<(Sent, bool)> {
    transmits
        .iter()
        .map(|t| (t.what, t.retransmission))
        .collect()
}

const B0: BranchId = BranchId(0);
const B1: BranchId = BranchId(1);
const B2: BranchId = BranchId(2);

#[test]
fn client_invite_timer_a_then_b() {
    let mut h = H::with(TsxConfig {
        fr_timer: Duration::from_secs(40),
        ..TsxConfig::default()
    });
    let tx = h.create("z9hG4bKa", Method::Invite, false, 0);
    h.fork(tx, "z9hG4bKb", Method::Invite, 0);
    assert_eq!(
        kinds(&h.transmits()),
        vec![(Sent::Request { branch: B0 }, false)]
    );
    let log = h.run_until(40_000);
    // §17.1.1.2: A doubles from T1 without the T2 cap; B at 64·T1.
    assert_eq!(
        log.times(Sent::Request { branch: B0 }, true),
        vec![500, 1_500, 3_500, 7_500, 15_500, 31_500]
    );
    assert_eq!(
        log.events,
        vec![
            (
                32_000,
                Event::Timeout {
                    tx,
                    branch: B0,
                    timer: TimerKind::B
                }
            ),
            (
                32_000,
                Event::AllBranchesFailed {
                    tx,
                    best: BestReply {
                        branch: B0,
                        code: 408,
                        reply: None
                    }
                }
            ),
        ]
    );
    // The caller generates the 408 (docs/decisions.md §7).
    h.send(tx, 408, 32_000);
    assert_eq!(
        kinds(&h.transmits()),
        vec![(Sent::Reply { code: 408 }, false)]
    );
    let log = h.drain_to_empty();
    assert!(log.events.contains(&(64_000, Event::NoAck { tx })));
    assert_eq!(log.events.last(), Some(&(64_000, Event::Freed { tx })));
}

#[test]
fn fr_timer_ends_invite_branch_before_timer_b() {
    let mut h = H::new();
    let tx = h.create("z9hG4bKa", Method::Invite, true, 0);
    h.fork(tx, "z9hG4bKb", Method::Invite, 0);
    assert_eq!(
        kinds(&h.transmits()),
        vec![
            (Sent::Reply { code: 100 }, false),
            (Sent::Request { branch: B0 }, false)
        ]
    );
    let log = h.run_until(31_999);
    assert_eq!(
        log.times(Sent::Request { branch: B0 }, true),
        vec![500, 1_500, 3_500, 7_500, 15_500]
    );
    assert_eq!(
        log.events[0],
        (
            30_000,
            Event::Timeout {
                tx,
                branch: B0,
                timer: TimerKind::FrTimer
            }
        )
    );
    assert!(matches!(
        log.events[1],
        (
            30_000,
            Event::AllBranchesFailed {
                best: BestReply {
                    code: 408,
                    reply: None,
                    ..
                },
                ..
            }
        )
    ));
    // No provisional came: no CANCEL may be sent (§9.1)…
    assert!(
        !log.events
            .iter()
            .any(|(_, e)| matches!(e, Event::CancelBranch { .. }))
    );
    // …until a late provisional shows up.
    let m = h.matched("z9hG4bKb", Method::Invite, 180, 31_000);
    assert_eq!(m.disposition, Disposition::Absorbed);
    assert!(matches!(
        h.events()[..],
        [Event::CancelBranch {
            branch: B0,
            to: "downstream",
            ..
        }]
    ));
}

#[test]
fn provisional_stops_timer_a_and_fr_inv_timer_cancels() {
    let mut h = H::new();
    let tx = h.create("z9hG4bKa", Method::Invite, true, 0);
    h.fork(tx, "z9hG4bKb", Method::Invite, 0);
    h.transmits();
    let m = h.matched("z9hG4bKb", Method::Invite, 100, 200);
    assert_eq!(
        (m.disposition, m.retransmission, m.to_cancel),
        (Disposition::Absorbed, false, false)
    );
    let m = h.matched("z9hG4bKb", Method::Invite, 180, 1_000);
    assert_eq!(m.disposition, Disposition::Relay);
    let m = h.matched("z9hG4bKb", Method::Invite, 180, 1_100);
    assert_eq!(
        (m.disposition, m.retransmission),
        (Disposition::Relay, true)
    );
    assert_eq!(
        h.t.next_deadline(),
        Some(h.at(121_100)),
        "fr_inv from the last 1xx"
    );
    let log = h.run_until(121_100);
    assert!(log.transmits.is_empty(), "Timer A stopped by the 100");
    let [
        (_, Event::Timeout { timer, .. }),
        (
            _,
            Event::CancelBranch {
                branch, request, ..
            },
        ),
        (_, Event::AllBranchesFailed { best, .. }),
    ] = &log.events[..]
    else {
        panic!("unexpected events {:?}", log.events);
    };
    assert_eq!((*timer, *branch), (TimerKind::FrInvTimer, B0));
    assert_eq!(&request[..], b"INVITE z9hG4bKb");
    assert_eq!((best.code, best.reply.is_none()), (408, true));
    let at = h.at(121_100);
    assert_eq!(h.t.send_cancel(tx, B0, p("CANCEL z9hG4bKb"), at), Ok(true));
    assert_eq!(
        h.t.send_cancel(tx, B0, p("CANCEL z9hG4bKb"), at),
        Ok(false),
        "once"
    );
    assert_eq!(
        kinds(&h.transmits()),
        vec![(Sent::Cancel { branch: B0 }, false)]
    );
    h.send(tx, 408, 121_100);
    let m = h.matched("z9hG4bKb", Method::Cancel, 200, 121_200);
    assert_eq!((m.to_cancel, m.disposition), (true, Disposition::Absorbed));
    let m = h.matched("z9hG4bKb", Method::Invite, 487, 121_300);
    assert_eq!(
        m.disposition,
        Disposition::Absorbed,
        "branch already counted as 408"
    );
    let sent = h.transmits();
    assert_eq!(
        kinds(&sent)[..],
        [
            (Sent::Reply { code: 408 }, false),
            (Sent::Ack { branch: B0 }, false)
        ]
    );
    assert_eq!(&sent[1].bytes[..], b"ACK for INVITE z9hG4bKb");
    assert!(h.events().is_empty(), "no second failure report");
    h.drain_to_empty();
}

#[test]
fn fr_inv_restart_rules() {
    // (restart_fr_on_each_reply, provisionals as (ms, code), fr_inv deadline)
    type Case = (bool, &'static [(u64, u16)], u64);
    let cases: &[Case] = &[
        (true, &[(1_000, 180), (10_000, 183)], 130_000),
        (true, &[(1_000, 100), (10_000, 100)], 130_000),
        (false, &[(1_000, 180), (10_000, 183)], 130_000),
        (false, &[(1_000, 183), (10_000, 180)], 121_000),
        (false, &[(1_000, 100), (10_000, 100)], 121_000),
        (false, &[(1_000, 100), (10_000, 180)], 130_000),
        (false, &[(1_000, 100), (10_000, 170)], 121_000),
    ];
    for &(restart, provisionals, want) in cases {
        let mut h = H::with(TsxConfig {
            restart_fr_on_each_reply: restart,
            ..TsxConfig::default()
        });
        let tx = h.create("z9hG4bKa", Method::Invite, false, 0);
        h.fork(tx, "z9hG4bKb", Method::Invite, 0);
        for &(ms, code) in provisionals {
            h.matched("z9hG4bKb", Method::Invite, code, ms);
        }
        assert_eq!(
            h.t.next_deadline().map(|d| h.ms(d)),
            Some(want),
            "restart={restart} {provisionals:?}"
        );
    }
}

#[test]
fn non_2xx_final_acked_stored_and_reported_once() {
    let mut h = H::rfc();
    let tx = h.create("z9hG4bKa", Method::Invite, true, 0);
    h.fork(tx, "z9hG4bKb", Method::Invite, 0);
    h.transmits();
    let m = h.matched("z9hG4bKb", Method::Invite, 486, 1_000);
    assert_eq!(
        (m.disposition, m.retransmission),
        (Disposition::Stored, false)
    );
    assert_eq!(
        kinds(&h.transmits()),
        vec![(Sent::Ack { branch: B0 }, false)]
    );
    assert_eq!(
        h.events(),
        vec![Event::AllBranchesFailed {
            tx,
            best: BestReply {
                branch: B0,
                code: 486,
                reply: Some(reply_bytes(486, "z9hG4bKb"))
            }
        }]
    );
    let m = h.matched("z9hG4bKb", Method::Invite, 486, 1_500);
    assert_eq!(
        (m.disposition, m.retransmission),
        (Disposition::Absorbed, true)
    );
    assert_eq!(
        kinds(&h.transmits()),
        vec![(Sent::Ack { branch: B0 }, true)]
    );
    assert!(h.events().is_empty());
    // failure_route did nothing: relay the best reply.
    h.send(tx, 486, 1_500);
    h.transmits();
    let log = h.run_until(2_000);
    assert_eq!(
        log.times(Sent::Reply { code: 486 }, true),
        vec![2_000],
        "Timer G"
    );
    assert_eq!(
        h.t.handle_request(&skey("z9hG4bKa", Method::Ack), h.at(2_000)),
        RequestMatch::AckAbsorbed { tx, first: true }
    );
    assert_eq!(
        h.t.handle_request(&skey("z9hG4bKa", Method::Ack), h.at(2_100)),
        RequestMatch::AckAbsorbed { tx, first: false }
    );
    let log = h.run_until(33_000);
    // The ACK stopped G; Timer I ends the server side 5 s after it.
    assert_eq!(
        log.times(Sent::Reply { code: 486 }, true),
        Vec::<u64>::new()
    );
    assert_eq!(
        h.t.handle_request(&skey("z9hG4bKa", Method::Invite), h.at(7_001)),
        RequestMatch::NoMatch,
        "Timer I fired at 7 s"
    );
    // Timer D (32 s after the 486) ended the branch.
    assert_eq!(
        h.reply("z9hG4bKb", Method::Invite, 486, 33_001),
        ReplyMatch::NoMatch
    );
    // Terminated at 33 s, freed by the reactor's immediate next call.
    assert_eq!(log.events, vec![(33_000, Event::Freed { tx })]);
    h.drain_to_empty();
}

#[test]
fn two_xx_relayed_and_accepted_states() {
    let mut h = H::rfc();
    let tx = h.create("z9hG4bKa", Method::Invite, true, 0);
    h.fork(tx, "z9hG4bKb", Method::Invite, 0);
    h.transmits();
    let m = h.matched("z9hG4bKb", Method::Invite, 200, 1_000);
    assert_eq!(
        (m.disposition, m.retransmission),
        (Disposition::Relay, false)
    );
    h.send(tx, 200, 1_000);
    assert_eq!(
        kinds(&h.transmits()),
        vec![(Sent::Reply { code: 200 }, false)]
    );
    // RFC 6026 Accepted: INVITE retransmissions absorbed without a reply…
    assert_eq!(
        h.t.handle_request(&skey("z9hG4bKa", Method::Invite), h.at(1_200)),
        RequestMatch::Retransmission { tx }
    );
    assert!(h.transmits().is_empty());
    // …the ACK of the 2xx is not absorbed…
    assert_eq!(
        h.t.handle_request(&skey("z9hG4bKa", Method::Ack), h.at(1_300)),
        RequestMatch::NoMatch
    );
    // …and every 2xx retransmission is relayed by the caller.
    let m = h.matched("z9hG4bKb", Method::Invite, 200, 1_500);
    assert_eq!(
        (m.disposition, m.retransmission),
        (Disposition::Relay, true)
    );
    h.send(tx, 200, 1_500);
    assert_eq!(
        kinds(&h.transmits()),
        vec![(Sent::Reply { code: 200 }, false)]
    );
    assert_eq!(
        h.t.send_reply(tx, 486, p("486"), h.at(1_600)),
        Err(TsxError::AlreadyFinal { sent: 200 })
    );
    // Timers L and M (64·T1 after the 2xx).
    h.run_until(32_999);
    assert!(matches!(
        h.reply("z9hG4bKb", Method::Invite, 200, 32_999),
        ReplyMatch::Matched(_)
    ));
    h.run_until(33_000);
    assert_eq!(
        h.reply("z9hG4bKb", Method::Invite, 200, 33_000),
        ReplyMatch::NoMatch
    );
    assert_eq!(
        h.t.handle_request(&skey("z9hG4bKa", Method::Invite), h.at(33_000)),
        RequestMatch::NoMatch
    );
    assert!(h.events().is_empty());
    h.drain_to_empty();
}

#[test]
fn client_non_invite_timer_e_capped_at_t2_then_f() {
    let mut h = H::with(TsxConfig {
        fr_timer: Duration::from_secs(40),
        ..TsxConfig::default()
    });
    let tx = h.create("z9hG4bKa", bye(), false, 0);
    h.fork(tx, "z9hG4bKb", bye(), 0);
    h.transmits();
    let log = h.run_until(40_000);
    assert_eq!(
        log.times(Sent::Request { branch: B0 }, true),
        vec![
            500, 1_500, 3_500, 7_500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500
        ]
    );
    assert_eq!(
        log.events[0],
        (
            32_000,
            Event::Timeout {
                tx,
                branch: B0,
                timer: TimerKind::F
            }
        )
    );
    assert!(matches!(
        log.events[1],
        (
            32_000,
            Event::AllBranchesFailed {
                best: BestReply { code: 408, .. },
                ..
            }
        )
    ));
    h.send(tx, 408, 32_000);
    h.drain_to_empty();
}

#[test]
fn non_invite_provisional_keeps_fr_timer() {
    let mut h = H::new();
    let tx = h.create("z9hG4bKa", bye(), false, 0);
    h.fork(tx, "z9hG4bKb", bye(), 0);
    let log = h.run_until(600);
    assert_eq!(log.times(Sent::Request { branch: B0 }, true), vec![500]);
    let m = h.matched("z9hG4bKb", bye(), 100, 700);
    assert_eq!(m.disposition, Disposition::Absorbed);
    let log = h.run_until(40_000);
    // E every T2 in Proceeding; fr_timer (30 s) is not restarted by a 1xx.
    assert_eq!(
        log.times(Sent::Request { branch: B0 }, true),
        vec![1_500, 5_500, 9_500, 13_500, 17_500, 21_500, 25_500, 29_500]
    );
    assert_eq!(
        log.events[0],
        (
            30_000,
            Event::Timeout {
                tx,
                branch: B0,
                timer: TimerKind::FrTimer
            }
        )
    );
}

#[test]
fn non_invite_final_then_timers_k_and_j() {
    let mut h = H::rfc();
    let tx = h.create("z9hG4bKa", bye(), false, 0);
    h.fork(tx, "z9hG4bKb", bye(), 0);
    h.transmits();
    let log = h.run_until(1_999);
    assert_eq!(
        log.times(Sent::Request { branch: B0 }, true),
        vec![500, 1_500]
    );
    let m = h.matched("z9hG4bKb", bye(), 200, 2_000);
    assert_eq!(m.disposition, Disposition::Relay);
    h.send(tx, 200, 2_000);
    let m = h.matched("z9hG4bKb", bye(), 200, 3_000);
    assert_eq!(
        (m.disposition, m.retransmission),
        (Disposition::Absorbed, true)
    );
    h.transmits();
    let log = h.run_until(7_000);
    assert!(log.transmits.is_empty(), "Timer E stops in Completed");
    assert_eq!(
        h.reply("z9hG4bKb", bye(), 200, 7_000),
        ReplyMatch::NoMatch,
        "Timer K"
    );
    assert_eq!(
        h.t.handle_request(&skey("z9hG4bKa", bye()), h.at(33_999)),
        RequestMatch::Retransmission { tx }
    );
    assert_eq!(
        kinds(&h.transmits()),
        vec![(Sent::Reply { code: 200 }, true)]
    );
    let log = h.run_until(34_000);
    assert_eq!(
        h.t.handle_request(&skey("z9hG4bKa", bye()), h.at(34_000)),
        RequestMatch::NoMatch,
        "Timer J"
    );
    assert_eq!(log.events, vec![(34_000, Event::Freed { tx })]);
    h.drain_to_empty();
}

#[test]
fn server_invite_absorbs_and_retransmits_final_on_g_until_h() {
    let mut h = H::new();
    let tx = h.create("z9hG4bKa", Method::Invite, true, 0);
    assert_eq!(
        kinds(&h.transmits()),
        vec![(Sent::Reply { code: 100 }, false)]
    );
    let invite = skey("z9hG4bKa", Method::Invite);
    assert_eq!(
        h.t.handle_request(&invite, h.at(300)),
        RequestMatch::Retransmission { tx }
    );
    let again = h.transmits();
    assert_eq!(kinds(&again), vec![(Sent::Reply { code: 100 }, true)]);
    assert_eq!(
        (&again[0].bytes[..], again[0].to),
        (&b"SIP/2.0 100 Trying"[..], UPSTREAM)
    );
    h.send(tx, 180, 400);
    assert_eq!(
        h.t.handle_request(&invite, h.at(450)),
        RequestMatch::Retransmission { tx }
    );
    assert_eq!(
        kinds(&h.transmits()),
        vec![
            (Sent::Reply { code: 180 }, false),
            (Sent::Reply { code: 180 }, true)
        ]
    );
    h.send(tx, 603, 1_000);
    h.transmits();
    assert_eq!(
        h.t.handle_request(&invite, h.at(1_100)),
        RequestMatch::Retransmission { tx }
    );
    assert_eq!(
        kinds(&h.transmits()),
        vec![(Sent::Reply { code: 603 }, true)]
    );
    let log = h.drain_to_empty();
    assert_eq!(
        log.times(Sent::Reply { code: 603 }, true),
        vec![
            1_500, 2_500, 4_500, 8_500, 12_500, 16_500, 20_500, 24_500, 28_500, 32_500
        ]
    );
    assert_eq!(
        log.events,
        vec![(33_000, Event::NoAck { tx }), (33_000, Event::Freed { tx })]
    );
}

#[test]
fn server_non_invite_trying_is_silent() {
    let mut h = H::rfc();
    let tx = h.create("z9hG4bKa", Method::Other("OPTIONS".into()), false, 0);
    let key = skey("z9hG4bKa", Method::Other("OPTIONS".into()));
    assert_eq!(
        h.t.handle_request(&key, h.at(100)),
        RequestMatch::Retransmission { tx }
    );
    assert!(h.transmits().is_empty(), "Trying absorbs without a reply");
    h.send(tx, 200, 200);
    assert_eq!(
        h.t.handle_request(&key, h.at(300)),
        RequestMatch::Retransmission { tx }
    );
    assert_eq!(
        kinds(&h.transmits()),
        vec![
            (Sent::Reply { code: 200 }, false),
            (Sent::Reply { code: 200 }, true)
        ]
    );
    let log = h.drain_to_empty();
    assert_eq!(log.events, vec![(32_200, Event::Freed { tx })]);
}

#[test]
fn cancel_after_provisional() {
    let mut h = H::new();
    let inv = h.create("z9hG4bKa", Method::Invite, true, 0);
    h.fork(inv, "z9hG4bKb", Method::Invite, 0);
    assert_eq!(
        h.matched("z9hG4bKb", Method::Invite, 180, 500).disposition,
        Disposition::Relay
    );
    h.transmits();
    // The CANCEL arrives: not a retransmission, finds its INVITE.
    let cancel_key = skey("z9hG4bKa", Method::Cancel);
    assert_eq!(
        h.t.handle_request(&cancel_key, h.at(1_000)),
        RequestMatch::NoMatch
    );
    assert_eq!(h.t.find_invite(&cancel_key), Some(inv));
    assert_eq!(
        h.t.find_invite(&RequestKey::Rfc3261(ServerKey {
            branch: "z9hG4bKa".into(),
            sent_by: "198.51.100.7:5060".into(),
            method: Method::Cancel,
        })),
        None,
        "sent-by must match too"
    );
    let ctx = h.create("z9hG4bKa", Method::Cancel, false, 1_000);
    h.send(ctx, 200, 1_000);
    assert_eq!(
        h.t.cancel(inv, h.at(1_000)),
        Ok(CancelOutcome::Cancelling { awaiting: 1 })
    );
    assert!(h.t.is_cancelled(inv));
    let [
        Event::CancelBranch {
            tx,
            branch: B0,
            request,
            to: "downstream",
        },
    ] = &h.events()[..]
    else {
        panic!("expected one CancelBranch");
    };
    assert_eq!((*tx, &request[..]), (inv, &b"INVITE z9hG4bKb"[..]));
    assert_eq!(
        h.t.send_cancel(inv, B0, p("CANCEL z9hG4bKb"), h.at(1_000)),
        Ok(true)
    );
    assert_eq!(
        kinds(&h.transmits()),
        vec![
            (Sent::Reply { code: 200 }, false),
            (Sent::Cancel { branch: B0 }, false)
        ]
    );
    // A duplicate CANCEL is a retransmission of the CANCEL transaction.
    assert_eq!(
        h.t.handle_request(&cancel_key, h.at(1_200)),
        RequestMatch::Retransmission { tx: ctx }
    );
    assert_eq!(
        kinds(&h.transmits()),
        vec![(Sent::Reply { code: 200 }, true)]
    );
    assert_eq!(
        h.t.cancel(inv, h.at(1_200)),
        Ok(CancelOutcome::AlreadyCancelled)
    );
    assert!(h.events().is_empty());
    assert_eq!(
        h.t.add_branch(
            inv,
            ckey("z9hG4bKc", Method::Invite),
            "x",
            p("INVITE"),
            h.at(1_300)
        ),
        Err(TsxError::Cancelled(inv))
    );
    let m = h.matched("z9hG4bKb", Method::Cancel, 200, 1_400);
    assert_eq!((m.to_cancel, m.disposition), (true, Disposition::Absorbed));
    let m = h.matched("z9hG4bKb", Method::Invite, 487, 1_500);
    assert_eq!(m.disposition, Disposition::Stored);
    assert_eq!(
        kinds(&h.transmits()),
        vec![(Sent::Ack { branch: B0 }, false)]
    );
    assert_eq!(
        h.events(),
        vec![Event::AllBranchesFailed {
            tx: inv,
            best: BestReply {
                branch: B0,
                code: 487,
                reply: Some(reply_bytes(487, "z9hG4bKb"))
            }
        }]
    );
    h.send(inv, 487, 1_500);
    h.drain_to_empty();
}

#[test]
fn cancel_before_provisional_waits_for_one() {
    let mut h = H::new();
    let inv = h.create("z9hG4bKa", Method::Invite, true, 0);
    h.fork(inv, "z9hG4bKb", Method::Invite, 0);
    h.transmits();
    assert_eq!(
        h.t.cancel(inv, h.at(300)),
        Ok(CancelOutcome::Cancelling { awaiting: 0 })
    );
    // No provisional: no CANCEL yet (§9.1); the branch counts as a local 487.
    assert_eq!(
        h.events(),
        vec![Event::AllBranchesFailed {
            tx: inv,
            best: BestReply {
                branch: B0,
                code: 487,
                reply: None
            }
        }]
    );
    h.send(inv, 487, 300);
    let log = h.run_until(2_000);
    assert!(
        log.times(Sent::Request { branch: B0 }, true).is_empty(),
        "Timer A stopped"
    );
    let m = h.matched("z9hG4bKb", Method::Invite, 180, 2_000);
    assert_eq!(m.disposition, Disposition::Absorbed);
    assert!(matches!(
        h.events()[..],
        [Event::CancelBranch { branch: B0, .. }]
    ));
    assert_eq!(h.t.send_cancel(inv, B0, p("CANCEL"), h.at(2_000)), Ok(true));
    let m = h.matched("z9hG4bKb", Method::Invite, 487, 2_500);
    assert_eq!(m.disposition, Disposition::Absorbed);
    let sent = kinds(&h.transmits());
    assert!(
        sent.contains(&(Sent::Ack { branch: B0 }, false)),
        "{sent:?}"
    );
    h.drain_to_empty();
}

#[test]
fn cancel_unanswered_downstream() {
    let mut h = H::rfc();
    let inv = h.create("z9hG4bKa", Method::Invite, false, 0);
    h.fork(inv, "z9hG4bKb", Method::Invite, 0);
    h.matched("z9hG4bKb", Method::Invite, 180, 100);
    assert_eq!(
        h.t.cancel(inv, h.at(1_000)),
        Ok(CancelOutcome::Cancelling { awaiting: 1 })
    );
    h.events();
    assert_eq!(h.t.send_cancel(inv, B0, p("CANCEL"), h.at(1_000)), Ok(true));
    h.transmits();
    let log = h.run_until(40_000);
    assert_eq!(
        log.times(Sent::Cancel { branch: B0 }, true),
        vec![
            1_500, 2_500, 4_500, 8_500, 12_500, 16_500, 20_500, 24_500, 28_500, 32_500
        ]
    );
    assert_eq!(
        log.events,
        vec![
            (
                33_000,
                Event::Timeout {
                    tx: inv,
                    branch: B0,
                    timer: TimerKind::CancelWait
                }
            ),
            (
                33_000,
                Event::AllBranchesFailed {
                    tx: inv,
                    best: BestReply {
                        branch: B0,
                        code: 487,
                        reply: None
                    }
                }
            ),
            (
                33_000,
                Event::CancelTimeout {
                    tx: inv,
                    branch: B0
                }
            ),
        ]
    );
    h.send(inv, 487, 33_000);
    h.drain_to_empty();
}

fn legacy(method: Method, to_tag: Option<&str>, cseq_num: u32) -> RequestKey {
    RequestKey::Rfc2543(LegacyKey {
        request_uri: "sip:bob@example.com".into(),
        to_tag: to_tag.map(str::to_owned),
        from_tag: Some("ft1".into()),
        call_id: "call-1@192.0.2.1".into(),
        cseq_num,
        top_via: "SIP/2.0/UDP 192.0.2.1:5060;branch=776asdhds".into(),
        method,
    })
}

#[test]
fn rfc2543_matching() {
    let mut h = H::new();
    let inv =
        h.t.create(
            legacy(Method::Invite, None, 1),
            UPSTREAM,
            0,
            Some(p("100")),
            h.at(0),
        )
        .expect("create");
    // (request key, expected match for handle_request, for find_invite)
    let cases = [
        (legacy(Method::Invite, None, 1), Some(inv), Some(inv)),
        (legacy(Method::Invite, Some("x"), 1), None, None),
        (legacy(Method::Invite, None, 2), None, None),
        (legacy(Method::Cancel, None, 1), None, Some(inv)),
        (legacy(Method::Cancel, Some("x"), 1), None, None),
        (legacy(Method::Cancel, None, 2), None, None),
    ];
    for (key, request, invite) in cases {
        let got = match h.t.handle_request(&key, h.at(10)) {
            RequestMatch::Retransmission { tx } => Some(tx),
            _ => None,
        };
        assert_eq!(got, request, "handle_request {key:?}");
        assert_eq!(h.t.find_invite(&key), invite, "find_invite {key:?}");
    }
    // The CANCEL's own transaction is separate from the INVITE's.
    let ctx =
        h.t.create(legacy(Method::Cancel, None, 1), UPSTREAM, 0, None, h.at(20))
            .expect("create CANCEL");
    assert_ne!(ctx, inv);
    assert_eq!(
        h.t.handle_request(&legacy(Method::Cancel, None, 1), h.at(30)),
        RequestMatch::Retransmission { tx: ctx }
    );
    // The ACK for a non-2xx carries the reply's To tag: still matched.
    h.send(inv, 486, 40);
    let cases = [
        (
            legacy(Method::Ack, Some("totag-1"), 1),
            RequestMatch::AckAbsorbed {
                tx: inv,
                first: true,
            },
        ),
        (
            legacy(Method::Ack, Some("totag-1"), 1),
            RequestMatch::AckAbsorbed {
                tx: inv,
                first: false,
            },
        ),
        (
            legacy(Method::Ack, Some("totag-1"), 2),
            RequestMatch::NoMatch,
        ),
    ];
    for (key, want) in cases {
        assert_eq!(h.t.handle_request(&key, h.at(50)), want, "{key:?}");
    }
    h.send(ctx, 200, 60);
    h.drain_to_empty();
}

#[test]
fn parallel_fork_best_reply_after_last_branch() {
    let mut h = H::new();
    let tx = h.create("z9hG4bKa", Method::Invite, true, 0);
    for b in ["z9hG4bK1", "z9hG4bK2", "z9hG4bK3"] {
        h.fork(tx, b, Method::Invite, 0);
    }
    // (branch, code, disposition, AllBranchesFailed best afterwards)
    type Step = (&'static str, u16, Disposition, Option<(BranchId, u16)>);
    let steps: &[Step] = &[
        ("z9hG4bK1", 180, Disposition::Relay, None),
        ("z9hG4bK1", 486, Disposition::Stored, None),
        ("z9hG4bK2", 503, Disposition::Stored, None),
        ("z9hG4bK3", 100, Disposition::Absorbed, None),
        ("z9hG4bK3", 407, Disposition::Stored, Some((B2, 407))),
        ("z9hG4bK3", 407, Disposition::Absorbed, None),
    ];
    for (i, &(branch, code, disposition, failed)) in steps.iter().enumerate() {
        let m = h.matched(branch, Method::Invite, code, 100 + i as u64);
        assert_eq!(m.disposition, disposition, "step {i}");
        let best = h.events().into_iter().find_map(|e| match e {
            Event::AllBranchesFailed { best, .. } => Some((best.branch, best.code)),
            _ => None,
        });
        assert_eq!(best, failed, "step {i}");
    }
}

#[test]
fn serial_fork_from_failure_route_starts_a_new_set() {
    let mut h = H::new();
    let tx = h.create("z9hG4bKa", Method::Invite, true, 0);
    h.fork(tx, "z9hG4bK1", Method::Invite, 0);
    h.matched("z9hG4bK1", Method::Invite, 486, 100);
    assert!(matches!(
        h.events()[..],
        [Event::AllBranchesFailed {
            best: BestReply { code: 486, .. },
            ..
        }]
    ));
    // failure_route: t_relay to the next destination.
    assert_eq!(h.fork(tx, "z9hG4bK2", Method::Invite, 100), B1);
    let m = h.matched("z9hG4bK2", Method::Invite, 404, 200);
    assert_eq!(m.disposition, Disposition::Stored);
    // Kamailio failure_reply_mode=3: the earlier set's 486 is dropped.
    assert_eq!(
        h.events(),
        vec![Event::AllBranchesFailed {
            tx,
            best: BestReply {
                branch: B1,
                code: 404,
                reply: Some(reply_bytes(404, "z9hG4bK2"))
            }
        }]
    );
    h.send(tx, 404, 200);
    assert_eq!(
        h.t.add_branch(
            tx,
            ckey("z9hG4bK3", Method::Invite),
            "x",
            p("INVITE"),
            h.at(300)
        ),
        Err(TsxError::AlreadyFinal { sent: 404 })
    );
    h.drain_to_empty();
}

#[test]
fn six_xx_cancels_the_other_branches() {
    let mut h = H::new();
    let tx = h.create("z9hG4bKa", Method::Invite, true, 0);
    h.fork(tx, "z9hG4bK1", Method::Invite, 0);
    h.fork(tx, "z9hG4bK2", Method::Invite, 0);
    h.fork(tx, "z9hG4bK3", Method::Invite, 0);
    h.matched("z9hG4bK1", Method::Invite, 180, 100);
    let m = h.matched("z9hG4bK3", Method::Invite, 603, 200);
    assert_eq!(m.disposition, Disposition::Stored);
    // Branch 1 had a provisional: CANCEL it. Branch 2 had none: local 487.
    assert!(matches!(
        h.events()[..],
        [Event::CancelBranch { branch: B0, .. }]
    ));
    h.t.send_cancel(tx, B0, p("CANCEL 1"), h.at(200))
        .expect("send_cancel");
    h.matched("z9hG4bK1", Method::Invite, 487, 300);
    assert_eq!(
        h.events(),
        vec![Event::AllBranchesFailed {
            tx,
            best: BestReply {
                branch: B2,
                code: 603,
                reply: Some(reply_bytes(603, "z9hG4bK3"))
            }
        }]
    );
}

#[test]
fn relayed_2xx_cancels_pending_branches() {
    let mut h = H::new();
    let tx = h.create("z9hG4bKa", Method::Invite, true, 0);
    h.fork(tx, "z9hG4bK1", Method::Invite, 0);
    h.fork(tx, "z9hG4bK2", Method::Invite, 0);
    h.matched("z9hG4bK1", Method::Invite, 183, 100);
    let m = h.matched("z9hG4bK2", Method::Invite, 200, 200);
    assert_eq!(m.disposition, Disposition::Relay);
    assert!(h.events().is_empty(), "cancelling waits for the relay");
    h.send(tx, 200, 200);
    assert!(matches!(
        h.events()[..],
        [Event::CancelBranch { branch: B0, .. }]
    ));
    // Race: the other branch answers 200 too; it is relayed as well.
    let m = h.matched("z9hG4bK1", Method::Invite, 200, 250);
    assert_eq!(m.disposition, Disposition::Relay);
    assert_eq!(
        h.t.send_cancel(tx, B0, p("CANCEL"), h.at(260)),
        Ok(false),
        "no CANCEL after a final"
    );
    h.send(tx, 200, 260);
    assert!(h.events().is_empty(), "no failure after a 2xx");
    h.drain_to_empty();
}

#[test]
fn table_full_and_recovers() {
    let mut h = H::with(TsxConfig {
        max_transactions: 2,
        ..rfc_config()
    });
    let a = h.create("z9hG4bK1", bye(), false, 0);
    let b = h.create("z9hG4bK2", bye(), false, 0);
    assert_eq!(
        h.t.create(skey("z9hG4bK3", bye()), UPSTREAM, 0, None, h.at(0)),
        Err(TsxError::TableFull { max: 2 })
    );
    assert_eq!(h.t.len(), 2);
    h.send(a, 200, 10);
    h.send(b, 200, 10);
    let log = h.drain_to_empty();
    assert_eq!(
        log.events,
        vec![
            (32_010, Event::Freed { tx: a }),
            (32_010, Event::Freed { tx: b })
        ]
    );
    assert!(h.t.user(a).is_none());
    let c = h.create("z9hG4bK3", bye(), false, 40_000);
    assert_ne!(c, a, "slot reused under a new generation");
    assert_eq!(
        h.t.send_reply(a, 200, p("200"), h.at(40_000)),
        Err(TsxError::UnknownTransaction(a))
    );
}

#[test]
fn user_data_lives_until_freed() {
    let mut h = H::rfc();
    let tx = h.create("z9hG4bKa", bye(), false, 0);
    *h.t.user_mut(tx).expect("live") += 1;
    h.send(tx, 500, 0);
    h.run_until(31_999);
    assert_eq!(h.t.user(tx), Some(&8));
    h.t.handle_timeout(h.at(32_000));
    assert_eq!(
        h.t.user(tx),
        Some(&8),
        "terminated in this call: still readable"
    );
    assert_eq!(h.t.len(), 1);
    assert_eq!(h.t.next_deadline(), Some(h.at(32_000)), "due for freeing");
    h.t.handle_timeout(h.at(32_000));
    assert_eq!(h.t.user(tx), None);
    assert_eq!(h.events(), vec![Event::Freed { tx }]);
    assert!(h.t.is_empty());
}

#[test]
fn lifetime_cap_expires_unanswered_transactions() {
    // (method, expiry in ms)
    let cases = [(Method::Invite, 180_000), (bye(), 32_000)];
    for (method, want) in cases {
        let mut h = H::new();
        let tx = h.create("z9hG4bKa", method.clone(), false, 0);
        let log = h.drain_to_empty();
        assert_eq!(
            log.events,
            vec![(want, Event::Expired { tx }), (want, Event::Freed { tx })],
            "{method}"
        );
    }
}

#[test]
fn lifetime_cap_times_out_a_ringing_branch() {
    let mut h = H::new();
    let tx = h.create("z9hG4bKa", Method::Invite, true, 0);
    h.fork(tx, "z9hG4bKb", Method::Invite, 0);
    // Provisionals keep restarting fr_inv_timer past the 180 s cap.
    h.matched("z9hG4bKb", Method::Invite, 180, 1_000);
    h.matched("z9hG4bKb", Method::Invite, 183, 100_000);
    let log = h.run_until(180_000);
    let kinds: Vec<&Event<Dest>> = log.events.iter().map(|(_, e)| e).collect();
    assert!(matches!(
        kinds[..],
        [
            Event::Timeout {
                timer: TimerKind::Lifetime,
                ..
            },
            Event::CancelBranch { .. },
            Event::AllBranchesFailed {
                best: BestReply { code: 408, .. },
                ..
            }
        ]
    ));
    h.send(tx, 408, 180_000);
    let log = h.drain_to_empty();
    assert!(
        !log.events
            .iter()
            .any(|(_, e)| matches!(e, Event::Expired { .. }))
    );
}

#[test]
fn lifetime_grace_drops_a_transaction_the_caller_never_answers() {
    let mut h = H::new();
    let tx = h.create("z9hG4bKa", Method::Invite, false, 0);
    h.fork(tx, "z9hG4bKb", Method::Invite, 0);
    h.matched("z9hG4bKb", Method::Invite, 180, 1_000);
    h.matched("z9hG4bKb", Method::Invite, 180, 100_000);
    // The caller ignores both the CancelBranch and AllBranchesFailed.
    let log = h.drain_to_empty();
    assert!(
        log.events.contains(&(212_000, Event::Expired { tx })),
        "{:?}",
        log.events
    );
}

#[test]
fn next_deadline_follows_the_earliest_timer() {
    let mut h = H::rfc();
    assert_eq!(h.t.next_deadline(), None);
    let tx = h.create("z9hG4bKa", Method::Invite, true, 0);
    assert_eq!(
        h.t.next_deadline(),
        Some(h.at(180_000)),
        "only the lifetime cap"
    );
    h.fork(tx, "z9hG4bKb", Method::Invite, 0);
    assert_eq!(h.t.next_deadline(), Some(h.at(500)), "Timer A");
    h.matched("z9hG4bKb", Method::Invite, 180, 100);
    assert_eq!(h.t.next_deadline(), Some(h.at(120_100)), "fr_inv_timer");
    h.matched("z9hG4bKb", Method::Invite, 486, 200);
    h.events();
    assert_eq!(h.t.next_deadline(), Some(h.at(32_200)), "Timer D");
    h.send(tx, 486, 300);
    assert_eq!(h.t.next_deadline(), Some(h.at(800)), "Timer G");
    assert_eq!(h.t.deadlines.len(), 1, "one entry per transaction");
}

#[test]
fn odd_sequences_do_not_panic() {
    let mut h = H::with(TsxConfig {
        max_branches: 2,
        ..TsxConfig::default()
    });
    let now = h.at(0);
    h.t.handle_timeout(now);
    assert_eq!(
        h.reply("z9hG4bKnone", Method::Invite, 200, 0),
        ReplyMatch::NoMatch
    );
    assert_eq!(
        h.reply("z9hG4bKnone", Method::Cancel, 200, 0),
        ReplyMatch::NoMatch
    );
    for code in [0, 99, 700, u16::MAX] {
        assert_eq!(
            h.reply("z9hG4bKnone", Method::Invite, code, 0),
            ReplyMatch::InvalidStatus
        );
    }
    assert_eq!(
        h.t.handle_request(&skey("z9hG4bKx", Method::Ack), now),
        RequestMatch::NoMatch
    );
    assert_eq!(
        h.t.create(skey("z9hG4bKx", Method::Ack), UPSTREAM, 0, None, now),
        Err(TsxError::AckCreatesNoTransaction)
    );
    let tx = h.create("z9hG4bKa", Method::Invite, false, 0);
    assert_eq!(
        h.t.create(skey("z9hG4bKa", Method::Invite), UPSTREAM, 0, None, now),
        Err(TsxError::Exists(tx))
    );
    assert_eq!(
        h.t.handle_request(&skey("z9hG4bKa", Method::Ack), now),
        RequestMatch::NoMatch,
        "no final yet"
    );
    assert_eq!(
        h.t.send_reply(tx, 0, p("x"), now),
        Err(TsxError::InvalidStatus(0))
    );
    assert_eq!(
        h.t.send_reply(tx, 700, p("x"), now),
        Err(TsxError::InvalidStatus(700))
    );
    assert_eq!(
        h.t.send_cancel(tx, B0, p("CANCEL"), now),
        Err(TsxError::UnknownBranch { tx, branch: B0 })
    );
    assert_eq!(
        h.t.add_branch(tx, ckey("z9hG4bKb", bye()), "x", p("BYE"), now),
        Err(TsxError::MethodMismatch {
            transaction: Method::Invite,
            branch: bye()
        })
    );
    h.fork(tx, "z9hG4bKb", Method::Invite, 0);
    assert_eq!(
        h.t.add_branch(tx, ckey("z9hG4bKb", Method::Invite), "x", p("INVITE"), now),
        Err(TsxError::DuplicateBranch("z9hG4bKb".into()))
    );
    h.fork(tx, "z9hG4bKc", Method::Invite, 0);
    assert_eq!(
        h.t.add_branch(tx, ckey("z9hG4bKd", Method::Invite), "x", p("INVITE"), now),
        Err(TsxError::TooManyBranches { max: 2 })
    );
    assert_eq!(
        h.t.send_cancel(tx, B0, p("CANCEL"), now),
        Ok(false),
        "no provisional yet"
    );
    assert_eq!(
        h.reply("z9hG4bKb", Method::Cancel, 200, 0),
        ReplyMatch::NoMatch,
        "no CANCEL sent"
    );
    assert_eq!(
        h.reply("z9hG4bKb", bye(), 200, 0),
        ReplyMatch::NoMatch,
        "wrong CSeq method"
    );
    let bye_tx = h.create("z9hG4bKz", bye(), false, 0);
    assert_eq!(h.t.cancel(bye_tx, now), Ok(CancelOutcome::NotInvite));
    h.send(tx, 500, 10);
    assert_eq!(h.t.cancel(tx, h.at(20)), Ok(CancelOutcome::AlreadyFinal));
    assert_eq!(
        h.t.send_reply(tx, 180, p("180"), h.at(20)),
        Err(TsxError::AlreadyFinal { sent: 500 })
    );
    // Replies after the transaction's final are only traced.
    let m = h.matched("z9hG4bKb", Method::Invite, 180, 30);
    assert_eq!(m.disposition, Disposition::Absorbed);
    let m = h.matched("z9hG4bKc", Method::Invite, 404, 30);
    assert_eq!(m.disposition, Disposition::Absorbed);
    h.send(bye_tx, 200, 40);
    h.t.handle_timeout(h.at(10_000_000));
    h.drain_to_empty();
    assert_eq!(
        h.t.cancel(tx, h.at(10_000_001)),
        Err(TsxError::UnknownTransaction(tx))
    );
}

#[test]
fn cancel_with_nothing_forwarded() {
    let mut h = H::new();
    let tx = h.create("z9hG4bKa", Method::Invite, true, 0);
    assert_eq!(h.t.cancel(tx, h.at(10)), Ok(CancelOutcome::NothingPending));
    assert!(h.events().is_empty());
    h.send(tx, 487, 10);
    h.drain_to_empty();
}

#[test]
fn many_transactions_all_freed() {
    let mut h = H::new();
    let mut ids = Vec::new();
    for i in 0..200u64 {
        let tx = h.create(&format!("z9hG4bKs{i}"), Method::Invite, true, i);
        h.fork(tx, &format!("z9hG4bKc{i}"), Method::Invite, i);
        ids.push(tx);
    }
    assert_eq!(h.t.len(), 200);
    for (i, tx) in ids.iter().enumerate() {
        let i = i as u64;
        let code = if i.is_multiple_of(2) { 200 } else { 486 };
        h.matched(&format!("z9hG4bKc{i}"), Method::Invite, code, 1_000 + i);
        h.send(*tx, code, 1_000 + i);
    }
    let log = h.drain_to_empty();
    let freed = log
        .events
        .iter()
        .filter(|(_, e)| matches!(e, Event::Freed { .. }))
        .count();
    assert_eq!(freed, 200);
    assert!(h.t.slots.len() <= 200 && h.t.free_slots.len() == h.t.slots.len());
    assert_eq!(
        DEFAULT_MAX_TRANSACTIONS,
        TsxConfig::default().max_transactions
    );
}

#[test]
fn cancelled_branch_timing_out_counts_as_487() {
    let mut h = H::new();
    let inv = h.create("z9hG4bKa", Method::Invite, true, 0);
    h.fork(inv, "z9hG4bKb", Method::Invite, 0);
    h.matched("z9hG4bKb", Method::Invite, 180, 100);
    assert_eq!(
        h.t.cancel(inv, h.at(1_000)),
        Ok(CancelOutcome::Cancelling { awaiting: 1 })
    );
    assert!(matches!(h.events()[..], [Event::CancelBranch { .. }]));
    // The caller never sends the CANCEL; fr_inv_timer still bounds the branch.
    let log = h.run_until(120_100);
    assert_eq!(
        log.events,
        vec![
            (
                120_100,
                Event::Timeout {
                    tx: inv,
                    branch: B0,
                    timer: TimerKind::FrInvTimer
                }
            ),
            (
                120_100,
                Event::AllBranchesFailed {
                    tx: inv,
                    best: BestReply {
                        branch: B0,
                        code: 487,
                        reply: None
                    }
                }
            ),
        ]
    );
    h.send(inv, 487, 120_100);
    h.drain_to_empty();
}

/// `max_bytes`: creating and forking are refused once the held bytes would
/// pass it, and room comes back as transactions finish and are freed.
#[test]
fn byte_budget_refuses_then_recovers() {
    const REQ: usize = 1000;
    let mut h = H::with(TsxConfig {
        max_bytes: 5 * REQ,
        ..TsxConfig::default()
    });
    let big = |tag: char| Payload::from(vec![tag as u8; REQ]);
    let mut live = Vec::new();
    for i in 0..2 {
        // The caller keeps one copy of the request (REQ), the branch another.
        let tx =
            h.t.create_holding(
                skey(&format!("z9hG4bKs{i}"), Method::Invite),
                UPSTREAM,
                i,
                REQ,
                None,
                h.at(0),
            )
            .expect("within budget");
        h.t.add_branch(
            tx,
            ckey(&format!("z9hG4bKc{i}"), Method::Invite),
            "downstream",
            big('a'),
            h.at(0),
        )
        .expect("within budget");
        live.push(tx);
    }
    assert_eq!(h.t.retained_bytes(), 4 * REQ);
    // A third transaction fits (5 of 5), its branch does not.
    let third =
        h.t.create_holding(
            skey("z9hG4bKs2", Method::Invite),
            UPSTREAM,
            2,
            REQ,
            None,
            h.at(0),
        )
        .expect("exactly at the budget");
    assert_eq!(
        h.t.add_branch(
            third,
            ckey("z9hG4bKc2", Method::Invite),
            "downstream",
            big('b'),
            h.at(0)
        ),
        Err(TsxError::OverBudget { max: 5 * REQ })
    );
    // Nor does a new transaction, however small: one byte is one too many.
    assert_eq!(
        h.t.create_holding(
            skey("z9hG4bKs3", Method::Other("OPTIONS".into())),
            UPSTREAM,
            3,
            1,
            None,
            h.at(0)
        ),
        Err(TsxError::OverBudget { max: 5 * REQ })
    );
    // The refused ones left nothing behind.
    assert_eq!(h.t.retained_bytes(), 5 * REQ);
    assert_eq!(h.t.len(), 3);
    // The caller gives its copy back (final reply sent, say).
    h.t.set_held(third, 0);
    assert_eq!(h.t.retained_bytes(), 4 * REQ);
    assert_eq!(h.t.retained_bytes_of(third), Some(0));
    // Final replies: the branches stop retransmitting, the transactions
    // complete and, wt_timer later, are freed with all their bytes.
    h.transmits();
    for (i, tx) in live.iter().enumerate() {
        h.matched(&format!("z9hG4bKc{i}"), Method::Invite, 486, 100);
        h.send(*tx, 486, 100);
        h.t.set_held(*tx, 0);
    }
    h.send(third, 503, 100);
    h.run_until(100 + DEFAULT_WT_TIMER.as_millis() as u64 + 40_000);
    assert_eq!(h.t.len(), 0);
    assert_eq!(h.t.retained_bytes(), 0);
    let again =
        h.t.create_holding(
            skey("z9hG4bKs4", Method::Invite),
            UPSTREAM,
            4,
            REQ,
            None,
            h.at(50_000),
        )
        .expect("room again");
    h.t.add_branch(
        again,
        ckey("z9hG4bKc4", Method::Invite),
        "downstream",
        big('c'),
        h.at(50_000),
    )
    .expect("room again");
    assert_eq!(h.t.retained_bytes(), 2 * REQ);
}
