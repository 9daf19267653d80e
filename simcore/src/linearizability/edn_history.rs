//! EDN histories: Jepsen and Knossos op maps, read in file order, and our histories
//! written for them.
//!
//! ```text
//! {:process 3, :type :invoke, :f :append, :key "7", :value "x 3 17 y"}
//! [{:process 0, :type :invoke, :f :cas, :value [1 2]}
//!  {:process 0, :type :fail, :f :cas, :value [1 2]}]
//! ```
//!
//! The file is a sequence of op maps, or one vector or list of them (Knossos's `data/`),
//! in any layout (several per line, one over several lines, `;` comments); a tagged map such
//! as `#jepsen.history.Op{...}` is that map. Entries read: `:process` (an integer; events of
//! any other process, such as `:nemesis`, are skipped whatever else they hold), `:type`
//! (`:invoke`, `:ok`, `:fail`, `:info`), `:f` (see `load.rs`), `:key` (optional, any value),
//! `:value` (any EDN value; default `nil`) and `:time` (kept for display only). Other
//! entries (`:index`, `:error`, ...) are ignored. Keys and names may be keywords, symbols
//! or strings.
//!
//! The writer emits `:process`, `:type`, `:f`, `:key`, `:value` and `:time`, in an order that
//! says what the times said: events in time order; at one instant, calls before
//! completions (equal times overlap), except that a client completing and calling at the
//! same instant completes first. So a history written by [`write_edn`] reads back to the
//! same operations up to renumbered times, with two normalizations: a completed
//! write / put / append of unknown output is written `:ok` (it took effect either way), and
//! a completed CAS of unknown output is written `:info` (open to the end, which only allows
//! more orders). An open operation's `:info` line goes just before its process's next
//! invoke, or at the end.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::io;

use super::edn::{Cursor, Edn, Entry};
use super::history::{write_quoted, Input, JepsenOperation, Output};
use super::load::{EventKind, Function, InputError, RawEvent, FUNCTIONS};

/// Reads every op map of an EDN history, in file order; returns the client events and how
/// many events of other processes were skipped.
pub(crate) fn read_edn_events(text: &str) -> Result<(Vec<RawEvent>, usize), InputError> {
    let mut cursor = Cursor::new(text, 1);
    let mut events = Vec::new();
    let mut skipped = 0;
    let mut take = |value: Edn, line: usize, col: usize| -> Result<(), InputError> {
        match event(&value, line, col)? {
            Some(event) => events.push(event),
            None => skipped += 1,
        }
        Ok(())
    };
    loop {
        cursor.skip_blank()?;
        let Some(next) = cursor.peek() else {
            break;
        };
        if let Some(close) = match next {
            '[' => Some(']'),
            '(' => Some(')'),
            _ => None,
        } {
            // One collection of op maps: read item by item, to keep each one's position.
            let (line, col) = (cursor.line(), cursor.col());
            cursor.expect_word(&next.to_string())?;
            loop {
                cursor.skip_blank()?;
                match cursor.peek() {
                    Some(character) if character == close => {
                        cursor.expect_word(&close.to_string())?;
                        break;
                    }
                    None => {
                        return Err(InputError::at(
                            line,
                            col,
                            format!("expected `{close}` to close the history opened here"),
                        ))
                    }
                    Some(_) => {
                        let (value, line, col) = cursor.value()?;
                        take(value, line, col)?;
                    }
                }
            }
        } else {
            let (value, line, col) = cursor.value()?;
            take(value, line, col)?;
        }
    }
    Ok((events, skipped))
}

fn entry<'a>(entries: &'a [Entry], name: &str) -> Option<&'a Entry> {
    entries.iter().find(|entry| entry.key.name() == Some(name))
}

/// One op map as an event, or `None` for an event of a process that is not a client.
fn event(value: &Edn, line: usize, col: usize) -> Result<Option<RawEvent>, InputError> {
    let Edn::Map(entries) = value.untagged() else {
        return Err(InputError::at(
            line,
            col,
            format!(
                "expected an op map ({{:process 0, :type :invoke, :f :read, ...}}), found {}",
                value.describe()
            ),
        ));
    };
    let field = |name: &str| {
        entry(entries, name).ok_or_else(|| {
            InputError::at(line, col, format!("expected a :{name} entry in the map"))
        })
    };
    let process = field("process")?;
    let process = match &process.value {
        Edn::Int(number) => u64::try_from(*number)
            .map_err(|_| InputError::at(process.line, process.col, "expected a process id ≥ 0"))?,
        // :nemesis, "nemesis", nil...: not a client's operation, whatever it holds.
        _ => return Ok(None),
    };
    let named = |name: &str, expected: &str| -> Result<(String, &Entry), InputError> {
        let entry = field(name)?;
        match entry.value.name() {
            Some(text) => Ok((text.to_string(), entry)),
            None => Err(InputError::at(
                entry.line,
                entry.col,
                format!("expected {expected}, found {}", entry.value.describe()),
            )),
        }
    };
    let expected_kind = ":invoke, :ok, :fail or :info";
    let (kind_name, kind_entry) = named("type", expected_kind)?;
    let kind = EventKind::parse(&kind_name).ok_or_else(|| {
        InputError::at(
            kind_entry.line,
            kind_entry.col,
            format!("expected {expected_kind}, found :{kind_name}"),
        )
    })?;
    let (function_name, function_entry) = named("f", FUNCTIONS)?;
    let function = Function::parse(&function_name).ok_or_else(|| {
        InputError::at(
            function_entry.line,
            function_entry.col,
            format!("expected {FUNCTIONS}, found :{function_name}"),
        )
    })?;
    let key = match entry(entries, "key") {
        None => None,
        Some(entry) if entry.value == Edn::Nil => None,
        Some(entry) => Some(entry.value.clone()),
    };
    let (value, value_at) = match entry(entries, "value") {
        Some(entry) => (entry.value.clone(), (entry.line, entry.col)),
        None => (Edn::Nil, (line, col)),
    };
    let time = match entry(entries, "time").map(|entry| &entry.value) {
        Some(Edn::Int(time)) => Some(*time),
        _ => None,
    };
    Ok(Some(RawEvent {
        line,
        col,
        process,
        kind,
        function,
        function_at: (function_entry.line, function_entry.col),
        key,
        value,
        value_at,
        time,
    }))
}

/// Writes a history as EDN maps, one per line, two lines per operation (invoke, then its
/// completion: `:ok`, `:fail` for a completed read of unknown output or a failed CAS, or
/// `:info` for an open operation), in time order, with `:time`. See the module doc.
pub fn write_edn<W: io::Write>(out: &mut W, history: &[JepsenOperation]) -> io::Result<()> {
    out.write_all(edn_string(history).as_bytes())
}

/// [`write_edn`] into a `String`.
pub fn edn_string(history: &[JepsenOperation]) -> String {
    // (time, client) of every completion and of every call.
    let mut completes_at: BTreeSet<(u64, u64)> = BTreeSet::new();
    let mut calls_at: BTreeSet<(u64, u64)> = BTreeSet::new();
    for operation in history {
        calls_at.insert((operation.call, operation.client));
        if let Some(ret) = operation.ret {
            completes_at.insert((ret, operation.client));
        }
    }
    // (time, class, client, call time, operation, is completion). Classes at one instant:
    // 0 calls of clients not completing then, 1 the events of clients that both complete
    // and call then (in the client's own order: by call, each call before its completion),
    // 2 the other completions.
    let mut events: Vec<(u64, u8, u64, u64, usize, bool)> = Vec::with_capacity(history.len() * 2);
    for (index, operation) in history.iter().enumerate() {
        let (call, client) = (operation.call, operation.client);
        let class = if completes_at.contains(&(call, client)) {
            1
        } else {
            0
        };
        events.push((call, class, client, call, index, false));
        if let Some(ret) = operation.ret {
            let class = if calls_at.contains(&(ret, client)) {
                1
            } else {
                2
            };
            events.push((ret, class, client, call, index, true));
        }
    }
    events.sort_unstable();
    let mut text = String::new();
    let mut open: HashMap<u64, usize> = HashMap::new();
    let mut last_time = 0;
    for &(time, _, _, _, index, completion) in &events {
        let operation = &history[index];
        last_time = time;
        if completion {
            write_line(&mut text, operation, Line::Completion, time);
        } else {
            if let Some(previous) = open.remove(&operation.client) {
                write_line(&mut text, &history[previous], Line::Info, time);
            }
            write_line(&mut text, operation, Line::Invoke, time);
            if operation.ret.is_none() {
                open.insert(operation.client, index);
            }
        }
    }
    let mut still_open: Vec<usize> = open.into_values().collect();
    still_open.sort_unstable();
    for index in still_open {
        write_line(&mut text, &history[index], Line::Info, last_time);
    }
    text
}
enum Line {
    Invoke,
    Completion,
    Info,
}

fn write_line(text: &mut String, operation: &JepsenOperation, line: Line, time: u64) {
    let input = &operation.input;
    let kind = match line {
        Line::Invoke => "invoke",
        Line::Info => "info",
        Line::Completion => match (input, &operation.output) {
            (_, Some(Output::Cas(false))) => "fail",
            (Input::Read { .. } | Input::Get { .. }, None) => "fail",
            (Input::Txn { .. } | Input::Acquire | Input::Release, None) => "info",
            (Input::Cas { .. }, None) => "info",
            _ => "ok",
        },
    };
    let _ = write!(
        text,
        "{{:process {}, :type :{kind}, :f :{}",
        operation.client,
        input.function()
    );
    if let Some(key) = input.key() {
        text.push_str(", :key ");
        let _ = write_quoted(text, key);
    }
    text.push_str(", :value ");
    let _ = match input {
        Input::Read { .. } | Input::Get { .. } => match (&line, &operation.output) {
            (Line::Completion, Some(Output::Value(value))) => write!(text, "{value}"),
            _ => write!(text, "nil"),
        },
        Input::Write { value, .. } => write!(text, "{value}"),
        Input::Cas { expected, new, .. } => write!(text, "[{expected} {new}]"),
        Input::Put { value, .. } | Input::Append { value, .. } => write_quoted(text, value),
        Input::Add { value } => write!(text, "{value}"),
        Input::Acquire | Input::Release => write!(text, "nil"),
        Input::Txn { ops } => match (&line, &operation.output) {
            (Line::Completion, Some(output @ Output::Txn(_))) => write!(text, "{output}"),
            _ => write!(text, "{}", Output::Txn(ops.clone())),
        },
    };
    let _ = writeln!(text, ", :time {time}}}");
}

#[cfg(test)]
mod tests {
    use super::super::history::{Operation, Value};
    use super::super::load::parse_history;
    use super::*;

    fn error_of(text: &str) -> (usize, usize, String) {
        let error = parse_history(text).unwrap_err();
        (error.line, error.col, error.message)
    }

    #[test]
    fn reads_the_corpus_kv_lines() {
        let text = "\
{:process 9, :type :invoke, :f :append, :key \"0\", :value \"x 9 0 y\"}
{:process 1, :type :invoke, :f :get, :key \"9\", :value nil}
{:process 1, :type :ok, :f :get, :key \"9\", :value \"\"}
{:process 9, :type :ok, :f :append, :key \"0\", :value \"x 9 0 y\"}
";
        let history = parse_history(text).unwrap();
        assert_eq!(
            history.operations,
            vec![
                Operation {
                    client: 9,
                    input: Input::Append {
                        key: "0".into(),
                        value: "x 9 0 y".into()
                    },
                    output: Some(Output::Done),
                    call: 0,
                    ret: Some(3),
                },
                Operation {
                    client: 1,
                    input: Input::Get { key: "9".into() },
                    output: Some(Output::Value(Value::str(""))),
                    call: 1,
                    ret: Some(2),
                },
            ]
        );
    }

    #[test]
    fn malformed_lines_give_line_and_column() {
        let good = "{:process 0, :type :invoke, :f :get, :key \"a\", :value nil}\n";
        // Unclosed map on line 2: the error is at the end of the line.
        let text = format!("{good}{{:process 0, :type :ok, :f :get, :key \"a\", :value \"v\"\n");
        assert_eq!(
            error_of(&text),
            (
                2,
                1,
                "expected `}` to close the map opened here".to_string()
            )
        );
        // Unknown :type value, column of the value.
        let text = "{:process 0, :type :done, :f :get, :key \"a\"}";
        let (line, col, message) = error_of(text);
        assert_eq!((line, col), (1, 20));
        assert!(message.starts_with("expected :invoke, :ok, :fail or :info"));
        // A map where a name should be.
        let text = "{:process 0, :type {:a 1}, :f :read}";
        let (line, col, message) = error_of(text);
        assert_eq!((line, col), (1, 20));
        assert!(message.contains("found a map of 1 entries"), "{message}");
        // A pretty-printed map: the error is on the line of the bad value.
        let text = "[{:process 0,\n  :type :invoke,\n  :f :frobnicate}]";
        assert_eq!(error_of(text).0, 3);
        assert_eq!(error_of(text).1, 6);
        // Missing :f.
        assert_eq!(
            error_of("  {:process 0, :type :invoke}"),
            (1, 3, "expected a :f entry in the map".to_string())
        );
        // Unterminated string: points at its opening quote.
        assert_eq!(
            error_of("{:process 0, :type :invoke, :f :put, :key \"a, :value 1}").0,
            1
        );
        assert_eq!(
            error_of("{:process 0, :type :invoke, :f :put, :key \"a, :value 1}").1,
            43
        );
        // Put needs a string value.
        assert_eq!(
            error_of("{:process 0, :type :invoke, :f :put, :key \"a\", :value 1}"),
            (1, 55, "expected a string, found the integer 1".to_string())
        );
        // Trailing junk.
        assert_eq!(error_of("{:process 0, :type :invoke, :f :read} x").1, 39);
    }

    #[test]
    fn times_going_backwards_are_information_and_file_order_is_the_order() {
        // Jepsen writes completion order and takes :time from several threads: the read's
        // :ok at :time 5 comes after its invoke at :time 10 in the file, so it returned
        // after it was called. Only some events have a :time.
        let text = "\
{:process 0, :type :invoke, :f :read, :time 10}
{:process 0, :type :ok, :f :read, :value 1, :time 5}
{:process 1, :type :invoke, :f :write, :value 2}
";
        let history = parse_history(text).unwrap();
        let (read, write) = (&history.operations[0], &history.operations[1]);
        assert_eq!((read.call, read.ret, write.call), (0, Some(1), 2));
        assert_eq!(history.times, vec![(Some(10), Some(5)), (None, None)]);
    }

    #[test]
    fn nemesis_lines_and_extra_keys_are_ignored() {
        let text = "\
{:process :nemesis, :type :info, :f :start, :value nil}
{:index 0, :time 5, :process 0, :type :invoke, :f :read, :value nil, :error \"x\"}
{:index 1, :time 9, :process 0, :type :ok, :f :read, :value 3}
";
        let history = parse_history(text).unwrap();
        assert_eq!(history.operations.len(), 1);
        assert_eq!(history.skipped, 1);
        assert_eq!(history.operations[0].call, 0);
        assert_eq!(history.operations[0].ret, Some(1));
        assert_eq!(history.times, vec![(Some(5), Some(9))]);
    }

    fn op(
        client: u64,
        input: Input,
        output: Option<Output>,
        call: u64,
        ret: Option<u64>,
    ) -> JepsenOperation {
        Operation {
            client,
            input,
            output,
            call,
            ret,
        }
    }

    #[test]
    fn written_histories_read_back_to_the_same_operations() {
        let key = || Some("k\"1".into());
        let history = vec![
            op(
                1,
                Input::Write {
                    key: key(),
                    value: Value::str("a b"),
                },
                Some(Output::Done),
                0,
                Some(10),
            ),
            op(
                2,
                Input::Read { key: key() },
                Some(Output::Value(Value::Nil)),
                2,
                Some(10),
            ),
            op(
                3,
                Input::Cas {
                    key: None,
                    expected: Value::Int(1),
                    new: Value::Int(-2),
                },
                Some(Output::Cas(false)),
                3,
                Some(3),
            ),
            op(
                3,
                Input::Cas {
                    key: None,
                    expected: Value::Nil,
                    new: Value::Int(2),
                },
                Some(Output::Cas(true)),
                3,
                Some(4),
            ),
            op(
                4,
                Input::Write {
                    key: None,
                    value: Value::Int(7),
                },
                None,
                5,
                None,
            ),
            op(4, Input::Read { key: None }, None, 11, Some(12)),
            op(
                5,
                Input::Get { key: "g".into() },
                Some(Output::Value(Value::str("x\\y"))),
                12,
                Some(20),
            ),
            op(
                6,
                Input::Put {
                    key: "g".into(),
                    value: "x\\y".into(),
                },
                Some(Output::Done),
                13,
                Some(14),
            ),
            op(
                7,
                Input::Append {
                    key: "g".into(),
                    value: "z".into(),
                },
                None,
                15,
                None,
            ),
        ];
        let text = edn_string(&history);
        let back = parse_history(&text).unwrap_or_else(|error| panic!("{error}\n{text}"));
        assert_same_up_to_times(&back.operations, &history, &text);
        // And what was read, written and read again, is unchanged.
        let again = parse_history(&edn_string(&back.operations)).unwrap();
        assert_eq!(again.operations, back.operations);
    }

    /// The same operations, and the same real-time order: one returned strictly before
    /// another was called, or strictly after, in both (equal times may go either way).
    fn assert_same_up_to_times(back: &[JepsenOperation], history: &[JepsenOperation], text: &str) {
        let strip = |operations: &[JepsenOperation]| -> Vec<(u64, Input, Option<Output>, bool)> {
            operations
                .iter()
                .map(|op| {
                    (
                        op.client,
                        op.input.clone(),
                        op.output.clone(),
                        op.ret.is_some(),
                    )
                })
                .collect()
        };
        assert_eq!(strip(back), strip(history), "\n{text}");
        for (a, a_back) in history.iter().zip(back) {
            for (b, b_back) in history.iter().zip(back) {
                let (ret, ret_back) = (a.ret_or_infinity(), a_back.ret_or_infinity());
                if ret < b.call {
                    assert!(ret_back < b_back.call, "{a:?} before {b:?}\n{text}");
                }
                if ret > b.call {
                    assert!(ret_back > b_back.call, "{a:?} overlaps {b:?}\n{text}");
                }
            }
        }
    }

    #[test]
    fn corpus_kv_file_round_trips() {
        let text = "\
{:process 0, :type :invoke, :f :put, :key \"1\", :value \"x 0 0 y\"}
{:process 1, :type :invoke, :f :get, :key \"1\", :value nil}
{:process 0, :type :ok, :f :put, :key \"1\", :value \"x 0 0 y\"}
{:process 1, :type :ok, :f :get, :key \"1\", :value \"x 0 0 y\"}
";
        let history = parse_history(text).unwrap();
        let written = edn_string(&history.operations);
        assert_eq!(
            parse_history(&written).unwrap().operations,
            history.operations
        );
    }
}
