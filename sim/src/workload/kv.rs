//! The KV workload: each client reads or writes (by `read_ratio`) a random key of `keys`
//! on a random server at its share of `rate`. Every written value is unique (`c2-17`), so a
//! value names its write. A client carries, per key, the version it last saw or wrote
//! (Dynamo's context) and sends it with its next write, so a correct store orders that
//! write after everything the client has observed.
//!
//! Outcomes: a write is `ok` when acknowledged, `fail` when the server was unreachable
//! (never sent), `info` otherwise (timeout, or fewer copies than the write quorum: it is
//! stored somewhere and may still win; when the answer gives its version, the client's
//! context moves past it). A read is `ok` with the value (or none), else `fail`.
//!
//! Known limit, shared with every last-writer-wins store: a write whose request is held
//! past the client's timeout (a paused or isolated server) and applied later gets a version
//! nobody told the client, and can beat the client's next write. The safe fuzz
//! configuration leaves out the faults that hold client requests (pause, isolate).

use super::{ops_for_client, Pacer};
use crate::history::{OpEvent, OpType, Recorder, What};
use crate::scenario::Workload;
use crate::systems::kv::node_addr;
use nodes::kv::client::{get, put, PutOutcome};
use nodes::kv::Version;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

/// Timeout of one request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Timeout of one final read, and how many times it is tried.
pub const FINAL_READ_TIMEOUT: Duration = Duration::from_secs(8);
/// Attempts per final read.
pub const FINAL_READ_ATTEMPTS: usize = 3;

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
    let mut context: BTreeMap<String, Version> = BTreeMap::new();
    let mut pacer = Pacer::new(&workload, recorder.start(), stop, &mut rng);
    for k in 0..ops_for_client(&workload, j) {
        if !pacer.next().await {
            break;
        }
        let key = keys[rng.gen_range(0..keys.len())].clone();
        let server = rng.gen_range(1..=servers);
        let read = rng.gen_bool(read_ratio.clamp(0.0, 1.0));
        let op = |kind, f: &str, value: Option<String>, detail: Option<String>| What::Op {
            op: OpEvent {
                kind,
                f: f.into(),
                id: k as u64,
                key: Some(key.clone()),
                value: value.map(serde_json::Value::String),
                detail,
            },
        };
        if read {
            recorder.record(&name, op(OpType::Invoke, "get", None, None));
            let event = match get(node_addr(server), &key, false, REQUEST_TIMEOUT).await {
                Ok(Some(item)) => {
                    let newer = context.get(&key).is_none_or(|v| item.version > *v);
                    if newer {
                        context.insert(key.clone(), item.version.clone());
                    }
                    op(
                        OpType::Ok,
                        "get",
                        Some(item.value),
                        Some(format!("n{server}")),
                    )
                }
                Ok(None) => op(
                    OpType::Ok,
                    "get",
                    None,
                    Some(format!("n{server}: not found")),
                ),
                Err(e) => op(OpType::Fail, "get", None, Some(format!("n{server}: {e}"))),
            };
            recorder.record(&name, event);
        } else {
            let value = format!("c{j}-{k}");
            recorder.record(&name, op(OpType::Invoke, "put", Some(value.clone()), None));
            let seen = context.get(&key).cloned();
            let event = match put(node_addr(server), &key, &value, seen, REQUEST_TIMEOUT).await {
                PutOutcome::Acked(version) => {
                    let detail = format!("n{server} version {}@{}", version.counter, version.node);
                    context.insert(key.clone(), version);
                    op(OpType::Ok, "put", Some(value), Some(detail))
                }
                PutOutcome::Refused(why) => op(
                    OpType::Fail,
                    "put",
                    Some(value),
                    Some(format!("n{server}: {why}")),
                ),
                PutOutcome::Unknown(version, why) => {
                    // Stored somewhere with a known version: order the next write after it.
                    if let Some(version) = version {
                        if context.get(&key).is_none_or(|v| version > *v) {
                            context.insert(key.clone(), version);
                        }
                    }
                    op(
                        OpType::Info,
                        "put",
                        Some(value),
                        Some(format!("n{server}: {why}")),
                    )
                }
            };
            recorder.record(&name, event);
        }
    }
}

/// The harness's final reads: every key's local copy on every live server, recorded as
/// operations of the pseudo-client `final` (value absent when the server lacks the key).
pub async fn final_reads(live: &[usize], keys: &[String], recorder: &Recorder) {
    let mut id = 0;
    for &server in live {
        for key in keys {
            let op = |kind, value: Option<String>, detail: String| What::Op {
                op: OpEvent {
                    kind,
                    f: "get".into(),
                    id,
                    key: Some(key.clone()),
                    value: value.map(serde_json::Value::String),
                    detail: Some(detail),
                },
            };
            recorder.record(
                "final",
                op(OpType::Invoke, None, format!("n{server} local copy")),
            );
            // Patient: a slow answer (buggify delays connects by seconds) is not divergence.
            let mut answer = get(node_addr(server), key, true, FINAL_READ_TIMEOUT).await;
            for _ in 1..FINAL_READ_ATTEMPTS {
                if answer.is_ok() {
                    break;
                }
                answer = get(node_addr(server), key, true, FINAL_READ_TIMEOUT).await;
            }
            let event = match answer {
                Ok(Some(item)) => op(
                    OpType::Ok,
                    Some(item.value),
                    format!(
                        "n{server} version {}@{}",
                        item.version.counter, item.version.node
                    ),
                ),
                Ok(None) => op(OpType::Ok, None, format!("n{server} has no value")),
                Err(e) => op(OpType::Fail, None, format!("n{server}: {e}")),
            };
            recorder.record("final", event);
            id += 1;
        }
    }
}
