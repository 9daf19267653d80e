//! The overload client model in whole simulated runs: open arrival keeps invoking while
//! operations are outstanding (closed arrival does not), a timeout ends an attempt as
//! `info`, retries are attempts of one operation recorded with it, and exponential
//! backoff waits no longer than its jittered bound.

use sim::history::{AttemptResult, Entry, OpEvent, OpType, What};
use sim::run::run_scenario;
use sim::scenario::parse;
use std::collections::BTreeMap;

/// n1 is paused at 3 s and never resumed: a request to it is accepted by nobody and waits
/// out the client's timeout. 2 clients, 20 operations a second in all, for 10 s.
fn paused_n1(workload: &str) -> String {
    format!(
        r#"
name = "client-model"
system = "kv"
nodes = 3
duration = "20s"

[workload]
clients = 2
ops = 200
rate = "20/s"
keys = 4
{workload}

[[fault]]
at = "3s"
action = "pause"
node = "n1"

[[check]]
kind = "availability"
min = 0.5
"#
    )
}

/// A client operation: client, invoke time, completion time and event (if it ended).
type Operation = (String, u64, Option<(u64, OpEvent)>);

/// Every client operation in invocation order: (client, invoke time, completion time
/// and event). Open arrival completes out of order, so completions pair by id.
fn operations(history: &[Entry]) -> Vec<Operation> {
    let mut ops: Vec<Operation> = Vec::new();
    let mut open: BTreeMap<(String, u64), usize> = BTreeMap::new();
    for entry in history {
        let What::Op { op } = &entry.what else {
            continue;
        };
        if !matches!(entry.node.as_str(), "c1" | "c2") {
            continue;
        }
        let id = (entry.node.clone(), op.id);
        if op.kind == OpType::Invoke {
            open.insert(id, ops.len());
            ops.push((entry.node.clone(), entry.t, None));
        } else {
            let index = open.remove(&id).expect("a completion follows its invoke");
            ops[index].2 = Some((entry.t, op.clone()));
        }
    }
    ops
}

fn run(workload: &str) -> Vec<Entry> {
    let text = paused_n1(workload);
    let scenario = parse("client-model.toml", &text).unwrap_or_else(|e| panic!("{e}"));
    run_scenario(&scenario, "client-model.toml", 1)
        .unwrap()
        .history
}

const S: u64 = 1_000_000_000;

#[test]
fn open_arrival_keeps_the_rate_while_operations_wait_on_a_paused_server() {
    let history = run("arrival = \"open\"\ntimeout = \"1s\"\n");
    let ops = operations(&history);
    assert_eq!(ops.len(), 200, "every operation invoked");
    // Invocations stay on the beat after the pause: 20/s from 3 s to 8 s.
    let during = ops
        .iter()
        .filter(|(_, t, _)| (3 * S..8 * S).contains(t))
        .count();
    assert!((98..=102).contains(&during), "{during} invoked in 3s..8s");
    // Some operation was invoked while an earlier one of the same client was outstanding.
    let overlapping = ops.iter().enumerate().any(|(i, (c, t, _))| {
        ops[..i]
            .iter()
            .any(|(c2, t2, end)| c2 == c && t2 < t && end.as_ref().is_none_or(|(done, _)| done > t))
    });
    assert!(overlapping, "open arrival never overlapped operations");
    // Those sent to n1 after the pause timed out after 1 s, as `info`, attempt typed.
    let timed_out: Vec<_> = ops
        .iter()
        .filter_map(|(_, t, end)| end.as_ref().map(|(done, op)| (done - t, op)))
        .filter(|(_, op)| op.last_attempt() == Some(&AttemptResult::Timeout))
        .collect();
    assert!(!timed_out.is_empty());
    for (took, op) in &timed_out {
        assert!(
            (S..S + 1_000_000).contains(took),
            "an attempt waits its timeout, no longer: {took} ns, {op:?}"
        );
        assert_eq!(op.attempts.len(), 1);
        assert_eq!(op.server.as_deref(), Some("n1"));
        let expected = if op.f == "put" {
            OpType::Info
        } else {
            OpType::Fail
        };
        assert_eq!(op.kind, expected, "{op:?}");
    }
}

#[test]
fn closed_arrival_waits_for_each_operation() {
    let history = run("arrival = \"closed\"\ntimeout = \"1s\"\n");
    let ops = operations(&history);
    for (i, (c, t, _)) in ops.iter().enumerate() {
        let earlier_open = ops[..i]
            .iter()
            .any(|(c2, _, end)| c2 == c && end.as_ref().is_none_or(|(done, _)| done > t));
        assert!(
            !earlier_open,
            "{c} invoked at {t} with an operation outstanding"
        );
    }
    // Clients that wait fall behind the beat: fewer invocations while n1 is paused.
    let during = ops
        .iter()
        .filter(|(_, t, _)| (3 * S..8 * S).contains(t))
        .count();
    assert!(during < 98, "{during} invoked in 3s..8s");
}

#[test]
fn retries_are_attempts_of_one_operation_with_jittered_exponential_pauses() {
    let history = run("arrival = \"open\"\ntimeout = \"500ms\"\nretries = 3\n\
         retry_backoff = \"exponential\"\nretry_base = \"200ms\"\n");
    let ops = operations(&history);
    assert_eq!(ops.len(), 200, "each operation invoked once");
    assert!(
        ops.iter().all(|(_, _, end)| end.is_some()),
        "and ended once"
    );
    let retried: Vec<&OpEvent> = ops
        .iter()
        .filter_map(|(_, _, end)| end.as_ref().map(|(_, op)| op))
        .filter(|op| op.attempts.len() > 1)
        .collect();
    assert!(!retried.is_empty(), "no operation was retried");
    for op in &retried {
        // A retry follows a timeout on paused n1; the acknowledgement is the last attempt.
        assert_eq!(op.attempts[0].result, AttemptResult::Timeout, "{op:?}");
        assert_eq!(op.attempts[0].server, "n1", "{op:?}");
        if op.kind == OpType::Ok {
            assert!(op.attempts.last().unwrap().result.is_success(), "{op:?}");
        }
        for (n, pair) in op.attempts.windows(2).enumerate() {
            let gap = pair[1].t - pair[0].t;
            let timeout = if pair[0].result == AttemptResult::Timeout {
                S / 2
            } else {
                0
            };
            let bound = 200_000_000u64 << n; // base * 2^(retry - 1)
            assert!(
                gap >= timeout && gap < timeout + bound + 50_000_000,
                "retry {} after {gap} ns: {op:?}",
                n + 1
            );
        }
    }
    // Retries on other servers rescue what n1 swallowed: nothing acknowledged is lost to
    // it, and every operation that n1 never answered was tried elsewhere.
    let acked = ops
        .iter()
        .filter(|(_, _, end)| matches!(end, Some((_, op)) if op.kind == OpType::Ok))
        .count();
    assert!(acked >= 190, "{acked} of 200 acknowledged");
}

#[test]
fn without_the_new_keys_no_attempts_are_recorded() {
    let history = run("");
    let ops = operations(&history);
    assert!(ops
        .iter()
        .all(|(_, _, end)| end.as_ref().is_none_or(|(_, op)| op.attempts.is_empty())));
}
