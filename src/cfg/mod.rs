//! kamailio.cfg SYNTAX: lexer, preprocessor (`#!define`, `#!ifdef`, includes…),
//! parser and AST. It knows nothing of what a parameter, module or function
//! means (that is `config` and `script`), never panics on any input, and reports
//! every diagnostic it finds, each with the file, line and column of the
//! original text (also inside included files and define expansions).
//!
//! The only I/O in this crate is [`read_source`]: reading the main file and the
//! files it includes. Everything else works on strings, and the include loader
//! is a parameter so tests can feed files from memory.

pub mod ast;
pub mod lexer;
pub mod parser;
pub mod preproc;

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

pub use ast::Cfg;

/// A place in a configuration file. `file` is the name as it was opened
/// (main file as given on the command line, includes as resolved).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pos {
    pub file: Arc<str>,
    /// 1-based.
    pub line: u32,
    /// 1-based, in characters; a tab counts as one column (as Kamailio counts).
    pub col: u32,
}

impl Pos {
    pub fn new(file: &Arc<str>, line: u32, col: u32) -> Pos {
        Pos {
            file: file.clone(),
            line,
            col,
        }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

/// One problem found in the configuration; displays as `file:line:col: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    pub line: u32,
    pub col: u32,
    pub message: String,
}

impl Diagnostic {
    pub fn at(pos: &Pos, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            file: pos.file.to_string(),
            line: pos.line,
            col: pos.col,
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.col, self.message
        )
    }
}

/// Command-line defines (kamailio's `-A NAME[=value]`), applied before the file.
pub type Defines<'a> = &'a [(String, Option<String>)];

/// Loads an included file; given the resolved path, returns its text.
pub type Loader<'a> = &'a mut dyn FnMut(&Path) -> io::Result<String>;

/// Reads a configuration file from disk. The one I/O function of the language
/// half. Invalid UTF-8 is replaced (configs are ASCII in practice; SIP bytes
/// never come from here).
pub(crate) fn read_source(path: &Path) -> io::Result<String> {
    let bytes = std::fs::read(path)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Reads, preprocesses and parses the configuration file at `path`, following
/// its includes on disk.
pub fn load_file(path: &Path, defines: Defines<'_>) -> Result<Cfg, Vec<Diagnostic>> {
    let name = path.display().to_string();
    match read_source(path) {
        Ok(text) => parse_with(&name, &text, defines, &mut |p: &Path| read_source(p)),
        Err(e) => Err(vec![Diagnostic {
            file: name,
            line: 0,
            col: 0,
            message: format!("cannot read the configuration file: {e}"),
        }]),
    }
}

/// Preprocesses and parses `text` (named `name` in diagnostics; includes are
/// resolved relative to the directory of `name`), loading includes through
/// `loader` ([`read_source`] reads one from disk).
pub(crate) fn parse_with(
    name: &str,
    text: &str,
    defines: Defines<'_>,
    loader: Loader<'_>,
) -> Result<Cfg, Vec<Diagnostic>> {
    let pre = preproc::run(name, text, defines, loader);
    let (mut cfg, parse_diags) = parser::parse(pre.tokens, pre.eof);
    let mut diags = pre.diags;
    diags.extend(parse_diags);
    if diags.is_empty() {
        cfg.notes = pre.notes;
        Ok(cfg)
    } else {
        Err(diags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `src` (file name "t.cfg", no includes) and renders the result:
    /// the items' display, or the diagnostics one per line.
    pub(crate) fn render(src: &str, defines: Defines<'_>) -> String {
        let mut no_files = |p: &Path| -> io::Result<String> {
            Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no file {}", p.display()),
            ))
        };
        match parse_with("t.cfg", src, defines, &mut no_files) {
            Ok(cfg) => cfg.to_string(),
            Err(d) => d
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    /// Runs every case and reports all mismatches at once.
    #[track_caller]
    fn check_all(cases: &[(&str, &str)]) {
        let bad: Vec<String> = cases
            .iter()
            .filter_map(|(src, expect)| {
                let got = render(src, &[]);
                (got != *expect)
                    .then(|| format!("input: {src:?}\n  got: {got:?}\n want: {expect:?}"))
            })
            .collect();
        assert!(bad.is_empty(), "{}", bad.join("\n"));
    }

    #[test]
    fn syntax_cases() {
        let cases: &[(&str, &str)] = &[
            // globals
            ("debug=3", "debug=3"),
            ("debug = -1", "debug=-1"),
            ("fork=yes\nlog_stderror=no", "fork=1\nlog_stderror=0"),
            ("fifo_mode=0660", "fifo_mode=432"),
            ("user=\"kamailio\"", "user=\"kamailio\""),
            ("log_facility=LOG_LOCAL0", "log_facility=LOG_LOCAL0"),
            ("tcp_source_ipv4=10.0.0.1", "tcp_source_ipv4=10.0.0.1"),
            ("listen=udp:127.0.0.1:5060", "listen=udp:127.0.0.1:5060"),
            ("listen=udp:[::1]:5060", "listen=udp:[::1]:5060"),
            ("listen=[2001:db8::1]", "listen=[2001:db8::1]"),
            ("listen=udp:*:5060", "listen=udp:*:5060"),
            ("listen=0.0.0.0", "listen=0.0.0.0"),
            (
                "listen=udp:127.0.0.1:5060 advertise 1.2.3.4:5080",
                "listen=udp:127.0.0.1:5060 advertise 1.2.3.4:5080",
            ),
            (
                "listen=tcp:my-host.example.com:5061",
                "listen=tcp:my-host.example.com:5061",
            ),
            (
                "listen=udp:1.2.3.4:5060 tcp:1.2.3.4:5060\nport=5070",
                "listen=udp:1.2.3.4:5060 tcp:1.2.3.4:5060\nport=5070",
            ),
            ("listen=\"udp:127.0.0.1:5060\"", "listen=udp:127.0.0.1:5060"),
            ("alias=example.com", "alias=example.com"),
            ("alias=example.com:5060;", "alias=example.com:5060"),
            // modules
            ("loadmodule \"tm.so\"", "loadmodule \"tm.so\""),
            (
                "mpath=\"/usr/lib/kamailio/modules/\"",
                "mpath=\"/usr/lib/kamailio/modules/\"",
            ),
            (
                "modparam(\"siptrace\", \"trace_flag\", 22)",
                "modparam(\"siptrace\", \"trace_flag\", 22)",
            ),
            (
                "modparam(\"tm\",\"x\",-5) modparam(\"a\",\"b\",yes)",
                "modparam(\"tm\", \"x\", -5)\nmodparam(\"a\", \"b\", 1)",
            ),
            // comments and shebangs
            (
                "#!KAMAILIO\n# c\n// c\n/* a /* nested */ b */ port=1",
                "port=1",
            ),
            ("#!/usr/sbin/kamailio\nport=1", "port=1"),
            // strings
            (
                r#"server_header="a\tb\"c\\d\x41\101""#,
                r#"server_header="a\tb\"c\\dAA""#,
            ),
            ("user='raw\\n'", r#"user="raw\\n""#),
            ("user=\"a\" \n \"b\"", "user=\"ab\""),
            (r#"user="a\d""#, r#"user="a\\d""#),
            // routes and statements
            ("route{exit;}", "request_route { exit; }"),
            ("request_route { drop(); }", "request_route { drop; }"),
            ("route[RELAY]{return;}", "route[RELAY] { return; }"),
            ("route[2]{return(-1);}", "route[2] { return -1; }"),
            ("route[\"x y\"]{return 2;}", "route[x y] { return 2; }"),
            (
                "onreply_route{} reply_route{}",
                "onreply_route { }\nonreply_route { }",
            ),
            ("onreply_route[R]{}", "onreply_route[R] { }"),
            (
                "failure_route[F]{}; branch_route[B]{}",
                "failure_route[F] { }\nbranch_route[B] { }",
            ),
            ("onsend_route{}", "onsend_route { }"),
            (
                "event_route[tm:local-request]{}",
                "event_route[tm:local-request] { }",
            ),
            (
                "route{ if (is_method(\"INVITE\")) t_relay(); else { sl_send_reply(\"404\",\"x\"); } }",
                "request_route { if (is_method(\"INVITE\")) { t_relay(); } else { sl_send_reply(\"404\", \"x\"); } }",
            ),
            (
                "route{ if(a()) b(); else if (c()) d(); }",
                "request_route { if (a()) { b(); } else { if (c()) { d(); } } }",
            ),
            (
                "route{ while($var(i) < 3) { $var(i) = $var(i) + 1; } }",
                "request_route { while (($var(i) < 3)) { $var(i) = ($var(i) + 1); } }",
            ),
            (
                "route{ $avp(s:x) := \"v\"; };",
                "request_route { $avp(s:x) := \"v\"; }",
            ),
            (
                "route{ $(avp(x)[1]) = $null; }",
                "request_route { $(avp(x)[1]) = $null; }",
            ),
            ("route{ {a(); b();} };", "request_route { a(); b(); }"),
            ("route{ t_relay; }", "request_route { t_relay(); }"),
            // expressions and precedence
            (
                "route{ if (a() || b() && !c()) x(); }",
                "request_route { if ((a() || (b() && !c()))) { x(); } }",
            ),
            (
                "route{ if (!$var(x) == 1) x(); }",
                "request_route { if ((!$var(x) == 1)) { x(); } }",
            ),
            (
                "route{ if ($rm == \"INVITE\" and $ru =~ \"^sip:1\" or not $du != $null) x(); }",
                "request_route { if (((($rm == \"INVITE\") && ($ru =~ \"^sip:1\")) || (!$du != $null))) { x(); } }",
            ),
            (
                "route{ if (1 + 2 * 3 - 4 / 2 > 0 && $x !~ \"a\") x(); }",
                "request_route { if (((((1 + (2 * 3)) - (4 / 2)) > 0) && ($x !~ \"a\"))) { x(); } }",
            ),
            (
                "route{ if (method==\"INVITE\" && uri==myself) x(); }",
                "request_route { if (((method == \"INVITE\") && (uri == myself))) { x(); } }",
            ),
            (
                "route{ if (src_ip==127.0.0.1) x(); }",
                "request_route { if ((src_ip == \"127.0.0.1\")) { x(); } }",
            ),
            (
                "route{ $var(x) = -5; $var(y) = -$var(x); }",
                "request_route { $var(x) = -5; $var(y) = -$var(x); }",
            ),
            (
                "route{ xlog(\"L_INFO\", \"$rm from $si\\n\"); }",
                "request_route { xlog(\"L_INFO\", \"$rm from $si\\n\"); }",
            ),
            ("route{ route(RELAY); }", "request_route { route(RELAY); }"),
            (
                "route{ $var(x) = $hdr(Max-Forwards); }",
                "request_route { $var(x) = $hdr(Max-Forwards); }",
            ),
            (
                "route{ $var(x) = $(ru{s.len}); }",
                "request_route { $var(x) = $(ru{s.len}); }",
            ),
            (
                "route{ if ($rc) exit; }",
                "request_route { if ($rc) { exit; } }",
            ),
            // errors, all reported
            ("debug=", "t.cfg:1:7: expected a value after 'debug ='"),
            (
                "debug=\nfork=yes",
                "t.cfg:2:1: expected a value after 'debug ='",
            ),
            ("debug=\n 3", "debug=3"),
            (
                "route{ a() }",
                "t.cfg:1:12: missing ';' after the statement",
            ),
            (
                "route{ a() }\nroute[X]{ if x() }",
                "t.cfg:1:12: missing ';' after the statement\nt.cfg:2:18: expected '{' or a statement after the condition, found '}'",
            ),
            (
                "route{ a(); ",
                "t.cfg:1:6: missing '}' for this block (end of file reached)",
            ),
            ("user=\"abc", "t.cfg:1:6: unterminated string"),
            ("/* x", "t.cfg:1:1: unterminated comment"),
            ("port=5060 @", "t.cfg:1:11: unexpected character '@'"),
            (
                "foo bar",
                "t.cfg:1:1: unexpected 'foo': expected a global parameter (name = value), loadmodule, modparam or a route block",
            ),
            (
                "route{ $var(x) 1; }",
                "t.cfg:1:16: expected '=' or ':=' after $var(x)",
            ),
            (
                "route{ $ = 1; }",
                "t.cfg:1:8: invalid pseudo-variable: '$' must be followed by a name or '('",
            ),
            (
                "route{ $var(x = 1; }",
                "t.cfg:1:8: unterminated pseudo-variable: missing ')'",
            ),
            (
                "modparam(\"tm\", \"x\")",
                "t.cfg:1:19: expected ',' in modparam(\"module\", \"param\", value), found ')'",
            ),
            (
                "modparam(\"tm\", \"x\", foo)",
                "t.cfg:1:21: modparam value must be a string or an integer",
            ),
            (
                "failure_route{}",
                "t.cfg:1:1: failure_route needs a name: failure_route[NAME] { … }",
            ),
            (
                "request_route[X]{}",
                "t.cfg:1:1: request_route takes no name",
            ),
            (
                "route { switch($rm) { case \"A\": break; } }",
                "t.cfg:1:9: 'switch' is not supported; use if/else",
            ),
            (
                "route { if ($x = 1) a(); }",
                "t.cfg:1:16: '=' is assignment; use '==' to compare",
            ),
            (
                "route { a(1,); }",
                "t.cfg:1:13: expected an expression, found ')'",
            ),
            (
                "route { x = 1; }",
                "t.cfg:1:11: unexpected '='; expected a statement (missing '$' before a variable name?)",
            ),
        ];
        check_all(cases);
    }

    #[test]
    fn preprocessor_cases() {
        let cases: &[(&str, &str)] = &[
            ("#!define P 5070\nport=P", "port=5070"),
            ("!!define P 5070\nport=P", "port=5070"),
            (
                "#!define WITH_X\n#!ifdef WITH_X\nport=1\n#!else\nport=2\n#!endif",
                "port=1",
            ),
            ("#!ifdef WITH_X\nport=1\n#!else\nport=2\n#!endif", "port=2"),
            ("#!ifndef WITH_X\nport=1\n#!endif", "port=1"),
            (
                "#!define A\n#!ifdef A\n#!ifdef B\nport=1\n#!else\nport=2\n#!endif\n#!else\nport=3\n#!endif",
                "port=2",
            ),
            (
                "#!ifdef A\n#!ifdef B\nport=1\n#!endif\n\"unbalanced #!else\n#!endif\nport=4",
                "port=4",
            ),
            (
                "#!define A 1\n#!undef A\n#!ifdef A\nport=1\n#!endif\nport=2",
                "port=2",
            ),
            ("#!define A 1\n#!trydef A 2\nport=A", "port=1"),
            ("#!define A 1\n#!redefine A 2\nport=A", "port=2"),
            // whole tokens only, never inside strings or pseudo-variables
            ("#!define A 1\nuser=\"A\"\nport=AB", "user=\"A\"\nport=AB"),
            (
                "#!define var 1\nroute{ $var(var) = var; }",
                "request_route { $var(var) = 1; }",
            ),
            // multi-line value, define of a define, define of several tokens
            ("#!define V 50\\\n60\nport=V", "port=5060"),
            ("#!define A B\n#!define B 7\nport=A", "port=7"),
            (
                "#!define ADDR 1.2.3.4\nlisten=udp:ADDR:5060",
                "listen=udp:1.2.3.4:5060",
            ),
            (
                "#!define DBURL \"sqlite:///tmp/t.db\"\nmodparam(\"siptrace\",\"db_url\",DBURL)",
                "modparam(\"siptrace\", \"db_url\", \"sqlite:///tmp/t.db\")",
            ),
            ("#!define EMPTY\nport=EMPTY 5", "port=5"),
            (
                "#!substdef \"!MYIP!10.0.0.1!g\"\nlisten=udp:MYIP:5060\nalias=\"MYIP\"",
                "listen=udp:10.0.0.1:5060\nalias=10.0.0.1",
            ),
            (
                "#!subst \"/foo/bar/g\"\nuser=\"a foo foo\"",
                "user=\"a bar bar\"",
            ),
            ("#!substdefs \"/NAME/kam/\"\nuser=NAME", "user=\"kam\""),
            // errors
            (
                "#!define A 1\n#!define A 2",
                "t.cfg:2:1: 'A' is already defined (use #!redefine or #!trydef)",
            ),
            (
                "#!define A-B 1",
                "t.cfg:1:1: '-' is not allowed in a define name",
            ),
            (
                "#!ifdef A\nport=1",
                "t.cfg:1:1: #!ifdef without a matching #!endif",
            ),
            ("#!endif", "t.cfg:1:1: #!endif without #!ifdef or #!ifndef"),
            ("#!else", "t.cfg:1:1: #!else without #!ifdef or #!ifndef"),
            (
                "#!ifdef A\n#!else\n#!else\n#!endif",
                "t.cfg:3:1: a second #!else for the same #!ifdef",
            ),
            (
                "#!ifdef A B\n#!endif",
                "t.cfg:1:1: unexpected text after #!ifdef A",
            ),
            (
                "#!define A A\nport=A",
                "t.cfg:2:6: define 'A' expands into itself too deeply\nt.cfg:2:7: expected a value after 'port ='",
            ),
            (
                "#!substdef \"/a b/x/\"",
                "t.cfg:1:12: #!substdef needs a define name as pattern, not 'a b'",
            ),
            (
                "#!subst \"/x/y\"",
                "t.cfg:1:9: malformed substitution \"/x/y\": expected /pattern/replacement/flags",
            ),
            (
                "#!subst port",
                "t.cfg:1:9: #!subst must be followed by a quoted \"/pattern/replacement/flags\"",
            ),
            (
                "include_file \"missing.cfg\"",
                "t.cfg:1:14: cannot open included file \"missing.cfg\": no file missing.cfg",
            ),
            ("import_file \"missing.cfg\"\nport=1", "port=1"),
            ("#!defenv HOME", "t.cfg:1:1: #!defenv is not supported"),
        ];
        check_all(cases);
    }

    #[test]
    fn command_line_defines() {
        let defs = [
            ("WITH_DEBUG".to_string(), None),
            ("LPORT".to_string(), Some("5090".to_string())),
        ];
        assert_eq!(
            render("#!ifdef WITH_DEBUG\ndebug=3\n#!endif\nport=LPORT", &defs),
            "debug=3\nport=5090"
        );
    }

    #[test]
    fn includes_resolve_relative_to_including_file_and_keep_positions() {
        let dir = std::env::temp_dir().join(format!("lang-inc-{}", std::process::id()));
        let sub = dir.join("sub");
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(
            dir.join("main.cfg"),
            "#!define FROM_MAIN 7\ninclude_file \"sub/a.cfg\"\nimport_file \"nope.cfg\"\nport=FROM_A\n",
        )
        .unwrap();
        std::fs::write(
            sub.join("a.cfg"),
            "#!define FROM_A 8\ndebug=FROM_MAIN\n#!include_file \"b.cfg\"\n",
        )
        .unwrap();
        std::fs::write(sub.join("b.cfg"), "\n  fork=yes bad\n").unwrap();
        let main = dir.join("main.cfg");
        let err = load_file(&main, &[]).unwrap_err();
        assert_eq!(err.len(), 1, "{err:?}");
        let b = sub.join("b.cfg");
        assert_eq!(
            err[0].to_string(),
            format!(
                "{}:2:12: unexpected 'bad': expected a global parameter (name = value), loadmodule, modparam or a route block",
                b.display()
            )
        );
        std::fs::write(sub.join("b.cfg"), "fork=yes\n").unwrap();
        let cfg = load_file(&main, &[]).unwrap();
        assert_eq!(cfg.to_string(), "debug=7\nfork=1\nport=8");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn include_depth_is_bounded() {
        let mut self_include =
            |_: &Path| -> io::Result<String> { Ok("include_file \"t.cfg\"\n".to_string()) };
        let err =
            parse_with("t.cfg", "include_file \"t.cfg\"", &[], &mut self_include).unwrap_err();
        assert_eq!(err.len(), 1);
        assert!(
            err[0].message.contains("too many nested includes"),
            "{}",
            err[0]
        );
    }

    const REAL: &str = include_str!("testdata/stateful-proxy.cfg");

    #[test]
    fn garbage_never_panics() {
        // Truncations and byte-level mutations of a real config, plus random noise.
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let chars: Vec<char> = REAL.chars().collect();
        for cut in (0..chars.len()).step_by(37) {
            let s: String = chars[..cut].iter().collect();
            let _ = render(&s, &[]);
        }
        let alphabet: Vec<char> = "#!$(){}[]\"'\\/*;:=~<>&|+-.,0123456789abcXYZ_ \n\té"
            .chars()
            .collect();
        for _ in 0..300 {
            let mut s = chars.clone();
            for _ in 0..(rnd() % 20) {
                let at = (rnd() as usize) % s.len();
                s[at] = alphabet[(rnd() as usize) % alphabet.len()];
            }
            let _ = render(&s.iter().collect::<String>(), &[]);
            let noise: String = (0..(rnd() % 200))
                .map(|_| alphabet[(rnd() as usize) % alphabet.len()])
                .collect();
            let _ = render(&noise, &[]);
        }
    }

    #[test]
    fn real_config_parses() {
        let out = render(REAL, &[]);
        assert!(out.starts_with("debug=2"), "{out}");
        assert!(!out.contains("t.cfg:"), "{out}");
    }
}
