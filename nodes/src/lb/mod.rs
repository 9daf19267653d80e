//! The seed-001 load balancer: one HTTP front for several KV nodes.
//!
//! Every request except `GET /lb-stats` is forwarded — method, path, query and body as
//! they came — to one backend chosen by the [`strategy`] (round robin or least
//! connections), over pooled keep-alive connections ([`crate::pool`]), and the backend's
//! answer goes back with its status and headers plus `X-Backend: <name>`, which says who
//! answered. [`health`] checks each backend with `GET /health` every `health_interval`
//! and takes it out of the rotation while it fails; a request that cannot even connect
//! takes its backend out at once. [`proxy`] says what happens when a backend fails.
//!
//! Same code on real sockets (`load-balancer`) and in the simulator (node `lb`): HTTP on
//! `tokio::net` through [`crate::http::serve`], every duration on the node's [`Clock`].

pub mod health;
pub mod proxy;
pub mod stats;
pub mod strategy;

use crate::http::serve;
use crate::pool::Pool;
use crate::runtime::{Clock, EventSink, NodeEvent, WireTap};
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use stats::{BackendState, BackendView};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
pub use strategy::Strategy;
use strategy::{Candidate, Picker};

/// The response header naming the backend that answered.
pub const BACKEND_HEADER: &str = "x-backend";

/// One backend: a name for reports and `X-Backend`, and its address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    /// `n2` in a simulation, the address in real mode.
    pub name: String,
    /// Its HTTP address.
    pub addr: SocketAddr,
}

/// Load balancer settings (flags of `load-balancer`, `[lb]` of a scenario).
#[derive(Clone, Debug)]
pub struct LbConfig {
    /// Listen address.
    pub listen: SocketAddr,
    /// The backends, in rotation order.
    pub backends: Vec<Backend>,
    /// How a backend is chosen.
    pub strategy: Strategy,
    /// Time between two health checks of one backend (local time).
    pub health_interval: Duration,
    /// How long a health check may take before the backend counts as down.
    pub health_timeout: Duration,
    /// How long one forwarded request may take (connecting, then the exchange).
    pub backend_timeout: Duration,
}

/// Default time between health checks.
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(1);
/// Default health check timeout.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);
/// Default timeout of one forwarded request.
pub const BACKEND_TIMEOUT: Duration = Duration::from_secs(10);

/// The balancer's mutable state: the rotation and every backend's numbers.
struct Table {
    picker: Picker,
    backends: Vec<BackendState>,
    /// Requests answered 503 because no backend could take them.
    unrouted: u64,
}

/// Everything the handlers and health checks share.
pub(crate) struct Balancer {
    config: LbConfig,
    table: Mutex<Table>,
    pool: Pool,
    clock: Clock,
    events: EventSink,
}

/// A request on its way to backend `index`: counted in flight until dropped, so a
/// request whose client went away (its handler dropped) is no longer counted.
pub(crate) struct Attempt {
    balancer: Arc<Balancer>,
    pub(crate) index: usize,
    pub(crate) name: String,
    pub(crate) addr: SocketAddr,
}

impl Drop for Attempt {
    fn drop(&mut self) {
        let mut table = self.balancer.table();
        let backend = &mut table.backends[self.index];
        backend.in_flight = backend.in_flight.saturating_sub(1);
    }
}

impl Balancer {
    fn new(config: LbConfig, clock: Clock, events: EventSink, wire: WireTap) -> Balancer {
        let backends = config
            .backends
            .iter()
            .map(|b| BackendState::new(b.name.clone(), b.addr))
            .collect();
        Balancer {
            table: Mutex::new(Table {
                picker: Picker::new(config.strategy),
                backends,
                unrouted: 0,
            }),
            config,
            pool: Pool::new().tapped(wire),
            clock,
            events,
        }
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Chooses a backend that is up and not in `tried`, and counts the request on it.
    pub(crate) fn start(self: &Arc<Self>, tried: &[usize]) -> Option<Attempt> {
        let mut table = self.table();
        let candidates: Vec<Candidate> = table
            .backends
            .iter()
            .enumerate()
            .filter(|(index, b)| b.healthy && !tried.contains(index))
            .map(|(index, b)| Candidate {
                index,
                in_flight: b.in_flight,
            })
            .collect();
        let index = table.picker.pick(&candidates)?;
        let backend = &mut table.backends[index];
        backend.in_flight += 1;
        backend.requests += 1;
        Some(Attempt {
            balancer: self.clone(),
            index,
            name: backend.name.clone(),
            addr: backend.addr,
        })
    }

    /// Records an answer from the attempt's backend and how long it took.
    pub(crate) fn answered(&self, attempt: &Attempt, took: Duration) {
        self.table().backends[attempt.index].latency.record(took);
    }

    /// Records an attempt that got no answer.
    pub(crate) fn failed(&self, attempt: &Attempt) {
        self.table().backends[attempt.index].failures += 1;
    }

    /// Counts a request no backend could take.
    pub(crate) fn unrouted(&self) {
        self.table().unrouted += 1;
    }

    /// Takes backend `index` up (`Ok`) or down (`Err(reason)`); a change is a node event.
    pub(crate) fn set_health(&self, index: usize, verdict: Result<(), String>) {
        let event = {
            let mut table = self.table();
            let backend = &mut table.backends[index];
            let healthy = verdict.is_ok();
            let changed = backend.healthy != healthy;
            backend.healthy = healthy;
            backend.down_reason = verdict.err();
            changed.then(|| NodeEvent::BackendHealth {
                backend: backend.name.clone(),
                healthy,
                reason: backend.down_reason.clone(),
            })
        };
        if let Some(event) = event {
            self.events.emit(event);
        }
    }

    /// The numbers `GET /lb-stats` shows.
    fn view(&self) -> serde_json::Value {
        let table = self.table();
        let backends: Vec<BackendView> = table.backends.iter().map(BackendState::view).collect();
        serde_json::json!({
            "strategy": table.picker.strategy().name(),
            "healthy": table.backends.iter().filter(|b| b.healthy).count(),
            "unrouted": table.unrouted,
            "backends": backends,
        })
    }
}

async fn lb_stats(State(balancer): State<Arc<Balancer>>) -> Json<serde_json::Value> {
    Json(balancer.view())
}

/// Runs the balancer until ctrl-c, on `clock`, reporting to `events`. It takes no
/// [`crate::runtime::NodeEnv`]: it keeps no durable state and holds no cluster key — it
/// is a client of the KV nodes, so its unsigned calls reach their public routes only,
/// never `/replicate` or gossip.
pub async fn run(
    config: LbConfig,
    clock: Clock,
    events: EventSink,
    wire: WireTap,
) -> io::Result<()> {
    events.emit(NodeEvent::Started {
        recovered_records: 0,
        damage: None,
    });
    let listen = config.listen;
    let count = config.backends.len();
    let balancer = Arc::new(Balancer::new(config, clock, events.clone(), wire.clone()));
    let router = Router::new()
        .route("/lb-stats", get(lb_stats))
        .fallback(proxy::forward)
        .with_state(balancer.clone());
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let server = tokio::spawn(serve(listener, router, wire));
    let checks: Vec<_> = (0..count)
        .map(|index| tokio::spawn(health::watch(balancer.clone(), index)))
        .collect();
    let _ = tokio::signal::ctrl_c().await;
    for check in checks {
        check.abort();
    }
    server.abort();
    events.emit(NodeEvent::Stopped {
        reason: "ctrl-c".into(),
    });
    Ok(())
}
