//! Versions decide which of two values of a key wins; the `versioning` knob only changes
//! where a new write's version comes from. The merge is the same for all three: the
//! strictly greater `(counter, node)` wins, and an equal version keeps what is there.
//!
//! - `lamport` (safe): a hybrid logical clock that the client carries. A client that names
//!   itself (`"client"`) and sends its context gets the version `(context + 1, client)`:
//!   the client computes its context as the largest version it has read or *sent* (and
//!   at least its own wall clock in ms), so each of its writes is ordered after every
//!   earlier write of its own — even one whose answer it never got, stored by a server
//!   that then crashed, paused or was cut off — and after every value it read. A version
//!   the server chose could not promise that: the server that took the unanswered write
//!   may have had a higher clock than the one that takes the next. The client's name
//!   breaks ties, so two writes never share a version and replicas converge. A request
//!   without a client name (curl) gets the node's Lamport clock, moved past every version
//!   the node has seen and past the context, ties broken by node id;
//! - `node_counter` (the seed): the key's local version plus one, with no tie-break — two
//!   nodes that accept writes to one key at once both produce `v + 1` and keep their own:
//!   divergence, and a later write can lose to an earlier one;
//! - `wall_clock`: last writer wins on the node's wall clock — a node whose clock is behind
//!   loses its writes to older writes made elsewhere.

use serde::{Deserialize, Serialize};

/// The largest counter a version may carry (2^62). Counters are Lamport counts, per-key
/// counts or milliseconds since 1970 (about 2^41 today), so anything above is absurd: it
/// is refused wherever a version comes in, and no counter can reach the end of its range
/// (where every later write would be ordered before it and silently lost).
pub const MAX_COUNTER: u64 = 1 << 62;

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

impl Version {
    /// Whether the counter is in the range real versions occupy ([`MAX_COUNTER`]).
    pub fn is_sane(&self) -> bool {
        self.counter <= MAX_COUNTER
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
    /// version the client last saw or wrote; `client`: the client's name, when it carries
    /// its own clock; `wall_ms`: the node's wall clock. `None` when the context is at the
    /// end of the counter's range (a version that cannot be followed).
    pub fn next(
        &mut self,
        current: Option<&Version>,
        context: Option<&Version>,
        client: Option<&str>,
        wall_ms: i64,
    ) -> Option<Version> {
        let version = match self.versioning {
            Versioning::Lamport => match (context, client) {
                (Some(context), Some(client)) => Version {
                    counter: context.counter.checked_add(1)?,
                    node: client.to_string(),
                },
                _ => {
                    let seen = current
                        .map_or(0, |v| v.counter)
                        .max(context.map_or(0, |v| v.counter));
                    Version {
                        counter: self.lamport.max(seen).checked_add(1)?,
                        node: self.node.clone(),
                    }
                }
            },
            Versioning::NodeCounter => Version {
                counter: current.map_or(0, |v| v.counter).checked_add(1)?,
                node: String::new(),
            },
            Versioning::WallClock => Version {
                counter: wall_ms.max(0) as u64,
                node: self.node.clone(),
            },
        };
        if !version.is_sane() {
            return None;
        }
        self.observe(&version);
        Some(version)
    }
}

/// A client's side of the `lamport` versioning: a hybrid logical clock (never behind the
/// client's wall clock in ms, always past every version the client read or sent).
#[derive(Clone, Debug)]
pub struct ClientClock {
    name: String,
    latest: u64,
}

impl ClientClock {
    /// A clock for the client called `name` (the tie-break of its versions).
    pub fn new(name: &str) -> Self {
        ClientClock {
            name: name.to_string(),
            latest: 0,
        }
    }

    /// The client's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Notes a version the client read or was told.
    pub fn observe(&mut self, version: &Version) {
        self.latest = self.latest.max(version.counter);
    }

    /// The context to send with the next write (the write's version will be one past it),
    /// advanced as if the write happened: a write whose answer never comes still counts.
    pub fn next_context(&mut self, wall_ms: i64) -> Version {
        let context = self.latest.max(wall_ms.max(0) as u64);
        self.latest = context.saturating_add(1);
        Version {
            counter: context,
            node: self.name.clone(),
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
        let v = source.next(None, Some(&seen), None, 0).unwrap();
        assert!(v > seen);
        assert!(wins(&v, Some(&seen)));
    }

    /// Issue 9's seed 29393: write 127 reached a server with a high clock and was never
    /// answered; write 128 went to a server with a low clock. The client's own clock
    /// orders 128 after 127 whatever the servers' clocks say.
    #[test]
    fn a_clients_later_write_beats_its_unanswered_earlier_one() {
        let mut fast = VersionSource::new(Versioning::Lamport, "n4");
        let mut slow = VersionSource::new(Versioning::Lamport, "n2");
        fast.observe(&Version {
            counter: 1_000,
            node: "n1".into(),
        });
        let mut client = ClientClock::new("c2");
        let context = client.next_context(10);
        let unanswered = fast.next(None, Some(&context), Some("c2"), 0).unwrap();
        let context = client.next_context(10);
        let later = slow.next(None, Some(&context), Some("c2"), 0).unwrap();
        assert!(later > unanswered, "{later:?} must beat {unanswered:?}");
        assert!(wins(&later, Some(&unanswered)));
    }

    #[test]
    fn the_client_clock_never_runs_behind_what_it_read() {
        let mut client = ClientClock::new("c1");
        client.observe(&Version {
            counter: 500,
            node: "n3".into(),
        });
        let context = client.next_context(20);
        assert!(context.counter >= 500);
        assert!(client.next_context(20).counter > context.counter);
        assert!(client.next_context(9_000).counter >= 9_000);
    }

    #[test]
    fn a_context_at_the_end_of_the_range_is_refused() {
        let mut source = VersionSource::new(Versioning::Lamport, "n1");
        let end = Version {
            counter: u64::MAX,
            node: "x".into(),
        };
        assert_eq!(source.next(None, Some(&end), Some("c1"), 0), None);
        assert_eq!(source.next(Some(&end), None, None, 0), None);
    }

    #[test]
    fn node_counter_ties_keep_what_is_there() {
        let mut a = VersionSource::new(Versioning::NodeCounter, "n1");
        let mut b = VersionSource::new(Versioning::NodeCounter, "n2");
        let base = Version {
            counter: 3,
            node: String::new(),
        };
        let va = a.next(Some(&base), None, None, 0).unwrap();
        let vb = b.next(Some(&base), None, None, 0).unwrap();
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
        let v = slow
            .next(Some(&seen), Some(&seen), Some("c1"), 10_000)
            .unwrap();
        assert!(!wins(&v, Some(&seen)));
    }
}
