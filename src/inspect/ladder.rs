//! A call as a ladder: one column per host, one arrow per message.
//!
//! A row is one hop as the proxy saw it: an `in` row is an arrow from
//! `fromip` (the sender) to `toip` (the proxy's socket), an `out` row from
//! `fromip` (the proxy's socket) to `toip` (the next hop). So every row
//! already is an arrow, drawn from fromip to toip whatever its direction;
//! what must not be drawn twice are the copies of one event — rows that
//! differ only in traced_user (one per AVP value, docs/decisions.md §1),
//! or the same bytes traced both by `sip_trace()` and by the flag: same
//! hop, same bytes, same time. The same bytes on the same hop at a later
//! time are a retransmission: drawn, and marked.
//!
//! Pure: sorted rows in, a [`Ladder`] out; [`render_text`] (fits 100
//! columns) and [`render_json`] print it. `svg` draws the same value.

use crate::sip::SipMsg;

use super::StoredRow;
use super::json::J;

/// One column of the ladder: a `proto:ip:port` as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// As stored, e.g. `udp:127.0.0.1:5060`.
    pub addr: String,
    /// `udp`, `tcp`, `tls`… (empty when the value has no protocol).
    pub transport: String,
    /// The address without the protocol, e.g. `127.0.0.1:5060`.
    pub hostport: String,
}

impl Host {
    fn of(addr: &str) -> Host {
        let (transport, hostport) = match addr.split_once(':') {
            Some((p, rest)) if !p.is_empty() && p.chars().all(|c| c.is_ascii_alphabetic()) => {
                (p.to_ascii_lowercase(), rest.to_string())
            }
            _ => (String::new(), addr.to_string()),
        };
        Host {
            addr: addr.to_string(),
            transport,
            hostport,
        }
    }
}

/// One drawn message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrow {
    pub from: usize,
    pub to: usize,
    /// Microseconds since the call's first row.
    pub offset_us: i64,
    /// `INVITE`, `180 Ringing`…
    pub label: String,
    /// The same bytes were drawn on this hop before.
    pub retrans: bool,
    /// Indexes into the rows handed to [`build`] that this arrow stands for
    /// (the first one is drawn; the rest are its copies).
    pub rows: Vec<usize>,
}

/// A whole call (or several, drawn together).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ladder {
    pub callids: Vec<String>,
    pub hosts: Vec<Host>,
    pub arrows: Vec<Arrow>,
    /// Local time of the first row.
    pub start: String,
    /// Microseconds of the first row; `None` on a table without time_us.
    pub start_us: Option<u32>,
}

/// `INVITE`, or `486 Busy Here` for a reply; the columns when the stored
/// text does not parse.
pub fn label_of(r: &StoredRow) -> String {
    if let Ok(m) = SipMsg::parse(&r.msg) {
        if let Some(code) = m.status() {
            let reason = m.reason_str().unwrap_or_default();
            return format!("{code} {}", reason.trim()).trim_end().to_string();
        }
        if let Some(method) = m.method() {
            return method.to_string();
        }
    }
    if r.status.is_empty() {
        r.method.clone()
    } else {
        r.status.clone()
    }
}

/// Lay out rows sorted by time (as `source` returns them).
pub fn build(rows: &[StoredRow]) -> Ladder {
    let mut hosts: Vec<Host> = Vec::new();
    let mut host = |addr: &str| -> usize {
        if let Some(i) = hosts.iter().position(|h| h.addr == addr) {
            return i;
        }
        hosts.push(Host::of(addr));
        hosts.len() - 1
    };
    let t0 = rows.first().map(StoredRow::time_us).unwrap_or(0);
    let mut arrows: Vec<Arrow> = Vec::new();
    let mut callids: Vec<String> = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        if !callids.contains(&r.callid) {
            callids.push(r.callid.clone());
        }
        let same_hop = |a: &Arrow| {
            let d = &rows[a.rows[0]];
            d.fromip == r.fromip && d.toip == r.toip && d.msg == r.msg
        };
        // Without time_us (v2) a retransmission within the second has the
        // same time as the original; the copies of one event differ in
        // traced_user there, so a repeated traced_user is a new message.
        let copy_of = |a: &Arrow| {
            same_hop(a)
                && rows[a.rows[0]].time_us() == r.time_us()
                && (r.us.is_some() || a.rows.iter().all(|&k| rows[k].traced_user != r.traced_user))
        };
        if let Some(a) = arrows.iter_mut().rev().find(|a| copy_of(a)) {
            a.rows.push(i);
            continue;
        }
        let retrans = arrows.iter().any(same_hop);
        let (from, to) = (host(&r.fromip), host(&r.toip));
        arrows.push(Arrow {
            from,
            to,
            offset_us: r.time_us() - t0,
            label: label_of(r),
            retrans,
            rows: vec![i],
        });
    }
    Ladder {
        callids,
        hosts,
        arrows,
        start: rows.first().map(|r| r.stamp.clone()).unwrap_or_default(),
        start_us: rows.first().and_then(|r| r.us),
    }
}

/// Text output width.
pub const WIDTH: usize = 100;
/// Width of the offset column (`  12345.678 `).
const TIME_W: usize = 11;

/// `12.345` milliseconds from microseconds.
pub fn ms(us: i64) -> String {
    let sign = if us < 0 { "-" } else { "" };
    let a = us.unsigned_abs();
    format!("{sign}{}.{:03}", a / 1000, a % 1000)
}

/// The text ladder, at most [`WIDTH`] columns wide for up to 8 hosts.
pub fn render_text(l: &Ladder, rows: &[StoredRow]) -> String {
    let mut out = String::new();
    for c in &l.callids {
        out.push_str(&format!("Call-ID: {c}\n"));
    }
    let start = match l.start_us {
        Some(us) => format!("{}.{us:06}", l.start),
        None => format!("{} (to the second: the table has no time_us)", l.start),
    };
    out.push_str(&format!(
        "Start:   {start}, {} messages from {} rows\n",
        l.arrows.len(),
        rows.len()
    ));
    let n = l.hosts.len();
    if n == 0 {
        return out;
    }
    let names: Vec<String> = l.hosts.iter().map(|h| h.addr.clone()).collect();
    let longest = names.iter().map(|s| s.chars().count()).max().unwrap_or(1);
    let fit = |margin: usize| {
        if n == 1 {
            30
        } else {
            (WIDTH - TIME_W - 2 * margin - 1) / (n - 1)
        }
    };
    // Whole addresses over the lanes when they fit; else letters, with a
    // legend, so that the ladder itself stays within the width.
    let mut margin = longest.div_ceil(2);
    let mut gap = fit(margin).min(30);
    let letters = gap < longest + 2 || WIDTH < TIME_W + 2 * margin + 1;
    if letters {
        margin = 1;
        gap = fit(margin).clamp(8, 30);
    }
    let lane = |i: usize| TIME_W + margin + i * gap;
    let width = lane(n - 1) + margin + 1;
    let letter = |i: usize| {
        let c = char::from(b'A' + (i % 26) as u8);
        if i < 26 {
            c.to_string()
        } else {
            format!("{c}{}", i / 26)
        }
    };
    if letters {
        for (i, h) in l.hosts.iter().enumerate() {
            out.push_str(&format!("  {} = {}\n", letter(i), h.addr));
        }
    }
    out.push('\n');
    // Header: names centred over their lanes.
    let mut head: Vec<char> = vec![' '; width + longest];
    for (i, name) in names.iter().enumerate() {
        let text = if letters { letter(i) } else { name.clone() };
        let len = text.chars().count();
        let at = lane(i).saturating_sub(len / 2);
        for (k, c) in text.chars().enumerate() {
            if at + k < head.len() {
                head[at + k] = c;
            }
        }
    }
    for (k, c) in "ms".chars().enumerate() {
        head[TIME_W - 3 + k] = c;
    }
    push_line(&mut out, &head);
    let mut lanes: Vec<char> = vec![' '; width];
    for i in 0..n {
        lanes[lane(i)] = '|';
    }
    push_line(&mut out, &lanes);
    for a in &l.arrows {
        let mut line = lanes.clone();
        let label = if a.retrans {
            format!("{} (retrans)", a.label)
        } else {
            a.label.clone()
        };
        let t = format!("{:>10} ", ms(a.offset_us));
        for (k, c) in t.chars().enumerate() {
            line[k] = c;
        }
        let (xa, xb) = (lane(a.from), lane(a.to));
        if xa == xb {
            // A message from a host to itself: a loop mark and the label
            // beside the lane.
            let s = format!("<-' {label}");
            line.truncate(xa + 1);
            line.extend(s.chars());
            push_line(&mut out, &line);
            continue;
        }
        let (lo, hi) = (xa.min(xb), xa.max(xb));
        for c in line.iter_mut().take(hi).skip(lo + 1) {
            *c = '-';
        }
        if xb > xa {
            line[hi - 1] = '>';
        } else {
            line[lo + 1] = '<';
        }
        // The label sits on the shaft, between the arrow's ends.
        let room = (hi - lo).saturating_sub(5);
        let mut text: String = label.chars().take(room).collect();
        if text.chars().count() < label.chars().count() && room > 1 {
            text = label.chars().take(room - 1).collect::<String>() + "~";
        }
        let len = text.chars().count();
        let at = lo + 1 + (hi - lo - 1).saturating_sub(len) / 2;
        for (k, c) in text.chars().enumerate() {
            line[at + k] = c;
        }
        push_line(&mut out, &line);
    }
    out
}

fn push_line(out: &mut String, line: &[char]) {
    let s: String = line.iter().collect();
    out.push_str(s.trim_end());
    out.push('\n');
}

/// The call as JSON: hosts, arrows, and every stored row with its message
/// decoded as text.
pub fn to_json(l: &Ladder, rows: &[StoredRow]) -> J {
    let opt_str = |v: &Option<String>| v.as_ref().map_or(J::Null, |s| J::s(s.clone()));
    J::Obj(vec![
        (
            "callids",
            J::Arr(l.callids.iter().map(|c| J::s(c.clone())).collect()),
        ),
        ("start", J::s(l.start.clone())),
        (
            "start_us",
            l.start_us.map_or(J::Null, |u| J::Int(i64::from(u))),
        ),
        (
            "hosts",
            J::Arr(
                l.hosts
                    .iter()
                    .map(|h| {
                        J::Obj(vec![
                            ("address", J::s(h.addr.clone())),
                            ("transport", J::s(h.transport.clone())),
                            ("hostport", J::s(h.hostport.clone())),
                        ])
                    })
                    .collect(),
            ),
        ),
        (
            "messages",
            J::Arr(
                l.arrows
                    .iter()
                    .map(|a| {
                        J::Obj(vec![
                            ("offset_ms", J::Ms(a.offset_us)),
                            ("from", J::s(l.hosts[a.from].addr.clone())),
                            ("to", J::s(l.hosts[a.to].addr.clone())),
                            ("label", J::s(a.label.clone())),
                            ("retransmission", J::Bool(a.retrans)),
                            (
                                "rows",
                                J::Arr(a.rows.iter().map(|&i| J::Int(rows[i].id)).collect()),
                            ),
                        ])
                    })
                    .collect(),
            ),
        ),
        (
            "rows",
            J::Arr(
                rows.iter()
                    .map(|r| {
                        J::Obj(vec![
                            ("id", J::Int(r.id)),
                            ("time_stamp", J::s(r.stamp.clone())),
                            ("time_us", r.us.map_or(J::Null, |u| J::Int(i64::from(u)))),
                            ("direction", J::s(r.direction.clone())),
                            ("callid", J::s(r.callid.clone())),
                            ("method", J::s(r.method.clone())),
                            ("status", J::s(r.status.clone())),
                            ("fromip", J::s(r.fromip.clone())),
                            ("toip", J::s(r.toip.clone())),
                            ("fromtag", J::s(r.fromtag.clone())),
                            ("totag", opt_str(&r.totag)),
                            ("traced_user", J::s(r.traced_user.clone())),
                            ("msg", J::s(String::from_utf8_lossy(&r.msg).into_owned())),
                        ])
                    })
                    .collect(),
            ),
        ),
    ])
}

/// [`to_json`], printed.
pub fn render_json(l: &Ladder, rows: &[StoredRow]) -> String {
    to_json(l, rows).pretty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::call::tests::row;

    const INV: &str = "INVITE sip:bob@b SIP/2.0\r\nFrom: <sip:alice@a>;tag=1\r\nTo: <sip:bob@b>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n\r\n";
    const R486: &str = "SIP/2.0 486 Busy Here\r\nFrom: <sip:alice@a>;tag=1\r\nTo: <sip:bob@b>;tag=2\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n\r\n";

    fn hop(mut r: StoredRow, from: &str, to: &str, dir: &str, user: &str) -> StoredRow {
        r.fromip = from.into();
        r.toip = to.into();
        r.direction = dir.into();
        r.traced_user = user.into();
        r
    }

    #[test]
    fn copies_collapse_and_retransmissions_are_marked() {
        let (a, p, b) = (
            "udp:10.0.0.1:5060",
            "udp:10.0.0.2:5060",
            "udp:10.0.0.3:5060",
        );
        let rows = vec![
            hop(row(1, 0, 0, "", "INVITE", INV), a, p, "in", ""),
            hop(row(2, 0, 0, "", "INVITE", INV), a, p, "in", "alice"),
            hop(row(3, 0, 100, "", "INVITE", INV), p, b, "out", ""),
            hop(row(4, 0, 600_100, "", "INVITE", INV), p, b, "out", ""),
            hop(row(5, 1, 0, "486", "INVITE", R486), b, p, "in", ""),
            hop(row(6, 1, 50, "486", "INVITE", R486), p, a, "out", ""),
        ];
        let l = build(&rows);
        assert_eq!(
            l.hosts.iter().map(|h| h.addr.as_str()).collect::<Vec<_>>(),
            [a, p, b]
        );
        assert_eq!(l.arrows.len(), 5);
        assert_eq!(l.arrows[0].rows, [0, 1]);
        assert_eq!((l.arrows[1].from, l.arrows[1].to), (1, 2));
        assert!(!l.arrows[1].retrans);
        assert!(l.arrows[2].retrans);
        assert_eq!(l.arrows[2].offset_us, 600_100);
        assert_eq!(l.arrows[3].label, "486 Busy Here");
        assert_eq!((l.arrows[4].from, l.arrows[4].to), (1, 0));
        let text = render_text(&l, &rows);
        assert!(text.lines().all(|x| x.chars().count() <= WIDTH), "{text}");
        assert!(text.contains("INVITE (retrans)"), "{text}");
        assert!(text.contains("600.100"), "{text}");
        let json = render_json(&l, &rows);
        assert!(json.contains("\"retransmission\": true"), "{json}");
    }

    #[test]
    fn many_hosts_use_letters_and_stay_narrow() {
        let rows: Vec<StoredRow> = (0..7)
            .map(|i| {
                hop(
                    row(i, 0, i as u32, "", "INVITE", INV),
                    &format!("udp:[2001:db8::{i}]:5060"),
                    &format!("udp:[2001:db8::{}]:5060", i + 1),
                    "out",
                    "",
                )
            })
            .collect();
        let l = build(&rows);
        assert_eq!(l.hosts.len(), 8);
        let text = render_text(&l, &rows);
        assert!(text.contains("  A = udp:[2001:db8::0]:5060"), "{text}");
        assert!(text.lines().all(|x| x.chars().count() <= WIDTH), "{text}");
    }
}
