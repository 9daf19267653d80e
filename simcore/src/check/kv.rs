//! KV invariants, judged on client operations and the harness's final reads (the
//! pseudo-client `final` reads every key's local copy on each of its live replicas at
//! the end).
//!
//! - `converged`: every live replica of a key (the final reads are made on the key's
//!   replicas, by the ring of the live servers) holds the same value and version.
//! - `no_lost_writes` (DESIGN.md): an acknowledged write W is lost when a final value of its
//!   key comes from a write that causally precedes W — an earlier write by W's client, or
//!   a write whose value W's client had read before invoking W — or from no write at all.
//!   Concurrent writes may win either way: that is eventual consistency, and
//!   `linearizable` is the check that forbids it.

use super::{CheckResult, Cited};
use crate::history::{fmt_time, Actor, Entry, OpType, What};
use crate::scenario::CheckKind;
use nodes::kv::Version;
use std::collections::{BTreeMap, BTreeSet};

/// The pseudo-client whose reads at the end are the final values.
pub const FINAL: &str = "final";

/// One server's final copy of one key.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Copy {
    server: String,
    value: Option<String>,
    version: Option<Version>,
    answered: bool,
    /// Indices of the read's invocation (if recorded) and completion in the history.
    entries: [Option<usize>; 2],
}

impl Copy {
    fn cite(&self) -> impl Iterator<Item = Cited> + '_ {
        self.entries
            .iter()
            .flatten()
            .map(|&e| Cited::new(e, "final read"))
    }
}

/// key -> copies, from the harness's completed final reads (`final` pseudo-client).
fn final_copies(history: &[Entry]) -> BTreeMap<String, Vec<Copy>> {
    let mut copies: BTreeMap<String, Vec<Copy>> = BTreeMap::new();
    let mut invoked: BTreeMap<u64, usize> = BTreeMap::new();
    for (i, entry) in history.iter().enumerate().filter(|(_, e)| e.node == FINAL) {
        let What::Op { op } = &entry.what else {
            continue;
        };
        if op.actor != Actor::Harness {
            continue;
        }
        if op.kind == OpType::Invoke {
            invoked.insert(op.id, i);
            continue;
        }
        copies
            .entry(op.key.clone().unwrap_or_default())
            .or_default()
            .push(Copy {
                server: op.server.clone().unwrap_or_default(),
                value: op.value_str().map(str::to_string),
                version: op.version.clone(),
                answered: op.kind == OpType::Ok,
                entries: [invoked.remove(&op.id), Some(i)],
            });
    }
    copies
}

fn describe(copy: &Copy) -> String {
    match (&copy.value, copy.answered) {
        (_, false) => format!("{} did not answer", copy.server),
        (None, true) => format!("{} has no value", copy.server),
        (Some(v), true) => match &copy.version {
            Some(version) => format!(
                "{} holds {v} (version {}@{})",
                copy.server, version.counter, version.node
            ),
            None => format!("{} holds {v} (no version)", copy.server),
        },
    }
}

/// Every live replica of each key holds the same value and version.
pub fn converged(history: &[Entry]) -> CheckResult {
    let copies = final_copies(history);
    if copies.is_empty() {
        return CheckResult::vacuous(
            CheckKind::Converged,
            "no final reads were recorded: no server was live at the end",
        );
    }
    let mut diverged = Vec::new();
    for (key, copies) in &copies {
        let first = (&copies[0].value, &copies[0].version);
        if copies
            .iter()
            .any(|c| !c.answered || (&c.value, &c.version) != first)
        {
            let what: Vec<String> = copies.iter().map(describe).collect();
            diverged.push((format!("key {key}: {}", what.join("; ")), copies));
        }
    }
    if let Some((first, copies)) = diverged.first() {
        let more = match diverged.len() {
            1 => String::new(),
            n => format!(" ({n} keys diverge)"),
        };
        // Each copy's final read, and the client write each value came from.
        let writes = writes_of(history);
        let mut evidence: Vec<Cited> = copies.iter().flat_map(Copy::cite).collect();
        let values: BTreeSet<&str> = copies.iter().filter_map(|c| c.value.as_deref()).collect();
        for w in writes.iter().filter(|w| values.contains(w.value.as_str())) {
            evidence.extend(w.cite("write read back"));
        }
        return CheckResult::violation(CheckKind::Converged, format!("{first}{more}"))
            .citing(evidence);
    }
    let servers: BTreeSet<&str> = copies
        .values()
        .flatten()
        .map(|c| c.server.as_str())
        .collect();
    let servers = servers.len();
    let written = copies.values().filter(|c| c[0].value.is_some()).count();
    if written == 0 {
        return CheckResult::vacuous(
            CheckKind::Converged,
            format!(
                "none of the {} keys holds a value on any of the {servers} live servers: nothing was written",
                copies.len()
            ),
        );
    }
    CheckResult::pass(
        CheckKind::Converged,
        format!(
            "every key's live replicas agree, on all {} keys ({written} written; {servers} live servers read)",
            copies.len()
        ),
    )
}

struct Write {
    client: String,
    key: String,
    value: String,
    invoked: u64,
    acked: Option<u64>,
    /// History indices of the invocation and of the completion (any outcome).
    invoke_entry: usize,
    end_entry: Option<usize>,
}

impl Write {
    fn cite(&self, role: &str) -> Vec<Cited> {
        std::iter::once(self.invoke_entry)
            .chain(self.end_entry)
            .map(|e| Cited::new(e, role))
            .collect()
    }
}

/// The clients' writes in invocation order, and each client's completed reads (value
/// read, time and history index of the completion).
#[allow(clippy::type_complexity)]
fn writes_and_reads(
    history: &[Entry],
) -> (Vec<Write>, BTreeMap<String, Vec<(String, u64, usize)>>) {
    let mut writes: Vec<Write> = Vec::new();
    let mut open: BTreeMap<(String, u64), usize> = BTreeMap::new();
    let mut reads: BTreeMap<String, Vec<(String, u64, usize)>> = BTreeMap::new();
    for (i, entry) in history.iter().enumerate() {
        let What::Op { op } = &entry.what else {
            continue;
        };
        if op.actor != Actor::Client {
            continue;
        }
        let value = op.value_str().map(str::to_string);
        match (op.f.as_str(), op.kind) {
            ("put", OpType::Invoke) => {
                open.insert((entry.node.clone(), op.id), writes.len());
                writes.push(Write {
                    client: entry.node.clone(),
                    key: op.key.clone().unwrap_or_default(),
                    value: value.unwrap_or_default(),
                    invoked: entry.t,
                    acked: None,
                    invoke_entry: i,
                    end_entry: None,
                });
            }
            ("put", kind) => {
                if let Some(&w) = open.get(&(entry.node.clone(), op.id)) {
                    writes[w].end_entry = Some(i);
                    if kind == OpType::Ok {
                        writes[w].acked = Some(entry.t);
                    }
                }
            }
            ("get", OpType::Ok) => {
                if let Some(v) = value {
                    reads
                        .entry(entry.node.clone())
                        .or_default()
                        .push((v, entry.t, i));
                }
            }
            _ => {}
        }
    }
    (writes, reads)
}

fn writes_of(history: &[Entry]) -> Vec<Write> {
    writes_and_reads(history).0
}

/// No acknowledged write is overwritten by one it causally follows.
pub fn no_lost_writes(history: &[Entry]) -> CheckResult {
    let (writes, reads) = writes_and_reads(history);
    let by_value: BTreeMap<&str, &Write> = writes.iter().map(|w| (w.value.as_str(), w)).collect();
    let copies = final_copies(history);
    let mut lost = Vec::new();
    let acked: Vec<&Write> = writes.iter().filter(|w| w.acked.is_some()).collect();
    for w in &acked {
        for copy in copies
            .get(&w.key)
            .into_iter()
            .flatten()
            .filter(|c| c.answered)
        {
            // Why the copy loses `w`, and the entries that show it.
            let mut cited = w.cite("lost write");
            cited.extend(copy.cite());
            let why = match &copy.value {
                None => Some("it has no value at all".to_string()),
                Some(v) if *v == w.value => None,
                Some(v) => match by_value.get(v.as_str()) {
                    None => Some(format!("its value {v} comes from no write")),
                    Some(winner) if winner.client == w.client && winner.invoked < w.invoked => {
                        cited.extend(winner.cite("overwriting write"));
                        Some(format!(
                            "its value {v} is an earlier write by the same client"
                        ))
                    }
                    Some(winner) => {
                        let seen = reads.get(&w.client).and_then(|r| {
                            r.iter().find(|(seen, t, _)| seen == v && *t < w.invoked)
                        });
                        seen.map(|(_, _, read)| {
                            cited.extend(winner.cite("overwriting write"));
                            cited.push(Cited::new(*read, "read before the lost write"));
                            format!(
                                "its value {v} was read by {} before writing {}",
                                w.client, w.value
                            )
                        })
                    }
                },
            };
            if let Some(why) = why {
                lost.push((
                    format!(
                        "{} (put {} by {}, acknowledged at {}) is lost on {}: {why}",
                        w.value,
                        w.key,
                        w.client,
                        fmt_time(w.acked.unwrap_or(0)),
                        copy.server
                    ),
                    cited,
                ));
            }
        }
    }
    if let Some((first, cited)) = lost.first() {
        let more = match lost.len() {
            1 => String::new(),
            n => format!(" ({n} lost copies in all)"),
        };
        return CheckResult::violation(CheckKind::NoLostWrites, format!("{first}{more}"))
            .citing(cited.clone());
    }
    if acked.is_empty() {
        return CheckResult::vacuous(
            CheckKind::NoLostWrites,
            format!(
                "no write was acknowledged ({} invoked): nothing could be lost",
                writes.len()
            ),
        );
    }
    // A key with an acknowledged write must have been read back on every live replica;
    // a copy that did not answer was not judged, and is not a pass.
    let mut unjudged: Vec<String> = Vec::new();
    for key in acked.iter().map(|w| &w.key).collect::<BTreeSet<_>>() {
        let key_copies = copies.get(key).map(Vec::as_slice).unwrap_or_default();
        if key_copies.is_empty() {
            unjudged.push(format!("key {key}: no final read"));
        }
        for copy in key_copies.iter().filter(|c| !c.answered) {
            unjudged.push(format!("key {key}: {}", describe(copy)));
        }
    }
    if let Some(first) = unjudged.first() {
        let more = match unjudged.len() {
            1 => String::new(),
            n => format!(" ({n} copies unread)"),
        };
        return CheckResult::vacuous(
            CheckKind::NoLostWrites,
            format!("acknowledged writes could not be judged: {first}{more}"),
        );
    }
    CheckResult::pass(
        CheckKind::NoLostWrites,
        format!(
            "{} acknowledged writes of {} on {} keys; no final value comes from a write they follow",
            acked.len(),
            writes.len(),
            copies.len()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Status;
    use crate::history::OpEvent;

    fn op(t: u64, node: &str, op: OpEvent) -> Entry {
        Entry {
            t,
            node: node.into(),
            what: What::Op { op },
        }
    }

    fn put(t: u64, kind: OpType) -> Entry {
        op(
            t,
            "c1",
            OpEvent::new(kind, "put", 0).key("k0").value(Some("c1-0")),
        )
    }

    fn final_read(t: u64, server: &str, kind: OpType, value: Option<&str>) -> Entry {
        let read = OpEvent::new(kind, "get", 0)
            .by_harness()
            .key("k0")
            .server(server)
            .value(value);
        op(t, FINAL, read)
    }

    #[test]
    fn a_final_read_that_did_not_answer_is_not_a_pass() {
        let history = vec![
            put(1, OpType::Invoke),
            put(2, OpType::Ok),
            final_read(10, "n1", OpType::Invoke, None),
            final_read(11, "n1", OpType::Ok, Some("c1-0")),
            final_read(12, "n2", OpType::Invoke, None),
            final_read(13, "n2", OpType::Fail, None),
        ];
        let result = no_lost_writes(&history);
        assert_eq!(result.status, Status::Vacuous, "{}", result.detail);
        assert!(
            result.detail.contains("n2 did not answer"),
            "{}",
            result.detail
        );
    }

    #[test]
    fn no_acknowledged_write_is_vacuous() {
        let history = vec![
            put(1, OpType::Invoke),
            put(2, OpType::Info),
            final_read(10, "n1", OpType::Invoke, None),
            final_read(11, "n1", OpType::Ok, None),
        ];
        assert_eq!(no_lost_writes(&history).status, Status::Vacuous);
        assert_eq!(converged(&history).status, Status::Vacuous);
    }

    #[test]
    fn every_copy_answered_with_the_write_passes() {
        let history = vec![
            put(1, OpType::Invoke),
            put(2, OpType::Ok),
            final_read(10, "n1", OpType::Invoke, None),
            final_read(11, "n1", OpType::Ok, Some("c1-0")),
        ];
        assert_eq!(no_lost_writes(&history).status, Status::Pass);
    }
}
