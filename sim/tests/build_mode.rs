//! Guards the build mode: these tests only mean something inside the simulator.

/// Someone set RUSTFLAGS (CI's `-Dwarnings`, say), which replaces the workspace's
/// `--cfg madsim`: every simulation would silently run on real tokio, or not at all.
#[test]
fn the_test_build_is_the_simulation_build() {
    #[cfg(not(madsim))]
    panic!(
        "built without --cfg madsim: RUSTFLAGS in the environment overrides \
         .cargo/config.toml. Unset RUSTFLAGS (put lint levels in [workspace.lints])."
    );
}
