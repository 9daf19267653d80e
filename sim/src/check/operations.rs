//! Client operations as the history shows them, for the checks that judge the service a
//! client got (`latency`, `availability`, `recovers`): each invocation paired with its
//! completion, the harness's own operations (final reads, probes) left out.

use crate::history::{fmt_time, AttemptResult, Entry, OpEvent, OpType, What};
use std::collections::BTreeMap;
use std::ops::Range;

/// One client operation: its invocation and, unless it never ended, its completion.
#[derive(Clone, Debug)]
pub struct ClientOp<'a> {
    /// The client (`c1`, ...).
    pub client: &'a str,
    /// Simulated nanoseconds at the invocation.
    pub invoked: u64,
    /// The invocation event.
    pub invoke: &'a OpEvent,
    /// The completion and its time, if there was one.
    pub end: Option<(u64, &'a OpEvent)>,
    /// Index of the invocation in the history.
    pub invoke_entry: usize,
    /// Index of the completion in the history, if there was one.
    pub end_entry: Option<usize>,
}

/// How an operation ended, as counted in the checks' evidence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// Acknowledged.
    Ok,
    /// Not acknowledged: its last attempt was answered 429 (shed).
    Shed,
    /// Not acknowledged: its last attempt got no answer within the timeout.
    TimedOut,
    /// Not acknowledged: its last attempt was answered with a 5xx.
    ServerError,
    /// Not acknowledged: definitely did not happen (refused, unreachable, 4xx, 5xx).
    Failed,
    /// Not acknowledged: may or may not have happened.
    Unknown,
    /// Never ended by the end of the history.
    Pending,
}

impl Outcome {
    /// The name in evidence.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Shed => "429",
            Outcome::TimedOut => "timeout",
            Outcome::ServerError => "5xx",
            Outcome::Failed => "fail",
            Outcome::Unknown => "info",
            Outcome::Pending => "pending",
        }
    }
}

impl ClientOp<'_> {
    /// True when the operation was acknowledged.
    pub fn acknowledged(&self) -> bool {
        matches!(self.end, Some((_, op)) if op.kind == OpType::Ok)
    }

    /// Invoke to acknowledgement, in nanoseconds (acknowledged operations only).
    pub fn response_time(&self) -> Option<u64> {
        match self.end {
            Some((t, op)) if op.kind == OpType::Ok => Some(t.saturating_sub(self.invoked)),
            _ => None,
        }
    }

    /// How it ended; a 429, a timeout or a 5xx is named when the attempts were recorded.
    pub fn outcome(&self) -> Outcome {
        let Some((_, op)) = self.end else {
            return Outcome::Pending;
        };
        match (op.kind, op.last_attempt()) {
            (OpType::Ok, _) => Outcome::Ok,
            (_, Some(AttemptResult::Answered { status: 429 })) => Outcome::Shed,
            (_, Some(AttemptResult::Timeout)) => Outcome::TimedOut,
            (_, Some(AttemptResult::Answered { status: 500..=599 })) => Outcome::ServerError,
            (OpType::Fail, _) => Outcome::Failed,
            _ => Outcome::Unknown,
        }
    }

    /// Attempts made (1 when the history does not list them).
    pub fn attempts(&self) -> usize {
        self.end.map_or(1, |(_, op)| op.attempts.len().max(1))
    }

    /// Its invocation and completion entries, cited in the part `role`.
    pub fn cite(&self, role: &str) -> Vec<super::Cited> {
        std::iter::once(self.invoke_entry)
            .chain(self.end_entry)
            .map(|entry| super::Cited::new(entry, role))
            .collect()
    }

    /// "c2 put k3 invoked 12.345s": which operation, for evidence.
    pub fn describe(&self) -> String {
        let key = self
            .invoke
            .key
            .as_ref()
            .map_or(String::new(), |k| format!(" {k}"));
        format!(
            "{} {}{key} invoked {}",
            self.client,
            self.invoke.f,
            fmt_time(self.invoked)
        )
    }
}

/// Every workload client's operation in invocation order, only those of `clients` when
/// given, only those invoked within `invoked`.
pub fn client_ops<'a>(
    history: &'a [Entry],
    clients: Option<&[String]>,
    invoked: Range<u64>,
) -> Vec<ClientOp<'a>> {
    let mut ops: Vec<ClientOp<'a>> = Vec::new();
    let mut open: BTreeMap<(&str, u64), usize> = BTreeMap::new();
    for (i, entry) in history.iter().enumerate() {
        let What::Op { op } = &entry.what else {
            continue;
        };
        if op.actor != crate::history::Actor::Client {
            continue;
        }
        let client = entry.node.as_str();
        if clients.is_some_and(|names| !names.iter().any(|n| n == client)) {
            continue;
        }
        if op.kind == OpType::Invoke {
            if invoked.contains(&entry.t) {
                open.insert((client, op.id), ops.len());
                ops.push(ClientOp {
                    client,
                    invoked: entry.t,
                    invoke: op,
                    end: None,
                    invoke_entry: i,
                    end_entry: None,
                });
            }
        } else if let Some(index) = open.remove(&(client, op.id)) {
            ops[index].end = Some((entry.t, op));
            ops[index].end_entry = Some(i);
        }
    }
    ops
}

/// Operations counted by outcome: "ok 91, 429 6, timeout 3".
pub fn outcome_counts(ops: &[ClientOp<'_>]) -> String {
    let mut counts: BTreeMap<Outcome, usize> = BTreeMap::new();
    for op in ops {
        *counts.entry(op.outcome()).or_default() += 1;
    }
    let parts: Vec<String> = counts
        .iter()
        .map(|(outcome, n)| format!("{} {n}", outcome.name()))
        .collect();
    parts.join(", ")
}

/// Attempts per operation, when retries added any: ", 130 attempts for 100 operations".
pub fn attempt_load(ops: &[ClientOp<'_>]) -> String {
    let attempts: usize = ops.iter().map(ClientOp::attempts).sum();
    if attempts > ops.len() {
        format!("; {attempts} attempts for {} operations", ops.len())
    } else {
        String::new()
    }
}

/// One window of invocation time and how its operations fared.
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    /// Start, simulated ns.
    pub start: u64,
    /// End (exclusive), simulated ns.
    pub end: u64,
    /// Operations invoked in it.
    pub total: usize,
    /// Of which acknowledged.
    pub acknowledged: usize,
}

impl Window {
    /// The fraction acknowledged (`None` when nothing was invoked in it).
    pub fn availability(&self) -> Option<f64> {
        (self.total > 0).then(|| self.acknowledged as f64 / self.total as f64)
    }

    /// "12.000s-14.000s 0.45 (9/20)".
    pub fn describe(&self) -> String {
        let fraction = self
            .availability()
            .map_or("no operations".to_string(), |a| {
                format!("{a:.2} ({}/{})", self.acknowledged, self.total)
            });
        format!("{}-{} {fraction}", fmt_time(self.start), fmt_time(self.end))
    }
}

/// `ops` (in invocation order) in consecutive windows of `width` ns from `start` until
/// `end`; the last window may be shorter.
pub fn windows(ops: &[ClientOp<'_>], start: u64, end: u64, width: u64) -> Vec<Window> {
    let width = width.max(1);
    let mut windows = Vec::new();
    let mut at = start;
    while at < end {
        let until = at.saturating_add(width).min(end);
        let inside = ops.iter().filter(|op| (at..until).contains(&op.invoked));
        let (total, acknowledged) = inside.fold((0, 0), |(total, acked), op| {
            (total + 1, acked + usize::from(op.acknowledged()))
        });
        windows.push(Window {
            start: at,
            end: until,
            total,
            acknowledged,
        });
        at = until;
    }
    windows
}

/// Most windows listed in evidence; the rest are summarized.
pub const MAX_WINDOWS_LISTED: usize = 30;

/// The windows as evidence, at most [`MAX_WINDOWS_LISTED`] of them.
pub fn list_windows(windows: &[Window]) -> String {
    let mut parts: Vec<String> = windows
        .iter()
        .take(MAX_WINDOWS_LISTED)
        .map(Window::describe)
        .collect();
    if windows.len() > MAX_WINDOWS_LISTED {
        parts.push(format!("… {} more", windows.len() - MAX_WINDOWS_LISTED));
    }
    parts.join(", ")
}

/// "all clients" or "clients c1, c2", for evidence.
pub fn whose(clients: Option<&[String]>) -> String {
    match clients {
        None => "all clients".to_string(),
        Some(names) => format!("clients {}", names.join(", ")),
    }
}

/// Formats nanoseconds as milliseconds: "812 ms".
pub fn ms(ns: u64) -> String {
    format!("{} ms", ns / 1_000_000)
}

#[cfg(test)]
pub(crate) mod tests {
    //! Hand-built client histories for the checks' tests.

    use crate::history::{Attempt, AttemptResult, Entry, OpEvent, OpType, What};
    use crate::scenario::Action;

    /// Milliseconds to simulated nanoseconds.
    pub fn at(ms: u64) -> u64 {
        ms * 1_000_000
    }

    /// An invoke of `c`'s operation `id` on key `k{id % 3}` at `start` ms, and its
    /// completion `kind` after `took` ms (none when `kind` is `None`); `last` is the last
    /// attempt's result.
    pub fn op(
        history: &mut Vec<Entry>,
        c: &str,
        id: u64,
        start: u64,
        took: u64,
        kind: Option<OpType>,
        last: Option<AttemptResult>,
    ) {
        let key = format!("k{}", id % 3);
        let event = |kind| OpEvent::new(kind, "put", id).key(&key);
        history.push(Entry {
            t: at(start),
            node: c.into(),
            what: What::Op {
                op: event(OpType::Invoke),
            },
        });
        if let Some(kind) = kind {
            let attempts = last
                .map(|result| {
                    vec![Attempt {
                        t: at(start),
                        server: "n1".into(),
                        result,
                    }]
                })
                .unwrap_or_default();
            history.push(Entry {
                t: at(start + took),
                node: c.into(),
                what: What::Op {
                    op: event(kind).attempts(attempts),
                },
            });
        }
    }

    /// A fault entry at `ms`.
    pub fn fault(history: &mut Vec<Entry>, ms: u64, action: Action) {
        let mut fault = crate::history::AppliedFault::new(action);
        fault.node = Some("n1".into());
        history.push(Entry {
            t: at(ms),
            node: "harness".into(),
            what: What::Fault { fault },
        });
    }

    /// Sorts entries by time (tests build them per operation).
    pub fn sorted(mut history: Vec<Entry>) -> Vec<Entry> {
        history.sort_by_key(|e| e.t);
        history
    }

    #[test]
    fn a_429_and_a_timeout_are_named_and_harness_ops_are_left_out() {
        let mut h = Vec::new();
        op(&mut h, "c1", 0, 0, 5, Some(OpType::Ok), None);
        op(
            &mut h,
            "c1",
            1,
            10,
            1,
            Some(OpType::Fail),
            Some(AttemptResult::Answered { status: 429 }),
        );
        op(
            &mut h,
            "c2",
            0,
            20,
            500,
            Some(OpType::Info),
            Some(AttemptResult::Timeout),
        );
        op(&mut h, "c2", 1, 30, 0, None, None);
        op(
            &mut h,
            "c2",
            2,
            35,
            3,
            Some(OpType::Info),
            Some(AttemptResult::Answered { status: 503 }),
        );
        h.push(Entry {
            t: at(40),
            node: "final".into(),
            what: What::Op {
                op: OpEvent::new(OpType::Invoke, "get", 0).by_harness(),
            },
        });
        let h = sorted(h);
        let ops = super::client_ops(&h, None, 0..u64::MAX);
        assert_eq!(ops.len(), 5);
        assert_eq!(
            super::outcome_counts(&ops),
            "ok 1, 429 1, timeout 1, 5xx 1, pending 1"
        );
        assert_eq!(ops[0].response_time(), Some(at(5)));
        let only_c2 = super::client_ops(&h, Some(&["c2".to_string()]), 0..u64::MAX);
        assert_eq!(only_c2.len(), 3);
        let late = super::client_ops(&h, None, at(15)..at(25));
        assert_eq!(late.len(), 1);
        assert_eq!(late[0].client, "c2");
    }
}
