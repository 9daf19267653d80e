//! The clock seam: what a node reads as "now".
//!
//! Each node owns a [`Clock`]. Its local monotonic time runs at `1 + drift` times the true
//! (runtime) rate, and its wall time is that plus a signed `offset`. Node code measures
//! every timeout on the local clock, so drift stretches or shrinks the node's own timers,
//! and stamps wall-clock versions with [`Clock::wall_ms`], so an offset moves them. In real
//! mode both are zero and this is the system clock; in simulation the harness keeps a clone
//! of each node's clock and changes drift and offset as `skew` faults say.

use crate::runtime::woken::{TaskWake, WakeFlag};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::{Instant, Sleep};

/// Where a deadline too far to represent is put: years of true time away.
const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 86_400);

/// A node's clock: shared between the node and (in simulation) the harness.
#[derive(Clone, Debug)]
pub struct Clock {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    model: Mutex<ClockModel>,
    /// Bumped whenever the drift changes, so a [`Timer`] knows when a local deadline it
    /// already mapped to true time still maps to the same instant.
    rate_epoch: AtomicU64,
    /// Whether the drift was ever set: until then local time is true time since
    /// `created`, read without the lock (a driver converts a time or two per message, and
    /// most clocks are never skewed).
    drifted: AtomicBool,
    /// True time when the clock was created (as in the model, which never changes it).
    created: Instant,
}

#[derive(Debug)]
struct ClockModel {
    /// True time at which the current drift took effect.
    base_true: Instant,
    /// Local monotonic reading at `base_true`.
    base_local: Duration,
    /// Extra rate: local time advances `1 + drift` times as fast as true time.
    drift: f64,
    /// Added to wall-clock readings only.
    offset_ms: i64,
    /// Wall-clock time (unix ms) when the clock was created.
    epoch_wall_ms: i64,
    /// True time when the clock was created.
    created: Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    /// A clock with no offset and no drift: the system clock (or the simulated one).
    pub fn new() -> Self {
        let epoch_wall_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let now = Instant::now();
        Clock {
            shared: Arc::new(Shared {
                model: Mutex::new(ClockModel {
                    created: now,
                    base_true: now,
                    base_local: Duration::ZERO,
                    drift: 0.0,
                    offset_ms: 0,
                    epoch_wall_ms,
                }),
                rate_epoch: AtomicU64::new(0),
                drifted: AtomicBool::new(false),
                created: now,
            }),
        }
    }

    fn model(&self) -> MutexGuard<'_, ClockModel> {
        // A poisoned clock only means a panic elsewhere; the numbers are still valid.
        self.shared.model.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Local monotonic time since the clock was created. Timeouts are measured on this.
    pub fn now(&self) -> Duration {
        self.at(Instant::now())
    }

    /// What the local monotonic clock read (or reads) at the true instant `at`: for a
    /// caller that has read the time already.
    pub fn at(&self, at: Instant) -> Duration {
        if !self.shared.drifted.load(Ordering::Acquire) {
            // The model's own arithmetic with its starting base: `created`, zero, no drift.
            return at.saturating_duration_since(self.shared.created);
        }
        self.model().local_at(at)
    }

    /// Local wall-clock time in unix milliseconds (offset and drift included).
    pub fn wall_ms(&self) -> i64 {
        let m = self.model();
        m.epoch_wall_ms + m.local_at(Instant::now()).as_millis() as i64 + m.offset_ms
    }

    /// True time in unix nanoseconds, without the offset and drift set on this clock: the
    /// system clock in real mode. Histories are stamped with it, so the events of every node
    /// share one time base whatever error a `skew` gives what the nodes read.
    pub fn true_unix_ns(&self) -> u64 {
        let m = self.model();
        let since = Instant::now().saturating_duration_since(m.created);
        (m.epoch_wall_ms.max(0) as u64)
            .saturating_mul(1_000_000)
            .saturating_add(since.as_nanos() as u64)
    }

    /// How much true time passes while `local` passes on this clock.
    pub fn true_duration(&self, local: Duration) -> Duration {
        let drift = self.model().drift;
        local.div_f64(1.0 + drift)
    }

    /// The true instant at which the local clock reads `deadline`, at the current drift
    /// (a deadline already passed maps to an instant already passed).
    pub fn true_instant(&self, deadline: Duration) -> Instant {
        if !self.shared.drifted.load(Ordering::Acquire) {
            return true_at(self.shared.created, deadline);
        }
        self.model().true_at(deadline)
    }

    /// A [`Timer`] on this clock, first due now: a future to poll anywhere.
    pub fn timer(&self) -> Timer {
        let task = TaskWake::new();
        let flag = task.flag();
        self.timer_with(Some(task), flag)
    }

    /// A [`Timer`] under `flag`, one of a set whose poller calls [`TaskWake::woken`] for the
    /// whole set (a driver's turn, see `turn`).
    pub fn timer_in(&self, flag: WakeFlag) -> Timer {
        self.timer_with(None, flag)
    }

    fn timer_with(&self, task: Option<TaskWake>, flag: WakeFlag) -> Timer {
        let now = Instant::now();
        Timer {
            clock: self.clone(),
            sleep: Box::pin(tokio::time::sleep_until(now)),
            due: now,
            mapped: None,
            armed: false,
            task,
            woken: flag,
        }
    }

    /// Sleeps for `local` time as this node perceives it.
    pub async fn sleep(&self, local: Duration) {
        tokio::time::sleep(self.true_duration(local)).await;
    }

    /// Sets the clock error: `offset_ms` replaces the wall-clock offset, `drift` the rate.
    /// Either may be left unchanged. Drift must be greater than -1.
    pub fn set_skew(&self, offset_ms: Option<i64>, drift: Option<f64>) {
        let mut m = self.model();
        if let Some(offset_ms) = offset_ms {
            m.offset_ms = offset_ms;
        }
        if let Some(drift) = drift {
            let now = Instant::now();
            m.base_local = m.local_at(now);
            m.base_true = now;
            m.drift = drift.max(-0.99);
            self.shared.drifted.store(true, Ordering::Release);
            self.shared.rate_epoch.fetch_add(1, Ordering::Release);
        }
    }

    /// The current (offset in ms, drift).
    pub fn skew(&self) -> (i64, f64) {
        let m = self.model();
        (m.offset_ms, m.drift)
    }
}

impl ClockModel {
    fn local_at(&self, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.base_true);
        if self.drift == 0.0 {
            return self.base_local + elapsed; // exact, and no float work on the hot path
        }
        self.base_local + elapsed.mul_f64(1.0 + self.drift)
    }

    fn true_at(&self, local: Duration) -> Instant {
        let ahead = local.saturating_sub(self.base_local);
        let ahead = if self.drift == 0.0 {
            ahead
        } else {
            ahead.div_f64(1.0 + self.drift)
        };
        true_at(self.base_true, ahead)
    }
}

/// `base` plus `ahead`, or far in the future when that is not representable.
fn true_at(base: Instant, ahead: Duration) -> Instant {
    base.checked_add(ahead).unwrap_or_else(|| base + FAR_FUTURE)
}

/// A node's timer on its local clock, kept across the iterations of a driver loop.
///
/// [`Timer::set`] moves it to a local deadline; polling it (`&mut timer` in a `select!`)
/// completes once that deadline is reached, and again on every poll until it is set to a
/// later one. It asks the runtime for a wake-up only when it must, not on every poll: a
/// driver polls its timer once per message, and a fresh timer per message (or the
/// simulator's sleep, which registers on every poll) cost more than the protocols it drove
/// (issue 16). A deadline moved later keeps the wake-up already asked for: a follower's
/// election deadline moves with every heartbeat, and the simulator cannot take a wake-up
/// back, so re-asking each time left one stale wake-up per heartbeat. Woken early, the
/// timer asks again for its deadline then.
pub struct Timer {
    clock: Clock,
    /// Its deadline is that of the wake-up asked for, at or before `due`.
    sleep: Pin<Box<Sleep>>,
    /// When the timer completes.
    due: Instant,
    /// The local deadline `due` was mapped from, and the clock's rate epoch then.
    mapped: Option<(Duration, u64)>,
    /// A wake-up is asked for at the sleep's deadline (and not yet come).
    armed: bool,
    /// Its own set (registers the polling task), or `None` when the poller looks at the
    /// set `woken` belongs to itself.
    task: Option<TaskWake>,
    /// Whether the wake-up asked for came: while it has not, a poll returns at once,
    /// without reading the simulated clock. The sleep is polled with its waker.
    woken: WakeFlag,
}

impl Timer {
    /// Makes the timer due when the local clock reads `deadline` (at the current drift).
    pub fn set(&mut self, deadline: Duration) {
        let epoch = self.clock.shared.rate_epoch.load(Ordering::Acquire);
        if self.mapped == Some((deadline, epoch)) {
            return; // the same deadline at the same rate: the same instant
        }
        self.mapped = Some((deadline, epoch));
        let at = self.clock.true_instant(deadline);
        if at == self.due {
            return;
        }
        self.due = at;
        // Later than the wake-up asked for: that wake-up comes first, and is kept.
        if self.armed && at > self.sleep.deadline() {
            return;
        }
        self.sleep.as_mut().reset(at);
        self.armed = false;
        // The new deadline is asked for on the next poll, which must come.
        self.woken.mark();
    }
}

impl Future for Timer {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        // Registers this task for the wake-up (a poll from another task moves it there).
        if let Some(task) = &mut this.task {
            task.woken(cx);
        }
        let came = this.woken.take();
        // A wake-up came, but perhaps a stale one (the deadline moved earlier since): the
        // wake-up for the sleep's deadline is still to come if that has not passed.
        if this.armed && (!came || !this.sleep.is_elapsed()) {
            return Poll::Pending;
        }
        if this.sleep.deadline() != this.due {
            // The wake-up asked for came: ask for the deadline.
            this.sleep.as_mut().reset(this.due);
        }
        let mut sleep_cx = Context::from_waker(this.woken.waker());
        match this.sleep.as_mut().poll(&mut sleep_cx) {
            Poll::Ready(()) => {
                this.armed = false;
                // Due on every poll until set later: the next one must look.
                this.woken.mark();
                Poll::Ready(())
            }
            Poll::Pending => {
                this.armed = true;
                Poll::Pending
            }
        }
    }
}

#[cfg(all(test, madsim))]
mod tests {
    use super::*;

    /// A timer set on a drifting clock fires when the local clock reads its deadline, is
    /// done at once when set again to a deadline passed, and moves with a later deadline.
    #[test]
    fn a_timer_fires_at_its_local_deadline_and_follows_resets() {
        let runtime = madsim::runtime::Runtime::new();
        runtime.block_on(async {
            let clock = Clock::new();
            clock.set_skew(None, Some(0.1));
            let start = Instant::now();
            let mut timer = clock.timer();
            timer.set(Duration::from_secs(10));
            (&mut timer).await;
            let waited = start.elapsed();
            let expected = Duration::from_secs(10).div_f64(1.1);
            assert!(
                waited.abs_diff(expected) < Duration::from_micros(1),
                "{waited:?}"
            );
            assert!(clock.now().abs_diff(Duration::from_secs(10)) < Duration::from_micros(1));
            // Set again to where it is: done without waiting.
            timer.set(Duration::from_secs(10));
            (&mut timer).await;
            assert_eq!(start.elapsed(), waited);
            // A later deadline, and the drift gone: one more local second is one second.
            clock.set_skew(None, Some(0.0));
            let local = clock.now();
            timer.set(local + Duration::from_secs(1));
            let polled = tokio::time::timeout(Duration::from_millis(999), &mut timer).await;
            assert!(polled.is_err(), "fired early");
            (&mut timer).await;
            assert!(
                start.elapsed().abs_diff(waited + Duration::from_secs(1))
                    < Duration::from_micros(1)
            );
        });
    }

    /// A timer polled again and again by a task woken for other reasons (a driver that
    /// receives messages) still wakes that task at its deadline.
    #[test]
    fn a_timer_polled_between_messages_still_wakes_its_task() {
        let runtime = madsim::runtime::Runtime::new();
        runtime.block_on(async {
            let clock = Clock::new();
            let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
            tokio::spawn(async move {
                for _ in 0..50 {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    let _ = tx.send(()).await;
                }
            });
            let start = Instant::now();
            let mut timer = clock.timer();
            timer.set(Duration::from_secs(2));
            let mut messages = 0;
            loop {
                tokio::select! {
                    biased;
                    _ = &mut timer => break,
                    Some(()) = rx.recv() => messages += 1,
                }
            }
            assert_eq!(messages, 50);
            // (The simulator adds nanoseconds of its own per step.)
            let waited = start.elapsed();
            let off = waited.abs_diff(Duration::from_secs(2));
            assert!(off < Duration::from_micros(1), "fired after {waited:?}");
        });
    }

    /// A deadline pushed later by every message (a follower's election deadline) fires at
    /// the last one, and wakes its task only every so often in between, not once per move.
    #[test]
    fn a_deadline_moved_later_keeps_its_wake_up() {
        let runtime = madsim::runtime::Runtime::new();
        runtime.block_on(async {
            let clock = Clock::new();
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
            tokio::spawn(async move {
                for _ in 0..20 {
                    tokio::time::sleep(Duration::from_millis(800)).await;
                    let _ = tx.send(());
                }
                std::future::pending::<()>().await;
            });
            let timeout = Duration::from_millis(2500);
            let start = Instant::now();
            let mut timer = clock.timer();
            timer.set(timeout);
            let mut polls = 0;
            std::future::poll_fn(|cx| {
                polls += 1;
                while let Poll::Ready(Some(())) = rx.poll_recv(cx) {
                    timer.set(clock.now() + timeout);
                }
                Pin::new(&mut timer).poll(cx)
            })
            .await;
            let fired = start.elapsed();
            let expected = Duration::from_millis(20 * 800) + timeout;
            assert!(
                fired.abs_diff(expected) < Duration::from_millis(1),
                "{fired:?}"
            );
            // One poll per message, and about one per timeout for the wake-ups kept
            // (asking anew at every move: one more per message).
            assert!(polls <= 1 + 20 + 9, "{polls} polls");
        });
    }

    /// The same local deadline set again after the drift changed maps to a new instant.
    #[test]
    fn a_deadline_set_again_follows_a_new_drift() {
        let runtime = madsim::runtime::Runtime::new();
        runtime.block_on(async {
            let clock = Clock::new();
            let start = Instant::now();
            let mut timer = clock.timer();
            timer.set(Duration::from_secs(10));
            // The local clock now runs twice as fast: its 10 s come after 5 true seconds.
            clock.set_skew(None, Some(1.0));
            timer.set(Duration::from_secs(10));
            (&mut timer).await;
            let waited = start.elapsed();
            assert!(
                waited.abs_diff(Duration::from_secs(5)) < Duration::from_millis(1),
                "{waited:?}"
            );
        });
    }
}
