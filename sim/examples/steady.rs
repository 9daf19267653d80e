//! The election overhead measurement of `sim bench`, one side at a time, for profilers:
//! the testbed's steady election or raw madsim's same message pattern, N seeds of S
//! simulated seconds, in a process of its own (so `valgrind --tool=callgrind` or
//! `perf record` sees one side only).
//!
//! ```sh
//! cargo build --release -p sim --example steady
//! ./target/release/examples/steady ours 60 100    # the testbed, 100 seeds of 60 s
//! ./target/release/examples/steady raw 60 100     # raw madsim, the same pattern
//! ```
//!
//! Running both at 3 s and at 60 s (or 600 s) separates a run's fixed cost from its cost
//! per simulated second.

use sim::bench::{raw_tcp_heartbeats, steady_election};
use sim::run::run_scenario;
use std::process::ExitCode;
use std::time::Instant;

/// As `sim` itself allocates (see its `main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage: steady ours|raw SECONDS SEEDS";

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
    let started = Instant::now();
    let mut messages = 0;
    for seed in 1..=seeds {
        messages += match side.as_str() {
            "ours" => run_scenario(&scenario, "bench-election-steady", seed)?.net_messages,
            // On a thread of its own per seed, as `sim bench` runs it.
            "raw" => std::thread::spawn(move || raw_tcp_heartbeats(seed, seconds))
                .join()
                .map_err(|_| "the raw run panicked".to_string())?,
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
