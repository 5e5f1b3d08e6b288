//! siptraced: a SIP proxy and tracer driven like Kamailio's siptrace.
//!
//! Code map (see ARCHITECTURE.md for the invariants):
//! - `cli`       command line, kamailio-like flags (pure)
//! - `cfg`       kamailio.cfg syntax: lexer, preprocessor, parser (pure)
//! - `config`    lowering of the syntax tree to a typed `Config`: values parsed and
//!   checked once, at load; the defaults of every configuration parameter
//! - `script`    route blocks compiled once and interpreted per message against a `Host`
//! - `sip`       lenient SIP scanner and in-place edits; the one `Transport` type and
//!   address grammar (pure)
//! - `core`      the proxy: implements the script `Host`, decides sends and trace events
//!   (no sockets; names are looked up as effects, answered by `on_resolved`)
//! - `trace`     which rows an event yields and what they say; mirrored copies, HEP encoders
//! - `db`        synchronous row stores chosen by URL scheme
//! - `spool`     durable local spool and the DB edge: write, spool, replay once, in order
//! - `mi`        MI FIFO text protocol and JSON-RPC codecs, command table (pure)
//! - `tsx`       RFC 3261 transaction state machines (pure, handed the time)
//! - `reactor`   the one owner of mio::Poll, the main clock reader, FIFOs, the turn's rows
//! - `transport` UDP listeners, TCP connections to capture nodes, the resolver thread
//! - `process`   logging, daemonising, pid file, privilege drop
//! - `clock`     wall-clock values and their local-time renderings
//! - `limits`    the bounds on peer-driven state, their values and hit counters (pure)
//! - `inspect`   the `siptrace` tool (src/bin/siptrace.rs): read-only search, ladder,
//!   pcap export over the table

// The module docs are a maintainer's map: they link to crate-internal items
// on purpose (read them with `cargo doc --document-private-items`).
#![allow(rustdoc::private_intra_doc_links)]

pub mod cfg;
pub mod cli;
pub mod clock;
pub mod config;
pub mod core;
pub mod daemon;
pub mod db;
#[doc(hidden)]
pub mod fuzz_api;
#[cfg(feature = "inspect")]
pub mod inspect;
pub mod limits;
pub mod metrics;
pub mod mi;
pub mod process;
pub mod reactor;
pub mod script;
pub mod sip;
pub mod spool;
pub mod trace;
pub mod transport;
pub mod tsx;

/// The version string shown by `-V`, MI `version` and `core.version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
