//! The KV workload: each client reads or writes (by `read_ratio`) a random key of `keys`
//! on a random server at its share of `rate`. Every written value is unique (`c2-17`), so a
//! value names its write. A client carries its own hybrid logical clock
//! ([`ClientClock`]): every write is sent with the client's name and a context past every
//! version the client has read or sent, so a correct store orders the write after
//! everything the client observed *and* after its own earlier writes, answered or not.
//!
//! Outcomes: a write is `ok` when acknowledged, `fail` when the server was unreachable
//! (never sent), `info` otherwise (timeout, or fewer copies than the write quorum: it is
//! stored somewhere and may still win). A read is `ok` with the value (or none), else
//! `fail`. Completions carry the answering server and the version it reported as typed
//! fields of the history.

use super::{ops_for_client, Pacer};
use crate::history::{OpEvent, OpType, Recorder, What};
use crate::scenario::Workload;
use crate::systems::kv::node_addr;
use nodes::kv::client::{get, get_through, put, PutOutcome};
use nodes::kv::version::ClientClock;
use nodes::runtime::Clock;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::time::Duration;
use tokio::time::Instant;

/// Timeout of one request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
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

/// Runs client `c{j}` to completion.
#[allow(clippy::too_many_arguments)]
pub async fn client(
    j: usize,
    workload: Workload,
    servers: usize,
    keys: Vec<String>,
    recorder: Recorder,
    mut rng: ChaCha8Rng,
    stop: Option<Instant>,
) {
    let name = format!("c{j}");
    let read_ratio = workload.read_ratio.as_ref().map_or(0.5, |r| *r.get_ref());
    let size = value_size(&workload);
    let wall = Clock::new();
    let mut clock = ClientClock::new(&name);
    let mut pacer = Pacer::new(&workload, recorder.start(), stop, &mut rng);
    for k in 0..ops_for_client(&workload, j) {
        if !pacer.next().await {
            break;
        }
        let key = keys[rng.gen_range(0..keys.len())].clone();
        let server = rng.gen_range(1..=servers);
        let at = format!("n{server}");
        let read = rng.gen_bool(read_ratio.clamp(0.0, 1.0));
        let op = |kind, f: &str| OpEvent::new(kind, f, k as u64).key(&key);
        if read {
            recorder.record(
                &name,
                What::Op {
                    op: op(OpType::Invoke, "get"),
                },
            );
            let event = match get(node_addr(server), &key, false, REQUEST_TIMEOUT).await {
                Ok(Some(item)) => {
                    clock.observe(&item.version);
                    op(OpType::Ok, "get")
                        .value(Some(name_of(&item.value, size)))
                        .server(&at)
                        .version(item.version)
                }
                Ok(None) => op(OpType::Ok, "get").server(&at).detail("not found"),
                Err(e) => op(OpType::Fail, "get").server(&at).detail(e.to_string()),
            };
            recorder.record(&name, What::Op { op: event });
        } else {
            let value = format!("c{j}-{k}");
            let put_op = |kind| op(kind, "put").value(Some(&value));
            recorder.record(
                &name,
                What::Op {
                    op: put_op(OpType::Invoke),
                },
            );
            let context = clock.next_context(wall.wall_ms());
            let wire = padded(&value, size);
            let sent = put(
                node_addr(server),
                &key,
                &wire,
                Some(context),
                Some(clock.name()),
                REQUEST_TIMEOUT,
            );
            let event = match sent.await {
                PutOutcome::Acked(version) => {
                    clock.observe(&version);
                    put_op(OpType::Ok).server(&at).version(version)
                }
                PutOutcome::Refused(why) => put_op(OpType::Fail).server(&at).detail(why),
                PutOutcome::Unknown(version, why) => {
                    let event = put_op(OpType::Info).server(&at).detail(why);
                    match version {
                        Some(version) => {
                            clock.observe(&version);
                            event.version(version)
                        }
                        None => event,
                    }
                }
            };
            recorder.record(&name, What::Op { op: event });
        }
    }
}

/// Bytes per written value (0: the bare name).
pub fn value_size(workload: &Workload) -> usize {
    workload.value_size.as_ref().map_or(0, |v| *v.get_ref())
}

/// The harness's final reads: every key's local copy on every live server, recorded as
/// operations of the pseudo-client `final` (value absent when the server lacks the key).
pub async fn final_reads(
    live: &[usize],
    keys: &[String],
    size: usize,
    recorder: &Recorder,
    cluster_key: nodes::auth::ClusterKey,
) {
    // Signed with the cluster key: the harness reads as an operator, so a node's client
    // limits (rate limit, backpressure) do not stand between it and the replica's copy.
    // A connection per read, as before: the reads stay independent of one another.
    let mut id = 0;
    for &server in live {
        let at = format!("n{server}");
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
                async move { get_through(&pool, node_addr(server), key, true, FINAL_READ_TIMEOUT).await }
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
