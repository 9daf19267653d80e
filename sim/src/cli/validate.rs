//! `sim validate`: parse and validate scenarios, nothing run.

use super::load_all;
use std::path::PathBuf;
use std::process::ExitCode;

/// Prints one `ok` line per valid scenario; exit 2 if any is not.
pub fn validate(paths: &[PathBuf]) -> ExitCode {
    match load_all(paths) {
        Ok(scenarios) => {
            for (file, s) in scenarios {
                say!(
                    "ok {file} ({}, {} servers, {} checks)",
                    s.name,
                    s.server_count(),
                    s.checks.len()
                );
            }
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}
