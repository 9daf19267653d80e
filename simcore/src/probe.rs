//! Liveness probes: what the harness sends after the last fault so the `liveness` check
//! has something to judge (DESIGN: chat, one message through every live server; kv, a
//! write of a fresh key through every live server, then a read of it through every live
//! server). The probes are harness operations (`actor: harness`) of the pseudo-client
//! `probe`; each retries until it succeeds or the check's deadline passes, and records
//! its last answer so a failure can say what was still pending. The election has no
//! probe: its liveness is judged on the servers' own role events.
//!
//! Probe names are made from the round's start and the server (`probe-25000-n3`), so two
//! rounds never share a message id or a key; the checker reads them from the probes'
//! invocations (typed `server`, `key`, `value`), never predicts them.

use crate::addresses::Addresses;
use crate::history::{OpEvent, OpType, Recorder, What};
use crate::scenario::{CheckKind, Fault, Scenario};
use nodes::kv::client::{get, put_through, PutOutcome};
use nodes::pool::Pool;
use std::time::Duration;
use tokio::time::Instant;

/// The pseudo-client whose operations are the probes.
pub const PROBE: &str = "probe";
/// Timeout of one probe attempt: longer than a server's worst-case answer (a kv read
/// forwarded to each of its replicas in turn, 1 s each), so that under slow links the
/// probes do not become a retry storm of their own (with 2 s, the buggify kv scenario's
/// probes queued behind their own abandoned connections for 30 s).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between a probe's attempts.
pub const RETRY_PAUSE: Duration = Duration::from_millis(250);

/// When each liveness check of `scenario` starts probing and how long it waits: its
/// `after`, or else the last fault of `faults` (the run's whole timeline), or else 0.
pub fn rounds(scenario: &Scenario, faults: &[Fault]) -> Vec<(Duration, Duration)> {
    let last_fault = faults.iter().map(|f| f.at.0).max().unwrap_or_default();
    let mut rounds: Vec<(Duration, Duration)> = Vec::new();
    for check in &scenario.checks {
        let check = check.get_ref();
        if check.kind != CheckKind::Liveness {
            continue;
        }
        let start = check.after.as_ref().map_or(last_fault, |a| a.get_ref().0);
        let within = check
            .within
            .as_ref()
            .map_or(DEFAULT_WITHIN, |w| w.get_ref().0);
        match rounds.iter_mut().find(|(s, _)| *s == start) {
            Some(round) => round.1 = round.1.max(within),
            None => rounds.push((start, within)),
        }
    }
    rounds.sort();
    rounds
}

/// `liveness` deadline when the check gives no `within`.
pub const DEFAULT_WITHIN: Duration = Duration::from_secs(10);

/// The name of the probe of the round starting at `start` through `server`: the chat
/// message id, or the kv key and value.
pub fn probe_name(start: Duration, server: &str) -> String {
    format!("probe-{}-{server}", start.as_millis())
}

/// One round of probes: sent at `start` through `servers`, given up at `deadline`.
#[derive(Clone, Debug)]
pub struct Round {
    /// Simulated time of the round's start (the last fault, or the check's `after`).
    pub start: Duration,
    /// Live server indices at the start.
    pub servers: Vec<usize>,
    /// Where the servers take clients.
    pub addresses: Addresses,
    /// Give up after this.
    pub deadline: Instant,
}

fn record(recorder: &Recorder, op: OpEvent) {
    recorder.record(
        PROBE,
        What::Op {
            op: op.by_harness(),
        },
    );
}

/// Chat: one message through every live server, all at once; each retried until acked.
pub async fn chat(round: Round, recorder: Recorder) {
    let mut tasks = Vec::new();
    for (i, &server) in round.servers.iter().enumerate() {
        let (recorder, round) = (recorder.clone(), round.clone());
        tasks.push(tokio::spawn(async move {
            let at = format!("n{server}");
            let id = probe_name(round.start, &at);
            let op = |kind| {
                OpEvent::new(kind, "send", i as u64)
                    .value(Some(&id))
                    .server(&at)
            };
            record(&recorder, op(OpType::Invoke));
            let mut last = String::from("no attempt finished");
            while Instant::now() < round.deadline {
                let text = format!("liveness probe via {at}");
                match nodes::chat::client::send(
                    round.addresses.server(server),
                    &id,
                    &text,
                    ATTEMPT_TIMEOUT,
                )
                .await
                {
                    Ok(seq) => {
                        record(&recorder, op(OpType::Ok).seq(seq));
                        return;
                    }
                    Err(nodes::chat::client::SendError::Rejected(why)) => {
                        last = format!("refused: {why}")
                    }
                    Err(nodes::chat::client::SendError::Unknown(why)) => {
                        last = format!("outcome unknown: {why}")
                    }
                }
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            record(&recorder, op(OpType::Info).detail(last));
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
}

/// KV: a fresh key written through every live server, then read through every live
/// server until the value shows; all servers at once.
pub async fn kv(round: Round, recorder: Recorder) {
    let mut tasks = Vec::new();
    for (i, &server) in round.servers.iter().enumerate() {
        let (recorder, round) = (recorder.clone(), round.clone());
        tasks.push(tokio::spawn(async move {
            let at = format!("n{server}");
            let key = probe_name(round.start, &at);
            let base = (i * (round.servers.len() + 1)) as u64;
            let op = |kind, f: &str, id: u64| OpEvent::new(kind, f, id).key(&key).server(&at);
            record(&recorder, op(OpType::Invoke, "put", base).value(Some(&key)));
            let mut acked = None;
            let mut last = String::from("no attempt finished");
            while Instant::now() < round.deadline {
                match put_through(
                    &Pool::single_use(),
                    round.addresses.server(server),
                    &key,
                    &key,
                    None,
                    None,
                    ATTEMPT_TIMEOUT,
                )
                .await
                {
                    PutOutcome::Acked(version) => {
                        acked = Some(version);
                        break;
                    }
                    failed => last = failed.reason(),
                }
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            let Some(version) = acked else {
                record(
                    &recorder,
                    op(OpType::Info, "put", base).value(Some(&key)).detail(last),
                );
                return;
            };
            record(
                &recorder,
                op(OpType::Ok, "put", base)
                    .value(Some(&key))
                    .version(version),
            );
            for (j, &reader) in round.servers.iter().enumerate() {
                read_back(&round, &recorder, &key, reader, base + 1 + j as u64).await;
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
}

/// Reads `key` through `reader` until it holds the probe's value or the deadline passes.
async fn read_back(round: &Round, recorder: &Recorder, key: &str, reader: usize, id: u64) {
    let at = format!("n{reader}");
    let op = |kind| OpEvent::new(kind, "get", id).key(key).server(&at);
    record(recorder, op(OpType::Invoke));
    let mut last = String::from("no attempt finished");
    while Instant::now() < round.deadline {
        match get(round.addresses.server(reader), key, false, ATTEMPT_TIMEOUT).await {
            Ok(Some(item)) if item.value == key => {
                record(
                    recorder,
                    op(OpType::Ok)
                        .value(Some(&item.value))
                        .version(item.version),
                );
                return;
            }
            Ok(Some(item)) => last = format!("read {} instead", item.value),
            Ok(None) => last = "not found".into(),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
    record(recorder, op(OpType::Fail).detail(last));
}
