//! Forwarding one request, and what a failing backend means for it.
//!
//! - The backend answered (any status, a 429 or a 503 included): that answer goes back,
//!   with `X-Backend`.
//! - The connection could not be made: the request was never sent, so it goes to another
//!   backend whatever its method, and this backend is taken down until a health check
//!   answers.
//! - It was sent and no complete answer came (the connection broke, or
//!   `backend_timeout` passed): a `GET` or `HEAD` is tried on another backend (reads are
//!   idempotent); any other method gets **502** with a JSON error naming the backend,
//!   because the backend may have applied it and sending it twice is not ours to decide.
//! - No backend is up, or none could be reached: **503** with a JSON error (nothing was
//!   applied anywhere).
//!
//! Each backend is tried at most once per request.

use super::{Balancer, BACKEND_HEADER};
use crate::http::{error, CallError};
use crate::pool::{Answer, Outgoing};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Method, StatusCode};
use std::sync::Arc;

/// Largest request body forwarded (larger: 413).
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Response headers that describe one connection, not the answer: not relayed.
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
    header::CONTENT_LENGTH,
];

/// The fallback handler: every request but `/lb-stats`.
pub(crate) async fn forward(State(balancer): State<Arc<Balancer>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        let why = format!("request body over {MAX_BODY_BYTES} bytes (or unreadable)");
        return error(StatusCode::PAYLOAD_TOO_LARGE, why).into_response();
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .cloned()
        .unwrap_or(HeaderValue::from_static("application/json"));
    let idempotent = matches!(parts.method, Method::GET | Method::HEAD);
    let mut tried = Vec::new();
    // Backends that got the request but gave no answer, and those never reached.
    let mut unanswered: Vec<String> = Vec::new();
    let mut unreachable: Vec<String> = Vec::new();
    while let Some(attempt) = balancer.start(&tried) {
        tried.push(attempt.index);
        let outgoing = Outgoing {
            method: parts.method.clone(),
            path,
            content_type: content_type.clone(),
            body: body.clone(),
        };
        let timeout = balancer
            .clock
            .true_duration(balancer.config.backend_timeout);
        let started = balancer.clock.now();
        let result = balancer.pool.send(attempt.addr, outgoing, timeout).await;
        let took = balancer.clock.now().saturating_sub(started);
        match result {
            Ok(answer) => {
                balancer.answered(&attempt, took);
                return relay(answer, &attempt.name);
            }
            Err(CallError::Unreachable(why)) => {
                balancer.failed(&attempt);
                balancer.set_health(attempt.index, Err(format!("connect failed: {why}")));
                unreachable.push(format!("{}: {why}", attempt.name));
            }
            Err(e) => {
                balancer.failed(&attempt);
                if !idempotent {
                    let message = format!(
                        "backend {} gave no answer ({e}); the request may have been applied",
                        attempt.name
                    );
                    return gateway_error(StatusCode::BAD_GATEWAY, message, Some(&attempt.name));
                }
                unanswered.push(format!("{}: {e}", attempt.name));
            }
        }
    }
    balancer.unrouted();
    if !unanswered.is_empty() {
        let message = format!("no backend answered: {}", unanswered.join("; "));
        return gateway_error(StatusCode::BAD_GATEWAY, message, None);
    }
    let message = if unreachable.is_empty() {
        "no healthy backend".to_string()
    } else {
        format!("no backend reachable: {}", unreachable.join("; "))
    };
    gateway_error(StatusCode::SERVICE_UNAVAILABLE, message, None)
}

/// The backend's answer as the client's response, plus `X-Backend`.
fn relay(answer: Answer, backend: &str) -> Response {
    let mut response = Response::new(Body::from(answer.body));
    *response.status_mut() = answer.status;
    let headers = response.headers_mut();
    for (name, value) in &answer.headers {
        if !HOP_BY_HOP.contains(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    set_backend(headers, backend);
    response
}

/// A JSON error of the balancer's own, naming the backend when one is to blame.
fn gateway_error(status: StatusCode, message: String, backend: Option<&str>) -> Response {
    let mut response = error(status, message).into_response();
    if let Some(backend) = backend {
        set_backend(response.headers_mut(), backend);
    }
    response
}

fn set_backend(headers: &mut hyper::HeaderMap, backend: &str) {
    if let Ok(value) = HeaderValue::from_str(backend) {
        headers.insert(HeaderName::from_static(BACKEND_HEADER), value);
    }
}
