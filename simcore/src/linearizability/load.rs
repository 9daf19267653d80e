//! Reading a history file: format detection, positioned errors, and the matching rules that
//! turn Jepsen's invoke / ok / fail / info events into [`Operation`]s.
//!
//! Formats: EDN (`edn_history.rs`: one op map per line, or one vector or list of op maps as
//! in Knossos's `data/`, pretty-printed or not) and Jepsen log lines (`jepsen_log.rs`: the
//! etcd files of the Porcupine corpus, and Jepsen's `history.txt`). Both give [`RawEvent`]s
//! in file order; this file pairs them, with the rules of the Porcupine corpus README:
//!
//! - a process has at most one operation open; a completion closes the open operation of
//!   the same process, and must name the same function;
//! - `:ok` gives the output (a read's value, a write's or put's completion, a CAS success,
//!   a transaction's micro-operations with the values read);
//! - `:fail` on a read or get: completed with unknown output (always legal, no effect);
//!   `:fail` on a CAS: it definitely did not swap (the value differed from the expected one);
//!   `:fail` on anything else (write, put, append, acquire, release, txn): it did not
//!   happen, so it is dropped (Jepsen's meaning);
//! - `:info`, or no completion at all: indeterminate, open to the end of the history
//!   (`ret: None`, unknown output): it may take effect at any point after its call, or never.
//!
//! The order of the file is the order of the history: an operation's call and return times
//! are the positions of its events. `:time` and `:index` are kept only as information
//! ([`LoadedHistory::times`]), since Jepsen writes events in completion order and takes
//! `:time` from several threads, so times may go backwards.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use super::edn::Edn;
use super::history::{Input, JepsenOperation, Key, MicroOp, Operation, Output, Value};
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

    /// The same error, naming `file`.
    pub fn in_file(mut self, file: &str) -> InputError {
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

/// The history formats read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Jepsen console log lines, `INFO jepsen.util - P :type :f value` (the etcd files), or
    /// the same fields without the prefix (Jepsen's `history.txt`).
    JepsenLog,
    /// EDN op maps, `{:process P, :type :ok, :f :get, :key "K", :value V}`, one per line or
    /// in one vector or list (what Jepsen and Knossos write, and [`write_edn`](super::write_edn)).
    Edn,
}

/// A history read from a file, in the Jepsen vocabulary, ready for the built-in models.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadedHistory {
    /// The format the file was in (an empty file counts as EDN).
    pub format: Format,
    /// The operations, in order of call. Call and return times are event positions.
    pub operations: Vec<JepsenOperation>,
    /// For each operation, the line of its invoke event (for messages about it).
    pub lines: Vec<usize>,
    /// For each operation, the line of its completion event, if it has one.
    pub ret_lines: Vec<Option<usize>>,
    /// For each operation, the `:time` of its invoke and completion events, if given (only
    /// shown, never used for order).
    pub times: Vec<(Option<i64>, Option<i64>)>,
    /// Failed operations that did not happen (writes, puts, appends, ...): left out.
    pub dropped: usize,
    /// Events of processes that are not clients (`:nemesis`, any non-integer process): skipped.
    pub skipped: usize,
    /// Whether register operations carried Jepsen's independent `[key value]` tuples (then
    /// the tuple's key became the operation's key).
    pub independent: bool,
}

impl Default for LoadedHistory {
    /// An empty EDN history.
    fn default() -> LoadedHistory {
        LoadedHistory {
            format: Format::Edn,
            operations: Vec::new(),
            lines: Vec::new(),
            ret_lines: Vec::new(),
            times: Vec::new(),
            dropped: 0,
            skipped: 0,
            independent: false,
        }
    }
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

/// Reads a history file, detecting its format.
pub fn load(path: &Path) -> Result<LoadedHistory, InputError> {
    let file = path.display().to_string();
    let text = read_file(path)?;
    parse_history(&text).map_err(|error| error.in_file(&file))
}

pub(crate) fn read_file(path: &Path) -> Result<String, InputError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path)
        .map_err(|error| InputError::at(0, 0, format!("cannot read: {error}")).in_file(&file))?;
    String::from_utf8(bytes)
        .map_err(|_| InputError::at(0, 0, "cannot read: not UTF-8 text").in_file(&file))
}

/// Parses a history held in memory, detecting its format.
pub fn parse_history(text: &str) -> Result<LoadedHistory, InputError> {
    let (format, events, skipped) = read_events(text)?;
    let mut history = pair_events(events, format)?;
    history.skipped = skipped;
    Ok(history)
}

/// Reads the events of a history in file order, detecting the format from its first line
/// that is neither blank nor a `;` comment: a Jepsen log line names `jepsen.util` or starts
/// with a process number and a keyword; anything else is EDN. Also returns how many events
/// of non-client processes were skipped.
pub(crate) fn read_events(text: &str) -> Result<(Format, Vec<RawEvent>, usize), InputError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let first = text
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty() && !line.starts_with(';'));
    let log_line = |line: &str| {
        line.contains("jepsen.util")
            || (line.starts_with(|c: char| c.is_ascii_digit())
                && line
                    .split_whitespace()
                    .nth(1)
                    .is_some_and(|word| word.starts_with(':')))
    };
    match first {
        Some(line) if log_line(line) => {
            let (events, skipped) = super::jepsen_log::parse_jepsen_log(text)?;
            Ok((Format::JepsenLog, events, skipped))
        }
        _ => {
            let (events, skipped) = super::edn_history::read_edn_events(text)?;
            Ok((Format::Edn, events, skipped))
        }
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
    Acquire,
    Release,
    Txn,
    /// A set's `:add` (Maelstrom's broadcast says `:broadcast`); only the set checker
    /// reads it.
    Add,
}

/// The `:f` names read, for messages.
pub(crate) const FUNCTIONS: &str =
    ":read, :write, :cas, :get, :put, :append, :acquire, :release, :txn or :add";

impl Function {
    pub(crate) fn parse(keyword: &str) -> Option<Function> {
        Some(match keyword {
            "read" => Function::Read,
            "write" => Function::Write,
            "cas" => Function::Cas,
            "get" => Function::Get,
            "put" => Function::Put,
            "append" => Function::Append,
            "acquire" => Function::Acquire,
            "release" => Function::Release,
            "txn" => Function::Txn,
            "add" | "broadcast" => Function::Add,
            _ => return None,
        })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Function::Read => "read",
            Function::Write => "write",
            Function::Cas => "cas",
            Function::Get => "get",
            Function::Put => "put",
            Function::Append => "append",
            Function::Acquire => "acquire",
            Function::Release => "release",
            Function::Txn => "txn",
            Function::Add => "add",
        }
    }

    fn is_register(self) -> bool {
        matches!(self, Function::Read | Function::Write | Function::Cas)
    }
}

/// One event of a history file, before pairing.
#[derive(Clone, Debug)]
pub(crate) struct RawEvent {
    /// Where the event starts (its map, or its log line).
    pub(crate) line: usize,
    pub(crate) col: usize,
    pub(crate) process: u64,
    pub(crate) kind: EventKind,
    pub(crate) function: Function,
    pub(crate) function_at: (usize, usize),
    pub(crate) key: Option<Edn>,
    pub(crate) value: Edn,
    pub(crate) value_at: (usize, usize),
    /// The event's `:time`, if any (information only).
    pub(crate) time: Option<i64>,
}

/// Pairs events into operations with the matching rules of the module doc.
pub(crate) fn pair_events(
    mut events: Vec<RawEvent>,
    format: Format,
) -> Result<LoadedHistory, InputError> {
    struct Slot {
        operation: JepsenOperation,
        function: Function,
        line: usize,
        ret_line: Option<usize>,
        times: (Option<i64>, Option<i64>),
        dropped: bool,
    }
    let independent = split_independent_tuples(&mut events);
    let mut slots: Vec<Slot> = Vec::new();
    let mut open: HashMap<u64, usize> = HashMap::new();
    for (position, event) in events.iter().enumerate() {
        let position = position as u64;
        let at = |col: usize, message: String| InputError::at(event.line, col, message);
        if event.kind == EventKind::Invoke {
            if let Some(&index) = open.get(&event.process) {
                return Err(at(
                    event.col,
                    format!(
                        "process {} already has an operation open (invoked on line {}); \
                         expected its completion first",
                        event.process, slots[index].line
                    ),
                ));
            }
            let input = make_input(event)?;
            open.insert(event.process, slots.len());
            slots.push(Slot {
                operation: Operation {
                    client: event.process,
                    input,
                    output: None,
                    call: position,
                    ret: None,
                },
                function: event.function,
                line: event.line,
                ret_line: None,
                times: (event.time, None),
                dropped: false,
            });
            continue;
        }
        let Some(index) = open.remove(&event.process) else {
            return Err(at(
                event.col,
                format!(
                    "process {} has no open operation for this completion to close; \
                     expected an :invoke first",
                    event.process
                ),
            ));
        };
        let slot = &mut slots[index];
        if slot.function != event.function {
            return Err(InputError::at(
                event.function_at.0,
                event.function_at.1,
                format!(
                    "expected :{} (the open operation of process {}, line {})",
                    slot.function.name(),
                    event.process,
                    slot.line
                ),
            ));
        }
        slot.times.1 = event.time;
        match event.kind {
            EventKind::Ok => {
                slot.operation.output = Some(make_output(event, &slot.operation.input)?);
                slot.operation.ret = Some(position);
                slot.ret_line = Some(event.line);
            }
            EventKind::Fail => match event.function {
                Function::Read | Function::Get => {
                    slot.operation.ret = Some(position);
                    slot.ret_line = Some(event.line);
                }
                Function::Cas => {
                    slot.operation.output = Some(Output::Cas(false));
                    slot.operation.ret = Some(position);
                    slot.ret_line = Some(event.line);
                }
                _ => slot.dropped = true,
            },
            EventKind::Info | EventKind::Invoke => {}
        }
    }
    let dropped = slots.iter().filter(|slot| slot.dropped).count();
    let mut history = LoadedHistory {
        format,
        operations: Vec::with_capacity(slots.len()),
        lines: Vec::with_capacity(slots.len()),
        ret_lines: Vec::with_capacity(slots.len()),
        times: Vec::with_capacity(slots.len()),
        dropped,
        skipped: 0,
        independent,
    };
    for slot in slots.into_iter().filter(|slot| !slot.dropped) {
        history.operations.push(slot.operation);
        history.lines.push(slot.line);
        history.ret_lines.push(slot.ret_line);
        history.times.push(slot.times);
    }
    Ok(history)
}

/// Jepsen's `independent` tests give each register operation a `[key value]` tuple as its
/// value (`[3 nil]`, `[3 [1 2]]` for a cas). When every register event without a `:key`
/// has a two-item tuple, every cas's second item is itself a pair, and there is a read or
/// a cas (a plain register's reads see scalars and its invokes `nil`), the tuples are split
/// into key and value. Returns whether they were.
fn split_independent_tuples(events: &mut [RawEvent]) -> bool {
    let pair = |value: &Edn| {
        value
            .items()
            .filter(|items| items.len() == 2)
            .map(<[Edn]>::to_vec)
    };
    let mut register_events = events
        .iter()
        .filter(|event| event.function.is_register() && event.key.is_none())
        .peekable();
    if register_events.peek().is_none() {
        return false;
    }
    let mut observed = false;
    for event in register_events {
        let Some(items) = pair(&event.value) else {
            return false;
        };
        match event.function {
            Function::Cas if pair(&items[1]).is_none() => return false,
            Function::Cas | Function::Read => observed = true,
            _ => {}
        }
    }
    if !observed {
        return false;
    }
    for event in events
        .iter_mut()
        .filter(|event| event.function.is_register() && event.key.is_none())
    {
        if let Some(mut items) = pair(&event.value) {
            let value = items.pop().unwrap_or(Edn::Nil);
            event.key = items.pop();
            event.value = value;
        }
    }
    true
}

/// A register value from any EDN value: `nil`, integers and strings as themselves, anything
/// else by its canonical text (so that `:a`, `[1 2]` or `#{1 2}` compare as Clojure does).
pub(crate) fn to_value(value: &Edn) -> Value {
    match value {
        Edn::Nil => Value::Nil,
        Edn::Int(number) => Value::Int(*number),
        Edn::Str(text) => Value::str(text),
        other => Value::Other(Arc::from(other.canonical())),
    }
}

/// A key from any EDN value: a string as itself, anything else by its canonical text.
pub(crate) fn to_key(value: &Edn) -> Key {
    match value {
        Edn::Str(text) => Key::from(text.as_str()),
        other => Key::from(other.canonical()),
    }
}

/// Parses one EDN value given on the command line (`--initial-value 0`).
pub fn parse_value(text: &str) -> Result<Value, InputError> {
    Ok(to_value(&one_value(text)?))
}

/// Parses an EDN map of register keys to values (`{:x 0, :y 1}`), or `None` if `text` is
/// one value that is not a map.
pub fn parse_key_values(text: &str) -> Result<Option<Vec<(Value, Value)>>, InputError> {
    Ok(match one_value(text)?.untagged() {
        Edn::Map(entries) => Some(
            entries
                .iter()
                .map(|entry| (to_value(&entry.key), to_value(&entry.value)))
                .collect(),
        ),
        _ => None,
    })
}

fn one_value(text: &str) -> Result<Edn, InputError> {
    let mut values = super::edn::read_all(text)?;
    match values.len() {
        1 => Ok(values.remove(0).0),
        count => Err(InputError::at(
            1,
            0,
            format!("expected one EDN value, found {count}"),
        )),
    }
}

fn make_input(event: &RawEvent) -> Result<Input, InputError> {
    let (line, col) = event.value_at;
    let key = event.key.as_ref().map(to_key);
    let kv_key = || {
        key.clone().ok_or_else(|| {
            InputError::at(
                event.function_at.0,
                event.function_at.1,
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
            value: to_value(&event.value),
        },
        Function::Cas => match event.value.items() {
            Some([expected, new]) => Input::Cas {
                key,
                expected: to_value(expected),
                new: to_value(new),
            },
            _ => {
                return Err(InputError::at(
                    line,
                    col,
                    format!(
                        "expected [expected new] for :cas, found {}",
                        event.value.describe()
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
        Function::Acquire => Input::Acquire,
        Function::Release => Input::Release,
        Function::Txn => Input::Txn {
            ops: micro_ops(event)?,
        },
        Function::Add => Input::Add {
            value: to_value(&event.value),
        },
    })
}

/// A `:txn` value: a sequence of `[f k v]` micro-operations, `f` being `:r`/`:read` or
/// `:w`/`:write`.
fn micro_ops(event: &RawEvent) -> Result<Arc<[MicroOp]>, InputError> {
    let (line, col) = event.value_at;
    let error = |found: String| {
        InputError::at(
            line,
            col,
            format!("expected a :txn of [:r k v] / [:w k v] micro-operations, found {found}"),
        )
    };
    let items = event
        .value
        .items()
        .ok_or_else(|| error(event.value.describe()))?;
    items
        .iter()
        .map(|item| match item.items() {
            Some([f, key, value]) => {
                let write = match f.name() {
                    Some("r" | "read") => false,
                    Some("w" | "write") => true,
                    _ => return Err(error(f.describe())),
                };
                Ok(MicroOp {
                    write,
                    key: to_value(key),
                    value: to_value(value),
                })
            }
            _ => Err(error(item.describe())),
        })
        .collect()
}

fn make_output(event: &RawEvent, input: &Input) -> Result<Output, InputError> {
    Ok(match event.function {
        Function::Read | Function::Get => Output::Value(to_value(&event.value)),
        Function::Cas => Output::Cas(true),
        Function::Txn => match (&event.value, input) {
            // A completion without a value: the invoke's micro-operations.
            (Edn::Nil, Input::Txn { ops }) => Output::Txn(ops.clone()),
            _ => Output::Txn(micro_ops(event)?),
        },
        Function::Write
        | Function::Put
        | Function::Append
        | Function::Acquire
        | Function::Release
        | Function::Add => Output::Done,
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
