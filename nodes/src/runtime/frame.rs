//! Peer message frames: the compact binary form of one message on a peer connection.
//!
//! A frame is a 4-byte big-endian length, then that many bytes of [postcard]: the
//! sender's number for the message (see [`crate::runtime::wire`]) and the message. Both
//! ends run the same build, so nothing self-describing is needed; JSON cost more than the
//! protocols it carried (issue 16). Decoding refuses, with a reason, a frame over the cap,
//! one that does not decode as a message, and one with bytes left over — never a panic.

use serde::{de::DeserializeOwned, Serialize};
use std::fmt;

/// Bytes of a frame's length prefix.
pub const HEADER_BYTES: usize = 4;

/// Why a frame was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The length prefix announces more than the cap.
    TooLong {
        /// The announced length.
        length: usize,
        /// The cap.
        max: usize,
    },
    /// The body is not an encoded message.
    Garbled(String),
    /// The body holds a message and then more bytes.
    TrailingBytes(usize),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooLong { length, max } => {
                write!(
                    f,
                    "a peer message of {length} bytes, over the {max}-byte cap"
                )
            }
            FrameError::Garbled(why) => write!(f, "not a peer message ({why})"),
            FrameError::TrailingBytes(n) => {
                write!(f, "a peer message followed by {n} stray bytes")
            }
        }
    }
}

impl std::error::Error for FrameError {}

#[derive(Serialize)]
struct Outgoing<'a, M> {
    n: u64,
    m: &'a M,
}

#[derive(serde::Deserialize)]
struct Incoming<M> {
    n: u64,
    m: M,
}

/// Message `message`, numbered `n` by its sender, as one frame (length prefix included);
/// `None` only if the message cannot be encoded (a map with non-string keys, say).
pub fn encode<M: Serialize>(n: u64, message: &M) -> Option<Vec<u8>> {
    let mut frame = Vec::with_capacity(64);
    encode_into(n, message, &mut frame).then_some(frame)
}

/// [`encode`] into `frame` (cleared first), so a sender can reuse one buffer; `false`
/// (and `frame` empty) if the message cannot be encoded.
pub fn encode_into<M: Serialize>(n: u64, message: &M, frame: &mut Vec<u8>) -> bool {
    frame.clear();
    frame.extend_from_slice(&[0; HEADER_BYTES]);
    let encoded = postcard::to_extend(&Outgoing { n, m: message }, std::mem::take(frame));
    let Ok(encoded) = encoded else {
        return false;
    };
    *frame = encoded;
    let Ok(length) = u32::try_from(frame.len() - HEADER_BYTES) else {
        frame.clear();
        return false;
    };
    frame[..HEADER_BYTES].copy_from_slice(&length.to_be_bytes());
    true
}

/// The body length a frame header announces, refused if over `max`.
pub fn body_length(header: [u8; HEADER_BYTES], max: usize) -> Result<usize, FrameError> {
    let length = u32::from_be_bytes(header) as usize;
    if length > max {
        return Err(FrameError::TooLong { length, max });
    }
    Ok(length)
}

/// A frame's body (after the header) as the sender's number and the message.
pub fn decode<M: DeserializeOwned>(body: &[u8]) -> Result<(u64, M), FrameError> {
    let (Incoming { n, m }, rest) = postcard::take_from_bytes::<Incoming<M>>(body)
        .map_err(|e| FrameError::Garbled(e.to_string()))?;
    if !rest.is_empty() {
        return Err(FrameError::TrailingBytes(rest.len()));
    }
    Ok((n, m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::message::{Entry, Message as Chat, Wire};
    use crate::election::Message;

    fn body(frame: &[u8]) -> &[u8] {
        let header = frame[..HEADER_BYTES].try_into().expect("a header");
        let length = body_length(header, 1 << 20).expect("under the cap");
        assert_eq!(length, frame.len() - HEADER_BYTES);
        &frame[HEADER_BYTES..]
    }

    #[test]
    fn election_and_chat_messages_come_back_as_sent() {
        let heartbeat = Message::Heartbeat {
            from: 5,
            term: 3,
            sent_at: u64::MAX,
        };
        let frame = encode(7, &heartbeat).expect("encodes");
        assert!(frame.len() < 24, "{} bytes", frame.len());
        assert_eq!(decode::<Message>(body(&frame)), Ok((7, heartbeat.clone())));
        let deliver = Wire::Chat(Chat::Deliver {
            from: 1,
            term: 2,
            entries: vec![Entry {
                seq: 1,
                term: 2,
                id: "c1-1".into(),
                text: "hé\n\"quoted\"".into(),
            }],
        });
        let frame = encode(1, &deliver).expect("encodes");
        assert_eq!(decode::<Wire>(body(&frame)), Ok((1, deliver)));
        let election = Wire::Election(heartbeat);
        let frame = encode(2, &election).expect("encodes");
        assert_eq!(decode::<Wire>(body(&frame)), Ok((2, election)));
    }

    #[test]
    fn garbled_truncated_padded_and_oversized_frames_are_refused_with_a_reason() {
        let frame = encode(9, &Message::Election { from: 1, term: 4 }).expect("encodes");
        let whole = body(&frame);
        // Cut short: every prefix is refused, none panics.
        for cut in 0..whole.len() {
            let refused = decode::<Message>(&whole[..cut]).expect_err("a prefix");
            assert!(matches!(refused, FrameError::Garbled(_)), "{refused:?}");
        }
        // A variant number no message has.
        let mut wrong = whole.to_vec();
        wrong[1] = 200;
        let refused = decode::<Message>(&wrong).expect_err("unknown variant");
        assert!(
            refused.to_string().starts_with("not a peer message"),
            "{refused}"
        );
        // Stray bytes after a whole message.
        let mut padded = whole.to_vec();
        padded.extend_from_slice(b"xx");
        assert_eq!(
            decode::<Message>(&padded),
            Err(FrameError::TrailingBytes(2))
        );
        // A JSON line of the old wire form is not a frame body either.
        let json = br#"{"type":"GRANT","from":1,"term":18446744073709551615,"granted":true}"#;
        assert!(decode::<Message>(json).is_err());
        // Noise never panics.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2000 {
            let len = (state % 40) as usize;
            let noise = crate::noise::bytes(&mut state, len);
            let _ = decode::<Wire>(&noise);
        }
        let refused = body_length((u32::MAX).to_be_bytes(), 1 << 20).expect_err("too long");
        assert_eq!(
            refused.to_string(),
            "a peer message of 4294967295 bytes, over the 1048576-byte cap"
        );
    }
}
