//! Helpers for real-mode tests: build the real binaries (the test itself is compiled for
//! the simulator), start them on loopback, and watch their JSON event lines.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Builds the workspace's real binaries once per test process, into `target/real`.
pub fn real_binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let built = BUILT.get_or_init(|| {
        let status = Command::new(env!("CARGO"))
            .current_dir(&root)
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .args(["real-build", "-p", "nodes", "--bins"])
            .status()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!(
                "`cargo real-build -p nodes --bins` failed: {status}"
            ))
        }
    });
    if let Err(e) = built {
        panic!("{e}");
    }
    root.join("target/real/debug").join(name)
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A fresh scratch directory.
pub fn scratch_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nodes-real-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// The HOME of every real process this test binary starts: the first node creates the
/// per-user cluster key file (`~/.simnode/cluster-key`) there and every other node reads
/// it, as the seeds' commands do on one machine, without touching the real home.
pub fn test_home() -> PathBuf {
    static HOME: OnceLock<PathBuf> = OnceLock::new();
    HOME.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("nodes-real-home-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("test home");
        dir
    })
    .clone()
}

/// The cluster key the nodes of this test binary share (once a node has created it).
pub fn cluster_key() -> nodes::auth::ClusterKey {
    let path = test_home().join(nodes::auth::key_file::DEFAULT_RELATIVE);
    wait_for("the cluster key file", Duration::from_secs(10), || {
        path.exists()
    });
    nodes::auth::key_file::load(Some(&path)).expect("the cluster key")
}

/// A running real process whose stdout lines are collected.
pub struct Running {
    pub name: String,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Running {
    /// Starts `binary` with `args`, collecting stdout lines.
    pub fn start(name: &str, binary: &Path, args: &[String]) -> Running {
        let mut child = Command::new(binary)
            .args(args)
            .env("HOME", test_home())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let lines = Arc::new(Mutex::new(Vec::new()));
        if let Some(stdout) = child.stdout.take() {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(line);
                }
            });
        }
        Running {
            name: name.to_string(),
            child,
            lines,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory of the process in kB (from /proc), if it can be read.
    pub fn rss_kb(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// Every stdout line so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Sends ctrl-c (SIGINT) and waits up to 10 s for a clean exit; true if it exited 0.
    pub fn interrupt(&mut self) -> bool {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Kills the process (SIGKILL: a crash, not a shutdown).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `condition` every 50 ms until it holds or `limit` passes.
pub fn wait_for(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if condition() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out after {limit:?} waiting for {what}");
}

/// `kv-node` number `id` on `port`, registered with the registry on `registry`.
pub fn kv_node(id: usize, port: u16, registry: u16, extra: &[&str]) -> Running {
    let mut args = vec![
        format!("--port={port}"),
        format!("--id=node-{id}"),
        format!("--registry=http://localhost:{registry}"),
        "--registry-heartbeat=300ms".into(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    Running::start(&format!("node-{id}"), &real_binary("kv-node"), &args)
}

/// An HTTP client with a 3 s timeout.
pub fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(3))
        .build()
}

/// The JSON body of `GET url`, if it answers with one.
pub fn get_json(url: &str) -> Option<serde_json::Value> {
    agent().get(url).call().ok()?.into_json().ok()
}

/// How many peers the kv-node on `port` lists (0 if it does not answer).
pub fn peers_of(port: u16) -> usize {
    ureq::get(&format!("http://127.0.0.1:{port}/peers"))
        .call()
        .ok()
        .and_then(|r| r.into_json::<serde_json::Value>().ok())
        .and_then(|p| p["peers"].as_array().map(Vec::len))
        .unwrap_or(0)
}

/// A registry and three kv-nodes (with `extra` flags), once every node sees the others.
/// Returns the processes (registry first; stopped when dropped), the nodes' ports and the
/// registry's port.
pub fn kv_cluster(extra: &[&str]) -> (Vec<Running>, Vec<u16>, u16) {
    kv_cluster_with_ttl("3s", extra)
}

/// [`kv_cluster`] with the registry dropping a silent node after `ttl`.
pub fn kv_cluster_with_ttl(ttl: &str, extra: &[&str]) -> (Vec<Running>, Vec<u16>, u16) {
    let registry_port = free_port();
    let mut running = vec![Running::start(
        "registry",
        &real_binary("registry"),
        &[format!("--port={registry_port}"), format!("--ttl={ttl}")],
    )];
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    running.extend((0..3).map(|i| kv_node(i + 1, ports[i], registry_port, extra)));
    wait_for("three members everywhere", Duration::from_secs(20), || {
        ports.iter().all(|&p| peers_of(p) == 2)
    });
    (running, ports, registry_port)
}

/// The node events (`data` of each JSON line) a process printed.
pub fn events_of(node: &Running) -> Vec<serde_json::Value> {
    node.lines()
        .iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .map(|v| v["data"].clone())
        .collect()
}
