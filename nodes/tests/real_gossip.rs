//! Real mode, loopback only: seed 003's demo with gossip membership. Node 1 starts alone,
//! nodes 2 and 3 join it with `--join`; every node lists all three in `GET /members` and
//! serves data written through another. Node 3 is killed: the others see it suspect, then
//! down. Restarted, it rejoins under a newer generation. A datagram without the cluster
//! key is refused and reported, and the node keeps serving. Bounded in time.

mod common;

use common::{agent, events_of, free_port, get_json as get, real_binary, wait_for, Running};
use std::time::Duration;

fn gossip_node(id: usize, port: u16, join: Option<u16>) -> Running {
    let mut args = vec![
        format!("--port={port}"),
        format!("--id=node-{id}"),
        "--membership=gossip".into(),
        "--probe-period=300ms".into(),
        "--gossip-interval=500ms".into(),
    ];
    if let Some(join) = join {
        args.push(format!("--join=127.0.0.1:{join}"));
    }
    Running::start(&format!("node-{id}"), &real_binary("kv-node"), &args)
}

/// `node-N` -> (state, generation) in the `/members` of the node on `port`.
fn members(port: u16) -> Vec<(String, String, u64)> {
    let Some(body) = get(&format!("http://127.0.0.1:{port}/members")) else {
        return Vec::new();
    };
    body["members"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    (
                        r["id"].as_str().unwrap_or_default().to_string(),
                        r["state"].as_str().unwrap_or_default().to_string(),
                        r["generation"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn state_of(port: u16, id: &str) -> Option<(String, u64)> {
    members(port)
        .into_iter()
        .find(|(m, _, _)| m == id)
        .map(|(_, s, g)| (s, g))
}

fn all_alive(port: u16) -> bool {
    let rows = members(port);
    rows.len() == 3 && rows.iter().all(|(_, s, _)| s == "alive")
}

#[test]
fn seed_003s_demo_join_fail_and_rejoin_by_gossip() {
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut nodes = vec![gossip_node(1, ports[0], None)];
    wait_for("node 1 alone", Duration::from_secs(20), || {
        members(ports[0]).len() == 1
    });
    nodes.push(gossip_node(2, ports[1], Some(ports[0])));
    nodes.push(gossip_node(3, ports[2], Some(ports[0])));
    wait_for(
        "three alive members everywhere",
        Duration::from_secs(20),
        || ports.iter().all(|&p| all_alive(p)),
    );
    let body = get(&format!("http://127.0.0.1:{}/members", ports[1])).expect("members");
    assert_eq!(body["membership"], "gossip");
    let row = &body["members"][0];
    for field in ["id", "address", "state", "incarnation", "generation"] {
        assert!(!row[field].is_null(), "/members rows have {field}: {row}");
    }

    // Data written through node 2 is readable through node 3.
    let put = agent()
        .post(&format!("http://127.0.0.1:{}/data", ports[1]))
        .send_json(serde_json::json!({ "key": "user:1", "value": "Alice" }));
    assert!(put.is_ok(), "write through node 2: {put:?}");
    wait_for(
        "the write readable on node 3",
        Duration::from_secs(10),
        || {
            get(&format!("http://127.0.0.1:{}/data/user:1", ports[2]))
                .is_some_and(|v| v["value"] == "Alice")
        },
    );

    // Kill node 3: node 1 sees it suspect, then down.
    let (_, first_generation) = state_of(ports[0], "node-3").expect("node 3 known");
    nodes[2].kill();
    let mut seen = Vec::new();
    wait_for("node 3 down on node 1", Duration::from_secs(20), || {
        let state = state_of(ports[0], "node-3").map(|(s, _)| s);
        if let Some(s) = &state {
            if seen.last() != Some(s) {
                seen.push(s.clone());
            }
        }
        state.as_deref() == Some("down")
    });
    assert_eq!(
        seen,
        ["alive", "suspect", "down"],
        "node 1's view of node 3"
    );
    wait_for("node 3 down on node 2", Duration::from_secs(10), || {
        state_of(ports[1], "node-3").is_some_and(|(s, _)| s == "down")
    });

    // Restart it: it rejoins as a newer generation, alive everywhere.
    nodes[2] = gossip_node(3, ports[2], Some(ports[0]));
    wait_for(
        "node 3 rejoined everywhere",
        Duration::from_secs(20),
        || ports.iter().all(|&p| all_alive(p)),
    );
    let (_, generation) = state_of(ports[0], "node-3").expect("node 3 known");
    assert!(
        generation > first_generation,
        "a restart is a new generation"
    );

    // A datagram without the cluster key is refused, reported, and changes nothing.
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    socket
        .send_to(&[0u8; 200], ("127.0.0.1", ports[0]))
        .expect("send");
    wait_for("the refusal reported", Duration::from_secs(10), || {
        events_of(&nodes[0])
            .iter()
            .any(|e| e["event"] == "refused" && e["what"] == "gossip datagram")
    });
    assert!(all_alive(ports[0]), "node 1 still serves its members");
}

/// How many keys the node on `port` holds (`GET /health`).
fn keys_on(port: u16) -> u64 {
    get(&format!("http://127.0.0.1:{port}/health"))
        .and_then(|h| h["keys"].as_u64())
        .unwrap_or(0)
}

/// Writes `count` keys round-robin through the nodes on `ports`, then waits until every
/// key lives on exactly `copies` nodes: hand-off moved each one off the node that took
/// the write but is not its replica.
fn keys_end_on_their_replicas(ports: &[u16], count: usize, copies: u64) {
    for i in 0..count {
        let port = ports[i % ports.len()];
        let put = agent()
            .post(&format!("http://127.0.0.1:{port}/data"))
            .send_json(serde_json::json!({ "key": format!("key-{i}"), "value": "v" }));
        assert!(put.is_ok(), "write key-{i}: {put:?}");
    }
    let mut held = Vec::new();
    wait_for(
        "every key on exactly its replicas",
        Duration::from_secs(20),
        || {
            held = ports.iter().map(|&p| keys_on(p)).collect();
            held.iter().sum::<u64>() == count as u64 * copies
        },
    );
    assert!(
        held.iter().all(|&h| h < count as u64),
        "no node holds every key: {held:?}"
    );
    for i in 0..count {
        for &port in ports {
            let read = get(&format!("http://127.0.0.1:{port}/data/key-{i}"));
            assert!(
                read.is_some_and(|v| v["value"] == "v"),
                "key-{i} via {port}"
            );
        }
    }
}

#[test]
fn keys_live_on_their_replicas_with_gossip_membership() {
    let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
    let _nodes: Vec<Running> = (0..4)
        .map(|i| {
            let mut node = vec![
                format!("--port={}", ports[i]),
                format!("--id=node-{}", i + 1),
                "--membership=gossip".into(),
                "--probe-period=300ms".into(),
                "--gossip-interval=300ms".into(),
                "--replication-factor=2".into(),
            ];
            if i > 0 {
                node.push(format!("--join=127.0.0.1:{}", ports[0]));
            }
            Running::start(&format!("node-{}", i + 1), &real_binary("kv-node"), &node)
        })
        .collect();
    wait_for("four members everywhere", Duration::from_secs(20), || {
        ports.iter().all(|&p| members(p).len() == 4)
    });
    keys_end_on_their_replicas(&ports, 24, 2);
}

#[test]
fn keys_live_on_their_replicas_with_the_registry() {
    let (_running, ports, _) =
        common::kv_cluster(&["--replication-factor=2", "--gossip-interval=300ms"]);
    keys_end_on_their_replicas(&ports, 24, 2);
}
