//! `registry`: the KV store's membership directory on real sockets.
//!
//! ```text
//! cargo real --bin registry -- --port 5000
//! ```

use clap::Parser;
use nodes::kv::registry::{self, RegistryConfig};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "KV registry: register, heartbeat, deregister, list live nodes"
)]
struct Args {
    /// Port to listen on.
    #[arg(long, default_value_t = 5000)]
    port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Silence after which a node is dropped.
    #[arg(long, default_value = "6s", value_parser = nodes::duration::parse_positive)]
    ttl: Duration,
    #[command(flatten)]
    key: nodes::real::KeyArgs,
    #[command(flatten)]
    env: nodes::real::EnvArgs,
}

fn main() {
    let args = Args::parse();
    nodes::real::block_on("registry", || async move {
        let config = RegistryConfig {
            listen: SocketAddr::new(args.host, args.port),
            ttl: args.ttl,
        };
        let env = nodes::real::env_in_memory("registry", &args.key, &args.env)?;
        registry::run(config, env).await.map_err(|e| e.to_string())
    });
}
