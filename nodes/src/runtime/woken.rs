//! Polling only after a wake-up: for what a driver's loop polls every time round but what
//! rarely has anything to say (ctrl-c, the inbox when the timer fired).
//!
//! A driver's `select!` polls each branch on every wake of its task, whatever woke it; a
//! branch that re-registers on each poll (tokio's watch channel behind `ctrl_c`, the
//! inbox's connections) pays that per message of every other branch. A [`WakeFlag`] stands
//! between the task's waker and one piece of work: the piece is polled again only when
//! something it registered with woke it, or when its last poll produced a value (it may
//! have more). A [`TaskWake`] holds the task's waker once for a set of flags, and says
//! whether any of them was set, so a task woken for something else looks at none of them.
//! The same code runs on real tokio and on madsim.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Wake, Waker};

/// The task that polls a set of flags, and whether any of them was set since it looked.
struct Task {
    any: AtomicBool,
    /// The waker of the first poll, read by a wake without a lock (two wakes per peer
    /// message: a lock round trip each cost more than the rest of the wake, issue 16).
    first: OnceLock<Waker>,
    /// Set once a later poll brought another waker (the set moved to another task):
    /// from then on wakes go to `later`.
    moved: AtomicBool,
    /// Kept, not taken, by a wake: a task polled with the same waker registers nothing.
    later: Mutex<Option<Waker>>,
}

impl Task {
    fn wake_task(&self) {
        self.any.store(true, Ordering::Release);
        if !self.moved.load(Ordering::Acquire) {
            if let Some(waker) = self.first.get() {
                waker.wake_by_ref();
            }
            return;
        }
        let waker = self.later.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(waker) = waker.as_ref() {
            waker.wake_by_ref();
        }
    }

    /// Makes `waker` the one wakes go to.
    fn register(&self, waker: &Waker) {
        if self.first.set(waker.clone()).is_ok() {
            return;
        }
        *self.later.lock().unwrap_or_else(|e| e.into_inner()) = Some(waker.clone());
        self.moved.store(true, Ordering::Release);
    }
}

/// The task side of a set of [`WakeFlag`]s: whether one of them was woken since the last
/// look, and the waker of the task to wake when one is.
pub struct TaskWake {
    task: Arc<Task>,
    /// The waker last handed to `task` (compared, so a poll with the same one is free).
    registered: Option<Waker>,
}

impl Default for TaskWake {
    fn default() -> Self {
        Self::new()
    }
}

impl TaskWake {
    /// A set whose first look finds it woken.
    pub fn new() -> Self {
        TaskWake {
            task: Arc::new(Task {
                any: AtomicBool::new(true),
                first: OnceLock::new(),
                moved: AtomicBool::new(false),
                later: Mutex::new(None),
            }),
            registered: None,
        }
    }

    /// Registers `cx`'s task to be woken by this set's flags; whether any was set since the
    /// last call that returned true (the flag is cleared: a wake from now on sets it again).
    pub fn woken(&mut self, cx: &Context<'_>) -> bool {
        if !self
            .registered
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            self.task.register(cx.waker());
            self.registered = Some(cx.waker().clone());
        }
        // Cleared before anything is polled: what wakes after this is seen next time.
        take(&self.task.any)
    }

    /// A new flag of this set, first set.
    pub fn flag(&self) -> WakeFlag {
        let flag = Arc::new(Flag {
            woken: AtomicBool::new(true),
            task: self.task.clone(),
        });
        WakeFlag {
            waker: Waker::from(flag.clone()),
            flag,
        }
    }
}

/// One flag: set, and its task woken, when what it was polled for wakes.
struct Flag {
    woken: AtomicBool,
    task: Arc<Task>,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake_task();
    }
}

/// Polls a piece of work only once something it waits on woke it (see the module doc).
pub struct WakeFlag {
    flag: Arc<Flag>,
    /// The waker the work registers with: sets the flag, then wakes the task.
    waker: Waker,
}

impl WakeFlag {
    /// Whether the flag was set since the last look; clears it.
    pub fn take(&self) -> bool {
        take(&self.flag.woken)
    }

    /// Sets the flag (and marks its set woken) without waking anyone: for work that must be
    /// looked at again on its task's next poll whatever wakes it (a timer just moved).
    pub fn mark(&self) {
        self.flag.woken.store(true, Ordering::Release);
        self.flag.task.any.store(true, Ordering::Release);
    }

    /// The waker that sets this flag, then wakes its set's task.
    pub fn waker(&self) -> &Waker {
        &self.waker
    }

    /// Runs `poll` with a context whose waker sets this flag, if it was set since the last
    /// run that came back pending; else pending at once. A run that is ready leaves the
    /// flag and its set woken (a stream may hold more).
    pub fn poll_with<T>(&self, poll: impl FnOnce(&mut Context<'_>) -> Poll<T>) -> Poll<T> {
        if !take(&self.flag.woken) {
            return Poll::Pending;
        }
        let ready = poll(&mut Context::from_waker(&self.waker));
        if ready.is_ready() {
            self.flag.woken.store(true, Ordering::Release);
            self.flag.task.any.store(true, Ordering::Release);
        }
        ready
    }
}

/// Whether `flag` was set; clears it (a load first: most looks find it clear, and a
/// plain load costs less than a swap).
fn take(flag: &AtomicBool) -> bool {
    if !flag.load(Ordering::Acquire) {
        return false;
    }
    flag.store(false, Ordering::Release);
    true
}

/// A future polled only after a wake-up of its own (see [`WakeFlag`]).
pub struct OnWake<F> {
    future: Pin<Box<F>>,
    /// Its own set, or `None` when its flag is one of a set its poller looks at itself.
    task: Option<TaskWake>,
    flag: WakeFlag,
}

impl<F: Future> OnWake<F> {
    /// Wraps `future`, with a set of its own: a future to poll anywhere.
    pub fn new(future: F) -> Self {
        let task = TaskWake::new();
        let flag = task.flag();
        OnWake {
            future: Box::pin(future),
            task: Some(task),
            flag,
        }
    }

    /// Wraps `future` under `flag`, one of a set whose poller calls [`TaskWake::woken`]
    /// for the whole set (a driver's turn, see `turn`): one look per turn, not one per
    /// source.
    pub fn in_set(future: F, flag: WakeFlag) -> Self {
        OnWake {
            future: Box::pin(future),
            task: None,
            flag,
        }
    }
}

impl<F: Future> Future for OnWake<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        if let Some(task) = &mut this.task {
            if !task.woken(cx) {
                return Poll::Pending;
            }
        }
        let future = &mut this.future;
        this.flag.poll_with(|cx| future.as_mut().poll(cx))
    }
}

#[cfg(test)]
mod waker_tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// A waker that counts its wakes.
    struct Counter(AtomicUsize);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn counter() -> (Arc<Counter>, Waker) {
        let counter = Arc::new(Counter(AtomicUsize::new(0)));
        (counter.clone(), Waker::from(counter))
    }

    /// A flag's wake reaches the task that polled the set last: the first one without a
    /// lock, then each one the set moved to, back to the first one too.
    #[test]
    fn wakes_follow_the_set_from_task_to_task() {
        let mut set = TaskWake::new();
        let flag = set.flag();
        let (a, waker_a) = counter();
        let (b, waker_b) = counter();
        let counts = || (a.0.load(Ordering::Relaxed), b.0.load(Ordering::Relaxed));
        flag.waker().wake_by_ref();
        assert_eq!(counts(), (0, 0), "nobody polled yet");
        assert!(
            set.woken(&Context::from_waker(&waker_a)),
            "first look finds it woken"
        );
        flag.waker().wake_by_ref();
        assert_eq!(counts(), (1, 0));
        assert!(set.woken(&Context::from_waker(&waker_a)));
        assert!(
            !set.woken(&Context::from_waker(&waker_a)),
            "cleared by the look"
        );
        assert!(!set.woken(&Context::from_waker(&waker_b)));
        flag.waker().wake_by_ref();
        assert_eq!(counts(), (1, 1), "moved to b");
        assert!(set.woken(&Context::from_waker(&waker_a)));
        flag.waker().wake_by_ref();
        assert_eq!(counts(), (2, 1), "and back to a");
    }
}

#[cfg(all(test, madsim))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// A future that counts its polls and completes once told to.
    struct Counted {
        polls: Arc<AtomicUsize>,
        done: Arc<tokio::sync::Notify>,
    }

    /// Wrapped ctrl-c-like work is polled once, then only when it is woken, and still
    /// completes (and wakes its task) when what it waits on fires.
    #[test]
    fn work_is_polled_again_only_after_its_own_wake_up() {
        let runtime = madsim::runtime::Runtime::new();
        runtime.block_on(async {
            let counted = Counted {
                polls: Arc::new(AtomicUsize::new(0)),
                done: Arc::new(tokio::sync::Notify::new()),
            };
            let (polls, done) = (counted.polls.clone(), counted.done.clone());
            let waiting = async move {
                let notified = counted.done.notified();
                tokio::pin!(notified);
                std::future::poll_fn(|cx| {
                    counted.polls.fetch_add(1, Ordering::Relaxed);
                    notified.as_mut().poll(cx)
                })
                .await
            };
            let mut wrapped = OnWake::new(waiting);
            let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
            tokio::spawn(async move {
                for _ in 0..20 {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    let _ = tx.send(()).await;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                done.notify_one();
            });
            let mut messages = 0;
            loop {
                tokio::select! {
                    biased;
                    () = &mut wrapped => break,
                    Some(()) = rx.recv() => messages += 1,
                }
            }
            assert_eq!(messages, 20);
            // The first poll and the one after its wake-up, not one per message.
            assert_eq!(polls.load(Ordering::Relaxed), 2);
        });
    }
}
