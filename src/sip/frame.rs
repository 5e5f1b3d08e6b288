//! Stream framing (RFC 3261 §18.3): on TCP a message ends where its
//! Content-Length says, so Content-Length is mandatory; CRLFs between
//! messages are keep-alives (RFC 5626 §3.5.1). Tells the transport how
//! many bytes of its buffer make one message, without indexing it. Pure.

use super::lex;
use super::msg::{HeaderKind, ParseError, find_line};

/// Largest message accepted on a stream: Kamailio's BUF_SIZE (64 KiB),
/// which bounds each connection's read buffer.
pub const MAX_STREAM_MESSAGE: usize = 65_535;

/// Number of leading CR/LF bytes (keep-alives to consume; a `CRLFCRLF`
/// ping is answered with `CRLF`, RFC 5626 §3.5.1).
pub fn keepalive_len(buf: &[u8]) -> usize {
    buf.iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count()
}

/// `Ok(Some(n))`: `buf[..n]` holds leading keep-alives plus one whole
/// message (give it to `SipMsg::parse`, which skips the CRLFs).
/// `Ok(None)`: more bytes are needed. `Err`: the stream cannot be framed
/// and the connection should be closed.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, ParseError> {
    let skip = keepalive_len(buf);
    let b = &buf[skip..];
    if b.is_empty() {
        return Ok(None);
    }
    let too_large = ParseError::MessageTooLarge {
        limit: MAX_STREAM_MESSAGE,
    };
    let need_more = |len: usize| {
        if len > MAX_STREAM_MESSAGE {
            Err(too_large)
        } else {
            Ok(None)
        }
    };
    let Some((_, mut pos)) = find_line(b, 0) else {
        return need_more(b.len());
    };
    let mut declared: Option<usize> = None;
    let body_start = loop {
        let Some((end, next)) = find_line(b, pos) else {
            return need_more(b.len());
        };
        if end == pos {
            break next;
        }
        // Folds continue the previous header; only a header's first line
        // can name Content-Length.
        if !lex::is_wsp(b[pos]) {
            if let Some(colon) = lex::find_byte(&b[..end], pos, b':') {
                let name = lex::trim(&b[pos..colon]);
                if HeaderKind::of(name) == HeaderKind::ContentLength {
                    let mut value_end = end;
                    let mut n = next;
                    while n < b.len() && lex::is_wsp(b[n]) {
                        match find_line(b, n) {
                            Some((e, nn)) => {
                                value_end = e;
                                n = nn;
                            }
                            None => return need_more(b.len()),
                        }
                    }
                    let v = lex::parse_u64(lex::trim(&b[colon + 1..value_end]))
                        .and_then(|v| usize::try_from(v).ok())
                        .ok_or(ParseError::BadContentLength)?;
                    if declared.is_some_and(|d| d != v) {
                        return Err(ParseError::BadContentLength);
                    }
                    declared = Some(v);
                }
            }
        }
        pos = next;
    };
    let len = declared.ok_or(ParseError::MissingContentLength)?;
    let total = body_start.checked_add(len).ok_or(too_large)?;
    if total > MAX_STREAM_MESSAGE {
        return Err(too_large);
    }
    Ok((b.len() >= total).then_some(skip + total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_table() {
        let msg = "OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\nContent-Length: 3\r\n\r\nabc";
        let big = format!(
            "OPTIONS sip:a@b SIP/2.0\r\nl: {}\r\n\r\n",
            MAX_STREAM_MESSAGE
        );
        let cases: Vec<(String, Result<Option<usize>, ParseError>)> = vec![
            (String::new(), Ok(None)),
            ("\r\n\r\n".into(), Ok(None)),
            (msg.into(), Ok(Some(msg.len()))),
            (format!("{msg}OPTIONS next"), Ok(Some(msg.len()))),
            (format!("\r\n\r\n{msg}"), Ok(Some(msg.len() + 4))),
            (msg[..msg.len() - 1].into(), Ok(None)),
            (msg[..30].into(), Ok(None)),
            (
                "OPTIONS sip:a@b SIP/2.0\r\nl:\r\n 0\r\n\r\n".into(),
                Ok(Some(35)),
            ),
            ("OPTIONS sip:a@b SIP/2.0\nl: 1\n\nZ".into(), Ok(Some(31))),
            (
                "OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r\n".into(),
                Err(ParseError::MissingContentLength),
            ),
            (
                "OPTIONS sip:a@b SIP/2.0\r\nl: -1\r\n\r\n".into(),
                Err(ParseError::BadContentLength),
            ),
            (
                "OPTIONS sip:a@b SIP/2.0\r\nl: 1\r\nContent-Length: 2\r\n\r\n".into(),
                Err(ParseError::BadContentLength),
            ),
            (
                big,
                Err(ParseError::MessageTooLarge {
                    limit: MAX_STREAM_MESSAGE,
                }),
            ),
            (
                "X".repeat(MAX_STREAM_MESSAGE + 1),
                Err(ParseError::MessageTooLarge {
                    limit: MAX_STREAM_MESSAGE,
                }),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(frame_len(input.as_bytes()), want, "{input:.60?}");
        }
        assert_eq!(keepalive_len(b"\r\n\r\nINVITE"), 4);
    }
}
