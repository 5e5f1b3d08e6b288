//! Recursive-descent parser from the preprocessed token list to the AST.
//! Reports every error it can find: a bad top-level item is skipped up to the
//! next global/loadmodule/modparam/route, a bad statement up to its `;` or the
//! end of its block, and parsing goes on. Only syntax is checked here: names of
//! parameters, modules, functions and routes are resolved later.

use super::ast::*;
use super::lexer::{Tok, Token};
use super::{Diagnostic, Pos};

type PResult<T> = Result<T, ()>;

const ROUTE_WORDS: &[&str] = &[
    "route",
    "request_route",
    "reply_route",
    "onreply_route",
    "failure_route",
    "branch_route",
    "onsend_route",
    "event_route",
];

pub fn parse(toks: Vec<Token>, eof: Pos) -> (Cfg, Vec<Diagnostic>) {
    let last = eof.clone();
    let mut p = Parser {
        toks,
        i: 0,
        eof,
        last,
        diags: Vec::new(),
    };
    let items = p.items();
    let end = p.eof.clone();
    (
        Cfg {
            items,
            end,
            notes: Vec::new(),
        },
        p.diags,
    )
}

struct Parser {
    toks: Vec<Token>,
    i: usize,
    eof: Pos,
    /// Position of the last consumed token (for same-line rules).
    last: Pos,
    diags: Vec<Diagnostic>,
}

/// Parses a number as Kamailio's lexer does: decimal, `0x` hex, `0` octal, `…b` binary.
pub(crate) fn parse_int(s: &str) -> Option<i64> {
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return i64::from_str_radix(h, 16).ok();
    }
    if let Some(b) = s.strip_suffix('b') {
        if !b.is_empty() && b.bytes().all(|c| c == b'0' || c == b'1') {
            return i64::from_str_radix(b, 2).ok();
        }
    }
    if s.len() > 1 && s.starts_with('0') {
        return i64::from_str_radix(&s[1..], 8).ok();
    }
    if !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()) {
        return s.parse().ok();
    }
    None
}

fn bool_word(w: &str) -> Option<i64> {
    match w {
        "yes" | "true" | "on" | "enable" => Some(1),
        "no" | "false" | "off" | "disable" => Some(0),
        _ => None,
    }
}

/// `[proto:]host[:port]` with `[v6]` brackets, a bare IPv6 (no port), `*`
/// (sip::ListenForm); the protocol lower-cased.
pub(crate) fn parse_sock_text(
    text: &str,
) -> Result<(Option<String>, String, Option<u32>), crate::sip::ListenFormError> {
    let f = crate::sip::ListenForm::parse(text)?;
    Ok((
        f.proto.map(str::to_ascii_lowercase),
        f.host.to_string(),
        f.port,
    ))
}

impl Parser {
    // ---- token helpers ----

    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.i)
    }

    fn peek_tok(&self) -> Option<&Tok> {
        self.peek().map(|t| &t.tok)
    }

    fn peek_at(&self, k: usize) -> Option<&Token> {
        self.toks.get(self.i + k)
    }

    fn is_ident(&self, w: &str) -> bool {
        matches!(self.peek_tok(), Some(Tok::Ident(x)) if x == w)
    }

    fn pos(&self) -> Pos {
        self.peek()
            .map(|t| t.pos.clone())
            .unwrap_or_else(|| self.eof.clone())
    }

    fn bump(&mut self) -> Option<Token> {
        let t = self.toks.get(self.i).cloned()?;
        self.i += 1;
        self.last = t.pos.clone();
        Some(t)
    }

    fn eat(&mut self, tok: &Tok) -> bool {
        if self.peek_tok() == Some(tok) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn found(&self) -> String {
        match self.peek() {
            Some(t) => format!("'{}'", t.tok.text()),
            None => "end of file".to_string(),
        }
    }

    fn error<T>(&mut self, pos: &Pos, msg: impl Into<String>) -> PResult<T> {
        self.diags.push(Diagnostic::at(pos, msg));
        Err(())
    }

    fn expect(&mut self, tok: &Tok, context: &str) -> PResult<Pos> {
        if self.peek_tok() == Some(tok) {
            Ok(self
                .bump()
                .map(|t| t.pos)
                .unwrap_or_else(|| self.eof.clone()))
        } else {
            let (pos, found) = (self.pos(), self.found());
            self.error(
                &pos,
                format!("expected '{}' {context}, found {found}", tok.text()),
            )
        }
    }

    /// The next token is on the line of the previously consumed one.
    fn same_line(&self) -> bool {
        self.peek()
            .is_some_and(|t| t.pos.line == self.last.line && t.pos.file == self.last.file)
    }

    // ---- top level ----

    fn at_top_start(&self) -> bool {
        match self.peek_tok() {
            Some(Tok::Ident(w)) => {
                matches!(w.as_str(), "loadmodule" | "modparam")
                    || ROUTE_WORDS.contains(&w.as_str())
                    || matches!(self.peek_at(1).map(|t| &t.tok), Some(Tok::Assign))
            }
            _ => false,
        }
    }

    fn items(&mut self) -> Vec<Item> {
        let mut items = Vec::new();
        while let Some(t) = self.peek() {
            let next_is_assign = matches!(self.peek_at(1).map(|t| &t.tok), Some(Tok::Assign));
            let r = match &t.tok {
                Tok::Semi => {
                    self.bump();
                    continue;
                }
                Tok::Ident(w) => match w.as_str() {
                    "loadmodule" => self.loadmodule(),
                    "modparam" => self.modparam(),
                    "loadpath" | "mpath" if !next_is_assign => self.loadpath(),
                    w if ROUTE_WORDS.contains(&w) => self.route().map(Item::Route),
                    _ if next_is_assign => self.global(),
                    w => {
                        let msg = format!(
                            "unexpected '{w}': expected a global parameter (name = value), loadmodule, modparam or a route block"
                        );
                        let pos = t.pos.clone();
                        self.error(&pos, msg)
                    }
                },
                other => {
                    let msg = format!(
                        "unexpected '{}': expected a global parameter (name = value), loadmodule, modparam or a route block",
                        other.text()
                    );
                    let pos = t.pos.clone();
                    self.error(&pos, msg)
                }
            };
            match r {
                Ok(item) => items.push(item),
                Err(()) => self.recover_top(),
            }
        }
        items
    }

    fn recover_top(&mut self) {
        let mut depth = 0usize;
        let mut first = true;
        while let Some(t) = self.peek() {
            if !first && depth == 0 && self.at_top_start() {
                return;
            }
            match t.tok {
                Tok::LBrace => depth += 1,
                Tok::RBrace => depth = depth.saturating_sub(1),
                _ => {}
            }
            self.bump();
            first = false;
        }
    }

    /// A run of adjacent tokens that together spell an address, a name or a
    /// number (`udp:10.0.0.1:5060`, `[::1]`, `LOG_LOCAL0`), as text.
    fn word(&mut self) -> Option<(String, Pos, usize)> {
        let wordish = |t: &Tok| {
            matches!(
                t,
                Tok::Ident(_)
                    | Tok::Num(_)
                    | Tok::Colon
                    | Tok::Dot
                    | Tok::Minus
                    | Tok::Star
                    | Tok::LBracket
                    | Tok::RBracket
                    | Tok::Slash
            )
        };
        let first = self.peek()?;
        if !wordish(&first.tok) {
            return None;
        }
        let pos = first.pos.clone();
        let mut text = String::new();
        let mut n = 0;
        while let Some(t) = self.peek() {
            if n > 0 && (t.spaced || !wordish(&t.tok)) {
                break;
            }
            text.push_str(&t.tok.text());
            n += 1;
            self.bump();
        }
        Some((text, pos, n))
    }

    fn global(&mut self) -> PResult<Item> {
        let Some(Token {
            tok: Tok::Ident(name),
            pos,
            ..
        }) = self.bump()
        else {
            return Err(());
        };
        self.bump(); // '='
        let value_pos = self.pos();
        // The value may sit on the next line (Kamailio ignores newlines), but
        // not when that line starts the next item.
        if self.peek().is_none() || (!self.same_line() && self.at_top_start()) {
            return self.error(&value_pos, format!("expected a value after '{name} ='"));
        }
        let value = if name == "listen" || name == "alias" {
            GlobalValue::Sockets(self.sockets(&name)?)
        } else {
            match self.peek_tok() {
                Some(Tok::Str(_)) => match self.bump().map(|t| t.tok) {
                    Some(Tok::Str(s)) => GlobalValue::Str(s),
                    _ => return Err(()),
                },
                Some(Tok::Minus)
                    if matches!(
                        self.peek_at(1),
                        Some(Token {
                            tok: Tok::Num(_),
                            spaced: false,
                            ..
                        })
                    ) =>
                {
                    self.bump();
                    let (text, p, _) = self.word().ok_or(())?;
                    match parse_int(&text) {
                        Some(n) => GlobalValue::Int(-n),
                        None => return self.error(&p, format!("invalid number '-{text}'")),
                    }
                }
                _ => match self.word() {
                    Some((text, _, 1)) if parse_int(&text).is_some() => {
                        GlobalValue::Int(parse_int(&text).unwrap_or_default())
                    }
                    Some((text, _, 1)) if bool_word(&text).is_some() => {
                        GlobalValue::Int(bool_word(&text).unwrap_or_default())
                    }
                    Some((text, _, _)) => GlobalValue::Word(text),
                    None => {
                        let found = self.found();
                        return self.error(
                            &value_pos,
                            format!("expected a value after '{name} =', found {found}"),
                        );
                    }
                },
            }
        };
        self.eat(&Tok::Semi);
        Ok(Item::Global(Global {
            name,
            pos,
            value,
            value_pos,
        }))
    }

    fn sockets(&mut self, gname: &str) -> PResult<Vec<SockSpec>> {
        let mut out = Vec::new();
        loop {
            let pos = self.pos();
            let text = match self.peek_tok() {
                Some(Tok::Str(s)) => {
                    let s = s.clone();
                    self.bump();
                    s
                }
                _ => match self.word() {
                    Some((t, _, _)) => t,
                    None => {
                        let found = self.found();
                        return self.error(
                            &pos,
                            format!("expected an address after '{gname} =', found {found}"),
                        );
                    }
                },
            };
            let (proto, host, port) = match parse_sock_text(&text) {
                Ok(v) => v,
                Err(e) => return self.error(&pos, e.to_string()),
            };
            let mut spec = SockSpec {
                proto,
                host,
                port,
                advertise: None,
                name: None,
                pos,
            };
            while self.same_line() {
                if self.is_ident("advertise") || self.is_ident("ADVERTISE") {
                    self.bump();
                    let apos = self.pos();
                    let Some((t, _, _)) = self.word() else {
                        return self.error(&apos, "expected an address after 'advertise'");
                    };
                    match parse_sock_text(&t) {
                        Ok((None, h, p)) => spec.advertise = Some((h, p)),
                        Ok((Some(_), _, _)) => {
                            return self.error(&apos, "the advertised address takes no protocol");
                        }
                        Err(e) => return self.error(&apos, e.to_string()),
                    }
                } else if self.is_ident("name") {
                    self.bump();
                    match self.bump() {
                        Some(Token {
                            tok: Tok::Str(s), ..
                        }) => spec.name = Some(s),
                        _ => {
                            return self.error(
                                &self.last.clone(),
                                "expected a quoted socket name after 'name'",
                            );
                        }
                    }
                } else if self.is_ident("virtual") {
                    self.bump();
                } else {
                    break;
                }
            }
            out.push(spec);
            let another = self.same_line()
                && !matches!(self.peek_at(1).map(|t| &t.tok), Some(Tok::Assign))
                && matches!(
                    self.peek_tok(),
                    Some(Tok::Ident(_) | Tok::Num(_) | Tok::Str(_) | Tok::LBracket | Tok::Star)
                );
            if !another {
                return Ok(out);
            }
        }
    }

    fn loadmodule(&mut self) -> PResult<Item> {
        self.bump();
        match self.peek_tok() {
            Some(Tok::Str(s)) => {
                let path = s.clone();
                let pos = self.pos();
                self.bump();
                self.eat(&Tok::Semi);
                Ok(Item::LoadModule { path, pos })
            }
            _ => {
                let pos = self.pos();
                self.error(&pos, "loadmodule needs a quoted module name or path")
            }
        }
    }

    /// `loadpath "dir"` / `mpath "dir"` without '=' (Kamailio accepts both forms).
    fn loadpath(&mut self) -> PResult<Item> {
        let pos = self
            .bump()
            .map(|t| t.pos)
            .unwrap_or_else(|| self.eof.clone());
        let value_pos = self.pos();
        match self.bump().map(|t| t.tok) {
            Some(Tok::Str(s)) => {
                self.eat(&Tok::Semi);
                Ok(Item::Global(Global {
                    name: "mpath".into(),
                    pos,
                    value: GlobalValue::Str(s),
                    value_pos,
                }))
            }
            _ => self.error(&value_pos, "mpath needs a quoted directory"),
        }
    }

    fn modparam(&mut self) -> PResult<Item> {
        let pos = self
            .bump()
            .map(|t| t.pos)
            .unwrap_or_else(|| self.eof.clone());
        const CTX: &str = "in modparam(\"module\", \"param\", value)";
        self.expect(&Tok::LParen, CTX)?;
        let module = self.string_arg("the module name")?;
        self.expect(&Tok::Comma, CTX)?;
        let param = self.string_arg("the parameter name")?;
        self.expect(&Tok::Comma, CTX)?;
        let value_pos = self.pos();
        let value = match self.bump().map(|t| t.tok) {
            Some(Tok::Str(s)) => ModValue::Str(s),
            Some(Tok::Num(n)) => match parse_int(&n) {
                Some(v) => ModValue::Int(v),
                None => return self.error(&value_pos, format!("invalid number '{n}'")),
            },
            Some(Tok::Minus) => match self.bump().map(|t| t.tok) {
                Some(Tok::Num(n)) if parse_int(&n).is_some() => {
                    ModValue::Int(-parse_int(&n).unwrap_or_default())
                }
                _ => {
                    return self.error(&value_pos, "modparam value must be a string or an integer");
                }
            },
            Some(Tok::Ident(w)) if bool_word(&w).is_some() => {
                ModValue::Int(bool_word(&w).unwrap_or_default())
            }
            _ => return self.error(&value_pos, "modparam value must be a string or an integer"),
        };
        self.expect(&Tok::RParen, CTX)?;
        self.eat(&Tok::Semi);
        Ok(Item::ModParam(ModParam {
            module,
            param,
            value,
            pos,
            value_pos,
        }))
    }

    fn string_arg(&mut self, what: &str) -> PResult<String> {
        match self.peek_tok() {
            Some(Tok::Str(s)) => {
                let s = s.clone();
                self.bump();
                Ok(s)
            }
            _ => {
                let (pos, found) = (self.pos(), self.found());
                self.error(
                    &pos,
                    format!("expected {what} as a quoted string, found {found}"),
                )
            }
        }
    }

    // ---- routes ----

    fn route(&mut self) -> PResult<Route> {
        let Some(Token {
            tok: Tok::Ident(kw),
            pos,
            ..
        }) = self.bump()
        else {
            return Err(());
        };
        // (kind when unnamed, kind when named, name required, name allowed)
        let (kind, named_kind, required, allowed) = match kw.as_str() {
            "route" => (RouteKind::Request, RouteKind::Named, false, true),
            "request_route" => (RouteKind::Request, RouteKind::Request, false, false),
            "reply_route" => (RouteKind::OnReply, RouteKind::OnReply, false, false),
            "onreply_route" => (RouteKind::OnReply, RouteKind::OnReply, false, true),
            "failure_route" => (RouteKind::Failure, RouteKind::Failure, true, true),
            "branch_route" => (RouteKind::Branch, RouteKind::Branch, true, true),
            "onsend_route" => (RouteKind::OnSend, RouteKind::OnSend, false, false),
            _ => (RouteKind::Event, RouteKind::Event, true, true),
        };
        let mut name = None;
        if self.peek_tok() == Some(&Tok::LBracket) {
            let open = self
                .bump()
                .map(|t| t.pos)
                .unwrap_or_else(|| self.eof.clone());
            let mut text = String::new();
            while let Some(t) = self.peek() {
                match &t.tok {
                    Tok::RBracket => break,
                    Tok::Str(s) => text.push_str(s),
                    Tok::Ident(_) | Tok::Num(_) | Tok::Colon | Tok::Minus | Tok::Dot => {
                        text.push_str(&t.tok.text())
                    }
                    _ => {
                        let (p, f) = (t.pos.clone(), self.found());
                        return self.error(&p, format!("unexpected {f} in the route name"));
                    }
                }
                self.bump();
            }
            self.expect(&Tok::RBracket, "to close the route name")?;
            if text.is_empty() {
                return self.error(&open, "empty route name");
            }
            name = Some(text);
        }
        if name.is_some() && !allowed {
            return self.error(&pos, format!("{kw} takes no name"));
        }
        if name.is_none() && required {
            return self.error(&pos, format!("{kw} needs a name: {kw}[NAME] {{ … }}"));
        }
        let kind = if name.is_some() { named_kind } else { kind };
        let body = self.block()?;
        Ok(Route {
            kind,
            name,
            pos,
            body,
        })
    }

    fn block(&mut self) -> PResult<Vec<Stmt>> {
        let open = self.expect(&Tok::LBrace, "to open the block")?;
        Ok(self.stmts_until_rbrace(&open))
    }

    fn at_route_start(&self) -> bool {
        matches!(self.peek_tok(), Some(Tok::Ident(w)) if ROUTE_WORDS.contains(&w.as_str()))
            && matches!(
                self.peek_at(1).map(|t| &t.tok),
                Some(Tok::LBrace | Tok::LBracket)
            )
    }

    fn stmts_until_rbrace(&mut self, open: &Pos) -> Vec<Stmt> {
        let mut out = Vec::new();
        loop {
            match self.peek_tok() {
                None => {
                    let _ =
                        self.error::<()>(open, "missing '}' for this block (end of file reached)");
                    return out;
                }
                Some(Tok::RBrace) => {
                    self.bump();
                    return out;
                }
                _ if self.at_route_start() => {
                    let _ =
                        self.error::<()>(open, "missing '}' for this block (a new route starts)");
                    return out;
                }
                _ => {
                    if self.stmt(&mut out).is_err() {
                        self.recover_stmt();
                    }
                }
            }
        }
    }

    /// Skips to just after the `;` ending the broken statement, or just after
    /// a balanced `{…}`, or to the `}` closing the enclosing block.
    fn recover_stmt(&mut self) {
        let mut depth = 0usize;
        while let Some(t) = self.peek() {
            match t.tok {
                Tok::RBrace if depth == 0 => return,
                Tok::RBrace => {
                    depth -= 1;
                    self.bump();
                    if depth == 0 {
                        return;
                    }
                    continue;
                }
                Tok::LBrace => depth += 1,
                Tok::Semi if depth == 0 => {
                    self.bump();
                    return;
                }
                _ if depth == 0 && self.at_route_start() => return,
                _ => {}
            }
            self.bump();
        }
    }

    fn semi(&mut self) {
        if !self.eat(&Tok::Semi) {
            let pos = self.pos();
            self.diags
                .push(Diagnostic::at(&pos, "missing ';' after the statement"));
        }
    }

    fn can_start_stmt(&self) -> bool {
        matches!(
            self.peek_tok(),
            Some(Tok::LBrace | Tok::Semi | Tok::Ident(_) | Tok::Pv(_))
        )
    }

    /// Parses one statement into `out` (a nested `{…}` contributes several).
    fn stmt(&mut self, out: &mut Vec<Stmt>) -> PResult<()> {
        let pos = self.pos();
        let tok = match self.peek_tok() {
            Some(t) => t.clone(),
            None => return Err(()),
        };
        let kind = match tok {
            Tok::LBrace => {
                self.bump();
                out.extend(self.stmts_until_rbrace(&pos));
                return Ok(());
            }
            Tok::Semi => {
                self.bump();
                return Ok(());
            }
            Tok::Pv(text) if text.is_empty() => {
                self.bump();
                return Err(()); // malformed, already reported by the lexer
            }
            Tok::Pv(text) => {
                self.bump();
                self.assign_stmt(&pos, &text)?
            }
            Tok::Ident(w) => self.word_stmt(&pos, w)?,
            other => {
                return self.error(
                    &pos,
                    format!("unexpected '{}'; expected a statement", other.text()),
                );
            }
        };
        out.push(Stmt { pos, kind });
        Ok(())
    }

    /// `$pv = expr;` / `$pv := expr;`, the pseudo-variable already taken.
    fn assign_stmt(&mut self, pos: &Pos, text: &str) -> PResult<StmtKind> {
        let pv = match PvSpec::parse(text) {
            Ok(p) => p,
            Err(e) => return self.error(pos, e.to_string()),
        };
        let replace = if self.eat(&Tok::Assign) {
            false
        } else if self.eat(&Tok::ColonAssign) {
            true
        } else {
            let p = self.pos();
            return self.error(&p, format!("expected '=' or ':=' after {pv}"));
        };
        let value = self.expr()?;
        self.semi();
        Ok(StmtKind::Assign {
            pv,
            pv_pos: pos.clone(),
            replace,
            value,
        })
    }

    /// A statement starting with a word: a keyword or a function call.
    fn word_stmt(&mut self, pos: &Pos, w: String) -> PResult<StmtKind> {
        Ok(match w.as_str() {
            "if" => self.if_stmt()?,
            "while" => {
                self.bump();
                let cond = self.expr()?;
                let body = self.body_after("the while condition")?;
                StmtKind::While { cond, body }
            }
            "switch" => return self.error(pos, "'switch' is not supported; use if/else"),
            "else" => return self.error(pos, "'else' without 'if'"),
            "exit" | "drop" => {
                self.bump();
                if self.eat(&Tok::LParen) {
                    self.expect(&Tok::RParen, &format!("after {w}("))?;
                }
                self.semi();
                if w == "exit" {
                    StmtKind::Exit
                } else {
                    StmtKind::Drop
                }
            }
            "break" => {
                self.bump();
                self.semi();
                StmtKind::Break
            }
            "return" => self.return_stmt()?,
            _ => self.call_stmt(pos, w)?,
        })
    }

    /// `return;`, `return();` or `return expr;`.
    fn return_stmt(&mut self) -> PResult<StmtKind> {
        self.bump();
        let value = if matches!(self.peek_tok(), Some(Tok::Semi | Tok::RBrace) | None) {
            None
        } else if self.peek_tok() == Some(&Tok::LParen)
            && self.peek_at(1).map(|t| &t.tok) == Some(&Tok::RParen)
        {
            self.bump();
            self.bump();
            None
        } else {
            Some(self.expr()?)
        };
        self.semi();
        Ok(StmtKind::Return(value))
    }

    /// `name(args);` or, as Kamailio allows, a bare `name;`.
    fn call_stmt(&mut self, pos: &Pos, w: String) -> PResult<StmtKind> {
        match self.peek_at(1).map(|t| t.tok.clone()) {
            Some(Tok::LParen) => {
                let c = self.call()?;
                self.semi();
                Ok(StmtKind::Call(c))
            }
            Some(Tok::Semi) => {
                self.bump();
                self.bump();
                Ok(StmtKind::Call(Call {
                    name: w,
                    pos: pos.clone(),
                    args: Vec::new(),
                }))
            }
            Some(Tok::Assign) => {
                self.bump();
                let p = self.pos();
                self.error(
                    &p,
                    "unexpected '='; expected a statement (missing '$' before a variable name?)",
                )
            }
            _ => self.error(pos, format!("unexpected '{w}'; expected a statement")),
        }
    }

    fn if_stmt(&mut self) -> PResult<StmtKind> {
        self.bump();
        let cond = self.expr()?;
        let then = self.body_after("the condition")?;
        let els = if self.is_ident("else") {
            self.bump();
            if self.is_ident("if") {
                let pos = self.pos();
                let kind = self.if_stmt()?;
                Some(vec![Stmt { pos, kind }])
            } else {
                Some(self.body_after("'else'")?)
            }
        } else {
            None
        };
        Ok(StmtKind::If { cond, then, els })
    }

    fn body_after(&mut self, what: &str) -> PResult<Vec<Stmt>> {
        if self.peek_tok() == Some(&Tok::LBrace) {
            return self.block();
        }
        if !self.can_start_stmt() {
            let (pos, found) = (self.pos(), self.found());
            return self.error(
                &pos,
                format!("expected '{{' or a statement after {what}, found {found}"),
            );
        }
        let mut out = Vec::new();
        self.stmt(&mut out)?;
        Ok(out)
    }

    fn call(&mut self) -> PResult<Call> {
        let Some(Token {
            tok: Tok::Ident(name),
            pos,
            ..
        }) = self.bump()
        else {
            return Err(());
        };
        self.bump(); // '('
        let mut args = Vec::new();
        if !self.eat(&Tok::RParen) {
            loop {
                args.push(self.expr()?);
                if self.eat(&Tok::Comma) {
                    continue;
                }
                self.expect(&Tok::RParen, &format!("to close the arguments of {name}("))?;
                break;
            }
        }
        Ok(Call { name, pos, args })
    }

    // ---- expressions (precedence as Kamailio's cfg.y: || < && < == != =~ !~ < relational < + - < * / mod < unary) ----

    pub(crate) fn expr(&mut self) -> PResult<Expr> {
        self.binary(0)
    }

    fn binop_at(&self, level: usize) -> Option<BinOp> {
        let t = self.peek_tok()?;
        let op = match (level, t) {
            (0, Tok::Or) => BinOp::Or,
            (0, Tok::Ident(w)) if w == "or" => BinOp::Or,
            (1, Tok::And) => BinOp::And,
            (1, Tok::Ident(w)) if w == "and" => BinOp::And,
            (2, Tok::Eq) => BinOp::Eq,
            (2, Tok::Ne) => BinOp::Ne,
            (2, Tok::Match) => BinOp::Match,
            (2, Tok::NotMatch) => BinOp::NotMatch,
            (3, Tok::Lt) => BinOp::Lt,
            (3, Tok::Gt) => BinOp::Gt,
            (3, Tok::Le) => BinOp::Le,
            (3, Tok::Ge) => BinOp::Ge,
            (4, Tok::Plus) => BinOp::Add,
            (4, Tok::Minus) => BinOp::Sub,
            (5, Tok::Star) => BinOp::Mul,
            (5, Tok::Slash) => BinOp::Div,
            (5, Tok::Percent) => BinOp::Mod,
            (5, Tok::Ident(w)) if w == "mod" => BinOp::Mod,
            _ => return None,
        };
        Some(op)
    }

    fn binary(&mut self, level: usize) -> PResult<Expr> {
        if level > 5 {
            return self.unary();
        }
        let mut lhs = self.binary(level + 1)?;
        loop {
            if level == 2 && self.peek_tok() == Some(&Tok::Assign) {
                let pos = self.pos();
                return self.error(&pos, "'=' is assignment; use '==' to compare");
            }
            let Some(op) = self.binop_at(level) else {
                return Ok(lhs);
            };
            self.bump();
            let rhs = self.binary(level + 1)?;
            let pos = lhs.pos.clone();
            lhs = Expr {
                pos,
                kind: ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)),
            };
        }
    }

    fn unary(&mut self) -> PResult<Expr> {
        let pos = self.pos();
        match self.peek_tok() {
            Some(Tok::Not) => {
                self.bump();
                let e = self.unary()?;
                Ok(Expr {
                    pos,
                    kind: ExprKind::Not(Box::new(e)),
                })
            }
            Some(Tok::Ident(w)) if w == "not" => {
                self.bump();
                let e = self.unary()?;
                Ok(Expr {
                    pos,
                    kind: ExprKind::Not(Box::new(e)),
                })
            }
            Some(Tok::Minus) => {
                self.bump();
                let e = self.unary()?;
                let kind = match e.kind {
                    ExprKind::Int(n) => ExprKind::Int(n.wrapping_neg()),
                    other => ExprKind::Neg(Box::new(Expr {
                        pos: e.pos,
                        kind: other,
                    })),
                };
                Ok(Expr { pos, kind })
            }
            _ => self.primary(),
        }
    }

    fn primary(&mut self) -> PResult<Expr> {
        let pos = self.pos();
        let Some(tok) = self.peek_tok().cloned() else {
            return self.error(&pos, "expected an expression, found end of file");
        };
        let kind = match tok {
            Tok::Num(n) => {
                let dotted = matches!(
                    self.peek_at(1),
                    Some(Token {
                        tok: Tok::Dot,
                        spaced: false,
                        ..
                    })
                );
                if dotted {
                    // An IPv4 literal as old configs write it: src_ip==10.0.0.1
                    let (text, _, _) = self.word().ok_or(())?;
                    ExprKind::Str(text)
                } else {
                    self.bump();
                    match parse_int(&n) {
                        Some(v) => ExprKind::Int(v),
                        None => return self.error(&pos, format!("invalid number '{n}'")),
                    }
                }
            }
            Tok::Str(s) => {
                self.bump();
                ExprKind::Str(s)
            }
            Tok::Pv(text) if text.is_empty() => {
                self.bump();
                return Err(()); // malformed, already reported by the lexer
            }
            Tok::Pv(text) => {
                self.bump();
                match PvSpec::parse(&text) {
                    Ok(p) => ExprKind::Pv(p),
                    Err(e) => return self.error(&pos, e.to_string()),
                }
            }
            Tok::LParen => {
                self.bump();
                let e = self.expr()?;
                self.expect(&Tok::RParen, "to close '('")?;
                return Ok(e);
            }
            Tok::Ident(w) => {
                if self.peek_at(1).map(|t| &t.tok) == Some(&Tok::LParen) {
                    ExprKind::Call(self.call()?)
                } else {
                    self.bump();
                    match bool_word(&w) {
                        Some(v) => ExprKind::Int(v),
                        None => ExprKind::Ident(w),
                    }
                }
            }
            other => {
                return self.error(
                    &pos,
                    format!("expected an expression, found '{}'", other.text()),
                );
            }
        };
        Ok(Expr { pos, kind })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        let cases: &[(&str, Option<i64>)] = &[
            ("5060", Some(5060)),
            ("0", Some(0)),
            ("0660", Some(0o660)),
            ("0x1F", Some(31)),
            ("101b", Some(5)),
            ("08", None),
            ("12ab", None),
            ("99999999999999999999", None),
        ];
        for (s, want) in cases {
            assert_eq!(parse_int(s), *want, "{s}");
        }
    }

    #[test]
    fn socket_texts() {
        type Want = Result<(Option<&'static str>, &'static str, Option<u32>), &'static str>;
        let cases: &[(&str, Want)] = &[
            (
                "udp:127.0.0.1:5060",
                Ok((Some("udp"), "127.0.0.1", Some(5060))),
            ),
            ("TCP:host", Ok((Some("tcp"), "host", None))),
            ("1.2.3.4:5080", Ok((None, "1.2.3.4", Some(5080)))),
            ("udp:[::1]:5060", Ok((Some("udp"), "::1", Some(5060)))),
            ("[fe80::1]", Ok((None, "fe80::1", None))),
            ("2001:db8::1", Ok((None, "2001:db8::1", None))),
            ("udp:*:5060", Ok((Some("udp"), "*", Some(5060)))),
            ("udp::5060", Err("missing host in address 'udp::5060'")),
            ("host:x", Err("invalid port 'x' in address 'host:x'")),
            ("[::1", Err("missing ']' in address '[::1'")),
        ];
        for (s, want) in cases {
            let got = parse_sock_text(s);
            match want {
                Ok((p, h, port)) => {
                    assert_eq!(got, Ok((p.map(String::from), h.to_string(), *port)), "{s}")
                }
                Err(e) => assert_eq!(got.map_err(|x| x.to_string()), Err(e.to_string()), "{s}"),
            }
        }
    }
}
