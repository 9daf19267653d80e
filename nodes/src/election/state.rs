//! The bully election as a pure state machine: events in, commands out.
//!
//! No I/O and no clock reads happen here: every entry point takes the node's local time
//! `now` and returns [`Command`]s (send, persist, emit) for a driver to carry out. That is
//! what lets the same logic run on real sockets, in the simulator, and in unit tests that
//! step it by hand.
//!
//! Plain bully (`quorum = false`, seed 004): a node that stops hearing the leader sends
//! ELECTION to every higher id; if none ANSWERs it becomes leader of a new term and
//! announces it with COORDINATOR; a live higher node that hears a lower leader takes over.
//! Nothing stops two sides of a partition from each electing a leader — with the same
//! term, even — which is the split brain the teaching scenarios show.
//!
//! Quorum mode (`quorum = true`): a candidate first asks PRE_VOTE (would a majority vote
//! for the next term?) without raising its term, then COORDINATOR becomes a request for votes. A node grants
//! at most one vote per term (persisted), and only when it has not heard a live leader
//! for an election timeout nor voted for another candidate within one (a vote promises
//! that window, and a node just started assumes it promised), so a candidate needs a
//! majority to lead. A leader keeps a
//! lease: it acts only while a majority acknowledged a heartbeat it sent less than
//! `lease` ago, and steps down the moment the lease runs out. Because a follower waits a
//! whole election timeout (longer than the lease) before voting again, the old leader has
//! stepped down before a new one can be elected — as long as clocks drift apart by less
//! than the margin between the two (see [`super::config::LEASE_FRACTION`]).

use super::config::ElectionConfig;
use super::message::Message;
use crate::runtime::{NodeEvent, Role};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::time::Duration;

/// What the election keeps on disk: terms must never go backwards across a restart, and
/// a vote once given in a term must not be given again.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Persisted {
    /// Highest term seen.
    pub term: u64,
    /// Whom this node voted for (or declared) in `term`.
    pub voted_for: Option<u64>,
}

/// An action for the driver.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Send a message to one peer.
    Send { to: u64, message: Message },
    /// Durably store this state before any message sent after it matters.
    Persist(Persisted),
    /// Report an event about this node.
    Emit(NodeEvent),
}

#[derive(Clone, Debug, PartialEq)]
enum Phase {
    Follower,
    /// Sent ELECTION to higher ids; becomes coordinator if none answers by the deadline.
    Electing {
        answer_deadline: Duration,
    },
    /// A higher id answered; waits for its COORDINATOR, else runs again.
    Waiting {
        coordinator_deadline: Duration,
    },
    /// Quorum mode: asked whether a majority would vote for `self.term + 1`.
    PreVoting {
        grants: BTreeSet<u64>,
        deadline: Duration,
    },
    /// Quorum mode: asked for votes for `self.term`.
    Proposing {
        grants: BTreeSet<u64>,
        sent_at: Duration,
        deadline: Duration,
    },
    Leader,
}

/// One node's election state. The handlers taken only around an election are `#[cold]`:
/// kept out of the heartbeat path's instruction-cache lines (issue 16).
pub struct Election {
    config: ElectionConfig,
    term: u64,
    voted_for: Option<u64>,
    phase: Phase,
    /// Believed leader while following.
    leader: Option<u64>,
    /// Local time of the last message from the believed leader.
    last_leader_contact: Option<Duration>,
    /// Follower: when the leader is suspected.
    election_deadline: Duration,
    /// Leader: when the next heartbeat goes out.
    heartbeat_due: Duration,
    /// Leader (quorum mode): last instant it may still act as leader.
    lease_until: Duration,
    /// Quorum mode: a vote is also a promise not to help elect anyone else for an election
    /// timeout (the candidate's lease may start from its request). `None` as candidate
    /// means "nobody": a node just (re)started does not know whom it promised.
    promise: Option<(Option<u64>, Duration)>,
    /// Quorum leader: `(sent_at, from)` of each acknowledgement of a recent heartbeat (a
    /// few per peer: pruned to the lease at each heartbeat; one allocation, reused).
    acks: Vec<(u64, u64)>,
    /// Quorum leader: the stamps of the heartbeats it sent within the lease (pruned with
    /// `acks`); an acknowledgement echoing any other stamp is ignored.
    sent: Vec<u64>,
    /// `config.lease()`, computed once (a float multiply per acknowledgement otherwise).
    lease: Duration,
    /// Last role reported, to emit only changes.
    reported: Option<(Role, u64, Option<u64>)>,
    out: Vec<Command>,
}

fn nanos(t: Duration) -> u64 {
    t.as_nanos() as u64
}

impl Election {
    /// A node starting (or restarting) as a follower that first listens for a leader.
    pub fn new(config: ElectionConfig, persisted: Persisted, now: Duration) -> Self {
        let election_deadline = now + config.election_timeout;
        let lease = config.lease();
        Election {
            config,
            term: persisted.term,
            voted_for: persisted.voted_for,
            phase: Phase::Follower,
            leader: None,
            last_leader_contact: None,
            election_deadline,
            heartbeat_due: now,
            lease_until: now,
            promise: Some((None, election_deadline)),
            acks: Vec::new(),
            sent: Vec::new(),
            lease,
            reported: None,
            out: Vec::new(),
        }
    }

    /// Reports the initial role.
    pub fn start(&mut self, _now: Duration) -> Vec<Command> {
        self.finish()
    }

    /// This node's id.
    pub fn id(&self) -> u64 {
        self.config.id
    }

    /// The current term.
    pub fn term(&self) -> u64 {
        self.term
    }

    /// The current role.
    pub fn role(&self) -> Role {
        match self.phase {
            Phase::Follower => Role::Follower,
            Phase::Leader => Role::Leader,
            _ => Role::Candidate,
        }
    }

    /// Whom this node believes leads (itself when leader).
    pub fn leader(&self) -> Option<u64> {
        match self.phase {
            Phase::Leader => Some(self.config.id),
            _ => self.leader,
        }
    }

    /// The earliest local time at which [`Election::on_tick`] has work to do.
    pub fn next_deadline(&self) -> Duration {
        match &self.phase {
            Phase::Follower => self.election_deadline,
            Phase::Electing { answer_deadline } => *answer_deadline,
            Phase::Waiting {
                coordinator_deadline,
            } => *coordinator_deadline,
            Phase::Proposing { deadline, .. } | Phase::PreVoting { deadline, .. } => *deadline,
            Phase::Leader if self.config.quorum => self.heartbeat_due.min(self.lease_until),
            Phase::Leader => self.heartbeat_due,
        }
    }

    /// Timers: suspect the leader, give up waiting, send heartbeats, check the lease.
    pub fn on_tick(&mut self, now: Duration) -> Vec<Command> {
        self.check_lease(now);
        match self.phase.clone() {
            Phase::Follower if now >= self.election_deadline => {
                let suspected = self.leader.take();
                self.out.push(Command::Emit(NodeEvent::ElectionStarted {
                    term: self.term,
                    suspected,
                }));
                self.start_election(now);
            }
            Phase::Electing { answer_deadline } if now >= answer_deadline => {
                self.become_coordinator(now);
            }
            Phase::Waiting {
                coordinator_deadline,
            } if now >= coordinator_deadline => {
                self.start_election(now);
            }
            Phase::Proposing { deadline, .. } | Phase::PreVoting { deadline, .. }
                if now >= deadline =>
            {
                // No majority answered: listen for a whole timeout before trying again.
                self.become_follower(now, None);
            }
            Phase::Leader if now >= self.heartbeat_due => self.send_heartbeats(now),
            _ => {}
        }
        self.finish()
    }

    /// Applies the passage of time without a timer or message: a quorum leader whose lease
    /// ran out steps down. Callers that act on [`Election::role`] call this first.
    pub fn refresh(&mut self, now: Duration) -> Vec<Command> {
        self.check_lease(now);
        self.finish()
    }

    /// Handles one message from a peer.
    pub fn on_message(&mut self, now: Duration, message: Message) -> Vec<Command> {
        self.check_lease(now);
        match message {
            Message::Election { from, .. } => self.on_election(now, from),
            Message::Answer { from, .. } => {
                if from > self.config.id && matches!(self.phase, Phase::Electing { .. }) {
                    self.phase = Phase::Waiting {
                        coordinator_deadline: now + self.config.election_timeout,
                    };
                }
            }
            Message::Coordinator {
                from,
                term,
                sent_at,
            } => {
                if self.config.quorum {
                    self.on_vote_request(now, from, term, sent_at)
                } else {
                    self.on_announcement(now, from, term)
                }
            }
            Message::PreVote { from, term } => {
                let granted = term > self.term
                    && self.phase != Phase::Leader
                    && !(self.leader_alive(now) && self.leader != Some(from))
                    && !self.promised_elsewhere(now, from);
                let current = self.term;
                self.send(
                    from,
                    Message::PreVoteReply {
                        from: self.config.id,
                        term,
                        current,
                        granted,
                    },
                );
            }
            Message::PreVoteReply {
                from,
                term,
                current,
                granted,
            } => self.on_pre_vote_reply(now, from, term, current, granted),
            Message::Grant {
                from,
                term,
                granted,
            } => self.on_grant(now, from, term, granted),
            Message::Heartbeat {
                from,
                term,
                sent_at,
            } => self.on_heartbeat(now, from, term, sent_at),
            Message::HeartbeatAck {
                from,
                term,
                sent_at,
                ok,
            } => self.on_heartbeat_ack(now, from, term, sent_at, ok),
        }
        self.finish()
    }

    #[cold]
    fn on_election(&mut self, now: Duration, from: u64) {
        if from >= self.config.id {
            return;
        }
        self.send(
            from,
            Message::Answer {
                from: self.config.id,
                term: self.term,
            },
        );
        match self.phase {
            // Tell the caller who leads, so it stops its election.
            Phase::Leader => {
                let heartbeat = self.heartbeat(now);
                self.send(from, heartbeat);
            }
            Phase::Follower if self.leader_alive(now) && self.config.quorum => {}
            Phase::Follower => {
                self.out.push(Command::Emit(NodeEvent::ElectionStarted {
                    term: self.term,
                    suspected: self.leader,
                }));
                self.start_election(now);
            }
            _ => {}
        }
    }

    /// Plain bully: COORDINATOR is an announcement, accepted unless its term is stale.
    #[cold]
    fn on_announcement(&mut self, now: Duration, from: u64, term: u64) {
        let same_term_rival = term == self.term && self.phase == Phase::Leader;
        if term < self.term || (same_term_rival && from < self.config.id) {
            if self.phase == Phase::Leader {
                let announcement = self.announcement(now);
                self.send(from, announcement);
            }
            return;
        }
        self.adopt_leader(now, from, term, "coordinator announced");
        self.bully_if_lower(now, from);
    }

    /// Quorum mode: COORDINATOR asks for this node's vote for `term`.
    #[cold]
    fn on_vote_request(&mut self, now: Duration, from: u64, term: u64, _sent_at: u64) {
        let reject = |this: &mut Self| {
            let term = this.term;
            this.send(
                from,
                Message::Grant {
                    from: this.config.id,
                    term,
                    granted: false,
                },
            );
        };
        if term < self.term {
            return reject(self);
        }
        if term == self.term {
            let granted = self.voted_for == Some(from);
            return self.send(
                from,
                Message::Grant {
                    from: self.config.id,
                    term,
                    granted,
                },
            );
        }
        // A live leader other than the candidate keeps this node's vote (and its term,
        // so a partitioned candidate's inflated term does not depose a healthy leader).
        let leader_alive = match self.phase {
            Phase::Leader => true,
            _ => self.leader_alive(now) && self.leader != Some(from),
        };
        if leader_alive || self.promised_elsewhere(now, from) {
            return reject(self);
        }
        self.set_term(term);
        self.voted_for = Some(from);
        self.persist();
        self.become_follower(now, None);
        self.last_leader_contact = Some(now);
        self.promise = Some((Some(from), now + self.config.election_timeout));
        self.send(
            from,
            Message::Grant {
                from: self.config.id,
                term,
                granted: true,
            },
        );
    }

    #[cold]
    fn on_pre_vote_reply(
        &mut self,
        now: Duration,
        from: u64,
        term: u64,
        current: u64,
        granted: bool,
    ) {
        if current > self.term {
            // Behind: adopt the term (no vote given in it) and ask again for the next one.
            self.set_term(current);
            self.persist();
            if matches!(self.phase, Phase::PreVoting { .. }) {
                self.pre_vote(now);
            }
            return;
        }
        if !granted || term != self.term + 1 {
            return;
        }
        if let Phase::PreVoting { grants, .. } = &mut self.phase {
            grants.insert(from);
            if grants.len() >= self.config.majority() {
                self.propose(now);
            }
        }
    }

    #[cold]
    fn on_grant(&mut self, now: Duration, from: u64, term: u64, granted: bool) {
        if !granted {
            if term > self.term {
                self.set_term(term);
                self.persist();
                self.become_follower(now, None);
            }
            return;
        }
        if term != self.term {
            return;
        }
        if let Phase::Proposing {
            grants, sent_at, ..
        } = &mut self.phase
        {
            grants.insert(from);
            if grants.len() >= self.config.majority() {
                let sent_at = *sent_at;
                self.become_leader(now, sent_at);
            }
        }
    }

    fn on_heartbeat(&mut self, now: Duration, from: u64, term: u64, sent_at: u64) {
        let ack = |this: &mut Self, ok: bool| {
            let term = this.term;
            this.send(
                from,
                Message::HeartbeatAck {
                    from: this.config.id,
                    term,
                    sent_at,
                    ok,
                },
            );
        };
        if term < self.term {
            return ack(self, false);
        }
        if term == self.term && self.phase == Phase::Leader && from < self.config.id {
            // Two leaders in one term (plain bully across a partition): the higher keeps it.
            let heartbeat = self.heartbeat(now);
            return self.send(from, heartbeat);
        }
        self.adopt_leader(now, from, term, "heartbeat from another leader");
        ack(self, true);
        self.bully_if_lower(now, from);
    }

    fn on_heartbeat_ack(&mut self, now: Duration, from: u64, term: u64, sent_at: u64, ok: bool) {
        if !ok {
            if term > self.term {
                if self.phase == Phase::Leader {
                    self.step_down(now, format!("n{from} has a higher term {term}"));
                }
                self.set_term(term);
                self.persist();
                self.become_follower(now, None);
            }
            return;
        }
        if self.phase != Phase::Leader || term != self.term {
            return;
        }
        if !self.config.quorum {
            return; // a plain leader holds no lease
        }
        if !self.sent.contains(&sent_at) {
            // Not a heartbeat this leader sent (dated in the future, or made up): a peer
            // lying, or a bug, would stretch the lease past what a majority answered.
            return;
        }
        if !self.acks.contains(&(sent_at, from)) {
            self.acks.push((sent_at, from));
        }
        let ackers = self.acks.iter().filter(|&&(at, _)| at == sent_at).count();
        if ackers + 1 >= self.config.majority() {
            let until = Duration::from_nanos(sent_at) + self.lease;
            self.lease_until = self.lease_until.max(until);
        }
    }

    /// Follow `from` as leader of `term`, stepping down if this node led.
    fn adopt_leader(&mut self, now: Duration, from: u64, term: u64, why: &str) {
        if self.phase == Phase::Leader && from != self.config.id {
            self.step_down(now, format!("{why}: n{from} leads term {term}"));
        }
        if term > self.term {
            self.set_term(term);
            self.persist();
        }
        self.become_follower(now, Some(from));
    }

    /// Plain bully: a live node with a higher id than the leader takes over.
    fn bully_if_lower(&mut self, now: Duration, leader: u64) {
        if !self.config.quorum && leader < self.config.id {
            self.out.push(Command::Emit(NodeEvent::ElectionStarted {
                term: self.term,
                suspected: None,
            }));
            self.start_election(now);
        }
    }

    #[cold]
    fn start_election(&mut self, now: Duration) {
        self.leader = None;
        let higher: Vec<u64> = self
            .config
            .peers
            .iter()
            .copied()
            .filter(|&p| p > self.config.id)
            .collect();
        if higher.is_empty() {
            return self.become_coordinator(now);
        }
        for peer in higher {
            self.send(
                peer,
                Message::Election {
                    from: self.config.id,
                    term: self.term,
                },
            );
        }
        self.phase = Phase::Electing {
            answer_deadline: now + self.config.answer_timeout(),
        };
    }

    #[cold]
    fn become_coordinator(&mut self, now: Duration) {
        if self.config.quorum {
            return self.pre_vote(now);
        }
        self.term += 1;
        self.voted_for = Some(self.config.id);
        self.persist();
        self.become_leader(now, now);
        let announcement = self.announcement(now);
        self.broadcast(announcement);
    }

    /// True while a vote given to someone other than `candidate` still binds.
    fn promised_elsewhere(&self, now: Duration, candidate: u64) -> bool {
        self.promise
            .is_some_and(|(to, until)| now < until && to != Some(candidate))
    }

    /// Quorum mode, step 1: ask whether a majority would vote, without raising the term.
    #[cold]
    fn pre_vote(&mut self, now: Duration) {
        if self.promised_elsewhere(now, self.config.id) {
            // Our own vote is promised to another candidate: wait, then try again.
            self.become_follower(now, None);
            if let Some((_, until)) = self.promise {
                self.election_deadline = until;
            }
            return;
        }
        self.phase = Phase::PreVoting {
            grants: BTreeSet::from([self.config.id]),
            deadline: now + self.config.election_timeout,
        };
        if self.config.majority() <= 1 {
            return self.propose(now);
        }
        let ask = Message::PreVote {
            from: self.config.id,
            term: self.term + 1,
        };
        self.broadcast(ask);
    }

    /// Quorum mode, step 2: raise the term, vote for itself, ask for votes.
    #[cold]
    fn propose(&mut self, now: Duration) {
        self.term += 1;
        self.voted_for = Some(self.config.id);
        self.persist();
        self.phase = Phase::Proposing {
            grants: BTreeSet::from([self.config.id]),
            sent_at: now,
            deadline: now + self.config.election_timeout,
        };
        if self.config.majority() <= 1 {
            return self.become_leader(now, now);
        }
        let request = self.announcement(now);
        self.broadcast(request);
    }

    /// `lease_from`: send time of the request a majority granted (the lease's start).
    fn become_leader(&mut self, now: Duration, lease_from: Duration) {
        self.phase = Phase::Leader;
        self.leader = Some(self.config.id);
        self.acks.clear();
        self.sent.clear();
        self.lease_until = lease_from + self.lease;
        self.send_heartbeats(now);
    }

    fn become_follower(&mut self, now: Duration, leader: Option<u64>) {
        self.phase = Phase::Follower;
        self.leader = leader;
        if leader.is_some() {
            self.last_leader_contact = Some(now);
        }
        self.election_deadline = now + self.config.election_timeout;
    }

    #[cold]
    fn step_down(&mut self, now: Duration, reason: String) {
        self.out.push(Command::Emit(NodeEvent::SteppedDown {
            term: self.term,
            reason,
        }));
        self.become_follower(now, None);
    }

    /// Quorum mode: a leader whose lease ran out steps down before doing anything else.
    fn check_lease(&mut self, now: Duration) {
        if self.config.quorum && self.phase == Phase::Leader && now >= self.lease_until {
            self.step_down(
                now,
                "lease expired: no majority acknowledged a recent heartbeat".into(),
            );
        }
    }

    fn send_heartbeats(&mut self, now: Duration) {
        self.out
            .push(Command::Emit(NodeEvent::HeartbeatSent { term: self.term }));
        let heartbeat = self.heartbeat(now);
        self.broadcast(heartbeat);
        self.heartbeat_due = now + self.config.heartbeat_interval;
        if self.config.majority() <= 1 {
            self.lease_until = now + self.lease;
        }
        let oldest = nanos(now.saturating_sub(self.lease));
        self.acks.retain(|&(sent_at, _)| sent_at >= oldest);
        self.sent.retain(|&sent_at| sent_at >= oldest);
    }

    fn leader_alive(&self, now: Duration) -> bool {
        self.leader.is_some()
            && self
                .last_leader_contact
                .is_some_and(|t| now.saturating_sub(t) < self.config.election_timeout)
    }

    /// A heartbeat stamped `now`. A quorum leader remembers the stamps it sent within the
    /// lease, so only an acknowledgement of one of them counts toward the lease.
    fn heartbeat(&mut self, now: Duration) -> Message {
        let sent_at = nanos(now);
        if self.config.quorum && self.sent.last() != Some(&sent_at) {
            self.sent.push(sent_at);
        }
        Message::Heartbeat {
            from: self.config.id,
            term: self.term,
            sent_at,
        }
    }

    fn announcement(&self, now: Duration) -> Message {
        Message::Coordinator {
            from: self.config.id,
            term: self.term,
            sent_at: nanos(now),
        }
    }

    fn set_term(&mut self, term: u64) {
        if term > self.term {
            self.term = term;
            self.voted_for = None;
        }
    }

    fn persist(&mut self) {
        self.out.push(Command::Persist(Persisted {
            term: self.term,
            voted_for: self.voted_for,
        }));
    }

    fn send(&mut self, to: u64, message: Message) {
        self.out.push(Command::Send { to, message });
    }

    fn broadcast(&mut self, message: Message) {
        for i in 0..self.config.peers.len() {
            let to = self.config.peers[i];
            self.send(to, message.clone());
        }
    }

    /// Hands back a drained outbox (its allocation is reused for the next commands: a
    /// driver handles one message per turn, issue 16).
    pub fn recycle(&mut self, mut spent: Vec<Command>) {
        if self.out.capacity() == 0 {
            spent.clear();
            self.out = spent;
        }
    }

    /// Appends a role event if the role, term or leader changed, and drains the outbox.
    fn finish(&mut self) -> Vec<Command> {
        let now = (self.role(), self.term, self.leader());
        if self.reported != Some(now) {
            self.reported = Some(now);
            self.out.push(Command::Emit(NodeEvent::Role {
                role: now.0,
                term: now.1,
                leader: now.2,
            }));
        }
        std::mem::take(&mut self.out)
    }
}
