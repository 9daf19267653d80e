//! The recorded history: one ordered trace of everything a run did.
//!
//! Node events, client operations (Jepsen-style invoke / ok / fail / info) and applied
//! faults land here in the order they happened, each with the simulated time and the node.
//! Checkers read only this, never node internals, so they could judge a real cluster's logs
//! as well. The trace hash is a SHA-256 over the entries' typed fields ([`crate::digest`]):
//! same trace, same hash.

use crate::scenario::Action;
use nodes::kv::Version;
use nodes::runtime::NodeEvent;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

/// One line of the trace: time (simulated, or true time on a real run), node and what
/// happened, in the line format real nodes write too ([`nodes::runtime::history`]).
pub type Entry = nodes::runtime::history::Stamped<What>;

/// The kinds of trace lines. `Event` lines are the ones real nodes write themselves
/// ([`nodes::runtime::history::NodeLine`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum What {
    /// A node reported something about itself.
    Event {
        /// The event.
        data: NodeEvent,
    },
    /// The harness applied a fault.
    Fault {
        /// The fault as applied.
        fault: AppliedFault,
    },
    /// A client operation event.
    Op {
        /// The operation event.
        op: OpEvent,
    },
    /// A node's entry point returned an error (it could not start, say).
    Error {
        /// The error text.
        message: String,
    },
}

/// A fault as the harness applied it, with selectors resolved to node names.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AppliedFault {
    /// The action, serialized snake_case as in scenario files (`crash`, `partition`, ...).
    pub action: Action,
    /// Target node, resolved from `leader` / `random`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// `partition`: the groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<Vec<String>>,
    /// Link source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Link target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// `skew`: wall-clock offset in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset_ms: Option<i64>,
    /// `skew`: drift.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<f64>,
    /// `loss`: rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// `latency`: range in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range_ms: Option<[f64; 2]>,
    /// `disk`: mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// `slow`: the work factor set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<f64>,
    /// Why nothing was done (no live leader to crash, node already down, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// What the fault did, when worth saying (the disk damage, say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<String>,
}

impl AppliedFault {
    /// The fault `action` with nothing resolved or done yet.
    pub fn new(action: Action) -> AppliedFault {
        AppliedFault {
            action,
            node: None,
            groups: Vec::new(),
            from: None,
            to: None,
            offset_ms: None,
            drift: None,
            rate: None,
            range_ms: None,
            mode: None,
            factor: None,
            skipped: None,
            effect: None,
        }
    }
}

/// Jepsen's operation event types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpType {
    /// The client called.
    Invoke,
    /// It definitely happened.
    Ok,
    /// It definitely did not happen.
    Fail,
    /// Unknown: it may or may not have happened (timeout).
    Info,
}

/// Who ran an operation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    /// A workload client: what the client-history checks (`linearizable`, ...) judge.
    #[default]
    Client,
    /// The harness itself (final reads, liveness probes): evidence for the checks that
    /// ask for it, never part of the clients' history.
    Harness,
}

impl Actor {
    fn is_client(&self) -> bool {
        *self == Actor::Client
    }
}

/// One client operation event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpEvent {
    /// Invoke, ok, fail or info.
    pub kind: OpType,
    /// Operation name (`send`, `put`, `get`, ...).
    pub f: String,
    /// Client-unique operation id; the completion repeats the invoke's.
    pub id: u64,
    /// A workload client's operation, or the harness's.
    #[serde(default, skip_serializing_if = "Actor::is_client")]
    pub actor: Actor,
    /// Key, for keyed operations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Value written or read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
    /// The server the operation went to (the one that answered, on a completion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// kv: the version the server reported for the value written or read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Version>,
    /// chat: the sequence number the client was told its message got.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// Extra detail for people (error text, ...); checkers never parse it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// On a completion: every attempt the operation made, in order (recorded when the
    /// scenario uses the overload client model, see `Scenario::records_attempts`). An
    /// operation is invoked once and ends once; its attempts are the load it added.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<Attempt>,
}

/// One attempt of a client operation: one request to one server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// Simulated nanoseconds since the start when the request was sent.
    pub t: u64,
    /// The server it went to.
    pub server: String,
    /// What came back.
    #[serde(flatten)]
    pub result: AttemptResult,
}

/// What one attempt got.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum AttemptResult {
    /// The server answered with this HTTP status (2xx, 404 on a read of a missing key,
    /// 429 when it shed the request, 5xx, ...).
    Answered {
        /// The HTTP status code.
        status: u16,
    },
    /// The connection was refused: the request was never sent.
    Unreachable,
    /// No answer within the workload's `timeout`: it may still take effect.
    Timeout,
    /// The connection broke, or the answer was not understood: it may have taken effect.
    Broken,
}

impl AttemptResult {
    /// True for a 2xx answer.
    pub fn is_success(&self) -> bool {
        matches!(self, AttemptResult::Answered { status } if (200..300).contains(status))
    }

    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            AttemptResult::Answered { status } => Some(*status),
            _ => None,
        }
    }
}

impl OpEvent {
    /// An operation event with only its kind, name and id set.
    pub fn new(kind: OpType, f: &str, id: u64) -> Self {
        OpEvent {
            kind,
            f: f.to_string(),
            id,
            actor: Actor::Client,
            key: None,
            value: None,
            server: None,
            version: None,
            seq: None,
            detail: None,
            attempts: Vec::new(),
        }
    }

    /// Sets the attempts.
    pub fn attempts(mut self, attempts: Vec<Attempt>) -> Self {
        self.attempts = attempts;
        self
    }

    /// What the operation's last attempt got, when attempts were recorded.
    pub fn last_attempt(&self) -> Option<&AttemptResult> {
        self.attempts.last().map(|a| &a.result)
    }

    /// Marks it as the harness's own operation.
    pub fn by_harness(mut self) -> Self {
        self.actor = Actor::Harness;
        self
    }

    /// Sets the key.
    pub fn key(mut self, key: &str) -> Self {
        self.key = Some(key.to_string());
        self
    }

    /// Sets a string value (or none).
    pub fn value(mut self, value: Option<&str>) -> Self {
        self.value = value.map(|v| serde_json::Value::String(v.to_string()));
        self
    }

    /// Sets the server.
    pub fn server(mut self, server: &str) -> Self {
        self.server = Some(server.to_string());
        self
    }

    /// Sets the version.
    pub fn version(mut self, version: Version) -> Self {
        self.version = Some(version);
        self
    }

    /// Sets the sequence number.
    pub fn seq(mut self, seq: u64) -> Self {
        self.seq = Some(seq);
        self
    }

    /// Sets the human detail.
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// The value as a string, if it is one.
    pub fn value_str(&self) -> Option<&str> {
        self.value.as_ref().and_then(|v| v.as_str())
    }
}

/// A peer message a node sent or received, for pictures: kept beside the history, never
/// in the trace (or its hash), and recorded only when a picture is wanted.
#[derive(Clone, Debug, PartialEq)]
pub struct WireEntry {
    /// Simulated ns since the start.
    pub t: u64,
    /// The node that sent or received it.
    pub node: String,
    /// What the node's transport saw.
    pub tapped: nodes::runtime::wire::Tapped,
}

/// Entries a recorder makes room for at once (a KV fuzz seed records about a thousand).
const EXPECTED_ENTRIES: usize = 1024;

/// A shared, append-only recorder; clones record into the same history.
#[derive(Clone)]
pub struct Recorder {
    entries: Arc<Mutex<Vec<Entry>>>,
    /// Tapped messages, when recording them (see [`WireEntry`]).
    wire: Option<Arc<Mutex<Vec<WireEntry>>>>,
    /// Each node's HTTP call counter, kept across its restarts.
    calls: Arc<Mutex<BTreeMap<String, Arc<AtomicU64>>>>,
    start: Instant,
}

impl Recorder {
    /// A recorder whose time zero is now (call inside the simulation).
    pub fn new() -> Self {
        Recorder {
            // Room for a typical run's history at once: growing it by doubling copied
            // the whole history every time, onto fresh pages (issue 16).
            entries: Arc::new(Mutex::new(Vec::with_capacity(EXPECTED_ENTRIES))),
            wire: None,
            calls: Arc::default(),
            start: Instant::now(),
        }
    }

    /// A recorder that also keeps the nodes' peer messages.
    pub fn with_messages() -> Self {
        Recorder {
            wire: Some(Arc::default()),
            ..Self::new()
        }
    }

    /// The wire tap for node `node`: records into this recorder, or off.
    pub fn wire_tap(&self, node: &str) -> nodes::runtime::WireTap {
        let Some(wire) = self.wire.clone() else {
            return nodes::runtime::WireTap::off();
        };
        let counter = {
            let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
            calls
                .entry(node.to_string())
                .or_insert_with(|| Arc::new(AtomicU64::new(1)))
                .clone()
        };
        let (node, start) = (node.to_string(), self.start);
        nodes::runtime::WireTap::numbering(counter, move |tapped| {
            let t = Instant::now().saturating_duration_since(start).as_nanos() as u64;
            let entry = WireEntry {
                t,
                node: node.clone(),
                tapped,
            };
            wire.lock().unwrap_or_else(|e| e.into_inner()).push(entry);
        })
    }

    /// The tapped messages so far (empty unless recording them).
    pub fn messages(&self) -> Vec<WireEntry> {
        self.wire.as_ref().map_or_else(Vec::new, |w| {
            w.lock().unwrap_or_else(|e| e.into_inner()).clone()
        })
    }

    /// Appends an entry stamped with the current simulated time.
    pub fn record(&self, node: &str, what: What) {
        let t = Instant::now()
            .saturating_duration_since(self.start)
            .as_nanos() as u64;
        let entry = Entry {
            t,
            node: node.to_string(),
            what,
        };
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(entry);
    }

    /// Simulated time since the start.
    pub fn elapsed(&self) -> std::time::Duration {
        Instant::now().saturating_duration_since(self.start)
    }

    /// The time zero of this run.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Runs `f` on the history so far, without copying it. `f` must not record.
    pub fn with_entries<T>(&self, f: impl FnOnce(&[Entry]) -> T) -> T {
        f(&self.entries.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The history so far, moved out: what the run hands to its checks once nothing
    /// records any more (later entries start a new history).
    pub fn take(&self) -> Vec<Entry> {
        std::mem::take(&mut *self.entries.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

/// One JSON line per entry (the `--trace` format).
pub fn to_json_lines(history: &[Entry]) -> String {
    let mut out = String::new();
    for entry in history {
        out.push_str(&nodes::runtime::history::to_line(entry));
        out.push('\n');
    }
    out
}

/// SHA-256 of the entries' typed fields ([`crate::digest`]), first 16 hex digits: equal
/// iff the traces are equal (for any practical purpose). Hashes no formatted text, so it
/// costs a fraction of writing the `--trace` lines.
pub fn trace_hash(history: &[Entry]) -> String {
    const CHUNK: usize = 32 << 10;
    let mut hasher = Sha256::new();
    let mut bytes = Vec::with_capacity(CHUNK + 1024);
    for entry in history {
        // Plain data: serde describes all of it (a failure would still hash the same
        // bytes on every run).
        let _ = crate::digest::append(entry, &mut bytes);
        if bytes.len() >= CHUNK {
            hasher.update(&bytes);
            bytes.clear();
        }
    }
    hasher.update(&bytes);
    let digest = hasher.finalize();
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Formats simulated nanoseconds as seconds with millisecond precision: `12.345s`.
pub fn fmt_time(t: u64) -> String {
    format!("{}.{:03}s", t / 1_000_000_000, (t / 1_000_000) % 1000)
}

/// Describes the first entry where two traces differ: its index and both versions.
pub fn first_difference(a: &[Entry], b: &[Entry]) -> Option<String> {
    let line = |e: Option<&Entry>| {
        e.map(|e| serde_json::to_string(e).unwrap_or_default())
            .unwrap_or_else(|| "<end of trace>".into())
    };
    (0..a.len().max(b.len()))
        .find(|&i| a.get(i) != b.get(i))
        .map(|i| {
            format!(
                "first difference at entry {i}:\n  run A: {}\n  run B: {}",
                line(a.get(i)),
                line(b.get(i))
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_keep_a_flat_trace_form_and_read_back() {
        let op = OpEvent::new(OpType::Fail, "put", 3).attempts(vec![
            Attempt {
                t: 5,
                server: "n1".into(),
                result: AttemptResult::Timeout,
            },
            Attempt {
                t: 9,
                server: "n2".into(),
                result: AttemptResult::Answered { status: 429 },
            },
        ]);
        let line = serde_json::to_string(&op).unwrap();
        assert!(
            line.contains(r#""attempts":[{"t":5,"server":"n1","result":"timeout"},{"t":9,"server":"n2","result":"answered","status":429}]"#),
            "{line}"
        );
        let back: OpEvent = serde_json::from_str(&line).unwrap();
        assert_eq!(back, op);
        assert_eq!(back.last_attempt().and_then(|a| a.status()), Some(429));
        // No attempts recorded: no field, as in traces written before they existed.
        let bare = serde_json::to_string(&OpEvent::new(OpType::Ok, "get", 1)).unwrap();
        assert!(!bare.contains("attempts"), "{bare}");
    }

    #[test]
    fn fault_actions_keep_their_snake_case_trace_form() {
        let mut fault = AppliedFault::new(Action::Partition);
        fault.groups = vec![vec!["n1".into()], vec!["n2".into()]];
        let line = serde_json::to_string(&fault).unwrap();
        assert_eq!(line, r#"{"action":"partition","groups":[["n1"],["n2"]]}"#);
        let back: AppliedFault = serde_json::from_str(&line).unwrap();
        assert_eq!(back, fault);
        for (action, text) in [(Action::Unclog, "unclog"), (Action::Disk, "disk")] {
            let json = serde_json::to_string(&AppliedFault::new(action)).unwrap();
            assert_eq!(json, format!(r#"{{"action":"{text}"}}"#));
        }
    }
}
