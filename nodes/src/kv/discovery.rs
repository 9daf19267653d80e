//! Service discovery as the node sees it (seed 001's `GET /discovery-status`): which
//! registry it uses, when it last registered and heartbeat successfully, the last error,
//! and the members it knows. The membership loop in [`super::node`] fills it in.

use crate::runtime::Clock;
use std::net::SocketAddr;
use std::time::Duration;

/// One successful exchange with the registry, on the node's clocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Seen {
    local: Duration,
    wall_ms: i64,
}

impl Seen {
    fn now(clock: &Clock) -> Seen {
        Seen {
            local: clock.now(),
            wall_ms: clock.wall_ms(),
        }
    }

    fn json(seen: Option<Seen>, now: Duration) -> serde_json::Value {
        match seen {
            None => serde_json::Value::Null,
            Some(s) => serde_json::json!({
                "wall_ms": s.wall_ms,
                "ago_ms": now.saturating_sub(s.local).as_millis() as u64,
            }),
        }
    }
}

/// What the node knows of its registry.
#[derive(Clone, Debug, Default)]
pub struct Discovery {
    registry: Option<SocketAddr>,
    registered: bool,
    registrations: u64,
    last_registration: Option<Seen>,
    last_heartbeat: Option<Seen>,
    last_error: Option<String>,
}

impl Discovery {
    /// Discovery through `registry` (`None`: no registry, a static single node).
    pub fn new(registry: Option<SocketAddr>) -> Self {
        Discovery {
            registry,
            ..Default::default()
        }
    }

    /// The registry accepted the node's registration.
    pub fn registered(&mut self, clock: &Clock) {
        self.registered = true;
        self.registrations += 1;
        self.last_registration = Some(Seen::now(clock));
        self.last_error = None;
    }

    /// The registry acknowledged a heartbeat.
    pub fn heartbeat(&mut self, clock: &Clock) {
        self.last_heartbeat = Some(Seen::now(clock));
        self.last_error = None;
    }

    /// A registry call failed; `forgotten`: the registry no longer knows the node.
    pub fn failed(&mut self, why: String, forgotten: bool) {
        if forgotten {
            self.registered = false;
        }
        self.last_error = Some(why);
    }

    /// `GET /discovery-status`, with the members the node routes by.
    pub fn status(&self, clock: &Clock, members: &[(&str, &str)]) -> serde_json::Value {
        let now = clock.now();
        let members: Vec<serde_json::Value> = members
            .iter()
            .map(|(id, address)| serde_json::json!({ "id": id, "address": address }))
            .collect();
        serde_json::json!({
            "enabled": self.registry.is_some(),
            "registry": self.registry.map(|r| format!("http://{r}")),
            "registered": self.registered,
            "registrations": self.registrations,
            "last_registration": Seen::json(self.last_registration, now),
            "last_heartbeat": Seen::json(self.last_heartbeat, now),
            "last_error": self.last_error,
            "members": members,
        })
    }
}
