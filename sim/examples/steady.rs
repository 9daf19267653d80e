//! The election overhead measurement of `sim bench`, one side at a time, for profilers:
//! the testbed's steady election or raw madsim's same message pattern, N seeds of S
//! simulated seconds, in a process of its own (so `valgrind --tool=callgrind` or
//! `perf record` sees one side only).
//!
//! ```sh
//! cargo build --release -p sim --example steady
//! ./target/release/examples/steady ours 60 100    # the testbed, 100 seeds of 60 s
//! ./target/release/examples/steady raw 60 100     # raw madsim, the same pattern
//! ./target/release/examples/steady pair 60 100    # both, alternated seed by seed
//! ```
//!
//! Running both at 3 s and at 60 s (or 600 s) separates a run's fixed cost from its cost
//! per simulated second. `pair` alternates the two as `sim bench` does (each seed the
//! testbed's run, then raw madsim's) and prints their ratio: alternated, each side starts
//! with caches and allocator pages left by the other, which moves the ratio by ~0.1 against
//! running each side back to back.

use sim::bench::{raw_tcp_heartbeats, steady_election};
use sim::run::run_scenario;
use std::process::ExitCode;
use std::time::Instant;

/// As `sim` itself allocates (see its `main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage: steady ours|raw|pair SECONDS SEEDS";

fn main() -> ExitCode {
    match measure(std::env::args().skip(1).collect()) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

fn measure(args: Vec<String>) -> Result<String, String> {
    let [side, seconds, seeds] = args.as_slice() else {
        return Err(USAGE.into());
    };
    let seconds: u64 = seconds.parse().map_err(|_| USAGE.to_string())?;
    let seeds: u64 = seeds.parse().map_err(|_| USAGE.to_string())?;
    let scenario = steady_election(seconds)?;
    if side == "pair" {
        return pair(&scenario, seconds, seeds);
    }
    let started = Instant::now();
    let mut messages = 0;
    for seed in 1..=seeds {
        messages += match side.as_str() {
            "ours" => run_scenario(&scenario, "bench-election-steady", seed)?.net_messages,
            "raw" => raw_run(seed, seconds)?,
            _ => return Err(USAGE.into()),
        };
    }
    let wall = started.elapsed().as_secs_f64();
    Ok(format!(
        "{side} {seconds}s x {seeds} seeds: {messages} messages, {:.3} ms per seed, {:.0} ns per message",
        wall * 1e3 / seeds.max(1) as f64,
        wall * 1e9 / messages.max(1) as f64
    ))
}

/// As `sim bench` alternates them: each seed the testbed's run, then raw madsim's.
fn pair(scenario: &sim::scenario::Scenario, seconds: u64, seeds: u64) -> Result<String, String> {
    let (mut ours, mut raw) = ((0.0, 0u64), (0.0, 0u64));
    for seed in 1..=seeds {
        let started = Instant::now();
        ours.1 += run_scenario(scenario, "bench-election-steady", seed)?.net_messages;
        ours.0 += started.elapsed().as_secs_f64();
        let started = Instant::now();
        raw.1 += raw_run(seed, seconds)?;
        raw.0 += started.elapsed().as_secs_f64();
    }
    let ns = |(wall, n): (f64, u64)| wall * 1e9 / n.max(1) as f64;
    Ok(format!(
        "pair {seconds}s x {seeds} seeds: ours {:.0} ns per message, raw {:.0}, ratio {:.2}",
        ns(ours),
        ns(raw),
        ns(ours) / ns(raw)
    ))
}

/// One raw madsim seed on a thread of its own, as `sim bench` runs it.
fn raw_run(seed: u64, seconds: u64) -> Result<u64, String> {
    std::thread::spawn(move || raw_tcp_heartbeats(seed, seconds))
        .join()
        .map_err(|_| "the raw run panicked".to_string())
}
