//! Simulated capacity (seed 001's `--workers W --load-factor F`): W request slots
//! (unbounded when not given), and each client request holds one while it does F ms of
//! work on the node's own clock, then is handled. Requests beyond W queue, first come
//! first served, for a free slot. The `slow` fault stretches the work through the node's
//! [`Slowdown`] (the factor read when the work starts).
//!
//! The work is done once, by the node the client sent the request to: only client routes
//! come here (see [`super::Route`]), never replication, gossip, reads forwarded by a peer
//! or registry traffic.

use crate::runtime::{Clock, Slowdown};
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Worker slots, per-request work, and what they are doing.
pub struct Capacity {
    workers: Option<usize>,
    slots: Option<Arc<Semaphore>>,
    work: Duration,
    clock: Clock,
    slowdown: Slowdown,
    busy: AtomicUsize,
    queued: AtomicUsize,
    served: AtomicU64,
}

impl Capacity {
    /// `workers` slots (`None`: as many as come) doing `work` per request.
    pub fn new(workers: Option<usize>, work: Duration, clock: Clock, slowdown: Slowdown) -> Self {
        Capacity {
            workers,
            slots: workers.map(|w| Arc::new(Semaphore::new(w))),
            work,
            clock,
            slowdown,
            busy: AtomicUsize::new(0),
            queued: AtomicUsize::new(0),
            served: AtomicU64::new(0),
        }
    }

    /// True when there is nothing to model (no slots, no work): requests go straight on.
    pub fn is_unlimited(&self) -> bool {
        self.slots.is_none() && self.work.is_zero()
    }

    /// Waits for a slot, does the work, then runs `handle` while still holding the slot.
    pub async fn serve<T>(&self, handle: impl Future<Output = T>) -> T {
        self.queued.fetch_add(1, Ordering::Relaxed);
        let slot = match &self.slots {
            Some(slots) => slots.clone().acquire_owned().await.ok(),
            None => None,
        };
        self.queued.fetch_sub(1, Ordering::Relaxed);
        self.busy.fetch_add(1, Ordering::Relaxed);
        self.clock.sleep(self.slowdown.stretch(self.work)).await;
        let answer = handle.await;
        self.busy.fetch_sub(1, Ordering::Relaxed);
        self.served.fetch_add(1, Ordering::Relaxed);
        drop(slot);
        answer
    }

    /// `GET /queue-stats`'s capacity part.
    pub fn stats(&self) -> serde_json::Value {
        serde_json::json!({
            "workers": self.workers,
            "busy": self.busy.load(Ordering::Relaxed),
            "queued": self.queued.load(Ordering::Relaxed),
            "served": self.served.load(Ordering::Relaxed),
            "load_factor_ms": self.work.as_secs_f64() * 1e3,
            "slowdown": self.slowdown.factor(),
        })
    }
}

#[cfg(all(test, madsim))]
mod tests {
    use super::*;
    use tokio::time::Instant;

    /// One worker, 25 ms of work, three requests at once: they finish one after another
    /// at 25, 50 and 75 ms; at factor 4 the next one takes 100 ms.
    #[test]
    fn requests_queue_for_the_slots_and_the_slowdown_stretches_the_work() {
        let runtime = madsim::runtime::Runtime::new();
        runtime.block_on(async {
            let slowdown = Slowdown::new();
            let capacity = Arc::new(Capacity::new(
                Some(1),
                Duration::from_millis(25),
                Clock::new(),
                slowdown.clone(),
            ));
            let start = Instant::now();
            let tasks: Vec<_> = (0..3)
                .map(|_| {
                    let capacity = capacity.clone();
                    tokio::spawn(async move { capacity.serve(async { Instant::now() }).await })
                })
                .collect();
            tokio::time::sleep(Duration::from_millis(1)).await;
            assert_eq!(capacity.stats()["busy"], 1);
            assert_eq!(capacity.stats()["queued"], 2);
            let mut done = Vec::new();
            for task in tasks {
                done.push((task.await.unwrap() - start).as_millis());
            }
            done.sort(); // madsim starts spawned tasks in a seeded order
            assert_eq!(done, [25, 50, 75]);
            slowdown.set(4.0);
            let before = Instant::now();
            capacity.serve(async {}).await;
            assert_eq!(before.elapsed().as_millis(), 100);
            assert_eq!(capacity.stats()["served"], 4);
        });
    }
}
