//! Turns the text of one file (or of one define's value) into tokens with
//! their original positions. Comments (`#`, `//`, nested `/* */`) and shebang
//! lines (`#!KAMAILIO`…) vanish here; preprocessor directives (`#!define`,
//! `!!ifdef`…) come out as [`Tok::Directive`] for `preproc`, which also drives
//! the skipping of inactive `#!ifdef` branches through [`Lexer::skip_inactive`].
//! Knows nothing of defines, includes or grammar.

use std::sync::Arc;

use super::ast::scan_pv;
use super::{Diagnostic, Pos};

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Ident(String),
    /// A run of `[A-Za-z0-9_]` starting with a digit, as written (`5060`,
    /// `0660`, `0x1f`, `2001`, `12ab`); the parser turns it into a number where
    /// one is expected, and keeps the text for addresses.
    Num(String),
    /// String literal with escapes resolved; adjacent `"…" "…"` already joined.
    Str(String),
    /// Pseudo-variable text after `$`: `rm`, `var(x)`, `(avp(x)[0])`. Empty
    /// for a malformed one already reported, so the parser stays quiet.
    Pv(String),
    LParen,
    RParen,
    LBrace,
    RBrace,
    LBracket,
    RBracket,
    Comma,
    Semi,
    Colon,
    Dot,
    Assign,
    ColonAssign,
    Eq,
    Ne,
    Match,
    NotMatch,
    Lt,
    Gt,
    Le,
    Ge,
    And,
    Or,
    Not,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Amp,
    Pipe,
    Directive(Directive),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Directive {
    Define {
        kind: DefineKind,
        name: String,
        value: Option<String>,
    },
    Undef(String),
    IfDef {
        negate: bool,
        name: String,
    },
    Else,
    EndIf,
    /// Followed by a string token holding `/pattern/replacement/flags`.
    Subst(SubstKind),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefineKind {
    Define,
    TryDef,
    ReDef,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubstKind {
    Subst,
    SubstDef,
    SubstDefs,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub tok: Tok,
    pub pos: Pos,
    /// Whitespace or a comment came right before: addresses like
    /// `udp:1.2.3.4:5060` are runs of tokens with `spaced == false`.
    pub spaced: bool,
}

impl Tok {
    /// The token as it would be written; for messages and address text.
    pub fn text(&self) -> String {
        let s = match self {
            Tok::Ident(s) | Tok::Num(s) => return s.clone(),
            Tok::Str(s) => return format!("{s:?}"),
            Tok::Pv(s) => return format!("${s}"),
            Tok::Directive(_) => "#!directive",
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::LBrace => "{",
            Tok::RBrace => "}",
            Tok::LBracket => "[",
            Tok::RBracket => "]",
            Tok::Comma => ",",
            Tok::Semi => ";",
            Tok::Colon => ":",
            Tok::Dot => ".",
            Tok::Assign => "=",
            Tok::ColonAssign => ":=",
            Tok::Eq => "==",
            Tok::Ne => "!=",
            Tok::Match => "=~",
            Tok::NotMatch => "!~",
            Tok::Lt => "<",
            Tok::Gt => ">",
            Tok::Le => "<=",
            Tok::Ge => ">=",
            Tok::And => "&&",
            Tok::Or => "||",
            Tok::Not => "!",
            Tok::Plus => "+",
            Tok::Minus => "-",
            Tok::Star => "*",
            Tok::Slash => "/",
            Tok::Percent => "%",
            Tok::Amp => "&",
            Tok::Pipe => "|",
        };
        s.to_string()
    }
}

pub struct Lexer<'a> {
    src: &'a [u8],
    i: usize,
    line: u32,
    col: u32,
    file: Arc<str>,
    /// Tokens of a define's value all report the place the define was used.
    fixed: Option<Pos>,
    pub diags: Vec<Diagnostic>,
}

const SHEBANGS: &[&str] = &["KAMAILIO", "OPENSER", "SER", "MAXCOMPAT", "ALL"];

impl<'a> Lexer<'a> {
    pub fn new(src: &'a str, file: Arc<str>) -> Lexer<'a> {
        Lexer {
            src: src.as_bytes(),
            i: 0,
            line: 1,
            col: 1,
            file,
            fixed: None,
            diags: Vec::new(),
        }
    }

    /// A lexer for a define's value: every token is placed at `at`.
    pub(crate) fn at_fixed(src: &'a str, at: Pos) -> Lexer<'a> {
        let mut l = Lexer::new(src, at.file.clone());
        l.fixed = Some(at);
        l
    }

    pub fn pos(&self) -> Pos {
        match &self.fixed {
            Some(p) => p.clone(),
            None => Pos::new(&self.file, self.line, self.col),
        }
    }

    fn peek(&self, k: usize) -> u8 {
        self.src.get(self.i + k).copied().unwrap_or(0)
    }

    fn at_end(&self) -> bool {
        self.i >= self.src.len()
    }

    fn bump(&mut self) {
        if let Some(&c) = self.src.get(self.i) {
            self.i += 1;
            if c == b'\n' {
                self.line += 1;
                self.col = 1;
            } else if c & 0xC0 != 0x80 {
                // Count characters, not UTF-8 continuation bytes.
                self.col += 1;
            }
        }
    }

    fn bump_n(&mut self, n: usize) {
        for _ in 0..n {
            self.bump();
        }
    }

    fn err(&mut self, pos: Pos, msg: impl Into<String>) {
        self.diags.push(Diagnostic::at(&pos, msg));
    }

    fn skip_line(&mut self) {
        while !self.at_end() && self.peek(0) != b'\n' {
            self.bump();
        }
    }

    fn word_at(&self, k: usize) -> &'a str {
        let start = self.i + k;
        let mut end = start;
        while end < self.src.len()
            && (self.src[end].is_ascii_alphanumeric() || self.src[end] == b'_')
        {
            end += 1;
        }
        std::str::from_utf8(&self.src[start.min(end)..end]).unwrap_or("")
    }

    /// Skips whitespace and comments; returns whether anything was skipped.
    fn skip_trivia(&mut self) -> bool {
        let start = self.i;
        loop {
            match self.peek(0) {
                b' ' | b'\t' | b'\r' | b'\n' | 0x08 | 0x0c if !self.at_end() => self.bump(),
                // An escaped newline outside strings is eaten (as Kamailio does).
                b'\\' if self.peek(1) == b'\n' => self.bump_n(2),
                b'\\' if self.peek(1) == b'\r' && self.peek(2) == b'\n' => self.bump_n(3),
                b'#' if self.peek(1) != b'!' => self.skip_line(),
                b'#' => {
                    // `#!` that is no directive is a comment (shebangs included).
                    let w = self.word_at(2);
                    if directive_word(w) {
                        break;
                    }
                    self.skip_line();
                }
                b'/' if self.peek(1) == b'/' => self.skip_line(),
                b'/' if self.peek(1) == b'*' => self.block_comment(),
                _ => break,
            }
        }
        self.i != start
    }

    fn block_comment(&mut self) {
        let pos = self.pos();
        let mut depth = 0usize;
        while !self.at_end() {
            if self.peek(0) == b'/' && self.peek(1) == b'*' {
                depth += 1;
                self.bump_n(2);
            } else if self.peek(0) == b'*' && self.peek(1) == b'/' {
                depth -= 1;
                self.bump_n(2);
                if depth == 0 {
                    return;
                }
            } else {
                self.bump();
            }
        }
        self.err(pos, "unterminated comment");
    }

    pub(crate) fn next_token(&mut self) -> Option<Token> {
        loop {
            let spaced = self.skip_trivia();
            if self.at_end() {
                return None;
            }
            let pos = self.pos();
            if let Some(tok) = self.lex_one(&pos) {
                return Some(Token { tok, pos, spaced });
            }
        }
    }

    /// Lexes one token at the current place; None when something was consumed
    /// without producing a token (an error, a shebang line).
    fn lex_one(&mut self, pos: &Pos) -> Option<Tok> {
        let c = self.peek(0);
        let c1 = self.peek(1);
        if (c == b'#' || (c == b'!' && c1 == b'!')) && directive_word(self.word_at(2)) {
            return self.directive(pos);
        }
        let two = |t: Tok, me: &mut Self| {
            me.bump_n(2);
            Some(t)
        };
        let one = |t: Tok, me: &mut Self| {
            me.bump();
            Some(t)
        };
        match c {
            b'"' => self.dq_string(pos).map(Tok::Str),
            b'\'' => self.sq_string(pos).map(Tok::Str),
            b'$' => self.pv(pos),
            b'0'..=b'9' => Some(Tok::Num(self.take_word())),
            c if c.is_ascii_alphabetic() || c == b'_' => Some(Tok::Ident(self.take_word())),
            b'(' => one(Tok::LParen, self),
            b')' => one(Tok::RParen, self),
            b'{' => one(Tok::LBrace, self),
            b'}' => one(Tok::RBrace, self),
            b'[' => one(Tok::LBracket, self),
            b']' => one(Tok::RBracket, self),
            b',' => one(Tok::Comma, self),
            b';' => one(Tok::Semi, self),
            b'.' => one(Tok::Dot, self),
            b':' if c1 == b'=' => two(Tok::ColonAssign, self),
            b':' => one(Tok::Colon, self),
            b'=' if c1 == b'=' => two(Tok::Eq, self),
            b'=' if c1 == b'~' => two(Tok::Match, self),
            b'=' => one(Tok::Assign, self),
            b'!' if c1 == b'=' => two(Tok::Ne, self),
            b'!' if c1 == b'~' => two(Tok::NotMatch, self),
            b'!' => one(Tok::Not, self),
            b'<' if c1 == b'=' => two(Tok::Le, self),
            b'<' => one(Tok::Lt, self),
            b'>' if c1 == b'=' => two(Tok::Ge, self),
            b'>' => one(Tok::Gt, self),
            b'&' if c1 == b'&' => two(Tok::And, self),
            b'&' => one(Tok::Amp, self),
            b'|' if c1 == b'|' => two(Tok::Or, self),
            b'|' => one(Tok::Pipe, self),
            b'+' => one(Tok::Plus, self),
            b'-' => one(Tok::Minus, self),
            b'*' => one(Tok::Star, self),
            b'/' => one(Tok::Slash, self),
            b'%' => one(Tok::Percent, self),
            _ => {
                let start = self.i;
                self.bump();
                while !self.at_end() && self.src[self.i] & 0xC0 == 0x80 {
                    self.bump();
                }
                let ch = String::from_utf8_lossy(&self.src[start..self.i]).into_owned();
                self.err(
                    pos.clone(),
                    format!("unexpected character '{}'", ch.escape_debug()),
                );
                None
            }
        }
    }

    fn take_word(&mut self) -> String {
        let w = self.word_at(0).to_string();
        self.bump_n(w.len());
        w
    }

    fn pv(&mut self, pos: &Pos) -> Option<Tok> {
        match scan_pv(self.src, self.i + 1) {
            Ok(end) => {
                let text = String::from_utf8_lossy(&self.src[self.i + 1..end]).into_owned();
                self.bump_n(end - self.i);
                Some(Tok::Pv(text))
            }
            Err(msg) => {
                self.err(pos.clone(), msg);
                self.bump();
                // Skip the rest of a broken `$name(…` so one mistake gives one error.
                while !self.at_end() && !matches!(self.peek(0), b';' | b'}' | b'\n' | b' ' | b'=') {
                    self.bump();
                }
                Some(Tok::Pv(String::new()))
            }
        }
    }

    fn dq_string(&mut self, pos: &Pos) -> Option<String> {
        let mut buf: Vec<u8> = Vec::new();
        loop {
            // Here self.peek(0) == b'"' opens a (continued) string.
            self.bump();
            loop {
                if self.at_end() {
                    self.err(pos.clone(), "unterminated string");
                    return Some(String::from_utf8_lossy(&buf).into_owned());
                }
                let c = self.peek(0);
                match c {
                    b'"' => {
                        self.bump();
                        break;
                    }
                    b'\\' => {
                        let e = self.peek(1);
                        let simple = match e {
                            b'n' => Some(b'\n'),
                            b'r' => Some(b'\r'),
                            b'a' => Some(0x07),
                            b't' => Some(b'\t'),
                            b'"' => Some(b'"'),
                            b'\\' => Some(b'\\'),
                            _ => None,
                        };
                        if let Some(b) = simple {
                            buf.push(b);
                            self.bump_n(2);
                        } else if e == b'\n' {
                            self.bump_n(2);
                        } else if e == b'x' && self.peek(2).is_ascii_hexdigit() {
                            let mut n = 0u32;
                            let mut len = 0;
                            while len < 2 && self.peek(2 + len).is_ascii_hexdigit() {
                                n = n * 16 + (self.peek(2 + len) as char).to_digit(16).unwrap_or(0);
                                len += 1;
                            }
                            buf.push(n as u8);
                            self.bump_n(2 + len);
                        } else if (b'0'..=b'7').contains(&e)
                            && (b'0'..=b'7').contains(&self.peek(2))
                        {
                            // \ooo with 2 or 3 octal digits; a single digit stays
                            // literal so regex back-references (\1) survive.
                            let mut n = 0u32;
                            let mut len = 0;
                            while len < 3 && (b'0'..=b'7').contains(&self.peek(1 + len)) {
                                n = n * 8 + (self.peek(1 + len) - b'0') as u32;
                                len += 1;
                            }
                            buf.push(n as u8);
                            self.bump_n(1 + len);
                        } else {
                            // Unknown escapes are kept as written (regexes need `\.`).
                            buf.push(b'\\');
                            self.bump();
                        }
                    }
                    _ => {
                        buf.push(c);
                        self.bump();
                    }
                }
            }
            // Adjacent double-quoted strings, separated only by whitespace, join.
            let save = (self.i, self.line, self.col);
            while matches!(self.peek(0), b' ' | b'\t' | b'\r' | b'\n') && !self.at_end() {
                self.bump();
            }
            if self.peek(0) != b'"' || self.at_end() {
                (self.i, self.line, self.col) = save;
                return Some(String::from_utf8_lossy(&buf).into_owned());
            }
        }
    }

    fn sq_string(&mut self, pos: &Pos) -> Option<String> {
        self.bump();
        let start = self.i;
        while !self.at_end() && self.peek(0) != b'\'' {
            self.bump();
        }
        if self.at_end() {
            self.err(pos.clone(), "unterminated string");
        }
        let s = String::from_utf8_lossy(&self.src[start..self.i]).into_owned();
        self.bump();
        Some(s)
    }

    fn skip_blanks(&mut self) {
        while matches!(self.peek(0), b' ' | b'\t' | b'\r') && !self.at_end() {
            self.bump();
        }
    }

    /// At the end of a directive line: only blanks or a comment may follow.
    fn end_of_directive(&mut self, pos: &Pos, what: &str) {
        self.skip_blanks();
        let c = self.peek(0);
        let comment = c == b'#' || (c == b'/' && self.peek(1) == b'/');
        if !self.at_end() && c != b'\n' && !comment {
            self.err(pos.clone(), format!("unexpected text after {what}"));
        }
        self.skip_line();
    }

    /// Reads `NAME` after a directive keyword; None (and an error) if missing.
    fn directive_name(&mut self, pos: &Pos, directive: &str) -> Option<String> {
        self.skip_blanks();
        let c = self.peek(0);
        if !(c.is_ascii_alphabetic() || c == b'_') {
            self.err(pos.clone(), format!("{directive} needs a name"));
            self.skip_line();
            return None;
        }
        let name = self.take_word();
        if self.peek(0) == b'-' {
            self.err(pos.clone(), "'-' is not allowed in a define name");
            self.skip_line();
            return None;
        }
        Some(name)
    }

    /// At `#!` or `!!` followed by a directive word.
    fn directive(&mut self, pos: &Pos) -> Option<Tok> {
        let word = self.word_at(2).to_string();
        self.bump_n(2 + word.len());
        let kind = match word.as_str() {
            "define" | "def" => Some(DefineKind::Define),
            "trydefine" | "trydef" => Some(DefineKind::TryDef),
            "redefine" | "redef" => Some(DefineKind::ReDef),
            _ => None,
        };
        if let Some(kind) = kind {
            let name = self.directive_name(pos, &format!("#!{word}"))?;
            self.skip_blanks();
            let mut value = Vec::new();
            while !self.at_end() && self.peek(0) != b'\n' {
                if self.peek(0) == b'\\' && self.peek(1) == b'\n' {
                    self.bump_n(2);
                } else if self.peek(0) == b'\\' && self.peek(1) == b'\r' && self.peek(2) == b'\n' {
                    self.bump_n(3);
                } else {
                    value.push(self.peek(0));
                    self.bump();
                }
            }
            let value = String::from_utf8_lossy(&value).trim_end().to_string();
            let value = if value.is_empty() { None } else { Some(value) };
            return Some(Tok::Directive(Directive::Define { kind, name, value }));
        }
        match word.as_str() {
            "undef" => {
                let name = self.directive_name(pos, "#!undef")?;
                self.end_of_directive(pos, &format!("#!undef {name}"));
                Some(Tok::Directive(Directive::Undef(name)))
            }
            "ifdef" | "ifndef" => {
                let name = self.directive_name(pos, &format!("#!{word}"))?;
                self.end_of_directive(pos, &format!("#!{word} {name}"));
                Some(Tok::Directive(Directive::IfDef {
                    negate: word == "ifndef",
                    name,
                }))
            }
            "else" => {
                self.end_of_directive(pos, "#!else");
                Some(Tok::Directive(Directive::Else))
            }
            "endif" => {
                self.end_of_directive(pos, "#!endif");
                Some(Tok::Directive(Directive::EndIf))
            }
            "subst" => Some(Tok::Directive(Directive::Subst(SubstKind::Subst))),
            "substdef" => Some(Tok::Directive(Directive::Subst(SubstKind::SubstDef))),
            "substdefs" => Some(Tok::Directive(Directive::Subst(SubstKind::SubstDefs))),
            "include_file" | "import_file" => Some(Tok::Ident(word)),
            "defenv" | "defenvs" | "trydefenv" | "trydefenvs" => {
                self.err(pos.clone(), format!("#!{word} is not supported"));
                self.skip_line();
                None
            }
            _ => {
                // Not reached (callers check directive_word); a comment, as in Kamailio.
                self.skip_line();
                None
            }
        }
    }

    /// In an inactive `#!ifdef` branch: skips raw text (strings and comments
    /// are not recognised, as in Kamailio) up to the next `#!ifdef`,
    /// `#!ifndef`, `#!else` or `#!endif`, which it returns. None at the end.
    pub(crate) fn skip_inactive(&mut self) -> Option<Token> {
        while !self.at_end() {
            let c = self.peek(0);
            if (c == b'#' && self.peek(1) == b'!') || (c == b'!' && self.peek(1) == b'!') {
                let w = self.word_at(2);
                if matches!(w, "ifdef" | "ifndef" | "else" | "endif") {
                    let pos = self.pos();
                    if let Some(tok) = self.directive(&pos) {
                        return Some(Token {
                            tok,
                            pos,
                            spaced: true,
                        });
                    }
                    continue;
                }
            }
            self.bump();
        }
        None
    }
}

/// Words that make `#!word` / `!!word` a directive rather than a comment.
fn directive_word(w: &str) -> bool {
    matches!(
        w,
        "define"
            | "def"
            | "trydefine"
            | "trydef"
            | "redefine"
            | "redef"
            | "undef"
            | "ifdef"
            | "ifndef"
            | "else"
            | "endif"
            | "subst"
            | "substdef"
            | "substdefs"
            | "include_file"
            | "import_file"
            | "defenv"
            | "defenvs"
            | "trydefenv"
            | "trydefenvs"
    ) && !SHEBANGS.contains(&w)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lex(src: &str) -> String {
        let mut l = Lexer::new(src, Arc::from("x"));
        let mut out = Vec::new();
        while let Some(t) = l.next_token() {
            let sp = if t.spaced { " " } else { "" };
            let s = match &t.tok {
                Tok::Directive(d) => format!("{d:?}"),
                other => other.text(),
            };
            out.push(format!("{sp}{s}@{}:{}", t.pos.line, t.pos.col));
        }
        for d in l.diags {
            out.push(format!("ERR {d}"));
        }
        out.concat()
    }

    #[test]
    fn tokens() {
        let cases: &[(&str, &str)] = &[
            ("a=1", "a@1:1=@1:21@1:3"),
            (
                "udp:[::1]:5060",
                "udp@1:1:@1:4[@1:5:@1:6:@1:71@1:8]@1:9:@1:105060@1:11",
            ),
            ("x\t# c\n y", "x@1:1 y@2:2"),
            ("é x", " x@1:3ERR x:1:1: unexpected character 'é'"),
            ("é=1", "=@1:21@1:3ERR x:1:1: unexpected character 'é'"),
            ("\"é\" x", "\"é\"@1:1 x@1:5"),
            ("$var(x)==$null", "$var(x)@1:1==@1:8$null@1:10"),
            ("a:=b", "a@1:1:=@1:2b@1:4"),
            (
                "#!define X 1 2\nX",
                "Define { kind: Define, name: \"X\", value: Some(\"1 2\") }@1:1 X@2:1",
            ),
            (
                "!!ifdef A\n!x",
                "IfDef { negate: false, name: \"A\" }@1:1 !@2:1x@2:2",
            ),
            ("#!KAMAILIO\n#!SER x\nx", " x@3:1"),
            ("a /* b \n */ c", "a@1:1 c@2:5"),
            ("a\\\nb", "a@1:1 b@2:1"),
        ];
        for (src, want) in cases {
            assert_eq!(lex(src), *want, "{src:?}");
        }
    }
}
