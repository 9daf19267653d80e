//! The clock seam: what a node reads as "now".
//!
//! Each node owns a [`Clock`]. Its local monotonic time runs at `1 + drift` times the true
//! (runtime) rate, and its wall time is that plus a signed `offset`. Node code measures
//! every timeout on the local clock, so drift stretches or shrinks the node's own timers,
//! and stamps wall-clock versions with [`Clock::wall_ms`], so an offset moves them. In real
//! mode both are zero and this is the system clock; in simulation the harness keeps a clone
//! of each node's clock and changes drift and offset as `skew` faults say.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// A node's clock: shared between the node and (in simulation) the harness.
#[derive(Clone, Debug)]
pub struct Clock {
    model: Arc<Mutex<ClockModel>>,
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
            model: Arc::new(Mutex::new(ClockModel {
                created: now,
                base_true: now,
                base_local: Duration::ZERO,
                drift: 0.0,
                offset_ms: 0,
                epoch_wall_ms,
            })),
        }
    }

    fn model(&self) -> MutexGuard<'_, ClockModel> {
        // A poisoned clock only means a panic elsewhere; the numbers are still valid.
        self.model.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Local monotonic time since the clock was created. Timeouts are measured on this.
    pub fn now(&self) -> Duration {
        let m = self.model();
        m.local_at(Instant::now())
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

    /// Sleeps until the local clock reads `deadline` (returns at once if it already does).
    pub async fn sleep_until(&self, deadline: Duration) {
        let remaining = deadline.saturating_sub(self.now());
        tokio::time::sleep(self.true_duration(remaining)).await;
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
        self.base_local + elapsed.mul_f64(1.0 + self.drift)
    }
}
