//! The scenario's types, as serde reads them from TOML: the run, its knobs, network,
//! workload, faults, nemesis and checks, and what they mean when a key is left out.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
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

/// A non-negative duration written as `"250ms"`, `"3s"`, `"2m"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub Duration);

/// A signed duration in milliseconds, written `"+5s"`, `"-10s"`, `"250ms"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Offset(pub i64);

/// A rate written `"20/s"` or `"600/m"`, in operations per second.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate(pub f64);

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

    pub(super) fn systems(self) -> &'static [System] {
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
    /// `membership_converged`: the most times a server may declare down a live member it
    /// could reach (counted either way; a violation above it).
    #[serde(default)]
    pub max_false_downs: Option<Spanned<u64>>,
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
