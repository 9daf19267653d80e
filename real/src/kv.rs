//! A KV scenario's cluster on loopback: the registry (registry membership), servers
//! `n1..nN` and `[lb]`'s balancer as real processes, configured by the same
//! [`simcore::kv_plan`] values the simulator starts in process, turned into their
//! binaries' flags. Every link between them, and from each client, runs through the
//! byte-stream fault proxy ([`ByteProxy`]): a server reaches its peers and the registry
//! by `--route`, the balancer its backends and each client the servers by the proxy's
//! address of their link. The probes and the final reads, which the simulator runs from
//! nodes outside the cluster, go straight to the servers.
//!
//! With gossip membership each server link also relays SWIM's UDP, on the same port
//! ([`crate::datagram_proxy`]), so a network fault cuts gossip as it cuts HTTP.

use crate::byte_proxy::ByteProxy;
use crate::procs::Procs;
use crate::runner::Common;
use nodes::kv::{KvConfig, Versioning};
use nodes::lb::LbConfig;
use simcore::addresses::Addresses;
use simcore::scenario::Scenario;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Every endpoint of the run by proxy index: servers `1..=n`, then the registry, the
/// balancer and the clients (the proxy's links are pairs of these).
#[derive(Clone, Debug)]
pub struct Endpoints {
    /// Servers.
    pub servers: usize,
    /// Clients.
    pub clients: usize,
}

impl Endpoints {
    /// The registry's index.
    pub fn registry(&self) -> usize {
        self.servers + 1
    }
    /// The balancer's index.
    pub fn lb(&self) -> usize {
        self.servers + 2
    }
    /// Client `c{j}`'s index.
    pub fn client(&self, j: usize) -> usize {
        self.servers + 2 + j
    }
    /// How many there are (the last index).
    pub fn count(&self) -> usize {
        self.servers + 2 + self.clients
    }
}

/// What the runner needs of a started KV cluster.
pub struct KvCluster {
    /// Every process, not started yet: `registry`, `n1..nN`, `lb`.
    pub procs: Procs,
    /// Their history files.
    pub histories: Vec<PathBuf>,
    /// Endpoint index by process name.
    pub names: BTreeMap<String, usize>,
    /// Each client's addresses of the servers and the balancer, through the proxy.
    pub clients: Vec<Addresses>,
    /// The servers' own addresses (the probes' and the final reads').
    pub direct: Addresses,
    /// Every address a process listens on (the registry's, the servers', the balancer's).
    pub listening: Vec<SocketAddr>,
}

/// Serves `link` carried to `target` on a proxy port of its own; returns its address.
async fn link(
    proxy: &ByteProxy,
    link: (usize, usize),
    target: SocketAddr,
    seed: u64,
) -> Result<SocketAddr, String> {
    let stream = simcore::workload::stream(seed, &format!("proxy/{}-{}", link.0, link.1));
    proxy.serve(link, target, rand::Rng::gen(&mut { stream }))
}

/// The environment flags of process `name`: the cluster key (but the balancer, a client
/// of the servers, holds none) and its history.
fn env_flags(common: &Common, name: &str) -> Vec<String> {
    let key = (name != "lb").then(|| format!("--cluster-key-file={}", common.key.display()));
    key.into_iter()
        .chain([
            format!(
                "--history={}",
                common.dir.join(format!("{name}.history.jsonl")).display()
            ),
            format!("--history-start={}", common.start_ms),
        ])
        .collect()
}

/// Lays out the cluster: `ports` holds `n + 2` free loopback addresses (the servers',
/// the registry's, the balancer's).
pub async fn build(
    scenario: &Scenario,
    common: &Common<'_>,
    proxy: &ByteProxy,
    ports: &[SocketAddr],
    control: impl Fn(usize) -> Vec<String>,
) -> Result<KvCluster, String> {
    let n = scenario.server_count();
    let ends = Endpoints {
        servers: n,
        clients: scenario.client_count(),
    };
    let (servers, registry, lb_listen) = (&ports[..n], ports[n], ports[n + 1]);
    let server = |i: usize| servers[i - 1];
    let seed = common.seed;
    let mut procs = Procs::default();
    let mut histories = Vec::new();
    let mut names = BTreeMap::new();
    let gossip = scenario.gossip_membership();

    if !gossip {
        let mut args = vec![
            format!("--port={}", registry.port()),
            "--host=127.0.0.1".to_string(),
            format!(
                "--ttl={}",
                nodes::duration::format(simcore::kv_plan::registry_ttl(scenario))
            ),
        ];
        args.extend(env_flags(common, "registry"));
        add(&mut procs, common, "registry", "registry", args);
        histories.push(common.dir.join("registry.history.jsonl"));
        names.insert("registry".to_string(), ends.registry());
    }
    for i in 1..=n {
        let config = simcore::kv_plan::node_config(scenario, i, server, registry);
        let mut args = kv_flags(&config);
        let mut routes = Vec::new();
        for j in (1..=n).filter(|&j| j != i) {
            let via = link(proxy, (i, j), server(j), seed).await?;
            if gossip {
                let stream = simcore::workload::stream(seed, &format!("proxy-udp/{i}-{j}"));
                let draws = rand::Rng::gen(&mut { stream });
                proxy
                    .relay_datagrams((i, j), via, (server(i), server(j)), draws)
                    .await?;
            }
            routes.push(format!("{}={via}", server(j)));
        }
        if !gossip {
            let via = link(proxy, (i, ends.registry()), registry, seed).await?;
            routes.push(format!("{registry}={via}"));
        }
        args.push(format!("--route={}", routes.join(",")));
        let name = format!("n{i}");
        args.extend(env_flags(common, &name));
        args.extend(control(i));
        add(&mut procs, common, &name, "kv-node", args);
        histories.push(common.dir.join(format!("{name}.history.jsonl")));
        names.insert(name, i);
    }
    let mut lb = None;
    let backends = simcore::kv_plan::lb_backends(scenario);
    let mut lb_routes = BTreeMap::new();
    for &j in &backends {
        let via = link(proxy, (ends.lb(), j), server(j), seed).await?;
        lb_routes.insert(j, via);
    }
    let lb_config = simcore::kv_plan::lb_config(scenario, lb_listen, |j| {
        lb_routes.get(&j).copied().unwrap_or(server(j))
    });
    if let Some(config) = lb_config {
        let mut args = lb_flags(&config);
        args.extend(env_flags(common, "lb"));
        add(&mut procs, common, "lb", "load-balancer", args);
        histories.push(common.dir.join("lb.history.jsonl"));
        names.insert("lb".to_string(), ends.lb());
        lb = Some(lb_listen);
    }
    let mut clients = Vec::new();
    for c in 1..=ends.clients {
        let mut via = Vec::new();
        for i in 1..=n {
            via.push(link(proxy, (ends.client(c), i), server(i), seed).await?);
        }
        let lb_via = match lb {
            Some(addr) => Some(link(proxy, (ends.client(c), ends.lb()), addr, seed).await?),
            None => None,
        };
        clients.push(Addresses::new(via, lb_via));
    }
    let mut listening = servers.to_vec();
    listening.extend((!gossip).then_some(registry));
    listening.extend(lb);
    Ok(KvCluster {
        listening,
        procs,
        histories,
        names,
        clients,
        direct: Addresses::new(servers.to_vec(), lb),
    })
}

fn add(procs: &mut Procs, common: &Common, name: &str, binary: &str, args: Vec<String>) {
    procs.add(
        name,
        common.bin_dir.join(binary),
        args,
        common.dir.join(format!("{name}.out")),
    );
}

/// `kv-node`'s flags for `config`, the inverse of its flag parsing (peer timeout: its
/// fixed 1 s, as the simulator's).
pub fn kv_flags(config: &KvConfig) -> Vec<String> {
    let d = |d| nodes::duration::format(d);
    let mut flags = vec![
        format!("--port={}", config.listen.port()),
        format!("--host={}", config.listen.ip()),
        format!("--id={}", config.id),
        format!("--replication-factor={}", config.replication_factor),
        format!("--virtual-nodes={}", config.virtual_nodes),
        format!("--write-quorum={}", config.write_quorum),
        format!(
            "--versioning={}",
            match config.versioning {
                Versioning::Lamport => "lamport",
                Versioning::NodeCounter => "node_counter",
                Versioning::WallClock => "wall_clock",
            }
        ),
        format!("--gossip-interval={}", d(config.gossip_interval)),
        format!("--registry-heartbeat={}", d(config.registry_heartbeat)),
    ];
    if let Some(registry) = config.registry {
        flags.push(format!("--registry={registry}"));
    }
    if let Some(gossip) = &config.gossip {
        flags.push("--membership=gossip".into());
        flags.push(format!("--probe-period={}", d(gossip.probe_period)));
        if !gossip.join.is_empty() {
            let join: Vec<String> = gossip.join.iter().map(ToString::to_string).collect();
            flags.push(format!("--join={}", join.join(",")));
        }
    }
    let overload = &config.overload;
    if let Some(rate) = overload.rate_limit {
        flags.push(format!("--rate-limit={rate}"));
    }
    if let Some(most) = overload.backpressure {
        flags.push(format!("--backpressure={most}"));
    }
    if let Some(workers) = overload.workers {
        flags.push(format!("--workers={workers}"));
    }
    if !overload.load_factor.is_zero() {
        flags.push(format!(
            "--load-factor={}",
            overload.load_factor.as_secs_f64() * 1e3
        ));
    }
    if let Some(breaker) = &overload.circuit_breaker {
        flags.push("--circuit-breaker".into());
        flags.push(format!("--breaker-failures={}", breaker.failures));
        flags.push(format!("--breaker-cooldown={}", d(breaker.cooldown)));
    }
    flags
}

/// `load-balancer`'s flags for `config` (its backends are named by address there).
pub fn lb_flags(config: &LbConfig) -> Vec<String> {
    let d = |d| nodes::duration::format(d);
    let backends: Vec<String> = config.backends.iter().map(|b| b.addr.to_string()).collect();
    vec![
        format!("--port={}", config.listen.port()),
        format!("--host={}", config.listen.ip()),
        format!("--nodes={}", backends.join(",")),
        format!("--strategy={}", config.strategy),
        format!("--health-interval={}", d(config.health_interval)),
        format!("--health-timeout={}", d(config.health_timeout)),
        format!("--backend-timeout={}", d(config.backend_timeout)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The flags name every knob the simulator's configuration sets, in kv-node's words.
    #[test]
    fn a_servers_flags_carry_its_configuration() {
        let scenario = simcore::scenario::parse(
            "t.toml",
            r#"
name = "t"
system = "kv"
nodes = 3
duration = "10s"
[config]
write_quorum = 2
versioning = "wall_clock"
circuit_breaker = true
load_factor = 25.0
[[check]]
kind = "converged"
"#,
        )
        .expect("parses");
        let addr = |i: usize| SocketAddr::from(([127, 0, 0, 1], 6000 + i as u16));
        let config = simcore::kv_plan::node_config(&scenario, 2, addr, addr(9));
        let flags = kv_flags(&config).join(" ");
        for expected in [
            "--port=6002",
            "--id=n2",
            "--write-quorum=2",
            "--versioning=wall_clock",
            "--registry=127.0.0.1:6009",
            "--circuit-breaker",
            "--load-factor=25",
            "--virtual-nodes=150",
        ] {
            assert!(flags.contains(expected), "{expected} missing from {flags}");
        }
    }
}
