//! `chat-node`: one total-order chat server on real sockets.
//!
//! ```text
//! cargo real --bin chat-node -- --id 1 --listen 127.0.0.1:7001 --client-listen 127.0.0.1:8001 \
//!     --peers 2=127.0.0.1:7002,3=127.0.0.1:7003 --data-dir data
//! ```
//! Events (roles, deliveries) are printed as JSON lines on stdout; clients connect to
//! `--client-listen` (see `chat-client`).

use clap::Parser;
use nodes::chat::{self, ChatConfig, ChatNodeConfig, Commit};
use nodes::real::ElectionArgs;
use std::net::SocketAddr;

/// Flags mirror the scenario `[config]` knobs.
#[derive(Parser, Debug)]
#[command(
    version,
    about = "Total-order chat node (seed 004): sequencer, bully election, durable log"
)]
struct Args {
    #[command(flatten)]
    election: ElectionArgs,
    /// Address clients connect to.
    #[arg(long)]
    client_listen: SocketAddr,
    /// `majority`: acknowledge once a majority stored it; `leader`: once sequenced (seed).
    #[arg(long, default_value = "majority", value_parser = parse_commit)]
    commit: Commit,
}

fn parse_commit(text: &str) -> Result<Commit, String> {
    match text {
        "majority" => Ok(Commit::Majority),
        "leader" => Ok(Commit::Leader),
        _ => Err(format!(
            "expected \"majority\" or \"leader\", got \"{text}\""
        )),
    }
}

fn main() {
    let args = Args::parse();
    nodes::real::exit_on_usage_error::<Args>(args.election.validate().and_then(|()| {
        let own = args.client_listen;
        if own == args.election.listen || args.election.peers.iter().any(|p| p.1 == own) {
            Err(format!(
                "--client-listen {own} is also a peer address (this node's or a peer's)"
            ))
        } else {
            Ok(())
        }
    }));
    nodes::real::block_on("chat-node", || async move {
        let (election, peers) = args.election.config();
        let config = ChatNodeConfig {
            chat: ChatConfig {
                election,
                commit: args.commit,
            },
            listen: args.election.listen,
            client_listen: args.client_listen,
            peers,
        };
        let env = args.election.env("chat")?;
        chat::run(config, env).await.map_err(|e| e.to_string())
    });
}
