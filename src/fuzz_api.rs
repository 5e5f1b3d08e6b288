//! Entry points for the cargo-fuzz targets in `fuzz/` (issue 12, item 6).
//!
//! The parsers and edits the targets drive are `pub(crate)` so that the
//! library's public surface stays what the binary and the tests need; this
//! facade forwards to them instead of widening each one. Not an API: hidden
//! from the docs, and nothing but `fuzz/` may call it.

use std::io;
use std::net::IpAddr;
use std::path::Path;

use crate::cfg::{Cfg, Defines, Diagnostic};
use crate::db::Row;
use crate::mi::json::Json;
use crate::mi::jsonrpc::{Frame, JsonFramer};
use crate::mi::text::TextReader;
use crate::sip::{EditError, Malformed, MaxForwards, ParseError, SipMsg};
use crate::spool::record;
use crate::trace::hep::{self, HepError, HepPacket};

/// [`SipMsg::parse_to_answer`]: keeps a truncated body so a 400 can be built.
pub fn parse_to_answer(bytes: &[u8]) -> Result<SipMsg, ParseError> {
    SipMsg::parse_to_answer(bytes)
}

/// What the proxy checks before relaying.
pub fn validate(m: &SipMsg) -> Result<(), Malformed> {
    m.validate()
}

/// Calls every read accessor the proxy, the script and the tracer use, so
/// that a panic in any of them on a scanned message is found.
pub fn read_all(m: &SipMsg) {
    let _ = (m.is_request(), m.method(), m.method_or_cseq(), m.version());
    let _ = (m.status(), m.reason(), m.reason_str(), m.start_line());
    let _ = (m.request_uri_bytes(), m.request_uri(), m.start_line_issue());
    if let Some(u) = m.request_uri() {
        if let Ok(uri) = crate::sip::Uri::parse(u) {
            let _ = (uri.user(), uri.password(), uri.host(), uri.port());
            let _ = (uri.host_unbracketed(), uri.headers(), uri.has_lr());
            let _ = uri.params().count();
            let _ = crate::sip::UriTarget::parse(u);
        }
    }
    let _ = (m.call_id(), m.call_id_str(), m.cseq(), m.cseq_method());
    let _ = (
        m.from_tag(),
        m.to_tag(),
        m.has_totag(),
        m.from_uri(),
        m.to_uri(),
    );
    if let Some(f) = m.from() {
        let _ = (f.tag(), f.uri_str(), f.check_strict());
    }
    if let Some(t) = m.to() {
        let _ = (t.tag(), t.uri_str(), t.check_strict());
    }
    let _ = (m.content_length(), m.body_framing(), m.body().len());
    let _ = (m.user_agent(), m.server(), m.discarded_trailing());
    let _: MaxForwards = m.max_forwards();
    for v in m.via_values() {
        for part in std::iter::once(v).chain(v.split(|&b| b == b',')) {
            if let Ok(via) = crate::sip::Via::parse_bytes(part) {
                let _ = (via.branch(), via.received(), via.rport(), via.maddr());
                let _ = (via.ttl(), via.has_rfc3261_branch(), via.response_addr());
                let _ = (via.host_unbracketed(), via.params().count());
            }
        }
    }
    let _ = m.top_via();
    let _ = m.route_values().count() + m.record_route_values().count();
    for v in m.contact_values() {
        let _ = crate::sip::NameAddr::parse(v).map(|n| n.check_strict());
    }
    for (name, value) in m.header_lines() {
        let _ = (name.len(), value.len());
        let _ = std::str::from_utf8(name).map(|n| m.header_str(n));
    }
    let _ = m.header_str("Subject");
    let _ = crate::sip::stateless_branch(m, b"salt");
}

/// The edits of `src/sip/edit.rs`, by name.
pub fn push_via(m: &mut SipMsg, v: &str) -> Result<(), EditError> {
    m.push_via(v)
}
pub fn pop_top_via(m: &mut SipMsg) -> Result<bool, EditError> {
    m.pop_top_via()
}
pub fn remove_first_route(m: &mut SipMsg) -> Result<bool, EditError> {
    m.remove_first_route()
}
pub fn set_via_received(m: &mut SipMsg, ip: IpAddr, port: u16) -> Result<bool, EditError> {
    m.set_via_received(ip, port)
}
pub fn set_request_uri(m: &mut SipMsg, uri: &str) -> Result<(), EditError> {
    m.set_request_uri(uri)
}
pub fn insert_header_top(m: &mut SipMsg, name: &str, value: &str) -> Result<(), EditError> {
    m.insert_header_top(name, value)
}
pub fn append_header(m: &mut SipMsg, line: &str) -> Result<(), EditError> {
    m.append_header(line)
}
pub fn remove_header(m: &mut SipMsg, name: &str) -> Result<usize, EditError> {
    m.remove_header(name)
}
pub fn set_max_forwards(m: &mut SipMsg, n: u8) -> Result<(), EditError> {
    m.set_max_forwards(n)
}

/// [`TextReader`]'s answer to an `OpenReply` event.
pub fn mi_reply_opened(r: &mut TextReader, opened: bool) {
    r.reply_opened(opened)
}

pub fn json_framer_next(f: &mut JsonFramer) -> Option<Frame> {
    f.next_frame()
}

pub fn json_to_compact(j: &Json) -> Vec<u8> {
    j.to_compact()
}

pub fn json_to_pretty(j: &Json) -> Vec<u8> {
    j.to_pretty()
}

/// [`crate::cfg`]'s string entry point: `loader` stands in for the disk.
pub fn cfg_parse_with(
    name: &str,
    text: &str,
    defines: Defines<'_>,
    loader: &mut dyn FnMut(&Path) -> io::Result<String>,
) -> Result<Cfg, Vec<Diagnostic>> {
    crate::cfg::parse_with(name, text, defines, loader)
}

/// The spool record codec and scanner.
pub mod spool {
    use super::*;
    pub use crate::spool::record::{Flaw, HeaderState, Scan};
    pub const HEADER_LEN: usize = record::HEADER_LEN;
    pub const FRAME_OVERHEAD: usize = record::FRAME_OVERHEAD;
    pub fn scan(buf: &[u8], start: usize, after_seq: u64) -> Scan {
        record::scan(buf, start, after_seq)
    }
    pub fn decode(payload: &[u8]) -> Result<(u64, Row), Flaw> {
        record::decode(payload)
    }
    pub fn encode(seq: u64, row: &Row, out: &mut Vec<u8>) {
        record::encode(seq, row, out)
    }
    pub fn encoded_len(row: &Row) -> usize {
        record::encoded_len(row)
    }
    pub fn header_state(buf: &[u8]) -> HeaderState {
        record::header_state(buf)
    }
}

/// The HEP encoders and the IP protocol number they write.
pub mod hep_enc {
    use super::*;
    pub fn v1(p: &HepPacket<'_>) -> Result<Vec<u8>, HepError> {
        hep::encode_v1(p)
    }
    pub fn v2(p: &HepPacket<'_>) -> Result<Vec<u8>, HepError> {
        hep::encode_v2(p)
    }
    pub fn v3(p: &HepPacket<'_>) -> Result<Vec<u8>, HepError> {
        hep::encode_v3(p)
    }
    pub fn ip_proto(t: crate::sip::Transport) -> u8 {
        hep::ip_proto(t)
    }
}
