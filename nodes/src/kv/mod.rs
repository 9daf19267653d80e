//! The replicated KV store (seeds 000, 002, 003): registry, HTTP nodes, consistent hashing,
//! replication with a write quorum, gossip anti-entropy, three version sources.
//!
//! - [`ring`]: consistent hashing with virtual nodes;
//! - [`version`]: versions, their sources (`lamport`, `node_counter`, `wall_clock`), the merge;
//! - [`registry`]: the membership directory;
//! - [`node`]: the KV node's HTTP API, replication, gossip, graceful shutdown;
//! - [`client`]: the client side used by the simulated workload.

pub mod anti_entropy;
pub mod client;
pub mod node;
pub mod registry;
pub mod ring;
pub mod version;

pub use node::{run, KvConfig};
pub use version::{Version, Versioning};
