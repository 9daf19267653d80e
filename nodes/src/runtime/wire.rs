//! The wire-tap seam: which peer messages a node sent and received, for pictures.
//!
//! The transport numbers every message a node sends (one counter per node) and carries the
//! number in the message's envelope, so a send and its receipt can be paired exactly: an
//! arrow of a space-time diagram, or a message that never arrived. HTTP calls (the KV
//! system, the registry, the balancer) are paired the same way: a tapped [`crate::pool`]
//! numbers each request from the tap's counter and carries the number in the
//! [`CALL_HEADER`] header, and a tapped [`crate::http::serve`] reports the requests that
//! carry one. Nodes never read the tap; in real mode it is off (no number, no header), and
//! in simulation the harness turns it on only when a run's picture is wanted, keeping the
//! taps out of the trace (and its hash) either way.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The request header that carries a tapped HTTP call's number.
pub const CALL_HEADER: &str = "x-wire-call";

/// What a peer message is, for people: its wire tag (`HEARTBEAT`, `APPEND`, ...).
pub trait MessageKind {
    /// The message's tag.
    fn kind(&self) -> &'static str;
}

/// How a tapped HTTP call ended, as its caller saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallEnd {
    /// Answered with this status.
    Status(u16),
    /// Never sent: the connection was refused or could not be made.
    Unreachable,
    /// Sent, but the connection broke or the answer was not understood.
    Broken,
    /// Sent, but no answer within the call's timeout.
    Timeout,
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
    /// This node started HTTP call number `id` (its tap's numbering) to `to`.
    Called {
        /// The address called.
        to: SocketAddr,
        /// The caller's number for it.
        id: u64,
        /// What it asks (see [`route_kind`]).
        kind: &'static str,
    },
    /// The caller's end of call `id`.
    Answered {
        /// The caller's number for it.
        id: u64,
        /// How it ended.
        end: CallEnd,
    },
    /// This node began serving call number `id` of the caller at `from`.
    Served {
        /// The caller's address.
        from: SocketAddr,
        /// The caller's number for it.
        id: u64,
    },
    /// This node answered call number `id` of the caller at `from` with `status`.
    Replied {
        /// The caller's address.
        from: SocketAddr,
        /// The caller's number for it.
        id: u64,
        /// The answer's status.
        status: u16,
    },
}

/// The tag of an HTTP request, for people: what the path asks (`REPLICATE`, `GOSSIP`,
/// `PUT`, `GET`, `HEARTBEAT`, ...), so arrows can be told apart and routine ones folded.
pub fn route_kind(method: &str, path: &str) -> &'static str {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    match (method, path) {
        (_, "/replicate") => "REPLICATE",
        (_, "/gossip") => "GOSSIP",
        (_, "/gossip/items") => "GOSSIP_ITEMS",
        (_, "/register") => "REGISTER",
        (_, "/heartbeat") => "HEARTBEAT",
        (_, "/deregister") => "DEREGISTER",
        (_, "/nodes") => "NODES",
        (_, "/health") => "HEALTH",
        ("GET", p) if p.starts_with("/data/") && query.contains("local=true") => "READ_REPLICA",
        ("GET", p) if p.starts_with("/data/") => "GET",
        ("POST" | "PUT", p) if p == "/data" || p.starts_with("/data/") => "PUT",
        ("DELETE", p) if p.starts_with("/data/") => "DELETE",
        _ => "HTTP",
    }
}

struct Tap {
    f: Box<dyn Fn(Tapped) + Send + Sync>,
    /// The number of the next HTTP call (shared by every clone of the tap).
    next_call: Arc<AtomicU64>,
}

/// Where tapped messages go (nowhere by default).
#[derive(Clone, Default)]
pub struct WireTap(Option<Arc<Tap>>);

impl WireTap {
    /// A tap that records nothing (real mode, and simulated runs without a picture).
    pub fn off() -> Self {
        WireTap(None)
    }

    /// A tap handing every message to `f`.
    pub fn new(f: impl Fn(Tapped) + Send + Sync + 'static) -> Self {
        Self::numbering(Arc::new(AtomicU64::new(1)), f)
    }

    /// A tap handing every message to `f` that numbers HTTP calls from `counter` (shared
    /// with the node's earlier taps, so a restarted node's calls stay told apart).
    pub fn numbering(counter: Arc<AtomicU64>, f: impl Fn(Tapped) + Send + Sync + 'static) -> Self {
        WireTap(Some(Arc::new(Tap {
            f: Box::new(f),
            next_call: counter,
        })))
    }

    /// Whether the tap records anything.
    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }

    /// Records one message, if the tap is on.
    pub fn tap(&self, message: Tapped) {
        if let Some(tap) = &self.0 {
            (tap.f)(message)
        }
    }

    /// A number for the next HTTP call, if the tap is on (none: send no header).
    pub fn next_call(&self) -> Option<u64> {
        self.0
            .as_ref()
            .map(|tap| tap.next_call.fetch_add(1, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn an_off_tap_numbers_nothing_and_an_on_tap_counts_across_clones() {
        assert_eq!(WireTap::off().next_call(), None);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let tap = {
            let seen = seen.clone();
            WireTap::numbering(Arc::new(AtomicU64::new(5)), move |t| {
                seen.lock().unwrap().push(t)
            })
        };
        let clone = tap.clone();
        assert_eq!(tap.next_call(), Some(5));
        assert_eq!(clone.next_call(), Some(6));
        clone.tap(Tapped::Answered {
            id: 6,
            end: CallEnd::Timeout,
        });
        assert_eq!(seen.lock().unwrap().len(), 1);
    }

    #[test]
    fn routes_are_named_by_what_they_ask() {
        assert_eq!(route_kind("POST", "/replicate"), "REPLICATE");
        assert_eq!(route_kind("POST", "/gossip/items"), "GOSSIP_ITEMS");
        assert_eq!(route_kind("GET", "/data/k1?local=true"), "READ_REPLICA");
        assert_eq!(route_kind("GET", "/data/k1"), "GET");
        assert_eq!(route_kind("POST", "/data"), "PUT");
        assert_eq!(route_kind("POST", "/heartbeat"), "HEARTBEAT");
        assert_eq!(route_kind("GET", "/lb-stats"), "HTTP");
    }
}
