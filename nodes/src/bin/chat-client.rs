//! `chat-client`: type a line, see the ordered stream with sequence numbers.
//!
//! ```text
//! cargo real --bin chat-client -- --node 127.0.0.1:8001 --name alice
//! cargo real --bin chat-client -- --node 127.0.0.1:8001,127.0.0.1:8002 --watch
//! ```
//! Every delivered message is printed as `#SEQ <id> text`, in total order; each line you
//! type is sent with a unique id (retried under the same id, so never delivered twice) and
//! confirmed with `sent #SEQ` on stderr. `--watch` only prints the stream. When a node
//! fails, the client moves to the next one given (or retries the only one); the stream
//! resumes after the last message printed.
//!
//! Ids are `<name>-<session>-<n>`: the session is drawn at random when the client starts,
//! so a restarted client with the same `--name` never reuses an id of its earlier run
//! (the node would take the new message for a retry of the old one).

use clap::Parser;
use nodes::chat::client::{send, SendError, MAX_ANSWER_BYTES};
use nodes::chat::message::{ClientRequest, Delivery};
use nodes::lines::{read_line, Line};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[derive(Parser, Debug)]
#[command(version, about = "Terminal client for chat-node")]
struct Args {
    /// Chat nodes' client addresses, comma separated; the first is used until it fails.
    #[arg(long, value_delimiter = ',', required = true)]
    node: Vec<SocketAddr>,
    /// Prefix of message ids (default: chat-<pid>).
    #[arg(long)]
    name: Option<String>,
    /// Print the stream from this sequence number on.
    #[arg(long, default_value_t = 1)]
    from: u64,
    /// Only print the stream; do not read stdin.
    #[arg(long)]
    watch: bool,
    /// How long to keep retrying one message.
    #[arg(long, default_value = "10s", value_parser = nodes::duration::parse_positive)]
    give_up_after: Duration,
}

/// Pause before reconnecting the stream; doubled while every node fails, up to the cap.
const RECONNECT_FIRST: Duration = Duration::from_millis(200);
const RECONNECT_CAP: Duration = Duration::from_secs(2);

fn main() {
    let args = Args::parse();
    if args.name.as_deref() == Some("") {
        nodes::real::exit_on_usage_error::<Args>(Err("--name must not be empty".into()));
    }
    nodes::real::block_on("chat-client", || async move {
        let name = args
            .name
            .clone()
            .unwrap_or_else(|| format!("chat-{}", std::process::id()));
        // Outside any simulation: a real random session, so ids differ across restarts.
        let session = format!("{:012x}", rand::random::<u64>() >> 16);
        let stream = tokio::spawn(print_stream(args.node.clone(), args.from));
        if !args.watch {
            let mut input = BufReader::new(tokio::io::stdin());
            let mut raw = Vec::new();
            let mut n = 0u64;
            let mut node = 0;
            while let Some(line) = next_input_line(&mut input, &mut raw).await {
                if line.trim().is_empty() {
                    continue;
                }
                n += 1;
                let id = format!("{name}-{session}-{n}");
                match send_with_retries(&args.node, &mut node, &id, &line, args.give_up_after).await
                {
                    Ok(seq) => eprintln!("sent #{seq} ({id})"),
                    Err(why) => eprintln!("NOT SENT ({id}): {why}"),
                }
            }
        }
        stream.await.map_err(|e| e.to_string())
    });
}

/// The next line of the user's input, without its line end; `None` at the end (or a read
/// error, which is said). A line that is not UTF-8 comes back with its bad bytes replaced,
/// not taken as the end of the input.
async fn next_input_line<R: AsyncBufReadExt + Unpin>(
    input: &mut R,
    raw: &mut Vec<u8>,
) -> Option<String> {
    raw.clear();
    match input.read_until(b'\n', raw).await {
        Ok(0) => None,
        Ok(_) => {
            let line = String::from_utf8_lossy(raw);
            Some(line.trim_end_matches(['\n', '\r']).to_string())
        }
        Err(e) => {
            eprintln!("chat-client: cannot read stdin: {e}");
            None
        }
    }
}

/// Sends under one id until a node confirms it or `give_up_after` passes, moving to the
/// next node after each failed attempt (`node` remembers the one that last worked).
async fn send_with_retries(
    nodes: &[SocketAddr],
    node: &mut usize,
    id: &str,
    text: &str,
    give_up_after: Duration,
) -> Result<u64, String> {
    let deadline = tokio::time::Instant::now() + give_up_after;
    let mut last = String::new();
    while tokio::time::Instant::now() < deadline {
        let addr = nodes[*node % nodes.len()];
        match send(addr, id, text, Duration::from_secs(2)).await {
            Ok(seq) => return Ok(seq),
            Err(SendError::Rejected(why)) if why.contains("already used") => {
                return Err(why);
            }
            Err(SendError::Rejected(why)) | Err(SendError::Unknown(why)) => {
                last = format!("{addr}: {why}");
                *node += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Err(format!("gave up: {last}"))
}

/// Prints the delivered stream from `from` on, forever: when a node closes the stream or
/// cannot be reached, reconnects (to the next node, if several) from the message after
/// the last one printed.
async fn print_stream(nodes: Vec<SocketAddr>, from: u64) {
    let mut next = from.max(1);
    let mut backoff = RECONNECT_FIRST;
    for k in 0.. {
        let node = nodes[k % nodes.len()];
        let before = next;
        let why = follow(node, &mut next).await;
        if next > before {
            backoff = RECONNECT_FIRST; // that node served: the next failure is fresh
        }
        eprintln!("stream from {node}: {why}; reconnecting from #{next}");
        tokio::time::sleep(backoff).await;
        if k % nodes.len() == nodes.len() - 1 {
            backoff = (backoff * 2).min(RECONNECT_CAP);
        }
    }
}

/// Follows one node's stream from `next`, advancing it past every message printed;
/// returns why the stream ended.
async fn follow(node: SocketAddr, next: &mut u64) -> String {
    let connect =
        tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(node));
    let stream = match connect.await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return format!("cannot connect: {e}"),
        Err(_) => return "connect timed out".into(),
    };
    let (reader, mut writer) = tokio::io::split(stream);
    let Ok(mut request) = serde_json::to_string(&ClientRequest::Subscribe { from: *next }) else {
        return "cannot encode the request".into();
    };
    request.push('\n');
    if let Err(e) = writer.write_all(request.as_bytes()).await {
        return format!("write failed: {e}");
    }
    if let Err(e) = writer.flush().await {
        return format!("write failed: {e}");
    }
    let mut reader = BufReader::new(reader);
    let mut line = Vec::new();
    loop {
        match read_line(&mut reader, &mut line, MAX_ANSWER_BYTES).await {
            Ok(Line::Read(_)) => {}
            Ok(Line::Eof) => return "closed".into(),
            Ok(Line::TooLong) => return format!("a line over {MAX_ANSWER_BYTES} bytes"),
            Err(e) => return format!("read failed: {e}"),
        }
        match serde_json::from_slice::<Delivery>(&line) {
            Ok(d) if d.seq < *next => {} // already printed (from the node before)
            Ok(d) => {
                println!("#{} <{}> {}", d.seq, d.id, d.text);
                *next = d.seq + 1;
            }
            Err(_) => eprintln!("{}", String::from_utf8_lossy(&line).trim_end()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line that is not UTF-8 does not end the input: it and the lines after it come.
    #[tokio::test]
    async fn input_goes_on_past_a_line_that_is_not_utf8() {
        let mut input: &[u8] = b"one\r\ngarbage \xff line\nthree";
        let mut raw = Vec::new();
        let mut lines = Vec::new();
        while let Some(line) = next_input_line(&mut input, &mut raw).await {
            lines.push(line);
        }
        assert_eq!(lines, ["one", "garbage \u{fffd} line", "three"]);
    }
}
