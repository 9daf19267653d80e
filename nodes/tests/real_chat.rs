//! Real mode, loopback only: a 3-node chat cluster shows the same ordered stream on every
//! node; killing the leader continues the sequence; a restarted node catches up. The
//! terminal client `chat-client` does the sending. Bounded in time.

mod common;

use common::{free_port, real_binary, scratch_dir, wait_for, Running};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

/// One request/response on a node's client port.
fn ask(port: u16, request: &str) -> Option<serde_json::Value> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.write_all(format!("{request}\n").as_bytes()).ok()?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).ok()?;
    serde_json::from_str(&line).ok()
}

fn leader_seen_by(port: u16) -> Option<u64> {
    ask(port, r#"{"op":"status"}"#)?.get("leader")?.as_u64()
}

/// The delivered stream of a node: (seq, id) in order, read until `count` or timeout.
fn stream_of(port: u16, count: usize) -> Vec<(u64, String)> {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return Vec::new();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(3)));
    let _ = stream.write_all(b"{\"op\":\"subscribe\",\"from\":1}\n");
    let mut out = Vec::new();
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { break };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            break;
        };
        out.push((
            v["seq"].as_u64().unwrap_or(0),
            v["id"].as_str().unwrap_or("").to_string(),
        ));
        if out.len() >= count {
            break;
        }
    }
    out
}

/// Sends lines through the real terminal client and returns what it confirmed.
fn chat_client(port: u16, name: &str, lines: &[&str]) -> String {
    let mut child = Command::new(real_binary("chat-client"))
        .args([
            format!("--node=127.0.0.1:{port}"),
            format!("--name={name}"),
            "--give-up-after=15s".into(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chat-client starts");
    if let Some(mut stdin) = child.stdin.take() {
        for line in lines {
            let _ = writeln!(stdin, "{line}");
        }
    } // stdin closed: the client sends what it read, then only streams
    let stderr = child.stderr.take().expect("stderr");
    let mut confirmations = String::new();
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        confirmations.push_str(&line);
        confirmations.push('\n');
        if confirmations.lines().count() >= lines.len() {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    confirmations
}

struct Node {
    process: Running,
    client_port: u16,
}

fn start_node(id: u64, peer_ports: &[u16], client_ports: &[u16], dir: &std::path::Path) -> Node {
    let peers: Vec<String> = (1..=3u64)
        .filter(|&p| p != id)
        .map(|p| format!("{p}=127.0.0.1:{}", peer_ports[p as usize - 1]))
        .collect();
    let args = vec![
        format!("--id={id}"),
        format!("--listen=127.0.0.1:{}", peer_ports[id as usize - 1]),
        format!(
            "--client-listen=127.0.0.1:{}",
            client_ports[id as usize - 1]
        ),
        format!("--peers={}", peers.join(",")),
        "--heartbeat-interval=100ms".into(),
        "--election-timeout=600ms".into(),
        format!("--data-dir={}", dir.display()),
    ];
    Node {
        process: Running::start(&format!("n{id}"), &real_binary("chat-node"), &args),
        client_port: client_ports[id as usize - 1],
    }
}

#[test]
fn three_real_chat_nodes_order_fail_over_and_catch_up() {
    let dir = scratch_dir("chat");
    let peer_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let client_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut nodes: Vec<Node> = (1..=3)
        .map(|id| start_node(id, &peer_ports, &client_ports, &dir))
        .collect();
    wait_for("every node to follow n3", Duration::from_secs(20), || {
        nodes
            .iter()
            .all(|n| leader_seen_by(n.client_port) == Some(3))
    });

    // Same ordered output on every node.
    let sent = chat_client(
        nodes[0].client_port,
        "alice",
        &["one", "two", "three", "four", "five"],
    );
    assert_eq!(sent.matches("sent #").count(), 5, "{sent}");
    let reference = stream_of(nodes[0].client_port, 5);
    assert_eq!(
        reference.iter().map(|e| e.0).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    for node in &nodes[1..] {
        assert_eq!(stream_of(node.client_port, 5), reference);
    }

    // Kill the leader: the sequence continues under n2.
    nodes[2].process.kill();
    wait_for("n1 and n2 to follow n2", Duration::from_secs(20), || {
        leader_seen_by(nodes[0].client_port) == Some(2)
            && leader_seen_by(nodes[1].client_port) == Some(2)
    });
    let sent = chat_client(nodes[1].client_port, "bob", &["six", "seven"]);
    assert!(
        sent.contains("sent #6") && sent.contains("sent #7"),
        "{sent}"
    );
    let after = stream_of(nodes[0].client_port, 7);
    assert_eq!(&after[..5], &reference[..]);
    assert_eq!(after.len(), 7);

    // Restart n3: it recovers its log and catches up with what it missed.
    nodes[2] = start_node(3, &peer_ports, &client_ports, &dir);
    wait_for("n3 to catch up", Duration::from_secs(20), || {
        stream_of(nodes[2].client_port, 7) == after
    });
    let _ = std::fs::remove_dir_all(&dir);
}
