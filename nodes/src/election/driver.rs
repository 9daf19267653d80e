//! The thin async driver of a standalone election node: the same code on real sockets and
//! in the simulator.
//!
//! It recovers the persisted term from the durable log, then loops: wait for a message, a
//! timer on the node's own clock, or ctrl-c; feed it to the [`Election`] state machine; carry
//! out the commands it returns.

use super::config::ElectionConfig;
use super::message::Message;
use super::state::{Command, Election, Persisted};
use crate::runtime::transport::Transport;
use crate::runtime::turn::{poll_turn, Turn};
use crate::runtime::woken::OnWake;
use crate::runtime::{DurableLog, EventSink, NodeEnv, NodeEvent};
use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use tokio::time::Instant;

/// Where a node listens and where its peers are, plus the election knobs.
#[derive(Clone, Debug)]
pub struct ElectionNodeConfig {
    /// Election knobs, including this node's id and its peers' ids.
    pub election: ElectionConfig,
    /// Address this node accepts peer connections on.
    pub listen: SocketAddr,
    /// Peer id to address.
    pub peers: BTreeMap<u64, SocketAddr>,
}

/// Runs one election node until ctrl-c (or, in simulation, until it is killed).
pub async fn run(config: ElectionNodeConfig, env: NodeEnv) -> io::Result<()> {
    let NodeEnv {
        clock,
        storage,
        events,
        cluster_key,
        wire,
        ..
    } = env;
    let (mut log, persisted) = recover(storage, &events)?;
    let me = config.election.id;
    let (transport, mut inbox) = Transport::<Message>::start(
        me,
        config.listen,
        &config.peers,
        &cluster_key,
        &events,
        &wire,
    )
    .await?;
    let mut at = Instant::now();
    let mut election = Election::new(config.election, persisted, clock.at(at));
    let mut commands = election.start(clock.at(at));
    // One timer for the whole loop, moved only when the deadline moves.
    let mut timer = clock.timer_in(inbox.wake_flag());
    // Polled only once its signal fires, not on every message (see `woken`).
    let mut shutdown = OnWake::in_set(tokio::signal::ctrl_c(), inbox.wake_flag());
    loop {
        execute(&mut commands, &transport, &mut log, &events, at)?;
        election.recycle(commands);
        timer.set(election.next_deadline());
        // The time is read once per turn: a message's is when it was taken.
        let turn =
            std::future::poll_fn(|cx| poll_turn(&mut shutdown, &mut timer, &mut inbox, cx)).await;
        (at, commands) = match turn {
            Turn::Shutdown => {
                events.emit(NodeEvent::Stopped {
                    reason: "ctrl-c".into(),
                });
                return Ok(());
            }
            Turn::Tick => {
                let at = Instant::now();
                (at, election.on_tick(clock.at(at)))
            }
            Turn::Message(message) => {
                let at = inbox.received_at();
                (at, election.on_message(clock.at(at), message))
            }
        };
    }
}

/// Opens the durable log and returns the last persisted election state.
pub fn recover(
    storage: Box<dyn crate::runtime::Storage>,
    events: &EventSink,
) -> io::Result<(DurableLog, Persisted)> {
    let (log, recovery) = DurableLog::open(storage)?;
    let persisted = recovery
        .records
        .iter()
        .rev()
        .find_map(|record| serde_json::from_slice(record).ok())
        .unwrap_or_default();
    events.emit(NodeEvent::Started {
        recovered_records: recovery.records.len(),
        damage: recovery.damage,
    });
    Ok((log, persisted))
}

/// Carries out (and drains) state-machine commands in order: persist (synced) before later sends;
/// `at` is when the turn that gave them began (see [`Transport::send_at`]).
pub fn execute<M>(
    commands: &mut Vec<Command>,
    transport: &Transport<M>,
    log: &mut DurableLog,
    events: &EventSink,
    at: Instant,
) -> io::Result<()>
where
    M: crate::runtime::frame::Body
        + serde::Serialize
        + serde::de::DeserializeOwned
        + crate::runtime::wire::MessageKind
        + Send
        + 'static
        + From<Message>,
{
    for command in commands.drain(..) {
        match command {
            Command::Send { to, message } => transport.send_at(to, &M::from(message), at),
            Command::Persist(state) => persist(log, &state)?,
            Command::Emit(event) => events.emit(event),
        }
    }
    Ok(())
}

/// Appends `state` to the log and syncs it (out of line: a term changes rarely, a
/// message's commands are handled every turn).
#[cold]
fn persist(log: &mut DurableLog, state: &Persisted) -> io::Result<()> {
    let record = serde_json::to_vec(state).map_err(io::Error::other)?;
    log.append(&record)?;
    log.sync()
}
