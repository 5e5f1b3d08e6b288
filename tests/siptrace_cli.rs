//! The `siptrace` binary end to end.
//!
//! Golden outputs (`show` as text and JSON, tests/data/siptrace/) for calls
//! whose rows the test writes into a SQLite file itself: a call through a
//! proxy with per-user copies, a CANCEL flow, a 408 flow with
//! retransmissions; the HTML page opened in headless Chromium; `calls`
//! filters alone and combined, on v4 and v2 tables; errors. Then real
//! calls through siptraced on SQLite, PostgreSQL and MariaDB, exported
//! with `siptrace pcap` and decoded with tshark: every packet SIP, with
//! the rows' addresses, ports, times (µs) and bytes.
//! Set SIPTRACE_BLESS=1 to rewrite the golden files after a deliberate
//! change (and review the diff).

mod common;
use common::*;
mod siptrace_rows;
use siptrace_rows::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SIPTRACE: &str = env!("CARGO_BIN_EXE_siptrace");

fn siptrace(args: &[&str]) -> Output {
    Command::new(SIPTRACE)
        .args(args)
        .output()
        .expect("run siptrace")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Compare with tests/data/siptrace/NAME, or write it under SIPTRACE_BLESS.
fn golden(name: &str, got: &str) {
    let path = repo_root().join("tests/data/siptrace").join(name);
    if std::env::var_os("SIPTRACE_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with SIPTRACE_BLESS=1 to create it)",
            path.display()
        )
    });
    assert_eq!(got, want, "output differs from {}", path.display());
}

fn golden_show(tag: &str, callid: &str, rows: Vec<R>) {
    let dir = TempDir::new(tag);
    let db = sqlite_db(&dir, false, &[(callid, rows)]);
    let url = db_arg(&db);
    for (fmt, ext) in [("text", "txt"), ("json", "json")] {
        let o = siptrace(&["--db", &url, "show", callid, "--format", fmt]);
        assert!(o.status.success(), "{}", stderr(&o));
        let out = stdout(&o);
        if fmt == "text" {
            for line in out.lines() {
                assert!(
                    line.chars().count() <= 100,
                    "line over 100 columns: {line:?}"
                );
            }
        }
        golden(&format!("{tag}.{ext}"), &out);
    }
}

#[test]
fn show_golden_call() {
    golden_show(
        "call",
        "call-1@example.com",
        call_rows("call-1@example.com", 0),
    );
}

#[test]
fn show_golden_cancel() {
    golden_show(
        "cancel",
        "cancel-1@example.com",
        cancel_rows("cancel-1@example.com", 0),
    );
}

#[test]
fn show_golden_timeout_with_retransmissions() {
    golden_show(
        "timeout",
        "t408-1@example.com",
        timeout_rows("t408-1@example.com", 0),
    );
}

/// Count the elements carrying `class="arrow"` in a DOM dump.
fn count_arrows(dom: &str) -> usize {
    dom.matches("class=\"arrow").count()
}

#[test]
fn html_opens_in_chromium_with_one_arrow_per_message() {
    let dir = TempDir::new("html");
    let c = "call-1@example.com";
    let db = sqlite_db(&dir, false, &[(c, call_rows(c, 0))]);
    let html = dir.join("call.html");
    let o = siptrace(&[
        "--db",
        &db_arg(&db),
        "show",
        c,
        "--format",
        "html",
        "-o",
        html.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // 26 rows, each event stored twice (traced user copies): 13 messages.
    let page = std::fs::read_to_string(&html).unwrap();
    assert_eq!(count_arrows(&page), 13, "{page}");
    assert!(
        !page.contains("src=\"http"),
        "the page must be self-contained"
    );
    let dom = Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom"])
        .arg(&html)
        .output()
        .expect("run chromium (apt-get install chromium)");
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert_eq!(count_arrows(&dom), 13, "{dom}");
    // The script ran: it marks the document once the ladder is wired up.
    assert!(dom.contains("data-ready=\"1\""), "{dom}");
    let svg = siptrace(&["--db", &db_arg(&db), "show", c, "--format", "svg"]);
    assert!(svg.status.success());
    let svg = stdout(&svg);
    assert!(svg.starts_with("<svg") || svg.starts_with("<?xml"), "{svg}");
    assert_eq!(count_arrows(&svg), 13);
}

/// Three calls on one table: a finished call by alice at 10:00, a
/// cancelled one at 10:30, a 408 at 11:00 (from another caller IP).
fn three_call_rows() -> Vec<(&'static str, Vec<R>)> {
    vec![
        ("call-a", call_rows("call-a", 0)),
        ("call-b", cancel_rows("call-b", 1800)),
        ("call-c", timeout_rows("call-c", 3600)),
    ]
}

fn three_calls(dir: &TempDir, v2: bool) -> PathBuf {
    sqlite_db(dir, v2, &three_call_rows())
}

/// The same searches, the same answers, on PostgreSQL and MariaDB (v4 and
/// v2 layouts), and the same ladder.
fn filters_on_server(kind: DbKind) {
    for v2 in [false, true] {
        let db = server_db(kind, v2, &three_call_rows());
        check_filters(&db.url);
        let o = siptrace(&["--db", &db.url, "show", "call-c"]);
        assert!(o.status.success(), "{}", stderr(&o));
        golden(
            if v2 { "timeout-v2.txt" } else { "calls-c.txt" },
            &stdout(&o),
        );
        let o = siptrace(&["--db", &db.url, "calls"]);
        golden(if v2 { "calls-v2.txt" } else { "calls.txt" }, &stdout(&o));
    }
}

#[test]
fn calls_filters_postgres() {
    filters_on_server(DbKind::Postgres);
}

#[test]
fn calls_filters_mysql() {
    filters_on_server(DbKind::Mysql);
}

fn callids_of(o: &Output) -> Vec<String> {
    stdout(o)
        .lines()
        .skip(1)
        .map(|l| l.rsplit(' ').next().unwrap().to_string())
        .collect()
}

fn calls(url: &str, args: &[&str]) -> Vec<String> {
    let mut a = vec!["--db", url, "calls"];
    a.extend_from_slice(args);
    let o = siptrace(&a);
    assert!(
        o.status.success() || o.status.code() == Some(1),
        "{}",
        stderr(&o)
    );
    callids_of(&o)
}

fn check_filters(db: &str) {
    assert_eq!(calls(db, &[]), ["call-c", "call-b", "call-a"]);
    assert_eq!(calls(db, &["--limit", "2"]), ["call-c", "call-b"]);
    assert_eq!(
        calls(db, &["--since", "2024-05-01 10:30"]),
        ["call-c", "call-b"]
    );
    assert_eq!(calls(db, &["--until", "2024-05-01 10:29"]), ["call-a"]);
    assert_eq!(
        calls(
            db,
            &["--since", "2024-05-01 10:20", "--until", "2024-05-01 10:40"]
        ),
        ["call-b"]
    );
    assert_eq!(calls(db, &["--until", "2024-05-01"]).len(), 3);
    assert_eq!(calls(db, &["--since", "2024-05-02"]), Vec::<String>::new());
    // Durations count back from now: 2024 is long past.
    assert_eq!(calls(db, &["--since", "1h"]), Vec::<String>::new());
    assert_eq!(calls(db, &["--since", "99999d"]).len(), 3);
    assert_eq!(calls(db, &["--method", "CANCEL"]), ["call-b"]);
    assert_eq!(calls(db, &["--method", "bye"]), ["call-a"]);
    assert_eq!(calls(db, &["--status", "408"]), ["call-c"]);
    assert_eq!(calls(db, &["--status", "4xx"]), ["call-c", "call-b"]);
    assert_eq!(calls(db, &["--callid", "call-b"]), ["call-b"]);
    assert_eq!(
        calls(db, &["--ip", "10.0.0.2"]),
        ["call-c", "call-b", "call-a"]
    );
    assert_eq!(calls(db, &["--ip", "10.0.0.2:5080"]).len(), 3);
    assert_eq!(calls(db, &["--ip", "10.0.0.2:5081"]), Vec::<String>::new());
    assert_eq!(calls(db, &["--ip", "10.0.0.99"]), Vec::<String>::new());
    // traced_user, From user, To user; never a substring.
    assert_eq!(calls(db, &["--user", "alice"]).len(), 3);
    assert_eq!(calls(db, &["--user", "bob"]).len(), 3);
    assert_eq!(calls(db, &["--user", "ali"]), Vec::<String>::new());
    assert_eq!(calls(db, &["--user", "example.com"]), Vec::<String>::new());
    // Combined.
    assert_eq!(
        calls(
            db,
            &[
                "--user",
                "bob",
                "--status",
                "4xx",
                "--since",
                "2024-05-01 10:45"
            ]
        ),
        ["call-c"]
    );
    assert_eq!(
        calls(
            db,
            &[
                "--method", "INVITE", "--status", "487", "--ip", "10.0.0.1", "--limit", "1"
            ]
        ),
        ["call-b"]
    );
    assert_eq!(
        calls(
            db,
            &[
                "--user",
                "alice",
                "--method",
                "CANCEL",
                "--until",
                "2024-05-01 10:10"
            ]
        ),
        Vec::<String>::new()
    );
}

#[test]
fn calls_filters_v4() {
    let dir = TempDir::new("calls4");
    let db = three_calls(&dir, false);
    check_filters(&db_arg(&db));
    let o = siptrace(&["--db", &db_arg(&db), "calls"]);
    golden("calls.txt", &stdout(&o));
    let o = siptrace(&["--db", &db_arg(&db), "calls", "--json"]);
    golden("calls.json", &stdout(&o));
    let o = siptrace(&["--db", &db_arg(&db), "show", "call-c"]);
    golden("calls-c.txt", &stdout(&o));
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
}

#[test]
fn calls_filters_v2() {
    let dir = TempDir::new("calls2");
    let db = three_calls(&dir, true);
    check_filters(&db_arg(&db));
    let o = siptrace(&["--db", &db_arg(&db), "calls"]);
    golden("calls-v2.txt", &stdout(&o));
    let e = stderr(&o);
    assert_eq!(e.matches("no time_us").count(), 1, "{e}");
    assert!(e.contains("to the second"), "{e}");
    let o = siptrace(&["--db", &db_arg(&db), "show", "call-c"]);
    assert!(o.status.success());
    golden("timeout-v2.txt", &stdout(&o));
}

#[test]
fn errors_say_what_is_wrong() {
    let dir = TempDir::new("errs");
    let db = three_calls(&dir, false);
    let url = db_arg(&db);
    let o = siptrace(&["--db", &url, "show", "nope@x"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("no rows with Call-ID nope@x"),
        "{}",
        stderr(&o)
    );
    let o = siptrace(&[
        "--db",
        &url,
        "pcap",
        "nope@x",
        "-o",
        dir.join("x.pcap").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(!dir.join("x.pcap").exists());
    let o = siptrace(&["--db", &url, "--table", "other", "calls"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        stderr(&o).contains("table other does not exist"),
        "{}",
        stderr(&o)
    );
    let o = siptrace(&["--db", &url, "--table", "x;y", "calls"]);
    assert_eq!(o.status.code(), Some(3));
    let o = siptrace(&["--db", "sqlite:///nonexistent/t.db", "calls"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        stderr(&o).contains("no such database file"),
        "{}",
        stderr(&o)
    );
    let o = siptrace(&["--db", "postgres://nobody@127.0.0.1:1/x", "calls"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("unreachable"), "{}", stderr(&o));
    let o = siptrace(&["--db", "mysql://nobody@127.0.0.1:1/x", "calls"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("unreachable"), "{}", stderr(&o));
    let o = siptrace(&["--db", &url, "calls", "--since", "yesterday"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("duration"), "{}", stderr(&o));
    let o = siptrace(&["calls", "-f", dir.join("missing.cfg").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3));
    // The configuration's db_url and table.
    let cfg = dir.join("s.cfg");
    std::fs::write(
        &cfg,
        format!(
            "#!KAMAILIO\nloadmodule \"siptrace.so\"\nmodparam(\"siptrace\", \"db_url\", \"{url}\")\n\
             modparam(\"siptrace\", \"table\", \"sip_trace\")\nrequest_route {{ drop; }}\n"
        ),
    )
    .unwrap();
    let o = siptrace(&["-f", cfg.to_str().unwrap(), "calls", "--callid", "call-a"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(callids_of(&o), ["call-a"]);
    // Read-only: the file is unchanged.
    let before = std::fs::read(&db).unwrap();
    let _ = siptrace(&["--db", &url, "calls"]);
    assert_eq!(std::fs::read(&db).unwrap(), before);
}

// ------------------------------------------------------------------------
// pcap: real calls through siptraced, decoded by tshark.

const DAEMON_CFG: &str = r#"#!KAMAILIO
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
modparam("siptrace", "traced_user_avp", "$avp(s:user)")

request_route {
    $avp(s:user) = "sip:alice@example.com";
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

/// One decoded packet: method, status, source, destination, time, payload.
#[derive(Debug)]
struct Decoded {
    method: String,
    status: String,
    src: String,
    dst: String,
    epoch: String,
    payload: Vec<u8>,
    extra: Vec<String>,
}

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// `tshark -r FILE` with the fields the tests compare (plus `extra`).
fn tshark(file: &Path, tcp: bool, opts: &[&str], extra: &[&str]) -> Vec<Decoded> {
    let l4 = if tcp { "tcp" } else { "udp" };
    let mut args: Vec<String> = vec!["-r".into(), file.display().to_string()];
    args.extend(opts.iter().map(|s| s.to_string()));
    args.extend(["-T", "fields", "-E", "separator=|", "-E", "occurrence=f"].map(String::from));
    let mut fields = vec![
        "sip.Method".to_string(),
        "sip.Status-Code".into(),
        "ip.src".into(),
        "ipv6.src".into(),
        format!("{l4}.srcport"),
        "ip.dst".into(),
        "ipv6.dst".into(),
        format!("{l4}.dstport"),
        "frame.time_epoch".into(),
        format!("{l4}.payload"),
    ];
    fields.extend(extra.iter().map(|s| s.to_string()));
    for f in &fields {
        args.push("-e".into());
        args.push(f.clone());
    }
    let o = Command::new("tshark")
        .args(&args)
        .output()
        .expect("run tshark");
    assert!(o.status.success(), "tshark: {}", stderr(&o));
    stdout(&o)
        .lines()
        .map(|l| {
            let v: Vec<&str> = l.split('|').collect();
            let ip = |a: &str, b: &str| {
                if a.is_empty() {
                    b.to_string()
                } else {
                    a.to_string()
                }
            };
            Decoded {
                method: v[0].into(),
                status: v[1].into(),
                src: format!("{}:{}", ip(v[2], v[3]), v[4]),
                dst: format!("{}:{}", ip(v[5], v[6]), v[7]),
                epoch: v[8].into(),
                payload: unhex(v[9]),
                extra: v[10..].iter().map(|s| s.to_string()).collect(),
            }
        })
        .collect()
}

/// The rows siptrace draws (copies of one event collapsed), in time order.
fn drawn(rows: &[TraceRow]) -> Vec<&TraceRow> {
    let mut sorted: Vec<&TraceRow> = rows.iter().collect();
    sorted.sort_by_key(|r| (r.time_stamp.clone(), r.time_us, r.id));
    let mut out: Vec<&TraceRow> = Vec::new();
    for r in sorted {
        let copy = out.iter().any(|d| {
            d.fromip == r.fromip
                && d.toip == r.toip
                && d.msg == r.msg
                && d.time_stamp == r.time_stamp
                && d.time_us == r.time_us
        });
        if !copy {
            out.push(r);
        }
    }
    out
}

/// `udp:127.0.0.1:5060` → `127.0.0.1:5060`; IPv6 without brackets, as
/// tshark prints addresses.
fn addr_of(v: &str) -> String {
    let rest = v.split_once(':').unwrap().1;
    let (h, p) = rest.rsplit_once(':').unwrap();
    format!("{}:{p}", h.trim_start_matches('[').trim_end_matches(']'))
}

/// Each packet against its row: SIP method or status, addresses and
/// ports, time to the microsecond (local time as stored), payload bytes.
fn check_packets(got: &[Decoded], want: &[&TraceRow]) {
    assert_eq!(got.len(), want.len(), "{got:?}");
    for (p, r) in got.iter().zip(want) {
        if r.status.is_empty() {
            assert_eq!(p.method, r.method, "{p:?}");
        } else {
            assert_eq!(p.status, r.status, "{p:?}");
        }
        assert_eq!(p.src, addr_of(&r.fromip), "{p:?}");
        assert_eq!(p.dst, addr_of(&r.toip), "{p:?}");
        let (sec, frac) = p.epoch.split_once('.').unwrap();
        assert_eq!(
            siptraced::clock::local_datetime(sec.parse().unwrap()),
            r.time_stamp,
            "{p:?}"
        );
        assert_eq!(frac[..6].parse::<i64>().unwrap(), r.time_us, "{p:?}");
        assert_eq!(p.payload, r.msg, "{p:?}");
    }
}

fn pcap_of_a_daemon_call(kind: DbKind) {
    let db = TestDb::initialised(kind);
    let uac = Peer::new();
    let uas = Peer::new();
    let cfg = DAEMON_CFG.replace("@DBURL@", &db.url);
    let define = format!("UAS_PORT={}", uas.port());
    let d = Daemon::start_with("pcap", &cfg, &["-A", &define]);
    // Wireshark's checksum status: 0 bad, 1 good, 2 unverified.
    let callid = unique_name("pcap-call");
    sip_call(&uac, &uas, d.addr(), &callid, "");
    // Forwarded statelessly: INVITE, 200, ACK, BYE, 200 each in and out,
    // each twice (the '' row and the traced user's).
    let rows: Vec<TraceRow> = db
        .wait_rows("sip_trace", 20)
        .into_iter()
        .filter(|r| r.callid == callid)
        .collect();
    assert_eq!(rows.len(), 20, "{rows:#?}");
    let want = drawn(&rows);
    assert_eq!(want.len(), 10);
    let dir = TempDir::new("pcapout");
    for ng in [false, true] {
        let file = dir.join(if ng { "call.pcapng" } else { "call.pcap" });
        let mut args = vec![
            "--db",
            &db.url,
            "pcap",
            &callid,
            "-o",
            file.to_str().unwrap(),
        ];
        if ng {
            args.push("--pcapng");
        }
        let o = siptrace(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        let got = tshark(
            &file,
            false,
            &["-o", "udp.check_checksum:TRUE"],
            &["udp.checksum.status"],
        );
        check_packets(&got, &want);
        for p in &got {
            assert_eq!(p.extra[0], "1", "UDP checksum not good: {p:?}");
        }
    }
    // The same call found by `calls` and exported as a search.
    let file = dir.join("search.pcap");
    let o = siptrace(&[
        "--db",
        &db.url,
        "calls",
        "--user",
        "alice",
        "--since",
        "10m",
        "--pcap",
        file.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains(&callid), "{}", stdout(&o));
    check_packets(&tshark(&file, false, &[], &[]), &want);
    // sngrep reads it as one dialog.
    let s = Command::new("sngrep")
        .args(["-N", "-I"])
        .arg(&file)
        .env("TERM", "dumb")
        .output()
        .expect("run sngrep");
    let text = format!("{}{}", stdout(&s), stderr(&s));
    assert!(text.contains("Dialog count: 1"), "sngrep: {text}");
    drop(d);
}

#[test]
fn pcap_of_a_daemon_call_sqlite() {
    pcap_of_a_daemon_call(DbKind::Sqlite);
}

#[test]
fn pcap_of_a_daemon_call_postgres() {
    pcap_of_a_daemon_call(DbKind::Postgres);
}

#[test]
fn pcap_of_a_daemon_call_mysql() {
    pcap_of_a_daemon_call(DbKind::Mysql);
}

#[test]
fn pcap_of_a_daemon_call_dbtext() {
    pcap_of_a_daemon_call(DbKind::Text);
}

/// TCP over IPv6 and IPv4, TLS as its plaintext: one stream per
/// connection with running sequence numbers, every checksum right.
#[test]
fn pcap_tcp_streams_over_ipv4_and_ipv6() {
    const A6: &str = "tcp:[2001:db8::1]:5060";
    const P6: &str = "tcp:[2001:db8::10]:5060";
    const P4: &str = "tls:10.0.0.10:5061";
    const B4: &str = "tls:10.0.0.2:5061";
    let c = "tcp-1@example.com";
    let rows = vec![
        r(0, 0, "in", A6, P6, "", req("INVITE", c, 1, "", "i1")),
        r(0, 100, "out", P4, B4, "", req("INVITE", c, 1, "", "i2")),
        r(
            0,
            9000,
            "in",
            B4,
            P4,
            "",
            rep(180, "Ringing", "INVITE", c, 1, "b1"),
        ),
        r(
            0,
            9100,
            "out",
            P6,
            A6,
            "",
            rep(180, "Ringing", "INVITE", c, 1, "b1"),
        ),
        r(1, 0, "in", B4, P4, "", rep(200, "OK", "INVITE", c, 1, "b1")),
        r(
            1,
            100,
            "out",
            P6,
            A6,
            "",
            rep(200, "OK", "INVITE", c, 1, "b1"),
        ),
    ];
    let dir = TempDir::new("tcp");
    let db = sqlite_db(&dir, false, &[(c, rows)]);
    let file = dir.join("tcp.pcapng");
    let o = siptrace(&[
        "--db",
        &db_arg(&db),
        "pcap",
        c,
        "-o",
        file.to_str().unwrap(),
        "--pcapng",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let got = tshark(
        &file,
        true,
        &[
            "-o",
            "tcp.check_checksum:TRUE",
            "-o",
            "ip.check_checksum:TRUE",
            "-o",
            "tcp.relative_sequence_numbers:FALSE",
            // 5061 is SIP over TLS: the plaintext is SIP.
            "-d",
            "tcp.port==5061,sip",
        ],
        &[
            "tcp.seq",
            "tcp.ack",
            "tcp.checksum.status",
            "tcp.stream",
            "tcp.analysis.flags",
        ],
    );
    let stored = read_rows(&db, "sip_trace");
    let want = drawn(&stored);
    check_packets(&got, &want);
    let ex: Vec<Vec<&str>> = got
        .iter()
        .map(|p| p.extra.iter().map(String::as_str).collect())
        .collect();
    let len = |i: usize| want[i].msg.len() as u32;
    // Sequence numbers run per direction, acks follow the other side.
    assert_eq!(ex[0][0], "1");
    assert_eq!(ex[3][0], "1");
    assert_eq!(ex[3][1], (1 + len(0)).to_string());
    assert_eq!(ex[5][0], (1 + len(3)).to_string());
    assert_eq!(ex[4][0], (1 + len(2)).to_string());
    for e in &ex {
        assert_eq!(e[2], "1", "TCP checksum not good: {ex:?}");
        assert_eq!(e[4], "", "TCP analysis complains: {ex:?}");
    }
    assert_eq!(ex[0][3], ex[3][3], "one stream per connection");
    assert_ne!(ex[0][3], ex[1][3]);
}
