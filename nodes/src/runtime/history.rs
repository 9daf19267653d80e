//! The history's line format, shared by the simulator's `--trace` and real nodes.
//!
//! Every line of a history is one JSON object: `t` (nanoseconds since the run started),
//! `node` (`n1`, `c2`, `registry`, ...) and, flattened beside them, what happened, tagged
//! by `type`. The simulator's history (`sim::history::Entry`) is a [`Stamped`] of its own
//! `What`; a real node writes a [`Stamped`] of [`NodeLine`], whose only variant is the
//! simulator's `event` line, so `sim check` reads a real node's file as it reads a trace.

use super::{Clock, EventSink, NodeEvent};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// One history line: when, who, and (flattened) what.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stamped<T> {
    /// Nanoseconds since the run started.
    pub t: u64,
    /// The node it is about.
    pub node: String,
    /// What happened.
    #[serde(flatten)]
    pub what: T,
}

/// The lines a node writes about itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NodeLine {
    /// A node reported something about itself.
    Event {
        /// The event.
        data: NodeEvent,
    },
}

/// One history line as text (no newline).
pub fn to_line<T: Serialize>(line: &Stamped<T>) -> String {
    // Plain data with string keys: serialization cannot fail.
    serde_json::to_string(line).unwrap_or_default()
}

/// A sink appending each event to the history file `path` as a [`NodeLine`] of `node`,
/// stamped with `clock`'s true time ([`Clock::true_unix_ns`]) minus `start_unix_ms`. A
/// restarted node appends to the same file; each line is written whole before the event
/// returns, so a SIGKILL loses no event already emitted.
pub fn file_sink(
    path: &Path,
    node: &str,
    clock: &Clock,
    start_unix_ms: u64,
) -> Result<EventSink, String> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("--history {}: {e}", path.display()))?;
    let file = Arc::new(Mutex::new(file));
    let (node, clock) = (node.to_string(), clock.clone());
    let start_ns = start_unix_ms.saturating_mul(1_000_000);
    Ok(EventSink::new(move |event| {
        let line = Stamped {
            t: clock.true_unix_ns().saturating_sub(start_ns),
            node: node.clone(),
            what: NodeLine::Event { data: event },
        };
        let mut text = to_line(&line);
        text.push('\n');
        let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = file.write_all(text.as_bytes()) {
            eprintln!("{node}: cannot write its history: {e}");
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::Role;

    #[test]
    fn an_event_line_carries_time_node_type_and_data() {
        let line = Stamped {
            t: 1_500_000_000,
            node: "n2".to_string(),
            what: NodeLine::Event {
                data: NodeEvent::Role {
                    role: Role::Leader,
                    term: 3,
                    leader: Some(2),
                },
            },
        };
        let text = to_line(&line);
        assert_eq!(
            text,
            r#"{"t":1500000000,"node":"n2","type":"event","data":{"event":"role","role":"leader","term":3,"leader":2}}"#
        );
        assert_eq!(
            serde_json::from_str::<Stamped<NodeLine>>(&text).unwrap(),
            line
        );
    }
}
