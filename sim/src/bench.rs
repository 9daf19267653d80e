//! `sim bench`: the testbed's speed and memory, measured in one run against baselines
//! measured in the same run (figures are ratios, not absolute claims).
//!
//! - fuzz throughput (seeds/s) of the 5-node election and chat fuzz scenarios at one and
//!   two jobs, and the speed-up;
//! - simulated time per wall second;
//! - overhead against raw madsim: the same message pattern (a leader heartbeating four
//!   followers over TCP every 800 ms, each answering) with no harness, no history, no
//!   protocol, as wall time per delivered message (the totals, and the median over seeds);
//! - the raw simulator's own figure for the notes' reference workload (5 nodes, all-to-all
//!   UDP heartbeats every 100 ms);
//! - HTTP requests served per wall second: the KV store, and seed 001's defences (rate
//!   limit, backpressure, breakers, capacity, the balancer) at 1,000 offered requests/s;
//! - seeds to the first failure of a known-bad configuration (median of 10 disjoint ranges);
//! - peak resident memory of the process;
//! - scale: simulated time per wall second and peak memory (whole, and per server) of
//!   one KV run at 5, 64 and 1,000 servers ([`scale`]).

use crate::cluster;
use crate::fuzz::fuzz;
use crate::run::run_scenario;
use crate::scenario::{self, Scenario};
use std::fmt::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The known-bad chat used for seeds-to-first-failure (plain bully, leader commit).
pub const CHAT_UNSAFE: &str = r#"
name = "bench-chat-unsafe"
system = "chat"
nodes = 5
duration = "50s"
[config]
quorum = false
commit = "leader"
[workload]
clients = 3
ops = 300
rate = "10/s"
stop = "35s"
[nemesis]
kinds = ["crash", "partition"]
interval = ["2s", "6s"]
heal_after = ["2s", "6s"]
until = "35s"
[[check]]
kind = "total_order"
[[check]]
kind = "delivered"
"#;

/// The known-bad KV: last writer wins on wall clocks, under a skew nemesis.
pub const KV_WALL_CLOCK: &str = r#"
name = "bench-kv-wall-clock"
system = "kv"
nodes = 3
duration = "40s"
[config]
versioning = "wall_clock"
[workload]
clients = 3
ops = 300
rate = "10/s"
keys = 3
read_ratio = 0.3
stop = "30s"
[nemesis]
kinds = ["skew"]
interval = ["1s", "4s"]
heal_after = ["3s", "10s"]
until = "30s"
[[check]]
kind = "no_lost_writes"
"#;

/// Seed 001's defences at 1,000 offered requests/s, with a slow server (`{VIA}` is
/// replaced by the workload's routing: directly to a random server, or through `lb`).
const OVERLOAD_1000: &str = r#"
name = "bench-kv-overload-1000"
system = "kv"
nodes = 5
duration = "30s"
[config]
workers = 4
load_factor = 3
backpressure = 16
rate_limit = 400
circuit_breaker = true
[workload]
clients = 10
ops = 20000
rate = "1000/s"
keys = 16
read_ratio = 0.5
stop = "20s"
arrival = "open"
timeout = "1s"
retries = 2
retry_backoff = "exponential"
retry_base = "20ms"
{VIA}
[[fault]]
at = "5s"
action = "slow"
node = "n2"
factor = 5.0
[[fault]]
at = "12s"
action = "slow"
node = "n2"
factor = 1.0
[[check]]
kind = "recovers"
within = "3s"
min = 0.9
[[check]]
kind = "no_lost_writes"
"#;

/// The steady election of the overhead measurement: 5 servers, no faults, `seconds` long.
pub fn steady_election(seconds: u64) -> Result<Scenario, String> {
    let text = format!(
        "name = \"bench-election-steady\"\nsystem = \"election\"\nnodes = 5\n\
         duration = \"{seconds}s\"\n[[check]]\nkind = \"election_safety\"\n"
    );
    scenario::parse("bench-election-steady", &text).map_err(|e| e.to_string())
}

fn load(root: &std::path::Path, file: &str) -> Result<Scenario, String> {
    scenario::load(&root.join(file)).map_err(|e| e.to_string())
}

/// Runs every measurement, with the scale rows for `scale_sizes` (see [`scale`]), and
/// returns the printed report.
pub fn bench(root: &std::path::Path, seeds: u64, scale_sizes: &[usize]) -> Result<String, String> {
    let mut out = String::new();
    let _ = writeln!(out, "sim bench ({} seeds per fuzz measurement)", seeds);
    let _ = writeln!(out, "machine: {}\n", machine());
    for file in [
        "scenarios/fuzz/election-safe.toml",
        "scenarios/fuzz/chat-safe.toml",
        "scenarios/fuzz/kv-safe.toml",
    ] {
        let scenario = load(root, file)?;
        let list: Vec<u64> = (1..=seeds).collect();
        let mut rates = Vec::new();
        for jobs in [1usize, 2] {
            let started = Instant::now();
            let results = fuzz(&scenario, file, &list, jobs, None, |_| {})?;
            let wall = started.elapsed().as_secs_f64();
            let sim_s: f64 = results.iter().map(|r| r.report.sim_ms as f64 / 1e3).sum();
            let failed = results.iter().filter(|r| !r.report.passed()).count();
            rates.push(results.len() as f64 / wall);
            let _ = writeln!(
                out,
                "{:<40} jobs {jobs}: {:>7.1} seeds/s, simulated/wall {:>7.0}x, {failed} failed",
                file,
                results.len() as f64 / wall,
                sim_s / wall
            );
        }
        let _ = writeln!(
            out,
            "{:<40} speed-up jobs 2 / jobs 1: {:.2}x",
            "",
            rates[1] / rates[0]
        );
    }

    // HTTP throughput of the KV store in simulation.
    let partition = load(root, "scenarios/kv/partition-heal.toml")?;
    let before = nodes::http::requests_served();
    let started = Instant::now();
    let runs_kv = 10u64;
    for seed in 1..=runs_kv {
        run_scenario(&partition, "scenarios/kv/partition-heal.toml", seed)?;
    }
    let wall = started.elapsed().as_secs_f64();
    let requests = nodes::http::requests_served() - before;
    let _ = writeln!(
        out,
        "\nkv partition-heal (5 nodes, 60 s), {runs_kv} seeds: {requests} HTTP requests served in {:.2} s wall = {:.0} requests/wall-s",
        wall,
        requests as f64 / wall
    );

    // The overload middleware, client model and balancer at 1,000 offered requests/s.
    for (routing, via) in [
        ("direct", ""),
        (
            "via lb (least connections)",
            "via = \"lb\"\n[lb]\nstrategy = \"least_connections\"",
        ),
    ] {
        let text = OVERLOAD_1000.replace("{VIA}", via);
        let scenario =
            scenario::parse("bench-kv-overload-1000", &text).map_err(|e| e.to_string())?;
        let runs = 3u64;
        let before = nodes::http::requests_served();
        let started = Instant::now();
        let (mut sim_s, mut failed) = (0.0, 0);
        for seed in 1..=runs {
            let finished = run_scenario(&scenario, "bench-kv-overload-1000", seed)?;
            sim_s += finished.report.sim_ms as f64 / 1e3;
            failed += usize::from(!finished.report.passed());
        }
        let wall = started.elapsed().as_secs_f64();
        let requests = nodes::http::requests_served() - before;
        let _ = writeln!(
            out,
            "kv overload at 1000 offered requests/s {routing} (5 nodes, 30 s, slow n2), {runs} seeds: \
             {requests} HTTP requests served, {:.0} requests/wall-s, simulated/wall {:.1}x, {failed} failed",
            requests as f64 / wall,
            sim_s / wall
        );
    }

    // Overhead per delivered message against raw madsim with the same pattern.
    let steady = steady_election(60)?;
    // Seed by seed, the testbed's run then the raw one: on a shared machine both halves
    // see the same load. Besides the totals, the median over seeds of each side's wall
    // time per message: one run descheduled for a while moves the totals, not the median.
    // 500 seeds (~1 s of wall a side): 60 spanned a tenth of a second, and the machine's
    // speed from one tenth to the next moved the ratio by up to ±0.2 (0.04 now).
    let runs = 500u64;
    let (mut ours_wall, mut ours_messages) = (0.0, 0u64);
    let (mut raw_wall, mut raw_messages) = (0.0, 0u64);
    let (mut ours_each, mut raw_each) = (Vec::new(), Vec::new());
    for seed in 1..=runs {
        let started = Instant::now();
        let finished = run_scenario(&steady, "bench-election-steady", seed)?;
        let wall = started.elapsed().as_secs_f64();
        ours_wall += wall;
        ours_messages += finished.net_messages;
        ours_each.push(wall / finished.net_messages.max(1) as f64);
        let started = Instant::now();
        let messages = on_fresh_thread(move || raw_tcp_heartbeats(seed, 60))?;
        let wall = started.elapsed().as_secs_f64();
        raw_wall += wall;
        raw_messages += messages;
        raw_each.push(wall / messages.max(1) as f64);
    }
    let ours_per_message = ours_wall / ours_messages.max(1) as f64;
    let raw_per_message = raw_wall / raw_messages.max(1) as f64;
    let _ = writeln!(
        out,
        "\nelection, 5 nodes x 60 s, {runs} seeds: testbed {:.0} messages/wall-s ({} messages), \
         raw madsim same pattern {:.0} messages/wall-s ({} messages)",
        ours_messages as f64 / ours_wall,
        ours_messages,
        raw_messages as f64 / raw_wall,
        raw_messages
    );
    let _ = writeln!(
        out,
        "overhead per delivered message (testbed / raw madsim): {:.2}x (median over seeds {:.2}x)",
        ours_per_message / raw_per_message,
        median(&mut ours_each) / median(&mut raw_each)
    );
    let started = Instant::now();
    let mut udp_messages = 0;
    let udp_runs = 60u64;
    for seed in 1..=udp_runs {
        udp_messages += on_fresh_thread(move || raw_udp_mesh(seed))?;
    }
    let udp_wall = started.elapsed().as_secs_f64();
    let _ = writeln!(
        out,
        "raw madsim reference (5 nodes, all-to-all UDP every 100 ms, 60 s): {:.0} messages/wall-s, {:.1} seeds/s",
        udp_messages as f64 / udp_wall,
        udp_runs as f64 / udp_wall
    );

    // Seeds to first failure of the known-bad configurations.
    for (name, text) in [
        (
            "chat with plain bully + leader commit under crash/partition nemesis",
            CHAT_UNSAFE,
        ),
        (
            "kv with wall_clock versions under skew nemesis",
            KV_WALL_CLOCK,
        ),
    ] {
        let scenario = scenario::parse(name, text).map_err(|e| e.to_string())?;
        let mut firsts = Vec::new();
        for range in 0..10u64 {
            let start = range * 1000 + 1;
            let mut count = None;
            for (i, seed) in (start..start + 200).enumerate() {
                let finished = run_scenario(&scenario, name, seed)?;
                if !finished.report.passed() {
                    count = Some(i as u64 + 1);
                    break;
                }
            }
            firsts.push(count.unwrap_or(u64::MAX));
        }
        firsts.sort();
        let _ = writeln!(
            out,
            "seeds to first failure, {name}: median {} over 10 ranges ({firsts:?})",
            firsts[firsts.len() / 2]
        );
    }
    let _ = writeln!(
        out,
        "\npeak resident memory of this process: {}",
        peak_memory()
    );
    if !scale_sizes.is_empty() {
        let _ = writeln!(out, "\n{}", scale_table(&scale(root, scale_sizes)?));
    }
    Ok(out)
}

/// One row of the scale measurement.
#[derive(Clone, Debug)]
pub struct ScaleRow {
    /// Servers.
    pub servers: usize,
    /// The scenario run (seed 1).
    pub scenario: String,
    /// Simulated seconds.
    pub sim_s: f64,
    /// Wall seconds.
    pub wall_s: f64,
    /// Peak resident memory of the process during the run, kB (`None`: no /proc).
    pub peak_kb: Option<u64>,
    /// Resident memory just before the run, kB.
    pub before_kb: Option<u64>,
    /// The run's verdict: `pass`, or the first failed check and its evidence (a
    /// measurement is reported either way).
    pub verdict: String,
}

/// The cluster sizes of the scale rows.
pub const SCALE_SIZES: [usize; 3] = [5, 64, 1000];

/// One KV run per size, seed 1: 5 servers = `scenarios/kv/partition-heal.toml`, 64 =
/// `scenarios/kv/64-servers.toml` (both with the registry and clients), any other size =
/// the gossip scale scenario of `sim bench --gossip` (membership = "gossip", no clients,
/// one crash). The process's peak memory is reset before each run (Linux
/// `/proc/self/clear_refs`), so each row's peak is its own run's; memory per server is
/// the growth over the resident memory before it, divided by the servers (memory freed
/// by earlier runs and kept by the allocator can make it read low).
pub fn scale(root: &std::path::Path, sizes: &[usize]) -> Result<Vec<ScaleRow>, String> {
    let mut rows = Vec::new();
    for &servers in sizes {
        let (scenario, name) = match servers {
            5 => (
                load(root, "scenarios/kv/partition-heal.toml")?,
                "kv/partition-heal".to_string(),
            ),
            64 => (
                load(root, "scenarios/kv/64-servers.toml")?,
                "kv/64-servers".to_string(),
            ),
            n => {
                let text = gossip_bench_scenario(n);
                let scenario = scenario::parse("bench-gossip", &text).map_err(|e| e.to_string())?;
                (scenario, format!("gossip, {n} servers, one crash"))
            }
        };
        if scenario.server_count() != servers {
            return Err(format!(
                "{name} has {} servers, not {servers}",
                scenario.server_count()
            ));
        }
        reset_peak_memory();
        let before_kb = status_kb("VmRSS:");
        let started = Instant::now();
        let finished = run_scenario(&scenario, &name, 1)?;
        let wall_s = started.elapsed().as_secs_f64();
        let verdict = match finished.report.checks.iter().find(|c| !c.passed) {
            None if finished.report.passed() => "pass".to_string(),
            None => format!("fail ({})", finished.report.outcome),
            Some(check) => format!("fail: {} {}", check.kind, check.detail),
        };
        rows.push(ScaleRow {
            servers,
            scenario: name,
            sim_s: finished.report.sim_ms as f64 / 1e3,
            wall_s,
            peak_kb: status_kb("VmHWM:"),
            before_kb,
            verdict,
        });
    }
    Ok(rows)
}

/// The scale rows as a table.
pub fn scale_table(rows: &[ScaleRow]) -> String {
    let mut out = String::from(
        "scale (seed 1)  servers | scenario                          | simulated | wall     | sim/wall | peak RSS  | RSS/server | verdict\n",
    );
    for r in rows {
        let mb = |kb: u64| format!("{:.1} MB", kb as f64 / 1024.0);
        let peak = r.peak_kb.map_or("unknown".into(), mb);
        let per_server = match (r.peak_kb, r.before_kb) {
            (Some(peak), Some(before)) => {
                format!(
                    "{:.0} kB",
                    peak.saturating_sub(before) as f64 / r.servers as f64
                )
            }
            _ => "unknown".into(),
        };
        let _ = writeln!(
            out,
            "{:>24} | {:<33} | {:>7.0} s | {:>6.2} s | {:>7.1}x | {peak:>9} | {per_server:>10} | {}",
            r.servers,
            r.scenario,
            r.sim_s,
            r.wall_s,
            r.sim_s / r.wall_s,
            r.verdict
        );
    }
    out
}

/// Resets the process's peak resident memory (`VmHWM`) to its current size.
fn reset_peak_memory() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// A `/proc/self/status` field in kB.
fn status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// The middle value (the upper one of an even count); 0 for none.
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn on_fresh_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
    std::thread::spawn(f)
        .join()
        .map_err(|_| "a baseline run panicked".to_string())
}

/// The processor the figures were measured on: the ratios depend on it (one build's
/// election overhead per message read ~1.52x on one machine and ~1.3x on another with
/// larger caches), so a report says which one it came from.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let mut line = match (field("model name"), field("cpu family"), field("model")) {
        (Some(name), Some(family), Some(model)) => {
            format!("{name} (family {family}, model {model}), {cpus} CPUs")
        }
        (Some(name), _, _) => format!("{name}, {cpus} CPUs"),
        _ => format!("unknown processor (no /proc/cpuinfo), {cpus} CPUs"),
    };
    let mut caches = Vec::new();
    for index in 0..8 {
        let dir = format!("/sys/devices/system/cpu/cpu0/cache/index{index}");
        let read = |f: &str| std::fs::read_to_string(format!("{dir}/{f}")).ok();
        let (Some(level), Some(kind), Some(size)) = (read("level"), read("type"), read("size"))
        else {
            break;
        };
        let kind = match kind.trim() {
            "Data" => "d",
            "Instruction" => "i",
            _ => "",
        };
        caches.push(format!("L{}{kind} {}", level.trim(), size.trim()));
    }
    if !caches.is_empty() {
        let _ = write!(line, "; caches {}", caches.join(", "));
    }
    line
}

fn peak_memory() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.trim_start_matches("VmHWM:").trim().to_string())
        })
        .unwrap_or_else(|| "unknown (no /proc)".into())
}

/// Raw madsim, the steady election's message pattern: node 5 heartbeats nodes 1-4 over TCP
/// every 800 ms for `seconds`; each answers every line. Returns the messages delivered.
pub fn raw_tcp_heartbeats(seed: u64, seconds: u64) -> u64 {
    let runtime = cluster::runtime(seed, &Default::default());
    runtime.block_on(async move {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let addr = |i: u8| SocketAddr::from(([10, 0, 0, i], 7000));
        let mut nodes = Vec::new();
        for i in 1..=4u8 {
            let id = cluster::create_node(&format!("n{i}"), addr(i).ip(), move || async move {
                let Ok(listener) = tokio::net::TcpListener::bind(addr(i)).await else {
                    return;
                };
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(async move {
                        let (reader, mut writer) = tokio::io::split(stream);
                        let mut lines = BufReader::new(reader).lines();
                        while let Ok(Some(_)) = lines.next_line().await {
                            if writer.write_all(b"ack\n").await.is_err()
                                || writer.flush().await.is_err()
                            {
                                return;
                            }
                        }
                    });
                }
            });
            nodes.push(id);
        }
        let id = cluster::create_node("n5", addr(5).ip(), move || async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let mut writers = Vec::new();
            for i in 1..=4u8 {
                let Ok(stream) = tokio::net::TcpStream::connect(addr(i)).await else {
                    return;
                };
                let (reader, writer) = tokio::io::split(stream);
                tokio::spawn(async move {
                    let mut lines = BufReader::new(reader).lines();
                    while let Ok(Some(_)) = lines.next_line().await {}
                });
                writers.push(writer);
            }
            loop {
                for w in writers.iter_mut() {
                    let _ = w.write_all(b"heartbeat\n").await;
                    let _ = w.flush().await;
                }
                tokio::time::sleep(Duration::from_millis(800)).await;
            }
        });
        nodes.push(id);
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        let messages = cluster::messages_delivered();
        // As the testbed does at the end of a run: a run's tasks left pending keep each
        // other alive past the runtime (~145 kB a seed here), and the growing heap slowed
        // whichever run came next (the testbed's, in the alternation above, by ~20 %).
        cluster::kill_nodes(&nodes);
        messages
    })
}

/// The notes' reference: 5 nodes, all-to-all UDP heartbeats every 100 ms, 60 s.
fn raw_udp_mesh(seed: u64) -> u64 {
    let runtime = cluster::runtime(seed, &Default::default());
    runtime.block_on(async {
        let addr = |i: u8| SocketAddr::from(([10, 0, 1, i], 7000));
        let mut nodes = Vec::new();
        for i in 1..=5u8 {
            let id = cluster::create_node(&format!("n{i}"), addr(i).ip(), move || async move {
                let Ok(socket) = tokio::net::UdpSocket::bind(addr(i)).await else {
                    return;
                };
                let socket = std::sync::Arc::new(socket);
                let receiver = socket.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    while receiver.recv_from(&mut buf).await.is_ok() {}
                });
                loop {
                    for j in (1..=5u8).filter(|&j| j != i) {
                        let _ = socket.send_to(addr(j), b"heartbeat").await;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            });
            nodes.push(id);
        }
        tokio::time::sleep(Duration::from_secs(60)).await;
        let messages = cluster::messages_delivered();
        cluster::kill_nodes(&nodes);
        messages
    })
}

/// One row of the gossip scale measurement (`sim bench --gossip`): the medians over its
/// seeds (one unlucky server moves a seed's "down everywhere", which is a maximum over
/// servers; the median over seeds does not follow it).
#[derive(Clone, Debug)]
pub struct GossipScale {
    /// Servers.
    pub servers: usize,
    /// Seeds run (`1..=seeds`).
    pub seeds: u64,
    /// Simulated seconds from the crash until every live server held the crashed one
    /// down, median over seeds (`None`: half the seeds or more not within the run).
    pub converged_s: Option<f64>,
    /// The fastest and slowest seed's, among those that converged.
    pub converged_range: Option<(f64, f64)>,
    /// Seeds in which some live server never held the crashed one down.
    pub not_converged: u64,
    /// Simulated seconds from the crash to the first suspicion of it (median).
    pub first_suspect_s: Option<f64>,
    /// Gossip bytes (datagrams with MACs) per server per simulated second (median).
    pub bytes_per_node_s: f64,
    /// Simulated seconds per wall second, over all the seeds.
    pub sim_per_wall: f64,
    /// Peak resident memory of this process after the runs (`VmHWM`).
    pub peak_memory: String,
}

/// The servers `sim bench --gossip` measures.
pub const GOSSIP_SIZES: [usize; 3] = [10, 100, 1000];

/// `servers` with gossip membership and no clients; the last one crashes at 30 s and the
/// run goes on to 60 s.
fn gossip_bench_scenario(servers: usize) -> String {
    format!(
        "name = \"bench-gossip-{servers}\"\nsystem = \"kv\"\nnodes = {servers}\nduration = \"60s\"\n\
         description = \"gossip scale\"\n\n[config]\nmembership = \"gossip\"\n\n\
         [[fault]]\nat = \"30s\"\naction = \"crash\"\nnode = \"n{servers}\"\n\n\
         [[check]]\nkind = \"membership_converged\"\nwithin = \"29s\"\n"
    )
}

/// One seed of one size: what the crash did to the view, and the gossip sent.
struct GossipSample {
    converged_s: Option<f64>,
    first_suspect_s: Option<f64>,
    bytes_per_node_s: f64,
}

/// Membership convergence after one crash, gossip traffic, speed and memory for each
/// cluster size over seeds `1..=seeds` (seed 003 claims O(log N) dissemination).
pub fn gossip_scale(sizes: &[usize], seeds: u64) -> Result<Vec<GossipScale>, String> {
    if seeds == 0 {
        return Err("--gossip-seeds must be at least 1".into());
    }
    let mut rows = Vec::new();
    for &servers in sizes {
        let text = gossip_bench_scenario(servers);
        let scenario = scenario::parse("bench-gossip", &text).map_err(|e| e.to_string())?;
        let started = Instant::now();
        let mut samples = Vec::new();
        for seed in 1..=seeds {
            samples.push(gossip_sample(&scenario, servers, seed)?);
        }
        let wall = started.elapsed().as_secs_f64();
        let mut converged: Vec<f64> = samples.iter().filter_map(|s| s.converged_s).collect();
        converged.sort_by(f64::total_cmp);
        let not_converged = seeds - converged.len() as u64;
        // A seed that did not converge counts as slower than every one that did; the
        // middle as [`median`] takes it.
        let middle = seeds as usize / 2;
        let converged_s = converged.get(middle).copied();
        let converged_range = converged
            .first()
            .zip(converged.last())
            .map(|(a, b)| (*a, *b));
        let mut suspects: Vec<f64> = samples.iter().filter_map(|s| s.first_suspect_s).collect();
        let mut bytes: Vec<f64> = samples.iter().map(|s| s.bytes_per_node_s).collect();
        rows.push(GossipScale {
            servers,
            seeds,
            converged_s,
            converged_range,
            not_converged,
            first_suspect_s: (!suspects.is_empty()).then(|| median(&mut suspects)),
            bytes_per_node_s: median(&mut bytes),
            sim_per_wall: 60.0 * seeds as f64 / wall,
            peak_memory: peak_memory(),
        });
    }
    Ok(rows)
}

/// Runs `scenario` (`servers` with gossip, the last crashed at 30 s) at `seed`.
fn gossip_sample(scenario: &Scenario, servers: usize, seed: u64) -> Result<GossipSample, String> {
    use crate::history::What;
    use nodes::runtime::{MemberState, NodeEvent};
    let before = nodes::kv::swim::bytes_sent();
    let output = crate::harness::simulate(scenario, seed).map_err(|e| e.to_string())?;
    let bytes = nodes::kv::swim::bytes_sent() - before;
    let crashed = format!("n{servers}");
    let crash_at = output
        .history
        .iter()
        .find(|e| matches!(&e.what, What::Fault { .. }))
        .map_or(0, |e| e.t);
    let mut down_at: std::collections::BTreeMap<&str, u64> = Default::default();
    let mut first_suspect = None;
    for entry in output.history.iter().filter(|e| e.t >= crash_at) {
        if let What::Event {
            data: NodeEvent::Member { member, state, .. },
        } = &entry.what
        {
            if *member != crashed || entry.node == crashed {
                continue;
            }
            if *state != MemberState::Alive && first_suspect.is_none() {
                first_suspect = Some(entry.t);
            }
            if *state == MemberState::Down {
                down_at.entry(entry.node.as_str()).or_insert(entry.t);
            }
        }
    }
    let secs = |t: u64| (t - crash_at) as f64 / 1e9;
    Ok(GossipSample {
        converged_s: (down_at.len() == servers - 1)
            .then(|| secs(down_at.values().copied().max().unwrap_or(0))),
        first_suspect_s: first_suspect.map(secs),
        bytes_per_node_s: bytes as f64 / servers as f64 / 60.0,
    })
}

/// The table of [`gossip_scale`], one line per size (medians over seeds; with more than
/// one seed, the range of "down everywhere" and how many seeds never got there).
pub fn gossip_table(rows: &[GossipScale]) -> String {
    let period = nodes::kv::swim::DEFAULT_PROBE_PERIOD.as_secs_f64();
    let mut out = String::from(
        "servers | seeds | crash -> first suspect | crash -> down everywhere | protocol periods | gossip bytes/server/s | sim/wall | peak RSS\n",
    );
    for r in rows {
        let mut conv = r
            .converged_s
            .map_or("not within 30 s".to_string(), |s| format!("{s:.2} s"));
        if r.seeds > 1 {
            if let Some((low, high)) = r.converged_range {
                let _ = write!(conv, " ({low:.2}-{high:.2})");
            }
            if r.not_converged > 0 {
                let _ = write!(conv, ", {} never", r.not_converged);
            }
        }
        let periods = r
            .converged_s
            .map_or("-".to_string(), |s| format!("{:.1}", s / period));
        let suspect = r
            .first_suspect_s
            .map_or("-".to_string(), |s| format!("{s:.2} s"));
        let _ = writeln!(
            out,
            "{:>7} | {:>5} | {suspect:>22} | {conv:>24} | {periods:>16} | {:>21.0} | {:>7.1}x | {}",
            r.servers, r.seeds, r.bytes_per_node_s, r.sim_per_wall, r.peak_memory
        );
    }
    out
}

/// A line plot of convergence time after a crash against cluster size (log scale), with
/// the first suspicion below it: the README's picture of seed 003's O(log N) claim.
pub fn gossip_svg(rows: &[GossipScale]) -> String {
    let (w, h, left, right, top, bottom) = (560.0, 320.0, 60.0, 20.0, 30.0, 50.0);
    let xs: Vec<f64> = rows.iter().map(|r| (r.servers as f64).log10()).collect();
    let (x_min, x_max) = (
        xs.iter().copied().fold(f64::INFINITY, f64::min).floor(),
        xs.iter().copied().fold(f64::NEG_INFINITY, f64::max).ceil(),
    );
    let y_max = rows
        .iter()
        .filter_map(|r| r.converged_s)
        .fold(1.0f64, f64::max)
        .ceil()
        + 1.0;
    let x = |v: f64| left + (v - x_min) / (x_max - x_min).max(1e-9) * (w - left - right);
    let y = |v: f64| h - bottom - v / y_max * (h - top - bottom);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"18\" text-anchor=\"middle\">gossip membership: crash to down on every server (simulated s)</text>\n\
         <line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n\
         <line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{}\" stroke=\"black\"/>\n",
        w / 2.0,
        h - bottom,
        w - right,
        h - bottom,
        h - bottom
    );
    let mut decade = x_min;
    while decade <= x_max {
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            x(decade),
            h - bottom + 18.0,
            10f64.powf(decade).round()
        );
        decade += 1.0;
    }
    let _ = writeln!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">servers (log scale)</text>",
        (left + w - right) / 2.0,
        h - 12.0
    );
    let mut tick = 0.0;
    while tick <= y_max {
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{tick}</text><line x1=\"{left}\" y1=\"{:.1}\" x2=\"{}\" y2=\"{:.1}\" stroke=\"#ddd\"/>",
            left - 6.0,
            y(tick) + 4.0,
            y(tick),
            w - right,
            y(tick)
        );
        tick += (y_max / 5.0).ceil().max(1.0);
    }
    for (series, color, pick) in [
        ("down everywhere", "#c0392b", 0),
        ("first suspicion", "#2471a3", 1),
    ] {
        let points: Vec<(f64, f64)> = rows
            .iter()
            .zip(&xs)
            .filter_map(|(r, &lx)| {
                let v = if pick == 0 {
                    r.converged_s
                } else {
                    r.first_suspect_s
                };
                v.map(|v| (x(lx), y(v)))
            })
            .collect();
        let path: Vec<String> = points
            .iter()
            .map(|(px, py)| format!("{px:.1},{py:.1}"))
            .collect();
        let _ = writeln!(
            svg,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
            path.join(" ")
        );
        for (px, py) in &points {
            let _ = writeln!(
                svg,
                "<circle cx=\"{px:.1}\" cy=\"{py:.1}\" r=\"4\" fill=\"{color}\"/>"
            );
        }
        let ly = top + 14.0 + 16.0 * pick as f64;
        let _ = writeln!(
            svg,
            "<rect x=\"{}\" y=\"{}\" width=\"12\" height=\"3\" fill=\"{color}\"/><text x=\"{}\" y=\"{}\">{series}</text>",
            left + 12.0,
            ly - 4.0,
            left + 30.0,
            ly
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod gossip_tests {
    use super::*;

    /// The 5-server row: one 60 s run of partition-heal that passes, with its own peak
    /// memory (reset before it) at least the memory before it, and a table line.
    #[test]
    fn scale_runs_one_kv_cluster_per_size_with_its_peak_memory() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let rows = scale(&root, &[5]).expect("runs");
        let row = &rows[0];
        assert_eq!((row.servers, row.sim_s), (5, 60.0), "{row:?}");
        assert!(row.wall_s > 0.0, "{row:?}");
        assert_eq!(row.verdict, "pass", "{row:?}");
        if let (Some(peak), Some(before)) = (row.peak_kb, row.before_kb) {
            assert!(peak >= before, "{row:?}");
        }
        let table = scale_table(&rows);
        assert!(table.contains("kv/partition-heal"), "{table}");
        assert!(scale(&root, &[0]).is_err(), "no cluster of 0 servers");
    }

    /// Ten servers: the crash is suspected, then known everywhere, within the suspicion
    /// time plus dissemination, and the plot has both series.
    #[test]
    fn gossip_scale_measures_a_crash_on_ten_servers() {
        let rows = gossip_scale(&[10], 1).expect("runs");
        let row = &rows[0];
        let converged = row.converged_s.expect("down everywhere within the run");
        let suspected = row.first_suspect_s.expect("suspected");
        assert!(suspected < converged, "{row:?}");
        assert!((1.0..20.0).contains(&converged), "{row:?}");
        assert!(row.bytes_per_node_s > 10.0, "{row:?}");
        let svg = gossip_svg(&rows);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(gossip_table(&rows).contains("     10 |     1 |"));
    }

    /// Over three seeds the row is their median, inside the range it prints, and no seed
    /// is left out; zero seeds is an error, not an empty row.
    #[test]
    fn gossip_scale_takes_the_median_over_seeds() {
        let rows = gossip_scale(&[10], 3).expect("runs");
        let row = &rows[0];
        let (low, high) = row.converged_range.expect("converged");
        let median = row.converged_s.expect("converged");
        assert!(low <= median && median <= high, "{row:?}");
        assert_eq!(row.not_converged, 0, "{row:?}");
        let table = gossip_table(&rows);
        assert!(table.contains(&format!("({low:.2}-{high:.2})")), "{table}");
        assert!(gossip_scale(&[10], 0).is_err());
    }
}
