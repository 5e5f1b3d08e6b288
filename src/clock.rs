//! Wall-clock values as data, and their local-time renderings.
//!
//! `WallTime::now` is the one read of the system clock; the reactor calls
//! it once per turn and once per received datagram (ARCHITECTURE.md lists
//! the start-up and control-plane exceptions) and passes the value down. The formatting functions are pure apart from the
//! process's time zone (libc `localtime_r`, which honours TZ as Kamailio does).

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds and microseconds since the Unix epoch: what `gettimeofday` gives
/// Kamailio for `time_stamp` and `time_us`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct WallTime {
    pub sec: i64,
    pub usec: u32,
}

impl WallTime {
    pub fn now() -> WallTime {
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        WallTime {
            sec: d.as_secs() as i64,
            usec: d.subsec_micros(),
        }
    }
}

/// Broken-down local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTm {
    pub year: i32,
    pub mon: u32,
    pub mday: u32,
    pub hour: u32,
    pub min: u32,
    pub sec: u32,
    pub wday: u32,
}

#[allow(unsafe_code)]
pub fn local_tm(secs: i64) -> LocalTm {
    let t: libc::time_t = secs as libc::time_t;
    // SAFETY: `tm` is plain old data that localtime_r fills in; both pointers
    // are valid for the duration of the call, and localtime_r is the
    // re-entrant variant (no static buffer).
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            // Only fails for absurd years; UTC epoch is a sane fallback.
            return LocalTm {
                year: 1970,
                mon: 1,
                mday: 1,
                hour: 0,
                min: 0,
                sec: 0,
                wday: 4,
            };
        }
        tm
    };
    LocalTm {
        year: tm.tm_year + 1900,
        mon: (tm.tm_mon + 1) as u32,
        mday: tm.tm_mday as u32,
        hour: tm.tm_hour as u32,
        min: tm.tm_min as u32,
        sec: tm.tm_sec as u32,
        wday: tm.tm_wday as u32,
    }
}

/// `YYYY-MM-DD HH:MM:SS` in local time: the `time_stamp` text every backend
/// stores (docs/decisions.md §2) and the `db_state` "down since" text.
pub fn local_datetime(secs: i64) -> String {
    let t = local_tm(secs);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year, t.mon, t.mday, t.hour, t.min, t.sec
    )
}

/// ctime(3) text without its trailing newline, e.g. `Thu Feb  5 12:00:00 2009`:
/// what Kamailio's `uptime` MI command and `core.uptime` print.
pub fn ctime(secs: i64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t = local_tm(secs);
    format!(
        "{} {} {:>2} {:02}:{:02}:{:02} {}",
        DAYS[t.wday as usize % 7],
        MONS[(t.mon as usize + 11) % 12],
        t.mday,
        t.hour,
        t.min,
        t.sec,
        t.year
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_local_time_like_libc() {
        // The test process may run in any zone; compare against libc's own
        // rendering through the same zone by using a zone-independent check:
        // the formats' shapes and a round trip of the fields.
        let s = local_datetime(1_234_567_890);
        assert_eq!(s.len(), 19, "{s}");
        assert_eq!(&s[4..5], "-");
        let c = ctime(1_234_567_890);
        assert_eq!(c.len(), 24, "{c}");
        assert!(c.ends_with("2009"), "{c}");
        let t = local_tm(1_234_567_890);
        assert_eq!(
            s,
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
                t.year, t.mon, t.mday, t.hour, t.min, t.sec
            )
        );
    }
}
