//! The three workshop systems, written once, run two ways.
//!
//! Every node here runs unchanged as a real binary on real sockets (`src/bin/`) and, built
//! with `--cfg madsim`, inside the deterministic simulator of the `sim` crate. Node code
//! reaches the world only through the seams in [`runtime`]: TCP and timers via
//! `tokio` (madsim-tokio), a per-node [`runtime::Clock`], a [`runtime::DurableLog`] over a
//! [`runtime::Storage`], and the [`runtime::NodeEvent`]s it emits about itself.
//!
//! Systems:
//! - [`election`]: bully leader election (seed 004), plain or with a majority quorum;
//! - [`chat`]: total-order chat on top of it (seed 004), leader or majority commit;
//! - [`kv`]: the replicated KV store (seeds 000, 002, 003);
//! - [`lb`]: seed 001's load balancer in front of KV nodes (round robin, least connections).
//!
//! Glossary: *term* — a leadership epoch, increasing; *lease* — how long a quorum leader
//! may act on its last majority acknowledgement; *seam* — the one place where real and
//! simulated runs differ.

pub mod accept;
pub mod auth;
pub mod chat;
pub mod deadline;
pub mod duration;
pub mod election;
pub mod http;
pub mod kv;
pub mod lb;
pub mod lines;
#[cfg(test)]
mod noise;
pub mod once;
pub mod pool;
pub mod real;
pub mod runtime;
