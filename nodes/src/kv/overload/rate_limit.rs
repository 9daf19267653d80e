//! Token bucket per client (seed 001's `--rate-limit N`): each client source address
//! gets N requests a second with a burst of N; past it, 429 with a `Retry-After`.
//!
//! governor's keyed GCRA limiter does the counting. Its clock is the node's own [`Clock`]
//! (local monotonic time, so drift reaches it as it reaches every other timer of the
//! node): governor's default clock (quanta) hangs under madsim. A client is its IP
//! address, not its port: curl opens a new port for every request.

use crate::runtime::Clock;
use governor::clock::Clock as GovernorClock;
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// governor's view of the node's clock: local monotonic time since the clock began.
#[derive(Clone, Debug)]
pub struct NodeClock(pub Clock);

impl GovernorClock for NodeClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        self.0.now()
    }
}

type Limiter = RateLimiter<IpAddr, DashMapStateStore<IpAddr>, NodeClock, NoOpMiddleware<Duration>>;

/// Clients tracked before idle ones are forgotten (a bucket that refilled is no different
/// from a fresh one, so forgetting it changes no answer).
const FORGET_ABOVE: usize = 10_000;

/// The per-client limiter and what it refused.
pub struct RateLimit {
    per_second: NonZeroU32,
    limiter: Limiter,
    clock: NodeClock,
    rejected: AtomicU64,
}

impl RateLimit {
    /// `per_second` requests a second per client, burst the same.
    pub fn new(per_second: NonZeroU32, clock: Clock) -> Self {
        let clock = NodeClock(clock);
        RateLimit {
            per_second,
            limiter: RateLimiter::dashmap_with_clock(Quota::per_second(per_second), clock.clone()),
            clock,
            rejected: AtomicU64::new(0),
        }
    }

    /// `Ok` if `client` may go on now, else how long until it may (local time).
    pub fn check(&self, client: IpAddr) -> Result<(), Duration> {
        if self.limiter.len() > FORGET_ABOVE {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(&client).map_err(|not_until| {
            self.rejected.fetch_add(1, Ordering::Relaxed);
            not_until.wait_time_from(self.clock.now())
        })
    }

    /// Requests refused so far.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// The limit, requests per second per client.
    pub fn per_second(&self) -> u32 {
        self.per_second.get()
    }
}

/// `Retry-After` in whole seconds (the header has no fractions), at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs_f64().ceil() as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(333)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
    }

    /// Seed 001's loop at `--rate-limit 3` under madsim time: three pass, the rest wait a
    /// third of a second for the next token; another client has a bucket of its own.
    #[cfg(madsim)]
    #[test]
    fn a_client_gets_its_burst_then_one_token_per_period_and_others_are_unaffected() {
        let runtime = madsim::runtime::Runtime::new();
        runtime.block_on(async {
            let limit = RateLimit::new(NonZeroU32::new(3).unwrap(), Clock::new());
            let (a, b): (IpAddr, IpAddr) =
                ("10.0.1.1".parse().unwrap(), "10.0.1.2".parse().unwrap());
            let answers: Vec<bool> = (0..10).map(|_| limit.check(a).is_ok()).collect();
            assert_eq!(
                answers,
                [true, true, true, false, false, false, false, false, false, false]
            );
            let wait = limit.check(a).unwrap_err();
            assert!(
                wait > Duration::from_millis(300) && wait <= Duration::from_millis(334),
                "{wait:?}"
            );
            assert!(limit.check(b).is_ok(), "another client has its own bucket");
            tokio::time::sleep(wait).await;
            assert!(limit.check(a).is_ok(), "a token came back after the wait");
            assert!(limit.check(a).is_err());
            tokio::time::sleep(Duration::from_secs(1)).await;
            let refilled = (0..4).filter(|_| limit.check(a).is_ok()).count();
            assert_eq!(refilled, 3, "after a second idle, a whole burst again");
            assert_eq!(limit.rejected(), 10);
        });
    }
}
