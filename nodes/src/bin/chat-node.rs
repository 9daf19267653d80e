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
use nodes::election::ElectionConfig;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Flags mirror the scenario `[config]` knobs.
#[derive(Parser, Debug)]
#[command(
    version,
    about = "Total-order chat node (seed 004): sequencer, bully election, durable log"
)]
struct Args {
    /// This node's id; the highest live id leads.
    #[arg(long)]
    id: u64,
    /// Address for peer traffic.
    #[arg(long)]
    listen: SocketAddr,
    /// Address clients connect to.
    #[arg(long)]
    client_listen: SocketAddr,
    /// Peers as `id=host:port` (their peer addresses), comma separated.
    #[arg(long, value_delimiter = ',', value_parser = nodes::real::parse_peer)]
    peers: Vec<(u64, SocketAddr)>,
    /// Leader heartbeat period.
    #[arg(long, default_value = "800ms", value_parser = nodes::duration::parse)]
    heartbeat_interval: Duration,
    /// Silence after which the leader is suspected.
    #[arg(long, default_value = "2500ms", value_parser = nodes::duration::parse)]
    election_timeout: Duration,
    /// `true`: majority votes and a leader lease; `false`: plain bully as in the seed.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    quorum: bool,
    /// `majority`: acknowledge once a majority stored it; `leader`: once sequenced (seed).
    #[arg(long, default_value = "majority", value_parser = parse_commit)]
    commit: Commit,
    /// Directory for the durable log.
    #[arg(long, default_value = "data")]
    data_dir: PathBuf,
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
    nodes::real::block_on("chat-node", || async move {
        let peers: BTreeMap<u64, SocketAddr> = args.peers.into_iter().collect();
        let config = ChatNodeConfig {
            chat: ChatConfig {
                election: ElectionConfig {
                    id: args.id,
                    peers: peers.keys().copied().collect(),
                    heartbeat_interval: args.heartbeat_interval,
                    election_timeout: args.election_timeout,
                    quorum: args.quorum,
                },
                commit: args.commit,
            },
            listen: args.listen,
            client_listen: args.client_listen,
            peers,
        };
        let log = format!("chat-{}.log", args.id);
        let env = nodes::real::env_with_log(&args.data_dir, &log, &format!("n{}", args.id))?;
        chat::run(config, env).await.map_err(|e| e.to_string())
    });
}
