//! The registry (seed 000's `registry.py`): nodes register, heartbeat every couple of
//! seconds, deregister on shutdown; a node silent for a TTL is dropped. It is only a
//! directory: nodes keep serving, with their last known membership, when it is down.
//!
//! Routes: `POST /register {"id","address"}`, `POST /heartbeat {"id"}` (answers
//! `{"ok": true, "nodes": [...]}`, the live nodes as `GET /nodes` lists them, so a beat
//! also refreshes the caller's membership), `POST /deregister {"id"}` (these three only
//! from callers holding the cluster key, see [`crate::auth`]), `GET /nodes`, `GET /health`.

use crate::auth::{self, http::Guard};
use crate::http::{error, json_body, serve_routes, Routes};
use crate::kv::node::MAX_BODY_BYTES;
use crate::runtime::{Clock, NodeEnv, NodeEvent};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One registered node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Node id (`node-1`).
    pub id: String,
    /// Where its HTTP API answers (`host:port`).
    pub address: String,
}

/// `POST /heartbeat` and `POST /deregister` bodies.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeId {
    /// Node id.
    pub id: String,
}

/// `GET /nodes` answer.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Nodes {
    /// Live nodes, by id.
    pub nodes: Vec<Member>,
}

/// `POST /heartbeat` answer.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Beat {
    /// The beat was taken.
    pub ok: bool,
    /// The live nodes after it, as `GET /nodes` lists them (absent from a registry that
    /// does not send them: the caller asks `GET /nodes` then).
    #[serde(default)]
    pub nodes: Option<Vec<Member>>,
}

/// Registry settings.
#[derive(Clone, Debug)]
pub struct RegistryConfig {
    /// Listen address.
    pub listen: SocketAddr,
    /// Silence after which a node is dropped.
    pub ttl: Duration,
}

struct Registry {
    clock: Clock,
    ttl: Duration,
    /// id -> (address, last heard on the local clock)
    members: BTreeMap<String, (String, Duration)>,
    events: crate::runtime::EventSink,
}

type Shared = Arc<Mutex<Registry>>;

impl Registry {
    fn expire(&mut self) {
        let now = self.clock.now();
        let ttl = self.ttl;
        let before = self.members.len();
        self.members
            .retain(|_, (_, seen)| now.saturating_sub(*seen) < ttl);
        if self.members.len() != before {
            self.report();
        }
    }

    fn report(&self) {
        let members = self.members.keys().cloned().collect();
        self.events.emit(NodeEvent::Members { members });
    }

    fn list(&self) -> Nodes {
        Nodes {
            nodes: self
                .members
                .iter()
                .map(|(id, (address, _))| Member {
                    id: id.clone(),
                    address: address.clone(),
                })
                .collect(),
        }
    }
}

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Registry> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

type Reply = (StatusCode, Json<serde_json::Value>);

async fn register(State(shared): State<Shared>, body: Bytes) -> Reply {
    let member: Member = match json_body(&body) {
        Ok(b) => b,
        Err(reply) => return reply,
    };
    if member.id.is_empty() || member.address.is_empty() {
        return error(StatusCode::BAD_REQUEST, "id and address must not be empty");
    }
    let mut registry = lock(&shared);
    let now = registry.clock.now();
    let changed = registry
        .members
        .insert(member.id.clone(), (member.address.clone(), now))
        .is_none_or(|(address, _)| address != member.address);
    if changed {
        registry.report();
    }
    (
        StatusCode::OK,
        Json(serde_json::json!({ "registered": member.id })),
    )
}

async fn heartbeat(State(shared): State<Shared>, body: Bytes) -> Reply {
    let node: NodeId = match json_body(&body) {
        Ok(b) => b,
        Err(reply) => return reply,
    };
    let mut registry = lock(&shared);
    registry.expire();
    let now = registry.clock.now();
    match registry.members.get_mut(&node.id) {
        Some((_, seen)) => {
            *seen = now;
            let beat = Beat {
                ok: true,
                nodes: Some(registry.list().nodes),
            };
            (StatusCode::OK, Json(serde_json::json!(beat)))
        }
        None => error(StatusCode::NOT_FOUND, "unknown node: register first"),
    }
}

async fn deregister(State(shared): State<Shared>, body: Bytes) -> Reply {
    let node: NodeId = match json_body(&body) {
        Ok(b) => b,
        Err(reply) => return reply,
    };
    let mut registry = lock(&shared);
    if registry.members.remove(&node.id).is_some() {
        registry.report();
    }
    (
        StatusCode::OK,
        Json(serde_json::json!({ "deregistered": node.id })),
    )
}

async fn nodes(State(shared): State<Shared>) -> Json<Nodes> {
    let mut registry = lock(&shared);
    registry.expire();
    Json(registry.list())
}

/// Runs the registry until ctrl-c.
pub async fn run(config: RegistryConfig, env: NodeEnv) -> io::Result<()> {
    let NodeEnv {
        clock,
        events,
        cluster_key,
        wire,
        ..
    } = env;
    events.emit(NodeEvent::Started {
        recovered_records: 0,
        damage: None,
    });
    let shared: Shared = Arc::new(Mutex::new(Registry {
        clock,
        ttl: config.ttl,
        members: BTreeMap::new(),
        events: events.clone(),
    }));
    // Membership changes only from nodes that sign with the cluster key: otherwise anyone
    // could register an address of theirs under a node's id and take its traffic.
    let guard = Guard {
        key: cluster_key,
        events: events.clone(),
        max_body: MAX_BODY_BYTES,
    };
    // The beats and registrations (a node's every few seconds) skip the router.
    let fast = {
        let (guard, shared) = (guard.clone(), shared.clone());
        move |request: hyper::Request<hyper::body::Incoming>, peer| {
            let state = State(shared.clone());
            match (request.method(), request.uri().path()) {
                (&Method::POST, "/heartbeat") => {
                    Ok(auth::http::guarded(&guard, request, peer, |b| async move {
                        heartbeat(state, b).await.into_response()
                    }))
                }
                (&Method::POST, "/register") => {
                    Ok(auth::http::guarded(&guard, request, peer, |b| async move {
                        register(state, b).await.into_response()
                    }))
                }
                _ => Err(Box::new(request)),
            }
        }
    };
    let router = Router::new()
        .route("/register", post(register))
        .route("/heartbeat", post(heartbeat))
        .route("/deregister", post(deregister))
        .route_layer(axum::middleware::from_fn_with_state(
            guard,
            auth::http::guard,
        ))
        .route("/nodes", get(nodes))
        .route(
            "/health",
            get(|| async { Json(serde_json::json!({ "status": "ok" })) }),
        )
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such route") })
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let routes = Routes::new(router).with_fast_path(fast);
    let server = tokio::spawn(serve_routes(listener, routes, wire));
    let expiry = {
        let shared = shared.clone();
        let clock = lock(&shared).clock.clone();
        tokio::spawn(async move {
            loop {
                // On the registry's own clock, like the TTL it enforces.
                clock.sleep(Duration::from_millis(500)).await;
                lock(&shared).expire();
            }
        })
    };
    let _ = tokio::signal::ctrl_c().await;
    server.abort();
    expiry.abort();
    events.emit(NodeEvent::Stopped {
        reason: "ctrl-c".into(),
    });
    Ok(())
}

#[cfg(all(test, madsim))]
mod tests {
    use super::*;

    fn body(value: serde_json::Value) -> Bytes {
        Bytes::from(value.to_string())
    }

    /// A beat answers with the live nodes, as `GET /nodes` lists them: the node takes its
    /// membership from it instead of asking again.
    #[test]
    fn a_heartbeat_answers_with_the_live_nodes() {
        let runtime = madsim::runtime::Runtime::new();
        runtime.block_on(async {
            let shared: Shared = Arc::new(Mutex::new(Registry {
                clock: Clock::new(),
                ttl: Duration::from_secs(6),
                members: BTreeMap::new(),
                events: crate::runtime::EventSink::new(|_| {}),
            }));
            for (id, address) in [("n1", "10.0.0.1:8000"), ("n2", "10.0.0.2:8000")] {
                let member = serde_json::json!({ "id": id, "address": address });
                let (status, _) = register(State(shared.clone()), body(member)).await;
                assert_eq!(status, StatusCode::OK);
            }
            let beat =
                |id: &str| heartbeat(State(shared.clone()), body(serde_json::json!({ "id": id })));
            let (status, Json(answer)) = beat("n1").await;
            assert_eq!(status, StatusCode::OK);
            let answer: Beat = serde_json::from_value(answer).expect("a beat's answer");
            let listed = nodes(State(shared.clone())).await.0.nodes;
            assert!(answer.ok);
            assert_eq!(answer.nodes.as_ref(), Some(&listed));
            assert_eq!(listed.len(), 2);
            // n2 falls silent past the TTL: n1's next beat no longer lists it.
            tokio::time::sleep(Duration::from_secs(4)).await;
            let _ = beat("n1").await;
            tokio::time::sleep(Duration::from_secs(4)).await;
            let (_, Json(answer)) = beat("n1").await;
            let answer: Beat = serde_json::from_value(answer).expect("a beat's answer");
            let ids: Vec<String> = answer
                .nodes
                .unwrap_or_default()
                .into_iter()
                .map(|m| m.id)
                .collect();
            assert_eq!(ids, ["n1"]);
            let (status, _) = beat("n9").await;
            assert_eq!(
                status,
                StatusCode::NOT_FOUND,
                "an unknown node must register first"
            );
        });
    }

    /// An answer without `nodes` (a registry that does not list them) still reads as a beat.
    #[test]
    fn a_beat_without_nodes_reads_as_none() {
        let beat: Beat = serde_json::from_str(r#"{"ok": true}"#).expect("the older answer");
        assert!(beat.ok && beat.nodes.is_none());
    }
}
