//! Real mode: the binaries refuse contradictory or degenerate flags the way `sim validate`
//! refuses such a scenario — a clear message and exit code 2, never a panic, never a node
//! that starts and spins (issue 10 item 10).

mod common;

use common::{free_port, real_binary, scratch_dir};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `binary` with `args`; returns its exit code and stderr, or None if it was still
/// running after 5 s (it accepted the flags and started).
fn run(binary: &str, args: &[String]) -> Option<(i32, String)> {
    let mut child = Command::new(real_binary(binary))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
            }
            return Some((status.code().unwrap_or(-1), stderr));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[test]
fn election_and_chat_nodes_refuse_bad_flags_with_exit_code_2() {
    let dir = scratch_dir("flags");
    let (me, other, client) = (free_port(), free_port(), free_port());
    let base = |extra: &str| -> Vec<String> {
        let mut args = vec![
            "--id=1".to_string(),
            format!("--listen=127.0.0.1:{me}"),
            format!("--data-dir={}", dir.display()),
        ];
        args.extend(extra.split_whitespace().map(str::to_string));
        args
    };
    let cases = [
        ("--heartbeat-interval=0ms".to_string(), "above 0s"),
        ("--election-timeout=0s".to_string(), "above 0s"),
        (
            "--heartbeat-interval=3s --election-timeout=2s".to_string(),
            "shorter than --election-timeout",
        ),
        (format!("--peers=1=127.0.0.1:{other}"), "own id 1"),
        (format!("--peers=2=127.0.0.1:{me}"), "own address"),
        (
            format!("--peers=2=127.0.0.1:{other},2=127.0.0.1:{client}"),
            "id 2 twice",
        ),
    ];
    for binary in ["election-node", "chat-node"] {
        for (flags, expected) in &cases {
            let mut args = base(flags);
            if binary == "chat-node" {
                args.push(format!("--client-listen=127.0.0.1:{client}"));
            }
            match run(binary, &args) {
                Some((code, stderr)) => {
                    assert_eq!(code, 2, "{binary} {flags}: {stderr}");
                    assert!(stderr.contains(expected), "{binary} {flags}: {stderr}");
                    assert!(!stderr.contains("panicked"), "{binary} {flags}: {stderr}");
                }
                None => panic!("{binary} {flags}: accepted and started"),
            }
        }
    }
    let mut args = base("");
    args.push(format!("--client-listen=127.0.0.1:{me}"));
    let refused = run("chat-node", &args);
    assert!(
        matches!(&refused, Some((2, e)) if e.contains("--client-listen")),
        "{refused:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn kv_node_and_registry_refuse_bad_flags_with_exit_code_2() {
    let port = free_port().to_string();
    for (binary, flags, expected) in [
        ("kv-node", "--gossip-interval=0s", "above 0s"),
        ("kv-node", "--registry-heartbeat=0ms", "above 0s"),
        ("kv-node", "--replication-factor=0", "at least 1"),
        (
            "kv-node",
            "--replication-factor=2 --write-quorum=3",
            "cannot exceed",
        ),
        ("kv-node", "--rate-limit=0", "at least 1"),
        ("kv-node", "--backpressure=0", "at least 1"),
        ("kv-node", "--workers=0", "at least 1"),
        ("kv-node", "--workers=many", "at least 1"),
        ("kv-node", "--load-factor=-5", "from 0 to"),
        ("kv-node", "--load-factor=fast", "milliseconds of work"),
        ("kv-node", "--breaker-failures=3", "need --circuit-breaker"),
        (
            "kv-node",
            "--circuit-breaker --breaker-failures=0",
            "at least 1",
        ),
        (
            "kv-node",
            "--circuit-breaker --breaker-cooldown=0s",
            "above 0s",
        ),
        ("registry", "--ttl=0s", "above 0s"),
    ] {
        let mut args = vec![format!("--port={port}")];
        if binary == "kv-node" {
            args.push("--id=node-1".into());
        }
        args.extend(flags.split_whitespace().map(str::to_string));
        match run(binary, &args) {
            Some((code, stderr)) => {
                assert_eq!(code, 2, "{binary} {flags}: {stderr}");
                assert!(stderr.contains(expected), "{binary} {flags}: {stderr}");
                assert!(!stderr.contains("panicked"), "{binary} {flags}: {stderr}");
            }
            None => panic!("{binary} {flags}: accepted and started"),
        }
    }
}

#[test]
fn load_balancer_refuses_bad_flags_with_exit_code_2() {
    let port = free_port();
    for (flags, expected) in [
        (String::new(), "--nodes"),
        ("--nodes=0".to_string(), "port 0"),
        ("--nodes=5001,,5002".to_string(), "empty backend"),
        ("--nodes=localhost:notaport".to_string(), "bad backend"),
        ("--nodes=5001,127.0.0.1:5001".to_string(), "twice"),
        (format!("--nodes=5001,{port}"), "own address"),
        (
            "--nodes=5001 --strategy=random".to_string(),
            "round_robin or least_connections",
        ),
        ("--nodes=5001 --health-interval=0s".to_string(), "above 0s"),
        ("--nodes=5001 --backend-timeout=0ms".to_string(), "above 0s"),
    ] {
        let mut args = vec![format!("--port={port}")];
        args.extend(flags.split_whitespace().map(str::to_string));
        match run("load-balancer", &args) {
            Some((code, stderr)) => {
                assert_eq!(code, 2, "{flags}: {stderr}");
                assert!(stderr.contains(expected), "{flags}: {stderr}");
                assert!(!stderr.contains("panicked"), "{flags}: {stderr}");
            }
            None => panic!("load-balancer {flags}: accepted and started"),
        }
    }
}
