//! Real mode, loopback only: seed 001's middleware on real kv-nodes. The seed's
//! rate-limit curl loop (three 200s, then 429s with a JSON body and `Retry-After`; another
//! client unaffected), backpressure refusing the requests past its limit at once while
//! `/queue-stats` shows the queue, a breaker cycling CLOSED → OPEN → HALF_OPEN → CLOSED
//! around a peer stopped with SIGSTOP (with no acknowledged write lost), and
//! `/discovery-status`.

mod common;

use common::{
    events_of, free_port, kv_cluster, kv_cluster_with_ttl, real_binary, wait_for, Running,
};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

/// One answer: status, headers (lower-case names), body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One request on a fresh connection from source address `from` (as curl makes one per
/// run): a client is its address, and all of 127.0.0.0/8 is loopback.
fn request(from: Ipv4Addr, port: u16, method: &str, path: &str, body: &str) -> Answer {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    socket
        .bind(&SocketAddr::from((from, 0)).into())
        .expect("bind the source address");
    let to = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    socket.connect(&to.into()).expect("connect");
    let mut stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("send");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("read the answer");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {raw:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_lowercase(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_string(),
    }
}

const CLIENT_A: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const CLIENT_B: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

fn kv_node(port: u16, extra: &[&str]) -> Running {
    let mut args = vec![format!("--port={port}"), "--id=node-1".into()];
    args.extend(extra.iter().map(|a| a.to_string()));
    let node = Running::start("node-1", &real_binary("kv-node"), &args);
    wait_for("node-1 answers", Duration::from_secs(20), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    node
}

fn get_json(port: u16, path: &str) -> serde_json::Value {
    request(CLIENT_B, port, "GET", path, "").json()
}

/// `kv-node --port 5001 --id node-1 --rate-limit 3`, then
/// `for i in {1..10}; do curl -s -o /dev/null -w "%{http_code}\n" localhost:5001/health; done`.
#[test]
fn the_seeds_rate_limit_loop_prints_three_200s_then_429s_for_that_client_only() {
    let port = free_port();
    let _node = kv_node(port, &["--rate-limit=3"]);
    let answers: Vec<Answer> = (0..10)
        .map(|_| request(CLIENT_A, port, "GET", "/health", ""))
        .collect();
    let codes: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!(codes, [200, 200, 200, 429, 429, 429, 429, 429, 429, 429]);
    let refused = &answers[3];
    assert!(
        refused.json()["error"]
            .as_str()
            .is_some_and(|e| e.contains("rate limit exceeded")),
        "{}",
        refused.body
    );
    assert_eq!(refused.header("content-type"), Some("application/json"));
    let retry_after: u64 = refused
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After in whole seconds");
    assert!(retry_after >= 1, "{retry_after}");
    // Asking for one node's copy, as peers do, does not get a client past the limit.
    let local = request(CLIENT_A, port, "GET", "/data/k?local=true", "");
    assert_eq!(local.status, 429, "{}", local.body);
    // Another client has a bucket of its own.
    let other: Vec<u16> = (0..3)
        .map(|_| request(CLIENT_B, port, "GET", "/health", "").status)
        .collect();
    assert_eq!(other, [200, 200, 200]);
    // And the first gets a token back a third of a second later.
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(request(CLIENT_A, port, "GET", "/health", "").status, 200);
    let stats = request(CLIENT_A, port, "GET", "/queue-stats", "");
    assert_eq!(
        stats.status, 429,
        "the status pages count against the limit too"
    );
}

/// `--backpressure 2 --workers 1 --load-factor 600`: two writes in flight (one working,
/// one queued for the worker); three more are refused at once; `/queue-stats` shows it.
#[test]
fn backpressure_refuses_the_requests_past_its_limit_at_once() {
    let port = free_port();
    let _node = kv_node(
        port,
        &["--backpressure=2", "--workers=1", "--load-factor=600"],
    );
    let write = move |i: usize| {
        let started = Instant::now();
        let body = format!(r#"{{"key":"k{i}","value":"v{i}"}}"#);
        let answer = request(CLIENT_A, port, "POST", "/data", &body);
        (answer.status, started.elapsed(), answer.body)
    };
    let admitted: Vec<_> = (0..2)
        .map(|i| std::thread::spawn(move || write(i)))
        .collect();
    wait_for("two writes in flight", Duration::from_secs(5), || {
        get_json(port, "/queue-stats")["in_flight"] == 2
    });
    let stats = get_json(port, "/queue-stats");
    assert_eq!(stats["backpressure"]["limit"], 2, "{stats}");
    assert_eq!(stats["capacity"]["workers"], 1, "{stats}");
    assert_eq!(stats["capacity"]["busy"], 1, "{stats}");
    assert_eq!(stats["capacity"]["queued"], 1, "{stats}");
    assert_eq!(stats["capacity"]["load_factor_ms"], 600.0, "{stats}");
    let extra: Vec<_> = (2..5)
        .map(|i| std::thread::spawn(move || write(i)))
        .collect();
    for refused in extra {
        let (status, took, body) = refused.join().expect("the request thread");
        assert_eq!(status, 429, "{body}");
        assert!(body.contains("overloaded"), "{body}");
        assert!(took < Duration::from_millis(300), "refused after {took:?}");
    }
    let mut took: Vec<Duration> = admitted
        .into_iter()
        .map(|w| {
            let (status, took, body) = w.join().expect("the request thread");
            assert_eq!(status, 200, "{body}");
            took
        })
        .collect();
    took.sort();
    assert!(took[0] >= Duration::from_millis(600), "{took:?}");
    assert!(
        took[1] >= Duration::from_millis(1200),
        "{took:?}: the second waited for the worker"
    );
    let stats = get_json(port, "/queue-stats");
    assert_eq!(stats["backpressure"]["admitted"], 2, "{stats}");
    assert_eq!(stats["backpressure"]["rejected"], 3, "{stats}");
    assert_eq!(stats["backpressure"]["peak_in_flight"], 2, "{stats}");
    assert_eq!(stats["in_flight"], 0, "{stats}");
    assert_eq!(stats["capacity"]["served"], 2, "{stats}");
}

fn signal(node: &Running, name: &str) {
    let pid = node.pid().to_string();
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{name} {pid}");
}

/// The breaker transitions `node` printed about `peer`, in order.
fn transitions(node: &Running, peer: &str) -> Vec<(String, String)> {
    events_of(node)
        .iter()
        .filter(|d| d["event"] == "breaker" && d["peer"] == peer)
        .map(|d| {
            let state = |s: &serde_json::Value| s.as_str().unwrap_or_default().to_string();
            (state(&d["from"]), state(&d["to"]))
        })
        .collect()
}

/// Three nodes with breakers (3 failures, 2 s cooldown); node-3 stopped with SIGSTOP.
/// Writes to node-1 keep being acknowledged (write quorum 1) while its breaker on node-3
/// opens after three timed-out replications, probes after the cooldown (and opens again,
/// node-3 still being stopped), and closes once node-3 runs again. Every write acknowledged
/// meanwhile reaches node-3 by anti-entropy.
#[test]
fn a_breaker_opens_on_a_stopped_peer_probes_and_closes_when_it_runs_again() {
    // A long registry TTL keeps node-3 a member while it is stopped, so node-1 keeps
    // calling it (the breaker, not the registry, is what stops the calls).
    let (cluster, ports, _) = kv_cluster_with_ttl(
        "60s",
        &[
            "--circuit-breaker",
            "--breaker-failures=3",
            "--breaker-cooldown=2s",
            "--gossip-interval=500ms",
        ],
    );
    let (node1, node3) = (&cluster[1], &cluster[3]);
    let status = || get_json(ports[0], "/circuit-status");
    assert_eq!(
        status()["peers"]["node-3"]["state"],
        "CLOSED",
        "{}",
        status()
    );
    signal(node3, "STOP");
    let mut acked = Vec::new();
    let mut write = |i: usize| {
        let body = format!(r#"{{"key":"b{i}","value":"v{i}"}}"#);
        let answer = request(CLIENT_A, ports[0], "POST", "/data", &body);
        assert_eq!(answer.status, 200, "write {i}: {}", answer.body);
        acked.push(format!("b{i}"));
    };
    let mut i = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while status()["peers"]["node-3"]["state"] != "OPEN" {
        assert!(Instant::now() < deadline, "never opened: {}", status());
        write(i);
        i += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let open = status();
    assert!(
        open["peers"]["node-3"]["failures"].as_u64() >= Some(3),
        "{open}"
    );
    assert_eq!(
        open["peers"]["node-3"]["last_transition"]["from"], "CLOSED",
        "{open}"
    );
    assert_eq!(open["peers"]["node-2"]["state"], "CLOSED", "{open}");
    // While open, writes are still acknowledged, and at once (the call is refused).
    let started = Instant::now();
    write(i);
    i += 1;
    assert!(started.elapsed() < Duration::from_millis(500));
    // After the cooldown the next call is the half-open probe; node-3 is still stopped.
    wait_for("a half-open probe", Duration::from_secs(20), || {
        write(i);
        i += 1;
        std::thread::sleep(Duration::from_millis(200));
        transitions(node1, "node-3").contains(&("OPEN".into(), "HALF_OPEN".into()))
    });
    signal(node3, "CONT");
    wait_for(
        "node-1's breaker on node-3 closed",
        Duration::from_secs(30),
        || {
            write(i);
            i += 1;
            std::thread::sleep(Duration::from_millis(200));
            status()["peers"]["node-3"]["state"] == "CLOSED"
        },
    );
    let closed = status();
    assert_eq!(closed["peers"]["node-3"]["failures"], 0, "{closed}");
    assert_eq!(
        closed["peers"]["node-3"]["last_transition"]["from"], "HALF_OPEN",
        "{closed}"
    );
    let seen = transitions(node1, "node-3");
    let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(seen.first(), Some(&pair("CLOSED", "OPEN")), "{seen:?}");
    assert_eq!(seen.last(), Some(&pair("HALF_OPEN", "CLOSED")), "{seen:?}");
    assert!(seen.contains(&pair("OPEN", "HALF_OPEN")), "{seen:?}");
    // No acknowledged write is lost: anti-entropy brings every one to node-3.
    wait_for(
        "every acknowledged write on node-3",
        Duration::from_secs(30),
        || {
            acked.iter().all(|key| {
                request(
                    CLIENT_B,
                    ports[2],
                    "GET",
                    &format!("/data/{key}?local=true"),
                    "",
                )
                .status
                    == 200
            })
        },
    );
}

#[test]
fn discovery_status_shows_the_registry_the_last_heartbeat_and_the_members() {
    let (_cluster, ports, _) = kv_cluster(&[]);
    wait_for("a heartbeat", Duration::from_secs(10), || {
        !get_json(ports[0], "/discovery-status")["last_heartbeat"].is_null()
    });
    let status = get_json(ports[0], "/discovery-status");
    assert_eq!(status["enabled"], true, "{status}");
    assert_eq!(status["registered"], true, "{status}");
    assert!(
        status["registry"]
            .as_str()
            .is_some_and(|r| r.starts_with("http://127.0.0.1:")),
        "{status}"
    );
    assert!(
        status["last_heartbeat"]["ago_ms"].as_u64() < Some(3000),
        "{status}"
    );
    assert!(status["last_error"].is_null(), "{status}");
    let ids: Vec<&str> = status["members"]
        .as_array()
        .map(|m| m.iter().filter_map(|m| m["id"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(ids, ["node-1", "node-2", "node-3"], "{status}");
    let peers = get_json(ports[0], "/peers");
    assert_eq!(peers["peers"].as_array().map(Vec::len), Some(2), "{peers}");
    // Without --registry: discovery is off and says so.
    let alone = free_port();
    let _node = kv_node(alone, &[]);
    let status = get_json(alone, "/discovery-status");
    assert_eq!(
        (status["enabled"].clone(), status["registry"].clone()),
        (false.into(), serde_json::Value::Null)
    );
}
