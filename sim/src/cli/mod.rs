//! The bodies of `sim`'s subcommands, one module each; `main.rs` parses the arguments and
//! dispatches here. What several subcommands share (loading scenarios, writing files,
//! printing to a stdout that may be closed) lives in this file.

use simcore::scenario::{self, Scenario};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `println!` that ignores a closed stdout (`sim run ... | head`) instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `print!` that ignores a closed stdout.
macro_rules! say_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

pub mod bench;
pub mod check;
pub mod check_determinism;
pub mod check_history;
pub mod fuzz;
pub mod real;
pub mod run;
pub mod shrink;
pub mod teach;
pub mod validate;

/// Loads every scenario, printing each one's error; exit 2 if any failed to load.
fn load_all(paths: &[PathBuf]) -> Result<Vec<(String, Scenario)>, ExitCode> {
    let mut loaded = Vec::new();
    let mut failed = false;
    for path in paths {
        match scenario::load(path) {
            Ok(s) => loaded.push((path.display().to_string(), s)),
            Err(e) => {
                eprintln!("error: {e}");
                failed = true;
            }
        }
    }
    if failed {
        Err(ExitCode::from(2))
    } else {
        Ok(loaded)
    }
}

/// Loads the one scenario a subcommand takes.
fn load_one(path: &Path) -> Result<(String, Scenario), ExitCode> {
    let mut loaded = load_all(&[path.to_path_buf()])?;
    loaded.pop().ok_or(ExitCode::from(2))
}

fn write_file(path: &Path, text: String) -> Result<(), ExitCode> {
    std::fs::write(path, text).map_err(|e| {
        eprintln!("error: cannot write {}: {e}", path.display());
        ExitCode::from(2)
    })
}

/// The workspace root, where the lessons' and the benchmark's scenario paths start.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Exit 0 when every run passed, 1 otherwise.
fn exit_passed(all_passed: bool) -> ExitCode {
    if all_passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
