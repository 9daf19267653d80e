//! `sim`: run scenarios in the deterministic simulator.
//!
//! Exit codes: 0 every run's verdict is pass; 1 some run failed (a violation nobody
//! expected, an expected violation that did not happen, a crashed run, a determinism
//! mismatch); 2 usage or scenario error.

use clap::{Parser, Subcommand};
use std::io::Write;

/// `println!` that ignores a closed stdout (`sim run ... | head`) instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `print!` that ignores a closed stdout.
macro_rules! say_raw {
    ($($arg:tt)*) => {{
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}
use sim::fuzz::{fuzz, headline, SeedPlan};
use sim::history::{to_json_lines, Entry};
use sim::linearizability::command::ModelChoice;
use sim::run::run_scenario;
use sim::scenario::{self, Scenario};
use std::path::{Path, PathBuf};
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
    Real {
        /// Scenario file.
        scenario: PathBuf,
        /// Directory holding the real binaries and `sim-real` (default: build them with
        /// `cargo real-build` and use target/real/debug).
        #[arg(long)]
        bin_dir: Option<PathBuf>,
        /// Write the run's merged history (nodes' and clients' lines) here.
        #[arg(long)]
        trace: Option<PathBuf>,
        /// One JSON object, as `run --json` prints.
        #[arg(long)]
        json: bool,
        /// Seed of the workload's and selectors' random choices (default: the scenario's).
        #[arg(long)]
        seed: Option<u64>,
    },
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
        } => run(
            &scenarios,
            seed,
            json,
            Outputs {
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
        } => check_recorded(&scenario, &history, seed, json),
        Command::Real {
            scenario,
            bin_dir,
            trace,
            json,
            seed,
        } => real(&scenario, bin_dir, trace.as_deref(), json, seed),
        Command::CheckHistory {
            file,
            model,
            whole_map,
            initial_value,
            html,
            timeout,
            max_steps,
        } => check_history(sim::linearizability::command::Options {
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
            run_fuzz(
                &scenario,
                plan,
                jobs,
                json,
                max_failures,
                artifacts.as_deref(),
            )
        }
        Command::Shrink {
            scenario,
            seed,
            output,
            html,
        } => run_shrink(&scenario, seed, output.as_deref(), html.as_deref()),
        Command::Bench {
            gossip: true,
            gossip_sizes,
            svg,
            ..
        } => match sim::bench::gossip_scale(&gossip_sizes) {
            Ok(rows) => {
                say_raw!("{}", sim::bench::gossip_table(&rows));
                if let Some(path) = svg {
                    if let Err(e) = std::fs::write(&path, sim::bench::gossip_svg(&rows)) {
                        eprintln!("error: cannot write {}: {e}", path.display());
                        return ExitCode::from(2);
                    }
                }
                ExitCode::SUCCESS
            }
            Err(why) => {
                eprintln!("error: {why}");
                ExitCode::from(2)
            }
        },
        Command::Bench {
            seeds,
            scale,
            scale_sizes,
            ..
        } => {
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
            let sizes: Result<Vec<usize>, _> = scale_sizes
                .iter()
                .filter(|s| s.as_str() != "none")
                .map(|s| s.parse::<usize>())
                .collect();
            let Ok(sizes) = sizes else {
                eprintln!("error: --scale-sizes takes server counts (or `none`): {scale_sizes:?}");
                return ExitCode::from(2);
            };
            let measured = if scale {
                sim::bench::scale(&root, &sizes).map(|rows| sim::bench::scale_table(&rows))
            } else {
                sim::bench::bench(&root, seeds, &sizes)
            };
            match measured {
                Ok(report) => {
                    say_raw!("{report}");
                    ExitCode::SUCCESS
                }
                Err(why) => {
                    eprintln!("error: {why}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Validate { scenarios } => validate(&scenarios),
        Command::Teach { name, out } => teach(name.as_deref(), &out),
        Command::CheckDeterminism {
            scenario,
            seed,
            runs,
        } => check_determinism(&scenario, seed, runs),
    }
}

fn load_all(paths: &[PathBuf]) -> Result<Vec<(String, Scenario)>, ExitCode> {
    let mut loaded = Vec::new();
    let mut failed = false;
    for path in paths {
        match scenario::load(path) {
            Ok(s) => loaded.push((path.display().to_string(), s)),
            Err(e) => {
                eprintln!("error: {e}");
                failed = true;
            }
        }
    }
    if failed {
        Err(ExitCode::from(2))
    } else {
        Ok(loaded)
    }
}

/// `FILE` for one run; `FILE` with the scenario name inserted when several runs share it.
fn per_run_path(path: &Path, name: &str, many: bool) -> PathBuf {
    if !many {
        return path.to_path_buf();
    }
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("out");
    let ext = path.extension().and_then(|s| s.to_str()).unwrap_or("txt");
    path.with_file_name(format!("{stem}.{name}.{ext}"))
}

/// Files a run may write besides its report.
struct Outputs<'a> {
    trace: Option<&'a Path>,
    timeline: Option<&'a Path>,
    history: Option<&'a Path>,
    html: Option<&'a Path>,
}

fn write_file(path: &Path, text: String) -> Result<(), ExitCode> {
    std::fs::write(path, text).map_err(|e| {
        eprintln!("error: cannot write {}: {e}", path.display());
        ExitCode::from(2)
    })
}

fn run(paths: &[PathBuf], seed: Option<u64>, json: bool, outputs: Outputs<'_>) -> ExitCode {
    let scenarios = match load_all(paths) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let many = scenarios.len() > 1;
    let mut all_passed = true;
    for (file, scenario) in &scenarios {
        let seed = seed.unwrap_or(scenario.default_seed());
        let ran = if outputs.html.is_some() {
            sim::run::run_scenario_with_messages(scenario, file, seed)
        } else {
            run_scenario(scenario, file, seed)
        };
        let finished = match ran {
            Ok(f) => f,
            Err(why) => {
                eprintln!("error: {file}: {why}");
                return ExitCode::from(2);
            }
        };
        // Each output is rendered only when asked for.
        let history = &finished.history;
        let files: [(Option<&Path>, &dyn Fn() -> String); 4] = [
            (outputs.trace, &|| to_json_lines(history)),
            (outputs.timeline, &|| {
                sim::timeline::render(scenario, history)
            }),
            (outputs.history, &|| {
                sim::linearizability::edn_string(&sim::check::linearizable::client_operations(
                    history,
                ))
            }),
            (outputs.html, &|| {
                sim::html::render(scenario, &finished.report, history, &finished.messages)
            }),
        ];
        for (path, render) in files {
            if let Some(path) = path {
                if let Err(code) = write_file(&per_run_path(path, &scenario.name, many), render()) {
                    return code;
                }
            }
        }
        if json {
            say!("{}", finished.report.to_json());
        } else {
            say_raw!("{}", finished.report.to_human(scenario));
            if many {
                say!();
            }
        }
        all_passed &= finished.report.passed();
    }
    if all_passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn check_recorded(path: &Path, histories: &[PathBuf], seed: Option<u64>, json: bool) -> ExitCode {
    let scenarios = match load_all(&[path.to_path_buf()]) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let Some((file, scenario)) = scenarios.first() else {
        return ExitCode::from(2);
    };
    let history = match sim::recorded::load(histories) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let files: Vec<String> = histories.iter().map(|h| h.display().to_string()).collect();
    let reproduce = format!(
        "cargo run -p sim -- check {file} --history {}",
        files.join(" ")
    );
    let seed = seed.unwrap_or(scenario.default_seed());
    let report = sim::recorded::judge(scenario, file, seed, &history, reproduce);
    if json {
        say!("{}", report.to_json());
    } else {
        say_raw!("{}", report.to_human(scenario));
    }
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `sim real`: the real runner is its own binary, built without the simulator (this one
/// is built with it); this finds or builds it and runs it with the same arguments.
fn real(
    scenario: &Path,
    bin_dir: Option<PathBuf>,
    trace: Option<&Path>,
    json: bool,
    seed: Option<u64>,
) -> ExitCode {
    let bin_dir = match bin_dir {
        Some(dir) => dir,
        None => {
            let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
            let mut build = std::process::Command::new("cargo");
            build.current_dir(&workspace).arg("real-build");
            for bin in sim::real_binaries() {
                build.args(["--bin", bin]);
            }
            match build.status() {
                Ok(status) if status.success() => {}
                Ok(status) => {
                    eprintln!("error: cargo real-build failed ({status})");
                    return ExitCode::from(2);
                }
                Err(e) => {
                    eprintln!("error: cannot run cargo real-build: {e}");
                    return ExitCode::from(2);
                }
            }
            workspace.join("target/real/debug")
        }
    };
    let runner = bin_dir.join("sim-real");
    let mut command = std::process::Command::new(&runner);
    command.arg(scenario).arg("--bin-dir").arg(&bin_dir);
    if let Some(trace) = trace {
        command.arg("--trace").arg(trace);
    }
    if json {
        command.arg("--json");
    }
    if let Some(seed) = seed {
        command.args(["--seed", &seed.to_string()]);
    }
    match command.status() {
        Ok(status) => match status.code() {
            Some(code) => ExitCode::from(code.clamp(0, 255) as u8),
            // Killed by a signal (ctrl-c reaches both): a failed run.
            None => ExitCode::from(1),
        },
        Err(e) => {
            eprintln!("error: cannot run {}: {e}", runner.display());
            ExitCode::from(2)
        }
    }
}

fn teach(name: Option<&str>, out: &Path) -> ExitCode {
    let Some(name) = name else {
        say_raw!("{}", sim::teach::catalogue());
        return ExitCode::SUCCESS;
    };
    let Some(lesson) = sim::teach::find(name) else {
        let names: Vec<&str> = sim::teach::LESSONS.iter().map(|l| l.name).collect();
        eprintln!(
            "error: no lesson \"{name}\": expected one of {}",
            names.join(", ")
        );
        return ExitCode::from(2);
    };
    say!(
        "{}\n  claim: {}\n  {}\n",
        lesson.title,
        lesson.claim,
        lesson.lesson
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut all_passed = true;
    let runs = [("failing", Some(lesson.failing)), ("fixed", lesson.fixed)];
    for (role, file) in runs {
        let Some(file) = file else {
            say!("(no fixed sibling in this system)");
            continue;
        };
        let path = if Path::new(file).exists() {
            PathBuf::from(file)
        } else {
            root.join(file)
        };
        let scenario = match scenario::load(&path) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
        let seed = scenario.default_seed();
        let finished = match sim::run::run_scenario_with_messages(&scenario, file, seed) {
            Ok(f) => f,
            Err(why) => {
                eprintln!("error: {file}: {why}");
                return ExitCode::from(2);
            }
        };
        let page = out.join(format!("{name}.{role}.html"));
        let html = sim::html::render(
            &scenario,
            &finished.report,
            &finished.history,
            &finished.messages,
        );
        if let Err(code) = write_file(&page, html) {
            return code;
        }
        say_raw!("{}", finished.report.to_human(&scenario));
        say!("page: {}\n", page.display());
        all_passed &= finished.report.passed();
    }
    if all_passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn validate(paths: &[PathBuf]) -> ExitCode {
    match load_all(paths) {
        Ok(scenarios) => {
            for (file, s) in scenarios {
                say!(
                    "ok {file} ({}, {} servers, {} checks)",
                    s.name,
                    s.server_count(),
                    s.checks.len()
                );
            }
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

fn check_determinism(path: &Path, seed: Option<u64>, runs: usize) -> ExitCode {
    let scenarios = match load_all(&[path.to_path_buf()]) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let (file, scenario) = &scenarios[0];
    let seed = seed.unwrap_or(scenario.default_seed());
    let mut first: Option<(String, Vec<Entry>)> = None;
    for run in 1..=runs.max(2) {
        let finished = match run_scenario(scenario, file, seed) {
            Ok(f) => f,
            Err(why) => {
                eprintln!("error: {file}: {why}");
                return ExitCode::from(2);
            }
        };
        if let Some(error) = &finished.report.error {
            eprintln!("run {run} crashed: {error}");
            return ExitCode::from(1);
        }
        let hash = finished.report.trace_hash.clone();
        say!(
            "run {run}: trace hash {hash} ({} entries)",
            finished.history.len()
        );
        match &first {
            None => first = Some((hash, finished.history)),
            Some((first_hash, first_history)) if *first_hash != hash => {
                say!("NOT deterministic: run 1 and run {run} differ");
                if let Some(diff) = sim::history::first_difference(first_history, &finished.history)
                {
                    say!("{diff}");
                }
                return ExitCode::from(1);
            }
            Some(_) => {}
        }
    }
    say!(
        "deterministic: {} runs of seed {seed} gave identical traces",
        runs.max(2)
    );
    ExitCode::SUCCESS
}

fn check_history(options: sim::linearizability::command::Options) -> ExitCode {
    let code = sim::linearizability::command::check_history(&options, &mut std::io::stdout());
    ExitCode::from(code)
}

fn run_fuzz(
    path: &Path,
    plan: SeedPlan,
    jobs: usize,
    json: bool,
    max_failures: Option<usize>,
    artifacts: Option<&Path>,
) -> ExitCode {
    use std::io::IsTerminal;
    let scenarios = match load_all(&[path.to_path_buf()]) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let (file, scenario) = &scenarios[0];
    let seeds = plan.seeds();
    let bar = (!json && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(seeds.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} seeds  {per_sec}  {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let started = std::time::Instant::now();
    let mut failed = 0usize;
    let mut failing_seeds = Vec::new();
    let mut sim_ms = 0u64;
    let result = fuzz(scenario, file, &seeds, jobs, max_failures, |r| {
        sim_ms += r.report.sim_ms;
        if json {
            say!("{}", r.report.to_json());
        }
        if !r.report.passed() {
            failed += 1;
            failing_seeds.push(r.seed);
            let line = format!(
                "seed {} FAILED {}\n  reproduce: {}",
                r.seed,
                headline(&r.report),
                r.report.reproduce
            );
            match &bar {
                Some(bar) => bar.println(line),
                None if !json => say!("{line}"),
                None => {}
            }
        }
        if let Some(bar) = &bar {
            bar.inc(1);
            bar.set_message(format!("{failed} failed"));
        }
    });
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let results = match result {
        Ok(r) => r,
        Err(why) => {
            eprintln!("error: {file}: {why}");
            return ExitCode::from(2);
        }
    };
    let wall = started.elapsed().as_secs_f64();
    let summary = format!(
        "{} seeds run ({} jobs{}), {} failed, {:.1} seeds/s, simulated time {:.0}x wall time",
        results.len(),
        jobs,
        plan.shard
            .map(|(k, n)| format!(", shard {k}/{n}"))
            .unwrap_or_default(),
        failed,
        results.len() as f64 / wall.max(1e-9),
        sim_ms as f64 / 1e3 / wall.max(1e-9)
    );
    if json {
        eprintln!("{summary}");
    } else {
        say!("{summary}");
    }
    if let Some(root) = artifacts {
        failing_seeds.sort_unstable();
        for &seed in failing_seeds.iter().take(sim::artifacts::MAX_SEEDS) {
            match sim::artifacts::write_failure(root, scenario, file, seed) {
                Ok(w) => {
                    let note = w
                        .unshrunk
                        .map(|why| format!(" (not shrunk: {why})"))
                        .unwrap_or_default();
                    eprintln!("artifacts of seed {seed}: {}{note}", w.dir.display());
                    eprintln!("  reproduce: {}", w.reproduce);
                }
                Err(why) => {
                    eprintln!("error: artifacts of seed {seed}: {why}");
                    return ExitCode::from(2);
                }
            }
        }
        if failing_seeds.len() > sim::artifacts::MAX_SEEDS {
            eprintln!(
                "artifacts written for the first {} of {} failing seeds",
                sim::artifacts::MAX_SEEDS,
                failing_seeds.len()
            );
        }
    }
    if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn run_shrink(path: &Path, seed: u64, output: Option<&Path>, html: Option<&Path>) -> ExitCode {
    let scenarios = match load_all(&[path.to_path_buf()]) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let (file, scenario) = &scenarios[0];
    let shrunk = match sim::shrink::shrink(scenario, file, seed) {
        Ok(s) => s,
        Err(why) => {
            eprintln!("error: {file} seed {seed}: {why}");
            return ExitCode::from(2);
        }
    };
    match output {
        Some(out) => {
            if let Err(code) = write_file(out, shrunk.text.clone()) {
                return code;
            }
            say!(
                "wrote {}: check `{}` still fails with {} of {} faults ({} runs)\n  {}\n  reproduce: cargo run -p sim -- run {} --seed {seed}",
                out.display(),
                shrunk.check,
                shrunk.faults_after,
                shrunk.faults_before,
                shrunk.runs,
                shrunk.evidence,
                out.display()
            );
        }
        None => {
            say_raw!("{}", shrunk.text);
            eprintln!(
                "check `{}` still fails with {} of {} faults ({} runs)",
                shrunk.check, shrunk.faults_after, shrunk.faults_before, shrunk.runs
            );
        }
    }
    if let Some(page) = html {
        let shown = output.map_or_else(|| file.clone(), |o| o.display().to_string());
        let finished = match sim::run::run_scenario_with_messages(&shrunk.scenario, &shown, seed) {
            Ok(f) => f,
            Err(why) => {
                eprintln!("error: {why}");
                return ExitCode::from(2);
            }
        };
        let text = sim::html::render(
            &shrunk.scenario,
            &finished.report,
            &finished.history,
            &finished.messages,
        );
        if let Err(code) = write_file(page, text) {
            return code;
        }
        eprintln!("wrote {}: the shrunk run's report", page.display());
    }
    ExitCode::SUCCESS
}
