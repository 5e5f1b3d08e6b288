//! `siptrace serve` end to end: the real binary on a table the test fills,
//! driven in Debian's headless Chromium through chromedriver (a tiny
//! WebDriver client below: JSON over HTTP), and read with a plain HTTP
//! client. Search by user, open a call, one SVG arrow per message, the
//! clicked message's text, the pcap decoded by tshark; hostile SIP values
//! shown as text with no script run and the CSP on every response; the
//! loopback/--auth rules; the same search answers on SQLite, PostgreSQL
//! and MariaDB. A screenshot of the call page is left in
//! target/test-artifacts/call.png.

mod common;
use common::*;
mod siptrace_rows;
use siptrace_rows::*;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

const SIPTRACE: &str = env!("CARGO_BIN_EXE_siptrace");

fn free_tcp_port(ip: &str) -> u16 {
    TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A running `siptrace serve`, stopped on drop.
struct Serve {
    child: Child,
    base: String,
}

impl Serve {
    fn start(db: &str, ip: &str, extra: &[&str]) -> Serve {
        let port = free_tcp_port(ip);
        let listen = format!("{ip}:{port}");
        let child = Command::new(SIPTRACE)
            .args(["--db", db, "serve", "--listen", &listen])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run siptrace serve");
        let s = Serve {
            child,
            base: format!("http://{listen}"),
        };
        wait_for("siptrace serve to listen", Duration::from_secs(20), || {
            std::net::TcpStream::connect(&listen).ok()
        });
        s
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET: status, headers of interest, body (errors are answers too).
fn get(url: &str, auth: Option<&str>) -> (u16, ureq::Response) {
    let mut rq = ureq::get(url).timeout(Duration::from_secs(20));
    if let Some(a) = auth {
        rq = rq.set("Authorization", a);
    }
    match rq.call() {
        Ok(r) => (r.status(), r),
        Err(ureq::Error::Status(code, r)) => (code, r),
        Err(e) => panic!("GET {url}: {e}"),
    }
}

fn get_json(url: &str) -> Value {
    let (code, r) = get(url, None);
    assert_eq!(code, 200, "{url}");
    serde_json::from_str(&r.into_string().unwrap()).unwrap()
}

fn callids(v: &Value) -> Vec<String> {
    v["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["callid"].as_str().unwrap().to_string())
        .collect()
}

// ------------------------------------------------------------------------
// A minimal WebDriver client (W3C protocol) over chromedriver.

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Browser {
    driver: Child,
    base: String,
}

impl Browser {
    fn start() -> Browser {
        let port = free_tcp_port("127.0.0.1");
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run chromedriver (apt-get install chromium chromium-driver)");
        let root = format!("http://127.0.0.1:{port}");
        wait_for("chromedriver", Duration::from_secs(20), || {
            ureq::get(&format!("{root}/status")).call().ok()
        });
        let caps = json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1500,1100"]
        }}}});
        let mut b = Browser {
            driver,
            base: root.clone(),
        };
        let v = b.call("POST", "/session", Some(caps)).expect("new session");
        let id = v["sessionId"].as_str().expect("session id").to_string();
        b.base = format!("{root}/session/{id}");
        b
    }

    /// The command's `value`, or the WebDriver error's.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, Value> {
        let url = format!("{}{path}", self.base);
        let rq = ureq::request(method, &url).timeout(Duration::from_secs(60));
        let res = match body {
            Some(b) => rq
                .set("Content-Type", "application/json")
                .send_string(&b.to_string()),
            None => rq.call(),
        };
        match res {
            Ok(r) => Ok(value_of(r)),
            Err(ureq::Error::Status(_, r)) => Err(value_of(r)),
            Err(e) => panic!("{method} {url}: {e}"),
        }
    }

    fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.call(method, path, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    fn goto(&self, url: &str) {
        self.ok("POST", "/url", Some(json!({ "url": url })));
    }

    fn find_all(&self, css: &str) -> Vec<String> {
        let v = self.ok(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        );
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| {
                e[ELEMENT]
                    .as_str()
                    .unwrap_or_else(|| panic!("{e}"))
                    .to_string()
            })
            .collect()
    }

    /// The first element matching, waiting for it to appear.
    fn find(&self, css: &str) -> String {
        wait_for(css, Duration::from_secs(20), || {
            self.find_all(css).into_iter().next()
        })
    }

    fn click(&self, el: &str) {
        self.ok("POST", &format!("/element/{el}/click"), Some(json!({})));
    }

    fn type_into(&self, el: &str, text: &str) {
        self.ok(
            "POST",
            &format!("/element/{el}/value"),
            Some(json!({ "text": text })),
        );
    }

    fn text(&self, el: &str) -> String {
        self.ok("GET", &format!("/element/{el}/text"), None)
            .as_str()
            .unwrap()
            .to_string()
    }

    fn property(&self, el: &str, name: &str) -> Value {
        self.ok("GET", &format!("/element/{el}/property/{name}"), None)
    }

    fn script(&self, js: &str) -> Value {
        self.ok(
            "POST",
            "/execute/sync",
            Some(json!({"script": js, "args": []})),
        )
    }

    /// The text of an open alert/confirm/prompt, if one is open.
    fn alert(&self) -> Option<String> {
        self.call("GET", "/alert/text", None)
            .ok()
            .map(|v| v.as_str().unwrap_or("").to_string())
    }

    fn screenshot(&self, path: &Path) {
        let v = self.ok("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }
}

fn value_of(r: ureq::Response) -> Value {
    let mut v: Value = serde_json::from_str(&r.into_string().unwrap()).unwrap();
    v["value"].take()
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.call("DELETE", "", None);
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn artifacts() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts")
}

fn three_calls() -> Vec<(&'static str, Vec<R>)> {
    vec![
        ("call-a", call_rows("call-a", 0)),
        ("call-b", cancel_rows("call-b", 1800)),
        ("call-c", timeout_rows("call-c", 3600)),
    ]
}

/// tshark's protocol stack of every frame in a capture.
fn tshark_protocols(file: &Path) -> Vec<String> {
    let o = Command::new("tshark")
        .arg("-r")
        .arg(file)
        .args(["-T", "fields", "-e", "frame.protocols"])
        .output()
        .expect("run tshark (apt-get install tshark)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn search_call_ladder_message_and_pcap_in_chromium() {
    let dir = TempDir::new("web-flow");
    let db = sqlite_db(&dir, false, &three_calls());
    let srv = Serve::start(&db_arg(&db), "127.0.0.1", &[]);
    let b = Browser::start();

    b.goto(&srv.url("/"));
    let user = b.find("#f-user");
    b.type_into(&user, "alice");
    b.click(&b.find("#go"));
    wait_for("the search in the URL", Duration::from_secs(20), || {
        let u = b.ok("GET", "/url", None);
        u.as_str().unwrap().contains("user=alice").then_some(())
    });
    let links = b.find_all("#results a.call");
    let names: Vec<String> = links.iter().map(|l| b.text(l)).collect();
    assert_eq!(names, ["call-c", "call-b", "call-a"], "newest first");
    let a = links[names.iter().position(|n| n == "call-a").unwrap()].clone();
    b.click(&a);

    b.find("body[data-ready='1'] #ladder svg");
    let arrows = b.find_all("#ladder g.arrow");
    // 26 rows, each event stored twice (traced-user copies): 13 messages.
    assert_eq!(arrows.len(), 13);

    let api = get_json(&srv.url("/api/call?id=call-a"));
    assert_eq!(api["messages"].as_array().unwrap().len(), 13);
    let k = 5;
    let row_id = api["messages"][k]["rows"][0].as_i64().unwrap();
    let row = api["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"].as_i64() == Some(row_id))
        .unwrap();
    let first_line = row["msg"].as_str().unwrap().lines().next().unwrap();
    b.click(&b.find(&format!("#ladder g.arrow[data-i='{k}'] text.label")));
    let msg = b.find("#msg");
    wait_for("the clicked message", Duration::from_secs(10), || {
        let t = b.text(&msg);
        (t.contains(&format!("row id {row_id}")) && t.contains(first_line)).then_some(())
    });
    let sel = b.find_all("#ladder g.arrow.sel");
    assert_eq!(sel.len(), 1);
    let sel_html = b.property(&sel[0], "outerHTML");
    assert!(
        sel_html
            .as_str()
            .unwrap()
            .contains(&format!("data-i=\"{k}\"")),
        "{sel_html}"
    );
    b.screenshot(&artifacts().join("call.png"));

    let href = b.property(&b.find("#pcap"), "href");
    let (code, r) = get(href.as_str().unwrap(), None);
    assert_eq!(code, 200);
    assert!(
        r.header("Content-Disposition")
            .unwrap()
            .contains("call-a.pcap")
    );
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut r.into_reader(), &mut bytes).unwrap();
    let file = dir.join("call-a.pcap");
    std::fs::write(&file, &bytes).unwrap();
    let frames = tshark_protocols(&file);
    assert_eq!(frames.len(), 13, "{frames:?}");
    for f in &frames {
        assert!(f.ends_with(":sip"), "not SIP: {f}");
    }

    // The live view fills itself from the API.
    b.goto(&srv.url("/live"));
    b.find("body[data-ready='1'] #live tbody tr");
    assert_eq!(b.find_all("#live a.call").len(), 3);
}

/// Every kind of place a stored value reaches, each with a payload.
const XSS_CALLID: &str = "xss<script>window.__xss=1</script>\"><img src=x onerror=\"window.__xss=2;alert(2)\">javascript:alert(3)";
const XSS_NAME: &str = "\"<script>window.__xss=3</script>\"><img src=x onerror=window.__xss=4>\"";
const XSS_BODY: &str = "<script>window.__xss=5</script><img src=x onerror=alert(5)>\r\n<a href=\"javascript:window.__xss=6\">x</a></script><script>window.__xss=7</script>";

fn xss_rows() -> Vec<R> {
    let head = |start: &str, cseq: &str| {
        format!(
            "{start}\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx\r\n\
             From: {XSS_NAME} <sip:alice@example.com>;tag=a1\r\n\
             To: <sip:bob@example.com>\r\nCall-ID: {XSS_CALLID}\r\nCSeq: {cseq}\r\n"
        )
    };
    let msg = format!(
        "{}Content-Type: text/html\r\nContent-Length: {}\r\n\r\n{XSS_BODY}",
        head("MESSAGE sip:bob@example.com SIP/2.0", "1 MESSAGE"),
        XSS_BODY.len()
    );
    let ok = format!(
        "{}Content-Length: 0\r\n\r\n",
        head("SIP/2.0 200 OK", "1 MESSAGE")
    );
    vec![
        r(0, 0, "in", UAC, PROXY, "alice", msg),
        r(0, 500, "out", PROXY, UAC, "alice", ok),
    ]
}

#[test]
fn hostile_sip_values_are_shown_as_text_under_a_csp() {
    let dir = TempDir::new("web-xss");
    let db = sqlite_db(&dir, false, &[(XSS_CALLID, xss_rows())]);
    let srv = Serve::start(&db_arg(&db), "127.0.0.1", &[]);
    let enc: String = XSS_CALLID
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();

    // The header on every response, pages, API, files and errors alike.
    for path in [
        "/".to_string(),
        "/?user=alice".into(),
        format!("/call?id={enc}"),
        "/live".into(),
        "/healthz".into(),
        "/api/calls".into(),
        format!("/api/call?id={enc}"),
        format!("/api/pcap?id={enc}"),
        "/static/app.js".into(),
        "/static/style.css".into(),
        "/nowhere".into(),
        "/call?id=none".into(),
    ] {
        let (_, r) = get(&srv.url(&path), None);
        let csp = r
            .header("Content-Security-Policy")
            .unwrap_or_else(|| panic!("no CSP on {path}"));
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(r.header("X-Content-Type-Options"), Some("nosniff"));
    }
    let (_, r) = get(&srv.url(&format!("/call?id={enc}")), None);
    let html = r.into_string().unwrap();
    assert!(!html.contains("<img"), "{html}");
    assert_eq!(
        html.matches("<script").count(),
        2,
        "app.js and the JSON only"
    );

    let b = Browser::start();
    let clean = |b: &Browser, where_: &str| {
        assert_eq!(b.alert(), None, "an alert opened on {where_}");
        let v = b.script("return typeof window.__xss;");
        assert_eq!(v, json!("undefined"), "a payload ran on {where_}");
    };
    b.goto(&srv.url("/?user=alice"));
    let link = b.find("#results a.call");
    assert_eq!(b.text(&link), XSS_CALLID);
    clean(&b, "the search page");
    b.click(&link);
    b.find("body[data-ready='1'] #ladder svg");
    assert_eq!(b.text(&b.find("#callid")), XSS_CALLID);
    assert_eq!(b.find_all("#ladder g.arrow").len(), 2);
    for k in 0..2 {
        b.click(&b.find(&format!("#ladder g.arrow[data-i='{k}'] text.label")));
        clean(&b, "the call page");
    }
    b.click(&b.find("#ladder g.arrow[data-i='0'] text.label"));
    let t = b.text(&b.find("#msg"));
    assert!(t.contains("<script>window.__xss=5</script>"), "{t}");
    assert!(t.contains(XSS_NAME), "{t}");
    assert!(t.contains(XSS_CALLID), "{t}");
    b.screenshot(&artifacts().join("xss.png"));
    b.goto(&srv.url("/live"));
    b.find("body[data-ready='1'] #live a.call");
    assert_eq!(b.text(&b.find("#live a.call")), XSS_CALLID);
    clean(&b, "the live page");
}

#[test]
fn outside_loopback_only_with_auth_and_then_basic_credentials() {
    let dir = TempDir::new("web-auth");
    let db = sqlite_db(&dir, false, &three_calls());
    let url = db_arg(&db);
    let o = Command::new(SIPTRACE)
        .args(["--db", &url, "serve", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("refusing to listen on 0.0.0.0:0 without --auth"),
        "{err}"
    );

    let mut h = Command::new(SIPTRACE)
        .args(["serve", "--hash-password", "alice"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(h.stdin.as_mut().unwrap(), b"s3cret\n").unwrap();
    let out = h.wait_with_output().unwrap();
    assert!(out.status.success());
    let line = String::from_utf8(out.stdout).unwrap();
    assert!(line.starts_with("alice:$2b$"), "{line}");
    let users = dir.join("users");
    std::fs::write(&users, format!("# siptrace readers\n{line}")).unwrap();

    let bad = dir.join("bad");
    std::fs::write(&bad, "alice:s3cret\n").unwrap();
    let o = Command::new(SIPTRACE)
        .args(["--db", &url, "serve", "--listen", "127.0.0.2:0", "--auth"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a bcrypt hash"));

    let srv = Serve::start(&url, "127.0.0.2", &["--auth", users.to_str().unwrap()]);
    let basic = |s: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(s)
        )
    };
    for path in [
        "/",
        "/api/calls",
        "/healthz",
        "/static/app.js",
        "/api/pcap?id=call-a",
    ] {
        let (code, r) = get(&srv.url(path), None);
        assert_eq!(code, 401, "{path}");
        assert!(r.header("WWW-Authenticate").unwrap().starts_with("Basic"));
        assert_eq!(get(&srv.url(path), Some(&basic("alice:wrong"))).0, 401);
        assert_eq!(get(&srv.url(path), Some(&basic("bob:s3cret"))).0, 401);
        assert_eq!(
            get(&srv.url(path), Some(&basic("alice:s3cret"))).0,
            200,
            "{path}"
        );
    }
}

/// The same searches through the API on one backend.
fn api_answers(db_url: &str) -> Vec<Vec<String>> {
    let srv = Serve::start(db_url, "127.0.0.1", &[]);
    let (code, r) = get(&srv.url("/healthz"), None);
    assert_eq!((code, r.into_string().unwrap().as_str()), (200, "ok\n"));
    let answers: Vec<Vec<String>> = [
        "",
        "user=alice",
        "status=487",
        "status=4xx",
        "until=2024-05-01+10%3A10",
        "since=2024-05-01+10%3A20&until=2024-05-01+10%3A40",
        "ip=10.0.0.2%3A5080",
        "callid=call-b",
        "limit=1",
        "limit=1&page=2",
    ]
    .iter()
    .map(|q| callids(&get_json(&srv.url(&format!("/api/calls?{q}")))))
    .collect();
    let (code, r) = get(&srv.url("/call?id=call-a"), None);
    assert_eq!(code, 200);
    assert_eq!(
        r.into_string().unwrap().matches("<g class=\"arrow").count(),
        13
    );
    answers
}

fn expected() -> Vec<Vec<String>> {
    let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    vec![
        v(&["call-c", "call-b", "call-a"]),
        v(&["call-c", "call-b", "call-a"]),
        v(&["call-b"]),
        v(&["call-c", "call-b"]),
        v(&["call-a"]),
        v(&["call-b"]),
        v(&["call-c", "call-b", "call-a"]),
        v(&["call-b"]),
        v(&["call-c"]),
        v(&["call-b"]),
    ]
}

#[test]
fn api_search_sqlite() {
    let dir = TempDir::new("web-api");
    let db = sqlite_db(&dir, false, &three_calls());
    assert_eq!(api_answers(&db_arg(&db)), expected());
}

#[test]
fn api_search_postgres() {
    let db = server_db(DbKind::Postgres, false, &three_calls());
    assert_eq!(api_answers(&db.url), expected());
}

#[test]
fn api_search_mysql() {
    let db = server_db(DbKind::Mysql, false, &three_calls());
    assert_eq!(api_answers(&db.url), expected());
}

#[test]
fn healthz_says_what_is_wrong() {
    let dir = TempDir::new("web-health");
    let missing = format!("sqlite://{}", dir.join("none.db").display());
    let srv = Serve::start(&missing, "127.0.0.1", &[]);
    let (code, r) = get(&srv.url("/healthz"), None);
    assert_eq!(code, 503);
    assert!(r.into_string().unwrap().contains("no such database file"));
}
