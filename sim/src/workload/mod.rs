//! Simulated clients `c1..cM`: each is a madsim node at `10.0.1.j` that drives the system
//! through the same client protocol as the real client, and records every operation as
//! Jepsen-style invoke / ok / fail / info events in the history.

pub mod chat;
pub mod kv;

use crate::scenario::{ClientKnobs, Workload};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::time::Duration;
use tokio::time::Instant;

/// How many operations client `j` (1-based) of `clients` performs.
pub fn ops_for_client(workload: &Workload, j: usize) -> usize {
    let clients = *workload.clients.get_ref();
    let base = workload.ops / clients;
    base + usize::from(j <= workload.ops % clients)
}

/// Time between one client's operations.
///
/// DESIGN.md's comment calls `rate` "per client", but every acceptance scenario is written
/// so that traffic lasts `ops / rate` (`shared/scenarios/kv/replicate.toml`: 200 ops at
/// 10/s with `stop = "20s"`; `teaching/split-brain.toml` needs traffic during its 8-25 s
/// partition, which 200 ops at 4 x 10/s would finish by 5 s). We follow the scenarios:
/// `rate` is the workload's aggregate rate, shared evenly by the clients.
pub fn interval(workload: &Workload) -> Duration {
    let clients = (*workload.clients.get_ref()).max(1) as f64;
    Duration::from_secs_f64(clients / workload.rate.0)
}

/// One client's pace: how many operations it performs and how far apart.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Share {
    /// Operations the client invokes (fewer if `stop` comes first).
    pub ops: usize,
    /// Time between two of them.
    pub every: Duration,
}

impl Share {
    /// Client `j`'s pace: its even share of `workload`, or its own `[clients.cJ]` rate and
    /// operations. An own rate without own `ops` keeps the client busy as long as the
    /// others: its share of operations scaled by how much faster it goes.
    pub fn of(workload: &Workload, own: Option<&ClientKnobs>, j: usize) -> Share {
        let even = Share {
            ops: ops_for_client(workload, j),
            every: interval(workload),
        };
        let Some(own) = own else {
            return even;
        };
        let every = own
            .rate
            .as_ref()
            .map_or(even.every, |r| Duration::from_secs_f64(1.0 / r.get_ref().0));
        let ops = own.ops.as_ref().map_or_else(
            || {
                let scaled = even.ops as f64 * even.every.as_secs_f64() / every.as_secs_f64();
                (scaled.round() as usize).min(crate::scenario::MAX_CLIENT_OPS)
            },
            |ops| *ops.get_ref(),
        );
        Share { ops, every }
    }
}

/// Paces one client: its first operation at a random point of the first interval (so
/// clients do not fire in lockstep), then one every interval, none after `stop`.
pub struct Pacer {
    due: Instant,
    every: Duration,
    stop: Option<Instant>,
}

impl Pacer {
    /// A pacer for one client of `workload`, starting at `start`.
    pub fn new(share: Share, start: Instant, stop: Option<Instant>, rng: &mut ChaCha8Rng) -> Self {
        let every = share.every;
        Pacer {
            due: start + every.mul_f64(rng.gen_range(0.0..1.0)),
            every,
            stop,
        }
    }

    /// Waits for the next operation's turn; false once `stop` has passed.
    pub async fn next(&mut self) -> bool {
        tokio::time::sleep_until(self.due).await;
        self.due += self.every;
        self.stop.is_none_or(|stop| Instant::now() < stop)
    }
}
