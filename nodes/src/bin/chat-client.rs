//! `chat-client`: type a line, see the ordered stream with sequence numbers.
//!
//! ```text
//! cargo real --bin chat-client -- --node 127.0.0.1:8001 --name alice
//! ```
//! Every delivered message is printed as `#SEQ <id> text`, in total order; each line you
//! type is sent with a unique id (retried under the same id, so never delivered twice) and
//! confirmed with `sent #SEQ` on stderr. `--watch` only prints the stream.

use clap::Parser;
use nodes::chat::client::{send, SendError};
use nodes::chat::message::{ClientRequest, Delivery};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[derive(Parser, Debug)]
#[command(version, about = "Terminal client for chat-node")]
struct Args {
    /// A chat node's client address.
    #[arg(long)]
    node: SocketAddr,
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
    #[arg(long, default_value = "10s", value_parser = nodes::duration::parse)]
    give_up_after: Duration,
}

fn main() {
    let args = Args::parse();
    nodes::real::block_on("chat-client", || async move {
        let name = args
            .name
            .clone()
            .unwrap_or_else(|| format!("chat-{}", std::process::id()));
        let stream = tokio::spawn(print_stream(args.node, args.from));
        if !args.watch {
            let mut lines = BufReader::new(tokio::io::stdin()).lines();
            let mut n = 0u64;
            while let Ok(Some(line)) = lines.next_line().await {
                if line.trim().is_empty() {
                    continue;
                }
                n += 1;
                let id = format!("{name}-{n}");
                match send_with_retries(args.node, &id, &line, args.give_up_after).await {
                    Ok(seq) => eprintln!("sent #{seq} ({id})"),
                    Err(why) => eprintln!("NOT SENT ({id}): {why}"),
                }
            }
        }
        stream.await.map_err(|e| e.to_string())?
    });
}

async fn send_with_retries(
    node: SocketAddr,
    id: &str,
    text: &str,
    give_up_after: Duration,
) -> Result<u64, String> {
    let deadline = tokio::time::Instant::now() + give_up_after;
    let mut last = String::new();
    while tokio::time::Instant::now() < deadline {
        match send(node, id, text, Duration::from_secs(2)).await {
            Ok(seq) => return Ok(seq),
            Err(SendError::Rejected(why)) | Err(SendError::Unknown(why)) => last = why,
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Err(format!("gave up: {last}"))
}

async fn print_stream(node: SocketAddr, from: u64) -> Result<(), String> {
    let stream = tokio::net::TcpStream::connect(node)
        .await
        .map_err(|e| format!("cannot connect to {node}: {e}"))?;
    let (reader, mut writer) = tokio::io::split(stream);
    let mut request =
        serde_json::to_string(&ClientRequest::Subscribe { from }).map_err(|e| e.to_string())?;
    request.push('\n');
    writer
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    writer.flush().await.map_err(|e| e.to_string())?;
    let mut lines = BufReader::new(reader).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        match serde_json::from_str::<Delivery>(&line) {
            Ok(d) => println!("#{} <{}> {}", d.seq, d.id, d.text),
            Err(_) => eprintln!("{line}"),
        }
    }
    Err(format!("{node} closed the stream"))
}
