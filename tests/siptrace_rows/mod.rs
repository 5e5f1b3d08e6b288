//! Rows for the `siptrace` tests (tests/siptrace_cli.rs, tests/siptrace_web.rs):
//! whole calls (through a proxy with per-user copies, CANCEL, 408 with
//! retransmissions) as INSERTs one text serves every SQL backend with, on
//! a SQLite file or a fresh server database.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use crate::common::*;

pub const UAC: &str = "udp:10.0.0.1:5060";
pub const PROXY: &str = "udp:10.0.0.10:5060";
pub const UAS: &str = "udp:10.0.0.2:5080";

/// One row to insert: (seconds after 10:00:00, µs, direction, from, to,
/// traced_user, message).
pub struct R {
    sec: u32,
    us: u32,
    dir: &'static str,
    from: &'static str,
    to: &'static str,
    user: &'static str,
    msg: String,
}

pub fn req(method: &str, callid: &str, cseq: u32, totag: &str, branch: &str) -> String {
    let to_tag = if totag.is_empty() {
        String::new()
    } else {
        format!(";tag={totag}")
    };
    format!(
        "{method} sip:bob@10.0.0.2:5080 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK{branch}\r\n\
         From: \"Alice\" <sip:alice@example.com>;tag=a1\r\n\
         To: <sip:bob@example.com>{to_tag}\r\n\
         Call-ID: {callid}\r\n\
         CSeq: {cseq} {method}\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

pub fn rep(code: u16, reason: &str, method: &str, callid: &str, cseq: u32, totag: &str) -> String {
    let to_tag = if totag.is_empty() {
        String::new()
    } else {
        format!(";tag={totag}")
    };
    format!(
        "SIP/2.0 {code} {reason}\r\n\
         Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx\r\n\
         From: \"Alice\" <sip:alice@example.com>;tag=a1\r\n\
         To: <sip:bob@example.com>{to_tag}\r\n\
         Call-ID: {callid}\r\n\
         CSeq: {cseq} {method}\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

#[allow(clippy::too_many_arguments)]
pub fn r(
    sec: u32,
    us: u32,
    dir: &'static str,
    from: &'static str,
    to: &'static str,
    user: &'static str,
    msg: String,
) -> R {
    R {
        sec,
        us,
        dir,
        from,
        to,
        user,
        msg,
    }
}

/// A completed call through the proxy, each event also stored for the
/// traced user alice (as traced_user_avp does).
pub fn call_rows(c: &str, base: u32) -> Vec<R> {
    let mut v = Vec::new();
    let both = |v: &mut Vec<R>, sec, us, dir, from, to, msg: String| {
        v.push(r(base + sec, us, dir, from, to, "", msg.clone()));
        v.push(r(base + sec, us, dir, from, to, "alice", msg));
    };
    both(
        &mut v,
        0,
        1000,
        "in",
        UAC,
        PROXY,
        req("INVITE", c, 1, "", "i1"),
    );
    both(
        &mut v,
        0,
        1400,
        "out",
        PROXY,
        UAC,
        rep(100, "Trying", "INVITE", c, 1, ""),
    );
    both(
        &mut v,
        0,
        1500,
        "out",
        PROXY,
        UAS,
        req("INVITE", c, 1, "", "i2"),
    );
    both(
        &mut v,
        0,
        90_000,
        "in",
        UAS,
        PROXY,
        rep(180, "Ringing", "INVITE", c, 1, "b1"),
    );
    both(
        &mut v,
        0,
        90_200,
        "out",
        PROXY,
        UAC,
        rep(180, "Ringing", "INVITE", c, 1, "b1"),
    );
    both(
        &mut v,
        2,
        500_000,
        "in",
        UAS,
        PROXY,
        rep(200, "OK", "INVITE", c, 1, "b1"),
    );
    both(
        &mut v,
        2,
        500_300,
        "out",
        PROXY,
        UAC,
        rep(200, "OK", "INVITE", c, 1, "b1"),
    );
    both(
        &mut v,
        2,
        600_000,
        "in",
        UAC,
        PROXY,
        req("ACK", c, 1, "b1", "a1"),
    );
    both(
        &mut v,
        2,
        600_100,
        "out",
        PROXY,
        UAS,
        req("ACK", c, 1, "b1", "a2"),
    );
    both(&mut v, 9, 0, "in", UAC, PROXY, req("BYE", c, 2, "b1", "b1"));
    both(
        &mut v,
        9,
        100,
        "out",
        PROXY,
        UAS,
        req("BYE", c, 2, "b1", "b2"),
    );
    both(
        &mut v,
        9,
        20_000,
        "in",
        UAS,
        PROXY,
        rep(200, "OK", "BYE", c, 2, "b1"),
    );
    both(
        &mut v,
        9,
        20_100,
        "out",
        PROXY,
        UAC,
        rep(200, "OK", "BYE", c, 2, "b1"),
    );
    v
}

/// INVITE, 180, then the caller gives up: CANCEL, 200, 487, ACK.
pub fn cancel_rows(c: &str, base: u32) -> Vec<R> {
    vec![
        r(base, 0, "in", UAC, PROXY, "", req("INVITE", c, 1, "", "i1")),
        r(
            base,
            200,
            "out",
            PROXY,
            UAS,
            "",
            req("INVITE", c, 1, "", "i2"),
        ),
        r(
            base,
            300,
            "out",
            PROXY,
            UAC,
            "",
            rep(100, "Trying", "INVITE", c, 1, ""),
        ),
        r(
            base,
            50_000,
            "in",
            UAS,
            PROXY,
            "",
            rep(180, "Ringing", "INVITE", c, 1, "b1"),
        ),
        r(
            base,
            50_100,
            "out",
            PROXY,
            UAC,
            "",
            rep(180, "Ringing", "INVITE", c, 1, "b1"),
        ),
        r(
            base + 3,
            0,
            "in",
            UAC,
            PROXY,
            "",
            req("CANCEL", c, 1, "", "i1"),
        ),
        r(
            base + 3,
            100,
            "out",
            PROXY,
            UAC,
            "",
            rep(200, "canceling", "CANCEL", c, 1, ""),
        ),
        r(
            base + 3,
            200,
            "out",
            PROXY,
            UAS,
            "",
            req("CANCEL", c, 1, "", "i2"),
        ),
        r(
            base + 3,
            9000,
            "in",
            UAS,
            PROXY,
            "",
            rep(200, "OK", "CANCEL", c, 1, "b1"),
        ),
        r(
            base + 3,
            9500,
            "in",
            UAS,
            PROXY,
            "",
            rep(487, "Request Terminated", "INVITE", c, 1, "b1"),
        ),
        r(
            base + 3,
            9600,
            "out",
            PROXY,
            UAC,
            "",
            rep(487, "Request Terminated", "INVITE", c, 1, "b1"),
        ),
        r(
            base + 3,
            20_000,
            "in",
            UAC,
            PROXY,
            "",
            req("ACK", c, 1, "b1", "i1"),
        ),
    ]
}

/// The callee never answers: the proxy retransmits the INVITE (T1
/// doubling), the caller retransmits too, and the proxy answers 408.
pub fn timeout_rows(c: &str, base: u32) -> Vec<R> {
    vec![
        r(base, 0, "in", UAC, PROXY, "", req("INVITE", c, 1, "", "i1")),
        r(
            base,
            100,
            "out",
            PROXY,
            UAC,
            "",
            rep(100, "Trying", "INVITE", c, 1, ""),
        ),
        r(
            base,
            200,
            "out",
            PROXY,
            UAS,
            "",
            req("INVITE", c, 1, "", "i2"),
        ),
        r(
            base,
            500_200,
            "out",
            PROXY,
            UAS,
            "",
            req("INVITE", c, 1, "", "i2"),
        ),
        r(
            base + 1,
            500_200,
            "out",
            PROXY,
            UAS,
            "",
            req("INVITE", c, 1, "", "i2"),
        ),
        r(
            base + 2,
            0,
            "in",
            UAC,
            PROXY,
            "",
            req("INVITE", c, 1, "", "i1"),
        ),
        r(
            base + 32,
            200,
            "out",
            PROXY,
            UAC,
            "",
            rep(408, "Request Timeout", "INVITE", c, 1, "p1"),
        ),
        r(
            base + 32,
            9000,
            "in",
            UAC,
            PROXY,
            "",
            req("ACK", c, 1, "p1", "i1"),
        ),
    ]
}

/// INSERTs for `calls` (Call-ID, rows) stored on 2024-05-01 from 10:00:00
/// local time on, into a v4 table (or v2 with `v2`): literal values, so
/// that one text serves every SQL backend.
pub fn inserts(v2: bool, calls: &[(&str, Vec<R>)]) -> String {
    let q = |v: &str| format!("'{}'", v.replace('\'', "''"));
    let mut all: Vec<(&str, &R)> = calls
        .iter()
        .flat_map(|(c, rows)| rows.iter().map(move |r| (*c, r)))
        .collect();
    all.sort_by_key(|(_, r)| (r.sec, r.us));
    let mut sql = String::new();
    for (callid, row) in all {
        let stamp = format!(
            "2024-05-01 {:02}:{:02}:{:02}",
            10 + row.sec / 3600,
            (row.sec / 60) % 60,
            row.sec % 60
        );
        let first = row.msg.lines().next().unwrap_or("").to_string();
        let (method, status) = if let Some(rest) = first.strip_prefix("SIP/2.0 ") {
            let cseq = row
                .msg
                .split("CSeq: ")
                .nth(1)
                .unwrap()
                .split("\r\n")
                .next()
                .unwrap();
            (
                cseq.split(' ').nth(1).unwrap().to_string(),
                rest[..3].to_string(),
            )
        } else {
            (first.split(' ').next().unwrap().to_string(), String::new())
        };
        let totag = row
            .msg
            .split("To: ")
            .nth(1)
            .and_then(|t| t.split("\r\n").next())
            .and_then(|t| t.split_once(";tag="))
            .map(|(_, t)| t.to_string())
            .unwrap_or_default();
        let common = [
            q(callid),
            q(row.user),
            q(&row.msg),
            q(&method),
            q(&status),
            q(row.from),
            q(row.to),
            q("a1"),
            q(row.dir),
        ]
        .join(", ");
        if v2 {
            sql.push_str(&format!(
                "INSERT INTO sip_trace (time_stamp, callid, traced_user, msg, method, status, \
                 fromip, toip, fromtag, direction) VALUES ({}, {common});\n",
                q(&stamp)
            ));
        } else {
            sql.push_str(&format!(
                "INSERT INTO sip_trace (time_stamp, time_us, callid, traced_user, msg, method, \
                 status, fromip, toip, fromtag, direction, totag) \
                 VALUES ({}, {}, {common}, {});\n",
                q(&stamp),
                row.us,
                q(&totag)
            ));
        }
    }
    sql
}

pub fn create_script(v2: bool) -> &'static str {
    if v2 {
        "siptrace-v2-create.sql"
    } else {
        "siptrace-create.sql"
    }
}

/// A SQLite file holding [`inserts`].
pub fn sqlite_db(dir: &TempDir, v2: bool, calls: &[(&str, Vec<R>)]) -> PathBuf {
    let path = dir.join(if v2 { "v2.db" } else { "trace.db" });
    let conn = rusqlite::Connection::open(&path).unwrap();
    let script = repo_root().join("sql/sqlite").join(create_script(v2));
    conn.execute_batch(&std::fs::read_to_string(script).unwrap())
        .unwrap();
    conn.execute_batch(&inserts(v2, calls)).unwrap();
    path
}

/// A PostgreSQL or MariaDB database holding [`inserts`].
pub fn server_db(kind: DbKind, v2: bool, calls: &[(&str, Vec<R>)]) -> TestDb {
    let db = TestDb::empty(kind);
    db.apply_script(create_script(v2));
    db.exec(&inserts(v2, calls));
    db
}

pub fn db_arg(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}
