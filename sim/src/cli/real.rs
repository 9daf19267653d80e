//! `sim real`: the real runner is its own binary (`sim-real`), built without the
//! simulator (this one is built with it); this finds or builds it and runs it with the
//! same options.

use super::workspace_root;
use simcore::real_options::RealOptions;
use std::path::PathBuf;
use std::process::ExitCode;

/// Builds the real binaries unless `--bin-dir` names them, then runs `sim-real` and
/// exits as it does.
pub fn run_real(options: &RealOptions) -> ExitCode {
    let bin_dir = match &options.bin_dir {
        Some(dir) => dir.clone(),
        None => match build_real_binaries() {
            Ok(dir) => dir,
            Err(code) => return code,
        },
    };
    let runner = bin_dir.join("sim-real");
    let mut command = std::process::Command::new(&runner);
    command.args(options.to_args(&bin_dir));
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

/// `cargo real-build` of every binary `sim real` needs; returns where they are.
fn build_real_binaries() -> Result<PathBuf, ExitCode> {
    let workspace = workspace_root();
    let mut build = std::process::Command::new("cargo");
    build.current_dir(&workspace).arg("real-build");
    for bin in sim::real_binaries() {
        build.args(["--bin", bin]);
    }
    match build.status() {
        Ok(status) if status.success() => Ok(workspace.join("target/real/debug")),
        Ok(status) => {
            eprintln!("error: cargo real-build failed ({status})");
            Err(ExitCode::from(2))
        }
        Err(e) => {
            eprintln!("error: cannot run cargo real-build: {e}");
            Err(ExitCode::from(2))
        }
    }
}
