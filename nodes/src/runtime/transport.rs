//! The transport seam: fire-and-forget messages between peers over `tokio::net` TCP.
//!
//! A connection opens with a handshake of two JSON lines; every message after it is one
//! binary [`frame`] (a length, then the message in postcard). Each peer gets one outbound connection, owned by a
//! writer task with a bounded queue; inbound connections are read by one task each and
//! feed a single inbox. A connection opens with a handshake: the acceptor sends a fresh
//! random challenge, the connecting side answers with a hello line naming itself and an
//! HMAC of the challenge under the cluster key ([`crate::auth`]). A connection that does
//! not prove the key is closed and reported as [`NodeEvent::Refused`] before any of its
//! messages is read. The hello also tells the transport when it last heard from each peer: an outbound connection to a peer
//! silent for [`STALE_AFTER`] is replaced on the next send. TCP (real or simulated) holds
//! data for a cut link and retries with exponential backoff, so without this a healed
//! partition would stay deaf for seconds. Delivery is best effort, like the network: a message to an
//! unreachable peer, or one that overflows the queue, is dropped, and protocols recover
//! with their own timeouts and retries. The same code runs on real sockets and, compiled
//! with `--cfg madsim`, on the simulated network.

use crate::auth::ClusterKey;
use crate::lines::{read_line, Line};
use crate::runtime::frame::{self, FrameError};
use crate::runtime::wire::{MessageKind, Tapped, WireTap};
use crate::runtime::{EventSink, NodeEvent};
use rand::Rng;
use serde::{de::DeserializeOwned, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufRead, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// When each peer was last heard from (by id).
type LastHeard = Arc<Mutex<BTreeMap<u64, Instant>>>;

fn heard(last_heard: &LastHeard, peer: u64) {
    last_heard
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(peer, Instant::now());
}

fn silent_since(last_heard: &LastHeard, peer: u64, since: Instant) -> bool {
    let map = last_heard.lock().unwrap_or_else(|e| e.into_inner());
    map.get(&peer).is_none_or(|t| *t < since)
}

/// Messages queued per peer before new ones are dropped.
const QUEUE_PER_PEER: usize = 4096;
/// Messages waiting in the inbox before readers wait.
const INBOX: usize = 4096;
/// How long a connect may take before the message is dropped.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Pause before reconnecting to a peer that refused or reset.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(100);
/// Silence from a peer after which the connection to it is re-established on next send.
pub const STALE_AFTER: Duration = Duration::from_secs(2);
/// Longest accepted message frame (its body, after the length).
pub const MAX_FRAME_BYTES: usize = 16 << 20;
/// Frames up to this size are read into a buffer sized at once; longer ones as they come.
const FRAME_READ_AT_ONCE: usize = 64 << 10;
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

/// Sends messages of type `M` to peers by id.
pub struct Transport<M> {
    outboxes: BTreeMap<u64, mpsc::Sender<Vec<u8>>>,
    /// Number of the next message sent (carried in its envelope, see [`WireTap`]).
    next_id: std::sync::atomic::AtomicU64,
    wire: WireTap,
    _message: PhantomData<fn(M)>,
}

impl<M: Serialize + DeserializeOwned + MessageKind + Send + 'static> Transport<M> {
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
    ) -> io::Result<(Self, mpsc::Receiver<M>)> {
        let listener = TcpListener::bind(listen).await?;
        let (inbox_tx, inbox_rx) = mpsc::channel(INBOX);
        let last_heard = LastHeard::default();
        let auth = Auth {
            key: key.clone(),
            events: events.clone(),
        };
        let tap = wire.clone();
        tokio::spawn(accept_loop(
            listener,
            inbox_tx,
            last_heard.clone(),
            auth,
            tap,
        ));
        let outboxes = peers
            .iter()
            .map(|(&id, &addr)| {
                let (tx, rx) = mpsc::channel(QUEUE_PER_PEER);
                let key = key.clone();
                tokio::spawn(writer(me, id, addr, rx, last_heard.clone(), key));
                (id, tx)
            })
            .collect();
        Ok((
            Transport {
                outboxes,
                next_id: std::sync::atomic::AtomicU64::new(1),
                wire: wire.clone(),
                _message: PhantomData,
            },
            inbox_rx,
        ))
    }

    /// Queues `message` for `peer`; drops it if the peer is unknown or its queue is full.
    pub fn send(&self, peer: u64, message: &M) {
        let Some(outbox) = self.outboxes.get(&peer) else {
            return;
        };
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(frame) = frame::encode(id, message) {
            self.wire.tap(Tapped::Sent {
                to: peer,
                id,
                kind: message.kind(),
            });
            let _ = outbox.try_send(frame);
        }
    }

    /// The peers this transport knows, in id order.
    pub fn peers(&self) -> impl Iterator<Item = u64> + '_ {
        self.outboxes.keys().copied()
    }
}

async fn accept_loop<M: DeserializeOwned + MessageKind + Send + 'static>(
    listener: TcpListener,
    inbox: mpsc::Sender<M>,
    last_heard: LastHeard,
    auth: Auth,
    wire: WireTap,
) {
    loop {
        match listener.accept().await {
            Ok((stream, from)) => {
                let (inbox, last_heard, auth) = (inbox.clone(), last_heard.clone(), auth.clone());
                let wire = wire.clone();
                tokio::spawn(async move {
                    let (read, mut write) = tokio::io::split(stream);
                    let mut lines = BufReader::new(read);
                    let handshake = accept_hello(&mut lines, &mut write, &auth.key);
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                        Ok(Ok(peer)) => {
                            let ends = read_messages(lines, peer, inbox, last_heard, wire).await;
                            if let Err(refusal) = ends {
                                refused_message(&auth, from, &refusal);
                            }
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

fn refused(auth: &Auth, from: SocketAddr, reason: &str) {
    auth.events.emit(NodeEvent::Refused {
        peer: from.to_string(),
        what: "peer connection".into(),
        reason: reason.into(),
    });
}

/// A peer that proved the key sent something that is not a message: it is cut off.
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

/// The acceptor's half of the handshake: sends a challenge, returns the id of a peer whose
/// hello proves the key, or why it is refused.
async fn accept_hello<R: AsyncBufRead + Unpin, W: AsyncWrite + Unpin>(
    lines: &mut R,
    write: &mut W,
    key: &ClusterKey,
) -> Result<u64, &'static str> {
    let challenge = crate::auth::hex(&madsim::rand::thread_rng().gen::<[u8; 16]>());
    let mut line = serde_json::to_vec(&Challenge {
        challenge: challenge.clone(),
    })
    .map_err(|_| "cannot encode a challenge")?;
    line.push(b'\n');
    let sent = async {
        write.write_all(&line).await?;
        write.flush().await
    };
    sent.await.map_err(|_| "connection lost")?;
    let mut line = Vec::new();
    match read_line(lines, &mut line, MAX_HANDSHAKE_BYTES).await {
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
        let mut lines = BufReader::new(&mut *stream);
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

/// Reads the message frames of an authenticated connection from `peer` into the inbox
/// until the connection ends (`Ok`) or sends something that is not a message (`Err`: a
/// frame over the cap, refused before it is buffered, or one that does not decode).
async fn read_messages<M: DeserializeOwned + MessageKind, R: AsyncRead + Unpin>(
    mut frames: BufReader<R>,
    peer: u64,
    inbox: mpsc::Sender<M>,
    last_heard: LastHeard,
    wire: WireTap,
) -> Result<(), FrameError> {
    heard(&last_heard, peer);
    let mut body = Vec::new();
    loop {
        let mut header = [0; frame::HEADER_BYTES];
        if frames.read_exact(&mut header).await.is_err() {
            return Ok(());
        }
        let length = frame::body_length(header, MAX_FRAME_BYTES)?;
        body.clear();
        let complete = if length <= FRAME_READ_AT_ONCE {
            body.resize(length, 0);
            frames.read_exact(&mut body).await.is_ok()
        } else {
            // Grown as the bytes arrive: announcing a large frame costs nothing until sent.
            let read = (&mut frames)
                .take(length as u64)
                .read_to_end(&mut body)
                .await;
            read.is_ok() && body.len() == length
        };
        if !complete {
            return Ok(());
        }
        heard(&last_heard, peer);
        let (n, m) = frame::decode::<M>(&body)?;
        wire.tap(Tapped::Received {
            from: peer,
            id: n,
            kind: m.kind(),
        });
        if inbox.send(m).await.is_err() {
            return Ok(());
        }
    }
}

async fn writer(
    me: u64,
    peer: u64,
    addr: SocketAddr,
    mut queue: mpsc::Receiver<Vec<u8>>,
    last_heard: LastHeard,
    key: ClusterKey,
) {
    let mut stream: Option<TcpStream> = None;
    let mut connected_at = Instant::now();
    let mut retry_at: Option<tokio::time::Instant> = None;
    while let Some(frame) = queue.recv().await {
        // Replace a connection that has been open a while without a word back from the
        // peer: it may be stuck behind a healed partition in TCP's retry backoff.
        let now = Instant::now();
        let old_connection = now.saturating_duration_since(connected_at) > STALE_AFTER;
        let silent = now
            .checked_sub(STALE_AFTER)
            .is_some_and(|since| silent_since(&last_heard, peer, since));
        if stream.is_some() && old_connection && silent {
            stream = None;
        }
        if stream.is_none() {
            if retry_at.is_some_and(|t| tokio::time::Instant::now() < t) {
                continue; // peer recently unreachable: drop, as a lossy network would
            }
            // Connecting and the handshake after it are each bounded by CONNECT_TIMEOUT.
            let connect = async {
                let mut s = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
                    .await
                    .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
                let _ = s.set_nodelay(true);
                tokio::time::timeout(CONNECT_TIMEOUT, send_hello(&mut s, me, &key))
                    .await
                    .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
                io::Result::Ok(s)
            };
            match connect.await {
                Ok(s) => {
                    stream = Some(s);
                    connected_at = Instant::now();
                    retry_at = None;
                }
                _ => {
                    retry_at = Some(tokio::time::Instant::now() + RECONNECT_BACKOFF);
                    continue;
                }
            }
        }
        if let Some(s) = stream.as_mut() {
            let sent = async {
                s.write_all(&frame).await?;
                s.flush().await
            };
            if sent.await.is_err() {
                stream = None;
                retry_at = Some(tokio::time::Instant::now() + RECONNECT_BACKOFF);
            }
        }
    }
}

#[cfg(all(test, madsim))]
mod tests {
    use super::*;
    use crate::lines::testing::Flood;
    use std::sync::atomic::Ordering;

    impl MessageKind for u64 {
        fn kind(&self) -> &'static str {
            "NUMBER"
        }
    }

    fn none() -> BTreeMap<u64, SocketAddr> {
        BTreeMap::new()
    }

    /// Reads `stream` as a peer connection after the handshake: what ended it, the
    /// messages it delivered and the bytes it took.
    fn read_all(prefix: &[u8], flood: usize) -> (Result<(), FrameError>, Vec<u64>, usize) {
        let flood = Flood::new(prefix, flood);
        let taken = flood.taken.clone();
        let runtime = madsim::runtime::Runtime::new();
        let (ended, delivered) = runtime.block_on(async move {
            let (inbox, mut rx) = mpsc::channel::<u64>(16);
            let wire = WireTap::off();
            let ended =
                read_messages(BufReader::new(flood), 2, inbox, LastHeard::default(), wire).await;
            let mut delivered = Vec::new();
            while let Ok(m) = rx.try_recv() {
                delivered.push(m);
            }
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
