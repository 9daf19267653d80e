//! The replicated KV store (seeds 000, 002, 003): registry, HTTP nodes, consistent hashing,
//! replication with a write quorum, gossip anti-entropy, three version sources.
//!
//! - [`ring`]: consistent hashing with virtual nodes;
//! - [`version`]: versions, their sources (`lamport`, `node_counter`, `wall_clock`), the merge;
//! - [`registry`]: the membership directory (seed 000's membership);
//! - [`swim`]: gossip membership, SWIM through `foca`, no registry (seed 003's);
//! - [`view_pull`]: pulling a member's whole view, the anti-entropy under SWIM;
//! - [`node`]: the KV node's HTTP API, replication, gossip, graceful shutdown;
//! - [`overload`]: seed 001's middleware (rate limit, backpressure, capacity, breakers);
//! - [`discovery`]: the registry as a node sees it (`/discovery-status`);
//! - [`client`]: the client side used by the simulated workload.

pub mod anti_entropy;
pub mod client;
pub mod discovery;
pub mod node;
pub mod overload;
pub mod registry;
pub mod ring;
pub mod swim;
pub mod version;
pub mod view_pull;

pub use node::{run, KvConfig};
pub use overload::OverloadConfig;
pub use version::{Version, Versioning};
