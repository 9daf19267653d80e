//! Election knobs, with the seed's defaults (seed 004) and the safe `quorum` default.

use std::time::Duration;

/// Tuning of one election participant.
#[derive(Clone, Debug, PartialEq)]
pub struct ElectionConfig {
    /// This node's id; the highest live id wins.
    pub id: u64,
    /// Every other participant's id.
    pub peers: Vec<u64>,
    /// How often a leader sends heartbeats (seed: 800 ms).
    pub heartbeat_interval: Duration,
    /// Silence after which a follower suspects the leader (seed: 2500 ms).
    pub election_timeout: Duration,
    /// `true`: a leader needs a majority's votes for its term and steps down when its
    /// majority lease runs out. `false`: plain bully, as in the seed.
    pub quorum: bool,
}

/// Seed 004's heartbeat interval.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_millis(800);
/// Seed 004's failure-detection timeout.
pub const DEFAULT_ELECTION_TIMEOUT: Duration = Duration::from_millis(2500);

/// A leader's lease is this fraction of the election timeout. The gap is what protects
/// against clock drift: the lease holds while the follower's clock runs at most
/// `1 / LEASE_FRACTION` (1.25) times as fast as the leader's.
pub const LEASE_FRACTION: f64 = 0.8;

impl ElectionConfig {
    /// Servers in the cluster, this one included.
    pub fn cluster_size(&self) -> usize {
        self.peers.len() + 1
    }

    /// Votes (or acknowledgements) that make a majority.
    pub fn majority(&self) -> usize {
        self.cluster_size() / 2 + 1
    }

    /// How long a candidate waits for an ANSWER from a higher id.
    pub fn answer_timeout(&self) -> Duration {
        self.heartbeat_interval
    }

    /// How long a leader may act on a majority's last acknowledgement.
    pub fn lease(&self) -> Duration {
        self.election_timeout.mul_f64(LEASE_FRACTION)
    }
}
