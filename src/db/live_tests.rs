//! Tests against real servers and files: the same rows go through every
//! backend and are read back column by column.
//!
//! PostgreSQL and MariaDB/MySQL must be running; each test creates a fresh,
//! uniquely named database and drops it at the end. Nothing is skipped: an
//! unreachable server fails the test with how to start it. Override the
//! admin URLs with SIPTRACED_TEST_PG_URL / SIPTRACED_TEST_MYSQL_URL.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::schema::SQLITE_CREATE;
use super::{
    Backend, DbError, LayoutProblem, Marker, MarkerOpen, OpenOptions, Row, WriteReport, open,
};

const PG_START: &str = "start it with: pg_ctlcluster --skip-systemctl-redirect \
                        $(ls /etc/postgresql) main start";
const MY_START: &str = "start it with: start-stop-daemon --start --oknodo --background \
                        --exec /usr/sbin/mariadbd";

fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        nanos % 1_000_000
    )
}

fn opts() -> OpenOptions {
    OpenOptions {
        connect_timeout: Duration::from_millis(1500),
        io_timeout: Duration::from_secs(3),
        ..OpenOptions::default()
    }
}

// ---------------------------------------------------------------- rows

fn row(n: u32, msg: Vec<u8>) -> Row {
    Row {
        table: None,
        msg: msg.into(),
        callid: format!("call-{n}@example.com").into(),
        method: "INVITE".into(),
        status: "".into(),
        fromip: "udp:192.0.2.1:5060".into(),
        toip: "udp:192.0.2.2:5060".into(),
        time_sec: 1_790_000_000 + i64::from(n),
        time_us: 123_456 + n,
        time_stamp: format!("2026-09-21 10:20:{:02}", n % 60).into(),
        direction: "in",
        fromtag: format!("ft{n}").into(),
        totag: "".into(),
        traced_user: String::new(),
    }
}

/// The shared rows: plain, NUL + invalid UTF-8 over IPv6, ~8 KiB with
/// multibyte text and dbtext metacharacters, over-long Call-ID.
fn sample_rows() -> Vec<Row> {
    let plain =
        b"INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1\r\n\r\n".to_vec();
    let mut binary = b"SIP/2.0 200 OK\r\nX-Bin: a\0b\xffc\xc3\r\n\r\n".to_vec();
    binary.extend_from_slice(b"body\0\x80");
    let mut long = Vec::new();
    while long.len() < 8 * 1024 {
        long.extend_from_slice("MESSAGE sip:a SIP/2.0\r\nSubject: é€😀 a:b\tc\\d\r\n".as_bytes());
    }
    let mut r1 = row(1, plain);
    r1.traced_user = "alice".into();
    let mut r2 = row(2, binary);
    r2.method = "INVITE".into();
    r2.status = "200".into();
    r2.fromip = "udp:[2001:db8::1]:5060".into();
    r2.toip = "tcp:[2001:db8::2]:5061".into();
    r2.direction = "out";
    r2.totag = "tt2".into();
    let mut r3 = row(3, long);
    r3.method = "MESSAGE".into();
    r3.fromip = "any:255.255.255.255:5060".into();
    let mut r4 = row(4, b"OPTIONS sip:x SIP/2.0\r\n\r\n".to_vec());
    r4.callid = "c".repeat(300).into();
    vec![r1, r2, r3, r4]
}

/// How a backend renders values.
#[derive(Clone, Copy)]
struct Style {
    /// msg escaped as \xNN (PostgreSQL, MySQL).
    escapes: bool,
    /// VARCHAR lengths enforced by cutting (PostgreSQL, MySQL).
    limits: bool,
    /// time column holds Unix seconds (dbtext).
    int_time: bool,
}

const SQLITE: Style = Style {
    escapes: false,
    limits: false,
    int_time: false,
};
const SERVER: Style = Style {
    escapes: true,
    limits: true,
    int_time: false,
};
const DBTEXT: Style = Style {
    escapes: false,
    limits: false,
    int_time: true,
};

/// Columns of a layout version (1 = `date`, 2, 4).
fn columns(version: u8) -> Vec<&'static str> {
    let time = if version == 1 { "date" } else { "time_stamp" };
    let mut c = vec![
        "msg",
        "callid",
        "method",
        "status",
        "fromip",
        "toip",
        time,
        "direction",
        "fromtag",
        "traced_user",
    ];
    if version >= 3 {
        c.push("time_us");
    }
    if version >= 4 {
        c.push("totag");
    }
    c
}

fn expected(r: &Row, version: u8, style: Style) -> HashMap<String, Vec<u8>> {
    let mut m = HashMap::new();
    for c in columns(version) {
        let v: Vec<u8> = match c {
            "msg" if style.escapes => {
                super::encode::escape_text(&r.msg, super::schema::Charset::Utf8)
                    .into_owned()
                    .into_bytes()
            }
            "msg" => r.msg.to_vec(),
            "callid" if style.limits => r.callid.chars().take(255).collect::<String>().into(),
            "callid" => r.callid.as_bytes().to_vec(),
            "method" => r.method.as_bytes().to_vec(),
            "status" => r.status.as_bytes().to_vec(),
            "fromip" => r.fromip.as_bytes().to_vec(),
            "toip" => r.toip.as_bytes().to_vec(),
            "date" | "time_stamp" if style.int_time => r.time_sec.to_string().into(),
            "date" | "time_stamp" => r.time_stamp.as_bytes().to_vec(),
            "direction" => r.direction.into(),
            "fromtag" => r.fromtag.as_bytes().to_vec(),
            "traced_user" => r.traced_user.as_bytes().to_vec(),
            "time_us" => r.time_us.to_string().into(),
            "totag" => r.totag.as_bytes().to_vec(),
            _ => unreachable!("column list is fixed above"),
        };
        m.insert(c.to_string(), v);
    }
    m
}

type Readback = Vec<HashMap<String, Vec<u8>>>;

#[track_caller]
fn compare(got: &Readback, rows: &[&Row], version: u8, style: Style) {
    assert_eq!(got.len(), rows.len(), "row count");
    for (i, (g, r)) in got.iter().zip(rows).enumerate() {
        let want = expected(r, version, style);
        for c in columns(version) {
            assert_eq!(
                String::from_utf8_lossy(&g[c]),
                String::from_utf8_lossy(&want[c]),
                "row {i} column {c}"
            );
            assert_eq!(g[c], want[c], "row {i} column {c} (bytes)");
        }
        let extra: Vec<&String> = g.keys().filter(|k| !want.contains_key(*k)).collect();
        assert!(extra.is_empty(), "row {i}: unexpected columns {extra:?}");
    }
}

/// Write the samples (two in one batch, then one by one), read back, compare.
fn roundtrip(store: &mut dyn Backend, read: &dyn Fn(&str) -> Readback, version: u8, style: Style) {
    let rows = sample_rows();
    let r1 = store.write_batch(&rows[..2]).expect("batch write");
    let mut total = r1;
    for r in &rows[2..] {
        let rep = store
            .write_batch(std::slice::from_ref(r))
            .expect("single write");
        total.written += rep.written;
        total.escaped += rep.escaped;
        total.truncated += rep.truncated;
    }
    assert_eq!(total.written, 4);
    assert_eq!(total.escaped, if style.escapes { 1 } else { 0 }, "escaped");
    assert_eq!(
        total.truncated,
        if style.limits { 1 } else { 0 },
        "truncated"
    );
    let refs: Vec<&Row> = rows.iter().collect();
    compare(&read("sip_trace"), &refs, version, style);
    assert!(
        store.describe().contains(&format!("sip_trace v{version}")),
        "{}",
        store.describe()
    );
}

/// Rows aimed at other tables: a valid one, an injection attempt, a missing
/// one; only the valid one leaves the default table.
fn reroutes(store: &mut dyn Backend, read: &dyn Fn(&str) -> Readback, style: Style) {
    let mut rows = sample_rows();
    rows.truncate(3);
    rows[0].table = Some("trace_b".into());
    rows[1].table = Some("sip_trace; DROP TABLE x".into());
    rows[2].table = Some("no_such_table".into());
    let mut more = rows.clone();
    more[0].callid = "second-batch".into();
    let rep = store.write_batch(&rows).expect("write");
    assert_eq!((rep.written, rep.rerouted), (3, 2));
    let rep = store
        .write_batch(&more)
        .expect("write again (cached refusals)");
    assert_eq!((rep.written, rep.rerouted), (3, 2));
    compare(&read("trace_b"), &[&rows[0], &more[0]], 4, style);
    compare(
        &read("sip_trace"),
        &[&rows[1], &rows[2], &more[1], &more[2]],
        4,
        style,
    );
}

// ---------------------------------------------------------------- SQLite

fn sqlite_read(path: &Path) -> impl Fn(&str) -> Readback {
    let path = path.to_path_buf();
    move |table: &str| {
        let c = rusqlite::Connection::open(&path).expect("open for reading");
        let mut st = c
            .prepare(&format!("SELECT * FROM \"{table}\" ORDER BY id"))
            .expect("select");
        let names: Vec<String> = st.column_names().map(|s| s.to_string()).collect();
        let mut rows = st.query([]).expect("query");
        let mut out = Vec::new();
        while let Some(r) = rows.next().expect("row") {
            let mut m = HashMap::new();
            for (i, n) in names.iter().enumerate() {
                if n == "id" {
                    continue;
                }
                use rusqlite::types::ValueRef;
                let v = match r.get_ref(i).expect("value") {
                    ValueRef::Text(b) | ValueRef::Blob(b) => b.to_vec(),
                    ValueRef::Integer(n) => n.to_string().into_bytes(),
                    other => panic!("column {n}: unexpected {other:?}"),
                };
                m.insert(n.clone(), v);
            }
            out.push(m);
        }
        out
    }
}

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let p = std::env::temp_dir().join(unique("siptraced_dbtest"));
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn sqlite_with(dir: &TempDir, script: &str) -> PathBuf {
    let path = dir.0.join("t.db");
    let c = rusqlite::Connection::open(&path).expect("create");
    c.execute_batch(script).expect("script");
    path
}

#[test]
fn sqlite_new_file_gets_schema_and_round_trips() {
    let dir = TempDir::new();
    let path = dir.0.join("new.db");
    let mut store = open(
        &format!("sqlite://{}", path.display()),
        "sip_trace",
        &opts(),
    )
    .expect("open new file");
    roundtrip(store.as_mut(), &sqlite_read(&path), 4, SQLITE);
    let c = rusqlite::Connection::open(&path).unwrap();
    let mode: String = c
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let v: i64 = c
        .query_row(
            "SELECT table_version FROM version WHERE table_name='sip_trace'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(v, 4);
    // msg is TEXT holding the raw bytes, time_stamp text (not Julian REAL).
    let (t1, t2): (String, String) = c
        .query_row(
            "SELECT typeof(msg), typeof(time_stamp) FROM sip_trace WHERE id = 2",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((t1.as_str(), t2.as_str()), ("text", "text"));
}

#[test]
fn sqlite_relative_url_and_other_default_table() {
    // sqlite://relative resolves against the working directory; an absolute
    // temp path spelled relative to / keeps the test independent of CWD.
    let dir = TempDir::new();
    let path = dir.0.join("rel.db");
    let rel = path.strip_prefix("/").unwrap();
    let cwd = std::env::current_dir().unwrap();
    let rel_from_cwd: PathBuf = cwd
        .components()
        .skip(1)
        .map(|_| "..")
        .collect::<PathBuf>()
        .join(rel);
    let mut store = open(
        &format!("sqlite://{}", rel_from_cwd.display()),
        "my_trace",
        &opts(),
    )
    .expect("open relative");
    store.write_batch(&sample_rows()[..1]).unwrap();
    assert!(
        store.describe().contains("my_trace v4"),
        "{}",
        store.describe()
    );
    assert_eq!(sqlite_read(&path)("my_trace").len(), 1);
}

#[test]
fn sqlite_existing_file_without_table_is_missing_table() {
    let dir = TempDir::new();
    let path = sqlite_with(&dir, "CREATE TABLE other (a INTEGER);");
    let err = open(
        &format!("sqlite://{}", path.display()),
        "sip_trace",
        &opts(),
    )
    .err()
    .expect("must fail");
    assert!(
        matches!(&err, DbError::MissingTable { table, hint }
            if table == "sip_trace" && hint.contains("sql/sqlite/siptrace-create.sql")),
        "{err}"
    );
    assert!(!err.is_connection());
    // Without permission to create, even an empty file is "missing".
    let path2 = dir.0.join("empty.db");
    let o = OpenOptions {
        create_sqlite_schema: false,
        ..opts()
    };
    let err = open(&format!("sqlite://{}", path2.display()), "sip_trace", &o)
        .err()
        .expect("must fail");
    assert!(matches!(err, DbError::MissingTable { .. }), "{err}");
    // A table lacking required columns is refused at start-up.
    let dir2 = TempDir::new();
    let path3 = sqlite_with(&dir2, "CREATE TABLE sip_trace (id INTEGER, msg TEXT);");
    let err = open(
        &format!("sqlite://{}", path3.display()),
        "sip_trace",
        &opts(),
    )
    .err()
    .expect("must fail");
    assert!(
        matches!(&err, DbError::BadLayout { problem: LayoutProblem::Missing(m), .. }
            if m.contains(&"callid") && m.contains(&"time_stamp")),
        "{err}"
    );
}

#[test]
fn sqlite_old_layouts() {
    let v2 = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/sql/sqlite/siptrace-v2-create.sql"
    ));
    for (version, script) in [(2u8, v2.to_string()), (1, v2.replace("time_stamp", "date"))] {
        let dir = TempDir::new();
        let path = sqlite_with(&dir, &script);
        let mut store = open(
            &format!("sqlite://{}", path.display()),
            "sip_trace",
            &opts(),
        )
        .expect("open old layout");
        roundtrip(store.as_mut(), &sqlite_read(&path), version, SQLITE);
    }
}

#[test]
fn sqlite_reroutes_and_refuses_injection() {
    let dir = TempDir::new();
    let script = format!(
        "{SQLITE_CREATE}\n{}\nCREATE TABLE x (a INTEGER);",
        super::schema::script_for_table(SQLITE_CREATE, "trace_b")
    );
    let path = sqlite_with(&dir, &script);
    let mut store = open(
        &format!("sqlite://{}", path.display()),
        "sip_trace",
        &opts(),
    )
    .unwrap();
    reroutes(store.as_mut(), &sqlite_read(&path), SQLITE);
    let c = rusqlite::Connection::open(&path).unwrap();
    let n: i64 = c
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'x'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 1, "table x must survive");
}

#[test]
fn sqlite_lock_held_elsewhere_is_busy_then_recovers() {
    let dir = TempDir::new();
    let path = dir.0.join("busy.db");
    let url = format!("sqlite://{}", path.display());
    let mut store = open(&url, "sip_trace", &opts()).unwrap();
    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let t = Instant::now();
    let err = store.write_batch(&sample_rows()[..1]).unwrap_err();
    assert!(err.is_connection(), "{err}");
    assert!(matches!(err, DbError::Busy { .. }), "{err}");
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    other.execute_batch("COMMIT").unwrap();
    store
        .write_batch(&sample_rows()[..1])
        .expect("after the lock is gone");
    assert_eq!(sqlite_read(&path)("sip_trace").len(), 1);
}

#[test]
fn sqlite_content_refused_row_is_isolated() {
    let dir = TempDir::new();
    let script = SQLITE_CREATE.replace(
        "direction VARCHAR(4) DEFAULT '' NOT NULL",
        "direction VARCHAR(4) DEFAULT '' NOT NULL CHECK (method <> 'BAD')",
    );
    let path = sqlite_with(&dir, &script);
    let mut store = open(
        &format!("sqlite://{}", path.display()),
        "sip_trace",
        &opts(),
    )
    .unwrap();
    content_refusal(store.as_mut(), &sqlite_read(&path), SQLITE);
    marked_refusal(store.as_mut(), &sqlite_read(&path));
}

#[test]
fn sqlite_marker_protocol() {
    let dir = TempDir::new();
    let path = sqlite_with(&dir, SQLITE_CREATE);
    let mut store = open(
        &format!("sqlite://{}", path.display()),
        "sip_trace",
        &opts(),
    )
    .unwrap();
    let exec = |sql: &str| {
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    };
    let b = super::schema::script_for_table(SQLITE_CREATE, "trace_b");
    marker_protocol(store.as_mut(), &exec, &sqlite_read(&path), &b);
}

#[test]
fn dbtext_keeps_no_marker() {
    let dir = TempDir::new();
    let mut store = open(&format!("text://{}", dir.0.display()), "sip_trace", &opts()).unwrap();
    assert!(matches!(
        store.open_marker("x").unwrap(),
        MarkerOpen::NoTransactions(why) if why.contains("transactions")
    ));
}

/// A CHECK constraint refuses one row: the others are stored, in order.
fn content_refusal(store: &mut dyn Backend, read: &dyn Fn(&str) -> Readback, style: Style) {
    let mut rows = sample_rows();
    rows.truncate(3);
    rows[1].method = "BAD".into();
    let rep = store.write_batch(&rows).expect("batch with a bad row");
    assert_eq!(
        rep,
        WriteReport {
            written: 2,
            refused: 1,
            escaped: 0,
            rerouted: 0,
            truncated: 0,
            already: 0,
        }
    );
    compare(&read("sip_trace"), &[&rows[0], &rows[2]], 4, style);
}

// ---------------------------------------------------------------- dbtext

/// The marker protocol on a real database: the table is created when
/// missing, rows at or below the marker are skipped, a marker moved by
/// someone else (an earlier attempt that committed after we gave up) is
/// re-read and only the rows above it are written, and batches spanning
/// two tables move it in the same transaction. `exec` runs SQL on another
/// connection; `table_b` creates table trace_b.
fn marker_protocol(
    store: &mut dyn Backend,
    exec: &dyn Fn(&str),
    read: &dyn Fn(&str) -> Readback,
    table_b: &str,
) {
    exec("DROP TABLE IF EXISTS siptraced_spool_marker");
    assert_eq!(store.open_marker("s1").unwrap(), MarkerOpen::Ready(0));
    assert_eq!(store.open_marker("s1").unwrap(), MarkerOpen::Ready(0));
    let mut rows: Vec<Row> = (0..8)
        .map(|n| row(n, format!("OPTIONS sip:{n} SIP/2.0\r\n\r\n").into_bytes()))
        .collect();
    let callids = |t: &str| -> Vec<String> {
        read(t)
            .iter()
            .map(|r| String::from_utf8_lossy(&r["callid"]).into_owned())
            .collect()
    };
    let mut m = Marker {
        id: "s1".into(),
        last: 0,
    };
    let rep = store
        .write_batch_marked(&rows[..3], &[10, 11, 12], &mut m)
        .unwrap();
    assert_eq!((rep.written, rep.already, m.last), (3, 0, 12));
    // The same rows again (a replay after a crash): nothing written.
    let rep = store
        .write_batch_marked(&rows[..3], &[10, 11, 12], &mut m)
        .unwrap();
    assert_eq!((rep.written, rep.already, m.last), (0, 3, 12));
    // An attempt we gave up on committed rows 13 and 14 after all.
    store.write_batch(&rows[3..5]).unwrap();
    exec("UPDATE siptraced_spool_marker SET last_seq = 14 WHERE spool_id = 's1'");
    let rep = store
        .write_batch_marked(&rows[3..7], &[13, 14, 15, 16], &mut m)
        .unwrap();
    assert_eq!((rep.written, rep.already, m.last), (2, 2, 16));
    assert_eq!(store.open_marker("s1").unwrap(), MarkerOpen::Ready(16));
    // Another spool's marker is its own.
    assert_eq!(store.open_marker("s2").unwrap(), MarkerOpen::Ready(0));
    let want: Vec<String> = rows[..7].iter().map(|r| r.callid.to_string()).collect();
    assert_eq!(callids("sip_trace"), want);
    // Two tables: one transaction with the marker; moved first.
    exec(table_b);
    rows[7].table = Some("trace_b".into());
    exec("UPDATE siptraced_spool_marker SET last_seq = 17 WHERE spool_id = 's1'");
    let two = [rows[0].clone(), rows[7].clone(), rows[1].clone()];
    let rep = store
        .write_batch_marked(&two, &[17, 18, 19], &mut m)
        .unwrap();
    assert_eq!((rep.written, rep.already, m.last), (2, 1, 19));
    assert_eq!(callids("trace_b"), [rows[7].callid.to_string()]);
    assert_eq!(callids("sip_trace").len(), 8);
    // A marker row deleted meanwhile is put back, not a reason to rewrite.
    exec("DELETE FROM siptraced_spool_marker WHERE spool_id = 's1'");
    let rep = store.write_batch_marked(&rows[..1], &[20], &mut m).unwrap();
    assert_eq!((rep.written, m.last), (1, 20));
    assert_eq!(store.open_marker("s1").unwrap(), MarkerOpen::Ready(20));
}

/// With a marker, a row refused for its content does not stop the others,
/// and the marker still ends at the last number.
fn marked_refusal(store: &mut dyn Backend, read: &dyn Fn(&str) -> Readback) {
    let before = read("sip_trace").len();
    assert!(matches!(
        store.open_marker("r").unwrap(),
        MarkerOpen::Ready(0)
    ));
    let mut rows = sample_rows();
    rows.truncate(3);
    rows[1].method = "BAD".into();
    let mut m = Marker {
        id: "r".into(),
        last: 0,
    };
    let rep = store.write_batch_marked(&rows, &[1, 2, 3], &mut m).unwrap();
    assert_eq!((rep.written, rep.refused, m.last), (2, 1, 3));
    let rep = store.write_batch_marked(&rows, &[1, 2, 3], &mut m).unwrap();
    assert_eq!((rep.written, rep.already), (0, 3));
    assert_eq!(read("sip_trace").len(), before + 2);
}

fn text_read(dir: &Path) -> impl Fn(&str) -> Readback {
    let dir = dir.to_path_buf();
    move |table: &str| {
        let t = super::text::read_table_raw(&dir.join(table)).expect("read dbtext");
        t.rows
            .into_iter()
            .map(|r| {
                t.columns
                    .iter()
                    .zip(r)
                    .filter(|(c, _)| c.name != "id")
                    .map(|(c, v)| (c.name.clone(), v))
                    .collect()
            })
            .collect()
    }
}

#[test]
fn dbtext_creates_files_and_round_trips_in_kamailio_format() {
    let dir = TempDir::new();
    let url = format!("text://{}", dir.0.display());
    let mut store = open(&url, "sip_trace", &opts()).expect("open dbtext");
    roundtrip(store.as_mut(), &text_read(&dir.0), 4, DBTEXT);
    let raw = std::fs::read(dir.0.join("sip_trace")).unwrap();
    let header = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/sql/db_text/sip_trace"
    ));
    assert!(raw.starts_with(header.as_bytes()));
    let lines: Vec<&[u8]> = raw.split(|b| *b == b'\n').collect();
    assert_eq!(lines.len(), 6, "header + 4 rows + final empty");
    assert_eq!(
        lines[1],
        &b"1:1790000001:123457:call-1@example.com:alice:INVITE sip\\:bob@example.com SIP/2.0\\r\\nVia\\: SIP/2.0/UDP 192.0.2.1\\r\\n\\r\\n:INVITE::udp\\:192.0.2.1\\:5060:udp\\:192.0.2.2\\:5060:ft1::in"[..],
    );
    // NUL and invalid bytes: NUL as \0, others raw.
    let needle = b"X-Bin\\: a\\0b\xffc\xc3\\r\\n\\r\\nbody\\0\x80:";
    assert!(
        lines[2].windows(needle.len()).any(|w| w == needle),
        "{}",
        String::from_utf8_lossy(lines[2])
    );
    assert_eq!(
        std::fs::read_to_string(dir.0.join("version")).unwrap(),
        "id(int,auto) table_name(string) table_version(int)\n0:version:1\n0:sip_trace:4\n"
    );
    // Reopening continues the ids and keeps the rows.
    drop(store);
    let mut store = open(&url, "sip_trace", &opts()).unwrap();
    store.write_batch(&sample_rows()[..1]).unwrap();
    let t = super::text::read_table(&dir.0.join("sip_trace")).unwrap();
    let ids: Vec<&str> = t.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(ids, ["1", "2", "3", "4", "5"]);
}

#[test]
fn dbtext_old_layout_existing_version_file_and_reroute() {
    let dir = TempDir::new();
    let v2 = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/sql/db_text/v2/sip_trace"
    ));
    std::fs::write(dir.0.join("sip_trace"), v2).unwrap();
    let url = format!("text://{}", dir.0.display());
    let mut store = open(&url, "sip_trace", &opts()).unwrap();
    roundtrip(store.as_mut(), &text_read(&dir.0), 2, DBTEXT);
    assert!(
        !dir.0.join("version").exists(),
        "existing table: version untouched"
    );

    // A new default table in a directory whose version file exists.
    let dir = TempDir::new();
    std::fs::write(
        dir.0.join("version"),
        "id(int,auto) table_name(string) table_version(int)\n0:version:1\n",
    )
    .unwrap();
    std::fs::write(
        dir.0.join("trace_b"),
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/sql/db_text/sip_trace"
        )),
    )
    .unwrap();
    let mut store = open(&format!("text://{}", dir.0.display()), "sip_trace", &opts()).unwrap();
    assert!(
        std::fs::read_to_string(dir.0.join("version"))
            .unwrap()
            .ends_with("0:version:1\n0:sip_trace:4\n")
    );
    reroutes(store.as_mut(), &text_read(&dir.0), DBTEXT);
    assert!(!dir.0.join("sip_trace; DROP TABLE x").exists());
}

#[test]
fn dbtext_missing_directory() {
    let err = open("text:///nonexistent/siptraced/dir", "sip_trace", &opts())
        .err()
        .expect("must fail");
    assert!(matches!(err, DbError::MissingDirectory { .. }), "{err}");
}

// ---------------------------------------------------------------- PostgreSQL

struct Pg {
    rt: tokio::runtime::Runtime,
    admin: tokio_postgres::Client,
    name: String,
    base: tokio_postgres::Config,
}

fn pg_admin_url() -> String {
    std::env::var("SIPTRACED_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

impl Pg {
    /// A fresh database, dropped again when this is dropped.
    fn new() -> Pg {
        Self::with_encoding("")
    }

    /// A fresh database in `encoding` ("" = the server's default).
    fn with_encoding(encoding: &str) -> Pg {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let url = pg_admin_url();
        let base: tokio_postgres::Config = url.parse().expect("SIPTRACED_TEST_PG_URL");
        let admin = Self::connect(&rt, &base, &url);
        let name = unique("siptraced_t");
        let with = if encoding.is_empty() {
            String::new()
        } else {
            format!(" ENCODING '{encoding}' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
        };
        rt.block_on(admin.batch_execute(&format!("CREATE DATABASE {name}{with}")))
            .expect("create test database");
        Pg {
            rt,
            admin,
            name,
            base,
        }
    }

    fn connect(
        rt: &tokio::runtime::Runtime,
        cfg: &tokio_postgres::Config,
        url: &str,
    ) -> tokio_postgres::Client {
        let (client, conn) = rt
            .block_on(cfg.connect(tokio_postgres::NoTls))
            .unwrap_or_else(|e| panic!("PostgreSQL not reachable at {url}: {e}; {PG_START}"));
        rt.spawn(async move {
            let _ = conn.await;
        });
        client
    }

    fn url(&self) -> String {
        let user = self.base.get_user().unwrap_or("postgres");
        let port = self.base.get_ports().first().copied().unwrap_or(5432);
        format!("postgres://{user}@127.0.0.1:{port}/{}", self.name)
    }

    fn client(&self) -> tokio_postgres::Client {
        let mut cfg = self.base.clone();
        cfg.dbname(&self.name);
        Self::connect(&self.rt, &cfg, &self.url())
    }

    fn exec(&self, sql: &str) {
        let c = self.client();
        self.rt
            .block_on(c.batch_execute(sql))
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    fn read(&self) -> impl Fn(&str) -> Readback + '_ {
        move |table: &str| {
            let c = self.client();
            let rows = self
                .rt
                .block_on(c.query(
                    "SELECT column_name::text FROM information_schema.columns \
                     WHERE table_name = $1 AND column_name <> 'id' ORDER BY ordinal_position",
                    &[&table],
                ))
                .unwrap();
            let cols: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
            let select: Vec<String> = cols.iter().map(|c| format!("\"{c}\"::text")).collect();
            let sql = format!("SELECT {} FROM \"{table}\" ORDER BY id", select.join(", "));
            self.rt
                .block_on(c.query(&sql, &[]))
                .unwrap()
                .iter()
                .map(|r| {
                    cols.iter()
                        .enumerate()
                        .map(|(i, c)| (c.clone(), r.get::<_, String>(i).into_bytes()))
                        .collect()
                })
                .collect()
        }
    }

    fn open(&self) -> Box<dyn Backend> {
        open(&self.url(), "sip_trace", &opts()).expect("open postgres")
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(e) = self.rt.block_on(self.admin.batch_execute(&sql)) {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
}

const PG_V4: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/sql/postgres/siptrace-create.sql"
));
const PG_V2: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/sql/postgres/siptrace-v2-create.sql"
));

#[test]
fn postgres_round_trip_v4() {
    let pg = Pg::new();
    pg.exec(PG_V4);
    let mut store = pg.open();
    roundtrip(store.as_mut(), &pg.read(), 4, SERVER);
}

/// Databases whose encoding is not UTF8 (old Kamailio installations):
/// LATIN1 holds every byte, so the message goes in as Kamailio stored it
/// (only NUL escaped); SQL_ASCII takes UTF-8 as is, like UTF8.
#[test]
fn postgres_latin1_and_sql_ascii_databases() {
    type Want = fn(&[u8]) -> Vec<u8>;
    let cases: [(&str, Want); 2] = [
        ("LATIN1", |m| super::encode::escape_nul(m).into_owned()),
        ("SQL_ASCII", |m| {
            super::encode::escape_text(m, super::schema::Charset::Utf8)
                .into_owned()
                .into_bytes()
        }),
    ];
    for (encoding, want_msg) in cases {
        let pg = Pg::with_encoding(encoding);
        pg.exec(PG_V2);
        let mut store = pg.open();
        let rows = sample_rows();
        let rep = store.write_batch(&rows).expect("write");
        assert_eq!(
            (rep.written, rep.escaped, rep.truncated),
            (4, 1, 1),
            "{encoding}"
        );
        let c = pg.client();
        // convert_to(.., database encoding) is the stored bytes, unconverted.
        let got: Vec<(Vec<u8>, Vec<u8>)> = pg
            .rt
            .block_on(c.query(
                "SELECT convert_to(msg, getdatabaseencoding()), \
                        convert_to(callid, getdatabaseencoding()) FROM sip_trace ORDER BY id",
                &[],
            ))
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let want: Vec<(Vec<u8>, Vec<u8>)> = rows
            .iter()
            .map(|r| {
                let callid = r.callid.as_bytes()[..r.callid.len().min(255)].to_vec();
                (want_msg(&r.msg), callid)
            })
            .collect();
        assert_eq!(got, want, "{encoding}");
    }
}

#[test]
fn postgres_old_layouts() {
    for (version, script) in [
        (2u8, PG_V2.to_string()),
        (1, PG_V2.replace("time_stamp", "date")),
    ] {
        let pg = Pg::new();
        pg.exec(&script);
        let mut store = pg.open();
        roundtrip(store.as_mut(), &pg.read(), version, SERVER);
    }
}

#[test]
fn postgres_reroutes_refuses_injection_and_follows_schema_changes() {
    let pg = Pg::new();
    pg.exec(PG_V4);
    pg.exec(&super::schema::script_for_table(PG_V4, "trace_b"));
    pg.exec("CREATE TABLE x (a int)");
    let mut store = pg.open();
    reroutes(store.as_mut(), &pg.read(), SERVER);
    let c = pg.client();
    let n: i64 = pg
        .rt
        .block_on(c.query_one("SELECT count(*) FROM pg_tables WHERE tablename = 'x'", &[]))
        .unwrap()
        .get(0);
    assert_eq!(n, 1, "table x must survive");
    // Mixed case folds like an unquoted identifier.
    let mut r = sample_rows()[0].clone();
    r.table = Some("Trace_B".into());
    let rep = store.write_batch(std::slice::from_ref(&r)).unwrap();
    assert_eq!(rep.rerouted, 0);
    // The cached table disappears: the batch is retried with fresh layouts.
    pg.exec("DROP TABLE trace_b");
    let rep = store.write_batch(std::slice::from_ref(&r)).unwrap();
    assert_eq!((rep.written, rep.rerouted), (1, 1));
}

#[test]
fn postgres_missing_table() {
    let pg = Pg::new();
    let err = open(&pg.url(), "sip_trace", &opts())
        .err()
        .expect("must fail");
    assert!(
        matches!(&err, DbError::MissingTable { hint, .. }
            if hint.contains("sql/postgres/siptrace-create.sql")),
        "{err}"
    );
    assert!(!err.is_connection());
}

#[test]
fn postgres_content_refused_row_is_isolated() {
    let pg = Pg::new();
    pg.exec(PG_V4);
    pg.exec("ALTER TABLE sip_trace ADD CONSTRAINT no_bad CHECK (method <> 'BAD')");
    let mut store = pg.open();
    content_refusal(store.as_mut(), &pg.read(), SERVER);
    marked_refusal(store.as_mut(), &pg.read());
}

#[test]
fn postgres_marker_protocol() {
    let pg = Pg::new();
    pg.exec(PG_V4);
    let mut store = pg.open();
    let b = super::schema::script_for_table(PG_V4, "trace_b");
    marker_protocol(store.as_mut(), &|sql| pg.exec(sql), &pg.read(), &b);
}

#[test]
fn postgres_marker_without_create_right_is_unsupported_not_fatal() {
    let pg = Pg::new();
    pg.exec(PG_V4);
    pg.exec(&format!(
        "DROP TABLE siptraced_spool_marker; \
         DROP ROLE IF EXISTS {n}_w; CREATE ROLE {n}_w LOGIN; \
         GRANT INSERT, SELECT ON sip_trace TO {n}_w; \
         GRANT USAGE ON SEQUENCE sip_trace_id_seq TO {n}_w; \
         REVOKE CREATE ON SCHEMA public FROM PUBLIC; REVOKE CREATE ON SCHEMA public FROM {n}_w",
        n = pg.name
    ));
    let url = pg
        .url()
        .replacen("postgres@", &format!("{}_w@", pg.name), 1);
    let mut store = open(&url, "sip_trace", &opts()).expect("open as writer");
    let got = store.open_marker("x").unwrap();
    assert!(
        matches!(&got, MarkerOpen::Unsupported(why)
            if why.contains("cannot be created") && why.contains("siptraced-spool-marker.sql")),
        "{got:?}"
    );
    // Plain writes still work.
    store.write_batch(&sample_rows()[..1]).unwrap();
    drop(store);
    let c = pg.client();
    let _ = pg.rt.block_on(c.batch_execute(&format!(
        "DROP OWNED BY {n}_w; DROP ROLE {n}_w",
        n = pg.name
    )));
}

#[test]
fn postgres_killed_connection_fails_once_then_reconnects() {
    let pg = Pg::new();
    pg.exec(PG_V4);
    let mut store = pg.open();
    let rows = sample_rows();
    store.write_batch(&rows[..1]).unwrap();
    let killed: i64 = pg
        .rt
        .block_on(pg.admin.query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = $1 AND application_name = 'siptraced'",
            &[&pg.name],
        ))
        .unwrap()
        .get(0);
    assert_eq!(killed, 1);
    let err = store.write_batch(&rows[1..2]).unwrap_err();
    assert!(err.is_connection(), "{err}");
    store.write_batch(&rows[2..3]).expect("reconnected");
    compare(&pg.read()("sip_trace"), &[&rows[0], &rows[2]], 4, SERVER);
}

#[test]
fn postgres_unreachable_and_stalled_servers_are_connection_errors() {
    server_failures("postgres");
}

/// A closed port fails fast; a server that accepts and never answers fails
/// within connect + I/O timeout. Both say "retry later".
fn server_failures(scheme: &str) {
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let t = Instant::now();
    let err = open(
        &format!("{scheme}://u@127.0.0.1:{closed}/d"),
        "sip_trace",
        &opts(),
    )
    .err()
    .expect("closed port");
    assert!(err.is_connection(), "{err}");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());

    let stalled = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = stalled.local_addr().unwrap().port();
    let o = OpenOptions {
        connect_timeout: Duration::from_millis(300),
        io_timeout: Duration::from_millis(500),
        ..opts()
    };
    let t = Instant::now();
    let err = open(&format!("{scheme}://u@127.0.0.1:{port}/d"), "sip_trace", &o)
        .err()
        .expect("stalled server");
    assert!(err.is_connection(), "{err}");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    drop(stalled);
}

// ---------------------------------------------------------------- MySQL

struct My {
    admin: mysql::Conn,
    name: String,
    base: mysql::Opts,
}

fn my_admin_url() -> String {
    std::env::var("SIPTRACED_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/mysql".into())
}

impl My {
    fn new() -> My {
        use mysql::prelude::Queryable;
        let url = my_admin_url();
        let base = mysql::Opts::from_url(&url).expect("SIPTRACED_TEST_MYSQL_URL");
        let mut admin = mysql::Conn::new(base.clone())
            .unwrap_or_else(|e| panic!("MariaDB/MySQL not reachable at {url}: {e}; {MY_START}"));
        let name = unique("siptraced_t");
        admin
            .query_drop(format!("CREATE DATABASE {name}"))
            .expect("create test database");
        My { admin, name, base }
    }

    fn url(&self) -> String {
        let user = self.base.get_user().unwrap_or("root");
        format!(
            "mysql://{user}@127.0.0.1:{}/{}",
            self.base.get_tcp_port(),
            self.name
        )
    }

    fn conn(&self) -> mysql::Conn {
        let o = mysql::OptsBuilder::from_opts(self.base.clone()).db_name(Some(self.name.clone()));
        mysql::Conn::new(o).expect("connect test database")
    }

    fn exec(&self, sql: &str) {
        use mysql::prelude::Queryable;
        let mut c = self.conn();
        // The text protocol runs several statements; drain every result.
        let mut r = c.query_iter(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        while let Some(set) = r.iter() {
            for row in set {
                row.unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
        }
    }

    fn read(&self) -> impl Fn(&str) -> Readback + '_ {
        move |table: &str| {
            use mysql::prelude::Queryable;
            let mut c = self.conn();
            let rows: Vec<mysql::Row> = c
                .query(format!("SELECT * FROM `{table}` ORDER BY id"))
                .unwrap();
            rows.into_iter()
                .map(|r| {
                    let cols: Vec<String> = r
                        .columns_ref()
                        .iter()
                        .map(|c| c.name_str().into_owned())
                        .collect();
                    cols.into_iter()
                        .zip(r.unwrap())
                        .filter(|(c, _)| c != "id")
                        .map(|(c, v)| {
                            let b = match v {
                                mysql::Value::Bytes(b) => b,
                                mysql::Value::Int(n) => n.to_string().into_bytes(),
                                mysql::Value::UInt(n) => n.to_string().into_bytes(),
                                other => panic!("column {c}: unexpected {other:?}"),
                            };
                            (c, b)
                        })
                        .collect()
                })
                .collect()
        }
    }

    fn open(&self) -> Box<dyn Backend> {
        open(&self.url(), "sip_trace", &opts()).expect("open mysql")
    }
}

impl Drop for My {
    fn drop(&mut self) {
        use mysql::prelude::Queryable;
        if let Err(e) = self
            .admin
            .query_drop(format!("DROP DATABASE IF EXISTS {}", self.name))
        {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
}

const MY_V4: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/sql/mysql/siptrace-create.sql"
));
const MY_V2: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/sql/mysql/siptrace-v2-create.sql"
));

#[test]
fn mysql_round_trip_v4() {
    let my = My::new();
    my.exec(MY_V4);
    let mut store = my.open();
    roundtrip(store.as_mut(), &my.read(), 4, SERVER);
}

#[test]
fn mysql_old_layouts() {
    for (version, script) in [
        (2u8, MY_V2.to_string()),
        (1, MY_V2.replace("time_stamp", "date")),
    ] {
        let my = My::new();
        my.exec(&script);
        let mut store = my.open();
        roundtrip(store.as_mut(), &my.read(), version, SERVER);
    }
}

/// A latin1 table (kamdbctl's default CHARSET for Kamailio databases) holds
/// every byte: the message goes in as Kamailio stored it, only NUL escaped,
/// and a latin1 client reads back the exact bytes.
#[test]
fn mysql_latin1_table_keeps_the_bytes() {
    use mysql::prelude::Queryable;
    let my = My::new();
    my.exec("ALTER DATABASE CHARACTER SET latin1");
    my.exec(MY_V2);
    let mut store = my.open();
    let rows = sample_rows();
    let rep = store.write_batch(&rows).expect("write");
    assert_eq!((rep.written, rep.escaped, rep.truncated), (4, 1, 1));
    let want: Vec<(Vec<u8>, Vec<u8>)> = rows
        .iter()
        .map(|r| {
            let msg = super::encode::escape_nul(&r.msg).into_owned();
            let callid = r.callid.as_bytes()[..r.callid.len().min(255)].to_vec();
            (msg, callid)
        })
        .collect();
    let mut c = my.conn();
    let raw: Vec<(Vec<u8>, Vec<u8>)> = c
        .query("SELECT CAST(msg AS BINARY), CAST(callid AS BINARY) FROM sip_trace ORDER BY id")
        .unwrap();
    assert_eq!(raw, want);
    c.query_drop("SET NAMES latin1").unwrap();
    let latin1: Vec<(Vec<u8>, Vec<u8>)> = c
        .query("SELECT msg, callid FROM sip_trace ORDER BY id")
        .unwrap();
    assert_eq!(latin1, want);
}

#[test]
fn mysql_reroutes_and_refuses_injection() {
    use mysql::prelude::Queryable;
    let my = My::new();
    my.exec(MY_V4);
    my.exec(&super::schema::script_for_table(MY_V4, "trace_b"));
    my.exec("CREATE TABLE x (a int)");
    let mut store = my.open();
    reroutes(store.as_mut(), &my.read(), SERVER);
    let n: Option<u64> = my
        .conn()
        .query_first("SELECT count(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'x'")
        .unwrap();
    assert_eq!(n, Some(1), "table x must survive");
}

#[test]
fn mysql_missing_table() {
    let my = My::new();
    let err = open(&my.url(), "sip_trace", &opts())
        .err()
        .expect("must fail");
    assert!(
        matches!(&err, DbError::MissingTable { hint, .. }
            if hint.contains("sql/mysql/siptrace-create.sql")),
        "{err}"
    );
}

#[test]
fn mysql_content_refused_row_is_isolated() {
    let my = My::new();
    my.exec(MY_V4);
    my.exec("ALTER TABLE sip_trace ADD CONSTRAINT no_bad CHECK (method <> 'BAD')");
    let mut store = my.open();
    content_refusal(store.as_mut(), &my.read(), SERVER);
    marked_refusal(store.as_mut(), &my.read());
}

#[test]
fn mysql_marker_protocol() {
    let my = My::new();
    my.exec(MY_V4);
    let mut store = my.open();
    let b = super::schema::script_for_table(MY_V4, "trace_b");
    marker_protocol(store.as_mut(), &|sql| my.exec(sql), &my.read(), &b);
}

#[test]
fn mysql_killed_connection_fails_once_then_reconnects() {
    use mysql::prelude::Queryable;
    let mut my = My::new();
    my.exec(MY_V4);
    let mut store = my.open();
    let rows = sample_rows();
    store.write_batch(&rows[..1]).unwrap();
    let ids: Vec<u64> = my
        .admin
        .exec(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()",
            (my.name.clone(),),
        )
        .unwrap();
    assert_eq!(ids.len(), 1, "{ids:?}");
    my.admin.query_drop(format!("KILL {}", ids[0])).unwrap();
    let err = store.write_batch(&rows[1..2]).unwrap_err();
    assert!(err.is_connection(), "{err}");
    store.write_batch(&rows[2..3]).expect("reconnected");
    compare(&my.read()("sip_trace"), &[&rows[0], &rows[2]], 4, SERVER);
}

#[test]
fn mysql_unreachable_and_stalled_servers_are_connection_errors() {
    server_failures("mysql");
}

/// A TCP relay to a real server that, while `trickle` is set, passes the
/// server's bytes on one every 100 ms (for at most 20 s, so that a test of
/// a missing deadline ends too).
struct Trickler {
    port: u16,
    trickle: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Trickler {
    fn new(target: std::net::SocketAddr) -> Trickler {
        use std::io::{Read, Write};
        use std::sync::atomic::AtomicBool;
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let trickle = std::sync::Arc::new(AtomicBool::new(false));
        let flag = trickle.clone();
        std::thread::spawn(move || {
            for client in l.incoming().flatten() {
                let Ok(server) = std::net::TcpStream::connect(target) else {
                    continue;
                };
                let (mut c_in, mut s_out) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    while let Ok(n @ 1..) = c_in.read(&mut buf) {
                        if s_out.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
                let (mut s_in, mut c_out, flag) = (server, client, flag.clone());
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    let mut since: Option<Instant> = None;
                    while let Ok(n @ 1..) = s_in.read(&mut buf) {
                        for b in &buf[..n] {
                            if flag.load(Ordering::SeqCst) {
                                let t = *since.get_or_insert_with(Instant::now);
                                if t.elapsed() > Duration::from_secs(20) {
                                    let _ = c_out.shutdown(std::net::Shutdown::Both);
                                    return;
                                }
                                std::thread::sleep(Duration::from_millis(100));
                            }
                            if c_out.write_all(std::slice::from_ref(b)).is_err() {
                                return;
                            }
                        }
                    }
                    let _ = c_out.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        Trickler { port, trickle }
    }
}

/// The crate's timeouts are per read: a server that trickles its answer
/// must still cost at most the deadline, at login and mid-statement, and
/// the connection comes back once the server behaves.
#[test]
fn mysql_trickling_server_is_cut_at_the_deadline() {
    let o = OpenOptions {
        connect_timeout: Duration::from_millis(500),
        io_timeout: Duration::from_secs(1),
        ..opts()
    };
    // A "server" that trickles its greeting forever.
    let greeter = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = greeter.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::Write;
        for mut c in greeter.incoming().flatten() {
            std::thread::spawn(move || {
                for _ in 0..200 {
                    if c.write_all(b"\x0a").is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
        }
    });
    let t = Instant::now();
    let err = open(&format!("mysql://u@127.0.0.1:{port}/d"), "sip_trace", &o)
        .err()
        .expect("a trickling greeting is no connection");
    assert!(err.is_connection(), "{err}");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());

    // A real server behind a relay that starts trickling mid-exchange.
    let my = My::new();
    my.exec(MY_V4);
    let relay = Trickler::new(std::net::SocketAddr::from((
        [127, 0, 0, 1],
        my.base.get_tcp_port(),
    )));
    let url = my.url().replace(
        &format!(":{}/", my.base.get_tcp_port()),
        &format!(":{}/", relay.port),
    );
    let mut store = open(&url, "sip_trace", &o).expect("open through the relay");
    let rows = sample_rows();
    store.write_batch(&rows[..1]).unwrap();
    relay.trickle.store(true, Ordering::SeqCst);
    let t = Instant::now();
    let err = store.write_batch(&rows[1..2]).unwrap_err();
    assert!(err.is_connection(), "{err}");
    assert!(
        err.to_string()
            .contains("no complete answer within 1000 ms"),
        "{err}"
    );
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    relay.trickle.store(false, Ordering::SeqCst);
    store.write_batch(&rows[2..3]).expect("reconnected");
    // Only the answer was held back: the server did commit row 1 (what the
    // spool's marker exists for when a batch's answer is lost).
    compare(
        &my.read()("sip_trace"),
        &[&rows[0], &rows[1], &rows[2]],
        4,
        SERVER,
    );
}

// ---------------------------------------------------------------- misc

#[test]
fn bad_urls_and_names_are_clear() {
    let e = open("oracle://u@h/d", "sip_trace", &opts()).err().unwrap();
    assert!(matches!(e, DbError::Url(_)), "{e}");
    let e = open("sqlite:///tmp/x.db", "bad name", &opts())
        .err()
        .unwrap();
    assert!(matches!(e, DbError::BadTableName { .. }), "{e}");
    let e = open("sqlite:///nonexistent/dir/x.db", "sip_trace", &opts())
        .err()
        .unwrap();
    assert!(matches!(e, DbError::Io { .. }), "{e}");
}

// ---------------------------------------------------------------- ODBC

/// `unixodbc://` URLs to the test servers, DSN-less (the driver names are
/// those Debian's odbc-postgresql and odbc-mariadb register).
#[cfg(feature = "odbc")]
mod odbc {
    use super::*;

    fn pg_url(pg: &Pg) -> String {
        let user = pg.base.get_user().unwrap_or("postgres");
        let port = pg.base.get_ports().first().copied().unwrap_or(5432);
        format!(
            "unixodbc://{user}@/Driver={{PostgreSQL Unicode}};Server=127.0.0.1;Port={port};Database={}",
            pg.name
        )
    }

    fn my_url(my: &My) -> String {
        let user = my.base.get_user().unwrap_or("root");
        format!(
            "unixodbc://{user}@/Driver={{MariaDB Unicode}};Server=127.0.0.1;Port={};Database={}",
            my.base.get_tcp_port(),
            my.name
        )
    }

    #[test]
    fn odbc_postgres_round_trip_and_reroutes() {
        let pg = Pg::new();
        pg.exec(PG_V4);
        pg.exec(&super::super::schema::script_for_table(PG_V4, "trace_b"));
        let mut store = open(&pg_url(&pg), "sip_trace", &opts()).expect("open odbc");
        roundtrip(store.as_mut(), &pg.read(), 4, SERVER);
        pg.exec("TRUNCATE sip_trace");
        reroutes(store.as_mut(), &pg.read(), SERVER);
    }

    #[test]
    fn odbc_postgres_old_layout() {
        let pg = Pg::new();
        pg.exec(PG_V2);
        let mut store = open(&pg_url(&pg), "sip_trace", &opts()).expect("open odbc");
        roundtrip(store.as_mut(), &pg.read(), 2, SERVER);
    }

    #[test]
    fn odbc_mysql_round_trip_and_reroutes() {
        let my = My::new();
        my.exec(MY_V4);
        my.exec(&super::super::schema::script_for_table(MY_V4, "trace_b"));
        let mut store = open(&my_url(&my), "sip_trace", &opts()).expect("open odbc");
        roundtrip(store.as_mut(), &my.read(), 4, SERVER);
        my.exec("TRUNCATE sip_trace");
        reroutes(store.as_mut(), &my.read(), SERVER);
    }

    #[test]
    fn odbc_missing_table_and_unreachable_server() {
        let pg = Pg::new();
        let e = open(&pg_url(&pg), "sip_trace", &opts())
            .err()
            .expect("no table");
        assert!(matches!(e, DbError::MissingTable { .. }), "{e}");
        let closed = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let url = format!(
            "unixodbc://postgres@/Driver={{PostgreSQL Unicode}};Server=127.0.0.1;Port={closed};Database=x"
        );
        let e = open(&url, "sip_trace", &opts()).err().expect("closed port");
        assert!(e.is_connection(), "{e}");
    }
}
