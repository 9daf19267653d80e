//! One scenario on real processes: servers on loopback behind the fault proxy, the
//! scenario's workload and liveness probes as real clients (the same client code as the
//! simulator's, [`simcore::workload`] and [`simcore::probe`]), its timeline (scripted
//! faults and the nemesis's draws for the seed, as the simulator draws them) applied from
//! outside, then the nodes' history files and the clients' operations merged into one
//! history and judged by the same checks.
//!
//! Not deterministic: real time and the OS schedule the run. What it cannot apply it
//! records as a skipped fault with the reason, and the report says the run is partial.

use crate::procs::{Procs, State};
use crate::proxy::{Network, Proxy};
use simcore::addresses::Addresses;
use simcore::history::{AppliedFault, Entry, Recorder, What};
use simcore::report::RunReport;
use simcore::scenario::{Action, Commit, Fault, Scenario, System};
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
    servers: usize,
    histories: Vec<PathBuf>,
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
        simcore::recorded::load(&present).unwrap_or_default()
    }

    fn index(&self, name: &str) -> Result<usize, String> {
        name.strip_prefix('n')
            .and_then(|i| i.parse().ok())
            .filter(|i| (1..=self.servers).contains(i))
            .ok_or_else(|| {
                format!(
                    "{name}: a real run applies faults to servers n1..n{} only",
                    self.servers
                )
            })
    }
}

/// Runs `options.scenario`.
pub async fn run_real(options: &Options, scenario: &Scenario) -> Result<Finished, String> {
    if scenario.system == System::Kv {
        return Err(
            "kv scenarios do not run on real processes yet: their peer traffic is HTTP, \
             which the line-level fault proxy cannot carry (election and chat run)"
                .into(),
        );
    }
    let file = options.scenario.display().to_string();
    let seed = options.seed.unwrap_or(scenario.default_seed());
    let dir =
        std::env::temp_dir().join(format!("sim-real-{}-{}", std::process::id(), scenario.name));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let key = write_key(&dir)?;
    let n = scenario.server_count();
    let ports = free_addrs(2 * n)?;
    let (peer, client) = (ports[..n].to_vec(), ports[n..].to_vec());

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
    let mut link_addr = std::collections::BTreeMap::new();
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

    let wall = std::time::Instant::now();
    let start_ms = unix_ms();
    let recorder = Recorder::new();
    let mut procs = Procs::default();
    let mut histories = Vec::new();
    let mut logs = Vec::new();
    let binary = match scenario.system {
        System::Chat => "chat-node",
        _ => "election-node",
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
            format!("--clock-control={}", clock_control(&dir, i).display()),
        ];
        if scenario.system == System::Chat {
            args.push(format!("--client-listen={}", client[i - 1]));
        }
        args.extend(knob_flags(scenario, i));
        let prefix = if scenario.system == System::Chat {
            "chat"
        } else {
            "election"
        };
        logs.push(dir.join(format!("n{i}")).join(format!("{prefix}-{i}.log")));
        procs.add(
            &format!("n{i}"),
            options.bin_dir.join(binary),
            args,
            dir.join(format!("n{i}.out")),
        );
        histories.push(history);
    }
    let mut cluster = Cluster {
        procs,
        proxy,
        servers: n,
        histories,
        logs,
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
    for i in 1..=n {
        cluster.procs.start(&format!("n{i}"))?;
    }
    crate::interrupt::watch(&cluster.procs);
    for applied in early {
        recorder.record("harness", What::Fault { fault: applied });
    }

    let addresses = Addresses::new(
        match scenario.system {
            System::Chat => client.clone(),
            _ => peer.clone(),
        },
        None,
    );
    let mut clients = Vec::new();
    if let (Some(workload), System::Chat) = (&scenario.workload, scenario.system) {
        let stop = workload
            .stop
            .as_ref()
            .map(|s| recorder.start() + s.get_ref().0);
        for j in 1..=scenario.client_count() {
            let rng = simcore::workload::stream(seed, &format!("workload/c{j}"));
            let name = format!("c{j}");
            let share =
                simcore::workload::Share::of(workload, scenario.clients.get(name.as_str()), j);
            clients.push(tokio::spawn(simcore::workload::chat::client(
                j,
                share,
                addresses.clone(),
                recorder.clone(),
                rng,
                stop,
            )));
        }
    }

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
        let applied = apply(&mut cluster, fault, &mut rng);
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
    cluster.procs.kill_all();
    crate::interrupt::watch(&cluster.procs);

    let ours = recorder.take();
    for entry in &ours {
        if let What::Fault { fault } = &entry.what {
            if let Some(why) = &fault.skipped {
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

/// Starts one round of liveness probes (chat; the election has none) through the servers
/// up at `start`.
async fn start_probes(
    scenario: &Scenario,
    cluster: &mut Cluster,
    recorder: &Recorder,
    addresses: &Addresses,
    start: Duration,
    within: Duration,
) -> Option<tokio::task::JoinHandle<()>> {
    if scenario.system != System::Chat {
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
    Some(tokio::spawn(simcore::probe::chat(round, recorder.clone())))
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
            let servers = cluster.servers;
            let all: Vec<usize> = (1..=servers).collect();
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
            Err("slow: the per-request work factor has no flag on a running kv node".into())
        }
    };
    match result {
        Ok(effect) => applied.effect = effect,
        Err(why) => applied.skipped = Some(why),
    }
    applied
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
    // Written whole, then renamed: a running node never reads half a file.
    let control = clock_control(&cluster.dir, index);
    let temporary = control.with_extension("clock.new");
    let written = std::fs::write(&temporary, format!("{offset_ms} {drift}\n"))
        .and_then(|()| std::fs::rename(&temporary, &control));
    if let Err(e) = written {
        applied.skipped = Some(format!("cannot write {}: {e}", control.display()));
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
        let path = &cluster.logs[index - 1];
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
