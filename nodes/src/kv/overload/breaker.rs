//! Circuit breakers on a node's calls to its peers (seed 001's `--circuit-breaker`).
//!
//! One breaker per peer around replication and gossip calls: CLOSED counts consecutive
//! failed calls and opens after `breaker_failures`; OPEN refuses every call at once for
//! `breaker_cooldown`; then the next call is the one HALF_OPEN probe (every other call is
//! still refused while it is out), which closes the breaker if it succeeds and opens it
//! again if not. A refused call was never sent: replication counts it as a copy not made
//! (the write's quorum stays honest) and anti-entropy repairs the peer once it answers.
//!
//! Hand-written rather than failsafe 1.3: failsafe cannot report a breaker's failure count
//! or when it last changed (`/circuit-status` shows both), lets every call through while
//! half open instead of one probe, and times its cooldown on `std::time::Instant` rather
//! than on the node's own [`Clock`]. [`Breaker`] is a plain state machine over local time,
//! so it is tested without a network; [`Breakers`] stamps its transitions and emits them
//! as [`NodeEvent::Breaker`].

use crate::http::CallError;
use crate::runtime::{BreakerState, Clock, EventSink, NodeEvent};
use serde::Serialize;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Default consecutive failures that open a breaker (DESIGN: 5).
pub const DEFAULT_FAILURES: u32 = 5;
/// Default time a breaker stays OPEN before its probe (DESIGN: 5 s).
pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(5);

/// When breakers open and how long they stay open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failed calls that open the breaker (at least 1).
    pub failures: u32,
    /// Local time OPEN before the HALF_OPEN probe.
    pub cooldown: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failures: DEFAULT_FAILURES,
            cooldown: DEFAULT_COOLDOWN,
        }
    }
}

/// What a breaker says to a call that asks to go out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// Go (CLOSED).
    Call,
    /// Go as the one HALF_OPEN probe: its outcome decides the state.
    Probe,
    /// Refused at once (OPEN, or a probe is already out).
    Refuse,
}

/// A state change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    /// The state left.
    pub from: BreakerState,
    /// The state entered.
    pub to: BreakerState,
}

/// One peer's breaker, on the node's local monotonic time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Breaker {
    state: BreakerState,
    /// Consecutive failed calls (kept while OPEN, so the status shows what opened it).
    failures: u32,
    /// Local time the breaker last opened.
    opened_at: Duration,
    /// The HALF_OPEN probe is out.
    probing: bool,
    /// Calls refused so far.
    rejected: u64,
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker {
            state: BreakerState::Closed,
            failures: 0,
            opened_at: Duration::ZERO,
            probing: false,
            rejected: 0,
        }
    }
}

impl Breaker {
    /// The current state.
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Consecutive failed calls.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    fn go(&mut self, to: BreakerState) -> Option<Transition> {
        let from = std::mem::replace(&mut self.state, to);
        (from != to).then_some(Transition { from, to })
    }

    /// Asks to send a call at local time `now`; OPEN turns HALF_OPEN once the cooldown
    /// is over (lazily, on the first call after it).
    pub fn admit(&mut self, config: &BreakerConfig, now: Duration) -> (Admit, Option<Transition>) {
        match self.state {
            BreakerState::Closed => (Admit::Call, None),
            BreakerState::Open if now >= self.opened_at + config.cooldown => {
                self.probing = true;
                (Admit::Probe, self.go(BreakerState::HalfOpen))
            }
            BreakerState::HalfOpen if !self.probing => {
                self.probing = true;
                (Admit::Probe, None)
            }
            BreakerState::Open | BreakerState::HalfOpen => {
                self.rejected += 1;
                (Admit::Refuse, None)
            }
        }
    }

    /// Records the outcome of an admitted call (`probe` as [`Admit::Probe`] said). Late
    /// outcomes of calls admitted before the breaker opened change nothing.
    pub fn record(
        &mut self,
        config: &BreakerConfig,
        probe: bool,
        failed: bool,
        now: Duration,
    ) -> Option<Transition> {
        match (self.state, probe) {
            (BreakerState::Closed, _) if failed => {
                self.failures = self.failures.saturating_add(1);
                if self.failures >= config.failures {
                    self.opened_at = now;
                    return self.go(BreakerState::Open);
                }
                None
            }
            (BreakerState::Closed, _) => {
                self.failures = 0;
                None
            }
            (BreakerState::HalfOpen, true) => {
                self.probing = false;
                if failed {
                    self.failures = self.failures.saturating_add(1);
                    self.opened_at = now;
                    self.go(BreakerState::Open)
                } else {
                    self.failures = 0;
                    self.go(BreakerState::Closed)
                }
            }
            _ => None,
        }
    }
}

/// Whether a peer call's error says the peer is unwell (no answer, or a 5xx); a 4xx is
/// an answer from a live peer.
pub fn is_failure(error: &CallError) -> bool {
    match error {
        CallError::Unreachable(_) | CallError::NoAnswer(_) | CallError::Timeout(_) => true,
        CallError::Status(code, _) => *code >= 500,
    }
}

/// The last transition of one breaker, for `/circuit-status`.
#[derive(Clone, Copy, Debug)]
struct Stamp {
    transition: Transition,
    local: Duration,
    wall_ms: i64,
}

struct Inner {
    config: BreakerConfig,
    clock: Clock,
    events: EventSink,
    peers: Mutex<BTreeMap<String, (Breaker, Option<Stamp>)>>,
}

/// Every peer's breaker; clones share them. [`Breakers::off`] lets every call through.
#[derive(Clone)]
pub struct Breakers(Option<Arc<Inner>>);

impl Breakers {
    /// No breakers (`circuit_breaker = false`): calls go straight out.
    pub fn off() -> Self {
        Breakers(None)
    }

    /// Breakers on `clock`, reporting transitions to `events`.
    pub fn new(config: BreakerConfig, clock: Clock, events: EventSink) -> Self {
        Breakers(Some(Arc::new(Inner {
            config,
            clock,
            events,
            peers: Mutex::default(),
        })))
    }

    fn peers(inner: &Inner) -> MutexGuard<'_, BTreeMap<String, (Breaker, Option<Stamp>)>> {
        inner.peers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes sure `peer` has a breaker, so the status lists it before its first call.
    pub fn know(&self, peer: &str) {
        if let Some(inner) = &self.0 {
            Self::peers(inner).entry(peer.to_string()).or_default();
        }
    }

    /// Runs `call` to `peer` through its breaker: refused at once when OPEN (an
    /// `Unreachable` error: nothing was sent), else sent and its outcome recorded.
    pub async fn call<T>(
        &self,
        peer: &str,
        call: impl Future<Output = Result<T, CallError>>,
    ) -> Result<T, CallError> {
        let Some(inner) = &self.0 else {
            return call.await;
        };
        let probe = match inner.admit(peer) {
            Admit::Refuse => {
                return Err(CallError::Unreachable(format!(
                    "circuit breaker for {peer} is open"
                )))
            }
            admit => admit == Admit::Probe,
        };
        let mut ticket = Ticket {
            inner,
            peer,
            probe,
            done: false,
        };
        let result = call.await;
        ticket.done = true;
        inner.record(peer, probe, result.as_ref().err().is_some_and(is_failure));
        result
    }

    /// `GET /circuit-status`: each peer's state, failure count and last transition.
    pub fn status(&self) -> serde_json::Value {
        let Some(inner) = &self.0 else {
            return serde_json::json!({ "enabled": false, "peers": {} });
        };
        let now = inner.clock.now();
        let peers: BTreeMap<String, PeerStatus> = Self::peers(inner)
            .iter()
            .map(|(peer, (breaker, stamp))| {
                let open_for = (breaker.state == BreakerState::Open)
                    .then(|| (breaker.opened_at + inner.config.cooldown).saturating_sub(now));
                let status = PeerStatus {
                    state: breaker.state,
                    failures: breaker.failures,
                    rejected: breaker.rejected,
                    probe_in_ms: open_for.map(|d| d.as_millis() as u64),
                    last_transition: stamp.map(|s| LastTransition {
                        from: s.transition.from,
                        to: s.transition.to,
                        wall_ms: s.wall_ms,
                        ago_ms: now.saturating_sub(s.local).as_millis() as u64,
                    }),
                };
                (peer.clone(), status)
            })
            .collect();
        serde_json::json!({
            "enabled": true,
            "failure_threshold": inner.config.failures,
            "cooldown_ms": inner.config.cooldown.as_millis() as u64,
            "peers": peers,
        })
    }
}

impl Inner {
    fn admit(&self, peer: &str) -> Admit {
        let now = self.clock.now();
        let (admit, change) = {
            let mut peers = Breakers::peers(self);
            let (breaker, stamp) = peers.entry(peer.to_string()).or_default();
            let (admit, change) = breaker.admit(&self.config, now);
            let change = change.map(|t| (t, breaker.failures));
            self.stamp(stamp, change.map(|(t, _)| t), now);
            (admit, change)
        };
        self.report(peer, change);
        admit
    }

    fn record(&self, peer: &str, probe: bool, failed: bool) {
        let now = self.clock.now();
        let change = {
            let mut peers = Breakers::peers(self);
            let (breaker, stamp) = peers.entry(peer.to_string()).or_default();
            let change = breaker.record(&self.config, probe, failed, now);
            self.stamp(stamp, change, now);
            change.map(|t| (t, breaker.failures))
        };
        self.report(peer, change);
    }

    fn stamp(&self, stamp: &mut Option<Stamp>, change: Option<Transition>, now: Duration) {
        if let Some(transition) = change {
            *stamp = Some(Stamp {
                transition,
                local: now,
                wall_ms: self.clock.wall_ms(),
            });
        }
    }

    /// Emits a transition (outside the lock).
    fn report(&self, peer: &str, change: Option<(Transition, u32)>) {
        if let Some((t, failures)) = change {
            self.events.emit(NodeEvent::Breaker {
                peer: peer.to_string(),
                from: t.from,
                to: t.to,
                failures,
            });
        }
    }
}

/// An admitted call; a probe dropped before its outcome (its task was cancelled) counts
/// as failed, so the breaker never waits forever on a probe that will not come back.
struct Ticket<'a> {
    inner: &'a Inner,
    peer: &'a str,
    probe: bool,
    done: bool,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if !self.done && self.probe {
            self.inner.record(self.peer, true, true);
        }
    }
}

#[derive(Serialize)]
struct PeerStatus {
    state: BreakerState,
    failures: u32,
    rejected: u64,
    /// OPEN: local ms until the next call may probe (0: the next call will).
    #[serde(skip_serializing_if = "Option::is_none")]
    probe_in_ms: Option<u64>,
    last_transition: Option<LastTransition>,
}

#[derive(Serialize)]
struct LastTransition {
    from: BreakerState,
    to: BreakerState,
    /// The node's wall clock at the change (unix ms).
    wall_ms: i64,
    /// Local ms since the change.
    ago_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use BreakerState::*;

    const CONFIG: BreakerConfig = BreakerConfig {
        failures: 3,
        cooldown: Duration::from_secs(5),
    };

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn closed_opens_after_consecutive_failures_and_a_success_resets_the_count() {
        let mut b = Breaker::default();
        for _ in 0..2 {
            assert_eq!(b.admit(&CONFIG, s(0)), (Admit::Call, None));
            assert_eq!(b.record(&CONFIG, false, true, s(0)), None);
        }
        b.record(&CONFIG, false, false, s(0));
        assert_eq!((b.state(), b.failures()), (Closed, 0), "a success resets");
        b.record(&CONFIG, false, true, s(1));
        b.record(&CONFIG, false, true, s(1));
        let opened = b.record(&CONFIG, false, true, s(1));
        assert_eq!(
            opened,
            Some(Transition {
                from: Closed,
                to: Open
            })
        );
        assert_eq!(b.failures(), 3);
    }

    #[test]
    fn open_refuses_until_the_cooldown_then_one_probe_decides() {
        let mut b = Breaker::default();
        for _ in 0..3 {
            b.record(&CONFIG, false, true, s(10));
        }
        assert_eq!(b.admit(&CONFIG, s(14)), (Admit::Refuse, None));
        // A late success of a call sent before it opened does not close it.
        assert_eq!(b.record(&CONFIG, false, false, s(14)), None);
        assert_eq!(b.state(), Open);
        let (admit, change) = b.admit(&CONFIG, s(15));
        assert_eq!(admit, Admit::Probe);
        assert_eq!(
            change,
            Some(Transition {
                from: Open,
                to: HalfOpen
            })
        );
        // While the probe is out, every other call is refused.
        assert_eq!(b.admit(&CONFIG, s(15)), (Admit::Refuse, None));
        // The probe fails: OPEN again, for a whole new cooldown.
        let reopened = b.record(&CONFIG, true, true, s(16));
        assert_eq!(
            reopened,
            Some(Transition {
                from: HalfOpen,
                to: Open
            })
        );
        assert_eq!(b.admit(&CONFIG, s(20)).0, Admit::Refuse);
        assert_eq!(b.admit(&CONFIG, s(21)).0, Admit::Probe);
        let closed = b.record(&CONFIG, true, false, s(21));
        assert_eq!(
            closed,
            Some(Transition {
                from: HalfOpen,
                to: Closed
            })
        );
        assert_eq!((b.failures(), b.admit(&CONFIG, s(21)).0), (0, Admit::Call));
        assert_eq!(b.rejected, 3);
    }

    #[test]
    fn only_unanswered_calls_and_server_errors_are_failures() {
        assert!(is_failure(&CallError::Unreachable("refused".into())));
        assert!(is_failure(&CallError::NoAnswer("reset".into())));
        assert!(is_failure(&CallError::Timeout(Duration::from_secs(1))));
        assert!(is_failure(&CallError::Status(503, String::new())));
        assert!(!is_failure(&CallError::Status(400, String::new())));
    }

    /// The whole cycle under madsim time, through [`Breakers::call`], with the transitions
    /// as the node reports them.
    #[cfg(madsim)]
    #[test]
    fn breakers_cycle_on_the_nodes_clock_and_report_each_transition() {
        let runtime = madsim::runtime::Runtime::new();
        let events = runtime.block_on(async {
            let seen = Arc::new(Mutex::new(Vec::new()));
            let sink = {
                let seen = seen.clone();
                EventSink::new(move |e| seen.lock().unwrap().push(e))
            };
            let breakers = Breakers::new(CONFIG, Clock::new(), sink);
            let down = || async { Err::<(), _>(CallError::NoAnswer("timeout".into())) };
            for _ in 0..3 {
                assert!(breakers.call("n2", down()).await.is_err());
            }
            let refused = breakers.call("n2", async { Ok(()) }).await;
            assert!(matches!(refused, Err(CallError::Unreachable(m)) if m.contains("open")));
            assert_eq!(breakers.status()["peers"]["n2"]["state"], "OPEN");
            tokio::time::sleep(CONFIG.cooldown).await;
            assert_eq!(breakers.call("n2", async { Ok(()) }).await, Ok(()));
            let status = breakers.status();
            assert_eq!(status["peers"]["n2"]["state"], "CLOSED");
            assert_eq!(
                status["peers"]["n2"]["last_transition"]["from"],
                "HALF_OPEN"
            );
            let events = seen.lock().unwrap().clone();
            events
        });
        let changes: Vec<(BreakerState, BreakerState)> = events
            .iter()
            .filter_map(|e| match e {
                NodeEvent::Breaker { from, to, .. } => Some((*from, *to)),
                _ => None,
            })
            .collect();
        assert_eq!(
            changes,
            [(Closed, Open), (Open, HalfOpen), (HalfOpen, Closed)]
        );
    }
}
