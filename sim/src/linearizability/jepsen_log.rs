//! Jepsen console log lines, as in the etcd files of the Porcupine corpus:
//!
//! ```text
//! INFO  jepsen.util - 2  :invoke  :cas  [3 0]
//! INFO  jepsen.util - 2  :fail    :cas  [3 0]
//! ```
//!
//! Fields: process id, event type, operation (`:read`, `:write`, `:cas`: one register, no
//! key), value (`nil`, an integer, `[expected new]`, or `:timed-out`). Separators are any
//! run of whitespace (tabs in the corpus, sometimes spaces). There are no timestamps: line order is real-time order.

use super::edn::Cursor;
use super::load::{pair_events, EventKind, Format, Function, InputError, LoadedHistory, RawEvent};

/// Parses a whole Jepsen log.
pub(crate) fn parse_jepsen_log(text: &str) -> Result<LoadedHistory, InputError> {
    let mut events = Vec::new();
    for (index, line_text) in text.lines().enumerate() {
        if line_text.trim().is_empty() {
            continue;
        }
        let mut event = parse_line(line_text, index + 1)?;
        event.time = events.len() as u64;
        events.push(event);
    }
    pair_events(events, Format::JepsenLog)
}

fn parse_line(text: &str, line: usize) -> Result<RawEvent, InputError> {
    let mut cursor = Cursor::new(text, line);
    cursor.skip_space(false);
    cursor.expect_word("INFO")?;
    cursor.expect_space("`jepsen.util`")?;
    cursor.expect_word("jepsen.util")?;
    cursor.expect_space("`-`")?;
    cursor.expect_word("-")?;
    cursor.expect_space("a process id")?;
    let process_col = cursor.col();
    let digits: String = std::iter::from_fn(|| {
        let character = cursor.peek().filter(char::is_ascii_digit)?;
        cursor
            .expect_word(character.encode_utf8(&mut [0; 4]))
            .ok()?;
        Some(character)
    })
    .collect();
    let process = digits
        .parse::<u64>()
        .map_err(|_| InputError::at(line, process_col, "expected a process id (an integer ≥ 0)"))?;
    cursor.expect_space("the event type")?;
    let kind_col = cursor.col();
    let expected_kind = "one of :invoke, :ok, :fail, :info";
    let kind = EventKind::parse(cursor.keyword(expected_kind)?)
        .ok_or_else(|| InputError::at(line, kind_col, format!("expected {expected_kind}")))?;
    cursor.expect_space("the operation")?;
    let function_col = cursor.col();
    let expected_function = "one of :read, :write, :cas";
    let function = match Function::parse(cursor.keyword(expected_function)?) {
        Some(function @ (Function::Read | Function::Write | Function::Cas)) => function,
        _ => {
            return Err(InputError::at(
                line,
                function_col,
                format!("expected {expected_function}"),
            ))
        }
    };
    cursor.expect_space("a value")?;
    let (value, value_col) = cursor.value()?;
    cursor.skip_space(false);
    if !cursor.at_end() {
        return Err(cursor.error("expected the end of the line after the value"));
    }
    Ok(RawEvent {
        line,
        process,
        kind,
        function,
        function_col,
        key: None,
        value,
        value_col,
        time: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::super::history::{Input, Output, Value};
    use super::*;

    #[test]
    fn reads_tabs_and_runs_of_spaces() {
        let text = "\
INFO  jepsen.util - 2\t:invoke\t:cas\t[3 0]
INFO  jepsen.util - 1   :invoke   :read   nil
INFO  jepsen.util - 2\t:fail\t:cas\t[3 0]
INFO  jepsen.util - 1\t:ok\t:read\t4
INFO  jepsen.util - 3\t:invoke\t:write\t1
INFO  jepsen.util - 3\t:info\t:write\t:timed-out
";
        let history = parse_jepsen_log(text).unwrap();
        let ops = &history.operations;
        assert_eq!(ops.len(), 3);
        assert_eq!(
            ops[0].input,
            Input::Cas {
                key: None,
                expected: Value::Int(3),
                new: Value::Int(0)
            }
        );
        assert_eq!(
            (ops[0].output.clone(), ops[0].ret),
            (Some(Output::Cas(false)), Some(2))
        );
        assert_eq!(ops[1].output, Some(Output::Value(Value::Int(4))));
        assert_eq!((ops[2].call, ops[2].ret), (4, None));
    }

    #[test]
    fn malformed_lines_give_line_and_column() {
        let good = "INFO  jepsen.util - 0\t:invoke\t:read\tnil\n";
        let cases: [(&str, usize, &str); 6] = [
            (
                "INFO  jepsen.util - 1\t:invoke\t:get\tnil",
                31,
                "expected one of :read, :write, :cas",
            ),
            (
                "INFO  jepsen.util - x\t:invoke\t:read\tnil",
                21,
                "expected a process id (an integer ≥ 0)",
            ),
            (
                "INFO  jepsen.util - 1\t:begin\t:read\tnil",
                23,
                "expected one of :invoke, :ok, :fail, :info",
            ),
            (
                "INFO  jepsen.util - 1\t:invoke\t:cas\t[3 0",
                40,
                "expected `]` to close the vector",
            ),
            (
                "WARN  jepsen.util - 1\t:invoke\t:read\tnil",
                1,
                "expected `INFO`",
            ),
            (
                "INFO  jepsen.util - 1\t:invoke\t:read\tnil extra",
                41,
                "expected the end of the line after the value",
            ),
        ];
        for (bad, col, message) in cases {
            let error = parse_jepsen_log(&format!("{good}{bad}\n")).unwrap_err();
            assert_eq!(
                (error.line, error.col, error.message.as_str()),
                (2, col, message),
                "{bad}"
            );
        }
        let error = parse_jepsen_log(&format!("{good}INFO  jepsen.util - 1\t:invoke\t:cas\t4\n"))
            .unwrap_err();
        assert_eq!((error.line, error.col), (2, 36));
        assert!(error
            .message
            .starts_with("expected [expected new] for :cas"));
    }
}
