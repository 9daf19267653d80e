//! The seams between node logic and the world.
//!
//! Node code touches the outside only through these: [`transport`] (TCP on `tokio::net`,
//! simulated under `--cfg madsim`), [`datagram`] (UDP, the same), the per-node [`clock`],
//! the [`log`] over a [`storage`] backend, the [`routes`] it dials peers by, the [`events`] it emits (written as [`history`]
//! lines in real mode), and the [`slowdown`] of its simulated
//! work (the `slow` fault). Real binaries and the simulation
//! harness build a [`NodeEnv`] differently; the protocol code that receives it is the same.

pub mod clock;
pub mod datagram;
pub mod events;
pub mod frame;
pub mod handshake;
pub mod history;
pub mod log;
pub mod routes;
pub mod slowdown;
pub mod storage;
pub mod transport;
pub mod turn;
pub mod wire;
pub mod woken;

pub use clock::Clock;
pub use events::{BreakerState, EventSink, MemberState, NodeEvent, Role};
pub use log::DurableLog;
pub use routes::Routes;
pub use slowdown::Slowdown;
pub use storage::Storage;
pub use wire::WireTap;

/// Everything a node is given at start-up besides its configuration.
pub struct NodeEnv {
    /// The node's clock (skewed by the harness in simulation).
    pub clock: Clock,
    /// Backing bytes of the node's durable log.
    pub storage: Box<dyn Storage>,
    /// Where the node's events go.
    pub events: EventSink,
    /// How much slower than configured its simulated work runs (the harness's `slow`).
    pub slowdown: Slowdown,
    /// The cluster's shared secret, which node-to-node traffic must prove (see
    /// [`crate::auth`]): from a key file in real mode, derived from the seed in simulation.
    pub cluster_key: crate::auth::ClusterKey,
    /// Which peer messages it sends and receives, for pictures (off in real mode).
    pub wire: WireTap,
    /// Where it dials each peer address (direct, except behind `sim real`'s fault proxy).
    pub routes: Routes,
}
