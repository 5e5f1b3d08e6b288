//! Runtime trace filters (docs/decisions.md §16): "trace this user, this IP
//! or this Call-ID for the next N seconds", set over MI/JSON-RPC, matched
//! against each message, expired by time, kept across restarts.
//!
//! Pure: the list, its bounds, matching, expiry and the text of the state
//! file, all handed the wall-clock second (`now`); the file itself is read
//! and written by reactor/filter_file.rs, the commands live in mi/, and the
//! core (core/state.rs) decides which messages are probed. Depends on
//! nothing but std and thiserror.

use std::fmt;
use std::net::IpAddr;

/// At most this many filters at once (issue 17): a filter is checked
/// against every message, so the list must stay short.
pub const MAX_FILTERS: usize = 1000;
/// TTL of a filter added without one.
pub const DEFAULT_TTL: u64 = 3600;
/// Default of the `filter_max_ttl` modparam: one day.
pub const DEFAULT_MAX_TTL: u64 = 86_400;
/// Longest value accepted (a user part, an address or a Call-ID).
pub const MAX_VALUE_LEN: usize = 256;

/// What a filter compares its value with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterKind {
    /// The user part of the From, To or Request-URI.
    User,
    /// The source or destination IP address of the message.
    Ip,
    /// The Call-ID.
    CallId,
}

impl FilterKind {
    pub fn parse(s: &str) -> Option<FilterKind> {
        match s.trim().to_ascii_lowercase().as_str() {
            "user" => Some(FilterKind::User),
            "ip" => Some(FilterKind::Ip),
            "callid" | "call-id" | "call_id" => Some(FilterKind::CallId),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FilterKind::User => "user",
            FilterKind::Ip => "ip",
            FilterKind::CallId => "callid",
        }
    }
}

impl fmt::Display for FilterKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a filter command was refused; the text is the MI/JSON-RPC reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("unknown filter kind '{0}': use user, ip or callid")]
    Kind(String),
    #[error("empty filter value")]
    Empty,
    #[error("filter value longer than {MAX_VALUE_LEN} bytes or with control characters")]
    Value,
    #[error("'{0}' is not an IP address")]
    Ip(String),
    #[error("bad TTL '{0}': seconds, 1 to {1}")]
    Ttl(String, u64),
    #[error("too many filters ({MAX_FILTERS}): delete some first")]
    Full,
    #[error("no filter with id {0}")]
    NoSuchId(String),
}

/// One filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub id: u64,
    pub kind: FilterKind,
    /// As given; IP addresses in their canonical text.
    pub value: String,
    /// Unix second at which it stops matching (absolute, so a restart
    /// keeps the remaining TTL).
    pub expires: i64,
    /// Messages it matched.
    pub matched: u64,
    ip: Option<IpAddr>,
}

/// A filter as `list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub id: u64,
    pub kind: FilterKind,
    pub value: String,
    pub secs_left: u64,
    pub matched: u64,
}

/// What a message offers to the filters.
#[derive(Debug, Clone, Default)]
pub struct Probe<'a> {
    /// User parts of From, To and the Request-URI (those present).
    pub users: Vec<&'a str>,
    /// Source and destination addresses (those known).
    pub ips: Vec<IpAddr>,
    pub callid: &'a str,
}

#[derive(Debug, Clone)]
pub struct Filters {
    list: Vec<Filter>,
    next_id: u64,
    max_ttl: u64,
    /// Changed since the state file was last written.
    dirty: bool,
}

impl Default for Filters {
    fn default() -> Self {
        Filters::new(DEFAULT_MAX_TTL)
    }
}

impl Filters {
    pub fn new(max_ttl: u64) -> Filters {
        Filters {
            list: Vec::new(),
            next_id: 1,
            max_ttl: max_ttl.max(1),
            dirty: false,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn has_ip(&self) -> bool {
        self.list.iter().any(|f| f.kind == FilterKind::Ip)
    }

    /// Adds a filter from command arguments; `ttl` None is [`DEFAULT_TTL`]
    /// (capped by the maximum). Returns its id.
    pub fn add(
        &mut self,
        kind: &str,
        value: &str,
        ttl: Option<&str>,
        now: i64,
    ) -> Result<u64, FilterError> {
        let kind = FilterKind::parse(kind).ok_or_else(|| FilterError::Kind(kind.to_string()))?;
        let value = value.trim();
        if value.is_empty() {
            return Err(FilterError::Empty);
        }
        if value.len() > MAX_VALUE_LEN || value.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return Err(FilterError::Value);
        }
        let ttl = match ttl.map(str::trim) {
            None | Some("") => DEFAULT_TTL.min(self.max_ttl),
            Some(t) => t
                .parse::<u64>()
                .ok()
                .filter(|n| (1..=self.max_ttl).contains(n))
                .ok_or_else(|| FilterError::Ttl(t.to_string(), self.max_ttl))?,
        };
        let ip = match kind {
            FilterKind::Ip => Some(parse_ip(value).ok_or_else(|| FilterError::Ip(value.into()))?),
            _ => None,
        };
        if self.list.len() >= MAX_FILTERS {
            return Err(FilterError::Full);
        }
        let id = self.next_id;
        self.next_id += 1;
        self.list.push(Filter {
            id,
            kind,
            value: ip.map_or_else(|| value.to_string(), |i| i.to_string()),
            expires: now.saturating_add(ttl as i64),
            matched: 0,
            ip,
        });
        self.dirty = true;
        Ok(id)
    }

    /// Deletes filter `id`, or every filter for `all`; returns how many.
    pub fn del(&mut self, which: &str) -> Result<usize, FilterError> {
        let which = which.trim();
        let before = self.list.len();
        if which.eq_ignore_ascii_case("all") {
            self.list.clear();
        } else {
            let id: u64 = which
                .parse()
                .map_err(|_| FilterError::NoSuchId(which.to_string()))?;
            self.list.retain(|f| f.id != id);
            if self.list.len() == before {
                return Err(FilterError::NoSuchId(which.to_string()));
            }
        }
        let n = before - self.list.len();
        self.dirty |= n > 0;
        Ok(n)
    }

    pub fn list(&self, now: i64) -> Vec<Listed> {
        self.list
            .iter()
            .filter(|f| f.expires > now)
            .map(|f| Listed {
                id: f.id,
                kind: f.kind,
                value: f.value.clone(),
                secs_left: (f.expires - now) as u64,
                matched: f.matched,
            })
            .collect()
    }

    /// Does any live filter match? Each one that does counts the message.
    pub fn matches(&mut self, p: &Probe<'_>, now: i64) -> bool {
        let mut any = false;
        for f in self.list.iter_mut().filter(|f| f.expires > now) {
            let hit = match f.kind {
                FilterKind::User => p.users.iter().any(|u| *u == f.value),
                FilterKind::Ip => f.ip.is_some_and(|ip| p.ips.contains(&ip)),
                FilterKind::CallId => p.callid == f.value,
            };
            if hit {
                f.matched += 1;
                any = true;
            }
        }
        any
    }

    /// Is `ip` the value of a live ip filter? (A sent message's
    /// destination; counted as a match.)
    pub fn matches_ip(&mut self, ip: IpAddr, now: i64) -> bool {
        self.matches(
            &Probe {
                ips: vec![ip],
                ..Probe::default()
            },
            now,
        )
    }

    /// Removes the filters whose time has come and returns them (the
    /// caller logs them).
    pub fn expire(&mut self, now: i64) -> Vec<Filter> {
        let (gone, kept): (Vec<Filter>, Vec<Filter>) = std::mem::take(&mut self.list)
            .into_iter()
            .partition(|f| f.expires <= now);
        self.list = kept;
        self.dirty |= !gone.is_empty();
        gone
    }

    /// The earliest expiry (Unix second).
    pub fn next_expiry(&self) -> Option<i64> {
        self.list.iter().map(|f| f.expires).min()
    }

    /// True once after each change: the state file should be written.
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// The state file's text: a header, then one line per filter:
    /// `id kind expires matched value` (value last: it has no blanks).
    pub fn render(&self) -> String {
        let mut s = format!("# siptraced trace filters v1\nnext_id {}\n", self.next_id);
        for f in &self.list {
            s.push_str(&format!(
                "{} {} {} {} {}\n",
                f.id, f.kind, f.expires, f.matched, f.value
            ));
        }
        s
    }

    /// Reads a state file's text: the filters still alive at `now` (with
    /// their remaining TTL, their expiry being absolute). Lines that do
    /// not parse are returned for the log, and skipped.
    pub fn restore(&mut self, text: &str, now: i64) -> Vec<String> {
        let mut bad = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(id) = line.strip_prefix("next_id ") {
                match id.trim().parse::<u64>() {
                    Ok(id) => self.next_id = self.next_id.max(id),
                    Err(_) => bad.push(format!("line {}: {line}", n + 1)),
                }
                continue;
            }
            match parse_line(line) {
                Some(f) if f.expires > now => {
                    if self.list.len() < MAX_FILTERS {
                        self.next_id = self.next_id.max(f.id + 1);
                        self.list.push(f);
                    }
                }
                Some(_) => self.dirty = true,
                None => bad.push(format!("line {}: {line}", n + 1)),
            }
        }
        bad
    }
}

fn parse_line(line: &str) -> Option<Filter> {
    let mut it = line.splitn(5, ' ');
    let id = it.next()?.parse().ok()?;
    let kind = FilterKind::parse(it.next()?)?;
    let expires = it.next()?.parse().ok()?;
    let matched = it.next()?.parse().ok()?;
    let value = it.next()?.to_string();
    if value.is_empty() {
        return None;
    }
    let ip = match kind {
        FilterKind::Ip => Some(parse_ip(&value)?),
        _ => None,
    };
    Some(Filter {
        id,
        kind,
        value,
        expires,
        matched,
        ip,
    })
}

fn parse_ip(s: &str) -> Option<IpAddr> {
    s.trim_start_matches('[').trim_end_matches(']').parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe<'a>(users: &[&'a str], ip: &str, callid: &'a str) -> Probe<'a> {
        Probe {
            users: users.to_vec(),
            ips: vec![ip.parse().unwrap()],
            callid,
        }
    }

    #[test]
    fn add_match_count_and_expire() {
        let mut f = Filters::new(7200);
        let a = f.add("user", "alice", Some("5"), 1000).unwrap();
        let b = f.add("IP", "[::1]", None, 1000).unwrap();
        let c = f.add("callid", "abc@h", Some("60"), 1000).unwrap();
        assert_eq!((a, b, c), (1, 2, 3));
        assert!(f.take_dirty());
        assert!(f.matches(&probe(&["bob", "alice"], "10.0.0.1", "x"), 1001));
        assert!(!f.matches(&probe(&["bob"], "10.0.0.1", "x"), 1001));
        assert!(f.matches(&probe(&[], "::1", "x"), 1001));
        assert!(f.matches(&probe(&[], "10.0.0.1", "abc@h"), 1001));
        assert!(f.matches_ip("::1".parse().unwrap(), 1001));
        let l = f.list(1002);
        assert_eq!(
            l.iter()
                .map(|x| (
                    x.id,
                    x.kind.as_str(),
                    x.value.as_str(),
                    x.secs_left,
                    x.matched
                ))
                .collect::<Vec<_>>(),
            vec![
                (1, "user", "alice", 3, 1),
                (2, "ip", "::1", 3598, 2),
                (3, "callid", "abc@h", 58, 1)
            ]
        );
        // Expired filters stop matching at once, and are removed by expire().
        assert!(!f.matches(&probe(&["alice"], "10.0.0.1", "x"), 1005));
        let gone = f.expire(1005);
        assert_eq!(gone.iter().map(|g| g.id).collect::<Vec<_>>(), vec![1]);
        assert!(f.take_dirty());
        assert_eq!(f.next_expiry(), Some(1060));
    }

    #[test]
    fn refusals() {
        let mut f = Filters::new(100);
        let cases: &[(&str, &str, Option<&str>, FilterError)] = &[
            ("uri", "a", None, FilterError::Kind("uri".into())),
            ("user", " ", None, FilterError::Empty),
            ("user", "a b", None, FilterError::Value),
            (
                "ip",
                "host.example",
                None,
                FilterError::Ip("host.example".into()),
            ),
            ("user", "a", Some("0"), FilterError::Ttl("0".into(), 100)),
            (
                "user",
                "a",
                Some("101"),
                FilterError::Ttl("101".into(), 100),
            ),
            ("user", "a", Some("x"), FilterError::Ttl("x".into(), 100)),
        ];
        for (k, v, t, want) in cases {
            assert_eq!(f.add(k, v, *t, 0).unwrap_err(), *want, "{k} {v} {t:?}");
        }
        // The default TTL never exceeds the maximum.
        f.add("user", "a", None, 0).unwrap();
        assert_eq!(f.list(0)[0].secs_left, 100);
        assert_eq!(f.del("9"), Err(FilterError::NoSuchId("9".into())));
        assert_eq!(f.del("x"), Err(FilterError::NoSuchId("x".into())));
        assert_eq!(f.del("1"), Ok(1));
        for i in 0..MAX_FILTERS {
            f.add("user", &format!("u{i}"), None, 0).unwrap();
        }
        assert_eq!(f.add("user", "one-more", None, 0), Err(FilterError::Full));
        assert_eq!(f.del("ALL"), Ok(MAX_FILTERS));
        assert!(f.is_empty());
    }

    #[test]
    fn state_file_round_trip_keeps_remaining_ttl() {
        let mut f = Filters::new(7200);
        f.add("user", "alice", Some("600"), 1000).unwrap();
        f.add("ip", "10.0.0.7", Some("10"), 1000).unwrap();
        f.add("callid", "x@y", Some("3000"), 1000).unwrap();
        f.matches(&probe(&["alice"], "10.0.0.7", ""), 1001);
        let text = f.render();
        let mut g = Filters::new(7200);
        let bad = g.restore(&format!("{text}garbage line\n"), 1100);
        assert_eq!(bad, vec!["line 6: garbage line".to_string()]);
        let l = g.list(1100);
        assert_eq!(
            l.iter()
                .map(|x| (x.id, x.value.as_str(), x.secs_left, x.matched))
                .collect::<Vec<_>>(),
            vec![(1, "alice", 500, 1), (3, "x@y", 2900, 0)]
        );
        // The expired one was dropped: the file is to be rewritten.
        assert!(g.take_dirty());
        // Ids are never reused after a restart.
        assert_eq!(g.add("user", "bob", None, 1100), Ok(4));
    }
}
