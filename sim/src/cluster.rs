//! The simulated cluster: node handles, their status, clocks, disks and network links.
//!
//! This is the only module that touches madsim's node and network handles. Every fault
//! reaches the simulator through one of the verbs here (crash, restart, pause, resume,
//! shutdown, cut / restore a link, set loss or latency, skew a clock, damage a disk, slow a
//! server's work).

use crate::disk::SimDisk;
use madsim::net::NetSim;
use madsim::runtime::Handle;
use madsim::task::NodeId;
use nodes::runtime::{Clock, Slowdown};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
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

/// Links cut by partitions, isolation and clogs, and links with their own loss rate.
#[derive(Default)]
struct Links {
    cut: BTreeSet<(NodeId, NodeId)>,
    lossy: BTreeMap<(NodeId, NodeId), f64>,
}

/// Every node of a run, and the network between them.
pub struct Cluster {
    handle: Handle,
    nodes: Vec<SimNode>,
    links: Arc<Mutex<Links>>,
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
            links: Arc::default(),
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

    fn links(&self) -> MutexGuard<'_, Links> {
        self.links.lock().unwrap_or_else(|e| e.into_inner())
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

    /// Cuts the one-way link `from -> to`.
    pub fn cut(&mut self, from: &str, to: &str) -> Result<(), String> {
        let (a, b) = (self.id(from)?, self.id(to)?);
        self.links().cut.insert((a, b));
        NetSim::current().clog_link(a, b);
        Ok(())
    }

    /// Restores the one-way link `from -> to` (unless it is lossy and drawn down).
    pub fn restore(&mut self, from: &str, to: &str) -> Result<(), String> {
        let (a, b) = (self.id(from)?, self.id(to)?);
        self.links().cut.remove(&(a, b));
        NetSim::current().unclog_link(a, b);
        Ok(())
    }

    /// Removes every cut link.
    pub fn heal(&mut self) {
        let cut = std::mem::take(&mut self.links().cut);
        let net = NetSim::current();
        for (a, b) in cut {
            net.unclog_link(a, b);
        }
    }

    /// Sets the loss rate of every link.
    pub fn set_loss(&mut self, rate: f64) {
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
            let mut links = self.links();
            if rate > 0.0 {
                links.lossy.insert((a, b), rate);
            } else {
                links.lossy.remove(&(a, b));
                if !links.cut.contains(&(a, b)) {
                    NetSim::current().unclog_link(a, b);
                }
            }
        }
        if !self.flapper_started {
            self.flapper_started = true;
            let links = self.links.clone();
            tokio::spawn(flap_lossy_links(links, seed));
        }
        Ok(())
    }

    /// Sets the per-message latency range of every link.
    pub fn set_latency(&mut self, low: Duration, high: Duration) {
        let high = if high > low {
            high
        } else {
            low + Duration::from_nanos(1)
        };
        NetSim::current().update_config(|c| c.send_latency = low..high);
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

async fn flap_lossy_links(links: Arc<Mutex<Links>>, seed: u64) {
    use rand::SeedableRng;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    loop {
        {
            let links = links.lock().unwrap_or_else(|e| e.into_inner());
            let net = NetSim::current();
            for (&(a, b), &rate) in &links.lossy {
                if links.cut.contains(&(a, b)) {
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
