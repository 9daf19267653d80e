//! Seed 004's acceptance-criteria table, criterion by criterion, checked in simulation
//! (the real-socket versions are `nodes/tests/real_chat.rs` and `real_election.rs`).
//!
//! | # | criterion | here |
//! |---|---|---|
//! | 1 | start node with config | every server starts (`started` event), real: `real_chat.rs` |
//! | 2 | form 3-node cluster | all three agree on one leader |
//! | 3 | one becomes leader | n3, the highest id |
//! | 4 | heartbeats visible | the leader's heartbeat rounds are 800 ms apart |
//! | 5 | client sends messages | clients' sends are acknowledged |
//! | 6 | identical ordered output | every server delivers the same sequence |
//! | 7 | kill leader triggers election | the next-highest id leads a higher term |
//! | 8 | continued ordering | sequence numbers continue with no gap or reuse |
//! | 9 | Docker Compose works | not applicable: no Docker engine on these machines |
//! | 10 | tests pass | this suite |

use nodes::runtime::{NodeEvent, Role};
use sim::history::{Entry, OpType, What};
use sim::run::run_scenario;
use std::collections::BTreeMap;
use std::path::Path;

fn run(file: &str) -> Vec<Entry> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(file);
    let scenario = sim::scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let finished = run_scenario(&scenario, file, scenario.default_seed()).expect("runnable");
    assert!(
        finished.report.passed(),
        "{}",
        finished.report.to_human(&scenario)
    );
    finished.history
}

fn events(history: &[Entry]) -> impl Iterator<Item = (&Entry, &NodeEvent)> {
    history.iter().filter_map(|e| match &e.what {
        What::Event { data } => Some((e, data)),
        _ => None,
    })
}

/// Last role event per server.
fn final_roles(history: &[Entry]) -> BTreeMap<String, (Role, u64, Option<u64>)> {
    let mut roles = BTreeMap::new();
    for (entry, event) in events(history) {
        if let NodeEvent::Role { role, term, leader } = event {
            roles.insert(entry.node.clone(), (*role, *term, *leader));
        }
    }
    roles
}

/// Delivered sequence per server, in delivery order.
fn delivered(history: &[Entry]) -> BTreeMap<String, Vec<(u64, String)>> {
    let mut logs: BTreeMap<String, Vec<(u64, String)>> = BTreeMap::new();
    for (entry, event) in events(history) {
        if let NodeEvent::Delivered { seq, id, .. } = event {
            logs.entry(entry.node.clone())
                .or_default()
                .push((*seq, id.clone()));
        }
    }
    logs
}

#[test]
fn criteria_1_2_3_three_nodes_start_form_a_cluster_and_the_highest_id_leads() {
    let history = run("scenarios/chat/normal.toml");
    let started = events(&history)
        .filter(|(_, e)| matches!(e, NodeEvent::Started { .. }))
        .count();
    assert_eq!(started, 3);
    let roles = final_roles(&history);
    assert_eq!(roles["n3"].0, Role::Leader);
    for node in ["n1", "n2"] {
        assert_eq!(
            roles[node],
            (Role::Follower, roles["n3"].1, Some(3)),
            "{node}"
        );
    }
}

#[test]
fn criterion_4_the_leader_heartbeats_every_800_ms() {
    let history = run("scenarios/chat/normal.toml");
    let beats: Vec<u64> = events(&history)
        .filter(|(e, ev)| e.node == "n3" && matches!(ev, NodeEvent::HeartbeatSent { .. }))
        .map(|(e, _)| e.t)
        .collect();
    assert!(beats.len() > 30, "{} heartbeat rounds in 30 s", beats.len());
    for pair in beats.windows(2).skip(1) {
        let gap_ms = (pair[1] - pair[0]) as f64 / 1e6;
        assert!(
            (799.0..=801.0).contains(&gap_ms),
            "heartbeat gap {gap_ms} ms"
        );
    }
}

#[test]
fn criteria_5_6_clients_send_and_every_node_shows_the_same_ordered_output() {
    let history = run("scenarios/chat/normal.toml");
    let acked = history
        .iter()
        .filter(|e| matches!(&e.what, What::Op { op } if op.kind == OpType::Ok))
        .count();
    assert!(acked >= 140, "only {acked} of 150 sends acknowledged");
    let logs = delivered(&history);
    assert_eq!(logs.len(), 3);
    let reference = &logs["n1"];
    assert_eq!(reference.len(), acked);
    for (node, log) in &logs {
        assert_eq!(log, reference, "{node} differs");
    }
    let seqs: Vec<u64> = reference.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, (1..=acked as u64).collect::<Vec<_>>());
}

#[test]
fn criteria_7_8_killing_the_leader_elects_the_next_and_the_sequence_continues() {
    let history = run("scenarios/chat/leader-failover.toml");
    let crash = history
        .iter()
        .find(|e| matches!(&e.what, What::Fault { fault } if fault.action == sim::scenario::Action::Crash))
        .expect("a crash");
    let old_leader = match &crash.what {
        What::Fault { fault } => fault.node.clone().unwrap_or_default(),
        _ => unreachable!(),
    };
    assert_eq!(old_leader, "n5");
    let new_leader = events(&history)
        .filter(|(e, _)| e.t > crash.t)
        .find_map(|(e, ev)| match ev {
            NodeEvent::Role {
                role: Role::Leader,
                term,
                ..
            } => Some((e.node.clone(), *term)),
            _ => None,
        })
        .expect("an election after the crash");
    assert_eq!(new_leader.0, "n4");
    assert!(new_leader.1 >= 2);
    let n1 = &delivered(&history)["n1"];
    assert!(n1.len() > 100, "{} delivered", n1.len());
    let seqs: Vec<u64> = n1.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "no gap, no reuse"
    );
    let sequenced_after: Vec<u64> = events(&history)
        .filter(|(e, ev)| {
            e.t > crash.t && e.node == "n4" && matches!(ev, NodeEvent::Sequenced { .. })
        })
        .filter_map(|(_, ev)| match ev {
            NodeEvent::Sequenced { seq, .. } => Some(*seq),
            _ => None,
        })
        .collect();
    let delivered_before_crash = events(&history)
        .filter(|(e, ev)| {
            e.t <= crash.t && e.node == "n1" && matches!(ev, NodeEvent::Delivered { .. })
        })
        .count() as u64;
    assert!(
        sequenced_after
            .first()
            .is_some_and(|&s| s > delivered_before_crash),
        "n4 continues after seq {delivered_before_crash}: {:?}",
        &sequenced_after[..sequenced_after.len().min(3)]
    );
}
