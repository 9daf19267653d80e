//! The client side of the chat's client protocol, shared by `chat-client` and the
//! simulated workload so both speak exactly the same bytes.

use super::message::{ClientRequest, ClientResponse};
use crate::deadline::within;
use crate::lines::{read_line, Line};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Longest line a client accepts from a node (an answer or one delivery of a stream): a
/// request is at most 64 KiB, so a delivery of it is well within this.
pub const MAX_ANSWER_BYTES: usize = 1 << 20;

/// Why a send did not succeed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendError {
    /// Definitely not delivered by this attempt (refused, no leader, not connected).
    Rejected(String),
    /// Unknown: it may or may not be delivered (timeout, lost connection, leader change).
    Unknown(String),
}

/// Sends one message and waits up to `timeout` for its sequence number.
pub async fn send(
    node: SocketAddr,
    id: &str,
    text: &str,
    timeout: Duration,
) -> Result<u64, SendError> {
    let stream = match within(timeout, TcpStream::connect(node)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return Err(SendError::Rejected(format!("cannot connect: {e}"))),
        Err(_) => return Err(SendError::Rejected("connect timed out".into())),
    };
    let request = ClientRequest::Send {
        id: id.to_string(),
        text: text.to_string(),
    };
    let exchange = async {
        let (reader, mut writer) = tokio::io::split(stream);
        let mut line =
            serde_json::to_string(&request).map_err(|e| SendError::Rejected(e.to_string()))?;
        line.push('\n');
        writer
            .write_all(line.as_bytes())
            .await
            .map_err(|e| SendError::Rejected(format!("write failed: {e}")))?;
        writer
            .flush()
            .await
            .map_err(|e| SendError::Unknown(format!("flush failed: {e}")))?;
        let mut answer = Vec::new();
        let mut reader = BufReader::new(reader);
        match read_line(&mut reader, &mut answer, MAX_ANSWER_BYTES).await {
            Ok(Line::Eof) => Err(SendError::Unknown(
                "connection closed before an answer".into(),
            )),
            Ok(Line::TooLong) => Err(SendError::Unknown(format!(
                "answer longer than {MAX_ANSWER_BYTES} bytes"
            ))),
            Err(e) => Err(SendError::Unknown(format!("read failed: {e}"))),
            Ok(Line::Read(_)) => match serde_json::from_slice::<ClientResponse>(&answer) {
                Ok(ClientResponse::Sent { seq, .. }) => Ok(seq),
                Ok(ClientResponse::Failed {
                    error,
                    definite: true,
                    ..
                }) => Err(SendError::Rejected(error)),
                Ok(ClientResponse::Failed { error, .. }) => Err(SendError::Unknown(error)),
                _ => Err(SendError::Unknown(format!(
                    "unexpected answer: {}",
                    String::from_utf8_lossy(&answer).trim()
                ))),
            },
        }
    };
    match within(timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(SendError::Unknown(format!(
            "no answer within {} ms",
            timeout.as_millis()
        ))),
    }
}
