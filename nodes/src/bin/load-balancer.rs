//! `load-balancer`: seed 001's load balancer on real sockets, in front of KV nodes.
//!
//! ```text
//! cargo real --bin load-balancer -- --port 8080 --nodes 5001,5002,5003 --strategy round_robin
//! curl -i localhost:8080/data/user:1     # X-Backend: 127.0.0.1:5002 says who answered
//! curl localhost:8080/lb-stats
//! ```

use clap::Parser;
use nodes::lb::{self, Backend, LbConfig, Strategy};
use nodes::runtime::{Clock, EventSink};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Load balancer: round robin or least connections over KV nodes, with health checks"
)]
struct Args {
    /// Port to listen on.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Backends, comma separated: a port (on localhost) or host:port.
    #[arg(long, required = true, value_delimiter = ',', value_parser = parse_backend)]
    nodes: Vec<SocketAddr>,
    /// `round_robin` or `least_connections`.
    #[arg(long, default_value = "round_robin", value_parser = Strategy::parse)]
    strategy: Strategy,
    /// Time between two health checks (GET /health) of one backend.
    #[arg(long, default_value = "1s", value_parser = nodes::duration::parse_positive)]
    health_interval: Duration,
    /// A health check slower than this takes the backend down.
    #[arg(long, default_value = "1s", value_parser = nodes::duration::parse_positive)]
    health_timeout: Duration,
    /// Longest a forwarded request may take (connecting, then the answer).
    #[arg(long, default_value = "10s", value_parser = nodes::duration::parse_positive)]
    backend_timeout: Duration,
}

/// `5001` (localhost) or `host:port`, resolved to an IPv4 address.
fn parse_backend(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty backend: expected a port or host:port".into());
    }
    let host_port = match text.parse::<u16>() {
        Ok(0) => return Err("port 0 is not a backend".into()),
        Ok(port) => format!("127.0.0.1:{port}"),
        Err(_) => text.to_string(),
    };
    let addr = host_port
        .to_socket_addrs()
        .map_err(|e| format!("bad backend \"{text}\": expected a port or host:port ({e})"))?
        .find(|a| a.is_ipv4())
        .ok_or_else(|| format!("no IPv4 address for backend \"{text}\""))?;
    if addr.port() == 0 {
        return Err(format!("backend \"{text}\": port 0 is not a backend"));
    }
    Ok(addr)
}

impl Args {
    fn listen(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }

    /// Flags that parse one by one but not together: a backend twice, or the balancer
    /// itself as a backend (it would forward to itself forever).
    fn validate(&self) -> Result<(), String> {
        let listen = self.listen();
        let mut seen = std::collections::BTreeSet::new();
        for &addr in &self.nodes {
            let is_self = addr.port() == listen.port()
                && (addr.ip() == listen.ip() || listen.ip().is_unspecified());
            if is_self {
                return Err(format!(
                    "--nodes lists the balancer's own address {addr}: list the KV nodes"
                ));
            }
            if !seen.insert(addr) {
                return Err(format!("--nodes lists {addr} twice"));
            }
        }
        Ok(())
    }
}

fn main() {
    let args = Args::parse();
    nodes::real::exit_on_usage_error::<Args>(args.validate());
    nodes::real::block_on("load-balancer", || async move {
        let config = LbConfig {
            listen: args.listen(),
            backends: args
                .nodes
                .iter()
                .map(|&addr| Backend {
                    name: addr.to_string(),
                    addr,
                })
                .collect(),
            strategy: args.strategy,
            health_interval: args.health_interval,
            health_timeout: args.health_timeout,
            backend_timeout: args.backend_timeout,
        };
        let (clock, events) = (Clock::new(), EventSink::stdout("lb"));
        lb::run(config, clock, events, nodes::runtime::WireTap::off())
            .await
            .map_err(|e| e.to_string())
    });
}
