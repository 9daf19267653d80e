//! A node loop's next turn: ctrl-c, its timer, or a peer message, polled in that order.
//!
//! This is a `biased` `tokio::select!` over the three, written out: tokio's unbiased select
//! draws from a per-thread RNG seeded from a process-wide counter, which would make two
//! simulated runs in one process differ, and the macro's per-turn bookkeeping cost a
//! measurable share of a message (issue 16). The three share the inbox's wake set (the
//! timer and ctrl-c are made with [`Inbox::wake_flag`]): a turn looks at the set once and
//! polls only the sources whose own wake-up came (see [`super::woken`]), so a turn woken
//! by one message looks at little else, and a wake-up that is not a message's (madsim
//! wakes a reader once when a payload is sent, again when it arrives) costs one look.

use super::clock::Timer;
use super::transport::Inbox;
use super::woken::OnWake;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// What a turn of a node's loop handles.
#[derive(Debug)]
pub enum Turn<M> {
    /// Ctrl-c: stop.
    Shutdown,
    /// The timer is due.
    Tick,
    /// A message from a peer.
    Message(M),
}

/// The next turn, if one is ready: the shutdown signal first, then the timer, then the
/// inbox (whose connections are read in turn). An inbox that no connection can bring a
/// message to any more is simply not ready. `shutdown` and `timer` must be under flags of
/// the inbox's set ([`OnWake::in_set`], [`super::Clock::timer_in`]): nothing else
/// registers them with the task.
pub fn poll_turn<M, F>(
    shutdown: &mut OnWake<F>,
    timer: &mut Timer,
    inbox: &mut Inbox<M>,
    cx: &mut Context<'_>,
) -> Poll<Turn<M>>
where
    M: super::frame::Body + DeserializeOwned + crate::runtime::wire::MessageKind + Send + 'static,
    F: Future,
{
    if !inbox.woken(cx) {
        return Poll::Pending;
    }
    if Pin::new(shutdown).poll(cx).is_ready() {
        return Poll::Ready(Turn::Shutdown);
    }
    if Pin::new(timer).poll(cx).is_ready() {
        return Poll::Ready(Turn::Tick);
    }
    match inbox.poll_woken() {
        Poll::Ready(Some(message)) => Poll::Ready(Turn::Message(message)),
        Poll::Ready(None) | Poll::Pending => Poll::Pending,
    }
}

#[cfg(all(test, madsim))]
mod tests {
    use super::*;
    use crate::auth::ClusterKey;
    use crate::runtime::transport::Transport;
    use crate::runtime::{Clock, EventSink, WireTap};
    use std::collections::BTreeMap;
    use std::future::poll_fn;
    use std::net::SocketAddr;
    use std::time::Duration;

    /// With a shutdown signal, a due timer and a waiting message all ready, turns come in
    /// that order; a timer set later lets the message through.
    #[test]
    fn shutdown_comes_before_the_timer_and_the_timer_before_messages() {
        let runtime = madsim::runtime::Runtime::new();
        let addr = SocketAddr::from(([10, 0, 0, 1], 7000));
        let node = runtime.create_node().ip(addr.ip()).build();
        let turns = runtime.block_on(node.spawn(async move {
            let key = ClusterKey::derived("k");
            let peers = BTreeMap::from([(1, addr)]);
            let events = EventSink::new(|_| {});
            let (transport, mut inbox) =
                Transport::<u64>::start(1, addr, &peers, &key, &events, &WireTap::off())
                    .await
                    .expect("listen");
            transport.send(1, &7);
            tokio::time::sleep(Duration::from_millis(100)).await;
            let clock = Clock::new();
            let mut timer = clock.timer_in(inbox.wake_flag());
            timer.set(clock.now());
            let mut stop = OnWake::in_set(std::future::ready(()), inbox.wake_flag());
            let mut never = OnWake::in_set(std::future::pending::<()>(), inbox.wake_flag());
            let mut turns = Vec::new();
            turns.push(poll_fn(|cx| poll_turn(&mut stop, &mut timer, &mut inbox, cx)).await);
            turns.push(poll_fn(|cx| poll_turn(&mut never, &mut timer, &mut inbox, cx)).await);
            timer.set(clock.now() + Duration::from_secs(3600));
            turns.push(poll_fn(|cx| poll_turn(&mut never, &mut timer, &mut inbox, cx)).await);
            turns
        }));
        let turns = turns.expect("the node ran");
        assert!(
            matches!(
                turns.as_slice(),
                [Turn::Shutdown, Turn::Tick, Turn::Message(7)]
            ),
            "{turns:?}"
        );
    }

    /// Under the shared wake set, the timer is looked at when nothing else woke the turn:
    /// a due timer ticks again until set later, and a deadline moved earlier after a quiet
    /// turn (a chat client's turn) is asked for and fires on time.
    #[test]
    fn the_timer_is_looked_at_after_a_tick_and_after_a_move_in_a_quiet_set() {
        let runtime = madsim::runtime::Runtime::new();
        let addr = SocketAddr::from(([10, 0, 0, 1], 7000));
        let node = runtime.create_node().ip(addr.ip()).build();
        let seen = runtime.block_on(node.spawn(async move {
            let key = ClusterKey::derived("k");
            let events = EventSink::new(|_| {});
            let (_transport, mut inbox) =
                Transport::<u64>::start(1, addr, &BTreeMap::new(), &key, &events, &WireTap::off())
                    .await
                    .expect("listen");
            let clock = Clock::new();
            let mut timer = clock.timer_in(inbox.wake_flag());
            let mut never = OnWake::in_set(std::future::pending::<()>(), inbox.wake_flag());
            timer.set(clock.now());
            let first = poll_fn(|cx| poll_turn(&mut never, &mut timer, &mut inbox, cx)).await;
            // Not set again: still due.
            let again = tokio::time::timeout(
                Duration::from_secs(1),
                poll_fn(|cx| poll_turn(&mut never, &mut timer, &mut inbox, cx)),
            )
            .await;
            // A far deadline, one quiet turn that arms it, then a move to 1 s from now.
            timer.set(clock.now() + Duration::from_secs(3600));
            poll_fn(|cx| {
                let _ = poll_turn(&mut never, &mut timer, &mut inbox, cx);
                Poll::Ready(())
            })
            .await;
            let start = clock.now();
            timer.set(start + Duration::from_secs(1));
            let moved = tokio::time::timeout(
                Duration::from_secs(5),
                poll_fn(|cx| poll_turn(&mut never, &mut timer, &mut inbox, cx)),
            )
            .await;
            (first, again, moved, clock.now() - start)
        }));
        let (first, again, moved, waited) = seen.expect("the node ran");
        assert!(matches!(first, Turn::Tick), "{first:?}");
        assert!(matches!(again, Ok(Turn::Tick)), "{again:?}");
        assert!(matches!(moved, Ok(Turn::Tick)), "{moved:?}");
        assert!(
            waited.abs_diff(Duration::from_secs(1)) < Duration::from_millis(1),
            "{waited:?}"
        );
    }
}
