//! Real mode, loopback only: three `election-node` processes elect the highest id; killing
//! it makes the next one leader. Bounded in time.

mod common;

use common::{free_port, real_binary, scratch_dir, wait_for, Running};
use std::time::Duration;

fn leads(node: &Running) -> Option<u64> {
    node.lines().iter().rev().find_map(|line| {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        let data = &v["data"];
        (data["event"] == "role").then(|| {
            if data["role"] == "leader" {
                data["term"].as_u64()
            } else {
                None
            }
        })?
    })
}

#[test]
fn three_real_nodes_elect_the_highest_id_and_fail_over_when_it_dies() {
    let binary = real_binary("election-node");
    let dir = scratch_dir("election");
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let address = |i: usize| format!("127.0.0.1:{}", ports[i - 1]);
    let mut nodes: Vec<Running> = (1..=3)
        .map(|id| {
            let peers: Vec<String> = (1..=3)
                .filter(|&p| p != id)
                .map(|p| format!("{p}={}", address(p)))
                .collect();
            let args = vec![
                format!("--id={id}"),
                format!("--listen={}", address(id)),
                format!("--peers={}", peers.join(",")),
                "--heartbeat-interval=100ms".into(),
                "--election-timeout=500ms".into(),
                format!("--data-dir={}", dir.display()),
            ];
            Running::start(&format!("n{id}"), &binary, &args)
        })
        .collect();
    wait_for("n3 to lead", Duration::from_secs(20), || {
        leads(&nodes[2]).is_some()
    });
    let first_term = leads(&nodes[2]).unwrap_or(0);
    assert_eq!(leads(&nodes[0]), None);
    assert_eq!(leads(&nodes[1]), None);
    nodes[2].kill();
    wait_for("n2 to take over", Duration::from_secs(20), || {
        leads(&nodes[1]).is_some()
    });
    let second_term = leads(&nodes[1]).unwrap_or(0);
    assert!(
        second_term > first_term,
        "terms {first_term} then {second_term}"
    );
    assert_eq!(leads(&nodes[0]), None);
    let _ = std::fs::remove_dir_all(&dir);
}
