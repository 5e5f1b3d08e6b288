//! HEP copies checked by independent decoders: sngrep listens for HEP
//! (`-L udp:…`), turns each packet back into a pcap frame (`-O`), and
//! tshark reads that file. Each frame must show the addresses and ports of
//! its row, the row's time and exactly the stored SIP message.
//!
//! What sngrep 1.6.0 (Debian 12) can and cannot tell us, found by feeding it
//! packets:
//! - HEPv3 IPv4: everything.
//! - HEPv2: it takes the payload length from the 8-bit header-length byte
//!   as if it were a 16-bit total (`ntohs(hp_l)`), so the frame holds the
//!   message followed by zero bytes (Kamailio's own v2 packets get the same
//!   treatment). We check the message and that the rest is zeros.
//! - IPv6 inside HEP: its pcap writer always builds an IPv4 header, with
//!   0.0.0.0 for IPv6 ends; ports, time and payload still come through, and
//!   the unit tests of the encoder pin the IPv6 chunks byte by byte.
//!
//! The chunks sngrep ignores (capture id, correlation id) are read back
//! with the small HEPv3 walker at the end of this file.

mod common;
use common::*;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CFG: &str = r#"#!KAMAILIO
listen=udp:127.0.0.1:@PORT@
@LISTEN@
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "rr.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "mi_fifo.so"
loadmodule "siptrace.so"
modparam("mi_fifo", "fifo_name", "@FIFO@")
modparam("siptrace", "db_url", "sqlite://@DB@")
modparam("siptrace", "trace_on", 1)
modparam("siptrace", "trace_flag", 22)
modparam("siptrace", "hep_mode_on", 1)
@SIPTRACE@

request_route {
    if ($hdr(X-Trace) =~ "script") {
        sip_trace();
    }
    if ($hdr(X-Trace) =~ "corr") {
        sip_trace("@SCRIPT_URI@", "$ci-corr");
    }
    if ($hdr(X-Trace) =~ "flag") {
        setflag(22);
    }
    if (is_method("INVITE")) {
        record_route();
    }
    if (has_totag() && loose_route()) {
        forward();
        exit;
    }
    forward("@UAS_HOST@", @UAS_PORT@);
}
"#;

fn start(tag: &str, uas: &Peer, listen: &str, siptrace: &str, script_uri: &str) -> Daemon {
    let uas_host = match uas.addr() {
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
    };
    let cfg = CFG
        .replace("@LISTEN@", listen)
        .replace("@SIPTRACE@", siptrace)
        .replace("@SCRIPT_URI@", script_uri)
        .replace("@UAS_HOST@", &uas_host)
        .replace("@UAS_PORT@", &uas.port().to_string());
    Daemon::start(tag, &cfg)
}

/// sngrep in capture-only mode, listening for HEP on 127.0.0.1.
struct Sngrep {
    child: Option<Child>,
    port: u16,
    pcap: PathBuf,
    log: PathBuf,
    _dir: TempDir,
}

impl Sngrep {
    /// `settings`: lines for sngrep's config file, e.g.
    /// `set eep.listen.version 2`.
    fn start(settings: &[&str]) -> Sngrep {
        let dir = TempDir::new("sngrep");
        let rc = dir.join("sngreprc");
        std::fs::write(&rc, settings.join("\n") + "\n").unwrap();
        let port = free_udp_port();
        let pcap = dir.join("out.pcap");
        let log = dir.join("sngrep.log");
        let logf = std::fs::File::create(&log).unwrap();
        // -N: no interface, so no terminal is needed; -q: no dialog counter.
        // -F -f: only our settings, not the machine's sngreprc.
        let child = Command::new("sngrep")
            .args(["-N", "-q", "-F", "-f"])
            .arg(&rc)
            .arg("-L")
            .arg(format!("udp:127.0.0.1:{port}"))
            .arg("-O")
            .arg(&pcap)
            .stdin(Stdio::null())
            .stdout(logf.try_clone().unwrap())
            .stderr(logf)
            .spawn()
            .expect("run sngrep (scripts/test installs it)");
        let mut s = Sngrep {
            child: Some(child),
            port,
            pcap,
            log,
            _dir: dir,
        };
        s.wait_bound();
        s
    }

    /// Until sngrep's socket shows in /proc/net/udp.
    fn wait_bound(&mut self) {
        let want = format!("0100007F:{:04X}", self.port);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let table = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
            if table
                .lines()
                .any(|l| l.split_whitespace().nth(1) == Some(want.as_str()))
            {
                return;
            }
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("sngrep exited ({st}): {}", self.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "sngrep did not bind: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM (sngrep closes its pcap file on it), then the frames.
    fn finish(mut self) -> Vec<Frame> {
        let mut child = self.child.take().unwrap();
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let _ = child.wait();
        frames(&self.pcap)
    }
}

impl Drop for Sngrep {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One pcap frame as tshark decodes it.
#[derive(Debug)]
struct Frame {
    epoch: String,
    src: String,
    dst: String,
    sport: u16,
    dport: u16,
    call_id: String,
    payload: Vec<u8>,
}

fn frames(pcap: &PathBuf) -> Vec<Frame> {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .args(["-T", "fields", "-E", "separator=|"])
        .args(["-e", "frame.time_epoch", "-e", "ip.src", "-e", "ip.dst"])
        .args([
            "-e",
            "udp.srcport",
            "-e",
            "udp.dstport",
            "-e",
            "sip.Call-ID",
        ])
        .args(["-e", "udp.payload"])
        .env("LC_ALL", "C")
        .output()
        .expect("run tshark (scripts/test installs it)");
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            assert_eq!(f.len(), 7, "{l}");
            Frame {
                epoch: f[0].to_string(),
                src: f[1].to_string(),
                dst: f[2].to_string(),
                sport: f[3].parse().unwrap(),
                dport: f[4].parse().unwrap(),
                call_id: f[5].to_string(),
                payload: unhex(f[6]),
            }
        })
        .collect()
}

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// `proto:ip:port` of a row back to ip and port.
fn ip_port(endpoint: &str) -> (String, u16) {
    let rest = endpoint.split_once(':').unwrap().1;
    let a: SocketAddr = rest.parse().unwrap();
    (a.ip().to_string(), a.port())
}

/// The row's time as seconds since the epoch, through `date` (same TZ as
/// the daemon: both inherit ours), with its microseconds.
fn row_epoch(r: &TraceRow) -> String {
    let out = Command::new("date")
        .arg("-d")
        .arg(&r.time_stamp)
        .arg("+%s")
        .output()
        .unwrap();
    let sec = String::from_utf8_lossy(&out.stdout).trim().to_string();
    format!("{sec}.{:06}000", r.time_us)
}

/// The checks shared by every HEP version: one frame per row, in order,
/// with its time, ports, Call-ID and message; `addresses` when the frame
/// can show them.
fn check_frames(frames: &[Frame], rows: &[TraceRow], zero_padded: bool, addresses: bool) {
    assert_eq!(frames.len(), rows.len(), "one HEP packet per traced event");
    for (i, (f, r)) in frames.iter().zip(rows).enumerate() {
        let what = format!("frame {i} ({} {} {})", r.direction, r.method, r.status);
        let (sip, sport) = ip_port(&r.fromip);
        let (dip, dport) = ip_port(&r.toip);
        if addresses {
            assert_eq!(
                (f.src.as_str(), f.dst.as_str()),
                (sip.as_str(), dip.as_str()),
                "{what}"
            );
        }
        assert_eq!((f.sport, f.dport), (sport, dport), "{what}");
        assert_eq!(f.epoch, row_epoch(r), "{what}: the row's time");
        assert_eq!(f.call_id, r.callid, "{what}");
        if zero_padded {
            assert!(f.payload.len() >= r.msg.len(), "{what}");
            assert_eq!(
                String::from_utf8_lossy(&f.payload[..r.msg.len()]),
                String::from_utf8_lossy(&r.msg),
                "{what}"
            );
            assert!(f.payload[r.msg.len()..].iter().all(|b| *b == 0), "{what}");
        } else {
            assert_eq!(
                String::from_utf8_lossy(&f.payload),
                String::from_utf8_lossy(&r.msg),
                "{what}"
            );
        }
    }
}

fn hep_settings(sngrep: &Sngrep, version: Option<u8>, extra: &str) -> String {
    let mut s = format!(
        "modparam(\"siptrace\", \"duplicate_uri\", \"sip:{}\")\n",
        sngrep.addr()
    );
    if let Some(v) = version {
        s += &format!("modparam(\"siptrace\", \"hep_version\", {v})\n");
    }
    s + extra
}

#[test]
fn hepv3_is_decoded_by_sngrep_with_addresses_times_and_payload() {
    // sngrep refuses packets whose auth key differs: the key chunk is checked too.
    let sngrep = Sngrep::start(&["set eep.listen.version 3", "set eep.listen.pass s3cret"]);
    let (uac, uas) = (Peer::new(), Peer::new());
    let siptrace = hep_settings(
        &sngrep,
        None,
        "modparam(\"siptrace\", \"auth_key\", \"s3cret\")\nmodparam(\"siptrace\", \"hep_capture_id\", 4242)",
    );
    let mut d = start("hep3", &uas, "", &siptrace, "");
    sip_call(&uac, &uas, d.addr(), "hep3-call@test", "script,flag");
    let rows = d.wait_rows(10);
    assert_eq!(rows.len(), 10);
    assert_eq!(d.trace_stat("copies_sent"), 10);
    assert_eq!(d.stop(), Some(0));
    let frames = sngrep.finish();
    check_frames(&frames, &rows, false, true);
}

#[test]
fn hepv2_is_decoded_by_sngrep() {
    let sngrep = Sngrep::start(&["set eep.listen.version 2"]);
    let (uac, uas) = (Peer::new(), Peer::new());
    let siptrace = hep_settings(
        &sngrep,
        Some(2),
        "modparam(\"siptrace\", \"hep_capture_id\", 65535)",
    );
    let mut d = start("hep2", &uas, "", &siptrace, "");
    sip_call(&uac, &uas, d.addr(), "hep2-call@test", "script,flag");
    let rows = d.wait_rows(10);
    assert_eq!(rows.len(), 10);
    assert_eq!(d.stop(), Some(0));
    let frames = sngrep.finish();
    check_frames(&frames, &rows, true, true);
}

#[test]
fn hepv3_of_an_ipv6_call_is_decoded_by_sngrep() {
    let sngrep = Sngrep::start(&["set eep.listen.version 3"]);
    let (uac, uas) = (Peer::bind("[::1]:0"), Peer::bind("[::1]:0"));
    let port = free_udp_port();
    let listen = format!("listen=udp:[::1]:{port}");
    let siptrace = hep_settings(&sngrep, Some(3), "");
    let mut d = start("hep3v6", &uas, &listen, &siptrace, "");
    let proxy: SocketAddr = format!("[::1]:{port}").parse().unwrap();
    sip_call(&uac, &uas, proxy, "hep3-v6@test", "script,flag");
    let rows = d.wait_rows(10);
    assert_eq!(rows.len(), 10);
    assert!(
        rows.iter()
            .all(|r| r.fromip.contains('[') && r.toip.contains('['))
    );
    assert_eq!(d.stop(), Some(0));
    let frames = sngrep.finish();
    check_frames(&frames, &rows, false, false);
}

#[test]
fn sip_trace_uri_with_correlation_id_and_capture_id_in_hepv3() {
    let (uac, uas, node) = (Peer::new(), Peer::new(), Peer::new());
    let script_uri = format!("sip:{}", node.addr());
    let siptrace = "modparam(\"siptrace\", \"hep_capture_id\", 70000)";
    let mut d = start("hep3-corr", &uas, "", siptrace, &script_uri);
    sip_call(&uac, &uas, d.addr(), "corr-call@test", "corr");
    let rows = d.wait_rows(3);
    assert_eq!(d.stop(), Some(0));
    let packets = node.drain(Duration::from_millis(300));
    assert_eq!(packets.len(), 3, "INVITE, ACK and BYE as received");
    for ((p, _), r) in packets.iter().zip(&rows) {
        let chunks = hep3_chunks(p);
        let get = |t: u16| {
            chunks
                .iter()
                .find(|(ty, _)| *ty == t)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("no chunk {t:#x}"))
        };
        assert_eq!(get(0x0c), 70000u32.to_be_bytes(), "capture id");
        assert_eq!(get(0x11), b"corr-call@test-corr", "correlation id");
        assert_eq!(get(0x0b), [1], "protocol type SIP");
        assert_eq!(get(0x02), [17], "UDP");
        assert_eq!(get(0x0f), r.msg, "payload");
        assert!(
            chunks.iter().all(|(t, _)| *t != 0x0e),
            "no auth key configured"
        );
    }
}

/// (type, value) of each chunk of a HEPv3 packet; checks the lengths add up.
fn hep3_chunks(p: &[u8]) -> Vec<(u16, Vec<u8>)> {
    assert_eq!(&p[..4], b"HEP3");
    let total = u16::from_be_bytes([p[4], p[5]]) as usize;
    assert_eq!(total, p.len());
    let mut out = Vec::new();
    let mut pos = 6;
    while pos < total {
        let ty = u16::from_be_bytes([p[pos + 2], p[pos + 3]]);
        let len = u16::from_be_bytes([p[pos + 4], p[pos + 5]]) as usize;
        assert!(len >= 6 && pos + len <= total);
        out.push((ty, p[pos + 6..pos + len].to_vec()));
        pos += len;
    }
    out
}
