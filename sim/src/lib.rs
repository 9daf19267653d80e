//! The deterministic simulation testbed.
//!
//! A scenario file ([`scenario`]) and a seed go in; the [`harness`] builds a madsim runtime,
//! starts the real node code on simulated servers, applies [`fault`]s through the one
//! module that touches the simulator ([`cluster`]), and records a [`history`]. The
//! [`check`]s judge that history, and [`report`] tells a person (or CI) what happened and
//! how to reproduce it. Scenario, history, checks and report live in [`simcore`], which
//! builds without the simulator so a real run (`sim real`) judges with the same code.

pub use simcore::{
    addresses, check, history, linearizability, nemesis, probe, recorded, report, scenario,
    scenario_toml, timeline, workload,
};

pub mod artifacts;
pub mod bench;
pub mod cluster;
pub mod disk;
pub mod fault;
pub mod fuzz;
pub mod harness;
pub mod html;
pub mod run;
pub mod shrink;
pub mod systems;
pub mod teach;

/// The binaries `sim real` needs, as `cargo real-build --bin` names them: the runner
/// and every real node.
pub fn real_binaries() -> [&'static str; 6] {
    [
        "sim-real",
        "election-node",
        "chat-node",
        "kv-node",
        "registry",
        "load-balancer",
    ]
}

#[cfg(not(madsim))]
compile_error!(
    "the sim crate builds only for the simulator (--cfg madsim, set in .cargo/config.toml). \
     RUSTFLAGS in the environment replaces that flag: unset it."
);
