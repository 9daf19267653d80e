//! The KV client protocol (what curl does by hand), shared by the simulated workload.

use super::node::{Item, Put};
use super::version::Version;
use crate::http::{call, CallError};
use crate::pool::Pool;
use hyper::Method;
use std::net::SocketAddr;
use std::time::Duration;

/// What became of a write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    /// Acknowledged with this version.
    Acked(Version),
    /// Maybe stored: too few copies confirmed (the version is known) or no answer.
    Unknown(Option<Version>, String),
    /// Definitely not stored (never sent, or refused as a bad request).
    Refused(String),
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
            None => PutOutcome::Unknown(None, format!("answer without a version: {answer}")),
        },
        Err(CallError::Unreachable(why)) => PutOutcome::Refused(why),
        Err(CallError::Status(503, text)) => {
            let version = serde_json::from_str(&text)
                .ok()
                .and_then(|a| version_in(&a));
            PutOutcome::Unknown(version, format!("HTTP 503: {text}"))
        }
        Err(CallError::Status(code, text)) if (400..500).contains(&code) => {
            PutOutcome::Refused(format!("HTTP {code}: {text}"))
        }
        Err(e) => PutOutcome::Unknown(None, e.to_string()),
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
    get_through(&Pool::new(), node, key, local, timeout).await
}

/// [`get`] through `pool`: with [`Pool::signed`], an operator's read that proves the
/// cluster key, which a node's client limits leave alone (the harness's final reads).
pub async fn get_through(
    pool: &Pool,
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
    match pool
        .call::<(), Item>(node, Method::GET, &path, None, timeout)
        .await
    {
        Ok(item) => Ok(Some(item)),
        Err(CallError::Status(404, _)) => Ok(None),
        Err(e) => Err(e),
    }
}
