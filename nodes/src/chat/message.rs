//! Chat wire formats: between nodes ([`Wire`]) and between a client and any node
//! ([`ClientRequest`] / [`ClientResponse`] / [`Delivery`]): binary frames between nodes
//! ([`crate::runtime::frame`]), JSON lines for clients.

use crate::election;
use serde::{Deserialize, Serialize};

/// One chat message as the total order holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Position in the total order, from 1.
    pub seq: u64,
    /// Term of the leader that proposed it at this position.
    pub term: u64,
    /// Client-chosen unique id; a retry reuses it, so it is delivered once.
    pub id: String,
    /// The chat line.
    pub text: String,
}

/// A message a client asks to broadcast.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submission {
    /// Client-chosen unique id.
    pub id: String,
    /// The chat line.
    pub text: String,
}

/// Node-to-node chat messages (externally tagged: the binary peer frames need no
/// self-describing form).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Message {
    /// A follower hands a client's submission to the leader; `origin` answers the client.
    Forward {
        from: u64,
        origin: u64,
        submission: Submission,
    },
    /// Leader to origin: the submission is delivered at `seq`.
    Ack { from: u64, id: String, seq: u64 },
    /// Leader to origin: the submission was not taken (`definite`) or its fate is unknown.
    Reject {
        from: u64,
        id: String,
        reason: String,
        definite: bool,
    },
    /// Majority commit: store this entry (proposed in `term`).
    Append { from: u64, term: u64, entry: Entry },
    /// Majority commit: the entry at `seq` is stored durably for `term`.
    Stored { from: u64, term: u64, seq: u64 },
    /// Committed (or, with leader commit, sequenced) entries, in order.
    Deliver {
        from: u64,
        term: u64,
        entries: Vec<Entry>,
    },
    /// The leader's periodic "delivered up to `commit`", so laggards ask to catch up.
    Beat { from: u64, term: u64, commit: u64 },
    /// A lagging node asks for delivered entries from `next` on.
    CatchUp { from: u64, next: u64 },
    /// Majority commit: a new leader of `term` asks for everything from `next` on.
    SyncRequest { from: u64, term: u64, next: u64 },
    /// The reply: delivered entries and stored-but-undelivered ones.
    SyncReply {
        from: u64,
        term: u64,
        delivered: Vec<Entry>,
        stored: Vec<Entry>,
    },
}

/// Everything on the peer port of a chat node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Wire {
    /// The embedded bully election.
    Election(election::Message),
    /// The chat protocol.
    Chat(Message),
}

impl From<election::Message> for Wire {
    fn from(m: election::Message) -> Self {
        Wire::Election(m)
    }
}

impl From<Message> for Wire {
    fn from(m: Message) -> Self {
        Wire::Chat(m)
    }
}

/// A request on the client port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ClientRequest {
    /// Broadcast a message; answered once it is delivered (or refused).
    Send { id: String, text: String },
    /// Stream every delivered message from `from` on, then new ones as they come.
    Subscribe {
        #[serde(default = "first_seq")]
        from: u64,
    },
    /// The node's role, term, leader and delivered count.
    Status,
}

fn first_seq() -> u64 {
    1
}

/// The answer to [`ClientRequest::Send`] or [`ClientRequest::Status`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ClientResponse {
    /// Delivered at `seq`.
    Sent { ok: bool, seq: u64 },
    /// Not delivered: `definite` means it never will be under this id's attempt;
    /// otherwise it may still be (the client should treat it as unknown).
    Failed {
        ok: bool,
        error: String,
        definite: bool,
    },
    /// Status.
    Status {
        node: u64,
        role: String,
        term: u64,
        leader: Option<u64>,
        delivered: u64,
    },
}

impl ClientResponse {
    /// A successful send.
    pub fn sent(seq: u64) -> Self {
        ClientResponse::Sent { ok: true, seq }
    }

    /// A failed send.
    pub fn failed(error: impl Into<String>, definite: bool) -> Self {
        ClientResponse::Failed {
            ok: false,
            error: error.into(),
            definite,
        }
    }
}

/// One line of a subscription stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// Position in the total order.
    pub seq: u64,
    /// Term of the sequencer.
    pub term: u64,
    /// Message id.
    pub id: String,
    /// The chat line.
    pub text: String,
}

/// Postcard's bytes by serde (the election's part of them by hand, see its `Message`).
impl crate::runtime::frame::Body for Wire {}

impl crate::runtime::wire::MessageKind for Wire {
    fn kind(&self) -> &'static str {
        match self {
            Wire::Election(m) => m.kind(),
            Wire::Chat(m) => match m {
                Message::Forward { .. } => "FORWARD",
                Message::Ack { .. } => "ACK",
                Message::Reject { .. } => "REJECT",
                Message::Append { .. } => "APPEND",
                Message::Stored { .. } => "STORED",
                Message::Deliver { .. } => "DELIVER",
                Message::Beat { .. } => "BEAT",
                Message::CatchUp { .. } => "CATCH_UP",
                Message::SyncRequest { .. } => "SYNC_REQUEST",
                Message::SyncReply { .. } => "SYNC_REPLY",
            },
        }
    }
}
