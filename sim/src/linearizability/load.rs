//! Reading a history file: format detection, positioned errors, and the matching rules that
//! turn Jepsen's invoke / ok / fail / info events into [`Operation`]s.
//!
//! Both formats (see `jepsen_log.rs` and `edn.rs`) parse lines into [`RawEvent`]s; this file
//! pairs them, with the rules of the Porcupine corpus README:
//!
//! - a process has at most one operation open; a completion closes the open operation of
//!   the same process, and must name the same function;
//! - `:ok` gives the output (a read's value, a write's or put's completion, a CAS success);
//! - `:fail` on a read or get: completed with unknown output (always legal, no effect);
//!   `:fail` on a CAS: it definitely did not swap (the value differed from the expected one);
//!   `:fail` on a write, put or append: it did not happen, so it is dropped (Jepsen's meaning);
//! - `:info`, or no completion at all: indeterminate, open to the end of the history
//!   (`ret: None`, unknown output): it may take effect at any point after its call, or never.
//!
//! Times are the events' `:time` values when the file has them, else the event's position
//! in the file: line order is real-time order.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use super::edn::Edn;
use super::history::{Input, JepsenOperation, Key, Operation, Output, Value};
use super::model::Model;

/// Bad input: where (1-based line and column, in characters) and what was expected.
/// `line == 0` means the problem is with the file as a whole (it could not be read).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputError {
    /// The file (as given to [`load`]), or `<input>` for parsed text.
    pub file: String,
    /// 1-based line, or 0 for the whole file.
    pub line: usize,
    /// 1-based column in characters, or 0 for the whole line or file.
    pub col: usize,
    /// What was wrong, usually "expected ...".
    pub message: String,
}

impl InputError {
    pub(crate) fn at(line: usize, col: usize, message: impl Into<String>) -> InputError {
        InputError {
            file: "<input>".to_string(),
            line,
            col,
            message: message.into(),
        }
    }

    fn in_file(mut self, file: &str) -> InputError {
        self.file = file.to_string();
        self
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.col) {
            (0, _) => write!(f, "{}: {}", self.file, self.message),
            (line, 0) => write!(f, "{}:{}: {}", self.file, line, self.message),
            (line, col) => write!(f, "{}:{}:{}: {}", self.file, line, col, self.message),
        }
    }
}

impl std::error::Error for InputError {}

/// The two history formats of the Porcupine corpus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Jepsen console log lines, `INFO jepsen.util - P :type :f value` (the etcd files).
    JepsenLog,
    /// One EDN map per line, `{:process P, :type :ok, :f :get, :key "K", :value V}` (the kv
    /// files, and what [`write_edn`](super::write_edn) writes).
    Edn,
}

/// A history read from a file, in the Jepsen vocabulary, ready for either built-in model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadedHistory {
    /// The format the file was in (an empty file counts as EDN).
    pub format: Format,
    /// The operations, in order of call.
    pub operations: Vec<JepsenOperation>,
    /// For each operation, the line of its invoke event (for messages about it).
    pub lines: Vec<usize>,
    /// Failed writes, puts and appends: they did not happen, so they were left out.
    pub dropped: usize,
}

impl LoadedHistory {
    /// Checks that `model` can check every operation (a register model cannot check `get`),
    /// pointing at the invoke line of the first one it cannot.
    pub fn validate<M>(&self, model: &M) -> Result<(), InputError>
    where
        M: Model<Input = Input, Output = Output>,
    {
        for (operation, line) in self.operations.iter().zip(&self.lines) {
            model
                .validate(&operation.input)
                .map_err(|message| InputError::at(*line, 0, message))?;
        }
        Ok(())
    }
}

/// Reads a history file, detecting its format from its first non-blank line.
pub fn load(path: &Path) -> Result<LoadedHistory, InputError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|error| InputError::at(0, 0, format!("cannot read: {error}")).in_file(&file))?;
    parse_history(&text).map_err(|error| error.in_file(&file))
}

/// Parses a history held in memory, detecting its format from its first non-blank line.
pub fn parse_history(text: &str) -> Result<LoadedHistory, InputError> {
    let first = text
        .lines()
        .enumerate()
        .find(|(_, line)| !line.trim().is_empty() && !line.trim_start().starts_with(';'));
    match first {
        None => Ok(LoadedHistory {
            format: Format::Edn,
            operations: Vec::new(),
            lines: Vec::new(),
            dropped: 0,
        }),
        Some((_, line)) if line.trim_start().starts_with('{') => super::edn::parse_edn(text),
        Some((_, line)) if line.trim_start().starts_with("INFO") => {
            super::jepsen_log::parse_jepsen_log(text)
        }
        Some((index, line)) => Err(InputError::at(
            index + 1,
            line.chars().take_while(|c| c.is_whitespace()).count() + 1,
            "expected a Jepsen log line (`INFO jepsen.util - ...`) or an EDN map (`{:process ...}`)",
        )),
    }
}

/// Jepsen's event types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EventKind {
    Invoke,
    Ok,
    Fail,
    Info,
}

impl EventKind {
    pub(crate) fn parse(keyword: &str) -> Option<EventKind> {
        Some(match keyword {
            "invoke" => EventKind::Invoke,
            "ok" => EventKind::Ok,
            "fail" => EventKind::Fail,
            "info" => EventKind::Info,
            _ => return None,
        })
    }
}

/// Jepsen's operation names (`:f`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Function {
    Read,
    Write,
    Cas,
    Get,
    Put,
    Append,
}

impl Function {
    pub(crate) fn parse(keyword: &str) -> Option<Function> {
        Some(match keyword {
            "read" => Function::Read,
            "write" => Function::Write,
            "cas" => Function::Cas,
            "get" => Function::Get,
            "put" => Function::Put,
            "append" => Function::Append,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Function::Read => "read",
            Function::Write => "write",
            Function::Cas => "cas",
            Function::Get => "get",
            Function::Put => "put",
            Function::Append => "append",
        }
    }
}

/// One line of a history file, before pairing.
#[derive(Clone, Debug)]
pub(crate) struct RawEvent {
    pub(crate) line: usize,
    pub(crate) process: u64,
    pub(crate) kind: EventKind,
    pub(crate) function: Function,
    pub(crate) function_col: usize,
    pub(crate) key: Option<Key>,
    pub(crate) value: Edn,
    pub(crate) value_col: usize,
    pub(crate) time: u64,
}

/// Pairs events into operations with the matching rules of the module doc.
pub(crate) fn pair_events(
    events: Vec<RawEvent>,
    format: Format,
) -> Result<LoadedHistory, InputError> {
    struct Slot {
        operation: JepsenOperation,
        function: Function,
        line: usize,
        dropped: bool,
    }
    let mut slots: Vec<Slot> = Vec::new();
    let mut open: HashMap<u64, usize> = HashMap::new();
    for event in events {
        let at = |col: usize, message: String| InputError::at(event.line, col, message);
        if event.kind == EventKind::Invoke {
            if let Some(&index) = open.get(&event.process) {
                return Err(at(
                    1,
                    format!(
                        "process {} already has an operation open (invoked on line {}); \
                         expected its completion first",
                        event.process, slots[index].line
                    ),
                ));
            }
            let input = make_input(&event)?;
            open.insert(event.process, slots.len());
            slots.push(Slot {
                operation: Operation {
                    client: event.process,
                    input,
                    output: None,
                    call: event.time,
                    ret: None,
                },
                function: event.function,
                line: event.line,
                dropped: false,
            });
            continue;
        }
        let Some(index) = open.remove(&event.process) else {
            return Err(at(
                1,
                format!(
                    "process {} has no open operation for this completion to close; \
                     expected an :invoke first",
                    event.process
                ),
            ));
        };
        let slot = &mut slots[index];
        if slot.function != event.function {
            return Err(at(
                event.function_col,
                format!(
                    "expected :{} (the open operation of process {}, line {})",
                    slot.function.name(),
                    event.process,
                    slot.line
                ),
            ));
        }
        match event.kind {
            EventKind::Ok => {
                slot.operation.output = Some(make_output(&event)?);
                slot.operation.ret = Some(event.time);
            }
            EventKind::Fail => match event.function {
                Function::Read | Function::Get => slot.operation.ret = Some(event.time),
                Function::Cas => {
                    slot.operation.output = Some(Output::Cas(false));
                    slot.operation.ret = Some(event.time);
                }
                Function::Write | Function::Put | Function::Append => slot.dropped = true,
            },
            EventKind::Info | EventKind::Invoke => {}
        }
    }
    let dropped = slots.iter().filter(|slot| slot.dropped).count();
    let (operations, lines) = slots
        .into_iter()
        .filter(|slot| !slot.dropped)
        .map(|slot| (slot.operation, slot.line))
        .unzip();
    Ok(LoadedHistory {
        format,
        operations,
        lines,
        dropped,
    })
}

fn register_value(value: &Edn, line: usize, col: usize) -> Result<Value, InputError> {
    match value {
        Edn::Nil => Ok(Value::Nil),
        Edn::Int(number) => Ok(Value::Int(*number)),
        Edn::Str(text) => Ok(Value::str(text)),
        other => Err(InputError::at(
            line,
            col,
            format!(
                "expected nil, an integer or a string, found {}",
                other.describe()
            ),
        )),
    }
}

fn make_input(event: &RawEvent) -> Result<Input, InputError> {
    let (line, col) = (event.line, event.value_col);
    let key = event.key.clone();
    let kv_key = || {
        key.clone().ok_or_else(|| {
            InputError::at(
                line,
                event.function_col,
                format!("expected a :key for :{}", event.function.name()),
            )
        })
    };
    let string = |value: &Edn| match value {
        Edn::Str(text) => Ok(text.as_str().into()),
        other => Err(InputError::at(
            line,
            col,
            format!("expected a string, found {}", other.describe()),
        )),
    };
    Ok(match event.function {
        Function::Read => Input::Read { key },
        Function::Write => Input::Write {
            key,
            value: register_value(&event.value, line, col)?,
        },
        Function::Cas => match &event.value {
            Edn::Vector(items) if items.len() == 2 => Input::Cas {
                key,
                expected: register_value(&items[0], line, col)?,
                new: register_value(&items[1], line, col)?,
            },
            other => {
                return Err(InputError::at(
                    line,
                    col,
                    format!(
                        "expected [expected new] for :cas, found {}",
                        other.describe()
                    ),
                ))
            }
        },
        Function::Get => Input::Get { key: kv_key()? },
        Function::Put => Input::Put {
            key: kv_key()?,
            value: string(&event.value)?,
        },
        Function::Append => Input::Append {
            key: kv_key()?,
            value: string(&event.value)?,
        },
    })
}

fn make_output(event: &RawEvent) -> Result<Output, InputError> {
    Ok(match event.function {
        Function::Read | Function::Get => {
            Output::Value(register_value(&event.value, event.line, event.value_col)?)
        }
        Function::Write | Function::Put | Function::Append => Output::Done,
        Function::Cas => Output::Cas(true),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_both_formats_and_rejects_others_with_a_position() {
        let log = "INFO  jepsen.util - 0\t:invoke\t:read\tnil\n";
        assert_eq!(parse_history(log).map(|h| h.format), Ok(Format::JepsenLog));
        let edn = "\n{:process 0, :type :invoke, :f :get, :key \"a\", :value nil}\n";
        assert_eq!(parse_history(edn).map(|h| h.format), Ok(Format::Edn));
        let error = parse_history("\n\n   hello").unwrap_err();
        assert_eq!((error.line, error.col), (3, 4));
        assert_eq!(parse_history("").map(|h| h.operations.len()), Ok(0));
    }

    #[test]
    fn error_display_is_file_line_col_message() {
        let error = InputError::at(3, 7, "expected `}`").in_file("h.edn");
        assert_eq!(error.to_string(), "h.edn:3:7: expected `}`");
        let unreadable = InputError::at(0, 0, "cannot read: gone").in_file("h.edn");
        assert_eq!(unreadable.to_string(), "h.edn: cannot read: gone");
    }

    #[test]
    fn missing_file_is_an_error_naming_the_file() {
        let error = load(Path::new("/nonexistent/history.edn")).unwrap_err();
        assert_eq!(error.line, 0);
        assert!(error
            .to_string()
            .starts_with("/nonexistent/history.edn: cannot read"));
    }

    #[test]
    fn completion_rules_follow_the_corpus_readme() {
        let text = "\
{:process 0, :type :invoke, :f :write, :value 1}
{:process 1, :type :invoke, :f :read, :value nil}
{:process 2, :type :invoke, :f :cas, :value [1 2]}
{:process 3, :type :invoke, :f :write, :value 9}
{:process 0, :type :info, :f :write, :value 1}
{:process 1, :type :fail, :f :read, :value :timed-out}
{:process 2, :type :fail, :f :cas, :value [1 2]}
{:process 3, :type :fail, :f :write, :value 9}
{:process 4, :type :invoke, :f :read, :value nil}
";
        let history = parse_history(text).unwrap();
        assert_eq!(history.dropped, 1);
        let ops = &history.operations;
        assert_eq!(ops.len(), 4);
        assert_eq!((ops[0].output.clone(), ops[0].ret), (None, None));
        assert_eq!((ops[1].output.clone(), ops[1].ret), (None, Some(5)));
        assert_eq!(ops[2].output, Some(Output::Cas(false)));
        assert_eq!((ops[3].output.clone(), ops[3].ret), (None, None));
        assert_eq!(history.lines, vec![1, 2, 3, 9]);
    }

    #[test]
    fn a_process_runs_one_operation_at_a_time() {
        let text = "\
{:process 0, :type :invoke, :f :read, :value nil}
{:process 0, :type :invoke, :f :read, :value nil}
";
        let error = parse_history(text).unwrap_err();
        assert_eq!((error.line, error.col), (2, 1));
        assert!(error.message.contains("already has an operation open"));
        let orphan = parse_history("{:process 5, :type :ok, :f :read, :value 1}").unwrap_err();
        assert!(orphan.message.contains("no open operation"));
        let mismatch = "\
{:process 0, :type :invoke, :f :read, :value nil}
{:process 0, :type :ok, :f :write, :value 1}
";
        let error = parse_history(mismatch).unwrap_err();
        assert_eq!(
            (error.line, error.col, error.message.as_str()),
            (
                2,
                28,
                "expected :read (the open operation of process 0, line 1)"
            )
        );
    }

    #[test]
    fn validate_points_at_the_line_of_an_operation_the_model_cannot_check() {
        let text = "\
{:process 0, :type :invoke, :f :read, :key \"a\", :value nil}
{:process 0, :type :ok, :f :read, :key \"a\", :value nil}
{:process 0, :type :invoke, :f :get, :key \"a\", :value nil}
";
        let history = parse_history(text).unwrap();
        let error = history
            .validate(&super::super::Register::default())
            .unwrap_err();
        assert_eq!(error.line, 3);
        assert!(history.validate(&super::super::Kv).is_err());
    }
}
