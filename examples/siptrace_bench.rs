//! How fast `siptrace calls` finds a call in a big table: fills a fresh
//! table with 1 000 000 rows (100 000 calls of 10 rows, ~600-byte
//! messages, 1 000 callers, spread over 10 days ending now) through the
//! daemon's own row store, then times, through `siptraced::inspect`, the
//! two searches people run most: one Call-ID, and one user within a
//! one-hour window. Target: under 200 ms each.
//!
//! Usage: cargo run --release --example siptrace_bench [sqlite|postgres|mysql …]
//! (scripts/siptrace-bench). Servers as for examples/db_bench.rs
//! (SIPTRACED_TEST_PG_URL, SIPTRACED_TEST_MYSQL_URL); each run uses a fresh
//! database, dropped at the end. SIPTRACE_BENCH_ROWS changes the row count.

use std::time::{Duration, Instant};

use siptraced::clock::{WallTime, local_datetime};
use siptraced::db::{self, OpenOptions, Row};
use siptraced::inspect::call::Filter;
use siptraced::inspect::source::Source;

const ROWS_PER_CALL: usize = 10;
const USERS: usize = 1000;
const SPAN_SECS: i64 = 10 * 86_400;
const BATCH: usize = 5000;
/// Each query is run this many times; the median is reported.
const RUNS: usize = 7;

fn rows_wanted() -> usize {
    std::env::var("SIPTRACE_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

fn msg(call: usize, k: usize, user: usize) -> (Vec<u8>, &'static str, &'static str) {
    let (first, method, status) = match k {
        0 | 1 => (
            "INVITE sip:bob@example.com SIP/2.0".to_string(),
            "INVITE",
            "",
        ),
        2..=3 => ("SIP/2.0 180 Ringing".to_string(), "INVITE", "180"),
        4..=5 => ("SIP/2.0 200 OK".to_string(), "INVITE", "200"),
        6..=7 => ("ACK sip:bob@example.com SIP/2.0".to_string(), "ACK", ""),
        _ => ("BYE sip:bob@example.com SIP/2.0".to_string(), "BYE", ""),
    };
    let mut m = format!(
        "{first}\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-{call}-{k}\r\n\
         From: <sip:user{user}@example.com>;tag=ft{call}\r\n\
         To: <sip:bob@example.com>\r\n\
         Call-ID: bench-{call}@example.com\r\n\
         CSeq: 1 {method}\r\nMax-Forwards: 70\r\n\
         Contact: <sip:user{user}@192.0.2.1:5060>\r\n"
    )
    .into_bytes();
    while m.len() < 580 {
        m.extend_from_slice(b"X-Padding: 0123456789abcdef0123456789abcdef\r\n");
    }
    m.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    (m, method, status)
}

/// Fill the table at `url`; returns (a Call-ID in the middle, its user,
/// the hour around that call).
fn fill(url: &str, n: usize) -> Result<(String, String, i64), String> {
    let mut store =
        db::open(url, "sip_trace", &OpenOptions::default()).map_err(|e| e.to_string())?;
    let calls = n / ROWS_PER_CALL;
    let now = WallTime::now().sec;
    let start = now - SPAN_SECS;
    let t0 = Instant::now();
    let mut batch = Vec::with_capacity(BATCH);
    for c in 0..calls {
        let sec = start + (c as i64 * SPAN_SECS) / calls.max(1) as i64;
        let user = c % USERS;
        for k in 0..ROWS_PER_CALL {
            let (m, method, status) = msg(c, k, user);
            let (from, to) = if k % 2 == 0 {
                ("udp:192.0.2.1:5060", "udp:192.0.2.10:5060")
            } else {
                ("udp:192.0.2.10:5060", "udp:192.0.2.2:5060")
            };
            batch.push(Row {
                table: None,
                msg: m.into(),
                callid: format!("bench-{c}@example.com").into(),
                method: method.into(),
                status: status.into(),
                fromip: from.into(),
                toip: to.into(),
                time_sec: sec + (k as i64) / 3,
                time_us: (k as u32) * 1000,
                time_stamp: local_datetime(sec + (k as i64) / 3).into(),
                direction: if k % 2 == 0 { "in" } else { "out" },
                fromtag: format!("ft{c}").into(),
                totag: "".into(),
                traced_user: String::new(),
            });
            if batch.len() == BATCH {
                store.write_batch(&batch).map_err(|e| e.to_string())?;
                batch.clear();
            }
        }
    }
    if !batch.is_empty() {
        store.write_batch(&batch).map_err(|e| e.to_string())?;
    }
    println!("  filled {n} rows in {:.1} s", t0.elapsed().as_secs_f64());
    let mid = calls / 2;
    let mid_sec = start + (mid as i64 * SPAN_SECS) / calls.max(1) as i64;
    Ok((
        format!("bench-{mid}@example.com"),
        format!("user{}", mid % USERS),
        mid_sec,
    ))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time_query(url: &str, f: &Filter, expect_at_least: usize) -> Result<(Duration, usize), String> {
    let mut times = Vec::new();
    let mut found = 0;
    for _ in 0..RUNS {
        let t = Instant::now();
        // Opening is part of what a user waits for.
        let mut src = Source::open(url, "sip_trace").map_err(|e| e.to_string())?;
        let calls = src.calls(f, 50).map_err(|e| e.to_string())?;
        times.push(t.elapsed());
        found = calls.len();
    }
    if found < expect_at_least {
        return Err(format!(
            "found {found} calls, expected at least {expect_at_least}"
        ));
    }
    Ok((median(times), found))
}

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", std::process::id())
}

fn sqlite() -> Result<(), String> {
    let dir = std::env::temp_dir().join(unique("siptrace_bench"));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let r = measure_after(&format!("sqlite://{}/trace.db", dir.display()), || Ok(()));
    let _ = std::fs::remove_dir_all(&dir);
    r
}

fn postgres() -> Result<(), String> {
    let admin_url = std::env::var("SIPTRACED_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let base: tokio_postgres::Config = admin_url.parse().map_err(|e| format!("{e}"))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let connect = |cfg: &tokio_postgres::Config| -> Result<tokio_postgres::Client, String> {
        let (c, conn) = rt
            .block_on(cfg.connect(tokio_postgres::NoTls))
            .map_err(|e| format!("PostgreSQL: {e}"))?;
        rt.spawn(async move {
            let _ = conn.await;
        });
        Ok(c)
    };
    let admin = connect(&base)?;
    let name = unique("siptrace_bench");
    let run = |sql: &str| {
        rt.block_on(admin.batch_execute(sql))
            .map_err(|e| e.to_string())
    };
    run(&format!("CREATE DATABASE {name}"))?;
    let r = (|| {
        let mut cfg = base.clone();
        cfg.dbname(&name);
        let c = connect(&cfg)?;
        rt.block_on(c.batch_execute(include_str!("../sql/postgres/siptrace-create.sql")))
            .map_err(|e| e.to_string())?;
        let user = base.get_user().unwrap_or("postgres");
        let port = base.get_ports().first().copied().unwrap_or(5432);
        let url = format!("postgres://{user}@127.0.0.1:{port}/{name}");
        // Fresh statistics, as autovacuum would give a table this size.
        let out = measure_after(&url, || {
            rt.block_on(c.batch_execute("ANALYZE sip_trace"))
                .map_err(|e| e.to_string())
        });
        drop(c);
        out
    })();
    run(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))?;
    r
}

/// `measure`, with `prepare` run between filling and querying.
fn measure_after(url: &str, prepare: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    let name = url.split(':').next().unwrap_or("db");
    let n = rows_wanted();
    println!("{name}: {}", url.split('@').next_back().unwrap_or(url));
    let (callid, user, sec) = fill(url, n)?;
    prepare()?;
    report_queries(url, callid, user, sec)
}

fn report_queries(url: &str, callid: String, user: String, sec: i64) -> Result<(), String> {
    let cases = [
        (
            "--callid ID",
            Filter {
                callid: Some(callid),
                ..Filter::default()
            },
        ),
        (
            "--user U --since T --until T+1h",
            Filter {
                user: Some(user.clone()),
                since: Some(local_datetime(sec - 1800)),
                until: Some(local_datetime(sec + 1800)),
                ..Filter::default()
            },
        ),
        (
            "--since T --until T+15m (limit 50)",
            Filter {
                since: Some(local_datetime(sec - 900)),
                until: Some(local_datetime(sec)),
                ..Filter::default()
            },
        ),
        (
            "--user U, no window (scans msg)",
            Filter {
                user: Some(user),
                ..Filter::default()
            },
        ),
    ];
    for (label, f) in cases {
        let (t, k) = time_query(url, &f, 1)?;
        println!(
            "  {label:<38}{:>8.1} ms  ({k} calls)",
            t.as_secs_f64() * 1e3
        );
    }
    Ok(())
}

fn mysql() -> Result<(), String> {
    use mysql::prelude::Queryable;
    let admin_url = std::env::var("SIPTRACED_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/mysql".into());
    let base = mysql::Opts::from_url(&admin_url).map_err(|e| e.to_string())?;
    let mut admin = mysql::Conn::new(base.clone()).map_err(|e| format!("MySQL: {e}"))?;
    let name = unique("siptrace_bench");
    admin
        .query_drop(format!("CREATE DATABASE {name}"))
        .map_err(|e| e.to_string())?;
    let r = (|| {
        let o = mysql::OptsBuilder::from_opts(base.clone()).db_name(Some(name.clone()));
        let mut c = mysql::Conn::new(o).map_err(|e| e.to_string())?;
        c.query_drop(include_str!("../sql/mysql/siptrace-create.sql"))
            .map_err(|e| e.to_string())?;
        let user = base.get_user().unwrap_or("root");
        let port = base.get_tcp_port();
        let url = format!("mysql://{user}@127.0.0.1:{port}/{name}");
        measure_after(&url, || {
            c.query_drop("ANALYZE TABLE sip_trace")
                .map_err(|e| e.to_string())
        })
    })();
    admin
        .query_drop(format!("DROP DATABASE IF EXISTS {name}"))
        .map_err(|e| e.to_string())?;
    r
}

fn main() {
    let mut which: Vec<String> = std::env::args().skip(1).collect();
    if which.is_empty() {
        which = vec!["sqlite".into()];
    }
    let mut failed = false;
    for w in which {
        let r = match w.as_str() {
            "sqlite" => sqlite(),
            "postgres" => postgres(),
            "mysql" => mysql(),
            other => Err(format!("unknown backend {other} (sqlite, postgres, mysql)")),
        };
        if let Err(e) = r {
            eprintln!("{w}: {e}");
            failed = true;
        }
    }
    if failed {
        std::process::exit(1);
    }
}
