//! `election-node`: one bully-election participant on real sockets.
//!
//! ```text
//! cargo real --bin election-node -- --id 3 --listen 127.0.0.1:7003 \
//!     --peers 1=127.0.0.1:7001,2=127.0.0.1:7002 --quorum false
//! ```
//! Role changes are printed as JSON lines on stdout.

use clap::Parser;
use nodes::election::{self, ElectionNodeConfig};
use nodes::real::ElectionArgs;

/// Flags mirror the scenario `[config]` knobs.
#[derive(Parser, Debug)]
#[command(
    version,
    about = "Bully leader election node (seed 004), plain or quorum"
)]
struct Args {
    #[command(flatten)]
    election: ElectionArgs,
}

fn main() {
    let Args { election: args } = Args::parse();
    nodes::real::exit_on_usage_error::<Args>(args.validate());
    nodes::real::block_on("election-node", || async move {
        let (election, peers) = args.config();
        let config = ElectionNodeConfig {
            election,
            listen: args.listen,
            peers,
        };
        let env = args.env("election")?;
        election::run(config, env).await.map_err(|e| e.to_string())
    });
}
