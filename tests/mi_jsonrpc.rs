//! JSON-RPC over FIFO through the real daemon, byte for byte: the ground-truth
//! vectors captured from Kamailio 5.6.3 (tests/data/jsonrpc-vectors, see its
//! index.md) replayed into siptraced's JSON-RPC FIFO, plus docs/decisions.md §4's
//! answers where Kamailio stays silent, and the core methods with our values.
//! Reply FIFOs live under /tmp; the vectors' reply names are swapped for
//! unique ones (a reply never contains its name).

mod common;
use common::*;
use std::path::{Path, PathBuf};

const CFG: &str = r#"#!KAMAILIO
listen=udp:127.0.0.1:@PORT@
loadmodule "sl.so"
loadmodule "tm.so"
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

fn vectors() -> PathBuf {
    repo_root().join("tests/data/jsonrpc-vectors")
}

/// A vector's request, its reply names made unique (`@R@`, `@R2@`).
fn request(name: &str) -> Vec<u8> {
    let path = vectors().join(format!("{name}.request"));
    let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let raw = replace_bytes(&raw, b"kamailio_receiver_4243", b"@R2@");
    replace_bytes(&raw, b"kamailio_receiver_4242", b"@R@")
}

fn reply_file(name: &str) -> Vec<u8> {
    let path = vectors().join(format!("{name}.reply"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The vector replayed, expecting Kamailio's reply bytes.
fn vector(name: &str) -> FifoRow {
    FifoRow::reply(request(name), reply_file(name))
}

fn rpc(method: &str, params: &str) -> String {
    format!(
        "{{\"jsonrpc\": \"2.0\", \"method\": \"{method}\"{params}, \"reply_name\": \"@R@\", \"id\": 7}}\n"
    )
}

fn set_trace(on: bool) -> FifoRow {
    let (arg, res) = if on {
        ("on", "Enabled")
    } else {
        ("off", "Disabled")
    };
    FifoRow::reply(
        rpc("siptrace.status", &format!(", \"params\": [\"{arg}\"]")),
        result_str(res, "7"),
    )
}

fn check_trace(on: bool) -> FifoRow {
    FifoRow::reply(
        rpc("siptrace.status", ", \"params\": [\"check\"]"),
        result_str(if on { "Enabled" } else { "Disabled" }, "7"),
    )
}

fn result_str(s: &str, id: &str) -> String {
    format!("{{\n\t\"jsonrpc\":\t\"2.0\",\n\t\"result\":\t\"{s}\",\n\t\"id\":\t{id}\n}}")
}

fn error(code: i32, msg: &str, id: &str) -> String {
    format!(
        "{{\n\t\"jsonrpc\":\t\"2.0\",\n\t\"error\":\t{{\n\t\t\"code\":\t{code},\n\t\t\"message\":\t\"{msg}\"\n\t}},\n\t\"id\":\t{id}\n}}"
    )
}

/// (vector, trace flag before, after), from the vectors' index.md.
const PROTOCOL_VECTORS: &[(&str, bool, bool)] = &[
    ("01-st-check", true, true),
    ("02-st-off", true, false),
    ("03-st-checkx", false, false),
    ("04-st-on", false, true),
    ("05-st-offline", true, false),
    ("06-st-ON-upper", false, true),
    ("07-st-bogus", true, true),
    ("08-st-empty-string", true, true),
    ("09-st-number", true, true),
    ("10-st-empty-array", true, true),
    ("11-st-no-params", true, true),
    ("12-st-online", false, true),
    ("13-st-two-params", false, true),
    ("20-unknown-method", true, true),
    ("21-id-string", true, true),
    ("22-id-absent", true, true),
    ("23-id-float", true, true),
    ("24-pretty-kamcli", true, true),
    ("29-params-object", true, true),
    ("30-params-object-on", false, true),
];

#[test]
fn kamailio_vectors_byte_for_byte() {
    let d = Daemon::start("rpc-vec", CFG);
    let mut rows = Vec::new();
    for &(name, before, after) in PROTOCOL_VECTORS {
        rows.push(set_trace(before));
        rows.push(vector(name));
        rows.push(check_trace(after));
    }
    // Two requests in one write: both run, answered in order on their FIFOs.
    rows.push(
        FifoRow::reply(request("25-back-to-back"), reply_file("25-back-to-back-1"))
            .and(FifoWant::Reply(reply_file("25-back-to-back-2"))),
    );
    run_fifo_table(&d.rpc_fifo, rows);
}

#[test]
fn where_kamailio_is_silent_we_answer_or_stay_silent() {
    let d = Daemon::start("rpc-silent", CFG);
    let parse_error = error(-32700, "Parse Error", "4242");
    let invalid = |id: &str| error(-32600, "Invalid Request", id);
    run_fifo_table(
        &d.rpc_fifo,
        vec![
            set_trace(true),
            // 26: invalid JSON (a trailing comma): -32700 with the id recovered.
            FifoRow::reply(request("26-bad-json"), &parse_error),
            // 27: no reply_name: nowhere to answer; the method does not run.
            FifoRow::silent(request("27-no-reply-name")),
            // 28: "jsonrpc": "1.0": -32600.
            FifoRow::reply(request("28-jsonrpc-version-1-0"), invalid("4242")),
            // No "jsonrpc" at all, no method, params neither array nor object.
            FifoRow::reply(
                b"{\"method\": \"siptrace.status\", \"params\": [\"off\"], \"reply_name\": \"@R@\", \"id\": 9}\n",
                invalid("9"),
            ),
            FifoRow::reply(
                b"{\"jsonrpc\": \"2.0\", \"params\": [\"off\"], \"reply_name\": \"@R@\", \"id\": \"m\"}",
                invalid("\"m\""),
            ),
            FifoRow::reply(
                b"{\"jsonrpc\": \"2.0\", \"method\": \"siptrace.status\", \"params\": \"off\", \"reply_name\": \"@R@\", \"id\": 3}",
                invalid("3"),
            ),
            FifoRow::reply(
                b"{\"jsonrpc\": 2.0, \"method\": \"siptrace.status\", \"params\": [\"off\"], \"reply_name\": \"@R@\"}",
                "{\n\t\"jsonrpc\":\t\"2.0\",\n\t\"error\":\t{\n\t\t\"code\":\t-32600,\n\t\t\"message\":\t\"Invalid Request\"\n\t}\n}",
            ),
            // Invalid JSON with no id to recover: answered without one.
            FifoRow::reply(
                b"{\"jsonrpc\": \"2.0\", \"method\": siptrace.status, \"reply_name\": \"@R@\"}",
                "{\n\t\"jsonrpc\":\t\"2.0\",\n\t\"error\":\t{\n\t\t\"code\":\t-32700,\n\t\t\"message\":\t\"Parse Error\"\n\t}\n}",
            ),
            // None of the refused requests above switched tracing off.
            check_trace(true),
            // A reply name that breaks the rules (docs/kamailio.md §6.3): as in
            // jsonrpcs, the method runs and only the reply is impossible, since
            // the name is checked when the reply FIFO is opened.
            FifoRow::silent(rpc("siptrace.status", ", \"params\": [\"off\"]").replace("@R@", "@R@.x"))
                .fifo("@R@.x"),
            check_trace(false),
            set_trace(true),
            FifoRow::silent(rpc("siptrace.status", ", \"params\": [\"off\"]").replace("@R@", "/tmp/@R@")),
            check_trace(false),
            set_trace(true),
            FifoRow::silent(rpc("siptrace.status", ", \"params\": [\"off\"]").replace("@R@", "@R@\\\\x"))
                .fifo("@R@\\x"),
            check_trace(false),
            set_trace(true),
            // reply_dir "/tmp/" + name + NUL must fit in 128 bytes.
            FifoRow::silent(rpc("siptrace.status", ", \"params\": [\"off\"]")).pad(123),
            check_trace(false),
            FifoRow::reply(rpc("siptrace.status", ", \"params\": [\"on\"]"), result_str("Enabled", "7"))
                .pad(122),
            // A name that does not fit jsonrpcs' 128-byte buffer: refused before
            // the method runs.
            FifoRow::silent(rpc("siptrace.status", ", \"params\": [\"off\"]")).pad(128),
            check_trace(true),
        ],
    );
}

#[test]
fn core_methods_with_our_values() {
    let d = Daemon::start("rpc-core", CFG);
    let pid = d.pid();
    let version = env!("CARGO_PKG_VERSION");
    let arch = std::env::consts::ARCH;
    let ctime =
        r"[A-Z][a-z]{2} [A-Z][a-z]{2} [ 1-3][0-9] [0-2][0-9]:[0-5][0-9]:[0-6][0-9] [0-9]{4}";
    let stats = |written: u64| {
        format!(
            "{{\n\t\"jsonrpc\":\t\"2.0\",\n\t\"result\":\t[\"siptrace:copies_dropped = 0\", \"siptrace:copies_sent = 0\", \
             \"siptrace:msgs_escaped = 0\", \"siptrace:msgs_masked = 0\", \"siptrace:rows_dropped = 0\", \"siptrace:rows_replayed = 0\", \
             \"siptrace:rows_spooled = 0\", \"siptrace:rows_written = {written}\", \"siptrace:spool_bytes = 0\", \
             \"siptrace:traced_replies = 0\", \"siptrace:traced_requests = 0\"],\n\t\"id\":\t4242\n}}"
        )
    };
    run_fifo_table(
        &d.rpc_fifo,
        vec![
            // 14-19 carry Kamailio's own values; the layout is the same with ours.
            FifoRow::reply(
                request("14-core-version"),
                format!(
                    "{{\n\t\"jsonrpc\":\t\"2.0\",\n\t\"result\":\t\"siptraced {version} ({arch}/linux) \",\n\t\"id\":\t4242\n}}"
                ),
            ),
            FifoRow::matches(
                request("15-core-uptime"),
                &format!(
                    "\\A\\{{\n\t\"jsonrpc\":\t\"2.0\",\n\t\"result\":\t\\{{\n\t\t\"now\":\t\"{ctime}\",\n\t\t\"up_since\":\t\"{ctime}\",\n\t\t\"uptime\":\t[0-9]+\n\t\\}},\n\t\"id\":\t4242\n\\}}\\z"
                ),
            ),
            FifoRow::reply(
                request("16-core-psx"),
                format!(
                    "{{\n\t\"jsonrpc\":\t\"2.0\",\n\t\"result\":\t[{{\n\t\t\t\"IDX\":\t0,\n\t\t\t\"PID\":\t{pid},\n\t\t\t\"DSC\":\t\"main process - attendant\"\n\t\t}}],\n\t\"id\":\t4242\n}}"
                ),
            ),
            FifoRow::reply(
                request("17-core-ps"),
                format!(
                    "{{\n\t\"jsonrpc\":\t\"2.0\",\n\t\"result\":\t[{pid}, \"main process - attendant\"],\n\t\"id\":\t4242\n}}"
                ),
            ),
            FifoRow::reply(
                request("18-system-listMethods"),
                "{\n\t\"jsonrpc\":\t\"2.0\",\n\t\"result\":\t[\"core.limits\", \"core.ps\", \"core.psx\", \"core.uptime\", \"core.version\", \
                 \"siptrace.filter_add\", \"siptrace.filter_del\", \"siptrace.filter_list\", \
                 \"siptrace.purge\", \"siptrace.stats\", \"siptrace.status\", \"stats.get_statistics\", \"system.listMethods\"],\n\t\"id\":\t4242\n}",
            ),
            FifoRow::reply(request("19-stats-all"), stats(0)),
            FifoRow::reply(
                rpc("stats.get_statistics", ", \"params\": [\"siptrace:\"]")
                    .replace("\"id\": 7", "\"id\": 4242"),
                stats(0),
            ),
            FifoRow::reply(
                rpc(
                    "stats.get_statistics",
                    ", \"params\": [\"rows_written\", \"siptrace.copies_sent\"]",
                ),
                "{\n\t\"jsonrpc\":\t\"2.0\",\n\t\"result\":\t[\"siptrace:rows_written = 0\", \"siptrace:copies_sent = 0\"],\n\t\"id\":\t7\n}",
            ),
            FifoRow::reply(
                rpc("stats.get_statistics", ""),
                error(400, "Please provide which stats to retrieve", "7"),
            ),
            FifoRow::reply(
                rpc("siptrace.stats", ""),
                "{\n\t\"jsonrpc\":\t\"2.0\",\n\t\"result\":\t{\n\t\t\"rows_written\":\t0,\n\t\t\"rows_spooled\":\t0,\n\t\t\
                 \"rows_replayed\":\t0,\n\t\t\"rows_dropped\":\t0,\n\t\t\"spool_bytes\":\t0,\n\t\t\"msgs_escaped\":\t0,\n\t\t\
                 \"copies_sent\":\t0,\n\t\t\"copies_dropped\":\t0,\n\t\t\"db_state\":\t\"up\",\n\t\t\"msgs_masked\":\t0,\n\t\t\"rows_purged\":\t0,\n\t\t\"last_purge_ms\":\t0\n\t},\n\t\"id\":\t7\n}",
            ),
            // MI-only commands are not methods.
            FifoRow::reply(rpc("sip_trace", ""), error(500, "Method Not Found", "7")),
            FifoRow::reply(rpc("core.kill", ""), error(500, "Method Not Found", "7")),
        ],
    );
}

#[test]
fn pretty_format_off_prints_compact_json() {
    let cfg = CFG.replace(
        "modparam(\"siptrace\", \"trace_on\", 1)",
        "modparam(\"siptrace\", \"trace_on\", 1)\nmodparam(\"jsonrpcs\", \"pretty_format\", 0)",
    );
    let d = Daemon::start("rpc-compact", &cfg);
    run_fifo_table(
        &d.rpc_fifo,
        vec![
            FifoRow::reply(
                request("01-st-check"),
                "{\"jsonrpc\":\"2.0\",\"result\":\"Enabled\",\"id\":4242}",
            ),
            FifoRow::reply(
                request("07-st-bogus"),
                "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":500,\"message\":\"Bad parameter (on, off or check)\"},\"id\":4242}",
            ),
        ],
    );
}

#[test]
fn relative_fifo_name_lives_under_the_run_dir() {
    // jsonrpcs puts a fifo_name without '/' under the run dir (docs/kamailio.md §6.3).
    let dir = TempDir::new("rpc-rundir");
    let cfg = CFG.replace("@RPCFIFO@", "siptraced_rpc.fifo").replace(
        "listen=",
        &format!("run_dir=\"{}\"\nlisten=", dir.path().display()),
    );
    let d = Daemon::start("rpc-rundir", &cfg);
    let fifo: &Path = &dir.join("siptraced_rpc.fifo");
    assert!(fifo.exists(), "{}", d.log_text());
    run_fifo_table(
        fifo,
        vec![FifoRow::reply(
            request("01-st-check"),
            reply_file("01-st-check"),
        )],
    );
}
