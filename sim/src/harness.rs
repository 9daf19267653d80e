//! The harness: one seeded madsim runtime per run, built from a scenario.
//!
//! It creates servers `n1..nN` at `10.0.0.i` (and clients `c1..cM` at `10.0.1.j`; for kv
//! the registry, and the balancer `lb` when the scenario has `[lb]`), starts
//! each server through the same entry point as its real binary, applies the scenario's
//! faults at their simulated times, lets the run go to `duration`, and returns the
//! recorded history. Every run gets a fresh OS thread, because madsim seeds std's hash
//! state once per thread: two runs of one seed on one thread would differ.

use crate::cluster::{self, Cluster, Kind, SimNode, Status, Task};
use crate::disk::SimDisk;
use crate::fault;
use crate::history::{Entry, Recorder, What, WireEntry};
use crate::probe;
use crate::scenario::{Scenario, System};
use crate::systems;
use crate::workload::Share;
use nodes::auth::ClusterKey;
use nodes::runtime::{Clock, EventSink, NodeEnv, Slowdown};
use std::time::{Duration, Instant};

/// What one run produced.
#[derive(Clone, Debug)]
pub struct RunOutput {
    /// The recorded history.
    pub history: Vec<Entry>,
    /// Simulated time covered, ms.
    pub sim_ms: u64,
    /// Wall-clock time the run took, ms.
    pub wall_ms: u64,
    /// Messages the simulated network delivered (madsim's count), for benchmarks.
    pub net_messages: u64,
    /// The nodes' tapped peer messages, when asked for (see [`run_with_messages`]).
    pub messages: Vec<WireEntry>,
}

/// Why a run produced no history.
#[derive(Clone, Debug, PartialEq)]
pub enum RunError {
    /// The scenario asks for something not built yet (exit code 2).
    Unsupported(String),
    /// The simulation panicked: a bug in node or harness code (a failed run).
    Panicked(String),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Unsupported(why) => write!(f, "not supported: {why}"),
            RunError::Panicked(why) => write!(f, "the simulation panicked: {why}"),
        }
    }
}

pub use crate::workload::stream;

/// Simulates `scenario` with `seed` on a fresh thread and returns its history.
pub fn simulate(scenario: &Scenario, seed: u64) -> Result<RunOutput, RunError> {
    run_on_thread(scenario, seed, false)
}

/// As [`simulate`], also recording every peer message the nodes send and receive (for the
/// run's picture). The history, and so the trace hash, is the same as [`simulate`]'s.
pub fn simulate_with_messages(scenario: &Scenario, seed: u64) -> Result<RunOutput, RunError> {
    run_on_thread(scenario, seed, true)
}

fn run_on_thread(scenario: &Scenario, seed: u64, messages: bool) -> Result<RunOutput, RunError> {
    if let Some(why) = scenario.unsupported() {
        return Err(RunError::Unsupported(why));
    }
    let scenario = scenario.clone();
    let thread = std::thread::Builder::new()
        .name(format!("sim-{}-{seed}", scenario.name))
        .spawn(move || run_here(&scenario, seed, messages));
    match thread {
        Err(e) => Err(RunError::Panicked(format!("cannot start a thread: {e}"))),
        Ok(handle) => handle.join().map_err(|panic| {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            RunError::Panicked(message)
        }),
    }
}

fn run_here(scenario: &Scenario, seed: u64, messages: bool) -> RunOutput {
    let runtime = cluster::runtime(seed, &scenario.network);
    let wall = Instant::now();
    let (history, net_messages, messages) =
        runtime.block_on(drive(scenario.clone(), seed, messages));
    RunOutput {
        history,
        net_messages,
        messages,
        sim_ms: scenario.duration.0.as_millis() as u64,
        wall_ms: wall.elapsed().as_millis() as u64,
    }
}

async fn drive(scenario: Scenario, seed: u64, tap: bool) -> (Vec<Entry>, u64, Vec<WireEntry>) {
    if scenario.buggify {
        cluster::enable_buggify();
    }
    let recorder = if tap {
        Recorder::with_messages()
    } else {
        Recorder::new()
    };
    let mut cluster = Cluster::new();
    let key = cluster_key(seed);
    if scenario.system == System::Kv && !scenario.gossip_membership() {
        cluster.add(start_registry(&scenario, &recorder, &key));
    }
    for index in 1..=scenario.server_count() {
        cluster.add(start_server(&scenario, index, &recorder, &key));
    }
    if let Some(config) = systems::kv::lb_config(&scenario) {
        cluster.add(start_lb(config, &recorder, &key));
    }
    for client in start_clients(&scenario, seed, &recorder) {
        cluster.add(client);
    }
    let faults = fault_timeline(&scenario, seed);
    let mut rounds = probe::rounds(&scenario, &faults)
        .into_iter()
        .enumerate()
        .peekable();
    let mut probes = Vec::new();
    for fault in &faults {
        // A round starts after every fault at or before its start has been applied.
        while let Some((i, (start, within))) = rounds.next_if(|(_, (s, _))| *s < fault.at.0) {
            probes.extend(start_probes(&scenario, &cluster, &recorder, i, start, within).await);
        }
        tokio::time::sleep_until(recorder.start() + fault.at.0).await;
        let mut rng = fault_stream(seed, fault);
        // Resolving `leader` reads the history; applying a fault records nothing.
        let applied =
            recorder.with_entries(|history| fault::apply(&mut cluster, fault, history, &mut rng));
        recorder.record("harness", What::Fault { fault: applied });
    }
    for (i, (start, within)) in rounds {
        probes.extend(start_probes(&scenario, &cluster, &recorder, i, start, within).await);
    }
    tokio::time::sleep_until(recorder.start() + scenario.duration.0).await;
    // A round that started late may still be probing: it ends by its own deadline.
    for task in probes {
        let _ = task.await;
    }
    if scenario.system == System::Kv {
        let live: Vec<usize> = cluster
            .nodes()
            .iter()
            .filter(|n| n.kind == Kind::Server && n.status == Status::Up)
            .filter_map(|n| n.name[1..].parse().ok())
            .collect();
        // The supervisor has no address on the simulated network: read from a node that does.
        let reader = cluster::create_task_node(
            "final",
            std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 3, 1)),
        );
        let reads = systems::kv::final_reads(&scenario, &live);
        let (recorder, key) = (recorder.clone(), key);
        let addresses = systems::client_addresses(&scenario);
        let size = scenario
            .workload
            .as_ref()
            .map_or(0, crate::workload::kv::value_size);
        let reads = cluster::spawn_on(reader, async move {
            crate::workload::kv::final_reads(&addresses, &reads, size, &recorder, key).await
        });
        if let Some(reads) = reads {
            let _ = reads.await;
        }
    }
    let messages = cluster::messages_delivered();
    // Kill every node so its tasks are dropped now: tasks left pending when the runtime
    // is dropped keep each other (and the run's memory) alive.
    cluster.kill_all();
    (recorder.take(), messages, recorder.messages())
}

/// Starts one round of liveness probes at `start` (chat and kv; the election has none)
/// through the servers that are up then, from a node of its own (`10.0.3.(2 + index)`).
async fn start_probes(
    scenario: &Scenario,
    cluster: &Cluster,
    recorder: &Recorder,
    index: usize,
    start: Duration,
    within: Duration,
) -> Option<Task<()>> {
    if scenario.system == System::Election {
        return None;
    }
    tokio::time::sleep_until(recorder.start() + start).await;
    let servers = cluster
        .live_servers()
        .iter()
        .filter_map(|name| name[1..].parse().ok())
        .collect();
    let round = probe::Round {
        start,
        servers,
        addresses: systems::client_addresses(scenario),
        deadline: recorder.start() + start + within,
    };
    let node = cluster::create_task_node(
        &format!("probe-{}", start.as_millis()),
        std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 3, 2 + (index % 250) as u8)),
    );
    let recorder = recorder.clone();
    match scenario.system {
        System::Chat => cluster::spawn_on(node, probe::chat(round, recorder)),
        _ => cluster::spawn_on(node, probe::kv(round, recorder)),
    }
}

pub use crate::nemesis::{fault_stream, fault_timeline};

/// The run's cluster key, which every simulated node is given (real nodes read a key file).
pub fn cluster_key(seed: u64) -> ClusterKey {
    ClusterKey::derived(&format!("simulation, seed {seed}"))
}

/// The KV load balancer of `[lb]`, node `lb` at 10.0.2.2 (its real entry point, so a
/// restart re-runs the real start-up: fresh statistics, every backend taken for up until
/// checked). It is handed the environment every node gets but uses only its clock and
/// events: a client of the KV nodes, it holds no cluster key.
fn start_lb(config: nodes::lb::LbConfig, recorder: &Recorder, key: &ClusterKey) -> SimNode {
    let ip = systems::kv::lb_addr().ip();
    start_diskless("lb", ip, Kind::Balancer, recorder, key, move |env| {
        nodes::lb::run(config.clone(), env.clock, env.events, env.wire)
    })
}

/// The KV registry, node `registry` at 10.0.2.1.
fn start_registry(scenario: &Scenario, recorder: &Recorder, key: &ClusterKey) -> SimNode {
    let config = systems::kv::registry_config(scenario);
    let ip = systems::kv::registry_addr().ip();
    start_diskless("registry", ip, Kind::Registry, recorder, key, move |env| {
        nodes::kv::registry::run(config.clone(), env)
    })
}

/// A node with no durable state (the registry, the balancer): each start (a restart too)
/// runs `entry` on a fresh environment whose events and start-up error go to the history
/// under `name`.
fn start_diskless<F, Fut>(
    name: &'static str,
    ip: std::net::IpAddr,
    kind: Kind,
    recorder: &Recorder,
    key: &ClusterKey,
    entry: F,
) -> SimNode
where
    F: Fn(NodeEnv) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = std::io::Result<()>> + Send + 'static,
{
    let clock = Clock::new();
    let init = {
        let (clock, recorder, key) = (clock.clone(), recorder.clone(), key.clone());
        move || {
            let sink = {
                let recorder = recorder.clone();
                EventSink::new(move |event| recorder.record(name, What::Event { data: event }))
            };
            let env = NodeEnv {
                clock: clock.clone(),
                storage: Box::new(nodes::runtime::storage::Nowhere),
                events: sink,
                slowdown: Slowdown::new(),
                cluster_key: key.clone(),
                wire: recorder.wire_tap(name),
                routes: nodes::runtime::Routes::direct(),
            };
            let (node, recorder) = (entry(env), recorder.clone());
            async move {
                if let Err(e) = node.await {
                    recorder.record(
                        name,
                        What::Error {
                            message: e.to_string(),
                        },
                    );
                }
            }
        }
    };
    SimNode {
        name: name.into(),
        id: cluster::create_node(name, ip, init),
        kind,
        status: Status::Up,
        clock,
        disk: SimDisk::default(),
        slowdown: Slowdown::new(),
    }
}

fn start_server(
    scenario: &Scenario,
    index: usize,
    recorder: &Recorder,
    key: &ClusterKey,
) -> SimNode {
    let name = format!("n{index}");
    let clock = Clock::new();
    let disk = SimDisk::default();
    let slowdown = Slowdown::new();
    let sink = {
        let recorder = recorder.clone();
        let name = name.clone();
        EventSink::new(move |event| recorder.record(&name, What::Event { data: event }))
    };
    let init = {
        let (clock, disk, slowdown, recorder, name) = (
            clock.clone(),
            disk.clone(),
            slowdown.clone(),
            recorder.clone(),
            name.clone(),
        );
        let scenario = scenario.clone();
        let key = key.clone();
        move || {
            let env = NodeEnv {
                clock: clock.clone(),
                storage: Box::new(disk.clone()),
                events: sink.clone(),
                slowdown: slowdown.clone(),
                cluster_key: key.clone(),
                wire: recorder.wire_tap(&name),
                routes: nodes::runtime::Routes::direct(),
            };
            let (recorder, name) = (recorder.clone(), name.clone());
            let node = server_entry(&scenario, index, env);
            async move {
                if let Err(e) = node.await {
                    recorder.record(
                        &name,
                        What::Error {
                            message: e.to_string(),
                        },
                    );
                }
            }
        }
    };
    let id = cluster::create_node(&name, systems::server_ip(index), init);
    SimNode {
        name,
        id,
        kind: Kind::Server,
        status: Status::Up,
        clock,
        disk,
        slowdown,
    }
}

/// The real entry point of server `n{index}` for the scenario's system.
fn server_entry(scenario: &Scenario, index: usize, env: NodeEnv) -> BoxFuture<std::io::Result<()>> {
    match scenario.system {
        System::Election => Box::pin(nodes::election::run(
            systems::election::node_config(scenario, index),
            env,
        )),
        System::Chat => Box::pin(nodes::chat::run(
            systems::chat::node_config(scenario, index),
            env,
        )),
        System::Kv => Box::pin(nodes::kv::run(
            systems::kv::node_config(scenario, index),
            env,
        )),
    }
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// Creates clients `c1..cM` running the scenario's workload, if it has one.
fn start_clients(scenario: &Scenario, seed: u64, recorder: &Recorder) -> Vec<SimNode> {
    let Some(workload) = scenario.workload.clone() else {
        return Vec::new();
    };
    let stop = workload
        .stop
        .as_ref()
        .map(|s| recorder.start() + s.get_ref().0);
    (1..=scenario.client_count())
        .map(|j| {
            let name = format!("c{j}");
            let rng = stream(seed, &format!("workload/{name}"));
            let id = cluster::create_task_node(&name, systems::client_ip(j));
            let (workload, recorder) = (workload.clone(), recorder.clone());
            let share = Share::of(&workload, scenario.clients.get(name.as_str()), j);
            let addresses = systems::client_addresses(scenario);
            match scenario.system {
                System::Chat => {
                    cluster::spawn_on(
                        id,
                        crate::workload::chat::client(j, share, addresses, recorder, rng, stop),
                    );
                }
                System::Kv => {
                    let keys = systems::kv::keys(scenario);
                    let record_attempts = scenario.records_attempts();
                    cluster::spawn_on(
                        id,
                        crate::workload::kv::client(
                            j,
                            share,
                            workload,
                            addresses,
                            keys,
                            recorder,
                            rng,
                            stop,
                            record_attempts,
                        ),
                    );
                }
                System::Election => {}
            }
            SimNode {
                name,
                id,
                kind: Kind::Client,
                status: Status::Up,
                clock: Clock::new(),
                disk: SimDisk::default(),
                slowdown: Slowdown::new(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::What;

    const FAULTS: &str = r#"
name = "draws"
system = "election"
nodes = 5
duration = "10s"

[[fault]]
at = "1s"
action = "loss"
rate = 0.2
from = "n1"
to = "n2"

[[fault]]
at = "2s"
action = "skew"
node = "random"
drift = 0.01

[[fault]]
at = "3s"
action = "skew"
node = "random"
drift = 0.01

[[fault]]
at = "4s"
action = "skew"
node = "random"
drift = 0.01

[[fault]]
at = "5s"
action = "skew"
node = "random"
drift = 0.01

[[check]]
kind = "election_safety"
"#;

    /// The node each `random` skew went to, in order.
    fn random_targets(scenario: &Scenario, seed: u64) -> Vec<String> {
        simulate(scenario, seed)
            .expect("runs")
            .history
            .iter()
            .filter_map(|e| match &e.what {
                What::Fault { fault } if fault.action == crate::scenario::Action::Skew => {
                    fault.node.clone()
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn removing_a_fault_leaves_the_random_choices_of_the_others_alone() {
        let full = crate::scenario::parse("draws.toml", FAULTS).expect("parses");
        for seed in 1..4 {
            // What the shrinker does: take the timeline, drop the lossy link (which draws
            // its loss seed), keep the rest as explicit faults.
            let mut fewer = full.clone();
            fewer.faults = fault_timeline(&full, seed)
                .into_iter()
                .skip(1)
                .map(|f| toml::Spanned::new(0..0, f))
                .collect();
            let before = random_targets(&full, seed);
            assert_eq!(before.len(), 4);
            assert_eq!(before, random_targets(&fewer, seed), "seed {seed}");
        }
    }
}
