//! `sim bench`: fuzz throughput and overhead, or (`--gossip`) membership convergence at
//! growing cluster sizes; the measurements live in `sim::bench`.

use super::{workspace_root, write_file};
use std::path::Path;
use std::process::ExitCode;

/// Fuzz throughput, overhead against raw madsim, seeds to first failure, peak memory.
pub fn bench_fuzz(seeds: u64) -> ExitCode {
    match sim::bench::bench(&workspace_root(), seeds) {
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

/// Gossip membership at each size; the plot goes to `svg` when given.
pub fn bench_gossip(sizes: &[usize], svg: Option<&Path>) -> ExitCode {
    match sim::bench::gossip_scale(sizes) {
        Ok(rows) => {
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
