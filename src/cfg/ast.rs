//! The syntax tree of a kamailio.cfg after preprocessing: globals, loadmodule,
//! modparam and route blocks with their statements, in file order. Pure data
//! plus a compact `Display` (used by tests and for debugging); no meaning is
//! attached here (that is `config` and `script`).

use std::fmt;

use super::Pos;

#[derive(Debug, Clone)]
pub struct Cfg {
    pub items: Vec<Item>,
    /// End of the main file: where "missing …" diagnostics with no better place point.
    pub end: Pos,
    /// Debug-level remarks of the preprocessor (a skipped import_file),
    /// for config.rs to hand on as notes: nothing here logs.
    pub notes: Vec<super::Diagnostic>,
}

#[derive(Debug, Clone)]
pub enum Item {
    Global(Global),
    LoadModule { path: String, pos: Pos },
    ModParam(ModParam),
    Route(Route),
}

/// `name = value` at top level.
#[derive(Debug, Clone)]
pub struct Global {
    pub name: String,
    pub pos: Pos,
    pub value: GlobalValue,
    pub value_pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub enum GlobalValue {
    /// Numbers (decimal, 0x hex, 0 octal, `b` binary) and yes/no/on/off/true/false/enable/disable.
    Int(i64),
    Str(String),
    /// Anything else written without quotes, as text: `LOG_LOCAL0`, `10.0.0.1`, `epoll`.
    Word(String),
    /// `listen=` and `alias=`: one or more socket specs on the line.
    Sockets(Vec<SockSpec>),
}

/// `[proto:]host[:port] [advertise host[:port]] [name "x"]`.
#[derive(Debug, Clone, PartialEq)]
pub struct SockSpec {
    pub proto: Option<String>,
    /// IP literal (IPv6 without brackets), `*`, or a name.
    pub host: String,
    pub port: Option<u32>,
    pub advertise: Option<(String, Option<u32>)>,
    pub name: Option<String>,
    pub pos: Pos,
}

#[derive(Debug, Clone)]
pub struct ModParam {
    pub module: String,
    pub param: String,
    pub value: ModValue,
    pub pos: Pos,
    pub value_pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ModValue {
    Int(i64),
    Str(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteKind {
    /// `route {…}` or `request_route {…}`.
    Request,
    /// `route[NAME] {…}`, called with `route(NAME)`.
    Named,
    /// `onreply_route {…}` / `reply_route {…}` (name None) and `onreply_route[NAME]`.
    OnReply,
    Failure,
    Branch,
    OnSend,
    Event,
}

#[derive(Debug, Clone)]
pub struct Route {
    pub kind: RouteKind,
    pub name: Option<String>,
    pub pos: Pos,
    pub body: Vec<Stmt>,
}

#[derive(Debug, Clone)]
pub struct Stmt {
    pub pos: Pos,
    pub kind: StmtKind,
}

#[derive(Debug, Clone)]
pub enum StmtKind {
    If {
        cond: Expr,
        then: Vec<Stmt>,
        els: Option<Vec<Stmt>>,
    },
    While {
        cond: Expr,
        body: Vec<Stmt>,
    },
    Exit,
    Drop,
    Break,
    Return(Option<Expr>),
    /// `$pv = expr;` (`replace` for `:=`).
    Assign {
        pv: PvSpec,
        pv_pos: Pos,
        replace: bool,
        value: Expr,
    },
    /// `name(args);`, including `route(NAME);`.
    Call(Call),
}

#[derive(Debug, Clone)]
pub struct Call {
    pub name: String,
    pub pos: Pos,
    pub args: Vec<Expr>,
}

#[derive(Debug, Clone)]
pub struct Expr {
    pub pos: Pos,
    pub kind: ExprKind,
}

#[derive(Debug, Clone)]
pub enum ExprKind {
    Int(i64),
    Str(String),
    Pv(PvSpec),
    /// A bare word: a route name in `route(X)`, an old-style keyword
    /// (`method`, `uri`, `myself`…), an xlog level `L_INFO`…
    Ident(String),
    Call(Call),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    Match,
    NotMatch,
    Lt,
    Gt,
    Le,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

impl BinOp {
    pub fn as_str(self) -> &'static str {
        match self {
            BinOp::Or => "||",
            BinOp::And => "&&",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Match => "=~",
            BinOp::NotMatch => "!~",
            BinOp::Lt => "<",
            BinOp::Gt => ">",
            BinOp::Le => "<=",
            BinOp::Ge => ">=",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
        }
    }
}

/// A pseudo-variable as written: `$name`, `$name(arg)`, `$(name(arg)[index]{tr}…)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PvSpec {
    pub name: String,
    pub arg: Option<String>,
    /// `[n]` (`[*]` is kept as text "*").
    pub index: Option<String>,
    /// Raw transformation bodies, `{s.len}` → "s.len".
    pub transforms: Vec<String>,
}

/// Scans a pseudo-variable starting right after its `$` in `s[start..]`;
/// returns the end (exclusive) or a message. Shared by the lexer and by the
/// format strings of `script` so both read `$…` the same way.
pub(crate) fn scan_pv(s: &[u8], start: usize) -> Result<usize, &'static str> {
    let mut i = start;
    let balanced = |mut i: usize| -> Result<usize, &'static str> {
        // s[i] == b'('
        let mut depth = 0usize;
        while i < s.len() {
            match s[i] {
                b'(' => depth += 1,
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(i + 1);
                    }
                }
                b'\n' => break,
                _ => {}
            }
            i += 1;
        }
        Err("unterminated pseudo-variable: missing ')'")
    };
    match s.get(i) {
        Some(b'(') => balanced(i),
        Some(b'?') => Ok(i + 1),
        Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {
            while i < s.len() && (s[i].is_ascii_alphanumeric() || s[i] == b'_') {
                i += 1;
            }
            if s.get(i) == Some(&b'(') {
                balanced(i)
            } else {
                Ok(i)
            }
        }
        _ => Err("invalid pseudo-variable: '$' must be followed by a name or '('"),
    }
}

/// Why the text of a pseudo-variable does not parse. `pv` is the text as
/// written (with its `$`) or, for an argument, the part from its `(`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PvSyntaxError {
    #[error("invalid pseudo-variable '{pv}'")]
    Invalid { pv: String },
    #[error("missing '{close}' in '{pv}'")]
    Unclosed { close: char, pv: String },
    #[error("unexpected '{rest}' in '{pv}'")]
    Trailing { rest: String, pv: String },
}

impl PvSpec {
    /// Parses the text after `$` as returned by [`scan_pv`].
    pub fn parse(body: &str) -> Result<PvSpec, PvSyntaxError> {
        if let Some(inner) = body.strip_prefix('(') {
            let inner = inner.strip_suffix(')').unwrap_or(inner);
            let written = || format!("$({inner})");
            let unclosed = |close| PvSyntaxError::Unclosed {
                close,
                pv: written(),
            };
            let (name, rest) = split_name(inner);
            if !name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
                return Err(PvSyntaxError::Invalid { pv: written() });
            }
            let (arg, mut rest) = split_arg(rest)?;
            let mut index = None;
            if let Some(r) = rest.strip_prefix('[') {
                let end = r.find(']').ok_or_else(|| unclosed(']'))?;
                index = Some(r[..end].trim().to_string());
                rest = &r[end + 1..];
            }
            let mut transforms = Vec::new();
            while let Some(r) = rest.strip_prefix('{') {
                let end = r.find('}').ok_or_else(|| unclosed('}'))?;
                transforms.push(r[..end].to_string());
                rest = &r[end + 1..];
            }
            if !rest.trim().is_empty() {
                return Err(PvSyntaxError::Trailing {
                    rest: rest.to_string(),
                    pv: written(),
                });
            }
            Ok(PvSpec {
                name: name.to_string(),
                arg,
                index,
                transforms,
            })
        } else {
            let (name, rest) = if let Some(r) = body.strip_prefix('?') {
                ("?", r)
            } else {
                split_name(body)
            };
            let (arg, rest) = split_arg(rest)?;
            if name.is_empty() || !rest.is_empty() {
                return Err(PvSyntaxError::Invalid {
                    pv: format!("${body}"),
                });
            }
            Ok(PvSpec {
                name: name.to_string(),
                arg,
                index: None,
                transforms: Vec::new(),
            })
        }
    }
}

fn split_name(s: &str) -> (&str, &str) {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    s.split_at(end)
}

/// `(arg)rest` → (Some(arg), rest), honouring nested parentheses.
fn split_arg(s: &str) -> Result<(Option<String>, &str), PvSyntaxError> {
    if !s.starts_with('(') {
        return Ok((None, s));
    }
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Ok((Some(s[1..i].to_string()), &s[i + 1..]));
                }
            }
            _ => {}
        }
    }
    Err(PvSyntaxError::Unclosed {
        close: ')',
        pv: s.to_string(),
    })
}

// ---- Display: a compact, stable rendering used by tests ----

impl fmt::Display for Cfg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, item) in self.items.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{item}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Item::Global(g) => write!(f, "{}={}", g.name, g.value),
            Item::LoadModule { path, .. } => write!(f, "loadmodule {path:?}"),
            Item::ModParam(m) => {
                write!(f, "modparam({:?}, {:?}, ", m.module, m.param)?;
                match &m.value {
                    ModValue::Int(n) => write!(f, "{n})"),
                    ModValue::Str(s) => write!(f, "{s:?})"),
                }
            }
            Item::Route(r) => write!(f, "{r}"),
        }
    }
}

impl fmt::Display for GlobalValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GlobalValue::Int(n) => write!(f, "{n}"),
            GlobalValue::Str(s) => write!(f, "{s:?}"),
            GlobalValue::Word(w) => write!(f, "{w}"),
            GlobalValue::Sockets(socks) => {
                for (i, s) in socks.iter().enumerate() {
                    if i > 0 {
                        write!(f, " ")?;
                    }
                    write!(f, "{s}")?;
                }
                Ok(())
            }
        }
    }
}

fn write_hostport(f: &mut fmt::Formatter<'_>, host: &str, port: Option<u32>) -> fmt::Result {
    if host.contains(':') {
        write!(f, "[{host}]")?;
    } else {
        write!(f, "{host}")?;
    }
    if let Some(p) = port {
        write!(f, ":{p}")?;
    }
    Ok(())
}

impl fmt::Display for SockSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = &self.proto {
            write!(f, "{p}:")?;
        }
        write_hostport(f, &self.host, self.port)?;
        if let Some((h, p)) = &self.advertise {
            write!(f, " advertise ")?;
            write_hostport(f, h, *p)?;
        }
        if let Some(n) = &self.name {
            write!(f, " name {n:?}")?;
        }
        Ok(())
    }
}

impl RouteKind {
    pub fn keyword(self) -> &'static str {
        match self {
            RouteKind::Request => "request_route",
            RouteKind::Named => "route",
            RouteKind::OnReply => "onreply_route",
            RouteKind::Failure => "failure_route",
            RouteKind::Branch => "branch_route",
            RouteKind::OnSend => "onsend_route",
            RouteKind::Event => "event_route",
        }
    }
}

fn write_block(f: &mut fmt::Formatter<'_>, body: &[Stmt]) -> fmt::Result {
    write!(f, "{{ ")?;
    for s in body {
        write!(f, "{s} ")?;
    }
    write!(f, "}}")
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind.keyword())?;
        if let Some(n) = &self.name {
            write!(f, "[{n}]")?;
        }
        write!(f, " ")?;
        write_block(f, &self.body)
    }
}

impl fmt::Display for Stmt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            StmtKind::If { cond, then, els } => {
                write!(f, "if ({cond}) ")?;
                write_block(f, then)?;
                if let Some(e) = els {
                    write!(f, " else ")?;
                    write_block(f, e)?;
                }
                Ok(())
            }
            StmtKind::While { cond, body } => {
                write!(f, "while ({cond}) ")?;
                write_block(f, body)
            }
            StmtKind::Exit => write!(f, "exit;"),
            StmtKind::Drop => write!(f, "drop;"),
            StmtKind::Break => write!(f, "break;"),
            StmtKind::Return(None) => write!(f, "return;"),
            StmtKind::Return(Some(e)) => write!(f, "return {e};"),
            StmtKind::Assign {
                pv, replace, value, ..
            } => write!(f, "{pv} {} {value};", if *replace { ":=" } else { "=" }),
            StmtKind::Call(c) => write!(f, "{c};"),
        }
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}(", self.name)?;
        for (i, a) in self.args.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{a}")?;
        }
        write!(f, ")")
    }
}

impl fmt::Display for PvSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let arg = self
            .arg
            .as_ref()
            .map(|a| format!("({a})"))
            .unwrap_or_default();
        if self.index.is_none() && self.transforms.is_empty() {
            return write!(f, "${}{arg}", self.name);
        }
        write!(f, "$({}{arg}", self.name)?;
        if let Some(i) = &self.index {
            write!(f, "[{i}]")?;
        }
        for t in &self.transforms {
            write!(f, "{{{t}}}")?;
        }
        write!(f, ")")
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ExprKind::Int(n) => write!(f, "{n}"),
            ExprKind::Str(s) => write!(f, "{s:?}"),
            ExprKind::Pv(p) => write!(f, "{p}"),
            ExprKind::Ident(i) => write!(f, "{i}"),
            ExprKind::Call(c) => write!(f, "{c}"),
            ExprKind::Not(e) => write!(f, "!{e}"),
            ExprKind::Neg(e) => write!(f, "-{e}"),
            ExprKind::Binary(op, l, r) => write!(f, "({l} {} {r})", op.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pv_forms() {
        type Want = Result<
            (
                &'static str,
                Option<&'static str>,
                Option<&'static str>,
                &'static [&'static str],
            ),
            &'static str,
        >;
        let cases: &[(&str, Want)] = &[
            ("rm", Ok(("rm", None, None, &[]))),
            ("var(x)", Ok(("var", Some("x"), None, &[]))),
            (
                "hdr(Max-Forwards)",
                Ok(("hdr", Some("Max-Forwards"), None, &[])),
            ),
            ("(avp(s:x)[1])", Ok(("avp", Some("s:x"), Some("1"), &[]))),
            (
                "(ru{s.len}{s.int})",
                Ok(("ru", None, None, &["s.len", "s.int"])),
            ),
            ("(avp(a(b)))", Ok(("avp", Some("a(b)"), None, &[]))),
            ("?", Ok(("?", None, None, &[]))),
            ("(x]", Err("unexpected ']' in '$(x])'")),
            ("(1)", Err("invalid pseudo-variable '$(1)'")),
            ("a-b", Err("invalid pseudo-variable '$a-b'")),
            ("(avp(x)[0", Err("missing ']' in '$(avp(x)[0)'")),
            ("(ru{s.len)", Err("missing '}' in '$(ru{s.len)'")),
            ("var(x", Err("missing ')' in '(x'")),
        ];
        for (src, want) in cases {
            let got = PvSpec::parse(src);
            match want {
                Ok((n, a, i, t)) => {
                    let p = got.unwrap();
                    assert_eq!(p.name, *n, "{src}");
                    assert_eq!(p.arg.as_deref(), *a, "{src}");
                    assert_eq!(p.index.as_deref(), *i, "{src}");
                    assert_eq!(
                        p.transforms,
                        t.iter().map(|s| s.to_string()).collect::<Vec<_>>()
                    );
                }
                Err(e) => assert_eq!(got.unwrap_err().to_string(), *e, "{src}"),
            }
        }
    }

    #[test]
    fn scan_pv_extent() {
        let cases: &[(&str, Result<usize, &str>)] = &[
            ("$rm from", Ok(3)),
            ("$var(x)y", Ok(7)),
            ("$(avp(x)[0]) z", Ok(12)),
            ("$T_reply_code.", Ok(13)),
            (
                "$ x",
                Err("invalid pseudo-variable: '$' must be followed by a name or '('"),
            ),
            ("$var(x", Err("unterminated pseudo-variable: missing ')'")),
        ];
        for (s, want) in cases {
            assert_eq!(scan_pv(s.as_bytes(), 1), *want, "{s}");
        }
    }
}
