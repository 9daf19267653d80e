//! The peer handshake: both ends of a peer connection prove the cluster key before either
//! reads the other's messages, so one connection per pair of nodes carries both directions.
//!
//! Three JSON lines. The acceptor sends a fresh random challenge; the connecting side
//! answers with a hello naming itself, an HMAC of that challenge under the cluster key
//! ([`crate::auth`]) and a challenge of its own; the acceptor answers with a proof, an HMAC
//! of the connecting side's challenge and its own id. Each MAC is for a purpose of its own,
//! so neither line can be replayed as the other. The connecting side may write messages
//! right after its hello (the acceptor reads none unless the hello proves the key); the
//! acceptor writes only after its proof (the connecting side reads none unless the proof
//! proves the key, from the peer it dialled).

use crate::auth::ClusterKey;
use crate::lines::{read_line, Line};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::io;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

/// Longest accepted handshake line.
pub const MAX_HANDSHAKE_BYTES: usize = 512;
/// What a hello's MAC is for (see [`ClusterKey::sign`]).
const HELLO_PURPOSE: &str = "simnode peer hello";
/// What a proof's MAC is for.
const PROOF_PURPOSE: &str = "simnode peer proof";

/// First line, from the acceptor: a fresh random challenge.
#[derive(Serialize, Deserialize)]
struct Challenge {
    challenge: String,
}

/// Second line, from the connecting side: who it is, its proof of the key for the
/// acceptor's challenge, and its own challenge for the acceptor.
#[derive(Serialize, Deserialize)]
struct Hello {
    hello: u64,
    mac: String,
    challenge: String,
}

/// Third line, from the acceptor: its proof of the key for the connecting side's challenge.
#[derive(Serialize, Deserialize)]
struct Proof {
    proof: String,
}

/// Why a handshake failed: the peer is refused (with the reason to report), the
/// connection was lost before the peer said enough to judge it, or it was lost after the
/// peer proved the key (nothing to refuse: the acceptor's proof could not be sent).
#[derive(Debug, PartialEq, Eq)]
pub enum Failed {
    Refused(&'static str),
    Lost,
    LostAfterHello,
}

fn fresh_challenge() -> String {
    crate::auth::hex(&madsim::rand::thread_rng().gen::<[u8; 16]>())
}

fn mac(key: &ClusterKey, purpose: &str, challenge: &str, id: u64) -> String {
    key.sign(purpose, &[challenge.as_bytes(), id.to_string().as_bytes()])
}

fn proves(key: &ClusterKey, purpose: &str, challenge: &str, id: u64, mac: &str) -> bool {
    key.verify(
        purpose,
        &[challenge.as_bytes(), id.to_string().as_bytes()],
        mac,
    )
}

/// Writes `value` as one JSON line, flushed.
async fn send_line<W: AsyncWrite + Unpin, T: Serialize>(out: &mut W, value: &T) -> io::Result<()> {
    let mut line = serde_json::to_vec(value)?;
    line.push(b'\n');
    out.write_all(&line).await?;
    out.flush().await
}

/// Reads one handshake line of type `T` (`what` names it in refusals).
async fn take_line<R: AsyncRead + Unpin, T: for<'de> Deserialize<'de>>(
    lines: &mut BufReader<R>,
    what: &'static str,
) -> Result<T, Failed> {
    let mut line = Vec::new();
    match read_line(lines, &mut line, MAX_HANDSHAKE_BYTES).await {
        Ok(Line::Read(_)) => serde_json::from_slice(&line).map_err(|_| Failed::Refused(what)),
        Ok(Line::TooLong) => Err(Failed::Refused("handshake line too long")),
        Ok(Line::Eof) | Err(_) => Err(Failed::Lost),
    }
}

/// The acceptor's half on `stream` (buffered for reading, written through underneath), as
/// node `me`: sends a challenge, checks the hello, sends the proof; returns the id of the
/// peer that proved the key. Bytes after the hello stay in `stream`'s buffer.
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut BufReader<S>,
    me: u64,
    key: &ClusterKey,
) -> Result<u64, Failed> {
    let challenge = Challenge {
        challenge: fresh_challenge(),
    };
    let sent = send_line(stream.get_mut(), &challenge);
    sent.await.map_err(|_| Failed::Lost)?;
    let challenge = challenge.challenge;
    let hello: Hello = take_line(stream, "not a hello").await?;
    if !proves(key, HELLO_PURPOSE, &challenge, hello.hello, &hello.mac) {
        return Err(Failed::Refused("bad cluster MAC"));
    }
    let proof = Proof {
        proof: mac(key, PROOF_PURPOSE, &hello.challenge, me),
    };
    let sent = send_line(stream.get_mut(), &proof);
    sent.await.map_err(|_| Failed::LostAfterHello)?;
    Ok(hello.hello)
}

/// The connecting half up to its hello, as node `me`: reads the challenge and answers it;
/// returns the challenge of its own that the acceptor's proof must answer.
pub async fn hello<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    me: u64,
    key: &ClusterKey,
) -> io::Result<String> {
    let challenge: Challenge = {
        // Nothing follows the challenge until the hello: this reader takes no more.
        let mut lines = BufReader::with_capacity(MAX_HANDSHAKE_BYTES, &mut *stream);
        take_line(&mut lines, "not a challenge")
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?
    };
    let mine = fresh_challenge();
    let hello = Hello {
        hello: me,
        mac: mac(key, HELLO_PURPOSE, &challenge.challenge, me),
        challenge: mine.clone(),
    };
    send_line(stream, &hello).await?;
    Ok(mine)
}

/// The connecting half's last step: whether the acceptor's proof, read from `lines`,
/// answers `challenge` as node `peer` (the one dialled). Bytes after it stay buffered.
pub async fn check_proof<R: AsyncRead + Unpin>(
    lines: &mut BufReader<R>,
    peer: u64,
    challenge: &str,
    key: &ClusterKey,
) -> Result<(), Failed> {
    let proof: Proof = take_line(lines, "not a proof").await?;
    if proves(key, PROOF_PURPOSE, challenge, peer, &proof.proof) {
        Ok(())
    } else {
        Err(Failed::Refused("bad cluster MAC in its proof"))
    }
}
