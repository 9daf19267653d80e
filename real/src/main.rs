//! `sim-real`: one scenario on real processes on loopback, judged by the same checks as
//! `sim run` (what `sim real` runs; see DESIGN's `sim real`).
//!
//! ```text
//! cargo real-build --bin sim-real --bin chat-node --bin election-node \
//!     --bin kv-node --bin registry --bin load-balancer
//! target/real/debug/sim-real scenarios/teaching/split-brain.toml --bin-dir target/real/debug
//! target/real/debug/sim-real scenarios/kv/partition-heal.toml --bin-dir target/real/debug
//! ```
//! Exit codes as `sim run`: 0 the verdict is pass, 1 fail, 2 usage or scenario error.

mod byte_proxy;
mod datagram_proxy;
mod disk_file;
mod interrupt;
mod kv;
mod procs;
mod proxy;
mod runner;

use clap::{CommandFactory, FromArgMatches, Parser};
use simcore::real_options::RealOptions;
use std::io::Write;

/// Flags as `sim real` takes them (one declaration, [`RealOptions`]), but `--bin-dir` is
/// required: `sim real` finds or builds the binaries, this runner is told where they are.
#[derive(Parser, Debug)]
#[command(
    version,
    about = "A scenario on real processes on loopback, judged by the simulator's checks"
)]
struct Args {
    #[command(flatten)]
    options: RealOptions,
}

/// Parses the command line; clap prints usage errors and `--help` and exits (2 on errors).
fn parse_args() -> RealOptions {
    let command = Args::command().mut_arg("bin_dir", |arg| {
        arg.required(true)
            .help("Directory of the real binaries (`chat-node`, `election-node`, `kv-node`, ...)")
    });
    let parsed = command
        .try_get_matches()
        .and_then(|matches| Args::from_arg_matches(&matches));
    match parsed {
        Ok(args) => args.options,
        Err(e) => e.exit(),
    }
}

fn main() {
    let args = parse_args();
    let scenario = match simcore::scenario::load(&args.scenario) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let Some(bin_dir) = args.bin_dir.clone() else {
        // Required by `parse_args`; a clear error all the same.
        eprintln!("error: --bin-dir is required");
        std::process::exit(2);
    };
    let options = runner::Options {
        scenario: args.scenario.clone(),
        bin_dir,
        trace: args.trace.clone(),
        seed: args.seed,
    };
    let mut code = 2;
    // The fault proxy carries every peer message: its own threads, so a busy client or
    // probe task never holds a message up.
    nodes::real::block_on_threads("sim-real", 2, || async {
        interrupt::on_ctrl_c();
        let finished = runner::run_real(&options, &scenario).await?;
        let report = &finished.report;
        let mut out = std::io::stdout();
        if args.json {
            let mut json = serde_json::to_value(report).unwrap_or_default();
            json["mode"] = "real".into();
            json["partial"] = finished.partial.clone().into();
            let _ = writeln!(out, "{json}");
        } else {
            let _ = writeln!(
                out,
                "real run on loopback ({} history lines); nodes' files in {}",
                finished.history.len(),
                finished.dir.display()
            );
            let _ = write!(out, "{}", report.to_human(&scenario));
            if finished.partial.is_empty() {
                let _ = writeln!(out, "every fault of the timeline was applied");
            } else {
                let _ = writeln!(out, "PARTIAL: not applied on real processes:");
                for why in &finished.partial {
                    let _ = writeln!(out, "  {why}");
                }
            }
        }
        code = if report.passed() { 0 } else { 1 };
        Ok(())
    });
    std::process::exit(code);
}
