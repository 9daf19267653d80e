//! HTTP on the transport seam: an axum router served by hyper over `tokio::net`, and a
//! small JSON client — the same code on real sockets and in the simulator.
//!
//! Two things make hyper behave under madsim (see MADSIM_NOTES): a hand-written accept
//! loop instead of `axum::serve` (which needs real tokio), and [`NoEmptyFlush`], because
//! hyper flushes on every poll and an empty flush on a simulated TCP stream sends a packet:
//! two idle peers would ping-pong empty flushes forever. Turning an empty flush into a
//! no-op is harmless on real sockets.

use crate::deadline::Alarm;
use crate::runtime::wire::{Tapped, WireTap, CALL_HEADER};
use axum::Router;
use futures_util::future::{Either, FutureExt};
use hyper::{Method, StatusCode};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;

/// HTTP requests served by this process, for benchmarks only (never read by node logic,
/// so it cannot affect a simulated run).
static REQUESTS_SERVED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// HTTP requests served by this process so far (all nodes, all runs).
pub fn requests_served() -> u64 {
    REQUESTS_SERVED.load(std::sync::atomic::Ordering::Relaxed)
}

/// A stream whose `flush` does nothing unless something was written since the last one.
pub struct NoEmptyFlush<S> {
    inner: S,
    dirty: bool,
}

impl<S> NoEmptyFlush<S> {
    /// Wraps a stream.
    pub fn new(inner: S) -> Self {
        NoEmptyFlush {
            inner,
            dirty: false,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for NoEmptyFlush<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for NoEmptyFlush<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.dirty = true;
        }
        result
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.dirty {
            return Poll::Ready(Ok(()));
        }
        let result = Pin::new(&mut this.inner).poll_flush(cx);
        if result.is_ready() {
            this.dirty = false;
        }
        result
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Most connections a server holds at once; one more is accepted and closed at once, so
/// idle sockets cannot exhaust the node's descriptors and take it off the air.
pub const MAX_CONNECTIONS: usize = 512;
/// How long a connection may take to send a request's headers, and how long it may sit
/// idle between requests: a slowloris or an idle keep-alive socket is closed after it.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// The address a request came from, in every served request's extensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// Serves `router` on `listener` forever, one task per connection, at most
/// [`MAX_CONNECTIONS`] at once, each closed if its headers take over [`HEADER_TIMEOUT`].
/// Handlers find the caller's address as the [`PeerAddr`] extension. A request numbered
/// by a tapped caller (see [`crate::runtime::wire`]) is reported to `wire` when it is
/// served and when it is answered.
pub async fn serve(listener: TcpListener, router: Router, wire: WireTap) {
    serve_routes(listener, Routes::new(router), wire).await
}

/// A boxed response future, what a [`Routes::fast`] path answers with.
pub type Answering = Pin<Box<dyn Future<Output = axum::response::Response> + Send>>;

/// The request a fast path did not take, handed back for the router (boxed: it is large,
/// and rare).
pub type NotMine = Box<hyper::Request<hyper::body::Incoming>>;

/// A fast path: answers the requests it knows (told the caller's address: its requests
/// carry no [`PeerAddr`] extension), hands back the rest.
type FastPath = dyn Fn(hyper::Request<hyper::body::Incoming>, SocketAddr) -> Result<Answering, NotMine>
    + Send
    + Sync;

/// What a server answers with: a router, and optionally a fast path tried first.
///
/// A node's hot routes (replication, anti-entropy, client reads and writes: nearly every
/// request of a KV run) matched by hand on method and path skip axum's routing and
/// middleware layers, each of which boxed and moved the request's future again (issue
/// 16). Anything else, or anything unusual on those routes, goes to the router, so the
/// answers (errors included) stay the router's.
#[derive(Clone)]
pub struct Routes {
    router: TowerToHyperService<Router>,
    fast: Option<std::sync::Arc<FastPath>>,
}

impl Routes {
    /// Everything through `router`.
    pub fn new(router: Router) -> Self {
        Routes {
            router: TowerToHyperService::new(router),
            fast: None,
        }
    }

    /// The same, with `fast` tried first on every request.
    pub fn with_fast_path(
        mut self,
        fast: impl Fn(hyper::Request<hyper::body::Incoming>, SocketAddr) -> Result<Answering, NotMine>
            + Send
            + Sync
            + 'static,
    ) -> Self {
        self.fast = Some(std::sync::Arc::new(fast));
        self
    }
}

/// [`serve`] with a fast path (see [`Routes`]), on several accept loops
/// ([`crate::accept`]).
pub async fn serve_routes(listener: TcpListener, routes: Routes, wire: WireTap) {
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let serve = move |stream, peer| {
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            drop(stream); // over the cap: refused, the accept queue keeps draining
            return;
        };
        let service = Served {
            routes: routes.clone(),
            peer,
            wire: wire.clone(),
        };
        tokio::spawn(async move {
            let io = TokioIo::new(NoEmptyFlush::new(stream));
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer)
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(io, service)
                .await;
            drop(slot);
        });
    };
    crate::accept::accept_loops(listener, Duration::from_millis(50), serve).await;
}

/// One connection's service: what every request gets before and after the router (its
/// count, the caller's [`PeerAddr`], JSON errors, the wire tap), done here once per
/// request rather than as router layers, which axum would run around every route, each
/// layer cloning the boxed route and boxing its future.
#[derive(Clone)]
struct Served {
    routes: Routes,
    peer: SocketAddr,
    wire: WireTap,
}

impl hyper::service::Service<hyper::Request<hyper::body::Incoming>> for Served {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn call(&self, request: hyper::Request<hyper::body::Incoming>) -> Self::Future {
        REQUESTS_SERVED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // A request numbered by a tapped caller is reported when served and answered.
        let tapped = self
            .wire
            .is_on()
            .then(|| call_number(request.headers()))
            .flatten()
            .map(|id| (self.wire.clone(), id));
        // The router's handlers find the caller as an extension (an allocation per
        // request, which the fast path, told it directly, does without).
        let routed = |mut request: hyper::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(PeerAddr(self.peer));
            self.routes.router.call(request)
        };
        let answer = match &self.routes.fast {
            None => Either::Right(routed(request)),
            Some(fast) => match fast(request, self.peer) {
                Ok(answer) => Either::Left(answer.map(Ok)),
                Err(request) => Either::Right(routed(*request)),
            },
        };
        let from = self.peer;
        Box::pin(async move {
            if let Some((wire, id)) = &tapped {
                wire.tap(Tapped::Served { from, id: *id });
            }
            let response = match answer.await {
                Ok(response) => json_errors(response).await,
                Err(never) => match never {},
            };
            if let Some((wire, id)) = tapped {
                let status = response.status().as_u16();
                wire.tap(Tapped::Replied { from, id, status });
            }
            Ok(response)
        })
    }
}

/// hyper's timer on `tokio::time` (madsim's in a simulation; hyper-util's own timer uses
/// real tokio and panics there).
#[derive(Clone, Copy, Debug)]
struct TokioTimer;

impl hyper::rt::Timer for TokioTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(TokioSleep(Alarm::after(duration)))
    }

    fn sleep_until(&self, deadline: std::time::Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(TokioSleep(Alarm::at(deadline)))
    }
}

/// hyper polls its header timeout on every read of a request's head: an [`Alarm`] asks
/// the simulator for one wake-up, not one per poll, and none once hyper drops it.
struct TokioSleep(Alarm);

impl Future for TokioSleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.get_mut().0.poll_due(cx)
    }
}

impl hyper::rt::Sleep for TokioSleep {}

/// Why an HTTP call did not return a 2xx answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallError {
    /// Could not connect: the request was never sent.
    Unreachable(String),
    /// Sent, but the connection broke or the answer was not understood: unknown outcome.
    NoAnswer(String),
    /// Sent, but no complete answer within the call's timeout: unknown outcome.
    Timeout(Duration),
    /// The server answered with this non-2xx status and body.
    Status(u16, String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Unreachable(why) => write!(f, "unreachable: {why}"),
            CallError::NoAnswer(why) => write!(f, "no answer: {why}"),
            CallError::Timeout(after) => {
                write!(f, "no answer: no answer within {} ms", after.as_millis())
            }
            CallError::Status(code, body) => write!(f, "HTTP {code}: {body}"),
        }
    }
}

/// One JSON request on a fresh connection, bounded by `timeout`. `body = None` sends a GET.
///
/// `timeout` is true (runtime) time. A node bounds its calls on its own clock by passing
/// [`crate::runtime::Clock::true_duration`] of its local timeout (the KV node's
/// `peer_timeout()`), so clock drift reaches its call timeouts as it reaches its sleeps.
pub async fn call<B: Serialize, R: DeserializeOwned>(
    addr: SocketAddr,
    method: Method,
    path: &str,
    body: Option<&B>,
    timeout: Duration,
) -> Result<R, CallError> {
    // A connection of its own, closed when the call returns.
    crate::pool::Pool::single_use()
        .call(addr, method, path, body, timeout)
        .await
}

/// A JSON error body with a status, for handlers.
pub fn error(
    status: StatusCode,
    message: impl Into<String>,
) -> (StatusCode, axum::Json<serde_json::Value>) {
    (
        status,
        axum::Json(serde_json::json!({ "error": message.into() })),
    )
}

/// Parses a JSON request body whatever its `Content-Type` says (the seed's walkthrough
/// posts JSON with curl's default form type); a bad body is a 400 with a JSON error. Every
/// body the nodes take is a JSON object: anything else (an array, which serde would
/// otherwise read field by field into a struct) is refused.
#[allow(clippy::result_large_err)]
pub fn json_body<T: DeserializeOwned>(
    body: &[u8],
) -> Result<T, (StatusCode, axum::Json<serde_json::Value>)> {
    if body.trim_ascii_start().first() != Some(&b'{') {
        let error = "bad JSON body: expected a JSON object ({...})";
        return Err(self::error(StatusCode::BAD_REQUEST, error));
    }
    serde_json::from_slice(body)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("bad JSON body: {e}")))
}

/// Longest non-JSON error body turned into a JSON error (axum's own are a line).
const MAX_ERROR_TEXT: usize = 4096;

/// Makes every error response JSON, as the handlers' own are: axum's rejections (a body
/// over the limit: 413; a bad query or path: 400) are plain text and a wrong method
/// (405) is empty. Their text, or the status's reason, becomes `{"error": ...}`; the
/// status and the other headers (`Allow` on a 405) stay. Successes pass untouched.
async fn json_errors(response: axum::response::Response) -> axum::response::Response {
    use hyper::header::{HeaderValue, ALLOW, CONTENT_LENGTH, CONTENT_TYPE};
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_ERROR_TEXT)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let mut message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_lowercase()
    } else {
        text
    };
    if let Some(allow) = parts.headers.get(ALLOW).and_then(|v| v.to_str().ok()) {
        message = format!("{message}; allowed: {allow}");
    }
    let body = serde_json::json!({ "error": message }).to_string();
    parts.headers.remove(CONTENT_LENGTH);
    parts
        .headers
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    axum::response::Response::from_parts(parts, axum::body::Body::from(body))
}

/// The call number a tapped caller put in [`CALL_HEADER`], if any.
fn call_number(headers: &hyper::HeaderMap) -> Option<u64> {
    headers
        .get(CALL_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}
