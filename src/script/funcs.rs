//! The script function table: name, providing module (None for core), arity,
//! and the load-time builder that checks constant arguments and produces the
//! compiled call. Adding a builtin is one row here plus, if the host performs
//! it, one `HostCall` variant.

use super::RouteKind;
use super::compile::{
    CallKind, CodeArg, Compiler, DestArg, HostSpec, ModeArg, REPLY_CODES, StrArg, TraceDestArg,
};
use super::host::{Dest, TraceMode, port_u16};
use crate::cfg::ast::{self, ExprKind};
use crate::sip::Transport;
use crate::trace::dup::DupTarget;

pub(crate) struct ArgErr {
    /// Which argument is wrong (its position is reported), None for the call.
    pub arg: Option<usize>,
    pub msg: String,
}

fn bad(arg: usize, msg: impl ToString) -> ArgErr {
    ArgErr {
        arg: Some(arg),
        msg: msg.to_string(),
    }
}

type Build = fn(&mut Compiler<'_>, &[ast::Expr]) -> Result<CallKind, ArgErr>;

pub(crate) struct FuncDef {
    pub name: &'static str,
    pub module: Option<&'static str>,
    pub min: usize,
    pub max: usize,
    pub build: Build,
}

const fn f(
    name: &'static str,
    module: Option<&'static str>,
    min: usize,
    max: usize,
    build: Build,
) -> FuncDef {
    FuncDef {
        name,
        module,
        min,
        max,
        build,
    }
}

const CORE: Option<&str> = None;
const SIPTRACE: Option<&str> = Some("siptrace");
const TM: Option<&str> = Some("tm");
const SL: Option<&str> = Some("sl");
const RR: Option<&str> = Some("rr");
const TEXTOPS: Option<&str> = Some("textops");

pub(crate) static FUNCS: &[FuncDef] = &[
    f("sip_trace", SIPTRACE, 0, 3, sip_trace),
    f("sip_trace_mode", SIPTRACE, 1, 1, sip_trace_mode),
    f("is_method", TEXTOPS, 1, 1, is_method),
    f("has_totag", Some("siputils"), 0, 0, |_, _| {
        host(HostSpec::HasTotag)
    }),
    f("mf_process_maxfwd_header", Some("maxfwd"), 1, 1, maxfwd),
    f("record_route", RR, 0, 0, |_, _| host(HostSpec::RecordRoute)),
    f("loose_route", RR, 0, 0, |_, _| host(HostSpec::LooseRoute)),
    f("forward", CORE, 0, 2, |c, a| {
        dest(c, a, None, false).map(|d| CallKind::Host(HostSpec::Forward(d)))
    }),
    f("forward_udp", CORE, 0, 2, |c, a| {
        dest(c, a, Some(Transport::Udp), false).map(|d| CallKind::Host(HostSpec::Forward(d)))
    }),
    f("forward_tcp", CORE, 0, 2, |c, a| {
        dest(c, a, Some(Transport::Tcp), false).map(|d| CallKind::Host(HostSpec::Forward(d)))
    }),
    f("forward_tls", CORE, 0, 2, |c, a| {
        dest(c, a, Some(Transport::Tls), false).map(|d| CallKind::Host(HostSpec::Forward(d)))
    }),
    f("sl_send_reply", SL, 2, 2, |c, a| {
        reply(c, a).map(|(k, r)| CallKind::Host(HostSpec::SlSendReply(k, r)))
    }),
    f("sl_reply_error", SL, 0, 0, |_, _| {
        host(HostSpec::SlReplyError)
    }),
    f("t_relay", TM, 0, 2, |c, a| {
        dest(c, a, None, true).map(|d| CallKind::Host(HostSpec::TRelay(d)))
    }),
    f("t_relay_to_udp", TM, 0, 2, |c, a| {
        dest(c, a, Some(Transport::Udp), true).map(|d| CallKind::Host(HostSpec::TRelay(d)))
    }),
    f("t_relay_to_tcp", TM, 0, 2, |c, a| {
        dest(c, a, Some(Transport::Tcp), true).map(|d| CallKind::Host(HostSpec::TRelay(d)))
    }),
    f("t_relay_to_tls", TM, 0, 2, |c, a| {
        dest(c, a, Some(Transport::Tls), true).map(|d| CallKind::Host(HostSpec::TRelay(d)))
    }),
    f("t_on_reply", TM, 1, 1, |c, a| {
        on_route(c, a, RouteKind::OnReply)
            .map(HostSpec::TOnReply)
            .map(CallKind::Host)
    }),
    f("t_on_failure", TM, 1, 1, |c, a| {
        on_route(c, a, RouteKind::Failure)
            .map(HostSpec::TOnFailure)
            .map(CallKind::Host)
    }),
    f("t_on_branch", TM, 1, 1, |c, a| {
        on_route(c, a, RouteKind::Branch)
            .map(HostSpec::TOnBranch)
            .map(CallKind::Host)
    }),
    f("t_reply", TM, 2, 2, |c, a| {
        reply(c, a).map(|(k, r)| CallKind::Host(HostSpec::TReply(k, r)))
    }),
    f("t_check_trans", TM, 0, 0, |_, _| {
        host(HostSpec::TCheckTrans)
    }),
    f("t_newtran", TM, 0, 0, |_, _| host(HostSpec::TNewTran)),
    f("t_release", TM, 0, 0, |_, _| host(HostSpec::TRelease)),
    f("t_is_canceled", TM, 0, 0, |_, _| {
        host(HostSpec::TIsCanceled)
    }),
    f("is_present_hf", TEXTOPS, 1, 1, |c, a| {
        header_name(c, a)
            .map(HostSpec::IsPresentHf)
            .map(CallKind::Host)
    }),
    f("remove_hf", TEXTOPS, 1, 1, |c, a| {
        header_name(c, a)
            .map(HostSpec::RemoveHf)
            .map(CallKind::Host)
    }),
    f("append_hf", TEXTOPS, 1, 1, |c, a| {
        fmt_arg(c, a, 0).map(HostSpec::AppendHf).map(CallKind::Host)
    }),
    f("setflag", CORE, 1, 1, |c, a| {
        flag(c, a).map(CallKind::SetFlag)
    }),
    f("resetflag", CORE, 1, 1, |c, a| {
        flag(c, a).map(CallKind::ResetFlag)
    }),
    f("isflagset", CORE, 1, 1, |c, a| {
        flag(c, a).map(CallKind::IsFlagSet)
    }),
    f("xlog", Some("xlog"), 1, 2, xlog),
    f("xdbg", Some("xlog"), 1, 1, |c, a| {
        Ok(CallKind::Log(log::Level::Debug, format(c, a, 0)?))
    }),
    f("log", CORE, 1, 2, core_log),
];

pub(crate) fn lookup(name: &str) -> Option<&'static FuncDef> {
    FUNCS.iter().find(|d| d.name == name)
}

fn host(spec: HostSpec) -> Result<CallKind, ArgErr> {
    Ok(CallKind::Host(spec))
}

/// A constant written as a string or a number.
fn const_text(e: &ast::Expr) -> Option<String> {
    match &e.kind {
        ExprKind::Str(s) => Some(s.clone()),
        ExprKind::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

fn fmt_arg(c: &mut Compiler<'_>, a: &[ast::Expr], i: usize) -> Result<StrArg, ArgErr> {
    c.str_arg(&a[i], true).map_err(|m| bad(i, m))
}

fn format(
    c: &mut Compiler<'_>,
    a: &[ast::Expr],
    i: usize,
) -> Result<super::compile::Template, ArgErr> {
    match &a[i].kind {
        ExprKind::Str(s) => c.template(s).map_err(|m| bad(i, m)),
        _ => Err(bad(i, "the format must be a string literal")),
    }
}

/// Optional string argument: a constant empty string means "not given".
fn opt_fmt(c: &mut Compiler<'_>, a: &[ast::Expr], i: usize) -> Result<Option<StrArg>, ArgErr> {
    match a.get(i) {
        None => Ok(None),
        Some(_) => Ok(match fmt_arg(c, a, i)? {
            StrArg::Const(s) if s.is_empty() => None,
            other => Some(other),
        }),
    }
}

fn sip_trace(c: &mut Compiler<'_>, a: &[ast::Expr]) -> Result<CallKind, ArgErr> {
    // A constant URI the mirror cannot serve (sips:, TLS, a bad port) is
    // a config error here, not a failure on every traced message.
    let dest = match opt_fmt(c, a, 0)? {
        None => None,
        Some(StrArg::Const(uri)) => Some(TraceDestArg::Const(
            DupTarget::parse(&uri).map_err(|e| bad(0, e.to_string()))?,
        )),
        Some(dynamic) => Some(TraceDestArg::Dyn(dynamic)),
    };
    let corr = opt_fmt(c, a, 1)?;
    let mode = match opt_fmt(c, a, 2)? {
        None => None,
        Some(StrArg::Const(m)) => Some(ModeArg::Const(trace_mode(&m).map_err(|e| bad(2, e))?)),
        Some(dynamic) => Some(ModeArg::Dyn(dynamic)),
    };
    host(HostSpec::SipTrace { dest, corr, mode })
}

/// `sip_trace_mode(mode)` (Kamailio 5): `sip_trace("", "", mode)`.
fn sip_trace_mode(c: &mut Compiler<'_>, a: &[ast::Expr]) -> Result<CallKind, ArgErr> {
    let mode = match fmt_arg(c, a, 0)? {
        StrArg::Const(m) => ModeArg::Const(trace_mode(&m).map_err(|e| bad(0, e))?),
        dynamic => ModeArg::Dyn(dynamic),
    };
    host(HostSpec::SipTrace {
        dest: None,
        corr: None,
        mode: Some(mode),
    })
}

/// Why a sip_trace() mode is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TraceModeError {
    /// The mode as written.
    #[error("invalid mode {0:?}: expected \"m\" (message), \"t\" (transaction) or \"d\" (dialog)")]
    Invalid(String),
}

/// Checks a mode string: "m", "t" or "d" (dialog: siptraced's own
/// tracking, no dialog module; docs/decisions.md §16).
pub(crate) fn trace_mode(m: &str) -> Result<TraceMode, TraceModeError> {
    TraceMode::parse(m).ok_or_else(|| TraceModeError::Invalid(m.to_string()))
}

fn is_method(_: &mut Compiler<'_>, a: &[ast::Expr]) -> Result<CallKind, ArgErr> {
    let s = const_text(&a[0]).ok_or_else(|| bad(0, "the method list must be a constant string"))?;
    let methods: Vec<String> = s.split('|').map(|m| m.trim().to_string()).collect();
    let token = |m: &str| {
        !m.is_empty()
            && m.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
    };
    if let Some(m) = methods.iter().find(|m| !token(m)) {
        return Err(bad(0, format!("invalid method name '{m}' in \"{s}\"")));
    }
    host(HostSpec::IsMethod(methods))
}

fn maxfwd(c: &mut Compiler<'_>, a: &[ast::Expr]) -> Result<CallKind, ArgErr> {
    let limit = c.env.maxfwd_max_limit;
    let n = const_text(&a[0])
        .and_then(|s| s.trim().parse::<u32>().ok())
        .filter(|n| *n >= 1 && *n <= limit)
        .ok_or_else(|| {
            bad(
                0,
                format!("the value must be a number from 1 to {limit} (maxfwd max_limit)"),
            )
        })?;
    host(HostSpec::MaxFwd {
        value: n,
        max_limit: limit,
    })
}

fn reply(c: &mut Compiler<'_>, a: &[ast::Expr]) -> Result<(CodeArg, StrArg), ArgErr> {
    let code = match fmt_arg(c, a, 0)? {
        StrArg::Const(s) => CodeArg::Const(
            reply_code(&s)
                .ok_or_else(|| bad(0, format!("invalid reply code '{s}': must be 100..699")))?,
        ),
        dynamic => CodeArg::Dyn(dynamic),
    };
    Ok((code, fmt_arg(c, a, 1)?))
}

pub(crate) fn reply_code(s: &str) -> Option<u16> {
    s.trim()
        .parse::<u16>()
        .ok()
        .filter(|c| REPLY_CODES.contains(c))
}

fn dest(
    c: &mut Compiler<'_>,
    a: &[ast::Expr],
    proto: Option<Transport>,
    tm: bool,
) -> Result<Option<DestArg>, ArgErr> {
    if a.is_empty() {
        return Ok(None);
    }
    let host_arg = fmt_arg(c, a, 0)?;
    let port_arg = match a.get(1) {
        None => None,
        Some(_) => Some(fmt_arg(c, a, 1)?),
    };
    if let (StrArg::Const(h), true) = (&host_arg, tm && a.len() == 1) {
        if crate::cfg::parser::parse_int(h.trim()).is_some() {
            return Err(bad(
                0,
                format!(
                    "'{h}' looks like t_relay flags, which are not supported; give \"proto:host:port\""
                ),
            ));
        }
    }
    match (&host_arg, &port_arg) {
        (StrArg::Const(h), None) => {
            let mut d = Dest::parse(h).map_err(|m| bad(0, m))?;
            d.proto = proto.or(d.proto);
            Ok(Some(DestArg::Const(d)))
        }
        (StrArg::Const(h), Some(StrArg::Const(p))) => {
            let mut d = Dest::parse(h).map_err(|m| bad(0, m))?;
            let port = p
                .trim()
                .parse::<u32>()
                .ok()
                .and_then(port_u16)
                .ok_or_else(|| bad(1, format!("invalid port '{p}': must be 1..65535")))?;
            if d.port.is_some() {
                return Err(bad(0, "the port is given twice"));
            }
            d.port = Some(port);
            d.proto = proto.or(d.proto);
            Ok(Some(DestArg::Const(d)))
        }
        _ => Ok(Some(DestArg::Dyn {
            host: host_arg,
            port: port_arg,
            proto,
        })),
    }
}

fn on_route(
    c: &mut Compiler<'_>,
    a: &[ast::Expr],
    kind: RouteKind,
) -> Result<super::RouteId, ArgErr> {
    c.route_ref(kind, &a[0]).map_err(|m| bad(0, m))
}

fn header_name(_: &mut Compiler<'_>, a: &[ast::Expr]) -> Result<String, ArgErr> {
    let s = const_text(&a[0]).ok_or_else(|| bad(0, "the header name must be a constant string"))?;
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
        return Err(bad(0, format!("invalid header name '{s}'")));
    }
    Ok(s.to_string())
}

/// Message flags are 0..31: Kamailio's MAX_FLAG is 31 (one 32-bit word).
fn flag(_: &mut Compiler<'_>, a: &[ast::Expr]) -> Result<u8, ArgErr> {
    const_text(&a[0])
        .and_then(|s| s.trim().parse::<u8>().ok())
        .filter(|n| *n < 32)
        .ok_or_else(|| bad(0, "the flag must be a constant from 0 to 31"))
}

/// xlog level names and the log level each maps to.
pub(crate) fn xlog_level(s: &str) -> Option<log::Level> {
    Some(match s {
        "L_ALERT" | "L_BUG" | "L_CRIT" | "L_CRIT2" | "L_ERR" => log::Level::Error,
        "L_WARN" => log::Level::Warn,
        "L_NOTICE" | "L_INFO" => log::Level::Info,
        "L_DBG" => log::Level::Debug,
        _ => return None,
    })
}

fn xlog(c: &mut Compiler<'_>, a: &[ast::Expr]) -> Result<CallKind, ArgErr> {
    // Without a level xlog logs at L_ERR, as Kamailio's.
    let level = if a.len() == 2 {
        let name = match &a[0].kind {
            ExprKind::Str(s) | ExprKind::Ident(s) => s.clone(),
            _ => return Err(bad(0, "the level must be a constant such as \"L_INFO\"")),
        };
        xlog_level(&name).ok_or_else(|| {
            bad(0, format!("unknown level '{name}': use L_ALERT, L_BUG, L_CRIT, L_ERR, L_WARN, L_NOTICE, L_INFO or L_DBG"))
        })?
    } else {
        log::Level::Error
    };
    Ok(CallKind::Log(level, format(c, a, a.len() - 1)?))
}

/// Core `log([level,] "text")`, level as the `debug` numbers (Kamailio ≥3: -1 error … 3 debug).
fn core_log(_: &mut Compiler<'_>, a: &[ast::Expr]) -> Result<CallKind, ArgErr> {
    let level = if a.len() == 2 {
        let n = const_text(&a[0])
            .and_then(|s| s.trim().parse::<i64>().ok())
            .ok_or_else(|| bad(0, "the level must be a number"))?;
        match n {
            i64::MIN..=-1 => log::Level::Error,
            0 => log::Level::Warn,
            1 | 2 => log::Level::Info,
            _ => log::Level::Debug,
        }
    } else {
        log::Level::Error
    };
    match &a[a.len() - 1].kind {
        ExprKind::Str(s) => Ok(CallKind::Log(
            level,
            super::compile::Template(vec![super::compile::Part::Lit(s.clone())]),
        )),
        _ => Err(bad(a.len() - 1, "the text must be a string literal")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent() {
        for (i, d) in FUNCS.iter().enumerate() {
            assert!(d.min <= d.max, "{}", d.name);
            assert!(
                FUNCS[..i].iter().all(|e| e.name != d.name),
                "duplicate {}",
                d.name
            );
        }
    }
}
