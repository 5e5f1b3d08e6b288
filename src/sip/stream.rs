//! One SIP stream connection's bytes as data (RFC 3261 §18.3): the read
//! side cut into messages by [`frame_len`] (Content-Length framing,
//! keep-alive CRLFs), the write side a bounded queue. Pure: the transport
//! reads and writes the socket and hands the bytes in and out; nothing
//! here knows a file descriptor or the clock.
//!
//! Bounds: the read buffer never holds more than [`READ_BUFFER_MAX`]
//! bytes (the largest message plus one, so that a message one byte too
//! long is detected rather than waited for); the write queue refuses what
//! would take it past the cap it was made with.

use super::frame::{MAX_STREAM_MESSAGE, frame_len, keepalive_len};
use super::msg::ParseError;
use std::collections::VecDeque;

/// The read buffer's cap: one maximal message and one byte more.
pub const READ_BUFFER_MAX: usize = MAX_STREAM_MESSAGE + 1;

/// What the read side yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framed {
    /// One whole message (leading keep-alive CRLFs removed).
    Message(Vec<u8>),
    /// A `CRLFCRLF` keep-alive ping: answer `CRLF` (RFC 5626 §3.5.1).
    Ping,
}

/// Why a stream cannot be read on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// Headers complete but no Content-Length: answer 400 from `head`
    /// (the header section) and close (RFC 3261 §18.3).
    #[error("message without Content-Length on a stream")]
    Unframed { head: Vec<u8> },
    /// Any other framing error (too large, bad Content-Length): close.
    #[error("{0}")]
    Bad(ParseError),
}

/// The read side of one connection.
#[derive(Debug, Default)]
pub struct StreamReader {
    buf: Vec<u8>,
}

impl StreamReader {
    /// Bytes that may be appended now without passing [`READ_BUFFER_MAX`].
    pub fn room(&self) -> usize {
        READ_BUFFER_MAX.saturating_sub(self.buf.len())
    }

    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Appends what was read; never more than [`StreamReader::room`].
    pub fn push(&mut self, data: &[u8]) {
        let n = data.len().min(self.room());
        self.buf.extend_from_slice(&data[..n]);
    }

    /// The next message or ping, `Ok(None)` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Framed>, StreamError> {
        let ka = keepalive_len(&self.buf);
        if ka == self.buf.len() {
            if self.buf.starts_with(b"\r\n\r\n") {
                self.buf.drain(..4);
                return Ok(Some(Framed::Ping));
            }
            // Lone CRLFs (a pong, or half a ping): kept until the next
            // bytes say which; never more than a few.
            if ka > 4 {
                self.buf.clear();
            }
            return Ok(None);
        }
        if ka >= 4 && self.buf.starts_with(b"\r\n\r\n") {
            self.buf.drain(..4);
            return Ok(Some(Framed::Ping));
        }
        match frame_len(&self.buf) {
            Ok(None) => Ok(None),
            Ok(Some(n)) => {
                let msg = self.buf[ka..n].to_vec();
                self.buf.drain(..n);
                Ok(Some(Framed::Message(msg)))
            }
            Err(ParseError::MissingContentLength) => {
                let b = &self.buf[ka..];
                let end = find(b, b"\r\n\r\n")
                    .map(|i| i + 4)
                    .or_else(|| find(b, b"\n\n").map(|i| i + 2))
                    .unwrap_or(b.len());
                Err(StreamError::Unframed {
                    head: b[..end].to_vec(),
                })
            }
            Err(e) => Err(StreamError::Bad(e)),
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The write side of one connection: messages waiting for the socket,
/// at most `cap` bytes in all.
#[derive(Debug)]
pub struct WriteQueue {
    chunks: VecDeque<Vec<u8>>,
    /// Bytes of the front chunk already written.
    offset: usize,
    bytes: usize,
    cap: usize,
}

/// The queue would pass its cap: the message was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFull;

impl WriteQueue {
    pub fn new(cap: usize) -> WriteQueue {
        WriteQueue {
            chunks: VecDeque::new(),
            offset: 0,
            bytes: 0,
            cap,
        }
    }

    pub fn push(&mut self, data: Vec<u8>) -> Result<(), QueueFull> {
        if self.bytes + data.len() > self.cap {
            return Err(QueueFull);
        }
        self.bytes += data.len();
        if !data.is_empty() {
            self.chunks.push_back(data);
        }
        Ok(())
    }

    /// The bytes to write next (empty when nothing waits).
    pub fn front(&self) -> &[u8] {
        self.chunks.front().map_or(&[], |c| &c[self.offset..])
    }

    /// `n` bytes of [`WriteQueue::front`] were written.
    pub fn advance(&mut self, n: usize) {
        let Some(front) = self.chunks.front() else {
            return;
        };
        let n = n.min(front.len() - self.offset);
        self.offset += n;
        self.bytes -= n;
        if self.offset == front.len() {
            self.chunks.pop_front();
            self.offset = 0;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    pub fn len_bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\nContent-Length: 3\r\n\r\nabc";

    fn frames(r: &mut StreamReader) -> Vec<Framed> {
        let mut out = Vec::new();
        while let Some(f) = r.next_frame().unwrap() {
            out.push(f);
        }
        out
    }

    #[test]
    fn one_byte_at_a_time_gives_one_message() {
        let mut r = StreamReader::default();
        let mut got = Vec::new();
        for b in MSG {
            r.push(&[*b]);
            got.extend(frames(&mut r));
        }
        assert_eq!(got, vec![Framed::Message(MSG.to_vec())]);
        assert_eq!(r.buffered(), 0);
    }

    #[test]
    fn two_messages_and_pings_in_one_segment() {
        let mut r = StreamReader::default();
        let mut seg = b"\r\n\r\n".to_vec();
        seg.extend_from_slice(MSG);
        seg.extend_from_slice(b"\r\n");
        seg.extend_from_slice(MSG);
        r.push(&seg);
        assert_eq!(
            frames(&mut r),
            vec![
                Framed::Ping,
                Framed::Message(MSG.to_vec()),
                Framed::Message(MSG.to_vec())
            ]
        );
    }

    #[test]
    fn missing_content_length_gives_the_head() {
        let mut r = StreamReader::default();
        r.push(b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r\nbody");
        match r.next_frame() {
            Err(StreamError::Unframed { head }) => {
                assert_eq!(head, b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r\n")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_buffer_is_bounded_and_too_large_is_an_error() {
        let mut r = StreamReader::default();
        r.push(&vec![b'X'; READ_BUFFER_MAX + 100]);
        assert_eq!(r.buffered(), READ_BUFFER_MAX);
        assert_eq!(r.room(), 0);
        assert!(matches!(r.next_frame(), Err(StreamError::Bad(_))));
    }

    #[test]
    fn write_queue_bounds_and_partial_writes() {
        let mut q = WriteQueue::new(10);
        q.push(b"hello".to_vec()).unwrap();
        q.push(b"world".to_vec()).unwrap();
        assert_eq!(q.push(b"!".to_vec()), Err(QueueFull));
        q.advance(3);
        assert_eq!(q.front(), b"lo");
        q.advance(2);
        assert_eq!(q.front(), b"world");
        assert_eq!(q.len_bytes(), 5);
        q.push(b"!".to_vec()).unwrap();
        q.advance(5);
        q.advance(1);
        assert!(q.is_empty());
        assert_eq!(q.front(), b"");
    }
}
