//! Script values and the state a script reads and writes besides the message:
//! per-message/transaction flags and AVPs ([`MsgState`]), process-wide `$var`s
//! ([`Vars`]). Plain data with Kamailio's semantics; no I/O.

use std::collections::HashMap;
use std::fmt;

/// A script value. SIP text that is not UTF-8 is converted lossily by the host.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Value {
    #[default]
    Null,
    Int(i64),
    Str(String),
}

impl Value {
    /// The value as an integer, if it is one or a string holding one.
    pub(crate) fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            Value::Str(s) => s.trim().parse().ok(),
            Value::Null => None,
        }
    }

    /// The value as text for concatenation and function arguments; null is "".
    pub(crate) fn to_text(&self) -> String {
        match self {
            Value::Null => String::new(),
            Value::Int(n) => n.to_string(),
            Value::Str(s) => s.clone(),
        }
    }

    /// Truth in a condition: a number (or numeric string) is true when > 0, as
    /// Kamailio's `if` tests `v > 0`; any other non-empty string is true; null is false.
    pub(crate) fn truthy(&self) -> bool {
        match self {
            Value::Null => false,
            Value::Int(n) => *n > 0,
            Value::Str(s) => match s.trim().parse::<i64>() {
                Ok(n) => n > 0,
                Err(_) => !s.is_empty(),
            },
        }
    }
}

/// As xlog prints values: null as `<null>`.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => write!(f, "<null>"),
            Value::Int(n) => write!(f, "{n}"),
            Value::Str(s) => write!(f, "{s}"),
        }
    }
}

/// Why an AVP name or spec was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AvpNameError {
    /// What is inside `$avp(…)` (as written, trimmed) is no AVP name.
    #[error("invalid AVP name '{0}': expected i:NUMBER, s:NAME or NAME")]
    BadName(String),
    /// A module parameter (as written) is not `$avp(…)` at all.
    #[error("'{0}' is not an AVP spec: expected $avp(i:NUMBER), $avp(s:NAME) or $avp(NAME)")]
    NotASpec(String),
}

/// An AVP name: `$avp(i:123)` → `Int(123)`; `$avp(s:user)` and `$avp(user)` → `Str("user")`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AvpName {
    Int(u32),
    Str(String),
}

impl AvpName {
    /// Parses what is inside `$avp(…)`: `i:123`, `s:name`, or `name`.
    pub(crate) fn parse_inner(s: &str) -> Result<AvpName, AvpNameError> {
        let s = s.trim();
        let bad = || AvpNameError::BadName(s.to_string());
        if let Some(n) = s.strip_prefix("i:").or_else(|| s.strip_prefix("I:")) {
            return n.trim().parse().map(AvpName::Int).map_err(|_| bad());
        }
        let name = s
            .strip_prefix("s:")
            .or_else(|| s.strip_prefix("S:"))
            .unwrap_or(s)
            .trim();
        let ok = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
        if ok {
            Ok(AvpName::Str(name.to_string()))
        } else {
            Err(bad())
        }
    }

    /// Parses a full AVP spec as module parameters give it: `$avp(i:123)`,
    /// `$avp(s:user)`, `$avp(user)`.
    pub(crate) fn parse_spec(s: &str) -> Result<AvpName, AvpNameError> {
        let inner = s
            .trim()
            .strip_prefix("$avp(")
            .and_then(|r| r.strip_suffix(')'))
            .ok_or_else(|| AvpNameError::NotASpec(s.to_string()))?;
        AvpName::parse_inner(inner)
    }
}

impl fmt::Display for AvpName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AvpName::Int(n) => write!(f, "$avp(i:{n})"),
            AvpName::Str(s) => write!(f, "$avp(s:{s})"),
        }
    }
}

/// The AVP list of a message/transaction. Assigning adds a value (Kamailio's
/// `$avp(x) = v`); reading gives the most recently added; lists come most
/// recent first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Avps {
    /// Oldest first; lookups walk from the end.
    list: Vec<(AvpName, Value)>,
}

impl Avps {
    pub fn add(&mut self, name: AvpName, v: Value) {
        self.list.push((name, v));
    }

    pub(crate) fn remove_all(&mut self, name: &AvpName) {
        self.list.retain(|(n, _)| n != name);
    }

    /// The most recently added value.
    pub fn get(&self, name: &AvpName) -> Option<&Value> {
        self.nth(name, 0)
    }

    /// `$(avp(x)[i])`: 0 is the most recent; a negative index counts from the oldest (-1).
    pub fn nth(&self, name: &AvpName, i: i64) -> Option<&Value> {
        let mine = |(n, _): &&(AvpName, Value)| n == name;
        let found = if i >= 0 {
            self.list.iter().rev().filter(mine).nth(i as usize)
        } else {
            self.list
                .iter()
                .filter(mine)
                .nth(i.unsigned_abs() as usize - 1)
        };
        found.map(|(_, v)| v)
    }

    /// Bytes the list holds on the heap (entries and their strings), for
    /// the byte bounds of whoever keeps script state between messages.
    pub fn heap_bytes(&self) -> usize {
        let text = |s: &str| s.len();
        self.list.capacity() * std::mem::size_of::<(AvpName, Value)>()
            + self
                .list
                .iter()
                .map(|(n, v)| {
                    let n = match n {
                        AvpName::Str(s) => text(s),
                        AvpName::Int(_) => 0,
                    };
                    let v = match v {
                        Value::Str(s) => text(s),
                        _ => 0,
                    };
                    n + v
                })
                .sum::<usize>()
    }

    /// All values of `name`, in Kamailio's list order (most recently added first).
    pub fn values<'a>(&'a self, name: &'a AvpName) -> impl Iterator<Item = &'a Value> + 'a {
        self.list
            .iter()
            .rev()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v)
    }
}

/// Per message (and, carried by the caller, per transaction) script state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MsgState {
    /// Message flags 0..31 (`setflag`).
    pub flags: u32,
    pub avps: Avps,
    /// Traced as the trace flag would, without taking a script flag: a
    /// request of a dialog `sip_trace("", "", "d")` traces (docs/decisions.md §16).
    pub trace_scoped: bool,
    /// Traced whatever trace_on and the flag say: a runtime filter
    /// matched it, or its dialog (docs/decisions.md §16).
    pub trace_forced: bool,
}

impl MsgState {
    pub fn flag(&self, n: u8) -> bool {
        n < 32 && self.flags & (1 << n) != 0
    }

    /// About the bytes this state holds (for bounded queues of it).
    pub(crate) fn approx_bytes(&self) -> usize {
        self.avps
            .list
            .iter()
            .map(|(_, v)| 64 + v.to_text().len())
            .sum::<usize>()
            + std::mem::size_of::<MsgState>()
    }
}

/// `$var(x)`: script variables, process-local in Kamailio, so they persist from
/// one message to the next; the caller owns them. Unset reads as 0.
#[derive(Debug, Clone, Default)]
pub struct Vars(HashMap<String, Value>);

impl Vars {
    pub fn get(&self, name: &str) -> Value {
        self.0.get(name).cloned().unwrap_or(Value::Int(0))
    }

    /// Assigning `$null` resets the variable to 0, as Kamailio does.
    pub fn set(&mut self, name: &str, v: Value) {
        match v {
            Value::Null => {
                self.0.remove(name);
            }
            v => {
                self.0.insert(name.to_string(), v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avp_names() {
        let cases: &[(&str, Result<AvpName, &str>)] = &[
            ("$avp(i:123)", Ok(AvpName::Int(123))),
            ("$avp(s:user)", Ok(AvpName::Str("user".into()))),
            ("$avp(user)", Ok(AvpName::Str("user".into()))),
            (
                "  $avp(s:traced_user) ",
                Ok(AvpName::Str("traced_user".into())),
            ),
            (
                "$avp(i:x)",
                Err("invalid AVP name 'i:x': expected i:NUMBER, s:NAME or NAME"),
            ),
            (
                "$avp()",
                Err("invalid AVP name '': expected i:NUMBER, s:NAME or NAME"),
            ),
            (
                "s:user",
                Err(
                    "'s:user' is not an AVP spec: expected $avp(i:NUMBER), $avp(s:NAME) or $avp(NAME)",
                ),
            ),
            (
                "$var(x)",
                Err(
                    "'$var(x)' is not an AVP spec: expected $avp(i:NUMBER), $avp(s:NAME) or $avp(NAME)",
                ),
            ),
        ];
        for (s, want) in cases {
            assert_eq!(
                AvpName::parse_spec(s).map_err(|e| e.to_string()),
                want.clone().map_err(String::from),
                "{s}"
            );
        }
    }

    #[test]
    fn avp_list_order() {
        let x = AvpName::Str("x".into());
        let y = AvpName::Int(1);
        let mut a = Avps::default();
        a.add(x.clone(), Value::Str("a".into()));
        a.add(y.clone(), Value::Int(9));
        a.add(x.clone(), Value::Str("b".into()));
        a.add(x.clone(), Value::Int(3));
        let got: Vec<String> = a.values(&x).map(|v| v.to_string()).collect();
        assert_eq!(got, ["3", "b", "a"]);
        assert_eq!(a.get(&x), Some(&Value::Int(3)));
        assert_eq!(a.nth(&x, 1), Some(&Value::Str("b".into())));
        assert_eq!(a.nth(&x, -1), Some(&Value::Str("a".into())));
        assert_eq!(a.nth(&x, 3), None);
        assert_eq!(a.nth(&x, -4), None);
        a.remove_all(&x);
        assert_eq!(a.get(&x), None);
        assert_eq!(a.get(&y), Some(&Value::Int(9)));
    }

    #[test]
    fn truth() {
        let cases = [
            (Value::Null, false),
            (Value::Int(1), true),
            (Value::Int(0), false),
            (Value::Int(-1), false),
            (Value::Str("".into()), false),
            (Value::Str("abc".into()), true),
            (Value::Str("0".into()), false),
            (Value::Str("-2".into()), false),
            (Value::Str("7".into()), true),
        ];
        for (v, want) in cases {
            assert_eq!(v.truthy(), want, "{v:?}");
        }
    }
}
