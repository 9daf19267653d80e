//! What a chat node keeps in its durable log, and how it is read back on restart.
//!
//! Records are appended and synced before the node acts on them: a delivered entry before
//! it is shown or acknowledged, a stored (accepted) entry before STORED is sent, a promise
//! before a sync reply. Recovery replays them in order; the log seam has already cut off
//! any torn or corrupt tail, so a damaged record is lost (and fetched again from the
//! leader), never delivered as garbage.

use super::message::Entry;
use crate::election::Persisted;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One durable record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Record {
    /// The election's term and vote.
    Election(Persisted),
    /// An entry delivered at its position.
    Delivered(Entry),
    /// Majority commit: an entry stored for a leader, not yet delivered.
    Stored(Entry),
    /// Majority commit: this node will ignore leaders of lower terms.
    Promise(u64),
}

/// The state rebuilt from the records.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Recovered {
    /// Election state.
    pub election: Persisted,
    /// Delivered entries, seq 1, 2, ... without gaps.
    pub delivered: Vec<Entry>,
    /// Stored-but-undelivered entries by seq.
    pub stored: BTreeMap<u64, Entry>,
    /// Highest promised term.
    pub promised: u64,
}

/// Replays records (already validated by the log seam) into state.
pub fn recover(records: &[Vec<u8>]) -> Recovered {
    let mut state = Recovered::default();
    for bytes in records {
        let Ok(record) = serde_json::from_slice::<Record>(bytes) else {
            continue; // a record from another version: skip rather than guess
        };
        match record {
            Record::Election(p) => state.election = p,
            Record::Promise(term) => state.promised = state.promised.max(term),
            Record::Stored(entry) => {
                if entry.seq > state.delivered.len() as u64 {
                    state.stored.insert(entry.seq, entry);
                }
            }
            Record::Delivered(entry) => {
                if entry.seq == state.delivered.len() as u64 + 1 {
                    state.stored.remove(&entry.seq);
                    state.delivered.push(entry);
                }
            }
        }
    }
    state
}
