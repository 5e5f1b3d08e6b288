//! siptrace: decides which rows a traced event yields and what they say.
//!
//! Owns the `sip_trace` column semantics (docs/decisions.md §1–§2, docs/kamailio.md
//! §4): the trace_on switch, the row-multiplication rule (one `''` row when
//! the event's "no-user" condition holds, then one row per traced_user AVP
//! value), address rendering, trace_local_ip, and the duplicate_uri / HEP
//! encoders (dup.rs, hep.rs) plus the state machine of a TCP connection to
//! a capture node (stream.rs). It is plain data in, rows out: it knows
//! nothing of sockets, the script interpreter or the database driver — the
//! core hands it facts already pulled out of the message, and db/ stores
//! the rows it returns.

pub mod dup;
pub mod hep;
pub mod stream;

use crate::clock::{WallTime, local_datetime};
use crate::db::Row;
use std::net::SocketAddr;

/// What Kamailio writes when a message has no destination (5.6 form, with
/// the port — docs/decisions.md §2).
pub const ANY_DEST: &str = "any:255.255.255.255:5060";

/// Transport names as they appear in `fromip`/`toip` (the script's type:
/// one enum for the whole crate).
pub use crate::script::Proto;

/// `proto:ip:port`, IPv6 in brackets (docs/decisions.md §2).
pub fn endpoint(proto: Proto, addr: SocketAddr) -> String {
    // SocketAddr's Display already brackets IPv6 and drops the scope only
    // when absent; that is the form parsers of proto:ip:port need.
    format!("{}:{}", proto.as_str(), addr)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    In,
    Out,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}

/// The columns a message contributes, pulled out of it by the caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub callid: String,
    /// Request method, or for replies the CSeq method (docs/decisions.md §2).
    pub method: String,
    /// '' for requests, the decimal code for replies.
    pub status: String,
    pub fromtag: String,
    pub totag: String,
}

/// One traced wire event: the bytes and where they went.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    pub bytes: &'a [u8],
    pub facts: &'a Facts,
    pub dir: Direction,
    pub fromip: String,
    pub toip: String,
    pub time: WallTime,
}

/// Why an event is being traced: the two paths have different "no-user"
/// conditions (docs/kamailio.md §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// `sip_trace()` from the script: the '' row when trace_on.
    Script,
    /// A tm/sl/forward event of a message whose trace flag is (or is not) set:
    /// the '' row when trace_on AND the flag.
    Flag { flag_set: bool },
}

/// The static part of the siptrace configuration that shapes rows.
#[derive(Debug, Clone, Default)]
pub struct TraceSettings {
    pub trace_local_ip: Option<String>,
    pub trace_to_database: bool,
}

/// Counters reported by `sip_trace_stats` (docs/decisions.md §9 order lives in mi/).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceCounters {
    pub events: u64,
    pub rows: u64,
}

#[derive(Debug)]
pub struct Tracer {
    /// The shared `trace_on` int: MI `sip_trace on|off` sets 1/0, the modparam
    /// may set any int (and then the status reply shows nothing, docs/kamailio.md §3.1).
    pub on: i32,
    settings: TraceSettings,
    pub counters: TraceCounters,
}

impl Tracer {
    pub fn new(trace_on: i32, settings: TraceSettings) -> Tracer {
        Tracer {
            on: trace_on,
            settings,
            counters: TraceCounters::default(),
        }
    }

    /// Whether an event with this trigger and these traced users yields any
    /// row — the gate for building facts and for duplicate_uri (docs/decisions.md §1).
    pub fn wants(&self, trigger: Trigger, users: usize) -> bool {
        self.no_user_row(trigger) || users > 0
    }

    fn no_user_row(&self, trigger: Trigger) -> bool {
        self.on != 0
            && match trigger {
                Trigger::Script => true,
                Trigger::Flag { flag_set } => flag_set,
            }
    }

    /// The local address as a row shows it: trace_local_ip, verbatim, when
    /// configured (docs/kamailio.md §4.1), else the socket's own address.
    pub fn local(&self, actual: String) -> String {
        match &self.settings.trace_local_ip {
            Some(ip) => ip.clone(),
            None => actual,
        }
    }

    pub fn to_database(&self) -> bool {
        self.settings.trace_to_database
    }

    /// Appends the rows of one event to `out`: the '' row first, then one
    /// per traced user in the order given (Kamailio's AVP list order). All
    /// rows share the event's time. Returns how many were added.
    pub fn rows(
        &mut self,
        ev: &Event<'_>,
        trigger: Trigger,
        users: &[String],
        table: Option<&str>,
        out: &mut Vec<Row>,
    ) -> usize {
        if !self.wants(trigger, users.len()) {
            return 0;
        }
        let stamp = local_datetime(ev.time.sec);
        let no_user = self.no_user_row(trigger).then_some("");
        let before = out.len();
        for user in no_user.into_iter().chain(users.iter().map(String::as_str)) {
            out.push(Row {
                table: table.map(str::to_string),
                msg: ev.bytes.to_vec(),
                callid: ev.facts.callid.clone(),
                method: ev.facts.method.clone(),
                status: ev.facts.status.clone(),
                fromip: ev.fromip.clone(),
                toip: ev.toip.clone(),
                time_sec: ev.time.sec,
                time_us: ev.time.usec,
                time_stamp: stamp.clone(),
                direction: ev.dir.as_str(),
                fromtag: ev.facts.fromtag.clone(),
                totag: ev.facts.totag.clone(),
                traced_user: user.to_string(),
            });
        }
        let added = out.len() - before;
        self.counters.events += 1;
        self.counters.rows += added as u64;
        added
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            callid: "c1".into(),
            method: "INVITE".into(),
            status: String::new(),
            fromtag: "ft".into(),
            totag: String::new(),
        }
    }

    fn ev(f: &Facts) -> Event<'_> {
        Event {
            bytes: b"INVITE sip:b@x SIP/2.0\r\n\r\n",
            facts: f,
            dir: Direction::In,
            fromip: endpoint(Proto::Udp, "10.0.0.1:5060".parse().unwrap()),
            toip: endpoint(Proto::Udp, "[2001:db8::1]:5070".parse().unwrap()),
            time: WallTime {
                sec: 1_700_000_000,
                usec: 42,
            },
        }
    }

    /// (trace_on, trigger, users) -> traced_user column of each row.
    #[test]
    fn row_multiplication_rule() {
        let script = Trigger::Script;
        let flag = Trigger::Flag { flag_set: true };
        let noflag = Trigger::Flag { flag_set: false };
        let u = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cases: &[(i32, Trigger, Vec<String>, &[&str])] = &[
            (1, script, u(&[]), &[""]),
            (0, script, u(&[]), &[]),
            (1, script, u(&["a", "b"]), &["", "a", "b"]),
            (0, script, u(&["a", "b"]), &["a", "b"]),
            (1, flag, u(&[]), &[""]),
            (1, noflag, u(&[]), &[]),
            (1, noflag, u(&["a"]), &["a"]),
            (0, flag, u(&["a"]), &["a"]),
            (2, script, u(&[]), &[""]),
        ];
        for (on, trig, users, want) in cases {
            let mut t = Tracer::new(*on, TraceSettings::default());
            let f = facts();
            let mut out = Vec::new();
            let n = t.rows(&ev(&f), *trig, users, None, &mut out);
            let got: Vec<&str> = out.iter().map(|r| r.traced_user.as_str()).collect();
            assert_eq!(&got, want, "on={on} {trig:?} {users:?}");
            assert_eq!(n, want.len());
            assert_eq!(t.wants(*trig, users.len()), !want.is_empty());
        }
    }

    #[test]
    fn row_columns() {
        let mut t = Tracer::new(1, TraceSettings::default());
        let f = facts();
        let mut out = Vec::new();
        t.rows(
            &ev(&f),
            Trigger::Script,
            &["sip:u@x".into()],
            Some("t2"),
            &mut out,
        );
        let r = &out[1];
        assert_eq!(r.msg, ev(&f).bytes);
        assert_eq!(r.fromip, "udp:10.0.0.1:5060");
        assert_eq!(r.toip, "udp:[2001:db8::1]:5070");
        assert_eq!((r.time_sec, r.time_us), (1_700_000_000, 42));
        assert_eq!(r.time_stamp, out[0].time_stamp);
        assert_eq!(r.time_stamp, local_datetime(1_700_000_000));
        assert_eq!((r.direction, r.method.as_str()), ("in", "INVITE"));
        assert_eq!((r.fromtag.as_str(), r.callid.as_str()), ("ft", "c1"));
        assert_eq!(r.table.as_deref(), Some("t2"));
        assert_eq!(t.counters, TraceCounters { events: 1, rows: 2 });
    }

    #[test]
    fn trace_local_ip_is_verbatim() {
        let t = Tracer::new(
            1,
            TraceSettings {
                trace_local_ip: Some("10.1.1.1:5064".into()),
                trace_to_database: true,
            },
        );
        assert_eq!(t.local("udp:127.0.0.1:5060".into()), "10.1.1.1:5064");
        let t = Tracer::new(1, TraceSettings::default());
        assert_eq!(t.local("udp:127.0.0.1:5060".into()), "udp:127.0.0.1:5060");
    }
}
