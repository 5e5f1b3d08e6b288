//! The boundary between the interpreter and the world: the [`Host`] trait (the
//! reactor implements it) with the message pseudo-variables ([`MsgPv`]) and
//! the builtins that act on the message, transactions or trace ([`HostCall`]).
//! Constant arguments arrive already checked and typed; format arguments
//! already rendered. Nothing here does anything by itself.

use std::borrow::Cow;
use std::fmt;

use super::RouteId;
use super::value::{MsgState, Value};
use crate::sip::Transport;
use crate::trace::dup::DupTarget;

/// What a script needs from the process running it.
pub trait Host {
    /// Reads a message pseudo-variable; `Value::Null` when absent.
    fn pv_get(&mut self, pv: &MsgPv) -> Value;
    /// Writes one of the writable pseudo-variables ([`MsgPv::writable`]);
    /// `Value::Null` resets it (`$du = $null`). False when refused.
    fn pv_set(&mut self, pv: &MsgPv, v: &Value) -> bool;
    /// Runs a builtin.
    fn call(&mut self, call: HostCall<'_>, st: &mut MsgState) -> Ret;
    /// xlog and script errors.
    fn log(&mut self, level: log::Level, text: &str);
}

/// What a builtin answers. Kamailio's functions return an int (> 0 true,
/// < 0 false, 0 stops the script); that int is the script's business
/// (`$rc`, conditions, `return(n)`), so only the interpreter turns a `Ret`
/// into it and back. Hosts and builtins say what happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ret {
    /// 1: done, or the condition holds.
    True,
    /// -1: not done, or the condition does not hold.
    False,
    /// 0: stop the whole script, as `exit` (tm absorbed a retransmission or
    /// an ACK: nothing is left to do for this message).
    Exit,
    /// A positive code other than 1: true, with a detail `$rc` shows
    /// (mf_process_maxfwd_header's 2: the header was missing and added).
    TrueCode(i64),
    /// A negative code other than -1: false because of an error the script
    /// may tell apart (mf_process_maxfwd_header's -2: unreadable header).
    Err(i64),
}

impl From<bool> for Ret {
    fn from(holds: bool) -> Ret {
        if holds { Ret::True } else { Ret::False }
    }
}

/// Message pseudo-variables (Kamailio names in the comments).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MsgPv {
    /// `$rm`
    Method,
    /// `$ru`
    RUri,
    /// `$rU`
    RUser,
    /// `$rd`
    RDomain,
    /// `$rp`
    RPort,
    /// `$ou` (request URI as received)
    OrigRUri,
    /// `$du`
    DstUri,
    /// `$fu`
    FromUri,
    /// `$fU`
    FromUser,
    /// `$fd`
    FromDomain,
    /// `$fn`
    FromName,
    /// `$ft`
    FromTag,
    /// `$tu`
    ToUri,
    /// `$tU`
    ToUser,
    /// `$td`
    ToDomain,
    /// `$tn`
    ToName,
    /// `$tt`
    ToTag,
    /// `$ci`
    CallId,
    /// `$cs` (CSeq number)
    CSeq,
    /// `$ct`
    Contact,
    /// `$cT`
    ContentType,
    /// `$cl`
    ContentLength,
    /// `$si`
    SrcIp,
    /// `$sp`
    SrcPort,
    /// `$Ri`
    RcvIp,
    /// `$Rp`
    RcvPort,
    /// `$pr` / `$proto`
    Proto,
    /// `$rs` (reply status)
    Status,
    /// `$rr` (reply reason)
    Reason,
    /// `$ua`
    UserAgent,
    /// `$hdr(Name)` (first header of that name; compact forms are the host's business)
    Header(String),
    /// `$mb` (whole message)
    MsgBuf,
    /// `$ml` (message length)
    MsgLen,
    /// `$rb` (body)
    Body,
    /// `$T_reply_code` (winning reply in failure_route, else the reply's code)
    TReplyCode,
}

/// Why `$name` / `$name(arg)` names no message pseudo-variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PvError {
    #[error("$hdr needs a header name: $hdr(Name)")]
    HdrNeedsName,
    /// The name, without `$`.
    #[error("unknown pseudo-variable '${0}'")]
    Unknown(String),
    /// The name, without `$`.
    #[error("${0} takes no argument")]
    NoArgument(String),
}

/// (name, variant, writable). `hdr` takes an argument and is handled apart.
const MSG_PVS: &[(&str, MsgPv, bool)] = &[
    ("rm", MsgPv::Method, false),
    ("ru", MsgPv::RUri, true),
    ("rU", MsgPv::RUser, true),
    ("rd", MsgPv::RDomain, true),
    ("rp", MsgPv::RPort, true),
    ("ou", MsgPv::OrigRUri, false),
    ("du", MsgPv::DstUri, true),
    ("fu", MsgPv::FromUri, false),
    ("fU", MsgPv::FromUser, false),
    ("fd", MsgPv::FromDomain, false),
    ("fn", MsgPv::FromName, false),
    ("ft", MsgPv::FromTag, false),
    ("tu", MsgPv::ToUri, false),
    ("tU", MsgPv::ToUser, false),
    ("td", MsgPv::ToDomain, false),
    ("tn", MsgPv::ToName, false),
    ("tt", MsgPv::ToTag, false),
    ("ci", MsgPv::CallId, false),
    ("cs", MsgPv::CSeq, false),
    ("ct", MsgPv::Contact, false),
    ("cT", MsgPv::ContentType, false),
    ("cl", MsgPv::ContentLength, false),
    ("si", MsgPv::SrcIp, false),
    ("sp", MsgPv::SrcPort, false),
    ("Ri", MsgPv::RcvIp, false),
    ("Rp", MsgPv::RcvPort, false),
    ("pr", MsgPv::Proto, false),
    ("proto", MsgPv::Proto, false),
    ("rs", MsgPv::Status, false),
    ("rr", MsgPv::Reason, false),
    ("ua", MsgPv::UserAgent, false),
    ("mb", MsgPv::MsgBuf, false),
    ("ml", MsgPv::MsgLen, false),
    ("rb", MsgPv::Body, false),
    ("T_reply_code", MsgPv::TReplyCode, false),
];

impl MsgPv {
    /// Looks up `$name` / `$name(arg)`.
    pub(crate) fn lookup(name: &str, arg: Option<&str>) -> Result<MsgPv, PvError> {
        if name == "hdr" {
            return match arg {
                Some(a) if !a.trim().is_empty() => Ok(MsgPv::Header(a.trim().to_string())),
                _ => Err(PvError::HdrNeedsName),
            };
        }
        let pv = MSG_PVS
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, pv, _)| pv.clone())
            .ok_or_else(|| PvError::Unknown(name.to_string()))?;
        match arg {
            Some(_) => Err(PvError::NoArgument(name.to_string())),
            None => Ok(pv),
        }
    }

    pub(crate) fn writable(&self) -> bool {
        MSG_PVS.iter().any(|(_, pv, w)| *w && pv == self)
    }
}

impl fmt::Display for MsgPv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MsgPv::Header(h) => write!(f, "$hdr({h})"),
            pv => {
                let name = MSG_PVS
                    .iter()
                    .find(|(_, p, _)| p == pv)
                    .map(|(n, _, _)| *n)
                    .unwrap_or("?");
                write!(f, "${name}")
            }
        }
    }
}

/// A next hop written in the script: `[proto:]host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dest<'a> {
    pub proto: Option<Transport>,
    /// Name or IP; IPv6 without brackets.
    pub host: Cow<'a, str>,
    pub port: Option<u16>,
}

impl Dest<'static> {
    /// Parses `[proto:]host[:port]` (`udp:10.0.0.1:5060`, `[::1]:5070`, `host`)
    /// with the address grammar of listen= values.
    pub fn parse(s: &str) -> Result<Dest<'static>, DestError> {
        let f = crate::sip::ListenForm::parse(s.trim())?;
        let proto = f.proto.map(Transport::parse).transpose()?;
        let port = match f.port {
            Some(p) => Some(port_u16(p).ok_or(DestError::Port(p))?),
            None => None,
        };
        if f.host == "*" {
            return Err(DestError::Wildcard);
        }
        Ok(Dest {
            proto,
            host: Cow::Owned(f.host.to_string()),
            port,
        })
    }
}

/// Why a script destination cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DestError {
    #[error(transparent)]
    Form(#[from] crate::sip::ListenFormError),
    #[error(transparent)]
    Transport(#[from] crate::sip::TransportError),
    #[error("port {0} out of range 1..65535")]
    Port(u32),
    #[error("'*' is not a destination")]
    Wildcard,
}

pub(crate) fn port_u16(p: u32) -> Option<u16> {
    u16::try_from(p).ok().filter(|p| *p != 0)
}

/// `sip_trace()` mode (Kamailio 5): one message, the transaction, or the dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceMode {
    Message,
    Transaction,
    Dialog,
}

impl TraceMode {
    /// "m", "t" or "d", exactly one letter, blanks allowed around it.
    pub fn parse(s: &str) -> Option<TraceMode> {
        match s.trim() {
            "m" | "M" => Some(TraceMode::Message),
            "t" | "T" => Some(TraceMode::Transaction),
            "d" | "D" => Some(TraceMode::Dialog),
            _ => None,
        }
    }
}

/// Where sip_trace() mirrors its message: a constant URI was parsed (and
/// refused if the mirror cannot serve it) at load; one with `$pv`s is
/// rendered per message and parsed by the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceDest<'a> {
    Target(&'a DupTarget),
    Uri(Cow<'a, str>),
}

/// A builtin the host performs. Constant arguments were checked at load;
/// format arguments (`$pv` inside strings) are rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostCall<'a> {
    /// `sip_trace([uri [, correlation_id [, mode]]])`; an empty uri is None.
    SipTrace {
        dest: Option<TraceDest<'a>>,
        correlation_id: Option<Cow<'a, str>>,
        mode: Option<TraceMode>,
    },
    /// `is_method("INVITE|ACK")`, names as written (compare case-insensitively).
    IsMethod(&'a [String]),
    /// `has_totag()`
    HasTotag,
    /// `mf_process_maxfwd_header("10")`: `value` is added when the header is
    /// missing; a value above maxfwd's `max_limit` modparam is lowered to it.
    MaxFwd { value: u32, max_limit: u32 },
    /// `record_route()`
    RecordRoute,
    /// `loose_route()`
    LooseRoute,
    /// `forward()`, `forward("host")`, `forward("host", port)`, `forward_udp/tcp(…)`.
    Forward(Option<Dest<'a>>),
    /// `sl_send_reply(code, reason)`
    SlSendReply { code: u16, reason: Cow<'a, str> },
    /// `sl_reply_error()`
    SlReplyError,
    /// `t_relay()`, `t_relay("proto:host:port")`, `t_relay("host", port)`, `t_relay_to_udp/tcp(…)`.
    TRelay(Option<Dest<'a>>),
    /// `t_on_reply("NAME")`: the onreply_route to run for replies of this transaction.
    TOnReply(RouteId),
    /// `t_on_failure("NAME")`
    TOnFailure(RouteId),
    /// `t_on_branch("NAME")`
    TOnBranch(RouteId),
    /// `t_reply(code, reason)`
    TReply { code: u16, reason: Cow<'a, str> },
    /// `t_check_trans()`
    TCheckTrans,
    /// `t_newtran()`
    TNewTran,
    /// `t_release()`
    TRelease,
    /// `t_is_canceled()`
    TIsCanceled,
    /// `is_present_hf("Name")`
    IsPresentHf(&'a str),
    /// `append_hf("Name: value\r\n")`
    AppendHf(Cow<'a, str>),
    /// `remove_hf("Name")`
    RemoveHf(&'a str),
    /// Old-style `uri == myself` / `src_ip == myself`: is this URI or address ours?
    IsMyself(Cow<'a, str>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pv_lookup() {
        let cases: &[(&str, Option<&str>, Result<MsgPv, &str>)] = &[
            ("rm", None, Ok(MsgPv::Method)),
            ("rU", None, Ok(MsgPv::RUser)),
            (
                "hdr",
                Some("Max-Forwards"),
                Ok(MsgPv::Header("Max-Forwards".into())),
            ),
            ("hdr", None, Err("$hdr needs a header name: $hdr(Name)")),
            ("rm", Some("x"), Err("$rm takes no argument")),
            ("xyz", None, Err("unknown pseudo-variable '$xyz'")),
        ];
        for (n, a, want) in cases {
            assert_eq!(
                MsgPv::lookup(n, *a).map_err(|e| e.to_string()),
                want.clone().map_err(String::from),
                "{n}"
            );
        }
        assert!(MsgPv::RUri.writable() && MsgPv::DstUri.writable());
        assert!(!MsgPv::Method.writable() && !MsgPv::Header("X".into()).writable());
        assert_eq!(MsgPv::TReplyCode.to_string(), "$T_reply_code");
    }

    #[test]
    fn dests() {
        type Want = Result<(Option<Transport>, &'static str, Option<u16>), &'static str>;
        let cases: &[(&str, Want)] = &[
            (
                "udp:10.0.0.1:5060",
                Ok((Some(Transport::Udp), "10.0.0.1", Some(5060))),
            ),
            ("TCP:host", Ok((Some(Transport::Tcp), "host", None))),
            ("[::1]:5070", Ok((None, "::1", Some(5070)))),
            ("host:70000", Err("port 70000 out of range 1..65535")),
            ("host:0", Err("port 0 out of range 1..65535")),
            ("*:5060", Err("'*' is not a destination")),
        ];
        for (s, want) in cases {
            let got = Dest::parse(s)
                .map(|d| (d.proto, d.host.into_owned(), d.port))
                .map_err(|e| e.to_string());
            let want = (*want)
                .map(|(p, h, port)| (p, h.to_string(), port))
                .map_err(String::from);
            assert_eq!(got, want, "{s}");
        }
    }
}
