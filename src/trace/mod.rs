//! siptrace: decides which rows a traced event yields and what they say.
//!
//! Owns the `sip_trace` column semantics (docs/decisions.md §1–§2, docs/kamailio.md
//! §4): the trace_on switch, the row-multiplication rule (one `''` row when
//! the event's "no-user" condition holds, then one row per traced_user AVP
//! value), address rendering, trace_local_ip, the duplicate_uri target
//! (dup.rs), the mirrored copies and their HEP encapsulation (mirror.rs,
//! hep.rs) plus the state machine of a TCP connection to a capture node
//! (stream.rs). It is plain data in, rows and copies out: it knows nothing
//! of sockets, the script interpreter or the database driver — the core
//! hands it facts already pulled out of the message and typed endpoints,
//! and db/ stores the rows it returns. Depends on sip/ (transport and
//! address grammar), db::Row and clock.

pub mod dup;
pub mod filter;
pub mod hep;
pub mod mask;
pub mod mirror;
pub mod stream;

use crate::clock::{WallTime, local_datetime};
use crate::db::{Row, Shared};
use crate::sip::Transport;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// What Kamailio writes when a message has no destination (5.6 form, with
/// the port — docs/decisions.md §2).
pub(crate) const ANY_DEST: &str = "any:255.255.255.255:5060";

/// [`ANY_DEST`] as the address HEP carries (Kamailio's siptrace parses the
/// row's string back); kept beside it, and tested equal.
const ANY_ADDR: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::BROADCAST,
    5060,
));

/// One end of a traced message. Text is made only where a row column is
/// written ([`Endpoint::render`]); HEP takes the address ([`Endpoint::hep`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A socket: `proto:ip:port`, IPv6 in brackets (docs/decisions.md §2).
    Sock {
        transport: Transport,
        addr: SocketAddr,
    },
    /// No destination: [`ANY_DEST`].
    Any,
    /// trace_local_ip in place of our own address (docs/kamailio.md §4.1).
    Configured(Arc<LocalIp>),
}

impl Endpoint {
    pub fn sock(transport: Transport, addr: SocketAddr) -> Endpoint {
        Endpoint::Sock { transport, addr }
    }

    /// The `fromip`/`toip` column.
    pub(crate) fn render(&self) -> String {
        match self {
            // SocketAddr's Display already brackets IPv6 and drops the scope
            // only when absent; that is the form parsers of proto:ip:port need.
            // By hand for IPv4, the common case: `format!` through
            // SocketAddr's Display cost ~2 400 instructions per event.
            Endpoint::Sock {
                transport,
                addr: SocketAddr::V4(a),
            } => {
                let mut s = String::with_capacity(26);
                s.push_str(transport.as_str());
                for (i, o) in a.ip().octets().into_iter().enumerate() {
                    s.push(if i == 0 { ':' } else { '.' });
                    push_decimal(&mut s, u32::from(o));
                }
                s.push(':');
                push_decimal(&mut s, u32::from(a.port()));
                s
            }
            Endpoint::Sock { transport, addr } => format!("{transport}:{addr}"),
            Endpoint::Any => ANY_DEST.to_string(),
            Endpoint::Configured(l) => l.text.clone(),
        }
    }

    /// Transport and address for a HEP header, as Kamailio's siptrace reads
    /// them back from the row's strings; None when the end names no IP
    /// address (a host name in trace_local_ip).
    pub(crate) fn hep(&self) -> Option<(Transport, SocketAddr)> {
        match self {
            Endpoint::Sock { transport, addr } => Some((*transport, *addr)),
            Endpoint::Any => Some((Transport::Udp, ANY_ADDR)),
            Endpoint::Configured(l) => l.addr,
        }
    }
}

/// `n` in decimal, without the formatting machinery.
fn push_decimal(s: &mut String, n: u32) {
    let mut digits = [0u8; 10];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[i..] {
        s.push(char::from(d));
    }
}

/// trace_local_ip: written verbatim into rows (docs/kamailio.md §4.1), and
/// read once at start-up for the address HEP carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalIp {
    text: String,
    addr: Option<(Transport, SocketAddr)>,
}

impl LocalIp {
    /// Accepts whatever was configured: `proto:ip:port`, `ip:port`,
    /// `[v6]:port`, a bare IP (port 0 for HEP), or anything else (then HEP
    /// gets no address). A protocol siptraced does not serve names no
    /// transport, so HEP gets no address either.
    pub fn new(text: &str) -> LocalIp {
        let (transport, rest) = match text.split_once(':') {
            Some((p, rest)) if p.eq_ignore_ascii_case("any") => (Some(Transport::Udp), rest),
            Some((p, rest)) => match Transport::parse(p) {
                Ok(t) => (Some(t), rest),
                Err(crate::sip::TransportError::Unserved(_)) => (None, rest),
                Err(crate::sip::TransportError::Unknown(_)) => (Some(Transport::Udp), text),
            },
            None => (Some(Transport::Udp), text),
        };
        let addr = transport.and_then(|t| {
            if let Ok(a) = rest.parse::<SocketAddr>() {
                return Some((t, a));
            }
            let ip = rest.trim_start_matches('[').trim_end_matches(']');
            let ip: IpAddr = ip.parse().ok()?;
            Some((t, SocketAddr::new(ip, 0)))
        });
        LocalIp {
            text: text.to_string(),
            addr,
        }
    }
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
    pub callid: Shared<str>,
    /// Request method, or for replies the CSeq method (docs/decisions.md §2).
    pub method: Shared<str>,
    /// '' for requests, the decimal code for replies.
    pub status: Shared<str>,
    pub fromtag: Shared<str>,
    pub totag: Shared<str>,
}

/// One traced wire event: the bytes and where they went.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    pub bytes: &'a [u8],
    pub facts: &'a Facts,
    pub dir: Direction,
    pub from: Endpoint,
    pub to: Endpoint,
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
    /// A runtime filter matched the message or its dialog: the '' row
    /// whatever trace_on and the flag say (docs/decisions.md §16).
    Forced,
}

/// The static part of the siptrace configuration that shapes rows.
#[derive(Debug, Clone, Default)]
pub struct TraceSettings {
    pub trace_local_ip: Option<String>,
    pub trace_to_database: bool,
    /// Secrets kept out of rows and copies (docs/decisions.md §13).
    pub mask: mask::MaskSettings,
}

/// Counters reported by `sip_trace_stats` (docs/decisions.md §9 order lives in mi/).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceCounters {
    pub events: u64,
    pub rows: u64,
    /// Events that gave a `traced_user=''` row, by kind: Kamailio's
    /// `siptrace:traced_requests` / `traced_replies` (docs/kamailio.md §4.1).
    pub traced_requests: u64,
    pub traced_replies: u64,
    /// Traced events whose stored/mirrored bytes had a secret masked.
    pub msgs_masked: u64,
}

#[derive(Debug)]
pub struct Tracer {
    /// The shared `trace_on` int: MI `sip_trace on|off` sets 1/0, the modparam
    /// may set any int (and then the status reply shows nothing, docs/kamailio.md §3.1).
    pub on: i32,
    local_ip: Option<Arc<LocalIp>>,
    to_database: bool,
    masker: mask::Masker,
    pub counters: TraceCounters,
    /// The last `time_stamp` made and its second: every event of a second
    /// shares the text (localtime_r and formatting once per second).
    stamp: (i64, Shared<str>),
}

impl Tracer {
    pub fn new(trace_on: i32, settings: TraceSettings) -> Tracer {
        Tracer {
            on: trace_on,
            local_ip: settings
                .trace_local_ip
                .as_deref()
                .map(|t| Arc::new(LocalIp::new(t))),
            to_database: settings.trace_to_database,
            masker: mask::Masker::new(&settings.mask),
            counters: TraceCounters::default(),
            stamp: (0, Shared::from("")),
        }
    }

    /// Whether an event with this trigger and these traced users yields any
    /// row — the gate for building facts and for duplicate_uri (docs/decisions.md §1).
    pub(crate) fn wants(&self, trigger: Trigger, users: usize) -> bool {
        self.no_user_row(trigger) || users > 0
    }

    fn no_user_row(&self, trigger: Trigger) -> bool {
        match trigger {
            Trigger::Forced => true,
            Trigger::Script => self.on != 0,
            Trigger::Flag { flag_set } => self.on != 0 && flag_set,
        }
    }

    /// The local address as a row shows it: trace_local_ip, verbatim, when
    /// configured (docs/kamailio.md §4.1), else the socket's own address.
    pub fn local(&self, actual: Endpoint) -> Endpoint {
        match &self.local_ip {
            Some(ip) => Endpoint::Configured(Arc::clone(ip)),
            None => actual,
        }
    }

    /// The bytes rows and copies of one event carry: its wire bytes with
    /// the secrets masked (docs/decisions.md §13). Called once per event,
    /// before [`Tracer::rows`] and the mirror copy, so both agree.
    pub fn mask<'a>(&mut self, bytes: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
        let out = self.masker.mask(bytes);
        if matches!(out, std::borrow::Cow::Owned(_)) {
            self.counters.msgs_masked += 1;
        }
        out
    }

    pub(crate) fn to_database(&self) -> bool {
        self.to_database
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
        if self.stamp.1.is_empty() || self.stamp.0 != ev.time.sec {
            self.stamp = (ev.time.sec, local_datetime(ev.time.sec).into());
        }
        let stamp = self.stamp.1.clone();
        let no_user = self.no_user_row(trigger).then_some("");
        let (fromip, toip): (Shared<str>, Shared<str>) =
            (ev.from.render().into(), ev.to.render().into());
        // One copy of the message for all the event's rows.
        let mut msg: Option<Shared<[u8]>> = None;
        let before = out.len();
        for user in no_user.into_iter().chain(users.iter().map(String::as_str)) {
            out.push(Row {
                table: table.map(str::to_string),
                msg: msg.get_or_insert_with(|| ev.bytes.into()).clone(),
                callid: ev.facts.callid.clone(),
                method: ev.facts.method.clone(),
                status: ev.facts.status.clone(),
                fromip: fromip.clone(),
                toip: toip.clone(),
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
        if no_user.is_some() {
            if ev.facts.status.is_empty() {
                self.counters.traced_requests += 1;
            } else {
                self.counters.traced_replies += 1;
            }
        }
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
            status: "".into(),
            fromtag: "ft".into(),
            totag: "".into(),
        }
    }

    fn ev(f: &Facts) -> Event<'_> {
        Event {
            bytes: b"INVITE sip:b@x SIP/2.0\r\n\r\n",
            facts: f,
            dir: Direction::In,
            from: Endpoint::sock(Transport::Udp, "10.0.0.1:5060".parse().unwrap()),
            to: Endpoint::sock(Transport::Udp, "[2001:db8::1]:5070".parse().unwrap()),
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
            (0, Trigger::Forced, u(&[]), &[""]),
            (0, Trigger::Forced, u(&["a"]), &["", "a"]),
            (1, Trigger::Forced, u(&[]), &[""]),
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
        assert_eq!(r.msg, ev(&f).bytes.into());
        assert_eq!(r.fromip, "udp:10.0.0.1:5060".into());
        assert_eq!(r.toip, "udp:[2001:db8::1]:5070".into());
        assert_eq!((r.time_sec, r.time_us), (1_700_000_000, 42));
        assert_eq!(r.time_stamp, out[0].time_stamp);
        assert_eq!(r.time_stamp, local_datetime(1_700_000_000).into());
        assert_eq!((r.direction, &*r.method), ("in", "INVITE"));
        assert_eq!((&*r.fromtag, &*r.callid), ("ft", "c1"));
        assert_eq!(r.table.as_deref(), Some("t2"));
        assert_eq!(
            t.counters,
            TraceCounters {
                events: 1,
                rows: 2,
                traced_requests: 1,
                ..TraceCounters::default()
            }
        );
    }

    #[test]
    fn trace_local_ip_is_verbatim() {
        let actual = Endpoint::sock(Transport::Udp, "127.0.0.1:5060".parse().unwrap());
        let t = Tracer::new(
            1,
            TraceSettings {
                trace_local_ip: Some("10.1.1.1:5064".into()),
                trace_to_database: true,
                ..TraceSettings::default()
            },
        );
        assert_eq!(t.local(actual.clone()).render(), "10.1.1.1:5064");
        let t = Tracer::new(1, TraceSettings::default());
        assert_eq!(t.local(actual.clone()).render(), "udp:127.0.0.1:5060");
    }

    /// (endpoint, column text, HEP transport and address).
    #[test]
    fn endpoints_render_and_give_hep_addresses() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        let local = |s: &str| Endpoint::Configured(Arc::new(LocalIp::new(s)));
        let cases = [
            (
                Endpoint::sock(Transport::Udp, a("127.0.0.1:5060")),
                "udp:127.0.0.1:5060",
                Some((Transport::Udp, a("127.0.0.1:5060"))),
            ),
            (
                Endpoint::sock(Transport::Tls, a("0.10.200.255:0")),
                "tls:0.10.200.255:0",
                Some((Transport::Tls, a("0.10.200.255:0"))),
            ),
            (
                Endpoint::sock(Transport::Udp, a("255.255.255.9:65535")),
                "udp:255.255.255.9:65535",
                Some((Transport::Udp, a("255.255.255.9:65535"))),
            ),
            (
                Endpoint::sock(Transport::Tcp, a("[2001:db8::1]:5070")),
                "tcp:[2001:db8::1]:5070",
                Some((Transport::Tcp, a("[2001:db8::1]:5070"))),
            ),
            (
                Endpoint::Any,
                ANY_DEST,
                Some((Transport::Udp, a("255.255.255.255:5060"))),
            ),
            // trace_local_ip values are verbatim (docs/kamailio.md §4.1).
            (
                local("TLS:10.0.0.1:5061"),
                "TLS:10.0.0.1:5061",
                Some((Transport::Tls, a("10.0.0.1:5061"))),
            ),
            (
                local("10.1.1.1:5064"),
                "10.1.1.1:5064",
                Some((Transport::Udp, a("10.1.1.1:5064"))),
            ),
            (
                local("[::1]:5064"),
                "[::1]:5064",
                Some((Transport::Udp, a("[::1]:5064"))),
            ),
            (
                local("10.1.1.1"),
                "10.1.1.1",
                Some((Transport::Udp, a("10.1.1.1:0"))),
            ),
            (
                local("udp:[::1]"),
                "udp:[::1]",
                Some((Transport::Udp, a("[::1]:0"))),
            ),
            (
                local("any:255.255.255.255:5060"),
                ANY_DEST,
                Some((Transport::Udp, a("255.255.255.255:5060"))),
            ),
            (local("sctp:10.1.1.1:5060"), "sctp:10.1.1.1:5060", None),
            (
                local("proxy.example.com:5060"),
                "proxy.example.com:5060",
                None,
            ),
            (local(""), "", None),
        ];
        for (ep, text, hep) in cases {
            assert_eq!(ep.render(), text, "{ep:?}");
            assert_eq!(ep.hep(), hep, "{ep:?}");
        }
    }

    #[test]
    fn any_dest_and_its_hep_address_agree() {
        assert_eq!(format!("any:{ANY_ADDR}"), ANY_DEST);
    }
}
