//! Interpreter and compiler tests against a host that records every call.

use std::collections::HashMap;
use std::path::Path;

use super::*;
use crate::cfg;

#[derive(Default)]
struct Fake {
    /// What the script did, in order.
    log: Vec<String>,
    pvs: HashMap<MsgPv, Value>,
    /// Answer per HostCall variant name (default True).
    rets: HashMap<String, Ret>,
}

fn variant(call: &HostCall<'_>) -> String {
    let d = format!("{call:?}");
    d.chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect()
}

impl Host for Fake {
    fn pv_get(&mut self, pv: &MsgPv) -> Value {
        self.pvs.get(pv).cloned().unwrap_or_default()
    }
    fn pv_set(&mut self, pv: &MsgPv, v: &Value) -> bool {
        self.log.push(format!("set {pv}={v}"));
        self.pvs.insert(pv.clone(), v.clone());
        true
    }
    fn call(&mut self, call: HostCall<'_>, _st: &mut MsgState) -> Ret {
        let rc = self.rets.get(&variant(&call)).copied().unwrap_or(Ret::True);
        self.log.push(format!("{call:?}"));
        rc
    }
    fn log(&mut self, level: log::Level, text: &str) {
        self.log.push(format!("{level}: {text}"));
    }
}

fn all_modules() -> CompileEnv {
    let mut modules: Vec<String> = function_modules().map(String::from).collect();
    modules.dedup();
    CompileEnv {
        modules,
        max_while_loops: 100,
        maxfwd_max_limit: 256,
    }
}

fn compile_with(src: &str, env: &CompileEnv) -> Result<Program, String> {
    let mut no_files = |p: &Path| -> std::io::Result<String> {
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            p.display().to_string(),
        ))
    };
    let join = |d: Vec<cfg::Diagnostic>| {
        d.iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let c = cfg::parse_with("s.cfg", src, &[], &mut no_files).map_err(join)?;
    Program::compile(&c, env).map_err(join)
}

fn compile(src: &str) -> Program {
    compile_with(src, &all_modules()).unwrap_or_else(|e| panic!("{src}\n{e}"))
}

struct Case {
    src: &'static str,
    rets: &'static [(&'static str, Ret)],
    want: Outcome,
    log: &'static [&'static str],
}

fn pvs() -> HashMap<MsgPv, Value> {
    [
        (MsgPv::Method, Value::Str("INVITE".into())),
        (MsgPv::SrcIp, Value::Str("10.0.0.9".into())),
        (MsgPv::RUri, Value::Str("sip:bob@example.com".into())),
        (MsgPv::CallId, Value::Str("abc@h".into())),
    ]
    .into_iter()
    .collect()
}

#[test]
fn interpreter_cases() {
    use Outcome::*;
    let cases = [
        // if / else on a host call's code
        Case {
            src: r#"route { if (is_method("INVITE")) t_relay(); else sl_send_reply("405", "No"); }"#,
            rets: &[],
            want: End,
            log: &[r#"IsMethod(["INVITE"])"#, "TRelay(None)"],
        },
        Case {
            src: r#"route { if (is_method("INVITE")) t_relay(); else sl_send_reply("405", "No"); }"#,
            rets: &[("IsMethod", Ret::False)],
            want: End,
            log: &[
                r#"IsMethod(["INVITE"])"#,
                r#"SlSendReply { code: 405, reason: "No" }"#,
            ],
        },
        // && and || short-circuit
        Case {
            src: r#"route { if (has_totag() && loose_route()) xlog("a"); }"#,
            rets: &[("HasTotag", Ret::False)],
            want: End,
            log: &["HasTotag"],
        },
        Case {
            src: r#"route { if (has_totag() || loose_route()) xlog("a"); }"#,
            rets: &[],
            want: End,
            log: &["HasTotag", "ERROR: a"],
        },
        Case {
            src: r#"route { if (has_totag() || loose_route()) xlog("a"); }"#,
            rets: &[("HasTotag", Ret::False), ("LooseRoute", Ret::False)],
            want: End,
            log: &["HasTotag", "LooseRoute"],
        },
        // =~ is case-insensitive, !~ negates
        Case {
            src: r#"route { $var(u) = "sip:Alice@x"; if ($var(u) =~ "^SIP:alice") xlog("m"); if ($ru !~ "bob") xlog("n"); }"#,
            rets: &[],
            want: End,
            log: &["ERROR: m"],
        },
        // a code of 0 ends the script, as a statement and inside a condition
        Case {
            src: r#"route { t_check_trans(); xlog("after"); }"#,
            rets: &[("TCheckTrans", Ret::Exit)],
            want: Exit,
            log: &["TCheckTrans"],
        },
        Case {
            src: r#"route { if (!t_check_trans()) xlog("x"); xlog("y"); }"#,
            rets: &[("TCheckTrans", Ret::Exit)],
            want: Exit,
            log: &["TCheckTrans"],
        },
        // route() hands back return values; $rc sees them
        Case {
            src: r#"route { route(A); xlog("$rc"); if (route(NEG)) xlog("t"); else xlog("f"); } route[A] { return 5; } route[NEG] { return(-2); }"#,
            rets: &[],
            want: End,
            log: &["ERROR: 5", "ERROR: f"],
        },
        Case {
            src: r#"route { route(A); xlog("$rc"); } route[A] { xlog("in"); }"#,
            rets: &[],
            want: End,
            log: &["ERROR: in", "ERROR: 1"],
        },
        Case {
            src: r#"route { route(Z); xlog("not reached"); } route[Z] { return 0; }"#,
            rets: &[],
            want: Exit,
            log: &[],
        },
        Case {
            src: r#"route { route(E); xlog("not reached"); } route[E] { if (1) { exit; } }"#,
            rets: &[],
            want: Exit,
            log: &[],
        },
        // drop vs exit
        Case {
            src: r#"route { drop; xlog("no"); }"#,
            rets: &[],
            want: Drop,
            log: &[],
        },
        Case {
            src: r#"route { route(D); xlog("no"); } route[D] { drop(); }"#,
            rets: &[],
            want: Drop,
            log: &[],
        },
        Case {
            src: r#"route { exit; }"#,
            rets: &[],
            want: Exit,
            log: &[],
        },
        // top-level return
        Case {
            src: r#"route { return 3; }"#,
            rets: &[],
            want: Return(3),
            log: &[],
        },
        Case {
            src: r#"route { return(0); }"#,
            rets: &[],
            want: Exit,
            log: &[],
        },
        Case {
            src: r#"route { return; }"#,
            rets: &[],
            want: Return(1),
            log: &[],
        },
        // AVPs: = adds, := replaces, = $null deletes; most recent first
        Case {
            src: r#"route { $avp(x) = 1; $avp(s:x) = "b"; xlog("$avp(x) $(avp(x)[1]) $(avp(x)[-1])"); $avp(x) := "c"; xlog("$avp(x) $(avp(x)[1])"); $avp(x) = $null; xlog("$avp(x)"); }"#,
            rets: &[],
            want: End,
            log: &["ERROR: b 1 1", "ERROR: c <null>", "ERROR: <null>"],
        },
        // flags
        Case {
            src: r#"route { setflag(3); if (isflagset(3)) xlog("set"); resetflag(3); if (!isflagset(3)) xlog("reset"); }"#,
            rets: &[],
            want: End,
            log: &["ERROR: set", "ERROR: reset"],
        },
        // xlog levels and interpolation; null prints as <null>, unset $var as 0
        Case {
            src: r#"route { xlog("L_INFO", "$rm from $si $hdr(X-No) $var(u) $$ 5$ $ci\n"); xdbg("d"); xlog(L_WARN, "w"); }"#,
            rets: &[],
            want: End,
            log: &[
                "INFO: INVITE from 10.0.0.9 <null> 0 $$ 5$ abc@h\n",
                "DEBUG: d",
                "WARN: w",
            ],
        },
        // expressions
        Case {
            src: r#"route { $var(a) = 2 + 3 * 4; $var(s) = "x" + $var(a) + 1; $var(t) = $var(a) - 20 / 3; xlog("$var(a) $var(s) $var(t)"); if ($var(a) == "14" && $var(s) != "x" && 3 < 10 && "b" > "a" && $null == $null && $avp(none) != 0) xlog("cmp"); }"#,
            rets: &[],
            want: End,
            log: &["ERROR: 14 x141 8", "ERROR: cmp"],
        },
        Case {
            src: r#"route { $var(z) = 1 / 0; if ($var(z) == 0) xlog("zero"); if (-$var(q) == 0) xlog("neg"); }"#,
            rets: &[],
            want: End,
            log: &["ERROR: zero", "ERROR: neg"],
        },
        // while, and its bound
        Case {
            src: r#"route { $var(i) = 0; while ($var(i) < 3) { $var(i) = $var(i) + 1; } xlog("$var(i)"); }"#,
            rets: &[],
            want: End,
            log: &["ERROR: 3"],
        },
        Case {
            src: r#"route { $var(i) = 0; while (1) { $var(i) = $var(i) + 1; if ($var(i) == 5) break; } xlog("$var(i)"); }"#,
            rets: &[],
            want: End,
            log: &["ERROR: 5"],
        },
        Case {
            src: r#"route { while (1) { } xlog("$rc"); }"#,
            rets: &[],
            want: End,
            log: &[
                "ERROR: s.cfg:1:9: runaway while: more than 100 loops (max_while_loops)",
                "ERROR: -1",
            ],
        },
        // message pseudo-variables
        Case {
            src: r#"route { $du = "sip:10.0.0.1:5070"; $rU = $null; xlog("$du"); }"#,
            rets: &[],
            want: End,
            log: &[
                "set $du=sip:10.0.0.1:5070",
                "set $rU=<null>",
                "ERROR: sip:10.0.0.1:5070",
            ],
        },
        Case {
            src: r#"route { if (uri == myself) xlog("me"); if (src_ip != myself) xlog("not me"); if (method == "INVITE") xlog("inv"); }"#,
            rets: &[("IsMyself", Ret::False)],
            want: End,
            log: &[
                r#"IsMyself("sip:bob@example.com")"#,
                r#"IsMyself("10.0.0.9")"#,
                "ERROR: not me",
                "ERROR: inv",
            ],
        },
        // dynamic arguments are checked when they are known
        Case {
            src: r#"route { $var(c) = "abc"; sl_send_reply("$var(c)", "x"); xlog("$rc"); $var(c) = 404; sl_send_reply($var(c), "Not $rU"); }"#,
            rets: &[],
            want: End,
            log: &[
                "ERROR: s.cfg:1:26: invalid reply code 'abc': must be 100..699",
                "ERROR: -1",
                r#"SlSendReply { code: 404, reason: "Not <null>" }"#,
            ],
        },
        Case {
            src: r#"route { $var(h) = "10.0.0.7"; forward($var(h), 5080); t_relay("tcp:$var(h):5061"); t_relay_to_udp("h", "5062"); forward_tcp("h"); }"#,
            rets: &[],
            want: End,
            log: &[
                r#"Forward(Some(Dest { proto: None, host: "10.0.0.7", port: Some(5080) }))"#,
                r#"TRelay(Some(Dest { proto: Some(Tcp), host: "10.0.0.7", port: Some(5061) }))"#,
                r#"TRelay(Some(Dest { proto: Some(Udp), host: "h", port: Some(5062) }))"#,
                r#"Forward(Some(Dest { proto: Some(Tcp), host: "h", port: None }))"#,
            ],
        },
        // sip_trace forms
        Case {
            src: r#"route { sip_trace(); sip_trace("sip:10.0.0.2:9060"); sip_trace("sip:h", "$ci", "t"); sip_trace("", "", "m"); }"#,
            rets: &[],
            want: End,
            log: &[
                "SipTrace { dest: None, correlation_id: None, mode: None }",
                r#"SipTrace { dest: Some(Target(DupTarget { host: "10.0.0.2", port: 9060, transport: Udp })), correlation_id: None, mode: None }"#,
                r#"SipTrace { dest: Some(Target(DupTarget { host: "h", port: 5060, transport: Udp })), correlation_id: Some("abc@h"), mode: Some(Transaction) }"#,
                "SipTrace { dest: None, correlation_id: None, mode: Some(Message) }",
            ],
        },
        // dialog mode, and sip_trace_mode() (docs/decisions.md §16)
        Case {
            src: r#"route { sip_trace("", "", "d"); sip_trace_mode("D"); sip_trace_mode("t"); }"#,
            rets: &[],
            want: End,
            log: &[
                "SipTrace { dest: None, correlation_id: None, mode: Some(Dialog) }",
                "SipTrace { dest: None, correlation_id: None, mode: Some(Dialog) }",
                "SipTrace { dest: None, correlation_id: None, mode: Some(Transaction) }",
            ],
        },
        // other builtins pass through typed
        Case {
            src: r#"route { mf_process_maxfwd_header("10"); record_route(); append_hf("X-Call: $ci\r\n"); remove_hf("Route"); is_present_hf("Via"); t_newtran(); t_reply(486, "Busy"); t_release(); sl_reply_error(); t_is_canceled(); }"#,
            rets: &[],
            want: End,
            log: &[
                "MaxFwd { value: 10, max_limit: 256 }",
                "RecordRoute",
                r#"AppendHf("X-Call: abc@h\r\n")"#,
                r#"RemoveHf("Route")"#,
                r#"IsPresentHf("Via")"#,
                "TNewTran",
                r#"TReply { code: 486, reason: "Busy" }"#,
                "TRelease",
                "SlReplyError",
                "TIsCanceled",
            ],
        },
    ];
    let mut bad = Vec::new();
    for c in &cases {
        let p = compile(c.src);
        let mut host = Fake {
            pvs: pvs(),
            rets: c.rets.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            ..Fake::default()
        };
        let mut st = MsgState::default();
        let mut vars = Vars::default();
        let got = p.run(p.request_route(), &mut st, &mut vars, &mut host);
        if got != c.want || host.log != c.log {
            bad.push(format!(
                "{}\n  got: {got:?} {:?}\n want: {:?} {:?}",
                c.src, host.log, c.want, c.log
            ));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn state_outlives_the_run() {
    let p = compile(
        r#"route { $var(n) = $var(n) + 1; $avp(u) = "sip:a@x"; $avp(u) = "sip:b@x"; setflag(22); t_on_failure("F"); xlog("$var(n)"); }
           failure_route[F] { if (isflagset(22)) xlog("traced $avp(u)"); }"#,
    );
    let mut vars = Vars::default();
    let mut host = Fake::default();
    let mut st = MsgState::default();
    p.run(p.request_route(), &mut st, &mut vars, &mut host);
    assert_eq!(st.flags, 1 << 22);
    let u = AvpName::Str("u".into());
    let vals: Vec<String> = st.avps.values(&u).map(|v| v.to_string()).collect();
    assert_eq!(vals, ["sip:b@x", "sip:a@x"]);
    let f = p.route_id(RouteKind::Failure, "F").unwrap();
    assert_eq!(host.log[0], format!("TOnFailure({f:?})"));
    // The caller carries st on to the failure route; $var persists across messages.
    p.run(f, &mut st, &mut vars, &mut host);
    let mut st2 = MsgState::default();
    p.run(p.request_route(), &mut st2, &mut vars, &mut host);
    assert_eq!(
        host.log[1..],
        [
            "ERROR: 1",
            "ERROR: traced sip:b@x",
            &format!("TOnFailure({f:?})"),
            "ERROR: 2"
        ]
    );
    assert_eq!(p.route_name(f), "F");
    assert_eq!(p.route_name(p.request_route()), "request_route");
    assert_eq!(p.route_kind(f), Some(RouteKind::Failure));
}

#[test]
fn recursion_is_bounded() {
    let p = compile("route { route(R); xlog(\"back $rc\"); } route[R] { route(R); }");
    let mut host = Fake::default();
    let out = p.run(
        p.request_route(),
        &mut MsgState::default(),
        &mut Vars::default(),
        &mut host,
    );
    assert_eq!(out, Outcome::End);
    assert_eq!(
        host.log,
        [
            "ERROR: route(R): more than 100 nested route calls, giving up",
            "ERROR: back 1"
        ]
    );
}

#[test]
fn routes_exposed() {
    let p = compile(
        "request_route { exit; } reply_route { exit; } onsend_route { exit; } onreply_route[R] {} branch_route[B] {} event_route[tm:local-request] {}",
    );
    assert!(p.onreply_route().is_some() && p.onsend_route().is_some());
    assert!(p.route_id(RouteKind::OnReply, "R").is_some());
    assert!(p.route_id(RouteKind::Branch, "B").is_some());
    assert!(p.route_id(RouteKind::Event, "tm:local-request").is_some());
    assert!(p.route_id(RouteKind::Failure, "B").is_none());
    let on = p.onreply_route().unwrap();
    assert_eq!(
        p.run(
            on,
            &mut MsgState::default(),
            &mut Vars::default(),
            &mut Fake::default()
        ),
        Outcome::Exit
    );
}

#[test]
fn compile_errors() {
    let cases: &[(&str, &str)] = &[
        (
            "route { route(NOPE); }",
            "s.cfg:1:15: route[NOPE] is not defined",
        ),
        (
            "route { route($var(x)); }",
            "s.cfg:1:15: the route name must be written as a constant",
        ),
        (
            r#"route { t_on_failure("X"); }"#,
            "s.cfg:1:22: t_on_failure(): failure_route[X] is not defined",
        ),
        (
            r#"route { t_on_reply("X"); } failure_route[X] {}"#,
            "s.cfg:1:20: t_on_reply(): onreply_route[X] is not defined",
        ),
        (
            r#"route { sl_send_reply("abc", "x"); }"#,
            "s.cfg:1:23: sl_send_reply(): invalid reply code 'abc': must be 100..699",
        ),
        (
            r#"route { t_reply(700, "x"); }"#,
            "s.cfg:1:17: t_reply(): invalid reply code '700': must be 100..699",
        ),
        (
            r#"route { mf_process_maxfwd_header("x"); }"#,
            "s.cfg:1:34: mf_process_maxfwd_header(): the value must be a number from 1 to 256 (maxfwd max_limit)",
        ),
        (
            r#"route { mf_process_maxfwd_header(0); }"#,
            "s.cfg:1:34: mf_process_maxfwd_header(): the value must be a number from 1 to 256 (maxfwd max_limit)",
        ),
        (
            "route { setflag(40); }",
            "s.cfg:1:17: setflag(): the flag must be a constant from 0 to 31",
        ),
        (
            "route { isflagset($var(f)); }",
            "s.cfg:1:19: isflagset(): the flag must be a constant from 0 to 31",
        ),
        (
            "route { foo(); }",
            "s.cfg:1:9: unknown function 'foo' (not a core function nor one of a supported module)",
        ),
        (
            "route { t_relay(1, 2, 3); }",
            "s.cfg:1:9: t_relay() takes 0 to 2 arguments, 3 given",
        ),
        (
            "route { has_totag(1); }",
            "s.cfg:1:9: has_totag() takes 0 arguments, 1 given",
        ),
        (
            "route { is_method(); }",
            "s.cfg:1:9: is_method() takes 1 argument, 0 given",
        ),
        (
            r#"route { $rm = "x"; }"#,
            "s.cfg:1:9: $rm is read-only; the writable ones are $ru $rU $rd $rp $du",
        ),
        (r#"route { $null = 1; }"#, "s.cfg:1:9: $null is read-only"),
        (
            r#"route { $(avp(x)[1]) = 1; }"#,
            "s.cfg:1:9: cannot assign to an indexed AVP ($(avp(x)[1])); assign to the AVP itself",
        ),
        (
            "route { $var(x) = $(ru{s.len}); }",
            "s.cfg:1:19: transformations such as {s.len} are not supported ($(ru{s.len}))",
        ),
        (
            "route { $var(x) = $foo; }",
            "s.cfg:1:19: unknown pseudo-variable '$foo'",
        ),
        (
            "route { $var(x) = $(rm[0]); }",
            "s.cfg:1:19: an index is only supported on $avp ($(rm[0]))",
        ),
        (
            "route { $avp(i:x) = 1; }",
            "s.cfg:1:9: invalid AVP name 'i:x': expected i:NUMBER, s:NAME or NAME",
        ),
        (
            r#"route { xlog("L_FOO", "x"); }"#,
            "s.cfg:1:14: xlog(): unknown level 'L_FOO': use L_ALERT, L_BUG, L_CRIT, L_ERR, L_WARN, L_NOTICE, L_INFO or L_DBG",
        ),
        (
            r#"route { xlog("x $nope y"); }"#,
            "s.cfg:1:14: xlog(): unknown pseudo-variable '$nope'",
        ),
        (
            r#"route { xlog($rm); }"#,
            "s.cfg:1:14: xlog(): the format must be a string literal",
        ),
        (
            "route { if (x == 1) exit; }",
            "s.cfg:1:13: unknown name 'x' (missing '$' or quotes?)",
        ),
        (
            "route { if (myself) exit; }",
            "s.cfg:1:13: 'myself' can only be compared with == or !=",
        ),
        (
            r#"route { if ($rm =~ "(") exit; }"#,
            "s.cfg:1:20: invalid regular expression \"(\": found open group without closing ')'",
        ),
        (
            r#"route { sip_trace("http://x"); }"#,
            "s.cfg:1:19: sip_trace(): duplicate URI 'http://x' is not a sip: URI; write it as sip:host[:port][;transport=tcp]",
        ),
        (
            r#"route { sip_trace("sips:127.0.0.1:5061"); }"#,
            "s.cfg:1:19: sip_trace(): duplicate URI 'sips:127.0.0.1:5061': sips: asks for TLS, which copies are not sent over; write it as sip:host[:port] (transport udp or tcp)",
        ),
        (
            r#"route { sip_trace("sip:10.0.0.1;transport=tls"); }"#,
            "s.cfg:1:19: sip_trace(): duplicate URI 'sip:10.0.0.1;transport=tls': transport 'tls' is not supported for duplicates; use transport=udp (the default) or transport=tcp",
        ),
        (
            r#"route { forward("sctp:10.0.0.1"); }"#,
            "s.cfg:1:17: forward(): protocol 'sctp' is not served by siptraced (udp, tcp and tls are)",
        ),
        (
            r#"route { sip_trace("", "", "mt"); }"#,
            "s.cfg:1:27: sip_trace(): invalid mode \"mt\": expected \"m\" (message), \"t\" (transaction) or \"d\" (dialog)",
        ),
        (
            r#"route { sip_trace_mode("x"); }"#,
            "s.cfg:1:24: sip_trace_mode(): invalid mode \"x\": expected \"m\" (message), \"t\" (transaction) or \"d\" (dialog)",
        ),
        (
            r#"route { is_method("INV ITE|"); }"#,
            "s.cfg:1:19: is_method(): invalid method name 'INV ITE' in \"INV ITE|\"",
        ),
        (
            r#"route { remove_hf("Via:"); }"#,
            "s.cfg:1:19: remove_hf(): invalid header name 'Via:'",
        ),
        (
            r#"route { forward("h:99999"); }"#,
            "s.cfg:1:17: forward(): port 99999 out of range 1..65535",
        ),
        (
            r#"route { forward("h", "x"); }"#,
            "s.cfg:1:22: forward(): invalid port 'x': must be 1..65535",
        ),
        (
            r#"route { t_relay("1"); }"#,
            "s.cfg:1:17: t_relay(): '1' looks like t_relay flags, which are not supported; give \"proto:host:port\"",
        ),
        (
            "route { exit; } route[A] {} route[A] {}",
            "s.cfg:1:29: route[A] is defined twice (first at s.cfg:1:17)",
        ),
        (
            "route { exit; } request_route { exit; }",
            "s.cfg:1:17: request_route is defined twice (first at s.cfg:1:1)",
        ),
        (
            "route[A] { exit; }",
            "s.cfg:1:1: no request_route { … } (or route { … }) block: nothing would handle requests",
        ),
        // several at once
        (
            "route { foo(); setflag(99); route(X); }",
            "s.cfg:1:9: unknown function 'foo' (not a core function nor one of a supported module)\ns.cfg:1:24: setflag(): the flag must be a constant from 0 to 31\ns.cfg:1:35: route[X] is not defined",
        ),
    ];
    let mut bad = Vec::new();
    for (src, want) in cases {
        let got = match compile_with(src, &all_modules()) {
            Ok(_) => "ok".to_string(),
            Err(e) => e,
        };
        if got != *want {
            bad.push(format!("{src}\n  got: {got:?}\n want: {want:?}"));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn functions_need_their_module() {
    let env = CompileEnv {
        modules: vec!["sl".into()],
        max_while_loops: 100,
        maxfwd_max_limit: 70,
    };
    let err = compile_with(
        "route { t_relay(); sl_send_reply(404, \"x\"); mf_process_maxfwd_header(10); }",
        &env,
    )
    .unwrap_err();
    assert_eq!(
        err,
        "s.cfg:1:9: function 't_relay' needs module tm: add loadmodule \"tm.so\"\ns.cfg:1:45: function 'mf_process_maxfwd_header' needs module maxfwd: add loadmodule \"maxfwd.so\""
    );
    let env = CompileEnv {
        modules: vec!["maxfwd".into()],
        ..env
    };
    let err = compile_with("route { mf_process_maxfwd_header(71); }", &env).unwrap_err();
    assert_eq!(
        err,
        "s.cfg:1:34: mf_process_maxfwd_header(): the value must be a number from 1 to 70 (maxfwd max_limit)"
    );
}

#[test]
fn realistic_config_runs() {
    let src = include_str!("../cfg/testdata/stateful-proxy.cfg");
    let p = compile(src);
    // An initial INVITE: maxfwd ok, not CANCEL, not ACK, no to-tag, R-URI user present.
    let mut host = Fake {
        pvs: pvs(),
        ..Fake::default()
    };
    host.pvs.insert(MsgPv::RUser, Value::Str("bob".into()));
    host.rets.insert("HasTotag".into(), Ret::False);
    host.rets.insert("IsMethod".into(), Ret::False);
    host.rets.insert("IsMyself".into(), Ret::False);
    let mut st = MsgState::default();
    let out = p.run(p.request_route(), &mut st, &mut Vars::default(), &mut host);
    assert_eq!(out, Outcome::Exit);
    assert!(st.flag(22));
    let calls: Vec<&str> = host
        .log
        .iter()
        .map(|s| s.split(['(', ' ']).next().unwrap_or(""))
        .collect();
    assert_eq!(
        calls,
        [
            "MaxFwd",
            "IsMethod",
            "IsMethod",
            "IsMethod",
            "TCheckTrans",
            "HasTotag",
            "RemoveHf",
            "IsMethod",
            "SipTrace",
            "IsMethod",
            "IsMethod",
            "IsMethod",
            "TRelay"
        ],
        "{:?}",
        host.log
    );
}
