//! The load balancer in simulation, judged from the recorded history only: clients that
//! talk to `lb` are served while a backend is down, and not served while `lb` itself is.

use nodes::runtime::NodeEvent;
use sim::history::{Actor, Entry, OpType, What};
use sim::run::run_scenario;
use std::collections::BTreeMap;
use std::path::Path;

const SECOND: u64 = 1_000_000_000;

fn history(file: &str) -> Vec<Entry> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios/kv")
        .join(file);
    let scenario = sim::scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let finished = run_scenario(&scenario, file, scenario.default_seed()).expect("runs");
    assert!(finished.report.passed(), "{file}: verdict fail");
    finished.history
}

/// A client operation: when it was invoked, how it ended, and who answered.
struct Op {
    invoked: u64,
    outcome: OpType,
    server: Option<String>,
}

fn client_ops(history: &[Entry]) -> Vec<Op> {
    let mut open: BTreeMap<(String, u64), u64> = BTreeMap::new();
    let mut ops = Vec::new();
    for entry in history {
        let What::Op { op } = &entry.what else {
            continue;
        };
        if op.actor != Actor::Client {
            continue;
        }
        let id = (entry.node.clone(), op.id);
        match op.kind {
            OpType::Invoke => {
                open.insert(id, entry.t);
            }
            outcome => {
                let invoked = open.remove(&id).expect("a completion follows its invoke");
                ops.push(Op {
                    invoked,
                    outcome,
                    server: op.server.clone(),
                });
            }
        }
    }
    ops
}

/// The balancer's view changes of `backend`: (time, healthy).
fn health_changes(history: &[Entry], backend: &str) -> Vec<(u64, bool)> {
    history
        .iter()
        .filter(|e| e.node == "lb")
        .filter_map(|e| match &e.what {
            What::Event {
                data:
                    NodeEvent::BackendHealth {
                        backend: b,
                        healthy,
                        ..
                    },
            } if b == backend => Some((e.t, *healthy)),
            _ => None,
        })
        .collect()
}

fn ok_share(ops: &[&Op]) -> f64 {
    let ok = ops.iter().filter(|o| o.outcome == OpType::Ok).count();
    ok as f64 / ops.len().max(1) as f64
}

#[test]
fn a_crashed_backend_is_taken_out_and_the_clients_of_lb_keep_being_served() {
    let history = history("lb-backend-crash.toml");
    // n2 crashes at 8 s and restarts at 18 s; checks run every 500 ms.
    let changes = health_changes(&history, "n2");
    assert_eq!(changes.len(), 2, "down once, up once: {changes:?}");
    let (down_at, up_at) = (changes[0], changes[1]);
    assert!(
        !down_at.1 && (8 * SECOND..9 * SECOND).contains(&down_at.0),
        "{changes:?}"
    );
    assert!(
        up_at.1 && (18 * SECOND..19 * SECOND).contains(&up_at.0),
        "{changes:?}"
    );
    let ops = client_ops(&history);
    assert!(ops.iter().all(|o| o.server.as_deref() == Some("lb")));
    let during: Vec<&Op> = ops
        .iter()
        .filter(|o| (8 * SECOND..18 * SECOND).contains(&o.invoked))
        .collect();
    assert!(
        during.len() > 150,
        "{} operations while n2 was down",
        during.len()
    );
    assert!(ok_share(&during) >= 0.98, "{:.3} ok", ok_share(&during));
}

#[test]
fn while_lb_is_down_its_clients_fail_although_every_server_is_up() {
    let history = history("lb-crash.toml");
    // lb crashes at 8 s and restarts at 14 s.
    let ops = client_ops(&history);
    let down: Vec<&Op> = ops
        .iter()
        .filter(|o| (8 * SECOND + SECOND / 10..14 * SECOND).contains(&o.invoked))
        .collect();
    assert!(
        down.len() > 60,
        "{} operations while lb was down",
        down.len()
    );
    assert!(
        down.iter().all(|o| o.outcome == OpType::Fail),
        "every one fails at once"
    );
    // An operation in flight at the crash is unknown (info); the ones before it are ok.
    let before: Vec<&Op> = ops
        .iter()
        .filter(|o| o.invoked < 8 * SECOND - SECOND / 10)
        .collect();
    let after: Vec<&Op> = ops.iter().filter(|o| o.invoked > 14 * SECOND).collect();
    assert!(
        ok_share(&before) == 1.0,
        "{:.3} ok before",
        ok_share(&before)
    );
    assert!(ok_share(&after) == 1.0, "{:.3} ok after", ok_share(&after));
}
