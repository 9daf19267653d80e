//! The events seam: what a node says about itself.
//!
//! Nodes emit structured [`NodeEvent`]s (role changes with terms, recoveries, deliveries).
//! In simulation the harness records each one in the history with the simulated time and
//! the node's name, and checkers judge the run from them; in real mode they are printed as
//! JSON lines, so the same checkers could read a real cluster's logs.

use super::log::Damage;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A node's view of its own role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Follows a leader (or waits for one).
    Follower,
    /// Running an election.
    Candidate,
    /// Believes itself the leader of its term.
    Leader,
}

/// A circuit breaker's state (seed 001's names: CLOSED → OPEN → HALF_OPEN → CLOSED).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BreakerState {
    /// Calls go through; consecutive failures are counted.
    Closed,
    /// Calls are refused at once until the cooldown ends.
    Open,
    /// The cooldown ended: one probe call decides between CLOSED and OPEN.
    HalfOpen,
}

/// A member's state in a SWIM view (seed 003's gossip membership).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberState {
    /// Answers probes (directly or through others).
    Alive,
    /// Missed a probe: still a member until it refutes or the suspicion times out.
    Suspect,
    /// Declared failed (or it left): out of the ring.
    Down,
}

/// Something a node reports about itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum NodeEvent {
    /// The node started (or restarted) and recovered its durable log.
    Started {
        /// Records recovered from the durable log.
        recovered_records: usize,
        /// A torn or corrupt record cut off during recovery.
        damage: Option<Damage>,
    },
    /// The node stopped on purpose (graceful shutdown).
    Stopped {
        /// Why it stopped.
        reason: String,
    },
    /// The node's role, term or believed leader changed.
    Role {
        /// The new role.
        role: Role,
        /// The node's current term.
        term: u64,
        /// Who it believes leads (itself when leader), if anyone.
        leader: Option<u64>,
    },
    /// The node suspects the leader and starts an election.
    ElectionStarted {
        /// The node's term when the election began.
        term: u64,
        /// The leader it no longer hears from, if it had one.
        suspected: Option<u64>,
    },
    /// A leader sent a round of heartbeats: it acts as leader of `term` right now.
    HeartbeatSent {
        /// The term it leads.
        term: u64,
    },
    /// Chat: the leader assigned sequence number `seq` to message `id`.
    Sequenced {
        /// Position in the total order.
        seq: u64,
        /// The sequencer's term.
        term: u64,
        /// The client message id.
        id: String,
    },
    /// Chat: this node delivered message `id` at position `seq`.
    Delivered {
        /// Position in the total order.
        seq: u64,
        /// Term of the leader that sequenced it.
        term: u64,
        /// The client message id.
        id: String,
    },
    /// Chat (majority commit): a new leader finished syncing from a majority.
    Synced {
        /// The new leader's term.
        term: u64,
        /// Uncommitted entries it recovered from the majority and re-proposed.
        recovered: usize,
        /// The next sequence number it will assign.
        next_seq: u64,
    },
    /// KV: the membership this node (or the registry) now sees.
    Members {
        /// Member ids, sorted.
        members: Vec<String>,
    },
    /// KV (gossip membership): this node's view of `member` changed.
    Member {
        /// The member's id.
        member: String,
        /// Its state in this node's view now.
        state: MemberState,
        /// The incarnation that state is about (a member refutes suspicion by raising it).
        incarnation: u16,
        /// Which start of the member (a restart, or a rejoin after being declared down,
        /// is a new generation).
        generation: u64,
    },
    /// KV: the circuit breaker around this node's calls to `peer` changed state.
    Breaker {
        /// The peer's id.
        peer: String,
        /// The state it left.
        from: BreakerState,
        /// The state it entered.
        to: BreakerState,
        /// Consecutive failed calls to the peer when it changed.
        failures: u32,
    },
    /// A peer or internal request was refused: it did not prove it holds the cluster key.
    Refused {
        /// Where it came from (address).
        peer: String,
        /// What it tried (`POST /replicate`, `peer connection`).
        what: String,
        /// Why it was refused.
        reason: String,
    },
    /// Load balancer: it now takes `backend` for up (`healthy`) or down, after a health
    /// check or a request that could not connect (`reason`: why it is down).
    BackendHealth {
        /// The backend's name (`n2` in a simulation, its address in real mode).
        backend: String,
        /// Whether the balancer sends it requests now.
        healthy: bool,
        /// Why it was taken down, if it was.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A leader gave up leadership.
    SteppedDown {
        /// The term it led.
        term: u64,
        /// Why (lost its majority lease, saw a higher term, ...).
        reason: String,
    },
}

/// Where a node's events go.
#[derive(Clone)]
pub struct EventSink(Arc<dyn Fn(NodeEvent) + Send + Sync>);

impl EventSink {
    /// A sink that hands every event to `f`.
    pub fn new(f: impl Fn(NodeEvent) + Send + Sync + 'static) -> Self {
        EventSink(Arc::new(f))
    }

    /// Real mode: one JSON line per event on stdout, tagged with the node's name.
    pub fn stdout(node: impl Into<String>) -> Self {
        let node = node.into();
        EventSink::new(move |event| {
            let wall_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0);
            let line = serde_json::json!({ "wall_ms": wall_ms, "node": node, "data": event });
            println!("{line}");
        })
    }

    /// Reports one event.
    pub fn emit(&self, event: NodeEvent) {
        (self.0)(event)
    }
}
