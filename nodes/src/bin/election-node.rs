//! `election-node`: one bully-election participant on real sockets.
//!
//! ```text
//! cargo real --bin election-node -- --id 3 --listen 127.0.0.1:7003 \
//!     --peers 1=127.0.0.1:7001,2=127.0.0.1:7002 --quorum false
//! ```
//! Role changes are printed as JSON lines on stdout.

use clap::Parser;
use nodes::election::{self, ElectionConfig, ElectionNodeConfig};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Flags mirror the scenario `[config]` knobs.
#[derive(Parser, Debug)]
#[command(
    version,
    about = "Bully leader election node (seed 004), plain or quorum"
)]
struct Args {
    /// This node's id; the highest live id wins.
    #[arg(long)]
    id: u64,
    /// Address to listen on for peers.
    #[arg(long)]
    listen: SocketAddr,
    /// Peers as `id=host:port`, comma separated.
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
    /// Directory for the durable term/vote log.
    #[arg(long, default_value = "data")]
    data_dir: PathBuf,
}

fn main() {
    let args = Args::parse();
    nodes::real::block_on("election-node", || async move {
        let peers: BTreeMap<u64, SocketAddr> = args.peers.into_iter().collect();
        let config = ElectionNodeConfig {
            election: ElectionConfig {
                id: args.id,
                peers: peers.keys().copied().collect(),
                heartbeat_interval: args.heartbeat_interval,
                election_timeout: args.election_timeout,
                quorum: args.quorum,
            },
            listen: args.listen,
            peers,
        };
        let log = format!("election-{}.log", args.id);
        let env = nodes::real::env_with_log(&args.data_dir, &log, &format!("n{}", args.id))?;
        election::run(config, env).await.map_err(|e| e.to_string())
    });
}
