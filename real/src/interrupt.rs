//! Ctrl-c: every node process the runner started is killed before it exits, as it is at
//! the end of a run (and when the runner's cluster is dropped).

use crate::procs::{send_signal, Procs};
use std::sync::Mutex;

/// The processes running now.
static RUNNING: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Notes which processes run now (call after every start or stop).
pub fn watch(procs: &Procs) {
    *RUNNING.lock().unwrap_or_else(|e| e.into_inner()) = procs.pids();
}

/// Kills every watched process, then exits with 130 (the shell's code for SIGINT).
pub fn on_ctrl_c() {
    tokio::spawn(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            for pid in RUNNING.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
                let _ = send_signal(pid, libc::SIGKILL);
            }
            eprintln!("sim-real: interrupted; every node process was killed");
            std::process::exit(130);
        }
    });
}
