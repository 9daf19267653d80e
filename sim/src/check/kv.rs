//! KV invariants, judged on client operations and the harness's final reads (the
//! pseudo-client `final` reads every key's local copy on every live server at the end).
//!
//! - `converged`: every live server holds the same value and version of every key.
//! - `no_lost_writes` (DESIGN.md): an acknowledged write W is lost when a final value of its
//!   key comes from a write that causally precedes W — an earlier write by W's client, or
//!   a write whose value W's client had read before invoking W — or from no write at all.
//!   Concurrent writes may win either way: that is eventual consistency, and
//!   `linearizable` is the check that forbids it.

use super::CheckResult;
use crate::history::{fmt_time, Entry, OpType, What};
use crate::scenario::CheckKind;
use std::collections::BTreeMap;

/// One server's final copy of one key.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Copy {
    server: String,
    value: Option<String>,
    version: String,
    answered: bool,
}

/// key -> copies, from the `final` pseudo-client's completed reads.
fn final_copies(history: &[Entry]) -> BTreeMap<String, Vec<Copy>> {
    let mut copies: BTreeMap<String, Vec<Copy>> = BTreeMap::new();
    for entry in history.iter().filter(|e| e.node == "final") {
        let What::Op { op } = &entry.what else {
            continue;
        };
        if op.kind == OpType::Invoke {
            continue;
        }
        let detail = op.detail.clone().unwrap_or_default();
        let mut words = detail.split_whitespace();
        let server = words
            .next()
            .unwrap_or_default()
            .trim_end_matches(':')
            .to_string();
        let version = match (words.next(), words.next()) {
            (Some("version"), Some(v)) => v.to_string(),
            _ => String::new(),
        };
        copies
            .entry(op.key.clone().unwrap_or_default())
            .or_default()
            .push(Copy {
                server,
                value: op
                    .value
                    .as_ref()
                    .and_then(|v| v.as_str())
                    .map(str::to_string),
                version,
                answered: op.kind == OpType::Ok,
            });
    }
    copies
}

fn describe(copy: &Copy) -> String {
    match (&copy.value, copy.answered) {
        (_, false) => format!("{} did not answer", copy.server),
        (None, true) => format!("{} has no value", copy.server),
        (Some(v), true) => format!("{} holds {v} (version {})", copy.server, copy.version),
    }
}

/// Every live server holds the same value and version of every key.
pub fn converged(history: &[Entry]) -> CheckResult {
    let copies = final_copies(history);
    if copies.is_empty() {
        return CheckResult::new(
            CheckKind::Converged,
            false,
            "no final reads were recorded (no live server?)",
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
            diverged.push(format!("key {key}: {}", what.join("; ")));
        }
    }
    if let Some(first) = diverged.first() {
        let more = match diverged.len() {
            1 => String::new(),
            n => format!(" ({n} keys diverge)"),
        };
        return CheckResult::new(CheckKind::Converged, false, format!("{first}{more}"));
    }
    let servers = copies.values().next().map_or(0, |c| c.len());
    let written = copies.values().filter(|c| c[0].value.is_some()).count();
    CheckResult::new(
        CheckKind::Converged,
        true,
        format!(
            "all {servers} live servers agree on all {} keys ({written} written)",
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
}

/// No acknowledged write is overwritten by one it causally follows.
pub fn no_lost_writes(history: &[Entry]) -> CheckResult {
    let mut writes: Vec<Write> = Vec::new();
    let mut open: BTreeMap<(String, u64), usize> = BTreeMap::new();
    // client -> (value read, time the read completed)
    let mut reads: BTreeMap<String, Vec<(String, u64)>> = BTreeMap::new();
    for entry in history.iter().filter(|e| e.node != "final") {
        let What::Op { op } = &entry.what else {
            continue;
        };
        let value = op
            .value
            .as_ref()
            .and_then(|v| v.as_str())
            .map(str::to_string);
        match (op.f.as_str(), op.kind) {
            ("put", OpType::Invoke) => {
                open.insert((entry.node.clone(), op.id), writes.len());
                writes.push(Write {
                    client: entry.node.clone(),
                    key: op.key.clone().unwrap_or_default(),
                    value: value.unwrap_or_default(),
                    invoked: entry.t,
                    acked: None,
                });
            }
            ("put", OpType::Ok) => {
                if let Some(&i) = open.get(&(entry.node.clone(), op.id)) {
                    writes[i].acked = Some(entry.t);
                }
            }
            ("get", OpType::Ok) => {
                if let Some(v) = value {
                    reads
                        .entry(entry.node.clone())
                        .or_default()
                        .push((v, entry.t));
                }
            }
            _ => {}
        }
    }
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
            let why = match &copy.value {
                None => Some("it has no value at all".to_string()),
                Some(v) if *v == w.value => None,
                Some(v) => match by_value.get(v.as_str()) {
                    None => Some(format!("its value {v} comes from no write")),
                    Some(winner) if winner.client == w.client && winner.invoked < w.invoked => {
                        Some(format!(
                            "its value {v} is an earlier write by the same client"
                        ))
                    }
                    Some(_)
                        if reads.get(&w.client).is_some_and(|r| {
                            r.iter().any(|(seen, t)| seen == v && *t < w.invoked)
                        }) =>
                    {
                        Some(format!(
                            "its value {v} was read by {} before writing {}",
                            w.client, w.value
                        ))
                    }
                    Some(_) => None,
                },
            };
            if let Some(why) = why {
                lost.push(format!(
                    "{} (put {} by {}, acknowledged at {}) is lost on {}: {why}",
                    w.value,
                    w.key,
                    w.client,
                    fmt_time(w.acked.unwrap_or(0)),
                    copy.server
                ));
            }
        }
    }
    if copies.is_empty() && !acked.is_empty() {
        return CheckResult::new(
            CheckKind::NoLostWrites,
            false,
            "no final reads were recorded (no live server?)",
        );
    }
    if let Some(first) = lost.first() {
        let more = match lost.len() {
            1 => String::new(),
            n => format!(" ({n} lost copies in all)"),
        };
        return CheckResult::new(CheckKind::NoLostWrites, false, format!("{first}{more}"));
    }
    CheckResult::new(
        CheckKind::NoLostWrites,
        true,
        format!(
            "{} acknowledged writes of {} on {} keys; no final value comes from a write they follow",
            acked.len(),
            writes.len(),
            copies.len()
        ),
    )
}
