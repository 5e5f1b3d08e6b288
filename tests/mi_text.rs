//! The old MI FIFO protocol through the real daemon, byte for byte
//! (docs/kamailio.md §1–§3): each table row is the exact bytes written into the
//! daemon's MI FIFO and the exact bytes read back from the reply FIFO under
//! /tmp — or "silent": that reply FIFO is never opened (see
//! `common::run_fifo_table` for how that is known without sleeping).
//!
//! A table runs in order on one daemon: Kamailio's reader keeps state between
//! requests (a stray blank line swallows the next request),
//! and the rows show it.

mod common;
use common::*;
use std::path::Path;
use std::time::Duration;

const CFG: &str = r#"#!KAMAILIO
debug=2
listen=udp:127.0.0.1:@PORT@
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "mi_fifo.so"
loadmodule "siptrace.so"
modparam("mi_fifo", "fifo_name", "@FIFO@")
modparam("siptrace", "db_url", "sqlite://@DB@")
modparam("siptrace", "trace_on", 1)
request_route {
    sip_trace();
    sl_send_reply("200", "OK");
}
"#;

/// How long an answer may take to come back (it takes a millisecond).
const WAIT: Duration = Duration::from_secs(5);

fn reply(req: impl AsRef<[u8]>, want: impl AsRef<[u8]>) -> FifoRow {
    FifoRow::reply(req, want)
}

fn silent(req: impl AsRef<[u8]>) -> FifoRow {
    FifoRow::silent(req)
}

fn matches(req: &str, pattern: &str) -> FifoRow {
    FifoRow::matches(req, pattern)
}

fn run(server: &Path, rows: Vec<FifoRow>) {
    run_fifo_table(server, rows)
}

const ST: &str = ":sip_trace:@R@\n\n";
const ON: &str = "200 OK\non\n\n";
const OFF: &str = "200 OK\noff\n\n";
const OK: &str = "200 OK\n\n";
const BAD: &str = "400 Bad parameter\n\n";
const PARSE: &str = "400 parse error in command 'sip_trace'\n";

fn stats_all(rows_written: u64) -> String {
    format!(
        "200 OK\nsiptrace:copies_dropped = 0\nsiptrace:copies_sent = 0\nsiptrace:msgs_escaped = 0\nsiptrace:msgs_masked = 0\n\
         siptrace:rows_dropped = 0\nsiptrace:rows_replayed = 0\nsiptrace:rows_spooled = 0\n\
         siptrace:rows_written = {rows_written}\nsiptrace:spool_bytes = 0\n\
         siptrace:traced_replies = 0\nsiptrace:traced_requests = 0\n\n"
    )
}

#[test]
fn sip_trace_command() {
    let d = Daemon::start("mi-st", CFG);
    run(
        &d.fifo,
        vec![
            // Status, then on/off in any case; exact length only.
            reply(ST, ON),
            reply(":sip_trace:@R@\noff\n\n", OK),
            reply(ST, OFF),
            reply(":sip_trace:@R@\nON\n\n", OK),
            reply(ST, ON),
            reply(":sip_trace:@R@\nOfF\n\n", OK),
            reply(ST, OFF),
            reply(":sip_trace:@R@\nonx\n\n", BAD),
            reply(":sip_trace:@R@\n1\n\n", BAD),
            reply(":sip_trace:@R@\nyes\n\n", BAD),
            reply(ST, OFF),
            // Extra arguments are ignored: the first one counts.
            reply(":sip_trace:@R@\non\nfoo\n\n", OK),
            reply(ST, ON),
            reply(":sip_trace:@R@\noff\non\n\n", OK),
            reply(ST, OFF),
            reply(":sip_trace:@R@\nbogus\non\n\n", BAD),
            reply(ST, OFF),
            // name::value: the name is ignored; a name with no value is bad.
            reply(":sip_trace:@R@\nmode::on\n\n", OK),
            reply(ST, ON),
            reply(":sip_trace:@R@\nmode::\n\n", BAD),
            reply(":sip_trace:@R@\n  mode :: \t off \t\n\n", OK),
            reply(ST, OFF),
            reply(":sip_trace:@R@\n::on\n\n", OK),
            reply(ST, ON),
            // Leading and trailing white space around a value is not part of it.
            reply(":sip_trace:@R@\n \t off  \n\n", OK),
            reply(ST, OFF),
            // Lines of white space only are skipped; CR LF first lines are trimmed.
            reply(":sip_trace:@R@\n   \n\t\n\r\non\n\n", OK),
            reply(":sip_trace:@R@ \t\r\n\n", ON),
        ],
    );
}

#[test]
fn quoted_values_and_continuation_lines() {
    let d = Daemon::start("mi-quote", CFG);
    run(
        &d.fifo,
        vec![
            reply(":sip_trace:@R@\n\"off\"\n\n", OK),
            reply(ST, OFF),
            reply(":sip_trace:@R@\nmode::\"on\"  \n\n", OK),
            reply(ST, ON),
            // \" is the one escape: the value is o"n.
            reply(":sip_trace:@R@\n\"o\\\"n\"\n\n", BAD),
            // Quoted values keep their spaces: " on" is not on.
            reply(":sip_trace:@R@\n\" off\"\n\n", BAD),
            reply(ST, ON),
            // A quoted value continues on the next line, newline included.
            reply(":sip_trace:@R@\n\"of\nf\"\n\n", BAD),
            reply(
                ":get_statistics:@R@\n\"rows_written\"\n\n",
                "200 OK\nsiptrace:rows_written = 0\n\n",
            ),
            reply(
                ":get_statistics:@R@\n\"rows_\nwritten\"\n\n",
                "404 Statistics Not Found\n\n",
            ),
            reply(":get_statistics:@R@\nall\n\n", stats_all(0)),
            reply(
                ":get_statistics:@R@\nrows_written\nrows_dropped\n\n",
                "200 OK\nsiptrace:rows_written = 0\nsiptrace:rows_dropped = 0\n\n",
            ),
            reply(":get_statistics:@R@\nsiptrace:\n\n", stats_all(0)),
            reply(
                ":get_statistics:@R@\nusrloc:\n\n",
                "404 Statistics Not Found\n\n",
            ),
            reply(
                ":get_statistics:@R@\n\n",
                "400 Too few or too many arguments\n\n",
            ),
            reply(ST, ON),
        ],
    );
}

#[test]
fn parse_errors_leave_the_next_request_alone() {
    // Kamailio's mi_fifo answers 400 and then runs a second consume that reads the
    // next request up to its empty line, so that client never gets a reply.
    // siptraced consumes the bad request up to its own blank line and serves the
    // next one (docs/decisions.md §4).
    let d = Daemon::start("mi-parse", CFG);
    run(
        &d.fifo,
        vec![
            reply(":sip_trace:@R@\n\"on\" x\n\n", PARSE),
            reply(":sip_trace:@R@\noff\n\n", OK),
            reply(":sip_trace:@R@\no\"n\n\n", PARSE),
            reply(ST, OFF),
            reply(":sip_trace:@R@\nmode\"::on\n\n", PARSE),
            reply(ST, OFF),
            // An empty line inside an open quote ends the parse and the request.
            reply(":sip_trace:@R@\n\"on\n\n", PARSE),
            reply(ST, OFF),
            // Quirk kept: an escaped quote right after the opening one is not seen,
            // so the value "" is followed by junk.
            reply(":sip_trace:@R@\n\"\\\"on\"\n\n", PARSE),
            reply(ST, OFF),
            reply(
                ":debug:@R@\n\"3\" 4\n\n",
                "400 parse error in command 'debug'\n",
            ),
            reply(":sip_trace:@R@\non\n\n", OK),
            // A bad request and a good one in the same write(2): both answered.
            FifoRow::reply(
                ":sip_trace:@R@\n\"off\" x\nmore\n\n:sip_trace:@R2@\noff\n\n",
                PARSE,
            )
            .and(FifoWant::Reply(OK.into())),
            reply(ST, OFF),
        ],
    );
}

#[test]
fn core_commands() {
    let d = Daemon::start("mi-core", CFG);
    let pid = d.pid();
    let cwd = std::env::current_dir().unwrap();
    let mut flags = Vec::new();
    for (on, name) in [
        (cfg!(feature = "sqlite"), "SQLITE"),
        (cfg!(feature = "postgres"), "POSTGRES"),
        (cfg!(feature = "mysql"), "MYSQL"),
        (cfg!(feature = "dbtext"), "DBTEXT"),
    ] {
        if on {
            flags.push(name);
        }
    }
    let version = env!("CARGO_PKG_VERSION");
    let arch = std::env::consts::ARCH;
    let ctime =
        r"[A-Z][a-z]{2} [A-Z][a-z]{2} [ 1-3][0-9] [0-2][0-9]:[0-5][0-9]:[0-6][0-9] [0-9]{4}";
    let ps = format!("200 OK\nProcess::  ID=0 PID={pid} Type=main process - attendant\n\n");
    let zero_stats = "200 OK\nrows_written:: 0\nrows_spooled:: 0\nrows_replayed:: 0\nrows_dropped:: 0\n\
                      spool_bytes:: 0\nmsgs_escaped:: 0\ncopies_sent:: 0\ncopies_dropped:: 0\ndb_state:: up\nmsgs_masked:: 0\nrows_purged:: 0\nlast_purge_ms:: 0\n\n";
    run(
        &d.fifo,
        vec![
            reply(
                ":which:@R@\n\n",
                "200 OK\nuptime\nversion\npwd\narg\nwhich\nkill\nps\ndebug\nget_statistics\n\
                 sip_trace\nsip_trace_stats\nsip_trace_purge\nsip_trace_filter\ntm_stats\ncore_limits\n\n",
            ),
            reply(":ps:@R@\n\n", &ps),
            // No-input commands read and drop their argument lines.
            reply(":ps:@R@\nextra\n\"args\n\n", &ps),
            matches(
                ":uptime:@R@\n\n",
                &format!(
                    r"\A200 OK\nNow:: {ctime}\nUp since:: {ctime}\nUp time:: [0-9]+ \[sec\]\n\n\z"
                ),
            ),
            reply(
                ":version:@R@\n\n",
                format!(
                    "200 OK\nServer:: siptraced ({version} ({arch}/linux))\n\
                     Build:: siptraced {version} (rust)\n\nFlags:: {}\nSVN:: unknown\n\n",
                    flags.join(", ")
                ),
            ),
            reply(
                ":pwd:@R@\n\n",
                format!("200 OK\nWD:: {}\n\n", cwd.display()),
            ),
            reply(
                ":arg:@R@\n\n",
                format!("200 OK\n{BIN}\n-D\n-E\n-f\n{}\n\n", d.cfg.display()),
            ),
            reply(":debug:@R@\n\n", "200 OK\nDEBUG:: 2\n\n"),
            reply(":debug:@R@\n4\n\n", "200 OK\nDEBUG:: 4\n\n"),
            reply(":debug:@R@\n\n", "200 OK\nDEBUG:: 4\n\n"),
            reply(":debug:@R@\n-1\n\n", "200 OK\nDEBUG:: -1\n\n"),
            reply(":debug:@R@\nfour\n\n", BAD),
            reply(":debug:@R@\n4x\n\n", BAD),
            reply(":debug:@R@\nlevel::\n\n", BAD),
            reply(":debug:@R@\nlevel::2\n\n", "200 OK\nDEBUG:: 2\n\n"),
            reply(":sip_trace_stats:@R@\n\n", zero_stats),
            reply(":tm_stats:@R@\n\n", "200 OK\ncurrent:: 0\ntotal:: 0\n\n"),
            // Unknown commands: one line, no empty line after it; the arguments
            // are consumed, so the next request is served.
            reply(":nosuch:@R@\n\n", "500 command 'nosuch' not available\n"),
            reply(
                ":nosuch:@R@\nfoo\nbar::baz\n\"q\n\n",
                "500 command 'nosuch' not available\n",
            ),
            reply(
                ":SIP_TRACE:@R@\n\n",
                "500 command 'SIP_TRACE' not available\n",
            ),
            // JSON-RPC method names are not MI commands.
            reply(":core.ps:@R@\n\n", "500 command 'core.ps' not available\n"),
        ],
    );
}

#[test]
fn first_line_and_reply_name_rules() {
    let d = Daemon::start("mi-first", CFG);
    run(
        &d.fifo,
        vec![
            // Malformed first lines: consumed up to the empty line, no reply.
            silent("sip_trace:@R@\n\n"),
            silent(":sip_trace\n\n"),
            silent("::@R@\n\n"),
            silent(":sip_trace:\n\n"),
            silent(":sip_trace:\non\n\n"),
            silent(":s\n\n"),
            reply(ST, ON),
            // The reply name must not hold '.', '/' or '\' (it is always relative
            // to reply_dir, /tmp/).
            silent(":sip_trace:@R@.x\n\n").fifo("@R@.x"),
            silent(":sip_trace:/tmp/@R@\n\n"),
            silent(":sip_trace:@R@\\x\n\n").fifo("@R@\\x"),
            silent(":sip_trace:..\n\n"),
            // reply_dir + name + NUL must fit in 128 bytes: 5 + 122 + 1 does.
            reply(ST, ON).pad(122),
            silent(ST).pad(123),
            reply(":sip_trace:@R@\noff\n\n", OK).pad(122),
            // A stray empty line swallows the next request (the consume after an
            // empty first line reads up to the next empty line).
            silent("\n"),
            silent(":sip_trace:@R@\non\n\n"),
            reply(ST, OFF),
            // A first line of 1022 characters fits the 1024-byte buffer...
            reply(
                format!(":{}:@R@\n\n", "c".repeat(1022 - 2 - 40)),
                format!("500 command '{}' not available\n", "c".repeat(980)),
            )
            .pad(40),
            // ...one more does not: rejected, and its own empty line is then read
            // as a first line, whose consume swallows the next request.
            silent(format!(":{}:@R@\n\n", "c".repeat(981))).pad(40),
            silent(ST),
            reply(ST, OFF),
        ],
    );
}

#[test]
fn argument_buffer_limits() {
    // All argument lines of a request share one 8192-byte buffer; each line
    // costs its length minus the newline, which the next read overwrites.
    let d = Daemon::start("mi-args", CFG);
    let fits = format!(":sip_trace:@R@\noff{}\n\n", " ".repeat(8190 - 3));
    let too_long = format!(":sip_trace:@R@\noff{}\n\n", " ".repeat(8191 - 3));
    let two_fit = format!(
        ":sip_trace:@R@\non{}\n{}\n\n",
        " ".repeat(4000 - 2),
        "b".repeat(4190)
    );
    let two_over = format!(
        ":sip_trace:@R@\noff{}\n{}\n\n",
        " ".repeat(4000 - 3),
        "b".repeat(4191)
    );
    run(
        &d.fifo,
        vec![
            // 8191 bytes with the newline: a request far above PIPE_BUF, read
            // across several reads of the FIFO.
            reply(&fits, OK),
            reply(ST, OFF),
            // 8192: the line does not fit, parse error. The rest of the line and
            // the empty line are consumed with it: the next request is served.
            reply(&too_long, PARSE),
            reply(ST, OFF),
            reply(&two_fit, OK),
            reply(ST, ON),
            reply(&two_over, PARSE),
            reply(ST, ON),
        ],
    );
}

#[test]
fn crlf_requests_never_end_until_a_bare_newline() {
    // "\r\n" is not the end-of-arguments line (only "\n" is) and is skipped as
    // white space: a CRLF client's request stays open until a lone "\n".
    let d = Daemon::start("mi-crlf", CFG);
    let mut r = ReplyFifo::new("crlf");
    write_fifo(
        &d.fifo,
        format!(":sip_trace:{}\r\noff\r\n\r\n", r.name).as_bytes(),
    );
    // The reply FIFO is opened as soon as the first line is read...
    let probe = ReplyFifo::new("crlf-probe");
    // ...and nothing else is read or answered while the request is open: this
    // request's lines become arguments of the first one.
    write_fifo(&d.fifo, format!(":sip_trace:{}\r\n", probe.name).as_bytes());
    write_fifo(&d.fifo, b"\n");
    assert_eq!(
        r.read_reply(WAIT).as_deref().map(escape_bytes),
        Some(escape_bytes(OK.as_bytes()))
    );
    assert!(!probe.was_opened());
    assert_eq!(
        exchange(&d.fifo, ST),
        OFF,
        "the first argument (off) was applied"
    );
}

/// One request, its reply as text.
fn exchange(server: &Path, req: &str) -> String {
    let mut r = ReplyFifo::new("x");
    write_fifo(server, req.replace("@R@", &r.name).as_bytes());
    String::from_utf8_lossy(&r.read_reply(WAIT).expect("a reply")).into_owned()
}

#[test]
fn reply_indent_and_reply_dir_params() {
    // reply_dir is concatenated with the name as a string; reply_indent is
    // only visible in nested replies, which no command here builds, but it
    // must be accepted.
    let dir = TempDir::new("mi-rdir");
    let cfg = CFG.replace(
        "modparam(\"siptrace\", \"trace_on\", 1)",
        &format!(
            "modparam(\"siptrace\", \"trace_on\", 1)\nmodparam(\"mi_fifo\", \"reply_dir\", \"{}/\")\nmodparam(\"mi_fifo\", \"reply_indent\", \"  \")",
            dir.path().display()
        ),
    );
    let d = Daemon::start("mi-rdir", &cfg);
    let mut r = ReplyFifo::named(dir.path(), "client");
    write_fifo(&d.fifo, b":sip_trace:client\n\n");
    assert_eq!(r.read_reply(WAIT).as_deref(), Some(ON.as_bytes()));
    // A name that exists under /tmp but not under reply_dir: not answered,
    // and nothing is created in reply_dir (reply FIFOs are opened, never made).
    let tmp = ReplyFifo::new("rdir");
    let mut r = ReplyFifo::named(dir.path(), "client2");
    write_fifo(&d.fifo, format!(":sip_trace:{}\n\n", tmp.name).as_bytes());
    write_fifo(&d.fifo, b":sip_trace:client2\n\n");
    assert_eq!(r.read_reply(WAIT).as_deref(), Some(ON.as_bytes()));
    assert!(!tmp.was_opened(), "replies go to reply_dir only");
    assert!(!dir.join(&tmp.name).exists());
}

#[test]
fn kill_stops_the_daemon() {
    let mut d = Daemon::start("mi-kill", CFG);
    let mut r = ReplyFifo::new("kill");
    write_fifo(&d.fifo, format!(":kill:{}\n\n", r.name).as_bytes());
    // Kamailio's kill returns no tree: the reply, if any, is the failure line.
    assert_eq!(
        r.read_reply(WAIT).as_deref().map(escape_bytes),
        Some(escape_bytes(b"500 command 'kill' failed\n"))
    );
    let deadline = std::time::Instant::now() + WAIT;
    while d.is_running() {
        assert!(
            std::time::Instant::now() < deadline,
            "still running after kill"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = d.child.take().unwrap().wait().unwrap();
    assert_eq!(status.code(), Some(0), "{}", d.log_text());
    assert!(!d.fifo.exists(), "the MI FIFO is removed on the way out");
}
