//! `sim-real` on real processes gives the simulator's verdicts: the split brain's
//! `total_order` violation (through the fault proxy's partition), an isolated quorum
//! leader that steps down (through `leader` resolved from the live history), a KV
//! write quorum that a partition of HTTP links makes unreachable (through the byte-stream
//! proxy), and gossip membership split in two by a partition (through the proxy's
//! datagram relay). All run at once, which also shows that runs on one machine do not
//! collide.

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Builds the runner and the node binaries for real sockets (this test is built for the
/// simulator), into target/real.
fn bin_dir() -> PathBuf {
    let status = Command::new(env!("CARGO"))
        .current_dir(workspace())
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .args([
            "real-build",
            "--bin",
            "sim-real",
            "--bin",
            "chat-node",
            "--bin",
            "election-node",
            "--bin",
            "kv-node",
            "--bin",
            "registry",
            "--bin",
            "load-balancer",
        ])
        .status()
        .expect("cargo runs");
    assert!(status.success(), "cargo real-build failed: {status}");
    workspace().join("target/real/debug")
}

/// Runs one scenario for real; returns its exit code and JSON report.
fn real(bin: &Path, scenario: &str) -> (Option<i32>, serde_json::Value) {
    let out = Command::new(bin.join("sim-real"))
        .current_dir(workspace())
        .args([scenario, "--json", "--bin-dir"])
        .arg(bin)
        .output()
        .expect("sim-real runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "{scenario}: no JSON report ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), report)
}

fn statuses(report: &serde_json::Value) -> Vec<(String, String)> {
    report["checks"]
        .as_array()
        .map(|checks| {
            checks
                .iter()
                .map(|c| (c["kind"].to_string(), c["status"].to_string()))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn split_brain_breaks_total_order_a_quorum_leader_steps_down_a_kv_quorum_fails_and_gossip_splits_across_a_cut_on_real_processes(
) {
    let bin = bin_dir();
    let (split, quorum, kv, gossip) = std::thread::scope(|s| {
        let split = s.spawn(|| real(&bin, "scenarios/teaching/split-brain.toml"));
        let quorum = s.spawn(|| real(&bin, "scenarios/election/leader-isolated-quorum.toml"));
        let kv = s.spawn(|| real(&bin, "scenarios/kv/partition-never-heals-quorum.toml"));
        let gossip = s.spawn(|| real(&bin, "scenarios/kv/gossip-partition-never-heals.toml"));
        (
            split.join().unwrap(),
            quorum.join().unwrap(),
            kv.join().unwrap(),
            gossip.join().unwrap(),
        )
    });
    let (code, report) = split;
    assert_eq!(report["mode"], "real");
    assert_eq!(report["partial"], serde_json::json!([]), "{report}");
    assert_eq!(report["outcome"], "violation", "{report}");
    assert_eq!(
        statuses(&report),
        vec![("\"total_order\"".into(), "\"violation\"".into())]
    );
    assert_eq!((code, &report["verdict"]), (Some(0), &"pass".into()));
    // Two messages at one position, named by the evidence.
    let detail = report["checks"][0]["detail"].as_str().unwrap_or_default();
    assert!(detail.starts_with("seq "), "{detail}");

    let (code, report) = quorum;
    assert_eq!(report["partial"], serde_json::json!([]), "{report}");
    assert_eq!(report["outcome"], "pass", "{report}");
    assert_eq!(statuses(&report).len(), 4);
    assert_eq!((code, &report["verdict"]), (Some(0), &"pass".into()));
    let faults = report["happened"]["faults_applied"].to_string();
    assert!(
        faults.contains("isolate n5"),
        "the leader, n5, is isolated: {faults}"
    );

    // KV, as `sim run` judges it: writes that need three copies fail across the cut
    // (availability and recovers violated, as expected), what is acknowledged is fast.
    let (code, report) = kv;
    assert_eq!(report["partial"], serde_json::json!([]), "{report}");
    assert_eq!(report["outcome"], "violation", "{report}");
    assert_eq!(
        statuses(&report),
        vec![
            ("\"availability\"".into(), "\"violation\"".into()),
            ("\"recovers\"".into(), "\"violation\"".into()),
            ("\"latency\"".into(), "\"pass\"".into()),
        ]
    );
    assert_eq!((code, &report["verdict"]), (Some(0), &"pass".into()));
    let faults = report["happened"]["faults_applied"].to_string();
    assert!(faults.contains("partition n1,n2 | n3,n4,n5"), "{faults}");

    // Gossip, as `sim run` judges it: SWIM's datagrams are cut with the HTTP links, so
    // each side declares the other down and keeps a view of its own to the end.
    let (code, report) = gossip;
    assert_eq!(report["partial"], serde_json::json!([]), "{report}");
    assert_eq!(report["outcome"], "violation", "{report}");
    assert_eq!(
        statuses(&report),
        vec![("\"membership_converged\"".into(), "\"violation\"".into())]
    );
    assert_eq!((code, &report["verdict"]), (Some(0), &"pass".into()));
    let detail = report["checks"][0]["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("live servers are 5: missing"), "{detail}");
}
