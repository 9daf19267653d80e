//! The KV node (seed 000's "resilient node"): an HTTP/JSON store that registers with the
//! registry, places keys on a consistent-hash ring of the live members, stores a write
//! locally and replicates it to the key's replicas (acknowledging after `write_quorum`
//! copies), and repairs the rest by anti-entropy with another replica. Keys live on
//! their replicas: anti-entropy covers only the keys both sides replicate, and a key this
//! node holds without owning it (membership changed, or a client wrote through it) is
//! handed off to its replicas and dropped here once they all confirmed. Membership comes
//! from the registry or, with `gossip`, from SWIM ([`super::swim`]).
//!
//! Routes (the seed's curl walkthrough works verbatim): `POST /data {"key","value"}`
//! (optionally `"context"`: the version the client last saw, so its write is ordered
//! after it, and `"client"`: the client's name, so its own clock orders its writes), `GET /data/{key}` (`?local=true`: this node's copy only), `GET /health`,
//! `GET /peers`; internal `POST /replicate`, `POST /gossip` (one digest page) and
//! `POST /gossip/items` (what the peer wanted), which only callers holding the cluster key
//! reach ([`crate::auth`]; others get 401). Bad requests get a 4xx
//! with a JSON error and the node keeps serving.
//!
//! Seed 001's middleware sits in front of the routes ([`super::overload`]: rate limit,
//! backpressure, simulated capacity; `GET /queue-stats`), breakers wrap the replication
//! and gossip calls (`GET /circuit-status`), and `GET /discovery-status` shows the
//! registry as this node sees it ([`super::discovery`]).

use super::anti_entropy::{self, DigestPage, DigestReply};
use super::discovery::Discovery;
use super::overload::breaker::Breakers;
use super::overload::{self, Overload, OverloadConfig};
use super::registry::{Beat, Member, NodeId, Nodes};
use super::ring::Ring;
use super::swim::{self, GossipConfig, MemberInfo, View};
use super::version::{wins, Version, VersionSource, Versioning, MAX_COUNTER};
use crate::auth::{self, http::Guard};
use crate::http::{error, json_body, serve_routes, Answering, CallError, NotMine, Routes};
use crate::pool::Pool;
use crate::runtime::{Clock, EventSink, NodeEnv, NodeEvent};
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::future::Either;
use rand::Rng;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::mpsc;

/// Pauses before each attempt of one replication: the first at once, then retries.
const REPLICATION_RETRY_PAUSES: [Duration; 4] = [
    Duration::ZERO,
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
];

/// `key` percent-encoded for a URL path (every byte but the unreserved ones).
pub fn percent_encode(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for byte in key.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Largest accepted client request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Largest accepted node-to-node body: an anti-entropy page, or one item whose value
/// filled a client body, with room for its key and version.
pub const INTERNAL_BODY_BYTES: usize = 2 * anti_entropy::PAGE_BYTES + MAX_BODY_BYTES;

/// KV node settings (flags of `kv-node`, knobs of `[config]`).
#[derive(Clone, Debug)]
pub struct KvConfig {
    /// Node id, e.g. `node-1`.
    pub id: String,
    /// Listen address.
    pub listen: SocketAddr,
    /// The address other nodes and the registry use for this node.
    pub advertise: String,
    /// Registry address, if any (registry membership, seed 000).
    pub registry: Option<SocketAddr>,
    /// Gossip membership instead (seed 003): SWIM with these settings.
    pub gossip: Option<GossipConfig>,
    /// Copies of each key (seed: 3).
    pub replication_factor: usize,
    /// Ring points per member (seed 002: 150).
    pub virtual_nodes: u32,
    /// Copies stored before the client's ack, this node's included (seed: 1).
    pub write_quorum: usize,
    /// Version source.
    pub versioning: Versioning,
    /// Anti-entropy period (seed: 3 s).
    pub gossip_interval: Duration,
    /// Registry heartbeat period (seed: 2 s).
    pub registry_heartbeat: Duration,
    /// Timeout of one node-to-node call.
    pub peer_timeout: Duration,
    /// Seed 001's middleware (all off by default).
    pub overload: OverloadConfig,
}

/// A stored value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// The key.
    pub key: String,
    /// Its value.
    pub value: String,
    /// Its version.
    pub version: Version,
}

/// `POST /data` body.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Put {
    /// The key (non-empty).
    pub key: String,
    /// The value.
    pub value: String,
    /// The version the client last saw or wrote for this key.
    #[serde(default)]
    pub context: Option<Version>,
    /// The client's name: with a `context`, the write's version is `(context + 1,
    /// client)`, ordered by the client's own clock (see [`super::version`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
}

/// Longest client name accepted in a write.
pub const MAX_CLIENT_NAME: usize = 64;

struct Node {
    config: KvConfig,
    /// Keep-alive connections to peers and the registry.
    pool: Pool,
    clock: Clock,
    events: EventSink,
    store: BTreeMap<String, Item>,
    versions: VersionSource,
    /// id -> address, this node included.
    members: BTreeMap<String, String>,
    /// The ring of `members`, built when first needed after a change (a large gossip
    /// cluster changes its view often while it forms; a node with no keys never needs it).
    ring: std::sync::OnceLock<Ring>,
    /// Circuit breakers on calls to peers (off unless `circuit_breaker`).
    breakers: Breakers,
    /// The registry as this node sees it.
    discovery: Discovery,
    /// The SWIM view (gossip membership; empty with the registry).
    view: View,
    /// Gossip bytes this node has sent.
    gossip_bytes: Arc<std::sync::atomic::AtomicU64>,
}

type Shared = Arc<Mutex<Node>>;

fn lock(shared: &Shared) -> MutexGuard<'_, Node> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

impl Node {
    /// Applies an item if its version wins; true if it did.
    fn merge(&mut self, item: Item) -> bool {
        self.versions.observe(&item.version);
        let current = self.store.get(&item.key).map(|i| &i.version);
        if wins(&item.version, current) {
            self.store.insert(item.key.clone(), item);
            true
        } else {
            false
        }
    }

    /// How long a peer call may take, in true time: `peer_timeout` on this node's clock,
    /// so drift stretches or shrinks it as it does every other timer of the node.
    fn peer_timeout(&self) -> Duration {
        self.clock.true_duration(self.config.peer_timeout)
    }

    fn set_members(&mut self, members: BTreeMap<String, String>) {
        if members != self.members {
            self.ring = std::sync::OnceLock::new();
            self.members = members;
            for id in self.members.keys().filter(|id| **id != self.config.id) {
                self.breakers.know(id);
            }
            // Gossip reports each member's change itself (`NodeEvent::Member`): a full
            // list per change would grow with the square of the cluster.
            if self.config.gossip.is_none() {
                let ids = self.members.keys().cloned().collect();
                self.events.emit(NodeEvent::Members { members: ids });
            }
        }
    }

    /// The ring of the current members.
    fn ring(&self) -> &Ring {
        self.ring.get_or_init(|| {
            Ring::new(
                self.members.keys().map(String::as_str),
                self.config.virtual_nodes,
            )
        })
    }

    /// Whether the ring names `id` among the replicas of `key`.
    fn is_replica(&self, key: &str, id: &str) -> bool {
        self.ring()
            .replicas_of(key, self.config.replication_factor)
            .contains(&id)
    }

    /// Whether the ring names both `a` and `b` among the replicas of `key` (anti-entropy's
    /// filter: one walk of the ring, not two).
    fn replicates_both(&self, key: &str, a: &str, b: &str) -> bool {
        let replicas = self.ring().replicas_of(key, self.config.replication_factor);
        replicas.contains(&a) && replicas.contains(&b)
    }

    /// Other replicas of `key` and their addresses.
    fn other_replicas(&self, key: &str) -> Vec<(String, String)> {
        self.ring()
            .replicas_of(key, self.config.replication_factor)
            .into_iter()
            .filter(|id| *id != self.config.id)
            .filter_map(|id| {
                let (id, address) = self.members.get_key_value(id)?;
                Some((id.clone(), address.clone()))
            })
            .collect()
    }
}

fn resolve(address: &str) -> Option<SocketAddr> {
    address.parse().ok()
}

type Reply = (StatusCode, Json<serde_json::Value>);

async fn put(State(shared): State<Shared>, body: Bytes) -> Response {
    let put: Put = match json_body(&body) {
        Ok(b) => b,
        Err(reply) => return reply.into_response(),
    };
    if put.key.is_empty() {
        return error(StatusCode::BAD_REQUEST, "key must not be empty").into_response();
    }
    if put.context.as_ref().is_some_and(|c| !c.is_sane()) {
        return absurd_version().into_response();
    }
    if put
        .client
        .as_ref()
        .is_some_and(|c| c.is_empty() || c.len() > MAX_CLIENT_NAME)
    {
        return error(
            StatusCode::BAD_REQUEST,
            format!("client must be 1 to {MAX_CLIENT_NAME} bytes"),
        )
        .into_response();
    }
    let (item, replicas, quorum, timeout, pool, clock, breakers) = {
        let mut node = lock(&shared);
        let wall_ms = node.clock.wall_ms();
        let current = node.store.get(&put.key).map(|i| i.version.clone());
        let Some(version) = node.versions.next(
            current.as_ref(),
            put.context.as_ref(),
            put.client.as_deref(),
            wall_ms,
        ) else {
            return error(
                StatusCode::BAD_REQUEST,
                "the version counter cannot go past the context (it is at its maximum)",
            )
            .into_response();
        };
        let item = Item {
            key: put.key.clone(),
            value: put.value,
            version,
        };
        node.merge(item.clone());
        let quorum = node.config.write_quorum.max(1);
        (
            item,
            node.other_replicas(&put.key),
            quorum,
            node.peer_timeout(),
            node.pool.clone(),
            node.clock.clone(),
            node.breakers.clone(),
        )
    };
    // Replicate to every other replica; answer once `quorum` copies exist (ours counts).
    let (tx, mut rx) = mpsc::channel(replicas.len().max(1));
    for (peer, address) in &replicas {
        let (tx, item, peer) = (tx.clone(), item.clone(), peer.clone());
        let Some(addr) = resolve(address) else {
            continue;
        };
        let (pool, clock, breakers) = (pool.clone(), clock.clone(), breakers.clone());
        tokio::spawn(async move {
            // The first outcome counts towards the quorum; a failed copy is retried in
            // the background, and whatever is still missing after that is anti-entropy's.
            // An open breaker refuses an attempt at once: a copy not made.
            let mut tx = Some(tx);
            for (attempt, pause) in REPLICATION_RETRY_PAUSES.iter().enumerate() {
                if attempt > 0 {
                    clock.sleep(*pause).await;
                }
                let call = pool.call(addr, Method::POST, "/replicate", Some(&item), timeout);
                let result: Result<IgnoredAny, CallError> = breakers.call(&peer, call).await;
                if let Some(tx) = tx.take() {
                    let _ = tx.send(result.is_ok()).await;
                }
                if result.is_ok() {
                    return;
                }
            }
        });
    }
    drop(tx);
    let mut acked = 1;
    while acked < quorum {
        match rx.recv().await {
            Some(true) => acked += 1,
            Some(false) => {}
            None => break,
        }
    }
    let error = (acked < quorum).then(|| {
        format!("only {acked} of {quorum} copies confirmed; stored here, outcome unknown")
    });
    let status = match error {
        Some(_) => StatusCode::SERVICE_UNAVAILABLE,
        None => StatusCode::OK,
    };
    let body = Written {
        acked,
        error,
        key: &item.key,
        replicas: replicas.iter().map(|(id, _)| id.as_str()).collect(),
        value: &item.value,
        version: &item.version,
    };
    (status, Json(body)).into_response()
}

/// The answer to `POST /data`, its fields in the order a JSON object of them has always
/// been written in (sorted), so the bytes are the same as they were.
#[derive(Serialize)]
struct Written<'a> {
    acked: usize,
    /// Why the write is not acknowledged (too few copies), when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    key: &'a str,
    replicas: Vec<&'a str>,
    value: &'a str,
    version: &'a Version,
}

/// The answer to `POST /replicate` (whether the copy was newer) and to `POST
/// /gossip/items` (how many items were).
#[derive(Serialize)]
struct Accepted<T> {
    accepted: T,
}

#[derive(Deserialize)]
struct ReadOptions {
    #[serde(default)]
    local: bool,
}

async fn get_data(
    State(shared): State<Shared>,
    Path(key): Path<String>,
    Query(options): Query<ReadOptions>,
) -> Response {
    let (local, replica, replicas, timeout, pool) = {
        let node = lock(&shared);
        (
            node.store.get(&key).cloned(),
            node.is_replica(&key, &node.config.id),
            node.other_replicas(&key),
            node.peer_timeout(),
            node.pool.clone(),
        )
    };
    // A replica answers from its copy; any other node asks the key's replicas first (a
    // copy it still holds is one being handed off, and may be behind theirs).
    if let Some(item) = local.as_ref().filter(|_| options.local || replica) {
        return (StatusCode::OK, Json(item)).into_response();
    }
    if !options.local {
        // Not here (yet): ask the key's replicas.
        for (_, address) in replicas {
            let Some(addr) = resolve(&address) else {
                continue;
            };
            // The key travels percent-encoded: `q?x=1` must not become key `q`.
            let path = format!("/data/{}?local=true", percent_encode(&key));
            if let Ok(item) = pool
                .call::<(), Item>(addr, Method::GET, &path, None, timeout)
                .await
            {
                let answer = (StatusCode::OK, Json(&item)).into_response();
                if replica {
                    lock(&shared).merge(item);
                }
                return answer;
            }
        }
    }
    if let Some(item) = local {
        return (StatusCode::OK, Json(item)).into_response();
    }
    error(StatusCode::NOT_FOUND, format!("key \"{key}\" not found")).into_response()
}

async fn replicate(State(shared): State<Shared>, body: Bytes) -> Response {
    let item: Item = match json_body(&body) {
        Ok(b) => b,
        Err(reply) => return reply.into_response(),
    };
    if !item.version.is_sane() {
        return absurd_version().into_response();
    }
    let accepted = lock(&shared).merge(item);
    (StatusCode::OK, Json(Accepted { accepted })).into_response()
}

/// The answer to a version whose counter no real write can have.
fn absurd_version() -> Reply {
    error(
        StatusCode::BAD_REQUEST,
        format!("version counter above {MAX_COUNTER}: refused"),
    )
}

/// `POST /gossip`: one page of a peer's digest; answers with what differs in its range.
async fn gossip(State(shared): State<Shared>, body: Bytes) -> Result<Json<DigestReply>, Reply> {
    let page: DigestPage = json_body(&body)?;
    if page.versions.iter().any(|(_, v)| !v.is_sane()) {
        return Err(absurd_version());
    }
    let node = lock(&shared);
    let me = node.config.id.as_str();
    let both = |key: &str| node.replicates_both(key, me, &page.from);
    Ok(Json(anti_entropy::reply(&node.store, me, &page, &both)))
}

/// `POST /gossip/items`: items a peer found this node wanting.
async fn gossip_items(State(shared): State<Shared>, body: Bytes) -> Response {
    let items: Vec<Item> = match json_body::<anti_entropy::Batch>(&body) {
        Ok(batch) => batch.items,
        Err(reply) => return reply.into_response(),
    };
    if items.iter().any(|i| !i.version.is_sane()) {
        return absurd_version().into_response();
    }
    let mut node = lock(&shared);
    let accepted = items.into_iter().filter(|i| node.merge(i.clone())).count();
    drop(node);
    (StatusCode::OK, Json(Accepted { accepted })).into_response()
}

async fn health(State(shared): State<Shared>) -> Json<serde_json::Value> {
    let node = lock(&shared);
    Json(serde_json::json!({
        "status": "ok",
        "id": node.config.id,
        "keys": node.store.len(),
        "members": node.members.len(),
    }))
}

async fn peers(State(shared): State<Shared>) -> Json<serde_json::Value> {
    let node = lock(&shared);
    let peers: Vec<Member> = node
        .members
        .iter()
        .filter(|(id, _)| **id != node.config.id)
        .map(|(id, address)| Member {
            id: id.clone(),
            address: address.clone(),
        })
        .collect();
    Json(serde_json::json!({ "id": node.config.id, "peers": peers }))
}

/// `GET /discovery-status`: the registry, the last registration and heartbeat, members.
async fn discovery_status(State(shared): State<Shared>) -> Json<serde_json::Value> {
    let node = lock(&shared);
    let members: Vec<(&str, &str)> = node
        .members
        .iter()
        .map(|(id, address)| (id.as_str(), address.as_str()))
        .collect();
    Json(node.discovery.status(&node.clock, &members))
}

/// `GET /members`: every member this node knows with its state and incarnation. With
/// gossip membership that is the SWIM view (down members included); with the registry,
/// the registry's members, all alive.
async fn list_members(State(shared): State<Shared>) -> Json<serde_json::Value> {
    let node = lock(&shared);
    let rows: Vec<MemberInfo> = if node.config.gossip.is_some() {
        node.view.values().cloned().collect()
    } else {
        node.members
            .iter()
            .map(|(id, address)| MemberInfo {
                id: id.clone(),
                address: address.clone(),
                state: crate::runtime::MemberState::Alive,
                incarnation: 0,
                generation: 0,
            })
            .collect()
    };
    Json(serde_json::json!({
        "id": node.config.id,
        "membership": if node.config.gossip.is_some() { "gossip" } else { "registry" },
        "gossip_bytes_sent": node.gossip_bytes.load(std::sync::atomic::Ordering::Relaxed),
        "members": rows,
    }))
}

/// Starts SWIM for this node: every view it publishes becomes the node's members (and
/// so its ring). Returns the sender of the leave request.
fn start_gossip(
    shared: &Shared,
    config: GossipConfig,
    key: crate::auth::ClusterKey,
    routes: crate::runtime::Routes,
) -> mpsc::Sender<swim::LeaveRequest> {
    let (leave_tx, leave) = mpsc::channel(1);
    let node = lock(shared);
    let on_change = {
        let shared = shared.clone();
        Box::new(move |view: &View| {
            let mut node = lock(&shared);
            node.view = view.clone();
            node.set_members(swim::active(view));
        })
    };
    let driver = swim::Driver {
        config,
        id: node.config.id.clone(),
        listen: node.config.listen,
        clock: node.clock.clone(),
        events: node.events.clone(),
        key,
        on_change,
        leave,
        bytes_sent: node.gossip_bytes.clone(),
        routes,
    };
    let events = node.events.clone();
    tokio::spawn(async move {
        if let Err(e) = swim::run(driver).await {
            events.emit(NodeEvent::Stopped {
                reason: format!("gossip membership failed: {e}"),
            });
        }
    });
    leave_tx
}

/// Registers, then heartbeats and refreshes membership: from the heartbeat's answer, or
/// from `GET /nodes` after a registration (or when the answer lists none); keeps the last
/// view when the registry is unreachable.
async fn membership(shared: Shared, registry: SocketAddr) {
    let (me, address, every, clock, pool) = {
        let node = lock(&shared);
        (
            node.config.id.clone(),
            node.config.advertise.clone(),
            node.config.registry_heartbeat,
            node.clock.clone(),
            node.pool.clone(),
        )
    };
    let member = Member {
        id: me.clone(),
        address: address.clone(),
    };
    let mut registered = false;
    loop {
        let timeout = lock(&shared).peer_timeout();
        // The live nodes, when the heartbeat's answer listed them.
        let mut listed: Option<Vec<Member>> = None;
        if !registered {
            let answer = pool
                .call::<_, serde_json::Value>(
                    registry,
                    Method::POST,
                    "/register",
                    Some(&member),
                    timeout,
                )
                .await;
            registered = answer.is_ok();
            let mut node = lock(&shared);
            match answer {
                Ok(_) => node.discovery.registered(&clock),
                Err(e) => node.discovery.failed(format!("register: {e}"), false),
            }
        } else {
            let beat = NodeId { id: me.clone() };
            let answer = pool
                .call::<_, Beat>(registry, Method::POST, "/heartbeat", Some(&beat), timeout)
                .await;
            let forgotten = matches!(answer, Err(CallError::Status(404, _)));
            match answer {
                Ok(beat) => {
                    listed = beat.nodes;
                    lock(&shared).discovery.heartbeat(&clock)
                }
                Err(e) => lock(&shared)
                    .discovery
                    .failed(format!("heartbeat: {e}"), forgotten),
            }
            if forgotten {
                registered = false; // the registry forgot us (restarted, or we were slow)
                continue;
            }
        }
        let nodes = match listed {
            Some(nodes) => Some(nodes),
            None => pool
                .call::<(), Nodes>(registry, Method::GET, "/nodes", None, timeout)
                .await
                .ok()
                .map(|n| n.nodes),
        };
        if let Some(nodes) = nodes {
            let mut members: BTreeMap<String, String> =
                nodes.into_iter().map(|m| (m.id, m.address)).collect();
            members.insert(me.clone(), address.clone());
            lock(&shared).set_members(members);
        }
        clock.sleep(every).await;
    }
}

/// Anti-entropy: every interval, reconcile the whole store with one random peer, page by
/// page (see [`anti_entropy`]), so every message stays bounded whatever the store's size.
async fn anti_entropy(shared: Shared) {
    loop {
        let (every, clock) = {
            let node = lock(&shared);
            (node.config.gossip_interval, node.clock.clone())
        };
        clock.sleep(every).await;
        hand_off(&shared).await;
        let (peer, timeout) = {
            let node = lock(&shared);
            let Some(peer) = node.pick_co_replica() else {
                continue;
            };
            (peer, node.peer_timeout())
        };
        let Some(addr) = resolve(&peer.1) else {
            continue;
        };
        reconcile(&shared, &peer.0, addr, timeout).await;
    }
}

/// Keys handed off per anti-entropy round, at most.
const HAND_OFF_PER_ROUND: usize = 256;

impl Node {
    /// A random peer that shares keys with this node: another replica of a random key this
    /// node owns; any other member when it owns none (a new node learns its keys from
    /// the peers' rounds and from the reply's items).
    fn pick_co_replica(&self) -> Option<(String, String)> {
        let me = self.config.id.as_str();
        let mut rng = madsim::rand::thread_rng();
        if !self.store.is_empty() {
            let key = self.store.keys().nth(rng.gen_range(0..self.store.len()))?;
            let others = self.other_replicas(key);
            if self.is_replica(key, me) && !others.is_empty() {
                return Some(others[rng.gen_range(0..others.len())].clone());
            }
        }
        let peers: Vec<(&String, &String)> =
            self.members.iter().filter(|(id, _)| **id != me).collect();
        if peers.is_empty() {
            return None;
        }
        let (id, address) = peers[rng.gen_range(0..peers.len())];
        Some((id.clone(), address.clone()))
    }

    /// Items this node holds but the ring no longer names it a replica of (membership
    /// changed, or a client wrote through it), with their replicas: up to `most`.
    fn not_owned(&self, most: usize) -> Vec<(Item, Vec<(String, String)>)> {
        let me = self.config.id.as_str();
        self.store
            .values()
            .filter(|item| !self.is_replica(&item.key, me))
            .take(most)
            .map(|item| (item.clone(), self.other_replicas(&item.key)))
            .collect()
    }
}

/// Hand-off: every item this node holds but does not own goes to each of its replicas,
/// in one bounded batch per replica; once every replica has confirmed (it holds that
/// version or a newer one), the item is removed here, unless it changed meanwhile.
async fn hand_off(shared: &Shared) {
    let (moving, pool, breakers, timeout) = {
        let node = lock(shared);
        (
            node.not_owned(HAND_OFF_PER_ROUND),
            node.pool.clone(),
            node.breakers.clone(),
            node.peer_timeout(),
        )
    };
    // peer -> (address, the items it should hold); item key -> replicas still to confirm.
    let mut to: BTreeMap<String, (String, Vec<Item>)> = BTreeMap::new();
    let mut pending: BTreeMap<String, usize> = BTreeMap::new();
    for (item, replicas) in &moving {
        if replicas.is_empty() {
            continue; // no owner known yet: keep it
        }
        pending.insert(item.key.clone(), replicas.len());
        for (peer, address) in replicas {
            let entry = to
                .entry(peer.clone())
                .or_insert_with(|| (address.clone(), Vec::new()));
            entry.1.push(item.clone());
        }
    }
    for (peer, (address, items)) in to {
        let Some(addr) = resolve(&address) else {
            continue;
        };
        for chunk in anti_entropy::chunks(items) {
            let keys: Vec<String> = chunk.iter().map(|i| i.key.clone()).collect();
            let batch = anti_entropy::Batch { items: chunk };
            let call = pool.call(addr, Method::POST, "/gossip/items", Some(&batch), timeout);
            let sent: Result<IgnoredAny, CallError> = breakers.call(&peer, call).await;
            if sent.is_err() {
                break; // the rest for this peer waits for the next round
            }
            for key in keys {
                if let Some(left) = pending.get_mut(&key) {
                    *left -= 1;
                }
            }
        }
    }
    let mut node = lock(shared);
    let me = node.config.id.clone();
    for (item, _) in moving {
        let confirmed = pending.get(&item.key) == Some(&0);
        let unchanged = node.store.get(&item.key) == Some(&item);
        if confirmed && unchanged && !node.is_replica(&item.key, &me) {
            node.store.remove(&item.key);
        }
    }
}

/// One anti-entropy round with `peer` at `addr`, through its breaker; stops at the first
/// failed (or refused) call (the next round starts over).
async fn reconcile(shared: &Shared, peer: &str, addr: SocketAddr, timeout: Duration) {
    let (pool, breakers) = {
        let node = lock(shared);
        (node.pool.clone(), node.breakers.clone())
    };
    let mut after: Option<String> = None;
    for _ in 0..anti_entropy::MAX_PAGES_PER_ROUND {
        let page = {
            let node = lock(shared);
            let me = node.config.id.as_str();
            let both = |key: &str| node.replicates_both(key, me, peer);
            anti_entropy::page(&node.store, me, after.as_deref(), &both)
        };
        let call = pool.call::<_, DigestReply>(addr, Method::POST, "/gossip", Some(&page), timeout);
        let Ok(answer) = breakers.call(peer, call).await else {
            return;
        };
        let batches = {
            let mut node = lock(shared);
            for item in answer.items {
                node.merge(item);
            }
            anti_entropy::batches(&node.store, &answer.want)
        };
        for items in batches {
            let batch = anti_entropy::Batch { items };
            let call = pool.call(addr, Method::POST, "/gossip/items", Some(&batch), timeout);
            let sent: Result<IgnoredAny, CallError> = breakers.call(peer, call).await;
            if sent.is_err() {
                return;
            }
        }
        if answer.truncated {
            continue;
        }
        match page.upto {
            Some(upto) => after = Some(upto),
            None => return,
        }
    }
}

/// The routes nearly every request of a run takes (replication, anti-entropy, client
/// writes and reads), answered without axum's router and layers (see
/// [`crate::http::Routes`]), with the same stages in the same order: seed 001's
/// middleware ([`overload::admit`]), the cluster key's check on internal routes
/// ([`auth::http::guarded`]), then the handler. Whatever the router might answer
/// differently is handed back to it: other methods and paths, a body without a length or
/// over its limit, a key that is percent-encoded, a query other than `local=true`.
fn fast_path(
    shared: Shared,
    overload: Arc<Overload>,
    guard: Guard,
) -> impl Fn(hyper::Request<hyper::body::Incoming>, SocketAddr) -> Result<Answering, NotMine> + Send + Sync
{
    move |request, peer| {
        // Internal routes are exempt from the middleware (`Route::Internal`).
        let state = State(shared.clone());
        match (request.method(), request.uri().path()) {
            (&Method::POST, "/replicate") => {
                return Ok(auth::http::guarded(
                    &guard,
                    request,
                    peer,
                    |body| async move { replicate(state, body).await.into_response() },
                ))
            }
            (&Method::POST, "/gossip") => {
                return Ok(auth::http::guarded(
                    &guard,
                    request,
                    peer,
                    |body| async move { gossip(state, body).await.into_response() },
                ))
            }
            (&Method::POST, "/gossip/items") => {
                return Ok(auth::http::guarded(
                    &guard,
                    request,
                    peer,
                    |body| async move { gossip_items(state, body).await.into_response() },
                ))
            }
            _ => {}
        }
        // A client's read (its key and `local`), or `None` for its write.
        let read = match (request.method(), request.uri().path()) {
            (&Method::POST, "/data") if length_within(request.headers(), MAX_BODY_BYTES) => None,
            (&Method::GET, path) => match plain_read(path, request.uri().query()) {
                Some((key, local)) => Some((key.to_string(), local)),
                None => return Err(Box::new(request)),
            },
            _ => return Err(Box::new(request)),
        };
        let class = overload.route_of(request.method(), request.uri(), request.headers());
        let client = Some(peer.ip());
        let overload = overload.clone();
        let work = match read {
            Some((key, local)) => {
                let (key, options) = (Path(key), Query(ReadOptions { local }));
                Either::Left(async move { get_data(state, key, options).await.into_response() })
            }
            None => Either::Right(async move {
                match Bytes::from_request(request.map(Body::new), &()).await {
                    Ok(body) => put(state, body).await.into_response(),
                    Err(rejected) => rejected.into_response(),
                }
            }),
        };
        Ok(Box::pin(async move {
            overload::admit(&overload, class, client, work).await
        }))
    }
}

/// Whether the request says how long its body is, and that is at most `limit`.
fn length_within(headers: &hyper::HeaderMap, limit: usize) -> bool {
    headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|length| length <= limit)
}

/// The key and `local` flag of `GET /data/{key}` when the path and query read as they
/// are (no percent-encoding, no other parameters): what the fast path serves.
fn plain_read<'a>(path: &'a str, query: Option<&str>) -> Option<(&'a str, bool)> {
    let key = path.strip_prefix("/data/")?;
    if key.is_empty() || key.contains(['/', '%']) {
        return None;
    }
    let local = match query {
        None => false,
        Some("local=true") => true,
        Some(_) => return None,
    };
    Some((key, local))
}

/// Runs one KV node until ctrl-c, then deregisters and stops gossiping.
pub async fn run(config: KvConfig, env: NodeEnv) -> io::Result<()> {
    let NodeEnv {
        clock,
        events,
        cluster_key,
        slowdown,
        wire,
        routes,
        ..
    } = env;
    events.emit(NodeEvent::Started {
        recovered_records: 0,
        damage: None,
    });
    let me = config.id.clone();
    let mut members = BTreeMap::new();
    members.insert(me.clone(), config.advertise.clone());
    let registry = config.registry;
    let overload = Arc::new(Overload::new(
        &config.overload,
        clock.clone(),
        slowdown,
        events.clone(),
        cluster_key.clone(),
    ));
    let gossip_routes = routes.clone();
    let shared: Shared = Arc::new(Mutex::new(Node {
        pool: Pool::signed(cluster_key.clone())
            .tapped(wire.clone())
            .routed(routes),
        versions: VersionSource::new(config.versioning, &config.id),
        config: config.clone(),
        clock,
        events: events.clone(),
        store: BTreeMap::new(),
        members,
        ring: std::sync::OnceLock::new(),
        breakers: overload.breakers.clone(),
        discovery: Discovery::new(registry),
        view: View::new(),
        gossip_bytes: Default::default(),
    }));
    let leave_gossip = config
        .gossip
        .clone()
        .map(|g| start_gossip(&shared, g, cluster_key.clone(), gossip_routes));
    // Node-to-node routes: only callers that sign with the cluster key get through.
    let guard = Guard {
        key: cluster_key,
        events: events.clone(),
        max_body: INTERNAL_BODY_BYTES,
    };
    let fast = fast_path(shared.clone(), overload.clone(), guard.clone());
    let internal = Router::new()
        .route("/replicate", post(replicate))
        .route("/gossip", post(gossip))
        .route("/gossip/items", post(gossip_items))
        .route_layer(axum::middleware::from_fn_with_state(
            guard,
            auth::http::guard,
        ))
        .layer(DefaultBodyLimit::max(INTERNAL_BODY_BYTES));
    let router = Router::new()
        .route("/data", post(put))
        .route("/data/{key}", get(get_data))
        .route("/health", get(health))
        .route("/peers", get(peers))
        .route("/members", get(list_members))
        .route("/discovery-status", get(discovery_status))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .merge(internal)
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such route") })
        .with_state(shared.clone())
        .merge(overload::routes(overload.clone()))
        .layer(axum::middleware::from_fn_with_state(
            overload,
            overload::guard,
        ));
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let routes = Routes::new(router).with_fast_path(fast);
    let server = tokio::spawn(serve_routes(listener, routes, wire));
    let gossiper = tokio::spawn(anti_entropy(shared.clone()));
    let member = registry.map(|r| tokio::spawn(membership(shared.clone(), r)));
    let _ = tokio::signal::ctrl_c().await;
    // Graceful shutdown: stop anti-entropy and membership (leave the gossip cluster, or
    // deregister), stop serving.
    gossiper.abort();
    if let Some(member) = member {
        member.abort();
    }
    if let Some(leave) = leave_gossip {
        let timeout = lock(&shared).peer_timeout();
        let (done, left) = tokio::sync::oneshot::channel();
        if leave.send(done).await.is_ok() {
            let _ = tokio::time::timeout(timeout, left).await;
        }
    }
    if let Some(registry) = registry {
        let (pool, timeout) = {
            let node = lock(&shared);
            (node.pool.clone(), node.peer_timeout())
        };
        let id = NodeId { id: me };
        let deregister = pool.call::<_, serde_json::Value>(
            registry,
            Method::POST,
            "/deregister",
            Some(&id),
            timeout,
        );
        let _ = deregister.await;
    }
    server.abort();
    events.emit(NodeEvent::Stopped {
        reason: "ctrl-c".into(),
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast path serves a read only when the router would read the same key and flag
    /// from it; anything it might decode or refuse differently is left to the router.
    #[test]
    fn the_fast_path_takes_only_reads_the_router_would_read_the_same() {
        assert_eq!(plain_read("/data/k1", None), Some(("k1", false)));
        assert_eq!(
            plain_read("/data/k1", Some("local=true")),
            Some(("k1", true))
        );
        assert_eq!(plain_read("/data/user:1", None), Some(("user:1", false)));
        assert_eq!(plain_read("/data/user%3A1", None), None, "percent-encoded");
        assert_eq!(plain_read("/data/k1", Some("local=false")), None);
        assert_eq!(plain_read("/data/k1", Some("local=true&x=1")), None);
        assert_eq!(plain_read("/data/", None), None, "no key");
        assert_eq!(plain_read("/data/a/b", None), None, "two segments");
        assert_eq!(plain_read("/health", None), None);
    }

    /// The typed answers write the bytes the JSON objects they replace wrote (fields
    /// sorted), so clients, histories and error texts see the same answers.
    #[test]
    fn typed_answers_are_the_json_objects_they_replace() {
        let version = Version {
            counter: 7,
            node: "n\"1".into(),
        };
        for error in [None, Some("only 1 of 3 copies confirmed".to_string())] {
            let typed = Written {
                acked: 1,
                error: error.clone(),
                key: "k1",
                replicas: vec!["n2", "n3"],
                value: "v\u{e9}",
                version: &version,
            };
            let mut object = serde_json::json!({
                "key": "k1",
                "value": "v\u{e9}",
                "version": version,
                "replicas": ["n2", "n3"],
                "acked": 1,
            });
            if let Some(error) = error {
                object["error"] = error.into();
            }
            let typed = serde_json::to_string(&typed).expect("serializes");
            assert_eq!(typed, object.to_string());
        }
        let accepted = serde_json::to_string(&Accepted { accepted: true }).expect("serializes");
        assert_eq!(
            accepted,
            serde_json::json!({ "accepted": true }).to_string()
        );
        let item = Item {
            key: "k".into(),
            value: "v".into(),
            version,
        };
        let typed = serde_json::to_string(&item).expect("serializes");
        assert_eq!(typed, serde_json::json!(item).to_string());
    }

    /// A write is taken only with a declared length within the limit (so the body limit's
    /// 413 stays the router's).
    #[test]
    fn the_fast_path_takes_only_writes_of_a_declared_length_within_the_limit() {
        let with = |length: Option<&str>| {
            let mut headers = hyper::HeaderMap::new();
            if let Some(length) = length {
                let value = hyper::header::HeaderValue::from_str(length).expect("a header");
                headers.insert(hyper::header::CONTENT_LENGTH, value);
            }
            length_within(&headers, MAX_BODY_BYTES)
        };
        assert!(with(Some("27")));
        assert!(with(Some(&MAX_BODY_BYTES.to_string())));
        assert!(!with(Some(&(MAX_BODY_BYTES + 1).to_string())));
        assert!(!with(None), "chunked: no length declared");
        assert!(!with(Some("lots")));
    }
}
