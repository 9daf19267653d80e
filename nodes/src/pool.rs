//! Pooled keep-alive HTTP connections for a node's calls to its peers and registry.
//!
//! A new connection per replication left ~41,000 sockets in TIME-WAIT after 20,000 writes
//! on real loopback, and replicas missed writes under that load. A [`Pool`] keeps up to
//! [`MAX_IDLE_PER_PEER`] idle HTTP/1 connections per address and reuses them; a
//! connection that timed out or broke is dropped, never reused. A call that fails on a
//! *reused* connection before any answer (the peer closed it while idle, or restarted) is
//! retried once on a fresh one: every node-to-node request is idempotent (a replication
//! or a gossip page merges by version; reads and registry calls are repeatable).
//!
//! Same code in both modes: connections are `tokio::net` streams (madsim's in a
//! simulation), the pool an ordered map behind a mutex, so a seeded run stays seeded.
//! A pool given a [`WireTap`] (see [`Pool::tapped`]) reports each call and its end, and
//! numbers it in a header so the server's tap can pair it; untapped, it sends no header.

use crate::auth::ClusterKey;
use crate::deadline::within;
use crate::http::{CallError, NoEmptyFlush};
use crate::once;
use crate::runtime::wire::{route_kind, CallEnd, Tapped, WireTap, CALL_HEADER};
use crate::runtime::Routes;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;

/// Idle connections kept per peer address.
pub const MAX_IDLE_PER_PEER: usize = 64;

type Sender = SendRequest<Full<Bytes>>;

/// Idle keep-alive connections by peer address; clones share the pool.
#[derive(Clone, Default)]
pub struct Pool {
    idle: Arc<Mutex<BTreeMap<SocketAddr, Vec<Sender>>>>,
    /// Signs every request with the cluster key (node-to-node calls) when set.
    key: Option<ClusterKey>,
    /// Where its calls are reported, for pictures (off unless [`Pool::tapped`]).
    wire: WireTap,
    /// Where each address is dialed (direct unless [`Pool::routed`]).
    routes: Routes,
    /// Keeps no connection: each call dials its own and drives it (see
    /// [`Pool::single_use`]).
    single_use: bool,
}

impl Pool {
    /// An empty pool whose requests are not signed (a client's).
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty pool that signs every request with `key` (a node's calls to its peers and
    /// the registry; see [`crate::auth::http`]).
    pub fn signed(key: ClusterKey) -> Self {
        Pool {
            key: Some(key),
            ..Self::default()
        }
    }

    /// A pool that keeps nothing: every call dials a connection of its own, writes its
    /// request and reads the answer in the calling task ([`crate::once`]: no connection
    /// task, no hyper client) and closes it when the call returns. What a client that
    /// opens a fresh connection per attempt uses (the workload, `curl` by hand); a
    /// connection task per attempt cost a spawn and a hand-over between two tasks at
    /// every step of the exchange, and hyper's client machinery a tenth of a KV seed
    /// (issue 16).
    pub fn single_use() -> Self {
        Pool {
            single_use: true,
            ..Self::default()
        }
    }

    /// The same pool, reporting its calls to `wire` (the node's tap; off in real mode).
    pub fn tapped(mut self, wire: WireTap) -> Self {
        self.wire = wire;
        self
    }

    /// The same pool, dialing each address where `routes` say (the node's routes seam:
    /// through `sim real`'s fault proxy). Connections stay pooled by the peer's address.
    pub fn routed(mut self, routes: Routes) -> Self {
        self.routes = routes;
        self
    }

    fn take(&self, addr: SocketAddr) -> Option<Sender> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let senders = idle.get_mut(&addr)?;
        while let Some(sender) = senders.pop() {
            if !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    }

    fn put_back(&self, addr: SocketAddr, sender: Sender) {
        if self.single_use || sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let senders = idle.entry(addr).or_default();
        if senders.len() < MAX_IDLE_PER_PEER {
            senders.push(sender);
        }
    }

    /// Idle connections held now (all peers), for tests and benchmarks.
    pub fn idle_count(&self) -> usize {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.values().map(Vec::len).sum()
    }

    /// One JSON request to `addr` over a pooled connection: connecting, then the exchange,
    /// each bounded by `timeout` (true time). `body = None` sends no body.
    pub async fn call<B: Serialize, R: DeserializeOwned>(
        &self,
        addr: SocketAddr,
        method: Method,
        path: &str,
        body: Option<&B>,
        timeout: Duration,
    ) -> Result<R, CallError> {
        decode(&self.fetch(addr, method, path, body, timeout).await?)
    }

    /// [`Pool::call`], the 2xx answer's body handed back undecoded.
    pub async fn fetch<B: Serialize>(
        &self,
        addr: SocketAddr,
        method: Method,
        path: &str,
        body: Option<&B>,
        timeout: Duration,
    ) -> Result<Bytes, CallError> {
        let bytes = match body {
            Some(body) => Bytes::from(
                serde_json::to_vec(body).map_err(|e| CallError::Unreachable(e.to_string()))?,
            ),
            None => Bytes::new(),
        };
        let request = Outgoing {
            method,
            path,
            content_type: HeaderValue::from_static("application/json"),
            body: bytes,
        };
        let answer = self.send(addr, request, timeout).await?;
        if !answer.status.is_success() {
            return Err(CallError::Status(
                answer.status.as_u16(),
                String::from_utf8_lossy(&answer.body).into_owned(),
            ));
        }
        Ok(answer.body)
    }

    /// One request to `addr` over a pooled connection, answered whatever its status (a
    /// 429 or a 503 is an [`Answer`], not an error): what a proxy forwards. Connecting,
    /// then the exchange, are each bounded by `timeout` (true time).
    pub async fn send(
        &self,
        addr: SocketAddr,
        request: Outgoing<'_>,
        timeout: Duration,
    ) -> Result<Answer, CallError> {
        let Some(id) = self.wire.next_call() else {
            return self.send_numbered(addr, &request, timeout, None).await;
        };
        let kind = route_kind(request.method.as_str(), request.path);
        self.wire.tap(Tapped::Called { to: addr, id, kind });
        let result = self.send_numbered(addr, &request, timeout, Some(id)).await;
        let end = match &result {
            Ok(answer) => CallEnd::Status(answer.status.as_u16()),
            Err(CallError::Status(code, _)) => CallEnd::Status(*code),
            Err(CallError::Unreachable(_)) => CallEnd::Unreachable,
            Err(CallError::NoAnswer(_)) => CallEnd::Broken,
            Err(CallError::Timeout(_)) => CallEnd::Timeout,
        };
        self.wire.tap(Tapped::Answered { id, end });
        result
    }

    /// [`Pool::send`], the request carrying call number `call` when tapped.
    async fn send_numbered(
        &self,
        addr: SocketAddr,
        request: &Outgoing<'_>,
        timeout: Duration,
        call: Option<u64>,
    ) -> Result<Answer, CallError> {
        // As a fresh call would: connecting is bounded by `timeout` (a failure there means
        // the request was never sent), and so is the exchange after it.
        if self.single_use {
            let bytes = self.request_bytes(addr, request, call)?;
            let dialed = within(timeout, TcpStream::connect(self.routes.dial(addr))).await;
            let mut stream = match dialed {
                Ok(stream) => stream.map_err(|e| CallError::Unreachable(e.to_string()))?,
                Err(_) => return Err(CallError::Unreachable("connect timed out".into())),
            };
            let head_only = request.method == Method::HEAD;
            return match within(timeout, once::exchange(&mut stream, &bytes, head_only)).await {
                Ok(answer) => answer,
                Err(_) => Err(no_answer_within(timeout)),
            };
        }
        if let Some(sender) = self.take(addr) {
            let reused = self.exchange(addr, sender, request, call);
            match within(timeout, reused).await {
                Ok(Err(Retry::Fresh)) => {}
                Ok(Err(Retry::No(e))) => return Err(e),
                Ok(Ok(answer)) => return Ok(answer),
                Err(_) => return Err(no_answer_within(timeout)),
            }
        }
        let sender = match within(timeout, connect(self.routes.dial(addr))).await {
            Ok(sender) => sender?,
            Err(_) => return Err(CallError::Unreachable("connect timed out".into())),
        };
        let fresh = self.exchange(addr, sender, request, call);
        fresh_outcome(within(timeout, fresh).await, timeout)
    }

    /// Sends one request on `sender`; on a complete answer the connection goes back to
    /// the pool. `Retry::Fresh`: it failed before an answer began, try a new connection.
    async fn exchange(
        &self,
        addr: SocketAddr,
        mut sender: Sender,
        outgoing: &Outgoing<'_>,
        call: Option<u64>,
    ) -> Result<Answer, Retry> {
        if sender.ready().await.is_err() {
            return Err(Retry::Fresh);
        }
        let request = self
            .request(addr, outgoing, call)
            .map_err(|e| Retry::No(CallError::Unreachable(e.to_string())))?;
        let response = match sender.send_request(request).await {
            Ok(response) => response,
            Err(e) if e.is_canceled() || e.is_closed() => return Err(Retry::Fresh),
            Err(e) => return Err(Retry::No(CallError::NoAnswer(e.to_string()))),
        };
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| Retry::No(CallError::NoAnswer(e.to_string())))?
            .to_bytes();
        self.put_back(addr, sender);
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}

impl Pool {
    /// The HTTP request for `outgoing` to `addr`: its headers set in place (the
    /// request builder re-parsed each name and moved its parts along at every step).
    fn request(
        &self,
        addr: SocketAddr,
        outgoing: &Outgoing<'_>,
        call: Option<u64>,
    ) -> Result<Request<Full<Bytes>>, hyper::http::Error> {
        let mut request = Request::new(Full::new(outgoing.body.clone()));
        *request.method_mut() = outgoing.method.clone();
        *request.uri_mut() = hyper::Uri::try_from(outgoing.path)?;
        // Room for every header set here at once (an empty map grows on its first insert).
        let headers = request.headers_mut();
        headers.reserve(6);
        headers.insert(HOST, HeaderValue::try_from(host(addr))?);
        headers.insert(CONTENT_TYPE, outgoing.content_type.clone());
        if let Some(mac) = self.mac(outgoing) {
            let name = HeaderName::from_static(crate::auth::http::HEADER);
            headers.insert(name, HeaderValue::try_from(mac)?);
        }
        if let Some(id) = call {
            headers.insert(HeaderName::from_static(CALL_HEADER), HeaderValue::from(id));
        }
        Ok(request)
    }

    /// The request's MAC under the cluster key, when this pool signs.
    fn mac(&self, outgoing: &Outgoing<'_>) -> Option<String> {
        let key = self.key.as_ref()?;
        let method = outgoing.method.as_str();
        Some(crate::auth::http::sign(
            key,
            method,
            outgoing.path,
            &outgoing.body,
        ))
    }

    /// [`Pool::request`] as bytes, for a single-use connection ([`crate::once`]): the
    /// same headers, and `Connection: close`, as it is so (the server closes after its
    /// answer instead of waiting, with a header timer, for a next request).
    fn request_bytes(
        &self,
        addr: SocketAddr,
        outgoing: &Outgoing<'_>,
        call: Option<u64>,
    ) -> Result<Vec<u8>, CallError> {
        let invalid = |e: hyper::header::InvalidHeaderValue| CallError::Unreachable(e.to_string());
        let host = HeaderValue::try_from(host(addr)).map_err(invalid)?;
        let close = HeaderValue::from_static("close");
        let mac = match self.mac(outgoing) {
            Some(mac) => Some(HeaderValue::try_from(mac).map_err(invalid)?),
            None => None,
        };
        let call = call.map(HeaderValue::from);
        let mut headers = vec![
            ("host", &host),
            ("content-type", &outgoing.content_type),
            ("connection", &close),
        ];
        if let Some(mac) = &mac {
            headers.push((crate::auth::http::HEADER, mac));
        }
        if let Some(call) = &call {
            headers.push((CALL_HEADER, call));
        }
        let (method, path) = (&outgoing.method, outgoing.path);
        once::request_bytes(method, path, &headers, &outgoing.body)
    }
}

/// A request for [`Pool::send`]: any method, a path with its query, a body and its type.
#[derive(Clone, Debug)]
pub struct Outgoing<'a> {
    /// The method.
    pub method: Method,
    /// Path and query, e.g. `/data/k1?local=true`.
    pub path: &'a str,
    /// The body's `Content-Type`.
    pub content_type: HeaderValue,
    /// The body (empty for none).
    pub body: Bytes,
}

/// A complete answer, whatever its status.
#[derive(Clone, Debug)]
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

/// `addr` as a `Host` header: an IPv4 address written digit by digit (every request of a
/// node names its peer; the formatter took a share of the profile), any other as usual.
fn host(addr: SocketAddr) -> String {
    let SocketAddr::V4(v4) = addr else {
        return addr.to_string();
    };
    fn decimal(out: &mut String, n: u16) {
        let mut digits = [0u8; 5];
        let mut at = digits.len();
        let mut n = n;
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        out.extend(digits[at..].iter().map(|&d| d as char));
    }
    let mut out = String::with_capacity(21);
    for (i, octet) in v4.ip().octets().into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        decimal(&mut out, octet.into());
    }
    out.push(':');
    decimal(&mut out, v4.port());
    out
}

/// An answer's JSON body as `R`; anything else is no answer.
pub fn decode<R: DeserializeOwned>(answer: &[u8]) -> Result<R, CallError> {
    serde_json::from_slice(answer).map_err(|e| CallError::NoAnswer(format!("bad JSON answer: {e}")))
}

fn no_answer_within(timeout: Duration) -> CallError {
    CallError::Timeout(timeout)
}

/// What an exchange on a fresh connection came to (nothing left to retry on).
fn fresh_outcome(
    bounded: Result<Result<Answer, Retry>, crate::deadline::Elapsed>,
    timeout: Duration,
) -> Result<Answer, CallError> {
    match bounded {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(Retry::Fresh)) => Err(CallError::NoAnswer("the connection closed".into())),
        Ok(Err(Retry::No(e))) => Err(e),
        Err(_) => Err(no_answer_within(timeout)),
    }
}

enum Retry {
    /// Failed before any answer on a connection that may have gone stale: reconnect.
    Fresh,
    /// Failed for good.
    No(CallError),
}

/// A client connection's own future: it reads and writes the socket for its sender.
type Connection =
    hyper::client::conn::http1::Connection<TokioIo<NoEmptyFlush<TcpStream>>, Full<Bytes>>;

/// A connection to `addr` driven by a task of its own, so it can wait in the pool.
async fn connect(addr: SocketAddr) -> Result<Sender, CallError> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| CallError::Unreachable(e.to_string()))?;
    let io = TokioIo::new(NoEmptyFlush::new(stream));
    let (sender, connection): (Sender, Connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| CallError::Unreachable(e.to_string()))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::host;
    use std::net::SocketAddr;

    #[test]
    fn host_names_the_address_as_its_display_does() {
        for text in [
            "10.0.0.1:8080",
            "0.0.0.0:0",
            "255.255.255.255:65535",
            "127.0.0.1:9",
            "192.168.10.100:10001",
            "[::1]:8080",
        ] {
            let addr: SocketAddr = text.parse().expect("a socket address");
            assert_eq!(host(addr), addr.to_string());
        }
    }
}
