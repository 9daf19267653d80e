//! `membership_converged` (DESIGN): `within` after the last fault, every live server's
//! set of live members is exactly the set of live servers, and it stays so to the end.
//!
//! A server's view is replayed from its own events: with gossip, [`NodeEvent::Member`]
//! (the newest generation of each member, alive or suspect counting as a member, as SWIM
//! routes to a suspect until it is declared down); with the registry, the whole list in
//! [`NodeEvent::Members`]. A (re)start resets the view to the server alone. Liveness comes
//! from the recorded faults ([`ClusterView`]): a paused server is not live.
//!
//! The detail also counts false suspicions and false downs: a server marked suspect or
//! down by an observer while it was up and the link between them uncut, in its current
//! generation (lossy links make these; SWIM's suspicion is there to keep the downs rare).

use super::view::{ClusterView, Liveness};
use super::{CheckResult, Cited};
use crate::history::{fmt_time, Entry, What};
use crate::scenario::CheckKind;
use nodes::runtime::{MemberState, NodeEvent};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Default `within`: detection (a probe period, then the suspicion time of a few
/// periods) plus dissemination, with room for a rejoin.
pub const DEFAULT_WITHIN: Duration = Duration::from_secs(30);

/// One server's view: member -> (generation, state).
type View = BTreeMap<String, (u64, MemberState)>;

fn is_server(name: &str) -> bool {
    name.len() > 1 && name.starts_with('n') && name[1..].bytes().all(|b| b.is_ascii_digit())
}

/// Replays views, liveness and false suspicions over the history.
#[derive(Default)]
struct Replay {
    views: BTreeMap<String, View>,
    cluster: ClusterView,
    /// Each server's own generation, from its reports about itself: news about an older
    /// generation (a start before a restart) is not a false suspicion.
    generation: BTreeMap<String, u64>,
    false_suspects: usize,
    false_downs: usize,
    first_false_down: Option<String>,
    /// Each false down's index in the history (the evidence when they are too many).
    false_down_entries: Vec<usize>,
}

impl Replay {
    fn apply(&mut self, index: usize, entry: &Entry) {
        self.cluster.apply(entry);
        let What::Event { data } = &entry.what else {
            return;
        };
        if !is_server(&entry.node) {
            return;
        }
        let me = entry.node.clone();
        match data {
            NodeEvent::Started { .. } => {
                let mut view = View::new();
                view.insert(me.clone(), (0, MemberState::Alive));
                self.views.insert(me, view);
            }
            NodeEvent::Members { members } => {
                let view = members
                    .iter()
                    .map(|m| (m.clone(), (0, MemberState::Alive)))
                    .collect();
                self.views.insert(me, view);
            }
            NodeEvent::Member {
                member,
                state,
                generation,
                ..
            } => {
                if *member == me {
                    self.generation.insert(me.clone(), *generation);
                }
                let current = self.generation.get(member).is_none_or(|g| generation >= g);
                if *state != MemberState::Alive
                    && current
                    && *member != me
                    && self.cluster.liveness(member) == Liveness::Up
                    && self.cluster.liveness(&me) == Liveness::Up
                    && self.cluster.connected(&me, member)
                {
                    if *state == MemberState::Down {
                        self.false_downs += 1;
                        self.false_down_entries.push(index);
                        self.first_false_down.get_or_insert_with(|| {
                            format!("{me} declared {member} down at {}", fmt_time(entry.t))
                        });
                    } else {
                        self.false_suspects += 1;
                    }
                }
                let view = self.views.entry(me).or_default();
                let newer = view.get(member).is_none_or(|(g, _)| generation >= g);
                if newer {
                    view.insert(member.clone(), (*generation, *state));
                }
            }
            _ => {}
        }
    }

    /// Servers live now, by the faults.
    fn live(&self) -> BTreeSet<String> {
        self.views
            .keys()
            .filter(|s| self.cluster.liveness(s) == Liveness::Up)
            .cloned()
            .collect()
    }

    /// The first live server whose view is not the live set, with the evidence.
    fn disagreement(&self) -> Option<String> {
        let live = self.live();
        for server in &live {
            let members: BTreeSet<String> = self.views[server]
                .iter()
                .filter(|(_, (_, state))| *state != MemberState::Down)
                .map(|(m, _)| m.clone())
                .collect();
            if members != live {
                let missing: Vec<&String> = live.difference(&members).collect();
                let extra: Vec<&String> = members.difference(&live).collect();
                return Some(format!(
                    "{server} sees {} members, live servers are {}: missing {missing:?}, not live {extra:?}",
                    members.len(),
                    live.len()
                ));
            }
        }
        None
    }

    fn suspicion_counts(&self) -> String {
        let mut text = format!(
            "{} false suspicions, {} false downs",
            self.false_suspects, self.false_downs
        );
        if let Some(first) = &self.first_false_down {
            text.push_str(&format!(" (first: {first})"));
        }
        text
    }
}

/// Every live server's live members equal the live servers from `within` after the last
/// fault to `end` (ns), and — with `max_false_downs` — no more than that many times did
/// a server declare down a live member it could reach (SWIM's suspicion exists to keep
/// those rare).
pub fn membership_converged(
    history: &[Entry],
    end: u64,
    within: Duration,
    max_false_downs: Option<u64>,
) -> CheckResult {
    let kind = CheckKind::MembershipConverged;
    let last_fault = history
        .iter()
        .filter(|e| matches!(&e.what, What::Fault { fault } if fault.skipped.is_none()))
        .map(|e| e.t)
        .max()
        .unwrap_or(0);
    let deadline = last_fault + within.as_nanos() as u64;
    if deadline > end {
        return CheckResult::vacuous(
            kind,
            format!(
                "the run ends at {}, before {} (the last fault at {} plus within {})",
                fmt_time(end),
                fmt_time(deadline),
                fmt_time(last_fault),
                fmt_time(within.as_nanos() as u64)
            ),
        );
    }
    let mut replay = Replay {
        cluster: ClusterView::new(history),
        ..Default::default()
    };
    let mut entries = history.iter().enumerate().peekable();
    while let Some((i, entry)) = entries.next_if(|(_, e)| e.t <= deadline) {
        replay.apply(i, entry);
    }
    if replay.live().is_empty() {
        return CheckResult::vacuous(
            kind,
            format!("no server was live at {} to judge", fmt_time(deadline)),
        );
    }
    if let Some(why) = replay.disagreement() {
        return CheckResult::violation(
            kind,
            format!(
                "at {} ({} after the last fault): {why}",
                fmt_time(deadline),
                fmt_time(within.as_nanos() as u64)
            ),
        );
    }
    // It must stay so: judge again after every later entry.
    for (i, entry) in entries {
        replay.apply(i, entry);
        let changes_views = match &entry.what {
            What::Fault { .. } => true,
            What::Event { data } => matches!(
                data,
                NodeEvent::Started { .. } | NodeEvent::Members { .. } | NodeEvent::Member { .. }
            ),
            _ => false,
        };
        if !changes_views {
            continue;
        }
        if let Some(why) = replay.disagreement() {
            return CheckResult::violation(
                kind,
                format!(
                    "agreed at {}, then at {}: {why}",
                    fmt_time(deadline),
                    fmt_time(entry.t)
                ),
            );
        }
    }
    if let Some(max) = max_false_downs.filter(|&m| replay.false_downs as u64 > m) {
        let evidence = replay
            .false_down_entries
            .iter()
            .map(|&i| Cited::new(i, "false down"))
            .collect();
        return CheckResult::violation(
            kind,
            format!(
                "views converged, but {}: more false downs than max_false_downs = {max}",
                replay.suspicion_counts()
            ),
        )
        .citing(evidence);
    }
    CheckResult::pass(
        kind,
        format!(
            "all {} live servers see exactly the live servers from {} to the end; {}",
            replay.live().len(),
            fmt_time(deadline),
            replay.suspicion_counts()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::AppliedFault;
    use crate::scenario::Action;

    const S: u64 = 1_000_000_000;

    fn event(t: u64, node: &str, data: NodeEvent) -> Entry {
        Entry {
            t,
            node: node.into(),
            what: What::Event { data },
        }
    }

    fn member(t: u64, node: &str, of: &str, state: MemberState, generation: u64) -> Entry {
        event(
            t,
            node,
            NodeEvent::Member {
                member: of.into(),
                state,
                incarnation: 0,
                generation,
            },
        )
    }

    fn started(t: u64, node: &str) -> Entry {
        event(
            t,
            node,
            NodeEvent::Started {
                recovered_records: 0,
                damage: None,
            },
        )
    }

    fn fault(t: u64, action: Action, node: &str) -> Entry {
        let mut fault = AppliedFault::new(action);
        fault.node = Some(node.into());
        Entry {
            t,
            node: "harness".into(),
            what: What::Fault { fault },
        }
    }

    /// n1 and n2 know each other; n2 crashes at 10 s.
    /// [`crash_of_n2`], n1 declares n2 down, and n2 restarts and rejoins as generation 2.
    fn n2_crashed_and_rejoined() -> Vec<Entry> {
        let mut history = crash_of_n2();
        history.push(member(16 * S, "n1", "n2", MemberState::Down, 1));
        history.push(fault(20 * S, Action::Restart, "n2"));
        history.push(started(20 * S, "n2"));
        history.push(member(21 * S, "n2", "n1", MemberState::Alive, 1));
        history.push(member(21 * S, "n1", "n2", MemberState::Alive, 2));
        history
    }

    fn crash_of_n2() -> Vec<Entry> {
        use MemberState::*;
        vec![
            started(0, "n1"),
            started(0, "n2"),
            member(1, "n1", "n1", Alive, 1),
            member(1, "n1", "n2", Alive, 1),
            member(1, "n2", "n2", Alive, 1),
            member(1, "n2", "n1", Alive, 1),
            fault(10 * S, Action::Crash, "n2"),
            member(12 * S, "n1", "n2", Suspect, 1),
        ]
    }

    #[test]
    fn a_crashed_member_must_be_declared_down() {
        let mut history = crash_of_n2();
        let stale = membership_converged(&history, 60 * S, Duration::from_secs(20), None);
        assert_eq!(
            stale.status,
            super::super::Status::Violation,
            "{}",
            stale.detail
        );
        assert!(
            stale.detail.contains("not live [\"n2\"]"),
            "{}",
            stale.detail
        );
        history.push(member(16 * S, "n1", "n2", MemberState::Down, 1));
        let fine = membership_converged(&history, 60 * S, Duration::from_secs(20), None);
        assert_eq!(fine.status, super::super::Status::Pass, "{}", fine.detail);
        assert!(fine.detail.contains("0 false downs"), "{}", fine.detail);
    }

    #[test]
    fn it_must_stay_converged_and_counts_false_downs() {
        // n2 restarts as a new generation and rejoins, then n1 falsely declares it down.
        let mut history = n2_crashed_and_rejoined();
        let fine = membership_converged(&history, 60 * S, Duration::from_secs(5), None);
        assert_eq!(fine.status, super::super::Status::Pass, "{}", fine.detail);
        history.push(member(50 * S, "n1", "n2", MemberState::Down, 2));
        let broken = membership_converged(&history, 60 * S, Duration::from_secs(5), None);
        assert_eq!(broken.status, super::super::Status::Violation);
        assert!(broken.detail.contains("then at 50"), "{}", broken.detail);
        // An older generation's news does not override the newer one.
        let mut old_news = history[..history.len() - 1].to_vec();
        old_news.push(member(21 * S, "n2", "n2", MemberState::Alive, 2));
        old_news.push(member(50 * S, "n1", "n2", MemberState::Down, 1));
        let fine = membership_converged(&old_news, 60 * S, Duration::from_secs(5), None);
        assert_eq!(fine.status, super::super::Status::Pass, "{}", fine.detail);
        assert!(fine.detail.contains("0 false downs"), "{}", fine.detail);
        assert!(
            broken.detail.contains("n1 sees 1 members"),
            "{}",
            broken.detail
        );
    }

    #[test]
    fn max_false_downs_bounds_the_false_downs_and_cites_them() {
        let mut history = n2_crashed_and_rejoined();
        // n1 takes the live, reachable n2 for down; n2 rejoins as its next generation.
        history.push(member(30 * S, "n1", "n2", MemberState::Down, 2));
        let false_down = history.len() - 1;
        history.push(member(31 * S, "n2", "n2", MemberState::Alive, 3));
        history.push(member(31 * S, "n1", "n2", MemberState::Alive, 3));
        let within = Duration::from_secs(20);
        let counted = membership_converged(&history, 60 * S, within, None);
        assert_eq!(
            counted.status,
            super::super::Status::Pass,
            "{}",
            counted.detail
        );
        assert!(
            counted.detail.contains("1 false downs"),
            "{}",
            counted.detail
        );
        let allowed = membership_converged(&history, 60 * S, within, Some(1));
        assert_eq!(
            allowed.status,
            super::super::Status::Pass,
            "{}",
            allowed.detail
        );
        let bounded = membership_converged(&history, 60 * S, within, Some(0));
        assert_eq!(bounded.status, super::super::Status::Violation);
        assert!(
            bounded.detail.contains("max_false_downs = 0"),
            "{}",
            bounded.detail
        );
        assert_eq!(bounded.evidence, vec![Cited::new(false_down, "false down")]);
    }

    #[test]
    fn nothing_to_judge_is_vacuous() {
        let history = crash_of_n2();
        let early = membership_converged(&history, 15 * S, Duration::from_secs(20), None);
        assert_eq!(early.status, super::super::Status::Vacuous);
        let mut all_down = history.clone();
        all_down.push(fault(11 * S, Action::Crash, "n1"));
        let none = membership_converged(&all_down, 60 * S, Duration::from_secs(5), None);
        assert_eq!(
            none.status,
            super::super::Status::Vacuous,
            "{}",
            none.detail
        );
    }
}
