//! Walks a compiled route for one message with Kamailio's semantics: a call's
//! code > 0 is true, < 0 false, 0 stops the whole script (also inside a
//! condition); `return(n)` hands n to the `route()` caller (0 = exit); `exit`
//! and `drop` end everything. route() nesting and while loops are bounded.
//! Builtins answer a [`Ret`]; this is the one place that turns it into
//! Kamailio's integer and back. Reaches the outside only through the `Host`.

use std::borrow::Cow;
use std::cmp::Ordering;

use super::compile::{
    ArithOp, Call, CallKind, CmpOp, CodeArg, DestArg, Expr, HostSpec, ModeArg, Op, Part, Read, Rx,
    StrArg, Target, Template, TraceDestArg,
};
use super::funcs::{TraceModeError, reply_code, trace_mode};
use super::host::{Dest, Host, HostCall, Ret, TraceDest};
use super::value::{MsgState, Value, Vars};
use super::{MAX_ROUTE_DEPTH, Outcome, Program, RouteId};
use crate::cfg::Pos;

/// Why a builtin's arguments, rendered at run time, were refused: the call
/// is false and this is logged at its position.
#[derive(Debug, thiserror::Error)]
enum ArgError {
    /// The code as rendered.
    #[error("invalid reply code '{0}': must be 100..699")]
    ReplyCode(String),
    /// `text` as rendered (host and port joined); `reason` from `Dest::parse`.
    #[error("bad destination '{text}': {reason}")]
    Dest { text: String, reason: String },
    #[error(transparent)]
    Mode(#[from] TraceModeError),
}

enum Flow {
    Next,
    Break,
    Return(i64),
}

#[derive(Clone, Copy)]
enum Stop {
    Exit,
    Drop,
}

struct Run<'p, 'r> {
    prog: &'p Program,
    st: &'r mut MsgState,
    vars: &'r mut Vars,
    host: &'r mut dyn Host,
    depth: u32,
    /// `$rc`: the code of the last call or route.
    rc: i64,
    stop: Option<Stop>,
}

pub(crate) fn run(
    prog: &Program,
    route: RouteId,
    st: &mut MsgState,
    vars: &mut Vars,
    host: &mut dyn Host,
) -> Outcome {
    let mut r = Run {
        prog,
        st,
        vars,
        host,
        depth: 0,
        rc: 1,
        stop: None,
    };
    let Some(def) = prog.route_def(route) else {
        return Outcome::End;
    };
    let flow = r.block(&def.body);
    match (r.stop, flow) {
        (Some(Stop::Exit), _) | (None, Flow::Return(0)) => Outcome::Exit,
        (Some(Stop::Drop), _) => Outcome::Drop,
        (None, Flow::Return(n)) => {
            Outcome::Return(n.clamp(i32::MIN as i64, i32::MAX as i64) as i32)
        }
        (None, Flow::Next | Flow::Break) => Outcome::End,
    }
}

impl<'p> Run<'p, '_> {
    fn log_err(&mut self, pos: &Pos, msg: &str) {
        self.host.log(log::Level::Error, &format!("{pos}: {msg}"));
    }

    fn block(&mut self, ops: &'p [Op]) -> Flow {
        for op in ops {
            let flow = self.op(op);
            if self.stop.is_some() {
                return Flow::Next;
            }
            if !matches!(flow, Flow::Next) {
                return flow;
            }
        }
        Flow::Next
    }

    fn op(&mut self, op: &'p Op) -> Flow {
        match op {
            Op::If { cond, then, els } => {
                let c = self.eval(cond).truthy();
                if self.stop.is_some() {
                    return Flow::Next;
                }
                self.block(if c { then } else { els })
            }
            Op::While { cond, body, pos } => {
                let max = self.prog.max_while_loops();
                let mut n = 0u32;
                loop {
                    let c = self.eval(cond).truthy();
                    if self.stop.is_some() || !c {
                        return Flow::Next;
                    }
                    n += 1;
                    if n > max {
                        self.log_err(
                            pos,
                            &format!("runaway while: more than {max} loops (max_while_loops)"),
                        );
                        self.rc = Ret::False.code();
                        return Flow::Next;
                    }
                    match self.block(body) {
                        Flow::Break => return Flow::Next,
                        Flow::Return(v) => return Flow::Return(v),
                        Flow::Next if self.stop.is_some() => return Flow::Next,
                        Flow::Next => {}
                    }
                }
            }
            Op::Exit => {
                self.stop = Some(Stop::Exit);
                Flow::Next
            }
            Op::Drop => {
                self.stop = Some(Stop::Drop);
                Flow::Next
            }
            Op::Break => Flow::Break,
            Op::Return(e) => {
                let v = match e {
                    None => Ret::True.code(),
                    Some(e) => {
                        let v = self.eval(e);
                        v.as_int().unwrap_or(Ret::from(v.truthy()).code())
                    }
                };
                Flow::Return(v)
            }
            Op::Assign {
                target,
                replace,
                value,
                pos,
            } => {
                let v = self.eval(value);
                if self.stop.is_none() {
                    self.assign(target, *replace, v, pos);
                }
                Flow::Next
            }
            Op::Eval(e) => {
                self.eval(e);
                Flow::Next
            }
        }
    }

    fn assign(&mut self, target: &Target, replace: bool, v: Value, pos: &Pos) {
        match target {
            Target::Var(n) => self.vars.set(n, v),
            Target::Avp(n) => {
                if replace || v == Value::Null {
                    self.st.avps.remove_all(n);
                }
                if v != Value::Null {
                    self.st.avps.add(n.clone(), v);
                }
            }
            Target::Msg(pv) => {
                if !self.host.pv_set(pv, &v) {
                    self.log_err(pos, &format!("cannot assign {v} to {pv}"));
                }
            }
        }
    }

    fn read(&mut self, r: &Read) -> Value {
        match r {
            Read::Null => Value::Null,
            Read::Var(n) => self.vars.get(n),
            Read::Avp(n, None) => self.st.avps.get(n).cloned().unwrap_or_default(),
            Read::Avp(n, Some(i)) => self.st.avps.nth(n, *i).cloned().unwrap_or_default(),
            Read::Msg(pv) => self.host.pv_get(pv),
            Read::Rc => Value::Int(self.rc),
        }
    }

    fn eval(&mut self, e: &'p Expr) -> Value {
        match e {
            Expr::Const(v) => v.clone(),
            Expr::Read(r) => self.read(r),
            Expr::Call(c) => {
                let ret = self.call(c);
                Value::Int(self.settle(ret))
            }
            Expr::Route(id) => {
                let ret = self.route(*id);
                Value::Int(self.settle(ret))
            }
            Expr::Not(x) => {
                let v = self.eval(x).truthy();
                Value::Int(if v { 0 } else { 1 })
            }
            Expr::Neg(x) => match self.eval(x).as_int() {
                Some(n) => Value::Int(n.wrapping_neg()),
                None => Value::Null,
            },
            Expr::And(a, b) => {
                let t = self.eval(a).truthy() && self.stop.is_none() && self.eval(b).truthy();
                Value::Int(t as i64)
            }
            Expr::Or(a, b) => {
                let t = self.eval(a).truthy() || (self.stop.is_none() && self.eval(b).truthy());
                Value::Int(t as i64)
            }
            Expr::Cmp(op, a, b) => {
                let (a, b) = (self.eval(a), self.eval(b));
                Value::Int(compare(*op, &a, &b) as i64)
            }
            Expr::Arith(op, a, b) => {
                let (a, b) = (self.eval(a), self.eval(b));
                arith(*op, a, b)
            }
            Expr::Match {
                lhs,
                re,
                negate,
                pos,
            } => {
                let v = self.eval(lhs);
                let hit = match re {
                    Rx::Const(re) => v != Value::Null && re.is_match(&v.to_text()),
                    Rx::Dyn(p) => {
                        let pat = self.eval(p).to_text();
                        match regex_lite::RegexBuilder::new(&pat)
                            .case_insensitive(true)
                            .build()
                        {
                            Ok(re) => v != Value::Null && re.is_match(&v.to_text()),
                            Err(err) => {
                                self.log_err(
                                    pos,
                                    &format!("invalid regular expression {pat:?}: {err}"),
                                );
                                false
                            }
                        }
                    }
                };
                Value::Int((hit != *negate) as i64)
            }
        }
    }

    /// A call's or route's answer reaches the script: `$rc` takes its code,
    /// and 0 stops the script (also inside a condition).
    fn settle(&mut self, ret: Ret) -> i64 {
        if ret == Ret::Exit && self.stop.is_none() {
            self.stop = Some(Stop::Exit);
        }
        self.rc = ret.code();
        self.rc
    }

    fn route(&mut self, id: RouteId) -> Ret {
        let prog = self.prog;
        let Some(def) = prog.route_def(id) else {
            return Ret::False;
        };
        if self.depth >= MAX_ROUTE_DEPTH {
            self.host.log(
                log::Level::Error,
                &format!(
                    "route({}): more than {MAX_ROUTE_DEPTH} nested route calls, giving up",
                    prog.route_name(id)
                ),
            );
            return Ret::False;
        }
        self.depth += 1;
        let flow = self.block(&def.body);
        self.depth -= 1;
        match flow {
            Flow::Next | Flow::Break => Ret::True,
            // return(0) is exit() (Kamailio core cookbook): settle() stops.
            Flow::Return(n) => Ret::from_code(n),
        }
    }

    fn call(&mut self, c: &'p Call) -> Ret {
        match &c.kind {
            CallKind::SetFlag(n) => {
                self.st.flags |= 1 << n;
                Ret::True
            }
            CallKind::ResetFlag(n) => {
                self.st.flags &= !(1 << n);
                Ret::True
            }
            CallKind::IsFlagSet(n) => Ret::from(self.st.flag(*n)),
            CallKind::Log(level, t) => {
                let text = self.render(t);
                self.host.log(*level, &text);
                Ret::True
            }
            CallKind::Host(spec) => match self.host_call(spec) {
                Ok(hc) => self.host.call(hc, self.st),
                Err(e) => {
                    self.log_err(&c.pos, &e.to_string());
                    Ret::False
                }
            },
        }
    }

    fn render(&mut self, t: &Template) -> String {
        let mut out = String::new();
        for p in &t.0 {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Read(r) => {
                    let v = self.read(r);
                    out.push_str(&v.to_string());
                }
            }
        }
        out
    }

    fn text(&mut self, a: &'p StrArg) -> Cow<'p, str> {
        match a {
            StrArg::Const(s) => Cow::Borrowed(s),
            StrArg::Tpl(t) => Cow::Owned(self.render(t)),
            StrArg::Expr(e) => Cow::Owned(self.eval(e).to_text()),
        }
    }

    fn opt_text(&mut self, a: &'p Option<StrArg>) -> Option<Cow<'p, str>> {
        let s = self.text(a.as_ref()?);
        (!s.is_empty()).then_some(s)
    }

    fn code(&mut self, c: &'p CodeArg) -> Result<u16, ArgError> {
        match c {
            CodeArg::Const(n) => Ok(*n),
            CodeArg::Dyn(a) => {
                let s = self.text(a);
                reply_code(&s).ok_or_else(|| ArgError::ReplyCode(s.into_owned()))
            }
        }
    }

    fn dest(&mut self, d: &'p Option<DestArg>) -> Result<Option<Dest<'p>>, ArgError> {
        match d {
            None => Ok(None),
            Some(DestArg::Const(d)) => Ok(Some(Dest {
                proto: d.proto,
                host: Cow::Borrowed(&d.host),
                port: d.port,
            })),
            Some(DestArg::Dyn { host, port, proto }) => {
                let h = self.text(host).into_owned();
                let text = match port {
                    None => h,
                    Some(p) => {
                        let p = self.text(p);
                        if h.contains(':') && !h.starts_with('[') {
                            format!("[{h}]:{p}")
                        } else {
                            format!("{h}:{p}")
                        }
                    }
                };
                let mut d = Dest::parse(&text).map_err(|e| ArgError::Dest {
                    reason: e.to_string(),
                    text: text.clone(),
                })?;
                d.proto = proto.or(d.proto);
                Ok(Some(d))
            }
        }
    }

    fn host_call(&mut self, spec: &'p HostSpec) -> Result<HostCall<'p>, ArgError> {
        Ok(match spec {
            HostSpec::SipTrace { dest, corr, mode } => HostCall::SipTrace {
                dest: match dest {
                    None => None,
                    Some(TraceDestArg::Const(t)) => Some(TraceDest::Target(t)),
                    Some(TraceDestArg::Dyn(a)) => {
                        let uri = self.text(a);
                        (!uri.is_empty()).then_some(TraceDest::Uri(uri))
                    }
                },
                correlation_id: self.opt_text(corr),
                mode: match mode {
                    None => None,
                    Some(ModeArg::Const(m)) => Some(*m),
                    Some(ModeArg::Dyn(a)) => {
                        let s = self.text(a);
                        if s.trim().is_empty() {
                            None
                        } else {
                            Some(trace_mode(&s)?)
                        }
                    }
                },
            },
            HostSpec::IsMethod(m) => HostCall::IsMethod(m),
            HostSpec::HasTotag => HostCall::HasTotag,
            HostSpec::MaxFwd { value, max_limit } => HostCall::MaxFwd {
                value: *value,
                max_limit: *max_limit,
            },
            HostSpec::RecordRoute => HostCall::RecordRoute,
            HostSpec::LooseRoute => HostCall::LooseRoute,
            HostSpec::Forward(d) => HostCall::Forward(self.dest(d)?),
            HostSpec::SlSendReply(c, r) => HostCall::SlSendReply {
                code: self.code(c)?,
                reason: self.text(r),
            },
            HostSpec::SlReplyError => HostCall::SlReplyError,
            HostSpec::TRelay(d) => HostCall::TRelay(self.dest(d)?),
            HostSpec::TOnReply(id) => HostCall::TOnReply(*id),
            HostSpec::TOnFailure(id) => HostCall::TOnFailure(*id),
            HostSpec::TOnBranch(id) => HostCall::TOnBranch(*id),
            HostSpec::TReply(c, r) => HostCall::TReply {
                code: self.code(c)?,
                reason: self.text(r),
            },
            HostSpec::TCheckTrans => HostCall::TCheckTrans,
            HostSpec::TNewTran => HostCall::TNewTran,
            HostSpec::TRelease => HostCall::TRelease,
            HostSpec::TIsCanceled => HostCall::TIsCanceled,
            HostSpec::IsPresentHf(h) => HostCall::IsPresentHf(h),
            HostSpec::AppendHf(t) => HostCall::AppendHf(self.text(t)),
            HostSpec::RemoveHf(h) => HostCall::RemoveHf(h),
            HostSpec::IsMyself(a) => HostCall::IsMyself(self.text(a)),
        })
    }
}

impl Ret {
    /// The int Kamailio's script sees (`$rc`, conditions).
    pub(super) fn code(self) -> i64 {
        match self {
            Ret::True => 1,
            Ret::False => -1,
            Ret::Exit => 0,
            Ret::TrueCode(n) | Ret::Err(n) => n,
        }
    }

    /// A script int as an answer: `return(n)` of a `route()`.
    pub(super) fn from_code(n: i64) -> Ret {
        match n {
            1 => Ret::True,
            -1 => Ret::False,
            0 => Ret::Exit,
            n if n > 0 => Ret::TrueCode(n),
            n => Ret::Err(n),
        }
    }
}

/// Comparison as Kamailio's rvalues: numbers when both sides are (or read as)
/// numbers, else text; null equals only null and orders with nothing.
fn compare(op: CmpOp, a: &Value, b: &Value) -> bool {
    let ord = match (a, b) {
        (Value::Null, Value::Null) => Some(Ordering::Equal),
        (Value::Null, _) | (_, Value::Null) => None,
        (Value::Str(x), Value::Str(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        _ => match (a.as_int(), b.as_int()) {
            (Some(x), Some(y)) => Some(x.cmp(&y)),
            _ => Some(a.to_text().as_bytes().cmp(b.to_text().as_bytes())),
        },
    };
    match (op, ord) {
        (CmpOp::Eq, o) => o == Some(Ordering::Equal),
        (CmpOp::Ne, o) => o != Some(Ordering::Equal),
        (_, None) => false,
        (CmpOp::Lt, Some(o)) => o == Ordering::Less,
        (CmpOp::Gt, Some(o)) => o == Ordering::Greater,
        (CmpOp::Le, Some(o)) => o != Ordering::Greater,
        (CmpOp::Ge, Some(o)) => o != Ordering::Less,
    }
}

/// `+` adds numbers and joins text (the left operand's type decides, as in
/// Kamailio); `- * / %` are integer only; division by zero gives null (false).
fn arith(op: ArithOp, a: Value, b: Value) -> Value {
    if let ArithOp::Add = op {
        return match (&a, &b) {
            (Value::Null, _) => b,
            (Value::Str(x), _) => Value::Str(format!("{x}{}", b.to_text())),
            (Value::Int(x), _) => match b.as_int() {
                Some(y) => Value::Int(x.wrapping_add(y)),
                None => Value::Str(format!("{x}{}", b.to_text())),
            },
        };
    }
    let (Some(x), Some(y)) = (a.as_int(), b.as_int()) else {
        return Value::Null;
    };
    match op {
        ArithOp::Sub => Value::Int(x.wrapping_sub(y)),
        ArithOp::Mul => Value::Int(x.wrapping_mul(y)),
        ArithOp::Div if y != 0 => Value::Int(x.wrapping_div(y)),
        ArithOp::Mod if y != 0 => Value::Int(x.wrapping_rem(y)),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ret_codes() {
        // (code, answer, round-trips): Kamailio's ints as the script sees them.
        let cases: &[(i64, Ret)] = &[
            (1, Ret::True),
            (-1, Ret::False),
            (0, Ret::Exit),
            (2, Ret::TrueCode(2)),
            (i64::MAX, Ret::TrueCode(i64::MAX)),
            (-2, Ret::Err(-2)),
            (i64::MIN, Ret::Err(i64::MIN)),
        ];
        for &(code, ret) in cases {
            assert_eq!(Ret::from_code(code), ret, "{code}");
            assert_eq!(ret.code(), code, "{ret:?}");
        }
        assert_eq!(Ret::from(true), Ret::True);
        assert_eq!(Ret::from(false), Ret::False);
    }

    #[test]
    fn arg_errors() {
        let cases: &[(ArgError, &str)] = &[
            (
                ArgError::ReplyCode("99".into()),
                "invalid reply code '99': must be 100..699",
            ),
            (
                ArgError::Dest {
                    text: "h:0".into(),
                    reason: "port 0 out of range 1..65535".into(),
                },
                "bad destination 'h:0': port 0 out of range 1..65535",
            ),
            (
                ArgError::from(trace_mode("x").unwrap_err()),
                "invalid mode \"x\": expected \"m\" (message), \"t\" (transaction) or \"d\" (dialog)",
            ),
        ];
        for (e, want) in cases {
            assert_eq!(e.to_string(), *want);
        }
    }
}
