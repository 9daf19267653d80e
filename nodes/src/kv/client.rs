//! The KV client protocol (what curl does by hand), shared by the simulated workload.

use super::node::{Item, Put};
use super::version::Version;
use crate::http::{call, CallError};
use hyper::Method;
use std::net::SocketAddr;
use std::time::Duration;

/// What became of a write. A failure keeps the call's typed error, so a caller sees a
/// 429 (shed: certainly not stored), a 5xx, a timeout or a refused connection as such.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    /// Acknowledged with this version.
    Acked(Version),
    /// Maybe stored: too few copies confirmed (503, the version is known), another 5xx,
    /// a timeout, a broken connection, or an answer without a version.
    Unknown(Option<Version>, CallError),
    /// Definitely not stored: never sent (unreachable), or refused with a 4xx (a bad
    /// request, or 429: over the node's rate limit or queue).
    Refused(CallError),
}

impl PutOutcome {
    /// The HTTP status of a refused or unknown write's answer, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            PutOutcome::Acked(_) => None,
            PutOutcome::Unknown(_, CallError::Status(code, _))
            | PutOutcome::Refused(CallError::Status(code, _)) => Some(*code),
            PutOutcome::Unknown(..) | PutOutcome::Refused(_) => None,
        }
    }

    /// Why a write was not acknowledged, for people: the call error's text (a refused
    /// connection's alone, as the OS put it); empty for an acknowledged write.
    pub fn reason(&self) -> String {
        match self {
            PutOutcome::Acked(_) => String::new(),
            PutOutcome::Refused(CallError::Unreachable(why)) => why.clone(),
            PutOutcome::Refused(e) | PutOutcome::Unknown(_, e) => e.to_string(),
        }
    }
}

fn version_in(answer: &serde_json::Value) -> Option<Version> {
    serde_json::from_value(answer["version"].clone()).ok()
}

/// Writes `value` under `key`, ordered after `context`; `client` names a client that
/// carries its own clock ([`super::version::ClientClock`]).
pub async fn put(
    node: SocketAddr,
    key: &str,
    value: &str,
    context: Option<Version>,
    client: Option<&str>,
    timeout: Duration,
) -> PutOutcome {
    let body = Put {
        key: key.to_string(),
        value: value.to_string(),
        context,
        client: client.map(str::to_string),
    };
    match call::<_, serde_json::Value>(node, Method::POST, "/data", Some(&body), timeout).await {
        Ok(answer) => match version_in(&answer) {
            Some(version) => PutOutcome::Acked(version),
            None => PutOutcome::Unknown(
                None,
                CallError::NoAnswer(format!("answer without a version: {answer}")),
            ),
        },
        Err(e @ CallError::Unreachable(_)) => PutOutcome::Refused(e),
        Err(CallError::Status(503, text)) => {
            let version = serde_json::from_str(&text)
                .ok()
                .and_then(|a| version_in(&a));
            PutOutcome::Unknown(version, CallError::Status(503, text))
        }
        Err(e @ CallError::Status(400..=499, _)) => PutOutcome::Refused(e),
        Err(e) => PutOutcome::Unknown(None, e),
    }
}

/// Reads `key`: `Ok(None)` when the node says it does not exist. `local` reads only
/// that node's copy.
pub async fn get(
    node: SocketAddr,
    key: &str,
    local: bool,
    timeout: Duration,
) -> Result<Option<Item>, CallError> {
    let key = super::node::percent_encode(key);
    let path = if local {
        format!("/data/{key}?local=true")
    } else {
        format!("/data/{key}")
    };
    match call::<(), Item>(node, Method::GET, &path, None, timeout).await {
        Ok(item) => Ok(Some(item)),
        Err(CallError::Status(404, _)) => Ok(None),
        Err(e) => Err(e),
    }
}
