//! Newline-delimited input with its size cap applied *before* buffering.
//!
//! `read_line` / `read_until` buffer a whole line before the caller can look at its
//! length: a peer that sends 400 MB without a newline makes the node hold 400 MB. Every
//! line-delimited reader of the nodes (peer ports, client ports, the chat client) reads
//! through [`read_line`] instead, which never takes more than `max + 1` bytes of one line
//! from the stream.

use std::io;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};

/// The outcome of one [`read_line`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Line {
    /// A line (its newline included, if the stream did not end first) of this many bytes.
    Read(usize),
    /// The stream ended before any byte of a new line.
    Eof,
    /// The line is longer than the cap: at most `max + 1` bytes of it were read, and the
    /// stream is now mid-line. The caller should refuse it and close the connection.
    TooLong,
}

/// Reads one line into `line` (cleared first), taking at most `max + 1` bytes from
/// `reader`, so a line without an end never costs more than the cap in memory.
pub async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
    max: usize,
) -> io::Result<Line> {
    line.clear();
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    let n = (&mut *reader).take(limit).read_until(b'\n', line).await?;
    Ok(if n == 0 {
        Line::Eof
    } else if n > max {
        Line::TooLong
    } else {
        Line::Read(n)
    })
}

/// Test helpers: in-memory streams that count what was taken from them.
#[cfg(test)]
pub(crate) mod testing {
    use std::pin::Pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll};
    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

    /// A stream that yields `prefix`, then `flood` bytes of `x` with no newline, then EOF;
    /// it counts the bytes taken and keeps whatever is written to it.
    pub struct Flood {
        prefix: Vec<u8>,
        flood: usize,
        /// Bytes handed to the reader so far.
        pub taken: Arc<AtomicUsize>,
        /// Bytes written to the stream.
        pub written: Arc<Mutex<Vec<u8>>>,
    }

    impl Flood {
        pub fn new(prefix: &[u8], flood: usize) -> Flood {
            Flood {
                prefix: prefix.to_vec(),
                flood,
                taken: Arc::default(),
                written: Arc::default(),
            }
        }
    }

    impl AsyncRead for Flood {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            let this = &mut *self;
            let done = this.taken.load(Ordering::Relaxed);
            let total = this.prefix.len() + this.flood;
            let n = buf.remaining().min(total.saturating_sub(done));
            let from_prefix = this.prefix.len().saturating_sub(done).min(n);
            buf.put_slice(&this.prefix[done.min(this.prefix.len())..][..from_prefix]);
            buf.put_slice(&vec![b'x'; n - from_prefix]);
            this.taken.fetch_add(n, Ordering::Relaxed);
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncWrite for Flood {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            self.written
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(data);
            Poll::Ready(Ok(data.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// Runs a future that never waits on anything but in-memory streams.
    pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        for _ in 0..1_000_000 {
            if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                return out;
            }
        }
        panic!("the future kept waiting");
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{block_on, Flood};
    use super::*;
    use std::sync::atomic::Ordering;
    use tokio::io::BufReader;

    #[test]
    fn a_line_without_end_is_refused_after_the_cap() {
        let flood = Flood::new(b"short\n", 64 << 20);
        let taken = flood.taken.clone();
        let mut reader = BufReader::new(flood);
        let mut line = Vec::new();
        let first = block_on(read_line(&mut reader, &mut line, 1024)).unwrap();
        assert_eq!((first, line.as_slice()), (Line::Read(6), &b"short\n"[..]));
        let second = block_on(read_line(&mut reader, &mut line, 1024)).unwrap();
        assert_eq!(second, Line::TooLong);
        assert!(line.len() <= 1025, "{} bytes buffered", line.len());
        // What was taken from the stream is bounded by the cap plus one buffer.
        assert!(taken.load(Ordering::Relaxed) <= 6 + 1025 + 8192);
    }

    #[test]
    fn lines_up_to_the_cap_and_eof() {
        let mut reader: &[u8] = b"abc\nabcd\nlast";
        let mut line = Vec::new();
        let max = 4;
        assert_eq!(
            block_on(read_line(&mut reader, &mut line, max)).unwrap(),
            Line::Read(4)
        );
        assert_eq!(
            block_on(read_line(&mut reader, &mut line, max)).unwrap(),
            Line::TooLong
        );
        let mut reader: &[u8] = b"last";
        assert_eq!(
            block_on(read_line(&mut reader, &mut line, max)).unwrap(),
            Line::Read(4)
        );
        assert_eq!(
            block_on(read_line(&mut reader, &mut line, max)).unwrap(),
            Line::Eof
        );
    }
}
