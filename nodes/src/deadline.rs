//! Deadlines that ask the runtime for one wake-up, and take it back when dropped.
//!
//! The simulator's sleep registers a timer on *every* poll, each holding the polling
//! task's waker until its deadline, and never removes one: `tokio::time::timeout` around
//! an HTTP exchange polled five times left five timers in the simulator's heap, and each
//! of them woke its task at the deadline, seconds after the call had ended (a spurious
//! poll of a node's loop, which registered its own sleep again). Per KV seed that was
//! thousands of timers (issue 16). An [`Alarm`] polls its sleep once, through a relay
//! waker that forwards to whichever task polls the alarm now, and empties the relay when
//! dropped, so an expired timer of a finished call wakes nobody. [`within`] is
//! `tokio::time::timeout` built on it. Same code on real tokio, where it is merely a
//! little cheaper.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};
use tokio::time::Sleep;

/// A sleep that registers with the runtime once (see the module doc).
pub struct Alarm {
    /// When it is due, until first polled (hyper makes a header timer for every request
    /// head, most of them read at once and never polled: they cost nothing then).
    due: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
    /// The waker the runtime holds, once asked; forwards to the latest poller.
    relay: Option<Arc<Relay>>,
}

/// The waker given to the runtime: wakes the task that polled the alarm last, if the
/// alarm still exists.
struct Relay {
    task: Mutex<Option<Waker>>,
}

impl Wake for Relay {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            task.wake();
        }
    }
}

impl Alarm {
    /// An alarm due `after` from now (true time).
    pub fn after(after: Duration) -> Self {
        Self::at(Instant::now() + after)
    }

    /// An alarm due at `due` (true time).
    pub fn at(due: Instant) -> Self {
        Alarm {
            due,
            sleep: None,
            relay: None,
        }
    }

    /// Ready once the deadline has passed; the task polling it now is the one woken.
    pub fn poll_due(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let (Some(relay), Some(sleep)) = (&self.relay, &self.sleep) else {
            let relay = Arc::new(Relay {
                task: Mutex::new(Some(cx.waker().clone())),
            });
            let waker = Waker::from(relay.clone());
            // tokio's own `Instant` on real tokio; the same type in the simulator.
            #[allow(clippy::useless_conversion)]
            let due = tokio::time::Instant::from(self.due);
            let sleep = self.sleep.insert(Box::pin(tokio::time::sleep_until(due)));
            let due = sleep.as_mut().poll(&mut Context::from_waker(&waker));
            self.relay = Some(relay);
            return due;
        };
        if sleep.is_elapsed() {
            return Poll::Ready(());
        }
        let mut task = relay.task.lock().unwrap_or_else(|e| e.into_inner());
        if !task.as_ref().is_some_and(|t| t.will_wake(cx.waker())) {
            *task = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

impl Drop for Alarm {
    fn drop(&mut self) {
        if let Some(relay) = &self.relay {
            relay.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        }
    }
}

impl Future for Alarm {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.get_mut().poll_due(cx)
    }
}

/// The deadline passed before the future completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Elapsed;

/// `future`, given up `limit` (true time) after this call: `tokio::time::timeout` with
/// one timer per call. The future is boxed: the large state machines of HTTP exchanges
/// stay where they are instead of being moved into the caller's.
pub fn within<F: Future>(limit: Duration, future: F) -> Within<F> {
    Within {
        future: Box::pin(future),
        alarm: Alarm::after(limit),
    }
}

/// The future of [`within`].
pub struct Within<F> {
    future: Pin<Box<F>>,
    alarm: Alarm,
}

impl<F: Future> Future for Within<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Poll::Ready(output) = this.future.as_mut().poll(cx) {
            return Poll::Ready(Ok(output));
        }
        this.alarm.poll_due(cx).map(|()| Err(Elapsed))
    }
}

#[cfg(all(test, madsim))]
mod tests {
    use super::*;
    use std::time::Instant;

    /// A call that ends in time comes back; one that does not is given up at its deadline,
    /// however often it was polled meanwhile.
    #[test]
    fn within_returns_in_time_and_gives_up_at_the_deadline() {
        let runtime = madsim::runtime::Runtime::new();
        runtime.block_on(async {
            let start = Instant::now();
            let quick = within(Duration::from_secs(1), async {
                tokio::time::sleep(Duration::from_millis(200)).await;
                7
            });
            assert_eq!(quick.await, Ok(7));
            assert!(start.elapsed() < Duration::from_millis(201));
            let start = Instant::now();
            let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
            tokio::spawn(async move {
                for _ in 0..100 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    if tx.send(()).await.is_err() {
                        return;
                    }
                }
            });
            let busy = async {
                let mut seen = 0;
                while rx.recv().await.is_some() {
                    seen += 1;
                }
                seen
            };
            assert_eq!(within(Duration::from_millis(300), busy).await, Err(Elapsed));
            let waited = start.elapsed();
            assert!(
                waited.abs_diff(Duration::from_millis(300)) < Duration::from_micros(1),
                "gave up after {waited:?}"
            );
        });
    }

    /// An alarm dropped before its deadline wakes nobody when it expires: the task that
    /// polled it sleeps on undisturbed.
    #[test]
    fn a_dropped_alarm_wakes_nobody() {
        let runtime = madsim::runtime::Runtime::new();
        runtime.block_on(async {
            use std::sync::atomic::{AtomicUsize, Ordering};
            struct Counting(Arc<AtomicUsize>);
            impl Wake for Counting {
                fn wake(self: Arc<Self>) {
                    self.0.fetch_add(1, Ordering::SeqCst);
                }
            }
            let wakes = Arc::new(AtomicUsize::new(0));
            let waker = Waker::from(Arc::new(Counting(wakes.clone())));
            let mut alarm = Alarm::after(Duration::from_millis(100));
            assert!(alarm
                .poll_due(&mut Context::from_waker(&waker))
                .is_pending());
            drop(alarm);
            tokio::time::sleep(Duration::from_millis(200)).await;
            assert_eq!(wakes.load(Ordering::SeqCst), 0);
            let mut alarm = Alarm::after(Duration::from_millis(100));
            assert!(alarm
                .poll_due(&mut Context::from_waker(&waker))
                .is_pending());
            tokio::time::sleep(Duration::from_millis(200)).await;
            assert_eq!(
                wakes.load(Ordering::SeqCst),
                1,
                "a live alarm wakes its task"
            );
            assert!(alarm.poll_due(&mut Context::from_waker(&waker)).is_ready());
        });
    }
}
