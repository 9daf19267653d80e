//! One scenario on real processes: servers on loopback behind the fault proxy, the
//! scenario's workload and liveness probes as real clients (the same client code as the
//! simulator's, [`simcore::workload`] and [`simcore::probe`]), its timeline (scripted
//! faults and the nemesis's draws for the seed, as the simulator draws them) applied from
//! outside, then the nodes' history files and the clients' operations merged into one
//! history and judged by the same checks.
//!
//! Not deterministic: real time and the OS schedule the run. What it cannot apply it
//! records as a skipped fault with the reason, and the report says the run is partial.

use crate::byte_proxy::ByteProxy;
use crate::procs::{Procs, State};
use crate::proxy::{Network, Proxy};
use simcore::addresses::Addresses;
use simcore::history::{AppliedFault, Entry, Recorder, What};
use simcore::report::RunReport;
use simcore::scenario::{Action, Commit, Fault, Scenario, System};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What `sim-real` was asked to do.
pub struct Options {
    /// The scenario file.
    pub scenario: PathBuf,
    /// Where the real binaries are.
    pub bin_dir: PathBuf,
    /// Where to write the merged history.
    pub trace: Option<PathBuf>,
    /// Seed of the workload's and selectors' draws (default: the scenario's).
    pub seed: Option<u64>,
}

/// A finished real run.
pub struct Finished {
    /// The checks' report.
    pub report: RunReport,
    /// The faults it could not apply, each with why.
    pub partial: Vec<String>,
    /// The merged history.
    pub history: Vec<Entry>,
    /// The run's scratch directory (data, logs, histories).
    pub dir: PathBuf,
}

/// Free loopback addresses for the nodes, below the OS's ephemeral range: a port the OS
/// hands out for `:0` or to an outgoing connection could be taken again by one of this
/// run's (or another run's) connections before a restarted node binds it again. Drawn at
/// random and checked free, so two runs on one machine do not pick the same ones.
fn free_addrs(count: usize) -> Result<Vec<SocketAddr>, String> {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| t.split_whitespace().next().and_then(|p| p.parse().ok()))
        .unwrap_or(32768u16)
        .max(12000);
    let mut rng = rand::thread_rng();
    let mut found: Vec<SocketAddr> = Vec::new();
    for _ in 0..count * 100 {
        if found.len() == count {
            break;
        }
        let port = rand::Rng::gen_range(&mut rng, 10000..ephemeral_low);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        if !found.contains(&addr) && std::net::TcpListener::bind(addr).is_ok() {
            found.push(addr);
        }
    }
    if found.len() < count {
        return Err(format!(
            "no {count} free loopback ports below {ephemeral_low}"
        ));
    }
    Ok(found)
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The flags of server `n{index}`: the scenario's knobs, as the binary names them.
fn knob_flags(scenario: &Scenario, index: usize) -> Vec<String> {
    let knobs = scenario.knobs_for(index);
    let mut flags = Vec::new();
    if let Some(d) = &knobs.heartbeat_interval {
        flags.push(format!(
            "--heartbeat-interval={}",
            nodes::duration::format(d.get_ref().0)
        ));
    }
    if let Some(d) = &knobs.election_timeout {
        flags.push(format!(
            "--election-timeout={}",
            nodes::duration::format(d.get_ref().0)
        ));
    }
    if let Some(q) = &knobs.quorum {
        flags.push(format!("--quorum={}", q.get_ref()));
    }
    if scenario.system == System::Chat {
        if let Some(c) = &knobs.commit {
            let commit = match c.get_ref() {
                Commit::Leader => "leader",
                Commit::Majority => "majority",
            };
            flags.push(format!("--commit={commit}"));
        }
    }
    flags
}

/// The cluster as the runner sees it.
struct Cluster {
    procs: Procs,
    proxy: Proxy,
    /// KV's byte-stream transport over `proxy`, which also refuses links to down nodes.
    bytes: Option<ByteProxy>,
    servers: usize,
    /// Fault targets (servers; KV's registry and balancer too) by name: their index in
    /// the proxy's links.
    names: BTreeMap<String, usize>,
    /// Every endpoint of the proxy's links (an isolated node is cut from all of them).
    endpoints: usize,
    histories: Vec<PathBuf>,
    /// How long after the nodes' `--history-start` the run's time zero came (once every
    /// node listened): taken off their lines' times.
    zero_ns: u64,
    /// Log files of every server, by index: damaged by `disk` faults while down.
    logs: Vec<PathBuf>,
    /// The run's scratch directory.
    dir: PathBuf,
    /// Each skewed server's clock error (offset ms, drift), for its control file and
    /// its next start.
    skews: std::collections::BTreeMap<usize, (i64, f64)>,
    /// `disk` faults waiting for their server to be down.
    pending_disk: Vec<(usize, Fault, u64)>,
}

impl Cluster {
    /// Every node line written so far, merged (for the `leader` selector).
    fn node_history(&self) -> Vec<Entry> {
        let present: Vec<&PathBuf> = self.histories.iter().filter(|p| p.exists()).collect();
        let mut entries = simcore::recorded::load(&present).unwrap_or_default();
        for entry in &mut entries {
            entry.t = entry.t.saturating_sub(self.zero_ns);
        }
        entries
    }

    fn index(&self, name: &str) -> Result<usize, String> {
        self.names.get(name).copied().ok_or_else(|| {
            let others = if self.names.len() > self.servers {
                " and the registry and balancer it runs"
            } else {
                ""
            };
            format!(
                "{name}: a real run applies faults to servers n1..n{}{others} only",
                self.servers
            )
        })
    }

    /// Tells the byte-stream proxy which endpoints are down (links to them refuse).
    fn note_down(&mut self) {
        let Some(bytes) = self.bytes.clone() else {
            return;
        };
        let names: Vec<(String, usize)> = self.names.iter().map(|(n, &i)| (n.clone(), i)).collect();
        for (name, index) in names {
            bytes.set_down(index, self.procs.state(&name) == State::Down);
        }
        bytes.changed();
    }
}

/// Runs `options.scenario`.
pub async fn run_real(options: &Options, scenario: &Scenario) -> Result<Finished, String> {
    let file = options.scenario.display().to_string();
    let seed = options.seed.unwrap_or(scenario.default_seed());
    let dir =
        std::env::temp_dir().join(format!("sim-real-{}-{}", std::process::id(), scenario.name));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let key = write_key(&dir)?;
    let n = scenario.server_count();

    // Every peer link through the proxy; the proxy's listeners are held, so they never
    // collide with another run's.
    let mut network = Network::default();
    if let Some(range) = &scenario.network.latency {
        let [low, high] = *range.get_ref();
        network.set_latency(None, [low.0, high.0]);
    }
    if let Some(loss) = &scenario.network.loss {
        network.set_loss(None, *loss.get_ref());
    }
    let proxy = Proxy::new(network);
    let wall = std::time::Instant::now();
    let start_ms = unix_ms();
    let common = Common {
        bin_dir: &options.bin_dir,
        dir: &dir,
        key: &key,
        start_ms,
        seed,
    };
    let layout = match scenario.system {
        System::Kv => kv_layout(scenario, &proxy, &common).await?,
        _ => line_layout(scenario, &proxy, &common).await?,
    };
    let ready = layout.ready.clone();
    let mut cluster = Cluster {
        procs: layout.procs,
        proxy,
        bytes: layout.bytes,
        servers: n,
        names: layout.names,
        endpoints: layout.endpoints,
        histories: layout.histories,
        zero_ns: 0,
        logs: layout.logs,
        dir: dir.clone(),
        skews: Default::default(),
        pending_disk: Vec::new(),
    };
    crate::interrupt::watch(&cluster.procs);

    // Skews at 0 s are start-up flags of the clock seam.
    let faults = simcore::nemesis::fault_timeline(scenario, seed);
    let mut early = Vec::new();
    for fault in faults.iter().filter(|f| f.at.0.is_zero()) {
        if *fault.action.get_ref() == Action::Skew {
            early.push(skew(&mut cluster, fault, true));
        }
    }
    // The registry first, then the servers, then the balancer (as the simulator adds them).
    let order: Vec<String> = ["registry"]
        .into_iter()
        .map(String::from)
        .chain((1..=n).map(|i| format!("n{i}")))
        .chain(["lb".to_string()])
        .filter(|name| cluster.procs.get_mut(name).is_some())
        .collect();
    for name in &order {
        cluster.procs.start(name)?;
    }
    crate::interrupt::watch(&cluster.procs);
    // Time zero once every process listens, as the simulator's nodes are up at 0 s (a
    // client's first request must not race a node's start-up).
    wait_listening(&ready).await;
    let recorder = Recorder::new();
    cluster.zero_ns = unix_ms().saturating_sub(start_ms) * 1_000_000;
    for applied in early {
        recorder.record("harness", What::Fault { fault: applied });
    }

    let mut clients = Vec::new();
    if let Some(workload) = &scenario.workload {
        let stop = workload
            .stop
            .as_ref()
            .map(|s| recorder.start() + s.get_ref().0);
        for j in 1..=scenario.client_count() {
            let rng = simcore::workload::stream(seed, &format!("workload/c{j}"));
            let name = format!("c{j}");
            let share =
                simcore::workload::Share::of(workload, scenario.clients.get(name.as_str()), j);
            let addresses = layout
                .clients
                .get(j - 1)
                .cloned()
                .unwrap_or_else(|| layout.direct.clone());
            match scenario.system {
                System::Chat => clients.push(tokio::spawn(simcore::workload::chat::client(
                    j,
                    share,
                    addresses,
                    recorder.clone(),
                    rng,
                    stop,
                ))),
                System::Kv => clients.push(tokio::spawn(simcore::workload::kv::client(
                    j,
                    share,
                    workload.clone(),
                    addresses,
                    simcore::kv_plan::keys(scenario),
                    recorder.clone(),
                    rng,
                    stop,
                    scenario.records_attempts(),
                ))),
                System::Election => {}
            }
        }
    }
    let addresses = layout.direct;

    let mut rounds = simcore::probe::rounds(scenario, &faults)
        .into_iter()
        .peekable();
    let mut probes = Vec::new();
    let mut partial = Vec::new();
    for fault in &faults {
        while let Some((start, within)) = rounds.next_if(|(s, _)| *s < fault.at.0) {
            probes.extend(
                start_probes(scenario, &mut cluster, &recorder, &addresses, start, within).await,
            );
        }
        if fault.at.0.is_zero() && *fault.action.get_ref() == Action::Skew {
            continue; // applied at start
        }
        tokio::time::sleep_until(recorder.start() + fault.at.0).await;
        let mut rng = simcore::nemesis::fault_stream(seed, fault);
        for (name, why) in cluster.procs.take_exits() {
            recorder.record(&name, What::Error { message: why });
        }
        let applied = apply(&mut cluster, fault, &mut rng);
        cluster.note_down();
        crate::interrupt::watch(&cluster.procs);
        recorder.record("harness", What::Fault { fault: applied });
    }
    for (start, within) in rounds {
        probes.extend(
            start_probes(scenario, &mut cluster, &recorder, &addresses, start, within).await,
        );
    }
    tokio::time::sleep_until(recorder.start() + scenario.duration.0).await;
    for task in clients {
        task.abort();
    }
    for task in probes {
        let _ = task.await;
    }
    if scenario.system == System::Kv {
        final_reads(scenario, &mut cluster, &recorder, &addresses, &key).await?;
    }
    // A node that exited on its own failed as the simulator's node whose entry point
    // returned an error does: the history says so.
    for (name, why) in cluster.procs.take_exits() {
        recorder.record(&name, What::Error { message: why });
    }
    cluster.procs.kill_all();
    crate::interrupt::watch(&cluster.procs);

    if scenario.buggify {
        partial.push(
            "buggify: the simulator's own injected delays and failures have no real \
             counterpart"
                .to_string(),
        );
    }
    let ours = recorder.take();
    for entry in &ours {
        if let What::Fault { fault } = &entry.what {
            if let Some(why) = fault.skipped.as_deref() {
                let node = fault.node.as_deref().unwrap_or("");
                partial.push(format!(
                    "{} {node} at {}: {why}",
                    fault.action,
                    simcore::history::fmt_time(entry.t)
                ));
            }
        }
    }
    let mut history = cluster.node_history();
    history.extend(ours);
    history.sort_by_key(|e| e.t);
    if let Some(path) = &options.trace {
        std::fs::write(path, simcore::history::to_json_lines(&history))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    let reproduce = format!("cargo run -p sim -- real {file} --seed {seed}");
    let mut report = simcore::recorded::judge(scenario, &file, seed, &history, reproduce);
    report.wall_ms = wall.elapsed().as_millis() as u64;
    Ok(Finished {
        report,
        partial,
        history,
        dir,
    })
}

/// What every process of the run is started with besides its own flags.
#[derive(Clone, Copy)]
pub struct Common<'a> {
    /// The directory of the binaries.
    pub bin_dir: &'a Path,
    /// The run's scratch directory.
    pub dir: &'a Path,
    /// The cluster key file.
    pub key: &'a Path,
    /// The run's start, Unix ms (`--history-start`).
    pub start_ms: u64,
    /// The seed of the proxy's draws.
    pub seed: u64,
}

/// A run's processes and addresses, before they start.
struct Layout {
    procs: Procs,
    /// KV's byte-stream transport (none for the line proxy's election and chat).
    bytes: Option<ByteProxy>,
    names: BTreeMap<String, usize>,
    endpoints: usize,
    histories: Vec<PathBuf>,
    logs: Vec<PathBuf>,
    /// Each client's addresses (empty: the servers' own, `direct`).
    clients: Vec<Addresses>,
    /// The servers' client-facing addresses.
    direct: Addresses,
    /// Every address a process of the run listens on.
    ready: Vec<SocketAddr>,
}

/// Longest wait for the processes to listen before the run starts anyway.
const START_UP: Duration = Duration::from_secs(10);

/// Waits until a connection to each of `addrs` is accepted (at most [`START_UP`]).
async fn wait_listening(addrs: &[SocketAddr]) {
    let deadline = tokio::time::Instant::now() + START_UP;
    for &addr in addrs {
        while tokio::time::Instant::now() < deadline {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The control-file flags of server `n{index}`: its clock's error and its `slow` factor.
fn control_flags(dir: &Path, index: usize) -> Vec<String> {
    vec![
        format!("--clock-control={}", clock_control(dir, index).display()),
        format!("--slow-control={}", slow_control(dir, index).display()),
    ]
}

/// Election and chat: servers whose peer links run through the line proxy.
async fn line_layout(
    scenario: &Scenario,
    proxy: &Proxy,
    common: &Common<'_>,
) -> Result<Layout, String> {
    let Common {
        bin_dir,
        dir,
        key,
        start_ms,
        seed,
    } = *common;
    let n = scenario.server_count();
    let ports = free_addrs(2 * n)?;
    let (peer, client) = (ports[..n].to_vec(), ports[n..].to_vec());
    let mut link_addr = BTreeMap::new();
    for i in 1..=n {
        for j in (1..=n).filter(|&j| j != i) {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|e| format!("proxy: {e}"))?;
            let addr = listener.local_addr().map_err(|e| e.to_string())?;
            link_addr.insert((i, j), addr);
            let stream = simcore::workload::stream(seed, &format!("proxy/n{i}-n{j}"));
            proxy.serve(
                (i, j),
                listener,
                peer[j - 1],
                rand::Rng::gen(&mut { stream }),
            );
        }
    }
    let mut procs = Procs::default();
    let mut histories = Vec::new();
    let mut logs = Vec::new();
    let (binary, prefix) = match scenario.system {
        System::Chat => ("chat-node", "chat"),
        _ => ("election-node", "election"),
    };
    for i in 1..=n {
        let history = dir.join(format!("n{i}.history.jsonl"));
        let peers: Vec<String> = (1..=n)
            .filter(|&j| j != i)
            .map(|j| format!("{j}={}", link_addr[&(i, j)]))
            .collect();
        let mut args = vec![
            format!("--id={i}"),
            format!("--listen={}", peer[i - 1]),
            format!("--peers={}", peers.join(",")),
            format!("--data-dir={}", dir.join(format!("n{i}")).display()),
            format!("--cluster-key-file={}", key.display()),
            format!("--history={}", history.display()),
            format!("--history-start={start_ms}"),
        ];
        args.extend(control_flags(dir, i));
        if scenario.system == System::Chat {
            args.push(format!("--client-listen={}", client[i - 1]));
        }
        args.extend(knob_flags(scenario, i));
        logs.push(dir.join(format!("n{i}")).join(format!("{prefix}-{i}.log")));
        procs.add(
            &format!("n{i}"),
            bin_dir.join(binary),
            args,
            dir.join(format!("n{i}.out")),
        );
        histories.push(history);
    }
    let direct = match scenario.system {
        System::Chat => client,
        _ => peer,
    };
    Ok(Layout {
        procs,
        bytes: None,
        names: (1..=n).map(|i| (format!("n{i}"), i)).collect(),
        endpoints: n,
        histories,
        logs,
        clients: Vec::new(),
        direct: Addresses::new(direct, None),
        // Not waited for: a bare connect to a peer port is a refused peer in the node's
        // history (it sends no hello); these nodes' clients retry until they are up.
        ready: Vec::new(),
    })
}

/// KV: the registry, the servers and the balancer, every link through the byte-stream
/// proxy (see [`crate::kv`]).
async fn kv_layout(
    scenario: &Scenario,
    proxy: &Proxy,
    common: &Common<'_>,
) -> Result<Layout, String> {
    let n = scenario.server_count();
    let ports = free_addrs(n + 2)?;
    let bytes = ByteProxy::new(proxy.clone());
    let dir = common.dir;
    let built =
        crate::kv::build(scenario, common, &bytes, &ports, |i| control_flags(dir, i)).await?;
    let endpoints = crate::kv::Endpoints {
        servers: n,
        clients: scenario.client_count(),
    };
    Ok(Layout {
        procs: built.procs,
        bytes: Some(bytes),
        names: built.names,
        endpoints: endpoints.count(),
        histories: built.histories,
        // KV nodes keep their store in memory: no log for a `disk` fault to damage.
        logs: Vec::new(),
        clients: built.clients,
        direct: built.direct,
        ready: built.listening,
    })
}

/// The harness's final reads, as the simulator's: each key's local copy on each of its
/// replicas among the live servers, signed with the cluster key.
async fn final_reads(
    scenario: &Scenario,
    cluster: &mut Cluster,
    recorder: &Recorder,
    addresses: &Addresses,
    key: &Path,
) -> Result<(), String> {
    let live: Vec<usize> = cluster
        .procs
        .live()
        .iter()
        .filter_map(|name| name.strip_prefix('n')?.parse().ok())
        .collect();
    let reads = simcore::kv_plan::final_reads(scenario, &live);
    let size = scenario
        .workload
        .as_ref()
        .map_or(0, simcore::workload::kv::value_size);
    let key = nodes::auth::key_file::load(Some(key))?;
    simcore::workload::kv::final_reads(addresses, &reads, size, recorder, key).await;
    Ok(())
}

/// The cluster key file every node of the run reads: a fresh random secret.
fn write_key(dir: &Path) -> Result<PathBuf, String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join("cluster-key");
    let secret: [u8; 32] = rand::random();
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let mut file = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    file.write_all(hex.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// Starts one round of liveness probes (chat and kv; the election has none) through the
/// servers up at `start`, straight to them (the simulator probes from outside the cluster).
async fn start_probes(
    scenario: &Scenario,
    cluster: &mut Cluster,
    recorder: &Recorder,
    addresses: &Addresses,
    start: Duration,
    within: Duration,
) -> Option<tokio::task::JoinHandle<()>> {
    if scenario.system == System::Election {
        return None;
    }
    tokio::time::sleep_until(recorder.start() + start).await;
    let servers = cluster
        .procs
        .live()
        .iter()
        .filter_map(|name| name[1..].parse().ok())
        .collect();
    let round = simcore::probe::Round {
        start,
        servers,
        addresses: addresses.clone(),
        deadline: recorder.start() + start + within,
    };
    Some(match scenario.system {
        System::Chat => tokio::spawn(simcore::probe::chat(round, recorder.clone())),
        _ => tokio::spawn(simcore::probe::kv(round, recorder.clone())),
    })
}

/// Resolves a `node` selector: `leader` from the live history, `random` among the live
/// servers, or the name itself.
fn resolve(
    cluster: &mut Cluster,
    selector: &str,
    rng: &mut impl rand::Rng,
) -> Result<String, String> {
    match selector {
        "leader" => {
            let history = cluster.node_history();
            let live = cluster.procs.live();
            simcore::selectors::latest_leader(&history, |n| live.iter().any(|l| l == n))
                .ok_or_else(|| "no live leader".to_string())
        }
        "random" => {
            let live = cluster.procs.live();
            if live.is_empty() {
                return Err("no live server".into());
            }
            Ok(live[rng.gen_range(0..live.len())].clone())
        }
        name => Ok(name.to_string()),
    }
}

/// Applies one fault from outside the nodes; returns what was done, for the history.
fn apply(cluster: &mut Cluster, fault: &Fault, rng: &mut rand_chacha::ChaCha8Rng) -> AppliedFault {
    let action = *fault.action.get_ref();
    let mut applied = AppliedFault::new(action);
    let target = match fault.node.as_ref().map(|n| n.get_ref().as_str()) {
        None => None,
        Some(selector) => match resolve(cluster, selector, rng) {
            Ok(name) => Some(name),
            Err(why) => {
                applied.node = Some(selector.to_string());
                applied.skipped = Some(why);
                return applied;
            }
        },
    };
    applied.node = target.clone();
    let node = target.unwrap_or_default();
    let result: Result<Option<String>, String> = match action {
        Action::Crash => cluster
            .index(&node)
            .and_then(|_| cluster.procs.crash(&node))
            .map(|_| None),
        Action::Restart => cluster.index(&node).and_then(|i| {
            let damage = apply_pending_disk(cluster, i);
            cluster.procs.start(&node).map(|_| damage)
        }),
        Action::Pause => cluster
            .index(&node)
            .and_then(|_| cluster.procs.pause(&node))
            .map(|_| None),
        Action::Resume => cluster
            .index(&node)
            .and_then(|_| cluster.procs.resume(&node))
            .map(|_| None),
        Action::Shutdown => cluster
            .index(&node)
            .and_then(|_| cluster.procs.shutdown(&node))
            .map(|_| None),
        Action::Partition => {
            let groups = simcore::selectors::groups(fault);
            applied.groups = groups.clone();
            groups
                .iter()
                .map(|g| {
                    g.iter()
                        .map(|n| cluster.index(n))
                        .collect::<Result<Vec<_>, _>>()
                })
                .collect::<Result<Vec<_>, _>>()
                .map(|indices| {
                    cluster.proxy.with(|net| net.partition(&indices));
                    None
                })
        }
        Action::Heal => {
            cluster.proxy.with(Network::heal);
            Ok(None)
        }
        Action::Isolate => cluster.index(&node).map(|i| {
            let all: Vec<usize> = (1..=cluster.endpoints).collect();
            cluster.proxy.with(|net| net.isolate(&i, &all));
            None
        }),
        Action::Clog | Action::Unclog => {
            let (from, to) = simcore::selectors::link(fault);
            applied.from = Some(from.clone());
            applied.to = Some(to.clone());
            cluster
                .index(&from)
                .and_then(|f| cluster.index(&to).map(|t| (f, t)))
                .map(|link| {
                    cluster.proxy.with(|net| {
                        if action == Action::Clog {
                            net.clog(link.0, link.1)
                        } else {
                            net.unclog(link.0, link.1)
                        }
                    });
                    None
                })
        }
        Action::Skew => return skew(cluster, fault, false),
        Action::Loss => {
            let rate = fault.rate.as_ref().map_or(0.0, |r| *r.get_ref());
            applied.rate = Some(rate);
            link_of(cluster, fault, &mut applied).map(|link| {
                cluster.proxy.with(|net| net.set_loss(link, rate));
                None
            })
        }
        Action::Latency => {
            let [low, high] = fault
                .range
                .as_ref()
                .map(|r| *r.get_ref())
                .unwrap_or_default();
            applied.range_ms = Some([low.0.as_secs_f64() * 1e3, high.0.as_secs_f64() * 1e3]);
            link_of(cluster, fault, &mut applied).map(|link| {
                cluster
                    .proxy
                    .with(|net| net.set_latency(link, [low.0, high.0]));
                None
            })
        }
        Action::Disk => {
            let mode = fault
                .mode
                .as_ref()
                .map(|m| *m.get_ref())
                .unwrap_or(simcore::scenario::DiskMode::Tear);
            applied.mode = Some(format!("{mode:?}").to_lowercase());
            cluster.index(&node).map(|i| {
                cluster
                    .pending_disk
                    .push((i, fault.clone(), rand::Rng::gen(rng)));
                if cluster.procs.state(&node) == State::Down {
                    apply_pending_disk(cluster, i)
                } else {
                    Some("the data file is edited before the node's next start".to_string())
                }
            })
        }
        Action::Slow => {
            let factor = fault.factor.as_ref().map_or(1.0, |f| *f.get_ref());
            applied.factor = Some(factor);
            cluster
                .index(&node)
                .and_then(|i| slow(&cluster.dir, i, factor))
                .map(|_| None)
        }
    };
    match result {
        Ok(effect) => applied.effect = effect,
        Err(why) => applied.skipped = Some(why),
    }
    applied
}

/// The `slow` control file of server `n{index}` (see `--slow-control`).
fn slow_control(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("n{index}.slow"))
}

/// A `slow` through the slowdown seam: the factor goes to the server's `--slow-control`
/// file, which it rereads while it runs and reads again at every start (the simulator's
/// factor survives restarts too).
fn slow(dir: &Path, index: usize, factor: f64) -> Result<(), String> {
    write_whole(&slow_control(dir, index), &format!("{factor}\n"))
}

/// Writes `text` to `path` whole, then renames: a running node never reads half a file.
fn write_whole(path: &Path, text: &str) -> Result<(), String> {
    let temporary = PathBuf::from(format!("{}.new", path.display()));
    std::fs::write(&temporary, text)
        .and_then(|()| std::fs::rename(&temporary, path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The one link a `loss`/`latency` fault names (`None`: every link).
fn link_of(
    cluster: &Cluster,
    fault: &Fault,
    applied: &mut AppliedFault,
) -> Result<Option<(usize, usize)>, String> {
    if fault.from.is_none() {
        return Ok(None);
    }
    let (from, to) = simcore::selectors::link(fault);
    applied.from = Some(from.clone());
    applied.to = Some(to.clone());
    Ok(Some((cluster.index(&from)?, cluster.index(&to)?)))
}

/// The clock-control file of server `n{index}` (see `--clock-control`).
fn clock_control(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("n{index}.clock"))
}

/// A `skew` through the clock seam: the real binaries take an offset and a drift as flags
/// (`--clock-offset`, `--clock-drift`: a skew at 0 s, and every later start) and reread
/// them from their `--clock-control` file while they run.
fn skew(cluster: &mut Cluster, fault: &Fault, at_start: bool) -> AppliedFault {
    let mut applied = AppliedFault::new(Action::Skew);
    let node = fault
        .node
        .as_ref()
        .map(|n| n.get_ref().clone())
        .unwrap_or_default();
    applied.node = Some(node.clone());
    let offset = fault.offset.as_ref().map(|o| o.get_ref().0);
    let drift = fault.drift.as_ref().map(|d| *d.get_ref());
    applied.offset_ms = offset;
    applied.drift = drift;
    if let Err(why) = cluster.index(&node) {
        applied.skipped = Some(why);
        return applied;
    }
    let index = cluster.index(&node).unwrap_or_default();
    let skew = cluster.skews.entry(index).or_insert((0, 0.0));
    *skew = (offset.unwrap_or(skew.0), drift.unwrap_or(skew.1));
    let (offset_ms, drift) = *skew;
    if let Some(server) = cluster.procs.get_mut(&node) {
        server.extra = vec![
            format!("--clock-offset={offset_ms}ms"),
            format!("--clock-drift={drift}"),
        ];
    }
    let control = clock_control(&cluster.dir, index);
    if let Err(why) = write_whole(&control, &format!("{offset_ms} {drift}\n")) {
        applied.skipped = Some(why);
    } else if at_start {
        applied.effect = Some("clock flags of the node's start".into());
    }
    applied
}

/// Damages server `index`'s log file with the `disk` faults waiting for it (the node is
/// down); returns what was done.
fn apply_pending_disk(cluster: &mut Cluster, index: usize) -> Option<String> {
    let (mine, rest): (Vec<_>, Vec<_>) = cluster
        .pending_disk
        .drain(..)
        .partition(|(i, _, _)| *i == index);
    cluster.pending_disk = rest;
    let mut done = Vec::new();
    for (_, fault, draw) in mine {
        let Some(path) = cluster.logs.get(index - 1) else {
            done.push("no durable log to damage (the node keeps its state in memory)".into());
            continue;
        };
        let mode = fault
            .mode
            .as_ref()
            .map(|m| *m.get_ref())
            .unwrap_or(simcore::scenario::DiskMode::Tear);
        done.push(match crate::disk_file::damage(path, mode, draw) {
            Ok(what) => what,
            Err(why) => why,
        });
    }
    (!done.is_empty()).then(|| done.join("; "))
}
