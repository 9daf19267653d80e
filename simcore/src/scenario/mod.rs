//! Scenario files (CONTRACT in DESIGN.md): TOML in, a validated [`Scenario`] out.
//!
//! Everything is checked once, here, at load: unknown keys and values, durations, node
//! names against `nodes` and `[workload] clients`, which knobs and checks apply to which
//! system, which parameters each fault action takes. Every error names `file:line:col`,
//! the offending key and what was expected, so a broken file never reaches the harness.
//!
//! One concern per file: the types serde fills (`types`), reading a file into them
//! (`parse`: [`load`], [`parse`]), what serde cannot check (`validate`), and the
//! positioned error (`error`: [`ScenarioError`]).

mod error;
mod parse;
mod types;
mod validate;

pub use error::ScenarioError;
pub use parse::{load, parse};
pub use types::*;
pub use validate::{MAX_GOSSIP_SERVERS, MAX_SERVERS, MAX_SLOW_FACTOR};
