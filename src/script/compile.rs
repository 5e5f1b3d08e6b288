//! AST → checked program. Declares the intermediate form the interpreter
//! walks, resolves route names, pseudo-variables and format strings, and
//! dispatches function calls to the table in `funcs`. Every error becomes a
//! diagnostic with the position of the offending name or argument; compilation
//! goes on to find the others.

use std::collections::HashMap;

use regex_lite::{Regex, RegexBuilder};

use super::funcs::{self, ArgErr};
use super::host::{Dest, MsgPv, PvError, TraceMode};
use super::value::{AvpName, AvpNameError, Value};
use super::{CompileEnv, Program, RouteDef, RouteId, RouteKind};
use crate::cfg::ast::{self, BinOp, ExprKind, Item, PvSpec, PvSyntaxError, StmtKind};
use crate::cfg::{Diagnostic, Pos};
use crate::sip::Transport;
use crate::trace::dup::DupTarget;

pub(crate) type Block = Vec<Op>;

pub(crate) enum Op {
    If {
        cond: Expr,
        then: Block,
        els: Block,
    },
    While {
        cond: Expr,
        body: Block,
        pos: Pos,
    },
    Exit,
    Drop,
    Break,
    Return(Option<Expr>),
    Assign {
        target: Target,
        replace: bool,
        value: Expr,
        pos: Pos,
    },
    /// A call used as a statement: its code sets `$rc`, and 0 stops the script.
    Eval(Expr),
}

pub(crate) enum Expr {
    Const(Value),
    Read(Read),
    Call(Box<Call>),
    Route(RouteId),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Cmp(CmpOp, Box<Expr>, Box<Expr>),
    Arith(ArithOp, Box<Expr>, Box<Expr>),
    Match {
        lhs: Box<Expr>,
        re: Rx,
        negate: bool,
        pos: Pos,
    },
}

#[derive(Clone, Copy)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}

#[derive(Clone, Copy)]
pub(crate) enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

pub(crate) enum Rx {
    Const(Regex),
    Dyn(Box<Expr>),
}

#[derive(Clone)]
pub(crate) enum Read {
    Null,
    Var(String),
    /// `$avp(x)` (None: most recent) or `$(avp(x)[i])`.
    Avp(AvpName, Option<i64>),
    Msg(MsgPv),
    /// `$rc` / `$retcode` / `$?`
    Rc,
}

pub(crate) enum Target {
    Var(String),
    Avp(AvpName),
    Msg(MsgPv),
}

pub(crate) struct Call {
    pub pos: Pos,
    pub kind: CallKind,
}

pub(crate) enum CallKind {
    SetFlag(u8),
    ResetFlag(u8),
    IsFlagSet(u8),
    Log(log::Level, Template),
    Host(HostSpec),
}

/// A builtin for the host, arguments compiled; turned into a `HostCall` per run.
pub(crate) enum HostSpec {
    SipTrace {
        dest: Option<TraceDestArg>,
        corr: Option<StrArg>,
        mode: Option<ModeArg>,
    },
    IsMethod(Vec<String>),
    HasTotag,
    /// `mf_process_maxfwd_header(value)` and maxfwd's `max_limit`.
    MaxFwd {
        value: u32,
        max_limit: u32,
    },
    RecordRoute,
    LooseRoute,
    Forward(Option<DestArg>),
    SlSendReply(CodeArg, StrArg),
    SlReplyError,
    TRelay(Option<DestArg>),
    TOnReply(RouteId),
    TOnFailure(RouteId),
    TOnBranch(RouteId),
    TReply(CodeArg, StrArg),
    TCheckTrans,
    TNewTran,
    TRelease,
    TIsCanceled,
    IsPresentHf(String),
    AppendHf(StrArg),
    RemoveHf(String),
    IsMyself(StrArg),
}

/// A string argument: constant, format string with `$pv`s, or any expression.
pub(crate) enum StrArg {
    Const(String),
    Tpl(Template),
    Expr(Box<Expr>),
}

/// sip_trace()'s URI: parsed at load when constant.
pub(crate) enum TraceDestArg {
    Const(DupTarget),
    Dyn(StrArg),
}

pub(crate) enum ModeArg {
    Const(TraceMode),
    Dyn(StrArg),
}

pub(crate) enum CodeArg {
    Const(u16),
    Dyn(StrArg),
}

pub(crate) enum DestArg {
    Const(Dest<'static>),
    /// Rendered at run time; `port` joins the host; `proto` forced by the
    /// function name (`forward_tcp`, `t_relay_to_udp`).
    Dyn {
        host: StrArg,
        port: Option<StrArg>,
        proto: Option<Transport>,
    },
}

pub(crate) struct Template(pub Vec<Part>);

pub(crate) enum Part {
    Lit(String),
    Read(Read),
}

/// Why a pseudo-variable (alone or inside a format string) cannot be read.
/// `pv` is the pseudo-variable as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ReadError {
    #[error("transformations such as {{{transform}}} are not supported ({pv})")]
    Transform { transform: String, pv: String },
    #[error("an index is only supported on $avp ({pv})")]
    Index { pv: String },
    #[error("$var needs a name: $var(name)")]
    VarName,
    #[error("AVP index must be a number, not '{index}' ({pv})")]
    AvpIndex { index: String, pv: String },
    #[error(transparent)]
    Avp(#[from] AvpNameError),
    #[error(transparent)]
    Msg(#[from] PvError),
    #[error(transparent)]
    Syntax(#[from] PvSyntaxError),
}

/// Why a route name given to `route()` or `t_on_*()` resolves to no route.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RouteRefError {
    #[error("the route name must be written as a constant")]
    NotConstant,
    #[error("{kind}[{name}] is not defined", kind = kind.keyword())]
    Undefined { kind: RouteKind, name: String },
}

/// SIP status codes a script may send: 1xx–6xx (RFC 3261 §7.2).
pub(crate) const REPLY_CODES: std::ops::RangeInclusive<u16> = 100..=699;

pub(crate) struct Compiler<'e> {
    pub env: &'e CompileEnv,
    diags: Vec<Diagnostic>,
    names: HashMap<(RouteKind, String), RouteId>,
}

pub(crate) fn compile(cfg: &ast::Cfg, env: &CompileEnv) -> Result<Program, Vec<Diagnostic>> {
    let mut c = Compiler {
        env,
        diags: Vec::new(),
        names: HashMap::new(),
    };
    let routes: Vec<&ast::Route> = cfg
        .items
        .iter()
        .filter_map(|i| match i {
            Item::Route(r) => Some(r),
            _ => None,
        })
        .collect();

    // Pass 1: give every route an id, so calls may point forward.
    let mut request = None;
    let mut onreply = None;
    let mut onsend = None;
    let mut defs: Vec<RouteDef> = Vec::new();
    let mut first_pos: HashMap<(RouteKind, Option<String>), Pos> = HashMap::new();
    for r in &routes {
        let key = (r.kind, r.name.clone());
        if let Some(p) = first_pos.get(&key) {
            let what = match &r.name {
                Some(n) => format!("{}[{n}]", r.kind.keyword()),
                None => r.kind.keyword().to_string(),
            };
            let msg = format!("{what} is defined twice (first at {p})");
            c.err(&r.pos, msg);
            continue;
        }
        first_pos.insert(key, r.pos.clone());
        let id = RouteId(defs.len() as u32);
        match (&r.kind, &r.name) {
            (RouteKind::Request, _) => request = Some(id),
            (RouteKind::OnReply, None) => onreply = Some(id),
            (RouteKind::OnSend, _) => onsend = Some(id),
            (kind, Some(n)) => {
                c.names.insert((*kind, n.clone()), id);
            }
            _ => {}
        }
        defs.push(RouteDef {
            kind: r.kind,
            name: r.name.clone(),
            body: Vec::new(),
        });
    }

    // Pass 2: bodies, in the same order (duplicates were skipped above too).
    let mut k = 0;
    let mut seen: HashMap<(RouteKind, Option<String>), ()> = HashMap::new();
    for r in &routes {
        if seen.insert((r.kind, r.name.clone()), ()).is_some() {
            continue;
        }
        let body = c.block(&r.body);
        defs[k].body = body;
        k += 1;
    }

    let Some(request) = request else {
        let at = Pos::new(&cfg.end.file, 1, 1);
        c.err(
            &at,
            "no request_route { … } (or route { … }) block: nothing would handle requests",
        );
        return Err(c.diags);
    };
    if !c.diags.is_empty() {
        return Err(c.diags);
    }
    Ok(Program {
        routes: defs,
        request,
        onreply,
        onsend,
        names: c.names,
        max_while_loops: env.max_while_loops,
    })
}

impl Program {
    pub(crate) fn max_while_loops(&self) -> u32 {
        self.max_while_loops
    }
}

impl Compiler<'_> {
    pub fn err(&mut self, pos: &Pos, msg: impl Into<String>) {
        self.diags.push(Diagnostic::at(pos, msg));
    }

    fn block(&mut self, stmts: &[ast::Stmt]) -> Block {
        stmts.iter().filter_map(|s| self.stmt(s)).collect()
    }

    fn stmt(&mut self, s: &ast::Stmt) -> Option<Op> {
        Some(match &s.kind {
            StmtKind::If { cond, then, els } => {
                let cond = self.expr(cond);
                let then = self.block(then);
                let els = els.as_ref().map(|e| self.block(e)).unwrap_or_default();
                Op::If {
                    cond: cond?,
                    then,
                    els,
                }
            }
            StmtKind::While { cond, body } => {
                let cond = self.expr(cond);
                let body = self.block(body);
                Op::While {
                    cond: cond?,
                    body,
                    pos: s.pos.clone(),
                }
            }
            StmtKind::Exit => Op::Exit,
            StmtKind::Drop => Op::Drop,
            StmtKind::Break => Op::Break,
            StmtKind::Return(e) => match e {
                None => Op::Return(None),
                Some(e) => Op::Return(Some(self.expr(e)?)),
            },
            StmtKind::Assign {
                pv,
                pv_pos,
                replace,
                value,
            } => {
                let target = self.target(pv, pv_pos);
                let value = self.expr(value);
                Op::Assign {
                    target: target?,
                    replace: *replace,
                    value: value?,
                    pos: s.pos.clone(),
                }
            }
            StmtKind::Call(call) => Op::Eval(self.call(call)?),
        })
    }

    fn target(&mut self, pv: &PvSpec, pos: &Pos) -> Option<Target> {
        let r = match self.read_spec(pv) {
            Ok(r) => r,
            Err(m) => {
                self.err(pos, m.to_string());
                return None;
            }
        };
        let t = match r {
            Read::Var(n) => Target::Var(n),
            Read::Avp(n, None) => Target::Avp(n),
            Read::Avp(_, Some(_)) => {
                self.err(
                    pos,
                    format!("cannot assign to an indexed AVP ({pv}); assign to the AVP itself"),
                );
                return None;
            }
            Read::Msg(m) if m.writable() => Target::Msg(m),
            Read::Msg(m) => {
                self.err(
                    pos,
                    format!("{m} is read-only; the writable ones are $ru $rU $rd $rp $du"),
                );
                return None;
            }
            Read::Null | Read::Rc => {
                self.err(pos, format!("{pv} is read-only"));
                return None;
            }
        };
        Some(t)
    }

    /// A pseudo-variable as a read.
    pub(crate) fn read_spec(&mut self, pv: &PvSpec) -> Result<Read, ReadError> {
        if let Some(t) = pv.transforms.first() {
            return Err(ReadError::Transform {
                transform: t.clone(),
                pv: pv.to_string(),
            });
        }
        let arg = pv.arg.as_deref();
        let no_index = |r: Read| match &pv.index {
            Some(_) => Err(ReadError::Index { pv: pv.to_string() }),
            None => Ok(r),
        };
        match pv.name.as_str() {
            "null" if arg.is_none() => no_index(Read::Null),
            "rc" | "retcode" | "?" if arg.is_none() => no_index(Read::Rc),
            "var" => match arg {
                Some(a) if !a.trim().is_empty() => no_index(Read::Var(a.trim().to_string())),
                _ => Err(ReadError::VarName),
            },
            "avp" => {
                let name = AvpName::parse_inner(arg.unwrap_or(""))?;
                let index = match &pv.index {
                    None => None,
                    Some(i) => Some(i.parse::<i64>().map_err(|_| ReadError::AvpIndex {
                        index: i.clone(),
                        pv: pv.to_string(),
                    })?),
                };
                Ok(Read::Avp(name, index))
            }
            name => no_index(Read::Msg(MsgPv::lookup(name, arg)?)),
        }
    }

    /// A format string: `$pv`s inside are rendered at run time.
    pub fn template(&mut self, s: &str) -> Result<Template, ReadError> {
        let b = s.as_bytes();
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut i = 0;
        let mut lit_start = 0;
        while i < b.len() {
            if b[i] == b'$' {
                if let Ok(end) = ast::scan_pv(b, i + 1) {
                    lit.push_str(&s[lit_start..i]);
                    let spec = PvSpec::parse(&s[i + 1..end])?;
                    let read = self.read_spec(&spec)?;
                    if !lit.is_empty() {
                        parts.push(Part::Lit(std::mem::take(&mut lit)));
                    }
                    parts.push(Part::Read(read));
                    i = end;
                    lit_start = end;
                    continue;
                }
            }
            i += 1;
        }
        lit.push_str(&s[lit_start..]);
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        Ok(Template(parts))
    }

    /// A string argument; `format` allows `$pv`s inside a literal.
    pub(crate) fn str_arg(&mut self, e: &ast::Expr, format: bool) -> Result<StrArg, ReadError> {
        match &e.kind {
            ExprKind::Str(s) if format && s.contains('$') => {
                let t = self.template(s)?;
                Ok(match t.0.as_slice() {
                    [] => StrArg::Const(String::new()),
                    [Part::Lit(l)] => StrArg::Const(l.clone()),
                    _ => StrArg::Tpl(t),
                })
            }
            ExprKind::Str(s) => Ok(StrArg::Const(s.clone())),
            ExprKind::Int(n) => Ok(StrArg::Const(n.to_string())),
            _ => match self.expr(e) {
                Some(x) => Ok(StrArg::Expr(Box::new(x))),
                // Already reported; keep the caller quiet.
                None => Ok(StrArg::Const(String::new())),
            },
        }
    }

    /// A route referenced by name from `route(X)` or `t_on_failure("X")`.
    pub(crate) fn route_ref(
        &mut self,
        kind: RouteKind,
        e: &ast::Expr,
    ) -> Result<RouteId, RouteRefError> {
        let name = match &e.kind {
            ExprKind::Ident(n) | ExprKind::Str(n) => n.clone(),
            ExprKind::Int(n) => n.to_string(),
            _ => return Err(RouteRefError::NotConstant),
        };
        match self.names.get(&(kind, name.clone())) {
            Some(id) => Ok(*id),
            None => Err(RouteRefError::Undefined { kind, name }),
        }
    }

    fn call(&mut self, call: &ast::Call) -> Option<Expr> {
        if call.name == "route" {
            if call.args.len() != 1 {
                self.err(&call.pos, "route() takes exactly one route name");
                return None;
            }
            return match self.route_ref(RouteKind::Named, &call.args[0]) {
                Ok(id) => Some(Expr::Route(id)),
                Err(m) => {
                    self.err(&call.args[0].pos, m.to_string());
                    None
                }
            };
        }
        let Some(def) = funcs::lookup(&call.name) else {
            self.err(
                &call.pos,
                format!(
                    "unknown function '{}' (not a core function nor one of a supported module)",
                    call.name
                ),
            );
            return None;
        };
        if let Some(m) = def.module {
            if !self.env.modules.iter().any(|x| x == m) {
                self.err(
                    &call.pos,
                    format!(
                        "function '{}' needs module {m}: add loadmodule \"{m}.so\"",
                        call.name
                    ),
                );
                return None;
            }
        }
        let n = call.args.len();
        if n < def.min || n > def.max {
            let want = match (def.min, def.max) {
                (a, b) if a == b => format!("{a}"),
                (a, b) => format!("{a} to {b}"),
            };
            let s = if def.max == 1 { "" } else { "s" };
            self.err(
                &call.pos,
                format!("{}() takes {want} argument{s}, {n} given", call.name),
            );
            return None;
        }
        match (def.build)(self, &call.args) {
            Ok(kind) => Some(Expr::Call(Box::new(Call {
                pos: call.pos.clone(),
                kind,
            }))),
            Err(ArgErr { arg, msg }) => {
                let pos = arg
                    .and_then(|i| call.args.get(i))
                    .map(|a| a.pos.clone())
                    .unwrap_or_else(|| call.pos.clone());
                self.err(&pos, format!("{}(): {msg}", call.name));
                None
            }
        }
    }

    pub(crate) fn expr(&mut self, e: &ast::Expr) -> Option<Expr> {
        Some(match &e.kind {
            ExprKind::Int(n) => Expr::Const(Value::Int(*n)),
            ExprKind::Str(s) => Expr::Const(Value::Str(s.clone())),
            ExprKind::Pv(p) => match self.read_spec(p) {
                Ok(r) => Expr::Read(r),
                Err(m) => {
                    self.err(&e.pos, m.to_string());
                    return None;
                }
            },
            ExprKind::Ident(name) => match keyword_pv(name) {
                Some(pv) => Expr::Read(Read::Msg(pv)),
                None if name == "myself" => {
                    self.err(&e.pos, "'myself' can only be compared with == or !=");
                    return None;
                }
                None => {
                    self.err(
                        &e.pos,
                        format!("unknown name '{name}' (missing '$' or quotes?)"),
                    );
                    return None;
                }
            },
            ExprKind::Call(c) => self.call(c)?,
            ExprKind::Not(x) => Expr::Not(Box::new(self.expr(x)?)),
            ExprKind::Neg(x) => Expr::Neg(Box::new(self.expr(x)?)),
            ExprKind::Binary(op, l, r) => return self.binary(*op, l, r, &e.pos),
        })
    }

    fn binary(&mut self, op: BinOp, l: &ast::Expr, r: &ast::Expr, pos: &Pos) -> Option<Expr> {
        let is_myself = |x: &ast::Expr| matches!(&x.kind, ExprKind::Ident(n) if n == "myself");
        if matches!(op, BinOp::Eq | BinOp::Ne) && (is_myself(l) || is_myself(r)) {
            let other = if is_myself(r) { l } else { r };
            let arg = StrArg::Expr(Box::new(self.expr(other)?));
            let call = Expr::Call(Box::new(Call {
                pos: pos.clone(),
                kind: CallKind::Host(HostSpec::IsMyself(arg)),
            }));
            return Some(if op == BinOp::Ne {
                Expr::Not(Box::new(call))
            } else {
                call
            });
        }
        if matches!(op, BinOp::Match | BinOp::NotMatch) {
            let lhs = self.expr(l);
            let re = match &r.kind {
                // Kamailio compiles =~ patterns as POSIX extended, case-insensitive.
                ExprKind::Str(p) => match RegexBuilder::new(p).case_insensitive(true).build() {
                    Ok(re) => Rx::Const(re),
                    Err(err) => {
                        self.err(&r.pos, format!("invalid regular expression {p:?}: {err}"));
                        return None;
                    }
                },
                _ => Rx::Dyn(Box::new(self.expr(r)?)),
            };
            return Some(Expr::Match {
                lhs: Box::new(lhs?),
                re,
                negate: op == BinOp::NotMatch,
                pos: pos.clone(),
            });
        }
        let (a, b) = (self.expr(l), self.expr(r));
        let (a, b) = (Box::new(a?), Box::new(b?));
        Some(match op {
            BinOp::Or => Expr::Or(a, b),
            BinOp::And => Expr::And(a, b),
            BinOp::Eq => Expr::Cmp(CmpOp::Eq, a, b),
            BinOp::Ne => Expr::Cmp(CmpOp::Ne, a, b),
            BinOp::Lt => Expr::Cmp(CmpOp::Lt, a, b),
            BinOp::Gt => Expr::Cmp(CmpOp::Gt, a, b),
            BinOp::Le => Expr::Cmp(CmpOp::Le, a, b),
            BinOp::Ge => Expr::Cmp(CmpOp::Ge, a, b),
            BinOp::Add => Expr::Arith(ArithOp::Add, a, b),
            BinOp::Sub => Expr::Arith(ArithOp::Sub, a, b),
            BinOp::Mul => Expr::Arith(ArithOp::Mul, a, b),
            BinOp::Div => Expr::Arith(ArithOp::Div, a, b),
            BinOp::Mod => Expr::Arith(ArithOp::Mod, a, b),
            BinOp::Match | BinOp::NotMatch => return None,
        })
    }
}

/// Old-style (SER/OpenSER) condition keywords and the pseudo-variable each reads.
fn keyword_pv(name: &str) -> Option<MsgPv> {
    Some(match name {
        "method" => MsgPv::Method,
        "uri" => MsgPv::RUri,
        "status" => MsgPv::Status,
        "from_uri" => MsgPv::FromUri,
        "to_uri" => MsgPv::ToUri,
        "src_ip" => MsgPv::SrcIp,
        "src_port" => MsgPv::SrcPort,
        "dst_ip" => MsgPv::RcvIp,
        "dst_port" => MsgPv::RcvPort,
        "proto" => MsgPv::Proto,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_texts() {
        let cases: &[(Box<dyn std::error::Error>, &str)] = &[
            (
                Box::new(ReadError::VarName),
                "$var needs a name: $var(name)",
            ),
            (
                Box::new(ReadError::AvpIndex {
                    index: "x".into(),
                    pv: "$(avp(a)[x])".into(),
                }),
                "AVP index must be a number, not 'x' ($(avp(a)[x]))",
            ),
            (
                Box::new(ReadError::Transform {
                    transform: "s.len".into(),
                    pv: "$(ru{s.len})".into(),
                }),
                "transformations such as {s.len} are not supported ($(ru{s.len}))",
            ),
            (
                Box::new(ReadError::from(PvError::NoArgument("rm".into()))),
                "$rm takes no argument",
            ),
            (
                Box::new(RouteRefError::Undefined {
                    kind: RouteKind::Failure,
                    name: "X".into(),
                }),
                "failure_route[X] is not defined",
            ),
            (
                Box::new(RouteRefError::NotConstant),
                "the route name must be written as a constant",
            ),
        ];
        for (e, want) in cases {
            assert_eq!(e.to_string(), *want);
        }
    }
}
