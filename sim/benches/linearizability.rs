//! Linearizability checker speed on the Porcupine corpus, beside Porcupine's own figures
//! (Go 1.19, on this kind of machine, as given in issue 3).
//!
//! Run with `cargo bench -p sim --bench linearizability`. Prints, per history, the median
//! wall time of several checks (loading excluded), Porcupine's figure and ours/Porcupine.
//! The corpus is found like the corpus test finds it: `$PORCUPINE_CORPUS`, else
//! `../shared/corpora/porcupine` beside the workspace.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use sim::linearizability::{
    check, load, Budget, Input, JepsenOperation, Kv, KvWholeMap, Model, Operation, Output,
    Register, Value, Verdict,
};

fn corpus_dir() -> PathBuf {
    match std::env::var_os("PORCUPINE_CORPUS") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpora/porcupine"),
    }
}

fn load_history(dir: &Path, file: &str) -> Result<Vec<JepsenOperation>, String> {
    load(&dir.join(file))
        .map(|history| history.operations)
        .map_err(|error| error.to_string())
}

/// Median wall time of `runs` runs of `work`, which returns whether it got the expected
/// verdict (a wrong verdict makes the figure meaningless, so it is reported).
fn median(runs: usize, mut work: impl FnMut() -> bool) -> (Duration, bool) {
    let mut times = Vec::with_capacity(runs);
    let mut all_right = true;
    for _ in 0..runs {
        let started = Instant::now();
        all_right &= work();
        times.push(started.elapsed());
    }
    times.sort();
    (times[times.len() / 2], all_right)
}

fn verdict_is<M>(model: &M, history: &[JepsenOperation], linearizable: bool) -> bool
where
    M: Model<Input = Input, Output = Output>,
{
    match check(model, history, Budget::unlimited()).verdict {
        Verdict::Linearizable => linearizable,
        Verdict::NotLinearizable(_) => !linearizable,
        Verdict::Unknown { .. } => false,
    }
}

struct Row {
    name: &'static str,
    ours: Duration,
    porcupine: Duration,
    right: bool,
}

/// A linearizable register history of `per_process * processes` operations, made by
/// running a real register: each process calls operations back to back (random lengths,
/// so up to `processes` overlap), each takes effect at a random instant inside its call,
/// and outputs are what the register said at that instant. About 1 in 100 operations
/// times out (`:info`, open to the end), half of those having taken effect.
fn generated_register_history(processes: u64, per_process: u64) -> Vec<JepsenOperation> {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut random = move |bound: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % bound
    };
    // (effect time, index, applied) and the operations.
    let mut effects = Vec::new();
    let mut operations = Vec::new();
    for process in 0..processes {
        let mut time = 0;
        for _ in 0..per_process {
            let call = time + random(3);
            let length = 1 + random(20);
            let input = match random(10) {
                0..=4 => Input::Read { key: None },
                5..=7 => Input::Write {
                    key: None,
                    value: Value::Int(random(5) as i64),
                },
                _ => Input::Cas {
                    key: None,
                    expected: Value::Int(random(5) as i64),
                    new: Value::Int(random(5) as i64),
                },
            };
            let timed_out = random(100) == 0;
            let applied = !timed_out || random(2) == 0;
            effects.push((call + random(length), operations.len(), applied));
            operations.push(Operation {
                client: process,
                input,
                output: None,
                call,
                ret: (!timed_out).then_some(call + length),
            });
            time = call + length;
        }
    }
    effects.sort_unstable();
    let mut value = Value::Nil;
    for (_, index, applied) in effects {
        let operation = &mut operations[index];
        if !applied {
            continue;
        }
        let output = match &operation.input {
            Input::Read { .. } => Output::Value(value.clone()),
            Input::Write { value: new, .. } => {
                value = new.clone();
                Output::Done
            }
            Input::Cas { expected, new, .. } => {
                let swapped = *expected == value;
                if swapped {
                    value = new.clone();
                }
                Output::Cas(swapped)
            }
            _ => Output::Done,
        };
        if operation.ret.is_some() {
            operation.output = Some(output);
        }
    }
    operations.sort_by_key(|operation| operation.call);
    operations
}

fn run(dir: &Path) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    let register = Register::default();
    for (name, file, linearizable, porcupine_ms, runs) in [
        ("etcd_000", "jepsen/etcd_000.log", false, 0.27, 21),
        ("etcd_040", "jepsen/etcd_040.log", false, 8.3, 21),
        ("etcd_099", "jepsen/etcd_099.log", false, 43.0, 21),
    ] {
        let history = load_history(dir, file)?;
        let (ours, right) = median(runs, || verdict_is(&register, &history, linearizable));
        rows.push(Row {
            name,
            ours,
            porcupine: Duration::from_secs_f64(porcupine_ms / 1000.0),
            right,
        });
    }

    // Expected verdicts from the corpus README's table ("| `jepsen/etcd_000.log` | model |
    // NOT linearizable | ..."); the empty etcd_095 has none and is skipped.
    let readme = std::fs::read_to_string(dir.join("README.md")).map_err(|e| e.to_string())?;
    let mut corpus = Vec::new();
    for line in readme.lines().filter(|line| line.starts_with("| `jepsen/")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let linearizable = match cells.get(3) {
            Some(&"linearizable") => true,
            Some(&"NOT linearizable") => false,
            _ => continue,
        };
        corpus.push((load_history(dir, cells[1].trim_matches('`'))?, linearizable));
    }
    if corpus.len() != 102 {
        return Err(format!(
            "expected 102 etcd verdicts in the README, found {}",
            corpus.len()
        ));
    }
    let (ours, right) = median(7, || {
        corpus
            .iter()
            .all(|(history, linearizable)| verdict_is(&register, history, *linearizable))
    });
    rows.push(Row {
        name: "whole etcd corpus (102 files)",
        ours,
        porcupine: Duration::from_millis(400),
        right,
    });

    for (name, file, linearizable, porcupine_ms, runs) in [
        ("kv c50-ok (per key)", "kv/c50-ok.txt", true, 170.0, 11),
        ("kv c50-bad (per key)", "kv/c50-bad.txt", false, 22.0, 11),
    ] {
        let history = load_history(dir, file)?;
        let (ours, right) = median(runs, || verdict_is(&Kv, &history, linearizable));
        rows.push(Row {
            name,
            ours,
            porcupine: Duration::from_secs_f64(porcupine_ms / 1000.0),
            right,
        });
    }

    let history = load_history(dir, "kv/c10-ok.txt")?;
    let (ours, right) = median(5, || verdict_is(&KvWholeMap, &history, true));
    rows.push(Row {
        name: "kv c10-ok (one whole map)",
        ours,
        porcupine: Duration::from_millis(1500),
        right,
    });

    // Issue 15: 10,000 operations, 10 processes, one register, in under a second.
    let history = generated_register_history(10, 1000);
    let (ours, right) = median(5, || verdict_is(&register, &history, true));
    rows.push(Row {
        name: "register 10k ops, 10 processes",
        ours,
        porcupine: Duration::from_secs(1),
        right,
    });
    Ok(rows)
}

fn main() -> ExitCode {
    let dir = corpus_dir();
    if !dir.join("README.md").is_file() {
        eprintln!(
            "the Porcupine corpus is missing: looked in {} (set PORCUPINE_CORPUS)",
            dir.display()
        );
        return ExitCode::FAILURE;
    }
    let rows = match run(&dir) {
        Ok(rows) => rows,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    let threads = std::thread::available_parallelism().map_or(1, |count| count.get());
    println!("linearizability checker vs Porcupine (median wall time, {threads} threads)");
    println!("(the last row's reference is the issue-15 bound of 1 s, not a Porcupine figure)");
    println!(
        "{:<32} {:>12} {:>12} {:>8}",
        "history", "ours", "Porcupine", "ratio"
    );
    let mut all_right = true;
    for row in &rows {
        all_right &= row.right;
        println!(
            "{:<32} {:>9.3} ms {:>9.3} ms {:>8.3}{}",
            row.name,
            row.ours.as_secs_f64() * 1000.0,
            row.porcupine.as_secs_f64() * 1000.0,
            row.ours.as_secs_f64() / row.porcupine.as_secs_f64(),
            if row.right { "" } else { "  WRONG VERDICT" }
        );
    }
    if all_right {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
