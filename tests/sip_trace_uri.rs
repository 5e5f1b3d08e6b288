//! Addresses the proxy cannot serve are found when the config is loaded,
//! with the file, line and column: a constant sip_trace() URI the mirror
//! cannot send to (sips:) fails `-c` and a real start alike, instead of
//! loading and then failing on every traced message; `listen=` of a
//! protocol Kamailio has and siptraced does not serve is a warning.

mod common;
use common::*;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const SIPS: &str = "#!KAMAILIO\nlisten=udp:127.0.0.1:@PORT@\nloadmodule \"siptrace.so\"\n\
                    modparam(\"siptrace\", \"db_url\", \"sqlite://@DB@\")\n\
                    request_route {\n    sip_trace(\"sips:127.0.0.1:5061\");\n    exit;\n}\n";

/// Line 6, column 15: the URI argument.
const SIPS_DIAG: &str =
    ":6:15: sip_trace(): duplicate URI 'sips:127.0.0.1:5061': sips: asks for TLS";

fn write_cfg(dir: &TempDir, name: &str, cfg: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    let db = dir.join("trace.db");
    let text = cfg
        .replace("@PORT@", &free_udp_port().to_string())
        .replace("@DB@", &db.display().to_string());
    std::fs::write(&path, text).unwrap();
    path
}

fn check(path: &std::path::Path) -> Output {
    Command::new(BIN)
        .arg("-c")
        .arg("-f")
        .arg(path)
        .output()
        .unwrap()
}

/// `siptraced -D -E -f cfg`, killed after 10 s if it does not exit by itself.
fn start(dir: &TempDir, path: &std::path::Path) -> Output {
    let mut child = Command::new(BIN)
        .args(["-D", "-E", "-f"])
        .arg(path)
        .env("STATE_DIRECTORY", dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn diag_line(out: &Output, want: &str) -> Option<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .find(|l| l.starts_with(want))
        .map(str::to_string)
}

#[test]
fn a_sips_sip_trace_uri_is_a_config_error_for_check_and_start() {
    let dir = TempDir::new("sip-trace-sips");
    let path = write_cfg(&dir, "sips.cfg", SIPS);
    let want = format!("{}{SIPS_DIAG}", path.display());

    let checked = check(&path);
    let err = String::from_utf8_lossy(&checked.stderr);
    assert_eq!(checked.status.code(), Some(1), "{err}");
    let line = diag_line(&checked, &want)
        .unwrap_or_else(|| panic!("want a line starting with: {want}\n got: {err}"));

    let started = start(&dir, &path);
    let err = String::from_utf8_lossy(&started.stderr);
    assert_eq!(started.status.code(), Some(1), "{err}");
    assert_eq!(diag_line(&started, &want), Some(line), "{err}");
}

#[test]
fn unserved_listen_protocols_warn_and_the_config_still_loads() {
    let dir = TempDir::new("listen-unserved");
    let cfg = "#!KAMAILIO\nlisten=udp:127.0.0.1:@PORT@\nlisten=sctp:127.0.0.1:5060\n\
               listen=ws:127.0.0.1:8080\nrequest_route {\n    exit;\n}\n";
    let path = write_cfg(&dir, "mixed.cfg", cfg);
    let out = check(&path);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    for (pos, sock) in [
        (":3:8:", "sctp:127.0.0.1:5060"),
        (":4:8:", "ws:127.0.0.1:8080"),
    ] {
        let want = format!(
            "{}{pos} listen={sock}: only UDP, TCP and TLS are served; this socket is not opened",
            path.display()
        );
        assert!(
            err.lines().any(|l| l.contains(&want)),
            "{want}\n got: {err}"
        );
    }

    // Only unserved sockets: nothing to listen on, said at load.
    let cfg = "#!KAMAILIO\nlisten=sctp:127.0.0.1:5060\nrequest_route {\n    exit;\n}\n";
    let path = write_cfg(&dir, "sctp-only.cfg", cfg);
    let out = check(&path);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let want = format!(
        "{}:2:8: listen: no socket siptraced can serve",
        path.display()
    );
    assert!(
        err.lines().any(|l| l.starts_with(&want)),
        "{want}\n got: {err}"
    );
}
