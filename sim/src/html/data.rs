//! What the run page draws, computed from the recorded history alone: lanes, each server's
//! role over time, fault bands, client operations as bars, notable node events, and the
//! instants where two servers acted as leader. Plain data, serialized into the page.

use crate::check::kv::FINAL;
use crate::check::roles::Replay;
use crate::history::{fmt_time, Actor, Entry, OpType, What, WireEntry};
use crate::scenario::Action;
use crate::systems::node_at;
use nodes::runtime::wire::{CallEnd, Tapped};
use nodes::runtime::{MemberState, NodeEvent};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Most operations drawn; beyond it the page says how many were left out.
pub const MAX_OPS: usize = 12_000;
/// Most final reads drawn one by one; beyond it only the cited ones are.
pub const MAX_FINAL_READS: usize = 256;
/// Most node events drawn (deliveries are folded first, see [`Page::folded`]).
pub const MAX_EVENTS: usize = 20_000;
/// Most message arrows drawn (routine traffic is left out first).
pub const MAX_ARROWS: usize = 12_000;
/// Message kinds that are routine traffic, hidden until asked for: heartbeats, the
/// registry's membership polls, health checks and anti-entropy gossip.
pub const ROUTINE: &[&str] = &[
    "HEARTBEAT",
    "HEARTBEAT_ACK",
    "BEAT",
    "NODES",
    "HEALTH",
    "GOSSIP",
    "GOSSIP_ITEMS",
];

/// A peer message: an arrow from its sender's lane to its receiver's. Serialized as an
/// array (`[from, to, sent, received, kind, routine]`, an HTTP call followed by `replied,
/// ended, end`) to keep a page with thousands of them small.
#[derive(Clone, Debug)]
pub struct Arrow {
    /// Sender lane.
    pub from: usize,
    /// Receiver lane.
    pub to: usize,
    /// Sent, ns.
    pub sent: u64,
    /// Received, ns; `None`: it never arrived (dropped, or held by a cut link to the end).
    pub received: Option<u64>,
    /// Its tag (`APPEND`, `HEARTBEAT`, ...).
    pub kind: &'static str,
    /// Heartbeats and the like: folded by default.
    pub routine: bool,
    /// HTTP calls: when the server answered, ns (`None`: it never did).
    pub replied: Option<u64>,
    /// HTTP calls: when the caller's call ended, ns (`None`: the caller gave up first).
    pub ended: Option<u64>,
    /// HTTP calls: how it ended for the caller (`200`, `429`, `timeout`, `unreachable`:
    /// never sent, `broken`), or `abandoned` when the caller stopped waiting.
    pub end: Option<String>,
}

impl Serialize for Arrow {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let call = self.end.is_some();
        let mut seq = serializer.serialize_seq(Some(if call { 9 } else { 6 }))?;
        seq.serialize_element(&self.from)?;
        seq.serialize_element(&self.to)?;
        seq.serialize_element(&self.sent)?;
        seq.serialize_element(&self.received)?;
        seq.serialize_element(self.kind)?;
        seq.serialize_element(&u8::from(self.routine))?;
        if call {
            seq.serialize_element(&self.replied)?;
            seq.serialize_element(&self.ended)?;
            seq.serialize_element(&self.end)?;
        }
        seq.end()
    }
}

/// One lane of the page: a server, the registry or balancer, a client, or a harness actor.
#[derive(Clone, Debug, Serialize)]
pub struct Lane {
    /// Node name (`n3`, `c1`, `registry`, `probe`).
    pub name: String,
    /// `server`, `service`, `client` or `harness`.
    pub kind: &'static str,
}

/// A stretch of time a server spent in one state.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Segment {
    /// Lane index.
    pub lane: usize,
    /// Start, ns of simulated time.
    pub from: u64,
    /// End, ns.
    pub to: u64,
    /// `leader`, `follower`, `candidate`, `leaderless`, `down`, `paused`, `up`.
    pub state: &'static str,
    /// The term, for roles.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub term: Option<u64>,
}

/// A fault, drawn as a band from `at` to `until` (an instant when `until == at`).
#[derive(Clone, Debug, Serialize)]
pub struct Band {
    /// Index of the fault entry in the history.
    pub entry: usize,
    /// When it was applied, ns.
    pub at: u64,
    /// When what it did ended (a heal, a restart, the end of the run), ns.
    pub until: u64,
    /// The action (`partition`, `clog`, ...).
    pub action: String,
    /// Partitions: which side of the split this band is (one band per side).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub side: Option<usize>,
    /// Lanes it touches (none: the whole cluster).
    pub lanes: Vec<usize>,
    /// One line for people.
    pub text: String,
}

/// A client (or harness) operation from invoke to completion. Serialized as an array,
/// `[entry, lane, from, to, outcome, text, server, done]` (the page adds the times to the
/// text), to keep a page with thousands of them small.
#[derive(Clone, Debug)]
pub struct Op {
    /// Index of the invoke entry in the history.
    pub entry: usize,
    /// Lane of the client.
    pub lane: usize,
    /// Invoked, ns.
    pub from: u64,
    /// Completed (or the end of the run when it never did), ns.
    pub to: u64,
    /// `ok`, `fail`, `info` or `open`.
    pub outcome: &'static str,
    /// One line for people: what, on which key, which value, answered by whom.
    pub text: String,
    /// Lane of the server it went to, if known.
    pub server: Option<usize>,
    /// Index of the completion entry in the history, if it completed.
    pub done: Option<usize>,
}

impl Serialize for Op {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (
            self.entry,
            self.lane,
            self.from,
            self.to,
            self.outcome,
            &self.text,
            self.server,
            self.done,
        )
            .serialize(serializer)
    }
}

/// A notable node event (role change, election, start, stop, refusal, error, delivery).
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    /// Index in the history.
    pub entry: usize,
    /// Lane.
    pub lane: usize,
    /// When, ns.
    pub t: u64,
    /// Short class for colour (`role`, `election`, `delivered`, `error`, ...).
    pub class: &'static str,
    /// One line for people.
    pub text: String,
}

/// A stretch in which a balancer sent a backend no requests (it took it for down).
#[derive(Clone, Debug, Serialize)]
pub struct Unhealthy {
    /// Index of the event that took it down.
    pub entry: usize,
    /// The backend's lane.
    pub lane: usize,
    /// Taken down, ns.
    pub from: u64,
    /// Taken back up (or the end of the run), ns.
    pub to: u64,
    /// One line for people: which balancer, why.
    pub text: String,
}

/// The backends' health as the balancers saw it, from their `BackendHealth` events.
fn unhealthy(history: &[Entry], end: u64, lane: &LaneOf<'_>) -> Vec<Unhealthy> {
    let mut down: BTreeMap<(String, String), Unhealthy> = BTreeMap::new();
    let mut spans = Vec::new();
    for (i, e) in history.iter().enumerate() {
        let What::Event {
            data:
                NodeEvent::BackendHealth {
                    backend,
                    healthy,
                    reason,
                },
        } = &e.what
        else {
            continue;
        };
        let key = (e.node.clone(), backend.clone());
        match (healthy, down.remove(&key)) {
            (true, Some(mut span)) => {
                span.to = e.t;
                span.text
                    .push_str(&format!(", back up at {}", fmt_time(e.t)));
                spans.push(span);
            }
            (false, open) => {
                let Some(backend_lane) = lane(backend) else {
                    continue;
                };
                let span = open.unwrap_or(Unhealthy {
                    entry: i,
                    lane: backend_lane,
                    from: e.t,
                    to: end,
                    text: format!(
                        "{} takes {backend} for down from {}{}",
                        e.node,
                        fmt_time(e.t),
                        reason.as_ref().map_or(String::new(), |r| format!(": {r}"))
                    ),
                });
                down.insert(key, span);
            }
            (true, None) => {}
        }
    }
    spans.extend(down.into_values());
    spans.sort_by_key(|s| (s.from, s.lane));
    spans
}

/// An interval where two or more servers acted as leader: `(from, to, lanes)`, ns.
pub type Overlap = (u64, u64, Vec<usize>);

/// Everything the page draws.
#[derive(Clone, Debug, Serialize)]
pub struct Page {
    /// Lanes, top to bottom.
    pub lanes: Vec<Lane>,
    /// Server states.
    pub segments: Vec<Segment>,
    /// Intervals where two or more servers acted as leader.
    pub two_leaders: Vec<Overlap>,
    /// Faults.
    pub bands: Vec<Band>,
    /// Operations.
    pub ops: Vec<Op>,
    /// Node events.
    pub events: Vec<Event>,
    /// Peer messages (empty when the run did not record them).
    pub arrows: Vec<Arrow>,
    /// Stretches a balancer took a backend for down, drawn on the backend's lane.
    pub unhealthy: Vec<Unhealthy>,
    /// End of the run, ns.
    pub end: u64,
    /// What was folded or capped to keep the page small, for the notice.
    pub folded: Vec<String>,
}

fn lane_kind(name: &str) -> (&'static str, u64) {
    let number = |prefix: char| {
        name.strip_prefix(prefix)
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<u64>().ok())
    };
    if let Some(n) = number('n') {
        ("server", n)
    } else if let Some(n) = number('c') {
        ("client", n)
    } else if matches!(name, "registry" | "lb") {
        ("service", 0)
    } else {
        ("harness", 0)
    }
}

fn lanes_of(history: &[Entry]) -> Vec<Lane> {
    let mut names: Vec<String> = history
        .iter()
        .flat_map(|e| {
            let mut names = vec![e.node.clone()];
            if let What::Fault { fault } = &e.what {
                names.extend(fault.node.iter().cloned());
                names.extend(fault.groups.iter().flatten().cloned());
            }
            names
        })
        .filter(|n| n != "harness")
        .collect();
    let order = |name: &String| {
        let (kind, n) = lane_kind(name);
        let rank = match kind {
            "server" => 0,
            "service" => 1,
            "client" => 2,
            _ => 3,
        };
        (rank, n, name.clone())
    };
    names.sort_by_key(order);
    names.dedup();
    names
        .into_iter()
        .map(|name| Lane {
            kind: lane_kind(&name).0,
            name,
        })
        .collect()
}

fn state_of(glyph: char) -> Option<&'static str> {
    Some(match glyph {
        'L' => "leader",
        '-' => "follower",
        'c' => "candidate",
        '?' => "leaderless",
        'X' => "down",
        'P' => "paused",
        '.' => "up",
        _ => return None,
    })
}

/// Builds the page's data from a history of a run that lasted `end` ns and the peer
/// messages tapped during it; `keep`: entries the checks cite, never folded away.
pub fn page(history: &[Entry], messages: &[WireEntry], end: u64, keep: &BTreeSet<usize>) -> Page {
    let lanes = lanes_of(history);
    let index: BTreeMap<&str, usize> = lanes
        .iter()
        .enumerate()
        .map(|(i, l)| (l.name.as_str(), i))
        .collect();
    let lane = |name: &str| index.get(name).copied();
    let (segments, two_leaders) = states(history, end, &lane);
    let mut folded = Vec::new();
    let bands = bands(history, end, &lanes, &lane);
    let mut ops = ops(history, end, &lane);
    let finals = ops
        .iter()
        .filter(|o| history[o.entry].node == FINAL)
        .count();
    if finals > MAX_FINAL_READS {
        ops.retain(|o| {
            history[o.entry].node != FINAL
                || keep.contains(&o.entry)
                || o.done.is_some_and(|d| keep.contains(&d))
        });
        folded.push(format!(
            "{finals} final reads (every key on every live server) are folded: only those a \
             check cites are drawn"
        ));
    }
    if ops.len() > MAX_OPS {
        folded.push(format!(
            "{} operations after the first {MAX_OPS} are not drawn",
            ops.len() - MAX_OPS
        ));
        ops.truncate(MAX_OPS);
    }
    let deliveries = history
        .iter()
        .filter(|e| {
            matches!(
                e.what,
                What::Event {
                    data: NodeEvent::Delivered { .. } | NodeEvent::Sequenced { .. }
                }
            )
        })
        .count();
    let fold_deliveries = deliveries > MAX_EVENTS / 4;
    if fold_deliveries {
        folded.push(format!(
            "{deliveries} deliveries and sequencings are folded (not drawn one by one); the \
             per-server counts are in the header"
        ));
    }
    let mut events = events(history, &lane, fold_deliveries);
    if events.len() > MAX_EVENTS {
        folded.push(format!(
            "{} node events after the first {MAX_EVENTS} are not drawn",
            events.len() - MAX_EVENTS
        ));
        events.truncate(MAX_EVENTS);
    }
    let arrows = arrows(messages, &lane, &mut folded);
    let unhealthy = unhealthy(history, end, &lane);
    Page {
        unhealthy,
        lanes,
        segments,
        two_leaders,
        bands,
        ops,
        events,
        arrows,
        end,
        folded,
    }
}

/// Pairs each tapped send with its receipt (by the sender's number for the message), and
/// each tapped HTTP call with its serving, its reply and its end at the caller (by the
/// caller's number for the call; the server names the caller by its address). Taps come in
/// time order and a receipt pairs with the latest send of that number, so a restarted
/// node whose transport numbers from 1 again is paired right.
fn arrows(messages: &[WireEntry], lane: &LaneOf<'_>, folded: &mut Vec<String>) -> Vec<Arrow> {
    let mut arrows: Vec<Arrow> = Vec::new();
    let mut sent: BTreeMap<(String, u64), usize> = BTreeMap::new();
    let mut called: BTreeMap<(String, u64), usize> = BTreeMap::new();
    for m in messages {
        match m.tapped {
            Tapped::Sent { id, kind, .. } | Tapped::Called { id, kind, .. } => {
                let (to, call) = match m.tapped {
                    Tapped::Called { to, .. } => (node_at(to.ip()), true),
                    Tapped::Sent { to, .. } => (Some(format!("n{to}")), false),
                    _ => continue,
                };
                let (Some(from), Some(to)) = (lane(&m.node), to.as_deref().and_then(lane)) else {
                    continue;
                };
                let index = if call { &mut called } else { &mut sent };
                index.insert((m.node.clone(), id), arrows.len());
                arrows.push(Arrow {
                    from,
                    to,
                    sent: m.t,
                    received: None,
                    kind,
                    routine: ROUTINE.contains(&kind),
                    replied: None,
                    ended: None,
                    end: call.then(|| "abandoned".to_string()),
                });
            }
            Tapped::Received { from, id, .. } => {
                if let Some(&k) = sent.get(&(format!("n{from}"), id)) {
                    arrows[k].received.get_or_insert(m.t);
                }
            }
            Tapped::Served { from, id } | Tapped::Replied { from, id, .. } => {
                let Some(&k) = node_at(from.ip()).and_then(|caller| called.get(&(caller, id)))
                else {
                    continue;
                };
                match m.tapped {
                    Tapped::Served { .. } => arrows[k].received.get_or_insert(m.t),
                    _ => arrows[k].replied.get_or_insert(m.t),
                };
            }
            Tapped::Answered { id, end } => {
                if let Some(&k) = called.get(&(m.node.clone(), id)) {
                    arrows[k].ended = Some(m.t);
                    arrows[k].end = Some(match end {
                        CallEnd::Status(code) => code.to_string(),
                        CallEnd::Unreachable => "unreachable".into(),
                        CallEnd::Broken => "broken".into(),
                        CallEnd::Timeout => "timeout".into(),
                    });
                }
            }
        }
    }
    let routine = arrows.iter().filter(|a| a.routine).count();
    if arrows.len() > MAX_ARROWS {
        arrows.retain(|a| !a.routine);
        folded.push(format!(
            "{routine} routine messages (heartbeats, membership polls, health checks, gossip) \
             are left out of this page: over {MAX_ARROWS} messages in all"
        ));
    } else if routine > 0 {
        folded.push(format!(
            "{routine} routine messages (heartbeats, membership polls, health checks, gossip) \
             are folded: hidden until \"routine messages\" is ticked"
        ));
    }
    if arrows.len() > MAX_ARROWS {
        // One in `stride`, evenly over the whole run, so every stretch keeps its traffic.
        let stride = arrows.len().div_ceil(MAX_ARROWS);
        folded.push(format!(
            "{} messages in all: one in {stride} is drawn, evenly over the run",
            arrows.len()
        ));
        arrows = arrows.into_iter().step_by(stride).collect();
    }
    arrows
}

type LaneOf<'a> = dyn Fn(&str) -> Option<usize> + 'a;

/// Each server's state over time (from the same replay the election checks use), and the
/// intervals with two acting leaders.
fn states(history: &[Entry], end: u64, lane: &LaneOf<'_>) -> (Vec<Segment>, Vec<Overlap>) {
    let mut replay = Replay::new(history);
    let servers: Vec<(String, usize)> = replay
        .servers()
        .iter()
        .filter_map(|s| Some((s.clone(), lane(s)?)))
        .collect();
    let mut open: BTreeMap<usize, Segment> = BTreeMap::new();
    let mut segments = Vec::new();
    let mut two_leaders: Vec<Overlap> = Vec::new();
    let mut leaders_now: Option<(u64, Vec<usize>)> = None;
    while let Some(t) = replay.next_instant() {
        let mut leaders = Vec::new();
        for (server, lane) in &servers {
            let state = state_of(crate::timeline::glyph(&replay, server));
            let term = replay.term_of(server);
            if state == Some("leader") {
                leaders.push(*lane);
            }
            let same = open
                .get(lane)
                .is_some_and(|s| Some(s.state) == state && s.term == term);
            if same {
                continue;
            }
            if let Some(mut done) = open.remove(lane) {
                done.to = t;
                segments.push(done);
            }
            if let Some(state) = state {
                let from = t;
                let segment = Segment {
                    lane: *lane,
                    from,
                    to: end,
                    state,
                    term,
                };
                open.insert(*lane, segment);
            }
        }
        let two = leaders.len() >= 2;
        match (&mut leaders_now, two) {
            (Some((_, lanes)), true) if *lanes == leaders => {}
            (now, true) => {
                if let Some((from, lanes)) = now.take() {
                    two_leaders.push((from, t, lanes));
                }
                *now = Some((t, leaders));
            }
            (now, false) => {
                if let Some((from, lanes)) = now.take() {
                    two_leaders.push((from, t, lanes));
                }
            }
        }
    }
    segments.extend(open.into_values());
    if let Some((from, lanes)) = leaders_now {
        two_leaders.push((from, end, lanes));
    }
    segments.sort_by_key(|s| (s.lane, s.from));
    (segments, two_leaders)
}

fn fault_text(entry: &Entry) -> Option<String> {
    let What::Fault { fault } = &entry.what else {
        return None;
    };
    let mut text = format!("{} {}", fmt_time(entry.t), fault.action);
    for part in [&fault.node, &fault.from]
        .into_iter()
        .flatten()
        .map(String::as_str)
    {
        text.push(' ');
        text.push_str(part);
    }
    if let Some(to) = &fault.to {
        text.push_str(&format!(" -> {to}"));
    }
    if !fault.groups.is_empty() {
        let groups: Vec<String> = fault.groups.iter().map(|g| g.join(",")).collect();
        text.push_str(&format!(" {}", groups.join(" | ")));
    }
    if let Some(offset) = fault.offset_ms {
        text.push_str(&format!(" offset {offset:+} ms"));
    }
    if let Some(drift) = fault.drift {
        text.push_str(&format!(" drift {drift:+}"));
    }
    if let Some(factor) = fault.factor {
        text.push_str(&format!(" factor {factor}"));
    }
    if let Some(rate) = fault.rate {
        text.push_str(&format!(" rate {rate}"));
    }
    if let Some([lo, hi]) = fault.range_ms {
        text.push_str(&format!(" {lo}-{hi} ms"));
    }
    if let Some(mode) = &fault.mode {
        text.push_str(&format!(" mode {mode}"));
    }
    if let Some(effect) = &fault.effect {
        text.push_str(&format!(" ({effect})"));
    }
    if let Some(skipped) = &fault.skipped {
        text.push_str(&format!(" (skipped: {skipped})"));
    }
    Some(text)
}

/// Faults as bands: a partition, isolation or clog lasts until the heal (or unclog) that
/// undoes it, loss and latency until the next change of the same kind or a heal; a crash
/// or pause shows in the server's lane state, and is drawn as an instant here.
fn bands(history: &[Entry], end: u64, lanes: &[Lane], lane: &LaneOf<'_>) -> Vec<Band> {
    let faults: Vec<(usize, &Entry)> = history
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e.what, What::Fault { .. }))
        .collect();
    let mut bands = Vec::new();
    for (k, (entry_index, entry)) in faults.iter().enumerate() {
        let What::Fault { fault } = &entry.what else {
            continue;
        };
        let later = faults[k + 1..].iter().filter_map(|(_, e)| match &e.what {
            What::Fault { fault: f } if f.skipped.is_none() => Some((e.t, f)),
            _ => None,
        });
        let until_first = |stop: &dyn Fn(&crate::history::AppliedFault) -> bool| {
            later.clone().find(|(_, f)| stop(f)).map_or(end, |(t, _)| t)
        };
        let until = if fault.skipped.is_some() {
            entry.t
        } else {
            match fault.action {
                Action::Partition | Action::Isolate => until_first(&|f| f.action == Action::Heal),
                Action::Clog => until_first(&|f| {
                    f.action == Action::Heal
                        || (f.action == Action::Unclog && f.from == fault.from && f.to == fault.to)
                }),
                Action::Loss | Action::Latency => {
                    until_first(&|f| f.action == fault.action || f.action == Action::Heal)
                }
                // Slowed until a later `slow` of the same node sets another factor (1:
                // back to normal); a factor of 1 itself is only the instant it ends.
                Action::Slow if fault.factor.is_some_and(|f| f != 1.0) => {
                    until_first(&|f| f.action == Action::Slow && f.node == fault.node)
                }
                _ => entry.t,
            }
        };
        let mut touched: Vec<usize> = [&fault.node, &fault.from, &fault.to]
            .into_iter()
            .flatten()
            .chain(fault.groups.iter().flatten())
            .filter_map(|n| lane(n))
            .collect();
        touched.sort_unstable();
        touched.dedup();
        if touched.len() == lanes.len() {
            touched.clear();
        }
        let text = fault_text(entry).unwrap_or_default();
        if fault.action == Action::Partition && fault.skipped.is_none() {
            // One band per side, so the sides are told apart.
            for (side, group) in fault.groups.iter().enumerate() {
                bands.push(Band {
                    entry: *entry_index,
                    at: entry.t,
                    until,
                    action: fault.action.to_string(),
                    side: Some(side),
                    lanes: group.iter().filter_map(|n| lane(n)).collect(),
                    text: format!("{text} (side {}: {})", side + 1, group.join(",")),
                });
            }
            continue;
        }
        bands.push(Band {
            entry: *entry_index,
            at: entry.t,
            until,
            action: fault.action.to_string(),
            side: None,
            lanes: touched,
            text,
        });
    }
    bands
}

fn short(value: &serde_json::Value) -> String {
    let text = match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.chars().count() > 40 {
        format!("{}…", text.chars().take(40).collect::<String>())
    } else {
        text
    }
}

fn ops(history: &[Entry], end: u64, lane: &LaneOf<'_>) -> Vec<Op> {
    let mut open: BTreeMap<(String, u64), usize> = BTreeMap::new();
    let mut ops: Vec<Op> = Vec::new();
    for (i, entry) in history.iter().enumerate() {
        let What::Op { op } = &entry.what else {
            continue;
        };
        let Some(client) = lane(&entry.node) else {
            continue;
        };
        let describe = |label: &str| {
            let mut text = format!("{} {} {}", entry.node, op.f, label);
            if let Some(key) = &op.key {
                text.push_str(&format!(" key {key}"));
            }
            if let Some(value) = &op.value {
                text.push_str(&format!(" value {}", short(value)));
            }
            if let Some(seq) = op.seq {
                text.push_str(&format!(" seq {seq}"));
            }
            if let Some(server) = &op.server {
                text.push_str(&format!(" via {server}"));
            }
            if op.actor == Actor::Harness {
                text.push_str(" (harness)");
            }
            if let Some(detail) = &op.detail {
                text.push_str(&format!(": {detail}"));
            }
            text
        };
        match op.kind {
            OpType::Invoke => {
                open.insert((entry.node.clone(), op.id), ops.len());
                ops.push(Op {
                    entry: i,
                    lane: client,
                    from: entry.t,
                    to: end,
                    outcome: "open",
                    text: describe("").trim_end().to_string(),
                    server: op.server.as_deref().and_then(lane),
                    done: None,
                });
            }
            kind => {
                let Some(&k) = open.get(&(entry.node.clone(), op.id)) else {
                    continue;
                };
                open.remove(&(entry.node.clone(), op.id));
                let outcome = match kind {
                    OpType::Ok => "ok",
                    OpType::Fail => "fail",
                    _ => "info",
                };
                ops[k].to = entry.t;
                ops[k].done = Some(i);
                ops[k].outcome = outcome;
                ops[k].text = describe(outcome);
                if let Some(server) = op.server.as_deref().and_then(lane) {
                    ops[k].server = Some(server);
                }
            }
        }
    }
    ops
}

fn events(history: &[Entry], lane: &LaneOf<'_>, fold_deliveries: bool) -> Vec<Event> {
    let mut events = Vec::new();
    // Gossip: each observer's last state of each member, so that only changes after the
    // view formed are drawn (suspect, down, and alive again) — forming a view of N
    // members is N routine events per server.
    let mut seen: BTreeMap<(&str, &str), MemberState> = BTreeMap::new();
    for (i, entry) in history.iter().enumerate() {
        let Some(lane) = lane(&entry.node) else {
            continue;
        };
        let (class, text) = match &entry.what {
            What::Error { message } => ("error", format!("error: {message}")),
            What::Event { data } => match data {
                NodeEvent::Role { role, term, leader } => (
                    "role",
                    match leader {
                        Some(l) => format!("{role:?} in term {term}, leader n{l}"),
                        None => format!("{role:?} in term {term}, no leader known"),
                    }
                    .to_lowercase(),
                ),
                NodeEvent::ElectionStarted { term, suspected } => (
                    "election",
                    match suspected {
                        Some(s) => format!("election from term {term}: suspects n{s}"),
                        None => format!("election from term {term}"),
                    },
                ),
                NodeEvent::SteppedDown { term, reason } => {
                    ("role", format!("stepped down from term {term}: {reason}"))
                }
                NodeEvent::Started {
                    recovered_records,
                    damage,
                } => (
                    "start",
                    match damage {
                        Some(d) => {
                            format!("started, {recovered_records} records recovered, damage: {d:?}")
                        }
                        None => format!("started, {recovered_records} records recovered"),
                    },
                ),
                NodeEvent::Stopped { reason } => ("start", format!("stopped: {reason}")),
                NodeEvent::Synced {
                    term, recovered, ..
                } => (
                    "role",
                    format!("synced term {term}, {recovered} entries recovered"),
                ),
                NodeEvent::Members { members } => {
                    ("members", format!("members: {}", members.join(",")))
                }
                NodeEvent::Member {
                    member,
                    state,
                    incarnation,
                    ..
                } => {
                    let before = seen.insert((entry.node.as_str(), member.as_str()), *state);
                    match (before, state) {
                        (None | Some(MemberState::Alive), MemberState::Alive) => continue,
                        (Some(_), MemberState::Alive) => (
                            "members",
                            format!("takes {member} for alive again (incarnation {incarnation})"),
                        ),
                        (_, MemberState::Suspect) => (
                            "suspect",
                            format!("suspects {member} (incarnation {incarnation})"),
                        ),
                        (_, MemberState::Down) => ("down", format!("takes {member} for down")),
                    }
                }
                NodeEvent::Refused { peer, what, reason } => {
                    ("error", format!("refused {what} from {peer}: {reason}"))
                }
                NodeEvent::BackendHealth {
                    backend,
                    healthy,
                    reason,
                } => (
                    "health",
                    match (healthy, reason) {
                        (true, _) => format!("takes {backend} for up"),
                        (false, Some(r)) => format!("takes {backend} for down: {r}"),
                        (false, None) => format!("takes {backend} for down"),
                    },
                ),
                NodeEvent::Breaker {
                    peer,
                    from,
                    to,
                    failures,
                } => (
                    "breaker",
                    format!("breaker to {peer}: {from:?} → {to:?} after {failures} failures")
                        .to_lowercase(),
                ),
                NodeEvent::Delivered { seq, term, id } if !fold_deliveries => {
                    ("delivered", format!("delivered #{seq} {id} (term {term})"))
                }
                NodeEvent::Sequenced { seq, term, id } if !fold_deliveries => {
                    ("sequenced", format!("sequenced #{seq} {id} (term {term})"))
                }
                _ => continue,
            },
            _ => continue,
        };
        events.push(Event {
            entry: i,
            lane,
            t: entry.t,
            class,
            text: format!("{} {}: {text}", fmt_time(entry.t), entry.node),
        });
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::AppliedFault;

    const S: u64 = 1_000_000_000;

    fn at(t: u64, node: &str, what: What) -> Entry {
        Entry {
            t,
            node: node.into(),
            what,
        }
    }

    fn slow(t: u64, node: &str, factor: f64) -> Entry {
        let mut fault = AppliedFault::new(Action::Slow);
        fault.node = Some(node.into());
        fault.factor = Some(factor);
        at(t, "harness", What::Fault { fault })
    }

    fn health(t: u64, backend: &str, healthy: bool) -> Entry {
        let data = NodeEvent::BackendHealth {
            backend: backend.into(),
            healthy,
            reason: (!healthy).then(|| "health check failed".to_string()),
        };
        at(t, "lb", What::Event { data })
    }

    fn started(node: &str) -> Entry {
        let data = NodeEvent::Started {
            recovered_records: 0,
            damage: None,
        };
        at(0, node, What::Event { data })
    }

    fn tap(t: u64, node: &str, tapped: Tapped) -> WireEntry {
        WireEntry {
            t,
            node: node.into(),
            tapped,
        }
    }

    /// A receipt pairs with the latest send of its number (a restarted node numbers from
    /// 1 again); an HTTP call pairs with its serving, reply and end by the caller's
    /// number, the server naming the caller by its address; one never served is marked.
    #[test]
    fn messages_and_calls_pair_exactly_across_a_restart() {
        use nodes::runtime::wire::CallEnd;
        let history = vec![started("n1"), started("n2"), started("n3"), started("c1")];
        let at = |ip: [u8; 4], port| std::net::SocketAddr::from((ip, port));
        let sent = |id| Tapped::Sent {
            to: 2,
            id,
            kind: "APPEND",
        };
        let received = |id| Tapped::Received {
            from: 1,
            id,
            kind: "APPEND",
        };
        let c1 = at([10, 0, 1, 1], 40000);
        let messages = vec![
            tap(1, "n1", sent(1)),
            tap(2, "n2", received(1)),
            tap(10, "n1", sent(1)),
            tap(11, "n2", received(1)),
            tap(
                20,
                "c1",
                Tapped::Called {
                    to: at([10, 0, 0, 2], 8080),
                    id: 1,
                    kind: "PUT",
                },
            ),
            tap(21, "n2", Tapped::Served { from: c1, id: 1 }),
            tap(
                22,
                "n2",
                Tapped::Replied {
                    from: c1,
                    id: 1,
                    status: 200,
                },
            ),
            tap(
                23,
                "c1",
                Tapped::Answered {
                    id: 1,
                    end: CallEnd::Status(200),
                },
            ),
            tap(
                30,
                "c1",
                Tapped::Called {
                    to: at([10, 0, 0, 3], 8080),
                    id: 2,
                    kind: "GET",
                },
            ),
            tap(
                40,
                "c1",
                Tapped::Answered {
                    id: 2,
                    end: CallEnd::Timeout,
                },
            ),
        ];
        let page = page(&history, &messages, 100, &BTreeSet::new());
        let got: Vec<_> = page
            .arrows
            .iter()
            .map(|a| {
                (
                    a.from,
                    a.to,
                    a.sent,
                    a.received,
                    a.replied,
                    a.ended,
                    a.end.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (0, 1, 1, Some(2), None, None, None),
                (0, 1, 10, Some(11), None, None, None),
                (3, 1, 20, Some(21), Some(22), Some(23), Some("200")),
                (3, 2, 30, None, None, Some(40), Some("timeout")),
            ]
        );
    }

    /// A slowed server is a band from its `slow` until the `slow` that sets it back; the
    /// balancer and registry get lanes after the servers; a backend the balancer took for
    /// down is marked on its own lane for as long as it was.
    #[test]
    fn slowness_and_backend_health_are_stretches_on_the_server_lane() {
        let history = vec![
            started("n1"),
            started("n2"),
            started("registry"),
            started("lb"),
            slow(S, "n2", 20.0),
            health(S + S / 2, "n2", false),
            health(2 * S + S / 2, "n2", true),
            slow(3 * S, "n2", 1.0),
            slow(4 * S, "n1", 5.0),
        ];
        let page = page(&history, &[], 10 * S, &BTreeSet::new());
        let names: Vec<&str> = page.lanes.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["n1", "n2", "lb", "registry"]);
        let slowed: Vec<(u64, u64, &[usize])> = page
            .bands
            .iter()
            .filter(|b| b.action == "slow")
            .map(|b| (b.at, b.until, b.lanes.as_slice()))
            .collect();
        assert_eq!(
            slowed,
            [
                (S, 3 * S, &[1][..]),
                (3 * S, 3 * S, &[1][..]),
                (4 * S, 10 * S, &[0][..])
            ]
        );
        assert_eq!(page.unhealthy.len(), 1);
        let down = &page.unhealthy[0];
        assert_eq!(
            (down.lane, down.from, down.to),
            (1, S + S / 2, 2 * S + S / 2)
        );
        assert!(down.text.contains("lb takes n2 for down"), "{}", down.text);
        assert!(page
            .events
            .iter()
            .any(|e| e.class == "health" && e.lane == 2));
    }

    /// A gossip view's forming is routine and not drawn; what changes after it is: a
    /// suspicion, a down, and alive again (refuted or rejoined).
    #[test]
    fn gossip_member_changes_are_marks_and_forming_the_view_is_not() {
        let member = |t: u64, state: MemberState, incarnation: u16| {
            let data = NodeEvent::Member {
                member: "n3".into(),
                state,
                incarnation,
                generation: 1,
            };
            at(t, "n1", What::Event { data })
        };
        let history = vec![
            started("n1"),
            started("n3"),
            member(S, MemberState::Alive, 0),
            member(2 * S, MemberState::Alive, 0),
            member(3 * S, MemberState::Suspect, 0),
            member(4 * S, MemberState::Alive, 1),
            member(5 * S, MemberState::Suspect, 1),
            member(6 * S, MemberState::Down, 1),
        ];
        let lane = |n: &str| ["n1", "n3"].iter().position(|l| *l == n);
        let marks: Vec<(u64, &str, String)> = events(&history, &lane, false)
            .into_iter()
            .filter(|e| e.t > 0)
            .map(|e| (e.t / S, e.class, e.text))
            .collect();
        let classes: Vec<(u64, &str)> = marks.iter().map(|(t, c, _)| (*t, *c)).collect();
        assert_eq!(
            classes,
            [(3, "suspect"), (4, "members"), (5, "suspect"), (6, "down")]
        );
        assert!(marks[1]
            .2
            .contains("takes n3 for alive again (incarnation 1)"));
    }
}
