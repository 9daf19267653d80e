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

/// Three chat nodes with data in `dir`, once every node follows n3: their peer ports,
/// client ports and processes.
fn three_nodes(dir: &std::path::Path) -> (Vec<u16>, Vec<u16>, Vec<Node>) {
    let peer_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let client_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let nodes: Vec<Node> = (1..=3)
        .map(|id| start_node(id, &peer_ports, &client_ports, dir))
        .collect();
    wait_for("every node to follow n3", Duration::from_secs(20), || {
        nodes
            .iter()
            .all(|n| leader_seen_by(n.client_port) == Some(3))
    });
    (peer_ports, client_ports, nodes)
}

#[test]
fn three_real_chat_nodes_order_fail_over_and_catch_up() {
    let dir = scratch_dir("chat");
    let (peer_ports, client_ports, mut nodes) = three_nodes(&dir);

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

/// A one-node cluster (it is its own majority); returns the node and its peer port.
fn start_single(dir: &std::path::Path) -> (Node, u16) {
    let (peer_port, client_port) = (free_port(), free_port());
    let args = vec![
        "--id=1".to_string(),
        format!("--listen=127.0.0.1:{peer_port}"),
        format!("--client-listen=127.0.0.1:{client_port}"),
        "--heartbeat-interval=100ms".into(),
        "--election-timeout=600ms".into(),
        format!("--data-dir={}", dir.display()),
    ];
    let node = Node {
        process: Running::start("n1", &real_binary("chat-node"), &args),
        client_port,
    };
    wait_for("the single node to lead", Duration::from_secs(20), || {
        leader_seen_by(client_port) == Some(1)
    });
    (node, peer_port)
}

/// Sends `n` messages `{prefix}-{k}` pipelined on one connection; returns how many were
/// acknowledged.
fn send_many(port: u16, prefix: &str, n: usize) -> usize {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let mut writer = stream.try_clone().expect("clone");
    let prefix = prefix.to_string();
    let sender = std::thread::spawn(move || {
        let mut out = std::io::BufWriter::new(&mut writer);
        for k in 0..n {
            let request = serde_json::json!({"op": "send", "id": format!("{prefix}-{k}"), "text": format!("text {k}")});
            let _ = writeln!(out, "{request}");
        }
        let _ = out.flush();
    });
    let acked = BufReader::new(stream)
        .lines()
        .take(n)
        .map_while(Result::ok)
        .filter(|l| l.contains("\"ok\":true"))
        .count();
    let _ = sender.join();
    acked
}

/// A subscription's reader: reads delivery lines and returns their (seq, id).
struct Subscription(std::io::Lines<BufReader<TcpStream>>);

impl Subscription {
    fn open(port: u16, from: u64) -> Subscription {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        writeln!(
            stream,
            "{}",
            serde_json::json!({"op": "subscribe", "from": from})
        )
        .expect("subscribe");
        Subscription(BufReader::new(stream).lines())
    }

    fn next(&mut self) -> Option<(u64, String)> {
        let line = self.0.next()?.ok()?;
        let v: serde_json::Value = serde_json::from_str(&line).ok()?;
        Some((v["seq"].as_u64()?, v["id"].as_str()?.to_string()))
    }
}

/// Issue 10 item 7: a backlog far over one subscriber queue (4,096) is streamed whole,
/// then live messages follow; `from` beyond the end is honoured for new messages.
#[test]
fn a_subscriber_gets_a_long_backlog_then_live_messages() {
    // Thousands of synced appends: on tmpfs when there is one (a disk takes ~6 ms each).
    let dir = match std::path::Path::new("/dev/shm") {
        shm if shm.is_dir() => {
            let dir = shm.join(format!("nodes-real-chat-backlog-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("scratch dir");
            dir
        }
        _ => scratch_dir("chat-backlog"),
    };
    let (node, _) = start_single(&dir);
    let backlog = 5000;
    assert_eq!(send_many(node.client_port, "bulk", backlog), backlog);
    let mut all = Subscription::open(node.client_port, 1);
    let mut ahead = Subscription::open(node.client_port, backlog as u64 + 3);
    for seq in 1..=backlog as u64 {
        let got = all.next();
        assert_eq!(got.as_ref().map(|e| e.0), Some(seq), "{got:?}");
    }
    assert_eq!(send_many(node.client_port, "live", 3), 3);
    for seq in backlog as u64 + 1..=backlog as u64 + 3 {
        assert_eq!(all.next().map(|e| e.0), Some(seq));
    }
    assert_eq!(
        ahead.next(),
        Some((backlog as u64 + 3, "live-2".to_string())),
        "a subscriber from #{} must start there",
        backlog + 3
    );
    drop(node);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 10 item 3: a restarted `chat-client` with the same `--name` gets fresh ids, so
/// its new message is delivered, not mistaken for a retry of the old one.
#[test]
fn a_restarted_client_with_the_same_name_is_delivered() {
    let dir = scratch_dir("chat-restart-client");
    let (node, _) = start_single(&dir);
    let first = chat_client(node.client_port, "alice", &["one"]);
    assert!(first.contains("sent #1"), "{first}");
    let second = chat_client(node.client_port, "alice", &["two"]);
    assert!(second.contains("sent #2"), "{second}");
    let stream = stream_of(node.client_port, 2);
    assert_eq!(stream.len(), 2, "{stream:?}");
    assert_ne!(stream[0].1, stream[1].1);
    assert!(stream.iter().all(|(_, id)| id.starts_with("alice-")));
    drop(node);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Writes up to `total` bytes without a newline (after `prefix`) to `port` until the
/// node cuts the connection; returns the bytes written and the node's peak memory (kB).
fn flood(node: &Node, port: u16, prefix: &[u8], total: usize) -> (usize, u64) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.write_all(prefix).expect("prefix");
    let writer = std::thread::spawn(move || {
        let chunk = vec![b'x'; 1 << 20];
        let mut written = 0;
        while written < total {
            match stream.write(&chunk) {
                Ok(n) => written += n,
                Err(_) => break,
            }
        }
        written
    });
    let mut peak = 0;
    while !writer.is_finished() {
        peak = peak.max(node.process.rss_kb().unwrap_or(0));
        std::thread::sleep(Duration::from_millis(5));
    }
    (writer.join().expect("writer"), peak)
}

/// Issue 10 item 5: a line without a newline on the client port or the peer port is cut
/// off at the cap — the node's memory stays bounded — and the node keeps serving.
#[test]
fn a_huge_line_is_refused_and_the_node_keeps_serving() {
    let dir = scratch_dir("chat-huge-line");
    let (node, peer_port) = start_single(&dir);
    let before = node.process.rss_kb().unwrap_or(0);
    let total = 300 << 20;
    for (what, port, prefix) in [
        (
            "client port",
            node.client_port,
            &b"{\"op\":\"send\",\"id\":\""[..],
        ),
        ("peer port, first line", peer_port, &b""[..]),
        ("peer port, after hello", peer_port, &b"{\"hello\":9}\n"[..]),
    ] {
        let (written, peak) = flood(&node, port, prefix, total);
        assert!(written < total, "{what}: all {written} bytes were taken");
        assert!(
            peak < before + 64 * 1024,
            "{what}: memory grew from {before} kB to {peak} kB"
        );
        assert_eq!(leader_seen_by(node.client_port), Some(1), "{what}");
    }
    let sent = chat_client(node.client_port, "after", &["still serving"]);
    assert!(sent.contains("sent #1"), "{sent}");
    drop(node);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 10 item 7: `chat-client --watch` given two nodes moves to the second when the
/// first dies, and the stream goes on without a gap or a repeat.
#[test]
fn watch_reconnects_to_another_node_when_its_node_dies() {
    let dir = scratch_dir("chat-watch");
    let (_, client_ports, mut nodes) = three_nodes(&dir);
    let watcher = Running::start(
        "watcher",
        &real_binary("chat-client"),
        &[
            "--watch".into(),
            format!(
                "--node=127.0.0.1:{},127.0.0.1:{}",
                client_ports[0], client_ports[1]
            ),
        ],
    );
    let sent = chat_client(client_ports[1], "bob", &["one"]);
    assert!(sent.contains("sent #1"), "{sent}");
    wait_for("the watcher to print #1", Duration::from_secs(10), || {
        watcher.lines().iter().any(|l| l.starts_with("#1 "))
    });
    nodes[0].process.kill();
    let sent = chat_client(client_ports[1], "bob", &["two"]);
    assert!(sent.contains("sent #2"), "{sent}");
    wait_for("the watcher to print #2", Duration::from_secs(10), || {
        watcher.lines().iter().any(|l| l.starts_with("#2 "))
    });
    let lines = watcher.lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
