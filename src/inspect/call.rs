//! What `siptrace calls` filters on and what it prints per call.
//!
//! [`Filter`] is the search as data: the SQL backends turn it into a WHERE
//! clause (`source`), dbtext and the final check of `--user` use
//! [`Filter::row_matches`] and [`user_in_call`]. [`summarize`] reduces the
//! rows of one call to its line. Pure: rows in, values out; stored
//! messages decoded with `sip`.

use crate::sip::{SipMsg, Uri};

use super::StoredRow;

/// A `calls` search; every field set must hold (AND). Times are local
/// `YYYY-MM-DD HH:MM:SS` texts (see `when`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub since: Option<String>,
    pub until: Option<String>,
    /// traced_user, or the user part of From or To.
    pub user: Option<String>,
    /// An IP (any port) or IP:port, in fromip or toip.
    pub ip: Option<String>,
    /// Upper-cased by the argument parser.
    pub method: Option<String>,
    /// `486` or a class `4xx`.
    pub status: Option<String>,
    pub callid: Option<String>,
}

impl Filter {
    /// `--user` can only be decided exactly from the messages: SQL narrows
    /// with LIKE, the rows are checked afterwards.
    pub fn needs_check(&self) -> bool {
        self.user.is_some()
    }

    /// Does one row satisfy every filter but `--user` on From/To (checked
    /// per call by [`user_in_call`])? The reference the SQL clauses follow.
    pub fn row_matches(&self, r: &StoredRow) -> bool {
        let stamp = r.stamp.as_str();
        self.since.as_deref().is_none_or(|s| stamp >= s)
            && self.until.as_deref().is_none_or(|u| stamp <= u)
            && self.callid.as_deref().is_none_or(|c| r.callid == c)
            && self.method.as_deref().is_none_or(|m| r.method == m)
            && self
                .status
                .as_deref()
                .is_none_or(|s| status_matches(s, &r.status))
            && self.ip.as_deref().is_none_or(|ip| {
                ip_patterns(ip)
                    .iter()
                    .any(|p| like(&r.fromip, p) || like(&r.toip, p))
            })
            && self
                .user
                .as_deref()
                .is_none_or(|u| r.traced_user == u || contains(&r.msg, u.as_bytes()))
    }
}

/// `4xx` matches any 4 hundred; anything else is compared as written.
pub fn status_pattern(s: &str) -> (bool, String) {
    let b = s.as_bytes();
    if b.len() == 3 && b[0].is_ascii_digit() && b[1..].eq_ignore_ascii_case(b"xx") {
        (true, format!("{}%", char::from(b[0])))
    } else {
        (false, s.to_string())
    }
}

fn status_matches(filter: &str, status: &str) -> bool {
    match status_pattern(filter) {
        (true, p) => status.starts_with(&p[..1]) && status.len() == 3,
        (false, s) => status == s,
    }
}

/// SQL LIKE patterns (escape character `!`) matching fromip/toip values
/// `proto:ADDR`: an address alone matches any port; IPv6 bracketed (ours)
/// or bare (Kamailio's).
pub fn ip_patterns(ip: &str) -> Vec<String> {
    let esc = like_escape;
    let ip = ip.trim();
    // IPv6 with a port is written [addr]:port; bare IPv6 has no port.
    if let Some(rest) = ip.strip_prefix('[') {
        if let Some((addr, port)) = rest.split_once("]:") {
            return vec![
                format!("%:[{}]:{}", esc(addr), esc(port)),
                format!("%:{}:{}", esc(addr), esc(port)),
            ];
        }
        let addr = rest.trim_end_matches(']');
        return vec![format!("%:[{}]:%", esc(addr)), format!("%:{}:%", esc(addr))];
    }
    if ip.matches(':').count() > 1 {
        return vec![format!("%:[{}]:%", esc(ip)), format!("%:{}:%", esc(ip))];
    }
    match ip.split_once(':') {
        Some((addr, port)) => vec![format!("%:{}:{}", esc(addr), esc(port))],
        None => vec![format!("%:{}:%", esc(ip))],
    }
}

/// `s` with LIKE's wildcards and the escape character `!` escaped.
pub fn like_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '!') {
            o.push('!');
        }
        o.push(c);
    }
    o
}

/// SQL LIKE with `%` and `!` escapes (no `_` use in our patterns beyond
/// escaped ones), case-sensitive: the dbtext twin of the SQL clause.
fn like(s: &str, pattern: &str) -> bool {
    // Split the pattern into literal pieces at unescaped '%'.
    let mut pieces: Vec<String> = vec![String::new()];
    let mut it = pattern.chars();
    while let Some(c) = it.next() {
        match c {
            '!' => {
                if let Some(n) = it.next() {
                    if let Some(p) = pieces.last_mut() {
                        p.push(n);
                    }
                }
            }
            '%' => pieces.push(String::new()),
            _ => {
                if let Some(p) = pieces.last_mut() {
                    p.push(c);
                }
            }
        }
    }
    let n = pieces.len();
    let mut rest = s;
    for (i, p) in pieces.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(p.as_str()) else {
                return false;
            };
            rest = r;
        } else if i == n - 1 {
            return rest.ends_with(p.as_str());
        } else {
            match rest.find(p.as_str()) {
                Some(at) => rest = &rest[at + p.len()..],
                None => return false,
            }
        }
    }
    n > 1 || rest.is_empty()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// The user part of a From/To URI (`sip:alice@host` → `alice`), or of a
/// traced_user value written as a URI.
fn uri_user(uri: &[u8]) -> Option<String> {
    let s = String::from_utf8_lossy(uri);
    let u = Uri::parse(&s).ok()?;
    u.user().map(str::to_string)
}

/// From and To users of a stored message.
pub fn parties(msg: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(m) = SipMsg::parse(msg) else {
        return (None, None);
    };
    (
        m.from().and_then(|n| uri_user(n.uri)),
        m.to().and_then(|n| uri_user(n.uri)),
    )
}

/// Does `user` take part in the call: a traced_user value (or its URI's
/// user part), or the user of From or To of a stored message?
pub fn user_in_call(user: &str, rows: &[StoredRow]) -> bool {
    rows.iter().any(|r| {
        if r.traced_user == user || uri_user(r.traced_user.as_bytes()).as_deref() == Some(user) {
            return true;
        }
        let (f, t) = parties(&r.msg);
        f.as_deref() == Some(user) || t.as_deref() == Some(user)
    })
}

/// One line of `siptrace calls`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSummary {
    pub callid: String,
    /// Local time of the first row.
    pub start: String,
    pub start_us: Option<u32>,
    pub from_user: String,
    pub to_user: String,
    pub first_method: String,
    /// The final status of the first request's transaction (its last
    /// reply ≥ 200), else its highest provisional one, else empty.
    pub final_status: String,
    /// From the first row to the last; to the second on v2 tables.
    pub duration_us: i64,
    pub rows: usize,
    /// For ordering, newest first.
    pub start_time_us: i64,
}

/// Summaries as `siptrace calls --json` and the web API print them.
pub fn summaries_json(list: &[CallSummary]) -> super::json::J {
    use super::json::J;
    J::Arr(
        list.iter()
            .map(|s| {
                J::Obj(vec![
                    ("callid", J::s(s.callid.clone())),
                    ("start", J::s(s.start.clone())),
                    (
                        "start_us",
                        s.start_us.map_or(J::Null, |u| J::Int(i64::from(u))),
                    ),
                    ("from_user", J::s(s.from_user.clone())),
                    ("to_user", J::s(s.to_user.clone())),
                    ("method", J::s(s.first_method.clone())),
                    ("final_status", J::s(s.final_status.clone())),
                    ("duration_ms", J::Ms(s.duration_us)),
                    ("rows", J::Int(s.rows as i64)),
                ])
            })
            .collect(),
    )
}

/// Reduce the rows of one call (any order) to its summary.
pub fn summarize(rows: &[StoredRow]) -> Option<CallSummary> {
    let mut sorted: Vec<&StoredRow> = rows.iter().collect();
    sorted.sort_by_key(|r| (r.time_us(), r.id));
    let first = *sorted.first()?;
    let last = *sorted.last()?;
    // The first request stored tells who called whom; replies carry the
    // same From/To, so any row serves when no request was stored.
    let request = sorted
        .iter()
        .find(|r| r.status.is_empty())
        .copied()
        .unwrap_or(first);
    let (f, t) = parties(&request.msg);
    let first_method = request.method.clone();
    let mut final_status = String::new();
    let mut best_prov = 0u16;
    let cseq_of = |r: &StoredRow| {
        SipMsg::parse(&r.msg)
            .ok()
            .and_then(|m| m.cseq().map(|c| c.0))
    };
    let first_cseq = cseq_of(request);
    for r in &sorted {
        if r.method != first_method || r.status.is_empty() {
            continue;
        }
        if first_cseq.is_some() && cseq_of(r) != first_cseq {
            continue;
        }
        let code: u16 = r.status.parse().unwrap_or(0);
        if code >= 200 {
            final_status = r.status.clone();
        } else if code > best_prov && !final_status.starts_with(|c: char| c >= '2') {
            best_prov = code;
        }
    }
    if final_status.is_empty() && best_prov > 0 {
        final_status = best_prov.to_string();
    }
    Some(CallSummary {
        callid: first.callid.clone(),
        start: first.stamp.clone(),
        start_us: first.us,
        from_user: f.unwrap_or_default(),
        to_user: t.unwrap_or_default(),
        first_method,
        final_status,
        duration_us: last.time_us() - first.time_us(),
        rows: rows.len(),
        start_time_us: first.time_us(),
    })
}

/// `1.234s`, `2m05s`, `1h02m`: short enough for a column.
pub fn format_duration(us: i64) -> String {
    let ms = us / 1000;
    if ms < 60_000 {
        format!("{}.{:03}s", ms / 1000, ms % 1000)
    } else if ms < 3_600_000 {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    } else {
        format!("{}h{:02}m", ms / 3_600_000, (ms / 60_000) % 60)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn row(
        id: i64,
        sec: i64,
        us: u32,
        status: &str,
        method: &str,
        msg: &str,
    ) -> StoredRow {
        StoredRow {
            id,
            stamp: format!("2024-05-01 10:00:{:02}", sec % 60),
            sec: 1_714_557_600 + sec,
            us: Some(us),
            callid: "c1".into(),
            method: method.into(),
            status: status.into(),
            fromip: "udp:10.0.0.1:5060".into(),
            toip: "udp:10.0.0.2:5060".into(),
            direction: "in".into(),
            fromtag: "ft".into(),
            totag: Some(String::new()),
            traced_user: String::new(),
            msg: msg.as_bytes().to_vec(),
        }
    }

    const INV: &str = "INVITE sip:bob@b SIP/2.0\r\nFrom: <sip:alice@a>;tag=1\r\nTo: <sip:bob@b>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n\r\n";
    const R180: &str = "SIP/2.0 180 Ringing\r\nFrom: <sip:alice@a>;tag=1\r\nTo: <sip:bob@b>;tag=2\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n\r\n";
    const R486: &str = "SIP/2.0 486 Busy\r\nFrom: <sip:alice@a>;tag=1\r\nTo: <sip:bob@b>;tag=2\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n\r\n";

    #[test]
    fn summary_of_a_rejected_call() {
        let rows = vec![
            row(3, 2, 500_000, "486", "INVITE", R486),
            row(1, 0, 250_000, "", "INVITE", INV),
            row(2, 1, 0, "180", "INVITE", R180),
        ];
        let s = summarize(&rows).unwrap();
        assert_eq!(s.from_user, "alice");
        assert_eq!(s.to_user, "bob");
        assert_eq!(s.first_method, "INVITE");
        assert_eq!(s.final_status, "486");
        assert_eq!(s.duration_us, 2_250_000);
        assert_eq!(s.rows, 3);
        assert_eq!(s.start_us, Some(250_000));
        assert_eq!(format_duration(s.duration_us), "2.250s");
        let ringing = summarize(&rows[1..]).unwrap();
        assert_eq!(ringing.final_status, "180");
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(format_duration(0), "0.000s");
        assert_eq!(format_duration(125_000_000), "2m05s");
        assert_eq!(format_duration(3_720_000_000), "1h02m");
    }

    #[test]
    fn row_filters() {
        let r = row(1, 0, 0, "486", "INVITE", R486);
        let f = |f: Filter| f.row_matches(&r);
        assert!(f(Filter::default()));
        assert!(f(Filter {
            status: Some("4xx".into()),
            ..Default::default()
        }));
        assert!(f(Filter {
            status: Some("486".into()),
            ..Default::default()
        }));
        assert!(!f(Filter {
            status: Some("5xx".into()),
            ..Default::default()
        }));
        assert!(f(Filter {
            method: Some("INVITE".into()),
            ..Default::default()
        }));
        assert!(!f(Filter {
            method: Some("BYE".into()),
            ..Default::default()
        }));
        assert!(f(Filter {
            ip: Some("10.0.0.2".into()),
            ..Default::default()
        }));
        assert!(f(Filter {
            ip: Some("10.0.0.1:5060".into()),
            ..Default::default()
        }));
        assert!(!f(Filter {
            ip: Some("10.0.0.1:5061".into()),
            ..Default::default()
        }));
        assert!(!f(Filter {
            ip: Some("10.0.0.3".into()),
            ..Default::default()
        }));
        assert!(f(Filter {
            since: Some("2024-05-01 10:00:00".into()),
            ..Default::default()
        }));
        assert!(!f(Filter {
            since: Some("2024-05-01 10:00:01".into()),
            ..Default::default()
        }));
        assert!(!f(Filter {
            until: Some("2024-05-01 09:59:59".into()),
            ..Default::default()
        }));
        assert!(f(Filter {
            callid: Some("c1".into()),
            user: Some("bob".into()),
            ..Default::default()
        }));
        assert!(!f(Filter {
            callid: Some("c2".into()),
            ..Default::default()
        }));
        assert!(user_in_call("alice", std::slice::from_ref(&r)));
        assert!(!user_in_call("ali", std::slice::from_ref(&r)));
    }

    #[test]
    fn ip_patterns_cover_both_ipv6_spellings() {
        assert_eq!(ip_patterns("::1"), ["%:[::1]:%", "%:::1:%"]);
        assert_eq!(ip_patterns("[::1]:5060"), ["%:[::1]:5060", "%:::1:5060"]);
        assert_eq!(ip_patterns("1.2.3.4"), ["%:1.2.3.4:%"]);
        assert!(like("udp:[::1]:5060", "%:[::1]:%"));
        assert!(like("udp:::1:5060", "%:::1:%"));
        assert!(!like("udp:1.2.3.45:5060", "%:1.2.3.4:%"));
        assert_eq!(like_escape("a_b%c!"), "a!_b!%c!!");
    }
}
