//! The transport seam: fire-and-forget messages between peers over `tokio::net` TCP.
//!
//! A connection opens with a handshake of two JSON lines; every message after it is one
//! binary [`frame`] (a length, then the message in postcard). Each peer gets one outbound
//! connection. The sender writes a message on it directly, in its own task, when the
//! connection is open and the socket takes the bytes at once; a per-peer connector task
//! opens the connection, and finishes a write the socket would not take, while later
//! messages queue behind it (bounded). Inbound connections are read in the receiving task
//! itself, through its [`Inbox`]: no task hop per message on either side, which was most of
//! what a message cost over the network under it (issue 16).
//!
//! The handshake: the acceptor sends a fresh random challenge, the connecting side answers
//! with a hello line naming itself and an HMAC of the challenge under the cluster key
//! ([`crate::auth`]). A connection that does not prove the key is closed and reported as
//! [`NodeEvent::Refused`] before any of its messages is read. The hello also tells the
//! transport when it last heard from each peer: an outbound connection to a peer silent for
//! [`STALE_AFTER`] is replaced on the next send. TCP (real or simulated) holds data for a
//! cut link and retries with exponential backoff, so without this a healed partition would
//! stay deaf for seconds. Delivery is best effort, like the network: a message to an
//! unreachable peer, or one that overflows the queue, is dropped, and protocols recover
//! with their own timeouts and retries. The same code runs on real sockets and, compiled
//! with `--cfg madsim`, on the simulated network.

use crate::auth::ClusterKey;
use crate::deadline::within;
use crate::lines::{read_line, Line};
use crate::runtime::frame::{self, Body, FrameError};
use crate::runtime::wire::{MessageKind, Tapped, WireTap};
use crate::runtime::woken::{TaskWake, WakeFlag};
use crate::runtime::{EventSink, NodeEvent};
use rand::Rng;
use serde::{de::DeserializeOwned, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

/// When each peer this transport sends to was last heard from, as nanoseconds after
/// `base` plus one (0: never): written per message received, without a lock. The sender
/// and each inbound connection keep their peer's cell, so neither looks it up per message.
struct LastHeard {
    base: Instant,
    peers: BTreeMap<u64, Arc<AtomicU64>>,
}

impl LastHeard {
    fn new(peers: impl Iterator<Item = u64>) -> Self {
        LastHeard {
            base: Instant::now(),
            peers: peers.map(|id| (id, Arc::default())).collect(),
        }
    }

    /// `peer`'s cell (none for a peer never sent to: nothing to note).
    fn cell(&self, peer: u64) -> Option<Arc<AtomicU64>> {
        self.peers.get(&peer).cloned()
    }

    /// Notes a word from the peer of `cell` at `now`.
    fn heard(&self, cell: Option<&AtomicU64>, now: Instant) {
        if let Some(at) = cell {
            let since = now.saturating_duration_since(self.base);
            at.store(since.as_nanos() as u64 + 1, Ordering::Relaxed);
        }
    }

    /// Whether the peer of `cell` has not been heard from since `since`.
    fn silent_since(&self, cell: &AtomicU64, since: Instant) -> bool {
        let at = cell.load(Ordering::Relaxed);
        at == 0 || self.base + Duration::from_nanos(at - 1) < since
    }
}

/// Messages queued per peer (while its connection opens, or behind a blocked write)
/// before new ones are dropped.
const QUEUE_PER_PEER: usize = 4096;
/// Authenticated connections waiting to be read from before the acceptor waits.
const JOINING: usize = 64;
/// How long a connect may take before the message is dropped.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Pause before reconnecting to a peer that refused or reset.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(100);
/// Silence from a peer after which the connection to it is re-established on next send.
pub const STALE_AFTER: Duration = Duration::from_secs(2);
/// Longest accepted message frame (its body, after the length).
pub const MAX_FRAME_BYTES: usize = 16 << 20;
/// Longest accepted challenge or hello line.
const MAX_HANDSHAKE_BYTES: usize = 512;
/// How long an accepted connection may take to answer the challenge.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);
/// What a hello's MAC is for (see [`ClusterKey::sign`]).
const HELLO_PURPOSE: &str = "simnode peer hello";

/// Who may connect, and where refusals are reported.
#[derive(Clone)]
struct Auth {
    key: ClusterKey,
    events: EventSink,
}

/// One peer's outbound connection, shared by the sender and the peer's connector task.
struct Link {
    /// The open connection, while the connector task does not hold it.
    stream: Option<TcpStream>,
    /// The connector task is connecting, or finishing a write: new frames queue.
    busy: bool,
    /// Frames for the connector task, in order (an empty one: only a flush is owed).
    queue: VecDeque<Vec<u8>>,
    /// When the open connection, made [`STALE_AFTER`] before, is old enough to be judged
    /// stale (kept as the sum: a comparison per send, not a subtraction).
    stale_from: Instant,
    /// Until then the peer counts as unreachable and messages to it are dropped.
    retry_at: Option<Instant>,
    /// The sender's frame buffer, reused from message to message.
    scratch: Vec<u8>,
}

impl Link {
    /// Gives up on the connection: what is queued is dropped, as a lossy network would.
    #[cold]
    fn broken(&mut self) {
        self.stream = None;
        self.queue.clear();
        self.busy = false;
        self.retry_at = Some(Instant::now() + RECONNECT_BACKOFF);
    }
}

/// A peer's [`Link`], the bell of its connector task, and when it was last heard from.
struct Peer {
    link: Arc<Mutex<Link>>,
    heard: Arc<AtomicU64>,
    connector: Arc<Notify>,
}

fn lock(link: &Mutex<Link>) -> MutexGuard<'_, Link> {
    // A poisoned link only means a panic elsewhere; the connection state is still valid.
    link.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sends messages of type `M` to peers by id.
pub struct Transport<M> {
    peers: BTreeMap<u64, Peer>,
    last_heard: Arc<LastHeard>,
    /// Number of the next message sent (carried in its envelope, see [`WireTap`]).
    next_id: AtomicU64,
    wire: WireTap,
    _message: PhantomData<fn(M)>,
}

impl<M: Body + Serialize + DeserializeOwned + MessageKind + Send + 'static> Transport<M> {
    /// Listens on `listen` as node `me` and prepares connections to `peers`; returns the
    /// sender and the inbox of messages received from peers that prove `key`. Refused
    /// connections are reported to `events`.
    pub async fn start(
        me: u64,
        listen: SocketAddr,
        peers: &BTreeMap<u64, SocketAddr>,
        key: &ClusterKey,
        events: &EventSink,
        wire: &WireTap,
    ) -> io::Result<(Self, Inbox<M>)> {
        let listener = TcpListener::bind(listen).await?;
        let (joined_tx, joined) = mpsc::channel(JOINING);
        let last_heard = Arc::new(LastHeard::new(peers.keys().copied()));
        let auth = Auth {
            key: key.clone(),
            events: events.clone(),
        };
        let reading = Reading {
            last_heard: last_heard.clone(),
            auth: auth.clone(),
            wire: wire.clone(),
        };
        tokio::spawn(accept_loop(listener, joined_tx, auth));
        let peers = peers
            .iter()
            .map(|(&id, &addr)| {
                let link = Arc::new(Mutex::new(Link {
                    stream: None,
                    busy: false,
                    queue: VecDeque::new(),
                    stale_from: Instant::now() + STALE_AFTER,
                    retry_at: None,
                    scratch: Vec::with_capacity(64),
                }));
                let connector = Arc::new(Notify::new());
                let dial = Dial {
                    me,
                    addr,
                    key: key.clone(),
                };
                tokio::spawn(connect_loop(dial, link.clone(), connector.clone()));
                let heard = last_heard.cell(id).unwrap_or_default();
                (
                    id,
                    Peer {
                        link,
                        connector,
                        heard,
                    },
                )
            })
            .collect();
        let wake = TaskWake::new();
        let inbox = Inbox {
            joined,
            acceptor_gone: false,
            connections: Vec::new(),
            turn: 0,
            joining: wake.flag(),
            wake,
            reading,
            received_at: Instant::now(),
            _message: PhantomData,
        };
        Ok((
            Transport {
                peers,
                last_heard,
                next_id: AtomicU64::new(1),
                wire: wire.clone(),
                _message: PhantomData,
            },
            inbox,
        ))
    }

    /// Sends `message` to `peer`: written at once when its connection is open and takes
    /// the bytes, else queued for the peer's connector task; dropped if the peer is
    /// unknown, was just unreachable, or its queue is full.
    pub fn send(&self, peer: u64, message: &M) {
        self.send_at(peer, message, Instant::now());
    }

    /// [`Transport::send`] by a caller that has just read the time (`now`): a driver that
    /// sends what a message it received at `now` calls for reads the clock once, not once
    /// per send (issue 16).
    pub fn send_at(&self, peer: u64, message: &M, now: Instant) {
        let Some(Peer {
            link,
            connector,
            heard,
        }) = self.peers.get(&peer)
        else {
            return;
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut link = lock(link);
        let mut frame = std::mem::take(&mut link.scratch);
        if !frame::encode_into(id, message, &mut frame) {
            link.scratch = frame;
            return;
        }
        self.wire.tap(Tapped::Sent {
            to: peer,
            id,
            kind: message.kind(),
        });
        if link.busy {
            return queue_behind(&mut link, frame);
        }
        if link.stream.is_some() && self.stale(&link, heard, now) {
            link.stream = None;
        }
        let written = link.stream.as_mut().map(|stream| write_now(stream, &frame));
        if let Some(Ok(None)) = written {
            link.scratch = frame; // all of it went: the steady case
            return;
        }
        owe(link, frame, written, now, connector);
    }

    /// Whether the open connection to `peer` has been open a while without a word back:
    /// it may be stuck behind a healed partition in TCP's retry backoff.
    fn stale(&self, link: &Link, heard: &AtomicU64, now: Instant) -> bool {
        let old_connection = now > link.stale_from;
        old_connection
            && now
                .checked_sub(STALE_AFTER)
                .is_some_and(|since| self.last_heard.silent_since(heard, since))
    }

    /// The peers this transport knows, in id order.
    pub fn peers(&self) -> impl Iterator<Item = u64> + '_ {
        self.peers.keys().copied()
    }
}

/// [`Transport::send_at`] while the connector task holds the link: `frame` queues behind
/// what it is finishing (dropped past the cap, as a full socket buffer would).
#[cold]
fn queue_behind(link: &mut Link, frame: Vec<u8>) {
    if link.queue.len() < QUEUE_PER_PEER {
        link.queue.push_back(frame.clone());
    }
    link.scratch = frame;
}

/// [`Transport::send_at`] when `frame` did not all go at once (`written`: the attempt, if
/// a connection was open): what is owed goes to the connector task, a broken connection
/// is given up, and with none open the frame waits for a new one unless the peer is in
/// its retry backoff. Kept out of line: the steady path writes whole frames.
#[cold]
fn owe(
    mut link: MutexGuard<'_, Link>,
    frame: Vec<u8>,
    written: Option<io::Result<Option<Vec<u8>>>>,
    now: Instant,
    connector: &Notify,
) {
    let owed = match written {
        Some(Ok(rest)) => rest,
        Some(Err(_)) => {
            link.broken();
            None
        }
        None if link.retry_at.is_some_and(|t| now < t) => None, // dropped
        None => Some(frame.clone()),
    };
    link.scratch = frame;
    if let Some(owed) = owed {
        link.queue.push_back(owed);
        link.busy = true;
        drop(link);
        connector.notify_one();
    }
}

/// Writes `frame` and flushes without waiting. `Ok(None)`: all of it went; `Ok(Some(rest))`:
/// the socket would block, and `rest` (perhaps empty: only the flush) is owed.
fn write_now(stream: &mut TcpStream, frame: &[u8]) -> io::Result<Option<Vec<u8>>> {
    // Nobody is woken when the socket has room again: the connector task that takes the
    // owed bytes over waits for that itself.
    let mut cx = Context::from_waker(Waker::noop());
    let mut written = 0;
    while written < frame.len() {
        match Pin::new(&mut *stream).poll_write(&mut cx, &frame[written..]) {
            Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
            Poll::Ready(Ok(n)) => written += n,
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Pending => return Ok(Some(frame[written..].to_vec())),
        }
    }
    match Pin::new(stream).poll_flush(&mut cx) {
        Poll::Ready(flushed) => flushed.map(|()| None),
        Poll::Pending => Ok(Some(Vec::new())),
    }
}

/// Where and as whom a connector task connects.
struct Dial {
    me: u64,
    addr: SocketAddr,
    key: ClusterKey,
}

/// A peer's connector task: each time a send leaves it work, opens the connection if
/// there is none, writes what is queued, and hands the connection back to the sender.
async fn connect_loop(dial: Dial, link: Arc<Mutex<Link>>, bell: Arc<Notify>) {
    loop {
        bell.notified().await;
        drain(&dial, &link).await;
    }
}

async fn drain(dial: &Dial, link: &Mutex<Link>) {
    let open = lock(link).stream.take();
    let mut stream = match open {
        Some(stream) => stream,
        None => match connect(dial).await {
            Ok(stream) => {
                let mut link = lock(link);
                link.stale_from = Instant::now() + STALE_AFTER;
                link.retry_at = None;
                stream
            }
            Err(_) => return lock(link).broken(),
        },
    };
    loop {
        let next = {
            let mut link = lock(link);
            match link.queue.pop_front() {
                Some(frame) => frame,
                None => {
                    link.stream = Some(stream);
                    link.busy = false;
                    return;
                }
            }
        };
        let sent = async {
            stream.write_all(&next).await?;
            stream.flush().await
        };
        if sent.await.is_err() {
            return lock(link).broken();
        }
    }
}

/// Connects and says hello; each step bounded by [`CONNECT_TIMEOUT`].
async fn connect(dial: &Dial) -> io::Result<TcpStream> {
    let mut stream = within(CONNECT_TIMEOUT, TcpStream::connect(dial.addr))
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
    let _ = stream.set_nodelay(true);
    within(CONNECT_TIMEOUT, send_hello(&mut stream, dial.me, &dial.key))
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
    Ok(stream)
}

/// Messages from peers that proved the key, read from their connections by whoever
/// awaits [`Inbox::recv`] (no reader task per connection).
///
/// The connections are polled in turn, one message at a time, from the one after the last
/// that gave a message: a peer that floods cannot starve the others (nor the driver's other
/// branches, which it polls between messages). Only connections that woke since their last
/// read are read, and only when one of them (or the acceptor) woke the inbox, not on every
/// wake of the task ([`WakeFlag`]).
pub struct Inbox<M> {
    /// Connections that passed the handshake, from the acceptor task.
    joined: mpsc::Receiver<Joined>,
    acceptor_gone: bool,
    connections: Vec<Connection>,
    /// Which connection is read first next time.
    turn: usize,
    /// Set when something woke the inbox: a connection or the acceptor.
    wake: TaskWake,
    joining: WakeFlag,
    reading: Reading,
    /// When the last message was taken (see [`Inbox::received_at`]).
    received_at: Instant,
    _message: PhantomData<fn() -> M>,
}

/// What every inbound connection's reader shares.
struct Reading {
    last_heard: Arc<LastHeard>,
    auth: Auth,
    wire: WireTap,
}

/// An inbound connection after its handshake, as the acceptor hands it over.
struct Joined {
    peer: u64,
    from: SocketAddr,
    stream: TcpStream,
    /// Bytes read past the hello.
    early: Vec<u8>,
}

/// An inbound connection being read.
struct Connection {
    peer: u64,
    /// Its peer's cell in [`LastHeard`].
    heard: Option<Arc<AtomicU64>>,
    from: SocketAddr,
    frames: frame::Reader<TcpStream>,
    /// Set when its stream wakes: only such connections are read (a pending read of a
    /// simulated stream costs about what a message does).
    wake: WakeFlag,
    /// Ended, or cut off for a frame that is not a message: dropped after this poll.
    ended: bool,
}

impl<M: Body + DeserializeOwned + MessageKind + Send + 'static> Inbox<M> {
    /// The next message from any peer, in the order they are read; `None` once no
    /// connection can bring one (the listener is gone and every connection ended).
    pub async fn recv(&mut self) -> Option<M> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// When the message [`Inbox::recv`] last returned was taken from its connection: the
    /// time a driver handles it at, read once for the peer's liveness, the state machine and
    /// the sends it calls for.
    pub fn received_at(&self) -> Instant {
        self.received_at
    }

    /// A new flag in the inbox's wake set, for another source of the same driver's turn
    /// (its timer, ctrl-c): [`Inbox::poll_recv`] looks at the set once for all of them.
    pub fn wake_flag(&self) -> WakeFlag {
        self.wake.flag()
    }

    /// [`Inbox::recv`] as a poll, for a driver that polls its sources by hand.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<M>> {
        if !self.woken(cx) {
            return Poll::Pending;
        }
        self.poll_woken()
    }

    /// Registers `cx`'s task with the inbox's wake set; whether anything in the set (a
    /// connection, the acceptor, or a source under [`Inbox::wake_flag`]) woke since the last
    /// look. A driver's turn looks once, then polls each source whose flag is set.
    pub fn woken(&mut self, cx: &Context<'_>) -> bool {
        self.wake.woken(cx)
    }

    /// [`Inbox::poll_recv`] after [`Inbox::woken`] said the set woke.
    pub fn poll_woken(&mut self) -> Poll<Option<M>> {
        let Inbox {
            joined,
            acceptor_gone,
            connections,
            turn,
            wake,
            joining,
            reading,
            received_at,
            ..
        } = self;
        while !*acceptor_gone {
            match joining.poll_with(|cx| joined.poll_recv(cx)) {
                Poll::Ready(Some(joined)) => join(connections, reading, wake, joined),
                Poll::Ready(None) => *acceptor_gone = true,
                Poll::Pending => break,
            }
        }
        let mut ended = false;
        let message = next_message::<M>(connections, turn, reading, received_at, &mut ended);
        if ended {
            drop_ended(connections, turn);
        }
        match message {
            Some(message) => Poll::Ready(Some(message)),
            None if *acceptor_gone && connections.is_empty() => Poll::Ready(None),
            None => Poll::Pending,
        }
    }
}

/// Reads the connection of a peer that passed the handshake from now on (out of line:
/// a few per run, against a message every turn).
#[cold]
fn join(connections: &mut Vec<Connection>, reading: &Reading, wake: &TaskWake, joined: Joined) {
    let Joined {
        peer,
        from,
        stream,
        early,
    } = joined;
    let heard = reading.last_heard.cell(peer);
    reading.last_heard.heard(heard.as_deref(), Instant::now());
    connections.push(Connection {
        peer,
        heard,
        from,
        frames: frame::Reader::new(stream, early, MAX_FRAME_BYTES),
        wake: wake.flag(),
        ended: false,
    });
}

/// Drops the connections marked ended at once, so the peer's writes fail as they would
/// have.
#[cold]
fn drop_ended(connections: &mut Vec<Connection>, turn: &mut usize) {
    connections.retain(|c| !c.ended);
    if *turn >= connections.len() {
        *turn = 0;
    }
}

/// The next message of the first connection that has one, starting at `turn` (moved past
/// it), and when it was taken; connections that end or send something else are marked
/// ended (and `ended` set).
fn next_message<M: Body + DeserializeOwned + MessageKind>(
    connections: &mut [Connection],
    turn: &mut usize,
    reading: &Reading,
    received_at: &mut Instant,
    ended: &mut bool,
) -> Option<M> {
    let count = connections.len();
    // Round from `turn`, without a division per connection (nor a chained iterator: this
    // loop runs at every wake-up, issue 16).
    let mut i = (*turn).min(count);
    for _ in 0..count {
        if i == count {
            i = 0;
        }
        let connection = &mut connections[i];
        let Connection { frames, wake, .. } = &mut *connection;
        let next = wake.poll_with(|cx| frames.poll_frame::<M>(cx));
        match next {
            Poll::Ready(Some(Ok((n, message)))) => {
                *received_at = Instant::now();
                reading
                    .last_heard
                    .heard(connection.heard.as_deref(), *received_at);
                reading.wire.tap(Tapped::Received {
                    from: connection.peer,
                    id: n,
                    kind: message.kind(),
                });
                *turn = if i + 1 == count { 0 } else { i + 1 };
                return Some(message);
            }
            Poll::Ready(Some(Err(refusal))) => {
                refused_message(&reading.auth, connection.from, &refusal);
                connection.ended = true;
                *ended = true;
            }
            Poll::Ready(None) => {
                connection.ended = true;
                *ended = true;
            }
            Poll::Pending => {}
        }
        i += 1;
    }
    None
}

async fn accept_loop(listener: TcpListener, joined: mpsc::Sender<Joined>, auth: Auth) {
    loop {
        match listener.accept().await {
            Ok((stream, from)) => {
                let (joined, auth) = (joined.clone(), auth.clone());
                tokio::spawn(async move {
                    // Sized for the handshake: the frames after it have a reader of their own.
                    let mut frames = BufReader::with_capacity(MAX_HANDSHAKE_BYTES, stream);
                    let handshake = accept_hello(&mut frames, &auth.key);
                    match within(HANDSHAKE_TIMEOUT, handshake).await {
                        Ok(Ok(peer)) => {
                            let early = frames.buffer().to_vec();
                            let stream = frames.into_inner();
                            let joined_now = Joined {
                                peer,
                                from,
                                stream,
                                early,
                            };
                            let _ = joined.send(joined_now).await;
                        }
                        Ok(Err(reason)) => refused(&auth, from, reason),
                        Err(_) => refused(&auth, from, "no hello in time"),
                    }
                });
            }
            Err(_) => tokio::time::sleep(RECONNECT_BACKOFF).await,
        }
    }
}

#[cold]
fn refused(auth: &Auth, from: SocketAddr, reason: &str) {
    auth.events.emit(NodeEvent::Refused {
        peer: from.to_string(),
        what: "peer connection".into(),
        reason: reason.into(),
    });
}

/// A peer that proved the key sent something that is not a message: it is cut off.
#[cold]
fn refused_message(auth: &Auth, from: SocketAddr, why: &FrameError) {
    auth.events.emit(NodeEvent::Refused {
        peer: from.to_string(),
        what: "peer message".into(),
        reason: why.to_string(),
    });
}

/// First line from the acceptor: a fresh random challenge.
#[derive(serde::Serialize, serde::Deserialize)]
struct Challenge {
    challenge: String,
}

/// First line from the connecting side: who is writing, and its proof of the key.
#[derive(serde::Serialize, serde::Deserialize)]
struct Hello {
    hello: u64,
    mac: String,
}

fn hello_mac(key: &ClusterKey, challenge: &str, me: u64) -> String {
    key.sign(
        HELLO_PURPOSE,
        &[challenge.as_bytes(), me.to_string().as_bytes()],
    )
}

/// The acceptor's half of the handshake on `stream` (buffered for reading, written through
/// underneath): sends a challenge, returns the id of a peer whose hello proves the key, or
/// why it is refused.
async fn accept_hello<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut BufReader<S>,
    key: &ClusterKey,
) -> Result<u64, &'static str> {
    let challenge = crate::auth::hex(&madsim::rand::thread_rng().gen::<[u8; 16]>());
    let mut line = serde_json::to_vec(&Challenge {
        challenge: challenge.clone(),
    })
    .map_err(|_| "cannot encode a challenge")?;
    line.push(b'\n');
    let sent = async {
        let write = stream.get_mut();
        write.write_all(&line).await?;
        write.flush().await
    };
    sent.await.map_err(|_| "connection lost")?;
    let mut line = Vec::new();
    match read_line(stream, &mut line, MAX_HANDSHAKE_BYTES).await {
        Ok(Line::Read(_)) => {}
        Ok(Line::TooLong) => return Err("hello line too long"),
        Ok(Line::Eof) | Err(_) => return Err("closed before its hello"),
    }
    let hello: Hello = serde_json::from_slice(&line).map_err(|_| "not a hello")?;
    if key.verify(
        HELLO_PURPOSE,
        &[challenge.as_bytes(), hello.hello.to_string().as_bytes()],
        &hello.mac,
    ) {
        Ok(hello.hello)
    } else {
        Err("bad cluster MAC")
    }
}

/// The connecting half: reads the challenge, answers it as node `me`.
async fn send_hello(stream: &mut TcpStream, me: u64, key: &ClusterKey) -> io::Result<()> {
    let mut line = Vec::new();
    let challenge = {
        let mut lines = BufReader::with_capacity(MAX_HANDSHAKE_BYTES, &mut *stream);
        match read_line(&mut lines, &mut line, MAX_HANDSHAKE_BYTES).await? {
            Line::Read(_) => serde_json::from_slice::<Challenge>(&line)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?,
            _ => return Err(io::ErrorKind::UnexpectedEof.into()),
        }
    };
    let hello = Hello {
        hello: me,
        mac: hello_mac(key, &challenge.challenge, me),
    };
    let mut line = serde_json::to_vec(&hello)?;
    line.push(b'\n');
    stream.write_all(&line).await?;
    stream.flush().await
}

#[cfg(all(test, madsim))]
mod tests {
    use super::*;
    use crate::lines::testing::Flood;

    impl MessageKind for u64 {
        fn kind(&self) -> &'static str {
            "NUMBER"
        }
    }

    impl Body for u64 {}

    fn none() -> BTreeMap<u64, SocketAddr> {
        BTreeMap::new()
    }

    /// A transport of numbers as node `me`, its refusals and wire taps dropped.
    async fn numbers(
        me: u64,
        listen: SocketAddr,
        peers: &BTreeMap<u64, SocketAddr>,
        key: &ClusterKey,
    ) -> (Transport<u64>, Inbox<u64>) {
        let events = EventSink::new(|_| {});
        Transport::<u64>::start(me, listen, peers, key, &events, &WireTap::off())
            .await
            .expect("listen")
    }

    /// Reads `stream` as a peer connection after the handshake: what ended it, the
    /// messages it delivered and the bytes it took.
    fn read_all(prefix: &[u8], flood: usize) -> (Result<(), FrameError>, Vec<u64>, usize) {
        let flood = Flood::new(prefix, flood);
        let taken = flood.taken.clone();
        let runtime = madsim::runtime::Runtime::new();
        let (ended, delivered) = runtime.block_on(async move {
            let mut frames = frame::Reader::new(flood, Vec::new(), MAX_FRAME_BYTES);
            let mut delivered = Vec::new();
            let ended = loop {
                let next = std::future::poll_fn(|cx| frames.poll_frame::<u64>(cx)).await;
                match next {
                    Some(Ok((_, m))) => delivered.push(m),
                    None => break Ok(()),
                    Some(Err(refusal)) => break Err(refusal),
                }
            };
            (ended, delivered)
        });
        (ended, delivered, taken.load(Ordering::Relaxed))
    }

    /// After the handshake, bytes that announce a frame over the cap: the reader refuses
    /// it having taken one buffer, not the frame.
    #[test]
    fn a_peer_frame_over_the_cap_is_refused_before_it_is_read() {
        let (ended, delivered, taken) = read_all(b"", MAX_FRAME_BYTES * 4);
        assert!(
            matches!(ended, Err(FrameError::TooLong { .. })),
            "{ended:?}"
        );
        assert!(delivered.is_empty());
        assert!(taken <= 8192, "the reader took {taken} bytes");
    }

    /// Two good frames, then one that is not a message: both are delivered, then the
    /// connection is refused with the reason; a frame cut short by the end of the stream
    /// just ends it.
    #[test]
    fn a_garbled_peer_frame_ends_the_connection_with_a_reason() {
        let mut stream = frame::encode(1, &41u64).expect("encodes");
        stream.extend(frame::encode(2, &42u64).expect("encodes"));
        stream.extend_from_slice(&[0, 0, 0, 3, 0xff, 0xff, 0xff]);
        let (ended, delivered, _) = read_all(&stream, 0);
        assert_eq!(delivered, vec![41, 42]);
        let refusal = ended.expect_err("refused");
        assert!(
            refusal.to_string().starts_with("not a peer message"),
            "{refusal}"
        );
        let whole = frame::encode(1, &41u64).expect("encodes");
        let (ended, delivered, _) = read_all(&whole[..whole.len() - 1], 0);
        assert_eq!((ended, delivered), (Ok(()), vec![]));
    }

    /// Peer 2 floods a thousand messages, peer 3 sends one at the same moment, and the
    /// receiver reads only after all of them are waiting: connections are read in turn, so
    /// peer 3's message comes within the first few, not after the flood; nothing is lost.
    #[test]
    fn a_flooding_peer_does_not_starve_a_quiet_one() {
        use madsim::runtime::Handle;
        let runtime = madsim::runtime::Runtime::new();
        runtime.block_on(async move {
            let handle = Handle::current();
            let addr = |last: u8| SocketAddr::from(([10, 0, 0, last], 7000));
            let key = ClusterKey::derived("k");
            let (got_tx, mut got) = mpsc::channel::<Vec<u64>>(1);
            let receiver = handle.create_node().ip(addr(1).ip()).build();
            {
                let key = key.clone();
                receiver.spawn(async move {
                    let (_t, mut inbox) = numbers(1, addr(1), &none(), &key).await;
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    let mut heard = Vec::new();
                    // The flood, the quiet one, and each peer's first (connecting) send.
                    let mut connecting = 0;
                    while heard.len() + connecting < 1003 {
                        let m = inbox.recv().await.expect("a message");
                        if m == u64::MAX {
                            connecting += 1;
                        } else {
                            heard.push(m);
                        }
                    }
                    let _ = got_tx.send(heard).await;
                });
            }
            for (last, messages) in [(2u8, 0..1000u64), (3, 5000..5001)] {
                let key = key.clone();
                let node = handle.create_node().ip(addr(last).ip()).build();
                node.spawn(async move {
                    let peers = BTreeMap::from([(1, addr(1))]);
                    let (t, _inbox) = numbers(last.into(), addr(last), &peers, &key).await;
                    // The first send opens the connection; the rest are written on it.
                    t.send(1, &u64::MAX);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    for m in messages {
                        t.send(1, &m);
                    }
                    tokio::time::sleep(Duration::from_secs(10)).await;
                });
            }
            let heard = got.recv().await.expect("the receiver's list");
            let flood: Vec<u64> = heard.iter().copied().filter(|m| *m < 1000).collect();
            assert!(
                flood == (0..1000).collect::<Vec<_>>(),
                "the flood, in order"
            );
            let quiet = heard.iter().position(|m| *m == 5000).expect("peer 3 heard");
            assert!(
                quiet < 4,
                "peer 3's message came {quiet}th: {:?}",
                &heard[..8]
            );
        });
    }

    /// Messages sent while the connection opens queue behind it, those sent once it is
    /// open are written by the sender itself: the peer gets every one, in order, and a
    /// peer that comes back after a crash is heard again on a new connection.
    #[test]
    fn messages_arrive_in_order_across_connect_and_reconnect() {
        use madsim::runtime::Handle;
        let runtime = madsim::runtime::Runtime::new();
        runtime.block_on(async move {
            let handle = Handle::current();
            let addr = |last: u8| SocketAddr::from(([10, 0, 0, last], 7000));
            let key = ClusterKey::derived("k");
            let (got_tx, mut got) = mpsc::channel::<u64>(1024);
            let receiver = {
                let key = key.clone();
                handle
                    .create_node()
                    .ip(addr(1).ip())
                    .init(move || {
                        let (key, got_tx) = (key.clone(), got_tx.clone());
                        async move {
                            let (_t, mut inbox) = numbers(1, addr(1), &none(), &key).await;
                            while let Some(m) = inbox.recv().await {
                                let _ = got_tx.send(m).await;
                            }
                        }
                    })
                    .build()
            };
            let sender = handle.create_node().ip(addr(2).ip()).build();
            sender.spawn(async move {
                let peers = BTreeMap::from([(1, addr(1))]);
                let (t, _inbox) = numbers(2, addr(2), &peers, &key).await;
                tokio::time::sleep(Duration::from_millis(10)).await;
                // Queued while connecting, then written directly.
                for m in 0..100 {
                    t.send(1, &m);
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                for m in 100..200 {
                    t.send(1, &m);
                }
                // After the receiver's crash and restart: the old connection is dead; a
                // send finds it broken, the next ones after the backoff reconnect.
                tokio::time::sleep(Duration::from_secs(3)).await;
                for m in 200..300 {
                    t.send(1, &m);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                tokio::time::sleep(Duration::from_secs(10)).await;
            });
            async fn collect(got: &mut mpsc::Receiver<u64>, window: Duration) -> Vec<u64> {
                let until = tokio::time::sleep(window);
                tokio::pin!(until);
                let mut heard = Vec::new();
                loop {
                    tokio::select! {
                        biased;
                        _ = &mut until => return heard,
                        Some(m) = got.recv() => heard.push(m),
                    }
                }
            }
            let heard = collect(&mut got, Duration::from_secs(2)).await;
            assert_eq!(heard, (0..200).collect::<Vec<_>>());
            handle.kill(receiver.id());
            handle.restart(receiver.id());
            let after = collect(&mut got, Duration::from_secs(6)).await;
            assert!(
                after.len() > 50 && after.windows(2).all(|w| w[0] < w[1]),
                "after the restart: {after:?}"
            );
            assert_eq!(after.last(), Some(&299));
        });
    }

    /// Two nodes with one key talk; a third with another key, and a raw connection that
    /// sends the old unauthenticated hello and a message, are refused and reported, and
    /// nothing of theirs reaches the inbox.
    #[test]
    fn only_peers_that_prove_the_key_are_heard() {
        use madsim::runtime::Handle;
        let runtime = madsim::runtime::Runtime::new();
        runtime.block_on(async move {
            let handle = Handle::current();
            fn ip(last: u8) -> std::net::IpAddr {
                std::net::IpAddr::from([10, 0, 0, last])
            }
            fn addr(last: u8) -> SocketAddr {
                SocketAddr::new(ip(last), 7000)
            }
            let key = ClusterKey::derived("right");
            let refusals = Arc::new(Mutex::new(Vec::new()));
            let tapped = Arc::new(Mutex::new(Vec::new()));
            let (inbox_tx, mut inbox_rx) = mpsc::channel::<u64>(16);
            let server = handle.create_node().ip(ip(1)).build();
            {
                let (key, refusals) = (key.clone(), refusals.clone());
                let tapped = tapped.clone();
                server.spawn(async move {
                    let events = EventSink::new(move |e| refusals.lock().unwrap().push(e));
                    let tap = WireTap::new(move |t| tapped.lock().unwrap().push(t));
                    let (_t, mut inbox) =
                        Transport::<u64>::start(1, addr(1), &none(), &key, &events, &tap)
                            .await
                            .expect("listen");
                    while let Some(m) = inbox.recv().await {
                        let _ = inbox_tx.send(m).await;
                    }
                });
            }
            let sender = |last: u8, key: ClusterKey, message: u64| {
                let node = handle.create_node().ip(ip(last)).build();
                node.spawn(async move {
                    let peers = BTreeMap::from([(1, addr(1))]);
                    let events = EventSink::new(|_| {});
                    let tap = WireTap::off();
                    let (t, _inbox) = Transport::<u64>::start(
                        last.into(),
                        addr(last),
                        &peers,
                        &key,
                        &events,
                        &tap,
                    )
                    .await
                    .expect("listen");
                    t.send(1, &message);
                    tokio::time::sleep(Duration::from_secs(10)).await;
                })
            };
            let _good = sender(2, key.clone(), 42);
            let _bad = sender(3, ClusterKey::derived("wrong"), 666);
            let raw = handle.create_node().ip(ip(4)).build();
            let _raw = raw.spawn(async move {
                let mut s = TcpStream::connect(addr(1)).await.expect("connect");
                s.write_all(b"{\"hello\":2}\n777\n").await.expect("write");
                s.flush().await.expect("flush");
                tokio::time::sleep(Duration::from_secs(10)).await;
            });
            let first = tokio::time::timeout(Duration::from_secs(5), inbox_rx.recv()).await;
            assert_eq!(first.ok().flatten(), Some(42));
            tokio::time::sleep(Duration::from_secs(5)).await;
            assert!(inbox_rx.try_recv().is_err(), "a refused peer was heard");
            let refusals = refusals.lock().unwrap().clone();
            let reasons: Vec<_> = refusals
                .iter()
                .map(|e| match e {
                    NodeEvent::Refused { peer, reason, .. } => format!("{peer}: {reason}"),
                    other => format!("{other:?}"),
                })
                .collect();
            assert_eq!(reasons.len(), 2, "{reasons:?}");
            // The one message heard is tapped with its sender's number for it.
            let heard = tapped.lock().unwrap().clone();
            let expected = Tapped::Received {
                from: 2,
                id: 1,
                kind: "NUMBER",
            };
            assert_eq!(heard, vec![expected]);
            assert!(reasons
                .iter()
                .any(|r| r.starts_with("10.0.0.3:") && r.ends_with("bad cluster MAC")));
            assert!(reasons
                .iter()
                .any(|r| r.starts_with("10.0.0.4:") && r.ends_with("not a hello")));
        });
    }
}
