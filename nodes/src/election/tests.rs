//! The election state machine stepped by hand: a tiny in-memory network with fixed 1 ms
//! delivery, no runtime, no sockets.

use super::*;
use crate::runtime::{NodeEvent, Role};
use std::collections::BTreeSet;
use std::time::Duration;

const MS: Duration = Duration::from_millis(1);

struct Cluster {
    nodes: Vec<Option<Election>>,
    /// (deliver at, to, message)
    in_flight: Vec<(Duration, u64, Message)>,
    /// Links that drop messages, as (from, to).
    cut: BTreeSet<(u64, u64)>,
    now: Duration,
    /// (time, node, term) of every time a node became leader.
    leaders: Vec<(Duration, u64, u64)>,
    /// Per node: is it leader right now.
    leading: Vec<bool>,
    /// Longest time two nodes were leader at once.
    overlap: Duration,
    persisted: Vec<Persisted>,
}

fn config(id: u64, size: u64, quorum: bool) -> ElectionConfig {
    ElectionConfig {
        id,
        peers: (1..=size).filter(|&p| p != id).collect(),
        heartbeat_interval: Duration::from_millis(800),
        election_timeout: Duration::from_millis(2500),
        quorum,
    }
}

impl Cluster {
    fn new(size: u64, quorum: bool) -> Self {
        let mut cluster = Cluster {
            nodes: Vec::new(),
            in_flight: Vec::new(),
            cut: BTreeSet::new(),
            now: Duration::ZERO,
            leaders: Vec::new(),
            leading: vec![false; size as usize + 1],
            overlap: Duration::ZERO,
            persisted: vec![Persisted::default(); size as usize + 1],
        };
        cluster.nodes.push(None);
        for id in 1..=size {
            let mut node = Election::new(
                config(id, size, quorum),
                Persisted::default(),
                Duration::ZERO,
            );
            let commands = node.start(Duration::ZERO);
            cluster.nodes.push(Some(node));
            cluster.apply(id, commands);
        }
        cluster
    }

    fn apply(&mut self, id: u64, commands: Vec<Command>) {
        for command in commands {
            match command {
                Command::Send { to, message } => {
                    if !self.cut.contains(&(id, to)) {
                        self.in_flight.push((self.now + MS, to, message));
                    }
                }
                Command::Persist(p) => self.persisted[id as usize] = p,
                Command::Emit(NodeEvent::Role { role, term, .. }) => {
                    let leading = role == Role::Leader;
                    if leading && !self.leading[id as usize] {
                        self.leaders.push((self.now, id, term));
                    }
                    self.leading[id as usize] = leading;
                }
                Command::Emit(_) => {}
            }
        }
    }

    /// Runs until `until`, 1 ms at a time.
    fn run_until(&mut self, until: Duration) {
        while self.now < until {
            self.now += MS;
            let now = self.now;
            let (due, later): (Vec<_>, Vec<_>) =
                self.in_flight.drain(..).partition(|(at, _, _)| *at <= now);
            self.in_flight = later;
            for (_, to, message) in due {
                if self.cut.contains(&(message.from(), to)) {
                    continue;
                }
                if let Some(node) = self.nodes[to as usize].as_mut() {
                    let commands = node.on_message(now, message);
                    self.apply(to, commands);
                }
            }
            for id in 1..self.nodes.len() as u64 {
                if let Some(node) = self.nodes[id as usize].as_mut() {
                    if node.next_deadline() <= now {
                        let commands = node.on_tick(now);
                        self.apply(id, commands);
                    }
                }
            }
            if self.leading.iter().filter(|l| **l).count() > 1 {
                self.overlap += MS;
            }
        }
    }

    fn crash(&mut self, id: u64) {
        self.nodes[id as usize] = None;
        self.leading[id as usize] = false;
    }

    fn restart(&mut self, id: u64, quorum: bool) {
        let size = self.nodes.len() as u64 - 1;
        let persisted = self.persisted[id as usize].clone();
        let mut node = Election::new(config(id, size, quorum), persisted, self.now);
        let commands = node.start(self.now);
        self.nodes[id as usize] = Some(node);
        self.apply(id, commands);
    }

    fn isolate(&mut self, id: u64) {
        for other in 1..self.nodes.len() as u64 {
            if other != id {
                self.cut.insert((id, other));
                self.cut.insert((other, id));
            }
        }
    }

    /// Delivers `message` to `to` at once, whatever the cut: a peer lying from outside
    /// the network model.
    fn tell(&mut self, to: u64, message: Message) {
        if let Some(node) = self.nodes[to as usize].as_mut() {
            let commands = node.on_message(self.now, message);
            self.apply(to, commands);
        }
    }

    fn heal(&mut self) {
        self.cut.clear();
    }

    fn leader_of(&self, id: u64) -> Option<u64> {
        self.nodes[id as usize].as_ref().and_then(|n| n.leader())
    }

    fn terms_with_two_leaders(&self) -> Vec<u64> {
        let mut seen = std::collections::BTreeMap::new();
        let mut doubled = Vec::new();
        for &(_, node, term) in &self.leaders {
            if let Some(&other) = seen.get(&term) {
                if other != node {
                    doubled.push(term);
                }
            }
            seen.insert(term, node);
        }
        doubled
    }
}

#[test]
fn highest_id_wins_the_first_election_in_both_modes() {
    for quorum in [false, true] {
        let mut cluster = Cluster::new(3, quorum);
        cluster.run_until(Duration::from_secs(5));
        for id in 1..=3 {
            assert_eq!(cluster.leader_of(id), Some(3), "quorum={quorum} node {id}");
        }
        assert_eq!(
            cluster.leaders.len(),
            1,
            "quorum={quorum}: {:?}",
            cluster.leaders
        );
    }
}

#[test]
fn leader_crash_five_nodes_next_highest_takes_over_with_higher_term() {
    for quorum in [false, true] {
        let mut cluster = Cluster::new(5, quorum);
        cluster.run_until(Duration::from_secs(5));
        let first_term = cluster.nodes[5].as_ref().unwrap().term();
        cluster.crash(5);
        cluster.run_until(Duration::from_secs(12));
        for id in 1..=4 {
            assert_eq!(cluster.leader_of(id), Some(4), "quorum={quorum} node {id}");
        }
        assert!(cluster.nodes[4].as_ref().unwrap().term() > first_term);
        assert!(cluster.terms_with_two_leaders().is_empty());
    }
}

#[test]
fn restarted_node_keeps_its_term_from_the_durable_state() {
    let mut cluster = Cluster::new(3, true);
    cluster.run_until(Duration::from_secs(5));
    let term = cluster.persisted[3].term;
    assert!(term >= 1);
    cluster.crash(3);
    cluster.run_until(Duration::from_secs(12));
    cluster.restart(3, true);
    assert!(cluster.nodes[3].as_ref().unwrap().term() >= term);
    cluster.run_until(Duration::from_secs(20));
    assert!(cluster.terms_with_two_leaders().is_empty());
    let leader = cluster.leader_of(1);
    assert!(leader.is_some());
    assert!((1..=3).all(|id| cluster.leader_of(id) == leader));
}

#[test]
fn plain_bully_isolated_leader_keeps_leading_while_majority_elects_another() {
    let mut cluster = Cluster::new(5, false);
    cluster.run_until(Duration::from_secs(5));
    cluster.isolate(5);
    cluster.run_until(Duration::from_secs(12));
    assert_eq!(
        cluster.leader_of(5),
        Some(5),
        "the old leader never finds out"
    );
    assert_eq!(cluster.leader_of(1), Some(4));
    assert!(
        cluster.overlap > Duration::from_secs(1),
        "split brain lasts"
    );
    cluster.heal();
    cluster.run_until(Duration::from_secs(20));
    assert!((1..=5).all(|id| cluster.leader_of(id) == Some(5)));
}

#[test]
fn quorum_isolated_leader_steps_down_before_a_new_leader_is_elected() {
    let mut cluster = Cluster::new(5, true);
    cluster.run_until(Duration::from_secs(5));
    cluster.isolate(5);
    cluster.run_until(Duration::from_secs(12));
    assert_eq!(cluster.leader_of(5), None, "lost its lease");
    assert_eq!(cluster.leader_of(1), Some(4));
    assert_eq!(cluster.overlap, Duration::ZERO, "never two leaders at once");
    assert!(cluster.terms_with_two_leaders().is_empty());
    cluster.heal();
    cluster.run_until(Duration::from_secs(25));
    let leader = cluster.leader_of(1);
    assert!(leader.is_some());
    assert!((1..=5).all(|id| cluster.leader_of(id) == leader));
    assert_eq!(cluster.overlap, Duration::ZERO);
}

/// An acknowledgement from `from` of a heartbeat of `term` stamped `sent_at`.
fn acknowledging(from: u64, term: u64, sent_at: u64) -> Message {
    Message::HeartbeatAck {
        from,
        term,
        sent_at,
        ok: true,
    }
}

/// Acknowledgements of a heartbeat "sent" in the future (peers lying, or a bug) do not
/// extend a quorum leader's lease: cut off, it still steps down in time.
#[test]
fn quorum_acks_dated_in_the_future_do_not_extend_the_lease() {
    let mut cluster = Cluster::new(5, true);
    cluster.run_until(Duration::from_secs(5));
    assert_eq!(cluster.leader_of(5), Some(5));
    let term = cluster.nodes[5].as_ref().expect("n5 runs").term();
    let far = (cluster.now + Duration::from_secs(3600)).as_nanos() as u64;
    for from in [1, 2] {
        let lie = acknowledging(from, term, far);
        cluster.in_flight.push((cluster.now + MS, 5, lie));
    }
    cluster.run_until(cluster.now + 10 * MS);
    cluster.isolate(5);
    cluster.run_until(Duration::from_secs(12));
    assert_eq!(cluster.leader_of(5), None, "lost its lease");
    assert_eq!(cluster.overlap, Duration::ZERO, "never two leaders at once");
}

/// Acknowledgements of heartbeats the leader never sent (recent stamps two lying peers
/// make up, every 100 ms) do not extend its lease: cut off, it still steps down in time.
/// Before the leader remembered its stamps, they kept it leading beside the new leader.
#[test]
fn quorum_acks_of_heartbeats_never_sent_do_not_extend_the_lease() {
    let mut cluster = Cluster::new(5, true);
    cluster.run_until(Duration::from_secs(5));
    assert_eq!(cluster.leader_of(5), Some(5));
    let term = cluster.nodes[5].as_ref().expect("n5 runs").term();
    cluster.isolate(5);
    while cluster.now < Duration::from_secs(15) {
        // A nanosecond off the 1 ms grid the leader's heartbeats are stamped on.
        let made_up = (cluster.now - MS).as_nanos() as u64 + 1;
        for from in [1, 2] {
            cluster.tell(5, acknowledging(from, term, made_up));
        }
        cluster.run_until(cluster.now + 100 * MS);
    }
    assert_eq!(cluster.leader_of(5), None, "lost its lease");
    assert_eq!(cluster.overlap, Duration::ZERO, "never two leaders at once");
}

#[test]
fn quorum_vote_is_given_once_per_term() {
    let mut node = Election::new(config(1, 3, true), Persisted::default(), Duration::ZERO);
    let now = Duration::from_secs(3); // no leader heard: free to vote
    let granted = |commands: &[Command]| {
        commands.iter().find_map(|c| match c {
            Command::Send {
                message: Message::Grant { granted, .. },
                ..
            } => Some(*granted),
            _ => None,
        })
    };
    let request = |from| Message::Coordinator {
        from,
        term: 5,
        sent_at: 0,
    };
    let first = node.on_message(now, request(3));
    assert_eq!(granted(&first), Some(true));
    assert!(first.iter().any(|c| matches!(
        c,
        Command::Persist(Persisted {
            term: 5,
            voted_for: Some(3)
        })
    )));
    let second = node.on_message(now, request(2));
    assert_eq!(granted(&second), Some(false));
    let retry = node.on_message(now, request(3));
    assert_eq!(
        granted(&retry),
        Some(true),
        "the same candidate may ask again"
    );
}

#[test]
fn quorum_follower_with_live_leader_refuses_to_vote() {
    let mut node = Election::new(config(1, 3, true), Persisted::default(), Duration::ZERO);
    let hb = Message::Heartbeat {
        from: 3,
        term: 1,
        sent_at: 0,
    };
    node.on_message(Duration::from_millis(100), hb);
    let commands = node.on_message(
        Duration::from_millis(900),
        Message::Coordinator {
            from: 2,
            term: 2,
            sent_at: 0,
        },
    );
    assert!(commands.iter().any(|c| matches!(
        c,
        Command::Send {
            message: Message::Grant {
                granted: false,
                term: 1,
                ..
            },
            ..
        }
    )));
    assert_eq!(node.term(), 1, "a refused candidate's term is not adopted");
}

#[test]
fn quorum_a_vote_binds_for_an_election_timeout_even_against_a_higher_term() {
    // n1 votes for n2 in term 2; n5 asks for term 3 soon after. Were n1 to agree, n5
    // could lead while n2 still holds a lease started from its own request.
    let mut node = Election::new(config(1, 5, true), Persisted::default(), Duration::ZERO);
    let t = Duration::from_secs(3);
    let ask = |from, term| Message::Coordinator {
        from,
        term,
        sent_at: 0,
    };
    let granted = |commands: &[Command]| {
        commands.iter().any(|c| {
            matches!(
                c,
                Command::Send {
                    message: Message::Grant { granted: true, .. },
                    ..
                }
            )
        })
    };
    assert!(granted(&node.on_message(t, ask(2, 2))));
    assert!(!granted(
        &node.on_message(t + Duration::from_millis(800), ask(5, 3))
    ));
    assert!(granted(
        &node.on_message(t + Duration::from_millis(2600), ask(5, 3))
    ));
}

#[test]
fn quorum_a_restarted_node_does_not_vote_until_an_election_timeout_passed() {
    let persisted = Persisted {
        term: 4,
        voted_for: Some(2),
    };
    let mut node = Election::new(config(1, 3, true), persisted, Duration::from_secs(10));
    let ask = Message::Coordinator {
        from: 3,
        term: 5,
        sent_at: 0,
    };
    let commands = node.on_message(Duration::from_secs(11), ask.clone());
    assert!(commands.iter().any(|c| matches!(
        c,
        Command::Send {
            message: Message::Grant { granted: false, .. },
            ..
        }
    )));
    let commands = node.on_message(Duration::from_secs(13), ask);
    assert!(commands.iter().any(|c| matches!(
        c,
        Command::Send {
            message: Message::Grant { granted: true, .. },
            ..
        }
    )));
}
