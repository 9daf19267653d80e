//! Wire messages of the bully election (sent as [`crate::runtime::frame`]s).

use serde::{Deserialize, Serialize};

/// One election message. `sent_at` is the sender's local clock in nanoseconds, echoed back
/// so a leader can date the acknowledgements that extend its lease.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Message {
    /// "I suspect the leader and am running an election": sent to higher ids only.
    Election { from: u64, term: u64 },
    /// "I am higher and alive; stand down and wait for my COORDINATOR."
    Answer { from: u64, term: u64 },
    /// Quorum mode: "would you vote for me in `term`?" — asked before the term is
    /// raised, so a node cut off from the majority cannot inflate terms and depose a
    /// healthy leader when it comes back (Raft's pre-vote).
    PreVote { from: u64, term: u64 },
    /// The reply to a PRE_VOTE; nothing is stored. `current` is the replier's term, so a
    /// candidate that fell behind (a restart with a damaged log, a long partition) learns
    /// the term it must exceed.
    PreVoteReply {
        from: u64,
        term: u64,
        current: u64,
        granted: bool,
    },
    /// "I lead `term`." Plain bully: an announcement. Quorum mode: a request for votes.
    Coordinator { from: u64, term: u64, sent_at: u64 },
    /// Quorum mode: the reply to a COORDINATOR.
    Grant { from: u64, term: u64, granted: bool },
    /// The leader's periodic "still here".
    Heartbeat { from: u64, term: u64, sent_at: u64 },
    /// Reply to a heartbeat; `ok = false` carries a higher term that deposes the sender.
    HeartbeatAck {
        from: u64,
        term: u64,
        sent_at: u64,
        ok: bool,
    },
}

impl Message {
    /// Who sent it.
    pub fn from(&self) -> u64 {
        match *self {
            Message::Election { from, .. }
            | Message::Answer { from, .. }
            | Message::PreVote { from, .. }
            | Message::PreVoteReply { from, .. }
            | Message::Coordinator { from, .. }
            | Message::Grant { from, .. }
            | Message::Heartbeat { from, .. }
            | Message::HeartbeatAck { from, .. } => from,
        }
    }
}

impl crate::runtime::wire::MessageKind for Message {
    fn kind(&self) -> &'static str {
        match self {
            Message::Election { .. } => "ELECTION",
            Message::Answer { .. } => "ANSWER",
            Message::PreVote { .. } => "PRE_VOTE",
            Message::PreVoteReply { .. } => "PRE_VOTE_REPLY",
            Message::Coordinator { .. } => "COORDINATOR",
            Message::Grant { .. } => "GRANT",
            Message::Heartbeat { .. } => "HEARTBEAT",
            Message::HeartbeatAck { .. } => "HEARTBEAT_ACK",
        }
    }
}
