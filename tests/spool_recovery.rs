//! The spool through the real daemon, without stopping shared servers: a
//! database unreachable at start-up, kill -9 with rows spooled, SIGTERM
//! with the database down, torn and corrupted spool files, the size cap,
//! and an outage mid-traffic made by cutting the TCP path (a gate) to the
//! real PostgreSQL and MariaDB. The stop/start tests of the servers
//! themselves are in spool_faults.rs.

mod common;
mod spool_common;

use common::*;
use spool_common::*;
use std::path::PathBuf;
use std::time::Duration;

/// One `in` row per OPTIONS (sip_trace()), answered statelessly.
const CFG: &str = r#"#!KAMAILIO
listen=udp:127.0.0.1:@PORT@
loadmodule "sl.so"
loadmodule "mi_fifo.so"
loadmodule "siptrace.so"
modparam("mi_fifo", "fifo_name", "@FIFO@")
modparam("siptrace", "db_url", "@DBURL@")
modparam("siptrace", "trace_on", 1)
modparam("siptrace", "spool_dir", "@DIR@/spool")
modparam("siptrace", "db_connect_timeout_ms", 500)
@EXTRA@
request_route {
    sip_trace();
    sl_send_reply("200", "OK");
}
"#;

fn start(tag: &str, url: &str, extra: &str) -> Daemon {
    let cfg = CFG.replace("@DBURL@", url).replace("@EXTRA@", extra);
    Daemon::start(tag, &cfg)
}

/// Send OPTIONS `range`, each answered before the next: each one's row is
/// handed to the database (or the spool) before the next is sent.
fn send(d: &Daemon, uac: &Peer, range: std::ops::Range<usize>, body: usize) {
    for n in range {
        uac.send(d.addr(), &options(n, uac.port(), body));
        let (reply, _) = uac.recv();
        assert!(
            first_line(&reply).starts_with("SIP/2.0 200"),
            "OPTIONS {n} not routed"
        );
    }
}

fn names(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|n| format!("spool-{n:06}")).collect()
}

fn dead_url() -> String {
    format!("postgres://postgres@127.0.0.1:{}/nowhere", dead_port())
}

fn spool_segments(d: &Daemon) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(d.dir.join("spool"))
        .map(|it| {
            it.map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "spool"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn sigkill(d: &mut Daemon) {
    let mut c = d.child.take().expect("running");
    c.kill().unwrap();
    c.wait().unwrap();
}

#[test]
fn unreachable_at_start_then_kill_9_then_every_row_lands_once() {
    let mut d = start("sp-kill", &dead_url(), "");
    let uac = Peer::new();
    send(&d, &uac, 0..200, 0);
    let log = d.log_text();
    assert!(log.contains("database unreachable at start-up"), "{log}");
    let s = stats(&d);
    assert_eq!(
        (
            stat(&s, "rows_spooled"),
            stat(&s, "rows_written"),
            stat(&s, "rows_dropped")
        ),
        (200, 0, 0)
    );
    assert!(stat(&s, "spool_bytes") > 200 * 300, "{s:?}");
    assert!(s["db_state"].starts_with("down since 20"), "{s:?}");
    sigkill(&mut d);

    let db = SpoolDb::new(Server::Postgres);
    // Missing marker table: the daemon creates it.
    db.sql("DROP TABLE siptraced_spool_marker");
    set_db_url(&d, &db.url());
    d.spawn(&[]);
    wait_for("200 replayed rows", Duration::from_secs(20), || {
        db.count() >= 200
    });
    send(&d, &uac, 200..210, 0);
    wait_for("210 rows", Duration::from_secs(10), || db.count() >= 210);
    let rows = db.rows();
    check_once_in_order(&rows);
    let got: Vec<String> = rows.iter().map(|r| r.callid.clone()).collect();
    assert_eq!(got, names(0..210));
    let s = stats(&d);
    assert_eq!(
        (
            stat(&s, "rows_written"),
            stat(&s, "rows_spooled"),
            stat(&s, "rows_replayed"),
            stat(&s, "rows_dropped"),
            stat(&s, "spool_bytes"),
        ),
        (210, 0, 200, 0, 0)
    );
    assert_eq!(s["db_state"], "up");
    let log = d.log_text();
    assert!(log.contains("200 rows from an earlier run"), "{log}");
    assert!(
        log.contains("created table siptraced_spool_marker"),
        "{log}"
    );
    assert!(log.contains("spool drained: 200 rows replayed"), "{log}");
    assert_eq!(
        db.sql("SELECT count(*) FROM siptraced_spool_marker").trim(),
        "1"
    );
    assert!(spool_segments(&d).is_empty());
}

/// kill -9 in the middle of a replay: some rows are in the table, their
/// segment is still on disk. After the next start every row is there once
/// (the marker says which are already written).
#[test]
fn kill_9_during_replay_writes_nothing_twice() {
    let db = SpoolDb::new(Server::Postgres);
    let extra = "modparam(\"siptrace\", \"db_batch_rows\", 20)\n\
                 modparam(\"siptrace\", \"spool_max_mb\", 16)\n\
                 modparam(\"siptrace\", \"spool_fsync\", 0)";
    let mut d = start("sp-midreplay", &dead_url(), extra);
    let uac = Peer::new();
    send(&d, &uac, 0..2000, 2000);
    d.stop();
    set_db_url(&d, &db.url());
    d.spawn(&[]);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while db.count() == 0 {
        assert!(std::time::Instant::now() < deadline, "no replay");
        std::thread::sleep(Duration::from_millis(5));
    }
    sigkill(&mut d);
    let at_kill = db.count();
    d.spawn(&[]);
    wait_for("2000 rows", Duration::from_secs(30), || db.count() >= 2000);
    wait_for("an empty spool", Duration::from_secs(10), || {
        stat(&stats(&d), "spool_bytes") == 0
    });
    let rows = db.rows();
    check_once_in_order(&rows);
    let got: Vec<String> = rows.iter().map(|r| r.callid.clone()).collect();
    assert_eq!(got, names(0..2000));
    let s = stats(&d);
    let already = d
        .log_text()
        .lines()
        .filter(|l| l.contains("were in the database already"))
        .count();
    println!(
        "killed with {at_kill} of 2000 rows written; after restart: rows_written {}, \
         rows_replayed {} ({already} batches found already written)",
        stat(&s, "rows_written"),
        stat(&s, "rows_replayed")
    );
    assert_eq!(stat(&s, "rows_written"), 2000 - at_kill as u64);
    assert!(stat(&s, "rows_replayed") >= 2000 - at_kill as u64);
}

#[test]
fn sigterm_with_the_database_down_keeps_the_rows_for_the_next_start() {
    let mut d = start("sp-term", &dead_url(), "");
    let uac = Peer::new();
    send(&d, &uac, 0..30, 0);
    assert_eq!(d.stop(), Some(0));
    let log = d.log_text();
    assert!(log.contains("stopping with 30 rows in the spool"), "{log}");
    // Next start on SQLite (the file is created with its schema).
    set_db_url(&d, &format!("sqlite://{}", d.db.display()));
    d.spawn(&[]);
    let rows = d.wait_rows(30);
    let got: Vec<String> = rows.iter().map(|r| r.callid.clone()).collect();
    assert_eq!(got, names(0..30));
    assert_eq!(stat(&stats(&d), "rows_replayed"), 30);
}

#[test]
fn a_torn_or_corrupt_spool_tail_is_reported_cut_and_the_rest_replayed() {
    // (what is done to the file, what the log must say)
    type Damage = fn(&mut Vec<u8>);
    let cases: [(&str, Damage, &str); 3] = [
        ("torn", |f| f.truncate(f.len() - 30), "record cut short"),
        (
            "flipped",
            |f| {
                let at = f.len() - 40;
                f[at] ^= 0x20
            },
            "checksum mismatch",
        ),
        (
            "garbage",
            |f| f.extend_from_slice(&[0u8; 777]),
            "no record marker",
        ),
    ];
    for (tag, damage, says) in cases {
        let mut d = start(&format!("sp-{tag}"), &dead_url(), "");
        let uac = Peer::new();
        send(&d, &uac, 0..20, 0);
        d.stop();
        let segs = spool_segments(&d);
        assert_eq!(segs.len(), 1, "{segs:?}");
        let mut bytes = std::fs::read(&segs[0]).unwrap();
        damage(&mut bytes);
        std::fs::write(&segs[0], &bytes).unwrap();

        set_db_url(&d, &format!("sqlite://{}", d.db.display()));
        d.spawn(&[]);
        // The garbage case keeps all 20; the others lose the damaged last.
        let want = if tag == "garbage" { 20 } else { 19 };
        let rows = d.wait_rows(want);
        let got: Vec<String> = rows.iter().map(|r| r.callid.clone()).collect();
        assert_eq!(got, names(0..want), "{tag}");
        let log = d.log_text();
        assert!(
            log.contains(says) && log.contains("cut the last"),
            "{tag}: {log}"
        );
        let s = stats(&d);
        assert_eq!(stat(&s, "rows_replayed"), want as u64, "{tag}");
        // Let the last replay settle before the spool is looked at.
        wait_for("empty spool", Duration::from_secs(5), || {
            stat(&stats(&d), "spool_bytes") == 0
        });
        assert!(spool_segments(&d).is_empty(), "{tag}");
    }
}

#[test]
fn a_full_spool_drops_rows_counts_each_and_says_so() {
    // ~30 KB rows: a 1 MiB spool takes about 34 of them.
    for policy in ["drop", "stop"] {
        let extra = format!(
            "modparam(\"siptrace\", \"spool_max_mb\", 1)\n\
             modparam(\"siptrace\", \"spool_full_policy\", \"{policy}\")\n\
             modparam(\"siptrace\", \"spool_fsync\", 0)"
        );
        let mut d = start(&format!("sp-cap-{policy}"), &dead_url(), &extra);
        let uac = Peer::new();
        send(&d, &uac, 0..60, 30_000);
        // Small rows after the cap: "drop" still takes those that fit,
        // "stop" takes nothing until the spool has drained.
        send(&d, &uac, 60..65, 0);
        let s = stats(&d);
        let (spooled, dropped) = (stat(&s, "rows_spooled"), stat(&s, "rows_dropped"));
        assert_eq!(spooled + dropped, 65, "{policy}: {s:?}");
        assert!(stat(&s, "spool_bytes") <= 1 << 20, "{policy}: {s:?}");
        let small_kept = if policy == "drop" { 5 } else { 0 };
        let big_kept = spooled as usize - small_kept;
        assert!((30..=36).contains(&big_kept), "{policy}: {s:?}");
        assert_eq!(
            dropped,
            60 - big_kept as u64 + (5 - small_kept as u64),
            "{s:?}"
        );
        assert!(d.log_text().contains("spool full"), "{}", d.log_text());
        d.stop();
        // Every drop is in the log by the time the daemon has stopped.
        let log = d.log_text();
        assert!(log.contains(&format!("rows_dropped={dropped}")), "{log}");

        set_db_url(&d, &format!("sqlite://{}", d.db.display()));
        d.spawn(&[]);
        let rows = d.wait_rows(spooled as usize);
        let got: Vec<String> = rows.iter().map(|r| r.callid.clone()).collect();
        // The oldest rows are kept; the newest big ones were dropped.
        let mut want = names(0..big_kept);
        if policy == "drop" {
            want.extend(names(60..65));
        }
        assert_eq!(got, want, "{policy}");
    }
}

/// An outage mid-traffic: the TCP path to the server is cut (connections
/// reset, new ones refused) and restored, while OPTIONS keep coming.
fn outage_through_a_gate(server: Server) {
    let db = SpoolDb::new(server);
    let mut gate = Gate::new(db.port);
    let d = start("sp-gate", &db.url_via(gate.port), "");
    let uac = Peer::new();
    send(&d, &uac, 0..50, 0);
    wait_for("50 rows", Duration::from_secs(10), || db.count() >= 50);
    gate.close();
    send(&d, &uac, 50..120, 0);
    let s = stats(&d);
    assert!(s["db_state"].starts_with("down since"), "{s:?}");
    assert_eq!(stat(&s, "rows_spooled"), 70, "{s:?}");
    gate.open();
    // New rows keep coming while the spool is replayed.
    send(&d, &uac, 120..200, 0);
    wait_for("200 rows", Duration::from_secs(30), || db.count() >= 200);
    let rows = db.rows();
    check_once_in_order(&rows);
    let got: Vec<String> = rows.iter().map(|r| r.callid.clone()).collect();
    assert_eq!(got, names(0..200));
    let s = stats(&d);
    assert_eq!(stat(&s, "rows_written"), 200, "{s:?}");
    assert_eq!(stat(&s, "rows_replayed"), stat(&s, "rows_spooled"), "{s:?}");
    assert_eq!(stat(&s, "rows_dropped"), 0);
    assert_eq!(s["db_state"], "up");
    let log = d.log_text();
    assert!(
        log.contains("database down:") && log.contains("database is back"),
        "{log}"
    );
}

/// MariaDB answering too slowly ever to finish (it trickles its bytes, so
/// no per-read timeout fires): each write costs at most the I/O deadline,
/// the rows go to the spool, SIP keeps being answered, and once the server
/// behaves again every row lands once.
#[test]
fn a_mariadb_trickling_its_answers_costs_the_deadline_and_rows_are_spooled() {
    let db = SpoolDb::new(Server::Mariadb);
    let gate = Gate::new(db.port);
    let d = start("sp-trickle", &db.url_via(gate.port), "");
    let uac = Peer::new();
    send(&d, &uac, 0..5, 0);
    wait_for("5 rows", Duration::from_secs(10), || db.count() >= 5);
    gate.trickle(true);
    // An OPTIONS is answered before its row is written; the write then
    // stalls the turn for at most the deadline (5 s) and fails. The next
    // OPTIONS is answered once the turn is over.
    for n in 5..7 {
        uac.send(d.addr(), &options(n, uac.port(), 0));
        let reply = uac.try_recv(Duration::from_secs(30));
        assert!(reply.is_some(), "OPTIONS {n} not answered");
    }
    // The write that stalled has failed: the database is down, rows spool.
    wait_for("the deadline", Duration::from_secs(30), || {
        d.log_text().contains("no complete answer within")
    });
    let s = stats(&d);
    assert!(s["db_state"].starts_with("down since"), "{s:?}");
    assert!(stat(&s, "rows_spooled") >= 1, "{s:?}");
    // Still serving SIP (reconnect tries cost at most the connect timeout).
    send(&d, &uac, 7..10, 0);
    gate.trickle(false);
    send(&d, &uac, 10..12, 0);
    wait_for("12 rows", Duration::from_secs(30), || {
        db.count() >= 12 && stat(&stats(&d), "rows_spooled") == stat(&stats(&d), "rows_replayed")
    });
    let rows = db.rows();
    check_once_in_order(&rows);
    let got: Vec<String> = rows.iter().map(|r| r.callid.clone()).collect();
    assert_eq!(got, names(0..12));
}

#[test]
fn postgres_outage_mid_traffic_loses_and_repeats_nothing() {
    outage_through_a_gate(Server::Postgres);
}

#[test]
fn mariadb_outage_mid_traffic_loses_and_repeats_nothing() {
    outage_through_a_gate(Server::Mariadb);
}

/// A server that accepts and never answers: each reconnect try stalls the
/// reactor for at most the connect timeout (500 ms here); SIP is answered
/// throughout and every row is spooled. Prints the worst stall seen.
#[test]
fn a_silent_database_host_costs_at_most_the_connect_timeout_per_try() {
    let silent = Silent::new();
    let url = format!("postgres://postgres@127.0.0.1:{}/x", silent.port);
    let d = start("sp-silent", &url, "");
    let t0 = std::time::Instant::now();
    let prober = Prober::start(d.addr());
    // Tries at 0.5, 1.5 and 3.5 s after start.
    std::thread::sleep(Duration::from_millis(4000));
    let samples = prober.finish();
    let lost = samples.iter().filter(|(_, rtt)| rtt.as_secs() >= 2).count();
    assert_eq!(lost, 0, "a probe went unanswered");
    let s = stats(&d);
    assert_eq!(stat(&s, "rows_spooled"), samples.len() as u64, "{s:?}");
    assert!(s["db_state"].starts_with("down since"), "{s:?}");
    let tries = d.log_text().matches("no login within 500 ms").count();
    println!(
        "silent database host: {} probes, worst SIP round trip {} ms over {} reconnect \
         tries (connect timeout 500 ms)",
        samples.len(),
        worst(&samples, t0, std::time::Instant::now()).as_millis(),
        tries
    );
}

#[test]
fn a_reachable_database_without_the_table_is_a_start_up_error() {
    let db = SpoolDb::new(Server::Postgres);
    db.sql("DROP TABLE sip_trace");
    let dir = TempDir::new("sp-notable");
    let cfg = dir.join("k.cfg");
    let text = CFG
        .replace("@DBURL@", &db.url())
        .replace("@EXTRA@", "")
        .replace("@PORT@", &free_udp_port().to_string())
        .replace("@FIFO@", &dir.join("mi.fifo").display().to_string())
        .replace("@DIR@", &dir.path().display().to_string());
    std::fs::write(&cfg, text).unwrap();
    let out = std::process::Command::new(BIN)
        .args(["-D", "-E", "-f"])
        .arg(&cfg)
        .env("STATE_DIRECTORY", dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("table sip_trace does not exist") && err.contains("siptrace-create.sql"),
        "{err}"
    );
}

/// A spool directory another user owns, or anyone may write, stops the
/// start with a line naming it and what to do (`-c` does not look at it).
#[test]
fn a_spool_directory_that_is_not_ours_alone_stops_the_start() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("sp-unsafe");
    let cfg = dir.join("k.cfg");
    let text = CFG
        .replace(
            "@DBURL@",
            &format!("sqlite://{}", dir.join("t.db").display()),
        )
        .replace("@EXTRA@", "")
        .replace("@PORT@", &free_udp_port().to_string())
        .replace("@FIFO@", &dir.join("mi.fifo").display().to_string())
        .replace("@DIR@", &dir.path().display().to_string());
    std::fs::write(&cfg, text).unwrap();
    let spool = dir.join("spool");
    std::fs::create_dir(&spool).unwrap();
    let run = || {
        let out = std::process::Command::new(BIN)
            .args(["-c", "-f"])
            .arg(&cfg)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        std::process::Command::new(BIN)
            .args(["-D", "-E", "-f"])
            .arg(&cfg)
            .env("STATE_DIRECTORY", dir.path())
            .output()
            .unwrap()
    };
    let nobody = nix::unistd::User::from_name("nobody")
        .unwrap()
        .expect("user nobody");
    let cases: Vec<(Box<dyn Fn()>, String)> = vec![
        (
            Box::new(|| std::os::unix::fs::chown(&spool, Some(nobody.uid.as_raw()), None).unwrap()),
            format!("belongs to uid {}", nobody.uid),
        ),
        (
            Box::new(|| {
                std::os::unix::fs::chown(&spool, Some(0), None).unwrap();
                std::fs::set_permissions(&spool, std::fs::Permissions::from_mode(0o777)).unwrap()
            }),
            "is writable by its others (mode 0777)".into(),
        ),
    ];
    for (make, want) in cases {
        make();
        let out = run();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "started with an unsafe spool: {err}");
        let line = format!("spool directory {} {want}", spool.display());
        assert!(err.contains(&line), "want {line:?} in:\n{err}");
    }
}
