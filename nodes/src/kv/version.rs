//! Versions decide which of two values of a key wins; the `versioning` knob only changes
//! where a new write's version comes from. The merge is the same for all three: the
//! strictly greater `(counter, node)` wins, and an equal version keeps what is there.
//!
//! - `lamport` (safe): the node's Lamport clock, moved past every version it has seen and
//!   past the client's context, ties broken by node id — so a client's later write always
//!   wins over what that client saw, and replicas converge;
//! - `node_counter` (the seed): the key's local version plus one, with no tie-break — two
//!   nodes that accept writes to one key at once both produce `v + 1` and keep their own:
//!   divergence, and a later write can lose to an earlier one;
//! - `wall_clock`: last writer wins on the node's wall clock — a node whose clock is behind
//!   loses its writes to older writes made elsewhere.

use serde::{Deserialize, Serialize};

/// A write's version; greater wins.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Version {
    /// Lamport time, per-key counter, or wall-clock milliseconds.
    pub counter: u64,
    /// The writing node (empty under `node_counter`: no tie-break, as in the seed).
    pub node: String,
}

/// Where new versions come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Versioning {
    /// Lamport clock with node-id tie-break.
    Lamport,
    /// The seed's per-key counter.
    NodeCounter,
    /// Last writer wins on node wall clocks.
    WallClock,
}

impl Versioning {
    /// Parses the knob's value.
    pub fn parse(text: &str) -> Result<Versioning, String> {
        match text {
            "lamport" => Ok(Versioning::Lamport),
            "node_counter" => Ok(Versioning::NodeCounter),
            "wall_clock" => Ok(Versioning::WallClock),
            _ => Err(format!(
                "expected lamport, node_counter or wall_clock, got \"{text}\""
            )),
        }
    }
}

/// Version source state of one node.
#[derive(Clone, Debug)]
pub struct VersionSource {
    versioning: Versioning,
    node: String,
    lamport: u64,
}

impl VersionSource {
    /// A fresh source for node `node`.
    pub fn new(versioning: Versioning, node: &str) -> Self {
        VersionSource {
            versioning,
            node: node.to_string(),
            lamport: 0,
        }
    }

    /// Notes a version seen in a merge (keeps the Lamport clock ahead of it).
    pub fn observe(&mut self, version: &Version) {
        self.lamport = self.lamport.max(version.counter);
    }

    /// The version of a new write. `current`: the key's local version; `context`: the
    /// version the client last saw or wrote for the key; `wall_ms`: the node's wall clock.
    pub fn next(
        &mut self,
        current: Option<&Version>,
        context: Option<&Version>,
        wall_ms: i64,
    ) -> Version {
        match self.versioning {
            Versioning::Lamport => {
                let seen = current
                    .map_or(0, |v| v.counter)
                    .max(context.map_or(0, |v| v.counter));
                self.lamport = self.lamport.max(seen) + 1;
                Version {
                    counter: self.lamport,
                    node: self.node.clone(),
                }
            }
            Versioning::NodeCounter => Version {
                counter: current.map_or(0, |v| v.counter) + 1,
                node: String::new(),
            },
            Versioning::WallClock => Version {
                counter: wall_ms.max(0) as u64,
                node: self.node.clone(),
            },
        }
    }
}

/// The merge rule: does `incoming` replace `current`?
pub fn wins(incoming: &Version, current: Option<&Version>) -> bool {
    current.is_none_or(|current| incoming > current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lamport_orders_a_write_after_the_clients_context() {
        let mut source = VersionSource::new(Versioning::Lamport, "n1");
        let seen = Version {
            counter: 41,
            node: "n2".into(),
        };
        let v = source.next(None, Some(&seen), 0);
        assert!(v > seen);
        assert!(wins(&v, Some(&seen)));
    }

    #[test]
    fn node_counter_ties_keep_what_is_there() {
        let mut a = VersionSource::new(Versioning::NodeCounter, "n1");
        let mut b = VersionSource::new(Versioning::NodeCounter, "n2");
        let base = Version {
            counter: 3,
            node: String::new(),
        };
        let va = a.next(Some(&base), None, 0);
        let vb = b.next(Some(&base), None, 0);
        assert_eq!(va, vb);
        assert!(!wins(&vb, Some(&va)), "each side keeps its own value");
    }

    #[test]
    fn wall_clock_ignores_context_so_a_slow_clock_loses() {
        let mut slow = VersionSource::new(Versioning::WallClock, "n1");
        let seen = Version {
            counter: 20_000,
            node: "n2".into(),
        };
        let v = slow.next(Some(&seen), Some(&seen), 10_000);
        assert!(!wins(&v, Some(&seen)));
    }
}
