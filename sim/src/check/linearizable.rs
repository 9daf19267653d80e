//! `linearizable`: the clients' register-like operations, checked key by key against a
//! register model with [`crate::linearizability`].
//!
//! Our history becomes a Jepsen history: each client operation's invoke and completion
//! (matched by client and operation id) give its call and return times; `put`/`write` are
//! register writes, `get`/`read` register reads, `cas` takes `[expected, new]`; a chat
//! `send` is an `append` to the one key `chat`. A write that definitely failed is left
//! out; an `info` stays open to the end with any outcome. The search has a step budget,
//! so the verdict is deterministic; an exhausted budget is reported as "unknown", which
//! does not pass.

use super::{CheckResult, Cited};
use crate::history::{Actor, Entry, OpType, What};
use crate::linearizability::{
    check, Budget, Input, JepsenOperation, Output, Register, Value, Verdict,
};
use crate::scenario::CheckKind;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Search steps allowed per key before the verdict is "unknown".
pub const STEP_BUDGET: u64 = 20_000_000;

fn value_of(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Number(n) => n
            .as_i64()
            .map(Value::Int)
            .unwrap_or_else(|| Value::str(&n.to_string())),
        serde_json::Value::String(s) => Value::str(s),
        other => Value::str(&other.to_string()),
    }
}

/// The client operations of a history in Jepsen's vocabulary (see the module doc).
pub fn client_operations(history: &[Entry]) -> Vec<JepsenOperation> {
    cited_operations(history)
        .into_iter()
        .map(|(o, _)| o)
        .collect()
}

/// [`client_operations`], each with the history indices of its invocation and (if it
/// returned) its completion, for evidence.
fn cited_operations(history: &[Entry]) -> Vec<(JepsenOperation, [Option<usize>; 2])> {
    // (client, op id) -> index in `operations`
    let mut open: BTreeMap<(String, u64), usize> = BTreeMap::new();
    let mut operations: Vec<Option<JepsenOperation>> = Vec::new();
    let mut entries: Vec<[Option<usize>; 2]> = Vec::new();
    for (i, entry) in history.iter().enumerate() {
        let What::Op { op } = &entry.what else {
            continue;
        };
        if op.actor != Actor::Client {
            // The harness's final reads and probes are not client operations.
            continue;
        }
        let client: u64 = entry.node.trim_start_matches('c').parse().unwrap_or(0);
        let key: Option<Arc<str>> = op.key.as_deref().map(Arc::from);
        let value = op.value.as_ref().map(value_of).unwrap_or(Value::Nil);
        match op.kind {
            OpType::Invoke => {
                let input = match op.f.as_str() {
                    "read" | "get" => Input::Read { key },
                    "write" | "put" => Input::Write { key, value },
                    "cas" => {
                        let pair = op
                            .value
                            .as_ref()
                            .and_then(|v| v.as_array().cloned())
                            .unwrap_or_default();
                        let expected = pair.first().map(value_of).unwrap_or(Value::Nil);
                        let new = pair.get(1).map(value_of).unwrap_or(Value::Nil);
                        Input::Cas { key, expected, new }
                    }
                    "send" => Input::Append {
                        key: Arc::from("chat"),
                        value: Arc::from(format!("{} ", value_as_text(&value)).as_str()),
                    },
                    _ => continue,
                };
                open.insert((entry.node.clone(), op.id), operations.len());
                entries.push([Some(i), None]);
                operations.push(Some(JepsenOperation {
                    client,
                    input,
                    output: None,
                    call: entry.t,
                    ret: None,
                }));
            }
            kind => {
                let Some(index) = open.remove(&(entry.node.clone(), op.id)) else {
                    continue;
                };
                let Some(operation) = operations[index].as_mut() else {
                    continue;
                };
                let is_read = matches!(operation.input, Input::Read { .. });
                entries[index][1] = Some(i);
                match kind {
                    OpType::Ok => {
                        operation.ret = Some(entry.t);
                        operation.output = Some(match &operation.input {
                            Input::Read { .. } => Output::Value(value),
                            Input::Cas { .. } => Output::Cas(true),
                            _ => Output::Done,
                        });
                    }
                    OpType::Fail if is_read => operation.ret = Some(entry.t),
                    OpType::Fail if matches!(operation.input, Input::Cas { .. }) => {
                        operation.ret = Some(entry.t);
                        operation.output = Some(Output::Cas(false));
                    }
                    // A write that definitely did not happen is not part of the history.
                    OpType::Fail => operations[index] = None,
                    // Unknown: stays open to the end with any outcome.
                    OpType::Info | OpType::Invoke => {}
                }
            }
        }
    }
    operations
        .into_iter()
        .zip(entries)
        .filter_map(|(o, e)| Some((o?, e)))
        .collect()
}

fn value_as_text(value: &Value) -> String {
    match value {
        Value::Str(s) => s.to_string(),
        other => other.to_string(),
    }
}

/// The `linearizable` check.
pub fn linearizable(history: &[Entry]) -> CheckResult {
    let cited = cited_operations(history);
    let operations: Vec<JepsenOperation> = cited.iter().map(|(o, _)| o.clone()).collect();
    if operations.iter().all(|o| o.output.is_none()) {
        return CheckResult::vacuous(
            CheckKind::Linearizable,
            format!(
                "no client operation completed ({} invoked): nothing to linearize",
                operations.len()
            ),
        );
    }
    let budget = Budget::steps(STEP_BUDGET).with_threads(1);
    let has_appends = operations
        .iter()
        .any(|o| matches!(o.input, Input::Append { .. }));
    let outcome = if has_appends {
        check(&crate::linearizability::Kv, &operations, budget)
    } else {
        check(&Register::default(), &operations, budget)
    };
    match outcome.verdict {
        Verdict::Linearizable => CheckResult::new(
            CheckKind::Linearizable,
            true,
            format!(
                "{} operations on {} keys have a linearization ({} search steps)",
                operations.len(),
                outcome.stats.partitions,
                outcome.stats.steps
            ),
        ),
        Verdict::NotLinearizable(evidence) => {
            // The operation no order gets past, those that could come next instead, and
            // the last few the valid order placed before them.
            let cite = |index: usize, role: &str| {
                cited
                    .get(index)
                    .into_iter()
                    .flat_map(|(_, e)| e.iter().flatten())
                    .map(|&entry| Cited::new(entry, role))
                    .collect::<Vec<_>>()
            };
            let mut refs = cite(evidence.blocked.index, "blocked");
            for stuck in evidence.stuck.iter().skip(1).take(4) {
                refs.extend(cite(stuck.operation.index, "cannot come next either"));
            }
            for done in evidence.linearized.iter().rev().take(3) {
                refs.extend(cite(done.index, "linearized before"));
            }
            CheckResult::new(CheckKind::Linearizable, false, evidence.to_string()).citing(refs)
        }
        Verdict::Unknown { reason } => CheckResult::new(
            CheckKind::Linearizable,
            false,
            format!("unknown, not a pass: {reason}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::OpEvent;

    fn op(t: u64, client: &str, id: u64, kind: OpType, f: &str, value: Option<&str>) -> Entry {
        Entry {
            t,
            node: client.into(),
            what: What::Op {
                op: OpEvent::new(kind, f, id).key("k").value(value),
            },
        }
    }

    #[test]
    fn the_harness_final_reads_are_not_client_operations() {
        // A final read of a stale copy, typed as the harness's, must not make the
        // clients' history non-linearizable.
        let stale = |t, kind, value| Entry {
            t,
            node: "final".into(),
            what: What::Op {
                op: OpEvent::new(kind, "get", 0)
                    .by_harness()
                    .key("k")
                    .value(value),
            },
        };
        let history = vec![
            op(0, "c1", 0, OpType::Invoke, "put", Some("a")),
            op(10, "c1", 0, OpType::Ok, "put", Some("a")),
            op(20, "c1", 1, OpType::Invoke, "put", Some("b")),
            op(30, "c1", 1, OpType::Ok, "put", Some("b")),
            stale(40, OpType::Invoke, None),
            stale(50, OpType::Ok, Some("a")),
        ];
        let result = linearizable(&history);
        assert!(result.passed, "{}", result.detail);
    }

    #[test]
    fn a_read_after_a_completed_write_must_see_it() {
        let history = vec![
            op(0, "c1", 0, OpType::Invoke, "put", Some("a")),
            op(10, "c1", 0, OpType::Ok, "put", Some("a")),
            op(20, "c2", 0, OpType::Invoke, "get", None),
            op(30, "c2", 0, OpType::Ok, "get", Some("a")),
        ];
        assert!(linearizable(&history).passed);
        let mut stale = history.clone();
        stale[3] = op(30, "c2", 0, OpType::Ok, "get", None);
        let result = linearizable(&stale);
        assert!(!result.passed, "{}", result.detail);
        assert!(result.detail.contains("k"), "{}", result.detail);
    }

    #[test]
    fn an_unknown_write_may_explain_a_later_read_and_a_failed_one_may_not() {
        let history = vec![
            op(0, "c1", 0, OpType::Invoke, "put", Some("a")),
            op(10, "c1", 0, OpType::Info, "put", Some("a")),
            op(20, "c2", 0, OpType::Invoke, "get", None),
            op(30, "c2", 0, OpType::Ok, "get", Some("a")),
        ];
        assert!(linearizable(&history).passed);
        let mut failed = history.clone();
        failed[1] = op(10, "c1", 0, OpType::Fail, "put", Some("a"));
        assert!(!linearizable(&failed).passed);
    }
}
