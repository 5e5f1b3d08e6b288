//! Kamailio's own client against siptraced: Debian's `/usr/sbin/kamctl`
//! (5.6) talks JSON-RPC to our FIFO, unchanged. It is pointed at our FIFO the
//! way its documentation says — `RPCFIFOPATH` in `~/.kamctlrc`, read after
//! /etc/kamailio/kamctlrc — with HOME set to a temporary directory. Its
//! printed output is compared with what it printed against Kamailio 5.6.3
//! (tests/data/jsonrpc-vectors/index.md), and the effect of
//! `siptrace.status` is checked on the rows SIP traffic leaves.
//!
//! scripts/test installs the `kamailio` package; without /usr/sbin/kamctl
//! these tests fail, they do not skip.

mod common;
use common::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const KAMCTL: &str = "/usr/sbin/kamctl";

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

struct Kamctl {
    home: TempDir,
}

impl Kamctl {
    fn new(d: &Daemon) -> Kamctl {
        assert!(
            Path::new(KAMCTL).exists(),
            "{KAMCTL} is missing: install Debian's kamailio package (scripts/test does)"
        );
        let home = TempDir::new("kamhome");
        std::fs::write(
            home.join(".kamctlrc"),
            format!("RPCFIFOPATH={}\n", d.rpc_fifo.display()),
        )
        .unwrap();
        Kamctl { home }
    }

    /// Runs kamctl; returns (its pid, exit code, stdout, stderr).
    fn run(&self, args: &[&str]) -> (u32, i32, String, String) {
        let mut cmd = Command::new(KAMCTL);
        cmd.args(args)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .env("HOME", self.home.path());
        // kamctl's pid is the id of its request (and in its reply FIFO name).
        let (pid, out) = run_in_group(&mut cmd, Duration::from_secs(20));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        (
            pid,
            out.status.code().unwrap_or(-1),
            stdout,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `kamctl rpc siptrace.status <arg>` must print exactly this result.
    #[track_caller]
    fn status(&self, arg: &str, result: &str) {
        let (pid, code, out, err) = self.run(&["rpc", "siptrace.status", arg]);
        assert_eq!(
            (code, err.as_str()),
            (0, ""),
            "kamctl rpc siptrace.status {arg}: {out}"
        );
        assert_eq!(
            out,
            format!(
                "{{\n  \"jsonrpc\":  \"2.0\",\n  \"result\": \"{result}\",\n  \"id\": {pid}\n}}\n"
            ),
            "kamctl rpc siptrace.status {arg}"
        );
    }
}

#[test]
fn kamctl_rpc_siptrace_status_switches_tracing() {
    let d = Daemon::start("kam-st", CFG);
    let k = Kamctl::new(&d);
    let peer = Peer::new();
    // The sequence the vectors' index.md ran against Kamailio 5.6.3.
    k.status("check", "Enabled");
    k.status("off", "Disabled");
    k.status("check", "Disabled");
    // Off: sip_trace() stores nothing.
    let reply = send_options(&peer, d.addr(), "kam-off");
    assert!(first_line(&reply).starts_with("SIP/2.0 200"));
    k.status("on", "Enabled");
    k.status("check", "Enabled");
    // On: the next request is stored; the one sent while off never was.
    send_options(&peer, d.addr(), "kam-on");
    let rows = d.wait_rows(1);
    let ids: Vec<&str> = rows.iter().map(|r| r.callid.as_str()).collect();
    assert_eq!(ids, ["kam-on"]);

    let (pid, code, out, err) = k.run(&["rpc", "siptrace.status", "bogus"]);
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(
        out,
        format!(
            "{{\n  \"jsonrpc\":  \"2.0\",\n  \"error\":  {{\n    \"code\": 500,\n    \"message\":  \
             \"Bad parameter (on, off or check)\"\n  }},\n  \"id\": {pid}\n}}\n"
        )
    );
    k.status("check", "Enabled");
    // Prefix match, as siptrace.status: "offline" is off.
    k.status("offline", "Disabled");
    send_options(&peer, d.addr(), "kam-off2");
    k.status("ON", "Enabled");
    send_options(&peer, d.addr(), "kam-on2");
    let rows = d.wait_rows(2);
    let ids: Vec<&str> = rows.iter().map(|r| r.callid.as_str()).collect();
    assert_eq!(ids, ["kam-on", "kam-on2"]);
}

#[test]
fn kamctl_ps_uptime_version_and_stats() {
    let d = Daemon::start("kam-core", CFG);
    let k = Kamctl::new(&d);
    let dpid = d.pid();

    // kamctl ps -> core.psx, re-flowed by kamctl's filter_json.
    let (pid, code, out, err) = k.run(&["ps"]);
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(
        out,
        format!(
            "{{\n  \"jsonrpc\":  \"2.0\",\n  \"result\": [\n    {{\n      \"IDX\":  0,\n      \"PID\":  {dpid},\n      \
             \"DSC\":  \"main process - attendant\"\n    }}\n  ],\n  \"id\": {pid}\n}}\n"
        )
    );

    // kamctl uptime -> core.uptime.
    let (_, code, out, err) = k.run(&["uptime"]);
    assert_eq!((code, err.as_str()), (0, ""));
    let ctime =
        r"[A-Z][a-z]{2} [A-Z][a-z]{2} [ 1-3][0-9] [0-2][0-9]:[0-5][0-9]:[0-6][0-9] [0-9]{4}";
    let re = regex_lite::Regex::new(&format!(
        "\\A\\{{\n  \"jsonrpc\":  \"2.0\",\n  \"result\": \\{{\n    \"now\":  \"{ctime}\",\n    \
         \"up_since\": \"{ctime}\",\n    \"uptime\": [0-9]+\n  \\}},\n  \"id\": [0-9]+\n\\}}\n\\z"
    ))
    .unwrap();
    assert!(re.is_match(&out), "{out:?}");

    let (pid, code, out, _) = k.run(&["rpc", "core.version"]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        format!(
            "{{\n  \"jsonrpc\":  \"2.0\",\n  \"result\": \"siptraced {} ({}/linux) \",\n  \"id\": {pid}\n}}\n",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::ARCH
        )
    );

    // kamctl stats siptrace -> stats.get_statistics ["siptrace:"].
    let peer = Peer::new();
    send_options(&peer, d.addr(), "kam-stats");
    d.wait_rows(1);
    let (pid, code, out, _) = k.run(&["stats", "siptrace"]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        format!(
            "{{\n  \"jsonrpc\":  \"2.0\",\n  \"result\": [\n    \"siptrace:copies_dropped = 0\",\n    \
             \"siptrace:copies_sent = 0\",\n    \"siptrace:msgs_escaped = 0\",\n    \
             \"siptrace:msgs_masked = 0\",\n    \"siptrace:rows_dropped = 0\",\n    \"siptrace:rows_replayed = 0\",\n    \
             \"siptrace:rows_spooled = 0\",\n    \"siptrace:rows_written = 1\",\n    \
             \"siptrace:spool_bytes = 0\",\n    \"siptrace:traced_replies = 0\",\n    \
             \"siptrace:traced_requests = 1\"\n  ],\n  \"id\": {pid}\n}}\n"
        )
    );

    // An unknown method: Kamailio's error, printed as kamctl prints it.
    let (pid, code, out, _) = k.run(&["rpc", "no.such.method"]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        format!(
            "{{\n  \"jsonrpc\":  \"2.0\",\n  \"error\":  {{\n    \"code\": 500,\n    \"message\":  \
             \"Method Not Found\"\n  }},\n  \"id\": {pid}\n}}\n"
        )
    );
}
