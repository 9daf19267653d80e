//! The simulated cluster: node handles, their status, clocks, disks and network links.
//!
//! This is the only module that touches madsim's node and network handles. Every fault
//! reaches the simulator through one of the verbs here (crash, restart, pause, resume,
//! shutdown, partition, isolate, clog / unclog a link, heal, set loss or latency, skew a
//! clock, damage a disk, slow a server's work). Which links a partition, an isolation or a
//! heal cuts or restores is decided by simcore's one network model
//! ([`simcore::network::Network`]); this module hands madsim the links it changed.

use crate::disk::SimDisk;
use madsim::net::NetSim;
use madsim::runtime::{Handle, Runtime};
use madsim::task::NodeId;
use nodes::runtime::{Clock, Slowdown};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use simcore::network::Network;
use simcore::scenario;
use std::future::Future;
use std::net::IpAddr;
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// What a simulated node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `n1..nN`
    Server,
    /// `c1..cM`
    Client,
    /// The KV registry.
    Registry,
    /// The KV load balancer `lb`.
    Balancer,
}

/// A node's lifecycle state, as the harness drove it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Running.
    Up,
    /// Killed; its disk lost the unsynced tail.
    Crashed,
    /// Frozen; time goes on, traffic queues.
    Paused,
    /// Shut down gracefully (ctrl-c) and exited.
    Stopped,
}

/// One simulated node.
pub struct SimNode {
    /// `n1`, `c2`, `registry`, `lb`.
    pub name: String,
    /// madsim's id.
    pub id: NodeId,
    /// Server, client, registry or balancer.
    pub kind: Kind,
    /// As driven by faults.
    pub status: Status,
    /// The node's clock (skew faults change it).
    pub clock: Clock,
    /// The node's disk (survives restarts).
    pub disk: SimDisk,
    /// How much slower its per-request work runs (`slow` faults change it).
    pub slowdown: Slowdown,
}

/// Every node of a run, and the network between them.
pub struct Cluster {
    handle: Handle,
    nodes: Vec<SimNode>,
    /// Cut links and per-link loss by madsim id (the flapper of lossy links reads it).
    network: Arc<Mutex<Network<NodeId>>>,
    flapper_started: bool,
}

/// How often a lossy link re-draws whether it is up (per-link `loss`).
const LOSS_SLOT: Duration = Duration::from_millis(5);

impl Cluster {
    /// An empty cluster on the current runtime.
    pub fn new() -> Self {
        Cluster {
            handle: Handle::current(),
            nodes: Vec::new(),
            network: Arc::default(),
            flapper_started: false,
        }
    }

    /// Adds a node built elsewhere (by the harness).
    pub fn add(&mut self, node: SimNode) {
        self.nodes.push(node);
    }

    /// All nodes in creation order.
    pub fn nodes(&self) -> &[SimNode] {
        &self.nodes
    }

    /// A node by name.
    pub fn get(&self, name: &str) -> Option<&SimNode> {
        self.nodes.iter().find(|n| n.name == name)
    }

    fn get_mut(&mut self, name: &str) -> Option<&mut SimNode> {
        self.nodes.iter_mut().find(|n| n.name == name)
    }

    fn network(&self) -> MutexGuard<'_, Network<NodeId>> {
        self.network.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Servers that are up, in name order of creation.
    pub fn live_servers(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.kind == Kind::Server && n.status == Status::Up)
            .map(|n| n.name.clone())
            .collect()
    }

    /// Kills a node after its disk loses the unsynced tail. Returns unsynced bytes lost.
    pub fn crash(&mut self, name: &str) -> Result<usize, String> {
        let handle = self.handle.clone();
        let node = self.get_mut(name).ok_or("no such node")?;
        if node.status == Status::Crashed {
            return Err(format!("{name} is already crashed"));
        }
        let lost = node.disk.crash();
        handle.kill(node.id);
        node.status = Status::Crashed;
        Ok(lost)
    }

    /// Starts a node again through its init (its real start-up path). A running node is
    /// crashed first.
    pub fn restart(&mut self, name: &str) -> Result<(), String> {
        let handle = self.handle.clone();
        let node = self.get_mut(name).ok_or("no such node")?;
        if node.status != Status::Crashed {
            node.disk.crash();
        }
        handle.kill(node.id);
        handle.restart(node.id);
        node.status = Status::Up;
        Ok(())
    }

    /// Freezes a running node.
    pub fn pause(&mut self, name: &str) -> Result<(), String> {
        let handle = self.handle.clone();
        let node = self.get_mut(name).ok_or("no such node")?;
        if node.status != Status::Up {
            return Err(format!("{name} is not running"));
        }
        handle.pause(node.id);
        node.status = Status::Paused;
        Ok(())
    }

    /// Unfreezes a paused node.
    pub fn resume(&mut self, name: &str) -> Result<(), String> {
        let handle = self.handle.clone();
        let node = self.get_mut(name).ok_or("no such node")?;
        if node.status != Status::Paused {
            return Err(format!("{name} is not paused"));
        }
        handle.resume(node.id);
        node.status = Status::Up;
        Ok(())
    }

    /// Delivers ctrl-c: the node shuts down gracefully.
    pub fn shutdown(&mut self, name: &str) -> Result<(), String> {
        let handle = self.handle.clone();
        let node = self.get_mut(name).ok_or("no such node")?;
        if node.status != Status::Up {
            return Err(format!("{name} is not running"));
        }
        handle.send_ctrl_c(node.id);
        node.status = Status::Stopped;
        Ok(())
    }

    fn id(&self, name: &str) -> Result<NodeId, String> {
        self.get(name)
            .map(|n| n.id)
            .ok_or_else(|| format!("no node {name}"))
    }

    fn ids(&self, names: &[String]) -> Result<Vec<NodeId>, String> {
        names.iter().map(|name| self.id(name)).collect()
    }

    /// Cuts both directions between every two nodes of different groups.
    pub fn partition(&mut self, groups: &[Vec<String>]) -> Result<(), String> {
        let groups: Vec<Vec<NodeId>> = groups
            .iter()
            .map(|group| self.ids(group))
            .collect::<Result<_, _>>()?;
        let cut = self.network().partition(&groups);
        clog(&cut);
        Ok(())
    }

    /// Cuts `name` from every other node (clients, registry and balancer too), both ways.
    pub fn isolate(&mut self, name: &str) -> Result<(), String> {
        let node = self.id(name)?;
        let all: Vec<NodeId> = self.nodes.iter().map(|n| n.id).collect();
        let cut = self.network().isolate(&node, &all);
        clog(&cut);
        Ok(())
    }

    /// Cuts the one-way link `from -> to`.
    pub fn clog(&mut self, from: &str, to: &str) -> Result<(), String> {
        let (a, b) = (self.id(from)?, self.id(to)?);
        self.network().clog(a, b);
        clog(&[(a, b)]);
        Ok(())
    }

    /// Restores the one-way link `from -> to` (unless it is lossy and drawn down).
    pub fn unclog(&mut self, from: &str, to: &str) -> Result<(), String> {
        let (a, b) = (self.id(from)?, self.id(to)?);
        self.network().unclog(a, b);
        NetSim::current().unclog_link(a, b);
        Ok(())
    }

    /// Removes every cut link.
    pub fn heal(&mut self) {
        let cut = self.network().heal();
        let net = NetSim::current();
        for (a, b) in cut {
            net.unclog_link(a, b);
        }
    }

    /// Sets the loss rate of every link.
    pub fn set_loss(&mut self, rate: f64) {
        self.network().set_loss(None, rate);
        NetSim::current().update_config(|c| c.packet_loss_rate = rate);
    }

    /// Sets the loss rate of one link; emulated by drawing the link down in short slots
    /// (on TCP, loss shows as retransmission delay either way).
    pub fn set_link_loss(
        &mut self,
        from: &str,
        to: &str,
        rate: f64,
        seed: u64,
    ) -> Result<(), String> {
        let (a, b) = (self.id(from)?, self.id(to)?);
        {
            let mut network = self.network();
            network.set_loss(Some((a, b)), rate);
            if rate <= 0.0 && !network.is_cut(&a, &b) {
                NetSim::current().unclog_link(a, b);
            }
        }
        if !self.flapper_started {
            self.flapper_started = true;
            let network = self.network.clone();
            tokio::spawn(flap_lossy_links(network, seed));
        }
        Ok(())
    }

    /// Sets the per-message latency range of every link.
    pub fn set_latency(&mut self, low: Duration, high: Duration) {
        self.network().set_latency(None, [low, high]);
        NetSim::current().update_config(|c| c.send_latency = latency_range(low, high));
    }

    /// Sets a node's clock error.
    pub fn skew(
        &mut self,
        name: &str,
        offset_ms: Option<i64>,
        drift: Option<f64>,
    ) -> Result<(), String> {
        let node = self.get(name).ok_or("no such node")?;
        node.clock.set_skew(offset_ms, drift);
        Ok(())
    }

    /// Makes a node's per-request work take `factor` times as long (1: normal again).
    pub fn slow(&mut self, name: &str, factor: f64) -> Result<(), String> {
        let node = self.get(name).ok_or("no such node")?;
        node.slowdown.set(factor);
        Ok(())
    }

    /// The disk of a node.
    pub fn disk(&self, name: &str) -> Result<SimDisk, String> {
        Ok(self.get(name).ok_or("no such node")?.disk.clone())
    }

    /// Kills every node (end of run).
    pub fn kill_all(&mut self) {
        for node in &mut self.nodes {
            self.handle.kill(node.id);
            node.status = Status::Crashed;
        }
    }

    /// Names of every node.
    pub fn names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }
}

impl Default for Cluster {
    fn default() -> Self {
        Self::new()
    }
}

/// Clogs each link in madsim.
fn clog(links: &[(NodeId, NodeId)]) {
    let net = NetSim::current();
    for &(a, b) in links {
        net.clog_link(a, b);
    }
}

async fn flap_lossy_links(network: Arc<Mutex<Network<NodeId>>>, seed: u64) {
    use rand::SeedableRng;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    loop {
        {
            let network = network.lock().unwrap_or_else(|e| e.into_inner());
            let net = NetSim::current();
            for (&(a, b), rate) in network.lossy_links() {
                if network.is_cut(&a, &b) {
                    continue;
                }
                if rng.gen_bool(rate.clamp(0.0, 1.0)) {
                    net.clog_link(a, b);
                } else {
                    net.unclog_link(a, b);
                }
            }
        }
        tokio::time::sleep(LOSS_SLOT).await;
    }
}

/// A task on a simulated node: awaiting it waits for the task's end.
pub type Task<T> = madsim::task::JoinHandle<T>;

/// A runtime seeded with `seed` whose network starts as the scenario's `[network]` says.
pub fn runtime(seed: u64, network: &scenario::Network) -> Runtime {
    let mut config = madsim::Config::default();
    if let Some(latency) = &network.latency {
        let [low, high] = *latency.get_ref();
        config.net.send_latency = latency_range(low.0, high.0);
    }
    if let Some(loss) = &network.loss {
        config.net.packet_loss_rate = *loss.get_ref();
    }
    Runtime::with_seed_and_config(seed, config)
}

/// madsim's latency range for `[low, high]`: never empty.
fn latency_range(low: Duration, high: Duration) -> Range<Duration> {
    let high = if high > low {
        high
    } else {
        low + Duration::from_nanos(1)
    };
    low..high
}

/// Turns on madsim's buggify points for the run on this runtime.
pub fn enable_buggify() {
    madsim::buggify::enable();
}

/// Messages the simulated network has delivered so far (madsim's count).
pub fn messages_delivered() -> u64 {
    NetSim::current().stat().msg_count
}

/// Creates a node at `ip` that runs `init` now and again at every restart (its real
/// start-up path); returns its id.
pub fn create_node<F, Fut>(name: &str, ip: IpAddr, init: F) -> NodeId
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future + 'static,
{
    Handle::current()
        .create_node()
        .name(name)
        .ip(ip)
        .init(init)
        .build()
        .id()
}

/// Kills `nodes` now, so their tasks are dropped with the run: tasks still pending when
/// the runtime is dropped keep each other, and the run's memory, alive.
pub fn kill_nodes(nodes: &[NodeId]) {
    let handle = Handle::current();
    for &id in nodes {
        handle.kill(id);
    }
}

/// Creates a node at `ip` with no start-up task (a client, a probe round, the final
/// reader: never restarted); tasks go on it with [`spawn_on`].
pub fn create_task_node(name: &str, ip: IpAddr) -> NodeId {
    Handle::current()
        .create_node()
        .name(name)
        .ip(ip)
        .build()
        .id()
}

/// Spawns `task` on node `id` (`None` if there is no such node).
pub fn spawn_on<Fut>(id: NodeId, task: Fut) -> Option<Task<Fut::Output>>
where
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    Some(Handle::current().get_node(id)?.spawn(task))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node's task that never ends, holding `held` (as a raw baseline's connection
    /// loops do), on a runtime of its own; `kill` says whether the run kills its nodes.
    fn run_leaving_a_task(held: Arc<()>, kill: bool) {
        let runtime = runtime(1, &Default::default());
        runtime.block_on(async move {
            let node = create_node("n1", IpAddr::from([10, 0, 0, 1]), move || {
                let held = held.clone();
                async move {
                    let _held = held;
                    std::future::pending::<()>().await;
                }
            });
            tokio::time::sleep(Duration::from_millis(10)).await;
            if kill {
                kill_nodes(&[node]);
            }
        });
    }

    /// Without the kill the pending task outlives its runtime (what leaked ~145 kB a seed
    /// in the raw baselines of `sim bench`); with it, it is gone with the run.
    #[test]
    fn killed_nodes_do_not_outlive_their_run() {
        let held = Arc::new(());
        let left = held.clone();
        std::thread::spawn(move || run_leaving_a_task(left, false))
            .join()
            .expect("runs");
        assert_eq!(
            Arc::strong_count(&held),
            2,
            "the task leaks without the kill"
        );
        let held = Arc::new(());
        let left = held.clone();
        std::thread::spawn(move || run_leaving_a_task(left, true))
            .join()
            .expect("runs");
        assert_eq!(Arc::strong_count(&held), 1, "killed with its node");
    }
}
