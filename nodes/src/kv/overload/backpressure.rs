//! Backpressure (seed 001's `--backpressure N`): at most N client requests in flight at
//! once; one more is refused with a 429 at once instead of waiting in a queue that only
//! grows. A request stays in flight until its work is done, queueing for a worker slot
//! included, even if its client gave up meanwhile: that is the load the node carries.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The in-flight limit and its counters.
pub struct Backpressure {
    limit: usize,
    slots: Arc<Semaphore>,
    admitted: AtomicU64,
    rejected: AtomicU64,
    peak: AtomicUsize,
}

impl Backpressure {
    /// At most `limit` requests in flight.
    pub fn new(limit: usize) -> Self {
        Backpressure {
            limit,
            slots: Arc::new(Semaphore::new(limit)),
            admitted: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            peak: AtomicUsize::new(0),
        }
    }

    /// A place in flight, held until dropped, or `None`: refuse the request.
    pub fn admit(&self) -> Option<OwnedSemaphorePermit> {
        match self.slots.clone().try_acquire_owned() {
            Ok(permit) => {
                self.admitted.fetch_add(1, Ordering::Relaxed);
                self.peak.fetch_max(self.in_flight(), Ordering::Relaxed);
                Some(permit)
            }
            Err(_) => {
                self.rejected.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> usize {
        self.limit - self.slots.available_permits()
    }

    /// `GET /queue-stats`'s backpressure part.
    pub fn stats(&self) -> serde_json::Value {
        serde_json::json!({
            "limit": self.limit,
            "in_flight": self.in_flight(),
            "peak_in_flight": self.peak.load(Ordering::Relaxed),
            "admitted": self.admitted.load(Ordering::Relaxed),
            "rejected": self.rejected.load(Ordering::Relaxed),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_past_the_limit_is_refused_and_a_finished_request_frees_its_place() {
        let bp = Backpressure::new(2);
        let first = bp.admit().expect("1 of 2");
        let _second = bp.admit().expect("2 of 2");
        assert!(bp.admit().is_none(), "a third is refused at once");
        drop(first);
        assert!(bp.admit().is_some(), "a place came free");
        let stats = bp.stats();
        assert_eq!(stats["admitted"], 3);
        assert_eq!(stats["rejected"], 1);
        assert_eq!(stats["peak_in_flight"], 2);
        assert_eq!(
            stats["in_flight"], 1,
            "the third's permit was dropped at once"
        );
    }
}
