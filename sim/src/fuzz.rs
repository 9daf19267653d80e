//! Many seeds of one scenario: the CI-fuzzing half of the testbed.
//!
//! Seeds run on `jobs` worker threads (each run still gets its own thread and its own
//! deterministic runtime, so parallelism never changes a result). `--shard K/N` keeps the
//! seeds `s` with `s % N == K`, so a CI matrix or a Kubernetes Indexed Job splits one range
//! with no coordinator. Every failure carries its seed and the command that replays it.

use crate::report::RunReport;
use crate::run::run_scenario;
use crate::scenario::Scenario;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};

/// Which seeds to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeedPlan {
    /// First seed (inclusive).
    pub start: u64,
    /// Last seed (exclusive).
    pub end: u64,
    /// `(k, n)`: only seeds with `seed % n == k`.
    pub shard: Option<(u64, u64)>,
}

impl SeedPlan {
    /// Parses `A..B` (exclusive) or `A..=B` (inclusive).
    pub fn parse_range(text: &str) -> Result<(u64, u64), String> {
        let expected = || format!("expected a seed range like 1..1000 or 1..=1000, got \"{text}\"");
        let (a, b, inclusive) = if let Some((a, b)) = text.split_once("..=") {
            (a, b, true)
        } else if let Some((a, b)) = text.split_once("..") {
            (a, b, false)
        } else {
            return Err(expected());
        };
        let a: u64 = a.trim().parse().map_err(|_| expected())?;
        let b: u64 = b.trim().parse().map_err(|_| expected())?;
        let end = if inclusive { b.saturating_add(1) } else { b };
        if end <= a {
            return Err(format!("empty seed range \"{text}\""));
        }
        Ok((a, end))
    }

    /// Parses `K/N` with `K < N`.
    pub fn parse_shard(text: &str) -> Result<(u64, u64), String> {
        let expected = || format!("expected a shard like 0/4 (K/N with K < N), got \"{text}\"");
        let (k, n) = text.split_once('/').ok_or_else(expected)?;
        let k: u64 = k.trim().parse().map_err(|_| expected())?;
        let n: u64 = n.trim().parse().map_err(|_| expected())?;
        if n == 0 || k >= n {
            return Err(expected());
        }
        Ok((k, n))
    }

    /// The seeds, in order.
    pub fn seeds(&self) -> Vec<u64> {
        (self.start..self.end)
            .filter(|s| self.shard.is_none_or(|(k, n)| s % n == k))
            .collect()
    }
}

/// One seed's outcome as the fuzzer reports it.
#[derive(Clone, Debug)]
pub struct SeedResult {
    /// The seed.
    pub seed: u64,
    /// Its report.
    pub report: RunReport,
}

/// Runs `seeds` of `scenario` on `jobs` threads, calling `on_result` as each finishes (in
/// completion order) and stopping early after `max_failures` failures.
pub fn fuzz(
    scenario: &Scenario,
    file: &str,
    seeds: &[u64],
    jobs: usize,
    max_failures: Option<usize>,
    mut on_result: impl FnMut(&SeedResult),
) -> Result<Vec<SeedResult>, String> {
    let queue: Arc<Vec<u64>> = Arc::new(seeds.to_vec());
    let next_index = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicU64::new(0));
    let (tx, rx) = mpsc::channel::<Result<SeedResult, String>>();
    let workers: Vec<_> = (0..jobs.max(1))
        .map(|_| {
            let (queue, stop, failures, tx) =
                (queue.clone(), stop.clone(), failures.clone(), tx.clone());
            let (scenario, file) = (scenario.clone(), file.to_string());
            let next_index = next_index.clone();
            std::thread::spawn(move || loop {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let index = next_index.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(&seed) = queue.get(index) else {
                    return;
                };
                let result = run_scenario(&scenario, &file, seed).map(|finished| SeedResult {
                    seed,
                    report: finished.report,
                });
                if let Ok(r) = &result {
                    if !r.report.passed() {
                        let failed = failures.fetch_add(1, Ordering::Relaxed) + 1;
                        if max_failures.is_some_and(|m| failed as usize >= m) {
                            stop.store(true, Ordering::Relaxed);
                        }
                    }
                }
                if tx.send(result).is_err() {
                    return;
                }
            })
        })
        .collect();
    drop(tx);
    let mut results = Vec::new();
    for result in rx {
        let result = result?;
        on_result(&result);
        results.push(result);
    }
    for worker in workers {
        let _ = worker.join();
    }
    results.sort_by_key(|r| r.seed);
    Ok(results)
}

/// The first failing check's kind and evidence, for one-line summaries.
pub fn headline(report: &RunReport) -> String {
    if let Some(error) = &report.error {
        return format!("crash: {error}");
    }
    match report.checks.iter().find(|c| !c.passed) {
        Some(check) => format!("{}: {}", check.kind, check.detail),
        None => format!(
            "expected a violation, but every check passed ({})",
            report.expect
        ),
    }
}
