//! The HTML of `siptrace serve`'s pages, and the query strings they
//! carry. Pure: values in, text out, every value from the table escaped
//! for its context (element text or quoted attribute via `svg::esc`; URL
//! components percent-encoded; JSON inside `<script type="application/json">`
//! with `<`, `>` and `&` as `\u00XX`, so nothing in it can close the
//! element). The pages hold no inline script or style: behaviour comes
//! from /static/app.js, looks from /static/style.css.
//!
//! Depends on the pure parts of `inspect` (call, ladder, svg, json).

use std::fmt::Write;

use crate::inspect::StoredRow;
use crate::inspect::call::{CallSummary, format_duration};
use crate::inspect::ladder::Ladder;
use crate::inspect::svg::{self, esc};

/// Percent-encode a query component (RFC 3986 unreserved kept).
pub fn url_encode(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            o.push(b as char);
        } else {
            let _ = write!(o, "%{b:02X}");
        }
    }
    o
}

/// Decode a query component (`+` is a space, as forms send it); a `%`
/// not followed by two hex digits stays as it is.
pub fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len()
                && b[i + 1].is_ascii_hexdigit()
                && b[i + 2].is_ascii_hexdigit() =>
            {
                let hex = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
                out.push(hex(b[i + 1]) * 16 + hex(b[i + 2]));
                i += 3;
                continue;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `a=1&b=2` → pairs, decoded; later duplicates win on lookup.
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (url_decode(k), url_decode(v)),
            None => (url_decode(p), String::new()),
        })
        .collect()
}

/// JSON text made safe to sit inside a `<script>` element.
pub fn json_for_script(json: &str) -> String {
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// The search form's fields, in order: (name, label, placeholder).
pub const FIELDS: [(&str, &str, &str); 7] = [
    ("since", "Since", "15m, 2h, 2024-05-01 10:00"),
    ("until", "Until", "YYYY-MM-DD HH:MM"),
    ("user", "User", "alice"),
    ("ip", "IP", "10.0.0.1 or 10.0.0.1:5060"),
    ("method", "Method", "INVITE"),
    ("status", "Status", "486 or 4xx"),
    ("callid", "Call-ID", ""),
];

fn head(out: &mut String, title: &str) {
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width\">\n\
         <title>{}</title>\n<link rel=\"stylesheet\" href=\"/static/style.css\">\n\
         <script src=\"/static/app.js\" defer></script>\n</head>\n<body>\n\
         <nav><a href=\"/\">Search</a> <a href=\"/live\">Live</a> \
         <span class=\"brand\">siptrace</span></nav>\n",
        esc(title)
    );
}

const TAIL: &str = "</body>\n</html>\n";

fn summary_rows(out: &mut String, calls: &[CallSummary]) {
    for s in calls {
        let start = match s.start_us {
            Some(us) => format!("{}.{:03}", s.start, us / 1000),
            None => s.start.clone(),
        };
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td>\
             <td><a class=\"call\" href=\"/call?id={}\">{}</a></td></tr>",
            esc(&start),
            esc(&format_duration(s.duration_us)),
            s.rows,
            esc(&s.first_method),
            esc(&s.final_status),
            esc(&s.from_user),
            esc(&s.to_user),
            esc(&url_encode(&s.callid)),
            esc(&s.callid),
        );
    }
}

const TABLE_HEAD: &str = "<thead><tr><th>Start</th><th>Duration</th><th>Rows</th>\
     <th>Method</th><th>Status</th><th>From</th><th>To</th><th>Call-ID</th></tr></thead>\n";

/// What the search page shows.
pub struct Search<'a> {
    /// The form's values as given (name, value), echoed back escaped.
    pub query: &'a [(String, String)],
    pub calls: &'a [CallSummary],
    /// 0-based.
    pub page: usize,
    pub more: bool,
    pub error: Option<String>,
    pub source: &'a str,
}

fn value_of<'a>(q: &'a [(String, String)], name: &str) -> &'a str {
    q.iter()
        .rev()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

/// The query string for another page of the same search.
fn page_link(q: &[(String, String)], page: usize) -> String {
    let mut parts: Vec<String> = FIELDS
        .iter()
        .filter_map(|(n, _, _)| {
            let v = value_of(q, n);
            (!v.is_empty()).then(|| format!("{n}={}", url_encode(v)))
        })
        .collect();
    let limit = value_of(q, "limit");
    if !limit.is_empty() {
        parts.push(format!("limit={}", url_encode(limit)));
    }
    parts.push(format!("page={}", page + 1));
    format!("/?{}", parts.join("&"))
}

pub fn search(s: &Search<'_>) -> String {
    let mut out = String::new();
    head(&mut out, "siptrace — search");
    out.push_str("<form id=\"search\" method=\"get\" action=\"/\">\n");
    for (name, label, ph) in FIELDS {
        let _ = writeln!(
            out,
            "<label>{label} <input name=\"{name}\" id=\"f-{name}\" value=\"{}\" \
             placeholder=\"{}\"></label>",
            esc(value_of(s.query, name)),
            esc(ph)
        );
    }
    out.push_str("<button type=\"submit\" id=\"go\">Search</button>\n</form>\n");
    let _ = writeln!(out, "<p class=\"source\">{}</p>", esc(s.source));
    if let Some(e) = &s.error {
        let _ = writeln!(out, "<p class=\"error\" id=\"error\">{}</p>", esc(e));
    }
    let _ = write!(out, "<table id=\"results\">\n{TABLE_HEAD}<tbody>\n");
    summary_rows(&mut out, s.calls);
    out.push_str("</tbody></table>\n");
    if s.calls.is_empty() && s.error.is_none() {
        out.push_str("<p id=\"none\">No call matches.</p>\n");
    }
    out.push_str("<p class=\"pages\">");
    if s.page > 0 {
        let _ = write!(
            out,
            "<a id=\"prev\" href=\"{}\">← newer</a> ",
            esc(&page_link(s.query, s.page - 1))
        );
    }
    let _ = write!(out, "page {}", s.page + 1);
    if s.more {
        let _ = write!(
            out,
            " <a id=\"next\" href=\"{}\">older →</a>",
            esc(&page_link(s.query, s.page + 1))
        );
    }
    out.push_str("</p>\n");
    out.push_str(TAIL);
    out
}

/// The call page: ladder, the selected message (`sel`), links, and every
/// message's text as JSON for the script that swaps them on click.
pub fn call(l: &Ladder, rows: &[StoredRow], sel: usize) -> String {
    let title = l.callids.join(", ");
    let id = l.callids.first().map_or("", String::as_str);
    let texts = svg::message_texts(l, rows);
    let sel = sel.min(texts.len().saturating_sub(1));
    let mut out = String::new();
    head(&mut out, &format!("siptrace — {title}"));
    let start = match l.start_us {
        Some(us) => format!("{}.{us:06}", l.start),
        None => format!("{} (to the second: the table has no time_us)", l.start),
    };
    let enc = esc(&url_encode(id));
    let _ = write!(
        out,
        "<h1>Call-ID <span id=\"callid\">{}</span></h1>\n\
         <p>Start {}, {} messages from {} rows. Click an arrow to see its message. \
         <a id=\"pcap\" href=\"/api/pcap?id={enc}\" download>Download pcap</a> \
         <a id=\"json\" href=\"/api/call?id={enc}\">JSON</a></p>\n\
         <div class=\"callview\">\n<div id=\"ladder\" data-sel=\"{sel}\">\n{}</div>\n\
         <pre id=\"msg\">{}</pre>\n</div>\n",
        esc(&title),
        esc(&start),
        l.arrows.len(),
        rows.len(),
        svg::render_svg_unstyled(l, rows),
        esc(texts.get(sel).map_or("(no message)", String::as_str)),
    );
    let mut json = String::from("[");
    for (k, t) in texts.iter().enumerate() {
        if k > 0 {
            json.push(',');
        }
        crate::inspect::json::quote(t, &mut json);
    }
    json.push(']');
    let _ = writeln!(
        out,
        "<script type=\"application/json\" id=\"msgs\">{}</script>",
        json_for_script(&json)
    );
    out.push_str(TAIL);
    out
}

/// The live page: a table the script fills from /api/calls.
pub fn live() -> String {
    let mut out = String::new();
    head(&mut out, "siptrace — live");
    let _ = write!(
        out,
        "<h1>Newest calls <span id=\"updated\"></span></h1>\n\
         <table id=\"live\" data-src=\"/api/calls?limit=25\" data-every=\"2000\">\n\
         {TABLE_HEAD}<tbody></tbody></table>\n"
    );
    out.push_str(TAIL);
    out
}

/// A page that only says what went wrong (404, 400, 503).
pub fn problem(title: &str, detail: &str) -> String {
    let mut out = String::new();
    head(&mut out, &format!("siptrace — {title}"));
    let _ = writeln!(
        out,
        "<h1>{}</h1>\n<p class=\"error\" id=\"error\">{}</p>",
        esc(title),
        esc(detail)
    );
    out.push_str(TAIL);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_round_trip_and_json_cannot_close_script() {
        let v = "a b&c=d/é<\"'%";
        assert_eq!(url_decode(&url_encode(v)), v);
        assert_eq!(url_decode("a+b%2x%"), "a b%2x%");
        let q = parse_query("user=al%20ice&x&page=2");
        assert_eq!(q[0], ("user".into(), "al ice".into()));
        assert_eq!(q[1], ("x".into(), String::new()));
        let j = json_for_script("[\"</script><b>&\"]");
        assert!(!j.contains('<') && !j.contains('>') && !j.contains('&'));
        assert_eq!(
            page_link(&[("user".into(), "a&b".into())], 1),
            "/?user=a%26b&page=2"
        );
    }
}
