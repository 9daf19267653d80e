//! Jepsen console log lines, as in the etcd files of the Porcupine corpus:
//!
//! ```text
//! INFO  jepsen.util - 2  :invoke  :cas  [3 0]
//! INFO  jepsen.util - 2  :fail    :cas  [3 0]
//! INFO  jepsen.util - :nemesis  :info  :start  nil
//! ```
//!
//! and the same fields without the `INFO jepsen.util -` prefix, as in Jepsen's
//! `history.txt`. Fields: process id (an integer; lines of any other process, such as
//! `:nemesis`, are skipped), event type, operation (`:read`, `:write`, `:cas`: one register,
//! no key; or any other `:f` the EDN reader knows), value (any EDN value: `nil`, an integer,
//! `[expected new]`, `:timed-out`...). Separators are any run of whitespace (tabs in the
//! corpus, sometimes spaces). There are no timestamps: line order is real-time order.

use super::edn::Cursor;
use super::load::{EventKind, Function, InputError, RawEvent, FUNCTIONS};

/// Parses a whole Jepsen log: the client events in line order, and how many lines of other
/// processes were skipped.
pub(crate) fn parse_jepsen_log(text: &str) -> Result<(Vec<RawEvent>, usize), InputError> {
    let mut events = Vec::new();
    let mut skipped = 0;
    for (index, line_text) in text.lines().enumerate() {
        let trimmed = line_text.trim();
        if trimmed.is_empty() || trimmed.starts_with(';') {
            continue;
        }
        match parse_line(line_text, index + 1)? {
            Some(event) => events.push(event),
            None => skipped += 1,
        }
    }
    Ok((events, skipped))
}

fn parse_line(text: &str, line: usize) -> Result<Option<RawEvent>, InputError> {
    let mut cursor = Cursor::new(text, line);
    cursor.skip_space(false);
    let col = cursor.col();
    if !cursor
        .peek()
        .is_some_and(|c| c.is_ascii_digit() || c == ':')
    {
        cursor.expect_word("INFO")?;
        cursor.expect_space("`jepsen.util`")?;
        cursor.expect_word("jepsen.util")?;
        cursor.expect_space("`-`")?;
        cursor.expect_word("-")?;
        cursor.expect_space("a process id")?;
    }
    let process_col = cursor.col();
    let (process, _, _) = cursor.value()?;
    let process = match process {
        super::edn::Edn::Int(number) => u64::try_from(number).map_err(|_| {
            InputError::at(line, process_col, "expected a process id (an integer ≥ 0)")
        })?,
        super::edn::Edn::Keyword(_) => return Ok(None),
        _ => {
            return Err(InputError::at(
                line,
                process_col,
                "expected a process id (an integer ≥ 0)",
            ))
        }
    };
    cursor.expect_space("the event type")?;
    let kind_col = cursor.col();
    let expected_kind = "one of :invoke, :ok, :fail, :info";
    let kind = EventKind::parse(cursor.keyword(expected_kind)?)
        .ok_or_else(|| InputError::at(line, kind_col, format!("expected {expected_kind}")))?;
    cursor.expect_space("the operation")?;
    let function_col = cursor.col();
    let function = Function::parse(cursor.keyword(FUNCTIONS)?)
        .ok_or_else(|| InputError::at(line, function_col, format!("expected {FUNCTIONS}")))?;
    cursor.expect_space("a value")?;
    let (value, value_line, value_col) = cursor.value()?;
    cursor.skip_space(false);
    if !cursor.at_end() {
        return Err(cursor.error("expected the end of the line after the value"));
    }
    Ok(Some(RawEvent {
        line,
        col,
        process,
        kind,
        function,
        function_at: (line, function_col),
        key: None,
        value,
        value_at: (value_line, value_col),
        time: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::super::history::{Input, Output, Value};
    use super::super::load::parse_history;

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
        let history = parse_history(text).unwrap();
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
                "INFO  jepsen.util - 1\t:invoke\t:frob\tnil",
                31,
                "expected :read, :write, :cas, :get, :put, :append, :acquire, :release, :txn or :add",
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
                36,
                "expected `]` to close the vector opened here",
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
            let error = parse_history(&format!("{good}{bad}\n")).unwrap_err();
            assert_eq!(
                (error.line, error.col, error.message.as_str()),
                (2, col, message),
                "{bad}"
            );
        }
        let error =
            parse_history(&format!("{good}INFO  jepsen.util - 1\t:invoke\t:cas\t4\n")).unwrap_err();
        assert_eq!((error.line, error.col), (2, 36));
        assert!(error
            .message
            .starts_with("expected [expected new] for :cas"));
    }
}
