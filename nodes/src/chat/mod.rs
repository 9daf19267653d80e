//! Total-order chat (seed 004): a sequencer leader elected by the bully election, ordered
//! delivery with buffering and de-duplication, a durable log, catch-up, and failover —
//! with the seed's leader-only commit or a majority commit.
//!
//! - [`message`]: peer and client wire formats;
//! - [`state`]: the protocol as a pure state machine (read its doc first);
//! - [`store`]: durable records and recovery;
//! - [`driver`]: the async loop on the transport, client port, clock and log seams;
//! - [`client`]: the client protocol, shared by `chat-client` and the simulated workload.

pub mod client;
pub mod driver;
pub mod message;
pub mod state;
pub mod store;

#[cfg(test)]
mod tests;

pub use driver::{run, ChatNodeConfig};
pub use state::{Chat, ChatConfig, Commit};
