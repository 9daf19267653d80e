//! The driver: validate, split into independent parts, search each (in parallel when it
//! pays), stop early on the first violation, explain it, and say
//! "unknown" rather than guess when the budget runs out.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::evidence::{explain, Evidence};
use super::history::Operation;
use super::model::{Model, Partition};
use super::search::{search, Control, Found, Interrupt, Op};

/// What the checker may spend. The default is unlimited, with as many threads as cores.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Budget {
    /// Most search steps per independent part (one step: one event visited). Counted per
    /// part so that the verdict does not depend on thread timing.
    pub max_steps: Option<u64>,
    /// Time after which every search gives up. It is read with `Instant::now()`, which
    /// inside a running madsim simulation is simulated time and does not move while the
    /// checker computes: there, rely on `max_steps` (or check after the simulation).
    pub deadline: Option<Instant>,
    /// Threads for checking parts in parallel; 0 means one per core (always 1 inside a
    /// running madsim simulation, which refuses system threads). With 1, parts are
    /// checked in order and the evidence is the same on every run; with more, the verdict
    /// is still the same but, if several keys fail, which one is reported may vary.
    pub threads: usize,
}

impl Budget {
    /// No limit on steps or time; one thread per core.
    pub fn unlimited() -> Budget {
        Budget::default()
    }

    /// At most `max_steps` search steps per part.
    pub fn steps(max_steps: u64) -> Budget {
        Budget {
            max_steps: Some(max_steps),
            ..Budget::default()
        }
    }

    /// At most `timeout` of wall-clock time from now.
    pub fn timeout(timeout: Duration) -> Budget {
        Budget {
            deadline: Instant::now().checked_add(timeout),
            ..Budget::default()
        }
    }

    /// The same budget with `threads` threads (0: one per core).
    pub fn with_threads(self, threads: usize) -> Budget {
        Budget { threads, ..self }
    }
}

/// The verdict on a history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Verdict {
    /// Some order of the operations respects real time and the model.
    Linearizable,
    /// No such order exists; the evidence shows where it breaks.
    NotLinearizable(Box<Evidence>),
    /// The checker could not decide (budget ran out, or the model cannot check the
    /// operations); `reason` says which. Never a guess.
    Unknown {
        /// Why no verdict.
        reason: String,
    },
}

impl Verdict {
    /// Whether this is `NotLinearizable`.
    pub fn is_violation(&self) -> bool {
        matches!(self, Verdict::NotLinearizable(_))
    }
}

/// What the check cost.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Search steps, summed over parts (with several threads and an early stop, this sum
    /// depends on timing).
    pub steps: u64,
    /// Independent parts the history was split into.
    pub partitions: usize,
    /// Operations dropped before the search because they are always legal and change
    /// nothing (reads of unknown output).
    pub dropped: usize,
}

/// The result of [`check`]: a verdict and what it cost.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// Linearizable, not, or unknown.
    pub verdict: Verdict,
    /// Steps taken and parts checked.
    pub stats: Stats,
}

/// Parts smaller than this in total are checked on one thread: starting threads would cost
/// more than it saves.
const PARALLEL_MIN_OPERATIONS: usize = 200;

/// Whether system threads may be started. Inside a running madsim simulation they may not
/// (madsim refuses them and std then panics), so there the check runs on the calling
/// thread. Outside one (the checker normally runs after the simulation), they may.
fn threads_allowed() -> bool {
    #[cfg(madsim)]
    {
        madsim::runtime::Handle::try_current().is_err()
    }
    #[cfg(not(madsim))]
    {
        true
    }
}

enum PartResult {
    Linearizable(Vec<usize>),
    Violation(Evidence),
    OutOfBudget(String),
    Stopped,
}

/// Checks `history` against `model` within `budget`.
///
/// The model splits the history into independent parts (see [`Model::partition`]); each is
/// searched alone, on several threads when there are several parts and enough operations,
/// and the first violation found stops the others. A violation comes with [`Evidence`]:
/// the return that no valid order gets past, and why.
pub fn check<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    budget: Budget,
) -> Outcome {
    check_parts(model, history, budget).0
}

/// What [`check_parts`] found about one independent part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartFound {
    /// The part's key, if any.
    pub key: Option<String>,
    /// Its operations (indices into the history), including those dropped as no-ops.
    pub operations: Vec<usize>,
    /// `Some(true)` linearizable, `Some(false)` not, `None` not decided.
    pub linearizable: Option<bool>,
    /// A valid order (history indices): all of it when linearizable (operations that never
    /// returned and never took effect are left out), the longest prefix found when not.
    pub order: Vec<usize>,
}

/// [`check`], also saying what was found part by part (for pictures of the search).
pub fn check_parts<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    budget: Budget,
) -> (Outcome, Vec<PartFound>) {
    let mut stats = Stats::default();
    for (index, operation) in history.iter().enumerate() {
        if let Err(message) = model.validate(&operation.input) {
            let verdict = Verdict::Unknown {
                reason: format!("operation #{index} cannot be checked: {message}"),
            };
            return (Outcome { verdict, stats }, Vec::new());
        }
        if operation.ret.is_some_and(|ret| ret < operation.call) {
            let verdict = Verdict::Unknown {
                reason: format!("operation #{index} returns before it is called"),
            };
            return (Outcome { verdict, stats }, Vec::new());
        }
    }
    let mut parts = model.partition(history);
    let mut found: Vec<PartFound> = parts
        .iter()
        .map(|part| PartFound {
            key: part.key.clone(),
            operations: part.operations.clone(),
            linearizable: None,
            order: Vec::new(),
        })
        .collect();
    for part in &mut parts {
        let before = part.operations.len();
        part.operations.retain(|&index| {
            let operation = &history[index];
            !model.is_noop(&operation.input, operation.output.as_ref())
        });
        stats.dropped += before - part.operations.len();
    }
    stats.partitions = parts.len();
    let threads = match budget.threads {
        0 => std::thread::available_parallelism().map_or(1, |count| count.get()),
        count => count,
    };
    let total: usize = parts.iter().map(|part| part.operations.len()).sum();
    let threads = if parts.len() > 1 && total >= PARALLEL_MIN_OPERATIONS && threads_allowed() {
        threads.min(parts.len())
    } else {
        1
    };
    let results = run_parts(model, history, &parts, &budget, threads);
    let mut verdict = Verdict::Linearizable;
    for ((part, (result, steps)), found) in parts.iter().zip(results).zip(&mut found) {
        stats.steps += steps;
        match result {
            PartResult::Linearizable(order) => {
                found.linearizable = Some(true);
                found.order = order;
            }
            PartResult::Violation(evidence) => {
                found.linearizable = Some(false);
                found.order = evidence.linearized.iter().map(|op| op.index).collect();
                if !verdict.is_violation() {
                    verdict = Verdict::NotLinearizable(Box::new(evidence));
                }
            }
            PartResult::OutOfBudget(reason) => {
                if verdict == Verdict::Linearizable {
                    let reason = match &part.key {
                        Some(key) => format!("key {key:?}: {reason}"),
                        None => reason,
                    };
                    verdict = Verdict::Unknown { reason };
                }
            }
            PartResult::Stopped => {}
        }
    }
    (Outcome { verdict, stats }, found)
}

fn run_parts<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    parts: &[Partition],
    budget: &Budget,
    threads: usize,
) -> Vec<(PartResult, u64)> {
    let stop = AtomicBool::new(false);
    if threads <= 1 {
        let mut results = Vec::with_capacity(parts.len());
        for part in parts {
            let result = if stop.load(Ordering::Relaxed) {
                (PartResult::Stopped, 0)
            } else {
                check_part(model, history, part, budget, &stop)
            };
            results.push(result);
        }
        return results;
    }
    // Biggest parts first, so that no thread is left with a big one at the end.
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by_key(|&index| std::cmp::Reverse(parts[index].operations.len()));
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<(PartResult, u64)>>> =
        Mutex::new((0..parts.len()).map(|_| None).collect());
    let work = || loop {
        let position = next.fetch_add(1, Ordering::Relaxed);
        let Some(&index) = order.get(position) else {
            break;
        };
        let result = if stop.load(Ordering::Relaxed) {
            (PartResult::Stopped, 0)
        } else {
            check_part(model, history, &parts[index], budget, &stop)
        };
        if let Ok(mut results) = results.lock() {
            results[index] = Some(result);
        }
    };
    std::thread::scope(|scope| {
        // The calling thread is one of the workers. A thread that cannot be started (inside
        // a madsim simulation, system threads are refused) is simply one worker fewer.
        for _ in 1..threads {
            let _ = std::thread::Builder::new().spawn_scoped(scope, work);
        }
        work();
    });
    results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .map(|result| result.unwrap_or((PartResult::Stopped, 0)))
        .collect()
}

fn check_part<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    part: &Partition,
    budget: &Budget,
    stop: &AtomicBool,
) -> (PartResult, u64) {
    let ops: Vec<Op<'_, M::Input, M::Output>> = part
        .operations
        .iter()
        .map(|&index| Op::of(history, index))
        .collect();
    let mut control = Control {
        steps: 0,
        max_steps: budget.max_steps,
        deadline: budget.deadline,
        stop: Some(stop),
    };
    let result = match search(model, &ops, &mut control) {
        Ok(Found::Linearizable { order }) => {
            PartResult::Linearizable(order.into_iter().map(|op| ops[op].index).collect())
        }
        Err(Interrupt::Stopped) => PartResult::Stopped,
        Err(Interrupt::Budget(reason)) => PartResult::OutOfBudget(reason),
        Ok(Found::Violation { order, blocked }) => {
            stop.store(true, Ordering::Relaxed);
            PartResult::Violation(explain(
                model,
                history,
                part.key.clone(),
                &ops,
                &order,
                blocked,
            ))
        }
    };
    (result, control.steps)
}

#[cfg(test)]
mod tests {
    use super::super::history::{Input, JepsenOperation, Output, Value};
    use super::super::{Kv, KvWholeMap, Register};
    use super::*;

    /// A tiny deterministic random generator (xorshift), enough for test data.
    struct Random(u64);

    impl Random {
        fn below(&mut self, bound: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % bound
        }
    }

    /// Linearizability by brute force: try every order that respects real time.
    fn brute_force<M: Model>(model: &M, history: &[Operation<M::Input, M::Output>]) -> bool {
        fn place<M: Model>(
            model: &M,
            history: &[Operation<M::Input, M::Output>],
            placed: &mut Vec<bool>,
            state: &M::State,
            left: usize,
        ) -> bool {
            if left == 0 {
                return true;
            }
            for index in 0..history.len() {
                if placed[index] {
                    continue;
                }
                let op = &history[index];
                // Every operation not placed yet must not have returned before this call.
                let respects_real_time = (0..history.len()).all(|other| {
                    placed[other] || other == index || history[other].ret_or_infinity() >= op.call
                });
                if !respects_real_time {
                    continue;
                }
                if let Some(next) = model.step(state, &op.input, op.output.as_ref()) {
                    placed[index] = true;
                    if place(model, history, placed, &next, left - 1) {
                        return true;
                    }
                    placed[index] = false;
                }
            }
            false
        }
        let mut placed = vec![false; history.len()];
        place(model, history, &mut placed, &model.init(), history.len())
    }

    fn random_value(random: &mut Random) -> Value {
        match random.below(4) {
            0 => Value::Nil,
            value => Value::Int(value as i64),
        }
    }

    fn random_register_history(random: &mut Random, size: usize) -> Vec<JepsenOperation> {
        (0..size)
            .map(|client| {
                let call = random.below(16);
                let open = random.below(6) == 0;
                let ret = (!open).then(|| call + random.below(6));
                let (input, output) = match random.below(3) {
                    0 => (
                        Input::Read { key: None },
                        Some(Output::Value(random_value(random))),
                    ),
                    1 => (
                        Input::Write {
                            key: None,
                            value: random_value(random),
                        },
                        Some(Output::Done),
                    ),
                    _ => (
                        Input::Cas {
                            key: None,
                            expected: random_value(random),
                            new: random_value(random),
                        },
                        Some(Output::Cas(random.below(2) == 0)),
                    ),
                };
                let output = if open || random.below(8) == 0 {
                    None
                } else {
                    output
                };
                Operation {
                    client: client as u64,
                    input,
                    output,
                    call,
                    ret,
                }
            })
            .collect()
    }

    #[test]
    fn search_agrees_with_brute_force_on_random_register_histories() {
        let mut random = Random(0x1234_5678_9abc_def1);
        let (mut linearizable, mut not) = (0, 0);
        for round in 0..3000 {
            let history = random_register_history(&mut random, 1 + round % 7);
            let expected = brute_force(&Register::default(), &history);
            let verdict = check(&Register::default(), &history, Budget::unlimited()).verdict;
            assert_eq!(
                verdict == Verdict::Linearizable,
                expected,
                "round {round}: {history:#?}\n{verdict:?}"
            );
            if expected {
                linearizable += 1;
            } else {
                not += 1;
                assert!(verdict.is_violation());
            }
        }
        // Both answers must be common, or the comparison proves little.
        assert!(linearizable > 500 && not > 500, "{linearizable} / {not}");
    }

    #[test]
    fn per_key_and_whole_map_agree_with_brute_force_on_random_kv_histories() {
        let mut random = Random(0x0fed_cba9_8765_4321);
        let (mut linearizable, mut not) = (0, 0);
        for round in 0..2000 {
            let history: Vec<JepsenOperation> = (0..1 + round % 6)
                .map(|client| {
                    let key: super::super::Key = ["a", "b"][random.below(2) as usize].into();
                    let call = random.below(12);
                    let open = random.below(6) == 0;
                    let ret = (!open).then(|| call + random.below(5));
                    let letter: std::sync::Arc<str> = ["x", "y"][random.below(2) as usize].into();
                    let (input, output) = match random.below(3) {
                        0 => {
                            let seen = ["", "x", "y", "xy", "yx"][random.below(5) as usize];
                            (Input::Get { key }, Some(Output::Value(Value::str(seen))))
                        }
                        1 => (Input::Put { key, value: letter }, Some(Output::Done)),
                        _ => (Input::Append { key, value: letter }, Some(Output::Done)),
                    };
                    Operation {
                        client: client as u64,
                        input,
                        output: if open { None } else { output },
                        call,
                        ret,
                    }
                })
                .collect();
            let expected = brute_force(&KvWholeMap, &history);
            for verdict in [
                check(&Kv, &history, Budget::unlimited()).verdict,
                check(&KvWholeMap, &history, Budget::unlimited()).verdict,
            ] {
                assert_eq!(
                    verdict == Verdict::Linearizable,
                    expected,
                    "round {round}: {history:#?}\n{verdict:?}"
                );
            }
            if expected {
                linearizable += 1;
            } else {
                not += 1;
            }
        }
        assert!(linearizable > 300 && not > 300, "{linearizable} / {not}");
    }

    #[test]
    fn exhausted_step_budget_gives_unknown_never_a_guess() {
        let mut random = Random(7);
        // A linearizable history with many concurrent writes needs many steps.
        let history: Vec<JepsenOperation> = (0..40)
            .map(|client| Operation {
                client,
                input: Input::Write {
                    key: None,
                    value: Value::Int(random.below(1000) as i64),
                },
                output: None,
                call: 0,
                ret: None,
            })
            .collect();
        let outcome = check(&Register::default(), &history, Budget::steps(50));
        match outcome.verdict {
            Verdict::Unknown { reason } => assert!(reason.contains("step budget"), "{reason}"),
            other => panic!("expected unknown, got {other:?}"),
        }
        assert!(outcome.stats.steps <= 51);
        let generous = check(&Register::default(), &history, Budget::steps(1_000_000));
        assert_eq!(generous.verdict, Verdict::Linearizable);
    }

    #[test]
    fn passed_deadline_gives_unknown() {
        // 14 concurrent open writes of distinct values, then a read of a value nobody
        // wrote: refuting it means exploring every subset of the writes (2^14 states).
        let mut history: Vec<JepsenOperation> = (0..14)
            .map(|client| Operation {
                client,
                input: Input::Write {
                    key: None,
                    value: Value::Int(client as i64),
                },
                output: None,
                call: 0,
                ret: None,
            })
            .collect();
        history.push(Operation {
            client: 99,
            input: Input::Read { key: None },
            output: Some(Output::Value(Value::Int(-1))),
            call: 1,
            ret: Some(2),
        });
        let past = Budget {
            deadline: Some(Instant::now()),
            ..Budget::default()
        };
        match check(&Register::default(), &history, past).verdict {
            Verdict::Unknown { reason } => assert!(reason.contains("time budget"), "{reason}"),
            other => panic!("expected unknown, got {other:?}"),
        }
        assert!(check(&Register::default(), &history, Budget::unlimited())
            .verdict
            .is_violation());
    }

    /// 30 keys with 10 sequential writes and reads each; key "k17" has a stale read.
    fn thirty_keys_one_stale_read() -> Vec<JepsenOperation> {
        let mut history = Vec::new();
        for key_number in 0..30u64 {
            let key: super::super::Key = format!("k{key_number}").into();
            for step in 0..10u64 {
                let time = step * 10;
                history.push(Operation {
                    client: key_number,
                    input: Input::Write {
                        key: Some(key.clone()),
                        value: Value::Int(step as i64),
                    },
                    output: Some(Output::Done),
                    call: time,
                    ret: Some(time + 2),
                });
                let seen = if key_number == 17 && step == 6 {
                    5
                } else {
                    step
                };
                history.push(Operation {
                    client: 100 + key_number,
                    input: Input::Read {
                        key: Some(key.clone()),
                    },
                    output: Some(Output::Value(Value::Int(seen as i64))),
                    call: time + 4,
                    ret: Some(time + 6),
                });
            }
        }
        history
    }

    #[test]
    fn parallel_and_sequential_checks_agree_and_early_exit_still_finds_the_violation() {
        let history = thirty_keys_one_stale_read();
        for threads in [1, 2, 4] {
            let outcome = check(
                &Register::default(),
                &history,
                Budget::unlimited().with_threads(threads),
            );
            assert_eq!(outcome.stats.partitions, 30);
            match outcome.verdict {
                Verdict::NotLinearizable(evidence) => {
                    assert_eq!(evidence.key.as_deref(), Some("k17"));
                    assert_eq!(evidence.blocked.operation, "[\"k17\"] read → 5");
                }
                other => panic!("{threads} threads: {other:?}"),
            }
        }
    }

    #[cfg(madsim)]
    #[test]
    fn inside_a_simulation_where_threads_are_refused_the_check_runs_on_the_calling_thread() {
        let history = thirty_keys_one_stale_read();
        let runtime = madsim::runtime::Runtime::new();
        let verdict = runtime.block_on(async move {
            check(
                &Register::default(),
                &history,
                Budget::unlimited().with_threads(4),
            )
            .verdict
        });
        assert!(verdict.is_violation(), "{verdict:?}");
    }
}
