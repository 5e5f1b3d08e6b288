//! What a finished transaction costs and how long it stays: `wt_timer`
//! (Kamailio tm's, 5 s by default) caps every wait after completion, and a
//! finished transaction keeps only the bytes a late message can ask for.

use std::collections::VecDeque;

use super::*;

/// A message of exactly `size` bytes: a start line, a Call-ID that makes it
/// unique, padding standing in for the other headers and the SDP.
fn sized(start: &str, call: usize, size: usize) -> Payload {
    let mut v = format!("{start}\r\nCall-ID: {call}\r\n").into_bytes();
    assert!(v.len() <= size, "{start} does not fit in {size} bytes");
    v.resize(size, b'x');
    Payload::from(v)
}

/// Sizes of a typical call's messages over UDP, in bytes: an INVITE with
/// SDP and the usual headers is 800–1000, replies a little shorter, the 200
/// carrying the answer SDP. Relayed replies lose one Via (about 40 bytes).
const INVITE: usize = 900;
const TRYING: usize = 300;
const RINGING: usize = 450;
const OK_SDP: usize = 850;
const BYE: usize = 450;
const OK_BYE: usize = 350;
const VIA: usize = 40;

/// The hop-by-hop ACK a real core builds: request line, Via, From, To (with
/// the reply's tag), Call-ID, CSeq, Max-Forwards, Route set: a few hundred
/// bytes whatever the INVITE's size.
const ACK: usize = 350;

fn small_ack(_: &[u8]) -> Payload {
    sized("ACK sip:bob@example.com SIP/2.0", 0, ACK)
}

#[test]
fn retransmitted_invite_absorbed_within_wt_timer_then_no_match() {
    let mut h = H::new();
    let tx = h.create("z9hG4bKa", Method::Invite, true, 0);
    h.fork(tx, "z9hG4bKb", Method::Invite, 0);
    h.matched("z9hG4bKb", Method::Invite, 200, 1_000);
    h.send(tx, 200, 1_000);
    h.transmits();
    let invite = skey("z9hG4bKa", Method::Invite);
    h.run_until(5_999);
    assert_eq!(
        h.t.handle_request(&invite, h.at(5_999)),
        RequestMatch::Retransmission { tx },
        "Timer L, capped at wt_timer, still runs"
    );
    assert!(
        matches!(
            h.reply("z9hG4bKb", Method::Invite, 200, 5_999),
            ReplyMatch::Matched(_)
        ),
        "Timer M, capped at wt_timer, still runs"
    );
    let log = h.run_until(6_000);
    assert_eq!(log.events, vec![(6_000, Event::Freed { tx })]);
    // After wt_timer: the INVITE is a new request (the script runs again)
    // and a 2xx retransmission is a reply without transaction (stateless).
    assert_eq!(
        h.t.handle_request(&invite, h.at(6_000)),
        RequestMatch::NoMatch
    );
    assert_eq!(
        h.reply("z9hG4bKb", Method::Invite, 200, 6_000),
        ReplyMatch::NoMatch
    );
    h.drain_to_empty();
}

#[test]
fn retransmitted_non_invite_absorbed_within_wt_timer_then_no_match() {
    let mut h = H::new();
    let tx = h.create("z9hG4bKa", bye(), false, 0);
    h.fork(tx, "z9hG4bKb", bye(), 0);
    h.matched("z9hG4bKb", bye(), 200, 2_000);
    h.send(tx, 200, 2_000);
    h.transmits();
    let key = skey("z9hG4bKa", bye());
    h.run_until(6_999);
    assert_eq!(
        h.t.handle_request(&key, h.at(6_999)),
        RequestMatch::Retransmission { tx }
    );
    assert_eq!(
        kinds(&h.transmits()),
        vec![(Sent::Reply { code: 200 }, true)],
        "the final is re-sent until Timer J"
    );
    let log = h.run_until(7_000);
    assert_eq!(
        log.events,
        vec![(7_000, Event::Freed { tx })],
        "Timer J = min(64·T1, wt_timer), K = min(T4, wt_timer)"
    );
    assert_eq!(h.t.handle_request(&key, h.at(7_000)), RequestMatch::NoMatch);
    assert_eq!(h.reply("z9hG4bKb", bye(), 200, 7_000), ReplyMatch::NoMatch);
    h.drain_to_empty();
}

#[test]
fn cancelled_branch_linger_capped_by_wt_timer() {
    let mut h = H::new();
    let inv = h.create("z9hG4bKa", Method::Invite, false, 0);
    h.fork(inv, "z9hG4bKb", Method::Invite, 0);
    h.matched("z9hG4bKb", Method::Invite, 180, 100);
    h.t.cancel(inv, h.at(1_000)).expect("cancel");
    h.events();
    assert_eq!(h.t.send_cancel(inv, B0, p("CANCEL"), h.at(1_000)), Ok(true));
    let log = h.run_until(10_000);
    // §9.1's 64·T1 wait for the 487, capped at 5 s: then a local 487.
    assert_eq!(
        log.events[..2],
        [
            (
                6_000,
                Event::Timeout {
                    tx: inv,
                    branch: B0,
                    timer: TimerKind::CancelWait
                }
            ),
            (
                6_000,
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
    h.send(inv, 487, 10_000);
    h.drain_to_empty();
}

/// Upper bound for what a finished transaction keeps: its last reply (to
/// answer a retransmitted request) plus one hop-by-hop ACK (to answer a
/// retransmitted non-2xx final), whatever the request's size.
#[test]
fn finished_transaction_bytes_do_not_depend_on_the_request() {
    for request_size in [600, 60_000] {
        // A failed INVITE: the heaviest finished shape (reply and ACK kept).
        let mut h = H::new();
        let tx = h.create("z9hG4bKa", Method::Invite, true, 0);
        let request = sized("INVITE sip:bob@example.com SIP/2.0", 1, request_size);
        h.t.add_branch(
            tx,
            ckey("z9hG4bKb", Method::Invite),
            "down",
            request,
            h.at(0),
        )
        .expect("add_branch");
        let at = h.at(100);
        let ringing = sized("SIP/2.0 180 Ringing", 1, RINGING);
        h.t.handle_reply(
            &ckey("z9hG4bKb", Method::Invite),
            180,
            ringing,
            at,
            small_ack,
        );
        let busy = sized("SIP/2.0 486 Busy Here", 1, 400);
        let matched = h.t.handle_reply(
            &ckey("z9hG4bKb", Method::Invite),
            486,
            busy,
            h.at(200),
            small_ack,
        );
        assert!(matches!(matched, ReplyMatch::Matched(_)));
        let relayed = sized("SIP/2.0 486 Busy Here", 1, 400 - VIA);
        h.t.send_reply(tx, 486, relayed, h.at(200))
            .expect("relay 486");
        assert_eq!(
            h.t.retained_bytes_of(tx),
            Some(400 - VIA + ACK),
            "{request_size}-byte INVITE, 486 relayed: last reply + ACK"
        );
        h.t.handle_request(&skey("z9hG4bKa", Method::Ack), h.at(300));
        assert_eq!(
            h.t.retained_bytes_of(tx),
            Some(ACK),
            "{request_size}-byte INVITE after the ACK: Confirmed re-sends nothing"
        );
        assert_eq!(h.t.retained_bytes(), ACK);
        h.drain_to_empty();
        assert_eq!(h.t.retained_bytes(), 0);

        // An answered INVITE: Accepted re-sends nothing, the 2xx ACK is the
        // caller's, so nothing at all is kept.
        let mut h = H::new();
        let tx = h.create("z9hG4bKa", Method::Invite, true, 0);
        let request = sized("INVITE sip:bob@example.com SIP/2.0", 1, request_size);
        h.t.add_branch(
            tx,
            ckey("z9hG4bKb", Method::Invite),
            "down",
            request,
            h.at(0),
        )
        .expect("add_branch");
        h.matched("z9hG4bKb", Method::Invite, 200, 100);
        h.send(tx, 200, 100);
        assert_eq!(h.t.retained_bytes_of(tx), Some(0), "{request_size}");
        h.drain_to_empty();
    }
}

/// Drives one typical call (INVITE → 100, 180, 200; ACK; BYE → 200) and
/// reports, with `cargo test -- --nocapture`, what each transaction holds
/// while live and once finished.
#[test]
fn bytes_per_transaction_of_a_typical_call() {
    let mut h = H::new();
    let mut c = Caller::default();
    let inv = {
        let at = h.at(0);
        c.invite(&mut h.t, 0, at)
    };
    let calling = h.t.retained_bytes_of(inv).expect("live");
    // Live: the request (Timer A, CANCEL and ACK are built from it) and the
    // 100 (re-sent to a retransmitted INVITE).
    assert_eq!(calling, INVITE + TRYING);
    {
        let at = h.at(20);
        c.ringing(&mut h.t, 0, at)
    };
    let ringing = h.t.retained_bytes_of(inv).expect("live");
    assert_eq!(ringing, INVITE + RINGING - VIA, "the 180 replaced the 100");
    {
        let at = h.at(1_000);
        c.answer(&mut h.t, 0, at)
    };
    let answered = h.t.retained_bytes_of(inv).expect("in Accepted");
    assert_eq!(answered, 0);
    let bye = {
        let at = h.at(3_000);
        c.bye(&mut h.t, 0, at)
    };
    let bye_live = h.t.retained_bytes_of(bye).expect("live");
    assert_eq!(bye_live, BYE);
    {
        let at = h.at(3_020);
        c.bye_ok(&mut h.t, 0, at)
    };
    let bye_done = h.t.retained_bytes_of(bye).expect("in Completed");
    assert_eq!(bye_done, OK_BYE - VIA, "the 200, for a retransmitted BYE");
    println!(
        "typical call ({INVITE}-byte INVITE): payload bytes held per transaction: \
         INVITE live {calling} (calling) / {ringing} (ringing), finished {answered}; \
         BYE live {bye_live}, finished {bye_done}"
    );
    println!(
        "fixed part per transaction (not in retained_bytes): ProxyTx {} B + {} B per \
         branch, plus its keys (Via branch, sent-by, each once in the struct and once \
         in an index) and the caller's user data",
        std::mem::size_of::<ProxyTx<u32, Dest>>(),
        std::mem::size_of::<crate::tsx::proxy::Branch<Dest>>(),
    );
    h.drain_to_empty();
}

/// A reply from downstream on `branch` of call `n`, relayed (after the Via
/// pop) as the table says it must be.
fn downstream(
    t: &mut Table<u32, Dest>,
    tx: TxId,
    branch: &ClientKey,
    code: u16,
    size: usize,
    n: usize,
    now: Instant,
) {
    let reply = sized(&format!("SIP/2.0 {code} x"), n, size);
    match t.handle_reply(branch, code, reply, now, small_ack) {
        ReplyMatch::Matched(m) if m.disposition == Disposition::Relay => {
            let relayed = sized(&format!("SIP/2.0 {code} x"), n, size - VIA);
            t.send_reply(tx, code, relayed, now).expect("relay");
        }
        other => panic!("call {n}: {code} got {other:?}"),
    }
}

/// The caller side of the load test: the messages of call `n`, and the
/// transactions it created.
#[derive(Default)]
struct Caller {
    invites: Vec<Option<TxId>>,
    byes: Vec<Option<TxId>>,
}

impl Caller {
    fn invite(&mut self, t: &mut Table<u32, Dest>, n: usize, now: Instant) -> TxId {
        let key = skey(&format!("z9hG4bKi{n}"), Method::Invite);
        assert_eq!(t.handle_request(&key, now), RequestMatch::NoMatch);
        let trying = sized("SIP/2.0 100 Trying", n, TRYING);
        let tx = match t.create(key, UPSTREAM, 0, Some(trying), now) {
            Ok(tx) => tx,
            Err(e) => panic!("call {n}: {e}"),
        };
        let request = sized("INVITE sip:bob@example.com SIP/2.0", n, INVITE);
        t.add_branch(
            tx,
            ckey(&format!("z9hG4bKo{n}"), Method::Invite),
            "down",
            request,
            now,
        )
        .expect("add_branch");
        if self.invites.len() <= n {
            self.invites.resize(n + 1, None);
            self.byes.resize(n + 1, None);
        }
        self.invites[n] = Some(tx);
        tx
    }

    fn ringing(&self, t: &mut Table<u32, Dest>, n: usize, now: Instant) {
        let tx = self.invites[n].expect("INVITE sent");
        let branch = ckey(&format!("z9hG4bKo{n}"), Method::Invite);
        downstream(t, tx, &branch, 180, RINGING, n, now);
    }

    fn answer(&self, t: &mut Table<u32, Dest>, n: usize, now: Instant) {
        let tx = self.invites[n].expect("INVITE sent");
        let branch = ckey(&format!("z9hG4bKo{n}"), Method::Invite);
        downstream(t, tx, &branch, 200, OK_SDP, n, now);
    }

    /// The 2xx ACK is a request of its own: the script forwards it.
    fn ack(&self, t: &mut Table<u32, Dest>, n: usize, now: Instant) {
        let key = skey(&format!("z9hG4bKa{n}"), Method::Ack);
        assert_eq!(t.handle_request(&key, now), RequestMatch::NoMatch);
    }

    fn bye(&mut self, t: &mut Table<u32, Dest>, n: usize, now: Instant) -> TxId {
        let key = skey(&format!("z9hG4bKb{n}"), bye());
        assert_eq!(t.handle_request(&key, now), RequestMatch::NoMatch);
        let tx = match t.create(key, UPSTREAM, 0, None, now) {
            Ok(tx) => tx,
            Err(e) => panic!("BYE of call {n}: {e}"),
        };
        let request = sized("BYE sip:bob@192.0.2.9 SIP/2.0", n, BYE);
        t.add_branch(
            tx,
            ckey(&format!("z9hG4bKc{n}"), bye()),
            "down",
            request,
            now,
        )
        .expect("add_branch");
        self.byes[n] = Some(tx);
        tx
    }

    fn bye_ok(&self, t: &mut Table<u32, Dest>, n: usize, now: Instant) {
        let tx = self.byes[n].expect("BYE sent");
        downstream(
            t,
            tx,
            &ckey(&format!("z9hG4bKc{n}"), bye()),
            200,
            OK_BYE,
            n,
            now,
        );
    }
}

/// 2000 calls/s for 60 simulated seconds through the public API, the clock
/// moved by hand in 10 ms steps and `handle_timeout` called at every
/// deadline, like the reactor. With the default configuration the table
/// never fills, its size stays under the steady-state bound, and it empties
/// once the traffic stops.
#[test]
fn two_thousand_calls_per_second_for_a_minute() {
    const STEP_MS: u64 = 10;
    const CALLS_PER_STEP: usize = 20; // 2000 calls/s
    const SECONDS: u64 = 60;
    // Each call's script, in steps after the INVITE: 180 after 20 ms, 200
    // after 1 s, ACK 20 ms later, BYE 2 s after the answer, its 200 20 ms
    // later.
    const RINGING_AT: u64 = 2;
    const ANSWER_AT: u64 = 100;
    const ACK_AT: u64 = 102;
    const BYE_AT: u64 = 300;
    const BYE_OK_AT: u64 = 302;
    let wt_steps = DEFAULT_WT_TIMER.as_millis() as u64 / STEP_MS;
    // The INVITE transaction lives until wt_timer after the 200 (Timers L
    // and M), the BYE until wt_timer after its 200 (Timers J and K); one
    // step more each for the free on the following handle_timeout.
    let steady = CALLS_PER_STEP
        * ((ANSWER_AT + wt_steps + 1) + (BYE_OK_AT - BYE_AT + wt_steps + 1)) as usize;

    let mut h = H::new();
    assert_eq!(h.t.config().wt_timer, DEFAULT_WT_TIMER);
    let mut c = Caller::default();
    let start_steps = SECONDS * 1_000 / STEP_MS;
    let mut peak_len = 0;
    let mut peak_bytes = 0;
    let mut unexpected: VecDeque<Event<Dest>> = VecDeque::new();
    for step in 0..=start_steps + BYE_OK_AT {
        let now = h.at(step * STEP_MS);
        while let Some(d) = h.t.next_deadline().filter(|&d| d <= now) {
            h.t.handle_timeout(d);
            while h.t.poll_transmit().is_some() {}
            unexpected.extend(
                h.events()
                    .into_iter()
                    .filter(|e| !matches!(e, Event::Freed { .. })),
            );
        }
        let calls_from = |offset: u64| {
            step.checked_sub(offset)
                .filter(|&s| s < start_steps)
                .map(|s| s as usize * CALLS_PER_STEP..(s as usize + 1) * CALLS_PER_STEP)
                .into_iter()
                .flatten()
        };
        for n in calls_from(0) {
            c.invite(&mut h.t, n, now);
        }
        for n in calls_from(RINGING_AT) {
            c.ringing(&mut h.t, n, now);
        }
        for n in calls_from(ANSWER_AT) {
            c.answer(&mut h.t, n, now);
        }
        for n in calls_from(ACK_AT) {
            c.ack(&mut h.t, n, now);
        }
        for n in calls_from(BYE_AT) {
            c.bye(&mut h.t, n, now);
        }
        for n in calls_from(BYE_OK_AT) {
            c.bye_ok(&mut h.t, n, now);
        }
        while h.t.poll_transmit().is_some() {}
        unexpected.extend(
            h.events()
                .into_iter()
                .filter(|e| !matches!(e, Event::Freed { .. })),
        );
        peak_len = peak_len.max(h.t.len());
        peak_bytes = peak_bytes.max(h.t.retained_bytes());
        assert!(
            h.t.len() <= steady,
            "{} transactions at {} ms, above the steady state {steady}",
            h.t.len(),
            step * STEP_MS
        );
    }
    assert!(unexpected.is_empty(), "{:?}", unexpected.front());
    assert!(
        peak_len >= steady * 9 / 10,
        "the load reached its steady state: {peak_len} of {steady}"
    );
    println!(
        "2000 calls/s: peak {peak_len} transactions (bound {steady}, max_transactions {}), \
         peak {peak_bytes} payload bytes",
        h.t.config().max_transactions
    );
    h.drain_to_empty();
    assert_eq!(h.t.retained_bytes(), 0);
}
