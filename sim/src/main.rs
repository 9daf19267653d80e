//! `sim`: run scenarios in the deterministic simulator.
//!
//! Exit codes: 0 every run's verdict is pass; 1 some run failed (a violation nobody
//! expected, an expected violation that did not happen, a crashed run, a determinism
//! mismatch); 2 usage or scenario error.

mod cli;

/// mimalloc: the simulated nodes allocate per request and per message (HTTP buffers,
/// futures, JSON values); glibc's malloc and free took a fifth of a KV fuzz run.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};
use sim::fuzz::SeedPlan;
use sim::linearizability::command::ModelChoice;
use simcore::real_options::RealOptions;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "sim",
    version,
    about = "Deterministic simulation testbed for distributed nodes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run scenarios and judge them; prints a report per run.
    Run {
        /// Scenario files.
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
        /// Seed (default: the scenario's `seed`, else 1).
        #[arg(long)]
        seed: Option<u64>,
        /// One JSON object per run, one per line.
        #[arg(long)]
        json: bool,
        /// Write the full trace as JSON lines here.
        #[arg(long)]
        trace: Option<PathBuf>,
        /// Write a text picture of the run (roles per server over time, faults) here.
        #[arg(long)]
        timeline: Option<PathBuf>,
        /// Write the client operations as a Jepsen EDN history here (for `check-history`
        /// and Jepsen's own tools).
        #[arg(long)]
        history: Option<PathBuf>,
        /// Write a self-contained HTML report of the run here (opens from disk, offline).
        #[arg(long)]
        html: Option<PathBuf>,
    },
    /// Judge a recorded history with the scenario's checks: a `run --trace`, or the lines
    /// real nodes wrote with `--history` plus their clients' (as `real --trace` writes
    /// them). Same report and exit codes as `run`.
    Check {
        /// Scenario file.
        scenario: PathBuf,
        /// History files (JSON lines), merged by time stamp.
        #[arg(long, required = true, num_args = 1..)]
        history: Vec<PathBuf>,
        /// The run's seed, for the report (default: the scenario's).
        #[arg(long)]
        seed: Option<u64>,
        /// One JSON object, as `run --json` prints.
        #[arg(long)]
        json: bool,
    },
    /// Run the scenario on real processes on loopback: the real binaries, real sockets,
    /// real time, faults applied from outside the nodes; same workload, same checks.
    /// Runs `sim-real` (built with the real binaries by `cargo real-build`, in target/real)
    /// and exits as it does.
    Real(RealOptions),
    /// Check a recorded history for linearizability. Exit 0 linearizable, 1 not,
    /// 3 unknown (budget exhausted), 2 bad input.
    CheckHistory {
        /// A Jepsen / Knossos EDN history (one op map per line, or one vector or list of
        /// them) or a Jepsen log (etcd format, history.txt).
        file: PathBuf,
        /// `register` (read/write/cas per key, Porcupine's reading), `cas-register`
        /// (Knossos's: nil reads and failed cas say nothing), `kv` (get/put/append),
        /// `mutex` (acquire/release), `multi-register` (txn of [:r k v] / [:w k v]), or
        /// `set` (every acknowledged add in the final read; not a linearizability check).
        #[arg(long, value_enum, default_value_t = ModelChoice::Register)]
        model: ModelChoice,
        /// kv only: check the whole map as one object instead of key by key.
        #[arg(long)]
        whole_map: bool,
        /// The registers' initial value, as EDN (default nil); multi-register also takes a
        /// map of key to value, e.g. '{:x 0 :y 0}'.
        #[arg(long)]
        initial_value: Option<String>,
        /// Write a self-contained HTML picture of the check here.
        #[arg(long)]
        html: Option<PathBuf>,
        /// Give up (verdict unknown) after this long.
        #[arg(long, default_value = "60s", value_parser = nodes::duration::parse)]
        timeout: std::time::Duration,
        /// Give up (verdict unknown) after this many search steps per key.
        #[arg(long)]
        max_steps: Option<u64>,
    },
    /// Run many seeds (with the scenario's nemesis, if any); print every failing seed with
    /// the command that reproduces it. Exit 1 if any seed failed.
    Fuzz {
        /// Scenario file.
        scenario: PathBuf,
        /// Seed range, `A..B` (B excluded) or `A..=B`.
        #[arg(long, default_value = "1..101", value_parser = SeedPlan::parse_range)]
        seeds: (u64, u64),
        /// Parallel runs on this machine (default: the number of cores).
        #[arg(long)]
        jobs: Option<usize>,
        /// Only seeds with `seed % N == K`, written `K/N`.
        #[arg(long, value_parser = SeedPlan::parse_shard)]
        shard: Option<(u64, u64)>,
        /// One JSON object per seed, one per line.
        #[arg(long)]
        json: bool,
        /// Stop after this many failing seeds.
        #[arg(long)]
        max_failures: Option<usize>,
        /// For each failing seed (the first 10), write its shrunk scenario, trace and
        /// report (text and HTML) into DIR/<scenario>-seed-<N>/.
        #[arg(long)]
        artifacts: Option<PathBuf>,
    },
    /// List the failure modes the scenarios teach; with a NAME, run its failing scenario
    /// and its fixed sibling and write both HTML reports.
    Teach {
        /// A lesson (see the list `sim teach` prints).
        name: Option<String>,
        /// Directory for the two pages (NAME.failing.html, NAME.fixed.html).
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
    /// Minimize a failing seed to a standalone scenario with an explicit fault timeline.
    Shrink {
        /// Scenario file.
        scenario: PathBuf,
        /// The failing seed.
        #[arg(long)]
        seed: u64,
        /// Where to write the shrunk scenario (default: stdout).
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
        /// Also write the HTML report of the shrunk run here.
        #[arg(long)]
        html: Option<PathBuf>,
    },
    /// Measure fuzz throughput, overhead against raw madsim, seeds to first failure and
    /// peak memory (use a release build: `cargo run --release -p sim -- bench`).
    Bench {
        /// Seeds per fuzz measurement.
        #[arg(long, default_value_t = 100)]
        seeds: u64,
        /// Instead: gossip membership at 10, 100 and 1,000 servers (convergence after a
        /// crash, gossip bytes, simulated/wall, peak memory); `--gossip-sizes` to choose.
        #[arg(long)]
        gossip: bool,
        /// Cluster sizes for `--gossip`, comma-separated.
        #[arg(long, value_delimiter = ',', default_values_t = sim::bench::GOSSIP_SIZES)]
        gossip_sizes: Vec<usize>,
        /// Seeds per size for `--gossip` (1..=N): the row gives the medians, and the
        /// range of "down everywhere".
        #[arg(long, default_value_t = 1)]
        gossip_seeds: u64,
        /// With `--gossip`: also write the plot of convergence time against size here.
        #[arg(long)]
        svg: Option<PathBuf>,
        /// Instead: only the scale rows.
        #[arg(long)]
        scale: bool,
        /// Cluster sizes of the scale rows (one KV run each: 5 and 64 servers with the
        /// registry, other sizes with gossip membership), comma-separated; `none` for none.
        #[arg(long, value_delimiter = ',', default_values_t = sim::bench::SCALE_SIZES.map(|n| n.to_string()))]
        scale_sizes: Vec<String>,
    },
    /// Parse and validate scenarios only.
    Validate {
        /// Scenario files.
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
    },
    /// Run one seed several times and require identical traces.
    CheckDeterminism {
        /// Scenario file.
        scenario: PathBuf,
        /// Seed (default: the scenario's `seed`, else 1).
        #[arg(long)]
        seed: Option<u64>,
        /// Number of runs to compare.
        #[arg(long, default_value_t = 2)]
        runs: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            scenarios,
            seed,
            json,
            trace,
            timeline,
            history,
            html,
        } => cli::run::run_scenarios(
            &scenarios,
            seed,
            json,
            cli::run::Outputs {
                trace: trace.as_deref(),
                timeline: timeline.as_deref(),
                history: history.as_deref(),
                html: html.as_deref(),
            },
        ),
        Command::Check {
            scenario,
            history,
            seed,
            json,
        } => cli::check::check_recorded(&scenario, &history, seed, json),
        Command::Real(options) => cli::real::run_real(&options),
        Command::CheckHistory {
            file,
            model,
            whole_map,
            initial_value,
            html,
            timeout,
            max_steps,
        } => cli::check_history::check_history_file(&sim::linearizability::command::Options {
            file,
            model,
            whole_map,
            initial_value,
            html,
            timeout,
            max_steps,
        }),
        Command::Fuzz {
            scenario,
            seeds,
            jobs,
            shard,
            json,
            max_failures,
            artifacts,
        } => {
            let plan = SeedPlan {
                start: seeds.0,
                end: seeds.1,
                shard,
            };
            let jobs =
                jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            cli::fuzz::run_fuzz(
                &scenario,
                cli::fuzz::FuzzOptions {
                    plan,
                    jobs,
                    json,
                    max_failures,
                    artifacts: artifacts.as_deref(),
                },
            )
        }
        Command::Shrink {
            scenario,
            seed,
            output,
            html,
        } => cli::shrink::shrink(&scenario, seed, output.as_deref(), html.as_deref()),
        Command::Bench {
            gossip: true,
            gossip_sizes,
            gossip_seeds,
            svg,
            ..
        } => cli::bench::bench_gossip(&gossip_sizes, gossip_seeds, svg.as_deref()),
        Command::Bench {
            seeds,
            scale,
            scale_sizes,
            ..
        } => cli::bench::bench_fuzz(seeds, scale, &scale_sizes),
        Command::Validate { scenarios } => cli::validate::validate(&scenarios),
        Command::Teach { name, out } => cli::teach::teach(name.as_deref(), &out),
        Command::CheckDeterminism {
            scenario,
            seed,
            runs,
        } => cli::check_determinism::check_determinism(&scenario, seed, runs),
    }
}
