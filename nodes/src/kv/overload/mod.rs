//! Seed 001's middleware in the KV node: what keeps a node useful when more is asked of
//! it than it can do, and what makes overload visible in the first place.
//!
//! - [`rate_limit`]: a token bucket per client address (`--rate-limit N`), 429 past it;
//! - [`backpressure`]: at most N client requests in flight (`--backpressure N`), 429 past it;
//! - [`capacity`]: W worker slots and F ms of work per request (`--workers`, `--load-factor`),
//!   stretched by the `slow` fault;
//! - [`breaker`]: a circuit breaker per peer on replication and gossip (`--circuit-breaker`).
//!
//! [`guard`] runs the first three, in that order, as one axum middleware in front of every
//! route. Which routes they apply to is [`Route`]'s decision: node-to-node routes (and a
//! read forwarded by a peer, signed with the cluster key) are exempt from all of them, because a limit meant for clients must not starve replication or
//! anti-entropy (and the work of a request is done once, by the node the client called);
//! status routes are rate limited but neither queued nor slowed, so `/queue-stats` still
//! answers on a node that is drowning.

pub mod backpressure;
pub mod breaker;
pub mod capacity;
pub mod rate_limit;

use crate::auth::{self, ClusterKey};
use crate::http::PeerAddr;
use crate::runtime::{Clock, EventSink, Slowdown};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use backpressure::Backpressure;
use breaker::{BreakerConfig, Breakers};
use capacity::Capacity;
use rate_limit::RateLimit;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The middleware knobs of one node (flags of `kv-node`, knobs of `[config]`); the
/// default turns every one off.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OverloadConfig {
    /// Requests per second per client, burst the same (`rate_limit`).
    pub rate_limit: Option<NonZeroU32>,
    /// Most client requests in flight (`backpressure`).
    pub backpressure: Option<NonZeroUsize>,
    /// Worker slots (`workers`; `None`: unbounded).
    pub workers: Option<NonZeroUsize>,
    /// Work per client request on the node's clock (`load_factor`, ms).
    pub load_factor: Duration,
    /// Breakers on peer calls (`circuit_breaker`, `breaker_failures`, `breaker_cooldown`).
    pub circuit_breaker: Option<BreakerConfig>,
}

/// Longest `load_factor`: a minute of work per request is already no service at all.
pub const MAX_LOAD_FACTOR_MS: f64 = 60_000.0;

/// `load_factor` as given (ms, a number from 0 to [`MAX_LOAD_FACTOR_MS`]), as a duration.
pub fn load_factor(ms: f64) -> Result<Duration, String> {
    if !(0.0..=MAX_LOAD_FACTOR_MS).contains(&ms) {
        return Err(format!(
            "expected milliseconds of work from 0 to {MAX_LOAD_FACTOR_MS}, got {ms}"
        ));
    }
    Ok(Duration::from_secs_f64(ms / 1e3))
}

/// Parses `--load-factor` (ms of work per request, e.g. `25`).
pub fn parse_load_factor(text: &str) -> Result<Duration, String> {
    let ms: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("expected milliseconds of work, e.g. 25, got \"{text}\""))?;
    load_factor(ms)
}

/// Which middleware a request meets, by its route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// A client's read or write (`/data`, `/data/{key}`): every stage.
    Data,
    /// Health, peers and the status pages: the rate limit only.
    Status,
    /// Node to node (`/replicate`, `/gossip`, `/gossip/items`, which refuse callers
    /// without the cluster key themselves): none.
    Internal,
    /// A read of one node's copy (`/data/{key}?local=true`), how a node forwards a read:
    /// none if it carries the cluster key's MAC, else it is a client's [`Route::Data`].
    Forwarded,
}

impl Route {
    /// The route class of a request to `uri`.
    pub fn of(uri: &Uri) -> Route {
        let path = uri.path();
        let local = uri
            .query()
            .is_some_and(|q| q.split('&').any(|pair| pair == "local=true"));
        match path {
            "/replicate" | "/gossip" | "/gossip/items" => Route::Internal,
            _ if path.starts_with("/data/") && local => Route::Forwarded,
            "/data" => Route::Data,
            _ if path.starts_with("/data/") => Route::Data,
            _ => Route::Status,
        }
    }
}

/// One node's middleware state.
pub struct Overload {
    rate_limit: Option<RateLimit>,
    backpressure: Option<Backpressure>,
    capacity: Capacity,
    /// The peer breakers (the node's replication and gossip go through them).
    pub breakers: Breakers,
    /// Client data requests in flight now (admitted, not yet answered).
    in_flight: AtomicUsize,
    /// What a forwarded read from a peer is signed with.
    key: ClusterKey,
}

impl Overload {
    /// The middleware `config` asks for, timed on `clock`, slowed by `slowdown`; peers
    /// prove themselves with `key`.
    pub fn new(
        config: &OverloadConfig,
        clock: Clock,
        slowdown: Slowdown,
        events: EventSink,
        key: ClusterKey,
    ) -> Self {
        Overload {
            rate_limit: config.rate_limit.map(|n| RateLimit::new(n, clock.clone())),
            backpressure: config.backpressure.map(|n| Backpressure::new(n.get())),
            capacity: Capacity::new(
                config.workers.map(NonZeroUsize::get),
                config.load_factor,
                clock.clone(),
                slowdown,
            ),
            breakers: match config.circuit_breaker {
                Some(breaker) => Breakers::new(breaker, clock, events),
                None => Breakers::off(),
            },
            in_flight: AtomicUsize::new(0),
            key,
        }
    }

    /// The class `request` gets: a forwarded read counts as one only if a peer signed it
    /// (a bodiless GET, so its MAC is checked without reading anything).
    fn route(&self, request: &Request) -> Route {
        self.route_of(request.method(), request.uri(), request.headers())
    }

    /// [`Overload::route`] from a request's method, URI and headers.
    pub fn route_of(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> Route {
        match Route::of(uri) {
            Route::Forwarded => {
                let path = uri.path_and_query().map_or("", |p| p.as_str());
                let signed = headers
                    .get(auth::http::HEADER)
                    .and_then(|mac| mac.to_str().ok())
                    .is_some_and(|mac| {
                        auth::http::verify(&self.key, method.as_str(), path, b"", mac)
                    });
                if signed {
                    Route::Internal
                } else {
                    Route::Data
                }
            }
            route => route,
        }
    }

    /// `GET /queue-stats`.
    fn queue_stats(&self) -> serde_json::Value {
        serde_json::json!({
            "in_flight": self.in_flight.load(Ordering::Relaxed),
            "backpressure": self.backpressure.as_ref().map(Backpressure::stats),
            "capacity": self.capacity.stats(),
            "rate_limit": self.rate_limit.as_ref().map(|r| serde_json::json!({
                "per_second": r.per_second(),
                "burst": r.per_second(),
                "rejected": r.rejected(),
            })),
        })
    }
}

/// `/queue-stats` and `/circuit-status`, to merge into the node's router.
pub fn routes(overload: Arc<Overload>) -> Router {
    Router::new()
        .route(
            "/queue-stats",
            get(|State(o): State<Arc<Overload>>| async move { Json(o.queue_stats()) }),
        )
        .route(
            "/circuit-status",
            get(|State(o): State<Arc<Overload>>| async move { Json(o.breakers.status()) }),
        )
        .with_state(overload)
}

/// A 429 with a JSON error and `Retry-After` (whole seconds).
fn too_many(message: String, retry_after: Duration) -> Response {
    let secs = rate_limit::retry_after_secs(retry_after);
    let body = serde_json::json!({
        "error": message,
        "retry_after_ms": retry_after.as_millis() as u64,
    });
    let mut response = (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
        response.headers_mut().insert("retry-after", value);
    }
    response
}

/// Counts a data request in flight until dropped.
struct InFlight(Arc<Overload>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The middleware: rate limit, then backpressure, then capacity (see the module doc).
pub async fn guard(
    State(overload): State<Arc<Overload>>,
    request: Request,
    next: Next,
) -> Response {
    let route = overload.route(&request);
    let client = request.extensions().get::<PeerAddr>().map(|p| p.0.ip());
    admit(&overload, route, client, next.run(request)).await
}

/// What [`guard`] does for a request of class `route` from `client` (its address, if
/// known), whose answer `work` computes: runs it, or answers 429 without running it.
///
/// With capacity modelled, the request runs in a task of its own: like the seed's
/// threaded server, the node finishes (and keeps its slot and its place in flight for)
/// work whose client has already hung up; it does not notice the disconnect.
pub async fn admit(
    overload: &Arc<Overload>,
    route: Route,
    client: Option<IpAddr>,
    work: impl Future<Output = Response> + Send + 'static,
) -> Response {
    if route == Route::Internal {
        return work.await;
    }
    if let Some(limit) = &overload.rate_limit {
        let client = client.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        if let Err(wait) = limit.check(client) {
            let per_second = limit.per_second();
            return too_many(
                format!("rate limit exceeded: {per_second} requests/s per client"),
                wait,
            );
        }
    }
    if route == Route::Status {
        return work.await;
    }
    let place = match &overload.backpressure {
        None => None,
        Some(bp) => match bp.admit() {
            Some(place) => Some(place),
            None => {
                return too_many(
                    format!("overloaded: {} requests in flight", bp.in_flight()),
                    Duration::from_secs(1),
                )
            }
        },
    };
    overload.in_flight.fetch_add(1, Ordering::Relaxed);
    let counted = InFlight(overload.clone());
    if overload.capacity.is_unlimited() {
        let answer = work.await;
        drop((place, counted));
        return answer;
    }
    let work = tokio::spawn(async move {
        let answer = counted.0.capacity.serve(work).await;
        drop((place, counted));
        answer
    });
    match work.await {
        Ok(answer) => answer,
        Err(e) => crate::http::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("request failed: {e}"),
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_to_node_routes_are_exempt_and_status_routes_are_not_queued() {
        let route = |uri: &str| Route::of(&uri.parse().unwrap());
        assert_eq!(route("/data"), Route::Data);
        assert_eq!(route("/data/user:1"), Route::Data);
        assert_eq!(route("/data/user%3A1?local=false"), Route::Data);
        assert_eq!(route("/data/k?local=true"), Route::Forwarded);
        assert_eq!(route("/replicate"), Route::Internal);
        assert_eq!(route("/gossip"), Route::Internal);
        assert_eq!(route("/gossip/items"), Route::Internal);
        assert_eq!(route("/health"), Route::Status);
        assert_eq!(route("/queue-stats"), Route::Status);
        assert_eq!(route("/nope"), Route::Status);
    }

    #[test]
    fn a_local_read_is_exempt_only_when_a_peer_signed_it() {
        let key = ClusterKey::derived("test cluster");
        let overload = Overload::new(
            &OverloadConfig::default(),
            Clock::new(),
            Slowdown::new(),
            EventSink::new(|_| {}),
            key.clone(),
        );
        let read = |mac: Option<String>| {
            let mut request = Request::builder().uri("/data/k?local=true");
            if let Some(mac) = mac {
                request = request.header(auth::http::HEADER, mac);
            }
            overload.route(&request.body(axum::body::Body::empty()).unwrap())
        };
        let signed = auth::http::sign(&key, "GET", "/data/k?local=true", b"");
        assert_eq!(read(Some(signed)), Route::Internal);
        assert_eq!(read(None), Route::Data, "a client asking for a local copy");
        let other = ClusterKey::derived("another cluster");
        let forged = auth::http::sign(&other, "GET", "/data/k?local=true", b"");
        assert_eq!(read(Some(forged)), Route::Data);
        let for_another_key = auth::http::sign(&key, "GET", "/data/j?local=true", b"");
        assert_eq!(read(Some(for_another_key)), Route::Data);
    }
}
