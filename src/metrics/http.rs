//! The HTTP side of `/metrics`: what a request buffer asks for, and the
//! bytes of each response.
//!
//! Pure: bytes in, a [`Route`] or a response out; the sockets, buffers'
//! bounds and deadlines are the reactor's (`reactor::metrics`). Requests
//! are parsed by `httparse`, a maintained sans-IO parser, so that no
//! hand-written HTTP parsing stands between a peer and the reactor. Only
//! HTTP/1.0 and 1.1 (all `httparse` accepts); every response closes the
//! connection, so no keep-alive or pipelining state exists.

/// Bytes a request head may take; beyond them the request is refused (431).
pub const MAX_REQUEST_BYTES: usize = 4096;

/// Header lines a request may have.
const MAX_HEADERS: usize = 32;

/// What a complete request head asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /metrics`: the exposition.
    Metrics,
    /// A path other than `/metrics`.
    NotFound,
    /// `/metrics` with a method other than GET.
    MethodNotAllowed,
    /// Not HTTP/1.x, or malformed.
    BadRequest,
    /// Longer than [`MAX_REQUEST_BYTES`] or [`MAX_HEADERS`].
    TooLarge,
}

/// The route of the request in `buf`, or None while its head is incomplete
/// (and shorter than [`MAX_REQUEST_BYTES`]). A body, which a GET has not,
/// is never read.
pub fn route(buf: &[u8]) -> Option<Route> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) if buf.len() >= MAX_REQUEST_BYTES => {
            return Some(Route::TooLarge);
        }
        Ok(httparse::Status::Partial) => return None,
        Err(httparse::Error::TooManyHeaders) => return Some(Route::TooLarge),
        Err(_) => return Some(Route::BadRequest),
    }
    let path = req.path.unwrap_or("");
    // A query string does not change what is served.
    let path = path.split('?').next().unwrap_or("");
    Some(if path != "/metrics" {
        Route::NotFound
    } else if req.method != Some("GET") {
        Route::MethodNotAllowed
    } else {
        Route::Metrics
    })
}

/// A whole response: status line, headers, `Connection: close`, body.
pub fn response(route: Route, body: &[u8], content_type: &str) -> Vec<u8> {
    let (status, reason) = match route {
        Route::Metrics => (200, "OK"),
        Route::NotFound => (404, "Not Found"),
        Route::MethodNotAllowed => (405, "Method Not Allowed"),
        Route::BadRequest => (400, "Bad Request"),
        Route::TooLarge => (431, "Request Header Fields Too Large"),
    };
    let (body, content_type): (&[u8], &str) = match route {
        Route::Metrics => (body, content_type),
        Route::NotFound => (b"only /metrics is served here\n", "text/plain"),
        Route::MethodNotAllowed => (b"use GET\n", "text/plain"),
        Route::BadRequest => (b"not an HTTP/1.x request\n", "text/plain"),
        Route::TooLarge => (b"request head too large\n", "text/plain"),
    };
    let allow = if route == Route::MethodNotAllowed {
        "Allow: GET\r\n"
    } else {
        ""
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let cases: [(&[u8], Option<Route>); 9] = [
            (
                b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
                Some(Route::Metrics),
            ),
            (b"GET /metrics?x=1 HTTP/1.0\r\n\r\n", Some(Route::Metrics)),
            (b"GET / HTTP/1.1\r\n\r\n", Some(Route::NotFound)),
            (
                b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
                Some(Route::MethodNotAllowed),
            ),
            (b"GET /metrics HTTP/1.1\r\nHost: x\r\n", None),
            (b"GET /metr", None),
            (b"", None),
            (b"GET /metrics HTTP/2.0\r\n\r\n", Some(Route::BadRequest)),
            (b"\x16\x03\x01\x02\x00", Some(Route::BadRequest)),
        ];
        for (req, want) in cases {
            assert_eq!(route(req), want, "{:?}", String::from_utf8_lossy(req));
        }
    }

    #[test]
    fn oversized_heads_are_refused() {
        let mut long = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
        long.resize(MAX_REQUEST_BYTES, b'a');
        assert_eq!(route(&long), Some(Route::TooLarge));
        let many = format!("GET /metrics HTTP/1.1\r\n{}\r\n", "A: b\r\n".repeat(40));
        assert_eq!(route(many.as_bytes()), Some(Route::TooLarge));
    }

    #[test]
    fn responses_close_and_carry_their_length() {
        let r = String::from_utf8(response(Route::Metrics, b"a 1\n", "text/plain")).unwrap();
        assert_eq!(
            r,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 4\r\nConnection: close\r\n\r\na 1\n"
        );
        let r = String::from_utf8(response(Route::MethodNotAllowed, b"", "x")).unwrap();
        assert!(r.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"), "{r}");
        assert!(r.contains("\r\nAllow: GET\r\n"));
        let r = String::from_utf8(response(Route::NotFound, b"ignored", "x")).unwrap();
        assert!(r.starts_with("HTTP/1.1 404 Not Found\r\n"), "{r}");
        assert!(!r.contains("ignored"));
    }
}
