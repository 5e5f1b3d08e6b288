//! Mirror parameters a Kamailio user may get wrong are refused when the
//! config is loaded: `siptraced -c -f cfg` exits 1 and names the file, line
//! and column of the value — not a start-up failure after the sockets.

mod common;
use common::*;
use std::process::Command;

const HEAD: &str = "#!KAMAILIO\nlisten=udp:127.0.0.1:5060\nloadmodule \"siptrace.so\"\n";
const ROUTE: &str = "\nrequest_route {\n    exit;\n}\n";

/// (modparam lines after the 3-line head, expected diagnostic without the file).
const CASES: &[(&str, &str)] = &[
    (
        r#"modparam("siptrace", "duplicate_uri", "10.0.0.1:9060")"#,
        "4:39: modparam siptrace.duplicate_uri: duplicate URI '10.0.0.1:9060' is not a sip: URI",
    ),
    (
        r#"modparam("siptrace", "duplicate_uri", "sip:2001:db8::1:9060")"#,
        "4:39: modparam siptrace.duplicate_uri: duplicate URI 'sip:2001:db8::1:9060': an IPv6 address must be in brackets",
    ),
    (
        r#"modparam("siptrace", "duplicate_uri", "sip:10.0.0.1:9060;transport=tls")"#,
        "4:39: modparam siptrace.duplicate_uri: duplicate URI 'sip:10.0.0.1:9060;transport=tls': transport 'tls' is not supported",
    ),
    (
        r#"modparam("siptrace", "hep_version", 4)"#,
        "4:37: modparam siptrace.hep_version: must be from 1 to 3, got 4",
    ),
    (
        "modparam(\"siptrace\", \"hep_capture_id\", 100000)\nmodparam(\"siptrace\", \"hep_version\", 2)",
        "4:40: modparam siptrace.hep_capture_id: hep_capture_id 100000 does not fit the 16-bit field of HEPv2",
    ),
    (
        "modparam(\"siptrace\", \"hep_mode_on\", 1)\nmodparam(\"siptrace\", \"hep_version\", 2)\nmodparam(\"siptrace\", \"duplicate_uri\", \"sip:127.0.0.1:9060;transport=tcp\")",
        "6:39: modparam siptrace.duplicate_uri: HEPv2 (hep_version 2 at 5:37) has no total length",
    ),
    (
        r#"modparam("siptrace", "send_sock_addr", "eth0:5060")"#,
        "4:40: modparam siptrace.send_sock_addr: 'eth0:5060' does not name a local socket",
    ),
];

#[test]
fn bad_mirror_params_fail_the_config_check_with_their_position() {
    let dir = TempDir::new("mirror-cfg");
    for (i, (params, want)) in CASES.iter().enumerate() {
        let path = dir.join(&format!("bad{i}.cfg"));
        std::fs::write(&path, format!("{HEAD}{params}{ROUTE}")).unwrap();
        let out = Command::new(BIN)
            .arg("-c")
            .arg("-f")
            .arg(&path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{params}: {err}");
        let want = format!("{}:{want}", path.display());
        assert!(
            err.lines().any(|l| l.starts_with(&want)),
            "{params}\n want a line starting with: {want}\n got: {err}"
        );
    }
}

#[test]
fn good_mirror_params_pass_the_config_check() {
    let dir = TempDir::new("mirror-cfg-ok");
    let params = [
        r#"modparam("siptrace", "duplicate_uri", "sip:homer.example.com:9060;transport=tcp")"#,
        r#"modparam("siptrace", "hep_mode_on", 1)"#,
        r#"modparam("siptrace", "hep_capture_id", 100000)"#,
        r#"modparam("siptrace", "auth_key", "secret")"#,
        r#"modparam("siptrace", "send_sock_addr", "sip:127.0.0.1:5060")"#,
        r#"modparam("siptrace", "mirror_tcp_queue_kb", 256)"#,
    ]
    .join("\n");
    let path = dir.join("good.cfg");
    std::fs::write(&path, format!("{HEAD}{params}{ROUTE}")).unwrap();
    let out = Command::new(BIN)
        .arg("-c")
        .arg("-f")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_duplicate_uri_host_that_does_not_resolve_stops_start_up_with_its_name() {
    let cfg = "#!KAMAILIO\nlisten=udp:127.0.0.1:@PORT@\nloadmodule \"mi_fifo.so\"\nloadmodule \"siptrace.so\"\n\
               modparam(\"mi_fifo\", \"fifo_name\", \"@FIFO@\")\n\
               modparam(\"siptrace\", \"db_url\", \"sqlite://@DB@\")\n\
               modparam(\"siptrace\", \"duplicate_uri\", \"sip:no-such-capture-node.invalid:9060\")\n\
               request_route {\n    exit;\n}\n";
    let dir = TempDir::new("mirror-resolve");
    let port = free_udp_port();
    let path = dir.join("k.cfg");
    let text = expand(
        cfg,
        port,
        &dir.join("t.db"),
        &dir.join("mi.fifo"),
        &dir.join("rpc.fifo"),
        dir.path(),
    );
    std::fs::write(&path, text).unwrap();
    let out = Command::new(BIN)
        .args(["-D", "-E", "-f"])
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("duplicate_uri sip:no-such-capture-node.invalid:9060: cannot resolve 'no-such-capture-node.invalid'"),
        "{err}"
    );
}

/// Not a listen socket: decided at load when the listens are IP literals
/// (so `-c` refuses it too); with a wildcard listen only the host knows
/// its addresses, and start-up refuses it with the same positioned line
/// and the same exit code 1.
#[test]
fn a_send_sock_addr_that_is_not_a_listen_socket_is_a_config_error() {
    let cfg = "#!KAMAILIO\nlisten=udp:@HOST@:@PORT@\nloadmodule \"mi_fifo.so\"\nloadmodule \"siptrace.so\"\n\
               modparam(\"mi_fifo\", \"fifo_name\", \"@FIFO@\")\n\
               modparam(\"siptrace\", \"db_url\", \"sqlite://@DB@\")\n\
               modparam(\"siptrace\", \"duplicate_uri\", \"sip:127.0.0.1:9\")\n\
               modparam(\"siptrace\", \"send_sock_addr\", \"sip:@SEND@\")\n\
               request_route {\n    exit;\n}\n";
    let dir = TempDir::new("mirror-sendsock");
    let port = free_udp_port();
    let path = dir.join("k.cfg");
    let write = |host: &str, send: &str| {
        let text = expand(
            &cfg.replace("@HOST@", host).replace("@SEND@", send),
            port,
            &dir.join("t.db"),
            &dir.join("mi.fifo"),
            &dir.join("rpc.fifo"),
            dir.path(),
        );
        std::fs::write(&path, text).unwrap();
    };
    let run = |args: &[&str]| {
        let out = Command::new(BIN).args(args).arg(&path).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    write("127.0.0.1", "127.0.0.1:1");
    let want = format!(
        "{}:8:40: modparam siptrace.send_sock_addr: 127.0.0.1:1 is not a listen socket (listening on udp:127.0.0.1:{port})",
        path.display()
    );
    for args in [&["-c", "-f"][..], &["-D", "-E", "-f"][..]] {
        let (code, err) = run(args);
        assert_eq!(code, Some(1), "{args:?}: {err}");
        assert!(err.lines().any(|l| l == want), "{args:?}: {err}");
    }

    // 192.0.2.1 (TEST-NET-1) is no address of this host.
    write("*", &format!("192.0.2.1:{port}"));
    let (code, err) = run(&["-c", "-f"]);
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = run(&["-D", "-E", "-f"]);
    assert_eq!(code, Some(1), "{err}");
    let want = format!(
        "{}:8:40: modparam siptrace.send_sock_addr: 192.0.2.1:{port} is not a listen socket (listening on ",
        path.display()
    );
    let line = err.lines().find(|l| l.starts_with(&want));
    assert!(
        line.is_some_and(|l| l.contains(&format!("udp:127.0.0.1:{port}"))),
        "{err}"
    );
}
