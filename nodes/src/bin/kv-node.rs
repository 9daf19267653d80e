//! `kv-node`: one replicated KV node on real sockets (seed 000's resilient node).
//!
//! ```text
//! cargo real --bin kv-node -- --port 5001 --id node-1 --registry http://localhost:5000
//! curl -X POST http://localhost:5001/data -H "Content-Type: application/json" \
//!      -d '{"key": "user:1", "value": "Alice"}'
//! curl http://localhost:5001/data/user:1
//! ```

use clap::Parser;
use nodes::kv::{self, KvConfig, Versioning};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// Flags mirror the scenario `[config]` knobs.
#[derive(Parser, Debug)]
#[command(
    version,
    about = "Replicated KV node: consistent hashing, replication, gossip"
)]
struct Args {
    /// Port to listen on.
    #[arg(long)]
    port: u16,
    /// Address to bind and to advertise to the registry.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Node id.
    #[arg(long)]
    id: String,
    /// Registry URL, e.g. http://localhost:5000.
    #[arg(long, value_parser = parse_url)]
    registry: Option<SocketAddr>,
    /// Copies of each key.
    #[arg(long, default_value_t = 3)]
    replication_factor: usize,
    /// Ring points per node.
    #[arg(long, default_value_t = 150)]
    virtual_nodes: u32,
    /// Copies stored before the client's ack (this node's included).
    #[arg(long, default_value_t = 1)]
    write_quorum: usize,
    /// `lamport` (safe), `node_counter` (seed) or `wall_clock` (last writer wins).
    #[arg(long, default_value = "lamport", value_parser = Versioning::parse)]
    versioning: Versioning,
    /// Anti-entropy period.
    #[arg(long, default_value = "3s", value_parser = nodes::duration::parse_positive)]
    gossip_interval: Duration,
    /// Registry heartbeat period.
    #[arg(long, default_value = "2s", value_parser = nodes::duration::parse_positive)]
    registry_heartbeat: Duration,
    #[command(flatten)]
    key: nodes::real::KeyArgs,
}

fn parse_url(text: &str) -> Result<SocketAddr, String> {
    let rest = text.strip_prefix("http://").unwrap_or(text);
    let host_port = rest.trim_end_matches('/');
    host_port
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve \"{text}\": {e}"))?
        .find(|a| a.is_ipv4())
        .ok_or_else(|| format!("no IPv4 address for \"{text}\""))
}

impl Args {
    /// The checks `sim validate` applies to the same knobs.
    fn validate(&self) -> Result<(), String> {
        if self.id.is_empty() {
            return Err("--id must not be empty".into());
        }
        if self.replication_factor == 0 || self.virtual_nodes == 0 || self.write_quorum == 0 {
            return Err(
                "--replication-factor, --virtual-nodes and --write-quorum must be at least 1"
                    .into(),
            );
        }
        if self.write_quorum > self.replication_factor {
            return Err(format!(
                "--write-quorum ({}) cannot exceed --replication-factor ({})",
                self.write_quorum, self.replication_factor
            ));
        }
        Ok(())
    }
}

fn main() {
    let args = Args::parse();
    nodes::real::exit_on_usage_error::<Args>(args.validate());
    nodes::real::block_on("kv-node", || async move {
        let listen = SocketAddr::new(args.host, args.port);
        let config = KvConfig {
            id: args.id.clone(),
            listen,
            advertise: listen.to_string(),
            registry: args.registry,
            replication_factor: args.replication_factor,
            virtual_nodes: args.virtual_nodes,
            write_quorum: args.write_quorum,
            versioning: args.versioning,
            gossip_interval: args.gossip_interval,
            registry_heartbeat: args.registry_heartbeat,
            peer_timeout: Duration::from_secs(1),
        };
        let env = nodes::real::env_in_memory(&args.id, &args.key)?;
        kv::run(config, env).await.map_err(|e| e.to_string())
    });
}
