//! The linearizability checker against work nobody here wrote: every history of the
//! Porcupine corpus (`../shared/corpora/porcupine`) must get the verdict its README lists.
//!
//! The expected verdicts are read from the README's markdown tables at test time, so they
//! are not retyped here. The corpus is found through `$PORCUPINE_CORPUS`, else next to the
//! workspace; if it is missing these tests fail and say where they looked.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sim::linearizability::{
    check, edn_string, load, parse_history, Budget, Kv, KvWholeMap, LoadedHistory, Model, Register,
    Verdict,
};

fn corpus_dir() -> PathBuf {
    let dir = match std::env::var_os("PORCUPINE_CORPUS") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpora/porcupine"),
    };
    let readme = dir.join("README.md");
    assert!(
        readme.is_file(),
        "the Porcupine corpus is missing: looked for {} (set PORCUPINE_CORPUS to its folder); \
         these tests cannot pass without it",
        readme.display()
    );
    dir
}

/// One row of the README's verdict tables.
struct Expected {
    file: String,
    /// `Some(true)`: linearizable; `Some(false)`: not; `None`: no verdict (empty file).
    linearizable: Option<bool>,
}

/// Reads the verdict tables: rows like "| `jepsen/etcd_000.log` | model | NOT linearizable | ...".
fn expected_verdicts(dir: &Path) -> Vec<Expected> {
    let readme = std::fs::read_to_string(dir.join("README.md")).expect("README.md readable");
    readme
        .lines()
        .filter(|line| line.starts_with("| `jepsen/") || line.starts_with("| `kv/"))
        .map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let file = cells[1].trim_matches('`').to_string();
            let linearizable = match cells[3] {
                "linearizable" => Some(true),
                "NOT linearizable" => Some(false),
                other if other.starts_with("(no verdict") => None,
                other => panic!("unexpected verdict cell {other:?} in row {line}"),
            };
            Expected { file, linearizable }
        })
        .collect()
}

fn verdict_name(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Linearizable => "linearizable".to_string(),
        Verdict::NotLinearizable(_) => "NOT linearizable".to_string(),
        Verdict::Unknown { reason } => format!("unknown ({reason})"),
    }
}

fn load_checked<M>(path: &Path, model: &M) -> LoadedHistory
where
    M: Model<Input = sim::linearizability::Input, Output = sim::linearizability::Output>,
{
    let history = load(path).unwrap_or_else(|error| panic!("{error}"));
    history
        .validate(model)
        .unwrap_or_else(|error| panic!("{error}"));
    history
}

/// Checks every row whose file starts with `prefix`; returns the mismatches.
fn check_rows<M>(prefix: &str, model: &M) -> (usize, Vec<String>)
where
    M: Model<Input = sim::linearizability::Input, Output = sim::linearizability::Output>,
{
    let dir = corpus_dir();
    let mut checked = 0;
    let mut wrong = Vec::new();
    for row in expected_verdicts(&dir) {
        if !row.file.starts_with(prefix) {
            continue;
        }
        let Some(expected) = row.linearizable else {
            continue; // etcd_095: empty, no verdict
        };
        let history = load_checked(&dir.join(&row.file), model);
        let outcome = check(
            model,
            &history.operations,
            Budget::timeout(Duration::from_secs(120)),
        );
        let got = match outcome.verdict {
            Verdict::Linearizable => Some(true),
            Verdict::NotLinearizable(_) => Some(false),
            Verdict::Unknown { .. } => None,
        };
        if got != Some(expected) {
            wrong.push(format!(
                "{}: got {}",
                row.file,
                verdict_name(&outcome.verdict)
            ));
        }
        checked += 1;
    }
    (checked, wrong)
}

#[test]
fn readme_tables_list_102_etcd_and_6_kv_verdicts() {
    let rows = expected_verdicts(&corpus_dir());
    let etcd: Vec<&Expected> = rows
        .iter()
        .filter(|row| row.file.starts_with("jepsen/"))
        .collect();
    let count = |value| etcd.iter().filter(|row| row.linearizable == value).count();
    assert_eq!(
        (count(Some(true)), count(Some(false)), count(None)),
        (23, 79, 1)
    );
    let kv: Vec<&Expected> = rows
        .iter()
        .filter(|row| row.file.starts_with("kv/"))
        .collect();
    assert_eq!(kv.len(), 6);
    for row in kv {
        assert_eq!(
            row.linearizable,
            Some(row.file.ends_with("-ok.txt")),
            "{}",
            row.file
        );
    }
}

#[test]
fn every_etcd_history_gets_the_readme_verdict() {
    let (checked, wrong) = check_rows("jepsen/", &Register::default());
    assert_eq!(checked, 102);
    assert!(wrong.is_empty(), "wrong verdicts:\n{}", wrong.join("\n"));
}

#[test]
fn every_kv_history_gets_the_readme_verdict_checked_key_by_key() {
    let (checked, wrong) = check_rows("kv/", &Kv);
    assert_eq!(checked, 6);
    assert!(wrong.is_empty(), "wrong verdicts:\n{}", wrong.join("\n"));
}

#[test]
fn kv_c10_histories_checked_as_one_whole_map_get_the_readme_verdict() {
    let dir = corpus_dir();
    for (file, expected) in [("kv/c10-ok.txt", true), ("kv/c10-bad.txt", false)] {
        let history = load_checked(&dir.join(file), &KvWholeMap);
        let started = Instant::now();
        let outcome = check(
            &KvWholeMap,
            &history.operations,
            Budget::timeout(Duration::from_secs(120)),
        );
        let linearizable = match &outcome.verdict {
            Verdict::Linearizable => true,
            Verdict::NotLinearizable(_) => false,
            other => panic!("{file}: {other:?}"),
        };
        assert_eq!(linearizable, expected, "{file}");
        eprintln!(
            "{file} as one map: {:?}, {} steps",
            started.elapsed(),
            outcome.stats.steps
        );
    }
}

#[test]
fn empty_etcd_095_loads_as_an_empty_linearizable_history() {
    let history = load(&corpus_dir().join("jepsen/etcd_095.log")).expect("loads");
    assert!(history.operations.is_empty());
    let outcome = check(
        &Register::default(),
        &history.operations,
        Budget::unlimited(),
    );
    assert_eq!(outcome.verdict, Verdict::Linearizable);
}

#[test]
fn violations_come_with_readable_evidence() {
    let dir = corpus_dir();
    let history = load_checked(&dir.join("jepsen/etcd_000.log"), &Register::default());
    let outcome = check(
        &Register::default(),
        &history.operations,
        Budget::unlimited(),
    );
    let Verdict::NotLinearizable(evidence) = outcome.verdict else {
        panic!("etcd_000 should not be linearizable");
    };
    let text = evidence.to_string();
    eprintln!("{text}");
    let culprit = &evidence.blocked;
    assert!(
        evidence.operations < history.operations.len(),
        "only what matters: {text}"
    );
    assert!(!evidence.stuck.is_empty(), "{text}");
    assert!(
        evidence
            .stuck
            .iter()
            .any(|stuck| stuck.operation.index == culprit.index),
        "the culprit is among the operations that cannot come next: {text}"
    );
    assert!(text.starts_with("not linearizable"), "{text}");
    assert!(text.contains(&format!("#{}", culprit.index)), "{text}");

    let kv = load_checked(&dir.join("kv/c10-bad.txt"), &Kv);
    let outcome = check(&Kv, &kv.operations, Budget::unlimited().with_threads(1));
    let Verdict::NotLinearizable(evidence) = outcome.verdict else {
        panic!("c10-bad should not be linearizable");
    };
    assert!(evidence.key.is_some(), "{evidence}");
    assert!(evidence.to_string().contains("(key \""), "{evidence}");
}

#[test]
fn evidence_is_minimal_just_before_the_blocked_return_the_history_is_linearizable() {
    // For every failing etcd history: the evidence names the return no order gets past; the
    // history cut just before it (operations still running then left open, output unknown)
    // must be linearizable, and the order shown must be a valid one.
    let dir = corpus_dir();
    let model = Register::default();
    for row in expected_verdicts(&dir) {
        if !row.file.starts_with("jepsen/") || row.linearizable != Some(false) {
            continue;
        }
        let history = load_checked(&dir.join(&row.file), &model);
        let outcome = check(&model, &history.operations, Budget::unlimited());
        let Verdict::NotLinearizable(evidence) = outcome.verdict else {
            panic!("{}: expected a violation", row.file);
        };
        let culprit = evidence.blocked.clone();
        let cut = culprit.ret.expect("a culprit has returned");
        // The order shown is valid: the model accepts it, it respects real time, and it
        // places every operation that returned before the cut.
        let order: Vec<usize> = evidence
            .linearized
            .iter()
            .map(|record| record.index)
            .collect();
        let mut state = model.init();
        for (position, &index) in order.iter().enumerate() {
            let op = &history.operations[index];
            state = model
                .step(&state, &op.input, op.output.as_ref())
                .unwrap_or_else(|| panic!("{}: order refused at #{index}", row.file));
            for &later in &order[position + 1..] {
                let later = &history.operations[later];
                assert!(
                    later.ret.is_none_or(|ret| ret >= op.call),
                    "{}: real time",
                    row.file
                );
            }
        }
        for (index, op) in history.operations.iter().enumerate() {
            if op.ret.is_some_and(|ret| ret < cut) {
                assert!(
                    order.contains(&index),
                    "{}: #{index} returned before the cut",
                    row.file
                );
            }
        }
        let earlier: Vec<_> = history
            .operations
            .iter()
            .filter(|op| op.call <= cut)
            .map(|op| {
                let mut op = op.clone();
                if op.ret.is_none_or(|ret| ret >= cut) {
                    op.ret = None;
                    op.output = None;
                }
                op
            })
            .collect();
        assert_eq!(
            check(&model, &earlier, Budget::unlimited()).verdict,
            Verdict::Linearizable,
            "{}: the history just before #{} returns should be linearizable",
            row.file,
            culprit.index
        );
    }
}

#[test]
fn corpus_histories_written_as_edn_read_back_in_the_same_order_and_keep_their_verdicts() {
    let dir = corpus_dir();
    for (file, linearizable) in [
        ("jepsen/etcd_000.log", false),
        ("jepsen/etcd_002.log", true),
        ("jepsen/etcd_100.log", true),
        ("kv/c01-ok.txt", true),
        ("kv/c10-bad.txt", false),
    ] {
        let history = load(&dir.join(file)).unwrap_or_else(|error| panic!("{error}"));
        let text = edn_string(&history.operations);
        let back = parse_history(&text).unwrap_or_else(|error| panic!("{file}: {error}"));
        // Times are event positions, so they are renumbered (dropped failures and :info
        // lines take positions); what they say must not change: the same operations, each
        // returning before or after each other's call just as before.
        assert_eq!(back.operations.len(), history.operations.len(), "{file}");
        for (a, a_back) in history.operations.iter().zip(&back.operations) {
            assert_eq!(
                (a.client, &a.input, &a.output, a.ret.is_some()),
                (
                    a_back.client,
                    &a_back.input,
                    &a_back.output,
                    a_back.ret.is_some()
                ),
                "{file}"
            );
            for (b, b_back) in history.operations.iter().zip(&back.operations) {
                assert_eq!(
                    a.ret_or_infinity() < b.call,
                    a_back.ret_or_infinity() < b_back.call,
                    "{file}: {a:?} / {b:?}"
                );
            }
        }
        let verdict = if file.starts_with("kv/") {
            check(&Kv, &back.operations, Budget::unlimited()).verdict
        } else {
            check(&Register::default(), &back.operations, Budget::unlimited()).verdict
        };
        assert_eq!(verdict == Verdict::Linearizable, linearizable, "{file}");
    }
}
