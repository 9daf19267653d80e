//! A one-line notation for hand-made test histories (tests only).
//!
//! Events are separated by `|`, in real-time order (event `i` happens at time `i`):
//! `C w V`, `C r`, `C cas A B`, `C get`, `C put S`, `C append S` invoke an operation for
//! client `C` (append `@key` for a key); `C ok [V]`, `C fail`, `C info` complete client
//! `C`'s open operation (`V` is what a read or get returned). Values: `nil`, integers,
//! `"quoted strings"` or bare words (strings).

use std::collections::HashMap;

use super::edn::Edn;
use super::history::JepsenOperation;
use super::load::{pair_events, EventKind, Format, Function, RawEvent};

/// One event of the notation.
pub(crate) type Event = RawEvent;

fn value(token: &str) -> Edn {
    if token == "nil" {
        Edn::Nil
    } else if let Ok(number) = token.parse() {
        Edn::Int(number)
    } else {
        Edn::Str(token.trim_matches('"').to_string())
    }
}

/// Parses the notation (panics on a mistake: tests only).
pub(crate) fn ops(spec: &str) -> Vec<Event> {
    let mut open: HashMap<u64, Function> = HashMap::new();
    let mut events = Vec::new();
    for (time, text) in spec.split('|').enumerate() {
        let mut words: Vec<&str> = text.split_whitespace().collect();
        let key = match words.last() {
            Some(last) if last.starts_with('@') => {
                let key = last[1..].to_string();
                words.pop();
                Some(key)
            }
            _ => None,
        };
        let client: u64 = words[0].parse().expect("client number");
        let (kind, function, value) = match words[1] {
            "ok" | "fail" | "info" => {
                let function = open.remove(&client).expect("an open operation");
                let kind = EventKind::parse(words[1]).expect("kind");
                let value = words.get(2).map_or(Edn::Nil, |token| value(token));
                (kind, function, value)
            }
            name => {
                let function = match name {
                    "r" => Function::Read,
                    "w" => Function::Write,
                    other => Function::parse(other).expect("an operation name"),
                };
                open.insert(client, function);
                let value = match words.len() {
                    2 => Edn::Nil,
                    3 => value(words[2]),
                    _ => Edn::Vector(words[2..].iter().map(|token| value(token)).collect()),
                };
                (EventKind::Invoke, function, value)
            }
        };
        events.push(RawEvent {
            line: time + 1,
            col: 1,
            process: client,
            kind,
            function,
            function_at: (time + 1, 1),
            key: key.map(|key: String| Edn::Str(key)),
            value,
            value_at: (time + 1, 1),
            time: None,
        });
    }
    events
}

/// Pairs the events into operations with the file formats' matching rules.
pub(crate) fn history(events: &[Event]) -> Vec<JepsenOperation> {
    pair_events(events.to_vec(), Format::Edn)
        .expect("a well-formed test history")
        .operations
}
