//! Start-up helpers for the real binaries in `src/bin/`.
//!
//! A binary compiled with `--cfg madsim` would run its `main` inside the simulator at full
//! speed, which is never what someone typing its name wants: it refuses with a hint.

use std::future::Future;

/// Runs `main` on a real tokio runtime; in a simulation build, explains and exits with 2.
pub fn block_on<F: Future<Output = Result<(), String>>>(binary: &str, main: impl FnOnce() -> F) {
    block_on_threads(binary, 0, main)
}

/// As [`block_on`], with `workers` threads (0: all on the calling thread, as a node runs).
pub fn block_on_threads<F: Future<Output = Result<(), String>>>(
    binary: &str,
    workers: usize,
    main: impl FnOnce() -> F,
) {
    #[cfg(madsim)]
    {
        let _ = (main, workers);
        eprintln!(
            "{binary}: this build is for the simulator (--cfg madsim), not for real sockets.\n\
             Build and run the real binary with:  cargo real --bin {binary} -- --help"
        );
        std::process::exit(2);
    }
    #[cfg(not(madsim))]
    {
        let mut builder = if workers == 0 {
            tokio::runtime::Builder::new_current_thread()
        } else {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(workers);
            builder
        };
        let runtime = match builder.enable_all().build() {
            Ok(runtime) => runtime,
            Err(e) => {
                eprintln!("{binary}: cannot start the runtime: {e}");
                std::process::exit(1);
            }
        };
        if let Err(e) = runtime.block_on(main()) {
            eprintln!("{binary}: {e}");
            std::process::exit(1);
        }
    }
}

/// Parses a `--peers` entry, `id=host:port`.
pub fn parse_peer(text: &str) -> Result<(u64, std::net::SocketAddr), String> {
    let (id, addr) = text
        .split_once('=')
        .ok_or_else(|| format!("expected id=host:port, got \"{text}\""))?;
    let id = id.parse().map_err(|_| format!("bad peer id \"{id}\""))?;
    let addr = addr
        .parse()
        .map_err(|_| format!("bad address \"{addr}\""))?;
    Ok((id, addr))
}

/// The flag every node takes: where the cluster key is (see [`crate::auth::key_file`]).
#[derive(clap::Args, Debug, Clone)]
pub struct KeyArgs {
    /// File holding the cluster's shared secret (default: ~/.simnode/cluster-key, created
    /// on first start); every node of one cluster must read the same secret.
    #[arg(long)]
    pub cluster_key_file: Option<std::path::PathBuf>,
}

impl KeyArgs {
    /// The cluster key from `--cluster-key-file`, or the per-user default file.
    pub fn load(&self) -> Result<crate::auth::ClusterKey, String> {
        crate::auth::key_file::load(self.cluster_key_file.as_deref())
    }
}

/// The flags every node takes about its environment: the error of its clock (the clock
/// seam's offset and drift, as a scenario's `skew` sets them) and where its history goes.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct EnvArgs {
    /// Append every event this node emits to FILE as history lines (the JSON lines of
    /// `sim run --trace`), time-stamped by the node's clock; `sim check` reads them.
    #[arg(long, value_name = "FILE")]
    pub history: Option<std::path::PathBuf>,
    /// Unix milliseconds that `--history` time stamps count from (the run's start).
    #[arg(long, value_name = "UNIX_MS", default_value_t = 0)]
    pub history_start: u64,
    /// Signed error added to what the node reads as wall time (`+5s`, `-250ms`).
    #[arg(long, default_value = "0ms", value_parser = crate::duration::parse_signed_ms, allow_hyphen_values = true)]
    pub clock_offset: i64,
    /// Extra rate of the node's clock: 0.02 runs its timers 2 % fast (above -1).
    #[arg(long, default_value_t = 0.0, value_parser = parse_drift, allow_hyphen_values = true)]
    pub clock_drift: f64,
    /// A file holding `OFFSET_MS DRIFT` that the node rereads every 50 ms: whoever writes
    /// it (the `sim real` runner's `skew`) changes the running node's clock error.
    #[arg(long, value_name = "FILE")]
    pub clock_control: Option<std::path::PathBuf>,
    /// A file holding the work-time factor of the `slow` fault (`4` makes every
    /// `--load-factor` wait four times as long), reread every 50 ms like `--clock-control`.
    #[arg(long, value_name = "FILE")]
    pub slow_control: Option<std::path::PathBuf>,
    /// Dial VIA to reach the peer address PEER, and send its gossip datagrams there
    /// (comma separated or repeated): `sim real` puts its fault proxy on every peer link
    /// this way.
    #[arg(long, value_name = "PEER=VIA", value_delimiter = ',', value_parser = crate::runtime::routes::parse_route)]
    pub route: Vec<(std::net::SocketAddr, std::net::SocketAddr)>,
}

/// Rereads `path` every 50 ms and hands each new text to `apply` (a control file the
/// `sim real` runner rewrites whole, by rename, while the node runs).
fn watch_control(path: std::path::PathBuf, apply: impl Fn(&str) + Send + 'static) {
    tokio::spawn(async move {
        let mut last = String::new();
        loop {
            if let Ok(text) = std::fs::read_to_string(&path) {
                if text != last {
                    apply(&text);
                    last = text;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    });
}

/// A `--slow-control` file's factor: a finite number ([`crate::runtime::Slowdown::set`]
/// counts one below 1 as 1).
fn parse_factor(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|f| f.is_finite())
}

/// A clock drift: a number above -1.
fn parse_drift(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(drift) if drift > -1.0 && drift.is_finite() => Ok(drift),
        _ => Err(format!("expected a number above -1, got \"{text}\"")),
    }
}

/// A `--clock-control` file's `OFFSET_MS DRIFT`.
fn parse_control(text: &str) -> Option<(i64, f64)> {
    let mut parts = text.split_whitespace();
    let offset = parts.next()?.parse().ok()?;
    let drift = parse_drift(parts.next()?).ok()?;
    Some((offset, drift))
}

impl EnvArgs {
    /// The system clock with the offset and drift the flags give (and, with
    /// `--clock-control`, whatever that file says later). Call inside the runtime.
    pub fn clock(&self) -> crate::runtime::Clock {
        let clock = crate::runtime::Clock::new();
        clock.set_skew(Some(self.clock_offset), Some(self.clock_drift));
        if let Some(path) = self.clock_control.clone() {
            let clock = clock.clone();
            watch_control(path, move |text| {
                if let Some((offset, drift)) = parse_control(text) {
                    clock.set_skew(Some(offset), Some(drift));
                }
            });
        }
        clock
    }

    /// The node's work-time factor: 1, or whatever `--slow-control` says (the same
    /// [`crate::runtime::Slowdown`] the simulator's `slow` sets). Call inside the runtime.
    pub fn slowdown(&self) -> crate::runtime::Slowdown {
        let slowdown = crate::runtime::Slowdown::new();
        if let Some(path) = self.slow_control.clone() {
            let slowdown = slowdown.clone();
            watch_control(path, move |text| {
                if let Some(factor) = parse_factor(text) {
                    slowdown.set(factor);
                }
            });
        }
        slowdown
    }

    /// Where the node dials each peer address (`--route`).
    pub fn routes(&self) -> crate::runtime::Routes {
        crate::runtime::Routes::new(self.route.iter().copied())
    }

    /// Events printed as JSON lines on stdout tagged `node` and, with `--history`, also
    /// appended to the history file.
    pub fn events(
        &self,
        node: &str,
        clock: &crate::runtime::Clock,
    ) -> Result<crate::runtime::EventSink, String> {
        let stdout = crate::runtime::EventSink::stdout(node);
        let Some(path) = &self.history else {
            return Ok(stdout);
        };
        let file = crate::runtime::history::file_sink(path, node, clock, self.history_start)?;
        Ok(crate::runtime::EventSink::new(move |event| {
            file.emit(event.clone());
            stdout.emit(event);
        }))
    }
}

/// A real node's environment: its clock, a durable log in `data_dir/file` (created
/// with its directory), its events (see [`EnvArgs::events`]), and the cluster key.
pub fn env_with_log(
    data_dir: &std::path::Path,
    file: &str,
    node: &str,
    key: &KeyArgs,
    env: &EnvArgs,
) -> Result<crate::runtime::NodeEnv, String> {
    let path = data_dir.join(file);
    let storage = crate::runtime::storage::FileStorage::open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let clock = env.clock();
    Ok(crate::runtime::NodeEnv {
        events: env.events(node, &clock)?,
        clock,
        storage: Box::new(storage),
        slowdown: env.slowdown(),
        cluster_key: key.load()?,
        wire: crate::runtime::WireTap::off(),
        routes: env.routes(),
    })
}

/// A real node's environment without durable state (the KV nodes and the registry).
pub fn env_in_memory(
    node: &str,
    key: &KeyArgs,
    env: &EnvArgs,
) -> Result<crate::runtime::NodeEnv, String> {
    let clock = env.clock();
    Ok(crate::runtime::NodeEnv {
        events: env.events(node, &clock)?,
        clock,
        storage: Box::new(crate::runtime::storage::Nowhere),
        slowdown: env.slowdown(),
        cluster_key: key.load()?,
        wire: crate::runtime::WireTap::off(),
        routes: env.routes(),
    })
}

/// The flags every election participant takes (`election-node`, `chat-node`); they mirror
/// the scenario knobs `heartbeat_interval`, `election_timeout` and `quorum`.
#[derive(clap::Args, Debug, Clone)]
pub struct ElectionArgs {
    /// This node's id; the highest live id leads.
    #[arg(long)]
    pub id: u64,
    /// Address for peer traffic.
    #[arg(long)]
    pub listen: std::net::SocketAddr,
    /// Peers as `id=host:port` (their peer addresses), comma separated.
    #[arg(long, value_delimiter = ',', value_parser = parse_peer)]
    pub peers: Vec<(u64, std::net::SocketAddr)>,
    /// Leader heartbeat period.
    #[arg(long, default_value = "800ms", value_parser = crate::duration::parse_positive)]
    pub heartbeat_interval: std::time::Duration,
    /// Silence after which the leader is suspected.
    #[arg(long, default_value = "2500ms", value_parser = crate::duration::parse_positive)]
    pub election_timeout: std::time::Duration,
    /// `true`: majority votes and a leader lease; `false`: plain bully as in the seed.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub quorum: bool,
    /// Directory for the durable log.
    #[arg(long, default_value = "data")]
    pub data_dir: std::path::PathBuf,
    #[command(flatten)]
    pub key: KeyArgs,
    #[command(flatten)]
    pub env: EnvArgs,
}

impl ElectionArgs {
    /// The election knobs and the peer address book.
    pub fn config(
        &self,
    ) -> (
        crate::election::ElectionConfig,
        std::collections::BTreeMap<u64, std::net::SocketAddr>,
    ) {
        let peers: std::collections::BTreeMap<_, _> = self.peers.iter().copied().collect();
        let election = crate::election::ElectionConfig {
            id: self.id,
            peers: peers.keys().copied().collect(),
            heartbeat_interval: self.heartbeat_interval,
            election_timeout: self.election_timeout,
            quorum: self.quorum,
        };
        (election, peers)
    }

    /// Checks the flags together, as a scenario's `[config]` is checked: the heartbeat
    /// must be shorter than the election timeout, and the peers must be other nodes —
    /// not this one by id or by address, no id twice, no address twice.
    pub fn validate(&self) -> Result<(), String> {
        if self.heartbeat_interval >= self.election_timeout {
            return Err(format!(
                "--heartbeat-interval ({}) must be shorter than --election-timeout ({})",
                crate::duration::format(self.heartbeat_interval),
                crate::duration::format(self.election_timeout)
            ));
        }
        let mut ids = std::collections::BTreeSet::new();
        let mut addrs = std::collections::BTreeSet::new();
        for &(id, addr) in &self.peers {
            if id == self.id {
                return Err(format!(
                    "--peers lists this node's own id {id} ({id}={addr}): list the other nodes"
                ));
            }
            if addr == self.listen {
                return Err(format!(
                    "--peers lists this node's own address {addr} (as {id}={addr}): list the other nodes"
                ));
            }
            if !ids.insert(id) {
                return Err(format!("--peers lists id {id} twice"));
            }
            if !addrs.insert(addr) {
                return Err(format!("--peers lists address {addr} twice"));
            }
        }
        Ok(())
    }

    /// The environment with the durable log `{prefix}-{id}.log` in `--data-dir`.
    pub fn env(&self, prefix: &str) -> Result<crate::runtime::NodeEnv, String> {
        env_with_log(
            &self.data_dir,
            &format!("{prefix}-{}.log", self.id),
            &format!("n{}", self.id),
            &self.key,
            &self.env,
        )
    }
}

/// Exits as clap does for a bad flag (the message and the usage on stderr, exit code 2)
/// when `check` failed; flags that parse one by one can still contradict each other.
pub fn exit_on_usage_error<C: clap::CommandFactory>(check: Result<(), String>) {
    if let Err(message) = check {
        C::command()
            .error(clap::error::ErrorKind::ValueValidation, message)
            .exit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser, Debug)]
    struct Flags {
        #[command(flatten)]
        election: ElectionArgs,
    }

    fn check(args: &str) -> Result<(), String> {
        let argv = std::iter::once("node").chain(args.split_whitespace());
        let flags = Flags::try_parse_from(argv).map_err(|e| e.to_string())?;
        flags.election.validate()
    }

    #[test]
    fn clock_error_flags_and_control_lines_parse_or_are_refused() {
        let flags = Flags::try_parse_from(
            "node --id 1 --listen 127.0.0.1:7001 --clock-offset -250ms --clock-drift 0.02"
                .split_whitespace(),
        )
        .unwrap();
        let env = &flags.election.env;
        assert_eq!((env.clock_offset, env.clock_drift), (-250, 0.02));
        assert_eq!(env.clock().skew(), (-250, 0.02));
        assert!(Flags::try_parse_from(
            "node --id 1 --listen 127.0.0.1:7001 --clock-drift -1".split_whitespace()
        )
        .is_err());
        assert_eq!(parse_control("2500 -0.026\n"), Some((2500, -0.026)));
        assert_eq!(parse_control("-40 0"), Some((-40, 0.0)));
        for bad in ["", "12", "x 0.1", "5 -3", "5 nan"] {
            assert_eq!(parse_control(bad), None, "{bad:?}");
        }
        assert_eq!(parse_factor("4\n"), Some(4.0));
        assert_eq!(parse_factor("1"), Some(1.0));
        for bad in ["", "x", "inf", "nan"] {
            assert_eq!(parse_factor(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn election_flags_are_validated_as_scenario_knobs_are() {
        let ok = "--id 1 --listen 127.0.0.1:7001 --peers 2=127.0.0.1:7002,3=127.0.0.1:7003";
        assert_eq!(check(ok), Ok(()));
        assert_eq!(check("--id 1 --listen 127.0.0.1:7001"), Ok(()));
        for (flags, expected) in [
            ("--heartbeat-interval 0ms", "above 0s"),
            ("--election-timeout 0s", "above 0s"),
            ("--heartbeat-interval 3s", "shorter than --election-timeout"),
            (
                "--heartbeat-interval 1s --election-timeout 1s",
                "shorter than --election-timeout",
            ),
            ("--peers 1=127.0.0.1:7009", "own id 1"),
            ("--peers 2=127.0.0.1:7001", "own address 127.0.0.1:7001"),
            ("--peers 2=127.0.0.1:7002,2=127.0.0.1:7003", "id 2 twice"),
            (
                "--peers 2=127.0.0.1:7002,3=127.0.0.1:7002",
                "address 127.0.0.1:7002 twice",
            ),
        ] {
            let args = format!("--id 1 --listen 127.0.0.1:7001 {flags}");
            match check(&args) {
                Err(e) => assert!(e.contains(expected), "{args}: {e}"),
                Ok(()) => panic!("{args}: accepted"),
            }
        }
    }
}
