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

/// Postcard's bytes for a message, written and read by hand: the variant's index, then
/// the fields in order (integers as varints, a bool as one byte). The same bytes serde
/// writes (a test holds the two to each other); anything the hand reader does not take
/// at once, it hands to postcard, whose verdict and reason stand.
impl crate::runtime::frame::Body for Message {
    fn put(&self, out: &mut Vec<u8>) -> bool {
        use crate::runtime::frame::put_varint;
        let (tag, a, b, c, flag) = match *self {
            Message::Election { from, term } => (0, from, term, None, None),
            Message::Answer { from, term } => (1, from, term, None, None),
            Message::PreVote { from, term } => (2, from, term, None, None),
            Message::PreVoteReply {
                from,
                term,
                current,
                granted,
            } => (3, from, term, Some(current), Some(granted)),
            Message::Coordinator {
                from,
                term,
                sent_at,
            } => (4, from, term, Some(sent_at), None),
            Message::Grant {
                from,
                term,
                granted,
            } => (5, from, term, None, Some(granted)),
            Message::Heartbeat {
                from,
                term,
                sent_at,
            } => (6, from, term, Some(sent_at), None),
            Message::HeartbeatAck {
                from,
                term,
                sent_at,
                ok,
            } => (7, from, term, Some(sent_at), Some(ok)),
        };
        out.push(tag);
        put_varint(out, a);
        put_varint(out, b);
        if let Some(c) = c {
            put_varint(out, c);
        }
        if let Some(flag) = flag {
            out.push(u8::from(flag));
        }
        true
    }

    fn take(bytes: &[u8]) -> Result<(Self, &[u8]), crate::runtime::frame::FrameError> {
        match take_by_hand(bytes) {
            Some(taken) => Ok(taken),
            None => crate::runtime::frame::take_postcard(bytes),
        }
    }
}

/// A bool as postcard reads one: a byte, 0 or 1.
fn flag(bytes: &[u8]) -> Option<(bool, &[u8])> {
    match bytes.split_first()? {
        (0, rest) => Some((false, rest)),
        (1, rest) => Some((true, rest)),
        _ => None,
    }
}

/// [`Body::take`](crate::runtime::frame::Body::take) for well-formed bytes whose variant
/// index is one byte; `None` for anything else (postcard then reads it).
fn take_by_hand(bytes: &[u8]) -> Option<(Message, &[u8])> {
    use crate::runtime::frame::varint;
    let (&tag, rest) = bytes.split_first()?;
    let (from, rest) = varint(rest)?;
    let (term, rest) = varint(rest)?;
    // The third integer (`current` or `sent_at`) and the bool, for the variants with them.
    let (c, rest) = match tag {
        3 | 4 | 6 | 7 => varint(rest)?,
        _ => (0, rest),
    };
    let (yes, rest) = match tag {
        3 | 5 | 7 => flag(rest)?,
        _ => (false, rest),
    };
    let message = match tag {
        0 => Message::Election { from, term },
        1 => Message::Answer { from, term },
        2 => Message::PreVote { from, term },
        3 => Message::PreVoteReply {
            from,
            term,
            current: c,
            granted: yes,
        },
        4 => Message::Coordinator {
            from,
            term,
            sent_at: c,
        },
        5 => Message::Grant {
            from,
            term,
            granted: yes,
        },
        6 => Message::Heartbeat {
            from,
            term,
            sent_at: c,
        },
        7 => Message::HeartbeatAck {
            from,
            term,
            sent_at: c,
            ok: yes,
        },
        _ => return None,
    };
    Some((message, rest))
}
