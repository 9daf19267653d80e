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
//! ./target/release/examples/steady blocks 60 100  # both, alternated ten seeds at a time
//! ```
//!
//! Running both at 3 s and at 60 s (or 600 s) separates a run's fixed cost from its cost
//! per simulated second. `pair` alternates the two as `sim bench` does (each seed the
//! testbed's run, then raw madsim's) and prints their ratio: alternated, each side starts
//! with caches and allocator pages left by the other, which moves the ratio by ~0.1 against
//! running each side back to back. `blocks` alternates ten seeds of each: all but the first
//! seed of a block start from their own side's leftovers, as in a fuzz run of one side,
//! while both sides still share the machine's load.

use sim::bench::{raw_tcp_heartbeats, steady_election};
use sim::run::run_scenario;
use std::process::ExitCode;
use std::time::Instant;

/// As `sim` itself allocates (see its `main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage: steady ours|raw|pair|blocks SECONDS SEEDS";

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
    match side.as_str() {
        "pair" => return pair(&scenario, seconds, seeds, 1),
        "blocks" => return pair(&scenario, seconds, seeds, 10),
        _ => {}
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

/// Both sides alternated `block` seeds at a time: with 1, as `sim bench` alternates them
/// (each seed the testbed's run, then raw madsim's).
fn pair(
    scenario: &sim::scenario::Scenario,
    seconds: u64,
    seeds: u64,
    block: u64,
) -> Result<String, String> {
    let (mut ours, mut raw) = ((0.0, 0u64), (0.0, 0u64));
    let mut first = 1;
    while first <= seeds {
        let last = (first + block - 1).min(seeds);
        let started = Instant::now();
        for seed in first..=last {
            ours.1 += run_scenario(scenario, "bench-election-steady", seed)?.net_messages;
        }
        ours.0 += started.elapsed().as_secs_f64();
        let started = Instant::now();
        for seed in first..=last {
            raw.1 += raw_run(seed, seconds)?;
        }
        raw.0 += started.elapsed().as_secs_f64();
        first = last + 1;
    }
    let ns = |(wall, n): (f64, u64)| wall * 1e9 / n.max(1) as f64;
    Ok(format!(
        "{} {seconds}s x {seeds} seeds: ours {:.0} ns per message, raw {:.0}, ratio {:.2}",
        if block == 1 { "pair" } else { "blocks" },
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
