//! The transport seam: fire-and-forget messages between peers over `tokio::net` TCP.
//!
//! Messages are newline-delimited JSON. Each peer gets one outbound connection, owned by a
//! writer task with a bounded queue; inbound connections are read by one task each and
//! feed a single inbox. A connection opens with a hello line naming the sender, so the
//! transport knows when it last heard from each peer: an outbound connection to a peer
//! silent for [`STALE_AFTER`] is replaced on the next send. TCP (real or simulated) holds
//! data for a cut link and retries with exponential backoff, so without this a healed
//! partition would stay deaf for seconds. Delivery is best effort, like the network: a message to an
//! unreachable peer, or one that overflows the queue, is dropped, and protocols recover
//! with their own timeouts and retries. The same code runs on real sockets and, compiled
//! with `--cfg madsim`, on the simulated network.

use crate::lines::{read_line, Line};
use serde::{de::DeserializeOwned, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWriteExt, BufReader};
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
/// Longest accepted message line.
const MAX_LINE_BYTES: usize = 16 << 20;

/// Sends messages of type `M` to peers by id.
pub struct Transport<M> {
    outboxes: BTreeMap<u64, mpsc::Sender<String>>,
    _message: PhantomData<fn(M)>,
}

impl<M: Serialize + DeserializeOwned + Send + 'static> Transport<M> {
    /// Listens on `listen` as node `me` and prepares connections to `peers`; returns the
    /// sender and the inbox of messages received from anyone.
    pub async fn start(
        me: u64,
        listen: SocketAddr,
        peers: &BTreeMap<u64, SocketAddr>,
    ) -> io::Result<(Self, mpsc::Receiver<M>)> {
        let listener = TcpListener::bind(listen).await?;
        let (inbox_tx, inbox_rx) = mpsc::channel(INBOX);
        let last_heard = LastHeard::default();
        tokio::spawn(accept_loop(listener, inbox_tx, last_heard.clone()));
        let outboxes = peers
            .iter()
            .map(|(&id, &addr)| {
                let (tx, rx) = mpsc::channel(QUEUE_PER_PEER);
                tokio::spawn(writer(me, id, addr, rx, last_heard.clone()));
                (id, tx)
            })
            .collect();
        Ok((
            Transport {
                outboxes,
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
        if let Ok(mut line) = serde_json::to_string(message) {
            line.push('\n');
            let _ = outbox.try_send(line);
        }
    }

    /// The peers this transport knows, in id order.
    pub fn peers(&self) -> impl Iterator<Item = u64> + '_ {
        self.outboxes.keys().copied()
    }
}

async fn accept_loop<M: DeserializeOwned + Send + 'static>(
    listener: TcpListener,
    inbox: mpsc::Sender<M>,
    last_heard: LastHeard,
) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(reader(stream, inbox.clone(), last_heard.clone()));
            }
            Err(_) => tokio::time::sleep(RECONNECT_BACKOFF).await,
        }
    }
}

/// First line on every connection: who is writing.
#[derive(serde::Serialize, serde::Deserialize)]
struct Hello {
    hello: u64,
}

async fn reader<M: DeserializeOwned, S: AsyncRead + Unpin>(
    stream: S,
    inbox: mpsc::Sender<M>,
    last_heard: LastHeard,
) {
    let mut lines = BufReader::new(stream);
    let mut line = Vec::new();
    let peer = match read_line(&mut lines, &mut line, MAX_LINE_BYTES).await {
        Ok(Line::Read(_)) => match serde_json::from_slice::<Hello>(&line) {
            Ok(hello) => hello.hello,
            Err(_) => return,
        },
        _ => return,
    };
    heard(&last_heard, peer);
    loop {
        match read_line(&mut lines, &mut line, MAX_LINE_BYTES).await {
            // A line over the cap is refused before it is buffered: close the connection.
            Ok(Line::Eof | Line::TooLong) | Err(_) => return,
            Ok(Line::Read(_)) => {
                heard(&last_heard, peer);
                // A line that does not parse is a peer bug or noise: skip it, keep reading.
                if let Ok(message) = serde_json::from_slice(&line) {
                    if inbox.send(message).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

async fn writer(
    me: u64,
    peer: u64,
    addr: SocketAddr,
    mut queue: mpsc::Receiver<String>,
    last_heard: LastHeard,
) {
    let hello = format!("{}\n", serde_json::json!({ "hello": me }));
    let mut stream: Option<TcpStream> = None;
    let mut connected_at = Instant::now();
    let mut retry_at: Option<tokio::time::Instant> = None;
    while let Some(line) = queue.recv().await {
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
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
                Ok(Ok(mut s)) => {
                    let _ = s.set_nodelay(true);
                    if s.write_all(hello.as_bytes()).await.is_err() {
                        retry_at = Some(tokio::time::Instant::now() + RECONNECT_BACKOFF);
                        continue;
                    }
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
                s.write_all(line.as_bytes()).await?;
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

    /// A hello, then a line far over the cap with no newline: the reader gives up on the
    /// connection having taken at most the cap (plus one buffer) from it.
    #[test]
    fn a_peer_line_without_end_is_cut_off_at_the_cap() {
        let flood = Flood::new(b"{\"hello\":2}\n", MAX_LINE_BYTES * 4);
        let taken = flood.taken.clone();
        let runtime = madsim::runtime::Runtime::new();
        runtime.block_on(async move {
            let (inbox, _rx) = mpsc::channel::<serde_json::Value>(4);
            reader(flood, inbox, LastHeard::default()).await;
        });
        let taken = taken.load(Ordering::Relaxed);
        assert!(
            taken <= 12 + MAX_LINE_BYTES + 1 + 8192,
            "the reader took {taken} bytes of one line (cap {MAX_LINE_BYTES})"
        );
    }
}
