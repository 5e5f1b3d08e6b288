//! Our scripts/kamctl against the real daemon: `fifo` and `rpc`, `ps`,
//! `uptime`, `monitor`, the kamctlrc variable names, the timeout when no
//! server answers, and 20 clients at once while SIP keeps flowing. The
//! script's own tests against a fake server (tests/tools/test_kamctl.py,
//! which pins the exact request bytes) run from here too, so CI runs them.

mod common;
use common::*;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

const CFG: &str = r#"#!KAMAILIO
listen=udp:127.0.0.1:@PORT@
loadmodule "sl.so"
loadmodule "mi_fifo.so"
loadmodule "jsonrpcs.so"
loadmodule "siptrace.so"
modparam("mi_fifo", "fifo_name", "@FIFO@")
modparam("jsonrpcs", "fifo_name", "@RPCFIFO@")
modparam("siptrace", "db_url", "sqlite://@DB@")
modparam("siptrace", "trace_on", 1)
request_route {
    sip_trace();
    sl_send_reply("200", "OK");
}
"#;

fn kamctl_path() -> std::path::PathBuf {
    repo_root().join("scripts/kamctl")
}

/// scripts/kamctl under dash (Debian's /bin/sh) with a clean environment:
/// HOME is `home` (for ~/.kamctlrc), plus `env`.
fn kamctl_env(home: &Path, env: &[(&str, &str)], args: &[&str], limit: Duration) -> Output {
    kamctl_pid(home, env, args, limit).1
}

/// As [`kamctl_env`], also giving kamctl's pid (its `$$`).
fn kamctl_pid(home: &Path, env: &[(&str, &str)], args: &[&str], limit: Duration) -> (u32, Output) {
    let mut cmd = Command::new("dash");
    cmd.arg(kamctl_path())
        .args(args)
        .env_clear()
        .env(
            "PATH",
            std::env::var("PATH").unwrap_or("/usr/bin:/bin".into()),
        )
        .env("HOME", home);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_in_group(&mut cmd, limit)
}

/// kamctl pointed at `d`; a generous KAMCTL_TIMEOUT, as a busy test machine
/// may be slow to start the processes of 20 clients.
fn kamctl(d: &Daemon, args: &[&str]) -> Output {
    kamctl_d(d, args).1
}

fn kamctl_d(d: &Daemon, args: &[&str]) -> (u32, Output) {
    let home = TempDir::new("kchome");
    kamctl_pid(
        home.path(),
        &[
            ("OSER_FIFO", &d.fifo.display().to_string()),
            ("RPCFIFOPATH", &d.rpc_fifo.display().to_string()),
            ("KAMCTL_TIMEOUT", "20"),
        ],
        args,
        Duration::from_secs(60),
    )
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[track_caller]
fn ok(o: &Output) -> String {
    assert!(
        o.status.success() && o.stderr.is_empty(),
        "status {:?}, stderr {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    stdout(o)
}

#[test]
fn script_tests_against_the_fake_server() {
    let out = Command::new("python3")
        .arg(repo_root().join("tests/tools/test_kamctl.py"))
        .output()
        .expect("python3 must be installed (scripts/test installs it)");
    assert!(
        out.status.success(),
        "tests/tools/test_kamctl.py failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(report.contains("\nOK"), "{report}");
}

#[test]
fn fifo_sip_trace_and_its_effect_on_tracing() {
    let d = Daemon::start("kc-st", CFG);
    let peer = Peer::new();
    assert_eq!(ok(&kamctl(&d, &["fifo", "sip_trace"])), "on\n");
    assert_eq!(ok(&kamctl(&d, &["fifo", "sip_trace", "off"])), "");
    send_options(&peer, d.addr(), "kc-off");
    assert_eq!(ok(&kamctl(&d, &["fifo", "sip_trace"])), "off\n");
    // kamctl prints an error reply's status line and still exits 0.
    assert_eq!(
        ok(&kamctl(&d, &["fifo", "sip_trace", "maybe"])),
        "400 Bad parameter\n"
    );
    // Extra arguments are ignored; name::value works.
    assert_eq!(
        ok(&kamctl(&d, &["fifo", "sip_trace", "mode::on", "junk"])),
        ""
    );
    assert_eq!(ok(&kamctl(&d, &["fifo", "sip_trace"])), "on\n");
    send_options(&peer, d.addr(), "kc-on");
    assert_eq!(
        ok(&kamctl(&d, &["fifo", "nosuch"])),
        "500 command 'nosuch' not available\n"
    );
    // JSON-RPC through the same script, as Kamailio 5's kamctl prints it.
    let out = ok(&kamctl(&d, &["rpc", "siptrace.status", "off"]));
    assert!(
        regex_lite::Regex::new("\\A\\{\n  \"jsonrpc\":  \"2.0\",\n  \"result\": \"Disabled\",\n  \"id\": [0-9]+\n\\}\n\\z")
            .unwrap()
            .is_match(&out),
        "{out:?}"
    );
    send_options(&peer, d.addr(), "kc-off2");
    assert_eq!(ok(&kamctl(&d, &["fifo", "sip_trace"])), "off\n");
    let out = ok(&kamctl(&d, &["rpc", "siptrace.status", "on"]));
    assert!(out.contains("\"result\": \"Enabled\""), "{out}");
    send_options(&peer, d.addr(), "kc-on2");
    let rows = d.wait_rows(2);
    let ids: Vec<&str> = rows.iter().map(|r| r.callid.as_str()).collect();
    assert_eq!(ids, ["kc-on", "kc-on2"]);
}

#[test]
fn ps_uptime_stats_and_monitor_with_both_engines() {
    let d = Daemon::start("kc-core", CFG);
    let pid = d.pid();
    let home = TempDir::new("kchome");
    let fifo = d.fifo.display().to_string();
    let rpc = d.rpc_fifo.display().to_string();
    let run = |engine: &str, args: &[&str]| {
        ok(&kamctl_env(
            home.path(),
            &[
                ("OSER_FIFO", &fifo),
                ("RPCFIFOPATH", &rpc),
                ("CTLENGINE", engine),
            ],
            args,
            Duration::from_secs(30),
        ))
    };
    let ctime =
        r"[A-Z][a-z]{2} [A-Z][a-z]{2} [ 1-3][0-9] [0-2][0-9]:[0-5][0-9]:[0-6][0-9] [0-9]{4}";
    let re = |p: &str| regex_lite::Regex::new(p).unwrap();

    assert_eq!(
        run("FIFO", &["ps"]),
        format!("Process::  ID=0 PID={pid} Type=main process - attendant\n")
    );
    let out = run("RPCFIFO", &["ps"]);
    assert!(
        re(&format!(
            "\\A\\{{\n  \"jsonrpc\":  \"2.0\",\n  \"result\": \\[\n    \\{{\n      \"IDX\":  0,\n      \
             \"PID\":  {pid},\n      \"DSC\":  \"main process - attendant\"\n    \\}}\n  \\],\n  \"id\": [0-9]+\n\\}}\n\\z"
        ))
        .is_match(&out),
        "{out:?}"
    );
    let out = run("FIFO", &["uptime"]);
    assert!(
        re(&format!(
            "\\ANow:: {ctime}\nUp since:: {ctime}\nUp time:: [0-9]+ \\[sec\\]\n\\z"
        ))
        .is_match(&out),
        "{out:?}"
    );
    let out = run("RPCFIFO", &["uptime"]);
    assert!(out.contains("\"uptime\": "), "{out}");
    assert!(run("FIFO", &["stats"]).contains("siptrace:rows_written = 0\n"));
    assert!(run("RPCFIFO", &["stats", "siptrace"]).contains("\"siptrace:rows_written = 0\""));

    // One monitor cycle with each engine: version, uptime, the siptrace
    // statistics.
    let out = run("FIFO", &["monitor", "1"]);
    assert!(
        out.starts_with("[cycle #: 1; if constant make sure server lives]\n"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "Server:: siptraced ({}",
            env!("CARGO_PKG_VERSION")
        )),
        "{out}"
    );
    assert!(out.contains("Up time:: "), "{out}");
    assert!(
        out.contains("Trace Statistics: \nsiptrace:copies_dropped = 0\n"),
        "{out}"
    );
    let out = run("RPCFIFO", &["monitor", "1"]);
    assert!(
        out.contains(&format!("siptraced {} (", env!("CARGO_PKG_VERSION"))),
        "{out}"
    );
    assert!(out.contains("uptime: "), "{out}");
    assert!(out.contains("siptrace:rows_written = 0"), "{out}");
    // Two cycles, WATCH_PERIOD apart.
    let out = ok(&kamctl_env(
        home.path(),
        &[("OSER_FIFO", &fifo), ("WATCH_PERIOD", "0")],
        &["monitor", "2"],
        Duration::from_secs(30),
    ));
    assert!(out.contains("[cycle #: 2;"), "{out}");
}

#[test]
fn kamctlrc_variable_names() {
    let d = Daemon::start("kc-rc", CFG);
    let home = TempDir::new("kchome");
    let rc = home.join(".kamctlrc");
    let run = |env: &[(&str, &str)], args: &[&str]| {
        kamctl_env(home.path(), env, args, Duration::from_secs(30))
    };
    // kamctl's own names in ~/.kamctlrc...
    std::fs::write(
        &rc,
        format!(
            "OSER_FIFO={}\nRPCFIFOPATH={}\n",
            d.fifo.display(),
            d.rpc_fifo.display()
        ),
    )
    .unwrap();
    assert_eq!(ok(&run(&[], &["fifo", "sip_trace"])), "on\n");
    assert!(ok(&run(&[], &["rpc", "siptrace.status", "check"])).contains("Enabled"));
    // ...and the alias SIPTRACED_FIFO.
    std::fs::write(&rc, format!("SIPTRACED_FIFO={}\n", d.fifo.display())).unwrap();
    assert_eq!(ok(&run(&[], &["fifo", "sip_trace"])), "on\n");
    // The environment wins over the file.
    std::fs::write(&rc, "OSER_FIFO=/nonexistent/fifo\n").unwrap();
    let fifo = d.fifo.display().to_string();
    assert_eq!(
        ok(&run(&[("OSER_FIFO", &fifo)], &["fifo", "sip_trace"])),
        "on\n"
    );
    assert_eq!(
        ok(&run(&[("SIPTRACED_FIFO", &fifo)], &["fifo", "sip_trace"])),
        "on\n"
    );
    // A FIFO that is not there: exit 2, and it says which variable to set.
    let o = run(&[], &["fifo", "sip_trace"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("cannot write to FIFO /nonexistent/fifo"),
        "{err}"
    );
    assert!(err.contains("OSER_FIFO"), "{err}");
}

#[test]
fn no_answer_means_exit_1_within_the_timeout() {
    let mut d = Daemon::start("kc-timeout", CFG);
    let home = TempDir::new("kchome");
    let fifo = d.fifo.display().to_string();
    let rpc = d.rpc_fifo.display().to_string();
    let env = [
        ("OSER_FIFO", fifo.as_str()),
        ("RPCFIFOPATH", rpc.as_str()),
        ("KAMCTL_TIMEOUT", "1"),
    ];
    let run = |args: &[&str]| kamctl_env(home.path(), &env, args, Duration::from_secs(20));

    // A daemon that is stopped (SIGSTOP) reads nothing: the request sits in
    // the pipe and no reply comes.
    let pid = nix::unistd::Pid::from_raw(d.pid() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    // The MI request with a 1 s timeout, the JSON-RPC one with the default 5 s.
    let default_env = [("OSER_FIFO", fifo.as_str()), ("RPCFIFOPATH", rpc.as_str())];
    for (args, secs) in [
        (&["fifo", "sip_trace"][..], 1),
        (&["rpc", "siptrace.status", "check"], 5),
    ] {
        let started = std::time::Instant::now();
        let (kpid, o) = if secs == 1 {
            kamctl_pid(home.path(), &env, args, Duration::from_secs(20))
        } else {
            kamctl_pid(home.path(), &default_env, args, Duration::from_secs(20))
        };
        eprintln!("{args:?}: gave up after {:?}", started.elapsed());
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(o.stdout.is_empty());
        assert_eq!(
            String::from_utf8_lossy(&o.stderr),
            format!(
                "ERROR: no reply within {secs} s on /tmp/kamailio_receiver_{kpid} (request written to {})\n",
                if args[0] == "fifo" { &fifo } else { &rpc }
            )
        );
        assert!(!Path::new(&format!("/tmp/kamailio_receiver_{kpid}")).exists());
    }
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    // The stale requests are read now; their clients are gone, which costs
    // the daemon a log line each, nothing more.
    assert_eq!(ok(&run(&["fifo", "sip_trace"])), "on\n");

    // A FIFO nobody reads: the write cannot even start.
    d.stop();
    nix::unistd::mkfifo(&d.fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let o = run(&["fifo", "sip_trace"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        format!("ERROR: no reply within 1 s: nothing reads {fifo} (is siptraced running?)\n")
    );
    std::fs::remove_file(&d.fifo).unwrap();
}

#[test]
fn twenty_clients_at_once_while_sip_flows() {
    const CLIENTS: usize = 20;
    const ROUNDS: usize = 15;
    /// OPTIONS are sent one after the other for as long as the clients run,
    /// at most this many.
    const SIP_MAX: usize = 20_000;
    let d = Daemon::start("kc-many", CFG);
    let counters = [
        "rows_written",
        "rows_spooled",
        "rows_replayed",
        "rows_dropped",
        "spool_bytes",
        "msgs_escaped",
        "copies_sent",
        "copies_dropped",
    ];
    let started = std::time::Instant::now();
    let done = std::sync::atomic::AtomicBool::new(false);
    let mut sip = 0;
    std::thread::scope(|s| {
        let sip_thread = s.spawn(|| {
            let peer = Peer::new();
            let mut sent = 0;
            while sent < SIP_MAX && !done.load(std::sync::atomic::Ordering::SeqCst) {
                let reply = send_options(&peer, d.addr(), &format!("many-{sent}"));
                assert!(
                    first_line(&reply).starts_with("SIP/2.0 200"),
                    "OPTIONS {sent}"
                );
                sent += 1;
            }
            sent
        });
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let d = &d;
                s.spawn(move || {
                    for round in 0..ROUNDS {
                        if (c + round) % 2 == 0 {
                            // MI: each asks for another counter, so a reply
                            // meant for someone else would show.
                            let name = counters[(c + round) % counters.len()];
                            let out = ok(&kamctl(d, &["fifo", "get_statistics", name]));
                            let want = regex_lite::Regex::new(&format!(
                                "\\Asiptrace:{name} = [0-9]+\n\\z"
                            ))
                            .unwrap();
                            assert!(want.is_match(&out), "client {c}: {out:?}");
                        } else {
                            // JSON-RPC: the reply carries the client's pid as id.
                            let (pid, o) = kamctl_d(d, &["rpc", "siptrace.status", "check"]);
                            assert_eq!(
                                ok(&o),
                                format!(
                                    "{{\n  \"jsonrpc\":  \"2.0\",\n  \"result\": \"Enabled\",\n  \"id\": {pid}\n}}\n"
                                ),
                                "client {c}"
                            );
                        }
                    }
                })
            })
            .collect();
        for c in clients {
            c.join().unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        sip = sip_thread.join().unwrap();
    });
    // Every OPTIONS was answered (above) and traced.
    assert!(sip > 0);
    let rows = d.wait_rows(sip);
    assert_eq!(rows.len(), sip);
    eprintln!(
        "{} kamctl runs by {CLIENTS} clients, meanwhile {sip} OPTIONS answered and traced, in {:?}",
        CLIENTS * ROUNDS,
        started.elapsed()
    );
}
