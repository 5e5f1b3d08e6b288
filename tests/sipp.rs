//! sipp (sip-tester) calls through the real daemon: its default uac and uas
//! scenarios, stateless (forward) and stateful (t_relay), with the trace
//! flag on every request and sip_trace() on initial ones. Every call must
//! complete and leave exactly its rows.

mod common;
use common::*;
use std::process::Command;
use std::time::Duration;

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
modparam("siptrace", "db_url", "sqlite://@DB@")
modparam("siptrace", "trace_on", 1)
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
        route(RELAY);
        exit;
    }
    record_route();
    $du = "sip:127.0.0.1:" + UAS_PORT;
    route(RELAY);
}

route[RELAY] {
#!ifdef STATEFUL
    t_relay();
#!else
    forward();
#!endif
}
"#;

/// `calls` sipp calls through siptraced; returns the daemon for checks.
fn run(stateful: bool, calls: u32) -> Daemon {
    let uas_port = free_udp_port();
    let mut args = vec!["-A".to_string(), format!("UAS_PORT={uas_port}")];
    if stateful {
        args.extend(["-A".to_string(), "STATEFUL".to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let d = Daemon::start_with("sipp", CFG, &args);
    let m = calls.to_string();
    let uas = sipp_at(&["-sn", "uas", "-p", &uas_port.to_string(), "-m", &m])
        .spawn()
        .expect("sipp installed (apt-get install sip-tester)");
    std::thread::sleep(Duration::from_millis(300));
    let uac_port = free_udp_port().to_string();
    let target = d.addr().to_string();
    let uac = sipp_at(&[
        "-sn",
        "uac",
        &target,
        "-p",
        &uac_port,
        "-m",
        &m,
        "-r",
        "20",
        "-timeout",
        "40s",
        "-timeout_error",
    ])
    .spawn()
    .unwrap();
    wait_sipp_ok(uac, "uac");
    wait_sipp_ok(uas, "uas");
    d
}

fn count_by_kind(rows: &[TraceRow]) -> Vec<(String, usize)> {
    let mut m = std::collections::BTreeMap::new();
    for r in rows {
        *m.entry(
            format!("{} {} {}", r.direction, r.method, r.status)
                .trim_end()
                .to_string(),
        )
        .or_insert(0) += 1;
    }
    m.into_iter().collect()
}

fn expect(kinds: &[&str], calls: usize) -> Vec<(String, usize)> {
    let mut v: Vec<(String, usize)> = kinds.iter().map(|k| (k.to_string(), calls)).collect();
    v.sort();
    v
}

/// sipp with this file's address options.
fn sipp_at(args: &[&str]) -> Command {
    let mut c = sipp(args);
    c.args(["-i", "127.0.0.1"]);
    c
}

#[test]
fn sipp_calls_through_stateless_proxy_are_all_traced() {
    let calls = 20;
    let d = run(false, calls as u32);
    let rows = d.wait_rows(calls * 10);
    assert_eq!(
        count_by_kind(&rows),
        expect(
            &[
                "in INVITE",
                "out INVITE",
                "in INVITE 180",
                "out INVITE 180",
                "in INVITE 200",
                "out INVITE 200",
                "out ACK",
                "out BYE",
                "in BYE 200",
                "out BYE 200"
            ],
            calls
        )
    );
}

#[test]
fn sipp_calls_through_stateful_proxy_are_all_traced_and_transactions_freed() {
    let calls = 20;
    let d = run(true, calls as u32);
    let rows = d.wait_rows(calls * 11);
    assert_eq!(
        count_by_kind(&rows),
        expect(
            &[
                "in INVITE",
                "out INVITE 100",
                "out INVITE",
                "in INVITE 180",
                "out INVITE 180",
                "in INVITE 200",
                "out INVITE 200",
                "out ACK",
                "out BYE",
                "in BYE 200",
                "out BYE 200"
            ],
            calls
        )
    );
    // Every call's rows in wire order: the INVITE's before its ACK's.
    let first_ack = rows.iter().position(|r| r.method == "ACK").unwrap();
    let first_inv = rows.iter().position(|r| r.method == "INVITE").unwrap();
    assert!(first_inv < first_ack);
    for _ in 0..100 {
        let out = d.kamctl(&["fifo", "tm_stats"]);
        if String::from_utf8_lossy(&out.stdout).contains("current:: 0") {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("transactions still live after the calls ended");
}
