//! `sim check-history`: load a history, check it against the chosen model, print the
//! verdict with its evidence, and write the HTML picture when asked. Kept here rather than
//! in `main.rs` so that the CLI is a thin list of flags.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::history::{Input, Output, Value};
use super::html::{render, Page};
use super::load::{load, parse_key_values, parse_value, InputError, LoadedHistory};
use super::model::Model;
use super::set::check_set_file;
use super::{
    check_parts, smallest_window, Budget, Kv, KvWholeMap, MultiRegister, Mutex, Register, Verdict,
};

/// The models `check-history` knows (`--model`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ModelChoice {
    /// read/write/cas registers, one per key, Porcupine's reading (`nil` read = empty).
    Register,
    /// Knossos's `cas-register`: a `nil` read says nothing, a failed cas did not happen.
    CasRegister,
    /// get/put/append strings per key.
    Kv,
    /// acquire/release.
    Mutex,
    /// `:txn` of reads and writes over several registers.
    MultiRegister,
    /// Jepsen's set / Maelstrom broadcast (not a linearizability check).
    Set,
}

/// What `check-history` was asked.
pub struct Options {
    /// The history file.
    pub file: PathBuf,
    /// The model.
    pub model: ModelChoice,
    /// kv only: the whole map as one object.
    pub whole_map: bool,
    /// EDN text of the registers' initial value (register, cas-register, multi-register;
    /// for multi-register also a map of key to value).
    pub initial_value: Option<String>,
    /// Where to write the HTML picture.
    pub html: Option<PathBuf>,
    /// Give up after this long.
    pub timeout: Duration,
    /// Give up after this many search steps per part.
    pub max_steps: Option<u64>,
}

/// Exit codes: 0 linearizable (or a valid set), 1 not, 2 bad input, 3 unknown.
pub fn check_history(options: &Options, out: &mut dyn Write) -> u8 {
    match load_and_check(options, out) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            2
        }
    }
}

fn initial(options: &Options) -> Result<Value, InputError> {
    let error_in_flag = |error: InputError| InputError {
        file: "--initial-value".to_string(),
        line: 0,
        ..error
    };
    match &options.initial_value {
        None => Ok(Value::Nil),
        Some(text) => parse_value(text).map_err(error_in_flag),
    }
}

/// Loads the history, checks it with the chosen model and prints the verdict; the exit
/// code, or the input error to report.
fn load_and_check(options: &Options, out: &mut dyn Write) -> Result<u8, InputError> {
    let file = &options.file;
    if options.initial_value.is_some()
        && !matches!(
            options.model,
            ModelChoice::Register | ModelChoice::CasRegister | ModelChoice::MultiRegister
        )
    {
        return Err(InputError::at(
            0,
            0,
            "--initial-value is for the register, cas-register and multi-register models",
        )
        .in_file("--initial-value"));
    }
    let name = file.display().to_string();
    let mut budget = Budget::timeout(options.timeout);
    budget.max_steps = options.max_steps;
    let history = match options.model {
        ModelChoice::Set => LoadedHistory::default(),
        _ => load(file)?,
    };
    match options.model {
        ModelChoice::Set => {
            let report = check_set_file(file)?;
            let _ = write!(out, "{name}: {report}");
            Ok(match report.valid() {
                Some(true) => 0,
                Some(false) => 1,
                None => 3,
            })
        }
        ModelChoice::Register => run_model(
            options,
            &Register::new(initial(options)?),
            "register",
            &history,
            budget,
            out,
        ),
        ModelChoice::CasRegister => run_model(
            options,
            &Register::knossos(initial(options)?),
            "cas-register",
            &history,
            budget,
            out,
        ),
        ModelChoice::Kv if options.whole_map => run_model(
            options,
            &KvWholeMap,
            "kv (whole map)",
            &history,
            budget,
            out,
        ),
        ModelChoice::Kv => run_model(options, &Kv, "kv", &history, budget, out),
        ModelChoice::Mutex => run_model(options, &Mutex, "mutex", &history, budget, out),
        ModelChoice::MultiRegister => {
            let mut model = MultiRegister::default();
            if let Some(text) = &options.initial_value {
                match parse_key_values(text).map_err(|error| error.in_file("--initial-value"))? {
                    Some(pairs) => model.initial_per_key = pairs.into_iter().collect(),
                    None => model.initial = initial(options)?,
                }
            }
            run_model(options, &model, "multi-register", &history, budget, out)
        }
    }
    .map_err(|error: InputError| error.in_file(&name))
}

fn run_model<M>(
    options: &Options,
    model: &M,
    model_name: &str,
    history: &LoadedHistory,
    budget: Budget,
    out: &mut dyn Write,
) -> Result<u8, InputError>
where
    M: Model<Input = Input, Output = Output>,
{
    history.validate(model)?;
    let file = options.file.display().to_string();
    let started = Instant::now();
    let (mut outcome, parts) = check_parts(model, &history.operations, budget);
    let elapsed = started.elapsed();
    let mut notes = vec![format!("{} failed operations dropped", history.dropped)];
    if history.skipped > 0 {
        notes.push(format!(
            "{} nemesis / non-client events skipped",
            history.skipped
        ));
    }
    if history.independent {
        notes.push("independent [key value] tuples split by key".to_string());
    }
    let _ = writeln!(
        out,
        "{file}: {} operations ({}), model {model_name}, {} part(s), {} search steps, {:.3} ms",
        history.operations.len(),
        notes.join(", "),
        outcome.stats.partitions,
        outcome.stats.steps,
        elapsed.as_secs_f64() * 1e3
    );
    if let Verdict::NotLinearizable(evidence) = &mut outcome.verdict {
        evidence.window = smallest_window(model, &history.operations, evidence);
    }
    let code = match &outcome.verdict {
        Verdict::Linearizable => {
            let _ = writeln!(out, "linearizable");
            0
        }
        Verdict::NotLinearizable(evidence) => {
            let blocked = evidence.blocked.index;
            let line = history.ret_lines.get(blocked).copied().flatten();
            let _ = writeln!(out, "NOT linearizable");
            if let Some(line) = line {
                let _ = writeln!(
                    out,
                    "  longest linearizable prefix found{}: everything before line {line}, \
                     where #{blocked} (invoked on line {}) returns; {} operations in the \
                     order below",
                    evidence
                        .key
                        .as_ref()
                        .map(|key| format!(" for key {key:?}"))
                        .unwrap_or_default(),
                    history.lines.get(blocked).copied().unwrap_or(0),
                    evidence.linearized.len()
                );
            }
            let _ = write!(out, "{evidence:#}");
            1
        }
        Verdict::Unknown { reason } => {
            let _ = writeln!(out, "unknown: {reason}");
            3
        }
    };
    if let Some(path) = &options.html {
        let lines: Vec<(usize, Option<usize>)> = history
            .lines
            .iter()
            .copied()
            .zip(history.ret_lines.iter().copied())
            .collect();
        let page = Page {
            title: &file,
            model: model_name,
            lines: &lines,
            times: &history.times,
        };
        let text = render(&page, &history.operations, &outcome, &parts);
        write_html(path, &text)?;
        let _ = writeln!(out, "wrote {}", path.display());
    }
    Ok(code)
}

fn write_html(path: &Path, text: &str) -> Result<(), InputError> {
    std::fs::write(path, text).map_err(|error| {
        InputError::at(0, 0, format!("cannot write: {error}")).in_file(&path.display().to_string())
    })
}
