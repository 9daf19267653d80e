//! The `sim` command line: exit codes 0 / 1 / 2, JSON lines, reproduce commands,
//! determinism across seeds.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sim"))
        .args(args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .output()
        .expect("the sim binary runs")
}

fn temp_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sim-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The plain-bully isolation scenario, which breaks `single_leader`, rewritten to expect
/// a pass: a scenario whose runs fail their verdict.
fn plain_bully_expecting_pass(name: &str) -> PathBuf {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../scenarios/election/leader-isolated-plain.toml"),
    )
    .unwrap()
    .replace(
        "expect = { violation = [\"single_leader\"] }",
        "expect = \"pass\"",
    );
    temp_file(name, &text)
}

#[test]
fn run_json_reports_contract_fields_and_exits_zero_on_pass() {
    let out = sim(&["run", "scenarios/election/steady.toml", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8(out.stdout).unwrap();
    let report: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    for field in [
        "scenario",
        "seed",
        "trace_hash",
        "sim_ms",
        "wall_ms",
        "checks",
        "expect",
        "verdict",
    ] {
        assert!(report.get(field).is_some(), "missing {field} in {report}");
    }
    assert_eq!(report["verdict"], "pass");
    assert_eq!(report["checks"][0]["kind"], "election_safety");
    assert!(report["checks"][0]["passed"].as_bool().unwrap());
}

#[test]
fn unexpected_violation_exits_one_and_prints_the_reproduce_command() {
    let path = plain_bully_expecting_pass("expects-pass.toml");
    let out = sim(&["run", path.to_str().unwrap(), "--seed", "3"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("FAIL single_leader"), "{text}");
    assert!(
        text.contains(&format!(
            "reproduce: cargo run -p sim -- run {} --seed 3",
            path.display()
        )),
        "{text}"
    );
}

#[test]
fn scenario_error_exits_two_with_position() {
    let path = temp_file(
        "broken.toml",
        "name = \"x\"\nsystem = \"election\"\nnodes = \"three\"\n",
    );
    let out = sim(&["validate", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("broken.toml:3:9: key `nodes`"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn unknown_subcommand_is_a_usage_error() {
    assert_eq!(sim(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn same_seed_same_hash_different_seed_different_hash() {
    let hash = |seed: &str| {
        let out = sim(&[
            "run",
            "scenarios/election/leader-crash.toml",
            "--json",
            "--seed",
            seed,
        ]);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        report["trace_hash"].as_str().unwrap().to_string()
    };
    assert_eq!(hash("5"), hash("5"));
    assert_ne!(hash("5"), hash("6"));
}

#[test]
fn check_determinism_passes_and_trace_and_timeline_are_written() {
    let out = sim(&[
        "check-determinism",
        "scenarios/election/paused-leader.toml",
        "--runs",
        "3",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let trace = temp_file("trace.jsonl", "");
    let timeline = temp_file("timeline.txt", "");
    let out = sim(&[
        "run",
        "scenarios/election/leader-crash.toml",
        "--trace",
        trace.to_str().unwrap(),
        "--timeline",
        timeline.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let lines = std::fs::read_to_string(&trace).unwrap();
    let first: serde_json::Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    assert!(first.get("t").is_some() && first.get("node").is_some());
    assert!(lines.contains("\"type\":\"fault\""));
    let picture = std::fs::read_to_string(&timeline).unwrap();
    assert!(
        picture.contains("n5") && picture.contains('L') && picture.contains('X'),
        "{picture}"
    );
}

fn corpus(file: &str) -> String {
    let root =
        std::env::var("PORCUPINE_CORPUS").unwrap_or_else(|_| "../shared/corpora/porcupine".into());
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(&root)
        .join(file);
    assert!(
        path.exists(),
        "the Porcupine corpus is missing: {}",
        path.display()
    );
    path.display().to_string()
}

#[test]
fn check_history_exit_codes_follow_the_verdict() {
    assert_eq!(
        sim(&["check-history", &corpus("jepsen/etcd_002.log")])
            .status
            .code(),
        Some(0)
    );
    let out = sim(&["check-history", &corpus("jepsen/etcd_000.log")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("NOT linearizable"));
    let out = sim(&["check-history", &corpus("kv/c10-bad.txt"), "--model", "kv"]);
    assert_eq!(out.status.code(), Some(1));
    let out = sim(&[
        "check-history",
        &corpus("jepsen/etcd_002.log"),
        "--max-steps",
        "10",
    ]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn check_history_bad_input_exits_two_with_line_and_column() {
    let path = temp_file(
        "bad.edn",
        "{:process 0, :type :invoke, :f :read, :value nil}\n{:process 0, :type :ok :f :read, :value 3\n",
    );
    let out = sim(&["check-history", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.edn:2:"), "{err}");
    let out = sim(&[
        "check-history",
        &corpus("kv/c01-ok.txt"),
        "--model",
        "register",
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a kv history is not a register history"
    );
}

#[test]
fn a_history_written_by_run_is_read_by_check_history() {
    let path = temp_file("chat-history.edn", "");
    let out = sim(&[
        "run",
        "scenarios/chat/normal.toml",
        "--history",
        path.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.lines().count() >= 280,
        "{} lines",
        text.lines().count()
    );
    assert!(
        text.starts_with("{:process "),
        "{}",
        &text[..80.min(text.len())]
    );
    let out = sim(&["check-history", path.to_str().unwrap(), "--model", "kv"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn valid_but_unsupported_scenarios_validate_and_run_exits_two() {
    let text = "name = \"x\"\nsystem = \"kv\"\nnodes = 3\nduration = \"10s\"\n[[fault]]\nat = \"1s\"\naction = \"latency\"\nrange = [\"1ms\", \"5ms\"]\nfrom = \"n1\"\nto = \"n2\"\n[[check]]\nkind = \"converged\"\n";
    let path = temp_file("per-link-latency.toml", text);
    assert_eq!(
        sim(&["validate", path.to_str().unwrap()]).status.code(),
        Some(0)
    );
    let out = sim(&["run", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("per-link latency"));
}

#[test]
fn a_dead_cluster_exits_one_and_says_why_in_plain_words() {
    let path = "sim/tests/fixtures/dead-chat.toml";
    let out = sim(&["run", path]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("outcome: vacuous"), "{stdout}");
    assert!(
        stdout.contains("why: check total_order had nothing to judge"),
        "{stdout}"
    );
    let json = sim(&["run", path, "--json"]);
    let report: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&json.stdout).trim()).unwrap();
    assert_eq!(report["checks"][0]["status"], "vacuous");
    assert_eq!(report["verdict"], "fail");
}

/// Failing seed → shrunk scenario → picture: `fuzz --artifacts` writes, per failing seed,
/// a shrunk scenario that still fails, its trace and its reports; `shrink --html` writes
/// the shrunk run's page beside the file.
#[test]
fn fuzz_artifacts_hand_back_the_shrunk_scenario_its_trace_and_its_pictures() {
    let path = plain_bully_expecting_pass("fuzz-artifacts.toml");
    let dir = path.with_file_name("artifacts");
    let _ = std::fs::remove_dir_all(&dir);
    let out = sim(&[
        "fuzz",
        path.to_str().unwrap(),
        "--seeds",
        "1..3",
        "--jobs",
        "1",
        "--artifacts",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "the seeds fail their expect");
    let stderr = String::from_utf8_lossy(&out.stderr);
    for seed in [1, 2] {
        let seed_dir = dir.join(format!("election-leader-isolated-plain-seed-{seed}"));
        assert!(stderr.contains(&seed_dir.display().to_string()), "{stderr}");
        let shrunk = seed_dir.join("shrunk.toml");
        let replay = sim(&["run", shrunk.to_str().unwrap(), "--seed", &seed.to_string()]);
        assert_eq!(
            replay.status.code(),
            Some(1),
            "the shrunk scenario still fails"
        );
        let page = std::fs::read_to_string(seed_dir.join("report.html")).expect("page");
        assert!(
            page.contains("single_leader"),
            "the page shows the failed check"
        );
        let report = std::fs::read_to_string(seed_dir.join("report.txt")).expect("text");
        assert!(report.contains("FAIL single_leader"), "{report}");
        let trace = std::fs::read_to_string(seed_dir.join("trace.jsonl")).expect("trace");
        assert!(trace.lines().count() > 10);
    }
    let page = path.with_file_name("shrunk.html");
    let shrunk = path.with_file_name("shrunk.toml");
    let out = sim(&[
        "shrink",
        path.to_str().unwrap(),
        "--seed",
        "1",
        "-o",
        shrunk.to_str().unwrap(),
        "--html",
        page.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = std::fs::read_to_string(&page).expect("shrink wrote the page");
    assert!(html.contains(&format!("run {} --seed 1", shrunk.display())));
}

#[test]
fn teach_lists_the_lessons_and_runs_a_pair_into_two_pages() {
    let list = sim(&["teach"]);
    assert_eq!(list.status.code(), Some(0));
    let text = String::from_utf8_lossy(&list.stdout);
    for lesson in sim::teach::LESSONS {
        assert!(text.contains(&format!("teach {}", lesson.name)), "{text}");
    }
    let dir = temp_file("teach-marker", "").with_file_name("teach");
    std::fs::create_dir_all(&dir).unwrap();
    let out = sim(&["teach", "split-brain", "--out", dir.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let failing = std::fs::read_to_string(dir.join("split-brain.failing.html")).unwrap();
    let fixed = std::fs::read_to_string(dir.join("split-brain.fixed.html")).unwrap();
    assert!(failing.contains("total_order") && failing.contains("violation"));
    assert!(fixed.contains("teaching-split-brain-fixed"));
    let unknown = sim(&["teach", "no-such-lesson"]);
    assert_eq!(unknown.status.code(), Some(2));
}

#[test]
fn check_judges_a_runs_trace_as_the_run_did_with_the_same_exit_codes() {
    let scenario = plain_bully_expecting_pass("plain-bully-check.toml");
    let scenario = scenario.to_str().unwrap();
    let trace = temp_file("plain-bully-check.jsonl", "");
    let trace = trace.to_str().unwrap();
    let ran = sim(&["run", scenario, "--json", "--trace", trace]);
    assert_eq!(ran.status.code(), Some(1));
    let checked = sim(&["check", scenario, "--history", trace, "--json"]);
    assert_eq!(
        checked.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    let report = |out: &Output| -> serde_json::Value {
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap()
    };
    let (ran, checked) = (report(&ran), report(&checked));
    for field in ["checks", "outcome", "verdict", "trace_hash"] {
        assert_eq!(ran[field], checked[field], "{field}");
    }
    assert!(checked["reproduce"].as_str().unwrap().contains("-- check "));
    // A history that is not one: a usage error naming the line.
    let bad = temp_file("not-a-history.jsonl", "{\"t\":1,\"node\":\"n1\"}\n");
    let out = sim(&["check", scenario, "--history", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not-a-history.jsonl:1"), "{stderr}");
}
