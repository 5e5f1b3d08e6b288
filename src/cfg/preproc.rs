//! Kamailio's preprocessor over the token stream: `#!define`/`#!trydef`/
//! `#!redefine`/`#!undef` (whole-token substitution outside strings and
//! pseudo-variables, values re-lexed and expanded again), `#!ifdef`/`#!ifndef`/
//! `#!else`/`#!endif` (nested), `#!subst`/`#!substdef`/`#!substdefs` (regex
//! replacement inside later string literals), and `include_file`/`import_file`.
//! Produces one flat token list whose positions point into the original files.
//! File contents come through the caller's loader; nothing here touches disk.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use regex_lite::{Regex, RegexBuilder};

use super::lexer::{DefineKind, Directive, Lexer, SubstKind, Tok, Token};
use super::{Defines, Diagnostic, Loader, Pos};

/// Kamailio's MAX_INCLUDE_DEPTH.
const MAX_INCLUDE_DEPTH: usize = 10;
/// Bound on define-inside-define expansion, so `#!define A A` cannot loop.
const MAX_EXPANSION_DEPTH: usize = 16;

pub struct Output {
    pub tokens: Vec<Token>,
    /// End of the main file, for "unexpected end of file" messages.
    pub eof: Pos,
    pub diags: Vec<Diagnostic>,
    /// Not problems: what Kamailio says at debug level while reading
    /// (this runs before logging starts, so the caller logs them later).
    pub notes: Vec<Diagnostic>,
}

struct SubstRule {
    re: Regex,
    repl: String,
    global: bool,
}

struct CondFrame {
    pos: Pos,
    in_else: bool,
}

struct Pre<'l> {
    defines: HashMap<String, Option<String>>,
    substs: Vec<SubstRule>,
    loader: Loader<'l>,
    diags: Vec<Diagnostic>,
    notes: Vec<Diagnostic>,
    out: Vec<Token>,
}

pub fn run(name: &str, text: &str, defines: Defines<'_>, loader: Loader<'_>) -> Output {
    let mut pre = Pre {
        defines: defines.iter().cloned().collect(),
        substs: Vec::new(),
        loader,
        diags: Vec::new(),
        notes: Vec::new(),
        out: Vec::new(),
    };
    let file: Arc<str> = Arc::from(name);
    let eof = pre.file(file, Path::new(name), text, 0);
    Output {
        tokens: pre.out,
        eof,
        diags: pre.diags,
        notes: pre.notes,
    }
}

impl Pre<'_> {
    fn err(&mut self, pos: &Pos, msg: impl Into<String>) {
        self.diags.push(Diagnostic::at(pos, msg));
    }

    /// Processes one file; returns the position of its end.
    fn file(&mut self, name: Arc<str>, path: &Path, text: &str, depth: usize) -> Pos {
        let mut lx = Lexer::new(text, name);
        let mut conds: Vec<CondFrame> = Vec::new();
        let mut first = true;
        while let Some(mut t) = lx.next_token() {
            self.diags.append(&mut lx.diags);
            // A file's first token never continues the includer's last word.
            t.spaced |= std::mem::take(&mut first);
            match t.tok {
                Tok::Directive(d) => self.directive(d, t.pos, &mut lx, &mut conds),
                Tok::Ident(ref w) if w == "include_file" || w == "import_file" => {
                    let import = w == "import_file";
                    match lx.next_token() {
                        Some(Token {
                            tok: Tok::Str(s),
                            pos,
                            ..
                        }) => {
                            let s = self.apply_substs(s);
                            self.include(import, &pos, &s, path, depth);
                        }
                        other => {
                            let at = other.map(|o| o.pos).unwrap_or_else(|| lx.pos());
                            self.err(&at, format!("{w} must be followed by a quoted file name"));
                        }
                    }
                }
                Tok::Ident(ref w) if self.defines.contains_key(w) => {
                    let w = w.clone();
                    self.expand(&w, &t.pos, t.spaced, 0);
                }
                Tok::Str(s) => {
                    let s = self.apply_substs(s);
                    self.out.push(Token {
                        tok: Tok::Str(s),
                        ..t
                    });
                }
                _ => self.out.push(t),
            }
        }
        self.diags.append(&mut lx.diags);
        for f in conds {
            self.err(&f.pos, "#!ifdef without a matching #!endif");
        }
        lx.pos()
    }

    fn directive(
        &mut self,
        d: Directive,
        pos: Pos,
        lx: &mut Lexer<'_>,
        conds: &mut Vec<CondFrame>,
    ) {
        match d {
            Directive::Define { kind, name, value } => {
                let exists = self.defines.contains_key(&name);
                match (kind, exists) {
                    (DefineKind::Define, true) => self.err(
                        &pos,
                        format!("'{name}' is already defined (use #!redefine or #!trydef)"),
                    ),
                    (DefineKind::TryDef, true) => {}
                    _ => {
                        self.defines.insert(name, value);
                    }
                }
            }
            Directive::Undef(name) => {
                self.defines.remove(&name);
            }
            Directive::IfDef { negate, name } => {
                let active = self.defines.contains_key(&name) != negate;
                conds.push(CondFrame {
                    pos,
                    in_else: false,
                });
                if !active {
                    self.skip(lx, conds);
                }
            }
            Directive::Else => match conds.last_mut() {
                None => self.err(&pos, "#!else without #!ifdef or #!ifndef"),
                Some(f) if f.in_else => self.err(&pos, "a second #!else for the same #!ifdef"),
                Some(f) => {
                    // The branch that just ended was active, so the else part is not.
                    f.in_else = true;
                    self.skip(lx, conds);
                }
            },
            Directive::EndIf => {
                if conds.pop().is_none() {
                    self.err(&pos, "#!endif without #!ifdef or #!ifndef");
                }
            }
            Directive::Subst(kind) => {
                match lx.next_token() {
                    Some(Token {
                        tok: Tok::Str(s),
                        pos: spos,
                        ..
                    }) => self.subst(kind, &s, &spos),
                    other => {
                        let at = other.map(|o| o.pos).unwrap_or_else(|| lx.pos());
                        let word = match kind {
                            SubstKind::Subst => "subst",
                            SubstKind::SubstDef => "substdef",
                            SubstKind::SubstDefs => "substdefs",
                        };
                        self.err(
                        &at,
                        format!("#!{word} must be followed by a quoted \"/pattern/replacement/flags\""),
                    );
                    }
                }
            }
        }
    }

    /// Skips an inactive branch up to its `#!else` (which turns the frame
    /// active) or its `#!endif` (which closes it), over nested conditionals.
    fn skip(&mut self, lx: &mut Lexer<'_>, conds: &mut Vec<CondFrame>) {
        let mut nested = 0usize;
        while let Some(t) = lx.skip_inactive() {
            self.diags.append(&mut lx.diags);
            match t.tok {
                Tok::Directive(Directive::IfDef { .. }) => nested += 1,
                Tok::Directive(Directive::EndIf) if nested > 0 => nested -= 1,
                Tok::Directive(Directive::EndIf) => {
                    conds.pop();
                    return;
                }
                Tok::Directive(Directive::Else) if nested == 0 => {
                    if let Some(f) = conds.last_mut() {
                        if f.in_else {
                            self.err(&t.pos, "a second #!else for the same #!ifdef");
                            continue;
                        }
                        f.in_else = true;
                    }
                    return;
                }
                _ => {}
            }
        }
        self.diags.append(&mut lx.diags);
    }

    /// Expands a define in place; false when expansion had to stop.
    fn expand(&mut self, name: &str, at: &Pos, spaced: bool, depth: usize) -> bool {
        if depth >= MAX_EXPANSION_DEPTH {
            self.err(
                at,
                format!("define '{name}' expands into itself too deeply"),
            );
            return false;
        }
        let Some(Some(value)) = self.defines.get(name).cloned() else {
            return true; // a define without value expands to nothing, as in Kamailio
        };
        let mut lx = Lexer::at_fixed(&value, at.clone());
        let mut first = true;
        while let Some(mut t) = lx.next_token() {
            if first {
                t.spaced = spaced;
                first = false;
            }
            match t.tok {
                Tok::Ident(ref w) if self.defines.contains_key(w) => {
                    let w = w.clone();
                    if !self.expand(&w, at, t.spaced, depth + 1) {
                        return false;
                    }
                }
                Tok::Str(s) => {
                    let s = self.apply_substs(s);
                    self.out.push(Token {
                        tok: Tok::Str(s),
                        ..t
                    });
                }
                Tok::Directive(_) => self.err(
                    at,
                    format!("define '{name}' holds a preprocessor directive"),
                ),
                _ => self.out.push(t),
            }
        }
        self.diags.append(&mut lx.diags);
        true
    }

    fn subst(&mut self, kind: SubstKind, expr: &str, pos: &Pos) {
        let Some((pattern, repl, flags)) = split_subst(expr) else {
            self.err(
                pos,
                format!("malformed substitution {expr:?}: expected /pattern/replacement/flags"),
            );
            return;
        };
        if kind != SubstKind::Subst {
            let is_id = pattern
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && pattern
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !is_id {
                self.err(
                    pos,
                    format!("#!substdef needs a define name as pattern, not '{pattern}'"),
                );
                return;
            }
            if self.defines.contains_key(&pattern) {
                self.err(pos, format!("'{pattern}' is already defined"));
                return;
            }
            let value = if kind == SubstKind::SubstDefs {
                format!("\"{}\"", repl.replace('\\', "\\\\").replace('"', "\\\""))
            } else {
                repl.clone()
            };
            self.defines.insert(pattern.clone(), Some(value));
        }
        match RegexBuilder::new(&pattern)
            .case_insensitive(flags.contains('i'))
            .build()
        {
            Ok(re) => self.substs.push(SubstRule {
                re,
                repl: convert_backrefs(&repl),
                global: flags.contains('g'),
            }),
            Err(e) => self.err(pos, format!("invalid regular expression '{pattern}': {e}")),
        }
    }

    fn apply_substs(&self, mut s: String) -> String {
        for r in &self.substs {
            s = if r.global {
                r.re.replace_all(&s, r.repl.as_str()).into_owned()
            } else {
                r.re.replace(&s, r.repl.as_str()).into_owned()
            };
        }
        s
    }

    fn include(&mut self, import: bool, pos: &Pos, name: &str, from: &Path, depth: usize) {
        if depth + 1 > MAX_INCLUDE_DEPTH {
            self.err(
                pos,
                format!("too many nested includes (at most {MAX_INCLUDE_DEPTH}) at \"{name}\""),
            );
            return;
        }
        let p = Path::new(name);
        let mut candidates: Vec<PathBuf> = Vec::new();
        if p.is_relative() {
            if let Some(dir) = from.parent().filter(|d| !d.as_os_str().is_empty()) {
                candidates.push(dir.join(p));
            }
        }
        candidates.push(p.to_path_buf());
        let mut last_err = None;
        for c in candidates {
            match (self.loader)(&c) {
                Ok(text) => {
                    let file: Arc<str> = Arc::from(c.display().to_string().as_str());
                    self.file(file, &c, &text, depth + 1);
                    return;
                }
                Err(e) => last_err = Some(e),
            }
        }
        if import {
            let note = format!("import_file \"{name}\" skipped: not found");
            self.notes.push(Diagnostic::at(pos, note));
        } else {
            let why = last_err.map(|e| e.to_string()).unwrap_or_default();
            self.err(pos, format!("cannot open included file \"{name}\": {why}"));
        }
    }
}

/// `/pattern/replacement/flags` with any delimiter (its first character);
/// a delimiter escaped with `\` stays in the text.
fn split_subst(expr: &str) -> Option<(String, String, String)> {
    let mut chars = expr.chars();
    let delim = chars.next()?;
    let mut parts = vec![String::new()];
    let mut escaped = false;
    for c in chars {
        if escaped {
            if c != delim {
                parts.last_mut()?.push('\\');
            }
            parts.last_mut()?.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == delim {
            parts.push(String::new());
        } else {
            parts.last_mut()?.push(c);
        }
    }
    if parts.len() != 3 || parts[0].is_empty() {
        return None;
    }
    let flags = parts.pop()?;
    let repl = parts.pop()?;
    let pat = parts.pop()?;
    if !flags.chars().all(|c| c == 'g' || c == 'i') {
        return None;
    }
    Some((pat, repl, flags))
}

/// Kamailio writes back-references as `\1`; regex-lite wants `${1}`, and a
/// literal `$` must be doubled.
fn convert_backrefs(repl: &str) -> String {
    let mut out = String::new();
    let mut chars = repl.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.peek() {
                Some(d) if d.is_ascii_digit() => {
                    out.push_str(&format!("${{{d}}}"));
                    chars.next();
                }
                Some(&n) => {
                    out.push(n);
                    chars.next();
                }
                None => out.push('\\'),
            },
            '$' => out.push_str("$$"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subst_expressions() {
        type Want = Option<(&'static str, &'static str, &'static str)>;
        let cases: &[(&str, Want)] = &[
            ("/a/b/", Some(("a", "b", ""))),
            ("!x!y!gi", Some(("x", "y", "gi"))),
            ("/a\\/b/c/", Some(("a/b", "c", ""))),
            ("/a/b", None),
            ("//b/", None),
            ("/a/b/z", None),
        ];
        for (e, want) in cases {
            let got = split_subst(e);
            let want = want.map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()));
            assert_eq!(got, want, "{e}");
        }
        assert_eq!(convert_backrefs("x\\1$y"), "x${1}$$y");
    }
}
