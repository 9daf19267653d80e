//! `sim bench`: fuzz throughput and overhead and the scale rows (or `--scale` alone), or
//! (`--gossip`) membership convergence at growing cluster sizes; the measurements live in
//! `sim::bench`.

use super::{workspace_root, write_file};
use std::path::Path;
use std::process::ExitCode;

/// Fuzz throughput, overhead against raw madsim, seeds to first failure, peak memory,
/// then the scale rows for `scale_sizes` (server counts, or `none`); only those with
/// `scale_only`.
pub fn bench_fuzz(seeds: u64, scale_only: bool, scale_sizes: &[String]) -> ExitCode {
    let sizes: Result<Vec<usize>, _> = scale_sizes
        .iter()
        .filter(|s| s.as_str() != "none")
        .map(|s| s.parse::<usize>())
        .collect();
    let Ok(sizes) = sizes else {
        eprintln!("error: --scale-sizes takes server counts (or `none`): {scale_sizes:?}");
        return ExitCode::from(2);
    };
    let root = workspace_root();
    let measured = if scale_only {
        sim::bench::scale(&root, &sizes).map(|rows| {
            let machine = sim::bench::machine();
            format!("machine: {machine}\n{}", sim::bench::scale_table(&rows))
        })
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

/// Gossip membership at each size over seeds `1..=seeds`; the plot goes to `svg` when
/// given.
pub fn bench_gossip(sizes: &[usize], seeds: u64, svg: Option<&Path>) -> ExitCode {
    match sim::bench::gossip_scale(sizes, seeds) {
        Ok(rows) => {
            say_raw!("machine: {}\n", sim::bench::machine());
            say_raw!("{}", sim::bench::gossip_table(&rows));
            if let Some(path) = svg {
                if let Err(code) = write_file(path, sim::bench::gossip_svg(&rows)) {
                    return code;
                }
            }
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("error: {why}");
            ExitCode::from(2)
        }
    }
}
