//! `kv-node`: one replicated KV node on real sockets (seed 000's resilient node).
//!
//! ```text
//! cargo real --bin kv-node -- --port 5001 --id node-1 --registry http://localhost:5000
//! curl -X POST http://localhost:5001/data -H "Content-Type: application/json" \
//!      -d '{"key": "user:1", "value": "Alice"}'
//! curl http://localhost:5001/data/user:1
//! ```
//!
//! Seed 003's gossip membership instead of the registry (SWIM, no central service):
//!
//! ```text
//! cargo real --bin kv-node -- --port 5001 --id node-1 --membership gossip
//! cargo real --bin kv-node -- --port 5002 --id node-2 --membership gossip --join 127.0.0.1:5001
//! curl http://localhost:5002/members
//! ```
//!
//! Seed 001's middleware, each a flag: `--rate-limit N`, `--backpressure N`,
//! `--circuit-breaker` (`--breaker-failures`, `--breaker-cooldown`), `--workers W`,
//! `--load-factor MS`; `GET /queue-stats`, `/circuit-status`, `/discovery-status`.

use clap::Parser;
use nodes::kv::overload::breaker::{BreakerConfig, DEFAULT_COOLDOWN, DEFAULT_FAILURES};
use nodes::kv::swim::{self, GossipConfig};
use nodes::kv::{self, KvConfig, OverloadConfig, Versioning};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::num::{NonZeroU32, NonZeroUsize};
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
    /// `registry` (seed 000, with --registry) or `gossip` (SWIM, seed 003, with --join).
    #[arg(long, default_value = "registry", value_parser = ["registry", "gossip"])]
    membership: String,
    /// Gossip: members to announce to at start, HOST:PORT,... (their HTTP addresses;
    /// gossip is UDP on the same port). None: start a cluster of one.
    #[arg(long, value_delimiter = ',', value_parser = parse_url)]
    join: Vec<SocketAddr>,
    /// Gossip: SWIM's protocol period.
    #[arg(long, default_value = "1s", value_parser = nodes::duration::parse_positive)]
    probe_period: Duration,
    /// Copies of each key.
    #[arg(long, default_value_t = 3)]
    replication_factor: usize,
    /// Ring points per node [default: 150; 256 with gossip, as seed 003].
    #[arg(long)]
    virtual_nodes: Option<u32>,
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
    /// Requests per second per client address (burst the same); past it, 429.
    #[arg(long, value_parser = at_least_one::<NonZeroU32>)]
    rate_limit: Option<NonZeroU32>,
    /// Most client requests in flight; past it, 429 at once.
    #[arg(long, value_parser = at_least_one::<NonZeroUsize>)]
    backpressure: Option<NonZeroUsize>,
    /// A circuit breaker per peer on replication and gossip calls.
    #[arg(long)]
    circuit_breaker: bool,
    /// Consecutive failed calls that open a peer's breaker [default: 5].
    #[arg(long, value_parser = at_least_one::<NonZeroU32>)]
    breaker_failures: Option<NonZeroU32>,
    /// Time a breaker stays open before its half-open probe [default: 5s].
    #[arg(long, value_parser = nodes::duration::parse_positive)]
    breaker_cooldown: Option<Duration>,
    /// Concurrent request slots [default: unbounded].
    #[arg(long, value_parser = at_least_one::<NonZeroUsize>)]
    workers: Option<NonZeroUsize>,
    /// Simulated work per client request, in ms on the node's clock.
    #[arg(long, default_value = "0", value_parser = nodes::kv::overload::parse_load_factor)]
    load_factor: Duration,
    #[command(flatten)]
    key: nodes::real::KeyArgs,
    #[command(flatten)]
    env: nodes::real::EnvArgs,
}

/// An integer of at least 1.
fn at_least_one<N: std::str::FromStr>(text: &str) -> Result<N, String> {
    let small = || format!("expected an integer of at least 1, got \"{text}\"");
    match text.parse::<u64>() {
        Ok(0) | Err(_) => Err(small()),
        Ok(_) => text.parse().map_err(|_| small()),
    }
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
    /// The middleware the flags ask for.
    fn overload(&self) -> OverloadConfig {
        OverloadConfig {
            rate_limit: self.rate_limit,
            backpressure: self.backpressure,
            workers: self.workers,
            load_factor: self.load_factor,
            circuit_breaker: self.circuit_breaker.then(|| BreakerConfig {
                failures: self
                    .breaker_failures
                    .map_or(DEFAULT_FAILURES, NonZeroU32::get),
                cooldown: self.breaker_cooldown.unwrap_or(DEFAULT_COOLDOWN),
            }),
        }
    }

    /// The checks `sim validate` applies to the same knobs.
    fn validate(&self) -> Result<(), String> {
        if self.id.is_empty() {
            return Err("--id must not be empty".into());
        }
        let gossip = self.membership == "gossip";
        if gossip && self.registry.is_some() {
            return Err("--registry and --membership gossip exclude each other".into());
        }
        if !gossip && !self.join.is_empty() {
            return Err("--join needs --membership gossip".into());
        }
        if self.replication_factor == 0 || self.virtual_nodes == Some(0) || self.write_quorum == 0 {
            return Err(
                "--replication-factor, --virtual-nodes and --write-quorum must be at least 1"
                    .into(),
            );
        }
        if !self.circuit_breaker
            && (self.breaker_failures.is_some() || self.breaker_cooldown.is_some())
        {
            return Err("--breaker-failures and --breaker-cooldown need --circuit-breaker".into());
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
            gossip: (args.membership == "gossip").then(|| GossipConfig {
                join: args.join.clone(),
                probe_period: args.probe_period,
            }),
            replication_factor: args.replication_factor,
            virtual_nodes: args
                .virtual_nodes
                .unwrap_or(if args.membership == "gossip" {
                    swim::DEFAULT_VIRTUAL_NODES
                } else {
                    150
                }),
            write_quorum: args.write_quorum,
            versioning: args.versioning,
            gossip_interval: args.gossip_interval,
            registry_heartbeat: args.registry_heartbeat,
            peer_timeout: Duration::from_secs(1),
            overload: args.overload(),
        };
        let env = nodes::real::env_in_memory(&args.id, &args.key, &args.env)?;
        kv::run(config, env).await.map_err(|e| e.to_string())
    });
}
