//! KV timers run on the node's clock: drift reaches them as it reaches the election's.

use sim::history::What;
use sim::run::run_scenario;
use sim::scenario::parse;

/// n1's clock runs at a quarter of true speed from the start: its registry heartbeat
/// (2 s on its clock) comes every 8 s of true time, past the registry's 6 s TTL, so the
/// registry keeps dropping n1 and n1 keeps registering again. With the heartbeat on
/// true time, n1 would never be dropped.
const SLOW_N1: &str = r#"
name = "kv-slow-clock-heartbeat"
system = "kv"
nodes = 3
duration = "60s"

[[fault]]
at = "0s"
action = "skew"
node = "n1"
drift = -0.75

[[check]]
kind = "converged"
"#;

/// The registry's member lists over time (simulated ns, members).
fn registry_views(text: &str) -> Vec<(u64, Vec<String>)> {
    let scenario = parse("kv-clock.toml", text).unwrap();
    let finished = run_scenario(&scenario, "kv-clock.toml", 1).unwrap();
    finished
        .history
        .iter()
        .filter(|e| e.node == "registry")
        .filter_map(|e| match &e.what {
            What::Event {
                data: nodes::runtime::NodeEvent::Members { members },
            } => Some((e.t, members.clone())),
            _ => None,
        })
        .collect()
}

fn drops_of_n1(views: &[(u64, Vec<String>)]) -> usize {
    views
        .windows(2)
        .filter(|w| w[0].1.contains(&"n1".into()) && !w[1].1.contains(&"n1".into()))
        .count()
}

#[test]
fn a_slow_kv_node_heartbeats_at_its_own_rate_and_is_dropped_by_the_ttl() {
    let views = registry_views(SLOW_N1);
    let drops = drops_of_n1(&views);
    // 60 s of true time, a heartbeat every 8 s, the TTL at 6 s: dropped nearly every beat.
    assert!(drops >= 4, "n1 dropped {drops} times: {views:?}");
    // The healthy nodes, whose clocks are true, are never dropped.
    let n2_dropped = views
        .windows(2)
        .any(|w| w[0].1.contains(&"n2".into()) && !w[1].1.contains(&"n2".into()));
    assert!(!n2_dropped, "{views:?}");
}

#[test]
fn without_drift_no_node_is_dropped() {
    let steady = SLOW_N1.replace("drift = -0.75", "drift = 0.0");
    assert_ne!(steady, SLOW_N1);
    assert_eq!(drops_of_n1(&registry_views(&steady)), 0);
}

/// n1's clock runs 5x fast: its 1 s peer timeout lasts 200 ms of true time, shorter than
/// a replication call on this slow network (connect plus exchange, 100-150 ms each way),
/// so n1 cannot gather the write quorum of 3 while n2 and n3, on true clocks, can.
const FAST_N1: &str = r#"
name = "kv-fast-clock-peer-timeout"
system = "kv"
nodes = 3
duration = "40s"

[network]
latency = ["100ms", "150ms"]

[config]
write_quorum = 3

[workload]
clients = 1
ops = 60
rate = "2/s"

[[fault]]
at = "0s"
action = "skew"
node = "n1"
drift = 4.0

[[check]]
kind = "converged"
"#;

#[test]
fn a_fast_kv_node_times_its_peer_calls_out_on_its_own_clock() {
    let scenario = parse("kv-fast.toml", FAST_N1).unwrap();
    let history = run_scenario(&scenario, "kv-fast.toml", 1).unwrap().history;
    let acked_via = |server: &str| {
        history
            .iter()
            .filter(|e| match &e.what {
                What::Op { op } => {
                    op.f == "put"
                        && op.kind == sim::history::OpType::Ok
                        && op.server.as_deref() == Some(server)
                }
                _ => false,
            })
            .count()
    };
    let (n1, others) = (acked_via("n1"), acked_via("n2") + acked_via("n3"));
    assert!(others > 0, "no put acknowledged at all");
    assert_eq!(
        n1, 0,
        "n1 acknowledged {n1} puts: its peer calls did not time out on its fast clock"
    );
}
