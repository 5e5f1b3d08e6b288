//! The process as an operator meets it: config check and config errors
//! (file:line:col, exit 1), daemonising with a pid file, SIGTERM writing
//! pending rows and removing the FIFO and pid file, the sample config.

mod common;
use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

const GOOD: &str = r#"listen=udp:127.0.0.1:@PORT@
loadmodule "sl.so"
loadmodule "mi_fifo.so"
loadmodule "siptrace.so"
modparam("mi_fifo", "fifo_name", "@FIFO@")
modparam("siptrace", "db_url", "sqlite://@DB@")
modparam("siptrace", "trace_on", 1)
request_route {
    sip_trace();
    sl_send_reply("404", "Not Here");
}
"#;

fn siptraced(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).output().unwrap()
}

#[test]
fn check_mode_reports_every_error_with_file_line_col() {
    let dir = TempDir::new("cfgerr");
    let cfg = dir.join("bad.cfg");
    std::fs::write(
        &cfg,
        "listen=udp:127.0.0.1:5060\n\
         no_such_global=1\n\
         loadmodule \"siptrace.so\"\n\
         modparam(\"siptrace\", \"trace_flag\", 40)\n\
         request_route {\n\
         \tno_such_function();\n\
         }\n",
    )
    .unwrap();
    let out = siptraced(&["-c", "-f", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let path = cfg.display().to_string();
    for line in [2, 4, 6] {
        assert!(
            err.contains(&format!("{path}:{line}:")),
            "line {line} not reported:\n{err}"
        );
    }
    assert!(err.contains("no_such_function"), "{err}");

    // Starting (not just checking) refuses the same way, before binding anything.
    let out = siptraced(&["-D", "-E", "-f", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("{path}:2:")));

    let out = siptraced(&["-c", "-f", dir.join("missing.cfg").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.cfg"));
}

#[test]
fn sample_config_checks_clean() {
    let cfg = repo_root().join("etc/siptraced.cfg");
    let out = siptraced(&["-c", "-f", cfg.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = siptraced(&["-V"]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("siptraced "));
    assert_eq!(siptraced(&["-x"]).status.code(), Some(2));
}

#[test]
fn daemonises_writes_pid_file_and_cleans_up_on_sigterm() {
    let dir = TempDir::new("daemon");
    let port = free_udp_port();
    let fifo = dir.join("mi.fifo");
    let db = dir.join("t.db");
    let cfg = dir.join("d.cfg");
    std::fs::write(
        &cfg,
        expand(GOOD, port, &db, &fifo, &dir.join("rpc"), dir.path()),
    )
    .unwrap();
    let pidf = dir.join("siptraced.pid");
    // Without -D: the command returns at once, the daemon lives on.
    let st = Command::new(BIN)
        .args(["-f", cfg.to_str().unwrap(), "-P", pidf.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(st.success());
    let deadline = Instant::now() + Duration::from_secs(5);
    while !(pidf.exists() && fifo.exists()) {
        assert!(Instant::now() < deadline, "no pid file / FIFO");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid: i32 = std::fs::read_to_string(&pidf)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());

    // A burst of requests, then SIGTERM at once: every row is written.
    let uac = Peer::new();
    let to = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    for i in 0..50 {
        let m = format!(
            "OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK-t{i}\r\n\
             From: <sip:a@x>;tag={i}\r\nTo: <sip:b@x>\r\nCall-ID: term-{i}\r\nCSeq: 1 OPTIONS\r\n\
             Content-Length: 0\r\n\r\n",
            uac.addr()
        );
        uac.send(to, m.as_bytes());
    }
    for _ in 0..50 {
        assert_eq!(first_line(&uac.recv().0), "SIP/2.0 404 Not Here");
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        assert!(Instant::now() < deadline, "still running after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!pidf.exists(), "pid file removed");
    assert!(!fifo.exists(), "FIFO removed");
    assert_eq!(read_rows(&db, "sip_trace").len(), 50);
}

#[test]
fn sip_trace_mi_replies_byte_for_byte_over_the_fifo() {
    let d = Daemon::start("mi", GOOD);
    let name = format!("st_mi_{}", std::process::id());
    let ask = |req: String| d.mi_raw(&name, req.as_bytes(), Duration::from_secs(2));
    assert_eq!(
        ask(format!(":sip_trace:{name}\n\n")).as_deref(),
        Some(&b"200 OK\non\n\n"[..])
    );
    assert_eq!(
        ask(format!(":sip_trace:{name}\noff\n\n")).as_deref(),
        Some(&b"200 OK\n\n"[..])
    );
    assert_eq!(
        ask(format!(":sip_trace:{name}\n\n")).as_deref(),
        Some(&b"200 OK\noff\n\n"[..])
    );
    assert_eq!(
        ask(format!(":sip_trace:{name}\nyes\n\n")).as_deref(),
        Some(&b"400 Bad parameter\n\n"[..])
    );
    assert_eq!(
        ask(format!(":sip_trace:{name}\nmode::ON\n\n")).as_deref(),
        Some(&b"200 OK\n\n"[..])
    );
    assert_eq!(
        ask(format!(":no_such:{name}\n\n")).as_deref(),
        Some(&b"500 command 'no_such' not available\n"[..])
    );
    // Garbage and a forbidden reply name get no reply, and the daemon goes on.
    assert_eq!(ask(format!("garbage\n\n:sip_trace:../{name}\n\n")), None);
    assert_eq!(
        ask(format!(":sip_trace:{name}\n\n")).as_deref(),
        Some(&b"200 OK\non\n\n"[..])
    );
}

#[test]
fn trace_on_other_than_0_or_1_shows_no_status_but_traces() {
    let d = Daemon::start("on2", &GOOD.replace("\"trace_on\", 1", "\"trace_on\", 2"));
    let name = format!("st_on2_{}", std::process::id());
    let r = d.mi_raw(
        &name,
        format!(":sip_trace:{name}\n\n").as_bytes(),
        Duration::from_secs(2),
    );
    assert_eq!(r.as_deref(), Some(&b"200 OK\n\n"[..]));
    let uac = Peer::new();
    let m = format!(
        "OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK-on2\r\n\
         From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: on2\r\nCSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n",
        uac.addr()
    );
    uac.send(d.addr(), m.as_bytes());
    uac.recv();
    assert_eq!(d.wait_rows(1).len(), 1);
}

#[test]
fn local_replies_carry_one_server_header() {
    let d = Daemon::start("server", GOOD);
    let uac = Peer::new();
    let m = format!(
        "OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK-srv\r\n\
         From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: srv\r\nCSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n",
        uac.addr()
    );
    uac.send(d.addr(), m.as_bytes());
    let (r, _) = uac.recv();
    assert_eq!(
        header(&r, "Server").as_deref(),
        Some(format!("siptraced ({})", env!("CARGO_PKG_VERSION")).as_str())
    );
}
