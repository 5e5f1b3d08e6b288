//! The ladder as SVG, and as one self-contained HTML page: the SVG inline,
//! every message's text in a script array, and a few lines of JavaScript
//! that show the message of the arrow clicked. No external resources, so
//! the file can be mailed or attached to a ticket.
//!
//! Each message is one `<g class="arrow">` (what tests count). Pure: a
//! [`Ladder`] and its rows in, text out.

use std::fmt::Write;

use super::StoredRow;
use super::json::quote;
use super::ladder::{Ladder, ms};

const LANE_GAP: usize = 230;
const LEFT: usize = 150;
const TOP: usize = 70;
const ROW_H: usize = 30;

/// Text for XML character data and attribute values (HTML's too).
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            // Characters XML 1.0 forbids: shown as the replacement character.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => o.push('\u{fffd}'),
            c => o.push(c),
        }
    }
    o
}

/// The ladder's look. Inline in the standalone SVG and HTML; the served
/// pages take it from their stylesheet instead, as their
/// Content-Security-Policy admits no inline style.
pub const SVG_STYLE: &str = ".arrow{cursor:pointer} .arrow:hover text.label{fill:#06c} \
     .arrow.sel line.shaft{stroke:#06c;stroke-width:2.5} .retrans line.shaft{stroke-dasharray:6,4} \
     .life{stroke:#aaa} .hit{stroke:transparent;stroke-width:14}";

/// The SVG element (no XML declaration: it is also inlined in HTML).
pub fn render_svg(l: &Ladder, rows: &[StoredRow]) -> String {
    svg_element(l, rows, true)
}

/// The SVG element without its `<style>` (see [`SVG_STYLE`]).
pub fn render_svg_unstyled(l: &Ladder, rows: &[StoredRow]) -> String {
    svg_element(l, rows, false)
}

fn svg_element(l: &Ladder, _rows: &[StoredRow], inline_style: bool) -> String {
    let n = l.hosts.len().max(1);
    let lane = |i: usize| LEFT + i * LANE_GAP;
    let width = lane(n - 1) + LEFT;
    let height = TOP + (l.arrows.len() + 1) * ROW_H;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" font-family=\"monospace\" font-size=\"12\">\n\
         <defs><marker id=\"ah\" markerWidth=\"10\" markerHeight=\"8\" refX=\"9\" refY=\"4\" \
         orient=\"auto\"><path d=\"M0,0 L10,4 L0,8 z\" fill=\"#333\"/></marker></defs>\n"
    );
    if inline_style {
        let _ = writeln!(s, "<style>{SVG_STYLE}</style>");
    }
    for (i, h) in l.hosts.iter().enumerate() {
        let x = lane(i);
        let _ = writeln!(
            s,
            "<text x=\"{x}\" y=\"22\" text-anchor=\"middle\" font-weight=\"bold\">{}</text>\
             <text x=\"{x}\" y=\"40\" text-anchor=\"middle\">{}</text>\
             <line class=\"life\" x1=\"{x}\" y1=\"50\" x2=\"{x}\" y2=\"{height}\"/>",
            esc(&h.hostport),
            esc(&h.transport)
        );
    }
    for (k, a) in l.arrows.iter().enumerate() {
        let y = TOP + k * ROW_H;
        let (x1, x2) = (lane(a.from), lane(a.to));
        let class = if a.retrans { "arrow retrans" } else { "arrow" };
        let label = if a.retrans {
            format!("{} (retrans)", a.label)
        } else {
            a.label.clone()
        };
        let _ = write!(
            s,
            "<g class=\"{class}\" data-i=\"{k}\"><title>{}</title>\
             <text x=\"8\" y=\"{}\" fill=\"#666\">{} ms</text>",
            esc(&label),
            y + 4,
            ms(a.offset_us)
        );
        if x1 == x2 {
            // A message to the same host: a small loop beside its lane.
            let _ = writeln!(
                s,
                "<path class=\"hit\" d=\"M{x1},{y} h30 v10 h-30\" fill=\"none\"/>\
                 <path d=\"M{x1},{y} h30 v10 h-28\" fill=\"none\" stroke=\"#333\" marker-end=\"url(#ah)\"/>\
                 <text class=\"label\" x=\"{}\" y=\"{}\">{}</text></g>",
                x1 + 36,
                y + 8,
                esc(&label)
            );
            continue;
        }
        let _ = writeln!(
            s,
            "<line class=\"hit\" x1=\"{x1}\" y1=\"{y}\" x2=\"{x2}\" y2=\"{y}\"/>\
             <line class=\"shaft\" x1=\"{x1}\" y1=\"{y}\" x2=\"{x2}\" y2=\"{y}\" stroke=\"#333\" \
             marker-end=\"url(#ah)\"/>\
             <text class=\"label\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text></g>",
            (x1 + x2) / 2,
            y - 5,
            esc(&label)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// Per arrow, what the message box shows: a header (time, hop, rows it
/// stands for) and the stored text.
pub fn message_texts(l: &Ladder, rows: &[StoredRow]) -> Vec<String> {
    let mut out = Vec::new();
    for a in &l.arrows {
        let r = &rows[a.rows[0]];
        let ids: Vec<String> = a.rows.iter().map(|&i| rows[i].id.to_string()).collect();
        let users: Vec<String> = a
            .rows
            .iter()
            .map(|&i| &rows[i].traced_user)
            .filter(|u| !u.is_empty())
            .cloned()
            .collect();
        let time = match r.us {
            Some(us) => format!("{}.{us:06}", r.stamp),
            None => r.stamp.clone(),
        };
        let mut text = format!(
            "{time}  +{} ms  {} {} -> {}\nrow id {}{}\n\n",
            ms(a.offset_us),
            r.direction,
            r.fromip,
            r.toip,
            ids.join(", "),
            if users.is_empty() {
                String::new()
            } else {
                format!("  traced_user {}", users.join(", "))
            }
        );
        text.push_str(&String::from_utf8_lossy(&r.msg));
        out.push(text);
    }
    out
}

/// [`message_texts`] as a JavaScript array literal.
fn messages_js(l: &Ladder, rows: &[StoredRow]) -> String {
    let mut out = String::from("[");
    for (k, text) in message_texts(l, rows).iter().enumerate() {
        if k > 0 {
            out.push_str(",\n");
        }
        quote(text, &mut out);
    }
    out.push(']');
    // Inside <script>, "</" could end the element early.
    out.replace("</", "<\\/")
}

/// One HTML file: the SVG ladder; clicking an arrow shows its message.
pub fn render_html(l: &Ladder, rows: &[StoredRow]) -> String {
    let title = l.callids.join(", ");
    let start = match l.start_us {
        Some(us) => format!("{}.{us:06}", l.start),
        None => format!("{} (to the second: the table has no time_us)", l.start),
    };
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>siptrace {t}</title>\n<style>\n\
         body{{font-family:sans-serif;margin:1em}} h1{{font-size:1.1em}}\n\
         #ladder{{overflow-x:auto}} #msg{{background:#f6f6f6;border:1px solid #ccc;\
         padding:.6em;white-space:pre-wrap;font-family:monospace;font-size:12px}}\n\
         </style>\n</head>\n<body>\n<h1>Call-ID {t}</h1>\n<p>Start {start}, {n} messages from {r} rows. \
         Click an arrow to see its message.</p>\n<div id=\"ladder\">\n{svg}</div>\n\
         <pre id=\"msg\">(no message selected)</pre>\n<script>\n\
         const MSGS = {msgs};\n\
         const box = document.getElementById('msg');\n\
         document.querySelectorAll('g.arrow').forEach(function (g) {{\n\
         \x20 g.addEventListener('click', function () {{\n\
         \x20   document.querySelectorAll('g.arrow.sel').forEach(function (o) {{ o.classList.remove('sel'); }});\n\
         \x20   g.classList.add('sel');\n\
         \x20   box.textContent = MSGS[Number(g.dataset.i)];\n\
         \x20 }});\n\
         }});\n\
         document.body.dataset.ready = '1';\n\
         </script>\n</body>\n</html>\n",
        t = esc(&title),
        start = esc(&start),
        n = l.arrows.len(),
        r = rows.len(),
        svg = render_svg(l, rows),
        msgs = messages_js(l, rows),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::call::tests::row;
    use crate::inspect::ladder::build;

    #[test]
    fn one_group_per_arrow_and_script_safe_text() {
        let msg = "MESSAGE sip:b@x SIP/2.0\r\nCall-ID: c1\r\nCSeq: 1 MESSAGE\r\n\r\n</script><b>&";
        let rows = vec![
            row(1, 0, 0, "", "MESSAGE", msg),
            row(2, 1, 0, "", "MESSAGE", msg),
        ];
        let l = build(&rows);
        let html = render_html(&l, &rows);
        assert_eq!(html.matches("<g class=\"arrow").count(), 2);
        assert_eq!(html.matches("</script>").count(), 1, "{html}");
        assert!(html.contains("(retrans)"));
        let svg = render_svg(&l, &rows);
        assert!(svg.starts_with("<svg"));
        assert!(!svg.contains("<b>"));
        assert_eq!(esc("a<&>\"'\u{1}"), "a&lt;&amp;&gt;&quot;&#39;\u{fffd}");
    }
}
