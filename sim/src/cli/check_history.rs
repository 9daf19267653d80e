//! `sim check-history`: a recorded EDN history or Jepsen log checked for linearizability
//! (the command itself lives in `simcore::linearizability::command`).

use sim::linearizability::command::{check_history, Options};
use std::process::ExitCode;

/// Checks the history `options` name and exits with the command's code.
pub fn check_history_file(options: &Options) -> ExitCode {
    ExitCode::from(check_history(options, &mut std::io::stdout()))
}
