//! The KV workload: each client reads or writes (by `read_ratio`) a random key of `keys`
//! on a random server (or through the balancer `lb`, with `via = "lb"`) at its share of
//! `rate`. Every written value is unique (`c2-17`), so a
//! value names its write. A client carries its own hybrid logical clock
//! ([`ClientClock`]): every write is sent with the client's name and a context past every
//! version the client has read or sent, so a correct store orders the write after
//! everything the client observed *and* after its own earlier writes, answered or not.
//!
//! Outcomes: a write is `ok` when acknowledged, `fail` when it was certainly not stored
//! (never sent, a 4xx such as a 429), `info` otherwise (timeout, 5xx, or fewer copies than
//! the write quorum: it is stored somewhere and may still win). A read is `ok` with the
//! value (or none), else `fail` (a read that got no answer changed nothing). Completions
//! carry the answering server and the version it reported as typed fields of the history.
//!
//! The overload client model (`[workload] timeout`, `retries`, `retry_backoff`,
//! `arrival`): an attempt waits at most `timeout`; after a timeout, a 429, a 5xx or a
//! refused connection the operation tries again, up to `retries` more times, each time on
//! a freshly drawn server, at once or after a fully jittered exponential pause. The retries
//! of a write resend the same context, so every attempt carries the same version and a
//! late-arriving attempt cannot reorder it. With `arrival = "open"` each operation is its
//! own task started on the pacer's beat, however many are still outstanding.

use super::{Pacer, Share};
use crate::addresses::Addresses;
use crate::history::{Attempt, AttemptResult, OpEvent, OpType, Recorder, What};
use crate::scenario::{Arrival, Backoff, Via, Workload};
use nodes::http::CallError;
use nodes::kv::client::{get_through, put_through, PutOutcome};
use nodes::kv::version::ClientClock;
use nodes::kv::Version;
use nodes::pool::Pool;
use nodes::runtime::Clock;
use nodes::runtime::WireTap;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Timeout of one request when the workload gives no `timeout`.
pub const REQUEST_TIMEOUT: Duration = crate::scenario::DEFAULT_REQUEST_TIMEOUT;
/// Timeout of one final read, and how many times it is tried.
pub const FINAL_READ_TIMEOUT: Duration = Duration::from_secs(8);
/// Attempts per final read.
pub const FINAL_READ_ATTEMPTS: usize = 3;

/// The value written on the wire for the write named `name`: the name, then filler up to
/// `size` bytes (`[workload] value_size`), so stores are as large as real ones while the
/// history keeps naming each write by its short name.
pub fn padded(name: &str, size: usize) -> String {
    let mut value = String::with_capacity(size.max(name.len()));
    value.push_str(name);
    if size > name.len() {
        value.push('#');
        value.extend(std::iter::repeat_n('.', size - name.len() - 1));
    }
    value
}

/// The write's name in a value read back: the inverse of [`padded`]; a value that is not
/// exactly a padded name (a value no client wrote) is returned whole.
pub fn name_of(value: &str, size: usize) -> &str {
    let name = value.split_once('#').map_or(value, |(name, _)| name);
    if padded(name, size) == value {
        name
    } else {
        value
    }
}

/// How a client treats one operation's attempts (from `[workload]`).
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// How long one attempt waits for its answer.
    pub timeout: Duration,
    /// Whether `timeout` bounds the whole attempt (connect and exchange together); without
    /// an explicit `timeout`, as before it existed, each of the two is bounded by it.
    pub whole_attempt: bool,
    /// Extra attempts after a retryable failure.
    pub retries: u32,
    /// The pause before each retry.
    pub backoff: Backoff,
    /// `exponential`: the first retry's longest pause.
    pub base: Duration,
}

impl RetryPolicy {
    /// The policy `workload` asks for.
    pub fn of(workload: &Workload) -> Self {
        RetryPolicy {
            timeout: workload.request_timeout(),
            whole_attempt: workload.timeout.is_some(),
            retries: workload.retry_count(),
            backoff: workload
                .retry_backoff
                .as_ref()
                .map_or(Backoff::None, |b| *b.get_ref()),
            base: workload
                .retry_base
                .as_ref()
                .map_or(Duration::ZERO, |b| b.get_ref().0),
        }
    }

    /// The pause before retry `retry` (1-based): none, or full jitter — uniform in
    /// `[0, base * 2^(retry-1))`, drawn from the client's seeded stream.
    pub fn pause(&self, retry: u32, rng: &mut ChaCha8Rng) -> Duration {
        match self.backoff {
            Backoff::None => Duration::ZERO,
            Backoff::Exponential => {
                let ceiling = self
                    .base
                    .saturating_mul(1 << (retry.saturating_sub(1)).min(20));
                ceiling.mul_f64(rng.gen_range(0.0..1.0))
            }
        }
    }

    /// Runs one attempt's call under the policy's timeout.
    async fn bounded<T>(
        &self,
        call: impl Future<Output = T>,
        timed_out: impl FnOnce(Duration) -> T,
    ) -> T {
        if !self.whole_attempt {
            return call.await;
        }
        match nodes::deadline::within(self.timeout, call).await {
            Ok(answer) => answer,
            Err(_) => timed_out(self.timeout),
        }
    }
}

/// What an attempt's call error says about it.
fn attempt_result(error: &CallError) -> AttemptResult {
    match error {
        CallError::Unreachable(_) => AttemptResult::Unreachable,
        CallError::NoAnswer(_) => AttemptResult::Broken,
        CallError::Timeout(_) => AttemptResult::Timeout,
        CallError::Status(status, _) => AttemptResult::Answered { status: *status },
    }
}

/// True when trying again may help: anything but a definite 4xx other than 429.
fn retryable(error: &CallError) -> bool {
    !matches!(error, CallError::Status(code, _) if (400..500).contains(code) && *code != 429)
}

/// What one client shares between its operations (and, in open arrival, their tasks).
struct Client {
    name: String,
    addresses: Addresses,
    /// `via = "lb"`: every request goes to the balancer.
    via: Option<Via>,
    size: usize,
    policy: RetryPolicy,
    record_attempts: bool,
    recorder: Recorder,
    /// The client's wire tap: its calls drawn as arrows (off unless a picture is wanted).
    wire: WireTap,
    wall: Clock,
    clock: Mutex<ClientClock>,
}

/// One operation as the pacer drew it.
struct Planned {
    k: usize,
    key: String,
    server: usize,
    read: bool,
}

impl Client {
    fn clock(&self) -> std::sync::MutexGuard<'_, ClientClock> {
        self.clock.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A fresh pool per attempt (a connection of its own), reporting to the client's tap.
    fn pool(&self) -> Pool {
        Pool::single_use().tapped(self.wire.clone())
    }

    fn now(&self) -> u64 {
        self.recorder.elapsed().as_nanos() as u64
    }

    fn record(&self, op: OpEvent) {
        self.recorder.record(&self.name, What::Op { op });
    }

    /// The attempts, when the scenario records them.
    fn attempts(&self, attempts: Vec<Attempt>) -> Vec<Attempt> {
        if self.record_attempts {
            attempts
        } else {
            Vec::new()
        }
    }

    /// Before retry `retry`: waits out the backoff, then draws the next server.
    async fn next_server(&self, retry: u32, rng: &mut ChaCha8Rng) -> usize {
        let pause = self.policy.pause(retry, rng);
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        rng.gen_range(1..=self.addresses.count())
    }

    /// Where a request meant for server `n{server}` goes, and the name the history gives it.
    fn target(&self, server: usize) -> (SocketAddr, String) {
        route(&self.addresses, self.via, server)
    }

    /// Performs one planned operation: a read or a write, with its retries.
    async fn perform(&self, op: Planned, rng: &mut ChaCha8Rng) {
        if op.read {
            self.read(op, rng).await
        } else {
            self.write(op, rng).await
        }
    }

    async fn read(&self, planned: Planned, rng: &mut ChaCha8Rng) {
        let op = |kind| OpEvent::new(kind, "get", planned.k as u64).key(&planned.key);
        self.record(op(OpType::Invoke));
        let mut server = planned.server;
        let mut attempts = Vec::new();
        let mut retry = 0;
        let answer = loop {
            let t = self.now();
            let (addr, name) = self.target(server);
            // The pool lives in the call's future, so its connection closes when the call
            // ends (or is given up), as with a fresh connection per attempt.
            let (pool, key, timeout) = (self.pool(), &planned.key, self.policy.timeout);
            let call = async move { get_through(&pool, addr, key, false, timeout).await };
            let answer = self
                .policy
                .bounded(call, |after| Err(CallError::Timeout(after)))
                .await;
            let result = match &answer {
                Ok(Some(_)) => AttemptResult::Answered { status: 200 },
                Ok(None) => AttemptResult::Answered { status: 404 },
                Err(e) => attempt_result(e),
            };
            attempts.push(Attempt {
                t,
                server: name,
                result,
            });
            match &answer {
                Err(e) if retryable(e) && retry < self.policy.retries => {
                    retry += 1;
                    server = self.next_server(retry, rng).await;
                }
                _ => break answer,
            }
        };
        let at = self.target(server).1;
        let event = match answer {
            Ok(Some(item)) => {
                self.clock().observe(&item.version);
                op(OpType::Ok)
                    .value(Some(name_of(&item.value, self.size)))
                    .server(&at)
                    .version(item.version)
            }
            Ok(None) => op(OpType::Ok).server(&at).detail("not found"),
            Err(e) => op(OpType::Fail).server(&at).detail(e.to_string()),
        };
        self.record(event.attempts(self.attempts(attempts)));
    }

    async fn write(&self, planned: Planned, rng: &mut ChaCha8Rng) {
        let value = format!("{}-{}", self.name, planned.k);
        let op = |kind| {
            OpEvent::new(kind, "put", planned.k as u64)
                .key(&planned.key)
                .value(Some(&value))
        };
        self.record(op(OpType::Invoke));
        let context = self.clock().next_context(self.wall.wall_ms());
        let wire = padded(&value, self.size);
        let mut server = planned.server;
        let mut attempts = Vec::new();
        // A version some attempt may have stored under (every attempt carries the same).
        let mut maybe: Option<Version> = None;
        let mut uncertain = false;
        let mut retry = 0;
        let outcome = loop {
            let t = self.now();
            let (addr, name) = self.target(server);
            let (pool, key, timeout) = (self.pool(), &planned.key, self.policy.timeout);
            let (wire, context, client) = (&wire, context.clone(), &self.name);
            let call = async move {
                put_through(&pool, addr, key, wire, Some(context), Some(client), timeout).await
            };
            let outcome = self
                .policy
                .bounded(call, |after| {
                    PutOutcome::Unknown(None, CallError::Timeout(after))
                })
                .await;
            let (result, error) = match &outcome {
                PutOutcome::Acked(_) => (AttemptResult::Answered { status: 200 }, None),
                PutOutcome::Refused(e) => (attempt_result(e), Some(e)),
                PutOutcome::Unknown(version, e) => {
                    uncertain = true;
                    if let Some(version) = version {
                        self.clock().observe(version);
                        maybe = Some(version.clone());
                    }
                    (attempt_result(e), Some(e))
                }
            };
            attempts.push(Attempt {
                t,
                server: name,
                result,
            });
            match error {
                Some(e) if retryable(e) && retry < self.policy.retries => {
                    retry += 1;
                    server = self.next_server(retry, rng).await;
                }
                _ => break outcome,
            }
        };
        let at = self.target(server).1;
        let event = match &outcome {
            PutOutcome::Acked(version) => {
                self.clock().observe(version);
                op(OpType::Ok).server(&at).version(version.clone())
            }
            failed => {
                let kind = if uncertain {
                    OpType::Info
                } else {
                    OpType::Fail
                };
                let event = op(kind).server(&at).detail(failed.reason());
                match maybe {
                    Some(version) if uncertain => event.version(version),
                    _ => event,
                }
            }
        };
        self.record(event.attempts(self.attempts(attempts)));
    }
}

/// Runs client `c{j}` to completion: every operation invoked (none after `stop`) and,
/// in open arrival, every outstanding one ended. `record_attempts`: list each
/// operation's attempts in the history (see `Scenario::records_attempts`).
#[allow(clippy::too_many_arguments)]
pub async fn client(
    j: usize,
    share: Share,
    workload: Workload,
    addresses: Addresses,
    keys: Vec<String>,
    recorder: Recorder,
    mut rng: ChaCha8Rng,
    stop: Option<Instant>,
    record_attempts: bool,
) {
    let name = format!("c{j}");
    let read_ratio = workload.read_ratio.as_ref().map_or(0.5, |r| *r.get_ref());
    let mut pacer = Pacer::new(share, recorder.start(), stop, &mut rng);
    let client = Arc::new(Client {
        clock: Mutex::new(ClientClock::new(&name)),
        name,
        addresses: addresses.clone(),
        via: workload.via.as_ref().map(|v| *v.get_ref()),
        size: value_size(&workload),
        policy: RetryPolicy::of(&workload),
        record_attempts,
        wire: recorder.wire_tap(&format!("c{j}")),
        recorder,
        wall: Clock::new(),
    });
    let mut outstanding = Vec::new();
    for k in 0..share.ops {
        if !pacer.next().await {
            break;
        }
        let key = keys[rng.gen_range(0..keys.len())].clone();
        let server = rng.gen_range(1..=addresses.count());
        let read = rng.gen_bool(read_ratio.clamp(0.0, 1.0));
        let planned = Planned {
            k,
            key,
            server,
            read,
        };
        match workload.arrival_mode() {
            Arrival::Closed => client.perform(planned, &mut rng).await,
            Arrival::Open => {
                // Its own stream, forked in invocation order: the draws of one operation's
                // retries never depend on how the outstanding tasks interleave.
                let mut own = ChaCha8Rng::seed_from_u64(rng.gen());
                let client = client.clone();
                outstanding.push(tokio::spawn(async move {
                    client.perform(planned, &mut own).await
                }));
            }
        }
    }
    for task in outstanding {
        let _ = task.await;
    }
}

/// Where a client request goes, and the name the history gives it: server `n{server}`
/// directly, or node `lb` when the workload says `via = "lb"` (the server is still drawn,
/// so a scenario's operations are the same with or without the balancer). The history
/// names `lb`, the node the client talked to: the backend that answered is in the
/// balancer's `X-Backend` header, which the KV client protocol does not read.
pub fn target(addresses: &Addresses, workload: &Workload, server: usize) -> (SocketAddr, String) {
    route(
        addresses,
        workload.via.as_ref().map(|v| *v.get_ref()),
        server,
    )
}

fn route(addresses: &Addresses, via: Option<Via>, server: usize) -> (SocketAddr, String) {
    match via {
        Some(Via::Lb) => (addresses.lb(), "lb".to_string()),
        None => (addresses.server(server), format!("n{server}")),
    }
}

/// Bytes per written value (0: the bare name).
pub fn value_size(workload: &Workload) -> usize {
    workload.value_size.as_ref().map_or(0, |v| *v.get_ref())
}

/// The harness's final reads: each key's local copy on each of its live replicas
/// (`reads`: server -> the keys it replicates), recorded as operations of the
/// pseudo-client `final` (value absent when the server lacks the key).
pub async fn final_reads(
    addresses: &Addresses,
    reads: &[(usize, Vec<String>)],
    size: usize,
    recorder: &Recorder,
    cluster_key: nodes::auth::ClusterKey,
) {
    // Signed with the cluster key: the harness reads as an operator, so a node's client
    // limits (rate limit, backpressure) do not stand between it and the replica's copy.
    // A connection per read, as before: the reads stay independent of one another.
    let mut id = 0;
    for (server, keys) in reads {
        let (server, at) = (*server, format!("n{server}"));
        for key in keys {
            let op = |kind| {
                OpEvent::new(kind, "get", id)
                    .by_harness()
                    .key(key)
                    .server(&at)
            };
            recorder.record(
                "final",
                What::Op {
                    op: op(OpType::Invoke).detail("local copy"),
                },
            );
            // Patient: a slow answer (buggify delays connects by seconds) is not divergence.
            let read = || {
                let pool = nodes::pool::Pool::signed(cluster_key.clone());
                async move {
                    get_through(
                        &pool,
                        addresses.server(server),
                        key,
                        true,
                        FINAL_READ_TIMEOUT,
                    )
                    .await
                }
            };
            let mut answer = read().await;
            for _ in 1..FINAL_READ_ATTEMPTS {
                if answer.is_ok() {
                    break;
                }
                answer = read().await;
            }
            let event = match answer {
                Ok(Some(item)) => op(OpType::Ok)
                    .value(Some(name_of(&item.value, size)))
                    .version(item.version),
                Ok(None) => op(OpType::Ok).detail("has no value"),
                Err(e) => op(OpType::Fail).detail(e.to_string()),
            };
            recorder.record("final", What::Op { op: event });
            id += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(backoff: Backoff) -> RetryPolicy {
        RetryPolicy {
            timeout: Duration::from_millis(500),
            whole_attempt: true,
            retries: 4,
            backoff,
            base: Duration::from_millis(100),
        }
    }

    #[test]
    fn full_jitter_stays_under_a_doubling_ceiling_and_spreads_out() {
        let exponential = policy(Backoff::Exponential);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for retry in 1..=4u32 {
            let ceiling = Duration::from_millis(100 << (retry - 1));
            let pauses: Vec<Duration> = (0..200)
                .map(|_| exponential.pause(retry, &mut rng))
                .collect();
            assert!(pauses.iter().all(|p| *p < ceiling), "retry {retry}");
            // Full jitter: pauses fill the range, not cluster at its top.
            assert!(pauses.iter().any(|p| *p < ceiling / 4), "retry {retry}");
            assert!(pauses.iter().any(|p| *p > ceiling * 3 / 4), "retry {retry}");
        }
        // Same stream, same pauses.
        let mut a = ChaCha8Rng::seed_from_u64(3);
        let mut b = ChaCha8Rng::seed_from_u64(3);
        assert_eq!(exponential.pause(2, &mut a), exponential.pause(2, &mut b));
        // `none` retries at once and draws nothing.
        let mut c = ChaCha8Rng::seed_from_u64(3);
        assert_eq!(policy(Backoff::None).pause(3, &mut c), Duration::ZERO);
        assert_eq!(c.gen::<u64>(), ChaCha8Rng::seed_from_u64(3).gen::<u64>());
    }

    #[test]
    fn shed_overloaded_unanswered_and_refused_connections_are_retried_bad_requests_not() {
        let status = |code| CallError::Status(code, String::new());
        assert!(retryable(&status(429)));
        assert!(retryable(&status(503)));
        assert!(retryable(&status(500)));
        assert!(retryable(&CallError::Timeout(Duration::from_secs(1))));
        assert!(retryable(&CallError::Unreachable("refused".into())));
        assert!(retryable(&CallError::NoAnswer("reset".into())));
        assert!(!retryable(&status(400)));
        assert!(!retryable(&status(413)));
        assert_eq!(
            attempt_result(&status(429)),
            AttemptResult::Answered { status: 429 }
        );
        assert_eq!(
            attempt_result(&CallError::Timeout(Duration::from_secs(1))),
            AttemptResult::Timeout
        );
    }
}
