//! What the balancer knows about each backend, and the `GET /lb-stats` view of it.

use serde::Serialize;
use std::net::SocketAddr;
use std::time::Duration;

/// Latency samples kept per backend for the percentiles (the most recent ones).
pub const RECENT_SAMPLES: usize = 1024;

/// Response times of one backend: a running mean over every answer, and percentiles over
/// the most recent [`RECENT_SAMPLES`].
#[derive(Clone, Debug, Default)]
pub struct Latencies {
    /// Microseconds, a ring of at most [`RECENT_SAMPLES`].
    recent: Vec<u64>,
    /// Where the next sample goes once the ring is full.
    next: usize,
    count: u64,
    total_us: u128,
}

impl Latencies {
    /// Adds one answer's response time.
    pub fn record(&mut self, took: Duration) {
        let us = took.as_micros().min(u64::MAX as u128) as u64;
        self.count += 1;
        self.total_us += us as u128;
        if self.recent.len() < RECENT_SAMPLES {
            self.recent.push(us);
        } else {
            self.recent[self.next] = us;
            self.next = (self.next + 1) % RECENT_SAMPLES;
        }
    }

    /// The summary `/lb-stats` shows; `None` before the first answer.
    pub fn summary(&self) -> Option<LatencySummary> {
        if self.count == 0 {
            return None;
        }
        let mut sorted = self.recent.clone();
        sorted.sort_unstable();
        let ms = |us: u64| us as f64 / 1000.0;
        Some(LatencySummary {
            answers: self.count,
            mean_ms: ms((self.total_us / self.count as u128) as u64),
            p50_ms: ms(percentile(&sorted, 50.0)),
            p99_ms: ms(percentile(&sorted, 99.0)),
            max_recent_ms: ms(sorted.last().copied().unwrap_or(0)),
            recent: sorted.len(),
        })
    }
}

/// Nearest-rank percentile of sorted, non-empty samples.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Response times as `/lb-stats` shows them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Answers measured so far.
    pub answers: u64,
    /// Mean over every answer.
    pub mean_ms: f64,
    /// Median of the recent answers.
    pub p50_ms: f64,
    /// 99th percentile of the recent answers.
    pub p99_ms: f64,
    /// Slowest recent answer.
    pub max_recent_ms: f64,
    /// How many recent answers the percentiles cover.
    pub recent: usize,
}

/// One backend as the balancer sees it.
#[derive(Clone, Debug)]
pub struct BackendState {
    /// Its name (`n2`, or its address in real mode).
    pub name: String,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Whether requests go to it (health checks and failed connects decide).
    pub healthy: bool,
    /// Why it is down, when it is.
    pub down_reason: Option<String>,
    /// Requests forwarded and not yet answered.
    pub in_flight: usize,
    /// Requests forwarded (attempts, retries included).
    pub requests: u64,
    /// Forwarded requests that got no answer (could not connect, broke, timed out).
    pub failures: u64,
    /// Health checks done.
    pub health_checks: u64,
    /// Response times of its answers.
    pub latency: Latencies,
}

impl BackendState {
    /// A backend taken for up until a check says otherwise.
    pub fn new(name: String, addr: SocketAddr) -> BackendState {
        BackendState {
            name,
            addr,
            healthy: true,
            down_reason: None,
            in_flight: 0,
            requests: 0,
            failures: 0,
            health_checks: 0,
            latency: Latencies::default(),
        }
    }

    /// The `/lb-stats` entry.
    pub fn view(&self) -> BackendView {
        BackendView {
            name: self.name.clone(),
            address: self.addr.to_string(),
            healthy: self.healthy,
            down_reason: self.down_reason.clone(),
            in_flight: self.in_flight,
            requests: self.requests,
            failures: self.failures,
            health_checks: self.health_checks,
            latency: self.latency.summary(),
        }
    }
}

/// One backend in `GET /lb-stats`.
#[derive(Clone, Debug, Serialize)]
pub struct BackendView {
    /// Its name.
    pub name: String,
    /// Its address.
    pub address: String,
    /// Whether requests go to it.
    pub healthy: bool,
    /// Why it is down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub down_reason: Option<String>,
    /// Requests in flight now.
    pub in_flight: usize,
    /// Requests forwarded so far.
    pub requests: u64,
    /// Of those, how many got no answer.
    pub failures: u64,
    /// Health checks done.
    pub health_checks: u64,
    /// Response times (absent before the first answer).
    pub latency: Option<LatencySummary>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_cover_the_recent_answers_and_the_mean_every_answer() {
        let mut latencies = Latencies::default();
        assert_eq!(latencies.summary(), None);
        for ms in 1..=100 {
            latencies.record(Duration::from_millis(ms));
        }
        let summary = latencies.summary().unwrap();
        assert_eq!(summary.answers, 100);
        assert_eq!(summary.p50_ms, 50.0);
        assert_eq!(summary.p99_ms, 99.0);
        assert_eq!(summary.max_recent_ms, 100.0);
        assert_eq!(summary.mean_ms, 50.5);
        // A full ring forgets the oldest samples for the percentiles, not for the mean.
        for _ in 0..RECENT_SAMPLES {
            latencies.record(Duration::from_millis(2));
        }
        let summary = latencies.summary().unwrap();
        assert_eq!(summary.recent, RECENT_SAMPLES);
        assert_eq!(summary.p99_ms, 2.0);
        assert!(summary.mean_ms > 2.0, "{summary:?}");
    }
}
