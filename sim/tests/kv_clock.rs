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
