//! The KV client protocol (what curl does by hand), shared by the simulated workload.

use super::node::{Item, Put};
use super::version::Version;
use crate::http::{call, CallError};
use hyper::Method;
use std::net::SocketAddr;
use std::time::Duration;

/// Writes `value` under `key`, ordered after `context`; returns the stored version.
pub async fn put(
    node: SocketAddr,
    key: &str,
    value: &str,
    context: Option<Version>,
    timeout: Duration,
) -> Result<Version, CallError> {
    let body = Put {
        key: key.to_string(),
        value: value.to_string(),
        context,
    };
    let answer: serde_json::Value = call(node, Method::POST, "/data", Some(&body), timeout).await?;
    serde_json::from_value(answer["version"].clone())
        .map_err(|e| CallError::NoAnswer(e.to_string()))
}

/// Reads `key`: `Ok(None)` when the node says it does not exist. `local` reads only
/// that node's copy.
pub async fn get(
    node: SocketAddr,
    key: &str,
    local: bool,
    timeout: Duration,
) -> Result<Option<Item>, CallError> {
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
