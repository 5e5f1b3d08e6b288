//! `siptrace serve`: the trace table as web pages — search (the filters of
//! `siptrace calls` in a GET form, newest first, paged), one call's ladder
//! with the clicked message's text, pcap download, a live view — and the
//! JSON API under /api they and other tools use (README.md, "siptrace
//! serve").
//!
//! Safe by construction against hostile SIP content: pages are built in
//! [`page`], where every table value is escaped for its context; every
//! response carries a Content-Security-Policy that admits only this
//! server's own script and style (/static/, compiled into the binary), so
//! even a missed escape could not run inline script. Listening outside
//! loopback (127.0.0.0/8, ::1) is refused unless `--auth FILE` names the
//! users ([`auth`]), and then every request needs their HTTP Basic
//! credentials. Read-only: [`Source`] runs only SELECTs.
//!
//! HTTP is `tiny_http`'s (a synchronous server): a few worker threads, each
//! with its own [`Source`] connection, reopened after a failure. May
//! depend on the rest of `inspect`, `clock`, tiny_http, bcrypt; not on the
//! daemon.

pub mod auth;
pub mod page;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use tiny_http::{Header, Method, Request, Response, Server};

use crate::clock::WallTime;
use crate::inspect::call::{CallSummary, Filter, summaries_json};
use crate::inspect::json::J;
use crate::inspect::source::Source;
use crate::inspect::when::{End, parse_when};
use crate::inspect::{ladder, pcap};

const APP_JS: &str = include_str!("app.js");
const STYLE_CSS: &str = include_str!("style.css");

/// No inline script or style, nothing from elsewhere, no framing.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; \
     frame-ancestors 'none'";

/// Request-handling threads (each holds one database connection).
const WORKERS: usize = 4;
/// Calls per page unless `limit` says otherwise, and the most it may say.
const PAGE: usize = 50;
const PAGE_MAX: usize = 500;
/// How deep paging may go: each page re-reads the calls before it.
const DEPTH_MAX: usize = 10_000;

/// What `serve` runs on.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub auth: Option<PathBuf>,
    pub db_url: String,
    pub table: String,
}

/// Why the server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "refusing to listen on {0} without --auth FILE: the pages show every traced \
         message; listen on 127.0.0.1 or ::1, or give --auth FILE (lines from \
         `siptrace serve --hash-password USER`)"
    )]
    NeedAuth(SocketAddr),
    #[error("{0}")]
    Auth(#[from] auth::AuthError),
    #[error("cannot listen on {addr}: {detail} (in use? another --listen?)")]
    Bind { addr: SocketAddr, detail: String },
}

impl ServeError {
    /// As `siptrace`'s exit codes: 2 for a refused command line, 3 else.
    pub fn exit_code(&self) -> u8 {
        match self {
            ServeError::NeedAuth(_) => 2,
            _ => 3,
        }
    }
}

/// 127.0.0.0/8 and ::1 only (an IPv4-mapped address counts as outside:
/// the rule errs towards asking for --auth).
pub fn is_loopback(ip: IpAddr) -> bool {
    ip.is_loopback()
}

struct Shared {
    conf: Config,
    users: Option<auth::Users>,
}

/// Run until the process is stopped.
pub fn serve(conf: Config) -> Result<(), ServeError> {
    let users = match &conf.auth {
        Some(p) => Some(auth::Users::load(p)?),
        None if !is_loopback(conf.listen.ip()) => return Err(ServeError::NeedAuth(conf.listen)),
        None => None,
    };
    let server = Server::http(conf.listen).map_err(|e| ServeError::Bind {
        addr: conf.listen,
        detail: e.to_string(),
    })?;
    let server = Arc::new(server);
    // The table is checked now so that a wrong --db shows at once; the
    // pages (and /healthz) still come up, and say what is wrong.
    let first = match Source::open(&conf.db_url, &conf.table) {
        Ok(s) => {
            eprintln!(
                "siptrace: serving {} on http://{}/{}",
                s.describe(),
                conf.listen,
                if users.is_some() {
                    " (HTTP Basic auth)"
                } else {
                    ""
                }
            );
            Some(s)
        }
        Err(e) => {
            eprintln!("siptrace: listening on http://{}/ but: {e}", conf.listen);
            None
        }
    };
    let shared = Arc::new(Shared { conf, users });
    let mut first = Some(first);
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let server = Arc::clone(&server);
            let shared = Arc::clone(&shared);
            let mut src = first.take().flatten();
            std::thread::spawn(move || {
                while let Ok(rq) = server.recv() {
                    handle(&shared, &mut src, rq);
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    Ok(())
}

/// A response before the common headers.
struct Reply {
    status: u16,
    ctype: &'static str,
    body: Vec<u8>,
    extra: Vec<(&'static str, String)>,
}

impl Reply {
    fn new(status: u16, ctype: &'static str, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            ctype,
            body: body.into(),
            extra: Vec::new(),
        }
    }
    fn html(status: u16, body: String) -> Reply {
        Reply::new(status, "text/html; charset=utf-8", body)
    }
    fn json(status: u16, j: &J) -> Reply {
        // Escaped as inside a page: harmless for JSON readers, and no
        // browser can be talked into treating it as markup.
        Reply::new(
            status,
            "application/json",
            page::json_for_script(&j.pretty()),
        )
    }
    fn text(status: u16, t: impl Into<String>) -> Reply {
        Reply::new(status, "text/plain; charset=utf-8", t.into())
    }
}

fn header(name: &str, value: &str) -> Header {
    // Names are literals and values are built here from safe bytes.
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("valid header")
}

fn handle(sh: &Shared, src: &mut Option<Source>, rq: Request) {
    let reply = if let Some(users) = &sh.users
        && !users.allows(
            rq.headers()
                .iter()
                .find(|h| h.field.equiv("Authorization"))
                .map(|h| h.value.as_str()),
        ) {
        let mut r = Reply::text(401, "credentials needed (HTTP Basic)\n");
        r.extra.push((
            "WWW-Authenticate",
            "Basic realm=\"siptrace\", charset=\"UTF-8\"".into(),
        ));
        r
    } else if !matches!(rq.method(), Method::Get | Method::Head) {
        let mut r = Reply::text(405, "read-only: GET and HEAD only\n");
        r.extra.push(("Allow", "GET, HEAD".into()));
        r
    } else {
        let url = rq.url().to_string();
        let (path, query) = url.split_once('?').unwrap_or((&url, ""));
        route(sh, src, path, &page::parse_query(query))
    };
    let mut resp = Response::from_data(reply.body)
        .with_status_code(reply.status)
        .with_header(header("Content-Type", reply.ctype))
        .with_header(header("Content-Security-Policy", CSP))
        .with_header(header("X-Content-Type-Options", "nosniff"))
        .with_header(header("Referrer-Policy", "no-referrer"))
        .with_header(header("X-Frame-Options", "DENY"))
        .with_header(header("Cache-Control", "no-store"));
    for (n, v) in reply.extra {
        resp.add_header(header(n, &v));
    }
    // A client gone before the answer is not the server's problem.
    let _ = rq.respond(resp);
}

fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// A connection to the table: the worker's, else a fresh one.
fn source<'a>(sh: &Shared, src: &'a mut Option<Source>) -> Result<&'a mut Source, String> {
    if src.is_none() {
        *src = Some(Source::open(&sh.conf.db_url, &sh.conf.table).map_err(|e| e.to_string())?);
    }
    Ok(src.as_mut().expect("just set"))
}

/// Run `f` on the table; a failed query drops the connection so that the
/// next request reconnects.
fn with_source<T>(
    sh: &Shared,
    src: &mut Option<Source>,
    f: impl FnOnce(&mut Source) -> Result<T, crate::inspect::source::SourceError>,
) -> Result<T, String> {
    let s = source(sh, src)?;
    f(s).map_err(|e| {
        *src = None;
        e.to_string()
    })
}

fn route(sh: &Shared, src: &mut Option<Source>, path: &str, q: &[(String, String)]) -> Reply {
    match path {
        "/" => search_page(sh, src, q),
        "/call" => call_page(sh, src, q),
        "/live" => Reply::html(200, page::live()),
        "/healthz" => healthz(sh, src),
        "/api/calls" => match search(sh, src, q) {
            Ok((calls, page, limit, more)) => Reply::json(
                200,
                &J::Obj(vec![
                    ("page", J::Int(page as i64 + 1)),
                    ("limit", J::Int(limit as i64)),
                    ("more", J::Bool(more)),
                    ("calls", summaries_json(&calls)),
                ]),
            ),
            Err((code, e)) => Reply::json(code, &J::Obj(vec![("error", J::s(e))])),
        },
        "/api/call" => match call_rows(sh, src, q) {
            Ok(rows) => Reply::json(200, &ladder::to_json(&ladder::build(&rows), &rows)),
            Err((code, e)) => Reply::json(code, &J::Obj(vec![("error", J::s(e))])),
        },
        "/api/pcap" => match call_rows(sh, src, q) {
            Ok(rows) => {
                let ng = param(q, "format") == Some("pcapng");
                let (bytes, _) = pcap::capture(&rows, ng);
                let name: String = rows[0]
                    .callid
                    .chars()
                    .take(60)
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || "-_.@".contains(c) {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect();
                let mut r = Reply::new(200, "application/vnd.tcpdump.pcap", bytes);
                r.extra.push((
                    "Content-Disposition",
                    format!(
                        "attachment; filename=\"{name}.{}\"",
                        if ng { "pcapng" } else { "pcap" }
                    ),
                ));
                r
            }
            Err((code, e)) => Reply::text(code, e + "\n"),
        },
        "/static/app.js" => Reply::new(200, "text/javascript; charset=utf-8", APP_JS),
        "/static/style.css" => Reply::new(200, "text/css; charset=utf-8", STYLE_CSS),
        _ => Reply::html(404, page::problem("Not found", "No such page.")),
    }
}

fn healthz(sh: &Shared, src: &mut Option<Source>) -> Reply {
    // A fresh open checks the server, the login and the table's layout.
    *src = None;
    match source(sh, src) {
        Ok(_) => Reply::text(200, "ok\n"),
        Err(e) => Reply::text(503, e + "\n"),
    }
}

type Failure = (u16, String);

/// The search the parameters describe: (calls of the page, 0-based page,
/// page size, whether older calls follow).
fn search(
    sh: &Shared,
    src: &mut Option<Source>,
    q: &[(String, String)],
) -> Result<(Vec<CallSummary>, usize, usize, bool), Failure> {
    let now = WallTime::now().sec;
    let when = |name, end| {
        param(q, name)
            .map(|s| parse_when(s, end, now))
            .transpose()
            .map_err(|e| (400, format!("{name}: {e}")))
    };
    let f = Filter {
        since: when("since", End::Since)?,
        until: when("until", End::Until)?,
        user: param(q, "user").map(String::from),
        ip: param(q, "ip").map(String::from),
        method: param(q, "method").map(|m| m.to_ascii_uppercase()),
        status: param(q, "status").map(String::from),
        callid: param(q, "callid").map(String::from),
    };
    let num = |name, default: usize| match param(q, name) {
        None => Ok(default),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| (400, format!("{name} {v:?} is not a positive number"))),
    };
    let limit = num("limit", PAGE)?.min(PAGE_MAX);
    let page = num("page", 1)? - 1;
    let skip = page * limit;
    if skip + limit > DEPTH_MAX {
        return Err((
            400,
            format!(
                "page {} is too deep; narrow the search (since/until)",
                page + 1
            ),
        ));
    }
    let mut all = with_source(sh, src, |s| s.calls(&f, skip + limit + 1)).map_err(|e| (503, e))?;
    let more = all.len() > skip + limit;
    all.truncate(skip + limit);
    let calls = all.split_off(skip.min(all.len()));
    Ok((calls, page, limit, more))
}

fn search_page(sh: &Shared, src: &mut Option<Source>, q: &[(String, String)]) -> Reply {
    let described = src.as_ref().map(Source::describe).unwrap_or_default();
    let (calls, page, more, error, status) = match search(sh, src, q) {
        Ok((c, p, _, m)) => (c, p, m, None, 200),
        Err((code, e)) => (Vec::new(), 0, false, Some(e), code),
    };
    let described = src.as_ref().map(Source::describe).unwrap_or(described);
    Reply::html(
        status,
        page::search(&page::Search {
            query: q,
            calls: &calls,
            page,
            more,
            error,
            source: &described,
        }),
    )
}

fn call_rows(
    sh: &Shared,
    src: &mut Option<Source>,
    q: &[(String, String)],
) -> Result<Vec<crate::inspect::StoredRow>, Failure> {
    let id = param(q, "id").ok_or((400, "id=CALLID is missing".to_string()))?;
    let ids = [id.to_string()];
    let rows = with_source(sh, src, |s| s.rows_of(&ids)).map_err(|e| (503, e))?;
    if rows.is_empty() {
        return Err((404, format!("no rows with Call-ID {id:?}")));
    }
    Ok(rows)
}

fn call_page(sh: &Shared, src: &mut Option<Source>, q: &[(String, String)]) -> Reply {
    match call_rows(sh, src, q) {
        Ok(rows) => {
            let sel = param(q, "m").and_then(|m| m.parse().ok()).unwrap_or(0);
            Reply::html(200, page::call(&ladder::build(&rows), &rows, sel))
        }
        Err((code, e)) => Reply::html(code, page::problem("No such call", &e)),
    }
}
