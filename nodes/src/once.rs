//! One HTTP/1.1 exchange on a connection of its own, written and read by hand: what a
//! single-use [`crate::pool::Pool`] (the workload's clients, the probes) sends.
//!
//! The request says `Connection: close`; the answer is read until its body is complete
//! (by `Content-Length`, chunks, or the server's close). hyper's client did the same
//! through a dispatch channel, a connection future and a response body stream per call:
//! a tenth of a KV fuzz seed for requests that never share a connection (issue 16).
//! The request head is built from checked parts only (a path that is not a valid
//! request target is refused before anything is sent), so no input splits a request.

use crate::http::CallError;
use crate::pool::Answer;
use hyper::body::Bytes;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, StatusCode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Longest answer head read (status line and headers).
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Largest answer body read.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
/// Most answer headers read.
const MAX_HEADERS: usize = 64;

/// A request's head and body as bytes: `headers` are (name, value) pairs already checked
/// as header names and values; `Content-Length` is added unless a GET or HEAD has no body.
pub fn request_bytes(
    method: &Method,
    path: &str,
    headers: &[(&str, &HeaderValue)],
    body: &[u8],
) -> Result<Vec<u8>, CallError> {
    // The same check hyper's client made: a path that is not a request target (spaces,
    // control bytes, CR or LF among them) is refused, so it cannot split the request.
    hyper::Uri::try_from(path).map_err(|e| CallError::Unreachable(e.to_string()))?;
    let mut out = Vec::with_capacity(128 + path.len() + body.len());
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !body.is_empty() || !matches!(*method, Method::GET | Method::HEAD) {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(body.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    Ok(out)
}

/// Writes `request` on `stream` and reads the whole answer. A `HEAD` request's answer
/// has no body, whatever its headers say.
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    request: &[u8],
    head_only: bool,
) -> Result<Answer, CallError> {
    let closed = || CallError::NoAnswer("the connection closed".into());
    stream.write_all(request).await.map_err(|_| closed())?;
    stream.flush().await.map_err(|_| closed())?;
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let (status, headers, head_len) = loop {
        if let Some(head) = parse_head(&buf)? {
            break head;
        }
        if buf.len() > MAX_HEAD_BYTES {
            return Err(CallError::NoAnswer("answer head too large".into()));
        }
        if read_more(stream, &mut buf).await? == 0 {
            return Err(incomplete());
        }
    };
    let no_body = head_only
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let framing = if no_body {
        Framing::Length(0)
    } else {
        framing(&headers)?
    };
    let body = loop {
        let rest = &buf[head_len..];
        let done = match framing {
            Framing::Length(n) if rest.len() >= n => Some(Bytes::copy_from_slice(&rest[..n])),
            Framing::Chunked => dechunk(rest)?.map(Bytes::from),
            _ => None,
        };
        if let Some(body) = done {
            break body;
        }
        if rest.len() > MAX_BODY_BYTES {
            return Err(CallError::NoAnswer("answer body too large".into()));
        }
        if read_more(stream, &mut buf).await? == 0 {
            match framing {
                Framing::ToClose => break Bytes::copy_from_slice(&buf[head_len..]),
                _ => return Err(incomplete()),
            }
        }
    };
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// How an answer's body ends.
#[derive(Clone, Copy)]
enum Framing {
    Length(usize),
    Chunked,
    ToClose,
}

fn incomplete() -> CallError {
    CallError::NoAnswer("connection closed before message completed".into())
}

fn bad(what: &str) -> CallError {
    CallError::NoAnswer(format!("invalid HTTP answer: {what}"))
}

async fn read_more<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
) -> Result<usize, CallError> {
    buf.reserve(4096);
    stream
        .read_buf(buf)
        .await
        .map_err(|e| CallError::NoAnswer(e.to_string()))
}

/// The status, headers and head length of a complete answer head; `None` if `buf` does
/// not hold all of it yet.
fn parse_head(buf: &[u8]) -> Result<Option<(StatusCode, HeaderMap, usize)>, CallError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut slots);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(bad(&e.to_string())),
    };
    let code = response.code.ok_or_else(|| bad("no status"))?;
    let status = StatusCode::from_u16(code).map_err(|_| bad("bad status"))?;
    let mut headers = HeaderMap::with_capacity(response.headers.len());
    for h in response.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| bad("header name"))?;
        let value = HeaderValue::from_bytes(h.value).map_err(|_| bad("header value"))?;
        headers.append(name, value);
    }
    Ok(Some((status, headers, len)))
}

/// The body's framing from the answer's headers (chunked wins over a length, as in
/// RFC 9112 section 6.3; two different lengths are refused).
fn framing(headers: &HeaderMap) -> Result<Framing, CallError> {
    let chunked = headers
        .get_all(hyper::header::TRANSFER_ENCODING)
        .iter()
        .any(|v| v.as_bytes().eq_ignore_ascii_case(b"chunked"));
    if chunked {
        return Ok(Framing::Chunked);
    }
    let mut length = None;
    for value in headers.get_all(hyper::header::CONTENT_LENGTH) {
        let n: usize = std::str::from_utf8(value.as_bytes())
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| bad("content-length"))?;
        if length.is_some_and(|l| l != n) {
            return Err(bad("two content-lengths"));
        }
        length = Some(n);
    }
    Ok(length.map_or(Framing::ToClose, Framing::Length))
}

/// A chunked body's bytes once all of it (through the last chunk and the trailers) is in
/// `data`; `None` while it is not.
fn dechunk(data: &[u8]) -> Result<Option<Vec<u8>>, CallError> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let Some(eol) = find_crlf(&data[at..]) else {
            return Ok(None);
        };
        let line = &data[at..at + eol];
        let size = line.split(|&b| b == b';').next().unwrap_or_default();
        let size = std::str::from_utf8(size)
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
            .ok_or_else(|| bad("chunk size"))?;
        at += eol + 2;
        if size == 0 {
            // Trailers, if any, then an empty line.
            loop {
                let Some(eol) = find_crlf(&data[at..]) else {
                    return Ok(None);
                };
                at += eol + 2;
                if eol == 0 {
                    return Ok(Some(body));
                }
            }
        }
        if size > MAX_BODY_BYTES || body.len() + size > MAX_BODY_BYTES {
            return Err(CallError::NoAnswer("answer body too large".into()));
        }
        if data.len() < at + size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&data[at..at + size]);
        if &data[at + size..at + size + 2] != b"\r\n" {
            return Err(bad("chunk end"));
        }
        at += size + 2;
    }
}

fn find_crlf(data: &[u8]) -> Option<usize> {
    data.windows(2).position(|w| w == b"\r\n")
}

#[cfg(all(test, madsim))]
mod tests {
    use super::*;

    /// Runs `exchange` against an in-memory server that answers `answer` in pieces of
    /// `piece` bytes, then closes; returns the answer and what the server was sent.
    fn against(
        answer: &[u8],
        piece: usize,
        head_only: bool,
    ) -> (Result<Answer, CallError>, Vec<u8>) {
        let runtime = madsim::runtime::Runtime::new();
        let answer = answer.to_vec();
        let request = request_bytes(
            &Method::POST,
            "/data?x=1",
            &[("host", &HeaderValue::from_static("n1:80"))],
            b"{}",
        )
        .expect("a request");
        runtime.block_on(async move {
            let (mut client, mut server) = tokio::io::duplex(1 << 20);
            let length = request.len();
            let serve = async move {
                let mut got = vec![0u8; length];
                server.read_exact(&mut got).await.expect("the request");
                for part in answer.chunks(piece.max(1)) {
                    server.write_all(part).await.expect("write");
                    server.flush().await.expect("flush");
                    tokio::task::yield_now().await;
                }
                drop(server);
                got
            };
            let (answer, got) = tokio::join!(exchange(&mut client, &request, head_only), serve);
            (answer, got)
        })
    }

    #[test]
    fn a_request_is_written_whole_with_its_length() {
        let bytes = request_bytes(
            &Method::POST,
            "/data",
            &[(
                "content-type",
                &HeaderValue::from_static("application/json"),
            )],
            b"{\"k\":1}",
        )
        .expect("a request");
        assert_eq!(
            bytes,
            b"POST /data HTTP/1.1\r\ncontent-type: application/json\r\ncontent-length: 7\r\n\r\n{\"k\":1}"
        );
        let get = request_bytes(&Method::GET, "/data/k", &[], b"").expect("a request");
        assert_eq!(get, b"GET /data/k HTTP/1.1\r\n\r\n");
    }

    #[test]
    fn a_path_that_would_split_the_request_is_refused_before_sending() {
        for path in ["/a b", "/a\r\nx-evil: 1", "no-slash\n", ""] {
            let refused = request_bytes(&Method::GET, path, &[], b"");
            assert!(
                matches!(refused, Err(CallError::Unreachable(_))),
                "{path:?}"
            );
        }
    }

    #[test]
    fn answers_are_read_by_length_by_chunks_and_to_the_close_in_any_pieces() {
        let cases: [(&[u8], &[u8]); 3] = [
            (b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-a: b\r\n\r\nhello", b"hello"),
            (
                b"HTTP/1.1 201 Created\r\ntransfer-encoding: chunked\r\n\r\n3;x=y\r\nhel\r\n2\r\nlo\r\n0\r\nx-t: 1\r\n\r\n",
                b"hello",
            ),
            (b"HTTP/1.1 503 Service Unavailable\r\n\r\nbusy", b"busy"),
        ];
        for (answer, body) in cases {
            for piece in [1, 3, 7, 4096] {
                let (got, sent) = against(answer, piece, false);
                let got = got.expect("an answer");
                assert_eq!(&got.body[..], body, "piece {piece}");
                assert!(sent.starts_with(b"POST /data?x=1 HTTP/1.1\r\n"));
            }
        }
        let (got, _) = against(
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-a: b\r\n\r\nhello",
            2,
            false,
        );
        let got = got.expect("an answer");
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(
            got.headers.get("x-a").map(|v| v.as_bytes()),
            Some(&b"b"[..])
        );
    }

    #[test]
    fn a_cut_or_garbled_answer_is_no_answer() {
        for answer in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nhello"[..],
            b"HTTP/1.1 200 OK\r\ncontent-len",
            b"",
            b"SMTP ready\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nabc",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nhelXX0\r\n\r\n",
        ] {
            let (got, _) = against(answer, 4, false);
            assert!(
                matches!(got, Err(CallError::NoAnswer(_))),
                "{:?}: {got:?}",
                String::from_utf8_lossy(answer)
            );
        }
        let (got, _) = against(
            b"HTTP/1.1 204 No Content\r\ncontent-length: 5\r\n\r\n",
            4,
            false,
        );
        assert!(got.expect("an answer").body.is_empty());
        let (got, _) = against(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", 4, true);
        assert!(got.expect("an answer").body.is_empty());
    }
}
