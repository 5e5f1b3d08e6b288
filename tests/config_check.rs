//! `siptraced -c` refuses every config that start-up would refuse, with the
//! same `file:line:col: message` line and exit code 1, because both go
//! through the one load path (config values are parsed and checked once, at
//! load). And the shipped configs start without a single warning.

mod common;
use common::*;
use std::path::Path;
use std::process::{Command, Output};

const HEAD: &str =
    "#!KAMAILIO\nlisten=udp:127.0.0.1:5060\nloadmodule \"tm.so\"\nloadmodule \"siptrace.so\"\n";
const ROUTE: &str = "\nrequest_route {\n    exit;\n}\n";

/// (lines after the 4-line head, expected diagnostic without the file).
const BAD: &[(&str, &str)] = &[
    (
        r#"modparam("siptrace", "duplicate_uri", "udp:10.0.0.1:9060")"#,
        "5:39: modparam siptrace.duplicate_uri: duplicate URI 'udp:10.0.0.1:9060' is not a sip: URI; write it as sip:host[:port][;transport=tcp]",
    ),
    (
        "modparam(\"tm\", \"retr_timer1\", 1000)\nmodparam(\"tm\", \"retr_timer2\", 800)",
        "6:31: modparam tm.retr_timer2: 800 ms is less than retr_timer1 (1000 ms at 5:31); T2 caps the retransmission interval that starts at T1",
    ),
    (
        r#"modparam("siptrace", "send_sock_addr", "eth0")"#,
        "5:40: modparam siptrace.send_sock_addr: 'eth0' does not name a local socket; write it as sip:IP:PORT or udp:IP:PORT with the address of a listen= socket",
    ),
    (
        r#"modparam("siptrace", "send_sock_addr", "sip:127.0.0.2:5060")"#,
        "5:40: modparam siptrace.send_sock_addr: 127.0.0.2:5060 is not a listen socket (listening on udp:127.0.0.1:5060)",
    ),
    // sip_trace("sips:…") in the script: checked by the script compiler
    // (another change); its case belongs here once it lands.
];

fn run(args: &[&str], cfg: &Path) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("-f")
        .arg(cfg)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

#[test]
fn check_and_start_refuse_the_same_configs_with_the_same_line() {
    let dir = TempDir::new("cfgcheck");
    let mut bad = Vec::new();
    for (i, (params, want)) in BAD.iter().enumerate() {
        let path = dir.join(&format!("bad{i}.cfg"));
        std::fs::write(&path, format!("{HEAD}{params}{ROUTE}")).unwrap();
        let want = format!("{}:{want}", path.display());
        for args in [&["-c"][..], &["-D", "-E"][..]] {
            let out = run(args, &path);
            let err = String::from_utf8_lossy(&out.stderr);
            if out.status.code() != Some(1) || !err.lines().any(|l| l == want) {
                bad.push(format!(
                    "{args:?} {params}\n  exit {:?}\n  want the line: {want}\n  got: {err}",
                    out.status.code()
                ));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn shipped_configs_start_without_a_warning() {
    for rel in ["etc/siptraced.cfg", "etc/packaged/siptraced.cfg"] {
        let out = run(&["-c"], &repo_root().join(rel));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{rel}: {err}");
        assert!(err.trim().is_empty(), "{rel}: -c warned:\n{err}");

        let mut d = Daemon::start("shipped", &shipped_for_test(rel));
        let log = d.log_text();
        d.stop();
        let warns: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
            .collect();
        assert!(warns.is_empty(), "{rel} warned at start-up:\n{log}");
        // docs/decisions.md §5: the multi-process knob is one info line.
        if rel == "etc/siptraced.cfg" {
            assert!(
                log.contains("children is accepted but siptraced runs one thread by design"),
                "{log}"
            );
        }
    }
}

/// MI `debug` reports the level in force: the config's `debug=2` moved by
/// one `-d` is Kamailio's 3 (L_DBG).
#[test]
fn mi_debug_reports_the_level_moved_by_d_flags() {
    let dir = TempDir::new("cfgcheck-d");
    let port = free_udp_port();
    let fifo = dir.join("mi.fifo");
    let cfg = dir.join("k.cfg");
    let text = format!(
        "debug=2\nlisten=udp:127.0.0.1:{port}\nloadmodule \"mi_fifo.so\"\n\
         modparam(\"mi_fifo\", \"fifo_name\", \"{}\")\n{ROUTE}",
        fifo.display()
    );
    std::fs::write(&cfg, text).unwrap();
    let log = dir.join("log");
    let mut child = Command::new(BIN)
        .args(["-D", "-E", "-d", "-f"])
        .arg(&cfg)
        .env_remove("RUST_LOG")
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(dir.join("err")).unwrap())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !std::fs::read_to_string(dir.join("err"))
        .unwrap_or_default()
        .contains(" started (pid")
    {
        assert!(child.try_wait().unwrap().is_none(), "exited early");
        assert!(std::time::Instant::now() < deadline, "did not start");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let name = unique_name("cfgcheck-debug");
    let reply = fifo_exchange(
        &fifo,
        &name,
        format!(":debug:{name}\n\n").as_bytes(),
        std::time::Duration::from_secs(5),
    );
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
    assert_eq!(
        reply.as_deref().map(String::from_utf8_lossy).as_deref(),
        Some("200 OK\nDEBUG:: 3\n\n")
    );
}
