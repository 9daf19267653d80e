//! Real mode, loopback only (issue 10, item 4): peer and internal traffic needs the
//! cluster key. One line to a peer port used to crown a leader of term 2^64-1 for good, a
//! forged DELIVER broke total order, a forged `/replicate` planted a version and a forged
//! `/register` redirected a node's traffic. Each is refused now, logged as a `refused`
//! event, and the cluster carries on. The nodes share the per-user key file the first of
//! them created (see `common::test_home`), as the seeds' commands do on one machine.

mod common;

use common::{
    cluster_key, events_of, free_port, kv_cluster, kv_node, real_binary, scratch_dir, wait_for,
    Running,
};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Three peer processes of `binary` (election-node or chat-node) on loopback.
fn three_peers(binary: &str, dir: &std::path::Path) -> (Vec<Running>, Vec<u16>) {
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let nodes = (1..=3usize)
        .map(|id| {
            let peers: Vec<String> = (1..=3)
                .filter(|&p| p != id)
                .map(|p| format!("{p}=127.0.0.1:{}", ports[p - 1]))
                .collect();
            let mut args = vec![
                format!("--id={id}"),
                format!("--listen=127.0.0.1:{}", ports[id - 1]),
                format!("--peers={}", peers.join(",")),
                "--heartbeat-interval=100ms".into(),
                "--election-timeout=600ms".into(),
                format!("--data-dir={}", dir.display()),
            ];
            if binary == "chat-node" {
                args.push(format!("--client-listen=127.0.0.1:{}", free_port()));
            }
            Running::start(&format!("n{id}"), &real_binary(binary), &args)
        })
        .collect();
    (nodes, ports)
}

/// The term `node` last said it leads, if its last role event is leader.
fn leads(node: &Running) -> Option<u64> {
    let events = events_of(node);
    let last = events.iter().rev().find(|e| e["event"] == "role")?;
    (last["role"] == "leader").then(|| last["term"].as_u64())?
}

fn highest_term(node: &Running) -> u64 {
    events_of(node)
        .iter()
        .filter_map(|e| e["term"].as_u64())
        .max()
        .unwrap_or(0)
}

fn refusals(node: &Running) -> Vec<String> {
    events_of(node)
        .iter()
        .filter(|e| e["event"] == "refused")
        .map(|e| {
            let field = |name: &str| e[name].as_str().unwrap_or("?").to_string();
            format!("{} {}: {}", field("peer"), field("what"), field("reason"))
        })
        .collect()
}

/// What an attacker sees on a peer port: connects, sends `lines` without waiting (the old,
/// unauthenticated protocol), and returns everything the node sent back before closing.
fn forge_on_peer_port(port: u16, lines: &[String]) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    for line in lines {
        let _ = stream.write_all(format!("{line}\n").as_bytes());
    }
    // The challenge line first: whatever happens to the connection after it, it arrived.
    let mut reader = BufReader::new(stream);
    let mut answer = String::new();
    let _ = reader.read_line(&mut answer);
    let mut rest = String::new();
    let _ = reader.read_to_string(&mut rest);
    answer + &rest
}

/// An attacker that plays the handshake, with a MAC made from a key it guessed.
fn forge_with_a_guessed_key(port: u16, me: u64, message: &str) -> String {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut challenge = String::new();
    reader.read_line(&mut challenge).expect("a challenge line");
    let challenge: serde_json::Value = serde_json::from_str(&challenge).expect("JSON");
    let guessed = nodes::auth::ClusterKey::derived("guessed");
    let mac = guessed.sign(
        "simnode peer hello",
        &[
            challenge["challenge"].as_str().unwrap_or("").as_bytes(),
            me.to_string().as_bytes(),
        ],
    );
    // A hello in the current form (with a challenge of its own), so what refuses it is
    // the MAC, not the shape.
    let hello = serde_json::json!({ "hello": me, "mac": mac, "challenge": "00" });
    let mut writer = stream;
    let _ = writer.write_all(format!("{hello}\n{message}\n").as_bytes());
    let mut rest = String::new();
    let _ = reader.read_to_string(&mut rest);
    rest
}

#[test]
fn a_forged_grant_on_a_peer_port_is_refused_and_the_leader_keeps_its_term() {
    let dir = scratch_dir("auth-election");
    let (nodes, ports) = three_peers("election-node", &dir);
    wait_for("n3 to lead", Duration::from_secs(20), || {
        leads(&nodes[2]).is_some()
    });
    let term = leads(&nodes[2]).unwrap_or(0);
    let max = u64::MAX;
    // The issue's reproduction, verbatim: a hello, then a GRANT of the last term.
    let answer = forge_on_peer_port(
        ports[0],
        &[
            r#"{"hello":1}"#.into(),
            format!(r#"{{"type":"GRANT","from":1,"term":{max},"granted":true}}"#),
            format!(r#"{{"type":"COORDINATOR","from":9,"term":{max},"sent_at":0}}"#),
        ],
    );
    assert!(answer.contains("challenge"), "no challenge: {answer:?}");
    let coordinator = format!(r#"{{"type":"COORDINATOR","from":3,"term":{max},"sent_at":0}}"#);
    assert_eq!(forge_with_a_guessed_key(ports[1], 3, &coordinator), "");
    wait_for("both refusals logged", Duration::from_secs(10), || {
        refusals(&nodes[0]).len() == 1 && refusals(&nodes[1]).len() == 1
    });
    assert!(
        refusals(&nodes[0])[0].ends_with("not a hello"),
        "{:?}",
        refusals(&nodes[0])
    );
    assert!(
        refusals(&nodes[1])[0].ends_with("bad cluster MAC"),
        "{:?}",
        refusals(&nodes[1])
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(leads(&nodes[2]), Some(term), "n3 still leads its term");
    for node in &nodes {
        assert!(
            highest_term(node) < 1_000,
            "{} reached term {}",
            node.name,
            highest_term(node)
        );
    }
}

#[test]
fn a_forged_deliver_on_a_chat_peer_port_is_never_delivered() {
    let dir = scratch_dir("auth-chat");
    let (nodes, ports) = three_peers("chat-node", &dir);
    wait_for("n3 to lead", Duration::from_secs(20), || {
        leads(&nodes[2]).is_some()
    });
    let term = leads(&nodes[2]).unwrap_or(1);
    let chat = format!(
        r#"{{"chat":{{"type":"DELIVER","from":3,"term":{term},"entries":[{{"seq":1,"term":{term},"id":"forged-1","text":"pwned"}}]}}}}"#
    );
    forge_on_peer_port(ports[0], &[r#"{"hello":3}"#.into(), chat.clone()]);
    forge_with_a_guessed_key(ports[1], 3, &chat);
    wait_for("both refusals logged", Duration::from_secs(10), || {
        refusals(&nodes[0]).len() == 1 && refusals(&nodes[1]).len() == 1
    });
    std::thread::sleep(Duration::from_secs(1));
    for node in &nodes {
        let forged = events_of(node)
            .iter()
            .any(|e| e["event"] == "delivered" && e["id"] == "forged-1");
        assert!(!forged, "{} delivered the forged message", node.name);
    }
    assert_eq!(leads(&nodes[2]), Some(term), "n3 still leads its term");
}

fn post(url: &str, body: &str, mac: Option<&str>) -> (u16, serde_json::Value) {
    let mut request = ureq::post(url);
    if let Some(mac) = mac {
        request = request.set(nodes::auth::http::HEADER, mac);
    }
    match request.send_string(body) {
        Ok(response) => (response.status(), response.into_json().unwrap_or_default()),
        Err(ureq::Error::Status(code, response)) => {
            (code, response.into_json().unwrap_or_default())
        }
        Err(e) => panic!("{url}: {e}"),
    }
}

fn members(registry: u16) -> serde_json::Value {
    ureq::get(&format!("http://127.0.0.1:{registry}/nodes"))
        .call()
        .expect("the registry answers")
        .into_json()
        .expect("JSON")
}

#[test]
fn internal_kv_routes_and_the_registry_refuse_calls_without_the_key() {
    let (cluster, ports, registry) = kv_cluster(&[]);
    let node = |path: &str| format!("http://127.0.0.1:{}{path}", ports[0]);
    let forged = serde_json::json!({
        "key": "victim",
        "value": "forged",
        "version": { "counter": 5, "node": "node-9" },
    })
    .to_string();
    let guessed = nodes::auth::ClusterKey::derived("guessed");
    let wrong = nodes::auth::http::sign(&guessed, "POST", "/replicate", forged.as_bytes());
    for (path, body, mac) in [
        ("/replicate", forged.as_str(), None),
        ("/replicate", forged.as_str(), Some(wrong.as_str())),
        ("/gossip", r#"{"after":null,"digest":[]}"#, None),
        ("/gossip/items", r#"{"items":[]}"#, None),
    ] {
        let (status, body) = post(&node(path), body, mac);
        assert_eq!(status, 401, "{path}: {body}");
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|e| e.contains("cluster")),
            "{body}"
        );
    }
    assert!(
        ureq::get(&node("/data/victim?local=true")).call().is_err(),
        "the forged item was stored"
    );
    // The registry: nobody without the key may move node-1 to an address of theirs.
    let hijack = r#"{"id":"node-1","address":"127.0.0.1:1"}"#;
    let url = |path: &str| format!("http://127.0.0.1:{registry}{path}");
    let (status, _) = post(&url("/register"), hijack, None);
    assert_eq!(status, 401);
    let (status, _) = post(&url("/deregister"), r#"{"id":"node-2"}"#, None);
    assert_eq!(status, 401);
    let listed = members(registry).to_string();
    assert!(!listed.contains("127.0.0.1:1\""), "{listed}");
    assert!(listed.contains("node-2"), "{listed}");
    wait_for("the refusals logged", Duration::from_secs(5), || {
        refusals(&cluster[1]).len() == 4 && refusals(&cluster[0]).len() == 2
    });
    // A peer with the key gets through: the guard is not a wall.
    let mac = nodes::auth::http::sign(&cluster_key(), "POST", "/replicate", forged.as_bytes());
    let (status, body) = post(&node("/replicate"), &forged, Some(&mac));
    assert_eq!(status, 200, "{body}");
}

#[test]
fn a_node_with_another_key_cannot_join_and_a_bad_key_file_is_a_clear_error() {
    let (cluster, ports, registry) = kv_cluster(&[]);
    let dir = scratch_dir("auth-key");
    let other = dir.join("other-key");
    std::fs::write(&other, "a different secret, long enough\n").expect("write");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let private = std::fs::Permissions::from_mode(0o600);
        std::fs::set_permissions(&other, private).expect("chmod");
    }
    let port = free_port();
    let flag = format!("--cluster-key-file={}", other.display());
    let _outsider = kv_node(4, port, registry, &[&flag]);
    wait_for(
        "the registry to refuse node-4",
        Duration::from_secs(10),
        || {
            refusals(&cluster[0])
                .iter()
                .any(|r| r.contains("/register"))
        },
    );
    assert!(!members(registry).to_string().contains("node-4"));
    assert_eq!(common::peers_of(ports[0]), 2, "node-1 still sees two peers");
    // A key file others can read is refused at start, with what to do about it.
    let open = dir.join("open-key");
    std::fs::write(&open, "a secret anyone on the host can read\n").expect("write");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let open_mode = std::fs::Permissions::from_mode(0o644);
        std::fs::set_permissions(&open, open_mode).expect("chmod");
        let output = std::process::Command::new(real_binary("registry"))
            .args([
                format!("--port={}", free_port()),
                format!("--cluster-key-file={}", open.display()),
            ])
            .output()
            .expect("runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("chmod 600"), "{stderr}");
    }
}
