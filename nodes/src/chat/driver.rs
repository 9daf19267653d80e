//! The async driver of a chat node: peer transport, client port, timers, durable log —
//! the same code on real sockets and in the simulator.

use super::message::{ClientRequest, ClientResponse, Delivery, Submission, Wire};
use super::state::{Action, Chat, ChatConfig};
use super::store::{self, Record};
use crate::lines::{read_line, Line};
use crate::runtime::transport::Transport;
use crate::runtime::turn::{poll_turn, Turn};
use crate::runtime::woken::OnWake;
use crate::runtime::{DurableLog, EventSink, NodeEnv, NodeEvent};
use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Where a chat node listens and where its peers are, plus the chat knobs.
#[derive(Clone, Debug)]
pub struct ChatNodeConfig {
    /// Chat and election knobs (id and peer ids included).
    pub chat: ChatConfig,
    /// Peer port.
    pub listen: SocketAddr,
    /// Client port.
    pub client_listen: SocketAddr,
    /// Peer id to peer address.
    pub peers: BTreeMap<u64, SocketAddr>,
}

/// Longest accepted client request line.
const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// Deliveries queued per live subscriber; one that falls this far behind is dropped from
/// the live stream and reads on through the backlog (it loses nothing).
const SUBSCRIBER_QUEUE: usize = 4096;
/// Backlog entries handed to a subscriber at once, and the bytes that end a chunk early:
/// any backlog is streamed in pieces this size, never as one buffer.
const BACKLOG_CHUNK: usize = 512;
const BACKLOG_CHUNK_BYTES: usize = 1 << 20;
// The rest of a backlog (at most one chunk) must fit a fresh live queue.
const _: () = assert!(BACKLOG_CHUNK < SUBSCRIBER_QUEUE);

/// One delivery line of a subscription stream, with its sequence number.
type Published = (u64, Arc<str>);

enum ClientEvent {
    Send(Submission, oneshot::Sender<ClientResponse>),
    Status(oneshot::Sender<ClientResponse>),
    /// A subscriber wants entries from `from` on.
    Subscribe {
        from: u64,
        live: mpsc::Sender<Published>,
        reply: oneshot::Sender<Backlog>,
    },
}

/// The answer to [`ClientEvent::Subscribe`].
enum Backlog {
    /// The next chunk of the backlog (delivery lines) and the position after it.
    Chunk { lines: String, next: u64 },
    /// The rest of the backlog was queued to `live`, and every new delivery will be.
    Live,
}

/// Runs one chat node until ctrl-c (or, in simulation, until it is killed).
pub async fn run(config: ChatNodeConfig, env: NodeEnv) -> io::Result<()> {
    let NodeEnv {
        clock,
        storage,
        events,
        cluster_key,
        wire,
        ..
    } = env;
    let (mut log, recovery) = DurableLog::open(storage)?;
    let recovered = store::recover(&recovery.records);
    events.emit(NodeEvent::Started {
        recovered_records: recovery.records.len(),
        damage: recovery.damage,
    });
    let me = config.chat.election.id;
    let (transport, mut inbox) = Transport::<Wire>::start(
        me,
        config.listen,
        &config.peers,
        &cluster_key,
        &events,
        &wire,
    )
    .await?;
    let listener = TcpListener::bind(config.client_listen).await?;
    let (client_tx, mut clients) = mpsc::channel(1024);
    tokio::spawn(accept_clients(listener, client_tx));
    // The time is read once per turn (a peer message's is when it was taken), and the
    // turn's sends use it.
    let mut at = Instant::now();
    let mut chat = Chat::new(config.chat, recovered, clock.at(at));
    let mut io = Io {
        transport,
        log: &mut log,
        events,
        replies: BTreeMap::new(),
        subscribers: Vec::new(),
    };
    let mut next_request = 0u64;
    let mut actions = chat.start(clock.at(at));
    // One timer for the whole loop, moved only when the deadline moves.
    let mut timer = clock.timer_in(inbox.wake_flag());
    // Polled only once its signal fires, not on every message (see `woken`).
    let mut shutdown = OnWake::in_set(tokio::signal::ctrl_c(), inbox.wake_flag());
    loop {
        io.execute(actions, at)?;
        timer.set(chat.next_deadline());
        // Timers before messages, so a flood of messages cannot starve the election; peers
        // before clients (see `turn`).
        let next = std::future::poll_fn(|cx| {
            if let Poll::Ready(turn) = poll_turn(&mut shutdown, &mut timer, &mut inbox, cx) {
                return Poll::Ready(Next::Node(turn));
            }
            match clients.poll_recv(cx) {
                Poll::Ready(Some(event)) => Poll::Ready(Next::Client(event)),
                Poll::Ready(None) | Poll::Pending => Poll::Pending,
            }
        })
        .await;
        actions = match next {
            Next::Node(Turn::Shutdown) => {
                io.events.emit(NodeEvent::Stopped {
                    reason: "ctrl-c".into(),
                });
                return Ok(());
            }
            Next::Node(Turn::Tick) => {
                at = Instant::now();
                chat.on_tick(clock.at(at))
            }
            Next::Node(Turn::Message(wire)) => {
                at = inbox.received_at();
                chat.on_peer(clock.at(at), wire)
            }
            Next::Client(event) => match event {
                ClientEvent::Send(submission, reply) => {
                    next_request += 1;
                    io.replies.insert(next_request, reply);
                    at = Instant::now();
                    chat.on_submit(clock.at(at), next_request, submission)
                }
                ClientEvent::Status(reply) => {
                    let (role, term, leader, delivered) = chat.status();
                    let _ = reply.send(ClientResponse::Status {
                        node: me,
                        role: format!("{role:?}").to_lowercase(),
                        term,
                        leader,
                        delivered,
                    });
                    Vec::new()
                }
                ClientEvent::Subscribe { from, live, reply } => {
                    let start = usize::try_from(from.max(1) - 1).unwrap_or(usize::MAX);
                    let rest = chat.delivered().get(start..).unwrap_or(&[]);
                    if rest.len() > BACKLOG_CHUNK {
                        let mut lines = String::new();
                        let mut next = from.max(1);
                        for entry in &rest[..BACKLOG_CHUNK] {
                            lines.push_str(&delivery_line(entry));
                            next = entry.seq + 1;
                            if lines.len() >= BACKLOG_CHUNK_BYTES {
                                break;
                            }
                        }
                        let _ = reply.send(Backlog::Chunk { lines, next });
                    } else {
                        // The rest and what follows, in one step: no entry falls between.
                        for entry in rest {
                            let _ = live.try_send((entry.seq, delivery_line(entry).into()));
                        }
                        io.subscribers.push(live);
                        let _ = reply.send(Backlog::Live);
                    }
                    Vec::new()
                }
            },
        };
    }
}

/// What a turn of the chat node's loop handles: the node's own sources, or a client.
enum Next {
    Node(Turn<Wire>),
    Client(ClientEvent),
}

fn delivery_line(entry: &super::message::Entry) -> String {
    let delivery = Delivery {
        seq: entry.seq,
        term: entry.term,
        id: entry.id.clone(),
        text: entry.text.clone(),
    };
    let mut line = serde_json::to_string(&delivery).unwrap_or_default();
    line.push('\n');
    line
}

/// The driver's side effects.
struct Io<'a> {
    transport: Transport<Wire>,
    log: &'a mut DurableLog,
    events: EventSink,
    replies: BTreeMap<u64, oneshot::Sender<ClientResponse>>,
    subscribers: Vec<mpsc::Sender<Published>>,
}

impl Io<'_> {
    /// Carries out `actions` of a turn that began at `at`.
    fn execute(&mut self, actions: Vec<Action>, at: Instant) -> io::Result<()> {
        for action in actions {
            match action {
                Action::Send { to, wire } => self.transport.send_at(to, &wire, at),
                Action::Persist(record) => persist(self.log, &record)?,
                Action::Emit(event) => self.events.emit(event),
                Action::Reply { request, response } => {
                    if let Some(reply) = self.replies.remove(&request) {
                        let _ = reply.send(response);
                    }
                }
                Action::Publish(entry) => {
                    if !self.subscribers.is_empty() {
                        let line: Arc<str> = delivery_line(&entry).into();
                        // A subscriber too slow to keep up is dropped from the live
                        // stream; it resumes from the backlog.
                        self.subscribers
                            .retain(|s| s.try_send((entry.seq, line.clone())).is_ok());
                    }
                }
            }
        }
        Ok(())
    }
}

fn persist(log: &mut DurableLog, record: &Record) -> io::Result<()> {
    let bytes = serde_json::to_vec(record).map_err(io::Error::other)?;
    log.append(&bytes)?;
    log.sync()
}

async fn accept_clients(listener: TcpListener, events: mpsc::Sender<ClientEvent>) {
    let serve = move |stream, _| {
        tokio::spawn(serve_client(stream, events.clone()));
    };
    let backoff = std::time::Duration::from_millis(50);
    crate::accept::accept_loops(listener, backoff, serve).await;
}

/// One client connection: JSON requests in, JSON responses (or a delivery stream) out.
/// A malformed request gets an error line; the connection keeps serving.
async fn serve_client<S: AsyncRead + AsyncWrite>(stream: S, events: mpsc::Sender<ClientEvent>) {
    let (reader, mut writer) = tokio::io::split(stream);
    let mut reader = BufReader::new(reader);
    let mut line = Vec::new();
    loop {
        match read_line(&mut reader, &mut line, MAX_REQUEST_BYTES).await {
            Ok(Line::Eof) | Err(_) => return,
            Ok(Line::TooLong) => {
                let error = format!("request too long (at most {MAX_REQUEST_BYTES} bytes a line)");
                let _ = write_line(&mut writer, &ClientResponse::failed(error, true)).await;
                return;
            }
            Ok(Line::Read(_)) => {}
        }
        if line.trim_ascii().is_empty() {
            continue;
        }
        let request: ClientRequest = match serde_json::from_slice(&line) {
            Ok(r) => r,
            Err(e) => {
                let error = ClientResponse::failed(format!("bad request: {e}"), true);
                if write_line(&mut writer, &error).await.is_err() {
                    return;
                }
                continue;
            }
        };
        match request {
            ClientRequest::Send { id, text } => {
                let (tx, rx) = oneshot::channel();
                if events
                    .send(ClientEvent::Send(Submission { id, text }, tx))
                    .await
                    .is_err()
                {
                    return;
                }
                let response = rx
                    .await
                    .unwrap_or_else(|_| ClientResponse::failed("node stopped", false));
                if write_line(&mut writer, &response).await.is_err() {
                    return;
                }
            }
            ClientRequest::Status => {
                let (tx, rx) = oneshot::channel();
                if events.send(ClientEvent::Status(tx)).await.is_err() {
                    return;
                }
                if let Ok(response) = rx.await {
                    if write_line(&mut writer, &response).await.is_err() {
                        return;
                    }
                }
            }
            ClientRequest::Subscribe { from } => {
                let _ = stream_deliveries(from, &mut writer, &events).await;
                return;
            }
        }
    }
}

/// Writes every delivered entry from `from` on, then follows new ones, until the client
/// goes or the node stops: the backlog in chunks, then the live queue; after being dropped
/// from the live stream as too slow, on through the backlog from where it was.
async fn stream_deliveries<W: tokio::io::AsyncWrite + Unpin>(
    from: u64,
    writer: &mut W,
    events: &mpsc::Sender<ClientEvent>,
) -> io::Result<()> {
    let mut next = from.max(1);
    let stopped = || io::Error::other("node stopped");
    loop {
        let (live, mut queue) = mpsc::channel(SUBSCRIBER_QUEUE);
        let (reply, backlog) = oneshot::channel();
        let request = ClientEvent::Subscribe {
            from: next,
            live,
            reply,
        };
        events.send(request).await.map_err(|_| stopped())?;
        match backlog.await.map_err(|_| stopped())? {
            Backlog::Chunk { lines, next: after } => {
                writer.write_all(lines.as_bytes()).await?;
                writer.flush().await?;
                next = after;
            }
            Backlog::Live => {
                while let Some(first) = queue.recv().await {
                    // Write what is queued (a bounded batch), then flush once.
                    let mut batch = Some(first);
                    let mut written = 0;
                    while let Some((seq, line)) = batch {
                        if seq >= next {
                            writer.write_all(line.as_bytes()).await?;
                            next = seq + 1;
                        }
                        written += 1;
                        batch = if written < BACKLOG_CHUNK {
                            queue.try_recv().ok()
                        } else {
                            None
                        };
                    }
                    writer.flush().await?;
                }
            }
        }
    }
}

async fn write_line<W: tokio::io::AsyncWrite + Unpin>(
    writer: &mut W,
    response: &ClientResponse,
) -> io::Result<()> {
    let mut line = serde_json::to_string(response).map_err(io::Error::other)?;
    line.push('\n');
    writer.write_all(line.as_bytes()).await?;
    writer.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lines::testing::{block_on, Flood};
    use std::sync::atomic::Ordering;

    /// A request line far over the cap with no newline: refused with an error line after
    /// at most the cap (plus one buffer) was read, and the connection is closed.
    #[test]
    fn a_client_line_without_end_is_refused_at_the_cap() {
        let flood = Flood::new(b"{\"op\":\"status\"}\n{\"op\":\"send\",\"id\":\"", 16 << 20);
        let (taken, written) = (flood.taken.clone(), flood.written.clone());
        let (events, mut requests) = mpsc::channel(4);
        block_on(async move {
            let serve = serve_client(flood, events);
            let answer = async {
                if let Some(ClientEvent::Status(reply)) = requests.recv().await {
                    let _ = reply.send(ClientResponse::failed("status", true));
                }
            };
            tokio::join!(serve, answer);
        });
        let taken = taken.load(Ordering::Relaxed);
        assert!(
            taken <= 64 + MAX_REQUEST_BYTES + 1 + 8192,
            "took {taken} bytes of one request line (cap {MAX_REQUEST_BYTES})"
        );
        let written = String::from_utf8_lossy(&written.lock().unwrap()).to_string();
        assert!(written.contains("request too long"), "{written}");
    }
}
