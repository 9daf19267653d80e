//! The flags of `sim real`, declared once: `sim real` parses them and hands them on to
//! the `sim-real` runner, which parses the same struct (with `--bin-dir` required).

use std::ffi::OsString;
use std::path::PathBuf;

/// A scenario on real processes: what to run and where the results go.
#[derive(clap::Args, Debug, Clone)]
pub struct RealOptions {
    /// Scenario file.
    pub scenario: PathBuf,
    /// Directory holding the real binaries and `sim-real` (default: build them with
    /// `cargo real-build` and use target/real/debug).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// Write the run's merged history (nodes' and clients' lines) here.
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// One JSON object, as `run --json` prints.
    #[arg(long)]
    pub json: bool,
    /// Seed of the workload's and selectors' random choices (default: the scenario's).
    #[arg(long)]
    pub seed: Option<u64>,
}

impl RealOptions {
    /// The command line that parses back into these options, with `bin_dir` as the
    /// binaries' directory: what `sim real` passes to `sim-real`.
    pub fn to_args(&self, bin_dir: &std::path::Path) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            self.scenario.clone().into(),
            "--bin-dir".into(),
            bin_dir.into(),
        ];
        if let Some(trace) = &self.trace {
            args.push("--trace".into());
            args.push(trace.into());
        }
        if self.json {
            args.push("--json".into());
        }
        if let Some(seed) = self.seed {
            args.push("--seed".into());
            args.push(seed.to_string().into());
        }
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        options: RealOptions,
    }

    #[test]
    fn to_args_parses_back_into_the_same_options() {
        let options = RealOptions {
            scenario: "scenarios/teaching/split-brain.toml".into(),
            bin_dir: None,
            trace: Some("out/trace.jsonl".into()),
            json: true,
            seed: Some(7),
        };
        let mut argv: Vec<OsString> = vec!["sim-real".into()];
        argv.extend(options.to_args(std::path::Path::new("target/real/debug")));
        let parsed = Wrapper::try_parse_from(argv).map(|w| w.options);
        let parsed = parsed.unwrap_or_else(|e| panic!("to_args does not parse back: {e}"));
        assert_eq!(parsed.scenario, options.scenario);
        assert_eq!(parsed.bin_dir, Some("target/real/debug".into()));
        assert_eq!(parsed.trace, options.trace);
        assert!(parsed.json);
        assert_eq!(parsed.seed, Some(7));
    }
}
