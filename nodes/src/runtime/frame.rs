//! Peer message frames: the compact binary form of one message on a peer connection.
//!
//! A frame is a 4-byte big-endian length, then that many bytes of [postcard]: the
//! sender's number for the message (see [`crate::runtime::wire`]) and the message. Both
//! ends run the same build, so nothing self-describing is needed; JSON cost more than the
//! protocols it carried (issue 16). Decoding refuses, with a reason, a frame over the cap,
//! one that does not decode as a message, and one with bytes left over — never a panic.

use serde::{de::DeserializeOwned, Serialize};
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, ReadBuf};

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

/// How a message is written in a frame's body, after its sender's number: postcard's
/// bytes, by serde unless the type writes those same bytes itself (the election's
/// messages, the commonest frames of all, do: serde's generic path cost a third of the
/// testbed's own work per message, issue 16).
pub trait Body: Sized {
    /// Appends the message to `out`; `false` if it cannot be encoded (`out` then holds
    /// garbage after its old length).
    fn put(&self, out: &mut Vec<u8>) -> bool
    where
        Self: Serialize,
    {
        put_postcard(self, out)
    }

    /// The message at the start of `bytes`, and the bytes after it.
    fn take(bytes: &[u8]) -> Result<(Self, &[u8]), FrameError>
    where
        Self: DeserializeOwned,
    {
        take_postcard(bytes)
    }
}

/// [`Body::put`] by serde: most messages fit a small buffer on the stack, written in one
/// pass without the per-byte growth checks of a vector; a longer one goes into `out`.
pub fn put_postcard<M: Serialize>(message: &M, out: &mut Vec<u8>) -> bool {
    let mut small = [0u8; SMALL_FRAME];
    match postcard::to_slice(message, &mut small) {
        Ok(body) => {
            out.extend_from_slice(body);
            true
        }
        Err(postcard::Error::SerializeBufferFull) => {
            match postcard::to_extend(message, std::mem::take(out)) {
                Ok(encoded) => {
                    *out = encoded;
                    true
                }
                Err(_) => false, // `out` was taken: left empty
            }
        }
        Err(_) => false,
    }
}

/// [`Body::take`] by serde.
pub fn take_postcard<M: DeserializeOwned>(bytes: &[u8]) -> Result<(M, &[u8]), FrameError> {
    postcard::take_from_bytes(bytes).map_err(|e| FrameError::Garbled(e.to_string()))
}

/// Appends `value` as postcard writes a `u64`: seven bits a byte, low first.
pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A `u64` as postcard reads one (at most ten bytes, the last holding one bit), and the
/// bytes after it; postcard's own reasons when it is not one.
#[inline]
pub fn take_varint(bytes: &[u8]) -> Result<(u64, &[u8]), FrameError> {
    match varint(bytes) {
        Some(taken) => Ok(taken),
        None => Err(varint_refusal(bytes)),
    }
}

/// [`take_varint`] without the reason: `None` for bytes that are not a `u64`.
#[inline]
pub fn varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    match bytes.split_first() {
        Some((&byte, rest)) if byte < 0x80 => Some((u64::from(byte), rest)),
        _ => long_varint(bytes),
    }
}

fn long_varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut value = 0u64;
    for (i, &byte) in bytes.iter().take(10).enumerate() {
        value |= u64::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return (i < 9 || byte <= 1).then(|| (value, &bytes[i + 1..]));
        }
    }
    None
}

/// Why `bytes` (which [`varint`] refused) do not start with a `u64`, in postcard's words.
#[cold]
fn varint_refusal(bytes: &[u8]) -> FrameError {
    let ended = bytes.len() < 10 && bytes.iter().all(|&byte| byte & 0x80 != 0);
    garbled(if ended {
        postcard::Error::DeserializeUnexpectedEnd
    } else {
        postcard::Error::DeserializeBadVarint
    })
}

#[cold]
fn garbled(why: postcard::Error) -> FrameError {
    FrameError::Garbled(why.to_string())
}

/// Message `message`, numbered `n` by its sender, as one frame (length prefix included);
/// `None` only if the message cannot be encoded (a map with non-string keys, say).
pub fn encode<M: Body + Serialize>(n: u64, message: &M) -> Option<Vec<u8>> {
    let mut frame = Vec::with_capacity(64);
    encode_into(n, message, &mut frame).then_some(frame)
}

/// [`encode`] into `frame` (cleared first), so a sender can reuse one buffer; `false`
/// (and `frame` empty) if the message cannot be encoded.
pub fn encode_into<M: Body + Serialize>(n: u64, message: &M, frame: &mut Vec<u8>) -> bool {
    frame.clear();
    frame.extend_from_slice(&[0; HEADER_BYTES]);
    put_varint(frame, n);
    if !message.put(frame) {
        frame.clear();
        return false;
    }
    let Ok(length) = u32::try_from(frame.len() - HEADER_BYTES) else {
        frame.clear();
        return false;
    };
    frame[..HEADER_BYTES].copy_from_slice(&length.to_be_bytes());
    true
}

/// Bytes of a message body encoded on the stack before falling back to the vector.
const SMALL_FRAME: usize = 128;

/// The body length a frame header announces, refused if over `max`.
pub fn body_length(header: [u8; HEADER_BYTES], max: usize) -> Result<usize, FrameError> {
    let length = u32::from_be_bytes(header) as usize;
    if length > max {
        return Err(FrameError::TooLong { length, max });
    }
    Ok(length)
}

/// A frame's body (after the header) as the sender's number and the message.
pub fn decode<M: Body + DeserializeOwned>(body: &[u8]) -> Result<(u64, M), FrameError> {
    let (n, rest) = take_varint(body)?;
    let (m, rest) = M::take(rest)?;
    if !rest.is_empty() {
        return Err(FrameError::TrailingBytes(rest.len()));
    }
    Ok((n, m))
}

/// Bytes a read buffer starts with (a connection of small messages needs no more).
pub const READ_START: usize = 1024;
/// A read buffer that a read fills is doubled up to this, so a busy connection takes more
/// per read; one grown past it for a long frame is given back once it is empty.
const KEEP_BUFFER: usize = 64 << 10;

/// The frames of one byte stream, read straight into a buffer of its own: every complete
/// frame in it is taken without another read, a partial one waits for more bytes.
///
/// A frame over `max` is refused from its header, before its body is buffered; a longer
/// frame under the cap grows the buffer as its bytes arrive (at most doubling it), so
/// announcing a large frame costs nothing until it is sent.
pub struct Reader<S> {
    stream: S,
    max: usize,
    /// `buf[start..end]` is read and not yet taken; the rest is room.
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl<S: AsyncRead + Unpin> Reader<S> {
    /// Frames of at most `max` bytes from `stream`, after `early`: bytes already read from
    /// it (past a handshake, say).
    pub fn new(stream: S, early: Vec<u8>, max: usize) -> Self {
        let end = early.len();
        let mut buf = early;
        buf.resize(end.max(READ_START), 0);
        Reader {
            stream,
            max,
            buf,
            start: 0,
            end,
        }
    }

    /// The next frame as the sender's number and the message; `None` when the stream ends
    /// (cut short mid-frame too) or fails; `Err` for a frame that is not a message.
    pub fn poll_frame<M: Body + DeserializeOwned>(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<(u64, M), FrameError>>> {
        loop {
            let have = self.end - self.start;
            let need = if have < HEADER_BYTES {
                HEADER_BYTES
            } else {
                let mut header = [0; HEADER_BYTES];
                header.copy_from_slice(&self.buf[self.start..self.start + HEADER_BYTES]);
                let whole = match body_length(header, self.max) {
                    Ok(length) => HEADER_BYTES + length,
                    Err(refused) => return Poll::Ready(Some(Err(refused))),
                };
                if have >= whole {
                    let body = &self.buf[self.start + HEADER_BYTES..self.start + whole];
                    let decoded = decode::<M>(body);
                    self.taken(whole);
                    return Poll::Ready(Some(decoded));
                }
                whole
            };
            match self.fill(cx, need) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0) | Err(_)) => return Poll::Ready(None),
                Poll::Ready(Ok(_)) => {}
            }
        }
    }

    /// Marks `n` bytes from `start` taken; an empty buffer starts over (and is shrunk back
    /// after a long frame).
    fn taken(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            if self.buf.len() > KEEP_BUFFER {
                self.shrink();
            }
        }
    }

    /// Gives back the room a long frame took.
    #[cold]
    fn shrink(&mut self) {
        self.buf = vec![0; KEEP_BUFFER];
    }

    /// Makes room for a frame of `need` bytes from `start`: the partial frame moved to the
    /// front, or the buffer grown (out of line: most reads find room).
    #[cold]
    fn make_room(&mut self, need: usize) {
        if self.start > 0 && self.start + need > self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            // Full of one partial frame longer than the buffer.
            let grown = need.min(self.buf.len() * 2);
            self.buf.resize(grown, 0);
        }
    }

    /// Doubles the buffer after a read that filled it: more may be waiting.
    #[cold]
    fn grow(&mut self) {
        self.buf.resize(self.buf.len() * 2, 0);
    }

    /// Reads once into the room after `end`, making room for a frame of `need` bytes from
    /// `start` first: the partial frame moved to the front, or the buffer grown.
    fn fill(&mut self, cx: &mut Context<'_>, need: usize) -> Poll<std::io::Result<usize>> {
        if self.start + need > self.buf.len() || self.end == self.buf.len() {
            self.make_room(need);
        }
        let mut room = ReadBuf::new(&mut self.buf[self.end..]);
        match Pin::new(&mut self.stream).poll_read(cx, &mut room) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) => {
                let n = room.filled().len();
                let filled = n == room.capacity();
                self.end += n;
                if filled && self.buf.len() < KEEP_BUFFER {
                    self.grow(); // more may be waiting: take more next time
                }
                Poll::Ready(Ok(n))
            }
        }
    }
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

    /// A chat delivery of `count` entries, entry `seq` carrying `text(seq)`.
    fn deliver_many(count: u64, text: impl Fn(u64) -> String) -> Wire {
        Wire::Chat(Chat::Deliver {
            from: 1,
            term: 2,
            entries: (0..count)
                .map(|seq| Entry {
                    seq,
                    term: 2,
                    id: format!("c1-{seq}"),
                    text: text(seq),
                })
                .collect(),
        })
    }

    /// A message whose serializer fails after `after` bytes of padding.
    struct Unencodable {
        after: usize,
    }

    impl Body for Unencodable {}

    impl Serialize for Unencodable {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::{Error, SerializeTuple};
            let mut tuple = s.serialize_tuple(2)?;
            tuple.serialize_element(&vec![0u8; self.after])?;
            drop(tuple);
            Err(S::Error::custom("refused"))
        }
    }

    #[test]
    fn a_message_that_cannot_be_encoded_leaves_the_buffer_empty() {
        for after in [0, 4 * SMALL_FRAME] {
            let mut frame = vec![1, 2, 3];
            assert!(!encode_into(1, &Unencodable { after }, &mut frame));
            assert!(frame.is_empty(), "{after}: {frame:?}");
        }
        assert_eq!(encode(1, &Unencodable { after: 0 }), None);
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
        // Longer than the stack buffer, into a reused buffer that held a short one.
        let long = deliver_many(40, |seq| "x".repeat(seq as usize));
        let mut reused = frame;
        assert!(encode_into(3, &long, &mut reused));
        assert!(reused.len() > SMALL_FRAME);
        assert_eq!(decode::<Wire>(body(&reused)), Ok((3, long)));
    }

    /// Deterministic bytes for the codec tests (xorshift).
    fn noise(state: &mut u64) -> u8 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        (*state >> 24) as u8
    }

    /// The election's hand-written codec is postcard's: the same bytes for every variant
    /// and edge value, and, for any bytes at all (valid, mutated or random), the same
    /// message or the same refusal; its varints are postcard's `u64`s.
    #[test]
    fn election_messages_by_hand_are_postcards_bytes() {
        let values = [0, 1, 127, 128, 300, 1 << 35, u64::MAX - 1, u64::MAX];
        let mut messages = Vec::new();
        for (i, &a) in values.iter().enumerate() {
            let b = values[(i + 3) % values.len()];
            let c = values[(i + 5) % values.len()];
            let yes = i % 2 == 0;
            messages.extend([
                Message::Election { from: a, term: b },
                Message::Answer { from: a, term: b },
                Message::PreVote { from: a, term: b },
                Message::PreVoteReply {
                    from: a,
                    term: b,
                    current: c,
                    granted: yes,
                },
                Message::Coordinator {
                    from: a,
                    term: b,
                    sent_at: c,
                },
                Message::Grant {
                    from: a,
                    term: b,
                    granted: yes,
                },
                Message::Heartbeat {
                    from: a,
                    term: b,
                    sent_at: c,
                },
                Message::HeartbeatAck {
                    from: a,
                    term: b,
                    sent_at: c,
                    ok: yes,
                },
            ]);
        }
        let same = |bytes: &[u8]| {
            assert_eq!(
                <Message as Body>::take(bytes),
                take_postcard::<Message>(bytes),
                "{bytes:?}"
            );
            let postcards = postcard::take_from_bytes::<u64>(bytes)
                .map_err(|e| FrameError::Garbled(e.to_string()));
            assert_eq!(take_varint(bytes), postcards, "{bytes:?}");
        };
        let mut state = 0x9E37_79B9_7F4A_7C15;
        for message in &messages {
            let mut hand = Vec::new();
            assert!(message.put(&mut hand));
            assert_eq!(hand, postcard::to_allocvec(message).expect("encodes"));
            assert_eq!(Message::take(&hand), Ok((message.clone(), &[][..])));
            for cut in 0..hand.len() {
                same(&hand[..cut]);
            }
            for _ in 0..50 {
                let mut mutated = hand.clone();
                let at = noise(&mut state) as usize % mutated.len();
                mutated[at] = noise(&mut state);
                same(&mutated);
            }
        }
        for _ in 0..5_000 {
            let length = noise(&mut state) as usize % 24;
            let bytes: Vec<u8> = (0..length).map(|_| noise(&mut state)).collect();
            same(&bytes);
        }
        // Overlong but valid varints, as postcard accepts them.
        same(&[6, 0x81, 0x80, 0x00, 0x80, 0x00, 0x05]);
        same(&[0x86, 0x00, 1, 2, 3]);
        same(&[0xFF; 11]);
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

    /// A stream that hands out `bytes` in pieces of 1, 2, 3 ... 7 bytes, pending (and
    /// waking at once) before every other piece.
    struct Trickle {
        bytes: Vec<u8>,
        at: usize,
        turn: usize,
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            let this = &mut *self;
            this.turn += 1;
            if this.turn.is_multiple_of(2) {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let piece = (this.turn / 2 % 7 + 1).min(buf.remaining());
            let end = (this.at + piece).min(this.bytes.len());
            buf.put_slice(&this.bytes[this.at..end]);
            this.at = end;
            Poll::Ready(Ok(()))
        }
    }

    /// Frames cut at every byte boundary by the stream, one longer than the reader's
    /// buffer among them, all come back whole and in order; the long one's buffer is given
    /// back after it; the stream's end mid-frame ends the reader quietly.
    #[test]
    fn frames_split_anyhow_by_the_stream_come_back_whole() {
        let long = deliver_many(3000, |_| "some text".repeat(10));
        let short = Wire::Election(Message::Election { from: 3, term: 9 });
        let mut bytes = Vec::new();
        for n in 0..40 {
            let message = if n == 20 { &long } else { &short };
            bytes.extend(encode(n, message).expect("encodes"));
        }
        assert!(bytes.len() > 4 * KEEP_BUFFER, "{} bytes", bytes.len());
        let whole = bytes.len();
        bytes.extend_from_slice(&encode(99, &short).expect("encodes")[..5]);
        let stream = Trickle {
            bytes,
            at: 0,
            turn: 0,
        };
        let mut reader = Reader::new(stream, Vec::new(), 1 << 20);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut got = Vec::new();
        let mut largest = 0;
        for _ in 0..10_000_000 {
            let next = reader.poll_frame::<Wire>(&mut cx);
            largest = largest.max(reader.buf.len());
            match next {
                Poll::Pending => continue,
                Poll::Ready(Some(frame)) => got.push(frame.expect("a message")),
                Poll::Ready(None) => break,
            }
        }
        assert_eq!(reader.stream.at, whole + 5, "read to the end");
        assert_eq!(got.len(), 40);
        for (n, (number, message)) in got.iter().enumerate() {
            assert_eq!(*number, n as u64);
            assert_eq!(message, if n == 20 { &long } else { &short });
        }
        assert!(largest > KEEP_BUFFER, "grown for the long frame: {largest}");
        assert!(
            reader.buf.len() <= KEEP_BUFFER,
            "given back: {}",
            reader.buf.len()
        );
    }
}
