//! The KV client protocol (what curl does by hand), shared by the simulated workload.

use super::node::{Item, Put};
use super::version::Version;
use crate::http::CallError;
use crate::pool::{decode, Pool};
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

/// The version in a write's answer.
#[derive(serde::Deserialize)]
struct Written {
    version: Version,
}

fn version_in(answer: &serde_json::Value) -> Option<Version> {
    serde_json::from_value(answer["version"].clone()).ok()
}

/// Writes `value` under `key` through `pool`, ordered after `context`; `client` names a
/// client that carries its own clock ([`super::version::ClientClock`]). A fresh pool per
/// write (`Pool::single_use()`, or [`Pool::tapped`] to report it to a wire tap) keeps the write on
/// a connection of its own.
pub async fn put_through(
    pool: &Pool,
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
    let answer = pool
        .fetch(node, Method::POST, "/data", Some(&body), timeout)
        .await;
    // The usual answer (an object with a version) read straight into its version; any
    // other goes the general way, so what it comes to is unchanged.
    if let Ok(Written { version }) = answer
        .as_deref()
        .map_err(drop)
        .and_then(|body| serde_json::from_slice::<Written>(body).map_err(drop))
    {
        return PutOutcome::Acked(version);
    }
    match answer.and_then(|body| decode::<serde_json::Value>(&body)) {
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
    get_through(&Pool::single_use(), node, key, local, timeout).await
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

#[cfg(all(test, madsim))]
mod tests {
    //! A stand-in server answers each status a loaded KV node can give; the client must
    //! hand back each as what it is.

    use super::*;
    use axum::http::StatusCode;
    use axum::routing::{get as route_get, post};
    use axum::{Json, Router};
    use std::net::{IpAddr, Ipv4Addr};

    const SERVER: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);
    const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 2);

    /// Answers a write by its key: `shed` 429, `partial` 503 with a version, `broken` 500,
    /// `bad` 400, `slow` never (in time); a read of `shed` is 429 too.
    fn stand_in() -> Router {
        async fn write(
            Json(put): Json<serde_json::Value>,
        ) -> (StatusCode, Json<serde_json::Value>) {
            let version = serde_json::json!({ "counter": 7, "node": "n1" });
            match put["key"].as_str() {
                Some("shed") => (
                    StatusCode::TOO_MANY_REQUESTS,
                    Json(serde_json::json!({ "error": "rate limit exceeded" })),
                ),
                Some("partial") => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(serde_json::json!({ "error": "only 1 of 2", "version": version })),
                ),
                Some("broken") => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Json(serde_json::json!({})),
                ),
                Some("bad") => (StatusCode::BAD_REQUEST, Json(serde_json::json!({}))),
                Some("slow") => {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    (
                        StatusCode::OK,
                        Json(serde_json::json!({ "version": version })),
                    )
                }
                _ => (
                    StatusCode::OK,
                    Json(serde_json::json!({ "version": version })),
                ),
            }
        }
        async fn read() -> (StatusCode, Json<serde_json::Value>) {
            (
                StatusCode::TOO_MANY_REQUESTS,
                Json(serde_json::json!({ "error": "rate limit exceeded" })),
            )
        }
        Router::new()
            .route("/data", post(write))
            .route("/data/{key}", route_get(read))
    }

    #[test]
    fn a_429_a_5xx_a_timeout_and_a_refusal_come_back_typed() {
        let runtime = madsim::runtime::Runtime::new();
        runtime.block_on(async {
            let handle = madsim::runtime::Handle::current();
            let server = handle.create_node().ip(IpAddr::V4(SERVER)).build();
            server.spawn(async {
                let listener = tokio::net::TcpListener::bind((SERVER, 5000)).await.unwrap();
                crate::http::serve(listener, stand_in(), crate::runtime::WireTap::off()).await;
            });
            let client = handle.create_node().ip(IpAddr::V4(CLIENT)).build();
            let outcomes = client
                .spawn(async {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    let node = SocketAddr::from((SERVER, 5000));
                    let wait = Duration::from_secs(1);
                    let mut outcomes = Vec::new();
                    for key in ["ok", "shed", "partial", "broken", "bad", "slow"] {
                        outcomes.push(put_through(&Pool::single_use(), node, key, "v", None, None, wait).await);
                    }
                    let unreachable = SocketAddr::from((SERVER, 5999));
                    outcomes.push(put_through(&Pool::single_use(), unreachable, "ok", "v", None, None, wait).await);
                    let read = get(node, "shed", false, wait).await;
                    (outcomes, read)
                })
                .await
                .unwrap();
            let (outcomes, read) = outcomes;
            let version = Version {
                counter: 7,
                node: "n1".into(),
            };
            assert_eq!(outcomes[0], PutOutcome::Acked(version.clone()));
            assert!(
                matches!(&outcomes[1], PutOutcome::Refused(CallError::Status(429, _))),
                "{:?}",
                outcomes[1]
            );
            assert_eq!(outcomes[1].status(), Some(429));
            assert!(
                matches!(&outcomes[2], PutOutcome::Unknown(Some(v), CallError::Status(503, _)) if *v == version),
                "{:?}",
                outcomes[2]
            );
            assert_eq!(outcomes[3].status(), Some(500));
            assert!(matches!(outcomes[3], PutOutcome::Unknown(None, _)));
            assert!(matches!(outcomes[4], PutOutcome::Refused(CallError::Status(400, _))));
            assert_eq!(
                outcomes[5],
                PutOutcome::Unknown(None, CallError::Timeout(Duration::from_secs(1)))
            );
            assert_eq!(
                outcomes[5].reason(),
                "no answer: no answer within 1000 ms",
                "the text older histories hold"
            );
            assert!(
                matches!(&outcomes[6], PutOutcome::Refused(CallError::Unreachable(_))),
                "{:?}",
                outcomes[6]
            );
            assert_eq!(outcomes[6].status(), None);
            assert!(
                matches!(read, Err(CallError::Status(429, _))),
                "{read:?}"
            );
        });
    }
}
