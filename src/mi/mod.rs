//! The control plane as data: the MI FIFO text protocol ([`text`]), JSON values as
//! Kamailio prints them ([`json`]), JSON-RPC over FIFO ([`jsonrpc`]) and the one command
//! table both protocols share ([`commands`]).
//!
//! Everything here is pure: bytes and a [`commands::MiHost`] in, reply bytes out. The
//! reactor owns the FIFO file descriptors, opens reply FIFOs (5 tries, 80 ms apart),
//! reads the clock and passes `now` to [`jsonrpc::JsonFramer`]. Nothing here does I/O,
//! reads a clock, or depends on other siptraced modules.
//!
//! MI FIFO, per request:
//! 1. `TextReader::push(bytes)`; loop on `TextReader::next(&|c| commands::text_kind(host, c))`.
//! 2. `OpenReply { path, .. }`: open it, then `reader.reply_opened(ok)`.
//! 3. `Request(req)`: write `commands::handle_text(host, &req, reply_indent)` to the open
//!    reply FIFO and close it. `Rejected(r)`: log `r`.
//!
//! JSON-RPC FIFO, per read: `JsonFramer::push(bytes, now)`; for each
//! `Frame::Document(d)` from `next_frame()` call
//! `commands::handle_jsonrpc(host, &d, pretty_format)`; if the outcome has a reply, open
//! `text::reply_path(fifo_reply_dir, &reply_name)` (same 5 tries) and write it; log any
//! notice and every `Frame::Dropped`. Arm a timer at `JsonFramer::poll_timeout()` and
//! call `handle_timeout(now)` then.

pub mod commands;
pub mod json;
pub mod jsonrpc;
pub mod text;
