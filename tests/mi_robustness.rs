//! What a client cannot break: garbage, huge, binary and half-written
//! requests on both control FIFOs, reply FIFOs that are not what they claim
//! to be, and the server FIFOs being deleted or replaced under the daemon.
//! Each case states the reply (or silence) and then shows that the daemon
//! still serves a normal request; none may create a file outside reply_dir.

mod common;
use common::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

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

const WAIT: Duration = Duration::from_secs(5);
const ST: &str = ":sip_trace:@R@\n\n";
const ON: &str = "200 OK\non\n\n";
const OK: &str = "200 OK\n\n";
const BAD: &str = "400 Bad parameter\n\n";
const PARSE: &str = "400 parse error in command 'sip_trace'\n";

fn check(name: &str) -> String {
    format!(
        "{{\"jsonrpc\": \"2.0\", \"method\": \"siptrace.status\", \"params\": [\"check\"], \"reply_name\": \"{name}\", \"id\": 1}}\n"
    )
}

const ENABLED: &str = "{\n\t\"jsonrpc\":\t\"2.0\",\n\t\"result\":\t\"Enabled\",\n\t\"id\":\t1\n}";
const PARSE_ERROR: &str = "{\n\t\"jsonrpc\":\t\"2.0\",\n\t\"error\":\t{\n\t\t\"code\":\t-32700,\n\t\t\"message\":\t\"Parse Error\"\n\t},\n\t\"id\":\t1\n}";

/// Polls the daemon's log until it holds `needle` (the daemon's own account
/// of a timer having fired); panics after a few seconds.
fn wait_log(d: &Daemon, needle: &str) {
    let deadline = Instant::now() + WAIT;
    while !d.log_text().contains(needle) {
        assert!(
            Instant::now() < deadline,
            "log never said {needle:?}:\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// /tmp entries whose name starts with `prefix`.
fn tmp_entries(prefix: &str) -> Vec<String> {
    std::fs::read_dir("/tmp")
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

#[test]
fn mi_garbage_binary_and_huge_requests() {
    let d = Daemon::start("rob-mi", CFG);
    let binary: Vec<u8> = (0..=255u8).cycle().take(4 * 256).collect();
    let mut with_end = binary.clone();
    with_end.extend_from_slice(b"\n\n");
    let mut nul_arg = b":sip_trace:@R@\n".to_vec();
    nul_arg.extend_from_slice(b"\0on\n\n");
    let mut huge = vec![b'A'; 1 << 20];
    huge.extend_from_slice(b"\n\n");
    run_fifo_table(
        &d.fifo,
        vec![
            // Binary bytes: no line of them is a request; nothing is answered.
            FifoRow::silent(&with_end),
            FifoRow::reply(ST, ON),
            // An argument line starting with NUL is refused as a parse error
            // (Kamailio's parser would read past it); the next request is served
            // (docs/decisions.md §4).
            FifoRow::reply(&nul_arg, PARSE),
            FifoRow::reply(ST, ON),
            // Bytes above 0x7f are just bytes: not "on".
            FifoRow::reply(b":sip_trace:@R@\n\xff\xfeon\n\n", BAD),
            // A NUL in the first line ends it (C strings): ":sip" has no reply name.
            FifoRow::silent(b":sip\0_trace:@R@\n\n"),
            FifoRow::reply(ST, ON),
            // 1 MiB without a newline: read in 1023-byte first lines, all refused.
            FifoRow::silent(&huge),
            FifoRow::reply(ST, ON),
        ],
    );
    assert!(d.log_text().contains("longer than 1022 bytes"));
}

#[test]
fn mi_half_written_request_takes_the_next_bytes() {
    // The MI reader has no timeout (neither has Kamailio's fgets): an
    // unfinished request goes on with whatever is written next. Here the
    // next client's first line becomes an argument, so the first client gets
    // the answer (its first argument "off:sip_trace:..." is not "off") and the
    // second none; the request after that is served normally.
    let d = Daemon::start("rob-mi-half", CFG);
    let mut first = ReplyFifo::new("half");
    let second = ReplyFifo::new("half2");
    write_fifo(
        &d.fifo,
        format!(":sip_trace:{}\noff", first.name).as_bytes(),
    );
    write_fifo(
        &d.fifo,
        format!(":sip_trace:{}\n\n", second.name).as_bytes(),
    );
    assert_eq!(
        first.read_reply(WAIT).as_deref().map(escape_bytes),
        Some(escape_bytes(BAD.as_bytes()))
    );
    run_fifo_table(&d.fifo, vec![FifoRow::reply(ST, ON)]);
    assert!(!second.was_opened());
}

#[test]
fn rpc_garbage_binary_huge_and_half_written() {
    let d = Daemon::start("rob-rpc", CFG);
    // Binary bytes with no braces or quotes in them: skipped.
    let junk: Vec<u8> = (0..=255u8)
        .filter(|b| !b"{}\"'".contains(b))
        .cycle()
        .take(3000)
        .collect();
    let mut junk_then_request = junk.clone();
    junk_then_request.extend_from_slice(check("@R@").as_bytes());
    // A document over 8 KiB: dropped at 8191 bytes; the rest, up to the next
    // '{', is skipped, so its reply name is never used.
    let huge = format!(
        "{{\"jsonrpc\": \"2.0\", \"method\": \"siptrace.status\", \"params\": [\"off{}\"], \"reply_name\": \"@R@\", \"id\": 1}}",
        "x".repeat(10_000)
    );
    // Nesting deep enough to hurt a recursive parser, within 8 KiB.
    let deep = format!(
        "{{\"jsonrpc\": \"2.0\", \"method\": \"siptrace.status\", \"params\": [{}\"check\"{}], \"reply_name\": \"@R@\", \"id\": 1}}",
        "[".repeat(3500),
        "]".repeat(3500)
    );
    let mut nul = check("@R@").into_bytes();
    let at = nul.windows(5).position(|w| w == b"check").unwrap();
    nul.insert(at, 0);
    run_fifo_table(
        &d.rpc_fifo,
        vec![
            FifoRow::reply(&junk_then_request, ENABLED),
            FifoRow::reply(format!("}}]] ,\n{}", check("@R@")), ENABLED),
            FifoRow::silent(&huge),
            FifoRow::reply(check("@R@"), ENABLED),
            // Nesting deeper than the parser's bound (512 levels) is refused as
            // invalid JSON instead of exhausting the stack.
            FifoRow::reply(&deep, PARSE_ERROR),
            // A raw NUL inside a string is not JSON.
            FifoRow::reply(&nul, PARSE_ERROR),
            // Invalid UTF-8 inside a string: taken as bytes, "\xff" is no keyword.
            FifoRow::reply(
                b"{\"jsonrpc\": \"2.0\", \"method\": \"siptrace.status\", \"params\": [\"\xffon\"], \"reply_name\": \"@R@\", \"id\": 1}",
                "{\n\t\"jsonrpc\":\t\"2.0\",\n\t\"error\":\t{\n\t\t\"code\":\t500,\n\t\t\"message\":\t\"Bad parameter (on, off or check)\"\n\t},\n\t\"id\":\t1\n}",
            ),
            FifoRow::reply(check("@R@"), ENABLED),
        ],
    );
    assert!(d.log_text().contains("too large"), "{}", d.log_text());

    // Half a document: held until 500 ms pass without a byte, then dropped;
    // reading resumes at the next '{'.
    let half = ReplyFifo::new("rpchalf");
    write_fifo(
        &d.rpc_fifo,
        format!(
            "{{\"jsonrpc\": \"2.0\", \"method\": \"siptrace.status\", \"params\": [\"off\"], \"reply_name\": \"{}\"",
            half.name
        )
        .as_bytes(),
    );
    wait_log(&d, "dropped after 500 ms of silence");
    run_fifo_table(&d.rpc_fifo, vec![FifoRow::reply(check("@R@"), ENABLED)]);
    assert!(!half.was_opened());
}

/// The reply-FIFO checks of docs/kamailio.md §1.3 (the same for JSON-RPC, §6.3),
/// for one protocol: `req(name)` builds a request answering to /tmp/<name>,
/// `sentinel` a normal request and its reply.
fn reply_fifo_checks(server: &Path, req: &dyn Fn(&str) -> String, ok_reply: &str) {
    let sentinel = || FifoRow::reply(req("@R@"), ok_reply);
    let tag = unique_name("chk");
    // 1. A regular file: never written to.
    let regular = Path::new("/tmp").join(format!("{tag}_reg"));
    std::fs::write(&regular, b"precious").unwrap();
    // 2. A symlink to a FIFO: the FIFO is never opened.
    let target = ReplyFifo::new("chktarget");
    let link = Path::new("/tmp").join(format!("{tag}_lnk"));
    std::os::unix::fs::symlink(&target.path, &link).unwrap();
    // 3. A FIFO with a second hard link: refused.
    let linked = ReplyFifo::new("chkhard");
    let hard = Path::new("/tmp").join(format!("{tag}_hard"));
    std::fs::hard_link(&linked.path, &hard).unwrap();
    // 4. Nothing at all: nothing is created.
    let missing = format!("{tag}_missing");
    for name in [
        format!("{tag}_reg"),
        format!("{tag}_lnk"),
        format!("{tag}_hard"),
        missing.clone(),
    ] {
        write_fifo(server, req(&name).as_bytes());
    }
    run_fifo_table(server, vec![sentinel()]);
    assert_eq!(std::fs::read(&regular).unwrap(), b"precious");
    assert!(!target.was_opened(), "followed a symlink");
    assert!(!linked.was_opened(), "opened a hard-linked FIFO");
    assert!(
        !Path::new("/tmp").join(&missing).exists(),
        "created a reply file"
    );
    assert_eq!(tmp_entries(&tag).len(), 3, "{:?}", tmp_entries(&tag));
    for p in [&regular, &link, &hard] {
        std::fs::remove_file(p).unwrap();
    }
}

#[test]
fn reply_fifos_must_be_plain_fifos() {
    let d = Daemon::start("rob-checks", CFG);
    reply_fifo_checks(&d.fifo, &|n| format!(":sip_trace:{n}\n\n"), ON);
    reply_fifo_checks(&d.rpc_fifo, &|n| check(n), ENABLED);
    // A path outside reply_dir is refused before anything is opened or made.
    let dir = TempDir::new("rob-outside");
    let outside = dir.join("evil");
    run_fifo_table(
        &d.fifo,
        vec![
            FifoRow::silent(format!(":sip_trace:{}\n\n", outside.display())),
            FifoRow::silent(":sip_trace:..\n\n"),
            FifoRow::reply(ST, ON),
        ],
    );
    run_fifo_table(
        &d.rpc_fifo,
        vec![
            FifoRow::silent(check(&outside.display().to_string())),
            FifoRow::silent(check("..")),
            FifoRow::reply(check("@R@"), ENABLED),
        ],
    );
    assert!(!outside.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

fn ino(p: &Path) -> Option<(u64, u64, bool)> {
    use std::os::unix::fs::FileTypeExt;
    let m = std::fs::symlink_metadata(p).ok()?;
    Some((m.dev(), m.ino(), m.file_type().is_fifo()))
}

/// Waits (the daemon checks its FIFOs once a second) until `p` is a FIFO
/// other than `old`.
fn wait_recreated(d: &Daemon, p: &Path, old: (u64, u64, bool)) -> (u64, u64, bool) {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(now) = ino(p) {
            if now.2 && (now.0, now.1) != (old.0, old.1) {
                return now;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} not recreated:\n{}",
            p.display(),
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn fifos_are_recreated_when_deleted_or_replaced() {
    let cfg = CFG.replace(
        "modparam(\"siptrace\", \"trace_on\", 1)",
        "modparam(\"siptrace\", \"trace_on\", 1)\n\
         modparam(\"mi_fifo\", \"fifo_mode\", 0640)\n\
         modparam(\"jsonrpcs\", \"fifo_mode\", 0604)",
    );
    let d = Daemon::start("rob-recreate", &cfg);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&d.fifo), 0o640);
    assert_eq!(mode(&d.rpc_fifo), 0o604);

    // The JSON-RPC FIFO alone, deleted.
    let old = ino(&d.rpc_fifo).unwrap();
    std::fs::remove_file(&d.rpc_fifo).unwrap();
    wait_recreated(&d, &d.rpc_fifo, old);
    run_fifo_table(&d.rpc_fifo, vec![FifoRow::reply(check("@R@"), ENABLED)]);
    run_fifo_table(&d.fifo, vec![FifoRow::reply(ST, ON)]);

    // The MI FIFO alone, replaced by a regular file.
    let old = ino(&d.fifo).unwrap();
    std::fs::remove_file(&d.fifo).unwrap();
    std::fs::write(&d.fifo, b"not a fifo").unwrap();
    wait_recreated(&d, &d.fifo, old);
    run_fifo_table(&d.fifo, vec![FifoRow::reply(ST, ON)]);
    run_fifo_table(&d.rpc_fifo, vec![FifoRow::reply(check("@R@"), ENABLED)]);

    // Both, replaced by other FIFOs (renamed over the old ones).
    // Ours are FIFOs too, but not the daemon's. Their inode numbers may be
    // reused by the daemon's new ones (ours are freed first), so the new ones
    // are told apart by their mode.
    for p in [&d.fifo, &d.rpc_fifo] {
        let tmp = p.with_extension("new");
        nix::unistd::mkfifo(&tmp, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::rename(&tmp, p).unwrap();
    }
    for (p, m) in [(&d.fifo, 0o640), (&d.rpc_fifo, 0o604)] {
        let deadline = Instant::now() + WAIT;
        while std::fs::metadata(p)
            .map(|x| x.permissions().mode() & 0o7777)
            .ok()
            != Some(m)
        {
            assert!(
                Instant::now() < deadline,
                "{} not recreated:\n{}",
                p.display(),
                d.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    run_fifo_table(&d.fifo, vec![FifoRow::reply(":sip_trace:@R@\noff\n\n", OK)]);
    run_fifo_table(
        &d.rpc_fifo,
        vec![FifoRow::reply(
            check("@R@"),
            ENABLED.replace("Enabled", "Disabled"),
        )],
    );
    // fifo_mode holds for the new FIFOs too.
    assert_eq!(mode(&d.fifo), 0o640);
    assert_eq!(mode(&d.rpc_fifo), 0o604);
    assert!(
        d.log_text()
            .contains("was removed or replaced: recreating it")
    );
}

#[test]
fn fifo_user_and_group_are_applied() {
    let cfg = CFG.replace(
        "modparam(\"siptrace\", \"trace_on\", 1)",
        "modparam(\"siptrace\", \"trace_on\", 1)\n\
         modparam(\"mi_fifo\", \"fifo_user\", \"nobody\")\n\
         modparam(\"mi_fifo\", \"fifo_group\", \"nogroup\")\n\
         modparam(\"jsonrpcs\", \"fifo_group\", \"nogroup\")",
    );
    let nobody = nix::unistd::User::from_name("nobody")
        .unwrap()
        .expect("user nobody");
    let nogroup = nix::unistd::Group::from_name("nogroup")
        .unwrap()
        .expect("group nogroup");
    if !nix::unistd::geteuid().is_root() {
        // Without root, chown to another user cannot work: a clear start-up error.
        let dir = TempDir::new("rob-owner");
        let cfg_path = dir.join("siptraced.cfg");
        let text = expand(
            &cfg,
            free_udp_port(),
            &dir.join("t.db"),
            &dir.join("mi.fifo"),
            &dir.join("rpc.fifo"),
            dir.path(),
        );
        std::fs::write(&cfg_path, text).unwrap();
        let out = std::process::Command::new(BIN)
            .args(["-D", "-E", "-f"])
            .arg(&cfg_path)
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("need root"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    let d = Daemon::start("rob-owner", &cfg);
    let meta = |p: &Path| std::fs::metadata(p).unwrap();
    assert_eq!(
        (meta(&d.fifo).uid(), meta(&d.fifo).gid()),
        (nobody.uid.as_raw(), nogroup.gid.as_raw())
    );
    // jsonrpcs: group only; the owner stays the user the daemon runs as.
    assert_eq!(
        (meta(&d.rpc_fifo).uid(), meta(&d.rpc_fifo).gid()),
        (nix::unistd::geteuid().as_raw(), nogroup.gid.as_raw())
    );
    // Kept when the FIFO is recreated.
    let old = ino(&d.fifo).unwrap();
    std::fs::remove_file(&d.fifo).unwrap();
    wait_recreated(&d, &d.fifo, old);
    assert_eq!(
        (meta(&d.fifo).uid(), meta(&d.fifo).gid()),
        (nobody.uid.as_raw(), nogroup.gid.as_raw())
    );
    run_fifo_table(&d.fifo, vec![FifoRow::reply(ST, ON)]);
}

#[test]
fn a_flood_on_a_control_fifo_does_not_stop_sip() {
    // 32 MiB of bytes outside any JSON document, written as fast as the pipe
    // takes them, while OPTIONS go through one after the other. The FIFO is
    // read at most 64 KiB per reactor turn, so each turn also serves SIP.
    let d = Daemon::start("rob-flood", CFG);
    let done = std::sync::atomic::AtomicBool::new(false);
    let answered = std::thread::scope(|s| {
        let flood = s.spawn(|| {
            let chunk = vec![b' '; 1 << 20];
            let mut w = std::fs::OpenOptions::new()
                .write(true)
                .open(&d.rpc_fifo)
                .unwrap();
            for _ in 0..32 {
                std::io::Write::write_all(&mut w, &chunk).unwrap();
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        let peer = Peer::new();
        let mut answered = 0;
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            let reply = send_options(&peer, d.addr(), &format!("flood-{answered}"));
            assert!(first_line(&reply).starts_with("SIP/2.0 200"));
            answered += 1;
        }
        flood.join().unwrap();
        answered
    });
    eprintln!("{answered} OPTIONS answered during a 32 MiB flood of the JSON-RPC FIFO");
    assert!(answered > 0);
    run_fifo_table(&d.rpc_fifo, vec![FifoRow::reply(check("@R@"), ENABLED)]);
    run_fifo_table(&d.fifo, vec![FifoRow::reply(ST, ON)]);
}

/// Starts siptraced on `cfg` and expects it to refuse, saying `why`.
fn refuses_to_start(cfg: &str, why: &str) {
    let dir = TempDir::new("rob-start");
    let cfg_path = dir.join("siptraced.cfg");
    let text = expand(
        cfg,
        free_udp_port(),
        &dir.join("t.db"),
        &dir.join("mi.fifo"),
        &dir.join("rpc.fifo"),
        dir.path(),
    );
    std::fs::write(&cfg_path, text).unwrap();
    let (_, out) = run_in_group(
        std::process::Command::new(BIN)
            .args(["-D", "-E", "-f"])
            .arg(&cfg_path),
        WAIT,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started anyway:\n{err}");
    assert!(err.contains(why), "{err}");
}

#[test]
fn control_settings_that_cannot_work_stop_the_start() {
    // As Kamailio's mi_fifo ("No MI fifo configured") and its reply_dir check.
    refuses_to_start(
        &CFG.replace("modparam(\"mi_fifo\", \"fifo_name\", \"@FIFO@\")", ""),
        "mi_fifo is loaded but has no fifo_name",
    );
    refuses_to_start(
        &CFG.replace(
            "modparam(\"mi_fifo\", \"fifo_name\", \"@FIFO@\")",
            "modparam(\"mi_fifo\", \"fifo_name\", \"@FIFO@\")\nmodparam(\"mi_fifo\", \"reply_dir\", \"@DIR@/none/\")",
        ),
        "mi_fifo reply_dir",
    );
    refuses_to_start(
        &CFG.replace(
            "modparam(\"mi_fifo\", \"fifo_name\", \"@FIFO@\")",
            "modparam(\"mi_fifo\", \"fifo_name\", \"@FIFO@\")\nmodparam(\"jsonrpcs\", \"fifo_reply_dir\", \"@DIR@/none/\")",
        ),
        "is not a directory",
    );
}

#[test]
fn reply_fifo_opened_late_or_never() {
    // The server tries to open a reply FIFO 5 times, 80 ms apart (docs/decisions.md
    // §4): a client whose reader comes 40 ms late (after the first try, when
    // the daemon is quick) still gets its answer...
    let d = Daemon::start("rob-late", CFG);
    for (server, req, want) in [
        (&d.fifo, ":sip_trace:{}\n\n".to_string(), ON),
        (&d.rpc_fifo, check("{}"), ENABLED),
    ] {
        let name = unique_name("late");
        let path = Path::new("/tmp").join(&name);
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o666)).unwrap();
        write_fifo(server, req.replace("{}", &name).as_bytes());
        std::thread::sleep(Duration::from_millis(40));
        let mut r = ReplyFifo::named(Path::new("/tmp"), &name);
        assert_eq!(
            r.read_reply(WAIT).as_deref().map(escape_bytes),
            Some(escape_bytes(want.as_bytes()))
        );
    }
    // ...one that never opens it gets none. An MI request is then not run
    // (the reply FIFO is opened first); a JSON-RPC one has run already.
    let gone = Path::new("/tmp").join(unique_name("never"));
    nix::unistd::mkfifo(&gone, nix::sys::stat::Mode::from_bits_truncate(0o666)).unwrap();
    let name = gone.file_name().unwrap().to_str().unwrap();
    write_fifo(&d.fifo, format!(":sip_trace:{name}\noff\n\n").as_bytes());
    run_fifo_table(&d.fifo, vec![FifoRow::reply(ST, ON)]);
    write_fifo(&d.rpc_fifo, check(name).replace("check", "off").as_bytes());
    run_fifo_table(
        &d.rpc_fifo,
        vec![FifoRow::reply(
            check("@R@"),
            ENABLED.replace("Enabled", "Disabled"),
        )],
    );
    std::fs::remove_file(&gone).unwrap();
    wait_log(&d, "no reader opened it after 5 tries 80 ms apart");
}

#[test]
fn large_replies_and_clients_that_stop_reading() {
    let d = Daemon::start("rob-large", CFG);
    let stats: String = [
        "copies_dropped",
        "copies_sent",
        "msgs_escaped",
        "msgs_masked",
        "rows_dropped",
        "rows_replayed",
        "rows_spooled",
        "rows_written",
        "spool_bytes",
        "traced_replies",
        "traced_requests",
    ]
    .iter()
    .map(|n| format!("siptrace:{n} = 0\n"))
    .collect();
    // 2000 x "all": a reply of about 420 KB, six times what a pipe holds, so
    // it is written as the client reads.
    let mi_req = format!(":get_statistics:@R@\n{}\n", "all\n".repeat(2000));
    let mi_reply = format!("200 OK\n{}\n", stats.repeat(2000));
    let rpc_req = format!(
        "{{\"jsonrpc\": \"2.0\", \"method\": \"stats.get_statistics\", \"params\": [{}\"all\"], \"reply_name\": \"@R@\", \"id\": 1}}",
        "\"all\", ".repeat(1000)
    );
    let one: Vec<String> = stats.lines().map(|l| format!("\"{l}\"")).collect();
    let rpc_reply = format!(
        "{{\n\t\"jsonrpc\":\t\"2.0\",\n\t\"result\":\t[{}],\n\t\"id\":\t1\n}}",
        vec![one.join(", "); 1001].join(", ")
    );
    assert!(mi_reply.len() > 400_000 && rpc_reply.len() > 200_000);
    run_fifo_table(&d.fifo, vec![FifoRow::reply(&mi_req, &mi_reply)]);
    run_fifo_table(&d.rpc_fifo, vec![FifoRow::reply(&rpc_req, &rpc_reply)]);

    // A client that opens its reply FIFO and reads nothing: the daemon serves
    // others meanwhile, and gives up on it after a while.
    let stalled = ReplyFifo::new("stall");
    let stalled_rpc = ReplyFifo::new("stall");
    write_fifo(&d.fifo, mi_req.replace("@R@", &stalled.name).as_bytes());
    write_fifo(
        &d.rpc_fifo,
        rpc_req.replace("@R@", &stalled_rpc.name).as_bytes(),
    );
    run_fifo_table(&d.fifo, vec![FifoRow::reply(ST, ON)]);
    run_fifo_table(&d.rpc_fifo, vec![FifoRow::reply(check("@R@"), ENABLED)]);
    let peer = Peer::new();
    assert!(first_line(&send_options(&peer, d.addr(), "stall")).starts_with("SIP/2.0 200"));
    wait_log(&d, "the reader stopped reading");
    drop((stalled, stalled_rpc));
}
