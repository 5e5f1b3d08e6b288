//! Times as `siptrace` reads and writes them: the `--since`/`--until`
//! arguments (a duration back from now, or a local time), and the local
//! `time_stamp` text every backend stores (docs/decisions.md §2) turned
//! back into Unix seconds for pcap timestamps.
//!
//! Pure apart from the process's time zone, which [`crate::clock::local_tm`]
//! reads (TZ honoured, as the daemon does when it writes the rows); the
//! caller hands `now` in.

use crate::clock::{local_datetime, local_tm};

/// Why a `--since`/`--until` value is not a time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WhenError {
    #[error(
        "{0:?} is neither a duration (15m, 2h, 3d, 1w, 90s) nor a local time \
         (YYYY-MM-DD[ HH:MM[:SS]])"
    )]
    Unreadable(String),
    #[error("{0:?}: {1} out of range")]
    OutOfRange(String, &'static str),
}

/// Which end of a window a value is for: a local time given to the day or
/// minute covers that whole day or minute, so `--until 2024-05-01` takes
/// the day in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Since,
    Until,
}

/// A `--since`/`--until` value as the local `YYYY-MM-DD HH:MM:SS` text the
/// `time_stamp` column holds: SQL compares it with the column directly,
/// so the index on time_stamp serves the window.
pub fn parse_when(s: &str, end: End, now_sec: i64) -> Result<String, WhenError> {
    let s = s.trim();
    if let Some(secs) = parse_duration(s) {
        return Ok(local_datetime(now_sec - secs));
    }
    let bad = || WhenError::Unreadable(s.to_string());
    let (date, time) = match s.split_once([' ', 'T']) {
        Some((d, t)) => (d, Some(t.trim())),
        None => (s, None),
    };
    let d: Vec<&str> = date.split('-').collect();
    if d.len() != 3 || d[0].len() != 4 || d[1].len() != 2 || d[2].len() != 2 {
        return Err(bad());
    }
    let num = |v: &str| -> Result<u32, WhenError> {
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        v.parse().map_err(|_| bad())
    };
    let (y, mo, day) = (num(d[0])?, num(d[1])?, num(d[2])?);
    if !(1..=12).contains(&mo) {
        return Err(WhenError::OutOfRange(s.to_string(), "month"));
    }
    if day == 0 || day > days_in_month(y as i64, mo) {
        return Err(WhenError::OutOfRange(s.to_string(), "day"));
    }
    let fill = if end == End::Until { 59 } else { 0 };
    let (h, mi, se) = match time {
        None => (if end == End::Until { 23 } else { 0 }, fill, fill),
        Some(t) => {
            let p: Vec<&str> = t.split(':').collect();
            if !(2..=3).contains(&p.len()) || p.iter().any(|x| x.len() != 2) {
                return Err(bad());
            }
            let se = if p.len() == 3 { num(p[2])? } else { fill };
            (num(p[0])?, num(p[1])?, se)
        }
    };
    if h > 23 {
        return Err(WhenError::OutOfRange(s.to_string(), "hour"));
    }
    if mi > 59 || se > 59 {
        return Err(WhenError::OutOfRange(s.to_string(), "minute or second"));
    }
    Ok(format!("{y:04}-{mo:02}-{day:02} {h:02}:{mi:02}:{se:02}"))
}

/// `90s`, `15m`, `2h`, `3d`, `1w`, or a sequence such as `1h30m`, in
/// seconds; `None` when `s` is not one.
pub fn parse_duration(s: &str) -> Option<i64> {
    if s.is_empty() {
        return None;
    }
    let mut total: i64 = 0;
    let mut n: Option<i64> = None;
    for c in s.chars() {
        if let Some(d) = c.to_digit(10) {
            n = Some(n.unwrap_or(0).checked_mul(10)?.checked_add(i64::from(d))?);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return None,
        };
        total = total.checked_add(n.take()?.checked_mul(unit)?)?;
    }
    // A bare number has no unit: refused rather than guessed.
    if n.is_some() {
        return None;
    }
    Some(total)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The fields of `YYYY-MM-DD HH:MM:SS` (anything after the seconds, such as
/// a fraction some servers print, is ignored).
fn fields(text: &str) -> Option<(i64, u32, u32, u32, u32, u32)> {
    let b = text.as_bytes();
    if b.len() < 19 {
        return None;
    }
    let n = |r: std::ops::Range<usize>| -> Option<u32> { text.get(r)?.parse().ok() };
    Some((
        i64::from(n(0..4)?),
        n(5..7)?,
        n(8..10)?,
        n(11..13)?,
        n(14..16)?,
        n(17..19)?,
    ))
}

/// The Unix time of a local `YYYY-MM-DD HH:MM:SS` text, in the zone the
/// process runs in (that of the daemon that wrote it, on the same host).
/// A text of digits only is already Unix seconds (dbtext's `time_stamp(int)`).
/// In the hour a DST change repeats, the earlier instant is chosen.
pub fn local_to_epoch(text: &str) -> Option<i64> {
    let t = text.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse().ok();
    }
    let (y, mo, d, h, mi, s) = fields(t)?;
    let as_utc = |y: i64, mo: u32, d: u32, h: u32, mi: u32, s: u32| {
        days_from_civil(y, mo, d) * 86_400 + i64::from(h * 3600 + mi * 60 + s)
    };
    let naive = as_utc(y, mo, d, h, mi, s);
    // The zone's offset near that instant, found by rendering a guess
    // locally; a second round corrects a guess that crossed a DST change.
    let offset_at = |sec: i64| {
        let tm = local_tm(sec);
        as_utc(i64::from(tm.year), tm.mon, tm.mday, tm.hour, tm.min, tm.sec) - sec
    };
    let first = naive - offset_at(naive);
    let second = naive - offset_at(first);
    let candidates = [first.min(second), first.max(second)];
    candidates
        .into_iter()
        .find(|&c| local_datetime(c) == t[..19])
        .or(Some(second))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Some(90));
        assert_eq!(parse_duration("15m"), Some(900));
        assert_eq!(parse_duration("2h"), Some(7200));
        assert_eq!(parse_duration("3d"), Some(259_200));
        assert_eq!(parse_duration("1w"), Some(604_800));
        assert_eq!(parse_duration("1h30m"), Some(5400));
        for bad in ["", "15", "m", "1x", "-1h", "1.5h", "99999999999999999999d"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn local_times_and_their_window_ends() {
        let p = |s, e| parse_when(s, e, 0);
        assert_eq!(p("2024-05-01", End::Since).unwrap(), "2024-05-01 00:00:00");
        assert_eq!(p("2024-05-01", End::Until).unwrap(), "2024-05-01 23:59:59");
        assert_eq!(
            p("2024-05-01 10:20", End::Since).unwrap(),
            "2024-05-01 10:20:00"
        );
        assert_eq!(
            p("2024-05-01 10:20", End::Until).unwrap(),
            "2024-05-01 10:20:59"
        );
        assert_eq!(
            p("2024-05-01T10:20:30", End::Until).unwrap(),
            "2024-05-01 10:20:30"
        );
        assert_eq!(
            p("2024-02-29 00:00", End::Since).unwrap(),
            "2024-02-29 00:00:00"
        );
        for bad in [
            "2023-02-29",
            "2024-13-01",
            "2024-05-01 24:00",
            "2024-05-01 10:60",
            "2024-5-1",
            "yesterday",
            "2024-05-01 10",
        ] {
            assert!(p(bad, End::Since).is_err(), "{bad}");
        }
        let e = p("2024-13-01", End::Since).unwrap_err().to_string();
        assert!(e.contains("month"), "{e}");
    }

    #[test]
    fn durations_count_back_from_now() {
        let now = 1_700_000_000;
        assert_eq!(
            parse_when("15m", End::Since, now).unwrap(),
            local_datetime(now - 900)
        );
    }

    #[test]
    fn local_text_round_trips_to_epoch() {
        for sec in [
            0,
            1_234_567_890,
            1_700_000_000,
            1_711_846_800,
            1_730_000_000,
        ] {
            let text = local_datetime(sec);
            assert_eq!(local_to_epoch(&text), Some(sec), "{text}");
        }
        assert_eq!(local_to_epoch("1700000000"), Some(1_700_000_000));
        assert_eq!(local_to_epoch("garbage"), None);
        // PostgreSQL may print a fraction after the seconds.
        let text = format!("{}.5", local_datetime(1_700_000_000));
        assert_eq!(local_to_epoch(&text), Some(1_700_000_000));
    }
}
