//! Cost of retention batches on SQLite with a million rows: how long one
//! bounded DELETE holds the reactor (docs/decisions.md §14), for the batch
//! sizes the purge adapts between, and the row cap's threshold query.
//!
//! Usage: cargo run --release --example purge_bench [ROWS]
//! (default 1 000 000). The table is sql/sqlite/siptrace-create.sql (four
//! indexes) in a temporary file, filled with ~800-byte messages, random
//! Call-IDs and one OPTIONS in five, time stamps two seconds apart; then
//! the oldest half is purged batch by batch, timing each statement.

use std::time::{Duration, Instant};

use siptraced::db::retention::{Cutoff, PurgeRule};
use siptraced::db::{self, OpenOptions};

fn stats(label: &str, rows: u64, mut times: Vec<Duration>) {
    times.sort();
    let n = times.len().max(1);
    let total: Duration = times.iter().sum();
    let pct = |p: usize| times[(n * p / 100).min(n - 1)];
    println!(
        "{label:<34} {:>6} batches  median {:>6.2} ms  p99 {:>6.2} ms  max {:>6.2} ms  {:>7.0} rows/s",
        times.len(),
        pct(50).as_secs_f64() * 1e3,
        pct(99).as_secs_f64() * 1e3,
        times.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        rows as f64 / total.as_secs_f64().max(1e-9)
    );
}

fn main() {
    let rows: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("ROWS is a number"))
        .unwrap_or(1_000_000);
    let dir = std::env::temp_dir().join(format!("purge-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("trace.db");
    let url = format!("sqlite://{}", path.display());
    let mut store = db::open(&url, "sip_trace", &OpenOptions::default()).unwrap();

    let t = Instant::now();
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "INSERT INTO sip_trace (time_stamp, callid, msg, method, fromip, toip, direction) \
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?1) \
         SELECT datetime('2026-01-01', '+' || (x * 2) || ' seconds'), hex(randomblob(12)), \
         hex(randomblob(400)), CASE WHEN x % 5 = 0 THEN 'OPTIONS' ELSE 'INVITE' END, \
         'udp:192.0.2.1:5060', 'udp:192.0.2.2:5060', 'in' FROM c",
        [rows as i64],
    )
    .unwrap();
    drop(conn);
    println!(
        "filled {rows} rows in {:.1} s ({} MB)",
        t.elapsed().as_secs_f64(),
        std::fs::metadata(&path).unwrap().len() >> 20
    );

    // Rows are 2 s apart from 2026-01-01: the first quarter's cut-off.
    let quarter = |frac: u64| {
        let secs = rows * 2 / frac;
        let base = 1_767_225_600_i64; // 2026-01-01 00:00:00 UTC
        Cutoff {
            sec: base + secs as i64,
            local: format!(
                "2026-01-{:02} {:02}:{:02}:{:02}",
                1 + secs / 86_400,
                secs % 86_400 / 3600,
                secs % 3600 / 60,
                secs % 60
            ),
        }
    };
    let run = |store: &mut Box<dyn db::Backend>,
               label: &str,
               rule: &PurgeRule,
               limit: u32,
               max_batches: usize| {
        let mut times = Vec::new();
        let mut deleted = 0;
        for _ in 0..max_batches {
            let t = Instant::now();
            let n = store.purge_batch(rule, limit).unwrap();
            times.push(t.elapsed());
            deleted += n;
            if n < u64::from(limit) {
                break;
            }
        }
        stats(label, deleted, times);
    };
    // The first eighth of the days, in batches of each size the purge
    // adapts between (the oldest rows first, as the daemon does).
    for (i, limit) in [1000u32, 500, 250, 100].into_iter().enumerate() {
        let rule = PurgeRule::Older {
            before: quarter(32 / (i as u64 + 1)),
            method: None,
        };
        run(
            &mut store,
            &format!("age, batch {limit}"),
            &rule,
            limit,
            200,
        );
    }
    let rule = PurgeRule::Older {
        before: quarter(2),
        method: Some("OPTIONS".into()),
    };
    run(&mut store, "method OPTIONS, batch 1000", &rule, 1000, 100);

    // As the daemon adapts (src/spool/purge.rs): start at 100, halve above
    // 4 ms, double below 2 ms, between 50 and 1000.
    let rule = PurgeRule::Older {
        before: quarter(4),
        method: None,
    };
    let (mut limit, mut times, mut deleted) = (100u32, Vec::new(), 0);
    for _ in 0..2000 {
        let t = Instant::now();
        let n = store.purge_batch(&rule, limit).unwrap();
        let took = t.elapsed();
        times.push(took);
        deleted += n;
        if n < u64::from(limit) {
            break;
        }
        if took > Duration::from_millis(4) {
            limit = (limit / 2).max(50);
        } else if took < Duration::from_millis(2) {
            limit = (limit * 2).min(1000);
        }
    }
    stats(&format!("age, adaptive (ends at {limit})"), deleted, times);

    let keep = rows / 2;
    let t = Instant::now();
    let threshold = store.row_cap_threshold(keep).unwrap();
    println!(
        "row cap threshold (keep {keep})        {:.2} ms -> id {threshold:?}",
        t.elapsed().as_secs_f64() * 1e3
    );
    if let Some(id) = threshold {
        run(
            &mut store,
            "row cap, batch 1000",
            &PurgeRule::IdBelow(id),
            1000,
            100,
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
