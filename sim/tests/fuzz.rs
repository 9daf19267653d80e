//! The fuzzer has teeth, the safe configurations survive it, and its outputs replay.

use sim::fuzz::{fuzz, SeedPlan};
use sim::run::run_scenario;
use sim::scenario::{parse, Action, Scenario};
use std::path::Path;

use sim::bench::{CHAT_UNSAFE, KV_WALL_CLOCK};

fn load(file: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(file);
    sim::scenario::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn failures(scenario: &Scenario, file: &str, seeds: std::ops::Range<u64>) -> Vec<u64> {
    let seeds: Vec<u64> = seeds.collect();
    fuzz(scenario, file, &seeds, 2, None, |_| {})
        .expect("runnable")
        .into_iter()
        .filter(|r| !r.report.passed())
        .map(|r| r.seed)
        .collect()
}

#[test]
fn safe_chat_survives_the_nemesis_on_every_seed() {
    let file = "scenarios/fuzz/chat-safe.toml";
    assert_eq!(failures(&load(file), file, 1..25), Vec::<u64>::new());
}

#[test]
fn safe_election_survives_the_nemesis_on_every_seed() {
    let file = "scenarios/fuzz/election-safe.toml";
    assert_eq!(failures(&load(file), file, 1..25), Vec::<u64>::new());
}

#[test]
fn safe_kv_survives_the_nemesis_on_every_seed() {
    let file = "scenarios/fuzz/kv-safe.toml";
    assert_eq!(failures(&load(file), file, 1..25), Vec::<u64>::new());
}

#[test]
fn gossip_kv_survives_every_fault_kind_on_every_seed() {
    let file = "scenarios/fuzz/kv-gossip.toml";
    assert_eq!(failures(&load(file), file, 1..25), Vec::<u64>::new());
}

#[test]
fn the_seeds_chat_fails_within_ten_seeds_and_shrinks_to_fewer_faults() {
    has_teeth(CHAT_UNSAFE);
}

#[test]
fn wall_clock_kv_under_skew_fails_within_ten_seeds_and_shrinks_to_fewer_faults() {
    has_teeth(KV_WALL_CLOCK);
}

fn has_teeth(text: &str) {
    let scenario = parse("known-bad.toml", text).unwrap();
    let failing = failures(&scenario, "known-bad.toml", 1..11);
    let Some(&seed) = failing.first() else {
        panic!("no failure in 10 seeds: the fuzzer has no teeth");
    };
    let shrunk = sim::shrink::shrink(&scenario, "known-bad.toml", seed).expect("shrinks");
    assert!(
        shrunk.faults_after < shrunk.faults_before,
        "{} of {} faults",
        shrunk.faults_after,
        shrunk.faults_before
    );
    assert!(shrunk.scenario.nemesis.is_none());
    assert!(
        shrunk.text.contains(&format!("seed {seed}")),
        "{}",
        shrunk.text
    );
    // The written file replays the failure on its own.
    let again = parse("shrunk.toml", &shrunk.text).unwrap();
    let report = run_scenario(&again, "shrunk.toml", seed).unwrap().report;
    assert!(!report.passed());
    assert!(report
        .checks
        .iter()
        .any(|c| c.kind == shrunk.check && !c.passed));
}

#[test]
fn a_shrunk_file_replays_the_minimal_run_to_the_nanosecond() {
    let scenario = parse("known-bad.toml", CHAT_UNSAFE).unwrap();
    let seed = *failures(&scenario, "known-bad.toml", 1..11)
        .first()
        .expect("a failing seed");
    let shrunk = sim::shrink::shrink(&scenario, "known-bad.toml", seed).expect("shrinks");
    // The nemesis draws fault times in nanoseconds and the shrinker cuts the run by
    // quarters: the file must carry them exactly, not rounded to milliseconds.
    let again = parse("shrunk.toml", &shrunk.text).unwrap();
    let sub_ms = |d: std::time::Duration| !d.as_nanos().is_multiple_of(1_000_000);
    assert!(
        again.faults.iter().any(|f| sub_ms(f.get_ref().at.0)) || sub_ms(again.duration.0),
        "nothing below a millisecond to keep: the test proves nothing\n{}",
        shrunk.text
    );
    let replay = run_scenario(&again, "shrunk.toml", seed).unwrap();
    assert_eq!(
        sim::history::trace_hash(&replay.history),
        shrunk.trace_hash,
        "the file does not replay the minimal run\n{}",
        shrunk.text
    );
    let failing: Vec<&str> = replay
        .report
        .checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| c.kind.as_str())
        .collect();
    assert_eq!(failing.first().copied(), Some(shrunk.check.as_str()));
}

#[test]
fn a_fuzzed_seed_replays_exactly_with_run() {
    let file = "scenarios/fuzz/chat-safe.toml";
    let scenario = load(file);
    let from_fuzz = fuzz(&scenario, file, &[7], 1, None, |_| {}).unwrap();
    let from_run = run_scenario(&scenario, file, 7).unwrap();
    assert_eq!(from_fuzz[0].report.trace_hash, from_run.report.trace_hash);
}

#[test]
fn the_nemesis_keeps_a_majority_up_and_heals_everything_by_until() {
    let scenario = load("scenarios/fuzz/chat-safe.toml");
    for seed in 1..40 {
        let faults = sim::nemesis::schedule(&scenario, seed);
        assert!(!faults.is_empty(), "seed {seed}: no faults");
        let mut down: std::collections::BTreeSet<String> = Default::default();
        let mut cut: Vec<String> = Vec::new();
        for fault in &faults {
            let node = fault.node.as_ref().map(|n| n.get_ref().clone());
            match fault.action.get_ref() {
                Action::Crash | Action::Pause | Action::Shutdown => {
                    down.insert(node.unwrap());
                }
                Action::Restart | Action::Resume => {
                    if let Some(node) = node {
                        down.remove(&node);
                    }
                }
                Action::Isolate => cut = vec![node.unwrap()],
                Action::Partition => {
                    let groups = fault.groups.as_ref().unwrap().get_ref();
                    cut = groups[0].iter().map(|n| n.get_ref().clone()).collect();
                }
                Action::Heal => cut.clear(),
                _ => {}
            }
            let mut out: std::collections::BTreeSet<String> = down.clone();
            out.extend(cut.iter().cloned());
            assert!(
                out.len() <= 2,
                "seed {seed} at {:?}: {out:?} down at once",
                fault.at
            );
            assert!(fault.at.0 <= std::time::Duration::from_secs(40));
        }
        assert!(
            down.is_empty() && cut.is_empty(),
            "seed {seed}: left broken: {down:?} {cut:?}"
        );
    }
}

#[test]
fn swarm_testing_varies_the_fault_mix_per_seed() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/fuzz/chat-safe.toml"),
    )
    .unwrap()
    .replace("until = \"40s\"", "until = \"40s\"\nswarm = true");
    let scenario = parse("swarm.toml", &text).unwrap();
    let mixes: std::collections::BTreeSet<Vec<String>> = (1..20)
        .map(|seed| {
            let mut kinds: Vec<String> = sim::nemesis::schedule(&scenario, seed)
                .iter()
                .map(|f| f.action.get_ref().to_string())
                .collect();
            kinds.sort();
            kinds.dedup();
            kinds
        })
        .collect();
    assert!(
        mixes.len() >= 5,
        "only {} distinct fault mixes in 19 seeds",
        mixes.len()
    );
}

#[test]
fn seed_ranges_and_shards_split_without_overlap() {
    assert_eq!(SeedPlan::parse_range("1..5"), Ok((1, 5)));
    assert_eq!(SeedPlan::parse_range("1..=5"), Ok((1, 6)));
    assert!(SeedPlan::parse_range("5..1").is_err());
    assert!(SeedPlan::parse_shard("4/4").is_err());
    let all: Vec<u64> = (0..4)
        .flat_map(|k| {
            SeedPlan {
                start: 1,
                end: 101,
                shard: Some((k, 4)),
            }
            .seeds()
        })
        .collect();
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(sorted, (1..101).collect::<Vec<_>>());
}

#[test]
fn the_scale_out_examples_parse() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for file in [
        ".github/workflows/fuzz.yml",
        ".ci/k8s/fuzz-indexed-job.yaml",
    ] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let docs =
            yaml_rust2::YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(docs.len(), 1, "{file}");
        assert!(text.contains("--shard"), "{file} must split seeds by shard");
    }
}
