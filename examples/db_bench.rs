//! Throughput of the row store per backend: rows/s with batches of 1000 into
//! an empty table, then one row per transaction, with ~800-byte messages and
//! distinct Call-IDs (as traffic has: index inserts land all over).
//!
//! Usage: cargo run --release --example db_bench [sqlite|postgres|mysql|text …]
//! (with `--features odbc`, also `odbc-postgres` and `odbc-mysql`: the same
//! servers through unixODBC and the Debian drivers).
//! Servers: PostgreSQL and MariaDB/MySQL on 127.0.0.1 (admin URLs from
//! SIPTRACED_TEST_PG_URL / SIPTRACED_TEST_MYSQL_URL, defaults
//! postgres://postgres@127.0.0.1:5432/postgres and
//! mysql://root@127.0.0.1:3306/mysql). Each run uses a fresh database,
//! dropped at the end. For PostgreSQL it also times the alternative the store
//! does not use (a prepared single-row INSERT executed per row, 1000 per
//! transaction) so the choice of `unnest` stays checked.

use std::time::{Duration, Instant};

use siptraced::db::{self, OpenOptions, Row};

/// Batch size of the batched mode: the daemon's default db_batch_rows.
const BATCH: usize = 1000;
/// Rows written in batched mode.
const BATCHED_ROWS: usize = 100_000;
/// Wall time spent in one-row-per-transaction mode (it is slow by nature).
const SINGLE_BUDGET: Duration = Duration::from_secs(3);

fn sample(n: usize) -> Row {
    let mut msg = format!(
        "INVITE sip:bob@example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-{n}\r\n\
         From: <sip:alice@example.com>;tag=ft{n}\r\n\
         To: <sip:bob@example.com>\r\n\
         Call-ID: bench-{n}@example.com\r\n\
         CSeq: 1 INVITE\r\nMax-Forwards: 70\r\n\
         Contact: <sip:alice@192.0.2.1:5060>\r\n\
         Content-Type: application/sdp\r\n"
    )
    .into_bytes();
    while msg.len() < 780 {
        msg.extend_from_slice(b"a=x-padding:0123456789abcdef\r\n");
    }
    msg.extend_from_slice(b"\r\n");
    Row {
        table: None,
        msg: msg.into(),
        callid: format!(
            "{:016x}@example.com",
            (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        )
        .into(),
        method: "INVITE".into(),
        status: "".into(),
        fromip: "udp:192.0.2.1:5060".into(),
        toip: "udp:192.0.2.2:5060".into(),
        time_sec: 1_790_000_000,
        time_us: (n % 1_000_000) as u32,
        time_stamp: "2026-09-21 10:20:30".into(),
        direction: "in",
        fromtag: format!("ft{n}").into(),
        totag: "".into(),
        traced_user: String::new(),
    }
}

struct Figures {
    single: f64,
    batched: f64,
}

fn measure(url: &str) -> Result<Figures, db::DbError> {
    let mut store = db::open(url, "sip_trace", &OpenOptions::default())?;
    let rows: Vec<Row> = (0..BATCHED_ROWS).map(sample).collect();
    // Batches of BATCH rows, into the empty table.
    let t = Instant::now();
    for chunk in rows.chunks(BATCH) {
        store.write_batch(chunk)?;
    }
    let batched = BATCHED_ROWS as f64 / t.elapsed().as_secs_f64();
    // One row per transaction, for a fixed time.
    let t = Instant::now();
    let mut n = 0usize;
    while t.elapsed() < SINGLE_BUDGET {
        store.write_batch(std::slice::from_ref(&rows[n % BATCHED_ROWS]))?;
        n += 1;
    }
    let single = n as f64 / t.elapsed().as_secs_f64();
    Ok(Figures { single, batched })
}

fn report(name: &str, r: Result<Figures, String>) {
    match r {
        Ok(f) => println!(
            "{name:<10} 1 row/txn: {:>9.0} rows/s   batch {BATCH}: {:>9.0} rows/s",
            f.single, f.batched
        ),
        Err(e) => println!("{name:<10} FAILED: {e}"),
    }
}

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", std::process::id())
}

fn bench_sqlite() -> Result<Figures, String> {
    let dir = std::env::temp_dir().join(unique("siptraced_bench_sqlite"));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let r = measure(&format!("sqlite://{}/bench.db", dir.display())).map_err(|e| e.to_string());
    let _ = std::fs::remove_dir_all(&dir);
    r
}

fn bench_text() -> Result<Figures, String> {
    let dir = std::env::temp_dir().join(unique("siptraced_bench_text"));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let r = measure(&format!("text://{}", dir.display())).map_err(|e| e.to_string());
    let _ = std::fs::remove_dir_all(&dir);
    r
}

fn pg_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn pg_connect(
    rt: &tokio::runtime::Runtime,
    cfg: &tokio_postgres::Config,
) -> Result<tokio_postgres::Client, String> {
    let (c, conn) = rt
        .block_on(cfg.connect(tokio_postgres::NoTls))
        .map_err(|e| format!("PostgreSQL: {e}"))?;
    rt.spawn(async move {
        let _ = conn.await;
    });
    Ok(c)
}

fn bench_postgres() -> Result<Figures, String> {
    bench_postgres_via(false)
}

fn bench_postgres_via(odbc: bool) -> Result<Figures, String> {
    let admin_url = std::env::var("SIPTRACED_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let base: tokio_postgres::Config = admin_url.parse().map_err(|e| format!("{e}"))?;
    let rt = pg_runtime();
    let admin = pg_connect(&rt, &base)?;
    let name = unique("siptraced_bench");
    let run = |sql: &str| {
        rt.block_on(admin.batch_execute(sql))
            .map_err(|e| e.to_string())
    };
    run(&format!("CREATE DATABASE {name}"))?;
    let result = (|| {
        let mut cfg = base.clone();
        cfg.dbname(&name);
        let c = pg_connect(&rt, &cfg)?;
        rt.block_on(c.batch_execute(include_str!("../sql/postgres/siptrace-create.sql")))
            .map_err(|e| e.to_string())?;
        let user = base.get_user().unwrap_or("postgres");
        let port = base.get_ports().first().copied().unwrap_or(5432);
        let f = measure(&store_url(
            format!("postgres://{user}@127.0.0.1:{port}/{name}"),
            odbc.then_some(("PostgreSQL Unicode", user, port, name.as_str())),
        ))
        .map_err(|e| e.to_string())?;
        if odbc {
            return Ok(f);
        }
        let per_row = pg_per_row(&rt, &c)?;
        println!(
            "postgres   (alternative: prepared 1-row INSERT per row, {BATCH}/txn: {per_row:.0} rows/s)"
        );
        Ok(f)
    })();
    run(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))?;
    result
}

/// The alternative to `unnest`: one prepared single-row INSERT per row.
fn pg_per_row(rt: &tokio::runtime::Runtime, c: &tokio_postgres::Client) -> Result<f64, String> {
    let rows: Vec<Row> = (0..BATCH).map(sample).collect();
    let e = |e: tokio_postgres::Error| e.to_string();
    rt.block_on(async {
        let stmt = c
            .prepare(
                "INSERT INTO sip_trace (msg, callid, method, status, fromip, toip, time_stamp, \
                 direction, fromtag, traced_user, time_us, totag) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7::text::timestamp, $8, $9, $10, $11, $12)",
            )
            .await
            .map_err(e)?;
        let t = Instant::now();
        let rounds = 20;
        for _ in 0..rounds {
            c.batch_execute("BEGIN").await.map_err(e)?;
            for r in &rows {
                let msg = String::from_utf8_lossy(&r.msg);
                let us = r.time_us as i32;
                c.execute(
                    &stmt,
                    &[
                        &msg,
                        &&*r.callid,
                        &&*r.method,
                        &&*r.status,
                        &&*r.fromip,
                        &&*r.toip,
                        &&*r.time_stamp,
                        &r.direction,
                        &&*r.fromtag,
                        &r.traced_user,
                        &us,
                        &&*r.totag,
                    ],
                )
                .await
                .map_err(e)?;
            }
            c.batch_execute("COMMIT").await.map_err(e)?;
        }
        Ok((rounds * BATCH) as f64 / t.elapsed().as_secs_f64())
    })
}

/// The store URL for a bench database: native, or through unixODBC with the
/// Debian driver (`odbc` feature).
fn store_url(native: String, odbc: Option<(&str, &str, u16, &str)>) -> String {
    match odbc {
        None => native,
        Some((driver, user, port, db)) => format!(
            "unixodbc://{user}@/Driver={{{driver}}};Server=127.0.0.1;Port={port};Database={db}"
        ),
    }
}

fn bench_mysql() -> Result<Figures, String> {
    bench_mysql_via(false)
}

fn bench_mysql_via(odbc: bool) -> Result<Figures, String> {
    use mysql::prelude::Queryable;
    let admin_url = std::env::var("SIPTRACED_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/mysql".into());
    let base = mysql::Opts::from_url(&admin_url).map_err(|e| e.to_string())?;
    let mut admin = mysql::Conn::new(base.clone()).map_err(|e| format!("MySQL: {e}"))?;
    let name = unique("siptraced_bench");
    admin
        .query_drop(format!("CREATE DATABASE {name}"))
        .map_err(|e| e.to_string())?;
    let result = (|| {
        let o = mysql::OptsBuilder::from_opts(base.clone()).db_name(Some(name.clone()));
        let mut c = mysql::Conn::new(o).map_err(|e| e.to_string())?;
        c.query_drop(include_str!("../sql/mysql/siptrace-create.sql"))
            .map_err(|e| e.to_string())?;
        let user = base.get_user().unwrap_or("root");
        let port = base.get_tcp_port();
        measure(&store_url(
            format!("mysql://{user}@127.0.0.1:{port}/{name}"),
            odbc.then_some(("MariaDB Unicode", user, port, name.as_str())),
        ))
        .map_err(|e| e.to_string())
    })();
    admin
        .query_drop(format!("DROP DATABASE IF EXISTS {name}"))
        .map_err(|e| e.to_string())?;
    result
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let want = |name: &str| args.is_empty() || args.iter().any(|a| a == name);
    println!(
        "rows of ~{} bytes; 1 row/txn for {} s, then {BATCHED_ROWS} rows in batches of {BATCH}",
        sample(0).msg.len(),
        SINGLE_BUDGET.as_secs()
    );
    if want("sqlite") {
        report("sqlite", bench_sqlite());
    }
    if want("postgres") {
        report("postgres", bench_postgres());
    }
    if want("mysql") {
        report("mysql", bench_mysql());
    }
    if want("text") {
        report("text", bench_text());
    }
    // Through unixODBC (build with --features odbc; asked for by name only).
    if args.iter().any(|a| a == "odbc-postgres") {
        report("odbc-pg", bench_postgres_via(true));
    }
    if args.iter().any(|a| a == "odbc-mysql") {
        report("odbc-mysql", bench_mysql_via(true));
    }
}
