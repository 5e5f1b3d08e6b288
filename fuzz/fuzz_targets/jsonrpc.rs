// Checks the JSON-RPC FIFO codecs (src/mi/json.rs, src/mi/jsonrpc.rs): the
// framer splits any byte stream the same way however it was read; the JSON
// parser never panics (nor overflows the stack) on any bytes; whatever it
// parses, both printers write JSON that reads back as the same value; and
// every reply `process` builds, for any document and any method result, is
// JSON our own parser (and so srjson's clients) can read.
//
// Input: the first byte's low bit chooses pretty printing; the rest is the
// FIFO stream.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use siptraced::fuzz_api as f;
use siptraced::mi::json::{self, Json};
use siptraced::mi::jsonrpc::{self, Dispatch, Frame, JsonFramer, Params, RpcResult};

/// Methods whose name starts with `x` do not exist; the others echo their
/// parameters, or fault with the first one as message when named `fault`.
struct Echo;

impl Dispatch for Echo {
    fn exists(&self, method: &[u8]) -> bool {
        method.first() != Some(&b'x')
    }

    fn call(&mut self, method: &[u8], params: &Params<'_>) -> RpcResult {
        let items: Vec<Json> = (0..params.len())
            .filter_map(|i| params.get(i).cloned())
            .collect();
        if method == b"fault" {
            let message = items
                .first()
                .and_then(Json::as_bytes)
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            let code = items.len() as i32 - 2;
            RpcResult::fault(code, &message)
        } else {
            RpcResult::Ok(Json::Arr(items))
        }
    }
}

fn frames(stream: &[u8], bytewise: bool, now: Instant) -> Vec<Frame> {
    let mut fr = JsonFramer::new();
    if bytewise {
        for b in stream {
            fr.push(std::slice::from_ref(b), now);
        }
    } else {
        fr.push(stream, now);
    }
    std::iter::from_fn(|| f::json_framer_next(&mut fr)).collect()
}

/// What a printer wrote parses back to the same value. Numbers are only
/// compared as numbers: srjson's printer rounds (`%.6f`, `%e`, `%.0f`) and
/// its parser accumulates digits in a double, both faithfully copied, so a
/// number need not survive the trip exactly (nor a non-finite one, printed
/// `null`). Strings, names and structure must.
fn same(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Int(_) | Json::Float(_), Json::Int(_) | Json::Float(_)) => true,
        (Json::Float(x), Json::Null) => !x.is_finite(),
        (Json::Arr(x), Json::Arr(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Json::Obj(x), Json::Obj(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((ka, a), (kb, b))| ka == kb && same(a, b))
        }
        _ => a == b,
    }
}

fn prints_back(v: &Json) {
    for (name, print) in [
        ("compact", f::json_to_compact as fn(&Json) -> Vec<u8>),
        ("pretty", f::json_to_pretty),
    ] {
        let text = print(v);
        let again = json::parse(&text).unwrap_or_else(|e| {
            panic!(
                "{name} output does not parse ({e}): {}",
                String::from_utf8_lossy(&text)
            )
        });
        assert!(
            same(v, &again),
            "{name} output reads back differently:\n{v:?}\n{again:?}\n{}",
            String::from_utf8_lossy(&text)
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, stream)) = data.split_first() else {
        return;
    };
    let pretty = ctl & 1 == 1;

    if let Ok(v) = json::parse(stream) {
        prints_back(&v);
    }

    let now = Instant::now();
    let docs = frames(stream, false, now);
    assert_eq!(
        docs,
        frames(stream, true, now),
        "framing depends on read sizes"
    );
    for fr in docs {
        let Frame::Document(doc) = fr else { continue };
        assert!(
            doc.starts_with(b"{") && doc.ends_with(b"}"),
            "document not braced"
        );
        if let Ok(v) = json::parse(&doc) {
            prints_back(&v);
        }
        let out = jsonrpc::process(&doc, pretty, &mut Echo);
        assert_eq!(
            out.reply.is_some(),
            out.reply_name.is_some(),
            "reply without a name or name without a reply"
        );
        if let Some(reply) = out.reply {
            let v = json::parse(&reply).unwrap_or_else(|e| {
                panic!(
                    "reply does not parse ({e}): {}",
                    String::from_utf8_lossy(&reply)
                )
            });
            assert_eq!(
                v.get("jsonrpc").and_then(Json::as_bytes),
                Some(b"2.0".as_slice())
            );
            prints_back(&v);
        }
    }
});
