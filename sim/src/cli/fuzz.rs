//! `sim fuzz`: run many seeds (with the scenario's nemesis, if any), print every failing
//! seed with the command that reproduces it, and optionally write each failure's
//! artifacts (shrunk scenario, trace, reports).

use super::load_one;
use sim::fuzz::{fuzz, headline, SeedPlan};
use std::path::Path;
use std::process::ExitCode;

/// What `sim fuzz` was asked for, besides the scenario.
pub struct FuzzOptions<'a> {
    pub plan: SeedPlan,
    pub jobs: usize,
    pub json: bool,
    pub max_failures: Option<usize>,
    pub artifacts: Option<&'a Path>,
}

/// Fuzzes the scenario at `path`; exit 1 if any seed failed.
pub fn run_fuzz(path: &Path, options: FuzzOptions<'_>) -> ExitCode {
    use std::io::IsTerminal;
    let FuzzOptions {
        plan,
        jobs,
        json,
        max_failures,
        artifacts,
    } = options;
    let (file, scenario) = match load_one(path) {
        Ok(s) => s,
        Err(code) => return code,
    };
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
    let result = fuzz(&scenario, &file, &seeds, jobs, max_failures, |r| {
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
            match sim::artifacts::write_failure(root, &scenario, &file, seed) {
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
