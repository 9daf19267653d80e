//! Authenticated internal HTTP: the caller signs method, path and body with the cluster
//! key in the [`HEADER`] header ([`sign`], done by [`Pool`](crate::pool::Pool) when it
//! holds a key); internal routes sit behind [`guard`], which answers 401 with a JSON error
//! and reports a [`NodeEvent::Refused`] for anything unsigned or signed with another key.

use super::ClusterKey;
use crate::http::{error, PeerAddr};
use crate::runtime::{EventSink, NodeEvent};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The request header carrying the MAC.
pub const HEADER: &str = "x-cluster-mac";

const PURPOSE: &str = "simnode internal http request";

/// The MAC of one request: its method, its path with query, and its body.
pub fn sign(key: &ClusterKey, method: &str, path: &str, body: &[u8]) -> String {
    key.sign(PURPOSE, &[method.as_bytes(), path.as_bytes(), body])
}

/// Whether `mac` is [`sign`]'s MAC of this request.
pub fn verify(key: &ClusterKey, method: &str, path: &str, body: &[u8], mac: &str) -> bool {
    key.verify(PURPOSE, &[method.as_bytes(), path.as_bytes(), body], mac)
}

/// What [`guard`] needs: the key, where refusals are reported, and the body limit.
#[derive(Clone)]
pub struct Guard {
    /// The cluster key.
    pub key: ClusterKey,
    /// The node's events (refusals go there).
    pub events: EventSink,
    /// Largest body read to check its MAC.
    pub max_body: usize,
}

/// Middleware for internal routes (`route_layer(from_fn_with_state(guard, guard))`):
/// passes a request whose MAC verifies, refuses any other with 401.
pub async fn guard(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    match verified(&guard, &parts, body).await {
        Ok(bytes) => {
            next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
                .await
        }
        Err(refused) => refused,
    }
}

/// What [`guard`] checks, for a caller that routes by hand: the body of a request whose
/// MAC verifies, or the answer refusing it (401, or 413 for a body over the limit).
pub async fn verified(
    guard: &Guard,
    parts: &axum::http::request::Parts,
    body: axum::body::Body,
) -> Result<axum::body::Bytes, Response> {
    let peer = parts.extensions.get::<PeerAddr>().map(|p| p.0);
    verified_from(guard, parts, peer, body).await
}

/// [`verified`], the caller's address given (`None`: unknown).
async fn verified_from(
    guard: &Guard,
    parts: &axum::http::request::Parts,
    peer: Option<std::net::SocketAddr>,
    body: axum::body::Body,
) -> Result<axum::body::Bytes, Response> {
    let refuse = |reason: &str| {
        let peer = peer.map_or_else(|| "unknown".to_string(), |p| p.to_string());
        let path = parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path(), |p| p.as_str());
        guard.events.emit(NodeEvent::Refused {
            peer,
            what: format!("{} {path}", parts.method),
            reason: reason.to_string(),
        });
        error(
            StatusCode::UNAUTHORIZED,
            format!("{reason}: internal routes need the cluster key"),
        )
        .into_response()
    };
    let Some(mac) = parts.headers.get(HEADER).and_then(|v| v.to_str().ok()) else {
        return Err(refuse("no cluster MAC"));
    };
    let Ok(bytes) = axum::body::to_bytes(body, guard.max_body).await else {
        return Err(error(StatusCode::PAYLOAD_TOO_LARGE, "body over the limit").into_response());
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path(), |p| p.as_str());
    if !verify(&guard.key, parts.method.as_str(), path, &bytes, mac) {
        return Err(refuse("bad cluster MAC"));
    }
    Ok(bytes)
}

/// A fast path's internal route (see [`crate::http::Routes`]): [`guard`]'s check, then
/// `handler` on the verified body; what the router would do with the route layered.
pub fn guarded<F, A>(
    guard: &Guard,
    request: hyper::Request<hyper::body::Incoming>,
    peer: std::net::SocketAddr,
    handler: F,
) -> crate::http::Answering
where
    F: FnOnce(axum::body::Bytes) -> A + Send + 'static,
    A: std::future::Future<Output = Response> + Send,
{
    let guard = guard.clone();
    Box::pin(async move {
        let (parts, body) = request.into_parts();
        match verified_from(&guard, &parts, Some(peer), axum::body::Body::new(body)).await {
            Ok(body) => handler(body).await,
            Err(refused) => refused,
        }
    })
}
