//! The transport seam: fire-and-forget messages between peers over `tokio::net` TCP.
//!
//! A connection opens with the [`handshake`] (three JSON lines: each end proves the cluster
//! key); every message after it is one binary [`frame`] (a length, then the message in
//! postcard). One connection per pair of peers carries both directions: each node dials
//! the peers with higher ids when it starts, and writes to a peer on whichever connection
//! to it it has, dialled or accepted (both ends dial only when both need one at once).
//! That halves the connections a cluster opens, each a connect and a handshake (issue 16).
//!
//! The sender writes a message on the connection directly, in its own task, when the
//! connection is open and the socket takes the bytes at once; a per-peer connector task
//! opens the connection, and finishes a write the socket would not take, while later
//! messages queue behind it (bounded). Connections are read in the receiving task itself,
//! through its [`Inbox`]: no task hop per message on either side, which was most of what a
//! message cost over the network under it (issue 16).
//!
//! A connection whose peer does not prove the key is closed and reported as
//! [`NodeEvent::Refused`] before any of its messages is read. When either end gives a
//! connection up (its write failed or looks stuck, its read ended or was refused), both
//! halves go. A connection on which a send had no word back from the peer for
//! [`STALE_AFTER`] is replaced on the next send: TCP (real or simulated) holds data for a
//! cut link and retries with exponential backoff, so without this a healed partition would
//! stay deaf for seconds. Delivery is best effort, like the network: a message to an
//! unreachable peer, or one that overflows the queue, is dropped, and protocols recover
//! with their own timeouts and retries. The same code runs on real sockets and, compiled
//! with `--cfg madsim`, on the simulated network.

use crate::auth::ClusterKey;
use crate::deadline::within;
use crate::runtime::frame::{self, Body, FrameError};
use crate::runtime::handshake::{self, Failed, MAX_HANDSHAKE_BYTES};
use crate::runtime::wire::{MessageKind, Tapped, WireTap};
use crate::runtime::woken::{TaskWake, WakeFlag};
use crate::runtime::{EventSink, NodeEvent};
use serde::{de::DeserializeOwned, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt, BufReader, ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

/// When each peer this transport sends to was last heard from, as a stamp (nanoseconds
/// after `base`, plus one; 0: never): written per message received, without a lock. The
/// sender and each connection's reader keep their peer's cell, so neither looks it up per
/// message.
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

    /// `at` as a stamp.
    fn stamp(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.base).as_nanos() as u64 + 1
    }

    /// Notes a word from the peer of `cell` at `now`.
    fn heard(&self, cell: Option<&AtomicU64>, now: Instant) {
        if let Some(at) = cell {
            at.store(self.stamp(now), Ordering::Relaxed);
        }
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
/// Tries at start to dial a higher peer ahead of any message (it may not listen yet).
const DIAL_AHEAD_TRIES: usize = 3;
/// How long a send may go without a word back from the peer before its connection is
/// re-established on the next send.
pub const STALE_AFTER: Duration = Duration::from_secs(2);
/// Longest accepted message frame (its body, after the length).
pub const MAX_FRAME_BYTES: usize = 16 << 20;
/// How long either end may take over its handshake lines.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);

/// Who may connect, and where refusals are reported.
#[derive(Clone)]
struct Auth {
    key: ClusterKey,
    events: EventSink,
}

/// What the two halves of one connection share: whether an end gave it up, and its
/// reader's waker, so that giving up the write half ends the read too (and the socket).
#[derive(Default)]
struct Shared {
    closed: AtomicBool,
    reader: OnceLock<Waker>,
}

impl Shared {
    /// Gives the connection up: the reader drops its half when next polled (woken now),
    /// the link its half on its next send.
    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        if let Some(reader) = self.reader.get() {
            reader.wake_by_ref();
        }
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }
}

/// A connection's write half, as a peer's [`Link`] holds it.
struct Outbound {
    half: WriteHalf<TcpStream>,
    shared: Arc<Shared>,
}

/// One peer's connection for sending, shared by the sender, the peer's connector task and
/// the acceptor (which offers it the connections the peer dials).
struct Link {
    /// The open connection, while the connector task does not hold it.
    stream: Option<Outbound>,
    /// The connector task is connecting, or finishing a write: new frames queue.
    busy: bool,
    /// Frames for the connector task, in order (an empty one: only a flush is owed).
    queue: VecDeque<Vec<u8>>,
    /// The stamp (see [`LastHeard`]) of the first send on this connection that no word
    /// from the peer has followed yet (0: none).
    unanswered: u64,
    /// Until then the peer counts as unreachable and messages to it are dropped.
    retry_at: Option<Instant>,
    /// The sender's frame buffer, reused from message to message.
    scratch: Vec<u8>,
}

impl Link {
    /// Sends on `stream` from now on.
    fn open(&mut self, stream: Outbound) {
        if let Some(old) = self.stream.replace(stream) {
            old.shared.close();
        }
        self.fresh();
    }

    /// A new connection: nothing sent on it is unanswered, and the peer is reachable.
    fn fresh(&mut self) {
        self.unanswered = 0;
        self.retry_at = None;
    }

    /// Gives the connection up (it will be dialled again on the next send).
    fn give_up(&mut self) {
        if let Some(old) = self.stream.take() {
            old.shared.close();
        }
    }

    /// Gives up on the connection: what is queued is dropped, as a lossy network would.
    #[cold]
    fn broken(&mut self) {
        self.give_up();
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
    /// [`STALE_AFTER`] in stamps.
    stale_after: u64,
    /// Number of the next message sent (carried in its envelope, see [`WireTap`]).
    next_id: AtomicU64,
    wire: WireTap,
    _message: PhantomData<fn(M)>,
}

impl<M: Body + Serialize + DeserializeOwned + MessageKind + Send + 'static> Transport<M> {
    /// Listens on `listen` as node `me` and prepares connections to `peers` (dialling
    /// those with higher ids at once); returns the sender and the inbox of messages
    /// received from peers that prove `key`. Refused connections are reported to `events`.
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
        let peers: BTreeMap<u64, Peer> = peers
            .iter()
            .map(|(&id, &addr)| {
                let link = Arc::new(Mutex::new(Link {
                    stream: None,
                    busy: false,
                    queue: VecDeque::new(),
                    unanswered: 0,
                    retry_at: None,
                    scratch: Vec::with_capacity(64),
                }));
                let connector = Arc::new(Notify::new());
                let dial = Dial {
                    me,
                    peer: id,
                    addr,
                    auth: auth.clone(),
                    joined: joined_tx.clone(),
                };
                let ahead = id > me;
                tokio::spawn(connect_loop(dial, link.clone(), connector.clone(), ahead));
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
        let links = peers
            .iter()
            .map(|(&id, peer)| (id, peer.link.clone()))
            .collect();
        let accepting = Accepting {
            me,
            auth,
            joined: joined_tx,
            links: Arc::new(links),
        };
        tokio::spawn(accept_loop(listener, accepting));
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
                stale_after: STALE_AFTER.as_nanos() as u64,
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
        if let Some(open) = &link.stream {
            if open.shared.is_closed() {
                link.broken(); // the peer ended it (or was refused): as a failed write
            } else if self.stale(&mut link, heard, now) {
                link.give_up();
            }
        }
        let written = link
            .stream
            .as_mut()
            .map(|open| write_now(&mut open.half, &frame));
        if let Some(Ok(None)) = written {
            link.scratch = frame; // all of it went: the steady case
            return;
        }
        owe(link, frame, written, now, connector);
    }

    /// Whether the open connection to `peer` looks stuck: a send on it [`STALE_AFTER`]
    /// ago has had no word back since (it may be behind a healed partition in TCP's retry
    /// backoff). Notes this send as unanswered if none is.
    fn stale(&self, link: &mut Link, heard: &AtomicU64, now: Instant) -> bool {
        let now = self.last_heard.stamp(now);
        let first = link.unanswered;
        if first == 0 || heard.load(Ordering::Relaxed) >= first {
            link.unanswered = now;
            return false;
        }
        now - first > self.stale_after
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
fn write_now<W: AsyncWrite + Unpin>(stream: &mut W, frame: &[u8]) -> io::Result<Option<Vec<u8>>> {
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

/// Where and as whom a connector task connects, and where the connections it opens are
/// read (once the peer's proof checks out).
struct Dial {
    me: u64,
    peer: u64,
    addr: SocketAddr,
    auth: Auth,
    joined: mpsc::Sender<Joined>,
}

/// A peer's connector task: dials ahead if `ahead`, then each time a send leaves it work,
/// opens the connection if there is none, writes what is queued, and hands the connection
/// back to the sender.
async fn connect_loop(dial: Dial, link: Arc<Mutex<Link>>, bell: Arc<Notify>, ahead: bool) {
    if ahead {
        dial_ahead(&dial, &link).await;
    }
    loop {
        bell.notified().await;
        drain(&dial, &link).await;
    }
}

/// Opens the connection to the peer before anything is sent to it, so the pair shares
/// one (dialled by the lower id) instead of both ends dialling when they first talk at
/// once. A failure costs nothing: the first send dials as usual.
async fn dial_ahead(dial: &Dial, link: &Mutex<Link>) {
    for _ in 0..DIAL_AHEAD_TRIES {
        let taken = {
            let link = lock(link);
            link.stream.is_some() || link.busy
        };
        if taken {
            return; // the peer dialled first, or a send did: `drain` takes over
        }
        if let Ok(open) = connect(dial).await {
            let mut link = lock(link);
            if link.stream.is_none() {
                link.open(open);
            }
            return;
        }
        tokio::time::sleep(RECONNECT_BACKOFF).await;
    }
}

async fn drain(dial: &Dial, link: &Mutex<Link>) {
    let open = lock(link).stream.take();
    let mut open = match open {
        Some(open) => open,
        None => match connect(dial).await {
            Ok(open) => {
                lock(link).fresh();
                open
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
                    link.stream = Some(open);
                    link.busy = false;
                    return;
                }
            }
        };
        let sent = async {
            open.half.write_all(&next).await?;
            open.half.flush().await
        };
        if sent.await.is_err() {
            open.shared.close();
            return lock(link).broken();
        }
    }
}

/// Connects and says hello, each step bounded by [`CONNECT_TIMEOUT`]; the read half waits
/// for the peer's proof in a task of its own, while the write half is used at once.
async fn connect(dial: &Dial) -> io::Result<Outbound> {
    let mut stream = within(CONNECT_TIMEOUT, TcpStream::connect(dial.addr))
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
    let _ = stream.set_nodelay(true);
    let challenge = within(
        CONNECT_TIMEOUT,
        handshake::hello(&mut stream, dial.me, &dial.auth.key),
    )
    .await
    .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
    let (read, half) = tokio::io::split(stream);
    let shared = Arc::new(Shared::default());
    let proof = AwaitProof {
        peer: dial.peer,
        from: dial.addr,
        auth: dial.auth.clone(),
        joined: dial.joined.clone(),
        challenge,
        shared: shared.clone(),
    };
    tokio::spawn(proof.run(read));
    Ok(Outbound { half, shared })
}

/// A dialled connection's read half, until the peer's proof: read from if it proves the
/// key, else closed (and reported, unless it just ended).
struct AwaitProof {
    peer: u64,
    from: SocketAddr,
    auth: Auth,
    joined: mpsc::Sender<Joined>,
    challenge: String,
    shared: Arc<Shared>,
}

impl AwaitProof {
    async fn run(self, read: ReadHalf<TcpStream>) {
        let mut lines = BufReader::with_capacity(MAX_HANDSHAKE_BYTES, read);
        let checked =
            handshake::check_proof(&mut lines, self.peer, &self.challenge, &self.auth.key);
        match within(HANDSHAKE_TIMEOUT, checked).await {
            Ok(Ok(())) => {
                let joined = Joined {
                    peer: self.peer,
                    from: self.from,
                    early: lines.buffer().to_vec(),
                    read: lines.into_inner(),
                    shared: self.shared,
                };
                let _ = self.joined.send(joined).await;
            }
            Ok(Err(Failed::Lost | Failed::LostAfterHello)) => self.shared.close(),
            Ok(Err(Failed::Refused(reason))) => {
                self.shared.close();
                refused(&self.auth, self.from, reason);
            }
            Err(_) => {
                self.shared.close();
                refused(&self.auth, self.from, "no proof in time");
            }
        }
    }
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

/// A connection's read half after its handshake, as the acceptor (or, for one it
/// dialled, the connector) hands it over.
struct Joined {
    peer: u64,
    from: SocketAddr,
    read: ReadHalf<TcpStream>,
    /// Bytes read past the handshake.
    early: Vec<u8>,
    shared: Arc<Shared>,
}

/// A connection being read.
struct Connection {
    peer: u64,
    /// Its peer's cell in [`LastHeard`].
    heard: Option<Arc<AtomicU64>>,
    from: SocketAddr,
    frames: frame::Reader<ReadHalf<TcpStream>>,
    /// Shared with its write half (see [`Shared`]).
    shared: Arc<Shared>,
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
        read,
        early,
        shared,
    } = joined;
    let heard = reading.last_heard.cell(peer);
    reading.last_heard.heard(heard.as_deref(), Instant::now());
    let wake = wake.flag();
    // Before its first read (the flag starts set): a close from now on wakes it.
    let _ = shared.reader.set(wake.waker().clone());
    connections.push(Connection {
        peer,
        heard,
        from,
        frames: frame::Reader::new(read, early, MAX_FRAME_BYTES),
        shared,
        wake,
        ended: false,
    });
}

/// Drops the connections marked ended at once (their write halves go on the next send),
/// so the peer's writes fail as they would have.
#[cold]
fn drop_ended(connections: &mut Vec<Connection>, turn: &mut usize) {
    connections.retain(|c| !c.ended);
    if *turn >= connections.len() {
        *turn = 0;
    }
}

/// The next message of the first connection that has one, starting at `turn` (moved past
/// it), and when it was taken; connections that end, send something else or were given
/// up by their write half are marked ended (and `ended` set).
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
        let Connection {
            frames,
            wake,
            shared,
            ..
        } = &mut *connection;
        let next = wake.poll_with(|cx| {
            if shared.is_closed() {
                Poll::Ready(None)
            } else {
                frames.poll_frame::<M>(cx)
            }
        });
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
                connection.shared.close();
                connection.ended = true;
                *ended = true;
            }
            Poll::Ready(None) => {
                connection.shared.close();
                connection.ended = true;
                *ended = true;
            }
            Poll::Pending => {}
        }
        i += 1;
    }
    None
}

/// What the acceptor needs: whom it answers as, and where a proven connection's halves go.
struct Accepting {
    me: u64,
    auth: Auth,
    joined: mpsc::Sender<Joined>,
    /// The links of the peers this transport sends to, offered the connections they dial.
    links: Arc<BTreeMap<u64, Arc<Mutex<Link>>>>,
}

async fn accept_loop(listener: TcpListener, accepting: Accepting) {
    let accepting = Arc::new(accepting);
    let handshake = move |stream, from| {
        tokio::spawn(accepted(accepting.clone(), stream, from));
    };
    crate::accept::accept_loops(listener, RECONNECT_BACKOFF, handshake).await;
}

/// An accepted connection's handshake; a peer that proves the key is read from, and its
/// link is offered the write half.
async fn accepted(accepting: Arc<Accepting>, stream: TcpStream, from: SocketAddr) {
    let Accepting {
        me,
        auth,
        joined,
        links,
    } = &*accepting;
    // Sized for the handshake: the frames after it have a reader of their own.
    let mut lines = BufReader::with_capacity(MAX_HANDSHAKE_BYTES, stream);
    let handshake = handshake::accept(&mut lines, *me, &auth.key);
    let peer = match within(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(peer)) => peer,
        Ok(Err(Failed::Refused(reason))) => return refused(auth, from, reason),
        Ok(Err(Failed::Lost)) => return refused(auth, from, "closed before its hello"),
        // A genuine peer whose connection broke as it was answered: nothing to refuse.
        Ok(Err(Failed::LostAfterHello)) => return,
        Err(_) => return refused(auth, from, "no hello in time"),
    };
    let early = lines.buffer().to_vec();
    let (read, half) = tokio::io::split(lines.into_inner());
    let shared = Arc::new(Shared::default());
    if let Some(link) = links.get(&peer) {
        offer(
            link,
            Outbound {
                half,
                shared: shared.clone(),
            },
        );
    }
    let joined_now = Joined {
        peer,
        from,
        read,
        early,
        shared,
    };
    let _ = joined.send(joined_now).await;
}

/// Offers `link` the write half of a connection its peer dialled: taken if the link has
/// no usable connection and is not dialling one (then each end writes on its own), so
/// messages back go on the connection the peer opened.
fn offer(link: &Mutex<Link>, open: Outbound) {
    let mut link = lock(link);
    let usable = link.stream.as_ref().is_some_and(|s| !s.shared.is_closed());
    if !link.busy && !usable {
        link.open(open);
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

    /// Node 2 knows node 1 only at an address where nothing listens: its reply still
    /// arrives, on the connection node 1 dialled (ahead of its first send, as the lower id).
    #[test]
    fn a_reply_goes_back_on_the_connection_the_peer_dialled() {
        use madsim::runtime::Handle;
        let runtime = madsim::runtime::Runtime::new();
        runtime.block_on(async move {
            let handle = Handle::current();
            let addr = |last: u8| SocketAddr::from(([10, 0, 0, last], 7000));
            let key = ClusterKey::derived("k");
            let (got_tx, mut got) = mpsc::channel::<u64>(4);
            let replier = handle.create_node().ip(addr(2).ip()).build();
            {
                let key = key.clone();
                replier.spawn(async move {
                    let nowhere = BTreeMap::from([(1, addr(99))]);
                    let (t, mut inbox) = numbers(2, addr(2), &nowhere, &key).await;
                    while let Some(m) = inbox.recv().await {
                        t.send(1, &(m + 1));
                    }
                });
            }
            let asker = handle.create_node().ip(addr(1).ip()).build();
            asker.spawn(async move {
                tokio::time::sleep(Duration::from_millis(10)).await;
                let peers = BTreeMap::from([(2, addr(2))]);
                let (t, mut inbox) = numbers(1, addr(1), &peers, &key).await;
                tokio::time::sleep(Duration::from_millis(500)).await;
                t.send(2, &41);
                if let Some(m) = inbox.recv().await {
                    let _ = got_tx.send(m).await;
                }
            });
            let reply = tokio::time::timeout(Duration::from_secs(5), got.recv()).await;
            assert_eq!(reply.ok().flatten(), Some(42));
        });
    }

    /// An acceptor that answers the hello with a proof it cannot make, then a well-formed
    /// message: the dialling node refuses the connection, reports it, and never reads the
    /// message.
    #[test]
    fn an_acceptor_that_cannot_prove_the_key_is_not_heard() {
        use madsim::runtime::Handle;
        use tokio::io::AsyncBufReadExt;
        let runtime = madsim::runtime::Runtime::new();
        runtime.block_on(async move {
            let handle = Handle::current();
            let addr = |last: u8| SocketAddr::from(([10, 0, 0, last], 7000));
            let impostor = handle.create_node().ip(addr(2).ip()).build();
            impostor.spawn(async move {
                let listener = TcpListener::bind(addr(2)).await.expect("bind");
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(async move {
                        let mut stream = BufReader::new(stream);
                        let w = stream.get_mut();
                        let _ = w.write_all(b"{\"challenge\":\"00\"}\n").await;
                        let _ = w.flush().await;
                        let mut hello = String::new();
                        let _ = stream.read_line(&mut hello).await;
                        let mut lie = b"{\"proof\":\"00\"}\n".to_vec();
                        lie.extend(frame::encode(1, &666u64).expect("encodes"));
                        let w = stream.get_mut();
                        let _ = w.write_all(&lie).await;
                        let _ = w.flush().await;
                        tokio::time::sleep(Duration::from_secs(30)).await;
                    });
                }
            });
            let refusals = Arc::new(Mutex::new(Vec::new()));
            let (heard_tx, mut heard) = mpsc::channel::<u64>(4);
            let dialler = handle.create_node().ip(addr(1).ip()).build();
            {
                let refusals = refusals.clone();
                dialler.spawn(async move {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    let events = EventSink::new(move |e| refusals.lock().unwrap().push(e));
                    let peers = BTreeMap::from([(2, addr(2))]);
                    let key = ClusterKey::derived("k");
                    let (t, mut inbox) =
                        Transport::<u64>::start(1, addr(1), &peers, &key, &events, &WireTap::off())
                            .await
                            .expect("listen");
                    t.send(2, &1);
                    while let Some(m) = inbox.recv().await {
                        let _ = heard_tx.send(m).await;
                    }
                });
            }
            let got = tokio::time::timeout(Duration::from_secs(5), heard.recv()).await;
            assert!(got.is_err(), "the impostor was heard: {got:?}");
            let reasons = reasons(&refusals);
            assert!(
                reasons.iter().any(|r| r == "bad cluster MAC in its proof"),
                "{reasons:?}"
            );
        });
    }

    /// The reason of each refusal recorded (any other event as itself).
    fn reasons(events: &Mutex<Vec<NodeEvent>>) -> Vec<String> {
        let events = events.lock().unwrap();
        let reason = |e: &NodeEvent| match e {
            NodeEvent::Refused { reason, .. } => reason.clone(),
            other => format!("{other:?}"),
        };
        events.iter().map(reason).collect()
    }

    /// A connection closed before its hello is reported as refused; one from a peer that
    /// proved the key and left before the proof could be sent is not (nothing to refuse).
    #[test]
    fn a_peer_gone_after_a_good_hello_is_not_refused() {
        use madsim::runtime::Handle;
        let runtime = madsim::runtime::Runtime::new();
        runtime.block_on(async move {
            let handle = Handle::current();
            let addr = |last: u8| SocketAddr::from(([10, 0, 0, last], 7000));
            let key = ClusterKey::derived("k");
            let refusals = Arc::new(Mutex::new(Vec::new()));
            let acceptor = handle.create_node().ip(addr(1).ip()).build();
            {
                let (key, refusals) = (key.clone(), refusals.clone());
                acceptor.spawn(async move {
                    let events = EventSink::new(move |e| refusals.lock().unwrap().push(e));
                    let (tap, peers) = (WireTap::off(), none());
                    let started = Transport::<u64>::start(1, addr(1), &peers, &key, &events, &tap);
                    let _running = started.await.expect("listen");
                    tokio::time::sleep(Duration::from_secs(30)).await;
                });
            }
            let caller = handle.create_node().ip(addr(2).ip()).build();
            let called = caller.spawn(async move {
                tokio::time::sleep(Duration::from_millis(10)).await;
                let silent = TcpStream::connect(addr(1)).await.expect("connect");
                drop(silent);
                tokio::time::sleep(Duration::from_millis(100)).await;
                let mut good = TcpStream::connect(addr(1)).await.expect("connect");
                handshake::hello(&mut good, 2, &key).await.expect("hello");
            });
            called.await.expect("the caller ran");
            tokio::time::sleep(Duration::from_secs(2)).await;
            assert_eq!(reasons(&refusals), vec!["closed before its hello"]);
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
