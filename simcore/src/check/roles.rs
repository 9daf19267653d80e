//! The servers' roles replayed from the history, one simulated instant at a time: what
//! each server last said about its role (and since when), whether it is up, paused or
//! down, and which servers can reach each other. The election and liveness checks judge
//! from it; the timeline and the HTML report draw it.

use super::view::{ClusterView, Liveness};
use crate::history::{fmt_time, Entry, What};
use crate::scenario::Action;
use nodes::runtime::{NodeEvent, Role};
use std::collections::BTreeMap;

/// What a server last said about its role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Belief {
    role: Role,
    term: u64,
    leader: Option<u64>,
    /// When the server said so.
    since: u64,
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Leader => "leader",
        Role::Follower => "follower",
        Role::Candidate => "candidate",
    }
}

/// Replays role events and faults, one simulated instant at a time.
pub struct Replay<'a> {
    history: &'a [Entry],
    at: usize,
    view: ClusterView,
    beliefs: BTreeMap<String, Belief>,
    /// Servers that reported `started`.
    started: std::collections::BTreeSet<String>,
    /// Resumed after a pause and not yet acted on or revised their old belief.
    stale: std::collections::BTreeSet<String>,
    servers: Vec<String>,
}

fn is_server(name: &str) -> bool {
    name.strip_prefix('n')
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

impl<'a> Replay<'a> {
    pub fn new(history: &'a [Entry]) -> Self {
        let mut servers: Vec<String> = history
            .iter()
            .map(|e| e.node.clone())
            .filter(|n| is_server(n))
            .collect();
        servers.sort_by_key(|n| n[1..].parse::<u64>().unwrap_or(0));
        servers.dedup();
        Replay {
            history,
            at: 0,
            view: ClusterView::new(history),
            beliefs: BTreeMap::new(),
            stale: Default::default(),
            started: Default::default(),
            servers,
        }
    }

    /// Applies every entry of the next instant; returns that instant.
    pub fn next_instant(&mut self) -> Option<u64> {
        let t = self.history.get(self.at)?.t;
        while let Some(entry) = self.history.get(self.at).filter(|e| e.t == t) {
            self.at += 1;
            self.view.apply(entry);
            match &entry.what {
                What::Event {
                    data: NodeEvent::Role { role, term, leader },
                } => {
                    let belief = Belief {
                        role: *role,
                        term: *term,
                        leader: *leader,
                        since: entry.t,
                    };
                    self.beliefs.insert(entry.node.clone(), belief);
                    self.stale.remove(&entry.node);
                }
                What::Event {
                    data: NodeEvent::Started { .. },
                } => {
                    self.started.insert(entry.node.clone());
                }
                What::Event {
                    data: NodeEvent::HeartbeatSent { .. } | NodeEvent::Sequenced { .. },
                } => {
                    self.stale.remove(&entry.node);
                }
                What::Fault { fault } if fault.skipped.is_none() => {
                    if let Some(node) = &fault.node {
                        match fault.action {
                            Action::Crash | Action::Shutdown | Action::Restart => {
                                self.beliefs.remove(node);
                                self.stale.remove(node);
                            }
                            Action::Pause => {
                                self.stale.insert(node.clone());
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        Some(t)
    }

    /// Servers that are up, unpaused and believe they lead.
    pub fn acting_leaders(&self) -> Vec<(String, u64)> {
        self.servers
            .iter()
            .filter(|s| self.view.liveness(s) == Liveness::Up && !self.stale.contains(*s))
            .filter_map(|s| {
                let b = self.beliefs.get(s)?;
                (b.role == Role::Leader).then(|| (s.clone(), b.term))
            })
            .collect()
    }

    /// Simulated time of the next unapplied entry.
    pub fn peek(&self) -> Option<u64> {
        self.history.get(self.at).map(|e| e.t)
    }

    /// The term `server` last reported, if it has reported a role since it (re)started.
    pub fn term_of(&self, server: &str) -> Option<u64> {
        self.beliefs.get(server).map(|b| b.term)
    }

    /// Servers seen in the history, in id order.
    pub fn servers(&self) -> &[String] {
        &self.servers
    }

    /// A server's liveness as the faults left it.
    pub fn liveness(&self, server: &str) -> Liveness {
        self.view.liveness(server)
    }

    /// True once `server` has reported `started` (a node without roles, e.g. KV).
    pub fn has_started(&self, server: &str) -> bool {
        self.started.contains(server)
    }

    /// The role `server` last reported since it (re)started, and the leader it knew.
    pub fn role(&self, server: &str) -> Option<(Role, Option<u64>)> {
        self.beliefs.get(server).map(|b| (b.role, b.leader))
    }

    /// One line on `server`'s state, for evidence: "n2: follows n1 (term 3)".
    pub fn describe(&self, server: &str) -> String {
        match (self.view.liveness(server), self.beliefs.get(server)) {
            (Liveness::Down, _) => format!("{server}: down"),
            (Liveness::Paused, _) => format!("{server}: paused"),
            (_, None) => format!("{server}: no role yet"),
            (_, Some(b)) if b.role == Role::Leader => {
                format!("{server}: leader of term {}", b.term)
            }
            (_, Some(b)) => match b.leader {
                Some(l) => format!("{server}: follows n{l} (term {})", b.term),
                None => format!("{server}: {:?} without a leader (term {})", b.role, b.term)
                    .to_lowercase(),
            },
        }
    }

    /// What `server` last said about its role and since when, for evidence:
    /// "n3 knows no leader since 41.200s (candidate, term 7)".
    pub fn knows(&self, server: &str) -> String {
        match (self.view.liveness(server), self.beliefs.get(server)) {
            (Liveness::Down, _) => format!("{server} is down"),
            (Liveness::Paused, _) => format!("{server} is paused"),
            (_, None) => format!("{server} has reported no role"),
            (_, Some(b)) => match (b.role, b.leader) {
                (Role::Leader, _) => format!(
                    "{server} has led term {} since {}",
                    b.term,
                    fmt_time(b.since)
                ),
                (role, Some(l)) => format!(
                    "{server} has followed n{l} since {} ({}, term {})",
                    fmt_time(b.since),
                    role_name(role),
                    b.term
                ),
                (role, None) => format!(
                    "{server} knows no leader since {} ({}, term {})",
                    fmt_time(b.since),
                    role_name(role),
                    b.term
                ),
            },
        }
    }

    /// Whether `server` is up (not crashed, shut down or paused) now.
    pub fn is_up(&self, server: &str) -> bool {
        self.view.liveness(server) == Liveness::Up
    }
}

/// The acting leader that the up servers connected to it all follow, provided they are
/// a majority of the up servers (a leader alone in a minority does not count).
pub(crate) fn agreed_leader(replay: &Replay<'_>) -> Option<(String, u64)> {
    let up = replay.servers.iter().filter(|s| replay.is_up(s)).count();
    let leaders = replay.acting_leaders();
    leaders.into_iter().find(|(leader, term)| {
        let id: u64 = leader[1..].parse().unwrap_or(0);
        let component = replay.view.component(leader, &replay.servers);
        component.len() * 2 > up
            && component.into_iter().all(|s| {
                replay
                    .beliefs
                    .get(s)
                    .is_some_and(|b| b.term == *term && (b.leader == Some(id)))
            })
    })
}
