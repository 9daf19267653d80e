//! The wire-tap seam: which peer messages a node sent and received, for pictures.
//!
//! The transport numbers every message a node sends (one counter per node) and carries the
//! number in the message's envelope, so a send and its receipt can be paired exactly: an
//! arrow of a space-time diagram, or a message that never arrived. Nodes never read the
//! tap; in real mode it is off, and in simulation the harness turns it on only when a run's
//! picture is wanted, keeping the taps out of the trace (and its hash) either way.

use std::sync::Arc;

/// What a peer message is, for people: its wire tag (`HEARTBEAT`, `APPEND`, ...).
pub trait MessageKind {
    /// The message's tag.
    fn kind(&self) -> &'static str;
}

/// One tapped message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tapped {
    /// This node queued message number `id` (its own numbering) for peer `to`.
    Sent {
        /// Receiving peer.
        to: u64,
        /// The sender's number for it.
        id: u64,
        /// Its tag.
        kind: &'static str,
    },
    /// This node received message number `id` of peer `from`.
    Received {
        /// Sending peer.
        from: u64,
        /// The sender's number for it.
        id: u64,
        /// Its tag.
        kind: &'static str,
    },
}

/// Where tapped messages go (nowhere by default).
#[derive(Clone, Default)]
pub struct WireTap(Option<Arc<dyn Fn(Tapped) + Send + Sync>>);

impl WireTap {
    /// A tap that records nothing (real mode, and simulated runs without a picture).
    pub fn off() -> Self {
        WireTap(None)
    }

    /// A tap handing every message to `f`.
    pub fn new(f: impl Fn(Tapped) + Send + Sync + 'static) -> Self {
        WireTap(Some(Arc::new(f)))
    }

    /// Records one message, if the tap is on.
    pub fn tap(&self, message: Tapped) {
        if let Some(f) = &self.0 {
            f(message)
        }
    }
}
