//! Election invariants: who believed they led, when, in which term.
//!
//! - `election_safety`: at most one leader per term, ever (Raft's Election Safety).
//! - `single_leader`: no two servers believe themselves leader at the same simulated
//!   instant. A paused node's beliefs are frozen with it; after it resumes, its old leader
//!   belief counts again from the first moment it acts on it (sends heartbeats or sequences
//!   a message as leader),
//!   and not at all if it steps down first — which is what a lease makes it do.
//! - `leader_elected`: within a deadline after the last fault there is a live leader that
//!   every live server connected to it agrees on — a majority of the live servers, not a
//!   leader alone in a minority — and it stays so to the end.

use super::view::{ClusterView, Liveness};
use super::CheckResult;
use crate::history::{fmt_time, Entry, What};
use crate::scenario::{Action, CheckKind};
use nodes::runtime::{NodeEvent, Role};
use std::collections::BTreeMap;
use std::time::Duration;

/// `leader_elected` deadline when the scenario gives no `within`.
pub const DEFAULT_WITHIN: Duration = Duration::from_secs(10);

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
    fn acting_leaders(&self) -> Vec<(String, u64)> {
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

    /// One character for a server's state: `L` leader, `-` following, `c` candidate,
    /// `?` no leader known, `X` down, `P` paused, `.` up with no role (a KV node), blank
    /// before it started.
    pub fn glyph(&self, server: &str) -> char {
        match (self.view.liveness(server), self.beliefs.get(server)) {
            (Liveness::Down, _) => 'X',
            (Liveness::Paused, _) => 'P',
            (_, None) if self.started.contains(server) => '.',
            (_, None) => ' ',
            (_, Some(b)) => match (b.role, b.leader) {
                (Role::Leader, _) => 'L',
                (Role::Candidate, _) => 'c',
                (Role::Follower, Some(_)) => '-',
                (Role::Follower, None) => '?',
            },
        }
    }

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

/// At most one leader per term.
pub fn election_safety(history: &[Entry]) -> CheckResult {
    let mut first: BTreeMap<u64, (&str, u64)> = BTreeMap::new();
    let mut violations = Vec::new();
    for entry in history {
        if let What::Event {
            data:
                NodeEvent::Role {
                    role: Role::Leader,
                    term,
                    ..
                },
        } = &entry.what
        {
            match first.get(term) {
                None => {
                    first.insert(*term, (&entry.node, entry.t));
                }
                Some(&(other, since)) if other != entry.node => violations.push(format!(
                    "term {term} has two leaders: {other} (from {}) and {} (from {})",
                    fmt_time(since),
                    entry.node,
                    fmt_time(entry.t)
                )),
                Some(_) => {}
            }
        }
    }
    if let Some(first_violation) = violations.first() {
        let more = match violations.len() {
            1 => String::new(),
            n => format!(" (and {} more terms)", n - 1),
        };
        return CheckResult::violation(
            CheckKind::ElectionSafety,
            format!("{first_violation}{more}"),
        );
    }
    let terms: Vec<String> = first
        .iter()
        .map(|(term, (node, _))| format!("{term}:{node}"))
        .collect();
    if terms.is_empty() {
        return CheckResult::vacuous(
            CheckKind::ElectionSafety,
            "no leader was ever elected: no term to judge",
        );
    }
    CheckResult::pass(
        CheckKind::ElectionSafety,
        format!(
            "{} terms, one leader each (term:leader {})",
            terms.len(),
            terms.join(" ")
        ),
    )
}

/// No two servers believe they lead at the same instant.
pub fn single_leader(history: &[Entry], end: u64) -> CheckResult {
    let mut replay = Replay::new(history);
    let mut open: Option<(u64, Vec<(String, u64)>)> = None;
    // (from, to, the leaders and their terms)
    type Overlap = (u64, u64, Vec<(String, u64)>);
    let mut overlaps: Vec<Overlap> = Vec::new();
    let mut ever_led = false;
    while let Some(t) = replay.next_instant() {
        let leaders = replay.acting_leaders();
        ever_led |= !leaders.is_empty();
        match (&open, leaders.len() >= 2) {
            (None, true) => open = Some((t, leaders)),
            (Some(_), false) => {
                if let Some((start, who)) = open.take() {
                    overlaps.push((start, t, who));
                }
            }
            _ => {}
        }
    }
    if let Some((start, who)) = open.take() {
        overlaps.push((start, end.max(start), who));
    }
    let Some((start, stop, who)) = overlaps.first() else {
        if !ever_led {
            return CheckResult::vacuous(
                CheckKind::SingleLeader,
                "no server ever acted as leader: no instant to judge",
            );
        }
        return CheckResult::pass(
            CheckKind::SingleLeader,
            "never two acting leaders at the same instant",
        );
    };
    let names: Vec<String> = who
        .iter()
        .map(|(n, term)| format!("{n} (term {term})"))
        .collect();
    let total: u64 = overlaps.iter().map(|(a, b, _)| b - a).sum();
    let mut detail = format!(
        "{} both believed they led from {} to {} ({} ms)",
        names.join(" and "),
        fmt_time(*start),
        fmt_time(*stop),
        (stop - start) / 1_000_000
    );
    if overlaps.len() > 1 {
        detail.push_str(&format!(
            "; {} overlaps in all, {} ms in total",
            overlaps.len(),
            total / 1_000_000
        ));
    }
    CheckResult::violation(CheckKind::SingleLeader, detail)
}

/// Within `within` of the last fault, a live leader all connected live servers agree on,
/// holding to the end.
pub fn leader_elected(history: &[Entry], end: u64, within: Duration) -> CheckResult {
    let last_fault = history
        .iter()
        .filter(|e| matches!(e.what, What::Fault { .. }))
        .map(|e| e.t)
        .max()
        .unwrap_or(0);
    let deadline = last_fault + within.as_nanos() as u64;
    let mut replay = Replay::new(history);
    // Start of the current stretch in which an agreed leader exists, and who it is.
    let mut stretch: Option<(u64, String, u64)> = None;
    let mut last_state = String::new();
    while let Some(t) = replay.next_instant() {
        let agreed = agreed_leader(&replay);
        stretch = match (stretch, agreed) {
            (Some(s), Some((leader, term))) if s.1 == leader && s.2 == term => Some(s),
            (_, Some((leader, term))) => Some((t, leader, term)),
            (_, None) => None,
        };
        last_state = replay
            .servers
            .iter()
            .map(|s| replay.describe(s))
            .collect::<Vec<_>>()
            .join("; ");
    }
    let after = if last_fault == 0 {
        "the start".to_string()
    } else {
        format!("the last fault at {}", fmt_time(last_fault))
    };
    match stretch {
        None => CheckResult::new(
            CheckKind::LeaderElected,
            false,
            format!(
                "no agreed live leader at the end ({}): {last_state}",
                fmt_time(end)
            ),
        ),
        Some((since, leader, term)) if since > deadline => CheckResult::new(
            CheckKind::LeaderElected,
            false,
            format!(
                "{leader} (term {term}) became the agreed leader only at {}, {} ms after {after}; \
                 the deadline was {} ms",
                fmt_time(since),
                (since - last_fault) / 1_000_000,
                within.as_millis()
            ),
        ),
        Some((since, leader, term)) => CheckResult::new(
            CheckKind::LeaderElected,
            true,
            format!(
                "{leader} leads term {term}, agreed from {} ({} ms after {after}) to the end",
                fmt_time(since),
                since.saturating_sub(last_fault) / 1_000_000
            ),
        ),
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
