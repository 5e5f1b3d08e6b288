//! Runtime trace filters, whole-dialog tracing and trace_mode with
//! event_route[siptrace:msg] (docs/decisions.md §16), through the real
//! daemon: filters set with scripts/kamctl (MI) and
//! Debian's /usr/sbin/kamctl (JSON-RPC), calls made by sipp and by hand,
//! rows read back from the SQLite table. trace_on is off in every filter
//! test: what is stored is what the filters asked for. The trace_mode
//! scripts never call sip_trace() nor set a flag.
//!
//! scripts/test installs sipp and the `kamailio` package; without them
//! these tests fail, they do not skip.

mod common;
use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The stateful proxy of tests/sipp.rs, with tracing switched off: the
/// script asks for the usual rows (sip_trace() on initial requests, the
/// flag on all), trace_on 0 makes them none.
const CFG: &str = r#"#!KAMAILIO
listen=udp:127.0.0.1:@PORT@
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "rr.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "mi_fifo.so"
loadmodule "jsonrpcs.so"
loadmodule "siptrace.so"
modparam("mi_fifo", "fifo_name", "@FIFO@")
modparam("jsonrpcs", "fifo_name", "@RPCFIFO@")
modparam("siptrace", "db_url", "sqlite://@DB@")
modparam("siptrace", "trace_on", 0)
modparam("siptrace", "trace_flag", 22)
modparam("tm", "retr_timer1", 100)
modparam("tm", "retr_timer2", 400)

request_route {
    if (!has_totag()) {
        sip_trace();
    }
    setflag(22);
    if (has_totag()) {
        if (!loose_route()) {
            if (is_method("ACK") && t_check_trans()) {
                exit;
            }
            $du = "sip:127.0.0.1:" + UAS_PORT;
        }
        t_relay();
        exit;
    }
    record_route();
    $du = "sip:127.0.0.1:" + UAS_PORT;
    t_relay();
}
"#;

/// What a whole call through the stateful proxy leaves when a filter
/// traces it: every request in and out, every reply in and out, tm's 100.
const WHOLE_CALL: &[&str] = &[
    "in INVITE",
    "out INVITE 100",
    "out INVITE",
    "in INVITE 180",
    "out INVITE 180",
    "in INVITE 200",
    "out INVITE 200",
    "in ACK",
    "out ACK",
    "in BYE",
    "out BYE",
    "in BYE 200",
    "out BYE 200",
];

/// Returns once the rows of every datagram sent before the call are
/// written: a datagram is read in some turn N; an MI request sent after it
/// is answered in turn N or later, but possibly before turn N's rows are
/// written (they are written at the end of the turn); a second request,
/// sent after that answer, is read in a later turn than N.
fn settle(d: &Daemon) {
    for _ in 0..2 {
        let out = d.kamctl(&["fifo", "sip_trace"]);
        assert!(out.status.success(), "{out:?}");
    }
}

fn kind(r: &TraceRow) -> String {
    format!("{} {} {}", r.direction, r.method, r.status)
        .trim_end()
        .to_string()
}

/// Rows per Call-ID, each as its sorted kinds.
fn calls(rows: &[TraceRow]) -> BTreeMap<String, Vec<String>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in rows {
        m.entry(r.callid.clone()).or_default().push(kind(r));
    }
    for v in m.values_mut() {
        v.sort();
    }
    m
}

/// The `matched=` count of the first filter a `list` reply shows.
fn matched(list: &str) -> u64 {
    list.split("matched=")
        .nth(1)
        .and_then(|s| s.split('\n').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no matched= in {list}"))
}

fn whole_call() -> Vec<String> {
    let mut v: Vec<String> = WHOLE_CALL.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// A sipp UAS and the daemon in front of it.
struct Bench {
    d: Daemon,
    uas_port: u16,
}

impl Bench {
    fn start(tag: &str) -> Bench {
        let uas_port = free_udp_port();
        let arg = format!("UAS_PORT={uas_port}");
        let d = Daemon::start_with(tag, CFG, &["-A", &arg]);
        Bench { d, uas_port }
    }

    /// A sipp UAS answering `n` calls.
    fn uas(&self, n: usize) -> Child {
        let uas = sipp_at(&[
            "-sn",
            "uas",
            "-p",
            &self.uas_port.to_string(),
            "-m",
            &n.to_string(),
        ])
        .spawn()
        .expect("sipp installed (apt-get install sip-tester)");
        std::thread::sleep(Duration::from_millis(300));
        uas
    }

    /// `n` calls to user `user`, call ids `<cid>-<n>`, as a child.
    fn uac(&self, user: &str, cid: &str, n: usize) -> Child {
        let target = self.d.addr().to_string();
        sipp_at(&[
            "-sn",
            "uac",
            &target,
            "-s",
            user,
            "-cid_str",
            &format!("{cid}-%u"),
            "-p",
            &free_udp_port().to_string(),
            "-m",
            &n.to_string(),
            "-r",
            "50",
            "-timeout",
            "40s",
            "-timeout_error",
        ])
        .spawn()
        .unwrap()
    }

    /// `n` calls to `user`, waited for, with their own UAS.
    fn calls(&self, user: &str, cid: &str, n: usize) {
        let uas = self.uas(n);
        wait_sipp_ok(self.uac(user, cid, n), "uac");
        wait_sipp_ok(uas, "uas");
    }

    /// scripts/kamctl fifo sip_trace_filter …; its stdout (kamctl drops
    /// the `200 OK` line and empty lines).
    fn mi(&self, args: &[&str]) -> String {
        let mut a = vec!["fifo", "sip_trace_filter"];
        a.extend_from_slice(args);
        let out = self.d.kamctl(&a);
        assert!(out.status.success(), "kamctl {a:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The rows stored once every earlier datagram was handled (see
    /// [`settle`]).
    fn settled_rows(&self) -> Vec<TraceRow> {
        settle(&self.d);
        self.d.rows()
    }
}

/// sipp with this file's address options.
fn sipp_at(args: &[&str]) -> Command {
    let mut c = sipp(args);
    c.args(["-i", "127.0.0.1"]);
    c
}

#[test]
fn user_filter_traces_only_that_users_calls_whole_until_it_expires() {
    let b = Bench::start("flt-user");
    // Load from several users at once; only alice's calls are wanted.
    let uas = b.uas(30);
    let t0 = Instant::now();
    assert_eq!(b.mi(&["add", "user", "alice", "5"]), "id:: 1\n");
    let uacs = [
        b.uac("alice", "alice", 10),
        b.uac("bob", "bob", 10),
        b.uac("carol", "carol", 10),
    ];
    // 10 calls of 13 rows each (INVITE through BYE 200, both ways). sipp
    // itself lingers (its scenarios end with a time-wait): not waited for
    // before the filter is checked.
    let rows = b.d.wait_rows(10 * WHOLE_CALL.len());
    let list = b.mi(&["list"]);
    assert!(
        list.starts_with("filter:: 1 kind=user value=alice ttl="),
        "the filter must still be live when the calls are done (it was given 5 s, they took {:?}): {list}",
        t0.elapsed()
    );
    for u in uacs {
        wait_sipp_ok(u, "uac");
    }
    wait_sipp_ok(uas, "uas");
    assert_eq!(rows.len(), 10 * WHOLE_CALL.len());
    // Everything stored, once the load is over: alice's calls only.
    let rows = b.settled_rows();
    let got = calls(&rows);
    let want: BTreeMap<String, Vec<String>> = (1..=10)
        .map(|i| (format!("alice-{i}"), whole_call()))
        .collect();
    assert_eq!(got, want);
    assert!(rows.iter().all(|r| r.traced_user.is_empty()));

    // Expiry is logged and the filter leaves the list.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !b.mi(&["list"]).is_empty() {
        assert!(Instant::now() < deadline, "filter never expired");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        b.d.log_text()
            .contains("trace filter 1 (user alice) expired after matching"),
        "{}",
        b.d.log_text()
    );
    // After expiry nothing more is stored.
    let before = rows.len();
    b.calls("alice", "late", 3);
    assert_eq!(b.settled_rows().len(), before);
}

#[test]
fn ip_and_callid_filters_and_del_stops_at_once() {
    let b = Bench::start("flt-ip");
    // An address nobody uses: nothing.
    assert_eq!(b.mi(&["add", "ip", "127.0.0.2"]), "id:: 1\n");
    b.calls("dave", "none", 2);
    assert!(b.settled_rows().is_empty());
    // Every message comes from or goes to 127.0.0.1: every call, whole.
    assert_eq!(b.mi(&["add", "ip", "127.0.0.1", "600"]), "id:: 2\n");
    b.calls("dave", "ip", 2);
    let got = calls(&b.d.wait_rows(2 * WHOLE_CALL.len()));
    let want: BTreeMap<String, Vec<String>> =
        (1..=2).map(|i| (format!("ip-{i}"), whole_call())).collect();
    assert_eq!(got, want);
    // del stops tracing at once: the next calls leave nothing.
    assert_eq!(b.mi(&["del", "2"]), "deleted:: 1\n");
    b.calls("dave", "deleted", 2);
    assert_eq!(calls(&b.settled_rows()), want);
    assert_eq!(
        b.mi(&["del", "2"]),
        "400 no filter with id 2\n",
        "a deleted filter is gone"
    );
    assert_eq!(b.mi(&["del", "all"]), "deleted:: 1\n");

    // One Call-ID among several calls.
    assert_eq!(b.mi(&["add", "callid", "cid-2"]), "id:: 3\n");
    b.calls("erin", "cid", 3);
    let got = calls(&b.d.wait_rows(3 * WHOLE_CALL.len()));
    let mut want = want;
    want.insert("cid-2".into(), whole_call());
    assert_eq!(got, want);
    let list = b.mi(&["list"]);
    assert!(
        list.starts_with("filter:: 3 kind=callid value=cid-2 ttl="),
        "{list}"
    );
    // INVITE, ACK, BYE and the replies received, each counted once.
    assert!(matched(&list) >= 6, "{list}");
    // Refusals say why.
    assert_eq!(
        b.mi(&["add", "ip", "example.com"]),
        "400 'example.com' is not an IP address\n"
    );
    assert_eq!(
        b.mi(&["add", "phone", "123"]),
        "400 unknown filter kind 'phone': use user, ip or callid\n"
    );
}

const KAMCTL: &str = "/usr/sbin/kamctl";

/// Debian's kamctl (JSON-RPC), pointed at our FIFO through ~/.kamctlrc.
fn debian_kamctl(d: &Daemon, home: &TempDir, args: &[&str]) -> String {
    assert!(
        Path::new(KAMCTL).exists(),
        "{KAMCTL} is missing: install Debian's kamailio package (scripts/test does)"
    );
    std::fs::write(
        home.join(".kamctlrc"),
        format!("RPCFIFOPATH={}\n", d.rpc_fifo.display()),
    )
    .unwrap();
    let mut cmd = Command::new(KAMCTL);
    cmd.args(args)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .env("HOME", home.path());
    let (_, out) = run_in_group(&mut cmd, Duration::from_secs(20));
    assert!(out.status.success(), "kamctl {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn filters_over_debian_kamctl_json_rpc() {
    let b = Bench::start("flt-rpc");
    let home = TempDir::new("flt-kamhome");
    // kamctl re-indents replies; compared with blanks collapsed.
    let flat = |s: String| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let out = flat(debian_kamctl(
        &b.d,
        &home,
        &["rpc", "siptrace.filter_add", "user", "frank", "300"],
    ));
    assert!(out.contains("\"result\": { \"id\": 1 }"), "{out}");
    let out = flat(debian_kamctl(
        &b.d,
        &home,
        &["rpc", "siptrace.filter_add", "callid", "x@y"],
    ));
    assert!(out.contains("\"result\": { \"id\": 2 }"), "{out}");
    b.calls("frank", "rpc", 1);
    b.d.wait_rows(WHOLE_CALL.len());
    let out = flat(debian_kamctl(&b.d, &home, &["rpc", "siptrace.filter_list"]));
    // frank's call: INVITE, ACK, BYE and sipp's 180, 200 and BYE's 200.
    for want in [
        "\"result\": [ { \"id\": 1, \"kind\": \"user\", \"value\": \"frank\", \"ttl\": ",
        " \"matched\": 6 }, { \"id\": 2, \"kind\": \"callid\", \"value\": \"x@y\", \"ttl\": ",
        " \"matched\": 0 } ],",
    ] {
        assert!(out.contains(want), "{want} in {out}");
    }
    let out = flat(debian_kamctl(
        &b.d,
        &home,
        &["rpc", "siptrace.filter_del", "all"],
    ));
    assert!(out.contains("\"result\": { \"deleted\": 2 }"), "{out}");
    let out = flat(debian_kamctl(&b.d, &home, &["rpc", "siptrace.filter_list"]));
    assert!(out.contains("\"result\": [ ]"), "{out}");
    assert_eq!(
        calls(&b.settled_rows()),
        BTreeMap::from([("rpc-1".to_string(), whole_call())])
    );
}

#[test]
fn a_live_filter_survives_a_restart_with_its_remaining_ttl() {
    let mut b = Bench::start("flt-restart");
    assert_eq!(b.mi(&["add", "user", "grace", "600"]), "id:: 1\n");
    b.calls("grace", "before", 1);
    b.d.wait_rows(WHOLE_CALL.len());
    let ttl = |list: &str| -> u64 {
        list.split("ttl=")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no ttl in {list}"))
    };
    let list = b.mi(&["list"]);
    let (before, count) = (ttl(&list), matched(&list));
    assert!(count >= 6, "{list}");
    assert_eq!(b.d.stop(), Some(0));
    b.d.spawn(&["-A", &format!("UAS_PORT={}", b.uas_port)]);
    let list = b.mi(&["list"]);
    assert!(
        list.starts_with("filter:: 1 kind=user value=grace ttl="),
        "{list}"
    );
    // The remaining TTL, not a new one: never more than before the restart.
    assert!(ttl(&list) <= before, "{before} then {list}");
    // Its match count was kept.
    assert_eq!(matched(&list), count, "{list}");
    assert!(
        b.d.log_text()
            .contains("trace filter 1 restored: user grace")
    );
    // And it still traces.
    b.calls("grace", "after", 1);
    let got = calls(&b.d.wait_rows(2 * WHOLE_CALL.len()));
    assert_eq!(
        got.keys().cloned().collect::<BTreeSet<_>>(),
        BTreeSet::from(["before-1".to_string(), "after-1".to_string()])
    );
    assert_eq!(got["after-1"], whole_call());
    // A new filter does not reuse the id.
    assert_eq!(b.mi(&["add", "user", "heidi"]), "id:: 2\n");
}

/// Dialog mode: sip_trace("", "", "d") on the initial INVITE only, trace_on
/// on, no trace_flag: the dialog module is not needed.
const DIALOG_CFG: &str = r#"#!KAMAILIO
listen=udp:127.0.0.1:@PORT@
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "rr.so"
loadmodule "siputils.so"
loadmodule "textops.so"
loadmodule "mi_fifo.so"
loadmodule "siptrace.so"
modparam("mi_fifo", "fifo_name", "@FIFO@")
modparam("siptrace", "db_url", "sqlite://@DB@")
modparam("siptrace", "trace_on", 1)
modparam("siptrace", "dialog_max", 5)
modparam("tm", "retr_timer1", 100)

request_route {
    if (has_totag()) {
        if (loose_route()) {
            t_relay();
            exit;
        }
        if (is_method("ACK") && t_check_trans()) {
            exit;
        }
        sl_send_reply("404", "Not here");
        exit;
    }
    if (is_method("INVITE")) {
        record_route();
        sip_trace("", "", "d");
    }
    t_relay();
}
"#;

/// Sends `req` from `from` through the proxy; returns it as `to` got it.
fn through(from: &Peer, to: &Peer, proxy: std::net::SocketAddr, req: &[u8]) -> Vec<u8> {
    from.send(proxy, req);
    loop {
        let (got, _) = to.recv();
        // tm's 100 Trying goes back to `from`, not here; skip nothing else.
        if !first_line(&got).starts_with("SIP/2.0 100") {
            return got;
        }
    }
}

/// `reply` from `uas` back through the proxy to `uac`; returns what came.
fn answer(uas: &Peer, uac: &Peer, proxy: std::net::SocketAddr, reply: &[u8]) {
    uas.send(proxy, reply);
    loop {
        let (got, _) = uac.recv();
        if !first_line(&got).starts_with("SIP/2.0 100") {
            assert_eq!(first_line(&got), first_line(reply));
            return;
        }
    }
}

#[test]
fn dialog_mode_stores_a_call_with_reinvite_and_bye_whole() {
    let d = Daemon::start("dlg-whole", DIALOG_CFG);
    let (uac, uas) = (Peer::new(), Peer::new());
    let (a, p, u) = (uac.addr(), d.addr(), uas.addr());
    let cid = "dlg-1";
    let inv = sip_invite(a, p, u, cid, "d");
    let fwd = through(&uac, &uas, p, &inv);
    answer(
        &uas,
        &uac,
        p,
        &reply_to(&fwd, 200, "OK", &format!("tt-{cid}")),
    );
    let ack = sip_in_dialog("ACK", 1, a, p, u, cid, "d", "ack1");
    through(&uac, &uas, p, &ack);
    // re-INVITE from the caller, answered, acknowledged.
    let reinv = sip_in_dialog("INVITE", 2, a, p, u, cid, "d", "reinv");
    let got = through(&uac, &uas, p, &reinv);
    answer(&uas, &uac, p, &reply_to(&got, 200, "OK", ""));
    through(
        &uac,
        &uas,
        p,
        &sip_in_dialog("ACK", 2, a, p, u, cid, "d", "ack2"),
    );
    // BYE and its 200.
    let bye = sip_in_dialog("BYE", 3, a, p, u, cid, "d", "bye");
    let got = through(&uac, &uas, p, &bye);
    answer(&uas, &uac, p, &reply_to(&got, 200, "OK", ""));
    let want = [
        "in INVITE",
        "out INVITE 100",
        "out INVITE",
        "in INVITE 200",
        "out INVITE 200",
        "in ACK",
        "out ACK",
        "in INVITE",
        "out INVITE 100",
        "out INVITE",
        "in INVITE 200",
        "out INVITE 200",
        "in ACK",
        "out ACK",
        "in BYE",
        "out BYE",
        "in BYE 200",
        "out BYE 200",
    ];
    let rows = d.wait_rows(want.len());
    let mut got: Vec<String> = rows.iter().map(kind).collect();
    let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    assert!(rows.iter().all(|r| r.callid == cid));
    // A request of another call that is not traced whole is not stored.
    let stray = sip_in_dialog("BYE", 9, a, p, u, "other", "d", "stray");
    let got = through(&uac, &uas, p, &stray);
    answer(&uas, &uac, p, &reply_to(&got, 200, "OK", ""));
    settle(&d);
    assert_eq!(d.rows().len(), want.len());
}

#[test]
fn tracked_dialogs_stay_bounded_under_a_flood_of_dialogs_that_never_end() {
    let d = Daemon::start("dlg-flood", DIALOG_CFG);
    let (uac, uas) = (Peer::new(), Peer::new());
    let (a, p, u) = (uac.addr(), d.addr(), uas.addr());
    for i in 0..40 {
        let cid = format!("flood-{i}");
        let fwd = through(&uac, &uas, p, &sip_invite(a, p, u, &cid, "f"));
        answer(
            &uas,
            &uac,
            p,
            &reply_to(&fwd, 200, "OK", &format!("tt-{cid}")),
        );
    }
    let mi = |cmd: &str| {
        let out = d.kamctl(&["fifo", cmd, "dialogs"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let out = mi("sip_trace_filter");
    assert!(out.starts_with("dialogs:: 5\nbytes:: "), "{out}");
    let out = d.kamctl(&["fifo", "core_limits"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("dialog_max:: 5 hits=35\n"), "{text}");
    assert!(
        d.log_text().contains("limit dialog_max (5) reached"),
        "{}",
        d.log_text()
    );
    // Every INVITE was still traced (its transaction), whole dialog or not.
    let rows = d.wait_rows(40 * 5);
    assert_eq!(
        rows.iter().filter(|r| kind(r) == "in INVITE").count(),
        40,
        "one in INVITE row per call"
    );
}

/// trace_mode=2: a script that never calls sip_trace() nor sets a flag.
const TRACE_MODE_CFG: &str = r#"#!KAMAILIO
listen=udp:127.0.0.1:@PORT@
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "rr.so"
loadmodule "siputils.so"
loadmodule "textops.so"
loadmodule "mi_fifo.so"
loadmodule "siptrace.so"
modparam("mi_fifo", "fifo_name", "@FIFO@")
modparam("siptrace", "db_url", "sqlite://@DB@")
modparam("siptrace", "trace_on", 1)
modparam("siptrace", "trace_mode", 2)
modparam("tm", "retr_timer1", 100)

request_route {
    if (is_method("OPTIONS")) {
        sl_send_reply("200", "OK");
        exit;
    }
    if (has_totag()) {
        if (loose_route()) {
            t_relay();
            exit;
        }
        if (is_method("ACK") && t_check_trans()) {
            exit;
        }
        sl_send_reply("404", "Not here");
        exit;
    }
    record_route();
    t_relay();
}

#!ifdef DROP_OPTIONS
event_route[siptrace:msg] {
    if (is_method("OPTIONS|NOTIFY")) {
        drop();
    }
}
#!endif
"#;

/// An OPTIONS answered by the script (Call-ID `<tag>-opt`), then a call
/// with tm (`<tag>-call`): INVITE, 200, ACK, BYE, 200.
fn options_then_call(d: &Daemon, tag: &str) {
    let (uac, uas) = (Peer::new(), Peer::new());
    let (a, p, u) = (uac.addr(), d.addr(), uas.addr());
    let reply = send_options(&uac, p, &format!("{tag}-opt"));
    assert!(first_line(&reply).starts_with("SIP/2.0 200"));
    let cid = format!("{tag}-call");
    let fwd = through(&uac, &uas, p, &sip_invite(a, p, u, &cid, "m"));
    answer(
        &uas,
        &uac,
        p,
        &reply_to(&fwd, 200, "OK", &format!("tt-{cid}")),
    );
    through(
        &uac,
        &uas,
        p,
        &sip_in_dialog("ACK", 1, a, p, u, &cid, "m", "ack"),
    );
    let got = through(
        &uac,
        &uas,
        p,
        &sip_in_dialog("BYE", 2, a, p, u, &cid, "m", "bye"),
    );
    answer(&uas, &uac, p, &reply_to(&got, 200, "OK", ""));
}

/// Every message of the call, in and out, once each.
const CALL_ALL: &[&str] = &[
    "in INVITE",
    "out INVITE 100",
    "out INVITE",
    "in INVITE 200",
    "out INVITE 200",
    "in ACK",
    "out ACK",
    "in BYE",
    "out BYE",
    "in BYE 200",
    "out BYE 200",
];

fn sorted(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

#[test]
fn trace_mode_stores_every_message_in_and_out_once() {
    let d = Daemon::start("tmode", TRACE_MODE_CFG);
    options_then_call(&d, "tm");
    let mut want = CALL_ALL.to_vec();
    want.extend(["in OPTIONS", "out OPTIONS 200"]);
    let rows = d.wait_rows(want.len());
    settle(&d);
    let rows2 = d.rows();
    assert_eq!(rows.len(), rows2.len());
    let mut got: Vec<String> = rows2.iter().map(kind).collect();
    got.sort();
    assert_eq!(got, sorted(&want));
    // Subject to trace_on.
    d.kamctl(&["fifo", "sip_trace", "off"]);
    options_then_call(&d, "off");
    settle(&d);
    assert_eq!(d.rows().len(), want.len());
}

#[test]
fn trace_mode_event_route_drops_options() {
    let d = Daemon::start_with("tmode-drop", TRACE_MODE_CFG, &["-A", "DROP_OPTIONS"]);
    options_then_call(&d, "dr");
    let rows = d.wait_rows(CALL_ALL.len());
    settle(&d);
    let rows2 = d.rows();
    assert_eq!(rows.len(), rows2.len());
    let mut got: Vec<String> = rows2.iter().map(kind).collect();
    got.sort();
    assert_eq!(got, sorted(CALL_ALL));
    assert!(rows2.iter().all(|r| r.method != "OPTIONS"));
}

#[test]
fn filtered_invite_rejected_is_stored_once_each_and_leaves_no_dialog() {
    let b = Bench::start("flt-486");
    let uas = Peer::bind(&format!("127.0.0.1:{}", b.uas_port));
    let uac = Peer::new();
    let (a, p, u) = (uac.addr(), b.d.addr(), uas.addr());
    let cid = "busy-1";
    assert_eq!(b.mi(&["add", "callid", cid]), "id:: 1\n");
    let fwd = through(&uac, &uas, p, &sip_invite(a, p, u, cid, "b"));
    answer(
        &uas,
        &uac,
        p,
        &reply_to(&fwd, 486, "Busy Here", &format!("tt-{cid}")),
    );
    // The ACK for the 486: tm absorbs it (and sent its own to the UAS).
    let (ack, _) = uas.recv();
    assert!(first_line(&ack).starts_with("ACK "), "{}", first_line(&ack));
    uac.send(
        p,
        &sip_in_dialog("ACK", 1, a, p, u, cid, "b", &format!("inv-{cid}")),
    );
    let want = sorted(&[
        "in INVITE",
        "out INVITE 100",
        "out INVITE",
        "in INVITE 486",
        "out INVITE 486",
        "out ACK",
        "in ACK",
    ]);
    b.d.wait_rows(want.len());
    let rows = b.settled_rows();
    let mut got: Vec<String> = rows.iter().map(kind).collect();
    got.sort();
    assert_eq!(got, want);
    // A failed INVITE creates no dialog.
    assert!(b.mi(&["dialogs"]).starts_with("dialogs:: 0\n"));
}

#[test]
fn trace_mode_4_sends_a_raw_copy_of_each_message_and_no_row() {
    let capture = Peer::new();
    let cfg = TRACE_MODE_CFG
        .replace(
            "modparam(\"siptrace\", \"trace_mode\", 2)",
            &format!(
                "modparam(\"siptrace\", \"trace_mode\", 4)\n\
                 modparam(\"siptrace\", \"duplicate_uri\", \"sip:{}\")",
                capture.addr()
            ),
        )
        .replace("#!ifdef DROP_OPTIONS", "#!ifdef NEVER");
    let d = Daemon::start("tmode-raw", &cfg);
    let uac = Peer::new();
    let reply = send_options(&uac, d.addr(), "raw-1");
    // The request as received, then the reply as sent: byte for byte.
    let (first, _) = capture.recv();
    let (second, _) = capture.recv();
    assert!(
        first_line(&first).starts_with("OPTIONS sip:ping@"),
        "{}",
        first_line(&first)
    );
    assert_eq!(header(&first, "Call-ID").as_deref(), Some("raw-1"));
    assert_eq!(second, reply);
    settle(&d);
    assert!(d.rows().is_empty(), "bit 2 is not set: no rows");
}
