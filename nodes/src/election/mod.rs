//! Bully leader election (seed 004), with an opt-in majority-quorum fix.
//!
//! - [`config`]: knobs and their defaults;
//! - [`message`]: ELECTION / ANSWER / COORDINATOR / GRANT / HEARTBEAT on the wire;
//! - [`state`]: the protocol as a pure state machine (read this first);
//! - [`driver`]: the async loop that runs it on the transport, clock and log seams.

pub mod config;
pub mod driver;
pub mod message;
pub mod state;

#[cfg(test)]
mod tests;

pub use config::ElectionConfig;
pub use driver::{run, ElectionNodeConfig};
pub use message::Message;
pub use state::{Command, Election, Persisted};
