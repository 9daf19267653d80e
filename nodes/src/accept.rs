//! Several accept loops on one listener, so one slow accept holds up no other connection.
//!
//! An accept can be slow: madsim's buggify delays one in ten by 1-5 s, before it takes the
//! next queued connection. With one loop, every connection queued behind it waited;
//! clients timed out and retried with fresh connections, and a node drained its queue at
//! a few connections a second (30 of 100 seeds of `scenarios/kv/buggify.toml` failed
//! liveness). A real kernel completes handshakes while a server is busy; a few loops on
//! one listener come closer to that, in both modes (tokio and madsim accept on `&self`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// Accept loops per listener.
pub const ACCEPTORS: usize = 4;

/// Accepts on `listener` with [`ACCEPTORS`] loops (this task and tasks of its own),
/// handing each connection to `accepted`; after a failed accept a loop waits `backoff`.
pub async fn accept_loops<F>(listener: TcpListener, backoff: Duration, accepted: F)
where
    F: Fn(TcpStream, SocketAddr) + Send + Sync + 'static,
{
    let listener = Arc::new(listener);
    let accepted = Arc::new(accepted);
    for _ in 1..ACCEPTORS {
        tokio::spawn(accept_loop(listener.clone(), backoff, accepted.clone()));
    }
    accept_loop(listener, backoff, accepted).await;
}

async fn accept_loop<F: Fn(TcpStream, SocketAddr)>(
    listener: Arc<TcpListener>,
    backoff: Duration,
    accepted: Arc<F>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, from)) => accepted(stream, from),
            Err(_) => tokio::time::sleep(backoff).await,
        }
    }
}
