//! The slowdown seam: how much slower than normal a node does its simulated work.
//!
//! A KV node with `load_factor` spends that long on each client request (seed 001's
//! `--load-factor`); the `slow` fault multiplies it, the degraded server that starts most
//! cascading failures. Like the [`super::Clock`], the handle is shared: the harness keeps a
//! clone of each server's and sets the factor when a `slow` fault says so, and it survives
//! the node's restarts. In real mode the node rereads it from its `--slow-control` file,
//! which the `sim real` runner writes for the same `slow` fault (factor 1 without one).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A node's work-time multiplier (at least 1), shared between the node and the harness.
#[derive(Clone, Debug)]
pub struct Slowdown(Arc<AtomicU64>);

impl Default for Slowdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Slowdown {
    /// Factor 1: work takes as long as configured.
    pub fn new() -> Self {
        Slowdown(Arc::new(AtomicU64::new(1.0f64.to_bits())))
    }

    /// The current factor.
    pub fn factor(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }

    /// Sets the factor; values below 1 (or not finite) count as 1.
    pub fn set(&self, factor: f64) {
        let factor = if factor.is_finite() && factor > 1.0 {
            factor
        } else {
            1.0
        };
        self.0.store(factor.to_bits(), Ordering::Relaxed);
    }

    /// How long `work` takes at the current factor.
    pub fn stretch(&self, work: Duration) -> Duration {
        work.mul_f64(self.factor())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_factor_and_it_never_drops_below_one() {
        let node = Slowdown::new();
        let harness = node.clone();
        assert_eq!(
            node.stretch(Duration::from_millis(25)),
            Duration::from_millis(25)
        );
        harness.set(4.0);
        assert_eq!(
            node.stretch(Duration::from_millis(25)),
            Duration::from_millis(100)
        );
        harness.set(0.5);
        assert_eq!(node.factor(), 1.0);
        harness.set(f64::NAN);
        assert_eq!(node.factor(), 1.0);
    }
}
