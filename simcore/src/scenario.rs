//! Scenario files (CONTRACT in DESIGN.md): TOML in, a validated [`Scenario`] out.
//!
//! Everything is checked once, here, at load: unknown keys and values, durations, node
//! names against `nodes` and `[workload] clients`, which knobs and checks apply to which
//! system, which parameters each fault action takes. Every error names `file:line:col`,
//! the offending key and what was expected, so a broken file never reaches the harness.

use serde::de::{self, Deserializer};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;
use toml::Spanned;

/// A scenario that parsed and validated.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Unique name.
    pub name: String,
    /// Which system runs.
    pub system: System,
    /// Servers `n1..nN`.
    pub nodes: Spanned<usize>,
    /// Simulated time of the run.
    pub duration: Dur,
    /// Teaching text shown by `sim run`.
    #[serde(default)]
    pub description: Option<String>,
    /// Default seed (`--seed` overrides).
    #[serde(default)]
    pub seed: Option<u64>,
    /// Expected outcome.
    #[serde(default = "default_expect")]
    pub expect: Spanned<Expect>,
    /// Turns on madsim's buggify points.
    #[serde(default)]
    pub buggify: bool,
    /// Network conditions at the start.
    #[serde(default)]
    pub network: Network,
    /// System knobs.
    #[serde(default)]
    pub config: Knobs,
    /// Per-server overrides of `[config]` knobs (`[servers.n2]`).
    #[serde(default)]
    pub servers: BTreeMap<Spanned<String>, Knobs>,
    /// kv: the seed-001 load balancer in front of the servers, as node `lb`.
    #[serde(default)]
    pub lb: Option<Spanned<Lb>>,
    /// Simulated clients.
    #[serde(default)]
    pub workload: Option<Workload>,
    /// Per-client overrides of the workload's pace (`[clients.c1]`).
    #[serde(default)]
    pub clients: BTreeMap<Spanned<String>, ClientKnobs>,
    /// Scripted faults.
    #[serde(default, rename = "fault")]
    pub faults: Vec<Spanned<Fault>>,
    /// Seeded random faults.
    #[serde(default)]
    pub nemesis: Option<Nemesis>,
    /// Invariants judged on the history.
    #[serde(default, rename = "check")]
    pub checks: Vec<Spanned<Check>>,
}

/// The three systems.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum System {
    /// Replicated KV store.
    Kv,
    /// Bully leader election.
    Election,
    /// Total-order chat.
    Chat,
}

impl fmt::Display for System {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            System::Kv => "kv",
            System::Election => "election",
            System::Chat => "chat",
        })
    }
}

/// What the scenario's author expects the checks to find.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Expect {
    /// Every check passes.
    #[default]
    Pass,
    /// At least one check finds a violation.
    Violation,
    /// Exactly these checks find a violation and every other check passes
    /// (`expect = { violation = ["total_order"] }`).
    Checks(Vec<CheckKind>),
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expect::Pass => f.write_str("pass"),
            Expect::Violation => f.write_str("violation"),
            Expect::Checks(kinds) => {
                let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
                write!(f, "violation of {}", names.join(", "))
            }
        }
    }
}

impl<'de> Deserialize<'de> for Expect {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> de::Visitor<'de> for Visitor {
            type Value = Expect;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"pass\", \"violation\", or { violation = [\"check_kind\", ...] }")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Expect, E> {
                match text {
                    "pass" => Ok(Expect::Pass),
                    "violation" => Ok(Expect::Violation),
                    _ => Err(E::custom(format!(
                        "expected \"pass\", \"violation\" or {{ violation = [...] }}, got \"{text}\""
                    ))),
                }
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Expect, A::Error> {
                let mut kinds: Option<Vec<CheckKind>> = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key != "violation" || kinds.is_some() {
                        return Err(de::Error::custom(format!(
                            "expected only `violation = [...]` in `expect`, got `{key}`"
                        )));
                    }
                    kinds = Some(map.next_value()?);
                }
                match kinds {
                    Some(kinds) if !kinds.is_empty() => Ok(Expect::Checks(kinds)),
                    _ => Err(de::Error::custom(
                        "`expect = { violation = [...] }` needs at least one check kind",
                    )),
                }
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// A non-negative duration written as `"250ms"`, `"3s"`, `"2m"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        nodes::duration::parse(&text)
            .map(Dur)
            .map_err(de::Error::custom)
    }
}

/// A signed duration in milliseconds, written `"+5s"`, `"-10s"`, `"250ms"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Offset(pub i64);

impl<'de> Deserialize<'de> for Offset {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        nodes::duration::parse_signed_ms(&text)
            .map(Offset)
            .map_err(de::Error::custom)
    }
}

/// A rate written `"20/s"` or `"600/m"`, in operations per second.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate(pub f64);

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let expected = || {
            de::Error::custom(format!(
                "expected a rate like \"20/s\" or \"600/m\", got \"{text}\""
            ))
        };
        let (count, unit) = text.split_once('/').ok_or_else(expected)?;
        let count: f64 = count.trim().parse().map_err(|_| expected())?;
        let per_second = match unit.trim() {
            "s" => count,
            "m" => count / 60.0,
            _ => return Err(expected()),
        };
        if !(per_second.is_finite() && per_second > 0.0) {
            return Err(expected());
        }
        Ok(Rate(per_second))
    }
}

/// `[network]`: conditions from the start of the run.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// Per-message delay, uniform in `[min, max]`.
    #[serde(default)]
    pub latency: Option<Spanned<[Dur; 2]>>,
    /// Drop probability (TCP retransmits, so on TCP this shows up as delay).
    #[serde(default)]
    pub loss: Option<Spanned<f64>>,
}

/// `[config]`: every knob of every system; which ones apply is checked per system.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Knobs {
    /// election, chat
    pub heartbeat_interval: Option<Spanned<Dur>>,
    /// election, chat
    pub election_timeout: Option<Spanned<Dur>>,
    /// election, chat: majority votes and lease (`true`, default) or plain bully.
    pub quorum: Option<Spanned<bool>>,
    /// chat: `"majority"` (default) or `"leader"`.
    pub commit: Option<Spanned<Commit>>,
    /// kv
    pub replication_factor: Option<Spanned<u32>>,
    /// kv
    pub virtual_nodes: Option<Spanned<u32>>,
    /// kv
    pub write_quorum: Option<Spanned<u32>>,
    /// kv
    pub versioning: Option<Spanned<Versioning>>,
    /// kv
    pub gossip_interval: Option<Spanned<Dur>>,
    /// kv
    pub registry_heartbeat: Option<Spanned<Dur>>,
    /// kv: requests per second per client.
    pub rate_limit: Option<Spanned<u32>>,
    /// kv: most concurrent requests.
    pub backpressure: Option<Spanned<u32>>,
    /// kv
    pub circuit_breaker: Option<Spanned<bool>>,
    /// kv: consecutive failures that open a peer's breaker (5).
    pub breaker_failures: Option<Spanned<u32>>,
    /// kv: time a breaker stays OPEN before its HALF_OPEN probe (5s).
    pub breaker_cooldown: Option<Spanned<Dur>>,
    /// kv: concurrent request slots (unbounded).
    pub workers: Option<Spanned<u32>>,
    /// kv: simulated work per client request, ms on the node's clock (0).
    pub load_factor: Option<Spanned<f64>>,
    /// kv: `"registry"` (seed 000, default) or `"gossip"` (SWIM, seed 003); `[config]`
    /// only, for the whole cluster.
    pub membership: Option<Spanned<Membership>>,
}

impl Knobs {
    /// These knobs with every one that `over` sets replaced by its value.
    pub fn overlaid(&self, over: &Knobs) -> Knobs {
        macro_rules! pick {
            ($($field:ident),* $(,)?) => {
                Knobs { $($field: over.$field.clone().or_else(|| self.$field.clone()),)* }
            };
        }
        pick!(
            heartbeat_interval,
            election_timeout,
            quorum,
            commit,
            replication_factor,
            virtual_nodes,
            write_quorum,
            versioning,
            gossip_interval,
            registry_heartbeat,
            rate_limit,
            backpressure,
            circuit_breaker,
            breaker_failures,
            breaker_cooldown,
            workers,
            load_factor,
            membership,
        )
    }
}

/// How KV servers find each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Membership {
    /// Seed 000's registry (node `registry`).
    Registry,
    /// Seed 003's SWIM gossip: no registry.
    Gossip,
}

/// When the chat acknowledges a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Commit {
    /// After a majority stored it.
    Majority,
    /// Once the leader sequenced it (seed).
    Leader,
}

/// How the KV store orders versions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Versioning {
    /// Lamport clock, ties broken by node id.
    Lamport,
    /// The seed's per-node counter.
    NodeCounter,
    /// Last writer wins on node wall clocks.
    WallClock,
}

/// `[lb]`: the seed-001 load balancer, node `lb` (kv only).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lb {
    /// How it picks a backend (default: round robin).
    #[serde(default)]
    pub strategy: Option<Spanned<LbStrategy>>,
    /// The servers behind it, in rotation order (default: every server).
    #[serde(default)]
    pub backends: Option<Spanned<Vec<Spanned<String>>>>,
    /// Time between two health checks of one backend (default 1s).
    #[serde(default)]
    pub health_interval: Option<Spanned<Dur>>,
}

/// The balancer's strategies (seed 001 `--strategy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LbStrategy {
    /// Each backend in turn.
    RoundRobin,
    /// The backend with the fewest requests in flight.
    LeastConnections,
}

/// Where clients send their requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// Through the load balancer of `[lb]`.
    Lb,
}

/// `[workload]`: simulated clients.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// Clients `c1..cM`.
    #[serde(default = "default_clients")]
    pub clients: Spanned<usize>,
    /// Total operations across clients.
    #[serde(default = "default_ops")]
    pub ops: usize,
    /// Per-client rate.
    #[serde(default = "default_rate")]
    pub rate: Rate,
    /// kv: distinct keys.
    #[serde(default)]
    pub keys: Option<Spanned<usize>>,
    /// kv: fraction of reads.
    #[serde(default)]
    pub read_ratio: Option<Spanned<f64>>,
    /// No new operations after this time.
    #[serde(default)]
    pub stop: Option<Spanned<Dur>>,
    /// kv: bytes per written value (default: just the value's name, `c2-17`).
    #[serde(default)]
    pub value_size: Option<Spanned<usize>>,
    /// kv: how long one attempt waits for its answer (default [`DEFAULT_REQUEST_TIMEOUT`]).
    #[serde(default)]
    pub timeout: Option<Spanned<Dur>>,
    /// kv: extra attempts of an operation after a timeout, a 429, a 5xx or a refused
    /// connection (default 0).
    #[serde(default)]
    pub retries: Option<Spanned<u32>>,
    /// kv: the pause before a retry (default `none`: at once).
    #[serde(default)]
    pub retry_backoff: Option<Spanned<Backoff>>,
    /// kv: the first exponential backoff's upper bound; it doubles per retry.
    #[serde(default)]
    pub retry_base: Option<Spanned<Dur>>,
    /// kv: whether a client waits for its previous operation (default `closed`).
    #[serde(default)]
    pub arrival: Option<Spanned<Arrival>>,
    /// kv: `"lb"` sends every request through the load balancer (default: to a random
    /// server directly).
    #[serde(default)]
    pub via: Option<Spanned<Via>>,
}

/// `[clients.cJ]`: one client's own pace instead of its share of `[workload]`, e.g. the
/// one client far over its rate limit (seed 001's `--rate-limit` is per client).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientKnobs {
    /// This client's own rate (default: its share of the aggregate `rate`).
    #[serde(default)]
    pub rate: Option<Spanned<Rate>>,
    /// This client's operations (default: as many as its rate fits in the time the
    /// others' traffic lasts, so it runs as long as they do).
    #[serde(default)]
    pub ops: Option<Spanned<usize>>,
}

/// Most operations one `[clients.cJ]` table may ask for.
pub const MAX_CLIENT_OPS: usize = 1_000_000;

/// How long a kv client waits for one answer when the workload gives no `timeout`.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Most `retries` a workload may ask for (the backoff doubles per retry).
pub const MAX_RETRIES: u32 = 10;

/// The pause between a failed attempt and the next (`[workload] retry_backoff`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backoff {
    /// Retry at once: the retry storm.
    None,
    /// Full jitter: retry `n` waits a uniform time in `[0, retry_base * 2^(n-1))`.
    Exponential,
}

/// When a client starts its operations (`[workload] arrival`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arrival {
    /// Each client waits for its previous operation to end before the next is due.
    #[default]
    Closed,
    /// Operations start at `rate` however many are outstanding, as real traffic does.
    Open,
}

impl Workload {
    /// How long one attempt waits for its answer.
    pub fn request_timeout(&self) -> Duration {
        self.timeout
            .as_ref()
            .map_or(DEFAULT_REQUEST_TIMEOUT, |t| t.get_ref().0)
    }

    /// Extra attempts per operation.
    pub fn retry_count(&self) -> u32 {
        self.retries.as_ref().map_or(0, |r| *r.get_ref())
    }

    /// Open or closed arrival.
    pub fn arrival_mode(&self) -> Arrival {
        self.arrival
            .as_ref()
            .map_or(Arrival::Closed, |a| *a.get_ref())
    }

    /// True when the workload uses the overload client model (any of `timeout`,
    /// `retries`, `retry_backoff`, `arrival`): its operations then list their attempts
    /// in the history. Scenarios written before these keys existed leave them out, so
    /// their traces (and trace hashes) stay byte for byte what they were.
    pub fn uses_client_model(&self) -> bool {
        self.timeout.is_some()
            || self.retries.is_some()
            || self.retry_backoff.is_some()
            || self.arrival.is_some()
    }
}

/// Largest `value_size`: a written value must fit in one client request body.
pub const MAX_VALUE_SIZE: usize = 60_000;

fn default_expect() -> Spanned<Expect> {
    Spanned::new(0..0, Expect::Pass)
}

fn default_clients() -> Spanned<usize> {
    Spanned::new(0..0, 1)
}
fn default_ops() -> usize {
    100
}
fn default_rate() -> Rate {
    Rate(10.0)
}

/// The fault actions of the contract (in scenario files and in the `--trace` lines).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Crash,
    Restart,
    Pause,
    Resume,
    Shutdown,
    Partition,
    Heal,
    Isolate,
    Clog,
    Unclog,
    Skew,
    Loss,
    Latency,
    Disk,
    Slow,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = format!("{self:?}").to_lowercase();
        f.write_str(&name)
    }
}

/// How a `disk` fault damages a node's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiskMode {
    /// Cut the last record short.
    Tear,
    /// Flip bytes in a seeded random record.
    Corrupt,
}

/// One `[[fault]]` entry, as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// When, in simulated time from the start.
    pub at: Dur,
    /// What.
    pub action: Spanned<Action>,
    /// Target node selector.
    pub node: Option<Spanned<String>>,
    /// `partition`: groups of server names.
    pub groups: Option<Spanned<Vec<Vec<Spanned<String>>>>>,
    /// `clog`/`unclog`/`loss`/`latency`: link source.
    pub from: Option<Spanned<String>>,
    /// `clog`/`unclog`/`loss`/`latency`: link target.
    pub to: Option<Spanned<String>>,
    /// `skew`: wall-clock offset.
    pub offset: Option<Spanned<Offset>>,
    /// `skew`: clock rate error.
    pub drift: Option<Spanned<f64>>,
    /// `loss`: drop probability.
    pub rate: Option<Spanned<f64>>,
    /// `latency`: new delay range.
    pub range: Option<Spanned<[Dur; 2]>>,
    /// `disk`: tear or corrupt.
    pub mode: Option<Spanned<DiskMode>>,
    /// `slow`: how many times longer the node's per-request work takes (1: normal).
    pub factor: Option<Spanned<f64>>,
    /// The fault's identity for its own random draws (a `random` node, the record a
    /// `disk` fault damages, a lossy link's drops): they come from a stream derived from
    /// the seed and this id, so adding or removing another fault never changes them.
    /// Default: the fault's position in the file (1-based); `sim shrink` writes it out.
    pub id: Option<Spanned<u64>>,
}

impl Fault {
    /// A fault with no parameters yet (for faults made by code: the nemesis, the shrinker).
    pub fn new(at: Duration, action: Action) -> Fault {
        Fault {
            at: Dur(at),
            action: Spanned::new(0..0, action),
            node: None,
            groups: None,
            from: None,
            to: None,
            offset: None,
            drift: None,
            rate: None,
            range: None,
            mode: None,
            factor: None,
            id: None,
        }
    }

    /// True when applying this fault draws random numbers (from its own stream).
    pub fn draws(&self) -> bool {
        let random_node = self.node.as_ref().is_some_and(|n| n.get_ref() == "random");
        let lossy_link = *self.action.get_ref() == Action::Loss && self.from.is_some();
        random_node || lossy_link || *self.action.get_ref() == Action::Disk
    }

    /// Sets the target node.
    pub fn node(mut self, node: &str) -> Fault {
        self.node = Some(Spanned::new(0..0, node.to_string()));
        self
    }

    /// Sets the link (`clog`, `unclog`, per-link `loss`).
    pub fn link(mut self, from: &str, to: &str) -> Fault {
        self.from = Some(Spanned::new(0..0, from.to_string()));
        self.to = Some(Spanned::new(0..0, to.to_string()));
        self
    }

    /// Sets partition groups.
    pub fn groups(mut self, groups: Vec<Vec<String>>) -> Fault {
        let groups = groups
            .into_iter()
            .map(|g| g.into_iter().map(|n| Spanned::new(0..0, n)).collect())
            .collect();
        self.groups = Some(Spanned::new(0..0, groups));
        self
    }
}

/// `[nemesis]`: seeded random faults.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nemesis {
    /// Fault kinds to draw from.
    pub kinds: Vec<Spanned<NemesisKind>>,
    /// Time between faults, uniform in range.
    #[serde(default = "default_interval")]
    pub interval: Spanned<[Dur; 2]>,
    /// How long each fault lasts before it is healed.
    #[serde(default = "default_heal_after")]
    pub heal_after: Spanned<[Dur; 2]>,
    /// After this, heal everything and inject nothing more.
    #[serde(default)]
    pub until: Option<Spanned<Dur>>,
    /// Most servers down or cut off at once (default: a minority).
    #[serde(default)]
    pub max_down: Option<Spanned<usize>>,
    /// Each seed enables a random subset of `kinds`.
    #[serde(default)]
    pub swarm: bool,
}

fn default_interval() -> Spanned<[Dur; 2]> {
    Spanned::new(
        0..0,
        [Dur(Duration::from_secs(2)), Dur(Duration::from_secs(8))],
    )
}
fn default_heal_after() -> Spanned<[Dur; 2]> {
    Spanned::new(
        0..0,
        [Dur(Duration::from_secs(1)), Dur(Duration::from_secs(5))],
    )
}

/// Fault kinds a nemesis can draw.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NemesisKind {
    Partition,
    Crash,
    Pause,
    Skew,
    Loss,
    Clog,
    Isolate,
    Latency,
    Disk,
    Shutdown,
    Slow,
}

/// Invariant kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    ElectionSafety,
    SingleLeader,
    LeaderElected,
    TotalOrder,
    Delivered,
    Converged,
    NoLostWrites,
    Linearizable,
    Liveness,
    Latency,
    Availability,
    Recovers,
    MembershipConverged,
}

impl CheckKind {
    /// The name used in scenario files and reports.
    pub fn name(self) -> &'static str {
        match self {
            CheckKind::ElectionSafety => "election_safety",
            CheckKind::SingleLeader => "single_leader",
            CheckKind::LeaderElected => "leader_elected",
            CheckKind::TotalOrder => "total_order",
            CheckKind::Delivered => "delivered",
            CheckKind::Converged => "converged",
            CheckKind::NoLostWrites => "no_lost_writes",
            CheckKind::Linearizable => "linearizable",
            CheckKind::Liveness => "liveness",
            CheckKind::Latency => "latency",
            CheckKind::Availability => "availability",
            CheckKind::Recovers => "recovers",
            CheckKind::MembershipConverged => "membership_converged",
        }
    }

    fn systems(self) -> &'static [System] {
        match self {
            CheckKind::ElectionSafety | CheckKind::SingleLeader | CheckKind::LeaderElected => {
                &[System::Election, System::Chat]
            }
            CheckKind::TotalOrder | CheckKind::Delivered => &[System::Chat],
            CheckKind::Converged
            | CheckKind::NoLostWrites
            | CheckKind::Linearizable
            | CheckKind::MembershipConverged => &[System::Kv],
            CheckKind::Liveness => &[System::Election, System::Chat, System::Kv],
            // Judged on client operations: the systems whose workload has clients.
            CheckKind::Latency | CheckKind::Availability | CheckKind::Recovers => {
                &[System::Kv, System::Chat]
            }
        }
    }
}

/// One `[[check]]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// Which invariant.
    pub kind: CheckKind,
    /// `leader_elected`, `liveness`: deadline after the last fault (or `after`).
    #[serde(default)]
    pub within: Option<Spanned<Dur>>,
    /// `liveness`: probe from this time instead of from the last fault.
    #[serde(default)]
    pub after: Option<Spanned<Dur>>,
    /// A vacuous verdict (nothing to judge) passes instead of failing the run.
    #[serde(default)]
    pub allow_vacuous: bool,
    /// `latency`: the longest response time allowed at `percentile`.
    #[serde(default)]
    pub max: Option<Spanned<Dur>>,
    /// `latency`: which percentile of response times is judged (default 99).
    #[serde(default)]
    pub percentile: Option<Spanned<f64>>,
    /// `latency`, `availability`: judge operations invoked from this time.
    #[serde(default)]
    pub from: Option<Spanned<Dur>>,
    /// `latency`, `availability`: judge operations invoked before this time.
    #[serde(default)]
    pub until: Option<Spanned<Dur>>,
    /// `latency`, `availability`, `recovers`: judge only these clients' operations.
    #[serde(default)]
    pub clients: Option<Spanned<Vec<Spanned<String>>>>,
    /// `availability`, `recovers`: the least fraction of operations acknowledged.
    #[serde(default)]
    pub min: Option<Spanned<f64>>,
    /// `recovers` (and `availability`'s evidence): the length of one judged window.
    #[serde(default)]
    pub window: Option<Spanned<Dur>>,
}

/// `latency`'s percentile when the check gives none.
pub const DEFAULT_PERCENTILE: f64 = 99.0;
/// `recovers`' window (and `availability`'s evidence windows) when the check gives none.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(2);

impl Check {
    /// The clients named by `clients`, or `None` for every client.
    pub fn client_filter(&self) -> Option<Vec<String>> {
        self.clients
            .as_ref()
            .map(|c| c.get_ref().iter().map(|n| n.get_ref().clone()).collect())
    }

    /// `from`..`until` in simulated nanoseconds (open ends: the start, the end of time).
    pub fn invoked_range(&self) -> Range<u64> {
        let ns = |d: &Option<Spanned<Dur>>| d.as_ref().map(|d| d.get_ref().0.as_nanos() as u64);
        ns(&self.from).unwrap_or(0)..ns(&self.until).unwrap_or(u64::MAX)
    }

    /// The judged window length.
    pub fn window_length(&self) -> Duration {
        self.window
            .as_ref()
            .map_or(DEFAULT_WINDOW, |w| w.get_ref().0)
    }
}

/// A scenario error with its position in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioError {
    /// The file as given.
    pub file: String,
    /// 1-based line (0 when the error is not about a position, e.g. unreadable file).
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// The offending key, when known.
    pub key: Option<String>,
    /// What was wrong and what was expected.
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}:{}: ", self.file, self.line, self.col)?;
        } else {
            write!(f, "{}: ", self.file)?;
        }
        if let Some(key) = &self.key {
            write!(f, "key `{key}`: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ScenarioError {}

/// Reads and validates a scenario file.
pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
        file: file.clone(),
        line: 0,
        col: 0,
        key: None,
        message: format!("cannot read: {e}"),
    })?;
    parse(&file, &text)
}

/// Parses and validates scenario text; `file` is used in error messages.
pub fn parse(file: &str, text: &str) -> Result<Scenario, ScenarioError> {
    let at = |span: Range<usize>, key: Option<&str>, message: String| {
        let (line, col) = line_col(text, span.start);
        ScenarioError {
            file: file.to_string(),
            line,
            col,
            key: key
                .map(str::to_string)
                .or_else(|| key_on_line(text, span.start)),
            message,
        }
    };
    let scenario: Scenario = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        let message = e.message().trim().to_string();
        let key = field_in_message(&message);
        at(span, key.as_deref(), message)
    })?;
    validate(&scenario).map_err(|(span, key, message)| at(span, Some(key), message))?;
    Ok(scenario)
}

type Invalid = (Range<usize>, &'static str, String);

/// Most servers in a scenario.
pub const MAX_SERVERS: usize = 64;
/// Most servers with gossip membership (seed 003 claims 100; Serf, thousands).
pub const MAX_GOSSIP_SERVERS: usize = 1000;

fn validate(s: &Scenario) -> Result<(), Invalid> {
    let nodes = *s.nodes.get_ref();
    let most = if s.gossip_membership() {
        MAX_GOSSIP_SERVERS
    } else {
        MAX_SERVERS
    };
    if nodes == 0 || nodes > most {
        let more = if most == MAX_SERVERS {
            format!(" (up to {MAX_GOSSIP_SERVERS} with kv `membership = \"gossip\"`)")
        } else {
            String::new()
        };
        return Err((
            s.nodes.span(),
            "nodes",
            format!("expected 1 to {most} servers{more}"),
        ));
    }
    let clients = s.workload.as_ref().map_or(0, |w| *w.clients.get_ref());
    let names = Names {
        servers: nodes,
        clients,
        registry: s.system == System::Kv && !s.gossip_membership(),
        lb: s.lb.is_some(),
    };
    if let Some(latency) = &s.network.latency {
        check_range(latency, "latency")?;
    }
    if let Some(loss) = &s.network.loss {
        check_probability(loss, "loss")?;
    }
    validate_knobs(s)?;
    validate_clients(s, clients)?;
    if let Some(lb) = &s.lb {
        validate_lb(s.system, lb, nodes)?;
    }
    if let Some(w) = &s.workload {
        validate_workload(s.system, w)?;
        if let (Some(via), None) = (&w.via, &s.lb) {
            return Err((
                via.span(),
                "via",
                "`via = \"lb\"` needs a load balancer: add an [lb] table".into(),
            ));
        }
    }
    for fault in &s.faults {
        validate_fault(fault.get_ref(), &names, s.duration)?;
        let action = &fault.get_ref().action;
        if *action.get_ref() == Action::Slow && s.system != System::Kv {
            return Err((
                action.span(),
                "action",
                format!("action `slow` slows a KV server's per-request work (load_factor); {} servers have none", s.system),
            ));
        }
    }
    if let Some(n) = &s.nemesis {
        check_range(&n.interval, "interval")?;
        check_range(&n.heal_after, "heal_after")?;
        if n.interval.get_ref()[0].0.is_zero() {
            return Err((
                n.interval.span(),
                "interval",
                "the shortest interval must be above 0s".into(),
            ));
        }
        if let Some(max_down) = &n.max_down {
            if *max_down.get_ref() >= nodes {
                return Err((
                    max_down.span(),
                    "max_down",
                    format!("expected fewer than the {nodes} servers"),
                ));
            }
        }
        if n.kinds.is_empty() {
            return Err((0..0, "kinds", "the nemesis needs at least one kind".into()));
        }
        if let Some(slow) = n.kinds.iter().find(|k| *k.get_ref() == NemesisKind::Slow) {
            if s.system != System::Kv {
                return Err((
                    slow.span(),
                    "kinds",
                    format!("nemesis kind `slow` applies to kv, not to {}", s.system),
                ));
            }
        }
    }
    if s.checks.is_empty() {
        return Err((
            0..0,
            "check",
            "expected at least one [[check]] (what would the run prove?)".into(),
        ));
    }
    for check in &s.checks {
        let kind = check.get_ref().kind;
        if !kind.systems().contains(&s.system) {
            let systems: Vec<String> = kind.systems().iter().map(|s| s.to_string()).collect();
            return Err((
                check.span(),
                "kind",
                format!(
                    "check `{}` applies to {}, not to {}",
                    kind.name(),
                    systems.join(", "),
                    s.system
                ),
            ));
        }
        if let Some(within) = &check.get_ref().within {
            if !matches!(
                kind,
                CheckKind::LeaderElected
                    | CheckKind::Liveness
                    | CheckKind::Recovers
                    | CheckKind::MembershipConverged
            ) {
                return Err((
                    within.span(),
                    "within",
                    format!(
                        "`within` applies to checks leader_elected, liveness, recovers and membership_converged, not {}",
                        kind.name()
                    ),
                ));
            }
            if within.get_ref().0.is_zero() {
                return Err((
                    within.span(),
                    "within",
                    "expected a duration above 0s".into(),
                ));
            }
        }
        validate_client_check(check, &names, s.duration)?;
        if let Some(after) = &check.get_ref().after {
            if kind != CheckKind::Liveness {
                return Err((
                    after.span(),
                    "after",
                    format!("`after` applies to check liveness, not {}", kind.name()),
                ));
            }
            if *after.get_ref() > s.duration {
                return Err((
                    after.span(),
                    "after",
                    "expected a time within the run's duration".into(),
                ));
            }
        }
    }
    if let Expect::Checks(named) = s.expect.get_ref() {
        for kind in named {
            if !s.checks.iter().any(|c| c.get_ref().kind == *kind) {
                return Err((
                    s.expect.span(),
                    "expect",
                    format!(
                        "expects check `{}` to fail, but the scenario has no such [[check]]",
                        kind.name()
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn validate_knobs(s: &Scenario) -> Result<(), Invalid> {
    check_knobs(s.system, &s.config)?;
    let nodes = s.server_count();
    for (name, knobs) in &s.servers {
        if server_index(name.get_ref(), nodes).is_none() {
            return Err((
                name.span(),
                "servers",
                format!(
                    "unknown server \"{}\": expected one of n1..n{nodes}",
                    name.get_ref()
                ),
            ));
        }
        check_knobs(s.system, knobs)?;
        if let Some(m) = &knobs.membership {
            return Err((
                m.span(),
                "membership",
                "membership is for the whole cluster: set it in [config]".into(),
            ));
        }
    }
    for index in 1..=nodes {
        check_together(&s.knobs_for(index))?;
    }
    // Breaker settings with no breaker to apply them to: a typo'd intent, not a default.
    let breaker_on = |index: usize| {
        s.knobs_for(index)
            .circuit_breaker
            .is_some_and(|b| *b.get_ref())
    };
    let tables = std::iter::once((&s.config, (1..=nodes).collect::<Vec<_>>())).chain(
        s.servers.iter().filter_map(|(name, knobs)| {
            server_index(name.get_ref(), nodes).map(|i| (knobs, vec![i]))
        }),
    );
    for (knobs, applies_to) in tables {
        let span = knobs
            .breaker_failures
            .as_ref()
            .map(|v| (v.span(), "breaker_failures"))
            .or_else(|| {
                knobs
                    .breaker_cooldown
                    .as_ref()
                    .map(|v| (v.span(), "breaker_cooldown"))
            });
        if let Some((span, key)) = span {
            if !applies_to.iter().any(|&i| breaker_on(i)) {
                return Err((
                    span,
                    key,
                    "needs `circuit_breaker = true` on the servers it applies to".into(),
                ));
            }
        }
    }
    Ok(())
}

/// `n3` -> 3, for servers `n1..n{nodes}`.
fn server_index(name: &str, nodes: usize) -> Option<usize> {
    let digits = name.strip_prefix('n')?;
    if digits.starts_with('0') {
        return None;
    }
    digits.parse().ok().filter(|i| (1..=nodes).contains(i))
}

/// Each knob of one table on its own: its system, its range.
fn check_knobs(system: System, k: &Knobs) -> Result<(), Invalid> {
    use System::*;
    let mut present: Vec<(&'static str, Range<usize>, &'static [System])> = Vec::new();
    macro_rules! knob {
        ($field:ident, $systems:expr) => {
            if let Some(v) = &k.$field {
                present.push((stringify!($field), v.span(), $systems));
            }
        };
    }
    knob!(heartbeat_interval, &[Election, Chat]);
    knob!(election_timeout, &[Election, Chat]);
    knob!(quorum, &[Election, Chat]);
    knob!(commit, &[Chat]);
    knob!(replication_factor, &[Kv]);
    knob!(virtual_nodes, &[Kv]);
    knob!(write_quorum, &[Kv]);
    knob!(versioning, &[Kv]);
    knob!(gossip_interval, &[Kv]);
    knob!(registry_heartbeat, &[Kv]);
    knob!(rate_limit, &[Kv]);
    knob!(backpressure, &[Kv]);
    knob!(circuit_breaker, &[Kv]);
    knob!(breaker_failures, &[Kv]);
    knob!(breaker_cooldown, &[Kv]);
    knob!(workers, &[Kv]);
    knob!(membership, &[Kv]);
    knob!(load_factor, &[Kv]);
    for (name, span, systems) in present {
        if !systems.contains(&system) {
            let systems: Vec<String> = systems.iter().map(|s| s.to_string()).collect();
            return Err((
                span,
                name,
                format!("knob applies to {}, not to {}", systems.join(", "), system),
            ));
        }
    }
    for (value, name) in [
        (&k.heartbeat_interval, "heartbeat_interval"),
        (&k.election_timeout, "election_timeout"),
        (&k.gossip_interval, "gossip_interval"),
        (&k.registry_heartbeat, "registry_heartbeat"),
        (&k.breaker_cooldown, "breaker_cooldown"),
    ] {
        if let Some(v) = value {
            if v.get_ref().0.is_zero() {
                return Err((v.span(), name, "expected a duration above 0s".into()));
            }
        }
    }
    for (value, name) in [
        (&k.replication_factor, "replication_factor"),
        (&k.virtual_nodes, "virtual_nodes"),
        (&k.write_quorum, "write_quorum"),
        (&k.rate_limit, "rate_limit"),
        (&k.backpressure, "backpressure"),
        (&k.breaker_failures, "breaker_failures"),
        (&k.workers, "workers"),
    ] {
        if let Some(v) = value {
            if *v.get_ref() == 0 {
                return Err((v.span(), name, "expected an integer of at least 1".into()));
            }
        }
    }
    if let Some(v) = &k.load_factor {
        nodes::kv::overload::load_factor(*v.get_ref())
            .map_err(|why| (v.span(), "load_factor", why))?;
    }
    Ok(())
}

/// Knobs that must agree, on one server's effective knobs.
fn check_together(k: &Knobs) -> Result<(), Invalid> {
    if let (Some(hb), Some(et)) = (&k.heartbeat_interval, &k.election_timeout) {
        if hb.get_ref().0 >= et.get_ref().0 {
            return Err((
                et.span(),
                "election_timeout",
                "expected a timeout longer than heartbeat_interval".into(),
            ));
        }
    }
    Ok(())
}

fn validate_lb(system: System, lb: &Spanned<Lb>, servers: usize) -> Result<(), Invalid> {
    if system != System::Kv {
        return Err((
            lb.span(),
            "lb",
            format!("[lb] applies to kv, not to {system}"),
        ));
    }
    let lb = lb.get_ref();
    if let Some(backends) = &lb.backends {
        if backends.get_ref().is_empty() {
            return Err((
                backends.span(),
                "backends",
                "expected at least one server (or leave `backends` out for every server)".into(),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for name in backends.get_ref() {
            let text = name.get_ref();
            let index = text
                .strip_prefix('n')
                .filter(|n| !n.starts_with('0'))
                .and_then(|n| n.parse::<usize>().ok());
            if !index.is_some_and(|i| (1..=servers).contains(&i)) {
                return Err((
                    name.span(),
                    "backends",
                    format!("unknown server \"{text}\": expected one of n1..n{servers}"),
                ));
            }
            if !seen.insert(text.clone()) {
                return Err((
                    name.span(),
                    "backends",
                    format!("\"{text}\" is listed twice"),
                ));
            }
        }
    }
    if let Some(every) = &lb.health_interval {
        if every.get_ref().0.is_zero() {
            return Err((
                every.span(),
                "health_interval",
                "expected a duration above 0s".into(),
            ));
        }
    }
    Ok(())
}

fn validate_clients(s: &Scenario, clients: usize) -> Result<(), Invalid> {
    for (name, knobs) in &s.clients {
        let known = name
            .get_ref()
            .strip_prefix('c')
            .filter(|digits| !digits.starts_with('0'))
            .and_then(|digits| digits.parse::<usize>().ok())
            .is_some_and(|j| (1..=clients).contains(&j));
        if !known {
            let why = if clients == 0 {
                "[clients] tables need a [workload] with clients".to_string()
            } else {
                format!("expected one of c1..c{clients}")
            };
            return Err((
                name.span(),
                "clients",
                format!("unknown client \"{}\": {why}", name.get_ref()),
            ));
        }
        if let Some(ops) = &knobs.ops {
            if *ops.get_ref() > MAX_CLIENT_OPS {
                return Err((
                    ops.span(),
                    "ops",
                    format!("expected at most {MAX_CLIENT_OPS} operations"),
                ));
            }
        }
    }
    Ok(())
}

fn validate_workload(system: System, w: &Workload) -> Result<(), Invalid> {
    if *w.clients.get_ref() == 0 || *w.clients.get_ref() > 250 {
        return Err((
            w.clients.span(),
            "clients",
            "expected 1 to 250 clients".into(),
        ));
    }
    if system != System::Kv {
        if let Some(keys) = &w.keys {
            return Err((
                keys.span(),
                "keys",
                format!("applies to kv workloads, not {system}"),
            ));
        }
        if let Some(r) = &w.read_ratio {
            return Err((
                r.span(),
                "read_ratio",
                format!("applies to kv workloads, not {system}"),
            ));
        }
        if let Some(v) = &w.value_size {
            return Err((
                v.span(),
                "value_size",
                format!("applies to kv workloads, not {system}"),
            ));
        }
        let client_model = [
            ("timeout", w.timeout.as_ref().map(|v| v.span())),
            ("retries", w.retries.as_ref().map(|v| v.span())),
            ("retry_backoff", w.retry_backoff.as_ref().map(|v| v.span())),
            ("retry_base", w.retry_base.as_ref().map(|v| v.span())),
            ("arrival", w.arrival.as_ref().map(|v| v.span())),
        ];
        for (key, span) in client_model {
            if let Some(span) = span {
                let why = match system {
                    System::Chat => {
                        "the chat client has its own fixed retry policy (4 attempts of 1s, \
                         250ms apart, on other servers under one message id); the overload \
                         client model is kv's"
                    }
                    _ => "election clients send no operations",
                };
                return Err((
                    span,
                    key,
                    format!("applies to kv workloads, not {system}: {why}"),
                ));
            }
        }
        if let Some(v) = &w.via {
            return Err((
                v.span(),
                "via",
                format!("applies to kv workloads, not {system}"),
            ));
        }
    }
    validate_client_model(w)?;
    if let Some(v) = &w.value_size {
        if *v.get_ref() == 0 || *v.get_ref() > MAX_VALUE_SIZE {
            return Err((
                v.span(),
                "value_size",
                format!("expected 1 to {MAX_VALUE_SIZE} bytes"),
            ));
        }
    }
    if let Some(keys) = &w.keys {
        if *keys.get_ref() == 0 {
            return Err((keys.span(), "keys", "expected at least 1 key".into()));
        }
    }
    if let Some(r) = &w.read_ratio {
        check_probability(r, "read_ratio")?;
    }
    Ok(())
}

/// A check parameter: its key, where it was written (if it was), the checks it belongs to.
type Param = (&'static str, Option<Range<usize>>, &'static [CheckKind]);

/// The parameters of `latency`, `availability` and `recovers`: each only on the checks
/// it belongs to, the required ones present, every value in range.
fn validate_client_check(
    spanned: &Spanned<Check>,
    names: &Names,
    duration: Dur,
) -> Result<(), Invalid> {
    use CheckKind::*;
    let check = spanned.get_ref();
    let kind = check.kind;
    let span = |v: &Option<Spanned<Dur>>| v.as_ref().map(|v| v.span());
    let given: [Param; 7] = [
        ("max", span(&check.max), &[Latency]),
        (
            "percentile",
            check.percentile.as_ref().map(|v| v.span()),
            &[Latency],
        ),
        ("from", span(&check.from), &[Latency, Availability]),
        ("until", span(&check.until), &[Latency, Availability]),
        (
            "clients",
            check.clients.as_ref().map(|v| v.span()),
            &[Latency, Availability, Recovers],
        ),
        (
            "min",
            check.min.as_ref().map(|v| v.span()),
            &[Availability, Recovers],
        ),
        ("window", span(&check.window), &[Availability, Recovers]),
    ];
    for (key, span, kinds) in &given {
        if let Some(span) = span {
            if !kinds.contains(&kind) {
                let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
                return Err((
                    span.clone(),
                    key,
                    format!(
                        "`{key}` applies to check {}, not {}",
                        names.join(", "),
                        kind.name()
                    ),
                ));
            }
        }
    }
    let required: &[&str] = match kind {
        Latency => &["max"],
        Availability => &["min"],
        Recovers => &["min", "within"],
        _ => &[],
    };
    for key in required {
        let present = match *key {
            "within" => check.within.is_some(),
            _ => given.iter().any(|(k, span, _)| k == key && span.is_some()),
        };
        if !present {
            return Err((
                spanned.span(),
                key,
                format!("check `{}` needs `{key}`", kind.name()),
            ));
        }
    }
    if let Some(max) = &check.max {
        if max.get_ref().0.is_zero() {
            return Err((max.span(), "max", "expected a duration above 0s".into()));
        }
    }
    if let Some(p) = &check.percentile {
        let v = *p.get_ref();
        if !(v > 0.0 && v <= 100.0) {
            return Err((
                p.span(),
                "percentile",
                format!("expected a percentile above 0 and at most 100, got {v}"),
            ));
        }
    }
    if let Some(min) = &check.min {
        check_probability(min, "min")?;
    }
    if let Some(window) = &check.window {
        if window.get_ref().0.is_zero() {
            return Err((
                window.span(),
                "window",
                "expected a duration above 0s".into(),
            ));
        }
    }
    for (end, key) in [(&check.from, "from"), (&check.until, "until")] {
        if let Some(end) = end {
            if *end.get_ref() > duration {
                return Err((
                    end.span(),
                    key,
                    "expected a time within the run's duration".into(),
                ));
            }
        }
    }
    if let (Some(from), Some(until)) = (&check.from, &check.until) {
        if from.get_ref() >= until.get_ref() {
            return Err((
                until.span(),
                "until",
                "expected `until` after `from`".into(),
            ));
        }
    }
    if let Some(clients) = &check.clients {
        if clients.get_ref().is_empty() {
            return Err((
                clients.span(),
                "clients",
                "expected at least one client (leave `clients` out for every client)".into(),
            ));
        }
        for client in clients.get_ref() {
            let text = client.get_ref();
            let number = text
                .strip_prefix('c')
                .filter(|n| !n.starts_with('0'))
                .and_then(|n| n.parse::<usize>().ok());
            if !number.is_some_and(|n| (1..=names.clients).contains(&n)) {
                let expected = if names.clients == 0 {
                    "the scenario has no [workload] clients".to_string()
                } else {
                    format!("expected one of c1..c{}", names.clients)
                };
                return Err((
                    client.span(),
                    "clients",
                    format!("unknown client \"{}\": {expected}", client.get_ref()),
                ));
            }
        }
    }
    Ok(())
}

/// `timeout`, `retries`, `retry_backoff`, `retry_base`: each only where it means something.
fn validate_client_model(w: &Workload) -> Result<(), Invalid> {
    if let Some(timeout) = &w.timeout {
        if timeout.get_ref().0.is_zero() {
            return Err((
                timeout.span(),
                "timeout",
                "expected a duration above 0s".into(),
            ));
        }
    }
    if let Some(retries) = &w.retries {
        if *retries.get_ref() > MAX_RETRIES {
            return Err((
                retries.span(),
                "retries",
                format!("expected 0 to {MAX_RETRIES} extra attempts"),
            ));
        }
        if *retries.get_ref() > 0 && w.timeout.is_none() {
            return Err((
                retries.span(),
                "retries",
                "a retrying client needs `timeout`: how long an attempt waits before it is \
                 retried"
                    .into(),
            ));
        }
    }
    if let Some(backoff) = &w.retry_backoff {
        if w.retry_count() == 0 {
            return Err((
                backoff.span(),
                "retry_backoff",
                "has no effect without `retries` above 0".into(),
            ));
        }
        if *backoff.get_ref() == Backoff::Exponential && w.retry_base.is_none() {
            return Err((
                backoff.span(),
                "retry_backoff",
                "`exponential` needs `retry_base`, the first retry's longest pause".into(),
            ));
        }
    }
    if let Some(base) = &w.retry_base {
        let exponential = w
            .retry_backoff
            .as_ref()
            .is_some_and(|b| *b.get_ref() == Backoff::Exponential);
        if !exponential {
            return Err((
                base.span(),
                "retry_base",
                "applies only with retry_backoff = \"exponential\"".into(),
            ));
        }
        if base.get_ref().0.is_zero() {
            return Err((
                base.span(),
                "retry_base",
                "expected a duration above 0s".into(),
            ));
        }
    }
    Ok(())
}

/// Which node names exist in a scenario.
struct Names {
    servers: usize,
    clients: usize,
    registry: bool,
    /// Whether `[lb]` puts node `lb` in the run.
    lb: bool,
}

impl Names {
    fn check(
        &self,
        name: &Spanned<String>,
        key: &'static str,
        selectors: bool,
    ) -> Result<(), Invalid> {
        let text = name.get_ref().as_str();
        let numbered = |prefix: char, count: usize| {
            text.strip_prefix(prefix)
                .and_then(|n| n.parse::<usize>().ok())
                .is_some_and(|n| n >= 1 && n <= count && !text[1..].starts_with('0'))
        };
        let ok = numbered('n', self.servers)
            || numbered('c', self.clients)
            || (self.registry && text == "registry")
            || (self.lb && text == "lb")
            || (selectors && (text == "leader" || text == "random"));
        if ok {
            return Ok(());
        }
        let mut expected = format!("n1..n{}", self.servers);
        if self.clients > 0 {
            expected.push_str(&format!(", c1..c{}", self.clients));
        }
        if self.registry {
            expected.push_str(", registry");
        }
        if self.lb {
            expected.push_str(", lb");
        }
        if selectors {
            expected.push_str(", leader, random");
        }
        Err((
            name.span(),
            key,
            format!("unknown node \"{text}\": expected one of {expected}"),
        ))
    }
}

fn validate_fault(f: &Fault, names: &Names, duration: Dur) -> Result<(), Invalid> {
    let action = *f.action.get_ref();
    if f.at > duration {
        return Err((
            f.action.span(),
            "at",
            format!(
                "fault at {} is after the end of the run ({})",
                nodes::duration::format(f.at.0),
                nodes::duration::format(duration.0)
            ),
        ));
    }
    use Action::*;
    let (required, optional): (&[&str], &[&str]) = match action {
        Crash | Restart | Pause | Resume | Shutdown | Isolate => (&["node"], &[]),
        Partition => (&["groups"], &[]),
        Heal => (&[], &[]),
        Clog | Unclog => (&["from", "to"], &[]),
        Skew => (&["node"], &["offset", "drift"]),
        Loss => (&["rate"], &["from", "to"]),
        Latency => (&["range"], &["from", "to"]),
        Disk => (&["node", "mode"], &[]),
        Slow => (&["node", "factor"], &[]),
    };
    let given: [(&str, Option<Range<usize>>); 10] = [
        ("node", f.node.as_ref().map(|v| v.span())),
        ("groups", f.groups.as_ref().map(|v| v.span())),
        ("from", f.from.as_ref().map(|v| v.span())),
        ("to", f.to.as_ref().map(|v| v.span())),
        ("offset", f.offset.as_ref().map(|v| v.span())),
        ("drift", f.drift.as_ref().map(|v| v.span())),
        ("rate", f.rate.as_ref().map(|v| v.span())),
        ("range", f.range.as_ref().map(|v| v.span())),
        ("mode", f.mode.as_ref().map(|v| v.span())),
        ("factor", f.factor.as_ref().map(|v| v.span())),
    ];
    for (key, span) in &given {
        if let Some(span) = span {
            if !required.contains(key) && !optional.contains(key) {
                let takes = if required.is_empty() && optional.is_empty() {
                    "no parameters".to_string()
                } else {
                    required
                        .iter()
                        .chain(optional)
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                return Err((
                    span.clone(),
                    key,
                    format!("action `{action}` does not take `{key}` (it takes {takes})"),
                ));
            }
        }
    }
    for key in required {
        if given.iter().any(|(k, span)| k == key && span.is_none()) {
            return Err((
                f.action.span(),
                key,
                format!("action `{action}` needs `{key}`"),
            ));
        }
    }
    let selectors = !matches!(action, Partition | Clog | Unclog | Loss | Latency);
    if let Some(node) = &f.node {
        names.check(node, "node", selectors)?;
        let server_only = matches!(action, Skew | Disk | Slow);
        if server_only
            && !node.get_ref().starts_with('n')
            && !matches!(node.get_ref().as_str(), "leader" | "random")
        {
            return Err((
                node.span(),
                "node",
                format!("action `{action}` applies to servers only"),
            ));
        }
    }
    for (end, key) in [(&f.from, "from"), (&f.to, "to")] {
        if let Some(end) = end {
            names.check(end, key, false)?;
        }
    }
    if matches!(action, Loss | Latency) && f.from.is_some() != f.to.is_some() {
        let span = f
            .from
            .as_ref()
            .or(f.to.as_ref())
            .map(|v| v.span())
            .unwrap_or(0..0);
        return Err((
            span,
            "from",
            "give both `from` and `to` for one link, or neither for every link".into(),
        ));
    }
    if let Some(groups) = &f.groups {
        let mut seen = std::collections::BTreeSet::new();
        if groups.get_ref().len() < 2 {
            return Err((
                groups.span(),
                "groups",
                "expected at least two groups".into(),
            ));
        }
        for name in groups.get_ref().iter().flatten() {
            names.check(name, "groups", false)?;
            if !seen.insert(name.get_ref().clone()) {
                return Err((
                    name.span(),
                    "groups",
                    format!("\"{}\" is in two groups", name.get_ref()),
                ));
            }
        }
    }
    if action == Skew && f.offset.is_none() && f.drift.is_none() {
        return Err((
            f.action.span(),
            "offset",
            "action `skew` needs `offset` and/or `drift`".into(),
        ));
    }
    if let Some(drift) = &f.drift {
        let d = *drift.get_ref();
        if !(d > -0.9 && d < 10.0) {
            return Err((
                drift.span(),
                "drift",
                "expected a rate error between -0.9 and 10 (0.02 = +2 %)".into(),
            ));
        }
    }
    if let Some(rate) = &f.rate {
        check_probability(rate, "rate")?;
    }
    if let Some(factor) = &f.factor {
        let x = *factor.get_ref();
        if !(1.0..=MAX_SLOW_FACTOR).contains(&x) {
            return Err((
                factor.span(),
                "factor",
                format!("expected a factor from 1 (normal speed) to {MAX_SLOW_FACTOR}, got {x}"),
            ));
        }
    }
    if let Some(range) = &f.range {
        check_range(range, "range")?;
    }
    Ok(())
}

/// Largest `slow` factor: past it a request's work outlasts any run.
pub const MAX_SLOW_FACTOR: f64 = 1000.0;

fn check_range(range: &Spanned<[Dur; 2]>, key: &'static str) -> Result<(), Invalid> {
    let [low, high] = range.get_ref();
    if low > high {
        return Err((
            range.span(),
            key,
            "expected [low, high] with low <= high".into(),
        ));
    }
    Ok(())
}

fn check_probability(p: &Spanned<f64>, key: &'static str) -> Result<(), Invalid> {
    let v = *p.get_ref();
    if !(0.0..=1.0).contains(&v) {
        return Err((
            p.span(),
            key,
            format!("expected a probability between 0 and 1, got {v}"),
        ));
    }
    Ok(())
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The key assigned on the line containing `offset` (`key = value`), if any.
fn key_on_line(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = text[start..].lines().next().unwrap_or("");
    let (key, _) = line.split_once('=')?;
    let key = key.trim();
    let valid = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
    valid.then(|| key.to_string())
}

/// The field named in a serde message such as "unknown field `foo`" or "missing field `at`".
fn field_in_message(message: &str) -> Option<String> {
    for prefix in ["unknown field `", "missing field `", "duplicate key `"] {
        if let Some(rest) = message.split(prefix).nth(1) {
            return rest.split('`').next().map(str::to_string);
        }
    }
    None
}

impl Scenario {
    /// Parts of the contract this build cannot run yet (valid files, refused by `run`
    /// with exit 2 rather than run wrongly).
    pub fn unsupported(&self) -> Option<String> {
        let per_link_latency = self.faults.iter().any(|f| {
            *f.get_ref().action.get_ref() == Action::Latency && f.get_ref().from.is_some()
        });
        if per_link_latency {
            return Some(
                "per-link latency (`latency` with `from`/`to`) is not supported: madsim 0.2 has one latency range for the whole network".into(),
            );
        }
        None
    }

    /// The knobs of server `n{index}`: `[config]` overlaid with its `[servers.n{index}]`.
    pub fn knobs_for(&self, index: usize) -> Knobs {
        let name = format!("n{index}");
        match self.servers.get(name.as_str()) {
            Some(over) => self.config.overlaid(over),
            None => self.config.clone(),
        }
    }

    /// True for kv with `membership = "gossip"`: no registry node in the run.
    pub fn gossip_membership(&self) -> bool {
        self.system == System::Kv
            && self
                .config
                .membership
                .as_ref()
                .is_some_and(|m| *m.get_ref() == Membership::Gossip)
    }

    /// Servers in the run.
    pub fn server_count(&self) -> usize {
        *self.nodes.get_ref()
    }

    /// True when client operations list their attempts in the history: the workload
    /// uses the overload client model, or a kv knob can answer 429 (`rate_limit`,
    /// `backpressure`) or fail fast (`circuit_breaker`).
    pub fn records_attempts(&self) -> bool {
        let k = &self.config;
        self.workload
            .as_ref()
            .is_some_and(Workload::uses_client_model)
            || k.rate_limit.is_some()
            || k.backpressure.is_some()
            || k.circuit_breaker.is_some()
    }

    /// Clients in the run.
    pub fn client_count(&self) -> usize {
        self.workload.as_ref().map_or(0, |w| *w.clients.get_ref())
    }

    /// The seed used when none is given on the command line.
    pub fn default_seed(&self) -> u64 {
        self.seed.unwrap_or(1)
    }
}
