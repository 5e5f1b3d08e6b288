//! The SQLite engine's INSERT statement, with text values bound in place.
//!
//! rusqlite binds every text as `SQLITE_TRANSIENT`: SQLite allocates and
//! copies each value, builds the row's record from the copy, then frees
//! it. A traced row binds nine texts, its message among them; callgrind
//! measured the copies at ~3,000 instructions per row (~5% of a traced
//! call). Bound `SQLITE_STATIC`, SQLite reads our bytes where they are,
//! once, while it builds the record. The bytes outlive that: a row is bound,
//! stepped and reset while the caller holds it, and the bindings are cleared
//! before [`Insert::row`] returns, so no pointer into a row is kept.
//!
//! The only unsafe code of the database layer lives here, over rusqlite's
//! own `ffi` (libsqlite3-sys) and the connection's handle. Depends on
//! rusqlite and `db::Value` only.

#![allow(unsafe_code)]

use std::ffi::{CStr, c_char, c_int};
use std::ptr::NonNull;

use rusqlite::{Connection, ffi};

use super::Value;

/// A prepared statement owned outside rusqlite's cache. It must be dropped
/// before its connection (the engine declares it first).
pub(crate) struct Insert {
    stmt: NonNull<ffi::sqlite3_stmt>,
    params: usize,
}

// SAFETY: the statement moves only together with the connection that owns
// it (both are fields of the one engine, which the trace writer thread
// takes whole), and is never used from two threads at once. Bundled SQLite
// is built thread-safe (SQLITE_THREADSAFE=1), so a handle may change
// threads between calls, as rusqlite's `Connection: Send` already relies on.
unsafe impl Send for Insert {}

impl Insert {
    pub(crate) fn prepare(conn: &Connection, sql: &str) -> rusqlite::Result<Insert> {
        let len = c_int::try_from(sql.len()).map_err(|_| rusqlite::Error::InvalidQuery)?;
        let mut stmt = std::ptr::null_mut();
        // SAFETY: the handle is the live connection's; the SQL text is
        // read for `len` bytes during the call only; `stmt` is an out
        // pointer SQLite fills.
        let rc = unsafe {
            ffi::sqlite3_prepare_v3(
                conn.handle(),
                sql.as_ptr().cast::<c_char>(),
                len,
                ffi::SQLITE_PREPARE_PERSISTENT,
                &mut stmt,
                std::ptr::null_mut(),
            )
        };
        if rc != ffi::SQLITE_OK {
            return Err(error(conn, rc));
        }
        let stmt = NonNull::new(stmt).ok_or(rusqlite::Error::InvalidQuery)?;
        // SAFETY: a statement just prepared.
        let params = unsafe { ffi::sqlite3_bind_parameter_count(stmt.as_ptr()) };
        Ok(Insert {
            stmt,
            params: usize::try_from(params).unwrap_or(0),
        })
    }

    /// Inserts one row: `values` in parameter order (`?1`, `?2`…).
    pub(crate) fn row<'a>(
        &mut self,
        conn: &Connection,
        values: impl Iterator<Item = Value<'a>>,
    ) -> rusqlite::Result<()> {
        let st = self.stmt.as_ptr();
        let mut n = 0;
        let mut rc = ffi::SQLITE_OK;
        for v in values {
            n += 1;
            if n > self.params {
                break;
            }
            let idx = n as c_int;
            rc = match v {
                // SAFETY: `b` is borrowed for 'a, which spans this call;
                // SQLITE_STATIC makes SQLite read it in place, and the
                // binding is cleared below before the call returns.
                Value::Text(b) => unsafe {
                    ffi::sqlite3_bind_text64(
                        st,
                        idx,
                        b.as_ptr().cast::<c_char>(),
                        b.len() as u64,
                        ffi::SQLITE_STATIC(),
                        ffi::SQLITE_UTF8 as u8,
                    )
                },
                // SAFETY: a live statement; an integer is copied.
                Value::Int(i) => unsafe { ffi::sqlite3_bind_int64(st, idx, i) },
            };
            if rc != ffi::SQLITE_OK {
                break;
            }
        }
        let result = if rc != ffi::SQLITE_OK {
            Err(error(conn, rc))
        } else if n != self.params {
            // `n` counts values up to one past the statement's parameters.
            Err(rusqlite::Error::InvalidParameterCount(n, self.params))
        } else {
            // SAFETY: every parameter is bound to memory alive here.
            match unsafe { ffi::sqlite3_step(st) } {
                ffi::SQLITE_DONE => Ok(()),
                _ => Err(error(conn, unsafe { ffi::sqlite3_reset(st) })),
            }
        };
        // SAFETY: a live statement. Reset lets it run again (its error,
        // if any, was taken above); clearing drops the pointers into the
        // caller's row.
        unsafe {
            ffi::sqlite3_reset(st);
            ffi::sqlite3_clear_bindings(st);
        }
        result
    }
}

impl Drop for Insert {
    fn drop(&mut self) {
        // SAFETY: finalised once, here; the connection is still open (the
        // engine drops its statements first).
        unsafe {
            ffi::sqlite3_finalize(self.stmt.as_ptr());
        }
    }
}

/// The connection's error for `rc`, as rusqlite reports errors, so that
/// the engine classifies it the same way (busy, constraint, schema…).
fn error(conn: &Connection, rc: c_int) -> rusqlite::Error {
    // SAFETY: the live connection's handle; SQLite returns a NUL-terminated
    // string it owns, valid until the next call on the connection, copied
    // at once.
    let msg = unsafe {
        let p = ffi::sqlite3_errmsg(conn.handle());
        (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned())
    };
    rusqlite::Error::SqliteFailure(ffi::Error::new(rc), msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE t (a TEXT NOT NULL, b INTEGER NOT NULL, c TEXT UNIQUE)")
            .unwrap();
        c
    }

    #[test]
    fn rows_go_in_byte_for_byte_and_the_statement_is_reused() {
        let c = conn();
        let mut ins = Insert::prepare(&c, "INSERT INTO t (a, b, c) VALUES (?1, ?2, ?3)").unwrap();
        let odd: &[u8] = b"nul\0and \xff invalid";
        for (i, a) in [odd, b"", b"plain"].into_iter().enumerate() {
            let own = format!("c{i}").into_bytes();
            ins.row(
                &c,
                [Value::Text(a), Value::Int(i as i64), Value::Text(&own)].into_iter(),
            )
            .unwrap();
            // The row's bytes go away: SQLite kept none of them.
            drop(own);
        }
        let got: Vec<(Vec<u8>, i64, String)> = c
            .prepare("SELECT CAST(a AS BLOB), b, c FROM t ORDER BY b")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            got,
            vec![
                (odd.to_vec(), 0, "c0".to_string()),
                (Vec::new(), 1, "c1".to_string()),
                (b"plain".to_vec(), 2, "c2".to_string()),
            ]
        );
    }

    #[test]
    fn a_failed_row_reports_sqlites_error_and_the_next_one_goes_in() {
        let c = conn();
        let mut ins = Insert::prepare(&c, "INSERT INTO t (a, b, c) VALUES (?1, ?2, ?3)").unwrap();
        let row = |c: &'static [u8]| [Value::Text(b"x"), Value::Int(1), Value::Text(c)];
        ins.row(&c, row(b"same").into_iter()).unwrap();
        let e = ins.row(&c, row(b"same").into_iter()).unwrap_err();
        match &e {
            rusqlite::Error::SqliteFailure(f, Some(msg)) => {
                assert_eq!(f.code, rusqlite::ErrorCode::ConstraintViolation);
                assert!(msg.contains("UNIQUE"), "{msg}");
            }
            other => panic!("{other:?}"),
        }
        ins.row(&c, row(b"other").into_iter()).unwrap();
        let n: i64 = c
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2);
        // Too few or too many values: refused before any step.
        assert!(matches!(
            ins.row(&c, row(b"z")[..2].iter().copied()),
            Err(rusqlite::Error::InvalidParameterCount(2, 3))
        ));
        let mut four = row(b"y").to_vec();
        four.push(Value::Int(9));
        assert!(matches!(
            ins.row(&c, four.into_iter()),
            Err(rusqlite::Error::InvalidParameterCount(4, 3))
        ));
        let n: i64 = c
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2);
    }

    #[test]
    fn bad_sql_is_refused_at_prepare() {
        let c = conn();
        let e = Insert::prepare(&c, "INSERT INTO nowhere (a) VALUES (?1)")
            .err()
            .unwrap();
        assert!(e.to_string().contains("no such table"), "{e}");
    }
}
