//! A minimal JSON writer for `siptrace`'s `--json` outputs: RFC 8259
//! strings (every control character escaped; bytes that are not UTF-8
//! replaced, as the output must be valid JSON) and a value tree printed
//! with two-space indentation, members in insertion order so that golden
//! files stay stable. Pure. (mi/json.rs prints Kamailio's srjson dialect,
//! which copies raw bytes and so is not it.)

use std::fmt::Write;

/// A JSON value to print.
#[derive(Debug, Clone, PartialEq)]
pub enum J {
    Null,
    Bool(bool),
    Int(i64),
    /// Printed with exactly three decimals (milliseconds from µs).
    Ms(i64),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(&'static str, J)>),
}

impl J {
    pub fn s(v: impl Into<String>) -> J {
        J::Str(v.into())
    }

    /// Pretty-printed, with a final newline.
    pub fn pretty(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, 0);
        out.push('\n');
        out
    }

    fn write(&self, out: &mut String, depth: usize) {
        let pad = |out: &mut String, d: usize| {
            for _ in 0..d {
                out.push_str("  ");
            }
        };
        match self {
            J::Null => out.push_str("null"),
            J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            J::Int(n) => {
                let _ = write!(out, "{n}");
            }
            J::Ms(us) => {
                let sign = if *us < 0 { "-" } else { "" };
                let a = us.unsigned_abs();
                let _ = write!(out, "{sign}{}.{:03}", a / 1000, a % 1000);
            }
            J::Str(s) => quote(s, out),
            J::Arr(v) if v.is_empty() => out.push_str("[]"),
            J::Arr(v) => {
                out.push_str("[\n");
                for (i, x) in v.iter().enumerate() {
                    pad(out, depth + 1);
                    x.write(out, depth + 1);
                    out.push_str(if i + 1 < v.len() { ",\n" } else { "\n" });
                }
                pad(out, depth);
                out.push(']');
            }
            J::Obj(m) if m.is_empty() => out.push_str("{}"),
            J::Obj(m) => {
                out.push_str("{\n");
                for (i, (k, x)) in m.iter().enumerate() {
                    pad(out, depth + 1);
                    quote(k, out);
                    out.push_str(": ");
                    x.write(out, depth + 1);
                    out.push_str(if i + 1 < m.len() { ",\n" } else { "\n" });
                }
                pad(out, depth);
                out.push('}');
            }
        }
    }
}

/// `s` as a JSON string literal.
pub fn quote(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // U+2028/2029 break JavaScript string literals when the JSON
            // is embedded in the HTML page's script.
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_stable_valid_json() {
        let v = J::Obj(vec![
            ("a", J::Int(1)),
            ("b", J::s("x\"\\\r\n\u{1}")),
            (
                "c",
                J::Arr(vec![J::Ms(1500), J::Ms(-2), J::Null, J::Bool(true)]),
            ),
            ("d", J::Arr(vec![])),
        ]);
        assert_eq!(
            v.pretty(),
            "{\n  \"a\": 1,\n  \"b\": \"x\\\"\\\\\\r\\n\\u0001\",\n  \"c\": [\n    1.500,\n    -0.002,\n    null,\n    true\n  ],\n  \"d\": []\n}\n"
        );
    }
}
