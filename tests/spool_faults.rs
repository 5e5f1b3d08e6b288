//! sipp calls through the daemon into PostgreSQL / MariaDB while the
//! database SERVER is stopped for ~10 s and started again: afterwards every
//! message of every call is in the table once, in event order, and no call
//! failed. Reports the replay rate and the longest SIP round trip seen
//! while the database was down or catching up.
//!
//! These tests stop the shared database servers, so they are #[ignore]d in
//! the normal run and run alone, one at a time, by scripts/test:
//!     cargo test --test spool_faults -- --ignored --test-threads=1
//! (a static mutex serialises them too). Whatever happens, a guard starts
//! the stopped server again.
//!
//! To run them on a machine where others use the shared servers, point
//! them at private ones: SIPTRACED_TEST_PG_PORT + SIPTRACED_TEST_PG_CLUSTER
//! ("15 mycluster"), SIPTRACED_TEST_MY_PORT + SIPTRACED_TEST_MY_PIDFILE +
//! SIPTRACED_TEST_MY_DEFAULTS (its --defaults-file).

mod common;
mod spool_common;

use common::*;
use spool_common::*;
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());

/// Calls per run and their rate: 16 s of traffic, the outage from 3 s to
/// 13 s.
const CALLS: usize = 800;
const RATE: usize = 50;
const OUTAGE_AT: Duration = Duration::from_secs(3);
const OUTAGE: Duration = Duration::from_secs(10);

/// The messages of one sipp uac/uas call through the proxy: (method,
/// status, direction), each in and out.
const CALL_ROWS: [(&str, &str); 6] = [
    ("INVITE", ""),
    ("INVITE", "180"),
    ("INVITE", "200"),
    ("ACK", ""),
    ("BYE", ""),
    ("BYE", "200"),
];

const CFG: &str = r#"#!KAMAILIO
listen=udp:127.0.0.1:@PORT@
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "rr.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "mi_fifo.so"
loadmodule "siptrace.so"
modparam("mi_fifo", "fifo_name", "@FIFO@")
modparam("siptrace", "db_url", "@DBURL@")
modparam("siptrace", "trace_on", 1)
modparam("siptrace", "trace_flag", 22)
modparam("siptrace", "spool_dir", "@DIR@/spool")
modparam("siptrace", "db_connect_timeout_ms", 1000)

request_route {
    # The stall probe: answered here, never traced.
    if (is_method("OPTIONS")) {
        sl_send_reply("200", "OK");
        exit;
    }
    sip_trace();
    setflag(22);
    if (is_method("INVITE")) {
        record_route();
    }
    if (has_totag() && loose_route()) {
        forward();
        exit;
    }
    forward("127.0.0.1", UAS_PORT);
}
"#;

/// `<version> <cluster>` for pg_ctlcluster: the first installed version's
/// `main`, unless SIPTRACED_TEST_PG_CLUSTER says otherwise.
fn pg_cluster() -> Vec<String> {
    if let Ok(c) = std::env::var("SIPTRACED_TEST_PG_CLUSTER") {
        return c.split_whitespace().map(String::from).collect();
    }
    let version = std::fs::read_dir("/etc/postgresql")
        .expect("/etc/postgresql: PostgreSQL cluster configuration")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .min()
        .expect("a PostgreSQL cluster");
    vec![version, "main".into()]
}

/// The MariaDB server's pid file (selects the process to stop).
fn my_pidfile() -> String {
    std::env::var("SIPTRACED_TEST_MY_PIDFILE").unwrap_or("/run/mysqld/mysqld.pid".into())
}

fn ready(server: Server) -> bool {
    let port = server_port(server).to_string();
    let st = match server {
        Server::Postgres => Command::new("pg_isready")
            .args(["-h", "127.0.0.1", "-p", &port, "-q"])
            .status(),
        Server::Mariadb => Command::new("mysqladmin")
            .args(["-h", "127.0.0.1", "-P", &port, "-uroot", "ping"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status(),
    };
    matches!(st, Ok(s) if s.success())
}

fn stop_server(server: Server) {
    match server {
        Server::Postgres => run(Command::new("pg_ctlcluster")
            .arg("--skip-systemctl-redirect")
            .args(pg_cluster())
            .arg("stop")),
        // --retry: SIGTERM, then wait until the process has exited.
        Server::Mariadb => run(Command::new("start-stop-daemon")
            .args(["--stop", "--retry", "30", "--exec", "/usr/sbin/mariadbd"])
            .args(["--pidfile", &my_pidfile()])),
    };
}

fn start_server(server: Server) {
    let r = match server {
        Server::Postgres => Command::new("pg_ctlcluster")
            .arg("--skip-systemctl-redirect")
            .args(pg_cluster())
            .arg("start")
            .output(),
        Server::Mariadb => {
            let mut c = Command::new("start-stop-daemon");
            c.args(["--start", "--oknodo", "--background", "--exec"])
                .args(["/usr/sbin/mariadbd", "--pidfile", &my_pidfile()]);
            if let Ok(f) = std::env::var("SIPTRACED_TEST_MY_DEFAULTS") {
                c.arg("--").arg(format!("--defaults-file={f}"));
            }
            c.output()
        }
    };
    if !matches!(&r, Ok(o) if o.status.success()) {
        eprintln!("starting {server:?}: {r:?}");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready(server) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts the server again when dropped: a failing test never leaves it
/// stopped for everyone else.
struct Restart(Server);

impl Drop for Restart {
    fn drop(&mut self) {
        if !ready(self.0) {
            start_server(self.0);
        }
    }
}

/// The last line of a sipp `-trace_stat` file, by column name.
fn sipp_stats(path: &std::path::Path) -> HashMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let head: Vec<&str> = lines.next().expect("header").split(';').collect();
    let last: Vec<&str> = lines
        .next_back()
        .expect("a stats line")
        .split(';')
        .collect();
    head.iter()
        .zip(last)
        .map(|(h, v)| (h.to_string(), v.to_string()))
        .collect()
}

fn num(m: &HashMap<String, String>, k: &str) -> u64 {
    m.get(k)
        .unwrap_or_else(|| panic!("sipp stats lack {k}"))
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("sipp stat {k}: {:?}", m[k]))
}

fn sipp(args: &[String], out: &std::path::Path) -> Child {
    Command::new("sipp")
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("run sipp")
}

fn wait_child(c: &mut Child, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(st) = c.try_wait().unwrap() {
            return st.code();
        }
        if Instant::now() > deadline {
            let _ = c.kill();
            let _ = c.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn load_with_server_outage(server: Server) {
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let _restart = Restart(server);
    if !ready(server) {
        start_server(server);
    }
    assert!(
        ready(server),
        "{server:?} is not running (see scripts/test)"
    );
    let db = SpoolDb::new(server);
    let uas_port = free_udp_port();
    let cfg = CFG.replace("@DBURL@", &db.url());
    let define = format!("UAS_PORT={uas_port}");
    let d = Daemon::start_with("sp-fault", &cfg, &["-A", &define]);
    let dir = d.dir.path().to_path_buf();
    let calls = CALLS.to_string();
    let mut uas = sipp(
        &[
            "-sn",
            "uas",
            "-i",
            "127.0.0.1",
            "-p",
            &uas_port.to_string(),
            "-m",
            &calls,
            "-nostdin",
            "-trace_stat",
            "-stf",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([dir.join("uas.csv").display().to_string()])
        .collect::<Vec<_>>(),
        &dir.join("uas.out"),
    );
    std::thread::sleep(Duration::from_millis(300));
    let prober = Prober::start(d.addr());
    let t0 = Instant::now();
    let mut uac = sipp(
        &[
            "-sn".to_string(),
            "uac".into(),
            d.addr().to_string(),
            "-i".into(),
            "127.0.0.1".into(),
            "-p".into(),
            free_udp_port().to_string(),
            "-r".into(),
            RATE.to_string(),
            "-m".into(),
            calls.clone(),
            "-nostdin".into(),
            "-trace_stat".into(),
            "-stf".into(),
            dir.join("uac.csv").display().to_string(),
        ],
        &dir.join("uac.out"),
    );

    std::thread::sleep(OUTAGE_AT);
    let down_at = Instant::now();
    stop_server(server);
    let stopped = Instant::now();
    std::thread::sleep(OUTAGE);
    // Until here the server is certainly down; the daemon may reconnect
    // as soon as start_server has it listening.
    let up_at = Instant::now();
    start_server(server);
    assert!(ready(server), "{server:?} did not come back");

    let uac_rc = wait_child(&mut uac, Duration::from_secs(120));
    let uas_rc = wait_child(&mut uas, Duration::from_secs(30));
    let traffic = t0.elapsed();
    // Everything spooled is replayed, then nothing is pending.
    wait_for("the spool to drain", Duration::from_secs(120), || {
        let s = stats(&d);
        s["db_state"] == "up" && stat(&s, "spool_bytes") == 0
    });
    let drained_at = Instant::now();
    let samples = prober.finish();
    let s = stats(&d);
    let rows = db.rows();
    let log = d.log_text();

    // No call failed.
    let uac_stats = sipp_stats(&dir.join("uac.csv"));
    let uas_stats = sipp_stats(&dir.join("uas.csv"));
    assert_eq!(uac_rc, Some(0), "sipp uac exit status; {uac_stats:?}");
    assert_eq!(num(&uac_stats, "FailedCall(C)"), 0);
    assert_eq!(num(&uac_stats, "SuccessfulCall(C)"), CALLS as u64);
    let retrans = num(&uac_stats, "Retransmissions(C)") + num(&uas_stats, "Retransmissions(C)");

    // Every row once, in event order.
    check_once_in_order(&rows);
    let mut per_call: HashMap<&str, Vec<(&str, &str, &str)>> = HashMap::new();
    for r in &rows {
        per_call
            .entry(&r.callid)
            .or_default()
            .push((&r.method, &r.status, &r.direction));
    }
    assert_eq!(per_call.len(), CALLS, "calls in the table");
    let mut extra = 0;
    for (callid, got) in &per_call {
        for (m, st) in CALL_ROWS {
            for dir in ["in", "out"] {
                let n = got.iter().filter(|g| **g == (m, st, dir)).count();
                assert!(n >= 1, "call {callid}: no {m} {st} {dir} row: {got:?}");
                extra += n - 1;
            }
        }
    }
    // Retransmitted messages are traced too (each a wire event): only
    // they may add rows, at most one in and one out each.
    assert!(
        extra as u64 <= 2 * retrans,
        "{extra} extra rows for {retrans} retransmissions"
    );
    assert_eq!(rows.len(), CALLS * 12 + extra);

    // The counters agree with the table; the outage was really spooled.
    assert_eq!(stat(&s, "rows_written"), rows.len() as u64, "{s:?}");
    assert_eq!(stat(&s, "rows_dropped"), 0, "{s:?}");
    assert!(stat(&s, "rows_spooled") > 0, "{s:?}");
    assert_eq!(stat(&s, "rows_replayed"), stat(&s, "rows_spooled"), "{s:?}");
    assert!(log.contains("database down:"), "{log}");
    assert!(log.contains("database is back"), "{log}");

    // Figures (reported, not asserted).
    let before = worst(&samples, t0, down_at);
    let while_down = worst(&samples, down_at, up_at);
    let catching_up = worst(&samples, up_at, drained_at);
    let outage = worst(&samples, down_at, drained_at);
    let drained: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("spool drained:"))
        .collect();
    println!(
        "{server:?}: {} calls in {:.1} s, {} rows ({} retransmissions, {extra} extra rows); \
         server stop took {} ms; spooled {}, replayed {}; worst SIP round trip: \
         {} ms before the outage, {} ms from the stop to the drained spool ({} ms while \
         the server was down, {} ms from its start to the drained spool); {} probes; {}",
        CALLS,
        traffic.as_secs_f64(),
        rows.len(),
        retrans,
        stopped.duration_since(down_at).as_millis(),
        stat(&s, "rows_spooled"),
        stat(&s, "rows_replayed"),
        before.as_millis(),
        outage.as_millis(),
        while_down.as_millis(),
        catching_up.as_millis(),
        samples.len(),
        drained.join(" | ")
    );
    assert_eq!(uas_rc, Some(0), "sipp uas exit status");
}

#[test]
#[ignore = "stops the shared PostgreSQL server: run by scripts/test alone"]
fn postgres_stopped_mid_load_loses_and_repeats_nothing() {
    load_with_server_outage(Server::Postgres);
}

#[test]
#[ignore = "stops the shared MariaDB server: run by scripts/test alone"]
fn mariadb_stopped_mid_load_loses_and_repeats_nothing() {
    load_with_server_outage(Server::Mariadb);
}
