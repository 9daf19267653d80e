//! Real mode under load (issue 10, item 2): 20,000 writes of distinct keys, as fast as
//! eight keep-alive clients can send them, to one node of a fresh three-node cluster.
//! Every replica must end up holding every key once anti-entropy has run, and the peer
//! traffic must reuse its connections: a new connection per replication used to leave
//! ~41,000 sockets in TIME-WAIT, and replicas missed writes that were never repaired.

mod common;

use common::{cluster_key, free_port, kv_cluster, kv_node, real_binary, wait_for, Running};
use std::time::{Duration, Instant};

const WRITES: usize = 20_000;
const CLIENTS: usize = 8;

fn three_nodes(extra: &[&str]) -> (Vec<Running>, Vec<u16>) {
    let (running, ports, _) = kv_cluster(extra);
    (running, ports)
}

fn keys_on(port: u16) -> usize {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(3))
        .build();
    agent
        .get(&format!("http://127.0.0.1:{port}/health"))
        .call()
        .ok()
        .and_then(|r| r.into_json::<serde_json::Value>().ok())
        .and_then(|h| h["keys"].as_u64())
        .unwrap_or(0) as usize
}

/// Sockets in TIME-WAIT whose far end is one of `ports` (the client side of calls to
/// the nodes), from /proc/net/tcp and tcp6.
fn time_wait_towards(ports: &[u16]) -> usize {
    let mut count = 0;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(remote), Some(state)) = (fields.get(2), fields.get(3)) else {
                continue;
            };
            let port = remote
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if *state == "06" && port.is_some_and(|p| ports.contains(&p)) {
                count += 1;
            }
        }
    }
    count
}

#[test]
fn every_replica_holds_every_key_after_a_burst_of_writes() {
    let (_cluster, ports) = three_nodes(&["--gossip-interval=1s"]);
    let before = time_wait_towards(&ports);
    let started = Instant::now();
    let target = ports[0];
    let workers: Vec<_> = (0..CLIENTS)
        .map(|c| {
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new()
                    .timeout(Duration::from_secs(10))
                    .build();
                let mut failed = 0;
                for i in (c..WRITES).step_by(CLIENTS) {
                    let body = format!(r#"{{"key":"load-{i:05}","value":"v{i}"}}"#);
                    let sent = agent
                        .post(&format!("http://127.0.0.1:{target}/data"))
                        .send_string(&body);
                    if sent.is_err() {
                        failed += 1;
                    }
                }
                failed
            })
        })
        .collect();
    let failed: usize = workers
        .into_iter()
        .map(|w| w.join().unwrap_or(WRITES))
        .sum();
    let elapsed = started.elapsed();
    eprintln!(
        "{WRITES} writes in {:.1} s ({:.0}/s), {failed} failed",
        elapsed.as_secs_f64(),
        WRITES as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(failed, 0, "every write is acknowledged");
    let time_wait = time_wait_towards(&ports).saturating_sub(before);
    eprintln!("{time_wait} new sockets in TIME-WAIT towards the nodes");
    assert!(
        time_wait < WRITES / 10,
        "{time_wait} sockets in TIME-WAIT towards the nodes after {WRITES} writes: \
         peer calls do not reuse their connections"
    );
    wait_for(
        "every replica holds every key",
        Duration::from_secs(60),
        || ports.iter().all(|&p| keys_on(p) == WRITES),
    );
}

/// Item 6: a slowloris connection and hundreds of idle sockets. The node closes the
/// slowloris after its header timeout, refuses connections past its cap instead of
/// running out of descriptors, frees idle slots, and keeps serving and heartbeating.
#[test]
fn idle_sockets_and_a_slowloris_do_not_take_a_node_off_the_air() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    let registry_port = free_port();
    let _registry = Running::start(
        "registry",
        &real_binary("registry"),
        &[format!("--port={registry_port}"), "--ttl=2s".into()],
    );
    let port = free_port();
    let _node = kv_node(1, port, registry_port, &["--gossip-interval=1s"]);
    let registered = || {
        ureq::get(&format!("http://127.0.0.1:{registry_port}/nodes"))
            .call()
            .ok()
            .and_then(|r| r.into_string().ok())
            .is_some_and(|text| text.contains("node-1"))
    };
    wait_for("node-1 registered", Duration::from_secs(20), registered);
    let mut slowloris = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    slowloris
        .write_all(b"POST /data HTTP/1.1\r\nHost: x\r\n")
        .expect("first bytes");
    let idle: Vec<TcpStream> = (0..700)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    assert!(idle.len() > 600, "opened {} idle sockets", idle.len());
    // Drip the slowloris a header byte a second; the node must close it.
    let started = Instant::now();
    slowloris
        .set_read_timeout(Some(Duration::from_millis(900)))
        .expect("timeout");
    let mut closed = false;
    while started.elapsed() < Duration::from_secs(25) {
        if slowloris.write_all(b"X").is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 512];
        match slowloris.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(_) => {} // an error answer; the close follows
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    assert!(
        closed,
        "the slowloris connection was still open after {:?}",
        started.elapsed()
    );
    eprintln!("slowloris closed after {:?}", started.elapsed());
    // Idle sockets time out too, so a real client gets a slot again; the node never
    // stopped heartbeating.
    wait_for("a write is served", Duration::from_secs(20), || {
        ureq::post(&format!("http://127.0.0.1:{port}/data"))
            .send_string(r#"{"key":"after","value":"ok"}"#)
            .is_ok()
    });
    assert!(registered(), "node-1 fell out of the registry");
    drop(idle);
}

/// Item 8: a key with reserved characters, read through a node that does not hold it,
/// must be forwarded intact (it used to be sent unencoded: `q?x=1` read key `q`).
#[test]
fn a_forwarded_read_keeps_reserved_characters_in_the_key() {
    // One copy per key and no anti-entropy during the test: only forwarding finds a key.
    let (_cluster, ports) = three_nodes(&[
        "--replication-factor=1",
        "--write-quorum=1",
        "--gossip-interval=10m",
    ]);
    for (key, value) in [("q", "plain"), ("q?x=1", "reserved"), ("a/b#c", "slashes")] {
        let body = serde_json::json!({ "key": key, "value": value }).to_string();
        ureq::post(&format!("http://127.0.0.1:{}/data", ports[0]))
            .send_string(&body)
            .expect("write accepted");
    }
    for (key, encoded, value) in [
        ("q?x=1", "q%3Fx%3D1", "reserved"),
        ("a/b#c", "a%2Fb%23c", "slashes"),
    ] {
        for &port in &ports {
            let answer: serde_json::Value =
                ureq::get(&format!("http://127.0.0.1:{port}/data/{encoded}"))
                    .call()
                    .unwrap_or_else(|e| panic!("GET {key} via {port}: {e}"))
                    .into_json()
                    .expect("JSON");
            assert_eq!(answer["key"], key, "via {port}: {answer}");
            assert_eq!(answer["value"], value, "via {port}: {answer}");
        }
    }
}

/// Item 4 (the overflow half): a replication whose version counter is at the end of its
/// range used to be accepted, and every later write to that key was acknowledged with
/// 200 and thrown away. Absurd counters are refused, even from a peer that holds the
/// cluster key (a buggy one); the key stays writable.
#[test]
fn an_absurd_version_counter_is_refused_and_the_key_stays_writable() {
    let (_cluster, ports) = three_nodes(&["--gossip-interval=1s"]);
    let node = |path: &str| format!("http://127.0.0.1:{}{path}", ports[0]);
    let forged = serde_json::json!({
        "key": "victim",
        "value": "forged",
        "version": { "counter": u64::MAX, "node": "node-9" },
    });
    let body = forged.to_string();
    let mac = nodes::auth::http::sign(&cluster_key(), "POST", "/replicate", body.as_bytes());
    let replicate = ureq::post(&node("/replicate")).set(nodes::auth::http::HEADER, &mac);
    match replicate.send_string(&body) {
        Err(ureq::Error::Status(400, response)) => {
            let body: serde_json::Value = response.into_json().expect("a JSON error");
            assert!(body["error"].is_string(), "{body}");
        }
        other => panic!("a forged u64::MAX version was not refused: {other:?}"),
    }
    let mut context = forged["version"].clone();
    context["counter"] = serde_json::json!(u64::MAX - 1);
    let write = serde_json::json!({ "key": "victim", "value": "real", "context": context });
    assert!(
        matches!(
            ureq::post(&node("/data")).send_string(&write.to_string()),
            Err(ureq::Error::Status(400, _))
        ),
        "an absurd context is refused too"
    );
    ureq::post(&node("/data"))
        .send_string(r#"{"key":"victim","value":"real"}"#)
        .expect("a plain write is accepted");
    let read: serde_json::Value = ureq::get(&node("/data/victim"))
        .call()
        .expect("read")
        .into_json()
        .expect("JSON");
    assert_eq!(read["value"], "real", "{read}");
}
