//! The chat workload: each client sends uniquely identified messages at its rate to a
//! random server, retrying a failed attempt on another server under the same id (so a
//! retry can never be delivered twice). An operation is `ok` with the delivered sequence
//! number, `fail` when every attempt was definitely refused, and `info` when any attempt's
//! fate is unknown (a timeout, a lost connection, a leader that changed mid-way).

use super::{Pacer, Share};
use crate::history::{OpEvent, OpType, Recorder, What};
use crate::systems::chat::client_addr;
use nodes::chat::client::{send, SendError};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::time::Duration;
use tokio::time::Instant;

/// Per-attempt timeout.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);
/// Attempts per operation.
pub const ATTEMPTS: usize = 4;
/// Pause between attempts.
pub const RETRY_BACKOFF: Duration = Duration::from_millis(250);

/// Runs client `c{j}` to completion.
pub async fn client(
    j: usize,
    share: Share,
    servers: usize,
    recorder: Recorder,
    mut rng: ChaCha8Rng,
    stop: Option<Instant>,
) {
    let name = format!("c{j}");
    let mut pacer = Pacer::new(share, recorder.start(), stop, &mut rng);
    for k in 0..share.ops {
        if !pacer.next().await {
            break;
        }
        let message = format!("c{j}-{k}");
        let op = |kind| OpEvent::new(kind, "send", k as u64).value(Some(&message));
        recorder.record(
            &name,
            What::Op {
                op: op(OpType::Invoke),
            },
        );
        let mut unknown = None;
        let mut refused = String::new();
        let mut outcome = None;
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(RETRY_BACKOFF).await;
            }
            let server = rng.gen_range(1..=servers);
            let text = format!("message {k} from c{j}");
            match send(client_addr(server), &message, &text, ATTEMPT_TIMEOUT).await {
                Ok(seq) => {
                    outcome = Some((seq, server));
                    break;
                }
                Err(SendError::Rejected(why)) => refused = format!("n{server}: {why}"),
                Err(SendError::Unknown(why)) => unknown = Some(format!("n{server}: {why}")),
            }
        }
        let event = match (outcome, unknown) {
            (Some((seq, server)), _) => op(OpType::Ok)
                .seq(seq)
                .server(&format!("n{server}"))
                .detail(format!("seq {seq} via n{server}")),
            (None, Some(why)) => op(OpType::Info).detail(why),
            (None, None) => {
                op(OpType::Fail).detail(format!("refused {ATTEMPTS} times; last {refused}"))
            }
        };
        recorder.record(&name, What::Op { op: event });
    }
}
