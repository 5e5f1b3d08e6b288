//! SIP messages as data for a stateless or stateful proxy: a lenient
//! byte-level scanner that keeps each message exactly as received
//! ([`SipMsg`]), accessors over its header index, typed decoders on
//! demand ([`Uri`], [`Via`], [`NameAddr`]), the grammar checks that earn a
//! 400 ([`SipMsg::validate`]), byte-preserving edits for relaying, the
//! replies/ACK/CANCEL the proxy writes itself, stateless branch ids and
//! TCP framing, and the crate's one transport type and address grammar
//! ([`Transport`], [`HostPort`], [`UriTarget`]). No sockets, no clock, no
//! logging; never panics on input.
//! Std only: rsip is deliberately not the gate (docs/decisions.md §6).
//!
//! Files: `msg` (scanner, index, accessors), `lex` (character classes,
//! lists, params), `uri`, `via`, `nameaddr`, `check` (validate), `edit`,
//! `reply`, `branch`, `frame`, `stream` (one connection's read
//! buffer and write queue), `transport`, `hostport` (addresses people
//! write: config, script arguments, URLs).

mod branch;
mod check;
mod edit;
mod frame;
mod hostport;
mod lex;
mod msg;
mod nameaddr;
mod reply;
pub mod stream;
mod transport;
mod uri;
mod via;

#[cfg(test)]
mod torture;

pub use branch::stateless_branch;
pub use check::Malformed;
pub use edit::EditError;
pub use frame::{MAX_STREAM_MESSAGE, frame_len, keepalive_len};
pub use hostport::{AddrError, Host, HostPort, ListenForm, ListenFormError, UriTarget, parse_port};
pub(crate) use msg::HeaderLines;
pub use msg::{BodyFraming, HeaderKind, MaxForwards, ParseError, SipMsg, StartLineIssue};
pub use nameaddr::{NameAddr, NameAddrError};
pub use reply::{BuildError, build_ack_for_non2xx, build_cancel, build_reply};
pub use transport::{Transport, TransportError, Unserved};
pub use uri::{Scheme, Uri, UriError};
pub use via::{DEFAULT_PORT, DEFAULT_TLS_PORT, MAGIC_COOKIE, Via, ViaError};
