//! The total-order chat as a pure state machine, with the bully election inside it.
//!
//! The elected leader is the sequencer. A node that receives a client's submission and is
//! not the leader forwards it; the leader gives it the next sequence number and, once it is
//! committed, broadcasts it; every node delivers strictly in sequence order, buffering gaps
//! and dropping what it already has. A lagging or restarted node asks the leader to catch
//! it up. Submissions carry a client-chosen id, and a retry with the same id is answered
//! with the first delivery instead of being sequenced twice.
//!
//! `commit = "leader"` (seed 004): an entry is committed the moment the leader sequences
//! it. A leader that dies takes sequenced-but-unsent entries with it, and the next leader
//! reuses their numbers; two leaders in a split brain both sequence. Acknowledged messages
//! can vanish and nodes can disagree — the teaching scenarios show both.
//!
//! `commit = "majority"`: the leader first has a majority store an entry (APPEND /
//! STORED), then commits, delivers and acknowledges it. A new leader, before sequencing
//! anything, collects every node's delivered and stored entries from a majority
//! (SYNC_REQUEST / SYNC_REPLY; each reply is a durable promise to ignore older leaders),
//! keeps for each position the delivered entry or else the one from the highest term, and
//! re-proposes them in its own term. Any committed entry was stored by a majority, and
//! any two majorities meet, so it survives every change of leader (Paxos's argument,
//! slot by slot).

use super::message::{ClientResponse, Entry, Message, Submission, Wire};
use super::store::{Record, Recovered};
use crate::election::{self, Election, ElectionConfig};
use crate::runtime::{NodeEvent, Role};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// When a submission counts as committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Commit {
    /// Once a majority stored it (safe).
    Majority,
    /// Once the leader sequenced it (seed 004).
    Leader,
}

/// Chat knobs.
#[derive(Clone, Debug, PartialEq)]
pub struct ChatConfig {
    /// The embedded election (id, peers, timings, quorum).
    pub election: ElectionConfig,
    /// Commit rule.
    pub commit: Commit,
}

/// Most entries in one catch-up or sync reply.
const CHUNK: usize = 256;
/// How long a forwarded submission waits for the leader's answer.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

/// An action for the driver.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Send to a peer.
    Send { to: u64, wire: Wire },
    /// Append and sync a durable record before anything after it.
    Persist(Record),
    /// Report an event (to the history: before the record of what it reports).
    Emit(NodeEvent),
    /// Answer client request `request`.
    Reply {
        request: u64,
        response: ClientResponse,
    },
    /// Show a delivered entry to subscribers.
    Publish(Entry),
}

/// Who waits for a submission's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Waiter {
    /// A client connected to this node.
    Local(u64),
    /// A client connected to another node, which forwarded it.
    Remote(u64),
}

/// Per replying node: its delivered entries and its stored-but-undelivered ones.
type SyncReplies = BTreeMap<u64, (Vec<Entry>, Vec<Entry>)>;

struct Leading {
    term: u64,
    /// Majority commit: replies collected while syncing; `None` once sequencing.
    sync: Option<SyncReplies>,
    /// Submissions that arrived during the sync.
    queued: Vec<(Submission, Waiter)>,
    next_seq: u64,
    /// Majority commit: who stored each uncommitted seq.
    stored_by: BTreeMap<u64, BTreeSet<u64>>,
    waiters: BTreeMap<String, Vec<Waiter>>,
    beat_due: Duration,
}

/// One chat node.
pub struct Chat {
    config: ChatConfig,
    election: Election,
    delivered: Vec<Entry>,
    delivered_ids: BTreeMap<String, u64>,
    /// Delivered by the leader but not yet in order here.
    pending: BTreeMap<u64, Entry>,
    /// Majority commit: stored, not yet delivered.
    stored: BTreeMap<u64, Entry>,
    promised: u64,
    leading: Option<Leading>,
    /// Submissions forwarded to the leader: id -> (local requests, deadline).
    forwarded: BTreeMap<String, (Vec<u64>, Duration)>,
    next_catch_up: Duration,
    out: Vec<Action>,
}

impl Chat {
    /// A node starting from its recovered durable state.
    pub fn new(config: ChatConfig, recovered: Recovered, now: Duration) -> Self {
        let election = Election::new(config.election.clone(), recovered.election, now);
        let delivered_ids = recovered
            .delivered
            .iter()
            .map(|e| (e.id.clone(), e.seq))
            .collect();
        Chat {
            config,
            election,
            delivered: recovered.delivered,
            delivered_ids,
            pending: BTreeMap::new(),
            stored: recovered.stored,
            promised: recovered.promised,
            leading: None,
            forwarded: BTreeMap::new(),
            next_catch_up: now,
            out: Vec::new(),
        }
    }

    fn me(&self) -> u64 {
        self.config.election.id
    }

    /// Entries delivered so far, in order.
    pub fn delivered(&self) -> &[Entry] {
        &self.delivered
    }

    /// The embedded election.
    pub fn election(&self) -> &Election {
        &self.election
    }

    /// Reports the initial role.
    pub fn start(&mut self, now: Duration) -> Vec<Action> {
        let commands = self.election.start(now);
        self.absorb(commands);
        self.finish(now)
    }

    /// The earliest local time at which [`Chat::on_tick`] has work.
    pub fn next_deadline(&self) -> Duration {
        let mut deadline = self.election.next_deadline();
        if let Some(leading) = &self.leading {
            deadline = deadline.min(leading.beat_due);
        }
        if let Some((_, until)) = self.forwarded.values().min_by_key(|(_, until)| *until) {
            deadline = deadline.min(*until);
        }
        deadline
    }

    /// Timers: the election's, the leader's beat (with retransmission), forward timeouts.
    pub fn on_tick(&mut self, now: Duration) -> Vec<Action> {
        let commands = self.election.on_tick(now);
        self.absorb(commands);
        self.follow_role(now);
        let beat = match &mut self.leading {
            Some(leading) if now >= leading.beat_due => {
                leading.beat_due = now + self.config.election.heartbeat_interval;
                true
            }
            _ => false,
        };
        if beat {
            self.beat();
        }
        let expired: Vec<String> = self
            .forwarded
            .iter()
            .filter(|(_, (_, until))| *until <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            self.answer_forwarded(
                &id,
                ClientResponse::failed("no answer from the leader", false),
            );
        }
        self.finish(now)
    }

    /// A peer message.
    pub fn on_peer(&mut self, now: Duration, wire: Wire) -> Vec<Action> {
        match wire {
            Wire::Election(message) => {
                let commands = self.election.on_message(now, message);
                self.absorb(commands);
                self.follow_role(now);
            }
            Wire::Chat(message) => {
                self.refresh(now);
                self.on_chat(now, message);
            }
        }
        self.finish(now)
    }

    /// A client's submission, to be answered with [`Action::Reply`] for `request`.
    pub fn on_submit(
        &mut self,
        now: Duration,
        request: u64,
        submission: Submission,
    ) -> Vec<Action> {
        self.refresh(now);
        if let Some(outcome) = self.already_decided(&submission) {
            self.reply(&submission.id, Waiter::Local(request), outcome);
        } else if self.leading.is_some() {
            self.sequence(submission, Waiter::Local(request));
        } else {
            match self.election.leader() {
                Some(leader) if leader != self.me() => {
                    let until = now + FORWARD_TIMEOUT;
                    let slot = self
                        .forwarded
                        .entry(submission.id.clone())
                        .or_insert((Vec::new(), until));
                    slot.0.push(request);
                    let forward = Message::Forward {
                        from: self.me(),
                        origin: self.me(),
                        submission,
                    };
                    self.send(leader, forward);
                }
                _ => self.reply(
                    &submission.id,
                    Waiter::Local(request),
                    Err(("no leader known; retry shortly".into(), true)),
                ),
            }
        }
        self.finish(now)
    }

    /// The answer to a submission that needs no sequencing: an empty id is refused; an
    /// id already delivered is a retry (answered with its position) when the text is the
    /// same, and a reuse of the id for another message (refused) when it is not — a
    /// client restarted with the same ids must not be told that its new message was
    /// delivered at the old one's position.
    fn already_decided(&self, submission: &Submission) -> Option<Result<u64, (String, bool)>> {
        if submission.id.is_empty() {
            let why = "empty message id: every message needs a unique, non-empty id";
            return Some(Err((why.into(), true)));
        }
        let &seq = self.delivered_ids.get(&submission.id)?;
        let delivered = self.delivered.get(seq.checked_sub(1)? as usize)?;
        Some(if delivered.text == submission.text {
            Ok(seq)
        } else {
            Err((reused_id(&submission.id, seq), true))
        })
    }

    /// Status for the client port: (role, term, leader, delivered count).
    pub fn status(&self) -> (Role, u64, Option<u64>, u64) {
        (
            self.election.role(),
            self.election.term(),
            self.election.leader(),
            self.delivered.len() as u64,
        )
    }

    fn refresh(&mut self, now: Duration) {
        let commands = self.election.refresh(now);
        self.absorb(commands);
        self.follow_role(now);
    }

    fn absorb(&mut self, commands: Vec<election::Command>) {
        for command in commands {
            self.out.push(match command {
                election::Command::Send { to, message } => Action::Send {
                    to,
                    wire: Wire::Election(message),
                },
                election::Command::Persist(p) => Action::Persist(Record::Election(p)),
                election::Command::Emit(event) => Action::Emit(event),
            });
        }
    }

    fn finish(&mut self, _now: Duration) -> Vec<Action> {
        std::mem::take(&mut self.out)
    }

    fn send(&mut self, to: u64, message: Message) {
        self.out.push(Action::Send {
            to,
            wire: Wire::Chat(message),
        });
    }

    fn broadcast(&mut self, message: Message) {
        for i in 0..self.config.election.peers.len() {
            let to = self.config.election.peers[i];
            self.send(to, message.clone());
        }
    }

    fn majority(&self) -> usize {
        self.config.election.majority()
    }

    /// Starts or stops acting as sequencer when the election's verdict changes.
    fn follow_role(&mut self, now: Duration) {
        let leader_term = (self.election.role() == Role::Leader).then(|| self.election.term());
        let current = self.leading.as_ref().map(|l| l.term);
        if leader_term == current {
            return;
        }
        if let Some(old) = self.leading.take() {
            for (submission, waiter) in old.queued {
                let reason = "leader stepped down before sequencing it".to_string();
                self.reply(&submission.id, waiter, Err((reason, true)));
            }
            for (id, waiters) in old.waiters {
                for waiter in waiters {
                    let reason = "leader stepped down; outcome unknown".to_string();
                    self.reply(&id, waiter, Err((reason, false)));
                }
            }
        }
        let Some(term) = leader_term else {
            return;
        };
        let next_seq = self.delivered.len() as u64 + 1;
        let mut leading = Leading {
            term,
            sync: None,
            queued: Vec::new(),
            next_seq,
            stored_by: BTreeMap::new(),
            waiters: BTreeMap::new(),
            beat_due: now,
        };
        if self.config.commit == Commit::Majority {
            self.promise(term);
            let mut replies = BTreeMap::new();
            let own_stored: Vec<Entry> = self.stored.values().cloned().collect();
            replies.insert(self.me(), (Vec::new(), own_stored));
            leading.sync = Some(replies);
            self.leading = Some(leading);
            self.request_sync();
            self.try_finish_sync();
        } else {
            self.leading = Some(leading);
        }
    }

    fn promise(&mut self, term: u64) {
        if term > self.promised {
            self.promised = term;
            self.out.push(Action::Persist(Record::Promise(term)));
        }
    }

    fn request_sync(&mut self) {
        if let Some(leading) = &self.leading {
            let request = Message::SyncRequest {
                from: self.me(),
                term: leading.term,
                next: self.delivered.len() as u64 + 1,
            };
            self.broadcast(request);
        }
    }

    /// Leader: the periodic beat (and, during a sync or with uncommitted entries, a
    /// retransmission to whoever has not answered).
    fn beat(&mut self) {
        let Some(leading) = &self.leading else {
            return;
        };
        let term = leading.term;
        let syncing = leading.sync.is_some();
        let missing: Vec<(u64, Vec<u64>)> = leading
            .stored_by
            .iter()
            .map(|(&seq, by)| {
                let peers = self
                    .config
                    .election
                    .peers
                    .iter()
                    .copied()
                    .filter(|p| !by.contains(p))
                    .collect();
                (seq, peers)
            })
            .collect();
        let commit = self.delivered.len() as u64;
        self.broadcast(Message::Beat {
            from: self.me(),
            term,
            commit,
        });
        if syncing {
            self.request_sync();
        }
        for (seq, peers) in missing {
            if let Some(entry) = self.stored.get(&seq).cloned() {
                for peer in peers {
                    self.send(
                        peer,
                        Message::Append {
                            from: self.me(),
                            term,
                            entry: entry.clone(),
                        },
                    );
                }
            }
        }
    }

    fn on_chat(&mut self, now: Duration, message: Message) {
        match message {
            Message::Forward {
                origin, submission, ..
            } => {
                if let Some(outcome) = self.already_decided(&submission) {
                    self.reply(&submission.id, Waiter::Remote(origin), outcome);
                } else if self.leading.is_some() {
                    self.sequence(submission, Waiter::Remote(origin));
                } else {
                    let reject = Message::Reject {
                        from: self.me(),
                        id: submission.id,
                        reason: "not the leader".into(),
                        definite: true,
                    };
                    self.send(origin, reject);
                }
            }
            Message::Ack { id, seq, .. } => self.answer_forwarded(&id, ClientResponse::sent(seq)),
            Message::Reject {
                id,
                reason,
                definite,
                ..
            } => self.answer_forwarded(&id, ClientResponse::failed(reason, definite)),
            Message::Append { from, term, entry } => self.on_append(from, term, entry),
            Message::Stored { from, term, seq } => {
                if let Some(leading) = self.leading.as_mut().filter(|l| l.term == term) {
                    if let Some(by) = leading.stored_by.get_mut(&seq) {
                        by.insert(from);
                    }
                    self.try_commit();
                }
            }
            Message::Deliver { from, entries, .. } => {
                for entry in entries {
                    self.accept_delivery(now, from, entry);
                }
            }
            Message::Beat { from, commit, .. } => {
                if commit > self.delivered.len() as u64 {
                    self.ask_catch_up(now, from);
                }
            }
            Message::CatchUp { from, next } => {
                if self.leading.is_some() {
                    let start = (next.max(1) - 1) as usize;
                    let entries: Vec<Entry> = self
                        .delivered
                        .iter()
                        .skip(start)
                        .take(CHUNK)
                        .cloned()
                        .collect();
                    if !entries.is_empty() {
                        let term = self.election.term();
                        self.send(
                            from,
                            Message::Deliver {
                                from: self.me(),
                                term,
                                entries,
                            },
                        );
                    }
                }
            }
            Message::SyncRequest { from, term, next } => {
                if self.config.commit != Commit::Majority || term < self.promised {
                    return;
                }
                self.promise(term);
                let start = (next.max(1) - 1) as usize;
                let delivered: Vec<Entry> = self.delivered.iter().skip(start).cloned().collect();
                let stored: Vec<Entry> = self.stored.values().cloned().collect();
                self.send(
                    from,
                    Message::SyncReply {
                        from: self.me(),
                        term,
                        delivered,
                        stored,
                    },
                );
            }
            Message::SyncReply {
                from,
                term,
                delivered,
                stored,
            } => {
                if let Some(leading) = self.leading.as_mut().filter(|l| l.term == term) {
                    if let Some(replies) = leading.sync.as_mut() {
                        replies.insert(from, (delivered, stored));
                        self.try_finish_sync();
                    }
                }
            }
        }
    }

    fn ask_catch_up(&mut self, now: Duration, leader: u64) {
        if now >= self.next_catch_up {
            self.next_catch_up = now + self.config.election.heartbeat_interval;
            let next = self.delivered.len() as u64 + 1;
            self.send(
                leader,
                Message::CatchUp {
                    from: self.me(),
                    next,
                },
            );
        }
    }

    /// Leader: give a submission the next position.
    fn sequence(&mut self, submission: Submission, waiter: Waiter) {
        // An id still being committed: a retry waits for it, another message under the
        // same id is refused (a scan of the few uncommitted entries, on this path only).
        let in_flight = self
            .leading
            .as_ref()
            .is_some_and(|l| l.sync.is_none() && l.waiters.contains_key(&submission.id));
        if in_flight {
            let same_id = |e: &&Entry| e.id == submission.id;
            if let Some(first) = self.stored.values().find(same_id) {
                if first.text != submission.text {
                    let why = reused_id(&submission.id, first.seq);
                    self.reply(&submission.id, waiter, Err((why, true)));
                    return;
                }
            }
        }
        let me = self.me();
        let commit = self.config.commit;
        let Some(leading) = self.leading.as_mut() else {
            return;
        };
        if leading.sync.is_some() {
            leading.queued.push((submission, waiter));
            return;
        }
        if let Some(waiters) = leading.waiters.get_mut(&submission.id) {
            waiters.push(waiter); // a retry of an entry still being committed
            return;
        }
        let entry = Entry {
            seq: leading.next_seq,
            term: leading.term,
            id: submission.id.clone(),
            text: submission.text,
        };
        leading.next_seq += 1;
        leading.waiters.insert(submission.id, vec![waiter]);
        self.out.push(Action::Emit(NodeEvent::Sequenced {
            seq: entry.seq,
            term: entry.term,
            id: entry.id.clone(),
        }));
        match commit {
            Commit::Leader => {
                self.deliver(entry.clone());
                let term = entry.term;
                self.broadcast(Message::Deliver {
                    from: me,
                    term,
                    entries: vec![entry],
                });
            }
            Commit::Majority => self.propose(entry),
        }
    }

    /// Majority commit: store locally and ask every peer to store.
    fn propose(&mut self, entry: Entry) {
        let me = self.me();
        let Some(leading) = self.leading.as_mut() else {
            return;
        };
        leading.stored_by.insert(entry.seq, BTreeSet::from([me]));
        let term = leading.term;
        self.stored.insert(entry.seq, entry.clone());
        self.out
            .push(Action::Persist(Record::Stored(entry.clone())));
        self.broadcast(Message::Append {
            from: me,
            term,
            entry,
        });
        self.try_commit();
    }

    /// Majority commit, leader: deliver every next entry a majority stored.
    fn try_commit(&mut self) {
        let majority = self.majority();
        let mut committed = Vec::new();
        loop {
            let next = self.delivered.len() as u64 + 1;
            let Some(leading) = self.leading.as_mut() else {
                break;
            };
            let ready = leading
                .stored_by
                .get(&next)
                .is_some_and(|by| by.len() >= majority);
            if !ready {
                break;
            }
            leading.stored_by.remove(&next);
            let Some(entry) = self.stored.remove(&next) else {
                break;
            };
            self.deliver(entry.clone());
            committed.push(entry);
        }
        if !committed.is_empty() {
            let term = self.election.term();
            self.broadcast(Message::Deliver {
                from: self.me(),
                term,
                entries: committed,
            });
        }
    }

    fn on_append(&mut self, from: u64, term: u64, entry: Entry) {
        if self.config.commit != Commit::Majority || term < self.promised {
            return;
        }
        self.promise(term);
        let seq = entry.seq;
        if seq <= self.delivered.len() as u64 {
            // Already delivered here: confirm only if it is the same message.
            if self.delivered[(seq - 1) as usize].id != entry.id {
                return;
            }
        } else {
            self.stored.insert(seq, entry.clone());
            self.out.push(Action::Persist(Record::Stored(entry)));
        }
        let stored = Message::Stored {
            from: self.me(),
            term,
            seq,
        };
        self.send(from, stored);
    }

    /// Majority commit, new leader: once a majority replied, adopt what they hold.
    fn try_finish_sync(&mut self) {
        let majority = self.majority();
        let Some(leading) = self.leading.as_mut() else {
            return;
        };
        let Some(replies) = leading.sync.as_ref() else {
            return;
        };
        if replies.len() < majority {
            return;
        }
        let Some(replies) = leading.sync.take() else {
            return;
        };
        let term = leading.term;
        // Per position: a delivered (committed) entry if anyone has one, else the stored
        // entry proposed in the highest term.
        let mut committed: BTreeMap<u64, Entry> = BTreeMap::new();
        let mut best: BTreeMap<u64, Entry> = BTreeMap::new();
        for (delivered, stored) in replies.into_values() {
            for entry in delivered {
                committed.entry(entry.seq).or_insert(entry);
            }
            for entry in stored {
                let keep = best.get(&entry.seq).is_none_or(|b| entry.term > b.term);
                if keep {
                    best.insert(entry.seq, entry);
                }
            }
        }
        let base = self.delivered.len();
        let mut seq = base as u64 + 1;
        let mut recovered = 0;
        loop {
            if let Some(entry) = committed.remove(&seq) {
                self.stored.remove(&seq);
                self.deliver(entry);
            } else if let Some(mut entry) = best.remove(&seq) {
                entry.term = term;
                recovered += 1;
                if let Some(leading) = self.leading.as_mut() {
                    leading.waiters.entry(entry.id.clone()).or_default();
                    leading.next_seq = seq + 1;
                }
                self.propose(entry);
            } else {
                break;
            }
            seq += 1;
        }
        // Stored entries past the first gap were never committed: drop them.
        self.stored.retain(|&s, _| s < seq);
        let queued = match self.leading.as_mut() {
            Some(leading) => {
                leading.next_seq = seq;
                std::mem::take(&mut leading.queued)
            }
            None => Vec::new(),
        };
        self.out.push(Action::Emit(NodeEvent::Synced {
            term,
            recovered,
            next_seq: seq,
        }));
        let committed: Vec<Entry> = self.delivered[base..].to_vec();
        if !committed.is_empty() {
            self.broadcast(Message::Deliver {
                from: self.me(),
                term,
                entries: committed,
            });
        }
        for (submission, waiter) in queued {
            if let Some(outcome) = self.already_decided(&submission) {
                self.reply(&submission.id, waiter, outcome);
            } else {
                self.sequence(submission, waiter);
            }
        }
    }

    /// A delivered entry from the leader: deliver in order, buffer ahead, drop behind.
    fn accept_delivery(&mut self, now: Duration, from: u64, entry: Entry) {
        let next = self.delivered.len() as u64 + 1;
        if entry.seq < next {
            return; // already delivered (a duplicate by position)
        }
        if entry.seq > next {
            self.pending.insert(entry.seq, entry);
            self.ask_catch_up(now, from);
            return;
        }
        self.deliver(entry);
        loop {
            let next = self.delivered.len() as u64 + 1;
            match self.pending.remove(&next) {
                Some(entry) => self.deliver(entry),
                None => break,
            }
        }
        let next = self.delivered.len() as u64 + 1;
        self.pending.retain(|&seq, _| seq >= next);
    }

    /// Appends an entry to the delivered sequence, durably, and tells whoever waits.
    ///
    /// The history line comes before the durable record (write-ahead): a real node can be
    /// killed between any two actions, and a record without its line would show a gap in
    /// the history where the node has none. A line without its record is harmless: the
    /// entry is committed, so after the restart the same entry is delivered at the same
    /// position again.
    fn deliver(&mut self, entry: Entry) {
        self.stored.remove(&entry.seq);
        self.out.push(Action::Emit(NodeEvent::Delivered {
            seq: entry.seq,
            term: entry.term,
            id: entry.id.clone(),
        }));
        self.out
            .push(Action::Persist(Record::Delivered(entry.clone())));
        self.out.push(Action::Publish(entry.clone()));
        self.delivered_ids.insert(entry.id.clone(), entry.seq);
        let waiters = self
            .leading
            .as_mut()
            .and_then(|l| l.waiters.remove(&entry.id))
            .unwrap_or_default();
        for waiter in waiters {
            self.reply(&entry.id, waiter, Ok(entry.seq));
        }
        self.answer_forwarded(&entry.id, ClientResponse::sent(entry.seq));
        self.delivered.push(entry);
    }

    fn answer_forwarded(&mut self, id: &str, response: ClientResponse) {
        if let Some((requests, _)) = self.forwarded.remove(id) {
            for request in requests {
                self.out.push(Action::Reply {
                    request,
                    response: response.clone(),
                });
            }
        }
    }

    /// Tells a waiter the outcome for submission `id`: `Ok(seq)`, or
    /// `Err((reason, definite))`.
    fn reply(&mut self, id: &str, waiter: Waiter, outcome: Result<u64, (String, bool)>) {
        match waiter {
            Waiter::Local(request) => {
                let response = match outcome {
                    Ok(seq) => ClientResponse::sent(seq),
                    Err((reason, definite)) => ClientResponse::failed(reason, definite),
                };
                self.out.push(Action::Reply { request, response });
            }
            Waiter::Remote(origin) if origin == self.me() => {}
            Waiter::Remote(origin) => {
                let id = id.to_string();
                let message = match outcome {
                    Ok(seq) => Message::Ack {
                        from: self.me(),
                        id,
                        seq,
                    },
                    Err((reason, definite)) => Message::Reject {
                        from: self.me(),
                        id,
                        reason,
                        definite,
                    },
                };
                self.send(origin, message);
            }
        }
    }
}

/// The refusal of an id already used for another message (at `seq`).
fn reused_id(id: &str, seq: u64) -> String {
    format!(
        "message id \"{id}\" already used for another message (#{seq}); send it under a fresh id"
    )
}
